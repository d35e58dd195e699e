/* The device catalog (turnout/device.h): one PCRE2 pattern per class,
 * compiled caseless with JIT; a User-Agent gets the first class whose
 * pattern matches anywhere in it. Speed comes from three layers, none of
 * which changes an answer:
 *  - a per-worker cache, direct-mapped on XXH3-64 of the whole User-Agent;
 *  - units: a class pattern that is a plain alternation is run as one
 *    small regex per top-level alternative (first unit to match decides),
 *    so PCRE2 searches for one literal instead of trying every
 *    alternative at every position;
 *  - a literal prefilter: the literal each alternative must start with
 *    (when the pattern syntax makes that certain) gives up to four of its
 *    byte pairs; one pass over the User-Agent notes which pairs occur, and
 *    a unit missing one of its literal's pairs cannot match and is skipped.
 * Anything the analysis does not understand runs unfiltered and whole. */
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

#define MAX_CACHE (1u << 24) /* entries: 256 MiB of cache per worker is more than enough */
#define ERR_MAX 4096         /* one error line */
#define LIT_MAX 32           /* literal bytes kept; a truncated literal is still required */
#define LIT_PAIRS 4          /* pairs checked per literal: its rarest ones */
#define MAX_SLOTS 1024       /* distinct pairs tracked (one byte each per classification) */
#define MAX_DEPTH 8          /* groups entered looking for a literal */
#define NPAIRS (1u << 14)    /* byte pairs, each byte folded to 7 bits */
#define MAX_UNIT_WORDS 64    /* candidate units as a bitset on the stack: up to 4096 units */

/* A literal an alternative's every match starts with. */
struct lit {
    uint32_t pair0; /* its pair slots: d->pairs[pair0 .. pair0 + npairs) */
    uint32_t npairs;
};

/* One regex run in order: a whole class pattern, or one of its top-level
 * alternatives. nlits 0: no literal known, always run. */
struct unit {
    pcre2_code *re;
    uint32_t cls;
    uint32_t lit0, nlits; /* d->lits[lit0 .. lit0 + nlits): any one passing lets it run */
    int jit;              /* JIT-compiled and not UTF: pcre2_jit_match is safe */
};

struct tn_devices {
    char **names;
    size_t n;
    struct unit *units;
    uint16_t *keys; /* per unit: one literal's rarest pair slot, a quick reject; else 0 */
    size_t nunits;
    uint32_t *by_key0; /* units keyed on slot s: by_key[by_key0[s] .. by_key0[s + 1]) */
    uint32_t *by_key;
    uint64_t *always; /* units without a key, as a bitset */
    size_t nwords;    /* words of that bitset; 0: too many units, walk them all */
    struct lit *lits;
    size_t nlits;
    uint16_t *pairs; /* slot numbers, 1..nslots */
    size_t npairs;
    uint32_t nslots;       /* 0: no prefilter pass at all */
    uint64_t gen;          /* unique per catalog: a cache filled from another is stale */
    uint16_t slot[NPAIRS]; /* pair of folded bytes -> slot, 0: not tracked */
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

/* Literals found in one alternative while building. */
struct tmp_lit {
    unsigned char b[LIT_MAX];
    size_t n;
};

struct lit_list {
    struct tmp_lit *v;
    size_t n, cap;
};

/* Text of typical browser User-Agents: pairs common here make poor filters. */
static const char common_ua[] =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0 "
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Safari/605.1.15 "
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1 "
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36 "
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";

static atomic_uint_fast64_t next_gen = 1;

/* ---- helpers: errors, byte codes ---- */

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

/* Folds a byte to 7 bits: ASCII letters lose their case (what
 * PCRE2_CASELESS folds without UTF), other bytes may share a value with
 * another. Sharing only makes the filter let more through. Never 0, so the
 * pair before the first byte is never a literal's. */
static unsigned fold(unsigned char c)
{
    return (c | 0x20u) & 0x7fu;
}

static unsigned pair_of(unsigned char a, unsigned char b)
{
    return fold(a) << 7 | fold(b);
}

/* ---- helpers: pattern syntax (only what the analysis needs) ---- */

static int has(const char *re, const char *what)
{
    return strstr(re, what) != NULL;
}

/* 1 when the pattern uses syntax the analysis does not follow: quoting,
 * verbs and start-of-pattern settings, comments, control escapes, POSIX
 * classes, extended mode. Such a pattern runs whole and unfiltered. */
static int opaque(const char *re)
{
    const char *p;

    if (has(re, "\\Q") || has(re, "(*") || has(re, "(?#") || has(re, "\\c") || has(re, "[:"))
        return 1;
    for (p = re; (p = strstr(p, "(?")) != NULL; p += 2) {
        const char *q = p + 2;

        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '^' || *q == '-') {
            if (*q == 'x')
                return 1;
            q++;
        }
    }
    return 0;
}

