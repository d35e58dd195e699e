/* Upstream TLS contexts: one client SSL_CTX per backend with `tls:`, built
 * and checked at configuration load; its identity string (what pools key
 * connections by); new connection states with SNI and verification; session
 * resumption through a slot the caller owns (a worker's pool, a health
 * check); and the reason a handshake failed, for the access log. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/tls.h"
#include "turnout/tlsclient.h"

#define MAX_CA_FILE (16u << 20)
#define ID_FMT "tls sni=%s verify=%d ca=%s%s" /* name, verify, CA path, "#digest" */

struct tn_tlsclient {
    atomic_uint refs;
    SSL_CTX *ctx;
    char *server_name; /* NULL: no SNI */
    char *id;
};

static int slot_index = -1; /* SSL ex_data: the SSL_SESSION ** slot */
static pthread_once_t slot_once = PTHREAD_ONCE_INIT;

static void make_slot_index(void)
{
    slot_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A new session from the server (after the handshake in TLS 1.2, with a
 * ticket after it in 1.3): it replaces the one in the connection's slot. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    SSL_SESSION **slot = slot_index >= 0 ? SSL_get_ex_data(ssl, slot_index) : NULL;

    if (!slot)
        return 0; /* not kept: OpenSSL frees it */
    SSL_SESSION_free(*slot);
    *slot = sess;
    return 1;
}

/* "#" and the SHA-256 of the CA file's contents in hex into out (66 bytes):
 * a CA file replaced under the same name gives another identity. */
static int ca_digest(const char *path, char *out, char *why, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
    unsigned mdlen = 0, i;
    size_t n, total = 0;
    EVP_MD_CTX *mc;
    FILE *f = fopen(path, "rb");

    if (!f) {
        snprintf(why, len, "cannot read the CA file %s: %s", path, strerror(errno));
        return TN_ERR;
    }
    mc = EVP_MD_CTX_new();
    if (!mc || EVP_DigestInit_ex(mc, EVP_sha256(), NULL) != 1) {
        fclose(f);
        EVP_MD_CTX_free(mc);
        tn_tls_reason(why, len);
        return TN_ERR;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0 && (total += n) <= MAX_CA_FILE)
        EVP_DigestUpdate(mc, buf, n);
    if (ferror(f) || total > MAX_CA_FILE) {
        snprintf(why, len, "cannot read the CA file %s: %s", path,
                 total > MAX_CA_FILE ? "larger than 16 MiB" : strerror(errno));
        fclose(f);
        EVP_MD_CTX_free(mc);
        return TN_ERR;
    }
    fclose(f);
    EVP_DigestFinal_ex(mc, md, &mdlen);
    EVP_MD_CTX_free(mc);
    out[0] = '#';
    for (i = 0; i < mdlen && i < 32; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
    return TN_OK;
}

/* The verification settings: the CA file or the system store, the name. */
static int set_verify(SSL_CTX *ctx, const struct tn_conf_upstream_tls *t, const char *ca, char *why,
                      size_t len)
{
    char r[256];

    if (ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "cannot load the CA file %s: %s", ca, r);
        return TN_ERR;
    }
    if (!ca && SSL_CTX_set_default_verify_paths(ctx) != 1) {
        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "cannot load the system CA store: %s", r);
        return TN_ERR;
    }
    if (!t->verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return TN_OK;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (t->server_name) {
        X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);

        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (X509_VERIFY_PARAM_set1_host(vp, t->server_name, 0) != 1) {
            tn_tls_reason(r, sizeof(r));
            snprintf(why, len, "server_name \"%s\": %s", t->server_name, r);
            return TN_ERR;
        }
    }
    return TN_OK;
}

struct tn_tlsclient *tn_tlsclient_new(const struct tn_conf_upstream_tls *t, const char *conf_file,
                                      char *why, size_t len)
{
    static const unsigned char alpn[] = "\x08http/1.1";
    struct tn_tlsclient *c = tn_xcalloc(1, sizeof(*c));
    char *ca = t->ca ? tn_conf_path_beside(conf_file, t->ca) : NULL;
    char digest[66] = "";
    int n;

    pthread_once(&slot_once, make_slot_index);
    atomic_init(&c->refs, 1);
    if (ca && ca_digest(ca, digest, why, len) != TN_OK)
        goto fail;
    if (!(c->ctx = SSL_CTX_new(TLS_client_method()))) {
        tn_tls_reason(why, len);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(c->ctx, TLS1_3_VERSION);
    /* a server closing without close_notify (many do) ends a close-delimited
     * body as a TCP end does, and does not spoil the session for resumption */
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                    SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (SSL_CTX_set_alpn_protos(c->ctx, alpn, sizeof(alpn) - 1) != 0) {
        tn_tls_reason(why, len);
        goto fail;
    }
    if (set_verify(c->ctx, t, ca, why, len) != TN_OK)
        goto fail;
    /* sessions go to the connection's slot, not to a cache in the context */
    SSL_CTX_set_session_cache_mode(c->ctx,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c->ctx, on_new_session);
    c->server_name = t->server_name ? tn_xstrdup(t->server_name) : NULL;
    n = snprintf(NULL, 0, ID_FMT, c->server_name ? c->server_name : "", t->verify,
                 ca ? ca : "system", digest);
    TN_BUG_ON(n <= 0);
    c->id = tn_xmalloc((size_t)n + 1);
    snprintf(c->id, (size_t)n + 1, ID_FMT, c->server_name ? c->server_name : "", t->verify,
             ca ? ca : "system", digest);
    free(ca);
    return c;
fail:
    free(ca);
    tn_tlsclient_unref(c);
    return NULL;
}

void tn_tlsclient_ref(struct tn_tlsclient *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void tn_tlsclient_unref(struct tn_tlsclient *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t->id);
    free(t);
}

void tn_tlsclient_free(struct tn_tlsclient *t)
{
    tn_tlsclient_unref(t);
}

const char *tn_tlsclient_id(const struct tn_tlsclient *t)
{
    return t->id;
}

const char *tn_tlsclient_server_name(const struct tn_tlsclient *t)
{
    return t->server_name;
}

struct ssl_st *tn_tlsclient_ssl(struct tn_tlsclient *t, struct ssl_session_st **slot)
{
    SSL *ssl = SSL_new(t->ctx);

    if (!ssl)
        goto fail;
    if (t->server_name && SSL_set_tlsext_host_name(ssl, t->server_name) != 1)
        goto fail;
    if (slot) {
        if (SSL_set_ex_data(ssl, slot_index, slot) != 1)
            goto fail;
        if (*slot && SSL_SESSION_is_resumable(*slot))
            SSL_set_session(ssl, *slot);
    }
    ERR_clear_error();
    return ssl;
fail:
    SSL_free(ssl);
    ERR_clear_error();
    return NULL;
}

void tn_tlsclient_session_free(struct ssl_session_st *sess)
{
    SSL_SESSION_free(sess);
}

const char *tn_tlsclient_failure(const struct ssl_st *ssl, int err, char *detail, size_t len)
{
    long v = SSL_get_verify_result(ssl);

    if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) && v != X509_V_OK) {
        if (detail)
            snprintf(detail, len, "certificate verification failed: %s",
                     X509_verify_cert_error_string(v));
        return "tls_verify_failed";
    }
    if (detail)
        snprintf(detail, len, "handshake failed: %s",
                 err == EPROTO ? "protocol error or alert" : strerror(err));
    return "tls_handshake_failed";
}
