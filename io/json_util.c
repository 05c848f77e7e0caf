/* io/json_util.c - cJSON parsing with positioned errors, duplicate-key detection and typed getters.
 *
 * The parsing itself is cJSON's (cJSON_ParseWithLengthOpts, which never reads past the given
 * length); this file only adds the checks listed in json_util.h and turns every failure into one
 * json_err_set() line. It does not know any schema.
 */
#include "io/json_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"

static const char *json_ctx(const char *file) { return file ? file : "<json>"; }

int json_err_set(enum err_code code, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return err_set(code, "%s", msg);
}

/* The first raw control character that JSON forbids: any inside a string, any but tab, CR and LF
 * outside. Returns len if there is none. A lexical scan only; cJSON does the parsing. */
static size_t json_find_control(const char *text, size_t len) {
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (in_str) {
            if (c < 0x20) return i;
            if (c == '\\') {
                i++; /* the escaped byte cannot end the string, and must not be a control byte either */
                if (i < len && (unsigned char)text[i] < 0x20) return i;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
            return i;
        }
    }
    return len;
}

static bool json_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* 1-based line and byte column of text[pos]. */
static void json_line_col(const char *text, size_t pos, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* The bytes around text[pos] on its line (up to 10 before, 16 from it), non-printables as '?'.
 * Context on both sides matters: cJSON sometimes reports one byte past the culprit. */
static void json_snippet(char *buf, size_t cap, const char *text, size_t len, size_t pos) {
    size_t k = 0;
    size_t start = pos;
    while (start > 0 && pos - start < 10 && text[start - 1] != '\n' && text[start - 1] != '\r') start--;
    for (size_t i = start; i < len && k + 1 < cap && i < pos + 16; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n' || ch == '\r') break;
        buf[k++] = (ch >= 32 && ch < 127 && ch != '`') ? (char)ch : '?';
    }
    buf[k] = '\0';
}

int json_parse(const char *text, size_t len, const char *what, cJSON **out) {
    size_t line, col;
    *out = NULL;
    what = json_ctx(what);

    size_t i = 0;
    while (i < len && json_is_space(text[i])) i++;
    if (i == len) return json_err_set(ERR_FORMAT, "%s: empty JSON document", what);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        json_line_col(text, (size_t)(nul - text), &line, &col);
        return json_err_set(ERR_FORMAT, "%s: NUL byte in JSON text at line %zu, column %zu", what, line, col);
    }
    size_t ctl = json_find_control(text, len);
    if (ctl < len) {
        json_line_col(text, ctl, &line, &col);
        return json_err_set(ERR_FORMAT, "%s: raw control character 0x%02x in JSON text at line %zu, column %zu", what,
                            (unsigned)(unsigned char)text[ctl], line, col);
    }

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* cJSON reports where it stopped: the offending byte, or the last byte at end of input. */
        size_t pos = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        char near[40];
        json_line_col(text, pos, &line, &col);
        json_snippet(near, sizeof near, text, len, pos);
        return json_err_set(ERR_FORMAT, "%s: JSON syntax error at line %zu, column %zu (near `%s`)", what, line, col,
                            near);
    }
    size_t pos = (end && end >= text && end <= text + len) ? (size_t)(end - text) : len;
    while (pos < len && json_is_space(text[pos])) pos++;
    if (pos < len) {
        cJSON_Delete(root);
        char near[40];
        json_line_col(text, pos, &line, &col);
        json_snippet(near, sizeof near, text, len, pos);
        return json_err_set(ERR_FORMAT,
                            "%s: unexpected content after the JSON value at line %zu, column %zu (near `%s`)", what,
                            line, col, near);
    }
    *out = root;
    return 0;
}

int json_read_file(const char *path, cJSON **out) {
    int ret = 0;
    char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;

    *out = NULL;
    ret = fs_read_file(path, &buf, &len, JSON_FILE_MAX);
    if (ret < 0) goto end;
    ret = json_parse(buf, len, path, &root);
    if (ret < 0) goto end;
    if (!cJSON_IsObject(root)) {
        ret = json_err_set(ERR_FORMAT, "%s: the top level must be a JSON object, found %s", path, json_type_name(root));
        goto end;
    }
    ret = json_check_unique_keys(root, path);
    if (ret < 0) goto end;
    *out = root;
    root = NULL;

end:
    cJSON_Delete(root);
    free(buf);
    return ret;
}

static int json_cmp_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Depth is bounded by cJSON's own nesting limit (CJSON_NESTING_LIMIT, 1000). */
static int json_unique_rec(const cJSON *item, const char *what) {
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item)) return 0;
    if (cJSON_IsObject(item)) {
        size_t n = 0;
        for (const cJSON *c = item->child; c; c = c->next) n++;
        if (n > 1) {
            const char **keys = malloc(n * sizeof *keys);
            if (!keys) return json_err_set(ERR_NOMEM, "%s: out of memory checking keys", what);
            size_t k = 0;
            for (const cJSON *c = item->child; c; c = c->next) keys[k++] = c->string ? c->string : "";
            qsort(keys, n, sizeof *keys, json_cmp_keys);
            const char *dup = NULL;
            for (size_t j = 1; j < n && !dup; j++)
                if (!strcmp(keys[j - 1], keys[j])) dup = keys[j];
            int ret = 0;
            if (dup) {
                if (item->string)
                    ret =
                        json_err_set(ERR_FORMAT, "%s: duplicate key \"%s\" in object \"%s\"", what, dup, item->string);
                else
                    ret = json_err_set(ERR_FORMAT, "%s: duplicate key \"%s\"", what, dup);
            }
            free(keys);
            if (ret < 0) return ret;
        }
    }
    for (const cJSON *c = item->child; c; c = c->next) {
        int ret = json_unique_rec(c, what);
        if (ret < 0) return ret;
    }
    return 0;
}

