/* Generic libyaml document helpers for the configuration loader: errors
 * with file:line:column marks, scalar parsers (durations, sizes, percents,
 * addresses, booleans, integers, modes, CIDRs) and the key-table driven
 * mapping walker. Knows nothing about turnout's schema (that is conf.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <yaml.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/conf.h"

#define DESCRIBE_MAX 64 /* bytes of a scalar quoted back in a message */

/* ---- error collection ---- */

static void diag_append(struct tn_conf_ctx *cx, const char *s, size_t n)
{
    if (cx->diag_len + n + 1 > cx->diag_cap) {
        size_t cap = cx->diag_cap ? cx->diag_cap : 256;

        while (cx->diag_len + n + 1 > cap)
            cap *= 2;
        cx->diag = tn_xrealloc(cx->diag, cap);
        cx->diag_cap = cap;
    }
    memcpy(cx->diag + cx->diag_len, s, n);
    cx->diag_len += n;
    cx->diag[cx->diag_len] = '\0';
}

static void diag_vprintf(struct tn_conf_ctx *cx, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void diag_vprintf(struct tn_conf_ctx *cx, const char *fmt, va_list ap)
{
    char small[512];
    va_list aq;
    int n;

    va_copy(aq, ap);
    n = vsnprintf(small, sizeof(small), fmt, aq);
    va_end(aq);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(small)) {
        diag_append(cx, small, (size_t)n);
    } else {
        char *big = tn_xmalloc((size_t)n + 1);

        vsnprintf(big, (size_t)n + 1, fmt, ap);
        diag_append(cx, big, (size_t)n);
        free(big);
    }
}

