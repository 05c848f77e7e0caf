/* model/wan_vae.c - Wan 2.1 VAE: config, strict loading, streaming encoder and decoder (spec 2.4, 7).
 *
 * The network is a flat list of layers (struct vae_layer) built from the config; the same list names the
 * tensors for loading and for the tiny-model writer, and drives the streams. A stream pushes one frame at a
 * time through the list, depth first: a layer that produces a frame hands it to the next layer at once, the
 * temporal downsample holds every other frame, the temporal upsample turns one frame into two (each pushed
 * through the rest of the network before the next). State that crosses frames (spec 7.3, 7.4):
 *  - each causal 3x3x3 conv keeps its last two input frames (zeros before the first: the whole-sequence conv
 *    with two zero frames in front);
 *  - downsample3d passes frame 0 through spatially and then convolves the windows (q0, q1, q2), (q2, q3, q4)...;
 *  - upsample3d passes frame 0 through spatially, then runs its time conv over [0, 0, x1, x2, ...] (frame 0 is
 *    not temporal context: the reference's "Rep" marker), each result giving two frames.
 * The head's conv (96 -> 3 channels in the decoder) keeps two partial output sums instead of two input frames:
 * the same additions in the same order, with a 32nd of the state.
 * Buffers: the layers of one resolution level share three frames (input, work, output rotate among them; a
 * resample writes into the next level's three), the upsampling is fused into the following conv, and only
 * what must survive while later layers run is per layer (caches, the temporal resample state, attention
 * scratch). Everything is carved from one arena sized by a measuring pass (wan_vae_stream_bytes), so memory
 * is fixed before the first frame. The cross-frame input state (conv caches, downsample3d's window) may be
 * stored in bf16 (cache_dtype): rounded to nearest even when stored, widened by op_conv_frames when read, all
 * arithmetic f32. That halves most of the stream's memory (upstream decodes under bf16 autocast, so its caches
 * are bf16 too) at the cost of exactness; f32, the default, is exact.
 */
#include "model/wan_vae.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/fs.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "model/weight_table.h"

enum { RNG_PURPOSE_VAE_RANDOM = 0x76616552 }; /* "vaeR": random benchmark weights */

/* ---- config ---- */

static const float WAN21_LATENTS_MEAN[16] = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                             -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                             -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
static const float WAN21_LATENTS_STD[16] = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                            3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

void wan_vae_default_config(struct wan_vae_config *c) {
    memset(c, 0, sizeof *c);
    c->base_dim = 96;
    c->z_dim = 16;
    c->n_stages = 4;
    const int64_t mult[4] = {1, 2, 4, 4};
    memcpy(c->dim_mult, mult, sizeof mult);
    c->num_res_blocks = 2;
    c->temporal_down[0] = false, c->temporal_down[1] = true, c->temporal_down[2] = true;
    memcpy(c->latents_mean, WAN21_LATENTS_MEAN, sizeof WAN21_LATENTS_MEAN);
    memcpy(c->latents_std, WAN21_LATENTS_STD, sizeof WAN21_LATENTS_STD);
}

int wan_vae_spatial_factor(const struct wan_vae_config *c) { return 1 << (c->n_stages - 1); }

int wan_vae_temporal_factor(const struct wan_vae_config *c) {
    int f = 1;
    for (int i = 0; i < c->n_stages - 1; i++)
        if (c->temporal_down[i]) f *= 2;
    return f;
}

int64_t wan_vae_decoded_frames(const struct wan_vae_config *c, int64_t latent_frames) {
    return latent_frames < 1 ? 0 : 1 + (int64_t)wan_vae_temporal_factor(c) * (latent_frames - 1);
}

int64_t wan_vae_encoded_frames(const struct wan_vae_config *c, int64_t pixel_frames) {
    return pixel_frames < 1 ? 0 : 1 + (pixel_frames - 1) / wan_vae_temporal_factor(c);
}

/* A JSON array of n numbers (n in [1, cap]) into out; *n_out receives the count. */
static int json_numbers(const cJSON *o, const char *key, const char *path, double *out, int cap, int *n_out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return err_set(ERR_FORMAT, "%s: \"%s\" must be an array of numbers", path, key);
    const int n = cJSON_GetArraySize(a);
    if (n < 1 || n > cap) return err_set(ERR_FORMAT, "%s: \"%s\" has %d entries; expected 1 to %d", path, key, n, cap);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (cJSON_IsBool(e))
            out[i] = cJSON_IsTrue(e) ? 1 : 0;
        else if (cJSON_IsNumber(e) && isfinite(e->valuedouble))
            out[i] = e->valuedouble;
        else
            return err_set(ERR_FORMAT, "%s: \"%s\"[%d] is %s; expected a number", path, key, i, json_type_name(e));
    }
    *n_out = n;
    return ERR_OK;
}

static int read_config(const char *path, struct wan_vae_config *c) {
    static const char *const keys[] = {
        "_class_name", "_diffusers_version", "_name_or_path", "base_dim", "z_dim", "dim_mult", "num_res_blocks",
        "attn_scales", "temperal_downsample", "dropout", "latents_mean", "latents_std", "is_residual",
        "in_channels", "out_channels", "patch_size", "scale_factor_temporal", "scale_factor_spatial", "clip_output",
        "decoder_base_dim"};
    cJSON *o = NULL;
    TRY(json_read_file(path, &o));
    wan_vae_default_config(c);
    int rc = json_check_keys(o, path, keys, sizeof keys / sizeof keys[0]);
    int64_t v;
    double arr[VAE_Z_MAX];
    int n = 0;
    if (rc == ERR_OK && json_has(o, "_class_name")) {
        const char *cls;
        rc = json_get_str(o, "_class_name", path, &cls);
        if (rc == ERR_OK && strcmp(cls, "AutoencoderKLWan") != 0)
            rc = err_set(ERR_UNSUPPORTED, "%s: _class_name \"%s\"; expected \"AutoencoderKLWan\"", path, cls);
    }
    if (rc == ERR_OK && json_has(o, "base_dim")) rc = json_get_i64(o, "base_dim", path, &c->base_dim);
    if (rc == ERR_OK && json_has(o, "z_dim")) rc = json_get_i64(o, "z_dim", path, &c->z_dim);
    if (rc == ERR_OK && json_has(o, "num_res_blocks")) rc = json_get_i64(o, "num_res_blocks", path, &v), c->num_res_blocks = (int)v;
    if (rc == ERR_OK && json_has(o, "dim_mult")) {
        rc = json_numbers(o, "dim_mult", path, arr, VAE_STAGES_MAX, &n);
        for (int i = 0; rc == ERR_OK && i < n; i++) {
            c->dim_mult[i] = (int64_t)arr[i];
            if (arr[i] != (double)c->dim_mult[i] || c->dim_mult[i] < 1)
                rc = err_set(ERR_FORMAT, "%s: dim_mult[%d] must be a positive integer", path, i);
        }
        if (rc == ERR_OK) c->n_stages = n;
        if (rc == ERR_OK && n < 2) rc = err_set(ERR_UNSUPPORTED, "%s: dim_mult needs at least 2 stages", path);
    }
    if (rc == ERR_OK && json_has(o, "temperal_downsample")) {
        rc = json_numbers(o, "temperal_downsample", path, arr, VAE_STAGES_MAX, &n);
        if (rc == ERR_OK && n != c->n_stages - 1)
            rc = err_set(ERR_FORMAT, "%s: temperal_downsample has %d entries; dim_mult implies %d", path, n,
                         c->n_stages - 1);
        for (int i = 0; rc == ERR_OK && i < n; i++) c->temporal_down[i] = arr[i] != 0;
    }
    if (rc == ERR_OK && json_has(o, "attn_scales")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "attn_scales");
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 0)
            rc = err_set(ERR_UNSUPPORTED, "%s: attn_scales must be [] (attention only in the middle blocks)", path);
    }
    if (rc == ERR_OK && json_has(o, "is_residual")) {
        bool res;
        rc = json_get_bool(o, "is_residual", path, &res);
        if (rc == ERR_OK && res) rc = err_set(ERR_UNSUPPORTED, "%s: is_residual true is the Wan 2.2 VAE; reelfarm runs the Wan 2.1 VAE", path);
    }
    static const char *const three[] = {"in_channels", "out_channels"};
    for (int i = 0; i < 2 && rc == ERR_OK; i++)
        if (json_has(o, three[i])) {
            rc = json_get_i64(o, three[i], path, &v);
            if (rc == ERR_OK && v != 3) rc = err_set(ERR_UNSUPPORTED, "%s: %s %lld; the Wan 2.1 VAE has 3", path, three[i], (long long)v);
        }
    if (rc == ERR_OK && json_has(o, "patch_size"))
        rc = err_set(ERR_UNSUPPORTED, "%s: patch_size is set (Wan 2.2 VAE); reelfarm runs the Wan 2.1 VAE", path);
    if (rc == ERR_OK && (c->base_dim < 1 || c->z_dim < 1 || c->z_dim > VAE_Z_MAX || c->num_res_blocks < 1))
        rc = err_set(ERR_UNSUPPORTED, "%s: base_dim %lld, z_dim %lld (1..%d), num_res_blocks %d out of range", path,
                     (long long)c->base_dim, (long long)c->z_dim, VAE_Z_MAX, c->num_res_blocks);
    static const char *const stats[] = {"latents_mean", "latents_std"};
    for (int s = 0; s < 2 && rc == ERR_OK; s++) {
        float *dst = s ? c->latents_std : c->latents_mean;
        if (!json_has(o, stats[s])) {
            if (c->z_dim != 16) rc = err_set(ERR_MISSING, "%s: missing key \"%s\" (needed for z_dim %lld)", path, stats[s], (long long)c->z_dim);
            continue;
        }
        rc = json_numbers(o, stats[s], path, arr, VAE_Z_MAX, &n);
        if (rc == ERR_OK && n != c->z_dim)
            rc = err_set(ERR_FORMAT, "%s: %s has %d entries; expected z_dim = %lld", path, stats[s], n, (long long)c->z_dim);
        for (int i = 0; rc == ERR_OK && i < n; i++) {
            dst[i] = (float)arr[i];
            if (s && !(arr[i] > 0)) rc = err_set(ERR_FORMAT, "%s: latents_std[%d] = %g must be positive", path, i, arr[i]);
        }
    }
    cJSON_Delete(o);
    return rc;
}

/* ---- the layer list ---- */

struct net_builder {
    struct vae_layer *layers;
    int n, cap, level;
};

static struct vae_layer *add_layer(struct net_builder *b, enum vae_layer_kind kind, int64_t cin, int64_t cout,
                                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static struct vae_layer *add_layer(struct net_builder *b, enum vae_layer_kind kind, int64_t cin, int64_t cout,
                                   const char *fmt, ...) {
    CHECK(b->n < b->cap, "VAE layer list overflow");
    struct vae_layer *l = &b->layers[b->n++];
    memset(l, 0, sizeof *l);
    l->kind = kind, l->cin = cin, l->cout = cout, l->level = b->level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->name, sizeof l->name, fmt, ap);
    va_end(ap);
    if (kind == VAE_DOWN2D || kind == VAE_DOWN3D || kind == VAE_UP2D || kind == VAE_UP3D) b->level++;
    return l;
}

