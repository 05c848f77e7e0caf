/* tests/model/test_text.c - prompt cleaning, tokenization and the umT5 encoder (spec 8).
 *
 * Cleaning: HTML references (double unescape, numeric with Python's rules, legacy names without ';',
 * unknown names kept), Unicode whitespace runs, strip, and invalid UTF-8 refused with its byte offset.
 * Tokenizer: EOS and padding, truncation keeping EOS last, the empty prompt, the text_len override, the
 * tiny tokenizer retrained to the same ids, missing and corrupt tokenizer files. Encoder: padding rows
 * exactly zero, valid rows independent of the amount of padding, bf16 weights through the per-layer
 * conversion, token ids outside the vocabulary refused, a missing text encoder.
 * The numerics against the independent reference are in test_text_golden.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/tokenizer.h"
#include "model/umt5.h"
#include "model/wan_tiny.h"
#include "tests/common/test_util.h"

static const char *tmp;

static void expect_clean(const char *in, const char *want) {
    char *out = NULL;
    const int rc = tokenizer_clean(in, "prompt", &out);
    T_CHECK(rc == ERR_OK && out && !strcmp(out, want), "clean(\"%s\") = \"%s\", expected \"%s\"", in, out ? out : "(error)",
            want);
    free(out);
}

static void expect_bad_utf8(const char *in, size_t offset) {
    char *out = NULL;
    char want[64];
    snprintf(want, sizeof want, "prompt: invalid UTF-8 at byte %zu", offset);
    const int rc = tokenizer_clean(in, "prompt", &out);
    T_CHECK(rc == ERR_FORMAT && !strcmp(err_message(), want), "invalid UTF-8: rc %d '%s', expected '%s'", rc,
            err_message(), want);
    free(out);
}

static void test_cleaning(void) {
    expect_clean("  a  b\t\tc\n\nd  ", "a b c d");
    expect_clean("\u3000ideographic\u00a0nbsp\u2003em\x1c sep\u3000", "ideographic nbsp em sep");
    expect_clean("&amp;amp; &lt;b&gt;", "& <b>");               /* unescaped twice */
    expect_clean("&#60;&#x3C;&#X3c;", "<<<");                  /* decimal and hex */
    expect_clean("smile &#128512; &#x1F600", "smile \U0001F600 \U0001F600"); /* ';' optional */
    expect_clean("&#150;&#128;", "\u2013\u20ac");             /* Windows-1252 remap of 0x80-0x9f */
    expect_clean("a&#0;b&#x110000;c&#xD800;d", "a\ufffdb\ufffdc\ufffdd"); /* invalid code points */
    expect_clean("a&#1;b", "ab");                                /* dropped control */
    expect_clean("fish &amp chips &copy", "fish & chips \u00a9"); /* legacy names without ';' */
    expect_clean("&hellip; &apos;x&apos; &unknown; &", "\u2026 'x' &unknown; &");
    expect_clean("&nbsp;&nbsp;x&#9;&#10;y", "x y");              /* unescaped whitespace collapses too */
    expect_clean("", "");
    expect_clean("   ", "");
    expect_clean("一只猫 🐈", "一只猫 🐈");
    expect_bad_utf8("ok \xc0\x80", 3);       /* overlong */
    expect_bad_utf8("\x80", 0);              /* lone continuation byte */
    expect_bad_utf8("ab\xe4\xb8", 2);        /* truncated sequence */
    expect_bad_utf8("x\xed\xa0\x80", 1);     /* surrogate */
    expect_bad_utf8("\xf4\x90\x80\x80", 0);  /* beyond U+10FFFF */
}

static char *make_model(const char *name, enum dtype dt) {
    struct wan_tiny_options o;
    wan_tiny_default_options(&o);
    o.seed = 7, o.dtype = dt, o.example_input = false;
    static char dirs[8][1100];
    static int next = 0;
    char *dir = dirs[next++ % 8];
    snprintf(dir, 1100, "%s/%s", tmp, name);
    T_REQUIRE(wan_tiny_write(dir, &o) == ERR_OK, "make-tiny-model: %s", err_message());
    return dir;
}

