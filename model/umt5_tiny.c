/* model/umt5_tiny.c - the built-in tiny text encoder and tokenizer of make-tiny-model.
 *
 * The tokenizer is a SentencePiece unigram model trained at creation time (one thread: the same pieces
 * and ids every time) on a corpus generated from fixed word lists with the counter-based RNG: English
 * scene vocabulary, CJK words, digits and punctuation, so prompts in those scripts tokenize into real
 * pieces and anything else (emoji) falls back to bytes. pad 0, eos 1, unk 2 as umT5. The text encoder is
 * a random umT5 with the transformers layout and names (d_model = the DiT's text_dim, 2 layers, 4 heads
 * of 16, d_ff 128), its weights a function of (seed, tensor name) like the DiT's.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "io/fs.h"
#include "io/safetensors.h"
#include "io/spm_shim.h"
#include "model/wan_tiny.h"

enum { TINY_TEXT_LEN = 64, TINY_VOCAB_TARGET = 512, TINY_CORPUS_LINES = 3000, RNG_PURPOSE_TINY_CORPUS = 0x636f7270 };

static const char *const words_en[] = {
    "a", "the", "of", "in", "on", "at", "with", "and", "slowly", "quickly", "video", "camera", "pans", "across",
    "mountain", "river", "forest", "city", "night", "light", "rain", "snow", "wind", "ocean", "wave", "waves",
    "sunset", "sunrise", "bird", "dog", "cat", "running", "walking", "flying", "driving", "red", "blue", "green",
    "golden", "silver", "old", "young", "woman", "man", "child", "car", "train", "street", "market", "crowd",
    "dancing", "music", "cinematic", "shot", "close", "up", "wide", "angle", "bright", "tones", "overexposed",
    "static", "blurred", "details", "subtitles", "style", "quality", "ugly", "deformed", "hands", "face", "sky",
    "clouds", "over", "through", "rainy", "slow", "fast", "motion", "scene", "film", "light", "shadow", "glow"};
static const char *const words_cjk[] = {"山", "水", "城市", "夜晚", "光", "雨", "雪", "风", "海", "浪", "日落", "鸟",
                                        "狗", "猫", "女人", "男人", "孩子", "汽车", "火车", "街道", "市场", "音乐",
                                        "电影", "镜头", "一只", "在", "的", "上", "奔跑", "色调", "艳丽", "过曝",
                                        "静态", "细节", "模糊", "质量", "画面", "背景", "手指", "字幕"};
static const char *const punct[] = {".", ",", "!", "?", "", ""};

static uint32_t pick(uint64_t seed, uint64_t stream, int64_t *counter, uint32_t n) {
    float u;
    rng_uniform_f32(&u, 1, seed, stream, (*counter)++);
    uint32_t i = (uint32_t)(u * (float)n);
    return i < n ? i : n - 1;
}

static int write_corpus(const char *path, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return err_set(ERR_IO, "%s: cannot write the tokenizer corpus", path);
    const uint64_t stream = rng_stream_id(RNG_PURPOSE_TINY_CORPUS, 0, 0, 0);
    int64_t ctr = 0;
    const uint32_t ne = sizeof words_en / sizeof words_en[0], nc = sizeof words_cjk / sizeof words_cjk[0];
    for (int line = 0; line < TINY_CORPUS_LINES; line++) {
        const uint32_t n = 5 + pick(seed, stream, &ctr, 12);
        for (uint32_t w = 0; w < n; w++) fprintf(f, "%s%s", w ? " " : "", words_en[pick(seed, stream, &ctr, ne)]);
        if (line % 4 == 0) {
            const uint32_t k = 1 + pick(seed, stream, &ctr, 4);
            for (uint32_t w = 0; w < k; w++) fprintf(f, " %s", words_cjk[pick(seed, stream, &ctr, nc)]);
        }
        if (line % 7 == 0) fprintf(f, " %u", 1 + pick(seed, stream, &ctr, 1999));
        fprintf(f, "%s\n", punct[pick(seed, stream, &ctr, 6)]);
    }
    return fclose(f) == 0 ? ERR_OK : err_set(ERR_IO, "%s: cannot write the tokenizer corpus", path);
}

static int write_json_file(const char *path, cJSON *o, bool force) {
    char *text = cJSON_Print(o);
    if (!text) return err_set(ERR_NOMEM, "out of memory");
    int rc = fs_write_file(path, text, strlen(text), force);
    free(text);
    return rc;
}

/* tokenizer/: spiece.model, tokenizer_config.json, special_tokens_map.json. Returns the piece count. */
static int write_tokenizer(const char *tdir, uint64_t seed, bool force, int64_t *vocab) {
    char corpus[1200], prefix[1200], model[1200], path[1200];
    TRY(fs_mkdir_p(tdir));
    TRY(fs_join(corpus, sizeof corpus, tdir, "corpus.tmp"));
    TRY(fs_join(prefix, sizeof prefix, tdir, "spiece"));
    TRY(fs_join(model, sizeof model, tdir, "spiece.model"));
    if (!force && fs_exists(model)) return err_set(ERR_EXISTS, "refusing to overwrite %s: it already exists", model);
    int rc = write_corpus(corpus, seed);
    if (rc == ERR_OK) rc = spm_train_unigram(corpus, prefix, TINY_VOCAB_TARGET);
    fs_remove_quiet(corpus);
    TRY(fs_join(path, sizeof path, tdir, "spiece.vocab"));
    fs_remove_quiet(path); /* the trainer's human-readable dump; not part of the layout */
    TRY(rc);
    struct spm_proc *sp = NULL;
    TRY(spm_load(&sp, model));
    *vocab = spm_piece_count(sp);
    spm_free(&sp);

    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "tokenizer_class", "T5Tokenizer");
    cJSON_AddNumberToObject(cfg, "model_max_length", TINY_TEXT_LEN);
    cJSON_AddStringToObject(cfg, "pad_token", "<pad>");
    cJSON_AddStringToObject(cfg, "eos_token", "</s>");
    cJSON_AddStringToObject(cfg, "unk_token", "<unk>");
    cJSON_AddNumberToObject(cfg, "extra_ids", 0);
    cJSON_AddStringToObject(cfg, "_reelfarm_note", "tiny tokenizer trained by reelfarm make-tiny-model");
    TRY(fs_join(path, sizeof path, tdir, "tokenizer_config.json"));
    rc = write_json_file(path, cfg, force);
    cJSON_Delete(cfg);
    TRY(rc);
    cJSON *sp_map = cJSON_CreateObject();
    cJSON_AddStringToObject(sp_map, "pad_token", "<pad>");
    cJSON_AddStringToObject(sp_map, "eos_token", "</s>");
    cJSON_AddStringToObject(sp_map, "unk_token", "<unk>");
    TRY(fs_join(path, sizeof path, tdir, "special_tokens_map.json"));
    rc = write_json_file(path, sp_map, force);
    cJSON_Delete(sp_map);
    return rc;
}

