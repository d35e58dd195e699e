/* HTTP/2 downstream codec types: one nghttp2 server session per client
 * connection and one small record per HTTP/2 stream, which carries a
 * protocol-neutral stream (stream-t.h) through the same pipeline as an
 * HTTP/1.1 request. */
#ifndef TURNOUT_H2DOWN_T_H
#define TURNOUT_H2DOWN_T_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "turnout/msg-t.h"

struct event;
struct evbuffer;
struct nghttp2_session;
struct tn_client;
struct tn_stream;
struct tn_h2down;

#define TN_H2S_F_HEAD 0x0001       /* the request head went to the stream */
#define TN_H2S_F_REQ_DONE 0x0002   /* END_STREAM received: the request is complete */
#define TN_H2S_F_REQ_PAUSED 0x0004 /* the stream paused us: its DATA is not consumed */
#define TN_H2S_F_RESP 0x0008       /* a final response HEADERS was submitted */
#define TN_H2S_F_EOF 0x0010        /* the response body is complete */
#define TN_H2S_F_DEFERRED 0x0020   /* the data provider waits for body bytes */
#define TN_H2S_F_OUT_PAUSED 0x0040 /* we paused the stream: its pending body is full */
#define TN_H2S_F_CLOSED 0x0080     /* nghttp2 closed the stream */
#define TN_H2S_F_END_SENT 0x0100   /* our END_STREAM went out */
#define TN_H2S_F_TRAILERS 0x0200   /* decoding a trailer block: its fields are ignored */
#define TN_H2S_F_DROP_BODY 0x0400  /* the request was answered: its DATA is dropped */
#define TN_H2S_F_DEAD 0x0800       /* on the connection's dead list */
#define TN_H2S_F_EXPECT 0x1000     /* the request carried Expect: 100-continue */
#define TN_H2S_F_CLIENT_RST 0x2000 /* the client reset it */
#define TN_H2S_F_RESP_LEN 0x4000   /* the response body has a length: resp_left */

/* One HTTP/2 stream of a connection. */
struct tn_h2s {
    struct tn_h2down *hc;
    int32_t id;
    uint32_t flags;           /* TN_H2S_F_* */
    struct tn_stream *s;      /* the request's stream; NULL once it ended */
    struct evbuffer *pend;    /* response body waiting for DATA frames */
    size_t unconsumed;        /* request bytes received, window not given back yet */
    uint64_t body_period;     /* request body bytes in this client_body period */
    uint64_t resp_left;       /* TN_H2S_F_RESP_LEN: response body bytes still to come */
    uint64_t start_us;        /* the request's first frame */
    int err;                  /* a status to answer at the head (refused request), or 0 */
    const char *why;          /* its reason */
    TAILQ_ENTRY(tn_h2s) link; /* the connection's live or dead list */
};

TAILQ_HEAD(tn_h2s_list, tn_h2s);

/* What the flood budgets count. */
struct tn_h2_bucket {
    double tokens;
    uint64_t last_ms;
};

#define TN_H2_F_BUSY_RECV 0x0001 /* inside nghttp2_session_mem_recv */
#define TN_H2_F_WANT_SEND 0x0002 /* frames were submitted while busy: send when out */
#define TN_H2_F_GOAWAY 0x0004    /* GOAWAY submitted: close once no stream is open */
#define TN_H2_F_CLOSE 0x0008     /* close the connection when the current call returns */
#define TN_H2_F_CLOSED 0x0010    /* the connection went to CLOSING: the session is idle */
#define TN_H2_F_OUT_FULL 0x0020  /* the output is above the high watermark */
#define TN_H2_F_RESUME 0x0040    /* a paused stream's pending body drained */
#define TN_H2_F_SENDING 0x0080   /* inside nghttp2_session_send */
#define TN_H2_F_CALM 0x0100      /* a flood budget ran out: GOAWAY ENHANCE_YOUR_CALM */
#define TN_H2_F_BROKEN 0x0200    /* the session failed: nothing more is sent from it */
#define TN_H2_F_QUEUED 0x0400    /* send_ev is active: frames go out after the ready events */

/* The HTTP/2 state of one client connection (c->h2). */
struct tn_h2down {
    struct tn_client *c;
    struct nghttp2_session *sess;
    uint32_t flags; /* TN_H2_F_* */
    /* made active when a response submits frames: the responses of the
     * other streams that libevent made ready in the same loop run first,
     * then one nghttp2_session_send and one write (one TLS record) for all */
    struct event *send_ev;
    struct tn_h2s_list streams, dead;
    uint32_t nopen; /* streams nghttp2 has open */
    /* the header block being decoded (one at a time per connection) */
    struct tn_h2s *hs;
    int32_t hs_seen; /* the block in progress at the last tick (a stalled block) */
    char *hbuf;      /* its strings */
    size_t hlen, hcap;
    struct tn_field *fields;
    uint32_t nfields, maxfields;
    size_t hsize;    /* RFC 9113 6.5.2 size of the block so far */
    size_t max_list; /* SETTINGS_MAX_HEADER_LIST_SIZE we announced */
    /* pseudo-header fields: offsets into hbuf, len 0 = absent */
    uint32_t method_off, method_len, path_off, path_len, auth_off, auth_len, host_off, host_len;
    uint32_t ncookies, cookie_len;
    int has_host;
    /* flood budgets */
    struct tn_h2_bucket ctrl, resets;
};

#endif
