/* coordinator/film.c - the film-file reader (film.h): JSON -> struct render_settings.
 *
 * The file is parsed by cJSON after the byte checks JSON demands and cJSON skips (no NUL bytes, no
 * raw control characters, nothing after the top-level value). Then one pass over the top-level
 * object checks each key and value in file order and applies it to a copy of the caller's settings;
 * the cross-key rules and the shot durations (which need the merged fps) are checked after the pass.
 * Only when everything holds does the copy replace the caller's settings, so a failed load changes
 * nothing. Every error is one line: "<file>: <JSON path>: expected <what>, found <value>".
 *
 * It does not check that paths exist or that the settings fit together as a chunk plan
 * (coordinator/plan.c does). Upstream has no film files: the settings are the arguments of
 * SkyReels-V2's generate_video_df.py, the shots a reelfarm addition (spec 6).
 */
#include "coordinator/film.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_util.h"

#define FILM_JPATH_CAP 192   /* "$.shots[9999].negative_prompt" with a 64-byte key fits */
#define FILM_KEY_SHOWN 64    /* longer keys are cut in messages */
#define FILM_STR_SHOWN 48    /* longer string values are cut in messages */
#define FILM_DIM_MAX 16384   /* largest width or height of a "WxH" resolution */
#define FILM_FRAMES_MAX 1000000
#define FILM_SECONDS_MAX 100000.0

struct film_ctx {
    const char *file; /* the path as given, for messages */
    char *dir;        /* folder of the film file including its final '/'; "" when the path has none */
};

/* ---- messages ---- */

