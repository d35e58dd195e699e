/* Client address selection: CIDR matching (IPv4, IPv6, IPv4-mapped) and
 * the right-to-left X-Forwarded-For walk through trusted proxies. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/clientaddr.h"
#include "turnout/common.h"

/* "10.0.0.0/8" or "::1/128" into a tn_conf_cidr. */
static struct tn_conf_cidr net(const char *s)
{
    struct tn_conf_cidr c;
    char host[INET6_ADDRSTRLEN];
    const char *slash = strchr(s, '/');

    memset(&c, 0, sizeof(c));
    ck_assert_ptr_nonnull(slash);
    ck_assert_uint_lt((size_t)(slash - s), sizeof(host));
    memcpy(host, s, (size_t)(slash - s));
    host[slash - s] = '\0';
    c.bits = (unsigned)atoi(slash + 1);
    if (inet_pton(AF_INET, host, c.addr) == 1)
        c.family = AF_INET;
    else if (inet_pton(AF_INET6, host, c.addr) == 1)
        c.family = AF_INET6;
    else
        ck_abort_msg("bad network %s", s);
    return c;
}

/* An address with a port into a sockaddr_storage. */
static struct sockaddr_storage addr(const char *s)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, s, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(40000);
    } else if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(40000);
    } else {
        ck_abort_msg("bad address %s", s);
    }
    return ss;
}

static int match(const char *n, const char *a)
{
    struct tn_conf_cidr c = net(n);
    struct sockaddr_storage ss = addr(a);

    return tn_cidr_match(&c, (struct sockaddr *)&ss);
}

/* The address in ss as text ("1.2.3.4", "2001:db8::1"). */
static const char *text(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

    ck_assert(ss->ss_family == AF_INET || ss->ss_family == AF_INET6);
    ck_assert_ptr_nonnull(inet_ntop(ss->ss_family, a, buf, (socklen_t)n));
    return buf;
}

static struct tn_field field(const char *name, const char *value)
{
    struct tn_field f;

    memset(&f, 0, sizeof(f));
    f.name = name;
    f.name_len = (uint32_t)strlen(name);
    f.value = value;
    f.value_len = (uint32_t)strlen(value);
    return f;
}

/* The trusted proxies used by the X-Forwarded-For tests. */
static struct tn_conf_cidr trusted[4];
static size_t ntrusted;

static void setup_trusted(void)
{
    trusted[0] = net("10.0.0.0/8");
    trusted[1] = net("192.168.1.0/24");
    trusted[2] = net("fd00::/8");
    trusted[3] = net("203.0.113.7/32");
    ntrusted = 4;
}

/* Runs tn_client_addr for peer and up to 3 X-Forwarded-For values (NULL
 * ends), with an unrelated field around them; returns the address as text
 * and sets *from_xff. */
static const char *pick(const char *peer, int *from_xff, const char *xff1, const char *xff2,
                        const char *xff3)
{
    static char buf[INET6_ADDRSTRLEN];
    struct sockaddr_storage p = addr(peer), out;
    struct tn_field f[5];
    unsigned n = 0;

    f[n++] = field("Host", "example.com");
    if (xff1)
        f[n++] = field("X-Forwarded-For", xff1);
    if (xff2)
        f[n++] = field("x-forwarded-for", xff2);
    if (xff3)
        f[n++] = field("X-FORWARDED-FOR", xff3);
    f[n++] = field("X-Real-IP", "6.6.6.6");
    setup_trusted();
    *from_xff = tn_client_addr((struct sockaddr *)&p, trusted, ntrusted, f, n, &out);
    return text(&out, buf, sizeof(buf));
}

#define PICK(peer, want, want_xff, ...)                                                            \
    do {                                                                                           \
        int x_;                                                                                    \
        ck_assert_str_eq(pick(peer, &x_, __VA_ARGS__), want);                                      \
        ck_assert_int_eq(x_, want_xff);                                                            \
    } while (0)