static int layer_cap(const struct wan_vae_config *c) { return 16 + c->n_stages * (c->num_res_blocks + 2) * 2; }

/* Encoder (spec 7.2): conv_in, per stage num_res_blocks resblocks and a downsample (not after the last),
 * middle resblock / attention / resblock, head, quant_conv. */
static void build_encoder(const struct wan_vae_config *c, struct vae_net *net) {
    struct net_builder b = {.layers = calloc((size_t)layer_cap(c), sizeof(struct vae_layer)), .cap = layer_cap(c)};
    CHECK(b.layers, "out of memory");
    const int64_t d0 = c->base_dim;
    add_layer(&b, VAE_CONV, 3, d0, "encoder.conv_in");
    int k = 0;
    int64_t in = d0;
    for (int i = 0; i < c->n_stages; i++) {
        const int64_t out = c->base_dim * c->dim_mult[i];
        for (int j = 0; j < c->num_res_blocks; j++, in = out)
            add_layer(&b, VAE_RESBLOCK, in, out, "encoder.down_blocks.%d", k++);
        if (i != c->n_stages - 1)
            add_layer(&b, c->temporal_down[i] ? VAE_DOWN3D : VAE_DOWN2D, out, out, "encoder.down_blocks.%d", k++);
    }
    add_layer(&b, VAE_RESBLOCK, in, in, "encoder.mid_block.resnets.0");
    add_layer(&b, VAE_ATTN, in, in, "encoder.mid_block.attentions.0");
    add_layer(&b, VAE_RESBLOCK, in, in, "encoder.mid_block.resnets.1");
    add_layer(&b, VAE_HEAD, in, 2 * c->z_dim, "encoder.conv_out");
    add_layer(&b, VAE_CONV, 2 * c->z_dim, 2 * c->z_dim, "quant_conv");
    net->layers = b.layers, net->n_layers = b.n, net->n_levels = b.level + 1;
}

/* Decoder: post_quant_conv, conv_in, middle, per stage num_res_blocks + 1 resblocks and an upsample (not after
 * the last; 3-D where the reversed temperal_downsample is true), halving the channels after each upsample. */
static void build_decoder(const struct wan_vae_config *c, struct vae_net *net) {
    struct net_builder b = {.layers = calloc((size_t)layer_cap(c), sizeof(struct vae_layer)), .cap = layer_cap(c)};
    CHECK(b.layers, "out of memory");
    const int ns = c->n_stages;
    int64_t dims[VAE_STAGES_MAX + 1];
    dims[0] = c->base_dim * c->dim_mult[ns - 1];
    for (int i = 0; i < ns; i++) dims[i + 1] = c->base_dim * c->dim_mult[ns - 1 - i];
    add_layer(&b, VAE_CONV, c->z_dim, c->z_dim, "post_quant_conv");
    add_layer(&b, VAE_CONV, c->z_dim, dims[0], "decoder.conv_in");
    add_layer(&b, VAE_RESBLOCK, dims[0], dims[0], "decoder.mid_block.resnets.0");
    add_layer(&b, VAE_ATTN, dims[0], dims[0], "decoder.mid_block.attentions.0");
    add_layer(&b, VAE_RESBLOCK, dims[0], dims[0], "decoder.mid_block.resnets.1");
    for (int i = 0; i < ns; i++) {
        int64_t in = dims[i];
        const int64_t out = dims[i + 1];
        if (i > 0) in /= 2; /* the previous stage's upsample halved the channels */
        for (int j = 0; j < c->num_res_blocks + 1; j++, in = out)
            add_layer(&b, VAE_RESBLOCK, in, out, "decoder.up_blocks.%d.resnets.%d", i, j);
        if (i != ns - 1)
            add_layer(&b, c->temporal_down[ns - 2 - i] ? VAE_UP3D : VAE_UP2D, out, out / 2,
                      "decoder.up_blocks.%d.upsamplers.0", i);
    }
    add_layer(&b, VAE_HEAD, dims[ns], 3, "decoder.conv_out");
    net->layers = b.layers, net->n_layers = b.n, net->n_levels = b.level + 1;
}

/* ---- tensor names: Diffusers and original (spec 2.4) ---- */

/* The original-layout name of a Diffusers module prefix ("decoder.up_blocks.1.resnets.0" -> "decoder.upsamples.4"). */
static void original_prefix(const struct wan_vae_config *c, const char *d, char *out, size_t cap) {
    int i, j, k;
    if (sscanf(d, "encoder.down_blocks.%d", &k) == 1)
        snprintf(out, cap, "encoder.downsamples.%d", k);
    else if (sscanf(d, "decoder.up_blocks.%d.resnets.%d", &i, &j) == 2)
        snprintf(out, cap, "decoder.upsamples.%d", i * (c->num_res_blocks + 2) + j);
    else if (sscanf(d, "decoder.up_blocks.%d.upsamplers.0", &i) == 1)
        snprintf(out, cap, "decoder.upsamples.%d", i * (c->num_res_blocks + 2) + c->num_res_blocks + 1);
    else if (strcmp(d, "encoder.conv_in") == 0 || strcmp(d, "decoder.conv_in") == 0)
        snprintf(out, cap, "%.7s.conv1", d);
    else if (strcmp(d, "quant_conv") == 0)
        snprintf(out, cap, "conv1");
    else if (strcmp(d, "post_quant_conv") == 0)
        snprintf(out, cap, "conv2");
    else if (sscanf(d, "encoder.mid_block.resnets.%d", &k) == 1 || sscanf(d, "decoder.mid_block.resnets.%d", &k) == 1)
        snprintf(out, cap, "%.7s.middle.%d", d, 2 * k);
    else if (strstr(d, ".mid_block.attentions.0"))
        snprintf(out, cap, "%.7s.middle.1", d);
    else
        snprintf(out, cap, "%s", d);
}

/* One tensor of a layer: its names, torch shape and where it goes after conversion to f32. */
enum ref_kind { REF_VECTOR, REF_LINEAR, REF_CONV };
struct vae_tensor_ref {
    struct vae_tensor_desc desc;
    enum ref_kind kind;
    struct tensor *dst;    /* REF_VECTOR: gamma or bias [C]; REF_LINEAR: 1x1 conv weight used as [out, in] */
    struct vae_conv *conv; /* REF_CONV: weight repacked for op_conv_frames */
};

/* Names are prefix + "." + suffix (just the prefix for an empty suffix). */
static void ref_add(struct vae_tensor_ref *r, size_t *n, size_t cap, const char *dprefix, const char *oprefix,
                    const char *dsuffix, const char *osuffix, int ndim, const int64_t *shape, enum ref_kind kind,
                    struct tensor *dst, struct vae_conv *conv) {
    if (*n < cap) {
        struct vae_tensor_ref *e = &r[*n];
        memset(e, 0, sizeof *e);
        snprintf(e->desc.name, sizeof e->desc.name, "%s%s%s", dprefix, dsuffix[0] ? "." : "", dsuffix);
        snprintf(e->desc.original_name, sizeof e->desc.original_name, "%s%s%s", oprefix, osuffix[0] ? "." : "",
                 osuffix);
        e->desc.ndim = ndim;
        memcpy(e->desc.shape, shape, (size_t)ndim * sizeof(int64_t));
        e->kind = kind, e->dst = dst, e->conv = conv;
    }
    (*n)++;
}

/* A conv's weight and bias: torch Conv3d [co, ci, kt, k, k], or Conv2d [co, ci, k, k] when spatial_2d. */
static void conv_refs(struct vae_tensor_ref *r, size_t *n, size_t cap, const char *dp, const char *op, const char *ds,
                      const char *os, struct vae_conv *cv, int64_t co, int64_t ci, int kt, int k, bool spatial_2d) {
    char dw[64], ow[64], db[64], ob[64];
    snprintf(dw, sizeof dw, "%s%sweight", ds, ds[0] ? "." : ""), snprintf(ow, sizeof ow, "%s%sweight", os, os[0] ? "." : "");
    snprintf(db, sizeof db, "%s%sbias", ds, ds[0] ? "." : ""), snprintf(ob, sizeof ob, "%s%sbias", os, os[0] ? "." : "");
    cv->kt = kt, cv->k = k;
    const int64_t w5[5] = {co, ci, kt, k, k}, w4[4] = {co, ci, k, k}, b1[1] = {co};
    ref_add(r, n, cap, dp, op, dw, ow, spatial_2d ? 4 : 5, spatial_2d ? w4 : w5, REF_CONV, NULL, cv);
    ref_add(r, n, cap, dp, op, db, ob, 1, b1, REF_VECTOR, &cv->b, NULL);
}

/* Every tensor of net's layers (layers may be NULL-free descriptors: dst pointers then refer to them). */
static size_t net_refs(const struct wan_vae_config *c, struct vae_net *net, struct vae_tensor_ref *r, size_t n,
                       size_t cap) {
    for (int li = 0; li < net->n_layers; li++) {
        struct vae_layer *L = &net->layers[li];
        char op[96];
        original_prefix(c, L->name, op, sizeof op);
        const int64_t g4[4] = {L->cin, 1, 1, 1}, g4o[4] = {L->cout, 1, 1, 1}, g3[3] = {L->cin, 1, 1};
        switch (L->kind) {
        case VAE_CONV: {
            const int k = strcmp(L->name + strlen(L->name) - 7, "conv_in") == 0 ? 3 : 1;
            conv_refs(r, &n, cap, L->name, op, "", "", &L->conv1, L->cout, L->cin, k, k, false);
            break;
        }
        case VAE_RESBLOCK:
            ref_add(r, &n, cap, L->name, op, "norm1.gamma", "residual.0.gamma", 4, g4, REF_VECTOR, &L->gamma1, NULL);
            conv_refs(r, &n, cap, L->name, op, "conv1", "residual.2", &L->conv1, L->cout, L->cin, 3, 3, false);
            ref_add(r, &n, cap, L->name, op, "norm2.gamma", "residual.3.gamma", 4, g4o, REF_VECTOR, &L->gamma2, NULL);
            conv_refs(r, &n, cap, L->name, op, "conv2", "residual.6", &L->conv2, L->cout, L->cout, 3, 3, false);
            if (L->cin != L->cout)
                conv_refs(r, &n, cap, L->name, op, "conv_shortcut", "shortcut", &L->shortcut, L->cout, L->cin, 1, 1,
                          false);
            break;
        case VAE_ATTN: {
            const int64_t qkv[4] = {3 * L->cin, L->cin, 1, 1}, qb[1] = {3 * L->cin}, pw[4] = {L->cin, L->cin, 1, 1},
                          pb[1] = {L->cin};
            ref_add(r, &n, cap, L->name, op, "norm.gamma", "norm.gamma", 3, g3, REF_VECTOR, &L->gamma1, NULL);
            ref_add(r, &n, cap, L->name, op, "to_qkv.weight", "to_qkv.weight", 4, qkv, REF_LINEAR, &L->conv1.w, NULL);
            ref_add(r, &n, cap, L->name, op, "to_qkv.bias", "to_qkv.bias", 1, qb, REF_VECTOR, &L->conv1.b, NULL);
            ref_add(r, &n, cap, L->name, op, "proj.weight", "proj.weight", 4, pw, REF_LINEAR, &L->conv2.w, NULL);
            ref_add(r, &n, cap, L->name, op, "proj.bias", "proj.bias", 1, pb, REF_VECTOR, &L->conv2.b, NULL);
            break;
        }
        case VAE_DOWN2D:
        case VAE_DOWN3D:
            conv_refs(r, &n, cap, L->name, op, "resample.1", "resample.1", &L->conv1, L->cout, L->cin, 1, 3, true);
            if (L->kind == VAE_DOWN3D)
                conv_refs(r, &n, cap, L->name, op, "time_conv", "time_conv", &L->conv2, L->cin, L->cin, 3, 1, false);
            break;
        case VAE_UP2D:
        case VAE_UP3D:
            if (L->kind == VAE_UP3D)
                conv_refs(r, &n, cap, L->name, op, "time_conv", "time_conv", &L->conv2, 2 * L->cin, L->cin, 3, 1,
                          false);
            conv_refs(r, &n, cap, L->name, op, "resample.1", "resample.1", &L->conv1, L->cout, L->cin, 1, 3, true);
            break;
        case VAE_HEAD: {
            const char *part = strncmp(L->name, "encoder", 7) == 0 ? "encoder" : "decoder";
            char hd[16];
            snprintf(hd, sizeof hd, "%s", part);
            ref_add(r, &n, cap, hd, hd, "norm_out.gamma", "head.0.gamma", 4, g4, REF_VECTOR, &L->gamma1, NULL);
            conv_refs(r, &n, cap, hd, hd, "conv_out", "head.2", &L->conv1, L->cout, L->cin, 3, 3, false);
            break;
        }
        }
    }
    return n;
}

