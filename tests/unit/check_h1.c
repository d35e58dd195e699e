/* Unit tests for the HTTP/1.1 head scanner and the request/response parsers
 * (src/http/h1.c, h1_resp.c): every acceptance and rejection rule in
 * docs/http.md, the request smuggling classics, scan resumption and the
 * lookup helpers. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/h1.h"

#define MAXH 32

static struct tn_field hdrs[MAXH];
static struct tn_h1_req R;
static struct tn_h1_resp S;
static const char *W;
static struct tn_h1_limits L = {8192, 1024, MAXH};

/* Scans raw[0..n) whole and byte by byte (both must agree), then parses the
 * head. Returns 0 when accepted, the status to answer, or -1 when the
 * scanner wants more bytes. */
static int req_n(const char *raw, size_t n)
{
    struct tn_h1_scan sc = {0}, sc2 = {0};
    size_t hl = 0, hl2 = 0, i;
    int st = 0, st2 = 0, r, r2 = TN_AGAIN;
    const char *why = NULL, *why2 = NULL;

    r = tn_h1_scan(&sc, raw, n, &L, 0, &hl, &st, &why);
    for (i = 1; i <= n && r2 == TN_AGAIN; i++)
        r2 = tn_h1_scan(&sc2, raw, i, &L, 0, &hl2, &st2, &why2);
    ck_assert_int_eq(r, r2);
    if (r == TN_ERR) {
        ck_assert_int_eq(st, st2);
        ck_assert_ptr_nonnull(why);
        W = why;
        return st;
    }
    if (r == TN_AGAIN)
        return -1;
    ck_assert_uint_eq(hl, hl2);
    R.hdrs = hdrs;
    W = NULL;
    if (tn_h1_parse_req(&R, raw, hl, &L, &W) != TN_OK) {
        ck_assert_ptr_nonnull(W);
        ck_assert_int_ge(R.status, 400);
        return R.status;
    }
    ck_assert_uint_eq(R.head_len, hl);
    return 0;
}
#define REQ(s) req_n(s, sizeof(s) - 1)

/* Parses a request head without the scanner in front. */
static int parse_only(const char *raw, size_t n)
{
    R.hdrs = hdrs;
    W = NULL;
    if (tn_h1_parse_req(&R, raw, n, &L, &W) == TN_OK)
        return 0;
    ck_assert_ptr_nonnull(W);
    return R.status;
}
#define PARSE(s) parse_only(s, sizeof(s) - 1)

/* Scans and parses a response head to method m: 0 or -1 (TN_ERR). */
static int resp_n(const char *raw, size_t n, enum tn_h1_method m)
{
    struct tn_h1_scan sc = {0};
    size_t hl = 0;
    int st = 0, r;

    W = NULL;
    r = tn_h1_scan(&sc, raw, n, &L, 1, &hl, &st, &W);
    if (r == TN_ERR) {
        ck_assert_int_eq(st, 502);
        return -1;
    }
    ck_assert_int_eq(r, TN_OK);
    S.hdrs = hdrs;
    if (tn_h1_parse_resp(&S, raw, hl, m, &L, &W) != TN_OK) {
        ck_assert_ptr_nonnull(W);
        return -1;
    }
    return 0;
}
#define RESP(s) resp_n(s, sizeof(s) - 1, TN_H1_M_GET)

static int hdr_is(unsigned i, const char *name, const char *value)
{
    return i < R.nhdrs && hdrs[i].name_len == strlen(name) &&
           memcmp(hdrs[i].name, name, strlen(name)) == 0 && hdrs[i].value_len == strlen(value) &&
           memcmp(hdrs[i].value, value, strlen(value)) == 0;
}

