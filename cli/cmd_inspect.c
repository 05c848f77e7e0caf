/* cli/cmd_inspect.c - `reelfarm inspect PATH`: what a model directory, safetensors file or HDF5 holds. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "core/error.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "io/video.h"
#include "model/umt5.h"
#include "model/wan_dit.h"
#include "model/wan_vae.h"

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void print_tensors(const struct st_set *st, int64_t limit) {
    const size_t n = st_count(st);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += st_at(st, i)->nbytes;
    printf("tensors: %zu (%.1f MiB of data)\n", n, (double)bytes / (1 << 20));
    for (size_t i = 0; i < n && (limit < 0 || (int64_t)i < limit); i++) {
        const struct st_tensor *t = st_at(st, i);
        char s[96];
        printf("  %-64s %-5s %s\n", t->name, dtype_name(t->dtype), shape_str(s, sizeof s, t->ndim, t->shape));
    }
    if (limit >= 0 && (int64_t)n > limit) printf("  ... %zu more (use --tensors to list all)\n", n - (size_t)limit);
}

/* The text encoder and tokenizer of a model directory, when present. */
static int inspect_text_parts(const char *dir) {
    char path[1200];
    fs_join(path, sizeof path, dir, "text_encoder");
    if (fs_is_dir(path)) {
        struct umt5_model *t = NULL;
        TRY(umt5_load(&t, dir));
        const struct umt5_config *c = &t->cfg;
        const struct umt5_memory mem = umt5_memory(t, 512);
        printf("text encoder: %s (umT5: d_model %lld, %lld heads x %lld, %lld layers, d_ff %lld, vocab %lld)\n",
               t->weights_path, (long long)c->d_model, (long long)c->num_heads, (long long)c->d_kv,
               (long long)c->num_layers, (long long)c->d_ff, (long long)c->vocab_size);
        printf("  parameters:  %lld stored %s; CPU memory: %.2f GiB mapped (read on demand) + %.1f MiB layer buffer "
               "+ %.1f MiB activations at 512 tokens\n",
               (long long)t->n_params, dtype_name(t->stored_dtype), (double)mem.mapped_bytes / (1 << 30),
               (double)mem.layer_bytes / (1 << 20), (double)mem.activation_bytes / (1 << 20));
        umt5_free(&t);
    } else {
        printf("text encoder: absent\n");
    }
    struct tokenizer *tok = NULL;
    if (tokenizer_open(&tok, dir, 0) == ERR_OK) {
        printf("tokenizer:    %s (SentencePiece, %lld pieces, eos %lld, pad %lld, text_len %lld)\n", tok->model_path,
               (long long)tok->vocab_size, (long long)tok->eos_id, (long long)tok->pad_id, (long long)tok->text_len);
        tokenizer_close(&tok);
    } else {
        printf("tokenizer:    absent (%s)\n", err_message());
        err_clear();
    }
    struct wan_vae *v = NULL;
    if (wan_vae_load(&v, dir) == ERR_OK) {
        printf("vae:          %s (%s names, stored %s), base_dim %lld, z_dim %lld, %lld parameters\n", v->weights_path,
               v->original_naming ? "original" : "Diffusers", dtype_name(v->stored_dtype), (long long)v->cfg.base_dim,
               (long long)v->cfg.z_dim, (long long)v->n_params);
        wan_vae_free(&v);
    } else {
        printf("vae:          absent (%s)\n", err_message());
        err_clear();
    }
    return ERR_OK;
}

