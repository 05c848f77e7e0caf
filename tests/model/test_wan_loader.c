/* tests/model/test_wan_loader.c - configs and strict checkpoint loading (spec 1, 2.1-2.3).
 *
 * Parameter counts of every released config against spec section 1; both namings and both config
 * flavours load the same values; f32, bf16 and f16 checkpoints load; and every malformed model
 * directory gives its own error code and a message naming the file and the tensor or key:
 * missing / unexpected / misshaped tensor, truncated file, header length past the end of the file,
 * overlapping data offsets, bad JSON in the header, bad JSON and wrong types in config.json,
 * a missing directory, a directory without weights.
 */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "model/wan_dit.h"
#include "model/wan_tiny.h"
#include "tests/common/test_util.h"

static const char *tmp;

static void test_param_counts(void) {
    struct wan_config c;
    T_REQUIRE(wan_config_preset("1.3b", &c) == ERR_OK, "preset");
    T_CHECK(wan_config_param_count(&c) == 1435525696LL, "DF-1.3B: %lld", (long long)wan_config_param_count(&c));
    T_REQUIRE(wan_config_preset("14b", &c) == ERR_OK, "preset");
    T_CHECK(wan_config_param_count(&c) == 14288491584LL, "DF-14B: %lld", (long long)wan_config_param_count(&c));
    /* I2V: 36 input channels, CLIP 1280 image branch, no fps embedding */
    T_REQUIRE(wan_config_preset("1.3b", &c) == ERR_OK, "preset");
    c.inject_sample_info = false, c.has_image = true, c.image_dim = 1280, c.in_channels = 36;
    T_CHECK(wan_config_param_count(&c) == 1564428608LL, "I2V-1.3B: %lld", (long long)wan_config_param_count(&c));
    T_REQUIRE(wan_config_preset("14b", &c) == ERR_OK, "preset");
    c.has_image = true, c.image_dim = 1280, c.in_channels = 36;
    T_CHECK(wan_config_param_count(&c) == 16394878784LL, "I2V-14B: %lld", (long long)wan_config_param_count(&c));
}

static char *make_model(const char *name, enum wan_naming naming, enum dtype dt, bool i2v, bool fps) {
    struct wan_tiny_options o;
    wan_tiny_default_options(&o);
    o.seed = 11, o.naming = naming, o.dtype = dt, o.i2v = i2v, o.fps_embedding = fps, o.example_input = false;
    static char dirs[32][1100];
    static int next = 0;
    char *dir = dirs[next++ % 32];
    snprintf(dir, 1100, "%s/%s", tmp, name);
    T_REQUIRE(wan_tiny_write(dir, &o) == ERR_OK, "write %s: %s", name, err_message());
    return dir;
}

static void test_good_models(void) {
    struct wan_model *d = NULL, *o = NULL, *b = NULL, *h = NULL;
    char *dd = make_model("diffusers_f32", WAN_NAMING_DIFFUSERS, DTYPE_F32, true, true);
    T_REQUIRE(wan_model_load(&d, dd) == ERR_OK, "load diffusers: %s", err_message());
    T_CHECK(d->naming == WAN_NAMING_DIFFUSERS && d->cfg.kind == WAN_CONFIG_DIFFUSERS, "diffusers naming and config");
    T_CHECK(d->n_params == wan_config_param_count(&d->cfg), "loaded %lld params, config implies %lld",
            (long long)d->n_params, (long long)wan_config_param_count(&d->cfg));
    T_CHECK(d->cfg.has_image && d->cfg.inject_sample_info && d->cfg.in_channels == 36, "i2v + fps config");
    T_CHECK(d->rope_split[0] == 22 && d->rope_split[1] == 21 && d->rope_split[2] == 21, "RoPE split 22/21/21");
    char *od = make_model("original_f32", WAN_NAMING_ORIGINAL, DTYPE_F32, true, true);
    T_REQUIRE(wan_model_load(&o, od) == ERR_OK, "load original: %s", err_message());
    T_CHECK(o->naming == WAN_NAMING_ORIGINAL && o->cfg.kind == WAN_CONFIG_ORIGINAL, "original naming and config");
    char *bd = make_model("diffusers_bf16", WAN_NAMING_DIFFUSERS, DTYPE_BF16, true, true);
    T_REQUIRE(wan_model_load(&b, bd) == ERR_OK, "load bf16: %s", err_message());
    T_CHECK(b->stored_dtype == DTYPE_BF16, "bf16 detected");
    char *hd = make_model("original_f16", WAN_NAMING_ORIGINAL, DTYPE_F16, true, true);
    T_REQUIRE(wan_model_load(&h, hd) == ERR_OK, "load f16: %s", err_message());
    /* the same table drives all four: compare every tensor */
    struct weight_decl *dl = NULL, *ol = NULL, *bl = NULL, *hl = NULL;
    size_t nd = 0, no = 0, nb = 0, nh = 0;
    wan_weights_declare(&d->cfg, &d->w, &dl, &nd);
    wan_weights_declare(&o->cfg, &o->w, &ol, &no);
    wan_weights_declare(&b->cfg, &b->w, &bl, &nb);
    wan_weights_declare(&h->cfg, &h->w, &hl, &nh);
    T_REQUIRE(nd == no && nd == nb && nd == nh, "declared counts differ");
    int same_o = 1, same_b = 1, same_h = 1;
    for (size_t i = 0; i < nd; i++) {
        const float *x = dl[i].slot->data, *y = ol[i].slot->data, *z = bl[i].slot->data, *u = hl[i].slot->data;
        for (int64_t k = 0; k < tensor_numel(dl[i].slot); k++) {
            same_o &= x[k] == y[k];
            same_b &= z[k] == bf16_to_f32(f32_to_bf16(x[k]));
            same_h &= u[k] == f16_to_f32(f32_to_f16(x[k]));
        }
    }
    T_CHECK(same_o, "original naming loads different values");
    T_CHECK(same_b, "bf16 checkpoint is not the bf16 rounding of the f32 one");
    T_CHECK(same_h, "f16 checkpoint is not the f16 rounding of the f32 one");
    free(dl), free(ol), free(bl), free(hl);
    wan_model_free(&d), wan_model_free(&o), wan_model_free(&b), wan_model_free(&h);
}

