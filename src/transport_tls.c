/* The TLS transport (mbedTLS 2.28): wraps another transport, first drives its
 * connect() to completion, then a non-blocking handshake, then carries the
 * byte stream in TLS records. mbedTLS reads and writes through two BIO
 * callbacks over the inner transport's read() and writev().
 *
 * No global state: each transport owns its mbedTLS contexts, its random
 * generator, its certificates and its key, so transports on different
 * threads never share anything.
 *
 * Writing: mbedTLS requires that a write that returned WANT_WRITE be retried
 * with the same buffer and length (the record is already encrypted in its
 * output buffer). writev() copies up to one record of the caller's iovecs
 * into `wbuf` (coalescing small iovecs into one record and one system call);
 * when that record cannot be written completely, `wbuf` and `pend_len` keep
 * it, writev() reports only the bytes of earlier, complete records, and the
 * next writev() (whose iovecs begin with the same bytes, since the caller
 * consumed only what was reported) first finishes the pending record.
 *
 * Host name verification: mbedTLS 2.28 matches the name given to
 * mbedtls_ssl_set_hostname() against dNSName SANs (or the CN) only; it does
 * not even parse iPAddress SANs. For an IP literal the transport therefore
 * sends no SNI (RFC 6066 forbids literals there) and checks the address
 * itself against the certificate's iPAddress SANs, in a verify callback that
 * raises MBEDTLS_X509_BADCERT_CN_MISMATCH, so REQUIRED fails the handshake
 * and OPTIONAL logs it, exactly as for a name. The CN is not compared with
 * an address (RFC 6125 section 6.2.1). */
#include "transport.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

/* Used when tls->ca is NULL and the server is verified (Debian's bundle). */
#define TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"
/* One TLS record's plaintext: the most mbedtls_ssl_write() takes at once. */
#define TLS_RECORD_MAX MBEDTLS_SSL_OUT_CONTENT_LEN
/* TLS 1.3's certificate_required alert (RFC 8446), unknown to mbedTLS 2.28. */
#define TLS_ALERT_CERT_REQUIRED 116
#define TLS_PEM_PREFIX "-----BEGIN"
#define TLS_LOG_MAX 512

/* Without options: verify against the system's CAs, TLS 1.2. */
static const mqttc_tls_config tls_defaults = {.verify = MQTTC_TLS_VERIFY_REQUIRED};

typedef enum tls_phase {
    TLS_INNER,     /* the inner transport is connecting */
    TLS_HANDSHAKE, /* mbedtls_ssl_handshake() in progress */
    TLS_OPEN,
    TLS_FAILED     /* `error` says why; only destroy() is left */
} tls_phase;

typedef struct tls_transport {
    mqttc_transport base;
    mqttc_transport *inner; /* owned */
    void (*log)(void *user, mqttc_log_level level, const char *msg); /* may be NULL */
    void *log_user;
    tls_phase phase;
    int error;     /* MQTTC_ERR_* once TLS_FAILED */
    int io_error;  /* the inner transport's error seen by a BIO callback, or 0 */
    int hs_want;   /* MQTTC_WANT_* the handshake waits for */
    int wr_want;   /* MQTTC_WANT_* the pending record waits for */
    bool got_bytes; /* the peer sent something during the handshake */
    bool send_failed; /* io_error came from a write */
    bool has_cert;  /* we have a client certificate to offer */
    bool optional;  /* verify OPTIONAL: log a failed verification */
    size_t ip_len;  /* 4 or 16 when the verified name is an IP literal, else 0 */
    unsigned char ip[16];
    const char **alpn; /* NULL-terminated copy of the pointers, or NULL */
    size_t pend_len;   /* bytes of wbuf in a record mbedTLS still writes */

    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt ca;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    unsigned char wbuf[TLS_RECORD_MAX];
} tls_transport;

static int tls_fail(tls_transport *t, int error, int detail)
{
    t->phase = TLS_FAILED;
    t->error = error;
    t->base.detail = detail;
    return error;
}

/* ---- BIO over the inner transport ------------------------------------------ */

