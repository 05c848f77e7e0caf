/* parallel/mesh.h - the process mesh world = cfg x sp x tp and its sub-communicators (spec 9).
 *
 * Layout: cfg (1 or 2: conditional and unconditional passes on the two halves of the ranks), sp
 * (sequence parallel degree = ulysses x ring: Ulysses all-to-all over heads inside a group of
 * `ulysses` ranks, ring passes of key/value blocks between `ring` such groups, so sp need not
 * divide the head count), tp (tensor parallel: heads and FFN columns split).
 *
 * Rank numbering, innermost first: tp, then ulysses, then ring, then cfg:
 *   world = ((cfg_idx * ring + ring_idx) * ulysses + ulysses_idx) * tp + tp_idx
 * so tensor-parallel partners (the most traffic) are neighbours, as are Ulysses partners.
 */
#ifndef REELFARM_PARALLEL_MESH_H
#define REELFARM_PARALLEL_MESH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/comm.h"

/* What the user asked for; 0 = choose. */
struct par_request {
    int sp, tp, ulysses;
    int cfg; /* 0 auto, 1 off, 2 on (--cfg-parallel) */
};

struct par_layout {
    int cfg, sp, ulysses, ring, tp;
};

/* The model facts a layout must respect. */
struct par_model_facts {
    int heads;
    int64_t ffn_dim;
    bool guidance; /* guidance > 1: two passes per step */
};

/* Choose and validate a layout for `world` compute ranks. Errors (ERR_INVALID_ARG) name the flag
 * and what would work, e.g. "--tp 5: does not divide the 12 attention heads (1, 2, 3, 4, 6, 12)". */
int par_layout_choose(struct par_layout *out, int world, const struct par_request *req,
                      const struct par_model_facts *facts);
/* "cfg 2 x sp 2 (ulysses 2 x ring 1) x tp 1" */
const char *par_layout_describe(const struct par_layout *l, char *buf, size_t cap);

struct par_mesh {
    struct par_layout layout;
    int world_rank, world_size;
    bool member;   /* this rank computes (world ranks [0, cfg sp tp)); ranks after them are helpers (the
                    * render's encoder rank), in no group but world */
    int cfg_idx, sp_idx, ulysses_idx, ring_idx, tp_idx;
    struct comm *tp, *sp, *ulysses, *ring, *cfg; /* comm_self() where the degree is 1 */
    struct comm *compute;                        /* the computing ranks: shared inputs, stop requests */
    struct comm *world;                          /* every rank (point to point with helper ranks) */
};

/* Split MPI_COMM_WORLD (or stand alone when MPI is not active and the layout is 1x1x1). The job may
 * have more ranks than the layout: the extra ones (the last world ranks) are not members. */
int par_mesh_create(struct par_mesh *m, const struct par_layout *l);
void par_mesh_destroy(struct par_mesh *m);
/* Sum of every sub-communicator's counters. */
void par_mesh_stats(const struct par_mesh *m, struct comm_stats *total);

#endif /* REELFARM_PARALLEL_MESH_H */
