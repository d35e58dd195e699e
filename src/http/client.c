/* Downstream HTTP/1.1 connections. Reads and validates request heads,
 * answers errors, runs keep-alive and pipelining (one exchange at a time;
 * later requests wait in the input buffer), enforces the client timeouts
 * and closes with a short lingering phase so an error page is read before
 * the reset. The proxying itself is stream.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnout/accesslog.h"
#include "turnout/client.h"
#include "turnout/common.h"
#include "turnout/h1.h"
#include "turnout/io.h"
#include "turnout/log.h"
#include "turnout/pool.h"
#include "turnout/reply.h"
#include "turnout/route.h"
#include "turnout/stream.h"
#include "turnout/worker.h"

#define READ_HIGH (256u << 10) /* client input kept at most (plus one read) */
#define LINGER_MS 1000         /* how long a closing connection's input is drained */

static const char *const state_names[] = {
#define TN_X_NAME(s) #s,
    TN_CLIENT_STATES(TN_X_NAME)
#undef TN_X_NAME
};

#define BIT(s) (1u << TN_CLIENT_##s)
/* Legal next states for each state (staying put is always legal). */
static const unsigned legal_next[] = {
    [TN_CLIENT_IDLE] = BIT(REQ_HEAD) | BIT(CLOSING),
    [TN_CLIENT_REQ_HEAD] = BIT(CONNECT) | BIT(REQ_BODY) | BIT(WAIT_RESP) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_CONNECT] = BIT(REQ_BODY) | BIT(WAIT_RESP) | BIT(RESP) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_REQ_BODY] = BIT(CONNECT) | BIT(WAIT_RESP) | BIT(RESP) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_WAIT_RESP] = BIT(CONNECT) | BIT(RESP) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_RESP] = BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_CLOSING] = 0,
};
#undef BIT

static const struct timeval linger_tv = { LINGER_MS / 1000, (LINGER_MS % 1000) * 1000 };

const char *tn_client_state_name(enum tn_client_state s)
{
    return state_names[s];
}

void tn_client_set_state(struct tn_client *c, enum tn_client_state s)
{
    TN_BUG_ON(s != c->state && !(legal_next[c->state] & (1u << s)));
    c->state = s;
}

void tn_client_arm(struct tn_client *c, const struct timeval *d)
{
    evtimer_add(c->timer, d);
}

static void mark_dead(struct tn_client *c)
{
    c->flags |= TN_CLIENT_F_DEAD;
}

static void reset_exchange(struct tn_client *c)
{
    memset(&c->req, 0, sizeof(c->req));
    memset(&c->dec, 0, sizeof(c->dec));
    c->dec.route = c->dec.backend = -1;
    c->dec.key_source = TN_STICKY_NONE;
    memset(&c->scan, 0, sizeof(c->scan));
    memset(&c->resp_scan, 0, sizeof(c->resp_scan));
    memset(&c->log, 0, sizeof(c->log));
    c->server = -1;
    c->req_left = c->resp_left = c->body_period = 0;
    c->resp_status = 0;
    c->resp_to_http10 = 0;
    c->interim = 0;
    c->flags &= TN_CLIENT_F_DEAD | TN_CLIENT_F_EOF | TN_CLIENT_F_CLOSE_AFTER | TN_CLIENT_F_READ_OFF;
}

/* Flushes what is queued (a slow reader gets client_idle for it), then
 * half-closes and drains the input for a moment so the peer reads our last
 * response instead of a reset. */
static void start_closing(struct tn_client *c)
{
    tn_client_set_state(c, TN_CLIENT_CLOSING);
    tn_io_read(&c->io, 1);
    evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
    tn_io_notify_low(&c->io, 0); /* on_write: flushed, now half-close */
    tn_client_arm(c, c->w->wp->tv_idle);
}

static void read_head(struct tn_client *c);

void tn_client_exchange_done(struct tn_client *c)
{
    struct tn_worker *w = c->w;

    if (c->log.status)
        tn_accesslog_write(w->log, c);
    if (c->up)
        tn_stream_release_upstream(c, 0);
    if (c->wp) {
        tn_wplan_release(w, c->wp);
        c->wp = NULL;
    }
    /* both ways out re-arm c->timer, which replaces whatever it was set to */
    if ((c->flags & (TN_CLIENT_F_CLOSE_AFTER | TN_CLIENT_F_EOF)) || w->draining) {
        reset_exchange(c);
        start_closing(c);
        return;
    }
    reset_exchange(c);
    tn_client_set_state(c, TN_CLIENT_IDLE);
    if (c->flags & TN_CLIENT_F_READ_OFF) {
        c->flags &= ~TN_CLIENT_F_READ_OFF;
        tn_io_read(&c->io, 1);
    }
    tn_client_arm(c, w->wp->tv_idle);
    if (evbuffer_get_length(c->io.in))
        tn_io_kick(&c->io); /* a pipelined request: parse it from a fresh callback */
}

