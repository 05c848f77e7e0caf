/* model/umt5.c - umT5 encoder: config, strict loading, forward (spec 8.3, 8.4). Mirrors transformers
 * models/umt5/modeling_umt5.py (UMT5EncoderModel: UMT5Block, UMT5Attention with
 * has_relative_attention_bias in every layer, UMT5LayerFF with the gated-gelu DenseGatedActDense). */
#include "model/umt5.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "io/fs.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "model/weight_table.h"

/* ---- config ---- */

static int read_config(const char *path, struct umt5_config *c) {
    cJSON *o = NULL;
    TRY(json_read_file(path, &o));
    int64_t v;
    int rc = ERR_OK;
#define GET(key, field)                                                                                          \
    if (rc == ERR_OK) rc = json_get_i64(o, key, path, &v), c->field = v
    GET("vocab_size", vocab_size);
    GET("d_model", d_model);
    GET("d_ff", d_ff);
    GET("d_kv", d_kv);
    GET("num_heads", num_heads);
    GET("num_layers", num_layers);
#undef GET
    c->num_buckets = 32, c->max_distance = 128, c->eps = 1e-6;
    if (rc == ERR_OK && json_has(o, "relative_attention_num_buckets"))
        rc = json_get_i64(o, "relative_attention_num_buckets", path, &v), c->num_buckets = (int)v;
    if (rc == ERR_OK && json_has(o, "relative_attention_max_distance"))
        rc = json_get_i64(o, "relative_attention_max_distance", path, &v), c->max_distance = (int)v;
    if (rc == ERR_OK && json_has(o, "layer_norm_epsilon")) rc = json_get_f64(o, "layer_norm_epsilon", path, &c->eps);
    if (rc == ERR_OK && json_has(o, "feed_forward_proj")) {
        const char *ff;
        rc = json_get_str(o, "feed_forward_proj", path, &ff);
        if (rc == ERR_OK && strcmp(ff, "gated-gelu") != 0)
            rc = err_set(ERR_UNSUPPORTED, "%s: feed_forward_proj \"%s\"; umT5 uses \"gated-gelu\"", path, ff);
    }
    if (rc == ERR_OK && json_has(o, "dense_act_fn")) {
        const char *act;
        rc = json_get_str(o, "dense_act_fn", path, &act);
        if (rc == ERR_OK && strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0)
            rc = err_set(ERR_UNSUPPORTED, "%s: dense_act_fn \"%s\"; umT5 uses the tanh GELU \"gelu_new\"", path, act);
    }
    cJSON_Delete(o);
    if (rc < 0) return rc;
    if (c->vocab_size < 1 || c->d_model < 1 || c->d_ff < 1 || c->d_kv < 1 || c->num_heads < 1 || c->num_layers < 1 ||
        c->d_kv > OP_HEAD_DIM_MAX)
        return err_set(ERR_UNSUPPORTED, "%s: dimensions out of range (head size d_kv must be 1 to %d)", path,
                       OP_HEAD_DIM_MAX);
    if (c->num_buckets < 4 || c->num_buckets % 2 || c->max_distance <= c->num_buckets / 4 || !(c->eps > 0))
        return err_set(ERR_UNSUPPORTED, "%s: relative attention buckets %d / max distance %d / eps %g out of range", path,
                       c->num_buckets, c->max_distance, c->eps);
    return ERR_OK;
}

/* ---- files ---- */

static int locate(const char *dir, char *config_path, size_t cap, char *wdir, size_t wcap) {
    TRY(fs_join(wdir, wcap, dir, "text_encoder"));
    TRY(fs_join(config_path, cap, wdir, "config.json"));
    if (fs_is_file(config_path)) return ERR_OK;
    char pth[1200];
    TRY(fs_join(pth, sizeof pth, dir, "models_t5_umt5-xxl-enc-bf16.pth"));
    if (fs_is_file(pth))
        return err_set(ERR_UNSUPPORTED,
                       "%s: the text encoder is a torch pickle (models_t5_umt5-xxl-enc-bf16.pth), which reelfarm does "
                       "not read; use the Diffusers layout (text_encoder/ with safetensors)",
                       dir);
    return err_set(ERR_MISSING, "%s: no text encoder (expected text_encoder/config.json)", dir);
}

/* ---- loading ---- */

/* Naming 0 stores the embedding as shared.weight, naming 1 as the tied alias encoder.embed_tokens.weight;
 * everything else has one name. */
static bool tied_alias(const char *name) { return strcmp(name, "encoder.embed_tokens.weight") == 0; }

static void decl(struct weight_decl *d, const char *name0, const char *name1, struct tensor *slot, int ndim,
                 int64_t a, int64_t b) {
    snprintf(d->name[0], sizeof d->name[0], "%s", name0);
    snprintf(d->name[1], sizeof d->name[1], "%s", name1 ? name1 : name0);
    d->ndim = ndim;
    memset(d->shape, 0, sizeof d->shape);
    d->shape[0] = a;
    d->shape[1] = b;
    d->slot = slot;
}