static size_t all_refs(const struct wan_vae_config *c, struct vae_net *enc, struct vae_net *dec,
                       struct vae_tensor_ref *r, size_t cap) {
    /* Diffusers' state-dict order: encoder, decoder, quant_conv, post_quant_conv does not matter here. */
    size_t n = net_refs(c, enc, r, 0, cap);
    return net_refs(c, dec, r, n, cap);
}

size_t wan_vae_tensor_list(const struct wan_vae_config *c, struct vae_tensor_desc *out, size_t cap) {
    struct vae_net enc, dec;
    build_encoder(c, &enc);
    build_decoder(c, &dec);
    const size_t n = all_refs(c, &enc, &dec, NULL, 0);
    struct vae_tensor_ref *r = calloc(n, sizeof *r);
    CHECK(r, "out of memory");
    all_refs(c, &enc, &dec, r, n);
    for (size_t i = 0; i < n && i < cap; i++) out[i] = r[i].desc;
    free(r), free(enc.layers), free(dec.layers);
    return n;
}

/* ---- loading ---- */

/* The original layout's VAE file, converted to safetensors (Wan2.1_VAE.pth upstream; ComfyUI's repackaging). */
static const char *const ORIGINAL_FILE_NAMES[2] = {"Wan2.1_VAE.safetensors", "wan_2.1_vae.safetensors"};

bool wan_vae_is_original_file_name(const char *name) {
    return strcmp(name, ORIGINAL_FILE_NAMES[0]) == 0 || strcmp(name, ORIGINAL_FILE_NAMES[1]) == 0;
}

static int locate(const char *path, char *config_path, size_t ccap, char *wdir, size_t wcap, char *single,
                  size_t scap) {
    config_path[0] = single[0] = wdir[0] = '\0';
    const size_t len = strlen(path);
    if (len > 12 && strcmp(path + len - 12, ".safetensors") == 0) {
        if (!fs_is_file(path)) return err_set(ERR_IO, "%s: no such file", path);
        snprintf(single, scap, "%s", path);
        return ERR_OK;
    }
    if (!fs_is_dir(path)) return err_set(ERR_IO, "%s: no such model directory", path);
    char cand[1100];
    TRY(fs_join(wdir, wcap, path, "vae"));
    TRY(fs_join(config_path, ccap, wdir, "config.json"));
    if (fs_is_file(config_path)) return ERR_OK;
    TRY(fs_join(cand, sizeof cand, path, "config.json"));
    if (fs_is_file(cand)) {
        /* DIR may be the vae/ directory itself: its config names the class */
        cJSON *o = NULL;
        if (json_read_file(cand, &o) == ERR_OK) {
            const cJSON *cls = cJSON_GetObjectItemCaseSensitive(o, "_class_name");
            const bool is_vae = cJSON_IsString(cls) && strcmp(cls->valuestring, "AutoencoderKLWan") == 0;
            cJSON_Delete(o);
            if (is_vae) {
                snprintf(wdir, wcap, "%s", path);
                snprintf(config_path, ccap, "%s", cand);
                return ERR_OK;
            }
        }
        err_clear();
    }
    config_path[0] = wdir[0] = '\0';
    for (int i = 0; i < 2; i++) {
        TRY(fs_join(cand, sizeof cand, path, ORIGINAL_FILE_NAMES[i]));
        if (fs_is_file(cand)) {
            snprintf(single, scap, "%s", cand);
            return ERR_OK;
        }
    }
    TRY(fs_join(cand, sizeof cand, path, "Wan2.1_VAE.pth"));
    if (fs_is_file(cand))
        return err_set(ERR_UNSUPPORTED,
                       "%s: the VAE is a torch pickle (Wan2.1_VAE.pth), which reelfarm does not read; use the Diffusers "
                       "layout (vae/ with safetensors) or Wan2.1_VAE.safetensors",
                       path);
    return err_set(ERR_MISSING, "%s: no VAE (expected vae/config.json or Wan2.1_VAE.safetensors)", path);
}

/* A single file has no config: take the released structure (spec 7.2) and read the two widths from the
 * tensors (the input conv's output channels and the post-quant conv's), so narrow test models load too. */
static int config_from_tensors(const struct st_set *st, const char *path, struct wan_vae_config *c) {
    wan_vae_default_config(c);
    const struct st_tensor *in = st_find(st, "encoder.conv1.weight"), *pq = st_find(st, "conv2.weight");
    if (!in) in = st_find(st, "encoder.conv_in.weight");
    if (!pq) pq = st_find(st, "post_quant_conv.weight");
    if (!in || !pq || in->ndim != 5 || pq->ndim != 5)
        return err_set(ERR_MISSING, "%s: not a Wan VAE (no 5-D encoder.conv1.weight / conv2.weight)", path);
    c->base_dim = in->shape[0];
    c->z_dim = pq->shape[0];
    if (c->z_dim != 16)
        return err_set(ERR_UNSUPPORTED, "%s: z_dim %lld without a config.json (latent statistics are known for 16)",
                       path, (long long)c->z_dim);
    return ERR_OK;
}

/* Permute a torch conv weight [co, ci, kt, k, k] (f32) to [kt, k k, co, ci]. */
static void repack_conv(float *dst, const float *src, int64_t co, int64_t ci, int kt, int k) {
    const int64_t taps = (int64_t)k * k;
    for (int64_t o = 0; o < co; o++)
        for (int64_t i = 0; i < ci; i++)
            for (int t = 0; t < kt; t++)
                for (int64_t s = 0; s < taps; s++)
                    dst[((t * taps + s) * co + o) * ci + i] = src[((o * ci + i) * kt + t) * taps + s];
}

/* Convert every tensor to f32 into the weight arena (repacking conv weights): from the bound checkpoint
 * tensors raw[], or, when raw is NULL, random values from seed (conv weights N(0, 1/fan_in), biases N(0, 0.01),
 * gains 1 + N(0, 0.01), as the tiny model). Then the latent statistics. */
static int materialise(struct wan_vae *v, const struct vae_tensor_ref *refs, const struct tensor *raw, size_t n,
                       uint64_t seed) {
    const int64_t z = v->cfg.z_dim;
    size_t bytes = 3 * arena_round((size_t)z * sizeof(float));
    int64_t max_numel = 1;
    for (size_t i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < refs[i].desc.ndim; d++) numel *= refs[i].desc.shape[d];
        bytes += arena_round((size_t)numel * sizeof(float));
        max_numel = numel > max_numel ? numel : max_numel;
    }
    TRY(arena_init(&v->weight_arena, "vae weights", bytes));
    float *stage = malloc((size_t)max_numel * sizeof(float)); /* one conversion buffer (the largest tensor) */
    if (!stage) return err_set(ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct vae_tensor_ref *r = &refs[i];
        const struct vae_tensor_desc *d = &r->desc;
        int64_t numel = 1, fan_in = 1;
        for (int k = 0; k < d->ndim; k++) numel *= d->shape[k], fan_in *= k ? d->shape[k] : 1;
        if (raw) {
            weight_copy_f32(stage, &raw[i]);
        } else {
            rng_normal_f32(stage, numel, seed, rng_stream_id(RNG_PURPOSE_VAE_RANDOM, i, 0, 0), 0);
            const bool gain = strstr(d->name, ".gamma") != NULL;
            const float std = gain || d->ndim == 1 ? 0.1f : 1.0f / sqrtf((float)fan_in), mean = gain ? 1.0f : 0.0f;
            for (int64_t j = 0; j < numel; j++) stage[j] = mean + std * stage[j];
        }
        float *dst = arena_alloc_f32(&v->weight_arena, (size_t)numel);
        if (r->kind == REF_CONV) {
            struct vae_conv *cv = r->conv;
            const int64_t co = d->shape[0], ci = d->shape[1];
            repack_conv(dst, stage, co, ci, cv->kt, cv->k);
            const int64_t shape[4] = {cv->kt, (int64_t)cv->k * cv->k, co, ci};
            cv->w = tensor_make(DTYPE_F32, DEVICE_CPU, dst, 4, shape);
        } else {
            memcpy(dst, stage, (size_t)numel * sizeof(float));
            *r->dst = r->kind == REF_LINEAR ? tensor_f32_2d(dst, d->shape[0], d->shape[1]) : tensor_f32_1d(dst, d->shape[0]);
        }
    }
    free(stage);
    float *mean = arena_alloc_f32(&v->weight_arena, (size_t)z), *sd = arena_alloc_f32(&v->weight_arena, (size_t)z),
          *inv = arena_alloc_f32(&v->weight_arena, (size_t)z);
    for (int64_t i = 0; i < z; i++) {
        mean[i] = v->cfg.latents_mean[i], sd[i] = v->cfg.latents_std[i];
        inv[i] = 1.0f / v->cfg.latents_std[i]; /* the reference normalises with (mean - m) * (1 / std) */
    }
    v->latents_mean = tensor_f32_1d(mean, z), v->latents_std = tensor_f32_1d(sd, z);
    v->latents_inv_std = tensor_f32_1d(inv, z);
    return ERR_OK;
}

static void free_nets(struct wan_vae *v) {
    free(v->enc.layers), free(v->dec.layers);
    v->enc.layers = v->dec.layers = NULL;
}

