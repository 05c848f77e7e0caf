/* model/wan_tiny.c - writing the built-in tiny model (Diffusers or original layout). */
#include "model/wan_tiny.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/safetensors.h"

enum { RNG_PURPOSE_TINY_WEIGHTS = 0x7469, RNG_PURPOSE_TINY_INPUT = 0x7470 };

void wan_tiny_default_options(struct wan_tiny_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->seed = 42;
    opt->dtype = DTYPE_F32;
    opt->naming = WAN_NAMING_DIFFUSERS;
    opt->shards = 1;
    opt->example_input = true;
}

void wan_tiny_config(const struct wan_tiny_options *opt, struct wan_config *cfg) {
    int rc = wan_config_preset("tiny", cfg);
    CHECK(rc == ERR_OK, "tiny preset: %s", err_message());
    cfg->kind = opt->naming == WAN_NAMING_ORIGINAL ? WAN_CONFIG_ORIGINAL : WAN_CONFIG_DIFFUSERS;
    cfg->inject_sample_info = opt->fps_embedding;
    if (opt->i2v) {
        cfg->has_image = true;
        cfg->in_channels = 36;
        cfg->image_dim = 64;
    }
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void wan_tiny_values(float *dst, int64_t numel, int ndim, const int64_t *shape, const char *name, uint64_t seed) {
    rng_normal_f32(dst, numel, seed, rng_stream_id(RNG_PURPOSE_TINY_WEIGHTS, name_hash(name), 0, 0), 0);
    const bool is_norm_gain = strstr(name, "norm") && strstr(name, ".weight");
    float std, mean = 0.0f;
    if (strstr(name, "scale_shift_table")) {
        std = 1.0f / sqrtf((float)shape[ndim - 1]); /* as upstream: randn / sqrt(dim) */
    } else if (is_norm_gain) {
        std = 0.1f, mean = 1.0f;
    } else if (ndim == 1) {
        std = 0.1f; /* biases, LayerNorm shifts */
    } else {
        int64_t fan_in = 1;
        for (int i = 1; i < ndim; i++) fan_in *= shape[i];
        std = 1.0f / sqrtf((float)fan_in);
    }
    for (int64_t i = 0; i < numel; i++) dst[i] = mean + std * dst[i];
}

/* ---- config files ---- */

static int write_json(const char *path, cJSON *root, bool force) {
    char *text = cJSON_Print(root);
    if (!text) return err_set(ERR_NOMEM, "out of memory");
    char tmp[1200];
    int rc = fs_temp_path(tmp, sizeof tmp, path);
    if (rc == ERR_OK) {
        FILE *f = fopen(tmp, "w");
        if (!f || fputs(text, f) < 0 || fputc('\n', f) < 0) rc = err_set(ERR_IO, "%s: cannot write", path);
        if (f && fclose(f) != 0 && rc == ERR_OK) rc = err_set(ERR_IO, "%s: cannot write", path);
        if (rc == ERR_OK)
            rc = fs_commit(tmp, path, force);
        else
            fs_remove_quiet(tmp);
    }
    free(text);
    return rc;
}

static cJSON *diffusers_config_json(const struct wan_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "SkyReelsV2Transformer3DModel");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.34.0");
    cJSON_AddStringToObject(o, "_reelfarm_note", "tiny random model written by reelfarm make-tiny-model");
    const int p[3] = {c->patch[0], c->patch[1], c->patch[2]};
    cJSON_AddItemToObject(o, "patch_size", cJSON_CreateIntArray(p, 3));
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->num_heads);
    cJSON_AddNumberToObject(o, "attention_head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(o, "in_channels", (double)c->in_channels);
    cJSON_AddNumberToObject(o, "out_channels", (double)c->out_channels);
    cJSON_AddNumberToObject(o, "text_dim", (double)c->text_dim);
    cJSON_AddNumberToObject(o, "freq_dim", (double)c->freq_dim);
    cJSON_AddNumberToObject(o, "ffn_dim", (double)c->ffn_dim);
    cJSON_AddNumberToObject(o, "num_layers", (double)c->num_layers);
    cJSON_AddBoolToObject(o, "cross_attn_norm", c->cross_attn_norm);
    cJSON_AddStringToObject(o, "qk_norm", "rms_norm_across_heads");
    cJSON_AddNumberToObject(o, "eps", c->eps);
    if (c->has_image) {
        cJSON_AddNumberToObject(o, "image_dim", (double)c->image_dim);
        cJSON_AddNumberToObject(o, "added_kv_proj_dim", (double)c->dim);
    } else {
        cJSON_AddNullToObject(o, "image_dim");
        cJSON_AddNullToObject(o, "added_kv_proj_dim");
    }
    cJSON_AddNumberToObject(o, "rope_max_seq_len", (double)c->rope_max_seq_len);
    cJSON_AddNullToObject(o, "pos_embed_seq_len");
    cJSON_AddBoolToObject(o, "inject_sample_info", c->inject_sample_info);
    cJSON_AddNumberToObject(o, "num_frame_per_block", 1);
    return o;
}

