/* model/wan_vae.h - the Wan 2.1 VAE (spec 2.4, 7): loading, streaming encode and decode.
 *
 * Loads the Diffusers `AutoencoderKLWan` directory (vae/config.json + safetensors) or a safetensors file
 * in the original Wan names (spec 2.4 mapping; the real constants stand in for the missing config).
 * Weights are converted once to float32 and repacked tap-major for op_conv_frames.
 *
 * Encoding and decoding are streams: frames go in one at a time and results come out through a
 * callback as soon as they exist. Every causal 3-D convolution keeps the last two frames of its input (the
 * head's: two partial sums of its much narrower output), every temporal resample its own small state, so the
 * streams compute exactly what the whole-sequence formulation of spec 7.4 computes (and therefore what the
 * reference's chunked 1 + 4 + 4 ... encode and one-latent-frame-at-a-time decode compute), with memory that
 * depends on the frame size only, never on the number of frames. wan_vae_stream_bytes() states that memory before anything is allocated.
 * The cross-frame state can be kept in bf16 (cache_dtype): about half the memory, no longer exact
 * (docs/numerics.md states the tolerance); the computation stays float32.
 *
 * Row bands (decoder only): after the middle block (whose attention is global per frame) every layer is
 * spatially local, so the rest of the decoder can run on horizontal bands of the frame, each widened by a halo of
 * rows that covers its receptive field, with its own causal state for those rows. A band's output rows are
 * bit-identical to the same rows of the whole-frame decode (f32 or bf16 cache alike), frame after frame, given
 * a convolution whose pixels do not depend on the frame's height (kernels/cpu/kern_conv.c). Two schedules:
 *  - frame-major (wan_vae_stream_open_bands): every band of a frame, then the next frame; frames still stream
 *    out whole. Saves the work frames only: the causal state of all bands is alive at once, and it is most of
 *    the memory (docs/benchmarks.md);
 *  - band-major (wan_vae_stream_open_band, wan_vae_decode_clip): one band through every frame of the clip,
 *    then the next band (the part before the middle block is recomputed per band). Only one band's state
 *    exists at a time, so memory falls with the band count; needs the clip's latents up front and delivers
 *    rows, not whole frames.
 *
 *   encoder: pixels [3, H, W] in [-1, 1], T = 1 + 4k frames -> 1 + k normalised latents [z, H/8, W/8]
 *            (the mean only; trailing (T - 1) mod 4 frames produce nothing, as upstream)
 *   decoder: normalised latents [z, h, w], F frames -> 1 + 4 (F - 1) pixel frames [3, 8h, 8w] in [-1, 1]
 * CPU float32 (the VAE ops have no CUDA kernels yet; a bf16 cache is stored bf16, computed in float32).
 */
#ifndef REELFARM_MODEL_WAN_VAE_H
#define REELFARM_MODEL_WAN_VAE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/tensor.h"
#include "kernels/ops.h"

struct st_set;

enum { VAE_STAGES_MAX = 6, VAE_Z_MAX = 64 };

struct wan_vae_config {
    int64_t base_dim;                    /* 96 */
    int64_t z_dim;                       /* 16 */
    int n_stages;                        /* len(dim_mult): 4 */
    int64_t dim_mult[VAE_STAGES_MAX];    /* 1, 2, 4, 4 */
    int num_res_blocks;                  /* 2 (the decoder has one more per stage) */
    bool temporal_down[VAE_STAGES_MAX];  /* per stage but the last: false, true, true */
    float latents_mean[VAE_Z_MAX];
    float latents_std[VAE_Z_MAX];
};

/* Set c to the released Wan 2.1 VAE (spec 7, 7.6). */
void wan_vae_default_config(struct wan_vae_config *c);
/* Spatial and temporal compression (8 and 4 for Wan 2.1). */
int wan_vae_spatial_factor(const struct wan_vae_config *c);
int wan_vae_temporal_factor(const struct wan_vae_config *c);

enum vae_layer_kind { VAE_CONV, VAE_RESBLOCK, VAE_ATTN, VAE_DOWN2D, VAE_DOWN3D, VAE_UP2D, VAE_UP3D, VAE_HEAD };

