/* Active health checks on the control thread's event_base. Each checked
 * server owns one timer and, while a check is in flight, one non-blocking
 * socket: connect, the TLS handshake for a backend with tls: (verified like
 * its traffic, the last session resumed), send a GET with Connection:
 * close, read the status line, hang up. Consecutive results move the server
 * DOWN after `fall` failures and UP after `rise` passes; each move is
 * reported to the callback. */
#include <errno.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/health.h"
#include "turnout/log.h"
#include "turnout/route-t.h"
#include "turnout/tlsclient.h"

/* "HTTP/1.1 200" plus the byte after it: all of the answer we look at. */
#define STATUS_LINE_MIN 13

#define REQ_FMT                                                                                    \
    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: turnout-health\r\nConnection: close\r\n\r\n"

#define HC_STATES(X)                                                                               \
    X(IDLE)      /* between checks: the timer starts the next one */                               \
    X(CONNECT)   /* connect() in progress; the timer is the check's deadline */                    \
    X(HANDSHAKE) /* TLS backends: the handshake */                                                 \
    X(SEND)      /* writing the request */                                                         \
    X(READ)      /* request sent, reading the status line */

enum hc_state {
#define TN_X_ENUM(s) HC_##s,
    HC_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

static const char *const hc_state_names[] = {
#define TN_X_NAME(s) #s,
    HC_STATES(TN_X_NAME)
#undef TN_X_NAME
};

/* One checked server. Settings are copied from the plan, which is only
 * borrowed by tn_health_configure(). */
struct hc_server {
    struct tn_health *h;
    uint32_t id;
    enum hc_state state;         /* the check's progress; only set_state() writes it */
    enum tn_health_state health; /* the verdict, UP or DOWN: moved by check_done() */
    uint32_t passes, fails;      /* consecutive results */
    unsigned gen;                /* the configure pass that last saw it */

    struct sockaddr_storage ss; /* settings: compared on reload */
    socklen_t len;
    char *addr_text;
    char *path;
    uint32_t interval_ms, timeout_ms, rise, fall;
    uint16_t *expect;
    size_t nexpect;
    char *req; /* the request, built once */
    size_t req_len;
    struct tn_tlsclient *tls; /* a reference to the newest plan's context; NULL: plain */
    char *tls_id;             /* its identity (compared on reload) */
    SSL_SESSION *sess;        /* the last TLS session, resumed by the next check */