static int film_err(const struct film_ctx *c, enum err_code code, const char *jpath, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int film_err(const struct film_ctx *c, enum err_code code, const char *jpath, const char *fmt, ...) {
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* json_err_set: keys and values are file content and may hold escaped control characters. */
    return json_err_set(code, "%s: %s: %s", c->file, jpath, msg);
}

/* What a value is, for "found ...": strings quoted (cut at FILM_STR_SHOWN bytes), numbers as their
 * shortest round-tripping text, other values by their JSON type. */
static const char *film_describe(const cJSON *it, char *buf, size_t cap) {
    if (cJSON_IsString(it) && it->valuestring) {
        const char *v = it->valuestring;
        size_t n = strlen(v);
        if (n <= FILM_STR_SHOWN) {
            snprintf(buf, cap, "\"%s\"", v);
        } else {
            n = FILM_STR_SHOWN;
            while (n > 0 && ((unsigned char)v[n] & 0xc0) == 0x80) n--; /* do not cut a UTF-8 sequence */
            snprintf(buf, cap, "\"%.*s...\"", (int)n, v);
        }
    } else if (cJSON_IsNumber(it)) {
        double v = it->valuedouble;
        if (!isfinite(v)) {
            snprintf(buf, cap, "a number too large to represent");
        } else {
            snprintf(buf, cap, "%.15g", v);
            if (strtod(buf, NULL) != v) snprintf(buf, cap, "%.17g", v);
        }
    } else if (cJSON_IsBool(it)) {
        snprintf(buf, cap, "boolean");
    } else if (cJSON_IsNull(it)) {
        snprintf(buf, cap, "null");
    } else if (cJSON_IsArray(it)) {
        snprintf(buf, cap, "array");
    } else if (cJSON_IsObject(it)) {
        snprintf(buf, cap, "object");
    } else {
        snprintf(buf, cap, "an invalid value");
    }
    return buf;
}

static int film_expected(const struct film_ctx *c, enum err_code code, const char *jpath, const char *expect,
                         const cJSON *it) {
    char found[FILM_STR_SHOWN + 16];
    return film_err(c, code, jpath, "expected %s, found %s", expect, film_describe(it, found, sizeof found));
}

/* out[FILM_JPATH_CAP] = parent + "." + key (cut at FILM_KEY_SHOWN bytes). */
static void film_jpath_key(char *out, const char *parent, const char *key) {
    const int n = snprintf(out, FILM_JPATH_CAP, "%s.%.*s%s", parent, FILM_KEY_SHOWN, key,
                           strlen(key) > FILM_KEY_SHOWN ? "..." : "");
    if (n >= FILM_JPATH_CAP) memcpy(out + FILM_JPATH_CAP - 4, "...", 4); /* parents are short: not reached */
}

/* ---- parsing ---- */

/* 1-based line and byte column of text[pos]. */
static void film_line_col(const char *text, size_t pos, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* Up to 10 bytes before text[pos] and 16 from it, on its line; non-printables as '?'. cJSON may
 * stop one byte past the culprit, so both sides are shown. */
static void film_snippet(char *buf, size_t cap, const char *text, size_t len, size_t pos) {
    size_t k = 0, start = pos;
    while (start > 0 && pos - start < 10 && text[start - 1] != '\n' && text[start - 1] != '\r') start--;
    for (size_t i = start; i < len && i < pos + 16 && k + 1 < cap; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n' || ch == '\r') break;
        buf[k++] = (ch >= 32 && ch < 127 && ch != '`') ? (char)ch : '?';
    }
    buf[k] = '\0';
}

/* The first raw control character JSON forbids: any inside a string, any but tab, CR and LF outside
 * (cJSON accepts both). A lexical scan only; returns len if there is none. */
static size_t film_find_control(const char *text, size_t len) {
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (in_str) {
            if (ch < 0x20) return i;
            if (ch == '\\') {
                if (++i < len && (unsigned char)text[i] < 0x20) return i;
            } else if (ch == '"') {
                in_str = false;
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') {
            return i;
        }
    }
    return len;
}

static bool film_is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; }

static int film_parse(const struct film_ctx *c, const char *text, size_t len, cJSON **out) {
    size_t line, col, pos;
    char near[40];
    *out = NULL;

    for (pos = 0; pos < len && film_is_space(text[pos]); pos++) {}
    if (pos == len) {
        film_line_col(text, len, &line, &col);
        return json_err_set(ERR_FORMAT, "%s: line %zu, column %zu: not valid JSON (the file is empty)", c->file, line,
                            col);
    }
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        film_line_col(text, (size_t)(nul - text), &line, &col);
        return json_err_set(ERR_FORMAT, "%s: line %zu, column %zu: not valid JSON (a NUL byte)", c->file, line, col);
    }
    pos = film_find_control(text, len);
    if (pos < len) {
        film_line_col(text, pos, &line, &col);
        return json_err_set(ERR_FORMAT,
                            "%s: line %zu, column %zu: not valid JSON (raw control character 0x%02x; in a string "
                            "write it as an escape such as \\n)",
                            c->file, line, col, (unsigned)(unsigned char)text[pos]);
    }

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        /* end (cJSON_GetErrorPtr's value) is where cJSON stopped: the culprit or the last byte. */
        pos = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        film_line_col(text, pos, &line, &col);
        film_snippet(near, sizeof near, text, len, pos);
        return json_err_set(ERR_FORMAT, "%s: line %zu, column %zu: not valid JSON (near `%s`)", c->file, line, col,
                            near);
    }
    pos = (end && end >= text && end <= text + len) ? (size_t)(end - text) : len;
    while (pos < len && film_is_space(text[pos])) pos++;
    if (pos < len) {
        cJSON_Delete(root);
        film_line_col(text, pos, &line, &col);
        film_snippet(near, sizeof near, text, len, pos);
        return json_err_set(ERR_FORMAT,
                            "%s: line %zu, column %zu: not valid JSON (more content after the top-level value, near "
                            "`%s`)",
                            c->file, line, col, near);
    }
    *out = root;
    return ERR_OK;
}

/* ---- typed values: ERR_FORMAT for a wrong JSON type, ERR_INVALID_ARG for a wrong value ---- */

static int get_int(const struct film_ctx *c, const cJSON *it, const char *jp, int64_t lo, int64_t hi,
                   int64_t *out) {
    char expect[96];
    snprintf(expect, sizeof expect, "an integer from %lld to %lld", (long long)lo, (long long)hi);
    if (!cJSON_IsNumber(it)) return film_expected(c, ERR_FORMAT, jp, expect, it);
    int64_t v = 0;
    if (!json_number_as_i64(it, &v) || v < lo || v > hi) return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
    *out = v;
    return ERR_OK;
}

/* A video frame count 4k+1 (a whole number of latents: the VAE packs 4 frames per latent after the first). */
static int get_4k1(const struct film_ctx *c, const cJSON *it, const char *jp, const char *example, int64_t *out) {
    char expect[128];
    snprintf(expect, sizeof expect, "an integer of the form 4k+1 from 1 to %d (e.g. %s)", FILM_FRAMES_MAX, example);
    if (!cJSON_IsNumber(it)) return film_expected(c, ERR_FORMAT, jp, expect, it);
    int64_t v = 0;
    if (!json_number_as_i64(it, &v) || v < 1 || v > FILM_FRAMES_MAX || (v - 1) % 4 != 0)
        return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
    *out = v;
    return ERR_OK;
}

