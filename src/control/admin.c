/* The admin unix socket on the control thread: binds it (replacing a stale
 * file, never a live listener), reads one command per line from each client,
 * hands it to the exec callback and ends every answer with an empty line.
 * Owns the listener and its clients; bounds what a client that does not
 * read can make us buffer. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "turnout/admin.h"
#include "turnout/common.h"
#include "turnout/log.h"

#define LINE_MAX_LEN (64u << 10) /* longest command line, without its LF */
#define OUT_HIGH (8u << 20)      /* stop taking commands above this much output */
#define OUT_LOW (1u << 20)       /* and take them again below this */
#define MAX_CLIENTS 1024u        /* beyond, a new client is told so and closed */
#define IDLE_TIMEOUT_S 600       /* no command for this long: closed */
#define WRITE_TIMEOUT_S 30       /* nothing drained for this long: closed */
#define BACKLOG 64

#define CLIENT_STATES(X)                                                                           \
    X(READING)  /* reading and answering commands */                                               \
    X(BLOCKED)  /* output above OUT_HIGH: commands wait until it drains below OUT_LOW */           \
    X(FLUSHING) /* no more commands (EOF answered, or a line too long): close once flushed */      \
    X(CLOSED)   /* shut; freed from the deferred reap event, not from its own callback */

enum client_state {
#define TN_X_ENUM(s) CLIENT_##s,
    CLIENT_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

static const char *const client_state_names[] = {
#define TN_X_NAME(s) #s,
    CLIENT_STATES(TN_X_NAME)
#undef TN_X_NAME
};

/* the peer half-closed: its buffered lines are still answered, then it is closed */
#define CLIENT_F_EOF 0x1u

struct client {
    struct tn_admin *a;
    struct bufferevent *bev;
    struct client *prev, *next; /* a->clients */
    enum client_state state;
    unsigned flags;
    char who[64]; /* "admin uid=U pid=P" */
};

struct tn_admin {
    struct event_base *base;
    struct evconnlistener *lev;
    struct event *reap_ev;  /* frees CLOSED clients outside their callbacks */
    struct event *retry_ev; /* re-enables accepting after an accept error */
    char *path;
    dev_t dev; /* the socket file we bound, so that free unlinks only ours */
    ino_t ino;
    tn_admin_exec_fn *exec;
    void *arg;
    struct client *clients;
    unsigned nclients;           /* clients not CLOSED */
    char line[LINE_MAX_LEN + 1]; /* the command being run (control thread only) */
};

static char why_buf[PATH_MAX + 64]; /* *why when it names the path (control thread only) */

static void on_read(struct bufferevent *bev, void *ctx);
static void on_write(struct bufferevent *bev, void *ctx);
static void on_event(struct bufferevent *bev, short what, void *ctx);

/* Only transitions the state comment allows; CLOSED is final. */
static void set_state(struct client *c, enum client_state to)
{
    static const unsigned legal[] = {
        [CLIENT_READING] = 1u << CLIENT_BLOCKED | 1u << CLIENT_FLUSHING | 1u << CLIENT_CLOSED,
        [CLIENT_BLOCKED] = 1u << CLIENT_READING | 1u << CLIENT_CLOSED,
        [CLIENT_FLUSHING] = 1u << CLIENT_CLOSED,
        [CLIENT_CLOSED] = 0,
    };

    if (!(legal[c->state] & 1u << to))
        tn_log(TN_LOG_ERR, "admin: client %s -> %s", client_state_names[c->state],
               client_state_names[to]);
    TN_BUG_ON(!(legal[c->state] & 1u << to));
    c->state = to;
}

static void client_close(struct client *c)
{
    if (c->state == CLIENT_CLOSED)
        return;
    set_state(c, CLIENT_CLOSED);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    c->a->nclients--;
    event_active(c->a->reap_ev, EV_TIMEOUT, 0);
}

static void client_free(struct client *c)
{
    struct tn_admin *a = c->a;

    if (c->prev)
        c->prev->next = c->next;
    else
        a->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->state != CLIENT_CLOSED)
        a->nclients--;
    bufferevent_free(c->bev);
    free(c);
}

