/* JSON output helpers: string escaping (RFC 8259: quote, backslash and
 * control characters; other bytes pass as they are) and percents. */
#include <event2/buffer.h>
#include <string.h>

#include "turnout/json.h"

void tn_json_str(struct evbuffer *out, const char *s)
{
    const char *run;

    if (!s) {
        evbuffer_add(out, "null", 4);
        return;
    }
    evbuffer_add(out, "\"", 1);
    for (run = s; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        evbuffer_add(out, run, (size_t)(s - run));
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add_printf(out, "\\u%04x", ch);
        run = s + 1;
    }
    evbuffer_add(out, run, (size_t)(s - run));
    evbuffer_add(out, "\"", 1);
}

void tn_json_percent(struct evbuffer *out, unsigned x100)
{
    if (x100 % 100 == 0)
        evbuffer_add_printf(out, "%u", x100 / 100);
    else if (x100 % 10 == 0)
        evbuffer_add_printf(out, "%u.%u", x100 / 100, (x100 % 100) / 10);
    else
        evbuffer_add_printf(out, "%u.%02u", x100 / 100, x100 % 100);
}
