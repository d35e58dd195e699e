/* Bounded serialization into a caller's fixed buffer (a worker's scratch
 * space): appends stop at the capacity and set `overflow`, checked once at
 * the end. Used by the HTTP/1 codecs to build heads. Any thread. */
#ifndef TURNOUT_SBUF_H
#define TURNOUT_SBUF_H

#include <stdint.h>
#include <string.h>

#include "turnout/msg-t.h"

struct tn_sbuf {
    char *p;
    size_t len, cap;
    int overflow;
};

static inline void tn_sbuf_add(struct tn_sbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define TN_SBUF_LIT(b, lit) tn_sbuf_add((b), (lit), sizeof(lit) - 1)

static inline void tn_sbuf_u64(struct tn_sbuf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    tn_sbuf_add(b, tmp + i, sizeof(tmp) - i);
}

/* "Name: value\r\n" */
static inline void tn_sbuf_field(struct tn_sbuf *b, const struct tn_field *f)
{
    tn_sbuf_add(b, f->name, f->name_len);
    TN_SBUF_LIT(b, ": ");
    tn_sbuf_add(b, f->value, f->value_len);
    TN_SBUF_LIT(b, "\r\n");
}

/* Writes "<hex>\r\n" for a chunk of n bytes into out[24]; returns its length. */
static inline size_t tn_chunk_line(char *out, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[20];
    size_t i = sizeof(tmp), len;

    do {
        tmp[--i] = hex[n & 15];
        n >>= 4;
    } while (n);
    len = sizeof(tmp) - i;
    memcpy(out, tmp + i, len);
    out[len] = '\r';
    out[len + 1] = '\n';
    return len + 2;
}

#endif
