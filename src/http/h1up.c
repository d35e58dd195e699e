/* The HTTP/1.1 side of an attempt. A stream leases an upstream connection
 * and this module speaks HTTP/1.1 on it: the request head is serialized
 * from the stream's protocol-neutral request (hop-by-hop fields dropped,
 * Host, X-Forwarded-For/-Proto, Via, framing regenerated), the body framed
 * as Content-Length or chunks, and the response parsed strictly and handed
 * to the stream as a neutral head, decoded body bytes and an end. Any
 * malformed response is a failed attempt, never a guessed response. */
#include <event2/buffer.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/h1.h"
#include "turnout/h1up.h"
#include "turnout/io.h"
#include "turnout/pool.h"
#include "turnout/sbuf.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

/* More 1xx responses than this before the final one is a broken backend
 * (a client that does not read would otherwise make us buffer them all). */
#define MAX_INTERIM 16

static const char *const state_names[] = {
#define TN_X_NAME(s) #s,
    TN_UPSTREAM_STATES(TN_X_NAME)
#undef TN_X_NAME
};

const char *tn_upstream_state_name(enum tn_upstream_state st)
{
    return state_names[st];
}

/* Writes the request head of s into out for a body framed as body/len. */
static int write_head(struct tn_upstream *u, struct tn_stream *s, enum tn_body_kind body,
                      uint64_t len)
{
    const struct tn_msg *r = &s->req;
    struct tn_worker *w = s->w;
    struct tn_sbuf b = { w->scratch, 0, w->scratch_len, 0 };
    unsigned skip = TN_FIELD_F_HOP | TN_FIELD_F_FRAMING | TN_FIELD_F_HOST | TN_FIELD_F_XFF |
                    TN_FIELD_F_XFP | TN_FIELD_F_DROP;
    int xff = 0;
    unsigned i;

    tn_sbuf_add(&b, r->method_str, r->method_len);
    TN_SBUF_LIT(&b, " ");
    tn_sbuf_add(&b, r->target, r->target_len);
    TN_SBUF_LIT(&b, " HTTP/1.1\r\nHost: ");
    if (r->authority)
        tn_sbuf_add(&b, r->authority, r->authority_len);
    else
        tn_sbuf_add(&b, u->pool->name, strlen(u->pool->name));
    TN_SBUF_LIT(&b, "\r\n");
    for (i = 0; i < r->nfields; i++) {
        const struct tn_field *f = &r->fields[i];

        if (!(f->flags & skip)) {
            /* we answered 100 Continue ourselves: the server must not wait */
            if ((s->flags & TN_STREAM_F_CONTINUE) && f->name_len == 6 &&
                tn_strieq(f->name, 6, "expect"))
                continue;
            tn_sbuf_field(&b, f);
        } else if ((f->flags & TN_FIELD_F_XFF) && f->value_len) {
            xff = 1;
        }
    }
    /* every incoming X-Forwarded-For value, in order, then the client */
    TN_SBUF_LIT(&b, "X-Forwarded-For: ");
    for (i = 0; xff && i < r->nfields; i++) {
        const struct tn_field *f = &r->fields[i];

        if (!(f->flags & TN_FIELD_F_XFF) || !f->value_len)
            continue;
        tn_sbuf_add(&b, f->value, f->value_len);
        TN_SBUF_LIT(&b, ", ");
    }
    tn_sbuf_add(&b, s->client_ip, strlen(s->client_ip));
    TN_SBUF_LIT(&b, "\r\nX-Forwarded-Proto: ");
    tn_sbuf_add(&b, s->scheme, strlen(s->scheme));
    /* RFC 9110 7.6.3: the version the client sent the request with ("2",
     * "1.0", "1.1"; a stream without a client: 1.1) */
    TN_SBUF_LIT(&b, "\r\nVia: ");
    if (s->proto)
        tn_sbuf_add(&b, s->proto + 5, strlen(s->proto + 5));
    else
        TN_SBUF_LIT(&b, "1.1");
    TN_SBUF_LIT(&b, " turnout\r\n");
    if (body == TN_BODY_LENGTH) {
        TN_SBUF_LIT(&b, "Content-Length: ");
        tn_sbuf_u64(&b, len);
        TN_SBUF_LIT(&b, "\r\n");
    } else if (body == TN_BODY_STREAM) {
        TN_SBUF_LIT(&b, "Transfer-Encoding: chunked\r\n");
    }
    TN_SBUF_LIT(&b, "\r\n");
    if (b.overflow)
        return TN_ERR;
    evbuffer_add(u->io.out, b.p, b.len);
    return TN_OK;
}