int umt5_load(struct umt5_model **out, const char *model_dir) {
    *out = NULL;
    struct umt5_model *m = calloc(1, sizeof *m);
    if (!m) return err_set(ERR_NOMEM, "out of memory");
    char wdir[1100];
    struct weight_decl *decls = NULL;
    int rc = locate(model_dir, m->config_path, sizeof m->config_path, wdir, sizeof wdir);
    if (rc == ERR_OK) rc = read_config(m->config_path, &m->cfg);
    if (rc == ERR_OK) rc = weights_open_dir(wdir, &m->st, m->weights_path, sizeof m->weights_path);
    if (rc < 0) goto end;
    const struct umt5_config *c = &m->cfg;
    const int64_t inner = c->num_heads * c->d_kv, nl = c->num_layers;
    m->layers = calloc((size_t)nl, sizeof *m->layers);
    decls = calloc((size_t)(2 + 10 * nl), sizeof *decls);
    if (!m->layers || !decls) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    size_t n = 0;
    decl(&decls[n++], "shared.weight", "encoder.embed_tokens.weight", &m->embedding, 2, c->vocab_size, c->d_model);
    decl(&decls[n++], "encoder.final_layer_norm.weight", NULL, &m->final_ln, 1, c->d_model, 0);
    for (int64_t i = 0; i < nl; i++) {
        struct umt5_layer *L = &m->layers[i];
        char p[96], name[160];
#define LAYER(suffix, field, ndim, a, b)                                                                         \
    snprintf(name, sizeof name, "%s%s", p, suffix);                                                              \
    decl(&decls[n++], name, NULL, &L->field, ndim, a, b)
        snprintf(p, sizeof p, "encoder.block.%lld.layer.0.", (long long)i);
        LAYER("layer_norm.weight", ln1, 1, c->d_model, 0);
        LAYER("SelfAttention.q.weight", q, 2, inner, c->d_model);
        LAYER("SelfAttention.k.weight", k, 2, inner, c->d_model);
        LAYER("SelfAttention.v.weight", v, 2, inner, c->d_model);
        LAYER("SelfAttention.o.weight", o, 2, c->d_model, inner);
        LAYER("SelfAttention.relative_attention_bias.weight", relbias, 2, c->num_buckets, c->num_heads);
        snprintf(p, sizeof p, "encoder.block.%lld.layer.1.", (long long)i);
        LAYER("layer_norm.weight", ln2, 1, c->d_model, 0);
        LAYER("DenseReluDense.wi_0.weight", wi0, 2, c->d_ff, c->d_model);
        LAYER("DenseReluDense.wi_1.weight", wi1, 2, c->d_ff, c->d_model);
        LAYER("DenseReluDense.wo.weight", wo, 2, c->d_model, c->d_ff);
#undef LAYER
    }
    const int naming = st_find(m->st, "shared.weight") ? 0 : 1;
    struct weights_summary sum;
    rc = weights_bind(m->st, decls, n, naming, naming == 0 ? tied_alias : NULL, m->weights_path, m->config_path, &sum);
    if (rc < 0) goto end;
    m->n_params = sum.n_params;
    m->stored_dtype = sum.stored_dtype;
    m->f32_in_place = true;
    for (size_t i = 2; i < n; i++) m->f32_in_place &= weight_is_f32_ready(decls[i].slot);
    m->f32_in_place &= weight_is_f32_ready(&m->final_ln);
end:
    free(decls);
    if (rc < 0) {
        umt5_free(&m);
        return rc;
    }
    *out = m;
    return ERR_OK;
}

void umt5_free(struct umt5_model **mp) {
    struct umt5_model *m = mp ? *mp : NULL;
    if (!m) return;
    st_close(&m->st);
    free(m->layers);
    free(m);
    *mp = NULL;
}

static size_t layer_numel(const struct umt5_config *c) {
    const int64_t inner = c->num_heads * c->d_kv;
    return (size_t)(2 * c->d_model + 4 * inner * c->d_model + c->num_buckets * c->num_heads + 3 * c->d_ff * c->d_model);
}

/* Activations: x, y [L, D]; q, k, v, attention [L, inner]; bias [H, 2L - 1]; two FFN buffers [L, d_ff];
 * the final norm's gain. */
static size_t activation_numel(const struct umt5_config *c, int64_t l) {
    const int64_t inner = c->num_heads * c->d_kv;
    return (size_t)(2 * l * c->d_model + 4 * l * inner + c->num_heads * (2 * l - 1) + 2 * l * c->d_ff + c->d_model);
}

struct umt5_memory umt5_memory(const struct umt5_model *m, int64_t text_len) {
    struct umt5_memory r;
    r.mapped_bytes = (size_t)m->n_params * dtype_size(m->stored_dtype);
    r.layer_bytes = m->f32_in_place ? 0 : layer_numel(&m->cfg) * sizeof(float) + 10 * ARENA_ALIGN;
    r.activation_bytes = activation_numel(&m->cfg, text_len) * sizeof(float) + 16 * ARENA_ALIGN;
    return r;
}

/* ---- forward ---- */

