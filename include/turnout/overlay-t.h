/* Runtime overlay types: what changes without a reload (percents, pins,
 * server states, health), keyed by stable identities (turnout/ident.h) so
 * it is independent of any one plan. Immutable once published; workers
 * read it without locks. */
#ifndef TURNOUT_OVERLAY_T_H
#define TURNOUT_OVERLAY_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Where a route's percent in force came from, names for `show routes`. */
#define TN_SOURCES(X)                                                                              \
    X(CONFIG, "config")        /* the file */                                                      \
    X(ADMIN, "admin")          /* set weight / rollback on this node's socket */                   \
    X(REDIS, "redis")          /* another node or a tool, through Redis */                         \
    X(RAMP, "ramp")            /* a ramp step */                                                   \
    X(HEALTH, "health")        /* every server of "to" is down: users go to "from" */             \
    X(AUTO_ROLLBACK, "auto-rollback")

enum tn_source {
#define TN_X_ENUM(s, name) TN_SOURCE_##s,
    TN_SOURCES(TN_X_ENUM)
#undef TN_X_ENUM
    TN_SOURCE_COUNT
};

/* A server's administrative state (`set server ... state`). */
#define TN_SERVER_STATES(X)                                                                        \
    X(READY, "ready") /* takes requests */                                                         \
    X(DRAIN, "drain") /* no new requests; those in flight finish */                                \
    X(MAINT, "maint") /* takes nothing */

enum tn_server_state {
#define TN_X_ENUM(s, name) TN_SERVER_##s,
    TN_SERVER_STATES(TN_X_ENUM)
#undef TN_X_ENUM
    TN_SERVER_STATE_COUNT
};

/* One route's runtime percent. */
struct tn_ov_route {
    int32_t percent_x100; /* -1: none set, the plan's configured percent is in force */
    uint8_t source;       /* enum tn_source of percent_x100 */
};

/* One pin: a sticky key sent to a backend whatever the percent. */
struct tn_pin {
    char *key;
    uint32_t backend_id; /* stable backend identity */
    uint64_t hash;
};

/* Immutable open-addressing table of pins, shared by successive overlays
 * until the pins change. */
struct tn_pins {
    atomic_uint refs;
    size_t n;        /* pins */
    size_t mask;     /* slots - 1 (slots a power of two), 0 when empty */
    struct tn_pin *slots; /* key NULL: empty slot */
};

struct tn_geodb;
struct tn_strset;

/* A segment's Redis set as last loaded. */
struct tn_ov_set {
    char *name;           /* the set's name (segment `redis_set:`) */
    struct tn_strset *set; /* one reference */
};

struct tn_overlay {
    atomic_uint refs;
    uint64_t version;          /* the runtime version it reflects */
    uint32_t nroutes;          /* routes[] covers route ids below this */
    struct tn_ov_route *routes;
    uint32_t nservers;         /* arrays below cover server ids below this */
    uint8_t *server_state;     /* enum tn_server_state */
    uint8_t *server_down;      /* 1: the active health check says down */
    struct tn_pins *pins;      /* one reference; never NULL */
    struct tn_geodb *geodb;    /* the GeoIP database in force (one reference) or NULL */
    struct tn_ov_set *sets;    /* Redis segment sets loaded so far */
    size_t nsets;
};

#endif