/* A finite number in [lo, hi], or (lo, hi] when lo_open. */
static int get_num(const struct film_ctx *c, const cJSON *it, const char *jp, double lo, bool lo_open, double hi,
                   const char *expect, double *out) {
    if (!cJSON_IsNumber(it)) return film_expected(c, ERR_FORMAT, jp, expect, it);
    double v = it->valuedouble;
    if (!isfinite(v) || v < lo || (lo_open && v == lo) || v > hi)
        return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
    *out = v;
    return ERR_OK;
}

static int get_seconds(const struct film_ctx *c, const cJSON *it, const char *jp, double *out) {
    if (!cJSON_IsNumber(it)) return film_expected(c, ERR_FORMAT, jp, "a positive number of seconds", it);
    double v = it->valuedouble;
    if (!(v > 0.0)) return film_expected(c, ERR_INVALID_ARG, jp, "a positive number of seconds", it);
    if (!(v <= FILM_SECONDS_MAX)) return film_expected(c, ERR_INVALID_ARG, jp, "at most 100000 seconds", it);
    *out = v;
    return ERR_OK;
}

static int get_str(const struct film_ctx *c, const cJSON *it, const char *jp, bool nonempty, const char **out) {
    const char *expect = nonempty ? "a non-empty string" : "a string";
    if (!cJSON_IsString(it) || !it->valuestring) return film_expected(c, ERR_FORMAT, jp, expect, it);
    if (nonempty && !it->valuestring[0]) return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
    *out = it->valuestring;
    return ERR_OK;
}

static int get_bool(const struct film_ctx *c, const cJSON *it, const char *jp, bool *out) {
    if (!cJSON_IsBool(it)) return film_expected(c, ERR_FORMAT, jp, "true or false", it);
    *out = cJSON_IsTrue(it);
    return ERR_OK;
}

/* One of names[0..n); expect lists them for the message. */
static int get_choice(const struct film_ctx *c, const cJSON *it, const char *jp, const char *const *names, int n,
                      const char *expect, int *out) {
    if (!cJSON_IsString(it) || !it->valuestring) return film_expected(c, ERR_FORMAT, jp, expect, it);
    for (int i = 0; i < n; i++) {
        if (!strcmp(it->valuestring, names[i])) {
            *out = i;
            return ERR_OK;
        }
    }
    return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
}

/* 1 to 5 decimal digits. */
static bool parse_dim(const char **p, int64_t *out) {
    int64_t v = 0;
    int n = 0;
    while (**p >= '0' && **p <= '9') {
        if (++n > 5) return false;
        v = v * 10 + (**p - '0');
        ++*p;
    }
    *out = v;
    return n > 0;
}

/* "540p" / "720p" (either case: upstream writes "540P") or "WxH". */
static bool parse_resolution(const char *str, int64_t *w, int64_t *h) {
    if (!strcmp(str, "540p") || !strcmp(str, "540P")) {
        *w = 960;
        *h = 544;
        return true;
    }
    if (!strcmp(str, "720p") || !strcmp(str, "720P")) {
        *w = 1280;
        *h = 720;
        return true;
    }
    const char *p = str;
    int64_t pw, ph;
    if (!parse_dim(&p, &pw) || (*p != 'x' && *p != 'X')) return false;
    p++;
    if (!parse_dim(&p, &ph) || *p) return false;
    if (pw < 16 || ph < 16 || pw > FILM_DIM_MAX || ph > FILM_DIM_MAX || pw % 16 || ph % 16) return false;
    *w = pw;
    *h = ph;
    return true;
}

/* A path from the file: relative ones are relative to the film's folder. */
static int film_resolve(const struct film_ctx *c, const char *p, char **out) {
    const size_t nd = p[0] == '/' ? 0 : strlen(c->dir), np = strlen(p);
    char *r = malloc(nd + np + 1);
    if (!r) return err_set(ERR_NOMEM, "%s: out of memory for a %zu-byte path", c->file, nd + np + 1);
    memcpy(r, c->dir, nd);
    memcpy(r + nd, p, np + 1);
    *out = r;
    return ERR_OK;
}

static int film_set_path(const struct film_ctx *c, char **dst, const char *p) {
    char *r = NULL;
    TRY(film_resolve(c, p, &r));
    free(*dst);
    *dst = r;
    return ERR_OK;
}

/* ---- shots ---- */

