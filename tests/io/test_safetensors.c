/* tests/io/test_safetensors.c - the safetensors reader and writer (io/safetensors).
 *
 * Round trips (every dtype, a 0-d scalar, an empty tensor, metadata), byte-for-byte agreement with
 * the reference writer on the files of its own unit tests, sharded checkpoints through an index,
 * refusal to overwrite, and one hand-written malformed file per validation rule: each must fail
 * with its own error code and a message holding the distinctive words, never crash (run it under
 * valgrind to see that no byte outside a file is read). Plain C, one summary line, exit 0/1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "io/fs.h"
#include "io/json_util.h"
#include "io/safetensors.h"
#include "tests/common/test_util.h"

static const char *g_dir;

static const char *tpath(const char *name) { return t_path(g_dir, name); }
static void put_bytes(const char *path, const void *data, size_t len) { t_write_file(path, data, len); }
static void put_text(const char *path, const char *text) { put_bytes(path, text, strlen(text)); }

/* A safetensors file by hand: declared header length, header bytes, then data_len pattern bytes. */
static void put_st_raw(const char *path, uint64_t declared, const char *header, size_t header_len, size_t data_len) {
    size_t total = 8 + header_len + data_len;
    unsigned char *buf = malloc(total ? total : 1);
    T_REQUIRE(buf != NULL, "malloc");
    for (int b = 0; b < 8; b++) buf[b] = (unsigned char)(declared >> (8 * b));
    memcpy(buf + 8, header, header_len);
    for (size_t i = 0; i < data_len; i++) buf[8 + header_len + i] = (unsigned char)(i * 7 + 1);
    put_bytes(path, buf, total);
    free(buf);
}

static void put_st(const char *path, const char *header, size_t data_len) {
    put_st_raw(path, strlen(header), header, strlen(header), data_len);
}

static unsigned char *slurp(const char *path, size_t *len) {
    char *data = NULL;
    T_REQUIRE_OK(fs_read_file(path, &data, len, (size_t)1 << 30));
    return (unsigned char *)data;
}

#define EXPECT_ERR(rc, code, w1, w2)                                                                                   \
    do {                                                                                                               \
        int rc_ = (rc);                                                                                                \
        const char *w1_ = (w1), *w2_ = (w2);                                                                           \
        T_CHECK(rc_ == (code), "got %d (%s), want %d (%s); message: %s", rc_, err_code_name(rc_), (int)(code),         \
                err_code_name(code), err_message());                                                                   \
        T_CHECK(!w1_ || strstr(err_message(), w1_), "message lacks \"%s\": %s", w1_ ? w1_ : "", err_message());        \
        T_CHECK(!w2_ || strstr(err_message(), w2_), "message lacks \"%s\": %s", w2_ ? w2_ : "", err_message());        \
    } while (0)

/* Open must fail with code, and the message must name the file and hold words (and words2). */
static void expect_open_fail(const char *path, int code, const char *words, const char *words2) {
    struct st_set *s = (struct st_set *)1;
    err_clear();
    int rc = st_open(&s, path);
    EXPECT_ERR(rc, code, words, words2);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    T_CHECK(strstr(err_message(), base) != NULL, "message does not name %s: %s", base, err_message());
    T_CHECK(s == NULL, "%s: *out must be NULL on failure", base);
    if (s != (struct st_set *)1) st_close(&s);
}

static void expect_bad_header(const char *name, const char *header, size_t data_len, int code, const char *words,
                              const char *words2) {
    const char *p = tpath(name);
    put_st(p, header, data_len);
    expect_open_fail(p, code, words, words2);
}

/* ---- round trips ---- */