static void on_reap(evutil_socket_t fd, short what, void *ctx)
{
    struct tn_admin *a = ctx;
    struct client *c, *next;

    (void)fd;
    (void)what;
    for (c = a->clients; c; c = next) {
        next = c->next;
        if (c->state == CLIENT_CLOSED)
            client_free(c);
    }
}

/* Takes the next command line out of in into a->line. Returns TN_OK with
 * the line (CR stripped, NUL-terminated) and its length in *len, TN_AGAIN
 * when no complete line is buffered, TN_ERR when the line is too long. At
 * EOF an unterminated last line counts as a line. */
static int next_line(struct client *c, struct evbuffer *in, size_t *len)
{
    struct tn_admin *a = c->a;
    size_t have = evbuffer_get_length(in), n, eol = 0;
    struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol, EVBUFFER_EOL_LF);

    if (p.pos < 0) {
        if (have > LINE_MAX_LEN)
            return TN_ERR;
        if (have == 0 || !(c->flags & CLIENT_F_EOF))
            return TN_AGAIN;
        n = have;
    } else {
        n = (size_t)p.pos;
        if (n > LINE_MAX_LEN)
            return TN_ERR;
    }
    if (evbuffer_remove(in, a->line, n) != (int)n)
        return TN_ERR;
    evbuffer_drain(in, eol);
    if (n > 0 && a->line[n - 1] == '\r')
        n--;
    a->line[n] = '\0';
    *len = n;
    return TN_OK;
}

/* No more commands from c: close once its output is flushed. */
static void start_flushing(struct client *c)
{
    set_state(c, CLIENT_FLUSHING);
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
        client_close(c);
}

/* Answers the complete lines buffered in c's input, in order, until the
 * output passes OUT_HIGH (then blocks c) or the input runs out. */
static void process_input(struct client *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len;
    int r;

    while (c->state == CLIENT_READING) {
        if (evbuffer_get_length(out) > OUT_HIGH) {
            set_state(c, CLIENT_BLOCKED);
            bufferevent_disable(c->bev, EV_READ); /* on_write() resumes below OUT_LOW */
            bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
            return;
        }
        r = next_line(c, in, &len);
        if (r == TN_AGAIN) {
            if (c->flags & CLIENT_F_EOF)
                start_flushing(c);
            return;
        }
        if (r == TN_ERR) {
            evbuffer_drain(in, evbuffer_get_length(in));
            evbuffer_add(out, "ERR line too long\n\n", 19);
            start_flushing(c);
            return;
        }
        if (len == 0)
            continue; /* blank lines get no answer */
        if (memchr(c->a->line, '\0', len))
            evbuffer_add_printf(out, "ERR NUL byte in command\n");
        else
            c->a->exec(c->a->arg, c->a->line, c->who, out);
        evbuffer_add(out, "\n", 1);
    }
}

static void on_read(struct bufferevent *bev, void *ctx)
{
    (void)bev;
    process_input(ctx);
}

static void on_write(struct bufferevent *bev, void *ctx)
{
    struct client *c = ctx;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));

    if (c->state == CLIENT_BLOCKED && left <= OUT_LOW) {
        set_state(c, CLIENT_READING);
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        process_input(c);
        if (c->state == CLIENT_READING && !(c->flags & CLIENT_F_EOF))
            bufferevent_enable(bev, EV_READ);
    } else if (c->state == CLIENT_FLUSHING && left == 0) {
        client_close(c);
    }
}

