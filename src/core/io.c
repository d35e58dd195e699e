/* The transport of client and upstream connections: reads up to
 * TN_IO_CHUNK per readiness event into io->in, writes io->out directly when
 * asked and only waits for writability when the kernel refuses more. This
 * avoids a loop round-trip and two epoll_ctl calls per response that a
 * bufferevent costs. With TLS (tn_io_start_tls) the same paths go through
 * OpenSSL on the socket: the handshake, WANT_READ/WANT_WRITE in either
 * direction, records OpenSSL holds decrypted and close_notify are handled
 * here, so the codecs above see plain bytes either way. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "turnout/common.h"
#include "turnout/io.h"

static void set_writing(struct tn_io *io, int on)
{
    if (on && !(io->flags & TN_IO_F_WRITING)) {
        event_add(&io->wev, NULL);
        io->flags |= TN_IO_F_WRITING;
    } else if (!on && (io->flags & TN_IO_F_WRITING)) {
        event_del(&io->wev);
        io->flags &= ~TN_IO_F_WRITING;
    }
}

#define TLS_RECORD 16384 /* application bytes per SSL_write: one full record */

/* The TLS error of a failed call, as an errno for io->err. */
static int tls_errno(void)
{
    ERR_clear_error();
    return errno ? errno : EPROTO;
}

/* Before an SSL call: SSL_get_error needs an empty error queue, and
 * ERR_clear_error walks all of it (about 800 instructions) even when it is
 * empty, as it is after every call of ours: clear only what is there. */
static void tls_before(void)
{
    if (ERR_peek_error())
        ERR_clear_error();
    errno = 0;
}

/* SSL_write of io->out, a full record at a time. */
static int tls_write_out(struct tn_io *io)
{
    size_t len;

    while ((len = evbuffer_get_length(io->out)) != 0) {
        size_t n = len < TLS_RECORD ? len : TLS_RECORD;
        unsigned char *p = evbuffer_pullup(io->out, (ev_ssize_t)n);
        int r, e;

        if (!p) {
            io->err = ENOMEM;
            return TN_ERR;
        }
        tls_before();
        r = SSL_write(io->ssl, p, (int)n);
        if (r > 0) {
            evbuffer_drain(io->out, (size_t)r);
            continue;
        }
        e = SSL_get_error(io->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
            set_writing(io, 1);
            return TN_AGAIN;
        }
        if (e == SSL_ERROR_WANT_READ) { /* a key update: read first */
            io->flags |= TN_IO_F_WR_WANTS_RD;
            event_add(&io->rev, NULL);
            set_writing(io, 0);
            return TN_AGAIN;
        }
        io->err = e == SSL_ERROR_SYSCALL ? (errno ? errno : EPIPE) : tls_errno();
        return TN_ERR;
    }
    set_writing(io, 0);
    return TN_OK;
}

/* Writes what the socket accepts. Returns TN_OK, TN_AGAIN (bytes left,
 * write event armed) or TN_ERR (io->err set). */
static int write_out(struct tn_io *io)
{
    if (io->ssl)
        return tls_write_out(io);
    while (evbuffer_get_length(io->out)) {
        int n = evbuffer_write_atmost(io->out, io->fd, TN_IO_CHUNK);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                set_writing(io, 1);
                return TN_AGAIN;
            }
            io->err = errno;
            return TN_ERR;
        }
    }
    set_writing(io, 0);
    return TN_OK;
}

static void maybe_notify(struct tn_io *io)
{
    if ((io->flags & TN_IO_F_NOTIFY) && evbuffer_get_length(io->out) <= io->low) {
        io->flags &= ~TN_IO_F_NOTIFY;
        if (io->on_write)
            io->on_write(io, io->arg);
    }
}

static void readable(struct tn_io *io);