/* 1 when alternatives may refer to each other (back references,
 * recursion, subroutine calls, conditions): the pattern is not split. */
static int cross_refs(const char *re)
{
    static const char *const refs[] = {"\\g", "\\k", "(?P=", "(?P>", "(?&", "(?R", "(?(", "(?+"};
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(refs); i++)
        if (has(re, refs[i]))
            return 1;
    for (; *re; re++) {
        if (re[0] == '\\' && re[1] >= '0' && re[1] <= '9')
            return 1;
        if (re[0] == '(' && re[1] == '?' &&
            ((re[2] >= '0' && re[2] <= '9') || (re[2] == '-' && re[3] >= '0' && re[3] <= '9')))
            return 1;
        if (re[0] == '\\' && re[1])
            re++;
    }
    return 0;
}

/* Past one item: an escape, a character class, a balanced group or one
 * byte. NULL on syntax the analysis cannot follow. */
static const char *skip_item(const char *p, const char *end)
{
    const char *q;

    if (*p == '\\')
        return p + 1 < end ? p + 2 : NULL;
    if (*p == '[') {
        q = p + 1;
        if (q < end && *q == '^')
            q++;
        if (q < end && *q == ']')
            q++;
        while (q < end && *q != ']')
            q += *q == '\\' ? 2 : 1;
        return q < end ? q + 1 : NULL;
    }
    if (*p == '(') {
        for (q = p + 1; q && q < end && *q != ')';)
            q = skip_item(q, end);
        return q && q < end ? q + 1 : NULL;
    }
    return p + 1;
}

/* Length of an option setting "(?i)", "(?-i)", "(?^)" at p, else 0. */
static size_t option_item(const char *p, const char *end)
{
    const char *q = p + 2;

    if (end - p < 3 || p[0] != '(' || p[1] != '?')
        return 0;
    while (q < end &&
           ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '^' || *q == '-'))
        q++;
    return q < end && *q == ')' && q > p + 2 ? (size_t)(q + 1 - p) : 0;
}

static int is_quant(char c)
{
    return c == '?' || c == '*' || c == '+' || c == '{';
}

static int is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Where the inside of the group at p starts, or NULL for a group kind that
 * is not a plain (capturing, named, atomic, option or branch-reset) group. */
static const char *group_inside(const char *p, const char *end)
{
    const char *q;

    if (p[1] != '?')
        return p + 2 <= end ? p + 1 : NULL;
    if (p + 2 >= end)
        return NULL;
    switch (p[2]) {
    case ':':
    case '>':
    case '|':
        return p + 3;
    case '<':
    case 'P':
    case '\'':
        q = p + 3 + (p[2] == 'P');
        if (p[2] == 'P' && (q > end || q[-1] != '<'))
            return NULL;
        while (q < end && (is_alnum((unsigned char)*q) || *q == '_'))
            q++;
        return q < end && (*q == '>' || *q == '\'') ? q + 1 : NULL;
    }
    for (q = p + 2; q < end && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || *q == '^' ||
                                *q == '-');
         q++)
        ;
    return q < end && *q == ':' ? q + 1 : NULL;
}

static int alts_literals(struct lit_list *out, const char *p, const char *end, int depth);

/* The literal every match of the alternative p..end starts with, appended
 * to out (several when it opens with a group of alternatives). TN_ERR when
 * no literal of at least two bytes is certain. */
