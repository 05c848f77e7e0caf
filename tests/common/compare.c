/* tests/common/compare.c - comparison rule and guard bands. */
#include "tests/common/compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/common/test_util.h"

struct cmp_result cmp_f32(const float *out, const float *ref, int64_t n, struct cmp_tol tol) {
    struct cmp_result r;
    memset(&r, 0, sizeof r);
    r.worst_index = -1;
    double se = 0, sr = 0;
    bool elem_ok = true;
    for (int64_t i = 0; i < n; i++) {
        double o = out[i], f = ref[i];
        bool of = isfinite(o), ff = isfinite(f);
        if (!of || !ff) {
            bool same = (isnan(o) && isnan(f)) || (isinf(o) && isinf(f) && signbit(o) == signbit(f));
            if (!same) {
                r.nonfinite_mismatch++;
                elem_ok = false;
                if (r.worst_index < 0) r.worst_index = i;
                r.budget_used = INFINITY;
            }
            continue;
        }
        double e = fabs(o - f);
        se += e * e;
        sr += f * f;
        if (fabs(f) > r.max_abs_ref) r.max_abs_ref = fabs(f);
        if (e > r.max_abs_err) r.max_abs_err = e;
        if (f != 0 && e / fabs(f) > r.max_rel_err) r.max_rel_err = e / fabs(f);
        double budget = tol.atol + tol.rtol * fabs(f);
        double use = budget > 0 ? e / budget : (e > 0 ? INFINITY : 0);
        if (use > r.budget_used) {
            r.budget_used = use;
            r.worst_index = i;
        }
        if (e > budget) elem_ok = false;
    }
    r.nmse = sr > 0 ? se / sr : (se > 0 ? INFINITY : 0);
    r.rel_l2 = sqrt(r.nmse);
    r.pass = elem_ok && r.nmse <= tol.nmse_max;
    return r;
}

void cmp_print(const char *what, const struct cmp_result *r, const float *out, const float *ref) {
    printf("%s: %s max_abs=%.3g max_abs_ref=%.3g rel_l2=%.3g nmse=%.3g budget=%.1f%%", what, r->pass ? "pass" : "FAIL",
           r->max_abs_err, r->max_abs_ref, r->rel_l2, r->nmse, 100.0 * r->budget_used);
    if (r->worst_index >= 0)
        printf(" worst=[%lld] %.9g vs %.9g", (long long)r->worst_index, (double)out[r->worst_index],
               (double)ref[r->worst_index]);
    if (r->nonfinite_mismatch) printf(" nonfinite_mismatch=%lld", (long long)r->nonfinite_mismatch);
    printf("\n");
}

bool cmp_check(const char *what, const float *out, const float *ref, int64_t n, struct cmp_tol tol) {
    struct cmp_result r = cmp_f32(out, ref, n, tol);
    cmp_print(what, &r, out, ref);
    T_CHECK(r.pass, "%s outside tolerance (atol %g rtol %g nmse_max %g)", what, tol.atol, tol.rtol, tol.nmse_max);
    return r.pass;
}

enum { GUARD_N = 64 };
static const float GUARD_VALUE = -1234.5678f;

float *guard_alloc(int64_t n) {
    float *p = malloc((size_t)(n + 2 * GUARD_N) * sizeof(float));
    if (!p) {
        fprintf(stderr, "guard_alloc: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < GUARD_N; i++) p[i] = p[GUARD_N + n + i] = GUARD_VALUE;
    return p + GUARD_N;
}

bool guard_intact(const float *p, int64_t n) {
    for (int i = 0; i < GUARD_N; i++)
        if (p[-GUARD_N + i] != GUARD_VALUE || p[n + i] != GUARD_VALUE) return false;
    return true;
}

void guard_free(float *p) {
    if (p) free(p - GUARD_N);
}