static void test_round_trip(void) {
    float f32[6] = {0.f, 1.f, -2.5f, 3.25f, 1e-3f, -7.f};
    uint16_t bf16[5], f16[3];
    for (int i = 0; i < 5; i++) bf16[i] = f32_to_bf16(0.5f * (float)i - 1.f);
    for (int i = 0; i < 3; i++) f16[i] = f32_to_f16(0.25f * (float)i + 0.1f);
    float scalar = 3.5f;
    int64_t ids[3] = {-1, 0, 1LL << 40};
    int32_t i32[2] = {-5, 7};
    double f64[2] = {1.0 / 3.0, -2e300};
    uint8_t u8[7] = {1, 2, 3, 4, 5, 6, 255};

    const struct st_write_item items[] = {
        {"b.weight", DTYPE_F32, 2, {2, 3}, f32},
        {"a.bias", DTYPE_BF16, 1, {5}, bf16}, /* 10 bytes: would misalign what follows if packed by name */
        {"c.half", DTYPE_F16, 2, {3, 1}, f16},
        {"d.scalar", DTYPE_F32, 0, {0}, &scalar},
        {"e.empty", DTYPE_F32, 2, {0, 4}, NULL},
        {"f.ids", DTYPE_I64, 1, {3}, ids},
        {"g.bytes", DTYPE_U8, 1, {7}, u8},
        {"h.i32", DTYPE_I32, 1, {2}, i32},
        {"i.f64", DTYPE_F64, 1, {2}, f64},
    };
    const size_t n = sizeof items / sizeof items[0];
    const char *meta[] = {"producer", "reelfarm-test", "format", "pt"};
    const char *p = tpath("round.safetensors");
    T_REQUIRE_OK(st_write(p, items, n, meta, 2, false));

    /* The file: padded header, data area at a multiple of 8, "__metadata__" first, then by dtype rank. */
    size_t flen = 0;
    unsigned char *raw = slurp(p, &flen);
    uint64_t hlen = 0;
    for (int b = 7; b >= 0; b--) hlen = (hlen << 8) | raw[b];
    T_CHECK((8 + hlen) % 8 == 0, "data area starts at %llu", (unsigned long long)(8 + hlen));
    const char *want_start =
        "{\"__metadata__\":{\"format\":\"pt\",\"producer\":\"reelfarm-test\"},\"f.ids\":{\"dtype\":\"I64\"";
    T_CHECK(hlen >= strlen(want_start) && !memcmp(raw + 8, want_start, strlen(want_start)), "header starts %.80s",
            (const char *)raw + 8);
    free(raw);

    struct st_set *s = NULL;
    T_REQUIRE_OK(st_open(&s, p));
    T_CHECK(st_count(s) == n, "count %zu", st_count(s));
    T_CHECK(st_file_count(s) == 1 && !strcmp(st_file_path(s, 0), p) && st_file_size(s, 0) == flen, "file info");
    for (size_t i = 1; i < st_count(s); i++)
        T_CHECK(strcmp(st_at(s, i - 1)->name, st_at(s, i)->name) < 0, "sorted at %zu", i);
    for (size_t i = 0; i < n; i++) {
        const struct st_write_item *w = &items[i];
        const struct st_tensor *t = st_find(s, w->name);
        T_CHECK(t != NULL, "%s not found", w->name);
        if (!t) continue;
        size_t nb = dtype_size(w->dtype);
        for (int d = 0; d < w->ndim; d++) nb *= (size_t)w->shape[d];
        T_CHECK(t->dtype == w->dtype && t->ndim == w->ndim, "%s: dtype/ndim", w->name);
        for (int d = 0; d < w->ndim; d++) T_CHECK(t->shape[d] == w->shape[d], "%s: shape[%d]", w->name, d);
        T_CHECK(t->nbytes == nb, "%s: nbytes %zu, want %zu", w->name, t->nbytes, nb);
        T_CHECK(nb == 0 || !memcmp(t->data, w->data, nb), "%s: data differs", w->name);
        T_CHECK((uintptr_t)t->data % dtype_size(t->dtype) == 0, "%s: data not aligned to its element size", w->name);
        T_CHECK(!strcmp(t->file, p), "%s: file", w->name);
        T_CHECK((const unsigned char *)t->data - (const unsigned char *)st_at(s, 0)->data ==
                    (ptrdiff_t)t->file_offset - (ptrdiff_t)st_at(s, 0)->file_offset,
                "%s: file_offset agrees with data", w->name);
    }
    const struct st_tensor *ids_t = st_find(s, "f.ids");
    T_CHECK(ids_t && ids_t->file_offset == 8 + hlen, "the I64 tensor comes first in the data area");
    const struct st_tensor *sc = st_find(s, "d.scalar");
    T_CHECK(sc && sc->ndim == 0 && sc->nbytes == 4, "0-d scalar");
    T_CHECK(st_find(s, "nope") == NULL && st_find(s, "") == NULL, "absent names");
    T_CHECK(st_metadata(s, "format") && !strcmp(st_metadata(s, "format"), "pt"), "metadata format");
    T_CHECK(st_metadata(s, "producer") && !strcmp(st_metadata(s, "producer"), "reelfarm-test"), "metadata producer");
    T_CHECK(st_metadata(s, "absent") == NULL, "metadata absent");
    const char *k = NULL, *v = NULL;
    T_CHECK(st_metadata_count(s) == 2, "metadata count");
    st_metadata_at(s, 0, &k, &v);
    T_CHECK(k && v && !strcmp(k, "format") && !strcmp(v, "pt"), "metadata_at sorted");
    st_close(&s);
    T_CHECK(s == NULL, "st_close NULLs");
    st_close(&s);

    /* A file holding only an empty tensor: zero-length data area. */
    const struct st_write_item empty_only = {"z", DTYPE_BF16, 1, {0}, NULL};
    T_REQUIRE_OK(st_write(tpath("zero.safetensors"), &empty_only, 1, NULL, 0, false));
    T_REQUIRE_OK(st_open(&s, tpath("zero.safetensors")));
    T_CHECK(st_count(s) == 1 && st_at(s, 0)->nbytes == 0 && st_metadata_count(s) == 0, "empty tensor only");
    st_close(&s);
}