static int alt_literals(struct lit_list *out, const char *p, const char *end, int depth)
{
    struct tmp_lit lit = {.n = 0};

    while (p < end) {
        unsigned char c = (unsigned char)*p;
        const char *q;
        size_t len = 1;

        if (!lit.n && c == '^') { /* zero-width openers */
            p++;
            continue;
        }
        if (!lit.n && c == '\\' && p + 1 < end && p[1] && strchr("bBAG", p[1])) {
            p += 2;
            continue;
        }
        if (!lit.n && c == '(') {
            size_t opt = option_item(p, end);
            const char *in;

            if (!(q = skip_item(p, end)))
                return TN_ERR;
            if (opt || (p[1] == '?' && (p[2] == '=' || p[2] == '!')) ||
                (p[1] == '?' && p[2] == '<' && (p[3] == '=' || p[3] == '!'))) {
                p = q; /* an option setting or a lookaround consumes nothing */
                continue;
            }
            if (depth >= MAX_DEPTH || (q < end && is_quant(*q)) || !(in = group_inside(p, end)))
                return TN_ERR;
            return alts_literals(out, in, q - 1, depth + 1);
        }
        if (c == '\\') {
            if (p + 1 >= end || is_alnum((unsigned char)p[1]) || (unsigned char)p[1] >= 0x80)
                break;
            c = (unsigned char)p[1];
            len = 2;
        } else if (strchr("^$.[|()?*+{", c)) {
            break;
        }
        q = p + len;
        if (q < end && is_quant(*q)) {
            if (*q == '+' && lit.n < LIT_MAX)
                lit.b[lit.n++] = c; /* once at least */
            break;
        }
        if (lit.n < LIT_MAX)
            lit.b[lit.n++] = c;
        p = q;
    }
    if (lit.n < 2)
        return TN_ERR;
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 8;
        out->v = tn_xrealloc(out->v, out->cap * sizeof(*out->v));
    }
    out->v[out->n++] = lit;
    return TN_OK;
}

/* Calls alt_literals on every top-level alternative of p..end. */
static int alts_literals(struct lit_list *out, const char *p, const char *end, int depth)
{
    const char *start = p;

    while (p <= end) {
        if (p == end || *p == '|') {
            if (alt_literals(out, start, p, depth) != TN_OK)
                return TN_ERR;
            start = ++p;
            continue;
        }
        if (!(p = skip_item(p, end)))
            return TN_ERR;
    }
    return TN_OK;
}

/* The top-level alternatives of re as [start, end) pairs (malloc'd, *n of
 * them); *lead is the length of the option settings re opens with. NULL
 * when an option setting sits elsewhere at top level (it would reach into
 * the alternatives after it) or the syntax is not followed. */
static const char **split_alts(const char *re, size_t *n, size_t *lead)
{
    const char *end = re + strlen(re), *p = re, **v = NULL;
    size_t opt, cap = 0;

    *n = *lead = 0;
    while ((opt = option_item(re + *lead, end)) != 0)
        *lead += opt;
    p = re + *lead;
    v = tn_xmalloc(2 * (cap = 8) * sizeof(*v));
    v[0] = re;
    while (p <= end) {
        if (p == end || *p == '|') {
            v[2 * *n + 1] = p;
            if (++*n == cap)
                v = tn_xrealloc(v, 2 * (cap *= 2) * sizeof(*v));
            v[2 * *n] = p + 1;
            if (p++ == end)
                break;
            continue;
        }
        if (option_item(p, end) || !(p = skip_item(p, end))) {
            free(v);
            return NULL;
        }
    }
    return v;
}

/* ---- helpers: building ---- */

static pcre2_code *compile(const char *re, size_t len, int *jit, char *msg, size_t msgsize,
                           size_t *off)
{
    PCRE2_SIZE eoff = 0;
    uint32_t opts = 0;
    pcre2_code *code;
    int rc;

    code = pcre2_compile((PCRE2_SPTR)re, len, PCRE2_CASELESS, &rc, &eoff, NULL);
    if (!code) {
        if (pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, msgsize) < 0)
            snprintf(msg, msgsize, "error %d", rc);
        *off = (size_t)eoff;
        return NULL;
    }
    /* a JIT failure (no JIT in this PCRE2, no executable memory) is not
     * fatal: pcre2_match() then interprets the pattern */
    pcre2_pattern_info(code, PCRE2_INFO_ALLOPTIONS, &opts);
    *jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0 && !(opts & PCRE2_UTF);
    return code;
}

