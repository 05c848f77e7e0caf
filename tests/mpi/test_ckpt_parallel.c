/* tests/mpi/test_ckpt_parallel.c - render checkpoints written collectively with parallel HDF5
 * (worker/render_checkpoint.h: render_ckpt_write_collective; io/h5io.h: collective files).
 *
 * Run under mpirun with 2 or 4 ranks (tests/mpi/run_parallel_tests.sh). Every rank builds the same
 * checkpoint (random state arrays of sampler-like shapes, special float values, UTF-8 strings); the ranks
 * write it together, rank 0 also writes it alone with render_ckpt_write, and every rank reads both back
 * and compares them bit for bit with what was written and with each other (contents and the list of
 * datasets and attributes). Shapes include outermost dimensions smaller than the rank count (empty
 * shares). Failures before the commit (a directory that does not exist, ranks that disagree, one rank's
 * bad write) must give the same error on every rank and leave nothing at the path and no temp file; an
 * existing checkpoint stays intact. Timing: one write of a ~24 MB state by default (key=value lines);
 * `--bench-mb N [--reps K]` times an N MB state at a 720p latent grid (collective vs rank 0 alone, best
 * and median of K, default 3; the checksum pass and a read are timed too). `--keep` leaves the round
 * trips' files (collective and serial) for h5diff.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "parallel/comm_mpi.h"
#include "parallel/par_runtime.h"
#include "tests/common/test_util.h"
#include "worker/render_checkpoint.h"

static struct comm *g_world;
static bool g_keep; /* --keep: leave the round trips' files for h5dump/h5diff */

struct case_desc {
    const char *name;
    struct df_run_state_shape shape; /* channels, frames, columns, height, width, prefix */
    int64_t next_row;                /* > 0: the sampler state is saved */
    int64_t prefix_frames;           /* next_row == 0: prefix latents [16, prefix_frames, h, w] (0: none) */
    int64_t ring_frames;             /* pixel frames [ring_frames, 3, 8 * h, 8 * w] (0: none) */
    bool ring_lead_only;             /* as in the render: the other ranks pass ring = NULL */
};

static void fill_specials(float *x, int64_t n) {
    /* values that only a bitwise copy keeps: signed zero, infinities, a NaN payload, subnormals */
    const uint32_t bits[] = {0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc01234u, 0x00000001u, 0x807fffffu};
    for (int64_t i = 0; i < n && i < 6; i++)
        memcpy(&x[i * 7919 % n], &bits[i], sizeof(float));
}

/* The same checkpoint on every rank (fixed seeds); the ring only on rank 0 if d->ring_lead_only. */
static void make_ckpt(struct render_ckpt *c, const struct case_desc *d, unsigned long long seed) {
    memset(c, 0, sizeof *c);
    c->settings_json = strdup("{\"prompt\":\"caf\xc3\xa9 at dusk \xe2\x80\x94 a slow dolly\",\"seed\":42}");
    c->inputs_json = strdup("{\"image\":\"0123456789abcdef\"}");
    c->noise_path = strdup("");
    c->latents_out = strdup("film.latents.h5");
    snprintf(c->fingerprint, sizeof c->fingerprint, "%016llx", seed * 0x9e3779b97f4a7c15ull);
    c->n_chunks = 5, c->chunk = 2, c->next_row = d->next_row;
    c->frames_done = 97 + (int64_t)seed, c->latents_done = 25;
    c->frames_hash = 0xfedcba9876543210ull ^ seed, c->latents_hash = 0x0123456789abcdefull + seed;
    const struct df_run_state_shape *s = &d->shape;
    const int64_t plane = s->height * s->width;
    if (d->ring_frames > 0) {
        c->ring_frames = d->ring_frames, c->ring_height = 8 * s->height, c->ring_width = 8 * s->width;
        const int64_t n = c->ring_frames * 3 * c->ring_height * c->ring_width;
        if (!d->ring_lead_only || comm_rank(g_world) == 0) {
            c->ring = malloc((size_t)n * sizeof(float));
            T_REQUIRE(c->ring != NULL, "out of memory");
            t_fill_normal(c->ring, n, seed, 1, 0.5f);
        }
    }
    if (d->next_row > 0) {
        T_REQUIRE_OK(render_ckpt_alloc_state(c, s));
        c->shape.rows = 0; /* not stored: the read gives 0 */
        c->state.next_row = d->next_row;
        const int64_t nw = s->channels * s->columns * plane, nb = s->frames * 4 * s->channels * plane;
        t_fill_normal(c->state.window, nw, seed, 2, 1.0f);
        t_fill_normal(c->state.solver_buffers, nb, seed, 3, 1.0f);
        fill_specials(c->state.window, nw);
        fill_specials(c->state.solver_buffers, nb);
        for (int64_t i = 0; i < s->frames * DF_SOLVER_INTS; i++)
            c->state.solver_ints[i] = (int32_t)((i * 2654435761u + seed) % 2001) - 1000;
    } else if (d->prefix_frames > 0) {
        c->prefix_frames = d->prefix_frames;
        c->shape.height = s->height, c->shape.width = s->width;
        const int64_t n = 16 * c->prefix_frames * plane;
        c->prefix = malloc((size_t)n * sizeof(float));
        T_REQUIRE(c->prefix != NULL, "out of memory");
        t_fill_normal(c->prefix, n, seed, 4, 1.0f);
        fill_specials(c->prefix, n);
    }
}