/* A convolution with its weight repacked to op_conv_frames' [kt, kh kw, Co, Ci]. */
struct vae_conv {
    struct tensor w, b;
    int kt, k; /* temporal and spatial kernel size */
};

struct vae_layer {
    enum vae_layer_kind kind;
    char name[80];       /* Diffusers module name ("decoder.up_blocks.1.resnets.0"), used for probes */
    int64_t cin, cout;   /* channels in and out */
    int level;           /* resolution level: layers of one level share buffers (see wan_vae.c) */
    struct tensor gamma1, gamma2;    /* RMS norm gains [C] (resblock: both; attention, head: gamma1) */
    struct vae_conv conv1, conv2;    /* resblock convs; attention qkv and proj; resample spatial and time convs;
                                      * plain conv and head: conv1 */
    struct vae_conv shortcut;        /* resblock 1x1x1 shortcut when cin != cout (w.data NULL otherwise) */
};

struct vae_net {
    struct vae_layer *layers;
    int n_layers;
    int n_levels;
};

struct wan_vae {
    struct wan_vae_config cfg;
    struct vae_net enc, dec;
    struct tensor latents_mean, latents_std, latents_inv_std; /* [z] */
    struct arena weight_arena;
    int64_t n_params;
    enum dtype stored_dtype;
    bool original_naming;
    char config_path[1100]; /* "" when the original layout supplied no config */
    char weights_path[1100];
};

/* Load DIR/vae/ (Diffusers) or, failing that, DIR/Wan2.1_VAE.safetensors (original names); DIR may also be
 * the vae/ directory itself or a .safetensors file. Recoverable errors name the file and tensor. */
int wan_vae_load(struct wan_vae **out, const char *path);
/* A VAE of config c with random weights (benchmarks; no files). */
int wan_vae_create_random(struct wan_vae **out, const struct wan_vae_config *c, uint64_t seed);
void wan_vae_free(struct wan_vae **v);
/* True for the file names the original layout's VAE has next to the DiT (the DiT loader skips them). */
bool wan_vae_is_original_file_name(const char *name);

/* Diffusers tensor names and shapes of a VAE with config c, in a fixed order (the tiny model writer uses
 * them). Returns the count; fills up to cap entries. */
struct vae_tensor_desc {
    char name[128];
    char original_name[128];
    int ndim;
    int64_t shape[5];
};
size_t wan_vae_tensor_list(const struct wan_vae_config *c, struct vae_tensor_desc *out, size_t cap);

/* ---- streams ---- */

/* Called with every produced frame: index counts from 0; frame is [C, H, W] on the context's device. */
typedef int (*vae_frame_fn)(void *user, int64_t index, const struct tensor *frame);
/* Band-major decoding: rows [row0, row0 + rows->shape[1]) of output frame index, rows [C, r, W]. */
typedef int (*vae_rows_fn)(void *user, int64_t index, int64_t row0, const struct tensor *rows);
/* Optional: called after every layer with its output frame (tests compare them with the reference). */
typedef void (*vae_probe_fn)(void *user, const char *layer, int64_t index, const struct tensor *frame);

struct vae_stream;

/* Bytes a stream for frames of h x w pixels (encoder input / decoder output) needs: caches, buffers and
 * attention scratch, excluding the per-thread convolution bands (kernels/cpu/kern_conv.c). 0 for an invalid
 * size or cache_dtype. */
size_t wan_vae_stream_bytes(const struct wan_vae *v, bool decoder, int64_t height, int64_t width,
                            enum dtype cache_dtype);
/* height, width: the pixel frame size (multiples of the spatial factor). cache_dtype: how the state carried
 * from frame to frame (the causal convs' last two input frames, downsample3d's open window) is stored:
 * DTYPE_F32 (exact: bit-identical to the whole-sequence float32 computation) or DTYPE_BF16 (rounded to nearest
 * even when stored, widened when read, as upstream's bf16-autocast decode keeps it; about half the memory). */
int wan_vae_stream_open(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx, bool decoder,
                        int64_t height, int64_t width, enum dtype cache_dtype, vae_frame_fn sink, void *user);
void wan_vae_stream_set_probe(struct vae_stream *s, vae_probe_fn probe, void *user);
/* Push one frame: encoder [3, H, W] pixels; decoder [z, h, w] normalised latents. Returns the sink's first
 * negative return, else 0. */
