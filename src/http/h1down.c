/* The downstream HTTP/1.1 codec. Reads and validates request heads
 * (strict RFC 9112, src/http/h1.c), creates a stream for each and hands it
 * the request through tn_stream_ops: the head (copied by the stream), then
 * the body decoded from Content-Length or chunked framing. The stream
 * answers through h1_ops below, which serializes its response for this
 * client: framing for its version (chunked for 1.1, close-delimited for
 * 1.0), hop-by-hop fields dropped, Via and Date added. One request at a
 * time; pipelined requests wait in the input buffer (bounded). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>

#include "turnout/client.h"
#include "turnout/common.h"
#include "turnout/h1.h"
#include "turnout/h1down.h"
#include "turnout/io.h"
#include "turnout/reply.h"
#include "turnout/sbuf.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

#define HIGH_WATER (256u << 10) /* client output above this: pause the stream */
#define LOW_WATER (64u << 10)
#define READ_HIGH (256u << 10) /* client input kept at most while a response goes (plus one read) */
/* A request body must make this much progress per client_body period (or
 * finish): a client trickling bytes to hold a connection is cut off. */
#define BODY_MIN_PER_PERIOD 1024u

static struct tn_client *client_of(struct tn_stream *s)
{
    return s->down_ctx;
}

/* ---- the response (the stream's calls) ---- */

static void write_interim(struct tn_client *c, struct tn_stream *s, const struct tn_msg *m,
                          struct tn_sbuf *b)
{
    char status[4] = { (char)('0' + m->status / 100), (char)('0' + m->status / 10 % 10),
                       (char)('0' + m->status % 10), ' ' };
    const char *reason = m->reason ? m->reason : tn_h1_reason(m->status);
    size_t reason_len = m->reason ? m->reason_len : strlen(reason);
    unsigned i;

    (void)c;
    (void)s;
    TN_SBUF_LIT(b, "HTTP/1.1 ");
    tn_sbuf_add(b, status, 4);
    tn_sbuf_add(b, reason, reason_len);
    TN_SBUF_LIT(b, "\r\n");
    for (i = 0; i < m->nfields; i++)
        if (!(m->fields[i].flags & (TN_FIELD_F_HOP | TN_FIELD_F_FRAMING)))
            tn_sbuf_field(b, &m->fields[i]);
}

/* Queues turnout's own error page for the current request and ends the
 * exchange; the connection closes after it when close_after, when the
 * request body was not read whole, or when draining. Returns its bytes. */
static size_t answer_error(struct tn_client *c, int status, int close_after)
{
    size_t n;

    if (close_after || c->state == TN_CLIENT_REQ_BODY || c->w->draining)
        c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    n = tn_reply_error(c->io.out, status, !!(c->flags & TN_CLIENT_F_CLOSE_AFTER),
                       tn_worker_http_date(c->w));
    tn_io_queue_flush(&c->io);
    tn_client_exchange_done(c);
    return n;
}

/* A response head that does not fit the scratch space: the stream fails
 * with 502 and the client gets that instead. */
static int head_too_large(struct tn_client *c, struct tn_stream *s)
{
    c->flags &= ~TN_CLIENT_F_RESP_CHUNKED;
    c->stream = NULL;
    tn_stream_ops.abort(s, 502, "response_head_too_large");
    answer_error(c, 502, 1);
    return TN_ERR;
}