static int str_is(const char *p, size_t n, const char *s)
{
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

#define H "Host: a\r\n"

/* ---- rejected requests: raw bytes and the status they must get ---- */

struct bad {
    const char *raw;
    size_t len;
    int status;
};
/* clang-format off */
#define BAD(s, st) {s, sizeof(s) - 1, st}
/* clang-format on */

static const struct bad bad_reqs[] = {
    /* request line */
    BAD("G@T / HTTP/1.1\r\n" H "\r\n", 400),
    BAD(" GET / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET  / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /  HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.1 \r\n" H "\r\n", 400),
    BAD("GET\t/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET / http/1.1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.10\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/11.1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.x\r\n" H "\r\n", 400),
    BAD("GET /\r\n" H "\r\n", 400),
    BAD("GET\r\n" H "\r\n", 400),
    BAD("GET / HTTP/2.0\r\n" H "\r\n", 505),
    BAD("GET / HTTP/0.9\r\n" H "\r\n", 505),
    BAD("GET / HTTP/9.1\r\n" H "\r\n", 505),
    /* request target */
    BAD("GET /a#b HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /a\x7f HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /\x80 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /\xff HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /a\tb HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /\x01 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET /\0 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET * HTTP/1.1\r\n" H "\r\n", 400),
    BAD("OPTIONS *x HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET example.com:80 HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET ftp://a/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http:/a/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://u@a/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://u:p@a/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http:/// HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http:// HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://a%41/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://a:99999/ HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://a?q HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD("GET http://a/ HTTP/1.1\r\n\r\n", 400),
    BAD("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    BAD("CONNECT / HTTP/1.1\r\n" H "\r\n", 501),
    BAD("CONNECT http://a/ HTTP/1.1\r\n" H "\r\n", 501),
    /* line endings and control bytes */
    BAD("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("\nGET / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("\rGET / HTTP/1.1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.1\n" H "\r\n", 400),
    BAD("GET / HTTP/1.1\r\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\nY: b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\rY: b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\r\n\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\r\n\r\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\x01"
        "b\r\n\r\n",
        400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\x0b"
        "b\r\n\r\n",
        400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\x7f"
        "b\r\n\r\n",
        400),
    BAD("GET / HTTP/1.1\r\n" H "X: a\x1b\r\n\r\n", 400),
    /* field names */
    BAD("GET / HTTP/1.1\r\n" H "X : 1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X\t: 1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: 1\r\n folded\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X: 1\r\n\tfolded\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n X: 1\r\n" H "\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H ": v\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X\x01Y: 1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X(: 1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "X\x80: 1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Xfoo\r\n\r\n", 400),
    /* Host */
    BAD("GET / HTTP/1.1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H H "\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
    BAD("GET / HTTP/1.0\r\n" H H "\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a%41\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:-1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: [zz::]\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: [1.2.3.4]\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n", 400),
    /* Content-Length */
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: -5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length:  5 5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5,5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387905\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n", 400),
    /* Transfer-Encoding */
    BAD("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunkedx\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, identity\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked gzip\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
    BAD("POST / HTTP/1.0\r\n" H "Transfer-Encoding: chunked\r\n\r\n", 400),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    BAD("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
        501),
    /* Connection */
    BAD("GET / HTTP/1.1\r\n" H "Connection: content-length\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: close, Transfer-Encoding\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: HOST\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: a b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: a;b\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: \"close\"\r\n\r\n", 400),
    BAD("GET / HTTP/1.1\r\n" H "Connection: close/1\r\n\r\n", 400),
};

START_TEST(h1_rejects)
{
    const struct bad *b = &bad_reqs[_i];
    int st = req_n(b->raw, b->len);

    if (st != b->status)
        fprintf(stderr, "case %d: got %d (%s), want %d\n", _i, st, W ? W : "-", b->status);
    ck_assert_int_eq(st, b->status);
}
END_TEST

/* The parser alone (no scanner in front) must refuse what the scanner
 * normally catches. */
START_TEST(h1_parse_without_scan_rejects)
{
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\n" H "\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "X: a\nb\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "X: a\0b\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "\r\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "\n\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n"), 400);
    ck_assert_int_eq(PARSE("\r\n\r\n"), 400);
    ck_assert_int_eq(PARSE("\r\n"), 400);
    ck_assert_int_eq(PARSE(""), 400);
    ck_assert_int_eq(PARSE("GET / HTTP/1.1\r\n" H "\r\n"), 0);
}
END_TEST

START_TEST(h1_simple_get)
{
    static const char raw[] = "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\n"
                              "User-Agent: t\r\n\r\n";

    ck_assert_int_eq(REQ(raw), 0);
    ck_assert_int_eq(R.method, TN_H1_M_GET);
    ck_assert(str_is(R.method_str, R.method_len, "GET"));
    ck_assert(str_is(R.target, R.target_len, "/index.html?x=1"));
    ck_assert(str_is(R.host, R.host_len, "example.com"));
    ck_assert_int_eq(R.minor, 1);
    ck_assert_int_eq(R.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(R.content_length, 0);
    ck_assert_uint_eq(R.flags, 0);
    ck_assert_uint_eq(R.nhdrs, 2);
    ck_assert_uint_eq(R.head_len, sizeof(raw) - 1);
    ck_assert(hdr_is(0, "Host", "example.com"));
    ck_assert_uint_eq(hdrs[0].flags, TN_FIELD_F_HOST);
    ck_assert(hdr_is(1, "User-Agent", "t"));
    ck_assert_uint_eq(hdrs[1].flags, 0);
}
END_TEST

START_TEST(h1_methods)
{
    static const struct {
        const char *raw;
        enum tn_h1_method m;
    } t[] = {
        {"GET / HTTP/1.1\r\n" H "\r\n", TN_H1_M_GET},
        {"HEAD / HTTP/1.1\r\n" H "\r\n", TN_H1_M_HEAD},
        {"POST / HTTP/1.1\r\n" H "\r\n", TN_H1_M_POST},
        {"PUT / HTTP/1.1\r\n" H "\r\n", TN_H1_M_PUT},
        {"DELETE / HTTP/1.1\r\n" H "\r\n", TN_H1_M_DELETE},
        {"OPTIONS / HTTP/1.1\r\n" H "\r\n", TN_H1_M_OPTIONS},
        {"PATCH / HTTP/1.1\r\n" H "\r\n", TN_H1_M_PATCH},
        {"TRACE / HTTP/1.1\r\n" H "\r\n", TN_H1_M_TRACE},
        {"get / HTTP/1.1\r\n" H "\r\n", TN_H1_M_OTHER},
        {"PROPFIND / HTTP/1.1\r\n" H "\r\n", TN_H1_M_OTHER},
        {"M-SEARCH / HTTP/1.1\r\n" H "\r\n", TN_H1_M_OTHER},
        {"X!#$%&'*+.^_`|~1 / HTTP/1.1\r\n" H "\r\n", TN_H1_M_OTHER},
    };
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(t); i++) {
        ck_assert_int_eq(req_n(t[i].raw, strlen(t[i].raw)), 0);
        ck_assert_int_eq(R.method, t[i].m);
    }
    ck_assert(str_is(R.method_str, R.method_len, "X!#$%&'*+.^_`|~1"));
}
END_TEST

START_TEST(h1_versions)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.0\r\n\r\n"), 0);
    ck_assert_int_eq(R.minor, 0);
    ck_assert_ptr_null(R.host);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_CLOSE);
    ck_assert_int_eq(REQ("GET / HTTP/1.0\r\n" H "\r\n"), 0);
    ck_assert(str_is(R.host, R.host_len, "a"));
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "\r\n"), 0);
    ck_assert_int_eq(R.minor, 1);
    ck_assert_int_eq(REQ("GET / HTTP/1.2\r\n" H "\r\n"), 0);
    ck_assert_int_eq(R.minor, 1);
    ck_assert_int_eq(REQ("GET / HTTP/1.9\r\n" H "\r\n"), 0);
    ck_assert_int_eq(R.minor, 1);
    ck_assert_int_eq(REQ("GET / HTTP/1.9\r\n\r\n"), 400); /* treated as 1.1: Host needed */
}
END_TEST

START_TEST(h1_leading_empty_lines)
{
    static const char raw[] = "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n";

    ck_assert_int_eq(REQ(raw), 0);
    ck_assert_uint_eq(R.head_len, sizeof(raw) - 1);
    ck_assert(str_is(R.method_str, R.method_len, "GET"));
    ck_assert_int_eq(REQ("\r\nGET / HTTP/1.1\r\n" H "\r\n"), 0);
}
END_TEST

START_TEST(h1_absolute_form)
{
    ck_assert_int_eq(REQ("GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"), 0);
    ck_assert(str_is(R.target, R.target_len, "/p?q=1"));
    ck_assert(str_is(R.host, R.host_len, "example.com"));
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_ABSOLUTE);
    ck_assert_uint_eq(hdrs[0].flags, TN_FIELD_F_HOST);

    ck_assert_int_eq(REQ("GET HTTPS://Ex.com:8443 HTTP/1.1\r\n" H "\r\n"), 0);
    ck_assert(str_is(R.target, R.target_len, "/"));
    ck_assert(str_is(R.host, R.host_len, "Ex.com:8443"));
    ck_assert_int_eq(REQ("GET hTtP://[::1]:80/x HTTP/1.1\r\n" H "\r\n"), 0);
    ck_assert(str_is(R.target, R.target_len, "/x"));
    ck_assert(str_is(R.host, R.host_len, "[::1]:80"));
    /* HTTP/1.0 may omit Host; the authority still provides it */
    ck_assert_int_eq(REQ("GET http://b/ HTTP/1.0\r\n\r\n"), 0);
    ck_assert(str_is(R.host, R.host_len, "b"));
}
END_TEST

START_TEST(h1_asterisk_form)
{
    ck_assert_int_eq(REQ("OPTIONS * HTTP/1.1\r\n" H "\r\n"), 0);
    ck_assert(str_is(R.target, R.target_len, "*"));
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_ASTERISK);
    ck_assert_int_eq(REQ("GET * HTTP/1.1\r\n" H "\r\n"), 400);
}
END_TEST

START_TEST(h1_connect_not_implemented)
{
    ck_assert_int_eq(REQ("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 501);
    ck_assert_str_eq(W, "CONNECT is not supported");
}
END_TEST

START_TEST(h1_target_bytes)
{
    ck_assert_int_eq(REQ("GET /a-z_.~!$&'()*+,;=:@%20[]{}|\\^`\"<>? HTTP/1.1\r\n" H "\r\n"), 0);
    ck_assert_int_eq(REQ("GET /# HTTP/1.1\r\n" H "\r\n"), 400);
    ck_assert_str_eq(W, "fragment in request target");
}
END_TEST

START_TEST(h1_field_values)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "A:  x y \t\r\nB:\r\nC: \t \r\nD:a\tb\r\n"
                         "E: caf\xc3\xa9\x80\xff\r\nF: !\"#~\r\n\r\n"),
                     0);
    ck_assert_uint_eq(R.nhdrs, 7);
    ck_assert(hdr_is(1, "A", "x y"));
    ck_assert(hdr_is(2, "B", ""));
    ck_assert(hdr_is(3, "C", ""));
    ck_assert(hdr_is(4, "D", "a\tb"));
    ck_assert(hdr_is(5, "E", "caf\xc3\xa9\x80\xff"));
    ck_assert(hdr_is(6, "F", "!\"#~"));
}
END_TEST

