/* Unit tests for the configuration loader (src/conf): the example files,
 * defaults, every scalar parser, and the exact text of each error kind. */
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"

/* A minimal valid body: 4 lines, appended after a test's own lines. */
#define BASE                                                                                       \
    "listen: [{ address: \"127.0.0.1:8080\" }]\n"                                                  \
    "backends:\n"                                                                                  \
    "  a: { servers: [{ address: \"127.0.0.1:9001\" }] }\n"                                        \
    "  b: { servers: [{ address: \"127.0.0.1:9002\" }] }\n"
#define ROUTE "routes: [{ name: r, backend: a }]\n"

static struct tn_conf *load(const char *text, char **err)
{
    return tn_conf_load_string("t.yaml", text, strlen(text), err);
}

/* Loads text that must fail and returns its error text (caller frees). */
static char *errors_of(const char *text)
{
    char *err = NULL;
    struct tn_conf *c = load(text, &err);

    ck_assert_msg(c == NULL, "config unexpectedly loaded:\n%s", text);
    ck_assert_ptr_nonnull(err);
    return err;
}

/* Asserts the load fails with exactly the text want (all lines). */
static void expect_errors(const char *text, const char *want)
{
    char *err = errors_of(text);

    ck_assert_str_eq(err, want);
    free(err);
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;

    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- the shipped files ---- */

START_TEST(example_loads)
{
    char *err = NULL;
    struct tn_conf *c = tn_conf_load(TN_SRCDIR "/conf/turnout.yaml", &err);

    ck_assert_msg(c != NULL, "%s", err ? err : "");
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_uint_eq(c->nlistens, 3);
    ck_assert_str_eq(c->listens[0].addr.text, "0.0.0.0:8080");
    ck_assert_int_eq(c->listens[1].addr.ss.ss_family, AF_INET6);
    ck_assert_ptr_nonnull(c->listens[2].tls); /* the demo's pair, beside the file */
    ck_assert_str_eq(c->access_log, "stdout");
    ck_assert_uint_eq(c->nbackends, 2);
    ck_assert_str_eq(c->backends[0].name, "legacy");
    ck_assert_str_eq(c->backends[0].servers[0].addr.text, "127.0.0.1:9001");
    ck_assert_str_eq(c->backends[1].name, "new");
    ck_assert_str_eq(c->backends[1].servers[0].addr.text, "127.0.0.1:9002");
    ck_assert_uint_eq(c->nsticky, 3);
    ck_assert_int_eq(c->sticky[0].kind, TN_STICKY_COOKIE);
    ck_assert_str_eq(c->sticky[0].name, "uid");
    ck_assert_int_eq(c->sticky[1].kind, TN_STICKY_HEADER);
    ck_assert_str_eq(c->sticky[1].name, "X-User-Id");
    ck_assert_int_eq(c->sticky[2].kind, TN_STICKY_CLIENT_IP);
    ck_assert_int_eq(c->assign_cookie.enabled, 0);
    /* the staged migration: staff, beta, a country, smart TVs, everyone */
    ck_assert_uint_eq(c->nroutes, 5);
    ck_assert_str_eq(c->routes[0].name, "staff");
    ck_assert_str_eq(c->routes[0].match.segment, "staff");
    ck_assert_int_eq(c->routes[0].backend_idx, 1);
    ck_assert_str_eq(c->routes[1].name, "beta");
    ck_assert_str_eq(c->routes[1].match.segment, "testers");
    ck_assert_str_eq(c->routes[2].name, "sweden");
    ck_assert_str_eq(c->routes[2].match.country.v[0], "SE");
    ck_assert_str_eq(c->routes[3].name, "smart-tv");
    ck_assert_str_eq(c->routes[3].match.device, "smart-tv");
    ck_assert_str_eq(c->routes[4].name, "default");
    ck_assert_int_eq(c->routes[4].has_shift, 1);
    ck_assert_int_eq(c->routes[4].backend_idx, -1);
    ck_assert_int_eq(c->routes[4].from_idx, 0);
    ck_assert_int_eq(c->routes[4].to_idx, 1);
    ck_assert_uint_eq(c->routes[4].percent_x100, 1000);
    ck_assert_uint_eq(c->nsegments, 2);
    ck_assert_int_eq(c->segments[0].kind, TN_SEGMENT_REDIS_SET);
    ck_assert_uint_eq(c->segments[1].equals.n, 2);
    ck_assert_uint_gt(c->ndevices, 5);
    tn_conf_free(c);
}
END_TEST

START_TEST(device_catalog_loads)
{
    static const char text[] = BASE ROUTE "devices: " TN_SRCDIR "/conf/devices.yaml\n";
    char *err = NULL;
    struct tn_conf *c = load(text, &err);

    ck_assert_msg(c != NULL, "%s", err ? err : "");
    ck_assert_uint_ge(c->ndevices, 6);
    ck_assert_str_eq(c->devices[0].name, "bot");
    ck_assert_str_eq(c->devices[1].name, "smart-tv");
    ck_assert_str_eq(c->devices_file, TN_SRCDIR "/conf/devices.yaml");
    tn_conf_free(c);
}
END_TEST

START_TEST(full_schema_loads)
{
    char *err = NULL;
    struct tn_conf *c = tn_conf_load(TN_SRCDIR "/tests/unit/data/full.yaml", &err);
    const struct tn_conf_route *tv;

    ck_assert_msg(c != NULL, "%s", err ? err : "");
    ck_assert_uint_eq(c->workers, 8);
    ck_assert_uint_eq(c->listens[1].ncerts, 1);
    ck_assert_str_eq(c->listens[1].certs[0].key, "edge.key");
    ck_assert_ptr_nonnull(c->listens[1].tls); /* loaded beside the file */
    ck_assert_ptr_null(c->listens[0].tls);
    ck_assert_str_eq(c->admin.socket, "/run/turnout/admin.sock");
    ck_assert_uint_eq(c->admin.socket_mode, 0640);
    ck_assert_str_eq(c->admin.http, "127.0.0.1:9901");
    ck_assert_int_eq(c->admin.http_addr.ss.ss_family, AF_INET);
    ck_assert_str_eq(c->state_file, "/var/lib/turnout/state.json");
    ck_assert_str_eq(c->redis.address, "127.0.0.1:6379");
    ck_assert_str_eq(c->redis.password_env, "TURNOUT_REDIS_PASSWORD");
    ck_assert_str_eq(c->redis.namespace_, "ott");
    ck_assert_str_eq(c->geoip_database, "/usr/share/GeoIP/GeoLite2-Country.mmdb");
    ck_assert_uint_eq(c->ntrusted_proxies, 3);
    ck_assert_uint_eq(c->trusted_proxies[0].bits, 8);
    ck_assert_int_eq(c->trusted_proxies[1].family, AF_INET6);
    ck_assert_uint_eq(c->trusted_proxies[2].bits, 32);
    ck_assert_uint_eq(c->timeouts.client_header_ms, 5000);
    ck_assert_uint_eq(c->timeouts.client_body_ms, 20000);
    ck_assert_uint_eq(c->timeouts.connect_ms, 500);
    ck_assert_uint_eq(c->timeouts.upstream_idle_ms, 90000);
    ck_assert_uint_eq(c->timeouts.drain_ms, 3600000);
    ck_assert_uint_eq(c->limits.header_size, 32768);
    ck_assert_uint_eq(c->limits.headers, 50);
    ck_assert_uint_eq(c->limits.body, 10u << 20);
    ck_assert_uint_eq(c->backends[0].nservers, 2);
    ck_assert_uint_eq(c->backends[0].servers[0].weight, 2);
    ck_assert_str_eq(c->backends[0].servers[0].name, "10.1.0.10:8080");
    ck_assert_str_eq(c->backends[0].servers[1].name, "l2");
    ck_assert_uint_eq(c->backends[0].servers[1].weight, 1);
    ck_assert_int_eq(c->backends[0].health.enabled, 1);
    ck_assert_uint_eq(c->backends[0].health.interval_ms, 5000);
    ck_assert_uint_eq(c->backends[0].health.fall, 4);
    ck_assert_int_eq(c->backends[1].health.enabled, 0);
    ck_assert_uint_eq(c->backends[1].servers[0].weight, 0);
    ck_assert_int_eq(c->backends[1].servers[0].addr.ss.ss_family, AF_INET6);
    ck_assert_uint_eq(c->ndevices, 3);
    ck_assert_str_eq(c->devices[2].name, "desktop");
    ck_assert_str_eq(c->devices_file, TN_SRCDIR "/tests/unit/data/devices-ok.yaml");
    ck_assert_uint_eq(c->nsegments, 3);
    ck_assert_int_eq(c->segments[0].kind, TN_SEGMENT_HEADER);
    ck_assert_uint_eq(c->segments[0].equals.n, 1);
    ck_assert_str_eq(c->segments[0].equals.v[0], "beta");
    ck_assert_int_eq(c->segments[1].kind, TN_SEGMENT_REDIS_SET);
    ck_assert_str_eq(c->segments[1].source, "staff");
    ck_assert_int_eq(c->segments[2].kind, TN_SEGMENT_COOKIE);
    ck_assert_str_eq(c->segments[2].regex, "^eu-");
    ck_assert_int_eq(c->sticky[2].kind, TN_STICKY_QUERY);
    ck_assert_int_eq(c->assign_cookie.enabled, 1);
    ck_assert_str_eq(c->assign_cookie.name, "tuid");
    ck_assert_uint_eq(c->assign_cookie.max_age_s, 30u * 86400u);
    tv = &c->routes[1];
    ck_assert_str_eq(tv->match.device, "smart-tv");
    ck_assert_uint_eq(tv->match.country.n, 3);
    ck_assert_str_eq(tv->match.country.v[1], "FR");
    ck_assert_str_eq(tv->match.continent.v[0], "EU");
    ck_assert_str_eq(tv->match.host, "^tv\\.");
    ck_assert_uint_eq(tv->match.methods.n, 2);
    ck_assert_uint_eq(tv->percent_x100, 2500);
    ck_assert_uint_eq(c->routes[2].percent_x100, 5);
    ck_assert_int_eq(c->rollback.on_connect_error, 0);
    ck_assert_int_eq(c->rollback.on_timeout, 1);
    ck_assert_uint_eq(c->rollback.non_status, 2);
    ck_assert_uint_eq(c->rollback.on_status[0], 500);
    ck_assert_uint_eq(c->rollback.methods.n, 2);
    ck_assert_str_eq(c->rollback.methods.v[1], "POST");
    ck_assert_uint_eq(c->rollback.max_body, 128 * 1024);
    ck_assert_int_eq(c->rollback.idempotency_key, 1);
    ck_assert_int_eq(c->rollback.autorb.enabled, 1);
    ck_assert_uint_eq(c->rollback.autorb.windows, 3);
    ck_assert_uint_eq(c->rollback.autorb.ramp_down_ms, 60000);
    ck_assert_str_eq(c->overrides.header, "X-Turnout-Backend");
    ck_assert_int_eq(c->debug_headers, 1);
    ck_assert_int_eq(tn_conf_backend_index(c, "new"), 1);
    ck_assert_int_eq(tn_conf_backend_index(c, "nope"), -1);
    tn_conf_free(c);
}
END_TEST

START_TEST(defaults)
{
    char *err = NULL;
    struct tn_conf *c =
        load(BASE "routes: [{ name: all, shift: { from: a, to: b, percent: 5 } }]\n", &err);

    ck_assert_msg(c != NULL, "%s", err ? err : "");
    ck_assert_str_eq(c->file, "t.yaml");
    ck_assert_uint_eq(c->workers, 0);
    ck_assert_str_eq(c->access_log, "stdout");
    ck_assert_ptr_null(c->state_file);
    ck_assert_ptr_null(c->admin.socket);
    ck_assert_ptr_null(c->admin.http);
    ck_assert_uint_eq(c->admin.socket_mode, 0600);
    ck_assert_ptr_null(c->redis.address);
    ck_assert_str_eq(c->redis.namespace_, "default");
    ck_assert_ptr_null(c->geoip_database);
    ck_assert_uint_eq(c->timeouts.client_header_ms, 10000);
    ck_assert_uint_eq(c->timeouts.client_body_ms, 30000);
    ck_assert_uint_eq(c->timeouts.client_idle_ms, 60000);
    ck_assert_uint_eq(c->timeouts.connect_ms, 2000);
    ck_assert_uint_eq(c->timeouts.response_ms, 30000);
    ck_assert_uint_eq(c->timeouts.upstream_idle_ms, 60000);
    ck_assert_uint_eq(c->timeouts.drain_ms, 30000);
    ck_assert_uint_eq(c->limits.header_size, 16384);
    ck_assert_uint_eq(c->limits.headers, 100);
    ck_assert_uint_eq(c->limits.uri, 8192);
    ck_assert_uint_eq(c->limits.connections, 10000);
    ck_assert_uint_eq(c->limits.body, 0);
    ck_assert_uint_eq(c->backends[0].servers[0].weight, 1);
    ck_assert_str_eq(c->backends[0].servers[0].name, "127.0.0.1:9001");
    ck_assert_int_eq(c->backends[0].health.enabled, 0);
    ck_assert_uint_eq(c->backends[0].health.interval_ms, 2000);
    ck_assert_uint_eq(c->backends[0].health.timeout_ms, 1000);
    ck_assert_uint_eq(c->backends[0].health.rise, 2);
    ck_assert_uint_eq(c->backends[0].health.fall, 3);
    ck_assert_uint_eq(c->nsticky, 1);
    ck_assert_int_eq(c->sticky[0].kind, TN_STICKY_CLIENT_IP);
    ck_assert_ptr_null(c->sticky[0].name);
    ck_assert_int_eq(c->assign_cookie.enabled, 0);
    ck_assert_str_eq(c->assign_cookie.name, "turnout_uid");
    ck_assert_uint_eq(c->assign_cookie.max_age_s, 90u * 86400u);
    ck_assert_int_eq(c->rollback.on_connect_error, 1);
    ck_assert_int_eq(c->rollback.on_timeout, 1);
    ck_assert_uint_eq(c->rollback.non_status, 3);
    ck_assert_uint_eq(c->rollback.on_status[2], 504);
    ck_assert_uint_eq(c->rollback.methods.n, 5);
    ck_assert_str_eq(c->rollback.methods.v[4], "DELETE");
    ck_assert_uint_eq(c->rollback.max_body, 65536);
    ck_assert_int_eq(c->rollback.idempotency_key, 0);
    ck_assert_uint_eq(c->rollback.budget.ratio_x100, 2000);
    ck_assert_uint_eq(c->rollback.budget.window_ms, 10000);
    ck_assert_int_eq(c->rollback.autorb.enabled, 0);
    ck_assert_ptr_null(c->overrides.header);
    ck_assert_int_eq(c->debug_headers, 0);
    ck_assert_uint_eq(c->ndevices, 0);
    ck_assert_uint_eq(c->nsegments, 0);
    ck_assert_uint_eq(c->routes[0].match.methods.n, 0);
    tn_conf_free(c);
}
END_TEST

START_TEST(assign_cookie_forms)
{
    struct tn_conf *c = load(BASE ROUTE "assign_cookie: {}\n", NULL);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->assign_cookie.enabled, 1);
    ck_assert_str_eq(c->assign_cookie.name, "turnout_uid");
    tn_conf_free(c);
    c = load(BASE ROUTE "assign_cookie: on\n", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->assign_cookie.enabled, 1);
    tn_conf_free(c);
    c = load(BASE ROUTE "assign_cookie: off\nrollback: { auto: true }\n", NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->assign_cookie.enabled, 0);
    ck_assert_int_eq(c->rollback.autorb.enabled, 1);
    ck_assert_uint_eq(c->rollback.autorb.min_requests, 100);
    tn_conf_free(c);
}
END_TEST

