/* io/tokenizer.c - prompt cleaning (spec 8.2) and umT5 tokenization around io/spm_shim. */
#include "io/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "io/fs.h"
#include "io/json_util.h"
#include "io/spm_shim.h"

enum { TEXT_LEN_DEFAULT = 512, TEXT_LEN_MAX = 1 << 16 };

/* ---- UTF-8 ---- */

/* Decode one code point at s[*i]; advances *i. -1 if the bytes are not valid UTF-8. */
static int32_t utf8_next(const unsigned char *s, size_t len, size_t *i) {
    const unsigned char c = s[*i];
    int n;
    int32_t cp;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xe0) == 0xc0) {
        n = 1, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        n = 2, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        n = 3, cp = c & 0x07;
    } else {
        return -1;
    }
    if (*i + (size_t)n >= len) return -1; /* truncated sequence */
    for (int k = 1; k <= n; k++) {
        const unsigned char cc = s[*i + (size_t)k];
        if ((cc & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (cc & 0x3f);
    }
    static const int32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1; /* overlong, range, surrogate */
    *i += (size_t)n + 1;
    return cp;
}

/* Append a code point as UTF-8. */
static size_t utf8_put(char *out, int32_t cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12)), out[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18)), out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Python's str.isspace(): what re's \s and str.strip() treat as whitespace. */
static bool is_space(int32_t cp) {
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

/* ---- HTML unescaping (Python's html.unescape) ---- */

struct named_entity {
    const char *name;
    int32_t cp;
    bool legacy; /* also recognised without the ';' (HTML5 legacy entities) */
};

/* The named entities reelfarm unescapes: the legacy set plus the common typographic ones. Others stay text. */
static const struct named_entity entities[] = {
    {"amp", '&', true},     {"lt", '<', true},       {"gt", '>', true},        {"quot", '"', true},
    {"apos", '\'', false},  {"nbsp", 0xa0, true},    {"copy", 0xa9, true},     {"reg", 0xae, true},
    {"trade", 0x2122, false}, {"hellip", 0x2026, false}, {"mdash", 0x2014, false}, {"ndash", 0x2013, false},
    {"lsquo", 0x2018, false}, {"rsquo", 0x2019, false}, {"ldquo", 0x201c, false}, {"rdquo", 0x201d, false},
    {"bull", 0x2022, false}, {"middot", 0xb7, true},  {"deg", 0xb0, true},      {"plusmn", 0xb1, true},
    {"times", 0xd7, true},   {"divide", 0xf7, true},  {"euro", 0x20ac, false},  {"pound", 0xa3, true},
    {"yen", 0xa5, true},     {"cent", 0xa2, true},    {"sect", 0xa7, true},     {"para", 0xb6, true},
    {"laquo", 0xab, true},   {"raquo", 0xbb, true},   {"iexcl", 0xa1, true},    {"iquest", 0xbf, true},
    {"shy", 0xad, true},     {"micro", 0xb5, true},   {"frac12", 0xbd, true},   {"frac14", 0xbc, true},
    {"frac34", 0xbe, true},  {"sup2", 0xb2, true},    {"sup3", 0xb3, true},     {"ordm", 0xba, true},
};

/* Windows-1252 for numeric references 0x80-0x9f (html.unescape's _invalid_charrefs); 0 = unmapped. */
static const int32_t cp1252[32] = {0x20ac, 0x81,   0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
                                   0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d,   0x017d, 0x8f,
                                   0x90,   0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
                                   0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d,   0x017e, 0x0178};

/* Code points html.unescape drops (its _invalid_codepoints). */
static bool dropped_codepoint(int32_t cp) {
    return (cp >= 0x1 && cp <= 0x8) || cp == 0xb || (cp >= 0xe && cp <= 0x1f) || (cp >= 0x7f && cp <= 0x9f) ||
           (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) == 0xfffe;
}

/* Try to read a character reference at s[i] ('&'); on success store the code point (-1: dropped) and
 * the length consumed. */
static bool char_ref(const char *s, size_t len, size_t i, int32_t *cp, size_t *used) {
    size_t j = i + 1;
    if (j < len && s[j] == '#') { /* numeric: &#123; &#x7B; (';' optional, as Python) */
        j++;
        const bool hex = j < len && (s[j] == 'x' || s[j] == 'X');
        if (hex) j++;
        const size_t start = j;
        long long v = 0;
        while (j < len && j - start < 8) {
            const char c = s[j];
            int d = -1;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
            if (d < 0) break;
            v = v * (hex ? 16 : 10) + d;
            j++;
        }
        if (j == start) return false;
        while (j < len && ((s[j] >= '0' && s[j] <= '9') || (hex && ((s[j] | 32) >= 'a' && (s[j] | 32) <= 'f')))) {
            v = 0x110000; /* too many digits: out of range */
            j++;
        }
        if (j < len && s[j] == ';') j++;
        if (v >= 0x80 && v <= 0x9f && cp1252[v - 0x80] && cp1252[v - 0x80] != v)
            *cp = cp1252[v - 0x80];
        else if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
            *cp = 0xfffd;
        else if (dropped_codepoint((int32_t)v))
            *cp = -1;
        else
            *cp = (int32_t)v;
        *used = j - i;
        return true;
    }
    for (size_t e = 0; e < sizeof entities / sizeof entities[0]; e++) {
        const size_t nl = strlen(entities[e].name);
        if (j + nl > len || memcmp(s + j, entities[e].name, nl) != 0) continue;
        if (j + nl < len && s[j + nl] == ';') {
            *cp = entities[e].cp, *used = nl + 2;
            return true;
        }
        if (entities[e].legacy) {
            *cp = entities[e].cp, *used = nl + 1;
            return true;
        }
    }
    return false;
}

static char *html_unescape(const char *s) {
    const size_t len = strlen(s);
    char *out = malloc(len + 1); /* a reference is never shorter than its UTF-8 (at most 4 bytes, >= 4 chars) */
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int32_t cp;
        size_t used;
        if (s[i] == '&' && char_ref(s, len, i, &cp, &used)) {
            if (cp >= 0) o += utf8_put(out + o, cp);
            i += used;
        } else {
            out[o++] = s[i++];
        }
    }
    out[o] = '\0';
    return out;
}

