/* cli/cmd_client.c - the render service's clients (issue 9, docs/protocol.md): `reelfarm submit --to`,
 * `reelfarm status`, `reelfarm watch`, `reelfarm cancel`; and `reelfarm keygen` (CURVE key pairs).
 *
 * Each request is one REQ round trip on a fresh socket with a receive timeout (--timeout, default 10 s): a
 * server that is not there gives an error line naming the endpoint, never a hang. `watch` subscribes to the
 * server's PUB socket (its address comes in every reply) and also asks for the job's status every 2 s, so a
 * missed event (the PUB/SUB slow joiner) or a dead server cannot leave it waiting. `watch --events EP` follows a
 * batch `render --progress-endpoint EP` instead: events only, its heartbeat telling it the render is alive.
 * With --curve-secret and
 * --server-key both sockets use CURVE; a refused handshake fails the command at once with the reason.
 */
#include <cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "coordinator/film.h"
#include "coordinator/render_settings.h"
#include "coordinator/service.h"
#include "core/error.h"
#include "core/timer.h"
#include "io/fs.h"
#include "io/msg_socket.h"

/* CURVE flags shared by every client command. */
#define CURVE_LONGOPTS {"curve-secret", required_argument, 0, OPT_CURVE_SECRET}, {"server-key", required_argument, 0, OPT_SERVER_KEY}
#define CURVE_HELP                                                                                                    \
    "  --curve-secret FILE       CURVE: this client's secret key (NAME.key from `reelfarm keygen`; its NAME.pub\n"    \
    "                            must be in the server's --allow-dir)\n"                                               \
    "  --server-key FILE         CURVE: the server's public key (the .pub of its --curve-secret)\n"

enum { OPT_TO = 1100, OPT_TIMEOUT, OPT_OVERWRITE, OPT_JSON, OPT_CURVE_SECRET, OPT_SERVER_KEY, OPT_EVENTS };

/* Both CURVE files or neither: *c filled, or NULL. */
static int client_curve(const char *secret, const char *server_key, struct msock_curve *c, const struct msock_curve **out) {
    *out = NULL;
    if (!secret && !server_key) return ERR_OK;
    if (!secret || !server_key)
        return err_set(ERR_INVALID_ARG, "CURVE needs both --curve-secret FILE (this client's key) and --server-key FILE "
                                        "(the server's .pub)");
    TRY(msock_curve_load(c, secret, server_key));
    *out = c;
    return ERR_OK;
}

/* One request -> its reply object (ok true), or an error: no reply in time, a refused handshake, or the
 * server's error. */
static int client_call(const char *ep, const struct msock_curve *curve, cJSON *req, double timeout_s, cJSON **reply) {
    *reply = NULL;
    cJSON_AddNumberToObject(req, "v", SERVICE_PROTOCOL_VERSION);
    char *text = cJSON_PrintUnformatted(req);
    if (!text) return err_set(ERR_NOMEM, "out of memory");
    struct msock *s = NULL;
    char *answer = NULL;
    size_t len = 0;
    int parts = 0;
    const int ms = (int)(timeout_s * 1000);
    int rc = msock_connect(&s, MSOCK_REQ, ep, curve);
    if (rc == ERR_OK) rc = msock_send(s, text, strlen(text), ms);
    if (rc == ERR_OK) {
        const int got = msock_recv(s, &answer, &len, &parts, ms, SERVICE_REQUEST_HARD);
        if (got == MSOCK_REFUSED)
            rc = err_set(ERR_IO, "%s: %s", ep, msock_refusal(s));
        else if (got == 0)
            rc = err_set(ERR_IO, "%s: no reply within %g s; is `reelfarm serve --bind %s` running%s?", ep, timeout_s, ep,
                         curve ? " and does it allow this client's key" : "");
        else if (got == MSOCK_TOO_BIG)
            rc = err_set(ERR_FORMAT, "%s: a reply of %zu bytes, too large", ep, len);
        else if (got < 0)
            rc = err_wrap("%s: ", ep);
    }
    msock_close(&s);
    free(text);
    if (rc < 0) return rc;
    cJSON *r = cJSON_Parse(answer);
    free(answer);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
    if (!r || !cJSON_IsBool(ok)) {
        cJSON_Delete(r);
        return err_set(ERR_FORMAT, "%s: the reply is not a reelfarm service reply", ep);
    }
    if (cJSON_IsFalse(ok)) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        rc = err_set(ERR_INVALID_ARG, "%s", cJSON_IsString(msg) ? msg->valuestring : "the server refused the request");
        cJSON_Delete(r);
        return rc;
    }
    *reply = r;
    return ERR_OK;
}

