/* tests/io/test_json.c - io/json_util (config.json reading) and the io/fs helpers it stands on.
 *
 * Every malformed input is written byte by byte here and must give its own error code and a
 * message with the distinctive words (file name, key, line and column). There is no separate fs
 * test binary, so the fs_ helpers (join, bounded reads, mkdir -p, listings, atomic commit) are
 * checked here too. Plain C, one summary line, exit 0/1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_util.h"
#include "tests/common/test_util.h"

static const char *g_dir;

static const char *tpath(const char *name) { return t_path(g_dir, name); }
static void put_bytes(const char *path, const void *data, size_t len) { t_write_file(path, data, len); }
static void put_text(const char *path, const char *text) { put_bytes(path, text, strlen(text)); }

/* rc must be code and the current message must contain every non-NULL word. */
#define EXPECT_ERR(rc, code, w1, w2)                                                                                   \
    do {                                                                                                               \
        int rc_ = (rc);                                                                                                \
        const char *w1_ = (w1), *w2_ = (w2);                                                                           \
        T_CHECK(rc_ == (code), "got %d (%s), want %d (%s); message: %s", rc_, err_code_name(rc_), (int)(code),         \
                err_code_name(code), err_message());                                                                   \
        T_CHECK(!w1_ || strstr(err_message(), w1_), "message lacks \"%s\": %s", w1_ ? w1_ : "", err_message());        \
        T_CHECK(!w2_ || strstr(err_message(), w2_), "message lacks \"%s\": %s", w2_ ? w2_ : "", err_message());        \
    } while (0)

/* Read a file expected to fail, checking code and words (w1 is usually the file name). */
static void expect_read_fail(const char *name, const char *text, int code, const char *w1, const char *w2) {
    const char *p = tpath(name);
    put_text(p, text);
    cJSON *root = (cJSON *)1;
    EXPECT_ERR(json_read_file(p, &root), code, w1, w2);
    T_CHECK(root == NULL, "%s: *out must be NULL on failure", name);
    cJSON_Delete(root == (cJSON *)1 ? NULL : root);
}

