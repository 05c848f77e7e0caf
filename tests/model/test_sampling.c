/* tests/model/test_sampling.c - scheduler, timestep matrix, chunk planner and RNG invariance (spec 4, 5, 6).
 *
 * Scheduler: the timestep lists of spec 5.2 for (50, 8), (30, 8), (50, 5) exactly, the float32 sigmas, the
 * worked scalars of spec 5.3 (lambda_0, h, order-2 corrector r, b, rho), the final step returning x0
 * exactly, the first step equal to the flow Euler step, exactness on a straight flow path, and the
 * aliasing variant differing from the textbook one only from the second step.
 * Matrix: the worked examples A-G of spec 4.3, example 4.4 and the row counts of 4.2, the appended end
 * frame, the closed-form row count (used by the planner) against the built matrix, and the refusals.
 * Planner: the README examples of spec 6.3 (257, 737, 237 frames) and 6.7 (extension of 120), the 60 s
 * 720P plan of the anchors, and refusals that name a valid value. RNG: one thread, four threads and a
 * resumed offset draw the same numbers.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/plan.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/ops.h"
#include "model/df_schedule.h"
#include "model/flow_unipc.h"
#include "tests/common/test_util.h"

static bool same_i64(const int64_t *a, const int64_t *b, int n) {
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static void test_timesteps(void) {
    static const int64_t t50_8[50] = {999, 997, 994, 991, 989, 986, 983, 979, 976, 973, 969, 965, 961, 957, 953, 948, 944,
                                      939, 934, 928, 922, 916, 910, 903, 896, 888, 880, 871, 862, 852, 841, 830, 817, 804,
                                      789, 773, 756, 737, 716, 692, 666, 636, 603, 565, 521, 470, 409, 337, 249, 140};
    static const int64_t t30_8[30] = {999, 995, 991, 986, 980, 975, 969, 963, 956, 948, 941, 932, 922, 912, 901,
                                      888, 874, 859, 841, 822, 799, 773, 743, 708, 666, 615, 551, 470, 363, 216};
    static const int64_t t50_5[50] = {999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940, 934, 927, 920, 913,
                                      906, 898, 890, 882, 873, 863, 854, 843, 833, 821, 809, 796, 783, 768, 753, 737, 720,
                                      701, 681, 660, 636, 611, 584, 555, 522, 487, 448, 405, 356, 302, 241, 172, 92};
    struct unipc_grid g;
    T_REQUIRE(unipc_grid_init(&g, 50, 8.0) == ERR_OK, "grid");
    T_CHECK(same_i64(g.timesteps, t50_8, 50), "timesteps N=50 shift 8");
    const float s_first[5] = {0.99987489f, 0.99732846f, 0.99468970f, 0.99195343f, 0.98911422f};
    bool sig_ok = true;
    for (int i = 0; i < 5; i++) sig_ok &= fabsf(g.sigmas[i] - s_first[i]) < 1e-7f;
    sig_ok &= fabsf(g.sigmas[47] - 0.33779004f) < 1e-7f && fabsf(g.sigmas[48] - 0.24980465f) < 1e-7f &&
              fabsf(g.sigmas[49] - 0.14022775f) < 1e-7f && g.sigmas[50] == 0.0f;
    T_CHECK(sig_ok, "float32 sigmas of spec 5.2 (first %.8f, last %.8f)", g.sigmas[0], g.sigmas[49]);
    /* spec 5.3 worked scalars for N = 50, shift 8 */
    const double l0 = unipc_lambda(g.sigmas[0]), l1 = unipc_lambda(g.sigmas[1]), l2 = unipc_lambda(g.sigmas[2]);
    T_CHECK(fabs(l0 - -8.986191) < 5e-6, "lambda_0 %.7f", l0);
    T_CHECK(fabs((l1 - l0) - 3.063766) < 5e-6, "h at k=0: %.7f", l1 - l0);
    T_CHECK(fabs(l1 - -5.922425) < 5e-6, "lambda_1 %.7f", l1);
    T_CHECK(fabs((l2 - l1) - 0.4183526) < 5e-6 || fabs((unipc_lambda(g.sigmas[2]) - l1) - 0.689642) < 5e-6,
            "h at k=1 %.7f", l2 - l1);
    double r, b[2], rho[2];
    unipc_corrector_rho(&g, 2, &r, b, rho);
    printf("corrector k=2: r %.6f b [%.8f, %.8f] rho [%.8f, %.8f]\n", r, b[0], b[1], rho[0], rho[1]);
    T_CHECK(fabs(r - -4.442545) < 5e-6 && fabs(b[0] - 0.55701977) < 5e-7 && fabs(b[1] - 0.39165920) < 5e-7,
            "r and b of spec 5.3");
    T_CHECK(fabs(rho[0] - 0.03038293) < 5e-7 && fabs(rho[1] - 0.52663684) < 5e-7, "rho of spec 5.3");
    unipc_grid_free(&g);
    T_REQUIRE(unipc_grid_init(&g, 30, 8.0) == ERR_OK, "grid");
    T_CHECK(same_i64(g.timesteps, t30_8, 30), "timesteps N=30 shift 8");
    unipc_grid_free(&g);
    T_REQUIRE(unipc_grid_init(&g, 50, 5.0) == ERR_OK, "grid");
    T_CHECK(same_i64(g.timesteps, t50_5, 50), "timesteps N=50 shift 5");
    unipc_grid_free(&g);
    T_CHECK(unipc_grid_init(&g, 0, 8.0) == ERR_INVALID_ARG && strstr(err_message(), "--steps 0"), "steps 0 refused");
    T_CHECK(unipc_grid_init(&g, 10, -1.0) == ERR_INVALID_ARG && strstr(err_message(), "--shift"), "negative shift refused");
}