static bool same_bytes(const void *a, const void *b, size_t n) {
    if (!a || !b) return a == b;
    return memcmp(a, b, n) == 0;
}

/* Everything a checkpoint stores, bit for bit; `want` may lack the ring (a follower's copy): ref_ring. */
static void check_equal(const char *what, const struct render_ckpt *got, const struct render_ckpt *want,
                        const float *ref_ring) {
    T_CHECK(!strcmp(got->settings_json, want->settings_json), "%s: settings_json", what);
    T_CHECK(!strcmp(got->inputs_json, want->inputs_json), "%s: inputs_json", what);
    T_CHECK(!strcmp(got->noise_path, want->noise_path), "%s: noise_path", what);
    T_CHECK(!strcmp(got->latents_out, want->latents_out), "%s: latents_out", what);
    T_CHECK(!strcmp(got->fingerprint, want->fingerprint), "%s: fingerprint", what);
    T_CHECK(got->n_chunks == want->n_chunks && got->chunk == want->chunk && got->next_row == want->next_row,
            "%s: position", what);
    T_CHECK(got->frames_done == want->frames_done && got->latents_done == want->latents_done, "%s: counters", what);
    T_CHECK(got->frames_hash == want->frames_hash && got->latents_hash == want->latents_hash, "%s: hashes", what);
    T_CHECK(got->ring_frames == want->ring_frames && got->ring_height == want->ring_height &&
                got->ring_width == want->ring_width,
            "%s: ring shape", what);
    const size_t ring_n = (size_t)(want->ring_frames * 3 * want->ring_height * want->ring_width);
    T_CHECK(same_bytes(got->ring, ref_ring, ring_n * sizeof(float)), "%s: ring frames differ", what);
    T_CHECK(got->prefix_frames == want->prefix_frames, "%s: prefix frames", what);
    const struct df_run_state_shape *s = &want->shape, *g = &got->shape;
    const int64_t plane = s->height * s->width;
    T_CHECK(g->height == s->height && g->width == s->width, "%s: latent size", what);
    T_CHECK(same_bytes(got->prefix, want->prefix, (size_t)(16 * want->prefix_frames * plane) * sizeof(float)),
            "%s: prefix latents differ", what);
    if (want->next_row > 0) {
        T_CHECK(g->channels == s->channels && g->frames == s->frames && g->columns == s->columns &&
                    g->prefix == s->prefix,
                "%s: state geometry", what);
        T_CHECK(got->state.next_row == want->state.next_row, "%s: state row", what);
        T_CHECK(same_bytes(got->state.window, want->state.window,
                           (size_t)(s->channels * s->columns * plane) * sizeof(float)),
                "%s: window differs", what);
        T_CHECK(same_bytes(got->state.solver_ints, want->state.solver_ints,
                           (size_t)(s->frames * DF_SOLVER_INTS) * sizeof(int32_t)),
                "%s: solver counters differ", what);
        T_CHECK(same_bytes(got->state.solver_buffers, want->state.solver_buffers,
                           (size_t)(s->frames * 4 * s->channels * plane) * sizeof(float)),
                "%s: solver buffers differ", what);
    } else {
        T_CHECK(!got->state.window && !got->state.solver_buffers, "%s: a state without a row", what);
    }
}

