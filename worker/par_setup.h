/* worker/par_setup.h - one job's parallel layout: the process mesh, this rank's model slice and the
 * DiT's view of the mesh (issue "distributed", spec 9).
 *
 * Every rank of MPI_COMM_WORLD calls worker_par_open with the same request: the layout is chosen
 * from the rank count and the model's config (par_layout_choose, parallel/mesh.h), so every rank
 * takes the same decision and a refused layout is refused by all, before any work. World rank 0
 * is the writer: it alone writes outputs and checkpoints and prints progress.
 */
#ifndef REELFARM_WORKER_PAR_SETUP_H
#define REELFARM_WORKER_PAR_SETUP_H

#include <stdbool.h>

#include "model/wan_dit.h"
#include "parallel/mesh.h"

struct worker_par {
    struct par_mesh mesh;
    struct wan_dit_par dit;
    char layout[96]; /* par_layout_describe */
};

/* Choose the layout for the job's ranks but the last `helpers` (which compute no DiT: the render's encoder
 * rank), build the mesh and load this rank's slice of the DiT at model_dir (helpers load none: *model NULL). */
int worker_par_open(struct worker_par *wp, const struct par_request *req, const char *model_dir, bool guidance,
                    int helpers, struct wan_model **model);
void worker_par_close(struct worker_par *wp);
bool worker_par_writer(const struct worker_par *wp);

#endif /* REELFARM_WORKER_PAR_SETUP_H */
