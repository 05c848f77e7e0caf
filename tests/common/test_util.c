/* tests/common/test_util.c - shared helpers for the test executables. */
#include "tests/common/test_util.h"

#include <string.h>
#include <unistd.h>

#include "core/rng.h"

int t_failures = 0;
int t_checks = 0;

int t_summary(const char *test_name) {
    const char *base = strrchr(test_name, '/');
    base = base ? base + 1 : test_name;
    if (t_failures)
        printf("%s: FAILED %d of %d checks\n", base, t_failures, t_checks);
    else
        printf("%s: passed %d checks\n", base, t_checks);
    fflush(stdout);
    return t_failures ? 1 : 0;
}

int t_skip(const char *test_name, const char *why) {
    printf("%s: SKIPPED: %s\n", test_name, why);
    fflush(stdout);
    return 77;
}

const char *t_tmpdir(const char *tag) {
    static char paths[16][256];
    static int next = 0;
    char *p = paths[next++ % 16];
    const char *base = getenv("TMPDIR");
    snprintf(p, 256, "%s/reelfarm-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        exit(2);
    }
    return p;
}

void t_rmtree(const char *dir) {
    if (!dir || strlen(dir) < 8 || strstr(dir, "reelfarm-") == NULL) return; /* only our own temp dirs */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

void t_fill_normal(float *x, long long n, unsigned long long seed, unsigned long long tag, float std) {
    rng_normal_f32(x, n, seed, tag, 0);
    for (long long i = 0; i < n; i++) x[i] *= std;
}

const char *t_path(const char *dir, const char *name) {
    static char bufs[8][4096];
    static int next;
    char *p = bufs[next++ % 8];
    snprintf(p, sizeof bufs[0], "%s/%s", dir, name);
    return p;
}

void t_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    T_REQUIRE(f != NULL, "cannot create %s", path);
    const size_t wrote = len ? fwrite(data, 1, len, f) : 0;
    const int closed = fclose(f);
    T_REQUIRE(wrote == len && closed == 0, "cannot write %s", path);
}
