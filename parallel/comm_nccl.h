/* parallel/comm_nccl.h - struct comm (core/comm.h) over an NCCL communicator: the CUDA backend's collectives.
 *
 * A comm made here moves DEVICE memory (cudaMalloc'd buffers on the communicator's device; a host pointer
 * is a fatal error naming the call). Each call queues its NCCL operation on the CUDA stream given at
 * creation (the exec_ctx's stream, so it is ordered after the kernels already queued there) and returns
 * when the operation has finished on the device, so the collectives block as core/comm.h says and the
 * counters (calls, bytes, seconds) mean what they mean for comm_mpi.
 *
 * Ops: allgather = ncclAllGather; alltoall = one group of ncclSend/ncclRecv per peer (the block for
 * this rank itself is a device copy); bcast = ncclBroadcast in place; barrier = a one-float ncclAllReduce
 * whose completion is waited for; send/recv = ncclSend/ncclRecv with a 16-byte header (size and tag) in
 * the same group, checked by the receiver (NCCL has no tags; messages between two ranks are matched in
 * order). Zero-byte collectives queue nothing.
 *
 * Determinism: comm_nccl_allreduce_sum_f32 is core/comm.c's reduce-scatter + all-gather on the device
 * (all-to-all of slices, a kernel that adds each slice in rank order 0..n-1, all-gather), so every rank
 * gets the bits the MPI communicator gives for the same inputs, whatever algorithm NCCL would pick for
 * ncclAllReduce (which is never used for sums). It is this communicator's comm_ops.allreduce_sum_f32, so
 * core's comm_allreduce_sum_f32() on a comm made here runs it on the device buffers.
 *
 * Failures: the communicator is nonblocking (ncclConfig_t.blocking = 0), so no NCCL call can hang the
 * host. Every wait (communicator init, each enqueue that answers ncclInProgress, each completion) goes
 * through parallel/watchdog.c: deadline REELFARM_COMM_TIMEOUT (default 300 s; init and finalize get at
 * least 60 s), heartbeats, and the report that names the ranks that did not arrive. The stream wait polls
 * ncclCommGetAsyncError; a failure, an NCCL or CUDA error or a timeout ends the job with one FATAL line
 * naming the rank, the communicator and the operation; the abort hook registered with core/process.h then
 * calls ncclCommAbort on every live NCCL communicator of the process before MPI_Abort.
 *
 * Compiled only when CUDA and NCCL are found (CMake target reelfarm_parallel_nccl). NOT YET RUN ON A GPU.
 */
#ifndef REELFARM_PARALLEL_COMM_NCCL_H
#define REELFARM_PARALLEL_COMM_NCCL_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/comm.h"

/* Collective over mc: rank 0 makes the ncclUniqueId and broadcasts it over mc, then every rank joins an
 * NCCL communicator of mc's ranks (same rank numbers) on CUDA `device`, queueing its work on `cuda_stream`
 * (a cudaStream_t on that device, e.g. exec_ctx.cuda_stream; NULL: the legacy default stream). The caller
 * keeps ownership of mc and of the stream (which must outlive the comm). name: "tp", "sp", ... */
struct comm *comm_nccl_create(MPI_Comm mc, const char *name, int device, void *cuda_stream);

/* True for a comm made by comm_nccl_create (its buffers are device pointers). NULL-safe. */
bool comm_is_nccl(const struct comm *c);

/* buf[n] = sum over ranks in rank order, the same bits on every rank and the same bits as
 * comm_allreduce_sum_f32 over MPI; buf and scratch are device memory, scratch holds 2 (n + size) floats.
 * Counted as one COMM_ALLREDUCE with core's byte count. A one-rank group (or NULL) leaves buf as it is,
 * as core does; any other comm must be an NCCL one. */
void comm_nccl_allreduce_sum_f32(struct comm *c, float *buf, size_t n, float *scratch);

#endif /* REELFARM_PARALLEL_COMM_NCCL_H */