/* ---- response ---- */

/* The response is complete: say whether the connection can be pooled and
 * hand it back through the stream. */
static void response_done(struct tn_upstream *u)
{
    if ((u->flags & TN_UP_F_REQ_SENT) && !(u->flags & TN_UP_F_NO_REUSE) &&
        !evbuffer_get_length(u->io.in))
        u->flags |= TN_UP_F_CLEAN;
    u->state = TN_UPSTREAM_DONE;
    tn_stream_up_end(u->owner);
}

/* Relays buffered response body. Returns TN_OK while u is still leased and
 * the body goes on, TN_ERR once the lease ended (u may be freed). */
static int pump_body(struct tn_upstream *u)
{
    struct tn_stream *s = u->owner;
    struct evbuffer *in = u->io.in;
    size_t n;

    switch (u->framing) {
    case TN_H1_BODY_LENGTH:
        n = evbuffer_get_length(in);
        if (n > u->left)
            n = (size_t)u->left;
        if (n) {
            u->left -= n;
            if (tn_stream_up_data(s, in, n) != TN_OK)
                return TN_ERR;
        }
        if (u->left)
            return TN_OK;
        break;
    case TN_H1_BODY_CHUNKED: {
        struct evbuffer *tmp = s->w->body_tmp;
        const char *why = NULL;
        int rc = tn_chunked_decode(&u->chunked, in, tmp, 0, &why);

        if (rc == TN_ERR) {
            evbuffer_drain(tmp, evbuffer_get_length(tmp));
            tn_stream_up_fail(s, TN_ATTEMPT_E_CUT, why);
            return TN_ERR;
        }
        n = evbuffer_get_length(tmp);
        if (n && tn_stream_up_data(s, tmp, n) != TN_OK) {
            evbuffer_drain(tmp, evbuffer_get_length(tmp));
            return TN_ERR;
        }
        if (rc != TN_OK)
            return TN_OK;
        break;
    }
    case TN_H1_BODY_CLOSE:
        n = evbuffer_get_length(in);
        if (n && tn_stream_up_data(s, in, n) != TN_OK)
            return TN_ERR;
        return TN_OK; /* ends at EOF */
    default:
        break;
    }
    response_done(u);
    return TN_ERR;
}

/* Turns a parsed response head into the stream's neutral form. */
static void to_msg(const struct tn_h1_resp *rs, struct tn_msg *m, int interim)
{
    unsigned i;

    memset(m, 0, sizeof(*m));
    m->status = rs->status;
    m->reason = rs->reason;
    m->reason_len = rs->reason_len;
    m->fields = rs->hdrs;
    m->nfields = rs->nhdrs;
    if (interim)
        return;
    switch (rs->framing) {
    case TN_H1_BODY_LENGTH:
        m->body = TN_BODY_LENGTH;
        m->content_length = rs->content_length;
        break;
    case TN_H1_BODY_CHUNKED:
    case TN_H1_BODY_CLOSE:
        m->body = TN_BODY_STREAM;
        break;
    default:
        m->body = TN_BODY_NONE;
        /* bodiless: HEAD and 304 keep the length they describe, 204 never */
        for (i = 0; rs->status != 204 && i < rs->nhdrs; i++) {
            struct tn_field *f = &rs->hdrs[i];

            if ((f->flags & TN_FIELD_F_FRAMING) &&
                tn_strieq(f->name, f->name_len, "content-length"))
                f->flags &= ~TN_FIELD_F_FRAMING;
        }
        break;
    }
}