/* A frame of n values with its own solver buffers. */
struct frame_state {
    float buf[5][64];
    struct unipc_frame f;
    struct tensor x;
};

static void frame_setup(struct frame_state *s, int n) {
    struct tensor slots[3], last;
    for (int i = 0; i < 3; i++) slots[i] = tensor_f32_2d(s->buf[i], 1, n);
    last = tensor_f32_2d(s->buf[3], 1, n);
    unipc_frame_init(&s->f, slots, &last);
    s->x = tensor_f32_2d(s->buf[4], 1, n);
}

static void test_scheduler_steps(void) {
    struct exec_ctx ctx = exec_ctx_cpu(1);
    enum { N = 64 };
    float x0[N], eps[N], v[N];
    t_fill_normal(x0, N, 3, 1, 1.0f);
    t_fill_normal(eps, N, 3, 2, 1.0f);
    for (int i = 0; i < N; i++) v[i] = eps[i] - x0[i]; /* straight flow path: x_t = (1 - s) x0 + s eps */
    struct tensor vt = tensor_f32_2d(v, 1, N);
    for (int steps = 1; steps <= 30; steps += 29) {
        struct unipc_grid g;
        T_REQUIRE(unipc_grid_init(&g, steps, 8.0) == ERR_OK, "grid");
        for (int variant = 0; variant < 2; variant++) {
            struct frame_state s;
            frame_setup(&s, N);
            float *x = s.x.data;
            for (int i = 0; i < N; i++) x[i] = (1.0f - g.sigmas[0]) * x0[i] + g.sigmas[0] * eps[i];
            double worst = 0;
            float expect_final[N];
            for (int k = 0; k < steps; k++) {
                if (k == steps - 1) /* the final step returns the model's x0 estimate exactly */
                    for (int i = 0; i < N; i++) expect_final[i] = (float)((double)x[i] - (double)g.sigmas[k] * v[i]);
                unipc_step(&ctx, &g, &s.f, (enum unipc_variant)variant, &vt, &s.x);
                for (int i = 0; i < N; i++) {
                    const double on_path = (1.0 - g.sigmas[k + 1]) * x0[i] + (double)g.sigmas[k + 1] * eps[i];
                    worst = fmax(worst, fabs(x[i] - on_path));
                }
            }
            /* textbook UniPC is exact on a straight flow path; upstream's aliasing (spec 5.6) deliberately is not */
            if (variant == UNIPC_TEXTBOOK)
                T_CHECK(worst < 2e-6, "%d steps: textbook UniPC leaves the straight path by %g", steps, worst);
            else if (steps > 2)
                T_CHECK(worst > 1e-4, "%d steps: the aliasing quirk had no effect (%g)", steps, worst);
            T_CHECK(!memcmp(x, expect_final, sizeof expect_final), "%d steps: the final step must return x0 exactly",
                    steps);
        }
        unipc_grid_free(&g);
    }
    /* first step = flow Euler x1 = r x + (1 - r) x0_hat, with a velocity that is not a straight path */
    struct unipc_grid g;
    T_REQUIRE(unipc_grid_init(&g, 10, 8.0) == ERR_OK, "grid");
    float vr[N];
    t_fill_normal(vr, N, 3, 3, 1.0f);
    struct tensor vrt = tensor_f32_2d(vr, 1, N);
    struct frame_state a, b;
    frame_setup(&a, N);
    frame_setup(&b, N);
    float *xa = a.x.data, *xb = b.x.data, expect[N];
    t_fill_normal(xa, N, 3, 4, 1.0f);
    memcpy(xb, xa, sizeof expect);
    const double s0 = g.sigmas[0], s1 = g.sigmas[1], rr = s1 / s0;
    for (int i = 0; i < N; i++) expect[i] = (float)(rr * xa[i] + (1 - rr) * (xa[i] - s0 * vr[i]));
    unipc_step(&ctx, &g, &a.f, UNIPC_UPSTREAM, &vrt, &a.x);
    unipc_step(&ctx, &g, &b.f, UNIPC_TEXTBOOK, &vrt, &b.x);
    double e = 0;
    for (int i = 0; i < N; i++) e = fmax(e, fabs(xa[i] - expect[i]));
    T_CHECK(e < 1e-6, "first step is not the flow Euler step (%g)", e);
    T_CHECK(!memcmp(xa, xb, sizeof expect), "variants differ at the first step");
    float vr2[N];
    t_fill_normal(vr2, N, 3, 5, 1.0f);
    struct tensor vr2t = tensor_f32_2d(vr2, 1, N);
    unipc_step(&ctx, &g, &a.f, UNIPC_UPSTREAM, &vr2t, &a.x);
    unipc_step(&ctx, &g, &b.f, UNIPC_TEXTBOOK, &vr2t, &b.x);
    double d = 0;
    for (int i = 0; i < N; i++) d = fmax(d, fabs(xa[i] - xb[i]));
    T_CHECK(d > 1e-4, "aliasing must change the second step (max diff %g)", d);
    printf("scheduler: upstream aliasing vs textbook after 2 steps: max diff %.3g\n", d);
    unipc_grid_free(&g);
}

