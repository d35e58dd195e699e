/* Strict HTTP/1.1 request heads (RFC 9110/9112): the incremental end-of-head
 * scanner, the field-line parser shared with responses (h1_resp.c), request
 * line, target and Host checks, and lookups over a parsed head (header,
 * cookie, query parameter, reason phrase). Single pass over the bytes, table
 * driven, no allocation. */
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "turnout/common.h"
#include "turnout/h1.h"

#define CL_MAX ((uint64_t)1 << 62) /* largest Content-Length we accept */

#define CT(c) tn_h1_ctype[(unsigned char)(c)]
#define IS_WS(c) ((c) == ' ' || (c) == '\t')
#define IS_DIGIT(c) ((unsigned char)((c) - '0') <= 9)

/* CR, LF or NUL: the bytes the scanner stops at. */
#define IS_STOP(c) ((unsigned char)(c) < 0x0e && ((0x2401u >> (unsigned char)(c)) & 1))

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
/* Flags (0x80) the bytes of v below n (n <= 128). A borrow can also flag a
 * byte after a true one, never before: the lowest flag is exact. */
static inline uint64_t has_lt(uint64_t v, unsigned n)
{
    return (v - ONES * n) & ~v & HIGHS;
}

/* Little-endian loads: byte i of memory is byte i of the value, so the
 * lowest flag of a has_lt() mask is the first such byte in memory. */
static inline uint64_t ld8(const void *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t ld4(const void *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint16_t ld2(const void *p)
{
    uint16_t v;

    memcpy(&v, p, 2);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap16(v);
#endif
    return v;
}

/* Offset of the first flagged byte of a non-zero has_lt() mask. */
static inline size_t first_flagged(uint64_t m)
{
    return (size_t)__builtin_ctzll(m) >> 3;
}

/* Bits: 0x01 tchar, 0x02 field value, 0x04 target, 0x08 hex, 0x10 host,
 * 0x20 qdtext (TN_H1_C_*). Generated from the RFC 9110/3986 ABNF. */
const uint8_t tn_h1_ctype[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x22, 0x27, 0x06, 0x23, 0x27, 0x27, 0x27, 0x27, 0x26, 0x26, 0x27, 0x27, 0x26, 0x37, 0x37, 0x26,
    0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x26, 0x26, 0x26, 0x26, 0x26, 0x26,
    0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
    0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x26, 0x06, 0x26, 0x27, 0x37,
    0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37,
    0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x37, 0x26, 0x27, 0x26, 0x37, 0x00,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22,
};

static inline size_t sat_add(size_t a, size_t b)
{
    return a + b < a ? SIZE_MAX : a + b;
}

/* Index of the first byte below 0x0e (a control byte, maybe CR, LF or
 * NUL) in buf[i..end), or end. */
static inline size_t find_ctl(const char *buf, size_t i, size_t end)
{
#ifdef __SSE2__
    /* Sixteen at a time: the bytes below 0x0e equal their minimum with 0x0d. */
    const __m128i top = _mm_set1_epi8(0x0d);

    while (i + 16 <= end) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(buf + i));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, top), v));

        if (m)
            return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
#else
    while (i + 8 <= end) {
        uint64_t m = has_lt(ld8(buf + i), 0x0e);

        if (m)
            return i + first_flagged(m);
        i += 8;
    }
#endif
    for (; i < end; i++)
        if ((unsigned char)buf[i] < 0x0e)
            return i;
    return end;
}

/* Index of the first CR, LF or NUL in buf[i..end), or end: HTAB and the
 * other control bytes are the parser's to judge. */
static inline size_t find_stop(const char *buf, size_t i, size_t end)
{
    for (;; i++) {
        i = find_ctl(buf, i, end);
        if (i == end || IS_STOP(buf[i]))
            return i;
    }
}

/* First byte at or after p that may not appear in a field value (so at
 * worst the CR ending the line); p < end and buf ends with CRLF. The block
 * tests flag bytes below 0x20 and 0x7f exactly; HTAB is then let through. */
static inline const unsigned char *skip_fval(const unsigned char *p, const unsigned char *end)
{
    for (;; p++) {
#ifdef __SSE2__
        const __m128i c1f = _mm_set1_epi8(0x1f), del = _mm_set1_epi8(0x7f);

        while (p + 16 <= end) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
            unsigned m = (unsigned)_mm_movemask_epi8(
                _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v), _mm_cmpeq_epi8(v, del)));

            if (m) {
                p += __builtin_ctz(m);
                break;
            }
            p += 16;
        }
#else
        while (p + 8 <= end) {
            uint64_t v = ld8(p), m = has_lt(v, 0x20) | has_lt(v ^ (ONES * 0x7f), 1);

            if (m) {
                p += first_flagged(m);
                break;
            }
            p += 8;
        }
#endif
        if (!(CT(p[0]) & TN_H1_C_FVAL))
            return p;
    }
}

#ifdef __SSE2__
/* Length (up to 16) of the run of ALPHA, DIGIT and '-' at p, the bytes of
 * nearly every field name; p + 16 <= end of the buffer. */