static cJSON *original_config_json(const struct wan_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "WanModel");
    cJSON_AddStringToObject(o, "_reelfarm_note", "tiny random model written by reelfarm make-tiny-model; text_dim and "
                                                 "image_dim are reelfarm extensions (upstream fixes 4096 and 1280)");
    cJSON_AddStringToObject(o, "model_type", c->has_image ? "i2v" : "t2v");
    cJSON_AddNumberToObject(o, "text_len", (double)c->text_len);
    cJSON_AddNumberToObject(o, "in_dim", (double)c->in_channels);
    cJSON_AddNumberToObject(o, "dim", (double)c->dim);
    cJSON_AddNumberToObject(o, "ffn_dim", (double)c->ffn_dim);
    cJSON_AddNumberToObject(o, "freq_dim", (double)c->freq_dim);
    cJSON_AddNumberToObject(o, "text_dim", (double)c->text_dim);
    if (c->has_image) cJSON_AddNumberToObject(o, "image_dim", (double)c->image_dim);
    cJSON_AddNumberToObject(o, "out_dim", (double)c->out_channels);
    cJSON_AddNumberToObject(o, "num_heads", (double)c->num_heads);
    cJSON_AddNumberToObject(o, "num_layers", (double)c->num_layers);
    cJSON_AddNumberToObject(o, "eps", c->eps);
    cJSON_AddBoolToObject(o, "inject_sample_info", c->inject_sample_info);
    return o;
}

static cJSON *model_index_json(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "SkyReelsV2DiffusionForcingPipeline");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.34.0");
    const char *tr[2] = {"diffusers", "SkyReelsV2Transformer3DModel"};
    cJSON_AddItemToObject(o, "transformer", cJSON_CreateStringArray(tr, 2));
    const char *te[2] = {"transformers", "UMT5EncoderModel"};
    cJSON_AddItemToObject(o, "text_encoder", cJSON_CreateStringArray(te, 2));
    const char *tk[2] = {"transformers", "T5TokenizerFast"};
    cJSON_AddItemToObject(o, "tokenizer", cJSON_CreateStringArray(tk, 2));
    return o;
}

/* ---- weights ---- */