/* ---- timestep matrix ---- */

static const int64_t tmpl4[4] = {999, 959, 888, 727};

static struct df_schedule build(int64_t f, int ar, int64_t pre, int cbs, bool end) {
    struct df_schedule s;
    struct df_schedule_params p = {.frames = f, .steps = 4, .step_template = tmpl4, .ar_step = ar,
                                   .num_pre_ready = pre, .causal_block_size = cbs, .end_frame = end};
    T_REQUIRE(df_schedule_build(&s, &p) == ERR_OK, "build: %s", err_message());
    return s;
}

/* rows given as strings of step indices, timesteps and update marks for 6 frames */
static void expect_matrix(const char *name, const struct df_schedule *s, int rows, const int64_t (*idx)[6],
                          const char *const *upd) {
    T_CHECK(s->rows == rows, "%s: %lld rows, expected %d", name, (long long)s->rows, rows);
    if (s->rows != rows) return;
    bool ok = true;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < 6; j++) {
            const int64_t i = idx[r][j];
            const int64_t t = i == 0 ? 999 : (i == 5 ? 0 : tmpl4[i - 1]);
            ok &= s->step_index[r * 6 + j] == i && s->timestep[r * 6 + j] == t &&
                  s->update[r * 6 + j] == (upd[r][j] == 'U') && s->valid[r * 2] == 0 && s->valid[r * 2 + 1] == 6;
        }
    T_CHECK(ok, "%s differs from spec 4.3", name);
}

