/* Protocol-neutral message types: a header field, the request method and
 * the head of a request or response as a stream sees it, whatever codec
 * (HTTP/1.1 today, HTTP/2 next) carried it. */
#ifndef TURNOUT_MSG_T_H
#define TURNOUT_MSG_T_H

#include <stddef.h>
#include <stdint.h>

enum tn_h1_method {
    TN_H1_M_OTHER = 0, /* a valid extension token */
    TN_H1_M_GET,
    TN_H1_M_HEAD,
    TN_H1_M_POST,
    TN_H1_M_PUT,
    TN_H1_M_DELETE,
    TN_H1_M_OPTIONS,
    TN_H1_M_PATCH,
    TN_H1_M_TRACE,
    TN_H1_M_CONNECT
};

/* Header flags set by the parser, so the proxy knows what to drop or
 * rewrite when it forwards the head. */
#define TN_FIELD_F_HOP 0x01     /* hop-by-hop: Connection, Keep-Alive, Proxy-Connection, TE,
                                  * Trailer, Upgrade, and every field named in Connection */
#define TN_FIELD_F_FRAMING 0x02 /* Content-Length or Transfer-Encoding: regenerated */
#define TN_FIELD_F_HOST 0x04    /* Host: regenerated from tn_h1_req.host */
#define TN_FIELD_F_XFF 0x08     /* X-Forwarded-For: merged into the one the proxy writes */
#define TN_FIELD_F_XFP 0x10     /* X-Forwarded-Proto: replaced */
#define TN_FIELD_F_DROP 0x20    /* not forwarded (e.g. Expect from an HTTP/1.0 client) */

struct tn_field {
    const char *name;
    const char *value; /* OWS trimmed on both sides */
    uint32_t name_len;
    uint32_t value_len;
    uint32_t flags;
};

/* How a message body is delimited, seen from the stream. */
enum tn_body_kind {
    TN_BODY_NONE,   /* no body */
    TN_BODY_LENGTH, /* exactly content_length bytes */
    TN_BODY_STREAM  /* length unknown until the end (chunked, close-delimited, HTTP/2 DATA) */
};

#define TN_MSG_F_EXPECT_CONTINUE 0x01 /* request: Expect: 100-continue */

/* The head of a request or a response. Pointers are borrowed: a request head
 * is copied into the stream's arena by the stream; a response head is valid
 * only during the call that hands it over. When base is set, every string
 * of the message lies in base[0..base_len) (one copy rebases them all). */
struct tn_msg {
    /* request */
    enum tn_h1_method method;
    const char *method_str;
    size_t method_len;
    const char *target; /* origin-form path[?query], or "*" */
    size_t target_len;
    const char *authority; /* Host or :authority; NULL when absent */
    size_t authority_len;
    /* response */
    int status;
    const char *reason; /* may be NULL: the canonical phrase is used */
    size_t reason_len;
    /* both */
    struct tn_field *fields;
    unsigned nfields;
    struct tn_field *extra; /* response: fields the stream adds (Set-Cookie, debug) */
    unsigned nextra;
    enum tn_body_kind body;
    uint64_t content_length; /* TN_BODY_LENGTH */
    uint32_t flags;          /* TN_MSG_F_* */
    const char *base;
    size_t base_len;
};

#endif