START_TEST(h1_field_name_errors)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X : 1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "whitespace before colon");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X: 1\r\n y\r\n\r\n"), 400);
    ck_assert_str_eq(W, "obs-fold or whitespace at line start");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H ": 1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "empty field name");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X\x01: 1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "invalid byte in field name");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X: \0\r\n\r\n"), 400);
    ck_assert_str_eq(W, "NUL in head");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X: 1\n\r\n"), 400);
    ck_assert_str_eq(W, "bare LF in head");
}
END_TEST

START_TEST(h1_host_valid)
{
    static const char *const ok[] = {"a.b-c_d~e",     "1.2.3.4:80",       "[::1]:8080",
                                     "[2001:db8::1]", "[::ffff:1.2.3.4]", "a:65535",
                                     "a:0",           "EXAMPLE.com:08"};
    char raw[256];
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(ok); i++) {
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", ok[i]);
        ck_assert_int_eq(req_n(raw, strlen(raw)), 0);
        ck_assert(str_is(R.host, R.host_len, ok[i]));
    }
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\nHost:  a \r\n\r\n"), 0);
    ck_assert(str_is(R.host, R.host_len, "a"));
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "missing Host");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H H "\r\n"), 400);
    ck_assert_str_eq(W, "multiple Host fields");
}
END_TEST

START_TEST(h1_content_length)
{
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\n"), 0);
    ck_assert_int_eq(R.framing, TN_H1_BODY_LENGTH);
    ck_assert_uint_eq(R.content_length, 5);
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_FRAMING);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "content-length:  007 \r\n\r\n"), 0);
    ck_assert_uint_eq(R.content_length, 7);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n"), 0);
    ck_assert_int_eq(R.framing, TN_H1_BODY_LENGTH); /* documented: CL 0 stays LENGTH */
    ck_assert_uint_eq(R.content_length, 0);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387904\r\n\r\n"), 0);
    ck_assert_uint_eq(R.content_length, (uint64_t)1 << 62);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
                     400);
    ck_assert_str_eq(W, "multiple Content-Length fields");
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n"), 400);
    ck_assert_str_eq(W, "invalid Content-Length");
}
END_TEST

START_TEST(h1_transfer_encoding)
{
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"), 0);
    ck_assert_int_eq(R.framing, TN_H1_BODY_CHUNKED);
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_FRAMING);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "transfer-encoding: ChUnKeD\r\n\r\n"), 0);
    ck_assert_int_eq(R.framing, TN_H1_BODY_CHUNKED);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: , chunked ,\r\n\r\n"), 0);
    ck_assert_int_eq(R.framing, TN_H1_BODY_CHUNKED);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
                         "Content-Length: 3\r\n\r\n"),
                     400);
    ck_assert_str_eq(W, "Content-Length with Transfer-Encoding");
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\n\r\n"), 400);
    ck_assert_str_eq(W, "final transfer coding is not chunked");
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n"),
                     400);
    ck_assert_str_eq(W, "chunked applied more than once");
    ck_assert_int_eq(REQ("POST / HTTP/1.0\r\n" H "Transfer-Encoding: chunked\r\n\r\n"), 400);
    ck_assert_str_eq(W, "Transfer-Encoding in an HTTP/1.0 request");
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    ck_assert_str_eq(W, "unsupported transfer coding");
}
END_TEST

