/* cli/cmd_client.c - the render service's clients (issue 9, docs/protocol.md): `reelfarm submit --to`,
 * `reelfarm status`, `reelfarm watch`, `reelfarm cancel`.
 *
 * Each request is one REQ round trip on a fresh socket with a receive timeout (--timeout, default 10 s): a
 * server that is not there gives an error line naming the endpoint, never a hang. `watch` subscribes to the
 * server's PUB socket (its address comes in every reply) and also asks for the job's status every 2 s, so a
 * missed event (the PUB/SUB slow joiner) or a dead server cannot leave it waiting.
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

/* One request -> its reply object (ok true), or an error: no reply in time, or the server's error. */
static int client_call(const char *ep, cJSON *req, double timeout_s, cJSON **reply) {
    *reply = NULL;
    cJSON_AddNumberToObject(req, "v", SERVICE_PROTOCOL_VERSION);
    char *text = cJSON_PrintUnformatted(req);
    if (!text) return err_set(ERR_NOMEM, "out of memory");
    struct msock *s = NULL;
    char *answer = NULL;
    size_t len = 0;
    int parts = 0;
    const int ms = (int)(timeout_s * 1000);
    int rc = msock_connect(&s, MSOCK_REQ, ep);
    if (rc == ERR_OK) rc = msock_send(s, text, strlen(text), ms);
    if (rc == ERR_OK) {
        const int got = msock_recv(s, &answer, &len, &parts, ms, SERVICE_REQUEST_HARD);
        if (got == 0)
            rc = err_set(ERR_IO, "%s: no reply within %g s; is `reelfarm serve --bind %s` running?", ep, timeout_s, ep);
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
    "Exit status: 0 queued (job id on stdout), 1 refused or no server, 2 usage error.\n";

enum { OPT_TO = 1100, OPT_TIMEOUT, OPT_OVERWRITE, OPT_JSON };

int cmd_submit_to(int argc, char **argv) {
    static const struct option longopts[] = {
        {"to", required_argument, 0, OPT_TO},         {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"prompt", required_argument, 0, 'p'},        {"out", required_argument, 0, 'o'},
        {"model", required_argument, 0, 'm'},         {"frames", required_argument, 0, 'n'},
        {"steps", required_argument, 0, 's'},         {"seed", required_argument, 0, 'e'},
        {"resolution", required_argument, 0, 'r'},    {"overwrite", no_argument, 0, OPT_OVERWRITE},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    static const char cmd[] = "submit";
    const char *to = NULL, *prompt = NULL, *out = NULL, *model = NULL, *res = NULL;
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
        rc = client_call(to, req, timeout, &reply);
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
    double timeout;
    bool json;
};

static int parse_client(const char *cmd, const char *help, int argc, char **argv, struct client_args *a, bool json_ok) {
    static const struct option longopts[] = {{"to", required_argument, 0, OPT_TO},
                                             {"timeout", required_argument, 0, OPT_TIMEOUT},
                                             {"json", no_argument, 0, OPT_JSON},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->timeout = 10;
    optind = 0;
    opterr = 0;
    int ch, rc = 0;
    while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (ch) {
        case OPT_TO: a->to = optarg; break;
        case OPT_TIMEOUT: rc = arg_f64("--timeout", optarg, 0.01, 86400, &a->timeout); break;
        case OPT_JSON:
            if (!json_ok) return usage_error(cmd, "unknown option '--json'");
            a->json = true;
            break;
        case 'h': fputs(help, stdout); return 1;
        case ':': return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
        if (rc < 0) return usage_error(cmd, "%s", err_message());
    }
    if (optind < argc) a->job = argv[optind++];
    if (optind < argc) return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!a->to) return usage_error(cmd, "give --to ENDPOINT (the service's --bind)");
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
    "--json prints the server's reply (docs/protocol.md). Exit status: 0, 1 unknown job or no server.\n";

int cmd_status(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("status", status_help, argc, argv, &a, true);
    if (rc) return rc == 1 ? 0 : rc;
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", a.job ? "status" : "list");
    if (a.job) cJSON_AddStringToObject(req, "job", a.job);
    rc = client_call(a.to, req, a.timeout, &reply);
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
    "its checkpoint kept, so submitting the same film again resumes it. Exit status: 0, 1 refused or no server.\n";

int cmd_cancel(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("cancel", cancel_help, argc, argv, &a, false);
    if (rc) return rc == 1 ? 0 : rc;
    if (!a.job) return usage_error("cancel", "give the JOB id");
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "cancel");
    cJSON_AddStringToObject(req, "job", a.job);
    rc = client_call(a.to, req, a.timeout, &reply);
    cJSON_Delete(req);
    if (rc < 0) return run_error();
    printf("%s %s\n", a.job, rstr(reply, "state") ? rstr(reply, "state") : "?");
    cJSON_Delete(reply);
    return 0;
}

static const char watch_help[] =
    "Usage: reelfarm watch --to ENDPOINT [JOB] [--timeout S]\n"
    "\n"
    "Follows a job's progress (the running one without JOB) with a progress bar on stderr until it ends.\n"
    "Exit status: 0 the job is done, 1 it failed or was cancelled (or the server went away), 2 usage error.\n";

static bool job_state_ends(const char *state) {
    return state && (!strcmp(state, "done") || !strcmp(state, "failed") || !strcmp(state, "cancelled"));
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
    if (!strcmp(state, "failed") || !strcmp(state, "cancelled")) {
        fprintf(stderr, "reelfarm: error: job %s %s%s%s\n", job, state, error ? ": " : "", error ? error : "");
        return 1;
    }
    return -1;
}

int cmd_watch(int argc, char **argv) {
    struct client_args a;
    int rc = parse_client("watch", watch_help, argc, argv, &a, false);
    if (rc) return rc == 1 ? 0 : rc;
    cJSON *req = cJSON_CreateObject(), *reply = NULL;
    cJSON_AddStringToObject(req, "op", "status");
    rc = client_call(a.to, req, a.timeout, &reply);
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
    struct msock *sub = NULL;
    if (msock_connect(&sub, MSOCK_SUB, pub) < 0) return run_error();
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
            rc = client_call(a.to, req, a.timeout, &reply);
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
        const char *id = rstr(ev, "job"), *e = rstr(ev, "event");
        if (id && e && !strcmp(id, job)) {
            if (!strcmp(e, "row") || !strcmp(e, "chunk") || !strcmp(e, "started")) {
                draw(job, ev, tty, &last_draw);
                drawn = true;
            }
            if (job_state_ends(e)) {
                if (drawn && tty) fputc('\n', stderr);
                ret = outcome(job, e, rstr(ev, "output"), rstr(ev, "error"));
            }
        }
        cJSON_Delete(ev);
    }
    msock_close(&sub);
    return ret;
}
