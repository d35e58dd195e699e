/* Incremental decoder for the chunked transfer coding (RFC 9112 section 7.1).
 * Size lines, extensions and trailers go through a byte-level state machine
 * (so input may arrive one byte at a time); payload moves between evbuffers
 * without copying, bounded by the current chunk so pipelined bytes stay in
 * the input. Optionally the payload is re-framed as fresh chunks. */
#include <string.h>

#include <event2/buffer.h>

#include "turnout/chunked.h"
#include "turnout/common.h"
#include "turnout/h1.h"

#define SIZE_LINE_MAX 4096  /* chunk-size line incl. extensions and CRLF */
#define TRAILER_MAX 16384   /* all trailer lines incl. the final CRLF */
#define SIZE_DIGITS_MAX 16  /* hex digits in a chunk-size: fits uint64_t */
#define MOVE_MAX (1u << 30) /* per evbuffer_remove_buffer() call: it returns int */

#define CT(c) tn_h1_ctype[(unsigned char)(c)]
#define IS_WS(c) ((c) == ' ' || (c) == '\t')

#define CHUNKED_STATES(X)                                                                          \
    X(SIZE0)      /* first hex digit of a chunk-size */                                            \
    X(SIZE)       /* more digits, then ';', BWS or CR */                                           \
    X(EXT_BWS)    /* BWS that must lead to ';' */                                                  \
    X(EXT_NAME0)  /* after ';': BWS or an extension name */                                        \
    X(EXT_NAME)   /* in the name: '=', ';', BWS or CR may follow */                                \
    X(EXT_EQ)     /* BWS after a name: '=' or ';' */                                               \
    X(EXT_VAL0)   /* after '=': BWS, a token or a quoted-string */                                 \
    X(EXT_TOKEN)  /* token value */                                                                \
    X(EXT_QUOTED) /* inside a quoted-string */                                                     \
    X(EXT_QESC)   /* after a backslash in a quoted-string */                                       \
    X(EXT_END)    /* after the closing quote: ';', BWS or CR */                                    \
    X(SIZE_LF)    /* CR seen at the end of the size line */                                        \
    X(DATA)       /* c->left payload bytes to move */                                              \
    X(DATA_CR)    /* the CR after the payload */                                                   \
    X(DATA_LF)    /* the LF after the payload */                                                   \
    X(TR_START)   /* start of a trailer field line, or the final CR */                             \
    X(TR_NAME)    /* trailer field name up to ':' */                                               \
    X(TR_VALUE)   /* trailer field value up to CR */                                               \
    X(TR_LF)      /* LF ending a trailer line */                                                   \
    X(END_LF)     /* LF ending the body */                                                         \
    X(DONE)       /* body complete; later bytes are not ours */                                    \
    X(FAILED)     /* framing error: the connection must close */

enum chunked_state {
#define TN_X_ENUM(s) ST_##s,
    CHUNKED_STATES(TN_X_ENUM)
#undef TN_X_ENUM
        ST_COUNT
};

/* DONE and FAILED are final; everything else may move anywhere the byte
 * grammar takes it. */
static void set_state(struct tn_chunked *c, enum chunked_state s)
{
    TN_BUG_ON(s >= ST_COUNT);
    TN_BUG_ON((c->state == ST_DONE || c->state == ST_FAILED) && s != (enum chunked_state)c->state);
    c->state = (int)s;
}

static int fail(struct tn_chunked *c, const char *reason, const char **why)
{
    set_state(c, ST_FAILED);
    *why = reason;
    return TN_ERR;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    return (ch | 0x20) - 'a' + 10;
}