static const char *rstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double rnum(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* ---- submit --to ---- */

static int absolute_in(const char *base_dir, const char *p, char **out) {
    char buf[PATH_MAX * 2];
    if (p[0] == '/')
        snprintf(buf, sizeof buf, "%s", p);
    else
        snprintf(buf, sizeof buf, "%s/%s", base_dir, p);
    *out = strdup(buf);
    return *out ? ERR_OK : err_set(ERR_NOMEM, "out of memory");
}

/* Rewrite a path value of obj to an absolute one (relative to base_dir; the model through realpath). */
static int fix_path(cJSON *obj, const char *key, const char *base_dir, bool real) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v)) return ERR_OK;
    char *abs = NULL;
    TRY(absolute_in(base_dir, v->valuestring, &abs));
    char resolved[PATH_MAX];
    if (real && realpath(abs, resolved)) {
        free(abs);
        abs = strdup(resolved);
        if (!abs) return err_set(ERR_NOMEM, "out of memory");
    }
    cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateString(abs));
    free(abs);
    return ERR_OK;
}

static const char submit_to_help[] =
    "Usage: reelfarm submit [FILM.json] --to ENDPOINT [--prompt TEXT] [--out FILE] [options]\n"
    "\n"
    "Sends a film to a render service (`reelfarm serve`) and prints the job id; the service renders it\n"
    "with its resident model. Submitting a film whose render was cancelled or interrupted resumes it from\n"
    "its checkpoint. Relative paths in the film are taken from the film's folder, flags' from here.\n"
    "\n"
    "  --to ENDPOINT             the service's request endpoint (tcp://127.0.0.1:PORT, ipc://PATH)\n"
    "  --prompt TEXT             a film of one prompt (without FILM.json)\n"
    "  --out FILE                the film to write (.mp4/.mkv/.webm/.h5; overrides the film's output)\n"
    "  --frames N  --steps N  --seed S  --resolution WxH|540p|720p   override the film's values\n"
    "  --overwrite               replace an existing output and start over an existing checkpoint\n"
    "  --timeout S               seconds to wait for the server's reply (default 10)\n"
    CURVE_HELP
    "Exit status: 0 queued (job id on stdout), 1 refused or no server, 2 usage error.\n";

