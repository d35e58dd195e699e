/* Sticky buckets: the XXH3-64 bucket of a (route, key) pair, the search for
 * a request's sticky key through the configured sources, and the random uids
 * handed out through assign_cookie (a per-thread xoshiro256** generator
 * seeded once from getrandom()). DESIGN.md "Routing semantics". */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack: no malloc */
#include <errno.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "turnout/clientaddr.h"
#include "turnout/common.h"
#include "turnout/h1.h"
#include "turnout/route.h"

/* Keys longer than this are hashed on their first TN_KEY_MAX bytes only, so a
 * hostile cookie cannot make hashing expensive and the contiguous input stays
 * on the stack. Documented in docs/routing.md. */
#define TN_KEY_MAX 256

/* Route name + NUL + key up to this size are hashed from one stack buffer;
 * longer inputs (very long route names) go through XXH3 streaming, which
 * yields the same value. */
#define HASH_BUF 512

#define BUCKETS 1000000u

#define DEFAULT_ASSIGN_NAME "turnout_uid"

/* xoshiro256** state, one per thread, seeded lazily. */
struct prng {
    uint64_t s[4];
    int seeded;
};

static _Thread_local struct prng tls_prng;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* splitmix64: expands one 64-bit seed into well-mixed words. */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(struct prng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Seeds g from getrandom(); if the kernel refuses (it should not: it only
 * blocks before the entropy pool is ready at early boot, and GRND_NONBLOCK
 * avoids that), falls back to clock, pid and thread id so workers still
 * differ. */
static void prng_seed(struct prng *g)
{
    uint64_t seed[2] = {0, 0};
    ssize_t n;
    int i;

    do {
        n = getrandom(seed, sizeof(seed), GRND_NONBLOCK);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(seed)) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        seed[0] ^= (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        seed[1] ^= ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)pthread_self() ^
                   (uint64_t)(uintptr_t)g;
    }
    seed[0] ^= splitmix64(&seed[1]);
    for (i = 0; i < 4; i++)
        g->s[i] = splitmix64(&seed[0]);
    g->seeded = 1;
}

/* A forked child would replay its parent's uids: make it reseed. */
static void on_fork_child(void)
{
    tls_prng.seeded = 0;
}

static void register_atfork(void)
{
    (void)pthread_atfork(NULL, NULL, on_fork_child);
}

/* Writes a new uid of TN_ROUTE_UID_LEN lowercase hex chars and a NUL into
 * out (128 random bits). */
