/* GeoIP2 lookups against a fixture database written at test time by
 * tests/unit/data/make-geo-mmdb.pl (Debian: libmaxmind-db-writer-perl),
 * cross-checked with mmdblookup (Debian: mmdb-bin). Also file-change
 * detection, replacement under a live mapping, open errors and lookups
 * from several threads. Files go to a temporary directory under the
 * current (build) directory. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "turnout/geodb.h"

#define MAKE_MMDB TN_SRCDIR "/tests/unit/data/make-geo-mmdb.pl"

/* An address and what the fixture says about it. */
struct expect {
    const char *addr;
    const char *country, *continent, *subdivision;
};

/* Addresses inside each fixture network: first, inner and last. */
static const struct expect inside[] = {
    {"81.2.69.0", "GB", "EU", "ENG"},
    {"81.2.69.142", "GB", "EU", "ENG"},
    {"81.2.69.255", "GB", "EU", "ENG"},
    {"2.125.160.216", "GB", "EU", ""},
    {"2.125.175.255", "GB", "EU", ""},
    {"89.160.20.112", "SE", "EU", ""},
    {"175.16.199.0", "CN", "AS", ""},
    {"175.16.199.77", "CN", "AS", ""},
    {"216.160.83.56", "US", "NA", "WA"},
    {"67.43.156.1", "BT", "AS", ""},
    {"202.196.224.0", "PH", "AS", ""},
    {"202.196.239.255", "PH", "AS", ""},
    {"186.30.236.10", "CO", "SA", ""},
    {"1.128.0.0", "AU", "OC", ""},
    {"1.159.255.255", "AU", "OC", ""},
    {"93.184.216.34", "DE", "EU", "BY"},
    {"2a02:cf40::", "NO", "EU", ""},
    {"2a02:cf47:ffff:ffff:ffff:ffff:ffff:ffff", "NO", "EU", ""},
    {"2001:480::1", "US", "NA", "CA"},
    {"2001:480:ffff::9", "US", "NA", "CA"},
    {"2001:218::7", "JP", "AS", ""},
    {"2c0f:ff00::1", "ZA", "AF", ""},
    {"2c0f:ff00:ffff:ffff::1", "ZA", "AF", ""},
    {"2003::1", "DE", "EU", "BY"},
    {"2003:1fff:ffff::1", "DE", "EU", "BY"},
};

/* Addresses next to or far from every fixture network. */
static const char *const outside[] = {
    "8.8.8.8",     "81.2.68.255", "81.2.70.0",  "1.127.255.255", "1.160.0.0",
    "93.185.0.0",  "0.0.0.0",     "127.0.0.1",  "::1",           "2001:db8::1",
    "2a02:cf48::", "2003:2000::", "2001:219::", "2c0f:ff01::",
};

static char dir[64];      /* the temporary directory */
static char fixture[128]; /* the fixture database, aliased like MaxMind's */
static char noalias[128]; /* the same without the ::ffff:0:0/96 alias */

static void make_fixture(const char *out, const char *opt)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "perl '%s' %s '%s'", MAKE_MMDB, opt, out);
    if (system(cmd) != 0) {
        fprintf(stderr, "check_geo: `%s` failed (needs libmaxmind-db-writer-perl)\n", cmd);
        exit(EXIT_FAILURE);
    }
}

/* A path in the temporary directory. */
static const char *tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "rb"), *out;
    size_t n;

    ck_assert_ptr_nonnull(in);
    out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* An address into a sockaddr_storage; mapped: IPv4 as ::ffff:a.b.c.d. */
static struct sockaddr_storage sa_of(const char *s, int mapped)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct in_addr a4;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, s, &a4) == 1) {
        if (mapped) {
            s6->sin6_family = AF_INET6;
            s6->sin6_addr.s6_addr[10] = 0xff;
            s6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&s6->sin6_addr.s6_addr[12], &a4, 4);
        } else {
            s4->sin_family = AF_INET;
            s4->sin_addr = a4;
        }
    } else if (inet_pton(AF_INET6, s, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
    } else {
        ck_abort_msg("bad address %s", s);
    }
    return ss;
}

static int is_v4(const char *s)
{
    return strchr(s, ':') == NULL;
}

static int lookup(const struct tn_geodb *db, const char *addr, int mapped, struct tn_geo *g)
{
    struct sockaddr_storage ss = sa_of(addr, mapped);

    return tn_geodb_lookup(db, (struct sockaddr *)&ss, g);
}