static inline size_t name_run(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i l = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i d = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    __m128i ok = _mm_or_si128(_mm_cmpeq_epi8(_mm_min_epu8(l, _mm_set1_epi8(25)), l),
                              _mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d));

    ok = _mm_or_si128(ok, _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
    return (size_t)__builtin_ctz(~(unsigned)_mm_movemask_epi8(ok) | 0x10000u);
}
#endif

/* First byte at or after p that may not appear in a request-target (at
 * worst the SP or CR ending it); p < end and buf ends with CRLF. */
static inline const unsigned char *skip_uri(const unsigned char *p, const unsigned char *end)
{
    while (p + 8 <= end) {
        uint64_t v = ld8(p), m = has_lt(v, 0x21) | (v & HIGHS) | has_lt(v ^ (ONES * '#'), 1) |
                                 has_lt(v ^ (ONES * 0x7f), 1);

        if (m)
            return p + first_flagged(m);
        p += 8;
    }
    while (CT(p[0]) & TN_H1_C_URI)
        p++;
    return p;
}

/* Where the start line begins once up to TN_H1_MAX_EMPTY_LINES CRLFs are
 * skipped. */
static inline size_t skip_empty_lines(const char *buf, size_t len)
{
    size_t p = 0;
    int n;

    for (n = 0; n < TN_H1_MAX_EMPTY_LINES && p + 2 < len; n++) {
        if (buf[p] != '\r' || buf[p + 1] != '\n')
            break;
        p += 2;
    }
    return p;
}

/* Steps over the field lines that end in CRLF short of end (so within len
 * and the head limit), which need no other check, from the control byte p
 * found at sc->pos. Returns SIZE_MAX at the blank line ending the head
 * (sc->pos past it), else the first stop the general checks must see:
 * another control byte, or end. */
static inline size_t skip_field_lines(struct tn_h1_scan *sc, const char *buf, size_t end, size_t p)
{
    while (p + 1 < end && buf[p] == '\r' && buf[p + 1] == '\n') {
        sc->pos = p + 2;
        if (p == sc->line)
            return SIZE_MAX;
        sc->line = p + 2;
        p = find_ctl(buf, sc->pos, end);
    }
    return p;
}

/* The general checks at p, the first CR, LF or NUL in buf[sc->pos..end), or
 * end itself; cap is the limit that set end. Returns TN_OK at the blank line
 * (sc->pos past it), TN_AGAIN for more bytes, TN_ERR with *code and *reason,
 * or SCAN_NEXT once a line ends. */
#define SCAN_NEXT 2
static int scan_stop(struct tn_h1_scan *sc, const char *buf, size_t len, size_t end, size_t cap,
                     size_t p, const struct tn_h1_limits *lim, int *code, const char **reason)
{
    int in_start = sc->line == sc->start;

    *code = 400;
    if (p == end) {
        if (end < cap || sc->pos == len) { /* nothing to stop at yet, or nothing left */
            sc->pos = end;
            return TN_AGAIN;
        }
        *code = in_start && p - sc->start > lim->max_uri ? 414 : 431;
        *reason = *code == 414 ? "start line too long" : "head too large";
        return TN_ERR;
    }
    if (buf[p] != '\r') {
        *reason = buf[p] == '\n' ? "bare LF in head" : "NUL in head";
        return TN_ERR;
    }
    if (in_start && p == sc->start) { /* an empty line before the start line */
        *reason = NULL;
        if (p + 1 < len && buf[p + 1] != '\n')
            *reason = "bare CR in head";
        else if (p >= 2 * TN_H1_MAX_EMPTY_LINES)
            *reason = "too many empty lines";
        if (*reason)
            return TN_ERR;
        if (p + 1 == len) {
            sc->pos = p;
            return TN_AGAIN;
        }
        sc->start = sc->line = sc->pos = p + 2;
        return SCAN_NEXT;
    }
    if (p + 2 - sc->start > lim->max_head) {
        *code = 431;
        *reason = "head too large";
        return TN_ERR;
    }
    if (p + 1 == len) {
        sc->pos = p; /* look at this CR again when its LF arrives */
        return TN_AGAIN;
    }
    if (buf[p + 1] != '\n') {
        *reason = "bare CR in head";
        return TN_ERR;
    }
    sc->pos = p + 2;
    if (p == sc->line) /* the blank line ending the head */
        return TN_OK;
    sc->line = p + 2;
    return SCAN_NEXT;
}

/* 1 when the request line buf[start..cr) (cr: its CR) ends in " HTTP/" and
 * three more bytes, as every HTTP/1.x request line does. Without it the
 * line is HTTP/0.9 ("GET /") or otherwise no HTTP/1.x request line: no
 * head follows to wait for, so the scanner answers 400 at once. */
static inline int req_line_has_version(const char *buf, size_t start, size_t cr)
{
    return cr - start >= sizeof("M / HTTP/1.1") - 1 && buf[cr - 9] == ' ' &&
           memcmp(buf + cr - 8, "HTTP/", 5) == 0;
}

#define NO_VERSION_REASON "no HTTP version at the end of the request line"