static void test_tokenizer(const char *dir, const char *dir_again) {
    struct tokenizer *t = NULL, *t2 = NULL;
    T_REQUIRE(tokenizer_open(&t, dir, 0) == ERR_OK, "open: %s", err_message());
    T_CHECK(t->text_len == 64 && t->eos_id == 1 && t->pad_id == 0, "tiny tokenizer: text_len %lld eos %lld pad %lld",
            (long long)t->text_len, (long long)t->eos_id, (long long)t->pad_id);
    int64_t ids[64], ids2[64], n = 0, n2 = 0;
    uint8_t mask[64], mask2[64];
    bool trunc = false;
    T_REQUIRE(tokenizer_encode(t, "", "prompt", ids, mask, &n, &trunc) == ERR_OK, "empty prompt: %s", err_message());
    T_CHECK(n == 1 && ids[0] == 1 && mask[0] == 1 && ids[1] == 0 && mask[1] == 0 && !trunc, "empty prompt is [EOS]");
    char long_prompt[4096] = "";
    for (int i = 0; i < 60; i++) strcat(long_prompt, "cinematic mountain river sunset ");
    T_REQUIRE(tokenizer_encode(t, long_prompt, "prompt", ids, mask, &n, &trunc) == ERR_OK, "long: %s", err_message());
    T_CHECK(trunc && n == 64 && ids[63] == 1 && mask[63] == 1, "truncation keeps EOS last (n %lld, last id %lld)",
            (long long)n, (long long)ids[63]);
    /* the tokenizer trained again from the same seed gives the same ids */
    T_REQUIRE(tokenizer_open(&t2, dir_again, 0) == ERR_OK, "open again: %s", err_message());
    const char *prompts[] = {"A slow cinematic shot of a red car driving through a rainy city at night.",
                             "一只猫在城市的街道上奔跑，电影镜头", "sunset over the ocean 🌅 waves", long_prompt};
    bool same = true;
    for (size_t i = 0; i < sizeof prompts / sizeof prompts[0]; i++) {
        T_REQUIRE(tokenizer_encode(t, prompts[i], "p", ids, mask, &n, &trunc) == ERR_OK, "%s", err_message());
        T_REQUIRE(tokenizer_encode(t2, prompts[i], "p", ids2, mask2, &n2, &trunc) == ERR_OK, "%s", err_message());
        same &= n == n2 && !memcmp(ids, ids2, sizeof ids);
    }
    T_CHECK(same, "a retrained tiny tokenizer gives other ids");
    tokenizer_close(&t2);
    tokenizer_close(&t);
    /* text_len override */
    T_REQUIRE(tokenizer_open(&t, dir, 16) == ERR_OK, "open 16: %s", err_message());
    T_CHECK(t->text_len == 16, "--text-len override");
    tokenizer_close(&t);
    T_CHECK(tokenizer_open(&t, dir, 1 << 20) == ERR_INVALID_ARG && strstr(err_message(), "--text-len"), "huge text_len");
    /* missing and corrupt tokenizers */
    char path[1200];
    snprintf(path, sizeof path, "%s/nothing", tmp);
    fs_mkdir_p(path);
    T_CHECK(tokenizer_open(&t, path, 0) == ERR_MISSING && strstr(err_message(), "no tokenizer (expected tokenizer/spiece.model"),
            "missing tokenizer: %s", err_message());
    snprintf(path, sizeof path, "%s/corrupt/tokenizer", tmp);
    fs_mkdir_p(path);
    snprintf(path, sizeof path, "%s/corrupt/tokenizer/spiece.model", tmp);
    t_write_file(path, "not a model", 11);
    snprintf(path, sizeof path, "%s/corrupt", tmp);
    T_CHECK(tokenizer_open(&t, path, 0) == ERR_FORMAT && strstr(err_message(), "not a SentencePiece model"),
            "corrupt tokenizer: %s", err_message());
}

