/* parallel/comm_nccl.c - the communicator interface over NCCL (device buffers) with deadlines.
 *
 * What it does: every op of struct comm_ops, and the deterministic float all-reduce, on a nonblocking
 * NCCL communicator (see comm_nccl.h for the mapping of each op). One call runs as:
 *   op_begin  count the collective (par_watchdog_enter: the REELFARM_TEST_COMM_FAULT hook), select the
 *             communicator's device, record ev_start on the stream (behind the work already queued);
 *   queue     NCCL calls; one that answers ncclInProgress (the communicator is nonblocking, so NCCL may
 *             still be connecting to peers) is waited for by polling ncclCommGetAsyncError before anything
 *             else is queued, under the watchdog's deadline;
 *   op_end    record ev_done and wait for it under the deadline, polling ncclCommGetAsyncError; while
 *             ev_start is pending the operation is reported as "<op> (stream busy)" (earlier work of this
 *             rank has not finished), and the deadline starts again once it completes, so the collective
 *             itself always gets the whole REELFARM_COMM_TIMEOUT.
 * A timeout goes through parallel/watchdog.c (reports from the other ranks, one FATAL line naming the
 * ranks that did not arrive); an NCCL or CUDA error ends the job with a FATAL line naming the rank, the
 * communicator, the operation and NCCL's last error. Either way die_at() runs the abort hook registered
 * here (ncclCommAbort on every live NCCL communicator of the process, so no kernel keeps the GPU spinning)
 * and then par_runtime's MPI_Abort.
 * What it does not do: no CUDA graphs, no overlap of collectives with compute (each call returns when its
 * work has finished), no user buffer registration. It has not yet run on a GPU.
 * Upstream: xDiT's NCCL process groups under SkyReels-V2's USP (torch.distributed all_to_all / all_gather).
 */
#include "parallel/comm_nccl.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/process.h"
#include "core/timer.h"
#include "parallel/comm_nccl_reduce.h"
#include "parallel/watchdog.h"

/* Communicator init and finalize do local work (topology search, connections, proxies) besides waiting
 * for peers: their deadline is at least this, whatever REELFARM_COMM_TIMEOUT says. */
static const double SETUP_MIN_WAIT_S = 60.0;

enum { P2P_MAGIC = 0x52464e43 }; /* "RFNC" */

/* What travels before every point-to-point payload: NCCL has neither tags nor received counts. */
struct p2p_header {
    uint64_t bytes;
    int32_t tag;
    uint32_t magic;
};

/* Small device buffers of one communicator (one cudaMalloc). */
struct dev_small {
    float word;               /* the barrier's all-reduce (always 0) */
    float pad[15];            /* the headers start 64 bytes in */
    struct p2p_header hdr[2]; /* [0] outgoing, [1] incoming */
};

struct comm_nccl {
    struct comm base;
    ncclComm_t nc; /* NULL once destroyed or aborted */
    int device;
    cudaStream_t stream;
    cudaEvent_t ev_start, ev_done; /* around the queued work of one operation */
    int64_t calls;                 /* operations started (for the error line; init and finalize are call 0) */
    int *members;                  /* world rank of each rank [size] (for the error line) */
    char label[48];                /* "<name> (nccl)": the communicator in error lines */
    struct dev_small *dev;         /* device memory */
    struct p2p_header *host_hdr;   /* pinned host [2]: [0] outgoing, [1] incoming */
    struct comm_nccl *next;        /* live list, walked by the abort hook */
};

/* One operation in progress. */
struct nccl_op {
    struct comm_nccl *m;
    const char *name; /* "allgather", "init", ... */
    char what[48];    /* site.op: name, or "name (stream busy)" while earlier work runs */
    struct par_wait_site site;
    bool started;    /* ev_start has completed */
    int prev_device; /* restored by op_end (-1: unchanged) */
};

static const struct comm_ops nccl_ops;

/* ---- live communicators and the abort hook ---- */

static struct comm_nccl *live;
static bool hook_registered;

/* die_at() on this rank: abort every live NCCL communicator (its kernels may be spinning, waiting for a
 * peer that will never come) before par_runtime's hook calls MPI_Abort. */
static void nccl_abort_hook(int exit_code, void *user) {
    (void)exit_code, (void)user;
    for (struct comm_nccl *m = live; m; m = m->next) {
        ncclComm_t nc = m->nc;
        if (!nc) continue;
        m->nc = NULL;
        fprintf(stderr, "reelfarm: comm %s: ncclCommAbort\n", m->label);
        (void)ncclCommAbort(nc); /* the process ends whatever it answers */
    }
}