static int tls_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    tls_transport *t = ctx;
    mqttc_iov iov;
    long n;

    iov.base = buf;
    iov.len = len > INT_MAX ? INT_MAX : len;
    n = t->inner->vt->writev(t->inner, &iov, 1);
    if (n > 0) {
        return (int)n;
    }
    if (n == 0) {
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    }
    t->io_error = (int)n;
    t->send_failed = true;
    return MBEDTLS_ERR_NET_SEND_FAILED;
}

static int tls_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    tls_transport *t = ctx;
    long n = t->inner->vt->read(t->inner, buf, len > INT_MAX ? INT_MAX : len);

    if (n > 0) {
        t->got_bytes = true;
        return (int)n;
    }
    if (n == 0) {
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    t->io_error = (int)n;
    return n == MQTTC_ERR_CLOSED_BY_PEER ? MBEDTLS_ERR_SSL_CONN_EOF : MBEDTLS_ERR_NET_RECV_FAILED;
}

/* ---- loading certificates and keys ---------------------------------------- */

/* PEM text as it is, or a file's contents. `len` is what the mbedTLS parsers
 * want: PEM counts its terminating NUL, DER does not. */
typedef struct tls_blob {
    const unsigned char *p;
    size_t len;
    unsigned char *owned; /* the file's contents, freed by tls_blob_free() */
} tls_blob;

static bool tls_is_pem_text(const char *src)
{
    return strncmp(src, TLS_PEM_PREFIX, sizeof(TLS_PEM_PREFIX) - 1) == 0;
}

/* 0, or an mbedTLS error (MBEDTLS_ERR_PK_FILE_IO_ERROR for a missing file). */
static int tls_blob_get(const char *src, tls_blob *b)
{
    int rc;

    memset(b, 0, sizeof(*b));
    if (tls_is_pem_text(src)) {
        b->p = (const unsigned char *)src;
        b->len = strlen(src) + 1;
        return 0;
    }
    rc = mbedtls_pk_load_file(src, &b->owned, &b->len);
    b->p = b->owned;
    return rc;
}

static void tls_blob_free(tls_blob *b)
{
    if (b->owned != NULL) {
        mbedtls_platform_zeroize(b->owned, b->len);
        mbedtls_free(b->owned);
    }
    memset(b, 0, sizeof(*b));
}

/* `src` into `crt`: 0, or `error` with the mbedTLS code as the detail. A
 * bundle (`lenient`) may contain certificates mbedTLS cannot parse; any other
 * source must parse completely. */
static int tls_load_crt(tls_transport *t, mbedtls_x509_crt *crt, const char *src, bool lenient,
                        int error)
{
    tls_blob b;
    int rc = tls_blob_get(src, &b);

    if (rc == 0) {
        rc = mbedtls_x509_crt_parse(crt, b.p, b.len);
        if (rc > 0 && lenient) {
            rc = 0; /* some certificates of the bundle were skipped */
        } else if (rc > 0) {
            rc = MBEDTLS_ERR_X509_INVALID_FORMAT;
        }
        if (rc == 0 && crt->version == 0) {
            rc = MBEDTLS_ERR_X509_CERT_UNKNOWN_FORMAT; /* nothing in it */
        }
    }
    tls_blob_free(&b);
    return rc == 0 ? 0 : tls_fail(t, error, rc);
}

/* Wrong and missing passwords are told apart from broken keys. A wrong
 * password can also decrypt to garbage that passes the padding check and then
 * fails to parse: for an encrypted key that is a password problem too. */
static int tls_key_error(int rc, bool encrypted)
{
    int high = -((-rc) & 0xFF80); /* mbedTLS codes add a low-level part */

    if (rc == MBEDTLS_ERR_PK_PASSWORD_REQUIRED || rc == MBEDTLS_ERR_PK_PASSWORD_MISMATCH) {
        return MQTTC_ERR_TLS_KEY_PASSWORD;
    }
    if (encrypted && high == MBEDTLS_ERR_PK_KEY_INVALID_FORMAT) {
        return MQTTC_ERR_TLS_KEY_PASSWORD;
    }
    return MQTTC_ERR_TLS_BAD_KEY;
}