static void test_encoder(const char *dir, const char *dir_bf16) {
    struct umt5_model *m = NULL, *mb = NULL;
    struct tokenizer *t = NULL;
    T_REQUIRE(umt5_load(&m, dir) == ERR_OK, "load: %s", err_message());
    T_REQUIRE(tokenizer_open(&t, dir, 0) == ERR_OK, "tokenizer: %s", err_message());
    T_CHECK(m->f32_in_place && m->cfg.d_model == 64 && m->cfg.vocab_size == t->vocab_size, "tiny encoder config");
    const int64_t d = m->cfg.d_model;
    int64_t ids[64], n = 0;
    uint8_t mask[64];
    bool trunc;
    T_REQUIRE(tokenizer_encode(t, "a red car in the rain", "p", ids, mask, &n, &trunc) == ERR_OK, "%s", err_message());
    struct exec_ctx ctx = exec_ctx_cpu(0);
    float *a = malloc(64 * (size_t)d * sizeof(float)), *b = malloc(64 * (size_t)d * sizeof(float));
    T_REQUIRE(umt5_encode(m, &ctx, ids, 64, n, a) == ERR_OK, "encode: %s", err_message());
    bool zero_pad = true, finite = true;
    for (int64_t i = 0; i < 64 * d; i++) {
        finite &= isfinite(a[i]);
        if (i >= n * d) zero_pad &= a[i] == 0.0f;
    }
    T_CHECK(finite && zero_pad, "padding rows must be exactly zero and the rest finite");
    /* valid rows do not depend on how much padding follows (padding keys are masked) */
    T_REQUIRE(umt5_encode(m, &ctx, ids, 40, n, b) == ERR_OK, "encode 40: %s", err_message());
    double worst = 0;
    for (int64_t i = 0; i < n * d; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    T_CHECK(worst < 1e-5, "valid rows change with the padding length (max diff %g)", worst);
    /* and they do depend on the tokens: a different last token changes the earlier rows (bidirectional) */
    ids[n - 2] = ids[n - 2] == 5 ? 6 : 5;
    T_REQUIRE(umt5_encode(m, &ctx, ids, 64, n, b) == ERR_OK, "encode changed: %s", err_message());
    double moved = 0;
    for (int64_t i = 0; i < d; i++) moved = fmax(moved, fabs(a[i] - b[i]));
    T_CHECK(moved > 1e-4, "the first row ignores a later token (bidirectional attention): %g", moved);
    /* out-of-vocabulary ids are refused */
    ids[0] = m->cfg.vocab_size;
    T_CHECK(umt5_encode(m, &ctx, ids, 64, n, b) == ERR_FORMAT && strstr(err_message(), "outside the vocabulary"),
            "out-of-vocabulary id: %s", err_message());
    /* bf16 weights go through the per-layer conversion */
    T_REQUIRE(umt5_load(&mb, dir_bf16) == ERR_OK, "load bf16: %s", err_message());
    T_CHECK(!mb->f32_in_place && mb->stored_dtype == DTYPE_BF16 && umt5_memory(mb, 64).layer_bytes > 0,
            "bf16 encoder converts per layer");
    T_REQUIRE(tokenizer_encode(t, "a red car in the rain", "p", ids, mask, &n, &trunc) == ERR_OK, "%s", err_message());
    T_REQUIRE(umt5_encode(mb, &ctx, ids, 64, n, b) == ERR_OK, "encode bf16: %s", err_message());
    double num = 0, den = 0;
    for (int64_t i = 0; i < n * d; i++) num += (a[i] - b[i]) * (a[i] - b[i]), den += a[i] * a[i];
    printf("bf16-stored tiny encoder vs f32: rel_l2 %.3g (bf16 weight rounding)\n", sqrt(num / den));
    T_CHECK(sqrt(num / den) < 0.05 && sqrt(num / den) > 1e-5, "bf16 encoder output rel_l2 %g", sqrt(num / den));
    free(a), free(b);
    umt5_free(&m), umt5_free(&mb);
    tokenizer_close(&t);
    /* a model directory without a text encoder */
    char path[1200];
    snprintf(path, sizeof path, "%s/nothing", tmp);
    T_CHECK(umt5_load(&m, path) == ERR_MISSING && strstr(err_message(), "no text encoder"), "missing encoder: %s",
            err_message());
}

int main(void) {
    tmp = t_tmpdir("text");
    test_cleaning();
    char *dir = make_model("tiny", DTYPE_F32), *again = make_model("again", DTYPE_F32);
    char *bf16 = make_model("tiny_bf16", DTYPE_BF16);
    test_tokenizer(dir, again);
    test_encoder(dir, bf16);
    t_rmtree(tmp);
    return t_summary(__FILE__);
}
