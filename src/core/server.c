/* The process. Loads the configuration, builds plan 1, binds one set of
 * SO_REUSEPORT listeners per worker, starts the workers and then runs the
 * control loop on the main thread: SIGHUP reloads (a bad file keeps the old
 * plan), SIGTERM drains (bounded by timeouts.drain), SIGINT stops at once,
 * SIGUSR1 reopens the access log. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnout/accesslog.h"
#include "turnout/admin.h"
#include "turnout/adminhttp.h"
#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/control.h"
#include "turnout/log.h"
#include "turnout/overlay.h"
#include "turnout/route.h"
#include "turnout/server.h"
#include "turnout/worker.h"

struct server {
    const char *path;
    struct event_base *base;
    struct tn_plan *plan; /* the plan in force (one reference) */
    struct tn_ctl *ctl;   /* runtime control: overlay, Redis, health, ramps */
    struct tn_admin *admin;
    struct tn_admin_http *admin_http;
    struct tn_worker **workers;
    size_t nworkers;
    atomic_uint alive;
    struct event *exit_ev;  /* a worker thread ended */
    struct event *drain_ev; /* drain deadline */
    struct event *sig[4];
    int stopping;
};

/* Binds a listening socket for addr; SO_REUSEPORT so each worker has its
 * own accept queue. Returns the fd or -1 with *why. */
static int bind_listener(const struct tn_conf_addr *a, const char **why)
{
    int fd, one = 1;

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0 || listen(fd, 1024) < 0) {
        *why = strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* Each client connection can hold an upstream one: make room for both, up
 * to the hard limit, as HAProxy and NGINX do. */
static void raise_nofile(const struct tn_conf *c)
{
    rlim_t need = (rlim_t)c->limits.connections * 2 + 256;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
        tn_log(TN_LOG_WARN, "open files limited to %llu, below the %llu that limits.connections %u needs",
               (unsigned long long)rl.rlim_cur, (unsigned long long)need, c->limits.connections);
}

/* Loads path into a plan; on failure *err (malloc'd) holds every error,
 * one per line. */
static int load_plan_err(const char *path, uint64_t version, struct tn_plan **out, char **err)
{
    char *errors = NULL;
    struct tn_conf *conf = tn_conf_load(path, &errors);

    if (!conf) {
        *err = errors ? errors : tn_xstrdup("cannot load the configuration\n");
        return TN_ERR;
    }
    *out = tn_plan_new(conf, version, &errors);
    if (!*out) {
        size_t n = strlen(path) + (errors ? strlen(errors) : 40) + 8;

        *err = tn_xmalloc(n);
        snprintf(*err, n, "%s: %s\n", path, errors ? errors : "cannot build the routing plan");
        free(errors);
        return TN_ERR;
    }
    return TN_OK;
}

static int load_plan(const char *path, uint64_t version, struct tn_plan **out)
{
    char *err = NULL;

    if (load_plan_err(path, version, out, &err) == TN_OK)
        return TN_OK;
    fputs(err, stderr);
    free(err);
    return TN_ERR;
}

int tn_server_check(const char *path)
{
    struct tn_plan *plan = NULL;

    if (load_plan(path, 1, &plan) != TN_OK)
        return 1;
    tn_plan_unref(plan);
    printf("configuration file %s is valid\n", path);
    return 0;
}


static int listens_equal(const struct tn_conf *a, const struct tn_conf *b)
{
    size_t i;

    if (a->nlistens != b->nlistens)
        return 0;
    for (i = 0; i < a->nlistens; i++)
        if (strcmp(a->listens[i].addr.text, b->listens[i].addr.text))
            return 0;
    return 1;
}

/* SIGHUP and the `reload` command: a new plan, or the old one stays and
 * *err says why. */
static int reload(struct server *s, char **err)
{
    struct tn_plan *plan = NULL;
    char *why = NULL;
    size_t i;

    tn_log(TN_LOG_INFO, "reloading %s", s->path);
    if (load_plan_err(s->path, s->plan->version + 1, &plan, &why) != TN_OK) {
        tn_log(TN_LOG_ERR, "reload rejected; plan %llu stays in force: %s",
               (unsigned long long)s->plan->version, why);
        if (err)
            *err = why;
        else
            free(why);
        return TN_ERR;
    }
    if (!listens_equal(s->plan->conf, plan->conf))
        tn_log(TN_LOG_WARN, "reload: listener changes take effect at the next restart");
    if (s->plan->conf->workers != plan->conf->workers ||
        s->plan->conf->limits.connections != plan->conf->limits.connections)
        tn_log(TN_LOG_WARN, "reload: workers and limits.connections take effect at the next restart");
    if (strcmp(s->plan->conf->access_log, plan->conf->access_log))
        tn_log(TN_LOG_WARN, "reload: a new access_log target takes effect at the next restart");
    if ((s->plan->conf->admin.socket || plan->conf->admin.socket) &&
        (!s->plan->conf->admin.socket || !plan->conf->admin.socket ||
         strcmp(s->plan->conf->admin.socket, plan->conf->admin.socket)))
        tn_log(TN_LOG_WARN, "reload: a new admin.socket takes effect at the next restart");
    /* the runtime overlay first (it may grow for new ids), then the plan */
    tn_ctl_set_plan(s->ctl, tn_plan_ref(plan));
    for (i = 0; i < s->nworkers; i++)
        tn_worker_publish(s->workers[i], tn_plan_ref(plan));
    tn_plan_unref(s->plan);
    s->plan = plan;
    tn_log(TN_LOG_INFO, "plan %llu in force", (unsigned long long)plan->version);
    return TN_OK;
}

static int reload_hook(void *arg, char **err)
{
    return reload(arg, err);
}

/* Hands a new overlay to every worker. */
static void publish_hook(void *arg, struct tn_overlay *ov)
{
    struct server *s = arg;
    size_t i;

    for (i = 0; i < s->nworkers; i++)
        tn_worker_publish_overlay(s->workers[i], tn_overlay_ref(ov));
    tn_overlay_unref(ov);
}

static void stop_all(struct server *s)
{
    size_t i;

    for (i = 0; i < s->nworkers; i++)
        tn_worker_stop(s->workers[i]);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct server *s = arg;
    size_t i;

    (void)what;
    switch (sig) {
    case SIGHUP:
        if (!s->stopping)
            reload(s, NULL);
        break;
    case SIGUSR1:
        tn_accesslog_reopen();
        break;
    case SIGTERM:
        if (s->stopping)
            break;
        s->stopping = 1;
        tn_log(TN_LOG_INFO, "SIGTERM: draining (at most %u ms)", s->plan->conf->timeouts.drain_ms);
        for (i = 0; i < s->nworkers; i++)
            tn_worker_drain(s->workers[i]);
        {
            uint32_t ms = s->plan->conf->timeouts.drain_ms;
            struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

            evtimer_add(s->drain_ev, &tv);
        }
        break;
    case SIGINT:
        tn_log(TN_LOG_INFO, "SIGINT: stopping now");
        s->stopping = 1;
        stop_all(s);
        break;
    }
}

static void on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    tn_log(TN_LOG_WARN, "drain timeout reached: closing what is left");
    stop_all(arg);
}

