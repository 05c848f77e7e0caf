/* core/comm.c - the communicator front end (counting, ordered all-reduce) and the one-rank group. */
#include "core/comm.h"

#include <string.h>

#include "core/error.h"
#include "core/timer.h"

static void self_allgather(struct comm *c, const void *send, void *recv, size_t bytes) {
    (void)c;
    memcpy(recv, send, bytes);
}
static void self_bcast(struct comm *c, void *buf, size_t bytes, int root) {
    (void)c, (void)buf, (void)bytes, (void)root;
}
static void self_barrier(struct comm *c) { (void)c; }
static void self_send(struct comm *c, const void *buf, size_t bytes, int dest, int tag) {
    (void)buf, (void)bytes, (void)tag;
    FATAL("comm %s: send to rank %d in a one-rank group", c->name, dest);
}
static void self_recv(struct comm *c, void *buf, size_t bytes, int src, int tag) {
    (void)buf, (void)bytes, (void)tag;
    FATAL("comm %s: receive from rank %d in a one-rank group", c->name, src);
}
static void self_destroy(struct comm *c) { (void)c; }

static const struct comm_ops self_ops = {
    .allgather = self_allgather,
    .alltoall = self_allgather, /* one block: a copy */
    .bcast = self_bcast,
    .barrier = self_barrier,
    .send = self_send,
    .recv = self_recv,
    .destroy = self_destroy,
};

struct comm *comm_self(void) {
    static struct comm self = {.ops = &self_ops, .rank = 0, .size = 1, .name = "self"};
    return &self;
}

static struct comm *or_self(struct comm *c) { return c ? c : comm_self(); }

static void count(struct comm *c, enum comm_kind k, size_t bytes, double t0) {
    c->stats.calls[k]++;
    c->stats.bytes[k] += (int64_t)bytes;
    c->stats.seconds[k] += time_now() - t0;
}

void comm_allgather(struct comm *c, const void *send, void *recv, size_t bytes) {
    c = or_self(c);
    const double t0 = time_now();
    c->ops->allgather(c, send, recv, bytes);
    count(c, COMM_ALLGATHER, c->size > 1 ? bytes : 0, t0);
}

void comm_alltoall(struct comm *c, const void *send, void *recv, size_t bytes) {
    c = or_self(c);
    const double t0 = time_now();
    c->ops->alltoall(c, send, recv, bytes);
    count(c, COMM_ALLTOALL, c->size > 1 ? bytes * (size_t)(c->size - 1) : 0, t0);
}

void comm_bcast(struct comm *c, void *buf, size_t bytes, int root) {
    c = or_self(c);
    CHECK(root >= 0 && root < c->size, "comm %s: broadcast root %d outside 0..%d", c->name, root, c->size - 1);
    const double t0 = time_now();
    c->ops->bcast(c, buf, bytes, root);
    count(c, COMM_BCAST, c->size > 1 && c->rank == root ? bytes : 0, t0);
}

void comm_barrier(struct comm *c) {
    c = or_self(c);
    const double t0 = time_now();
    c->ops->barrier(c);
    count(c, COMM_BARRIER, 0, t0);
}

void comm_send(struct comm *c, const void *buf, size_t bytes, int dest, int tag) {
    c = or_self(c);
    const double t0 = time_now();
    c->ops->send(c, buf, bytes, dest, tag);
    count(c, COMM_P2P, bytes, t0);
}

void comm_recv(struct comm *c, void *buf, size_t bytes, int src, int tag) {
    c = or_self(c);
    const double t0 = time_now();
    c->ops->recv(c, buf, bytes, src, tag);
    count(c, COMM_P2P, 0, t0);
}

void comm_allreduce_sum_f32(struct comm *c, float *buf, size_t n, float *scratch) {
    c = or_self(c);
    if (c->size == 1) return;
    if (c->ops->allreduce_sum_f32) { /* e.g. NCCL on device buffers; counts itself */
        c->ops->allreduce_sum_f32(c, buf, n, scratch);
        return;
    }
    const double t0 = time_now();
    /* reduce-scatter (all-to-all of slices, each rank sums its slice in rank order), then all-gather */
    const size_t p = (size_t)c->size, m = (n + p - 1) / p;
    float *slices = scratch, *got = scratch + p * m;
    memcpy(slices, buf, n * sizeof(float));
    memset(slices + n, 0, (p * m - n) * sizeof(float));
    c->ops->alltoall(c, slices, got, m * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        float s = got[i];
        for (size_t r = 1; r < p; r++) s += got[r * m + i];
        slices[i] = s;
    }
    c->ops->allgather(c, slices, got, m * sizeof(float));
    memcpy(buf, got, n * sizeof(float));
    count(c, COMM_ALLREDUCE, 2 * (p - 1) * m * sizeof(float), t0);
}

void comm_destroy(struct comm **cp) {
    struct comm *c = cp ? *cp : NULL;
    if (!c || c == comm_self()) return;
    c->ops->destroy(c);
    *cp = NULL;
}

void comm_stats_add(struct comm_stats *total, const struct comm *c) {
    if (!c) return;
    for (int k = 0; k < COMM_KINDS; k++) {
        total->calls[k] += c->stats.calls[k];
        total->bytes[k] += c->stats.bytes[k];
        total->seconds[k] += c->stats.seconds[k];
    }
}

const char *comm_kind_name(enum comm_kind k) {
    static const char *const names[COMM_KINDS] = {"allgather", "alltoall", "bcast", "allreduce", "barrier", "p2p"};
    return k >= 0 && k < COMM_KINDS ? names[k] : "?";
}