/* Same datasets (names, types, shapes) and attributes (names, types, values) in both files. */
static void check_same_listing(const char *what, const char *a, const char *b) {
    struct h5_file *fa = NULL, *fb = NULL;
    struct h5_entry *ea = NULL, *eb = NULL;
    size_t na = 0, nb = 0;
    T_REQUIRE_OK(h5_open_read(&fa, a));
    T_REQUIRE_OK(h5_open_read(&fb, b));
    T_REQUIRE_OK(h5_list(fa, &ea, &na));
    T_REQUIRE_OK(h5_list(fb, &eb, &nb));
    T_CHECK(na == nb, "%s: %zu entries vs %zu", what, na, nb);
    for (size_t i = 0; i < na && i < nb; i++) {
        const struct h5_entry *x = &ea[i], *y = &eb[i];
        bool same = !strcmp(x->name, y->name) && x->is_attribute == y->is_attribute && x->dtype == y->dtype &&
                    !strcmp(x->type_desc, y->type_desc) && x->ndim == y->ndim && !strcmp(x->value, y->value);
        for (int d = 0; same && d < x->ndim; d++)
            same = x->shape[d] == y->shape[d];
        T_CHECK(same, "%s: entry %zu: %s (%s) vs %s (%s)", what, i, x->name, x->type_desc, y->name, y->type_desc);
    }
    free(ea), free(eb);
    h5_close(&fa), h5_close(&fb);
}

/* Names in dir other than the expected ones (temp files, partial files). */
static int stray_files(const char *dir, const char *const *expected, int n_expected) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int stray = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        bool ok = false;
        for (int i = 0; i < n_expected && !ok; i++)
            ok = !strcmp(e->d_name, expected[i]);
        if (!ok) {
            fprintf(stderr, "  stray file in %s: %s\n", dir, e->d_name);
            stray++;
        }
    }
    closedir(d);
    return stray;
}

/* The same value on every rank? (codes, message hashes) */
static bool same_everywhere(int64_t v) {
    const int n = comm_size(g_world);
    int64_t *all = malloc((size_t)n * sizeof *all);
    T_REQUIRE(all != NULL, "out of memory");
    comm_allgather(g_world, &v, all, sizeof v);
    bool same = true;
    for (int r = 0; r < n; r++)
        same = same && all[r] == all[0];
    free(all);
    return same;
}

static int64_t message_hash(void) {
    const char *m = err_message();
    return (int64_t)render_hash(RENDER_HASH_INIT, m, strlen(m));
}

/* Rank 0's fresh temp dir on every rank. */
static const char *shared_tmpdir(const char *tag) {
    static char dirs[8][256];
    static int next;
    char *p = dirs[next++ % 8];
    memset(p, 0, 256);
    if (comm_rank(g_world) == 0) snprintf(p, 256, "%s", t_tmpdir(tag));
    comm_bcast(g_world, p, 256, 0);
    return p;
}

