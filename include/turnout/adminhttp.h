/* The admin HTTP listener (admin.http, loopback by default): /metrics in
 * the Prometheus text format, /stats.json, /healthz. libevent's evhttp on
 * the control thread's event_base; a request from an address that is not
 * loopback gets 403, an unknown path 404. Control thread only. */
#ifndef TURNOUT_ADMINHTTP_H
#define TURNOUT_ADMINHTTP_H

#include "turnout/conf-t.h"

struct event_base;
struct evbuffer;
struct tn_ctl;
struct tn_admin_http;

/* Listens on addr. NULL with *why on failure. */
struct tn_admin_http *tn_admin_http_new(struct event_base *base, const struct tn_conf_addr *addr,
                                        struct tn_ctl *c, const char **why);
void tn_admin_http_free(struct tn_admin_http *h); /* NULL is a no-op */

/* The Prometheus text exposition of c's figures (metrics.c). */
void tn_metrics_write(struct tn_ctl *c, struct evbuffer *out);

/* Appends the /dashboard page (dashboard.c: HTML embedded at build time)
 * to out, by reference. Any thread. */
void tn_dashboard_write(struct evbuffer *out);

#endif
