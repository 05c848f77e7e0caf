/* io/msg_socket.c - ZeroMQ sockets for the render service (see msg_socket.h). */
#include "io/msg_socket.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "core/error.h"
#include "core/log.h"

struct msock {
    void *z;
    enum msock_kind kind;
    /* handshake monitor (CURVE sockets and clients): a thread reading zmq_socket_monitor's events */
    bool curve; /* CURVE on (either side) */
    bool monitored;
    atomic_bool mon_stop;
    pthread_t mon;
    void *mon_pair;
    char endpoint[256];
    pthread_mutex_t lock; /* refusal */
    char refusal[512];
    /* log rate limit (server sockets): at most 20 lines per 10 s */
    double window_t0;
    int window_lines, suppressed;
};

static void *g_ctx;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

/* One context for the process, never terminated (sockets have no linger, so exit does not wait). */
static void ctx_init(void) {
    g_ctx = zmq_ctx_new();
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

const char *msock_refusal(struct msock *s);

static const int kinds[] = {[MSOCK_REP] = ZMQ_REP, [MSOCK_REQ] = ZMQ_REQ, [MSOCK_PUB] = ZMQ_PUB, [MSOCK_SUB] = ZMQ_SUB};

static int msock_new(struct msock **out, enum msock_kind kind) {
    *out = NULL;
    pthread_once(&g_ctx_once, ctx_init);
    if (!g_ctx) return err_set(ERR_IO, "zmq: cannot create a context: %s", zmq_strerror(errno));
    struct msock *s = calloc(1, sizeof *s);
    if (!s) return err_set(ERR_NOMEM, "out of memory");
    s->kind = kind;
    pthread_mutex_init(&s->lock, NULL);
    s->z = zmq_socket(g_ctx, kinds[kind]);
    if (!s->z) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return err_set(ERR_IO, "zmq: cannot create a socket: %s", zmq_strerror(errno));
    }
    const int zero = 0;
    zmq_setsockopt(s->z, ZMQ_LINGER, &zero, sizeof zero);
    *out = s;
    return ERR_OK;
}

/* ---- handshake monitor ---- */

static const char *protocol_error(uint32_t v) {
    if (v == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return "security mechanism mismatch (one side uses CURVE, the other not)";
    if (v == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC) return "CURVE cryptographic error (wrong server key?)";
    if (v >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED && v <= ZMQ_PROTOCOL_ERROR_ZAP_INVALID_METADATA)
        return "ZAP handler error";
    return "malformed handshake";
}

/* One failed handshake: a server logs it (rate-limited), a client remembers it for msock_refusal. */
static void on_handshake_failed(struct msock *s, uint16_t event, uint32_t value, const char *ep) {
    char what[200];
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(what, sizeof what, "CURVE authentication refused (ZAP status %u)", value);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        snprintf(what, sizeof what, "%s (protocol error 0x%x)", protocol_error(value), value);
    else
        snprintf(what, sizeof what, "%s", zmq_strerror((int)value));
    if (s->kind == MSOCK_REQ || s->kind == MSOCK_SUB) {
        pthread_mutex_lock(&s->lock);
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            snprintf(s->refusal, sizeof s->refusal,
                     "the server refused our CURVE key (is its .pub in the server's "
                     "--allow-dir?)");
        else if (s->curve)
            snprintf(s->refusal, sizeof s->refusal,
                     "the CURVE handshake failed (%s): is --server-key the server's "
                     "public key, and does the server use CURVE?",
                     what);
        else
            snprintf(s->refusal, sizeof s->refusal,
                     "the handshake failed (%s): the server requires CURVE; give "
                     "--curve-secret FILE --server-key FILE",
                     what);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) return; /* the ZAP handler logged it, with the peer and key */
    const double t = now_s();
    if (t - s->window_t0 > 10.0) {
        if (s->suppressed) LOG_WARN("msock: %d more refused handshakes on %s not logged", s->suppressed, ep);
        s->window_t0 = t, s->window_lines = 0, s->suppressed = 0;
    }
    if (s->window_lines++ < 20)
        LOG_WARN("msock: refused a connection on %s: %s", ep, what);
    else
        s->suppressed++;
}

static void *monitor_main(void *arg) {
    struct msock *s = arg;
    while (!atomic_load(&s->mon_stop)) {
        zmq_pollitem_t item = {.socket = s->mon_pair, .events = ZMQ_POLLIN};
        const int ready = zmq_poll(&item, 1, 100);
        if (ready < 0 && errno != EINTR) break;
        if (ready <= 0) continue;
        zmq_msg_t m[2];
        zmq_msg_init(&m[0]), zmq_msg_init(&m[1]);
        if (zmq_msg_recv(&m[0], s->mon_pair, 0) < 0) break; /* the context is gone */
        int got = 1;
        if (zmq_msg_more(&m[0]) && zmq_msg_recv(&m[1], s->mon_pair, 0) >= 0) got = 2;
        while (got == 2 && zmq_msg_more(&m[1])) { /* no more frames are expected; drain any */
            zmq_msg_t x;
            zmq_msg_init(&x);
            const int r = zmq_msg_recv(&x, s->mon_pair, 0);
            const int more = r >= 0 && zmq_msg_more(&x);
            zmq_msg_close(&x);
            if (!more) break;
        }
        uint16_t event = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&m[0]) >= 6) {
            memcpy(&event, zmq_msg_data(&m[0]), 2);
            memcpy(&value, (char *)zmq_msg_data(&m[0]) + 2, 4);
        }
        char ep[256] = "";
        if (got == 2) snprintf(ep, sizeof ep, "%.*s", (int)zmq_msg_size(&m[1]), (const char *)zmq_msg_data(&m[1]));
        zmq_msg_close(&m[0]), zmq_msg_close(&m[1]);
        if (event == ZMQ_EVENT_MONITOR_STOPPED) break;
        on_handshake_failed(s, event, value, ep[0] ? ep : s->endpoint);
    }
    return NULL;
}

