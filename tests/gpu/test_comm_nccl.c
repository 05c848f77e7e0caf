/* tests/gpu/test_comm_nccl.c - the NCCL communicator (parallel/comm_nccl.h) against the MPI communicator.
 *
 * Run by run_comm_nccl_test.sh under mpirun with one rank per visible GPU (rank r on device r of its node).
 * Every rank makes its inputs from fixed seeds and its rank, so it can also make every other rank's inputs
 * and work out the exact expected result on the host. Each collective runs twice on the same data: over
 * MPI (comm_mpi, host buffers) and over NCCL (comm_nccl, device buffers on the exec_ctx's stream from
 * cuda_backend_init). Both results must equal the expected bytes BITWISE: allgather, alltoall, bcast from
 * every root, point to point around a ring, and the float all-reduce, whose order-of-summation contract
 * (slices added in rank order 0..n-1) makes it exact too. Device buffers carry 256-byte canary bands on
 * both sides that must survive, receive buffers start as garbage, and send buffers must be left as they
 * were. Sizes include 0 and 1 byte, odd sizes and a few MiB. The barrier must hold a rank back until the
 * slowest one arrives (rank 0 comes 0.3 s late). Afterwards the counters (calls and bytes per kind) of
 * both communicators must equal each other and the count this test expects, and seconds must be > 0.
 * On one GPU (one rank) the same cases run as a one-rank group, plus the all-reduce's slice-sum kernel
 * alone against the host loop for 1..8 slices (what the all-reduce does on p ranks).
 *
 * Modes (argv[1]; the failure modes must end the job with a FATAL line, checked by the script):
 *   devices   print the number of CUDA devices (no MPI); exit 77 when there is none
 *   all       the comparisons above (the default)
 *   timeout   (>= 2 ranks, REELFARM_COMM_TIMEOUT=2) the last rank skips an allgather and sleeps
 *   stall     (1 rank, REELFARM_COMM_TIMEOUT=2) the stream is held 6 s by a host function queued before an
 *             allgather: "allgather (stream busy)" times out
 *   hostptr   a host buffer passed to the NCCL allgather
 *   tag       (>= 2 ranks) rank 1 expects tag 6 where rank 0 sends tag 5
 * Without a CUDA device every mode prints why and exits 77 (CTest: skipped). NOT YET RUN ON A GPU.
 */
#include <cuda_runtime_api.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/comm.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "kernels/cuda/kern_cuda.h"
#include "parallel/comm_mpi.h"
#include "parallel/comm_nccl.h"
#include "parallel/comm_nccl_reduce.h"
#include "parallel/par_runtime.h"
#include "tests/common/test_util.h"

enum { GUARD = 256 };
static const unsigned char CANARY = 0xA5;  /* guard bands */
static const unsigned char GARBAGE = 0x5A; /* receive buffers before the call */

struct tctx {
    int rank, size;
    struct exec_ctx ctx;
    struct comm *mpi, *nccl;
    int64_t calls[COMM_KINDS], bytes[COMM_KINDS]; /* what this test expects the counters to say */
};

/* ---- data ---- */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The bytes rank `rank` sends in case `seed`. */
static void fill_bytes(unsigned char *p, size_t n, uint64_t seed, int rank) {
    uint64_t s = seed * 1000003ull + (uint64_t)rank;
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(splitmix(&s) >> 56);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    CHECK(p, "out of memory (%zu bytes)", n);
    return p;
}

/* Index of the first differing byte, or -1. */
static long long first_diff(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return (long long)i;
    return -1;
}

#define T_SAME(got, want, n, ...)                                                                                      \
    do {                                                                                                               \
        const long long t_same_at_ = first_diff((got), (want), (n));                                                   \
        T_CHECK(t_same_at_ < 0, __VA_ARGS__);                                                                          \
        if (t_same_at_ >= 0) fprintf(stderr, "  first difference at byte %lld of %zu\n", t_same_at_, (size_t)(n));     \
    } while (0)

/* ---- device buffers with guard bands ---- */

struct dbuf {
    unsigned char *base; /* [GUARD | bytes | GUARD] */
    size_t bytes;
};