int tn_h1_scan(struct tn_h1_scan *sc, const char *buf, size_t len, const struct tn_h1_limits *lim,
               int is_resp, size_t *head_len, int *status, const char **why)
{
    struct tn_h1_scan s = *sc;
    const char *reason = NULL;
    int code = 0, r = TN_AGAIN;

    while (s.pos < len) {
        int in_start = s.line == s.start;
        size_t cap = sat_add(s.start, lim->max_head), end, p;

        if (in_start && sat_add(sat_add(s.start, lim->max_uri), 1) < cap)
            cap = sat_add(sat_add(s.start, lim->max_uri), 1);
        end = cap < len ? cap : len;
        p = find_ctl(buf, s.pos, end);
        if (in_start && p + 1 < end && p != s.start && buf[p] == '\r' && buf[p + 1] == '\n') {
            /* the start line ends within its limits: on to the field lines */
            if (!is_resp && !req_line_has_version(buf, s.start, p)) {
                code = 400;
                reason = NO_VERSION_REASON;
                r = TN_ERR;
                break;
            }
            s.line = s.pos = p + 2;
            in_start = 0;
            cap = sat_add(s.start, lim->max_head);
            end = cap < len ? cap : len;
            p = find_ctl(buf, s.pos, end);
        }
        if (!in_start && (p = skip_field_lines(&s, buf, end, p)) == SIZE_MAX) {
            r = TN_OK;
            break;
        }
        if (p < end && !IS_STOP(buf[p])) /* HTAB or another control byte */
            p = find_stop(buf, p + 1, end);
        r = scan_stop(&s, buf, len, end, cap, p, lim, &code, &reason);
        if (r != SCAN_NEXT)
            break;
        r = TN_AGAIN;
        /* the start line ended at the cap's edge (not an empty line skipped) */
        if (in_start && s.line != s.start && !is_resp &&
            !req_line_has_version(buf, s.start, s.line - 2)) {
            code = 400;
            reason = NO_VERSION_REASON;
            r = TN_ERR;
            break;
        }
    }
    *sc = s;
    if (r == TN_OK) {
        *head_len = s.pos;
    } else if (r == TN_ERR) {
        *status = is_resp ? 502 : code;
        *why = reason;
    }
    return r;
}

/* 1 when the counted name n equals lit (lowercase letters and '-') ignoring
 * case. OR-ing 0x20 into every byte is exact when n holds no CR (0x0d | 0x20
 * is '-'), which holds for tokens and field values. len is a constant at
 * every call, so the loads and the literal fold into a few compares. */
static inline int name_is(const char *n, const char *lit, size_t len)
{
    if (len >= 8) {
        size_t i;

        for (i = 0; i + 8 < len; i += 8)
            if ((ld8(n + i) | ONES * 0x20) != ld8(lit + i))
                return 0;
        return (ld8(n + len - 8) | ONES * 0x20) == ld8(lit + len - 8);
    }
    if (len >= 4)
        return (((ld4(n) | 0x20202020u) ^ ld4(lit)) |
                ((ld4(n + len - 4) | 0x20202020u) ^ ld4(lit + len - 4))) == 0;
    if (len >= 2)
        return (((ld2(n) | 0x2020u) ^ ld2(lit)) |
                ((ld2(n + len - 2) | 0x2020u) ^ ld2(lit + len - 2))) == 0;
    return len == 0 || ((unsigned char)n[0] | 0x20) == (unsigned char)lit[0];
}

static inline unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/* v with each ASCII capital letter made small: a byte below 0x80 is at
 * least 'A' when adding 0x3f sets its top bit, and above 'Z' when adding
 * 0x25 does; neither sum carries into the next byte. */
static inline uint64_t lower8(uint64_t v)
{
    uint64_t low7 = v & (ONES * 0x7f);
    uint64_t upper = (low7 + ONES * (0x80 - 'A')) & ~(low7 + ONES * (0x80 - 'Z' - 1)) & ~v & HIGHS;

    return v | upper >> 2;
}

/* ASCII case-insensitive comparison of two counted strings of length n,
 * eight bytes at a time. */
