/* The access log. Each worker appends JSON lines to its own shard (an
 * evbuffer behind a mutex that only the writer thread also takes); the
 * writer thread moves shards to the file every 100 ms, or sooner when a
 * shard grows, so a slow disk never blocks a worker. A shard past 16 MiB
 * drops lines (counted) rather than growing without bound. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "turnout/accesslog.h"
#include "turnout/common.h"
#include "turnout/device.h"
#include "turnout/module.h"
#include "turnout/conf-t.h"
#include "turnout/log.h"
#include "turnout/route.h"
#include "turnout/stream.h"
#include "turnout/worker-t.h"

#define SHARD_MAX (16u << 20)
#define SHARD_KICK (256u << 10)
#define MAX_SHARDS 512

struct tn_accesslog_shard {
    pthread_mutex_t lock;
    struct evbuffer *buf;
    uint64_t dropped;
};

static struct {
    int fd; /* -1: off */
    char *path;
    int is_stdout;
    pthread_t thread;
    pthread_mutex_t lock; /* guards shards[], nshards, stop */
    pthread_cond_t cond;
    struct tn_accesslog_shard *shards[MAX_SHARDS];
    size_t nshards;
    int stop;
    atomic_int reopen;
    int running;
    int last_errno; /* writer thread: the last write error, logged once */
} L = { .fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int open_target(void)
{
    int fd;

    if (L.is_stdout)
        return STDOUT_FILENO;
    fd = open(L.path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        tn_log(TN_LOG_ERR, "access log %s: %s", L.path, strerror(errno));
    return fd;
}

static void write_all(struct evbuffer *out)
{
    while (evbuffer_get_length(out)) {
        int n;

        if (L.fd < 0) {
            evbuffer_drain(out, evbuffer_get_length(out));
            return;
        }
        n = evbuffer_write(out, L.fd);
        if (n < 0 && errno != EINTR && errno != EAGAIN) {
            int err = errno;

            if (err != L.last_errno)
                tn_log(TN_LOG_ERR, "access log write: %s%s", strerror(err),
                       err == EPIPE ? "; access log off until reopened (SIGUSR1)" : "");
            L.last_errno = err;
            if (err == EPIPE) {
                if (!L.is_stdout)
                    close(L.fd);
                L.fd = -1;
            }
            evbuffer_drain(out, evbuffer_get_length(out));
            return;
        }
        L.last_errno = 0;
    }
}

/* Moves every shard's lines to out. Writer thread. */
static void collect(struct evbuffer *out)
{
    size_t i, n;

    pthread_mutex_lock(&L.lock);
    n = L.nshards;
    pthread_mutex_unlock(&L.lock);
    for (i = 0; i < n; i++) {
        struct tn_accesslog_shard *s = L.shards[i];

        pthread_mutex_lock(&s->lock);
        evbuffer_add_buffer(out, s->buf);
        pthread_mutex_unlock(&s->lock);
    }
}

static void *writer_main(void *arg)
{
    struct evbuffer *out = evbuffer_new();
    int stop = 0;

    (void)arg;
    while (!stop) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&L.lock);
        if (!L.stop)
            pthread_cond_timedwait(&L.cond, &L.lock, &ts);
        stop = L.stop;
        pthread_mutex_unlock(&L.lock);
        if (atomic_exchange(&L.reopen, 0) && !L.is_stdout) {
            int fd = open_target();

            if (fd >= 0) {
                if (L.fd >= 0)
                    close(L.fd);
                L.fd = fd;
            }
        }
        collect(out);
        write_all(out);
    }
    evbuffer_free(out);
    return NULL;
}

int tn_accesslog_open(const char *target, const char **why)
{
    if (!target || !strcmp(target, "off"))
        return TN_OK;
    L.is_stdout = !strcmp(target, "stdout");
    L.path = tn_xstrdup(target);
    L.fd = open_target();
    if (L.fd < 0) {
        *why = "cannot open the access log file";
        return TN_ERR;
    }
    if (pthread_create(&L.thread, NULL, writer_main, NULL)) {
        *why = "cannot start the access log thread";
        return TN_ERR;
    }
    L.running = 1;
    return TN_OK;
}

struct tn_accesslog_shard *tn_accesslog_shard_new(void)
{
    struct tn_accesslog_shard *s;

    if (!L.running)
        return NULL;
    s = tn_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->buf = evbuffer_new();
    pthread_mutex_lock(&L.lock);
    TN_BUG_ON(L.nshards >= MAX_SHARDS);
    L.shards[L.nshards++] = s;
    pthread_mutex_unlock(&L.lock);
    return s;
}