int wan_vae_stream_push(struct vae_stream *s, const struct tensor *frame);
/* Frames the sink received so far. */
int64_t wan_vae_stream_produced(const struct vae_stream *s);
void wan_vae_stream_close(struct vae_stream **s);

/* ---- decoder row bands ---- */

/* Bands a decode of h x w pixels may use: 1 ... latent rows (each band owns at least one latent row). */
int wan_vae_bands_max(const struct wan_vae *v, int64_t height);
/* Bytes of a decoder stream cut into bands (wan_vae_stream_bytes counts the same things): band -1 for the
 * frame-major stream (every band's state), b in [0, bands) for band b alone (band-major). 0 when invalid.
 * bands = 1, band = -1 is wan_vae_stream_bytes(v, true, ...). */
size_t wan_vae_decode_bytes(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype, int bands,
                            int band);
/* The fewest bands whose stream fits budget bytes (band-major: the largest band's stream; frame-major: the
 * whole stream); 0 when no count fits (band-major's floor, what every band keeps whole, is about 1 GiB at 720P
 * f32, approached only with dozens of bands and several times the arithmetic). */
int wan_vae_decode_bands_for(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype,
                             bool band_major, size_t budget);
/* The arithmetic bands add after the middle block, as a fraction of that part's work without bands (0 for one
 * band): the halo rows each band computes beyond its own, weighted by every layer's multiply-adds, in the
 * steady state (4 video frames per latent frame). Band-major also runs the part before the middle block once
 * per band; *pre_fraction (optional) receives that part's share of the unbanded decode's work. */
double wan_vae_decode_halo_cost(const struct wan_vae *v, int64_t height, int64_t width, int bands,
                                double *pre_fraction);
/* A frame-major decoder stream in bands (bands = 1: wan_vae_stream_open's decoder). Output as that of
 * wan_vae_stream_open: whole frames through sink, bit-identical to the unbanded stream. */
int wan_vae_stream_open_bands(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx,
                              int64_t height, int64_t width, enum dtype cache_dtype, int bands, vae_frame_fn sink,
                              void *user);
/* A decoder stream that computes band b of bands only: the rows of every output frame that band b owns go to
 * sink (bit-identical to those rows of the unbanded decode). Push every latent frame of the clip through one
 * such stream per band. */
int wan_vae_stream_open_band(struct vae_stream **out, const struct wan_vae *v, const struct exec_ctx *ctx,
                             int64_t height, int64_t width, enum dtype cache_dtype, int bands, int band,
                             vae_rows_fn sink, void *user);
/* Band-major decode of a whole clip: latents [z, F, h, w] (normalised), one band stream after the other;
 * every output row reaches sink once (frame index, first row, rows). */
int wan_vae_decode_clip(const struct wan_vae *v, const struct exec_ctx *ctx, const struct tensor *latents,
                        enum dtype cache_dtype, int bands, vae_rows_fn sink, void *user);

/* Default budget for a band-major decode's stream (the fewest bands whose largest band stream fits): 720P
 * float32 then takes 6 bands (2.3 GiB instead of 9.6 GiB, about a third more arithmetic; docs/benchmarks.md). */
#define WAN_VAE_BAND_BUDGET_DEFAULT ((size_t)5 << 29) /* 2.5 GiB */

/* The band count of a band-major decode: bands > 0 is checked against wan_vae_bands_max; bands <= 0 asks for the
 * fewest bands whose largest band stream fits memory bytes (0: WAN_VAE_BAND_BUDGET_DEFAULT). The error names
 * --vae-bands or --vae-memory and what would fit. */
int wan_vae_decode_choose_bands(const struct wan_vae *v, int64_t height, int64_t width, enum dtype cache_dtype,
                                int bands, size_t memory, int *out);

/* Output frame counts: decode F latents -> 1 + 4 (F - 1) frames; encode T frames -> 1 + (T - 1) / 4 latents. */
int64_t wan_vae_decoded_frames(const struct wan_vae_config *c, int64_t latent_frames);
int64_t wan_vae_encoded_frames(const struct wan_vae_config *c, int64_t pixel_frames);

#endif /* REELFARM_MODEL_WAN_VAE_H */
