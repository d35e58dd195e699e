/* Strict HTTP/1.1 head parsing (RFC 9110/9112) for requests from clients and
 * responses from backends. Pure functions over a caller's buffer: no
 * allocation, no I/O, any thread. */
#ifndef TURNOUT_H1_H
#define TURNOUT_H1_H

#include "turnout/h1-t.h"

/* Looks for the end of a head in buf[0..len), resuming at sc->pos. Leading
 * empty lines (CRLF) before the start line are skipped (sc->start).
 * Returns TN_OK with *head_len = offset just past the blank line; TN_AGAIN
 * when more bytes are needed; TN_ERR with *status and *why on a bare CR, a
 * bare LF, a NUL, a start line longer than lim->max_uri (414), or a head
 * longer than lim->max_head (431). is_resp selects response limits (the
 * status is then always 502). Borrows buf. */
int tn_h1_scan(struct tn_h1_scan *sc, const char *buf, size_t len, const struct tn_h1_limits *lim,
               int is_resp, size_t *head_len, int *status, const char **why);

/* Parses a complete request head buf[0..len) (as delimited by tn_h1_scan;
 * leading CRLFs allowed). req->hdrs must point to lim->max_headers entries.
 * Returns TN_OK, or TN_ERR with req->status and *why (a static string).
 * The result points into buf. */
int tn_h1_parse_req(struct tn_h1_req *req, const char *buf, size_t len,
                    const struct tn_h1_limits *lim, const char **why);

/* Parses a complete response head. req_method decides bodiless responses
 * (HEAD). Returns TN_OK, or TN_ERR with *why: the proxy answers 502. */
int tn_h1_parse_resp(struct tn_h1_resp *resp, const char *buf, size_t len, enum tn_h1_method req_method,
                     const struct tn_h1_limits *lim, const char **why);

/* Returns the first header called name (case-insensitive), or NULL. */
const struct tn_field *tn_h1_find(const struct tn_field *hdrs, unsigned n, const char *name);

/* Finds cookie name in all Cookie headers; sets *val and *vlen. Returns 1 if found. */
int tn_h1_cookie(const struct tn_field *hdrs, unsigned n, const char *name, const char **val,
                 size_t *vlen);

/* Finds query parameter name in target ("/p?a=1&b=2"); no decoding. Returns 1 if found. */
int tn_h1_query_param(const char *target, size_t tlen, const char *name, const char **val,
                      size_t *vlen);

/* Canonical reason phrase for a status code ("Bad Request"). */
const char *tn_h1_reason(int status);

/* ---- Codec internals, shared by src/http/h1.c, h1_resp.c and chunked.c ---- */

/* Byte class table (TN_H1_C_* bits), indexed by unsigned char. */
extern const uint8_t tn_h1_ctype[256];

/* Parses the field lines of a head from buf[*off] through the blank line;
 * buf[0..len) must end with CRLF CRLF. Fills hdrs[0..max) with names,
 * OWS-trimmed values and flags (is_resp: only HOP and FRAMING), validates
 * Content-Length and Transfer-Encoding syntax and Connection tokens, flags
 * the fields Connection names, and summarises framing in *f. Returns TN_OK
 * with *off just past the blank line, or TN_ERR with f->status and *why.
 * Borrows buf and hdrs; any thread. */
int tn_h1_parse_fields(const char *buf, size_t len, size_t *off, struct tn_field *hdrs,
                       unsigned max, int is_resp, struct tn_h1_fields *f, const char **why);

#endif
