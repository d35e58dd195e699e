/* Unit tests for the device catalog (modules/device/catalog.c): the
 * default catalog conf/devices.yaml, loaded through the real config
 * loader, against a corpus of real User-Agents; first-match order, bad
 * patterns, the per-worker cache (collisions, catalog switch) and per-thread
 * use. Prints ns per classification on a cache miss and on a hit. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/device.h"

#define CORPUS TN_SRCDIR "/tests/unit/data/user-agents.tsv"
#define CATALOG TN_SRCDIR "/conf/devices.yaml"
#define MAX_UA 512
#define NTHREADS 4

#define BASE                                                                                       \
    "listen: [{ address: \"127.0.0.1:8080\" }]\n"                                                  \
    "backends:\n"                                                                                  \
    "  a: { servers: [{ address: \"127.0.0.1:9001\" }] }\n"                                        \
    "routes: [{ name: r, backend: a }]\n"

/* One corpus line: the expected class ("none": no class) and the UA. */
struct ua_case {
    char want[32];
    char *ua;
    size_t len;
    int line;
};

static struct ua_case cases[MAX_UA];
static size_t ncases;

/* ---- helpers ---- */

static void load_corpus(void)
{
    FILE *f = fopen(CORPUS, "r");
    char buf[4096];
    int line = 0;

    ck_assert_msg(f != NULL, "cannot open %s", CORPUS);
    ncases = 0;
    while (fgets(buf, sizeof(buf), f)) {
        char *tab = strchr(buf, '\t');
        size_t len = strcspn(buf, "\r\n");

        line++;
        buf[len] = '\0';
        if (!len || buf[0] == '#')
            continue;
        ck_assert_msg(tab && (size_t)(tab - buf) < sizeof(cases[0].want),
                      "%s:%d: expected class TAB user agent", CORPUS, line);
        ck_assert_uint_lt(ncases, MAX_UA);
        *tab = '\0';
        strcpy(cases[ncases].want, buf);
        cases[ncases].ua = tn_xstrdup(tab + 1);
        cases[ncases].len = strlen(tab + 1);
        cases[ncases].line = line;
        ncases++;
    }
    fclose(f);
    ck_assert_uint_ge(ncases, 80);
}

/* The default catalog through the real loader, as turnout.yaml names it. */
static struct tn_devices *load_default(void)
{
    static const char text[] = BASE "devices: " CATALOG "\n";
    char *err = NULL;
    struct tn_conf *c = tn_conf_load_string("t.yaml", text, strlen(text), &err);
    struct tn_devices *d;

    ck_assert_msg(c != NULL, "%s", err ? err : "");
    d = tn_devices_new(c->devices, c->ndevices, &err);
    ck_assert_msg(d != NULL, "%s", err ? err : "");
    tn_conf_free(c);
    return d;
}

static struct tn_devices *build(const struct tn_conf_device *cls, size_t n)
{
    char *err = NULL;
    struct tn_devices *d = tn_devices_new(cls, n, &err);

    ck_assert_msg(d != NULL, "%s", err ? err : "");
    ck_assert_ptr_null(err);
    return d;
}

static pcre2_match_data *new_md(void)
{
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);

    ck_assert_ptr_nonnull(md);
    return md;
}

static int classify_s(const struct tn_devices *d, struct tn_device_cache *c, pcre2_match_data *md,
                      const char *ua)
{
    return tn_devices_classify(d, c, md, ua, strlen(ua));
}

static const char *name_of(const struct tn_devices *d, int cls)
{
    return cls < 0 ? "none" : tn_devices_name(d, (size_t)cls);
}

static void free_corpus(void)
{
    size_t i;

    for (i = 0; i < ncases; i++)
        free(cases[i].ua);
    ncases = 0;
}

/* The reference: each class pattern compiled plainly (caseless, no JIT,
 * never split or filtered) and tried in order. */
struct oracle {
    pcre2_code *re[32];
    size_t n;
};

