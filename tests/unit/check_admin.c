/* The admin socket: file mode, line framing (pipelining, blank lines, CRLF,
 * half-close, over-long lines), peer credentials, a client that does not
 * read never holding up another, stale and live socket files, and cleanup.
 * The event loop runs on its own thread; the test talks to it through
 * plain sockets with poll() and a deadline. */
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "turnout/admin.h"

#define BIG_MIB 20 /* the answer to "big" */
#define DEADLINE_MS 20000

static char dir[80], path[108]; /* path fits sun_path */
static struct event_base *base;
static struct tn_admin *adm;
static pthread_t loop_thread;
static int stop_pipe[2] = {-1, -1};
static struct event *stop_ev;
static int running;
static atomic_int n_one; /* how many times "one" ran */

/* ---- the server side ---- */

static void on_exec(void *arg, const char *line, const char *who, struct evbuffer *out)
{
    size_t i;

    (void)arg;
    if (strncmp(line, "bad", 3) == 0) {
        evbuffer_add_printf(out, "ERR bad\n");
    } else if (strcmp(line, "who") == 0) {
        evbuffer_add_printf(out, "%s\n", who);
    } else if (strcmp(line, "empty") == 0) {
        /* an empty answer: only the final empty line goes out */
    } else if (strcmp(line, "big") == 0) {
        char row[1024];

        memset(row, 'x', sizeof(row) - 1);
        row[sizeof(row) - 1] = '\n';
        for (i = 0; i < (size_t)BIG_MIB * 1024; i++)
            evbuffer_add(out, row, sizeof(row));
    } else {
        if (strcmp(line, "one") == 0)
            atomic_fetch_add(&n_one, 1);
        evbuffer_add_printf(out, "echo:%s\n", line);
    }
}

static void on_stop(evutil_socket_t fd, short what, void *ctx)
{
    (void)fd;
    (void)what;
    (void)ctx;
    event_base_loopbreak(base);
}

static void *loop_main(void *unused)
{
    (void)unused;
    event_base_dispatch(base);
    return NULL;
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    signal(SIGPIPE, SIG_IGN);
    if (!tmp || !*tmp || strlen(tmp) > 40)
        tmp = "/tmp";
    snprintf(dir, sizeof(dir), "%s/check_admin.XXXXXX", tmp);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/admin.sock", dir);
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    ck_assert_int_eq(pipe(stop_pipe), 0);
    stop_ev = event_new(base, stop_pipe[0], EV_READ, on_stop, NULL);
    event_add(stop_ev, NULL);
    adm = NULL;
    running = 0;
}

static void start_loop(void)
{
    ck_assert_int_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
    running = 1;
}

static void stop_loop(void)
{
    if (!running)
        return;
    ck_assert_int_eq(write(stop_pipe[1], "x", 1), 1);
    pthread_join(loop_thread, NULL);
    running = 0;
}

static void teardown(void)
{
    char cmd[600];

    stop_loop();
    tn_admin_free(adm);
    event_free(stop_ev);
    event_base_free(base);
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    (void)!system(cmd);
}

static void start_admin(unsigned mode)
{
    const char *why = NULL;

    adm = tn_admin_new(base, path, mode, on_exec, NULL, &why);
    ck_assert_msg(adm != NULL, "tn_admin_new: %s", why ? why : "?");
    start_loop();
}

/* ---- the client side ---- */

struct rbuf {
    char *p;
    size_t len, cap;
    int eof; /* EOF or connection reset seen */
};

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cli_connect(const char *p)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", p);
    ck_assert_msg(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

static void cli_send(int fd, const char *p, size_t n)
{
    long deadline = now_ms() + DEADLINE_MS;
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    ssize_t w;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            return; /* the server closed; what it said is checked by reading */
        ck_assert_msg(w < 0 && (errno == EAGAIN || errno == EINTR), "send: %s", strerror(errno));
        ck_assert_msg(now_ms() < deadline, "send timed out");
        poll(&pfd, 1, 100);
    }
}

static void cli_sends(int fd, const char *s)
{
    cli_send(fd, s, strlen(s));
}

/* Reads until rb holds at least want bytes or EOF; fails after the deadline. */
static void cli_recv(int fd, struct rbuf *rb, size_t want)
{
    long deadline = now_ms() + DEADLINE_MS;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t r;

    while (rb->len < want && !rb->eof) {
        if (rb->cap - rb->len < 65536) {
            rb->cap = rb->cap ? rb->cap * 2 : 1 << 20;
            rb->p = realloc(rb->p, rb->cap + 1);
            ck_assert_ptr_nonnull(rb->p);
        }
        r = recv(fd, rb->p + rb->len, rb->cap - rb->len, 0);
        if (r > 0)
            rb->len += (size_t)r;
        else if (r == 0 || (r < 0 && errno == ECONNRESET))
            rb->eof = 1;
        else if (errno == EAGAIN || errno == EINTR)
            poll(&pfd, 1, 100);
        else
            ck_abort_msg("recv: %s", strerror(errno));
        ck_assert_msg(now_ms() < deadline, "recv timed out with %zu of %zu bytes", rb->len, want);
    }
    if (rb->p)
        rb->p[rb->len] = '\0';
}

