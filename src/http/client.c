/* Downstream connections. Accepts a socket, drives its transport and its
 * timer, hands bytes to the HTTP/1.1 codec (h1down.c), keeps the connection
 * alive between requests and closes it with a short lingering phase, so an
 * error page is read before the reset. A connection is never freed inside
 * its own callbacks: it is marked dead and freed by the worker's
 * end-of-callback hook (tn_client_reap). */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnout/client.h"
#include "turnout/common.h"
#include "turnout/h1down.h"
#include "turnout/h2down.h"
#include "turnout/io.h"
#include "turnout/stats.h"
#include "turnout/stream.h"
#include "turnout/tls.h"
#include "turnout/worker.h"

#define LINGER_MS 1000 /* how long a closing connection's input is drained */

static const char *const state_names[] = {
#define TN_X_NAME(s) #s,
    TN_CLIENT_STATES(TN_X_NAME)
#undef TN_X_NAME
};

#define BIT(s) (1u << TN_CLIENT_##s)
/* Legal next states for each state (staying put is always legal). */
static const unsigned legal_next[] = {
    [TN_CLIENT_IDLE] = BIT(REQ_HEAD) | BIT(H2) | BIT(CLOSING),
    [TN_CLIENT_REQ_HEAD] = BIT(REQ_BODY) | BIT(WAIT) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_REQ_BODY] = BIT(WAIT) | BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_WAIT] = BIT(IDLE) | BIT(CLOSING),
    [TN_CLIENT_H2] = BIT(CLOSING),
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

void tn_client_kill(struct tn_client *c)
{
    struct tn_worker *w = c->w;

    if (c->flags & TN_CLIENT_F_DEAD)
        return;
    c->flags |= TN_CLIENT_F_DEAD;
    TAILQ_REMOVE(&w->clients, c, link);
    TAILQ_INSERT_TAIL(&w->dead_clients, c, link);
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

void tn_client_exchange_done(struct tn_client *c)
{
    struct tn_worker *w = c->w;

    c->stream = NULL;
    if (c->state == TN_CLIENT_CLOSING || (c->flags & TN_CLIENT_F_DEAD))
        return;
    /* both ways out re-arm c->timer, which replaces whatever it was set to */
    if (c->state == TN_CLIENT_REQ_BODY || c->state == TN_CLIENT_REQ_HEAD ||
        (c->flags & (TN_CLIENT_F_CLOSE_AFTER | TN_CLIENT_F_EOF)) || w->draining) {
        start_closing(c);
        return;
    }
    c->flags &= TN_CLIENT_F_DEAD | TN_CLIENT_F_EOF | TN_CLIENT_F_READ_OFF | TN_CLIENT_F_H1 |
                TN_CLIENT_F_TLS;
    memset(&c->scan, 0, sizeof(c->scan));
    tn_client_set_state(c, TN_CLIENT_IDLE);
    if (c->flags & TN_CLIENT_F_READ_OFF) {
        c->flags &= ~TN_CLIENT_F_READ_OFF;
        tn_io_read(&c->io, 1);
    }
    tn_client_arm(c, w->wp->tv_idle);
    if (evbuffer_get_length(c->io.in))
        tn_io_kick(&c->io); /* a pipelined request: parse it from a fresh callback */
}

void tn_client_abort(struct tn_client *c)
{
    c->stream = NULL;
    /* an abortive close: the client must not take a cut body for a whole one */
    tn_io_reset_on_close(&c->io);
    tn_client_kill(c);
}

/* Whether the plain listener c was accepted on serves h2c (found by the
 * socket's local address in the configuration in force). */
static int listener_h2c(struct tn_client *c)
{
    const struct tn_conf *conf = c->w->wp->plan->conf;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    size_t i;

    if (getsockname(c->io.fd, (struct sockaddr *)&ss, &len) < 0)
        return 1;
    for (i = 0; i < conf->nlistens; i++) {
        const struct tn_conf_listen *l = &conf->listens[i];
        const struct sockaddr *a = (const struct sockaddr *)&l->addr.ss;

        if (l->ncerts || a->sa_family != ss.ss_family)
            continue;
        if (a->sa_family == AF_INET) {
            const struct sockaddr_in *x = (const void *)a, *y = (const void *)&ss;

            if (x->sin_port == y->sin_port && (x->sin_addr.s_addr == INADDR_ANY ||
                                               x->sin_addr.s_addr == y->sin_addr.s_addr))
                return l->h2c;
        } else if (a->sa_family == AF_INET6) {
            const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)&ss;

            if (x->sin6_port == y->sin6_port &&
                (IN6_IS_ADDR_UNSPECIFIED(&x->sin6_addr) ||
                 !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr))))
                return l->h2c;
        }
    }
    return 1;
}

