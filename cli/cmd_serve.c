/* cli/cmd_serve.c - `reelfarm serve`: the render service (issue 9; coordinator/service.h, docs/protocol.md).
 *
 * Every rank loads the models once (worker/worker.h: render_models_load, the same layout flags as render);
 * world rank 0 then runs the service (sockets, queue, journal) and, for each job, broadcasts the film and
 * its flags to the other ranks, which wait for jobs in a loop and render them with it collectively. The
 * other ranks speak MPI only. A job failing on some ranks only ends the whole MPI job (as render does).
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "coordinator/film.h"
#include "coordinator/render_settings.h"
#include "coordinator/service.h"
#include "core/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/msg_socket.h"
#include "parallel/par_runtime.h"
#include "worker/worker.h"

static const char serve_help[] =
    "Usage: reelfarm serve --bind ENDPOINT [--pub ENDPOINT] [--model DIR] --state-dir DIR [options]\n"
    "\n"
    "Runs the render service: loads the model once, answers JSON requests on --bind (submit, status,\n"
    "list, cancel, shutdown; docs/protocol.md), publishes progress events on --pub, and renders the\n"
    "submitted films one after another on every rank of the job. The queue is journalled in --state-dir:\n"
    "a restarted server restores it and resumes the job that was running from its checkpoint.\n"
    "Clients: reelfarm submit FILM.json --to ENDPOINT, reelfarm status|watch|cancel --to ENDPOINT.\n"
    "\n"
    "  --bind EP                 request socket (REP): tcp://127.0.0.1:PORT, tcp://[::1]:PORT or ipc://PATH;\n"
    "                            any other address (tcp://0.0.0.0:PORT) only with CURVE (below)\n"
    "  --pub EP                  event socket (PUB), same rules (default: the --bind port + 1)\n"
    "  --curve-secret FILE       CURVE: the server's secret key (NAME.key from `reelfarm keygen`); both sockets\n"
    "                            then encrypt and authenticate; give clients NAME.pub (their --server-key)\n"
    "  --allow-dir DIR           CURVE: the clients allowed to connect, one NAME.pub each; others are refused\n"
    "                            and logged\n"
    "  --state-dir DIR           the journal (journal.json); created if missing\n"
    "  --files-root DIR          a folder whose files submitted films may read and write (their output, image,\n"
    "                            end_image, extend, shot images; links followed); repeatable, default: the\n"
    "                            working directory. Films naming anything else are refused\n"
    "  --model DIR               the model every job renders with (default: the built-in tiny model; films\n"
    "                            without settings then get render's small defaults)\n"
    "  --checkpoint-every K      checkpoint also every K denoising rows (default 0: at chunk ends)\n"
    "  --threads N\n"
    "\n" ARG_PARALLEL_HELP
    "  --encoder-rank            the last rank decodes and encodes (jobs need overlap_mode latent)\n"
    "\n"
    "Under mpirun every rank runs this command; rank 0 owns the sockets. SIGINT/SIGTERM (or a shutdown\n"
    "request) stop the running job at the next row boundary with its checkpoint kept, and exit 0.\n";

enum { SERVE_JOB = 1, SERVE_QUIT = 2 };
enum { OPT_BIND = 1000, OPT_PUB, OPT_STATE, OPT_CKPT_EVERY, OPT_ENCODER_RANK, OPT_CURVE_SECRET, OPT_ALLOW_DIR,
       OPT_FILES_ROOT };

struct serve {
    struct render_models *models;
    char model_dir[PATH_MAX];
    bool builtin;
    int checkpoint_every;
};

/* What rank 0 broadcasts before each job (then film_len bytes of film JSON). */
struct serve_header {
    int64_t op, film_len, overwrite, resume;
};

