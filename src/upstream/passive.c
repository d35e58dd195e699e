/* Passive ejection state: one record per server id, written by every worker
 * as its requests succeed or fail, read before each pick. Records live in
 * fixed chunks that the control thread adds (tn_passive_reserve) and that
 * never move nor go away, so readers need no lock; each record has its own
 * cache line, and a success writes nothing unless there is state to reset. */
#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/health.h"
#include "turnout/log.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS) /* records per chunk: 64 KiB */
#define MAX_IDS (1u << 20)       /* generous: ident tables hold fewer */
#define NCHUNKS (MAX_IDS / CHUNK)

struct passive_rec {
    alignas(64) atomic_uint_least32_t failures; /* consecutive, since the last success */
    atomic_uint_least32_t backoff_ms; /* last ejection's length; 0: none since a success */
    atomic_uint_least64_t until_ms;   /* ejected while now < until_ms */
    atomic_uint_least64_t ejections;  /* total, for show */
};

/* chunks[i] holds ids i*CHUNK .. (i+1)*CHUNK-1; NULL until reserved.
 * Published with release, read with acquire. */
static _Atomic(struct passive_rec *) chunks[NCHUNKS];

static struct passive_rec *rec_of(uint32_t id)
{
    struct passive_rec *c;

    if (id >= MAX_IDS)
        return NULL;
    c = atomic_load_explicit(&chunks[id >> CHUNK_BITS], memory_order_acquire);
    return c ? &c[id & (CHUNK - 1)] : NULL;
}

static struct passive_rec *chunk_new(void)
{
    struct passive_rec *c = aligned_alloc(64, CHUNK * sizeof(*c));
    uint32_t i;

    if (!c) {
        /* control thread, before a plan is published: like tn_xmalloc */
        tn_log(TN_LOG_ERR, "passive: out of memory reserving server records");
        abort();
    }
    for (i = 0; i < CHUNK; i++) {
        atomic_init(&c[i].failures, 0);
        atomic_init(&c[i].backoff_ms, 0);
        atomic_init(&c[i].until_ms, 0);
        atomic_init(&c[i].ejections, 0);
    }
    return c;
}

/* Tries to eject r from now for len ms; expect is the until_ms the caller
 * saw (not in force at now). Only the reporter whose CAS lands ejects. */
static int eject(struct passive_rec *r, uint64_t expect, uint64_t now_ms, uint32_t len)
{
    if (!atomic_compare_exchange_strong_explicit(&r->until_ms, &expect, now_ms + len,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return 0;
    atomic_store_explicit(&r->backoff_ms, len, memory_order_relaxed);
    atomic_store_explicit(&r->failures, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->ejections, 1, memory_order_relaxed);
    return 1;
}

void tn_passive_reserve(uint32_t count)
{
    uint32_t i, n;

    if (count > MAX_IDS) {
        tn_log(TN_LOG_WARN, "passive: %u server ids, only the first %u get passive checks",
               (unsigned)count, (unsigned)MAX_IDS);
        count = MAX_IDS;
    }
    n = (count + CHUNK - 1) >> CHUNK_BITS;
    for (i = 0; i < n; i++)
        if (!atomic_load_explicit(&chunks[i], memory_order_relaxed))
            atomic_store_explicit(&chunks[i], chunk_new(), memory_order_release);
}

int tn_passive_report(uint32_t server_id, int failed, const struct tn_conf_passive *pc,
                      uint64_t now_ms)
{
    struct passive_rec *r = rec_of(server_id);
    uint64_t until, next;
    uint32_t backoff, cap;

    if (!r)
        return 0;
    if (!failed) {
        /* the common case: read only, so the line stays shared between workers */
        if (atomic_load_explicit(&r->failures, memory_order_relaxed))
            atomic_store_explicit(&r->failures, 0, memory_order_relaxed);
        if (atomic_load_explicit(&r->backoff_ms, memory_order_relaxed))
            atomic_store_explicit(&r->backoff_ms, 0, memory_order_relaxed);
        return 0;
    }
    if (!pc->failures)
        return 0;
    until = atomic_load_explicit(&r->until_ms, memory_order_acquire);
    if (until > now_ms)
        return 0; /* already out: requests started before the ejection */
    backoff = atomic_load_explicit(&r->backoff_ms, memory_order_relaxed);
    if (backoff) {
        /* failing again right after an ejection: out at once, for longer */
        cap = pc->max_eject_ms > pc->eject_ms ? pc->max_eject_ms : pc->eject_ms;
        next = 2 * (uint64_t)backoff;
        return eject(r, until, now_ms, next < cap ? (uint32_t)next : cap);
    }
    if (atomic_fetch_add_explicit(&r->failures, 1, memory_order_relaxed) + 1 < pc->failures)
        return 0;
    return eject(r, until, now_ms, pc->eject_ms);
}

int tn_passive_ejected(uint32_t server_id, uint64_t now_ms)
{
    struct passive_rec *r = rec_of(server_id);

    return r && atomic_load_explicit(&r->until_ms, memory_order_relaxed) > now_ms;
}

void tn_passive_get(uint32_t server_id, struct tn_passive_view *v)
{
    struct passive_rec *r = rec_of(server_id);

    memset(v, 0, sizeof(*v));
    if (!r)
        return;
    v->failures = atomic_load_explicit(&r->failures, memory_order_relaxed);
    v->until_ms = atomic_load_explicit(&r->until_ms, memory_order_relaxed);
    v->backoff_ms = atomic_load_explicit(&r->backoff_ms, memory_order_relaxed);
    v->ejections = atomic_load_explicit(&r->ejections, memory_order_relaxed);
}

void tn_passive_clear(uint32_t server_id)
{
    struct passive_rec *r = rec_of(server_id);

    if (!r)
        return;
    atomic_store_explicit(&r->failures, 0, memory_order_relaxed);
    atomic_store_explicit(&r->backoff_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&r->until_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&r->ejections, 0, memory_order_relaxed);
}