static void shots_free(struct render_shot *shots, int n) {
    for (int i = 0; i < n && shots; i++) {
        free(shots[i].prompt);
        free(shots[i].negative_prompt);
        free(shots[i].image);
    }
    free(shots);
}

enum { SHOT_PROMPT, SHOT_NEGATIVE_PROMPT, SHOT_SECONDS, SHOT_FRAMES, SHOT_IMAGE, SHOT_NKEYS };
static const char *const shot_keys[SHOT_NKEYS] = {"prompt", "negative_prompt", "seconds", "frames", "image"};

/* Fill *out (zeroed by the caller; freed by the caller on failure too). */
static int parse_shot(const struct film_ctx *c, const cJSON *obj, int idx, struct render_shot *out) {
    char jp[FILM_JPATH_CAP], kp[FILM_JPATH_CAP];
    snprintf(jp, sizeof jp, "$.shots[%d]", idx);
    if (!cJSON_IsObject(obj)) return film_expected(c, ERR_FORMAT, jp, "an object (a shot)", obj);

    const cJSON *given[SHOT_NKEYS] = {0};
    for (const cJSON *it = obj->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        int k = 0;
        while (k < SHOT_NKEYS && strcmp(key, shot_keys[k])) k++;
        film_jpath_key(kp, jp, key);
        if (k == SHOT_NKEYS)
            return film_err(c, ERR_FORMAT, kp,
                            "unknown key (expected one of prompt, negative_prompt, seconds, frames, image)");
        if (given[k]) return film_err(c, ERR_FORMAT, kp, "duplicate key (given twice in one object)");
        given[k] = it;

        const char *str = NULL;
        switch (k) {
        case SHOT_PROMPT:
            TRY(get_str(c, it, kp, true, &str));
            TRY(render_settings_set_str(&out->prompt, str));
            break;
        case SHOT_NEGATIVE_PROMPT:
            TRY(get_str(c, it, kp, false, &str));
            TRY(render_settings_set_str(&out->negative_prompt, str));
            break;
        case SHOT_SECONDS:
            TRY(get_seconds(c, it, kp, &out->seconds));
            break;
        case SHOT_FRAMES:
            TRY(get_int(c, it, kp, 1, FILM_FRAMES_MAX, &out->frames));
            break;
        case SHOT_IMAGE:
            TRY(get_str(c, it, kp, true, &str));
            TRY(film_set_path(c, &out->image, str));
            break;
        default:
            FATAL("unreachable shot key %d", k);
        }
    }
    if (!given[SHOT_PROMPT]) return film_err(c, ERR_MISSING, jp, "a shot needs a prompt");
    if (given[SHOT_SECONDS] && given[SHOT_FRAMES])
        return film_err(c, ERR_INVALID_ARG, jp, "give either seconds or frames, not both");
    if (!given[SHOT_SECONDS] && !given[SHOT_FRAMES])
        return film_err(c, ERR_MISSING, jp, "a shot needs a duration (seconds or frames)");
    return ERR_OK;
}

static int parse_shots(const struct film_ctx *c, const cJSON *arr, struct render_shot **out, int *n_out) {
    static const char expect[] = "a non-empty array of shots";
    *out = NULL;
    *n_out = 0;
    if (!cJSON_IsArray(arr)) return film_expected(c, ERR_FORMAT, "$.shots", expect, arr);
    int n = 0;
    for (const cJSON *it = arr->child; it && n <= FILM_SHOTS_MAX; it = it->next) n++;
    if (n == 0) return film_err(c, ERR_INVALID_ARG, "$.shots", "expected %s, found an empty array", expect);
    if (n > FILM_SHOTS_MAX)
        return film_err(c, ERR_INVALID_ARG, "$.shots", "expected at most %d shots, found more", FILM_SHOTS_MAX);

    struct render_shot *shots = calloc((size_t)n, sizeof *shots);
    if (!shots) return err_set(ERR_NOMEM, "%s: out of memory for %d shots", c->file, n);
    int i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        int ret = parse_shot(c, it, i, &shots[i]);
        if (ret < 0) {
            shots_free(shots, n);
            return ret;
        }
    }
    *out = shots;
    *n_out = n;
    return ERR_OK;
}

/* ---- the top level ---- */