START_TEST(free_null_and_index)
{
    tn_conf_free(NULL);
    ck_assert_int_eq(tn_conf_backend_index(NULL, "a"), -1);
}
END_TEST

/* ---- scalar parsers ---- */

START_TEST(parse_duration)
{
    static const struct {
        const char *s;
        uint64_t ms;
    } ok[] = {{"500ms", 500},         {"2s", 2000},  {"1m", 60000}, {"1h", 3600000},
              {"90d", 7776000000ull}, {"10", 10000}, {"0", 0},      {"0ms", 0}};
    static const char *const bad[] = {
        "", "s", "2 seconds", "1.5s", "-1s", "2S", "1ms2", "1y", "99999999999999999999", " 1s"};
    uint64_t ms;
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(ok); i++) {
        ck_assert_int_eq(tn_conf_parse_duration(ok[i].s, &ms), TN_OK);
        ck_assert_uint_eq(ms, ok[i].ms);
    }
    for (i = 0; i < TN_ARRAY_LEN(bad); i++)
        ck_assert_msg(tn_conf_parse_duration(bad[i], &ms) == TN_ERR, "%s", bad[i]);
}
END_TEST

START_TEST(parse_size)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {{"512", 512},    {"64k", 65536},     {"64K", 65536}, {"1m", 1048576},
              {"1M", 1048576}, {"1g", 1073741824}, {"0", 0},       {"2G", 2147483648ull}};
    static const char *const bad[] = {"", "k", "1kb", "1t", "-1", "1.5k", "99999999999999999999g"};
    uint64_t v;
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(ok); i++) {
        ck_assert_int_eq(tn_conf_parse_size(ok[i].s, &v), TN_OK);
        ck_assert_uint_eq(v, ok[i].v);
    }
    for (i = 0; i < TN_ARRAY_LEN(bad); i++)
        ck_assert_msg(tn_conf_parse_size(bad[i], &v) == TN_ERR, "%s", bad[i]);
}
END_TEST