/* Parses response heads (interim ones first). Returns TN_OK when more input
 * is needed or the body goes on, TN_ERR once the lease ended. */
static int read_head(struct tn_upstream *u)
{
    struct tn_stream *s = u->owner;
    struct tn_worker *w = s->w;
    const struct tn_conf_limits *lm = &s->wp->plan->conf->limits;
    struct tn_h1_limits lim = { lm->header_size, lm->uri, lm->headers };
    struct evbuffer *in = u->io.in;
    struct tn_h1_resp rs;
    struct tn_msg m;

    for (;;) {
        size_t len = evbuffer_get_length(in), n, head_len = 0;
        const char *why = NULL;
        int status, rc;
        char *p;

        if (!len)
            return TN_OK;
        n = len < lim.max_head + 1 ? len : lim.max_head + 1;
        p = (char *)evbuffer_pullup(in, (ssize_t)n);
        rc = tn_h1_scan(&u->scan, p, n, &lim, 1, &head_len, &status, &why);
        if (rc == TN_AGAIN)
            return TN_OK;
        memset(&rs, 0, sizeof(rs));
        rs.hdrs = w->hdrs;
        if (rc == TN_ERR || tn_h1_parse_resp(&rs, p, head_len, u->method, &lim, &why) != TN_OK) {
            tn_stream_up_fail(s, TN_ATTEMPT_E_BAD_RESPONSE, why ? why : "bad_response");
            return TN_ERR;
        }
        if (rs.status == 101) {
            tn_stream_up_fail(s, TN_ATTEMPT_E_BAD_RESPONSE, "unsolicited_101");
            return TN_ERR;
        }
        if (rs.status >= 200)
            break;
        if (++u->interim > MAX_INTERIM) {
            tn_stream_up_fail(s, TN_ATTEMPT_E_BAD_RESPONSE, "too_many_interim_responses");
            return TN_ERR;
        }
        to_msg(&rs, &m, 1);
        if (tn_stream_up_head(s, &m) != TN_OK)
            return TN_ERR;
        evbuffer_drain(in, head_len);
        memset(&u->scan, 0, sizeof(u->scan));
    }
    if (!(u->flags & TN_UP_F_REQ_SENT) || (rs.flags & TN_H1_RESP_F_CLOSE) ||
        rs.framing == TN_H1_BODY_CLOSE)
        u->flags |= TN_UP_F_NO_REUSE;
    u->framing = rs.framing;
    u->left = rs.content_length;
    if (rs.framing == TN_H1_BODY_CHUNKED)
        tn_chunked_init(&u->chunked);
    to_msg(&rs, &m, 0);
    if (tn_stream_up_head(s, &m) != TN_OK)
        return TN_ERR;
    evbuffer_drain(in, rs.head_len);
    u->state = TN_UPSTREAM_BODY;
    return pump_body(u);
}

/* Handles whatever is buffered. Returns TN_ERR once the lease ended. */
static int process(struct tn_upstream *u)
{
    if (u->state == TN_UPSTREAM_BODY)
        return pump_body(u);
    return read_head(u);
}

static void on_read(struct tn_io *io, void *arg)
{
    struct tn_upstream *u = arg;

    (void)io;
    u->flags |= TN_UP_F_GOT_BYTES;
    process(u);
}

static void on_write(struct tn_io *io, void *arg)
{
    struct tn_upstream *u = arg;

    (void)io;
    tn_stream_up_drained(u->owner);
}

static void on_eof(struct tn_upstream *u)
{
    struct tn_stream *s = u->owner;

    if (process(u) != TN_OK)
        return;
    if (u->state == TN_UPSTREAM_BODY) {
        if (u->framing == TN_H1_BODY_CLOSE)
            response_done(u);
        else
            tn_stream_up_fail(s, TN_ATTEMPT_E_CUT, "upstream_closed_mid_response");
        return;
    }
    tn_stream_up_fail(s, TN_ATTEMPT_E_CLOSED, "upstream_closed");
}

