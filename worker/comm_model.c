/* worker/comm_model.c - bytes per rank per step for each parallel layout (see comm_model.h).
 *
 * Every term below names the call in model/wan_dit.c (block_forward, self_attention, rmsnorm_heads,
 * linear_row_parallel, the head) or model/df_sampler.c (df_run_row) it stands for; a change there
 * must change this file, and the byte-exact comparison in `reelfarm bench` under mpirun (and
 * tests/cli/test_bench_scaling.sh) says when it was forgotten.
 */
#include "worker/comm_model.h"

#include <string.h>

#include "core/error.h"

static void add(struct comm_model_cost *c, int64_t calls, int64_t bytes, double wire, double wire_ring) {
    c->calls += calls;
    c->bytes += bytes;
    c->wire_bytes += wire;
    c->wire_bytes_ring_allreduce += wire_ring;
}

/* One all-reduce of n elements of `bytes_el` over tp ranks (comm_allreduce_sum_f32: reduce-scatter of
 * ceil(n / tp)-element slices, then all-gather; each rank sends 2 (tp - 1) slices, as a ring would). */
static void tp_allreduce(struct comm_model_cost *c, int tp, int64_t n, int bytes_el) {
    const int64_t sent = 2 * (int64_t)(tp - 1) * ((n + tp - 1) / tp) * bytes_el;
    const double s = (double)n * bytes_el;
    add(c, 1, sent, (double)sent, 2.0 * (tp - 1) / tp * s);
}

void comm_model_rank(const struct wan_config *c, const struct wan_dit_shape *sh, const struct par_layout *lay,
                     int sp_idx, bool guidance, const struct comm_model_dtypes *dt, struct comm_model_step *out) {
    memset(out, 0, sizeof *out);
    static const enum comm_kind kinds[COMM_MODEL_PARTS] = {COMM_ALLTOALL, COMM_BCAST, COMM_ALLREDUCE, COMM_ALLGATHER,
                                                           COMM_BCAST};
    for (int p = 0; p < COMM_MODEL_PARTS; p++)
        out->part[p].kind = kinds[p];
    const int sp = lay->sp, u = lay->ulysses, r = lay->ring, tp = lay->tp;
    CHECK(sp == u * r && sp >= 1 && tp >= 1 && sp_idx >= 0 && sp_idx < sp, "comm model: bad layout");
    const int64_t l_all = sh->frames / c->patch[0] * (sh->height / c->patch[1]) * (sh->width / c->patch[2]);
    const int64_t s = wan_dit_shard_rows(l_all, sp, u, r);
    const int64_t t0 = (int64_t)sp_idx * s;
    const int64_t l = l_all - t0 < s ? (l_all - t0 > 0 ? l_all - t0 : 0) : s; /* real rows of this shard */
    const int64_t d = c->dim, dl = d / tp, dg = dl / u, lc = sh->context_len, ni = sh->image_len;
    const int64_t out_w = c->out_channels * c->patch[0] * c->patch[1] * c->patch[2];
    out->tokens = l_all;
    out->shard = s;
    out->forwards = guidance && lay->cfg == 1 ? 2 : 1;

    /* one forward, then scaled by the forwards per step */
    struct comm_model_cost f[COMM_MODEL_PARTS];
    memset(f, 0, sizeof f);
    for (int64_t layer = 0; layer < c->num_layers; layer++) {
        if (u > 1) { /* self_attention: [s, 3 D_local] -> [u s, 3 Dg], then the output [u s, Dg] -> [s, D_local] */
            const int64_t to = s * 3 * dg * dt->act, back = s * dg * dt->act;
            add(&f[COMM_MODEL_ULYSSES], 2, (u - 1) * (to + back), (double)(u - 1) * (to + back),
                (double)(u - 1) * (to + back));
        }
        if (r > 1) { /* self_attention: r broadcasts of a [u s, 2 Dg] k|v block; this rank is the root of one */
            const int64_t blk = u * s * 2 * dg * dt->act;
            add(&f[COMM_MODEL_RING], r, blk, (double)(r - 1) * blk, (double)(r - 1) * blk);
        }
        if (tp > 1) {
            struct comm_model_cost *t = &f[COMM_MODEL_TP];
            tp_allreduce(t, tp, l, dt->stat);          /* rmsnorm_heads(q): per-row sums of squares */
            tp_allreduce(t, tp, l, dt->stat);          /* rmsnorm_heads(k) */
            tp_allreduce(t, tp, l * d, dt->act);       /* linear_row_parallel: self-attention output projection */
            tp_allreduce(t, tp, l, dt->stat);          /* rmsnorm_heads(cross q) */
            tp_allreduce(t, tp, lc, dt->stat);         /* rmsnorm_heads(cross k): [Lc] rows */
            if (ni) tp_allreduce(t, tp, ni, dt->stat); /* rmsnorm_heads(image k) */
            tp_allreduce(t, tp, l * d, dt->act);       /* linear_row_parallel: cross-attention output projection */
            tp_allreduce(t, tp, l * d, dt->act);       /* FFN second layer */
        }
    }
    if (sp > 1) { /* head: all-gather of every shard's [s, Cout pt ph pw] */
        const int64_t b = s * out_w * dt->out;
        add(&f[COMM_MODEL_HEAD], 1, b, (double)(sp - 1) * b, (double)(sp - 1) * b);
    }
    for (int p = 0; p < COMM_MODEL_PARTS; p++)
        add(&out->part[p], f[p].calls * out->forwards, f[p].bytes * out->forwards, f[p].wire_bytes * out->forwards,
            f[p].wire_bytes_ring_allreduce * out->forwards);
    if (guidance && lay->cfg == 2) { /* df_run_row: bcast of v_c from cfg rank 0, of v_u from rank 1 */
        const int64_t v = c->out_channels * sh->frames * sh->height * sh->width * dt->out;
        add(&out->part[COMM_MODEL_CFG], 2, v, (double)v, (double)v);
    }
}

