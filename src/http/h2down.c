/* The downstream HTTP/2 codec on nghttp2's server session. Each request
 * stream is mapped to HTTP/1.1 semantics (RFC 9113 section 8: pseudo-header
 * fields, :authority as Host, cookie crumbs joined) and handed to a
 * protocol-neutral stream (stream.c) like an HTTP/1.1 request; the stream
 * answers through h2_ops below (HEADERS, DATA through a data provider,
 * RST_STREAM). Flow control is the backpressure: request DATA is given back
 * to the client's window only as the upstream takes it, and response DATA
 * is produced only while the connection's output is below its high
 * watermark. Floods (rapid reset, control frames, empty DATA) spend
 * per-connection token buckets; an empty one ends the connection with
 * GOAWAY ENHANCE_YOUR_CALM. docs/http2.md has the rules. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "turnout/client.h"
#include "turnout/common.h"
#include "turnout/h2down.h"
#include "turnout/io.h"
#include "turnout/log.h"
#include "turnout/reply.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

#define STREAM_WINDOW 65536       /* SETTINGS_INITIAL_WINDOW_SIZE: request bytes per stream */
#define CONN_WINDOW (1u << 20)    /* the connection's receive window */
#define HIGH_WATER (256u << 10)   /* client output above this: no more frames */
#define LOW_WATER (64u << 10)     /* ... until it drains to this */
#define PEND_HIGH (64u << 10)     /* a stream's pending response body: pause it above */
#define PEND_LOW (16u << 10)      /* ... resume it at or below */
#define BODY_MIN_PER_PERIOD 1024u /* request body bytes per client_body period */
/* Flood budgets: token buckets per connection (burst, tokens per second). */
#define CTRL_BURST 1000.0 /* SETTINGS, PING, PRIORITY, WINDOW_UPDATE, empty DATA */
#define CTRL_RATE 100.0
#define RESET_BURST 200.0 /* RST_STREAM frames from the client */
#define RESET_RATE 33.0
#define MAX_NV_EXTRA 8 /* response fields we add: :status, via, date, content-length */
#define NV_STACK 48    /* response heads up to this many fields are built on the stack */

static const struct timeval zero_tv = {0, 0};

/* ---- small helpers ---- */

