/* kernels/ops.h - the op interface between model code and the compute backends.
 *
 * Model code calls op_<name>(ctx, ...) only; it never touches tensor data itself. Each op checks
 * dtype, device and shapes at the boundary (a mismatch is a programmer error and fatal) and then
 * dispatches on ctx->backend to kern_<name>_cpu() (kernels/cpu/, float32 reference) or
 * kern_<name>_cuda() (kernels/cuda/, bf16 storage with fp32 accumulation). Adding a backend means
 * adding twins below this line; model code does not change.
 *
 * Conventions (spec section 3, PyTorch order everywhere):
 *  - "rows" tensors are 2-D [M, N] with unit stride inside a row and any row stride >= N, so that
 *    views into fused buffers (q, k, v inside one [L, 3D] buffer, the six modulation rows inside
 *    [F, 6, D]) are passed without copies.
 *  - Linear weights are stored as in torch: w [N_out, K_in], y = x w^T + b.
 *  - Per-frame tables (diffusion forcing, spec 3.4): a table [G, D] is indexed for token row i by
 *    g = (i + row_offset) / group_size, where group_size is the number of tokens per latent frame
 *    (or the whole sequence length for the scalar-timestep path) and row_offset is the global
 *    index of local row 0 (non-zero only for sequence-parallel shards). Modulation is therefore
 *    never broadcast to a per-token tensor.
 *  - Unless stated, y may alias x (in-place) but must not partially overlap it.
 */
#ifndef REELFARM_KERNELS_OPS_H
#define REELFARM_KERNELS_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/tensor.h"
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum backend { BACKEND_CPU = 0, BACKEND_CUDA = 1 };

/* Largest attention head dimension the kernels accept (the DiT uses 128, the VAE's single-head middle
 * attention 384; the CUDA attention kernel has its own, smaller limit). */
enum { OP_HEAD_DIM_MAX = 512 };

struct exec_ctx {
    enum backend backend;
    int n_threads;     /* CPU: worker threads for our own loops (OpenMP); <= 0 means all cores */
    void *cuda_stream; /* CUDA: the cudaStream_t every op is queued on */
    void *cuda_state;  /* CUDA: handles and workspaces owned by kernels/cuda */
    /* CUDA: op_attention may use the bf16 tensor-core flash kernel (q, k, v and the softmax probabilities
     * rounded to bf16, f32 accumulation and softmax; kernels/cuda/kern_flash_attn.cu) where it supports the
     * shape, else the f32 kernel. false (the default, and exec_ctx_cpu's): f32 only. Set by the caller
     * (--dtype bf16); op_attention_block and op_attention_biased ignore it. */
    bool attention_bf16;
};

/* Block-causal self-attention (spec 3.9). Tokens are frame-major; a query in frame fq may attend
 * to a key in frame fk iff fk / frames_per_block <= fq / frames_per_block. The offsets are the
 * global token indices of local row 0 of q and of k (sequence-parallel shards). */
struct attn_causal {
    int64_t tokens_per_frame;
    int64_t frames_per_block;
    int64_t q_token_offset;
    int64_t k_token_offset;
};

const char *backend_name(enum backend b);
/* A CPU context using n_threads (<= 0: all cores). */
struct exec_ctx exec_ctx_cpu(int n_threads);
/* Worker threads the context will use (resolves n_threads <= 0). */
int exec_ctx_threads(const struct exec_ctx *ctx);
/* Whether this build has the CUDA backend compiled in. */
bool backend_cuda_compiled(void);

/* y[M, N] = x[M, K] w[N, K]^T (+ b[N]). y must not alias x. */
void op_linear(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *w,
               const struct tensor *b);

/* y[M, D] = (x - mean) / sqrt(var + eps) (* gamma[D]) (+ beta[D]); biased variance, as torch. */
void op_layernorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                  const struct tensor *beta, float eps);

/* y[M, D] = x * rsqrt(mean(x^2) + eps) (* gamma[D]). */
void op_rmsnorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *gamma,
                float eps);

/* Tensor-parallel RMSNorm (a rank holds some columns of each row): ss[M] = sum of squares of each row
 * of x[M, d] (accumulated in double), then y = x * rsqrt(ss_total / width + eps) (* gamma[d]) once the
 * partial sums have been all-reduced into ss_total. f32 on both backends (the CUDA twins have not yet run on a
 * GPU). */
void op_row_sumsq(const struct exec_ctx *ctx, struct tensor *ss, const struct tensor *x);
void op_rmsnorm_given_sumsq(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                            const struct tensor *ss, int64_t width, const struct tensor *gamma, float eps);

/* Affine-free LayerNorm then per-frame modulation (spec 3.6 step 1/5, 3.7):
 * y[i] = LN(x[i]) * (1 + scale[g]) + shift[g], with shift and scale [G, D] per-frame tables. */
void op_norm_modulate(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                      const struct tensor *shift, const struct tensor *scale, int64_t group_size, int64_t row_offset,
                      float eps);