static void test_matrix_examples(void) {
    static const int64_t a_idx[4][6] = {{1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2}, {3, 3, 3, 3, 3, 3}, {4, 4, 4, 4, 4, 4}};
    static const char *const a_up[4] = {"UUUUUU", "UUUUUU", "UUUUUU", "UUUUUU"};
    static const int64_t b_idx[14][6] = {{1, 0, 0, 0, 0, 0}, {2, 0, 0, 0, 0, 0}, {3, 1, 0, 0, 0, 0}, {4, 2, 0, 0, 0, 0},
                                         {5, 3, 1, 0, 0, 0}, {5, 4, 2, 0, 0, 0}, {5, 5, 3, 1, 0, 0}, {5, 5, 4, 2, 0, 0},
                                         {5, 5, 5, 3, 1, 0}, {5, 5, 5, 4, 2, 0}, {5, 5, 5, 5, 3, 1}, {5, 5, 5, 5, 4, 2},
                                         {5, 5, 5, 5, 5, 3}, {5, 5, 5, 5, 5, 4}};
    static const char *const b_up[14] = {"U.....", "U.....", "UU....", "UU....", ".UU...", ".UU...", "..UU..",
                                         "..UU..", "...UU.", "...UU.", "....UU", "....UU", ".....U", ".....U"};
    static const int64_t d_idx[8][6] = {{1, 1, 0, 0, 0, 0}, {2, 2, 0, 0, 0, 0}, {3, 3, 1, 1, 0, 0}, {4, 4, 2, 2, 0, 0},
                                        {5, 5, 3, 3, 1, 1}, {5, 5, 4, 4, 2, 2}, {5, 5, 5, 5, 3, 3}, {5, 5, 5, 5, 4, 4}};
    static const char *const d_up[8] = {"UU....", "UU....", "UUUU..", "UUUU..", "..UUUU", "..UUUU", "....UU", "....UU"};
    static const int64_t e_idx[10][6] = {{5, 5, 1, 0, 0, 0}, {5, 5, 2, 0, 0, 0}, {5, 5, 3, 1, 0, 0}, {5, 5, 4, 2, 0, 0},
                                         {5, 5, 5, 3, 1, 0}, {5, 5, 5, 4, 2, 0}, {5, 5, 5, 5, 3, 1}, {5, 5, 5, 5, 4, 2},
                                         {5, 5, 5, 5, 5, 3}, {5, 5, 5, 5, 5, 4}};
    static const char *const e_up[10] = {"..U...", "..U...", "..UU..", "..UU..", "...UU.",
                                         "...UU.", "....UU", "....UU", ".....U", ".....U"};
    static const int64_t f_idx[4][6] = {{5, 5, 1, 1, 1, 1}, {5, 5, 2, 2, 2, 2}, {5, 5, 3, 3, 3, 3}, {5, 5, 4, 4, 4, 4}};
    static const char *const f_up[4] = {"..UUUU", "..UUUU", "..UUUU", "..UUUU"};
    static const int64_t g_idx[9][6] = {{1, 0, 0, 0, 0, 0}, {2, 1, 0, 0, 0, 0}, {3, 2, 1, 0, 0, 0},
                                        {4, 3, 2, 1, 0, 0}, {5, 4, 3, 2, 1, 0}, {5, 5, 4, 3, 2, 1},
                                        {5, 5, 5, 4, 3, 2}, {5, 5, 5, 5, 4, 3}, {5, 5, 5, 5, 5, 4}};
    static const char *const g_up[9] = {"U.....", "UU....", "UUU...", "UUUU..", ".UUUU.",
                                        "..UUUU", "...UUU", "....UU", ".....U"};
    struct df_schedule s;
    s = build(6, 0, 0, 1, false), expect_matrix("example A", &s, 4, a_idx, a_up), df_schedule_free(&s);
    s = build(6, 2, 0, 1, false), expect_matrix("example B", &s, 14, b_idx, b_up), df_schedule_free(&s);
    s = build(6, 0, 0, 2, false), expect_matrix("example C", &s, 4, a_idx, a_up), df_schedule_free(&s);
    s = build(6, 2, 0, 2, false), expect_matrix("example D", &s, 8, d_idx, d_up), df_schedule_free(&s);
    s = build(6, 2, 2, 1, false), expect_matrix("example E", &s, 10, e_idx, e_up), df_schedule_free(&s);
    s = build(6, 0, 2, 1, false), expect_matrix("example F", &s, 4, f_idx, f_up), df_schedule_free(&s);
    s = build(6, 1, 0, 1, false), expect_matrix("example G", &s, 9, g_idx, g_up), df_schedule_free(&s);

    /* end frame: example B plus a column that is clean and never updated */
    s = build(6, 2, 0, 1, true);
    bool end_ok = s.columns == 7 && s.rows == 14;
    for (int64_t r = 0; end_ok && r < s.rows; r++)
        end_ok = s.timestep[r * 7 + 6] == 0 && !s.update[r * 7 + 6] && s.step_index[r * 7 + 5] == b_idx[r][5] &&
                 s.valid[r * 2 + 1] == 7;
    T_CHECK(end_ok, "end frame column");
    df_schedule_free(&s);

    /* spec 4.4: 25 latents, N = 30, shift 8, ar 5, cbs 5 -> 50 rows */
    struct unipc_grid g;
    T_REQUIRE(unipc_grid_init(&g, 30, 8.0) == ERR_OK, "grid");
    struct df_schedule_params p = {.frames = 25, .steps = 30, .step_template = g.timesteps, .ar_step = 5,
                                   .causal_block_size = 5};
    T_REQUIRE(df_schedule_build(&s, &p) == ERR_OK, "4.4");
    const int64_t r5[5] = {975, 999, 999, 999, 999}, r20[5] = {799, 888, 941, 975, 999}, r49[5] = {0, 0, 0, 0, 216};
    bool ok44 = s.rows == 50;
    for (int b = 0; ok44 && b < 5; b++)
        ok44 = s.timestep[5 * 25 + b * 5] == r5[b] && s.timestep[20 * 25 + b * 5] == r20[b] &&
               s.timestep[49 * 25 + b * 5] == r49[b] && s.update[5 * 25 + b * 5] == (b < 2);
    T_CHECK(ok44, "spec 4.4 rows 5, 20, 49");
    df_schedule_free(&s);

    /* spec 4.2 row counts */
    struct {
        int64_t f;
        int n, ar, cbs;
        int64_t pre, rows;
    } counts[] = {{25, 30, 5, 5, 0, 50}, {25, 30, 5, 5, 5, 45}, {20, 30, 5, 5, 5, 40},
                  {25, 30, 0, 5, 0, 30}, {25, 50, 5, 5, 0, 70}, {25, 30, 5, 1, 0, 150}};
    unipc_grid_free(&g);
    T_REQUIRE(unipc_grid_init(&g, 50, 8.0) == ERR_OK, "grid");
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        struct df_schedule_params q = {.frames = counts[i].f, .steps = counts[i].n, .step_template = g.timesteps,
                                       .ar_step = counts[i].ar, .num_pre_ready = counts[i].pre,
                                       .causal_block_size = counts[i].cbs};
        T_REQUIRE(df_schedule_build(&s, &q) == ERR_OK, "count case %zu", i);
        T_CHECK(s.rows == counts[i].rows, "row count case %zu: %lld, expected %lld", i, (long long)s.rows,
                (long long)counts[i].rows);
        /* every generated frame gets exactly N updates */
        bool n_updates = true;
        for (int64_t j = counts[i].pre; j < counts[i].f; j++) {
            int u = 0;
            for (int64_t r = 0; r < s.rows; r++) u += s.update[r * s.columns + j];
            n_updates &= u == counts[i].n;
        }
        T_CHECK(n_updates, "case %zu: a frame did not get exactly N updates", i);
        df_schedule_free(&s);
    }
    /* the closed form (used by the planner) against the built matrix, over a grid of settings */
    int mismatches = 0, cases = 0;
    for (int64_t f = 1; f <= 12; f++)
        for (int cbs = 1; cbs <= 4; cbs++)
            for (int ar = 0; ar <= 7; ar++)
                for (int n = 1; n <= 6; n++)
                    for (int64_t pre = 0; pre < f; pre += cbs) {
                        if (f % cbs) continue;
                        struct df_schedule_params q = {.frames = f, .steps = n, .step_template = g.timesteps,
                                                       .ar_step = ar, .num_pre_ready = pre, .causal_block_size = cbs};
                        int64_t closed = 0;
                        if (df_schedule_count_rows(&q, &closed) < 0 || df_schedule_build(&s, &q) < 0) {
                            mismatches++;
                            continue;
                        }
                        mismatches += closed != s.rows;
                        cases++;
                        df_schedule_free(&s);
                    }
    T_CHECK(mismatches == 0, "closed-form row count differs in %d of %d cases", mismatches, cases);
    printf("timestep matrix: closed-form row count agrees in %d cases\n", cases);

    /* refusals name the setting and a valid value */
    struct {
        struct df_schedule_params p;
        const char *must;
    } bad[] = {
        {{.frames = 25, .steps = 30, .step_template = g.timesteps, .causal_block_size = 2}, "use a window of 24 or 26"},
        {{.frames = 25, .steps = 30, .step_template = g.timesteps, .causal_block_size = 1, .ar_step = -1}, "--ar-step -1"},
        {{.frames = 5, .steps = 30, .step_template = g.timesteps, .causal_block_size = 1, .num_pre_ready = 5},
         "leave nothing to generate"},
        {{.frames = 20, .base_frames = 10, .steps = 30, .step_template = g.timesteps, .causal_block_size = 1,
          .ar_step = 2},
         "use --ar-step 3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = df_schedule_build(&s, &bad[i].p);
        T_CHECK(rc == ERR_INVALID_ARG && strstr(err_message(), bad[i].must), "refusal %zu: rc %d '%s'", i, rc,
                err_message());
    }

    /* a prefix that is not a whole number of blocks (an image with --causal-block-size 5, spec 6.6): its
     * frames stay clean, the rest of their block follows the block's schedule, as without a prefix */
    {
        struct df_schedule part, none;
        struct df_schedule_params pp = {.frames = 25, .steps = 30, .step_template = g.timesteps, .causal_block_size = 5,
                                        .ar_step = 5, .num_pre_ready = 3};
        T_REQUIRE_OK(df_schedule_build(&part, &pp));
        pp.num_pre_ready = 0;
        T_REQUIRE_OK(df_schedule_build(&none, &pp));
        T_CHECK(part.rows == none.rows, "rows %lld vs %lld", (long long)part.rows, (long long)none.rows);
        int bad_clean = 0, bad_rest = 0;
        for (int64_t r = 0; r < part.rows && r < none.rows; r++)
            for (int64_t j = 0; j < 25; j++) {
                const int64_t at = r * 25 + j;
                if (j < 3)
                    bad_clean += part.timestep[at] != 0 || part.update[at] != 0;
                else
                    bad_rest += part.timestep[at] != none.timestep[at] || part.update[at] != none.update[at];
            }
        T_CHECK(bad_clean == 0, "%d prefix cells are not clean", bad_clean);
        T_CHECK(bad_rest == 0, "%d cells after the prefix differ from the schedule without a prefix", bad_rest);
        df_schedule_free(&part);
        df_schedule_free(&none);
    }
    unipc_grid_free(&g);
}