/* Whether lookups of every inside address (also IPv4-mapped) are right. */
static void check_inside(const struct tn_geodb *db)
{
    size_t i;
    int m;

    for (i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
        const struct expect *e = &inside[i];

        for (m = 0; m <= is_v4(e->addr); m++) {
            struct tn_geo g;

            ck_assert_msg(lookup(db, e->addr, m, &g) == 1, "%s%s not found", m ? "::ffff:" : "",
                          e->addr);
            ck_assert_str_eq(g.country, e->country);
            ck_assert_str_eq(g.continent, e->continent);
            ck_assert_str_eq(g.subdivision, e->subdivision);
        }
    }
}

static struct tn_geodb *open_ok(const char *path)
{
    char *err = NULL;
    struct tn_geodb *db = tn_geodb_open(path, &err);

    ck_assert_msg(db != NULL, "open %s: %s", path, err ? err : "?");
    ck_assert_ptr_null(err);
    return db;
}

/* mmdblookup's answer for ip at the given path: the string, or "" when
 * not found. */
static void mmdblookup(const char *file, const char *ip, const char *path, char *out, size_t n)
{
    char cmd[512], line[256];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "mmdblookup --file '%s' --ip '%s' %s 2>&1", file, ip, path);
    p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    out[0] = '\0';
    while (fgets(line, sizeof(line), p)) {
        char *q1 = strchr(line, '"'), *q2;

        if (q1 && strstr(line, "<utf8_string>") && (q2 = strchr(q1 + 1, '"')) != NULL) {
            *q2 = '\0';
            snprintf(out, n, "%s", q1 + 1);
        }
    }
    ck_assert_msg(pclose(p) != -1, "pclose");
}

