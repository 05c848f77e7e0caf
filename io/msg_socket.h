/* io/msg_socket.h - the few ZeroMQ sockets the render service and its clients use (issue 9,
 * docs/protocol.md): REP/REQ for requests, PUB/SUB for progress events. Every message is one frame of
 * UTF-8 JSON. This is the only place that includes zmq.h (STYLE 10.1).
 *
 * Receives always have a bound: a timeout, and a size limit past which the message is read and dropped
 * (msock_recv says so, so a REP socket can still answer it with an error). Sockets have no linger, so a
 * client never hangs on exit because the server went away. Not thread-safe: one socket, one thread at a
 * time (the service guards its PUB socket with a mutex).
 *
 * Security (docs/protocol.md "Security"): ZeroMQ CURVE. A key pair is two 40-character Z85 strings kept in
 * files (msock_key_write: NAME.key holds the secret key, mode 0600; NAME.pub the public key). A server socket
 * bound with a struct msock_curve encrypts and authenticates every connection; which client keys may connect
 * is decided by the ZAP handler (msock_auth_start), which must run before such a socket is bound: it
 * accepts only the public keys found in its allow directory (*.pub files) and logs every refusal. Sockets
 * with CURVE also log (server) or remember (client, msock_refusal) failed handshakes: a client without
 * CURVE, with an unknown key or with the wrong server key.
 */
#ifndef REELFARM_IO_MSG_SOCKET_H
#define REELFARM_IO_MSG_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

enum msock_kind { MSOCK_REP, MSOCK_REQ, MSOCK_PUB, MSOCK_SUB };

struct msock;

#define MSOCK_KEY_LEN 40 /* a CURVE key in Z85 */

/* CURVE settings of one socket: its own key pair, and on a client the server's public key. */
struct msock_curve {
    char secret_key[MSOCK_KEY_LEN + 1];
    char public_key[MSOCK_KEY_LEN + 1]; /* derived from secret_key by msock_curve_load */
    char server_key[MSOCK_KEY_LEN + 1]; /* client only ("" on a server) */
};

/* Whether this libzmq was built with CURVE (libsodium). */
bool msock_has_curve(void);
/* A fresh key pair written to BASE.key (the secret key, mode 0600, created exclusively unless overwrite)
 * and BASE.pub (the public key); the public key is also returned. */
int msock_key_write(const char *base, bool overwrite, char public_key[MSOCK_KEY_LEN + 1]);
/* One key from a key file ('#' comment lines and blank lines skipped; one 40-character Z85 line). A secret key
 * file readable by group or others is refused (chmod 600), as ssh does. */
int msock_key_read(const char *path, bool secret, char key[MSOCK_KEY_LEN + 1]);
/* Fill c: own secret key from secret_file (public key derived), the server's key from server_key_file (NULL on
 * a server). */
int msock_curve_load(struct msock_curve *c, const char *secret_file, const char *server_key_file);

/* The process's ZAP handler (a thread answering inproc://zeromq.zap.01): accepts CURVE clients whose public
 * key is in one of allow_dir's *.pub files, refuses and logs (LOG_WARN, with the peer address) everything
 * else. At least one key must be found. One per process. */
struct msock_auth;
int msock_auth_start(struct msock_auth **a, const char *allow_dir);
int msock_auth_keys(const struct msock_auth *a); /* how many client keys it accepts */
void msock_auth_stop(struct msock_auth **a);

/* Bind a REP or PUB socket. hard_max > 0: ZMQ_MAXMSGSIZE (a peer sending more is disconnected). curve: a
 * CURVE server socket (a ZAP handler must be running), NULL: none. Errors: ERR_IO naming the endpoint and
 * zmq's reason ("Address already in use"). */
int msock_bind(struct msock **s, enum msock_kind kind, const char *endpoint, size_t hard_max,
               const struct msock_curve *curve);
/* Connect a REQ or SUB socket (SUB: subscribed to every message). curve: a CURVE client (server_key set),
 * NULL: none. Connecting never waits for the peer. */
int msock_connect(struct msock **s, enum msock_kind kind, const char *endpoint, const struct msock_curve *curve);
/* A client socket's last failed handshake in words ("the server refused our CURVE key"), or NULL. */
const char *msock_refusal(struct msock *s);
/* Send one frame; waits at most timeout_ms (ERR_IO "timed out" past it). */
int msock_send(struct msock *s, const void *data, size_t len, int timeout_ms);
/* Receive one message within timeout_ms (< 0: forever). Returns 1 with *out (malloc'd, NUL-terminated,
 * *len bytes) and *parts its frame count; 0 on timeout; MSOCK_TOO_BIG when it held more than max bytes
 * (read and dropped, *len its size); MSOCK_REFUSED (client sockets) as soon as the handshake with the server
 * failed (msock_refusal says why); ERR_IO on a socket error. */
enum { MSOCK_TOO_BIG = 2, MSOCK_REFUSED = 3 };
int msock_recv(struct msock *s, char **out, size_t *len, int *parts, int timeout_ms, size_t max);
void msock_close(struct msock **s);

/* True for endpoints only this machine can reach: tcp://127.x.y.z:P, tcp://localhost:P, tcp://[::1]:P and
 * ipc://PATH. */
bool msock_endpoint_is_local(const char *endpoint);

#endif /* REELFARM_IO_MSG_SOCKET_H */
