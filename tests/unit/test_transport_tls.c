/* Integration: the TLS transport (src/transport_tls.c) through the client API,
 * over loopback against a real mosquitto with TLS listeners, using
 * certificates made at test time (tests/support/tls_certs.h).
 *
 * Every test gets its own broker: a plain listener (the fixture's) and
 *   tls      server certificate for localhost, 127.0.0.1, ::1 (server auth)
 *   mutual   the same, plus require_certificate (client certificates from ca)
 *   wrong    a certificate for wrong.example only
 *   expired  a certificate valid only in January 2020
 *   future   a certificate valid only from 2090
 *   tls6     as tls, on [::1]
 * Configuration errors are found when the transport is opened, at the start of
 * each connection attempt, so they arrive as an MQTTC_CLIENT_EV_ERROR of kind
 * CONNECT, like handshake failures. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>

#include "itest.h"
#include "tls_certs.h"

#define T IT_TIMEOUT_MS
#define CONF_MAX 4096
#define LOG_MAX 8192
#define BIG_PAYLOAD (300u * 1024u) /* many TLS records, larger than rx_buffer */

/* Made once for the whole file (group setup); read-only afterwards. */
static tls_certs g_certs;

/* Per test: the broker (in `it`) and its TLS ports, and the probe. */
typedef struct probe {
    pthread_mutex_t mu;
    size_t nerr;
    int code, detail; /* of the first error event */
    mqttc_error_kind kind;
    char log[LOG_MAX]; /* every log line, '\n'-separated */
    size_t loglen;
} probe;

typedef struct fx {
    itest *it;
    uint16_t tls, mutual, wrong, expired, future, tls6;
    probe *pr;
} fx;

/* ---- fixtures ------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    return tls_certs_make(&g_certs);
}

static int group_teardown(void **state)
{
    (void)state;
    tls_certs_cleanup(&g_certs);
    return 0;
}

static void add_listener(char *conf, size_t cap, uint16_t port, const char *addr,
                         const char *cert, bool mutual)
{
    size_t len = strlen(conf);
    snprintf(conf + len, cap - len,
             "listener %u %s\n%scertfile %s\nkeyfile %s\n%s", (unsigned)port, addr,
             strchr(addr, ':') ? "socket_domain ipv6\n" : "", cert, g_certs.server_key,
             mutual ? "require_certificate true\n" : "");
    if (mutual) {
        len = strlen(conf);
        snprintf(conf + len, cap - len, "cafile %s\n", g_certs.ca);
    }
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    char *conf = calloc(1, CONF_MAX);
    broker_opts o;

    if (f == NULL || conf == NULL) {
        free(f);
        free(conf);
        return -1;
    }
    f->pr = calloc(1, sizeof *f->pr);
    if (f->pr == NULL) {
        free(f);
        free(conf);
        return -1;
    }
    pthread_mutex_init(&f->pr->mu, NULL);
    f->tls = broker_unused_port(false);
    f->mutual = broker_unused_port(false);
    f->wrong = broker_unused_port(false);
    f->expired = broker_unused_port(false);
    f->future = broker_unused_port(false);
    f->tls6 = broker_unused_port(true);
    add_listener(conf, CONF_MAX, f->tls, "127.0.0.1", g_certs.server_cert, false);
    add_listener(conf, CONF_MAX, f->mutual, "127.0.0.1", g_certs.server_cert, true);
    add_listener(conf, CONF_MAX, f->wrong, "127.0.0.1", g_certs.wrong_cert, false);
    add_listener(conf, CONF_MAX, f->expired, "127.0.0.1", g_certs.expired_cert, false);
    add_listener(conf, CONF_MAX, f->future, "127.0.0.1", g_certs.future_cert, false);
    add_listener(conf, CONF_MAX, f->tls6, "::1", g_certs.server_cert, false);
    broker_opts_init(&o);
    o.extra_conf = conf; /* written before the fixture's plain listener */
    f->it = it_new(&o);
    free(conf);
    if (f->it == NULL) {
        pthread_mutex_destroy(&f->pr->mu);
        free(f->pr);
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    it_free(f->it); /* clients first: nothing touches the probe afterwards */
    pthread_mutex_destroy(&f->pr->mu);
    free(f->pr);
    free(f);
    return 0;
}

