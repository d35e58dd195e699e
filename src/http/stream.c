/* One proxied exchange: route the parsed request, lease an upstream
 * connection from the chosen server's pool, forward the head, stream the
 * request body (Content-Length or re-framed chunked) with backpressure,
 * parse the response strictly and relay it. Bodies move between evbuffers
 * without copies; each side stops reading while the other side's output is
 * above TN_HIGH_WATER. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "turnout/client.h"
#include "turnout/common.h"
#include "turnout/h1.h"
#include "turnout/io.h"
#include "turnout/log.h"
#include "turnout/pool.h"
#include "turnout/route.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

#define TN_HIGH_WATER (256u << 10)
#define TN_LOW_WATER (64u << 10)
/* A request body must make this much progress per client_body period (or
 * finish): a client trickling bytes to hold a connection is cut off. */
#define TN_BODY_MIN_PER_PERIOD 1024u
/* More 1xx responses than this before the final one is a broken backend
 * (a client that does not read would otherwise make us buffer them all). */
#define TN_MAX_INTERIM 16

/* ---- head serialization into the worker's scratch space ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    int overflow;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define SB_LIT(b, lit) sb_add((b), (lit), sizeof(lit) - 1)

static void sb_u64(struct sbuf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sb_add(b, tmp + i, sizeof(tmp) - i);
}

/* Writes "<hex>\r\n" for a chunk of n bytes into out[24]; returns its length. */
static size_t chunk_line(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t i = sizeof(tmp), len;

    do {
        tmp[--i] = hex[n & 15];
        n >>= 4;
    } while (n);
    len = sizeof(tmp) - i;
    memcpy(out, tmp + i, len);
    out[len] = '\r';
    out[len + 1] = '\n';
    return len + 2;
}

static void sb_field(struct sbuf *b, const struct tn_h1_hdr *h)
{
    sb_add(b, h->name, h->name_len);
    SB_LIT(b, ": ");
    sb_add(b, h->value, h->value_len);
    SB_LIT(b, "\r\n");
}

/* Writes the upstream request head for c into out. Returns TN_OK or TN_ERR
 * (head too large for the scratch space). */
static int write_request_head(struct tn_client *c, struct evbuffer *out)
{
    const struct tn_h1_req *r = &c->req;
    struct tn_worker *w = c->w;
    struct sbuf b = { w->scratch, 0, w->scratch_len, 0 };
    int xff = 0;
    unsigned i;

    sb_add(&b, r->method_str, r->method_len);
    SB_LIT(&b, " ");
    sb_add(&b, r->target, r->target_len);
    SB_LIT(&b, " HTTP/1.1\r\nHost: ");
    if (r->host) {
        sb_add(&b, r->host, r->host_len);
    } else {
        const struct tn_pool *p = w->wp->pools[c->dec.backend][c->server];

        sb_add(&b, p->name, strlen(p->name));
    }
    SB_LIT(&b, "\r\n");
    for (i = 0; i < r->nhdrs; i++) {
        const struct tn_h1_hdr *h = &r->hdrs[i];

        if (!(h->flags & (TN_H1_HDR_F_HOP | TN_H1_HDR_F_FRAMING | TN_H1_HDR_F_HOST |
                          TN_H1_HDR_F_XFF | TN_H1_HDR_F_XFP))) {
            /* RFC 9110 10.1.1: Expect from an HTTP/1.0 client is ignored */
            if (r->minor == 0 && h->name_len == 6 && tn_strieq(h->name, 6, "expect"))
                continue;
            sb_field(&b, h);
        }
        else if ((h->flags & TN_H1_HDR_F_XFF) && h->value_len)
            xff = 1;
    }
    /* every incoming X-Forwarded-For value, in order, then the client */
    SB_LIT(&b, "X-Forwarded-For: ");
    for (i = 0; xff && i < r->nhdrs; i++) {
        const struct tn_h1_hdr *h = &r->hdrs[i];

        if (!(h->flags & TN_H1_HDR_F_XFF) || !h->value_len)
            continue;
        sb_add(&b, h->value, h->value_len);
        SB_LIT(&b, ", ");
    }
    sb_add(&b, c->peer_ip, strlen(c->peer_ip));
    SB_LIT(&b, "\r\nX-Forwarded-Proto: http\r\nVia: 1.1 turnout\r\n");
    if (r->framing == TN_H1_BODY_LENGTH) {
        SB_LIT(&b, "Content-Length: ");
        sb_u64(&b, r->content_length);
        SB_LIT(&b, "\r\n");
    } else if (r->framing == TN_H1_BODY_CHUNKED) {
        SB_LIT(&b, "Transfer-Encoding: chunked\r\n");
    }
    SB_LIT(&b, "\r\n");
    if (b.overflow)
        return TN_ERR;
    evbuffer_add(out, b.p, b.len);
    return TN_OK;
}