static void on_event(struct bufferevent *bev, short what, void *ctx)
{
    struct client *c = ctx;

    (void)bev;
    if (what & BEV_EVENT_EOF && !(what & BEV_EVENT_ERROR)) {
        c->flags |= CLIENT_F_EOF;
        if (c->state == CLIENT_READING)
            process_input(c); /* BLOCKED: on_write() gets there once drained */
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        tn_log(TN_LOG_INFO, "admin: %s closed: %s", c->who,
               what & BEV_EVENT_WRITING ? "its answer did not drain for 30 s"
                                        : "idle for 10 minutes");
    else if (what & BEV_EVENT_ERROR && errno != ECONNRESET && errno != EPIPE)
        tn_log(TN_LOG_INFO, "admin: %s closed: %s", c->who, strerror(errno));
    client_close(c);
}

static void refuse(evutil_socket_t fd)
{
    static const char msg[] = "ERR too many admin clients\n\n";

    (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *ctx)
{
    static const struct timeval idle = {IDLE_TIMEOUT_S, 0}, stuck = {WRITE_TIMEOUT_S, 0};
    struct tn_admin *a = ctx;
    struct client *c;
    struct ucred cr;
    socklen_t crlen = sizeof(cr);

    (void)lev;
    (void)sa;
    (void)salen;
    if (a->nclients >= MAX_CLIENTS) {
        refuse(fd);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
        tn_log(TN_LOG_WARN, "admin: out of memory for a new client");
        free(c);
        close(fd);
        return;
    }
    c->a = a;
    c->state = CLIENT_READING;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == 0)
        snprintf(c->who, sizeof(c->who), "admin uid=%u pid=%d", (unsigned)cr.uid, (int)cr.pid);
    else
        snprintf(c->who, sizeof(c->who), "admin uid=? pid=?");
    c->next = a->clients;
    if (a->clients)
        a->clients->prev = c;
    a->clients = c;
    a->nclients++;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_set_timeouts(c->bev, &idle, &stuck);
    bufferevent_set_max_single_write(c->bev, TN_IO_CHUNK);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void on_retry(evutil_socket_t fd, short what, void *ctx)
{
    struct tn_admin *a = ctx;

    (void)fd;
    (void)what;
    evconnlistener_enable(a->lev);
}

/* EMFILE and the like: accepting again at once would spin, so pause 1 s. */
static void on_accept_error(struct evconnlistener *lev, void *ctx)
{
    static const struct timeval pause = {1, 0};
    struct tn_admin *a = ctx;

    tn_log(TN_LOG_WARN, "admin: accept on %s: %s", a->path, strerror(errno));
    evconnlistener_disable(lev);
    evtimer_add(a->retry_ev, &pause);
}

/* Creates the missing parent directory of path (one level, 0755). */
static int make_parent(const char *path, const char **why)
{
    char dir[PATH_MAX];
    char *slash;

    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
        *why = "admin socket path too long";
        return TN_ERR;
    }
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return TN_OK;
    *slash = '\0';
    if (mkdir(dir, 0755) == 0) {
        chmod(dir, 0755); /* exactly, whatever the umask */
        return TN_OK;
    }
    if (errno == EEXIST)
        return TN_OK;
    snprintf(why_buf, sizeof(why_buf), "cannot create %s: %s", dir, strerror(errno));
    *why = why_buf;
    return TN_ERR;
}

/* Removes a stale socket file at path; refuses a live one or a non-socket. */
static int clear_stale(const struct sockaddr_un *sun, const char **why)
{
    struct stat st;
    int fd, r, err;

    if (lstat(sun->sun_path, &st) < 0)
        return TN_OK;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(why_buf, sizeof(why_buf), "%s exists and is not a socket", sun->sun_path);
        *why = why_buf;
        return TN_ERR;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = strerror(errno);
        return TN_ERR;
    }
    /* non-blocking: a listener with a full backlog answers EAGAIN, still alive */
    r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
    err = errno;
    close(fd);
    if (r == 0 || err == EAGAIN || err == EINPROGRESS) {
        snprintf(why_buf, sizeof(why_buf), "another process is listening on %s", sun->sun_path);
        *why = why_buf;
        return TN_ERR;
    }
    if (err != ECONNREFUSED && err != ENOENT) {
        snprintf(why_buf, sizeof(why_buf), "cannot probe %s: %s", sun->sun_path, strerror(err));
        *why = why_buf;
        return TN_ERR;
    }
    if (unlink(sun->sun_path) < 0 && errno != ENOENT) {
        snprintf(why_buf, sizeof(why_buf), "cannot remove stale %s: %s", sun->sun_path,
                 strerror(errno));
        *why = why_buf;
        return TN_ERR;
    }
    return TN_OK;
}

