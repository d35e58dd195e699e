/* Stable identities: routes, backends and servers get a small integer id
 * from their name, the same in every plan of the process, so counters and
 * runtime state keyed by it survive reloads. Ids are dense and never
 * reused; plan indexes are never used as keys outside one plan. */
#ifndef TURNOUT_IDENT_H
#define TURNOUT_IDENT_H

#include <stdint.h>

enum tn_ident_kind {
    TN_IDENT_ROUTE,
    TN_IDENT_BACKEND,
    TN_IDENT_SERVER /* name: "backend/server" */
};

/* Returns the id of name in its kind, creating it on first use. Control
 * thread (plan building); aborts when memory is short (startup-like code). */
uint32_t tn_ident_intern(enum tn_ident_kind kind, const char *name);

/* Returns the name of id (borrowed, lives as long as the process), or NULL.
 * Any thread: the name of an id already handed out never moves. */
const char *tn_ident_name(enum tn_ident_kind kind, uint32_t id);

/* How many ids of kind exist (ids are 0 .. count-1). Any thread. */
uint32_t tn_ident_count(enum tn_ident_kind kind);

#endif
