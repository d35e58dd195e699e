/* The fields turnout adds to a response it relays: the assigned sticky
 * cookie (assign_cookie) and, with debug_headers, X-Turnout-Attempts (every
 * attempt's backend, server and status) and, for clients in
 * trusted_proxies only, X-Turnout-Decision (the routing decision
 * explained). Worker thread. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "turnout/arena.h"
#include "turnout/clientaddr.h"
#include "turnout/common.h"
#include "turnout/route.h"
#include "turnout/stream.h"
#include "turnout/worker-t.h"

/* Whether the client may see X-Turnout-Decision: only an address in
 * trusted_proxies (never anybody else, even with debug_headers). */
static int debug_trusted(const struct tn_stream *s)
{
    const struct tn_conf *conf = s->wp->plan->conf;

    return tn_client_ip_trusted(s->client_ip, conf->trusted_proxies, conf->ntrusted_proxies);
}

/* Fields the stream adds to the final response: the assigned sticky cookie
 * and, with debug_headers, the attempts and (to trusted clients) the
 * decision. */
void tn_stream_add_extra(struct tn_stream *s, struct tn_msg *m)
{
    const struct tn_conf *conf = s->wp->plan->conf;
    struct tn_field *x;
    unsigned n = 0, i;

    if (!(s->dec.set_cookie && conf->assign_cookie.enabled) && !conf->debug_headers)
        return;
    x = tn_arena_alloc(&s->arena, 3 * sizeof(*x));
    if (!x)
        return;
    if (s->dec.set_cookie && conf->assign_cookie.enabled) {
        char v[160];
        int len = snprintf(v, sizeof(v), "%s=%s; Max-Age=%llu; Path=/; HttpOnly",
                           conf->assign_cookie.name, s->dec.key_buf,
                           (unsigned long long)conf->assign_cookie.max_age_s);

        if (len > 0 && (size_t)len < sizeof(v) && (x[n].value = tn_arena_strndup(&s->arena, v, (size_t)len))) {
            x[n].name = "Set-Cookie";
            x[n].name_len = 10;
            x[n].value_len = (uint32_t)len;
            x[n++].flags = 0;
        }
    }
    if (conf->debug_headers) {
        char v[1024];
        size_t len = 0;

        for (i = 0; i < s->natt && len < sizeof(v); i++) {
            const struct tn_attempt *a = &s->att[i];
            const struct tn_conf_backend *b = &conf->backends[a->backend];
            char what[24];
            int k;

            if (a->status)
                snprintf(what, sizeof(what), "%d", a->status);
            else
                snprintf(what, sizeof(what), "%s", a->err ? tn_attempt_error_name(a->err) : "-");
            k = snprintf(v + len, sizeof(v) - len, "%s%s/%s %s", i ? ", " : "", b->name,
                         b->servers[a->server].name, what);
            if (k < 0)
                break;
            len += (size_t)k;
        }
        if (len >= sizeof(v))
            len = sizeof(v) - 1;
        if ((x[n].value = tn_arena_strndup(&s->arena, v, len))) {
            x[n].name = "X-Turnout-Attempts";
            x[n].name_len = 18;
            x[n].value_len = (uint32_t)len;
            x[n++].flags = 0;
        }
        if (debug_trusted(s)) {
            len = tn_route_explain(s->wp->plan, &s->dec, v, sizeof(v));
            if ((x[n].value = tn_arena_strndup(&s->arena, v, len))) {
                x[n].name = "X-Turnout-Decision";
                x[n].name_len = 18;
                x[n].value_len = (uint32_t)len;
                x[n++].flags = 0;
            }
        }
    }
    m->extra = x;
    m->nextra = n;
}