START_TEST(cidr_v4)
{
    ck_assert(match("0.0.0.0/0", "1.2.3.4"));
    ck_assert(match("0.0.0.0/0", "255.255.255.255"));
    ck_assert(match("10.0.0.0/8", "10.255.1.2"));
    ck_assert(!match("10.0.0.0/8", "11.0.0.1"));
    ck_assert(!match("10.0.0.0/8", "9.255.255.255"));
    ck_assert(match("172.16.0.0/12", "172.31.255.255"));
    ck_assert(!match("172.16.0.0/12", "172.32.0.0"));
    ck_assert(match("203.0.113.7/32", "203.0.113.7"));
    ck_assert(!match("203.0.113.7/32", "203.0.113.6"));
    ck_assert(!match("203.0.113.7/32", "203.0.113.8"));
}
END_TEST

START_TEST(cidr_v6)
{
    ck_assert(match("::/0", "2001:db8::1"));
    ck_assert(match("::/0", "::1"));
    ck_assert(match("2001:db8:1:2::/64", "2001:db8:1:2:ffff:ffff:ffff:ffff"));
    ck_assert(!match("2001:db8:1:2::/64", "2001:db8:1:3::"));
    ck_assert(match("2001:db8::/33", "2001:db8:7fff::1"));
    ck_assert(!match("2001:db8::/33", "2001:db8:8000::1"));
    ck_assert(match("2001:db8::5/128", "2001:db8::5"));
    ck_assert(!match("2001:db8::5/128", "2001:db8::4"));
}
END_TEST