static void writable(struct tn_io *io)
{
    if (io->flags & TN_IO_F_FAILED) {
        set_writing(io, 0);
        io->on_event(io, TN_IO_EV_ERROR, io->arg);
        return;
    }
    if (io->flags & TN_IO_F_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);

        getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            io->err = err;
            set_writing(io, 0);
            io->on_event(io, TN_IO_EV_ERROR, io->arg);
            return;
        }
        io->flags &= ~TN_IO_F_CONNECTING;
        set_writing(io, 0);
        io->on_event(io, TN_IO_EV_CONNECTED, io->arg);
        return; /* the callback flushes what was queued */
    }
    if (io->ssl && (io->flags & (TN_IO_F_HANDSHAKE | TN_IO_F_RD_WANTS_WR))) {
        /* the handshake or an SSL_read waited for this: the read side goes on */
        io->flags &= ~TN_IO_F_RD_WANTS_WR;
        if (!evbuffer_get_length(io->out))
            set_writing(io, 0);
        readable(io);
        return;
    }
    if (write_out(io) == TN_ERR) {
        set_writing(io, 0);
        io->on_event(io, TN_IO_EV_ERROR, io->arg);
        return;
    }
    maybe_notify(io);
}

/* The user callbacks may free io: only q, read before, is used after. */
static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct tn_io *io = arg;
    struct tn_ioq *q = io->q;

    (void)fd;
    (void)what;
    writable(io);
    tn_ioq_settle(q);
}

/* Reads up to TN_IO_CHUNK bytes straight into io->in with one readv()
 * (evbuffer_read() asks FIONREAD first and reads at most 4 KiB). Returns
 * the byte count, 0 at end of input, -1 with errno. */
static ssize_t read_in(struct tn_io *io)
{
    struct evbuffer_iovec vec[2];
    struct iovec iov[2];
    int nvec = evbuffer_reserve_space(io->in, TN_IO_CHUNK, vec, 2), i;
    ssize_t n, left;

    if (nvec <= 0) {
        errno = ENOMEM;
        return -1;
    }
    for (i = 0; i < nvec; i++) {
        iov[i].iov_base = vec[i].iov_base;
        iov[i].iov_len = vec[i].iov_len;
    }
    n = readv(io->fd, iov, nvec);
    if (n <= 0) {
        evbuffer_commit_space(io->in, vec, 0);
        return n;
    }
    left = n;
    for (i = 0; i < nvec; i++) {
        size_t take = (size_t)left < vec[i].iov_len ? (size_t)left : vec[i].iov_len;

        vec[i].iov_len = take;
        left -= (ssize_t)take;
    }
    evbuffer_commit_space(io->in, vec, nvec);
    return n;
}

/* The TLS handshake's next step: TN_OK done, TN_AGAIN waiting, TN_ERR. */
static int tls_handshake(struct tn_io *io)
{
    int r, e;

    tls_before();
    r = SSL_do_handshake(io->ssl);
    if (r == 1) {
        io->flags &= ~TN_IO_F_HANDSHAKE;
        /* from now on one read takes all the records that came (tls_read_in) */
        SSL_set_read_ahead(io->ssl, 1);
        return TN_OK;
    }
    e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return TN_AGAIN;
    if (e == SSL_ERROR_WANT_WRITE) {
        set_writing(io, 1);
        return TN_AGAIN;
    }
    io->err = e == SSL_ERROR_SYSCALL && errno ? errno : EPROTO;
    ERR_clear_error();
    return TN_ERR;
}

/* SSL_read into io->in, up to TN_IO_CHUNK: like read_in (bytes, 0 at the
 * peer's close_notify or a TCP end, -1 with errno; EAGAIN when OpenSSL
 * waits for the socket either way). With read-ahead (set after the
 * handshake) the first SSL_read takes what the socket holds, up to
 * OpenSSL's buffer; the loop stops when nothing is left buffered instead
 * of asking the socket again for an EAGAIN: one read per event. */
