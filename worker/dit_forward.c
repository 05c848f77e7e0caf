/* worker/dit_forward.c - `reelfarm dit-forward`: one DiT forward from an HDF5 input (spec 3).
 *
 * IN.h5: latents f32 [16, F, H, W]; timesteps f32 [F] or [1]; context f32 [Lc, text_dim];
 * I2V models also condition f32 [Cin - 16, F, H, W] and clip_features f32 [Ni, image_dim];
 * optional integer fps (0 or 1). OUT.h5: noise_pred f32 [16, F, H, W] and provenance attributes.
 * --backend cuda: the model loads on the CPU as always, then moves to GPU 0 (wan_model_to_device) and the
 * workspace is allocated there; the forward uploads the inputs and downloads the prediction itself.
 * --dtype bf16 (CUDA only): the GEMM matrices are stored in bf16 on the GPU (wan_model_to_device) and
 * op_attention runs on the bf16 tensor-core flash kernel (ctx.attention_bf16); the activations stay f32.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "model/wan_dit.h"
#include "worker/worker.h"
#if REELFARM_HAVE_CUDA
#include "kernels/cuda/kern_cuda.h"
#endif

/* The execution context of --backend: the CPU, or GPU 0 (recoverable error when there is none). */
static int open_backend(enum backend b, int threads, struct exec_ctx *ctx) {
    *ctx = exec_ctx_cpu(threads);
    if (b == BACKEND_CPU) return ERR_OK;
#if REELFARM_HAVE_CUDA
    return cuda_backend_init(ctx, 0);
#else
    return err_set(ERR_UNSUPPORTED, "--backend cuda: this build has no CUDA backend (configure with nvcc present)");
#endif
}

static void close_backend(struct exec_ctx *ctx) {
#if REELFARM_HAVE_CUDA
    cuda_backend_free(ctx); /* NULL-tolerant: nothing for a CPU context */
#else
    (void)ctx;
#endif
}

static int read_optional_f32(struct h5_file *f, const char *name, struct tensor *t) {
    memset(t, 0, sizeof *t);
    return h5_has(f, name) ? h5_read_f32(f, name, t) : ERR_OK;
}