static int ieq(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i + 8 <= n; i += 8)
        if (lower8(ld8(a + i)) != lower8(ld8(b + i)))
            return 0;
    for (; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Next element of a #token list from *pp up to end: returns 1 with the token,
 * 0 at the end, -1 when the list is malformed. Empty elements are skipped
 * as RFC 9110 5.6.1 asks. */
static int list_next(const char **pp, const char *end, const char **tok, size_t *tlen)
{
    const char *p = *pp, *t;

    while (p < end && (*p == ',' || IS_WS(*p)))
        p++;
    if (p == end)
        return 0;
    t = p;
    while (p < end && (CT(*p) & TN_H1_C_TCHAR))
        p++;
    if (p == t)
        return -1;
    *tok = t;
    *tlen = (size_t)(p - t);
    while (p < end && IS_WS(*p))
        p++;
    if (p < end && *p != ',')
        return -1;
    *pp = p;
    return 1;
}

/* tn_h1_fields.conn_names bits. Once any Connection token other than
 * "close" is seen, every field that any Connection token names (even
 * "close") is flagged HOP; the pass is skipped when that changes nothing:
 * when all the tokens name fields already HOP by name (as "keep-alive"). */
#define CN_OTHER 0x01 /* a token other than "close": the names get flagged */
#define CN_FLAGS 0x02 /* a token naming a field not already HOP by its name */

/* 1 when a field called t is flagged HOP by its name alone, so a Connection
 * token naming it needs no second pass. */
static int hop_by_name(const char *t, size_t tl)
{
    switch (tl) {
    case 2:
        return name_is(t, "te", 2);
    case 7:
        return name_is(t, "trailer", 7) || name_is(t, "upgrade", 7);
    case 10:
        return name_is(t, "keep-alive", 10) || name_is(t, "connection", 10);
    case 16:
        return name_is(t, "proxy-connection", 16);
    }
    return 0;
}

/* Reads one Content-Length field: only one is allowed, even if identical. */
static int add_cl(struct tn_h1_fields *f, const char *v, size_t n, const char **why)
{
    uint64_t x = 0;
    size_t i;

    if (++f->ncl > 1) {
        *why = "multiple Content-Length fields";
        return TN_ERR;
    }
    if (n == 0)
        goto bad;
    if (n <= 18) { /* below 10^18 < CL_MAX: no overflow to check */
        for (i = 0; i < n; i++) {
            unsigned d = (unsigned char)v[i] - '0';

            if (d > 9)
                goto bad;
            x = x * 10 + d;
        }
    } else {
        for (i = 0; i < n; i++) {
            unsigned d = (unsigned char)v[i] - '0';

            if (d > 9 || x > (CL_MAX - d) / 10)
                goto bad;
            x = x * 10 + d;
        }
    }
    f->content_length = x;
    return TN_OK;
bad:
    *why = "invalid Content-Length";
    return TN_ERR;
}

/* Reads one Transfer-Encoding field into the running list summary: all the
 * fields together form one list. */
static int add_te(struct tn_h1_fields *f, const char *v, size_t n, const char **why)
{
    const char *p = v, *end = v + n, *t;
    size_t tl;
    int r;

    f->nte++;
    if (n == 7 && name_is(v, "chunked", 7)) { /* the usual single coding */
        f->te_codings++;
        f->te_last_chunked = 1;
        f->te_chunked++;
        return TN_OK;
    }
    while ((r = list_next(&p, end, &t, &tl)) > 0) {
        f->te_codings++;
        f->te_last_chunked = tl == 7 && name_is(t, "chunked", 7);
        f->te_chunked += (unsigned)f->te_last_chunked;
    }
    if (r < 0)
        *why = "invalid Transfer-Encoding";
    return r < 0 ? TN_ERR : TN_OK;
}

/* Reads one Connection field: close / keep-alive, and whether it names
 * another field. Refuses to let it name a framing field or Host. */
static int add_conn(struct tn_h1_fields *f, const char *v, size_t n, const char **why)
{
    const char *p = v, *end = v + n, *t;
    size_t tl;
    int r;

    if (n == 10 && name_is(v, "keep-alive", 10)) { /* the usual single tokens */
        f->conn |= TN_H1_CONN_F_KEEPALIVE;
        f->conn_names |= CN_OTHER;
        return TN_OK;
    }
    if (n == 5 && name_is(v, "close", 5)) {
        f->conn |= TN_H1_CONN_F_CLOSE;
        f->conn_names |= CN_FLAGS;
        return TN_OK;
    }
    while ((r = list_next(&p, end, &t, &tl)) > 0) {
        if (tl == 5 && name_is(t, "close", 5)) {
            f->conn |= TN_H1_CONN_F_CLOSE;
            f->conn_names |= CN_FLAGS;
            continue;
        }
        if (tl == 10 && name_is(t, "keep-alive", 10))
            f->conn |= TN_H1_CONN_F_KEEPALIVE;
        else if ((tl == 4 && name_is(t, "host", 4)) ||
                 (tl == 14 && name_is(t, "content-length", 14)) ||
                 (tl == 17 && name_is(t, "transfer-encoding", 17))) {
            *why = "Connection names a framing field";
            return TN_ERR;
        }
        f->conn_names |= hop_by_name(t, tl) ? CN_OTHER : CN_OTHER | CN_FLAGS;
    }
    if (r < 0)
        *why = "invalid Connection token";
    return r < 0 ? TN_ERR : TN_OK;
}

/* 1 when n spells want with at least one '_' where want has '-' (case-
 * insensitive): CGI, WSGI and PHP map both to the same variable, so a
 * backend could frame a body by Content_Length while we frame it otherwise. */
static int underscore_lookalike(const char *n, const char *want, size_t len)
{
    size_t i;
    int under = 0;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)n[i];

        if (c == '_' && want[i] == '-') {
            under = 1;
            continue;
        }
        if ((c | 0x20) != (unsigned char)want[i])
            return 0;
    }
    return under;
}

/* The flags of field idx from its name, feeding the fields that matter to
 * framing into *f; -1 on error. Responses only get HOP and FRAMING. */
