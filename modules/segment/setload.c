/* Segment set loads (turnout/setload.h): one load object per set name in
 * progress, each with at most one command in flight (SCARD to size the new
 * set, then SSCAN ... COUNT 1000 until the cursor is 0), so every reply
 * callback does one batch of work and the loop runs between batches.
 * A load object lives until its pending reply comes back: tn_setload_free
 * orphans the loads in flight, and their callbacks (answered at the latest
 * by tn_redis_free, with an error) free them without touching the loader.
 * Control thread only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "turnout/common.h"
#include "turnout/redis.h"
#include "turnout/setload.h"
#include "turnout/strset.h"

#define BATCH "1000"
#define AVG_MEMBER_BYTES 16 /* a guess to pre-size the byte block from SCARD */

#define LOAD_STATES(X)                                                                             \
    X(SIZING)   /* SCARD sent: the size for tn_strset_reserve */                                   \
    X(SCANNING) /* SSCAN sent with cursor */                                                       \
    X(ORPHAN)   /* tn_setload_free called: freed when the pending reply returns */

enum load_state {
#define TN_X_ENUM(s) LOAD_##s,
    LOAD_STATES(TN_X_ENUM)
#undef TN_X_ENUM
};

/* Legal next states, one bit per state. */
static const unsigned load_next[] = {
    [LOAD_SIZING] = 1u << LOAD_SCANNING | 1u << LOAD_ORPHAN,
    [LOAD_SCANNING] = 1u << LOAD_SCANNING | 1u << LOAD_SIZING | 1u << LOAD_ORPHAN,
    [LOAD_ORPHAN] = 0,
};

/* One set being loaded; in its loader's list until it ends. A command is
 * always in flight for it (its callback is the only one that runs it). */
struct load {
    struct load *prev, *next;
    struct tn_setload *l; /* NULL once orphaned */
    enum load_state state;
    char *name, *key;
    char *next_key; /* the key of a coalesced start, when it differs */
    int again;      /* a start came while running: one more full load */
    struct tn_strset *set;
    char cursor[24];
};

struct tn_setload {
    struct tn_redis *r;
    tn_setload_done_fn *done;
    void *arg;
    struct load *loads;
    int busy; /* done callbacks on the stack */
    int dead; /* tn_setload_free called from one of them */
};

static void on_reply(void *arg, const struct redisReply *reply, const char *err);

/* ---- helpers ---- */

static void set_state(struct load *ld, enum load_state s)
{
    TN_BUG_ON(!(load_next[ld->state] & (1u << s)));
    ld->state = s;
}

static struct load *find(const struct tn_setload *l, const char *name)
{
    struct load *ld;

    for (ld = l->loads; ld; ld = ld->next)
        if (strcmp(ld->name, name) == 0)
            return ld;
    return NULL;
}

static void unlink_load(struct tn_setload *l, struct load *ld)
{
    if (ld->prev)
        ld->prev->next = ld->next;
    else
        l->loads = ld->next;
    if (ld->next)
        ld->next->prev = ld->prev;
    ld->prev = ld->next = NULL;
}

static void load_free(struct load *ld)
{
    tn_strset_unref(ld->set);
    free(ld->name);
    free(ld->key);
    free(ld->next_key);
    free(ld);
}

/* Sends the load's next command: SCARD when sizing, else SSCAN at cursor. */
static int send_next(struct load *ld)
{
    const char *argv[] = {"SSCAN", ld->key, ld->cursor, "COUNT", BATCH};

    if (ld->state == LOAD_SIZING) {
        argv[0] = "SCARD";
        return tn_redis_command(ld->l->r, 2, argv, NULL, on_reply, ld);
    }
    return tn_redis_command(ld->l->r, 5, argv, NULL, on_reply, ld);
}

/* (Re)starts ld from the beginning with a new empty set. */
static int load_begin(struct load *ld)
{
    tn_strset_unref(ld->set);
    ld->set = tn_strset_new();
    if (!ld->set)
        return TN_ERR;
    if (ld->next_key) {
        free(ld->key);
        ld->key = ld->next_key;
        ld->next_key = NULL;
    }
    snprintf(ld->cursor, sizeof(ld->cursor), "0");
    if (ld->state != LOAD_SIZING)
        set_state(ld, LOAD_SIZING);
    return send_next(ld);
}

static void destroy(struct tn_setload *l)
{
    struct load *ld;

    while ((ld = l->loads) != NULL) {
        unlink_load(l, ld);
        set_state(ld, LOAD_ORPHAN); /* its pending reply frees it */
        ld->l = NULL;
        tn_strset_unref(ld->set);
        ld->set = NULL;
    }
    free(l);
}

/* The load ended with set (taken over by done) or err: restarts it when a
 * start was coalesced, else drops it; then reports. */