/* Writes the response head (final or interim) for the client. */
static int write_response_head(struct tn_client *c, const struct tn_h1_resp *rs,
                               struct evbuffer *out, int interim)
{
    struct tn_worker *w = c->w;
    struct sbuf b = { w->scratch, 0, w->scratch_len, 0 };
    const struct tn_conf *conf = c->wp->plan->conf;
    char status[4] = { (char)('0' + rs->status / 100), (char)('0' + rs->status / 10 % 10),
                       (char)('0' + rs->status % 10), ' ' };
    unsigned i;
    int dated = 0;

    SB_LIT(&b, "HTTP/1.1 ");
    sb_add(&b, status, 4);
    sb_add(&b, rs->reason, rs->reason_len);
    SB_LIT(&b, "\r\n");
    for (i = 0; i < rs->nhdrs; i++) {
        const struct tn_h1_hdr *h = &rs->hdrs[i];

        if (!(h->flags & (TN_H1_HDR_F_HOP | TN_H1_HDR_F_FRAMING))) {
            sb_field(&b, h);
            dated |= h->name_len == 4 && tn_strieq(h->name, 4, "date");
        }
        else if ((h->flags & TN_H1_HDR_F_FRAMING) && rs->framing == TN_H1_BODY_NONE && !interim &&
                 (rs->status == 304 || c->req.method == TN_H1_M_HEAD) &&
                 tn_strieq(h->name, h->name_len, "content-length"))
            sb_field(&b, h); /* HEAD and 304 keep the length they describe; never 204 */
    }
    /* RFC 9110 7.6.3: a proxy adds Via to what it forwards; 6.6.1: a
     * response forwarded without Date gets the time it was received */
    SB_LIT(&b, "Via: 1.1 turnout\r\n");
    if (!dated && !interim) {
        const char *date = tn_worker_http_date(w);

        SB_LIT(&b, "Date: ");
        sb_add(&b, date, strlen(date));
        SB_LIT(&b, "\r\n");
    }
    if (!interim) {
        if (rs->framing == TN_H1_BODY_LENGTH) {
            SB_LIT(&b, "Content-Length: ");
            sb_u64(&b, rs->content_length);
            SB_LIT(&b, "\r\n");
        } else if ((rs->framing == TN_H1_BODY_CHUNKED || rs->framing == TN_H1_BODY_CLOSE) &&
                   !c->resp_to_http10) {
            SB_LIT(&b, "Transfer-Encoding: chunked\r\n");
        }
        if (c->dec.set_cookie && conf->assign_cookie.enabled) {
            char ck[160];
            int n = snprintf(ck, sizeof(ck), "Set-Cookie: %s=%s; Max-Age=%llu; Path=/; HttpOnly\r\n",
                             conf->assign_cookie.name, c->dec.key_buf,
                             (unsigned long long)conf->assign_cookie.max_age_s);

            if (n > 0 && (size_t)n < sizeof(ck))
                sb_add(&b, ck, (size_t)n);
        }
        if (c->flags & TN_CLIENT_F_CLOSE_AFTER)
            SB_LIT(&b, "Connection: close\r\n");
        else if (c->req.minor == 0)
            SB_LIT(&b, "Connection: keep-alive\r\n");
    }
    SB_LIT(&b, "\r\n");
    if (b.overflow)
        return TN_ERR;
    evbuffer_add(out, b.p, b.len);
    c->log.bytes_out += b.len;
    return TN_OK;
}

