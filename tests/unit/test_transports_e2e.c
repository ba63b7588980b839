/* End to end: the four transports through the client API only, against one
 * mosquitto per test with four listeners:
 *   tcp  mqtt://127.0.0.1:P        (the fixture's plain listener)
 *   tls  mqtts://localhost:P       (server authentication, cfg.tls.ca = test CA)
 *   ws   ws://127.0.0.1:P/mqtt     (protocol websockets)
 *   wss  wss://localhost:P/mqtt    (protocol websockets + certfile/keyfile)
 * Certificates are made once for the file (tests/support/tls_certs.h).
 *
 * Tests:
 *   1. per transport: QoS 0, 1 and 2 publish/subscribe between two clients
 *      on that transport (every message arrives with its QoS; one PUBLISHED
 *      per message, QoS 0 included);
 *   2. across transports: a client on mqtts and one on wss receive each
 *      other's messages;
 *   3. reconnect over tls and over wss: auto_reconnect (100 ms), the broker
 *      restarted by the fixture on the same ports, a second CONNECTED, and a
 *      QoS 1 message published while the broker was down arrives afterwards;
 *   4. large messages over wss. mosquitto 2.0.11 writes to WebSocket clients
 *      at about 40 KB/s (1 MiB takes ~26 s), so to keep the file well under
 *      a minute: 1 MiB published over wss and received over mqtts (exercises
 *      the client's WebSocket+TLS write path with a large message), and
 *      256 KiB published over wss and received over wss (exercises the
 *      WebSocket+TLS read path: many frames and TLS records, ~7 s);
 *   5. wss with the wrong CA: MQTTC_CLIENT_EV_ERROR with
 *      MQTTC_ERR_TLS_UNKNOWN_CA, kind CONNECT (the TLS error surfaces through
 *      the WebSocket layer unchanged).
 * Every wait has a deadline; only loopback addresses are used. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "tls_certs.h"

#define T IT_TIMEOUT_MS
#define CONF_MAX 4096
#define PER_QOS 5
#define BIG_OVER_TLS (1024u * 1024u)
#define BIG_OVER_WSS (256u * 1024u)
#define BIG_TIMEOUT_MS 60000

typedef enum tr { TR_TCP = 0, TR_TLS = 1, TR_WS = 2, TR_WSS = 3 } tr;

static const char *const tr_name[] = {"tcp", "tls", "ws", "wss"};

/* Made once for the whole file (group setup); read-only afterwards. */
static tls_certs g_certs;