int wan_vae_load(struct wan_vae **out, const char *path) {
    *out = NULL;
    struct wan_vae *v = calloc(1, sizeof *v);
    if (!v) return err_set(ERR_NOMEM, "out of memory");
    char wdir[1100], single[1100];
    struct st_set *st = NULL;
    struct vae_tensor_ref *refs = NULL;
    struct weight_decl *decls = NULL;
    struct tensor *raw = NULL;
    int rc = locate(path, v->config_path, sizeof v->config_path, wdir, sizeof wdir, single, sizeof single);
    if (rc == ERR_OK && v->config_path[0]) rc = read_config(v->config_path, &v->cfg);
    if (rc == ERR_OK) {
        if (single[0]) {
            snprintf(v->weights_path, sizeof v->weights_path, "%s", single);
            rc = st_open(&st, single);
            if (rc == ERR_OK) rc = config_from_tensors(st, single, &v->cfg);
        } else {
            rc = weights_open_dir(wdir, &st, v->weights_path, sizeof v->weights_path);
        }
    }
    if (rc < 0) goto end;
    build_encoder(&v->cfg, &v->enc);
    build_decoder(&v->cfg, &v->dec);
    const size_t n = all_refs(&v->cfg, &v->enc, &v->dec, NULL, 0);
    refs = calloc(n, sizeof *refs);
    decls = calloc(n, sizeof *decls);
    raw = calloc(n, sizeof *raw);
    if (!refs || !decls || !raw) {
        rc = err_set(ERR_NOMEM, "out of memory");
        goto end;
    }
    all_refs(&v->cfg, &v->enc, &v->dec, refs, n);
    for (size_t i = 0; i < n; i++) {
        snprintf(decls[i].name[0], sizeof decls[i].name[0], "%s", refs[i].desc.name);
        snprintf(decls[i].name[1], sizeof decls[i].name[1], "%s", refs[i].desc.original_name);
        decls[i].ndim = refs[i].desc.ndim;
        memcpy(decls[i].shape, refs[i].desc.shape, sizeof refs[i].desc.shape);
        decls[i].slot = &raw[i];
    }
    v->original_naming = st_find(st, "encoder.conv1.weight") != NULL && !st_find(st, "encoder.conv_in.weight");
    struct weights_summary sum;
    rc = weights_bind(st, decls, n, v->original_naming ? 1 : 0, NULL, v->weights_path,
                      v->config_path[0] ? v->config_path : "(defaults of the Wan 2.1 VAE)", &sum);
    if (rc < 0) goto end;
    v->n_params = sum.n_params, v->stored_dtype = sum.stored_dtype;
    rc = materialise(v, refs, raw, n, 0);
end:
    st_close(&st); /* everything was converted into the arena */
    free(refs), free(decls), free(raw);
    if (rc < 0) {
        wan_vae_free(&v);
        return rc;
    }
    *out = v;
    return ERR_OK;
}

int wan_vae_create_random(struct wan_vae **out, const struct wan_vae_config *c, uint64_t seed) {
    *out = NULL;
    struct wan_vae *v = calloc(1, sizeof *v);
    if (!v) return err_set(ERR_NOMEM, "out of memory");
    v->cfg = *c;
    v->stored_dtype = DTYPE_F32;
    snprintf(v->weights_path, sizeof v->weights_path, "(random, seed %llu)", (unsigned long long)seed);
    build_encoder(&v->cfg, &v->enc);
    build_decoder(&v->cfg, &v->dec);
    const size_t n = all_refs(&v->cfg, &v->enc, &v->dec, NULL, 0);
    struct vae_tensor_ref *refs = calloc(n, sizeof *refs);
    int rc = refs ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    if (rc == ERR_OK) {
        all_refs(&v->cfg, &v->enc, &v->dec, refs, n);
        for (size_t i = 0; i < n; i++) {
            int64_t numel = 1;
            for (int d = 0; d < refs[i].desc.ndim; d++) numel *= refs[i].desc.shape[d];
            v->n_params += numel;
        }
        rc = materialise(v, refs, NULL, n, seed);
    }
    free(refs);
    if (rc < 0) {
        wan_vae_free(&v);
        return rc;
    }
    *out = v;
    return ERR_OK;
}

void wan_vae_free(struct wan_vae **vp) {
    struct wan_vae *v = vp ? *vp : NULL;
    if (!v) return;
    free_nets(v);
    arena_free(&v->weight_arena);
    free(v);
    *vp = NULL;
}

/* ---- streams ---- */

/* A causal conv's state: its last two input frames (f32 or bf16), or for the head's conv two partial output
 * sums (f32; see causal_conv_partial). */
struct conv_cache {
    struct tensor slot[2];
    int n;      /* valid frames (0, 1, 2); missing ones are zeros */
    int newest; /* slot index of the newest frame */
};

struct layer_state {
    struct conv_cache c1, c2;
    struct tensor t0, t1, t2;    /* per-kind state and scratch (see carve_layer) */
    int64_t received, produced;
};

/* Three frames [Cmax, H, W] per resolution level. A layer's input is one of them (or a frame from outside the
 * level); it works in the other two and leaves its output in one of them, which the next layer takes as input.
 * A resample writes into the next level's pool. With row bands, the frames of a level after the middle block
 * hold the most rows any band's layer has there instead of the whole frame. */
enum { LEVEL_POOL = 3 };
struct level_bufs {
    struct tensor pool[LEVEL_POOL];
    int64_t h, w, cmax;
};

/* A decoder row band (band_layout): for every layer after the split, the rows of its input and of its output
 * (global row indices of the layer's input and output levels, [lo, hi)), and the band's own output rows. */
enum { BAND_IN0, BAND_IN1, BAND_OUT0, BAND_OUT1 };
struct vae_band {
    int64_t (*rows)[4]; /* [n_layers] (entries before the split unused) */
    int64_t own0, own1; /* the output rows this band delivers */
};

struct vae_stream {
    const struct wan_vae *v;
    const struct vae_net *net;
    struct exec_ctx ctx;
    bool decoder;
    int64_t height, width;     /* pixel size */
    enum dtype cache_dtype;    /* of the cross-frame input state: DTYPE_F32 (exact) or DTYPE_BF16 */
    struct layer_state *st;    /* [n_layers] for the unbanded layers, then [n_layers] per computed band */
    struct level_bufs *lv;
    struct tensor latent;      /* decoder: the denormalised input; encoder: the normalised output */
    struct arena arena;
    vae_frame_fn sink;
    vae_rows_fn rows_sink;     /* band-major streams */
    void *sink_user;
    vae_probe_fn probe;
    void *probe_user;
    int64_t produced;
    /* decoder row bands (band_layout); n_bands 1: none, split = n_layers */
    int n_bands;
    int band_lo, band_hi;      /* the bands this stream computes: all of them (frame-major) or one (band-major) */
    int split, split_level;    /* the first layer run per band (the one after the middle block), its level */
    int cur;                   /* the band being computed */
    bool in_bands;             /* run_bands is running the bands of a frame */
    bool rows_mode;            /* band-major: a band's rows go to rows_sink */
    struct vae_band *bands;    /* [n_bands] */
    int64_t (*band_rows)[4];   /* [n_bands][n_layers], the bands' row tables */
    struct tensor mid;         /* the middle block's output [C, h, w], which every band reads its window from */
    struct tensor out[VAE_STAGES_MAX + 1]; /* frame-major: the output frames of one latent frame, assembled from
                                            * the bands [3, H, W]; band-major: out[0] holds a band's rows */
    int n_out_max, n_out;
};

static bool banded(const struct vae_stream *s) { return s->split < s->net->n_layers; }

/* The state of layer li: per band after the split. */
static struct layer_state *layer_st(const struct vae_stream *s, int li) {
    const int slot = li >= s->split ? 1 + s->cur - s->band_lo : 0;
    return &s->st[(size_t)slot * (size_t)s->net->n_layers + (size_t)li];
}

static struct tensor frame_alloc(struct arena *a, int64_t c, int64_t h, int64_t w) {
    float *p = arena_alloc_f32(a, (size_t)(c * h * w > 0 ? c * h * w : 1));
    return tensor_f32_3d(p, c, h, w);
}

/* Cross-frame state [c, h, w] of dtype dt (f32 or bf16). */
static struct tensor state_alloc(struct arena *a, enum dtype dt, int64_t c, int64_t h, int64_t w) {
    const int64_t n = c * h * w > 0 ? c * h * w : 1;
    return tensor_make(dt, DEVICE_CPU, arena_alloc(a, (size_t)n * dtype_size(dt)), 3, (int64_t[]){c, h, w});
}

/* A [c, h, w] view at the start of a larger buffer (of the buffer's dtype). */
static struct tensor frame_view(const struct tensor *buf, int64_t c, int64_t h, int64_t w) {
    return tensor_make(buf->dtype, DEVICE_CPU, buf->data, 3, (int64_t[]){c, h, w});
}

/* rows rows of every channel: dst rows [d0, d0 + rows) = src rows [s0, s0 + rows) (f32 frames [C, h, w] of one
 * width and channel count). */
static void copy_rows(struct tensor *dst, int64_t d0, const struct tensor *src, int64_t s0, int64_t rows) {
    const int64_t c = src->shape[0], w = src->shape[2], hd = dst->shape[1], hs = src->shape[1];
    CHECK(dst->dtype == DTYPE_F32 && src->dtype == DTYPE_F32 && dst->shape[0] == c && dst->shape[2] == w &&
              d0 >= 0 && s0 >= 0 && d0 + rows <= hd && s0 + rows <= hs,
          "VAE band rows: [%lld, %lld, %lld] rows %lld+%lld <- [%lld, %lld, %lld] rows %lld+%lld",
          (long long)dst->shape[0], (long long)hd, (long long)dst->shape[2], (long long)d0, (long long)rows,
          (long long)c, (long long)hs, (long long)w, (long long)s0, (long long)rows);
    float *d = dst->data;
    const float *sp = src->data;
    for (int64_t ch = 0; ch < c; ch++)
        memcpy(d + (ch * hd + d0) * w, sp + (ch * hs + s0) * w, (size_t)(rows * w) * sizeof(float));
}

/* dst (state, f32 or bf16) = src (f32 frame of the same shape); bf16 rounds to nearest even. */
static void state_store(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src) {
    if (dst->dtype == DTYPE_F32) {
        op_copy(ctx, dst, src);
        return;
    }
    CHECK(dst->dtype == DTYPE_BF16 && src->dtype == DTYPE_F32 && tensor_same_shape(dst, src) &&
              tensor_is_contiguous(dst) && tensor_is_contiguous(src),
          "VAE state store: bf16 <- f32 frames of one shape expected");
    dtype_from_f32(dst->data, DTYPE_BF16, src->data, (size_t)tensor_numel(src));
}

static struct tensor as_rows(const struct tensor *f) {
    return tensor_f32_2d(f->data, f->shape[0], f->shape[1] * f->shape[2]);
}

/* Level resolution: the encoder halves per level from the pixel size, the decoder doubles from the latent size. */
static void level_size(const struct vae_stream *s, int level, int64_t *h, int64_t *w) {
    const int sf = wan_vae_spatial_factor(&s->v->cfg);
    if (s->decoder)
        *h = s->height / sf << level, *w = s->width / sf << level;
    else
        *h = s->height >> level, *w = s->width >> level;
}