/* ---- upstream lease ---- */

static void on_up_read(struct tn_io *io, void *arg);
static void on_up_write(struct tn_io *io, void *arg);
static void on_up_event(struct tn_io *io, int what, void *arg);

void tn_stream_release_upstream(struct tn_client *c, int reusable)
{
    struct tn_upstream *u = c->up;

    if (!u)
        return;
    c->up = NULL;
    u->io.flags &= ~TN_IO_F_NOTIFY;
    if (c->flags & TN_CLIENT_F_REQ_PAUSED)
        tn_client_resume_read(c);
    if (reusable)
        tn_pool_put(u);
    else
        tn_upstream_discard(u);
}

/* Leases an upstream connection for c (pooled unless fresh) and writes the
 * request head on it. Returns TN_OK or answers the client and TN_ERR. */
static int lease_upstream(struct tn_client *c, int fresh)
{
    struct tn_pool *pool = c->wp->pools[c->dec.backend][c->server];
    struct tn_upstream *u = fresh ? NULL : tn_pool_take(pool);
    const char *why = NULL;

    if (!u && !(u = tn_upstream_connect(pool, &why))) {
        tn_client_error(c, 502, why, !(c->flags & TN_CLIENT_F_REQ_DONE));
        return TN_ERR;
    }
    u->owner = c;
    c->up = u;
    tn_io_setcb(&u->io, on_up_read, on_up_write, on_up_event, c);
    tn_io_read(&u->io, 1);
    if (write_request_head(c, u->io.out) != TN_OK) {
        tn_client_error(c, 431, "request_head_too_large", 1);
        return TN_ERR;
    }
    c->flags |= TN_CLIENT_F_UP_REUSABLE;
    return TN_OK;
}

/* The whole request is on its way upstream: wait for the response head. */
static void request_sent(struct tn_client *c)
{
    c->flags |= TN_CLIENT_F_REQ_DONE;
    if (c->state == TN_CLIENT_CONNECT)
        return; /* on_up_connected() takes it from here */
    if (c->state == TN_CLIENT_REQ_BODY)
        tn_client_set_state(c, TN_CLIENT_WAIT_RESP);
    if (c->state == TN_CLIENT_WAIT_RESP)
        tn_client_arm(c, c->wp->tv_response); /* the response head must come in time */
}

/* Moves request body bytes client -> upstream; stops at the body's end so
 * a pipelined request stays in the input. */
static void pump_request_body(struct tn_client *c)
{
    struct evbuffer *in = c->io.in;
    struct evbuffer *out = c->up->io.out;
    const struct tn_conf_limits *lm = &c->wp->plan->conf->limits;
    size_t before = evbuffer_get_length(in);
    const char *why = NULL;
    int done = 0;

    if (c->flags & TN_CLIENT_F_REQ_DONE)
        return;
    if (c->req.framing == TN_H1_BODY_LENGTH) {
        int moved = evbuffer_remove_buffer(in, out, (size_t)c->req_left);

        if (moved > 0)
            c->req_left -= (uint64_t)moved;
        done = c->req_left == 0;
    } else {
        int rc = tn_chunked_decode(&c->req_chunked, in, out, 1, &why);

        if (rc == TN_ERR) {
            tn_stream_release_upstream(c, 0);
            if (c->flags & TN_CLIENT_F_RESP_SENT)
                tn_client_abort(c, why);
            else
                tn_client_error(c, 400, why, 1);
            return;
        }
        if (lm->body && c->req_chunked.total > lm->body) {
            tn_stream_release_upstream(c, 0);
            tn_client_error(c, 413, "request_body_too_large", 1);
            return;
        }
        done = rc == TN_OK;
    }
    if (evbuffer_get_length(in) != before) {
        c->log.bytes_in += before - evbuffer_get_length(in);
        c->body_period += before - evbuffer_get_length(in);
        c->progress++;
    }
    if (done) {
        request_sent(c);
        return;
    }
    if (evbuffer_get_length(out) >= TN_HIGH_WATER) {
        tn_io_read(&c->io, 0); /* on_up_write() resumes */
        c->flags |= TN_CLIENT_F_REQ_PAUSED;
        tn_io_notify_low(&c->up->io, TN_LOW_WATER);
    }
}

