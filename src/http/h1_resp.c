/* Strict HTTP/1.1 response heads from backends (RFC 9112 section 4): the
 * status line, and the framing rules a proxy needs to find where the body
 * ends. Any violation is an error the proxy turns into 502. Field lines go
 * through the same parser as requests (h1.c). */
#include <stdint.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/h1.h"

#define IS_DIGIT(c) ((unsigned char)((c) - '0') <= 9)

static inline uint64_t load8(const char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

/* "HTTP/1.x SP 3DIGIT [SP reason] CRLF" at buf[start]; sets *off to the
 * first field line. "HTTP/1.1" is one load when 9 bytes are left; else, as
 * buf ends with CRLF CRLF, every test below runs only after a byte that was
 * neither CR nor LF, so none reads past it. */
static int parse_status_line(struct tn_h1_resp *resp, const char *buf, size_t len, size_t start,
                             size_t *off, const struct tn_h1_limits *lim, const char **why)
{
    const char *p = buf + start;

    if (!(len - start >= 9 && load8(p) == load8("HTTP/1.1") && p[8] == ' ') &&
        !(p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
          IS_DIGIT(p[5]) && p[6] == '.' && IS_DIGIT(p[7]) && p[8] == ' ')) {
        *why = "invalid status line";
        return TN_ERR;
    }
    if (!(IS_DIGIT(p[9]) && IS_DIGIT(p[10]) && IS_DIGIT(p[11]))) {
        *why = "invalid status line";
        return TN_ERR;
    }
    if (p[5] != '1') {
        *why = "unsupported HTTP major version in response";
        return TN_ERR;
    }
    resp->minor = p[7] != '0';
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100 || resp->status > 599) {
        *why = "status code out of range";
        return TN_ERR;
    }
    p += 12;
    if (*p != ' ' && *p != '\r') {
        *why = "invalid status line"; /* "200OK" */
        return TN_ERR;
    }
    if (*p == ' ')
        p++;
    resp->reason = p;
    while (tn_h1_ctype[(unsigned char)*p] & TN_H1_C_FVAL)
        p++;
    resp->reason_len = (size_t)(p - resp->reason);
    if (p[0] != '\r' || p[1] != '\n') {
        *why = "invalid byte in status line";
        return TN_ERR;
    }
    if ((size_t)(p - (buf + start)) > lim->max_uri) {
        *why = "status line too long";
        return TN_ERR;
    }
    *off = (size_t)(p + 2 - buf);
    return TN_OK;
}

/* Decides how the body is delimited (RFC 9112 section 6.3). */
static int resp_framing(struct tn_h1_resp *resp, const struct tn_h1_fields *f,
                        enum tn_h1_method req_method, const char **why)
{
    int st = resp->status;

    if (f->nte) {
        if (resp->minor == 0)
            *why = "Transfer-Encoding in an HTTP/1.0 response";
        else if (f->ncl)
            *why = "Content-Length with Transfer-Encoding";
        else if (f->te_codings != 1 || !f->te_last_chunked)
            *why = "transfer coding other than chunked";
        else if (st < 200 || st == 204)
            *why = "Transfer-Encoding in a 1xx or 204 response";
        else
            *why = NULL;
        if (*why)
            return TN_ERR;
    }
    if (f->ncl && (st < 200 || (st == 204 && f->content_length))) {
        *why = "Content-Length in a 1xx or 204 response";
        return TN_ERR;
    }
    resp->content_length = f->content_length;
    if (st < 200 || st == 204 || st == 304 || req_method == TN_H1_M_HEAD)
        resp->framing = TN_H1_BODY_NONE;
    else if (f->nte)
        resp->framing = TN_H1_BODY_CHUNKED;
    else if (f->ncl)
        resp->framing = TN_H1_BODY_LENGTH;
    else {
        resp->framing = TN_H1_BODY_CLOSE;
        resp->flags |= TN_H1_RESP_F_CLOSE;
    }
    return TN_OK;
}

int tn_h1_parse_resp(struct tn_h1_resp *resp, const char *buf, size_t len,
                     enum tn_h1_method req_method, const struct tn_h1_limits *lim, const char **why)
{
    struct tn_field *hdrs = resp->hdrs;
    struct tn_h1_fields f;
    size_t start = 0, off;
    int n;

    memset(resp, 0, sizeof(*resp));
    resp->hdrs = hdrs;
    if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
        *why = "incomplete response head";
        return TN_ERR;
    }
    for (n = 0; n < TN_H1_MAX_EMPTY_LINES && start + 2 < len; n++, start += 2)
        if (buf[start] != '\r' || buf[start + 1] != '\n')
            break;
    if (len - start > lim->max_head) {
        *why = "response head too large";
        return TN_ERR;
    }
    if (parse_status_line(resp, buf, len, start, &off, lim, why) != TN_OK)
        return TN_ERR;
    if (tn_h1_parse_fields(buf, len, &off, hdrs, lim->max_headers, 1, &f, why) != TN_OK)
        return TN_ERR;
    resp->nhdrs = f.nhdrs;
    resp->head_len = off;
    if (resp_framing(resp, &f, req_method, why) != TN_OK)
        return TN_ERR;
    if ((f.conn & TN_H1_CONN_F_CLOSE) || (resp->minor == 0 && !(f.conn & TN_H1_CONN_F_KEEPALIVE)))
        resp->flags |= TN_H1_RESP_F_CLOSE;
    return TN_OK;
}