/* ---- the probe: error details and log lines ------------------------------ */

static void probe_hook(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    probe *p = user;
    (void)c;
    if (ev->type != MQTTC_CLIENT_EV_ERROR) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->nerr++ == 0) {
        p->code = ev->u.error.code;
        p->kind = ev->u.error.kind;
        p->detail = ev->u.error.detail;
    }
    pthread_mutex_unlock(&p->mu);
}

static void probe_log(mqttc_log_level level, const char *msg, void *user)
{
    probe *p = user;
    int n;
    (void)level;
    pthread_mutex_lock(&p->mu);
    n = snprintf(p->log + p->loglen, LOG_MAX - p->loglen, "%s\n", msg);
    if (n > 0) {
        p->loglen += (size_t)n < LOG_MAX - p->loglen ? (size_t)n : LOG_MAX - p->loglen - 1;
    }
    pthread_mutex_unlock(&p->mu);
    if (getenv("MQTTC_TEST_DEBUG") != NULL) {
        fprintf(stderr, "[log] %s\n", msg);
    }
}

static bool probe_log_contains(probe *p, const char *needle)
{
    bool found;
    pthread_mutex_lock(&p->mu);
    found = strstr(p->log, needle) != NULL;
    pthread_mutex_unlock(&p->mu);
    return found;
}

/* The hook runs just after the recorder saw the event: wait for it too. */
static bool probe_wait_error(probe *p, int timeout_ms)
{
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        size_t n;
        pthread_mutex_lock(&p->mu);
        n = p->nerr;
        pthread_mutex_unlock(&p->mu);
        if (n > 0) {
            return true;
        }
        if (broker_now_ms() >= deadline) {
            return false;
        }
        usleep(5000);
    }
}

/* ---- helpers ------------------------------------------------------------- */

/* Did mosquitto log "New connection from ADDR:PORT on port `port`."? */
static bool connection_seen_on(fx *f, uint16_t port)
{
    char *log = tls_certs_read(f->it->b.log), *line, *save = NULL;
    char tail[32];
    bool seen = false;
    if (log == NULL) {
        return false;
    }
    snprintf(tail, sizeof tail, " on port %u.", (unsigned)port);
    for (line = strtok_r(log, "\n", &save); line != NULL && !seen;
         line = strtok_r(NULL, "\n", &save)) {
        seen = strstr(line, "New connection from") != NULL && strstr(line, tail) != NULL;
    }
    free(log);
    return seen;
}

/* Client configuration for `scheme`://`host`:`port` (uri_buf: 96 bytes). */
static void tls_config(fx *f, mqttc_client_config *cfg, char *uri_buf, const char *id,
                       const char *scheme, const char *host, uint16_t port)
{
    char unused[64];
    it_config(f->it, cfg, unused, id);
    if (strchr(host, ':') != NULL) {
        snprintf(uri_buf, 96, "%s://[%s]:%u", scheme, host, (unsigned)port);
    } else {
        snprintf(uri_buf, 96, "%s://%s:%u", scheme, host, (unsigned)port);
    }
    cfg->uri = uri_buf;
    cfg->connect_timeout_ms = 8000;
    cfg->on_log = probe_log;
    cfg->log_user = f->pr;
    cfg->log_level = MQTTC_LOG_WARN;
}

static void dump_on_failure(fx *f, it_rec *r)
{
    size_t i;
    it_lock(r);
    for (i = 0; i < r->nerrors; i++) {
        print_error("%s: error event %zu: %s kind %d\n", r->name, i,
                    mqttc_errname(r->errors[i].code), (int)r->errors[i].kind);
    }
    it_unlock(r);
    pthread_mutex_lock(&f->pr->mu);
    print_error("first error detail: %d (-0x%04x)\nlog:\n%s", f->pr->detail,
                (unsigned)-f->pr->detail, f->pr->log);
    pthread_mutex_unlock(&f->pr->mu);
    broker_dump_log(&f->it->b, 3000);
}