void tn_stream_start(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    struct tn_h1_req *r = &c->req;
    const struct tn_conf *conf;
    struct tn_route_req rq;
    int has_body = r->framing != TN_H1_BODY_NONE;

    c->wp = tn_wplan_acquire(w);
    conf = c->wp->plan->conf;
    if (conf->limits.body && r->framing == TN_H1_BODY_LENGTH && r->content_length > conf->limits.body) {
        tn_client_error(c, 413, "request_body_too_large", 1);
        return;
    }
    rq.method = r->method_str;
    rq.method_len = r->method_len;
    rq.host = r->host;
    rq.host_len = r->host_len;
    rq.target = r->target;
    rq.target_len = r->target_len;
    rq.hdrs = r->hdrs;
    rq.nhdrs = r->nhdrs;
    rq.client_ip = c->peer_ip;
    if (tn_route_decide(c->wp->plan, &rq, w->md, &c->dec) != TN_OK) {
        tn_client_error(c, 503, "no_route", has_body);
        return;
    }
    c->log.reason = tn_route_reason_name(c->dec.reason);
    c->server = tn_balance_pick(&c->wp->balance[c->dec.backend], &conf->backends[c->dec.backend]);
    if (c->server < 0) {
        tn_client_error(c, 503, "no_server", has_body);
        return;
    }
    if (r->flags & TN_H1_REQ_F_CLOSE)
        c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    c->req_left = r->framing == TN_H1_BODY_LENGTH ? r->content_length : 0;
    if (r->framing == TN_H1_BODY_CHUNKED)
        tn_chunked_init(&c->req_chunked);
    if (!has_body || (r->framing == TN_H1_BODY_LENGTH && !r->content_length))
        c->flags |= TN_CLIENT_F_REQ_DONE;
    if (lease_upstream(c, 0) != TN_OK)
        return;
    r->hdrs = NULL; /* worker scratch: reused for the response */
    r->nhdrs = 0;
    if (!c->up->connected && !c->up->requests) {
        tn_client_set_state(c, TN_CLIENT_CONNECT);
        tn_client_arm(c, c->wp->tv_connect);
    } else {
        c->up->connected = 1;
        tn_client_set_state(c, (c->flags & TN_CLIENT_F_REQ_DONE) ? TN_CLIENT_WAIT_RESP
                                                                  : TN_CLIENT_REQ_BODY);
        if (c->state == TN_CLIENT_REQ_BODY)
            tn_client_arm(c, c->wp->tv_body);
    }
    if (c->flags & TN_CLIENT_F_REQ_DONE)
        request_sent(c);
    else
        pump_request_body(c);
}

/* Replays a bodiless request once on a fresh connection after a pooled one
 * turned out to be closed by the server. */
