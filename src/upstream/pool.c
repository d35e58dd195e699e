/* Upstream connections and per-worker pools. A pool keeps idle keep-alive
 * connections to one server address (plain, or TLS with one identity),
 * most recently used first; while idle a connection is watched for the
 * server closing it or sending stray bytes (both close it), and a
 * once-a-second sweep closes the ones idle longer than upstream_idle
 * (oldest at the tail). A TLS connection starts its handshake when TCP
 * connects, offering the pool's last session for resumption. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/log.h"
#include "turnout/pool.h"
#include "turnout/stats.h"
#include "turnout/tlsclient.h"
#include "turnout/worker.h"

#define POOL_MAX_IDLE 1024

static void addr_name(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, ntohs(s4->sin_port));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, ntohs(s6->sin6_port));
    }
}

static int same_tls(const char *a, const char *b)
{
    return a == b || (a && b && !strcmp(a, b));
}

struct tn_pool *tn_pool_get(struct tn_worker *w, const struct sockaddr *sa, socklen_t len,
                            const char *tls_id)
{
    struct tn_pool **grown, *p;
    size_t i;

    for (i = 0; i < w->npools; i++)
        if (w->pools[i]->len == len && !memcmp(&w->pools[i]->ss, sa, len) &&
            same_tls(w->pools[i]->tls_id, tls_id))
            return w->pools[i];
    p = calloc(1, sizeof(*p));
    grown = realloc(w->pools, (w->npools + 1) * sizeof(*grown));
    if (p && tls_id && !(p->tls_id = strdup(tls_id))) {
        free(p);
        p = NULL;
    }
    if (!p || !grown) {
        free(p);
        if (grown)
            w->pools = grown;
        return NULL;
    }
    w->pools = grown;
    p->w = w;
    memcpy(&p->ss, sa, len);
    p->len = len;
    addr_name(sa, p->name, sizeof(p->name));
    TAILQ_INIT(&p->idle);
    w->pools[w->npools++] = p;
    return p;
}

/* Publishes the pool's connection counts to its server's counters. */
static void gauges(const struct tn_pool *p)
{
    if (p->st) {
        TN_STATS_GAUGE(p->st->active, p->nbusy);
        TN_STATS_GAUGE(p->st->idle, p->nidle);
    }
}

static void unlink_idle(struct tn_upstream *u)
{
    TAILQ_REMOVE(&u->pool->idle, u, link);
    u->pool->nidle--;
    gauges(u->pool);
}

/* An idle connection became readable: either the server closed it or it
 * sent bytes nobody asked for. Both end it. */
static void on_idle_read(struct tn_io *io, void *arg)
{
    struct tn_upstream *u = arg;

    (void)io;
    unlink_idle(u);
    tn_upstream_free(u);
}

static void on_idle_event(struct tn_io *io, int what, void *arg)
{
    struct tn_upstream *u = arg;

    (void)io;
    (void)what;
    unlink_idle(u);
    tn_upstream_free(u);
}

struct tn_upstream *tn_pool_take(struct tn_pool *p)
{
    struct tn_upstream *u = TAILQ_FIRST(&p->idle);

    if (!u)
        return NULL;
    unlink_idle(u);
    p->nbusy++;
    gauges(p);
    return u;
}

