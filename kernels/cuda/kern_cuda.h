/* kernels/cuda/kern_cuda.h - the CUDA backend behind kernels/ops.h: device bring-up and op twins.
 *
 * What it does: declares the kern_<name>_cuda() twin of every kern_<name>_cpu() in
 * kernels/cpu/kern_cpu.h (same arguments, same semantics, documented once in ops.h) and a small
 * device API (cuda_backend_init/free, cuda_device_count, cuda_alloc/free, cuda_sync, device arenas and
 * memory figures for the model's weights and workspace). Includable
 * from C11 (kernels/ops.c, tests) and from the .cu files; the C part names no CUDA type (the
 * stream and the handles travel as void * in struct exec_ctx).
 * What it does not do: the twins compute in float32 (the exceptions, issue 8: kern_linear_cuda takes bf16
 * weights; kern_attention_cuda computes in bf16 on tensor cores when ctx->attention_bf16 asks for it) and are
 * written for correctness, not speed (not tuned).
 * The section under __CUDACC__ at the end is internal to kernels/cuda/ (cuBLAS headers stay here).
 */
#ifndef REELFARM_KERNELS_CUDA_KERN_CUDA_H
#define REELFARM_KERNELS_CUDA_KERN_CUDA_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/arena.h"
#include "core/cdefs.h"
#include "core/tensor.h"
#include "kernels/ops.h"
#include "kernels/rows_view.h"

RF_BEGIN_DECLS

/* ---- device API (kernels/cuda/cuda_backend.cu) ---- */

/* Number of usable CUDA devices; 0 (not an error) when there is no driver or no device. Never dies. */
int cuda_device_count(void);
/* Select `device`, create a non-blocking stream and a cuBLAS handle (default math: no TF32) kept in
 * ctx->cuda_state; set ctx->backend = BACKEND_CUDA and ctx->cuda_stream (ctx->n_threads is left as
 * it is). Returns 0, or a negative enum err_code with err_message() set when there is no device,
 * the index is out of range or this build has no kernel image for the device. */
int cuda_backend_init(struct exec_ctx *ctx, int device);
/* Synchronise, release the stream and handles, and reset ctx to a plain CPU context. NULL-tolerant. */
void cuda_backend_free(struct exec_ctx *ctx);
/* Device memory, 256-byte aligned; fatal on failure (with the size in the message). 0 bytes -> NULL. */
void *cuda_alloc(size_t bytes);
void cuda_free(void *p); /* NULL-tolerant */
/* Wait until everything queued on ctx's stream has finished (fatal on a CUDA error). */
void cuda_sync(const struct exec_ctx *ctx);
/* A device arena (core/arena.h): one cudaMalloc of `size` bytes on the current device, zeroed, carved with
 * arena_alloc() as a host arena is (the pointers are device pointers; never dereference them on the host).
 * Returns 0, or ERR_NOMEM with a message naming the arena, the request and the device's free memory
 * (recoverable: a caller can say which option shrinks it). Release it with cuda_arena_free, never arena_free. */
int cuda_arena_init(struct arena *a, const char *name, size_t size);
void cuda_arena_free(struct arena *a); /* NULL-tolerant; leaves an empty arena */
/* Free and total memory of the current device (cudaMemGetInfo): total - free is what this process and every
 * other one hold on it (context, cuBLAS workspaces and arenas included). Returns 0 or a negative err_code. */
int cuda_mem_info(size_t *free_bytes, size_t *total_bytes);
/* The current device's name ("NVIDIA H100 80GB HBM3") into buf; "unknown" if it cannot be read. */
void cuda_device_name(char *buf, size_t cap);
/* The context's scratch buffer (device memory owned by ctx, released by cuda_backend_free): op_linear with bf16
 * weights converts x to bf16 in it, CUDA_LINEAR_SCRATCH_BYTES at a time (longer inputs are done in row chunks).
 * It grows to what is asked on first use and never shrinks; cuda_scratch_reserve() grows it up front (outside
 * any forward: wan_model_to_device reserves CUDA_LINEAR_SCRATCH_BYTES when it uploads bf16 weights), so that the
 * denoising loop allocates nothing. Growing synchronises the context's stream (the old buffer may be in use). */
enum { CUDA_LINEAR_SCRATCH_BYTES = 64 << 20 };
void cuda_scratch_reserve(const struct exec_ctx *ctx, size_t bytes);
/* Bytes the context's scratch buffer holds now (0 before first use). */
size_t cuda_scratch_bytes(const struct exec_ctx *ctx);

/* ---- op twins (one .cu per CPU file; see kern_cpu.h) ---- */

/* kern_linear.cu. w may be F32 (one fp32 SGEMM, no TF32) or BF16 (x rounded to bf16 in the context's scratch,
 * to nearest even, then a bf16 x bf16 GEMM with fp32 accumulation and f32 output); x, y and b are f32. */
void kern_linear_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
                      const struct tensor *b);
/* kern_norm.cu */
void kern_layernorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                         const struct tensor *gamma, const struct tensor *beta, float eps);
void kern_rmsnorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                       const struct tensor *gamma, float eps);
/* Tensor-parallel RMSNorm: row sums of squares accumulated in double (the CPU twin's semantics), then the
 * norm given the all-reduced sums (bitwise the CPU twin's result for the same sums). */