static void retry_fresh(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    const struct tn_conf_limits *lm = &c->wp->plan->conf->limits;
    struct tn_h1_limits lim = { lm->header_size, lm->uri, lm->headers };
    const char *why = NULL;
    size_t head_len = c->req.head_len;

    tn_stream_release_upstream(c, 0);
    c->flags |= TN_CLIENT_F_RETRIED;
    memset(&c->req, 0, sizeof(c->req));
    c->req.hdrs = w->hdrs;
    if (tn_h1_parse_req(&c->req, c->head, head_len, &lim, &why) != TN_OK) {
        tn_client_error(c, 502, "retry_failed", 1);
        return;
    }
    if (lease_upstream(c, 1) != TN_OK)
        return;
    c->req.hdrs = NULL;
    c->req.nhdrs = 0;
    tn_client_set_state(c, TN_CLIENT_CONNECT);
    tn_client_arm(c, c->wp->tv_connect);
}

/* The upstream failed before any response byte reached the client. */
static void upstream_failed(struct tn_client *c, int status, const char *reason, int retryable)
{
    if (retryable && c->up && c->up->requests && !(c->flags & TN_CLIENT_F_RETRIED) &&
        c->req.framing == TN_H1_BODY_NONE && !(c->flags & TN_CLIENT_F_RESP_SENT) &&
        !evbuffer_get_length(c->up->io.in)) {
        retry_fresh(c);
        return;
    }
    tn_stream_release_upstream(c, 0);
    if (c->flags & TN_CLIENT_F_RESP_SENT) {
        tn_client_abort(c, reason);
        return;
    }
    tn_client_error(c, status, reason, !(c->flags & TN_CLIENT_F_REQ_DONE));
}

/* ---- response ---- */

/* The response is complete: hand the connection back and end the exchange. */
static void response_done(struct tn_client *c)
{
    int reusable = (c->flags & TN_CLIENT_F_UP_REUSABLE) && (c->flags & TN_CLIENT_F_REQ_DONE) &&
                   !evbuffer_get_length(c->up->io.in);

    if (c->resp_framing == TN_H1_BODY_CLOSE && !c->resp_to_http10) {
        c->log.bytes_out += 5;
        evbuffer_add(c->io.out, "0\r\n\r\n", 5);
    }
    tn_stream_release_upstream(c, reusable);
    if (!(c->flags & TN_CLIENT_F_REQ_DONE))
        c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    tn_client_exchange_done(c);
}

static void pump_response_body(struct tn_client *c)
{
    struct evbuffer *in = c->up->io.in;
    struct evbuffer *out = c->io.out;
    size_t before = evbuffer_get_length(out);
    const char *why = NULL;
    int done = 0;

    switch (c->resp_framing) {
    case TN_H1_BODY_LENGTH: {
        int moved = evbuffer_remove_buffer(in, out, (size_t)c->resp_left);

        if (moved > 0)
            c->resp_left -= (uint64_t)moved;
        done = c->resp_left == 0;
        break;
    }
    case TN_H1_BODY_CHUNKED: {
        int rc = tn_chunked_decode(&c->resp_chunked, in, out, !c->resp_to_http10, &why);

        if (rc == TN_ERR) {
            tn_stream_release_upstream(c, 0);
            tn_client_abort(c, why);
            return;
        }
        done = rc == TN_OK;
        break;
    }
    case TN_H1_BODY_CLOSE: {
        size_t n = evbuffer_get_length(in);

        if (!n)
            break;
        if (c->resp_to_http10) {
            evbuffer_add_buffer(out, in);
        } else {
            char hex[24];

            evbuffer_add(out, hex, chunk_line(hex, n));
            evbuffer_add_buffer(out, in);
            evbuffer_add(out, "\r\n", 2);
        }
        break;
    }
    default:
        done = 1;
        break;
    }
    if (evbuffer_get_length(out) != before) {
        c->log.bytes_out += evbuffer_get_length(out) - before;
        c->progress++;
    }
    if (done) {
        response_done(c);
        return;
    }
    if (evbuffer_get_length(out) >= TN_HIGH_WATER) {
        tn_io_read(&c->up->io, 0); /* client on_write -> tn_stream_on_client_drained() */
        c->flags |= TN_CLIENT_F_RESP_PAUSED;
        tn_io_notify_low(&c->io, TN_LOW_WATER);
    }
}