static void finish(struct load *ld, struct tn_strset *set, const char *err)
{
    struct tn_setload *l = ld->l;
    int running = 0, lost = 0;

    if (ld->again) {
        ld->again = 0;
        running = load_begin(ld) == TN_OK;
        lost = !running && !err; /* the coalesced start gets its answer too */
    }
    if (!running)
        unlink_load(l, ld);
    l->busy++;
    l->done(l->arg, ld->name, set, err);
    if (lost && !l->dead)
        l->done(l->arg, ld->name, NULL, "cannot start the coalesced reload (redis down?)");
    l->busy--;
    if (!running)
        load_free(ld);
    if (l->dead && !l->busy)
        destroy(l);
}

/* SCARD's answer: pre-size the set, so no batch rehashes a big table (a
 * hint: a failure only means growing while adding). */
static const char *on_size(struct load *ld, const struct redisReply *rp)
{
    if (rp->type != REDIS_REPLY_INTEGER)
        return "SCARD: unexpected reply";
    if (rp->integer > 0 && rp->integer <= UINT32_MAX / AVG_MEMBER_BYTES)
        tn_strset_reserve(ld->set, (size_t)rp->integer, (size_t)rp->integer * AVG_MEMBER_BYTES);
    set_state(ld, LOAD_SCANNING);
    return NULL;
}

/* One SSCAN batch: [cursor, [member, ...]]. */
static const char *on_batch(struct load *ld, const struct redisReply *rp)
{
    const struct redisReply *cur, *mem;
    size_t i;

    if (rp->type != REDIS_REPLY_ARRAY || rp->elements != 2 ||
        rp->element[0]->type != REDIS_REPLY_STRING || rp->element[1]->type != REDIS_REPLY_ARRAY ||
        rp->element[0]->len >= sizeof(ld->cursor) || rp->element[0]->len == 0)
        return "SSCAN: unexpected reply";
    cur = rp->element[0];
    mem = rp->element[1];
    for (i = 0; i < mem->elements; i++) {
        if (mem->element[i]->type != REDIS_REPLY_STRING)
            return "SSCAN: unexpected reply";
        if (tn_strset_add(ld->set, mem->element[i]->str, mem->element[i]->len) != TN_OK)
            return "out of memory";
    }
    memcpy(ld->cursor, cur->str, cur->len + 1);
    return NULL;
}

static void on_reply(void *arg, const struct redisReply *reply, const char *err)
{
    struct load *ld = arg;
    struct tn_strset *set;
    int sized = ld->state == LOAD_SIZING;

    if (ld->state == LOAD_ORPHAN) {
        load_free(ld);
        return;
    }
    if (!err)
        err = sized ? on_size(ld, reply) : on_batch(ld, reply);
    if (err) {
        tn_strset_unref(ld->set);
        ld->set = NULL;
        finish(ld, NULL, err);
        return;
    }
    if (sized || strcmp(ld->cursor, "0") != 0) {
        if (send_next(ld) != TN_OK) {
            tn_strset_unref(ld->set);
            ld->set = NULL;
            finish(ld, NULL, "redis connection lost");
        }
        return;
    }
    set = ld->set;
    ld->set = NULL;
    tn_strset_seal(set);
    finish(ld, set, NULL);
}

/* ---- public ---- */

struct tn_setload *tn_setload_new(struct tn_redis *r, tn_setload_done_fn *done, void *arg)
{
    struct tn_setload *l;

    if (!r || !done)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->r = r;
    l->done = done;
    l->arg = arg;
    return l;
}

void tn_setload_free(struct tn_setload *l)
{
    if (!l || l->dead)
        return;
    if (l->busy) {
        l->dead = 1; /* finish() frees it when the done callback returns */
        return;
    }
    destroy(l);
}

int tn_setload_start(struct tn_setload *l, const char *name, const char *key)
{
    struct load *ld;

    if (!l || l->dead || !name || !key)
        return TN_ERR;
    ld = find(l, name);
    if (ld) {
        if (strcmp(key, ld->next_key ? ld->next_key : ld->key) != 0) {
            char *k = strdup(key);

            if (!k)
                return TN_ERR;
            free(ld->next_key);
            ld->next_key = k;
        }
        ld->again = 1;
        return TN_OK;
    }
    if (tn_redis_link_state(l->r) != TN_REDIS_UP)
        return TN_ERR;
    ld = calloc(1, sizeof(*ld));
    if (!ld)
        return TN_ERR;
    ld->l = l;
    ld->state = LOAD_SIZING;
    ld->name = strdup(name);
    ld->key = strdup(key);
    if (!ld->name || !ld->key || load_begin(ld) != TN_OK) {
        load_free(ld);
        return TN_ERR;
    }
    ld->next = l->loads;
    if (l->loads)
        l->loads->prev = ld;
    l->loads = ld;
    return TN_OK;
}

int tn_setload_busy(const struct tn_setload *l, const char *name, size_t *members)
{
    const struct load *ld = l ? find(l, name) : NULL;

    if (members)
        *members = ld ? tn_strset_count(ld->set) : 0;
    return ld != NULL;
}