static void live_add(struct comm_nccl *m) {
    m->next = live;
    live = m;
    if (!hook_registered) { /* registered after par_init's MPI_Abort hook, so it runs first */
        proc_add_abort_hook(nccl_abort_hook, NULL);
        hook_registered = true;
    }
}

static void live_remove(struct comm_nccl *m) {
    for (struct comm_nccl **p = &live; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    if (!live && hook_registered) {
        proc_remove_abort_hook(nccl_abort_hook, NULL);
        hook_registered = false;
    }
}

/* ---- failures ---- */

/* End the job with one line naming the communicator and the operation (die_at adds rank, host, GPU). */
RF_NORETURN static void op_die(const struct nccl_op *o, const char *file, int line, const char *func, const char *stmt,
                               const char *fmt, ...) __attribute__((format(printf, 6, 7)));

RF_NORETURN static void op_die(const struct nccl_op *o, const char *file, int line, const char *func, const char *stmt,
                               const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const struct comm_nccl *m = o->m;
    const char *last = m->nc ? ncclGetLastError(m->nc) : NULL;
    die_at(file, line, func, stmt,
           "comm %s: %s (call %lld, %d ranks, device %d): %s%s%s; the job ends (ncclCommAbort on this rank's NCCL "
           "communicators, then MPI_Abort)",
           m->label, o->name, (long long)o->site.call, m->base.size, m->device, detail, last && *last ? "; NCCL: " : "",
           last && *last ? last : "");
}

static void wait_state(struct nccl_op *o);

/* An NCCL call's result: ncclInProgress is waited for (wait: a call that stands alone or ends a group) or
 * accepted (a call inside a group); anything else is fatal. */
static void nccl_result_at(struct nccl_op *o, ncclResult_t r, bool wait, const char *stmt, const char *file, int line,
                           const char *func) {
    if (r == ncclSuccess) return;
    if (r == ncclInProgress) {
        if (wait) wait_state(o);
        return;
    }
    op_die(o, file, line, func, stmt, "%s (%d)", ncclGetErrorString(r), (int)r);
}

/* A standalone NCCL call or the ncclGroupEnd of a group: on return its work is queued on the stream. */
#define NCCL_OP(o, stmt)                                                                                               \
    do {                                                                                                               \
        ncclResult_t rf_nccl_op_r_ = (stmt);                                                                           \
        if (rf_nccl_op_r_ != ncclSuccess)                                                                              \
            nccl_result_at((o), rf_nccl_op_r_, true, #stmt, __FILE__, __LINE__, __func__);                             \
    } while (0)

/* A call between ncclGroupStart and ncclGroupEnd. */
#define NCCL_GROUPED(o, stmt)                                                                                          \
    do {                                                                                                               \
        ncclResult_t rf_nccl_op_r_ = (stmt);                                                                           \
        if (rf_nccl_op_r_ != ncclSuccess)                                                                              \
            nccl_result_at((o), rf_nccl_op_r_, false, #stmt, __FILE__, __LINE__, __func__);                            \
    } while (0)

#define CUDA_OP(o, stmt)                                                                                               \
    do {                                                                                                               \
        cudaError_t rf_cuda_op_e_ = (stmt);                                                                            \
        if (rf_cuda_op_e_ != cudaSuccess)                                                                              \
            op_die((o), __FILE__, __LINE__, __func__, #stmt, "%s: %s", cudaGetErrorName(rf_cuda_op_e_),                \
                   cudaGetErrorString(rf_cuda_op_e_));                                                                 \
    } while (0)

/* The communicator's asynchronous state: PENDING while NCCL's host side is still at work (ncclInProgress:
 * init, finalize, an enqueue that is connecting to peers), DONE when idle; an error (a failed peer or
 * network, an aborted kernel) is fatal. */
static enum par_poll poll_async(struct nccl_op *o) {
    ncclResult_t st = ncclInProgress;
    const ncclResult_t r = ncclCommGetAsyncError(o->m->nc, &st);
    if (r != ncclSuccess)
        op_die(o, __FILE__, __LINE__, __func__, "ncclCommGetAsyncError", "%s (%d)", ncclGetErrorString(r), (int)r);
    if (st == ncclInProgress) return PAR_POLL_PENDING;
    if (st != ncclSuccess)
        op_die(o, __FILE__, __LINE__, __func__, NULL, "asynchronous NCCL error %s (%d)", ncclGetErrorString(st),
               (int)st);
    return PAR_POLL_DONE;
}

static enum par_poll poll_state(void *user) {
    return poll_async(user);
}

/* Wait until the communicator has left ncclInProgress (init, finalize, an enqueue), under the deadline. */
static void wait_state(struct nccl_op *o) {
    par_watchdog_wait_poll(poll_state, o, &o->site);
}

/* The queued work: first ev_start (the work queued before this operation), then ev_done. */
static enum par_poll poll_stream(void *user) {
    struct nccl_op *o = user;
    (void)poll_async(o); /* for its errors only: the queued work is idle to NCCL's host side */
    enum par_poll progress = PAR_POLL_PENDING;
    cudaError_t e;
    if (!o->started) {
        e = cudaEventQuery(o->m->ev_start);
        if (e == cudaErrorNotReady) return PAR_POLL_PENDING;
        CUDA_OP(o, e);
        o->started = true;
        snprintf(o->what, sizeof o->what, "%s", o->name);
        progress = PAR_POLL_PROGRESS; /* the collective itself gets the whole deadline */
    }
    e = cudaEventQuery(o->m->ev_done);
    if (e == cudaErrorNotReady) return progress;
    CUDA_OP(o, e);
    return PAR_POLL_DONE;
}

/* ---- one operation ---- */

static void op_init(struct nccl_op *o, struct comm_nccl *m, const char *name, int64_t call, double min_timeout) {
    *o = (struct nccl_op){.m = m, .name = name, .prev_device = -1};
    snprintf(o->what, sizeof o->what, "%s", name);
    o->site = (struct par_wait_site){.comm = m->label,
                                     .op = o->what,
                                     .call = call,
                                     .size = m->base.size,
                                     .members = m->members,
                                     .min_timeout = min_timeout};
}

static void device_enter(struct nccl_op *o) {
    int cur = -1;
    CUDA_OP(o, cudaGetDevice(&cur));
    if (cur != o->m->device) {
        CUDA_OP(o, cudaSetDevice(o->m->device));
        o->prev_device = cur;
    }
}

static void device_leave(struct nccl_op *o) {
    if (o->prev_device >= 0) CUDA_OP(o, cudaSetDevice(o->prev_device));
    o->prev_device = -1;
}

static void op_begin(struct nccl_op *o, struct comm *c, const char *name) {
    struct comm_nccl *m = c->impl;
    op_init(o, m, name, m->calls + 1, 0.0);
    CHECK(m->nc, "comm %s: %s on a communicator that was destroyed or aborted", m->label, name);
    par_watchdog_enter();
    m->calls++;
    device_enter(o);
    CUDA_OP(o, cudaEventRecord(m->ev_start, m->stream));
}

/* Wait for everything queued so far in this operation (may be called more than once). */
static void op_wait(struct nccl_op *o) {
    CUDA_OP(o, cudaEventRecord(o->m->ev_done, o->m->stream));
    if (!o->started) snprintf(o->what, sizeof o->what, "%s (stream busy)", o->name);
    par_watchdog_wait_poll(poll_stream, o, &o->site);
}

static void op_end(struct nccl_op *o) {
    op_wait(o);
    device_leave(o);
}

/* Device memory of this communicator's device (or managed memory); anything else is fatal. */
static void require_device(const struct nccl_op *o, const char *what, const void *p, size_t bytes) {
    if (bytes == 0) return;
    struct cudaPointerAttributes a;
    memset(&a, 0, sizeof a);
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError(); /* not a pointer CUDA knows: host memory */
        a.type = cudaMemoryTypeUnregistered;
    }
    if (a.type == cudaMemoryTypeManaged || (a.type == cudaMemoryTypeDevice && a.device == o->m->device)) return;
    char kind[64];
    if (a.type == cudaMemoryTypeDevice)
        snprintf(kind, sizeof kind, "memory of CUDA device %d", a.device);
    else
        snprintf(kind, sizeof kind, "%s", a.type == cudaMemoryTypeHost ? "pinned host memory" : "host memory");
    op_die(o, __FILE__, __LINE__, __func__, NULL,
           "the %s buffer %p (%zu bytes) is %s; an NCCL communicator moves device memory of device %d", what, p, bytes,
           kind, o->m->device);
}

/* ---- queueing (inside an operation) ---- */

static void queue_allgather(struct nccl_op *o, const void *send, void *recv, size_t bytes) {
    struct comm_nccl *m = o->m;
    NCCL_OP(o, ncclAllGather(send, recv, bytes, ncclUint8, m->nc, m->stream));
}

/* recv block r = block `rank` of rank r's send: this rank's own block is a device copy, the others one
 * group of sends and receives. */
static void queue_alltoall(struct nccl_op *o, const void *send, void *recv, size_t bytes) {
    struct comm_nccl *m = o->m;
    const int n = m->base.size, me = m->base.rank;
    CUDA_OP(o, cudaMemcpyAsync((char *)recv + (size_t)me * bytes, (const char *)send + (size_t)me * bytes, bytes,
                               cudaMemcpyDeviceToDevice, m->stream));
    if (n == 1) return;
    NCCL_GROUPED(o, ncclGroupStart());
    for (int r = 0; r < n; r++) {
        if (r == me) continue;
        NCCL_GROUPED(o, ncclSend((const char *)send + (size_t)r * bytes, bytes, ncclUint8, r, m->nc, m->stream));
        NCCL_GROUPED(o, ncclRecv((char *)recv + (size_t)r * bytes, bytes, ncclUint8, r, m->nc, m->stream));
    }
    NCCL_OP(o, ncclGroupEnd());
}

/* ---- struct comm_ops ---- */

static void nccl_allgather(struct comm *c, const void *send, void *recv, size_t bytes) {
    struct nccl_op o;
    op_begin(&o, c, "allgather");
    if (bytes) {
        require_device(&o, "send", send, bytes);
        require_device(&o, "receive", recv, bytes * (size_t)c->size);
        queue_allgather(&o, send, recv, bytes);
    }
    op_end(&o);
}

static void nccl_alltoall(struct comm *c, const void *send, void *recv, size_t bytes) {
    struct nccl_op o;
    op_begin(&o, c, "alltoall");
    if (bytes) {
        require_device(&o, "send", send, bytes * (size_t)c->size);
        require_device(&o, "receive", recv, bytes * (size_t)c->size);
        queue_alltoall(&o, send, recv, bytes);
    }
    op_end(&o);
}

static void nccl_bcast(struct comm *c, void *buf, size_t bytes, int root) {
    struct nccl_op o;
    op_begin(&o, c, "bcast");
    if (bytes) {
        struct comm_nccl *m = c->impl;
        require_device(&o, "broadcast", buf, bytes);
        NCCL_OP(&o, ncclBroadcast(buf, buf, bytes, ncclUint8, root, m->nc, m->stream));
    }
    op_end(&o);
}

/* Every rank has queued a one-float all-reduce and waits for it to finish: none returns before all
 * have arrived. */
static void nccl_barrier(struct comm *c) {
    struct comm_nccl *m = c->impl;
    struct nccl_op o;
    op_begin(&o, c, "barrier");
    NCCL_OP(&o, ncclAllReduce(&m->dev->word, &m->dev->word, 1, ncclFloat32, ncclSum, m->nc, m->stream));
    op_end(&o);
}

static void check_peer(struct comm *c, const char *op, int peer) {
    CHECK(peer >= 0 && peer < c->size && peer != c->rank, "comm %s (nccl): %s with rank %d (this is rank %d of %d)",
          c->name, op, peer, c->rank, c->size);
}

/* The header goes first, on its own, so the receiver checks size and tag before the payload moves. */
static void nccl_send(struct comm *c, const void *buf, size_t bytes, int dest, int tag) {
    struct comm_nccl *m = c->impl;
    check_peer(c, "send", dest);
    struct nccl_op o;
    op_begin(&o, c, "send");
    require_device(&o, "send", buf, bytes);
    m->host_hdr[0] = (struct p2p_header){.bytes = bytes, .tag = tag, .magic = P2P_MAGIC};
    CUDA_OP(&o, cudaMemcpyAsync(&m->dev->hdr[0], &m->host_hdr[0], sizeof m->host_hdr[0], cudaMemcpyHostToDevice,
                                m->stream));
    NCCL_OP(&o, ncclSend(&m->dev->hdr[0], sizeof m->dev->hdr[0], ncclUint8, dest, m->nc, m->stream));
    if (bytes) {
        op_wait(&o); /* the receiver has the header and agreed */
        NCCL_OP(&o, ncclSend(buf, bytes, ncclUint8, dest, m->nc, m->stream));
    }
    op_end(&o);
}

static void nccl_recv(struct comm *c, void *buf, size_t bytes, int src, int tag) {
    struct comm_nccl *m = c->impl;
    check_peer(c, "recv", src);
    struct nccl_op o;
    op_begin(&o, c, "recv");
    require_device(&o, "receive", buf, bytes);
    NCCL_OP(&o, ncclRecv(&m->dev->hdr[1], sizeof m->dev->hdr[1], ncclUint8, src, m->nc, m->stream));
    CUDA_OP(&o, cudaMemcpyAsync(&m->host_hdr[1], &m->dev->hdr[1], sizeof m->host_hdr[1], cudaMemcpyDeviceToHost,
                                m->stream));
    op_wait(&o);
    const struct p2p_header h = m->host_hdr[1];
    if (h.magic != P2P_MAGIC || h.bytes != (uint64_t)bytes || h.tag != tag)
        op_die(&o, __FILE__, __LINE__, __func__, NULL,
               "rank %d sent %llu bytes with tag %d (header magic %#x), this rank expects %zu bytes with tag %d", src,
               (unsigned long long)h.bytes, (int)h.tag, (unsigned)h.magic, bytes, tag);
    if (bytes) NCCL_OP(&o, ncclRecv(buf, bytes, ncclUint8, src, m->nc, m->stream));
    op_end(&o);
}

static void nccl_destroy(struct comm *c) {
    struct comm_nccl *m = c->impl;
    struct nccl_op o;
    op_init(&o, m, "finalize", 0, SETUP_MIN_WAIT_S);
    device_enter(&o);
    if (m->nc) {
        NCCL_OP(&o, ncclCommFinalize(m->nc)); /* flushes and waits for the peers, under the deadline */
        NCCL_OP(&o, ncclCommDestroy(m->nc));
        m->nc = NULL;
    }
    live_remove(m);
    CUDA_OP(&o, cudaEventDestroy(m->ev_start));
    CUDA_OP(&o, cudaEventDestroy(m->ev_done));
    CUDA_OP(&o, cudaFree(m->dev));
    CUDA_OP(&o, cudaFreeHost(m->host_hdr));
    device_leave(&o);
    free(m->members);
    free(m);
}

static const struct comm_ops nccl_ops = {
    .allgather = nccl_allgather,
    .alltoall = nccl_alltoall,
    .bcast = nccl_bcast,
    .barrier = nccl_barrier,
    .send = nccl_send,
    .recv = nccl_recv,
    .destroy = nccl_destroy,
    .allreduce_sum_f32 = comm_nccl_allreduce_sum_f32,
};

/* ---- public ---- */

bool comm_is_nccl(const struct comm *c) {
    return c && c->ops == &nccl_ops;
}

void comm_nccl_allreduce_sum_f32(struct comm *c, float *buf, size_t n, float *scratch) {
    if (comm_size(c) == 1) return;
    CHECK(comm_is_nccl(c),
          "comm %s: comm_nccl_allreduce_sum_f32 on a communicator that is not an NCCL one "
          "(use comm_allreduce_sum_f32 with host buffers)",
          c->name);
    struct comm_nccl *m = c->impl;
    const double t0 = time_now();
    const size_t p = (size_t)c->size, mm = (n + p - 1) / p;
    float *slices = scratch, *got = scratch + p * mm;
    struct nccl_op o;
    /* reduce-scatter: all-to-all of slices, then each rank adds the slice it owns in rank order */
    op_begin(&o, c, "allreduce/alltoall");
    if (n) {
        require_device(&o, "all-reduce", buf, n * sizeof(float));
        require_device(&o, "all-reduce scratch", scratch, 2 * p * mm * sizeof(float));
        CUDA_OP(&o, cudaMemcpyAsync(slices, buf, n * sizeof(float), cudaMemcpyDeviceToDevice, m->stream));
        if (p * mm > n) CUDA_OP(&o, cudaMemsetAsync(slices + n, 0, (p * mm - n) * sizeof(float), m->stream));
        queue_alltoall(&o, slices, got, mm * sizeof(float));
        comm_nccl_sum_slices_cuda(slices, got, mm, (int)p, m->stream);
    }
    op_end(&o);
    /* all-gather of the summed slices */
    op_begin(&o, c, "allreduce/allgather");
    if (n) {
        queue_allgather(&o, slices, got, mm * sizeof(float));
        CUDA_OP(&o, cudaMemcpyAsync(buf, got, n * sizeof(float), cudaMemcpyDeviceToDevice, m->stream));
    }
    op_end(&o);
    /* counted as core/comm.c counts comm_allreduce_sum_f32 */
    c->stats.calls[COMM_ALLREDUCE]++;
    c->stats.bytes[COMM_ALLREDUCE] += (int64_t)(2 * (p - 1) * mm * sizeof(float));
    c->stats.seconds[COMM_ALLREDUCE] += time_now() - t0;
}

struct comm *comm_nccl_create(MPI_Comm mc, const char *name, int device, void *cuda_stream) {
    int mpi_up = 0;
    MPI_CHECK(MPI_Initialized(&mpi_up));
    CHECK(mpi_up, "comm_nccl_create(%s): MPI is not initialised (par_init first)", name);
    struct comm_nccl *m = calloc(1, sizeof *m);
    CHECK(m, "out of memory");
    MPI_CHECK(MPI_Comm_rank(mc, &m->base.rank));
    MPI_CHECK(MPI_Comm_size(mc, &m->base.size));
    snprintf(m->base.name, sizeof m->base.name, "%s", name);
    snprintf(m->label, sizeof m->label, "%s (nccl)", m->base.name);
    m->base.ops = &nccl_ops;
    m->base.impl = m;
    m->device = device;
    m->stream = (cudaStream_t)cuda_stream;
    /* world ranks of the members, so a timeout names the ones this rank waits for */
    const int n = m->base.size;
    m->members = malloc((size_t)n * sizeof *m->members);
    int *local = malloc((size_t)n * sizeof *local);
    CHECK(m->members && local, "out of memory");
    for (int i = 0; i < n; i++)
        local[i] = i;
    MPI_Group group, world_group;
    MPI_CHECK(MPI_Comm_group(mc, &group));
    MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
    MPI_CHECK(MPI_Group_translate_ranks(group, n, local, world_group, m->members));
    MPI_CHECK(MPI_Group_free(&group));
    MPI_CHECK(MPI_Group_free(&world_group));
    free(local);

    struct nccl_op o;
    op_init(&o, m, "init", 0, SETUP_MIN_WAIT_S);
    int n_dev = 0;
    CUDA_OP(&o, cudaGetDeviceCount(&n_dev));
    CHECK(device >= 0 && device < n_dev, "comm %s: CUDA device %d does not exist (%d visible)", m->label, device,
          n_dev);
    device_enter(&o);
    if (m->stream) {
        int stream_device = -1;
        CUDA_OP(&o, cudaStreamGetDevice(m->stream, &stream_device));
        CHECK(stream_device == device, "comm %s: the CUDA stream belongs to device %d, not to device %d", m->label,
              stream_device, device);
    }
    if (proc_gpu() < 0) proc_set_gpu(device);

    /* rank 0 makes the id; the broadcast is an MPI collective under the same deadline */
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (m->base.rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    MPI_Request req;
    MPI_CHECK(MPI_Ibcast(&id, (int)sizeof id, MPI_BYTE, 0, mc, &req));
    snprintf(o.what, sizeof o.what, "init (id broadcast)");
    par_watchdog_wait(&req, &o.site);
    snprintf(o.what, sizeof o.what, "init");

    /* nonblocking: init, and later every enqueue, answers ncclInProgress instead of blocking the host */
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    config.commName = m->base.name;
    const ncclResult_t r = ncclCommInitRankConfig(&m->nc, n, id, m->base.rank, &config);
    live_add(m); /* from here a fatal error aborts this communicator too */
    NCCL_OP(&o, r);

    CUDA_OP(&o, cudaEventCreateWithFlags(&m->ev_start, cudaEventDisableTiming));
    CUDA_OP(&o, cudaEventCreateWithFlags(&m->ev_done, cudaEventDisableTiming));
    CUDA_OP(&o, cudaMalloc((void **)&m->dev, sizeof *m->dev));
    CUDA_OP(&o, cudaMemsetAsync(m->dev, 0, sizeof *m->dev, m->stream)); /* ordered before every op */
    CUDA_OP(&o, cudaMallocHost((void **)&m->host_hdr, 2 * sizeof *m->host_hdr));
    device_leave(&o);
    int version = 0;
    NCCL_CHECK(ncclGetVersion(&version));
    LOG_DEBUG("comm %s: NCCL %d communicator, rank %d of %d on CUDA device %d", m->label, version, m->base.rank, n,
              device);
    return &m->base;
}