int cmd_submit_to(int argc, char **argv) {
    static const struct option longopts[] = {
        {"to", required_argument, 0, OPT_TO},         {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"prompt", required_argument, 0, 'p'},        {"out", required_argument, 0, 'o'},
        {"model", required_argument, 0, 'm'},         {"frames", required_argument, 0, 'n'},
        {"steps", required_argument, 0, 's'},         {"seed", required_argument, 0, 'e'},
        {"resolution", required_argument, 0, 'r'},    {"overwrite", no_argument, 0, OPT_OVERWRITE},
        CURVE_LONGOPTS,                               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    static const char cmd[] = "submit";
    const char *to = NULL, *prompt = NULL, *out = NULL, *model = NULL, *res = NULL, *csec = NULL, *ckey = NULL;
    struct msock_curve curve_keys;
    const struct msock_curve *curve = NULL;
    int64_t frames = 0;
    int steps = 0;
    uint64_t seed = 0;
    bool seed_given = false, overwrite = false;
    double timeout = 10;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    int64_t w = 0, h = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_TO: to = optarg; break;
        case OPT_TIMEOUT: rc = arg_f64("--timeout", optarg, 0.01, 86400, &timeout); break;
        case 'p': prompt = optarg; break;
        case 'o': out = optarg; break;
        case 'm': model = optarg; break;
        case 'n': rc = arg_i64("--frames", optarg, 1, 1000000, &frames); break;
        case 's': rc = arg_int("--steps", optarg, 1, 1000, &steps); break;
        case 'e': rc = arg_u64("--seed", optarg, &seed), seed_given = true; break;
        case 'r': res = optarg, rc = arg_resolution("--resolution", optarg, &w, &h); break;
        case OPT_OVERWRITE: overwrite = true; break;
        case OPT_CURVE_SECRET: csec = optarg; break;
        case OPT_SERVER_KEY: ckey = optarg; break;
        case 'h': fputs(submit_to_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s' (with --to; see 'reelfarm submit --to X --help')",
                                    argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    const char *film_path = optind < argc ? argv[optind++] : NULL;
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!film_path && !prompt) return usage_error(cmd, "give a film file or --prompt TEXT");
    if (!csec != !ckey) return usage_error(cmd, "CURVE needs both --curve-secret FILE and --server-key FILE");
    if (client_curve(csec, ckey, &curve_keys, &curve) < 0) return run_error();
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "/");

    /* the film: validated here first (errors with JSON paths), sent as the file's own object */
    cJSON *film = NULL, *req = NULL, *reply = NULL;
    char *text = NULL;
    struct render_settings s;
    render_settings_defaults(&s);
    if (film_path) {
        size_t len = 0;
        rc = film_load(film_path, &s);
        if (rc == ERR_OK) rc = fs_read_file(film_path, &text, &len, FILM_FILE_MAX);
        if (rc == ERR_OK && !(film = cJSON_Parse(text))) rc = err_set(ERR_FORMAT, "%s: not valid JSON", film_path);
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", film_path);
        char *slash = strrchr(dir, '/');
        char base[PATH_MAX * 2];
        if (slash) *slash = '\0';
        if (!slash)
            snprintf(base, sizeof base, "%s", cwd);
        else if (dir[0] == '/')
            snprintf(base, sizeof base, "%s", dir);
        else
            snprintf(base, sizeof base, "%s/%s", cwd, dir);
        static const char *const keys[] = {"output", "image", "end_image", "extend"};
        for (size_t i = 0; rc == ERR_OK && i < sizeof keys / sizeof keys[0]; i++) rc = fix_path(film, keys[i], base, false);
        if (rc == ERR_OK) rc = fix_path(film, "model", base, true);
        cJSON *shots = cJSON_GetObjectItemCaseSensitive(film, "shots"), *shot;
        cJSON_ArrayForEach(shot, shots) if (rc == ERR_OK) rc = fix_path(shot, "image", base, false);
    } else if (!(film = cJSON_CreateObject())) {
        rc = err_set(ERR_NOMEM, "out of memory");
    }
    /* flags override the film's keys */
    struct flag_value {
        const char *key;
        cJSON *v;
    } set[8];
    int n_set = 0;
    if (prompt) set[n_set++] = (struct flag_value){"prompt", cJSON_CreateString(prompt)};
    if (frames) set[n_set++] = (struct flag_value){"frames", cJSON_CreateNumber((double)frames)};
    if (steps) set[n_set++] = (struct flag_value){"steps", cJSON_CreateNumber(steps)};
    if (seed_given) set[n_set++] = (struct flag_value){"seed", cJSON_CreateNumber((double)seed)};
    if (res) set[n_set++] = (struct flag_value){"resolution", cJSON_CreateString(res)};
    if (out) set[n_set++] = (struct flag_value){"output", cJSON_CreateString(out)};
    if (model) set[n_set++] = (struct flag_value){"model", cJSON_CreateString(model)};
    for (int i = 0; i < n_set; i++) {
        if (rc == ERR_OK && film) {
            cJSON_DeleteItemFromObjectCaseSensitive(film, set[i].key);
            cJSON_AddItemToObject(film, set[i].key, set[i].v);
        } else {
            cJSON_Delete(set[i].v);
        }
    }
    if (rc == ERR_OK && out) rc = fix_path(film, "output", cwd, false);
    if (rc == ERR_OK && model) rc = fix_path(film, "model", cwd, true);
    if (rc == ERR_OK && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(film, "output")))
        rc = err_set(ERR_INVALID_ARG, "no output: give --out FILE (.mp4, .mkv, .webm or .h5) or \"output\" in the film");
    if (rc == ERR_OK && frames) cJSON_DeleteItemFromObjectCaseSensitive(film, "seconds"); /* --frames wins */
    if (rc == ERR_OK) {
        req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "op", "submit");
        cJSON_AddItemToObject(req, "film", film), film = NULL;
        if (overwrite) cJSON_AddBoolToObject(req, "overwrite", true);
        rc = client_call(to, curve, req, timeout, &reply);
    }
    int ret = 0;
    if (rc == ERR_OK) {
        const char *id = rstr(reply, "job");
        printf("%s\n", id ? id : "?");
        fprintf(stderr, "reelfarm submit: job %s queued on %s (watch it: reelfarm watch --to %s %s)\n", id ? id : "?",
                to, to, id ? id : "");
    } else {
        ret = run_error();
    }
    cJSON_Delete(film), cJSON_Delete(req), cJSON_Delete(reply);
    free(text);
    render_settings_free(&s);
    return ret;
}