static void oracle_init(struct oracle *o, const struct tn_conf_device *cls, size_t n)
{
    size_t i;

    ck_assert_uint_le(n, TN_ARRAY_LEN(o->re));
    for (i = 0; i < n; i++) {
        PCRE2_SIZE off;
        int rc;

        o->re[i] = pcre2_compile((PCRE2_SPTR)cls[i].regex, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS,
                                 &rc, &off, NULL);
        ck_assert_msg(o->re[i] != NULL, "oracle: %s does not compile", cls[i].regex);
    }
    o->n = n;
}

static int oracle_classify(const struct oracle *o, pcre2_match_data *md, const char *ua, size_t len)
{
    size_t i;

    for (i = 0; ua && len && i < o->n; i++)
        if (pcre2_match(o->re[i], (PCRE2_SPTR)ua, len, 0, 0, md, NULL) >= 0)
            return (int)i;
    return -1;
}

static void oracle_deinit(struct oracle *o)
{
    size_t i;

    for (i = 0; i < o->n; i++)
        pcre2_code_free(o->re[i]);
}

/* Compares d with the oracle on ua; returns 1 when they agree, else
 * prints the disagreement (the caller counts). */
static int agrees(const struct tn_devices *d, const struct oracle *o, pcre2_match_data *md,
                  const char *ua, size_t len)
{
    int got = tn_devices_classify(d, NULL, md, ua, len), want = oracle_classify(o, md, ua, len);

    if (got == want)
        return 1;
    printf("disagree: catalog %s, plain PCRE2 %s: %.*s\n", name_of(d, got), name_of(d, want),
           (int)len, ua);
    return 0;
}

static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* ---- tests ---- */

START_TEST(device_corpus_classifies)
{
    struct tn_devices *d;
    pcre2_match_data *md = new_md();
    char *bad = NULL;
    size_t i, nbad = 0, blen = 0;

    load_corpus();
    d = load_default();
    for (i = 0; i < ncases; i++) {
        int got = tn_devices_classify(d, NULL, md, cases[i].ua, cases[i].len);
        const char *gn = name_of(d, got);

        if (strcmp(cases[i].want, "none"))
            ck_assert_msg(tn_devices_find(d, cases[i].want) >= 0, "line %d: no class %s",
                          cases[i].line, cases[i].want);
        if (!strcmp(gn, cases[i].want))
            continue;
        nbad++;
        bad = tn_xrealloc(bad, blen + strlen(cases[i].ua) + 128);
        blen += (size_t)sprintf(bad + blen, "\n  line %d: want %s, got %s: %s", cases[i].line,
                                cases[i].want, gn, cases[i].ua);
    }
    ck_assert_msg(nbad == 0, "%zu of %zu User-Agents misclassified:%s", nbad, ncases, bad);
    tn_devices_free(d);
    pcre2_match_data_free(md);
    free_corpus();
}
END_TEST

START_TEST(device_default_catalog_classes)
{
    static const char *const want[] = {"bot", "smart-tv", "console", "tablet", "phone", "desktop"};
    struct tn_devices *d = load_default();
    size_t i;

    ck_assert_uint_eq(tn_devices_count(d), TN_ARRAY_LEN(want));
    for (i = 0; i < TN_ARRAY_LEN(want); i++) {
        ck_assert_str_eq(tn_devices_name(d, i), want[i]);
        ck_assert_int_eq(tn_devices_find(d, want[i]), (int)i);
    }
    ck_assert_ptr_null(tn_devices_name(d, i));
    ck_assert_int_eq(tn_devices_find(d, "set-top-box"), -1);
    ck_assert_int_eq(tn_devices_find(d, NULL), -1);
    tn_devices_free(d);
}
END_TEST

/* The splitting and the literal prefilter never change an answer: the
 * default catalog against plain PCRE2 on the corpus, its case variants,
 * pieces and splices. */