START_TEST(h1_connection)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_CLOSE);
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_HOP);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: ,, CLOSE ,\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_CLOSE);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, 0);
    ck_assert_int_eq(REQ("GET / HTTP/1.0\r\n" H "Connection: Keep-Alive\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, 0);
    ck_assert_int_eq(REQ("GET / HTTP/1.0\r\n" H "Connection: keep-alive, close\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_CLOSE);
    ck_assert_int_eq(REQ("GET / HTTP/1.0\r\n" H "\r\n"), 0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_CLOSE);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: close, foo\r\n"), -1);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: content-length\r\n\r\n"), 400);
    ck_assert_str_eq(W, "Connection names a framing field");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: a b\r\n\r\n"), 400);
    ck_assert_str_eq(W, "invalid Connection token");
}
END_TEST

START_TEST(h1_hop_by_hop)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\nX-Foo: 1\r\n" H "Connection: x-foo, X-Bar\r\n"
                         "Keep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
                         "Proxy-Connection: x\r\nX-Bar: 2\r\nX-Baz: 3\r\nx-foo: 4\r\n\r\n"),
                     0);
    ck_assert_uint_eq(R.nhdrs, 11);
    ck_assert_uint_eq(hdrs[0].flags, TN_FIELD_F_HOP);  /* X-Foo, named before */
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_HOST); /* Host */
    ck_assert_uint_eq(hdrs[2].flags, TN_FIELD_F_HOP);  /* Connection */
    ck_assert_uint_eq(hdrs[3].flags, TN_FIELD_F_HOP);  /* Keep-Alive */
    ck_assert_uint_eq(hdrs[4].flags, TN_FIELD_F_HOP);  /* TE */
    ck_assert_uint_eq(hdrs[5].flags, TN_FIELD_F_HOP);  /* Trailer */
    ck_assert_uint_eq(hdrs[6].flags, TN_FIELD_F_HOP);  /* Upgrade */
    ck_assert_uint_eq(hdrs[7].flags, TN_FIELD_F_HOP);  /* Proxy-Connection */
    ck_assert_uint_eq(hdrs[8].flags, TN_FIELD_F_HOP);  /* X-Bar, named after */
    ck_assert_uint_eq(hdrs[9].flags, 0);                /* X-Baz */
    ck_assert_uint_eq(hdrs[10].flags, TN_FIELD_F_HOP); /* second x-foo */
    ck_assert_uint_eq(R.flags, 0);
    /* a second Connection field counts too */
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: a\r\nConnection: b\r\nb: 1\r\n\r\n"),
                     0);
    ck_assert_uint_eq(hdrs[3].flags, TN_FIELD_F_HOP);
}
END_TEST

START_TEST(h1_expect_and_forwarded)
{
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Expect: 100-continue\r\nContent-Length: 1\r\n"
                         "X-Forwarded-For: 1.2.3.4\r\nx-forwarded-proto: https\r\n\r\n"),
                     0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_EXPECT_CONTINUE);
    ck_assert_uint_eq(hdrs[1].flags, 0); /* Expect is end-to-end */
    ck_assert_uint_eq(hdrs[3].flags, TN_FIELD_F_XFF);
    ck_assert_uint_eq(hdrs[4].flags, TN_FIELD_F_XFP);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Expect: 100-Continue\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, TN_H1_REQ_F_EXPECT_CONTINUE);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Expect: foo\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, 0);
    /* HTTP/1.0: the expectation is ignored (RFC 9110 10.1.1) */
    ck_assert_int_eq(
        REQ("POST / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: keep-alive\r\n\r\n"), 0);
    ck_assert_uint_eq(R.flags, 0);
}
END_TEST

/* Builds "GET /<n x 'a'> HTTP/1.1\r\nHost: a\r\n\r\n" whose request line is
 * exactly len bytes (without CRLF). */
static size_t line_of(char *buf, size_t len)
{
    static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t pad = len - strlen("GET / HTTP/1.1");

    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', pad);
    memcpy(buf + 5 + pad, tail, sizeof(tail));
    return strlen(buf);
}

START_TEST(h1_uri_too_long)
{
    static char buf[4096];
    struct tn_h1_scan sc = {0};
    size_t hl;
    int st = 0;
    const char *why;

    ck_assert_int_eq(req_n(buf, line_of(buf, L.max_uri)), 0);
    ck_assert_int_eq(req_n(buf, line_of(buf, L.max_uri + 1)), 414);
    /* detected before the line is complete */
    line_of(buf, 3000);
    ck_assert_int_eq(tn_h1_scan(&sc, buf, L.max_uri, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, buf, L.max_uri + 1, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 414);
    /* the parser checks it too */
    ck_assert_int_eq(parse_only(buf, line_of(buf, L.max_uri + 1)), 414);
    /* responses: the status is 502 */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, buf, L.max_uri + 1, &L, 1, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 502);
}
END_TEST

START_TEST(h1_head_too_large)
{
    static char buf[8192 + 64];
    struct tn_h1_limits small = {64, 64, 8};
    struct tn_h1_scan sc = {0};
    size_t hl, n;
    int st = 0;
    const char *why;

    /* a head of exactly max_head bytes passes, one more does not */
    n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n",
                         (int)(64 - strlen("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n")), 0);
    ck_assert_uint_eq(n, 64);
    ck_assert_int_eq(tn_h1_scan(&sc, buf, n, &small, 0, &hl, &st, &why), TN_OK);
    ck_assert_uint_eq(hl, 64);
    R.hdrs = hdrs;
    ck_assert_int_eq(tn_h1_parse_req(&R, buf, n, &small, &why), TN_OK);
    n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nX: %0*d\r\n\r\n",
                         (int)(65 - strlen("GET / HTTP/1.1\r\nHost: a\r\nX: \r\n\r\n")), 0);
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, buf, n, &small, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 431);
    ck_assert_int_eq(tn_h1_parse_req(&R, buf, n, &small, &why), TN_ERR);
    ck_assert_int_eq(R.status, 431);
    /* detected without waiting for the end of the head */
    memset(buf, 0, sizeof(buf));
    n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX: ");
    memset(buf + n, 'x', 8192);
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, buf, L.max_head - 1, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, buf, L.max_head, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 431);
}
END_TEST