    struct event *timer; /* next check, or the deadline of the one in flight */
    struct event *io;    /* the check in flight: watches fd */
    short io_what;       /* what io waits for */
    evutil_socket_t fd;  /* -1 when idle */
    SSL *ssl;            /* the check in flight's TLS, or NULL */
    uint64_t started_ms;
    size_t sent;
    char buf[STATUS_LINE_MIN];
    size_t got;
    char last[96]; /* the last result, for tn_health_get() */
};

/* A state change made by tn_health_configure() rather than by a check (a
 * DOWN server whose check changed restarts UP; one no longer checked is
 * UNCHECKED), told to the callback from the loop, not from inside the call. */
struct hc_notice {
    uint32_t id;
    enum tn_health_state state;
    const char *why; /* static */
};

struct tn_health {
    struct event_base *base;
    tn_health_fn *cb;
    void *arg;
    struct hc_server **by_id; /* [server id], NULL when not checked */
    uint32_t cap;
    unsigned gen;
    struct hc_notice *notices; /* FIFO, told one per on_notice() */
    size_t nnotices;
    struct event *notice_ev;
};

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_io(evutil_socket_t fd, short what, void *arg);

/* ---- settings ---- */

/* The loader makes these at least 1; a hand-built conf may not. */
static uint32_t at_least_1(uint32_t v)
{
    return v ? v : 1;
}

static const char *tls_id_of(const struct tn_conf_upstream_tls *t)
{
    return t && t->ctx ? tn_tlsclient_id(t->ctx) : "";
}

static int same_settings(const struct hc_server *s, const struct tn_conf_health *hc,
                         const struct tn_conf_server *sv, const struct tn_conf_upstream_tls *t)
{
    return !strcmp(s->tls_id, tls_id_of(t)) && s->len == sv->addr.len &&
           !memcmp(&s->ss, &sv->addr.ss, s->len) &&
           !strcmp(s->addr_text, sv->addr.text ? sv->addr.text : "") &&
           !strcmp(s->path, hc->path ? hc->path : "/") &&
           s->interval_ms == at_least_1(hc->interval_ms) &&
           s->timeout_ms == at_least_1(hc->timeout_ms) && s->rise == at_least_1(hc->rise) &&
           s->fall == at_least_1(hc->fall) && s->nexpect == hc->nexpect &&
           (!s->nexpect || !memcmp(s->expect, hc->expect, s->nexpect * sizeof(*s->expect)));
}

static struct hc_server *server_new(struct tn_health *h, uint32_t id,
                                    const struct tn_conf_health *hc,
                                    const struct tn_conf_server *sv,
                                    const struct tn_conf_upstream_tls *t)
{
    struct hc_server *s = tn_xcalloc(1, sizeof(*s));
    const char *host;
    int n;

    s->h = h;
    s->id = id;
    s->health = TN_HEALTH_UP; /* as HAProxy: innocent until checked */
    s->fd = -1;
    memcpy(&s->ss, &sv->addr.ss, sv->addr.len);
    s->len = sv->addr.len;
    s->addr_text = tn_xstrdup(sv->addr.text ? sv->addr.text : "");
    s->path = tn_xstrdup(hc->path ? hc->path : "/");
    s->interval_ms = at_least_1(hc->interval_ms);
    s->timeout_ms = at_least_1(hc->timeout_ms);
    s->rise = at_least_1(hc->rise);
    s->fall = at_least_1(hc->fall);
    if (hc->nexpect) {
        s->expect = tn_xcalloc(hc->nexpect, sizeof(*s->expect));
        memcpy(s->expect, hc->expect, hc->nexpect * sizeof(*s->expect));
        s->nexpect = hc->nexpect;
    }
    s->tls_id = tn_xstrdup(tls_id_of(t));
    if (t && t->ctx) {
        s->tls = t->ctx;
        tn_tlsclient_ref(s->tls);
    }
    /* the name the server's certificate is for, else the address */
    host = s->tls && tn_tlsclient_server_name(s->tls) ? tn_tlsclient_server_name(s->tls)
                                                      : s->addr_text;
    n = snprintf(NULL, 0, REQ_FMT, s->path, host);
    TN_BUG_ON(n <= 0);
    s->req = tn_xmalloc((size_t)n + 1);
    snprintf(s->req, (size_t)n + 1, REQ_FMT, s->path, host);
    s->req_len = (size_t)n;
    s->timer = evtimer_new(h->base, on_timer, s);
    if (!s->timer) {
        tn_log(TN_LOG_ERR, "health: out of memory creating a check timer");
        abort(); /* control plane, like tn_xmalloc */
    }
    return s;
}

/* ---- one check ---- */

static void set_state(struct hc_server *s, enum hc_state to)
{
    /* a check only moves forward (a plain one skips HANDSHAKE), and any
     * step may end it */
    TN_BUG_ON(to != HC_IDLE && to != s->state + 1 && !(s->state == HC_CONNECT && to == HC_SEND));
    tn_log(TN_LOG_DEBUG, "health: server %u %s -> %s", (unsigned)s->id, hc_state_names[s->state],
           hc_state_names[to]);
    s->state = to;
}

/* Ends the check in flight, if any: closes its socket. */
static void check_stop(struct hc_server *s)
{
    if (s->io) {
        event_free(s->io);
        s->io = NULL;
    }
    if (s->ssl) {
        if (SSL_is_init_finished(s->ssl))
            SSL_shutdown(s->ssl); /* close_notify, best effort: the socket closes */
        SSL_free(s->ssl);
        s->ssl = NULL;
        ERR_clear_error();
    }
    if (s->fd >= 0) {
        evutil_closesocket(s->fd);
        s->fd = -1;
    }
    if (s->state != HC_IDLE)
        set_state(s, HC_IDLE);
}

static void server_free(struct hc_server *s)
{
    check_stop(s);
    event_free(s->timer);
    free(s->addr_text);
    free(s->path);
    free(s->expect);
    free(s->req);
    tn_tlsclient_unref(s->tls);
    free(s->tls_id);
    tn_tlsclient_session_free(s->sess);
    free(s);
}

static void schedule(struct hc_server *s, uint32_t delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};

    if (evtimer_add(s->timer, &tv) != 0)
        tn_log(TN_LOG_ERR, "health: cannot schedule the check of server %u", (unsigned)s->id);
}

static int expected(const struct hc_server *s, int status)
{
    size_t i;

    if (!s->nexpect)
        return status >= 200 && status <= 399;
    for (i = 0; i < s->nexpect; i++)
        if (s->expect[i] == status)
            return 1;
    return 0;
}

/* Ends the check with a result: status > 0 is an HTTP answer, else why
 * says what went wrong. Schedules the next check, then reports a
 * transition; the callback may reconfigure or free h, so it comes last and
 * nothing of s is touched after it. */