static int bucket_take(struct tn_h2_bucket *b, double burst, double rate)
{
    uint64_t now = tn_now_ms();

    if (!b->last_ms) {
        b->tokens = burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) * rate / 1000.0;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ms = now;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

/* A flood budget ran out: GOAWAY ENHANCE_YOUR_CALM, then the connection
 * closes once it is sent. */
static void calm(struct tn_h2down *hc, const char *what)
{
    if (hc->flags & TN_H2_F_CALM)
        return;
    hc->flags |= TN_H2_F_CALM;
    tn_log(TN_LOG_WARN, "client %s: HTTP/2 %s: GOAWAY ENHANCE_YOUR_CALM", hc->c->peer_ip, what);
    nghttp2_session_terminate_session(hc->sess, NGHTTP2_ENHANCE_YOUR_CALM);
}

static void ctrl_frame(struct tn_h2down *hc, const char *what)
{
    if (!bucket_take(&hc->ctrl, CTRL_BURST, CTRL_RATE))
        calm(hc, what);
}

/* A GOAWAY written by hand, for when the session itself failed. */
static void raw_goaway(struct tn_h2down *hc, uint32_t code)
{
    uint32_t last = (uint32_t)nghttp2_session_get_last_proc_stream_id(hc->sess) & 0x7fffffffu;
    uint8_t f[17] = {0, 0, 8, NGHTTP2_GOAWAY, 0, 0, 0, 0, 0};

    f[9] = (uint8_t)(last >> 24);
    f[10] = (uint8_t)(last >> 16);
    f[11] = (uint8_t)(last >> 8);
    f[12] = (uint8_t)last;
    f[13] = (uint8_t)(code >> 24);
    f[14] = (uint8_t)(code >> 16);
    f[15] = (uint8_t)(code >> 8);
    f[16] = (uint8_t)code;
    evbuffer_add(hc->c->io.out, f, sizeof(f));
    tn_io_queue_flush(&hc->c->io);
}

/* The stream record is done with: moved to the dead list, freed when the
 * connection's current call returns (settle). */
static void release(struct tn_h2s *h)
{
    struct tn_h2down *hc = h->hc;

    if (h->flags & TN_H2S_F_DEAD)
        return;
    h->flags |= TN_H2S_F_DEAD;
    if (h->pend) {
        evbuffer_free(h->pend);
        h->pend = NULL;
    }
    if (hc->hs == h)
        hc->hs = NULL;
    TAILQ_REMOVE(&hc->streams, h, link);
    TAILQ_INSERT_TAIL(&hc->dead, h, link);
}

static void reap(struct tn_h2down *hc)
{
    struct tn_h2s *h;

    while ((h = TAILQ_FIRST(&hc->dead)) != NULL) {
        TAILQ_REMOVE(&hc->dead, h, link);
        free(h);
    }
}

/* Arms the connection timer for what the connection is doing now: idle
 * with no stream open, else the client_body period of its streams. */
static void arm_timer(struct tn_h2down *hc)
{
    struct tn_client *c = hc->c;

    if (hc->flags & (TN_H2_F_CLOSE | TN_H2_F_CLOSED))
        tn_client_arm(c, &zero_tv);
    else
        tn_client_arm(c, hc->nopen ? c->w->wp->tv_body : c->w->wp->tv_idle);
}

static void resume_streams(struct tn_h2down *hc);

/* Writes what the session has to send into the client's output. Inside
 * nghttp2's own calls it only notes that frames wait. */
static void h2_send(struct tn_h2down *hc)
{
    int rv;

    if (hc->flags & (TN_H2_F_BUSY_RECV | TN_H2_F_SENDING)) {
        hc->flags |= TN_H2_F_WANT_SEND;
        return;
    }
    if (hc->flags & (TN_H2_F_CLOSED | TN_H2_F_BROKEN))
        return;
    hc->flags &= ~TN_H2_F_QUEUED;
    hc->flags |= TN_H2_F_SENDING;
    do {
        hc->flags &= ~TN_H2_F_WANT_SEND;
        rv = nghttp2_session_send(hc->sess);
        if (rv) {
            tn_log(TN_LOG_WARN, "client %s: HTTP/2 send: %s", hc->c->peer_ip, nghttp2_strerror(rv));
            hc->flags |= TN_H2_F_CLOSE;
            break;
        }
        if ((hc->flags & TN_H2_F_RESUME) && !(hc->flags & TN_H2_F_OUT_FULL))
            resume_streams(hc);
    } while ((hc->flags & TN_H2_F_WANT_SEND) && !(hc->flags & TN_H2_F_OUT_FULL));
    hc->flags &= ~TN_H2_F_SENDING;
    tn_io_queue_flush(&hc->c->io);
    if (!nghttp2_session_want_read(hc->sess) && !nghttp2_session_want_write(hc->sess))
        hc->flags |= TN_H2_F_CLOSE; /* GOAWAY went out (ours or nghttp2's) */
    if ((hc->flags & TN_H2_F_GOAWAY) && !hc->nopen)
        hc->flags |= TN_H2_F_CLOSE;
    if (hc->flags & TN_H2_F_CLOSE)
        tn_client_arm(hc->c, &zero_tv); /* closed from the timer, outside any stream call */
}

/* The client connection goes to its lingering close: streams still
 * attached end (logged with why), the session stays idle until c is freed. */
static void close_conn(struct tn_h2down *hc, const char *why)
{
    struct tn_client *c = hc->c;
    struct tn_h2s *h, *next;

    if (hc->flags & TN_H2_F_CLOSED)
        return;
    /* the last frames (a GOAWAY) go out whatever the watermark */
    hc->flags |= TN_H2_F_CLOSED;
    hc->flags &= ~TN_H2_F_OUT_FULL;
    if (!(hc->flags & TN_H2_F_BROKEN))
        nghttp2_session_send(hc->sess);
    for (h = TAILQ_FIRST(&hc->streams); h; h = next) {
        next = TAILQ_NEXT(h, link);
        if (h->s) {
            struct tn_stream *s = h->s;

            h->s = NULL;
            tn_stream_detach(s, why);
        }
        release(h);
    }
    c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    tn_client_exchange_done(c);
}

/* The end of every call into the codec from the client's side. */
static void settle(struct tn_h2down *hc, const char *why)
{
    if ((hc->flags & TN_H2_F_CLOSE) && !(hc->flags & TN_H2_F_CLOSED))
        close_conn(hc, why);
    reap(hc);
}

/* Frames a response submitted go out once the callbacks libevent already
 * made ready have run (send_ev joins the tail of its active queue): the
 * responses of this connection's other streams that came in the same
 * loop iteration then share one nghttp2_session_send, one write and one
 * TLS record. Inside nghttp2's calls h2_send only notes it, as before. */
static void send_later(struct tn_h2down *hc)
{
    if (hc->flags & (TN_H2_F_BUSY_RECV | TN_H2_F_SENDING)) {
        hc->flags |= TN_H2_F_WANT_SEND;
        return;
    }
    if (hc->flags & TN_H2_F_QUEUED)
        return;
    hc->flags |= TN_H2_F_QUEUED;
    event_active(hc->send_ev, EV_WRITE, 1);
}

static void on_send_later(evutil_socket_t fd, short what, void *arg)
{
    struct tn_h2down *hc = arg;
    struct tn_ioq *q = hc->c->io.q; /* the settle below may free hc */

    (void)fd;
    (void)what;
    if (!(hc->flags & TN_H2_F_QUEUED))
        return; /* an h2_send came first and sent it all */
    h2_send(hc);
    settle(hc, "h2_goaway");
    tn_ioq_settle(q);
}

/* ---- the response (the stream's calls) ---- */

static ssize_t on_read_body(nghttp2_session *sess, int32_t id, uint8_t *buf, size_t len,
                            uint32_t *dflags, nghttp2_data_source *src, void *ud)
{
    struct tn_h2s *h = src->ptr;
    size_t avail = h->pend ? evbuffer_get_length(h->pend) : 0;

    (void)sess;
    (void)id;
    (void)buf;
    (void)ud;
    if (!avail) {
        if (h->flags & TN_H2S_F_EOF) {
            *dflags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        h->flags |= TN_H2S_F_DEFERRED;
        return NGHTTP2_ERR_DEFERRED;
    }
    if (avail > len)
        avail = len;
    *dflags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (avail == evbuffer_get_length(h->pend) && (h->flags & TN_H2S_F_EOF))
        *dflags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)avail;
}

/* Lowercase copy of a field name into the scratch space b (HTTP/2 field
 * names are lowercase); NULL when it is full. */
static uint8_t *lower(char *b, size_t cap, size_t *used, const char *name, size_t n)
{
    uint8_t *p;
    size_t i;

    if (*used + n > cap)
        return NULL;
    p = (uint8_t *)b + *used;
    for (i = 0; i < n; i++)
        p[i] = (uint8_t)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] | 0x20 : name[i]);
    *used += n;
    return p;
}

#define NV(nm, nl, v, vl)                                                                          \
    (nghttp2_nv)                                                                                   \
    {                                                                                              \
        (uint8_t *)(nm), (uint8_t *)(v), (nl), (vl), NGHTTP2_NV_FLAG_NONE                          \
    }

/* Connection-specific fields never go into an HTTP/2 response. */
static int conn_specific(const struct tn_field *f)
{
    if (f->flags & (TN_FIELD_F_HOP | TN_FIELD_F_FRAMING))
        return 1;
    switch (f->name_len) { /* one comparison per field, not six */
    case 2:
        return tn_strieq(f->name, 2, "te");
    case 7:
        return tn_strieq(f->name, 7, "upgrade");
    case 10:
        return tn_strieq(f->name, 10, "connection") || tn_strieq(f->name, 10, "keep-alive");
    case 16:
        return tn_strieq(f->name, 16, "proxy-connection");
    case 17:
        return tn_strieq(f->name, 17, "transfer-encoding");
    default:
        return 0;
    }
}

/* Builds the HEADERS of response m (interim or final) into nva; returns the
 * count, or -1 when the scratch space is too small. */
