/* TLS to upstream servers: the client-side OpenSSL context of one backend
 * with `tls:`, built from its configuration when the file is loaded (so an
 * unreadable or malformed CA file is a configuration error with OpenSSL's
 * reason): TLS 1.2 and 1.3 only, ALPN http/1.1, the CA file or the system
 * store, the server name sent as SNI and verified, and session resumption
 * through a caller's session slot. Reference counted: a reload builds new
 * contexts while connections (and the health checker) keep what they hold.
 * Any thread. */
#ifndef TURNOUT_TLSCLIENT_H
#define TURNOUT_TLSCLIENT_H

#include <stddef.h>

#include "turnout/conf-t.h"

struct ssl_st;
struct ssl_session_st;
struct tn_tlsclient;

/* Builds the context for t; conf_file: a relative CA path is beside it.
 * Returns a new object (one reference), or NULL with why (OpenSSL's reason
 * or the file's error). Control thread (configuration load). */
struct tn_tlsclient *tn_tlsclient_new(const struct tn_conf_upstream_tls *t, const char *conf_file,
                                      char *why, size_t len);
void tn_tlsclient_ref(struct tn_tlsclient *t);
void tn_tlsclient_unref(struct tn_tlsclient *t); /* NULL is a no-op */
void tn_tlsclient_free(struct tn_tlsclient *t);  /* the configuration's reference */

/* What a connection made with t is bound to: the server name, verification
 * and the CA file's path and contents. Connections are pooled (and sessions
 * resumed) only between contexts with the same identity. Borrowed from t. */
const char *tn_tlsclient_id(const struct tn_tlsclient *t);

/* The configured server name, or NULL. Borrowed from t. */
const char *tn_tlsclient_server_name(const struct tn_tlsclient *t);

/* A new client connection state (SNI and verification set), or NULL. With
 * slot, a session in *slot is offered for resumption and each new session
 * the server gives replaces it (*slot owns one reference, freed with
 * tn_tlsclient_session_free()); slot must outlive the returned SSL. */
struct ssl_st *tn_tlsclient_ssl(struct tn_tlsclient *t, struct ssl_session_st **slot);

/* Frees a session slot's session; NULL is a no-op. */
void tn_tlsclient_session_free(struct ssl_session_st *sess);

/* Why the handshake on ssl failed, as a static access-log reason:
 * "tls_verify_failed" (the certificate or its name was refused) or
 * "tls_handshake_failed"; with detail, a human text of at most len bytes
 * (the verification error, or err as an errno). */
const char *tn_tlsclient_failure(const struct ssl_st *ssl, int err, char *detail, size_t len);

#endif
