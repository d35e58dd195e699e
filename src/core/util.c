/* Process-wide helpers: invariant failure, aborting allocators for startup
 * code, the monotonic clock and small string helpers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnout/common.h"

void tn_bug(const char *file, int line, const char *what)
{
    fprintf(stderr, "turnout: BUG at %s:%d: %s\n", file, line, what);
    abort();
}

static void *check_alloc(void *p)
{
    if (!p) {
        fprintf(stderr, "turnout: out of memory at startup\n");
        abort();
    }
    return p;
}

void *tn_xmalloc(size_t n)
{
    return check_alloc(malloc(n ? n : 1));
}

void *tn_xcalloc(size_t n, size_t size)
{
    return check_alloc(calloc(n ? n : 1, size ? size : 1));
}

void *tn_xrealloc(void *p, size_t n)
{
    return check_alloc(realloc(p, n ? n : 1));
}

char *tn_xstrdup(const char *s)
{
    return check_alloc(strdup(s));
}

char *tn_xstrndup(const char *s, size_t n)
{
    return check_alloc(strndup(s, n));
}

uint64_t tn_now_ms(void)
{
    return tn_now_us() / 1000;
}

uint64_t tn_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int tn_strieq(const char *a, size_t alen, const char *b)
{
    size_t i;

    for (i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];

        if (!y)
            return 0;
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return 0;
    }
    return b[alen] == '\0';
}