static int build_nv(struct tn_h2s *h, const struct tn_msg *m, nghttp2_nv *nva, char *status,
                    char *clen)
{
    struct tn_worker *w = h->hc->c->w;
    size_t used = 0;
    int n = 0, dated = 0;
    unsigned i;

    status[0] = (char)('0' + m->status / 100);
    status[1] = (char)('0' + m->status / 10 % 10);
    status[2] = (char)('0' + m->status % 10);
    nva[n++] = NV(":status", 7, status, 3);
    for (i = 0; i < m->nfields + m->nextra; i++) {
        const struct tn_field *f = i < m->nfields ? &m->fields[i] : &m->extra[i - m->nfields];
        uint8_t *name;

        if (i < m->nfields && conn_specific(f))
            continue;
        if (!(name = lower(w->scratch, w->scratch_len, &used, f->name, f->name_len)))
            return -1;
        dated |= f->name_len == 4 && !memcmp(name, "date", 4);
        nva[n++] = NV(name, f->name_len, f->value, f->value_len);
    }
    if (m->status < 200)
        return n;
    /* RFC 9110 7.6.3: Via names the protocol the response was received with */
    nva[n++] = NV("via", 3, "1.1 turnout", 11);
    if (!dated) {
        const char *date = tn_worker_http_date(w);

        nva[n++] = NV("date", 4, date, strlen(date));
    }
    if (m->body == TN_BODY_LENGTH) {
        size_t k = 0;
        char tmp[24];
        uint64_t v = m->content_length;

        do {
            tmp[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        for (i = 0; i < k; i++)
            clen[i] = tmp[k - 1 - i];
        nva[n++] = NV("content-length", 14, clen, k);
    }
    return n;
}

/* Our own error page on h's stream (nothing of a response went out). */
static void submit_error(struct tn_h2s *h, int status)
{
    struct tn_h2down *hc = h->hc;
    struct tn_worker *w = hc->c->w;
    nghttp2_data_provider prd = {.source.ptr = h, .read_callback = on_read_body};
    struct evbuffer_ptr at;
    char st[4], clen[24];
    nghttp2_nv nva[6];
    size_t blen;
    int k;

    if (!h->pend && !(h->pend = evbuffer_new())) {
        nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    /* the canned page of the HTTP/1 codec, its head dropped */
    tn_reply_error(h->pend, status, 0, tn_worker_http_date(w));
    at = evbuffer_search(h->pend, "\r\n\r\n", 4, NULL);
    if (at.pos >= 0)
        evbuffer_drain(h->pend, (size_t)at.pos + 4);
    blen = evbuffer_get_length(h->pend);
    st[0] = (char)('0' + status / 100);
    st[1] = (char)('0' + status / 10 % 10);
    st[2] = (char)('0' + status % 10);
    k = snprintf(clen, sizeof(clen), "%zu", blen);
    nva[0] = NV(":status", 7, st, 3);
    nva[1] = NV("content-type", 12, "text/plain", 10);
    nva[2] = NV("content-length", 14, clen, (size_t)k);
    nva[3] = NV("cache-control", 13, "no-store", 8);
    nva[4] = NV("date", 4, tn_worker_http_date(w), strlen(tn_worker_http_date(w)));
    h->flags |= TN_H2S_F_RESP | TN_H2S_F_EOF | TN_H2S_F_DROP_BODY;
    if (nghttp2_submit_response(hc->sess, h->id, nva, 5, &prd))
        nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
}

/* The stream is done with h: forgotten, freed once nghttp2 closed it too. */
static void detach(struct tn_h2s *h)
{
    h->s = NULL;
    if (h->flags & TN_H2S_F_CLOSED)
        release(h);
}

static int h2_head(struct tn_stream *s, const struct tn_msg *m)
{
    struct tn_h2s *h = s->down_ctx;
    struct tn_h2down *hc = h->hc;
    nghttp2_data_provider prd = {.source.ptr = h, .read_callback = on_read_body};
    size_t cap = m->nfields + m->nextra + MAX_NV_EXTRA;
    char status[4], clen[24];
    nghttp2_nv nv_stack[NV_STACK], *nva;
    int n, rv;

    if (h->flags & TN_H2S_F_CLOSED)
        return TN_OK; /* the client reset it: the stream hears it from abort */
    if (m->status < 200 && m->status != 103 && !(m->status == 100 && (h->flags & TN_H2S_F_EXPECT)))
        return TN_OK; /* other interim responses mean nothing to an HTTP/2 client */
    nva = cap <= NV_STACK ? nv_stack : malloc(cap * sizeof(*nva));
    if (!nva || (n = build_nv(h, m, nva, status, clen)) < 0) {
        if (nva != nv_stack)
            free(nva);
        detach(h);
        tn_stream_ops.abort(s, 502, "response_head_too_large");
        submit_error(h, 502);
        h2_send(hc);
        return TN_ERR;
    }
    if (m->status < 200) {
        rv = nghttp2_submit_headers(hc->sess, NGHTTP2_FLAG_NONE, h->id, NULL, nva, (size_t)n, NULL);
    } else {
        h->flags |= TN_H2S_F_RESP;
        if (m->body == TN_BODY_NONE || (m->body == TN_BODY_LENGTH && !m->content_length))
            h->flags |= TN_H2S_F_EOF;
        if (m->body == TN_BODY_LENGTH) { /* END_STREAM on the last DATA, not an empty one */
            h->flags |= TN_H2S_F_RESP_LEN;
            h->resp_left = m->content_length;
        }
        if (!h->pend && !(h->flags & TN_H2S_F_EOF) && !(h->pend = evbuffer_new()))
            rv = NGHTTP2_ERR_NOMEM;
        else
            rv = nghttp2_submit_response(hc->sess, h->id, nva, (size_t)n,
                                         (h->flags & TN_H2S_F_EOF) ? NULL : &prd);
    }
    if (nva != nv_stack)
        free(nva);
    if (rv) {
        detach(h);
        tn_stream_ops.abort(s, 0, "h2_submit_failed");
        nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
        h2_send(hc);
        return TN_ERR;
    }
    s->bytes_out += (uint64_t)n * 8 + 9; /* about what HPACK makes of it */
    send_later(hc);
    return TN_OK;
}

static int h2_data(struct tn_stream *s, struct evbuffer *src, size_t n)
{
    struct tn_h2s *h = s->down_ctx;
    struct tn_h2down *hc = h->hc;

    if (!h->pend || (h->flags & TN_H2S_F_CLOSED)) {
        evbuffer_drain(src, n);
        return TN_OK;
    }
    evbuffer_remove_buffer(src, h->pend, n);
    s->bytes_out += n + 9 * ((n + 16383) / 16384);
    if (h->flags & TN_H2S_F_RESP_LEN) {
        h->resp_left = n < h->resp_left ? h->resp_left - n : 0;
        if (!h->resp_left)
            h->flags |= TN_H2S_F_EOF;
    }
    if (h->flags & TN_H2S_F_DEFERRED) {
        h->flags &= ~TN_H2S_F_DEFERRED;
        nghttp2_session_resume_data(hc->sess, h->id);
    }
    if (evbuffer_get_length(h->pend) < PEND_HIGH) {
        send_later(hc);
        return TN_OK;
    }
    if (!(h->flags & TN_H2S_F_OUT_PAUSED)) {
        h->flags |= TN_H2S_F_OUT_PAUSED; /* the client's window or our output is full */
        tn_stream_ops.pause(s);
    }
    h2_send(hc); /* a full buffer goes out at once */
    return TN_OK;
}

static int h2_end(struct tn_stream *s)
{
    struct tn_h2s *h = s->down_ctx;
    struct tn_h2down *hc = h->hc;

    h->flags |= TN_H2S_F_EOF;
    h->flags &= ~TN_H2S_F_OUT_PAUSED;
    if (h->flags & TN_H2S_F_DEFERRED) {
        h->flags &= ~TN_H2S_F_DEFERRED;
        nghttp2_session_resume_data(hc->sess, h->id);
    }
    detach(h);
    send_later(hc);
    return TN_OK;
}

static void h2_abort(struct tn_stream *s, int status, const char *why)
{
    struct tn_h2s *h = s->down_ctx;
    struct tn_h2down *hc = h->hc;

    (void)why;
    detach(h);
    if (h->flags & (TN_H2S_F_CLOSED | TN_H2S_F_DEAD))
        return;
    if (status > 0 && !(h->flags & TN_H2S_F_RESP)) {
        submit_error(h, status);
        s->bytes_out += 64;
    } else {
        h->flags |= TN_H2S_F_DROP_BODY;
        nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_INTERNAL_ERROR);
    }
    h2_send(hc);
}

/* The upstream cannot take more request bytes: this stream's DATA is no
 * longer consumed, so its window closes and the client stops. */
static void h2_pause(struct tn_stream *s)
{
    struct tn_h2s *h = s->down_ctx;

    h->flags |= TN_H2S_F_REQ_PAUSED;
}

static void h2_resume(struct tn_stream *s)
{
    struct tn_h2s *h = s->down_ctx;
    struct tn_h2down *hc = h->hc;

    h->flags &= ~TN_H2S_F_REQ_PAUSED;
    if (h->unconsumed && !(h->flags & TN_H2S_F_CLOSED)) {
        nghttp2_session_consume_stream(hc->sess, h->id, h->unconsumed);
        h->unconsumed = 0;
        h2_send(hc);
    }
}

static const struct tn_stream_ops h2_ops = {
    .head = h2_head,
    .data = h2_data,
    .end = h2_end,
    .abort = h2_abort,
    .pause = h2_pause,
    .resume = h2_resume,
};

/* Streams whose pending body drained below PEND_LOW get upstream bytes
 * again (after nghttp2_session_send: never from inside it). */
static void resume_streams(struct tn_h2down *hc)
{
    struct tn_h2s *h, *next;

    hc->flags &= ~TN_H2_F_RESUME;
    for (h = TAILQ_FIRST(&hc->streams); h; h = next) {
        next = TAILQ_NEXT(h, link); /* a call below may release h, never another */
        if (!(h->flags & TN_H2S_F_OUT_PAUSED) || !h->pend ||
            evbuffer_get_length(h->pend) > PEND_LOW)
            continue;
        h->flags &= ~TN_H2S_F_OUT_PAUSED;
        if (h->s)
            tn_stream_ops.resume(h->s); /* may end it: h stays listed until settle */
    }
}

/* ---- output callbacks ---- */

static ssize_t out_full(struct tn_h2down *hc)
{
    hc->flags |= TN_H2_F_OUT_FULL;
    tn_io_notify_low(&hc->c->io, LOW_WATER);
    return NGHTTP2_ERR_WOULDBLOCK;
}

static int output_full(struct tn_h2down *hc)
{
    return !(hc->flags & TN_H2_F_CLOSED) && evbuffer_get_length(hc->c->io.out) >= HIGH_WATER;
}

static ssize_t on_send(nghttp2_session *sess, const uint8_t *data, size_t len, int flags, void *ud)
{
    struct tn_h2down *hc = ud;

    (void)sess;
    (void)flags;
    if (output_full(hc))
        return out_full(hc);
    if (evbuffer_add(hc->c->io.out, data, len))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)len;
}

static int on_send_data(nghttp2_session *sess, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h = src->ptr;
    struct evbuffer *out = hc->c->io.out;

    (void)sess;
    (void)frame; /* never padded: we set no padding callback */
    if (output_full(hc))
        return (int)out_full(hc);
    evbuffer_add(out, framehd, 9);
    if (length)
        evbuffer_remove_buffer(h->pend, out, length);
    /* the client owes window updates for what we send: they cost nothing */
    hc->ctrl.tokens += 2.0;
    if (hc->ctrl.tokens > CTRL_BURST)
        hc->ctrl.tokens = CTRL_BURST;
    if ((h->flags & TN_H2S_F_OUT_PAUSED) && evbuffer_get_length(h->pend) <= PEND_LOW)
        hc->flags |= TN_H2_F_RESUME;
    return 0;
}

static int on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h;

    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM) ||
        (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS))
        return 0;
    h = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    if (!h)
        return 0;
    h->flags |= TN_H2S_F_END_SENT;
    /* answered before the request ended: the client may stop sending
     * (RFC 9113 8.1) */
    if (!(h->flags & TN_H2S_F_REQ_DONE))
        nghttp2_submit_rst_stream(hc->sess, NGHTTP2_FLAG_NONE, h->id, NGHTTP2_NO_ERROR);
    return 0;
}