START_TEST(parse_percent)
{
    static const struct {
        const char *s;
        uint32_t v;
    } ok[] = {{"25", 2500},   {"0.5", 50}, {"12.34", 1234},  {"25%", 2500},   {"0", 0},
              {"100", 10000}, {"0.01", 1}, {"99.99%", 9999}, {"100.0", 10000}};
    static const char *const bad[] = {"",   "%",  "101",  "100.01", "0.001",  "-1",
                                      ".5", "5.", "25 %", "1e2",    "1000000"};
    uint32_t v;
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(ok); i++) {
        ck_assert_int_eq(tn_conf_parse_percent(ok[i].s, &v), TN_OK);
        ck_assert_uint_eq(v, ok[i].v);
    }
    for (i = 0; i < TN_ARRAY_LEN(bad); i++)
        ck_assert_msg(tn_conf_parse_percent(bad[i], &v) == TN_ERR, "%s", bad[i]);
}
END_TEST

START_TEST(parse_addr)
{
    static const char *const bad[] = {"localhost:80", "1.2.3.4",    "1.2.3.4:0",    "1.2.3.4:65536",
                                      "::1:80",       "[::1]",      "[::1]80",      ":80",
                                      "1.2.3.4:",     "1.2.3.4:08", "[1.2.3.4]:80", "1.2.3:80"};
    struct tn_conf_addr a = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    size_t i;

    ck_assert_int_eq(tn_conf_parse_addr("1.2.3.4:80", &a), TN_OK);
    ck_assert_int_eq(in->sin_family, AF_INET);
    ck_assert_uint_eq(ntohs(in->sin_port), 80);
    ck_assert_uint_eq(ntohl(in->sin_addr.s_addr), 0x01020304);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
    ck_assert_ptr_null(a.text); /* left to the caller */
    ck_assert_int_eq(tn_conf_parse_addr("[::1]:65535", &a), TN_OK);
    ck_assert_int_eq(in6->sin6_family, AF_INET6);
    ck_assert_uint_eq(ntohs(in6->sin6_port), 65535);
    ck_assert_uint_eq(in6->sin6_addr.s6_addr[15], 1);
    ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
    ck_assert_int_eq(tn_conf_parse_addr("[::]:8080", &a), TN_OK);
    for (i = 0; i < TN_ARRAY_LEN(bad); i++)
        ck_assert_msg(tn_conf_parse_addr(bad[i], &a) == TN_ERR, "%s", bad[i]);
}
END_TEST