void tn_client_error(struct tn_client *c, int status, const char *reason, int close_after)
{
    struct evbuffer *out = c->io.out;

    if (close_after || c->w->draining)
        c->flags |= TN_CLIENT_F_CLOSE_AFTER;
    c->log.bytes_out += tn_reply_error(out, status, !!(c->flags & TN_CLIENT_F_CLOSE_AFTER),
                                      tn_worker_http_date(c->w));
    c->log.status = status;
    c->log.reason = reason;
    c->flags |= TN_CLIENT_F_RESP_SENT;
    if (!c->log.start_us)
        c->log.start_us = tn_now_us();
    tn_client_exchange_done(c);
}

void tn_client_abort(struct tn_client *c, const char *reason)
{
    if (!c->log.status)
        c->log.status = c->resp_status;
    c->log.reason = reason;
    if (c->log.status || c->req.method_str)
        tn_accesslog_write(c->w->log, c);
    c->log.status = 0;
    /* an abortive close: the client must not take a cut body for a whole one */
    tn_io_reset_on_close(&c->io);
    mark_dead(c);
}

void tn_client_resume_read(struct tn_client *c)
{
    c->flags &= ~TN_CLIENT_F_REQ_PAUSED;
    tn_io_read(&c->io, 1);
}

/* Ensures c->head can hold n bytes. */
static int head_reserve(struct tn_client *c, size_t n)
{
    char *h;

    if (n <= c->head_cap)
        return TN_OK;
    h = realloc(c->head, n);
    if (!h)
        return TN_ERR;
    c->head = h;
    c->head_cap = n;
    return TN_OK;
}

static void read_head(struct tn_client *c)
{
    struct tn_worker *w = c->w;
    const struct tn_conf_limits *lm = &w->wp->plan->conf->limits;
    struct tn_h1_limits lim = { lm->header_size, lm->uri, lm->headers };
    struct evbuffer *in = c->io.in;
    size_t len = evbuffer_get_length(in), n, head_len = 0;
    const char *why = NULL;
    int status = 400, rc;
    char *p;

    if (!len)
        return;
    if (c->state == TN_CLIENT_IDLE) {
        tn_client_set_state(c, TN_CLIENT_REQ_HEAD);
        c->log.start_us = tn_now_us();
    }
    n = len < lim.max_head + 1 ? len : lim.max_head + 1;
    p = (char *)evbuffer_pullup(in, (ssize_t)n);
    rc = tn_h1_scan(&c->scan, p, n, &lim, 0, &head_len, &status, &why);
    if (rc == TN_AGAIN) {
        if (c->flags & TN_CLIENT_F_EOF)
            mark_dead(c);
        else if (!(c->flags & TN_CLIENT_F_HEAD_TIMER)) {
            /* the head came in pieces: from now on it has client_header to finish */
            c->flags |= TN_CLIENT_F_HEAD_TIMER;
            tn_client_arm(c, w->wp->tv_header);
        }
        return;
    }
    if (rc == TN_ERR) {
        tn_client_error(c, status, why, 1);
        return;
    }
    if (head_reserve(c, head_len) != TN_OK) {
        tn_client_error(c, 503, "out_of_memory", 1);
        return;
    }
    memcpy(c->head, p, head_len);
    evbuffer_drain(in, head_len);
    c->log.bytes_in = head_len;
    c->req.hdrs = w->hdrs;
    if (tn_h1_parse_req(&c->req, c->head, head_len, &lim, &why) != TN_OK) {
        tn_client_error(c, c->req.status ? c->req.status : 400, why, 1);
        return;
    }
    tn_stream_start(c); /* every way out of it re-arms c->timer */
}

static void on_read(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    switch (c->state) {
    case TN_CLIENT_IDLE:
    case TN_CLIENT_REQ_HEAD:
        read_head(c);
        break;
    case TN_CLIENT_CONNECT:
    case TN_CLIENT_REQ_BODY:
        tn_stream_on_client_data(c);
        break;
    case TN_CLIENT_WAIT_RESP:
    case TN_CLIENT_RESP:
        /* a pipelined request waits for this response; bound what we buffer */
        if (evbuffer_get_length(c->io.in) >= READ_HIGH) {
            tn_io_read(&c->io, 0);
            c->flags |= TN_CLIENT_F_READ_OFF;
        }
        break;
    case TN_CLIENT_CLOSING:
        evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
        break;
    }
    tn_client_reap(c);
}

