/* io/msg_socket.h - the few ZeroMQ sockets the render service and its clients use (issue 9,
 * docs/protocol.md): REP/REQ for requests, PUB/SUB for progress events. Every message is one frame of
 * UTF-8 JSON. This is the only place that includes zmq.h (STYLE 10.1).
 *
 * Receives always have a bound: a timeout, and a size limit past which the message is read and dropped
 * (msock_recv says so, so a REP socket can still answer it with an error). Sockets have no linger, so a
 * client never hangs on exit because the server went away. Not thread-safe: one socket, one thread at a
 * time (the service guards its PUB socket with a mutex).
 */
#ifndef REELFARM_IO_MSG_SOCKET_H
#define REELFARM_IO_MSG_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

enum msock_kind { MSOCK_REP, MSOCK_REQ, MSOCK_PUB, MSOCK_SUB };

struct msock;

/* Bind a REP or PUB socket. hard_max > 0: ZMQ_MAXMSGSIZE (a peer sending more is disconnected). Errors:
 * ERR_IO naming the endpoint and zmq's reason ("Address already in use"). */
int msock_bind(struct msock **s, enum msock_kind kind, const char *endpoint, size_t hard_max);
/* Connect a REQ or SUB socket (SUB: subscribed to every message). Connecting never waits for the peer. */
int msock_connect(struct msock **s, enum msock_kind kind, const char *endpoint);
/* Send one frame; waits at most timeout_ms (ERR_IO "timed out" past it). */
int msock_send(struct msock *s, const void *data, size_t len, int timeout_ms);
/* Receive one message within timeout_ms (< 0: forever). Returns 1 with *out (malloc'd, NUL-terminated,
 * *len bytes) and *parts its frame count; 0 on timeout; MSOCK_TOO_BIG when it held more than max bytes
 * (read and dropped, *len its size); ERR_IO on a socket error. */
enum { MSOCK_TOO_BIG = 2 };
int msock_recv(struct msock *s, char **out, size_t *len, int *parts, int timeout_ms, size_t max);
void msock_close(struct msock **s);

/* True for endpoints only this machine can reach: tcp://127.x.y.z:P, tcp://localhost:P, tcp://[::1]:P and
 * ipc://PATH. */
bool msock_endpoint_is_local(const char *endpoint);

#endif /* REELFARM_IO_MSG_SOCKET_H */