/* Indexed by enum render_setting_bit: each top-level key sets the bit of the same name. */
static const char *const film_keys[RS_COUNT] = {
    [RS_MODEL] = "model",
    [RS_OUTPUT] = "output",
    [RS_RESOLUTION] = "resolution",
    [RS_FPS] = "fps",
    [RS_STEPS] = "steps",
    [RS_SHIFT] = "shift",
    [RS_GUIDANCE] = "guidance",
    [RS_SEED] = "seed",
    [RS_AR_STEP] = "ar_step",
    [RS_CAUSAL_BLOCK_SIZE] = "causal_block_size",
    [RS_CAUSAL_ATTENTION] = "causal_attention",
    [RS_ADDNOISE_CONDITION] = "addnoise_condition",
    [RS_FRAMES] = "frames",
    [RS_SECONDS] = "seconds",
    [RS_BASE_FRAMES] = "base_frames",
    [RS_OVERLAP] = "overlap",
    [RS_OVERLAP_MODE] = "overlap_mode",
    [RS_PROMPT] = "prompt",
    [RS_NEGATIVE_PROMPT] = "negative_prompt",
    [RS_IMAGE] = "image",
    [RS_END_IMAGE] = "end_image",
    [RS_EXTEND] = "extend",
    [RS_CODEC] = "codec",
    [RS_CRF] = "crf",
    [RS_PRESET] = "preset",
    [RS_SHOTS] = "shots",
};

static const char *const film_codecs[] = {"h264", "h265", "av1"};