START_TEST(geo_inside_networks)
{
    struct tn_geodb *db = open_ok(fixture);

    check_inside(db);
    ck_assert_str_eq(tn_geodb_path(db), fixture);
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_mapped_without_alias)
{
    /* the database has no ::ffff:0:0/96 alias: only turning a mapped
     * address into IPv4 finds it */
    struct tn_geodb *db = open_ok(noalias);

    check_inside(db);
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_outside_networks)
{
    struct tn_geodb *db = open_ok(fixture);
    struct sockaddr_storage un;
    struct tn_geo g, zero;
    size_t i;
    int m;

    memset(&zero, 0, sizeof(zero));
    for (i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        for (m = 0; m <= is_v4(outside[i]); m++) {
            memset(&g, 'x', sizeof(g));
            ck_assert_msg(lookup(db, outside[i], m, &g) == 0, "%s found", outside[i]);
            ck_assert(memcmp(&g, &zero, sizeof(g)) == 0);
        }
    }
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    memset(&g, 'x', sizeof(g));
    ck_assert_int_eq(tn_geodb_lookup(db, (struct sockaddr *)&un, &g), 0);
    ck_assert(memcmp(&g, &zero, sizeof(g)) == 0);
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_agrees_with_mmdblookup)
{
    static const char *const ips[] = {"81.2.69.142",   "89.160.20.112", "216.160.83.56",
                                      "2001:218::7",   "2003::1",       "2c0f:ff00::1",
                                      "186.30.236.10", "8.8.8.8",       "2001:db8::1"};
    struct tn_geodb *db = open_ok(fixture);
    char want[64];
    size_t i;

    for (i = 0; i < sizeof(ips) / sizeof(ips[0]); i++) {
        struct tn_geo g;
        int found = lookup(db, ips[i], 0, &g);

        mmdblookup(fixture, ips[i], "country iso_code", want, sizeof(want));
        ck_assert_msg(strcmp(g.country, want) == 0, "%s: turnout \"%s\", mmdblookup \"%s\"", ips[i],
                      g.country, want);
        ck_assert_int_eq(found, want[0] != '\0');
        mmdblookup(fixture, ips[i], "continent code", want, sizeof(want));
        ck_assert_str_eq(g.continent, want);
        mmdblookup(fixture, ips[i], "subdivisions 0 iso_code", want, sizeof(want));
        ck_assert_str_eq(g.subdivision, want);
    }
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_changed)
{
    char path[128], next[128];
    struct tn_geodb *db;

    copy_file(fixture, tmp_path(path, sizeof(path), "changed.mmdb"));
    db = open_ok(path);
    ck_assert_int_eq(tn_geodb_changed(db), 0);
    ck_assert_int_eq(tn_geodb_changed(db), 0);
    /* the same bytes under a new inode are a new file */
    copy_file(fixture, tmp_path(next, sizeof(next), "changed.mmdb.new"));
    ck_assert_int_eq(rename(next, path), 0);
    ck_assert_int_eq(tn_geodb_changed(db), 1);
    tn_geodb_unref(db);

    db = open_ok(path);
    ck_assert_int_eq(tn_geodb_changed(db), 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(tn_geodb_changed(db), 1);
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_changed_in_place)
{
    /* rewritten in place with another size: same inode, still a change */
    char path[128];
    struct tn_geodb *db;
    FILE *f;

    copy_file(fixture, tmp_path(path, sizeof(path), "inplace.mmdb"));
    db = open_ok(path);
    f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    fputc(0, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(tn_geodb_changed(db), 1);
    tn_geodb_unref(db);
}
END_TEST

START_TEST(geo_old_mapping_survives_replacement)
{
    char path[128], next[128];
    struct tn_geodb *db, *db2;

    copy_file(fixture, tmp_path(path, sizeof(path), "live.mmdb"));
    db = open_ok(path);
    db2 = tn_geodb_ref(db);
    ck_assert_ptr_eq(db2, db);
    write_text(tmp_path(next, sizeof(next), "live.mmdb.new"), "not a database\n");
    ck_assert_int_eq(rename(next, path), 0);
    ck_assert_int_eq(tn_geodb_changed(db), 1);
    check_inside(db);
    tn_geodb_unref(db); /* one reference left: still mapped */
    ck_assert_int_eq(unlink(path), 0);
    check_inside(db2);
    tn_geodb_unref(db2);
    tn_geodb_unref(NULL);
    ck_assert_ptr_null(tn_geodb_ref(NULL));
}
END_TEST

START_TEST(geo_open_errors)
{
    char path[128];
    char *err = NULL;

    tmp_path(path, sizeof(path), "missing.mmdb");
    ck_assert_ptr_null(tn_geodb_open(path, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':',
                  "error \"%s\" does not start with the file", err);
    ck_assert_ptr_nonnull(strstr(err, strerror(ENOENT)));
    free(err);

    err = NULL;
    write_text(tmp_path(path, sizeof(path), "text.mmdb"), "GeoLite2? no, just text\n");
    ck_assert_ptr_null(tn_geodb_open(path, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && strlen(err) > strlen(path) + 2,
                  "error \"%s\"", err);
    free(err);

    err = NULL;
    write_text(tmp_path(path, sizeof(path), "empty.mmdb"), "");
    ck_assert_ptr_null(tn_geodb_open(path, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_ptr_nonnull(strstr(err, path));
    free(err);
}
END_TEST

#define THREADS 4
#define ROUNDS 300

struct worker {
    const struct tn_geodb *db;
    int bad;
};

static void *on_worker(void *arg)
{
    struct worker *w = arg;
    size_t r, i;

    for (r = 0; r < ROUNDS; r++) {
        for (i = 0; i < sizeof(inside) / sizeof(inside[0]); i++) {
            const struct expect *e = &inside[i];
            int m = is_v4(e->addr) ? (int)((r + i) & 1) : 0;
            struct sockaddr_storage ss = sa_of(e->addr, m);
            struct tn_geo g;

            if (tn_geodb_lookup(w->db, (struct sockaddr *)&ss, &g) != 1 ||
                strcmp(g.country, e->country) || strcmp(g.continent, e->continent) ||
                strcmp(g.subdivision, e->subdivision))
                w->bad++;
        }
        for (i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
            struct sockaddr_storage ss = sa_of(outside[i], 0);
            struct tn_geo g;

            if (tn_geodb_lookup(w->db, (struct sockaddr *)&ss, &g) != 0 || g.country[0])
                w->bad++;
        }
    }
    return NULL;
}

START_TEST(geo_threads)
{
    struct tn_geodb *db = open_ok(fixture);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        w[i].db = tn_geodb_ref(db);
        w[i].bad = 0;
        ck_assert_int_eq(pthread_create(&t[i], NULL, on_worker, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_int_eq(w[i].bad, 0);
        tn_geodb_unref((struct tn_geodb *)w[i].db);
    }
    tn_geodb_unref(db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("geo");
    TCase *tc = tcase_create("geo");
    SRunner *sr;
    char cmd[128];
    int failed;

    snprintf(dir, sizeof(dir), "check_geo.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("check_geo: mkdtemp");
        return EXIT_FAILURE;
    }
    snprintf(fixture, sizeof(fixture), "%s/geo.mmdb", dir);
    snprintf(noalias, sizeof(noalias), "%s/geo-noalias.mmdb", dir);
    make_fixture(fixture, "");
    make_fixture(noalias, "--no-alias");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, geo_inside_networks);
    tcase_add_test(tc, geo_mapped_without_alias);
    tcase_add_test(tc, geo_outside_networks);
    tcase_add_test(tc, geo_agrees_with_mmdblookup);
    tcase_add_test(tc, geo_changed);
    tcase_add_test(tc, geo_changed_in_place);
    tcase_add_test(tc, geo_old_mapping_survives_replacement);
    tcase_add_test(tc, geo_open_errors);
    tcase_add_test(tc, geo_threads);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "check_geo: could not remove %s\n", dir);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