struct tn_upstream *tn_upstream_connect(struct tn_pool *p, struct tn_tlsclient *tls,
                                        const char **why)
{
    struct tn_upstream *u;
    int fd, one = 1;

    TN_BUG_ON(!p->tls_id != !tls);
    fd = socket(p->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = "socket_failed";
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    u = calloc(1, sizeof(*u));
    if (!u) {
        close(fd);
        *why = "out_of_memory";
        return NULL;
    }
    u->pool = p;
    u->state = TN_UPSTREAM_CONNECTING;
    if (tls && !(u->tls = tn_tlsclient_ssl(tls, &p->tls_sess))) {
        close(fd);
        free(u);
        *why = "out_of_memory";
        return NULL;
    }
    if (connect(fd, (struct sockaddr *)&p->ss, p->len) < 0 && errno != EINPROGRESS) {
        close(fd);
        SSL_free(u->tls);
        free(u);
        *why = "connect_failed";
        return NULL;
    }
    if (tn_io_init(&u->io, p->w->base, &p->w->ioq, fd, 1) != TN_OK) {
        SSL_free(u->tls);
        free(u);
        *why = "out_of_memory";
        return NULL;
    }
    p->nbusy++;
    if (p->st)
        TN_STATS_BUMP(p->st->connects);
    gauges(p);
    return u;
}

int tn_upstream_start_tls(struct tn_upstream *u)
{
    struct ssl_st *ssl = u->tls;

    if (!ssl)
        return 0;
    u->tls = NULL; /* the transport owns it from now on */
    tn_io_read(&u->io, 1);
    tn_io_start_tls(&u->io, ssl, 0);
    return 1;
}

void tn_upstream_tls_done(struct tn_upstream *u)
{
    u->pool->tls_failing = 0;
}

int tn_upstream_tls_failed(struct tn_upstream *u, const char **why)
{
    struct tn_pool *p = u->pool;
    char detail[256];

    if (!u->io.ssl || !(u->io.flags & TN_IO_F_HANDSHAKE))
        return 0;
    *why = tn_tlsclient_failure(u->io.ssl, u->io.err, detail, sizeof(detail));
    if (!p->tls_failing) {
        p->tls_failing = 1;
        tn_log(TN_LOG_WARN, "upstream %s: TLS %s (logged once until a handshake succeeds)", p->name,
               detail);
    }
    return 1;
}

void tn_pool_put(struct tn_upstream *u)
{
    struct tn_pool *p = u->pool;
    struct tn_worker *w = p->w;

    p->nbusy--;
    gauges(p);
    u->owner = NULL;
    if (w->draining || p->nidle >= POOL_MAX_IDLE || evbuffer_get_length(u->io.in) ||
        evbuffer_get_length(u->io.out) || (u->io.flags & (TN_IO_F_EOF | TN_IO_F_FAILED))) {
        tn_upstream_free(u);
        return;
    }
    u->requests++;
    u->state = TN_UPSTREAM_IDLE;
    u->flags = 0;
    u->idle_since_ms = tn_now_ms();
    TAILQ_INSERT_HEAD(&p->idle, u, link);
    p->nidle++;
    gauges(p);
    tn_io_setcb(&u->io, on_idle_read, NULL, on_idle_event, u);
    tn_io_read(&u->io, 1);
}

void tn_upstream_free(struct tn_upstream *u)
{
    if (!u)
        return;
    /* the socket closes now; the memory goes when the current callback
     * returns (tn_pool_reap), as a callback of u may be on the stack */
    tn_io_deinit(&u->io);
    SSL_free(u->tls); /* TCP never connected: TLS did not start */
    u->tls = NULL;
    u->owner = NULL;
    TAILQ_INSERT_TAIL(&u->pool->w->dead_upstreams, u, link);
}

void tn_pool_reap(struct tn_worker *w)
{
    struct tn_upstream *u;

    while ((u = TAILQ_FIRST(&w->dead_upstreams)) != NULL) {
        TAILQ_REMOVE(&w->dead_upstreams, u, link);
        free(u);
    }
}

void tn_upstream_discard(struct tn_upstream *u)
{
    u->pool->nbusy--;
    gauges(u->pool);
    tn_upstream_free(u);
}

void tn_upstream_release(struct tn_upstream *u)
{
    u->io.flags &= ~TN_IO_F_NOTIFY;
    if (u->flags & TN_UP_F_CLEAN)
        tn_pool_put(u);
    else
        tn_upstream_discard(u);
}

void tn_pool_sweep(struct tn_worker *w, uint64_t now_ms, uint64_t idle_ms)
{
    size_t i;

    for (i = 0; i < w->npools; i++) {
        struct tn_upstream *u;

        while ((u = TAILQ_LAST(&w->pools[i]->idle, tn_upstream_list)) != NULL &&
               now_ms - u->idle_since_ms >= idle_ms) {
            unlink_idle(u);
            tn_upstream_free(u);
        }
    }
}

void tn_pool_close_idle(struct tn_worker *w)
{
    size_t i;

    for (i = 0; i < w->npools; i++) {
        struct tn_upstream *u;

        while ((u = TAILQ_FIRST(&w->pools[i]->idle)) != NULL) {
            unlink_idle(u);
            tn_upstream_free(u);
        }
    }
}

void tn_pool_free_all(struct tn_worker *w)
{
    size_t i;

    tn_pool_close_idle(w);
    tn_pool_reap(w);
    for (i = 0; i < w->npools; i++) {
        tn_tlsclient_session_free(w->pools[i]->tls_sess);
        free(w->pools[i]->tls_id);
        free(w->pools[i]);
    }
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
}