int worker_dit_forward(const struct dit_forward_options *opt) {
    struct h5_file *in = NULL, *out = NULL;
    struct wan_model *m = NULL;
    struct wan_dit_input x;
    struct wan_dit_workspace ws;
    float *pred = NULL;
    struct exec_ctx ctx = exec_ctx_cpu(opt->threads);
    memset(&x, 0, sizeof x);
    memset(&ws, 0, sizeof ws);
    int rc;

    /* fail fast on the cheap checks: output path, then input datasets, then the model */
    if (!opt->force && fs_exists(opt->out_path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", opt->out_path);
    if (opt->weight_dtype != DTYPE_F32 && opt->weight_dtype != DTYPE_BF16)
        return err_set(ERR_INVALID_ARG, "--dtype %s: expected f32 or bf16", dtype_name(opt->weight_dtype));
    if (opt->weight_dtype == DTYPE_BF16 && opt->backend != BACKEND_CUDA)
        return err_set(ERR_INVALID_ARG, "--dtype bf16 needs --backend cuda (the CPU backend computes in f32)");
    if (opt->causal_block_size < 0)
        return err_set(ERR_INVALID_ARG, "--causal-block-size must be >= 1, got %d", opt->causal_block_size);
    rc = h5_open_read(&in, opt->in_path);
    if (rc < 0) goto end;
    static const char *const required[] = {"latents", "timesteps", "context"};
    for (size_t i = 0; i < 3; i++)
        if (!h5_has(in, required[i])) {
            rc = err_set(ERR_MISSING, "%s: no dataset '%s' (dit-forward needs latents, timesteps and context)",
                         opt->in_path, required[i]);
            goto end;
        }
    if ((rc = h5_read_f32(in, "latents", &x.latents)) < 0 || (rc = h5_read_f32(in, "timesteps", &x.timesteps)) < 0 ||
        (rc = h5_read_f32(in, "context", &x.context)) < 0 ||
        (rc = read_optional_f32(in, "condition", &x.condition)) < 0 ||
        (rc = read_optional_f32(in, "clip_features", &x.clip)) < 0)
        goto end;
    x.fps_code = -1;
    if (h5_has(in, "fps")) {
        int64_t fps = 0;
        if ((rc = h5_read_i64_scalar(in, "fps", &fps)) < 0) goto end;
        if (fps < 0 || fps > 1) {
            rc = err_set(ERR_INVALID_ARG, "%s: fps must be 0 (16 fps) or 1 (any other rate), got %lld", opt->in_path,
                         (long long)fps);
            goto end;
        }
        x.fps_code = (int)fps;
    }
    x.causal_block_size = opt->causal_block_size;

    if ((rc = open_backend(opt->backend, opt->threads, &ctx)) < 0) goto end;
    ctx.attention_bf16 = opt->weight_dtype == DTYPE_BF16; /* CUDA only (checked above): attention on tensor cores */
    double t0 = time_now();
    if ((rc = wan_model_load(&m, opt->model_dir)) < 0) goto end;
    /* CPU: nothing; CUDA: weights into one device arena (matrices in bf16 with --dtype bf16) */
    if ((rc = wan_model_to_device(m, &ctx, opt->weight_dtype)) < 0) goto end;
    const double load_s = time_now() - t0;
    struct wan_dit_shape shape;
    if ((rc = wan_dit_check_input(m, &x, &shape)) < 0) {
        err_wrap("%s: ", opt->in_path);
        goto end;
    }
    if (x.fps_code >= 0 && !m->cfg.inject_sample_info)
        LOG_INFO("%s: fps is ignored: this model has no fps embedding", opt->in_path);
    if ((rc = wan_dit_workspace_init(&ws, m, &shape)) < 0) goto end;
    const int64_t n_out = m->cfg.out_channels * shape.frames * shape.height * shape.width;
    pred = malloc((size_t)n_out * sizeof(float));
    if (!pred) {
        rc = err_set(ERR_NOMEM, "out of memory for the output");
        goto end;
    }
    struct tensor out_t =
        tensor_make(DTYPE_F32, DEVICE_CPU, pred, 4,
                    (int64_t[]){m->cfg.out_channels, shape.frames, shape.height, shape.width});
    t0 = time_now();
    wan_dit_forward(m, &ctx, &ws, &x, &out_t); /* returns with out_t downloaded (CUDA: stream synchronised) */
    const double fwd_s = time_now() - t0;
    const int64_t tokens = shape.frames / m->cfg.patch[0] * (shape.height / m->cfg.patch[1]) *
                           (shape.width / m->cfg.patch[2]);
    LOG_INFO("dit-forward backend=%s dtype=%s tokens=%lld context=%lld causal_block_size=%d load_s=%.3f "
             "forward_s=%.3f weights_mb=%.1f activations_mb=%.1f",
             backend_name(ctx.backend), dtype_name(opt->weight_dtype), (long long)tokens, (long long)shape.context_len, opt->causal_block_size,
             load_s, fwd_s, /* f32 weights mapped or converted on the CPU; the device arena on a GPU */
             m->device == DEVICE_CPU ? (double)m->n_params * 4.0 / (1 << 20) : (double)m->weight_arena.size / (1 << 20),
             (double)ws.arena.size / (1 << 20));

    if ((rc = h5_create(&out, opt->out_path, opt->force)) < 0) goto end;
    if ((rc = h5_write_f32(out, "noise_pred", pred, 4, out_t.shape)) < 0) goto end;
    if ((rc = h5_attr_set_str(out, "reelfarm_format", "reelfarm-dit-output")) < 0) goto end;
    if ((rc = h5_attr_set_i64(out, "reelfarm_format_version", 1)) < 0) goto end;
    if ((rc = h5_attr_set_str(out, "reelfarm_version", REELFARM_VERSION)) < 0) goto end;
    if ((rc = h5_attr_set_str(out, "model", opt->model_dir)) < 0) goto end;
    if ((rc = h5_attr_set_i64(out, "causal_block_size", opt->causal_block_size)) < 0) goto end;
    const char *backend_attr = ctx.backend != BACKEND_CUDA             ? "cpu-f32"
                               : opt->weight_dtype == DTYPE_BF16 ? "cuda-bf16"
                                                                 : "cuda-f32";
    if ((rc = h5_attr_set_str(out, "backend", backend_attr)) < 0) goto end;
    rc = h5_commit(&out);
end:
    h5_close(&out);
    h5_close(&in);
    wan_dit_workspace_free(&ws);
    wan_model_free(&m);
    close_backend(&ctx); /* after the device arenas are released */
    free(x.latents.data);
    free(x.timesteps.data);
    free(x.context.data);
    free(x.condition.data);
    free(x.clip.data);
    free(pred);
    return rc;
}