START_TEST(parse_small_scalars)
{
    struct tn_conf_cidr cidr;
    unsigned mode;
    int b;
    char tok[] = "X-User-Id", badtok[] = "X User", name[] = "tv-eu_1.x", badname[] = "a/b";

    ck_assert_int_eq(tn_conf_parse_bool("yes", &b), TN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(tn_conf_parse_bool("Off", &b), TN_OK);
    ck_assert_int_eq(b, 0);
    ck_assert_int_eq(tn_conf_parse_bool("TRUE", &b), TN_OK);
    ck_assert_int_eq(b, 1);
    ck_assert_int_eq(tn_conf_parse_bool("1", &b), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_bool("y", &b), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_mode("0600", &mode), TN_OK);
    ck_assert_uint_eq(mode, 0600);
    ck_assert_int_eq(tn_conf_parse_mode("660", &mode), TN_OK);
    ck_assert_uint_eq(mode, 0660);
    ck_assert_int_eq(tn_conf_parse_mode("0800", &mode), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_mode("01777", &mode), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_mode("", &mode), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_cidr("10.0.0.0/8", &cidr), TN_OK);
    ck_assert_int_eq(cidr.family, AF_INET);
    ck_assert_uint_eq(cidr.bits, 8);
    ck_assert_uint_eq(cidr.addr[0], 10);
    ck_assert_int_eq(tn_conf_parse_cidr("::1/128", &cidr), TN_OK);
    ck_assert_int_eq(cidr.family, AF_INET6);
    ck_assert_int_eq(tn_conf_parse_cidr("2001:db8::", &cidr), TN_OK);
    ck_assert_uint_eq(cidr.bits, 128);
    ck_assert_int_eq(tn_conf_parse_cidr("10.0.0.1/8", &cidr), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_cidr("10.0.0.0/33", &cidr), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_cidr("10.0.0.0/", &cidr), TN_ERR);
    ck_assert_int_eq(tn_conf_parse_cidr("0.0.0.0/0", &cidr), TN_OK);
    ck_assert_int_eq(tn_conf_parse_cidr("host/8", &cidr), TN_ERR);
    ck_assert_ptr_null(tn_conf_check_token(tok));
    ck_assert_ptr_nonnull(tn_conf_check_token(badtok));
    ck_assert_ptr_null(tn_conf_check_name(name));
    ck_assert_ptr_nonnull(tn_conf_check_name(badname));
}
END_TEST

/* ---- error texts ---- */

START_TEST(err_duration)
{
    expect_errors("timeouts:\n  connect: 2 seconds\n" BASE ROUTE,
                  "t.yaml:2:12: expected a duration like 500ms, 2s or 1m, got \"2 seconds\"\n");
    expect_errors("timeouts: { drain: 50d }\n" BASE ROUTE,
                  "t.yaml:1:20: expected a duration of at most 4294967295ms (about 49 days), got "
                  "\"50d\"\n");
}
END_TEST

START_TEST(err_scalars)
{
    expect_errors("limits: { uri: 8 kb }\n" BASE ROUTE,
                  "t.yaml:1:16: expected a size like 512, 64k, 1m or 1g, got \"8 kb\"\n");
    expect_errors("workers: 300\n" BASE ROUTE,
                  "t.yaml:1:10: expected \"auto\" or an integer from 1 to 256, got \"300\"\n");
    expect_errors("debug_headers: maybe\n" BASE ROUTE,
                  "t.yaml:1:16: expected a boolean (true/false, yes/no, on/off), got \"maybe\"\n");
    expect_errors("admin: { socket_mode: \"0999\" }\n" BASE ROUTE,
                  "t.yaml:1:23: expected an octal file mode like \"0600\", got \"0999\"\n");
    expect_errors("listen: [{ address: \"localhost:8080\" }]\n"
                  "backends: { a: { servers: [\"127.0.0.1:1\"] } }\n" ROUTE,
                  "t.yaml:1:21: expected a numeric address like 127.0.0.1:8080 or [::1]:8080, "
                  "got \"localhost:8080\"\n");
    expect_errors(BASE "routes: [{ name: r, shift: { from: a, to: b, percent: 100.5 } }]\n",
                  "t.yaml:5:55: expected a percent from 0 to 100 with at most 2 decimals like 25, "
                  "0.5 or 12.34%, got \"100.5\"\n");
    expect_errors("limits: { headers: 0 }\n" BASE ROUTE,
                  "t.yaml:1:20: expected an integer from 1 to 10000, got \"0\"\n");
    expect_errors("timeouts: { connect: 0s }\nlimits: { header_size: 512 }\n" BASE ROUTE,
                  "t.yaml:1:22: expected a duration of at least 1ms, got \"0s\"\n"
                  "t.yaml:2:24: expected a size of at least 1024 bytes, got \"512\"\n");
    expect_errors(BASE ROUTE "assign_cookie: { max_age: 1500ms }\n",
                  "t.yaml:6:27: expected a duration in whole seconds like 3600s, 30d, got "
                  "\"1500ms\"\n");
    expect_errors("backends:\n  a:\n    servers: [\"127.0.0.1:1\"]\n"
                  "    health_check: { interval: 1s, timeout: 2s }\n"
                  "listen: [\"127.0.0.1:2\"]\n" ROUTE,
                  "t.yaml:4:19: expected a health_check timeout not above its interval, got "
                  "2000ms > 1000ms\n");
    expect_errors("trusted_proxies: [10.0.0.1/8]\n" BASE ROUTE,
                  "t.yaml:1:19: expected a network like 10.0.0.0/8 or ::1/128 (no host bits "
                  "set), got \"10.0.0.1/8\"\n");
}
END_TEST

START_TEST(err_unknown_key)
{
    expect_errors("timeouts: { conect: 1s }\n" BASE ROUTE,
                  "t.yaml:1:13: unknown key \"conect\" in timeouts; expected one of: "
                  "client_header, client_body, client_idle, connect, response, upstream_idle, "
                  "drain\n");
    expect_errors(BASE ROUTE "colour: blue\n",
                  "t.yaml:6:1: unknown key \"colour\" in the top level; expected one of: workers, "
                  "listen, admin, access_log, state_file, redis, node_id, trusted_proxies, "
                  "timeouts, limits, http2, backends, sticky_key, assign_cookie, routes, rollback, "
                  "overrides, debug_headers, geoip, devices, segments\n");
}
END_TEST

START_TEST(err_node_types)
{
    expect_errors("timeouts: 5\n" BASE ROUTE,
                  "t.yaml:1:11: expected a mapping for timeouts, got \"5\"\n");
    expect_errors("listen: { address: \"127.0.0.1:1\" }\n"
                  "backends: { a: { servers: [\"127.0.0.1:1\"] } }\n" ROUTE,
                  "t.yaml:1:9: expected a list for listen, got a mapping\n");
    expect_errors("- a\n- b\n", "t.yaml:1:1: expected a mapping for the top level, got a list\n");
    expect_errors("", "t.yaml:1:1: expected a mapping for the top level, got an empty file\n");
    expect_errors("access_log: [a]\n" BASE ROUTE, "t.yaml:1:13: expected a string, got a list\n");
}
END_TEST

START_TEST(err_duplicate_key)
{
    expect_errors("timeouts: { connect: 1s, connect: 2s }\n" BASE ROUTE,
                  "t.yaml:1:26: duplicate key \"connect\" in timeouts\n");
    expect_errors(BASE "  a: { servers: [\"127.0.0.1:3\"] }\n" ROUTE,
                  "t.yaml:5:3: duplicate key \"a\" in backends\n");
}
END_TEST

START_TEST(err_missing)
{
    expect_errors("backends: { a: { servers: [\"127.0.0.1:1\"] } }\n" ROUTE,
                  "t.yaml:1:1: missing key \"listen\" in the top level\n");
    expect_errors("listen: []\nbackends: { a: { servers: [\"127.0.0.1:1\"] } }\n" ROUTE,
                  "t.yaml:1:9: expected at least one listener in listen, got a list\n");
    expect_errors(BASE "routes: [{ backend: a }]\n",
                  "t.yaml:5:10: missing key \"name\" in route\n");
    expect_errors(BASE "routes: [{ name: r }]\n",
                  "t.yaml:5:10: expected exactly one of backend or shift in route r\n");
    expect_errors(BASE "routes: [{ name: r, backend: a, shift: { from: a, to: b, percent: 1 } }]\n",
                  "t.yaml:5:10: expected exactly one of backend or shift in route r\n");
}
END_TEST

START_TEST(err_syntax)
{
    expect_errors(
        "listen: [\n  a: b: c\n",
        "t.yaml:2:7: did not find expected ',' or ']' (while parsing a flow sequence at line 1 "
        "column 9)\n");
    expect_errors(BASE ROUTE "---\nworkers: 2\n",
                  "t.yaml:7:1: expected a single YAML document, got another one\n");
}
END_TEST

START_TEST(err_duplicate_route)
{
    expect_errors(BASE "routes:\n  - { name: r, match: { path: a }, backend: a }\n"
                       "  - { name: r, backend: b }\n",
                  "t.yaml:7:13: duplicate route name \"r\" (first used at line 6)\n");
}
END_TEST

START_TEST(err_unresolved)
{
    expect_errors(BASE "routes:\n  - name: r\n    backend: c\n",
                  "t.yaml:7:14: unknown backend \"c\" in route r; expected one of: a, b\n");
    expect_errors(BASE "routes:\n  - name: r\n    shift: { from: a, to: x, percent: 3 }\n",
                  "t.yaml:7:27: unknown backend \"x\" in route r; expected one of: a, b\n");
    expect_errors(BASE "routes:\n  - name: r\n    shift: { from: a, to: a, percent: 3 }\n",
                  "t.yaml:7:27: expected different backends in shift from and to of route r, "
                  "got \"a\" twice\n");
    expect_errors(BASE "segments: { beta: { header: X-Tier, equals: beta } }\n"
                       "routes: [{ name: r, match: { segment: gamma }, backend: a }]\n",
                  "t.yaml:6:39: unknown segment \"gamma\" in route r; expected one of: beta\n");
    expect_errors(BASE "routes: [{ name: r, match: { device: tv }, backend: a }]\n",
                  "t.yaml:5:38: unknown device class \"tv\" in route r; none are defined\n");
    expect_errors(BASE "routes: [{ name: r, match: { country: DE }, backend: a }]\n",
                  "t.yaml:5:39: route r matches on country but geoip.database is not set\n");
}
END_TEST

START_TEST(err_regex_column)
{
    expect_errors(BASE "routes: [{ name: r, match: { path: \"^/api(\" }, backend: a }]\n",
                  "t.yaml:5:43: expected a valid regular expression, got \"^/api(\": missing "
                  "closing parenthesis at offset 6\n");
    expect_errors(BASE "routes: [{ name: r, match: { host: a**b }, backend: a }]\n",
                  "t.yaml:5:38: expected a valid regular expression, got \"a**b\": quantifier "
                  "does not follow a repeatable item at offset 2\n");
}
END_TEST

START_TEST(err_header_token)
{
    expect_errors(BASE "routes: [{ name: r, match: { header: { \"X Tier\": a } }, backend: a }]\n",
                  "t.yaml:5:40: expected an HTTP token (letters, digits and !#$%&'*+-.^_`|~), "
                  "got \"X Tier\"\n");
}
END_TEST

START_TEST(err_unreachable)
{
    expect_errors(BASE "routes:\n  - { name: all, backend: a }\n  - { name: late, backend: b }\n"
                       "  - { name: later, match: { path: x }, backend: b }\n",
                  "t.yaml:7:5: route late is unreachable: route all before it matches every "
                  "request\n"
                  "t.yaml:8:5: route later is unreachable: route all before it matches every "
                  "request\n");
}
END_TEST

START_TEST(err_duplicate_listen)
{
    expect_errors("listen: [\"127.0.0.1:80\", { address: \"127.0.0.1:80\" }]\n"
                  "backends: { a: { servers: [\"127.0.0.1:1\"] } }\n" ROUTE,
                  "t.yaml:1:26: duplicate listen address \"127.0.0.1:80\"\n");
}
END_TEST

START_TEST(err_segments_and_sticky)
{
    expect_errors(BASE ROUTE "segments: { s: { header: X, cookie: c, equals: v } }\n",
                  "t.yaml:6:16: expected exactly one of header, cookie, query or redis_set in "
                  "segment s\n");
    expect_errors(BASE ROUTE "segments: { s: { header: X } }\n",
                  "t.yaml:6:16: expected exactly one of equals or regex in segment s\n");
    expect_errors(BASE ROUTE "segments: { s: { redis_set: staff } }\n",
                  "t.yaml:6:16: segment s uses redis_set but redis is not configured\n");
    expect_errors(BASE ROUTE "sticky_key: [{ cookie: a, header: b }, { ip: true }, "
                             "{ client_ip: false }]\n",
                  "t.yaml:6:14: expected one key: { cookie: NAME }, { header: NAME }, { query: "
                  "NAME } or { client_ip: true }, got a mapping\n"
                  "t.yaml:6:42: unknown key \"ip\" in sticky_key; expected one of: cookie, "
                  "header, query, client_ip\n"
                  "t.yaml:6:67: expected client_ip: true, got \"false\"\n");
}
END_TEST

START_TEST(err_many_reported)
{
    static const char text[] = "workers: many\n"
                               "timeouts: { connect: soon, bogus: 1s }\n"
                               "limits: { uri: huge }\n" BASE "routes:\n"
                               "  - { name: x, match: { path: \"^/a\" }, backend: nowhere }\n"
                               "  - { name: x, match: { path: \"(\" }, backend: a }\n";
    char *err = errors_of(text);

    ck_assert_uint_eq(count_lines(err), 7);
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:1:10: expected \"auto\""));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:2:22: expected a duration"));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:2:28: unknown key \"bogus\""));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:3:16: expected a size"));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:10:33: expected a valid regular expression"));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:9:49: unknown backend \"nowhere\""));
    ck_assert_ptr_nonnull(strstr(err, "t.yaml:10:13: duplicate route name \"x\""));
    free(err);
}
END_TEST