static void diag_printf(struct tn_conf_ctx *cx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diag_printf(struct tn_conf_ctx *cx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    diag_vprintf(cx, fmt, ap);
    va_end(ap);
}

struct tn_conf_mark tn_conf_mark_of(const yaml_node_t *n)
{
    struct tn_conf_mark m = {1, 1};

    if (n) {
        m.line = (unsigned)n->start_mark.line + 1;
        m.col = (unsigned)n->start_mark.column + 1;
    }
    return m;
}

void tn_conf_err(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *fmt, ...)
{
    struct tn_conf_mark m = tn_conf_mark_of(n);
    va_list ap;

    if (cx->nvalues > TN_CONF_MAX_VALUES) { /* gave up: the rest would be noise */
        cx->nerrors++;
        return;
    }
    diag_printf(cx, "%s:%u:%u: ", cx->file, m.line, m.col);
    va_start(ap, fmt);
    diag_vprintf(cx, fmt, ap);
    va_end(ap);
    diag_append(cx, "\n", 1);
    cx->nerrors++;
}

void tn_conf_err_mark(struct tn_conf_ctx *cx, struct tn_conf_mark m, const char *fmt, ...)
{
    va_list ap;

    if (cx->nvalues > TN_CONF_MAX_VALUES) {
        cx->nerrors++;
        return;
    }
    diag_printf(cx, "%s:%u:%u: ", cx->file, m.line, m.col);
    va_start(ap, fmt);
    diag_vprintf(cx, fmt, ap);
    va_end(ap);
    diag_append(cx, "\n", 1);
    cx->nerrors++;
}

void tn_conf_parser_err(struct tn_conf_ctx *cx, const yaml_parser_t *p)
{
    yaml_mark_t m = p->error == YAML_READER_ERROR ? p->mark : p->problem_mark;
    const char *problem = p->problem ? p->problem : "invalid YAML";

    diag_printf(cx, "%s:%zu:%zu: %s", cx->file, m.line + 1, m.column + 1, problem);
    if (p->context)
        diag_printf(cx, " (%s at line %zu column %zu)", p->context, p->context_mark.line + 1,
                    p->context_mark.column + 1);
    diag_append(cx, "\n", 1);
    cx->nerrors++;
}

char *tn_conf_take_errors(struct tn_conf_ctx *cx)
{
    char *s = cx->diag;

    if (!s)
        s = tn_xstrdup("");
    cx->diag = NULL;
    cx->diag_len = cx->diag_cap = 0;
    return s;
}

/* ---- node access ---- */

yaml_node_t *tn_conf_node(struct tn_conf_ctx *cx, int index)
{
    return yaml_document_get_node(cx->doc, index);
}

size_t tn_conf_seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

yaml_node_t *tn_conf_seq_at(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i)
{
    return tn_conf_node(cx, n->data.sequence.items.start[i]);
}

size_t tn_conf_map_len(const yaml_node_t *n)
{
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
}

yaml_node_t *tn_conf_map_key(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i)
{
    return tn_conf_node(cx, n->data.mapping.pairs.start[i].key);
}

yaml_node_t *tn_conf_map_value(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i)
{
    return tn_conf_node(cx, n->data.mapping.pairs.start[i].value);
}

int tn_conf_is_null(const yaml_node_t *n)
{
    const char *v;

    if (!n)
        return 1;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    v = (const char *)n->data.scalar.value;
    return !strcmp(v, "") || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
           !strcmp(v, "NULL");
}

/* Copies s (n bytes) quoted and escaped into buf, truncated with "...". */
static const char *quote(const char *s, size_t n, char *buf, size_t size)
{
    size_t o = 0, i;

    buf[o++] = '"';
    for (i = 0; i < n && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= DESCRIBE_MAX) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

const char *tn_conf_describe(const yaml_node_t *n, char *buf, size_t size)
{
    if (tn_conf_is_null(n))
        snprintf(buf, size, "nothing");
    else if (n->type == YAML_MAPPING_NODE)
        snprintf(buf, size, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        snprintf(buf, size, "a list");
    else
        quote((const char *)n->data.scalar.value, n->data.scalar.length, buf, size);
    return buf;
}

int tn_conf_expect(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what)
{
    char got[DESCRIBE_MAX * 4 + 16];

    tn_conf_err(cx, n, "expected %s, got %s", what, tn_conf_describe(n, got, sizeof(got)));
    return TN_ERR;
}

const char *tn_conf_scalar(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what)
{
    if (!n || n->type != YAML_SCALAR_NODE) {
        tn_conf_expect(cx, n, what);
        return NULL;
    }
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
        tn_conf_err(cx, n, "expected %s without NUL bytes", what);
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

int tn_conf_want_map(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what)
{
    char buf[128];

    if (n && n->type == YAML_MAPPING_NODE)
        return TN_OK;
    snprintf(buf, sizeof(buf), "a mapping for %s", what);
    return tn_conf_expect(cx, n, buf);
}

int tn_conf_want_seq(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what)
{
    char buf[128];

    if (n && n->type == YAML_SEQUENCE_NODE)
        return TN_OK;
    snprintf(buf, sizeof(buf), "a list for %s", what);
    return tn_conf_expect(cx, n, buf);
}

/* ---- scalar parsers ---- */

/* Parses leading decimal digits into *v; returns the end, or NULL on no
 * digit or overflow of limit. */
static const char *parse_digits(const char *s, uint64_t limit, uint64_t *v)
{
    uint64_t x = 0;
    const char *p = s;

    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');

        if (x > (limit - d) / 10)
            return NULL;
        x = x * 10 + d;
        p++;
    }
    if (p == s)
        return NULL;
    *v = x;
    return p;
}

int tn_conf_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"", 1000},       {"ms", 1},          {"s", 1000},
                 {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000}};
    uint64_t v;
    const char *p = parse_digits(s, UINT64_MAX, &v);
    size_t i;

    if (!p)
        return TN_ERR;
    for (i = 0; i < TN_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].unit))
            continue;
        if (v > UINT64_MAX / units[i].ms)
            return TN_ERR;
        *ms = v * units[i].ms;
        return TN_OK;
    }
    return TN_ERR;
}