static inline int classify(struct tn_h1_fields *f, const char *n, size_t nl, const char *v,
                           size_t vl, unsigned idx, int is_resp, const char **why)
{
    switch (nl) {
    case 2:
        return name_is(n, "te", 2) ? TN_FIELD_F_HOP : 0;
    case 4:
        if (is_resp || !name_is(n, "host", 4))
            return 0;
        if (f->nhost++ == 0)
            f->host = idx;
        return TN_FIELD_F_HOST;
    case 6:
        if (!is_resp && name_is(n, "expect", 6) && vl == 12 && name_is(v, "100-continue", 12))
            f->expect_continue = 1;
        return 0;
    case 7:
        return name_is(n, "trailer", 7) || name_is(n, "upgrade", 7) ? TN_FIELD_F_HOP : 0;
    case 10:
        if (name_is(n, "keep-alive", 10))
            return TN_FIELD_F_HOP;
        if (!name_is(n, "connection", 10))
            return 0;
        if (f->nconn++ == 0)
            f->conn_first = idx;
        return add_conn(f, v, vl, why) == TN_OK ? TN_FIELD_F_HOP : -1;
    case 14:
        if (!name_is(n, "content-length", 14)) {
            if (!is_resp && underscore_lookalike(n, "content-length", 14)) {
                *why = "Content_Length look-alike field";
                return -1;
            }
            return 0;
        }
        return add_cl(f, v, vl, why) == TN_OK ? TN_FIELD_F_FRAMING : -1;
    case 15:
        if (is_resp)
            return 0;
        if (name_is(n, "x-forwarded-for", 15))
            return TN_FIELD_F_XFF;
        /* X_Forwarded_For would reach CGI-style apps as the real one: dropped */
        return underscore_lookalike(n, "x-forwarded-for", 15) ? TN_FIELD_F_HOP : 0;
    case 16:
        return name_is(n, "proxy-connection", 16) ? TN_FIELD_F_HOP : 0;
    case 17:
        if (name_is(n, "transfer-encoding", 17))
            return add_te(f, v, vl, why) == TN_OK ? TN_FIELD_F_FRAMING : -1;
        if (is_resp)
            return 0;
        if (name_is(n, "x-forwarded-proto", 17))
            return TN_FIELD_F_XFP;
        if (underscore_lookalike(n, "transfer-encoding", 17)) {
            *why = "Transfer_Encoding look-alike field";
            return -1;
        }
        return underscore_lookalike(n, "x-forwarded-proto", 17) ? TN_FIELD_F_HOP : 0;
    }
    return 0;
}

/* Flags HOP every field a Connection field names (it may come before). */
static void flag_connection_names(struct tn_h1_fields *f, struct tn_field *hdrs)
{
    unsigned i, j;

    for (i = f->conn_first; i < f->nhdrs; i++) {
        const char *p = hdrs[i].value, *end = p + hdrs[i].value_len, *t;
        size_t tl;

        if (hdrs[i].name_len != 10 || !name_is(hdrs[i].name, "connection", 10))
            continue;
        while (list_next(&p, end, &t, &tl) > 0)
            for (j = 0; j < f->nhdrs; j++)
                if (hdrs[j].name_len == tl && ieq(hdrs[j].name, t, tl))
                    hdrs[j].flags |= TN_FIELD_F_HOP;
    }
}

/* Why a field line stopped at p before (or instead of) its colon. */
static const char *name_error(const unsigned char *name, const unsigned char *p)
{
    if (p == name && IS_WS(*p))
        return "obs-fold or whitespace at line start";
    if (p == name && *p == ':')
        return "empty field name";
    if (IS_WS(*p))
        return "whitespace before colon";
    if (*p == '\n')
        return "bare LF in head";
    if (*p == '\r')
        return p[1] == '\n' ? "field line without colon" : "bare CR in head";
    if (*p == 0)
        return "NUL in head";
    return "invalid byte in field name";
}

static const char *value_error(const unsigned char *p)
{
    if (*p == '\r')
        return "bare CR in head";
    if (*p == '\n')
        return "bare LF in head";
    if (*p == 0)
        return "NUL in head";
    return "control byte in field value";
}

int tn_h1_parse_fields(const char *buf, size_t len, size_t *off, struct tn_field *hdrs,
                       unsigned max, int is_resp, struct tn_h1_fields *f, const char **why)
{
    const unsigned char *p = (const unsigned char *)buf + *off;
    const unsigned char *end = (const unsigned char *)buf + len;
    unsigned n = 0;

    memset(f, 0, sizeof(*f));
    f->status = 400;
    while (*p != '\r') {
        const unsigned char *name = p, *val, *ve;
        struct tn_field *h;
        size_t nl;
        int fl;

        nl = 0;
#ifdef __SSE2__
        if (name + 16 <= end)
            nl = name_run(name);
#endif
        if (name[nl] != ':') /* the rest by the table */
            for (; CT(name[nl]) & TN_H1_C_TCHAR; nl++)
                ;
        p = name + nl;
        if (nl == 0 || *p != ':') {
            *why = name_error(name, p);
            goto fail;
        }
        if (n == max) {
            f->status = 431;
            *why = "too many header fields";
            goto fail;
        }
        val = p + 1;
        val += *val == ' '; /* the usual single SP, then any more OWS */
        while (IS_WS(*val))
            val++;
        ve = p = skip_fval(val, end);
        if (*p != '\r' || p[1] != '\n') {
            *why = value_error(p);
            goto fail;
        }
        /* ve[-1] is a value byte or the colon: of those, only SP and
         * HTAB are not above ' ' */
        while ((unsigned char)ve[-1] <= ' ' && ve > val)
            ve--;
        fl = classify(f, (const char *)name, nl, (const char *)val, (size_t)(ve - val), n, is_resp,
                      why);
        if (fl < 0)
            goto fail;
        h = &hdrs[n++];
        h->name = (const char *)name;
        h->value = (const char *)val;
        h->name_len = (uint32_t)nl;
        h->value_len = (uint32_t)(ve - val);
        h->flags = (uint32_t)fl;
        p += 2;
    }
    if (p[1] != '\n') {
        *why = "bare CR in head";
        goto fail;
    }
    f->nhdrs = n;
    if (f->conn_names == (CN_OTHER | CN_FLAGS))
        flag_connection_names(f, hdrs);
    *off = (size_t)(p + 2 - (const unsigned char *)buf);
    return TN_OK;
fail:
    f->nhdrs = n;
    return TN_ERR;
}