START_TEST(err_alias_amplification)
{
    /* 40 kB that would expand to 2000 routes x 2000 countries */
    size_t cap = 64 * 1024, o = 0;
    char *text = malloc(cap), *err;
    int i;

    o += (size_t)snprintf(text + o, cap - o,
                          "geoip: { database: x }\n" BASE
                          "routes:\n  - &r { name: r, match: { country: [DE");
    for (i = 1; i < 2000; i++)
        o += (size_t)snprintf(text + o, cap - o, ",DE");
    o += (size_t)snprintf(text + o, cap - o, "] }, backend: a }\n");
    for (i = 1; i < 2000; i++)
        o += (size_t)snprintf(text + o, cap - o, "  - *r\n");
    ck_assert_uint_lt(o, cap - 1);
    err = errors_of(text);
    ck_assert_ptr_nonnull(strstr(err, "expected at most 1000000 values in a configuration"));
    ck_assert_uint_eq(count_lines(err), 1);
    free(err);
    free(text);
}
END_TEST

START_TEST(err_devices_file)
{
    char *err = NULL;
    struct tn_conf *c = tn_conf_load(TN_SRCDIR "/tests/unit/data/with-bad-devices.yaml", &err);
    char want[2048];

    ck_assert_ptr_null(c);
    snprintf(want, sizeof(want),
             "%s/tests/unit/data/devices-bad.yaml:2:27: expected a valid regular expression, got "
             "\"(?i)mobi|(android\": missing closing parenthesis at offset 17\n"
             "%s/tests/unit/data/devices-bad.yaml:3:1: duplicate key \"smart-tv\" in devices\n"
             "%s/tests/unit/data/with-bad-devices.yaml:4:50: unknown device class \"tablet\" in "
             "route r; expected one of: smart-tv\n",
             TN_SRCDIR, TN_SRCDIR, TN_SRCDIR);
    ck_assert_str_eq(err, want);
    free(err);
    expect_errors(BASE ROUTE "devices: /nonexistent/devices.yaml\n",
                  "t.yaml:6:10: cannot read device catalog /nonexistent/devices.yaml: No such "
                  "file or directory\n");
}
END_TEST