START_TEST(h1_too_many_headers)
{
    static char buf[4096];
    struct tn_h1_limits lim = {8192, 1024, 4};
    size_t n;

    R.hdrs = hdrs;
    n = (size_t)snprintf(buf, sizeof(buf),
                         "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    ck_assert_int_eq(tn_h1_parse_req(&R, buf, n, &lim, &W), TN_OK);
    ck_assert_uint_eq(R.nhdrs, 4);
    n = (size_t)snprintf(buf, sizeof(buf),
                         "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
    ck_assert_int_eq(tn_h1_parse_req(&R, buf, n, &lim, &W), TN_ERR);
    ck_assert_int_eq(R.status, 431);
    ck_assert_str_eq(W, "too many header fields");
}
END_TEST

START_TEST(h1_scan_resumes)
{
    static const char raw[] = "\r\nPOST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET";
    const size_t head = sizeof(raw) - 1 - 6;
    struct tn_h1_scan sc = {0};
    size_t i, hl = 0;
    int st = 0;
    const char *why;

    for (i = 0; i < head; i++)
        ck_assert_int_eq(tn_h1_scan(&sc, raw, i, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, raw, head, &L, 0, &hl, &st, &why), TN_OK);
    ck_assert_uint_eq(hl, head);
    /* pipelined bytes after the head are not part of it */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, raw, sizeof(raw) - 1, &L, 0, &hl, &st, &why), TN_OK);
    ck_assert_uint_eq(hl, head);
    /* a CR at the end waits for its LF; the same length asked twice is fine */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(raw[18], '\r');
    ck_assert_int_eq(tn_h1_scan(&sc, raw, 19, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, raw, 19, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_uint_eq(sc.pos, 18);
    ck_assert_int_eq(tn_h1_scan(&sc, raw, 20, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, raw, head, &L, 0, &hl, &st, &why), TN_OK);
    R.hdrs = hdrs;
    ck_assert_int_eq(tn_h1_parse_req(&R, raw, hl, &L, &why), TN_OK);
    ck_assert_uint_eq(R.content_length, 3);
}
END_TEST

START_TEST(h1_scan_errors_are_immediate)
{
    static const char lf[] = "GET / HTTP/1.1\r\nHost: a\nmore bytes never arrive";
    static const char cr[] = "GET / HTTP/1.1\r\nHost: a\rX";
    static const char nul[] = "GET / HTTP/1.1\r\nHo\0st: a";
    struct tn_h1_scan sc = {0};
    size_t hl;
    int st = 0;
    const char *why;

    ck_assert_int_eq(tn_h1_scan(&sc, lf, 23, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, lf, 24, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 400);
    ck_assert_str_eq(why, "bare LF in head");
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, cr, 24, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, cr, 25, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_str_eq(why, "bare CR in head");
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, nul, 19, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_str_eq(why, "NUL in head");
    /* an empty line too many before the request line */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, "\r\n\r\n\r\n\r\n\r\n", 10, &L, 0, &hl, &st, &why), TN_ERR);
}
END_TEST

/* A request line without an HTTP version (HTTP/0.9 "GET /") fails once its
 * CRLF is seen: no head follows, so waiting for one would hold the
 * connection until client_header. Before the CRLF nothing is decided. */
START_TEST(h1_scan_http09_request_line_fails_at_its_crlf)
{
    static const char *const why09 = "no HTTP version at the end of the request line";
    static const char http09[] = "GET /\r\n";
    /* 20 bytes before the CRLF: the start line's cap (uri 20 + 1) ends on its CR */
    static const char edge09[] = "GET /aaaaaaaaaaaaaaa\r\nHost: a\r\n\r\n";
    static const char edge11[] = "GET /aaaaaa HTTP/1.1\r\nHost: a\r\n\r\n";
    struct tn_h1_limits small = {64, 20, 8};
    struct tn_h1_scan sc = {0};
    size_t hl = 0, i;
    int st = 0;
    const char *why = NULL;

    for (i = 1; i < sizeof(http09) - 1; i++) /* "G" .. "GET /\r": not yet */
        ck_assert_int_eq(tn_h1_scan(&sc, http09, i, &L, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, http09, sizeof(http09) - 1, &L, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 400);
    ck_assert_str_eq(why, why09);
    /* whole, after an empty line, and other lines that end without a version */
    ck_assert_int_eq(REQ("GET /\r\n"), 400);
    ck_assert_str_eq(W, why09);
    ck_assert_int_eq(REQ("\r\nGET /index.html\r\n"), 400);
    ck_assert_int_eq(REQ("GET\r\n"), 400);
    ck_assert_int_eq(REQ("GET / HTTP/1\r\n"), 400);
    ck_assert_int_eq(REQ("GET / http/1.1\r\n"), 400);
    ck_assert_int_eq(REQ("GET / HTTP/1.1 \r\n"), 400);
    /* a version that is there but wrong is still the parser's: 505 */
    ck_assert_int_eq(REQ("GET / HTTP/0.9\r\n" H "\r\n"), 505);
    ck_assert_int_eq(REQ("GET / HTTP/0.9\r\n"), -1);
    /* the line's CR on the last byte the start line may use */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, edge09, sizeof(edge09) - 1, &small, 0, &hl, &st, &why),
                     TN_ERR);
    ck_assert_int_eq(st, 400);
    ck_assert_str_eq(why, why09);
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, edge11, sizeof(edge11) - 1, &small, 0, &hl, &st, &why),
                     TN_OK);
    ck_assert_uint_eq(hl, sizeof(edge11) - 1);
    /* responses are not concerned: a 0.9-style answer is the parser's 502 */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, "hello\r\n\r\n", 9, &L, 1, &hl, &st, &why), TN_OK);
    ck_assert_int_eq(RESP("hello\r\n\r\n"), -1);
}
END_TEST

/* The scanner's word-at-a-time paths: long lines, control bytes deep in a
 * value, and a head that ends exactly at the size limit. */