/* ---- decoder row bands ----
 *
 * After the middle block every decoder layer is spatially local: 3x3 causal convolutions with zero padding at
 * the image border, per-position RMS norms, SiLU, 1x1 shortcuts, the upsample's time conv (1x1 in space) and its
 * nearest x2 upsampling fused into a 3x3 conv, the head. A band runs every such layer on a range of rows. A 3x3
 * conv over input rows [i0, i1) pads only at the image border (i0 = 0, i1 = H) and elsewhere computes just the
 * rows whose whole window lies inside, [i0 + 1, i1 - 1): every row it produces is exactly the whole frame's row.
 * So the rows shrink by one per conv at each inner edge (a resblock: two), and the band starts from the rows
 * its output needs, counted back through the layers (band_geometry): its own output rows, plus one row per
 * 3x3 conv below each level, doubled back through each upsample. op_conv_frames' result for a pixel does not
 * depend on how many rows the frame has (kernels/cpu/kern_conv.c), so each row is bit-identical to the whole
 * frame's; the causal state of a band holds the same rows at every frame, so this holds frame after frame. */

/* The first banded layer: the one after the middle block (the last attention and the resblock after it). */
static int band_split(const struct vae_net *net) {
    int split = 0;
    for (int li = 0; li < net->n_layers; li++)
        if (net->layers[li].kind == VAE_ATTN) split = li + 1;
    if (split < net->n_layers && net->layers[split].kind == VAE_RESBLOCK &&
        strstr(net->layers[split].name, ".mid_block."))
        split++;
    return split;
}

static bool is_up(const struct vae_layer *L) { return L->kind == VAE_UP2D || L->kind == VAE_UP3D; }

/* The 3x3 convolutions a layer applies in a row (an upsample's is handled apart: it also doubles the rows). */
static int layer_convs3(const struct vae_layer *L) {
    switch (L->kind) {
    case VAE_RESBLOCK: return 2;
    case VAE_HEAD: return 1;
    case VAE_CONV: return L->conv1.k == 3 ? 1 : 0;
    case VAE_UP2D:
    case VAE_UP3D: return 0;
    case VAE_ATTN:
    case VAE_DOWN2D:
    case VAE_DOWN3D: break;
    }
    FATAL("VAE row bands: layer %s is not spatially local", L->name);
}

/* The rows layer L produces from input rows [i0, i1) of a level of h rows. */
static void layer_rows_out(const struct vae_layer *L, int64_t h, int64_t i0, int64_t i1, int64_t *o0, int64_t *o1) {
    if (is_up(L)) { /* the conv over the upsampled rows [2 i0, 2 i1) */
        *o0 = 2 * i0 + (i0 > 0), *o1 = 2 * i1 - (i1 < h);
        return;
    }
    const int k = layer_convs3(L);
    *o0 = i0 > 0 ? i0 + k : 0, *o1 = i1 < h ? i1 - k : h;
}

/* The input rows layer L needs for output rows [o0, o1) (input level of h rows). */
static void layer_rows_in(const struct vae_layer *L, int64_t h, int64_t o0, int64_t o1, int64_t *i0, int64_t *i1) {
    if (is_up(L)) { /* upsampled rows [o0 - 1, o1 + 1) are input rows r / 2 */
        const int64_t lo = o0 - 1 > 0 ? o0 - 1 : 0, hi = o1 + 1 < 2 * h ? o1 + 1 : 2 * h;
        *i0 = lo / 2, *i1 = (hi + 1) / 2;
        return;
    }
    const int k = layer_convs3(L);
    *i0 = o0 - k > 0 ? o0 - k : 0, *i1 = o1 + k < h ? o1 + k : h;
}

/* Band b of n owns the pixel rows of latent rows [b h / n, (b + 1) h / n) (h latent rows). Its layers' rows:
 * what each needs, counted back from those rows; then forward, each layer's output from its input, an
 * upsample taking exactly the rows it needs (run_from copies them out of its input, which may have one more
 * at an edge: the backward count rounds to whole input rows). */
static void band_geometry(const struct vae_net *net, int split, int64_t h, int b, int n, struct vae_band *B) {
    const int last = net->n_levels - 1;
    B->own0 = (int64_t)b * h / n << last, B->own1 = (int64_t)(b + 1) * h / n << last;
    int64_t o0 = B->own0, o1 = B->own1;
    for (int li = net->n_layers - 1; li >= split; li--) { /* backward: the input rows each layer needs */
        const struct vae_layer *L = &net->layers[li];
        layer_rows_in(L, h << L->level, o0, o1, &B->rows[li][BAND_IN0], &B->rows[li][BAND_IN1]);
        o0 = B->rows[li][BAND_IN0], o1 = B->rows[li][BAND_IN1];
    }
    int64_t r0 = o0, r1 = o1;
    for (int li = split; li < net->n_layers; li++) { /* forward */
        const struct vae_layer *L = &net->layers[li];
        int64_t *r = B->rows[li];
        CHECK(r0 <= r[BAND_IN0] && r1 >= r[BAND_IN1],
              "VAE row bands: layer %s gets rows [%lld, %lld), needs [%lld, %lld)", L->name, (long long)r0,
              (long long)r1, (long long)r[BAND_IN0], (long long)r[BAND_IN1]);
        if (!is_up(L)) r[BAND_IN0] = r0, r[BAND_IN1] = r1;
        layer_rows_out(L, h << L->level, r[BAND_IN0], r[BAND_IN1], &r[BAND_OUT0], &r[BAND_OUT1]);
        r0 = r[BAND_OUT0], r1 = r[BAND_OUT1];
    }
    CHECK(r0 <= B->own0 && r1 >= B->own1, "VAE row bands: band %d of %d ends with rows [%lld, %lld), owns [%lld, %lld)",
          b, n, (long long)r0, (long long)r1, (long long)B->own0, (long long)B->own1);
}

/* The input rows of banded layer li in the band being computed. */
static const int64_t *cur_rows(const struct vae_stream *s, int li) { return s->bands[s->cur].rows[li]; }

/* Cut the decoder into n bands and lay them out; the stream computes bands [lo, hi). One band is the unbanded
 * stream, except for a band-major stream (rows), which then computes the whole frame as its band 0. */
static int band_layout(struct vae_stream *s, int n, int lo, int hi, bool rows) {
    s->n_bands = 1, s->band_lo = 0, s->band_hi = 1, s->split = s->net->n_layers, s->cur = 0;
    if (n == 1 && lo == 0 && hi == 1 && !rows) return ERR_OK;
    const int64_t h = s->height / wan_vae_spatial_factor(&s->v->cfg);
    if (!s->decoder) return err_set(ERR_INVALID_ARG, "VAE row bands: the decoder only");
    if (n < 1 || n > h || lo < 0 || hi > n || lo >= hi)
        return err_set(ERR_INVALID_ARG,
                       "VAE row bands: %d bands (band %d to %d) of %lld latent rows; expected 1 to %lld", n, lo,
                       hi - 1, (long long)h, (long long)h);
    s->n_bands = n, s->band_lo = lo, s->band_hi = hi, s->cur = lo;
    s->split = band_split(s->net);
    CHECK(s->split < s->net->n_layers, "VAE row bands: no layer after the middle block");
    s->split_level = s->net->layers[s->split].level;
    s->bands = calloc((size_t)n, sizeof *s->bands);
    s->band_rows = calloc((size_t)n * (size_t)s->net->n_layers, sizeof *s->band_rows);
    if (!s->bands || !s->band_rows) return err_set(ERR_NOMEM, "out of memory");
    for (int b = 0; b < n; b++) {
        s->bands[b].rows = s->band_rows + (size_t)b * (size_t)s->net->n_layers;
        band_geometry(s->net, s->split, h, b, n, &s->bands[b]);
    }
    s->n_out_max = 1;
    for (int li = s->split; li < s->net->n_layers; li++) s->n_out_max *= s->net->layers[li].kind == VAE_UP3D ? 2 : 1;
    CHECK(s->n_out_max <= VAE_STAGES_MAX + 1, "VAE row bands: %d output frames per latent frame", s->n_out_max);
    return ERR_OK;
}

/* The state and scratch of layer L for input frames [., h, w] at its level (h: the whole frame, or a band's
 * input rows, of which each 3x3 conv drops one at a top (e0) and a bottom (e1) edge inside the image). */
static void carve_layer(struct vae_stream *s, struct arena *a, const struct vae_layer *L, struct layer_state *S,
                        int64_t h, int64_t w, int e0, int e1) {
    const int64_t c = L->cin, h1 = h - e0 - e1; /* rows after one 3x3 conv */
    switch (L->kind) {
    case VAE_ATTN:
        S->t0 = frame_alloc(a, h * w, c, 1);     /* normed, transposed [P, C]; later the projection */
        S->t1 = frame_alloc(a, h * w, 3 * c, 1); /* q | k | v [P, 3C] */
        S->t2 = frame_alloc(a, h * w, c, 1);     /* attention output [P, C] */
        break;
    case VAE_DOWN3D: /* state across frames: cache_dtype */
        S->t1 = state_alloc(a, s->cache_dtype, c, h / 2, w / 2); /* the open window's first frame (q_2j) */
        S->t2 = state_alloc(a, s->cache_dtype, c, h / 2, w / 2); /* its middle frame (q_2j+1) */
        break;
    case VAE_UP3D:
        S->t1 = frame_alloc(a, 2 * c, h, w); /* time conv output: two frames, kept while each runs on */
        break;
    default:
        break;
    }
    /* causal caches (cache_dtype): every 3x3x3 conv's input, and the upsample3d time conv's; the head's are
     * two f32 partial sums of its output */
    const bool cached1 = (L->kind == VAE_CONV && L->conv1.kt == 3) || L->kind == VAE_RESBLOCK;
    if (cached1) {
        S->c1.slot[0] = state_alloc(a, s->cache_dtype, c, h, w);
        S->c1.slot[1] = state_alloc(a, s->cache_dtype, c, h, w);
    }
    if (L->kind == VAE_HEAD) {
        S->c1.slot[0] = frame_alloc(a, L->cout, h1, w);
        S->c1.slot[1] = frame_alloc(a, L->cout, h1, w);
    }
    if (L->kind == VAE_RESBLOCK || L->kind == VAE_UP3D) {
        const int64_t cc = L->kind == VAE_RESBLOCK ? L->cout : c, hc = L->kind == VAE_RESBLOCK ? h1 : h;
        S->c2.slot[0] = state_alloc(a, s->cache_dtype, cc, hc, w);
        S->c2.slot[1] = state_alloc(a, s->cache_dtype, cc, hc, w);
    }
}