/* One byte of the chunk extensions: the state it leads to, or ST_FAILED. */
static enum chunked_state step_ext(enum chunked_state s, unsigned char ch)
{
    switch (s) {
    case ST_EXT_BWS:
    case ST_EXT_EQ:
        if (ch == ';')
            return ST_EXT_NAME0;
        if (ch == '=' && s == ST_EXT_EQ)
            return ST_EXT_VAL0;
        return IS_WS(ch) ? s : ST_FAILED;
    case ST_EXT_NAME0:
    case ST_EXT_VAL0:
        if (CT(ch) & TN_H1_C_TCHAR)
            return s == ST_EXT_NAME0 ? ST_EXT_NAME : ST_EXT_TOKEN;
        if (ch == '"' && s == ST_EXT_VAL0)
            return ST_EXT_QUOTED;
        return IS_WS(ch) ? s : ST_FAILED;
    case ST_EXT_NAME:
    case ST_EXT_TOKEN:
    case ST_EXT_END:
        if ((CT(ch) & TN_H1_C_TCHAR) && s != ST_EXT_END)
            return s;
        if (ch == ';')
            return ST_EXT_NAME0;
        if (ch == '=' && s == ST_EXT_NAME)
            return ST_EXT_VAL0;
        if (IS_WS(ch))
            return s == ST_EXT_NAME ? ST_EXT_EQ : ST_EXT_BWS;
        return ch == '\r' ? ST_SIZE_LF : ST_FAILED;
    case ST_EXT_QUOTED:
        if (ch == '\\')
            return ST_EXT_QESC;
        if (ch == '"')
            return ST_EXT_END;
        return (CT(ch) & TN_H1_C_QDTEXT) ? s : ST_FAILED;
    case ST_EXT_QESC:
        return (CT(ch) & TN_H1_C_FVAL) ? ST_EXT_QUOTED : ST_FAILED;
    default:
        TN_BUG_ON(1);
    }
    return ST_FAILED;
}

/* One byte of a chunk-size line: size, extensions, CRLF. Returns TN_AGAIN
 * for more, TN_OK once the line is complete (state DATA or TR_START). */
static int step_size_line(struct tn_chunked *c, unsigned char ch, const char **why)
{
    enum chunked_state s = (enum chunked_state)c->state, next;

    if (++c->line > SIZE_LINE_MAX)
        return fail(c, "chunk size line too long", why);
    if (s == ST_SIZE0 || s == ST_SIZE) {
        if (CT(ch) & TN_H1_C_HEX) {
            if (c->line > SIZE_DIGITS_MAX)
                return fail(c, "chunk size too large", why);
            c->left = c->left << 4 | (uint64_t)hexval(ch);
            next = ST_SIZE;
        } else if (s == ST_SIZE && ch == '\r') {
            next = ST_SIZE_LF;
        } else if (s == ST_SIZE && (ch == ';' || IS_WS(ch))) {
            next = ch == ';' ? ST_EXT_NAME0 : ST_EXT_BWS;
        } else {
            return fail(c, "invalid chunk size", why);
        }
    } else if (s == ST_SIZE_LF) {
        if (ch != '\n')
            return fail(c, "bare CR in chunk size line", why);
        c->line = 0;
        set_state(c, c->left ? ST_DATA : ST_TR_START);
        return TN_OK;
    } else if ((next = step_ext(s, ch)) == ST_FAILED) {
        return fail(c, "invalid chunk extension", why);
    }
    set_state(c, next);
    return TN_AGAIN;
}

/* One byte after the payload or in the trailer section. Returns TN_AGAIN
 * for more, TN_OK when the state reached SIZE0 or DONE. */
static int step_other(struct tn_chunked *c, unsigned char ch, const char **why)
{
    enum chunked_state s = (enum chunked_state)c->state;

    if (s >= ST_TR_START && ++c->trailer > TRAILER_MAX)
        return fail(c, "trailer section too large", why);
    switch (s) {
    case ST_DATA_CR:
        if (ch != '\r')
            return fail(c, "missing CRLF after chunk data", why);
        set_state(c, ST_DATA_LF);
        return TN_AGAIN;
    case ST_DATA_LF:
        if (ch != '\n')
            return fail(c, "bare CR after chunk data", why);
        c->left = 0;
        set_state(c, ST_SIZE0);
        return TN_OK;
    case ST_TR_START:
        if (ch == '\r')
            set_state(c, ST_END_LF);
        else if (CT(ch) & TN_H1_C_TCHAR)
            set_state(c, ST_TR_NAME);
        else
            return fail(c, IS_WS(ch) ? "obs-fold in trailer" : "invalid trailer field", why);
        return TN_AGAIN;
    case ST_TR_NAME:
        if (ch == ':')
            set_state(c, ST_TR_VALUE);
        else if (!(CT(ch) & TN_H1_C_TCHAR))
            return fail(
                c, IS_WS(ch) ? "whitespace before colon in trailer" : "invalid trailer field", why);
        return TN_AGAIN;
    case ST_TR_VALUE:
        if (ch == '\r')
            set_state(c, ST_TR_LF);
        else if (!(CT(ch) & TN_H1_C_FVAL))
            return fail(c, "invalid byte in trailer value", why);
        return TN_AGAIN;
    case ST_TR_LF:
    case ST_END_LF:
        if (ch != '\n')
            return fail(c, "bare CR in trailer section", why);
        set_state(c, s == ST_TR_LF ? ST_TR_START : ST_DONE);
        return s == ST_TR_LF ? TN_AGAIN : TN_OK;
    default:
        TN_BUG_ON(1);
    }
    return TN_ERR;
}