static void test_syntax_errors(void) {
    /* Line 3, column 8 is the ',' where a value is missing. */
    expect_read_fail("syntax.json", "{\n  \"a\": 1,\n  \"b\": ,\n  \"c\": 2\n}\n", ERR_FORMAT,
                     "syntax.json: ", "JSON syntax error at line 3, column 8");
    expect_read_fail("unterminated.json", "{\"a\": 1", ERR_FORMAT, "unterminated.json", "JSON syntax error at line 1");
    expect_read_fail("badstr.json", "{\n\"a\": tru\n}", ERR_FORMAT, "badstr.json", "line 2, column 6");
    expect_read_fail("empty.json", "", ERR_FORMAT, "empty.json", "empty JSON document");
    expect_read_fail("blank.json", " \n\t\n", ERR_FORMAT, "blank.json", "empty JSON document");
    expect_read_fail("array.json", "[1, 2]", ERR_FORMAT, "array.json", "must be a JSON object, found an array");
    expect_read_fail("trailing.json", "{} {}", ERR_FORMAT, "trailing.json",
                     "unexpected content after the JSON value at line 1, column 4");
    expect_read_fail("dup.json", "{\"a\": 1, \"b\": 2, \"a\": 3}", ERR_FORMAT, "dup.json", "duplicate key \"a\"");
    expect_read_fail("dupnested.json", "{\"x\": {\"k\": 1, \"k\": 2}}", ERR_FORMAT, "dupnested.json",
                     "duplicate key \"k\" in object \"x\"");
    expect_read_fail("dupinarray.json", "{\"x\": [{\"k\": 1, \"k\": 2}]}", ERR_FORMAT, "dupinarray.json",
                     "duplicate key \"k\"");

    const char *p = tpath("nul.json");
    put_bytes(p, "{\"a\":\0 1}", 9);
    cJSON *root = NULL;
    EXPECT_ERR(json_read_file(p, &root), ERR_FORMAT, "nul.json", "NUL byte in JSON text at line 1, column 6");

    /* Raw control characters are not JSON (cJSON would take them); escaped ones are, and any
     * message quoting them stays on one line. */
    expect_read_fail("ctl.json", "{\"a\nb\": 1}", ERR_FORMAT, "ctl.json",
                     "raw control character 0x0a in JSON text at line 1, column 4");
    expect_read_fail("ctl2.json", "{\"a\": 1,\x01\"b\": 2}", ERR_FORMAT, "raw control character 0x01", NULL);
    expect_read_fail("ctl3.json", "{\"a\\\x01\": 1}", ERR_FORMAT, "raw control character 0x01", NULL);
    p = tpath("esc.json");
    put_text(p, "{\"line1\\nline2\": 1, \"ok\": \"tab\\there\"}");
    T_CHECK(json_read_file(p, &root) == 0, "escaped control characters are valid JSON: %s", err_message());
    static const char *const only_ok[] = {"ok"};
    EXPECT_ERR(json_check_keys(root, p, only_ok, 1), ERR_UNEXPECTED, "unexpected key \"line1?line2\"", NULL);
    T_CHECK(strchr(err_message(), '\n') == NULL, "message must stay one line: %s", err_message());
    cJSON_Delete(root);
    root = NULL;

    EXPECT_ERR(json_read_file(tpath("does-not-exist.json"), &root), ERR_IO, "does-not-exist.json",
               "No such file or directory");
    EXPECT_ERR(json_read_file(g_dir, &root), ERR_IO, "is a directory", NULL);

    /* json_parse on a buffer that is not NUL-terminated: the length is respected. */
    const char buf[] = {'{', '"', 'a', '"', ':', '1', '}', 'x'};
    T_CHECK(json_parse(buf, 7, "buf", &root) == 0, "%s", err_message());
    T_CHECK(cJSON_IsObject(root), "parsed object");
    cJSON_Delete(root);
    root = NULL;
    EXPECT_ERR(json_parse(buf, 8, "buf", &root), ERR_FORMAT, "buf: unexpected content", "column 8");
}