void comm_model_by_kind(const struct comm_model_step *s, struct comm_stats *out) {
    memset(out, 0, sizeof *out);
    for (int p = 0; p < COMM_MODEL_PARTS; p++) {
        out->calls[s->part[p].kind] += s->part[p].calls;
        out->bytes[s->part[p].kind] += s->part[p].bytes;
    }
}

double comm_model_wire_total(const struct comm_model_step *s, bool ring_allreduce) {
    double t = 0;
    for (int p = 0; p < COMM_MODEL_PARTS; p++)
        t += ring_allreduce ? s->part[p].wire_bytes_ring_allreduce : s->part[p].wire_bytes;
    return t;
}

const char *comm_model_part_name(enum comm_model_part p) {
    static const char *const names[COMM_MODEL_PARTS] = {"ulysses", "ring", "tp", "head", "cfg"};
    return p >= 0 && p < COMM_MODEL_PARTS ? names[p] : "?";
}

/* ------------------------------------------------------------------------------------------------
 * Projection tables
 * ---------------------------------------------------------------------------------------------- */

/* Links, bytes per second per direction. */
static const struct {
    const char *name;
    double bytes_per_s;
} links[] = {
    {"NVLink 450 GB/s", 450e9},
    {"400 Gb/s", 50e9},
    {"200 Gb/s", 25e9},
    {"100 Gb/s", 12.5e9},
};
enum { N_LINKS = sizeof links / sizeof links[0] };

/* GB (1e9 bytes) with three significant digits, small amounts in MB. */
static void fmt_gb(char *buf, size_t cap, double bytes) {
    const double gb = bytes / 1e9;
    if (bytes == 0)
        snprintf(buf, cap, "-");
    else if (bytes < 1e7)
        snprintf(buf, cap, "%.3g MB", bytes / 1e6);
    else
        snprintf(buf, cap, gb >= 100 ? "%.0f" : gb >= 10 ? "%.1f" : "%.2f", gb);
}

static void fmt_s(char *buf, size_t cap, double s) {
    if (s == 0)
        snprintf(buf, cap, "0");
    else if (s < 0.1)
        snprintf(buf, cap, "%.3f", s);
    else
        snprintf(buf, cap, "%.2f", s);
}

struct proj_row {
    struct par_layout lay;
    struct comm_model_step step;
};

/* Every layout for `world` ranks: cfg 1 or 2, each tp dividing, sp the rest, sp as the default
 * Ulysses x ring split and as pure ring; only what par_layout_choose accepts. */
static int layouts_for(const struct wan_config *c, int world, bool guidance, struct par_layout *out, int cap) {
    int n = 0;
    const struct par_model_facts facts = {.heads = (int)c->num_heads, .ffn_dim = c->ffn_dim, .guidance = guidance};
    for (int cfg = 1; cfg <= (guidance ? 2 : 1); cfg++) {
        for (int tp = 1; tp <= world; tp++) {
            if (world % (cfg * tp)) continue;
            const int sp = world / (cfg * tp);
            for (int pure_ring = 0; pure_ring <= (sp > 1 ? 1 : 0); pure_ring++) {
                struct par_request req = {.sp = sp, .tp = tp, .ulysses = pure_ring ? 1 : 0, .cfg = cfg == 2 ? 2 : 1};
                struct par_layout l;
                if (par_layout_choose(&l, world, &req, &facts) < 0) {
                    err_clear();
                    continue;
                }
                bool dup = false;
                for (int i = 0; i < n; i++)
                    dup |= !memcmp(&out[i], &l, sizeof l);
                if (!dup && n < cap) out[n++] = l;
            }
        }
    }
    return n;
}