static mqttc_client *connect_ok_mode(fx *f, mqttc_client_config *cfg, it_rec **rp, bool caller)
{
    mqttc_client *c;
    it_rec *r;
    if (caller) {
        cfg->run_mode = MQTTC_RUN_CALLER;
    }
    assert_int_equal(it_client(f->it, cfg, probe_hook, f->pr, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, caller ? c : NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        dump_on_failure(f, r);
        fail_msg("no CONNECTED within %d ms", T);
    }
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_ERROR), 0);
    *rp = r;
    return c;
}

static mqttc_client *connect_ok(fx *f, mqttc_client_config *cfg, it_rec **rp)
{
    return connect_ok_mode(f, cfg, rp, false);
}

/* Connect, expect one failed attempt with `code` or `alt` (kind CONNECT).
 * Returns the error's detail; *got (may be NULL): the code. */
static int connect_fails_either(fx *f, mqttc_client_config *cfg, int code, int alt, int *got)
{
    mqttc_client *c;
    it_rec *r;
    int detail;
    assert_int_equal(it_client(f->it, cfg, probe_hook, f->pr, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 1, T) || !probe_wait_error(f->pr, T)) {
        dump_on_failure(f, r);
        fail_msg("no error event within %d ms", T);
    }
    it_lock(r);
    if ((r->errors[0].code != code && r->errors[0].code != alt) ||
        r->count[MQTTC_CLIENT_EV_CONNECTED] != 0) {
        it_unlock(r);
        dump_on_failure(f, r);
        fail_msg("expected %s, got %s", mqttc_errname(code), mqttc_errname(r->errors[0].code));
    }
    assert_int_equal(r->errors[0].kind, MQTTC_ERRKIND_CONNECT);
    it_unlock(r);
    pthread_mutex_lock(&f->pr->mu);
    assert_true(f->pr->code == code || f->pr->code == alt);
    detail = f->pr->detail;
    if (got != NULL) {
        *got = f->pr->code;
    }
    pthread_mutex_unlock(&f->pr->mu);
    return detail;
}

static int connect_fails(fx *f, mqttc_client_config *cfg, int code)
{
    return connect_fails_either(f, cfg, code, code, NULL);
}

static void disconnect_clean(mqttc_client *c, it_rec *r, mqttc_client *drive)
{
    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, drive, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    it_lock(r);
    assert_int_equal(r->disc_reason, 0);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_ERROR], 0);
    it_unlock(r);
}

/* Connect with `cfg`, round-trip one QoS 1 message, disconnect. */
static void roundtrip(fx *f, mqttc_client_config *cfg)
{
    it_rec *r;
    mqttc_client *c = connect_ok(f, cfg, &r);
    int id;
    assert_true(mqttc_client_subscribe(c, "tls/rt", 1) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    id = mqttc_client_publish(c, "tls/rt", "hello", 5, 1, false);
    assert_true(id > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_MESSAGE, 1, T));
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_PUBLISHED, 1, T));
    it_lock(r);
    assert_int_equal(r->msgs[0].len, 5);
    assert_memory_equal(r->msgs[0].payload, "hello", 5);
    it_unlock(r);
    disconnect_clean(c, r, NULL);
}

/* ---- exchanging messages ------------------------------------------------- */

