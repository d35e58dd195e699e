/* Shared return codes, invariant checks and startup-only allocators used by
 * every module. */
#ifndef TURNOUT_COMMON_H
#define TURNOUT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define TN_OK 0
#define TN_ERR (-1)
#define TN_AGAIN 1

/* Most bytes one read or write system call moves (libevent's default is 4 KiB
 * per read, which costs a syscall per 4 KiB of body). */
#define TN_IO_CHUNK (64u << 10)

#define TN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Aborts with file:line when an invariant breaks; always compiled in.
 * Guards invariants only, never input. */
#define TN_BUG_ON(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!!(cond), 0))                                                         \
            tn_bug(__FILE__, __LINE__, #cond);                                                     \
    } while (0)

_Noreturn void tn_bug(const char *file, int line, const char *what);

/* Allocators that abort on failure: startup and control-plane code only.
 * The request path uses plain malloc and fails the stream instead. */
void *tn_xmalloc(size_t n);
void *tn_xcalloc(size_t n, size_t size);
void *tn_xrealloc(void *p, size_t n);
char *tn_xstrdup(const char *s);
char *tn_xstrndup(const char *s, size_t n);

/* Monotonic clock in milliseconds / microseconds. */
uint64_t tn_now_ms(void);
uint64_t tn_now_us(void);

/* ASCII case-insensitive comparison of a counted string with a C string;
 * returns 1 when equal. */
int tn_strieq(const char *a, size_t alen, const char *b);

#endif