START_TEST(h1_scan_long_lines)
{
    static const char tab[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789abcdef\t0123456789"
                              "abcdef 0123456789abcdef\r\n\r\n";
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789abcdef0123456789"
                              "abcdef\0"
                              "123456789abcdef\r\n\r\n";
    static const char vt[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789abcdef0123456789"
                             "abcdef\v123456789abcdef\r\n\r\n";
    /* 64 bytes up to the blank line, which makes it 66 */
    static const char edge[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                               "X-Pad: 1234567890\r\n\r\n";
    struct tn_h1_limits small = {64, 20, 8};
    struct tn_h1_scan sc = {0};
    size_t hl = 0;
    int st = 0;
    const char *why;

    ck_assert_int_eq(REQ(tab), 0);
    ck_assert(hdr_is(1, "X-Long", "0123456789abcdef\t0123456789abcdef 0123456789abcdef"));
    ck_assert_int_eq(REQ(nul), 400);
    ck_assert_str_eq(W, "NUL in head");
    ck_assert_int_eq(REQ(vt), 400); /* the scanner lets VT through; the parser does not */
    ck_assert_str_eq(W, "control byte in field value");
    ck_assert_uint_eq(sizeof(edge) - 1, 66);
    /* every field line fits; the wait at 64 bytes ends in 431 once more come */
    ck_assert_int_eq(tn_h1_scan(&sc, edge, 64, &small, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, edge, 66, &small, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 431);
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, edge, 63, &small, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, edge, 64, &small, 0, &hl, &st, &why), TN_AGAIN);
    ck_assert_int_eq(tn_h1_scan(&sc, edge, 65, &small, 0, &hl, &st, &why), TN_ERR);
    ck_assert_int_eq(st, 431);
    /* a response without fields: the status line, then the blank line */
    memset(&sc, 0, sizeof(sc));
    ck_assert_int_eq(tn_h1_scan(&sc, "HTTP/1.1 204 No Content\r\n\r\n", 27, &L, 1, &hl, &st, &why),
                     TN_OK);
    ck_assert_uint_eq(hl, 27);
}
END_TEST

/* Field names of 16 bytes and more, and ones with token bytes other than
 * letters, digits and '-'. */
START_TEST(h1_long_field_names)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "X-Forwarded-Proto: https\r\n"
                         "Accept_Encoding.v2~x: gzip\r\nX-A-Very-Long-Field-Name-0123: 1\r\n"
                         "proxy-CONNECTION: x\r\n\r\n"),
                     0);
    ck_assert(hdr_is(1, "X-Forwarded-Proto", "https"));
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_XFP);
    ck_assert(hdr_is(2, "Accept_Encoding.v2~x", "gzip"));
    ck_assert(hdr_is(3, "X-A-Very-Long-Field-Name-0123", "1"));
    ck_assert_uint_eq(hdrs[4].flags, TN_FIELD_F_HOP);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "0123456789abcdef(: 1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "invalid byte in field name");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "0123456789abcdef : 1\r\n\r\n"), 400);
    ck_assert_str_eq(W, "whitespace before colon");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "0123456789abcdef\r\n\r\n"), 400);
    ck_assert_str_eq(W, "field line without colon");
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "a`b`c`d`e: 1\r\n\r\n"), 0);
    ck_assert_ptr_eq(tn_h1_find(hdrs, R.nhdrs, "A`B`C`D`E"), &hdrs[1]);
    ck_assert_ptr_null(tn_h1_find(hdrs, R.nhdrs, "a@b@c@d@e")); /* '`' is not '@' folded */
}
END_TEST

/* Content-Length at the edges of the digit count and of 2^62. */
START_TEST(h1_content_length_edges)
{
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 999999999999999999\r\n\r\n"), 0);
    ck_assert_uint_eq(R.content_length, 999999999999999999ULL);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387904\r\n\r\n"), 0);
    ck_assert_uint_eq(R.content_length, (uint64_t)1 << 62);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387905\r\n\r\n"),
                     400);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 9999999999999999999\r\n\r\n"),
                     400);
    ck_assert_int_eq(REQ("POST / HTTP/1.1\r\n" H "Content-Length: 000000000000000000007\r\n\r\n"),
                     0);
    ck_assert_uint_eq(R.content_length, 7);
}
END_TEST

/* Which fields the Connection tokens flag HOP when the tokens name fields
 * that are hop-by-hop anyway, or "close". */
START_TEST(h1_connection_names)
{
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: keep-alive\r\nClose: 1\r\n"
                         "Keep-Alive: 5\r\n\r\n"),
                     0);
    ck_assert_uint_eq(hdrs[2].flags, 0); /* Close */
    ck_assert_uint_eq(hdrs[3].flags, TN_FIELD_F_HOP);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: close\r\nClose: 1\r\n\r\n"), 0);
    ck_assert_uint_eq(hdrs[2].flags, 0);
    /* once another token is there, every token names a field, "close" too */
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Close: 1\r\nConnection: close\r\n"
                         "Connection: keep-alive\r\n\r\n"),
                     0);
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_HOP);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: Upgrade, TE\r\nUpgrade: h2c\r\n"
                         "X-Forwarded-For: 1.2.3.4\r\nTE: trailers\r\n\r\n"),
                     0);
    ck_assert_uint_eq(hdrs[2].flags, TN_FIELD_F_HOP);
    ck_assert_uint_eq(hdrs[3].flags, TN_FIELD_F_XFF);
    ck_assert_uint_eq(hdrs[4].flags, TN_FIELD_F_HOP);
    ck_assert_int_eq(REQ("GET / HTTP/1.1\r\n" H "Connection: upgrade, x-forwarded-for\r\n"
                         "X-Forwarded-For: 1.2.3.4\r\n\r\n"),
                     0);
    ck_assert_uint_eq(hdrs[2].flags, TN_FIELD_F_XFF | TN_FIELD_F_HOP);
}
END_TEST