/* ---- the request ---- */

/* Refuses the request at its head with status: the rest of the block is
 * decoded (HPACK state) but not kept. */
static int refuse(struct tn_h2s *h, int status, const char *why)
{
    if (!h->err) {
        h->err = status;
        h->why = why;
    }
    return 0;
}

static char *keep(struct tn_h2down *hc, const uint8_t *p, size_t n, uint32_t *off)
{
    char *d;

    if (hc->hlen + n + 1 > hc->hcap)
        return NULL;
    d = hc->hbuf + hc->hlen;
    memcpy(d, p, n);
    d[n] = '\0';
    *off = (uint32_t)hc->hlen;
    hc->hlen += n + 1;
    return d;
}

static int name_is(const uint8_t *n, size_t nl, const char *lit)
{
    return nl == strlen(lit) && !memcmp(n, lit, nl);
}

/* n equals lit with some '-' written as '_' (a look-alike that CGI-style
 * applications would read as lit). */
static int lookalike(const uint8_t *n, size_t nl, const char *lit)
{
    size_t i;
    int under = 0;

    if (nl != strlen(lit))
        return 0;
    for (i = 0; i < nl; i++) {
        if (n[i] == '_' && lit[i] == '-')
            under = 1;
        else if (n[i] != (uint8_t)lit[i])
            return 0;
    }
    return under;
}

