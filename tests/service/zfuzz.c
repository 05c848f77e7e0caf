/* tests/service/zfuzz.c - a bounded fuzzer for the render service's request socket (issue 9), for
 * tests/service/test_fuzz.sh. Sends up to N messages (default 3000) within S seconds (default 20) to
 * ENDPOINT: random bytes, truncated and byte-mutated requests, random multi-frame messages, messages without
 * the REQ envelope, huge frames (5 MiB: too_large; 9 MiB: past ZMQ_MAXMSGSIZE, the connection is dropped),
 * deep nesting, JSON of the right shape with fields of the wrong types, and raw TCP garbage that is not ZMTP.
 * It talks through a DEALER socket, so a message that gets no reply costs a bounded wait, never a wedged
 * REQ state machine; after a missed reply it starts a fresh socket (stale replies cannot be mistaken for
 * new ones). Every reply must be a service reply ({"v":1,"ok":...). Submits never name an absolute output,
 * so no film is rendered. At the end a plain status request must succeed.
 * Usage: zfuzz ENDPOINT [--count N] [--seconds S] [--seed X]
 * Exit status: 0 all good, 1 a bad reply or the final status failed, 2 usage.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12, rng_state ^= rng_state << 25, rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static size_t rn(size_t n) {
    return n ? (size_t)(rnd() % n) : 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

struct buf {
    char *p;
    size_t n, cap;
};
static void put(struct buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1);
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void puts_(struct buf *b, const char *s) {
    put(b, s, strlen(s));
}

static const char *const valid[] = {
    "{\"v\":1,\"op\":\"status\"}",
    "{\"v\":1,\"op\":\"list\"}",
    "{\"v\":1,\"op\":\"status\",\"job\":\"j1\"}",
    "{\"v\":1,\"op\":\"cancel\",\"job\":\"j999\"}",
    "{\"v\":1,\"op\":\"submit\",\"film\":{\"prompt\":\"a "
    "lighthouse\",\"frames\":17,\"steps\":3,\"output\":7},\"overwrite\":false}",
    "{\"v\":1,\"op\":\"submit\",\"film\":{\"shots\":[{\"prompt\":\"a\",\"seconds\":2}],\"output\":null}}",
};
#define N_VALID (sizeof valid / sizeof valid[0])

/* A random JSON value of any type, depth-bounded. */
static void rand_value(struct buf *b, int depth) {
    static const char *const atoms[] = {"null",   "true",      "false",       "0",           "-1",
                                        "1e308",  "-0.0",      "3.5",         "1e999",       "\"\"",
                                        "\"j1\"", "\"x.mp4\"", "\"\\u0000\"", "\"\\ud800\"", "12345678901234567890"};
    const size_t k = rn(depth > 3 ? 1 : 4);
    if (k == 0) {
        puts_(b, atoms[rn(sizeof atoms / sizeof atoms[0])]);
    } else if (k == 1) {
        puts_(b, "[");
        for (size_t i = 0, n = rn(4); i < n; i++) {
            if (i) puts_(b, ",");
            rand_value(b, depth + 1);
        }
        puts_(b, "]");
    } else if (k == 2) {
        puts_(b, "{\"k\":");
        rand_value(b, depth + 1);
        puts_(b, "}");
    } else {
        char s[64];
        snprintf(s, sizeof s, "\"%c%llu\"", "abc/ ."[rn(6)], (unsigned long long)rn(1000));
        puts_(b, s);
    }
}

/* Right shape, wrong types: v, op, job, film (with film keys), overwrite, with random values. */
static void wrong_types(struct buf *b) {
    static const char *const ops[] = {"\"submit\"", "\"status\"", "\"list\"", "\"cancel\"",  "\"STATUS\"",
                                      "\"\"",       "7",          "null",     "[\"status\"]"};
    static const char *const film_keys[] = {
        "prompt",          "frames",   "seconds",   "steps", "seed",        "resolution",   "shots",
        "image",           "guidance", "shift",     "fps",   "base_frames", "overlap",      "model",
        "negative_prompt", "extend",   "end_image", "codec", "crf",         "overlap_mode", "bogus"};
    puts_(b, "{");
    puts_(b, rn(4) ? "\"v\":1," : "\"v\":");
    if (b->p[b->n - 1] == ':') rand_value(b, 0), puts_(b, ",");
    puts_(b, "\"op\":");
    puts_(b, ops[rn(sizeof ops / sizeof ops[0])]);
    if (rn(2)) puts_(b, ",\"job\":"), rand_value(b, 1);
    if (rn(2)) puts_(b, ",\"overwrite\":"), rand_value(b, 1);
    if (rn(4)) {
        puts_(b, ",\"film\":{\"output\":");
        static const char *const outs[] = {"7",    "null", "\"rel.mp4\"", "[\"/a.mp4\"]", "{\"p\":\"/a\"}",
                                           "\"\"", "true"};
        puts_(b, outs[rn(sizeof outs / sizeof outs[0])]); /* never an absolute path: nothing renders */
        for (size_t i = 0, n = rn(6); i < n; i++) {
            puts_(b, ",\"");
            puts_(b, film_keys[rn(sizeof film_keys / sizeof film_keys[0])]);
            puts_(b, "\":");
            rand_value(b, 1);
        }
        puts_(b, "}");
    }
    puts_(b, "}");
}