static int write_text_encoder(const char *edir, int64_t d_model, int64_t vocab, const struct wan_tiny_options *opt) {
    const int64_t d_ff = 128, d_kv = 16, heads = 4, layers = 2, buckets = 32, inner = heads * d_kv;
    char path[1200];
    TRY(fs_mkdir_p(edir));
    cJSON *c = cJSON_CreateObject();
    const char *arch[1] = {"UMT5EncoderModel"};
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(arch, 1));
    cJSON_AddStringToObject(c, "model_type", "umt5");
    cJSON_AddNumberToObject(c, "vocab_size", (double)vocab);
    cJSON_AddNumberToObject(c, "d_model", (double)d_model);
    cJSON_AddNumberToObject(c, "d_ff", (double)d_ff);
    cJSON_AddNumberToObject(c, "d_kv", (double)d_kv);
    cJSON_AddNumberToObject(c, "num_heads", (double)heads);
    cJSON_AddNumberToObject(c, "num_layers", (double)layers);
    cJSON_AddNumberToObject(c, "relative_attention_num_buckets", (double)buckets);
    cJSON_AddNumberToObject(c, "relative_attention_max_distance", 128);
    cJSON_AddNumberToObject(c, "layer_norm_epsilon", 1e-6);
    cJSON_AddStringToObject(c, "feed_forward_proj", "gated-gelu");
    cJSON_AddStringToObject(c, "dense_act_fn", "gelu_new");
    cJSON_AddBoolToObject(c, "is_gated_act", true);
    cJSON_AddNumberToObject(c, "pad_token_id", 0);
    cJSON_AddNumberToObject(c, "eos_token_id", 1);
    cJSON_AddBoolToObject(c, "scalable_attention", true);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", false);
    TRY(fs_join(path, sizeof path, edir, "config.json"));
    int rc = write_json_file(path, c, opt->force);
    cJSON_Delete(c);
    TRY(rc);

    /* names and shapes of the transformers layout */
    const size_t n = 2 + 10 * (size_t)layers;
    struct st_write_item *items = calloc(n, sizeof *items);
    char (*names)[160] = calloc(n, sizeof *names);
    void **bufs = calloc(n, sizeof *bufs);
    rc = items && names && bufs ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
    size_t k = 0;