static void *dbuf_new(struct dbuf *b, size_t bytes, unsigned char fill) {
    b->bytes = bytes;
    CHECK(cudaMalloc((void **)&b->base, bytes + 2 * GUARD) == cudaSuccess, "cudaMalloc of %zu bytes", bytes);
    CHECK(cudaMemset(b->base, CANARY, GUARD) == cudaSuccess, "cudaMemset");
    CHECK(cudaMemset(b->base + GUARD, fill, bytes) == cudaSuccess, "cudaMemset");
    CHECK(cudaMemset(b->base + GUARD + bytes, CANARY, GUARD) == cudaSuccess, "cudaMemset");
    /* cudaMemset may return before it is done, on the legacy stream, which does not order the
     * communicator's non-blocking stream: finish it before a collective can touch the buffer */
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "cudaDeviceSynchronize");
    return b->base + GUARD;
}

static void *dbuf_upload(struct dbuf *b, const void *host, size_t bytes) {
    void *d = dbuf_new(b, bytes, 0);
    CHECK(cudaMemcpy(d, host, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "cudaMemcpy H2D");
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "cudaDeviceSynchronize"); /* as in dbuf_new */
    return d;
}

/* Copy the payload to host and check both guard bands; frees the buffer. */
static void dbuf_take(struct dbuf *b, void *host, const char *what) {
    unsigned char *all = xmalloc(b->bytes + 2 * GUARD);
    CHECK(cudaDeviceSynchronize() == cudaSuccess, "cudaDeviceSynchronize");
    CHECK(cudaMemcpy(all, b->base, b->bytes + 2 * GUARD, cudaMemcpyDeviceToHost) == cudaSuccess, "cudaMemcpy D2H");
    int bad = 0;
    for (size_t i = 0; i < GUARD; i++)
        bad += (all[i] != CANARY) + (all[GUARD + b->bytes + i] != CANARY);
    T_CHECK(bad == 0, "%s: %d guard-band bytes changed", what, bad);
    if (host) memcpy(host, all + GUARD, b->bytes);
    free(all);
    CHECK(cudaFree(b->base) == cudaSuccess, "cudaFree");
    b->base = NULL;
}

static void expect(struct tctx *t, enum comm_kind k, size_t bytes) {
    t->calls[k]++;
    t->bytes[k] += (int64_t)bytes;
}

/* ---- the cases ---- */

static void case_allgather(struct tctx *t, size_t bytes, uint64_t seed) {
    const size_t total = bytes * (size_t)t->size;
    unsigned char *send = xmalloc(bytes), *want = xmalloc(total), *got_mpi = xmalloc(total), *got = xmalloc(total);
    unsigned char *back = xmalloc(bytes);
    fill_bytes(send, bytes, seed, t->rank);
    for (int r = 0; r < t->size; r++)
        fill_bytes(want + (size_t)r * bytes, bytes, seed, r);
    memset(got_mpi, GARBAGE, total);
    comm_allgather(t->mpi, send, got_mpi, bytes);
    struct dbuf ds, dr;
    void *d_send = dbuf_upload(&ds, send, bytes), *d_recv = dbuf_new(&dr, total, GARBAGE);
    comm_allgather(t->nccl, d_send, d_recv, bytes);
    dbuf_take(&dr, got, "allgather receive");
    dbuf_take(&ds, back, "allgather send");
    T_SAME(got_mpi, want, total, "allgather %zu bytes: MPI result differs from the expected bytes", bytes);
    T_SAME(got, want, total, "allgather %zu bytes: NCCL result differs from the expected (and MPI) bytes", bytes);
    T_SAME(back, send, bytes, "allgather %zu bytes: NCCL changed the send buffer", bytes);
    expect(t, COMM_ALLGATHER, t->size > 1 ? bytes : 0);
    free(send), free(want), free(got_mpi), free(got), free(back);
}

