/* Minimal JSON output helpers for admin answers and the state file. */
#ifndef TURNOUT_JSON_H
#define TURNOUT_JSON_H

struct evbuffer;

/* Appends s as a JSON string (quotes included, escaped); NULL -> null. */
void tn_json_str(struct evbuffer *out, const char *s);

/* Appends a percent x100 as a JSON number: 12.5 -> 12.5, 25 -> 25. */
void tn_json_percent(struct evbuffer *out, unsigned x100);

#endif
