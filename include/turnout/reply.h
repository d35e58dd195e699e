/* Responses turnout writes itself: error pages with a short text body. */
#ifndef TURNOUT_REPLY_H
#define TURNOUT_REPLY_H

struct evbuffer;

/* Appends a complete response for status to out, dated date (an
 * IMF-fixdate); with close_conn it says "Connection: close". Returns the
 * number of bytes appended. */
size_t tn_reply_error(struct evbuffer *out, int status, int close_conn, const char *date);

#endif