/* Watch s's failed handshakes from a thread of its own (stopped and joined by msock_close). */
static int monitor_start(struct msock *s) {
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://msock-monitor-%p", (void *)s);
    const int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_MONITOR_STOPPED;
    if (zmq_socket_monitor(s->z, addr, events) != 0)
        return err_set(ERR_IO, "zmq: cannot monitor a socket: %s", zmq_strerror(errno));
    atomic_init(&s->mon_stop, false);
    s->mon_pair = zmq_socket(g_ctx, ZMQ_PAIR);
    if (!s->mon_pair || zmq_connect(s->mon_pair, addr) != 0 || pthread_create(&s->mon, NULL, monitor_main, s) != 0) {
        if (s->mon_pair) zmq_close(s->mon_pair), s->mon_pair = NULL;
        zmq_socket_monitor(s->z, NULL, 0);
        return err_set(ERR_IO, "zmq: cannot start a socket monitor");
    }
    s->monitored = true;
    return ERR_OK;
}

static int set_key(void *z, int opt, const char *key) {
    return zmq_setsockopt(z, opt, key, MSOCK_KEY_LEN + 1);
}

int msock_bind(struct msock **out, enum msock_kind kind, const char *endpoint, size_t hard_max,
               const struct msock_curve *curve) {
    TRY(msock_new(out, kind));
    struct msock *s = *out;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    if (hard_max > 0) {
        const int64_t m = (int64_t)hard_max;
        zmq_setsockopt(s->z, ZMQ_MAXMSGSIZE, &m, sizeof m);
    }
    /* A ZAP domain on every server socket: libzmq then refuses peers speaking the old ZMTP 1.0/2.0 (which
     * skip the security handshake); with CURVE it also routes each client key to the ZAP handler. Without
     * CURVE and with no handler, ZMTP 3 peers are let in (ZMQ_ZAP_ENFORCE_DOMAIN is off). Measured: raw
     * garbage that parses as a ZMTP 1.0 message cut short made the REP socket lose the next peer's request
     * (tests/service/zfuzz.c); with the domain set it is refused at the greeting. */
    int rc = zmq_setsockopt(s->z, ZMQ_ZAP_DOMAIN, "reelfarm", 8) != 0
                 ? err_set(ERR_IO, "zmq: cannot set a ZAP domain: %s", zmq_strerror(errno))
                 : ERR_OK;
    if (rc == ERR_OK && curve) {
        const int one = 1;
        if (zmq_setsockopt(s->z, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            set_key(s->z, ZMQ_CURVE_SECRETKEY, curve->secret_key) != 0)
            rc = err_set(ERR_IO, "cannot enable CURVE on %s: %s", endpoint, zmq_strerror(errno));
        if (rc == ERR_OK) rc = monitor_start(s);
        s->curve = true;
    }
    if (rc == ERR_OK && zmq_bind(s->z, endpoint) != 0)
        rc = err_set(ERR_IO, "cannot bind %s: %s", endpoint, zmq_strerror(errno));
    if (rc < 0) msock_close(out);
    return rc;
}

int msock_connect(struct msock **out, enum msock_kind kind, const char *endpoint, const struct msock_curve *curve) {
    TRY(msock_new(out, kind));
    struct msock *s = *out;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    int rc = ERR_OK;
    if (kind == MSOCK_SUB) zmq_setsockopt(s->z, ZMQ_SUBSCRIBE, "", 0);
    if (curve && (set_key(s->z, ZMQ_CURVE_SERVERKEY, curve->server_key) != 0 ||
                  set_key(s->z, ZMQ_CURVE_PUBLICKEY, curve->public_key) != 0 ||
                  set_key(s->z, ZMQ_CURVE_SECRETKEY, curve->secret_key) != 0))
        rc = err_set(ERR_IO, "cannot enable CURVE for %s: %s", endpoint, zmq_strerror(errno));
    s->curve = curve != NULL;
    if (rc == ERR_OK) rc = monitor_start(s);
    if (rc == ERR_OK && zmq_connect(s->z, endpoint) != 0)
        rc = err_set(ERR_IO, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
    if (rc < 0) msock_close(out);
    return rc;
}

const char *msock_refusal(struct msock *s) {
    pthread_mutex_lock(&s->lock);
    const char *r = s->refusal[0] ? s->refusal : NULL; /* written once per failure; read after the wait */
    pthread_mutex_unlock(&s->lock);
    return r;
}

int msock_send(struct msock *s, const void *data, size_t len, int timeout_ms) {
    zmq_setsockopt(s->z, ZMQ_SNDTIMEO, &timeout_ms, sizeof timeout_ms);
    if (zmq_send(s->z, data, len, 0) < 0) {
        if (errno == EAGAIN) return err_set(ERR_IO, "zmq: send timed out after %d ms", timeout_ms);
        return err_set(ERR_IO, "zmq: send failed: %s", zmq_strerror(errno));
    }
    return ERR_OK;
}

int msock_recv(struct msock *s, char **out, size_t *len, int *parts, int timeout_ms, size_t max) {
    *out = NULL, *len = 0, *parts = 0;
    zmq_pollitem_t item = {.socket = s->z, .events = ZMQ_POLLIN};
    const bool client = s->monitored && (s->kind == MSOCK_REQ || s->kind == MSOCK_SUB);
    const double until = now_s() + timeout_ms / 1000.0;
    int n;
    for (;;) { /* a client waits in slices, to give up as soon as its handshake was refused */
        int slice = timeout_ms;
        if (client) {
            const double left_ms = (until - now_s()) * 1000.0;
            slice = timeout_ms < 0 ? 100 : left_ms < 0 ? 0 : left_ms < 100 ? (int)left_ms : 100;
        }
        n = zmq_poll(&item, 1, slice);
        if (n < 0) return errno == EINTR ? 0 : err_set(ERR_IO, "zmq: poll failed: %s", zmq_strerror(errno));
        if (n > 0) break;
        if (client && msock_refusal(s)) return MSOCK_REFUSED;
        if (!client || (timeout_ms >= 0 && now_s() >= until)) return 0;
    }
    char *buf = NULL;
    size_t total = 0;
    bool too_big = false;
    int more = 1;
    while (more) { /* every frame of the message, so the socket is ready for the next one */
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->z, 0) < 0) {
            const int e = errno;
            zmq_msg_close(&m);
            free(buf);
            return err_set(ERR_IO, "zmq: receive failed: %s", zmq_strerror(e));
        }
        const size_t sz = zmq_msg_size(&m);
        if (!too_big && total + sz > max) {
            too_big = true;
            free(buf), buf = NULL;
        }
        if (!too_big) {
            char *g = realloc(buf, total + sz + 1);
            if (!g) {
                too_big = true;
                free(buf), buf = NULL;
            } else {
                buf = g;
                memcpy(buf + total, zmq_msg_data(&m), sz);
            }
        }
        total += sz;
        (*parts)++;
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    *len = total;
    if (too_big) return MSOCK_TOO_BIG;
    if (!buf && !(buf = malloc(1))) return err_set(ERR_NOMEM, "out of memory");
    buf[total] = '\0';
    *out = buf;
    return 1;
}

void msock_close(struct msock **sp) {
    struct msock *s = *sp;
    if (!s) return;
    if (s->monitored) { /* the monitor thread ends on ZMQ_EVENT_MONITOR_STOPPED, or within 100 ms */
        atomic_store(&s->mon_stop, true);
        zmq_socket_monitor(s->z, NULL, 0);
        pthread_join(s->mon, NULL);
        zmq_close(s->mon_pair);
    }
    zmq_close(s->z);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *sp = NULL;
}

bool msock_endpoint_is_local(const char *ep) {
    if (!strncmp(ep, "ipc://", 6)) return ep[6] != '\0';
    if (strncmp(ep, "tcp://", 6) != 0) return false;
    const char *h = ep + 6;
    if (!strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6)) return true;
    if (strncmp(h, "127.", 4) != 0) return false;
    /* 127.a.b.c: digits and dots only up to the port */
    int dots = 0;
    const char *p = h + 4;
    for (; *p && *p != ':'; p++) {
        if (*p == '.')
            dots++;
        else if (*p < '0' || *p > '9')
            return false;
    }
    return *p == ':' && dots == 2;
}