typedef struct fx {
    itest *it;
    uint16_t port[4];
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
    f->port[TR_TLS] = broker_unused_port(false);
    f->port[TR_WS] = broker_unused_port(false);
    f->port[TR_WSS] = broker_unused_port(false);
    if (f->port[TR_TLS] == 0 || f->port[TR_WS] == 0 || f->port[TR_WSS] == 0 ||
        f->port[TR_TLS] == f->port[TR_WS] || f->port[TR_WS] == f->port[TR_WSS] ||
        f->port[TR_TLS] == f->port[TR_WSS]) {
        free(f);
        free(conf);
        return -1;
    }
    snprintf(conf, CONF_MAX,
             "listener %u 127.0.0.1\ncertfile %s\nkeyfile %s\n"
             "listener %u 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n"
             "listener %u 127.0.0.1\nprotocol websockets\nsocket_domain ipv4\n"
             "certfile %s\nkeyfile %s\n",
             (unsigned)f->port[TR_TLS], g_certs.server_cert, g_certs.server_key,
             (unsigned)f->port[TR_WS], (unsigned)f->port[TR_WSS], g_certs.server_cert,
             g_certs.server_key);
    broker_opts_init(&o);
    o.extra_conf = conf; /* written before the fixture's plain listener */
    f->it = it_new(&o);
    free(conf);
    if (f->it == NULL) {
        free(f);
        return -1;
    }
    f->port[TR_TCP] = f->it->b.port;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    it_free(f->it);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void dump(fx *f, it_rec *r)
{
    size_t i;
    if (r != NULL) {
        it_lock(r);
        for (i = 0; i < r->nerrors; i++) {
            print_error("%s: error event %zu: %s kind %d\n", r->name, i,
                        mqttc_errname(r->errors[i].code), (int)r->errors[i].kind);
        }
        print_error("%s: %zu connected, %zu disconnected, %zu messages, %zu published\n",
                    r->name, r->count[MQTTC_CLIENT_EV_CONNECTED],
                    r->count[MQTTC_CLIENT_EV_DISCONNECTED], r->nmsgs, r->npub);
        it_unlock(r);
    }
    broker_dump_log(&f->it->b, 3000);
}

/* Client configuration for transport `t` (uri_buf: 96 bytes). */
static void tr_config(fx *f, mqttc_client_config *cfg, char *uri_buf, const char *id, tr t)
{
    char unused[64];
    it_config(f->it, cfg, unused, id);
    switch (t) {
    case TR_TCP:
        snprintf(uri_buf, 96, "mqtt://127.0.0.1:%u", (unsigned)f->port[t]);
        break;
    case TR_TLS:
        snprintf(uri_buf, 96, "mqtts://localhost:%u", (unsigned)f->port[t]);
        break;
    case TR_WS:
        snprintf(uri_buf, 96, "ws://127.0.0.1:%u/mqtt", (unsigned)f->port[t]);
        break;
    case TR_WSS:
        snprintf(uri_buf, 96, "wss://localhost:%u/mqtt", (unsigned)f->port[t]);
        break;
    }
    cfg->uri = uri_buf;
    cfg->connect_timeout_ms = 8000;
    if (t == TR_TLS || t == TR_WSS) {
        cfg->tls.ca = g_certs.ca;
    }
}

/* Create a client with `cfg`, connect it and wait for CONNECTED. */
static mqttc_client *start(fx *f, mqttc_client_config *cfg, it_rec **rec)
{
    mqttc_client *c;
    assert_int_equal(it_client(f->it, cfg, NULL, NULL, &c, rec), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(*rec, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        dump(f, *rec);
        fail_msg("%s did not connect to %s", cfg->client_id, cfg->uri);
    }
    return c;
}

static mqttc_client *tr_client(fx *f, tr t, const char *id, it_rec **rec)
{
    mqttc_client_config cfg;
    char uri[96];
    tr_config(f, &cfg, uri, id, t);
    return start(f, &cfg, rec);
}

static void subscribe(fx *f, mqttc_client *c, it_rec *r, const char *filter, int qos)
{
    size_t before = it_count(r, MQTTC_CLIENT_EV_SUBSCRIBED);
    assert_true(mqttc_client_subscribe(c, filter, qos) > 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, before + 1, T)) {
        dump(f, r);
        fail_msg("no SUBACK for %s", filter);
    }
    it_lock(r);
    assert_int_equal(r->sub_count, 1);
    assert_int_equal(r->granted[0], qos);
    it_unlock(r);
}

struct topic_n {
    const char *topic;
    size_t n;
};

static bool topic_count_reached(it_rec *r, void *arg)
{
    const struct topic_n *a = arg;
    return it_find_msg(r, a->topic, a->n - 1) >= 0;
}

static void wait_topic(fx *f, it_rec *r, const char *topic, size_t n, int timeout_ms)
{
    struct topic_n a = {topic, n};
    if (!it_wait(r, NULL, topic_count_reached, &a, timeout_ms)) {
        dump(f, r);
        fail_msg("%s: fewer than %zu messages on %s after %d ms", r->name, n, topic, timeout_ms);
    }
}

struct pub_id {
    int id;
};

static bool published_id(it_rec *r, void *arg)
{
    const struct pub_id *a = arg;
    size_t i;
    for (i = 0; i < r->npub; i++) {
        if (r->pub_ids[i] == a->id) {
            return true;
        }
    }
    return false;
}

static void wait_published(fx *f, it_rec *r, int id, int timeout_ms)
{
    struct pub_id a = {id};
    if (!it_wait(r, NULL, published_id, &a, timeout_ms)) {
        dump(f, r);
        fail_msg("%s: no PUBLISHED for message %d", r->name, id);
    }
}

struct topic_payload {
    const char *topic;
    const char *payload;
};

/* Index of the first message on `topic` with `payload`, or -1 (lock held). */
static long find_payload(const it_rec *r, const char *topic, const char *payload)
{
    size_t nth;
    long i;
    for (nth = 0; (i = it_find_msg(r, topic, nth)) >= 0; nth++) {
        if (r->msgs[i].len == strlen(payload) &&
            memcmp(r->msgs[i].payload, payload, r->msgs[i].len) == 0) {
            return i;
        }
    }
    return -1;
}

static bool payload_arrived(it_rec *r, void *arg)
{
    const struct topic_payload *a = arg;
    return find_payload(r, a->topic, a->payload) >= 0;
}

/* Check the `nth` message on `topic`: payload `want` and QoS `qos`. */
static void check_msg(it_rec *r, const char *topic, size_t nth, const void *want, size_t len,
                      int qos)
{
    long i;
    it_lock(r);
    i = it_find_msg(r, topic, nth);
    assert_true(i >= 0);
    assert_int_equal(r->msgs[i].qos, qos);
    assert_int_equal(r->msgs[i].len, len);
    assert_int_equal(r->msgs[i].total, len);
    assert_int_equal(r->msgs[i].offset, 0);
    assert_memory_equal(r->msgs[i].payload, want, len);
    it_unlock(r);
}

/* ---- 1. QoS 0/1/2 on each transport -------------------------------------- */

static void pubsub_on(fx *f, tr t)
{
    char sid[32], pid[32], filter[32], topic[3][32], payload[64];
    mqttc_client *sub, *pub;
    it_rec *rs, *rp;
    size_t q, i, by_qos[3] = {0, 0, 0};

    snprintf(sid, sizeof sid, "e2e-%s-sub", tr_name[t]);
    snprintf(pid, sizeof pid, "e2e-%s-pub", tr_name[t]);
    snprintf(filter, sizeof filter, "e2e/%s/#", tr_name[t]);
    sub = tr_client(f, t, sid, &rs);
    pub = tr_client(f, t, pid, &rp);
    subscribe(f, sub, rs, filter, 2);

    for (q = 0; q < 3; q++) {
        snprintf(topic[q], sizeof topic[q], "e2e/%s/q%zu", tr_name[t], q);
    }
    for (i = 0; i < PER_QOS; i++) {
        for (q = 0; q < 3; q++) {
            int id;
            snprintf(payload, sizeof payload, "%s qos %zu #%zu", tr_name[t], q, i);
            id = mqttc_client_publish(pub, topic[q], payload, strlen(payload), (int)q, false);
            if (q == 0) {
                assert_int_equal(id, 0);
            } else {
                assert_true(id > 0);
            }
        }
    }
    for (q = 0; q < 3; q++) {
        wait_topic(f, rs, topic[q], PER_QOS, T);
    }
    if (!it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3 * PER_QOS, T)) {
        dump(f, rp);
        fail_msg("%s: not every message was PUBLISHED", pid);
    }
    for (q = 0; q < 3; q++) {
        assert_int_equal(it_count_topic(rs, topic[q]), PER_QOS); /* no duplicates */
        for (i = 0; i < PER_QOS; i++) {
            snprintf(payload, sizeof payload, "%s qos %zu #%zu", tr_name[t], q, i);
            check_msg(rs, topic[q], i, payload, strlen(payload), (int)q); /* in order */
        }
    }
    it_lock(rp);
    assert_int_equal(rp->npub, 3 * PER_QOS);
    for (i = 0; i < rp->npub; i++) {
        assert_true(rp->pub_qos[i] <= 2);
        by_qos[rp->pub_qos[i]]++;
    }
    assert_int_equal(rp->ndrop, 0);
    it_unlock(rp);
    for (q = 0; q < 3; q++) {
        assert_int_equal(by_qos[q], PER_QOS);
    }
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_ERROR), 0);
    assert_int_equal(it_count(rp, MQTTC_CLIENT_EV_ERROR), 0);
}