/* Appends s[0..n) as the inside of a JSON string. */
static void add_json_str(struct evbuffer *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, run = 0;

    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[6];

        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(b, s + run, i - run);
        run = i + 1;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            evbuffer_add(b, esc, 2);
            continue;
        }
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[ch >> 4];
        esc[5] = hex[ch & 15];
        evbuffer_add(b, esc, 6);
    }
    evbuffer_add(b, s + run, n - run);
}

static void add_field(struct evbuffer *b, const char *key, const char *v, size_t n)
{
    evbuffer_add_printf(b, ",\"%s\":", key);
    if (!v) {
        evbuffer_add(b, "null", 4);
        return;
    }
    evbuffer_add(b, "\"", 1);
    add_json_str(b, v, n);
    evbuffer_add(b, "\"", 1);
}

static const char *iso_now(struct tn_worker *w, char *out, size_t n)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    if (tv.tv_sec != w->date_sec) {
        struct tm tm;

        gmtime_r(&tv.tv_sec, &tm);
        strftime(w->date, sizeof(w->date), "%Y-%m-%dT%H:%M:%S", &tm);
        w->date_sec = tv.tv_sec;
    }
    snprintf(out, n, "%s.%03dZ", w->date, (int)(tv.tv_usec / 1000));
    return out;
}

static void add_ms(struct evbuffer *b, const char *key, uint64_t from_us, uint64_t to_us)
{
    if (!from_us || !to_us || to_us < from_us)
        evbuffer_add_printf(b, ",\"%s\":null", key);
    else
        evbuffer_add_printf(b, ",\"%s\":%.3f", key, (double)(to_us - from_us) / 1000.0);
}

/* "attempts":[{"backend":..,"server":..,"status":..,"error":..,"connect_ms":..,"ttfb_ms":..}] */
static void add_attempts(struct evbuffer *b, const struct tn_stream *s, const struct tn_conf *conf)
{
    unsigned i;

    evbuffer_add(b, ",\"attempts\":[", 13);
    for (i = 0; conf && i < s->natt; i++) {
        const struct tn_attempt *a = &s->att[i];
        const struct tn_conf_backend *be = &conf->backends[a->backend];
        const char *server = be->servers[a->server].name;
        const char *err = tn_attempt_error_name(a->err);

        evbuffer_add(b, i ? ",{" : "{", i ? 2 : 1);
        evbuffer_add(b, "\"backend\":\"", 11);
        add_json_str(b, be->name, strlen(be->name));
        evbuffer_add(b, "\",\"server\":\"", 12);
        add_json_str(b, server, strlen(server));
        evbuffer_add(b, "\"", 1);
        if (a->status)
            evbuffer_add_printf(b, ",\"status\":%d", a->status);
        else
            evbuffer_add(b, ",\"status\":null", 14);
        add_field(b, "error", err, err ? strlen(err) : 0);
        if (a->why) /* only on failed attempts: "why":"tls_verify_failed" */
            add_field(b, "why", a->why, strlen(a->why));
        if (a->reused)
            evbuffer_add(b, ",\"connect_ms\":null", 18);
        else
            add_ms(b, "connect_ms", a->start_us, a->connected_us);
        add_ms(b, "ttfb_ms", a->start_us, a->first_byte_us);
        evbuffer_add(b, "}", 1);
    }
    evbuffer_add(b, "]", 1);
}

/* What classification found: null where it did not run. */
static void add_facts(struct evbuffer *b, const struct tn_stream *s)
{
    const struct tn_decision *d = &s->dec;
    const struct tn_facts *f = &d->facts;
    const struct tn_plan *p = s->wp ? s->wp->plan : NULL;
    char buf[512];
    size_t n;

    if (p && d->route >= 0) {
        n = tn_route_match_keys(&p->conf->routes[d->route].match, buf, sizeof(buf));
        add_field(b, "match", buf, n);
    } else {
        add_field(b, "match", NULL, 0);
    }
    if (f->have & TN_FACT_GEO) {
        add_field(b, "country", f->geo.country, strlen(f->geo.country));
        add_field(b, "continent", f->geo.continent, strlen(f->geo.continent));
    } else {
        add_field(b, "country", NULL, 0);
        add_field(b, "continent", NULL, 0);
    }
    if (p && (f->have & TN_FACT_DEVICE) && f->device >= 0) {
        const char *dev = tn_device_plan_name(p, f->device);

        add_field(b, "device", dev, dev ? strlen(dev) : 0);
    } else {
        add_field(b, "device", NULL, 0);
    }
    if (p && (f->have & TN_FACT_SEGMENTS)) {
        n = tn_route_segment_names(p, f->segments, buf, sizeof(buf));
        add_field(b, "segments", buf, n);
    } else {
        add_field(b, "segments", NULL, 0);
    }
    if (d->override)
        add_field(b, "override", tn_route_override_name(d->override),
                  strlen(tn_route_override_name(d->override)));
    else
        add_field(b, "override", NULL, 0);
}