int tn_conf_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t v, mul = 1;
    const char *p = parse_digits(s, UINT64_MAX, &v);

    if (!p)
        return TN_ERR;
    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mul = 1024;
        break;
    case 'm':
    case 'M':
        mul = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        mul = 1024 * 1024 * 1024;
        break;
    default:
        return TN_ERR;
    }
    if (*p && p[1])
        return TN_ERR;
    if (v > UINT64_MAX / mul)
        return TN_ERR;
    *bytes = v * mul;
    return TN_OK;
}

int tn_conf_parse_percent(const char *s, uint32_t *x100)
{
    uint64_t whole, frac = 0;
    const char *p = parse_digits(s, 1000, &whole);

    if (!p)
        return TN_ERR;
    if (*p == '.') {
        const char *q = p + 1;

        if (*q < '0' || *q > '9')
            return TN_ERR;
        frac = (uint64_t)(*q++ - '0') * 10;
        if (*q >= '0' && *q <= '9')
            frac += (uint64_t)(*q++ - '0');
        p = q;
    }
    if (*p == '%')
        p++;
    if (*p)
        return TN_ERR;
    if (whole * 100 + frac > 10000)
        return TN_ERR;
    *x100 = (uint32_t)(whole * 100 + frac);
    return TN_OK;
}

int tn_conf_parse_addr(const char *s, struct tn_conf_addr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon, *end;
    uint64_t port;
    size_t hl;
    int v6 = s[0] == '[';

    if (v6) {
        end = strchr(s, ']');
        if (!end || end[1] != ':')
            return TN_ERR;
        colon = end + 1;
        s++;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return TN_ERR;
        end = colon;
    }
    hl = (size_t)(end - s);
    if (hl == 0 || hl >= sizeof(host))
        return TN_ERR;
    memcpy(host, s, hl);
    host[hl] = '\0';
    end = parse_digits(colon + 1, 65535, &port);
    if (!end || *end || port == 0 || colon[1] == '0')
        return TN_ERR;
    memset(&out->ss, 0, sizeof(out->ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->ss;

        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return TN_ERR;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        out->len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->ss;

        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return TN_ERR;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        out->len = sizeof(*a);
    }
    return TN_OK;
}

int tn_conf_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    size_t i, n = strlen(s);

    for (i = 0; i < 3; i++) {
        if (tn_strieq(s, n, yes[i])) {
            *out = 1;
            return TN_OK;
        }
        if (tn_strieq(s, n, no[i])) {
            *out = 0;
            return TN_OK;
        }
    }
    return TN_ERR;
}

int tn_conf_parse_mode(const char *s, unsigned *out)
{
    unsigned v = 0;
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i >= 4 || s[i] < '0' || s[i] > '7')
            return TN_ERR;
        v = v * 8 + (unsigned)(s[i] - '0');
    }
    if (i == 0 || v > 0777)
        return TN_ERR;
    *out = v;
    return TN_OK;
}

int tn_conf_parse_cidr(const char *s, struct tn_conf_cidr *out)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t hl = slash ? (size_t)(slash - s) : strlen(s);
    unsigned maxbits, i;
    uint64_t bits;

    if (hl == 0 || hl >= sizeof(host))
        return TN_ERR;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        maxbits = 128;
    } else {
        return TN_ERR;
    }
    bits = maxbits;
    if (slash) {
        const char *e = parse_digits(slash + 1, 128, &bits);

        if (!e || *e || bits > maxbits || (slash[1] == '0' && slash[2]))
            return TN_ERR;
    }
    for (i = (unsigned)bits; i < maxbits; i++)
        if (out->addr[i / 8] & (0x80u >> (i % 8)))
            return TN_ERR; /* host bits set: almost always a typo */
    out->bits = (unsigned)bits;
    return TN_OK;
}

const char *tn_conf_check_token(char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    size_t i;

    for (i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(extra, c)))
            return "an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
    }
    return i ? NULL : "an HTTP token (letters, digits and !#$%&'*+-.^_`|~)";
}