START_TEST(cidr_v4_mapped)
{
    /* an IPv4-mapped IPv6 address is IPv4 */
    ck_assert(match("10.0.0.0/8", "::ffff:10.1.2.3"));
    ck_assert(!match("10.0.0.0/8", "::ffff:11.1.2.3"));
    ck_assert(match("203.0.113.7/32", "::ffff:203.0.113.7"));
    ck_assert(match("0.0.0.0/0", "::ffff:1.2.3.4"));
    /* and a ::ffff: network is the IPv4 network */
    ck_assert(match("::ffff:10.0.0.0/104", "10.9.9.9"));
    ck_assert(!match("::ffff:10.0.0.0/104", "11.9.9.9"));
    ck_assert(match("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
    /* an IPv4-compatible (not mapped) address stays IPv6 */
    ck_assert(!match("10.0.0.0/8", "::10.1.2.3"));
}
END_TEST

START_TEST(cidr_family_mismatch)
{
    ck_assert(!match("0.0.0.0/0", "2001:db8::1"));
    ck_assert(!match("::/0", "1.2.3.4"));
    ck_assert(!match("::/0", "::ffff:1.2.3.4")); /* mapped counts as IPv4 */
    ck_assert(!match("10.0.0.0/8", "a00::1"));   /* same leading bytes, other family */
}
END_TEST

START_TEST(cidr_any)
{
    struct tn_conf_cidr nets[3];
    struct sockaddr_storage a = addr("192.168.1.20"), b = addr("fd00::9"), c = addr("8.8.8.8");
    struct sockaddr_storage u;

    nets[0] = net("10.0.0.0/8");
    nets[1] = net("192.168.1.0/24");
    nets[2] = net("fd00::/8");
    ck_assert(tn_cidr_any(nets, 3, (struct sockaddr *)&a));
    ck_assert(tn_cidr_any(nets, 3, (struct sockaddr *)&b));
    ck_assert(!tn_cidr_any(nets, 3, (struct sockaddr *)&c));
    ck_assert(!tn_cidr_any(nets, 0, (struct sockaddr *)&a));
    ck_assert(!tn_cidr_any(NULL, 0, (struct sockaddr *)&a));
    memset(&u, 0, sizeof(u));
    u.ss_family = AF_UNIX;
    ck_assert(!tn_cidr_any(nets, 3, (struct sockaddr *)&u));
}
END_TEST

START_TEST(xff_untrusted_peer)
{
    PICK("8.8.8.8", "8.8.8.8", 0, "1.2.3.4", NULL, NULL);
    PICK("8.8.8.8", "8.8.8.8", 0, "10.0.0.1, 1.2.3.4", NULL, NULL);
    PICK("2001:db8::1", "2001:db8::1", 0, "1.2.3.4", NULL, NULL);
}
END_TEST

START_TEST(xff_absent)
{
    PICK("10.0.0.1", "10.0.0.1", 0, NULL, NULL, NULL);
}
END_TEST

START_TEST(xff_single)
{
    PICK("10.0.0.1", "1.2.3.4", 1, "1.2.3.4", NULL, NULL);
    PICK("fd00::1", "1.2.3.4", 1, "1.2.3.4", NULL, NULL);
    PICK("::ffff:10.0.0.1", "1.2.3.4", 1, "1.2.3.4", NULL, NULL);
}
END_TEST

START_TEST(xff_spoofed_left)
{
    /* the client sent "spoofed"; our proxy appended the real address */
    PICK("10.0.0.1", "5.6.7.8", 1, "1.1.1.1, 5.6.7.8", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "10.0.0.99, 5.6.7.8", NULL, NULL);
}
END_TEST

START_TEST(xff_trusted_chain)
{
    PICK("10.0.0.1", "5.6.7.8", 1, "1.1.1.1, 5.6.7.8, 192.168.1.5, 10.2.2.2", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8, 203.0.113.7, fd00::5", NULL, NULL);
}
END_TEST

START_TEST(xff_two_fields)
{
    /* fields concatenate in order: the right-most is the last field's last */
    PICK("10.0.0.1", "9.9.9.9", 1, "1.1.1.1, 5.6.7.8", "9.9.9.9", NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "1.1.1.1, 5.6.7.8", "10.3.3.3", NULL);
    PICK("10.0.0.1", "1.1.1.1", 1, "1.1.1.1", "10.3.3.3, 192.168.1.1", "fd00::7");
}
END_TEST

START_TEST(xff_ipv6)
{
    PICK("10.0.0.1", "2001:db8::77", 1, "2001:db8::77", NULL, NULL);
    PICK("10.0.0.1", "2001:db8::77", 1, "1.1.1.1, 2001:db8::77, fd00::1", NULL, NULL);
    PICK("fd00::1", "2001:db8::77", 1, "2001:db8::77", NULL, NULL);
    /* a mapped address comes back as IPv4 */
    PICK("10.0.0.1", "5.6.7.8", 1, "::ffff:5.6.7.8", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8, ::ffff:10.1.1.1", NULL, NULL);
}
END_TEST

START_TEST(xff_ports_and_brackets)
{
    PICK("10.0.0.1", "2001:db8::77", 1, "[2001:db8::77]:4711", NULL, NULL);
    PICK("10.0.0.1", "2001:db8::77", 1, "[2001:db8::77]", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8:65535", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8, [fd00::3]:80, 10.0.0.2:1", NULL, NULL);
    /* malformed ports and brackets are garbage */
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7.8:65536", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7.8:", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "[2001:db8::77", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "[2001:db8::77]x", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "[5.6.7.8]", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "fe80::1%eth0", NULL, NULL);
}
END_TEST

START_TEST(xff_garbage_right_most)
{
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7.8, garbage", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7.8, unknown", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7.8", "_hidden", NULL);
    /* behind trusted hops: the last trusted hop seen */
    PICK("10.0.0.1", "10.4.4.4", 1, "5.6.7.8, unknown, 10.4.4.4, 192.168.1.9", NULL, NULL);
    PICK("10.0.0.1", "10.4.4.4", 1, "5.6.7.8, 999.1.1.1, 10.4.4.4", NULL, NULL);
}
END_TEST

START_TEST(xff_garbage_after_client)
{
    /* the walk stops at the right-most untrusted address first */
    PICK("10.0.0.1", "5.6.7.8", 1, "garbage, 5.6.7.8", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "unknown, 1.1.1.1 2.2.2.2, 5.6.7.8, 10.0.0.3", NULL, NULL);
}
END_TEST

START_TEST(xff_all_trusted)
{
    PICK("10.0.0.1", "10.9.9.9", 1, "10.9.9.9, 192.168.1.4, fd00::2", NULL, NULL);
    PICK("10.0.0.1", "192.168.1.4", 1, "192.168.1.4", NULL, NULL);
    PICK("10.0.0.1", "fd00::2", 1, "fd00::2", "10.1.1.1", NULL);
}
END_TEST

START_TEST(xff_whitespace)
{
    PICK("10.0.0.1", "5.6.7.8", 1, "1.1.1.1,5.6.7.8", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "1.1.1.1 ,\t 5.6.7.8 \t", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "  5.6.7.8  ,   10.0.0.5   ", NULL, NULL);
    /* whitespace inside an entry is garbage */
    PICK("10.0.0.1", "10.0.0.1", 0, "5.6.7 .8", NULL, NULL);
}
END_TEST

START_TEST(xff_empty)
{
    PICK("10.0.0.1", "10.0.0.1", 0, "", NULL, NULL);
    PICK("10.0.0.1", "10.0.0.1", 0, " , ,,", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8,,", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "5.6.7.8", "", NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, ",5.6.7.8, ,10.0.0.7,", NULL, NULL);
}
END_TEST

START_TEST(xff_unknown)
{
    PICK("10.0.0.1", "10.0.0.1", 0, "unknown", NULL, NULL);
    PICK("10.0.0.1", "5.6.7.8", 1, "unknown, 5.6.7.8", NULL, NULL);
    PICK("10.0.0.1", "10.5.5.5", 1, "5.6.7.8, unknown, 10.5.5.5", NULL, NULL);
}
END_TEST

START_TEST(xff_too_many)
{
    char v[64 * 12 + 32];
    size_t n = 0;
    int i, x;

    /* 64 trusted hops after the client: the client is the 65th, past the limit */
    n += (size_t)snprintf(v + n, sizeof(v) - n, "5.6.7.8");
    for (i = 0; i < 64; i++)
        n += (size_t)snprintf(v + n, sizeof(v) - n, ", 10.0.1.%d", i + 1);
    ck_assert_str_eq(pick("10.0.0.1", &x, v, NULL, NULL), "10.0.1.1"); /* last trusted seen */
    ck_assert_int_eq(x, 1);
    /* 63 of them: the client is the 64th and still found */
    n = 0;
    n += (size_t)snprintf(v + n, sizeof(v) - n, "5.6.7.8");
    for (i = 0; i < 63; i++)
        n += (size_t)snprintf(v + n, sizeof(v) - n, ", 10.0.1.%d", i + 1);
    ck_assert_str_eq(pick("10.0.0.1", &x, v, NULL, NULL), "5.6.7.8");
    ck_assert_int_eq(x, 1);
}
END_TEST

START_TEST(xff_peer_port_kept)
{
    struct sockaddr_storage p = addr("::ffff:8.8.4.4"), out;

    setup_trusted();
    ck_assert_int_eq(tn_client_addr((struct sockaddr *)&p, trusted, ntrusted, NULL, 0, &out), 0);
    ck_assert_int_eq(out.ss_family, AF_INET);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&out)->sin_port), 40000);
    p = addr("2001:db8::9");
    ck_assert_int_eq(tn_client_addr((struct sockaddr *)&p, trusted, ntrusted, NULL, 0, &out), 0);
    ck_assert_int_eq(out.ss_family, AF_INET6);
    ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&out)->sin6_port), 40000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("clientaddr");
    TCase *tc = tcase_create("clientaddr");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, cidr_v4);
    tcase_add_test(tc, cidr_v6);
    tcase_add_test(tc, cidr_v4_mapped);
    tcase_add_test(tc, cidr_family_mismatch);
    tcase_add_test(tc, cidr_any);
    tcase_add_test(tc, xff_untrusted_peer);
    tcase_add_test(tc, xff_absent);
    tcase_add_test(tc, xff_single);
    tcase_add_test(tc, xff_spoofed_left);
    tcase_add_test(tc, xff_trusted_chain);
    tcase_add_test(tc, xff_two_fields);
    tcase_add_test(tc, xff_ipv6);
    tcase_add_test(tc, xff_ports_and_brackets);
    tcase_add_test(tc, xff_garbage_right_most);
    tcase_add_test(tc, xff_garbage_after_client);
    tcase_add_test(tc, xff_all_trusted);
    tcase_add_test(tc, xff_whitespace);
    tcase_add_test(tc, xff_empty);
    tcase_add_test(tc, xff_unknown);
    tcase_add_test(tc, xff_too_many);
    tcase_add_test(tc, xff_peer_port_kept);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
