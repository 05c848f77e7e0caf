/* coordinator/service.c - the render service: sockets, queue, journal, protocol (see service.h and
 * docs/protocol.md). */
#include "coordinator/progress_pub.h"
#include "coordinator/service.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coordinator/film.h"
#include "coordinator/render_settings.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/msg_socket.h"

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_CANCELLED };
static const char *const state_names[] = {"queued", "running", "done", "failed", "cancelled"};

struct job {
    char id[24];
    enum job_state state;
    char *film, *output, *error;
    bool overwrite;
    bool resumed;          /* restored from the journal while it was running */
    double submitted;      /* unix time */
    /* the last progress event (for status) */
    long long rows_done, rows_total, frames_done, frames_total, chunk, chunks;
    double s_per_row, eta_s;
};

enum stop_reason { STOP_NONE, STOP_CANCEL, STOP_SHUTDOWN };

struct service {
    const struct service_options *opt;
    char pub_ep[PATH_MAX];
    char journal[PATH_MAX + 32];
    struct msock *rep, *pub;
    pthread_mutex_t lock;     /* everything below, and the PUB socket */
    pthread_cond_t wake;      /* a job was queued, or shutdown */
    struct job **jobs;        /* submission order */
    int n_jobs, cap_jobs;
    long long next_id;
    struct job *running;
    enum stop_reason stop;    /* asked of the running job */
    bool shutdown;
};

static volatile sig_atomic_t g_service_signal;

static void on_service_signal(int sig) { g_service_signal = sig; }


/* ---- endpoints ---- */

int service_check_endpoint(const char *flag, const char *ep, bool curve) {
    if (strncmp(ep, "tcp://", 6) != 0 && strncmp(ep, "ipc://", 6) != 0)
        return err_set(ERR_INVALID_ARG, "%s %s: expected tcp://HOST:PORT or ipc://PATH", flag, ep);
    if (!curve && !msock_endpoint_is_local(ep))
        return err_set(ERR_INVALID_ARG, "%s %s: without CURVE authentication reelfarm listens on loopback only "
                                        "(tcp://127.0.0.1:PORT, tcp://[::1]:PORT or ipc://PATH); give --curve-secret "
                                        "FILE --allow-dir DIR (reelfarm keygen) or reach it through an SSH tunnel",
                       flag, ep);
    return ERR_OK;
}

int service_default_pub(const char *bind, char *out, size_t cap) {
    if (!strncmp(bind, "ipc://", 6)) {
        if ((size_t)snprintf(out, cap, "%s.pub", bind) >= cap) return err_set(ERR_INVALID_ARG, "--bind: too long");
        return ERR_OK;
    }
    const char *colon = strrchr(bind, ':');
    char *end = NULL;
    const long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || !end || *end || port <= 0 || port >= 65535)
        return err_set(ERR_INVALID_ARG, "--bind %s: no numeric port to derive --pub from; give --pub", bind);
    if ((size_t)snprintf(out, cap, "%.*s:%ld", (int)(colon - bind), bind, port + 1) >= cap)
        return err_set(ERR_INVALID_ARG, "--bind: too long");
    return ERR_OK;
}

/* ---- jobs and the journal ---- */

static void job_free(struct job *j) {
    if (!j) return;
    free(j->film), free(j->output), free(j->error);
    free(j);
}

static struct job *job_find(struct service *sv, const char *id) {
    for (int i = 0; i < sv->n_jobs; i++)
        if (!strcmp(sv->jobs[i]->id, id)) return sv->jobs[i];
    return NULL;
}

static bool job_finished(const struct job *j) { return j->state >= JOB_DONE; }

