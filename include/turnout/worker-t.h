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
#include "turnout/pool-t.h"
#include "turnout/route-t.h"

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

struct tn_worker {
    int id;
    pthread_t thread;
    struct event_base *base;
    struct evconnlistener **listeners;
    int *listen_fds; /* created by the control thread before the worker starts */
    size_t nlisteners;
    struct tn_wplan *wp;           /* current view */
    _Atomic(struct tn_plan *) pending; /* next plan handed over by the control thread */
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
    uint32_t nclients;
    uint32_t max_clients;
    int listening;
    int draining;
    uint64_t next_id;
    char *scratch; /* head serialization space, see tn_worker_scratch */
    size_t scratch_len;
    struct tn_h1_hdr *hdrs; /* parse space for one head */
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