static void add_unit(struct tn_devices *d, size_t *cap, pcre2_code *re, int jit, size_t cls)
{
    if (d->nunits == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        d->units = tn_xrealloc(d->units, *cap * sizeof(*d->units));
        d->keys = tn_xrealloc(d->keys, *cap * sizeof(*d->keys));
    }
    d->keys[d->nunits] = 0;
    d->units[d->nunits++] = (struct unit){.re = re, .cls = (uint32_t)cls, .jit = jit};
}

/* Turns the literals of the last unit into its filter: up to LIT_PAIRS of
 * each literal's pairs, the rarest in common_ua first. When the slots run
 * out, the unit stays unfiltered. */
static void add_filter(struct tn_devices *d, const struct lit_list *l, const uint16_t *freq)
{
    struct unit *u = &d->units[d->nunits - 1];
    size_t i, j, k, lit0 = d->nlits, pair0 = d->npairs;

    d->lits = tn_xrealloc(d->lits, (d->nlits + l->n) * sizeof(*d->lits));
    for (i = 0; i < l->n; i++) {
        const struct tmp_lit *t = &l->v[i];
        unsigned pick[LIT_PAIRS];
        size_t npick = 0;

        for (k = 0; k < LIT_PAIRS && npick < t->n - 1; k++) {
            unsigned best = 0;
            int found = 0;

            for (j = 0; j + 1 < t->n; j++) {
                unsigned pr = pair_of(t->b[j], t->b[j + 1]);
                size_t m;

                for (m = 0; m < npick && pick[m] != pr; m++)
                    ;
                if (m == npick && (!found || freq[pr] < freq[best])) {
                    best = pr;
                    found = 1;
                }
            }
            if (!found)
                break;
            pick[npick++] = best;
        }
        d->pairs = tn_xrealloc(d->pairs, (d->npairs + npick) * sizeof(*d->pairs));
        d->lits[d->nlits++] = (struct lit){.pair0 = (uint32_t)d->npairs, .npairs = (uint32_t)npick};
        for (k = 0; k < npick; k++) {
            if (!d->slot[pick[k]]) {
                if (d->nslots + 1 >= MAX_SLOTS)
                    goto unfiltered;
                d->slot[pick[k]] = (uint16_t)++d->nslots;
            }
            d->pairs[d->npairs++] = d->slot[pick[k]];
        }
    }
    u->lit0 = (uint32_t)lit0;
    u->nlits = (uint32_t)l->n;
    d->keys[d->nunits - 1] = l->n == 1 && d->lits[lit0].npairs ? d->pairs[d->lits[lit0].pair0] : 0;
    return;
unfiltered:
    d->nlits = lit0;
    d->npairs = pair0;
}

/* Adds class cls as units: one per top-level alternative when the pattern
 * can be split, else one for the whole (whole is already compiled). */
static void add_class(struct tn_devices *d, size_t *cap, size_t cls, const char *re,
                      pcre2_code *whole, int whole_jit, const uint16_t *freq)
{
    struct lit_list l = {0};
    const char **alts = NULL;
    pcre2_code **res = NULL;
    int *jits = NULL, all_lits = 1;
    size_t i, nalts = 0, lead = 0, off;
    char msg[8], *text = NULL;

    if (opaque(re))
        goto whole;
    alts = split_alts(re, &nalts, &lead);
    if (alts && nalts > 1 && !cross_refs(re)) {
        res = tn_xcalloc(nalts, sizeof(*res));
        jits = tn_xcalloc(nalts, sizeof(*jits));
        text = tn_xmalloc(strlen(re) + lead + 1);
        for (i = 0; i < nalts; i++) {
            size_t alen = (size_t)(alts[2 * i + 1] - alts[2 * i]), pre = i ? lead : 0;

            memcpy(text, re, pre); /* the opening option settings reach every alternative */
            memcpy(text + pre, alts[2 * i], alen);
            res[i] = compile(text, pre + alen, &jits[i], msg, sizeof(msg), &off);
            if (!res[i])
                break;
        }
        if (i == nalts) {
            pcre2_code_free(whole);
            for (i = 0; i < nalts; i++) {
                add_unit(d, cap, res[i], jits[i], cls);
                l.n = 0;
                if (alt_literals(&l, alts[2 * i], alts[2 * i + 1], 0) == TN_OK)
                    add_filter(d, &l, freq);
            }
            goto out;
        }
        while (i-- > 0)
            pcre2_code_free(res[i]);
    }
    if (alts) {
        for (i = 0; i < nalts && all_lits; i++)
            all_lits = alt_literals(&l, alts[2 * i], alts[2 * i + 1], 0) == TN_OK;
    }
whole:
    add_unit(d, cap, whole, whole_jit, cls);
    if (alts && all_lits)
        add_filter(d, &l, freq);
out:
    free(l.v);
    free(alts);
    free(res);
    free(jits);
    free(text);
}

