/* Client connection types: one downstream connection, its transport, its
 * timer and its lifecycle. The HTTP/1.1 codec (h1down.c) keeps its parse
 * state here; the exchange itself is a stream (stream-t.h). */
#ifndef TURNOUT_CLIENT_T_H
#define TURNOUT_CLIENT_T_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "turnout/chunked.h"
#include "turnout/h1-t.h"
#include "turnout/io.h"

struct event;
struct tn_worker;
struct tn_stream;

#define TN_CLIENT_STATES(X)                                                                        \
    X(IDLE)     /* keep-alive: no byte of the next request yet */                                  \
    X(REQ_HEAD) /* reading a request line and headers */                                           \
    X(REQ_BODY) /* reading a request body into its stream */                                       \
    X(WAIT)     /* the request is in; its response is being written */                            \
    X(H2)       /* HTTP/2: the session (c->h2) carries the streams */                             \
    X(CLOSING)  /* flushing our last bytes, then a lingering close */

enum tn_client_state {
#define TN_X_ENUM(s) TN_CLIENT_##s,
    TN_CLIENT_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

#define TN_CLIENT_F_CLOSE_AFTER 0x0001 /* close once this response is out */
#define TN_CLIENT_F_DEAD 0x0002        /* freed when the current callback returns */
#define TN_CLIENT_F_EOF 0x0004         /* the client half-closed its side */
#define TN_CLIENT_F_RESP_SENT 0x0008   /* a final response head was queued */
#define TN_CLIENT_F_READ_PAUSED 0x0010 /* the stream paused the request body */
#define TN_CLIENT_F_OUT_PAUSED 0x0020  /* we paused the stream: our output is full */
#define TN_CLIENT_F_READ_OFF 0x0040    /* reading stopped: a pipelined request filled the input */
#define TN_CLIENT_F_HEAD_TIMER 0x0080  /* client_header armed for a head arriving in pieces */
#define TN_CLIENT_F_RESP_CHUNKED 0x0100 /* the response body goes out as chunks */
#define TN_CLIENT_F_HTTP10 0x0200      /* the current request is HTTP/1.0 */
#define TN_CLIENT_F_TLS 0x0400         /* TLS on the connection */
#define TN_CLIENT_F_HANDSHAKE 0x0800   /* the TLS handshake is not done */
#define TN_CLIENT_F_H1 0x1000          /* HTTP/1: the first bytes were not the HTTP/2 preface */

struct tn_stats_listener;
struct tn_tls;
struct tn_h2down;

struct tn_client {
    struct tn_worker *w;
    struct tn_io io;
    struct event *timer;
    enum tn_client_state state;
    uint32_t flags;
    uint64_t id;
    struct tn_stats_listener *lst; /* its listener's counters in the worker's shard, or NULL */
    struct tn_tls *tls;            /* the TLS contexts it was accepted with (a reference), or NULL */
    const char *scheme;            /* "http" or "https" (X-Forwarded-Proto, the log) */
    TAILQ_ENTRY(tn_client) link; /* the worker's live or dead list */
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];
    struct tn_stream *stream; /* the current request's stream, NULL between requests */
    struct tn_h2down *h2;     /* HTTP/2 codec state (h2down.c), NULL: HTTP/1.1 */
    /* HTTP/1.1 codec state of the current request */
    struct tn_h1_scan scan;
    enum tn_h1_framing req_framing;
    uint64_t req_left;    /* Content-Length body bytes still to read */
    struct tn_chunked req_chunked;
    uint64_t body_period; /* body bytes received in this client_body period */
    uint64_t start_us;    /* first byte of the current request */
};

#endif