/* x[i] += y[i] * gate[g] (gate [G, D] per-frame table), or x += y when gate is NULL. */
void op_gated_add(const struct exec_ctx *ctx, struct tensor *x, const struct tensor *y, const struct tensor *gate,
                  int64_t group_size, int64_t row_offset);

/* y = a * b elementwise (rows tensors of one shape; y may alias a or b). */
void op_mul(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *a, const struct tensor *b);

/* y[M, N] = x[M, N] + row[N] (row broadcast to every row). */
void op_add_row(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *row);

/* Elementwise activations on rows tensors (or contiguous tensors of any rank). */
void op_silu(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);
void op_gelu_tanh(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x); /* torch approximate="tanh" */
void op_gelu_erf(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);  /* torch exact GELU */

/* 3-axis rotary embedding in place (spec 3.3) on x [L, H * dh] (rows; heads packed in a row).
 * Pairs are adjacent elements (x[2j], x[2j+1]); pair j uses the frame position for
 * j < split[0], the row position for the next split[1] pairs and the column position for the
 * last split[2]. freqs [P, dh / 2, 2] holds (cos, sin) of position p times the pair's frequency
 * of its axis, for p < P. Token i (global index i + token_offset) of the grid (F, Hp, Wp) has
 * positions (t / (Hp Wp), (t / Wp) % Hp, t % Wp). */
void op_rope3d(const struct exec_ctx *ctx, struct tensor *x, int n_heads, const int64_t grid[3],
               int64_t token_offset, const struct tensor *freqs, const int split[3]);

/* Multi-head attention, O(L d) memory (streaming softmax): out[Lq, H dh] (=|+=) softmax(q k^T * scale) v
 * per head, q [Lq, H dh], k and v [Lk, H dh], all rows tensors. causal == NULL: full attention.
 * accumulate: add into out instead of overwriting (the I2V image branch, spec 3.6 step 4). */
void op_attention(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                  const struct tensor *v, int n_heads, float scale, const struct attn_causal *causal,
                  bool accumulate);

/* Attention over key blocks with carried state (ring attention: each rank's keys arrive in turn).
 * op_attention_block folds one block of keys into the streaming softmax of every query row of q;
 * op_attention_finish normalises. A state belongs to one q and n_heads (rows tensors):
 * the running max m and sum l of each head's scores per query row, and the unnormalised output o. */
struct attn_state {
    struct tensor m; /* [H, Lq] */
    struct tensor l; /* [H, Lq] */
    struct tensor o; /* [Lq, H dh] */
};

/* The key tile of the CPU attention kernel: op_attention_block over blocks that start at multiples of it,
 * taken in increasing key order, gives bitwise the op_attention result over all keys. */
enum { OP_ATTENTION_KEY_TILE = 256 };

/* Folds the keys k, v [Lb, H dh] (rows) into st. Only the first valid_keys rows (0 <= valid_keys <= Lb) are
 * keys; the rest is padding and never read. causal as op_attention, with k_token_offset the global index of
 * the block's first key. first_block initialises st; later blocks carry it on (same q, increasing keys).
 * f32 on both backends (the CUDA twins, kernels/cuda/kern_attention.cu, have not yet run on a GPU). */
void op_attention_block(const struct exec_ctx *ctx, struct attn_state *st, const struct tensor *q,
                        const struct tensor *k, const struct tensor *v, int n_heads, float scale,
                        const struct attn_causal *causal, int64_t valid_keys, bool first_block);

/* out[Lq, H dh] (=|+=) the attention output held by st; query rows that saw no key give 0. */
void op_attention_finish(const struct exec_ctx *ctx, struct tensor *out, const struct attn_state *st,
                         bool accumulate);

/* T5 relative position bucket (spec 8.3): bidirectional, num_buckets / 2 per direction, exact below
 * num_buckets / 4, logarithmic up to max_distance (the log term in float32, truncated toward zero). */
int t5_relative_bucket(int64_t rel, int num_buckets, int max_distance);

/* The per-head bias of the T5 relative position buckets over every relative position of a [lq, lk]
 * attention: out[h, r + lq - 1] = table[t5_relative_bucket(r), h] for r = key - query in [-(lq - 1), lk - 1].
 * out [H, lq + lk - 1], table [num_buckets, H]. */
void op_t5_relbias(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *table, int num_buckets,
                   int max_distance, int64_t lq);

/* Attention with an additive bias on relative positions and a key limit (umT5, spec 8.3):
 * s[i, j] = scale q_i . k_j + bias[h, j - i + Lq - 1] for keys j < valid_keys; later keys are masked
 * (padding). bias [H, Lq + Lk - 1] rows; q, k, v, out as op_attention. */
void op_attention_biased(const struct exec_ctx *ctx, struct tensor *out, const struct tensor *q, const struct tensor *k,
                         const struct tensor *v, int n_heads, float scale, const struct tensor *bias,
                         int64_t valid_keys);

/* Patch embedding input (spec 3.2): tokens[L, C pt ph pw] from latents [C, F, H, W]; token
 * (f, y, x) = row (f Hp + y) Wp + x, column ((c pt + kt) ph + ky) pw + kx. */