/* ---- malformed directories ---- */

static const char *weights_file(const char *dir) {
    static char p[1200];
    snprintf(p, sizeof p, "%s/transformer/diffusion_pytorch_model.safetensors", dir);
    return p;
}

/* Rewrite the model's weights with one change: drop `drop`, add `add` (shape [3]), or reshape `reshape`. */
static void rewrite_weights(const char *dir, const char *drop, const char *add, const char *reshape) {
    struct st_set *st = NULL;
    T_REQUIRE(st_open(&st, weights_file(dir)) == ERR_OK, "open: %s", err_message());
    const size_t n = st_count(st);
    struct st_write_item *items = calloc(n + 1, sizeof *items);
    void **copies = calloc(n + 1, sizeof *copies);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *t = st_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        items[k].name = t->name;
        items[k].dtype = t->dtype;
        items[k].ndim = t->ndim;
        memcpy(items[k].shape, t->shape, sizeof t->shape);
        copies[k] = malloc(t->nbytes ? t->nbytes : 1);
        memcpy(copies[k], t->data, t->nbytes);
        items[k].data = copies[k];
        if (reshape && !strcmp(t->name, reshape)) items[k].shape[t->ndim - 1] -= 1; /* fewer columns */
        k++;
    }
    static float extra[3] = {1, 2, 3};
    if (add) {
        items[k].name = add, items[k].dtype = DTYPE_F32, items[k].ndim = 1, items[k].shape[0] = 3;
        items[k].data = extra;
        k++;
    }
    char out[1300];
    snprintf(out, sizeof out, "%s.new", weights_file(dir));
    T_REQUIRE(st_write(out, items, k, NULL, 0, true) == ERR_OK, "write: %s", err_message());
    st_close(&st);
    T_REQUIRE(rename(out, weights_file(dir)) == 0, "rename");
    for (size_t i = 0; i < k; i++) free(copies[i]);
    free(copies), free(items);
}

static void expect_error(const char *what, const char *dir, int code, const char *must1, const char *must2) {
    struct wan_model *m = NULL;
    err_clear();
    int rc = wan_model_load(&m, dir);
    const char *msg = err_message();
    printf("%-28s -> %s: %s\n", what, err_code_name(rc), msg);
    T_CHECK(rc == code, "%s: expected %s, got %s (%s)", what, err_code_name(code), err_code_name(rc), msg);
    T_CHECK(m == NULL, "%s: a model was returned", what);
    T_CHECK(strchr(msg, '\n') == NULL && msg[0], "%s: message must be one non-empty line", what);
    if (must1) T_CHECK(strstr(msg, must1) != NULL, "%s: message lacks '%s': %s", what, must1, msg);
    if (must2) T_CHECK(strstr(msg, must2) != NULL, "%s: message lacks '%s': %s", what, must2, msg);
}

static void patch_bytes(const char *path, long offset, const void *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    T_REQUIRE(f && fseek(f, offset, SEEK_SET) == 0 && fwrite(bytes, 1, n, f) == n, "patch %s", path);
    fclose(f);
}

/* Replace the header JSON (same length, padded with spaces) through a cJSON edit callback. */
static void edit_header(const char *path, void (*edit)(cJSON *root)) {
    char *buf = NULL;
    size_t len = 0;
    T_REQUIRE(fs_read_file(path, &buf, &len, 1 << 26) == ERR_OK, "read %s", path);
    uint64_t hl = 0;
    memcpy(&hl, buf, 8);
    cJSON *root = cJSON_ParseWithLength(buf + 8, hl);
    T_REQUIRE(root != NULL, "parse header");
    edit(root);
    char *text = cJSON_PrintUnformatted(root);
    T_REQUIRE(strlen(text) <= hl, "edited header grew");
    memset(buf + 8, ' ', hl);
    memcpy(buf + 8, text, strlen(text));
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    cJSON_Delete(root), free(text), free(buf);
}