static void on_event(struct tn_io *io, int what, void *arg)
{
    struct tn_upstream *u = arg;

    (void)io;
    if ((what & TN_IO_EV_CONNECTED) && tn_upstream_start_tls(u))
        return; /* TLS: connected once the handshake is done (TN_IO_EV_HANDSHAKE) */
    if (what & (TN_IO_EV_CONNECTED | TN_IO_EV_HANDSHAKE)) {
        u->connected = 1;
        tn_upstream_tls_done(u);
        u->state = (u->flags & TN_UP_F_REQ_SENT) ? TN_UPSTREAM_WAIT_HEAD : TN_UPSTREAM_SEND;
        tn_io_queue_flush(&u->io);
        tn_stream_up_connected(u->owner);
    } else if (what & TN_IO_EV_EOF) {
        on_eof(u);
    } else if (!u->connected) {
        const char *why = "connect_failed";

        tn_upstream_tls_failed(u, &why); /* a refused certificate, a failed handshake */
        tn_stream_up_fail(u->owner, TN_ATTEMPT_E_CONNECT_ERROR, why);
    } else {
        tn_stream_up_fail(u->owner,
                          u->state == TN_UPSTREAM_BODY ? TN_ATTEMPT_E_CUT : TN_ATTEMPT_E_RESET,
                          "upstream_reset");
    }
}

int tn_h1up_start(struct tn_upstream *u, struct tn_stream *s, enum tn_body_kind body, uint64_t len)
{
    u->owner = s;
    u->flags = body == TN_BODY_STREAM ? TN_UP_F_REQ_CHUNKED : 0;
    u->method = s->req.method;
    u->interim = 0;
    u->left = 0;
    u->framing = TN_H1_BODY_NONE;
    memset(&u->scan, 0, sizeof(u->scan));
    u->state = u->connected ? TN_UPSTREAM_SEND : TN_UPSTREAM_CONNECTING;
    tn_io_setcb(&u->io, on_read, on_write, on_event, u);
    tn_io_read(&u->io, 1);
    if (write_head(u, s, body, len) != TN_OK)
        return TN_ERR;
    tn_io_queue_flush(&u->io);
    return TN_OK;
}

void tn_h1up_data(struct tn_upstream *u, struct evbuffer *src, size_t n)
{
    if (u->flags & TN_UP_F_REQ_CHUNKED) {
        char line[24];

        evbuffer_add(u->io.out, line, tn_chunk_line(line, n));
        evbuffer_remove_buffer(src, u->io.out, n);
        evbuffer_add(u->io.out, "\r\n", 2);
    } else {
        evbuffer_remove_buffer(src, u->io.out, n);
    }
    tn_io_queue_flush(&u->io);
}

void tn_h1up_data_ref(struct tn_upstream *u, const char *body, size_t len)
{
    if (len)
        evbuffer_add_reference(u->io.out, body, len, NULL, NULL);
    tn_io_queue_flush(&u->io);
}

void tn_h1up_end(struct tn_upstream *u)
{
    if (u->flags & TN_UP_F_REQ_CHUNKED)
        evbuffer_add(u->io.out, "0\r\n\r\n", 5);
    u->flags |= TN_UP_F_REQ_SENT;
    if (u->state == TN_UPSTREAM_SEND)
        u->state = TN_UPSTREAM_WAIT_HEAD;
    tn_io_queue_flush(&u->io);
}

void tn_h1up_pause(struct tn_upstream *u)
{
    tn_io_read(&u->io, 0);
}

void tn_h1up_resume(struct tn_upstream *u)
{
    tn_io_read(&u->io, 1);
    if (evbuffer_get_length(u->io.in))
        process(u);
}
