/* classify-cost: the cost of one routing decision that classifies a request
 * by geography (GeoIP lookup of the X-Forwarded-For client), device (the
 * User-Agent against conf/devices.yaml), segments (a header and a
 * 100 000-member Redis-set segment) and computes the sticky bucket, in ns,
 * on one thread, with the per-worker caches of GeoIP answers and device
 * classes (typical traffic: 64 users cycling) and without them (every
 * address and User-Agent new).
 *
 *   contrib/bench/classify-cost GEO.mmdb DEVICES.yaml [iterations]
 *
 * Built with `make contrib/bench/classify-cost`; run by contrib/bench/run.sh
 * (classify job) and documented in docs/benchmark.md. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/ident.h"
#include "turnout/module.h"
#include "turnout/overlay.h"
#include "turnout/route.h"
#include "turnout/strset.h"

#define NREQ 64

static const char *const uas[] = {
    "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "76.0.3809.146/6.0 TV Safari/537.36",
    "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.79 "
    "Safari/537.36 WebAppManager",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633.3445N; wv) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36",
    "Roku/DVP-12.0 (12.0.0.4182-88)",
};
static const char *const ips[] = {"93.184.1.1", "89.160.20.5", "175.16.199.9", "216.160.83.60",
                                  "2003::1", "192.0.2.7", "2001:218::1", "81.2.69.160"};

struct req {
    struct tn_field f[4];
    char key[32];
    struct tn_route_req rq;
};

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void field(struct tn_field *f, const char *name, const char *value)
{
    f->name = name;
    f->name_len = (uint32_t)strlen(name);
    f->value = value;
    f->value_len = (uint32_t)strlen(value);
    f->flags = 0;
}

int main(int argc, char **argv)
{
    char text[4096], *err = NULL;
    struct tn_conf *conf;
    struct tn_plan *plan;
    struct tn_overlay *ov;
    struct tn_strset *set = tn_strset_new();
    struct req *reqs = calloc(NREQ, sizeof(*reqs));
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    void *wk[TN_MODULE_MAX] = {0};
    long iters = argc > 3 ? atol(argv[3]) : 2000000;
    struct tn_decision d;
    unsigned to = 0, pass;
    size_t i;
    long n;

    if (argc < 3) {
        fprintf(stderr, "usage: %s GEO.mmdb DEVICES.yaml [iterations]\n", argv[0]);
        return 2;
    }
    snprintf(text, sizeof(text),
             "listen: [{address: \"127.0.0.1:1\"}]\n"
             "backends: {legacy: {servers: [\"127.0.0.1:2\"]}, new: {servers: [\"127.0.0.1:3\"]}}\n"
             "geoip: {database: %s}\n"
             "devices: %s\n"
             "trusted_proxies: [\"127.0.0.0/8\"]\n"
             "sticky_key: [{header: X-User-Id}]\n"
             "segments: {staff: {redis_set: staff}, beta: {header: X-User-Tier, equals: beta}}\n"
             "redis: {address: \"127.0.0.1:6379\"}\n"
             "routes:\n"
             "  - {name: staff, match: {segment: staff}, backend: new}\n"
             "  - {name: beta, match: {segment: beta}, backend: new}\n"
             "  - {name: tv-de, match: {device: smart-tv, country: DE}, "
             "shift: {from: legacy, to: new, percent: 50}}\n"
             "  - {name: default, shift: {from: legacy, to: new, percent: 10}}\n",
             argv[1], argv[2]);
    conf = tn_conf_load_string("/bench/classify.yaml", text, strlen(text), &err);
    if (!conf || !(plan = tn_plan_new(conf, 1, &err))) {
        fprintf(stderr, "%s", err ? err : "cannot build the plan\n");
        return 1;
    }
    for (i = 0; i < 100000; i++) {
        char k[32];

        snprintf(k, sizeof(k), "staff-%zu", i);
        tn_strset_add(set, k, strlen(k));
    }
    tn_strset_seal(set);
    ov = tn_overlay_new(tn_ident_count(TN_IDENT_ROUTE), tn_ident_count(TN_IDENT_SERVER));
    ov->sets = calloc(1, sizeof(*ov->sets));
    ov->sets[0].name = strdup("staff");
    ov->sets[0].set = set;
    ov->nsets = 1;
    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->worker_new)
            wk[i] = tn_modules[i]->worker_new();
    for (i = 0; i < NREQ; i++) {
        struct req *r = &reqs[i];

        snprintf(r->key, sizeof(r->key), i % 16 ? "user-%zu" : "staff-%zu", i * 7919);
        field(&r->f[0], "User-Agent", uas[i % TN_ARRAY_LEN(uas)]);
        field(&r->f[1], "X-Forwarded-For", ips[(i / 3) % TN_ARRAY_LEN(ips)]);
        field(&r->f[2], "X-User-Id", r->key);
        field(&r->f[3], "Accept", "*/*");
        r->rq = (struct tn_route_req){.method = "GET", .method_len = 3, .host = "example.com",
                                      .host_len = 11, .target = "/api/v1/items?x=1",
                                      .target_len = 17, .hdrs = r->f, .nhdrs = 4,
                                      .client_ip = "127.0.0.1", .ov = ov, .mod_wk = wk};
    }
    for (pass = 0; pass < 2; pass++) {
        double t0;

        for (i = 0; i < NREQ; i++) /* with the cache (pass 0) or without (pass 1) */
            reqs[i].rq.mod_wk = pass ? NULL : wk;
        for (n = 0; n < iters / 10; n++) /* warm-up */
            tn_route_decide(plan, &reqs[n % NREQ].rq, md, &d);
        t0 = now_ns();
        for (n = 0; n < iters; n++) {
            tn_route_decide(plan, &reqs[n % NREQ].rq, md, &d);
            to += d.reason == TN_ROUTE_SHIFT_TO;
        }
        printf("classify+route+bucket, %s per-worker caches (GeoIP, device): %.0f ns per request (%ld requests, "
               "geo+device+segments+bucket each)\n",
               pass ? "without the" : "with the", (now_ns() - t0) / (double)iters, iters);
    }
    fprintf(stderr, "(%u shifted to new)\n", to);
    for (i = 0; tn_modules[i]; i++)
        if (tn_modules[i]->worker_free)
            tn_modules[i]->worker_free(wk[i]);
    tn_overlay_unref(ov);
    tn_plan_unref(plan);
    pcre2_match_data_free(md);
    free(reqs);
    return 0;
}
