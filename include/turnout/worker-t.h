/* Worker types: one thread, one event_base, its own listeners, pools and
 * plan view. Nothing here is shared with other workers except the plan
 * (read-only) and the access-log buffer (handed to the writer thread). */
#ifndef TURNOUT_WORKER_T_H
#define TURNOUT_WORKER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/queue.h>

#include "turnout/balance.h"
#include "turnout/budget-t.h"
#include "turnout/io.h"
#include "turnout/overlay-t.h"
#include "turnout/pool-t.h"
#include "turnout/route-t.h"
#include "turnout/stream-t.h"

struct event_base;
struct event;
struct evconnlistener;
struct timeval;
struct tn_client;
struct tn_accesslog_shard;

TAILQ_HEAD(tn_client_list, tn_client);

#define TN_WORKER_CMD_PLAN 0x1  /* adopt `pending` */
#define TN_WORKER_CMD_DRAIN 0x2 /* stop accepting, finish in-flight exchanges, exit */
#define TN_WORKER_CMD_STOP 0x4  /* exit the loop now */
#define TN_WORKER_CMD_OVERLAY 0x8 /* adopt `pending_ov` */

/* A plan as one worker uses it: the plan plus worker-local state derived
 * from it (server -> pool, balancer state). Streams count as users, so a
 * retired view lives until its last exchange ends, without atomics. */
struct tn_wplan {
    struct tn_plan *plan; /* one reference */
    struct tn_pool ***pools;           /* [backend][server] */
    struct tn_balance *balance;        /* [backend] */
    const struct timeval *tv_header, *tv_body, *tv_idle, *tv_connect, *tv_response;
    uint32_t users;
    int retired;
};

/* A worker's state for one route, indexed by the route's stable id so it
 * survives reloads: the replay budget. (Replays are counted in the
 * statistics shard.) */
struct tn_route_wstate {
    struct tn_budget budget;
};

struct tn_worker {
    int id;
    uint32_t nworkers; /* workers of the process (shares of process-wide budgets) */
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener **listeners;
    int *listen_fds; /* created by the control thread before the worker starts */
    size_t nlisteners;
    char **listen_names;  /* [listener]: its address as configured at start */
    uint8_t *listen_tls;  /* [listener]: a TLS listener (its contexts come from the plan) */
    struct tn_wplan *wp;           /* current view */
    _Atomic(struct tn_plan *) pending; /* next plan handed over by the control thread */
    struct tn_overlay *ov;             /* runtime overlay in force (one reference) or NULL */
    _Atomic(struct tn_overlay *) pending_ov; /* next overlay handed over */
    int notify_fd;                 /* eventfd the control thread writes to wake the worker */
    struct event *notify_ev;
    struct event *tick_ev;         /* once a second: pool sweep */
    struct event *resume_ev;       /* re-enables accepting after an accept() failure */
    uint64_t accept_err_logged_ms;
    atomic_uint cmds;              /* TN_WORKER_CMD_* bits posted by the control thread */
    struct pcre2_real_match_data_8 *md;
    struct tn_pool **pools;
    size_t npools;
    struct tn_client_list clients;
    struct tn_client_list dead_clients; /* freed by the end-of-callback hook */
    uint32_t nclients;
    struct tn_ioq ioq;                  /* end-of-callback flushes and frees */
    struct tn_stream_list streams;      /* live streams */
    struct tn_stream_list dead_streams; /* ended; freed by the end-of-callback hook */
    struct tn_upstream_list dead_upstreams; /* closed; freed by the end-of-callback hook */
    struct tn_stream_list free_streams; /* recycled stream objects */
    uint32_t nstreams, nfree_streams;
    struct evbuffer *body_tmp;          /* decoded chunked bytes, empty between calls */
    struct tn_route_wstate *rstate;     /* [route id] */
    uint32_t nrstate;
    uint32_t max_clients;
    int listening;
    int draining;
    uint64_t next_id;
    char *scratch; /* head serialization space, see tn_worker_scratch */
    size_t scratch_len;
    uint64_t now_ms;       /* monotonic ms of the request being routed (passive health) */
    void *mod_wk[8];       /* per-worker state of each classifier module (tn_modules order) */
    struct tn_stats *stats; /* this worker's statistics shard (read by the control thread) */
    uint8_t *usable;       /* balancer space: one flag per server of a backend */
    size_t nusable;
    struct tn_field *hdrs; /* parse space for one head */
    uint32_t max_hdrs;
    struct tn_accesslog_shard *log;
    void (*on_exit)(void *arg); /* called on the worker thread as it ends */
    void *on_exit_arg;
    char date[40]; /* cached ISO time for the access log */
    int64_t date_sec;
    char http_date[40]; /* cached IMF-fixdate for Date fields */
    int64_t http_date_sec;
};

#endif