static int tls_load_key(tls_transport *t, const char *src, const char *password)
{
    tls_blob b;
    const unsigned char *pwd = (const unsigned char *)password;
    size_t pwd_len = password != NULL ? strlen(password) : 0;
    bool encrypted;
    int rc = tls_blob_get(src, &b);

    if (rc != 0) {
        return tls_fail(t, MQTTC_ERR_TLS_BAD_KEY, rc);
    }
    /* "BEGIN ENCRYPTED PRIVATE KEY" (PKCS#8) or "Proc-Type: 4,ENCRYPTED" */
    encrypted = strstr((const char *)b.p, "ENCRYPTED") != NULL; /* NUL-terminated */
    rc = mbedtls_pk_parse_key(&t->key, b.p, b.len, pwd_len > 0 ? pwd : NULL, pwd_len);
    tls_blob_free(&b);
    if (rc != 0) {
        return tls_fail(t, tls_key_error(rc, encrypted && pwd_len > 0), rc);
    }
    rc = mbedtls_pk_check_pair(&t->cert.pk, &t->key);
    if (rc != 0) {
        return tls_fail(t, MQTTC_ERR_TLS_KEY_MISMATCH, rc);
    }
    return 0;
}

static int tls_load_all(tls_transport *t, const mqttc_tls_config *cfg)
{
    int rc;

    if (cfg->ca != NULL || cfg->verify != MQTTC_TLS_VERIFY_NONE) {
        bool system = cfg->ca == NULL;
        rc = tls_load_crt(t, &t->ca, system ? TLS_SYSTEM_CA : cfg->ca, system,
                          MQTTC_ERR_TLS_BAD_CA);
        if (rc < 0) {
            return rc;
        }
        mbedtls_ssl_conf_ca_chain(&t->conf, &t->ca, NULL);
    }
    if (cfg->cert != NULL) {
        rc = tls_load_crt(t, &t->cert, cfg->cert, false, MQTTC_ERR_TLS_BAD_CERT);
        if (rc == 0) {
            rc = tls_load_key(t, cfg->key, cfg->key_password);
        }
        if (rc == 0) {
            rc = mbedtls_ssl_conf_own_cert(&t->conf, &t->cert, &t->key);
            rc = rc == 0 ? 0 : tls_fail(t, MQTTC_ERR_NO_MEMORY, rc);
        }
        if (rc < 0) {
            return rc;
        }
        t->has_cert = true;
    }
    return 0;
}

/* ---- host name and address verification ----------------------------------- */

/* Does the certificate list `ip` among its iPAddress SANs? mbedTLS 2.28 keeps
 * only dNSName and otherName entries in subject_alt_names, so this walks the
 * raw extensions (already validated by mbedTLS when it parsed them). */
static bool tls_san_has_ip(const mbedtls_x509_crt *crt, const unsigned char *ip, size_t ip_len)
{
    static const unsigned char san_oid[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
    const int seq = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
    unsigned char *p = crt->v3_ext.p;
    const unsigned char *end = p + crt->v3_ext.len;
    size_t len;

    if (p == NULL || mbedtls_asn1_get_tag(&p, end, &len, seq) != 0) {
        return false;
    }
    end = p + len;
    while (p < end) { /* Extension ::= SEQUENCE { extnID, critical, extnValue } */
        unsigned char *ext_end;
        const unsigned char *oid;
        size_t oid_len;
        int critical;

        if (mbedtls_asn1_get_tag(&p, end, &len, seq) != 0) {
            return false;
        }
        ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &oid_len, MBEDTLS_ASN1_OID) != 0) {
            return false;
        }
        oid = p;
        p += oid_len;
        (void)mbedtls_asn1_get_bool(&p, ext_end, &critical); /* optional */
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0) {
            return false;
        }
        if (oid_len == sizeof(san_oid) && memcmp(oid, san_oid, oid_len) == 0) {
            /* GeneralNames ::= SEQUENCE OF GeneralName; iPAddress is [7] */
            const unsigned char *names_end;
            if (mbedtls_asn1_get_tag(&p, ext_end, &len, seq) != 0) {
                return false;
            }
            names_end = p + len;
            while (p < names_end) {
                unsigned char tag = *p++;
                if (mbedtls_asn1_get_len(&p, names_end, &len) != 0) {
                    return false;
                }
                if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | 7) && len == ip_len &&
                    memcmp(p, ip, ip_len) == 0) {
                    return true;
                }
                p += len;
            }
            return false;
        }
        p = ext_end;
    }
    return false;
}

