/* io/msg_socket.c - ZeroMQ sockets for the render service (see msg_socket.h). */
#include "io/msg_socket.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "core/error.h"

struct msock {
    void *z;
    enum msock_kind kind;
};

static void *g_ctx;
static pthread_once_t g_ctx_once = PTHREAD_ONCE_INIT;

/* One context for the process, never terminated (sockets have no linger, so exit does not wait). */
static void ctx_init(void) { g_ctx = zmq_ctx_new(); }

static const int kinds[] = {[MSOCK_REP] = ZMQ_REP, [MSOCK_REQ] = ZMQ_REQ, [MSOCK_PUB] = ZMQ_PUB, [MSOCK_SUB] = ZMQ_SUB};

static int msock_new(struct msock **out, enum msock_kind kind) {
    *out = NULL;
    pthread_once(&g_ctx_once, ctx_init);
    if (!g_ctx) return err_set(ERR_IO, "zmq: cannot create a context: %s", zmq_strerror(errno));
    struct msock *s = calloc(1, sizeof *s);
    if (!s) return err_set(ERR_NOMEM, "out of memory");
    s->kind = kind;
    s->z = zmq_socket(g_ctx, kinds[kind]);
    if (!s->z) {
        free(s);
        return err_set(ERR_IO, "zmq: cannot create a socket: %s", zmq_strerror(errno));
    }
    const int zero = 0;
    zmq_setsockopt(s->z, ZMQ_LINGER, &zero, sizeof zero);
    *out = s;
    return ERR_OK;
}

int msock_bind(struct msock **out, enum msock_kind kind, const char *endpoint, size_t hard_max) {
    TRY(msock_new(out, kind));
    if (hard_max > 0) {
        const int64_t m = (int64_t)hard_max;
        zmq_setsockopt((*out)->z, ZMQ_MAXMSGSIZE, &m, sizeof m);
    }
    if (zmq_bind((*out)->z, endpoint) != 0) {
        const int e = errno;
        msock_close(out);
        return err_set(ERR_IO, "cannot bind %s: %s", endpoint, zmq_strerror(e));
    }
    return ERR_OK;
}

int msock_connect(struct msock **out, enum msock_kind kind, const char *endpoint) {
    TRY(msock_new(out, kind));
    if (kind == MSOCK_SUB) zmq_setsockopt((*out)->z, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect((*out)->z, endpoint) != 0) {
        const int e = errno;
        msock_close(out);
        return err_set(ERR_IO, "cannot connect to %s: %s", endpoint, zmq_strerror(e));
    }
    return ERR_OK;
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
    const int n = zmq_poll(&item, 1, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : err_set(ERR_IO, "zmq: poll failed: %s", zmq_strerror(errno));
    if (n == 0) return 0;
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

void msock_close(struct msock **s) {
    if (!*s) return;
    zmq_close((*s)->z);
    free(*s);
    *s = NULL;
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