static void pubsub(fx *f, bool caller)
{
    mqttc_client_config cfg;
    char uri[96];
    it_rec *r;
    mqttc_client *c, *drive;
    uint8_t *big = malloc(BIG_PAYLOAD);
    long i;
    int q;

    assert_non_null(big);
    it_pattern(big, BIG_PAYLOAD, 7);
    tls_config(f, &cfg, uri, caller ? "tls-pubsub-caller" : "tls-pubsub", "mqtts", "localhost",
               f->tls);
    cfg.tls.ca = g_certs.ca;
    c = connect_ok_mode(f, &cfg, &r, caller);
    drive = caller ? c : NULL;
    assert_true(mqttc_client_subscribe(c, "tls/q/#", 2) > 0);
    assert_true(it_wait_count(r, drive, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    for (q = 0; q <= 2; q++) {
        char topic[32], payload[32];
        snprintf(topic, sizeof topic, "tls/q/%d", q);
        snprintf(payload, sizeof payload, "payload at qos %d", q);
        assert_true(mqttc_client_publish(c, topic, payload, strlen(payload), q, false) >= 0);
    }
    assert_true(mqttc_client_publish(c, "tls/q/big", big, BIG_PAYLOAD, 1, false) > 0);
    if (!it_wait_count(r, drive, MQTTC_CLIENT_EV_MESSAGE, 4, T) ||
        !it_wait_count(r, drive, MQTTC_CLIENT_EV_PUBLISHED, 4, T)) {
        dump_on_failure(f, r);
        fail_msg("messages did not make the round trip");
    }
    it_lock(r);
    for (q = 0; q <= 2; q++) {
        char topic[32], payload[32];
        snprintf(topic, sizeof topic, "tls/q/%d", q);
        snprintf(payload, sizeof payload, "payload at qos %d", q);
        i = it_find_msg(r, topic, 0);
        assert_true(i >= 0);
        assert_int_equal(r->msgs[i].qos, q);
        assert_int_equal(r->msgs[i].len, strlen(payload));
        assert_memory_equal(r->msgs[i].payload, payload, strlen(payload));
    }
    i = it_find_msg(r, "tls/q/big", 0);
    assert_true(i >= 0);
    assert_int_equal(r->msgs[i].len, BIG_PAYLOAD);
    assert_memory_equal(r->msgs[i].payload, big, BIG_PAYLOAD);
    it_unlock(r);
    free(big);
    disconnect_clean(c, r, drive);
    assert_true(connection_seen_on(f, f->tls)); /* it came in on the TLS listener */
}

static void pubsub_qos012_over_tls(void **state)
{
    pubsub(*state, false);
}

static void pubsub_over_tls_caller_driven(void **state)
{
    pubsub(*state, true);
}

/* mbedTLS decrypts a whole record (up to 16 KiB) at once; what does not fit
 * the caller's buffer waits inside the transport, where polling the socket
 * cannot see it. With a 256-byte receive buffer the client reads 16 x 256
 * bytes per turn, so the end of a 4000-byte message is left in mbedTLS and,
 * unless the client asks the transport for pending bytes (the `pending`
 * transport hook), only the next keepalive would wake it. */
static void small_rx_buffer_leaves_nothing_stranded_in_tls(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg, pcfg;
    char uri[96], puri[96];
    it_rec *r, *pr;
    mqttc_client *c, *p;
    uint8_t *payload = calloc(1, 4000);

    assert_non_null(payload);
    tls_config(f, &cfg, uri, "tls-small-rx", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.rx_buffer_size = 256;
    cfg.keepalive = 60;
    c = connect_ok(f, &cfg, &r);
    assert_true(mqttc_client_subscribe(c, "tls/small", 0) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    /* published by another client, so that nothing else wakes this one */
    tls_config(f, &pcfg, puri, "plain-publisher", "mqtt", "127.0.0.1", f->it->b.port);
    p = connect_ok(f, &pcfg, &pr);
    assert_true(mqttc_client_publish(p, "tls/small", payload, 4000, 0, false) >= 0);
    free(payload);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_MESSAGE, 1, 5000)) {
        fail_msg("the end of the message stayed inside the TLS transport");
    }
}

/* ---- authentication modes that connect ----------------------------------- */

static void verify_none_connects_without_ca(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-none", "mqtts", "127.0.0.1", f->tls);
    cfg.tls.verify = MQTTC_TLS_VERIFY_NONE;
    roundtrip(f, &cfg);
}

static void verify_with_ca_as_pem_text(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    char *pem = tls_certs_read(g_certs.ca);
    assert_non_null(pem);
    tls_config(f, &cfg, uri, "tls-ca-text", "mqtts", "localhost", f->tls);
    cfg.tls.ca = pem;
    roundtrip(f, &cfg); /* create copied it: freeing later is fine */
    free(pem);
}

static void verify_with_ca_file_and_ipv4_literal(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-ca-file", "mqtts", "127.0.0.1", f->tls);
    cfg.tls.ca = g_certs.ca; /* 127.0.0.1 is an iPAddress SAN of the certificate */
    roundtrip(f, &cfg);
}

static void verify_ipv6_literal(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-v6", "mqtts", "::1", f->tls6);
    cfg.tls.ca = g_certs.ca;
    roundtrip(f, &cfg);
}

static void ssl_scheme_and_server_name(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    /* connect by address, verify (and send as SNI) the name */
    tls_config(f, &cfg, uri, "tls-sni", "ssl", "127.0.0.1", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.server_name = "localhost";
    roundtrip(f, &cfg);
}

static void tls12_pinned_and_alpn_offered(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    static const char *const alpn[] = {"mqtt", "x-amzn-mqtt-ca", NULL};
    tls_config(f, &cfg, uri, "tls-12-alpn", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.min_version = MQTTC_TLS_1_2;
    cfg.tls.max_version = MQTTC_TLS_1_2;
    cfg.tls.alpn = alpn; /* mosquitto does no ALPN: offered, ignored */
    roundtrip(f, &cfg);
}

static void client_certificate_with_verify_none(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-client-cert", "mqtts", "127.0.0.1", f->mutual);
    cfg.tls.verify = MQTTC_TLS_VERIFY_NONE;
    cfg.tls.cert = g_certs.client_cert;
    cfg.tls.key = g_certs.client_key;
    roundtrip(f, &cfg);
}

static void mutual_tls(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    char *cert = tls_certs_read(g_certs.client_cert), *key = tls_certs_read(g_certs.client_key);
    assert_non_null(cert);
    assert_non_null(key);
    tls_config(f, &cfg, uri, "tls-mutual", "mqtts", "localhost", f->mutual);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.cert = cert; /* as PEM text */
    cfg.tls.key = key;
    roundtrip(f, &cfg);
    free(cert);
    free(key);
}

static void mutual_tls_encrypted_keys(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-enc-pem", "mqtts", "localhost", f->mutual);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.cert = g_certs.client_cert;
    cfg.tls.key = g_certs.client_key_enc; /* traditional PEM, AES-256-CBC */
    cfg.tls.key_password = TLS_CERTS_PASSWORD;
    roundtrip(f, &cfg);
    tls_config(f, &cfg, uri, "tls-enc-p8", "mqtts", "localhost", f->mutual);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.cert = g_certs.client_cert;
    cfg.tls.key = g_certs.client_key_enc_des3; /* PKCS#8, PBES2 with 3DES */
    cfg.tls.key_password = TLS_CERTS_PASSWORD;
    roundtrip(f, &cfg);
}

/* LuatOS-style: verify, but only warn when it fails. */
static void verify_optional_with_wrong_ca_warns_and_connects(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-optional", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.other_ca;
    cfg.tls.verify = MQTTC_TLS_VERIFY_OPTIONAL;
    roundtrip(f, &cfg);
    assert_true(probe_log_contains(f->pr, "TLS: server certificate not verified"));
    assert_true(probe_log_contains(f->pr, "not correctly signed by the trusted CA"));
}

static void verify_optional_with_right_ca_does_not_warn(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-optional-ok", "mqtts", "127.0.0.1", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.verify = MQTTC_TLS_VERIFY_OPTIONAL;
    roundtrip(f, &cfg);
    assert_false(probe_log_contains(f->pr, "not verified"));
}

/* ---- handshake failures -------------------------------------------------- */

static void wrong_ca_is_unknown_ca(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-wrong-ca", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.other_ca;
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_UNKNOWN_CA),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void system_bundle_does_not_trust_test_ca(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-system-ca", "mqtts", "localhost", f->tls);
    cfg.tls.ca = NULL; /* /etc/ssl/certs/ca-certificates.crt */
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_UNKNOWN_CA),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void wrong_name_in_certificate_is_hostname(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-wrong-name", "mqtts", "localhost", f->wrong);
    cfg.tls.ca = g_certs.ca;
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_HOSTNAME),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void ip_literal_not_in_certificate_is_hostname(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    /* wrong.pem has no iPAddress SAN: the transport's own address check */
    tls_config(f, &cfg, uri, "tls-wrong-ip", "mqtts", "127.0.0.1", f->wrong);
    cfg.tls.ca = g_certs.ca;
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_HOSTNAME),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void wrong_server_name_is_hostname(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-wrong-sni", "mqtts", "127.0.0.1", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.server_name = "wrong.example";
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_HOSTNAME),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void expired_certificate_is_expired(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-expired", "mqtts", "localhost", f->expired);
    cfg.tls.ca = g_certs.ca;
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_EXPIRED),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void not_yet_valid_certificate_is_expired(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-future", "mqtts", "127.0.0.1", f->future);
    cfg.tls.ca = g_certs.ca;
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_EXPIRED),
                     MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
}

static void missing_client_certificate_is_cert_required(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls-no-client-cert", "mqtts", "localhost", f->mutual);
    cfg.tls.ca = g_certs.ca;
    /* mosquitto (OpenSSL, TLS 1.2) answers the empty Certificate message
     * with a fatal handshake_failure alert */
    assert_int_equal(connect_fails(f, &cfg, MQTTC_ERR_TLS_CERT_REQUIRED),
                     MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE);
}

static void tls_client_to_plain_port_is_not_tls(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    int detail;
    tls_config(f, &cfg, uri, "tls-to-plain", "mqtts", "127.0.0.1", f->it->b.port);
    cfg.tls.verify = MQTTC_TLS_VERIFY_NONE;
    /* mosquitto reads the ClientHello as a broken MQTT packet and closes
     * with most of it unread: a reset (or, had it read it all, an EOF) */
    detail = connect_fails(f, &cfg, MQTTC_ERR_TLS_NOT_TLS);
    assert_true(detail == MBEDTLS_ERR_NET_RECV_FAILED || detail == MBEDTLS_ERR_SSL_CONN_EOF);
}

static void plain_client_to_tls_port_fails_clearly(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "plain-to-tls", "mqtt", "127.0.0.1", f->tls);
    /* OpenSSL rejects the CONNECT packet ("wrong version number") and
     * mosquitto closes the socket, usually with bytes unread (a reset): the
     * attempt fails at once, long before the CONNACK timeout */
    cfg.connect_timeout_ms = 60000;
    assert_int_equal(connect_fails_either(f, &cfg, MQTTC_ERR_CONNECTION_LOST,
                                          MQTTC_ERR_CLOSED_BY_PEER, NULL), 0);
    assert_true(broker_wait_log(&f->it->b, "wrong version number", T));
}

/* A server that answers anything with an HTTP error and closes. */
typedef struct http_server {
    int lfd;
    uint16_t port;
    pthread_t thread;
} http_server;

static void *http_main(void *arg)
{
    http_server *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    static const char reply[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    char buf[512];
    int fd;
    if (poll(&p, 1, T) != 1 || (fd = accept(s->lfd, NULL, NULL)) < 0) {
        return NULL;
    }
    p.fd = fd;
    if (poll(&p, 1, T) == 1 && read(fd, buf, sizeof buf) > 0) {
        (void)!write(fd, reply, sizeof reply - 1);
    }
    usleep(200 * 1000); /* let the client read before the close */
    close(fd);
    return NULL;
}

static void tls_client_to_http_server_is_not_tls(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    http_server *s = calloc(1, sizeof *s);
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int detail;

    assert_non_null(s);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 1), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, http_main, s), 0);
    tls_config(f, &cfg, uri, "tls-to-http", "mqtts", "127.0.0.1", s->port);
    cfg.tls.verify = MQTTC_TLS_VERIFY_NONE;
    detail = connect_fails(f, &cfg, MQTTC_ERR_TLS_NOT_TLS);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    free(s);
    assert_int_equal(detail, MBEDTLS_ERR_SSL_INVALID_RECORD);
}