static int h1_head(struct tn_stream *s, const struct tn_msg *m)
{
    struct tn_client *c = client_of(s);
    struct tn_worker *w = c->w;
    struct tn_sbuf b = { w->scratch, 0, w->scratch_len, 0 };
    int http10 = !!(c->flags & TN_CLIENT_F_HTTP10);
    int dated = 0;
    unsigned i;

    if (m->status < 200) {
        if (http10)
            return TN_OK; /* 1xx are not for HTTP/1.0 clients */
        write_interim(c, s, m, &b);
        TN_SBUF_LIT(&b, "Via: 1.1 turnout\r\n\r\n");
        if (b.overflow)
            return head_too_large(c, s);
        evbuffer_add(c->io.out, b.p, b.len);
        s->bytes_out += b.len;
        tn_io_queue_flush(&c->io);
        return TN_OK;
    }
    if (c->state == TN_CLIENT_REQ_BODY || w->draining)
        c->flags |= TN_CLIENT_F_CLOSE_AFTER; /* answered before the body ended */
    if (m->body == TN_BODY_STREAM) {
        if (http10)
            c->flags |= TN_CLIENT_F_CLOSE_AFTER; /* close-delimited */
        else
            c->flags |= TN_CLIENT_F_RESP_CHUNKED;
    }
    write_interim(c, s, m, &b);
    for (i = 0; i < m->nfields && !dated; i++) {
        const char *n = m->fields[i].name;

        dated = m->fields[i].name_len == 4 && (n[0] | 0x20) == 'd' && (n[1] | 0x20) == 'a' &&
                (n[2] | 0x20) == 't' && (n[3] | 0x20) == 'e';
    }
    for (i = 0; i < m->nextra; i++)
        tn_sbuf_field(&b, &m->extra[i]);
    /* RFC 9110 7.6.3: a proxy adds Via to what it forwards; 6.6.1: a
     * response forwarded without Date gets the time it was received */
    TN_SBUF_LIT(&b, "Via: 1.1 turnout\r\n");
    if (!dated) {
        const char *date = tn_worker_http_date(w);

        TN_SBUF_LIT(&b, "Date: ");
        tn_sbuf_add(&b, date, strlen(date));
        TN_SBUF_LIT(&b, "\r\n");
    }
    if (m->body == TN_BODY_LENGTH) {
        TN_SBUF_LIT(&b, "Content-Length: ");
        tn_sbuf_u64(&b, m->content_length);
        TN_SBUF_LIT(&b, "\r\n");
    } else if (c->flags & TN_CLIENT_F_RESP_CHUNKED) {
        TN_SBUF_LIT(&b, "Transfer-Encoding: chunked\r\n");
    }
    if (c->flags & TN_CLIENT_F_CLOSE_AFTER)
        TN_SBUF_LIT(&b, "Connection: close\r\n");
    else if (http10)
        TN_SBUF_LIT(&b, "Connection: keep-alive\r\n");
    TN_SBUF_LIT(&b, "\r\n");
    if (b.overflow)
        return head_too_large(c, s);
    evbuffer_add(c->io.out, b.p, b.len);
    s->bytes_out += b.len;
    c->flags |= TN_CLIENT_F_RESP_SENT;
    tn_io_queue_flush(&c->io);
    return TN_OK;
}

static int h1_data(struct tn_stream *s, struct evbuffer *src, size_t n)
{
    struct tn_client *c = client_of(s);
    struct evbuffer *out = c->io.out;

    if (c->flags & TN_CLIENT_F_RESP_CHUNKED) {
        char line[24];
        size_t k = tn_chunk_line(line, n);

        evbuffer_add(out, line, k);
        evbuffer_remove_buffer(src, out, n);
        evbuffer_add(out, "\r\n", 2);
        s->bytes_out += k + n + 2;
    } else {
        evbuffer_remove_buffer(src, out, n);
        s->bytes_out += n;
    }
    tn_io_queue_flush(&c->io);
    if (evbuffer_get_length(out) >= HIGH_WATER && !(c->flags & TN_CLIENT_F_OUT_PAUSED)) {
        c->flags |= TN_CLIENT_F_OUT_PAUSED;
        tn_io_notify_low(&c->io, LOW_WATER); /* on_drained resumes the stream */
        tn_stream_ops.pause(s);
    }
    return TN_OK;
}

