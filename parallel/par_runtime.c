/* parallel/par_runtime.c - MPI bring-up and the abort hook. */
#include "parallel/par_runtime.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/error.h"
#include "core/log.h"
#include "core/process.h"
#include "core/timer.h"
#include "parallel/watchdog.h"

static bool par_started = false;

bool par_launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

/* die_at() on any rank ends here: take every rank down, not just this one. */
static void mpi_abort_hook(int exit_code, void *user) {
    (void)user;
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

int par_init(int *argc, char ***argv, enum par_mode mode) {
    if (mode == PAR_NONE || (mode == PAR_AUTO && !par_launched())) return ERR_OK;
    int provided = 0;
    int rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) FATAL("MPI_Init_thread failed (%d)", rc);
    par_started = true;
    proc_add_abort_hook(mpi_abort_hook, NULL);
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    int rank = 0, world = 1;
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world));
    proc_set_rank(rank, world);
    par_watchdog_init(); /* collective deadlines: host names, report channel (parallel/watchdog.h) */
    LOG_DEBUG("MPI up: rank %d of %d (thread level %d)", rank, world, provided);
    return ERR_OK;
}

void par_finalize(void) {
    if (!par_started) return;
    proc_remove_abort_hook(mpi_abort_hook, NULL);
    par_watchdog_free();
    MPI_Finalize();
    par_started = false;
}

bool par_active(void) { return par_started; }
int par_rank(void) { return proc_rank(); }
int par_world(void) { return proc_world(); }

void par_abort_job(int exit_code) {
    if (!par_started || par_world() <= 1) return;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, exit_code);
}

bool par_all_exited_alike(int rc, double timeout_s) {
    if (!par_started || par_world() <= 1) return false;
    /* min of (rc, -rc) over the ranks: every rank has rc iff min == rc and -min(-rc) == rc */
    int mine[2] = {rc, -rc}, all[2] = {0, 0};
    MPI_Comm c;
    if (MPI_Comm_dup(MPI_COMM_WORLD, &c) != MPI_SUCCESS) return false;
    MPI_Request req;
    if (MPI_Iallreduce(mine, all, 2, MPI_INT, MPI_MIN, c, &req) != MPI_SUCCESS) return false;
    const double end = time_now() + timeout_s;
    int done = 0;
    while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done && time_now() < end) {
        const struct timespec ts = {0, 1000000}; /* 1 ms: the other ranks may share this core */
        nanosleep(&ts, NULL);
    }
    if (!done) return false; /* the request stays pending: the job is about to end */
    MPI_Comm_free(&c);
    return all[0] == rc && -all[1] == rc;
}

void par_barrier(void) {
    if (par_started) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
}

void par_heartbeat(void) {
    if (par_started) par_watchdog_heartbeat();
}