void op_patchify(const struct exec_ctx *ctx, struct tensor *tokens, const struct tensor *latents,
                 const int patch[3]);
/* Unpatchify (spec 3.7): latents [C, F, H, W] from tokens [L, pt ph pw C]; column
 * ((kt ph + ky) pw + kx) C + c (channel last, unlike patchify). */
void op_unpatchify(const struct exec_ctx *ctx, struct tensor *latents, const struct tensor *tokens,
                   const int patch[3]);

/* Sinusoidal timestep embedding (spec 3.4 step 1): y[T, Q] = [cos(t w_0..), sin(t w_0..)],
 * w_j = 10000^(-j / (Q/2)), computed in double precision; t [T] float timesteps. */
void op_timestep_sinusoid(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *t);

/* y = sum_i coef[i] * x[i] for up to OP_LINCOMB_MAX rows tensors of y's shape, accumulated per element in
 * double (scheduler updates and the CFG combine). y may alias one of the x[i]. */
enum { OP_LINCOMB_MAX = 6 };
void op_lincomb(const struct exec_ctx *ctx, struct tensor *y, int n, const double *coef,
                const struct tensor *const *x);

/* y (contiguous, any shape) = standard normal draws for elements [first, first + numel) of the Philox
 * stream (seed, stream) (core/rng.h). The result does not depend on the backend's thread count. */
void op_randn(const struct exec_ctx *ctx, struct tensor *y, uint64_t seed, uint64_t stream, int64_t first);

/* Host memory -> the context's device (dst on ctx's device, src on the CPU) and back; both
 * contiguous with the same shape. On the CPU backend these are copies. */
void op_upload(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);
void op_download(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);

/* dst = src for rows tensors of the same shape (different strides allowed). */
void op_copy(const struct exec_ctx *ctx, struct tensor *dst, const struct tensor *src);

/* ---- Wan VAE ops (spec 7.1): frames are channel-first [C, H, W]; channel ops see them as rows [C, H W] ---- */

/* Input frames one frame convolution may take (the causal 3-D convs use 3). */
enum { OP_CONV_FRAMES_MAX = 4 };

/* 2-D geometry of a frame convolution: kernel kh x kw, one stride for both axes, zero padding per side, and
 * optionally a nearest-neighbour x2 upsampling of the input first (the VAE's Resample up path), fused so the
 * upsampled frame is never stored. */
struct conv_geom {
    int kh, kw, stride;
    int pad_top, pad_left, pad_bottom, pad_right;
    int upsample2x; /* 0 or 1 */
};

/* One output frame y[Co, Ho, Wo] = b + sum_f conv2d(x[f] [Ci, H, W], w[f]) for n_frames input frames (a 3-D
 * convolution evaluated at one output time: x[f] is the input at time offset f of the kernel). x[f] == NULL is a
 * zero frame (causal front padding) and contributes nothing. w [n_frames, kh kw, Co, Ci] (tap-major: a torch
 * Conv3d weight [Co, Ci, kt, kh, kw] permuted) and b [Co] (or NULL); Ho = (H' + pt + pb - kh) / stride + 1,
 * Wo likewise, with H' = 2H when g->upsample2x, else H. The taps are accumulated in the order f, ky, kx onto
 * the bias. Contiguous tensors; y must not alias any x[f].
 * b may also be a whole frame [Co, Ho, Wo] (a partial sum from an earlier call: the taps are then accumulated
 * onto it element by element, exactly as if the earlier call's taps had been part of this one); it may alias y.
 * x[f] may be BF16 on either backend (stored state, widened to f32 as it is read; the arithmetic is f32). */
void op_conv_frames(const struct exec_ctx *ctx, struct tensor *y, int n_frames, const struct tensor *const *x,
                    const struct tensor *w, const struct tensor *b, const struct conv_geom *g);

/* RMS norm over channels, per position (the VAE's RMS_norm): y[c, p] = x[c, p] / max(||x[:, p]||_2, 1e-12)
 * * sqrt(C) * gamma[c], then SiLU if silu. x, y [C, P] rows (y may alias x); gamma [C]. */
void op_channel_rmsnorm(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x,
                        const struct tensor *gamma, bool silu);

/* Nearest-neighbour x2 upsampling of a frame: y[C, 2H, 2W] from x[C, H, W] (contiguous). */
void op_upsample_nearest2x(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);

/* Per-channel affine map on [C, P] rows: y[c, p] = (x[c, p] - sub[c]) * mul[c] + add[c]; any of sub, mul, add
 * may be NULL (0, 1, 0). y may alias x. */
void op_channel_affine(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, const struct tensor *sub,
                       const struct tensor *mul, const struct tensor *add);

/* y = min(max(x, lo), hi) (NaN stays NaN, as torch.clamp); rows or contiguous, y may alias x. */
void op_clamp(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x, float lo, float hi);

/* y[N, M] = x[M, N]^T (rows tensors; no aliasing). */
void op_transpose(const struct exec_ctx *ctx, struct tensor *y, const struct tensor *x);

RF_END_DECLS

#endif /* REELFARM_KERNELS_OPS_H */