#define ITEM(name_, rank_, d0_, d1_)                                                                             \
    if (rc == ERR_OK) {                                                                                          \
        snprintf(names[k], sizeof names[k], "%s", name_);                                                        \
        items[k].ndim = rank_, items[k].shape[0] = d0_, items[k].shape[1] = d1_;                                 \
        k++;                                                                                                     \
    }
    ITEM("shared.weight", 2, vocab, d_model);
    ITEM("encoder.final_layer_norm.weight", 1, d_model, 0);
    for (int64_t i = 0; i < layers; i++) {
        char nm[160];
#define LITEM(fmt_, rank_, d0_, d1_)                                                                             \
    snprintf(nm, sizeof nm, fmt_, (long long)i);                                                                 \
    ITEM(nm, rank_, d0_, d1_)
        LITEM("encoder.block.%lld.layer.0.layer_norm.weight", 1, d_model, 0);
        LITEM("encoder.block.%lld.layer.0.SelfAttention.q.weight", 2, inner, d_model);
        LITEM("encoder.block.%lld.layer.0.SelfAttention.k.weight", 2, inner, d_model);
        LITEM("encoder.block.%lld.layer.0.SelfAttention.v.weight", 2, inner, d_model);
        LITEM("encoder.block.%lld.layer.0.SelfAttention.o.weight", 2, d_model, inner);
        LITEM("encoder.block.%lld.layer.0.SelfAttention.relative_attention_bias.weight", 2, buckets, heads);
        LITEM("encoder.block.%lld.layer.1.layer_norm.weight", 1, d_model, 0);
        LITEM("encoder.block.%lld.layer.1.DenseReluDense.wi_0.weight", 2, d_ff, d_model);
        LITEM("encoder.block.%lld.layer.1.DenseReluDense.wi_1.weight", 2, d_ff, d_model);
        LITEM("encoder.block.%lld.layer.1.DenseReluDense.wo.weight", 2, d_model, d_ff);
#undef LITEM
    }
#undef ITEM
    for (size_t i = 0; rc == ERR_OK && i < k; i++) {
        const int64_t numel = items[i].shape[0] * (items[i].ndim == 2 ? items[i].shape[1] : 1);
        float *vals = malloc((size_t)numel * sizeof(float));
        bufs[i] = malloc((size_t)numel * dtype_size(opt->dtype));
        if (!vals || !bufs[i]) {
            free(vals);
            rc = err_set(ERR_NOMEM, "out of memory");
            break;
        }
        /* the same per-name generator as the DiT (std 1/sqrt(fan-in)); the embedding table at unit scale */
        wan_tiny_values(vals, numel, items[i].ndim, items[i].shape, names[i], opt->seed);
        if (!strcmp(names[i], "shared.weight"))
            for (int64_t j = 0; j < numel; j++) vals[j] *= sqrtf((float)d_model);
        dtype_from_f32(bufs[i], opt->dtype, vals, (size_t)numel);
        free(vals);
        items[i].name = names[i];
        items[i].dtype = opt->dtype;
        items[i].data = bufs[i];
    }
    const char *meta[] = {"format", "pt", "generator", "reelfarm make-tiny-model"};
    if (rc == ERR_OK) rc = fs_join(path, sizeof path, edir, "model.safetensors");
    if (rc == ERR_OK) rc = st_write(path, items, k, meta, 2, opt->force);
    for (size_t i = 0; bufs && i < n; i++) free(bufs[i]);
    free(bufs), free(items), free(names);
    return rc;
}

int umt5_tiny_write(const char *dir, int64_t d_model, const struct wan_tiny_options *opt) {
    char tdir[1100], edir[1100];
    TRY(fs_join(tdir, sizeof tdir, dir, opt->naming == WAN_NAMING_ORIGINAL ? "google/umt5-xxl" : "tokenizer"));
    TRY(fs_join(edir, sizeof edir, dir, "text_encoder"));
    int64_t vocab = 0;
    TRY(write_tokenizer(tdir, opt->seed, opt->force, &vocab));
    return write_text_encoder(edir, d_model, vocab, opt);
}
