/* A non-blocking socket with an input and an output evbuffer, driven by two
 * libevent events. Unlike a bufferevent it writes at once: output is flushed
 * with one write() when the caller asks (at the end of each callback), and
 * the write event is registered only when the kernel buffer is full. Worker
 * thread only. */
#ifndef TURNOUT_IO_H
#define TURNOUT_IO_H

#include <event2/event_struct.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct evbuffer;
struct event_base;
struct tn_io;
struct ssl_st;

#define TN_IO_EV_CONNECTED 0x01 /* a connect() completed */
#define TN_IO_EV_EOF 0x02       /* the peer closed its side */
#define TN_IO_EV_ERROR 0x04     /* read, write or connect failed (errno in io->err) */
#define TN_IO_EV_HANDSHAKE 0x08 /* the TLS handshake completed (tn_io_start_tls) */

/* New input is in io->in (or the caller asked for a read callback). */
typedef void (*tn_io_read_cb)(struct tn_io *io, void *arg);
/* The output fell to the low watermark asked for with tn_io_notify_low(). */
typedef void (*tn_io_write_cb)(struct tn_io *io, void *arg);
/* One of TN_IO_EV_*. */
typedef void (*tn_io_event_cb)(struct tn_io *io, int what, void *arg);

#define TN_IO_F_READING 0x01    /* rev is added */
#define TN_IO_F_WRITING 0x02    /* wev is added: the kernel buffer was full */
#define TN_IO_F_CONNECTING 0x04 /* connect() in progress */
#define TN_IO_F_NOTIFY 0x08     /* call on_write when out <= low */
#define TN_IO_F_FAILED 0x10     /* a write failed; reported from a fresh callback */
#define TN_IO_F_EOF 0x20        /* read returned 0 */
#define TN_IO_F_QUEUED 0x40     /* on its queue's flush list */
#define TN_IO_F_HANDSHAKE 0x80  /* TLS: the handshake is not done */
#define TN_IO_F_RD_WANTS_WR 0x100 /* TLS: SSL_read waits for writability */
#define TN_IO_F_WR_WANTS_RD 0x200 /* TLS: SSL_write waits for readability */
#define TN_IO_F_SHUT 0x400      /* our side was shut down (close_notify sent) */

/* The end-of-callback hook of one event loop: connections whose output grew
 * during a callback are flushed once when it returns, then settle() runs
 * (the worker frees what was marked dead). Every I/O callback of a tn_io
 * calls tn_ioq_settle() after the user callback returns. */
struct tn_ioq {
    TAILQ_HEAD(, tn_io) pending;
    void (*settle)(void *arg); /* after the flushes; may be NULL */
    void *arg;
};

struct tn_io {
    int fd;
    uint32_t flags;
    int err;
    size_t low;
    struct evbuffer *in, *out;
    struct event rev, wev;
    tn_io_read_cb on_read;
    tn_io_write_cb on_write;
    tn_io_event_cb on_event;
    void *arg;
    struct tn_ioq *q;
    TAILQ_ENTRY(tn_io) qlink;
    struct ssl_st *ssl; /* TLS on the socket (owned), or NULL: plain */
};

/* Sets io up on fd (non-blocking, taken: closed by tn_io_deinit). With
 * connecting, waits for the connect to complete. Returns TN_OK or TN_ERR. */
int tn_io_init(struct tn_io *io, struct event_base *base, struct tn_ioq *q, int fd,
               int connecting);

/* Closes the socket, frees the buffers, leaves the flush list. */
void tn_io_deinit(struct tn_io *io);

void tn_io_setcb(struct tn_io *io, tn_io_read_cb r, tn_io_write_cb w, tn_io_event_cb e, void *arg);

/* Starts or stops reading. */
void tn_io_read(struct tn_io *io, int on);

/* Asks for on_write once the output is at most low bytes (0: empty). */
void tn_io_notify_low(struct tn_io *io, size_t low);

/* Writes as much of io->out as the socket takes now; registers the write
 * event for the rest. Errors are reported through on_event later. */
void tn_io_flush(struct tn_io *io);

/* Asks for io->out to be flushed when the current callback returns. */
void tn_io_queue_flush(struct tn_io *io);

/* Flushes every queued connection of q, then runs q->settle. */
void tn_ioq_settle(struct tn_ioq *q);

/* Schedules a read callback from the loop (input already buffered). */
void tn_io_kick(struct tn_io *io);

/* Sets SO_LINGER 0 so the close sends a reset. */
void tn_io_reset_on_close(struct tn_io *io);

/* Runs TLS on the socket from now on (io takes ssl; server: the accepting
 * side). Reading must be on; TN_IO_EV_HANDSHAKE reports the end of the
 * handshake, and only then does on_read see application bytes.
 * WANT_READ/WANT_WRITE, records pending inside OpenSSL and close_notify
 * stay inside the transport. */
void tn_io_start_tls(struct tn_io *io, struct ssl_st *ssl, int server);

/* Ends our direction once the output is flushed: close_notify with TLS,
 * then a TCP half-close. */
void tn_io_shutdown(struct tn_io *io);

#endif