/* ---- status, cancel, watch ---- */

struct client_args {
    const char *to, *job;
    const char *events; /* watch --events: a batch render's PUB endpoint */
    double timeout;
    bool json;
    struct msock_curve curve_keys;
    const struct msock_curve *curve; /* &curve_keys with CURVE, else NULL */
};

static int parse_client(const char *cmd, const char *help, int argc, char **argv, struct client_args *a, bool json_ok) {
    static const struct option longopts[] = {{"to", required_argument, 0, OPT_TO},
                                             {"events", required_argument, 0, OPT_EVENTS},
                                             {"timeout", required_argument, 0, OPT_TIMEOUT},
                                             {"json", no_argument, 0, OPT_JSON},
                                             CURVE_LONGOPTS,
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->timeout = 10;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    const char *csec = NULL, *ckey = NULL;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_TO: a->to = optarg; break;
        case OPT_EVENTS:
            if (strcmp(cmd, "watch") != 0) return usage_error(cmd, "unknown option '--events'");
            a->events = optarg;
            break;
        case OPT_CURVE_SECRET: csec = optarg; break;
        case OPT_SERVER_KEY: ckey = optarg; break;
        case OPT_TIMEOUT: rc = arg_f64("--timeout", optarg, 0.01, 86400, &a->timeout); break;
        case OPT_JSON:
            if (!json_ok) return usage_error(cmd, "unknown option '--json'");
            a->json = true;
            break;
        case 'h': fputs(help, stdout); return -1;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) a->job = argv[optind++];
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (a->to && a->events) return usage_error(cmd, "give --to (a service) or --events (a batch render), not both");
    if (!a->to && !a->events) return usage_error(cmd, "give --to ENDPOINT (the service's --bind)");
    if (!csec != !ckey) return usage_error(cmd, "CURVE needs both --curve-secret FILE and --server-key FILE");
    if (client_curve(csec, ckey, &a->curve_keys, &a->curve) < 0) return run_error();
    return 0;
}

static void print_job(const cJSON *j) {
    const char *state = rstr(j, "state");
    printf("%-6s %-9s", rstr(j, "id") ? rstr(j, "id") : "?", state ? state : "?");
    const double total = rnum(j, "rows_total", 0);
    if (total > 0)
        printf(" rows %.0f/%.0f frames %.0f/%.0f", rnum(j, "rows_done", 0), total, rnum(j, "frames_done", 0),
               rnum(j, "frames_total", 0));
    if (rnum(j, "eta_s", -1) >= 0 && state && !strcmp(state, "running")) printf(" ETA %.0f s", rnum(j, "eta_s", 0));
    printf(" %s", rstr(j, "output") ? rstr(j, "output") : "");
    if (rstr(j, "error")) printf("  (%s)", rstr(j, "error"));
    printf("\n");
}