/* Make two tensors of the same size overlap: the second takes the first's offsets. */
static void overlap_edit(cJSON *root) {
    cJSON *a = cJSON_GetObjectItem(root, "blocks.0.attn1.to_q.weight");
    cJSON *b = cJSON_GetObjectItem(root, "blocks.0.attn1.to_k.weight");
    cJSON *ao = cJSON_GetObjectItem(a, "data_offsets");
    cJSON_ReplaceItemInObject(b, "data_offsets", cJSON_Duplicate(ao, 1));
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    T_REQUIRE(f && fputs(text, f) >= 0, "write %s", path);
    fclose(f);
}

static void test_bad_models(void) {
    char *d;
    d = make_model("missing", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    rewrite_weights(d, "blocks.1.ffn.net.2.bias", NULL, NULL);
    expect_error("missing tensor", d, ERR_MISSING, "missing tensor 'blocks.1.ffn.net.2.bias'", "[256]");

    d = make_model("extra", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    rewrite_weights(d, NULL, "blocks.0.attn1.extra.weight", NULL);
    expect_error("unexpected tensor", d, ERR_UNEXPECTED, "unexpected tensor 'blocks.0.attn1.extra.weight'",
                 "diffusion_pytorch_model.safetensors");

    d = make_model("misshaped", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    rewrite_weights(d, NULL, NULL, "blocks.1.attn1.to_q.weight");
    expect_error("misshaped tensor", d, ERR_SHAPE, "'blocks.1.attn1.to_q.weight' has shape [256, 255]",
                 "expected [256, 256]");

    d = make_model("truncated", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    /* an interrupted download: the header is whole, the data area is cut short */
    T_REQUIRE(truncate(weights_file(d), 4000000) == 0, "truncate");
    expect_error("truncated file", d, ERR_FORMAT, "diffusion_pytorch_model.safetensors: ", "past the end of the data area");

    d = make_model("header_past_eof", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    uint64_t huge = 50u << 20;
    patch_bytes(weights_file(d), 0, &huge, 8);
    expect_error("header length past EOF", d, ERR_FORMAT, "header length", "past the end of the file");

    d = make_model("overlap", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    edit_header(weights_file(d), overlap_edit);
    expect_error("overlapping offsets", d, ERR_FORMAT, "overlapping data offsets: \"blocks.0.attn1.to_", NULL);

    d = make_model("header_bad_json", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    patch_bytes(weights_file(d), 8, "{\"x\" 1", 6);
    expect_error("bad JSON in header", d, ERR_FORMAT, "diffusion_pytorch_model.safetensors", "JSON");

    char path[1200];
    d = make_model("config_bad_json", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    snprintf(path, sizeof path, "%s/transformer/config.json", d);
    write_text(path, "{\n  \"num_attention_heads\": 2,\n  \"attention_head_dim\": 128,\n  oops\n}\n");
    expect_error("bad JSON in config", d, ERR_FORMAT, "config.json", "line 4");

    d = make_model("config_wrong_type", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    snprintf(path, sizeof path, "%s/transformer/config.json", d);
    write_text(path, "{\"num_attention_heads\": 2, \"attention_head_dim\": 128, \"num_layers\": \"two\", "
                     "\"ffn_dim\": 512, \"in_channels\": 16, \"text_dim\": 64, \"qk_norm\": \"rms_norm_across_heads\"}");
    expect_error("config key of wrong type", d, ERR_FORMAT, "num_layers", "config.json");

    d = make_model("config_missing_key", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    snprintf(path, sizeof path, "%s/transformer/config.json", d);
    write_text(path, "{\"num_attention_heads\": 2, \"attention_head_dim\": 128, \"ffn_dim\": 512, "
                     "\"in_channels\": 16, \"text_dim\": 64, \"qk_norm\": \"rms_norm_across_heads\"}");
    expect_error("config key missing", d, ERR_MISSING, "num_layers", "config.json");

    d = make_model("config_mismatch", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    snprintf(path, sizeof path, "%s/transformer/config.json", d);
    write_text(path, "{\"num_attention_heads\": 2, \"attention_head_dim\": 128, \"num_layers\": 3, "
                     "\"ffn_dim\": 512, \"in_channels\": 16, \"text_dim\": 64, \"qk_norm\": \"rms_norm_across_heads\"}");
    expect_error("config with one layer too many", d, ERR_MISSING, "missing tensor 'blocks.2.", NULL);

    snprintf(path, sizeof path, "%s/does-not-exist", tmp);
    expect_error("missing directory", path, ERR_IO, "does-not-exist", "no such model directory");

    d = make_model("no_weights", WAN_NAMING_DIFFUSERS, DTYPE_F32, false, false);
    unlink(weights_file(d));
    expect_error("no weights", d, ERR_MISSING, "no *.safetensors", NULL);

    snprintf(path, sizeof path, "%s/empty_dir", tmp);
    fs_mkdir_p(path);
    expect_error("not a model directory", path, ERR_MISSING, "not a model directory", NULL);
}

int main(void) {
    tmp = t_tmpdir("loader");
    test_param_counts();
    test_good_models();
    test_bad_models();
    t_rmtree(tmp);
    return t_summary(__FILE__);
}