static void pubsub_tcp(void **state)
{
    pubsub_on(*state, TR_TCP);
}

static void pubsub_tls(void **state)
{
    pubsub_on(*state, TR_TLS);
}

static void pubsub_ws(void **state)
{
    pubsub_on(*state, TR_WS);
}

static void pubsub_wss(void **state)
{
    pubsub_on(*state, TR_WSS);
}

/* ---- 2. mqtts <-> wss ----------------------------------------------------- */

static void cross_tls_wss(void **state)
{
    fx *f = *state;
    mqttc_client *a, *b;
    it_rec *ra, *rb;
    int q;

    a = tr_client(f, TR_TLS, "e2e-x-tls", &ra);
    b = tr_client(f, TR_WSS, "e2e-x-wss", &rb);
    subscribe(f, a, ra, "x/from-wss/#", 2);
    subscribe(f, b, rb, "x/from-tls/#", 2);
    for (q = 0; q <= 2; q++) {
        char ta[32], tb[32], pa[32], pb[32];
        snprintf(ta, sizeof ta, "x/from-tls/q%d", q);
        snprintf(tb, sizeof tb, "x/from-wss/q%d", q);
        snprintf(pa, sizeof pa, "hello from tls %d", q);
        snprintf(pb, sizeof pb, "hello from wss %d", q);
        assert_true(mqttc_client_publish(a, ta, pa, strlen(pa), q, false) >= 0);
        assert_true(mqttc_client_publish(b, tb, pb, strlen(pb), q, false) >= 0);
        wait_topic(f, rb, ta, 1, T);
        wait_topic(f, ra, tb, 1, T);
        check_msg(rb, ta, 0, pa, strlen(pa), q);
        check_msg(ra, tb, 0, pb, strlen(pb), q);
    }
    assert_true(it_wait_count(ra, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
    assert_true(it_wait_count(rb, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
    assert_int_equal(it_count(ra, MQTTC_CLIENT_EV_MESSAGE), 3); /* only the other's */
    assert_int_equal(it_count(rb, MQTTC_CLIENT_EV_MESSAGE), 3);
}

/* ---- 3. reconnect after a broker restart ---------------------------------- */

/* The client has a persistent session (clean_session false) with a QoS 1
 * subscription to its own topic; mosquitto saves it at the clean stop. While
 * the broker is down the client publishes a QoS 1 message (queued); after the
 * restart it reconnects by itself, sends it, and the broker routes it back. */
static void reconnect_on(fx *f, tr t)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[96], id[32], topic[32];
    const char *msg = "sent while the broker was down";
    int mid;

    snprintf(id, sizeof id, "e2e-rc-%s", tr_name[t]);
    snprintf(topic, sizeof topic, "rc/%s", tr_name[t]);
    tr_config(f, &cfg, uri, id, t);
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    cfg.reconnect_max_ms = 0;
    cfg.clean_session = false;
    c = start(f, &cfg, &r);
    subscribe(f, c, r, topic, 1);

    /* A message before the outage, to know the path works. */
    assert_true(mqttc_client_publish(c, topic, "before", 6, 1, false) > 0);
    wait_topic(f, r, topic, 1, T);

    assert_true(broker_stop(&f->it->b) >= 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T)) {
        dump(f, r);
        fail_msg("%s: no DISCONNECTED after the broker stopped", id);
    }
    it_lock(r);
    assert_true(r->disc_will_reconnect);
    it_unlock(r);
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_CONNECTED), 1);

    mid = mqttc_client_publish(c, topic, msg, strlen(msg), 1, false);
    assert_true(mid > 0);

    assert_int_equal(broker_restart(&f->it->b), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T)) {
        dump(f, r);
        fail_msg("%s: did not reconnect over %s", id, tr_name[t]);
    }
    it_lock(r);
    assert_true(r->session_present); /* the broker kept the session across the restart */
    it_unlock(r);
    /* QoS 1 is at least once: "before" may come again first if the broker
     * stopped before it saw our PUBACK, so look for the payload itself. */
    {
        struct topic_payload a = {topic, msg};
        long i;
        if (!it_wait(r, NULL, payload_arrived, &a, T)) {
            dump(f, r);
            fail_msg("%s: the message published while the broker was down never arrived", id);
        }
        it_lock(r);
        i = find_payload(r, topic, msg);
        assert_true(i >= 0);
        assert_int_equal(r->msgs[i].qos, 1);
        it_unlock(r);
    }
    wait_published(f, r, mid, T);
    it_lock(r);
    assert_int_equal(r->ndrop, 0);
    it_unlock(r);
}