/* Carve every buffer of the stream from a (a measuring arena only counts). */
static void carve(struct vae_stream *s, struct arena *a) {
    const struct vae_net *net = s->net;
    for (int l = 0; l < net->n_levels; l++) {
        struct level_bufs *lb = &s->lv[l];
        level_size(s, l, &lb->h, &lb->w);
        if (banded(s) && l > s->split_level) lb->h = 1; /* band rows only: the most any band's layer has (below) */
        lb->cmax = 1;
        for (int li = 0; li < net->n_layers; li++) {
            const struct vae_layer *L = &net->layers[li];
            if (L->level != l) continue; /* (a resample's output channels are the next level's first input) */
            lb->cmax = L->cin > lb->cmax ? L->cin : lb->cmax;
            if (L->kind != VAE_UP2D && L->kind != VAE_UP3D && L->kind != VAE_DOWN2D && L->kind != VAE_DOWN3D)
                lb->cmax = L->cout > lb->cmax ? L->cout : lb->cmax;
        }
    }
    for (int li = s->split; li < net->n_layers; li++) {
        const struct vae_layer *L = &net->layers[li];
        for (int b = s->band_lo; b < s->band_hi; b++) {
            const int64_t *r = s->bands[b].rows[li];
            int64_t *hin = &s->lv[L->level].h, *hout = &s->lv[L->level + is_up(L)].h;
            if (L->level > s->split_level) *hin = r[BAND_IN1] - r[BAND_IN0] > *hin ? r[BAND_IN1] - r[BAND_IN0] : *hin;
            if (L->level + is_up(L) > s->split_level)
                *hout = r[BAND_OUT1] - r[BAND_OUT0] > *hout ? r[BAND_OUT1] - r[BAND_OUT0] : *hout;
        }
    }
    for (int l = 0; l < net->n_levels; l++)
        for (int k = 0; k < LEVEL_POOL; k++) s->lv[l].pool[k] = frame_alloc(a, s->lv[l].cmax, s->lv[l].h, s->lv[l].w);
    for (int li = 0; li < net->n_layers; li++) {
        const struct vae_layer *L = &net->layers[li];
        int64_t h, w;
        level_size(s, L->level, &h, &w);
        if (li < s->split) {
            carve_layer(s, a, L, &s->st[li], h, w, 0, 0);
            continue;
        }
        for (int b = s->band_lo; b < s->band_hi; b++) {
            const int64_t *r = s->bands[b].rows[li];
            s->cur = b;
            carve_layer(s, a, L, layer_st(s, li), r[BAND_IN1] - r[BAND_IN0], w, r[BAND_IN0] > 0, r[BAND_IN1] < h);
        }
        s->cur = s->band_lo;
    }
    const int sf = wan_vae_spatial_factor(&s->v->cfg);
    s->latent = frame_alloc(a, s->v->cfg.z_dim, s->height / sf, s->width / sf);
    if (banded(s)) {
        int64_t h0, w0, hl, wl;
        level_size(s, s->split_level, &h0, &w0);
        level_size(s, net->n_levels - 1, &hl, &wl);
        s->mid = frame_alloc(a, net->layers[s->split].cin, h0, w0);
        const int64_t cout = net->layers[net->n_layers - 1].cout;
        if (s->rows_mode) { /* one band's own rows */
            int64_t rows = 1;
            for (int b = s->band_lo; b < s->band_hi; b++)
                rows = s->bands[b].own1 - s->bands[b].own0 > rows ? s->bands[b].own1 - s->bands[b].own0 : rows;
            s->out[0] = frame_alloc(a, cout, rows, wl);
        } else {
            for (int k = 0; k < s->n_out_max; k++) s->out[k] = frame_alloc(a, cout, hl, wl);
        }
    }
}

/* Two pool frames of level lb that do not hold x, shaped [c, h, w] views. */
static void pick_two(const struct level_bufs *lb, const struct tensor *x, int64_t ca, int64_t cb, int64_t h,
                     int64_t w, struct tensor *a, struct tensor *b) {
    const struct tensor *free_[LEVEL_POOL];
    int n = 0;
    for (int k = 0; k < LEVEL_POOL; k++)
        if (lb->pool[k].data != x->data) free_[n++] = &lb->pool[k];
    *a = frame_view(free_[0], ca, h, w);
    *b = frame_view(free_[1], cb, h, w);
}

static void cache_push(const struct exec_ctx *ctx, struct conv_cache *cc, const struct tensor *x) {
    const int dst = cc->n == 0 ? 0 : 1 - cc->newest;
    struct tensor slot = frame_view(&cc->slot[dst], x->shape[0], x->shape[1], x->shape[2]);
    state_store(ctx, &slot, x);
    cc->newest = dst;
    if (cc->n < 2) cc->n++;
}

static const struct conv_geom GEOM_3X3 = {3, 3, 1, 1, 1, 1, 1, 0}, GEOM_1X1 = {1, 1, 1, 0, 0, 0, 0, 0},
                              GEOM_DOWN = {3, 3, 2, 0, 0, 1, 1, 0}, GEOM_UP = {3, 3, 1, 1, 1, 1, 1, 1};

/* geometry g without its top / bottom zero padding where a band's rows have an inner edge (e0, e1): the
 * conv then computes only the rows whose window lies inside the rows it has. */
static struct conv_geom geom_edges(const struct conv_geom *g, int e0, int e1) {
    struct conv_geom r = *g;
    if (e0) r.pad_top = 0;
    if (e1) r.pad_bottom = 0;
    return r;
}

/* A temporal-kernel-3 conv over [cache, x] (zeros where the cache is short), then x joins the cache; or a
 * plain conv for kt = 1. e0, e1: inner edges of a band's rows (see geom_edges). */
static void causal_conv(const struct exec_ctx *ctx, const struct vae_conv *cv, struct conv_cache *cc,
                        const struct tensor *x, struct tensor *y, int e0, int e1) {
    const struct conv_geom g3 = geom_edges(&GEOM_3X3, e0, e1), *g = cv->k == 3 ? &g3 : &GEOM_1X1;
    if (cv->kt == 1) {
        const struct tensor *xs[1] = {x};
        op_conv_frames(ctx, y, 1, xs, &cv->w, &cv->b, g);
        return;
    }
    struct tensor older, newer;
    if (cc->n >= 1) newer = frame_view(&cc->slot[cc->newest], x->shape[0], x->shape[1], x->shape[2]);
    if (cc->n >= 2) older = frame_view(&cc->slot[1 - cc->newest], x->shape[0], x->shape[1], x->shape[2]);
    const struct tensor *xs[3] = {cc->n >= 2 ? &older : NULL, cc->n >= 1 ? &newer : NULL, x};
    op_conv_frames(ctx, y, 3, xs, &cv->w, &cv->b, g);
    cache_push(ctx, cc, x);
}

/* The same 3x3x3 causal conv by partial sums of its output (the head: Co = 3 or 2z against Ci = 96 or 384).
 * With w0, w1, w2 the weights of times t-2, t-1, t and P_t = b + w0 x_{t-2} + w1 x_{t-1} (built as those frames
 * arrived), frame x_t gives y_t = P_t + w2 x_t, then P_{t+1} += w1 x_t and P_{t+2} = b + w0 x_t. Every output
 * element receives the same additions in the same order (taps f, ky, kx onto the bias, op_conv_frames with a
 * partial sum as its bias) as in causal_conv, so the result is bit-identical; the state is two [Co, H, W] f32
 * sums instead of two [Ci, H, W] frames. cc->slot[1 - newest] holds P_t, cc->slot[newest] P_{t+1}. */
static void causal_conv_partial(const struct exec_ctx *ctx, const struct vae_conv *cv, struct conv_cache *cc,
                                const struct tensor *x, struct tensor *y, int e0, int e1) {
    const struct conv_geom g3 = geom_edges(&GEOM_3X3, e0, e1);
    CHECK(cv->kt == 3 && cv->k == 3, "causal_conv_partial: a 3x3x3 conv expected");
    const int64_t taps = cv->w.shape[1], co = cv->w.shape[2], ci = cv->w.shape[3];
    struct tensor wt[3];
    for (int f = 0; f < 3; f++)
        wt[f] = tensor_make(DTYPE_F32, DEVICE_CPU, (float *)cv->w.data + f * taps * co * ci, 4,
                            (int64_t[]){1, taps, co, ci});
    const struct tensor *xs[1] = {x};
    const int cur = 1 - cc->newest, next = cc->newest;
    struct tensor pc = frame_view(&cc->slot[cur], co, y->shape[1], y->shape[2]),
                  pn = frame_view(&cc->slot[next], co, y->shape[1], y->shape[2]);
    const bool first = cc->n == 0; /* no earlier frames: P_t and P_{t+1} are the bias */
    op_conv_frames(ctx, y, 1, xs, &wt[2], first ? &cv->b : &pc, &g3);
    op_conv_frames(ctx, &pn, 1, xs, &wt[1], first ? &cv->b : &pn, &g3);
    op_conv_frames(ctx, &pc, 1, xs, &wt[0], &cv->b, &g3); /* P_t is spent: it becomes P_{t+2} */
    cc->newest = cur;
    cc->n = 2;
}

static int run_from(struct vae_stream *s, int li, const struct tensor *x);

/* Report a layer's output to the probe (whole frames only, not band windows) and pass it on. */
static int emit(struct vae_stream *s, int li, const struct tensor *y) {
    struct layer_state *S = layer_st(s, li);
    if (s->probe && li < s->split) s->probe(s->probe_user, s->net->layers[li].name, S->produced, y);
    S->produced++;
    return run_from(s, li + 1, y);
}

/* A band's output frame y (the last layer's rows): the band's own rows go to the assembled frame (frame-major)
 * or, clamped, to the rows sink (band-major). */
static int finish_band_frame(struct vae_stream *s, const struct tensor *y) {
    const struct vae_band *B = &s->bands[s->cur];
    const int64_t rows = B->own1 - B->own0, from = B->own0 - B->rows[s->net->n_layers - 1][BAND_OUT0];
    const int64_t index = layer_st(s, s->net->n_layers - 1)->produced - 1; /* this band's frame count */
    if (s->rows_mode) {
        struct tensor o = frame_view(&s->out[0], y->shape[0], rows, y->shape[2]), orow = as_rows(&o);
        copy_rows(&o, 0, y, from, rows);
        op_clamp(&s->ctx, &orow, &orow, -1.0f, 1.0f);
        s->produced = index + 1;
        return s->rows_sink(s->sink_user, index, B->own0, &o);
    }
    const int64_t slot = index - s->produced; /* frames of this latent frame so far */
    CHECK(slot >= 0 && slot < s->n_out_max, "VAE row bands: output frame %lld of band %d out of order",
          (long long)index, s->cur);
    copy_rows(&s->out[slot], B->own0, y, from, rows);
    s->n_out = (int)slot + 1 > s->n_out ? (int)slot + 1 : s->n_out;
    return ERR_OK;
}

static int finish_frame(struct vae_stream *s, const struct tensor *y) {
    const struct exec_ctx *ctx = &s->ctx;
    if (banded(s)) return finish_band_frame(s, y);
    if (s->decoder) {
        struct tensor r = as_rows(y);
        op_clamp(ctx, &r, &r, -1.0f, 1.0f);
        return s->sink(s->sink_user, s->produced++, y);
    }
    /* encoder: the mean is the first z channels of quant_conv's output; normalise (mean - m) * (1 / std) */
    const int64_t z = s->v->cfg.z_dim;
    struct tensor mean = tensor_f32_2d(y->data, z, y->shape[1] * y->shape[2]), lat = as_rows(&s->latent);
    op_channel_affine(ctx, &lat, &mean, &s->v->latents_mean, &s->v->latents_inv_std, NULL);
    return s->sink(s->sink_user, s->produced++, &s->latent);
}

/* The middle block's output x: every band computes its window from it, then (frame-major) the assembled
 * frames go to the sink in order. */