START_TEST(device_default_agrees_with_plain_pcre2)
{
    static const char text[] = BASE "devices: " CATALOG "\n";
    struct tn_conf *c = tn_conf_load_string("t.yaml", text, strlen(text), NULL);
    struct tn_devices *d;
    struct oracle o;
    pcre2_match_data *md = new_md();
    char buf[8192];
    size_t i, j, k, bad = 0, tried = 0;

    ck_assert_ptr_nonnull(c);
    load_corpus();
    d = build(c->devices, c->ndevices);
    oracle_init(&o, c->devices, c->ndevices);
    for (i = 0; i < ncases; i++) {
        const char *ua = cases[i].ua;
        size_t len = cases[i].len;

        bad += !agrees(d, &o, md, ua, len);
        for (j = 0; j < len; j++) { /* case variants */
            int letter = (ua[j] | 0x20) >= 'a' && (ua[j] | 0x20) <= 'z';

            buf[j] = (char)((j + i) % 3 && letter ? ua[j] ^ 0x20 : ua[j]);
        }
        bad += !agrees(d, &o, md, buf, len);
        for (j = 0; j < len; j += 5) { /* every suffix and prefix, every 5th */
            bad += !agrees(d, &o, md, ua + j, len - j);
            bad += !agrees(d, &o, md, ua, j);
            tried += 2;
        }
        for (k = 0; k < 20; k++) { /* splices of two User-Agents */
            const struct ua_case *b = &cases[rnd((uint32_t)ncases)];
            size_t a1 = rnd((uint32_t)len + 1), b0 = rnd((uint32_t)b->len + 1);

            memcpy(buf, ua, a1);
            memcpy(buf + a1, b->ua + b0, b->len - b0);
            bad += !agrees(d, &o, md, buf, a1 + b->len - b0);
        }
        tried += 22;
    }
    ck_assert_msg(bad == 0, "%zu of %zu disagreements (printed above)", bad, tried);
    oracle_deinit(&o);
    tn_devices_free(d);
    tn_conf_free(c);
    pcre2_match_data_free(md);
    free_corpus();
}
END_TEST

/* Pattern syntax the splitter and the literal finder must get right (or
 * leave alone), against plain PCRE2 on random strings of their pieces. */
START_TEST(device_tricky_patterns_agree_with_plain_pcre2)
{
    static const struct tn_conf_device cls[] = {
        {"lead-opt", "(?-i)ABC|def"},
        {"mid-opt", "x(?-i)yz|QQ"},
        {"lookaround", "(?<!no)pe+r|(?:foo|ba[rz])\\b|(?=lo)look|(?!x)xz|(?<=k)kk"},
        {"anchors", "\\bwin(?:32|64)\\b|^start|end$|\\Bmid"},
        {"backref", "(a)\\1b|zz|(?<w>ww)\\k<w>|(q)1|(b)\\1"},
        {"quoted", "\\Qa|b\\E|cc"},
        {"extended", "(?x) s p a c e | tab"},
        {"quant",
         "ab?c|x\\.y|[|]pipe|\\|bar|a{2}q|c+d|(?:ef)+g|ghi*j|kl{0,2}m|(?:ef)?gq|(?:rs)*tu"},
        {"groups", "(?<n>na|nb)me|(?'q'qu)ote|(?P<p>pp)x|(?>hi|jk)l|(?|(xa)|(xb))z|(ok|o)k"},
        {"bytes", "\xc3\xa9t\xc3\xa9|\xc3\xbc+x|\\x41\\x42"},
        {"verbs", "(*CR)abc|dd(*SKIP)(*FAIL)|ee"},
        {"comment", "(?#c|d)ef|gh"},
        {"class", "[[:digit:]]z|[]x]y|[^a]bc"},
        {"plain", "tail"},
        {"empty-alt", "zq|"},
    };
    static const char *const bits[] = {
        "ABC", "abc",   "def",  "DEF",   "x",     "yz",   "YZ",        "QQ",       "qq",
        "no",  "per",   "peer", "pr",    "foo",   "bar",  "baz",       "lo",       "look",
        "xz",  "k",     "kk",   "win32", "win64", "win",  "start",     "end",      "mid",
        "a",   "b",     "aab",  "zz",    "wwww",  "a|b",  "cc",        "space",    "tab",
        "ac",  "abc",   "x.y",  "xy",    "|pipe", "pipe", "|bar",      "aaq",      "ccd",
        "efg", "efefg", "ghj",  "ghiij", "km",    "kllm", "name",      "nbme",     "quote",
        "ppx", "hil",   "jkl",  "xaz",   "xbz",   "okk",  "\xc3\xa9t", "\xc3\xa9", "\xc3\xbcx",
        "AB",  "ee",    "dd",   "ef",    "gh",    "7z",   "]y",        "xy",       "bbc",
        "zq",  "tail",  "bb",   "q1",    "gq",    "efgq", "tu",        "rstu",     " ",
        "-",   "/",     ";",    "(",     ")"};
    struct tn_devices *d = build(cls, TN_ARRAY_LEN(cls));
    struct oracle o;
    pcre2_match_data *md = new_md();
    char buf[256];
    size_t i, j, bad = 0;

    oracle_init(&o, cls, TN_ARRAY_LEN(cls));
    for (i = 0; i < 200000; i++) {
        size_t len = 0, n = 1 + rnd(5);

        for (j = 0; j < n; j++) {
            const char *b = bits[rnd(TN_ARRAY_LEN(bits))];
            size_t bl = strlen(b);

            memcpy(buf + len, b, bl);
            len += bl;
        }
        for (j = 0; j < len; j++)
            if (!rnd(4) && (buf[j] | 0x20) >= 'a' && (buf[j] | 0x20) <= 'z')
                buf[j] ^= 0x20;
        bad += !agrees(d, &o, md, buf, len);
    }
    ck_assert_msg(bad == 0, "%zu disagreements (printed above)", bad);
    oracle_deinit(&o);
    tn_devices_free(d);
    pcre2_match_data_free(md);
}
END_TEST