/* Byte-for-byte agreement with the reference writer, on the files of its own unit tests
 * (huggingface/safetensors tensor.rs: test_serialization, ..._forced_alignement, test_empty). */
static void check_bytes(const char *name, const unsigned char *want, size_t want_len) {
    size_t len = 0;
    unsigned char *got = slurp(tpath(name), &len);
    T_CHECK(len == want_len && !memcmp(got, want, len), "%s: %zu bytes, not the reference's %zu", name, len, want_len);
    free(got);
}

static void test_reference_bytes(void) {
    float v[6] = {0.f, 1.f, 2.f, 3.f, 4.f, 5.f};
    unsigned char want[256];
    const char *h1 = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    T_CHECK(strlen(h1) == 64, "reference header is 64 bytes");
    memset(want, 0, 8);
    want[0] = 64;
    memcpy(want + 8, h1, 64);
    memcpy(want + 72, v, 24);
    const struct st_write_item a = {"attn.0", DTYPE_F32, 3, {1, 2, 3}, v};
    T_CHECK(st_write(tpath("ref1.safetensors"), &a, 1, NULL, 0, false) == 0, "%s", err_message());
    check_bytes("ref1.safetensors", want, 96);

    const char *h2 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
    memset(want, 0, 8);
    want[0] = 72;
    memcpy(want + 8, h2, 72);
    memcpy(want + 80, v, 24);
    const struct st_write_item b = {"attn0", DTYPE_F32, 4, {1, 1, 2, 3}, v};
    T_CHECK(st_write(tpath("ref2.safetensors"), &b, 1, NULL, 0, false) == 0, "%s", err_message());
    check_bytes("ref2.safetensors", want, 104);

    memset(want, 0, 8);
    want[0] = 8;
    memcpy(want + 8, "{}      ", 8);
    T_CHECK(st_write(tpath("ref3.safetensors"), NULL, 0, NULL, 0, false) == 0, "%s", err_message());
    check_bytes("ref3.safetensors", want, 16);

    const char *h4 = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    const char *kv[] = {"framework", "pt"};
    memset(want, 0, 8);
    want[0] = 40;
    memcpy(want + 8, h4, 40);
    T_CHECK(st_write(tpath("ref4.safetensors"), NULL, 0, kv, 1, false) == 0, "%s", err_message());
    check_bytes("ref4.safetensors", want, 48);

    struct st_set *s = NULL;
    T_CHECK(st_open(&s, tpath("ref3.safetensors")) == 0 && st_count(s) == 0, "empty file reads: %s", err_message());
    st_close(&s);
    T_CHECK(st_open(&s, tpath("ref4.safetensors")) == 0 && st_count(s) == 0 && st_metadata(s, "framework"),
            "metadata-only file reads: %s", err_message());
    st_close(&s);
}

static void test_overwrite_and_bad_items(void) {
    float x[2] = {1.f, 2.f}, y[3] = {3.f, 4.f, 5.f};
    const struct st_write_item one = {"x", DTYPE_F32, 1, {2}, x};
    const struct st_write_item other = {"y", DTYPE_F32, 1, {3}, y};
    const char *p = tpath("keep.safetensors");
    T_REQUIRE_OK(st_write(p, &one, 1, NULL, 0, false));
    size_t len0 = 0, len1 = 0;
    unsigned char *before = slurp(p, &len0);
    EXPECT_ERR(st_write(p, &other, 1, NULL, 0, false), ERR_EXISTS, "refusing to overwrite", "keep.safetensors");
    unsigned char *after = slurp(p, &len1);
    T_CHECK(len0 == len1 && !memcmp(before, after, len0), "refused write changed the file");
    free(before);
    free(after);
    T_CHECK(st_write(p, &other, 1, NULL, 0, true) == 0, "overwrite: %s", err_message());
    struct st_set *s = NULL;
    T_CHECK(st_open(&s, p) == 0 && st_count(s) == 1 && st_find(s, "y") != NULL, "overwritten content");
    st_close(&s);

    const struct st_write_item dup[2] = {{"x", DTYPE_F32, 1, {2}, x}, {"x", DTYPE_F32, 1, {3}, y}};
    EXPECT_ERR(st_write(tpath("dup.safetensors"), dup, 2, NULL, 0, false), ERR_INVALID_ARG,
               "duplicate tensor name \"x\"", NULL);
    const struct st_write_item reserved = {"__metadata__", DTYPE_F32, 1, {2}, x};
    EXPECT_ERR(st_write(tpath("res.safetensors"), &reserved, 1, NULL, 0, false), ERR_INVALID_ARG, "__metadata__", NULL);
    const struct st_write_item neg = {"n", DTYPE_F32, 1, {-2}, x};
    EXPECT_ERR(st_write(tpath("neg.safetensors"), &neg, 1, NULL, 0, false), ERR_INVALID_ARG, "invalid extent -2", NULL);
    const struct st_write_item nodata = {"n", DTYPE_F32, 1, {2}, NULL};
    EXPECT_ERR(st_write(tpath("nodata.safetensors"), &nodata, 1, NULL, 0, false), ERR_INVALID_ARG, "NULL data", NULL);
    const char *dupkv[] = {"a", "1", "a", "2"};
    EXPECT_ERR(st_write(tpath("dupkv.safetensors"), &one, 1, dupkv, 2, false), ERR_INVALID_ARG,
               "duplicate metadata key", NULL);
    T_CHECK(!fs_exists(tpath("dup.safetensors")) && !fs_exists(tpath("res.safetensors")) &&
                !fs_exists(tpath("neg.safetensors")) && !fs_exists(tpath("dupkv.safetensors")),
            "nothing written for bad items");
}