static void test_getters(void) {
    const char *p = tpath("config.json");
    put_text(p, "{\n"
                "  \"dim\": 1536,\n"
                "  \"neg\": -7,\n"
                "  \"sci\": 1e3,\n"
                "  \"big\": 9007199254740992,\n"
                "  \"huge\": 1e300,\n"
                "  \"inf\": 1e999,\n"
                "  \"frac\": 1.5,\n"
                "  \"eps\": 1e-6,\n"
                "  \"name\": \"t2v\",\n"
                "  \"flag\": true,\n"
                "  \"nothing\": null,\n"
                "  \"patch\": [1, 2, 2],\n"
                "  \"mixed\": [1, \"x\", 3],\n"
                "  \"sub\": {\"k\": 2}\n"
                "}\n");
    cJSON *root = NULL;
    T_REQUIRE_OK(json_read_file(p, &root));

    int64_t i = 0;
    T_CHECK(json_get_i64(root, "dim", p, &i) == 0 && i == 1536, "dim = %lld", (long long)i);
    T_CHECK(json_get_i64(root, "neg", p, &i) == 0 && i == -7, "neg = %lld", (long long)i);
    T_CHECK(json_get_i64(root, "sci", p, &i) == 0 && i == 1000, "1e3 is the integer 1000");
    T_CHECK(json_get_i64(root, "big", p, &i) == 0 && i == 9007199254740992LL, "2^53 reads exactly");
    EXPECT_ERR(json_get_i64(root, "frac", p, &i), ERR_FORMAT, "config.json: key \"frac\" must be an integer, found 1.5",
               NULL);
    EXPECT_ERR(json_get_i64(root, "huge", p, &i), ERR_FORMAT,
               "key \"huge\" must be an integer of magnitude at most 2^53", "1e+300");
    EXPECT_ERR(json_get_i64(root, "name", p, &i), ERR_FORMAT,
               "config.json: key \"name\" must be an integer, found a string", NULL);
    EXPECT_ERR(json_get_i64(root, "flag", p, &i), ERR_FORMAT, "must be an integer, found a boolean", NULL);
    EXPECT_ERR(json_get_i64(root, "absent", p, &i), ERR_MISSING, "config.json: missing key \"absent\"", NULL);
    EXPECT_ERR(json_get_i64(root, "nothing", p, &i), ERR_MISSING, "missing key \"nothing\"", NULL);

    double d = 0;
    T_CHECK(json_get_f64(root, "eps", p, &d) == 0 && d == 1e-6, "eps");
    T_CHECK(json_get_f64(root, "dim", p, &d) == 0 && d == 1536.0, "an integer is a valid f64");
    EXPECT_ERR(json_get_f64(root, "name", p, &d), ERR_FORMAT, "key \"name\" must be a number, found a string", NULL);
    EXPECT_ERR(json_get_f64(root, "inf", p, &d), ERR_FORMAT, "key \"inf\" must be a finite number", NULL);

    bool b = false;
    T_CHECK(json_get_bool(root, "flag", p, &b) == 0 && b, "flag");
    EXPECT_ERR(json_get_bool(root, "dim", p, &b), ERR_FORMAT, "key \"dim\" must be true or false, found a number",
               NULL);

    const char *s = NULL;
    T_CHECK(json_get_str(root, "name", p, &s) == 0 && s && !strcmp(s, "t2v"), "name");
    EXPECT_ERR(json_get_str(root, "patch", p, &s), ERR_FORMAT, "key \"patch\" must be a string, found an array", NULL);
    EXPECT_ERR(json_get_str(root, "nothing", p, &s), ERR_MISSING, "missing key \"nothing\"", NULL);

    const cJSON *sub = NULL;
    T_CHECK(json_get_object(root, "sub", p, &sub) == 0 && json_get_i64(sub, "k", "sub", &i) == 0 && i == 2, "sub.k");
    EXPECT_ERR(json_get_object(root, "dim", p, &sub), ERR_FORMAT, "key \"dim\" must be an object", NULL);

    int64_t arr[3] = {0};
    T_CHECK(json_get_i64_array(root, "patch", p, arr, 3) == 0 && arr[0] == 1 && arr[1] == 2 && arr[2] == 2, "patch");
    EXPECT_ERR(json_get_i64_array(root, "patch", p, arr, 2), ERR_FORMAT,
               "key \"patch\" must be an array of 2 integers, found 3 elements", NULL);
    EXPECT_ERR(json_get_i64_array(root, "patch", p, arr, 4), ERR_FORMAT, "array of 4 integers, found 3 elements", NULL);
    EXPECT_ERR(json_get_i64_array(root, "mixed", p, arr, 3), ERR_FORMAT,
               "key \"mixed\"[1] must be an integer, found a string", NULL);
    EXPECT_ERR(json_get_i64_array(root, "dim", p, arr, 3), ERR_FORMAT, "must be an array of 3 integers, found a number",
               NULL);
    EXPECT_ERR(json_get_i64_array(root, "absent", p, arr, 3), ERR_MISSING, "missing key \"absent\"", NULL);

    T_CHECK(json_has(root, "dim") && !json_has(root, "nothing") && !json_has(root, "absent"), "json_has");
    T_CHECK(!json_has(NULL, "dim"), "json_has(NULL)");

    static const char *const allowed[] = {"dim", "neg",  "sci",  "big",     "huge",  "inf",   "frac",
                                          "eps", "name", "flag", "nothing", "patch", "mixed", "sub"};
    T_CHECK(json_check_keys(root, p, allowed, 14) == 0, "all keys allowed: %s", err_message());
    EXPECT_ERR(json_check_keys(root, p, allowed, 13), ERR_UNEXPECTED, "config.json: unexpected key \"sub\"", NULL);

    /* The file argument may be NULL. */
    EXPECT_ERR(json_get_i64(root, "absent", NULL, &i), ERR_MISSING, "<json>: missing key \"absent\"", NULL);
    cJSON_Delete(root);
}