START_TEST(h1_lookups)
{
    const struct tn_field *h;
    const char *v;
    size_t vl;

    ck_assert_int_eq(
        REQ("GET /p?a=1&bb=&c&d=x=y&a=2 HTTP/1.1\r\n" H
            "Cookie: sid=abc; theme = dark ;flag\r\nX: 1\r\ncookie: late=1;sid=zzz\r\n\r\n"),
        0);
    h = tn_h1_find(hdrs, R.nhdrs, "COOKIE");
    ck_assert_ptr_eq(h, &hdrs[1]);
    ck_assert_ptr_null(tn_h1_find(hdrs, R.nhdrs, "cooki"));
    ck_assert_ptr_null(tn_h1_find(hdrs, R.nhdrs, "missing"));
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "sid", &v, &vl), 1);
    ck_assert(str_is(v, vl, "abc"));
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "theme", &v, &vl), 1);
    ck_assert(str_is(v, vl, "dark"));
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "late", &v, &vl), 1);
    ck_assert(str_is(v, vl, "1"));
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "flag", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "SID", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_cookie(hdrs, R.nhdrs, "si", &v, &vl), 0);

    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "a", &v, &vl), 1);
    ck_assert(str_is(v, vl, "1"));
    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "bb", &v, &vl), 1);
    ck_assert_uint_eq(vl, 0);
    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "c", &v, &vl), 1);
    ck_assert_uint_eq(vl, 0);
    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "d", &v, &vl), 1);
    ck_assert(str_is(v, vl, "x=y"));
    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "b", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_query_param(R.target, R.target_len, "p", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_query_param("/p", 2, "p", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_query_param("/p?", 3, "x", &v, &vl), 0);
    ck_assert_int_eq(tn_h1_query_param("/p?x", 4, "x", &v, &vl), 1);
    ck_assert_uint_eq(vl, 0);
}
END_TEST

START_TEST(h1_reasons)
{
    static const int codes[] = {100, 101, 103, 200, 201, 204, 206, 301, 302, 304,
                                307, 308, 400, 403, 404, 405, 408, 411, 413, 414,
                                417, 421, 429, 431, 500, 501, 502, 503, 504, 505};
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(codes); i++)
        ck_assert_ptr_nonnull(tn_h1_reason(codes[i]));
    ck_assert_str_eq(tn_h1_reason(200), "OK");
    ck_assert_str_eq(tn_h1_reason(400), "Bad Request");
    ck_assert_str_eq(tn_h1_reason(414), "URI Too Long");
    ck_assert_str_eq(tn_h1_reason(431), "Request Header Fields Too Large");
    ck_assert_str_eq(tn_h1_reason(505), "HTTP Version Not Supported");
    ck_assert_str_eq(tn_h1_reason(103), "Early Hints");
    ck_assert_str_eq(tn_h1_reason(599), "Server Error");
    ck_assert_str_eq(tn_h1_reason(42), "Unknown");
    ck_assert_str_eq(tn_h1_reason(600), "Unknown");
}
END_TEST

/* ---- responses ---- */