static void check_done(struct hc_server *s, int status, const char *why)
{
    struct tn_health *h = s->h;
    uint64_t elapsed = tn_now_ms() - s->started_ms;
    int pass = status > 0 && expected(s, status);
    enum tn_health_state to = s->health;
    char short_why[sizeof(s->last)];
    uint32_t id = s->id;

    check_stop(s);
    if (status > 0) {
        snprintf(short_why, sizeof(short_why), "HTTP %d", status);
        snprintf(s->last, sizeof(s->last), "HTTP %d in %llu ms", status,
                 (unsigned long long)elapsed);
    } else {
        snprintf(short_why, sizeof(short_why), "%s", why);
        snprintf(s->last, sizeof(s->last), "%s", why);
    }
    if (pass) {
        s->fails = 0;
        if (s->passes < UINT32_MAX)
            s->passes++;
        if (s->health == TN_HEALTH_DOWN && s->passes >= s->rise) {
            to = TN_HEALTH_UP;
            snprintf(short_why, sizeof(short_why), "passed %u checks", (unsigned)s->passes);
        }
    } else {
        s->passes = 0;
        if (s->fails < UINT32_MAX)
            s->fails++;
        if (s->health == TN_HEALTH_UP && s->fails >= s->fall)
            to = TN_HEALTH_DOWN;
    }
    schedule(s, elapsed >= s->interval_ms ? 0 : s->interval_ms - (uint32_t)elapsed);
    if (to == s->health)
        return;
    s->health = to;
    tn_log(TN_LOG_DEBUG, "health: server %u is %s: %s", (unsigned)id, tn_health_state_name(to),
           short_why);
    if (h->cb)
        h->cb(h->arg, id, to, short_why);
}

__attribute__((format(printf, 2, 3))) static void check_fail(struct hc_server *s, const char *fmt,
                                                             ...)
{
    char why[sizeof(s->last)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    check_done(s, 0, why);
}

/* Watches the socket for what (EV_READ or EV_WRITE) from now on. */
static int io_wait(struct hc_server *s, short what)
{
    if (s->io && s->io_what == what)
        return TN_OK;
    if (s->io)
        event_free(s->io);
    s->io_what = what;
    s->io = event_new(s->h->base, s->fd, what | EV_PERSIST, on_io, s);
    if (!s->io || event_add(s->io, NULL) != 0) {
        check_fail(s, "cannot watch the socket");
        return TN_ERR;
    }
    return TN_OK;
}

static void check_start(struct hc_server *s)
{
    const struct sockaddr *sa = (const struct sockaddr *)&s->ss;

    s->started_ms = tn_now_ms();
    s->sent = s->got = 0;
    set_state(s, HC_CONNECT);
    schedule(s, s->timeout_ms); /* the deadline */
    s->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        check_fail(s, "socket: %s", strerror(errno));
        return;
    }
    if (connect(s->fd, sa, s->len) != 0 && errno != EINPROGRESS) {
        check_fail(s, "connect: %s", strerror(errno));
        return;
    }
    (void)io_wait(s, EV_WRITE);
}

/* Matches "HTTP/d.d ddd" followed by a space or the line end. Returns
 * TN_OK with *status, TN_AGAIN when more bytes are needed, TN_ERR when it
 * cannot be a status line. */
static int parse_status(const char *p, size_t n, int *status)
{
    static const char pattern[] = "HTTP/9.9 999";
    size_t i;

    for (i = 0; i < n && i < sizeof(pattern) - 1; i++) {
        if (pattern[i] == '9' ? p[i] < '0' || p[i] > '9' : p[i] != pattern[i])
            return TN_ERR;
    }
    if (n < STATUS_LINE_MIN)
        return TN_AGAIN;
    if (p[12] != ' ' && p[12] != '\r' && p[12] != '\n')
        return TN_ERR;
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    return TN_OK;
}

/* A TLS call that returned r <= 0: TN_AGAIN (waiting for the socket, the
 * event switched to what OpenSSL wants), 0 for the peer's end, else TN_ERR
 * after failing the check. */
static int tls_wait(struct hc_server *s, int r, const char *what)
{
    int e = SSL_get_error(s->ssl, r), err = errno;

    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return io_wait(s, e == SSL_ERROR_WANT_READ ? EV_READ : EV_WRITE) == TN_OK ? TN_AGAIN
                                                                                  : TN_ERR;
    if (s->state == HC_READ && (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !err)))
        return 0;
    if (s->state == HC_HANDSHAKE) {
        char detail[sizeof(s->last) - 8];

        tn_tlsclient_failure(s->ssl, e == SSL_ERROR_SYSCALL && err ? err : EPROTO, detail,
                             sizeof(detail));
        check_fail(s, "tls %s", detail);
    } else {
        check_fail(s, "tls %s: %s", what,
                   e == SSL_ERROR_SYSCALL && err ? strerror(err) : "protocol error");
    }
    return TN_ERR;
}

