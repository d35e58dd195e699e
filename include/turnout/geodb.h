/* GeoIP2/GeoLite2 lookups (libmaxminddb): a memory-mapped database shared
 * by reference between plans and overlays, replaced when the file changes
 * (SIGHUP, or a new file at the same path) without failing a lookup in
 * flight. Open/close on the control thread; lookups on any thread. */
#ifndef TURNOUT_GEODB_H
#define TURNOUT_GEODB_H

#include <stddef.h>
#include <sys/socket.h>

#include "turnout/module-t.h"

struct tn_geodb;

/* Opens path with MMDB_MODE_MMAP. Returns a database with one reference, or
 * NULL with *err (malloc'd: "file.mmdb: <libmaxminddb's reason>"). */
struct tn_geodb *tn_geodb_open(const char *path, char **err);

struct tn_geodb *tn_geodb_ref(struct tn_geodb *db);
void tn_geodb_unref(struct tn_geodb *db); /* unmaps at the last; NULL is a no-op */

/* Looks up sa (AF_INET or AF_INET6; an IPv4-mapped IPv6 address is looked
 * up as IPv4). Returns 1 when the address is in the database (out filled),
 * 0 when not (out zeroed). Any thread; no allocation. */
int tn_geodb_lookup(const struct tn_geodb *db, const struct sockaddr *sa, struct tn_geo *out);

/* Whether the file at the path it was opened from is now another file
 * (device, inode, size or mtime differ) or gone. Control thread. */
int tn_geodb_changed(const struct tn_geodb *db);

const char *tn_geodb_path(const struct tn_geodb *db);

#endif