static int on_pseudo(struct tn_h2down *hc, struct tn_h2s *h, const uint8_t *name, size_t nl,
                     const uint8_t *value, size_t vl)
{
    uint32_t off;
    size_t i;

    if (name_is(name, nl, ":method")) {
        if (!keep(hc, value, vl, &off))
            return refuse(h, 431, "request_header_too_large");
        hc->method_off = off;
        hc->method_len = (uint32_t)vl;
    } else if (name_is(name, nl, ":path")) {
        for (i = 0; i < vl; i++)
            if (value[i] <= 0x20 || value[i] >= 0x7f)
                return refuse(h, 400, "bad_path");
        if (!keep(hc, value, vl, &off))
            return refuse(h, 431, "request_header_too_large");
        hc->path_off = off;
        hc->path_len = (uint32_t)vl;
    } else if (name_is(name, nl, ":authority")) {
        if (!keep(hc, value, vl, &off))
            return refuse(h, 431, "request_header_too_large");
        hc->auth_off = off;
        hc->auth_len = (uint32_t)vl;
    } /* :scheme: the stream's own scheme is what goes upstream */
    return 0;
}

/* The flags of a request field, by its (lowercase) name; -1: refused. */
static int classify(struct tn_h2down *hc, struct tn_h2s *h, const uint8_t *n, size_t nl,
                    const uint8_t *v, size_t vl)
{
    switch (nl) {
    case 2:
        return name_is(n, nl, "te") ? TN_FIELD_F_HOP : 0;
    case 4:
        return name_is(n, nl, "host") ? TN_FIELD_F_HOST : 0;
    case 6:
        if (name_is(n, nl, "cookie")) {
            hc->ncookies++;
            hc->cookie_len += (uint32_t)vl;
            return TN_FIELD_F_DROP; /* joined into one field at the end */
        }
        if (name_is(n, nl, "expect") && vl == 12 &&
            !strncasecmp((const char *)v, "100-continue", 12))
            h->flags |= TN_H2S_F_EXPECT;
        return 0;
    case 7:
        return name_is(n, nl, "trailer") ? TN_FIELD_F_HOP : 0;
    case 14:
        if (lookalike(n, nl, "content-length")) {
            refuse(h, 400, "Content_Length look-alike field");
            return -1;
        }
        return name_is(n, nl, "content-length") ? TN_FIELD_F_FRAMING : 0;
    case 13:
        return name_is(n, nl, "http2-settings") ? TN_FIELD_F_HOP : 0;
    case 15:
        if (name_is(n, nl, "x-forwarded-for"))
            return TN_FIELD_F_XFF;
        return lookalike(n, nl, "x-forwarded-for") ? TN_FIELD_F_HOP : 0;
    case 17:
        if (lookalike(n, nl, "transfer-encoding")) {
            refuse(h, 400, "Transfer_Encoding look-alike field");
            return -1;
        }
        if (name_is(n, nl, "x-forwarded-proto"))
            return TN_FIELD_F_XFP;
        return lookalike(n, nl, "x-forwarded-proto") ? TN_FIELD_F_HOP : 0;
    }
    return 0;
}

static int on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h = hc->hs;
    struct tn_field *f;
    uint32_t noff, voff;
    int fl;

    (void)sess;
    (void)flags;
    if (!h || frame->hd.stream_id != h->id)
        return 0;
    hc->hsize += nl + vl + 32;
    if (h->err || (h->flags & TN_H2S_F_TRAILERS))
        return 0;
    if (hc->hsize > hc->max_list)
        return refuse(h, 431, "request_header_too_large");
    if (name[0] == ':')
        return on_pseudo(hc, h, name, nl, value, vl);
    if (hc->nfields >= hc->maxfields)
        return refuse(h, 431, "too_many_header_fields");
    if ((fl = classify(hc, h, name, nl, value, vl)) < 0)
        return 0;
    if (fl & TN_FIELD_F_HOST) {
        hc->has_host = 1;
        if (hc->host_len)
            return refuse(h, 400, "duplicate_host");
    }
    if (!keep(hc, name, nl, &noff) || !keep(hc, value, vl, &voff))
        return refuse(h, 431, "request_header_too_large");
    if (fl & TN_FIELD_F_HOST) {
        hc->host_off = voff;
        hc->host_len = (uint32_t)vl ? (uint32_t)vl : 1;
    }
    f = &hc->fields[hc->nfields++];
    f->name = (const char *)(uintptr_t)noff; /* offsets until the block is complete */
    f->value = (const char *)(uintptr_t)voff;
    f->name_len = (uint32_t)nl;
    f->value_len = (uint32_t)vl;
    f->flags = (uint32_t)fl;
    return 0;
}

static int on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h;

    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    hc->hlen = 0;
    hc->nfields = 0;
    hc->hsize = 0;
    hc->method_len = hc->path_len = hc->auth_len = hc->host_len = 0;
    hc->ncookies = hc->cookie_len = 0;
    hc->has_host = 0;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) { /* trailers */
        h = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
        if (h)
            h->flags |= TN_H2S_F_TRAILERS;
        hc->hs = h;
        return 0;
    }
    h = calloc(1, sizeof(*h));
    if (!h)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
    h->hc = hc;
    h->id = frame->hd.stream_id;
    h->start_us = tn_now_us();
    TAILQ_INSERT_TAIL(&hc->streams, h, link);
    nghttp2_session_set_stream_user_data(sess, h->id, h);
    if (!hc->nopen++)
        tn_client_arm(hc->c, hc->c->w->wp->tv_body);
    hc->hs = h;
    return 0;
}

static const char *scheme_of(struct tn_h2down *hc)
{
    return hc->c->scheme;
}

/* Answers a request refused at its head and logs it on a stream of its
 * own, as the HTTP/1 codec does. */
