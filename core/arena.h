/* core/arena.h - bump allocators by lifetime (weights, activations, scratch).
 *
 * One allocation up front, 256-byte aligned pieces handed out by moving a pointer, reset as a
 * whole. An arena created with arena_init_measure() has no memory: it only adds up what would
 * be allocated (alloc returns NULL), so a plan pass can size the real arena with the same code
 * that later carves it. Running out of space is a fatal error that names the arena and the
 * request; nothing inside the denoising loop calls malloc.
 */
#ifndef REELFARM_CORE_ARENA_H
#define REELFARM_CORE_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum { ARENA_ALIGN = 256 };

struct arena {
    const char *name;
    char *base;  /* NULL for a measuring arena */
    size_t size; /* capacity in bytes */
    size_t used;
    size_t peak;
    bool measuring;
};

/* Allocate size bytes (zeroed). Returns 0 or ERR_NOMEM (with a message). */
int arena_init(struct arena *a, const char *name, size_t size);
void arena_init_measure(struct arena *a, const char *name);
void arena_free(struct arena *a);

/* 256-byte aligned block of bytes; fatal if the arena is full. NULL (and counted) when measuring. */
void *arena_alloc(struct arena *a, size_t bytes);
float *arena_alloc_f32(struct arena *a, size_t count);

size_t arena_mark(const struct arena *a);
void arena_reset_to(struct arena *a, size_t mark);
void arena_reset(struct arena *a);

/* Round up to the arena alignment. */
static inline size_t arena_round(size_t bytes) { return (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

RF_END_DECLS

#endif /* REELFARM_CORE_ARENA_H */
