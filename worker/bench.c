/* worker/bench.c - `reelfarm bench`: time DiT forwards with random weights (no download), on one
 * rank or spread over the ranks of an MPI job (the scaling benchmark, docs/scaling.md).
 *
 * Builds the config of a preset (spec section 1) with optional overrides, random weights and
 * random inputs, runs warm-up and timed steps and reports seconds, achieved GFLOP/s (from the FLOP
 * count of the spec shapes, wan_dit_flops) and memory.
 *
 * One rank, guidance <= 1 and no --json: one key=value line `bench ...` exactly as before the
 * scaling benchmark (a step is one forward).
 *
 * Otherwise (under mpirun, or with --guidance > 1, or --json) a "step" is what one denoising row
 * costs: one forward, or with guidance > 1 the conditional and the unconditional pass and their
 * combination, the two passes on the two halves of the ranks with CFG parallelism followed by
 * the two broadcasts of the flow prediction, exactly as model/df_sampler.c df_run_row does. Every
 * rank builds its tensor-parallel slice of the same random model (wan_model_init_random_tp, same
 * seed) and its workspace for the layout (wan_dit_workspace_init_par); each timed step starts
 * after a barrier; the step's wall time is the slowest rank's. The communicators' counters give,
 * per rank and collective kind, calls, bytes sent and seconds inside the collective; every rank
 * compares its counts with the communication model (worker/comm_model.h) byte for byte. Rank 0
 * prints `bench_step` and `bench_comm` key=value lines and writes the JSON report.
 *
 * --backend cuda (issue 8, float32): one process on GPU 0. The random model is drawn on the CPU as above and
 * moved into one device arena (wan_model_to_device); the workspace is allocated on the GPU before the first
 * forward; each forward uploads its inputs and downloads its prediction (part of the timed step, as in a
 * render). The key=value line adds the device's memory (cudaMemGetInfo: total - free, the most seen after
 * the warm-up and after every timed forward) and the weight and activation arenas. sp/tp/cfg parallelism
 * and mpirun are refused on CUDA for now.
 * --dtype bf16 (CUDA only, issue 8): the model's GEMM matrices are stored in bf16 on the GPU
 * (wan_model_to_device); the key=value line says dtype=bf16 and gives the weight arena's size together with
 * what the same model takes with f32 and with bf16 matrices (wan_model_device_bytes). It also sets the context's
 * attention_bf16: op_attention runs on the bf16 tensor-core flash kernel (kernels/cuda/kern_flash_attn.cu).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "io/fs.h"
#include "model/wan_dit.h"
#include "parallel/mesh.h"
#include "parallel/par_runtime.h"
#include "worker/comm_model.h"
#include "worker/worker.h"
#if REELFARM_HAVE_CUDA
#include "kernels/cuda/kern_cuda.h"
#endif

#if REELFARM_HAVE_CUDA
/* The GPU's f32 GEMM rate through op_linear (cuBLAS, no TF32) at 4096^3 (2048^3 is too short to fill an
 * H100), best of 3 after one warm-up; each run is timed between stream synchronisations. */
static double gemm_peak_gflops_cuda(const struct exec_ctx *ctx) {
    const int64_t n = 4096;
    const size_t bytes = (size_t)(n * n) * sizeof(float);
    float *a = cuda_alloc(bytes), *b = cuda_alloc(bytes), *c = cuda_alloc(bytes);
    struct tensor ta = tensor_make(DTYPE_F32, DEVICE_CUDA, a, 2, (int64_t[]){n, n});
    struct tensor tb = tensor_make(DTYPE_F32, DEVICE_CUDA, b, 2, (int64_t[]){n, n});
    struct tensor tc = tensor_make(DTYPE_F32, DEVICE_CUDA, c, 2, (int64_t[]){n, n});
    op_randn(ctx, &ta, 5, 1, 0);
    op_randn(ctx, &tb, 5, 2, 0);
    double best = 0;
    for (int r = 0; r < 4; r++) {
        cuda_sync(ctx);
        const double t0 = time_now();
        op_linear(ctx, &tc, &ta, &tb, NULL);
        cuda_sync(ctx);
        const double g = 2.0 * (double)n * n * n / (time_now() - t0) / 1e9;
        if (r > 0 && g > best) best = g; /* the first run warms up */
    }
    cuda_free(a), cuda_free(b), cuda_free(c);
    return best;
}
#endif

/* The machine's dense GEMM rate through the same op the model uses (2048^3, best of 3): the physical
 * reference printed next to the model's throughput. */
