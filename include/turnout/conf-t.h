/* Configuration types: the in-memory form of conf/turnout.yaml after
 * loading and validation. Every duration is in milliseconds, every size in
 * bytes, every percent in hundredths of a percent (0..10000). */
#ifndef TURNOUT_CONF_T_H
#define TURNOUT_CONF_T_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Where a key was written: 1-based line and column, for second-pass errors. */
struct tn_conf_mark {
    unsigned line;
    unsigned col;
};

struct tn_conf_strlist {
    char **v;
    size_t n;
};

/* A host:port parsed into a socket address ("1.2.3.4:80", "[::1]:80",
 * "0.0.0.0:8080", "[::]:8080"). */
struct tn_conf_addr {
    char *text;
    struct sockaddr_storage ss;
    socklen_t len;
};

struct tn_conf_cert {
    char *cert;
    char *key;
    struct tn_conf_mark mark; /* where the pair was written */
};

struct tn_tls; /* the listener's TLS contexts (src/core/tls.c), built at load */

struct tn_conf_listen {
    struct tn_conf_addr addr;
    struct tn_conf_cert *certs; /* TLS when ncerts > 0 */
    size_t ncerts;
    /* tls: settings */
    uint32_t tls_min_version;      /* 0x0303 (1.2, default) or 0x0304 (1.3) */
    char *tls_ciphers;             /* TLS 1.2 cipher list (OpenSSL syntax), NULL: ours */
    char *tls_ciphersuites;        /* TLS 1.3 suites, NULL: OpenSSL's */
    uint32_t tls_handshake_ms;     /* handshake timeout, default 10 s */
    int tls_tickets;               /* session tickets, default on */
    uint32_t tls_session_cache;    /* server-side session cache entries, default 20480 */
    int tls_h2;                    /* offer h2 through ALPN, default on */
    int h2c;                       /* plain: HTTP/2 with prior knowledge, default on */
    struct tn_tls *tls;            /* built after parsing; NULL: plain */
};

struct tn_conf_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned bits;
};

struct tn_conf_admin {
    char *socket;         /* NULL: no admin socket */
    unsigned socket_mode; /* default 0600 */
    char *http;           /* NULL: no admin HTTP listener */
    struct tn_conf_addr http_addr;
    struct tn_conf_cidr *http_allow; /* networks answered besides loopback */
    size_t nhttp_allow;
};

struct tn_conf_redis {
    char *address; /* NULL: no Redis, unless sentinels are given */
    struct tn_conf_addr addr;
    char *password_env; /* environment variable holding the AUTH password */
    char *namespace_;   /* default "default" */
    struct tn_conf_addr *sentinels; /* Redis Sentinel: ask these for the master */
    size_t nsentinels;
    char *master;               /* the Sentinel master name; required with sentinels */
    uint32_t resync_ms;         /* full re-read period: default 5s */
    uint32_t connect_timeout_ms; /* default 1s */
};

struct tn_conf_timeouts {
    uint32_t client_header_ms; /* whole request head: default 10s */
    uint32_t client_body_ms;   /* body progress period: default 30s */
    uint32_t client_idle_ms;   /* keep-alive wait for the next request: default 60s */
    uint32_t connect_ms;       /* default 2s */
    uint32_t response_ms;      /* request sent -> response head, and between response reads: 30s */
    uint32_t upstream_idle_ms; /* pooled upstream connection lifetime when idle: 60s */
    uint32_t drain_ms;         /* SIGTERM grace: 30s */
};

struct tn_conf_limits {
    size_t header_size;   /* request or response head: default 16k */
    uint32_t headers;     /* header field count: default 100 */
    size_t uri;           /* request line: default 8k */
    uint32_t connections; /* client connections, whole process: default 10000 */
    size_t body;          /* request body bytes ("limits.body"): default 0 = unlimited */
};

/* http2: the HTTP/2 codec's limits (docs/http2.md). */
struct tn_conf_http2 {
    uint32_t max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS: default 100 */
    size_t max_header_list_size;     /* SETTINGS_MAX_HEADER_LIST_SIZE; 0: limits.header_size */
};

struct tn_conf_health {
    int enabled;
    char *path;
    uint32_t interval_ms, timeout_ms;
    uint32_t rise, fall;
    uint16_t *expect; /* statuses counted as healthy; none given: any 2xx or 3xx */
    size_t nexpect;
};

/* Passive health: consecutive connect errors or 5xx answers eject a server
 * for eject_ms, doubling up to max_eject_ms while it keeps failing. */
struct tn_conf_passive {
    uint32_t failures; /* default 5; 0 turns passive ejection off */
    uint32_t eject_ms;     /* default 10s */
    uint32_t max_eject_ms; /* default 5m */
};

struct tn_conf_server {
    char *name; /* "name:" or the address text */
    struct tn_conf_addr addr;
    uint32_t weight; /* default 1, 0 allowed (never chosen) */
};

struct tn_tlsclient; /* a backend's client TLS context (src/core/tlsclient.c), built at load */

