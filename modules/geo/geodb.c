/* GeoIP2/GeoLite2 databases through libmaxminddb: one memory-mapped file
 * per tn_geodb, shared by atomic reference between plans and overlays. It
 * owns the mapping and the file identity recorded at open, so the control
 * thread can tell when a new file took the path. Lookups only read the
 * mapping and allocate nothing. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <maxminddb.h>

#include "turnout/common.h"
#include "turnout/geodb.h"

struct tn_geodb {
    MMDB_s mmdb;
    atomic_uint refs;
    char *path;
    /* identity of the file at open: a change means a new database */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

/* MMDB_get_value() callocs its path array; MMDB_aget_value() with
 * prebuilt arrays does not. */
static const char *const country_path[] = {"country", "iso_code", NULL};
static const char *const continent_path[] = {"continent", "code", NULL};
static const char *const subdivision_path[] = {"subdivisions", "0", "iso_code", NULL};

/* "file: reason" in a new string; control thread. */
static char *open_error(const char *path, const char *reason, const char *detail)
{
    size_t n = strlen(path) + strlen(reason) + (detail ? strlen(detail) + 2 : 0) + 3;
    char *s = tn_xmalloc(n);

    if (detail)
        snprintf(s, n, "%s: %s: %s", path, reason, detail);
    else
        snprintf(s, n, "%s: %s", path, reason);
    return s;
}

/* Copies the string at path in entry into dst (cap bytes with the NUL) when
 * it is an ASCII alphanumeric code that fits, upper-cased; else leaves dst
 * empty (a truncated code would match the wrong route).
 * A subdivision written "DE-BY" keeps what follows the dash. */
static void get_code(MMDB_entry_s *entry, const char *const *path, char *dst, size_t cap,
                     int strip_country)
{
    MMDB_entry_data_s v;
    const char *s;
    uint32_t n, i;

    dst[0] = '\0';
    if (MMDB_aget_value(entry, &v, path) != MMDB_SUCCESS || !v.has_data ||
        v.type != MMDB_DATA_TYPE_UTF8_STRING)
        return;
    s = v.utf8_string;
    n = v.data_size;
    if (strip_country && n > 3 && s[2] == '-') {
        s += 3;
        n -= 3;
    }
    if (n == 0 || n >= cap)
        return;
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) {
            dst[0] = '\0';
            return;
        }
        dst[i] = c;
    }
    dst[n] = '\0';
}

static int same_mtime(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

struct tn_geodb *tn_geodb_open(const char *path, char **err)
{
    struct tn_geodb *db = tn_xcalloc(1, sizeof(*db));
    struct stat st;
    int rc;

    *err = NULL;
    /* stat before mapping: a file swapped in between is then seen as a
     * change (one extra reload), never missed */
    if (stat(path, &st) < 0) {
        *err = open_error(path, "cannot stat", strerror(errno));
        goto fail;
    }
    rc = MMDB_open(path, MMDB_MODE_MMAP, &db->mmdb);
    if (rc != MMDB_SUCCESS) {
        int e = errno;

        *err = open_error(path, MMDB_strerror(rc), rc == MMDB_IO_ERROR ? strerror(e) : NULL);
        goto fail;
    }
    db->path = tn_xstrdup(path);
    db->dev = st.st_dev;
    db->ino = st.st_ino;
    db->size = st.st_size;
    db->mtime = st.st_mtim;
    atomic_init(&db->refs, 1);
    return db;

fail:
    free(db);
    return NULL;
}

struct tn_geodb *tn_geodb_ref(struct tn_geodb *db)
{
    if (db)
        atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
    return db;
}

void tn_geodb_unref(struct tn_geodb *db)
{
    if (!db)
        return;
    if (atomic_fetch_sub_explicit(&db->refs, 1, memory_order_acq_rel) != 1)
        return;
    MMDB_close(&db->mmdb);
    free(db->path);
    free(db);
}

int tn_geodb_lookup(const struct tn_geodb *db, const struct sockaddr *sa, struct tn_geo *out)
{
    struct sockaddr_in v4;
    MMDB_lookup_result_s r;
    int mmerr = MMDB_SUCCESS;

    memset(out, 0, sizeof(*out));
    if (!db || !sa)
        return 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            memset(&v4, 0, sizeof(v4));
            v4.sin_family = AF_INET;
            memcpy(&v4.sin_addr, &s6->sin6_addr.s6_addr[12], 4);
            sa = (const struct sockaddr *)&v4;
        }
    } else if (sa->sa_family != AF_INET) {
        return 0;
    }
    r = MMDB_lookup_sockaddr(&db->mmdb, sa, &mmerr);
    if (mmerr != MMDB_SUCCESS || !r.found_entry)
        return 0;
    get_code(&r.entry, country_path, out->country, sizeof(out->country), 0);
    get_code(&r.entry, continent_path, out->continent, sizeof(out->continent), 0);
    get_code(&r.entry, subdivision_path, out->subdivision, sizeof(out->subdivision), 1);
    return 1;
}

int tn_geodb_changed(const struct tn_geodb *db)
{
    struct stat st;

    if (stat(db->path, &st) < 0)
        return 1;
    return st.st_dev != db->dev || st.st_ino != db->ino || st.st_size != db->size ||
           !same_mtime(&st.st_mtim, &db->mtime);
}

const char *tn_geodb_path(const struct tn_geodb *db)
{
    return db->path;
}