/* One job on every rank (hooks: rank 0's, NULL elsewhere). */
static int serve_render(struct serve *sv, const char *film, bool overwrite, bool resume,
                        const struct service_hooks *hooks) {
    struct render_settings s;
    render_settings_defaults(&s);
    char ckpt[PATH_MAX + 16] = "";
    int rc = film_load_text("submitted film", film, &s);
    if (rc == ERR_OK) s.set |= RS_BIT(RS_MODEL), rc = render_settings_set_str(&s.model, sv->model_dir);
    if (rc == ERR_OK && sv->builtin) { /* the same small film as `reelfarm render` without --model */
        if (!(s.set & RS_BIT(RS_RESOLUTION))) s.width = 128, s.height = 128;
        if (!(s.set & RS_BIT(RS_BASE_FRAMES))) s.base_frames = 17;
        if (!(s.set & RS_BIT(RS_OVERLAP))) s.overlap = 5;
        if (!(s.set & (RS_BIT(RS_FRAMES) | RS_BIT(RS_SECONDS))) && !s.n_shots) s.frames = 41;
        if (!(s.set & RS_BIT(RS_STEPS))) s.steps = 10;
    }
    if (rc == ERR_OK) snprintf(ckpt, sizeof ckpt, "%s.ckpt.h5", s.output);
    struct render_options o = {.settings = &s, .overwrite = overwrite, .quiet = true,
                               .checkpoint_every = sv->checkpoint_every, .resume = resume ? ckpt : NULL};
    if (hooks) {
        o.stop = hooks->stop, o.stop_user = hooks->stop_user;
        o.progress_hook = hooks->progress, o.progress_user = hooks->progress_user;
    }
    int sig = 0;
    if (rc == ERR_OK) rc = worker_render_with(sv->models, &o, &sig);
    render_settings_free(&s);
    if (par_world() > 1 && !par_all_exited_alike(rc, 10.0)) { /* some ranks failed: they may wait forever */
        fprintf(stderr, "reelfarm serve: error: rank %d: %s\n", par_rank(), err_message());
        par_abort_job(EXIT_RUN_ERROR);
    }
    return rc;
}

static void bcast_header(struct serve *sv, struct serve_header *h) {
    if (par_world() > 1) comm_bcast(render_models_world(sv->models), h, sizeof *h, 0);
}

/* Rank 0: the service's runner. */
static int run_job(void *user, const struct service_job *job, const struct service_hooks *hooks) {
    struct serve *sv = user;
    char ckpt[PATH_MAX + 16];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt.h5", job->output);
    /* the checks only rank 0 makes (it writes the files) come first, so every rank renders or none does */
    if (!job->overwrite && fs_exists(job->output))
        return err_set(ERR_EXISTS, "%s already exists; submit with --overwrite to replace it", job->output);
    const bool resume = !job->overwrite && fs_exists(ckpt);
    if (resume) LOG_INFO("service: job %s resumes from %s", job->id, ckpt);
    struct serve_header h = {.op = SERVE_JOB, .film_len = (int64_t)strlen(job->film), .overwrite = job->overwrite,
                             .resume = resume};
    bcast_header(sv, &h);
    if (par_world() > 1) comm_bcast(render_models_world(sv->models), (void *)job->film, (size_t)h.film_len, 0);
    return serve_render(sv, job->film, job->overwrite, resume, hooks);
}

static void idle(void *user) {
    (void)user;
    par_heartbeat(); /* the other ranks wait for the next job in a broadcast with a deadline */
}

/* Ranks other than 0: render what rank 0 broadcasts until it says quit. */
static int follow(struct serve *sv) {
    for (;;) {
        struct serve_header h;
        bcast_header(sv, &h);
        if (h.op != SERVE_JOB) return ERR_OK;
        char *film = malloc((size_t)h.film_len + 1);
        CHECK(film, "out of memory for a film of %lld bytes", (long long)h.film_len);
        comm_bcast(render_models_world(sv->models), film, (size_t)h.film_len, 0);
        film[h.film_len] = '\0';
        serve_render(sv, film, h.overwrite != 0, h.resume != 0, NULL);
        free(film);
    }
}