/* Called by mbedTLS for each certificate of the chain (depth 0: the server's). */
static int tls_verify_ip(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    const tls_transport *t = ctx;

    if (depth == 0 && !tls_san_has_ip(crt, t->ip, t->ip_len)) {
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    }
    return 0;
}

/* An IPv4 or IPv6 literal (an IPv6 zone, "%eth0", is ignored) into t->ip. */
static bool tls_parse_ip(tls_transport *t, const char *name)
{
    char text[INET6_ADDRSTRLEN + 1];
    size_t len = strcspn(name, "%");

    if (len >= sizeof(text)) {
        return false;
    }
    memcpy(text, name, len);
    text[len] = '\0';
    if (inet_pton(AF_INET, text, t->ip) == 1) {
        t->ip_len = 4;
    } else if (inet_pton(AF_INET6, text, t->ip) == 1) {
        t->ip_len = 16;
    }
    return t->ip_len > 0;
}

/* The name to verify (and send as SNI when it is not an IP literal). */
static int tls_set_peer_name(tls_transport *t, const char *host, const mqttc_tls_config *cfg)
{
    const char *name = cfg->server_name != NULL && cfg->server_name[0] != '\0' ? cfg->server_name
                                                                               : host;
    int rc;

    if (tls_parse_ip(t, name)) {
        mbedtls_ssl_set_verify(&t->ssl, tls_verify_ip, t);
        return 0;
    }
    rc = mbedtls_ssl_set_hostname(&t->ssl, name);
    if (rc == MBEDTLS_ERR_SSL_ALLOC_FAILED) {
        return tls_fail(t, MQTTC_ERR_NO_MEMORY, rc);
    }
    return rc == 0 ? 0 : tls_fail(t, MQTTC_ERR_INVALID_ARG, rc);
}

/* ---- configuration -------------------------------------------------------- */

/* MQTTC_TLS_* into mbedTLS's minor version (3: TLS 1.2). TLS 1.2 is also the
 * floor for MQTTC_TLS_ANY: 1.0 and 1.1 are deprecated (RFC 8996). */
static int tls_minor_version(mqttc_tls_version v, int *minor)
{
    switch (v) {
    case MQTTC_TLS_ANY:
    case MQTTC_TLS_1_2:
        *minor = MBEDTLS_SSL_MINOR_VERSION_3;
        return 0;
    case MQTTC_TLS_1_3:
        return MQTTC_ERR_UNSUPPORTED; /* mbedTLS 2.28 has no TLS 1.3 */
    }
    return MQTTC_ERR_INVALID_ARG;
}

static int tls_check_config(const mqttc_tls_config *cfg, int *authmode, int *min, int *max)
{
    int rc;

    switch (cfg->verify) {
    case MQTTC_TLS_VERIFY_REQUIRED:
        *authmode = MBEDTLS_SSL_VERIFY_REQUIRED;
        break;
    case MQTTC_TLS_VERIFY_OPTIONAL:
        *authmode = MBEDTLS_SSL_VERIFY_OPTIONAL;
        break;
    case MQTTC_TLS_VERIFY_NONE:
        *authmode = MBEDTLS_SSL_VERIFY_NONE;
        break;
    default:
        return MQTTC_ERR_INVALID_ARG;
    }
    if ((cfg->cert == NULL) != (cfg->key == NULL)) {
        return MQTTC_ERR_INVALID_ARG; /* a certificate needs its key and the reverse */
    }
    rc = tls_minor_version(cfg->min_version, min);
    if (rc == 0) {
        rc = tls_minor_version(cfg->max_version, max);
    }
    if (rc == 0 && *min > *max) {
        rc = MQTTC_ERR_INVALID_ARG;
    }
    return rc;
}

/* A copy of the ALPN pointer list: mbedTLS takes `const char **`. The
 * strings themselves are borrowed, like the rest of opts. */