static int h1_end(struct tn_stream *s)
{
    struct tn_client *c = client_of(s);

    if (c->flags & TN_CLIENT_F_RESP_CHUNKED) {
        evbuffer_add(c->io.out, "0\r\n\r\n", 5);
        s->bytes_out += 5;
    }
    c->flags &= ~TN_CLIENT_F_OUT_PAUSED;
    tn_io_queue_flush(&c->io);
    tn_client_exchange_done(c);
    return TN_OK;
}

static void h1_abort(struct tn_stream *s, int status, const char *why)
{
    struct tn_client *c = client_of(s);

    (void)why;
    c->stream = NULL;
    if (!status || (c->flags & TN_CLIENT_F_RESP_SENT)) {
        tn_client_abort(c);
        return;
    }
    s->bytes_out += answer_error(c, status, 0);
}

static void h1_pause(struct tn_stream *s)
{
    struct tn_client *c = client_of(s);

    c->flags |= TN_CLIENT_F_READ_PAUSED;
    tn_io_read(&c->io, 0);
}

static void pump_body(struct tn_client *c);

static void h1_resume(struct tn_stream *s)
{
    struct tn_client *c = client_of(s);

    c->flags &= ~TN_CLIENT_F_READ_PAUSED;
    tn_io_read(&c->io, 1);
    if (c->state == TN_CLIENT_REQ_BODY && evbuffer_get_length(c->io.in))
        pump_body(c);
}

static const struct tn_stream_ops h1_ops = {
    .head = h1_head,
    .data = h1_data,
    .end = h1_end,
    .abort = h1_abort,
    .pause = h1_pause,
    .resume = h1_resume,
};

/* ---- the request ---- */

void tn_h1down_reject(struct tn_client *c, int status, const char *why)
{
    /* no stream took this request: log it on a stream of its own */
    struct tn_stream *s = tn_stream_new(c->w, NULL, NULL, c->peer_ip, c->scheme, c->start_us);
    size_t n = answer_error(c, status, 1);

    if (s)
        tn_stream_reject(s, status, why, c->start_us, n);
}

/* The stream failed while we were handing it the request: answer for it. */
static void body_failed(struct tn_client *c, int status, const char *why)
{
    struct tn_stream *s = c->stream;

    c->stream = NULL;
    if (s)
        tn_stream_ops.abort(s, status, why);
    if (c->flags & TN_CLIENT_F_RESP_SENT)
        tn_client_abort(c);
    else
        answer_error(c, status, 1);
}

/* The whole body is in: tell the stream, wait for the response. */
static void body_done(struct tn_client *c)
{
    tn_client_set_state(c, TN_CLIENT_WAIT);
    if (c->stream)
        tn_stream_ops.end(c->stream);
}

/* Moves body bytes from the input to the stream; stops at the body's end
 * so a pipelined request stays in the input. */
static void pump_body(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    struct evbuffer *in = c->io.in;
    struct tn_stream *s = c->stream;
    size_t avail = evbuffer_get_length(in);

    if (c->req_framing == TN_H1_BODY_LENGTH) {
        size_t n = avail < c->req_left ? avail : (size_t)c->req_left;

        if (n) {
            c->req_left -= n;
            c->body_period += n;
            if (s) {
                s->bytes_in += n;
                tn_stream_ops.data(s, in, n);
            } else {
                evbuffer_drain(in, n);
            }
        }
        if (!c->req_left && c->state == TN_CLIENT_REQ_BODY)
            body_done(c);
        return;
    } else {
        struct evbuffer *tmp = w->body_tmp;
        const struct tn_conf_limits *lm = &w->wp->plan->conf->limits;
        const char *why = NULL;
        int rc = tn_chunked_decode(&c->req_chunked, in, tmp, 0, &why);
        size_t used = avail - evbuffer_get_length(in), n = evbuffer_get_length(tmp);

        c->body_period += used;
        if (s)
            s->bytes_in += used;
        if (rc == TN_ERR) {
            evbuffer_drain(tmp, n);
            body_failed(c, 400, why);
            return;
        }
        if (lm->body && c->req_chunked.total > lm->body) {
            evbuffer_drain(tmp, n);
            body_failed(c, 413, "request_body_too_large");
            return;
        }
        if (n) {
            if (c->stream)
                tn_stream_ops.data(c->stream, tmp, n);
            evbuffer_drain(tmp, evbuffer_get_length(tmp));
        }
        if (rc == TN_OK && c->state == TN_CLIENT_REQ_BODY)
            body_done(c);
    }
}

