/* Unit tests for the chunked decoder (src/http/chunked.c): valid bodies fed
 * whole and one byte at a time, exact re-chunked output, extensions,
 * trailers, pipelined bytes left in place, limits and every framing error. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "turnout/chunked.h"
#include "turnout/common.h"

static struct evbuffer *in, *out;
static struct tn_chunked C;
static const char *W;

static void setup(void)
{
    in = evbuffer_new();
    out = evbuffer_new();
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(out);
    tn_chunked_init(&C);
    W = NULL;
}

static void teardown(void)
{
    evbuffer_free(in);
    evbuffer_free(out);
}

/* Feeds raw[0..n) in pieces of step bytes (0: whole), decoding after each;
 * stops feeding at the first TN_OK or TN_ERR but appends the rest to in.
 * Returns the last result. */
static int feed(const char *raw, size_t n, size_t step, int rechunk)
{
    size_t off = 0;
    int r = TN_AGAIN;

    evbuffer_drain(in, evbuffer_get_length(in));
    evbuffer_drain(out, evbuffer_get_length(out));
    tn_chunked_init(&C);
    if (!step)
        step = n ? n : 1;
    while (off < n && r == TN_AGAIN) {
        size_t k = n - off < step ? n - off : step;

        evbuffer_add(in, raw + off, k);
        off += k;
        r = tn_chunked_decode(&C, in, out, rechunk, &W);
    }
    if (off == 0)
        r = tn_chunked_decode(&C, in, out, rechunk, &W);
    evbuffer_add(in, raw + off, n - off);
    if (r == TN_ERR)
        ck_assert_ptr_nonnull(W);
    return r;
}
#define FEED(s, step, re) feed(s, sizeof(s) - 1, step, re)

static int buf_is(struct evbuffer *b, const char *s, size_t n)
{
    size_t len = evbuffer_get_length(b);
    unsigned char *p = evbuffer_pullup(b, -1);

    return len == n && (n == 0 || memcmp(p, s, n) == 0);
}
#define OUT_IS(s) buf_is(out, s, sizeof(s) - 1)
#define IN_IS(s) buf_is(in, s, sizeof(s) - 1)

static const size_t steps[] = {0, 1, 2, 3, 7};

START_TEST(chunked_simple)
{
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(steps); i++) {
        ck_assert_int_eq(FEED("5\r\nhello\r\n0\r\n\r\n", steps[i], 0), TN_OK);
        ck_assert(OUT_IS("hello"));
        ck_assert(IN_IS(""));
        ck_assert(tn_chunked_done(&C));
        ck_assert_uint_eq(C.total, 5);
    }
}
END_TEST

START_TEST(chunked_multi)
{
    static const char raw[] =
        "5\r\nhello\r\nA\r\n0123456789\r\n001a\r\nabcdefghijklmnopqrstuvwxyz\r\n"
        "1\r\n!\r\n0000\r\n\r\n";
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(steps); i++) {
        ck_assert_int_eq(FEED(raw, steps[i], 0), TN_OK);
        ck_assert(OUT_IS("hello0123456789abcdefghijklmnopqrstuvwxyz!"));
        ck_assert_uint_eq(C.total, 42);
    }
    /* an empty body */
    ck_assert_int_eq(FEED("0\r\n\r\n", 1, 0), TN_OK);
    ck_assert_uint_eq(evbuffer_get_length(out), 0);
}
END_TEST