static int tls_set_alpn(tls_transport *t, const char *const *alpn)
{
    size_t n = 0;
    int rc;

    if (alpn == NULL || alpn[0] == NULL) {
        return 0;
    }
    while (alpn[n] != NULL) {
        n++;
    }
    t->alpn = calloc(n + 1, sizeof(*t->alpn));
    if (t->alpn == NULL) {
        return tls_fail(t, MQTTC_ERR_NO_MEMORY, 0);
    }
    memcpy(t->alpn, alpn, n * sizeof(*t->alpn));
    rc = mbedtls_ssl_conf_alpn_protocols(&t->conf, t->alpn);
    return rc == 0 ? 0 : tls_fail(t, MQTTC_ERR_INVALID_ARG, rc);
}

static int tls_setup(tls_transport *t, const char *host, const mqttc_tls_config *cfg)
{
    static const unsigned char pers[] = "mqttc";
    int authmode, min, max;
    int rc = tls_check_config(cfg, &authmode, &min, &max);

    if (rc < 0) {
        return tls_fail(t, rc, 0);
    }
    rc = mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                     MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0) {
        return tls_fail(t, MQTTC_ERR_NO_MEMORY, rc);
    }
    rc = mbedtls_ctr_drbg_seed(&t->drbg, mbedtls_entropy_func, &t->entropy, pers, sizeof(pers) - 1);
    if (rc != 0) {
        return tls_fail(t, MQTTC_ERR_TLS_HANDSHAKE, rc);
    }
    mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
    mbedtls_ssl_conf_authmode(&t->conf, authmode);
    mbedtls_ssl_conf_min_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, min);
    mbedtls_ssl_conf_max_version(&t->conf, MBEDTLS_SSL_MAJOR_VERSION_3, max);
    t->optional = cfg->verify == MQTTC_TLS_VERIFY_OPTIONAL;
    rc = tls_load_all(t, cfg);
    if (rc == 0) {
        rc = tls_set_alpn(t, cfg->alpn);
    }
    if (rc < 0) {
        return rc;
    }
    rc = mbedtls_ssl_setup(&t->ssl, &t->conf);
    if (rc != 0) {
        return tls_fail(t, MQTTC_ERR_NO_MEMORY, rc);
    }
    rc = tls_set_peer_name(t, host, cfg); /* needs the context set up */
    if (rc < 0) {
        return rc;
    }
    mbedtls_ssl_set_bio(&t->ssl, t, tls_bio_send, tls_bio_recv, NULL);
    return 0;
}

/* ---- the handshake -------------------------------------------------------- */

static int tls_verify_error(uint32_t flags)
{
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) {
        return MQTTC_ERR_TLS_UNKNOWN_CA;
    }
    if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) {
        return MQTTC_ERR_TLS_EXPIRED;
    }
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) {
        return MQTTC_ERR_TLS_HOSTNAME;
    }
    return MQTTC_ERR_TLS_HANDSHAKE;
}

/* A server that refuses the handshake sends a fatal alert and closes; when
 * that happens while we still write our flight (after an empty Certificate,
 * say), the write meets the reset and mbedTLS never reads the alert, which
 * waits unread in the socket before the reset. Returns its description, or
 * -1. Alerts before the server's ChangeCipherSpec are not encrypted.
 * (The TCP transport still reads after a failed write.) */
static int tls_unread_alert(tls_transport *t)
{
    unsigned char buf[512];
    size_t have = 0, off = 0;
    long n;

    while (have < sizeof(buf) &&
           (n = t->inner->vt->read(t->inner, buf + have, sizeof(buf) - have)) > 0) {
        have += (size_t)n;
    }
    while (off + 5 <= have) { /* type, version (2), length (2) */
        size_t len = (size_t)buf[off + 3] << 8 | buf[off + 4];
        if (buf[off] == MBEDTLS_SSL_MSG_ALERT && len == 2 && off + 7 <= have &&
            buf[off + 5] == MBEDTLS_SSL_ALERT_LEVEL_FATAL) {
            return buf[off + 6];
        }
        off += 5 + len;
    }
    return -1;
}

