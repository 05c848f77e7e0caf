/* model/wan_vae_tiny.c - the tiny random Wan VAE of make-tiny-model (spec 2.4, 7).
 *
 * The released structure (dim_mult 1, 2, 4, 4; two residual blocks per encoder stage, three per decoder
 * stage; temporal downsampling in stages 1 and 2; middle attention) at base width 8 instead of 96, with
 * z_dim 16 and the released latent statistics, so every code path of the real VAE runs in milliseconds.
 * Diffusers layout: vae/config.json + vae/diffusion_pytorch_model.safetensors; original layout:
 * Wan2.1_VAE.safetensors in the original names (the loader reads the widths from the tensors). Values are a
 * function of (seed, Diffusers name) as for the DiT: conv weights N(0, 1/fan_in), biases N(0, 0.01),
 * RMS-norm gains 1 + N(0, 0.01).
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "model/wan_tiny.h"
#include "model/wan_vae.h"

enum { TINY_VAE_BASE_DIM = 8 };

void wan_vae_tiny_config(struct wan_vae_config *c) {
    wan_vae_default_config(c);
    c->base_dim = TINY_VAE_BASE_DIM;
}

static int write_config(const char *path, const struct wan_vae_config *c, bool force) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "_class_name", "AutoencoderKLWan");
    cJSON_AddStringToObject(o, "_diffusers_version", "0.33.0");
    cJSON_AddNumberToObject(o, "base_dim", (double)c->base_dim);
    cJSON_AddNumberToObject(o, "z_dim", (double)c->z_dim);
    int mult[VAE_STAGES_MAX];
    for (int i = 0; i < c->n_stages; i++) mult[i] = (int)c->dim_mult[i];
    cJSON_AddItemToObject(o, "dim_mult", cJSON_CreateIntArray(mult, c->n_stages));
    cJSON_AddNumberToObject(o, "num_res_blocks", c->num_res_blocks);
    cJSON_AddItemToObject(o, "attn_scales", cJSON_CreateArray());
    cJSON *td = cJSON_CreateArray();
    for (int i = 0; i < c->n_stages - 1; i++) cJSON_AddItemToArray(td, cJSON_CreateBool(c->temporal_down[i]));
    cJSON_AddItemToObject(o, "temperal_downsample", td);
    cJSON_AddNumberToObject(o, "dropout", 0.0);
    /* the statistics as the short decimals of the released config (-0.7571, not -0.757099986...) */
    double mean[VAE_Z_MAX], sd[VAE_Z_MAX];
    for (int64_t i = 0; i < c->z_dim; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "%.7g", (double)c->latents_mean[i]);
        mean[i] = strtod(buf, NULL);
        snprintf(buf, sizeof buf, "%.7g", (double)c->latents_std[i]);
        sd[i] = strtod(buf, NULL);
    }
    cJSON_AddItemToObject(o, "latents_mean", cJSON_CreateDoubleArray(mean, (int)c->z_dim));
    cJSON_AddItemToObject(o, "latents_std", cJSON_CreateDoubleArray(sd, (int)c->z_dim));
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    if (!text) return err_set(ERR_NOMEM, "out of memory");
    const int rc = fs_write_file(path, text, strlen(text), force);
    free(text);
    return rc;
}

int wan_vae_tiny_write(const char *dir, const struct wan_tiny_options *opt) {
    struct wan_vae_config c;
    wan_vae_tiny_config(&c);
    const bool original = opt->naming == WAN_NAMING_ORIGINAL;
    char vdir[1100], path[1200];
    if (original) {
        TRY(fs_join(path, sizeof path, dir, "Wan2.1_VAE.safetensors"));
    } else {
        TRY(fs_join(vdir, sizeof vdir, dir, "vae"));
        TRY(fs_mkdir_p(vdir));
        TRY(fs_join(path, sizeof path, vdir, "config.json"));
        TRY(write_config(path, &c, opt->force));
        TRY(fs_join(path, sizeof path, vdir, "diffusion_pytorch_model.safetensors"));
    }
    const size_t n = wan_vae_tensor_list(&c, NULL, 0);
    struct vae_tensor_desc *d = calloc(n, sizeof *d);
    struct st_write_item *items = calloc(n, sizeof *items);
    void **bufs = calloc(n, sizeof *bufs);
    int rc = d && items && bufs ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    if (rc == ERR_OK) wan_vae_tensor_list(&c, d, n);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        int64_t numel = 1;
        for (int k = 0; k < d[i].ndim; k++) numel *= d[i].shape[k];
        float *vals = malloc((size_t)numel * sizeof(float));
        bufs[i] = malloc((size_t)numel * dtype_size(opt->dtype));
        if (!vals || !bufs[i]) {
            free(vals);
            rc = err_set(ERR_NOMEM, "out of memory");
            break;
        }
        /* the shared generator gives N(0, 1/fan_in) for weights and N(0, 0.01) for biases; a gain
         * ([C, 1, 1(, 1)]) has fan-in 1 there, so it is recentred to 1 + N(0, 0.01) */
        wan_tiny_values(vals, numel, d[i].ndim, d[i].shape, d[i].name, opt->seed);
        if (strstr(d[i].name, ".gamma"))
            for (int64_t j = 0; j < numel; j++) vals[j] = 1.0f + 0.1f * vals[j];
        dtype_from_f32(bufs[i], opt->dtype, vals, (size_t)numel);
        free(vals);
        items[i].name = original ? d[i].original_name : d[i].name;
        items[i].dtype = opt->dtype;
        items[i].ndim = d[i].ndim;
        memcpy(items[i].shape, d[i].shape, (size_t)d[i].ndim * sizeof(int64_t));
        items[i].data = bufs[i];
    }
    const char *meta[] = {"format", "pt", "generator", "reelfarm make-tiny-model"};
    if (rc == ERR_OK) rc = st_write(path, items, n, meta, 2, opt->force);
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs), free(items), free(d);
    return rc;
}
