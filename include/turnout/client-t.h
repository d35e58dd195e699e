/* Client connection types: one downstream HTTP/1.1 connection and the one
 * exchange (request/response) it carries at a time. Pipelined requests wait
 * in the input buffer until the current response is complete. */
#ifndef TURNOUT_CLIENT_T_H
#define TURNOUT_CLIENT_T_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "turnout/chunked.h"
#include "turnout/h1-t.h"
#include "turnout/io.h"
#include "turnout/route-t.h"

struct event;
struct tn_worker;
struct tn_wplan;
struct tn_upstream;

#define TN_CLIENT_STATES(X)                                                                        \
    X(IDLE)      /* keep-alive: no byte of the next request yet */                                 \
    X(REQ_HEAD)  /* reading the request line and headers */                                        \
    X(CONNECT)   /* head parsed and routed; upstream connection opening */                         \
    X(REQ_BODY)  /* streaming the request body upstream */                                         \
    X(WAIT_RESP) /* request sent; no response byte yet */                                          \
    X(RESP)      /* streaming the response to the client */                                        \
    X(CLOSING)   /* flushing our last bytes, then a lingering close */

enum tn_client_state {
#define TN_X_ENUM(s) TN_CLIENT_##s,
    TN_CLIENT_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

#define TN_CLIENT_F_CLOSE_AFTER 0x0001 /* close once this response is out */
#define TN_CLIENT_F_DEAD 0x0002        /* free when the current callback returns */
#define TN_CLIENT_F_EOF 0x0004         /* the client half-closed its side */
#define TN_CLIENT_F_RESP_SENT 0x0008   /* response bytes were queued: no error page any more */
#define TN_CLIENT_F_REQ_DONE 0x0010    /* request body fully forwarded */
#define TN_CLIENT_F_REQ_PAUSED 0x0020  /* reading paused: upstream output is full */
#define TN_CLIENT_F_RESP_PAUSED 0x0040 /* upstream reading paused: client output is full */
#define TN_CLIENT_F_RETRIED 0x0080     /* already replayed once on a fresh connection */
#define TN_CLIENT_F_UP_REUSABLE 0x0200 /* upstream may go back to its pool after this exchange */
#define TN_CLIENT_F_READ_OFF 0x0400    /* reading stopped: a pipelined request filled the input */
#define TN_CLIENT_F_HEAD_TIMER 0x0800  /* client_header armed for a head arriving in pieces */

/* What the access log says about one exchange. */
struct tn_exchange_log {
    const char *reason; /* route reason name or error reason (static) */
    int status;
    uint64_t bytes_in, bytes_out;
    uint64_t start_us;
};

struct tn_client {
    struct tn_worker *w;
    struct tn_io io;
    struct event *timer;
    enum tn_client_state state;
    uint32_t flags;
    uint64_t id;
    TAILQ_ENTRY(tn_client) link;
    struct sockaddr_storage peer;
    char peer_ip[INET6_ADDRSTRLEN];

    /* the current exchange */
    struct tn_wplan *wp;   /* one user, held from head parsed to exchange end */
    struct tn_h1_scan scan;
    char *head;            /* copy of the request head; req points into it */
    size_t head_cap;
    struct tn_h1_req req;
    struct tn_decision dec;
    int server; /* index in the chosen backend, -1 before choice */
    struct tn_upstream *up;
    uint64_t req_left;     /* Content-Length body bytes still to forward */
    uint64_t body_period;  /* request body bytes received in this client_body period */
    uint32_t progress;     /* bumped whenever body bytes move either way */
    uint32_t progress_seen; /* progress at the last RESP/REQ_BODY timer tick */
    struct tn_chunked req_chunked;
    struct tn_h1_scan resp_scan;
    int resp_status;
    enum tn_h1_framing resp_framing;
    uint64_t resp_left;
    struct tn_chunked resp_chunked;
    int resp_to_http10;
    unsigned interim; /* 1xx responses relayed in this exchange */
    struct tn_exchange_log log;
};

#endif