/* ---- CURVE keys ---- */

bool msock_has_curve(void) {
    return zmq_has("curve") == 1;
}

static bool z85_key_ok(const char *key) {
    uint8_t bin[32];
    return strlen(key) == MSOCK_KEY_LEN && zmq_z85_decode(bin, key) != NULL;
}

static int write_key_file(const char *path, const char *what, const char *key, mode_t mode, bool overwrite) {
    const int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | (overwrite ? 0 : O_EXCL), mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return err_set(ERR_EXISTS, "%s already exists; refusing to overwrite a key (--force)", path);
        return err_set(ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    char text[256];
    const int n = snprintf(text, sizeof text, "# reelfarm CURVE %s (ZeroMQ Z85)\n%s\n", what, key);
    int rc = fchmod(fd, mode) != 0 ? err_set(ERR_IO, "cannot chmod %s: %s", path, strerror(errno)) : ERR_OK;
    for (ssize_t off = 0; rc == ERR_OK && off < n;) {
        const ssize_t w = write(fd, text + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            rc = err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
        else
            off += w;
    }
    if (close(fd) != 0 && rc == ERR_OK) rc = err_set(ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

int msock_key_write(const char *base, bool overwrite, char public_key[MSOCK_KEY_LEN + 1]) {
    if (!msock_has_curve()) return err_set(ERR_UNSUPPORTED, "this libzmq was built without CURVE (libsodium)");
    char sec[MSOCK_KEY_LEN + 1], path[4096];
    if (zmq_curve_keypair(public_key, sec) != 0)
        return err_set(ERR_IO, "zmq: cannot make a key pair: %s", zmq_strerror(errno));
    if ((size_t)snprintf(path, sizeof path, "%s.key", base) >= sizeof path)
        return err_set(ERR_INVALID_ARG, "%s: too long", base);
    int rc =
        write_key_file(path, "secret key: keep it private; its public half is in the .pub file", sec, 0600, overwrite);
    if (rc == ERR_OK) {
        snprintf(path, sizeof path, "%s.pub", base);
        rc = write_key_file(path, "public key", public_key, 0644, overwrite);
    }
    memset(sec, 0, sizeof sec);
    return rc;
}

int msock_key_read(const char *path, bool secret, char key[MSOCK_KEY_LEN + 1]) {
    key[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return err_set(ERR_IO, "cannot open the key file %s: %s", path, strerror(errno));
    struct stat st;
    if (secret && fstat(fileno(f), &st) == 0 && (st.st_mode & 077)) {
        fclose(f);
        return err_set(ERR_INVALID_ARG, "%s: a secret key readable by others (mode %03o); chmod 600 %s", path,
                       (unsigned)(st.st_mode & 0777), path);
    }
    char line[512];
    int rc = err_set(ERR_FORMAT, "%s: no key in the file (expected one 40-character Z85 line)", path);
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        if (!n || line[0] == '#') continue;
        if (!z85_key_ok(line)) {
            rc = err_set(ERR_FORMAT, "%s: not a CURVE key (expected 40 Z85 characters, as `reelfarm keygen` writes)",
                         path);
            break;
        }
        memcpy(key, line, MSOCK_KEY_LEN + 1);
        rc = ERR_OK;
        break;
    }
    fclose(f);
    memset(line, 0, sizeof line);
    return rc;
}

int msock_curve_load(struct msock_curve *c, const char *secret_file, const char *server_key_file) {
    memset(c, 0, sizeof *c);
    if (!msock_has_curve()) return err_set(ERR_UNSUPPORTED, "this libzmq was built without CURVE (libsodium)");
    TRY(msock_key_read(secret_file, true, c->secret_key));
    if (zmq_curve_public(c->public_key, c->secret_key) != 0)
        return err_set(ERR_FORMAT, "%s: not a CURVE secret key", secret_file);
    if (server_key_file) TRY(msock_key_read(server_key_file, false, c->server_key));
    return ERR_OK;
}

/* ---- the ZAP handler (RFC 27) ---- */

struct allowed_key {
    char key[MSOCK_KEY_LEN + 1];
    char name[64]; /* the .pub file's name, for the log */
};

struct msock_auth {
    void *rep;
    pthread_t thread;
    atomic_bool stop;
    struct allowed_key *keys;
    int n_keys;
    char dir[1024];
};

static bool g_auth_running;

static void frame_str(zmq_msg_t *m, char *out, size_t cap) {
    const size_t n = zmq_msg_size(m) < cap - 1 ? zmq_msg_size(m) : cap - 1;
    memcpy(out, zmq_msg_data(m), n);
    out[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 32 || (unsigned char)out[i] > 126) out[i] = '?';
}

/* One ZAP request: frames version, request id, domain, address, routing id, mechanism, credentials. */
static void zap_answer(struct msock_auth *a) {
    enum { MAX_FRAMES = 8 };
    zmq_msg_t f[MAX_FRAMES];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, a->rep, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < MAX_FRAMES)
            f[n++] = m;
        else
            zmq_msg_close(&m);
    }
    if (n < 6) { /* not a ZAP request: REP still owes a reply */
        zmq_send(a->rep, "", 0, 0);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        return;
    }
    char mech[16], addr[64], key[MSOCK_KEY_LEN + 1] = "";
    frame_str(&f[5], mech, sizeof mech);
    frame_str(&f[3], addr, sizeof addr);
    const struct allowed_key *hit = NULL;
    if (!strcmp(mech, "CURVE") && n >= 7 && zmq_msg_size(&f[6]) == 32) {
        zmq_z85_encode(key, zmq_msg_data(&f[6]), 32);
        for (int i = 0; i < a->n_keys && !hit; i++)
            if (!strcmp(a->keys[i].key, key)) hit = &a->keys[i];
    }
    if (hit)
        LOG_DEBUG("msock: accepted CURVE client %s (%s) from %s", key, hit->name, addr);
    else if (key[0])
        LOG_WARN("msock: refused a connection from %s: CURVE client key %s is not in %s", addr, key, a->dir);
    else
        LOG_WARN("msock: refused a connection from %s: mechanism %s (CURVE required)", addr, mech);
    const char *status = hit ? "200" : "400", *text = hit ? "OK" : "client key not allowed";
    zmq_send(a->rep, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(a->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    zmq_send(a->rep, status, 3, ZMQ_SNDMORE);
    zmq_send(a->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(a->rep, hit ? hit->name : "", hit ? strlen(hit->name) : 0, ZMQ_SNDMORE);
    zmq_send(a->rep, "", 0, 0);
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *auth_main(void *arg) {
    struct msock_auth *a = arg;
    while (!atomic_load(&a->stop)) {
        zmq_pollitem_t item = {.socket = a->rep, .events = ZMQ_POLLIN};
        const int n = zmq_poll(&item, 1, 100);
        if (n < 0 && errno != EINTR) break;
        if (n > 0) zap_answer(a);
    }
    return NULL;
}

static int load_allowed(struct msock_auth *a, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return err_set(ERR_IO, "--allow-dir %s: %s", dir, strerror(errno));
    int rc = ERR_OK, cap = 0;
    struct dirent *e;
    while (rc == ERR_OK && (e = readdir(d))) {
        const size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".pub") != 0 || e->d_name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct allowed_key k;
        if ((rc = msock_key_read(path, false, k.key)) < 0) break;
        snprintf(k.name, sizeof k.name, "%s", e->d_name);
        if (a->n_keys == cap) {
            cap = cap ? 2 * cap : 8;
            struct allowed_key *g = realloc(a->keys, (size_t)cap * sizeof *g);
            if (!g) {
                rc = err_set(ERR_NOMEM, "out of memory");
                break;
            }
            a->keys = g;
        }
        a->keys[a->n_keys++] = k;
    }
    closedir(d);
    if (rc == ERR_OK && a->n_keys == 0)
        rc = err_set(ERR_INVALID_ARG, "--allow-dir %s: no client keys (*.pub files from `reelfarm keygen`)", dir);
    return rc;
}

int msock_auth_start(struct msock_auth **out, const char *allow_dir) {
    *out = NULL;
    if (!msock_has_curve()) return err_set(ERR_UNSUPPORTED, "this libzmq was built without CURVE (libsodium)");
    if (g_auth_running) return err_set(ERR_INVALID_ARG, "a ZAP handler is already running in this process");
    pthread_once(&g_ctx_once, ctx_init);
    if (!g_ctx) return err_set(ERR_IO, "zmq: cannot create a context: %s", zmq_strerror(errno));
    struct msock_auth *a = calloc(1, sizeof *a);
    if (!a) return err_set(ERR_NOMEM, "out of memory");
    snprintf(a->dir, sizeof a->dir, "%s", allow_dir);
    atomic_init(&a->stop, false);
    int rc = load_allowed(a, allow_dir);
    if (rc == ERR_OK) {
        a->rep = zmq_socket(g_ctx, ZMQ_REP);
        const int zero = 0;
        if (a->rep) zmq_setsockopt(a->rep, ZMQ_LINGER, &zero, sizeof zero);
        if (!a->rep || zmq_bind(a->rep, "inproc://zeromq.zap.01") != 0)
            rc = err_set(ERR_IO, "zmq: cannot start the ZAP handler: %s", zmq_strerror(errno));
    }
    if (rc == ERR_OK && pthread_create(&a->thread, NULL, auth_main, a) != 0)
        rc = err_set(ERR_IO, "cannot start the ZAP handler's thread");
    if (rc < 0) {
        if (a->rep) zmq_close(a->rep);
        free(a->keys);
        free(a);
        return rc;
    }
    g_auth_running = true;
    *out = a;
    return ERR_OK;
}

int msock_auth_keys(const struct msock_auth *a) {
    return a ? a->n_keys : 0;
}

void msock_auth_stop(struct msock_auth **ap) {
    struct msock_auth *a = *ap;
    if (!a) return;
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    zmq_close(a->rep);
    free(a->keys);
    free(a);
    g_auth_running = false;
    *ap = NULL;
}