/* The server ended the handshake with the alert `desc`. */
static int tls_alert_error(const tls_transport *t, int desc)
{
    /* It asked for a certificate (client_auth) and got none: OpenSSL says
     * handshake_failure in TLS 1.2, certificate_required in TLS 1.3. */
    if (t->ssl.client_auth && !t->has_cert &&
        (desc == MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE || desc == MBEDTLS_SSL_ALERT_MSG_BAD_CERT ||
         desc == TLS_ALERT_CERT_REQUIRED)) {
        return MQTTC_ERR_TLS_CERT_REQUIRED;
    }
    return MQTTC_ERR_TLS_HANDSHAKE;
}

/* What a failed mbedtls_ssl_handshake() means for the application; `ret`
 * becomes the detail. */
static int tls_handshake_error(tls_transport *t, int *ret)
{
    /* Still waiting for (or parsing) the ServerHello: the peer has not
     * shown that it speaks TLS at all. */
    bool before_hello = t->ssl.state <= MBEDTLS_SSL_SERVER_HELLO;

    if (t->io_error != 0) {
        int desc = t->send_failed ? tls_unread_alert(t) : -1;
        if (desc >= 0) {
            *ret = MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE;
            return tls_alert_error(t, desc);
        }
        /* A plain MQTT broker reads the ClientHello as a malformed packet
         * and closes without a word (mosquitto: with unread data, so a
         * reset); a TLS server would have sent an alert. */
        if ((t->io_error == MQTTC_ERR_CLOSED_BY_PEER || t->io_error == MQTTC_ERR_CONNECTION_LOST) &&
            before_hello && !t->got_bytes) {
            return MQTTC_ERR_TLS_NOT_TLS;
        }
        return t->io_error;
    }
    switch (*ret) {
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
        return tls_verify_error(mbedtls_ssl_get_verify_result(&t->ssl));
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
        return tls_alert_error(t, t->ssl.in_msg[1]); /* mbedTLS leaves level, description */
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
    case MBEDTLS_ERR_SSL_UNEXPECTED_RECORD:
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
    case MBEDTLS_ERR_SSL_BAD_HS_SERVER_HELLO:
        return before_hello ? MQTTC_ERR_TLS_NOT_TLS : MQTTC_ERR_TLS_HANDSHAKE;
    case MBEDTLS_ERR_SSL_ALLOC_FAILED:
        return MQTTC_ERR_NO_MEMORY;
    default:
        return MQTTC_ERR_TLS_HANDSHAKE;
    }
}

/* verify OPTIONAL and the verification failed: say so, and go on. */
static void tls_warn_unverified(tls_transport *t)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    char info[TLS_LOG_MAX / 2], msg[TLS_LOG_MAX];
    int n;

    if (flags == 0 || t->log == NULL) {
        return;
    }
    n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
    if (n < 0) {
        snprintf(info, sizeof(info), "flags 0x%08x", (unsigned)flags);
    }
    for (char *p = info; *p != '\0'; p++) {
        if (*p == '\n') {
            *p = p[1] != '\0' ? ';' : '\0'; /* one line: "a; b" */
        }
    }
    snprintf(msg, sizeof(msg), "TLS: server certificate not verified (verify optional, "
             "connecting anyway): %s", info);
    t->log(t->log_user, MQTTC_LOG_WARN, msg);
}

static int tls_handshake_step(tls_transport *t)
{
    int ret = mbedtls_ssl_handshake(&t->ssl);

    t->hs_want = 0;
    if (ret == MBEDTLS_ERR_SSL_WANT_READ) {
        t->hs_want = MQTTC_WANT_READ;
        return MQTTC__AGAIN;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
        t->hs_want = MQTTC_WANT_WRITE;
        return MQTTC__AGAIN;
    }
    if (ret != 0) {
        int error = tls_handshake_error(t, &ret);
        return tls_fail(t, error, error == t->io_error && t->inner->detail != 0
                                      ? t->inner->detail
                                      : ret);
    }
    t->phase = TLS_OPEN;
    if (t->optional) {
        tls_warn_unverified(t);
    }
    return 0;
}

