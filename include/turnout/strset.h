/* An immutable set of strings with O(1) membership, built incrementally
 * (add in batches, then seal), compact enough for millions of members: the
 * bytes in one growing block, an open-addressing table of 32-bit offsets
 * and 32-bit hash tags. Built on the control thread; after tn_strset_seal
 * any thread may test membership. Refcounted so overlays can share it. */
#ifndef TURNOUT_STRSET_H
#define TURNOUT_STRSET_H

#include <stddef.h>
#include <stdint.h>

struct tn_strset;

/* Returns a new empty, unsealed set with one reference, or NULL when
 * memory is short. Any thread (the builder owns it until sealed). */
struct tn_strset *tn_strset_new(void);
/* Makes room for n more members and `bytes` more member bytes, so that
 * adding them never rehashes the table (a hint: TN_ERR when memory is short;
 * the members stay and adds still work). Before seal, builder thread. */
int tn_strset_reserve(struct tn_strset *set, size_t n, size_t bytes);
/* Adds s (len bytes, any bytes, copied; len 0 is the empty string);
 * duplicates are kept once. TN_OK, or TN_ERR when memory is short or the
 * bytes pass 4 GiB (the set stays usable but incomplete). Before seal,
 * builder thread. */
int tn_strset_add(struct tn_strset *set, const char *s, size_t len);
/* Makes it read-only (and gives back the byte block's growth slack); from
 * here membership tests are allowed from any thread, once the set is
 * published to it (e.g. through an atomic pointer or a mutex). */
void tn_strset_seal(struct tn_strset *set);

/* 1 when s (len bytes) is a member, else 0; NULL set: 0. O(1), never
 * allocates, never writes; any thread after seal. */
int tn_strset_has(const struct tn_strset *set, const char *s, size_t len);
size_t tn_strset_count(const struct tn_strset *set); /* members */
size_t tn_strset_bytes(const struct tn_strset *set); /* memory used */

/* Takes one more reference (any thread); returns set. */
struct tn_strset *tn_strset_ref(struct tn_strset *set);
/* Drops one reference; the last frees the set. Any thread. NULL is a no-op. */
void tn_strset_unref(struct tn_strset *set);

#endif
