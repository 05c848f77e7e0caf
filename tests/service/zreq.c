/* tests/service/zreq.c - a raw request to the render service, for tests/service/test_service.sh: sends
 * PAYLOAD (or N bytes of 'x' with --size N, or the payload as N frames with --parts N) on a REQ socket and
 * prints the reply. Exit status: 0 a reply, 3 none within --timeout S (default 5), 1 an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

int main(int argc, char **argv) {
    const char *ep = NULL, *payload = NULL;
    long size = -1, parts = 1;
    double timeout = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atol(argv[++i]);
        else if (!strcmp(argv[i], "--parts") && i + 1 < argc) parts = atol(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = atof(argv[++i]);
        else if (!ep) ep = argv[i];
        else payload = argv[i];
    }
    if (!ep || (!payload && size < 0)) {
        fprintf(stderr, "usage: zreq ENDPOINT (PAYLOAD | --size N) [--parts N] [--timeout S]\n");
        return 2;
    }
    char *buf = NULL;
    size_t len;
    if (size >= 0) {
        len = (size_t)size;
        buf = malloc(len + 1);
        memset(buf, 'x', len);
    } else {
        len = strlen(payload);
        buf = strdup(payload);
    }
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REQ);
    const int zero = 0, ms = (int)(timeout * 1000);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &ms, sizeof ms);
    zmq_setsockopt(s, ZMQ_SNDTIMEO, &ms, sizeof ms);
    if (zmq_connect(s, ep) != 0) return 1;
    for (long p = 0; p < parts; p++)
        if (zmq_send(s, buf, len, p + 1 < parts ? ZMQ_SNDMORE : 0) < 0) return 1;
    zmq_msg_t m;
    zmq_msg_init(&m);
    const int n = zmq_msg_recv(&m, s, 0);
    if (n < 0) {
        fprintf(stderr, "zreq: no reply from %s within %g s\n", ep, timeout);
        return 3;
    }
    fwrite(zmq_msg_data(&m), 1, (size_t)n, stdout);
    fputc('\n', stdout);
    zmq_msg_close(&m);
    zmq_close(s);
    zmq_ctx_destroy(ctx);
    free(buf);
    return 0;
}