/* Runs framing bytes from the front of in through the state machine until
 * the state needs payload (DATA), the body ends, or in runs dry. Drains
 * exactly the bytes it consumed. */
static int run_framing(struct tn_chunked *c, struct evbuffer *in, const char **why)
{
    struct evbuffer_iovec v[4];
    int nv = evbuffer_peek(in, -1, NULL, v, 4), i, r = TN_AGAIN;
    size_t used = 0;

    if (nv > 4)
        nv = 4;
    for (i = 0; i < nv && r == TN_AGAIN; i++) {
        const unsigned char *b = v[i].iov_base;
        size_t k;

        for (k = 0; k < v[i].iov_len && r == TN_AGAIN; k++)
            r = c->state <= ST_SIZE_LF ? step_size_line(c, b[k], why) : step_other(c, b[k], why);
        used += k;
    }
    if (r == TN_ERR)
        return TN_ERR;
    if (used && evbuffer_drain(in, used) != 0)
        return fail(c, "evbuffer_drain failed", why);
    if (r == TN_AGAIN && evbuffer_get_length(in) == 0)
        return TN_AGAIN;
    return TN_OK;
}

/* Appends "<hex>\r\n" for a chunk of n bytes. */
static int add_chunk_header(struct evbuffer *out, size_t n)
{
    char tmp[2 * sizeof(size_t) + 2], *p = tmp + sizeof(tmp);

    *--p = '\n';
    *--p = '\r';
    do {
        *--p = "0123456789abcdef"[n & 15];
        n >>= 4;
    } while (n);
    return evbuffer_add(out, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* Moves what in holds of the current chunk's payload to out, no copy. */
static int move_data(struct tn_chunked *c, struct evbuffer *in, struct evbuffer *out, int rechunk,
                     const char **why)
{
    size_t n = evbuffer_get_length(in);

    if (n == 0)
        return TN_AGAIN;
    if (n > c->left)
        n = (size_t)c->left;
    if (n > MOVE_MAX)
        n = MOVE_MAX;
    if (rechunk && add_chunk_header(out, n) != 0)
        return fail(c, "out of memory", why);
    if (evbuffer_remove_buffer(in, out, n) != (int)n)
        return fail(c, "evbuffer_remove_buffer failed", why);
    if (rechunk && evbuffer_add(out, "\r\n", 2) != 0)
        return fail(c, "out of memory", why);
    c->left -= n;
    c->total += n;
    if (c->left == 0)
        set_state(c, ST_DATA_CR);
    return TN_OK;
}

void tn_chunked_init(struct tn_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = ST_SIZE0;
}

int tn_chunked_decode(struct tn_chunked *c, struct evbuffer *in, struct evbuffer *out, int rechunk,
                      const char **why)
{
    for (;;) {
        int r;

        if (c->state == ST_DONE)
            return TN_OK;
        if (c->state == ST_FAILED) {
            *why = "chunked body already failed";
            return TN_ERR;
        }
        if (c->state == ST_DATA)
            r = move_data(c, in, out, rechunk, why);
        else
            r = run_framing(c, in, why);
        if (r != TN_OK)
            return r;
        if (c->state == ST_DONE && rechunk && evbuffer_add(out, "0\r\n\r\n", 5) != 0)
            return fail(c, "out of memory", why);
    }
}

int tn_chunked_done(const struct tn_chunked *c)
{
    return c->state == ST_DONE;
}
