/* tests/service/zload.c - load and latency of the render service (issue 9; docs/benchmarks.md "Render
 * service"). Optionally submits a film first (--submit JSON) and measures, from the PUB events, the time from
 * sending the submit to the job's "started" and first "row" events; then sends N status requests from T
 * threads (each its own REQ socket, one request in flight per thread) and prints the latency percentiles.
 * Every reply must say "ok":true within --timeout (default 5 s).
 * Usage: zload ENDPOINT [--requests N] [--threads T] [--submit FILM_REQUEST_JSON] [--wait-row S] [--timeout S]
 * Exit status: 0, 1 a request failed or the job never reached a row, 2 usage.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void *g_ctx;
static const char *g_ep;
static int g_timeout_ms = 5000;

static void *req_socket(void) {
    void *s = zmq_socket(g_ctx, ZMQ_REQ);
    const int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &g_timeout_ms, sizeof g_timeout_ms);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &g_timeout_ms, sizeof g_timeout_ms);
    zmq_connect(s, g_ep);
    return s;
}

/* One round trip; the reply into out. Returns its length, or -1. */
static int call(void *s, const char *req, char *out, int cap) {
    if (zmq_send(s, req, strlen(req), 0) < 0) return -1;
    const int n = zmq_recv(s, out, (size_t)cap - 1, 0);
    if (n < 0) return -1;
    out[n < cap - 1 ? n : cap - 1] = '\0';
    return n;
}

struct worker {
    pthread_t t;
    long n;
    double *lat;
    long failed;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    void *s = req_socket();
    char reply[8192];
    for (long i = 0; i < w->n; i++) {
        const double t0 = now_s();
        const int n = call(s, "{\"v\":1,\"op\":\"status\"}", reply, sizeof reply);
        w->lat[i] = now_s() - t0;
        if (n < 0 || !strstr(reply, "\"ok\":true")) {
            w->failed++;
            zmq_close(s);
            s = req_socket();
        }
    }
    zmq_close(s);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char *jfield(const char *json, const char *key, char *out, size_t cap) { /* "key":"value" */
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    out[0] = '\0';
    if (!p) return NULL;
    p += strlen(pat);
    size_t i = 0;
    while (*p && *p != '"' && i + 1 < cap)
        out[i++] = *p++;
    out[i] = '\0';
    return out;
}

int main(int argc, char **argv) {
    long requests = 5000;
    int threads = 2;
    double wait_row = 600;
    const char *submit = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--requests") && i + 1 < argc)
            requests = atol(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--submit") && i + 1 < argc)
            submit = argv[++i];
        else if (!strcmp(argv[i], "--wait-row") && i + 1 < argc)
            wait_row = atof(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            g_timeout_ms = (int)(atof(argv[++i]) * 1000);
        else if (!g_ep)
            g_ep = argv[i];
        else {
            fprintf(stderr, "zload: unexpected argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!g_ep || threads < 1 || threads > 64 || requests < 0) {
        fprintf(stderr,
                "usage: zload ENDPOINT [--requests N] [--threads T] [--submit JSON] [--wait-row S] [--timeout S]\n");
        return 2;
    }
    g_ctx = zmq_ctx_new();
    int ret = 0;
    char reply[16384], pub[512], job[64] = "";
    void *s = req_socket();
    if (call(s, "{\"v\":1,\"op\":\"status\"}", reply, sizeof reply) < 0 || !jfield(reply, "pub", pub, sizeof pub)) {
        fprintf(stderr, "zload: no status reply from %s\n", g_ep);
        return 1;
    }
    if (submit) {
        void *sub = zmq_socket(g_ctx, ZMQ_SUB);
        const int zero = 0;
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
        zmq_connect(sub, pub);
        /* the slow joiner: ask for status until a subscription has surely reached the server */
        struct timespec ms300 = {0, 300 * 1000 * 1000};
        nanosleep(&ms300, NULL);
        const double t0 = now_s();
        if (call(s, submit, reply, sizeof reply) < 0 || !strstr(reply, "\"ok\":true") ||
            !jfield(reply, "job", job, sizeof job)) {
            fprintf(stderr, "zload: the submit failed: %s\n", reply);
            return 1;
        }
        const double t_reply = now_s() - t0;
        double t_started = -1, t_row = -1;
        char ev[16384], id[64], name[32];
        while (now_s() - t0 < wait_row && t_row < 0) {
            zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
            if (zmq_poll(&it, 1, 200) <= 0) continue;
            const int n = zmq_recv(sub, ev, sizeof ev - 1, 0);
            if (n < 0) continue;
            ev[n < (int)sizeof ev - 1 ? n : (int)sizeof ev - 1] = '\0';
            if (!jfield(ev, "job", id, sizeof id) || strcmp(id, job) != 0 || !jfield(ev, "event", name, sizeof name))
                continue;
            if (!strcmp(name, "started") && t_started < 0) t_started = now_s() - t0;
            if (!strcmp(name, "row")) t_row = now_s() - t0;
            if (!strcmp(name, "failed") || !strcmp(name, "done") || !strcmp(name, "cancelled")) {
                fprintf(stderr, "zload: job %s ended (%s) before a row: %s\n", job, name, ev);
                break;
            }
        }
        zmq_close(sub);
        printf("zload: job %s: submit reply %.2f ms, started event %.3f s, first row event %.3f s after the submit\n",
               job, 1e3 * t_reply, t_started, t_row);
        if (t_row < 0) ret = 1;
    }
    if (requests > 0) {
        struct worker *w = calloc((size_t)threads, sizeof *w);
        double *lat = calloc((size_t)requests, sizeof *lat);
        long off = 0;
        const double t0 = now_s();
        for (int i = 0; i < threads; i++) {
            w[i].n = requests / threads + (i < requests % threads);
            w[i].lat = lat + off;
            off += w[i].n;
            pthread_create(&w[i].t, NULL, worker_main, &w[i]);
        }
        long failed = 0;
        for (int i = 0; i < threads; i++)
            pthread_join(w[i].t, NULL), failed += w[i].failed;
        const double dt = now_s() - t0;
        qsort(lat, (size_t)requests, sizeof *lat, cmp);
#define PCT(p) (1e3 * lat[(size_t)((double)(requests - 1) * (p))])
        char running[64] = "";
        if (call(s, "{\"v\":1,\"op\":\"status\"}", reply, sizeof reply) >= 0)
            jfield(reply, "running", running, sizeof running);
        printf(
            "zload: %ld status requests from %d threads in %.2f s (%.0f/s), %ld failed; latency ms: p50 %.3f p90 %.3f "
            "p99 %.3f max %.3f; running job at the end: %s\n",
            requests, threads, dt, (double)requests / dt, failed, PCT(0.50), PCT(0.90), PCT(0.99),
            1e3 * lat[requests - 1], running[0] ? running : "none");
        if (failed) ret = 1;
        free(lat), free(w);
    }
    zmq_close(s);
    zmq_ctx_destroy(g_ctx);
    return ret;
}