static int tls_connect(mqttc_transport *base)
{
    tls_transport *t = (tls_transport *)base;
    int rc;

    switch (t->phase) {
    case TLS_INNER:
        rc = t->inner->vt->connect(t->inner);
        if (rc < 0) {
            return tls_fail(t, rc, t->inner->detail);
        }
        if (rc != 0) {
            return MQTTC__AGAIN;
        }
        t->phase = TLS_HANDSHAKE;
        return tls_handshake_step(t);
    case TLS_HANDSHAKE:
        return tls_handshake_step(t);
    case TLS_OPEN:
        return 0;
    case TLS_FAILED:
        return t->error;
    }
    return MQTTC_ERR_BAD_STATE;
}

/* ---- I/O ------------------------------------------------------------------ */

/* An error on the open connection, with its detail. */
static int tls_io_error(tls_transport *t, int ret)
{
    if (t->io_error != 0) {
        return tls_fail(t, t->io_error, t->inner->detail != 0 ? t->inner->detail : ret);
    }
    if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == MBEDTLS_ERR_SSL_CONN_EOF) {
        return tls_fail(t, MQTTC_ERR_CLOSED_BY_PEER, ret);
    }
    return tls_fail(t, ret == MBEDTLS_ERR_SSL_ALLOC_FAILED ? MQTTC_ERR_NO_MEMORY
                                                           : MQTTC_ERR_TRANSPORT, ret);
}

static long tls_not_open(const tls_transport *t)
{
    return t->phase == TLS_FAILED ? t->error : MQTTC_ERR_BAD_STATE;
}

/* Reads until `buf` is full or mbedTLS needs the socket: a short read then
 * means that no decrypted bytes wait inside mbedTLS (where polling the
 * socket would not find them). */
static long tls_read(mqttc_transport *base, uint8_t *buf, size_t cap)
{
    tls_transport *t = (tls_transport *)base;
    size_t got = 0;

    if (t->phase != TLS_OPEN) {
        return tls_not_open(t);
    }
    while (got < cap) {
        size_t want = cap - got > INT_MAX ? INT_MAX : cap - got;
        int ret = mbedtls_ssl_read(&t->ssl, buf + got, want);

        if (ret > 0) {
            got += (size_t)ret;
            continue;
        }
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
            break;
        }
        /* Deliver what came before the end; the next call reports it. */
        int err = tls_io_error(t, ret);
        return got > 0 ? (long)got : err;
    }
    return (long)got;
}

/* Copies up to `cap` bytes of the iovecs, starting `skip` bytes in. */
static size_t tls_gather(const mqttc_iov *iov, size_t n, size_t skip, unsigned char *dst,
                         size_t cap)
{
    size_t filled = 0;

    for (size_t i = 0; i < n && filled < cap; i++) {
        size_t len = iov[i].len, take;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        take = len - skip < cap - filled ? len - skip : cap - filled;
        memcpy(dst + filled, (const unsigned char *)iov[i].base + skip, take);
        filled += take;
        skip = 0;
    }
    return filled;
}

/* The record mbedTLS holds since a WANT_WRITE: retry it with the same buffer
 * and length (mbedTLS's rule). Its length once written, 0 if still pending. */
static long tls_flush_pending(tls_transport *t)
{
    int ret = mbedtls_ssl_write(&t->ssl, t->wbuf, t->pend_len);
    long done;

    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
        t->wr_want = ret == MBEDTLS_ERR_SSL_WANT_READ ? MQTTC_WANT_READ : MQTTC_WANT_WRITE;
        return 0;
    }
    if (ret < 0) {
        return tls_io_error(t, ret);
    }
    done = (long)t->pend_len;
    t->pend_len = 0;
    t->wr_want = 0;
    return done;
}

