/* core/comm.h - the communicator interface the model computes with (spec 9; issue "distributed").
 *
 * A struct comm is a group of ranks with the handful of collectives sequence, tensor and CFG
 * parallelism need. core/ defines only the interface and the one-rank group (comm_self), so that
 * model/ can be written against it without knowing MPI or NCCL: parallel/comm_mpi.c implements it
 * over MPI (CPU backend), an NCCL implementation plugs in the same way (CUDA backend).
 *
 * Every collective is blocking and moves raw bytes; failures are fatal (die_at, which takes the
 * whole job down). Each call is counted per kind (calls, bytes this rank sent, seconds) for the
 * scaling benchmark.
 *
 * Determinism: comm_allreduce_sum_f32 is a reduce-scatter (an all-to-all of slices; each rank adds
 * the slice it owns in rank order 0..n-1) followed by an all-gather, so every rank gets the same bits,
 * they do not depend on the MPI library's reduction algorithm (MPI promises neither), and each rank
 * sends 2 (n - 1) / n of the buffer, like a ring all-reduce.
 */
#ifndef REELFARM_CORE_COMM_H
#define REELFARM_CORE_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "core/cdefs.h"

RF_BEGIN_DECLS

enum comm_kind { COMM_ALLGATHER, COMM_ALLTOALL, COMM_BCAST, COMM_ALLREDUCE, COMM_BARRIER, COMM_P2P, COMM_KINDS };

struct comm_stats {
    int64_t calls[COMM_KINDS];
    int64_t bytes[COMM_KINDS]; /* bytes this rank sent: its block (all-gather, broadcast root), its
                                * blocks to the others (all-to-all), both phases (all-reduce) */
    double seconds[COMM_KINDS];
};

struct comm;

struct comm_ops {
    /* recv[r * bytes ...] = send of rank r; send may not alias recv. */
    void (*allgather)(struct comm *c, const void *send, void *recv, size_t bytes);
    /* recv block r = block `rank` of rank r's send; blocks of `bytes` each. */
    void (*alltoall)(struct comm *c, const void *send, void *recv, size_t bytes);
    void (*bcast)(struct comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(struct comm *c);
    /* point to point (the render's lead and its encoder rank): exactly `bytes` with `tag` */
    void (*send)(struct comm *c, const void *buf, size_t bytes, int dest, int tag);
    void (*recv)(struct comm *c, void *buf, size_t bytes, int src, int tag);
    void (*destroy)(struct comm *c);
    /* optional: comm_allreduce_sum_f32 for buffers the default cannot add (device memory), with the same
     * result bits and counters; NULL: the default below (host buffers, alltoall + add + allgather) */
    void (*allreduce_sum_f32)(struct comm *c, float *buf, size_t n, float *scratch);
};

struct comm {
    const struct comm_ops *ops;
    int rank, size;
    char name[32]; /* "tp", "sp", "ulysses", "ring", "cfg", "world" */
    struct comm_stats stats;
    void *impl;
};

/* The one-rank group: every collective is a copy. Never NULL; do not destroy. */
struct comm *comm_self(void);
/* NULL-safe: a NULL comm behaves as comm_self(). */
static inline int comm_size(const struct comm *c) { return c ? c->size : 1; }
static inline int comm_rank(const struct comm *c) { return c ? c->rank : 0; }

void comm_allgather(struct comm *c, const void *send, void *recv, size_t bytes);
void comm_alltoall(struct comm *c, const void *send, void *recv, size_t bytes);
void comm_bcast(struct comm *c, void *buf, size_t bytes, int root);
void comm_barrier(struct comm *c);
/* Point to point; the one-rank group has no peer (a programmer error). */
void comm_send(struct comm *c, const void *buf, size_t bytes, int dest, int tag);
void comm_recv(struct comm *c, void *buf, size_t bytes, int src, int tag);
/* buf[n] = sum over ranks in rank order; scratch holds 2 (n + size) floats. Same bits on every rank. */
void comm_allreduce_sum_f32(struct comm *c, float *buf, size_t n, float *scratch);
void comm_destroy(struct comm **c);

/* Add c's counters into total (a layout's summary). */
void comm_stats_add(struct comm_stats *total, const struct comm *c);
const char *comm_kind_name(enum comm_kind k);

RF_END_DECLS

#endif /* REELFARM_CORE_COMM_H */