const char *tn_conf_check_name(char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];

        if (i >= 64 || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.'))
            return "a name of up to 64 letters, digits, '_', '-' or '.'";
    }
    return i ? NULL : "a name of up to 64 letters, digits, '_', '-' or '.'";
}

void tn_conf_strlist_free(struct tn_conf_strlist *l)
{
    size_t i;

    for (i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int tn_conf_count_value(struct tn_conf_ctx *cx, const yaml_node_t *n)
{
    if (++cx->nvalues < TN_CONF_MAX_VALUES)
        return TN_OK;
    if (cx->nvalues == TN_CONF_MAX_VALUES)
        tn_conf_err(cx, n,
                    "expected at most %lu values in a configuration (aliases count each "
                    "time they are used); giving up",
                    TN_CONF_MAX_VALUES);
    cx->nvalues = TN_CONF_MAX_VALUES + 1;
    return TN_ERR;
}

/* ---- typed value getters ---- */

int tn_conf_get_string(struct tn_conf_ctx *cx, yaml_node_t *n, tn_conf_check_fn *check, char **out)
{
    const char *s = tn_conf_scalar(cx, n, "a string");
    const char *why;
    char *copy;

    if (!s)
        return TN_ERR;
    if (!*s || tn_conf_is_null(n))
        return tn_conf_expect(cx, n, "a non-empty string");
    copy = tn_xstrdup(s);
    if (check && (why = check(copy)) != NULL) {
        free(copy);
        return tn_conf_expect(cx, n, why);
    }
    free(*out);
    *out = copy;
    return TN_OK;
}

int tn_conf_get_bool(struct tn_conf_ctx *cx, yaml_node_t *n, int *out)
{
    const char *s = tn_conf_scalar(cx, n, "a boolean (true/false, yes/no, on/off)");

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_bool(s, out) != TN_OK)
        return tn_conf_expect(cx, n, "a boolean (true/false, yes/no, on/off)");
    return TN_OK;
}

int tn_conf_get_u32(struct tn_conf_ctx *cx, yaml_node_t *n, uint32_t min, uint32_t max,
                    uint32_t *out)
{
    char what[80];
    const char *s, *e;
    uint64_t v;

    snprintf(what, sizeof(what), "an integer from %u to %u", (unsigned)min, (unsigned)max);
    s = tn_conf_scalar(cx, n, what);
    if (!s)
        return TN_ERR;
    e = parse_digits(s, UINT32_MAX, &v);
    if (!e || *e || v < min || v > max)
        return tn_conf_expect(cx, n, what);
    *out = (uint32_t)v;
    return TN_OK;
}

int tn_conf_get_regex(struct tn_conf_ctx *cx, yaml_node_t *n, char **out)
{
    const char *s = tn_conf_scalar(cx, n, "a regular expression");
    PCRE2_SIZE off;
    pcre2_code *re;
    int code;

    if (!s)
        return TN_ERR;
    if (tn_conf_is_null(n))
        return tn_conf_expect(cx, n, "a regular expression");
    re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        struct tn_conf_mark m = tn_conf_mark_of(n);
        char q[DESCRIBE_MAX * 4 + 16];

        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        /* the column of the offending character on a one-line scalar */
        m.col += (unsigned)off + (n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                                  n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE);
        tn_conf_err_mark(cx, m, "expected a valid regular expression, got %s: %s at offset %zu",
                         quote(s, strlen(s), q, sizeof(q)), (const char *)msg, (size_t)off);
        return TN_ERR;
    }
    pcre2_code_free(re);
    free(*out);
    *out = tn_xstrdup(s);
    return TN_OK;
}

static int get_duration(struct tn_conf_ctx *cx, yaml_node_t *n, uint32_t min, uint32_t *out)
{
    static const char what[] = "a duration like 500ms, 2s or 1m";
    const char *s = tn_conf_scalar(cx, n, what);
    char buf[64];
    uint64_t ms;

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_duration(s, &ms) != TN_OK)
        return tn_conf_expect(cx, n, what);
    if (ms > UINT32_MAX)
        return tn_conf_expect(cx, n, "a duration of at most 4294967295ms (about 49 days)");
    if (ms < min) {
        snprintf(buf, sizeof(buf), "a duration of at least %ums", (unsigned)min);
        return tn_conf_expect(cx, n, buf);
    }
    *out = (uint32_t)ms;
    return TN_OK;
}