/* Append a job; drop the oldest finished jobs past SERVICE_JOBS_KEPT. */
static int job_add(struct service *sv, struct job *j) {
    int finished = 0;
    for (int i = 0; i < sv->n_jobs; i++) finished += job_finished(sv->jobs[i]);
    for (int i = 0; i < sv->n_jobs && finished >= SERVICE_JOBS_KEPT; i++) {
        if (!job_finished(sv->jobs[i])) continue;
        job_free(sv->jobs[i]);
        memmove(&sv->jobs[i], &sv->jobs[i + 1], (size_t)(sv->n_jobs - i - 1) * sizeof *sv->jobs);
        sv->n_jobs--, i--, finished--;
    }
    if (sv->n_jobs == sv->cap_jobs) {
        const int cap = sv->cap_jobs ? 2 * sv->cap_jobs : 16;
        struct job **g = realloc(sv->jobs, (size_t)cap * sizeof *g);
        if (!g) return err_set(ERR_NOMEM, "out of memory");
        sv->jobs = g, sv->cap_jobs = cap;
    }
    sv->jobs[sv->n_jobs++] = j;
    return ERR_OK;
}

static cJSON *job_json(const struct job *j, bool with_film) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", j->id);
    cJSON_AddStringToObject(o, "state", state_names[j->state]);
    cJSON_AddStringToObject(o, "output", j->output);
    cJSON_AddNumberToObject(o, "submitted", j->submitted);
    if (j->overwrite) cJSON_AddBoolToObject(o, "overwrite", true);
    if (j->resumed) cJSON_AddBoolToObject(o, "resumed", true);
    if (j->error) cJSON_AddStringToObject(o, "error", j->error);
    if (j->rows_total > 0) {
        cJSON_AddNumberToObject(o, "chunk", (double)j->chunk);
        cJSON_AddNumberToObject(o, "chunks", (double)j->chunks);
        cJSON_AddNumberToObject(o, "rows_done", (double)j->rows_done);
        cJSON_AddNumberToObject(o, "rows_total", (double)j->rows_total);
        cJSON_AddNumberToObject(o, "frames_done", (double)j->frames_done);
        cJSON_AddNumberToObject(o, "frames_total", (double)j->frames_total);
        if (j->s_per_row > 0) cJSON_AddNumberToObject(o, "s_per_row", j->s_per_row);
        if (j->eta_s >= 0 && j->s_per_row > 0) cJSON_AddNumberToObject(o, "eta_s", j->eta_s);
    }
    if (with_film) cJSON_AddStringToObject(o, "film", j->film);
    return o;
}

/* Rewrite the journal atomically (temp file + rename). Called with the lock held. A failure is logged:
 * the queue in memory stays right, only a restart would lose the change. */
static void journal_write(struct service *sv) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "v", SERVICE_PROTOCOL_VERSION);
    cJSON_AddStringToObject(root, "format", "reelfarm-service-journal");
    cJSON_AddNumberToObject(root, "next_id", (double)sv->next_id);
    cJSON *jobs = cJSON_AddArrayToObject(root, "jobs");
    for (int i = 0; i < sv->n_jobs; i++) cJSON_AddItemToArray(jobs, job_json(sv->jobs[i], true));
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text || fs_write_file(sv->journal, text, strlen(text), true) < 0)
        LOG_ERROR("service: cannot write the journal %s: %s", sv->journal, text ? err_message() : "out of memory");
    free(text);
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Restore the queue: finished jobs as they were, queued ones in order, the running one first (its
 * checkpoint makes it resume). */