static void send_request(struct hc_server *s);

/* The TLS handshake's next step; the request goes out once it is done. */
static void handshake(struct hc_server *s)
{
    int r;

    ERR_clear_error();
    errno = 0;
    r = SSL_do_handshake(s->ssl);
    if (r != 1) {
        (void)tls_wait(s, r, "handshake");
        return;
    }
    set_state(s, HC_SEND);
    send_request(s);
}

/* Writes what the socket takes of the request; then waits for the answer. */
static void send_request(struct hc_server *s)
{
    ssize_t n;

    if (s->ssl) {
        int r;

        ERR_clear_error();
        errno = 0;
        r = SSL_write(s->ssl, s->req + s->sent, (int)(s->req_len - s->sent));
        if (r <= 0) {
            (void)tls_wait(s, r, "write");
            return;
        }
        n = r;
    } else {
        n = send(s->fd, s->req + s->sent, s->req_len - s->sent, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                check_fail(s, "send: %s", strerror(errno));
            return;
        }
    }
    s->sent += (size_t)n;
    if (s->sent < s->req_len) {
        (void)io_wait(s, EV_WRITE);
        return;
    }
    set_state(s, HC_READ);
    (void)io_wait(s, EV_READ);
}

static void on_writable(struct hc_server *s)
{
    int err = 0;
    socklen_t elen = sizeof(err);

    if (s->state == HC_CONNECT) {
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err) {
            check_fail(s, "connect: %s", strerror(err));
            return;
        }
        if (s->tls) {
            s->ssl = tn_tlsclient_ssl(s->tls, &s->sess);
            if (!s->ssl || SSL_set_fd(s->ssl, s->fd) != 1) {
                ERR_clear_error();
                check_fail(s, "tls: out of memory");
                return;
            }
            SSL_set_connect_state(s->ssl);
            set_state(s, HC_HANDSHAKE);
            handshake(s);
            return;
        }
        set_state(s, HC_SEND);
    }
    send_request(s);
}

/* Reads up to n bytes of the answer into p: the count, 0 at its end, -1
 * while waiting, or -2 when the check already failed. */
static ssize_t read_answer(struct hc_server *s, char *p, size_t n)
{
    ssize_t got;
    int r;

    if (!s->ssl) {
        got = recv(s->fd, p, n, 0);
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            check_fail(s, "recv: %s", strerror(errno));
            return -2;
        }
        return got;
    }
    ERR_clear_error();
    errno = 0;
    r = SSL_read(s->ssl, p, (int)n);
    if (r > 0) {
        (void)io_wait(s, EV_READ); /* after a WANT_WRITE */
        return r;
    }
    r = tls_wait(s, r, "read");
    return r == TN_AGAIN ? -1 : r == 0 ? 0 : -2;
}