static void case_alltoall(struct tctx *t, size_t bytes, uint64_t seed) {
    const size_t total = bytes * (size_t)t->size;
    unsigned char *send = xmalloc(total), *want = xmalloc(total), *got_mpi = xmalloc(total), *got = xmalloc(total);
    unsigned char *back = xmalloc(total), *other = xmalloc(total);
    fill_bytes(send, total, seed, t->rank);
    for (int r = 0; r < t->size; r++) { /* block r of the result = block `rank` of rank r's send */
        fill_bytes(other, total, seed, r);
        memcpy(want + (size_t)r * bytes, other + (size_t)t->rank * bytes, bytes);
    }
    memset(got_mpi, GARBAGE, total);
    comm_alltoall(t->mpi, send, got_mpi, bytes);
    struct dbuf ds, dr;
    void *d_send = dbuf_upload(&ds, send, total), *d_recv = dbuf_new(&dr, total, GARBAGE);
    comm_alltoall(t->nccl, d_send, d_recv, bytes);
    dbuf_take(&dr, got, "alltoall receive");
    dbuf_take(&ds, back, "alltoall send");
    T_SAME(got_mpi, want, total, "alltoall %zu-byte blocks: MPI result differs from the expected bytes", bytes);
    T_SAME(got, want, total, "alltoall %zu-byte blocks: NCCL result differs from the expected (and MPI) bytes", bytes);
    T_SAME(back, send, total, "alltoall %zu-byte blocks: NCCL changed the send buffer", bytes);
    expect(t, COMM_ALLTOALL, t->size > 1 ? bytes * (size_t)(t->size - 1) : 0);
    free(send), free(want), free(got_mpi), free(got), free(back), free(other);
}

static void case_bcast(struct tctx *t, size_t bytes, int root, uint64_t seed) {
    unsigned char *buf = xmalloc(bytes), *want = xmalloc(bytes), *got = xmalloc(bytes), *mine = xmalloc(bytes);
    fill_bytes(want, bytes, seed, root);
    fill_bytes(mine, bytes, seed + 1, t->rank); /* non-roots start with other bytes */
    memcpy(buf, t->rank == root ? want : mine, bytes);
    comm_bcast(t->mpi, buf, bytes, root);
    struct dbuf db;
    void *d = dbuf_upload(&db, t->rank == root ? want : mine, bytes);
    comm_bcast(t->nccl, d, bytes, root);
    dbuf_take(&db, got, "bcast buffer");
    T_SAME(buf, want, bytes, "bcast %zu bytes from root %d: MPI result differs from the root's bytes", bytes, root);
    T_SAME(got, want, bytes, "bcast %zu bytes from root %d: NCCL result differs from the root's bytes", bytes, root);
    expect(t, COMM_BCAST, t->size > 1 && t->rank == root ? bytes : 0);
    free(buf), free(want), free(got), free(mine);
}

/* Floats of rank r for case `seed`: normal samples, so the order of the adds shows in the bits. */
static void fill_floats(float *x, size_t n, uint64_t seed, int rank) {
    rng_normal_f32(x, (int64_t)n, seed, (uint64_t)rank, 0);
}

static void case_allreduce(struct tctx *t, size_t n, uint64_t seed) {
    const size_t p = (size_t)t->size, bytes = n * sizeof(float), scratch_n = 2 * (n + p);
    float *mine = xmalloc(bytes), *want = xmalloc(bytes), *other = xmalloc(bytes), *buf = xmalloc(bytes);
    float *scratch = xmalloc(scratch_n * sizeof(float)), *got = xmalloc(bytes);
    fill_floats(mine, n, seed, t->rank);
    /* expected: rank 0's value, then + rank 1's, ... (one float add at a time, as the contract says) */
    fill_floats(want, n, seed, 0);
    for (int r = 1; r < t->size; r++) {
        fill_floats(other, n, seed, r);
        for (size_t i = 0; i < n; i++)
            want[i] += other[i];
    }
    memcpy(buf, mine, bytes);
    comm_allreduce_sum_f32(t->mpi, buf, n, scratch);
    struct dbuf db, dsc;
    float *d = dbuf_upload(&db, mine, bytes), *d_scratch = dbuf_new(&dsc, scratch_n * sizeof(float), GARBAGE);
    comm_allreduce_sum_f32(t->nccl, d, n, d_scratch);
    dbuf_take(&db, got, "allreduce buffer");
    dbuf_take(&dsc, NULL, "allreduce scratch");
    T_SAME(buf, want, bytes, "allreduce of %zu floats: MPI result differs from the rank-order sum", n);
    T_SAME(got, want, bytes, "allreduce of %zu floats: NCCL result differs from the rank-order sum (and MPI)", n);
    if (t->size > 1) expect(t, COMM_ALLREDUCE, 2 * (p - 1) * ((n + p - 1) / p) * sizeof(float));
    free(mine), free(want), free(other), free(buf), free(scratch), free(got);
}