static int get_size(struct tn_conf_ctx *cx, yaml_node_t *n, uint32_t min, size_t *out)
{
    static const char what[] = "a size like 512, 64k, 1m or 1g";
    const char *s = tn_conf_scalar(cx, n, what);
    char buf[64];
    uint64_t v;

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_size(s, &v) != TN_OK || v > SIZE_MAX)
        return tn_conf_expect(cx, n, what);
    if (v < min) {
        snprintf(buf, sizeof(buf), "a size of at least %u bytes", (unsigned)min);
        return tn_conf_expect(cx, n, buf);
    }
    *out = (size_t)v;
    return TN_OK;
}

static int get_percent(struct tn_conf_ctx *cx, yaml_node_t *n, uint32_t *out)
{
    static const char what[] = "a percent from 0 to 100 with at most 2 decimals like 25, 0.5 or "
                               "12.34%";
    const char *s = tn_conf_scalar(cx, n, what);

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_percent(s, out) != TN_OK)
        return tn_conf_expect(cx, n, what);
    return TN_OK;
}

static int get_addr(struct tn_conf_ctx *cx, yaml_node_t *n, struct tn_conf_addr *out)
{
    static const char what[] = "a numeric address like 127.0.0.1:8080 or [::1]:8080";
    const char *s = tn_conf_scalar(cx, n, what);

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_addr(s, out) != TN_OK)
        return tn_conf_expect(cx, n, what);
    free(out->text);
    out->text = tn_xstrdup(s);
    return TN_OK;
}

static int get_mode(struct tn_conf_ctx *cx, yaml_node_t *n, unsigned *out)
{
    static const char what[] = "an octal file mode like \"0600\"";
    const char *s = tn_conf_scalar(cx, n, what);

    if (!s)
        return TN_ERR;
    if (tn_conf_parse_mode(s, out) != TN_OK)
        return tn_conf_expect(cx, n, what);
    return TN_OK;
}

static int get_strlist(struct tn_conf_ctx *cx, yaml_node_t *n, tn_conf_check_fn *check,
                       struct tn_conf_strlist *out)
{
    struct tn_conf_strlist l = {NULL, 0};
    size_t i, len;
    int rc = TN_OK;

    if (n->type == YAML_SCALAR_NODE) {
        l.v = tn_xcalloc(1, sizeof(char *));
        if (tn_conf_get_string(cx, n, check, &l.v[0]) != TN_OK) {
            free(l.v);
            return TN_ERR;
        }
        l.n = 1;
    } else if (n->type == YAML_SEQUENCE_NODE && (len = tn_conf_seq_len(n)) > 0) {
        l.v = tn_xcalloc(len, sizeof(char *));
        for (i = 0; i < len; i++) {
            if (tn_conf_count_value(cx, n) != TN_OK) {
                rc = TN_ERR;
                break;
            }
            if (tn_conf_get_string(cx, tn_conf_seq_at(cx, n, i), check, &l.v[l.n]) == TN_OK)
                l.n++;
            else
                rc = TN_ERR;
        }
    } else {
        return tn_conf_expect(cx, n, "a string or a non-empty list of strings");
    }
    if (rc != TN_OK) {
        tn_conf_strlist_free(&l);
        return rc;
    }
    tn_conf_strlist_free(out);
    *out = l;
    return TN_OK;
}

