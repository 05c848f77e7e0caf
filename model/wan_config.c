/* model/wan_config.c - reading both config.json flavours (spec 1, 2.1, 2.2). */
#include "model/wan_config.h"

#include <cJSON.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "io/json_util.h"

static void config_defaults(struct wan_config *c) {
    memset(c, 0, sizeof *c);
    c->out_channels = 16;
    c->text_dim = 4096;
    c->freq_dim = 256;
    c->patch[0] = 1, c->patch[1] = 2, c->patch[2] = 2;
    c->eps = 1e-6;
    c->cross_attn_norm = true;
    c->rope_max_seq_len = 1024;
    c->text_len = 512;
}

/* Optional getters: absent or null keeps the default. */
static int opt_i64(const cJSON *o, const char *key, const char *file, int64_t *v) {
    return json_has(o, key) ? json_get_i64(o, key, file, v) : ERR_OK;
}
static int opt_f64(const cJSON *o, const char *key, const char *file, double *v) {
    return json_has(o, key) ? json_get_f64(o, key, file, v) : ERR_OK;
}
static int opt_bool(const cJSON *o, const char *key, const char *file, bool *v) {
    return json_has(o, key) ? json_get_bool(o, key, file, v) : ERR_OK;
}

static int read_patch(const cJSON *o, const char *file, struct wan_config *c) {
    if (!json_has(o, "patch_size")) return ERR_OK;
    int64_t p[3];
    TRY(json_get_i64_array(o, "patch_size", file, p, 3));
    for (int i = 0; i < 3; i++) c->patch[i] = (int)p[i];
    return ERR_OK;
}

static void warn_unknown_keys(const cJSON *o, const char *file, const char *const *known, size_t n) {
    for (const cJSON *it = o->child; it; it = it->next) {
        if (!it->string || it->string[0] == '_') continue; /* _class_name, _diffusers_version, ... */
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) found = strcmp(it->string, known[i]) == 0;
        if (!found) LOG_WARN("%s: ignoring unknown config key \"%s\"", file, it->string);
    }
}

static int read_diffusers(const cJSON *o, const char *file, struct wan_config *c) {
    static const char *const known[] = {
        "patch_size", "num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "text_dim",
        "freq_dim", "ffn_dim", "num_layers", "cross_attn_norm", "qk_norm", "eps", "image_dim", "added_kv_proj_dim",
        "rope_max_seq_len", "pos_embed_seq_len", "inject_sample_info", "num_frame_per_block", "flag_causal_attention",
        "window_size"};
    c->kind = WAN_CONFIG_DIFFUSERS;
    TRY(json_get_i64(o, "num_attention_heads", file, &c->num_heads));
    TRY(json_get_i64(o, "attention_head_dim", file, &c->head_dim));
    TRY(json_get_i64(o, "num_layers", file, &c->num_layers));
    TRY(json_get_i64(o, "ffn_dim", file, &c->ffn_dim));
    TRY(json_get_i64(o, "in_channels", file, &c->in_channels));
    TRY(opt_i64(o, "out_channels", file, &c->out_channels));
    TRY(opt_i64(o, "text_dim", file, &c->text_dim));
    TRY(opt_i64(o, "freq_dim", file, &c->freq_dim));
    TRY(opt_bool(o, "cross_attn_norm", file, &c->cross_attn_norm));
    TRY(opt_f64(o, "eps", file, &c->eps));
    TRY(opt_bool(o, "inject_sample_info", file, &c->inject_sample_info));
    TRY(opt_i64(o, "rope_max_seq_len", file, &c->rope_max_seq_len));
    TRY(opt_i64(o, "pos_embed_seq_len", file, &c->pos_embed_seq_len));
    TRY(read_patch(o, file, c));
    c->dim = c->num_heads * c->head_dim;
    if (json_has(o, "qk_norm")) {
        const char *qk;
        TRY(json_get_str(o, "qk_norm", file, &qk));
        if (strcmp(qk, "rms_norm_across_heads") != 0)
            return err_set(ERR_UNSUPPORTED,
                           "%s: qk_norm \"%s\" is not supported; SkyReels-V2 models use \"rms_norm_across_heads\"",
                           file, qk);
    } else {
        return err_set(ERR_UNSUPPORTED, "%s: qk_norm is null; SkyReels-V2 models use \"rms_norm_across_heads\"", file);
    }
    if (json_has(o, "image_dim")) {
        TRY(json_get_i64(o, "image_dim", file, &c->image_dim));
        c->has_image = true;
        int64_t kv = 0;
        TRY(json_get_i64(o, "added_kv_proj_dim", file, &kv));
        if (kv != c->dim)
            return err_set(ERR_UNSUPPORTED, "%s: added_kv_proj_dim %lld must equal the model width %lld", file,
                           (long long)kv, (long long)c->dim);
    } else if (json_has(o, "added_kv_proj_dim")) {
        return err_set(ERR_FORMAT, "%s: added_kv_proj_dim is set but image_dim is null", file);
    }
    warn_unknown_keys(o, file, known, sizeof known / sizeof known[0]);
    return ERR_OK;
}

