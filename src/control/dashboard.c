/* The live migration dashboard served at GET /dashboard by the admin HTTP
 * listener: one self-contained HTML page (src/control/dashboard.html, inline
 * CSS and JS) that polls /stats.json every second. The build embeds the page
 * as a byte array (contrib/embed.sh writes src/control/dashboard-html.c in
 * the build directory); this module only hands it out. */
#include <stddef.h>

#include <event2/buffer.h>

#include "turnout/adminhttp.h"

/* src/control/dashboard-html.c, generated */
extern const unsigned char tn_dashboard_html[];
extern const size_t tn_dashboard_html_len;

/* Appends the page to out by reference: the bytes are static, nothing is
 * copied or freed. Any thread. */
void tn_dashboard_write(struct evbuffer *out)
{
    evbuffer_add_reference(out, tn_dashboard_html, tn_dashboard_html_len, NULL, NULL);
}
