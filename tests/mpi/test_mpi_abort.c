/* tests/mpi/test_mpi_abort.c - a fatal error on one rank ends the whole MPI job.
 *
 * Run by run_abort_test.sh under mpirun with 3 ranks: rank 1 hits a failing CHECK while the other
 * ranks wait in a barrier that can never complete. Without the abort hook they would hang; with it
 * mpirun returns non-zero within seconds. Invoked with "single" it runs without MPI and checks the
 * plain exit code of the fatal path instead.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "parallel/par_runtime.h"

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "single") == 0) {
        par_init(&argc, &argv, PAR_NONE);
        CHECK(1 + 1 == 3, "deliberate failure without MPI (value %d)", 2);
        return 0; /* unreachable */
    }
    par_init(&argc, &argv, PAR_FORCE);
    if (par_rank() == 1) {
        usleep(200 * 1000);
        CHECK(par_world() < 0, "deliberate failure on rank %d of %d", par_rank(), par_world());
    }
    par_barrier(); /* never completes: rank 1 is gone */
    printf("rank %d passed a barrier it should not have\n", par_rank());
    par_finalize();
    return 0;
}