static void on_write(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (c->state == TN_CLIENT_CLOSING) {
        /* everything we had to say is out: half-close, then drain what the
         * client still sends until it closes or linger_tv passes */
        shutdown(c->io.fd, SHUT_WR);
        if (c->flags & TN_CLIENT_F_EOF)
            mark_dead(c);
        else
            tn_client_arm(c, &linger_tv);
    } else if (c->flags & TN_CLIENT_F_RESP_PAUSED) {
        tn_stream_on_client_drained(c);
    }
    tn_client_reap(c);
}

static void on_eof(struct tn_client *c)
{
    c->flags |= TN_CLIENT_F_EOF;
    switch (c->state) {
    case TN_CLIENT_IDLE:
    case TN_CLIENT_CLOSING:
        mark_dead(c);
        break;
    case TN_CLIENT_REQ_HEAD:
        read_head(c); /* a complete head may still be buffered */
        if (c->state == TN_CLIENT_REQ_HEAD)
            mark_dead(c);
        break;
    case TN_CLIENT_CONNECT:
    case TN_CLIENT_REQ_BODY:
        tn_stream_on_client_data(c);
        if (!(c->flags & TN_CLIENT_F_REQ_DONE) && !(c->flags & TN_CLIENT_F_DEAD))
            tn_client_abort(c, "client_aborted");
        break;
    case TN_CLIENT_WAIT_RESP:
    case TN_CLIENT_RESP:
        break; /* half-close: the response still goes out, then we close */
    }
}

static void on_event(struct tn_io *io, int what, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (what & TN_IO_EV_EOF)
        on_eof(c);
    else if (c->state == TN_CLIENT_CLOSING)
        mark_dead(c);
    else
        tn_client_abort(c, "client_error");
    tn_client_reap(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_client *c = arg;

    (void)fd;
    (void)what;
    switch (c->state) {
    case TN_CLIENT_IDLE:
    case TN_CLIENT_CLOSING:
        mark_dead(c);
        break;
    case TN_CLIENT_REQ_HEAD:
        tn_client_error(c, 408, "client_header_timeout", 1);
        break;
    default:
        tn_stream_on_timeout(c);
        break;
    }
    tn_client_reap(c);
}

int tn_client_accept(struct tn_worker *w, int fd, const struct sockaddr *peer, socklen_t len)
{
    struct tn_client *c = calloc(1, sizeof(*c));
    int one = 1;

    if (!c) {
        close(fd);
        return TN_ERR;
    }
    c->w = w;
    c->id = ++w->next_id;
    memcpy(&c->peer, peer, len < sizeof(c->peer) ? len : sizeof(c->peer));
    if (peer->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, c->peer_ip,
                  sizeof(c->peer_ip));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, c->peer_ip,
                  sizeof(c->peer_ip));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    c->timer = evtimer_new(w->base, on_timer, c);
    if (!c->timer || tn_io_init(&c->io, w->base, fd, 0) != TN_OK) {
        if (c->timer)
            event_free(c->timer);
        else
            close(fd);
        free(c);
        return TN_ERR;
    }
    reset_exchange(c);
    c->state = TN_CLIENT_IDLE;
    tn_io_setcb(&c->io, on_read, on_write, on_event, c);
    tn_io_read(&c->io, 1);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    w->nclients++;
    tn_client_arm(c, w->wp->tv_header);
    return TN_OK;
}

int tn_client_reap(struct tn_client *c)
{
    struct tn_worker *w = c->w;

    if (!(c->flags & TN_CLIENT_F_DEAD)) {
        /* end of a callback: write what it queued, on both sides, now */
        tn_io_flush(&c->io);
        if (c->up)
            tn_io_flush(&c->up->io);
        return 0;
    }
    if (c->up)
        tn_stream_release_upstream(c, 0);
    if (c->wp)
        tn_wplan_release(w, c->wp);
    event_free(c->timer);
    tn_io_deinit(&c->io);
    free(c->head);
    TAILQ_REMOVE(&w->clients, c, link);
    free(c);
    tn_worker_client_gone(w);
    return 1;
}

void tn_client_close_idle(struct tn_worker *w)
{
    struct tn_client *c, *next;

    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->state == TN_CLIENT_IDLE) {
            mark_dead(c);
            tn_client_reap(c);
        }
    }
}

void tn_client_free_all(struct tn_worker *w)
{
    struct tn_client *c;

    w->draining = 1;
    while ((c = TAILQ_FIRST(&w->clients)) != NULL) {
        mark_dead(c);
        tn_client_reap(c);
    }
}
