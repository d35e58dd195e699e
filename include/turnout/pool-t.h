/* Upstream connection types: one pool per server address and TLS identity
 * per worker, each holding idle keep-alive connections. */
#ifndef TURNOUT_POOL_T_H
#define TURNOUT_POOL_T_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "turnout/chunked.h"
#include "turnout/h1-t.h"
#include "turnout/io.h"

struct ssl_session_st;
struct ssl_st;
struct tn_worker;
struct tn_stats_server;
struct tn_stream;

#define TN_UPSTREAM_STATES(X)                                                                      \
    X(IDLE)       /* in its pool, watched for the server closing it */                             \
    X(CONNECTING) /* connect() (then the TLS handshake) in progress; the request waits */          \
    X(SEND)       /* request head sent, body streaming */                                          \
    X(WAIT_HEAD)  /* request complete, reading the response head */                                \
    X(BODY)       /* relaying the response body */                                                 \
    X(DONE)       /* exchange over: back to the pool if clean, else closed */

enum tn_upstream_state {
#define TN_X_ENUM(s) TN_UPSTREAM_##s,
    TN_UPSTREAM_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

#define TN_UP_F_REQ_CHUNKED 0x01 /* the request body goes out as chunks */
#define TN_UP_F_REQ_SENT 0x02    /* the whole request was queued */
#define TN_UP_F_CLEAN 0x04       /* exchange complete, nothing unread: may be pooled */
#define TN_UP_F_NO_REUSE 0x08    /* "Connection: close" or close-delimited response */
#define TN_UP_F_GOT_BYTES 0x10   /* some response byte arrived in this exchange */

/* An upstream HTTP/1.1 connection. Owned by its pool while idle, leased by
 * exactly one stream (for one attempt) while busy. */
struct tn_upstream {
    struct tn_io io;
    struct tn_pool *pool;
    struct tn_stream *owner; /* NULL while idle in the pool */
    TAILQ_ENTRY(tn_upstream) link;
    enum tn_upstream_state state;
    uint32_t flags;
    uint32_t requests;      /* exchanges carried so far: > 0 means reused */
    int connected;          /* TCP connected and, with TLS, the handshake done */
    struct ssl_st *tls;     /* TLS to start once TCP connects (then owned by io), or NULL */
    uint64_t idle_since_ms; /* when it went back to the pool */
    /* the current exchange (src/http/h1_upstream.c) */
    enum tn_h1_method method;
    struct tn_h1_scan scan;
    enum tn_h1_framing framing;
    uint64_t left; /* Content-Length response bytes still to relay */
    struct tn_chunked chunked;
    unsigned interim;
};

TAILQ_HEAD(tn_upstream_list, tn_upstream);

/* Idle connections to one server address, per worker: plain, or TLS with
 * one identity (server name, verification, CA), never mixed. Pools outlive
 * plans, so a pool holds no configuration's TLS context, only its identity. */
struct tn_pool {
    struct tn_worker *w;
    struct sockaddr_storage ss;
    socklen_t len;
    char name[64]; /* "ip:port" for logs */
    char *tls_id;  /* tn_tlsclient_id() of the contexts its connections use; NULL: plain */
    struct ssl_session_st *tls_sess; /* the last TLS session, offered to resume, or NULL */
    int tls_failing; /* a handshake failed (logged once) since the last that worked */
    struct tn_upstream_list idle;
    uint32_t nidle;
    uint32_t nbusy;             /* leased connections (for per-server stats) */
    struct tn_stats_server *st; /* this worker's counters of the server, or NULL */
};

#endif
