/* The device catalog (turnout/device.h): one PCRE2 pattern per class,
 * compiled caseless with JIT; a User-Agent gets the first class whose
 * pattern matches anywhere in it. In front of the patterns sits an
 * optional per-worker cache, direct-mapped on XXH3-64 of the whole
 * User-Agent, so a repeated User-Agent costs one hash and one compare. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <xxhash.h>

#include "turnout/common.h"
#include "turnout/device.h"

#define MAX_CACHE (1u << 24) /* entries: 16 MiB of cache per worker is plenty */
#define ERR_MAX 4096         /* one error line, pattern quoted in full up to this */

struct dev_class {
    char *name;
    pcre2_code *re;
};

struct tn_devices {
    struct dev_class *cls;
    size_t n;
    uint64_t gen; /* unique per catalog: a cache filled from another is stale */
};

/* One cache slot. len 0 marks a free slot: an empty User-Agent is never
 * cached (it classifies as -1 without any lookup). */
struct cache_ent {
    uint64_t hash;
    uint32_t len;
    int32_t cls;
};

struct tn_device_cache {
    struct cache_ent *ent;
    size_t mask;  /* entries - 1 */
    uint64_t gen; /* the catalog the entries came from; 0: none yet */
    uint64_t hits, misses;
};

static atomic_uint_fast64_t next_gen = 1;

/* ---- helpers ---- */

/* Appends one printf-formatted line to the malloc'd text *buf. */
__attribute__((format(printf, 2, 3))) static void add_line(char **buf, const char *fmt, ...)
{
    char line[ERR_MAX];
    size_t old = *buf ? strlen(*buf) : 0, len;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    len = strlen(line);
    *buf = tn_xrealloc(*buf, old + len + 2);
    memcpy(*buf + old, line, len);
    (*buf)[old + len] = '\n';
    (*buf)[old + len + 1] = '\0';
}

/* Compiles one class pattern caseless with JIT; NULL after adding an error
 * line to *err. A JIT failure (no JIT in this PCRE2, no executable memory)
 * is not fatal: pcre2_match() then interprets the pattern. */
static pcre2_code *compile_class(const struct tn_conf_device *c, char **err)
{
    PCRE2_UCHAR msg[256];
    PCRE2_SIZE off = 0;
    pcre2_code *re;
    int rc;

    if (!c->regex) {
        add_line(err, "class %s: no regex", c->name);
        return NULL;
    }
    re = pcre2_compile((PCRE2_SPTR)c->regex, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &rc, &off,
                       NULL);
    if (!re) {
        if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", rc);
        add_line(err, "class %s: bad regex \"%s\" at offset %zu: %s", c->name, c->regex,
                 (size_t)off, (const char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

/* The first class of d whose pattern matches ua, or -1. A match error
 * (match limit, bad UTF in a (*UTF) pattern) counts as no match. */
static int match_classes(const struct tn_devices *d, pcre2_match_data *md, const char *ua,
                         size_t len)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        if (pcre2_match(d->cls[i].re, (PCRE2_SPTR)ua, len, 0, 0, md, NULL) >= 0)
            return (int)i;
    }
    return -1;
}

/* ---- public ---- */

struct tn_devices *tn_devices_new(const struct tn_conf_device *classes, size_t n, char **err)
{
    struct tn_devices *d = tn_xcalloc(1, sizeof(*d));
    char *why = NULL;
    size_t i;

    if (err)
        *err = NULL;
    TN_BUG_ON(n > INT32_MAX);
    d->cls = n ? tn_xcalloc(n, sizeof(*d->cls)) : NULL;
    d->gen = atomic_fetch_add(&next_gen, 1);
    for (i = 0; i < n; i++) {
        if (!classes[i].name || !classes[i].name[0]) {
            add_line(&why, "class #%zu: no name", i + 1);
            continue;
        }
        if (tn_devices_find(d, classes[i].name) >= 0) {
            add_line(&why, "class %s: duplicate class", classes[i].name);
            continue;
        }
        d->cls[d->n].re = compile_class(&classes[i], &why);
        if (d->cls[d->n].re)
            d->cls[d->n++].name = tn_xstrdup(classes[i].name);
    }
    if (why) {
        tn_devices_free(d);
        if (err)
            *err = why;
        else
            free(why);
        return NULL;
    }
    return d;
}

void tn_devices_free(struct tn_devices *d)
{
    size_t i;

    if (!d)
        return;
    for (i = 0; i < d->n; i++) {
        free(d->cls[i].name);
        pcre2_code_free(d->cls[i].re);
    }
    free(d->cls);
    free(d);
}

size_t tn_devices_count(const struct tn_devices *d)
{
    return d ? d->n : 0;
}

const char *tn_devices_name(const struct tn_devices *d, size_t i)
{
    return d && i < d->n ? d->cls[i].name : NULL;
}

int tn_devices_find(const struct tn_devices *d, const char *name)
{
    size_t i;

    if (!d || !name)
        return -1;
    for (i = 0; i < d->n; i++) {
        if (!strcmp(d->cls[i].name, name))
            return (int)i;
    }
    return -1;
}

struct tn_device_cache *tn_device_cache_new(size_t entries)
{
    struct tn_device_cache *c;
    size_t n = 1;

    if (!entries || entries > MAX_CACHE)
        return NULL;
    while (n < entries)
        n <<= 1;
    c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ent = calloc(n, sizeof(*c->ent));
    if (!c->ent) {
        free(c);
        return NULL;
    }
    c->mask = n - 1;
    return c;
}

void tn_device_cache_free(struct tn_device_cache *c)
{
    if (!c)
        return;
    free(c->ent);
    free(c);
}

int tn_devices_classify(const struct tn_devices *d, struct tn_device_cache *cache,
                        struct pcre2_real_match_data_8 *md, const char *ua, size_t len)
{
    struct cache_ent *e;
    uint64_t h;
    int cls;

    if (!d || !ua || !len || !d->n)
        return -1;
    TN_BUG_ON(!md);
    if (!cache || len > UINT32_MAX)
        return match_classes(d, md, ua, len);
    if (cache->gen != d->gen) {
        tn_device_cache_clear(cache);
        cache->gen = d->gen;
    }
    h = XXH3_64bits(ua, len);
    e = &cache->ent[h & cache->mask];
    if (e->hash == h && e->len == (uint32_t)len) {
        cache->hits++;
        return e->cls;
    }
    cache->misses++;
    cls = match_classes(d, md, ua, len);
    e->hash = h;
    e->len = (uint32_t)len;
    e->cls = cls;
    return cls;
}

void tn_device_cache_clear(struct tn_device_cache *c)
{
    if (!c)
        return;
    memset(c->ent, 0, (c->mask + 1) * sizeof(*c->ent));
    c->gen = 0;
}

void tn_device_cache_stats(const struct tn_device_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = c ? c->hits : 0;
    *misses = c ? c->misses : 0;
}
