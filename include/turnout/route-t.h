/* Routing types: the plan (an immutable snapshot of routes, compiled
 * regexes and backends) and the decision taken for one request. */
#ifndef TURNOUT_ROUTE_T_H
#define TURNOUT_ROUTE_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "turnout/conf-t.h"
#include "turnout/h1-t.h"
#include "turnout/module-t.h"

struct pcre2_real_code_8;
struct tn_overlay;
struct pcre2_real_match_data_8;

struct tn_plan_route {
    const struct tn_conf_route *conf;
    struct pcre2_real_code_8 *host_re; /* NULL: any host */
    struct pcre2_real_code_8 *path_re; /* NULL: any path */
    struct pcre2_real_code_8 **header_re; /* conf->match.nheaders entries */
    uint32_t percent_x100; /* shift percent in force (starts at the configured one) */
    uint32_t id;           /* stable identity (turnout/ident.h) */
    unsigned needs;        /* TN_FACT_* its match needs */
    int device;            /* match.device: class index in the catalog, -1 when none */
    int segment;           /* match.segment: index in conf->segments, -1 when none */
};

/* Immutable once published. Workers hold one reference per stream. */
struct tn_plan {
    atomic_uint refs;
    uint64_t version;
    struct tn_conf *conf; /* owned */
    struct tn_plan_route *routes;
    size_t nroutes;
    uint32_t *backend_ids; /* [backend]: stable identities */
    uint32_t **server_ids; /* [backend][server] */
    uint32_t max_route_id; /* 1 + the largest route id of this plan */
    char *override_token;  /* from overrides.token_env at build time; NULL: trusted peers only */
    size_t override_token_len;
    void *mod_state[8];    /* [i]: state of tn_modules[i] for this plan, NULL when unused */
    unsigned needs;        /* TN_FACT_* some route matches on */
};

/* Why the backend was chosen; names come from tn_route_reason_name(). */
#define TN_ROUTE_REASONS(X)                                                                        \
    X(NO_ROUTE)   /* no route matched: the proxy answers 503 */                                    \
    X(ROUTE_PIN)  /* the route names a backend */                                                  \
    X(SHIFT_TO)   /* bucket < percent: shifted to "to" */                                          \
    X(SHIFT_FROM) /* bucket >= percent: stays on "from" */                                       \
    X(USER_PIN)   /* the user's sticky key is pinned (`pin`) */                                    \
    X(TO_DOWN)    /* shifted, but every server of "to" is down: sent to "from" */                  \
    X(OVERRIDE)   /* the override header, with a valid token or from a trusted address */

enum tn_route_reason {
#define TN_X_ENUM(r) TN_ROUTE_##r,
    TN_ROUTE_REASONS(TN_X_ENUM)
#undef TN_X_ENUM
};

/* What the router needs to know about a request; borrowed pointers. */
struct tn_route_req {
    const char *method;
    size_t method_len;
    const char *host; /* Host value, may carry ":port"; NULL when absent */
    size_t host_len;
    const char *target; /* origin-form path[?query] */
    size_t target_len;
    const struct tn_field *hdrs;
    unsigned nhdrs;
    const char *client_ip; /* textual client address, NUL-terminated */
    const struct tn_overlay *ov; /* runtime percents and pins; NULL: the plan alone */
    /* whether backend (plan index) has a server that can take a request;
     * NULL: all can */
    int (*backend_up)(void *ctx, int backend);
    void *up_ctx;
    void **mod_wk; /* the worker's per-module state (tn_modules order), or NULL */
};

#define TN_ROUTE_UID_LEN 32

struct tn_decision {
    int route;   /* index into plan->routes, -1 when none matched */
    int backend; /* index into plan->conf->backends, -1 when none */
    enum tn_route_reason reason;
    enum tn_sticky_kind key_source; /* TN_STICKY_NONE for pinned routes */
    const char *key;                /* borrowed from the request, or key_buf */
    size_t key_len;
    char key_buf[TN_ROUTE_UID_LEN + 1]; /* a freshly generated uid */
    char addr_buf[46];                  /* client_ip key taken from X-Forwarded-For */
    int set_cookie;                     /* 1: send assign_cookie with key_buf */
    int has_bucket;
    uint32_t bucket; /* 0..999999 */
    struct tn_facts facts; /* what classification found (facts.have says what ran) */
    int override;          /* TN_OVERRIDE_*: what the override header did */
};

#define TN_OVERRIDE_NONE 0      /* no override header */
#define TN_OVERRIDE_HONOURED 1  /* it chose the backend */
#define TN_OVERRIDE_REFUSED 2   /* wrong or missing token from an untrusted address: ignored */
#define TN_OVERRIDE_UNKNOWN 3   /* it named no backend of this plan: ignored */

#endif