static void reconnect_tls(void **state)
{
    reconnect_on(*state, TR_TLS);
}

static void reconnect_wss(void **state)
{
    reconnect_on(*state, TR_WSS);
}

/* ---- 4. large messages over wss ------------------------------------------- */

static void big_message(fx *f, tr recv_tr, size_t size, const char *topic, uint32_t seed)
{
    mqttc_client *sub, *pub;
    it_rec *rs, *rp;
    uint8_t *payload = malloc(size);
    uint64_t t0;
    int mid;

    assert_non_null(payload);
    it_pattern(payload, size, seed);
    sub = tr_client(f, recv_tr, "e2e-big-sub", &rs);
    pub = tr_client(f, TR_WSS, "e2e-big-pub", &rp);
    subscribe(f, sub, rs, topic, 1);
    t0 = broker_now_ms();
    mid = mqttc_client_publish(pub, topic, payload, size, 1, false);
    if (mid <= 0) {
        free(payload);
        fail_msg("publish of %zu bytes failed: %d", size, mid);
    }
    wait_published(f, rp, mid, BIG_TIMEOUT_MS);
    {
        struct topic_n a = {topic, 1};
        if (!it_wait(rs, NULL, topic_count_reached, &a, BIG_TIMEOUT_MS)) {
            free(payload);
            dump(f, rs);
            fail_msg("%zu bytes over wss did not arrive over %s", size, tr_name[recv_tr]);
        }
    }
    print_message("%zu bytes wss -> %s in %llu ms\n", size, tr_name[recv_tr],
                  (unsigned long long)(broker_now_ms() - t0));
    {
        long i;
        bool same;
        it_lock(rs);
        i = it_find_msg(rs, topic, 0);
        same = i >= 0 && rs->msgs[i].len == size && rs->msgs[i].total == size &&
               rs->msgs[i].qos == 1 && memcmp(rs->msgs[i].payload, payload, size) == 0;
        it_unlock(rs);
        free(payload);
        assert_true(same);
    }
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_MESSAGE), 1);
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_ERROR), 0);
    assert_int_equal(it_count(rp, MQTTC_CLIENT_EV_ERROR), 0);
}

