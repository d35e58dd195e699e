/* TLS listeners: the OpenSSL contexts of one listener, built from its
 * configuration when the file is loaded (so a bad, unreadable or
 * mismatched certificate is a configuration error with OpenSSL's reason):
 * one context per certificate name set, RSA and ECDSA pairs for the same
 * names side by side in one, chosen by SNI (the first certificate is the
 * default), ALPN h2 / http/1.1, TLS 1.2 and 1.3 only, a session cache and
 * session tickets. Reference counted: a reload builds new contexts while
 * connections keep the ones they started with. Any thread. */
#ifndef TURNOUT_TLS_H
#define TURNOUT_TLS_H

#include <stddef.h>

#include "turnout/conf-t.h"

struct ssl_st;
struct tn_tls;

/* Builds l's contexts; conf_file: certificate paths are relative to its
 * directory. NULL on failure with why (OpenSSL's reason) and *bad the index
 * of the certificate pair at fault. */
struct tn_tls *tn_tls_new(const struct tn_conf_listen *l, const char *conf_file, size_t *bad,
                          char *why, size_t len);
void tn_tls_ref(struct tn_tls *t);
void tn_tls_unref(struct tn_tls *t); /* NULL is a no-op */
void tn_tls_free(struct tn_tls *t);  /* the configuration's reference */

/* A new server-side connection state on the default context, or NULL. */
struct ssl_st *tn_tls_ssl(struct tn_tls *t);

/* The reason of the last OpenSSL error into buf, and the queue emptied
 * (also for src/core/tlsclient.c). */
void tn_tls_reason(char *buf, size_t len);

/* Whether the handshake selected h2 through ALPN. */
int tn_tls_is_h2(const struct ssl_st *ssl);

#endif