static ssize_t tls_read_in(struct tn_io *io)
{
    ssize_t total = 0;

    while (total < (ssize_t)TN_IO_CHUNK) {
        struct evbuffer_iovec vec[1];
        int r, e;

        if (evbuffer_reserve_space(io->in, TLS_RECORD, vec, 1) < 1) {
            errno = ENOMEM;
            return -1;
        }
        tls_before();
        r = SSL_read(io->ssl, vec[0].iov_base, (int)vec[0].iov_len);
        if (r > 0) {
            vec[0].iov_len = (size_t)r;
            evbuffer_commit_space(io->in, vec, 1);
            total += r;
            if (!SSL_has_pending(io->ssl))
                break; /* level-triggered: more on the socket makes another event */
            continue;
        }
        evbuffer_commit_space(io->in, vec, 0);
        e = SSL_get_error(io->ssl, r);
        if (total)
            break; /* report what came; the state repeats on the next call */
        if (e == SSL_ERROR_WANT_READ) {
            errno = EAGAIN;
            return -1;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            io->flags |= TN_IO_F_RD_WANTS_WR;
            set_writing(io, 1);
            errno = EAGAIN;
            return -1;
        }
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !errno))
            return 0; /* close_notify, or the TCP end without one */
        errno = e == SSL_ERROR_SYSCALL ? errno : tls_errno();
        return -1;
    }
    if (SSL_has_pending(io->ssl) && (io->flags & TN_IO_F_READING))
        tn_io_kick(io); /* records wait inside OpenSSL: no socket event */
    return total;
}

static void readable(struct tn_io *io)
{
    ssize_t n;

    if (io->flags & TN_IO_F_WR_WANTS_RD) { /* an SSL_write waited for this */
        io->flags &= ~TN_IO_F_WR_WANTS_RD;
        if (!(io->flags & TN_IO_F_READING))
            event_del(&io->rev);
        if (write_out(io) == TN_ERR) {
            io->on_event(io, TN_IO_EV_ERROR, io->arg);
            return;
        }
        maybe_notify(io);
        if (!(io->flags & TN_IO_F_READING))
            return;
    }
    if (io->flags & TN_IO_F_HANDSHAKE) {
        int r = tls_handshake(io);

        if (r == TN_AGAIN)
            return;
        if (r == TN_ERR) {
            tn_io_read(io, 0);
            io->on_event(io, TN_IO_EV_ERROR, io->arg);
            return;
        }
        set_writing(io, evbuffer_get_length(io->out) > 0);
        tn_io_kick(io); /* application bytes may have come with the handshake */
        io->on_event(io, TN_IO_EV_HANDSHAKE, io->arg);
        return;
    }

    if (io->flags & TN_IO_F_EOF) { /* a kick after the end of input */
        if (evbuffer_get_length(io->in) && io->on_read)
            io->on_read(io, io->arg);
        return;
    }
    n = io->ssl ? tls_read_in(io) : read_in(io);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) {
        if (evbuffer_get_length(io->in) && io->on_read)
            io->on_read(io, io->arg);
        return;
    }
    tn_io_read(io, 0);
    if (n == 0) {
        io->flags |= TN_IO_F_EOF;
        io->on_event(io, TN_IO_EV_EOF, io->arg);
    } else {
        io->err = errno;
        io->on_event(io, TN_IO_EV_ERROR, io->arg);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct tn_io *io = arg;
    struct tn_ioq *q = io->q;

    (void)what;
    (void)fd;
    readable(io);
    tn_ioq_settle(q);
}

int tn_io_init(struct tn_io *io, struct event_base *base, struct tn_ioq *q, int fd,
               int connecting)
{
    io->q = q;
    io->fd = fd;
    io->flags = connecting ? TN_IO_F_CONNECTING : 0;
    io->err = 0;
    io->low = 0;
    io->ssl = NULL;
    io->in = evbuffer_new();
    io->out = evbuffer_new();
    if (!io->in || !io->out) {
        if (io->in)
            evbuffer_free(io->in);
        if (io->out)
            evbuffer_free(io->out);
        close(fd);
        return TN_ERR;
    }
    event_assign(&io->rev, base, fd, EV_READ | EV_PERSIST, on_readable, io);
    event_assign(&io->wev, base, fd, EV_WRITE | EV_PERSIST, on_writable, io);
    if (connecting)
        set_writing(io, 1);
    return TN_OK;
}

void tn_io_deinit(struct tn_io *io)
{
    if (io->flags & TN_IO_F_QUEUED)
        TAILQ_REMOVE(&io->q->pending, io, qlink);
    io->flags &= ~TN_IO_F_QUEUED;
    event_del(&io->rev);
    event_del(&io->wev);
    if (io->ssl) {
        if (!(io->flags & (TN_IO_F_HANDSHAKE | TN_IO_F_SHUT | TN_IO_F_FAILED)))
            SSL_shutdown(io->ssl); /* close_notify, best effort: the socket closes */
        SSL_free(io->ssl);
        io->ssl = NULL;
        ERR_clear_error();
    }
    close(io->fd);
    evbuffer_free(io->in);
    evbuffer_free(io->out);
    io->fd = -1;
}