/* ---- request line and target ---- */

static enum tn_h1_method method_of(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (!memcmp(m, "GET", 3))
            return TN_H1_M_GET;
        if (!memcmp(m, "PUT", 3))
            return TN_H1_M_PUT;
        break;
    case 4:
        if (!memcmp(m, "POST", 4))
            return TN_H1_M_POST;
        if (!memcmp(m, "HEAD", 4))
            return TN_H1_M_HEAD;
        break;
    case 5:
        if (!memcmp(m, "PATCH", 5))
            return TN_H1_M_PATCH;
        if (!memcmp(m, "TRACE", 5))
            return TN_H1_M_TRACE;
        break;
    case 6:
        if (!memcmp(m, "DELETE", 6))
            return TN_H1_M_DELETE;
        break;
    case 7:
        if (!memcmp(m, "OPTIONS", 7))
            return TN_H1_M_OPTIONS;
        if (!memcmp(m, "CONNECT", 7))
            return TN_H1_M_CONNECT;
        break;
    }
    return TN_H1_M_OTHER;
}

/* reg-name / IPv4 / "[IPv6]" with an optional ":port" (1-5 digits, at most
 * 65535). Stricter than RFC 3986: no pct-encoding or sub-delims, no empty
 * port. Returns 1 when valid. */
static int host_valid(const char *h, size_t n)
{
    const char *p = h, *e = h + n, *s;
    unsigned port = 0;

    if (p < e && *p == '[') {
        int colon = 0;

        for (s = ++p; p < e && ((CT(*p) & TN_H1_C_HEX) || *p == ':' || *p == '.'); p++)
            colon |= *p == ':';
        if (p == s || p == e || *p != ']' || !colon)
            return 0;
        p++;
    } else {
        /* No bounds test per byte: the head ends in CRLF, which stops it. */
        for (s = p; CT(*p) & TN_H1_C_HOST; p++)
            ;
        if (p > e)
            p = e;
        if (p == s)
            return 0;
    }
    if (p == e)
        return 1;
    if (*p++ != ':' || p == e || e - p > 5)
        return 0;
    for (; p < e; p++) {
        if (!IS_DIGIT(*p))
            return 0;
        port = port * 10 + (unsigned)(*p - '0');
    }
    return port <= 65535;
}

/* absolute-form "http[s]://authority[/path[?query]]": the authority becomes
 * req->host and the target is reduced to origin-form. Returns 0 or the
 * status to answer. */
static int parse_absolute(struct tn_h1_req *req, const char *t, size_t n, const char **why)
{
    size_t s, i;

    if (n >= 7 && ieq(t, "http://", 7))
        s = 7;
    else if (n >= 8 && ieq(t, "https://", 8))
        s = 8;
    else {
        *why = "unsupported request-target form";
        return 400;
    }
    for (i = s; i < n && t[i] != '/' && t[i] != '?'; i++)
        if (t[i] == '@') {
            *why = "userinfo in request target";
            return 400;
        }
    if (!host_valid(t + s, i - s)) {
        *why = "invalid authority in request target";
        return 400;
    }
    if (i < n && t[i] == '?') {
        *why = "absolute-form target with a query but no path";
        return 400;
    }
    req->host = t + s;
    req->host_len = i - s;
    req->target = i < n ? t + i : "/";
    req->target_len = i < n ? n - i : 1;
    req->flags |= TN_H1_REQ_F_ABSOLUTE;
    return 0;
}

static int parse_target(struct tn_h1_req *req, const char *t, size_t n, const char **why)
{
    if (t[0] == '/') {
        req->target = t;
        req->target_len = n;
        return 0;
    }
    if (t[0] == '*') {
        if (n != 1 || req->method != TN_H1_M_OPTIONS) {
            *why = n != 1 ? "invalid request target" : "asterisk-form without OPTIONS";
            return 400;
        }
        req->target = t;
        req->target_len = 1;
        req->flags |= TN_H1_REQ_F_ASTERISK;
        return 0;
    }
    return parse_absolute(req, t, n, why);
}

