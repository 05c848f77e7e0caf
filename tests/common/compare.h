/* tests/common/compare.h - the one comparison rule of the test suite (STYLE 10.7).
 *
 * A result `out` passes against a reference `ref` iff every element has
 * |out - ref| <= atol + rtol * |ref|, the normalised mean squared error
 * sum((out - ref)^2) / sum(ref^2) is <= nmse_max, and NaN/Inf agree in position and sign.
 * Tolerances live with the test that uses them, each with a one-line reason.
 */
#ifndef REELFARM_TESTS_COMPARE_H
#define REELFARM_TESTS_COMPARE_H

#include <stdbool.h>
#include <stdint.h>

struct cmp_tol {
    double atol;
    double rtol;
    double nmse_max;
};

struct cmp_result {
    bool pass;
    double max_abs_err;
    double max_rel_err; /* |out - ref| / |ref| over elements with ref != 0 */
    double rel_l2;      /* ||out - ref||_2 / ||ref||_2 */
    double nmse;
    double max_abs_ref;
    int64_t worst_index;    /* element with the largest (|err| - atol) / (rtol |ref|) budget use */
    double budget_used;     /* max over elements of |err| / (atol + rtol |ref|), 1.0 = at the limit */
    int64_t nonfinite_mismatch;
};

struct cmp_result cmp_f32(const float *out, const float *ref, int64_t n, struct cmp_tol tol);
/* Prints one line: "<what>: pass|FAIL max_abs=.. rel_l2=.. nmse=.. worst=i (out vs ref) budget=..%". */
void cmp_print(const char *what, const struct cmp_result *r, const float *out, const float *ref);
/* cmp_f32 + cmp_print + T_CHECK; returns pass. */
bool cmp_check(const char *what, const float *out, const float *ref, int64_t n, struct cmp_tol tol);

/* Guard bands: a buffer of n floats with canary regions before and after. */
float *guard_alloc(int64_t n);
bool guard_intact(const float *p, int64_t n);
void guard_free(float *p);

#endif /* REELFARM_TESTS_COMPARE_H */
