/* core/error.c - recoverable error messages (thread-local) and the single fatal path. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/process.h"

enum { ERR_MSG_CAP = 2048 };

static _Thread_local char err_msg_buf[ERR_MSG_CAP];
static _Thread_local int err_code_last;

const char *err_code_name(int code) {
    switch (code) {
    case ERR_OK: return "ok";
    case ERR_IO: return "io";
    case ERR_FORMAT: return "format";
    case ERR_SHAPE: return "shape";
    case ERR_MISSING: return "missing";
    case ERR_UNEXPECTED: return "unexpected";
    case ERR_INVALID_ARG: return "invalid-argument";
    case ERR_NOMEM: return "out-of-memory";
    case ERR_UNSUPPORTED: return "unsupported";
    case ERR_EXISTS: return "exists";
    case ERR_INTERRUPTED: return "interrupted";
    default: return "unknown";
    }
}

int err_set(enum err_code code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg_buf, sizeof err_msg_buf, fmt, ap);
    va_end(ap);
    err_code_last = code;
    return code;
}

int err_wrap(const char *fmt, ...) {
    char prefix[ERR_MSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = n < 0 ? 0 : ((size_t)n < sizeof prefix ? (size_t)n : sizeof prefix - 1);
    size_t mlen = strlen(err_msg_buf);
    if (plen + mlen > ERR_MSG_CAP - 1) mlen = ERR_MSG_CAP - 1 - plen; /* keep the prefix, cut the tail */
    memmove(err_msg_buf + plen, err_msg_buf, mlen);
    memcpy(err_msg_buf, prefix, plen);
    err_msg_buf[plen + mlen] = '\0';
    return err_code_last;
}

const char *err_message(void) { return err_msg_buf; }
int err_last_code(void) { return err_code_last; }

void err_clear(void) {
    err_msg_buf[0] = '\0';
    err_code_last = ERR_OK;
}

RF_NORETURN void die_atv(const char *file, int line, const char *func, const char *stmt, const char *fmt,
                       va_list ap) {
    char detail[1024];
    vsnprintf(detail, sizeof detail, fmt, ap);
    char who[160];
    proc_describe(who, sizeof who);
    /* One line with everything needed to find the failure; written directly so that it appears even
     * when the log level or sink would hide it. */
    if (stmt)
        fprintf(stderr, "reelfarm: FATAL [%s] %s:%d %s: %s -> %s\n", who, file, line, func, stmt, detail);
    else
        fprintf(stderr, "reelfarm: FATAL [%s] %s:%d %s: %s\n", who, file, line, func, detail);
    fflush(stderr);
    fflush(stdout);
    proc_abort(PROC_EXIT_FATAL);
}

RF_NORETURN void die_at(const char *file, int line, const char *func, const char *stmt, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    die_atv(file, line, func, stmt, fmt, ap);
}
