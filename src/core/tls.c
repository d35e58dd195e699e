/* TLS listener contexts: certificates loaded and checked at configuration
 * load, one SSL_CTX per certificate name set (an RSA and an ECDSA pair for
 * the same names share one), the server name callback that picks one by
 * SNI, ALPN selection, protocol versions, ciphers, the session cache and
 * tickets. */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "turnout/common.h"
#include "turnout/conf-yaml.h"
#include "turnout/tls.h"

/* Mozilla's "intermediate" TLS 1.2 list: forward secrecy and AEAD only. */
#define DEFAULT_CIPHERS                                                                            \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct sni_name {
    char *name; /* lower case; "*.example.com" for a wildcard */
    size_t ctx; /* index into ctxs */
};

struct tn_tls {
    atomic_uint refs;
    SSL_CTX **ctxs; /* [0]: the default (the first certificate's) */
    size_t nctxs;
    char ***ctx_names; /* [ctx]: its names, NULL-terminated (to merge pairs) */
    struct sni_name *names;
    size_t nnames;
    int h2;
};

void tn_tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    struct tn_tls *t = arg;
    unsigned i;
    int http11 = -1;

    (void)ssl;
    for (i = 0; i < inlen && i + 1 + in[i] <= inlen; i += 1u + in[i]) {
        if (t->h2 && in[i] == 2 && !memcmp(in + i + 1, "h2", 2)) {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        if (in[i] == 8 && !memcmp(in + i + 1, "http/1.1", 8))
            http11 = (int)i;
    }
    if (http11 >= 0) {
        *out = in + http11 + 1;
        *outlen = 8;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK; /* no protocol we speak: go on as HTTP/1.1 */
}

static const struct sni_name *find_name(const struct tn_tls *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->nnames; i++)
        if (!strcasecmp(t->names[i].name, name))
            return &t->names[i];
    return NULL;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
    struct tn_tls *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), *dot;
    const struct sni_name *n;
    char wild[300];

    (void)alert;
    if (!name)
        return SSL_TLSEXT_ERR_OK; /* the default certificate */
    n = find_name(t, name);
    if (!n && (dot = strchr(name, '.')) != NULL && strlen(dot) + 2 < sizeof(wild)) {
        snprintf(wild, sizeof(wild), "*%s", dot);
        n = find_name(t, wild);
    }
    if (n && SSL_get_SSL_CTX(ssl) != t->ctxs[n->ctx])
        SSL_set_SSL_CTX(ssl, t->ctxs[n->ctx]);
    return SSL_TLSEXT_ERR_OK;
}

/* The DNS names a certificate is for: its subjectAltName DNS entries, else
 * its common name. A NULL-terminated array of lower-case strings. */
static char **cert_names(X509 *x)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char **v = tn_xcalloc(1, sizeof(*v));
    size_t n = 0;
    int i;

    for (i = 0; sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        const unsigned char *d;
        int len;

        if (g->type != GEN_DNS)
            continue;
        d = ASN1_STRING_get0_data(g->d.dNSName);
        len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || memchr(d, '\0', (size_t)len))
            continue;
        v = realloc(v, (n + 2) * sizeof(*v));
        if (!v)
            abort();
        v[n] = tn_xcalloc(1, (size_t)len + 1);
        memcpy(v[n], d, (size_t)len);
        v[++n] = NULL;
    }
    GENERAL_NAMES_free(sans);
    if (!n) {
        char cn[256];

        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
                                      sizeof(cn)) > 0) {
            v = realloc(v, 2 * sizeof(*v));
            if (!v)
                abort();
            v[0] = tn_xstrdup(cn);
            v[1] = NULL;
        }
    }
    for (i = 0; v[i]; i++) {
        char *p;

        for (p = v[i]; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
    }
    return v;
}

static void free_names(char **v)
{
    size_t i;

    for (i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int same_names(char **a, char **b)
{
    size_t i, j, na = 0, nb = 0;

    for (; a[na]; na++)
        ;
    for (; b[nb]; nb++)
        ;
    if (na != nb)
        return 0;
    for (i = 0; i < na; i++) {
        for (j = 0; j < nb && strcmp(a[i], b[j]); j++)
            ;
        if (j == nb)
            return 0;
    }
    return 1;
}

/* A context with the listener's settings and no certificate yet. */
static SSL_CTX *new_ctx(struct tn_tls *t, const struct tn_conf_listen *l, char *why, size_t len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    unsigned char sid[32];
    int n;

    if (!ctx) {
        tn_tls_reason(why, len);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, (int)l->tls_min_version);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    /* a client closing without close_notify (most do) keeps its session */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                 (l->tls_tickets ? 0 : SSL_OP_NO_TICKET));
    if (!SSL_CTX_set_cipher_list(ctx, l->tls_ciphers ? l->tls_ciphers : DEFAULT_CIPHERS)) {
        char r[256];

        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "ciphers \"%s\": %s", l->tls_ciphers ? l->tls_ciphers : "", r);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (l->tls_ciphersuites && !SSL_CTX_set_ciphersuites(ctx, l->tls_ciphersuites)) {
        char r[256];

        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "ciphersuites \"%s\": %s", l->tls_ciphersuites, r);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (l->tls_session_cache) {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(ctx, (long)l->tls_session_cache);
    } else {
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }
    n = snprintf((char *)sid, sizeof(sid), "turnout %s", l->addr.text);
    SSL_CTX_set_session_id_context(ctx, sid, (unsigned)(n < (int)sizeof(sid) ? n : 31));
    SSL_CTX_set_alpn_select_cb(ctx, on_alpn, t);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, t);
    return ctx;
}