int tokenizer_clean(const char *text, const char *what, char **out) {
    *out = NULL;
    const size_t len = strlen(text);
    for (size_t i = 0; i < len;) /* validate first: every later step may assume UTF-8 */
        if (utf8_next((const unsigned char *)text, len, &i) < 0)
            return err_set(ERR_FORMAT, "%s: invalid UTF-8 at byte %zu", what, i);
    char *a = html_unescape(text), *b = a ? html_unescape(a) : NULL;
    free(a);
    if (!b) return err_set(ERR_NOMEM, "out of memory");
    /* collapse whitespace runs to one space, strip both ends */
    const size_t bl = strlen(b);
    char *c = malloc(bl + 1);
    if (!c) {
        free(b);
        return err_set(ERR_NOMEM, "out of memory");
    }
    size_t o = 0;
    bool pending_space = false;
    for (size_t i = 0; i < bl;) {
        const size_t start = i;
        const int32_t cp = utf8_next((const unsigned char *)b, bl, &i);
        if (cp < 0) { /* cannot happen after validation and re-encoding; keep the byte */
            c[o++] = b[i++];
            continue;
        }
        if (is_space(cp)) {
            pending_space = o > 0;
            continue;
        }
        if (pending_space) c[o++] = ' ';
        pending_space = false;
        memcpy(c + o, b + start, i - start);
        o += i - start;
    }
    c[o] = '\0';
    free(b);
    *out = c;
    return ERR_OK;
}

/* ---- the tokenizer ---- */

