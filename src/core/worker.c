/* Worker threads. Each owns an event_base, its listeners (SO_REUSEPORT
 * sockets bound by the control thread), its client connections, its
 * upstream pools and its view of the current plan. The control thread talks
 * to a worker only through command bits, the `pending` plan pointer and an
 * eventfd that wakes the worker, so the worker's event_base needs no lock. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "turnout/accesslog.h"
#include "turnout/budget.h"
#include "turnout/client.h"
#include "turnout/health.h"
#include "turnout/module.h"
#include "turnout/overlay.h"
#include "turnout/common.h"
#include "turnout/log.h"
#include "turnout/pool.h"
#include "turnout/route.h"
#include "turnout/stats.h"
#include "turnout/stream.h"
#include "turnout/tlsclient.h"
#include "turnout/worker.h"

static const struct timeval *common_tv(struct event_base *base, uint32_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

    return event_base_init_common_timeout(base, &tv);
}

static void wplan_free(struct tn_wplan *wp)
{
    size_t b;

    if (!wp)
        return;
    for (b = 0; b < wp->plan->conf->nbackends; b++) {
        if (wp->pools)
            free(wp->pools[b]);
        if (wp->balance)
            tn_balance_deinit(&wp->balance[b]);
    }
    free(wp->pools);
    free(wp->balance);
    tn_plan_unref(wp->plan);
    free(wp);
}

/* Builds w's view of plan (takes the reference). NULL on allocation failure. */
static struct tn_wplan *wplan_new(struct tn_worker *w, struct tn_plan *plan)
{
    const struct tn_conf *conf = plan->conf;
    const struct tn_conf_timeouts *t = &conf->timeouts;
    struct tn_wplan *wp = calloc(1, sizeof(*wp));
    size_t b, s;

    if (!wp) {
        tn_plan_unref(plan);
        return NULL;
    }
    wp->plan = plan;
    wp->pools = calloc(conf->nbackends ? conf->nbackends : 1, sizeof(*wp->pools));
    wp->balance = calloc(conf->nbackends ? conf->nbackends : 1, sizeof(*wp->balance));
    if (!wp->pools || !wp->balance)
        goto fail;
    for (b = 0; b < conf->nbackends; b++) {
        const struct tn_conf_backend *be = &conf->backends[b];

        wp->pools[b] = calloc(be->nservers ? be->nservers : 1, sizeof(**wp->pools));
        if (!wp->pools[b] || tn_balance_init(&wp->balance[b], be) != TN_OK)
            goto fail;
        for (s = 0; s < be->nservers; s++) {
            const struct tn_conf_addr *a = &be->servers[s].addr;

            wp->pools[b][s] = tn_pool_get(w, (const struct sockaddr *)&a->ss, a->len,
                                          be->tls.ctx ? tn_tlsclient_id(be->tls.ctx) : NULL);
            if (!wp->pools[b][s])
                goto fail;
            /* a pool counts for the first server that uses its address */
            if (!wp->pools[b][s]->st)
                wp->pools[b][s]->st = tn_stats_server(w->stats, plan->server_ids[b][s]);
        }
    }
    wp->tv_header = common_tv(w->base, t->client_header_ms);
    wp->tv_body = common_tv(w->base, t->client_body_ms);
    wp->tv_idle = common_tv(w->base, t->client_idle_ms);
    wp->tv_connect = common_tv(w->base, t->connect_ms);
    wp->tv_response = common_tv(w->base, t->response_ms);
    return wp;
fail:
    wplan_free(wp);
    return NULL;
}