int cmd_serve(int argc, char **argv) {
    static const struct option longopts[] = {
        {"bind", required_argument, 0, OPT_BIND},       {"pub", required_argument, 0, OPT_PUB},
        {"state-dir", required_argument, 0, OPT_STATE}, {"model", required_argument, 0, 'm'},
        {"checkpoint-every", required_argument, 0, OPT_CKPT_EVERY},
        {"threads", required_argument, 0, 't'},         {"encoder-rank", no_argument, 0, OPT_ENCODER_RANK},
        {"curve-secret", required_argument, 0, OPT_CURVE_SECRET},
        {"allow-dir", required_argument, 0, OPT_ALLOW_DIR},
        {"files-root", required_argument, 0, OPT_FILES_ROOT},
        {"help", no_argument, 0, 'h'},                  ARG_PARALLEL_LONGOPTS,
        {0, 0, 0, 0}};
    static const char cmd[] = "serve";
    struct serve sv = {0};
    struct render_models_options mo = {.guidance = true};
    struct service_options so = {0};
    const char *model = NULL, *curve_secret = NULL;
    struct msock_curve curve;
    const char *roots_given[SERVICE_FILES_ROOTS_MAX];
    static char roots[SERVICE_FILES_ROOTS_MAX][PATH_MAX];
    const char *root_ptrs[SERVICE_FILES_ROOTS_MAX];
    int n_roots = 0;
    int64_t every = 0;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (arg_parallel(ch, optarg, &mo.par, &rc)) {
            if (rc < 0) return usage_error(cmd, "%s", err_message());
            continue;
        }
        switch (ch) {
        case OPT_BIND: so.bind = optarg; break;
        case OPT_PUB: so.pub = optarg; break;
        case OPT_STATE: so.state_dir = optarg; break;
        case 'm': model = optarg; break;
        case OPT_CKPT_EVERY: rc = arg_i64("--checkpoint-every", optarg, 0, 1 << 30, &every); break;
        case 't': rc = arg_int("--threads", optarg, 1, 4096, &mo.threads); break;
        case OPT_ENCODER_RANK: mo.encoder_rank = true; break;
        case OPT_CURVE_SECRET: curve_secret = optarg; break;
        case OPT_ALLOW_DIR: so.allow_dir = optarg; break;
        case OPT_FILES_ROOT:
            if (n_roots == SERVICE_FILES_ROOTS_MAX) return usage_error(cmd, "--files-root: at most %d", n_roots);
            roots_given[n_roots++] = optarg;
            break;
        case 'h': fputs(serve_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!so.bind) return usage_error(cmd, "give --bind ENDPOINT (e.g. tcp://127.0.0.1:5590)");
    if (!so.state_dir) return usage_error(cmd, "give --state-dir DIR (where the queue's journal is kept)");
    if (!curve_secret != !so.allow_dir)
        return usage_error(cmd, "CURVE needs both --curve-secret FILE (the server's key) and --allow-dir DIR (the "
                                "allowed clients' .pub files)");
    const bool use_curve = curve_secret != NULL;
    if (service_check_endpoint("--bind", so.bind, use_curve) < 0 ||
        (so.pub && service_check_endpoint("--pub", so.pub, use_curve) < 0))
        return usage_error(cmd, "%s", err_message());
    if (use_curve) { /* every rank checks (cheap): a bad key file fails before the model is loaded */
        if (msock_curve_load(&curve, curve_secret, NULL) < 0) return run_error();
        so.curve = &curve;
    }
    if (n_roots == 0) roots_given[n_roots++] = "."; /* the working directory */
    for (int i = 0; i < n_roots; i++) {
        if (!realpath(roots_given[i], roots[i]) || !fs_is_dir(roots[i]))
            return usage_error(cmd, "--files-root %s: not an existing folder", roots_given[i]);
        root_ptrs[i] = roots[i];
    }
    so.files_roots = root_ptrs, so.n_files_roots = n_roots;
    sv.checkpoint_every = (int)every;
    if (model) {
        if (!realpath(model, sv.model_dir)) {
            err_set(ERR_IO, "--model %s: no such folder", model);
            return run_error();
        }
    } else {
        if (worker_builtin_model(sv.model_dir, sizeof sv.model_dir) < 0) return run_error();
        sv.builtin = true;
        if (par_rank() == 0)
            fprintf(stderr, "reelfarm serve: no --model given: serving the built-in tiny model with random weights "
                            "(its videos are random noise)\n");
    }
    mo.model_dir = sv.model_dir;
    const double t_load = time_now();
    rc = render_models_load(&sv.models, &mo);
    if (rc < 0) return run_error();
    so.load_s = time_now() - t_load; /* reported by status: jobs reuse these models */
    so.model_dir = sv.model_dir;
    int ret = 0;
    if (par_rank() == 0) {
        so.idle = idle;
        rc = service_run(&so, run_job, &sv);
        struct serve_header quit = {.op = SERVE_QUIT};
        bcast_header(&sv, &quit);
        if (rc < 0) ret = run_error();
    } else {
        follow(&sv);
    }
    render_models_free(&sv.models);
    if (use_curve) memset(&curve, 0, sizeof curve);
    return ret;
}