static int journal_read(struct service *sv) {
    if (!fs_exists(sv->journal)) return ERR_OK;
    char *text = NULL;
    size_t len = 0;
    TRY(fs_read_file(sv->journal, &text, &len, (size_t)256 << 20));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(root, "jobs");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(root, "next_id");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "v");
    if (!root || !cJSON_IsArray(jobs) || !cJSON_IsNumber(next) || !cJSON_IsNumber(v) ||
        v->valueint != SERVICE_PROTOCOL_VERSION) {
        cJSON_Delete(root);
        return err_set(ERR_FORMAT, "%s: not a reelfarm service journal of version %d; move it away to start with "
                                   "an empty queue", sv->journal, SERVICE_PROTOCOL_VERSION);
    }
    sv->next_id = (long long)next->valuedouble;
    int rc = ERR_OK, restored = 0, resumed = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, jobs) {
        const char *id = jstr(it, "id"), *state = jstr(it, "state"), *film = jstr(it, "film"), *out = jstr(it, "output");
        int st = -1;
        for (int k = 0; state && k < 5; k++)
            if (!strcmp(state, state_names[k])) st = k;
        if (!id || strlen(id) >= sizeof ((struct job *)0)->id || st < 0 || !film || !out) {
            rc = err_set(ERR_FORMAT, "%s: a job entry lacks id, state, film or output", sv->journal);
            break;
        }
        struct job *j = calloc(1, sizeof *j);
        if (!j || !(j->film = strdup(film)) || !(j->output = strdup(out))) {
            job_free(j);
            rc = err_set(ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(j->id, sizeof j->id, "%s", id);
        j->state = (enum job_state)st;
        j->overwrite = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "overwrite"));
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(it, "submitted");
        j->submitted = cJSON_IsNumber(sub) ? sub->valuedouble : 0;
        const char *e = jstr(it, "error");
        if (e) j->error = strdup(e);
        if (j->state == JOB_RUNNING) { /* interrupted with the server: resume it before the queued ones */
            j->state = JOB_QUEUED, j->resumed = true;
            j->overwrite = false; /* its checkpoint is the point now */
            resumed++;
        }
        if ((rc = job_add(sv, j)) < 0) {
            job_free(j);
            break;
        }
        if (j->resumed) { /* move it in front of every queued job */
            int first = 0;
            while (first < sv->n_jobs - 1 && job_finished(sv->jobs[first])) first++;
            memmove(&sv->jobs[first + 1], &sv->jobs[first], (size_t)(sv->n_jobs - 1 - first) * sizeof *sv->jobs);
            sv->jobs[first] = j;
        }
        restored += j->state == JOB_QUEUED;
    }
    cJSON_Delete(root);
    if (rc == ERR_OK && restored)
        LOG_INFO("service: restored %d queued job%s from %s (%d to resume)", restored, restored == 1 ? "" : "s",
                 sv->journal, resumed);
    return rc;
}

/* ---- files a client may name ---- */

/* Whether path lies inside one of the --files-root folders, symbolic links followed: the path itself when it
 * exists, else its folder (an output not written yet), which must exist. */
static bool path_allowed(const struct service_options *opt, const char *path) {
    char real[PATH_MAX], dir[PATH_MAX];
    if (!realpath(path, real)) {
        const char *slash = strrchr(path, '/');
        if (!slash || slash == path || (size_t)(slash - path) >= sizeof dir) return false;
        memcpy(dir, path, (size_t)(slash - path)), dir[slash - path] = '\0';
        char rdir[PATH_MAX];
        if (!realpath(dir, rdir) || snprintf(real, sizeof real, "%s%s", rdir, slash) >= (int)sizeof real) return false;
    }
    for (int i = 0; i < opt->n_files_roots; i++) {
        const char *root = opt->files_roots[i];
        const size_t n = strlen(root);
        if (!strncmp(real, root, n) && (real[n] == '/' || real[n] == '\0' || (n == 1 && root[0] == '/'))) return true;
    }
    return false;
}

/* The first file of a submitted film outside the allowed folders (its JSON key in *key), or NULL. */
static const char *film_path_outside(const struct service_options *opt, const struct render_settings *s,
                                     char *key, size_t cap) {
    const struct {
        const char *name, *path;
    } one[] = {{"output", s->output}, {"image", s->image}, {"end_image", s->end_image}, {"extend", s->extend}};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        if (one[i].path && !path_allowed(opt, one[i].path)) {
            snprintf(key, cap, "$.%s", one[i].name);
            return one[i].path;
        }
    for (int i = 0; i < s->n_shots; i++)
        if (s->shots[i].image && !path_allowed(opt, s->shots[i].image)) {
            snprintf(key, cap, "$.shots[%d].image", i);
            return s->shots[i].image;
        }
    return NULL;
}

