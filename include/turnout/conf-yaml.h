/* Generic libyaml document helpers for the configuration loader (internal
 * to src/conf): error collection with marks, scalar parsers and the
 * key-table driven mapping walker. Only the src/conf files include this. */
#ifndef TURNOUT_CONF_YAML_H
#define TURNOUT_CONF_YAML_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "turnout/conf-t.h"

/* One load in progress: the document being walked and the error text. */
struct tn_conf_ctx {
    const char *file;     /* name used in messages */
    yaml_document_t *doc; /* document being walked (borrowed) */
    char *diag;           /* collected errors, one per line (owned) */
    size_t diag_len, diag_cap;
    unsigned nerrors;
    unsigned long nvalues; /* values walked so far, bounded by TN_CONF_MAX_VALUES */
};

/* Most values one load walks: YAML aliases let a small file name the same
 * big node many times, and each use is parsed again. */
#define TN_CONF_MAX_VALUES 1000000ul

/* The value types a key table can describe. */
enum tn_conf_type {
    TN_CONF_STRING,   /* char *, any non-empty text */
    TN_CONF_BOOL,     /* int: true/false/yes/no/on/off */
    TN_CONF_U32,      /* uint32_t in [min, max] */
    TN_CONF_DURATION, /* uint32_t milliseconds */
    TN_CONF_SIZE,     /* size_t bytes */
    TN_CONF_PERCENT,  /* uint32_t hundredths of a percent */
    TN_CONF_ADDR,     /* struct tn_conf_addr (text is set) */
    TN_CONF_MODE,     /* unsigned, octal file mode "0600" */
    TN_CONF_REGEX,    /* char *, must compile with PCRE2 */
    TN_CONF_STRLIST,  /* struct tn_conf_strlist: one string or a list */
    TN_CONF_MAP,      /* nested mapping walked with sub, into obj + off */
    TN_CONF_FUNC      /* custom: fn(cx, value node, obj + off) */
};

struct tn_conf_ctx;

/* A custom value parser: reports its own errors, returns TN_OK or TN_ERR. */
typedef int tn_conf_parse_fn(struct tn_conf_ctx *cx, yaml_node_t *n, void *field);

/* A text validator for STRING/STRLIST keys: NULL when s is fine, else a
 * static "a ..." phrase naming what was expected. May normalise s in place. */
typedef const char *tn_conf_check_fn(char *s);

#define TN_CONF_K_REQUIRED 0x1u /* missing key is an error */

/* One row of a key table; tables end with a row whose name is NULL. */
struct tn_conf_key {
    const char *name;
    enum tn_conf_type type;
    size_t off;
    unsigned flags;
    tn_conf_parse_fn *fn;          /* TN_CONF_FUNC */
    tn_conf_check_fn *check;       /* STRING, STRLIST: optional */
    uint32_t min, max;             /* U32 bounds; DURATION (ms) and SIZE minimum */
    const struct tn_conf_key *sub; /* MAP: the nested table */
};

/* path resolved against the directory of file (the configuration that
 * names it); an absolute path as it is. Returns malloc'd text. */
char *tn_conf_path_beside(const char *file, const char *path);

/* Reads a whole regular file of at most 16 MiB (a device catalog...).
 * Returns malloc'd NUL-terminated text and *len, or NULL with errno. */
char *tn_conf_read_file(const char *path, size_t *len);

/* Key table rows: KEY(name, type, struct, field) and friends. */
#define KEY(nm, ty, st, f)                                                                         \
    {                                                                                              \
        .name = nm, .type = ty, .off = offsetof(st, f)                                             \
    }
#define KREQ(nm, ty, st, f)                                                                        \
    {                                                                                              \
        .name = nm, .type = ty, .off = offsetof(st, f), .flags = TN_CONF_K_REQUIRED                \
    }
#define KCHK(nm, ty, st, f, chk)                                                                   \
    {                                                                                              \
        .name = nm, .type = ty, .off = offsetof(st, f), .check = chk                               \
    }
#define KU32(nm, st, f, lo, hi)                                                                    \
    {                                                                                              \
        .name = nm, .type = TN_CONF_U32, .off = offsetof(st, f), .min = lo, .max = hi              \
    }
#define KMIN(nm, ty, st, f, lo)                                                                    \
    {                                                                                              \
        .name = nm, .type = ty, .off = offsetof(st, f), .min = lo                                  \
    }
#define KFN(nm, st, f, func)                                                                       \
    {                                                                                              \
        .name = nm, .type = TN_CONF_FUNC, .off = offsetof(st, f), .fn = func                       \
    }
#define KMAP(nm, st, f, tab)                                                                       \
    {                                                                                              \
        .name = nm, .type = TN_CONF_MAP, .off = offsetof(st, f), .sub = tab                        \
    }