static int write_weights(const char *wdir, const struct wan_config *c, const struct wan_tiny_options *opt) {
    struct wan_weights w;
    memset(&w, 0, sizeof w);
    w.blocks = calloc((size_t)c->num_layers, sizeof *w.blocks);
    struct weight_decl *decls = NULL;
    size_t n = 0;
    struct st_write_item *items = NULL, *shard_items = NULL;
    void **bufs = NULL;
    const char **shard_of = NULL, **names = NULL;
    int rc = w.blocks ? wan_weights_declare(c, &w, &decls, &n) : err_set(ERR_NOMEM, "out of memory");
    if (rc < 0) goto end;
    items = calloc(n, sizeof *items);
    bufs = calloc(n, sizeof *bufs);
    shard_of = calloc(n, sizeof *shard_of);
    names = calloc(n, sizeof *names);
    if (!items || !bufs || !shard_of || !names) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    const int nm = opt->naming;
    for (size_t i = 0; i < n; i++) {
        const struct weight_decl *d = &decls[i];
        struct tensor t = tensor_make(DTYPE_F32, DEVICE_CPU, NULL, d->ndim, d->shape);
        const int64_t numel = tensor_numel(&t);
        float *vals = malloc((size_t)(numel ? numel : 1) * sizeof(float));
        bufs[i] = malloc((size_t)(numel ? numel : 1) * dtype_size(opt->dtype));
        if (!vals || !bufs[i]) {
            free(vals);
            rc = err_set(ERR_NOMEM, "out of memory");
            goto end;
        }
        wan_tiny_values(vals, numel, d->ndim, d->shape, d->name[WAN_NAMING_DIFFUSERS], opt->seed);
        dtype_from_f32(bufs[i], opt->dtype, vals, (size_t)numel);
        free(vals);
        items[i].name = d->name[nm];
        items[i].dtype = opt->dtype;
        items[i].ndim = d->ndim;
        memcpy(items[i].shape, d->shape, sizeof d->shape);
        items[i].data = bufs[i];
        names[i] = d->name[nm];
    }

    const char *stem = opt->naming == WAN_NAMING_DIFFUSERS ? "diffusion_pytorch_model" : "model";
    const char *meta[] = {"format", "pt", "generator", "reelfarm make-tiny-model"};
    char path[1200], file[256];
    if (opt->shards <= 1) {
        snprintf(file, sizeof file, "%s.safetensors", stem);
        rc = fs_join(path, sizeof path, wdir, file);
        if (rc == ERR_OK) rc = st_write(path, items, n, meta, 2, opt->force);
        goto end;
    }
    /* Round-robin over shards in table order: every shard gets global and block tensors. */
    char shard_names[16][96];
    const int ns = opt->shards;
    shard_items = calloc(n, sizeof *shard_items);
    if (!shard_items) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    for (int s = 0; s < ns; s++) {
        snprintf(shard_names[s], sizeof shard_names[s], "%s-%05d-of-%05d.safetensors", stem, s + 1, ns);
        size_t k = 0;
        for (size_t i = (size_t)s; i < n; i += (size_t)ns) shard_items[k++] = items[i];
        rc = fs_join(path, sizeof path, wdir, shard_names[s]);
        if (rc == ERR_OK) rc = st_write(path, shard_items, k, meta, 2, opt->force);
        if (rc < 0) goto end;
    }
    for (size_t i = 0; i < n; i++) shard_of[i] = shard_names[i % (size_t)ns];
    snprintf(file, sizeof file, "%s.safetensors.index.json", stem);
    rc = fs_join(path, sizeof path, wdir, file);
    if (rc == ERR_OK) rc = st_write_index(path, names, shard_of, n, opt->force);
end:
    if (bufs)
        for (size_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(items);
    free(shard_items);
    free(shard_of);
    free(names);
    free(decls);
    free(w.blocks);
    return rc;
}

/* ---- example input for dit-forward ---- */

static int write_example_input(const char *dir, const struct wan_config *c, const struct wan_tiny_options *opt) {
    char edir[1100], path[1200];
    TRY(fs_join(edir, sizeof edir, dir, "examples"));
    TRY(fs_mkdir_p(edir));
    TRY(fs_join(path, sizeof path, edir, "dit_input.h5"));
    const int64_t f = 4, h = 16, w = 16, lc = 32, pad = 8, ni = 8;
    const int64_t lat_n = c->out_channels * f * h * w, cond_c = c->in_channels - c->out_channels;
    float *lat = malloc((size_t)lat_n * sizeof(float));
    float *ctx = calloc((size_t)(lc * c->text_dim), sizeof(float));
    float *cond = cond_c ? malloc((size_t)(cond_c * f * h * w) * sizeof(float)) : NULL;
    float *clip = c->has_image ? malloc((size_t)(ni * c->image_dim) * sizeof(float)) : NULL;
    struct h5_file *hf = NULL;
    int rc = ERR_OK;
    if (!lat || !ctx || (cond_c && !cond) || (c->has_image && !clip)) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    const uint64_t s = opt->seed;
    rng_normal_f32(lat, lat_n, s, rng_stream_id(RNG_PURPOSE_TINY_INPUT, 1, 0, 0), 0);
    rng_normal_f32(ctx, (lc - pad) * c->text_dim, s, rng_stream_id(RNG_PURPOSE_TINY_INPUT, 2, 0, 0), 0);
    if (cond) rng_normal_f32(cond, cond_c * f * h * w, s, rng_stream_id(RNG_PURPOSE_TINY_INPUT, 3, 0, 0), 0);
    if (clip) rng_normal_f32(clip, ni * c->image_dim, s, rng_stream_id(RNG_PURPOSE_TINY_INPUT, 4, 0, 0), 0);
    const float steps[4] = {999.0f, 727.0f, 388.0f, 0.0f}; /* a diffusion-forcing row: one timestep per frame */
    rc = h5_create(&hf, path, opt->force);
    if (rc < 0) goto end;
    rc = h5_write_f32(hf, "latents", lat, 4, (int64_t[]){c->out_channels, f, h, w});
    if (rc == ERR_OK) rc = h5_write_f32(hf, "timesteps", steps, 1, (int64_t[]){f});
    if (rc == ERR_OK) rc = h5_write_f32(hf, "context", ctx, 2, (int64_t[]){lc, c->text_dim});
    if (rc == ERR_OK && cond) rc = h5_write_f32(hf, "condition", cond, 4, (int64_t[]){cond_c, f, h, w});
    if (rc == ERR_OK && clip) rc = h5_write_f32(hf, "clip_features", clip, 2, (int64_t[]){ni, c->image_dim});
    if (rc == ERR_OK && c->inject_sample_info) rc = h5_write_i64(hf, "fps", (int64_t[]){1}, 0, NULL);
    if (rc == ERR_OK) rc = h5_attr_set_str(hf, "reelfarm_format", "reelfarm-dit-input");
    if (rc == ERR_OK) rc = h5_attr_set_i64(hf, "reelfarm_format_version", 1);
    if (rc == ERR_OK) rc = h5_commit(&hf);
end:
    h5_close(&hf);
    free(lat);
    free(ctx);
    free(cond);
    free(clip);
    return rc;
}

/* Write every file of the model into dir (which exists). */
static int write_model_files(const char *dir, const struct wan_config *c, const struct wan_tiny_options *opt) {
    char wdir[1100], index_path[1200], cfg_path[1200];
    const bool diffusers = opt->naming == WAN_NAMING_DIFFUSERS;
    TRY(fs_join(index_path, sizeof index_path, dir, "model_index.json"));
    if (diffusers)
        TRY(fs_join(wdir, sizeof wdir, dir, "transformer"));
    else
        snprintf(wdir, sizeof wdir, "%s", dir);
    TRY(fs_join(cfg_path, sizeof cfg_path, wdir, "config.json"));
    TRY(fs_mkdir_p(wdir));
    if (diffusers) {
        cJSON *index = model_index_json();
        int rc = write_json(index_path, index, opt->force);
        cJSON_Delete(index);
        TRY(rc);
    }
    cJSON *cfg_json = diffusers ? diffusers_config_json(c) : original_config_json(c);
    int rc = write_json(cfg_path, cfg_json, opt->force);
    cJSON_Delete(cfg_json);
    TRY(rc);
    TRY(write_weights(wdir, c, opt));
    TRY(umt5_tiny_write(dir, c->text_dim, opt));
    TRY(wan_vae_tiny_write(dir, opt));
    if (opt->example_input) TRY(write_example_input(dir, c, opt));
    return ERR_OK;
}

int wan_tiny_write(const char *dir, const struct wan_tiny_options *opt) {
    if (opt->shards < 1 || opt->shards > 16)
        return err_set(ERR_INVALID_ARG, "--shards %d: expected 1 to 16", opt->shards);
    if (opt->dtype != DTYPE_F32 && opt->dtype != DTYPE_BF16 && opt->dtype != DTYPE_F16)
        return err_set(ERR_INVALID_ARG, "--dtype %s: expected f32, bf16 or f16", dtype_name(opt->dtype));
    struct wan_config c;
    wan_tiny_config(opt, &c);
    if (fs_exists(dir) && !fs_is_dir(dir)) return err_set(ERR_EXISTS, "%s exists and is not a directory", dir);
    if (fs_is_dir(dir)) { /* write in place: only into an empty directory, or over our own files with --force */
        char **names = NULL;
        size_t n = 0;
        TRY(fs_list_dir(dir, "", &names, &n));
        const bool empty = n == 0;
        fs_free_list(&names, &n);
        if (!empty && !opt->force)
            return err_set(ERR_EXISTS, "%s is not empty; refusing to write a model into it (use --force)", dir);
        return write_model_files(dir, &c, opt);
    }
    /* A new directory appears whole or not at all: build it beside, then rename. */
    char tmp[1200];
    TRY(fs_temp_path(tmp, sizeof tmp, dir));
    int rc = fs_mkdir_p(tmp);
    if (rc == ERR_OK) rc = write_model_files(tmp, &c, opt);
    if (rc == ERR_OK && rename(tmp, dir) != 0) rc = err_set(ERR_IO, "%s: cannot create (rename from %s failed)", dir, tmp);
    if (rc < 0) fs_remove_tree_quiet(tmp);
    return rc;
}