/* More distinct literals than the filter tracks: the rest run unfiltered,
 * answers unchanged. */
START_TEST(device_many_literals_agree_with_plain_pcre2)
{
    static char words[1200][8];
    static char re[1200 * 8 + 1];
    struct tn_conf_device cls[2] = {{"many", re}, {"any", "[a-z]{3}"}};
    static const char abc[] = "abcdefghijklmnopqrstuvwxyz0123456789 /-_;:,=!@%&'<>~";
    struct tn_devices *d;
    struct oracle o;
    pcre2_match_data *md = new_md();
    char buf[64];
    size_t i, j, len = 0, bad = 0;

    for (i = 0; i < TN_ARRAY_LEN(words); i++) {
        for (j = 0; j < 6; j++)
            words[i][j] = abc[rnd(sizeof(abc) - 1)];
        len += (size_t)sprintf(re + len, "%s%s", i ? "|" : "", words[i]);
    }
    d = build(cls, 2);
    oracle_init(&o, cls, 2);
    for (i = 0; i < 20000; i++) {
        const char *w = words[rnd(TN_ARRAY_LEN(words))];
        size_t cut = rnd(7);

        /* a word, or a cut and a random tail */
        len = (size_t)snprintf(buf, sizeof(buf), "%.*s%c%c%c", (int)(6 - cut % 2), w + cut / 2,
                               abc[rnd(sizeof(abc) - 1)], 'a' + rnd(26), 'a' + rnd(26));
        bad += !agrees(d, &o, md, buf, len);
    }
    ck_assert_msg(bad == 0, "%zu disagreements (printed above)", bad);
    oracle_deinit(&o);
    tn_devices_free(d);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(device_first_match_wins)
{
    static const struct tn_conf_device cls[] = {
        {"tv", "smart-?tv|\\bfoo\\b"},
        {"android", "android"},
        {"any", "foo|bar|android"},
        {"upper", "(?-i:ONLY)"},
    };
    struct tn_devices *d = build(cls, TN_ARRAY_LEN(cls));
    pcre2_match_data *md = new_md();

    ck_assert_uint_eq(tn_devices_count(d), 4);
    /* class order decides, not the position of the match in the UA */
    ck_assert_int_eq(classify_s(d, NULL, md, "Android 9; SMART-TV"), 0);
    ck_assert_int_eq(classify_s(d, NULL, md, "bar foo"), 0);
    ck_assert_int_eq(classify_s(d, NULL, md, "bar Android"), 1);
    ck_assert_int_eq(classify_s(d, NULL, md, "xbarx"), 2);
    ck_assert_int_eq(classify_s(d, NULL, md, "food"), 2);
    /* caseless by default, unless the pattern opts out */
    ck_assert_int_eq(classify_s(d, NULL, md, "ANDROID"), 1);
    ck_assert_int_eq(classify_s(d, NULL, md, "only"), -1);
    ck_assert_int_eq(classify_s(d, NULL, md, "ONLY"), 3);
    ck_assert_int_eq(classify_s(d, NULL, md, "nothing here"), -1);
    /* counted, not NUL-terminated: "bar" lies past len */
    ck_assert_int_eq(tn_devices_classify(d, NULL, md, "xx bar", 3), -1);
    ck_assert_int_eq(tn_devices_classify(d, NULL, md, "xx bar", 6), 2);
    /* a NUL byte inside the header value does not end it */
    ck_assert_int_eq(tn_devices_classify(d, NULL, md, "x\0android", 9), 1);
    tn_devices_free(d);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(device_bad_regex_names_class)
{
    static const struct tn_conf_device cls[] = {
        {"ok", "fine"},
        {"smart-tv", "(unclosed"},
        {"phone", "[z-a]"},
    };
    char *err = NULL;
    struct tn_devices *d = tn_devices_new(cls, TN_ARRAY_LEN(cls), &err);

    ck_assert_ptr_null(d);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "class smart-tv: bad regex \"(unclosed\" at offset 9: ") == err, "%s",
                  err);
    ck_assert_msg(strstr(err, "\nclass phone: bad regex \"[z-a]\" at offset 3: "), "%s", err);
    ck_assert_msg(strstr(err, "range out of order"), "%s", err);
    ck_assert_ptr_eq(strchr(err, '\0') - 1, strrchr(err, '\n'));
    free(err);

    /* no err pointer: still NULL, nothing leaks */
    ck_assert_ptr_null(tn_devices_new(cls, TN_ARRAY_LEN(cls), NULL));
}
END_TEST

