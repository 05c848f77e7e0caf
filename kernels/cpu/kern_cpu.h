/* kernels/cpu/kern_cpu.h - float32 CPU implementations behind kernels/ops.h.
 *
 * Called only by the dispatcher (kernels/ops.c), which has already checked dtypes, devices and
 * shapes; these functions trust their arguments. Semantics are documented once, in ops.h.
 * Threaded with OpenMP over rows (or attention tiles); GEMMs go to OpenBLAS.
 */
#ifndef REELFARM_KERNELS_CPU_KERN_CPU_H
#define REELFARM_KERNELS_CPU_KERN_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "kernels/ops.h"

void kern_linear_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
                     const struct tensor *b);
void kern_layernorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                        const struct tensor *gamma, const struct tensor *beta, float eps);
void kern_rmsnorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                      float eps);
void kern_row_sumsq_cpu(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x);
void kern_rmsnorm_given_sumsq_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                                  const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps);
void kern_norm_modulate_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                            const struct tensor *shift, const struct tensor *scale, int64_t group_size,
                            int64_t row_offset, float eps);
void kern_gated_add_cpu(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y,
                        const struct tensor *gate, int64_t group_size, int64_t row_offset);
void kern_mul_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b);
void kern_add_row_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *row);
void kern_silu_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_gelu_tanh_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_gelu_erf_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_rope3d_cpu(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
                     int64_t token_offset, const struct tensor *freqs, const int split[3]);
void kern_attention_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                        const struct tensor *v, int n_heads, float scale, const struct attn_causal *causal,
                        bool accumulate);
void kern_attention_block_cpu(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                              const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                              const struct attn_causal *causal, int64_t valid_keys, bool first_block);
void kern_attention_finish_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                               bool accumulate);
void kern_t5_relbias_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                         int max_distance, int64_t lq);
void kern_attention_biased_cpu(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct tensor *bias, int64_t valid_keys);
void kern_patchify_cpu(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                       const int patch[3]);
void kern_unpatchify_cpu(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                         const int patch[3]);
void kern_timestep_sinusoid_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t);
void kern_lincomb_cpu(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                      const struct tensor *const *x);
void kern_randn_cpu(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first);
void kern_transfer_cpu(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);
void kern_copy_cpu(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);
void kern_conv_frames_cpu(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                          const struct tensor *w, const struct tensor *b, const struct conv_geom *g);
void kern_channel_rmsnorm_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                              const struct tensor *gamma, bool silu);
void kern_upsample_nearest2x_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_channel_affine_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                             const struct tensor *sub, const struct tensor *mul, const struct tensor *add);
void kern_clamp_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi);
void kern_transpose_cpu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);

enum { ROPE_MAX_PAIRS = OP_HEAD_DIM_MAX / 2 };

/* OpenBLAS may send an sgemm with M N K at most this to its small-matrix kernels, which round differently from
 * its blocked path (kern_linear.c). The bound is used for both operand layouts: it covers the A B^T rule too. */
enum { SGEMM_SMALL_MNK_MAX = 1000000 };

/* Row-major C[m, n] = alpha A[m, k] op(B) + beta C, with op(B) = B [k, n], or B^T for B [n, k] when trans_b
 * (cblas_sgemm(CblasRowMajor, CblasNoTrans, ...) with leading dimensions lda, ldb, ldc), such that every row of
 * C is bitwise independent of m and of the other rows in the call (for fixed n, k, trans_b, alpha, beta): calls
 * OpenBLAS would give to its small-matrix kernels run padded with scratch rows (kern_linear.c). Linear and
 * attention multiply through it, so a sequence-parallel shard computes the same bits as one rank. */
void kern_sgemm_row_stable(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                           const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Threads for our OpenMP loops (and, on first use, pins OpenBLAS to one thread). */
int kern_cpu_threads(const struct exec_ctx *ctx);

#endif /* REELFARM_KERNELS_CPU_KERN_CPU_H */