/* ---- several files, shards and index files ---- */

static void test_union(void) {
    float a[2] = {1, 2}, b[1] = {3}, c[4] = {4, 5, 6, 7};
    const struct st_write_item fa[2] = {{"x", DTYPE_F32, 1, {2}, a}, {"y", DTYPE_F32, 1, {1}, b}};
    const struct st_write_item fb[1] = {{"z", DTYPE_F32, 2, {2, 2}, c}};
    const char *ma[] = {"k", "from-a", "only_a", "1"};
    const char *mb[] = {"k", "from-b", "only_b", "2"};
    T_REQUIRE_OK(st_write(tpath("ua.safetensors"), fa, 2, ma, 2, false));
    T_REQUIRE_OK(st_write(tpath("ub.safetensors"), fb, 1, mb, 2, false));
    const char *paths[2] = {tpath("ua.safetensors"), tpath("ub.safetensors")};
    struct st_set *s = NULL;
    T_REQUIRE_OK(st_open_files(&s, paths, 2));
    T_CHECK(st_count(s) == 3 && st_file_count(s) == 2, "union count");
    T_CHECK(!strcmp(st_at(s, 2)->name, "z") && strstr(st_at(s, 2)->file, "ub.safetensors"), "z from ub");
    T_CHECK(st_metadata_count(s) == 3 && !strcmp(st_metadata(s, "k"), "from-a") && st_metadata(s, "only_b"),
            "merged metadata, first file wins");
    st_close(&s);

    const char *same[2] = {tpath("ua.safetensors"), tpath("ua.safetensors")};
    EXPECT_ERR(st_open_files(&s, same, 2), ERR_FORMAT, "tensor \"x\" appears in both", "ua.safetensors");
    T_CHECK(s == NULL, "no set on failure");
}

