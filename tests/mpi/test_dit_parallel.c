/* tests/mpi/test_dit_parallel.c - every parallel layout of the DiT forward and of the denoising loop
 * against the single-rank result (issue "distributed", spec 9).
 *
 * Run under mpirun with 2 or 4 ranks (tests/mpi/run_parallel_tests.sh). Every rank computes the
 * single-rank reference itself, then each layout that fits the world size: sequence parallel
 * (Ulysses, ring, both; with and without the block-causal mask; shapes whose token count does not
 * divide the degree, shards made only of padding), tensor parallel, CFG parallel and their
 * products. Sequence and CFG parallel results must equal the reference bit for bit; tensor parallel
 * ones within relative L2 1e-5 (partial sums are added in another order). Bad layouts are refused.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/test_util.h"
#include "core/comm.h"
#include "core/error.h"
#include "model/df_sampler.h"
#include "model/wan_config.h"
#include "model/wan_dit.h"
#include "parallel/mesh.h"
#include "parallel/par_runtime.h"

static struct wan_config test_config(void) {
    struct wan_config c;
    T_REQUIRE_OK(wan_config_preset("tiny", &c));
    c.num_heads = 4; /* so that tp and ulysses can be 4 */
    c.head_dim = 32;
    c.dim = c.num_heads * c.head_dim;
    c.ffn_dim = 256;
    c.num_layers = 2;
    return c;
}

struct case_input {
    const char *name;
    int64_t frames, height, width; /* latent grid */
    int causal_block_size;
    bool per_frame_t;
};

struct inputs {
    struct tensor lat, ts, ctx;
    float *buf;
};

static struct inputs make_inputs(const struct wan_config *c, const struct case_input *ci) {
    struct inputs in;
    const int64_t nlat = 16 * ci->frames * ci->height * ci->width, lc = 24;
    in.buf = malloc(sizeof(float) * (size_t)(nlat + ci->frames + lc * c->text_dim));
    T_REQUIRE(in.buf != NULL, "out of memory");
    t_fill_normal(in.buf, nlat, 7, 1, 1.0f);
    float *ts = in.buf + nlat, *ctx = ts + ci->frames;
    for (int64_t f = 0; f < ci->frames; f++) ts[f] = ci->per_frame_t ? 999.0f - 77.0f * (float)f : 500.0f;
    t_fill_normal(ctx, lc * c->text_dim, 7, 2, 1.0f);
    in.lat = tensor_make(DTYPE_F32, DEVICE_CPU, in.buf, 4, (int64_t[]){16, ci->frames, ci->height, ci->width});
    in.ts = tensor_make(DTYPE_F32, DEVICE_CPU, ts, 1, (int64_t[]){ci->per_frame_t ? ci->frames : 1});
    in.ctx = tensor_make(DTYPE_F32, DEVICE_CPU, ctx, 2, (int64_t[]){lc, c->text_dim});
    return in;
}

static void forward(const struct wan_model *m, const struct wan_dit_par *par, const struct inputs *in,
                    const struct case_input *ci, float *out) {
    struct wan_dit_input di = {.latents = in->lat, .timesteps = in->ts, .context = in->ctx, .fps_code = 1,
                               .causal_block_size = ci->causal_block_size};
    struct wan_dit_shape sh;
    T_REQUIRE_OK(wan_dit_check_input(m, &di, &sh));
    struct wan_dit_workspace ws;
    T_REQUIRE(wan_dit_workspace_init_par(&ws, m, &sh, par) == ERR_OK, "workspace: %s", err_message());
    struct exec_ctx ctx = exec_ctx_cpu(1);
    struct tensor o = tensor_make(DTYPE_F32, DEVICE_CPU, out, 4, (int64_t[]){16, ci->frames, ci->height, ci->width});
    wan_dit_forward(m, &ctx, &ws, &di, &o);
    wan_dit_workspace_free(&ws);
}

static double rel_l2(const float *a, const float *b, int64_t n, int64_t *nan) {
    double num = 0, den = 0;
    *nan = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isinf(a[i])) (*nan)++;
        const double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static bool layout_fits(const struct par_layout *l, int world) { return l->cfg * l->sp * l->tp == world; }

/* Build the mesh and this rank's model slice for a layout request; false if it does not fit the world. */
static bool open_layout(const struct par_request *req, int world, const struct wan_config *cfg, bool guidance,
                        struct par_mesh *mesh, struct wan_model **m, char *desc, size_t cap) {
    struct par_layout l;
    const struct par_model_facts facts = {.heads = (int)cfg->num_heads, .ffn_dim = cfg->ffn_dim, .guidance = guidance};
    if (par_layout_choose(&l, world, req, &facts) != ERR_OK || !layout_fits(&l, world)) return false;
    T_REQUIRE_OK(par_mesh_create(mesh, &l));
    T_REQUIRE_OK(wan_model_init_random_tp(m, cfg, 11, mesh->tp_idx, l.tp));
    par_layout_describe(&l, desc, cap);
    return true;
}

