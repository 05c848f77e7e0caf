/* io/json_util.h - JSON files (config.json, *.safetensors.index.json, safetensors headers) read
 * through cJSON, with typed getters whose errors name the file and the key.
 *
 * What it checks that cJSON alone does not: the whole buffer is one JSON value (only whitespace
 * after it), no NUL bytes, no duplicate keys in any object (cJSON keeps both and finds the first,
 * Python's json keeps the last: a config with a duplicate key would silently disagree with the
 * PyTorch reference), integers are exact, and a syntax error is reported with its line and
 * column. It never parses JSON by hand and it does not know any schema: the strict config readers
 * (model/wan_config.c and friends) say which keys exist with json_check_keys().
 *
 * Integers: JSON numbers are doubles in cJSON, so json_get_i64 accepts only numbers whose value is
 * an exact integer of magnitude <= 2^53 (beyond that a double cannot tell 2^53 from 2^53 + 1, and
 * a silently rounded value is worse than an error).
 *
 * Errors: missing key or JSON null -> ERR_MISSING "<file>: missing key \"<key>\""; wrong type ->
 * ERR_FORMAT "<file>: key \"<key>\" must be an integer, found a string"; unreadable file ERR_IO.
 * `file` may be any context string ("cfg.json", "m.safetensors: tensor \"w\""); NULL reads "<json>".
 */
#ifndef REELFARM_IO_JSON_UTIL_H
#define REELFARM_IO_JSON_UTIL_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define JSON_FILE_MAX ((size_t)64 << 20)      /* json_read_file refuses larger files */
#define JSON_INT_EXACT_MAX 9007199254740992.0 /* 2^53: largest magnitude read as an integer */

/* Parse len bytes of text (need not be NUL-terminated) as exactly one JSON value with nothing but
 * whitespace after it. `what` names the source in messages ("<what>: JSON syntax error at line 3,
 * column 8 (near `, }`)"; the column is cJSON's and can be one byte past the culprit, so the
 * snippet shows both sides). Empty input, NUL bytes, raw control characters (inside strings, or
 * other than tab/CR/LF outside them: cJSON accepts both, the JSON spec does not) and trailing
 * content are ERR_FORMAT. Does not check the top-level type or duplicate keys. Free *out with
 * cJSON_Delete. */
int json_parse(const char *text, size_t len, const char *what, cJSON **out);

/* Read (at most JSON_FILE_MAX bytes) and parse a file whose top level must be an object, with no
 * duplicate keys anywhere. Free *out with cJSON_Delete. */
int json_read_file(const char *path, cJSON **out);

/* ERR_FORMAT "<what>: duplicate key \"k\" [in object \"parent\"]" for the first object (depth
 * first) that holds a key twice. */
int json_check_unique_keys(const cJSON *item, const char *what);

/* err_set() for messages that quote file content: every control character of the formatted
 * message becomes '?', so it stays one line whatever the file holds (JSON escapes such as "\n"
 * are valid in keys and strings). */
int json_err_set(enum err_code code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "a string", "a number", "an array", "an object", "a boolean", "null". */
const char *json_type_name(const cJSON *item);

/* True if item is a number with an exact integer value of magnitude <= 2^53. */
bool json_number_as_i64(const cJSON *item, int64_t *out);

/* Present and not JSON null. */
bool json_has(const cJSON *obj, const char *key);

int json_get_i64(const cJSON *obj, const char *key, const char *file, int64_t *out);
/* Any finite number. */
int json_get_f64(const cJSON *obj, const char *key, const char *file, double *out);
int json_get_bool(const cJSON *obj, const char *key, const char *file, bool *out);
/* *out points into the cJSON tree: valid until it is deleted. */
int json_get_str(const cJSON *obj, const char *key, const char *file, const char **out);
/* A nested object (pointer into the tree). */
int json_get_object(const cJSON *obj, const char *key, const char *file, const cJSON **out);
/* An array of exactly n integers (each as json_get_i64 reads one). */
int json_get_i64_array(const cJSON *obj, const char *key, const char *file, int64_t *out, int n);

/* ERR_UNEXPECTED "<file>: unexpected key \"k\"" for the first key of obj not in allowed[0..n). */
int json_check_keys(const cJSON *obj, const char *file, const char *const *allowed, size_t n);

#endif /* REELFARM_IO_JSON_UTIL_H */