/* Parses response heads (interim ones first) from the upstream input. */
static void read_response_head(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    const struct tn_conf_limits *lm = &c->wp->plan->conf->limits;
    struct tn_h1_limits lim = { lm->header_size, lm->uri, lm->headers };
    struct evbuffer *in = c->up->io.in;
    struct tn_h1_resp rs;

    for (;;) {
        size_t len = evbuffer_get_length(in), n, head_len = 0;
        const char *why = NULL;
        int status, rc;
        char *p;

        if (!len)
            return;
        n = len < lim.max_head + 1 ? len : lim.max_head + 1;
        p = (char *)evbuffer_pullup(in, (ssize_t)n);
        rc = tn_h1_scan(&c->resp_scan, p, n, &lim, 1, &head_len, &status, &why);
        if (rc == TN_AGAIN)
            return;
        memset(&rs, 0, sizeof(rs));
        rs.hdrs = w->hdrs;
        if (rc == TN_ERR ||
            tn_h1_parse_resp(&rs, p, head_len, c->req.method, &lim, &why) != TN_OK) {
            upstream_failed(c, 502, why ? why : "bad_response", 0);
            return;
        }
        if (rs.status == 101) {
            upstream_failed(c, 502, "unsolicited_101", 0);
            return;
        }
        if (rs.status < 200) {
            if (++c->interim > TN_MAX_INTERIM) {
                upstream_failed(c, 502, "too_many_interim_responses", 0);
                return;
            }
            if (c->req.minor == 1 && write_response_head(c, &rs, c->io.out, 1) != TN_OK) {
                upstream_failed(c, 502, "response_head_too_large", 0);
                return;
            }
            evbuffer_drain(in, head_len);
            memset(&c->resp_scan, 0, sizeof(c->resp_scan));
            continue;
        }
        break;
    }
    {
        size_t head_len = rs.head_len;

        if (!(c->flags & TN_CLIENT_F_REQ_DONE)) {
            /* answered before the body ended: stop forwarding it, close after */
            c->flags |= TN_CLIENT_F_CLOSE_AFTER;
            c->flags &= ~TN_CLIENT_F_UP_REUSABLE;
            tn_io_read(&c->io, 0);
        }
        if (rs.flags & TN_H1_RESP_F_CLOSE)
            c->flags &= ~TN_CLIENT_F_UP_REUSABLE;
        c->resp_to_http10 = c->req.minor == 0;
        if (rs.framing == TN_H1_BODY_CLOSE) {
            c->flags &= ~TN_CLIENT_F_UP_REUSABLE;
            if (c->resp_to_http10)
                c->flags |= TN_CLIENT_F_CLOSE_AFTER;
        }
        if (rs.framing == TN_H1_BODY_CHUNKED) {
            tn_chunked_init(&c->resp_chunked);
            if (c->resp_to_http10)
                c->flags |= TN_CLIENT_F_CLOSE_AFTER;
        }
        if (c->w->draining)
            c->flags |= TN_CLIENT_F_CLOSE_AFTER;
        c->resp_status = rs.status;
        c->resp_framing = rs.framing;
        c->resp_left = rs.content_length;
        if (write_response_head(c, &rs, c->io.out, 0) != TN_OK) {
            upstream_failed(c, 502, "response_head_too_large", 0);
            return;
        }
        evbuffer_drain(in, head_len);
        c->log.status = rs.status;
        c->flags |= TN_CLIENT_F_RESP_SENT;
        tn_client_set_state(c, TN_CLIENT_RESP);
        c->progress_seen = c->progress;
        pump_response_body(c);
        /* a body still to come: from now on a stall, either side, is cut
         * (a response complete in this read needs no timer at all) */
        if (!(c->flags & TN_CLIENT_F_DEAD) && c->state == TN_CLIENT_RESP)
            tn_client_arm(c, c->wp->tv_response);
    }
}