/* Sizes the per-worker parse and serialization space for conf's limits. */
static int size_scratch(struct tn_worker *w, const struct tn_conf *conf)
{
    size_t need = conf->limits.header_size * 2 + 8192, ns = 1, b;
    uint32_t nh = conf->limits.headers + 8;

    for (b = 0; b < conf->nbackends; b++)
        if (conf->backends[b].nservers > ns)
            ns = conf->backends[b].nservers;
    if (ns > w->nusable) {
        uint8_t *u = realloc(w->usable, ns);

        if (!u)
            return TN_ERR;
        w->usable = u;
        w->nusable = ns;
    }

    if (need > w->scratch_len) {
        char *s = realloc(w->scratch, need);

        if (!s)
            return TN_ERR;
        w->scratch = s;
        w->scratch_len = need;
    }
    if (nh > w->max_hdrs) {
        struct tn_field *h = realloc(w->hdrs, nh * sizeof(*h));

        if (!h)
            return TN_ERR;
        w->hdrs = h;
        w->max_hdrs = nh;
    }
    return TN_OK;
}

const char *tn_worker_http_date(struct tn_worker *w)
{
    time_t now = time(NULL);

    if (now != w->http_date_sec) {
        struct tm tm;

        gmtime_r(&now, &tm);
        strftime(w->http_date, sizeof(w->http_date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        w->http_date_sec = now;
    }
    return w->http_date;
}

struct tn_wplan *tn_wplan_acquire(struct tn_worker *w)
{
    w->wp->users++;
    return w->wp;
}

void tn_wplan_release(struct tn_worker *w, struct tn_wplan *wp)
{
    (void)w;
    TN_BUG_ON(wp->users == 0);
    if (--wp->users == 0 && wp->retired)
        wplan_free(wp);
}

/* Sizes the per-route state for plan's route ids and (re)configures each
 * route's replay budget; counts carry over (they are keyed by stable id). */
static int setup_routes(struct tn_worker *w, const struct tn_plan *plan)
{
    const struct tn_conf_budget *bc = &plan->conf->rollback.budget;
    uint32_t n = w->nworkers ? w->nworkers : 1;
    size_t i;

    if (plan->max_route_id > w->nrstate) {
        struct tn_route_wstate *rs = realloc(w->rstate, plan->max_route_id * sizeof(*rs));

        if (!rs)
            return TN_ERR;
        memset(rs + w->nrstate, 0, (plan->max_route_id - w->nrstate) * sizeof(*rs));
        w->rstate = rs;
        w->nrstate = plan->max_route_id;
    }
    for (i = 0; i < plan->nroutes; i++)
        tn_budget_setup(&w->rstate[plan->routes[i].id].budget, bc->ratio_x100, bc->window_ms,
                        (uint32_t)(((uint64_t)bc->min_per_second * 1000 + n - 1) / n));
    return TN_OK;
}

static void adopt_plan(struct tn_worker *w)
{
    struct tn_plan *p = atomic_exchange(&w->pending, NULL);
    struct tn_wplan *wp, *old = w->wp;

    if (!p)
        return;
    if (size_scratch(w, p->conf) != TN_OK || setup_routes(w, p) != TN_OK) {
        tn_log(TN_LOG_ERR, "worker %d: out of memory adopting plan %llu; keeping the old one",
               w->id, (unsigned long long)p->version);
        tn_plan_unref(p);
        return;
    }
    if (!(wp = wplan_new(w, p))) { /* it dropped the reference */
        tn_log(TN_LOG_ERR, "worker %d: out of memory adopting a plan; keeping the old one", w->id);
        return;
    }
    w->wp = wp;
    old->retired = 1;
    if (!old->users)
        wplan_free(old);
}

static void adopt_overlay(struct tn_worker *w)
{
    struct tn_overlay *ov = atomic_exchange(&w->pending_ov, NULL);

    if (!ov)
        return;
    tn_overlay_unref(w->ov); /* streams never keep overlay pointers across callbacks */
    w->ov = ov;
}

int tn_worker_server_usable(const struct tn_worker *w, const struct tn_wplan *wp, int backend,
                            int server, uint64_t now_ms, int ignore_passive)
{
    uint32_t id = wp->plan->server_ids[backend][server];

    if (!tn_overlay_server_ok(w->ov, id))
        return 0;
    return ignore_passive || !tn_passive_ejected(id, now_ms);
}

uint32_t tn_worker_usable_servers(const struct tn_worker *w, const struct tn_wplan *wp,
                                  int backend, uint8_t *usable)
{
    const struct tn_conf_backend *b = &wp->plan->conf->backends[backend];
    uint64_t now = w->now_ms;
    uint32_t n = 0, ready = 0;
    size_t i;

    for (i = 0; i < b->nservers; i++) {
        uint32_t id = wp->plan->server_ids[backend][i];
        int ok = tn_overlay_server_ok(w->ov, id);

        usable[i] = ok && !tn_passive_ejected(id, now);
        n += usable[i];
        ready += ok;
    }
    if (n || !ready)
        return n;
    for (i = 0; i < b->nservers; i++) /* panic: every ready one is ejected */
        usable[i] = (uint8_t)tn_overlay_server_ok(w->ov, wp->plan->server_ids[backend][i]);
    return ready;
}

int tn_worker_backend_up(void *ctx, int backend)
{
    const struct tn_worker *w = ctx;
    const struct tn_conf_backend *b = &w->wp->plan->conf->backends[backend];
    uint64_t now = w->now_ms;
    size_t i;

    for (i = 0; i < b->nservers; i++)
        if (b->servers[i].weight && tn_worker_server_usable(w, w->wp, backend, (int)i, now, 0))
            return 1;
    return 0;
}

static void set_listening(struct tn_worker *w, int on)
{
    size_t i;

    if (w->listening == on || !w->listeners)
        return;
    for (i = 0; i < w->nlisteners; i++) {
        if (on)
            evconnlistener_enable(w->listeners[i]);
        else
            evconnlistener_disable(w->listeners[i]);
    }
    w->listening = on;
}

/* The TLS contexts of listener i in the plan in force (found by address:
 * a reload may reorder the list), or NULL. */
static struct tn_tls *listener_tls(struct tn_worker *w, size_t i)
{
    const struct tn_conf *c = w->wp->plan->conf;
    size_t j;

    for (j = 0; j < c->nlistens; j++)
        if (!strcmp(c->listens[j].addr.text, w->listen_names[i]))
            return c->listens[j].tls;
    return NULL;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct tn_worker *w = arg;
    struct tn_stats_listener *lst = NULL;
    struct tn_tls *tls = NULL;
    size_t i;

    for (i = 0; i < w->nlisteners && w->listeners[i] != l; i++)
        ;
    if (i < TN_STATS_MAX_LISTENERS && i < w->nlisteners)
        lst = &w->stats->listeners[i];
    if (i < w->nlisteners && w->listen_tls[i])
        tls = listener_tls(w, i);
    if (w->draining || (i < w->nlisteners && w->listen_tls[i] && !tls)) {
        close(fd); /* a TLS listener whose configuration went away: never plain */
        if (lst)
            TN_STATS_BUMP(lst->rejected);
        return;
    }
    if (tn_client_accept(w, fd, sa, (socklen_t)len, lst, tls) != TN_OK && lst)
        TN_STATS_BUMP(lst->rejected);
    if (w->nclients >= w->max_clients)
        set_listening(w, 0);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct tn_worker *w = arg;

    (void)fd;
    (void)what;
    if (!w->draining && w->nclients < w->max_clients)
        set_listening(w, 1);
}

/* accept() failed: out of descriptors or memory. Stop accepting for 100 ms
 * instead of spinning on a listener that stays readable. */
static void on_accept_error(struct evconnlistener *l, void *arg)
{
    static const struct timeval pause = { 0, 100 * 1000 };
    struct tn_worker *w = arg;
    int err = EVUTIL_SOCKET_ERROR();
    uint64_t now = tn_now_ms();

    (void)l;
    if (now - w->accept_err_logged_ms >= 1000) {
        tn_log(TN_LOG_WARN, "worker %d: accept: %s; pausing accepts", w->id,
               evutil_socket_error_to_string(err));
        w->accept_err_logged_ms = now;
    }
    set_listening(w, 0);
    evtimer_add(w->resume_ev, &pause);
}

void tn_worker_client_gone(struct tn_worker *w)
{
    TN_BUG_ON(w->nclients == 0);
    w->nclients--;
    if (w->draining) {
        if (!w->nclients && !w->nstreams)
            event_base_loopexit(w->base, NULL);
        return;
    }
    if (!w->listening && w->nclients < w->max_clients)
        set_listening(w, 1);
}

void tn_worker_stream_gone(struct tn_worker *w)
{
    if (w->draining && !w->nclients && !w->nstreams)
        event_base_loopexit(w->base, NULL);
}

/* The end of every callback: flushes are done; free what died in it. */
static void settle(void *arg)
{
    struct tn_worker *w = arg;

    if (!TAILQ_EMPTY(&w->dead_clients))
        tn_client_reap(w);
    if (!TAILQ_EMPTY(&w->dead_streams))
        tn_stream_reap(w);
    if (!TAILQ_EMPTY(&w->dead_upstreams))
        tn_pool_reap(w);
}

static void free_listeners(struct tn_worker *w)
{
    size_t i;

    if (!w->listeners)
        return;
    for (i = 0; i < w->nlisteners; i++)
        evconnlistener_free(w->listeners[i]);
    free(w->listeners);
    w->listeners = NULL;
    w->listening = 0;
}

static void start_drain(struct tn_worker *w)
{
    if (w->draining)
        return;
    w->draining = 1;
    event_del(w->tick_ev);
    event_del(w->resume_ev);
    free_listeners(w);
    tn_client_close_idle(w);
    tn_pool_close_idle(w);
    if (!w->nclients && !w->nstreams)
        event_base_loopexit(w->base, NULL);
}

/* Once a second: close pooled upstream connections idle too long. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct tn_worker *w = arg;

    (void)fd;
    (void)what;
    tn_pool_sweep(w, tn_now_ms(), w->wp->plan->conf->timeouts.upstream_idle_ms);
    tn_ioq_settle(&w->ioq);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    struct tn_worker *w = arg;
    uint64_t v;
    unsigned cmds;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        tn_log(TN_LOG_WARN, "worker %d: eventfd read: %s", w->id, strerror(errno));
    cmds = atomic_exchange(&w->cmds, 0);
    if (cmds & TN_WORKER_CMD_PLAN)
        adopt_plan(w);
    if (cmds & TN_WORKER_CMD_OVERLAY)
        adopt_overlay(w);
    if (cmds & TN_WORKER_CMD_DRAIN)
        start_drain(w);
    if (cmds & TN_WORKER_CMD_STOP)
        event_base_loopbreak(w->base);
    tn_ioq_settle(&w->ioq);
}

/* Posts cmd to w and wakes it. Control thread. */
static void post(struct tn_worker *w, unsigned cmd)
{
    uint64_t one = 1;

    atomic_fetch_or(&w->cmds, cmd);
    if (write(w->notify_fd, &one, sizeof(one)) < 0)
        tn_log(TN_LOG_ERR, "worker %d: eventfd write: %s", w->id, strerror(errno));
}

struct tn_worker *tn_worker_new(int id, uint32_t nworkers, int *fds, size_t nfds,
                                struct tn_plan *plan, const char **why)
{
    struct tn_worker *w = tn_xcalloc(1, sizeof(*w));
    struct event_config *cfg = event_config_new();
    size_t i;

    w->id = id;
    w->nworkers = nworkers;
    TAILQ_INIT(&w->clients);
    TAILQ_INIT(&w->dead_clients);
    TAILQ_INIT(&w->streams);
    TAILQ_INIT(&w->dead_streams);
    TAILQ_INIT(&w->dead_upstreams);
    TAILQ_INIT(&w->free_streams);
    TAILQ_INIT(&w->ioq.pending);
    w->ioq.settle = settle;
    w->ioq.arg = w;
    w->body_tmp = evbuffer_new();
    /* one thread per base: no lock; the changelist folds enable/disable
     * pairs into one epoll_ctl per loop */
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK | EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!w->base || w->notify_fd < 0) {
        *why = "cannot create an event base";
        return NULL;
    }
    w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
    event_add(w->notify_ev, NULL);
    w->tick_ev = event_new(w->base, -1, EV_PERSIST, on_tick, w);
    w->resume_ev = evtimer_new(w->base, on_accept_resume, w);
    {
        struct timeval one_s = { 1, 0 };

        event_add(w->tick_ev, &one_s);
    }
    w->md = pcre2_match_data_create(1, NULL);
    w->stats = tn_stats_new();
    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->worker_new)
            w->mod_wk[i] = tn_modules[i]->worker_new();
    w->log = tn_accesslog_shard_new();
    w->max_clients = plan->conf->limits.connections;
    if (size_scratch(w, plan->conf) != TN_OK || setup_routes(w, plan) != TN_OK ||
        !(w->wp = wplan_new(w, plan))) {
        *why = "out of memory";
        return NULL;
    }
    w->listeners = tn_xcalloc(nfds, sizeof(*w->listeners));
    w->nlisteners = nfds;
    w->listen_names = tn_xcalloc(nfds, sizeof(*w->listen_names));
    w->listen_tls = tn_xcalloc(nfds, sizeof(*w->listen_tls));
    for (i = 0; i < nfds && i < plan->conf->nlistens; i++) {
        w->listen_names[i] = tn_xstrdup(plan->conf->listens[i].addr.text);
        w->listen_tls[i] = plan->conf->listens[i].ncerts > 0;
    }
    for (i = 0; i < nfds; i++) {
        w->listeners[i] = evconnlistener_new(w->base, on_accept, w,
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
                                             fds[i]);
        if (!w->listeners[i]) {
            *why = "cannot create a listener";
            return NULL;
        }
        evconnlistener_set_error_cb(w->listeners[i], on_accept_error);
    }
    w->listening = 1;
    return w;
}