static void uid_generate(char out[TN_ROUTE_UID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    struct prng *g = &tls_prng;
    int i, j;

    if (!g->seeded) {
        pthread_once(&atfork_once, register_atfork);
        prng_seed(g);
    }
    for (i = 0; i < TN_ROUTE_UID_LEN / 16; i++) {
        uint64_t r = xoshiro_next(g);

        for (j = 0; j < 16; j++) {
            out[i * 16 + j] = hex[r & 0xf];
            r >>= 4;
        }
    }
    out[TN_ROUTE_UID_LEN] = '\0';
}

/* Sets d's key to a source found in the request; borrowed pointer. */
static void key_set(struct tn_decision *d, enum tn_sticky_kind kind, const char *v, size_t vlen)
{
    d->key_source = kind;
    d->key = v;
    d->key_len = vlen;
}

/* Looks one cookie/header/query source up; returns 1 and sets v/vlen when
 * the request carries it with a non-empty value. */
static int source_lookup(enum tn_sticky_kind kind, const char *name, const struct tn_route_req *rq,
                         const char **v, size_t *vlen)
{
    const struct tn_field *h;

    if (!name)
        return 0;
    switch (kind) {
    case TN_STICKY_COOKIE:
        return tn_h1_cookie(rq->hdrs, rq->nhdrs, name, v, vlen) && *vlen > 0;
    case TN_STICKY_HEADER:
        h = tn_h1_find(rq->hdrs, rq->nhdrs, name);
        if (!h || h->value_len == 0)
            return 0;
        *v = h->value;
        *vlen = h->value_len;
        return 1;
    case TN_STICKY_QUERY:
        if (!rq->target)
            return 0;
        return tn_h1_query_param(rq->target, rq->target_len, name, v, vlen) && *vlen > 0;
    default:
        return 0;
    }
}

/* With the peer in trusted_proxies, the client address is the right-most
 * untrusted X-Forwarded-For address (as for geography): the key is its
 * text. Returns 1 when that gave a key. */
static int client_from_xff(const struct tn_conf *c, const struct tn_route_req *rq,
                           struct tn_decision *d)
{
    struct sockaddr_storage peer, out;
    const void *a;

    if (tn_client_parse_ip(rq->client_ip, &peer) != TN_OK)
        return 0;
    if (!tn_client_addr((struct sockaddr *)&peer, c->trusted_proxies, c->ntrusted_proxies,
                        rq->hdrs, rq->nhdrs, &out))
        return 0; /* the peer itself: the caller uses its text */
    a = out.ss_family == AF_INET ? (const void *)&((struct sockaddr_in *)&out)->sin_addr
                                 : (const void *)&((struct sockaddr_in6 *)&out)->sin6_addr;
    if (!inet_ntop(out.ss_family, a, d->addr_buf, sizeof(d->addr_buf)))
        return 0;
    key_set(d, TN_STICKY_CLIENT_IP, d->addr_buf, strlen(d->addr_buf));
    return 1;
}

uint32_t tn_route_bucket(const char *route_name, const char *key, size_t key_len)
{
    size_t name_len = strlen(route_name);
    uint64_t h;

    if (key_len > TN_KEY_MAX)
        key_len = TN_KEY_MAX;
    if (name_len + 1 + key_len <= HASH_BUF) {
        char buf[HASH_BUF];

        memcpy(buf, route_name, name_len);
        buf[name_len] = '\0';
        if (key_len)
            memcpy(buf + name_len + 1, key, key_len);
        h = XXH3_64bits(buf, name_len + 1 + key_len);
    } else {
        XXH3_state_t st;
        static const char nul = '\0';

        XXH3_INITSTATE(&st);
        XXH3_64bits_reset(&st);
        XXH3_64bits_update(&st, route_name, name_len);
        XXH3_64bits_update(&st, &nul, 1);
        XXH3_64bits_update(&st, key, key_len);
        h = XXH3_64bits_digest(&st);
    }
    return (uint32_t)(h % BUCKETS);
}

void tn_route_sticky_key(const struct tn_plan *p, const struct tn_route_req *rq,
                         struct tn_decision *d)
{
    const struct tn_conf *c = p->conf;
    const struct tn_conf_assign_cookie *ac = &c->assign_cookie;
    const char *v = NULL;
    size_t vlen = 0, i;

    key_set(d, TN_STICKY_NONE, NULL, 0);
    d->set_cookie = 0;
    for (i = 0; i < c->nsticky; i++) {
        const struct tn_conf_sticky *s = &c->sticky[i];

        if (s->kind == TN_STICKY_CLIENT_IP) {
            /* with assign_cookie on, a cookie is handed out instead */
            if (ac->enabled || !rq->client_ip || !rq->client_ip[0])
                continue;
            if (c->ntrusted_proxies && client_from_xff(c, rq, d)) /* behind trusted proxies */
                return;
            key_set(d, TN_STICKY_CLIENT_IP, rq->client_ip, strlen(rq->client_ip));
            return;
        }
        if (source_lookup(s->kind, s->name, rq, &v, &vlen)) {
            key_set(d, s->kind, v, vlen);
            return;
        }
    }
    if (!ac->enabled)
        return;
    if (source_lookup(TN_STICKY_COOKIE, ac->name ? ac->name : DEFAULT_ASSIGN_NAME, rq, &v, &vlen)) {
        key_set(d, TN_STICKY_ASSIGNED, v, vlen);
        return;
    }
    uid_generate(d->key_buf);
    key_set(d, TN_STICKY_ASSIGNED, d->key_buf, TN_ROUTE_UID_LEN);
    d->set_cookie = 1;
}