static const char status_help[] =
    "Usage: reelfarm status --to ENDPOINT [JOB] [--json] [--timeout S]\n"
    "\n"
    "Asks a render service for one job's state and progress, or (without JOB) for every job it knows.\n"
    "--json prints the server's reply (docs/protocol.md). Exit status: 0, 1 unknown job or no server.\n"
    CURVE_HELP;

int cmd_status(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("status", status_help, argc, argv, &a, true);
    if (rc) return rc < 0 ? 0 : rc; /* -1: --help */
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", a.job ? "status" : "list");
    if (a.job) cJSON_AddStringToObject(req, "job", a.job);
    rc = client_call(a.to, a.curve, req, a.timeout, &reply);
    cJSON_Delete(req);
    if (rc < 0) return run_error();
    if (a.json) {
        char *t = cJSON_PrintUnformatted(reply);
        printf("%s\n", t ? t : "{}");
        free(t);
    } else if (a.job) {
        print_job(cJSON_GetObjectItemCaseSensitive(reply, "job"));
    } else {
        printf("model %s; running %s; %.0f queued\n", rstr(reply, "model") ? rstr(reply, "model") : "?",
               rstr(reply, "running") ? rstr(reply, "running") : "none", rnum(reply, "queued", 0));
        const cJSON *j;
        cJSON_ArrayForEach(j, cJSON_GetObjectItemCaseSensitive(reply, "jobs")) print_job(j);
    }
    cJSON_Delete(reply);
    return 0;
}

static const char cancel_help[] =
    "Usage: reelfarm cancel --to ENDPOINT JOB [--timeout S]\n"
    "\n"
    "Cancels a job: a queued job is dropped; the running one stops at the next denoising row boundary with\n"
    "its checkpoint kept, so submitting the same film again resumes it. Exit status: 0, 1 refused or no server.\n"
    CURVE_HELP;

int cmd_cancel(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("cancel", cancel_help, argc, argv, &a, false);
    if (rc) return rc < 0 ? 0 : rc; /* -1: --help */
    if (!a.job) return usage_error("cancel", "give the JOB id");
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "cancel");
    cJSON_AddStringToObject(req, "job", a.job);
    rc = client_call(a.to, a.curve, req, a.timeout, &reply);
    cJSON_Delete(req);
    if (rc < 0) return run_error();
    printf("%s %s\n", a.job, rstr(reply, "state") ? rstr(reply, "state") : "?");
    cJSON_Delete(reply);
    return 0;
}

static const char watch_help[] =
    "Usage: reelfarm watch --to ENDPOINT [JOB] [--timeout S]\n"
    "       reelfarm watch --events ENDPOINT [JOB] [--timeout S]\n"
    "\n"
    "Follows a job's progress (the running one without JOB) with a progress bar on stderr until it ends.\n"
    "--to: a render service (its --bind). --events: a batch `render --progress-endpoint ENDPOINT` (for example\n"
    "a Slurm job); without JOB the first job heard from. A render that sends nothing, not even its heartbeat,\n"
    "for --timeout seconds (default 10) is taken as gone.\n"
    "Exit status: 0 the job is done, 1 it failed, was cancelled or interrupted (or the server or render went\n"
    "away), 2 usage error.\n"
    CURVE_HELP;

static bool job_state_ends(const char *state) {
    return state && (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled") ||
                     !strcmp(state, "interrupted"));
}

static void draw(const char *job, const cJSON *ev, bool tty, double *last) {
    const double now = time_now();
    const char *e = rstr(ev, "event");
    const bool chunk = e && !strcmp(e, "chunk");
    if (!tty && !chunk && now - *last < 2.0) return;
    *last = now;
    const double done = rnum(ev, "rows_done", 0), total = rnum(ev, "rows_total", 0), spr = rnum(ev, "s_per_row", NAN);
    enum { WIDTH = 24 };
    char bar[WIDTH + 1];
    const int fill = total > 0 ? (int)(done * WIDTH / total) : 0;
    for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '-';
    bar[WIDTH] = '\0';
    fprintf(stderr, "%s%s [%s] chunk %.0f/%.0f rows %.0f/%.0f  %.2f s/row  ETA %.0f s  frames %.0f/%.0f%s",
            tty ? "\r" : "", job, bar, rnum(ev, "chunk", 0) + 1, rnum(ev, "chunks", 0), done, total,
            isfinite(spr) ? spr : 0.0, rnum(ev, "eta_s", 0), rnum(ev, "frames_done", 0), rnum(ev, "frames_total", 0),
            tty ? "\033[K" : "\n");
    fflush(stderr);
}

