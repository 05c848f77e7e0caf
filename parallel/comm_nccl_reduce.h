/* parallel/comm_nccl_reduce.h - the device half of the NCCL communicator's deterministic all-reduce.
 *
 * What it does: declares the launcher of the kernel that adds the p slices an all-to-all delivered, in
 * rank order 0..p-1, exactly as the loop in core/comm.c (comm_allreduce_sum_f32) does on the host, so the
 * NCCL all-reduce gives the MPI communicator's bits. Includable from C11 (parallel/comm_nccl.c) and from
 * the .cu file; names no CUDA type (the stream travels as void *, as in struct exec_ctx).
 * What it does not do: no communication (parallel/comm_nccl.c), no other reductions.
 */
#ifndef REELFARM_PARALLEL_COMM_NCCL_REDUCE_H
#define REELFARM_PARALLEL_COMM_NCCL_REDUCE_H

#include <stddef.h>

#include "core/cdefs.h"

RF_BEGIN_DECLS

/* out[i] = ((in[i] + in[m + i]) + in[2 m + i]) + ... + in[(p - 1) m + i] for i < m, one IEEE float add
 * at a time (no reassociation, no contraction); in [p, m], out [m], device memory; queued on `stream`
 * (a cudaStream_t). out must not alias in. Launch failures are fatal. */
void comm_nccl_sum_slices_cuda(float *out, const float *in, size_t m, int p, void *stream);

RF_END_DECLS

#endif /* REELFARM_PARALLEL_COMM_NCCL_REDUCE_H */