START_TEST(device_empty_or_absent_ua)
{
    static const struct tn_conf_device cls[] = {{"all", ""}, {"x", "x"}};
    struct tn_devices *d = build(cls, TN_ARRAY_LEN(cls));
    struct tn_device_cache *c = tn_device_cache_new(8);
    pcre2_match_data *md = new_md();
    uint64_t hits, misses;

    /* the empty pattern matches any UA, but there is no UA */
    ck_assert_int_eq(tn_devices_classify(d, NULL, md, NULL, 0), -1);
    ck_assert_int_eq(tn_devices_classify(d, NULL, md, "", 0), -1);
    ck_assert_int_eq(tn_devices_classify(d, c, md, NULL, 0), -1);
    ck_assert_int_eq(tn_devices_classify(d, c, md, "x", 0), -1);
    ck_assert_int_eq(tn_devices_classify(d, c, md, "x", 1), 0);
    ck_assert_int_eq(tn_devices_classify(NULL, c, md, "x", 1), -1);
    tn_device_cache_stats(c, &hits, &misses);
    ck_assert_uint_eq(hits + misses, 1);

    /* an empty catalog classifies nothing */
    tn_devices_free(d);
    d = build(NULL, 0);
    ck_assert_uint_eq(tn_devices_count(d), 0);
    ck_assert_int_eq(classify_s(d, c, md, "Mozilla/5.0"), -1);
    tn_devices_free(d);
    tn_devices_free(NULL);
    tn_device_cache_free(c);
    tn_device_cache_free(NULL);
    pcre2_match_data_free(md);
}
END_TEST

START_TEST(device_cache_sizes)
{
    struct tn_device_cache *c;

    ck_assert_ptr_null(tn_device_cache_new(0));
    ck_assert_ptr_null(tn_device_cache_new((1u << 24) + 1));
    c = tn_device_cache_new(1);
    ck_assert_ptr_nonnull(c);
    tn_device_cache_free(c);
    c = tn_device_cache_new(1000); /* rounded up to 1024 */
    ck_assert_ptr_nonnull(c);
    tn_device_cache_clear(c);
    tn_device_cache_free(c);
}
END_TEST

/* Classifies the corpus twice through cache and compares with no cache. */
static void corpus_through(const struct tn_devices *d, struct tn_device_cache *c,
                           pcre2_match_data *md, const int *want)
{
    size_t i, round;

    for (round = 0; round < 2; round++) {
        for (i = 0; i < ncases; i++) {
            int got = tn_devices_classify(d, c, md, cases[i].ua, cases[i].len);

            ck_assert_msg(got == want[i], "round %zu line %d: cache says %s, regexes %s: %s", round,
                          cases[i].line, name_of(d, got), name_of(d, want[i]), cases[i].ua);
        }
    }
}