static void *worker_main(void *arg)
{
    struct tn_worker *w = arg;

    adopt_overlay(w); /* published before the start */
    event_base_dispatch(w->base);
    tn_client_free_all(w);
    tn_stream_free_all(w);
    free_listeners(w);
    tn_pool_free_all(w);
    if (w->on_exit)
        w->on_exit(w->on_exit_arg);
    return NULL;
}

int tn_worker_start(struct tn_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) ? TN_ERR : TN_OK;
}

void tn_worker_publish(struct tn_worker *w, struct tn_plan *plan)
{
    struct tn_plan *old = atomic_exchange(&w->pending, plan);

    tn_plan_unref(old); /* never adopted: a newer one replaced it */
    post(w, TN_WORKER_CMD_PLAN);
}

void tn_worker_publish_overlay(struct tn_worker *w, struct tn_overlay *ov)
{
    tn_overlay_unref(atomic_exchange(&w->pending_ov, ov));
    post(w, TN_WORKER_CMD_OVERLAY);
}

void tn_worker_drain(struct tn_worker *w)
{
    post(w, TN_WORKER_CMD_DRAIN);
}

void tn_worker_stop(struct tn_worker *w)
{
    post(w, TN_WORKER_CMD_STOP);
}

void tn_worker_join_free(struct tn_worker *w)
{
    size_t i;

    if (!w)
        return;
    pthread_join(w->thread, NULL);
    tn_plan_unref(atomic_exchange(&w->pending, NULL));
    tn_overlay_unref(atomic_exchange(&w->pending_ov, NULL));
    tn_overlay_unref(w->ov);
    wplan_free(w->wp);
    event_free(w->notify_ev);
    event_free(w->tick_ev);
    event_free(w->resume_ev);
    close(w->notify_fd);
    pcre2_match_data_free(w->md);
    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->worker_free)
            tn_modules[i]->worker_free(w->mod_wk[i]);
    event_base_free(w->base);
    free(w->scratch);
    free(w->hdrs);
    free(w->usable);
    tn_stats_free(w->stats);
    free(w->rstate);
    if (w->body_tmp)
        evbuffer_free(w->body_tmp);
    free(w->listen_fds);
    for (i = 0; w->listen_names && i < w->nlisteners; i++)
        free(w->listen_names[i]);
    free(w->listen_names);
    free(w->listen_tls);
    free(w);
}