/* A server that completes the TCP handshake (the kernel's backlog) but never
 * answers the ClientHello: the handshake runs into connect_timeout_ms and is
 * reported as a timeout, not as a hang or a bare TLS error. */
static void silent_server_is_handshake_timeout(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(lfd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 1), 0); /* never accept()ed, never answers */
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    tls_config(f, &cfg, uri, "tls-silent", "mqtts", "127.0.0.1", ntohs(a.sin_port));
    cfg.tls.verify = MQTTC_TLS_VERIFY_NONE;
    cfg.connect_timeout_ms = 500;
    (void)connect_fails(f, &cfg, MQTTC_ERR_CONNECT_TIMEOUT);
    close(lfd);
}

/* ---- configuration errors (found when the attempt opens the transport) ---- */

static void config_error(fx *f, const char *id, int code, const char *ca, const char *cert,
                         const char *key, const char *password)
{
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, id, "mqtts", "localhost", f->mutual);
    cfg.tls.ca = ca;
    cfg.tls.cert = cert;
    cfg.tls.key = key;
    cfg.tls.key_password = password;
    connect_fails(f, &cfg, code);
    /* nothing reached the broker: the attempt ended before the socket */
    assert_false(connection_seen_on(f, f->mutual));
}

static void wrong_key_password(void **state)
{
    fx *f = *state;
    config_error(f, "k-wrong", MQTTC_ERR_TLS_KEY_PASSWORD, g_certs.ca, g_certs.client_cert,
                 g_certs.client_key_enc, "not the password");
}