#define KEND                                                                                       \
    {                                                                                              \
        .name = NULL                                                                               \
    }

/* Appends "file:line:column: <text>\n" using n's start mark (NULL: 1:1). */
void tn_conf_err(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same at an explicit 1-based mark (second-pass errors). */
void tn_conf_err_mark(struct tn_conf_ctx *cx, struct tn_conf_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reports `expected <what>, got <n described>` at n. Returns TN_ERR. */
int tn_conf_expect(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what);

/* Returns n's 1-based mark. */
struct tn_conf_mark tn_conf_mark_of(const yaml_node_t *n);

/* Returns the child node at index (a yaml_node_item_t or pair member). */
yaml_node_t *tn_conf_node(struct tn_conf_ctx *cx, int index);

/* Sequence and mapping accessors (n must have that kind; i < length). */
size_t tn_conf_seq_len(const yaml_node_t *n);
yaml_node_t *tn_conf_seq_at(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i);
size_t tn_conf_map_len(const yaml_node_t *n);
yaml_node_t *tn_conf_map_key(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i);
yaml_node_t *tn_conf_map_value(struct tn_conf_ctx *cx, const yaml_node_t *n, size_t i);

/* Writes a short printable description of n ("\"text\"", "a mapping",
 * "a list", "nothing") into buf; returns buf. */
const char *tn_conf_describe(const yaml_node_t *n, char *buf, size_t size);

/* 1 when n is a YAML null (empty, ~, null) plain scalar, or NULL itself. */
int tn_conf_is_null(const yaml_node_t *n);

/* Returns the scalar's text when n is a scalar without NUL bytes, else
 * reports `expected <what>` and returns NULL. Borrowed from the document. */
const char *tn_conf_scalar(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what);

/* Checks n is a mapping (reporting "expected a mapping for <what>"). */
int tn_conf_want_map(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what);

/* Checks n is a sequence (reporting "expected a list for <what>"). */
int tn_conf_want_seq(struct tn_conf_ctx *cx, const yaml_node_t *n, const char *what);

/* Walks mapping map with table keys, storing into obj. what names the
 * mapping in messages. Reports unknown, duplicate, missing required keys
 * and bad values; a null value counts as absent. *seen (may be NULL) gets
 * bit i set for every keys[i] present. Returns TN_OK when no error. */
int tn_conf_walk(struct tn_conf_ctx *cx, yaml_node_t *map, const char *what,
                 const struct tn_conf_key *keys, void *obj, uint32_t *seen);

/* Parses one value of the given type at n into field; reports errors. */
int tn_conf_value(struct tn_conf_ctx *cx, yaml_node_t *n, const struct tn_conf_key *k, void *field);

/* Scalar parsers for single values, each reporting at n on failure. */
int tn_conf_get_string(struct tn_conf_ctx *cx, yaml_node_t *n, tn_conf_check_fn *check, char **out);
int tn_conf_get_bool(struct tn_conf_ctx *cx, yaml_node_t *n, int *out);
int tn_conf_get_u32(struct tn_conf_ctx *cx, yaml_node_t *n, uint32_t min, uint32_t max,
                    uint32_t *out);
int tn_conf_get_regex(struct tn_conf_ctx *cx, yaml_node_t *n, char **out);

/* Parses "true/false/yes/no/on/off" (case-insensitive). */
int tn_conf_parse_bool(const char *s, int *out);

/* Parses an octal mode "0600" / "600" up to 0777. */
int tn_conf_parse_mode(const char *s, unsigned *out);

/* Parses "10.0.0.0/8", "::1/128" or a bare address (full-length prefix).
 * Host bits beyond the prefix must be zero. */
int tn_conf_parse_cidr(const char *s, struct tn_conf_cidr *out);

/* Text validators usable as tn_conf_check_fn. */
const char *tn_conf_check_token(char *s); /* HTTP token (header name, method) */
const char *tn_conf_check_name(char *s);  /* [A-Za-z0-9_.-], 1..64 */

/* Frees a string list's items and array; leaves it empty. */
void tn_conf_strlist_free(struct tn_conf_strlist *l);

/* Counts one more value; past TN_CONF_MAX_VALUES reports (once) at n and
 * returns TN_ERR, and the caller stops walking. */
int tn_conf_count_value(struct tn_conf_ctx *cx, const yaml_node_t *n);

/* Returns the collected errors (owned by the caller) and empties cx. */
char *tn_conf_take_errors(struct tn_conf_ctx *cx);

/* Reports a libyaml parser error as file:line:column: problem. */
void tn_conf_parser_err(struct tn_conf_ctx *cx, const yaml_parser_t *p);

#endif
