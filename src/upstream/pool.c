/* Upstream connections and per-worker pools. A pool keeps idle keep-alive
 * connections to one server address; while idle a connection is watched
 * for the server closing it or sending stray bytes (both close it) and for
 * the upstream_idle timeout. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/log.h"
#include "turnout/pool.h"
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

struct tn_pool *tn_pool_get(struct tn_worker *w, const struct sockaddr *sa, socklen_t len)
{
    struct tn_pool **grown, *p;
    size_t i;

    for (i = 0; i < w->npools; i++)
        if (w->pools[i]->len == len && !memcmp(&w->pools[i]->ss, sa, len))
            return w->pools[i];
    p = calloc(1, sizeof(*p));
    grown = realloc(w->pools, (w->npools + 1) * sizeof(*grown));
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

static void unlink_idle(struct tn_upstream *u)
{
    TAILQ_REMOVE(&u->pool->idle, u, link);
    u->pool->nidle--;
}

/* An idle connection became readable: either the server closed it or it
 * sent bytes nobody asked for. Both end it. */
static void on_idle_read(struct bufferevent *bev, void *arg)
{
    struct tn_upstream *u = arg;

    (void)bev;
    unlink_idle(u);
    tn_upstream_free(u);
}

static void on_idle_event(struct bufferevent *bev, short what, void *arg)
{
    struct tn_upstream *u = arg;

    (void)bev;
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
    bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
    p->nbusy++;
    return u;
}

struct tn_upstream *tn_upstream_connect(struct tn_pool *p, const char **why)
{
    struct tn_upstream *u;
    int fd, one = 1;

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
    u->bev = bufferevent_socket_new(p->w->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!u->bev) {
        close(fd);
        free(u);
        *why = "out_of_memory";
        return NULL;
    }
    bufferevent_set_max_single_read(u->bev, TN_IO_CHUNK);
    bufferevent_set_max_single_write(u->bev, TN_IO_CHUNK);
    if (bufferevent_socket_connect(u->bev, (struct sockaddr *)&p->ss, (int)p->len) < 0) {
        bufferevent_free(u->bev);
        free(u);
        *why = "connect_failed";
        return NULL;
    }
    p->nbusy++;
    return u;
}

void tn_pool_put(struct tn_upstream *u)
{
    struct tn_pool *p = u->pool;
    struct tn_worker *w = p->w;

    p->nbusy--;
    u->owner = NULL;
    if (w->draining || p->nidle >= POOL_MAX_IDLE ||
        evbuffer_get_length(bufferevent_get_input(u->bev)) ||
        evbuffer_get_length(bufferevent_get_output(u->bev))) {
        tn_upstream_free(u);
        return;
    }
    u->requests++;
    TAILQ_INSERT_HEAD(&p->idle, u, link);
    p->nidle++;
    bufferevent_setcb(u->bev, on_idle_read, NULL, on_idle_event, u);
    bufferevent_set_timeouts(u->bev, w->wp->tv_upstream_idle, NULL);
}

void tn_upstream_free(struct tn_upstream *u)
{
    if (!u)
        return;
    bufferevent_free(u->bev);
    free(u);
}

void tn_upstream_discard(struct tn_upstream *u)
{
    u->pool->nbusy--;
    tn_upstream_free(u);
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
    for (i = 0; i < w->npools; i++)
        free(w->pools[i]);
    free(w->pools);
    w->pools = NULL;
    w->npools = 0;
}