static void missing_key_password(void **state)
{
    fx *f = *state;
    config_error(f, "k-none", MQTTC_ERR_TLS_KEY_PASSWORD, g_certs.ca, g_certs.client_cert,
                 g_certs.client_key_enc_des3, NULL);
}

static void pkcs8_aes_key_is_bad_key_in_mbedtls_2_28(void **state)
{
    fx *f = *state;
    /* OpenSSL 3's default encryption (PBES2 + AES-256-CBC): mbedTLS 2.28
     * reports MBEDTLS_ERR_PKCS5_FEATURE_UNAVAILABLE, whatever the password */
    config_error(f, "k-aes8", MQTTC_ERR_TLS_BAD_KEY, g_certs.ca, g_certs.client_cert,
                 g_certs.client_key_enc_aes8, TLS_CERTS_PASSWORD);
}

static void garbage_ca_file(void **state)
{
    fx *f = *state;
    config_error(f, "ca-garbage", MQTTC_ERR_TLS_BAD_CA, g_certs.garbage, NULL, NULL, NULL);
}

static void missing_ca_file(void **state)
{
    fx *f = *state;
    config_error(f, "ca-missing", MQTTC_ERR_TLS_BAD_CA, "/nonexistent/ca.pem", NULL, NULL, NULL);
}