static int read_original(const cJSON *o, const char *file, struct wan_config *c) {
    static const char *const known[] = {"model_type", "patch_size", "text_len", "in_dim", "dim", "ffn_dim",
                                        "freq_dim", "text_dim", "out_dim", "num_heads", "num_layers", "window_size",
                                        "qk_norm", "cross_attn_norm", "eps", "inject_sample_info", "image_dim"};
    c->kind = WAN_CONFIG_ORIGINAL;
    TRY(json_get_i64(o, "dim", file, &c->dim));
    TRY(json_get_i64(o, "num_heads", file, &c->num_heads));
    TRY(json_get_i64(o, "num_layers", file, &c->num_layers));
    TRY(json_get_i64(o, "ffn_dim", file, &c->ffn_dim));
    TRY(json_get_i64(o, "in_dim", file, &c->in_channels));
    TRY(opt_i64(o, "out_dim", file, &c->out_channels));
    TRY(opt_i64(o, "freq_dim", file, &c->freq_dim));
    TRY(opt_i64(o, "text_dim", file, &c->text_dim)); /* reelfarm extension; upstream fixes 4096 */
    TRY(opt_i64(o, "text_len", file, &c->text_len));
    TRY(opt_f64(o, "eps", file, &c->eps));
    TRY(opt_bool(o, "inject_sample_info", file, &c->inject_sample_info));
    TRY(read_patch(o, file, c));
    if (c->num_heads <= 0 || c->dim % c->num_heads != 0)
        return err_set(ERR_FORMAT, "%s: dim %lld is not divisible by num_heads %lld", file, (long long)c->dim,
                       (long long)c->num_heads);
    c->head_dim = c->dim / c->num_heads;
    const char *type = "t2v";
    if (json_has(o, "model_type")) TRY(json_get_str(o, "model_type", file, &type));
    if (strcmp(type, "i2v") == 0) {
        c->has_image = true;
        c->image_dim = 1280; /* MLPProj(1280, dim) in upstream */
        TRY(opt_i64(o, "image_dim", file, &c->image_dim));
    } else if (strcmp(type, "t2v") != 0) {
        return err_set(ERR_UNSUPPORTED, "%s: model_type \"%s\" (expected \"t2v\" or \"i2v\")", file, type);
    }
    if (json_has(o, "window_size")) {
        int64_t w[2];
        TRY(json_get_i64_array(o, "window_size", file, w, 2));
        if (w[0] != -1 || w[1] != -1)
            return err_set(ERR_UNSUPPORTED, "%s: window_size [%lld, %lld]: only global attention [-1, -1] is supported",
                           file, (long long)w[0], (long long)w[1]);
    }
    warn_unknown_keys(o, file, known, sizeof known / sizeof known[0]);
    return ERR_OK;
}

