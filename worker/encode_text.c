/* worker/encode_text.c - `reelfarm encode-text`: the umT5 encoding of a prompt and its negative (spec 8). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/h5io.h"
#include "io/tokenizer.h"
#include "model/umt5.h"
#include "worker/worker.h"

struct encoded {
    int64_t *ids;
    uint8_t *mask;
    float *context;
    int64_t n_tokens;
    bool truncated;
};

static void encoded_free(struct encoded *e) { free(e->ids), free(e->mask), free(e->context); }

static int encode_one(const struct tokenizer *tok, const struct umt5_model *m, const struct exec_ctx *ctx,
                      const char *text, const char *what, struct encoded *e) {
    const int64_t l = tok->text_len, d = m->cfg.d_model;
    memset(e, 0, sizeof *e);
    e->ids = malloc((size_t)l * sizeof *e->ids);
    e->mask = malloc((size_t)l);
    e->context = malloc((size_t)(l * d) * sizeof(float));
    if (!e->ids || !e->mask || !e->context) return err_set(ERR_NOMEM, "out of memory");
    TRY(tokenizer_encode(tok, text, what, e->ids, e->mask, &e->n_tokens, &e->truncated));
    if (e->truncated)
        LOG_WARN("%s: longer than %lld tokens; truncated to %lld tokens and EOS", what, (long long)l, (long long)(l - 1));
    return umt5_encode(m, ctx, e->ids, l, e->n_tokens, e->context);
}

static int write_encoded(struct h5_file *f, const char *prefix, const struct encoded *e, int64_t l, int64_t d) {
    char name[64];
    snprintf(name, sizeof name, "%scontext", prefix);
    TRY(h5_write_f32(f, name, e->context, 2, (int64_t[]){l, d}));
    snprintf(name, sizeof name, "%sinput_ids", prefix);
    TRY(h5_write_i64(f, name, e->ids, 1, (int64_t[]){l}));
    snprintf(name, sizeof name, "%sattention_mask", prefix);
    return h5_write_u8(f, name, e->mask, 1, (int64_t[]){l});
}

int worker_encode_text(const struct encode_text_options *o) {
    if (!o->force && fs_exists(o->out_path))
        return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite it (use --force)", o->out_path);
    struct tokenizer *tok = NULL;
    struct umt5_model *m = NULL;
    struct encoded pos = {0}, neg = {0};
    struct h5_file *f = NULL;
    /* the prompts first: bad UTF-8 should not wait for the model */
    char *check = NULL;
    int rc = tokenizer_clean(o->prompt, "prompt", &check);
    free(check);
    if (rc == ERR_OK && o->negative_prompt) rc = tokenizer_clean(o->negative_prompt, "negative prompt", &check), free(check);
    if (rc == ERR_OK) rc = tokenizer_open(&tok, o->model_dir, o->text_len);
    if (rc == ERR_OK) rc = umt5_load(&m, o->model_dir);
    if (rc < 0) goto end;
    const struct umt5_memory mem = umt5_memory(m, tok->text_len);
    LOG_INFO("text encoder: %.2f B parameters stored %s (%.1f GiB in the file mapping, read on demand); working "
             "memory %.1f MiB per-layer conversion + %.1f MiB activations",
             (double)m->n_params / 1e9, dtype_name(m->stored_dtype), (double)mem.mapped_bytes / (1 << 30),
             (double)mem.layer_bytes / (1 << 20), (double)mem.activation_bytes / (1 << 20));
    if (tok->vocab_size > m->cfg.vocab_size) {
        rc = err_set(ERR_FORMAT, "%s has %lld pieces but %s a vocabulary of %lld: tokenizer and text encoder do not match",
                     tok->model_path, (long long)tok->vocab_size, m->config_path, (long long)m->cfg.vocab_size);
        goto end;
    }
    const struct exec_ctx ctx = exec_ctx_cpu(o->threads);
    const double t0 = time_now();
    if ((rc = encode_one(tok, m, &ctx, o->prompt, "prompt", &pos)) < 0) goto end;
    if (o->negative_prompt && (rc = encode_one(tok, m, &ctx, o->negative_prompt, "negative prompt", &neg)) < 0) goto end;
    LOG_INFO("encode-text tokens=%lld negative_tokens=%lld text_len=%lld seconds=%.2f", (long long)pos.n_tokens,
             (long long)neg.n_tokens, (long long)tok->text_len, time_now() - t0);

    const int64_t l = tok->text_len, d = m->cfg.d_model;
    if ((rc = h5_create(&f, o->out_path, o->force)) < 0) goto end;
    if ((rc = write_encoded(f, "", &pos, l, d)) < 0) goto end;
    if (o->negative_prompt && (rc = write_encoded(f, "negative_", &neg, l, d)) < 0) goto end;
    if ((rc = h5_attr_set_str(f, "reelfarm_format", "reelfarm-text-context")) < 0) goto end;
    if ((rc = h5_attr_set_i64(f, "reelfarm_format_version", 1)) < 0) goto end;
    if ((rc = h5_attr_set_str(f, "prompt", o->prompt)) < 0) goto end;
    if (o->negative_prompt && (rc = h5_attr_set_str(f, "negative_prompt", o->negative_prompt)) < 0) goto end;
    if ((rc = h5_attr_set_i64(f, "text_len", l)) < 0) goto end;
    if ((rc = h5_attr_set_i64(f, "truncated", pos.truncated || neg.truncated)) < 0) goto end;
    if ((rc = h5_attr_set_str(f, "model", o->model_dir)) < 0) goto end;
    rc = h5_commit(&f);
end:
    h5_close(&f);
    encoded_free(&pos);
    encoded_free(&neg);
    umt5_free(&m);
    tokenizer_close(&tok);
    return rc;
}
