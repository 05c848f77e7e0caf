/* cli/args.c - strict option values and the two error-line formats. */
#include "cli/args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "io/fs.h"
#include "parallel/par_runtime.h"

int arg_i64(const char *flag, const char *value, int64_t lo, int64_t hi, int64_t *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || !*value || *end || v < lo || v > hi)
        return err_set(ERR_INVALID_ARG, "%s: expected an integer in [%lld, %lld], got '%s'", flag, (long long)lo,
                       (long long)hi, value);
    *out = v;
    return ERR_OK;
}

int arg_int(const char *flag, const char *value, int lo, int hi, int *out) {
    int64_t v = 0;
    TRY(arg_i64(flag, value, lo, hi, &v));
    *out = (int)v;
    return ERR_OK;
}

int arg_u64(const char *flag, const char *value, uint64_t *out) {
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || !*value || *end || value[0] == '-')
        return err_set(ERR_INVALID_ARG, "%s: expected a non-negative integer, got '%s'", flag, value);
    *out = v;
    return ERR_OK;
}

int arg_f64(const char *flag, const char *value, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || !*value || *end || !(v >= lo && v <= hi))
        return err_set(ERR_INVALID_ARG, "%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, value);
    *out = v;
    return ERR_OK;
}

int arg_resolution(const char *flag, const char *value, int64_t *width, int64_t *height) {
    if (strcasecmp(value, "540p") == 0) {
        *width = 960, *height = 544;
        return ERR_OK;
    }
    if (strcasecmp(value, "720p") == 0) {
        *width = 1280, *height = 720;
        return ERR_OK;
    }
    long long w = 0, h = 0;
    char tail;
    if (sscanf(value, "%lldx%lld%c", &w, &h, &tail) != 2 || w <= 0 || h <= 0)
        return err_set(ERR_INVALID_ARG, "%s: expected 540p, 720p or WIDTHxHEIGHT, got '%s'", flag, value);
    *width = w, *height = h;
    return ERR_OK;
}

int usage_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (par_rank() == 0) /* every rank parses the same command line: one of them says it */
        fprintf(stderr, "reelfarm %s: %s (see 'reelfarm %s --help')\n", cmd, msg, cmd);
    return EXIT_USAGE;
}

int run_error(void) {
    /* under MPI rank 0 speaks first; cli/main.c has the others speak too if they did not all fail alike */
    if (par_rank() == 0) fprintf(stderr, "reelfarm: error: %s\n", err_message()[0] ? err_message() : "unknown error");
    return EXIT_RUN_ERROR;
}

bool arg_parallel(int ch, const char *value, struct par_request *req, int *rc) {
    *rc = 0;
    switch (ch) {
    case ARG_OPT_SP: *rc = arg_int("--sp", value, 1, 1 << 20, &req->sp); return true;
    case ARG_OPT_TP: *rc = arg_int("--tp", value, 1, 1 << 20, &req->tp); return true;
    case ARG_OPT_ULYSSES: *rc = arg_int("--ulysses", value, 1, 1 << 20, &req->ulysses); return true;
    case ARG_OPT_CFG_PARALLEL: req->cfg = 2; return true;
    case ARG_OPT_NO_CFG_PARALLEL: req->cfg = 1; return true;
    default: return false;
    }
}

int arg_read_text_file(const char *flag, const char *path, char **out) {
    size_t len = 0;
    if (fs_read_file(path, out, &len, (size_t)16 << 20) < 0) return err_wrap("%s: ", flag);
    if (strlen(*out) != len) {
        free(*out);
        *out = NULL;
        return err_set(ERR_FORMAT, "%s %s: the file contains a NUL byte", flag, path);
    }
    return 0;
}
