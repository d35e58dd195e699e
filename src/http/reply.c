/* Error responses turnout writes itself. The bodies are static strings
 * added by reference, so an error page costs no copy. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "turnout/h1.h"
#include "turnout/reply.h"

struct canned {
    int status;
    const char *body;
};

static const struct canned bodies[] = {
    { 400, "Bad request: the request is malformed.\n" },
    { 404, "Not found.\n" },
    { 408, "Request timeout: the request took too long to arrive.\n" },
    { 413, "Payload too large.\n" },
    { 414, "URI too long.\n" },
    { 431, "Request header fields too large.\n" },
    { 500, "Internal error.\n" },
    { 501, "Not implemented.\n" },
    { 502, "Bad gateway: the platform could not be reached or answered badly.\n" },
    { 503, "Service unavailable: no route for this request.\n" },
    { 504, "Gateway timeout: the platform did not answer in time.\n" },
    { 505, "HTTP version not supported.\n" },
};

static const char *body_for(int status)
{
    size_t i;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        if (bodies[i].status == status)
            return bodies[i].body;
    return "Error.\n";
}

size_t tn_reply_error(struct evbuffer *out, int status, int close_conn, const char *date)
{
    const char *body = body_for(status);
    size_t blen = strlen(body);
    char head[256];
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\n%s\r\n",
                 status, tn_h1_reason(status), date, blen, close_conn ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        return 0;
    evbuffer_add(out, head, (size_t)n);
    evbuffer_add_reference(out, body, blen, NULL, NULL);
    return (size_t)n + blen;
}