static void test_round_trips(void) {
    const int ranks = comm_size(g_world);
    const struct case_desc cases[] = {
        /* mid-chunk: window with an end latent, solver state, ring on the lead only (as in the render) */
        {"state 540p-like", {16, 7, 8, 17, 30, 2, 0}, 3, 0, 2, true},
        /* outermost dimensions below the rank count: frames 1 (solver buffers), ring of 1 on every rank */
        {"state tiny (empty shares)", {16, 1, 2, 3, 5, 1, 0}, 1, 0, 1, false},
        /* odd everything, 3 frames with 4 ranks */
        {"state odd", {16, 3, 3, 7, 9, 0, 0}, 5, 0, 0, false},
        /* row 0 of a chunk: prefix latents only */
        {"prefix", {16, 0, 0, 11, 13, 0, 0}, 0, 3, 0, false},
        /* the end: nothing but the position */
        {"done", {16, 0, 0, 4, 4, 0, 0}, 0, 0, 0, false},
    };
    const char *dir = shared_tmpdir("ckpt-par");
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const struct case_desc *d = &cases[k];
        struct render_ckpt c, ref_full;
        make_ckpt(&c, d, 11 + k);
        make_ckpt(&ref_full,
                  &(struct case_desc){.name = d->name,
                                      .shape = d->shape,
                                      .next_row = d->next_row,
                                      .prefix_frames = d->prefix_frames,
                                      .ring_frames = d->ring_frames},
                  11 + k); /* with the ring on every rank: the reference */
        char coll[600], ser[600], what[160];
        snprintf(coll, sizeof coll, "%s/case%zu.coll.h5", dir, k);
        snprintf(ser, sizeof ser, "%s/case%zu.serial.h5", dir, k);
        const int rc = render_ckpt_write_collective(g_world, coll, &c);
        T_CHECK(rc == ERR_OK, "%s: collective write: %s", d->name, err_message());
        T_CHECK(same_everywhere(rc), "%s: ranks returned different codes", d->name);
        /* the commit is in place on every rank when the call returns */
        T_CHECK(fs_is_file(coll), "%s: %s missing right after the collective write", d->name, coll);
        if (comm_rank(g_world) == 0) T_CHECK(render_ckpt_write(ser, &ref_full) == ERR_OK, "%s: serial write", d->name);
        comm_barrier(g_world);
        struct render_ckpt a, b;
        snprintf(what, sizeof what, "%s, %d ranks, collective file", d->name, ranks);
        T_CHECK(render_ckpt_read(coll, &a) == ERR_OK, "%s: read: %s", what, err_message());
        check_equal(what, &a, &ref_full, ref_full.ring);
        snprintf(what, sizeof what, "%s, serial file", d->name);
        T_CHECK(render_ckpt_read(ser, &b) == ERR_OK, "%s: read: %s", what, err_message());
        check_equal(what, &b, &ref_full, ref_full.ring);
        snprintf(what, sizeof what, "%s, collective vs serial file", d->name);
        check_equal(what, &a, &b, b.ring);
        check_same_listing(what, coll, ser);
        render_ckpt_free(&a), render_ckpt_free(&b);
        /* a group of one is the serial writer */
        if (comm_rank(g_world) == 0) {
            char one[600];
            snprintf(one, sizeof one, "%s/case%zu.self.h5", dir, k);
            T_CHECK(render_ckpt_write_collective(comm_self(), one, &ref_full) == ERR_OK, "%s: comm_self: %s", d->name,
                    err_message());
            T_CHECK(render_ckpt_write_collective(NULL, one, &ref_full) == ERR_OK, "%s: NULL world", d->name);
            T_CHECK(render_ckpt_read(one, &a) == ERR_OK, "%s: read self", d->name);
            check_equal("comm_self", &a, &ref_full, ref_full.ring);
            render_ckpt_free(&a);
            fs_remove_quiet(one);
        }
        comm_barrier(g_world);
        const char *expected[] = {strrchr(coll, '/') + 1, strrchr(ser, '/') + 1};
        if (comm_rank(g_world) == 0 && !g_keep)
            T_CHECK(stray_files(dir, expected, 2) == 0, "%s: temp files left", d->name);
        comm_barrier(g_world);
        if (comm_rank(g_world) == 0 && !g_keep) fs_remove_quiet(coll), fs_remove_quiet(ser);
        render_ckpt_free(&c), render_ckpt_free(&ref_full);
        if (comm_rank(g_world) == 0) printf("  ok: round trip %-28s %d ranks\n", d->name, ranks);
    }
    comm_barrier(g_world);
    if (comm_rank(g_world) == 0 && g_keep) printf("  kept: %s\n", dir);
    if (comm_rank(g_world) == 0 && !g_keep) t_rmtree(dir);
}