static const struct bad bad_resps[] = {
    BAD("HTTP/1.1 20 OK\r\n\r\n", 0),
    BAD("HTTP/1.1  200 OK\r\n\r\n", 0),
    BAD("HTTP/1.1 200OK\r\n\r\n", 0),
    BAD("HTTP/1.1 2000 OK\r\n\r\n", 0),
    BAD("HTTP/2.0 200 OK\r\n\r\n", 0),
    BAD("HTTP/2 200 OK\r\n\r\n", 0),
    BAD("HTTP/1 200 OK\r\n\r\n", 0),
    BAD("http/1.1 200 OK\r\n\r\n", 0),
    BAD("ICY 200 OK\r\n\r\n", 0),
    BAD(" HTTP/1.1 200 OK\r\n\r\n", 0),
    BAD("HTTP/1.1 099 Low\r\n\r\n", 0),
    BAD("HTTP/1.1 600 High\r\n\r\n", 0),
    BAD("HTTP/1.1 000 Zero\r\n\r\n", 0),
    BAD("HTTP/1.1 200 O\x01K\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA: 1\nB: 2\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA: 1\rB: 2\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA: \0\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA: 1\r\n 2\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA : 1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nA\x01: 1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nContent-Length: 1 1\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", 0),
    BAD("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", 0),
    BAD("HTTP/1.1 101 Switching\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0),
    BAD("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nConnection: content-length\r\n\r\n", 0),
    BAD("HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n", 0),
};

START_TEST(h1_resp_rejects)
{
    const struct bad *b = &bad_resps[_i];

    ck_assert_int_eq(resp_n(b->raw, b->len, TN_H1_M_GET), -1);
}
END_TEST

START_TEST(h1_resp_basic)
{
    static const char raw[] = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\n";

    ck_assert_int_eq(RESP(raw), 0);
    ck_assert_int_eq(S.status, 200);
    ck_assert_int_eq(S.minor, 1);
    ck_assert(str_is(S.reason, S.reason_len, "OK"));
    ck_assert_int_eq(S.framing, TN_H1_BODY_LENGTH);
    ck_assert_uint_eq(S.content_length, 12);
    ck_assert_uint_eq(S.flags, 0);
    ck_assert_uint_eq(S.nhdrs, 2);
    ck_assert_uint_eq(S.head_len, sizeof(raw) - 1);
    ck_assert_uint_eq(hdrs[0].flags, TN_FIELD_F_FRAMING);
    ck_assert_uint_eq(hdrs[1].flags, 0);
}
END_TEST

START_TEST(h1_resp_status_line)
{
    ck_assert_int_eq(RESP("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_int_eq(S.status, 404);
    ck_assert_uint_eq(S.reason_len, 0);
    ck_assert_int_eq(RESP("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_uint_eq(S.reason_len, 0);
    ck_assert_int_eq(RESP("HTTP/1.0 599 Odd \t reason\x80\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_int_eq(S.status, 599);
    ck_assert_int_eq(S.minor, 0);
    ck_assert(str_is(S.reason, S.reason_len, "Odd \t reason\x80"));
    ck_assert_int_eq(RESP("HTTP/1.7 100 Continue\r\n\r\n"), 0);
    ck_assert_int_eq(S.minor, 1);
    ck_assert_int_eq(RESP("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
}
END_TEST

START_TEST(h1_resp_framing)
{
    ck_assert_int_eq(RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_CHUNKED);
    ck_assert_uint_eq(S.flags, 0);
    /* close-delimited */
    ck_assert_int_eq(RESP("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_CLOSE);
    ck_assert_uint_eq(S.flags, TN_H1_RESP_F_CLOSE);
    /* 1xx */
    ck_assert_int_eq(RESP("HTTP/1.1 100 Continue\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(S.flags, 0);
    ck_assert_int_eq(RESP("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_int_eq(RESP("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          "Connection: upgrade\r\n\r\n"),
                     0);
    ck_assert_int_eq(S.status, 101);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    /* 204 and 304 */
    ck_assert_int_eq(RESP("HTTP/1.1 204 No Content\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_int_eq(RESP("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_int_eq(RESP("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(S.content_length, 50);
    ck_assert_int_eq(RESP("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(S.flags, 0);
}
END_TEST

START_TEST(h1_resp_to_head)
{
    static const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    static const char te[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char none[] = "HTTP/1.1 200 OK\r\n\r\n";

    ck_assert_int_eq(resp_n(cl, sizeof(cl) - 1, TN_H1_M_HEAD), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(S.content_length, 100);
    ck_assert_int_eq(resp_n(te, sizeof(te) - 1, TN_H1_M_HEAD), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_int_eq(resp_n(none, sizeof(none) - 1, TN_H1_M_HEAD), 0);
    ck_assert_int_eq(S.framing, TN_H1_BODY_NONE);
    ck_assert_uint_eq(S.flags, 0);
}
END_TEST

START_TEST(h1_resp_connection)
{
    ck_assert_int_eq(RESP("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_uint_eq(S.flags, TN_H1_RESP_F_CLOSE);
    ck_assert_int_eq(RESP("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0);
    ck_assert_uint_eq(S.flags, TN_H1_RESP_F_CLOSE);
    ck_assert_int_eq(RESP("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"),
                     0);
    ck_assert_uint_eq(S.flags, 0);
    ck_assert_int_eq(
        RESP("HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: X-A\r\nKeep-Alive: t=1\r\n"
             "Host: h\r\nX-Forwarded-For: 1\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n"),
        0);
    ck_assert_uint_eq(hdrs[0].flags, TN_FIELD_F_HOP);
    ck_assert_uint_eq(hdrs[1].flags, TN_FIELD_F_HOP);
    ck_assert_uint_eq(hdrs[2].flags, TN_FIELD_F_HOP);
    ck_assert_uint_eq(hdrs[3].flags, 0); /* Host means nothing in a response */
    ck_assert_uint_eq(hdrs[4].flags, 0);
    ck_assert_uint_eq(hdrs[5].flags, TN_FIELD_F_HOP);
    ck_assert_uint_eq(hdrs[6].flags, TN_FIELD_F_FRAMING);
}
END_TEST

START_TEST(h1_resp_limits)
{
    struct tn_h1_limits lim = {8192, 1024, 2};
    static const char raw[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    S.hdrs = hdrs;
    ck_assert_int_eq(tn_h1_parse_resp(&S, raw, sizeof(raw) - 1, TN_H1_M_GET, &lim, &W), TN_ERR);
    lim.max_headers = 3;
    ck_assert_int_eq(tn_h1_parse_resp(&S, raw, sizeof(raw) - 1, TN_H1_M_GET, &lim, &W), TN_OK);
    lim.max_head = 20;
    ck_assert_int_eq(tn_h1_parse_resp(&S, raw, sizeof(raw) - 1, TN_H1_M_GET, &lim, &W), TN_ERR);
    ck_assert_int_eq(tn_h1_parse_resp(&S, raw, 10, TN_H1_M_GET, &L, &W), TN_ERR);
}
END_TEST

static Suite *h1_suite(void)
{
    Suite *s = suite_create("h1");
    TCase *tc = tcase_create("request");
    TCase *tr = tcase_create("response");

    tcase_add_loop_test(tc, h1_rejects, 0, (int)TN_ARRAY_LEN(bad_reqs));
    tcase_add_test(tc, h1_parse_without_scan_rejects);
    tcase_add_test(tc, h1_simple_get);
    tcase_add_test(tc, h1_methods);
    tcase_add_test(tc, h1_versions);
    tcase_add_test(tc, h1_leading_empty_lines);
    tcase_add_test(tc, h1_absolute_form);
    tcase_add_test(tc, h1_asterisk_form);
    tcase_add_test(tc, h1_connect_not_implemented);
    tcase_add_test(tc, h1_target_bytes);
    tcase_add_test(tc, h1_field_values);
    tcase_add_test(tc, h1_field_name_errors);
    tcase_add_test(tc, h1_host_valid);
    tcase_add_test(tc, h1_content_length);
    tcase_add_test(tc, h1_transfer_encoding);
    tcase_add_test(tc, h1_connection);
    tcase_add_test(tc, h1_hop_by_hop);
    tcase_add_test(tc, h1_expect_and_forwarded);
    tcase_add_test(tc, h1_uri_too_long);
    tcase_add_test(tc, h1_head_too_large);
    tcase_add_test(tc, h1_too_many_headers);
    tcase_add_test(tc, h1_scan_resumes);
    tcase_add_test(tc, h1_scan_errors_are_immediate);
    tcase_add_test(tc, h1_scan_http09_request_line_fails_at_its_crlf);
    tcase_add_test(tc, h1_scan_long_lines);
    tcase_add_test(tc, h1_long_field_names);
    tcase_add_test(tc, h1_content_length_edges);
    tcase_add_test(tc, h1_connection_names);
    tcase_add_test(tc, h1_lookups);
    tcase_add_test(tc, h1_reasons);
    suite_add_tcase(s, tc);

    tcase_add_loop_test(tr, h1_resp_rejects, 0, (int)TN_ARRAY_LEN(bad_resps));
    tcase_add_test(tr, h1_resp_basic);
    tcase_add_test(tr, h1_resp_status_line);
    tcase_add_test(tr, h1_resp_framing);
    tcase_add_test(tr, h1_resp_to_head);
    tcase_add_test(tr, h1_resp_connection);
    tcase_add_test(tr, h1_resp_limits);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(h1_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