/* 0 done, 1 failed or cancelled, -1 still going. */
static int outcome(const char *job, const char *state, const char *output, const char *error) {
    if (!state) return -1;
    if (!strcmp(state, "done")) {
        printf("%s done %s\n", job, output ? output : "");
        return 0;
    }
    if (!strcmp(state, "failed") || !strcmp(state, "cancelled") || !strcmp(state, "interrupted")) {
        fprintf(stderr, "reelfarm: error: job %s %s%s%s\n", job, state, error ? ": " : "", error ? error : "");
        return 1;
    }
    return -1;
}

/* One progress event for `job` (or any job when job is empty, which then becomes the one followed): drawn, and
 * the outcome when it ends the job (0 done, 1 not), else -1. */
static int watch_event(const cJSON *ev, char *job, size_t job_cap, bool tty, double *last_draw, bool *drawn) {
    const char *id = rstr(ev, "job"), *e = rstr(ev, "event");
    if (!id || !e) return -1;
    if (!job[0] && strcmp(e, "heartbeat") != 0) snprintf(job, job_cap, "%s", id);
    if (strcmp(id, job) != 0) return -1;
    if (!strcmp(e, "row") || !strcmp(e, "chunk") || !strcmp(e, "started")) {
        draw(job, ev, tty, last_draw);
        *drawn = true;
    }
    if (!job_state_ends(e)) return -1;
    if (*drawn && tty) fputc('\n', stderr);
    return outcome(job, e, rstr(ev, "output"), rstr(ev, "error"));
}

/* watch --events: a batch render's PUB socket alone; silence (not even a heartbeat) for --timeout s ends it. */
static int watch_events(const struct client_args *a) {
    struct msock *sub = NULL;
    if (msock_connect(&sub, MSOCK_SUB, a->events, a->curve) < 0) return run_error();
    char job[128] = "";
    if (a->job) snprintf(job, sizeof job, "%s", a->job);
    const bool tty = isatty(fileno(stderr)) == 1;
    double last_draw = -1e30, heard = time_now();
    bool drawn = false;
    int ret = -1;
    while (ret < 0) {
        char *text = NULL;
        size_t len = 0;
        int parts = 0;
        const int got = msock_recv(sub, &text, &len, &parts, 250, 1 << 20);
        if (got == MSOCK_REFUSED) {
            err_set(ERR_IO, "%s: %s", a->events, msock_refusal(sub));
            ret = run_error();
            break;
        }
        if (got == 1) {
            heard = time_now();
            cJSON *ev = cJSON_Parse(text);
            ret = watch_event(ev, job, sizeof job, tty, &last_draw, &drawn);
            cJSON_Delete(ev);
        }
        free(text);
        if (ret < 0 && time_now() - heard > a->timeout) {
            if (drawn && tty) fputc('\n', stderr);
            err_set(ERR_IO, "%s: no progress events%s for %.0f s; is a render with --progress-endpoint %s running?",
                    a->events, job[0] ? " (not even a heartbeat)" : "", a->timeout, a->events);
            ret = run_error();
        }
    }
    msock_close(&sub);
    return ret;
}