static void test_failures(void) {
    const char *dir = shared_tmpdir("ckpt-fail");
    const struct case_desc d = {"fail", {16, 5, 6, 9, 10, 1, 0}, 2, 0, 1, true};
    struct render_ckpt c;
    make_ckpt(&c, &d, 5);

    /* a directory that does not exist: the same clean error everywhere, nothing anywhere */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no-such-dir/ckpt.h5", dir);
    int rc = render_ckpt_write_collective(g_world, bad, &c);
    T_CHECK(rc == ERR_IO, "missing directory: rc %d (%s)", rc, err_message());
    T_CHECK(same_everywhere(rc) && same_everywhere(message_hash()), "missing directory: errors differ between ranks");
    T_CHECK(strstr(err_message(), bad) != NULL, "missing directory: the message does not name the path: %s",
            err_message());
    if (comm_rank(g_world) == 0) printf("  ok: missing directory -> %s\n", err_message());
    T_CHECK(!fs_exists(bad), "missing directory: something at the path");

    if (comm_size(g_world) < 2) { /* the rest needs another rank to fail */
        comm_barrier(g_world);
        if (comm_rank(g_world) == 0) t_rmtree(dir);
        render_ckpt_free(&c);
        return;
    }
    /* an existing checkpoint, then a write that fails before the commit: the old one stays */
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    T_REQUIRE_OK(render_ckpt_write_collective(g_world, path, &c));
    const int64_t good_frames = c.frames_done;
    if (comm_rank(g_world) == comm_size(g_world) - 1) c.frames_done++; /* forgot to broadcast the lead's count */
    comm_barrier(g_world);
    rc = render_ckpt_write_collective(g_world, path, &c);
    T_CHECK(rc == ERR_INVALID_ARG, "ranks disagree: rc %d (%s)", rc, err_message());
    T_CHECK(same_everywhere(rc) && same_everywhere(message_hash()), "ranks disagree: errors differ between ranks");
    if (comm_rank(g_world) == 0) printf("  ok: ranks disagree -> %s\n", err_message());
    c.frames_done = good_frames;
    struct render_ckpt back;
    T_CHECK(render_ckpt_read(path, &back) == ERR_OK, "the old checkpoint is damaged: %s", err_message());
    T_CHECK(back.frames_done == good_frames, "the old checkpoint was replaced");
    render_ckpt_free(&back);

    /* a split array missing on one rank: the same error, nothing written */
    float *win = c.state.window;
    if (comm_rank(g_world) == 1) c.state.window = NULL;
    rc = render_ckpt_write_collective(g_world, bad + 0, &c); /* bad path too: the check comes first */
    T_CHECK(rc == ERR_INVALID_ARG, "window missing on rank 1: rc %d (%s)", rc, err_message());
    c.state.window = win;

    /* io level: one rank's write fails in the middle of the file -> every rank fails, no file, no temp */
    char p2[600];
    snprintf(p2, sizeof p2, "%s/rows.h5", dir);
    MPI_Comm mc = comm_mpi_handle(g_world);
    struct h5_file *f = NULL;
    T_REQUIRE_OK(h5_create_collective(&f, p2, false, g_world, &mc));
    const int64_t shape[2] = {10, 3};
    float rows[30];
    for (int i = 0; i < 30; i++)
        rows[i] = (float)i;
    int64_t r0, nr;
    h5_share_rows(f, shape[0], &r0, &nr);
    T_CHECK(h5_write_f32_rows(f, "a", rows + r0 * 3, 2, shape, r0, nr) == ERR_OK, "rows a: %s", err_message());
    if (comm_rank(g_world) == 1) nr = 11; /* out of range on rank 1 only */
    rc = h5_write_f32_rows(f, "b", rows, 2, shape, comm_rank(g_world) == 1 ? 0 : r0, nr);
    T_CHECK(rc == ERR_INVALID_ARG, "one rank's bad rows: rc %d (%s)", rc, err_message());
    T_CHECK(same_everywhere(rc) && same_everywhere(message_hash()), "one rank's bad rows: errors differ");
    if (comm_rank(g_world) == 0) printf("  ok: one rank fails mid-file -> %s\n", err_message());
    h5_close(&f);
    T_CHECK(!fs_exists(p2), "a failed collective file was left at its path");

    /* io level: refusing to overwrite, decided once for everyone */
    rc = h5_create_collective(&f, path, false, g_world, &mc);
    T_CHECK(rc == ERR_EXISTS && f == NULL, "overwrite refused: rc %d", rc);
    T_CHECK(same_everywhere(rc), "overwrite refusal differs between ranks");

    /* io level: whole datasets come from rank 0, rows from their ranks, attributes collective */
    T_REQUIRE_OK(h5_create_collective(&f, p2, false, g_world, &mc));
    const int64_t vshape[1] = {4};
    const int64_t ivals[4] = {7, -1, 1LL << 40, 3};
    T_CHECK(h5_write_i64(f, "ints", comm_rank(g_world) == 0 ? ivals : NULL, 1, vshape) == ERR_OK, "ints: %s",
            err_message());
    T_CHECK(h5_attr_set_str(f, "note", "caf\xc3\xa9") == ERR_OK && h5_attr_set_i64(f, "n", 42) == ERR_OK &&
                h5_attr_set_f64(f, "x", 0.25) == ERR_OK,
            "attributes: %s", err_message());
    h5_share_rows(f, shape[0], &r0, &nr);
    T_CHECK(h5_write_f32_rows(f, "a", rows + r0 * 3, 2, shape, r0, nr) == ERR_OK, "rows: %s", err_message());
    T_CHECK(h5_commit(&f) == ERR_OK, "commit: %s", err_message());
    struct h5_file *rf = NULL;
    T_REQUIRE_OK(h5_open_read(&rf, p2));
    struct tensor t = {0};
    int64_t *iv = NULL, is[TENSOR_MAX_DIMS], n = 0;
    int ind = 0;
    char note[32] = "";
    double x = 0;
    T_CHECK(h5_read_f32(rf, "a", &t) == ERR_OK && t.ndim == 2 && t.shape[0] == 10 && !memcmp(t.data, rows, sizeof rows),
            "rows read back differ");
    T_CHECK(h5_read_i64(rf, "ints", &iv, &ind, is) == ERR_OK && ind == 1 && !memcmp(iv, ivals, sizeof ivals),
            "rank 0's whole dataset read back differs");
    T_CHECK(h5_attr_get_str(rf, "note", note, sizeof note) == ERR_OK && !strcmp(note, "caf\xc3\xa9") &&
                h5_attr_get_i64(rf, "n", &n) == ERR_OK && n == 42 && h5_attr_get_f64(rf, "x", &x) == ERR_OK &&
                x == 0.25,
            "attributes read back differ");
    free(t.data), free(iv);
    h5_close(&rf);
    comm_barrier(g_world);

    const char *expected[] = {"ckpt.h5", "rows.h5"};
    if (comm_rank(g_world) == 0) T_CHECK(stray_files(dir, expected, 2) == 0, "temp or partial files left behind");
    comm_barrier(g_world);
    if (comm_rank(g_world) == 0) t_rmtree(dir);
    render_ckpt_free(&c);
}