void kern_row_sumsq_cuda(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x);
void kern_rmsnorm_given_sumsq_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                                   const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps);
void kern_norm_modulate_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                             const struct tensor *shift, const struct tensor *scale, int64_t group_size,
                             int64_t row_offset, float eps);
/* kern_elementwise.cu */
void kern_gated_add_cuda(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y,
                         const struct tensor *gate, int64_t group_size, int64_t row_offset);
void kern_add_row_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                       const struct tensor *row);
void kern_mul_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b);
void kern_silu_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_gelu_tanh_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_gelu_erf_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
/* Host <-> device copy on ctx's stream. An upload returns once the source may be reused when it is
 * pageable memory (the driver stages it); a download synchronises the stream, so dst is readable on
 * return (the CPU twin's semantics). */
void kern_transfer_cuda(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);
void kern_copy_cuda(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);
/* y = sum_i coef[i] x[i], accumulated per element in double (the CPU twin's semantics). */
void kern_lincomb_cuda(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                       const struct tensor *const *x);
/* Normal draws of core/rng.h: generated on the host (bit-identical to the CPU backend) and uploaded. */
void kern_randn_cuda(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first);
/* kern_rope.cu */
void kern_rope3d_cuda(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
                      int64_t token_offset, const struct tensor *freqs, const int split[3]);
/* kern_attention.cu */
void kern_attention_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                         const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                         const struct attn_causal *causal, bool accumulate);
/* kern_flash_attn.cu (issue 8): kern_attention_cuda's tensor-core path, taken when ctx->attention_bf16 is set and
 * kern_flash_attention_supported() says yes (head dim 64 or 128; out, q, k, v f32 rows with row strides a multiple
 * of 4 floats); otherwise kern_attention_cuda runs the f32 kernel. q, k, v and the softmax probabilities are
 * rounded to bf16, products accumulate in f32, the online softmax is f32. Same arguments and semantics. */
bool kern_flash_attention_supported(const struct tensor *out, const struct tensor *q, const struct tensor *k,
                                    const struct tensor *v, int n_heads);
void kern_flash_attention_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct attn_causal *causal, bool accumulate);
void kern_attention_biased_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q,
                                const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                                const struct tensor *bias, int64_t valid_keys);
/* Key blocks with carried state (ring attention). Head dim up to 256 like kern_attention_cuda; the finish
 * has no head-dim limit and gives bitwise the CPU twin's result for the same state. */
void kern_attention_block_cuda(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                               const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                               const struct attn_causal *causal, int64_t valid_keys, bool first_block);
void kern_attention_finish_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                                bool accumulate);
void kern_t5_relbias_cuda(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                          int max_distance, int64_t lq);
/* kern_layout.cu */
void kern_patchify_cuda(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                        const int patch[3]);
void kern_unpatchify_cuda(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                          const int patch[3]);
void kern_timestep_sinusoid_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t);
/* kern_vae.cu (the Wan VAE ops). conv_frames takes bf16 input frames as well as f32 ones (widened as read, the
 * CPU twin's semantics); everything else is f32. channel_rmsnorm without SiLU, upsample_nearest2x,
 * channel_affine, clamp and transpose give bitwise the CPU twin's results. */
void kern_conv_frames_cuda(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                           const struct tensor *w, const struct tensor *b, const struct conv_geom *g);
void kern_channel_rmsnorm_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                               const struct tensor *gamma, bool silu);
void kern_upsample_nearest2x_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void kern_channel_affine_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                              const struct tensor *sub, const struct tensor *mul, const struct tensor *add);
void kern_clamp_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi);
void kern_transpose_cuda(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);

RF_END_DECLS

/* ---- internal to the .cu files of kernels/cuda (C++ linkage) ---- */
#ifdef __CUDACC__
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/error.h"
#include "core/log.h"
#include "core/process.h"

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

/* Every twin starts with this: ctx was set up by cuda_backend_init (fatal otherwise). */
void cuda_check_ctx(const struct exec_ctx *ctx, const char *op);
/* Fatal unless t is f32 on the device: the twins compute in f32 until the bf16 kernels land. */
void cuda_require_f32(const char *op, const char *arg, const struct tensor *t);
/* At least `bytes` of the context's scratch (cuda_scratch_reserve); valid until the next call that grows it. */
void *cuda_scratch(const struct exec_ctx *ctx, size_t bytes);
/* The stream every op is queued on, and the cuBLAS handle bound to it. */
static inline cudaStream_t cuda_stream_of(const struct exec_ctx *ctx) { return (cudaStream_t)ctx->cuda_stream; }
cublasHandle_t cuda_cublas_of(const struct exec_ctx *ctx);
/* A host-side extent that must fit a kernel's int argument or a grid dimension (fatal otherwise). */
int cuda_to_int(const char *op, const char *what, int64_t v);

#endif /* __CUDACC__ */

#endif /* REELFARM_KERNELS_CUDA_KERN_CUDA_H */