static void test_forward_layouts(int world) {
    const struct wan_config cfg = test_config();
    struct wan_model *full = NULL;
    T_REQUIRE_OK(wan_model_init_random(&full, &cfg, 11));
    const struct case_input cases[] = {
        {"5x16x16 per-frame t, full attention", 5, 16, 16, 0, true},
        {"5x16x16 block-causal (1 frame)", 5, 16, 16, 1, true},
        {"4x10x14 (140 tokens; shards padded), causal blocks of 2", 4, 10, 14, 2, true},
        {"3x10x14 scalar t (105 tokens)", 3, 10, 14, 0, false},
    };
    /* requests; entries that do not fit the world size are skipped */
    const struct par_request reqs[] = {
        {.sp = world, .cfg = 1},                         /* Ulysses as wide as the heads allow */
        {.sp = world, .ulysses = 1, .cfg = 1},           /* pure ring */
        {.sp = world, .ulysses = 2, .cfg = 1},           /* Ulysses 2 x ring */
        {.tp = world, .cfg = 1},                         /* pure tensor parallel */
        {.sp = 2, .tp = world / 2, .cfg = 1},            /* SP x TP */
        {.sp = 2, .ulysses = 1, .tp = world / 2, .cfg = 1}, /* ring x TP */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct case_input *ci = &cases[c];
        struct inputs in = make_inputs(&cfg, ci);
        const int64_t n = 16 * ci->frames * ci->height * ci->width;
        float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
        T_REQUIRE(ref && got, "out of memory");
        forward(full, NULL, &in, ci, ref);
        for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
            if (reqs[r].tp == 1 && reqs[r].sp == 2 && world == 2) continue; /* same as entry 0 */
            struct par_mesh mesh;
            struct wan_model *m = NULL;
            char desc[96];
            if (!open_layout(&reqs[r], world, &cfg, false, &mesh, &m, desc, sizeof desc)) continue;
            const struct wan_dit_par par = {.sp = mesh.sp, .ulysses = mesh.ulysses, .ring = mesh.ring, .tp = mesh.tp};
            memset(got, 0xff, sizeof(float) * (size_t)n); /* NaN: every element must be written */
            forward(m, &par, &in, ci, got);
            int64_t nan = 0;
            const double rel = rel_l2(got, ref, n, &nan);
            T_CHECK(nan == 0, "%s, %s: %lld NaN/Inf", ci->name, desc, (long long)nan);
            if (mesh.layout.tp == 1)
                T_CHECK(memcmp(got, ref, sizeof(float) * (size_t)n) == 0,
                        "%s, %s: differs from one rank (rel L2 %.3g), expected identical bits", ci->name, desc, rel);
            else
                T_CHECK(rel <= 1e-5, "%s, %s: rel L2 %.3g > 1e-5", ci->name, desc, rel);
            if (par_rank() == 0)
                printf("  forward %-55s %-40s rel L2 %.3g%s\n", ci->name, desc, rel,
                       mesh.layout.tp == 1 ? (rel == 0 ? " (identical bits)" : "") : "");
            wan_model_free(&m);
            par_mesh_destroy(&mesh);
        }
        free(ref), free(got), free(in.buf);
    }
    wan_model_free(&full);
}

