/* turnoutctl: sends commands to turnout's admin socket and prints the
 * answers (each ends with an empty line on the wire). Exit status: 0 done,
 * 1 an answer was an ERR, 2 no usable answer (cannot connect, timeout, the
 * connection closed early, bad usage). Standalone: libc only. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define DEFAULT_SOCKET "/run/turnout/admin.sock"
#define DEFAULT_TIMEOUT_MS 10000

struct ctl {
    const char *path;
    int json;
    long timeout_ms;
    int fd;
    char *buf; /* bytes read and not yet handed out as an answer */
    size_t len, cap;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: turnoutctl [-s SOCKET] [--json] [-t TIMEOUT_S] [COMMAND...]\n"
            "  -s, --socket SOCKET   admin socket (default: $TURNOUT_SOCKET, else %s)\n"
            "  -j, --json            JSON output: `show` commands get `json` appended,\n"
            "                        other answers are printed as {\"ok\":...,\"answer\":...}\n"
            "  -t, --timeout SECONDS how long to wait for each answer (default 10)\n"
            "  -h, --help            this help\n"
            "      --version         print the version\n"
            "Without COMMAND, reads commands from stdin, one per line.\n"
            "Exit status: 0 ok, 1 an answer was an ERR, 2 no answer (connection, timeout).\n",
            DEFAULT_SOCKET);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("turnoutctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes (dies then). */
static void wait_fd(struct ctl *c, short events, long deadline)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    long left;
    int r;

    for (;;) {
        left = deadline - now_ms();
        if (left <= 0)
            die("no answer from %s within %g s", c->path, (double)c->timeout_ms / 1000);
        r = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (r > 0)
            return;
        if (r < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
    }
}

static void ctl_connect(struct ctl *c)
{
    struct sockaddr_un sun;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    int r;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(c->path) >= sizeof(sun.sun_path))
        die("cannot connect to %s: %s", c->path, strerror(ENAMETOOLONG));
    memcpy(sun.sun_path, c->path, strlen(c->path));
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die("cannot connect to %s: %s", c->path, strerror(errno));
    /* a unix connect() blocks while the backlog is full, at most SO_SNDTIMEO */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    do
        r = connect(c->fd, (struct sockaddr *)&sun, sizeof(sun));
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EINPROGRESS))
        die("cannot connect to %s: timed out", c->path);
    if (r < 0)
        die("cannot connect to %s: %s", c->path, strerror(errno));
    tv.tv_sec = 0;
    tv.tv_usec = 0;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void send_all(struct ctl *c, const char *p, size_t n, long deadline)
{
    ssize_t w;

    while (n > 0) {
        w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wait_fd(c, POLLOUT, deadline);
        } else if (w < 0 && errno != EINTR) {
            die("sending to %s: %s", c->path, strerror(errno));
        }
    }
}

/* Length of the first complete answer in c->buf, its empty line included,
 * or 0 when it has not all arrived. */
static size_t answer_end(const struct ctl *c)
{
    size_t i;

    if (c->len > 0 && c->buf[0] == '\n')
        return 1;
    for (i = 1; i < c->len; i++)
        if (c->buf[i] == '\n' && c->buf[i - 1] == '\n')
            return i + 1;
    return 0;
}

/* Reads until one whole answer is buffered; returns its length. */
static size_t read_answer(struct ctl *c, long deadline)
{
    size_t end;
    ssize_t r;

    while ((end = answer_end(c)) == 0) {
        if (c->cap - c->len < 4096) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (!c->buf)
                die("out of memory");
        }
        r = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
        if (r > 0)
            c->len += (size_t)r;
        else if (r == 0)
            die("%s closed the connection before the end of the answer", c->path);
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            wait_fd(c, POLLIN, deadline);
        else if (errno != EINTR)
            die("reading from %s: %s", c->path, strerror(errno));
    }
    return end;
}

