/* coordinator/service.h - the render service (`reelfarm serve`, issue 9, docs/protocol.md).
 *
 * One long-lived process (world rank 0 under mpirun) answers versioned JSON requests on a REP socket
 * (submit, status, list, cancel, shutdown), publishes progress events on a PUB socket, keeps a queue of
 * films journalled in its state directory, and renders the jobs one after another through a runner
 * callback (cli/cmd_serve.c: worker_render_with on models loaded once; under MPI it broadcasts each job
 * to the other ranks). This file owns the sockets, the queue, the journal and the protocol; it renders
 * nothing and knows nothing of models or MPI (coordinator/ stays on io/ and core/).
 *
 * Threads: the caller's thread runs the jobs (the runner); a network thread answers requests while a
 * job runs. Cancel and shutdown reach the running job through the runner's stop hook, polled at every
 * denoising row boundary; the job then stops like SIGTERM (checkpoint kept). SIGINT/SIGTERM to the
 * server stop the running job the same way and shut the service down; the journal keeps the job, so a
 * restarted server resumes it from its checkpoint.
 */
#ifndef REELFARM_COORDINATOR_SERVICE_H
#define REELFARM_COORDINATOR_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "coordinator/progress.h"

#define SERVICE_PROTOCOL_VERSION 1
#define SERVICE_REQUEST_MAX ((size_t)4 << 20)  /* larger requests get an error reply */
#define SERVICE_REQUEST_HARD ((size_t)8 << 20) /* larger ones drop the connection (ZMQ_MAXMSGSIZE) */
#define SERVICE_JOBS_KEPT 200                  /* finished jobs kept for status (oldest dropped first) */

/* One job as the runner sees it. */
struct service_job {
    const char *id;
    const char *film;   /* film JSON (coordinator/film.h), validated at submit; "output" absolute */
    const char *output; /* the film's output */
    bool overwrite;     /* start again over an existing output or checkpoint */
};

/* What the runner passes to the render: a stop hook (true: stop at this row boundary) and the progress hook. */
struct service_hooks {
    bool (*stop)(void *user);
    void *stop_user;
    progress_hook_fn progress;
    void *progress_user;
};

/* Render one job, blocking. Returns ERR_OK (done), ERR_INTERRUPTED (stopped through hooks->stop or a
 * signal; its checkpoint was kept), or another negative err_code with err_message() (failed). */
typedef int (*service_run_fn)(void *user, const struct service_job *job, const struct service_hooks *hooks);

struct msock_curve; /* io/msg_socket.h */

struct service_options {
    const char *bind;      /* REP endpoint, e.g. tcp://127.0.0.1:5590 */
    const char *pub;       /* PUB endpoint; NULL: the bind port + 1 */
    const char *state_dir; /* journal.json lives here (created if missing) */
    const char *model_dir; /* the loaded model (reported by status; films naming another are refused) */
    const char *layout;    /* e.g. "cfg 2 x sp 1 x tp 1 on 2 ranks" (reported by status) */
    double load_s;         /* seconds the model took to load at start-up (reported by status) */
    void (*idle)(void *user); /* called about every 200 ms between jobs (MPI: heartbeats), NULL: none */
    /* CURVE (docs/protocol.md "Security"): the server's key pair, and the folder of allowed clients' .pub
     * files; both sockets then authenticate and encrypt. NULL: none (loopback and ipc:// only). */
    const struct msock_curve *curve;
    const char *allow_dir;
    /* Folders a submitted film may name files in (output, image, end_image, extend, shot images), resolved
     * (symbolic links followed) before the check; at least one. */
    const char *const *files_roots;
    int n_files_roots;
};

#define SERVICE_FILES_ROOTS_MAX 16

/* Refuse endpoints other machines could reach unless CURVE is on: ERR_INVALID_ARG naming the flag. */
int service_check_endpoint(const char *flag, const char *endpoint, bool curve);
/* The default PUB endpoint for a tcp:// REP endpoint: the same host, port + 1 (ipc: PATH.pub). */
int service_default_pub(const char *bind, char *out, size_t cap);

/* Run the service until a shutdown request or SIGINT/SIGTERM. Returns ERR_OK, or an error binding the
 * sockets or reading the journal (before any job ran). */
int service_run(const struct service_options *opt, service_run_fn run, void *user);
/* user is passed to run and to opt->idle. */

#endif /* REELFARM_COORDINATOR_SERVICE_H */
