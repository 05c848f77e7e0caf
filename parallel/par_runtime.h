/* parallel/par_runtime.h - process start-up under MPI and the job-wide abort path.
 *
 * par_init() initialises MPI when the process was started by a launcher (mpirun, srun, or any
 * PMI/PMIx environment) and leaves a plain command-line run free of MPI otherwise. It records the
 * rank and world size in core/process.h for log lines and error messages, sets MPI_ERRORS_RETURN
 * so MPI_CHECK sees failures, and registers the abort hook that makes die_at() on any rank call
 * MPI_Abort(MPI_COMM_WORLD): one failing rank takes the whole job down instead of leaving the
 * others blocked in a collective. The communicator interface of the distributed issue builds on
 * this file. par_init also starts the collective deadlines of parallel/watchdog.h (a rank that dies
 * or hangs ends the job within REELFARM_COMM_TIMEOUT; docs/failure.md).
 */
#ifndef REELFARM_PARALLEL_PAR_RUNTIME_H
#define REELFARM_PARALLEL_PAR_RUNTIME_H

#include <stdbool.h>

enum par_mode {
    PAR_AUTO = 0,   /* MPI only when a launcher environment is present */
    PAR_FORCE = 1,  /* always MPI_Init (singleton if not launched) */
    PAR_NONE = 2,   /* never */
};

/* Returns 0; MPI failures at start-up are fatal. */
int par_init(int *argc, char ***argv, enum par_mode mode);
/* MPI_Finalize when par_init started MPI. */
void par_finalize(void);
bool par_active(void);
int par_rank(void);
int par_world(void);
/* True if the environment shows an MPI launcher (Open MPI, PMI, PMIx, Slurm step). */
bool par_launched(void);
/* A command failed on this rank: with other ranks in the job, MPI_Abort them all with exit_code (they
 * may be blocked in a collective that this rank will never join). No-op without MPI or alone. */
void par_abort_job(int exit_code);
/* A command ended with exit code rc on this rank: true when every rank of the job ended with the same code
 * within timeout_s (then rank 0 alone reports it, and the job ends normally); false otherwise, or alone. */
bool par_all_exited_alike(int rc, double timeout_s);
/* Barrier over MPI_COMM_WORLD (no-op without MPI). */
void par_barrier(void);
/* This rank is alive and working alone while others may wait for it in a collective (the lead
 * decoding video): restarts their collective deadline (REELFARM_COMM_TIMEOUT, parallel/watchdog.h).
 * Cheap enough for every frame: it sends at most once per timeout / 4. No-op without MPI. */
void par_heartbeat(void);

#endif /* REELFARM_PARALLEL_PAR_RUNTIME_H */
