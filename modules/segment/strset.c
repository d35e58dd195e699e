/* String sets (turnout/strset.h): the members' bytes in one growing block,
 * each behind a LEB128 length, and an open-addressing table (linear
 * probing, load factor <= 0.7) of {offset + 1, hash tag} pairs; XXH3 gives
 * the slot (low 32 bits) and the tag (high 32 bits). Built by one thread,
 * read by any after tn_strset_seal; the refcount is a C11 atomic. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "turnout/common.h"
#include "turnout/strset.h"

#define MIN_SLOTS 16u
#define MIN_DATA 256u
#define MAX_DATA ((size_t)UINT32_MAX - 1) /* offsets are 32-bit, 0 means empty */

/* One table entry: off is the member's offset in data plus one (0: free). */
struct slot {
    uint32_t off;
    uint32_t tag;
};

struct tn_strset {
    atomic_uint refs;
    int sealed;          /* no more adds; any thread may read */
    unsigned char *data; /* members: LEB128 length, then the bytes */
    size_t dlen, dcap;
    struct slot *slots;
    size_t mask; /* number of slots - 1 (a power of two) */
    size_t count;
};

/* ---- helpers ---- */

static uint64_t hash_of(const char *s, size_t len)
{
    return XXH3_64bits(s, len);
}

/* Decodes the member at data[off]: returns its bytes, stores its length. */
static const unsigned char *member_at(const struct tn_strset *set, size_t off, size_t *len)
{
    const unsigned char *p = set->data + off;
    size_t n = 0;
    unsigned shift = 0;

    for (;;) {
        n |= (size_t)(*p & 0x7f) << shift;
        if (!(*p++ & 0x80))
            break;
        shift += 7;
    }
    *len = n;
    return p;
}

/* Slot count for n members at a load factor <= 0.7, or 0 when too many. */
static size_t slots_for(size_t n)
{
    size_t cap = MIN_SLOTS;

    while (n * 10 > cap * 7) {
        if (cap > SIZE_MAX / 20)
            return 0;
        cap *= 2;
    }
    return cap;
}

/* Index of s's slot: the one holding it, or the free one where it goes. */
static size_t find_slot(const struct tn_strset *set, const char *s, size_t len, uint64_t h,
                        int *found)
{
    uint32_t tag = (uint32_t)(h >> 32);
    size_t i = (size_t)(uint32_t)h & set->mask, mlen;
    const unsigned char *m;

    for (;; i = (i + 1) & set->mask) {
        const struct slot *sl = &set->slots[i];

        if (!sl->off) {
            *found = 0;
            return i;
        }
        if (sl->tag != tag)
            continue;
        m = member_at(set, sl->off - 1, &mlen);
        if (mlen == len && memcmp(m, s, len) == 0) {
            *found = 1;
            return i;
        }
    }
}

/* Moves every member into a table of cap slots. TN_ERR leaves set as it was. */
static int rehash(struct tn_strset *set, size_t cap)
{
    struct slot *old = set->slots, *nw = calloc(cap, sizeof(*nw));
    size_t i, oldcap = set->mask + 1, len, j;
    const unsigned char *m;
    uint64_t h;

    if (!nw)
        return TN_ERR;
    for (i = 0; i < oldcap; i++) {
        if (!old[i].off)
            continue;
        m = member_at(set, old[i].off - 1, &len);
        h = hash_of((const char *)m, len);
        for (j = (size_t)(uint32_t)h & (cap - 1); nw[j].off; j = (j + 1) & (cap - 1))
            ;
        nw[j] = old[i];
    }
    free(old);
    set->slots = nw;
    set->mask = cap - 1;
    return TN_OK;
}

/* Makes room for need more bytes of data. */
static int data_reserve(struct tn_strset *set, size_t need)
{
    size_t cap = set->dcap ? set->dcap : MIN_DATA;
    unsigned char *p;

    if (need > MAX_DATA - set->dlen)
        return TN_ERR;
    if (set->dlen + need <= set->dcap)
        return TN_OK;
    while (cap < set->dlen + need)
        cap = cap > MAX_DATA / 2 ? MAX_DATA : cap * 2;
    p = realloc(set->data, cap);
    if (!p)
        return TN_ERR;
    set->data = p;
    set->dcap = cap;
    return TN_OK;
}

/* ---- public ---- */

struct tn_strset *tn_strset_new(void)
{
    struct tn_strset *set = calloc(1, sizeof(*set));

    if (!set)
        return NULL;
    set->slots = calloc(MIN_SLOTS, sizeof(*set->slots));
    if (!set->slots) {
        free(set);
        return NULL;
    }
    set->mask = MIN_SLOTS - 1;
    atomic_init(&set->refs, 1);
    return set;
}

int tn_strset_reserve(struct tn_strset *set, size_t n, size_t bytes)
{
    size_t cap;

    TN_BUG_ON(set->sealed);
    if (n > SIZE_MAX - set->count)
        return TN_ERR;
    cap = slots_for(set->count + n);
    if (!cap)
        return TN_ERR;
    if (cap > set->mask + 1 && rehash(set, cap) != TN_OK)
        return TN_ERR;
    return data_reserve(set, bytes);
}

int tn_strset_add(struct tn_strset *set, const char *s, size_t len)
{
    unsigned char hdr[10];
    size_t nhdr = 0, i, n = len, cap;
    uint64_t h = hash_of(s, len);
    int found;

    TN_BUG_ON(set->sealed);
    i = find_slot(set, s, len, h, &found);
    if (found)
        return TN_OK;
    if ((set->count + 1) * 10 > (set->mask + 1) * 7) {
        cap = slots_for(set->count + 1);
        if (!cap || rehash(set, cap) != TN_OK)
            return TN_ERR;
        i = find_slot(set, s, len, h, &found);
    }
    do {
        hdr[nhdr++] = (unsigned char)((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
        n >>= 7;
    } while (n);
    if (len > MAX_DATA || data_reserve(set, nhdr + len) != TN_OK)
        return TN_ERR;
    set->slots[i].off = (uint32_t)(set->dlen + 1);
    set->slots[i].tag = (uint32_t)(h >> 32);
    memcpy(set->data + set->dlen, hdr, nhdr);
    if (len)
        memcpy(set->data + set->dlen + nhdr, s, len);
    set->dlen += nhdr + len;
    set->count++;
    return TN_OK;
}

void tn_strset_seal(struct tn_strset *set)
{
    unsigned char *p;

    if (set->sealed)
        return;
    set->sealed = 1;
    if (set->dcap > set->dlen && set->dlen) {
        p = realloc(set->data, set->dlen); /* give the growth slack back */
        if (p) {
            set->data = p;
            set->dcap = set->dlen;
        }
    }
}

int tn_strset_has(const struct tn_strset *set, const char *s, size_t len)
{
    int found;

    if (!set)
        return 0;
    find_slot(set, s, len, hash_of(s, len), &found);
    return found;
}

size_t tn_strset_count(const struct tn_strset *set)
{
    return set ? set->count : 0;
}

size_t tn_strset_bytes(const struct tn_strset *set)
{
    if (!set)
        return 0;
    return sizeof(*set) + set->dcap + (set->mask + 1) * sizeof(struct slot);
}

struct tn_strset *tn_strset_ref(struct tn_strset *set)
{
    if (set)
        atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
    return set;
}

void tn_strset_unref(struct tn_strset *set)
{
    if (!set || atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(set->data);
    free(set->slots);
    free(set);
}