/* Binds and listens on sun with mode; records the file's identity in a.
 * Returns the fd or -1 with *why. */
static int bind_socket(struct tn_admin *a, const struct sockaddr_un *sun, unsigned mode,
                       const char **why)
{
    struct stat st;
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    /* the file gets mode & ~umask at bind: never more open than asked, even
     * before the chmod below; nobody can connect before listen() anyway */
    if (fchmod(fd, (mode_t)mode) < 0 || bind(fd, (const struct sockaddr *)sun, sizeof(*sun)) < 0)
        goto fail;
    if (chmod(sun->sun_path, (mode_t)mode) < 0 || stat(sun->sun_path, &st) < 0) {
        int err = errno;

        unlink(sun->sun_path);
        errno = err;
        goto fail;
    }
    a->dev = st.st_dev;
    a->ino = st.st_ino;
    return fd;
fail:
    snprintf(why_buf, sizeof(why_buf), "%s: %s", sun->sun_path, strerror(errno));
    *why = why_buf;
    close(fd);
    return -1;
}

struct tn_admin *tn_admin_new(struct event_base *base, const char *path, unsigned mode,
                              tn_admin_exec_fn *exec, void *arg, const char **why)
{
    struct tn_admin *a = NULL;
    struct sockaddr_un sun;
    int fd = -1;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (!path || !*path || strlen(path) >= sizeof(sun.sun_path)) {
        *why = "admin socket path empty or too long";
        goto fail;
    }
    memcpy(sun.sun_path, path, strlen(path));
    if (make_parent(path, why) < 0 || clear_stale(&sun, why) < 0)
        goto fail;
    a = calloc(1, sizeof(*a));
    if (!a || !(a->path = strdup(path))) {
        *why = "out of memory";
        goto fail;
    }
    a->base = base;
    a->exec = exec;
    a->arg = arg;
    a->reap_ev = event_new(base, -1, 0, on_reap, a);
    a->retry_ev = evtimer_new(base, on_retry, a);
    if (!a->reap_ev || !a->retry_ev) {
        *why = "out of memory";
        goto fail;
    }
    fd = bind_socket(a, &sun, mode, why);
    if (fd < 0)
        goto fail;
    a->lev = evconnlistener_new(base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                BACKLOG, fd);
    if (!a->lev) {
        snprintf(why_buf, sizeof(why_buf), "listen on %s: %s", path, strerror(errno));
        *why = why_buf;
        close(fd);
        unlink(path);
        goto fail;
    }
    evconnlistener_set_error_cb(a->lev, on_accept_error);
    return a;
fail:
    tn_log(TN_LOG_ERR, "admin socket: %s", *why);
    if (a) {
        if (a->reap_ev)
            event_free(a->reap_ev);
        if (a->retry_ev)
            event_free(a->retry_ev);
        free(a->path);
        free(a);
    }
    return NULL;
}

void tn_admin_free(struct tn_admin *a)
{
    struct stat st;

    if (!a)
        return;
    if (a->lev)
        evconnlistener_free(a->lev);
    while (a->clients)
        client_free(a->clients);
    if (stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
        unlink(a->path);
    event_free(a->reap_ev);
    event_free(a->retry_ev);
    free(a->path);
    free(a);
}