/* ---- events ---- */

/* Publish one event object (consumed). Called with the lock held. */
static void publish(struct service *sv, cJSON *ev) {
    char *text = ev ? cJSON_PrintUnformatted(ev) : NULL;
    cJSON_Delete(ev);
    if (!text) return;
    if (msock_send(sv->pub, text, strlen(text), 100) < 0) LOG_WARN("service: %s", err_message());
    free(text);
}

static void publish_state(struct service *sv, const struct job *j) {
    cJSON *ev = progress_event_new(state_names[j->state], j->id, NULL);
    cJSON_AddStringToObject(ev, "output", j->output);
    if (j->error) cJSON_AddStringToObject(ev, "error", j->error);
    publish(sv, ev);
}

static double num(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* The render's progress events (coordinator/progress.h): kept for status and published with the job's id.
 * "start" is published as "started"; the render's own "done" and "interrupted" are dropped (the service
 * publishes the job's outcome: done, failed, cancelled). */
static void on_progress(void *user, const char *event, const char *json) {
    struct service *sv = user;
    if (!strcmp(event, "done") || !strcmp(event, "interrupted")) return;
    cJSON *p = cJSON_Parse(json);
    if (!p) return;
    pthread_mutex_lock(&sv->lock);
    struct job *j = sv->running;
    if (j) {
        j->chunk = (long long)num(p, "chunk", 0), j->chunks = (long long)num(p, "chunks", 0);
        j->rows_done = (long long)num(p, "rows_done", 0), j->rows_total = (long long)num(p, "rows_total", 0);
        j->frames_done = (long long)num(p, "frames_done", 0), j->frames_total = (long long)num(p, "frames_total", 0);
        j->s_per_row = num(p, "s_per_row", -1), j->eta_s = num(p, "eta_s", -1);
        publish(sv, progress_event_new(!strcmp(event, "start") ? "started" : event, j->id, p));
    }
    pthread_mutex_unlock(&sv->lock);
    cJSON_Delete(p);
}

static bool stop_hook(void *user) {
    struct service *sv = user;
    pthread_mutex_lock(&sv->lock);
    const bool stop = sv->stop != STOP_NONE;
    pthread_mutex_unlock(&sv->lock);
    return stop;
}

/* ---- requests ---- */

static char *reply_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *reply_error(const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "v", SERVICE_PROTOCOL_VERSION);
    cJSON_AddBoolToObject(r, "ok", false);
    cJSON *e = cJSON_AddObjectToObject(r, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return text;
}

static cJSON *reply_ok(void) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "v", SERVICE_PROTOCOL_VERSION);
    cJSON_AddBoolToObject(r, "ok", true);
    return r;
}

static char *finish(cJSON *r) {
    char *text = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return text;
}