/* Hands a parsed head to a new stream. */
static void start_stream(struct tn_client *c, struct tn_h1_req *r, const char *p, size_t head_len)
{
    struct tn_worker *w = c->w;
    struct tn_stream *s = tn_stream_new(w, &h1_ops, c, c->peer_ip, c->scheme, c->start_us);
    struct tn_msg m;
    unsigned i;

    if (!s) {
        evbuffer_drain(c->io.in, head_len);
        tn_h1down_reject(c, 503, "out_of_memory");
        return;
    }
    s->bytes_in = head_len;
    s->proto = r->minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
    c->stream = s;
    memset(&m, 0, sizeof(m));
    m.method = r->method;
    m.method_str = r->method_str;
    m.method_len = r->method_len;
    m.target = r->target;
    m.target_len = r->target_len;
    m.authority = r->host;
    m.authority_len = r->host_len;
    m.fields = r->hdrs;
    m.nfields = r->nhdrs;
    m.base = p;
    m.base_len = head_len;
    if (r->minor == 0) {
        c->flags |= TN_CLIENT_F_HTTP10;
        /* RFC 9110 10.1.1: Expect from an HTTP/1.0 client is ignored */
        for (i = 0; i < r->nhdrs; i++)
            if (r->hdrs[i].name_len == 6 && tn_strieq(r->hdrs[i].name, 6, "expect"))
                r->hdrs[i].flags |= TN_FIELD_F_DROP;
    }
    if (r->flags & TN_H1_REQ_F_EXPECT_CONTINUE)
        m.flags |= TN_MSG_F_EXPECT_CONTINUE;
    if (r->flags & TN_H1_REQ_F_CLOSE)
        c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    c->req_framing = r->framing;
    c->req_left = 0;
    c->body_period = 0;
    if (r->framing == TN_H1_BODY_LENGTH) {
        m.body = TN_BODY_LENGTH;
        m.content_length = r->content_length;
        c->req_left = r->content_length;
        tn_client_set_state(c, TN_CLIENT_REQ_BODY);
        tn_client_arm(c, w->wp->tv_body);
    } else if (r->framing == TN_H1_BODY_CHUNKED) {
        m.body = TN_BODY_STREAM;
        tn_chunked_init(&c->req_chunked);
        tn_client_set_state(c, TN_CLIENT_REQ_BODY);
        tn_client_arm(c, w->wp->tv_body);
    } else {
        m.body = TN_BODY_NONE;
        tn_client_set_state(c, TN_CLIENT_WAIT);
    }
    /* the stream copies the head before anything can touch the input */
    tn_stream_ops.head(s, &m);
    evbuffer_drain(c->io.in, head_len);
    if (c->state == TN_CLIENT_REQ_BODY && !(c->flags & TN_CLIENT_F_DEAD))
        pump_body(c);
}

