/* core/arena.c - bump allocator. */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int arena_init(struct arena *a, const char *name, size_t size) {
    memset(a, 0, sizeof *a);
    a->name = name;
    size = arena_round(size ? size : ARENA_ALIGN);
    void *p = NULL;
    if (posix_memalign(&p, ARENA_ALIGN, size) != 0 || !p)
        return err_set(ERR_NOMEM, "cannot allocate %.1f MiB for the %s arena", (double)size / (1 << 20), name);
    memset(p, 0, size);
    a->base = p;
    a->size = size;
    return ERR_OK;
}

void arena_init_measure(struct arena *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->measuring = true;
    a->size = (size_t)-1;
}

void arena_free(struct arena *a) {
    free(a->base);
    a->base = NULL;
    a->size = a->used = 0;
}

void *arena_alloc(struct arena *a, size_t bytes) {
    size_t need = arena_round(bytes);
    if (!a->measuring && need > a->size - a->used)
        FATAL("arena '%s' is full: %zu bytes requested, %zu of %zu used", a->name, bytes, a->used, a->size);
    void *p = a->measuring ? NULL : a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *arena_alloc_f32(struct arena *a, size_t count) { return arena_alloc(a, count * sizeof(float)); }

size_t arena_mark(const struct arena *a) { return a->used; }

void arena_reset_to(struct arena *a, size_t mark) {
    CHECK(mark <= a->used, "arena '%s': reset to %zu beyond used %zu", a->name, mark, a->used);
    a->used = mark;
}

void arena_reset(struct arena *a) { a->used = 0; }