/* Indexes the units by key slot, for run_candidates. */
static void index_keys(struct tn_devices *d)
{
    size_t i, s;
    uint32_t *at;

    if (!d->nunits || d->nunits > MAX_UNIT_WORDS * 64)
        return;
    d->nwords = (d->nunits + 63) / 64;
    d->always = tn_xcalloc(d->nwords, sizeof(*d->always));
    d->by_key0 = tn_xcalloc((size_t)d->nslots + 2, sizeof(*d->by_key0));
    for (i = 0; i < d->nunits; i++) {
        if (d->keys[i])
            d->by_key0[d->keys[i] + 1]++;
        else
            d->always[i >> 6] |= 1ull << (i & 63);
    }
    for (s = 1; s <= (size_t)d->nslots + 1; s++)
        d->by_key0[s] += d->by_key0[s - 1];
    d->by_key = tn_xmalloc((d->by_key0[d->nslots + 1] + 1) * sizeof(*d->by_key));
    at = tn_xmalloc(((size_t)d->nslots + 1) * sizeof(*at));
    memcpy(at, d->by_key0, ((size_t)d->nslots + 1) * sizeof(*at));
    for (i = 0; i < d->nunits; i++) /* ascending: a slot's units stay in catalog order */
        if (d->keys[i])
            d->by_key[at[d->keys[i]]++] = (uint32_t)i;
    free(at);
}

/* ---- helpers: matching ---- */

static int unit_matches(const struct unit *u, pcre2_match_data *md, const char *ua, size_t len)
{
    if (u->jit)
        return pcre2_jit_match(u->re, (PCRE2_SPTR)ua, len, 0, 0, md, NULL) >= 0;
    return pcre2_match(u->re, (PCRE2_SPTR)ua, len, 0, 0, md, NULL) >= 0;
}

/* 1 when one of u's literals may occur in the User-Agent: all of its
 * chosen pairs were seen. */
static int unit_may_match(const struct tn_devices *d, const struct unit *u,
                          const unsigned char *seen)
{
    size_t i, k;

    for (i = 0; i < u->nlits; i++) {
        const struct lit *l = &d->lits[u->lit0 + i];

        for (k = 0; k < l->npairs && seen[d->pairs[l->pair0 + k]]; k++)
            ;
        if (k == l->npairs)
            return 1;
    }
    return !u->nlits;
}

/* Runs the candidate units in order: those without a key and those whose
 * key is among the nl slots seen. The first class to match, or -1. */
static int run_candidates(const struct tn_devices *d, pcre2_match_data *md, const char *ua,
                          size_t len, const unsigned char *seen, const uint16_t *list, size_t nl)
{
    uint64_t cand[MAX_UNIT_WORDS];
    size_t i, j, w;

    memcpy(cand, d->always, d->nwords * sizeof(cand[0]));
    for (i = 0; i < nl; i++)
        for (j = d->by_key0[list[i]]; j < d->by_key0[list[i] + 1]; j++)
            cand[d->by_key[j] >> 6] |= 1ull << (d->by_key[j] & 63);
    for (w = 0; w < d->nwords; w++) {
        for (; cand[w]; cand[w] &= cand[w] - 1) {
            const struct unit *u = &d->units[w * 64 + (size_t)__builtin_ctzll(cand[w])];

            if (unit_may_match(d, u, seen) && unit_matches(u, md, ua, len))
                return (int)u->cls;
        }
    }
    return -1;
}