/* The layer's tensors as f32: in place, or converted into the layer arena (reset per layer). */
static void layer_f32(const struct umt5_layer *src, struct umt5_layer *dst, struct arena *a, bool in_place) {
    *dst = *src;
    if (in_place) return;
    arena_reset(a);
    struct tensor *t[10] = {&dst->ln1, &dst->q, &dst->k, &dst->v, &dst->o, &dst->relbias, &dst->ln2, &dst->wi0, &dst->wi1, &dst->wo};
    for (int i = 0; i < 10; i++) {
        if (weight_is_f32_ready(t[i])) continue;
        float *p = arena_alloc_f32(a, (size_t)tensor_numel(t[i]));
        weight_copy_f32(p, t[i]);
        *t[i] = tensor_make(DTYPE_F32, DEVICE_CPU, p, t[i]->ndim, t[i]->shape);
    }
}

int umt5_encode(const struct umt5_model *m, const struct exec_ctx *ctx, const int64_t *ids, int64_t text_len,
                int64_t n_valid, float *out) {
    const struct umt5_config *c = &m->cfg;
    if (n_valid < 1 || n_valid > text_len)
        return err_set(ERR_INVALID_ARG, "text encoder: %lld valid tokens of %lld", (long long)n_valid, (long long)text_len);
    for (int64_t i = 0; i < text_len; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return err_set(ERR_FORMAT, "token id %lld at position %lld is outside the vocabulary of %s (%lld); the "
                                       "tokenizer and the text encoder do not match",
                           (long long)ids[i], (long long)i, m->config_path, (long long)c->vocab_size);
    const int64_t l = text_len, d = c->d_model, inner = c->num_heads * c->d_kv, heads = c->num_heads;
    const struct umt5_memory mem = umt5_memory(m, text_len);
    struct arena act = {0}, lay = {0};
    TRY(arena_init(&act, "text-encoder activations", mem.activation_bytes));
    int rc = mem.layer_bytes ? arena_init(&lay, "text-encoder layer", mem.layer_bytes) : ERR_OK;
    if (rc < 0) {
        arena_free(&act);
        return rc;
    }
#define BUF(rows, cols) tensor_f32_2d(arena_alloc_f32(&act, (size_t)((rows) * (cols))), (rows), (cols))
    struct tensor x = BUF(l, d), y = BUF(l, d), q = BUF(l, inner), k = BUF(l, inner), v = BUF(l, inner);
    struct tensor att = BUF(l, inner), bias = BUF(heads, 2 * l - 1), g = BUF(l, c->d_ff), h = BUF(l, c->d_ff);
    struct tensor fin = tensor_f32_1d(arena_alloc_f32(&act, (size_t)d), d);
#undef BUF

    /* embedding: gather the prompt's rows from the mapping (the table itself is never copied) */
    const size_t row_bytes = (size_t)d * dtype_size(m->embedding.dtype);
    for (int64_t i = 0; i < l; i++) {
        const char *rowp = (const char *)m->embedding.data + (size_t)ids[i] * row_bytes;
        dtype_to_f32(tensor_f32(&x) + i * d, rowp, m->embedding.dtype, (size_t)d);
    }
    const float eps = (float)c->eps;
    for (int64_t li = 0; li < c->num_layers; li++) {
        struct umt5_layer w;
        layer_f32(&m->layers[li], &w, &lay, m->f32_in_place);
        /* self-attention: RMS norm, no scaling of q k^T, the layer's own relative bias, padding keys masked */
        op_rmsnorm(ctx, &y, &x, &w.ln1, eps);
        op_linear(ctx, &q, &y, &w.q, NULL);
        op_linear(ctx, &k, &y, &w.k, NULL);
        op_linear(ctx, &v, &y, &w.v, NULL);
        op_t5_relbias(ctx, &bias, &w.relbias, c->num_buckets, c->max_distance, l);
        op_attention_biased(ctx, &att, &q, &k, &v, (int)heads, 1.0f, &bias, n_valid);
        op_linear(ctx, &y, &att, &w.o, NULL);
        op_gated_add(ctx, &x, &y, NULL, 1, 0);
        /* feed-forward: (GELU_tanh(y wi_0^T) * (y wi_1^T)) wo^T */
        op_rmsnorm(ctx, &y, &x, &w.ln2, eps);
        op_linear(ctx, &g, &y, &w.wi0, NULL);
        op_gelu_tanh(ctx, &g, &g);
        op_linear(ctx, &h, &y, &w.wi1, NULL);
        op_mul(ctx, &g, &g, &h);
        op_linear(ctx, &y, &g, &w.wo, NULL);
        op_gated_add(ctx, &x, &y, NULL, 1, 0);
    }
    weight_copy_f32(tensor_f32(&fin), &m->final_ln);
    struct tensor o = tensor_f32_2d(out, l, d);
    op_rmsnorm(ctx, &o, &x, &fin, eps);
    memset(out + n_valid * d, 0, (size_t)((l - n_valid) * d) * sizeof(float)); /* spec 8.4: padding rows are 0 */
    arena_free(&act);
    arena_free(&lay);
    return ERR_OK;
}