static void garbage_ca_text(void **state)
{
    fx *f = *state;
    config_error(f, "ca-text", MQTTC_ERR_TLS_BAD_CA,
                 "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
                 NULL, NULL, NULL);
}

static void bad_client_certificate(void **state)
{
    fx *f = *state;
    config_error(f, "cert-bad", MQTTC_ERR_TLS_BAD_CERT, g_certs.ca, g_certs.garbage,
                 g_certs.client_key, NULL);
}

static void bad_client_key(void **state)
{
    fx *f = *state;
    config_error(f, "key-bad", MQTTC_ERR_TLS_BAD_KEY, g_certs.ca, g_certs.client_cert,
                 g_certs.garbage, NULL);
}

static void key_not_matching_certificate(void **state)
{
    fx *f = *state;
    config_error(f, "key-mismatch", MQTTC_ERR_TLS_KEY_MISMATCH, g_certs.ca, g_certs.client_cert,
                 g_certs.other_key, NULL);
}

static void certificate_without_key(void **state)
{
    fx *f = *state;
    config_error(f, "cert-no-key", MQTTC_ERR_INVALID_ARG, g_certs.ca, g_certs.client_cert, NULL,
                 NULL);
}

static void key_without_certificate(void **state)
{
    fx *f = *state;
    config_error(f, "key-no-cert", MQTTC_ERR_INVALID_ARG, g_certs.ca, NULL, g_certs.client_key,
                 NULL);
}