static long tls_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    tls_transport *t = (tls_transport *)base;
    size_t total = 0, record;

    if (t->phase != TLS_OPEN) {
        return tls_not_open(t);
    }
    if (t->pend_len > 0) {
        long done = tls_flush_pending(t);
        if (done <= 0) {
            return done;
        }
        total = (size_t)done; /* the caller's iovecs begin with these bytes */
    }
    record = (size_t)mbedtls_ssl_get_max_out_record_payload(&t->ssl);
    if (record == 0 || record > sizeof(t->wbuf)) {
        record = sizeof(t->wbuf);
    }
    for (;;) {
        size_t fill = tls_gather(iov, n, total, t->wbuf, record);
        int ret;

        if (fill == 0) {
            break;
        }
        ret = mbedtls_ssl_write(&t->ssl, t->wbuf, fill);
        if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ) {
            t->pend_len = fill; /* wbuf keeps the record's plaintext */
            t->wr_want = ret == MBEDTLS_ERR_SSL_WANT_READ ? MQTTC_WANT_READ : MQTTC_WANT_WRITE;
            break;
        }
        if (ret < 0) {
            int err = tls_io_error(t, ret);
            return total > 0 ? (long)total : err; /* the next call reports it */
        }
        total += (size_t)ret;
    }
    return (long)total;
}

static int tls_fd(const mqttc_transport *base)
{
    const tls_transport *t = (const tls_transport *)base;

    return t->inner->vt->fd(t->inner);
}

static int tls_want(const mqttc_transport *base)
{
    const tls_transport *t = (const tls_transport *)base;
    int want = t->inner->vt->want(t->inner);

    if (t->phase == TLS_HANDSHAKE) {
        want |= t->hs_want;
    } else if (t->phase == TLS_OPEN && t->pend_len > 0) {
        want |= t->wr_want;
    }
    return want;
}

static void tls_destroy(mqttc_transport *base)
{
    tls_transport *t = (tls_transport *)base;

    if (t == NULL) {
        return;
    }
    if (t->phase == TLS_OPEN) {
        (void)mbedtls_ssl_close_notify(&t->ssl); /* best effort, never waits */
    }
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    mbedtls_x509_crt_free(&t->ca);
    mbedtls_x509_crt_free(&t->cert);
    mbedtls_pk_free(&t->key);
    mbedtls_ctr_drbg_free(&t->drbg);
    mbedtls_entropy_free(&t->entropy);
    mbedtls_platform_zeroize(t->wbuf, sizeof(t->wbuf));
    free(t->alpn);
    if (t->inner != NULL) {
        t->inner->vt->destroy(t->inner);
    }
    free(t);
}

/* mbedTLS decrypts whole records: what did not fit the last read() waits
 * here, invisible to poll(). */
static size_t tls_pending(const mqttc_transport *base)
{
    const tls_transport *t = (const tls_transport *)base;
    return t->phase == TLS_OPEN ? mbedtls_ssl_get_bytes_avail(&t->ssl) : 0;
}

static const mqttc_transport_vtable tls_vtable = {
    .name = "tls",
    .connect = tls_connect,
    .read = tls_read,
    .writev = tls_writev,
    .fd = tls_fd,
    .want = tls_want,
    .destroy = tls_destroy,
    .pending = tls_pending,
};

int mqttc__tls_open(mqttc_transport *inner, const char *host, const mqttc_transport_opts *opts,
                    mqttc_transport **out)
{
    tls_transport *t;
    int rc;

    if (out != NULL) {
        *out = NULL;
    }
    if (inner == NULL || out == NULL || host == NULL) {
        if (inner != NULL) {
            inner->vt->destroy(inner);
        }
        return MQTTC_ERR_INVALID_ARG;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        inner->vt->destroy(inner);
        return MQTTC_ERR_NO_MEMORY;
    }
    t->base.vt = &tls_vtable;
    t->inner = inner;
    t->log = opts != NULL ? opts->log : NULL;
    t->log_user = opts != NULL ? opts->log_user : NULL;
    t->phase = TLS_INNER;
    mbedtls_ssl_init(&t->ssl);
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_entropy_init(&t->entropy);
    mbedtls_ctr_drbg_init(&t->drbg);
    mbedtls_x509_crt_init(&t->ca);
    mbedtls_x509_crt_init(&t->cert);
    mbedtls_pk_init(&t->key);
    rc = tls_setup(t, host, opts != NULL && opts->tls != NULL ? opts->tls : &tls_defaults);
    if (rc < 0) {
        tls_destroy(&t->base);
        return rc;
    }
    *out = &t->base;
    return 0;
}