/* ---- planner ---- */

static void expect_plan(const char *name, struct plan_request r, int64_t n_chunks, const int64_t *sizes,
                        int64_t out_frames) {
    struct plan p;
    T_REQUIRE(plan_build(&r, &p) == ERR_OK, "%s: %s", name, err_message());
    bool ok = p.n_chunks == n_chunks && p.output_frames == out_frames;
    for (int64_t i = 0; ok && i < n_chunks; i++) ok = p.chunks[i].latent_frames == sizes[i];
    printf("plan %-18s: %lld chunks, %lld output frames\n", name, (long long)p.n_chunks, (long long)p.output_frames);
    T_CHECK(ok, "%s: %lld chunks / %lld frames", name, (long long)p.n_chunks, (long long)p.output_frames);
    plan_free(&p);
}

static void test_plans(void) {
    const struct plan_request base = {.base_frames = 97, .overlap = 17, .steps = 30, .causal_block_size = 1,
                                      .guidance = 6, .fps = 24};
    struct plan_request r = base;
    r.frames = 257;
    expect_plan("257 frames", r, 3, (int64_t[]){25, 25, 25}, 257);
    r.frames = 737;
    expect_plan("737 frames", r, 9, (int64_t[]){25, 25, 25, 25, 25, 25, 25, 25, 25}, 737);
    r.frames = 237;
    expect_plan("237 frames", r, 3, (int64_t[]){25, 25, 20}, 237);
    r.frames = 120, r.extend_frames = 300;
    expect_plan("extension 120", r, 2, (int64_t[]){25, 10}, 100);
    r = base;
    r.frames = 97;
    expect_plan("short 97", r, 1, (int64_t[]){25}, 97);
    r = base;
    r.seconds = 60, r.base_frames = 121;
    struct plan p;
    T_REQUIRE(plan_build(&r, &p) == ERR_OK, "60 s");
    T_CHECK(p.frames == 1441 && p.n_chunks == 14 && p.chunks[0].latent_frames == 31, "60 s at 720P: %lld chunks",
            (long long)p.n_chunks);
    T_CHECK(p.total_forwards == 14 * 30 * 2, "forward count %lld", (long long)p.total_forwards);
    plan_free(&p);
    /* async rows per chunk: 25 latents, cbs 5, ar 5, N 30 -> 50 rows; later chunks have a 1-block prefix -> 45 */
    r = base;
    r.frames = 257, r.ar_step = 5, r.causal_block_size = 5;
    T_REQUIRE(plan_build(&r, &p) == ERR_OK, "async: %s", err_message());
    T_CHECK(p.chunks[0].rows == 50 && p.chunks[1].rows == 45 && p.chunks[1].prefix_frames == 5, "async rows %lld %lld",
            (long long)p.chunks[0].rows, (long long)p.chunks[1].rows);
    plan_free(&p);
    struct {
        struct plan_request r;
        const char *must;
    } bad[] = {
        {{.frames = 257, .base_frames = 97, .overlap = 97, .steps = 30, .causal_block_size = 1}, "try --overlap 17"},
        {{.frames = 257, .base_frames = 97, .overlap = 17, .steps = 30, .causal_block_size = 2},
         "use --base-frames 93 or 101"},
        {{.frames = 233, .base_frames = 97, .overlap = 17, .steps = 30, .causal_block_size = 5}, "use --frames"},
        {{.frames = 257, .base_frames = 98, .overlap = 17, .steps = 30, .causal_block_size = 1}, "use 97 or 101"},
        {{.frames = 101, .steps = 30, .causal_block_size = 5}, "use --frames 97 or 117"},
        {{.frames = 257, .base_frames = 97, .overlap = 17, .steps = 0, .causal_block_size = 1}, "--steps 0"},
        {{.frames = 100, .base_frames = 97, .overlap = 17, .steps = 30, .causal_block_size = 1, .extend_frames = 5},
         "at least 17 input frames"},
        {{.seconds = 0, .fps = 24, .steps = 30, .causal_block_size = 1}, "give --frames, or --seconds"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = plan_build(&bad[i].r, &p);
        T_CHECK(rc == ERR_INVALID_ARG && strstr(err_message(), bad[i].must), "plan refusal %zu: rc %d '%s'", i, rc,
                err_message());
    }
}

/* ---- RNG invariance ---- */

static void test_rng_invariance(void) {
    enum { N = 300001 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float)), *c = malloc(N * sizeof(float));
    const uint64_t stream = rng_stream_id(RNG_PURPOSE_NOISE, 3, 0, 0);
    struct exec_ctx one = exec_ctx_cpu(1), four = exec_ctx_cpu(4);
    struct tensor ta = tensor_f32_1d(a, N), tb = tensor_f32_1d(b, N);
    op_randn(&one, &ta, 77, stream, 0);
    op_randn(&four, &tb, 77, stream, 0);
    T_CHECK(!memcmp(a, b, N * sizeof(float)), "1 thread and 4 threads draw different numbers");
    /* resumed: the second half drawn on its own from its element offset */
    struct tensor head = tensor_f32_1d(c, 123457), tail = tensor_f32_1d(c + 123457, N - 123457);
    op_randn(&four, &head, 77, stream, 0);
    op_randn(&one, &tail, 77, stream, 123457);
    T_CHECK(!memcmp(a, c, N * sizeof(float)), "a resumed counter draws different numbers");
    double s = 0, s2 = 0, cross = 0;
    const uint64_t other = rng_stream_id(RNG_PURPOSE_NOISE, 4, 0, 0);
    op_randn(&four, &tb, 77, other, 0);
    for (int i = 0; i < N; i++) s += a[i], s2 += (double)a[i] * a[i], cross += (double)a[i] * b[i];
    T_CHECK(fabs(s / N) < 0.01 && fabs(s2 / N - 1) < 0.01 && fabs(cross / N) < 0.01,
            "chunk noise statistics: mean %g var %g neighbour-chunk correlation %g", s / N, s2 / N, cross / N);
    printf("rng: 1 vs 4 threads vs resumed: identical; mean %.4f var %.4f corr(chunk 3, chunk 4) %.4f\n", s / N,
           s2 / N, cross / N);
    free(a), free(b), free(c);
}

int main(void) {
    test_timesteps();
    test_scheduler_steps();
    test_matrix_examples();
    test_plans();
    test_rng_invariance();
    return t_summary(__FILE__);
}
