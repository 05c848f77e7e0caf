/* tests/common/test_util.h - a minimal test harness: plain C executables registered with CTest.
 *
 * T_CHECK records a failure (with file:line and a message) and continues; T_REQUIRE stops the
 * test. t_summary() prints one summary line and returns the process exit code (0 pass, 1 fail);
 * t_skip() prints why and returns 77, which CTest reports as "skipped" (SKIP_RETURN_CODE 77).
 */
#ifndef REELFARM_TESTS_TEST_UTIL_H
#define REELFARM_TESTS_TEST_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/error.h"

extern int t_failures;
extern int t_checks;

#define T_CHECK(cond, ...)                                                                                       \
    do {                                                                                                         \
        t_checks++;                                                                                              \
        if (!(cond)) {                                                                                           \
            t_failures++;                                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                                        \
            fprintf(stderr, "\n");                                                                               \
        }                                                                                                        \
    } while (0)

/* Evaluates cond exactly once. */
#define T_REQUIRE(cond, ...)                                                                                     \
    do {                                                                                                         \
        t_checks++;                                                                                              \
        if (!(cond)) {                                                                                           \
            t_failures++;                                                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                                        \
            fprintf(stderr, "\n");                                                                               \
            exit(t_summary(__FILE__));                                                                           \
        }                                                                                                        \
    } while (0)

/* Require a call returning an err_code to succeed, printing its error message otherwise. */
#define T_REQUIRE_OK(call)                                                                                       \
    do {                                                                                                         \
        const int t_require_rc_ = (call);                                                                        \
        T_REQUIRE(t_require_rc_ == 0, "%s: %s", #call, err_message());                                           \
    } while (0)

int t_summary(const char *test_name);
int t_skip(const char *test_name, const char *why);
/* A fresh temporary directory (removed by t_rmtree); returns a static-lifetime string. */
const char *t_tmpdir(const char *tag);
void t_rmtree(const char *dir);
/* dir/name in one of 8 rotating buffers (valid until 8 more calls). */
const char *t_path(const char *dir, const char *name);
/* Write a whole file (test fixtures); fails the test if it cannot. */
void t_write_file(const char *path, const void *data, size_t len);
/* Fill with N(0, std^2) samples from a fixed seed (core/rng.h, stream = tag). */
void t_fill_normal(float *x, long long n, unsigned long long seed, unsigned long long tag, float std);

#endif /* REELFARM_TESTS_TEST_UTIL_H */