static void on_up_read(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (c->state == TN_CLIENT_RESP)
        pump_response_body(c);
    else
        read_response_head(c);
    tn_client_reap(c);
}

static void on_up_write(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (!(c->flags & TN_CLIENT_F_REQ_PAUSED))
        return;
    c->progress++;
    tn_client_resume_read(c);
    pump_request_body(c);
    tn_client_reap(c);
}

static void on_up_connected(struct tn_client *c)
{
    c->up->connected = 1;
    if (c->state != TN_CLIENT_CONNECT)
        return;
    evtimer_del(c->timer);
    if (c->flags & TN_CLIENT_F_REQ_DONE) {
        tn_client_set_state(c, TN_CLIENT_WAIT_RESP);
        request_sent(c);
    } else {
        tn_client_set_state(c, TN_CLIENT_REQ_BODY);
        tn_client_arm(c, c->wp->tv_body);
    }
}

static void on_up_event(struct tn_io *io, int what, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (what & TN_IO_EV_CONNECTED) {
        on_up_connected(c);
    } else if (what & TN_IO_EV_EOF) {
        if (c->state == TN_CLIENT_RESP) {
            pump_response_body(c);
            if (!(c->flags & TN_CLIENT_F_DEAD) && c->state == TN_CLIENT_RESP) {
                if (c->resp_framing == TN_H1_BODY_CLOSE)
                    response_done(c);
                else {
                    tn_stream_release_upstream(c, 0);
                    tn_client_abort(c, "upstream_closed_mid_response");
                }
            }
        } else {
            if (evbuffer_get_length(c->up->io.in))
                read_response_head(c);
            if (!(c->flags & TN_CLIENT_F_DEAD) && c->up && c->state != TN_CLIENT_RESP)
                upstream_failed(c, 502, "upstream_closed", 1);
        }
    } else if (what & TN_IO_EV_ERROR) {
        upstream_failed(c, 502, c->up->connected ? "upstream_reset" : "connect_failed",
                        c->up->connected);
    }
    tn_client_reap(c);
}

void tn_stream_on_client_data(struct tn_client *c)
{
    if (c->up && !(c->flags & TN_CLIENT_F_REQ_PAUSED))
        pump_request_body(c);
}

void tn_stream_on_client_drained(struct tn_client *c)
{
    c->flags &= ~TN_CLIENT_F_RESP_PAUSED;
    c->progress++;
    if (!c->up)
        return;
    tn_io_read(&c->up->io, 1);
    pump_response_body(c);
}

void tn_stream_on_timeout(struct tn_client *c)
{
    int stalled = c->progress == c->progress_seen;

    c->progress_seen = c->progress;
    switch (c->state) {
    case TN_CLIENT_CONNECT:
        upstream_failed(c, 502, "connect_timeout", 0);
        break;
    case TN_CLIENT_REQ_BODY:
        if (c->flags & TN_CLIENT_F_REQ_PAUSED) {
            if (stalled) /* the backend stopped reading the body */
                upstream_failed(c, 504, "upstream_write_timeout", 0);
            else
                tn_client_arm(c, c->wp->tv_body);
            break;
        }
        if (c->body_period < TN_BODY_MIN_PER_PERIOD) {
            tn_stream_release_upstream(c, 0);
            tn_client_error(c, 408, "client_body_timeout", 1);
            break;
        }
        c->body_period = 0;
        tn_client_arm(c, c->wp->tv_body);
        break;
    case TN_CLIENT_WAIT_RESP:
        upstream_failed(c, 504, "response_timeout", 0);
        break;
    case TN_CLIENT_RESP:
        if (!stalled) {
            tn_client_arm(c, c->wp->tv_response);
            break;
        }
        tn_stream_release_upstream(c, 0);
        tn_client_abort(c, (c->flags & TN_CLIENT_F_RESP_PAUSED) ? "client_read_timeout"
                                                                 : "response_timeout");
        break;
    default:
        break;
    }
}
