/* Configuration loading: YAML through libyaml, every error reported as
 * "file:line:column: expected ...", then the whole load fails. */
#ifndef TURNOUT_CONF_H
#define TURNOUT_CONF_H

#include "turnout/conf-t.h"

/* Loads and validates the file at path (both passes: syntax and schema,
 * then name resolution). Returns a new conf owned by the caller, or NULL
 * with *errors set to a malloc'd text of one error per line (caller frees).
 * Any thread; touches no global state. */
struct tn_conf *tn_conf_load(const char *path, char **errors);

/* Same from memory; name is used in error messages and to resolve relative
 * paths (devices:). */
struct tn_conf *tn_conf_load_string(const char *name, const char *text, size_t len, char **errors);

/* Frees c and everything it owns; NULL is a no-op. */
void tn_conf_free(struct tn_conf *c);

/* Returns the index of the backend called name, or -1. */
int tn_conf_backend_index(const struct tn_conf *c, const char *name);

/* Parses "500ms", "2s", "1m", "1h", "90d" (and a bare number of seconds)
 * into milliseconds. Returns TN_OK or TN_ERR. */
int tn_conf_parse_duration(const char *s, uint64_t *ms);

/* Parses "512", "64k", "1m", "1g" (powers of 1024) into bytes. */
int tn_conf_parse_size(const char *s, uint64_t *bytes);

/* Parses "25", "0.5", "12.34", "25%" into hundredths of a percent, 0..10000.
 * More than two decimals is an error. */
int tn_conf_parse_percent(const char *s, uint32_t *x100);

/* Parses "host:port" / "[v6]:port" with a numeric host into a socket address. */
int tn_conf_parse_addr(const char *s, struct tn_conf_addr *out);

#endif