static void answer_refused(struct tn_h2down *hc, struct tn_h2s *h)
{
    struct tn_stream *s =
        tn_stream_new(hc->c->w, NULL, NULL, hc->c->peer_ip, scheme_of(hc), h->start_us);

    submit_error(h, h->err);
    if (s) {
        s->proto = "HTTP/2";
        tn_stream_reject(s, h->err, h->why, h->start_us, 64);
    }
}

/* Joins the cookie crumbs into one field, "; "-separated (RFC 9113
 * 8.2.3), at the end of the block's strings. */
static void join_cookies(struct tn_h2down *hc)
{
    struct tn_field *out;
    uint32_t i, voff;
    char *d;

    if (hc->ncookies < 1 || hc->hlen + 7 + hc->cookie_len + 2 * hc->ncookies + 1 > hc->hcap)
        return;
    memcpy(hc->hbuf + hc->hlen, "cookie", 7);
    out = &hc->fields[hc->nfields++];
    out->name = (const char *)(uintptr_t)hc->hlen;
    out->name_len = 6;
    out->flags = 0;
    hc->hlen += 7;
    voff = (uint32_t)hc->hlen;
    d = hc->hbuf + voff;
    for (i = 0; i + 1 < hc->nfields; i++) {
        struct tn_field *f = &hc->fields[i];

        if (!(f->flags & TN_FIELD_F_DROP) || f->name_len != 6 ||
            memcmp(hc->hbuf + (uintptr_t)f->name, "cookie", 6))
            continue;
        if (d != hc->hbuf + voff) {
            memcpy(d, "; ", 2);
            d += 2;
        }
        memcpy(d, hc->hbuf + (uintptr_t)f->value, f->value_len);
        d += f->value_len;
    }
    out->value = (const char *)(uintptr_t)voff;
    out->value_len = (uint32_t)(d - (hc->hbuf + voff));
    *d++ = '\0';
    hc->hlen = (size_t)(d - hc->hbuf);
}

static uint64_t parse_u64(const char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(p[i] - '0'); /* nghttp2 checked the digits */
    return v;
}

static enum tn_h1_method method_of(const char *m, size_t n)
{
    static const struct {
        const char *s;
        enum tn_h1_method m;
    } t[] = {{"GET", TN_H1_M_GET},     {"HEAD", TN_H1_M_HEAD},     {"POST", TN_H1_M_POST},
             {"PUT", TN_H1_M_PUT},     {"DELETE", TN_H1_M_DELETE}, {"OPTIONS", TN_H1_M_OPTIONS},
             {"PATCH", TN_H1_M_PATCH}, {"TRACE", TN_H1_M_TRACE},   {"CONNECT", TN_H1_M_CONNECT}};
    unsigned i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (strlen(t[i].s) == n && !memcmp(t[i].s, m, n))
            return t[i].m;
    return TN_H1_M_OTHER;
}

/* The request's body is complete. */
static void request_end(struct tn_h2s *h)
{
    h->flags |= TN_H2S_F_REQ_DONE;
    if (h->s)
        tn_stream_ops.end(h->s);
}

/* A complete request header block: RFC 9113 8.3 to the neutral message,
 * then a stream. */
static void request_head(struct tn_h2down *hc, struct tn_h2s *h, int end)
{
    struct tn_client *c = hc->c;
    const char *hb = hc->hbuf;
    struct tn_stream *s;
    struct tn_msg m;
    uint32_t i;

    hc->hs = NULL;
    if (!h->err && hc->method_len == 7 && !memcmp(hb + hc->method_off, "CONNECT", 7))
        refuse(h, 501, "CONNECT is not supported");
    if (!h->err && !hc->auth_len && !hc->has_host)
        refuse(h, 400, "no_authority");
    if (!h->err && hc->auth_len && hc->has_host &&
        (hc->host_len != hc->auth_len ||
         strncasecmp(hb + hc->host_off, hb + hc->auth_off, hc->auth_len)))
        refuse(h, 400, "host_authority_mismatch");
    if (h->err) {
        answer_refused(hc, h);
        if (end)
            h->flags |= TN_H2S_F_REQ_DONE;
        return;
    }
    join_cookies(hc);
    memset(&m, 0, sizeof(m));
    for (i = 0; i < hc->nfields; i++) { /* offsets to pointers */
        hc->fields[i].name = hb + (uintptr_t)hc->fields[i].name;
        hc->fields[i].value = hb + (uintptr_t)hc->fields[i].value;
        if ((hc->fields[i].flags & TN_FIELD_F_FRAMING) && !end) {
            m.body = TN_BODY_LENGTH;
            m.content_length = parse_u64(hc->fields[i].value, hc->fields[i].value_len);
        }
    }
    if (end)
        m.body = TN_BODY_NONE;
    else if (m.body != TN_BODY_LENGTH)
        m.body = TN_BODY_STREAM;
    m.method_str = hb + hc->method_off;
    m.method_len = hc->method_len;
    m.method = method_of(m.method_str, m.method_len);
    m.target = hb + hc->path_off;
    m.target_len = hc->path_len;
    m.authority = hc->auth_len ? hb + hc->auth_off : hb + hc->host_off;
    m.authority_len = hc->auth_len ? hc->auth_len : hc->host_len;
    m.fields = hc->fields;
    m.nfields = hc->nfields;
    if (h->flags & TN_H2S_F_EXPECT)
        m.flags |= TN_MSG_F_EXPECT_CONTINUE;
    m.base = hb;
    m.base_len = hc->hlen;
    s = tn_stream_new(c->w, &h2_ops, h, c->peer_ip, scheme_of(hc), h->start_us);
    if (!s) {
        h->err = 503;
        h->why = "out_of_memory";
        submit_error(h, 503);
        return;
    }
    h->s = s;
    h->flags |= TN_H2S_F_HEAD;
    s->proto = "HTTP/2";
    s->bytes_in = hc->hsize;
    tn_stream_ops.head(s, &m); /* copies the head; may answer at once */
    if (end)
        request_end(h);
}