static void test_sharded(void) {
    float w[4] = {1, 2, 3, 4}, h[3] = {5, 6, 7}, e[1] = {8};
    uint16_t bb[2] = {0x3f80, 0xbf80};
    const char *s1 = "model-00001-of-00002.safetensors", *s2 = "model-00002-of-00002.safetensors";
    const struct st_write_item sh1[2] = {{"blocks.0.w", DTYPE_F32, 2, {2, 2}, w},
                                         {"blocks.0.b", DTYPE_BF16, 1, {2}, bb}};
    const struct st_write_item sh2[1] = {{"head.w", DTYPE_F32, 1, {3}, h}};
    T_REQUIRE_OK(st_write(tpath(s1), sh1, 2, NULL, 0, false));
    T_REQUIRE_OK(st_write(tpath(s2), sh2, 1, NULL, 0, false));

    const char *names[3] = {"head.w", "blocks.0.w", "blocks.0.b"};
    const char *files[3] = {s2, s1, s1};
    const char *index = tpath("model.safetensors.index.json");
    T_REQUIRE_OK(st_write_index(index, names, files, 3, false));
    EXPECT_ERR(st_write_index(index, names, files, 3, false), ERR_EXISTS, "refusing to overwrite", NULL);
    T_CHECK(st_write_index(index, names, files, 3, true) == 0, "index overwrite: %s", err_message());

    struct st_set *s = NULL;
    T_REQUIRE_OK(st_open(&s, index));
    T_CHECK(st_count(s) == 3 && st_file_count(s) == 2, "sharded counts %zu/%zu", st_count(s), st_file_count(s));
    const struct st_tensor *t = st_find(s, "head.w");
    T_CHECK(t && strstr(t->file, s2) && t->nbytes == 12 && !memcmp(t->data, h, 12), "head.w from shard 2");
    t = st_find(s, "blocks.0.b");
    T_CHECK(t && strstr(t->file, s1) && t->dtype == DTYPE_BF16 && !memcmp(t->data, bb, 4), "blocks.0.b from shard 1");
    t = st_find(s, "blocks.0.w");
    T_CHECK(t && t->ndim == 2 && t->shape[1] == 2 && !memcmp(t->data, w, 16), "blocks.0.w");
    st_close(&s);

    /* The index itself: sorted weight_map, metadata.total_size. */
    cJSON *root = NULL;
    T_REQUIRE_OK(json_read_file(index, &root));
    const cJSON *meta = NULL, *wm = NULL;
    int64_t total = 0;
    T_CHECK(json_get_object(root, "metadata", index, &meta) == 0 &&
                json_get_i64(meta, "total_size", index, &total) == 0 && total == 16 + 4 + 12,
            "total_size %lld", (long long)total);
    T_CHECK(json_get_object(root, "weight_map", index, &wm) == 0 && cJSON_GetArraySize(wm) == 3 &&
                !strcmp(wm->child->string, "blocks.0.b"),
            "weight_map sorted");
    cJSON_Delete(root);

    /* st_write_index checks the shards before writing. */
    const char *names_ghost[4] = {"head.w", "blocks.0.w", "blocks.0.b", "ghost"};
    const char *files_ghost[4] = {s2, s1, s1, s1};
    EXPECT_ERR(st_write_index(tpath("ghost.index.json"), names_ghost, files_ghost, 4, false), ERR_MISSING, "\"ghost\"",
               "has no such tensor");
    EXPECT_ERR(st_write_index(tpath("short.index.json"), names, files, 2, false), ERR_UNEXPECTED,
               "tensor \"blocks.0.b\" is not listed", NULL);
    const char *files_slash[3] = {s2, "../x.safetensors", s1};
    EXPECT_ERR(st_write_index(tpath("slash.index.json"), names, files_slash, 3, false), ERR_INVALID_ARG, "plain file name",
               NULL);
    T_CHECK(!fs_exists(tpath("ghost.index.json")) && !fs_exists(tpath("short.index.json")), "no index written");

    /* Malformed index files, written by hand. */
    const char *p = tpath("missing.index.json");
    put_text(p, "{\"weight_map\": {\"a\": \"nope.safetensors\"}}");
    expect_open_fail(p, ERR_MISSING, "names shard \"nope.safetensors\", which does not exist", NULL);

    char text[1024];
    snprintf(text, sizeof text,
             "{\"metadata\": {\"total_size\": 32}, \"weight_map\": {\"blocks.0.w\": \"%s\", \"blocks.0.b\": \"%s\", "
             "\"head.w\": \"%s\", \"ghost\": \"%s\"}}",
             s1, s1, s2, s1);
    p = tpath("absent.index.json");
    put_text(p, text);
    expect_open_fail(p, ERR_MISSING, "weight_map lists tensor \"ghost\" in shard \"model-00001-of-00002.safetensors\"",
                     "has no such tensor");

    snprintf(text, sizeof text, "{\"weight_map\": {\"blocks.0.w\": \"%s\", \"head.w\": \"%s\"}}", s1, s2);
    p = tpath("unlisted.index.json");
    put_text(p, text);
    expect_open_fail(p, ERR_UNEXPECTED, "tensor \"blocks.0.b\" is not listed in the index", s1);

    snprintf(text, sizeof text,
             "{\"weight_map\": {\"blocks.0.w\": \"%s\", \"blocks.0.b\": \"%s\", \"head.w\": \"%s\"}}", s1, s1, s1);
    p = tpath("wrongshard.index.json");
    put_text(p, text);
    expect_open_fail(p, ERR_MISSING, "\"head.w\" in shard \"model-00001-of-00002.safetensors\"", "no such tensor");

    p = tpath("slash.index.json");
    put_text(p, "{\"weight_map\": {\"a\": \"sub/a.safetensors\"}}");
    expect_open_fail(p, ERR_FORMAT, "shard name \"sub/a.safetensors\" must be a plain file name", NULL);
    p = tpath("dotdot.index.json");
    put_text(p, "{\"weight_map\": {\"a\": \"..\"}}");
    expect_open_fail(p, ERR_FORMAT, "must be a plain file name", NULL);

    /* The same tensor in two shards. */
    const struct st_write_item sh3[2] = {{"head.w", DTYPE_F32, 1, {3}, h}, {"extra.w", DTYPE_F32, 1, {1}, e}};
    T_REQUIRE_OK(st_write(tpath("model-extra.safetensors"), sh3, 2, NULL, 0, false));
    snprintf(text, sizeof text,
             "{\"weight_map\": {\"blocks.0.w\": \"%s\", \"blocks.0.b\": \"%s\", \"head.w\": \"%s\", \"extra.w\": "
             "\"model-extra.safetensors\"}}",
             s1, s1, s2);
    p = tpath("twice.index.json");
    put_text(p, text);
    expect_open_fail(p, ERR_FORMAT, "tensor \"head.w\" appears in both", "model-extra.safetensors");

    p = tpath("nomap.index.json");
    put_text(p, "{\"metadata\": {}}");
    expect_open_fail(p, ERR_MISSING, "missing key \"weight_map\"", NULL);
    p = tpath("badval.index.json");
    put_text(p, "{\"weight_map\": {\"a\": 5}}");
    expect_open_fail(p, ERR_FORMAT, "weight_map entry \"a\" must be a shard file name", NULL);
    p = tpath("extrakey.index.json");
    put_text(p, "{\"weight_map\": {}, \"shards\": 2}");
    expect_open_fail(p, ERR_UNEXPECTED, "unexpected key \"shards\"", NULL);
    p = tpath("dupkey.index.json");
    snprintf(text, sizeof text, "{\"weight_map\": {\"head.w\": \"%s\", \"head.w\": \"%s\"}}", s2, s2);
    put_text(p, text);
    expect_open_fail(p, ERR_FORMAT, "duplicate key \"head.w\"", NULL);
    p = tpath("badjson.index.json");
    put_text(p, "{\"weight_map\": {\n\"a\" \"b\"}}");
    expect_open_fail(p, ERR_FORMAT, "JSON syntax error at line 2, column 5", NULL);

    /* A shard that is itself broken: the message names the index and the shard. */
    put_st(tpath("broken-shard.safetensors"), "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4);
    p = tpath("broken.index.json");
    put_text(p, "{\"weight_map\": {\"a\": \"broken-shard.safetensors\"}}");
    expect_open_fail(p, ERR_FORMAT, "broken-shard.safetensors", "run past the end of the data area");
}

/* ---- malformed single files ---- */

#define F32_ENTRY(name, shape, b, e)                                                                                   \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void) {
    /* Truncated: the data area is shorter than the offsets say. */
    expect_bad_header("truncated.safetensors", "{" F32_ENTRY("w", "[2,3]", 0, 24) "}", 16, ERR_FORMAT,
                      "tensor \"w\": data_offsets [0, 24) run past the end of the data area (16 bytes", "truncated");

    /* Header length past the end of the file. */
    const char *hdr = "{\"a\":1}";
    put_st_raw(tpath("hdrlen.safetensors"), 1000, hdr, strlen(hdr), 3);
    expect_open_fail(tpath("hdrlen.safetensors"), ERR_FORMAT,
                     "header length 1000 runs past the end of the file (18 bytes)", NULL);
    put_st_raw(tpath("hdrhuge.safetensors"), (uint64_t)1 << 40, hdr, strlen(hdr), 0);
    expect_open_fail(tpath("hdrhuge.safetensors"), ERR_FORMAT, "header length 1099511627776 is over the 100 MiB limit",
                     NULL);
    put_st_raw(tpath("hdrmax.safetensors"), UINT64_MAX, hdr, strlen(hdr), 0);
    expect_open_fail(tpath("hdrmax.safetensors"), ERR_FORMAT, "over the 100 MiB limit", NULL);
    put_bytes(tpath("short.safetensors"), "\x05\0\0\0\0", 5);
    expect_open_fail(tpath("short.safetensors"), ERR_FORMAT, "file is 5 bytes, shorter than the 8-byte header length",
                     NULL);
    put_bytes(tpath("zerolen.safetensors"), "", 0);
    expect_open_fail(tpath("zerolen.safetensors"), ERR_FORMAT, "file is 0 bytes", NULL);
    put_st_raw(tpath("emptyhdr.safetensors"), 0, "", 0, 0);
    expect_open_fail(tpath("emptyhdr.safetensors"), ERR_FORMAT, "header: empty JSON document", NULL);

    /* Overlapping offsets. */
    expect_bad_header("overlap.safetensors", "{" F32_ENTRY("a", "[4]", 0, 16) "," F32_ENTRY("b", "[4]", 8, 24) "}", 24,
                      ERR_FORMAT, "overlapping data offsets: \"a\" [0, 16) and \"b\" [8, 24)", NULL);
    expect_bad_header("overlap-empty.safetensors", "{" F32_ENTRY("a", "[4]", 0, 16) "," F32_ENTRY("b", "[0]", 4, 4) "}",
                      16, ERR_FORMAT, "overlapping data offsets", NULL);
    /* Tiling: gaps and unused trailing bytes, as the reference reader refuses them. */
    expect_bad_header("gap.safetensors", "{" F32_ENTRY("a", "[1]", 0, 4) "," F32_ENTRY("b", "[1]", 8, 12) "}", 12,
                      ERR_FORMAT, "bytes [4, 8) of the data area belong to no tensor (gap before \"b\")", NULL);
    expect_bad_header("tail.safetensors", "{" F32_ENTRY("a", "[1]", 0, 4) "}", 8, ERR_FORMAT,
                      "4 trailing bytes after the last tensor", NULL);
    expect_bad_header("lead.safetensors", "{" F32_ENTRY("a", "[1]", 4, 8) "}", 8, ERR_FORMAT,
                      "bytes [0, 4) of the data area belong to no tensor", NULL);

    /* Bad JSON, with its position. */
    expect_bad_header("badjson.safetensors", "{\"a\":{\"dtype\":\"F32\",,\"shape\":[1]}}", 0, ERR_FORMAT,
                      "header: JSON syntax error at line 1, column 2", "near `");
    expect_bad_header("trailjunk.safetensors", "{}  x", 0, ERR_FORMAT, "unexpected content after the JSON value", NULL);
    put_st_raw(tpath("nul.safetensors"), 9, "{\"a\"\0:1} ", 9, 0);
    expect_open_fail(tpath("nul.safetensors"), ERR_FORMAT, "NUL byte", NULL);
    expect_bad_header("array.safetensors", "[1,2]", 0, ERR_FORMAT, "header is not a JSON object (found an array)",
                      NULL);
    expect_bad_header("entry.safetensors", "{\"a\":5}", 0, ERR_FORMAT,
                      "tensor \"a\": entry must be a JSON object, found a number", NULL);

    /* Wrong byte size for the shape. */
    expect_bad_header("size.safetensors", "{" F32_ENTRY("w", "[2,3]", 0, 20) "}", 20, ERR_FORMAT,
                      "tensor \"w\": shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 20) hold 20", NULL);
    expect_bad_header("overflow.safetensors", "{" F32_ENTRY("w", "[4294967296,4294967296]", 0, 0) "}", 0, ERR_FORMAT,
                      "overflows", NULL);
    expect_bad_header("overflow2.safetensors", "{" F32_ENTRY("w", "[4611686018427387904]", 0, 0) "}", 0, ERR_FORMAT,
                      "shape[0] must be a non-negative integer", NULL);
    expect_bad_header("overflow3.safetensors", "{" F32_ENTRY("w", "[4503599627370496,1024]", 0, 0) "}", 0, ERR_FORMAT,
                      "overflows a 64-bit byte count", NULL);

    /* Unsupported and unknown dtypes. */
    expect_bad_header("f8.safetensors", "{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                      ERR_UNSUPPORTED, "tensor \"q\": unsupported dtype F8_E4M3", NULL);
    expect_bad_header("bool.safetensors", "{\"m\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                      ERR_UNSUPPORTED, "tensor \"m\": unsupported dtype BOOL", NULL);
    expect_bad_header("unknown.safetensors", "{\"m\":{\"dtype\":\"Q4_0\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                      ERR_UNSUPPORTED, "tensor \"m\": unknown dtype \"Q4_0\"", NULL);
    expect_bad_header("dtypenum.safetensors", "{\"m\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                      ERR_FORMAT, "key \"dtype\" must be a string, found a number", NULL);

    /* Duplicate names (cJSON keeps both). */
    expect_bad_header("dupname.safetensors", "{" F32_ENTRY("a", "[1]", 0, 4) "," F32_ENTRY("a", "[1]", 4, 8) "}", 8,
                      ERR_FORMAT, "duplicate tensor name \"a\"", NULL);
    expect_bad_header("dupmeta.safetensors", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, ERR_FORMAT,
                      "duplicate __metadata__", NULL);
    expect_bad_header("dupkey.safetensors",
                      "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      ERR_FORMAT, "duplicate key \"dtype\" in object \"a\"", NULL);

    /* Shapes. */
    expect_bad_header("negshape.safetensors", "{" F32_ENTRY("w", "[-1]", 0, 0) "}", 0, ERR_FORMAT,
                      "tensor \"w\": shape[0] must be a non-negative integer, found -1", NULL);
    expect_bad_header("fracshape.safetensors", "{" F32_ENTRY("w", "[1.5]", 0, 0) "}", 0, ERR_FORMAT,
                      "shape[0] must be a non-negative integer, found 1.5", NULL);
    expect_bad_header("strshape.safetensors", "{" F32_ENTRY("w", "[2,\"3\"]", 0, 0) "}", 0, ERR_FORMAT,
                      "shape[1] must be a non-negative integer, found a string", NULL);
    expect_bad_header("objshape.safetensors", "{" F32_ENTRY("w", "{}", 0, 0) "}", 0, ERR_FORMAT,
                      "shape must be an array of non-negative integers, found an object", NULL);
    expect_bad_header("7d.safetensors", "{" F32_ENTRY("w", "[1,1,1,1,1,1,1]", 0, 4) "}", 4, ERR_UNSUPPORTED,
                      "shape has 7 dimensions, more than the 6 supported", NULL);

    /* Offsets. */
    expect_bad_header("revoff.safetensors", "{" F32_ENTRY("w", "[1]", 8, 4) "}", 8, ERR_FORMAT,
                      "data_offsets [8, 4] must satisfy 0 <= begin <= end", NULL);
    expect_bad_header("negoff.safetensors", "{" F32_ENTRY("w", "[1]", -4, 0) "}", 8, ERR_FORMAT, "0 <= begin <= end",
                      NULL);
    expect_bad_header("oneoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4,
                      ERR_FORMAT, "key \"data_offsets\" must be an array of 2 integers, found 1 element", NULL);
    expect_bad_header("fracoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4,
                      ERR_FORMAT, "key \"data_offsets\"[1] must be an integer, found 4.5", NULL);
    expect_bad_header("hugeoff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e30]}}", 4,
                      ERR_FORMAT, "magnitude at most 2^53", NULL);

    /* Entry keys. */
    expect_bad_header("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ERR_FORMAT,
                      "tensor \"w\": entry has no \"dtype\"", NULL);
    expect_bad_header("nulloff.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":null}}", 4,
                      ERR_FORMAT, "entry has no \"data_offsets\"", NULL);
    expect_bad_header("extrakey.safetensors",
                      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"stride\":[1]}}", 4,
                      ERR_UNEXPECTED, "tensor \"w\": unexpected key \"stride\"", NULL);

    /* File content quoted in a message never breaks it over two lines. */
    expect_bad_header("ctlname.safetensors", "{\"a\\nb\":{\"dtype\":\"Q\\n\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                      ERR_UNSUPPORTED, "tensor \"a?b\": unknown dtype \"Q?\"", NULL);
    T_CHECK(strchr(err_message(), '\n') == NULL, "one line: %s", err_message());
    expect_bad_header("rawctl.safetensors", "{\"a\tb\":{}}", 0, ERR_FORMAT, "raw control character 0x09", NULL);

    /* __metadata__. */
    expect_bad_header("metanum.safetensors", "{\"__metadata__\":{\"a\":1}}", 0, ERR_FORMAT,
                      "__metadata__ entry \"a\" must be a string, found a number", NULL);
    expect_bad_header("metaarr.safetensors", "{\"__metadata__\":[\"a\"]}", 0, ERR_FORMAT,
                      "__metadata__ must be an object of strings, found an array", NULL);

    /* Not a file at all. */
    expect_open_fail(tpath("absent.safetensors"), ERR_IO, "cannot open: No such file or directory", NULL);
    T_CHECK(fs_mkdir_p(tpath("dir.safetensors")) == 0, "mkdir");
    expect_open_fail(tpath("dir.safetensors"), ERR_IO, "not a regular file", NULL);

    /* What must still be accepted: whitespace padding, key order, a zero-length data area, an empty
     * tensor between two others, a pretty-printed multi-line header. */
    struct st_set *s = NULL;
    put_st(tpath("ok1.safetensors"), "{\"e\":{\"data_offsets\":[0,0],\"shape\":[0],\"dtype\":\"F32\"}}   \n ", 0);
    T_CHECK(st_open(&s, tpath("ok1.safetensors")) == 0 && st_count(s) == 1 && st_at(s, 0)->nbytes == 0, "ok1: %s",
            err_message());
    st_close(&s);
    put_st(tpath("ok2.safetensors"),
           "{\n  " F32_ENTRY("b", "[2]", 4, 12) ",\n  " F32_ENTRY("a", "[1]", 0, 4) ",\n  " F32_ENTRY("z", "[0]", 4,
                                                                                                      4) "\n}",
           12);
    T_CHECK(st_open(&s, tpath("ok2.safetensors")) == 0 && st_count(s) == 3, "ok2: %s", err_message());
    if (s) {
        const struct st_tensor *b = st_find(s, "b");
        T_CHECK(b && b->nbytes == 8 && b->file_offset == st_at(s, 0)->file_offset + 4, "ok2 offsets");
        unsigned char want[8];
        for (int i = 0; i < 8; i++) want[i] = (unsigned char)((4 + i) * 7 + 1);
        T_CHECK(b && !memcmp(b->data, want, 8), "ok2 data");
    }
    st_close(&s);
}

int main(void) {
    g_dir = t_tmpdir("st");
    test_round_trip();
    test_reference_bytes();
    test_overwrite_and_bad_items();
    test_union();
    test_sharded();
    test_malformed();

    /* No temp file may survive any of the above. */
    char **names = NULL;
    size_t count = 0, leftovers = 0;
    T_CHECK(fs_list_dir(g_dir, NULL, &names, &count) == 0, "%s", err_message());
    for (size_t i = 0; i < count; i++) leftovers += strstr(names[i], ".tmp-") != NULL;
    T_CHECK(leftovers == 0, "%zu temp files left behind", leftovers);
    fs_free_list(&names, &count);

    int rc = t_summary(__FILE__);
    if (rc == 0) t_rmtree(g_dir);
    return rc;
}
