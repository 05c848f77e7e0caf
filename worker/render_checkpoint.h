/* worker/render_checkpoint.h - the render's checkpoint file and its append-only spools (issue 6, spec 6.3).
 *
 * A checkpoint is one HDF5 file, rewritten whole and atomically (temp file, fsync, rename) every K rows
 * and at each chunk end. It names a position - chunk c and the rows of c already run - and holds what is
 * needed to continue from it bit-identically:
 *   - the settings as canonical JSON (a film file: resume re-reads it), hashes of the input files and a
 *     fingerprint of the model files, so a resume with other settings, inputs or weights is refused;
 *   - at row 0 of a chunk: the chunk's prefix latents (the re-encoded overlap or the carried latents);
 *   - after row r > 0: the whole sampler state (model/df_sampler.h: window latents, per-frame solver
 *     counters and buffers); the random numbers need no state (core/rng.h: addressed by seed, chunk, row);
 *   - how many frames and film latents the two spools held at that point, with running hashes of them.
 * The spools sit next to the checkpoint and only grow: <ckpt>.frames (RGB24 [T, H, W, 3], the finished
 * frames, so the encoded output can be rewritten identically on resume) and <ckpt>.latents (float32
 * frames [16, h, w] of the film's latent sequence). A resume truncates them to the recorded lengths after
 * checking the hashes. A checksum over the state arrays detects a damaged checkpoint.
 *
 * Under MPI the ranks write a checkpoint together (render_ckpt_write_collective, parallel HDF5): each
 * rank stores its share of the rows of the large replicated arrays in one collective transfer. The file
 * holds what render_ckpt_write's holds (same datasets, attributes and checksum), so a checkpoint written
 * on N ranks resumes on any M.
 */
#ifndef REELFARM_WORKER_RENDER_CHECKPOINT_H
#define REELFARM_WORKER_RENDER_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/df_sampler.h"

struct comm;

struct render_ckpt {
    char *settings_json;     /* canonical film JSON of the resolved settings */
    char *inputs_json;       /* {"image": "<hash>", ...} of every input file */
    char *noise_path;        /* --noise ("" when none): an input, so a resume uses it again */
    char *latents_out;       /* --save-latents ("" when none) */
    /* pixel overlap mode: the film's last frames from before `chunk` that its successor's prefix needs
     * (when a chunk adds fewer frames than the overlap), [ring_frames, 3, H, W] in [-1, 1] */
    int64_t ring_frames, ring_height, ring_width;
    float *ring;
    char fingerprint[40];    /* of the model files */
    int64_t n_chunks;
    int64_t chunk;           /* current chunk; n_chunks: every chunk is done, only the output remains */
    int64_t next_row;        /* rows of `chunk` already run */
    int64_t frames_done, latents_done;
    uint64_t frames_hash, latents_hash;
    /* next_row == 0: the chunk's prefix latents [16, prefix_frames, h, w] (NULL when none) */
    int64_t prefix_frames;
    float *prefix;
    /* next_row > 0: the sampler state */
    struct df_run_state_shape shape;
    struct df_run_state state;
};

int render_ckpt_write(const char *path, const struct render_ckpt *c);
/* The same file written by every rank of world together (collective; world from comm_mpi_create). Every
 * rank passes the same metadata: position, counters, hashes, strings, fingerprint and every shape
 * (checked: if a rank differs, every rank gets ERR_INVALID_ARG before anything is written). The sampler
 * state and the prefix must hold the same values on every rank: each rank writes its contiguous share of
 * their outermost rows. The ring and the small datasets are written from rank 0's copy (the others may
 * pass ring = NULL with the same ring_frames/ring_height/ring_width); the state checksum is rank 0's.
 * Written to a temp file that rank 0 renames into place (fsync of file and directory); no rank returns
 * before that, and every rank returns the same code. A failure leaves nothing at path and no temp file.
 * world of size 1 (or NULL): render_ckpt_write. */
int render_ckpt_write_collective(struct comm *world, const char *path, const struct render_ckpt *c);
/* Reads and checks a checkpoint (format, version, checksum); errors name the file and what is wrong. */
int render_ckpt_read(const char *path, struct render_ckpt *c);
void render_ckpt_free(struct render_ckpt *c);
/* Allocate c->state for a shape. */
int render_ckpt_alloc_state(struct render_ckpt *c, const struct df_run_state_shape *sh);

/* FNV-1a 64 over bytes, continuing from h (start with RENDER_HASH_INIT). */
#define RENDER_HASH_INIT UINT64_C(0xcbf29ce484222325)
uint64_t render_hash(uint64_t h, const void *data, size_t n);
/* Hash of a whole file's contents, as 16 hex digits. */
int render_hash_file(const char *path, char out[17]);
/* Fingerprint of a model directory: relative name, size and the first and last MiB of every .json,
 * .safetensors and .model file under it (sorted), as 16 hex digits. Cheap for a 60 GB model. */
int render_model_fingerprint(const char *dir, char out[17]);

/* ---- spools ---- */
struct render_spool {
    int fd;
    char path[1100];
    size_t item_bytes;
    int64_t items;
    uint64_t hash;
};
/* Create (truncating) or, with resume, open and cut to `items` after checking their hash. */
int render_spool_open(struct render_spool *s, const char *path, size_t item_bytes, bool resume, int64_t items,
                      uint64_t hash);
int render_spool_append(struct render_spool *s, const void *item);
int render_spool_read(const struct render_spool *s, int64_t index, void *item);
/* fdatasync, so a checkpoint never counts frames that are not on disk. */
int render_spool_sync(struct render_spool *s);
void render_spool_close(struct render_spool *s, bool remove);

#endif /* REELFARM_WORKER_RENDER_CHECKPOINT_H */