void tn_io_setcb(struct tn_io *io, tn_io_read_cb r, tn_io_write_cb w, tn_io_event_cb e, void *arg)
{
    io->on_read = r;
    io->on_write = w;
    io->on_event = e;
    io->arg = arg;
}

void tn_io_read(struct tn_io *io, int on)
{
    if (on && !(io->flags & (TN_IO_F_READING | TN_IO_F_EOF))) {
        event_add(&io->rev, NULL);
        io->flags |= TN_IO_F_READING;
        if (io->ssl && SSL_has_pending(io->ssl))
            tn_io_kick(io); /* records wait inside OpenSSL (read-ahead) */
    } else if (!on && (io->flags & TN_IO_F_READING)) {
        if (!(io->flags & (TN_IO_F_WR_WANTS_RD | TN_IO_F_HANDSHAKE)))
            event_del(&io->rev);
        io->flags &= ~TN_IO_F_READING;
    }
}

void tn_io_notify_low(struct tn_io *io, size_t low)
{
    io->low = low;
    io->flags |= TN_IO_F_NOTIFY;
    tn_io_queue_flush(io);
}

void tn_io_queue_flush(struct tn_io *io)
{
    if (io->flags & TN_IO_F_QUEUED)
        return;
    io->flags |= TN_IO_F_QUEUED;
    TAILQ_INSERT_TAIL(&io->q->pending, io, qlink);
}

void tn_ioq_settle(struct tn_ioq *q)
{
    struct tn_io *io;

    while ((io = TAILQ_FIRST(&q->pending)) != NULL) {
        TAILQ_REMOVE(&q->pending, io, qlink);
        io->flags &= ~TN_IO_F_QUEUED;
        tn_io_flush(io);
    }
    if (q->settle)
        q->settle(q->arg);
}

void tn_io_flush(struct tn_io *io)
{
    /* TLS: what is queued during the handshake goes when it is done */
    if (io->flags & (TN_IO_F_CONNECTING | TN_IO_F_FAILED | TN_IO_F_HANDSHAKE))
        return;
    if (!evbuffer_get_length(io->out) && !(io->flags & TN_IO_F_NOTIFY))
        return;
    if ((io->flags & TN_IO_F_WRITING) && evbuffer_get_length(io->out))
        return; /* the kernel buffer is full: wait for the write event */
    if (write_out(io) == TN_ERR) {
        io->flags |= TN_IO_F_FAILED;
        event_active(&io->wev, EV_WRITE, 1);
        return;
    }
    if ((io->flags & TN_IO_F_NOTIFY) && evbuffer_get_length(io->out) <= io->low)
        event_active(&io->wev, EV_WRITE, 1); /* on_write from a fresh callback */
}

void tn_io_kick(struct tn_io *io)
{
    event_active(&io->rev, EV_READ, 1);
}

void tn_io_reset_on_close(struct tn_io *io)
{
    struct linger lg = { 1, 0 };

    setsockopt(io->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void tn_io_start_tls(struct tn_io *io, struct ssl_st *ssl, int server)
{
    io->ssl = ssl;
    SSL_set_fd(ssl, io->fd);
    SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
    if (server)
        SSL_set_accept_state(ssl);
    else
        SSL_set_connect_state(ssl);
    io->flags |= TN_IO_F_HANDSHAKE;
    if (!server)
        tn_io_kick(io); /* the client speaks first */
}

void tn_io_shutdown(struct tn_io *io)
{
    if (io->flags & TN_IO_F_SHUT)
        return;
    io->flags |= TN_IO_F_SHUT;
    if (io->ssl && !(io->flags & (TN_IO_F_HANDSHAKE | TN_IO_F_FAILED))) {
        ERR_clear_error();
        SSL_shutdown(io->ssl); /* close_notify; we do not wait for the peer's */
        ERR_clear_error();
    }
    shutdown(io->fd, SHUT_WR);
}
