/* model/wan_dit.c - loading the Wan DiT and its forward pass (spec 2.1-2.3, 3.2-3.9), on one rank or
 * spread over sequence- and tensor-parallel ranks (spec 9; docs/parallel.md).
 *
 * Mirrors SkyReels-V2 skyreels_v2_infer/modules/transformer.py (WanModel.forward,
 * WanAttentionBlock, WanI2VCrossAttention, Head, MLPProj) in float32, without upstream's bf16
 * rounding points. Every computation goes through kernels/ops.h, every exchange through
 * core/comm.h. Under sequence parallelism a rank runs the token-local work on its shard's rows and
 * the self-attention on whole sequences of its Ulysses head group (ring blocks broadcast in token
 * order); the results are the single-rank bits (see wan_dit.h).
 * On a CUDA context (one rank) the same code runs with the model's tensors and the workspace in device
 * arenas (wan_model_to_device, wan_dit_workspace_init); the forward's only host<->device copies are the
 * uploads of its inputs at the start and the download of its output at the end of wan_dit_forward.
 * Nothing in the forward reads or writes tensor data on the host: it is ops (kernels/ops.h) and, under
 * parallel layouts (CPU only for now), collectives on host buffers.
 */
#include "model/wan_dit.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "model/wan_vae.h"
#if REELFARM_HAVE_CUDA
#include "kernels/cuda/kern_cuda.h" /* device arenas */
#endif

/* ------------------------------------------------------------------------------------------------
 * Locating the files of a model directory
 * ---------------------------------------------------------------------------------------------- */

int wan_model_locate(const char *dir, struct wan_model_files *files) {
    memset(files, 0, sizeof *files);
    if (!fs_exists(dir)) return err_set(ERR_IO, "%s: no such model directory", dir);
    if (!fs_is_dir(dir)) return err_set(ERR_IO, "%s: not a directory (expected a model directory)", dir);

    char wdir[1024], path[1100];
    TRY(fs_join(path, sizeof path, dir, "transformer/config.json"));
    if (fs_is_file(path)) { /* Diffusers pipeline layout */
        TRY(fs_join(wdir, sizeof wdir, dir, "transformer"));
    } else {
        TRY(fs_join(path, sizeof path, dir, "config.json"));
        if (!fs_is_file(path))
            return err_set(ERR_MISSING,
                           "%s: not a model directory (expected transformer/config.json or config.json)", dir);
        snprintf(wdir, sizeof wdir, "%s", dir);
    }
    snprintf(files->config_path, sizeof files->config_path, "%s", path);

    /* An index wins; otherwise every *.safetensors file (the original layout loads them all). */
    char **names = NULL;
    size_t n = 0;
    TRY(fs_list_dir(wdir, ".safetensors.index.json", &names, &n));
    if (n > 1) {
        int rc = err_set(ERR_FORMAT, "%s: %zu safetensors index files (%s, %s, ...); expected one", wdir, n, names[0],
                         names[1]);
        fs_free_list(&names, &n);
        return rc;
    }
    if (n == 1) {
        int rc = fs_join(files->index_path, sizeof files->index_path, wdir, names[0]);
        fs_free_list(&names, &n);
        return rc;
    }
    fs_free_list(&names, &n);
    TRY(fs_list_dir(wdir, ".safetensors", &names, &n));
    /* the original layout keeps the VAE next to the DiT (Wan2.1_VAE.safetensors): not DiT weights */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (wan_vae_is_original_file_name(names[i])) {
            free(names[i]);
            continue;
        }
        names[kept++] = names[i];
    }
    n = kept;
    if (n == 0) {
        fs_free_list(&names, &n);
        return err_set(ERR_MISSING,
                       "%s: no *.safetensors weights (torch .pth/.bin checkpoints are not read; convert them to "
                       "safetensors)",
                       wdir);
    }
    files->weight_files = calloc(n, sizeof *files->weight_files);
    if (!files->weight_files) {
        fs_free_list(&names, &n);
        return err_set(ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char full[1100];
        int rc = fs_join(full, sizeof full, wdir, names[i]);
        files->weight_files[i] = rc < 0 ? NULL : strdup(full);
        if (!files->weight_files[i]) {
            files->n_weight_files = i;
            fs_free_list(&names, &n);
            wan_model_files_free(files);
            return rc < 0 ? rc : err_set(ERR_NOMEM, "out of memory");
        }
    }
    files->n_weight_files = n;
    fs_free_list(&names, &n);
    return ERR_OK;
}

void wan_model_files_free(struct wan_model_files *files) {
    for (size_t i = 0; i < files->n_weight_files; i++) free(files->weight_files[i]);
    free(files->weight_files);
    files->weight_files = NULL;
    files->n_weight_files = 0;
}

/* ------------------------------------------------------------------------------------------------
 * RoPE table (spec 3.3)
 * ---------------------------------------------------------------------------------------------- */

static int rope_build(struct wan_model *m) {
    const int64_t dh = m->cfg.head_dim, pairs = dh / 2, p_max = m->cfg.rope_max_seq_len;
    const int64_t d_axis[3] = {dh - 4 * (dh / 6), 2 * (dh / 6), 2 * (dh / 6)};
    m->rope_split[0] = (int)(pairs - 2 * (pairs / 3));
    m->rope_split[1] = m->rope_split[2] = (int)(pairs / 3);
    float *tab = arena_alloc_f32(&m->weight_arena, (size_t)(p_max * pairs * 2));
    for (int64_t p = 0; p < p_max; p++) {
        int64_t j = 0;
        for (int a = 0; a < 3; a++) {
            for (int64_t jj = 0; jj < m->rope_split[a]; jj++, j++) {
                const double omega = 1.0 / pow(10000.0, (double)(2 * jj) / (double)d_axis[a]);
                const double angle = (double)p * omega;
                tab[(p * pairs + j) * 2] = (float)cos(angle);
                tab[(p * pairs + j) * 2 + 1] = (float)sin(angle);
            }
        }
    }
    m->rope_freqs = tensor_make(DTYPE_F32, DEVICE_CPU, tab, 3, (int64_t[]){p_max, pairs, 2});
    m->rope_freqs.name = "rope_freqs";
    return ERR_OK;
}

static size_t rope_bytes(const struct wan_config *c) {
    return arena_round((size_t)(c->rope_max_seq_len * c->head_dim) * sizeof(float));
}

/* ------------------------------------------------------------------------------------------------
 * Strict loading
 * ---------------------------------------------------------------------------------------------- */

/* Tensors that upstream itself ignores on load (diffusers _keys_to_ignore_on_load_unexpected). */
static bool allowed_unexpected(const char *name) { return strstr(name, ".attn2.norm_added_q.") != NULL; }

static int detect_naming(const struct st_set *st, const char *where, enum wan_naming *naming) {
    static const char *const probe[2] = {"blocks.0.attn1.to_q.weight", "blocks.0.self_attn.q.weight"};
    bool has_d = st_find(st, probe[0]) != NULL, has_o = st_find(st, probe[1]) != NULL;
    if (has_d && has_o)
        return err_set(ERR_FORMAT, "%s: holds both Diffusers ('%s') and original ('%s') tensor names", where, probe[0],
                       probe[1]);
    if (!has_d && !has_o)
        return err_set(ERR_MISSING, "%s: no tensor '%s' (Diffusers naming) or '%s' (original naming)", where, probe[0],
                       probe[1]);
    *naming = has_d ? WAN_NAMING_DIFFUSERS : WAN_NAMING_ORIGINAL;
    return ERR_OK;
}

