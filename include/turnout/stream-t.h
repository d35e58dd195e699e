/* Stream types: one request from head parsed to log line, whatever codec
 * carried it. A stream owns the request (head and fields in its arena, the
 * body kept for a replay), the routing decision, its attempts, the upstream
 * connection it leases, its timer; it may have no client at all. */
#ifndef TURNOUT_STREAM_T_H
#define TURNOUT_STREAM_T_H

#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>

#include "turnout/arena-t.h"
#include "turnout/msg-t.h"
#include "turnout/route-t.h"

struct evbuffer;
struct tn_stream;
struct tn_upstream;
struct tn_worker;
struct tn_wplan;

#define TN_STREAM_STATES(X)                                                                        \
    X(ROUTE)     /* head received: deciding, leasing an upstream connection */                     \
    X(CONNECT)   /* the upstream connection is opening; request bytes wait on it */               \
    X(SEND)      /* streaming the request body upstream */                                         \
    X(WAIT_RESP) /* request sent, no response head yet: a failure can be replayed */               \
    X(HOLD)      /* the attempt failed mid-body: keeping the rest of the body to replay */        \
    X(RESP)      /* streaming the response to the codec */                                         \
    X(DONE)      /* logged; freed when the current callback returns */

enum tn_stream_state {
#define TN_X_ENUM(s) TN_STREAM_##s,
    TN_STREAM_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

#define TN_STREAM_F_REQ_DONE 0x0001      /* the codec delivered the whole request body */
#define TN_STREAM_F_REPLAYABLE 0x0002    /* shifted to "to", method allowed: may be replayed */
#define TN_STREAM_F_KEEP 0x0004          /* the body is being copied to s->keep */
#define TN_STREAM_F_CONTINUE 0x0008      /* we answered 100 Continue: Expect not forwarded */
#define TN_STREAM_F_RESP_STARTED 0x0010  /* a final response head went to the codec */
#define TN_STREAM_F_REQ_PAUSED 0x0020    /* we paused the codec: upstream output is full */
#define TN_STREAM_F_RESP_PAUSED 0x0040   /* the codec paused us: upstream reading is off */
#define TN_STREAM_F_REPLAYED 0x0080      /* a rollback replay was started */
#define TN_STREAM_F_RETRIED 0x0100       /* a stale pooled connection was retried once */
#define TN_STREAM_F_BODY_IGNORED 0x0200  /* answered before the body ended: drop the rest */
#define TN_STREAM_F_TIMER 0x0400         /* s->timer is pending */

/* How an attempt failed; names in access log lines. */
#define TN_ATTEMPT_ERRORS(X)                                                                       \
    X(NONE, NULL)                                                                                  \
    X(CONNECT_ERROR, "connect_error")     /* refused, unreachable, socket error */                 \
    X(CONNECT_TIMEOUT, "connect_timeout") /* timeouts.connect passed */                            \
    X(RESET, "reset")                     /* reset before a complete response */                   \
    X(CLOSED, "closed")                   /* closed before a complete response head */             \
    X(TIMEOUT, "timeout")                 /* no response head within timeouts.response */         \
    X(BAD_RESPONSE, "bad_response")       /* a malformed response head */                          \
    X(CUT, "cut")                         /* the response broke after its head */

enum tn_attempt_error {
#define TN_X_ENUM(e, n) TN_ATTEMPT_E_##e,
    TN_ATTEMPT_ERRORS(TN_X_ENUM)
#undef TN_X_ENUM
};

/* Why a failed attempt was replayed on "from"; access log reasons. */
#define TN_REPLAY_REASONS(X)                                                                       \
    X(CONNECT, "rollback_connect") /* connect refused, unreachable or timed out */               \
    X(RESET, "rollback_reset")     /* reset, closed or malformed before a response head */       \
    X(TIMEOUT, "rollback_timeout") /* no response head within timeouts.response */               \
    X(STATUS, "rollback_status")   /* a status in rollback.on_status */

enum tn_replay_reason {
#define TN_X_ENUM(r, n) TN_REPLAY_##r,
    TN_REPLAY_REASONS(TN_X_ENUM)
#undef TN_X_ENUM
    TN_REPLAY_NREASONS
};

/* Why a failed attempt of a shifted request was not replayed. */
#define TN_NOREPLAY_REASONS(X)                                                                     \
    X(NOT_REPLAYABLE, "not_replayable")     /* method not in rollback.methods, no Idempotency-Key */ \
    X(BODY_TOO_LARGE, "body_too_large")     /* the body exceeds rollback.max_body */             \
    X(BUDGET, "budget")                     /* the route's replay budget is spent */             \
    X(RESPONSE_STARTED, "response_started") /* response bytes already reached the client */

enum tn_noreplay_reason {
#define TN_X_ENUM(r, n) TN_NOREPLAY_##r,
    TN_NOREPLAY_REASONS(TN_X_ENUM)
#undef TN_X_ENUM
    TN_NOREPLAY_NREASONS
};

/* One try of the request on one server. */
struct tn_attempt {
    int backend, server; /* plan indexes (names come from the stream's plan) */
    int status;          /* final response status, 0 before one */
    enum tn_attempt_error err;
    const char *why;     /* static detail of err ("tls_verify_failed", ...), or NULL */
    int reused;          /* a pooled keep-alive connection carried it */
    int stale;           /* that connection had been closed by the server: retried */
    uint64_t start_us, connected_us, first_byte_us; /* 0 when it did not happen */
    uint64_t failed_us;  /* when it failed, 0 when it did not */
};

#define TN_STREAM_MAX_ATTEMPTS 4 /* first, a stale retry, the replay, its stale retry */

/* One direction of a stream: a message head, body bytes, the end, an
 * abort, and flow control of the opposite direction. The codec calls the
 * stream's table (tn_stream_ops) with the request; the stream calls the
 * codec's table (s->down) with the response. */
struct tn_stream_ops {
    /* A message head (for responses: interim ones first, then the final
     * one). m is borrowed for the call. TN_OK, or TN_ERR: the callee has
     * failed the stream already. */
    int (*head)(struct tn_stream *s, const struct tn_msg *m);
    /* Moves the first n bytes of src (body bytes, no framing). */
    int (*data)(struct tn_stream *s, struct evbuffer *src, size_t n);
    /* The body is complete. */
    int (*end)(struct tn_stream *s);
    /* The other side gives up. status > 0: answer that error (nothing was
     * sent yet); 0: cut the message where it is. why: static reason. */
    void (*abort)(struct tn_stream *s, int status, const char *why);
    /* Stop / restart sending data to the caller (its buffers are full). */
    void (*pause)(struct tn_stream *s);
    void (*resume)(struct tn_stream *s);
};

struct tn_stream {
    struct tn_worker *w;
    enum tn_stream_state state;
    uint32_t flags;
    uint64_t id;
    TAILQ_ENTRY(tn_stream) link; /* the worker's live, dead or free list */
    const struct tn_stream_ops *down; /* the codec's table; NULL: no client (shadow) */
    void *down_ctx;                   /* the codec's connection */
    struct tn_wplan *wp;              /* one user, from head to log line */
    struct tn_arena arena;
    struct tn_msg req;                /* strings and fields in the arena */
    const char *scheme;               /* "http" or "https" for X-Forwarded-Proto */
    const char *proto;                /* the client's protocol, set by the codec: "HTTP/1.0",
                                       * "HTTP/1.1" or "HTTP/2" (static; NULL: unknown) */
    char client_ip[INET6_ADDRSTRLEN];
    struct tn_decision dec;
    struct tn_attempt att[TN_STREAM_MAX_ATTEMPTS];
    unsigned natt;
    struct tn_upstream *up; /* leased for the current attempt */
    struct event timer;
    char *keep;              /* the kept body (decoded, in the arena), at most rollback.max_body */
    size_t keep_len, keep_cap;
    uint32_t progress, progress_seen; /* moves of body bytes, for stall checks */
    /* what the access log says */
    int status;
    const char *reason;
    const char *fail_why;  /* HOLD: the error answered if the replay cannot happen */
    int fail_status;
    int no_replay;         /* TN_NOREPLAY_* decided at the head, -1: replayable or n/a */
    enum tn_replay_reason replay_why; /* with TN_STREAM_F_REPLAYED */
    uint64_t bytes_in, bytes_out;
    uint64_t start_us;
};

TAILQ_HEAD(tn_stream_list, tn_stream);

#endif