int tn_conf_value(struct tn_conf_ctx *cx, yaml_node_t *n, const struct tn_conf_key *k, void *field)
{
    switch (k->type) {
    case TN_CONF_STRING:
        return tn_conf_get_string(cx, n, k->check, field);
    case TN_CONF_BOOL:
        return tn_conf_get_bool(cx, n, field);
    case TN_CONF_U32:
        return tn_conf_get_u32(cx, n, k->min, k->max, field);
    case TN_CONF_DURATION:
        return get_duration(cx, n, k->min, field);
    case TN_CONF_SIZE:
        return get_size(cx, n, k->min, field);
    case TN_CONF_PERCENT:
        return get_percent(cx, n, field);
    case TN_CONF_ADDR:
        return get_addr(cx, n, field);
    case TN_CONF_MODE:
        return get_mode(cx, n, field);
    case TN_CONF_REGEX:
        return tn_conf_get_regex(cx, n, field);
    case TN_CONF_STRLIST:
        return get_strlist(cx, n, k->check, field);
    case TN_CONF_MAP:
        return tn_conf_walk(cx, n, k->name, k->sub, field, NULL);
    case TN_CONF_FUNC:
        return k->fn(cx, n, field);
    }
    TN_BUG_ON(1);
    return TN_ERR;
}

/* ---- the mapping walker ---- */

static void unknown_key(struct tn_conf_ctx *cx, yaml_node_t *kn, const char *name, const char *what,
                        const struct tn_conf_key *keys)
{
    char list[1024], q[DESCRIBE_MAX * 4 + 16];
    size_t o = 0, i;

    list[0] = '\0';
    for (i = 0; keys[i].name && o < sizeof(list); i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", keys[i].name);
    tn_conf_err(cx, kn, "unknown key %s in %s; expected one of: %s",
                quote(name, strlen(name), q, sizeof(q)), what, list);
}

int tn_conf_walk(struct tn_conf_ctx *cx, yaml_node_t *map, const char *what,
                 const struct tn_conf_key *keys, void *obj, uint32_t *seen)
{
    unsigned before = cx->nerrors;
    uint32_t mentioned = 0, present = 0;
    size_t i, j, len;

    if (seen)
        *seen = 0;
    if (tn_conf_want_map(cx, map, what) != TN_OK)
        return TN_ERR;
    len = tn_conf_map_len(map);
    for (i = 0; i < len; i++) {
        yaml_node_t *kn = tn_conf_map_key(cx, map, i), *vn = tn_conf_map_value(cx, map, i);
        char what_key[128];
        const char *name;

        if (tn_conf_count_value(cx, kn) != TN_OK)
            return TN_ERR;
        snprintf(what_key, sizeof(what_key), "a key name in %s", what);
        name = tn_conf_scalar(cx, kn, what_key);
        if (!name)
            continue;
        for (j = 0; keys[j].name && strcmp(keys[j].name, name); j++)
            ;
        if (!keys[j].name) {
            unknown_key(cx, kn, name, what, keys);
            continue;
        }
        TN_BUG_ON(j >= 32);
        if (mentioned & (1u << j)) {
            tn_conf_err(cx, kn, "duplicate key \"%s\" in %s", keys[j].name, what);
            continue;
        }
        mentioned |= 1u << j;
        if (tn_conf_is_null(vn))
            continue; /* null: as if absent, the default stays */
        present |= 1u << j;
        tn_conf_value(cx, vn, &keys[j], (char *)obj + keys[j].off);
    }
    for (j = 0; keys[j].name; j++)
        if ((keys[j].flags & TN_CONF_K_REQUIRED) && !(present & (1u << j)))
            tn_conf_err(cx, map, "missing key \"%s\" in %s", keys[j].name, what);
    if (seen)
        *seen = present;
    return cx->nerrors == before ? TN_OK : TN_ERR;
}

char *tn_conf_path_beside(const char *file, const char *path)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    size_t dl;
    char *full;

    if (path[0] == '/' || !slash)
        return tn_xstrdup(path);
    dl = (size_t)(slash - file) + 1;
    full = tn_xmalloc(dl + strlen(path) + 1);
    memcpy(full, file, dl);
    strcpy(full + dl, path);
    return full;
}
