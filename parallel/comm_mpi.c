/* parallel/comm_mpi.c - the communicator interface over MPI (collectives on MPI_BYTE) with deadlines.
 *
 * Each collective (and each point-to-point message) starts nonblocking (MPI_Iallgather, MPI_Ialltoall,
 * MPI_Ibcast, MPI_Ibarrier, MPI_Isend, MPI_Irecv) and is waited for by parallel/watchdog.c, which ends
 * the job with one error line naming the communicator, the call and the ranks that did not arrive when
 * REELFARM_COMM_TIMEOUT passes (docs/failure.md).
 * Payloads over INT_MAX bytes are cut into pieces (MPI counts are int). Every MPI error is fatal
 * (MPI_CHECK -> die_at -> MPI_Abort on the whole job).
 */
#include "parallel/comm_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "parallel/watchdog.h"

struct comm_mpi {
    struct comm base;
    MPI_Comm mc;
    int64_t calls; /* collectives started on this communicator (for the error line) */
    int *members;  /* world rank of each rank of mc [size] (for the error line) */
};

static MPI_Comm handle(const struct comm *c) { return ((const struct comm_mpi *)c->impl)->mc; }

/* Largest piece per call: a multiple of 64 bytes below INT_MAX. */
enum { PIECE = INT_MAX / 64 * 64 };

/* Count the collective on c (and fire the test hook) before starting it. */
static struct par_wait_site enter(struct comm *c, const char *op) {
    struct comm_mpi *m = c->impl;
    par_watchdog_enter();
    return (struct par_wait_site){.comm = c->name, .op = op, .call = ++m->calls, .size = c->size,
                                  .members = m->members};
}

static void mpi_allgather(struct comm *c, const void *send, void *recv, size_t bytes) {
    const struct par_wait_site site = enter(c, "allgather");
    MPI_Request req;
    if (bytes <= (size_t)PIECE) {
        MPI_CHECK(MPI_Iallgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, handle(c), &req));
        par_watchdog_wait(&req, &site);
        return;
    }
    /* strided pieces: rank r's piece lands at r * bytes + off */
    for (size_t off = 0; off < bytes; off += PIECE) {
        const size_t n = bytes - off < (size_t)PIECE ? bytes - off : (size_t)PIECE;
        for (int r = 0; r < c->size; r++) { /* one broadcast per rank keeps it simple for huge payloads */
            char *dst = (char *)recv + (size_t)r * bytes + off;
            if (r == c->rank) memcpy(dst, (const char *)send + off, n);
            MPI_CHECK(MPI_Ibcast(dst, (int)n, MPI_BYTE, r, handle(c), &req));
            par_watchdog_wait(&req, &site);
        }
    }
}

static void mpi_alltoall(struct comm *c, const void *send, void *recv, size_t bytes) {
    CHECK(bytes <= (size_t)PIECE, "comm %s: all-to-all block of %zu bytes exceeds %d", c->name, bytes, PIECE);
    const struct par_wait_site site = enter(c, "alltoall");
    MPI_Request req;
    MPI_CHECK(MPI_Ialltoall(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, handle(c), &req));
    par_watchdog_wait(&req, &site);
}

static void mpi_bcast(struct comm *c, void *buf, size_t bytes, int root) {
    const struct par_wait_site site = enter(c, "bcast");
    for (size_t off = 0; off < bytes; off += PIECE) {
        const size_t n = bytes - off < (size_t)PIECE ? bytes - off : (size_t)PIECE;
        MPI_Request req;
        MPI_CHECK(MPI_Ibcast((char *)buf + off, (int)n, MPI_BYTE, root, handle(c), &req));
        par_watchdog_wait(&req, &site);
    }
}

static void mpi_barrier(struct comm *c) {
    const struct par_wait_site site = enter(c, "barrier");
    MPI_Request req;
    MPI_CHECK(MPI_Ibarrier(handle(c), &req));
    par_watchdog_wait(&req, &site);
}

/* Point to point in pieces of at most PIECE bytes (same tag: MPI keeps their order). */
static void mpi_send(struct comm *c, const void *buf, size_t bytes, int dest, int tag) {
    const struct par_wait_site site = enter(c, "send");
    for (size_t off = 0; off == 0 || off < bytes; off += PIECE) {
        const size_t n = bytes - off < (size_t)PIECE ? bytes - off : (size_t)PIECE;
        MPI_Request req;
        MPI_CHECK(MPI_Isend((const char *)buf + off, (int)n, MPI_BYTE, dest, tag, handle(c), &req));
        par_watchdog_wait(&req, &site);
    }
}

static void mpi_recv(struct comm *c, void *buf, size_t bytes, int src, int tag) {
    const struct par_wait_site site = enter(c, "recv");
    for (size_t off = 0; off == 0 || off < bytes; off += PIECE) {
        const size_t n = bytes - off < (size_t)PIECE ? bytes - off : (size_t)PIECE;
        MPI_Request req;
        MPI_Status st;
        MPI_CHECK(MPI_Irecv((char *)buf + off, (int)n, MPI_BYTE, src, tag, handle(c), &req));
        par_watchdog_wait_status(&req, &st, &site);
        int got = 0;
        MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &got));
        CHECK((size_t)got == n, "comm %s: received %d bytes from rank %d (tag %d), expected %zu", c->name, got, src,
              tag, n);
    }
}

static void mpi_destroy(struct comm *c) {
    struct comm_mpi *m = c->impl;
    MPI_Comm_free(&m->mc);
    free(m->members);
    free(m);
}

static const struct comm_ops mpi_ops = {
    .allgather = mpi_allgather,
    .alltoall = mpi_alltoall,
    .bcast = mpi_bcast,
    .barrier = mpi_barrier,
    .send = mpi_send,
    .recv = mpi_recv,
    .destroy = mpi_destroy,
};

struct comm *comm_mpi_create(MPI_Comm mc, const char *name) {
    struct comm_mpi *m = calloc(1, sizeof *m);
    CHECK(m, "out of memory");
    MPI_CHECK(MPI_Comm_dup(mc, &m->mc));
    MPI_CHECK(MPI_Comm_set_errhandler(m->mc, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_rank(m->mc, &m->base.rank));
    MPI_CHECK(MPI_Comm_size(m->mc, &m->base.size));
    snprintf(m->base.name, sizeof m->base.name, "%s", name);
    /* world ranks of the members, so a timeout names the ones this rank waits for */
    const int n = m->base.size;
    m->members = malloc((size_t)n * sizeof *m->members);
    int *local = malloc((size_t)n * sizeof *local);
    CHECK(m->members && local, "out of memory");
    for (int i = 0; i < n; i++) local[i] = i;
    MPI_Group group, world_group;
    MPI_CHECK(MPI_Comm_group(m->mc, &group));
    MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
    MPI_CHECK(MPI_Group_translate_ranks(group, n, local, world_group, m->members));
    MPI_CHECK(MPI_Group_free(&group));
    MPI_CHECK(MPI_Group_free(&world_group));
    free(local);
    m->base.ops = &mpi_ops;
    m->base.impl = m;
    return &m->base;
}

MPI_Comm comm_mpi_handle(const struct comm *c) { return handle(c); }