static int film_unknown_key(const struct film_ctx *c, const char *jp) {
    char list[512];
    size_t k = 0;
    list[0] = '\0';
    for (int i = 0; i < RS_COUNT; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", film_keys[i]);
    return film_err(c, ERR_FORMAT, jp, "unknown key (expected one of %s)", list);
}

/* Check the value of top-level key `key` and, when `apply` (no flag gave it), store it into s and set
 * its bit. */
static int film_apply_key(const struct film_ctx *c, enum render_setting_bit key, const cJSON *it, bool apply,
                          struct render_settings *s) {
    char jp[FILM_JPATH_CAP];
    film_jpath_key(jp, "$", film_keys[key]);
    const char *str = NULL;
    int64_t i = 0;
    double d = 0.0;
    bool b = false;
    int choice = 0;

    switch (key) {
    case RS_MODEL:
    case RS_OUTPUT:
    case RS_IMAGE:
    case RS_END_IMAGE:
    case RS_EXTEND: {
        TRY(get_str(c, it, jp, true, &str));
        if (!apply) break;
        char **dst = key == RS_MODEL    ? &s->model
                     : key == RS_OUTPUT ? &s->output
                     : key == RS_IMAGE  ? &s->image
                     : key == RS_EXTEND ? &s->extend
                                        : &s->end_image;
        TRY(film_set_path(c, dst, str));
        break;
    }
    case RS_PROMPT:
        TRY(get_str(c, it, jp, true, &str));
        if (apply) TRY(render_settings_set_str(&s->prompt, str));
        break;
    case RS_NEGATIVE_PROMPT:
        TRY(get_str(c, it, jp, false, &str));
        if (apply) TRY(render_settings_set_str(&s->negative_prompt, str));
        break;
    case RS_PRESET:
        TRY(get_str(c, it, jp, true, &str));
        if (apply) TRY(render_settings_set_str(&s->preset, str));
        break;
    case RS_CODEC:
        TRY(get_choice(c, it, jp, film_codecs, 3, "\"h264\", \"h265\" or \"av1\"", &choice));
        if (apply) TRY(render_settings_set_str(&s->codec, film_codecs[choice]));
        break;
    case RS_OVERLAP_MODE: {
        static const char *const modes[] = {"pixel", "latent"};
        TRY(get_choice(c, it, jp, modes, 2, "\"pixel\" or \"latent\"", &choice));
        if (apply) s->overlap_mode = choice ? OVERLAP_LATENT : OVERLAP_PIXEL;
        break;
    }
    case RS_RESOLUTION: {
        static const char expect[] = "\"540p\", \"720p\" or \"WxH\" with W and H positive multiples of 16 up to 16384";
        int64_t w = 0, h = 0;
        if (!cJSON_IsString(it) || !it->valuestring) return film_expected(c, ERR_FORMAT, jp, expect, it);
        if (!parse_resolution(it->valuestring, &w, &h)) return film_expected(c, ERR_INVALID_ARG, jp, expect, it);
        if (apply) {
            s->width = w;
            s->height = h;
        }
        break;
    }
    case RS_FPS:
        TRY(get_int(c, it, jp, 1, 240, &i));
        if (apply) s->fps = (int)i;
        break;
    case RS_STEPS:
        TRY(get_int(c, it, jp, 1, 1000, &i));
        if (apply) s->steps = (int)i;
        break;
    case RS_SEED:
        TRY(get_int(c, it, jp, 0, (int64_t)1 << 53, &i));
        if (apply) s->seed = (uint64_t)i;
        break;
    case RS_AR_STEP:
        TRY(get_int(c, it, jp, 0, 1000, &i));
        if (apply) s->ar_step = (int)i;
        break;
    case RS_CAUSAL_BLOCK_SIZE:
        TRY(get_int(c, it, jp, 1, 1000, &i));
        if (apply) s->causal_block_size = (int)i;
        break;
    case RS_ADDNOISE_CONDITION:
        TRY(get_int(c, it, jp, 0, 999, &i));
        if (apply) s->addnoise_condition = (int)i;
        break;
    case RS_FRAMES:
        TRY(get_int(c, it, jp, 1, FILM_FRAMES_MAX, &i));
        if (apply) s->frames = i;
        break;
    case RS_CRF:
        TRY(get_int(c, it, jp, 0, 63, &i));
        if (apply) s->crf = (int)i;
        break;
    case RS_BASE_FRAMES:
        TRY(get_4k1(c, it, jp, "97 or 121", &i));
        if (apply) s->base_frames = i;
        break;
    case RS_OVERLAP:
        TRY(get_4k1(c, it, jp, "17", &i));
        if (apply) s->overlap = i;
        break;
    case RS_SHIFT:
        TRY(get_num(c, it, jp, 0.0, true, 1000.0, "a number greater than 0 and at most 1000", &d));
        if (apply) s->shift = d;
        break;
    case RS_GUIDANCE:
        TRY(get_num(c, it, jp, 0.0, false, 100.0, "a number from 0 to 100", &d));
        if (apply) s->guidance = d;
        break;
    case RS_SECONDS:
        TRY(get_seconds(c, it, jp, &d));
        if (apply) s->seconds = d;
        break;
    case RS_CAUSAL_ATTENTION:
        TRY(get_bool(c, it, jp, &b));
        if (apply) s->causal_attention = b;
        break;
    case RS_SHOTS: {
        struct render_shot *shots = NULL;
        int n = 0;
        TRY(parse_shots(c, it, &shots, &n));
        if (apply) {
            shots_free(s->shots, s->n_shots);
            s->shots = shots;
            s->n_shots = n;
        } else {
            shots_free(shots, n);
        }
        break;
    }
    case RS_COUNT:
    default:
        FATAL("unreachable film key %d", (int)key);
    }
    if (apply) s->set |= RS_BIT(key);
    return ERR_OK;
}

/* "<s> seconds at <fps> fps" must make at least one frame. */
static int film_check_duration(const struct film_ctx *c, const char *jp, double seconds, int fps) {
    if (seconds * fps >= 1.0) return ERR_OK;
    return film_err(c, ERR_INVALID_ARG, jp, "impossible duration: %.15g seconds at %d fps is less than one frame",
                    seconds, fps);
}

static int film_apply(const struct film_ctx *c, const cJSON *root, struct render_settings *s) {
    const cJSON *given[RS_COUNT] = {0};
    char jp[FILM_JPATH_CAP];

    for (const cJSON *it = root->child; it; it = it->next) {
        const char *key = it->string ? it->string : "";
        int k = 0;
        while (k < RS_COUNT && strcmp(key, film_keys[k])) k++;
        film_jpath_key(jp, "$", key);
        if (k == RS_COUNT) return film_unknown_key(c, jp);
        if (given[k]) return film_err(c, ERR_FORMAT, jp, "duplicate key (given twice in one object)");
        given[k] = it;
        TRY(film_apply_key(c, (enum render_setting_bit)k, it, !(s->set & RS_BIT(k)), s));
    }

    if (given[RS_PROMPT] && given[RS_SHOTS])
        return film_err(c, ERR_INVALID_ARG, "$.prompt",
                        "give either one prompt or shots with their own prompts, not both");
    if (given[RS_FRAMES] && given[RS_SHOTS])
        return film_err(c, ERR_INVALID_ARG, "$.frames", "give the length either with frames or with shots, not both");
    if (given[RS_SECONDS] && given[RS_SHOTS])
        return film_err(c, ERR_INVALID_ARG, "$.seconds",
                        "give the length either with seconds or with shots, not both");
    if (given[RS_FRAMES] && given[RS_SECONDS])
        return film_err(c, ERR_INVALID_ARG, "$.seconds",
                        "give the length either with frames or with seconds, not both");

    /* Durations at the merged fps (a flag's --fps counts, as does an "fps" after "shots"). Like every
     * value, the file's are checked even where a flag keeps them from being used; they are known to
     * be positive numbers by now. */
    if (given[RS_SECONDS]) TRY(film_check_duration(c, "$.seconds", given[RS_SECONDS]->valuedouble, s->fps));
    if (given[RS_SHOTS]) {
        int i = 0;
        for (const cJSON *shot = given[RS_SHOTS]->child; shot; shot = shot->next, i++) {
            const cJSON *sec = cJSON_GetObjectItemCaseSensitive(shot, "seconds");
            if (!sec) continue;
            snprintf(jp, sizeof jp, "$.shots[%d].seconds", i);
            TRY(film_check_duration(c, jp, sec->valuedouble, s->fps));
        }
    }
    return ERR_OK;
}

/* A deep copy of src into dst (freed on failure). */
static int settings_clone(struct render_settings *dst, const struct render_settings *src) {
    *dst = *src;
    char **const d[] = {&dst->model, &dst->output,  &dst->prompt, &dst->negative_prompt, &dst->image,
                        &dst->end_image, &dst->extend, &dst->codec,  &dst->preset};
    const char *const v[] = {src->model,     src->output, src->prompt, src->negative_prompt, src->image,
                             src->end_image, src->extend, src->codec,  src->preset};
    const size_t n = sizeof d / sizeof d[0];
    for (size_t k = 0; k < n; k++) *d[k] = NULL;
    dst->shots = NULL;
    dst->n_shots = 0;

    int ret = ERR_OK;
    for (size_t k = 0; k < n && ret == ERR_OK; k++) ret = render_settings_set_str(d[k], v[k]);
    if (ret == ERR_OK && src->n_shots > 0 && src->shots) {
        dst->shots = calloc((size_t)src->n_shots, sizeof *dst->shots);
        if (!dst->shots) {
            ret = err_set(ERR_NOMEM, "out of memory copying %d shots", src->n_shots);
        } else {
            dst->n_shots = src->n_shots;
            for (int i = 0; i < src->n_shots && ret == ERR_OK; i++) {
                const struct render_shot *a = &src->shots[i];
                struct render_shot *b = &dst->shots[i];
                b->seconds = a->seconds;
                b->frames = a->frames;
                ret = render_settings_set_str(&b->prompt, a->prompt);
                if (ret == ERR_OK) ret = render_settings_set_str(&b->negative_prompt, a->negative_prompt);
                if (ret == ERR_OK) ret = render_settings_set_str(&b->image, a->image);
            }
        }
    }
    if (ret < 0) render_settings_free(dst);
    return ret;
}

/* Parse text (named `name` in messages; relative paths resolved against base_dir) into s. */
static int film_load_from(const char *name, const char *base_dir, const char *buf, size_t len,
                          struct render_settings *s) {
    int ret = ERR_OK;
    cJSON *root = NULL;
    struct render_settings next;
    struct film_ctx c = {.file = name, .dir = NULL};
    memset(&next, 0, sizeof next);

    ret = film_parse(&c, buf, len, &root);
    if (ret < 0) goto end;
    if (!cJSON_IsObject(root)) {
        ret = film_expected(&c, ERR_FORMAT, "$", "an object", root);
        goto end;
    }
    c.dir = strdup(base_dir);
    if (!c.dir) {
        ret = err_set(ERR_NOMEM, "%s: out of memory", name);
        goto end;
    }
    ret = settings_clone(&next, s);
    if (ret < 0) goto end;
    ret = film_apply(&c, root, &next);
    if (ret < 0) goto end;
    render_settings_free(s);
    *s = next;
    memset(&next, 0, sizeof next);

end:
    render_settings_free(&next);
    cJSON_Delete(root);
    free(c.dir);
    return ret;
}

int film_load(const char *path, struct render_settings *s) {
    CHECK(path && s, "film_load needs a path and settings");
    char *buf = NULL;
    size_t len = 0;
    int ret = fs_read_file(path, &buf, &len, FILM_FILE_MAX);
    if (ret < 0) return ret;
    const char *slash = strrchr(path, '/');
    const size_t nd = slash ? (size_t)(slash - path) + 1 : 0;
    char *dir = malloc(nd + 1);
    if (!dir) {
        free(buf);
        return err_set(ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(dir, path, nd);
    dir[nd] = '\0';
    ret = film_load_from(path, dir, buf, len, s);
    free(dir);
    free(buf);
    return ret;
}

int film_load_text(const char *name, const char *text, struct render_settings *s) {
    CHECK(name && text && s, "film_load_text needs a name, text and settings");
    return film_load_from(name, "", text, strlen(text), s);
}

/* ---- canonical JSON ---- */

static bool add_str(cJSON *o, const char *key, const char *v) { return !v || cJSON_AddStringToObject(o, key, v); }

int film_to_json(const struct render_settings *s, char **out) {
    *out = NULL;
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL;
    char res[48];
    snprintf(res, sizeof res, "%lldx%lld", (long long)s->width, (long long)s->height);
    ok = ok && add_str(o, film_keys[RS_MODEL], s->model) && add_str(o, film_keys[RS_OUTPUT], s->output) &&
         add_str(o, film_keys[RS_RESOLUTION], res) && cJSON_AddNumberToObject(o, film_keys[RS_FPS], s->fps) &&
         cJSON_AddNumberToObject(o, film_keys[RS_STEPS], s->steps) &&
         cJSON_AddNumberToObject(o, film_keys[RS_SHIFT], s->shift) &&
         cJSON_AddNumberToObject(o, film_keys[RS_GUIDANCE], s->guidance) &&
         cJSON_AddNumberToObject(o, film_keys[RS_SEED], (double)s->seed) &&
         cJSON_AddNumberToObject(o, film_keys[RS_AR_STEP], s->ar_step) &&
         cJSON_AddNumberToObject(o, film_keys[RS_CAUSAL_BLOCK_SIZE], s->causal_block_size) &&
         cJSON_AddBoolToObject(o, film_keys[RS_CAUSAL_ATTENTION], s->causal_attention) &&
         cJSON_AddNumberToObject(o, film_keys[RS_ADDNOISE_CONDITION], s->addnoise_condition);
    if (ok && s->frames) ok = cJSON_AddNumberToObject(o, film_keys[RS_FRAMES], (double)s->frames);
    if (ok && !s->frames && s->seconds > 0) ok = cJSON_AddNumberToObject(o, film_keys[RS_SECONDS], s->seconds);
    if (ok && s->base_frames) ok = cJSON_AddNumberToObject(o, film_keys[RS_BASE_FRAMES], (double)s->base_frames);
    if (ok && s->overlap) ok = cJSON_AddNumberToObject(o, film_keys[RS_OVERLAP], (double)s->overlap);
    ok = ok && add_str(o, film_keys[RS_OVERLAP_MODE], s->overlap_mode == OVERLAP_LATENT ? "latent" : "pixel") &&
         add_str(o, film_keys[RS_PROMPT], s->prompt) && add_str(o, film_keys[RS_NEGATIVE_PROMPT], s->negative_prompt) &&
         add_str(o, film_keys[RS_IMAGE], s->image) && add_str(o, film_keys[RS_END_IMAGE], s->end_image) &&
         add_str(o, film_keys[RS_EXTEND], s->extend) && add_str(o, film_keys[RS_CODEC], s->codec);
    if (ok && s->crf >= 0) ok = cJSON_AddNumberToObject(o, film_keys[RS_CRF], s->crf);
    ok = ok && add_str(o, film_keys[RS_PRESET], s->preset);
    if (ok && s->n_shots > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, film_keys[RS_SHOTS]);
        ok = arr != NULL;
        for (int i = 0; ok && i < s->n_shots; i++) {
            const struct render_shot *sh = &s->shots[i];
            cJSON *j = cJSON_CreateObject();
            ok = j && cJSON_AddItemToArray(arr, j);
            ok = ok && add_str(j, "prompt", sh->prompt) && add_str(j, "negative_prompt", sh->negative_prompt);
            if (ok && sh->frames > 0) ok = cJSON_AddNumberToObject(j, "frames", (double)sh->frames);
            if (ok && !(sh->frames > 0)) ok = cJSON_AddNumberToObject(j, "seconds", sh->seconds);
            ok = ok && add_str(j, "image", sh->image);
        }
    }
    if (ok) *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return *out ? ERR_OK : err_set(ERR_NOMEM, "out of memory writing the settings as JSON");
}

int64_t film_shot_frames(const struct render_shot *shot, int fps) {
    if (shot->frames > 0) return shot->frames;
    return (int64_t)llround(shot->seconds * fps);
}