static int inspect_model(const char *dir, int64_t limit) {
    struct wan_model *m = NULL;
    TRY(wan_model_load(&m, dir));
    const struct wan_config *c = &m->cfg;
    printf("model: %s\n", dir);
    printf("  config:      %s (%s keys)\n", m->config_path, c->kind == WAN_CONFIG_DIFFUSERS ? "Diffusers" : "original");
    printf("  weights:     %s (%zu file%s, %s tensor names, stored %s)\n", m->weights_path, st_file_count(m->st),
           st_file_count(m->st) == 1 ? "" : "s", m->naming == WAN_NAMING_DIFFUSERS ? "Diffusers" : "original",
           dtype_name(m->stored_dtype));
    printf("  type:        %s%s\n", c->has_image ? "image-to-video (CLIP image branch)" : "text-to-video",
           c->inject_sample_info ? ", fps embedding (inject_sample_info)" : "");
    printf("  width %lld, %lld heads x %lld, %lld layers, ffn %lld, in %lld / out %lld channels, text_dim %lld, "
           "freq_dim %lld, eps %g\n",
           (long long)c->dim, (long long)c->num_heads, (long long)c->head_dim, (long long)c->num_layers,
           (long long)c->ffn_dim, (long long)c->in_channels, (long long)c->out_channels, (long long)c->text_dim,
           (long long)c->freq_dim, c->eps);
    if (c->has_image) printf("  image_dim %lld, pos_embed_seq_len %lld\n", (long long)c->image_dim, (long long)c->pos_embed_seq_len);
    printf("  parameters:  %lld in %lld tensors (config implies %lld)\n", (long long)m->n_params,
           (long long)m->n_tensors, (long long)wan_config_param_count(c));
    print_tensors(m->st, limit);
    wan_model_free(&m);
    return inspect_text_parts(dir);
}

static int inspect_safetensors(const char *path, int64_t limit) {
    struct st_set *st = NULL;
    TRY(st_open(&st, path));
    printf("safetensors: %s (%zu file%s)\n", path, st_file_count(st), st_file_count(st) == 1 ? "" : "s");
    const char *fmt = st_metadata(st, "format");
    if (fmt) printf("  metadata format: %s\n", fmt);
    print_tensors(st, limit);
    st_close(&st);
    return ERR_OK;
}

static int inspect_h5(const char *path) {
    struct h5_file *f = NULL;
    TRY(h5_open_read(&f, path));
    struct h5_entry *e = NULL;
    size_t n = 0;
    int rc = h5_list(f, &e, &n);
    if (rc == ERR_OK) {
        printf("hdf5: %s\n", path);
        for (size_t i = 0; i < n; i++) {
            char s[96];
            if (e[i].is_attribute)
                printf("  @%-30s %-8s %s\n", e[i].name, e[i].type_desc, e[i].value);
            else
                printf("  %-31s %-8s %s\n", e[i].name, e[i].type_desc, shape_str(s, sizeof s, e[i].ndim, e[i].shape));
        }
    }
    free(e);
    h5_close(&f);
    return rc;
}

static int inspect_video(const char *path) {
    struct video_info vi;
    TRY(video_probe(path, &vi));
    printf("%s: %s\n", vi.is_image ? "image" : "video", path);
    printf("  codec %s, %dx%d", vi.codec, vi.width, vi.height);
    if (!vi.is_image) {
        printf(", %d/%d fps", vi.fps_num, vi.fps_den);
        if (vi.frames >= 0) printf(", %lld frames", (long long)vi.frames);
    }
    printf("\n");
    return ERR_OK;
}

static const char help[] =
    "Usage: reelfarm inspect PATH [--tensors]\n"
    "\n"
    "PATH is a model directory (loaded strictly: config, parameter count, dtypes, tensors), a\n"
    ".safetensors file or *.safetensors.index.json, an HDF5 file (datasets and attributes), or an image or\n"
    "video file (codec, size, rate, frames).\n"
    "  --tensors   list every tensor (default: the first 20)\n";

int cmd_inspect(int argc, char **argv) {
    static const struct option longopts[] = {{"tensors", no_argument, 0, 'T'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    static const char cmd[] = "inspect";
    int64_t limit = 20;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'T': limit = -1; break;
        case 'h': fputs(help, stdout); return 0;
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1) return usage_error(cmd, "expected exactly one PATH");
    const char *path = argv[optind];
    int rc;
    if (fs_is_dir(path))
        rc = inspect_model(path, limit);
    else if (ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json"))
        rc = inspect_safetensors(path, limit);
    else if (!fs_exists(path))
        rc = err_set(ERR_IO, "%s: no such file or directory", path);
    else if (h5_is_hdf5(path))
        rc = inspect_h5(path);
    else if (inspect_video(path) == ERR_OK)
        rc = ERR_OK;
    else
        rc = err_set(ERR_FORMAT, "%s: not a model directory, safetensors, HDF5, image or video file", path);
    return rc < 0 ? run_error() : 0;
}