/* Around the ring: rank r sends to r + 1 and receives from r - 1; rank 0 sends first, the others receive
 * first (a blocking ring in which everyone sent first would deadlock, on MPI's rendezvous as on NCCL). */
static void ring(struct tctx *t, struct comm *c, const void *send, void *recv, size_t bytes, int tag) {
    const int to = (t->rank + 1) % t->size, from = (t->rank + t->size - 1) % t->size;
    if (t->rank == 0) {
        comm_send(c, send, bytes, to, tag);
        comm_recv(c, recv, bytes, from, tag);
    } else {
        comm_recv(c, recv, bytes, from, tag);
        comm_send(c, send, bytes, to, tag);
    }
}

static void case_p2p(struct tctx *t, size_t bytes, uint64_t seed, int tag) {
    const int from = (t->rank + t->size - 1) % t->size;
    unsigned char *send = xmalloc(bytes), *want = xmalloc(bytes), *got_mpi = xmalloc(bytes), *got = xmalloc(bytes);
    fill_bytes(send, bytes, seed, t->rank);
    fill_bytes(want, bytes, seed, from);
    memset(got_mpi, GARBAGE, bytes);
    ring(t, t->mpi, send, got_mpi, bytes, tag);
    struct dbuf ds, dr;
    void *d_send = dbuf_upload(&ds, send, bytes), *d_recv = dbuf_new(&dr, bytes, GARBAGE);
    ring(t, t->nccl, d_send, d_recv, bytes, tag);
    dbuf_take(&dr, got, "p2p receive");
    dbuf_take(&ds, NULL, "p2p send");
    T_SAME(got_mpi, want, bytes, "p2p %zu bytes from rank %d: MPI result differs from the sender's bytes", bytes, from);
    T_SAME(got, want, bytes, "p2p %zu bytes from rank %d: NCCL result differs from the sender's bytes", bytes, from);
    expect(t, COMM_P2P, bytes); /* the send: its bytes */
    expect(t, COMM_P2P, 0);     /* the receive: a call, no bytes sent */
    free(send), free(want), free(got_mpi), free(got);
}