/* Loads one pair into ctx; the certificate's names into *names. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key, char ***names, char *why,
                     size_t len)
{
    char r[256];
    X509 *x;
    FILE *f;

    if (!(f = fopen(cert, "r")) || fclose(f)) {
        snprintf(why, len, "cannot read the certificate %s: %s", cert, strerror(errno));
        return TN_ERR;
    }
    if (!(f = fopen(key, "r")) || fclose(f)) {
        snprintf(why, len, "cannot read the key %s: %s", key, strerror(errno));
        return TN_ERR;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "cannot load the certificate %s: %s", cert, r);
        return TN_ERR;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "cannot load the key %s: %s", key, r);
        return TN_ERR;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tn_tls_reason(r, sizeof(r));
        snprintf(why, len, "the key %s does not match the certificate %s: %s", key, cert, r);
        return TN_ERR;
    }
    x = SSL_CTX_get0_certificate(ctx);
    if (names)
        *names = cert_names(x);
    return TN_OK;
}

/* The key type of a certificate file's first certificate (EVP_PKEY_*), or 0. */
static int key_type(const char *cert)
{
    FILE *f = fopen(cert, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    int type = 0;

    if (f)
        fclose(f);
    if (x) {
        type = EVP_PKEY_get_base_id(X509_get0_pubkey(x));
        X509_free(x);
    }
    ERR_clear_error();
    return type;
}

struct tn_tls *tn_tls_new(const struct tn_conf_listen *l, const char *conf_file, size_t *bad,
                          char *why, size_t len)
{
    struct tn_tls *t = tn_xcalloc(1, sizeof(*t));
    int *types = tn_xcalloc(l->ncerts, sizeof(*types));
    size_t i, j, k;

    atomic_init(&t->refs, 1);
    t->h2 = l->tls_h2;
    t->ctxs = tn_xcalloc(l->ncerts, sizeof(*t->ctxs));
    t->ctx_names = tn_xcalloc(l->ncerts, sizeof(*t->ctx_names));
    for (i = 0; i < l->ncerts; i++) {
        char *cert = tn_conf_path_beside(conf_file, l->certs[i].cert);
        char *key = tn_conf_path_beside(conf_file, l->certs[i].key);
        int type = key_type(cert), rc;
        char **names = NULL;
        SSL_CTX *ctx = new_ctx(t, l, why, len);

        *bad = i;
        rc = ctx ? load_pair(ctx, cert, key, &names, why, len) : TN_ERR;
        if (rc == TN_OK) {
            /* the same names with another key type: one context, both pairs */
            for (j = 0; j < t->nctxs; j++)
                if (types[j] != type && same_names(t->ctx_names[j], names))
                    break;
            if (j < t->nctxs) {
                rc = load_pair(t->ctxs[j], cert, key, NULL, why, len);
                SSL_CTX_free(ctx);
                free_names(names);
                ctx = NULL;
            } else {
                types[t->nctxs] = type;
                t->ctx_names[t->nctxs] = names;
                t->ctxs[t->nctxs++] = ctx;
                for (k = 0; names[k]; k++) {
                    if (find_name(t, names[k]))
                        continue; /* an earlier certificate has it */
                    t->names = realloc(t->names, (t->nnames + 1) * sizeof(*t->names));
                    if (!t->names)
                        abort();
                    t->names[t->nnames].name = tn_xstrdup(names[k]);
                    t->names[t->nnames++].ctx = t->nctxs - 1;
                }
                ctx = NULL;
            }
        }
        SSL_CTX_free(ctx);
        free(cert);
        free(key);
        if (rc != TN_OK) {
            free(types);
            tn_tls_free(t);
            return NULL;
        }
    }
    free(types);
    return t;
}

void tn_tls_ref(struct tn_tls *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void tn_tls_unref(struct tn_tls *t)
{
    size_t i;

    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (i = 0; i < t->nctxs; i++) {
        SSL_CTX_free(t->ctxs[i]);
        free_names(t->ctx_names[i]);
    }
    for (i = 0; i < t->nnames; i++)
        free(t->names[i].name);
    free(t->names);
    free(t->ctxs);
    free(t->ctx_names);
    free(t);
}

void tn_tls_free(struct tn_tls *t)
{
    tn_tls_unref(t);
}

struct ssl_st *tn_tls_ssl(struct tn_tls *t)
{
    SSL *ssl = t->nctxs ? SSL_new(t->ctxs[0]) : NULL;

    ERR_clear_error();
    return ssl;
}

int tn_tls_is_h2(const struct ssl_st *ssl)
{
    const unsigned char *p = NULL;
    unsigned n = 0;

    SSL_get0_alpn_selected(ssl, &p, &n);
    return n == 2 && !memcmp(p, "h2", 2);
}