int wan_config_validate(const struct wan_config *c, const char *origin) {
#define NEED(cond, ...)                                                                                          \
    do {                                                                                                         \
        if (!(cond)) return err_set(ERR_UNSUPPORTED, __VA_ARGS__);                                               \
    } while (0)
    NEED(c->num_heads > 0 && c->head_dim > 0 && c->num_layers > 0 && c->ffn_dim > 0 && c->in_channels > 0 &&
             c->out_channels > 0 && c->text_dim > 0 && c->freq_dim > 0,
         "%s: every dimension must be positive", origin);
    NEED(c->dim == c->num_heads * c->head_dim, "%s: width %lld != %lld heads x %lld", origin, (long long)c->dim,
         (long long)c->num_heads, (long long)c->head_dim);
    NEED(c->head_dim % 2 == 0 && c->head_dim >= 6 && c->head_dim <= 256,
         "%s: head dim %lld must be even and in [6, 256]", origin, (long long)c->head_dim);
    NEED(c->freq_dim % 2 == 0, "%s: freq_dim %lld must be even", origin, (long long)c->freq_dim);
    NEED(c->patch[0] == 1 && c->patch[1] == 2 && c->patch[2] == 2,
         "%s: patch_size [%d, %d, %d]: SkyReels-V2 models use [1, 2, 2]", origin, c->patch[0], c->patch[1],
         c->patch[2]);
    NEED(c->eps > 0 && c->eps < 1, "%s: eps %g out of range", origin, c->eps);
    NEED(c->rope_max_seq_len > 0 && c->rope_max_seq_len <= 65536, "%s: rope_max_seq_len %lld out of range", origin,
         (long long)c->rope_max_seq_len);
    NEED(c->in_channels >= c->out_channels, "%s: in_channels %lld < out_channels %lld", origin,
         (long long)c->in_channels, (long long)c->out_channels);
    NEED(!c->has_image || c->image_dim > 0, "%s: image_dim must be positive", origin);
    NEED(c->pos_embed_seq_len >= 0 && (c->pos_embed_seq_len == 0 || c->has_image),
         "%s: pos_embed_seq_len needs an image branch", origin);
#undef NEED
    return ERR_OK;
}

int wan_config_read(const char *path, struct wan_config *cfg) {
    config_defaults(cfg);
    cJSON *root = NULL;
    TRY(json_read_file(path, &root));
    int rc;
    if (json_has(root, "num_attention_heads"))
        rc = read_diffusers(root, path, cfg);
    else if (json_has(root, "dim") && json_has(root, "num_heads"))
        rc = read_original(root, path, cfg);
    else
        rc = err_set(ERR_FORMAT,
                     "%s: neither a Diffusers transformer config (num_attention_heads) nor a WanModel config "
                     "(dim, num_heads)",
                     path);
    cJSON_Delete(root);
    if (rc < 0) return rc;
    return wan_config_validate(cfg, path);
}

int wan_config_preset(const char *name, struct wan_config *c) {
    config_defaults(c);
    c->kind = WAN_CONFIG_DIFFUSERS;
    c->head_dim = 128;
    c->in_channels = 16;
    if (strcmp(name, "1.3b") == 0 || strcmp(name, "1.3B") == 0) {
        c->num_heads = 12, c->ffn_dim = 8960, c->num_layers = 30, c->inject_sample_info = true;
    } else if (strcmp(name, "14b") == 0 || strcmp(name, "14B") == 0) {
        c->num_heads = 40, c->ffn_dim = 13824, c->num_layers = 40;
    } else if (strcmp(name, "tiny") == 0) {
        /* The built-in tiny model: real head dim (so the real RoPE split 22/21/21 is exercised),
         * everything else small. */
        c->num_heads = 2, c->ffn_dim = 512, c->num_layers = 2, c->text_dim = 64;
    } else {
        return err_set(ERR_INVALID_ARG, "unknown model size '%s' (expected tiny, 1.3b or 14b)", name);
    }
    c->dim = c->num_heads * c->head_dim;
    return wan_config_validate(c, name);
}

int64_t wan_config_param_count(const struct wan_config *c) {
    const int64_t d = c->dim, pprod = (int64_t)c->patch[0] * c->patch[1] * c->patch[2];
    int64_t n = d * c->in_channels * pprod + d;       /* patch embedding */
    n += d * c->text_dim + d + d * d + d;             /* text embedding */
    n += d * c->freq_dim + d + d * d + d;             /* time embedding */
    n += 6 * d * d + 6 * d;                           /* time projection */
    n += 2 * d + c->out_channels * pprod * d + c->out_channels * pprod; /* head */
    if (c->inject_sample_info) n += 2 * d + d * d + d + 6 * d * d + 6 * d;
    if (c->has_image) {
        const int64_t id = c->image_dim;
        n += 2 * id + id * id + id + d * id + d + 2 * d + c->pos_embed_seq_len * id;
    }
    int64_t blk = 6 * d;                  /* modulation */
    blk += 4 * (d * d + d) + 2 * d;       /* self-attention */
    blk += 4 * (d * d + d) + 2 * d;       /* cross-attention */
    if (c->cross_attn_norm) blk += 2 * d; /* norm3 */
    blk += c->ffn_dim * d + c->ffn_dim + d * c->ffn_dim + d;
    if (c->has_image) blk += 2 * (d * d + d) + d;
    return n + c->num_layers * blk;
}
