/* The admin socket: a unix stream socket on the control thread, one text
 * command per line, each answer followed by an empty line (HAProxy style,
 * so `socat` works). Many clients at once; a client that does not read its
 * answers is closed rather than buffered without bound, so a slow or dead
 * client never blocks anything. Control thread only. */
#ifndef TURNOUT_ADMIN_H
#define TURNOUT_ADMIN_H

struct event_base;
struct evbuffer;
struct tn_admin;

/* Runs one command line (no line terminator) on behalf of `who` (e.g.
 * "admin uid=0 pid=1234") and appends the answer to out: zero or more
 * lines, each ending in "\n", WITHOUT the final empty line (the socket
 * layer adds it). An error is one line starting with "ERR ". */
typedef void tn_admin_exec_fn(void *arg, const char *line, const char *who, struct evbuffer *out);

/* Listens on path with mode (e.g. 0600, set whatever the umask),
 * creating a missing parent directory (one level, 0755) and replacing a
 * stale socket file (but refusing to take over a socket another live
 * process listens on). Borrows base, exec and arg, which must outlive the
 * admin. Returns a new admin, or NULL with *why (static storage, valid
 * until the next call) on failure. Control thread. */
struct tn_admin *tn_admin_new(struct event_base *base, const char *path, unsigned mode,
                              tn_admin_exec_fn *exec, void *arg, const char **why);

/* Closes the listener and every client, removes the socket file if it is
 * still the one bound here (same device and inode). NULL is a no-op.
 * Client descriptors are closed by libevent's finalizers: on the next loop
 * iteration or at event_base_free(). Control thread. */
void tn_admin_free(struct tn_admin *a);

#endif