/* submit: {"v":1,"op":"submit","film":{...},"overwrite":false} -> {"ok":true,"job":"j3","state":"queued"} */
static char *op_submit(struct service *sv, const cJSON *req) {
    const cJSON *film = cJSON_GetObjectItemCaseSensitive(req, "film");
    const cJSON *ow = cJSON_GetObjectItemCaseSensitive(req, "overwrite");
    if (!cJSON_IsObject(film)) return reply_error("bad_request", "submit: \"film\" must be a JSON object (a film file)");
    if (ow && !cJSON_IsBool(ow)) return reply_error("bad_request", "submit: \"overwrite\" must be true or false");
    char *text = cJSON_PrintUnformatted(film);
    if (!text) return reply_error("internal", "out of memory");
    struct render_settings s;
    render_settings_defaults(&s);
    int rc = film_load_text("submitted film", text, &s);
    char *reply = NULL;
    if (rc < 0) {
        reply = reply_error("invalid_film", "%s", err_message());
    } else if (!s.output || s.output[0] != '/') {
        reply = reply_error("invalid_film", "submitted film: $.output: expected an absolute path of the film to "
                                            "write (.mp4, .mkv, .webm or .h5), found %s", s.output ? s.output : "none");
    } else if (s.model && strcmp(s.model, sv->opt->model_dir) != 0) {
        reply = reply_error("invalid_film", "submitted film: $.model: this service has %s loaded, not %s",
                            sv->opt->model_dir, s.model);
    } else {
        char key[64];
        const char *outside = film_path_outside(sv->opt, &s, key, sizeof key);
        if (outside)
            reply = reply_error("invalid_film", "submitted film: %s: %s is not inside a folder this service may use "
                                                "(its --files-root: %s%s)",
                                key, outside, sv->opt->files_roots[0], sv->opt->n_files_roots > 1 ? ", ..." : "");
    }
    for (int i = 0; !reply && i < sv->n_jobs; i++) {
        const struct job *o = sv->jobs[i];
        if (!job_finished(o) && !strcmp(o->output, s.output))
            reply = reply_error("duplicate", "%s is already being rendered by job %s (%s)", s.output, o->id,
                                state_names[o->state]);
    }
    if (!reply) {
        struct job *j = calloc(1, sizeof *j);
        if (!j || !(j->output = strdup(s.output))) {
            job_free(j);
            reply = reply_error("internal", "out of memory");
        } else {
            j->film = text, text = NULL;
            j->overwrite = cJSON_IsTrue(ow);
            j->submitted = (double)time(NULL);
            snprintf(j->id, sizeof j->id, "j%lld", sv->next_id);
            if (job_add(sv, j) < 0) {
                job_free(j);
                reply = reply_error("internal", "%s", err_message());
            } else {
                sv->next_id++;
                journal_write(sv);
                publish_state(sv, j);
                pthread_cond_broadcast(&sv->wake);
                LOG_INFO("service: job %s queued: %s", j->id, j->output);
                cJSON *r = reply_ok();
                cJSON_AddStringToObject(r, "job", j->id);
                cJSON_AddStringToObject(r, "state", state_names[j->state]);
                cJSON_AddStringToObject(r, "pub", sv->pub_ep);
                reply = finish(r);
            }
        }
    }
    free(text);
    render_settings_free(&s);
    return reply;
}

static const char *req_job(const cJSON *req, char **err) {
    const cJSON *job = cJSON_GetObjectItemCaseSensitive(req, "job");
    *err = NULL;
    if (!job) return NULL;
    if (!cJSON_IsString(job)) *err = reply_error("bad_request", "\"job\" must be a string (a job id such as \"j1\")");
    return cJSON_IsString(job) ? job->valuestring : NULL;
}

static char *op_status(struct service *sv, const cJSON *req, bool list) {
    char *err;
    const char *id = req_job(req, &err);
    if (err) return err;
    cJSON *r = reply_ok();
    cJSON_AddStringToObject(r, "pub", sv->pub_ep);
    if (id) {
        const struct job *j = job_find(sv, id);
        if (!j) {
            cJSON_Delete(r);
            return reply_error("unknown_job", "no job %s", id);
        }
        cJSON_AddItemToObject(r, "job", job_json(j, false));
        return finish(r);
    }
    cJSON_AddStringToObject(r, "model", sv->opt->model_dir);
    if (sv->opt->layout) cJSON_AddStringToObject(r, "layout", sv->opt->layout);
    cJSON_AddNumberToObject(r, "model_load_s", sv->opt->load_s);
    if (sv->running)
        cJSON_AddStringToObject(r, "running", sv->running->id);
    else
        cJSON_AddNullToObject(r, "running");
    int queued = 0;
    for (int i = 0; i < sv->n_jobs; i++) queued += sv->jobs[i]->state == JOB_QUEUED;
    cJSON_AddNumberToObject(r, "queued", queued);
    if (list) {
        cJSON *jobs = cJSON_AddArrayToObject(r, "jobs");
        for (int i = 0; i < sv->n_jobs; i++) cJSON_AddItemToArray(jobs, job_json(sv->jobs[i], false));
    }
    return finish(r);
}