/* Keep tensor-parallel slice tp_rank of tp_size (see wan_model_load_tp): views, no copies. */
static int tp_slice(struct wan_model *m, int tp_rank, int tp_size) {
    const struct wan_config *c = &m->cfg;
    m->tp_rank = tp_rank;
    m->tp_size = tp_size;
    if (tp_size == 1) return ERR_OK;
    if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size || c->num_heads % tp_size || c->ffn_dim % tp_size)
        return err_set(ERR_INVALID_ARG, "tensor parallel slice %d of %d: needs a degree dividing the %lld heads and "
                       "the FFN width %lld", tp_rank, tp_size, (long long)c->num_heads, (long long)c->ffn_dim);
    const int64_t dl = c->dim / tp_size, d0 = tp_rank * dl;
    const int64_t fl = c->ffn_dim / tp_size, f0 = tp_rank * fl;
    for (int64_t i = 0; i < c->num_layers; i++) {
        struct wan_block_weights *b = &m->w.blocks[i];
        struct tensor *by_heads[] = {&b->sa_q_w, &b->sa_q_b, &b->sa_k_w, &b->sa_k_b, &b->sa_v_w, &b->sa_v_b,
                                     &b->sa_norm_q, &b->sa_norm_k, &b->ca_q_w, &b->ca_q_b, &b->ca_k_w, &b->ca_k_b,
                                     &b->ca_v_w, &b->ca_v_b, &b->ca_norm_q, &b->ca_norm_k, &b->ca_img_k_w,
                                     &b->ca_img_k_b, &b->ca_img_v_w, &b->ca_img_v_b, &b->ca_img_norm_k};
        for (size_t k = 0; k < sizeof by_heads / sizeof by_heads[0]; k++)
            if (by_heads[k]->data) *by_heads[k] = tensor_narrow(by_heads[k], 0, d0, dl);
        b->sa_o_w = tensor_narrow(&b->sa_o_w, 1, d0, dl);
        b->ca_o_w = tensor_narrow(&b->ca_o_w, 1, d0, dl);
        b->ffn1_w = tensor_narrow(&b->ffn1_w, 0, f0, fl);
        b->ffn1_b = tensor_narrow(&b->ffn1_b, 0, f0, fl);
        b->ffn2_w = tensor_narrow(&b->ffn2_w, 1, f0, fl);
    }
    return ERR_OK;
}

static int load_weights(struct wan_model *m, const char *where, int tp_rank, int tp_size) {
    const struct wan_config *c = &m->cfg;
    TRY(detect_naming(m->st, where, &m->naming));
    m->w.blocks = calloc((size_t)c->num_layers, sizeof *m->w.blocks);
    if (!m->w.blocks) return err_set(ERR_NOMEM, "out of memory");
    struct weight_decl *decls = NULL;
    size_t n = 0;
    TRY(wan_weights_declare(c, &m->w, &decls, &n));
    struct weights_summary sum;
    int rc = weights_bind(m->st, decls, n, m->naming, allowed_unexpected, where, m->config_path, &sum);
    if (rc == ERR_OK) rc = tp_slice(m, tp_rank, tp_size);
    /* f32 tensors stay in the read-only mapping; bf16/f16 (and unaligned f32) get f32 copies */
    if (rc == ERR_OK) rc = arena_init(&m->weight_arena, "weights", weights_f32_bytes(decls, n) + rope_bytes(c));
    if (rc == ERR_OK) {
        weights_to_f32(decls, n, &m->weight_arena);
        m->n_params = sum.n_params;
        m->n_tensors = sum.n_tensors;
        m->stored_dtype = sum.stored_dtype;
        rc = rope_build(m);
    }
    free(decls);
    return rc;
}

int wan_model_load(struct wan_model **out, const char *dir) { return wan_model_load_tp(out, dir, 0, 1); }

int wan_model_load_tp(struct wan_model **out, const char *dir, int tp_rank, int tp_size) {
    *out = NULL;
    struct wan_model_files files;
    TRY(wan_model_locate(dir, &files));
    struct wan_model *m = calloc(1, sizeof *m);
    int rc;
    if (!m) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->config_path, sizeof m->config_path, "%s", files.config_path);
    rc = wan_config_read(files.config_path, &m->cfg);
    if (rc < 0) goto end;
    if (files.index_path[0]) {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", files.index_path);
        rc = st_open(&m->st, files.index_path);
    } else {
        snprintf(m->weights_path, sizeof m->weights_path, "%s", files.weight_files[0]);
        rc = st_open_files(&m->st, (const char *const *)files.weight_files, files.n_weight_files);
    }
    if (rc < 0) goto end;
    rc = load_weights(m, files.index_path[0] || files.n_weight_files == 1 ? m->weights_path : dir, tp_rank, tp_size);
end:
    wan_model_files_free(&files);
    if (rc < 0) {
        wan_model_free(&m);
        return rc;
    }
    *out = m;
    return ERR_OK;
}

int wan_model_init_random(struct wan_model **out, const struct wan_config *cfg, uint64_t seed) {
    return wan_model_init_random_tp(out, cfg, seed, 0, 1);
}

int wan_model_init_random_tp(struct wan_model **out, const struct wan_config *cfg, uint64_t seed, int tp_rank,
                             int tp_size) {
    *out = NULL;
    TRY(wan_config_validate(cfg, "random model"));
    struct wan_model *m = calloc(1, sizeof *m);
    if (!m) return err_set(ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->naming = WAN_NAMING_DIFFUSERS;
    m->stored_dtype = DTYPE_F32;
    snprintf(m->dir, sizeof m->dir, "(random weights)");
    struct weight_decl *decls = NULL;
    size_t n = 0;
    int rc = ERR_OK;
    m->w.blocks = calloc((size_t)cfg->num_layers, sizeof *m->w.blocks);
    if (!m->w.blocks) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    rc = wan_weights_declare(cfg, &m->w, &decls, &n);
    if (rc < 0) goto end;
    size_t bytes = rope_bytes(cfg);
    for (size_t i = 0; i < n; i++) {
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, NULL, decls[i].ndim, decls[i].shape);
        bytes += arena_round(tensor_nbytes(&t));
    }
    rc = arena_init(&m->weight_arena, "weights", bytes);
    if (rc < 0) goto end;
    for (size_t i = 0; i < n; i++) {
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, NULL, decls[i].ndim, decls[i].shape);
        const int64_t numel = tensor_numel(&t);
        float *p = arena_alloc_f32(&m->weight_arena, (size_t)numel);
        /* fan-in scaled so activations stay O(1) through the layers */
        const int64_t fan_in = t.ndim >= 2 ? numel / t.shape[0] : 1;
        const float std = t.ndim >= 2 ? 1.0f / sqrtf((float)fan_in) : 0.1f;
        rng_normal_f32(p, numel, seed, i, 0);
        for (int64_t k = 0; k < numel; k++) p[k] *= std;
        if (t.ndim == 1 && strstr(decls[i].name[0], "norm")) /* norm gains near 1 */
            for (int64_t k = 0; k < numel; k++) p[k] += 1.0f;
        t.data = p;
        t.name = NULL;
        *decls[i].slot = t;
        m->n_params += numel;
    }
    m->n_tensors = (int64_t)n;
    rc = tp_slice(m, tp_rank, tp_size);
    if (rc == ERR_OK) rc = rope_build(m);
end:
    free(decls);
    if (rc < 0) {
        wan_model_free(&m);
        return rc;
    }
    *out = m;
    return ERR_OK;
}