static int on_data_chunk(nghttp2_session *sess, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h = nghttp2_session_get_stream_user_data(sess, id);
    struct evbuffer *tmp = hc->c->w->body_tmp;

    (void)flags;
    /* the connection window is given back at once: one slow stream must
     * not stall the others; each stream's own window is the backpressure */
    nghttp2_session_consume_connection(sess, len);
    if (!h || !h->s || (h->flags & TN_H2S_F_DROP_BODY)) {
        nghttp2_session_consume_stream(sess, id, len); /* nobody wants it */
        return 0;
    }
    h->body_period += len;
    h->s->bytes_in += len;
    evbuffer_add(tmp, data, len);
    tn_stream_ops.data(h->s, tmp, len);
    evbuffer_drain(tmp, evbuffer_get_length(tmp));
    if (!h->s || !(h->flags & TN_H2S_F_REQ_PAUSED))
        nghttp2_session_consume_stream(sess, id, len);
    else
        h->unconsumed += len; /* given back on resume: the window is the backpressure */
    return 0;
}

static int on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h = nghttp2_session_get_stream_user_data(sess, frame->hd.stream_id);
    int end = !!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);

    if (hc->flags & TN_H2_F_CALM)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!h)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            request_head(hc, h, end);
        } else {
            hc->hs = NULL;
            if (end)
                request_end(h);
        }
        break;
    case NGHTTP2_DATA:
        if (!frame->hd.length && !end)
            ctrl_frame(hc, "empty DATA flood");
        if (h && end)
            request_end(h);
        break;
    case NGHTTP2_RST_STREAM:
        if (h && !(h->flags & TN_H2S_F_END_SENT))
            h->flags |= TN_H2S_F_CLIENT_RST;
        if (!bucket_take(&hc->resets, RESET_BURST, RESET_RATE))
            calm(hc, "rapid reset");
        break;
    case NGHTTP2_SETTINGS:
        ctrl_frame(hc, "SETTINGS flood");
        break;
    case NGHTTP2_PING:
        ctrl_frame(hc, "PING flood");
        break;
    case NGHTTP2_PRIORITY:
        ctrl_frame(hc, "PRIORITY flood");
        break;
    case NGHTTP2_WINDOW_UPDATE:
        ctrl_frame(hc, "WINDOW_UPDATE flood");
        break;
    default:
        break;
    }
    return 0;
}

/* A header block far beyond what we announced (nghttp2 also caps the
 * CONTINUATION frames of one block): the peer is flooding. */
static int on_begin_frame(nghttp2_session *sess, const nghttp2_frame_hd *hd, void *ud)
{
    struct tn_h2down *hc = ud;

    (void)sess;
    if (hd->type == NGHTTP2_CONTINUATION && hc->hsize > 2 * hc->max_list + 65536)
        calm(hc, "CONTINUATION flood");
    return 0;
}

static int on_stream_close(nghttp2_session *sess, int32_t id, uint32_t code, void *ud)
{
    struct tn_h2down *hc = ud;
    struct tn_h2s *h = nghttp2_session_get_stream_user_data(sess, id);

    if (!h)
        return 0;
    nghttp2_session_set_stream_user_data(sess, id, NULL);
    h->flags |= TN_H2S_F_CLOSED;
    if (hc->hs == h)
        hc->hs = NULL;
    if (hc->nopen && !--hc->nopen && !(hc->flags & (TN_H2_F_CLOSE | TN_H2_F_CLOSED)))
        tn_client_arm(hc->c, hc->c->w->wp->tv_idle);
    if (h->s && !((h->flags & TN_H2S_F_END_SENT) && code == NGHTTP2_NO_ERROR)) {
        /* the client reset it or the session ended it before its end */
        struct tn_stream *s = h->s;

        h->s = NULL;
        tn_stream_ops.abort(s, 0,
                            (h->flags & TN_H2S_F_CLIENT_RST) ? "client_reset" : "h2_stream_closed");
    }
    if (!h->s)
        release(h);
    /* else: its response is out; the stream's end call forgets it */
    return 0;
}

/* ---- public ---- */

int tn_h2down_sniff(struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in), n = len < TN_H2_PREFACE_LEN ? len : TN_H2_PREFACE_LEN;
    char buf[TN_H2_PREFACE_LEN];

    if (evbuffer_copyout(in, buf, n) != (ev_ssize_t)n || memcmp(buf, TN_H2_PREFACE, n))
        return TN_ERR;
    return n == TN_H2_PREFACE_LEN ? TN_OK : TN_AGAIN;
}

static int new_session(struct tn_h2down *hc)
{
    const struct tn_conf *conf = hc->c->w->wp->plan->conf;
    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    nghttp2_settings_entry iv[3];
    int rv;

    if (nghttp2_session_callbacks_new(&cb))
        return TN_ERR;
    if (nghttp2_option_new(&opt)) {
        nghttp2_session_callbacks_del(cb);
        return TN_ERR;
    }
    nghttp2_session_callbacks_set_send_callback(cb, on_send);
    nghttp2_session_callbacks_set_send_data_callback(cb, on_send_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    /* request DATA is given back only as the upstream takes it */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_no_closed_streams(opt, 1);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, 8);
    rv = nghttp2_session_server_new2(&hc->sess, cb, hc, opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_option_del(opt);
    if (rv)
        return TN_ERR;
    iv[0] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                     conf->http2.max_concurrent_streams};
    iv[1] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW};
    iv[2] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)hc->max_list};
    if (nghttp2_submit_settings(hc->sess, NGHTTP2_FLAG_NONE, iv, 3) ||
        nghttp2_session_set_local_window_size(hc->sess, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW))
        return TN_ERR;
    return TN_OK;
}

int tn_h2down_start(struct tn_client *c)
{
    const struct tn_conf *conf = c->w->wp->plan->conf;
    struct tn_h2down *hc = calloc(1, sizeof(*hc));

    if (!hc)
        return TN_ERR;
    hc->c = c;
    TAILQ_INIT(&hc->streams);
    TAILQ_INIT(&hc->dead);
    hc->max_list = conf->http2.max_header_list_size ? conf->http2.max_header_list_size
                                                    : conf->limits.header_size;
    if (hc->max_list > (1u << 20))
        hc->max_list = 1u << 20; /* the decoding space is twice this per connection */
    hc->hcap = 2 * hc->max_list + 64;
    hc->maxfields = conf->limits.headers + 1;
    hc->hbuf = malloc(hc->hcap);
    hc->fields = malloc(hc->maxfields * sizeof(*hc->fields));
    hc->send_ev = event_new(c->w->base, -1, 0, on_send_later, hc);
    if (!hc->hbuf || !hc->fields || !hc->send_ev || new_session(hc) != TN_OK) {
        if (hc->sess)
            nghttp2_session_del(hc->sess);
        if (hc->send_ev)
            event_free(hc->send_ev);
        free(hc->hbuf);
        free(hc->fields);
        free(hc);
        return TN_ERR;
    }
    c->h2 = hc;
    tn_client_set_state(c, TN_CLIENT_H2);
    tn_client_arm(c, c->w->wp->tv_idle);
    tn_h2down_on_read(c);
    return TN_OK;
}