static char *op_cancel(struct service *sv, const cJSON *req) {
    char *err;
    const char *id = req_job(req, &err);
    if (err) return err;
    if (!id) return reply_error("bad_request", "cancel: give \"job\"");
    struct job *j = job_find(sv, id);
    if (!j) return reply_error("unknown_job", "no job %s", id);
    if (job_finished(j)) return reply_error("finished", "job %s already ended (%s)", id, state_names[j->state]);
    if (j == sv->running) {
        if (sv->stop == STOP_NONE) sv->stop = STOP_CANCEL;
        LOG_INFO("service: job %s: cancel requested; it stops at the next row boundary", id);
    } else {
        j->state = JOB_CANCELLED;
        journal_write(sv);
        publish_state(sv, j);
        LOG_INFO("service: job %s cancelled before it started", id);
    }
    cJSON *r = reply_ok();
    cJSON_AddStringToObject(r, "job", id);
    cJSON_AddStringToObject(r, "state", j == sv->running ? "cancelling" : state_names[j->state]);
    return finish(r);
}

static char *op_shutdown(struct service *sv) {
    sv->shutdown = true;
    if (sv->running) sv->stop = STOP_SHUTDOWN;
    pthread_cond_broadcast(&sv->wake);
    LOG_INFO("service: shutdown requested%s", sv->running ? "; the running job stops at the next row boundary" : "");
    cJSON *r = reply_ok();
    cJSON_AddBoolToObject(r, "stopping", sv->running != NULL);
    return finish(r);
}

/* One request text -> the reply text (malloc'd). Called with the lock held. */
static char *handle(struct service *sv, const char *text, size_t len, int parts) {
    if (parts != 1) return reply_error("bad_request", "a request is one message frame, got %d", parts);
    if (strlen(text) != len) return reply_error("bad_request", "the request holds a NUL byte");
    const char *end = NULL;
    cJSON *req = cJSON_ParseWithOpts(text, &end, true);
    if (!req) return reply_error("bad_json", "the request is not valid JSON (near byte %ld)",
                                 end ? (long)(end - text) : 0L);
    char *reply = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "v");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
    if (!cJSON_IsObject(req))
        reply = reply_error("bad_request", "the request must be a JSON object");
    else if (!cJSON_IsNumber(v))
        reply = reply_error("bad_request", "the request lacks \"v\" (the protocol version, %d)", SERVICE_PROTOCOL_VERSION);
    else if (v->valuedouble != SERVICE_PROTOCOL_VERSION)
        reply = reply_error("bad_version", "protocol version %g is not supported; this server speaks %d", v->valuedouble,
                            SERVICE_PROTOCOL_VERSION);
    else if (!cJSON_IsString(op))
        reply = reply_error("bad_request", "the request lacks \"op\" (submit, status, list, cancel or shutdown)");
    else if (!strcmp(op->valuestring, "submit"))
        reply = op_submit(sv, req);
    else if (!strcmp(op->valuestring, "status"))
        reply = op_status(sv, req, false);
    else if (!strcmp(op->valuestring, "list"))
        reply = op_status(sv, req, true);
    else if (!strcmp(op->valuestring, "cancel"))
        reply = op_cancel(sv, req);
    else if (!strcmp(op->valuestring, "shutdown"))
        reply = op_shutdown(sv);
    else
        reply = reply_error("unknown_op", "unknown op \"%.64s\" (submit, status, list, cancel, shutdown)", op->valuestring);
    cJSON_Delete(req);
    return reply;
}

