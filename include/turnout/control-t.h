/* Control-plane types: the mutable runtime model the control thread keeps
 * (percents, ramps, pins, server states, health, events, versions) and
 * from which it builds each immutable overlay. Control thread only. */
#ifndef TURNOUT_CONTROL_T_H
#define TURNOUT_CONTROL_T_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/overlay-t.h"
#include "turnout/ramp.h"

struct event;
struct event_base;
struct tn_plan;
struct tn_overlay;
struct tn_redis;
struct tn_health;
struct tn_geodb;
struct tn_strset;
struct tn_setload;

/* A Redis set of a segment, as last loaded. */
struct tn_ctl_set {
    char *name;            /* the set's name: key turnout:{ns}:segment:{name} */
    struct tn_strset *set; /* one reference, NULL until a load completed */
    uint64_t loaded_ms;    /* wall clock of the last completed load */
    char error[160];       /* the last failed load's reason, "" when none */
};

/* One route's runtime state, by route id. */
struct tn_ctl_route {
    unsigned set : 1;     /* a runtime percent is in force */
    unsigned ramping : 1; /* ramp below is running */
    unsigned dirty : 1;   /* changed while Redis was down: to be written when it returns */
    unsigned to_down : 1; /* last seen: every server of "to" is down */
    uint32_t percent_x100;
    uint8_t source;       /* enum tn_source */
    uint32_t conf_x100;   /* the file's percent when this was set: a reload changing it wins */
    struct tn_ramp ramp;
};

/* One server's runtime state, by server id. */
struct tn_ctl_server {
    uint8_t state;  /* enum tn_server_state */
    uint8_t down;   /* the active check says down */
    uint8_t dirty;  /* see tn_ctl_route.dirty */
    uint8_t ejected; /* last seen passive ejection (for events) */
};

/* One pin; backend NULL: deleted while Redis was down (kept until written). */
struct tn_ctl_pin {
    char *key;
    char *backend;
    int dirty;
};

/* One recorded change. */
struct tn_event {
    uint64_t unix_ms;
    uint64_t version;
    char who[64];   /* "admin uid=0 pid=12", "redis", "ramp", "health", "reload", "state-file" */
    char what[160]; /* "weight default", "server new/a state", "pin u42", "ramp default" */
    char from[48];
    char to[160];
    char detail[400]; /* the figures behind an automatic change, or "" */
};

#define TN_CTL_EVENTS 1000 /* kept in memory for `show events` */

/* A fleet node as Redis's `nodes` hash last said (every full read). */
struct tn_ctl_node {
    char id[65];
    uint64_t version, seen_ms;
};

struct tn_ctl_hooks {
    /* hand ov (one reference, taken over) to every worker */
    void (*publish)(void *arg, struct tn_overlay *ov);
    /* reload the configuration file: TN_OK, or TN_ERR with *err (malloc'd) */
    int (*reload)(void *arg, char **err);
    void *arg;
};

struct tn_judge;

struct tn_ctl {
    struct event_base *base;
    struct tn_plan *plan; /* the plan in force (one reference) */
    struct tn_ctl_hooks hooks;
    char node_id[65];
    const char *config_path; /* borrowed from the server */
    struct tn_stats **shards; /* the workers' statistics shards (borrowed) */
    size_t nshards;
    unsigned nworkers;
    uint64_t started_ms;   /* wall clock */
    uint64_t generation;   /* config generation: plans loaded */
    uint64_t version;      /* runtime version applied (Redis's counter when synced) */
    struct tn_ctl_route *routes; /* [route id] */
    uint32_t nroutes;
    struct tn_ctl_server *servers; /* [server id] */
    uint32_t nservers;
    struct tn_ctl_pin *pins; /* sorted by key */
    size_t npins, pins_cap;
    int pins_changed;        /* rebuild the pins table at the next publish */
    struct tn_pins *pins_table; /* the last built (one reference) */
    struct tn_overlay *ov;      /* the last published (one reference), for `explain` */
    struct tn_event *events; /* ring */
    size_t nevents, events_head;
    struct tn_redis *redis;
    int redis_up;
    unsigned writes_in_flight; /* Redis writes not answered yet */
    int resync_after_writes;
    char redis_why[160];
    struct tn_judge *judge;  /* automatic rollback */
    struct tn_ctl_node *fleet; /* the nodes sharing this Redis namespace */
    size_t nfleet;
    struct tn_health *health;
    struct tn_setload *setload;  /* Redis sets of segments */
    struct tn_ctl_set *sets;
    size_t nsets;
    uint64_t sets_reloaded_ms;   /* monotonic: last periodic reload of every set */
    struct tn_geodb *geodb;      /* the GeoIP database in force (one reference) */
    int geodb_failed;            /* a replaced file failed to open (logged once) */
    struct event *ramp_ev;  /* next ramp step */
    struct event *tick_ev;  /* health bookkeeping, every 500 ms */
    char *state_file;
    int state_file_failed; /* logged once until it works again */
};

#endif