void wan_model_free(struct wan_model **mp) {
    struct wan_model *m = mp ? *mp : NULL;
    if (!m) return;
    st_close(&m->st);
#if REELFARM_HAVE_CUDA
    if (m->device == DEVICE_CUDA)
        cuda_arena_free(&m->weight_arena);
    else
#endif
        arena_free(&m->weight_arena);
    free(m->w.blocks);
    free(m);
    *mp = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Device placement (issue 8): every tensor into one device arena, once, after loading
 * ---------------------------------------------------------------------------------------------- */

/* The model's tensors in table order, the RoPE table last (*n entries; caller frees *out). */
static int model_tensors(struct wan_model *m, struct tensor ***out, size_t *n) {
    struct weight_decl *decls = NULL;
    size_t nd = 0;
    TRY(wan_weights_declare(&m->cfg, &m->w, &decls, &nd));
    struct tensor **list = calloc(nd + 1, sizeof *list);
    if (!list) {
        free(decls);
        return err_set(ERR_NOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < nd; i++)
        if (decls[i].slot->data) list[k++] = decls[i].slot;
    list[k++] = &m->rope_freqs;
    free(decls);
    *out = list;
    *n = k;
    return ERR_OK;
}

/* The GEMM matrices that may be stored in bf16 on the device (spec 3.10: linear layers run in bf16 under
 * autocast upstream): every block's attention projections (self, cross, the I2V image k/v) and FFN, and the
 * text, time, time-projection, fps and image-embedding MLPs. Everything else stays f32: the patch embedding
 * (a Conv3d weight, small), the head's Linear (f32 upstream, spec 3.10), norms, biases, modulation tables,
 * the fps and positional embedding tables, and the RoPE table. They are all read by op_linear only. */
static const size_t block_matrix_offsets[] = {
    offsetof(struct wan_block_weights, sa_q_w),     offsetof(struct wan_block_weights, sa_k_w),
    offsetof(struct wan_block_weights, sa_v_w),     offsetof(struct wan_block_weights, sa_o_w),
    offsetof(struct wan_block_weights, ca_q_w),     offsetof(struct wan_block_weights, ca_k_w),
    offsetof(struct wan_block_weights, ca_v_w),     offsetof(struct wan_block_weights, ca_o_w),
    offsetof(struct wan_block_weights, ca_img_k_w), offsetof(struct wan_block_weights, ca_img_v_w),
    offsetof(struct wan_block_weights, ffn1_w),     offsetof(struct wan_block_weights, ffn2_w)};

static bool is_gemm_matrix(const struct wan_model *m, const struct tensor *t) {
    const struct wan_weights *w = &m->w;
    const struct tensor *globals[] = {&w->text1_w, &w->text2_w, &w->time1_w,   &w->time2_w,  &w->tproj_w,
                                      &w->fps1_w,  &w->fps2_w,  &w->img_ff1_w, &w->img_ff2_w};
    for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++)
        if (t == globals[i]) return true;
    const char *p = (const char *)t, *b0 = (const char *)w->blocks;
    if (!w->blocks || p < b0 || p >= (const char *)(w->blocks + m->cfg.num_layers)) return false;
    const size_t off = (size_t)(p - b0) % sizeof(struct wan_block_weights);
    for (size_t i = 0; i < sizeof block_matrix_offsets / sizeof block_matrix_offsets[0]; i++)
        if (off == block_matrix_offsets[i]) return true;
    return false;
}

/* The dtype a tensor takes on the device when the matrices are stored as matrix_dtype. */
static enum dtype device_dtype(const struct wan_model *m, const struct tensor *t, enum dtype matrix_dtype) {
    return matrix_dtype == DTYPE_BF16 && is_gemm_matrix(m, t) ? DTYPE_BF16 : DTYPE_F32;
}

size_t wan_model_device_bytes(const struct wan_model *m, enum dtype matrix_dtype) {
    struct tensor **list = NULL;
    size_t n = 0, bytes = 0;
    if (model_tensors((struct wan_model *)m, &list, &n) < 0) return 0;
    for (size_t i = 0; i < n; i++) /* from the element counts: the same answer before and after the move */
        bytes += arena_round((size_t)tensor_numel(list[i]) * dtype_size(device_dtype(m, list[i], matrix_dtype)));
    free(list);
    return bytes;
}

int wan_model_to_device(struct wan_model *m, const struct exec_ctx *ctx, enum dtype matrix_dtype) {
    if (matrix_dtype != DTYPE_F32 && matrix_dtype != DTYPE_BF16)
        return err_set(ERR_INVALID_ARG, "weights on the device: %s; expected f32 or bf16", dtype_name(matrix_dtype));
    const enum device dev = ctx->backend == BACKEND_CUDA ? DEVICE_CUDA : DEVICE_CPU;
    if (m->device == dev) {
        if (dev == DEVICE_CPU && matrix_dtype != DTYPE_F32)
            return err_set(ERR_UNSUPPORTED, "bf16 weights: the CPU backend computes in f32 (use --backend cuda)");
        if (dev == DEVICE_CUDA && matrix_dtype != m->matrix_dtype)
            return err_set(ERR_UNSUPPORTED, "the model is already on the GPU with %s matrices, not %s",
                           dtype_name(m->matrix_dtype), dtype_name(matrix_dtype));
        return ERR_OK;
    }
    if (dev == DEVICE_CPU)
        return err_set(ERR_UNSUPPORTED, "the model is on the GPU; moving it back to the CPU is not implemented");
#if !REELFARM_HAVE_CUDA
    return err_set(ERR_UNSUPPORTED, "this build has no CUDA backend");
#else
    if (m->tp_size != 1)
        return err_set(ERR_UNSUPPORTED, "tensor parallel slice %d of %d: only whole models (tp = 1) run on the CUDA "
                       "backend for now", m->tp_rank, m->tp_size);
    struct tensor **list = NULL;
    size_t n = 0, bytes = 0, staging_n = 0;
    TRY(model_tensors(m, &list, &n));
    for (size_t i = 0; i < n; i++) {
        /* tp = 1: no slices, so every tensor is a whole contiguous f32 tensor (converted or mapped) */
        CHECK(list[i]->dtype == DTYPE_F32 && list[i]->device == DEVICE_CPU && tensor_is_contiguous(list[i]),
              "wan_model_to_device: tensor %zu is not a contiguous host f32 tensor", i);
        const enum dtype dt = device_dtype(m, list[i], matrix_dtype);
        bytes += arena_round((size_t)tensor_numel(list[i]) * dtype_size(dt));
        if (dt == DTYPE_BF16 && (size_t)tensor_numel(list[i]) > staging_n) staging_n = (size_t)tensor_numel(list[i]);
    }
    /* host staging for the bf16 conversions: one buffer of the largest matrix, reused (an upload from pageable
     * memory returns once the source may be reused) */
    uint16_t *staging = NULL;
    if (staging_n > 0 && !(staging = malloc(staging_n * sizeof *staging))) {
        free(list);
        return err_set(ERR_NOMEM, "model %s: out of host memory for a %.1f MiB bf16 staging buffer", m->dir,
                       (double)(staging_n * sizeof *staging) / (1 << 20));
    }
    struct arena dev_arena;
    int rc = cuda_arena_init(&dev_arena, "weights (cuda)", bytes);
    if (rc < 0) {
        free(list);
        free(staging);
        return err_wrap("model %s: ", m->dir);
    }
    size_t n_bf16 = 0;
    for (size_t i = 0; i < n; i++) {
        struct tensor *t = list[i];
        const enum dtype dt = device_dtype(m, t, matrix_dtype);
        struct tensor d = tensor_make(dt, DEVICE_CUDA, NULL, t->ndim, t->shape);
        d.data = arena_alloc(&dev_arena, tensor_nbytes(&d));
        d.name = t->name;
        if (dt == DTYPE_F32) {
            op_upload(ctx, &d, t); /* pageable source: complete on return */
        } else { /* round to nearest even on the host (core/dtype.h), then upload */
            const int64_t numel = tensor_numel(t);
            const float *src = (const float *)t->data;
            for (int64_t e = 0; e < numel; e++) staging[e] = f32_to_bf16(src[e]);
            struct tensor h = tensor_make(DTYPE_BF16, DEVICE_CPU, staging, t->ndim, t->shape);
            op_upload(ctx, &d, &h); /* pageable source: staging may be reused on return */
            n_bf16++;
        }
        *t = d;
    }
    cuda_sync(ctx);
    free(list);
    free(staging);
    /* op_linear's bf16 copy of x, reserved now so that no forward allocates it */
    if (matrix_dtype == DTYPE_BF16) cuda_scratch_reserve(ctx, CUDA_LINEAR_SCRATCH_BYTES);
    /* the host copies are no longer referenced: the converted tensors and the checkpoint mapping */
    arena_free(&m->weight_arena);
    st_close(&m->st);
    m->weight_arena = dev_arena;
    m->device = DEVICE_CUDA;
    m->matrix_dtype = matrix_dtype;
    LOG_INFO("model on the GPU: tensors=%zu bf16_matrices=%zu matrix_dtype=%s weights_mb=%.1f", n, n_bf16,
             dtype_name(matrix_dtype), (double)bytes / (1 << 20));
    return ERR_OK;
#endif
}

/* ------------------------------------------------------------------------------------------------
 * Input validation (recoverable: names the dataset and what was expected)
 * ---------------------------------------------------------------------------------------------- */

int wan_dit_check_input(const struct wan_model *m, const struct wan_dit_input *in, struct wan_dit_shape *sh) {
    const struct wan_config *c = &m->cfg;
    char s[96];
    memset(sh, 0, sizeof *sh);
    const struct tensor *lat = &in->latents;
    const int64_t lat_c = c->out_channels;
    if (lat->ndim != 4 || lat->shape[0] != lat_c)
        return err_set(ERR_SHAPE, "latents: expected [%lld, F, H, W], found %s", (long long)lat_c,
                       tensor_shape_str(s, sizeof s, lat));
    const int64_t f = lat->shape[1], h = lat->shape[2], w = lat->shape[3];
    if (f < 1 || h < 1 || w < 1) return err_set(ERR_SHAPE, "latents: empty grid %s", tensor_shape_str(s, sizeof s, lat));
    if (f % c->patch[0] || h % c->patch[1] || w % c->patch[2])
        return err_set(ERR_SHAPE, "latents: frames %lld, height %lld and width %lld must be multiples of the patch %dx%dx%d",
                       (long long)f, (long long)h, (long long)w, c->patch[0], c->patch[1], c->patch[2]);
    const int64_t grid[3] = {f / c->patch[0], h / c->patch[1], w / c->patch[2]};
    for (int a = 0; a < 3; a++)
        if (grid[a] > c->rope_max_seq_len)
            return err_set(ERR_SHAPE, "latents: grid extent %lld exceeds the model's %lld RoPE positions",
                           (long long)grid[a], (long long)c->rope_max_seq_len);
    const int64_t cond_c = c->in_channels - lat_c;
    if (cond_c > 0) {
        const int64_t want[4] = {cond_c, f, h, w};
        if (!in->condition.data)
            return err_set(ERR_MISSING, "condition: this model takes %lld input channels; the %lld beyond the latents "
                                        "must be given as 'condition' [%lld, F, H, W]",
                           (long long)c->in_channels, (long long)cond_c, (long long)cond_c);
        if (!tensor_has_shape(&in->condition, 4, want))
            return err_set(ERR_SHAPE, "condition: expected [%lld, %lld, %lld, %lld], found %s", (long long)cond_c,
                           (long long)f, (long long)h, (long long)w, tensor_shape_str(s, sizeof s, &in->condition));
    } else if (in->condition.data) {
        return err_set(ERR_UNEXPECTED, "condition: this model takes only the %lld latent channels", (long long)lat_c);
    }
    const struct tensor *ts = &in->timesteps;
    if (ts->ndim != 1 || (ts->shape[0] != f && ts->shape[0] != 1))
        return err_set(ERR_SHAPE, "timesteps: expected [%lld] (one per latent frame) or [1], found %s", (long long)f,
                       tensor_shape_str(s, sizeof s, ts));
    const float *tv = ts->data;
    for (int64_t i = 0; i < ts->shape[0]; i++)
        if (!isfinite(tv[i]))
            return err_set(ERR_FORMAT, "timesteps: entry %lld is not a finite number", (long long)i);
    const struct tensor *ctxt = &in->context;
    if (ctxt->ndim != 2 || ctxt->shape[1] != c->text_dim || ctxt->shape[0] < 1)
        return err_set(ERR_SHAPE, "context: expected [L, %lld] with L >= 1, found %s", (long long)c->text_dim,
                       tensor_shape_str(s, sizeof s, ctxt));
    int64_t ni = 0;
    if (c->has_image) {
        if (!in->clip.data) return err_set(ERR_MISSING, "clip_features: required by this image-to-video model");
        if (in->clip.ndim != 2 || in->clip.shape[1] != c->image_dim || in->clip.shape[0] < 1)
            return err_set(ERR_SHAPE, "clip_features: expected [N, %lld], found %s", (long long)c->image_dim,
                           tensor_shape_str(s, sizeof s, &in->clip));
        if (c->pos_embed_seq_len && in->clip.shape[0] != c->pos_embed_seq_len)
            return err_set(ERR_SHAPE, "clip_features: this model's image position embedding needs %lld rows, found %lld",
                           (long long)c->pos_embed_seq_len, (long long)in->clip.shape[0]);
        ni = in->clip.shape[0];
    } else if (in->clip.data) {
        return err_set(ERR_UNEXPECTED, "clip_features: this text-to-video model has no image branch");
    }
    if (in->fps_code < -1 || in->fps_code > 1)
        return err_set(ERR_INVALID_ARG, "fps: must be 0 (16 fps) or 1 (any other rate), got %d", in->fps_code);
    if (in->causal_block_size < 0)
        return err_set(ERR_INVALID_ARG, "causal block size must be >= 1, got %d", in->causal_block_size);
    if (in->causal_block_size > 0 && grid[0] % in->causal_block_size != 0)
        return err_set(ERR_INVALID_ARG, "causal block size %d does not divide the %lld latent frames",
                       in->causal_block_size, (long long)grid[0]);
    sh->frames = f, sh->height = h, sh->width = w;
    sh->context_len = ctxt->shape[0];
    sh->image_len = ni;
    sh->timestep_rows = ts->shape[0];
    return ERR_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Workspace: every activation of one forward, carved from one arena
 * ---------------------------------------------------------------------------------------------- */

/* The FFN runs in chunks of at most ffn_rows tokens: ffn1 + GELU of a chunk into the hidden buffer [ffn_rows,
 * Fd_local], then ffn2 into the chunk's output rows. ffn_rows is the most rows whose hidden activations fit in
 * FFN_HIDDEN_BYTES (4854 rows for the 14B model, 7489 for the 1.3B; Fd_local / Fd of that under tensor
 * parallelism): large enough for full-speed GEMMs, small against one [tokens, D] buffer at 720P (2.3 GB). Row
 * chunks of a linear are bit-identical to the whole call (kernels/cpu/kern_linear.c: kern_sgemm_row_stable) and
 * GELU is elementwise, so the chunk size never changes a result on the CPU. REELFARM_FFN_CHUNK_ROWS (tests only)
 * overrides the row count when a workspace is planned. */
enum { FFN_HIDDEN_BYTES = 256 << 20 };

static int64_t ffn_chunk_rows(int64_t shard, int64_t ffn_local) {
    int64_t rows = (int64_t)FFN_HIDDEN_BYTES / (ffn_local * (int64_t)sizeof(float));
    const char *env = getenv("REELFARM_FFN_CHUNK_ROWS");
    if (env && *env) {
        char *end;
        const long long v = strtoll(env, &end, 10);
        CHECK(*end == '\0' && v >= 1, "REELFARM_FFN_CHUNK_ROWS=%s: expected a positive row count", env);
        rows = v;
    }
    if (rows < 1) rows = 1;
    return shard < rows ? (shard > 0 ? shard : 1) : rows;
}

struct wan_dit_bufs {
    int64_t l, hp, wp, g, ni, lc, ffn_rows;
    /* Parallel layout (single rank: l_all = shard = l, t0 = 0, heads = H, d_local = D, ffn_local = Fd). */
    int64_t l_all;          /* L: tokens of the whole window */
    int64_t shard;          /* s: token rows per sequence-parallel rank, padding included */
    int64_t t0;             /* global token index of local row 0; l = real rows of this shard */
    int64_t heads, d_local, ffn_local; /* what this tensor-parallel rank projects */
    struct tensor lat_in;   /* [Cin, F, H, W] latents (+ condition) on the device */
    struct tensor patches;  /* [L, Cin pt ph pw] (every token: the shard's rows are taken from it) */
    struct tensor x;        /* [s, D] residual stream */
    struct tensor u;        /* [s, D] normed / modulated input, then the attention output (first D_local columns) */
    /* One region reused across the phases of a block (spec 3.6): q/k/v while attention runs; once it has run,
     * the output projections and the FFN write [s, D] at its start (y) and the FFN's hidden chunk after y. */
    struct tensor qkv;      /* [s, 3 D_local] */
    struct tensor y;        /* [s, D] projection / FFN output, over the region's start (q/k/v dead) */
    struct tensor hidden;   /* [ffn_rows, Fd_local] after y (q/k/v dead) */
    struct tensor ctx_in;   /* [Lc, text_dim] */
    struct tensor ctx;      /* [Ni + Lc, D] embedded context (image rows first) */
    struct tensor ctx_tmp;  /* [Lc, D] */
    struct tensor ck, cv;   /* [Lc, D_local] cross-attention keys/values */
    struct tensor clip_in;  /* [Ni, image_dim] */
    struct tensor img_a, img_b; /* [Ni, image_dim] */
    struct tensor ik, iv;   /* [Ni, D_local] */
    struct tensor tsteps;   /* [G] */
    struct tensor sinus;    /* [G, freq_dim] */
    struct tensor e;        /* [G, D] time embedding */
    struct tensor tmp;      /* [G, D] */
    struct tensor e0;       /* [G, 6D] time projection (+ fps) */
    struct tensor mods;     /* [G, 6D] per-block modulation */
    struct tensor fps_a;    /* [1, D] */
    struct tensor fps_b;    /* [1, 6D] */
    struct tensor head_mod; /* [G, 2D] */
    struct tensor out_tok;  /* [s, Cout pt ph pw] */
    struct tensor out_all;  /* [sp s, Cout pt ph pw] every shard's head output (sequence parallel) */
    struct tensor out;      /* [Cout, F, H, W] */
    /* Ulysses (u > 1): this rank's head group over its whole ring block of u s tokens */
    struct tensor qkv_full;  /* [u s, 3 Dg], Dg = D_local / u */
    struct tensor attn_full; /* [u s, Dg] */
    struct tensor a2a;       /* [s, 3 D_local] packed all-to-all blocks */
    /* ring (r > 1): the broadcast key/value block and the streaming-softmax state */
    struct tensor kv_blk;    /* [u s, 2 Dg] */
    struct attn_state ring_state;
    /* tensor parallelism (tp > 1): all-gathered partial sums */
    struct tensor sumsq;     /* [max(s, Lc, Ni)] per-row sums of squares */
    struct tensor reduce;    /* all-reduce scratch: 2 (max(s, Lc, Ni) D + tp) */
};

static struct tensor ws_tensor(struct arena *a, enum device dev, int ndim, const int64_t *shape) {
    struct tensor t = tensor_make(DTYPE_F32, dev, NULL, ndim, shape);
    t.data = arena_alloc(a, tensor_nbytes(&t) ? tensor_nbytes(&t) : 4);
    return t;
}
#define WS1(a, n0) ws_tensor((a), dev, 1, (int64_t[]){(n0)})
#define WS2(a, n0, n1) ws_tensor((a), dev, 2, (int64_t[]){(n0), (n1)})

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        const int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int64_t wan_dit_shard_rows(int64_t l, int sp, int ulysses, int ring) {
    if (sp <= 1) return l;
    int64_t s = (l + sp - 1) / sp;
    if (ring > 1) {
        const int64_t q = OP_ATTENTION_KEY_TILE / gcd64(OP_ATTENTION_KEY_TILE, ulysses);
        s = (s + q - 1) / q * q;
    }
    return s;
}

/* Carve every buffer from arena a (a measuring arena only counts); the tensors are on the model's device. */
static void ws_carve(struct arena *a, const struct wan_model *m, const struct wan_dit_shape *sh,
                     const struct wan_dit_par *par, struct wan_dit_bufs *b) {
    const struct wan_config *c = &m->cfg;
    const enum device dev = m->device;
    memset(b, 0, sizeof *b);
    const int64_t d = c->dim, pp = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    const int sp = comm_size(par->sp), u = comm_size(par->ulysses), r = comm_size(par->ring), tp = m->tp_size;
    b->hp = sh->height / c->patch[1];
    b->wp = sh->width / c->patch[2];
    b->l_all = sh->frames / c->patch[0] * b->hp * b->wp;
    b->shard = wan_dit_shard_rows(b->l_all, sp, u, r);
    b->t0 = comm_rank(par->sp) * b->shard;
    b->l = b->l_all - b->t0 < b->shard ? (b->l_all - b->t0 > 0 ? b->l_all - b->t0 : 0) : b->shard;
    b->heads = c->num_heads / tp;
    b->d_local = d / tp;
    b->ffn_local = c->ffn_dim / tp;
    b->g = sh->timestep_rows;
    b->ni = sh->image_len;
    b->lc = sh->context_len;
    const int64_t s = b->shard, dl = b->d_local, dg = dl / u, out_w = c->out_channels * pp;
    b->ffn_rows = ffn_chunk_rows(s, b->ffn_local);
    b->lat_in = ws_tensor(a, dev, 4, (int64_t[]){c->in_channels, sh->frames, sh->height, sh->width});
    b->patches = WS2(a, b->l_all, c->in_channels * pp);
    b->x = WS2(a, s, d);
    b->u = WS2(a, s, d);
    /* the region: max(q/k/v, y + hidden) floats; hidden starts on an arena_round boundary */
    const int64_t y_n = (int64_t)(arena_round((size_t)(s * d) * sizeof(float)) / sizeof(float));
    const int64_t qkv_n = s * 3 * dl, out_n = y_n + b->ffn_rows * b->ffn_local;
    struct tensor region = WS1(a, qkv_n > out_n ? qkv_n : out_n);
    b->qkv = tensor_make(DTYPE_F32, dev, region.data, 2, (int64_t[]){s, 3 * dl});
    b->y = tensor_make(DTYPE_F32, dev, region.data, 2, (int64_t[]){s, d});
    b->hidden = tensor_make(DTYPE_F32, dev, region.data ? (float *)region.data + y_n : NULL, 2,
                            (int64_t[]){b->ffn_rows, b->ffn_local});
    b->ctx_in = WS2(a, b->lc, c->text_dim);
    b->ctx = WS2(a, b->ni + b->lc, d);
    b->ctx_tmp = WS2(a, b->lc, d);
    b->ck = WS2(a, b->lc, dl);
    b->cv = WS2(a, b->lc, dl);
    if (b->ni) {
        b->clip_in = WS2(a, b->ni, c->image_dim);
        b->img_a = WS2(a, b->ni, c->image_dim);
        b->img_b = WS2(a, b->ni, c->image_dim);
        b->ik = WS2(a, b->ni, dl);
        b->iv = WS2(a, b->ni, dl);
    }
    b->tsteps = ws_tensor(a, dev, 1, (int64_t[]){b->g});
    b->sinus = WS2(a, b->g, c->freq_dim);
    b->e = WS2(a, b->g, d);
    b->tmp = WS2(a, b->g, d);
    b->e0 = WS2(a, b->g, 6 * d);
    b->mods = WS2(a, b->g, 6 * d);
    b->fps_a = WS2(a, 1, d);
    b->fps_b = WS2(a, 1, 6 * d);
    b->head_mod = WS2(a, b->g, 2 * d);
    b->out_tok = WS2(a, s, out_w);
    if (sp > 1) b->out_all = WS2(a, sp * s, out_w);
    b->out = ws_tensor(a, dev, 4, (int64_t[]){c->out_channels, sh->frames, sh->height, sh->width});
    if (u > 1) {
        b->qkv_full = WS2(a, u * s, 3 * dg);
        b->attn_full = WS2(a, u * s, dg);
        b->a2a = WS2(a, s, 3 * dl);
    }
    if (r > 1) {
        const int64_t hg = b->heads / u;
        b->kv_blk = WS2(a, u * s, 2 * dg);
        b->ring_state.m = WS2(a, hg, u * s);
        b->ring_state.l = WS2(a, hg, u * s);
        b->ring_state.o = WS2(a, u * s, dg);
    }
    if (tp > 1) {
        int64_t rows = s > b->lc ? s : b->lc;
        if (b->ni > rows) rows = b->ni;
        b->sumsq = WS1(a, rows);
        b->reduce = WS1(a, 2 * (rows * d + tp)); /* comm_allreduce_sum_f32's scratch */
    }
}

static const struct wan_dit_par no_par;

size_t wan_dit_workspace_bytes(const struct wan_model *m, const struct wan_dit_shape *shape) {
    struct arena a;
    arena_init_measure(&a, "activations");
    struct wan_dit_bufs b;
    ws_carve(&a, m, shape, &no_par, &b);
    return a.used;
}

int wan_dit_workspace_init(struct wan_dit_workspace *ws, const struct wan_model *m, const struct wan_dit_shape *shape) {
    return wan_dit_workspace_init_par(ws, m, shape, NULL);
}

int wan_dit_workspace_init_par(struct wan_dit_workspace *ws, const struct wan_model *m,
                               const struct wan_dit_shape *shape, const struct wan_dit_par *par) {
    memset(ws, 0, sizeof *ws);
    ws->shape = *shape;
    ws->par = par ? *par : no_par;
    ws->device = m->device;
    const struct wan_config *c = &m->cfg;
    const int sp = comm_size(ws->par.sp), u = comm_size(ws->par.ulysses), r = comm_size(ws->par.ring);
    const int64_t tokens = shape->frames / c->patch[0] * (shape->height / c->patch[1]) * (shape->width / c->patch[2]);
    if (sp != u * r)
        return err_set(ERR_INVALID_ARG, "sequence parallel group of %d ranks is not ulysses %d x ring %d", sp, u, r);
    if (sp > tokens)
        return err_set(ERR_INVALID_ARG, "sequence parallel degree %d exceeds the %lld tokens of a %lldx%lldx%lld latent "
                       "window; use at most %lld ranks", sp, (long long)tokens, (long long)shape->frames,
                       (long long)shape->height, (long long)shape->width, (long long)tokens);
    if (comm_size(ws->par.tp) != m->tp_size)
        return err_set(ERR_INVALID_ARG, "tensor parallel group of %d ranks, but the model was loaded as slice %d of %d",
                       comm_size(ws->par.tp), m->tp_rank, m->tp_size);
    if ((c->num_heads / m->tp_size) % u != 0)
        return err_set(ERR_INVALID_ARG, "ulysses degree %d does not divide the %lld heads of a tensor parallel rank", u,
                       (long long)(c->num_heads / m->tp_size));
    if (m->device != DEVICE_CPU && (sp > 1 || comm_size(ws->par.tp) > 1))
        return err_set(ERR_UNSUPPORTED, "sequence parallel %d x tensor parallel %d: the forward on a GPU runs on one "
                       "rank for now (its collectives take host buffers)", sp, comm_size(ws->par.tp));
    ws->bufs = calloc(1, sizeof *ws->bufs);
    if (!ws->bufs) return err_set(ERR_NOMEM, "out of memory");
    struct arena measure;
    arena_init_measure(&measure, "activations");
    struct wan_dit_bufs probe;
    ws_carve(&measure, m, shape, &ws->par, &probe);
    /* the one allocation of the workspace: nothing in the forward (the denoising loop) allocates */
    int rc;
#if REELFARM_HAVE_CUDA
    if (ws->device == DEVICE_CUDA)
        rc = cuda_arena_init(&ws->arena, "activations (cuda)", measure.used); /* zeroed */
    else
#endif
        rc = arena_init(&ws->arena, "activations", measure.used);
    if (rc < 0) {
        free(ws->bufs);
        ws->bufs = NULL;
        return rc;
    }
    if (ws->device == DEVICE_CPU) memset(ws->arena.base, 0, measure.used); /* padding rows start zero and stay finite */
    ws_carve(&ws->arena, m, shape, &ws->par, ws->bufs);
    return ERR_OK;
}

void wan_dit_workspace_free(struct wan_dit_workspace *ws) {
#if REELFARM_HAVE_CUDA
    if (ws->device == DEVICE_CUDA)
        cuda_arena_free(&ws->arena);
    else
#endif
        arena_free(&ws->arena);
    free(ws->bufs);
    ws->bufs = NULL;
}

/* ------------------------------------------------------------------------------------------------
 * Forward
 * ---------------------------------------------------------------------------------------------- */

/* Column block [col0, col0 + n) of a rows tensor. */
static struct tensor cols(const struct tensor *t, int64_t col0, int64_t n) { return tensor_narrow(t, 1, col0, n); }
static struct tensor rows(const struct tensor *t, int64_t row0, int64_t n) { return tensor_narrow(t, 0, row0, n); }
/* A 1-D or [1, 6, D]-like parameter seen as one flat row [n]. */
static struct tensor flat(const struct tensor *t) { return tensor_reshape(t, 1, (int64_t[]){tensor_numel(t)}); }
/* Block j of a buffer cut into consecutive [n0, n1] rows tensors. */
static struct tensor block2(const struct tensor *buf, int64_t j, int64_t n0, int64_t n1) {
    return tensor_make(DTYPE_F32, buf->device, (float *)buf->data + j * n0 * n1, 2, (int64_t[]){n0, n1});
}

/* Time embedding e [G, D] and projection e0 [G, 6D] (+ fps), spec 3.4. */
static void time_embedding(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_bufs *b, int fps_code) {
    const struct wan_weights *w = &m->w;
    op_timestep_sinusoid(ctx, &b->sinus, &b->tsteps);
    op_linear(ctx, &b->tmp, &b->sinus, &w->time1_w, &w->time1_b);
    op_silu(ctx, &b->tmp, &b->tmp);
    op_linear(ctx, &b->e, &b->tmp, &w->time2_w, &w->time2_b);
    op_silu(ctx, &b->tmp, &b->e);
    op_linear(ctx, &b->e0, &b->tmp, &w->tproj_w, &w->tproj_b);
    if (m->cfg.inject_sample_info) {
        struct tensor g = rows(&w->fps_emb, fps_code, 1); /* [1, D] */
        op_linear(ctx, &b->fps_a, &g, &w->fps1_w, &w->fps1_b);
        op_silu(ctx, &b->fps_a, &b->fps_a);
        op_linear(ctx, &b->fps_b, &b->fps_a, &w->fps2_w, &w->fps2_b);
        struct tensor fps_row = tensor_row(&b->fps_b, 0);
        op_add_row(ctx, &b->e0, &b->e0, &fps_row); /* added to e0 only, not e */
    }
}

/* Embedded context [Ni + Lc, D]: image tokens (I2V) first, then text (spec 3.5). */
static void context_embedding(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_bufs *b) {
    const struct wan_weights *w = &m->w;
    struct tensor txt = rows(&b->ctx, b->ni, b->lc);
    op_linear(ctx, &b->ctx_tmp, &b->ctx_in, &w->text1_w, &w->text1_b);
    op_gelu_tanh(ctx, &b->ctx_tmp, &b->ctx_tmp);
    op_linear(ctx, &txt, &b->ctx_tmp, &w->text2_w, &w->text2_b);
    if (b->ni) { /* MLPProj: LN(1e-5) -> Linear -> GELU(erf) -> Linear -> LN(1e-5) */
        struct tensor img = rows(&b->ctx, 0, b->ni);
        if (m->cfg.pos_embed_seq_len) {
            struct tensor pos = tensor_reshape(&w->img_pos, 2, (int64_t[]){b->ni, m->cfg.image_dim});
            op_gated_add(ctx, &b->clip_in, &pos, NULL, 1, 0);
        }
        op_layernorm(ctx, &b->img_a, &b->clip_in, &w->img_n1_w, &w->img_n1_b, 1e-5f);
        op_linear(ctx, &b->img_b, &b->img_a, &w->img_ff1_w, &w->img_ff1_b);
        op_gelu_erf(ctx, &b->img_b, &b->img_b);
        op_linear(ctx, &img, &b->img_b, &w->img_ff2_w, &w->img_ff2_b);
        op_layernorm(ctx, &img, &img, &w->img_n2_w, &w->img_n2_b, 1e-5f);
    }
}

/* RMSNorm across all heads (spec 3.6: width D). Under tensor parallelism a rank holds D / tp
 * columns: the per-row sums of squares are all-reduced first. */
static void rmsnorm_heads(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_bufs *b,
                          struct comm *tp, struct tensor *x, const struct tensor *gamma) {
    const float eps = (float)m->cfg.eps;
    if (comm_size(tp) == 1) {
        op_rmsnorm(ctx, x, x, gamma, eps);
        return;
    }
    struct tensor ss = rows(&b->sumsq, 0, x->shape[0]);
    op_row_sumsq(ctx, &ss, x);
    comm_allreduce_sum_f32(tp, ss.data, (size_t)x->shape[0], b->reduce.data);
    op_rmsnorm_given_sumsq(ctx, x, x, &ss, m->cfg.dim, gamma, eps);
}

/* y = x w^T + bias where w holds this rank's input columns: partial products are all-reduced over
 * tp before the bias is added once (row-parallel linear). One rank: a plain op_linear. */
static void linear_row_parallel(const struct exec_ctx *ctx, struct wan_dit_bufs *b, struct comm *tp, struct tensor *y,
                                const struct tensor *x, const struct tensor *w, const struct tensor *bias) {
    if (comm_size(tp) == 1) {
        op_linear(ctx, y, x, w, bias);
        return;
    }
    op_linear(ctx, y, x, w, NULL);
    comm_allreduce_sum_f32(tp, y->data, (size_t)tensor_numel(y), b->reduce.data);
    op_add_row(ctx, y, y, bias);
}

/* Self-attention of the shard's q/k/v into b->u (first D_local columns), spec 3.6 step 2 under
 * sequence parallelism: Ulysses all-to-all to whole ring blocks of this rank's head group; with
 * ring > 1 the key/value blocks are broadcast by each ring rank in turn, in token order, and folded
 * into a streaming softmax, so every layout walks the same key tiles in the same order. */
static void self_attention(const struct exec_ctx *ctx, struct wan_dit_bufs *b, const struct wan_dit_par *par,
                           float scale, const struct attn_causal *causal) {
    const int u = comm_size(par->ulysses), r = comm_size(par->ring);
    const int64_t s = b->shard, dl = b->d_local, dg = dl / u, hg = b->heads / u;
    struct tensor q = cols(&b->qkv, 0, dl), k = cols(&b->qkv, dl, dl), v = cols(&b->qkv, 2 * dl, dl);
    struct tensor out = cols(&b->u, 0, dl);
    if (u == 1 && r == 1) { /* the whole sequence is here */
        struct tensor kr = rows(&k, 0, b->l_all), vr = rows(&v, 0, b->l_all);
        op_attention(ctx, &out, &q, &kr, &vr, (int)b->heads, scale, causal, false);
        return;
    }
    struct tensor qf = b->qkv, kf = k, vf = v, of = out;
    if (u > 1) { /* [s, H_local heads] -> [u s, H_local / u heads]: block j carries head group j */
        for (int j = 0; j < u; j++) {
            struct tensor blk = block2(&b->a2a, j, s, 3 * dg);
            for (int t = 0; t < 3; t++) {
                struct tensor dst = cols(&blk, t * dg, dg), src = cols(&b->qkv, t * dl + j * dg, dg);
                op_copy(ctx, &dst, &src);
            }
        }
        comm_alltoall(par->ulysses, b->a2a.data, b->qkv_full.data, (size_t)(s * 3 * dg) * sizeof(float));
        qf = b->qkv_full;
        of = b->attn_full;
        kf = cols(&qf, dg, dg);
        vf = cols(&qf, 2 * dg, dg);
    }
    q = cols(&qf, 0, dg);
    const int64_t blk_rows = u * s, my_start = comm_rank(par->ring) * blk_rows;
    if (r == 1) {
        struct tensor kr = rows(&kf, 0, b->l_all), vr = rows(&vf, 0, b->l_all);
        op_attention(ctx, &of, &q, &kr, &vr, (int)hg, scale, causal, false);
    } else {
        struct attn_causal qc = causal ? *causal : (struct attn_causal){0};
        qc.q_token_offset = my_start;
        for (int j = 0; j < r; j++) {
            const int64_t start = j * blk_rows;
            const int64_t valid = b->l_all - start < blk_rows ? b->l_all - start : blk_rows;
            if (comm_rank(par->ring) == j) {
                struct tensor dk = cols(&b->kv_blk, 0, dg), dv = cols(&b->kv_blk, dg, dg);
                op_copy(ctx, &dk, &kf);
                op_copy(ctx, &dv, &vf);
            }
            comm_bcast(par->ring, b->kv_blk.data, (size_t)(blk_rows * 2 * dg) * sizeof(float), j);
            if (valid <= 0) continue;
            struct tensor kb = cols(&b->kv_blk, 0, dg), vb = cols(&b->kv_blk, dg, dg);
            qc.k_token_offset = start;
            op_attention_block(ctx, &b->ring_state, &q, &kb, &vb, (int)hg, scale, causal ? &qc : NULL, valid, j == 0);
        }
        op_attention_finish(ctx, &of, &b->ring_state, false);
    }
    if (u > 1) { /* back: [u s, Dg] -> [s, D_local]; block j = my rows of head group j */
        comm_alltoall(par->ulysses, b->attn_full.data, b->a2a.data, (size_t)(s * dg) * sizeof(float));
        for (int j = 0; j < u; j++) {
            struct tensor src = block2(&b->a2a, j, s, dg), dst = cols(&out, j * dg, dg);
            op_copy(ctx, &dst, &src);
        }
    }
}

static void block_forward(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_bufs *b,
                          const struct wan_dit_par *par, const struct wan_block_weights *bw, const int64_t grid[3],
                          int64_t group, const struct attn_causal *causal) {
    const struct wan_config *c = &m->cfg;
    /* a shard of padding only (l = 0) still joins every collective; its empty ops need an in-range offset */
    const int64_t d = c->dim, dl = b->d_local, l = b->l, t0 = l > 0 ? b->t0 : 0;
    const int heads = (int)b->heads;
    const float eps = (float)c->eps, att_scale = 1.0f / sqrtf((float)c->head_dim);
    struct comm *tp = par->tp;

    /* modulation table m = block modulation + e0, [G, 6, D] as [G, 6D] (spec 3.6) */
    struct tensor mod_row = flat(&bw->modulation);
    op_add_row(ctx, &b->mods, &b->e0, &mod_row);
    struct tensor shift_sa = cols(&b->mods, 0, d), scale_sa = cols(&b->mods, d, d), gate_sa = cols(&b->mods, 2 * d, d);
    struct tensor shift_ff = cols(&b->mods, 3 * d, d), scale_ff = cols(&b->mods, 4 * d, d),
                  gate_ff = cols(&b->mods, 5 * d, d);
    /* the shard's real token rows. Buffers by phase: un holds the normed input until the projections of q (k, v)
     * have read it, then the attention output (at_heads); the output projections and the FFN write y, which with
     * the FFN's hidden chunk lies over q/k/v, dead once attention has run (see struct wan_dit_bufs). */
    struct tensor x = rows(&b->x, 0, l), un = rows(&b->u, 0, l), y = rows(&b->y, 0, l);
    struct tensor qkv = rows(&b->qkv, 0, l);
    struct tensor q = cols(&qkv, 0, dl), k = cols(&qkv, dl, dl), v = cols(&qkv, 2 * dl, dl);
    struct tensor at_heads = cols(&un, 0, dl);

    /* 1-3: self-attention */
    op_norm_modulate(ctx, &un, &x, &shift_sa, &scale_sa, group, t0, eps);
    op_linear(ctx, &q, &un, &bw->sa_q_w, &bw->sa_q_b);
    op_linear(ctx, &k, &un, &bw->sa_k_w, &bw->sa_k_b);
    op_linear(ctx, &v, &un, &bw->sa_v_w, &bw->sa_v_b);
    rmsnorm_heads(m, ctx, b, tp, &q, &bw->sa_norm_q); /* across all heads (width D) */
    rmsnorm_heads(m, ctx, b, tp, &k, &bw->sa_norm_k);
    op_rope3d(ctx, &q, heads, grid, t0, &m->rope_freqs, m->rope_split);
    op_rope3d(ctx, &k, heads, grid, t0, &m->rope_freqs, m->rope_split);
    self_attention(ctx, b, par, att_scale, causal);
    linear_row_parallel(ctx, b, tp, &y, &at_heads, &bw->sa_o_w, &bw->sa_o_b);
    op_gated_add(ctx, &x, &y, &gate_sa, group, t0);

    /* 4: cross-attention (no modulation, no RoPE, no mask) */
    const struct tensor *c_in = &x;
    if (c->cross_attn_norm) {
        op_layernorm(ctx, &un, &x, &bw->ca_norm_w, &bw->ca_norm_b, eps);
        c_in = &un;
    }
    op_linear(ctx, &q, c_in, &bw->ca_q_w, &bw->ca_q_b);
    rmsnorm_heads(m, ctx, b, tp, &q, &bw->ca_norm_q);
    struct tensor txt = rows(&b->ctx, b->ni, b->lc);
    op_linear(ctx, &b->ck, &txt, &bw->ca_k_w, &bw->ca_k_b);
    rmsnorm_heads(m, ctx, b, tp, &b->ck, &bw->ca_norm_k);
    op_linear(ctx, &b->cv, &txt, &bw->ca_v_w, &bw->ca_v_b);
    op_attention(ctx, &at_heads, &q, &b->ck, &b->cv, heads, att_scale, NULL, false);
    if (b->ni) { /* image tokens: separate keys/values, summed before the output projection */
        struct tensor img = rows(&b->ctx, 0, b->ni);
        op_linear(ctx, &b->ik, &img, &bw->ca_img_k_w, &bw->ca_img_k_b);
        rmsnorm_heads(m, ctx, b, tp, &b->ik, &bw->ca_img_norm_k);
        op_linear(ctx, &b->iv, &img, &bw->ca_img_v_w, &bw->ca_img_v_b);
        op_attention(ctx, &at_heads, &q, &b->ik, &b->iv, heads, att_scale, NULL, true);
    }
    linear_row_parallel(ctx, b, tp, &y, &at_heads, &bw->ca_o_w, &bw->ca_o_b);
    op_gated_add(ctx, &x, &y, NULL, 1, 0);

    /* 5: feed-forward, in chunks of ffn_rows tokens to bound the hidden activations (ws_carve); under tensor
     * parallelism each rank holds Fd / tp hidden columns and the outputs are all-reduced */
    op_norm_modulate(ctx, &un, &x, &shift_ff, &scale_ff, group, t0, eps);
    const bool tp_split = comm_size(tp) > 1;
    for (int64_t r0 = 0; r0 < l; r0 += b->ffn_rows) {
        const int64_t n = l - r0 < b->ffn_rows ? l - r0 : b->ffn_rows;
        struct tensor u_part = rows(&un, r0, n), out_part = rows(&y, r0, n), hid = rows(&b->hidden, 0, n);
        op_linear(ctx, &hid, &u_part, &bw->ffn1_w, &bw->ffn1_b);
        op_gelu_tanh(ctx, &hid, &hid);
        op_linear(ctx, &out_part, &hid, &bw->ffn2_w, tp_split ? NULL : &bw->ffn2_b);
    }
    if (tp_split) {
        comm_allreduce_sum_f32(tp, y.data, (size_t)(l * d), b->reduce.data);
        op_add_row(ctx, &y, &y, &bw->ffn2_b);
    }
    op_gated_add(ctx, &x, &y, &gate_ff, group, t0);
}

void wan_dit_forward(const struct wan_model *m, const struct exec_ctx *ctx, struct wan_dit_workspace *ws,
                     const struct wan_dit_input *in, struct tensor *out) {
    const struct wan_config *c = &m->cfg;
    const struct wan_weights *w = &m->w;
    struct wan_dit_bufs *b = ws->bufs;
    const struct wan_dit_par *par = &ws->par;
    const struct wan_dit_shape *sh = &ws->shape;
    const int64_t d = c->dim;
    const enum device dev = ctx->backend == BACKEND_CUDA ? DEVICE_CUDA : DEVICE_CPU;
    CHECK(m->device == dev && ws->device == dev,
          "wan_dit_forward: the model is on %s and the workspace on %s, but the context is %s (call "
          "wan_model_to_device before wan_dit_workspace_init)",
          m->device == DEVICE_CUDA ? "cuda" : "cpu", ws->device == DEVICE_CUDA ? "cuda" : "cpu",
          backend_name(ctx->backend));
    CHECK(in->latents.shape[1] == sh->frames && in->latents.shape[2] == sh->height &&
              in->latents.shape[3] == sh->width && in->context.shape[0] == sh->context_len &&
              in->timesteps.shape[0] == sh->timestep_rows,
          "forward input does not match the workspace shape");
    const int64_t grid[3] = {sh->frames / c->patch[0], b->hp, b->wp};
    /* per-frame tables are indexed by token / tokens-per-frame; the scalar path has one row for all */
    const int64_t group = sh->timestep_rows == 1 ? b->l_all : b->hp * b->wp;
    const int fps_code = in->fps_code < 0 ? 1 : in->fps_code;

    /* inputs to the device: the forward's only uploads (host inputs, see wan_dit.h) */
    const int64_t lat_c = c->out_channels, plane = sh->frames * sh->height * sh->width;
    struct tensor lat_all = tensor_reshape(&b->lat_in, 2, (int64_t[]){c->in_channels, plane});
    struct tensor lat_dst = rows(&lat_all, 0, lat_c);
    struct tensor lat_src = tensor_reshape(&in->latents, 2, (int64_t[]){lat_c, plane});
    op_upload(ctx, &lat_dst, &lat_src);
    if (c->in_channels > lat_c) {
        struct tensor cond_dst = rows(&lat_all, lat_c, c->in_channels - lat_c);
        struct tensor cond_src = tensor_reshape(&in->condition, 2, (int64_t[]){c->in_channels - lat_c, plane});
        op_upload(ctx, &cond_dst, &cond_src);
    }
    op_upload(ctx, &b->tsteps, &in->timesteps);
    op_upload(ctx, &b->ctx_in, &in->context);
    if (b->ni) op_upload(ctx, &b->clip_in, &in->clip);

    /* embeddings: the shard's token rows of the patch embedding */
    op_patchify(ctx, &b->patches, &b->lat_in, c->patch);
    const int64_t patch_in = c->in_channels * c->patch[0] * c->patch[1] * c->patch[2];
    struct tensor patch_w = tensor_reshape(&w->patch_w, 2, (int64_t[]){d, patch_in}); /* Conv3d as GEMM */
    struct tensor my_patches = rows(&b->patches, b->t0 < b->l_all ? b->t0 : 0, b->l), x = rows(&b->x, 0, b->l);
    op_linear(ctx, &x, &my_patches, &patch_w, &w->patch_b);
    time_embedding(m, ctx, b, fps_code);
    context_embedding(m, ctx, b);

    /* blocks */
    struct attn_causal causal = {.tokens_per_frame = b->hp * b->wp,
                                 .frames_per_block = in->causal_block_size,
                                 .q_token_offset = 0,
                                 .k_token_offset = 0};
    for (int64_t i = 0; i < c->num_layers; i++)
        block_forward(m, ctx, b, par, &w->blocks[i], grid, group, in->causal_block_size > 0 ? &causal : NULL);

    /* head (spec 3.7): shift/scale = head modulation + e (not e0) */
    struct tensor hm = tensor_reshape(&w->head_mod, 2, (int64_t[]){2, d});
    struct tensor hm_shift = tensor_row(&hm, 0), hm_scale = tensor_row(&hm, 1);
    struct tensor shift = cols(&b->head_mod, 0, d), scale = cols(&b->head_mod, d, d);
    op_add_row(ctx, &shift, &b->e, &hm_shift);
    op_add_row(ctx, &scale, &b->e, &hm_scale);
    struct tensor un = rows(&b->u, 0, b->l), tok = rows(&b->out_tok, 0, b->l);
    op_norm_modulate(ctx, &un, &x, &shift, &scale, group, b->l > 0 ? b->t0 : 0, (float)c->eps);
    op_linear(ctx, &tok, &un, &w->head_w, &w->head_b);
    struct tensor all_tok = b->out_tok;
    if (comm_size(par->sp) > 1) { /* every rank gets every shard (upstream: all_gather, spec 9) */
        comm_allgather(par->sp, b->out_tok.data, b->out_all.data, tensor_nbytes(&b->out_tok));
        all_tok = b->out_all;
    }
    struct tensor used = rows(&all_tok, 0, b->l_all);
    op_unpatchify(ctx, &b->out, &used, c->patch);
    op_download(ctx, out, &b->out); /* the forward's only download; synchronises the CUDA stream */
}

double wan_dit_flops(const struct wan_config *c, const struct wan_dit_shape *sh, int causal_block_size) {
    const double d = (double)c->dim, fd = (double)c->ffn_dim;
    const double hp = (double)(sh->height / c->patch[1]), wp = (double)(sh->width / c->patch[2]);
    const double f = (double)(sh->frames / c->patch[0]);
    const double l = f * hp * wp, lc = (double)sh->context_len, ni = (double)sh->image_len;
    const double pp = (double)c->patch[0] * c->patch[1] * c->patch[2];
    /* visible key count summed over queries: full = L^2; block-causal = sum over blocks */
    double pairs = l * l;
    if (causal_block_size > 0) {
        const double tpb = hp * wp * causal_block_size, nb = f / causal_block_size;
        pairs = 0;
        for (double bi = 0; bi < nb; bi++) pairs += tpb * tpb * (bi + 1);
    }
    double per_block = 2 * l * d * d * 4             /* q k v o */
                       + 4 * pairs * d               /* q k^T and p v */
                       + 2 * l * d * d * 2           /* cross q, o */
                       + 2 * lc * d * d * 2          /* cross k, v */
                       + 4 * l * lc * d              /* cross attention */
                       + 2 * l * d * fd * 2;         /* FFN */
    if (c->has_image) per_block += 2 * ni * d * d * 2 + 4 * l * ni * d;
    double total = (double)c->num_layers * per_block;
    total += 2 * l * d * c->in_channels * pp;                 /* patch embedding */
    total += 2 * lc * d * (double)c->text_dim + 2 * lc * d * d; /* text embedding */
    total += 2 * l * d * c->out_channels * pp;                /* head */
    return total;
}