START_TEST(chunked_rechunk_exact)
{
    ck_assert_int_eq(FEED("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 0, 1), TN_OK);
    ck_assert(OUT_IS("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    /* extensions, leading zeros, upper-case hex and trailers are dropped */
    ck_assert_int_eq(
        FEED("0005;a=b\r\nhello\r\n00B ; x\r\nhello world\r\n0;end\r\nT: 1\r\n\r\n", 0, 1), TN_OK);
    ck_assert(OUT_IS("5\r\nhello\r\nb\r\nhello world\r\n0\r\n\r\n"));
    /* each run of payload becomes its own chunk */
    ck_assert_int_eq(FEED("3\r\nabc\r\n0\r\n\r\n", 1, 1), TN_OK);
    ck_assert(OUT_IS("1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n"));
    ck_assert_int_eq(FEED("5\r\nhello\r\n0\r\n\r\n", 6, 1), TN_OK);
    ck_assert(OUT_IS("3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"));
    ck_assert_int_eq(FEED("0\r\n\r\n", 0, 1), TN_OK);
    ck_assert(OUT_IS("0\r\n\r\n"));
}
END_TEST

START_TEST(chunked_rechunk_large)
{
    static char raw[70000], want[70000];
    size_t n, w;

    n = (size_t)snprintf(raw, sizeof(raw), "%x\r\n", 65536 + 10);
    memset(raw + n, 'z', 65546);
    n += 65546;
    n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\n0\r\n\r\n");
    w = (size_t)snprintf(want, sizeof(want), "1000a\r\n");
    memset(want + w, 'z', 65546);
    w += 65546;
    w += (size_t)snprintf(want + w, sizeof(want) - w, "\r\n0\r\n\r\n");
    ck_assert_int_eq(feed(raw, n, 0, 1), TN_OK);
    ck_assert(buf_is(out, want, w));
}
END_TEST

START_TEST(chunked_extensions)
{
    static const char *const ok[] = {
        "5;a\r\n",
        "5;a=b\r\n",
        "5;a=\"\"\r\n",
        "5 ;a\r\n",
        "5\t; a = b ; c\r\n",
        "5;a;b;c=d\r\n",
        "5;a=\"q \\\" \\\\ ;x\"\r\n",
        "5;a=\"\x80\xff\"\r\n",
        "5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~\r\n",
        "5;a = \"x\" ;b\r\n",
        "5;a=\"x\"\t;b\r\n",
    };
    char raw[256];
    size_t i, j;

    for (i = 0; i < TN_ARRAY_LEN(ok); i++)
        for (j = 0; j < TN_ARRAY_LEN(steps); j++) {
            int n = snprintf(raw, sizeof(raw), "%shello\r\n0\r\n\r\n", ok[i]);

            ck_assert_int_eq(feed(raw, (size_t)n, steps[j], 0), TN_OK);
            ck_assert(OUT_IS("hello"));
        }
}
END_TEST

START_TEST(chunked_trailers)
{
    size_t j;

    for (j = 0; j < TN_ARRAY_LEN(steps); j++) {
        ck_assert_int_eq(
            FEED("1\r\nx\r\n0\r\nX-T: 1\r\nY:2\r\nEmpty:\r\nZ: a\tb \x80\r\n\r\nNEXT", steps[j], 1),
            TN_OK);
        ck_assert(OUT_IS("1\r\nx\r\n0\r\n\r\n"));
        ck_assert(IN_IS("NEXT"));
    }
}
END_TEST

START_TEST(chunked_pipelined)
{
    static const char raw[] = "4\r\nbody\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t j;

    for (j = 0; j < TN_ARRAY_LEN(steps); j++) {
        ck_assert_int_eq(FEED(raw, steps[j], 0), TN_OK);
        ck_assert(OUT_IS("body"));
        ck_assert(IN_IS("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        /* once done, further calls leave in alone */
        ck_assert_int_eq(tn_chunked_decode(&C, in, out, 0, &W), TN_OK);
        ck_assert(IN_IS("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }
    /* a partial body stops at its own end too */
    ck_assert_int_eq(FEED("4\r\nbodyX", 0, 0), TN_ERR);
}
END_TEST

/* Payload moves by reference: the bytes in out are the caller's bytes. */
START_TEST(chunked_zero_copy)
{
    static char payload[4096];
    struct evbuffer_iovec v;

    memset(payload, 'p', sizeof(payload));
    evbuffer_add(in, "1000\r\n", 6);
    evbuffer_add_reference(in, payload, sizeof(payload), NULL, NULL);
    evbuffer_add(in, "\r\n0\r\n\r\nX", 8);
    ck_assert_int_eq(tn_chunked_decode(&C, in, out, 0, &W), TN_OK);
    ck_assert_uint_eq(evbuffer_get_length(out), sizeof(payload));
    ck_assert_int_eq(evbuffer_peek(out, -1, NULL, &v, 1), 1);
    ck_assert_ptr_eq(v.iov_base, payload);
    ck_assert(IN_IS("X"));
}
END_TEST

START_TEST(chunked_partial)
{
    ck_assert_int_eq(tn_chunked_decode(&C, in, out, 0, &W), TN_AGAIN);
    ck_assert_int_eq(FEED("5\r\nhel", 0, 0), TN_AGAIN);
    ck_assert_uint_eq(C.left, 2);
    ck_assert(OUT_IS("hel"));
    ck_assert(!tn_chunked_done(&C));
    /* the largest size we accept: 16 hex digits */
    ck_assert_int_eq(FEED("FFFFFFFFFFFFFFFF\r\nab", 0, 0), TN_AGAIN);
    ck_assert_uint_eq(C.left, UINT64_MAX - 2);
    ck_assert_int_eq(FEED("000000000000000a\r\n", 0, 0), TN_AGAIN);
    ck_assert_uint_eq(C.left, 10);
}
END_TEST

struct bad {
    const char *raw;
    size_t len;
};
/* clang-format off */
#define BAD(s) {s, sizeof(s) - 1}
/* clang-format on */

static const struct bad bad_bodies[] = {
    /* chunk-size */
    BAD("x\r\n"),
    BAD("0x5\r\nhello\r\n0\r\n\r\n"),
    BAD(" 5\r\nhello\r\n0\r\n\r\n"),
    BAD("\t5\r\nhello\r\n0\r\n\r\n"),
    BAD("-1\r\n"),
    BAD("+5\r\n"),
    BAD("\r\n"),
    BAD(";a\r\n"),
    BAD("5 \r\nhello\r\n0\r\n\r\n"),
    BAD("5g\r\n"),
    BAD("10000000000000000\r\n"),
    BAD("00000000000000005\r\n"),
    /* line endings */
    BAD("5\nhello\r\n0\r\n\r\n"),
    BAD("5\r\rhello\r\n0\r\n\r\n"),
    BAD("5\rhello\r\n0\r\n\r\n"),
    BAD("5\r\nhello\n0\r\n\r\n"),
    BAD("5\r\nhello\r0\r\n\r\n"),
    BAD("5\r\nhelloX\r\n0\r\n\r\n"),
    BAD("5\r\nhell\r\n0\r\n\r\n\r\n"),
    BAD("5\r\nhello0\r\n\r\n"),
    BAD("0\n\r\n"),
    BAD("0\r\n\n"),
    BAD("0\r\n\rX"),
    BAD("0\r\n\r\r"),
    BAD("5\r\nhello\r\n0\r\n\r\r\n"),
    /* extensions */
    BAD("5;\r\nhello\r\n0\r\n\r\n"),
    BAD("5; \r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a =\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a b\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a \r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=b \r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=b c\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=\"\\\x01\"\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=(b)\r\nhello\r\n0\r\n\r\n"),
    BAD("5;(a)\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a==b\r\nhello\r\n0\r\n\r\n"),
    BAD("5;a=b\nhello\r\n0\r\n\r\n"),
    BAD("5;a\0\r\nhello\r\n0\r\n\r\n"),
    /* trailers */
    BAD("0\r\n X: 1\r\n\r\n"),
    BAD("0\r\n\tX: 1\r\n\r\n"),
    BAD("0\r\nX : 1\r\n\r\n"),
    BAD("0\r\nX\r\n\r\n"),
    BAD("0\r\n: 1\r\n\r\n"),
    BAD("0\r\nX\x01: 1\r\n\r\n"),
    BAD("0\r\nX: a\nY: b\r\n\r\n"),
    BAD("0\r\nX: a\rY: b\r\n\r\n"),
    BAD("0\r\nX: a\0\r\n\r\n"),
    BAD("0\r\nX: a\x7f\r\n\r\n"),
    BAD("0\r\nX: 1\r\n folded\r\n\r\n"),
};

START_TEST(chunked_rejects)
{
    const struct bad *b = &bad_bodies[_i];
    size_t j;

    for (j = 0; j < TN_ARRAY_LEN(steps); j++) {
        int r = feed(b->raw, b->len, steps[j], _i & 1);

        if (r != TN_ERR)
            fprintf(stderr, "case %d step %zu: got %d\n", _i, steps[j], r);
        ck_assert_int_eq(r, TN_ERR);
        ck_assert(!tn_chunked_done(&C));
        /* the decoder stays failed */
        ck_assert_int_eq(tn_chunked_decode(&C, in, out, 0, &W), TN_ERR);
    }
}
END_TEST

START_TEST(chunked_size_line_limit)
{
    static char raw[8192];
    size_t n;

    /* "1;" + name + CRLF: 4096 bytes pass, 4097 do not */
    memcpy(raw, "1;", 2);
    memset(raw + 2, 'e', 4092);
    memcpy(raw + 4094, "\r\nx\r\n0\r\n\r\n", 10);
    ck_assert_int_eq(feed(raw, 4104, 0, 0), TN_OK);
    ck_assert_int_eq(feed(raw, 4104, 1, 0), TN_OK);
    memset(raw + 2, 'e', 4093);
    memcpy(raw + 4095, "\r\nx\r\n0\r\n\r\n", 10);
    ck_assert_int_eq(feed(raw, 4105, 0, 0), TN_ERR);
    ck_assert_str_eq(W, "chunk size line too long");
    /* detected before the line ends */
    n = 6000;
    memset(raw + 2, 'e', n);
    ck_assert_int_eq(feed(raw, n, 0, 0), TN_ERR);
}
END_TEST

START_TEST(chunked_trailer_limit)
{
    static char raw[20000];
    size_t n = 0;

    /* "0\r\n", then "X: v...v\r\n\r\n": exactly 16384 bytes of trailer section */
    n += (size_t)snprintf(raw, sizeof(raw), "0\r\nX: ");
    memset(raw + n, 'v', 16384 - 7);
    n += 16384 - 7;
    memcpy(raw + n, "\r\n\r\n", 4);
    n += 4;
    ck_assert_int_eq(feed(raw, n, 0, 0), TN_OK);
    ck_assert_int_eq(feed(raw, n, 1000, 0), TN_OK);
    memmove(raw + 6, raw + 5, n - 5);
    ck_assert_int_eq(feed(raw, n + 1, 0, 0), TN_ERR);
    ck_assert_str_eq(W, "trailer section too large");
}
END_TEST

static Suite *chunked_suite(void)
{
    Suite *s = suite_create("chunked");
    TCase *tc = tcase_create("decode");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, chunked_simple);
    tcase_add_test(tc, chunked_multi);
    tcase_add_test(tc, chunked_rechunk_exact);
    tcase_add_test(tc, chunked_rechunk_large);
    tcase_add_test(tc, chunked_extensions);
    tcase_add_test(tc, chunked_trailers);
    tcase_add_test(tc, chunked_pipelined);
    tcase_add_test(tc, chunked_zero_copy);
    tcase_add_test(tc, chunked_partial);
    tcase_add_loop_test(tc, chunked_rejects, 0, (int)TN_ARRAY_LEN(bad_bodies));
    tcase_add_test(tc, chunked_size_line_limit);
    tcase_add_test(tc, chunked_trailer_limit);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(chunked_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