int cmd_watch(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("watch", watch_help, argc, argv, &a, false);
    if (rc) return rc < 0 ? 0 : rc; /* -1: --help */
    if (a.events) return watch_events(&a);
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "status");
    rc = client_call(a.to, a.curve, req, a.timeout, &reply);
    cJSON_Delete(req);
    if (rc < 0) return run_error();
    char job[64] = "", pub[PATH_MAX] = "";
    snprintf(pub, sizeof pub, "%s", rstr(reply, "pub") ? rstr(reply, "pub") : "");
    snprintf(job, sizeof job, "%s", a.job ? a.job : rstr(reply, "running") ? rstr(reply, "running") : "");
    cJSON_Delete(reply);
    if (!job[0]) {
        err_set(ERR_INVALID_ARG, "%s: no job is running; give the JOB id", a.to);
        return run_error();
    }
    if (!strncmp(pub, "tcp://0.0.0.0:", 14) || !strncmp(pub, "tcp://*:", 8)) { /* a wildcard bind: the --to host */
        const char *port = strrchr(pub, ':'), *host_end = strrchr(a.to, ':');
        char fixed[PATH_MAX];
        if (port && host_end && !strncmp(a.to, "tcp://", 6)) {
            snprintf(fixed, sizeof fixed, "%.*s%s", (int)(host_end - a.to), a.to, port);
            snprintf(pub, sizeof pub, "%s", fixed);
        }
    }
    struct msock *sub = NULL;
    if (msock_connect(&sub, MSOCK_SUB, pub, a.curve) < 0) return run_error();
    const bool tty = isatty(fileno(stderr)) == 1;
    double last_draw = -1e30, last_poll = -1e30;
    int ret = -1;
    bool drawn = false;
    while (ret < 0) {
        if (time_now() - last_poll >= 2.0) { /* the job's state: catches missed events and a dead server */
            last_poll = time_now();
            req = cJSON_CreateObject();
            cJSON_AddStringToObject(req, "op", "status");
            cJSON_AddStringToObject(req, "job", job);
            rc = client_call(a.to, a.curve, req, a.timeout, &reply);
            cJSON_Delete(req);
            if (rc < 0) {
                if (drawn && tty) fputc('\n', stderr);
                ret = run_error();
                break;
            }
            const cJSON *j = cJSON_GetObjectItemCaseSensitive(reply, "job");
            if (drawn && tty && job_state_ends(rstr(j, "state"))) fputc('\n', stderr);
            ret = outcome(job, rstr(j, "state"), rstr(j, "output"), rstr(j, "error"));
            cJSON_Delete(reply);
            if (ret >= 0) break;
        }
        char *text = NULL;
        size_t len = 0;
        int parts = 0;
        const int got = msock_recv(sub, &text, &len, &parts, 500, 1 << 20);
        if (got != 1) continue;
        cJSON *ev = cJSON_Parse(text);
        free(text);
        ret = watch_event(ev, job, sizeof job, tty, &last_draw, &drawn);
        cJSON_Delete(ev);
    }
    msock_close(&sub);
    return ret;
}

/* ---- keygen ---- */

static const char keygen_help[] =
    "Usage: reelfarm keygen --out NAME [--force]\n"
    "\n"
    "Writes a CURVE key pair for the render service (docs/protocol.md, Security): NAME.key, the secret key\n"
    "(mode 0600; never copy it off the machine that uses it), and NAME.pub, the public key (Z85 text).\n"
    "A server uses its NAME.key as `serve --curve-secret` and gives NAME.pub to its clients (--server-key);\n"
    "a client uses its NAME.key as --curve-secret and its NAME.pub goes into the server's --allow-dir.\n"
    "\n"
    "  --out NAME                the files' base name (NAME.key and NAME.pub)\n"
    "  --force                   replace existing key files\n";

int cmd_keygen(int argc, char **argv) {
    static const struct option longopts[] = {{"out", required_argument, 0, 'o'},
                                             {"force", no_argument, 0, 'f'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    static const char cmd[] = "keygen";
    const char *out = NULL;
    bool force = false;
    optind = 0;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'f': force = true; break;
        case 'h': fputs(keygen_help, stdout); return 0;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!out || !out[0]) return usage_error(cmd, "give --out NAME (writes NAME.key and NAME.pub)");
    char pub[MSOCK_KEY_LEN + 1];
    if (msock_key_write(out, force, pub) < 0) return run_error();
    printf("%s\n", pub);
    fprintf(stderr, "reelfarm keygen: wrote %s.key (secret, mode 0600) and %s.pub (public key %s)\n", out, out, pub);
    return 0;
}
