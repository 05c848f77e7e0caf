/* worker/comm_model.h - how many bytes one denoising step sends, per rank and per layout, computed
 * from the model shapes (issue "scaling benchmark"; spec 1, 3 and 9).
 *
 * It mirrors model/wan_dit.c and model/df_sampler.c call by call: per block the Ulysses all-to-all
 * of q|k|v and the one back, the ring broadcast of each ring rank's k|v block, the tensor-parallel
 * all-reduces (sums of squares of the across-heads RMSNorms of q, k, cross q, cross k (and image k),
 * the attention and cross-attention output projections, the FFN), then the head output all-gather
 * over sp, and per step the two CFG broadcasts. Shard lengths (padding included) are computed as
 * wan_dit.c does. With f32 everywhere (the CPU backend) the counts equal what the communicators'
 * statistics report, exactly: `reelfarm bench` checks that on every parallel run and
 * tests/cli/test_bench_scaling.sh makes it a test.
 *
 * Two byte measures per collective:
 *  - `bytes`: the comm_stats convention of core/comm.c (all-gather: this rank's contribution;
 *    all-to-all: the blocks for the other ranks; broadcast: the payload, at the root only;
 *    all-reduce: this rank's all-gather share), to compare with measurement;
 *  - `wire_bytes`: what this rank's link must carry in (= out, for these symmetric patterns) with
 *    the algorithm as implemented: all-gather (n-1) x share, all-to-all (n-1) x block, broadcast
 *    the payload once per non-root rank, the all-gather-based all-reduce (n-1) x S; and for the
 *    tensor-parallel part also what a ring all-reduce would move, 2 (n-1)/n x S. Time estimates
 *    divide wire bytes by a link bandwidth (no latency term, no overlap with compute).
 *
 * It does not model memory traffic, host-device copies or the coordinator's messages.
 */
#ifndef REELFARM_WORKER_COMM_MODEL_H
#define REELFARM_WORKER_COMM_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/comm.h"
#include "model/wan_config.h"
#include "model/wan_dit.h"
#include "parallel/mesh.h"

/* Bytes per element of each kind of payload. */
struct comm_model_dtypes {
    int act;  /* q/k/v, attention outputs, ring k/v blocks, TP partial sums: 4 (CPU f32) or 2 (GPU bf16) */
    int stat; /* per-row sums of squares of the across-heads RMSNorms: 4 (statistics stay fp32) */
    int out;  /* head output and the CFG exchange of the flow prediction: 4 (SR runs the head in fp32) */
};

static inline struct comm_model_dtypes comm_model_dtypes_f32(void) {
    return (struct comm_model_dtypes){4, 4, 4};
}
static inline struct comm_model_dtypes comm_model_dtypes_bf16(void) {
    return (struct comm_model_dtypes){2, 4, 4};
}

enum comm_model_part {
    COMM_MODEL_ULYSSES, /* all-to-all of q|k|v and of the attention output, per block */
    COMM_MODEL_RING,    /* broadcast of each ring rank's k|v block, per block */
    COMM_MODEL_TP,      /* all-reduces: RMSNorm statistics, two output projections, FFN, per block */
    COMM_MODEL_HEAD,    /* all-gather of the head output over sp, per forward */
    COMM_MODEL_CFG,     /* broadcast of each CFG half's flow prediction, per step */
    COMM_MODEL_PARTS
};

struct comm_model_cost {
    enum comm_kind kind;              /* the communicator call it is */
    int64_t calls;                    /* per step on this rank */
    int64_t bytes;                    /* per step, comm_stats convention */
    double wire_bytes;                /* per step, through this rank's link, algorithm as implemented */
    double wire_bytes_ring_allreduce; /* TP: with a ring all-reduce instead; other parts: = wire_bytes */
};

struct comm_model_step {
    int forwards;          /* DiT forwards this rank runs per step (2 with guidance and cfg 1) */
    int64_t tokens, shard; /* L and the padded shard length s */
    struct comm_model_cost part[COMM_MODEL_PARTS];
};

/* One step (guidance > 1: conditional + unconditional pass; else one forward) on the rank whose
 * sequence-parallel index is sp_idx (shards differ only in their real rows; the last may be shorter). */
void comm_model_rank(const struct wan_config *c, const struct wan_dit_shape *sh, const struct par_layout *l, int sp_idx,
                     bool guidance, const struct comm_model_dtypes *dt, struct comm_model_step *out);
/* The step summed per communicator kind, in the comm_stats convention (seconds left zero). */
void comm_model_by_kind(const struct comm_model_step *s, struct comm_stats *out);
/* Sum over parts of wire_bytes (ring_allreduce: the TP part as a ring all-reduce). */
double comm_model_wire_total(const struct comm_model_step *s, bool ring_allreduce);
const char *comm_model_part_name(enum comm_model_part p);

/* What the projection tables assume. */
struct comm_model_projection {
    const char *title;
    int worlds[8];     /* rank counts to tabulate, 0-terminated */
    double gpu_tflops; /* sustained dense bf16 rate per GPU for the compute estimate */
    bool guidance;
    int causal_block_size;
    struct comm_model_dtypes dt;
};

/* Markdown tables of every layout par_layout_choose accepts for each rank count: bytes per rank per
 * step by part, time at NVLink and 100/200/400 Gb/s links, compute time from wan_dit_flops. */
void comm_model_print_projection(FILE *f, const struct wan_config *c, const struct wan_dit_shape *sh,
                                 const struct comm_model_projection *p);

#endif /* REELFARM_WORKER_COMM_MODEL_H */
