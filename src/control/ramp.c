/* Ramp schedules: step arithmetic and the text form stored in Redis and
 * the state file. A ramp of N steps moves by step at start + i * interval
 * (i = 1..N), the last step landing exactly on the target. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/conf.h"
#include "turnout/ramp.h"

static uint32_t span(const struct tn_ramp *r)
{
    return r->to_x100 > r->from_x100 ? r->to_x100 - r->from_x100 : r->from_x100 - r->to_x100;
}

void tn_ramp_init(struct tn_ramp *r, uint32_t from_x100, uint32_t to_x100, uint64_t duration_ms,
                  uint32_t step_x100, uint64_t now_ms, const char *origin)
{
    uint64_t d, steps, max_steps;

    memset(r, 0, sizeof(*r));
    r->from_x100 = from_x100;
    r->to_x100 = to_x100;
    r->start_ms = now_ms;
    r->duration_ms = duration_ms;
    snprintf(r->origin, sizeof(r->origin), "%s", origin ? origin : "");
    d = span(r);
    if (!step_x100)
        step_x100 = 100;
    steps = d ? (d + step_x100 - 1) / step_x100 : 1;
    max_steps = duration_ms / 1000 ? duration_ms / 1000 : 1; /* at most one step a second */
    if (steps > max_steps) {
        steps = max_steps;
        step_x100 = (uint32_t)((d + steps - 1) / steps);
    }
    r->step_x100 = step_x100 ? step_x100 : 1;
}

uint32_t tn_ramp_steps(const struct tn_ramp *r)
{
    uint32_t d = span(r);

    return d ? (d + r->step_x100 - 1) / r->step_x100 : 1;
}

uint64_t tn_ramp_interval_ms(const struct tn_ramp *r)
{
    return r->duration_ms / tn_ramp_steps(r);
}

uint32_t tn_ramp_percent(const struct tn_ramp *r, uint64_t now_ms)
{
    uint64_t iv = tn_ramp_interval_ms(r), i, moved;
    uint32_t n = tn_ramp_steps(r);

    if (now_ms < r->start_ms)
        return r->from_x100;
    if (!iv || now_ms >= r->start_ms + r->duration_ms)
        return r->to_x100;
    i = (now_ms - r->start_ms) / iv;
    if (i >= n)
        return r->to_x100;
    moved = i * r->step_x100;
    if (moved >= span(r))
        return r->to_x100;
    return r->to_x100 > r->from_x100 ? r->from_x100 + (uint32_t)moved
                                     : r->from_x100 - (uint32_t)moved;
}

uint64_t tn_ramp_next_ms(const struct tn_ramp *r, uint64_t now_ms)
{
    uint64_t iv = tn_ramp_interval_ms(r), end = r->start_ms + r->duration_ms, i;

    if (now_ms >= end || !iv)
        return 0;
    if (now_ms < r->start_ms)
        return r->start_ms + iv;
    i = (now_ms - r->start_ms) / iv + 1;
    return r->start_ms + i * iv < end ? r->start_ms + i * iv : end;
}

const char *tn_percent_str(uint32_t x100, char *buf, size_t len)
{
    snprintf(buf, len, "%u.%02u", x100 / 100, x100 % 100);
    return buf;
}

size_t tn_ramp_encode(const struct tn_ramp *r, char *buf, size_t len)
{
    char a[16], b[16], c[16];
    int n = snprintf(buf, len, "from=%s to=%s step=%s start=%" PRIu64 " duration=%" PRIu64 " origin=%s",
                     tn_percent_str(r->from_x100, a, sizeof(a)), tn_percent_str(r->to_x100, b, sizeof(b)),
                     tn_percent_str(r->step_x100, c, sizeof(c)), r->start_ms, r->duration_ms,
                     r->origin);

    if (n >= 0 && (size_t)n < len && r->auto_rollback)
        n += snprintf(buf + n, len - (size_t)n, " by=auto-rollback");

    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

static int parse_u64(const char *s, uint64_t *v)
{
    char *end;

    if (*s < '0' || *s > '9')
        return TN_ERR;
    errno = 0;
    *v = strtoull(s, &end, 10);
    return *end || errno ? TN_ERR : TN_OK;
}

int tn_ramp_decode(const char *s, struct tn_ramp *r)
{
    char buf[512], *save = NULL, *tok;
    unsigned seen = 0;
    uint64_t v;

    if (strlen(s) >= sizeof(buf))
        return TN_ERR;
    memset(r, 0, sizeof(*r));
    strcpy(buf, s);
    for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        int ok;

        if (!eq)
            return TN_ERR;
        *eq++ = '\0';
        if (!strcmp(tok, "from"))
            ok = tn_conf_parse_percent(eq, &r->from_x100) == TN_OK, seen |= 1;
        else if (!strcmp(tok, "to"))
            ok = tn_conf_parse_percent(eq, &r->to_x100) == TN_OK, seen |= 2;
        else if (!strcmp(tok, "step"))
            ok = tn_conf_parse_percent(eq, &r->step_x100) == TN_OK && r->step_x100, seen |= 4;
        else if (!strcmp(tok, "start"))
            ok = parse_u64(eq, &r->start_ms) == TN_OK, seen |= 8;
        else if (!strcmp(tok, "duration"))
            ok = parse_u64(eq, &v) == TN_OK && (r->duration_ms = v, 1), seen |= 16;
        else if (!strcmp(tok, "origin"))
            ok = strlen(eq) < sizeof(r->origin) && (strcpy(r->origin, eq), 1);
        else if (!strcmp(tok, "by"))
            ok = 1, r->auto_rollback = !strcmp(eq, "auto-rollback");
        else
            ok = 1; /* later fields: ignored */
        if (!ok)
            return TN_ERR;
    }
    return seen == 31 ? TN_OK : TN_ERR;
}
