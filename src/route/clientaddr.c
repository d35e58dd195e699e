/* The client address for geography and the client_ip sticky key: CIDR
 * matching against trusted_proxies and the right-to-left walk over
 * X-Forwarded-For that stops at the first hop a trusted proxy vouches for
 * but does not itself trust. No allocation; the walk examines at most
 * XFF_MAX_ENTRIES list elements. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "turnout/clientaddr.h"
#include "turnout/common.h"

/* More list elements than this is treated like garbage: the walk stops. */
#define XFF_MAX_ENTRIES 64
/* Longest entry worth parsing: "[" v6 "]:" port, with room to spare. */
#define XFF_ENTRY_MAX 64

/* An address reduced to its family and bytes; IPv4-mapped IPv6 is IPv4. */
struct raw_addr {
    int family;
    uint8_t b[16];
};

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int to_raw(const struct sockaddr *sa, struct raw_addr *r)
{
    if (sa->sa_family == AF_INET) {
        r->family = AF_INET;
        memcpy(r->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 1;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

        if (!memcmp(a, v4mapped_prefix, 12)) {
            r->family = AF_INET;
            memcpy(r->b, a + 12, 4);
        } else {
            r->family = AF_INET6;
            memcpy(r->b, a, 16);
        }
        return 1;
    }
    return 0;
}

static int prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole))
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));

        return (a[whole] & mask) == (b[whole] & mask);
    }
    return 1;
}

/* Fills out with the address r (port 0). */
static void raw_to_sockaddr(const struct raw_addr *r, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (r->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;

        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, r->b, 4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, r->b, 16);
    }
}

/* The peer into out, port kept; IPv4-mapped IPv6 becomes IPv4, so one
 * client has one address whether it reached a v4 or a dual-stack
 * listener. */
static void copy_peer(const struct sockaddr *peer, struct sockaddr_storage *out)
{
    struct raw_addr r;
    in_port_t port;

    if (!to_raw(peer, &r)) {
        memset(out, 0, sizeof(*out));
        out->ss_family = peer->sa_family;
        return;
    }
    port = peer->sa_family == AF_INET ? ((const struct sockaddr_in *)peer)->sin_port
                                      : ((const struct sockaddr_in6 *)peer)->sin6_port;
    raw_to_sockaddr(&r, out);
    if (r.family == AF_INET)
        ((struct sockaddr_in *)out)->sin_port = port;
    else
        ((struct sockaddr_in6 *)out)->sin6_port = port;
}

static int raw_trusted(const struct tn_conf_cidr *nets, size_t n, const struct raw_addr *r)
{
    struct sockaddr_storage ss;

    raw_to_sockaddr(r, &ss);
    return tn_cidr_any(nets, n, (const struct sockaddr *)&ss);
}

/* Whether s[0..n) is a port: 1 to 5 digits, at most 65535. */
static int is_port(const char *s, size_t n)
{
    unsigned long v = 0;
    size_t i;

    if (n == 0 || n > 5)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535;
}

/* Parses one X-Forwarded-For element: "v4", "v4:port", "v6", "[v6]",
 * "[v6]:port". Returns 1 with r filled, 0 for anything else. */
static int parse_entry(const char *s, size_t n, struct raw_addr *r)
{
    char host[XFF_ENTRY_MAX];
    const char *colon;
    struct in6_addr a6;
    int fam;

    if (n == 0 || n >= sizeof(host))
        return 0;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        size_t after;

        if (!close)
            return 0;
        after = n - (size_t)(close + 1 - s);
        if (after && (close[1] != ':' || !is_port(close + 2, after - 1)))
            return 0;
        n = (size_t)(close - s - 1);
        s++;
        fam = AF_INET6;
    } else {
        colon = memchr(s, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon + 1 - s))) {
            /* one colon: v4:port */
            if (!is_port(colon + 1, n - (size_t)(colon + 1 - s)))
                return 0;
            n = (size_t)(colon - s);
            fam = AF_INET;
        } else {
            fam = colon ? AF_INET6 : AF_INET;
        }
    }
    memcpy(host, s, n);
    host[n] = '\0';
    if (inet_pton(fam, host, &a6) != 1)
        return 0;
    if (fam == AF_INET) {
        r->family = AF_INET;
        memcpy(r->b, &a6, 4);
    } else if (!memcmp(a6.s6_addr, v4mapped_prefix, 12)) {
        r->family = AF_INET;
        memcpy(r->b, a6.s6_addr + 12, 4);
    } else {
        r->family = AF_INET6;
        memcpy(r->b, a6.s6_addr, 16);
    }
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Takes the right-most element of v[0..*end), trimmed, and moves *end to
 * the comma before it. Returns 0 when nothing is left. */
