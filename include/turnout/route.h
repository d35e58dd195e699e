/* Routing: builds plans from a configuration and decides, for one request,
 * which route and backend take it (DESIGN.md "Routing semantics"). */
#ifndef TURNOUT_ROUTE_H
#define TURNOUT_ROUTE_H

#include "turnout/route-t.h"

/* Builds a plan from conf, taking ownership of conf (freed with the plan,
 * or at once on failure). Compiles every regex with JIT. Returns a plan with
 * one reference, or NULL with *err (malloc'd, caller frees). Control thread. */
struct tn_plan *tn_plan_new(struct tn_conf *conf, uint64_t version, char **err);

/* Reference counting; any thread. unref frees at zero; NULL is a no-op. */
struct tn_plan *tn_plan_ref(struct tn_plan *p);
void tn_plan_unref(struct tn_plan *p);

/* Returns the sticky bucket 0..999999 of key on route route_name:
 * XXH3-64 (seed 0) over route_name, one NUL byte, key; modulo 1 000 000. */
uint32_t tn_route_bucket(const char *route_name, const char *key, size_t key_len);

/* Finds the request's sticky key: the first sticky_key source the request
 * carries (cookie, header, query parameter), in configured order. When
 * assign_cookie is enabled, its cookie comes next, and when absent a new
 * random uid is generated (d->set_cookie = 1), so client_ip is reached only
 * with assign_cookie off. Fills d->key, d->key_len, d->key_source. */
void tn_route_sticky_key(const struct tn_plan *p, const struct tn_route_req *rq,
                         struct tn_decision *d);

/* Decides route and backend for rq: first matching route; a backend pin,
 * or a shift where bucket < percent_x100 * 100 goes to "to". md is the
 * calling worker's match data (ovector of 1 is enough). Returns TN_OK, or
 * TN_ERR when no route matched (d->reason = NO_ROUTE). Any worker thread;
 * borrows everything. */
int tn_route_decide(const struct tn_plan *p, const struct tn_route_req *rq,
                    struct pcre2_real_match_data_8 *md, struct tn_decision *d);

/* One line explaining d: "route=tv-eu match=path,device country=DE ...
 * device=smart-tv segments=beta key=header bucket=123 reason=shift_to
 * backend=new". Returns its length (truncated to len - 1). Any thread. */
size_t tn_route_explain(const struct tn_plan *p, const struct tn_decision *d, char *buf,
                        size_t len);
/* "path,device", or "*" for a route matching everything. */
size_t tn_route_match_keys(const struct tn_conf_match *m, char *buf, size_t len);
/* "beta,staff": the names of the segments in bits. */
size_t tn_route_segment_names(const struct tn_plan *p, uint64_t bits, char *buf, size_t len);
/* The side of route r that backend (plan index) is: "from" or "to" for a
 * shifting route, "pinned" otherwise (a pinned route, a user pin or an
 * override to another backend). */
const char *tn_route_side_name(const struct tn_conf_route *r, int backend);
/* "honoured", "refused", "unknown_backend", or "" for TN_OVERRIDE_NONE. */
const char *tn_route_override_name(int override);

const char *tn_route_reason_name(enum tn_route_reason r);
const char *tn_route_sticky_name(enum tn_sticky_kind k);

#endif