START_TEST(device_cache_agrees)
{
    struct tn_devices *d;
    struct tn_device_cache *tiny = tn_device_cache_new(4), *big = tn_device_cache_new(4096);
    pcre2_match_data *md = new_md();
    int want[MAX_UA];
    uint64_t hits, misses;
    size_t i;

    load_corpus();
    d = load_default();
    for (i = 0; i < ncases; i++)
        want[i] = tn_devices_classify(d, NULL, md, cases[i].ua, cases[i].len);

    corpus_through(d, tiny, md, want); /* 4 slots: every slot is fought over */
    tn_device_cache_stats(tiny, &hits, &misses);
    ck_assert_uint_eq(hits + misses, 2 * ncases);

    corpus_through(d, big, md, want);
    tn_device_cache_stats(big, &hits, &misses);
    ck_assert_uint_eq(hits + misses, 2 * ncases);
    ck_assert_uint_ge(hits, ncases / 2); /* the second round mostly hits */

    /* a UA and a prefix of it are different keys */
    ck_assert_int_eq(tn_devices_classify(d, big, md, "curl/8.5.0 (iPad)", 17), 0);
    ck_assert_int_eq(tn_devices_classify(d, big, md, "curl/8.5.0 (iPad)", 4), -1);
    ck_assert_int_eq(tn_devices_classify(d, big, md, "(iPad)", 6), tn_devices_find(d, "tablet"));

    tn_devices_free(d);
    tn_device_cache_free(tiny);
    tn_device_cache_free(big);
    pcre2_match_data_free(md);
    free_corpus();
}
END_TEST

START_TEST(device_cache_follows_catalog)
{
    static const struct tn_conf_device a[] = {{"tv", "tv"}, {"other", "."}};
    static const struct tn_conf_device b[] = {{"other", "."}, {"tv", "tv"}};
    struct tn_devices *da = build(a, 2), *db = build(b, 2);
    struct tn_device_cache *c = tn_device_cache_new(64);
    pcre2_match_data *md = new_md();

    ck_assert_int_eq(classify_s(da, c, md, "smart tv"), 0);
    ck_assert_int_eq(classify_s(da, c, md, "smart tv"), 0);
    /* a reload hands the worker a new catalog: no stale answer */
    ck_assert_int_eq(classify_s(db, c, md, "smart tv"), 0);
    ck_assert_str_eq(tn_devices_name(db, 0), "other");
    ck_assert_int_eq(classify_s(da, c, md, "smart tv"), 0);
    ck_assert_str_eq(tn_devices_name(da, 0), "tv");
    ck_assert_int_eq(classify_s(da, c, md, "radio"), 1);
    ck_assert_int_eq(classify_s(db, c, md, "radio"), 0);
    tn_device_cache_clear(c);
    ck_assert_int_eq(classify_s(db, c, md, "radio"), 0);
    tn_devices_free(da);
    tn_devices_free(db);
    tn_device_cache_free(c);
    pcre2_match_data_free(md);
}
END_TEST