/* The session failed on the client's input: say why with a GOAWAY. */
static void recv_failed(struct tn_h2down *hc, int rv)
{
    uint32_t code = NGHTTP2_INTERNAL_ERROR;

    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
        code = NGHTTP2_ENHANCE_YOUR_CALM;
        tn_log(TN_LOG_WARN, "client %s: HTTP/2 %s: GOAWAY ENHANCE_YOUR_CALM", hc->c->peer_ip,
               nghttp2_strerror(rv));
    } else if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
        code = NGHTTP2_PROTOCOL_ERROR;
    }
    raw_goaway(hc, code);
    /* the session is unusable: nothing more is sent from it */
    hc->flags |= TN_H2_F_BROKEN | TN_H2_F_CLOSE;
}

void tn_h2down_on_read(struct tn_client *c)
{
    struct tn_h2down *hc = c->h2;
    struct evbuffer *in = c->io.in;

    while (evbuffer_get_length(in) && !(hc->flags & (TN_H2_F_CLOSE | TN_H2_F_CLOSED))) {
        struct evbuffer_iovec v;
        ssize_t rv;

        if (hc->flags & TN_H2_F_OUT_FULL) {
            tn_io_read(&c->io, 0); /* on_drained reads again */
            break;
        }
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        hc->flags |= TN_H2_F_BUSY_RECV;
        rv = nghttp2_session_mem_recv(hc->sess, v.iov_base, v.iov_len);
        hc->flags &= ~TN_H2_F_BUSY_RECV;
        if (rv < 0) {
            recv_failed(hc, (int)rv);
            break;
        }
        evbuffer_drain(in, (size_t)rv);
        h2_send(hc);
    }
    if (hc->flags & TN_H2_F_WANT_SEND)
        h2_send(hc);
    if (hc->flags & TN_H2_F_CALM) /* closed at once: nothing more is read from it */
        hc->flags |= TN_H2_F_CLOSE;
    settle(hc, (hc->flags & TN_H2_F_CALM) ? "h2_enhance_your_calm" : "h2_goaway");
}

void tn_h2down_on_drained(struct tn_client *c)
{
    struct tn_h2down *hc = c->h2;

    if (!(hc->flags & TN_H2_F_OUT_FULL))
        return;
    hc->flags &= ~TN_H2_F_OUT_FULL;
    tn_io_read(&c->io, 1);
    h2_send(hc);
    if (evbuffer_get_length(c->io.in))
        tn_io_kick(&c->io);
    settle(hc, "h2_goaway");
}

void tn_h2down_on_eof(struct tn_client *c)
{
    struct tn_h2down *hc = c->h2;

    tn_h2down_on_read(c); /* frames still buffered */
    if (c->flags & TN_CLIENT_F_DEAD)
        return;
    hc->flags |= TN_H2_F_CLOSE;
    settle(hc, "client_closed");
    tn_client_kill(c);
}

/* A client_body period passed with streams open: requests whose body
 * stalled (and that we did not stall ourselves) get 408, and a header block
 * still incomplete since the last period closes the connection. */
static void body_tick(struct tn_h2down *hc)
{
    struct tn_h2s *h, *next;

    if (hc->hs && hc->hs_seen == hc->hs->id) {
        nghttp2_session_terminate_session(hc->sess, NGHTTP2_PROTOCOL_ERROR);
        h2_send(hc);
        hc->flags |= TN_H2_F_CLOSE;
        return;
    }
    hc->hs_seen = hc->hs ? hc->hs->id : 0;
    for (h = TAILQ_FIRST(&hc->streams); h; h = next) {
        struct tn_stream *s = h->s;

        next = TAILQ_NEXT(h, link);
        if (!s || (h->flags & (TN_H2S_F_REQ_DONE | TN_H2S_F_REQ_PAUSED | TN_H2S_F_RESP)) ||
            !(h->flags & TN_H2S_F_HEAD))
            continue;
        if (h->body_period < BODY_MIN_PER_PERIOD) {
            h->s = NULL;
            tn_stream_ops.abort(s, 408, "client_body_timeout");
            submit_error(h, 408);
            continue;
        }
        h->body_period = 0;
    }
    h2_send(hc);
}

void tn_h2down_on_timer(struct tn_client *c)
{
    struct tn_h2down *hc = c->h2;

    if (!(hc->flags & (TN_H2_F_CLOSE | TN_H2_F_CLOSED))) {
        if (!hc->nopen) {
            /* idle: a graceful GOAWAY, then close */
            nghttp2_submit_goaway(hc->sess, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(hc->sess),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            h2_send(hc);
            hc->flags |= TN_H2_F_CLOSE;
        } else {
            body_tick(hc);
        }
    }
    if (!(hc->flags & (TN_H2_F_CLOSE | TN_H2_F_CLOSED)))
        arm_timer(hc);
    settle(hc, "h2_goaway");
}

void tn_h2down_drain(struct tn_client *c)
{
    struct tn_h2down *hc = c->h2;

    if (hc->flags & (TN_H2_F_GOAWAY | TN_H2_F_CLOSE | TN_H2_F_CLOSED))
        return;
    hc->flags |= TN_H2_F_GOAWAY;
    nghttp2_submit_goaway(hc->sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(hc->sess), NGHTTP2_NO_ERROR, NULL,
                          0);
    h2_send(hc);
    settle(hc, "h2_goaway");
}

void tn_h2down_free(struct tn_client *c, const char *why)
{
    struct tn_h2down *hc = c->h2;
    struct tn_h2s *h;

    if (!hc)
        return;
    while ((h = TAILQ_FIRST(&hc->streams)) != NULL) {
        if (h->s) {
            struct tn_stream *s = h->s;

            h->s = NULL;
            tn_stream_detach(s, why);
        }
        release(h);
    }
    reap(hc);
    event_free(hc->send_ev); /* also when it is active: it never runs */
    nghttp2_session_del(hc->sess);
    free(hc->hbuf);
    free(hc->fields);
    free(hc);
    c->h2 = NULL;
}