/* method SP request-target SP HTTP-version CRLF, starting at buf[start].
 * Returns 0 with *off at the first field line, or the status to answer. */
static int parse_req_line(struct tn_h1_req *req, const char *buf, size_t len, size_t start,
                          size_t *off, const struct tn_h1_limits *lim, const char **why)
{
    const char *m = buf + start, *p = m, *t;

    while (CT(*p) & TN_H1_C_TCHAR)
        p++;
    if (p == m || *p != ' ') {
        *why = "invalid method";
        return 400;
    }
    req->method_str = m;
    req->method_len = (size_t)(p - m);
    req->method = method_of(m, req->method_len);
    t = ++p;
    p = (const char *)skip_uri((const unsigned char *)p, (const unsigned char *)buf + len);
    if (p == t || *p != ' ') {
        *why = *p == '#' ? "fragment in request target" : "invalid request target";
        return 400;
    }
    p++;
    /* "HTTP/1.1" CRLF in two loads when they fit; else each test runs only
     * if the previous byte was neither CR nor LF, so none reads past the
     * CRLF CRLF that ends buf. */
    if (!(p + 10 <= buf + len && ld8(p) == ld8("HTTP/1.1") && ld2(p + 8) == ld2("\r\n")) &&
        !(p[0] == 'H' && p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' &&
          IS_DIGIT(p[5]) && p[6] == '.' && IS_DIGIT(p[7]) && p[8] == '\r' && p[9] == '\n')) {
        *why = "invalid HTTP version";
        return 400;
    }
    if ((size_t)(p + 8 - m) > lim->max_uri) {
        *why = "request line too long";
        return 414;
    }
    if (p[5] != '1') {
        *why = "unsupported HTTP major version";
        return 505;
    }
    req->minor = p[7] != '0';
    *off = (size_t)(p + 10 - buf);
    if (req->method == TN_H1_M_CONNECT) {
        *why = "CONNECT is not supported";
        return 501;
    }
    return parse_target(req, t, (size_t)(p - 1 - t), why);
}

/* Host, framing, connection and expectation rules over the parsed fields.
 * Returns 0 or the status to answer. */
static int check_req_fields(struct tn_h1_req *req, const struct tn_h1_fields *f, const char **why)
{
    if (f->nhost > 1) {
        *why = "multiple Host fields";
        return 400;
    }
    if (f->nhost) {
        const struct tn_field *h = &req->hdrs[f->host];

        if (!host_valid(h->value, h->value_len)) {
            *why = "invalid Host";
            return 400;
        }
        if (!(req->flags & TN_H1_REQ_F_ABSOLUTE)) {
            req->host = h->value;
            req->host_len = h->value_len;
        }
    } else if (req->minor == 1) {
        *why = "missing Host";
        return 400;
    }
    if (f->nte) {
        if (req->minor == 0)
            *why = "Transfer-Encoding in an HTTP/1.0 request";
        else if (f->ncl)
            *why = "Content-Length with Transfer-Encoding";
        else if (!f->te_last_chunked)
            *why = "final transfer coding is not chunked";
        else if (f->te_chunked > 1)
            *why = "chunked applied more than once";
        else if (f->te_codings > 1) {
            *why = "unsupported transfer coding";
            return 501;
        } else
            *why = NULL;
        if (*why)
            return 400;
        req->framing = TN_H1_BODY_CHUNKED;
    } else if (f->ncl) {
        req->framing = TN_H1_BODY_LENGTH;
        req->content_length = f->content_length;
    }
    if ((f->conn & TN_H1_CONN_F_CLOSE) || (req->minor == 0 && !(f->conn & TN_H1_CONN_F_KEEPALIVE)))
        req->flags |= TN_H1_REQ_F_CLOSE;
    if (f->expect_continue && req->minor == 1)
        req->flags |= TN_H1_REQ_F_EXPECT_CONTINUE;
    return 0;
}

int tn_h1_parse_req(struct tn_h1_req *req, const char *buf, size_t len,
                    const struct tn_h1_limits *lim, const char **why)
{
    struct tn_field *hdrs = req->hdrs;
    struct tn_h1_fields f;
    size_t start, off = 0;
    int st;

    memset(req, 0, sizeof(*req));
    req->hdrs = hdrs;
    if (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
        *why = "incomplete head";
        st = 400;
        goto fail;
    }
    start = skip_empty_lines(buf, len);
    if (len - start > lim->max_head) {
        *why = "head too large";
        st = 431;
        goto fail;
    }
    st = parse_req_line(req, buf, len, start, &off, lim, why);
    if (st)
        goto fail;
    if (tn_h1_parse_fields(buf, len, &off, hdrs, lim->max_headers, 0, &f, why) != TN_OK) {
        st = f.status;
        goto fail;
    }
    req->nhdrs = f.nhdrs;
    req->head_len = off;
    st = check_req_fields(req, &f, why);
    if (st)
        goto fail;
    return TN_OK;
fail:
    req->status = st;
    return TN_ERR;
}

/* ---- lookups ---- */

