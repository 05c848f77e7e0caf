/* tests/common/golden_models.c - tiny models named by golden files. */
#include "tests/common/golden_models.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "tests/common/test_util.h"

int golden_model_options(const char *args, struct wan_tiny_options *o) {
    wan_tiny_default_options(o);
    o->example_input = false;
    char buf[320];
    snprintf(buf, sizeof buf, "%s", args);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!strcmp(tok, "--seed")) {
            char *v = strtok_r(NULL, " ", &save);
            if (!v) return -1;
            o->seed = strtoull(v, NULL, 10);
        } else if (!strcmp(tok, "--fps-embedding")) {
            o->fps_embedding = true;
        } else if (!strcmp(tok, "--i2v")) {
            o->i2v = true;
        } else if (!strcmp(tok, "--dtype")) {
            char *v = strtok_r(NULL, " ", &save);
            int dt = v ? dtype_parse(v) : -1;
            if (dt < 0) return -1;
            o->dtype = (enum dtype)dt;
        } else {
            return -1;
        }
    }
    return 0;
}

struct wan_model *golden_model_load(const char *tmp, const char *args, const char *variant) {
    struct wan_tiny_options o;
    T_REQUIRE(golden_model_options(args, &o) == 0, "cannot parse model_args '%s'", args);
    if (variant && !strcmp(variant, "original")) o.naming = WAN_NAMING_ORIGINAL, o.shards = 3;
    if (variant && !strcmp(variant, "sharded")) o.shards = 2;
    static int counter = 0;
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/model%d", tmp, counter++);
    T_REQUIRE(wan_tiny_write(dir, &o) == ERR_OK, "make-tiny-model %s: %s", args, err_message());
    struct wan_model *m = NULL;
    T_REQUIRE(wan_model_load(&m, dir) == ERR_OK, "load %s: %s", dir, err_message());
    return m;
}

static double attr_number(const struct h5_file *f, const char *key) {
    char s[128];
    return h5_attr_get_str(f, key, s, sizeof s) == ERR_OK ? strtod(s, NULL) : NAN;
}

bool golden_model_matches(struct wan_model *m, const struct h5_file *f, const char *what) {
    struct weight_decl *decls = NULL;
    size_t n = 0;
    T_REQUIRE(wan_weights_declare(&m->cfg, &m->w, &decls, &n) == ERR_OK, "declare: %s", err_message());
    double sum = 0, sumsq = 0;
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) {
        const struct tensor *t = decls[i].slot;
        const float *p = t->data;
        for (int64_t k = 0; k < tensor_numel(t); k++) sum += p[k], sumsq += (double)p[k] * p[k];
        count += tensor_numel(t);
    }
    free(decls);
    const double want_sum = attr_number(f, "model_weight_sum"), want_sumsq = attr_number(f, "model_weight_sumsq");
    const double want_count = attr_number(f, "model_weight_count");
    const bool same = (double)count == want_count && fabs(sum - want_sum) <= 1e-9 * (fabs(want_sum) + sumsq) &&
                      fabs(sumsq - want_sumsq) <= 1e-9 * want_sumsq;
    T_CHECK(same,
            "%s: the tiny model differs from the one the golden was computed with (sum %.17g vs %.17g, count %lld vs "
            "%.0f). HINT: the tiny-model generator changed; regenerate the goldens with scripts/make-goldens.sh and "
            "scripts/make-goldens-sampling.sh",
            what, sum, want_sum, (long long)count, want_count);
    return same;
}

bool golden_st_matches(const struct st_set *st, const struct h5_file *f, const char *attr_prefix, const char *what,
                       const char *regen_script) {
    double sum = 0, sumsq = 0;
    int64_t count = 0;
    for (size_t i = 0; i < st_count(st); i++) {
        const struct st_tensor *t = st_at(st, i);
        const size_t n = t->nbytes / dtype_size(t->dtype);
        float *v = malloc((n ? n : 1) * sizeof(float));
        if (!v) T_REQUIRE(v != NULL, "out of memory");
        dtype_to_f32(v, t->data, t->dtype, n);
        for (size_t k = 0; k < n; k++) sum += v[k], sumsq += (double)v[k] * v[k];
        count += (int64_t)n;
        free(v);
    }
    char key[3][96];
    snprintf(key[0], sizeof key[0], "%s_sum", attr_prefix);
    snprintf(key[1], sizeof key[1], "%s_sumsq", attr_prefix);
    snprintf(key[2], sizeof key[2], "%s_count", attr_prefix);
    const double ws = attr_number(f, key[0]), wq = attr_number(f, key[1]), wc = attr_number(f, key[2]);
    const bool same = (double)count == wc && fabs(sum - ws) <= 1e-9 * (fabs(ws) + sumsq) && fabs(sumsq - wq) <= 1e-9 * wq;
    T_CHECK(same, "%s: the tiny model's weights differ from the golden's (sum %.17g vs %.17g, count %lld vs %.0f). "
                  "HINT: regenerate with %s",
            what, sum, ws, (long long)count, wc, regen_script);
    return same;
}

int dit_golden_read(const char *path, struct dit_golden *g) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    struct h5_file *f = NULL;
    TRY(h5_open_read(&f, path));
    char tmp[128];
    int rc = h5_attr_get_str(f, "reelfarm_format", tmp, sizeof tmp);
    if (rc == ERR_OK && strcmp(tmp, "reelfarm-golden") != 0)
        rc = err_set(ERR_FORMAT, "%s: not a reelfarm golden file (format '%s')", path, tmp);
    int64_t version = 0, causal_block_size = 0;
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "reelfarm_format_version", &version);
    if (rc == ERR_OK && version != 1)
        rc = err_set(ERR_FORMAT, "%s: golden format version %lld, expected 1 (regenerate with scripts/make-goldens.sh)",
                     path, (long long)version);
    if (rc == ERR_OK) rc = h5_attr_get_str(f, "case", g->name, sizeof g->name);
    if (rc == ERR_OK) rc = h5_attr_get_str(f, "model_args", g->model_args, sizeof g->model_args);
    if (rc == ERR_OK) rc = h5_attr_get_i64(f, "causal_block_size", &causal_block_size);
    if (rc == ERR_OK) rc = h5_read_f32(f, "latents", &g->in.latents);
    if (rc == ERR_OK) rc = h5_read_f32(f, "timesteps", &g->in.timesteps);
    if (rc == ERR_OK) rc = h5_read_f32(f, "context", &g->in.context);
    if (rc == ERR_OK && h5_has(f, "condition")) rc = h5_read_f32(f, "condition", &g->in.condition);
    if (rc == ERR_OK && h5_has(f, "clip_features")) rc = h5_read_f32(f, "clip_features", &g->in.clip);
    g->in.fps_code = -1;
    if (rc == ERR_OK && h5_has(f, "fps")) {
        int64_t fps = 0;
        rc = h5_read_i64_scalar(f, "fps", &fps);
        g->in.fps_code = (int)fps;
    }
    if (rc == ERR_OK) rc = h5_read_f32(f, "noise_pred", &g->ref);
    g->in.causal_block_size = (int)causal_block_size;
    h5_close(&f);
    return rc;
}

void dit_golden_free(struct dit_golden *g) {
    free(g->in.latents.data), free(g->in.timesteps.data), free(g->in.context.data);
    free(g->in.condition.data), free(g->in.clip.data), free(g->ref.data);
}