/* The first bytes of a plain connection: the HTTP/2 preface hands it to the
 * HTTP/2 codec (h2c with prior knowledge) when the listener allows it.
 * Returns TN_ERR when the connection speaks HTTP/1 from now on. */
static int sniff_h2(struct tn_client *c)
{
    int rc = tn_h2down_sniff(c->io.in);

    if (rc == TN_AGAIN) /* the preface so far: client_header runs meanwhile */
        return (c->flags & TN_CLIENT_F_EOF) ? TN_ERR : TN_AGAIN;
    if (rc == TN_ERR || !listener_h2c(c)) {
        c->flags |= TN_CLIENT_F_H1;
        return TN_ERR;
    }
    if (tn_h2down_start(c) != TN_OK)
        tn_client_kill(c);
    return TN_OK;
}

static void on_read(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (c->flags & TN_CLIENT_F_DEAD)
        return;
    if (c->state == TN_CLIENT_CLOSING)
        evbuffer_drain(c->io.in, evbuffer_get_length(c->io.in));
    else if (c->h2)
        tn_h2down_on_read(c);
    else if (c->tls || (c->flags & TN_CLIENT_F_H1) || sniff_h2(c) == TN_ERR)
        tn_h1down_on_read(c);
}

static void on_write(struct tn_io *io, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (c->flags & TN_CLIENT_F_DEAD)
        return;
    if (c->state == TN_CLIENT_CLOSING) {
        /* everything we had to say is out: half-close, then drain what the
         * client still sends until it closes or linger_tv passes */
        tn_io_shutdown(&c->io);
        if (c->flags & TN_CLIENT_F_EOF)
            tn_client_kill(c);
        else
            tn_client_arm(c, &linger_tv);
    } else if (c->h2) {
        tn_h2down_on_drained(c);
    } else {
        tn_h1down_on_drained(c);
    }
}

