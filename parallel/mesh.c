/* parallel/mesh.c - layout choice and the sub-communicators of the mesh (see mesh.h). */
#include "parallel/mesh.h"

#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "parallel/comm_mpi.h"
#include "parallel/par_runtime.h"

static int gcd(int a, int b) {
    while (b) {
        const int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void divisors(char *buf, size_t cap, int64_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int64_t d = 1; d <= n && used + 16 < cap; d++)
        if (n % d == 0) used += (size_t)snprintf(buf + used, cap - used, "%s%lld", used ? ", " : "", (long long)d);
}

int par_layout_choose(struct par_layout *out, int world, const struct par_request *req,
                      const struct par_model_facts *f) {
    memset(out, 0, sizeof *out);
    char dv[256];
    if (world < 1) return err_set(ERR_INVALID_ARG, "no compute ranks");
    if (req->sp < 0 || req->tp < 0 || req->ulysses < 0)
        return err_set(ERR_INVALID_ARG, "--sp, --tp and --ulysses take positive numbers");
    int cfg = req->cfg == 2 ? 2 : 1;
    if (req->cfg == 2 && !f->guidance)
        return err_set(ERR_INVALID_ARG, "--cfg-parallel: guidance <= 1 runs one pass per step; nothing to split");
    const int tp = req->tp ? req->tp : 1;
    if (f->heads % tp != 0) {
        divisors(dv, sizeof dv, f->heads);
        return err_set(ERR_INVALID_ARG, "--tp %d: does not divide the model's %d attention heads (possible: %s)", tp,
                       f->heads, dv);
    }
    if (f->ffn_dim % tp != 0)
        return err_set(ERR_INVALID_ARG, "--tp %d: does not divide the model's FFN width %lld", tp,
                       (long long)f->ffn_dim);
    if (req->cfg == 0 && f->guidance && world % (2 * tp) == 0 && (!req->sp || req->sp * 2 * tp == world)) cfg = 2;
    if (world % (cfg * tp) != 0)
        return err_set(ERR_INVALID_ARG, "%d ranks cannot hold cfg %d x tp %d (need a multiple of %d)", world, cfg, tp,
                       cfg * tp);
    const int sp = req->sp ? req->sp : world / (cfg * tp);
    if (cfg * sp * tp != world)
        return err_set(ERR_INVALID_ARG, "layout cfg %d x sp %d x tp %d = %d ranks, but the job has %d compute ranks",
                       cfg, sp, tp, cfg * sp * tp, world);
    const int heads_per_tp = f->heads / tp;
    int ulysses = req->ulysses ? req->ulysses : gcd(sp, heads_per_tp);
    if (sp % ulysses != 0)
        return err_set(ERR_INVALID_ARG, "--ulysses %d: does not divide --sp %d", ulysses, sp);
    if (heads_per_tp % ulysses != 0) {
        divisors(dv, sizeof dv, heads_per_tp);
        return err_set(ERR_INVALID_ARG, "--ulysses %d: does not divide the %d heads each tensor-parallel rank holds "
                       "(possible: %s; the rest of --sp runs as ring attention)", ulysses, heads_per_tp, dv);
    }
    *out = (struct par_layout){.cfg = cfg, .sp = sp, .ulysses = ulysses, .ring = sp / ulysses, .tp = tp};
    return ERR_OK;
}

const char *par_layout_describe(const struct par_layout *l, char *buf, size_t cap) {
    snprintf(buf, cap, "cfg %d x sp %d (ulysses %d x ring %d) x tp %d", l->cfg, l->sp, l->ulysses, l->ring, l->tp);
    return buf;
}

static struct comm *split(int color, int key, int size, const char *name) {
    MPI_Comm sub;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &sub));
    if (sub == MPI_COMM_NULL) return comm_self();
    struct comm *c = size > 1 ? comm_mpi_create(sub, name) : comm_self();
    MPI_CHECK(MPI_Comm_free(&sub));
    return c;
}

int par_mesh_create(struct par_mesh *m, const struct par_layout *l) {
    memset(m, 0, sizeof *m);
    m->layout = *l;
    const int n = l->cfg * l->sp * l->tp;
    m->world_size = par_active() ? par_world() : 1;
    m->world_rank = par_active() ? par_rank() : 0;
    if (n > m->world_size)
        return err_set(ERR_INVALID_ARG, "layout of %d ranks in a job of %d", n, m->world_size);
    m->member = m->world_rank < n;
    int r = m->member ? m->world_rank : 0;
    m->tp_idx = r % l->tp;
    r /= l->tp;
    m->ulysses_idx = r % l->ulysses;
    r /= l->ulysses;
    m->ring_idx = r % l->ring;
    m->cfg_idx = r / l->ring;
    m->sp_idx = m->ring_idx * l->ulysses + m->ulysses_idx;
    if (!par_active()) {
        m->tp = m->sp = m->ulysses = m->ring = m->cfg = m->compute = m->world = comm_self();
        return ERR_OK;
    }
    if (!m->member) { /* MPI_Comm_split is collective over the world: take part, belong to nothing */
        for (int i = 0; i < 6; i++) split(MPI_UNDEFINED, 0, 1, "none");
        m->tp = m->sp = m->ulysses = m->ring = m->cfg = m->compute = comm_self();
        m->world = comm_mpi_create(MPI_COMM_WORLD, "world");
        return ERR_OK;
    }
    /* colors: the coordinates the group shares; keys: the coordinate it spans */
    m->tp = split(m->cfg_idx * l->sp + m->sp_idx, m->tp_idx, l->tp, "tp");
    m->sp = split(m->cfg_idx * l->tp + m->tp_idx, m->sp_idx, l->sp, "sp");
    m->ulysses = split((m->cfg_idx * l->ring + m->ring_idx) * l->tp + m->tp_idx, m->ulysses_idx, l->ulysses,
                       "ulysses");
    m->ring = split((m->cfg_idx * l->ulysses + m->ulysses_idx) * l->tp + m->tp_idx, m->ring_idx, l->ring, "ring");
    m->cfg = split(m->sp_idx * l->tp + m->tp_idx, m->cfg_idx, l->cfg, "cfg");
    m->compute = split(0, m->world_rank, n, "compute");
    m->world = m->world_size > 1 ? comm_mpi_create(MPI_COMM_WORLD, "world") : comm_self();
    return ERR_OK;
}

void par_mesh_destroy(struct par_mesh *m) {
    comm_destroy(&m->tp);
    comm_destroy(&m->sp);
    comm_destroy(&m->ulysses);
    comm_destroy(&m->ring);
    comm_destroy(&m->cfg);
    comm_destroy(&m->compute);
    comm_destroy(&m->world);
}

void par_mesh_stats(const struct par_mesh *m, struct comm_stats *total) {
    memset(total, 0, sizeof *total);
    const struct comm *all[] = {m->tp, m->sp, m->ulysses, m->ring, m->cfg, m->compute, m->world};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i] != comm_self()) comm_stats_add(total, all[i]);
}