static void sleep_s(double s) {
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Rank 0 arrives 0.3 s late: no rank may leave the NCCL barrier before it. */
static void case_barrier(struct tctx *t) {
    comm_barrier(t->nccl); /* line up */
    if (t->rank == 0) sleep_s(0.3);
    const double t0 = time_now();
    comm_barrier(t->nccl);
    const double waited = time_now() - t0;
    if (t->rank != 0 && t->size > 1)
        T_CHECK(waited >= 0.25, "rank %d left the NCCL barrier after %.3f s, before rank 0 arrived (0.3 s late)",
                t->rank, waited);
    comm_barrier(t->mpi); /* as many on MPI, for the counters */
    comm_barrier(t->mpi);
    expect(t, COMM_BARRIER, 0);
    expect(t, COMM_BARRIER, 0);
}

/* The all-reduce's kernel alone: p slices of m floats summed in slice order, as the host loop does. */
static void case_sum_slices(struct tctx *t, int p, size_t m) {
    const size_t n = (size_t)p * m;
    float *in = xmalloc(n * sizeof(float)), *want = xmalloc(m * sizeof(float)), *got = xmalloc(m * sizeof(float));
    fill_floats(in, n, 900 + (uint64_t)p, t->rank);
    for (size_t i = 0; i < m; i++) {
        float s = in[i];
        for (int r = 1; r < p; r++)
            s += in[(size_t)r * m + i];
        want[i] = s;
    }
    struct dbuf di, dout;
    float *d_in = dbuf_upload(&di, in, n * sizeof(float)), *d_out = dbuf_new(&dout, m * sizeof(float), GARBAGE);
    comm_nccl_sum_slices_cuda(d_out, d_in, m, p, t->ctx.cuda_stream);
    dbuf_take(&dout, got, "sum_slices out");
    dbuf_take(&di, NULL, "sum_slices in");
    T_SAME(got, want, m * sizeof(float), "slice sum of %d x %zu floats differs from the host loop", p, m);
    free(in), free(want), free(got);
}

static void check_stats(struct tctx *t) {
    for (int k = 0; k < COMM_KINDS; k++) {
        const char *name = comm_kind_name((enum comm_kind)k);
        T_CHECK(t->nccl->stats.calls[k] == t->calls[k], "%s: NCCL counted %lld calls, the test made %lld", name,
                (long long)t->nccl->stats.calls[k], (long long)t->calls[k]);
        T_CHECK(t->nccl->stats.bytes[k] == t->bytes[k], "%s: NCCL counted %lld bytes, expected %lld", name,
                (long long)t->nccl->stats.bytes[k], (long long)t->bytes[k]);
        T_CHECK(t->mpi->stats.calls[k] == t->nccl->stats.calls[k] && t->mpi->stats.bytes[k] == t->nccl->stats.bytes[k],
                "%s: MPI counted %lld calls / %lld bytes, NCCL %lld / %lld", name, (long long)t->mpi->stats.calls[k],
                (long long)t->mpi->stats.bytes[k], (long long)t->nccl->stats.calls[k],
                (long long)t->nccl->stats.bytes[k]);
        T_CHECK(t->nccl->stats.calls[k] == 0 || t->nccl->stats.seconds[k] > 0.0, "%s: %lld calls took %g s", name,
                (long long)t->nccl->stats.calls[k], t->nccl->stats.seconds[k]);
    }
}

static void run_all(struct tctx *t) {
    static const size_t gather_sizes[] = {0, 1, 3, 4096, (1u << 20) + 5};
    static const size_t a2a_sizes[] = {0, 1, 7, 4096, 262147};
    static const size_t bcast_sizes[] = {1, 1000, (3u << 20) + 1};
    static const size_t reduce_sizes[] = {0, 1, 5, 1000, 65537, (1u << 20) + 3};
    static const size_t p2p_sizes[] = {0, 1, 1000, (1u << 20) + 1};
    uint64_t seed = 1;
    for (size_t i = 0; i < sizeof gather_sizes / sizeof gather_sizes[0]; i++)
        case_allgather(t, gather_sizes[i], seed++);
    for (size_t i = 0; i < sizeof a2a_sizes / sizeof a2a_sizes[0]; i++)
        case_alltoall(t, a2a_sizes[i], seed++);
    for (size_t i = 0; i < sizeof bcast_sizes / sizeof bcast_sizes[0]; i++)
        for (int root = 0; root < t->size; root++)
            case_bcast(t, bcast_sizes[i], root, seed++);
    for (size_t i = 0; i < sizeof reduce_sizes / sizeof reduce_sizes[0]; i++)
        case_allreduce(t, reduce_sizes[i], seed++);
    if (t->size > 1)
        for (size_t i = 0; i < sizeof p2p_sizes / sizeof p2p_sizes[0]; i++)
            case_p2p(t, p2p_sizes[i], seed++, 10 + (int)i);
    case_barrier(t);
    for (int p = 1; p <= 8; p++)
        case_sum_slices(t, p, p == 3 ? 1000003 : 4097);
    check_stats(t);
}

/* ---- failure modes (the script checks the FATAL line) ---- */

static void CUDART_CB hold_stream(void *user) {
    (void)user;
    sleep_s(6.0);
}

static int run_failure(struct tctx *t, const char *mode) {
    struct dbuf ds, dr;
    unsigned char host[64] = {0}, host_recv[64 * 8];
    void *d_send = dbuf_upload(&ds, host, sizeof host), *d_recv = dbuf_new(&dr, sizeof host * (size_t)t->size, 0);
    if (strcmp(mode, "timeout") == 0) {
        CHECK(t->size >= 2, "mode timeout needs 2 ranks or more");
        comm_allgather(t->nccl, d_send, d_recv, sizeof host); /* connections are up; everyone is here */
        comm_barrier(t->nccl);
        if (t->rank == t->size - 1) {
            printf("rank %d skips the allgather and sleeps\n", t->rank);
            fflush(stdout);
            sleep_s(60.0);
            fprintf(stderr, "FAIL: rank %d was not ended within 60 s\n", t->rank);
            return 1;
        }
        comm_allgather(t->nccl, d_send, d_recv, sizeof host);
    } else if (strcmp(mode, "stall") == 0) {
        CHECK(cudaLaunchHostFunc((cudaStream_t)t->ctx.cuda_stream, hold_stream, NULL) == cudaSuccess,
              "cudaLaunchHostFunc");
        comm_allgather(t->nccl, d_send, d_recv, sizeof host);
    } else if (strcmp(mode, "hostptr") == 0) {
        CHECK(t->size <= 8, "mode hostptr runs on 8 ranks at most");
        comm_allgather(t->nccl, host, host_recv, sizeof host);
    } else if (strcmp(mode, "tag") == 0) {
        CHECK(t->size >= 2, "mode tag needs 2 ranks or more");
        if (t->rank == 0) comm_send(t->nccl, d_send, sizeof host, 1, 5);
        if (t->rank == 1) comm_recv(t->nccl, d_send, sizeof host, 0, 6);
        comm_barrier(t->mpi);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    fprintf(stderr, "FAIL: rank %d: mode %s returned instead of ending the job\n", t->rank, mode);
    return 1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    const int n_dev = cuda_device_count();
    if (strcmp(mode, "devices") == 0) {
        if (n_dev == 0)
            return t_skip("test_comm_nccl", "no CUDA device or driver (cuda_device_count() == 0); run it on a GPU "
                                            "machine");
        printf("%d\n", n_dev);
        return 0;
    }
    if (n_dev == 0) return t_skip("test_comm_nccl", "no CUDA device or driver");
    par_init(&argc, &argv, PAR_FORCE);
    struct tctx t = {.rank = par_rank(), .size = par_world()};
    /* rank r of a node uses device r: NCCL takes one rank per GPU */
    MPI_Comm node;
    int local = 0, local_n = 1;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local));
    MPI_CHECK(MPI_Comm_size(node, &local_n));
    MPI_CHECK(MPI_Comm_free(&node));
    CHECK(local_n <= n_dev, "%d ranks on this node but %d GPUs: run one rank per GPU", local_n, n_dev);
    t.ctx = exec_ctx_cpu(1);
    const int rc = cuda_backend_init(&t.ctx, local);
    CHECK(rc == 0, "cuda_backend_init(device %d): %s", local, err_message());
    t.nccl = comm_nccl_create(MPI_COMM_WORLD, mode, local, t.ctx.cuda_stream);
    t.mpi = comm_mpi_create(MPI_COMM_WORLD, "mpi");
    T_CHECK(comm_is_nccl(t.nccl) && !comm_is_nccl(t.mpi) && !comm_is_nccl(comm_self()), "comm_is_nccl");
    T_CHECK(t.nccl->rank == t.rank && t.nccl->size == t.size, "NCCL comm is rank %d of %d, MPI says %d of %d",
            t.nccl->rank, t.nccl->size, t.rank, t.size);
    if (strcmp(mode, "all") != 0) return run_failure(&t, mode);

    const double t0 = time_now();
    run_all(&t);
    comm_destroy(&t.nccl);
    comm_destroy(&t.mpi);
    cuda_backend_free(&t.ctx);
    /* every rank's verdict, so rank 0's line speaks for the job */
    int mine = t_failures, all = 0;
    MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    if (t.rank == 0)
        printf("test_comm_nccl: %d ranks on %d GPUs, %.1f s, %d failed checks over all ranks\n", t.size, n_dev,
               time_now() - t0, all);
    par_finalize();
    char name[64];
    snprintf(name, sizeof name, "test_comm_nccl (rank %d)", t.rank);
    return t_summary(name);
}