/* Reads exactly the bytes of expect and checks them. */
static void cli_expect(int fd, const char *expect)
{
    struct rbuf rb = {0};

    cli_recv(fd, &rb, strlen(expect));
    ck_assert_str_eq(rb.p ? rb.p : "", expect);
    free(rb.p);
}

static void cli_expect_eof(int fd)
{
    struct rbuf rb = {0};

    cli_recv(fd, &rb, (size_t)-1);
    ck_assert_int_eq(rb.len, 0);
    free(rb.p);
}

/* ---- tests ---- */

START_TEST(admin_mode_0600)
{
    struct stat st;

    umask(022);
    start_admin(0600);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0600);
}
END_TEST

START_TEST(admin_mode_0660_despite_umask)
{
    struct stat st;

    umask(027); /* would leave 0640 */
    start_admin(0660);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 07777, 0660);
}
END_TEST

START_TEST(admin_creates_parent_dir)
{
    struct stat st;

    umask(077);
    snprintf(path, sizeof(path), "%s/run/admin.sock", dir);
    start_admin(0600);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    snprintf(path, sizeof(path), "%s/run", dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0755);
}
END_TEST

START_TEST(admin_pipelined_in_order)
{
    int fd;

    start_admin(0600);
    fd = cli_connect(path);
    /* blank lines get no answer; CRLF is accepted; "empty" answers only
     * its empty line */
    cli_sends(fd, "one\ntwo\n\n\r\nbad x\r\nempty\nthree\n");
    cli_expect(fd, "echo:one\n\necho:two\n\nERR bad\n\n\necho:three\n\n");
    /* the connection stays usable; a command split across writes */
    cli_sends(fd, "fo");
    cli_sends(fd, "ur\n");
    cli_expect(fd, "echo:four\n\n");
    close(fd);
}
END_TEST

START_TEST(admin_who_has_peer_credentials)
{
    char expect[128];
    int fd;

    start_admin(0600);
    fd = cli_connect(path);
    cli_sends(fd, "who\n");
    snprintf(expect, sizeof(expect), "admin uid=%u pid=%d\n\n", (unsigned)getuid(), (int)getpid());
    cli_expect(fd, expect);
    close(fd);
}
END_TEST

START_TEST(admin_half_close_answers_then_closes)
{
    int fd;

    start_admin(0600);
    fd = cli_connect(path);
    cli_sends(fd, "one\ntwo\n");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    cli_expect(fd, "echo:one\n\necho:two\n\n");
    cli_expect_eof(fd);
    close(fd);

    /* `printf 'show info' | socat ...`: the last line has no LF */
    fd = cli_connect(path);
    cli_sends(fd, "one\nlast");
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    cli_expect(fd, "echo:one\n\necho:last\n\n");
    cli_expect_eof(fd);
    close(fd);
}
END_TEST

START_TEST(admin_line_too_long)
{
    size_t n = 70000;
    char *junk = malloc(n);
    int fd;

    ck_assert_ptr_nonnull(junk);
    memset(junk, 'a', n);
    start_admin(0600);
    fd = cli_connect(path);
    cli_sends(fd, "one\n");
    cli_send(fd, junk, n);
    cli_expect(fd, "echo:one\n\nERR line too long\n\n");
    cli_expect_eof(fd);
    close(fd);

    /* just at the limit is fine */
    fd = cli_connect(path);
    junk[n - 1] = '\n';
    cli_send(fd, junk, 65536);
    cli_sends(fd, "\n");
    {
        struct rbuf rb = {0};

        cli_recv(fd, &rb, 5 + 65536 + 2);
        ck_assert_int_eq(rb.len, 5 + 65536 + 2);
        ck_assert(memcmp(rb.p, "echo:aaa", 8) == 0);
        ck_assert(memcmp(rb.p + rb.len - 3, "a\n\n", 3) == 0);
        free(rb.p);
    }
    close(fd);
    free(junk);
}
END_TEST

START_TEST(admin_slow_reader_does_not_block_others)
{
    const size_t big = (size_t)BIG_MIB << 20;
    struct rbuf rb = {0};
    int slow, fast;

    start_admin(0600);
    slow = cli_connect(path);
    /* "one" after "big" must wait: its output is far above the high mark */
    cli_sends(slow, "big\none\n");
    fast = cli_connect(path);
    cli_sends(fast, "two\n");
    cli_expect(fast, "echo:two\n\n");
    ck_assert_int_eq(atomic_load(&n_one), 0);
    close(fast);

    /* now read it all: the big answer, then "one" once it has drained */
    cli_recv(slow, &rb, big + 1 + 10);
    ck_assert_int_eq(rb.len, big + 1 + 10);
    ck_assert_str_eq(rb.p + big, "\necho:one\n\n");
    ck_assert_int_eq(atomic_load(&n_one), 1);
    free(rb.p);
    close(slow);
}
END_TEST