static int prev_entry(const char *v, size_t *end, const char **s, size_t *n)
{
    size_t e = *end, b;

    if (e == SIZE_MAX)
        return 0;
    b = e;
    while (b > 0 && v[b - 1] != ',')
        b--;
    *end = b > 0 ? b - 1 : SIZE_MAX; /* SIZE_MAX: the left-most was taken */
    while (b < e && is_ows(v[b]))
        b++;
    while (e > b && is_ows(v[e - 1]))
        e--;
    *s = v + b;
    *n = e - b;
    return 1;
}

int tn_cidr_match(const struct tn_conf_cidr *c, const struct sockaddr *sa)
{
    struct raw_addr a;
    const uint8_t *net = c->addr;
    unsigned bits = c->bits;
    int family = c->family;

    if (!to_raw(sa, &a))
        return 0;
    if (family == AF_INET6 && bits >= 96 && !memcmp(net, v4mapped_prefix, 12)) {
        /* ::ffff:a.b.c.d/n is the IPv4 network a.b.c.d/(n-96) */
        family = AF_INET;
        net += 12;
        bits -= 96;
    }
    if (family != a.family || bits > (family == AF_INET ? 32u : 128u))
        return 0;
    return prefix_eq(a.b, net, bits);
}

int tn_cidr_any(const struct tn_conf_cidr *nets, size_t n, const struct sockaddr *sa)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (tn_cidr_match(&nets[i], sa))
            return 1;
    return 0;
}

int tn_client_addr(const struct sockaddr *peer, const struct tn_conf_cidr *trusted, size_t ntrusted,
                   const struct tn_field *fields, unsigned nfields, struct sockaddr_storage *out)
{
    struct raw_addr hop, last;
    int have_last = 0, seen = 0;
    unsigned i;

    copy_peer(peer, out);
    if (!tn_cidr_any(trusted, ntrusted, peer))
        return 0;
    for (i = nfields; i-- > 0;) {
        const struct tn_field *f = &fields[i];
        size_t end = f->value_len, n;
        const char *s;

        if (!f->value_len || !tn_strieq(f->name, f->name_len, "X-Forwarded-For"))
            continue;
        while (prev_entry(f->value, &end, &s, &n)) {
            if (++seen > XFF_MAX_ENTRIES || (n && !parse_entry(s, n, &hop)))
                goto stop;
            if (!n)
                continue; /* empty list elements are ignored (RFC 9110 5.6.1) */
            if (!raw_trusted(trusted, ntrusted, &hop)) {
                raw_to_sockaddr(&hop, out);
                return 1;
            }
            last = hop;
            have_last = 1;
        }
    }
stop:
    /* garbage, too many hops, or all trusted: the last trusted hop seen */
    if (!have_last)
        return 0;
    raw_to_sockaddr(&last, out);
    return 1;
}

int tn_client_parse_ip(const char *ip, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (!ip)
        return TN_ERR;
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)out)->sin_addr) == 1)
        out->ss_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)out)->sin6_addr) == 1)
        out->ss_family = AF_INET6;
    else
        return TN_ERR;
    return TN_OK;
}

int tn_client_ip_trusted(const char *ip, const struct tn_conf_cidr *nets, size_t n)
{
    struct sockaddr_storage ss;

    return n && tn_client_parse_ip(ip, &ss) == TN_OK &&
           tn_cidr_any(nets, n, (const struct sockaddr *)&ss);
}