static void on_event(struct tn_io *io, int what, void *arg)
{
    struct tn_client *c = arg;

    (void)io;
    if (c->flags & TN_CLIENT_F_DEAD)
        return;
    if (what & TN_IO_EV_HANDSHAKE) {
        c->flags &= ~TN_CLIENT_F_HANDSHAKE;
        if (tn_tls_is_h2(c->io.ssl)) { /* ALPN chose h2 */
            if (tn_h2down_start(c) != TN_OK)
                tn_client_kill(c);
            return;
        }
        /* now the request head has client_header, as on a plain listener */
        tn_client_arm(c, c->w->wp->tv_header);
        return;
    }
    if (what & TN_IO_EV_EOF) {
        c->flags |= TN_CLIENT_F_EOF;
        if (c->state == TN_CLIENT_IDLE || c->state == TN_CLIENT_CLOSING)
            tn_client_kill(c);
        else if (c->h2)
            tn_h2down_on_eof(c);
        else
            tn_h1down_on_eof(c);
        return;
    }
    if (c->stream)
        tn_stream_detach(c->stream, "client_error");
    c->stream = NULL;
    tn_client_kill(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tn_client *c = arg;
    struct tn_worker *w = c->w;

    (void)fd;
    (void)what;
    switch (c->state) {
    case TN_CLIENT_IDLE:
    case TN_CLIENT_CLOSING:
        tn_client_kill(c);
        break;
    case TN_CLIENT_REQ_HEAD:
    case TN_CLIENT_REQ_BODY:
        tn_h1down_on_timer(c);
        break;
    case TN_CLIENT_WAIT:
        break; /* the stream's own timers guard the response */
    case TN_CLIENT_H2:
        tn_h2down_on_timer(c);
        break;
    }
    tn_ioq_settle(&w->ioq);
}

/* The listener's TLS handshake timeout. */
static void arm_handshake(struct tn_client *c)
{
    const struct tn_conf *conf = c->w->wp->plan->conf;
    uint32_t ms = 10000;
    size_t i;

    for (i = 0; i < conf->nlistens; i++)
        if (conf->listens[i].tls == c->tls)
            ms = conf->listens[i].tls_handshake_ms;
    {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        evtimer_add(c->timer, &tv);
    }
}

int tn_client_accept(struct tn_worker *w, int fd, const struct sockaddr *peer, socklen_t len,
                     struct tn_stats_listener *lst, struct tn_tls *tls)
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
    if (!c->timer || tn_io_init(&c->io, w->base, &w->ioq, fd, 0) != TN_OK) {
        if (c->timer)
            event_free(c->timer);
        else
            close(fd);
        free(c);
        return TN_ERR;
    }
    c->state = TN_CLIENT_IDLE;
    c->scheme = "http";
    tn_io_setcb(&c->io, on_read, on_write, on_event, c);
    if (tls) {
        struct ssl_st *ssl = tn_tls_ssl(tls);

        if (!ssl) {
            event_free(c->timer);
            tn_io_deinit(&c->io);
            free(c);
            return TN_ERR;
        }
        tn_tls_ref(tls);
        c->tls = tls;
        c->scheme = "https";
        c->flags |= TN_CLIENT_F_TLS | TN_CLIENT_F_HANDSHAKE;
        tn_io_start_tls(&c->io, ssl, 1);
    }
    tn_io_read(&c->io, 1);
    TAILQ_INSERT_TAIL(&w->clients, c, link);
    w->nclients++;
    if ((c->lst = lst) != NULL) {
        TN_STATS_BUMP(lst->accepted);
        TN_STATS_BUMP(lst->open);
    }
    if (tls)
        arm_handshake(c);
    else
        tn_client_arm(c, w->wp->tv_header);
    return TN_OK;
}

static void client_free(struct tn_client *c)
{
    struct tn_worker *w = c->w;

    if (c->stream)
        tn_stream_detach(c->stream, "client_closed");
    c->stream = NULL;
    tn_h2down_free(c, "client_closed");
    event_free(c->timer);
    tn_io_deinit(&c->io);
    if (c->lst)
        TN_STATS_GAUGE(c->lst->open, atomic_load_explicit(&c->lst->open, memory_order_relaxed) - 1);
    tn_tls_unref(c->tls);
    free(c);
    tn_worker_client_gone(w);
}

void tn_client_reap(struct tn_worker *w)
{
    struct tn_client *c;

    while ((c = TAILQ_FIRST(&w->dead_clients)) != NULL) {
        TAILQ_REMOVE(&w->dead_clients, c, link);
        client_free(c);
    }
}

void tn_client_close_idle(struct tn_worker *w)
{
    struct tn_client *c, *next;

    for (c = TAILQ_FIRST(&w->clients); c; c = next) {
        next = TAILQ_NEXT(c, link);
        if (c->h2)
            tn_h2down_drain(c); /* GOAWAY: its open streams finish */
        else if (c->state == TN_CLIENT_IDLE)
            tn_client_kill(c);
    }
    tn_client_reap(w);
}

void tn_client_free_all(struct tn_worker *w)
{
    struct tn_client *c;

    w->draining = 1;
    while ((c = TAILQ_FIRST(&w->clients)) != NULL)
        tn_client_kill(c);
    tn_client_reap(w);
}
