/* The statistics shards as the admin socket and /stats.json show them
 * (statsview.c). Control thread. */
#ifndef TURNOUT_STATSVIEW_H
#define TURNOUT_STATSVIEW_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct tn_ctl;

/* `show stats [json]`: one row per route x side x backend. */
void tn_statsview_stats(const struct tn_ctl *c, struct evbuffer *out, int json);

/* A server's connection figures: JSON members (",\"active\":..") or text
 * columns (active idle connects connect_errors). */
void tn_statsview_server(const struct tn_ctl *c, uint32_t server_id, struct evbuffer *out,
                         int json);

/* The share of a shifting route's requests routed to "to" over the last
 * minute (x100) and how many were routed; 0 when none were. */
int tn_statsview_split(const struct tn_ctl *c, size_t route, uint64_t *routed, uint32_t *to_x100);

/* ",\"actual\":..,\"routed_60s\":.." for plan route `route`. */
void tn_statsview_split_json(const struct tn_ctl *c, size_t route, struct evbuffer *out);

/* [{address, open, accepted, rejected}] */
void tn_statsview_listeners(const struct tn_ctl *c, struct evbuffer *out);

/* [{node, version, seen, self}] from Redis's nodes hash; [] without Redis. */
void tn_statsview_fleet(const struct tn_ctl *c, struct evbuffer *out);

/* {seconds, end, routes: [{route, from, to, sides: {from: {routed, attempts,
 * errors, p50_ms, p99_ms}, to: {..}}}]}: the last `seconds` complete
 * seconds of every shifting route. */
void tn_statsview_series(const struct tn_ctl *c, struct evbuffer *out, size_t seconds);

#endif