static void test_fs(void) {
    char buf[64];
    T_CHECK(fs_join(buf, sizeof buf, "a/b", "c.json") == 0 && !strcmp(buf, "a/b/c.json"), "join: %s", buf);
    T_CHECK(fs_join(buf, sizeof buf, "a/b/", "c") == 0 && !strcmp(buf, "a/b/c"), "join with slash: %s", buf);
    T_CHECK(fs_join(buf, sizeof buf, "", "c") == 0 && !strcmp(buf, "c"), "join empty dir: %s", buf);
    char tiny[8];
    EXPECT_ERR(fs_join(tiny, sizeof tiny, "abcd", "efgh"), ERR_INVALID_ARG, "path too long", NULL);

    /* bounded reads */
    const char *p = tpath("ten.txt");
    put_text(p, "0123456789");
    char *data = NULL;
    size_t len = 0;
    T_CHECK(fs_read_file(p, &data, &len, 10) == 0 && len == 10 && data && data[10] == '\0' &&
                !memcmp(data, "0123456789", 10),
            "read exactly max_len");
    free(data);
    data = NULL;
    EXPECT_ERR(fs_read_file(p, &data, &len, 9), ERR_FORMAT, "ten.txt", "more than the 9-byte limit");
    T_CHECK(data == NULL, "no buffer on failure");
    EXPECT_ERR(fs_read_file(tpath("nope.txt"), &data, &len, 100), ERR_IO, "nope.txt: cannot open: No such file", NULL);
    put_text(tpath("empty.txt"), "");
    T_CHECK(fs_read_file(tpath("empty.txt"), &data, &len, 100) == 0 && len == 0 && data && data[0] == '\0',
            "empty file");
    free(data);

    /* predicates */
    T_CHECK(fs_exists(p) && fs_is_file(p) && !fs_is_dir(p), "file predicates");
    T_CHECK(fs_exists(g_dir) && fs_is_dir(g_dir) && !fs_is_file(g_dir), "dir predicates");
    T_CHECK(!fs_exists(tpath("nope.txt")) && !fs_is_file(tpath("nope.txt")), "absent");

    /* mkdir -p */
    T_CHECK(fs_mkdir_p(tpath("d1/d2//d3/")) == 0, "mkdir -p: %s", err_message());
    T_CHECK(fs_is_dir(tpath("d1/d2/d3")), "made d1/d2/d3");
    T_CHECK(fs_mkdir_p(tpath("d1/d2")) == 0, "existing dir is fine");
    EXPECT_ERR(fs_mkdir_p(tpath("ten.txt/sub")), ERR_IO, "ten.txt", "not a directory");

    /* listing: sorted, suffix-filtered, regular files only */
    T_CHECK(fs_mkdir_p(tpath("ls")) == 0, "mkdir ls");
    put_text(tpath("ls/b.json"), "{}");
    put_text(tpath("ls/a.json"), "{}");
    put_text(tpath("ls/c.txt"), "x");
    T_CHECK(fs_mkdir_p(tpath("ls/dir.json")) == 0, "mkdir ls/dir.json");
    char **names = NULL;
    size_t count = 0;
    T_CHECK(fs_list_dir(tpath("ls"), ".json", &names, &count) == 0, "%s", err_message());
    T_CHECK(count == 2 && !strcmp(names[0], "a.json") && !strcmp(names[1], "b.json"), "listing (%zu entries)", count);
    fs_free_list(&names, &count);
    T_CHECK(names == NULL && count == 0, "free_list(&names, &count) resets");
    T_CHECK(fs_list_dir(tpath("ls"), ".json", &names, &count) == 0 && count == 2, "relist");
    fs_free_list(&names, &count);
    fs_free_list(&names, &count); /* a second call is harmless */
    fs_free_list(NULL, NULL);
    T_CHECK(fs_list_dir(tpath("ls"), NULL, &names, &count) == 0 && count == 3 && !strcmp(names[2], "c.txt"),
            "listing all (%zu)", count);
    fs_free_list(&names, &count);
    EXPECT_ERR(fs_list_dir(tpath("nodir"), NULL, &names, &count), ERR_IO, "nodir: cannot list directory", NULL);

    /* atomic output */
    char tmp[4096], tmp2[4096];
    const char *final = tpath("out.bin");
    T_CHECK(fs_temp_path(tmp, sizeof tmp, final) == 0 && !strncmp(tmp, final, strlen(final)) &&
                strstr(tmp + strlen(final), ".tmp-") == tmp + strlen(final),
            "temp name %s", tmp);
    T_CHECK(fs_temp_path(tmp2, sizeof tmp2, final) == 0 && strcmp(tmp, tmp2) != 0, "temp names differ");
    put_text(tmp, "first");
    T_CHECK(fs_commit(tmp, final, false) == 0 && !fs_exists(tmp), "commit: %s", err_message());
    put_text(tmp2, "second");
    EXPECT_ERR(fs_commit(tmp2, final, false), ERR_EXISTS, "refusing to overwrite", "out.bin");
    T_CHECK(!fs_exists(tmp2), "refused temp file is removed");
    T_CHECK(fs_read_file(final, &data, &len, 100) == 0 && !strcmp(data, "first"),
            "refused commit left the old content");
    free(data);
    T_CHECK(fs_temp_path(tmp2, sizeof tmp2, final) == 0, "temp");
    put_text(tmp2, "third");
    T_CHECK(fs_commit(tmp2, final, true) == 0, "overwrite commit: %s", err_message());
    T_CHECK(fs_read_file(final, &data, &len, 100) == 0 && !strcmp(data, "third"), "overwritten");
    free(data);
    EXPECT_ERR(fs_write_file(final, "x", 1, false), ERR_EXISTS, "refusing to overwrite", NULL);
    T_CHECK(fs_write_file(tpath("new.bin"), "abc", 3, false) == 0, "write_file: %s", err_message());
    T_CHECK(fs_read_file(tpath("new.bin"), &data, &len, 100) == 0 && len == 3 && !strcmp(data, "abc"),
            "write_file content");
    free(data);
    T_CHECK(fs_list_dir(g_dir, NULL, &names, &count) == 0, "list");
    size_t leftovers = 0;
    for (size_t i = 0; i < count; i++) leftovers += strstr(names[i], ".tmp-") != NULL;
    T_CHECK(leftovers == 0, "%zu temp files left behind", leftovers);
    fs_free_list(&names, &count);
    fs_remove_quiet(NULL);
    fs_remove_quiet(tpath("nope.txt"));

    /* rm -r of a temp tree; a symlink inside it is removed, not followed. */
    T_CHECK(fs_mkdir_p(tpath("tree/a/b")) == 0, "mkdir tree");
    put_text(tpath("tree/a/b/f.txt"), "x");
    put_text(tpath("tree/top.txt"), "y");
    put_text(tpath("outside.txt"), "keep me");
    T_CHECK(symlink(tpath("outside.txt"), tpath("tree/link")) == 0, "symlink");
    T_CHECK(symlink(g_dir, tpath("tree/a/dirlink")) == 0, "dir symlink");
    fs_remove_tree_quiet(tpath("tree"));
    T_CHECK(!fs_exists(tpath("tree")), "tree removed");
    T_CHECK(fs_is_file(tpath("outside.txt")) && fs_is_dir(tpath("ls")), "symlink targets untouched");
    fs_remove_tree_quiet(NULL);
    fs_remove_tree_quiet("");
    fs_remove_tree_quiet(tpath("no-such-tree"));
}

int main(void) {
    g_dir = t_tmpdir("json");
    test_syntax_errors();
    test_getters();
    test_fs();
    int rc = t_summary(__FILE__);
    if (rc == 0) t_rmtree(g_dir);
    return rc;
}