START_TEST(err_missing_file)
{
    char *err = NULL;

    ck_assert_ptr_null(tn_conf_load("/nonexistent/turnout.yaml", &err));
    ck_assert_str_eq(err, "/nonexistent/turnout.yaml: cannot read: No such file or directory\n");
    free(err);
}
END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *files = tcase_create("files"), *scalars = tcase_create("scalars");
    TCase *errs = tcase_create("errors");

    tcase_add_test(files, example_loads);
    tcase_add_test(files, device_catalog_loads);
    tcase_add_test(files, full_schema_loads);
    tcase_add_test(files, defaults);
    tcase_add_test(files, assign_cookie_forms);
    tcase_add_test(files, free_null_and_index);
    suite_add_tcase(s, files);
    tcase_add_test(scalars, parse_duration);
    tcase_add_test(scalars, parse_size);
    tcase_add_test(scalars, parse_percent);
    tcase_add_test(scalars, parse_addr);
    tcase_add_test(scalars, parse_small_scalars);
    suite_add_tcase(s, scalars);
    tcase_add_test(errs, err_duration);
    tcase_add_test(errs, err_scalars);
    tcase_add_test(errs, err_unknown_key);
    tcase_add_test(errs, err_node_types);
    tcase_add_test(errs, err_duplicate_key);
    tcase_add_test(errs, err_missing);
    tcase_add_test(errs, err_syntax);
    tcase_add_test(errs, err_duplicate_route);
    tcase_add_test(errs, err_unresolved);
    tcase_add_test(errs, err_regex_column);
    tcase_add_test(errs, err_header_token);
    tcase_add_test(errs, err_unreachable);
    tcase_add_test(errs, err_duplicate_listen);
    tcase_add_test(errs, err_segments_and_sticky);
    tcase_add_test(errs, err_many_reported);
    tcase_add_test(errs, err_alias_amplification);
    tcase_add_test(errs, err_devices_file);
    tcase_add_test(errs, err_missing_file);
    suite_add_tcase(s, errs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conf_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