static int run_bands(struct vae_stream *s, const struct tensor *x) {
    const struct exec_ctx *ctx = &s->ctx;
    const int l = s->split_level;
    op_copy(ctx, &s->mid, x);
    s->n_out = 0;
    s->in_bands = true;
    int rc = ERR_OK;
    for (int b = s->band_lo; rc == ERR_OK && b < s->band_hi; b++) {
        s->cur = b;
        const int64_t *r = s->bands[b].rows[s->split], rows = r[BAND_IN1] - r[BAND_IN0];
        struct tensor in = frame_view(&s->lv[l].pool[0], x->shape[0], rows, x->shape[2]);
        copy_rows(&in, 0, &s->mid, r[BAND_IN0], rows);
        rc = run_from(s, s->split, &in);
    }
    s->cur = s->band_lo;
    s->in_bands = false;
    if (rc < 0 || s->rows_mode) return rc;
    for (int k = 0; k < s->n_out; k++) {
        struct tensor r = as_rows(&s->out[k]);
        op_clamp(ctx, &r, &r, -1.0f, 1.0f);
        TRY(s->sink(s->sink_user, s->produced++, &s->out[k]));
    }
    s->n_out = 0;
    return ERR_OK;
}

static int run_from(struct vae_stream *s, int li, const struct tensor *x) {
    if (li == s->net->n_layers) return finish_frame(s, x);
    if (li == s->split && !s->in_bands) return run_bands(s, x);
    const struct exec_ctx *ctx = &s->ctx;
    const struct vae_layer *L = &s->net->layers[li];
    struct layer_state *S = layer_st(s, li);
    const struct level_bufs *lb = &s->lv[L->level];
    const int64_t h = x->shape[1], w = x->shape[2];
    /* a band's inner edges: each 3x3 conv drops a row there (see band_geometry); none for whole frames */
    int e0 = 0, e1 = 0;
    if (li >= s->split) {
        int64_t hl, wl;
        level_size(s, L->level, &hl, &wl);
        e0 = cur_rows(s, li)[BAND_IN0] > 0, e1 = cur_rows(s, li)[BAND_IN1] < hl;
    }
    const int64_t h1 = h - e0 - e1, h2 = h1 - e0 - e1; /* rows after one and two 3x3 convs */
    struct tensor a, b, xr = as_rows(x);
    S->received++;
    switch (L->kind) {
    case VAE_CONV:
        pick_two(lb, x, L->cout, 1, L->conv1.k == 3 ? h1 : h, w, &a, &b);
        causal_conv(ctx, &L->conv1, &S->c1, x, &a, e0, e1);
        return emit(s, li, &a);
    case VAE_RESBLOCK: {
        /* a = SiLU(RMS(x)); b = conv1(a); b = SiLU(RMS(b)); y = conv2(b) into a's frame (a is cached);
         * y += shortcut(x) (into b's frame, cached too) or x, both on the rows y has */
        pick_two(lb, x, L->cin, L->cout, h, w, &a, &b);
        b = frame_view(&b, L->cout, h1, w);
        struct tensor ar = as_rows(&a), br = as_rows(&b);
        op_channel_rmsnorm(ctx, &ar, &xr, &L->gamma1, true);
        causal_conv(ctx, &L->conv1, &S->c1, &a, &b, e0, e1);
        op_channel_rmsnorm(ctx, &br, &br, &L->gamma2, true);
        struct tensor y = frame_view(&a, L->cout, h2, w), yr = as_rows(&y), add;
        causal_conv(ctx, &L->conv2, &S->c2, &b, &y, e0, e1);
        if (L->shortcut.w.data) {
            struct tensor sc = frame_view(&b, L->cout, h, w), scr = as_rows(&sc);
            causal_conv(ctx, &L->shortcut, NULL, x, &sc, 0, 0);
            add = tensor_narrow(&scr, 1, 2 * e0 * w, h2 * w);
        } else {
            add = tensor_narrow(&xr, 1, 2 * e0 * w, h2 * w);
        }
        op_gated_add(ctx, &yr, &add, NULL, 1, 0);
        return emit(s, li, &y);
    }
    case VAE_ATTN: {
        const int64_t c = L->cin, p = h * w;
        pick_two(lb, x, c, c, h, w, &a, &b);
        struct tensor nr = as_rows(&a), yr = as_rows(&b);
        struct tensor nt = tensor_f32_2d(S->t0.data, p, c), qkv = tensor_f32_2d(S->t1.data, p, 3 * c),
                      o = tensor_f32_2d(S->t2.data, p, c);
        op_channel_rmsnorm(ctx, &nr, &xr, &L->gamma1, false);
        op_transpose(ctx, &nt, &nr);
        op_linear(ctx, &qkv, &nt, &L->conv1.w, &L->conv1.b);
        struct tensor q = tensor_narrow(&qkv, 1, 0, c), k = tensor_narrow(&qkv, 1, c, c),
                      v = tensor_narrow(&qkv, 1, 2 * c, c);
        op_attention(ctx, &o, &q, &k, &v, 1, 1.0f / sqrtf((float)c), NULL, false);
        op_linear(ctx, &nt, &o, &L->conv2.w, &L->conv2.b);
        op_transpose(ctx, &yr, &nt);
        op_gated_add(ctx, &yr, &xr, NULL, 1, 0);
        return emit(s, li, &b);
    }
    case VAE_HEAD: {
        pick_two(lb, x, L->cin, L->cout, h, w, &a, &b);
        b = frame_view(&b, L->cout, h1, w);
        struct tensor ar = as_rows(&a);
        op_channel_rmsnorm(ctx, &ar, &xr, &L->gamma1, true);
        causal_conv_partial(ctx, &L->conv1, &S->c1, &a, &b, e0, e1);
        return emit(s, li, &b);
    }
    case VAE_DOWN2D:
    case VAE_DOWN3D: {
        const struct level_bufs *next = &s->lv[L->level + 1];
        pick_two(next, x, L->cout, L->cout, h / 2, w / 2, &a, &b);
        const struct tensor *xs[1] = {x};
        op_conv_frames(ctx, &a, 1, xs, &L->conv1.w, &L->conv1.b, &GEOM_DOWN);
        if (L->kind == VAE_DOWN2D) return emit(s, li, &a);
        const int64_t k = S->received - 1;
        if (k == 0) { /* frame 0 passes through spatially and opens the first window */
            state_store(ctx, &S->t1, &a);
            return emit(s, li, &a);
        }
        if (k % 2 == 1) { /* the window's middle frame: wait for its last */
            state_store(ctx, &S->t2, &a);
            return ERR_OK;
        }
        const struct tensor *win[3] = {&S->t1, &S->t2, &a};
        op_conv_frames(ctx, &b, 3, win, &L->conv2.w, &L->conv2.b, &GEOM_1X1);
        state_store(ctx, &S->t1, &a); /* this window's last frame opens the next */
        return emit(s, li, &b);
    }
    case VAE_UP2D:
    case VAE_UP3D: {
        const int64_t c = L->cin;
        const struct level_bufs *next = &s->lv[L->level + 1];
        struct tensor xin = *x; /* a band upsamples exactly the rows it needs (x may have one more at an edge) */
        if (li >= s->split) {
            const int64_t *r = cur_rows(s, li), *prev = s->bands[s->cur].rows[li - 1];
            const int64_t rows = r[BAND_IN1] - r[BAND_IN0];
            if (rows != h) {
                pick_two(lb, x, c, 1, rows, w, &a, &b);
                copy_rows(&a, 0, x, r[BAND_IN0] - prev[BAND_OUT0], rows);
                xin = a;
            }
        }
        const int64_t hi = xin.shape[1];
        const struct conv_geom gu = geom_edges(&GEOM_UP, e0, e1);
        pick_two(next, x, L->cout, 1, 2 * hi - e0 - e1, 2 * w, &a, &b);
        if (L->kind == VAE_UP2D || S->received == 1) { /* upsample2d, or upsample3d's frame 0 (not doubled) */
            const struct tensor *xs[1] = {&xin};
            op_conv_frames(ctx, &a, 1, xs, &L->conv1.w, &L->conv1.b, &gu);
            return emit(s, li, &a);
        }
        /* time conv over [0, 0, x1, x2, ...] (frame 0 is not temporal context): channels [0, C) are frame 2t,
         * [C, 2C) frame 2t + 1; each is upsampled and convolved, then runs through the rest of the network */
        struct tensor t1 = frame_view(&S->t1, 2 * c, hi, w);
        causal_conv(ctx, &L->conv2, &S->c2, &xin, &t1, 0, 0);
        for (int half = 0; half < 2; half++) {
            struct tensor f = tensor_f32_3d((float *)S->t1.data + half * c * hi * w, c, hi, w);
            const struct tensor *xs[1] = {&f};
            op_conv_frames(ctx, &a, 1, xs, &L->conv1.w, &L->conv1.b, &gu);
            TRY(emit(s, li, &a));
        }
        return ERR_OK;
    }
    }
    FATAL("unknown VAE layer kind %d", (int)L->kind);
}

/* bands, [band_lo, band_hi): the decoder's row bands and the ones this stream computes (1, [0, 1): none). */
static int stream_init(struct vae_stream *s, const struct wan_vae *v, bool decoder, int64_t height, int64_t width,
                       enum dtype cache_dtype, int bands, int band_lo, int band_hi, bool rows) {
    memset(s, 0, sizeof *s);
    s->v = v, s->decoder = decoder, s->height = height, s->width = width, s->cache_dtype = cache_dtype;
    s->net = decoder ? &v->dec : &v->enc;
    s->split = s->net->n_layers, s->n_bands = 1, s->band_hi = 1;
    if (cache_dtype != DTYPE_F32 && cache_dtype != DTYPE_BF16)
        return err_set(ERR_INVALID_ARG, "VAE cache dtype %s: expected f32 or bf16", dtype_name(cache_dtype));
    const int sf = wan_vae_spatial_factor(&v->cfg);
    if (height < sf || width < sf || height % sf || width % sf)
        return err_set(ERR_INVALID_ARG, "frame size %lldx%lld: width and height must be positive multiples of %d",
                       (long long)width, (long long)height, sf);
    s->rows_mode = rows;
    TRY(band_layout(s, bands, band_lo, band_hi, rows));
    const size_t n_states = (size_t)(banded(s) ? 1 + s->band_hi - s->band_lo : 1) * (size_t)s->net->n_layers;
    s->st = calloc(n_states, sizeof *s->st);
    s->lv = calloc((size_t)s->net->n_levels, sizeof *s->lv);
    if (!s->st || !s->lv) return err_set(ERR_NOMEM, "out of memory");
    return ERR_OK;
}

static void stream_release(struct vae_stream *s) {
    free(s->st), free(s->lv), free(s->bands), free(s->band_rows);
    s->st = NULL, s->lv = NULL, s->bands = NULL, s->band_rows = NULL;
    arena_free(&s->arena);
}

static size_t stream_bytes(const struct wan_vae *v, bool decoder, int64_t height, int64_t width,
                           enum dtype cache_dtype, int bands, int band_lo, int band_hi, bool rows) {
    struct vae_stream s;
    if (stream_init(&s, v, decoder, height, width, cache_dtype, bands, band_lo, band_hi, rows) < 0) {
        stream_release(&s);
        err_clear();
        return 0;
    }
    arena_init_measure(&s.arena, "vae stream");
    carve(&s, &s.arena);
    const size_t bytes = s.arena.used;
    stream_release(&s);
    return bytes;
}

size_t wan_vae_stream_bytes(const struct wan_vae *v, bool decoder, int64_t height, int64_t width,
                            enum dtype cache_dtype) {
    return stream_bytes(v, decoder, height, width, cache_dtype, 1, 0, 1, false);
}