struct stats {
    long sent, replies, silent, tcp, bad;
    long silent_kind[12];
    int kind, prev;
    bool fresh;
};

static void *fresh(void *ctx, const char *ep) {
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    const int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(s, ep);
    return s;
}

/* Send frames (with the empty REQ delimiter first unless no_envelope); wait up to wait_ms for a reply. */
static int exchange(void **s, void *ctx, const char *ep, struct buf *frames, int n, bool no_envelope, int wait_ms,
                    struct stats *st) {
    const int ms = 2000;
    zmq_setsockopt(*s, ZMQ_SNDTIMEO, &ms, sizeof ms);
    int rc = 0;
    if (!no_envelope) rc = zmq_send(*s, "", 0, ZMQ_SNDMORE);
    for (int i = 0; rc >= 0 && i < n; i++)
        rc = zmq_send(*s, frames[i].p ? frames[i].p : "", frames[i].n, i + 1 < n ? ZMQ_SNDMORE : 0);
    st->sent++;
    zmq_pollitem_t it = {.socket = *s, .events = ZMQ_POLLIN};
    if (rc < 0 || zmq_poll(&it, 1, wait_ms) <= 0) { /* no reply: a fresh socket for the next message */
        st->silent++;
        st->silent_kind[st->kind]++;
        if (getenv("ZFUZZ_DEBUG"))
            fprintf(stderr, "unanswered: kind %d (previous %d) after %s (%zu bytes, %d frames): %.300s\n", st->kind,
                    st->prev, st->fresh ? "a fresh socket" : "a reply", frames[0].n, n, frames[0].p);
        st->fresh = true;
        zmq_close(*s);
        *s = fresh(ctx, ep);
        return 0;
    }
    int part = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, *s, 0) < 0) break;
        more = zmq_msg_more(&m);
        if (part == 1 && (zmq_msg_size(&m) < 12 || memcmp(zmq_msg_data(&m), "{\"v\":1,\"ok\":", 12) != 0)) {
            fprintf(stderr, "zfuzz: a reply that is not a service reply: %.*s\n",
                    (int)(zmq_msg_size(&m) < 200 ? zmq_msg_size(&m) : 200), (const char *)zmq_msg_data(&m));
            st->bad++;
        }
        part++;
        zmq_msg_close(&m);
    }
    st->replies++;
    st->fresh = false;
    return 1;
}

/* Raw TCP bytes to a tcp:// endpoint: a peer that does not speak ZMTP. */
static void tcp_garbage(const char *ep, struct stats *st) {
    const char *h = ep + 6, *colon = strrchr(ep, ':');
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return;
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        unsigned char g[512];
        const size_t n = 1 + rn(sizeof g);
        for (size_t i = 0; i < n; i++)
            g[i] = (unsigned char)rnd();
        if (rn(2)) g[0] = 0xff; /* looks like the start of a ZMTP greeting */
        ssize_t w = write(fd, g, n);
        (void)w;
        st->tcp++;
    }
    close(fd);
}