int json_check_unique_keys(const cJSON *item, const char *what) { return json_unique_rec(item, json_ctx(what)); }

const char *json_type_name(const cJSON *item) {
    if (!item) return "nothing";
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsNumber(item)) return "a number";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    return "an invalid value";
}

bool json_number_as_i64(const cJSON *item, int64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v <= JSON_INT_EXACT_MAX && v >= -JSON_INT_EXACT_MAX)) return false; /* also NaN */
    int64_t i = (int64_t)v;
    if ((double)i != v) return false;
    *out = i;
    return true;
}

/* Shortest "%.Ng" that reads back as v. */
static void json_fmt_double(char *buf, size_t cap, double v) {
    snprintf(buf, cap, "%.15g", v);
    if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
}

bool json_has(const cJSON *obj, const char *key) {
    if (!cJSON_IsObject(obj) || !key) return false;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return it && !cJSON_IsNull(it);
}

static int json_lookup(const cJSON *obj, const char *key, const char *file, const cJSON **out) {
    *out = NULL;
    if (!cJSON_IsObject(obj))
        return json_err_set(ERR_FORMAT, "%s: cannot read key \"%s\" from %s (not an object)", json_ctx(file), key,
                            json_type_name(obj));
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) return json_err_set(ERR_MISSING, "%s: missing key \"%s\"", json_ctx(file), key);
    *out = it;
    return 0;
}

/* The integer check shared by json_get_i64 and json_get_i64_array; `label` is "key \"k\"" or
 * "key \"k\"[i]". */
static int json_int_value(const cJSON *it, const char *file, const char *label, int64_t *out) {
    if (json_number_as_i64(it, out)) return 0;
    if (!cJSON_IsNumber(it))
        return json_err_set(ERR_FORMAT, "%s: %s must be an integer, found %s", json_ctx(file), label,
                            json_type_name(it));
    char num[40];
    json_fmt_double(num, sizeof num, it->valuedouble);
    double v = it->valuedouble;
    if (v > JSON_INT_EXACT_MAX || v < -JSON_INT_EXACT_MAX)
        return json_err_set(ERR_FORMAT, "%s: %s must be an integer of magnitude at most 2^53, found %s", json_ctx(file),
                            label, num);
    return json_err_set(ERR_FORMAT, "%s: %s must be an integer, found %s", json_ctx(file), label, num);
}

int json_get_i64(const cJSON *obj, const char *key, const char *file, int64_t *out) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    char label[320];
    snprintf(label, sizeof label, "key \"%s\"", key);
    return json_int_value(it, file, label, out);
}

int json_get_f64(const cJSON *obj, const char *key, const char *file, double *out) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    if (!cJSON_IsNumber(it))
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be a number, found %s", json_ctx(file), key,
                            json_type_name(it));
    double v = it->valuedouble;
    if (v - v != 0.0) /* inf or nan (a literal like 1e999 overflows to inf) */
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be a finite number", json_ctx(file), key);
    *out = v;
    return 0;
}

int json_get_bool(const cJSON *obj, const char *key, const char *file, bool *out) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    if (!cJSON_IsBool(it))
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be true or false, found %s", json_ctx(file), key,
                            json_type_name(it));
    *out = cJSON_IsTrue(it);
    return 0;
}

int json_get_str(const cJSON *obj, const char *key, const char *file, const char **out) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    if (!cJSON_IsString(it) || !it->valuestring)
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be a string, found %s", json_ctx(file), key,
                            json_type_name(it));
    *out = it->valuestring;
    return 0;
}

int json_get_object(const cJSON *obj, const char *key, const char *file, const cJSON **out) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    if (!cJSON_IsObject(it))
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be an object, found %s", json_ctx(file), key,
                            json_type_name(it));
    *out = it;
    return 0;
}

int json_get_i64_array(const cJSON *obj, const char *key, const char *file, int64_t *out, int n) {
    const cJSON *it;
    int ret = json_lookup(obj, key, file, &it);
    if (ret < 0) return ret;
    if (!cJSON_IsArray(it))
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be an array of %d integers, found %s", json_ctx(file), key,
                            n, json_type_name(it));
    int count = 0;
    for (const cJSON *c = it->child; c; c = c->next) count++;
    if (count != n)
        return json_err_set(ERR_FORMAT, "%s: key \"%s\" must be an array of %d integers, found %d element%s",
                            json_ctx(file), key, n, count, count == 1 ? "" : "s");
    int i = 0;
    for (const cJSON *c = it->child; c; c = c->next, i++) {
        char label[340];
        snprintf(label, sizeof label, "key \"%s\"[%d]", key, i);
        ret = json_int_value(c, file, label, &out[i]);
        if (ret < 0) return ret;
    }
    return 0;
}

int json_check_keys(const cJSON *obj, const char *file, const char *const *allowed, size_t n) {
    if (!cJSON_IsObject(obj))
        return json_err_set(ERR_FORMAT, "%s: expected an object, found %s", json_ctx(file), json_type_name(obj));
    for (const cJSON *c = obj->child; c; c = c->next) {
        const char *k = c->string ? c->string : "";
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++) ok = !strcmp(k, allowed[i]);
        if (!ok) return json_err_set(ERR_UNEXPECTED, "%s: unexpected key \"%s\"", json_ctx(file), k);
    }
    return 0;
}
