/* Incremental, strict decoder for the chunked transfer coding (RFC 9112
 * section 7.1). Moves payload bytes between evbuffers without copying and can
 * re-frame them as fresh chunks; chunk extensions and trailers are validated
 * and dropped. */
#ifndef TURNOUT_CHUNKED_H
#define TURNOUT_CHUNKED_H

#include <stdint.h>

struct evbuffer;

struct tn_chunked {
    int state;      /* private */
    uint64_t left;  /* payload bytes left in the current chunk */
    size_t line;    /* bytes of the current size/trailer line seen so far */
    size_t trailer; /* bytes of trailers seen so far */
    uint64_t total; /* payload bytes decoded so far */
};

/* Prepares c for a new body. */
void tn_chunked_init(struct tn_chunked *c);

/* Decodes from in, removing exactly the bytes that belong to the body and
 * leaving anything after the final CRLF in place (a pipelined request).
 * Payload is moved to out: as fresh chunks ("<hex>\r\n...\r\n", and
 * "0\r\n\r\n" at the end) when rechunk is set, raw otherwise. Returns TN_OK
 * when the body is complete, TN_AGAIN when in is exhausted, TN_ERR on bad
 * framing with *why (a static string). Borrows both buffers. Chunk-size
 * lines and trailers are limited to 4 KiB and 16 KiB. */
int tn_chunked_decode(struct tn_chunked *c, struct evbuffer *in, struct evbuffer *out, int rechunk,
                      const char **why);

/* Returns 1 once the final chunk and trailers were consumed. */
int tn_chunked_done(const struct tn_chunked *c);

#endif