int main(int argc, char **argv) {
    const char *ep = NULL;
    long count = 3000;
    double seconds = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            rng_state ^= strtoull(argv[++i], NULL, 0) * 0x2545F4914F6CDD1Dull;
        else if (!ep)
            ep = argv[i];
        else {
            fprintf(stderr, "usage: zfuzz ENDPOINT [--count N] [--seconds S] [--seed X]\n");
            return 2;
        }
    }
    if (!ep) {
        fprintf(stderr, "usage: zfuzz ENDPOINT [--count N] [--seconds S] [--seed X]\n");
        return 2;
    }
    void *ctx = zmq_ctx_new(), *s = fresh(ctx, ep);
    struct stats st = {0};
    long kinds[11] = {0};
    const double t0 = now_s();
    struct buf f[12] = {{0}};
    for (long i = 0; i < count && now_s() - t0 < seconds; i++) {
        for (int k = 0; k < 12; k++)
            f[k].n = 0, puts_(&f[k], "");
        int n = 1, wait_ms = 250;
        bool no_env = false;
        int kind = (int)rn(10);
        if (kind == 8 && rn(3)) kind = 3; /* no envelope costs a wait: fewer of those */
        if (i % 500 == 250) kind = 10;    /* huge frames: a few only */
        if (kind == 10) {
            const size_t big = (i / 500) % 2 ? (size_t)9 << 20 : (size_t)5 << 20;
            f[0].n = 0;
            char *tmp = malloc(big);
            memset(tmp, '{', big);
            put(&f[0], tmp, big);
            free(tmp);
            wait_ms = 3000;
            kinds[10]++;
        } else {
            kinds[kind]++;
            switch (kind) {
            case 0: /* random bytes */
                for (size_t j = 0, len = rn(2000); j < len; j++) {
                    const char c = (char)rnd();
                    put(&f[0], &c, 1);
                }
                break;
            case 1: { /* a truncated request */
                const char *v = valid[rn(N_VALID)];
                put(&f[0], v, rn(strlen(v)));
                break;
            }
            case 2: /* random multi-frame */
                n = 2 + (int)rn(10);
                for (int k = 0; k < n; k++) {
                    if (rn(2))
                        puts_(&f[k], valid[rn(N_VALID)]);
                    else
                        for (size_t j = 0, len = rn(64); j < len; j++) {
                            const char c = (char)rnd();
                            put(&f[k], &c, 1);
                        }
                }
                break;
            case 3:
            case 4:
            case 5: /* the right shape, wrong types */ wrong_types(&f[0]); break;
            case 6: { /* a mutated request */
                puts_(&f[0], valid[rn(N_VALID)]);
                for (size_t j = 0, m = 1 + rn(4); j < m; j++)
                    f[0].p[rn(f[0].n)] = (char)rnd();
                break;
            }
            case 7: { /* deep nesting */
                const size_t d = 1 + rn(20000);
                for (size_t j = 0; j < d; j++)
                    puts_(&f[0], rn(2) ? "[" : "{\"a\":");
                break;
            }
            case 8: /* no REQ envelope (a DEALER speaking to REP without the delimiter) */
                no_env = true;
                n = 1 + (int)rn(3);
                for (int k = 0; k < n; k++)
                    puts_(&f[k], valid[rn(N_VALID)]);
                wait_ms = 100;
                break;
            case 9: /* not ZMTP at all */
                if (!strncmp(ep, "tcp://", 6) && !getenv("ZFUZZ_NO_TCP")) tcp_garbage(ep, &st);
                st.kind = 9;
                continue;
            }
        }
        st.prev = st.kind;
        st.kind = kind;
        exchange(&s, ctx, ep, f, n, no_env, wait_ms, &st);
    }
    const double dt = now_s() - t0;
    for (int k = 0; k < 12; k++)
        free(f[k].p);
    zmq_close(s);
    /* the server must still answer a plain request */
    void *req = zmq_socket(ctx, ZMQ_REQ);
    const int zero = 0, ms = 5000;
    zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &ms, sizeof ms);
    zmq_connect(req, ep);
    char reply[4096] = "";
    int got = -1;
    const double t1 = now_s();
    if (zmq_send(req, "{\"v\":1,\"op\":\"status\"}", 21, 0) == 21) got = zmq_recv(req, reply, sizeof reply - 1, 0);
    if (getenv("ZFUZZ_DEBUG")) fprintf(stderr, "final status after %.3f s\n", now_s() - t1);
    if (got >= 0) reply[got < (int)sizeof reply - 1 ? got : (int)sizeof reply - 1] = '\0';
    const bool final_ok = got > 0 && strstr(reply, "\"ok\":true") != NULL;
    printf(
        "zfuzz: %ld messages in %.1f s (random %ld, truncated %ld, multi-frame %ld, wrong types %ld, mutated %ld, "
        "deep %ld, no envelope %ld, huge %ld; raw TCP connections %ld): %ld replies, %ld unanswered, %ld bad replies; "
        "final status: %s\n",
        st.sent + st.tcp, dt, kinds[0], kinds[1], kinds[2], kinds[3] + kinds[4] + kinds[5], kinds[6], kinds[7],
        kinds[8], kinds[10], st.tcp, st.replies, st.silent, st.bad,
        final_ok  ? "ok"
        : got < 0 ? "no reply"
                  : reply);
    printf("zfuzz: unanswered by kind: random %ld, truncated %ld, multi-frame %ld, wrong types %ld, mutated %ld, deep "
           "%ld, "
           "no envelope %ld (expected: REP drops them), huge %ld (expected for 9 MiB: the connection is dropped)\n",
           st.silent_kind[0], st.silent_kind[1], st.silent_kind[2],
           st.silent_kind[3] + st.silent_kind[4] + st.silent_kind[5], st.silent_kind[6], st.silent_kind[7],
           st.silent_kind[8], st.silent_kind[10]);
    zmq_close(req);
    zmq_ctx_destroy(ctx);
    return st.bad == 0 && final_ok ? 0 : 1;
}