static void on_worker_exit(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;

    (void)fd;
    (void)what;
    if (atomic_load(&s->alive) == 0)
        event_base_loopexit(s->base, NULL);
}

/* Worker thread hook: one worker ended. */
static void worker_exited(void *arg)
{
    struct server *s = arg;

    atomic_fetch_sub(&s->alive, 1);
    event_active(s->exit_ev, 0, 0);
}

static int start_workers(struct server *s)
{
    const struct tn_conf *c = s->plan->conf;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    size_t i, j, n = c->workers ? c->workers : (size_t)(ncpu > 0 ? ncpu : 1);

    s->workers = tn_xcalloc(n, sizeof(*s->workers));
    for (i = 0; i < n; i++) {
        int *fds = tn_xcalloc(c->nlistens, sizeof(int));
        size_t nfds = 0;
        const char *why = NULL;

        for (j = 0; j < c->nlistens; j++) {
            fds[nfds] = bind_listener(&c->listens[j].addr, &why);
            if (fds[nfds] < 0) {
                tn_log(TN_LOG_ERR, "listen %s: %s", c->listens[j].addr.text, why);
                free(fds);
                return TN_ERR;
            }
            nfds++;
        }
        s->workers[i] = tn_worker_new((int)i, (uint32_t)n, fds, nfds, tn_plan_ref(s->plan), &why);
        if (!s->workers[i]) {
            tn_log(TN_LOG_ERR, "worker %zu: %s", i, why);
            free(fds);
            return TN_ERR;
        }
        s->workers[i]->listen_fds = fds;
        s->workers[i]->max_clients = (uint32_t)((c->limits.connections + n - 1) / n);
        s->workers[i]->on_exit = worker_exited;
        s->workers[i]->on_exit_arg = s;
        s->nworkers++;
    }
    s->ctl->nworkers = (unsigned)s->nworkers;
    s->ctl->shards = tn_xcalloc(s->nworkers ? s->nworkers : 1, sizeof(*s->ctl->shards));
    for (i = 0; i < s->nworkers; i++)
        s->ctl->shards[i] = s->workers[i]->stats;
    s->ctl->nshards = s->nworkers;
    tn_ctl_start(s->ctl); /* the first overlay reaches the workers before they run */
    for (i = 0; i < s->nworkers; i++) {
        atomic_fetch_add(&s->alive, 1);
        if (tn_worker_start(s->workers[i]) != TN_OK) {
            atomic_fetch_sub(&s->alive, 1);
            tn_log(TN_LOG_ERR, "cannot start worker %zu", i);
            return TN_ERR;
        }
    }
    return TN_OK;
}

