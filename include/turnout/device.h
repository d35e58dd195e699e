/* The device catalog: classes -> PCRE2 patterns on User-Agent, compiled
 * once with JIT; the first class whose pattern matches wins. Built on the
 * control thread with the plan; classification on any worker thread, with
 * the worker's match data and a small per-worker cache of recent
 * User-Agents (real traffic repeats a few thousand of them). */
#ifndef TURNOUT_DEVICE_H
#define TURNOUT_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/conf-t.h"

struct tn_devices;
struct pcre2_real_match_data_8;

/* Compiles n classes (copied). NULL with *err (malloc'd, one line per bad
 * pattern: "class smart-tv: bad regex ... at offset N: reason"). Patterns
 * are caseless (PCRE2_CASELESS; "(?-i:...)" opts out) and unanchored.
 * err may be NULL; n may be 0 (nothing is classified). Control thread;
 * the catalog is then read-only and shared by every worker. */
struct tn_devices *tn_devices_new(const struct tn_conf_device *classes, size_t n, char **err);
void tn_devices_free(struct tn_devices *d); /* NULL is a no-op */

size_t tn_devices_count(const struct tn_devices *d);
const char *tn_devices_name(const struct tn_devices *d, size_t i);
/* The index of class name, or -1. */
int tn_devices_find(const struct tn_devices *d, const char *name);

/* A per-worker cache of User-Agent -> class (direct-mapped, keyed by a
 * 64-bit hash of the whole User-Agent and its length). entries is rounded
 * up to a power of two; NULL when 0, above 2^24, or out of memory (classify
 * then works without a cache). Owned and used by one thread. */
struct tn_device_cache;
struct tn_device_cache *tn_device_cache_new(size_t entries); /* a power of two */
void tn_device_cache_free(struct tn_device_cache *c);        /* NULL is a no-op */

/* The class index of ua (len bytes, not NUL-terminated), or -1 when no
 * pattern matches (also for an empty or absent User-Agent). cache may be
 * NULL; a cache is tied to one catalog (pass the same d, or clear it with
 * tn_device_cache_clear when the catalog changes). md: match data of the
 * calling thread. */
int tn_devices_classify(const struct tn_devices *d, struct tn_device_cache *cache,
                        struct pcre2_real_match_data_8 *md, const char *ua, size_t len);
void tn_device_cache_clear(struct tn_device_cache *c);

/* Added: the cache's hit and miss counts since it was made (a cache that
 * meets a catalog other than the one that filled it also clears itself:
 * each catalog carries a unique generation). c may be NULL (zeros). */
void tn_device_cache_stats(const struct tn_device_cache *c, uint64_t *hits, uint64_t *misses);

struct tn_plan;

/* The name of class idx in plan's catalog (device module), or NULL. */
const char *tn_device_plan_name(const struct tn_plan *plan, int idx);

#endif