/* The first class of d with a unit that matches ua, or -1. A match error
 * (match limit, bad UTF in a (*UTF) pattern) counts as no match. */
static int match_classes(const struct tn_devices *d, pcre2_match_data *md, const char *ua,
                         size_t len)
{
    unsigned char seen[MAX_SLOTS]; /* bytes, not bits: no read-modify-write chain */
    uint16_t list[MAX_SLOTS];      /* the slots seen, in order of appearance */
    const unsigned char *s = (const unsigned char *)ua;
    unsigned prev = 0, c, sl;
    size_t i, nl = 0;

    memset(seen, 0, (size_t)d->nslots + 1);
    seen[0] = 1; /* slot 0: pairs no literal uses */
    for (i = 0; d->nslots && i < len; i++) {
        c = fold(s[i]);
        sl = d->slot[prev << 7 | c];
        if (!seen[sl]) {
            seen[sl] = 1;
            list[nl++] = (uint16_t)sl;
        }
        prev = c;
    }
    if (d->nwords)
        return run_candidates(d, md, ua, len, seen, list, nl);
    for (i = 0; i < d->nunits; i++) {
        const struct unit *u;

        if (d->keys[i] && !seen[d->keys[i]])
            continue;
        u = &d->units[i];
        if (unit_may_match(d, u, seen) && unit_matches(u, md, ua, len))
            return (int)u->cls;
    }
    return -1;
}

/* ---- public ---- */

struct tn_devices *tn_devices_new(const struct tn_conf_device *classes, size_t n, char **err)
{
    struct tn_devices *d = tn_xcalloc(1, sizeof(*d));
    uint16_t *freq = tn_xcalloc(NPAIRS, sizeof(*freq));
    char *why = NULL, msg[256];
    size_t i, cap = 0, off;

    if (err)
        *err = NULL;
    TN_BUG_ON(n > INT32_MAX);
    d->names = n ? tn_xcalloc(n, sizeof(*d->names)) : NULL;
    d->gen = atomic_fetch_add(&next_gen, 1);
    for (i = 0; i + 1 < sizeof(common_ua) - 1; i++) {
        unsigned pr = pair_of((unsigned char)common_ua[i], (unsigned char)common_ua[i + 1]);

        if (freq[pr] < UINT16_MAX)
            freq[pr]++;
    }
    for (i = 0; i < n; i++) {
        const char *name = classes[i].name, *re = classes[i].regex;
        pcre2_code *whole;
        int jit;

        if (!name || !name[0]) {
            add_line(&why, "class #%zu: no name", i + 1);
            continue;
        }
        if (tn_devices_find(d, name) >= 0) {
            add_line(&why, "class %s: duplicate class", name);
            continue;
        }
        if (!re) {
            add_line(&why, "class %s: no regex", name);
            continue;
        }
        whole = compile(re, PCRE2_ZERO_TERMINATED, &jit, msg, sizeof(msg), &off);
        if (!whole) {
            add_line(&why, "class %s: bad regex \"%s\" at offset %zu: %s", name, re, off, msg);
            continue;
        }
        d->names[d->n] = tn_xstrdup(name);
        add_class(d, &cap, d->n++, re, whole, jit, freq);
    }
    free(freq);
    if (!why)
        index_keys(d);
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
    for (i = 0; i < d->n; i++)
        free(d->names[i]);
    for (i = 0; i < d->nunits; i++)
        pcre2_code_free(d->units[i].re);
    free(d->names);
    free(d->units);
    free(d->keys);
    free(d->by_key0);
    free(d->by_key);
    free(d->always);
    free(d->lits);
    free(d->pairs);
    free(d);
}

size_t tn_devices_count(const struct tn_devices *d)
{
    return d ? d->n : 0;
}

const char *tn_devices_name(const struct tn_devices *d, size_t i)
{
    return d && i < d->n ? d->names[i] : NULL;
}

int tn_devices_find(const struct tn_devices *d, const char *name)
{
    size_t i;

    if (!d || !name)
        return -1;
    for (i = 0; i < d->n; i++) {
        if (!strcmp(d->names[i], name))
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