/* 1 MiB published over wss, received over mqtts (fast: see the file comment). */
static void big_wss_to_tls(void **state)
{
    big_message(*state, TR_TLS, BIG_OVER_TLS, "big/tls", 11);
}

/* 256 KiB published and received over wss (~7 s at mosquitto's WebSocket pace). */
static void big_wss_to_wss(void **state)
{
    big_message(*state, TR_WSS, BIG_OVER_WSS, "big/wss", 12);
}

/* ---- 5. wss with the wrong CA --------------------------------------------- */

static void wss_wrong_ca(void **state)
{
    fx *f = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[96];

    tr_config(f, &cfg, uri, "e2e-wrong-ca", TR_WSS);
    cfg.tls.ca = g_certs.other_ca;
    assert_int_equal(it_client(f->it, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 1, T)) {
        dump(f, r);
        fail_msg("no ERROR event for a wss server signed by an unknown CA");
    }
    it_lock(r);
    if (r->errors[0].code != MQTTC_ERR_TLS_UNKNOWN_CA) {
        int code = r->errors[0].code;
        it_unlock(r);
        dump(f, r);
        fail_msg("error %s (%d), expected MQTTC_ERR_TLS_UNKNOWN_CA", mqttc_errname(code), code);
    }
    assert_int_equal(r->errors[0].kind, MQTTC_ERRKIND_CONNECT);
    it_unlock(r);
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_CONNECTED), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(pubsub_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(pubsub_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(pubsub_ws, setup, teardown),
        cmocka_unit_test_setup_teardown(pubsub_wss, setup, teardown),
        cmocka_unit_test_setup_teardown(cross_tls_wss, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnect_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(reconnect_wss, setup, teardown),
        cmocka_unit_test_setup_teardown(big_wss_to_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(big_wss_to_wss, setup, teardown),
        cmocka_unit_test_setup_teardown(wss_wrong_ca, setup, teardown),
    };
    return cmocka_run_group_tests_name("transports_e2e", tests, group_setup, group_teardown);
}
