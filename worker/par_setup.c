/* worker/par_setup.c - layout, mesh and model slice of one job (see par_setup.h). */
#include "worker/par_setup.h"

#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "model/wan_config.h"
#include "parallel/par_runtime.h"

int worker_par_open(struct worker_par *wp, const struct par_request *req, const char *model_dir, bool guidance,
                    int helpers, struct wan_model **model) {
    memset(wp, 0, sizeof *wp);
    *model = NULL;
    struct wan_model_files files;
    TRY(wan_model_locate(model_dir, &files));
    struct wan_config cfg;
    int rc = wan_config_read(files.config_path, &cfg);
    wan_model_files_free(&files);
    if (rc < 0) return rc;
    const int world = (par_active() ? par_world() : 1) - helpers;
    if (world < 1)
        return err_set(ERR_INVALID_ARG, "%d ranks: at least %d are needed (one computing, %d helper%s)", world + helpers,
                       helpers + 1, helpers, helpers == 1 ? "" : "s");
    const struct par_model_facts facts = {.heads = (int)cfg.num_heads, .ffn_dim = cfg.ffn_dim, .guidance = guidance};
    struct par_layout layout;
    TRY(par_layout_choose(&layout, world, req, &facts));
    TRY(par_mesh_create(&wp->mesh, &layout));
    par_layout_describe(&layout, wp->layout, sizeof wp->layout);
    wp->dit = (struct wan_dit_par){.sp = wp->mesh.sp, .ulysses = wp->mesh.ulysses, .ring = wp->mesh.ring,
                                   .tp = wp->mesh.tp};
    if (world + helpers > 1 && worker_par_writer(wp))
        LOG_INFO("parallel layout: %s on %d ranks%s", wp->layout, world, helpers ? " + 1 encoder rank" : "");
    if (!wp->mesh.member) return ERR_OK;
    rc = wan_model_load_tp(model, model_dir, wp->mesh.tp_idx, layout.tp);
    if (rc < 0) worker_par_close(wp);
    return rc;
}

void worker_par_close(struct worker_par *wp) { par_mesh_destroy(&wp->mesh); }

bool worker_par_writer(const struct worker_par *wp) { return wp->mesh.world_rank == 0; }
