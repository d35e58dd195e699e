/* libFuzzer target for the HTTP/1 head scanner and parsers: scans the input
 * whole and in two pieces (split where the first byte says; both must agree),
 * parses the head as a request and as a response, and checks what a
 * successful parse returns points inside the input and obeys the grammar. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

#define MAXH 16

static void check(int cond)
{
    if (!cond)
        abort();
}

static int inside(const char *buf, size_t len, const char *p, size_t n)
{
    return p >= buf && p + n <= buf + len;
}

static void check_hdrs(const char *buf, size_t len, const struct tn_field *h, unsigned nh)
{
    unsigned i;
    uint32_t k;

    check(nh <= MAXH);
    for (i = 0; i < nh; i++) {
        check(h[i].name_len > 0 && inside(buf, len, h[i].name, h[i].name_len));
        check(inside(buf, len, h[i].value, h[i].value_len));
        for (k = 0; k < h[i].name_len; k++)
            check(tn_h1_ctype[(unsigned char)h[i].name[k]] & TN_H1_C_TCHAR);
        for (k = 0; k < h[i].value_len; k++)
            check(tn_h1_ctype[(unsigned char)h[i].value[k]] & TN_H1_C_FVAL);
        if (h[i].value_len)
            check(h[i].value[0] != ' ' && h[i].value[h[i].value_len - 1] != ' ');
    }
}

static void check_req(const char *buf, size_t len, const struct tn_h1_req *req)
{
    const char *v;
    size_t vl, k;

    check(req->head_len <= len);
    check(req->method_len > 0 && inside(buf, len, req->method_str, req->method_len));
    check(req->method != TN_H1_M_CONNECT);
    check(req->target_len > 0);
    check(req->target[0] == '/' || (req->flags & TN_H1_REQ_F_ASTERISK));
    for (k = 0; k < req->target_len; k++)
        check(tn_h1_ctype[(unsigned char)req->target[k]] & TN_H1_C_URI);
    check(req->minor == 1 ? req->host != NULL : 1);
    if (req->host)
        check(req->host_len > 0 && inside(buf, len, req->host, req->host_len));
    check(req->framing != TN_H1_BODY_CLOSE);
    check(req->framing == TN_H1_BODY_LENGTH || req->content_length == 0);
    check_hdrs(buf, len, req->hdrs, req->nhdrs);
    tn_h1_cookie(req->hdrs, req->nhdrs, "sid", &v, &vl);
    if (tn_h1_query_param(req->target, req->target_len, "a", &v, &vl))
        check(inside(req->target, req->target_len, v, vl));
    tn_h1_find(req->hdrs, req->nhdrs, "x-a");
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static const struct tn_h1_limits lim = {2048, 512, MAXH};
    const char *buf = (const char *)d, *why = NULL;
    struct tn_field hdrs[MAXH];
    struct tn_h1_scan sc = {0}, sc2 = {0};
    struct tn_h1_req req;
    struct tn_h1_resp resp;
    size_t hl = 0, hl2 = 0, cut = n ? d[0] % (n + 1) : 0;
    int st = 0, st2 = 0, r, r2;

    r = tn_h1_scan(&sc, buf, n, &lim, 0, &hl, &st, &why);
    r2 = tn_h1_scan(&sc2, buf, cut, &lim, 0, &hl2, &st2, &why);
    if (r2 == TN_AGAIN)
        r2 = tn_h1_scan(&sc2, buf, n, &lim, 0, &hl2, &st2, &why);
    check(r == r2);
    check(r != TN_OK || hl == hl2);
    check(r != TN_ERR || st == st2);

    req.hdrs = hdrs;
    if (r == TN_OK) {
        check(hl >= 4 && hl <= n && memcmp(buf + hl - 4, "\r\n\r\n", 4) == 0);
        if (tn_h1_parse_req(&req, buf, hl, &lim, &why) == TN_OK) {
            check(req.head_len == hl);
            check_req(buf, hl, &req);
        } else {
            check(why && req.status >= 400 && req.status <= 505);
        }
        resp.hdrs = hdrs;
        if (tn_h1_parse_resp(&resp, buf, hl, (enum tn_h1_method)(d[0] % 10), &lim, &why) == TN_OK) {
            check(resp.head_len == hl && resp.status >= 100 && resp.status <= 599);
            check(inside(buf, hl, resp.reason, resp.reason_len));
            check_hdrs(buf, hl, hdrs, resp.nhdrs);
        }
    }
    /* the parsers must also survive input the scanner did not delimit */
    if (tn_h1_parse_req(&req, buf, n, &lim, &why) == TN_OK)
        check_req(buf, n, &req);
    resp.hdrs = hdrs;
    tn_h1_parse_resp(&resp, buf, n, TN_H1_M_GET, &lim, &why);
    return 0;
}