static double max_over_ranks(double v) {
    const int n = comm_size(g_world);
    double *all = malloc((size_t)n * sizeof *all), m = 0;
    T_REQUIRE(all != NULL, "out of memory");
    comm_allgather(g_world, &v, all, sizeof v);
    for (int r = 0; r < n; r++)
        m = all[r] > m ? all[r] : m;
    free(all);
    return m;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Write time of a state of about `mb` MB at a 720p latent grid (90 x 160): collective vs rank 0 alone. */
static void bench(double mb, int reps) {
    const int64_t plane = 90 * 160, frame_bytes = 5 * 16 * plane * 4; /* window column + 4 solver buffers */
    int64_t frames = (int64_t)(mb * 1e6 / (double)frame_bytes + 0.5);
    if (frames < 1) frames = 1;
    const struct case_desc d = {"bench", {16, frames, frames + 1, 90, 160, 1, 0}, 3, 0, 0, false};
    struct render_ckpt c;
    make_ckpt(&c, &d, 99);
    const double bytes = (double)(16 * (frames + 1) * plane + frames * 4 * 16 * plane) * 4;
    const char *dir = shared_tmpdir("ckpt-bench");
    char path[600];
    snprintf(path, sizeof path, "%s/bench.ckpt.h5", dir);
    double tc[8], ts[8], th = 0;
    if (reps > 8) reps = 8;
    for (int i = 0; i < reps; i++) {
        comm_barrier(g_world);
        double t0 = time_now();
        T_REQUIRE_OK(render_ckpt_write_collective(g_world, path, &c));
        tc[i] = max_over_ranks(time_now() - t0);
        comm_barrier(g_world);
        t0 = time_now();
        if (comm_rank(g_world) == 0) T_REQUIRE_OK(render_ckpt_write(path, &c));
        ts[i] = time_now() - t0;
        comm_bcast(g_world, &ts[i], sizeof ts[i], 0);
    }
    if (comm_rank(g_world) == 0) { /* the checksum pass alone (rank 0 does it in both writers) */
        const double t0 = time_now();
        uint64_t h = render_hash(RENDER_HASH_INIT, c.state.window, (size_t)(16 * (frames + 1) * plane) * 4);
        h = render_hash(h, c.state.solver_buffers, (size_t)(frames * 4 * 16 * plane) * 4);
        th = time_now() - t0;
        if (h == 42) printf("(unlikely)\n");
    }
    struct render_ckpt back;
    comm_barrier(g_world);
    const double t0 = time_now();
    T_CHECK(render_ckpt_read(path, &back) == ERR_OK, "bench read: %s", err_message());
    const double tr = max_over_ranks(time_now() - t0);
    check_equal("bench", &back, &c, c.ring);
    render_ckpt_free(&back);
    qsort(tc, (size_t)reps, sizeof *tc, cmp_double);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    if (comm_rank(g_world) == 0) {
        printf("bench ckpt_write mode=collective ranks=%d mb=%.1f reps=%d best_s=%.3f median_s=%.3f mb_per_s=%.0f\n",
               comm_size(g_world), bytes / 1e6, reps, tc[0], tc[reps / 2], bytes / 1e6 / tc[0]);
        printf("bench ckpt_write mode=serial ranks=1 mb=%.1f reps=%d best_s=%.3f median_s=%.3f mb_per_s=%.0f\n",
               bytes / 1e6, reps, ts[0], ts[reps / 2], bytes / 1e6 / ts[0]);
        printf("bench ckpt_checksum ranks=1 mb=%.1f seconds=%.3f\n", bytes / 1e6, th);
        printf("bench ckpt_read ranks=%d (each reads all) mb=%.1f seconds=%.3f\n", comm_size(g_world), bytes / 1e6, tr);
    }
    comm_barrier(g_world);
    if (comm_rank(g_world) == 0) t_rmtree(dir);
    render_ckpt_free(&c);
}

int main(int argc, char **argv) {
    par_init(&argc, &argv, PAR_FORCE);
    g_world = comm_mpi_create(MPI_COMM_WORLD, "world");
    double bench_mb = 24;
    int reps = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench-mb") && i + 1 < argc)
            bench_mb = atof(argv[++i]), reps = 3;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--keep"))
            g_keep = true;
    }
    if (comm_rank(g_world) == 0) printf("test_ckpt_parallel: %d ranks\n", comm_size(g_world));
    if (comm_size(g_world) < 2 && comm_rank(g_world) == 0)
        printf("  (one rank: the collective writer is the serial one)\n");
    test_round_trips();
    test_failures();
    if (bench_mb > 0) bench(bench_mb, reps);
    /* a failure on any rank fails the job */
    const int mine = t_summary(comm_rank(g_world) == 0 ? "test_ckpt_parallel" : "test_ckpt_parallel (other rank)");
    comm_destroy(&g_world);
    par_finalize();
    return mine;
}