/* The whole denoising loop of a window with CFG (two passes per row), every layout incl. CFG parallel. */
static void test_sampler_layouts(int world) {
    const struct wan_config cfg = test_config();
    struct wan_model *full = NULL;
    T_REQUIRE_OK(wan_model_init_random(&full, &cfg, 11));
    const int64_t f = 5, h = 12, w = 12, lc = 24, n = 16 * f * h * w;
    float *buf = malloc(sizeof(float) * (size_t)(n + 2 * lc * cfg.text_dim));
    T_REQUIRE(buf != NULL, "out of memory");
    t_fill_normal(buf, n, 9, 1, 1.0f);
    t_fill_normal(buf + n, 2 * lc * cfg.text_dim, 9, 2, 1.0f);
    struct tensor noise = tensor_make(DTYPE_F32, DEVICE_CPU, buf, 4, (int64_t[]){16, f, h, w});
    struct tensor cc = tensor_make(DTYPE_F32, DEVICE_CPU, buf + n, 2, (int64_t[]){lc, cfg.text_dim});
    struct tensor cu = tensor_make(DTYPE_F32, DEVICE_CPU, buf + n + lc * cfg.text_dim, 2, (int64_t[]){lc, cfg.text_dim});
    const struct df_window win = {.noise = &noise, .context = &cc, .negative_context = &cu};
    struct df_sampling s = {.steps = 4, .shift = 8, .guidance = 5, .ar_step = 2, .causal_block_size = 1,
                            .causal_attention = true, .fps = 24, .variant = UNIPC_UPSTREAM};
    struct exec_ctx ctx = exec_ctx_cpu(1);
    float *ref = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    T_REQUIRE(ref && got, "out of memory");
    struct df_schedule sched = {0};
    T_REQUIRE_OK(df_denoise_window(full, &ctx, &s, &win, ref, &sched, NULL, NULL));
    df_schedule_free(&sched);
    const struct par_request reqs[] = {
        {.cfg = 2},                      /* CFG (x SP when world = 4) */
        {.cfg = 2, .sp = 1, .tp = world / 2}, /* CFG x TP */
        {.cfg = 1},                      /* SP over every rank */
        {.cfg = 2, .sp = world / 2, .ulysses = 1}, /* CFG x ring */
    };
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++) {
        struct par_mesh mesh;
        struct wan_model *m = NULL;
        char desc[96];
        if (!open_layout(&reqs[r], world, &cfg, true, &mesh, &m, desc, sizeof desc)) continue;
        const struct wan_dit_par par = {.sp = mesh.sp, .ulysses = mesh.ulysses, .ring = mesh.ring, .tp = mesh.tp};
        s.par = &par;
        s.cfg = mesh.cfg;
        memset(got, 0xff, sizeof(float) * (size_t)n);
        T_REQUIRE(df_denoise_window(m, &ctx, &s, &win, got, &sched, NULL, NULL) == ERR_OK, "%s: %s", desc,
                  err_message());
        df_schedule_free(&sched);
        int64_t nan = 0;
        const double rel = rel_l2(got, ref, n, &nan);
        T_CHECK(nan == 0, "denoise %s: %lld NaN/Inf", desc, (long long)nan);
        if (mesh.layout.tp == 1)
            T_CHECK(memcmp(got, ref, sizeof(float) * (size_t)n) == 0, "denoise %s: rel L2 %.3g, expected identical bits",
                    desc, rel);
        else
            T_CHECK(rel <= 1e-5, "denoise %s: rel L2 %.3g > 1e-5", desc, rel);
        if (par_rank() == 0) printf("  denoise window (CFG 5, 4 steps, async) %-40s rel L2 %.3g\n", desc, rel);
        wan_model_free(&m);
        par_mesh_destroy(&mesh);
    }
    s.par = NULL;
    s.cfg = NULL;
    free(ref), free(got), free(buf);
    wan_model_free(&full);
}

static void test_refusals(int world) {
    const struct wan_config cfg = test_config();
    const struct par_model_facts facts = {.heads = (int)cfg.num_heads, .ffn_dim = cfg.ffn_dim, .guidance = true};
    struct par_layout l;
    T_CHECK(par_layout_choose(&l, 3, &(struct par_request){.tp = 3}, &facts) == ERR_INVALID_ARG &&
                strstr(err_message(), "--tp 3: does not divide the model's 4 attention heads (possible: 1, 2, 4)"),
            "tp 3 on 4 heads: %s", err_message());
    T_CHECK(par_layout_choose(&l, world, &(struct par_request){.sp = world + 1}, &facts) == ERR_INVALID_ARG &&
                strstr(err_message(), "ranks, but the job has"),
            "sp larger than the world: %s", err_message());
    T_CHECK(par_layout_choose(&l, world, &(struct par_request){.sp = world, .ulysses = 3}, &facts) ==
                ERR_INVALID_ARG,
            "ulysses 3: %s", err_message());
    T_CHECK(par_layout_choose(&l, 2, &(struct par_request){.cfg = 2}, &(struct par_model_facts){4, 256, false}) ==
                ERR_INVALID_ARG && strstr(err_message(), "--cfg-parallel"),
            "cfg parallel without guidance: %s", err_message());
    /* more sequence-parallel ranks than tokens: 1x2x2 latent = 1 token */
    struct par_mesh mesh;
    struct wan_model *m = NULL;
    char desc[96];
    if (open_layout(&(struct par_request){.sp = world, .cfg = 1}, world, &cfg, false, &mesh, &m, desc, sizeof desc)) {
        const struct wan_dit_par par = {.sp = mesh.sp, .ulysses = mesh.ulysses, .ring = mesh.ring, .tp = mesh.tp};
        struct wan_dit_shape sh = {.frames = 1, .height = 2, .width = 2, .context_len = 4, .timestep_rows = 1};
        struct wan_dit_workspace ws;
        T_CHECK(wan_dit_workspace_init_par(&ws, m, &sh, &par) == ERR_INVALID_ARG &&
                    strstr(err_message(), "exceeds the 1 tokens"),
                "sp %d on one token: %s", world, err_message());
        wan_model_free(&m);
        par_mesh_destroy(&mesh);
    }
}

int main(int argc, char **argv) {
    par_init(&argc, &argv, PAR_FORCE);
    const int world = par_world();
    if (par_rank() == 0) printf("test_dit_parallel: %d ranks\n", world);
    test_forward_layouts(world);
    test_sampler_layouts(world);
    test_refusals(world);
    /* a failure on any rank fails the job */
    int mine = t_summary(par_rank() == 0 ? "test_dit_parallel" : "test_dit_parallel (other rank)");
    par_finalize();
    return mine;
}