static void shutdown_server(struct server *s)
{
    size_t i;

    for (i = 0; i < s->nworkers; i++)
        tn_worker_join_free(s->workers[i]);
    free(s->workers);
    tn_admin_free(s->admin);
    tn_admin_http_free(s->admin_http);
    tn_ctl_free(s->ctl);
    tn_accesslog_close();
    for (i = 0; i < TN_ARRAY_LEN(s->sig); i++)
        if (s->sig[i])
            event_free(s->sig[i]);
    if (s->exit_ev)
        event_free(s->exit_ev);
    if (s->drain_ev)
        event_free(s->drain_ev);
    if (s->base)
        event_base_free(s->base);
    tn_plan_unref(s->plan);
    libevent_global_shutdown();
}

int tn_server_run(const char *path)
{
    static const int sigs[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1 };
    struct server s = { .path = path };
    const char *why = NULL;
    int rc = 0;
    size_t i;

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    if (load_plan(path, 1, &s.plan) != TN_OK)
        return 1;
    raise_nofile(s.plan->conf);
    if (tn_accesslog_open(s.plan->conf->access_log, &why) != TN_OK) {
        tn_log(TN_LOG_ERR, "access log %s: %s", s.plan->conf->access_log, why);
        tn_plan_unref(s.plan);
        return 1;
    }
    s.base = event_base_new();
    s.exit_ev = event_new(s.base, -1, 0, on_worker_exit, &s);
    s.drain_ev = evtimer_new(s.base, on_drain_deadline, &s);
    for (i = 0; i < TN_ARRAY_LEN(sigs); i++) {
        s.sig[i] = evsignal_new(s.base, sigs[i], on_signal, &s);
        event_add(s.sig[i], NULL);
    }
    {
        struct tn_ctl_hooks hooks = {publish_hook, reload_hook, &s};

        s.ctl = tn_ctl_new(s.base, tn_plan_ref(s.plan), &hooks);
        s.ctl->config_path = path;
    }
    if (s.plan->conf->admin.socket &&
        !(s.admin = tn_admin_new(s.base, s.plan->conf->admin.socket, s.plan->conf->admin.socket_mode,
                                 tn_ctl_exec, s.ctl, &why))) {
        tn_log(TN_LOG_ERR, "admin socket %s: %s", s.plan->conf->admin.socket, why);
        rc = 1;
    } else if (s.plan->conf->admin.http &&
               !(s.admin_http = tn_admin_http_new(s.base, &s.plan->conf->admin.http_addr, s.ctl,
                                                  &why))) {
        tn_log(TN_LOG_ERR, "admin http %s: %s", s.plan->conf->admin.http, why);
        rc = 1;
    } else if (start_workers(&s) != TN_OK) {
        stop_all(&s);
        rc = 1;
    } else {
        tn_log(TN_LOG_INFO, "turnout started: %zu workers, plan %llu, %zu routes", s.nworkers,
               (unsigned long long)s.plan->version, s.plan->nroutes);
    }
    if (atomic_load(&s.alive))
        event_base_dispatch(s.base);
    tn_log(TN_LOG_INFO, "turnout stopped");
    shutdown_server(&s);
    return rc;
}