static int find_spiece(const char *dir, char *path, size_t cap) {
    static const char *const candidates[] = {"tokenizer/spiece.model", "google/umt5-xxl/spiece.model"};
    for (size_t i = 0; i < 2; i++) {
        TRY(fs_join(path, cap, dir, candidates[i]));
        if (fs_is_file(path)) return ERR_OK;
    }
    return err_set(ERR_MISSING, "%s: no tokenizer (expected tokenizer/spiece.model or google/umt5-xxl/spiece.model)", dir);
}

/* model_max_length of tokenizer_config.json when it is a real bound, else 512 (the real umT5 config
 * says 1e30, "no bound"). */
static int config_text_len(const char *spiece_path, int64_t *text_len) {
    *text_len = TEXT_LEN_DEFAULT;
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s", spiece_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    TRY(fs_join(path, sizeof path, dir, "tokenizer_config.json"));
    if (!fs_is_file(path)) return ERR_OK;
    cJSON *root = NULL;
    TRY(json_read_file(path, &root));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
    int rc = ERR_OK;
    if (m && !cJSON_IsNull(m)) {
        if (!cJSON_IsNumber(m))
            rc = err_set(ERR_FORMAT, "%s: key \"model_max_length\" must be a number", path);
        else if (m->valuedouble >= 1 && m->valuedouble <= TEXT_LEN_MAX)
            *text_len = (int64_t)m->valuedouble;
    }
    cJSON_Delete(root);
    return rc;
}

int tokenizer_open(struct tokenizer **out, const char *model_dir, int64_t text_len_override) {
    *out = NULL;
    struct tokenizer *t = calloc(1, sizeof *t);
    if (!t) return err_set(ERR_NOMEM, "out of memory");
    int rc = find_spiece(model_dir, t->model_path, sizeof t->model_path);
    if (rc == ERR_OK) rc = config_text_len(t->model_path, &t->text_len);
    if (rc == ERR_OK) rc = spm_load(&t->spm, t->model_path);
    if (rc == ERR_OK) {
        t->vocab_size = spm_piece_count(t->spm);
        t->eos_id = spm_eos_id(t->spm);
        t->pad_id = spm_pad_id(t->spm);
        if (t->eos_id < 0 || t->pad_id < 0)
            rc = err_set(ERR_FORMAT, "%s: the SentencePiece model defines no %s id (umT5 uses pad 0, eos 1)",
                         t->model_path, t->eos_id < 0 ? "eos" : "pad");
    }
    if (rc == ERR_OK && text_len_override) {
        if (text_len_override < 1 || text_len_override > TEXT_LEN_MAX)
            rc = err_set(ERR_INVALID_ARG, "--text-len %lld: expected 1 to %d", (long long)text_len_override, TEXT_LEN_MAX);
        t->text_len = text_len_override;
    }
    if (rc < 0) {
        tokenizer_close(&t);
        return rc;
    }
    *out = t;
    return ERR_OK;
}

void tokenizer_close(struct tokenizer **t) {
    if (!t || !*t) return;
    spm_free(&(*t)->spm);
    free(*t);
    *t = NULL;
}

int tokenizer_encode(const struct tokenizer *t, const char *prompt, const char *what, int64_t *ids, uint8_t *mask,
                     int64_t *n_tokens, bool *truncated) {
    char *clean = NULL;
    TRY(tokenizer_clean(prompt, what, &clean));
    int64_t *pieces = NULL;
    size_t n = 0;
    int rc = spm_encode(t->spm, clean, &pieces, &n);
    free(clean);
    if (rc < 0) return err_wrap("%s: ", what);
    const int64_t keep = (int64_t)n < t->text_len - 1 ? (int64_t)n : t->text_len - 1; /* room for EOS */
    *truncated = (int64_t)n > keep;
    for (int64_t i = 0; i < t->text_len; i++) {
        ids[i] = i < keep ? pieces[i] : (i == keep ? t->eos_id : t->pad_id);
        mask[i] = i <= keep;
    }
    *n_tokens = keep + 1;
    free(pieces);
    return ERR_OK;
}