static size_t gcd(size_t a, size_t b)
{
    while (b) {
        size_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

struct worker {
    pthread_t tid;
    const struct tn_devices *d;
    const int *want;
    size_t seed, stride; /* stride: coprime with ncases, so every line is visited */
    size_t wrong, done;
};

/* One worker: its own match data and cache, the corpus 200 times in its
 * own order. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct tn_device_cache *c = tn_device_cache_new(64);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    size_t r, i;

    if (!c || !md) {
        w->wrong = (size_t)-1;
        goto out;
    }
    for (r = 0; r < 200; r++) {
        for (i = 0; i < ncases; i++) {
            size_t k = (i * w->stride + w->seed + r) % ncases;

            w->wrong += tn_devices_classify(w->d, c, md, cases[k].ua, cases[k].len) != w->want[k];
            w->done++;
        }
    }
out:
    tn_device_cache_free(c);
    pcre2_match_data_free(md);
    return NULL;
}

START_TEST(device_per_thread_use)
{
    struct worker w[NTHREADS];
    struct tn_devices *d;
    pcre2_match_data *md = new_md();
    int want[MAX_UA];
    size_t i, k;

    load_corpus();
    d = load_default();
    for (i = 0; i < ncases; i++)
        want[i] = tn_devices_classify(d, NULL, md, cases[i].ua, cases[i].len);
    for (i = 0; i < NTHREADS; i++) {
        for (k = 7 + i; gcd(k, ncases) != 1; k++)
            ;
        w[i] = (struct worker){.d = d, .want = want, .seed = i * 31, .stride = k};
        ck_assert_int_eq(pthread_create(&w[i].tid, NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_join(w[i].tid, NULL), 0);
        ck_assert_uint_eq(w[i].wrong, 0);
        ck_assert_uint_eq(w[i].done, 200 * ncases);
    }
    tn_devices_free(d);
    pcre2_match_data_free(md);
    free_corpus();
}
END_TEST

/* ns per classification of the corpus lines of class kind (NULL: all),
 * through cache c (NULL: none), reps times over; the best of 5 rounds, as
 * other work on the machine only ever adds time. */
static double bench(const struct tn_devices *d, struct tn_device_cache *c, pcre2_match_data *md,
                    const char *kind, size_t reps)
{
    volatile int sink = 0;
    double best = 0;
    size_t round, r, i, n;

    for (round = 0; round < 5; round++) {
        double t0 = now_ns(), t;

        for (r = n = 0; r < reps; r++)
            for (i = 0; i < ncases; i++)
                if (!kind || !strcmp(cases[i].want, kind)) {
                    sink += tn_devices_classify(d, c, md, cases[i].ua, cases[i].len);
                    n++;
                }
        t = n ? (now_ns() - t0) / (double)n : 0;
        if (!round || t < best)
            best = t;
    }
    (void)sink;
    return best;
}

/* Not an assertion: prints ns per classification, on a cache miss (no
 * cache: the prefilter and the regexes), overall and by class, and on a
 * cache hit. */
START_TEST(device_speed)
{
    static const char *const kinds[] = {"bot",   "smart-tv", "console", "tablet",
                                        "phone", "desktop",  "none"};
    struct tn_devices *d;
    struct tn_device_cache *c = tn_device_cache_new(1u << 16);
    pcre2_match_data *md = new_md();
    double miss, hit;
    uint64_t hits, misses;
    size_t k;

    load_corpus();
    d = load_default();
    (void)bench(d, NULL, md, NULL, 1); /* warm up: JIT code and caches */
    miss = bench(d, NULL, md, NULL, 200);
    (void)bench(d, c, md, NULL, 1); /* fill the cache */
    hit = bench(d, c, md, NULL, 4000);
    tn_device_cache_stats(c, &hits, &misses);
    printf("device: %zu User-Agents, miss %.0f ns/classify, hit %.1f ns/classify (hit rate "
           "%.4f)\ndevice: miss by class:",
           ncases, miss, hit, (double)hits / (double)(hits + misses));
    for (k = 0; k < TN_ARRAY_LEN(kinds); k++)
        printf(" %s %.0f", kinds[k], bench(d, NULL, md, kinds[k], 200));
    printf(" ns\n");
    fflush(stdout);
    tn_devices_free(d);
    tn_device_cache_free(c);
    pcre2_match_data_free(md);
    free_corpus();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("device");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, device_corpus_classifies);
    tcase_add_test(tc, device_default_catalog_classes);
    tcase_add_test(tc, device_default_agrees_with_plain_pcre2);
    tcase_add_test(tc, device_tricky_patterns_agree_with_plain_pcre2);
    tcase_add_test(tc, device_many_literals_agree_with_plain_pcre2);
    tcase_add_test(tc, device_first_match_wins);
    tcase_add_test(tc, device_bad_regex_names_class);
    tcase_add_test(tc, device_empty_or_absent_ua);
    tcase_add_test(tc, device_cache_sizes);
    tcase_add_test(tc, device_cache_agrees);
    tcase_add_test(tc, device_cache_follows_catalog);
    tcase_add_test(tc, device_per_thread_use);
    tcase_add_test(tc, device_speed);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