static void tls13_is_unsupported(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    tls_config(f, &cfg, uri, "tls13", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.tls.min_version = MQTTC_TLS_1_3;
    connect_fails(f, &cfg, MQTTC_ERR_UNSUPPORTED);
}

/* ---- reconnecting -------------------------------------------------------- */

static bool connected_twice(it_rec *r, void *arg)
{
    (void)arg;
    return r->count[MQTTC_CLIENT_EV_CONNECTED] >= 2;
}

static void reconnects_over_tls_after_broker_restart(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    char uri[96];
    it_rec *r;
    mqttc_client *c;
    tls_config(f, &cfg, uri, "tls-reconnect", "mqtts", "localhost", f->tls);
    cfg.tls.ca = g_certs.ca;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    c = connect_ok(f, &cfg, &r);
    assert_true(mqttc_client_subscribe(c, "tls/re", 1) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));

    assert_true(broker_stop(&f->it->b) >= 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    it_lock(r);
    assert_true(r->disc_will_reconnect);
    assert_true(r->disc_reason == MQTTC_ERR_CLOSED_BY_PEER ||
                r->disc_reason == MQTTC_ERR_CONNECTION_LOST);
    it_unlock(r);
    assert_int_equal(broker_restart(&f->it->b), 0);
    if (!it_wait(r, NULL, connected_twice, NULL, T)) {
        dump_on_failure(f, r);
        fail_msg("no reconnection over TLS");
    }
    /* the session works again (the subscription is restored: clean session) */
    assert_true(mqttc_client_publish(c, "tls/re", "again", 5, 1, false) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_MESSAGE, 1, T));
    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 2, T));
    it_lock(r);
    assert_int_equal(r->disc_reason, 0);
    it_unlock(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pubsub_qos012_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(pubsub_over_tls_caller_driven, setup, teardown),
        cmocka_unit_test_setup_teardown(small_rx_buffer_leaves_nothing_stranded_in_tls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(verify_none_connects_without_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_with_ca_as_pem_text, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_with_ca_file_and_ipv4_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_ipv6_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(ssl_scheme_and_server_name, setup, teardown),
        cmocka_unit_test_setup_teardown(tls12_pinned_and_alpn_offered, setup, teardown),
        cmocka_unit_test_setup_teardown(client_certificate_with_verify_none, setup, teardown),
        cmocka_unit_test_setup_teardown(mutual_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(mutual_tls_encrypted_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(verify_optional_with_wrong_ca_warns_and_connects, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(verify_optional_with_right_ca_does_not_warn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wrong_ca_is_unknown_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(system_bundle_does_not_trust_test_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_name_in_certificate_is_hostname, setup, teardown),
        cmocka_unit_test_setup_teardown(ip_literal_not_in_certificate_is_hostname, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(wrong_server_name_is_hostname, setup, teardown),
        cmocka_unit_test_setup_teardown(expired_certificate_is_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(not_yet_valid_certificate_is_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_client_certificate_is_cert_required, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tls_client_to_plain_port_is_not_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(plain_client_to_tls_port_fails_clearly, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_server_is_handshake_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_client_to_http_server_is_not_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_key_password, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_key_password, setup, teardown),
        cmocka_unit_test_setup_teardown(pkcs8_aes_key_is_bad_key_in_mbedtls_2_28, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(garbage_ca_file, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_ca_file, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_ca_text, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_client_key, setup, teardown),
        cmocka_unit_test_setup_teardown(key_not_matching_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(certificate_without_key,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(key_without_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(tls13_is_unsupported, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnects_over_tls_after_broker_restart, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("transport_tls", tests, group_setup, group_teardown);
}