static void format_line(struct evbuffer *b, const struct tn_stream *s)
{
    const struct tn_conf *conf = s->wp ? s->wp->plan->conf : NULL;
    const struct tn_decision *d = &s->dec;
    const struct tn_attempt *last = s->natt ? &s->att[s->natt - 1] : NULL;
    const char *route = NULL, *backend = NULL, *server = NULL, *reason = s->reason;
    char when[64];
    uint64_t dur_us = tn_now_us() - s->start_us;

    if (conf && d->route >= 0)
        route = conf->routes[d->route].name;
    if (conf && last) {
        backend = conf->backends[last->backend].name;
        server = conf->backends[last->backend].servers[last->server].name;
    } else if (conf && d->backend >= 0) {
        backend = conf->backends[d->backend].name;
    }
    if (!reason && d->route >= 0)
        reason = tn_route_reason_name(d->reason);
    evbuffer_add_printf(b, "{\"time\":\"%s\"", iso_now(s->w, when, sizeof(when)));
    add_field(b, "client", s->client_ip, strlen(s->client_ip));
    add_field(b, "method", s->req.method_str, s->req.method_len);
    add_field(b, "path", s->req.target, s->req.target_len);
    add_field(b, "proto", s->proto, s->proto ? strlen(s->proto) : 0);
    evbuffer_add_printf(b,
                        ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
                        "\"duration_ms\":%.3f",
                        s->status, (unsigned long long)s->bytes_in,
                        (unsigned long long)s->bytes_out, (double)dur_us / 1000.0);
    add_field(b, "route", route, route ? strlen(route) : 0);
    add_field(b, "backend", backend, backend ? strlen(backend) : 0);
    add_field(b, "server", server, server ? strlen(server) : 0);
    if (d->key_source == TN_STICKY_NONE || d->route < 0)
        add_field(b, "key_source", NULL, 0);
    else
        add_field(b, "key_source", tn_route_sticky_name(d->key_source),
                  strlen(tn_route_sticky_name(d->key_source)));
    if (d->has_bucket)
        evbuffer_add_printf(b, ",\"bucket\":%u", d->bucket);
    else
        evbuffer_add(b, ",\"bucket\":null", 14);
    add_field(b, "reason", reason, reason ? strlen(reason) : 0);
    add_facts(b, s);
    add_attempts(b, s, conf);
    evbuffer_add(b, "}\n", 2);
}

void tn_accesslog_write(struct tn_accesslog_shard *s, const struct tn_stream *st)
{
    size_t len;

    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    len = evbuffer_get_length(s->buf);
    if (len >= SHARD_MAX)
        s->dropped++;
    else
        format_line(s->buf, st);
    pthread_mutex_unlock(&s->lock);
    if (len >= SHARD_KICK && len < SHARD_MAX)
        pthread_cond_signal(&L.cond);
}

void tn_accesslog_reopen(void)
{
    atomic_store(&L.reopen, 1);
}

void tn_accesslog_close(void)
{
    size_t i;

    if (!L.running)
        return;
    pthread_mutex_lock(&L.lock);
    L.stop = 1;
    pthread_cond_signal(&L.cond);
    pthread_mutex_unlock(&L.lock);
    pthread_join(L.thread, NULL);
    L.running = 0;
    for (i = 0; i < L.nshards; i++) {
        struct tn_accesslog_shard *s = L.shards[i];

        if (s->dropped)
            tn_log(TN_LOG_WARN, "access log: %llu lines dropped (disk too slow)",
                   (unsigned long long)s->dropped);
        evbuffer_free(s->buf);
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    L.nshards = 0;
    if (L.fd >= 0 && !L.is_stdout)
        close(L.fd);
    L.fd = -1;
    free(L.path);
    L.path = NULL;
}
