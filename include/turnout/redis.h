/* Redis fleet sync client: one hiredis async connection for commands and
 * one for the `changes` subscription, both on the control thread's
 * event_base (hiredis libevent adapter). Finds the master directly or
 * through Redis Sentinel, AUTHs with the password from the environment
 * variable the config names, reconnects with backoff, re-reads every key
 * the node follows on every reconnect, on every `changes` message and every
 * redis.resync, writes changes (one MULTI per change), and reports the
 * node's applied version in the `nodes` hash. Control thread only. */
#ifndef TURNOUT_REDIS_H
#define TURNOUT_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "turnout/conf-t.h"

struct event_base;
struct redisReply;
struct tn_redis;

enum tn_redis_link {
    TN_REDIS_CONNECTING, /* first attempt, or a retry in progress */
    TN_REDIS_UP,         /* both connections ready, subscribed, first read done */
    TN_REDIS_DOWN        /* lost or refused; a retry is scheduled */
};

/* One hash field, borrowed for the duration of a callback. */
struct tn_redis_kv {
    const char *key;
    const char *value;
};

/* Everything under turnout:{ns}: that a node follows, read in one pipelined
 * round trip (HGETALL weights, pins, servers, ramps; GET version). */
struct tn_redis_snapshot {
    uint64_t version; /* turnout:{ns}:version, 0 when absent or not a number */
    const struct tn_redis_kv *weights; /* route -> percent as a decimal string */
    size_t nweights;
    const struct tn_redis_kv *pins; /* sticky key -> backend */
    size_t npins;
    const struct tn_redis_kv *servers; /* "backend/server" -> ready|drain|maint */
    size_t nservers;
    const struct tn_redis_kv *ramps; /* route -> ramp schedule (text owned by the control layer) */
    size_t nramps;
    const struct tn_redis_kv *sources; /* route -> where its weight came from ("auto-rollback") */
    size_t nsources;
    const struct tn_redis_kv *nodes; /* node id -> {"version":N,"seen":unix ms} */
    size_t nnodes;
};

/* One hash operation of a change: HSET turnout:{ns}:{hash} field value, or
 * HDEL when value is NULL. */
struct tn_redis_op {
    const char *hash; /* "weights", "pins", "servers", "ramps" */
    const char *field;
    const char *value;
};

/* One change: MULTI, the ops, INCR version, XADD events MAXLEN ~ 10000 *
 * with the event's field/value pairs, EXEC; then PUBLISH changes message. */
struct tn_redis_change {
    const struct tn_redis_op *ops;
    size_t nops;
    const char *const *event; /* field, value, field, value, ..., NULL */
    const char *message;      /* what changed: "weights", "pins", "servers", "ramps", "all" */
};

/* The result of a write: version is the new turnout:{ns}:version (0 on
 * failure, then err says why). */
typedef void tn_redis_done_fn(void *arg, uint64_t version, const char *err);

/* The answer to tn_redis_command: reply (borrowed until the callback
 * returns) with err NULL, or reply NULL and err saying why: Redis's error
 * reply ("WRONGTYPE Operation against a key ..."), "redis connection lost",
 * "shutting down" (tn_redis_free). */
typedef void tn_redis_reply_fn(void *arg, const struct redisReply *reply, const char *err);

struct tn_redis_cbs {
    /* A full read completed (after connect, on a `changes` message, on
     * resync). Strings are borrowed until the callback returns. */
    void (*on_snapshot)(void *arg, const struct tn_redis_snapshot *snap);
    /* The link changed state; why is a short human reason or NULL. */
    void (*on_link)(void *arg, enum tn_redis_link link, const char *why);
    void *arg;
    /* Every message on `changes` (payload borrowed until the callback
     * returns), before the client acts on it: a message starting with
     * "segment:" names a segment set (loaded separately, e.g. by
     * turnout/setload.h) and triggers no full read; any other does. May be
     * NULL. */
    void (*on_message)(void *arg, const char *payload);
};

/* Starts connecting (returns at once; never blocks). conf and node_id are
 * copied. Returns NULL with *why on a bad argument (e.g. the password
 * variable named by password_env is not set). */
struct tn_redis *tn_redis_new(struct event_base *base, const struct tn_conf_redis *conf,
                              const char *node_id, const struct tn_redis_cbs *cbs,
                              const char **why);

/* Disconnects and frees; pending writes get done(arg, 0, "shutting down").
 * NULL is a no-op. */
void tn_redis_free(struct tn_redis *r);

/* Sends one change. Returns TN_OK when queued (done is called later,
 * exactly once) or TN_ERR when the link is not up (done is not called). */
int tn_redis_write(struct tn_redis *r, const struct tn_redis_change *ch, tn_redis_done_fn *done,
                   void *arg);

/* Sends one command (argv[i] of argvlen[i] bytes, or strlen when argvlen is
 * NULL; copied) on the command connection. Returns TN_OK when queued: cb is
 * then called exactly once, later, from the event loop (never from inside
 * this call), also when the link drops (err "redis connection lost") or on
 * tn_redis_free ("shutting down", from inside tn_redis_free). TN_ERR when
 * the link is not up or the command cannot be queued: cb is not called. */
int tn_redis_command(struct tn_redis *r, int argc, const char **argv, const size_t *argvlen,
                     tn_redis_reply_fn *cb, void *arg);

/* Re-reads everything now (when up); the result comes to on_snapshot. */
void tn_redis_resync(struct tn_redis *r);

/* Records the version this node has applied; written to the `nodes` hash
 * (node id -> "{"version":V,"seen":UNIX_MS}") now when up and at every
 * resync. */
void tn_redis_report(struct tn_redis *r, uint64_t applied_version);

enum tn_redis_link tn_redis_link_state(const struct tn_redis *r);

/* "turnout:{ns}:", the prefix of every key. */
const char *tn_redis_prefix(const struct tn_redis *r);

/* A one-line description for `show info`: "up 127.0.0.1:6379",
 * "up 127.0.0.1:6380 (sentinel master mymaster)", "down: Connection
 * refused; retry in 400 ms". Writes into buf, returns buf. */
const char *tn_redis_describe(const struct tn_redis *r, char *buf, size_t len);

/* The address in use ("127.0.0.1:6379") or NULL when none. */
const char *tn_redis_master(const struct tn_redis *r);

#endif
