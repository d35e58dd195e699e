/* libFuzzer target for the chunked decoder. The first byte sets the size of
 * the pieces the rest is fed in (0: all at once). Checks that piecewise and
 * whole decoding agree, that the bytes after the body stay in the input,
 * and that decoding the re-chunked output gives the same payload back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "turnout/chunked.h"
#include "turnout/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Feeds d[0..n) in pieces of step bytes into a fresh decoder. Leaves the
 * unread bytes in in. */
static int run(const uint8_t *d, size_t n, size_t step, int rechunk, struct evbuffer *in,
               struct evbuffer *out, struct tn_chunked *c)
{
    const char *why = NULL;
    size_t off = 0;
    int r = TN_AGAIN;

    tn_chunked_init(c);
    if (!step)
        step = n ? n : 1;
    do {
        size_t k = n - off < step ? n - off : step;

        evbuffer_add(in, d + off, k);
        off += k;
        r = tn_chunked_decode(c, in, out, rechunk, &why);
    } while (off < n && r == TN_AGAIN);
    check(r != TN_ERR || why != NULL);
    check((r == TN_OK) == tn_chunked_done(c));
    evbuffer_add(in, d + off, n - off);
    return r;
}

static int same(struct evbuffer *a, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(a);

    return n == evbuffer_get_length(b) &&
           (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    struct evbuffer *in1 = evbuffer_new(), *out1 = evbuffer_new();
    struct evbuffer *in2 = evbuffer_new(), *out2 = evbuffer_new();
    struct evbuffer *in3 = evbuffer_new(), *out3 = evbuffer_new();
    struct tn_chunked c1, c2, c3;
    int r1, r2, r3;

    check(in1 && out1 && in2 && out2 && in3 && out3);
    if (n == 0)
        goto done;
    r1 = run(d + 1, n - 1, d[0], 0, in1, out1, &c1);
    r2 = run(d + 1, n - 1, 0, 1, in2, out2, &c2);
    if (r1 == TN_OK) {
        /* the whole-input run ends at the same byte, with the same payload */
        check(r2 == TN_OK && same(in1, in2));
        check(c1.total == evbuffer_get_length(out1) && c2.total == c1.total);
        /* the re-chunked form decodes to the same payload, with nothing left */
        r3 = run(evbuffer_pullup(out2, -1), evbuffer_get_length(out2), 0, 0, in3, out3, &c3);
        check(r3 == TN_OK && evbuffer_get_length(in3) == 0 && same(out1, out3));
    } else if (r1 == TN_ERR) {
        check(r2 == TN_ERR);
    } else {
        check(r2 == TN_AGAIN);
    }
done:
    evbuffer_free(in1);
    evbuffer_free(out1);
    evbuffer_free(in2);
    evbuffer_free(out2);
    evbuffer_free(in3);
    evbuffer_free(out3);
    return 0;
}