static int stream_open(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx, bool decoder,
                       int64_t height, int64_t width, enum dtype cache_dtype, int bands, int band_lo, int band_hi,
                       vae_frame_fn sink, vae_rows_fn rows_sink, void *user) {
    *out = NULL;
    CHECK(ctx->backend == BACKEND_CPU, "the VAE runs on the CPU backend only (its CUDA kernels are not written yet)");
    struct vae_stream *s = calloc(1, sizeof *s);
    if (!s) return err_set(ERR_NOMEM, "out of memory");
    const bool rows = rows_sink != NULL;
    int rc = stream_init(s, v, decoder, height, width, cache_dtype, bands, band_lo, band_hi, rows);
    if (rc == ERR_OK) {
        const size_t bytes = stream_bytes(v, decoder, height, width, cache_dtype, bands, band_lo, band_hi, rows);
        rc = arena_init(&s->arena, decoder ? "vae decoder stream" : "vae encoder stream", bytes);
    }
    if (rc < 0) {
        stream_release(s);
        free(s);
        return rc;
    }
    carve(s, &s->arena);
    s->ctx = *ctx, s->sink = sink, s->rows_sink = rows_sink, s->sink_user = user;
    *out = s;
    return ERR_OK;
}

int wan_vae_stream_open(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx, bool decoder,
                        int64_t height, int64_t width, enum dtype cache_dtype, vae_frame_fn sink, void *user) {
    return stream_open(out, v, ctx, decoder, height, width, cache_dtype, 1, 0, 1, sink, NULL, user);
}

int wan_vae_stream_open_bands(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx,
                              int64_t height, int64_t width, enum dtype cache_dtype, int bands, vae_frame_fn sink,
                              void *user) {
    return stream_open(out, v, ctx, true, height, width, cache_dtype, bands, 0, bands, sink, NULL, user);
}

int wan_vae_stream_open_band(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx,
                             int64_t height, int64_t width, enum dtype cache_dtype, int bands, int band,
                             vae_rows_fn sink, void *user) {
    CHECK(sink != NULL, "wan_vae_stream_open_band: a rows sink is required");
    return stream_open(out, v, ctx, true, height, width, cache_dtype, bands, band, band + 1, NULL, sink, user);
}

void wan_vae_stream_set_probe(struct vae_stream *s, vae_probe_fn probe, void *user) {
    s->probe = probe, s->probe_user = user;
}

int wan_vae_stream_push(struct vae_stream *s, const struct tensor *frame) {
    const int sf = wan_vae_spatial_factor(&s->v->cfg);
    const int64_t c = s->decoder ? s->v->cfg.z_dim : 3;
    const int64_t h = s->decoder ? s->height / sf : s->height, w = s->decoder ? s->width / sf : s->width;
    char got[64];
    CHECK(frame->ndim == 3 && frame->shape[0] == c && frame->shape[1] == h && frame->shape[2] == w &&
              tensor_is_contiguous(frame),
          "VAE %s input frame %s; expected a contiguous [%lld, %lld, %lld]", s->decoder ? "decoder" : "encoder",
          tensor_shape_str(got, sizeof got, frame), (long long)c, (long long)h, (long long)w);
    if (!s->decoder) return run_from(s, 0, frame);
    /* denormalise z / (1 / std) + mean, computed as z * std + mean */
    struct tensor zr = as_rows(frame), lr = as_rows(&s->latent);
    op_channel_affine(&s->ctx, &lr, &zr, NULL, &s->v->latents_std, &s->v->latents_mean);
    return run_from(s, 0, &s->latent);
}

int64_t wan_vae_stream_produced(const struct vae_stream *s) { return s->produced; }

void wan_vae_stream_close(struct vae_stream **sp) {
    struct vae_stream *s = sp ? *sp : NULL;
    if (!s) return;
    stream_release(s);
    free(s);
    *sp = NULL;
}

/* ---- band counts, sizes and cost ---- */

int wan_vae_bands_max(const struct wan_vae *v, int64_t height) {
    const int64_t h = height / wan_vae_spatial_factor(&v->cfg);
    return h < 1 ? 1 : h > INT32_MAX ? INT32_MAX : (int)h;
}

size_t wan_vae_decode_bytes(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype, int bands,
                            int band) {
    if (band < 0) return stream_bytes(v, true, height, width, cache_dtype, bands, 0, bands, false);
    return stream_bytes(v, true, height, width, cache_dtype, bands, band, band + 1, true);
}

/* Band-major: the largest band's stream. */
static size_t band_major_bytes(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype,
                               int bands) {
    size_t most = 0;
    for (int b = 0; b < bands; b++) {
        const size_t n = wan_vae_decode_bytes(v, height, width, cache_dtype, bands, b);
        if (n == 0) return 0;
        most = n > most ? n : most;
    }
    return most;
}

int wan_vae_decode_bands_for(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype,
                             bool band_major, size_t budget) {
    const int most = wan_vae_bands_max(v, height);
    for (int n = 1; n <= most; n++) {
        const size_t bytes = band_major ? band_major_bytes(v, height, width, cache_dtype, n)
                                        : wan_vae_decode_bytes(v, height, width, cache_dtype, n, -1);
        if (bytes > 0 && bytes <= budget) return n;
    }
    return 0;
}

/* Multiply-adds of layer L on one input frame of rows [i0, i1) at a level of h x w (an upsample: its conv runs
 * on twice the rows and width; upsample3d: two output frames per input frame). */
static double layer_macs(const struct vae_layer *L, int64_t h, double w, int64_t i0, int64_t i1) {
    const double ci = (double)L->cin, co = (double)L->cout, rows = (double)(i1 - i0);
    const double e = (i0 > 0) + (i1 < h); /* rows a 3x3 conv drops */
    switch (L->kind) {
    case VAE_CONV: return (double)L->conv1.kt * L->conv1.k * L->conv1.k * ci * co * (rows - (L->conv1.k == 3) * e) * w;
    case VAE_RESBLOCK:
        return 27.0 * ci * co * (rows - e) * w + 27.0 * co * co * (rows - 2 * e) * w +
               (L->shortcut.w.data ? ci * co * rows * w : 0);
    case VAE_ATTN: return 4.0 * ci * ci * rows * w + 2.0 * rows * w * rows * w * ci; /* (whole frames only) */
    case VAE_HEAD: return 27.0 * ci * co * (rows - e) * w;
    case VAE_UP2D: return 9.0 * ci * co * (2 * rows - e) * 2 * w;
    case VAE_UP3D: return 3.0 * ci * 2.0 * ci * rows * w + 2.0 * 9.0 * ci * co * (2 * rows - e) * 2 * w;
    case VAE_DOWN2D:
    case VAE_DOWN3D: return 9.0 * ci * co * rows * w / 4.0;
    }
    return 0;
}

double wan_vae_decode_halo_cost(const struct wan_vae *v, int64_t height, int64_t width, int bands,
                                double *pre_fraction) {
    if (pre_fraction) *pre_fraction = 0;
    struct vae_stream s;
    if (stream_init(&s, v, true, height, width, DTYPE_F32, bands, 0, bands, false) < 0) {
        stream_release(&s);
        err_clear();
        return -1;
    }
    const int split = band_split(s.net);
    double pre = 0, whole = 0, banded_macs = 0, frames = 1; /* frames per latent frame at the layer (steady) */
    for (int li = 0; li < s.net->n_layers; li++) {
        const struct vae_layer *L = &s.net->layers[li];
        int64_t h, w;
        level_size(&s, L->level, &h, &w);
        const double full = frames * layer_macs(L, h, (double)w, 0, h);
        if (li < split) {
            pre += full;
        } else {
            whole += full;
            for (int b = 0; b < s.n_bands; b++) {
                const int64_t *r = banded(&s) ? s.bands[b].rows[li] : NULL;
                banded_macs += frames * layer_macs(L, h, (double)w, r ? r[BAND_IN0] : 0, r ? r[BAND_IN1] : h);
            }
        }
        if (L->kind == VAE_UP3D) frames *= 2;
    }
    stream_release(&s);
    if (pre_fraction) *pre_fraction = pre / (pre + whole);
    return whole > 0 ? banded_macs / whole - 1.0 : 0;
}

int wan_vae_decode_choose_bands(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype,
                                int bands, size_t memory, int *out) {
    const int most = wan_vae_bands_max(v, height);
    if (bands > 0) {
        if (bands > most)
            return err_set(ERR_INVALID_ARG, "--vae-bands %d: at most %d at height %lld (one latent row each)", bands,
                           most, (long long)height);
        *out = bands;
        return ERR_OK;
    }
    const size_t budget = memory > 0 ? memory : WAN_VAE_BAND_BUDGET_DEFAULT;
    *out = wan_vae_decode_bands_for(v, height, width, cache_dtype, true, budget);
    if (*out > 0) return ERR_OK;
    const int n16 = most < 16 ? most : 16;
    size_t need = 0;
    for (int b = 0; b < n16; b++) {
        const size_t n = wan_vae_decode_bytes(v, height, width, cache_dtype, n16, b);
        need = n > need ? n : need;
    }
    return err_set(ERR_INVALID_ARG,
                   "--vae-memory %.3g (GiB): no band count keeps the decoder state of a %lldx%lld decode within it "
                   "(%d bands need %.1f MiB); raise --vae-memory or choose --vae-bands",
                   budget / 1073741824.0, (long long)width, (long long)height, n16, need / 1048576.0);
}

/* ---- band-major clip decode ---- */

int wan_vae_decode_clip(const struct wan_vae *v, const struct exec_ctx *ctx, const struct tensor *latents,
                        enum dtype cache_dtype, int bands, vae_rows_fn sink, void *user) {
    const int64_t z = v->cfg.z_dim, sf = wan_vae_spatial_factor(&v->cfg);
    char got[64];
    if (latents->ndim != 4 || latents->shape[0] != z || latents->shape[1] < 1 || latents->dtype != DTYPE_F32 ||
        !tensor_is_contiguous(latents))
        return err_set(ERR_SHAPE, "VAE clip decode: latents %s; expected a contiguous f32 [%lld, F, h, w]",
                       tensor_shape_str(got, sizeof got, latents), (long long)z);
    const int64_t f = latents->shape[1], h = latents->shape[2], w = latents->shape[3];
    float *frame = malloc((size_t)(z * h * w) * sizeof(float));
    if (!frame) return err_set(ERR_NOMEM, "out of memory");
    const float *ld = latents->data;
    int rc = ERR_OK;
    for (int b = 0; rc == ERR_OK && b < bands; b++) {
        struct vae_stream *s = NULL;
        rc = wan_vae_stream_open_band(&s, v, ctx, h * sf, w * sf, cache_dtype, bands, b, sink, user);
        for (int64_t fi = 0; rc == ERR_OK && fi < f; fi++) {
            for (int64_t c = 0; c < z; c++)
                memcpy(frame + c * h * w, ld + (c * f + fi) * h * w, (size_t)(h * w) * sizeof(float));
            struct tensor t = tensor_f32_3d(frame, z, h, w);
            rc = wan_vae_stream_push(s, &t);
        }
        wan_vae_stream_close(&s);
    }
    free(frame);
    return rc;
}