static double gemm_peak_gflops(const struct exec_ctx *ctx) {
#if REELFARM_HAVE_CUDA
    if (ctx->backend == BACKEND_CUDA) return gemm_peak_gflops_cuda(ctx);
#endif
    const int64_t n = 2048;
    float *a = malloc((size_t)(n * n) * sizeof(float)), *b = malloc((size_t)(n * n) * sizeof(float));
    float *c = malloc((size_t)(n * n) * sizeof(float));
    double best = 0;
    if (a && b && c) {
        rng_normal_f32(a, n * n, 5, 1, 0);
        rng_normal_f32(b, n * n, 5, 2, 0);
        struct tensor ta = tensor_f32_2d(a, n, n), tb = tensor_f32_2d(b, n, n), tc = tensor_f32_2d(c, n, n);
        for (int r = 0; r < 4; r++) {
            const double t0 = time_now();
            op_linear(ctx, &tc, &ta, &tb, NULL);
            const double g = 2.0 * (double)n * n * n / (time_now() - t0) / 1e9;
            if (r > 0 && g > best) best = g; /* the first run warms up */
        }
    }
    free(a), free(b), free(c);
    return best;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------------------------------------
 * One step (see the file comment)
 * ---------------------------------------------------------------------------------------------- */

struct bench_run {
    const struct wan_model *m;
    struct exec_ctx ctx;        /* where the forwards run */
    struct exec_ctx host;       /* the CPU: the CFG combine of the host predictions */
    struct wan_dit_workspace ws;
    struct wan_dit_input in;
    struct tensor ctx_c, ctx_u; /* [Lc, text_dim] conditional / unconditional context */
    struct tensor v_c, v_u;     /* [16, F, H, W] flow predictions */
    struct comm *cfg;           /* 2 ranks with CFG parallelism, else one */
    double guidance;
};

static void bench_step(struct bench_run *r) {
    if (comm_size(r->cfg) == 2) { /* as df_run_row: both passes at once, then swapped */
        const bool uncond = comm_rank(r->cfg) == 1;
        r->in.context = uncond ? r->ctx_u : r->ctx_c;
        wan_dit_forward(r->m, &r->ctx, &r->ws, &r->in, uncond ? &r->v_u : &r->v_c);
        comm_bcast(r->cfg, r->v_c.data, tensor_nbytes(&r->v_c), 0);
        comm_bcast(r->cfg, r->v_u.data, tensor_nbytes(&r->v_u), 1);
    } else {
        r->in.context = r->ctx_c;
        wan_dit_forward(r->m, &r->ctx, &r->ws, &r->in, &r->v_c);
        if (r->guidance > 1.0) {
            r->in.context = r->ctx_u;
            wan_dit_forward(r->m, &r->ctx, &r->ws, &r->in, &r->v_u);
        }
    }
    if (r->guidance > 1.0) { /* v = v_u + g (v_c - v_u), spec 3.8 */
        const int64_t c = r->v_c.shape[0], rest = tensor_numel(&r->v_c) / c;
        struct tensor vc = tensor_reshape(&r->v_c, 2, (int64_t[]){c, rest});
        struct tensor vu = tensor_reshape(&r->v_u, 2, (int64_t[]){c, rest});
        const struct tensor *terms[2] = {&vc, &vu};
        op_lincomb(&r->host, &vc, 2, (double[]){r->guidance, 1.0 - r->guidance}, terms);
    }
}

/* ------------------------------------------------------------------------------------------------
 * Per-rank record gathered to rank 0 (doubles; counts are exact below 2^53)
 * ---------------------------------------------------------------------------------------------- */

enum { K = COMM_KINDS };
struct rank_rec_layout {
    int times, calls, bytes, seconds, model_calls, model_bytes, match, rss, sp_idx, tp_idx, cfg_idx, n;
};
static struct rank_rec_layout rec_layout(int repeat) {
    struct rank_rec_layout r;
    int o = 0;
    r.times = o, o += repeat;
    r.calls = o, o += K;
    r.bytes = o, o += K;
    r.seconds = o, o += K;
    r.model_calls = o, o += K;
    r.model_bytes = o, o += K;
    r.match = o++, r.rss = o++, r.sp_idx = o++, r.tp_idx = o++, r.cfg_idx = o++;
    r.n = o;
    return r;
}

static void stats_delta(struct comm_stats *d, const struct comm_stats *after, const struct comm_stats *before) {
    for (int k = 0; k < K; k++) {
        d->calls[k] = after->calls[k] - before->calls[k];
        d->bytes[k] = after->bytes[k] - before->bytes[k];
        d->seconds[k] = after->seconds[k] - before->seconds[k];
    }
}

/* 1-minute load average (other processes share the machine), -1 if unknown. */
static double loadavg_1min(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* The collective kinds a DiT step uses (not the barrier, not the render's point-to-point messages). */
static bool kind_reported(int k) { return k != COMM_BARRIER && k != COMM_P2P; }

static double median_sorted(const double *v, int n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

static void cpu_model_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    char *text = NULL;
    size_t len = 0;
    if (fs_read_file("/proc/cpuinfo", &text, &len, (size_t)4 << 20) < 0) {
        err_clear();
        return;
    }
    const char *p = strstr(text, "model name");
    if (p && (p = strchr(p, ':'))) {
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, "\n");
        if (n >= cap) n = cap - 1;
        memcpy(buf, p, n);
        buf[n] = '\0';
    }
    free(text);
}

/* ------------------------------------------------------------------------------------------------
 * Report
 * ---------------------------------------------------------------------------------------------- */

struct bench_report {
    const struct bench_options *o;
    const struct wan_config *cfg;
    const struct par_layout *lay;
    const char *layout_desc;
    int64_t f, h, w, tokens, shard;
    int threads, world, repeat;
    double flops_forward, init_s, gemm_peak;
    const double *recs; /* world x rec.n */
    struct rank_rec_layout rec;
    const struct comm_model_step *model0; /* rank 0's model (f32) */
    /* --backend cuda */
    const char *gpu_name;
    const char *weight_dtype; /* "f32" or "bf16": the GEMM matrices on the device */
    double dev_used_peak_mb, dev_total_mb, dev_weights_mb, dev_activations_mb;
};

static cJSON *kind_obj(cJSON *parent, const char *name) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(parent, name, o);
    return o;
}

/* One collective kind over the ranks' records, per step: the most calls, bytes this rank sent (max, mean),
 * seconds (max, mean) and the communication model's bytes (max). */
struct kind_summary {
    double calls, bytes_max, bytes_mean, seconds_max, seconds_mean, model_bytes_max;
};
static struct kind_summary kind_summarise(const struct bench_report *r, int k) {
    const struct rank_rec_layout *L = &r->rec;
    struct kind_summary ks = {0};
    double bsum = 0, ssum = 0;
    for (int q = 0; q < r->world; q++) {
        const double *rc = r->recs + (size_t)q * L->n;
        const double b = rc[L->bytes + k], s = rc[L->seconds + k] / r->repeat, mb = rc[L->model_bytes + k];
        ks.calls = rc[L->calls + k] > ks.calls ? rc[L->calls + k] : ks.calls;
        ks.bytes_max = b > ks.bytes_max ? b : ks.bytes_max, bsum += b;
        ks.seconds_max = s > ks.seconds_max ? s : ks.seconds_max, ssum += s;
        ks.model_bytes_max = mb > ks.model_bytes_max ? mb : ks.model_bytes_max;
    }
    ks.bytes_mean = bsum / r->world, ks.seconds_mean = ssum / r->world;
    return ks;
}

static int write_json(const struct bench_report *r, const double *walls, double step_min, double step_med,
                      int forwards_per_step, bool match, bool oversubscribed) {
    const struct bench_options *o = r->o;
    const struct wan_config *c = r->cfg;
    cJSON *j = cJSON_CreateObject();
    char buf[256];
    cJSON_AddStringToObject(j, "tool", "reelfarm bench");
    cJSON_AddStringToObject(j, "version", REELFARM_VERSION);
    const char *rev = getenv("REELFARM_GIT_REV");
    if (rev && *rev)
        cJSON_AddStringToObject(j, "git_revision", rev);
    else
        cJSON_AddNullToObject(j, "git_revision");
    const time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(j, "date", buf);

    cJSON *mach = kind_obj(j, "machine");
    if (gethostname(buf, sizeof buf) != 0) snprintf(buf, sizeof buf, "unknown");
    buf[sizeof buf - 1] = '\0';
    cJSON_AddStringToObject(mach, "host", buf);
    cJSON_AddNumberToObject(mach, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
    cpu_model_name(buf, sizeof buf);
    cJSON_AddStringToObject(mach, "cpu", buf);
    cJSON_AddStringToObject(mach, "backend", backend_name(o->backend));
    if (o->backend == BACKEND_CUDA) {
        cJSON_AddStringToObject(mach, "gpu", r->gpu_name);
        cJSON_AddNumberToObject(mach, "gpu_mem_used_mb_peak", r->dev_used_peak_mb);
        cJSON_AddNumberToObject(mach, "gpu_mem_total_mb", r->dev_total_mb);
        cJSON_AddNumberToObject(mach, "gpu_weights_mb", r->dev_weights_mb);
        cJSON_AddNumberToObject(mach, "gpu_activations_mb", r->dev_activations_mb);
    }
    const double load = loadavg_1min(); /* other processes share the machine: the load at the end of the run */
    if (load >= 0)
        cJSON_AddNumberToObject(mach, "loadavg_1min", load);
    else
        cJSON_AddNullToObject(mach, "loadavg_1min");

    cJSON *cf = kind_obj(j, "config");
    cJSON_AddStringToObject(cf, "model_size", o->model_size);
    cJSON_AddNumberToObject(cf, "dim", (double)c->dim);
    cJSON_AddNumberToObject(cf, "heads", (double)c->num_heads);
    cJSON_AddNumberToObject(cf, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(cf, "ffn_dim", (double)c->ffn_dim);
    cJSON_AddNumberToObject(cf, "layers", (double)c->num_layers);
    cJSON_AddNumberToObject(cf, "text_dim", (double)c->text_dim);
    cJSON_AddNumberToObject(cf, "text_len", (double)o->text_len);
    cJSON_AddNumberToObject(cf, "frames", (double)o->pixel_frames);
    cJSON_AddNumberToObject(cf, "latent_frames", (double)r->f);
    cJSON_AddNumberToObject(cf, "height", (double)o->height);
    cJSON_AddNumberToObject(cf, "width", (double)o->width);
    cJSON_AddNumberToObject(cf, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(cf, "causal_block_size", o->causal_block_size);
    cJSON_AddNumberToObject(cf, "guidance", o->guidance > 1.0 ? o->guidance : 1.0);
    cJSON_AddNumberToObject(cf, "threads_per_rank", r->threads);
    cJSON_AddNumberToObject(cf, "seed", (double)o->seed);
    cJSON_AddStringToObject(cf, "dtype", r->weight_dtype);

    cJSON *ly = kind_obj(j, "layout");
    cJSON_AddNumberToObject(ly, "ranks", r->world);
    cJSON_AddNumberToObject(ly, "cfg", r->lay->cfg);
    cJSON_AddNumberToObject(ly, "sp", r->lay->sp);
    cJSON_AddNumberToObject(ly, "ulysses", r->lay->ulysses);
    cJSON_AddNumberToObject(ly, "ring", r->lay->ring);
    cJSON_AddNumberToObject(ly, "tp", r->lay->tp);
    cJSON_AddStringToObject(ly, "describe", r->layout_desc);
    cJSON_AddNumberToObject(ly, "shard_tokens", (double)r->shard);
    cJSON_AddBoolToObject(ly, "oversubscribed", oversubscribed);

    const double gflop_step = forwards_per_step * r->flops_forward / 1e9;
    cJSON *st = kind_obj(j, "step");
    cJSON_AddStringToObject(st, "definition",
                            forwards_per_step == 2
                                ? "one denoising row with guidance > 1: conditional + unconditional forward and "
                                  "their combination (with cfg 2 the two passes run at once and are exchanged)"
                                : "one DiT forward");
    cJSON_AddNumberToObject(st, "forwards_per_step", forwards_per_step);
    cJSON_AddNumberToObject(st, "warmup", o->warmup);
    cJSON_AddNumberToObject(st, "repeat", r->repeat);
    cJSON_AddItemToObject(st, "wall_s", cJSON_CreateDoubleArray(walls, r->repeat));
    cJSON_AddNumberToObject(st, "wall_s_min", step_min);
    cJSON_AddNumberToObject(st, "wall_s_median", step_med);
    cJSON_AddNumberToObject(st, "gflop", gflop_step);
    cJSON_AddNumberToObject(st, "gflops", gflop_step / step_min);
    cJSON_AddNumberToObject(st, "gflops_per_rank", gflop_step / step_min / r->world);
    cJSON_AddNumberToObject(st, "init_s", r->init_s);
    if (r->gemm_peak > 0)
        cJSON_AddNumberToObject(st, "gemm_peak_gflops", r->gemm_peak);
    else
        cJSON_AddNullToObject(st, "gemm_peak_gflops");

    /* per rank */
    const struct rank_rec_layout *L = &r->rec;
    cJSON *ranks = cJSON_AddArrayToObject(j, "ranks");
    double all_t = 0, all_c = 0;
    for (int q = 0; q < r->world; q++) {
        const double *rc = r->recs + (size_t)q * L->n;
        double tsum = 0, csum = 0;
        for (int i = 0; i < r->repeat; i++) tsum += rc[L->times + i];
        for (int k = 0; k < K; k++)
            if (kind_reported(k)) csum += rc[L->seconds + k];
        all_t += tsum, all_c += csum;
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddNumberToObject(ro, "rank", q);
        cJSON_AddNumberToObject(ro, "cfg_idx", rc[L->cfg_idx]);
        cJSON_AddNumberToObject(ro, "sp_idx", rc[L->sp_idx]);
        cJSON_AddNumberToObject(ro, "tp_idx", rc[L->tp_idx]);
        cJSON_AddNumberToObject(ro, "step_s_mean", tsum / r->repeat);
        cJSON_AddNumberToObject(ro, "comm_s_mean", csum / r->repeat);
        cJSON_AddNumberToObject(ro, "compute_s_mean", (tsum - csum) / r->repeat);
        cJSON_AddNumberToObject(ro, "peak_rss_mb", rc[L->rss]);
        cJSON_AddBoolToObject(ro, "model_match", rc[L->match] != 0);
        cJSON *pk = kind_obj(ro, "collectives");
        for (int k = 0; k < K; k++) {
            if (!kind_reported(k)) continue;
            cJSON *ko = kind_obj(pk, comm_kind_name((enum comm_kind)k));
            cJSON_AddNumberToObject(ko, "calls", rc[L->calls + k]);
            cJSON_AddNumberToObject(ko, "bytes", rc[L->bytes + k]);
            cJSON_AddNumberToObject(ko, "seconds", rc[L->seconds + k] / r->repeat);
            cJSON_AddNumberToObject(ko, "model_calls", rc[L->model_calls + k]);
            cJSON_AddNumberToObject(ko, "model_bytes", rc[L->model_bytes + k]);
        }
        cJSON_AddItemToArray(ranks, ro);
    }
    cJSON_AddNumberToObject(st, "comm_share", all_t > 0 ? all_c / all_t : 0.0); /* of the ranks' step time */

    /* per collective kind over ranks (per step) */
    cJSON *coll = kind_obj(j, "collectives");
    for (int k = 0; k < K; k++) {
        if (!kind_reported(k)) continue;
        const struct kind_summary ks = kind_summarise(r, k);
        cJSON *ko = kind_obj(coll, comm_kind_name((enum comm_kind)k));
        cJSON_AddNumberToObject(ko, "calls", ks.calls);
        cJSON_AddNumberToObject(ko, "bytes_max", ks.bytes_max);
        cJSON_AddNumberToObject(ko, "bytes_mean", ks.bytes_mean);
        cJSON_AddNumberToObject(ko, "seconds_max", ks.seconds_max);
        cJSON_AddNumberToObject(ko, "seconds_mean", ks.seconds_mean);
        cJSON_AddNumberToObject(ko, "model_bytes_max", ks.model_bytes_max);
    }

    cJSON *cm = kind_obj(j, "comm_model");
    cJSON_AddStringToObject(cm, "payload_dtype", "f32");
    cJSON_AddBoolToObject(cm, "matches_measured", match);
    cJSON *parts = kind_obj(cm, "rank0_parts");
    for (int p = 0; p < COMM_MODEL_PARTS; p++) {
        const struct comm_model_cost *mc = &r->model0->part[p];
        cJSON *po = kind_obj(parts, comm_model_part_name((enum comm_model_part)p));
        cJSON_AddStringToObject(po, "kind", comm_kind_name(mc->kind));
        cJSON_AddNumberToObject(po, "calls", (double)mc->calls);
        cJSON_AddNumberToObject(po, "bytes", (double)mc->bytes);
        cJSON_AddNumberToObject(po, "wire_bytes", mc->wire_bytes);
        cJSON_AddNumberToObject(po, "wire_bytes_ring_allreduce", mc->wire_bytes_ring_allreduce);
    }
    cJSON_AddNumberToObject(cm, "rank0_wire_bytes", comm_model_wire_total(r->model0, false));

    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return err_set(ERR_NOMEM, "out of memory for the JSON report");
    const size_t len = strlen(text);
    char *with_nl = realloc(text, len + 2);
    if (!with_nl) {
        free(text);
        return err_set(ERR_NOMEM, "out of memory for the JSON report");
    }
    with_nl[len] = '\n', with_nl[len + 1] = '\0';
    int rc = fs_write_file(o->json_path, with_nl, len + 1, true);
    free(with_nl);
    if (rc < 0) return err_wrap("--json: ");
    return ERR_OK;
}

static void print_report(const struct bench_report *r, double step_min, double step_med, int forwards_per_step,
                         bool match, bool oversubscribed) {
    const struct wan_config *c = r->cfg;
    const struct rank_rec_layout *L = &r->rec;
    double comm_max = 0, comm_sum = 0, comp_max = 0, comp_sum = 0, bytes_max = 0, bytes_sum = 0, rss_max = 0;
    double time_sum = 0; /* rank-seconds of the timed steps: comm_share = time in collectives / this */
    for (int q = 0; q < r->world; q++) {
        const double *rc = r->recs + (size_t)q * L->n;
        double tsum = 0, csum = 0, b = 0;
        for (int i = 0; i < r->repeat; i++) tsum += rc[L->times + i];
        for (int k = 0; k < K; k++)
            if (kind_reported(k)) csum += rc[L->seconds + k], b += rc[L->bytes + k];
        const double comm = csum / r->repeat, comp = (tsum - csum) / r->repeat;
        time_sum += tsum / r->repeat;
        comm_max = comm > comm_max ? comm : comm_max, comm_sum += comm;
        comp_max = comp > comp_max ? comp : comp_max, comp_sum += comp;
        bytes_max = b > bytes_max ? b : bytes_max, bytes_sum += b;
        rss_max = rc[L->rss] > rss_max ? rc[L->rss] : rss_max;
    }
    const double gflop_step = forwards_per_step * r->flops_forward / 1e9;
    printf("bench_step impl=reelfarm-%s backend=%s model=%s dim=%lld heads=%lld ffn=%lld layers=%lld frames=%lld "
           "latent_frames=%lld height=%lld width=%lld tokens=%lld context=%lld causal_block_size=%d threads=%d "
           "ranks=%d cfg=%d sp=%d ulysses=%d ring=%d tp=%d shard=%lld guidance=%g forwards_per_step=%d "
           "step_s_min=%.4f step_s_median=%.4f gflop_step=%.2f gflops=%.2f comm_s_max=%.4f comm_s_mean=%.4f "
           "compute_s_max=%.4f compute_s_mean=%.4f comm_share=%.3f bytes_step_max=%.0f bytes_step_mean=%.0f "
           "model_wire_bytes_step=%.0f model_match=%d oversubscribed=%d peak_rss_mb_max=%.1f loadavg=%.2f",
           backend_name(r->o->backend), backend_name(r->o->backend), r->o->model_size, (long long)c->dim,
           (long long)c->num_heads, (long long)c->ffn_dim,
           (long long)c->num_layers, (long long)r->o->pixel_frames, (long long)r->f, (long long)r->o->height,
           (long long)r->o->width, (long long)r->tokens, (long long)r->o->text_len, r->o->causal_block_size,
           r->threads, r->world, r->lay->cfg, r->lay->sp, r->lay->ulysses, r->lay->ring, r->lay->tp,
           (long long)r->shard, r->o->guidance > 1.0 ? r->o->guidance : 1.0, forwards_per_step, step_min, step_med,
           gflop_step, gflop_step / step_min, comm_max, comm_sum / r->world, comp_max, comp_sum / r->world,
           time_sum > 0 ? comm_sum / time_sum : 0.0, bytes_max, bytes_sum / r->world,
           comm_model_wire_total(r->model0, false), match ? 1 : 0, oversubscribed ? 1 : 0, rss_max,
           loadavg_1min());
    if (r->o->backend == BACKEND_CUDA)
        printf(" gpu=%s dtype=%s gpu_mem_used_mb_peak=%.1f gpu_mem_total_mb=%.1f gpu_weights_mb=%.1f "
               "gpu_activations_mb=%.1f",
               r->gpu_name, r->weight_dtype, r->dev_used_peak_mb, r->dev_total_mb, r->dev_weights_mb,
               r->dev_activations_mb);
    printf("\n");
    for (int k = 0; k < K; k++) {
        if (!kind_reported(k)) continue;
        const struct kind_summary ks = kind_summarise(r, k);
        printf("bench_comm kind=%s calls=%.0f bytes_max=%.0f bytes_mean=%.0f model_bytes_max=%.0f seconds_max=%.4f "
               "seconds_mean=%.4f\n",
               comm_kind_name((enum comm_kind)k), ks.calls, ks.bytes_max, ks.bytes_mean, ks.model_bytes_max,
               ks.seconds_max, ks.seconds_mean);
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------------
 * --comm-model
 * ---------------------------------------------------------------------------------------------- */

static int bench_comm_model(const struct bench_options *o, const struct wan_config *cfg, int64_t f, int64_t h,
                            int64_t w) {
    if (!(o->gpu_tflops > 0)) return err_set(ERR_INVALID_ARG, "--gpu-tflops must be > 0");
    if (par_active() && par_rank() != 0) return ERR_OK;
    const struct wan_dit_shape sh = {.frames = f, .height = h, .width = w, .context_len = o->text_len,
                                     .image_len = 0, .timestep_rows = f};
    char title[160];
    snprintf(title, sizeof title, "%s at %lldx%lld, %lld frames", o->model_size, (long long)o->width,
             (long long)o->height, (long long)o->pixel_frames);
    struct comm_model_projection p = {.title = title, .worlds = {1, 2, 4, 8, 0}, .gpu_tflops = o->gpu_tflops,
                                      .guidance = o->guidance > 1.0, .causal_block_size = o->causal_block_size,
                                      .dt = o->comm_model_f32 ? comm_model_dtypes_f32() : comm_model_dtypes_bf16()};
    if (o->comm_ranks[0] > 0) memcpy(p.worlds, o->comm_ranks, sizeof p.worlds);
    p.worlds[7] = 0;
    comm_model_print_projection(stdout, cfg, &sh, &p);
    fflush(stdout);
    return ERR_OK;
}

/* ------------------------------------------------------------------------------------------------
 * The benchmark
 * ---------------------------------------------------------------------------------------------- */

/* --backend cuda: one process, one GPU, no parallel layout (yet). */
static int check_cuda_request(const struct bench_options *o) {
    if (!backend_cuda_compiled())
        return err_set(ERR_UNSUPPORTED, "--backend cuda: this build has no CUDA backend (configure with nvcc present)");
    if (par_active() && par_world() > 1)
        return err_set(ERR_UNSUPPORTED, "--backend cuda runs on one process for now: run it without mpirun (%d ranks; "
                       "sequence, tensor and CFG parallelism on GPUs need the NCCL communicator in the forward)",
                       par_world());
    if (o->par.sp > 1 || o->par.tp > 1 || o->par.ulysses > 1 || o->par.cfg == 2)
        return err_set(ERR_UNSUPPORTED, "--backend cuda: --sp, --tp, --ulysses and --cfg-parallel are not supported on "
                       "the GPU yet (one process, one GPU)");
    return ERR_OK;
}

/* Device memory in use (total - free) into *peak_mb if larger; the total into *total_mb. */
static void sample_device_memory(const struct exec_ctx *ctx, double *peak_mb, double *total_mb) {
#if REELFARM_HAVE_CUDA
    if (ctx->backend != BACKEND_CUDA) return;
    size_t free_b = 0, total_b = 0;
    if (cuda_mem_info(&free_b, &total_b) < 0) {
        err_clear();
        return;
    }
    const double used = (double)(total_b - free_b) / (1 << 20);
    *peak_mb = used > *peak_mb ? used : *peak_mb;
    *total_mb = (double)total_b / (1 << 20);
#else
    (void)ctx, (void)peak_mb, (void)total_mb;
#endif
}

int worker_bench(const struct bench_options *o) {
    if (o->backend == BACKEND_CUDA && !o->comm_model) TRY(check_cuda_request(o));
    if (o->weight_dtype != DTYPE_F32 && o->weight_dtype != DTYPE_BF16)
        return err_set(ERR_INVALID_ARG, "--dtype %s: expected f32 or bf16", dtype_name(o->weight_dtype));
    if (o->weight_dtype == DTYPE_BF16 && o->backend != BACKEND_CUDA && !o->comm_model)
        return err_set(ERR_INVALID_ARG, "--dtype bf16 needs --backend cuda (the CPU backend computes in f32)");
    struct wan_config cfg;
    TRY(wan_config_preset(o->model_size, &cfg));
    if (o->layers > 0) cfg.num_layers = o->layers;
    if (o->heads > 0) cfg.num_heads = o->heads, cfg.dim = cfg.num_heads * cfg.head_dim;
    if (o->ffn_dim > 0) cfg.ffn_dim = o->ffn_dim;
    if (o->pixel_frames < 1 || (o->pixel_frames - 1) % 4 != 0)
        return err_set(ERR_INVALID_ARG, "--frames %lld: expected 4k+1 video frames (1, 5, 9, ..., 97, 121)",
                       (long long)o->pixel_frames);
    if (o->height < 16 || o->width < 16 || o->height % 16 || o->width % 16)
        return err_set(ERR_INVALID_ARG, "resolution %lldx%lld: width and height must be positive multiples of 16",
                       (long long)o->width, (long long)o->height);
    if (o->repeat < 1 || o->warmup < 0) return err_set(ERR_INVALID_ARG, "--repeat must be >= 1 and --warmup >= 0");
    const int64_t f = (o->pixel_frames - 1) / 4 + 1, h = o->height / 8, w = o->width / 8;
    if (o->comm_model && o->json_path)
        return err_set(ERR_INVALID_ARG, "--json: --comm-model prints tables and times nothing; drop one of them");
    if (o->comm_model) return bench_comm_model(o, &cfg, f, h, w);

    const bool guidance = o->guidance > 1.0;
    const int world = par_active() ? par_world() : 1;
    const bool legacy = world == 1 && !guidance && !o->json_path; /* the single-rank line as always */
    const struct par_model_facts facts = {.heads = (int)cfg.num_heads, .ffn_dim = cfg.ffn_dim, .guidance = guidance};
    struct par_layout lay;
    TRY(par_layout_choose(&lay, world, &o->par, &facts));
    struct par_mesh mesh;
    TRY(par_mesh_create(&mesh, &lay));
    char layout_desc[96];
    par_layout_describe(&lay, layout_desc, sizeof layout_desc);

    struct wan_model *m = NULL;
    struct bench_run run;
    memset(&run, 0, sizeof run);
    run.ctx = exec_ctx_cpu(o->threads);
    run.host = exec_ctx_cpu(o->threads);
    char gpu_name[128] = "none";
    double dev_peak_mb = 0, dev_total_mb = 0;
    const int64_t lat_n = cfg.out_channels * f * h * w;
    float *lat = NULL, *ctxv = NULL, *tsv = NULL, *pred = NULL, *pred_u = NULL;
    double *times = NULL, *recs = NULL, *mine = NULL, *walls = NULL;
    int rc = ERR_OK;
#if REELFARM_HAVE_CUDA
    if (o->backend == BACKEND_CUDA) {
        if ((rc = cuda_backend_init(&run.ctx, 0)) < 0) goto end;
        run.ctx.attention_bf16 = o->weight_dtype == DTYPE_BF16; /* --dtype bf16: attention on tensor cores too */
        cuda_device_name(gpu_name, sizeof gpu_name);
        for (char *p = gpu_name; *p; p++) /* one key=value token */
            if (*p == ' ' || *p == '=') *p = '_';
    }
#endif
    double t0 = time_now();
    if ((rc = wan_model_init_random_tp(&m, &cfg, o->seed, mesh.tp_idx, lay.tp)) < 0) goto end;
    /* what the weights take on a device with f32 and with bf16 matrices (before the move: from element counts) */
    const double weights_f32_mb = (double)wan_model_device_bytes(m, DTYPE_F32) / (1 << 20);
    const double weights_bf16_mb = (double)wan_model_device_bytes(m, DTYPE_BF16) / (1 << 20);
    /* CPU: nothing; CUDA: one device arena, the matrices in o->weight_dtype */
    if ((rc = wan_model_to_device(m, &run.ctx, o->weight_dtype)) < 0) goto end;
    const double init_s = time_now() - t0;

    lat = malloc((size_t)lat_n * sizeof(float));
    ctxv = malloc((size_t)(o->text_len * cfg.text_dim) * (guidance ? 2 : 1) * sizeof(float));
    tsv = malloc((size_t)f * sizeof(float));
    pred = malloc((size_t)lat_n * sizeof(float));
    pred_u = malloc((size_t)lat_n * sizeof(float));
    times = calloc((size_t)o->repeat, sizeof(double));
    if (!lat || !ctxv || !tsv || !pred || !pred_u || !times) {
        rc = err_set(ERR_NOMEM, "out of memory for the benchmark inputs");
        goto end;
    }
    rng_normal_f32(lat, lat_n, o->seed, 1001, 0);
    rng_normal_f32(ctxv, o->text_len * cfg.text_dim, o->seed, 1002, 0);
    if (guidance) rng_normal_f32(ctxv + o->text_len * cfg.text_dim, o->text_len * cfg.text_dim, o->seed, 1003, 0);
    for (int64_t i = 0; i < f; i++) tsv[i] = (float)(999 - (i * 997) / (f > 1 ? f - 1 : 1));
    run.m = m;
    run.in.latents = tensor_make(DTYPE_F32, DEVICE_CPU, lat, 4, (int64_t[]){cfg.out_channels, f, h, w});
    run.in.timesteps = tensor_make(DTYPE_F32, DEVICE_CPU, tsv, 1, (int64_t[]){f});
    run.ctx_c = tensor_make(DTYPE_F32, DEVICE_CPU, ctxv, 2, (int64_t[]){o->text_len, cfg.text_dim});
    run.ctx_u = guidance ? tensor_make(DTYPE_F32, DEVICE_CPU, ctxv + o->text_len * cfg.text_dim, 2,
                                       (int64_t[]){o->text_len, cfg.text_dim})
                         : run.ctx_c;
    run.in.context = run.ctx_c;
    run.in.fps_code = 1;
    run.in.causal_block_size = o->causal_block_size;
    run.v_c = tensor_make(DTYPE_F32, DEVICE_CPU, pred, 4, (int64_t[]){cfg.out_channels, f, h, w});
    run.v_u = tensor_make(DTYPE_F32, DEVICE_CPU, pred_u, 4, (int64_t[]){cfg.out_channels, f, h, w});
    run.cfg = mesh.cfg;
    run.guidance = guidance ? o->guidance : 1.0;
    struct wan_dit_shape shape;
    if ((rc = wan_dit_check_input(m, &run.in, &shape)) < 0) goto end;
    const struct wan_dit_par dit = {.sp = mesh.sp, .ulysses = mesh.ulysses, .ring = mesh.ring, .tp = mesh.tp};
    /* on the model's device, allocated once here: the timed forwards allocate nothing */
    if ((rc = wan_dit_workspace_init_par(&run.ws, m, &shape, world > 1 ? &dit : NULL)) < 0) goto end;

    /* the communication model of this rank, f32 payloads as the CPU backend sends them */
    const struct comm_model_dtypes dt32 = comm_model_dtypes_f32();
    struct comm_model_step model;
    comm_model_rank(&cfg, &shape, &lay, mesh.sp_idx, guidance, &dt32, &model);
    struct comm_stats model_kinds;
    comm_model_by_kind(&model, &model_kinds);

    for (int i = 0; i < o->warmup; i++) {
        par_barrier();
        bench_step(&run);
    }
    sample_device_memory(&run.ctx, &dev_peak_mb, &dev_total_mb);
    struct comm_stats first = {0}, sum = {0};
    bool match = true;
    for (int i = 0; i < o->repeat; i++) {
        par_barrier();
        struct comm_stats before, after, d;
        par_mesh_stats(&mesh, &before);
        t0 = time_now();
        bench_step(&run);
        times[i] = time_now() - t0; /* a forward returns after downloading its output: the GPU is done */
        sample_device_memory(&run.ctx, &dev_peak_mb, &dev_total_mb);
        par_mesh_stats(&mesh, &after);
        stats_delta(&d, &after, &before);
        if (i == 0) first = d;
        for (int k = 0; k < K; k++) {
            sum.seconds[k] += d.seconds[k];
            if (!kind_reported(k)) continue;
            match &= d.calls[k] == model_kinds.calls[k] && d.bytes[k] == model_kinds.bytes[k];
        }
    }

    const int threads = exec_ctx_threads(&run.ctx);
    const double flops = wan_dit_flops(&cfg, &shape, o->causal_block_size);
    const int64_t tokens = f * (h / 2) * (w / 2);
    const double dev_weights_mb = m->device == DEVICE_CPU ? 0 : (double)m->weight_arena.size / (1 << 20);
    const double dev_act_mb = run.ws.device == DEVICE_CPU ? 0 : (double)run.ws.arena.size / (1 << 20);
    if (legacy && o->backend == BACKEND_CUDA) {
        qsort(times, (size_t)o->repeat, sizeof *times, cmp_double);
        const double peak = gemm_peak_gflops(&run.ctx);
        printf("bench impl=reelfarm-cuda backend=cuda gpu=%s model=%s dim=%lld heads=%lld ffn=%lld layers=%lld "
               "frames=%lld latent_frames=%lld height=%lld width=%lld tokens=%lld context=%lld causal_block_size=%d "
               "dtype=%s forward_s_min=%.4f forward_s_median=%.4f gflop=%.1f gflops=%.1f tflops=%.2f "
               "gemm_peak_tflops=%.2f params_m=%.1f weights_mb=%.1f activations_mb=%.1f gpu_mem_used_mb_peak=%.1f "
               "gpu_mem_total_mb=%.1f init_s=%.2f peak_rss_mb=%.1f weights_mb_f32=%.1f weights_mb_bf16=%.1f\n",
               gpu_name, o->model_size, (long long)cfg.dim, (long long)cfg.num_heads, (long long)cfg.ffn_dim,
               (long long)cfg.num_layers, (long long)o->pixel_frames, (long long)f, (long long)o->height,
               (long long)o->width, (long long)tokens, (long long)o->text_len, o->causal_block_size,
               dtype_name(o->weight_dtype), times[0],
               times[o->repeat / 2], flops / 1e9, flops / times[0] / 1e9, flops / times[0] / 1e12, peak / 1e3,
               (double)m->n_params / 1e6, dev_weights_mb, dev_act_mb, dev_peak_mb, dev_total_mb, init_s,
               (double)mem_peak_rss() / (1 << 20), weights_f32_mb, weights_bf16_mb);
        fflush(stdout);
        goto end;
    }
    if (legacy) {
        qsort(times, (size_t)o->repeat, sizeof *times, cmp_double);
        const double peak = gemm_peak_gflops(&run.ctx);
        printf("bench impl=reelfarm-cpu backend=cpu model=%s dim=%lld heads=%lld ffn=%lld layers=%lld frames=%lld "
               "latent_frames=%lld height=%lld width=%lld tokens=%lld context=%lld causal_block_size=%d threads=%d "
               "forward_s_min=%.4f forward_s_median=%.4f gflop=%.1f gflops=%.1f gemm_peak_gflops=%.1f params_m=%.1f "
               "weights_mb=%.1f activations_mb=%.1f init_s=%.2f peak_rss_mb=%.1f\n",
               o->model_size, (long long)cfg.dim, (long long)cfg.num_heads, (long long)cfg.ffn_dim,
               (long long)cfg.num_layers, (long long)o->pixel_frames, (long long)f, (long long)o->height,
               (long long)o->width, (long long)tokens, (long long)o->text_len, o->causal_block_size, threads,
               times[0], times[o->repeat / 2], flops / 1e9, flops / times[0] / 1e9, peak, (double)m->n_params / 1e6,
               (double)m->weight_arena.size / (1 << 20), (double)run.ws.arena.size / (1 << 20), init_s,
               (double)mem_peak_rss() / (1 << 20));
        fflush(stdout);
        goto end;
    }

    /* gather every rank's record to every rank (rank 0 reports) */
    const struct rank_rec_layout L = rec_layout(o->repeat);
    mine = calloc((size_t)L.n, sizeof(double));
    recs = calloc((size_t)L.n * (size_t)world, sizeof(double));
    walls = calloc((size_t)o->repeat, sizeof(double));
    if (!mine || !recs || !walls) {
        rc = err_set(ERR_NOMEM, "out of memory for the benchmark report");
        goto end;
    }
    for (int i = 0; i < o->repeat; i++) mine[L.times + i] = times[i];
    for (int k = 0; k < K; k++) {
        mine[L.calls + k] = (double)first.calls[k];
        mine[L.bytes + k] = (double)first.bytes[k];
        mine[L.seconds + k] = sum.seconds[k];
        mine[L.model_calls + k] = (double)model_kinds.calls[k];
        mine[L.model_bytes + k] = (double)model_kinds.bytes[k];
    }
    mine[L.match] = match ? 1 : 0;
    mine[L.rss] = (double)mem_peak_rss() / (1 << 20);
    mine[L.sp_idx] = mesh.sp_idx, mine[L.tp_idx] = mesh.tp_idx, mine[L.cfg_idx] = mesh.cfg_idx;
    comm_allgather(mesh.world, mine, recs, (size_t)L.n * sizeof(double));
    if (mesh.world_rank != 0) goto end;

    bool all_match = true;
    for (int q = 0; q < world; q++) all_match &= recs[(size_t)q * L.n + L.match] != 0;
    for (int i = 0; i < o->repeat; i++) {
        walls[i] = 0;
        for (int q = 0; q < world; q++) {
            const double t = recs[(size_t)q * L.n + L.times + i];
            walls[i] = t > walls[i] ? t : walls[i];
        }
    }
    double *sorted = malloc((size_t)o->repeat * sizeof(double));
    if (!sorted) {
        rc = err_set(ERR_NOMEM, "out of memory for the benchmark report");
        goto end;
    }
    memcpy(sorted, walls, (size_t)o->repeat * sizeof(double));
    qsort(sorted, (size_t)o->repeat, sizeof *sorted, cmp_double);
    const double step_min = sorted[0], step_med = median_sorted(sorted, o->repeat);
    free(sorted);
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const bool oversubscribed = cores > 0 && (long)world * threads > cores;
    struct comm_model_step model0;
    comm_model_rank(&cfg, &shape, &lay, 0, guidance, &dt32, &model0);
    const int forwards_per_step = guidance ? 2 : 1;
    struct bench_report rep = {.o = o, .cfg = &cfg, .lay = &lay, .layout_desc = layout_desc, .f = f, .h = h, .w = w,
                               .tokens = tokens, .shard = model0.shard, .threads = threads, .world = world,
                               .repeat = o->repeat, .flops_forward = flops, .init_s = init_s, .gemm_peak = 0,
                               .recs = recs, .rec = L, .model0 = &model0, .gpu_name = gpu_name,
                               .weight_dtype = dtype_name(o->weight_dtype),
                               .dev_used_peak_mb = dev_peak_mb, .dev_total_mb = dev_total_mb,
                               .dev_weights_mb = dev_weights_mb, .dev_activations_mb = dev_act_mb};
    if (!all_match)
        LOG_WARN("measured collective calls/bytes differ from the communication model (worker/comm_model.c): "
                 "model/wan_dit.c or df_sampler.c changed what it sends");
    if (oversubscribed)
        LOG_WARN("%d ranks x %d threads on %ld cores: oversubscribed; step times are not a speed-up measurement",
                 world, threads, cores);
    print_report(&rep, step_min, step_med, forwards_per_step, all_match, oversubscribed);
    if (o->json_path) rc = write_json(&rep, walls, step_min, step_med, forwards_per_step, all_match, oversubscribed);
end:
    wan_dit_workspace_free(&run.ws);
    wan_model_free(&m);
#if REELFARM_HAVE_CUDA
    cuda_backend_free(&run.ctx); /* after the device arenas; nothing for a CPU context */
#endif
    par_mesh_destroy(&mesh);
    free(lat);
    free(ctxv);
    free(tsv);
    free(pred);
    free(pred_u);
    free(times);
    free(mine);
    free(recs);
    free(walls);
    return rc;
}