/* The network thread: answer requests until shutdown; turn signals into a shutdown. */
static void *net_main(void *arg) {
    struct service *sv = arg;
    for (;;) {
        pthread_mutex_lock(&sv->lock);
        if (g_service_signal && !sv->shutdown) {
            LOG_INFO("service: %s: shutting down", strsignal((int)g_service_signal));
            sv->shutdown = true;
            if (sv->running) sv->stop = STOP_SHUTDOWN;
            pthread_cond_broadcast(&sv->wake);
        }
        const bool done = sv->shutdown && !sv->running;
        pthread_mutex_unlock(&sv->lock);
        if (done) break;
        char *text = NULL;
        size_t len = 0;
        int parts = 0;
        const int got = msock_recv(sv->rep, &text, &len, &parts, 100, SERVICE_REQUEST_MAX);
        if (got == 0) continue;
        if (got < 0) {
            LOG_WARN("service: %s", err_message());
            continue;
        }
        char *reply;
        if (got == MSOCK_TOO_BIG) {
            reply = reply_error("too_large", "the request has %zu bytes; the limit is %zu", len, SERVICE_REQUEST_MAX);
        } else {
            pthread_mutex_lock(&sv->lock);
            reply = handle(sv, text, len, parts);
            pthread_mutex_unlock(&sv->lock);
        }
        free(text);
        if (!reply) reply = strdup("{\"v\":1,\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
        if (reply && msock_send(sv->rep, reply, strlen(reply), 1000) < 0) LOG_WARN("service: reply: %s", err_message());
        free(reply);
    }
    return NULL;
}

/* ---- the job loop ---- */

static struct job *next_queued(struct service *sv) {
    for (int i = 0; i < sv->n_jobs; i++)
        if (sv->jobs[i]->state == JOB_QUEUED) return sv->jobs[i];
    return NULL;
}

int service_run(const struct service_options *opt, service_run_fn run, void *user) {
    struct service S;
    memset(&S, 0, sizeof S);
    struct service *sv = &S;
    sv->opt = opt;
    sv->next_id = 1;
    pthread_mutex_init(&sv->lock, NULL);
    pthread_cond_init(&sv->wake, NULL);
    const bool curve = opt->curve != NULL;
    struct msock_auth *auth = NULL;
    int rc = opt->n_files_roots > 0 ? service_check_endpoint("--bind", opt->bind, curve)
                                    : err_set(ERR_INVALID_ARG, "service: no folder for films' files (--files-root)");
    if (rc == ERR_OK && opt->pub) snprintf(sv->pub_ep, sizeof sv->pub_ep, "%s", opt->pub);
    if (rc == ERR_OK && !opt->pub) rc = service_default_pub(opt->bind, sv->pub_ep, sizeof sv->pub_ep);
    if (rc == ERR_OK) rc = service_check_endpoint("--pub", sv->pub_ep, curve);
    if (rc == ERR_OK && curve && !opt->allow_dir) rc = err_set(ERR_INVALID_ARG, "CURVE needs --allow-dir DIR");
    if (rc == ERR_OK) rc = fs_mkdir_p(opt->state_dir);
    if (rc == ERR_OK) rc = fs_join(sv->journal, sizeof sv->journal, opt->state_dir, "journal.json");
    if (rc == ERR_OK) rc = journal_read(sv);
    if (rc == ERR_OK && curve) { /* the ZAP handler first: a CURVE socket without one accepts any client key */
        rc = msock_auth_start(&auth, opt->allow_dir);
        if (rc == ERR_OK)
            LOG_INFO("service: CURVE on: server key %s, %d allowed client key%s from %s", opt->curve->public_key,
                     msock_auth_keys(auth), msock_auth_keys(auth) == 1 ? "" : "s", opt->allow_dir);
    }
    if (rc == ERR_OK) rc = msock_bind(&sv->rep, MSOCK_REP, opt->bind, SERVICE_REQUEST_HARD, opt->curve);
    if (rc == ERR_OK) rc = msock_bind(&sv->pub, MSOCK_PUB, sv->pub_ep, 0, opt->curve);
    pthread_t net;
    bool net_started = false;
    struct sigaction sa, old[2];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_service_signal;
    sigemptyset(&sa.sa_mask);
    g_service_signal = 0;
    sigaction(SIGINT, &sa, &old[0]);
    sigaction(SIGTERM, &sa, &old[1]);
    if (rc == ERR_OK) {
        journal_write(sv); /* the restored queue, and a proof that the state directory is writable */
        if (pthread_create(&net, NULL, net_main, sv) != 0)
            rc = err_set(ERR_IO, "cannot start the service's network thread");
        else
            net_started = true;
    }
    if (rc == ERR_OK)
        LOG_INFO("service: ready: requests on %s, events on %s, model %s (loaded in %.3f s), state %s, films' files "
                 "under %s%s", opt->bind, sv->pub_ep, opt->model_dir, opt->load_s, opt->state_dir,
                 opt->files_roots[0], opt->n_files_roots > 1 ? " and more (--files-root)" : "");
    const struct service_hooks hooks = {.stop = stop_hook, .stop_user = sv, .progress = on_progress,
                                        .progress_user = sv};
    pthread_mutex_lock(&sv->lock);
    while (rc == ERR_OK) {
        struct job *j = NULL;
        while (!sv->shutdown && !(j = next_queued(sv))) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 200 * 1000 * 1000;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&sv->wake, &sv->lock, &until);
            if (opt->idle) {
                pthread_mutex_unlock(&sv->lock);
                opt->idle(user);
                pthread_mutex_lock(&sv->lock);
            }
        }
        if (sv->shutdown) break;
        j->state = JOB_RUNNING;
        j->rows_done = j->rows_total = 0;
        sv->running = j;
        sv->stop = STOP_NONE;
        journal_write(sv);
        const struct service_job spec = {.id = j->id, .film = j->film, .output = j->output, .overwrite = j->overwrite};
        LOG_INFO("service: job %s started (model resident, not reloaded): %s", j->id, j->output);
        const double t0 = time_now();
        pthread_mutex_unlock(&sv->lock);
        const int jr = run(user, &spec, &hooks);
        pthread_mutex_lock(&sv->lock);
        free(j->error), j->error = NULL;
        if (jr == ERR_OK) {
            j->state = JOB_DONE;
        } else if (jr == ERR_INTERRUPTED && sv->stop == STOP_CANCEL) {
            j->state = JOB_CANCELLED;
            j->error = strdup("cancelled; its checkpoint is kept: submitting the same film again resumes it");
        } else if (jr == ERR_INTERRUPTED) { /* shutdown or a signal: stays first in the queue for the restart */
            j->state = JOB_RUNNING;
            sv->shutdown = true;
        } else {
            j->state = JOB_FAILED;
            j->error = strdup(err_message());
        }
        j->overwrite = j->state == JOB_RUNNING ? false : j->overwrite;
        sv->running = NULL;
        journal_write(sv);
        if (j->state != JOB_RUNNING) publish_state(sv, j);
        LOG_INFO("service: job %s %s after %.1f s%s%s", j->id, j->state == JOB_RUNNING ? "stopped for shutdown (resumes "
                 "on restart)" : state_names[j->state], time_now() - t0, j->error ? ": " : "", j->error ? j->error : "");
    }
    pthread_mutex_unlock(&sv->lock);
    if (net_started) pthread_join(net, NULL);
    sigaction(SIGINT, &old[0], NULL);
    sigaction(SIGTERM, &old[1], NULL);
    msock_close(&sv->rep);
    msock_close(&sv->pub);
    msock_auth_stop(&auth);
    for (int i = 0; i < sv->n_jobs; i++) job_free(sv->jobs[i]);
    free(sv->jobs);
    pthread_cond_destroy(&sv->wake);
    pthread_mutex_destroy(&sv->lock);
    if (rc == ERR_OK) LOG_INFO("service: stopped");
    return rc;
}