const struct tn_field *tn_h1_find(const struct tn_field *hdrs, unsigned n, const char *name)
{
    size_t nl = strlen(name);
    unsigned i;

    for (i = 0; i < n; i++)
        if (hdrs[i].name_len == nl && ieq(hdrs[i].name, name, nl))
            return &hdrs[i];
    return NULL;
}

/* Looks for name=value among the ';'-separated pairs of one Cookie value.
 * Pairs without '=' are skipped (browsers treat them as a nameless value). */
static int cookie_in(const char *p, const char *end, const char *name, size_t nl, const char **val,
                     size_t *vlen)
{
    while (p < end) {
        const char *pair, *eq, *semi, *ve;

        while (p < end && (IS_WS(*p) || *p == ';'))
            p++;
        pair = p;
        semi = memchr(p, ';', (size_t)(end - p));
        if (!semi)
            semi = end;
        eq = memchr(p, '=', (size_t)(semi - p));
        p = semi;
        if (!eq)
            continue;
        for (ve = eq; ve > pair && IS_WS(ve[-1]); ve--)
            ;
        if ((size_t)(ve - pair) != nl || memcmp(pair, name, nl) != 0)
            continue;
        for (eq++; eq < semi && IS_WS(*eq); eq++)
            ;
        for (ve = semi; ve > eq && IS_WS(ve[-1]); ve--)
            ;
        *val = eq;
        *vlen = (size_t)(ve - eq);
        return 1;
    }
    return 0;
}

int tn_h1_cookie(const struct tn_field *hdrs, unsigned n, const char *name, const char **val,
                 size_t *vlen)
{
    size_t nl = strlen(name);
    unsigned i;

    for (i = 0; i < n; i++) {
        if (hdrs[i].name_len != 6 || !ieq(hdrs[i].name, "cookie", 6))
            continue;
        if (cookie_in(hdrs[i].value, hdrs[i].value + hdrs[i].value_len, name, nl, val, vlen))
            return 1;
    }
    return 0;
}

int tn_h1_query_param(const char *target, size_t tlen, const char *name, const char **val,
                      size_t *vlen)
{
    const char *q = memchr(target, '?', tlen), *end = target + tlen;
    size_t nl = strlen(name);

    if (!q)
        return 0;
    for (q++;;) {
        const char *amp = memchr(q, '&', (size_t)(end - q)), *eq;

        if (!amp)
            amp = end;
        eq = memchr(q, '=', (size_t)(amp - q));
        if (!eq)
            eq = amp;
        if ((size_t)(eq - q) == nl && memcmp(q, name, nl) == 0) {
            *val = eq < amp ? eq + 1 : amp;
            *vlen = eq < amp ? (size_t)(amp - eq - 1) : 0;
            return 1;
        }
        if (amp == end)
            break;
        q = amp + 1;
    }
    return 0;
}

/* Reason phrases by class, indexed by status % 100; NULL = unassigned. */
/* clang-format off */
static const char *const reasons_1xx[] = {"Continue", "Switching Protocols", NULL, "Early Hints"};
static const char *const reasons_2xx[] = {
    "OK", "Created", "Accepted", "Non-Authoritative Information", "No Content", "Reset Content",
    "Partial Content"};
static const char *const reasons_3xx[] = {
    "Multiple Choices", "Moved Permanently", "Found", "See Other", "Not Modified", NULL, NULL,
    "Temporary Redirect", "Permanent Redirect"};
static const char *const reasons_4xx[] = {
    "Bad Request", "Unauthorized", "Payment Required", "Forbidden", "Not Found",
    "Method Not Allowed", "Not Acceptable", "Proxy Authentication Required", "Request Timeout",
    "Conflict", "Gone", "Length Required", "Precondition Failed", "Content Too Large",
    "URI Too Long", "Unsupported Media Type", "Range Not Satisfiable", "Expectation Failed",
    NULL, NULL, NULL, "Misdirected Request", "Unprocessable Content", NULL, NULL, "Too Early",
    "Upgrade Required", NULL, "Precondition Required", "Too Many Requests", NULL,
    "Request Header Fields Too Large"};
static const char *const reasons_5xx[] = {
    "Internal Server Error", "Not Implemented", "Bad Gateway", "Service Unavailable",
    "Gateway Timeout", "HTTP Version Not Supported"};
/* clang-format on */

const char *tn_h1_reason(int status)
{
    static const struct {
        const char *const *tab;
        unsigned n;
        const char *fallback;
    } cls[] = {
        {reasons_1xx, TN_ARRAY_LEN(reasons_1xx), "Informational"},
        {reasons_2xx, TN_ARRAY_LEN(reasons_2xx), "Success"},
        {reasons_3xx, TN_ARRAY_LEN(reasons_3xx), "Redirection"},
        {reasons_4xx, TN_ARRAY_LEN(reasons_4xx), "Client Error"},
        {reasons_5xx, TN_ARRAY_LEN(reasons_5xx), "Server Error"},
    };
    unsigned c, i;

    if (status < 100 || status > 599)
        return "Unknown";
    c = (unsigned)status / 100 - 1;
    i = (unsigned)status % 100;
    if (i < cls[c].n && cls[c].tab[i])
        return cls[c].tab[i];
    return cls[c].fallback;
}