static void on_readable(struct hc_server *s)
{
    ssize_t n = read_answer(s, s->buf + s->got, sizeof(s->buf) - s->got);
    int status = 0;
    int rc;

    if (n < 0)
        return;
    s->got += (size_t)n;
    rc = parse_status(s->buf, s->got, &status);
    if (rc == TN_OK)
        check_done(s, status, NULL);
    else if (rc == TN_ERR)
        check_fail(s, "not an HTTP status line");
    else if (n == 0 && s->got == 12) /* "HTTP/1.1 200" then EOF: take it */
        check_done(s, (s->buf[9] - '0') * 100 + (s->buf[10] - '0') * 10 + (s->buf[11] - '0'), NULL);
    else if (n == 0)
        check_fail(s, "closed before a status line");
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct hc_server *s = arg;

    (void)fd;
    (void)what;
    switch (s->state) {
    case HC_CONNECT:
    case HC_SEND:
        on_writable(s);
        break;
    case HC_HANDSHAKE:
        handshake(s);
        break;
    case HC_READ:
        on_readable(s);
        break;
    case HC_IDLE:
        TN_BUG_ON(1); /* check_stop() frees io */
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct hc_server *s = arg;

    (void)fd;
    (void)what;
    if (s->state == HC_IDLE)
        check_start(s);
    else
        check_fail(s, "timeout after %u ms", (unsigned)s->timeout_ms);
}

/* ---- notices from configure ---- */

static void notice_add(struct tn_health *h, uint32_t id, enum tn_health_state state,
                       const char *why)
{
    h->notices = tn_xrealloc(h->notices, (h->nnotices + 1) * sizeof(*h->notices));
    h->notices[h->nnotices++] = (struct hc_notice){id, state, why};
}

/* Tells the oldest notice. One per call, the callback last: it may free h. */
static void on_notice(evutil_socket_t fd, short what, void *arg)
{
    struct tn_health *h = arg;
    struct hc_notice n;

    (void)fd;
    (void)what;
    if (!h->nnotices)
        return;
    n = h->notices[0];
    memmove(h->notices, h->notices + 1, --h->nnotices * sizeof(*h->notices));
    if (h->nnotices)
        event_active(h->notice_ev, EV_TIMEOUT, 0);
    if (h->cb)
        h->cb(h->arg, n.id, n.state, n.why);
}

/* ---- public ---- */

struct tn_health *tn_health_new(struct event_base *base, tn_health_fn *cb, void *arg)
{
    struct tn_health *h = tn_xcalloc(1, sizeof(*h));

    h->base = base;
    h->cb = cb;
    h->arg = arg;
    h->notice_ev = event_new(base, -1, 0, on_notice, h);
    if (!h->notice_ev) {
        tn_log(TN_LOG_ERR, "health: out of memory creating the checker");
        abort(); /* control plane, like tn_xmalloc */
    }
    return h;
}

void tn_health_free(struct tn_health *h)
{
    uint32_t i;

    if (!h)
        return;
    for (i = 0; i < h->cap; i++)
        if (h->by_id[i])
            server_free(h->by_id[i]);
    free(h->by_id);
    event_free(h->notice_ev);
    free(h->notices);
    free(h);
}

static void grow(struct tn_health *h, uint32_t id)
{
    uint32_t cap = h->cap ? h->cap : 16;

    if (id < h->cap)
        return;
    while (cap <= id)
        cap *= 2;
    h->by_id = tn_xrealloc(h->by_id, cap * sizeof(*h->by_id));
    memset(h->by_id + h->cap, 0, (cap - h->cap) * sizeof(*h->by_id));
    h->cap = cap;
}

void tn_health_configure(struct tn_health *h, const struct tn_plan *plan)
{
    const struct tn_conf *c = plan->conf;
    struct hc_server *s;
    size_t b, i;
    uint32_t id;

    h->gen++;
    for (b = 0; b < c->nbackends; b++) {
        const struct tn_conf_backend *be = &c->backends[b];

        if (!be->health.enabled)
            continue;
        for (i = 0; i < be->nservers; i++) {
            id = plan->server_ids[b][i];
            grow(h, id);
            s = h->by_id[id];
            if (s && !same_settings(s, &be->health, &be->servers[i], &be->tls)) {
                /* a different check: starts over, UP */
                if (s->health == TN_HEALTH_DOWN)
                    notice_add(h, id, TN_HEALTH_UP, "health check changed");
                server_free(s);
                s = NULL;
            }
            if (!s) {
                s = h->by_id[id] = server_new(h, id, &be->health, &be->servers[i], &be->tls);
                schedule(s, 0);
            } else if (s->tls != be->tls.ctx) {
                /* the same identity: hold the newest plan's context */
                tn_tlsclient_ref(be->tls.ctx);
                tn_tlsclient_unref(s->tls);
                s->tls = be->tls.ctx;
            }
            s->gen = h->gen;
        }
    }
    for (id = 0; id < h->cap; id++) {
        s = h->by_id[id];
        if (s && s->gen != h->gen) {
            if (s->health == TN_HEALTH_DOWN)
                notice_add(h, id, TN_HEALTH_UNCHECKED, "no longer checked");
            server_free(s);
            h->by_id[id] = NULL;
        }
    }
    if (h->nnotices)
        event_active(h->notice_ev, EV_TIMEOUT, 0);
}

enum tn_health_state tn_health_get(const struct tn_health *h, uint32_t server_id, const char **last)
{
    const struct hc_server *s = h && server_id < h->cap ? h->by_id[server_id] : NULL;

    if (last)
        *last = s ? s->last : "";
    return s ? s->health : TN_HEALTH_UNCHECKED;
}

const char *tn_health_state_name(enum tn_health_state s)
{
    switch (s) {
    case TN_HEALTH_UNCHECKED:
        return "unchecked";
    case TN_HEALTH_UP:
        return "up";
    case TN_HEALTH_DOWN:
        return "down";
    }
    return "?";
}
