/* HTTP/1.1 message head types (RFC 9112). A parsed head points into the
 * caller's contiguous buffer; nothing is copied. */
#ifndef TURNOUT_H1_T_H
#define TURNOUT_H1_T_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/msg-t.h"


/* How the message body is delimited (RFC 9112 section 6.3). */
enum tn_h1_framing {
    TN_H1_BODY_NONE,    /* no body */
    TN_H1_BODY_LENGTH,  /* Content-Length bytes */
    TN_H1_BODY_CHUNKED, /* Transfer-Encoding: chunked */
    TN_H1_BODY_CLOSE    /* responses only: until the server closes */
};

struct tn_h1_limits {
    size_t max_head;      /* whole head incl. request/status line: else 431 (resp: error) */
    size_t max_uri;       /* request line: else 414 */
    unsigned max_headers; /* field lines: else 431; also the size of the hdrs array */
};

/* Incremental search for the end of a head; zero it before the first call
 * and keep it while more bytes arrive for the same head. */
struct tn_h1_scan {
    size_t pos;   /* next byte to examine */
    size_t start; /* first byte of the start line (leading CRLFs skipped) */
    size_t line;  /* offset of the current line's first byte */
};

#define TN_H1_REQ_F_CLOSE 0x01           /* the connection ends after this exchange */
#define TN_H1_REQ_F_EXPECT_CONTINUE 0x02 /* Expect: 100-continue */
#define TN_H1_REQ_F_ABSOLUTE 0x04        /* target was absolute-form, reduced to origin-form */
#define TN_H1_REQ_F_ASTERISK 0x08        /* OPTIONS * */

struct tn_h1_req {
    enum tn_h1_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* origin-form path[?query], or "*" */
    size_t target_len;
    const char *host; /* Host value or the absolute-form authority; NULL when absent (1.0) */
    size_t host_len;
    int minor; /* 0 or 1 (HTTP/1.2+ is treated as 1.1) */
    enum tn_h1_framing framing;
    uint64_t content_length;
    uint32_t flags;
    struct tn_field *hdrs; /* caller's array of limits.max_headers entries */
    unsigned nhdrs;
    size_t head_len; /* bytes of the head, from buf[0] to the end of the blank line */
    int status;      /* on TN_ERR: the status to answer (400, 414, 431, 501, 505) */
};

#define TN_H1_RESP_F_CLOSE 0x01 /* the server closes after this response */

struct tn_h1_resp {
    int status;
    int minor;
    const char *reason;
    size_t reason_len;
    enum tn_h1_framing framing;
    uint64_t content_length;
    uint32_t flags;
    struct tn_field *hdrs; /* caller's array of limits.max_headers entries */
    unsigned nhdrs;
    size_t head_len;
};

/* ---- Codec internals, shared by src/http/h1.c, h1_resp.c and chunked.c ---- */

/* Byte classes of tn_h1_ctype[]. */
#define TN_H1_C_TCHAR 0x01  /* token character (RFC 9110 5.6.2) */
#define TN_H1_C_FVAL 0x02   /* field value byte: HTAB, SP, VCHAR, obs-text */
#define TN_H1_C_URI 0x04    /* request-target byte: VCHAR except '#' */
#define TN_H1_C_HEX 0x08    /* HEXDIG */
#define TN_H1_C_HOST 0x10   /* reg-name/IPv4 byte we accept: ALPHA DIGIT - . _ ~ */
#define TN_H1_C_QDTEXT 0x20 /* quoted-string text: HTAB, SP, VCHAR except '"' and '\\', obs-text */

#define TN_H1_MAX_EMPTY_LINES 4 /* CRLFs tolerated before a start line */

#define TN_H1_CONN_F_CLOSE 0x01     /* Connection: close */
#define TN_H1_CONN_F_KEEPALIVE 0x02 /* Connection: keep-alive */

/* What tn_h1_parse_fields() saw in the field lines of one head. */
struct tn_h1_fields {
    unsigned nhdrs;          /* field lines stored in hdrs */
    unsigned nhost;          /* Host fields */
    unsigned host;           /* index of the first Host field (valid when nhost) */
    unsigned ncl;            /* Content-Length fields (at most 1 after TN_OK) */
    uint64_t content_length; /* its value */
    unsigned nte;            /* Transfer-Encoding fields */
    unsigned te_codings;     /* codings in all of them, read as one list */
    unsigned te_chunked;     /* how many of those are "chunked" */
    int te_last_chunked;     /* the final coding is "chunked" */
    uint32_t conn;           /* TN_H1_CONN_F_* from the Connection fields */
    unsigned nconn;          /* Connection fields */
    unsigned conn_first;     /* index of the first one (valid when nconn) */
    int conn_names;          /* Connection names some other field: flag it HOP */
    int expect_continue;     /* Expect: 100-continue */
    int status;              /* on TN_ERR: 400, or 431 for too many fields */
};

#endif