static void read_head(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    const struct tn_conf_limits *lm = &w->wp->plan->conf->limits;
    struct tn_h1_limits lim = { lm->header_size, lm->uri, lm->headers };
    struct evbuffer *in = c->io.in;
    size_t len = evbuffer_get_length(in), n, head_len = 0;
    struct tn_h1_req req;
    const char *why = NULL;
    int status = 400, rc;
    char *p;

    if (!len)
        return;
    if (c->state == TN_CLIENT_IDLE) {
        tn_client_set_state(c, TN_CLIENT_REQ_HEAD);
        c->flags &= ~(TN_CLIENT_F_HTTP10 | TN_CLIENT_F_RESP_SENT | TN_CLIENT_F_RESP_CHUNKED |
                      TN_CLIENT_F_HEAD_TIMER | TN_CLIENT_F_READ_PAUSED | TN_CLIENT_F_OUT_PAUSED);
        c->start_us = tn_now_us();
    }
    n = len < lim.max_head + 1 ? len : lim.max_head + 1;
    p = (char *)evbuffer_pullup(in, (ssize_t)n);
    rc = tn_h1_scan(&c->scan, p, n, &lim, 0, &head_len, &status, &why);
    if (rc == TN_AGAIN) {
        if (c->flags & TN_CLIENT_F_EOF)
            tn_client_kill(c);
        else if (!(c->flags & TN_CLIENT_F_HEAD_TIMER)) {
            /* the head came in pieces: from now on it has client_header to finish */
            c->flags |= TN_CLIENT_F_HEAD_TIMER;
            tn_client_arm(c, w->wp->tv_header);
        }
        return;
    }
    if (rc == TN_ERR) {
        tn_h1down_reject(c, status, why);
        return;
    }
    memset(&req, 0, sizeof(req));
    req.hdrs = w->hdrs;
    if (tn_h1_parse_req(&req, p, head_len, &lim, &why) != TN_OK) {
        tn_h1down_reject(c, req.status ? req.status : 400, why);
        return;
    }
    start_stream(c, &req, p, head_len);
}

void tn_h1down_on_read(struct tn_client *c)
{
    switch (c->state) {
    case TN_CLIENT_IDLE:
    case TN_CLIENT_REQ_HEAD:
        read_head(c);
        break;
    case TN_CLIENT_REQ_BODY:
        if (!(c->flags & TN_CLIENT_F_READ_PAUSED))
            pump_body(c);
        break;
    case TN_CLIENT_WAIT:
        /* a pipelined request waits for this response; bound what we buffer */
        if (evbuffer_get_length(c->io.in) >= READ_HIGH) {
            tn_io_read(&c->io, 0);
            c->flags |= TN_CLIENT_F_READ_OFF;
        }
        break;
    default:
        break;
    }
}

void tn_h1down_on_drained(struct tn_client *c)
{
    if (!(c->flags & TN_CLIENT_F_OUT_PAUSED))
        return;
    c->flags &= ~TN_CLIENT_F_OUT_PAUSED;
    if (c->stream)
        tn_stream_ops.resume(c->stream);
}

void tn_h1down_on_eof(struct tn_client *c)
{
    switch (c->state) {
    case TN_CLIENT_REQ_HEAD:
        read_head(c); /* a complete head may still be buffered */
        if (c->state == TN_CLIENT_REQ_HEAD)
            tn_client_kill(c);
        break;
    case TN_CLIENT_REQ_BODY:
        pump_body(c);
        if (c->state == TN_CLIENT_REQ_BODY && !(c->flags & TN_CLIENT_F_DEAD)) {
            if (c->stream)
                tn_stream_detach(c->stream, "client_aborted");
            c->stream = NULL;
            tn_client_kill(c);
        }
        break;
    default:
        break; /* WAIT: half-close, the response still goes out, then we close */
    }
}

void tn_h1down_on_timer(struct tn_client *c)
{
    if (c->state == TN_CLIENT_REQ_HEAD) {
        tn_h1down_reject(c, 408, "client_header_timeout");
        return;
    }
    /* REQ_BODY */
    if (c->flags & TN_CLIENT_F_READ_PAUSED) {
        tn_client_arm(c, c->w->wp->tv_body); /* the stream guards a backend that stopped reading */
        return;
    }
    if (c->body_period < BODY_MIN_PER_PERIOD) {
        body_failed(c, 408, "client_body_timeout");
        return;
    }
    c->body_period = 0;
    tn_client_arm(c, c->w->wp->tv_body);
}