/* tls: of a backend: its servers are spoken to over TLS. */
struct tn_conf_upstream_tls {
    int enabled;              /* the key is present; absent: plain HTTP */
    char *ca;                 /* CA file (relative: beside the config file); NULL: system store */
    char *server_name;        /* sent as SNI and verified; NULL: no SNI (verify must be off) */
    int verify;               /* default true; false: encrypt only */
    struct tn_conf_mark mark; /* where tls: was written */
    struct tn_tlsclient *ctx; /* built after parsing; NULL when not enabled */
};

struct tn_conf_backend {
    char *name;
    struct tn_conf_server *servers;
    size_t nservers;
    struct tn_conf_health health;
    struct tn_conf_passive passive;
    struct tn_conf_upstream_tls tls;
    struct tn_conf_mark mark;
};

struct tn_conf_device {
    char *name;  /* class, e.g. "smart-tv" */
    char *regex; /* PCRE2 on User-Agent */
};

enum tn_segment_kind {
    TN_SEGMENT_HEADER,
    TN_SEGMENT_COOKIE,
    TN_SEGMENT_QUERY,
    TN_SEGMENT_REDIS_SET
};

struct tn_conf_segment {
    char *name;
    enum tn_segment_kind kind;
    char *source; /* header/cookie/query name, or the Redis set name */
    struct tn_conf_strlist equals; /* values (one or a list); exclusive with regex */
    char *regex;
};

enum tn_sticky_kind {
    TN_STICKY_NONE = -1,
    TN_STICKY_COOKIE = 0,
    TN_STICKY_HEADER,
    TN_STICKY_QUERY,
    TN_STICKY_CLIENT_IP,
    TN_STICKY_ASSIGNED /* the assign_cookie cookie, or a freshly generated one */
};

struct tn_conf_sticky {
    enum tn_sticky_kind kind;
    char *name; /* NULL for client_ip */
};

struct tn_conf_assign_cookie {
    int enabled;
    char *name;         /* default "turnout_uid" */
    uint64_t max_age_s; /* default 90 days */
};

struct tn_conf_header_match {
    char *name;
    char *regex;
};

struct tn_conf_match {
    char *host; /* PCRE2 on the Host name (port stripped) */
    char *path; /* PCRE2 on the path (query excluded) */
    struct tn_conf_strlist methods; /* "method:" string or list */
    struct tn_conf_header_match *headers;
    size_t nheaders;
    struct tn_conf_strlist country, continent, subdivision;
    char *device;
    char *segment;
};

struct tn_conf_route {
    char *name;
    struct tn_conf_match match;
    char *backend; /* pin; exclusive with shift */
    int has_shift;
    char *shift_from, *shift_to;
    uint32_t percent_x100; /* 0..10000 */
    /* resolved by the second pass: indexes into tn_conf.backends, -1 if unused */
    int backend_idx, from_idx, to_idx;
    struct tn_conf_mark mark;
};

struct tn_conf_budget {
    uint32_t ratio_x100; /* percent x100 */
    uint32_t window_ms;
    uint32_t min_per_second; /* replays per second always allowed, whole process: default 10 */
};

struct tn_conf_auto_rollback {
    int enabled;
    uint32_t error_rate_x100, p99_ms, margin_x100, window_ms, windows, min_requests, ramp_down_ms;
};

struct tn_conf_rollback {
    int enabled; /* default true: replay failed requests shifted to "to" */
    int on_connect_error, on_timeout;
    uint16_t *on_status;
    size_t non_status;
    struct tn_conf_strlist methods; /* default GET HEAD OPTIONS PUT DELETE */
    size_t max_body;                /* default 64k */
    int idempotency_key;
    struct tn_conf_budget budget;
    struct tn_conf_auto_rollback autorb;
};

struct tn_conf_overrides {
    char *header;       /* NULL: off */
    char *token_header; /* default X-Turnout-Token */
    char *token_env;    /* environment variable holding the token */
};


struct tn_conf {
    char *file;
    char *node_id; /* this node's name in Redis "nodes" and events; default host:port */
    uint32_t workers; /* 0 = auto: number of online cores */
    struct tn_conf_listen *listens;
    size_t nlistens;
    struct tn_conf_admin admin;
    char *access_log; /* path, "stdout" or "off"; default "stdout" */
    char *state_file;
    struct tn_conf_redis redis;
    char *geoip_database;
    struct tn_conf_cidr *trusted_proxies;
    size_t ntrusted_proxies;
    struct tn_conf_timeouts timeouts;
    struct tn_conf_limits limits;
    struct tn_conf_http2 http2;
    struct tn_conf_backend *backends;
    size_t nbackends;
    char *devices_file; /* "devices: path" form, resolved relative to the config file */
    struct tn_conf_device *devices;
    size_t ndevices;
    struct tn_conf_segment *segments;
    size_t nsegments;
    struct tn_conf_sticky *sticky;
    size_t nsticky;
    struct tn_conf_assign_cookie assign_cookie;
    struct tn_conf_route *routes;
    size_t nroutes;
    struct tn_conf_rollback rollback;
    struct tn_conf_overrides overrides;
    int debug_headers;
};

#endif
