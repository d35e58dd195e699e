/* The admin HTTP listener: /dashboard, /metrics, /stats.json, /healthz on
 * libevent's evhttp, on the control thread. Only loopback clients are
 * answered, or the networks of admin.http_allow when it is set (403
 * otherwise); other paths get 404; only GET and HEAD. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/adminhttp.h"
#include "turnout/clientaddr.h"
#include "turnout/common.h"
#include "turnout/control-t.h"
#include "turnout/control.h"
#include "turnout/judge.h"
#include "turnout/route-t.h"
#include "turnout/statsview.h"

struct tn_admin_http {
    struct evhttp *http;
    struct tn_ctl *c;
};

static int loopback(const char *ip)
{
    struct in6_addr a6;
    struct in_addr a4;

    if (inet_pton(AF_INET, ip, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, ip, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

/* Loopback clients, or the networks of admin.http_allow when it is set. */
static int allowed(const struct tn_conf_admin *a, const char *ip)
{
    if (a->http_allow)
        return tn_client_ip_trusted(ip, a->http_allow, a->nhttp_allow);
    return loopback(ip);
}

/* One `show ... json` answer appended to out. */
static void show(struct tn_ctl *c, const char *cmd, struct evbuffer *out)
{
    tn_ctl_exec(c, cmd, "http", out);
}

/* /stats.json[?seconds=N]: every `show ... json` answer the dashboard
 * needs, the listeners, the fleet and the per-second series. */
static void stats_json(struct tn_ctl *c, struct evbuffer *out, size_t seconds)
{
    static const char *const shows[][2] = {
        {"info", "show info json"},         {"routes", "show routes json"},
        {"stats", "show stats json"},       {"backends", "show backends json"},
        {"segments", "show segments json"}, {"events", "show events 50 json"},
    };
    size_t i;

    for (i = 0; i < TN_ARRAY_LEN(shows); i++) {
        evbuffer_add_printf(out, "%s\"%s\":", i ? "," : "{", shows[i][0]);
        show(c, shows[i][1], out);
    }
    evbuffer_add_printf(out, ",\"listeners\":");
    tn_statsview_listeners(c, out);
    evbuffer_add_printf(out, ",\"fleet\":");
    tn_statsview_fleet(c, out);
    evbuffer_add_printf(out, ",\"series\":");
    tn_statsview_series(c, out, seconds);
    evbuffer_add_printf(out, ",\"rollback\":");
    if (!c->judge || !tn_judge_show(c->judge, NULL, 1, out))
        evbuffer_add(out, "[]", 2);
    evbuffer_add_printf(out, "}\n");
}

/* ?seconds=N of /stats.json: 300 by default, 1 to 299. */
static size_t query_seconds(struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq args;
    const char *v;
    size_t n = 300;

    if (!q || evhttp_parse_query_str(q, &args) != 0)
        return n;
    if ((v = evhttp_find_header(&args, "seconds")) != NULL) {
        char *end;
        unsigned long x = strtoul(v, &end, 10);

        if (*v && !*end && x >= 1)
            n = x;
    }
    evhttp_clear_headers(&args);
    return n;
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *type,
                  struct evbuffer *body)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_send_reply(req, code, reason, body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct tn_admin_http *h = arg;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evbuffer *body = evbuffer_new();
    char *peer = NULL;
    ev_uint16_t port = 0;

    if (!body) {
        evhttp_send_error(req, 503, "out of memory");
        return;
    }
    evhttp_connection_get_peer(conn, &peer, &port);
    if (!peer || !allowed(&h->c->plan->conf->admin, peer)) {
        evbuffer_add_printf(body, "forbidden: the admin listener answers %s only\n",
                            h->c->plan->conf->admin.http_allow ? "admin.http_allow"
                                                               : "loopback clients");
        reply(req, 403, "Forbidden", "text/plain", body);
    } else if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        evbuffer_add_printf(body, "method not allowed\n");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply(req, 405, "Method Not Allowed", "text/plain", body);
    } else if (path && !strcmp(path, "/metrics")) {
        tn_metrics_write(h->c, body);
        reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", body);
    } else if (path && !strcmp(path, "/stats.json")) {
        stats_json(h->c, body, query_seconds(req));
        reply(req, 200, "OK", "application/json", body);
    } else if (path && !strcmp(path, "/dashboard")) {
        /* the page may only inline its own script and style and fetch
         * /stats.json: the browser itself refuses anything external */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Security-Policy",
                          "default-src 'none'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Content-Type-Options",
                          "nosniff");
        tn_dashboard_write(body);
        reply(req, 200, "OK", "text/html; charset=utf-8", body);
    } else if (path && !strcmp(path, "/healthz")) {
        evbuffer_add_printf(body, "ok\n");
        reply(req, 200, "OK", "text/plain", body);
    } else {
        evbuffer_add_printf(body, "not found: /metrics, /stats.json, /healthz, /dashboard\n");
        reply(req, 404, "Not Found", "text/plain", body);
    }
    evbuffer_free(body);
}

struct tn_admin_http *tn_admin_http_new(struct event_base *base, const struct tn_conf_addr *addr,
                                        struct tn_ctl *c, const char **why)
{
    struct tn_admin_http *h = tn_xcalloc(1, sizeof(*h));
    char host[INET6_ADDRSTRLEN] = "";
    uint16_t port;

    h->c = c;
    h->http = evhttp_new(base);
    if (!h->http) {
        *why = "cannot create the HTTP server";
        free(h);
        return NULL;
    }
    if (addr->ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&addr->ss)->sin_addr, host, sizeof(host));
        port = ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr, host,
                  sizeof(host));
        port = ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    evhttp_set_max_headers_size(h->http, 16384);
    evhttp_set_max_body_size(h->http, 4096);
    evhttp_set_timeout(h->http, 10);
    evhttp_set_gencb(h->http, on_request, h);
    if (evhttp_bind_socket(h->http, host, port) != 0) {
        *why = "cannot bind the admin HTTP address";
        evhttp_free(h->http);
        free(h);
        return NULL;
    }
    return h;
}

void tn_admin_http_free(struct tn_admin_http *h)
{
    if (!h)
        return;
    evhttp_free(h->http);
    free(h);
}