START_TEST(admin_too_many_clients)
{
    static int fds[1100];
    struct rlimit rl;
    int i, extra;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2400)
        return; /* cannot hold both ends of 1025 connections here */
    rl.rlim_cur = 2400;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    start_admin(0600);
    for (i = 0; i < 1024; i++) {
        fds[i] = cli_connect(path);
        cli_sends(fds[i], "one\n");
        cli_expect(fds[i], "echo:one\n\n");
    }
    extra = cli_connect(path);
    cli_expect(extra, "ERR too many admin clients\n\n");
    cli_expect_eof(extra);
    close(extra);
    /* one leaves: room again */
    close(fds[0]);
    for (i = 0; i < 100; i++) {
        struct rbuf rb = {0};

        extra = cli_connect(path);
        cli_sends(extra, "two\n");
        cli_recv(extra, &rb, 10);
        close(extra);
        if (rb.len == 10 && memcmp(rb.p, "echo:two\n\n", 10) == 0) {
            free(rb.p);
            break;
        }
        free(rb.p); /* the close of fds[0] had not been seen yet */
    }
    ck_assert_int_lt(i, 100);
    for (i = 1; i < 1024; i++)
        close(fds[i]);
}
END_TEST

/* A socket file left behind by a dead process is replaced. */
START_TEST(admin_replaces_stale_socket)
{
    struct sockaddr_un sun;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    close(fd); /* the file stays, nobody listens */

    start_admin(0600);
    fd = cli_connect(path);
    cli_sends(fd, "one\n");
    cli_expect(fd, "echo:one\n\n");
    close(fd);
}
END_TEST

/* A live listener keeps its socket; we fail and leave it alone. */
START_TEST(admin_refuses_live_socket)
{
    const char *why = NULL;
    struct tn_admin *other;
    int fd;

    start_admin(0600);
    other = tn_admin_new(base, path, 0600, on_exec, NULL, &why);
    ck_assert_ptr_null(other);
    ck_assert_ptr_nonnull(why);
    ck_assert_ptr_nonnull(strstr(why, "another process is listening on"));
    ck_assert_ptr_nonnull(strstr(why, path));
    fd = cli_connect(path);
    cli_sends(fd, "one\n");
    cli_expect(fd, "echo:one\n\n");
    close(fd);
}
END_TEST

START_TEST(admin_refuses_non_socket)
{
    const char *why = NULL;
    int fd = open(path, O_CREAT | O_WRONLY, 0600);

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_ptr_null(tn_admin_new(base, path, 0600, on_exec, NULL, &why));
    ck_assert_ptr_nonnull(strstr(why, "not a socket"));
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

START_TEST(admin_free_unlinks_only_its_own)
{
    char moved[120];
    const char *why = NULL;
    int fd, open_fd;

    start_admin(0600);
    open_fd = cli_connect(path); /* a client still connected at free */
    cli_sends(open_fd, "one\n");
    cli_expect(open_fd, "echo:one\n\n");
    stop_loop();
    tn_admin_free(adm);
    adm = NULL;
    ck_assert_int_eq(access(path, F_OK), -1);
    ck_assert_int_eq(errno, ENOENT);
    event_base_loop(base, EVLOOP_NONBLOCK); /* libevent closes freed bufferevents' fds here */
    cli_expect_eof(open_fd);
    close(open_fd);

    /* a newer process took the path: our free leaves its file alone */
    adm = tn_admin_new(base, path, 0600, on_exec, NULL, &why);
    ck_assert_ptr_nonnull(adm);
    snprintf(moved, sizeof(moved), "%s.old", path);
    ck_assert_int_eq(rename(path, moved), 0);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(fd, 0);
    close(fd);
    tn_admin_free(adm);
    adm = NULL;
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, admin_mode_0600);
    tcase_add_test(tc, admin_mode_0660_despite_umask);
    tcase_add_test(tc, admin_creates_parent_dir);
    tcase_add_test(tc, admin_pipelined_in_order);
    tcase_add_test(tc, admin_who_has_peer_credentials);
    tcase_add_test(tc, admin_half_close_answers_then_closes);
    tcase_add_test(tc, admin_line_too_long);
    tcase_add_test(tc, admin_slow_reader_does_not_block_others);
    tcase_add_test(tc, admin_too_many_clients);
    tcase_add_test(tc, admin_replaces_stale_socket);
    tcase_add_test(tc, admin_refuses_live_socket);
    tcase_add_test(tc, admin_refuses_non_socket);
    tcase_add_test(tc, admin_free_unlinks_only_its_own);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
