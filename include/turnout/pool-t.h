/* Upstream connection types: one pool per backend server per worker, each
 * holding idle keep-alive connections. */
#ifndef TURNOUT_POOL_T_H
#define TURNOUT_POOL_T_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "turnout/io.h"

struct tn_worker;
struct tn_client;

/* An upstream HTTP/1.1 connection. Owned by its pool while idle, leased by
 * exactly one client exchange while busy. */
struct tn_upstream {
    struct tn_io io;
    struct tn_pool *pool;
    struct tn_client *owner; /* NULL while idle in the pool */
    TAILQ_ENTRY(tn_upstream) link;
    uint32_t requests;  /* exchanges carried so far: > 0 means reused */
    int connected;
    uint64_t idle_since_ms; /* when it went back to the pool */
};

TAILQ_HEAD(tn_upstream_list, tn_upstream);

/* Idle connections to one server address, per worker. */
struct tn_pool {
    struct tn_worker *w;
    struct sockaddr_storage ss;
    socklen_t len;
    char name[64]; /* "ip:port" for logs */
    struct tn_upstream_list idle;
    uint32_t nidle;
    uint32_t nbusy; /* leased connections (for per-server stats) */
};

#endif