static void json_string(FILE *f, const unsigned char *s, size_t n)
{
    size_t i = 0, k, need;
    unsigned cp;

    fputc('"', f);
    while (i < n) {
        unsigned char b = s[i];

        if (b == '"' || b == '\\') {
            fprintf(f, "\\%c", b);
        } else if (b == '\n') {
            fputs("\\n", f);
        } else if (b == '\t') {
            fputs("\\t", f);
        } else if (b == '\r') {
            fputs("\\r", f);
        } else if (b < 0x20 || b == 0x7f) {
            fprintf(f, "\\u%04x", b);
        } else if (b < 0x80) {
            fputc(b, f);
        } else {
            /* copy a valid UTF-8 sequence, replace a broken byte with U+FFFD */
            need = b >= 0xc2 && b <= 0xdf   ? 1
                   : b >= 0xe0 && b <= 0xef ? 2
                   : b >= 0xf0 && b <= 0xf4 ? 3
                                            : 0;
            cp = need == 1 ? b & 0x1fu : need == 2 ? b & 0x0fu : b & 0x07u;
            for (k = 1; k <= need; k++) {
                if (i + k >= n || (s[i + k] & 0xc0) != 0x80)
                    break;
                cp = cp << 6 | (s[i + k] & 0x3fu);
            }
            if (need == 0 || k <= need ||
                (need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
                (need == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
                fputs("\\ufffd", f);
            } else {
                fwrite(s + i, 1, need + 1, f);
                i += need;
            }
        }
        i++;
    }
    fputc('"', f);
}

/* Prints one answer (n bytes, its final empty line included); returns 1 if
 * it is an ERR, else 0. */
static int print_answer(const struct ctl *c, const char *a, size_t n, int wrap)
{
    int err = n >= 3 && memcmp(a, "ERR", 3) == 0;
    size_t body = n - 1; /* without the empty line */

    if (wrap || (c->json && err)) {
        if (body > 0 && a[body - 1] == '\n')
            body--;
        printf("{\"ok\":%s,\"answer\":", err ? "false" : "true");
        json_string(stdout, (const unsigned char *)a, body);
        fputs("}\n", stdout);
    } else {
        fwrite(a, 1, body, err ? stderr : stdout);
    }
    if (fflush(stdout) == EOF)
        die("writing the answer: %s", strerror(errno));
    return err;
}

/* Whether the last word of cmd is w. */
static int last_word_is(const char *cmd, const char *w)
{
    size_t n = strlen(cmd), wl = strlen(w);

    while (n > 0 && (cmd[n - 1] == ' ' || cmd[n - 1] == '\t'))
        n--;
    return n >= wl && memcmp(cmd + n - wl, w, wl) == 0 &&
           (n == wl || cmd[n - wl - 1] == ' ' || cmd[n - wl - 1] == '\t');
}

static int first_word_is(const char *cmd, const char *w)
{
    size_t wl = strlen(w);

    cmd += strspn(cmd, " \t");
    return strncmp(cmd, w, wl) == 0 && (cmd[wl] == '\0' || cmd[wl] == ' ' || cmd[wl] == '\t');
}

/* Sends one command line and prints its answer; returns 1 on ERR. */
static int run(struct ctl *c, const char *cmd)
{
    long deadline = now_ms() + c->timeout_ms;
    int show = c->json && first_word_is(cmd, "show");
    size_t end;
    int err;

    send_all(c, cmd, strlen(cmd), deadline);
    if (show && !last_word_is(cmd, "json"))
        send_all(c, " json", 5, deadline);
    send_all(c, "\n", 1, deadline);
    end = read_answer(c, deadline);
    err = print_answer(c, c->buf, end, c->json && !show);
    memmove(c->buf, c->buf + end, c->len - end);
    c->len -= end;
    return err;
}

/* Batch mode: one command per stdin line; blank lines are skipped (the
 * server would not answer them). */
static int run_stdin(struct ctl *c)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int errs = 0;

    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        if (memchr(line, '\0', (size_t)n))
            die("a command line contains a NUL byte");
        errs |= run(c, line);
    }
    if (ferror(stdin))
        die("reading stdin: %s", strerror(errno));
    free(line);
    return errs;
}

static long parse_timeout(const char *s)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0) || v > 86400)
        die("bad timeout '%s' (seconds, above 0)", s);
    return v * 1000 < 1 ? 1 : (long)(v * 1000);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    struct ctl c = {.timeout_ms = DEFAULT_TIMEOUT_MS, .fd = -1};
    char *cmd = NULL;
    size_t n = 0;
    int opt, i, rc;

    /* "+": stop at the first word of the command, which may take dashes */
    while ((opt = getopt_long(argc, argv, "+s:jt:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            c.path = optarg;
            break;
        case 'j':
            c.json = 1;
            break;
        case 't':
            c.timeout_ms = parse_timeout(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("turnoutctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!c.path)
        c.path = getenv("TURNOUT_SOCKET");
    if (!c.path || !*c.path)
        c.path = DEFAULT_SOCKET;
    signal(SIGPIPE, SIG_IGN);

    if (optind < argc) {
        for (i = optind; i < argc; i++)
            n += strlen(argv[i]) + 1;
        cmd = calloc(1, n);
        if (!cmd)
            die("out of memory");
        for (i = optind; i < argc; i++) {
            if (i > optind)
                strcat(cmd, " ");
            strcat(cmd, argv[i]);
        }
        if (strpbrk(cmd, "\r\n"))
            die("the command contains a line break");
        if (strspn(cmd, " \t") == strlen(cmd))
            die("empty command");
    }
    ctl_connect(&c);
    rc = cmd ? run(&c, cmd) : run_stdin(&c);
    close(c.fd);
    free(cmd);
    free(c.buf);
    return rc;
}
