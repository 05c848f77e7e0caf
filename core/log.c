/* core/log.c - levelled logging with a replaceable sink. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "core/process.h"

static enum log_level log_level_v = LOG_LEVEL_INFO;
static log_sink_fn log_sink_v = NULL;
static void *log_sink_user = NULL;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_set_level(enum log_level level) { log_level_v = level; }
enum log_level log_get_level(void) { return log_level_v; }

void log_set_sink(log_sink_fn fn, void *user) {
    log_sink_v = fn;
    log_sink_user = user;
}

void log_init_from_env(void) {
    const char *s = getenv("REELFARM_LOG_LEVEL");
    if (!s || !*s) return;
    for (int i = 0; i <= LOG_LEVEL_DEBUG; i++) {
        if (strcasecmp(s, level_names[i]) == 0 || (i == LOG_LEVEL_WARN && strcasecmp(s, "warning") == 0)) {
            log_level_v = (enum log_level)i;
            return;
        }
    }
    LOG_WARN("REELFARM_LOG_LEVEL=%s is not one of error, warn, info, debug; keeping %s", s,
             level_names[log_level_v]);
}

static void log_vprintf(enum log_level level, const char *file, int line, const char *fmt, va_list ap) {
    if (level > log_level_v) return;
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char who[160];
    proc_describe(who, sizeof who);

    char out[4608];
    if (level == LOG_LEVEL_DEBUG) {
        const char *base = strrchr(file, '/');
        snprintf(out, sizeof out, "[%02d:%02d:%02d.%03d][%s][%s] %s:%d: %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), who, level_names[level], base ? base + 1 : file, line, msg);
    } else {
        snprintf(out, sizeof out, "[%02d:%02d:%02d.%03d][%s][%s] %s", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), who, level_names[level], msg);
    }
    if (log_sink_v) {
        log_sink_v(level, out, log_sink_user);
    } else {
        fprintf(stderr, "%s\n", out);
        if (level <= LOG_LEVEL_WARN) fflush(stderr);
    }
}

void log_printf(enum log_level level, const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_vprintf(level, file, line, fmt, ap);
    va_end(ap);
}

void log_printf0(enum log_level level, const char *file, int line, const char *fmt, ...) {
    if (proc_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    log_vprintf(level, file, line, fmt, ap);
    va_end(ap);
}
