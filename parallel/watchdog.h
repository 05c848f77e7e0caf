/* parallel/watchdog.h - deadlines on collectives: a rank that dies or hangs ends the job in bounded time
 * (issue "failure"; docs/failure.md).
 *
 * comm_mpi.c starts every collective (and point-to-point message) nonblocking and waits for it here.
 * The wait polls the request: a yielding spin of 0.5 ms first (the fast path: partners are already
 * there), then sleeps that grow from 50 us to 1 ms, so a rank waiting on a stalled partner does not
 * burn a core (ranks may be oversubscribed).
 * When the wait outlasts the deadline (REELFARM_COMM_TIMEOUT seconds, default 300; 0 or "off": none)
 * the rank sends a small report to every other rank over a private duplicate of MPI_COMM_WORLD and
 * collects theirs for a grace period (timeout / 10, between 2 and 20 s). Ranks that sent no report
 * are neither waiting in a collective nor able to answer: they are named as the suspects, with the
 * host names gathered at start-up, the members of the communicator waited on first. The
 * lowest-numbered reporting rank prints one FATAL line (its rank and host, the collective, the
 * communicator, how long it waited, the suspects and their hosts) and ends the job with MPI_Abort;
 * the other reporters wait a further grace period for that abort and print their own line only if it
 * never comes. When every rank reports, the collectives do not match (a bug) and the line says where
 * each rank waits.
 *
 * A rank that works alone for long while the others wait (the lead decoding video on the CPU) calls
 * par_heartbeat() (par_runtime.h) from its loop: a waiting rank's deadline restarts at every heartbeat
 * it receives, so the timeout bounds how long a silent rank may take, not how long the work may take.
 * The heartbeats are zero-byte messages, sent at most every timeout / 4.
 *
 * It does not watch MPI calls made outside comm_mpi.c (MPI_Comm_split, MPI_Finalize, parallel HDF5):
 * those are left to the launcher. Under mpirun a killed rank is noticed by mpirun itself, which ends
 * the job within about 2 s and names the rank; the deadline is what ends a job whose rank is stopped
 * or stuck, or one under a launcher that keeps the others waiting.
 *
 * parallel/comm_nccl.c waits the same way through par_watchdog_wait_poll(): its poll function reads
 * CUDA events and the NCCL communicator's state instead of an MPI request, so NCCL collectives share
 * the deadline, the reports, the heartbeats and the error line.
 *
 * Test hook: REELFARM_TEST_COMM_FAULT=rank:n[:KILL|STOP] makes world rank `rank` raise SIGKILL (the
 * default) or SIGSTOP on itself as it enters its n-th collective (counted over all communicators).
 */
#ifndef REELFARM_PARALLEL_WATCHDOG_H
#define REELFARM_PARALLEL_WATCHDOG_H

#include <mpi.h>
#include <stdint.h>

/* Where a wait happens, for the error line. */
struct par_wait_site {
    const char *comm;   /* the communicator's name ("sp", "world", ...) */
    const char *op;     /* "allgather", "alltoall", "bcast", "barrier", "send", "recv" */
    int64_t call;       /* this communicator's collective number, from 1 */
    int size;           /* ranks in the communicator */
    const int *members; /* their world ranks [size] (NULL: unknown) */
    double min_timeout; /* the deadline is at least this many seconds for this wait (set-up calls that do
                         * local work, such as NCCL's communicator init); 0: REELFARM_COMM_TIMEOUT alone */
};

/* What one poll of a pending operation found (par_watchdog_wait_poll). */
enum par_poll {
    PAR_POLL_PENDING = 0,  /* not finished */
    PAR_POLL_DONE = 1,     /* finished: the wait returns */
    PAR_POLL_PROGRESS = 2, /* not finished, but a stage of it has: the deadline starts again */
};
typedef enum par_poll (*par_poll_fn)(void *user);

/* Collective over MPI_COMM_WORLD, from par_init: read the settings, duplicate the world for reports
 * and heartbeats, gather every rank's host name. */
void par_watchdog_init(void);
/* From par_finalize: drop pending heartbeats and free the duplicate. */
void par_watchdog_free(void);
/* The deadline in seconds (0: none). Valid before par_watchdog_init (it reads the environment). */
double par_watchdog_timeout(void);
/* Called as a collective starts: counts it and fires the test hook. */
void par_watchdog_enter(void);
/* Wait for a collective's (or a message's) request, or end the job when the deadline passes. */
void par_watchdog_wait(MPI_Request *req, const struct par_wait_site *site);
/* The same, keeping the request's status (a receive's count). */
void par_watchdog_wait_status(MPI_Request *req, MPI_Status *status, const struct par_wait_site *site);
/* The wait of par_watchdog_wait for anything that can be polled (CUDA events, an NCCL communicator's
 * state): the same spin, sleeps, heartbeats, deadline and failure report. `poll` may end the job itself
 * when it sees a failure. */
void par_watchdog_wait_poll(par_poll_fn poll, void *user, const struct par_wait_site *site);
/* See par_heartbeat(). */
void par_watchdog_heartbeat(void);

#endif /* REELFARM_PARALLEL_WATCHDOG_H */
