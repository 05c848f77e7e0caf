/* coordinator/progress.c - the render's progress bar and JSON lines (see progress.h). */
#include "coordinator/progress.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "core/timer.h"

void progress_init(struct progress *p, bool quiet, bool json, int64_t chunks, int64_t rows_total,
                   int64_t frames_total, int64_t rows_done, int64_t frames_done) {
    memset(p, 0, sizeof *p);
    p->bar = !quiet;
    p->json = json;
    p->bar_out = stderr;
    p->json_out = stdout;
    p->tty = isatty(fileno(stderr)) == 1;
    p->chunks = chunks, p->rows_total = rows_total, p->frames_total = frames_total;
    p->rows_done = rows_done, p->frames_done = frames_done;
    p->t_start = p->t_first_row = time_now();
    p->last_bar = -1e30;
}

static double s_per_row(const struct progress *p) {
    return p->rows_run > 0 ? (time_now() - p->t_first_row) / (double)p->rows_run : NAN;
}

static void fmt_duration(char *buf, size_t cap, double s) {
    if (!isfinite(s)) {
        snprintf(buf, cap, "?");
        return;
    }
    const long t = lround(s);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%lds", t);
}

struct jbuf {
    char text[12288]; /* the fields plus a detail of up to PATH_MAX escaped bytes */
    size_t len;
};

static void jb_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jb_printf(struct jbuf *b, const char *fmt, ...) {
    if (b->len >= sizeof b->text) return;
    va_list ap;
    va_start(ap, fmt);
    const int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
    va_end(ap);
    b->len = n < 0 ? sizeof b->text : b->len + (size_t)n;
}

static void json_number(struct jbuf *b, const char *key, double v) {
    if (isfinite(v))
        jb_printf(b, ",\"%s\":%.6g", key, v);
    else
        jb_printf(b, ",\"%s\":null", key);
}

static void emit_json(struct progress *p, const char *event, int64_t chunk, int64_t row, int64_t rows,
                      const char *detail) {
    if (!p->json && !p->hook) return;
    struct jbuf b = {.len = 0};
    const double spr = s_per_row(p);
    jb_printf(&b, "{\"event\":\"%s\",\"chunk\":%lld,\"chunks\":%lld", event, (long long)chunk, (long long)p->chunks);
    if (rows > 0) jb_printf(&b, ",\"row\":%lld,\"rows\":%lld", (long long)row, (long long)rows);
    jb_printf(&b, ",\"rows_done\":%lld,\"rows_total\":%lld", (long long)p->rows_done, (long long)p->rows_total);
    json_number(&b, "s_per_row", spr);
    json_number(&b, "eta_s", spr * (double)(p->rows_total - p->rows_done));
    json_number(&b, "elapsed_s", time_now() - p->t_start);
    jb_printf(&b, ",\"frames_done\":%lld,\"frames_total\":%lld", (long long)p->frames_done, (long long)p->frames_total);
    if (detail) {
        jb_printf(&b, ",\"detail\":\"");
        /* a path; a longer detail would be cut short (the object stays valid JSON) */
        for (const char *c = detail; *c && b.len < sizeof b.text - 16; c++) {
            if (*c == '"' || *c == '\\')
                jb_printf(&b, "\\%c", *c);
            else if ((unsigned char)*c < 0x20)
                jb_printf(&b, "\\u%04x", *c);
            else
                jb_printf(&b, "%c", *c);
        }
        jb_printf(&b, "\"");
    }
    jb_printf(&b, "}");
    if (b.len >= sizeof b.text) return; /* cannot happen with the fields above */
    if (p->json) {
        fputs(b.text, p->json_out);
        fputc('\n', p->json_out);
        fflush(p->json_out);
    }
    if (p->hook) p->hook(p->hook_user, event, b.text);
}

static void draw_bar(struct progress *p, int64_t chunk, int64_t row, int64_t rows, bool force) {
    if (!p->bar) return;
    const double now = time_now();
    if (!p->tty && !force && now - p->last_bar < 10.0) return;
    p->last_bar = now;
    const double spr = s_per_row(p);
    char eta[32];
    fmt_duration(eta, sizeof eta, spr * (double)(p->rows_total - p->rows_done));
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    const int64_t fill = p->rows_total > 0 ? p->rows_done * WIDTH / p->rows_total : 0;
    for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '-';
    bar[WIDTH] = '\0';
    char where[64];
    if (rows > 0)
        snprintf(where, sizeof where, "chunk %lld/%lld row %lld/%lld", (long long)(chunk + 1), (long long)p->chunks,
                 (long long)row, (long long)rows);
    else
        snprintf(where, sizeof where, "chunk %lld/%lld done", (long long)(chunk + 1), (long long)p->chunks);
    fprintf(p->bar_out, "%s[%s] %s  %.2f s/row  ETA %s  frames %lld/%lld%s", p->tty ? "\r" : "", bar, where,
            isfinite(spr) ? spr : 0.0, eta, (long long)p->frames_done, (long long)p->frames_total,
            p->tty ? "\033[K" : "\n");
    fflush(p->bar_out);
    p->bar_dirty = p->tty;
}

void progress_set_hook(struct progress *p, progress_hook_fn hook, void *user) {
    p->hook = hook;
    p->hook_user = user;
}

void progress_row(struct progress *p, int64_t chunk, int64_t row, int64_t rows) {
    p->rows_run++;
    p->rows_done++;
    draw_bar(p, chunk, row, rows, false);
    emit_json(p, "row", chunk, row, rows, NULL);
}

void progress_frames(struct progress *p, int64_t frames_done) { p->frames_done = frames_done; }

void progress_event(struct progress *p, const char *event, int64_t chunk, const char *detail) {
    if (!strcmp(event, "chunk")) draw_bar(p, chunk, 0, 0, true);
    emit_json(p, event, chunk, 0, 0, detail);
}

void progress_break(struct progress *p) {
    if (p->bar && p->bar_dirty) fputc('\n', p->bar_out);
    p->bar_dirty = false;
}