void comm_model_print_projection(FILE *f, const struct wan_config *c, const struct wan_dit_shape *sh,
                                 const struct comm_model_projection *p) {
    const double flops = wan_dit_flops(c, sh, p->causal_block_size);
    const int64_t l_all = sh->frames / c->patch[0] * (sh->height / c->patch[1]) * (sh->width / c->patch[2]);
    fprintf(f, "### %s\n\n", p->title);
    fprintf(f,
            "D %lld, %lld heads, %lld layers, FFN %lld, L = %lld tokens (latent %lldx%lldx%lld), text %lld rows; "
            "%s activations; %.0f TFLOP per forward (wan_dit_flops); a step = %s; compute at %.0f TFLOP/s per "
            "GPU, split evenly over sp x tp. Volumes: GB (1e9 bytes) each rank's link carries per step with the "
            "collectives as implemented; times: volume / link bandwidth per direction, no overlap, no latency.\n\n",
            (long long)c->dim, (long long)c->num_heads, (long long)c->num_layers, (long long)c->ffn_dim,
            (long long)l_all, (long long)sh->frames, (long long)sh->height, (long long)sh->width,
            (long long)sh->context_len, p->dt.act == 2 ? "bf16" : "f32", flops / 1e12,
            p->guidance ? "2 forwards (conditional + unconditional, guidance > 1)" : "1 forward", p->gpu_tflops);
    fprintf(f,
            "| ranks | layout | fwd/rank | Ulysses GB | ring GB | TP GB (impl.) | TP GB (ring-AR) | head GB | CFG GB "
            "| total GB/rank |");
    for (int k = 0; k < N_LINKS; k++)
        fprintf(f, " %s s |", links[k].name);
    fprintf(f, " NVLink s, TP as ring-AR | compute s | comm share NVLink / 400G |\n");
    fprintf(f, "|---|---|---|---|---|---|---|---|---|---|");
    for (int k = 0; k < N_LINKS; k++)
        fprintf(f, "---|");
    fprintf(f, "---|---|---|\n");
    for (const int *w = p->worlds; *w; w++) {
        struct par_layout lays[64];
        const int n = layouts_for(c, *w, p->guidance, lays, 64);
        for (int i = 0; i < n; i++) {
            struct comm_model_step st;
            comm_model_rank(c, sh, &lays[i], 0, p->guidance, &p->dt, &st); /* sp rank 0: a full shard */
            const double total = comm_model_wire_total(&st, false);
            const double compute = st.forwards * flops / (lays[i].sp * lays[i].tp) / (p->gpu_tflops * 1e12);
            char buf[64];
            fprintf(f, "| %d | cfg %d x sp %d (u%d x r%d) x tp %d | %d |", *w, lays[i].cfg, lays[i].sp, lays[i].ulysses,
                    lays[i].ring, lays[i].tp, st.forwards);
            for (int part = 0; part < COMM_MODEL_PARTS; part++) {
                fmt_gb(buf, sizeof buf, st.part[part].wire_bytes);
                fprintf(f, " %s |", buf);
                if (part == COMM_MODEL_TP) {
                    fmt_gb(buf, sizeof buf, st.part[part].wire_bytes_ring_allreduce);
                    fprintf(f, " %s |", buf);
                }
            }
            fmt_gb(buf, sizeof buf, total);
            fprintf(f, " **%s** |", buf);
            for (int k = 0; k < N_LINKS; k++) {
                fmt_s(buf, sizeof buf, total / links[k].bytes_per_s);
                fprintf(f, " %s |", buf);
            }
            fmt_s(buf, sizeof buf, comm_model_wire_total(&st, true) / links[0].bytes_per_s);
            fprintf(f, " %s |", buf);
            fmt_s(buf, sizeof buf, compute);
            const double c_nv = total / links[0].bytes_per_s, c_ib = total / links[1].bytes_per_s;
            fprintf(f, " %s | %.0f%% / %.0f%% |\n", buf, 100 * c_nv / (c_nv + compute), 100 * c_ib / (c_ib + compute));
        }
    }
    fprintf(f, "\n");
}
