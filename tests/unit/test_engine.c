/*
 * Tests of the session engine (include/mqttc/engine.h) against a scripted
 * broker (tests/support/fake_broker.h). Written from the header and the
 * MQTT 3.1.1 standard; section numbers (MQTT-x.y.z) say which rule a test
 * checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "fake_broker.h"
#include "mqttc/engine.h"

/* ---- helpers ------------------------------------------------------------ */

static int fb_new(void **state)
{
    fake_broker *fb = calloc(1, sizeof *fb);
    if (fb == NULL)
        return -1;
    fb_setup(fb);
    *state = fb;
    return 0;
}

static int fb_free(void **state)
{
    free(*state);
    return 0;
}

static fake_broker *init_engine(void **state)
{
    fake_broker *fb = *state;
    assert_code(fb_init(fb), 0);
    return fb;
}

/* Engine connected with a clean session. */
static fake_broker *connect_engine(void **state)
{
    fake_broker *fb = init_engine(state);
    fb_connect(fb, false);
    return fb;
}

/* Engine connected with clean_session = 0, so its session survives reconnects. */
static fake_broker *connect_persistent(void **state)
{
    fake_broker *fb = *state;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    return fb;
}

static mqttc_str str(const char *s)
{
    mqttc_str x;
    x.data = s;
    x.len = (uint16_t)strlen(s);
    return x;
}

static void assert_str(mqttc_str actual, const char *expected)
{
    assert_non_null(actual.data);
    assert_int_equal(actual.len, strlen(expected));
    assert_memory_equal(actual.data, expected, actual.len);
}

static mqttc_state state_of(const fake_broker *fb)
{
    return mqttc_engine_state(&fb->engine);
}

static int publish(fake_broker *fb, mqttc_message *m)
{
    return mqttc_engine_publish(&fb->engine, m);
}

/* Publish and check the returned packet id against the header's promises. */
static uint16_t publish_ok(fake_broker *fb, mqttc_message *m)
{
    int rc = publish(fb, m);
    if (rc < 0)
        fail_msg("mqttc_engine_publish failed: %s", mqttc_errname(rc));
    if (m->qos == 0) {
        assert_int_equal(rc, 0);
        assert_int_equal(m->packet_id, 0);
    } else {
        assert_in_range(rc, 1, 65535);
        assert_int_equal(m->packet_id, rc);
    }
    return (uint16_t)rc;
}

static void subscribe_init(mqttc_request *r, const mqttc_subscription *subs, size_t n)
{
    memset(r, 0, sizeof *r);
    r->kind = MQTTC_REQ_SUBSCRIBE;
    r->subs = subs;
    r->count = n;
}

static void unsubscribe_init(mqttc_request *r, const mqttc_str *filters, size_t n)
{
    memset(r, 0, sizeof *r);
    r->kind = MQTTC_REQ_UNSUBSCRIBE;
    r->filters = filters;
    r->count = n;
}

static uint16_t request_ok(fake_broker *fb, mqttc_request *r)
{
    int rc = mqttc_engine_request(&fb->engine, r);
    if (rc < 0)
        fail_msg("mqttc_engine_request failed: %s", mqttc_errname(rc));
    assert_in_range(rc, 1, 65535);
    assert_int_equal(r->packet_id, rc);
    return (uint16_t)rc;
}

static const fb_event *last_closed(const fake_broker *fb)
{
    size_t n = fb_count_events(fb, MQTTC_EV_CLOSED);
    if (n == 0)
        fail_msg("expected an MQTTC_EV_CLOSED event, got none");
    return fb_find_event(fb, MQTTC_EV_CLOSED, n - 1);
}

/* The engine closed itself: `rc` (what the call returned) is `reason`, the
 * CLOSED event says so too, and the state is OFFLINE. */
static void expect_closed(const fake_broker *fb, int rc, int reason)
{
    assert_code(rc, reason);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_code(last_closed(fb)->reason, reason);
}

/* Closed for one of two acceptable protocol reasons. */
static void expect_closed_either(const fake_broker *fb, int rc, int a, int b)
{
    if (rc != a && rc != b)
        fail_msg("closed with %s, expected %s or %s", mqttc_errname(rc), mqttc_errname(a),
                 mqttc_errname(b));
    expect_closed(fb, rc, rc);
}

static void expect_done(const fake_broker *fb, size_t nth, const mqttc_message *m, int status)
{
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_PUBLISH_DONE, nth);
    assert_ptr_equal(ev->msg, m);
    assert_code(ev->status, status);
}

/* How many PUBLISH_DONE events returned `m`. */
static size_t done_count(const fake_broker *fb, const mqttc_message *m)
{
    size_t n = 0;
    for (size_t i = 0; i < fb->event_count; i++)
        if (fb->events[i].type == MQTTC_EV_PUBLISH_DONE && fb->events[i].msg == m)
            n++;
    return n;
}

static const uint8_t payload_hello[] = "hello";

/* ---- init and start --------------------------------------------------- */

static void test_init_rejects_null_engine_or_config(void **state)
{
    fake_broker *fb = *state;
    assert_code(mqttc_engine_init(NULL, &fb->cfg), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_init(&fb->engine, NULL), MQTTC_ERR_INVALID_ARG);
}

static void test_init_rejects_missing_or_tiny_buffers(void **state)
{
    fake_broker *fb = *state;
    mqttc_engine_config good = fb->cfg;

    fb->cfg = good;
    fb->cfg.rx_buf = NULL;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);
    fb->cfg = good;
    fb->cfg.rx_cap = 63;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);
    fb->cfg = good;
    fb->cfg.tx_buf = NULL;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);
    fb->cfg = good;
    fb->cfg.tx_cap = 63;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);
    fb->cfg = good;
    fb->cfg.inbound_ids = NULL;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);
    fb->cfg = good;
    fb->cfg.inbound_cap = 0;
    assert_code(fb_init(fb), MQTTC_ERR_INVALID_ARG);

    /* The documented minimums themselves are fine. */
    fb->cfg = good;
    fb->cfg.rx_cap = 64;
    fb->cfg.tx_cap = 64;
    fb->cfg.inbound_cap = 1;
    assert_code(fb_init(fb), 0);
}

static void test_init_leaves_engine_offline_and_idle(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb_pending_output(fb), 0);
    assert_int_equal(fb_next_timeout(fb), MQTTC_NO_TIMEOUT);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(fb->event_count, 0);
}

static void test_start_rejects_invalid_connect_options(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_connect good = fb->connect;

    assert_code(mqttc_engine_start(&fb->engine, NULL, fb->now), MQTTC_ERR_INVALID_ARG);

    /* MQTT-3.1.3-7: a zero-length client id needs CleanSession = 1. */
    fb->connect = good;
    fb->connect.client_id = str("");
    fb->connect.clean_session = false;
    assert_code(fb_start(fb), MQTTC_ERR_BAD_CLIENT_ID);

    /* MQTT-1.5.3: strings are well-formed UTF-8 (C0 80 is an overlong NUL). */
    fb->connect = good;
    fb->connect.client_id.data = "\xC0\x80";
    fb->connect.client_id.len = 2;
    assert_code(fb_start(fb), MQTTC_ERR_BAD_UTF8);

    /* MQTT-3.1.2-14: will QoS 3 is invalid. */
    fb->connect = good;
    fb->connect.will_topic = str("will/t");
    fb->connect.will_qos = 3;
    assert_code(fb_start(fb), MQTTC_ERR_BAD_QOS);

    /* MQTT-3.1.3-10 / 4.7: the will topic is a topic name, no wildcards. */
    fb->connect = good;
    fb->connect.will_topic = str("will/#");
    assert_code(fb_start(fb), MQTTC_ERR_BAD_TOPIC);

    /* MQTT-3.1.2-13: will QoS without a will. */
    fb->connect = good;
    fb->connect.will_qos = 1;
    assert_code(fb_start(fb), MQTTC_ERR_BAD_WILL);

    /* MQTT-3.1.2-15: will retain without a will. */
    fb->connect = good;
    fb->connect.will_retain = true;
    assert_code(fb_start(fb), MQTTC_ERR_BAD_WILL);

    /* A will message without a will topic (MQTT-3.1.2-11: payload only with the flag). */
    fb->connect = good;
    fb->connect.will_payload = str("bye");
    assert_code(fb_start(fb), MQTTC_ERR_BAD_WILL);

    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb->event_count, 0);

    /* A valid start still works afterwards. */
    fb->connect = good;
    fb_connect(fb, false);
}

static void test_start_rejects_connect_larger_than_tx_buffer(void **state)
{
    fake_broker *fb = *state;
    static char long_id[101];
    memset(long_id, 'x', 100);
    fb->cfg.tx_cap = 64;
    assert_code(fb_init(fb), 0);
    fb->connect.client_id = str(long_id);
    assert_code(fb_start(fb), MQTTC_ERR_BUFFER_TOO_SMALL);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_false(mqttc_engine_want_write(&fb->engine));
}

static void test_start_when_not_offline_is_bad_state(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    assert_code(mqttc_engine_start(&fb->engine, &fb->connect, fb->now), MQTTC_ERR_BAD_STATE);
    fb_expect_sent(fb, MQTTC_CONNECT);
    fb_expect_nothing_sent(fb); /* only one CONNECT */

    assert_code(fb_send_connack(fb, false, 0), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    assert_code(mqttc_engine_start(&fb->engine, &fb->connect, fb->now), MQTTC_ERR_BAD_STATE);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    fb_expect_nothing_sent(fb);
}

static void test_start_sends_connect_bytes_and_enters_connecting(void **state)
{
    fake_broker *fb = init_engine(state);
    fb->connect.client_id = str("c");
    fb->connect.keepalive = 60;
    fb->connect.clean_session = true;
    assert_code(fb_start(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    assert_true(mqttc_engine_want_write(&fb->engine));

    /* MQTT-3.1: fixed header, "MQTT", level 4, flags CleanSession, keepalive 60, id "c". */
    static const uint8_t golden[] = {0x10, 0x0D, 0x00, 0x04, 'M',  'Q',  'T', 'T',
                                     0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'};
    assert_code(fb_drain_output(fb), 0);
    assert_int_equal(fb->capture_len, sizeof golden);
    assert_memory_equal(fb->capture, golden, sizeof golden);
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    assert_int_equal(fb->event_count, 0);
}

static void test_connect_carries_every_option(void **state)
{
    fake_broker *fb = init_engine(state);
    static const char password[] = {'p', '\0', 'w'};
    fb->connect.client_id = str("client-42");
    fb->connect.username = str("user");
    fb->connect.password.data = password;
    fb->connect.password.len = sizeof password;
    fb->connect.will_topic = str("will/topic");
    fb->connect.will_payload = str("bye");
    fb->connect.will_qos = 1;
    fb->connect.will_retain = true;
    fb->connect.keepalive = 30;
    fb->connect.clean_session = false;
    assert_code(fb_start(fb), 0);

    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_CONNECT);
    const mqttc_connect *c = &p->u.connect;
    assert_str(c->client_id, "client-42");
    assert_str(c->username, "user");
    assert_non_null(c->password.data);
    assert_int_equal(c->password.len, sizeof password);
    assert_memory_equal(c->password.data, password, sizeof password);
    assert_str(c->will_topic, "will/topic");
    assert_str(c->will_payload, "bye");
    assert_int_equal(c->will_qos, 1);
    assert_true(c->will_retain);
    assert_int_equal(c->keepalive, 30);
    assert_false(c->clean_session);
}

/* ---- CONNACK ------------------------------------------------------------ */

static void test_connack_accepted_emits_connected(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    assert_int_equal(fb->event_count, 0);

    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    assert_int_equal(mqttc_engine_recv(&fb->engine, connack, sizeof connack, fb->now), 4);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    assert_int_equal(fb->event_count, 1);
    assert_int_equal(fb->events[0].type, MQTTC_EV_CONNECTED);
    assert_false(fb->events[0].session_present);
    fb_expect_nothing_sent(fb);
}

static void test_connack_reports_session_present(void **state)
{
    fake_broker *fb = *state;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, true);
    assert_true(fb_expect_event(fb, MQTTC_EV_CONNECTED, 0)->session_present);
}

static void test_connack_refusals_close_with_matching_reason(void **state)
{
    fake_broker *fb = init_engine(state);
    static const int reasons[6] = {0,
                                   MQTTC_ERR_REFUSED_PROTOCOL,
                                   MQTTC_ERR_REFUSED_IDENTIFIER,
                                   MQTTC_ERR_REFUSED_UNAVAILABLE,
                                   MQTTC_ERR_REFUSED_CREDENTIALS,
                                   MQTTC_ERR_REFUSED_NOT_AUTHORIZED};
    for (uint8_t code = 1; code <= 5; code++) {
        fb_clear_events(fb);
        assert_code(fb_start(fb), 0);
        fb_expect_sent(fb, MQTTC_CONNECT);
        uint8_t connack[4] = {0x20, 0x02, 0x00, code};
        int rc = mqttc_engine_recv(&fb->engine, connack, sizeof connack, fb->now);
        expect_closed(fb, rc, reasons[code]);
        assert_int_equal(fb->event_count, 1); /* CLOSED only, no CONNECTED */
        fb_expect_nothing_sent(fb);
    }
}

static void test_connack_timeout_closes_the_connection(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.connack_timeout_ms = 5000;
    assert_code(fb_init(fb), 0);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    assert_int_equal(fb_next_timeout(fb), 5000);

    fb_advance_clock(fb, 4999);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    assert_int_equal(fb_next_timeout(fb), 1);

    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_CONNACK_TIMEOUT);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    assert_int_equal(fb_next_timeout(fb), MQTTC_NO_TIMEOUT);
}

static void test_connack_timeout_defaults_to_ten_seconds(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    assert_int_equal(fb_next_timeout(fb), 10000);
    fb_advance_clock(fb, 9999);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_CONNACK_TIMEOUT);
}

static void test_connack_timeout_across_clock_wrap(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.connack_timeout_ms = 8000;
    fb->now = 0xFFFFF000u; /* 4096 ms before the counter wraps */
    assert_code(fb_init(fb), 0);
    assert_code(fb_start(fb), 0);
    assert_int_equal(fb_next_timeout(fb), 8000);
    fb_advance_clock(fb, 7999); /* now 0x00000F3F */
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTING);
    assert_int_equal(fb_next_timeout(fb), 1);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_CONNACK_TIMEOUT);
}

static void test_publish_before_connack_is_unexpected(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    int rc = fb_send_publish(fb, "a/b", "x", 1, 0, 0, false, false);
    expect_closed(fb, rc, MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CONNECTED), 0);
}

static void test_suback_before_connack_is_unexpected(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    static const uint8_t codes[] = {0};
    expect_closed(fb, fb_send_suback(fb, 1, codes, 1), MQTTC_ERR_UNEXPECTED_PACKET);
}

static void test_second_connack_is_unexpected(void **state)
{
    fake_broker *fb = connect_engine(state);
    expect_closed(fb, fb_send_connack(fb, false, 0), MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CONNECTED), 1);
}

/* MQTT-3.2.2-1: a server accepting CleanSession = 1 must say Session Present 0. */
static void test_session_present_for_clean_session_closes(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_true(fb->connect.clean_session);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    int rc = fb_send_connack(fb, true, 0);
    expect_closed_either(fb, rc, MQTTC_ERR_UNEXPECTED_PACKET, MQTTC_ERR_MALFORMED);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CONNECTED), 0);
}

/* PINGREQ and SUBSCRIBE only go from client to server. */
static void test_client_only_packets_from_broker_close_the_connection(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const uint8_t pingreq[] = {0xC0, 0x00};
    expect_closed(fb, fb_inject(fb, pingreq, sizeof pingreq), MQTTC_ERR_UNEXPECTED_PACKET);

    fb_connect(fb, false);
    static const uint8_t subscribe[] = {0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00};
    expect_closed(fb, fb_inject(fb, subscribe, sizeof subscribe), MQTTC_ERR_UNEXPECTED_PACKET);
}

static void test_connack_and_publish_in_one_read(void **state)
{
    fake_broker *fb = init_engine(state);
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    uint8_t wire[64];
    int len = mqttc_encode_connack(wire, sizeof wire, false, 0);
    assert_int_equal(len, 4);
    size_t n = (size_t)len;
    n += fb_encode_publish(wire + n, sizeof wire - n, "a/b", "hi", 2, 1, 7, false, false);
    assert_code(fb_inject(fb, wire, n), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    assert_int_equal(fb->event_count, 2);
    assert_int_equal(fb->events[0].type, MQTTC_EV_CONNECTED);
    assert_int_equal(fb->events[1].type, MQTTC_EV_MESSAGE);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 7);
}

/* ---- packet identifiers (MQTT-2.3.1) ------------------------------------ */

static void test_packet_ids_are_nonzero_and_unique_among_unfinished(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m[4];
    mqttc_request r[2];
    static const mqttc_subscription subs[] = {{{"s/#", 3}, 1}};
    static const mqttc_str filters[] = {{"u/+", 3}};
    int ids[5];

    fb_message_init(&m[0], "a", "1", 1, 1);
    fb_message_init(&m[1], "a", "2", 1, 2);
    fb_message_init(&m[2], "a", "3", 1, 1);
    fb_message_init(&m[3], "a", "4", 1, 0);
    subscribe_init(&r[0], subs, 1);
    unsubscribe_init(&r[1], filters, 1);
    ids[0] = publish_ok(fb, &m[0]);
    ids[1] = publish_ok(fb, &m[1]);
    ids[2] = request_ok(fb, &r[0]);
    ids[3] = request_ok(fb, &r[1]);
    ids[4] = publish_ok(fb, &m[2]);
    assert_int_equal(publish_ok(fb, &m[3]), 0); /* QoS 0 takes no id */
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (ids[i] == ids[j])
                fail_msg("packet id %d given twice", ids[i]);

    /* The packets on the wire carry those ids (order between kinds is free). */
    int seen[5] = {0};
    mqttc_packet p;
    int packets = 0;
    while (fb_next_sent_packet(fb, &p) && packets < 10) {
        packets++;
        uint16_t id = 0;
        if (p.type == MQTTC_PUBLISH)
            id = p.u.publish.packet_id;
        else if (p.type == MQTTC_SUBSCRIBE)
            id = p.u.subscribe.packet_id;
        else if (p.type == MQTTC_UNSUBSCRIBE)
            id = p.u.unsubscribe.packet_id;
        else
            fail_msg("unexpected packet type %u", p.type);
        if (id == 0) {
            assert_int_equal(p.type, MQTTC_PUBLISH);
            assert_int_equal(p.u.publish.qos, 0);
            continue;
        }
        for (int i = 0; i < 5; i++)
            if (ids[i] == id)
                seen[i]++;
    }
    assert_int_equal(packets, 6);
    for (int i = 0; i < 5; i++)
        assert_int_equal(seen[i], 1);
}

/*
 * One QoS 1 message and one SUBSCRIBE stay unanswered while 131,072 other
 * QoS 1 messages go through in pairs: the ids cross 65535 (a sequential
 * allocator wraps twice) and never collide with anything unfinished.
 */
static void test_packet_ids_wrap_and_skip_ids_in_flight(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message stuck;
    mqttc_request stuck_req;
    static const mqttc_subscription subs[] = {{{"s", 1}, 0}};
    fb_message_init(&stuck, "stuck", "s", 1, 1);
    subscribe_init(&stuck_req, subs, 1);
    uint16_t stuck_id = publish_ok(fb, &stuck);
    uint16_t stuck_req_id = request_ok(fb, &stuck_req);
    assert_int_not_equal(stuck_id, stuck_req_id);
    fb_expect_sent_publish(fb, &stuck, stuck_id, 0);
    fb_expect_sent(fb, MQTTC_SUBSCRIBE);

    mqttc_message a, b;
    fb_clear_events(fb);
    for (uint32_t i = 0; i < 65536; i++) {
        fb_message_init(&a, "t", "a", 1, 1);
        fb_message_init(&b, "t", "b", 1, 1);
        uint16_t ida = publish_ok(fb, &a);
        uint16_t idb = publish_ok(fb, &b);
        if (ida == stuck_id || idb == stuck_id || ida == stuck_req_id || idb == stuck_req_id ||
            ida == idb)
            fail_msg("round %u: ids %u, %u collide with in-flight %u / %u", i, ida, idb,
                     stuck_id, stuck_req_id);
        fb_expect_sent_publish(fb, &a, ida, 0);
        fb_expect_sent_publish(fb, &b, idb, 0);
        assert_code(fb_send_puback(fb, idb), 0);
        assert_code(fb_send_puback(fb, ida), 0);
        if (fb->event_count != 2 || fb->events[0].msg != &b || fb->events[1].msg != &a)
            fail_msg("round %u: expected two PUBLISH_DONE events, got %zu", i, fb->event_count);
        fb_clear_events(fb);
    }
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    assert_code(fb_send_puback(fb, stuck_id), 0);
    expect_done(fb, 0, &stuck, 0);
}

/* ---- outbound QoS 0/1/2 (MQTT-4.3) ---------------------------------------- */

static void test_qos1_publish_is_sent_and_completed_by_puback(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "sensors/temp", payload_hello, 5, 1);
    m.retain = true;
    uint16_t id = publish_ok(fb, &m);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    assert_true(mqttc_engine_want_write(&fb->engine));

    fb_expect_sent_publish(fb, &m, id, 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 1);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);

    assert_code(fb_send_puback(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    fb_expect_nothing_sent(fb);
}

static void test_qos2_publish_completes_after_pubrec_pubrel_pubcomp(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "cmd/door", "open", 4, 2);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);

    assert_code(fb_send_pubrec(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_code(fb_drain_output(fb), 0);
    /* MQTT-3.6.1-1: PUBREL is 0x62. */
    assert_true(fb->capture_len >= 4);
    assert_int_equal(fb->capture[fb->capture_read], 0x62);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 1);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);

    assert_code(fb_send_pubcomp(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    fb_expect_nothing_sent(fb);
}

static void test_qos0_done_only_after_its_bytes_are_consumed(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "log", "line of text", 12, 0);
    publish_ok(fb, &m);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);

    size_t pending = fb_pending_output(fb);
    assert_int_equal(pending, 2 + 2 + 3 + 12);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_code(fb_drain_output_bytes(fb, pending - 1), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_code(fb_drain_output_bytes(fb, 1), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    fb_expect_sent_publish(fb, &m, 0, 0);
}

static void test_inflight_window_holds_back_third_message(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inflight_max = 2;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message m[3];
    uint16_t id[3];
    for (int i = 0; i < 3; i++) {
        fb_message_init(&m[i], "w", "x", 1, 1);
        id[i] = publish_ok(fb, &m[i]);
    }
    fb_expect_sent_publish(fb, &m[0], id[0], 0);
    fb_expect_sent_publish(fb, &m[1], id[1], 0);
    fb_expect_nothing_sent(fb);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 2);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 3);

    assert_code(fb_send_puback(fb, id[0]), 0);
    fb_expect_sent_publish(fb, &m[2], id[2], 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 2);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);

    assert_code(fb_send_puback(fb, id[1]), 0);
    assert_code(fb_send_puback(fb, id[2]), 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);
    for (int i = 0; i < 3; i++)
        expect_done(fb, (size_t)i, &m[i], 0);
}

static void test_qos2_message_occupies_window_until_pubcomp(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inflight_max = 1;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message a, b;
    fb_message_init(&a, "q", "2", 1, 2);
    fb_message_init(&b, "q", "1", 1, 1);
    uint16_t ida = publish_ok(fb, &a);
    uint16_t idb = publish_ok(fb, &b);
    fb_expect_sent_publish(fb, &a, ida, 0);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_pubrec(fb, ida), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, ida);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_pubcomp(fb, ida), 0);
    fb_expect_sent_publish(fb, &b, idb, 0);
    assert_code(fb_send_puback(fb, idb), 0);
    expect_done(fb, 0, &a, 0);
    expect_done(fb, 1, &b, 0);
}

static void test_inflight_max_defaults_to_twenty(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m[25];
    uint16_t id[25];
    for (int i = 0; i < 25; i++) {
        fb_message_init(&m[i], "d", "x", 1, 1);
        id[i] = publish_ok(fb, &m[i]);
    }
    for (int i = 0; i < 20; i++)
        fb_expect_sent_publish(fb, &m[i], id[i], 0);
    fb_expect_nothing_sent(fb);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 20);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 25);
    assert_code(fb_send_puback(fb, id[0]), 0);
    fb_expect_sent_publish(fb, &m[20], id[20], 0);
    fb_expect_nothing_sent(fb);
}

static void test_queue_full_with_refuse_policy_returns_queue_full(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inflight_max = 1;
    fb->cfg.queue_max_msgs = 3;
    fb->cfg.queue_policy = MQTTC_QUEUE_REFUSE;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message m[4];
    uint16_t id[4];
    for (int i = 0; i < 4; i++)
        fb_message_init(&m[i], "q", "x", 1, 1);
    for (int i = 0; i < 3; i++)
        id[i] = publish_ok(fb, &m[i]);
    assert_code(publish(fb, &m[3]), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 3);
    assert_int_equal(fb->event_count, 1); /* CONNECTED only: nothing dropped */

    fb_expect_sent_publish(fb, &m[0], id[0], 0);
    assert_code(fb_send_puback(fb, id[0]), 0);
    id[3] = publish_ok(fb, &m[3]); /* room again */
    fb_expect_sent_publish(fb, &m[1], id[1], 0);
    assert_code(fb_send_puback(fb, id[1]), 0);
    fb_expect_sent_publish(fb, &m[2], id[2], 0);
    assert_code(fb_send_puback(fb, id[2]), 0);
    fb_expect_sent_publish(fb, &m[3], id[3], 0);
    assert_code(fb_send_puback(fb, id[3]), 0);
    for (int i = 0; i < 4; i++)
        expect_done(fb, (size_t)i, &m[i], 0);
}

static void test_queue_full_drop_oldest_drops_oldest_unsent_message(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inflight_max = 1;
    fb->cfg.queue_max_msgs = 3;
    fb->cfg.queue_policy = MQTTC_QUEUE_DROP_OLDEST;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message a, b, c, d;
    fb_message_init(&a, "q", "a", 1, 1);
    fb_message_init(&b, "q", "b", 1, 1);
    fb_message_init(&c, "q", "c", 1, 1);
    fb_message_init(&d, "q", "d", 1, 1);
    uint16_t ida = publish_ok(fb, &a);
    fb_expect_sent_publish(fb, &a, ida, 0); /* a is in flight */
    publish_ok(fb, &b);
    uint16_t idc = publish_ok(fb, &c);

    uint16_t idd = publish_ok(fb, &d); /* accepted: b, the oldest unsent, goes */
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &b, MQTTC_ERR_DROPPED);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 3);
    assert_int_not_equal(idd, ida);
    assert_int_not_equal(idd, idc);

    assert_code(fb_send_puback(fb, ida), 0);
    fb_expect_sent_publish(fb, &c, idc, 0);
    assert_code(fb_send_puback(fb, idc), 0);
    fb_expect_sent_publish(fb, &d, idd, 0);
    assert_code(fb_send_puback(fb, idd), 0);
    fb_expect_nothing_sent(fb);
    expect_done(fb, 1, &a, 0);
    expect_done(fb, 2, &c, 0);
    expect_done(fb, 3, &d, 0);
    assert_int_equal(done_count(fb, &b), 1);
}

static void test_drop_oldest_while_offline_drops_first_queued(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.queue_max_msgs = 2;
    fb->cfg.queue_policy = MQTTC_QUEUE_DROP_OLDEST;
    assert_code(fb_init(fb), 0);
    mqttc_message a, b, c;
    fb_message_init(&a, "q", "a", 1, 0);
    fb_message_init(&b, "q", "b", 1, 1);
    fb_message_init(&c, "q", "c", 1, 2);
    publish_ok(fb, &a);
    uint16_t idb = publish_ok(fb, &b);
    uint16_t idc = publish_ok(fb, &c);
    expect_done(fb, 0, &a, MQTTC_ERR_DROPPED);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);

    fb_connect(fb, false);
    fb_expect_sent_publish(fb, &b, idb, 0);
    fb_expect_sent_publish(fb, &c, idc, 0);
    fb_expect_nothing_sent(fb);
}

/* Ambiguity: with every message in flight there is no unsent one to drop;
 * the natural reading is to refuse the new one. */
static void test_drop_oldest_never_drops_messages_in_flight(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inflight_max = 2;
    fb->cfg.queue_max_msgs = 2;
    fb->cfg.queue_policy = MQTTC_QUEUE_DROP_OLDEST;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message a, b, c;
    fb_message_init(&a, "q", "a", 1, 1);
    fb_message_init(&b, "q", "b", 1, 2);
    fb_message_init(&c, "q", "c", 1, 1);
    uint16_t ida = publish_ok(fb, &a);
    uint16_t idb = publish_ok(fb, &b);
    fb_expect_sent_publish(fb, &a, ida, 0);
    fb_expect_sent_publish(fb, &b, idb, 0);
    assert_code(publish(fb, &c), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_code(fb_send_puback(fb, ida), 0);
    assert_code(fb_send_pubrec(fb, idb), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idb);
    assert_code(fb_send_pubcomp(fb, idb), 0);
    expect_done(fb, 0, &a, 0);
    expect_done(fb, 1, &b, 0);
}

static void test_queue_max_bytes_refuses_when_topic_and_payload_exceed_it(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.queue_max_bytes = 20;
    assert_code(fb_init(fb), 0);
    mqttc_message a, b, c, small;
    fb_message_init(&a, "t", "123456789", 9, 1); /* 1 + 9 = 10 bytes */
    fb_message_init(&b, "t", "123456789", 9, 1);
    fb_message_init(&c, "t", "1", 1, 0);
    publish_ok(fb, &a);
    publish_ok(fb, &b); /* 20 of 20 */
    assert_code(publish(fb, &c), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);
    assert_int_equal(fb->event_count, 0);

    /* Completing one frees its bytes. */
    fb_connect(fb, false);
    fb_expect_sent_publish(fb, &a, a.packet_id, 0);
    fb_expect_sent_publish(fb, &b, b.packet_id, 0);
    assert_code(fb_send_puback(fb, a.packet_id), 0);
    fb_message_init(&small, "t", "123456789", 9, 0);
    publish_ok(fb, &small);
    fb_expect_sent_publish(fb, &small, 0, 0);
}

static void test_queue_max_bytes_with_drop_oldest_drops_until_it_fits(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.queue_max_bytes = 30;
    fb->cfg.queue_policy = MQTTC_QUEUE_DROP_OLDEST;
    assert_code(fb_init(fb), 0);
    mqttc_message a, b, c, big;
    fb_message_init(&a, "t", "123456789", 9, 1); /* 10 bytes each */
    fb_message_init(&b, "t", "123456789", 9, 1);
    fb_message_init(&c, "t", "123456789", 9, 1);
    fb_message_init(&big, "t", "1234567890123456789", 19, 1); /* 20 bytes */
    publish_ok(fb, &a);
    publish_ok(fb, &b);
    publish_ok(fb, &c);
    publish_ok(fb, &big); /* needs 20 more: a and b must go */
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 2);
    expect_done(fb, 0, &a, MQTTC_ERR_DROPPED);
    expect_done(fb, 1, &b, MQTTC_ERR_DROPPED);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);

    fb_connect(fb, false);
    fb_expect_sent_publish(fb, &c, c.packet_id, 0);
    fb_expect_sent_publish(fb, &big, big.packet_id, 0);
    fb_expect_nothing_sent(fb);
}

static void test_queue_max_msgs_defaults_to_1000(void **state)
{
    fake_broker *fb = init_engine(state);
    static mqttc_message m[1001];
    for (int i = 0; i < 1000; i++) {
        fb_message_init(&m[i], "t", "x", 1, 0);
        assert_code(publish(fb, &m[i]), 0);
    }
    fb_message_init(&m[1000], "t", "x", 1, 0);
    assert_code(publish(fb, &m[1000]), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1000);
}

static void test_publish_offline_is_sent_after_connack_in_order(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_message a, b, c, d;
    fb_message_init(&a, "o/1", "a", 1, 1);
    fb_message_init(&b, "o/2", "b", 1, 0);
    fb_message_init(&c, "o/3", "c", 1, 2);
    fb_message_init(&d, "o/4", "d", 1, 1);
    uint16_t ida = publish_ok(fb, &a);
    publish_ok(fb, &b);
    uint16_t idc = publish_ok(fb, &c);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 3);
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb->event_count, 0);

    assert_code(fb_start(fb), 0);
    uint16_t idd = publish_ok(fb, &d); /* while CONNECTING */
    fb_expect_sent(fb, MQTTC_CONNECT);
    fb_expect_nothing_sent(fb); /* nothing before CONNACK */

    assert_code(fb_send_connack(fb, false, 0), 0);
    fb_expect_sent_publish(fb, &a, ida, 0);
    fb_expect_sent_publish(fb, &b, 0, 0);
    fb_expect_sent_publish(fb, &c, idc, 0);
    fb_expect_sent_publish(fb, &d, idd, 0);
    fb_expect_nothing_sent(fb);
}

static void test_publish_validates_its_arguments(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_message m;
    static char big_topic[1200];
    memset(big_topic, 't', sizeof big_topic - 1);

    fb_message_init(&m, "ok", "x", 1, 1);
    assert_code(mqttc_engine_publish(NULL, &m), MQTTC_ERR_INVALID_ARG);
    assert_code(publish(fb, NULL), MQTTC_ERR_INVALID_ARG);

    fb_message_init(&m, "", "x", 1, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_BAD_TOPIC);
    fb_message_init(&m, "a/+", "x", 1, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_BAD_TOPIC);
    fb_message_init(&m, "a/#", "x", 1, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_BAD_TOPIC);
    fb_message_init(&m, "a/\xC0\x80", "x", 1, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_BAD_UTF8);
    fb_message_init(&m, "ok", "x", 1, 3);
    assert_code(publish(fb, &m), MQTTC_ERR_BAD_QOS);
    fb_message_init(&m, "ok", NULL, 5, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_INVALID_ARG);
    /* MQTT-2.2.3: the Remaining Length cannot exceed 268,435,455. */
    fb_message_init(&m, "ok", "x", MQTTC_MAX_REMAINING_LENGTH, 1);
    assert_code(publish(fb, &m), MQTTC_ERR_TOO_LARGE);
    /* The PUBLISH header (topic) must fit tx_buf (1024 bytes). */
    fb_message_init(&m, big_topic, "x", 1, 1);
    assert_int_equal(m.topic.len, 1199);
    assert_code(publish(fb, &m), MQTTC_ERR_TOO_LARGE);

    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    assert_int_equal(fb->event_count, 0);
    fb_connect(fb, false);
    fb_expect_nothing_sent(fb);
}

static void test_many_messages_are_written_as_tx_buffer_frees(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.tx_cap = 128;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[40];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 3);
    mqttc_message m[10];
    uint16_t id[10];
    for (int i = 0; i < 10; i++) {
        fb_message_init(&m[i], "m/x", payload, sizeof payload, 1);
        id[i] = publish_ok(fb, &m[i]);
    }
    /* Each PUBLISH is 49 bytes: at most two fit in tx_buf at once. */
    fb->tx_one_byte_at_a_time = true;
    for (int i = 0; i < 10; i++)
        fb_expect_sent_publish(fb, &m[i], id[i], 0);
    fb_expect_nothing_sent(fb);
    for (int i = 0; i < 10; i++)
        assert_code(fb_send_puback(fb, id[i]), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 10);
}

static void test_large_payload_is_written_from_the_message(void **state)
{
    fake_broker *fb = connect_engine(state);
    static uint8_t payload[3000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i ^ (i >> 8));
    mqttc_message m;
    fb_message_init(&m, "blob", payload, sizeof payload, 1);
    uint16_t id = publish_ok(fb, &m);

    /* copy_max (512) < 3000: some iovec points into the payload itself. */
    mqttc_iov iov[MQTTC_ENGINE_SEGMENTS];
    size_t n = mqttc_engine_output(&fb->engine, iov, MQTTC_ENGINE_SEGMENTS);
    bool from_message = false;
    uintptr_t lo = (uintptr_t)payload, hi = lo + sizeof payload;
    for (size_t i = 0; i < n; i++) {
        uintptr_t b = (uintptr_t)iov[i].base;
        if (iov[i].len > 0 && b >= lo && b < hi)
            from_message = true;
    }
    assert_true(from_message);
    fb_expect_sent_publish(fb, &m, id, 0);
    assert_code(fb_send_puback(fb, id), 0);
    expect_done(fb, 0, &m, 0);
}

/* Twenty messages with payloads over copy_max need two segments each, more
 * than the 16 kept at once; the driver also takes one iovec per write. */
static void test_many_large_payloads_through_one_iovec_writes(void **state)
{
    fake_broker *fb = connect_engine(state);
    static uint8_t payload[20][600];
    mqttc_message m[20];
    uint16_t id[20];
    fb->iov_max = 1;
    for (int i = 0; i < 20; i++) {
        memset(payload[i], 'A' + i, sizeof payload[i]);
        payload[i][0] = (uint8_t)i;
        fb_message_init(&m[i], "seg", payload[i], sizeof payload[i], 1);
        id[i] = publish_ok(fb, &m[i]);
    }
    for (int i = 0; i < 20; i++)
        fb_expect_sent_publish(fb, &m[i], id[i], 0);
    fb_expect_nothing_sent(fb);
    for (int i = 0; i < 20; i++)
        assert_code(fb_send_puback(fb, id[i]), 0);
    for (int i = 0; i < 20; i++)
        expect_done(fb, (size_t)i, &m[i], 0);
}

static void test_zero_length_payloads_in_both_directions(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "empty", NULL, 0, 1);
    uint16_t id = publish_ok(fb, &m);
    const mqttc_publish *pub = fb_expect_sent_publish(fb, &m, id, 0);
    assert_int_equal(pub->payload_len, 0);
    assert_code(fb_send_puback(fb, id), 0);
    expect_done(fb, 0, &m, 0);

    assert_code(fb_send_publish(fb, "empty/in", "", 0, 1, 8, true, false), 0);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_MESSAGE, 0);
    assert_string_equal(ev->topic, "empty/in");
    assert_int_equal(ev->payload_len, 0);
    assert_int_equal(ev->total_len, 0);
    assert_true(ev->retain);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 8);
}

/* Ambiguity: a payload under copy_max but larger than tx_buf. Either it is
 * refused at once (TOO_LARGE) or written from the message; never stuck. */
static void test_payload_larger_than_tx_buffer_is_refused_or_sent_intact(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.tx_cap = 64;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[300];
    memset(payload, 0x5A, sizeof payload);
    mqttc_message m;
    fb_message_init(&m, "p", payload, sizeof payload, 1);
    int rc = publish(fb, &m);
    if (rc == MQTTC_ERR_TOO_LARGE) {
        fb_expect_nothing_sent(fb);
        return;
    }
    assert_in_range(rc, 1, 65535);
    fb_expect_sent_publish(fb, &m, (uint16_t)rc, 0);
    assert_code(fb_send_puback(fb, (uint16_t)rc), 0);
    expect_done(fb, 0, &m, 0);
}

static void test_flows_work_with_one_byte_writes(void **state)
{
    fake_broker *fb = *state;
    fb->tx_one_byte_at_a_time = true;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    mqttc_message m;
    fb_message_init(&m, "one/byte", payload_hello, 5, 2);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    assert_code(fb_send_pubrec(fb, id), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
    assert_code(fb_send_pubcomp(fb, id), 0);
    expect_done(fb, 0, &m, 0);
}

/* ---- inbound QoS 0/1/2 (MQTT-4.3) ------------------------------------------ */

static void test_incoming_qos0_message_is_delivered_zero_copy(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_publish(fb, "news/today", "sunny", 5, 0, 0, true, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_MESSAGE, 0);
    assert_string_equal(ev->topic, "news/today");
    assert_int_equal(ev->topic_len, 10);
    assert_int_equal(ev->payload_len, 5);
    assert_memory_equal(ev->payload, "sunny", 5);
    assert_int_equal(ev->offset, 0);
    assert_int_equal(ev->total_len, 5);
    assert_int_equal(ev->qos, 0);
    assert_true(ev->retain);
    assert_false(ev->dup);
    assert_int_equal(ev->packet_id, 0);
    assert_true(ev->payload_in_rx_buf);
    fb_expect_nothing_sent(fb); /* QoS 0: no answer */
}

static void test_incoming_qos1_message_is_pubacked(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_publish(fb, "a/b", "xyz", 3, 1, 321, false, false), 0);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_MESSAGE, 0);
    assert_string_equal(ev->topic, "a/b");
    assert_memory_equal(ev->payload, "xyz", 3);
    assert_int_equal(ev->qos, 1);
    assert_int_equal(ev->packet_id, 321);
    assert_false(ev->retain);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 321);
    fb_expect_nothing_sent(fb);
}

/* MQTT-4.3.2: QoS 1 is at least once; a re-sent PUBLISH is a new delivery. */
static void test_incoming_qos1_duplicate_is_delivered_and_acked_again(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_publish(fb, "a/b", "1", 1, 1, 5, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 5);
    assert_code(fb_send_publish(fb, "a/b", "1", 1, 1, 5, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 5);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 2);
    assert_true(fb_expect_event(fb, MQTTC_EV_MESSAGE, 1)->dup);
}

static void test_incoming_qos2_is_delivered_exactly_once(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_publish(fb, "x/y", "once", 4, 2, 77, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_MESSAGE, 0);
    assert_int_equal(ev->qos, 2);
    assert_int_equal(ev->packet_id, 77);
    assert_memory_equal(ev->payload, "once", 4);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 77);

    /* MQTT-4.3.3-2: until PUBREL, the same id is acknowledged, not delivered. */
    assert_code(fb_send_publish(fb, "x/y", "once", 4, 2, 77, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 77);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);

    assert_code(fb_send_pubrel(fb, 77), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 77);
    fb_expect_nothing_sent(fb);

    /* After PUBCOMP the id names a new message. */
    assert_code(fb_send_publish(fb, "x/y", "twice", 5, 2, 77, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 2);
    assert_memory_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 1)->payload, "twice", 5);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 77);
}

/* The receiver keys exactly-once on the packet id, not on the DUP flag. */
static void test_incoming_qos2_same_id_without_dup_is_still_not_redelivered(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_publish(fb, "x", "1", 1, 2, 9, false, false), 0);
    assert_code(fb_send_publish(fb, "x", "1", 1, 2, 9, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 9);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 9);
}

/* MQTT-4.3.3: a PUBREL is always answered with PUBCOMP (its state may have
 * been discarded already). */
static void test_pubrel_for_unknown_id_is_answered_with_pubcomp(void **state)
{
    fake_broker *fb = connect_engine(state);
    assert_code(fb_send_pubrel(fb, 4242), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 4242);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    assert_int_equal(fb->event_count, 1);
}

static void test_inbound_qos2_table_full_closes(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inbound_cap = 2;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    assert_code(fb_send_publish(fb, "t", "1", 1, 2, 1, false, false), 0);
    assert_code(fb_send_publish(fb, "t", "2", 1, 2, 2, false, false), 0);
    /* A duplicate of a known id still fits. */
    assert_code(fb_send_publish(fb, "t", "1", 1, 2, 1, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 1);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 2);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 1);

    int rc = fb_send_publish(fb, "t", "3", 1, 2, 3, false, false);
    expect_closed(fb, rc, MQTTC_ERR_INBOUND_WINDOW_FULL);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 2);
}

static uint8_t grown_bitmap[MQTTC_INBOUND_BITMAP_SIZE];
static int bitmap_requests;

static uint8_t *give_bitmap(void *user)
{
    (void)user;
    bitmap_requests++;
    memset(grown_bitmap, 0xAB, sizeof grown_bitmap); /* the engine must clear it */
    return grown_bitmap;
}

/* MQTT 3.1.1 has no receive maximum: with a bitmap supplied, any number of
 * inbound QoS 2 messages awaiting PUBREL is handled, still exactly once. */
static void test_inbound_qos2_table_full_switches_to_bitmap(void **state)
{
    fake_broker *fb = *state;
    uint16_t id;
    bitmap_requests = 0;
    fb->cfg.inbound_cap = 2;
    fb->cfg.inbound_bitmap = give_bitmap;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, true);
    for (id = 1; id <= 300; id++) {
        assert_code(fb_send_publish(fb, "t", "x", 1, 2, id, false, false), 0);
        fb_expect_sent_ack(fb, MQTTC_PUBREC, id);
    }
    assert_int_equal(bitmap_requests, 1);
    /* Duplicates of ids from the table (1, 2) and from the bitmap (300) are
     * acknowledged again but not delivered again. */
    assert_code(fb_send_publish(fb, "t", "x", 1, 2, 1, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 1);
    assert_code(fb_send_publish(fb, "t", "x", 1, 2, 2, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 2);
    assert_code(fb_send_publish(fb, "t", "x", 1, 2, 300, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 300);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 300);
    /* PUBREL frees an id: the same id is then a new message. */
    assert_code(fb_send_pubrel(fb, 150), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 150);
    assert_code(fb_send_publish(fb, "t", "y", 1, 2, 150, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 150);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 301);
    /* A CONNACK without session clears the bitmap too. */
    fb_lose_connection(fb);
    fb_connect(fb, false);
    assert_code(fb_send_publish(fb, "t", "z", 1, 2, 300, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 300);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 302);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void test_inbound_qos2_entry_is_freed_by_pubrel(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.inbound_cap = 1;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    for (uint16_t id = 1; id <= 5; id++) {
        assert_code(fb_send_publish(fb, "t", "x", 1, 2, id, false, false), 0);
        fb_expect_sent_ack(fb, MQTTC_PUBREC, id);
        assert_code(fb_send_pubrel(fb, id), 0);
        fb_expect_sent_ack(fb, MQTTC_PUBCOMP, id);
    }
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 5);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void run_inbound_flows(fake_broker *fb)
{
    fb_connect(fb, false);
    assert_code(fb_send_publish(fb, "in/0", "zero", 4, 0, 0, false, false), 0);
    assert_code(fb_send_publish(fb, "in/1", "one", 3, 1, 10, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 10);
    assert_code(fb_send_publish(fb, "in/2", "two", 3, 2, 11, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 11);
    assert_code(fb_send_pubrel(fb, 11), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 11);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 3);
    assert_string_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 0)->topic, "in/0");
    assert_string_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 1)->topic, "in/1");
    assert_string_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 2)->topic, "in/2");
    assert_memory_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 2)->payload, "two", 3);
}

static void test_incoming_packets_one_byte_at_a_time(void **state)
{
    fake_broker *fb = *state;
    fb->rx_mode = FB_RX_ONE_BYTE_AT_A_TIME;
    assert_code(fb_init(fb), 0);
    run_inbound_flows(fb);
}

static void test_incoming_packets_through_rx_space_and_commit(void **state)
{
    fake_broker *fb = *state;
    fb->rx_mode = FB_RX_ZERO_COPY;
    assert_code(fb_init(fb), 0);
    run_inbound_flows(fb);
}

/* ---- acknowledgements that match nothing ------------------------------- */

static void test_puback_for_unknown_id_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    expect_closed(fb, fb_send_puback(fb, 42), MQTTC_ERR_UNKNOWN_PACKET_ID);
}

static void test_pubrec_for_unknown_id_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    expect_closed(fb, fb_send_pubrec(fb, 42), MQTTC_ERR_UNKNOWN_PACKET_ID);
}

static void test_pubcomp_for_unknown_id_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    expect_closed(fb, fb_send_pubcomp(fb, 42), MQTTC_ERR_UNKNOWN_PACKET_ID);
}

static void test_puback_for_id_in_flight_elsewhere_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    uint16_t other = (uint16_t)(id == 65535 ? 1 : id + 1);
    expect_closed(fb, fb_send_puback(fb, other), MQTTC_ERR_UNKNOWN_PACKET_ID);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
}

static void test_puback_for_qos2_message_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 2);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    int rc = fb_send_puback(fb, id);
    expect_closed_either(fb, rc, MQTTC_ERR_UNKNOWN_PACKET_ID, MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
}

static void test_pubrec_for_qos1_message_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    int rc = fb_send_pubrec(fb, id);
    expect_closed_either(fb, rc, MQTTC_ERR_UNKNOWN_PACKET_ID, MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
}

static void test_pubcomp_before_pubrec_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 2);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    int rc = fb_send_pubcomp(fb, id);
    expect_closed_either(fb, rc, MQTTC_ERR_UNKNOWN_PACKET_ID, MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
}

static void test_suback_and_unsuback_for_unknown_ids_close(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const uint8_t codes[] = {1};
    expect_closed(fb, fb_send_suback(fb, 99, codes, 1), MQTTC_ERR_UNKNOWN_PACKET_ID);
    fb_connect(fb, false);
    expect_closed(fb, fb_send_unsuback(fb, 99), MQTTC_ERR_UNKNOWN_PACKET_ID);
}

static void test_suback_for_an_unsubscribe_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const mqttc_str filters[] = {{"a", 1}};
    mqttc_request r;
    unsubscribe_init(&r, filters, 1);
    uint16_t id = request_ok(fb, &r);
    fb_expect_sent(fb, MQTTC_UNSUBSCRIBE);
    static const uint8_t codes[] = {0};
    int rc = fb_send_suback(fb, id, codes, 1);
    expect_closed_either(fb, rc, MQTTC_ERR_UNKNOWN_PACKET_ID, MQTTC_ERR_UNEXPECTED_PACKET);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_SUBACK), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_UNSUBACK), 0);
}

/* After a protocol close nothing unfinished is lost: it is re-sent. */
static void test_messages_survive_a_protocol_close(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message a, b, c;
    fb_message_init(&a, "t/a", "a", 1, 1);
    fb_message_init(&b, "t/b", "b", 1, 2);
    fb_message_init(&c, "t/c", "c", 1, 1);
    uint16_t ida = publish_ok(fb, &a);
    uint16_t idb = publish_ok(fb, &b);
    fb_expect_sent_publish(fb, &a, ida, 0);
    fb_expect_sent_publish(fb, &b, idb, 0);
    assert_code(fb_send_pubrec(fb, idb), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idb);

    uint16_t bogus = 1;
    while (bogus == ida || bogus == idb)
        bogus++;
    expect_closed(fb, fb_send_puback(fb, bogus), MQTTC_ERR_UNKNOWN_PACKET_ID);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);
    uint16_t idc = publish_ok(fb, &c);

    fb_connect(fb, true);
    fb_expect_sent_publish(fb, &a, ida, 1);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idb);
    fb_expect_sent_publish(fb, &c, idc, 0);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_puback(fb, ida), 0);
    assert_code(fb_send_pubcomp(fb, idb), 0);
    assert_code(fb_send_puback(fb, idc), 0);
    assert_int_equal(done_count(fb, &a), 1);
    assert_int_equal(done_count(fb, &b), 1);
    assert_int_equal(done_count(fb, &c), 1);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE (MQTT-3.8 .. 3.11) --------------------------- */

static void test_subscribe_several_filters_reports_each_code(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const mqttc_subscription subs[] = {
        {{"a/b", 3}, 0}, {{"c/+/d", 5}, 1}, {{"e/#", 3}, 2}, {{"#", 1}, 1}};
    mqttc_request r;
    subscribe_init(&r, subs, 4);
    r.user = &r;
    uint16_t id = request_ok(fb, &r);

    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_SUBSCRIBE);
    assert_int_equal(p->flags, 2); /* MQTT-3.8.1-1: 0x82 */
    assert_int_equal(p->u.subscribe.packet_id, id);
    assert_int_equal(p->u.subscribe.count, 4);
    size_t pos = 0;
    mqttc_str filter;
    uint8_t qos;
    for (size_t i = 0; i < 4; i++) {
        assert_true(mqttc_entries_next(p, &pos, &filter, &qos));
        assert_int_equal(filter.len, subs[i].filter.len);
        assert_memory_equal(filter.data, subs[i].filter.data, filter.len);
        assert_int_equal(qos, subs[i].qos);
    }
    assert_false(mqttc_entries_next(p, &pos, &filter, &qos));

    static const uint8_t codes[] = {0, 1, 0x80, 0};
    assert_code(fb_send_suback(fb, id, codes, 4), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_SUBACK), 1);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_SUBACK, 0);
    assert_ptr_equal(ev->req, &r);
    assert_int_equal(ev->count, 4);
    assert_memory_equal(ev->codes, codes, 4);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void test_suback_with_wrong_number_of_codes_closes(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const mqttc_subscription subs[] = {{{"a", 1}, 0}, {{"b", 1}, 1}, {{"c", 1}, 2}};
    static const uint8_t codes[] = {0, 1, 2, 0};
    mqttc_request r;
    subscribe_init(&r, subs, 3);
    uint16_t id = request_ok(fb, &r);
    fb_expect_sent(fb, MQTTC_SUBSCRIBE);
    expect_closed(fb, fb_send_suback(fb, id, codes, 2), MQTTC_ERR_SUBACK_MISMATCH);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_SUBACK), 0);

    fb_connect(fb, false);
    mqttc_request r2;
    subscribe_init(&r2, subs, 3);
    id = request_ok(fb, &r2);
    fb_expect_sent(fb, MQTTC_SUBSCRIBE);
    expect_closed(fb, fb_send_suback(fb, id, codes, 4), MQTTC_ERR_SUBACK_MISMATCH);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_SUBACK), 0);
}

static void test_unsubscribe_is_answered_by_unsuback(void **state)
{
    fake_broker *fb = connect_engine(state);
    static const mqttc_str filters[] = {{"a/+", 3}, {"b/#", 3}};
    mqttc_request r;
    unsubscribe_init(&r, filters, 2);
    uint16_t id = request_ok(fb, &r);
    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_UNSUBSCRIBE);
    assert_int_equal(p->flags, 2); /* MQTT-3.10.1-1: 0xA2 */
    assert_int_equal(p->u.unsubscribe.packet_id, id);
    assert_int_equal(p->u.unsubscribe.count, 2);
    size_t pos = 0;
    mqttc_str filter;
    for (size_t i = 0; i < 2; i++) {
        assert_true(mqttc_entries_next(p, &pos, &filter, NULL));
        assert_int_equal(filter.len, 3);
        assert_memory_equal(filter.data, filters[i].data, 3);
    }
    assert_int_equal(fb_count_events(fb, MQTTC_EV_UNSUBACK), 0);
    assert_code(fb_send_unsuback(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_UNSUBACK), 1);
    assert_ptr_equal(fb_expect_event(fb, MQTTC_EV_UNSUBACK, 0)->req, &r);
}

static void test_request_validates_filters_synchronously(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_request r;
    static char big_filter[2000];
    memset(big_filter, 'f', sizeof big_filter - 1);
    mqttc_subscription subs[2] = {{{"ok", 2}, 1}, {{"ok", 2}, 1}};
    mqttc_str filters[1];

    assert_code(mqttc_engine_request(NULL, &r), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_request(&fb->engine, NULL), MQTTC_ERR_INVALID_ARG);

    subs[1].filter = str("a/#/b"); /* MQTT-4.7.1-2: '#' must be last */
    subscribe_init(&r, subs, 2);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_FILTER);
    subs[1].filter = str("a+"); /* MQTT-4.7.1-3: '+' fills a level */
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_FILTER);
    subs[1].filter = str(""); /* MQTT-4.7.3-1: at least one character */
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_FILTER);
    subs[1].filter.data = "\xC0\x80";
    subs[1].filter.len = 2;
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_UTF8);
    subs[1].filter = str("ok");
    subs[1].qos = 3;
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_QOS);
    subs[1].qos = 0;
    subs[1].filter = str(big_filter);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_TOO_LARGE);
    subscribe_init(&r, subs, 0); /* MQTT-3.8.3-3: at least one filter */
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_INVALID_ARG);
    subscribe_init(&r, NULL, 1);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_INVALID_ARG);

    filters[0] = str("#/a");
    unsubscribe_init(&r, filters, 1);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_BAD_FILTER);
    unsubscribe_init(&r, filters, 0);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_INVALID_ARG);
    unsubscribe_init(&r, NULL, 1);
    assert_code(mqttc_engine_request(&fb->engine, &r), MQTTC_ERR_INVALID_ARG);

    fb_expect_nothing_sent(fb);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);

    subs[1].filter = str("fine/+");
    subscribe_init(&r, subs, 2);
    uint16_t id = request_ok(fb, &r);
    assert_int_equal(fb_expect_sent(fb, MQTTC_SUBSCRIBE)->u.subscribe.packet_id, id);
}

static void test_requests_made_offline_are_sent_after_connack(void **state)
{
    fake_broker *fb = init_engine(state);
    static const mqttc_subscription subs[] = {{{"s/1", 3}, 1}};
    static const mqttc_str filters[] = {{"u/1", 3}};
    mqttc_request sub, unsub;
    subscribe_init(&sub, subs, 1);
    unsubscribe_init(&unsub, filters, 1);
    uint16_t ids = request_ok(fb, &sub);
    uint16_t idu = request_ok(fb, &unsub);
    assert_int_not_equal(ids, idu);
    assert_false(mqttc_engine_want_write(&fb->engine));

    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_connack(fb, false, 0), 0);
    assert_int_equal(fb_expect_sent(fb, MQTTC_SUBSCRIBE)->u.subscribe.packet_id, ids);
    assert_int_equal(fb_expect_sent(fb, MQTTC_UNSUBSCRIBE)->u.unsubscribe.packet_id, idu);
    static const uint8_t codes[] = {1};
    assert_code(fb_send_suback(fb, ids, codes, 1), 0);
    assert_code(fb_send_unsuback(fb, idu), 0);
    assert_ptr_equal(fb_expect_event(fb, MQTTC_EV_SUBACK, 0)->req, &sub);
    assert_ptr_equal(fb_expect_event(fb, MQTTC_EV_UNSUBACK, 0)->req, &unsub);
}

/* ---- keepalive (MQTT-3.1.2.10, 3.12, 3.13) ----------------------------------- */

static fake_broker *connect_with_keepalive(void **state, uint16_t seconds, uint32_t ping_timeout)
{
    fake_broker *fb = *state;
    fb->connect.keepalive = seconds;
    fb->cfg.ping_timeout_ms = ping_timeout;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    return fb;
}

static void expect_pingreq(fake_broker *fb)
{
    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_PINGREQ);
    assert_int_equal(p->flags, 0);
    assert_int_equal(p->remaining_length, 0); /* C0 00 */
}

static void test_keepalive_sends_pingreq_when_idle(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    assert_int_equal(fb_next_timeout(fb), 10000);
    fb_advance_clock(fb, 4000);
    assert_int_equal(fb_next_timeout(fb), 6000);
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    fb_advance_clock(fb, 5999);
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_next_timeout(fb), 1);
    fb_advance_clock(fb, 1);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    fb_expect_nothing_sent(fb);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void test_pingresp_emits_pong_and_rearms_keepalive(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    fb_advance_clock(fb, 10000);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    fb_advance_clock(fb, 500);
    assert_code(fb_send_pingresp(fb), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PONG), 1);
    /* The next PINGREQ is due a keepalive after the last one was sent. */
    assert_int_equal(fb_next_timeout(fb), 9500);
    fb_advance_clock(fb, 9499);
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    fb_advance_clock(fb, 1);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    assert_code(fb_send_pingresp(fb), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PONG), 2);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void test_missing_pingresp_closes_with_keepalive_timeout(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 3000);
    fb_advance_clock(fb, 10000);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    assert_int_equal(fb_next_timeout(fb), 3000);
    fb_advance_clock(fb, 2999);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_KEEPALIVE_TIMEOUT);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PONG), 0);
}

static void test_ping_timeout_defaults_to_keepalive_at_most_30_seconds(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    fb_advance_clock(fb, 10000);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    fb_advance_clock(fb, 9999);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_KEEPALIVE_TIMEOUT);

    /* keepalive 60 s: the wait for PINGRESP is capped at 30 s. */
    fb->connect.keepalive = 60;
    fb_connect(fb, false);
    fb_advance_clock(fb, 60000);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    assert_int_equal(fb_next_timeout(fb), 30000);
    fb_advance_clock(fb, 29999);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_KEEPALIVE_TIMEOUT);
}

/* A QoS 1 exchange at 6 s (client sends, broker answers) moves the next
 * PINGREQ to 16 s. (The engine may also ping when it hears nothing for a
 * keepalive, MQTT-3.1.2-23 allows a PINGREQ at any time, so the broker
 * answers here.) */
static void test_sending_a_message_postpones_the_ping(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    fb_advance_clock(fb, 6000);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    assert_code(fb_send_puback(fb, id), 0);
    assert_int_equal(fb_next_timeout(fb), 10000);
    fb_advance_clock(fb, 4000); /* 10 s after CONNECT */
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    fb_advance_clock(fb, 5999);
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    fb_advance_clock(fb, 1);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
}

/* MQTT-3.1.2-23: the client must send something within each keepalive;
 * what it receives does not count. */
static void test_receiving_alone_does_not_postpone_the_ping(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    for (int i = 0; i < 3; i++) {
        fb_advance_clock(fb, 3000);
        assert_code(fb_send_publish(fb, "in", "x", 1, 0, 0, false, false), 0);
        assert_code(fb_tick(fb), 0);
        fb_expect_nothing_sent(fb);
    }
    assert_int_equal(fb_next_timeout(fb), 1000);
    fb_advance_clock(fb, 1000); /* 10 s after CONNECT */
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
}

static void test_keepalive_works_across_clock_wrap(void **state)
{
    fake_broker *fb = *state;
    fb->now = 0xFFFFF000u; /* 4096 ms before the counter wraps */
    fb->connect.keepalive = 10;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    assert_int_equal(fb_next_timeout(fb), 10000);
    fb_advance_clock(fb, 9999); /* wrapped: now 0x0000170F */
    assert_true(fb->now < 0x2000u);
    assert_code(fb_tick(fb), 0);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_next_timeout(fb), 1);
    fb_advance_clock(fb, 1);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    assert_code(fb_send_pingresp(fb), 0);
    assert_int_equal(fb_next_timeout(fb), 10000);
}

static void test_ping_timeout_works_across_clock_wrap(void **state)
{
    fake_broker *fb = *state;
    fb->now = 0xFFFFD000u; /* PINGREQ at 0xFFFFF710, timeout 0x000002C8 */
    fb->connect.keepalive = 10;
    fb->cfg.ping_timeout_ms = 3000;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    fb_advance_clock(fb, 10000);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    fb_advance_clock(fb, 2999);
    assert_int_equal(fb->now, 0x000002C7u);
    assert_code(fb_tick(fb), 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
    assert_int_equal(fb_next_timeout(fb), 1);
    fb_advance_clock(fb, 1);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_KEEPALIVE_TIMEOUT);
}

static void test_big_clock_jump_sends_a_single_pingreq(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 5000);
    fb_advance_clock(fb, 25000);
    assert_code(fb_tick(fb), 0);
    assert_code(fb_tick(fb), 0);
    expect_pingreq(fb);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_next_timeout(fb), 5000);
    fb_advance_clock(fb, 5000);
    expect_closed(fb, fb_tick(fb), MQTTC_ERR_KEEPALIVE_TIMEOUT);
}

static void test_keepalive_zero_never_pings(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 0, 0);
    assert_int_equal(fb_next_timeout(fb), MQTTC_NO_TIMEOUT);
    for (int i = 0; i < 4; i++) {
        fb_advance_clock(fb, 0x40000000u);
        assert_code(fb_tick(fb), 0);
    }
    fb_expect_nothing_sent(fb);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}

static void test_next_timeout_is_none_when_offline(void **state)
{
    fake_broker *fb = connect_with_keepalive(state, 10, 0);
    fb_lose_connection(fb);
    assert_int_equal(fb_next_timeout(fb), MQTTC_NO_TIMEOUT);
    fb_advance_clock(fb, 100000);
    assert_code(fb_tick(fb), 0);
    assert_false(mqttc_engine_want_write(&fb->engine));
}

/* ---- connection loss and re-sending (MQTT-4.4) ------------------------------ */

static void test_connection_lost_emits_closed_once_with_the_given_reason(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(fb->event_count, 0); /* already offline */

    assert_code(fb_start(fb), 0);
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_code(last_closed(fb)->reason, MQTTC_ERR_CONNECTION_LOST);

    fb_connect(fb, false);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    publish_ok(fb, &m);
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_KEEPALIVE_TIMEOUT);
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 2);
    assert_code(last_closed(fb)->reason, MQTTC_ERR_KEEPALIVE_TIMEOUT);
    /* unwritten output is dropped, the message kept */
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb_pending_output(fb), 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
}

/* MQTT-4.4.0-1 and 4.6.0-1..3: unacknowledged PUBLISH and PUBREL packets go
 * again, with their original ids, in their original order; then new ones. */
static void run_reconnect_resends_in_original_order(fake_broker *fb)
{
    mqttc_message a, b, c, d, e, f;
    fb_message_init(&a, "r/a", "a", 1, 1);
    fb_message_init(&b, "r/b", "b", 1, 2);
    fb_message_init(&c, "r/c", "c", 1, 2);
    fb_message_init(&d, "r/d", "d", 1, 1);
    fb_message_init(&e, "r/e", "e", 1, 1);
    fb_message_init(&f, "r/f", "f", 1, 2);
    uint16_t ida = publish_ok(fb, &a);
    uint16_t idb = publish_ok(fb, &b);
    uint16_t idc = publish_ok(fb, &c);
    uint16_t idd = publish_ok(fb, &d);
    fb_expect_sent_publish(fb, &a, ida, 0);
    fb_expect_sent_publish(fb, &b, idb, 0);
    fb_expect_sent_publish(fb, &c, idc, 0);
    fb_expect_sent_publish(fb, &d, idd, 0);
    assert_code(fb_send_pubrec(fb, idc), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idc);

    fb_lose_connection(fb);
    assert_code(last_closed(fb)->reason, MQTTC_ERR_CONNECTION_LOST);
    uint16_t ide = publish_ok(fb, &e);
    uint16_t idf = publish_ok(fb, &f);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 6);

    fb_connect(fb, true);
    fb_expect_sent_publish(fb, &a, ida, 1);
    fb_expect_sent_publish(fb, &b, idb, 1);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idc); /* not the PUBLISH */
    fb_expect_sent_publish(fb, &d, idd, 1);
    fb_expect_sent_publish(fb, &e, ide, 0);
    fb_expect_sent_publish(fb, &f, idf, 0);
    fb_expect_nothing_sent(fb);

    assert_code(fb_send_puback(fb, ida), 0);
    assert_code(fb_send_pubrec(fb, idb), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idb);
    assert_code(fb_send_pubcomp(fb, idb), 0);
    assert_code(fb_send_pubcomp(fb, idc), 0);
    assert_code(fb_send_puback(fb, idd), 0);
    assert_code(fb_send_puback(fb, ide), 0);
    assert_code(fb_send_pubrec(fb, idf), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, idf);
    assert_code(fb_send_pubcomp(fb, idf), 0);
    fb_expect_nothing_sent(fb);
    const mqttc_message *all[6] = {&a, &b, &c, &d, &e, &f};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(done_count(fb, all[i]), 1);
    }
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 6);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
}

static void test_reconnect_resends_unacknowledged_in_original_order(void **state)
{
    run_reconnect_resends_in_original_order(connect_persistent(state));
}

static void test_reconnect_resends_in_order_with_one_byte_io(void **state)
{
    fake_broker *fb = *state;
    fb->rx_mode = FB_RX_ONE_BYTE_AT_A_TIME;
    fb->tx_one_byte_at_a_time = true;
    run_reconnect_resends_in_original_order(connect_persistent(state));
}

static void test_large_payload_cut_mid_write_is_resent_whole(void **state)
{
    fake_broker *fb = connect_persistent(state);
    static uint8_t payload[3000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7u + 1u);
    mqttc_message m;
    fb_message_init(&m, "big/out", payload, sizeof payload, 1);
    uint16_t id = publish_ok(fb, &m);
    assert_code(fb_drain_output_bytes(fb, 1500), 0);
    assert_true(mqttc_engine_want_write(&fb->engine));
    fb_lose_connection(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    fb_connect(fb, true);
    fb_expect_sent_publish(fb, &m, id, FB_ANY_DUP);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_puback(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
}

static void test_large_qos0_payload_cut_mid_write_is_done_with_connection_lost(void **state)
{
    fake_broker *fb = connect_persistent(state);
    static uint8_t payload[3000];
    memset(payload, 0x33, sizeof payload);
    mqttc_message m;
    fb_message_init(&m, "big/q0", payload, sizeof payload, 0);
    publish_ok(fb, &m);
    assert_code(fb_drain_output_bytes(fb, 100), 0);
    fb_lose_connection(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, MQTTC_ERR_CONNECTION_LOST);
    fb_connect(fb, true);
    fb_expect_nothing_sent(fb);
}

/* Where the connection breaks in an outbound flow. */
typedef enum lost_at {
    LOST_BEFORE_PUBLISH_WRITTEN,
    LOST_MID_PUBLISH_WRITE,
    LOST_AFTER_PUBLISH_WRITTEN,
    LOST_AFTER_PUBREC_BEFORE_PUBREL_WRITTEN,
    LOST_AFTER_PUBREL_WRITTEN
} lost_at;

static void run_outbound_flow_lost_at(void **state, uint8_t qos, lost_at when)
{
    fake_broker *fb = connect_persistent(state);
    static const uint8_t payload[32] = "a payload of thirty-one bytes..";
    mqttc_message m;
    fb_message_init(&m, "flow/topic", payload, sizeof payload, qos);
    uint16_t id = publish_ok(fb, &m);
    int dup_expected = 1;

    switch (when) {
    case LOST_BEFORE_PUBLISH_WRITTEN:
        assert_true(mqttc_engine_want_write(&fb->engine));
        dup_expected = FB_ANY_DUP; /* never on the wire: DUP 0 or 1 both fine */
        break;
    case LOST_MID_PUBLISH_WRITE: {
        size_t pending = fb_pending_output(fb);
        assert_true(pending > 20);
        assert_code(fb_drain_output_bytes(fb, pending / 2), 0);
        assert_true(mqttc_engine_want_write(&fb->engine));
        dup_expected = FB_ANY_DUP;
        break;
    }
    case LOST_AFTER_PUBLISH_WRITTEN:
        fb_expect_sent_publish(fb, &m, id, 0);
        break;
    case LOST_AFTER_PUBREC_BEFORE_PUBREL_WRITTEN:
        fb_expect_sent_publish(fb, &m, id, 0);
        assert_code(fb_send_pubrec(fb, id), 0);
        assert_true(mqttc_engine_want_write(&fb->engine));
        break;
    case LOST_AFTER_PUBREL_WRITTEN:
        fb_expect_sent_publish(fb, &m, id, 0);
        assert_code(fb_send_pubrec(fb, id), 0);
        fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
        break;
    }
    fb_lose_connection(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);

    fb_connect(fb, true);
    if (when == LOST_AFTER_PUBREC_BEFORE_PUBREL_WRITTEN || when == LOST_AFTER_PUBREL_WRITTEN) {
        fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
    } else {
        fb_expect_sent_publish(fb, &m, id, dup_expected);
        if (qos == 2) {
            assert_code(fb_send_pubrec(fb, id), 0);
            fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
        }
    }
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    assert_code(qos == 1 ? fb_send_puback(fb, id) : fb_send_pubcomp(fb, id), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    fb_expect_nothing_sent(fb);
}

static void test_qos1_lost_before_publish_written_is_sent_after_reconnect(void **state)
{
    run_outbound_flow_lost_at(state, 1, LOST_BEFORE_PUBLISH_WRITTEN);
}

static void test_qos1_lost_mid_publish_write_is_resent_whole(void **state)
{
    run_outbound_flow_lost_at(state, 1, LOST_MID_PUBLISH_WRITE);
}

static void test_qos1_lost_before_puback_is_resent_with_dup(void **state)
{
    run_outbound_flow_lost_at(state, 1, LOST_AFTER_PUBLISH_WRITTEN);
}

static void test_qos2_lost_before_publish_written_is_sent_after_reconnect(void **state)
{
    run_outbound_flow_lost_at(state, 2, LOST_BEFORE_PUBLISH_WRITTEN);
}

static void test_qos2_lost_mid_publish_write_is_resent_whole(void **state)
{
    run_outbound_flow_lost_at(state, 2, LOST_MID_PUBLISH_WRITE);
}

static void test_qos2_lost_before_pubrec_is_resent_with_dup(void **state)
{
    run_outbound_flow_lost_at(state, 2, LOST_AFTER_PUBLISH_WRITTEN);
}

static void test_qos2_lost_after_pubrec_resends_pubrel_not_publish(void **state)
{
    run_outbound_flow_lost_at(state, 2, LOST_AFTER_PUBREC_BEFORE_PUBREL_WRITTEN);
}

static void test_qos2_lost_before_pubcomp_resends_pubrel(void **state)
{
    run_outbound_flow_lost_at(state, 2, LOST_AFTER_PUBREL_WRITTEN);
}

static void test_qos0_cut_mid_write_is_done_with_connection_lost(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message m;
    fb_message_init(&m, "q0", "twenty bytes payload", 20, 0);
    publish_ok(fb, &m);
    assert_code(fb_drain_output_bytes(fb, 5), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    fb_lose_connection(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    fb_connect(fb, true);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
}

static void test_qos0_written_before_loss_is_not_resent(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message m;
    fb_message_init(&m, "q0", "x", 1, 0);
    publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, 0, 0);
    expect_done(fb, 0, &m, 0);
    fb_lose_connection(fb);
    fb_connect(fb, true);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
}

/* Ambiguity: the header reports CONNECTION_LOST only for a QoS 0 message cut
 * mid-write; one never started stays queued like any unfinished message. */
static void test_qos0_never_written_is_sent_after_reconnect(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message m;
    fb_message_init(&m, "q0", "x", 1, 0);
    publish_ok(fb, &m);
    fb_lose_connection(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    fb_connect(fb, true);
    fb_expect_sent_publish(fb, &m, 0, 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 1);
    expect_done(fb, 0, &m, 0);
}

static void test_inbound_qos2_is_not_redelivered_after_reconnect(void **state)
{
    fake_broker *fb = connect_persistent(state);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 300, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 300);
    fb_lose_connection(fb);

    fb_connect(fb, true);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 300, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 300);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    assert_code(fb_send_pubrel(fb, 300), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 300);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
}

static void test_inbound_qos2_lost_before_pubrec_written_is_not_redelivered(void **state)
{
    fake_broker *fb = connect_persistent(state);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 301, false, false), 0);
    assert_true(mqttc_engine_want_write(&fb->engine)); /* PUBREC not written */
    fb_lose_connection(fb);
    fb_connect(fb, true);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 301, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 301);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    assert_code(fb_send_pubrel(fb, 301), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 301);
}

static void test_connack_without_session_present_clears_inbound_state(void **state)
{
    fake_broker *fb = connect_persistent(state);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 302, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 302);
    fb_lose_connection(fb);
    fb_connect(fb, false); /* the broker lost the session */
    assert_code(fb_send_publish(fb, "in", "y", 1, 2, 302, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 2);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 302);
}

static void test_clear_inbound_forgets_ids_awaiting_pubrel(void **state)
{
    fake_broker *fb = connect_persistent(state);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 303, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 303);
    fb_lose_connection(fb);
    mqttc_engine_clear_inbound(&fb->engine);
    fb_connect(fb, true);
    assert_code(fb_send_publish(fb, "in", "x", 1, 2, 303, false, true), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 2);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 303);
}

/* ---- DISCONNECT (MQTT-3.14) ---------------------------------------------- */

static void test_disconnect_writes_disconnect_then_closes_with_reason_0(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);

    mqttc_engine_disconnect(&fb->engine);
    assert_int_equal(state_of(fb), MQTTC_STATE_CLOSING);
    assert_true(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 0);
    assert_code(fb_drain_output_bytes(fb, 1), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 0); /* half written */
    assert_code(fb_drain_output_bytes(fb, 1), 0);
    assert_int_equal(fb->capture_len, 2);
    assert_int_equal(fb->capture[0], 0xE0);
    assert_int_equal(fb->capture[1], 0x00);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    assert_code(last_closed(fb)->reason, 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_false(mqttc_engine_want_write(&fb->engine));

    /* the unacknowledged message is kept and re-sent */
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBLISH_DONE), 0);
    fb_connect(fb, true);
    fb_expect_sent_publish(fb, &m, id, 1);
    assert_code(fb_send_puback(fb, id), 0);
    expect_done(fb, 0, &m, 0);
}

static void test_disconnect_comes_after_output_already_queued(void **state)
{
    fake_broker *fb = connect_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 0);
    publish_ok(fb, &m);
    assert_true(mqttc_engine_want_write(&fb->engine));
    mqttc_engine_disconnect(&fb->engine);
    fb_expect_sent_publish(fb, &m, 0, 0);
    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_DISCONNECT);
    assert_int_equal(p->flags, 0);
    assert_int_equal(p->remaining_length, 0);
    fb_expect_nothing_sent(fb);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_code(last_closed(fb)->reason, 0);
    expect_done(fb, 0, &m, 0);
}

static void test_disconnect_while_offline_has_no_effect(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_engine_disconnect(&fb->engine);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_false(mqttc_engine_want_write(&fb->engine));
    assert_int_equal(fb->event_count, 0);
    fb_connect(fb, false);
    fb_lose_connection(fb);
    size_t events = fb->event_count;
    mqttc_engine_disconnect(&fb->engine);
    assert_int_equal(fb->event_count, events);
    assert_false(mqttc_engine_want_write(&fb->engine));
}

/* ---- large incoming messages ------------------------------------------- */

static void fill_pattern(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 31u + seed + (i >> 7));
}

/* The MESSAGE events form pieces of one message with contiguous offsets. */
static void expect_pieces(const fake_broker *fb, size_t first_event, const char *topic,
                          uint16_t id, const uint8_t *payload, size_t total)
{
    size_t next = 0, pieces = 0;
    for (size_t i = first_event; i < fb->event_count; i++) {
        const fb_event *ev = &fb->events[i];
        if (ev->type != MQTTC_EV_MESSAGE)
            continue;
        pieces++;
        assert_string_equal(ev->topic, topic);
        assert_int_equal(ev->packet_id, id);
        assert_int_equal(ev->total_len, total);
        if (ev->offset != next)
            fail_msg("piece %zu starts at %zu, expected %zu", pieces, ev->offset, next);
        next += ev->payload_len;
        assert_true(next <= total);
    }
    assert_int_equal(fb->events_lost, 0);
    assert_int_equal(next, total);
    assert_true(pieces >= 2);
    assert_true(fb->assembled_end >= total);
    assert_memory_equal(fb->assembled, payload, total);
}

static void test_large_incoming_publish_is_streamed_in_pieces(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.rx_cap = 256;
    fb->cfg.stream_payloads = true;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[1000];
    fill_pattern(payload, sizeof payload, 1);
    assert_code(fb_send_publish(fb, "big/one", payload, sizeof payload, 1, 42, false, false), 0);
    expect_pieces(fb, 0, "big/one", 42, payload, sizeof payload);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 42);
    fb_expect_nothing_sent(fb);

    /* The engine is ready for the next packet. */
    assert_code(fb_send_publish(fb, "small", "s", 1, 0, 0, false, false), 0);
    assert_string_equal(fb_last_event(fb)->topic, "small");
    assert_int_equal(fb_last_event(fb)->total_len, 1);
}

static void test_large_incoming_publish_streams_one_byte_at_a_time(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.rx_cap = 256;
    fb->cfg.stream_payloads = true;
    fb->rx_mode = FB_RX_ONE_BYTE_AT_A_TIME;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[700];
    fill_pattern(payload, sizeof payload, 2);
    assert_code(fb_send_publish(fb, "big/two", payload, sizeof payload, 0, 0, false, false), 0);
    expect_pieces(fb, 0, "big/two", 0, payload, sizeof payload);
}

static void test_streamed_qos2_duplicate_is_not_redelivered(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.rx_cap = 256;
    fb->cfg.stream_payloads = true;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[600];
    fill_pattern(payload, sizeof payload, 3);
    assert_code(fb_send_publish(fb, "big/q2", payload, sizeof payload, 2, 9, false, false), 0);
    expect_pieces(fb, 0, "big/q2", 9, payload, sizeof payload);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 9);
    size_t messages = fb_count_events(fb, MQTTC_EV_MESSAGE);

    assert_code(fb_send_publish(fb, "big/q2", payload, sizeof payload, 2, 9, false, true), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), messages);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 9);
    assert_code(fb_send_pubrel(fb, 9), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 9);
    fb_expect_nothing_sent(fb);
}

/* engine.h: if the connection drops mid-message, the re-sent message starts
 * again at offset 0. */
static void test_streamed_message_cut_by_connection_loss_restarts_at_offset_0(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.rx_cap = 256;
    fb->cfg.stream_payloads = true;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[1000];
    static uint8_t wire[1100];
    fill_pattern(payload, sizeof payload, 6);
    size_t n = fb_encode_publish(wire, sizeof wire, "cut", payload, sizeof payload, 1, 5, false,
                                 false);
    assert_code(fb_inject(fb, wire, 600), 0);
    size_t got = 0;
    for (size_t i = 0; i < fb->event_count; i++) {
        if (fb->events[i].type != MQTTC_EV_MESSAGE)
            continue;
        assert_int_equal(fb->events[i].offset, got);
        got += fb->events[i].payload_len;
    }
    assert_true(got > 0 && got < sizeof payload);
    fb_expect_nothing_sent(fb); /* no PUBACK for half a message */
    fb_lose_connection(fb);

    fb_connect(fb, true);
    fb_clear_events(fb);
    n = fb_encode_publish(wire, sizeof wire, "cut", payload, sizeof payload, 1, 5, false, true);
    assert_code(fb_inject(fb, wire, n), 0);
    expect_pieces(fb, 0, "cut", 5, payload, sizeof payload);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 5);
    fb_expect_nothing_sent(fb);
}

static void test_large_incoming_publish_without_streaming_is_too_large(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.rx_cap = 256;
    fb->cfg.stream_payloads = false;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[1000];
    fill_pattern(payload, sizeof payload, 4);
    int rc = fb_send_publish(fb, "big", payload, sizeof payload, 1, 1, false, false);
    expect_closed(fb, rc, MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
}

static void test_max_packet_is_enforced(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.max_packet = 100;
    fb->cfg.stream_payloads = true;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t payload[94];
    fill_pattern(payload, sizeof payload, 5);
    /* 2 (fixed header) + 2 + 1 (topic "t") + 2 (id) + 93 = 100 bytes: allowed. */
    assert_code(fb_send_publish(fb, "t", payload, 93, 1, 1, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    assert_int_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, 0)->payload_len, 93);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 1);
    /* 101 bytes: refused, even with streaming. */
    int rc = fb_send_publish(fb, "t", payload, 94, 1, 2, false, false);
    expect_closed(fb, rc, MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
}

/* ---- back-pressure ------------------------------------------------------ */

enum { BP_COUNT = 100 };

static size_t build_qos1_burst(uint8_t *wire, size_t cap)
{
    size_t n = 0;
    for (uint16_t id = 1; id <= BP_COUNT; id++) {
        uint8_t payload[3] = {(uint8_t)id, (uint8_t)(id >> 8), 0xAB};
        n += fb_encode_publish(wire + n, cap - n, "t", payload, 3, 1, id, false, false);
    }
    return n;
}

static void expect_burst_answered_in_order(fake_broker *fb)
{
    for (uint16_t id = 1; id <= BP_COUNT; id++)
        fb_expect_sent_ack(fb, MQTTC_PUBACK, id);
    fb_expect_nothing_sent(fb);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), BP_COUNT);
    for (size_t i = 0; i < BP_COUNT; i++)
        assert_int_equal(fb_expect_event(fb, MQTTC_EV_MESSAGE, i)->packet_id, i + 1);
}

static void test_backpressure_recv_takes_fewer_bytes_until_output_drains(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.tx_cap = 64;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t wire[BP_COUNT * 10];
    size_t len = build_qos1_burst(wire, sizeof wire);
    assert_int_equal(len, sizeof wire);

    int rc = mqttc_engine_recv(&fb->engine, wire, len, fb->now);
    assert_true(rc >= 0);
    assert_true((size_t)rc < len);
    assert_true(mqttc_engine_want_write(&fb->engine));
    size_t space = 1;
    (void)mqttc_engine_rx_space(&fb->engine, &space);
    assert_int_equal(space, 0);

    size_t off = (size_t)rc;
    unsigned rounds = 0;
    while (off < len) {
        if (++rounds > 10000)
            fail_msg("back-pressure: no progress at offset %zu", off);
        assert_code(fb_drain_output(fb), 0);
        rc = mqttc_engine_recv(&fb->engine, wire + off, len - off, fb->now);
        assert_true(rc >= 0);
        off += (size_t)rc;
    }
    expect_burst_answered_in_order(fb);
}

static void test_backpressure_with_rx_space_and_commit(void **state)
{
    fake_broker *fb = *state;
    fb->cfg.tx_cap = 64;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    static uint8_t wire[BP_COUNT * 10];
    size_t len = build_qos1_burst(wire, sizeof wire);
    size_t off = 0;
    unsigned blocked = 0;
    for (unsigned rounds = 0; off < len; rounds++) {
        if (rounds > 20000)
            fail_msg("rx_space: no progress at offset %zu", off);
        size_t space = 0;
        uint8_t *p = mqttc_engine_rx_space(&fb->engine, &space);
        if (space == 0) {
            blocked++;
            assert_true(mqttc_engine_want_write(&fb->engine));
            assert_code(fb_drain_output(fb), 0);
            continue;
        }
        assert_non_null(p);
        size_t n = len - off < space ? len - off : space;
        memcpy(p, wire + off, n);
        assert_code(mqttc_engine_rx_commit(&fb->engine, n, fb->now), 0);
        off += n;
    }
    assert_true(blocked > 0);
    expect_burst_answered_in_order(fb);
}

/* ---- re-entrancy ---------------------------------------------------------- */

typedef struct hook_ctx {
    mqttc_message msg;
    int publish_rc;
    int calls;
    mqttc_event_type trigger;
    mqttc_request req;
} hook_ctx;

static void hook_publish_on_message(fake_broker *fb, const mqttc_event *ev)
{
    hook_ctx *ctx = fb->hook_ctx;
    if (ev->type != MQTTC_EV_MESSAGE || ctx->calls++ > 0)
        return;
    fb_message_init(&ctx->msg, "echo", "pong", 4, 1);
    ctx->publish_rc = mqttc_engine_publish(&fb->engine, &ctx->msg);
}

static void test_publish_from_message_callback(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fb->hook = hook_publish_on_message;
    fb->hook_ctx = &ctx;
    assert_code(fb_send_publish(fb, "ping", "x", 1, 1, 5, false, false), 0);
    assert_int_equal(ctx.calls, 1);
    assert_in_range(ctx.publish_rc, 1, 65535);
    uint16_t id = (uint16_t)ctx.publish_rc;

    /* Both the PUBACK and the new PUBLISH go out, in either order. */
    bool puback = false, pub = false;
    mqttc_packet p;
    for (int i = 0; i < 2; i++) {
        assert_true(fb_next_sent_packet(fb, &p));
        if (p.type == MQTTC_PUBACK) {
            assert_int_equal(p.u.packet_id, 5);
            puback = true;
        } else {
            assert_int_equal(p.type, MQTTC_PUBLISH);
            assert_int_equal(p.u.publish.packet_id, id);
            assert_int_equal(p.u.publish.topic.len, 4);
            assert_memory_equal(p.u.publish.topic.data, "echo", 4);
            pub = true;
        }
    }
    assert_true(puback && pub);
    fb_expect_nothing_sent(fb);
    fb->hook = NULL;
    assert_code(fb_send_puback(fb, id), 0);
    expect_done(fb, 0, &ctx.msg, 0);
}

static void hook_publish_on_done(fake_broker *fb, const mqttc_event *ev)
{
    hook_ctx *ctx = fb->hook_ctx;
    if (ev->type != MQTTC_EV_PUBLISH_DONE || ctx->calls++ > 0)
        return;
    fb_message_init(&ctx->msg, "next", "2", 1, 1);
    ctx->publish_rc = mqttc_engine_publish(&fb->engine, &ctx->msg);
}

static void test_publish_from_publish_done_callback(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fb->hook = hook_publish_on_done;
    fb->hook_ctx = &ctx;
    mqttc_message first;
    fb_message_init(&first, "first", "1", 1, 1);
    uint16_t id = publish_ok(fb, &first);
    fb_expect_sent_publish(fb, &first, id, 0);
    assert_code(fb_send_puback(fb, id), 0);
    assert_in_range(ctx.publish_rc, 1, 65535);
    fb_expect_sent_publish(fb, &ctx.msg, (uint16_t)ctx.publish_rc, 0);
}

static void hook_lose_connection(fake_broker *fb, const mqttc_event *ev)
{
    hook_ctx *ctx = fb->hook_ctx;
    if (ev->type != ctx->trigger || ctx->calls++ > 0)
        return;
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_CONNECTION_LOST);
}

static void test_connection_lost_from_message_callback_stops_processing(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.trigger = MQTTC_EV_MESSAGE;
    fb->hook = hook_lose_connection;
    fb->hook_ctx = &ctx;
    uint8_t wire[64];
    size_t n = fb_encode_publish(wire, sizeof wire, "a", "1", 1, 1, 1, false, false);
    n += fb_encode_publish(wire + n, sizeof wire - n, "b", "2", 1, 1, 2, false, false);
    int rc = fb_inject(fb, wire, n);
    assert_int_not_equal(rc, 0);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    assert_int_equal(fb_last_event(fb)->type, MQTTC_EV_CLOSED);
    assert_code(fb_last_event(fb)->reason, MQTTC_ERR_CONNECTION_LOST);
    assert_false(mqttc_engine_want_write(&fb->engine));
    fb_expect_nothing_sent(fb);

    fb->hook = NULL;
    fb_connect(fb, false);
    assert_code(fb_send_publish(fb, "c", "3", 1, 1, 3, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 3);
}

static void test_connection_lost_from_publish_done_callback(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.trigger = MQTTC_EV_PUBLISH_DONE;
    fb->hook = hook_lose_connection;
    fb->hook_ctx = &ctx;
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    (void)fb_send_puback(fb, id);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    assert_int_equal(done_count(fb, &m), 1);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
}

static void test_connection_lost_from_qos0_done_during_consume(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.trigger = MQTTC_EV_PUBLISH_DONE;
    fb->hook = hook_lose_connection;
    fb->hook_ctx = &ctx;
    mqttc_message a, b;
    fb_message_init(&a, "t", "a", 1, 0);
    fb_message_init(&b, "t", "b", 1, 1);
    publish_ok(fb, &a);
    publish_ok(fb, &b);
    (void)fb_drain_output(fb);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    assert_int_equal(done_count(fb, &a), 1);
    assert_int_equal(done_count(fb, &b), 0);
    assert_false(mqttc_engine_want_write(&fb->engine));
}

/* A QoS 0 message cut mid-write is handed back while the engine goes offline;
 * publishing from that callback must not upset the queue (found by fuzzing:
 * the walk over the queue used to run past its end). */
static void test_publish_from_done_callback_while_going_offline(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fb->hook = hook_publish_on_done;
    fb->hook_ctx = &ctx;
    static uint8_t big[2000];
    mqttc_message a;
    fb_message_init(&a, "t", big, sizeof big, 0);
    publish_ok(fb, &a);
    assert_code(fb_drain_output_bytes(fb, 100), 0); /* cut mid-write */
    fb_lose_connection(fb);
    assert_int_equal(done_count(fb, &a), 1);
    assert_true(ctx.publish_rc > 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    /* The message published from the callback goes out after reconnecting. */
    fb->hook = NULL;
    fb_connect(fb, false);
    fb_expect_sent_publish(fb, &ctx.msg, (uint16_t)ctx.publish_rc, 0);
}

static void test_connection_lost_from_closed_callback_is_harmless(void **state)
{
    fake_broker *fb = connect_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.trigger = MQTTC_EV_CLOSED;
    fb->hook = hook_lose_connection;
    fb->hook_ctx = &ctx;
    expect_closed(fb, fb_send_puback(fb, 77), MQTTC_ERR_UNKNOWN_PACKET_ID);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), 1);
    fb->hook = NULL;
    fb_connect(fb, false);
}

static void hook_subscribe_on_connected(fake_broker *fb, const mqttc_event *ev)
{
    static const mqttc_subscription subs[] = {{{"cb/#", 4}, 1}};
    hook_ctx *ctx = fb->hook_ctx;
    if (ev->type != MQTTC_EV_CONNECTED)
        return;
    subscribe_init(&ctx->req, subs, 1);
    ctx->publish_rc = mqttc_engine_request(&fb->engine, &ctx->req);
}

static void test_subscribe_from_connected_callback(void **state)
{
    fake_broker *fb = init_engine(state);
    hook_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    fb->hook = hook_subscribe_on_connected;
    fb->hook_ctx = &ctx;
    fb_connect(fb, false);
    assert_in_range(ctx.publish_rc, 1, 65535);
    assert_int_equal(fb_expect_sent(fb, MQTTC_SUBSCRIBE)->u.subscribe.packet_id,
                     ctx.publish_rc);
    static const uint8_t codes[] = {1};
    assert_code(fb_send_suback(fb, (uint16_t)ctx.publish_rc, codes, 1), 0);
    assert_ptr_equal(fb_expect_event(fb, MQTTC_EV_SUBACK, 0)->req, &ctx.req);
}

static void hook_disconnect_on_connected(fake_broker *fb, const mqttc_event *ev)
{
    if (ev->type == MQTTC_EV_CONNECTED)
        mqttc_engine_disconnect(&fb->engine);
}

static void test_disconnect_from_connected_callback(void **state)
{
    fake_broker *fb = init_engine(state);
    fb->hook = hook_disconnect_on_connected;
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    assert_code(fb_send_connack(fb, false, 0), 0);
    fb_expect_sent(fb, MQTTC_DISCONNECT);
    assert_int_equal(state_of(fb), MQTTC_STATE_OFFLINE);
    assert_code(last_closed(fb)->reason, 0);
}

/* ---- abandon ---------------------------------------------------------------- */

typedef struct abandoned {
    mqttc_message *msgs[8];
    size_t nmsgs;
    mqttc_request *reqs[8];
    size_t nreqs;
} abandoned;

static void on_abandoned_msg(void *user, mqttc_message *m)
{
    abandoned *a = user;
    if (a->nmsgs < 8)
        a->msgs[a->nmsgs] = m;
    a->nmsgs++;
}

static void on_abandoned_req(void *user, mqttc_request *r)
{
    abandoned *a = user;
    if (a->nreqs < 8)
        a->reqs[a->nreqs] = r;
    a->nreqs++;
}

static void test_abandon_returns_everything_oldest_first_when_offline(void **state)
{
    fake_broker *fb = connect_persistent(state);
    static const mqttc_subscription subs[] = {{{"s", 1}, 1}};
    static const mqttc_str filters[] = {{"u", 1}};
    mqttc_message a, b, c;
    mqttc_request r1, r2;
    fb_message_init(&a, "t", "a", 1, 1);
    fb_message_init(&b, "t", "b", 1, 0);
    fb_message_init(&c, "t", "c", 1, 2);
    subscribe_init(&r1, subs, 1);
    unsubscribe_init(&r2, filters, 1);
    publish_ok(fb, &a);
    request_ok(fb, &r1);
    assert_code(fb_drain_output(fb), 0); /* a and r1 are on the wire */
    fb_lose_connection(fb);
    publish_ok(fb, &b);
    publish_ok(fb, &c);
    request_ok(fb, &r2);

    size_t events = fb->event_count;
    abandoned got;
    memset(&got, 0, sizeof got);
    assert_code(mqttc_engine_abandon(&fb->engine, on_abandoned_msg, on_abandoned_req, &got), 0);
    assert_int_equal(got.nmsgs, 3);
    assert_ptr_equal(got.msgs[0], &a);
    assert_ptr_equal(got.msgs[1], &b);
    assert_ptr_equal(got.msgs[2], &c);
    assert_int_equal(got.nreqs, 2);
    assert_ptr_equal(got.reqs[0], &r1);
    assert_ptr_equal(got.reqs[1], &r2);
    assert_int_equal(fb->event_count, events); /* without events */
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);

    /* Nothing is left to send, and ids are free again. */
    fb_connect(fb, true);
    fb_expect_nothing_sent(fb);
    memset(&got, 0, sizeof got);
    fb_lose_connection(fb);
    assert_code(mqttc_engine_abandon(&fb->engine, on_abandoned_msg, on_abandoned_req, &got), 0);
    assert_int_equal(got.nmsgs, 0);
    assert_int_equal(got.nreqs, 0);
}

static void test_abandon_is_refused_unless_offline(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_message m;
    fb_message_init(&m, "t", "x", 1, 1);
    publish_ok(fb, &m);
    abandoned got;
    memset(&got, 0, sizeof got);

    assert_code(fb_start(fb), 0);
    assert_code(mqttc_engine_abandon(&fb->engine, on_abandoned_msg, on_abandoned_req, &got),
                MQTTC_ERR_BAD_STATE);
    fb_expect_sent(fb, MQTTC_CONNECT);
    assert_code(fb_send_connack(fb, false, 0), 0);
    assert_code(mqttc_engine_abandon(&fb->engine, on_abandoned_msg, on_abandoned_req, &got),
                MQTTC_ERR_BAD_STATE);
    assert_int_equal(got.nmsgs, 0);
    assert_int_equal(got.nreqs, 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 1);
    fb_expect_sent_publish(fb, &m, m.packet_id, 0);
    assert_code(fb_send_puback(fb, m.packet_id), 0);
    expect_done(fb, 0, &m, 0);
}

/* ---- malformed broker bytes (MQTT-1.5, 2.2, 4.8) ----------------------------- */

/* What a fresh mqttc_decoder says about `bytes`: the codec's verdict. */
static int codec_verdict(const uint8_t *bytes, size_t len)
{
    uint8_t buf[256];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    assert_int_equal(mqttc_decoder_feed(&d, bytes, len), len);
    int rc = 0;
    for (int i = 0; i < 8; i++) {
        rc = mqttc_decoder_next(&d, &p);
        if (rc <= 0)
            break;
    }
    return rc;
}

/* Connect, feed `bytes`, expect a close with `reason`. */
static void expect_bytes_close_with(fake_broker *fb, const uint8_t *bytes, size_t len,
                                    int reason)
{
    fb_connect(fb, false);
    size_t closed = fb_count_events(fb, MQTTC_EV_CLOSED);
    expect_closed(fb, fb_inject(fb, bytes, len), reason);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CLOSED), closed + 1);
}

static void test_malformed_remaining_length_closes(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t five_byte_length[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    expect_bytes_close_with(fb, five_byte_length, sizeof five_byte_length,
                            MQTTC_ERR_MALFORMED_LENGTH);
}

static void test_reserved_packet_types_close(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t type0[] = {0x00, 0x00};
    static const uint8_t type15[] = {0xF0, 0x00};
    expect_bytes_close_with(fb, type0, sizeof type0, MQTTC_ERR_BAD_PACKET_TYPE);
    expect_bytes_close_with(fb, type15, sizeof type15, MQTTC_ERR_BAD_PACKET_TYPE);
}

static void test_wrong_fixed_header_flags_close(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t puback_flags[] = {0x42, 0x02, 0x00, 0x01};
    static const uint8_t pubrel_no_flags[] = {0x60, 0x02, 0x00, 0x01};
    static const uint8_t suback_flags[] = {0x92, 0x03, 0x00, 0x01, 0x00};
    static const uint8_t pingresp_flags[] = {0xD1, 0x00};
    expect_bytes_close_with(fb, puback_flags, sizeof puback_flags, MQTTC_ERR_BAD_FLAGS);
    expect_bytes_close_with(fb, pubrel_no_flags, sizeof pubrel_no_flags, MQTTC_ERR_BAD_FLAGS);
    expect_bytes_close_with(fb, suback_flags, sizeof suback_flags, MQTTC_ERR_BAD_FLAGS);
    expect_bytes_close_with(fb, pingresp_flags, sizeof pingresp_flags, MQTTC_ERR_BAD_FLAGS);
}

/* MQTT-3.3.1-4: both QoS bits set. The codec picks the code; the engine must
 * close with exactly that code. */
static void test_publish_with_qos3_closes(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t qos3[] = {0x36, 0x05, 0x00, 0x01, 't', 0x00, 0x01};
    int verdict = codec_verdict(qos3, sizeof qos3);
    if (verdict != MQTTC_ERR_BAD_QOS && verdict != MQTTC_ERR_BAD_FLAGS &&
        verdict != MQTTC_ERR_MALFORMED)
        fail_msg("the codec says %s about a QoS 3 PUBLISH", mqttc_errname(verdict));
    expect_bytes_close_with(fb, qos3, sizeof qos3, verdict);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
}

/* MQTT-3.3.2-2: a PUBLISH topic name has no wildcards. */
static void test_publish_with_wildcard_topic_closes(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t plus[] = {0x30, 0x05, 0x00, 0x03, 'a', '/', '+'};
    static const uint8_t hash[] = {0x30, 0x05, 0x00, 0x03, 'a', '/', '#'};
    expect_bytes_close_with(fb, plus, sizeof plus, MQTTC_ERR_BAD_TOPIC);
    expect_bytes_close_with(fb, hash, sizeof hash, MQTTC_ERR_BAD_TOPIC);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
}

static void test_malformed_packet_bodies_close(void **state)
{
    fake_broker *fb = init_engine(state);
    /* MQTT-1.5.3-1: topic is not UTF-8 */
    static const uint8_t bad_utf8[] = {0x30, 0x04, 0x00, 0x02, 0xC0, 0x80};
    /* topic length runs past the packet */
    static const uint8_t short_topic[] = {0x30, 0x03, 0x00, 0x05, 'a'};
    /* PUBACK with 3 bytes */
    static const uint8_t long_puback[] = {0x40, 0x03, 0x00, 0x01, 0x00};
    /* PUBLISH QoS 1 with packet id 0 (MQTT-2.3.1-1) */
    static const uint8_t id_zero[] = {0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00};

    expect_bytes_close_with(fb, bad_utf8, sizeof bad_utf8, MQTTC_ERR_BAD_UTF8);
    expect_bytes_close_with(fb, short_topic, sizeof short_topic, MQTTC_ERR_MALFORMED);
    expect_bytes_close_with(fb, long_puback, sizeof long_puback, MQTTC_ERR_MALFORMED);

    fb_connect(fb, false);
    int rc = fb_inject(fb, id_zero, sizeof id_zero);
    assert_true(rc < 0);
    expect_closed(fb, rc, rc);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
    fb_expect_nothing_sent(fb);
}

static void test_malformed_connack_closes(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t long_connack[] = {0x20, 0x03, 0x00, 0x00, 0x00};
    assert_code(fb_start(fb), 0);
    fb_expect_sent(fb, MQTTC_CONNECT);
    expect_closed(fb, fb_inject(fb, long_connack, sizeof long_connack), MQTTC_ERR_MALFORMED);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CONNECTED), 0);
}

static void test_malformed_bytes_split_one_byte_at_a_time_close_the_same(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t plus[] = {0x30, 0x05, 0x00, 0x03, 'a', '/', '+'};
    fb_connect(fb, false);
    expect_closed(fb, fb_inject_one_byte_at_a_time(fb, plus, sizeof plus), MQTTC_ERR_BAD_TOPIC);
}

/* A new connection starts with a fresh decoder: the old error is gone. */
static void test_engine_recovers_after_a_malformed_close(void **state)
{
    fake_broker *fb = init_engine(state);
    static const uint8_t type0_and_more[] = {0x00, 0x00, 0x20};
    fb_connect(fb, false);
    expect_closed(fb, fb_inject(fb, type0_and_more, sizeof type0_and_more),
                  MQTTC_ERR_BAD_PACKET_TYPE);
    fb_connect(fb, false);
    assert_code(fb_send_publish(fb, "ok", "1", 1, 1, 1, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBACK, 1);
    assert_int_equal(state_of(fb), MQTTC_STATE_CONNECTED);
}


/* ---- persistence hooks ---------------------------------------------------- */

static void test_restore_resends_with_dup_original_ids_and_pubrel(void **state)
{
    fake_broker *fb = *state;
    mqttc_message a, b, c;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    fb_message_init(&a, "store/a", "A", 1, 1);
    fb_message_init(&b, "store/b", "B", 1, 2);
    fb_message_init(&c, "store/c", "C", 1, 1);
    assert_code(mqttc_engine_restore(&fb->engine, &a, 700, false), 0);
    assert_code(mqttc_engine_restore(&fb->engine, &b, 9, true), 0);
    uint16_t id = publish_ok(fb, &c);
    assert_true(id != 700 && id != 9);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 3);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 1); /* the released one */

    fb_connect(fb, true);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, 9);
    fb_expect_sent_publish(fb, &a, 700, 1);
    fb_expect_sent_publish(fb, &c, id, 0);
    fb_expect_nothing_sent(fb);

    assert_code(fb_send_pubcomp(fb, 9), 0);
    expect_done(fb, 0, &b, 0);
    assert_code(fb_send_puback(fb, 700), 0);
    expect_done(fb, 1, &a, 0);
    assert_code(fb_send_puback(fb, id), 0);
    expect_done(fb, 2, &c, 0);
    assert_int_equal(mqttc_engine_queued(&fb->engine), 0);
    assert_int_equal(mqttc_engine_inflight(&fb->engine), 0);
}

/* Restored messages may never have been sent: they wait for the window like
 * new ones (a broker drops what exceeds its receive quota). */
static void test_restored_messages_respect_the_inflight_window(void **state)
{
    fake_broker *fb = *state;
    mqttc_message m[5];
    fb->cfg.inflight_max = 2;
    assert_code(fb_init(fb), 0);
    for (int i = 0; i < 5; i++) {
        fb_message_init(&m[i], "store/w", "W", 1, 1);
        assert_code(mqttc_engine_restore(&fb->engine, &m[i], (uint16_t)(100 + i), false), 0);
    }
    fb_connect(fb, false);
    fb_expect_sent_publish(fb, &m[0], 100, 1);
    fb_expect_sent_publish(fb, &m[1], 101, 1);
    fb_expect_nothing_sent(fb);
    assert_code(fb_send_puback(fb, 100), 0);
    fb_expect_sent_publish(fb, &m[2], 102, 1);
    fb_expect_nothing_sent(fb);
}

static void test_restored_ids_are_never_reused(void **state)
{
    fake_broker *fb = *state;
    mqttc_message kept, m[40];
    fb->cfg.inflight_max = 50;
    assert_code(fb_init(fb), 0);
    fb_message_init(&kept, "store/kept", "K", 1, 1);
    /* The id the counter would hand out next after a restore of id 1. */
    assert_code(mqttc_engine_restore(&fb->engine, &kept, 2, false), 0);
    for (size_t i = 0; i < 40; i++) {
        fb_message_init(&m[i], "store/new", "N", 1, 1);
        assert_true(publish_ok(fb, &m[i]) != 2);
    }
}

static void test_restore_checks_its_arguments_and_state(void **state)
{
    fake_broker *fb = init_engine(state);
    mqttc_message q0, q1, q1b, q2;
    fb_message_init(&q0, "t", "x", 1, 0);
    fb_message_init(&q1, "t", "x", 1, 1);
    fb_message_init(&q1b, "t", "x", 1, 1);
    fb_message_init(&q2, "t", "x", 1, 2);
    assert_code(mqttc_engine_restore(&fb->engine, &q0, 5, false), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_restore(&fb->engine, &q1, 0, false), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_restore(&fb->engine, &q1, 5, true), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_restore(NULL, &q1, 5, false), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_engine_restore(&fb->engine, &q1, 5, false), 0);
    assert_code(mqttc_engine_restore(&fb->engine, &q1b, 5, false), MQTTC_ERR_INVALID_ARG);
    fb_connect(fb, false);
    assert_code(mqttc_engine_restore(&fb->engine, &q2, 6, false), MQTTC_ERR_BAD_STATE);
    assert_code(mqttc_engine_restore_inbound(&fb->engine, 0), MQTTC_ERR_INVALID_ARG);
}

static void test_released_is_emitted_once_before_pubrel(void **state)
{
    fake_broker *fb = connect_persistent(state);
    mqttc_message m;
    fb_message_init(&m, "q2/out", "x", 1, 2);
    uint16_t id = publish_ok(fb, &m);
    fb_expect_sent_publish(fb, &m, id, 0);
    assert_code(fb_send_pubrec(fb, id), 0);
    const fb_event *ev = fb_expect_event(fb, MQTTC_EV_RELEASED, 0);
    assert_ptr_equal(ev->msg, &m);
    assert_int_equal(ev->packet_id, id);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
    /* A repeated PUBREC is answered again but is not a new step. */
    assert_code(fb_send_pubrec(fb, id), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREL, id);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_RELEASED), 1);
    assert_code(fb_send_pubcomp(fb, id), 0);
    expect_done(fb, 0, &m, 0);
}

static void test_pubrel_event_only_for_recorded_inbound_ids(void **state)
{
    fake_broker *fb = connect_persistent(state);
    assert_code(fb_send_publish(fb, "q2/in", "x", 1, 2, 5, false, false), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 5);
    assert_code(fb_send_pubrel(fb, 5), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 5);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBREL), 1);
    assert_int_equal(fb_expect_event(fb, MQTTC_EV_PUBREL, 0)->packet_id, 5);
    assert_code(fb_send_pubrel(fb, 77), 0); /* unknown: answered, no event */
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 77);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBREL), 1);
}

static void test_restored_inbound_id_is_not_delivered_again(void **state)
{
    fake_broker *fb = *state;
    fb->connect.clean_session = false;
    assert_code(fb_init(fb), 0);
    assert_code(mqttc_engine_restore_inbound(&fb->engine, 42), 0);
    assert_code(mqttc_engine_restore_inbound(&fb->engine, 42), 0); /* idempotent */
    fb_connect(fb, true);
    assert_code(fb_send_publish(fb, "q2/in", "again", 5, 2, 42, false, true), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBREC, 42);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 0);
    assert_code(fb_send_pubrel(fb, 42), 0);
    fb_expect_sent_ack(fb, MQTTC_PUBCOMP, 42);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_PUBREL), 1);
    /* The id is free again: a new message with it is delivered. */
    assert_code(fb_send_publish(fb, "q2/in", "new", 3, 2, 42, false, false), 0);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_MESSAGE), 1);
}

static int accept_calls;
static int refuse_qos2(void *user, mqttc_message *m)
{
    (void)user;
    accept_calls++;
    assert_true(m->packet_id != 0);
    return m->qos == 2 ? MQTTC_ERR_STORE : 0;
}

static void test_on_accept_sees_each_qos12_message_and_can_refuse_it(void **state)
{
    fake_broker *fb = *state;
    mqttc_message m0, m1, m2;
    fb->cfg.on_accept = refuse_qos2;
    accept_calls = 0;
    assert_code(fb_init(fb), 0);
    fb_connect(fb, false);
    fb_message_init(&m0, "a", "x", 1, 0);
    fb_message_init(&m1, "a", "x", 1, 1);
    fb_message_init(&m2, "a", "x", 1, 2);
    publish_ok(fb, &m0);
    uint16_t id = publish_ok(fb, &m1);
    assert_code(publish(fb, &m2), MQTTC_ERR_STORE);
    assert_int_equal(accept_calls, 2); /* not for QoS 0 */
    assert_int_equal(mqttc_engine_queued(&fb->engine), 2);
    fb_expect_sent_publish(fb, &m0, 0, 0);
    fb_expect_sent_publish(fb, &m1, id, 0);
    fb_expect_nothing_sent(fb);
}


int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, fb_new, fb_free)
        T(test_restore_resends_with_dup_original_ids_and_pubrel),
        T(test_restored_ids_are_never_reused),
        T(test_restored_messages_respect_the_inflight_window),
        T(test_restore_checks_its_arguments_and_state),
        T(test_released_is_emitted_once_before_pubrel),
        T(test_pubrel_event_only_for_recorded_inbound_ids),
        T(test_restored_inbound_id_is_not_delivered_again),
        T(test_on_accept_sees_each_qos12_message_and_can_refuse_it),
        T(test_init_rejects_null_engine_or_config),
        T(test_init_rejects_missing_or_tiny_buffers),
        T(test_init_leaves_engine_offline_and_idle),
        T(test_start_rejects_invalid_connect_options),
        T(test_start_rejects_connect_larger_than_tx_buffer),
        T(test_start_when_not_offline_is_bad_state),
        T(test_start_sends_connect_bytes_and_enters_connecting),
        T(test_connect_carries_every_option),
        T(test_connack_accepted_emits_connected),
        T(test_connack_reports_session_present),
        T(test_connack_refusals_close_with_matching_reason),
        T(test_connack_timeout_closes_the_connection),
        T(test_connack_timeout_defaults_to_ten_seconds),
        T(test_connack_timeout_across_clock_wrap),
        T(test_publish_before_connack_is_unexpected),
        T(test_suback_before_connack_is_unexpected),
        T(test_second_connack_is_unexpected),
        T(test_session_present_for_clean_session_closes),
        T(test_client_only_packets_from_broker_close_the_connection),
        T(test_connack_and_publish_in_one_read),
        T(test_packet_ids_are_nonzero_and_unique_among_unfinished),
        T(test_packet_ids_wrap_and_skip_ids_in_flight),
        T(test_qos1_publish_is_sent_and_completed_by_puback),
        T(test_qos2_publish_completes_after_pubrec_pubrel_pubcomp),
        T(test_qos0_done_only_after_its_bytes_are_consumed),
        T(test_inflight_window_holds_back_third_message),
        T(test_qos2_message_occupies_window_until_pubcomp),
        T(test_inflight_max_defaults_to_twenty),
        T(test_queue_full_with_refuse_policy_returns_queue_full),
        T(test_queue_full_drop_oldest_drops_oldest_unsent_message),
        T(test_drop_oldest_while_offline_drops_first_queued),
        T(test_drop_oldest_never_drops_messages_in_flight),
        T(test_queue_max_bytes_refuses_when_topic_and_payload_exceed_it),
        T(test_queue_max_bytes_with_drop_oldest_drops_until_it_fits),
        T(test_queue_max_msgs_defaults_to_1000),
        T(test_publish_offline_is_sent_after_connack_in_order),
        T(test_publish_validates_its_arguments),
        T(test_many_messages_are_written_as_tx_buffer_frees),
        T(test_large_payload_is_written_from_the_message),
        T(test_many_large_payloads_through_one_iovec_writes),
        T(test_zero_length_payloads_in_both_directions),
        T(test_payload_larger_than_tx_buffer_is_refused_or_sent_intact),
        T(test_flows_work_with_one_byte_writes),
        T(test_incoming_qos0_message_is_delivered_zero_copy),
        T(test_incoming_qos1_message_is_pubacked),
        T(test_incoming_qos1_duplicate_is_delivered_and_acked_again),
        T(test_incoming_qos2_is_delivered_exactly_once),
        T(test_incoming_qos2_same_id_without_dup_is_still_not_redelivered),
        T(test_pubrel_for_unknown_id_is_answered_with_pubcomp),
        T(test_inbound_qos2_table_full_closes),
        T(test_inbound_qos2_table_full_switches_to_bitmap),
        T(test_inbound_qos2_entry_is_freed_by_pubrel),
        T(test_incoming_packets_one_byte_at_a_time),
        T(test_incoming_packets_through_rx_space_and_commit),
        T(test_puback_for_unknown_id_closes),
        T(test_pubrec_for_unknown_id_closes),
        T(test_pubcomp_for_unknown_id_closes),
        T(test_puback_for_id_in_flight_elsewhere_closes),
        T(test_puback_for_qos2_message_closes),
        T(test_pubrec_for_qos1_message_closes),
        T(test_pubcomp_before_pubrec_closes),
        T(test_suback_and_unsuback_for_unknown_ids_close),
        T(test_suback_for_an_unsubscribe_closes),
        T(test_messages_survive_a_protocol_close),
        T(test_subscribe_several_filters_reports_each_code),
        T(test_suback_with_wrong_number_of_codes_closes),
        T(test_unsubscribe_is_answered_by_unsuback),
        T(test_request_validates_filters_synchronously),
        T(test_requests_made_offline_are_sent_after_connack),
        T(test_keepalive_sends_pingreq_when_idle),
        T(test_pingresp_emits_pong_and_rearms_keepalive),
        T(test_missing_pingresp_closes_with_keepalive_timeout),
        T(test_ping_timeout_defaults_to_keepalive_at_most_30_seconds),
        T(test_sending_a_message_postpones_the_ping),
        T(test_receiving_alone_does_not_postpone_the_ping),
        T(test_keepalive_works_across_clock_wrap),
        T(test_ping_timeout_works_across_clock_wrap),
        T(test_big_clock_jump_sends_a_single_pingreq),
        T(test_keepalive_zero_never_pings),
        T(test_next_timeout_is_none_when_offline),
        T(test_connection_lost_emits_closed_once_with_the_given_reason),
        T(test_reconnect_resends_unacknowledged_in_original_order),
        T(test_reconnect_resends_in_order_with_one_byte_io),
        T(test_large_payload_cut_mid_write_is_resent_whole),
        T(test_large_qos0_payload_cut_mid_write_is_done_with_connection_lost),
        T(test_qos1_lost_before_publish_written_is_sent_after_reconnect),
        T(test_qos1_lost_mid_publish_write_is_resent_whole),
        T(test_qos1_lost_before_puback_is_resent_with_dup),
        T(test_qos2_lost_before_publish_written_is_sent_after_reconnect),
        T(test_qos2_lost_mid_publish_write_is_resent_whole),
        T(test_qos2_lost_before_pubrec_is_resent_with_dup),
        T(test_qos2_lost_after_pubrec_resends_pubrel_not_publish),
        T(test_qos2_lost_before_pubcomp_resends_pubrel),
        T(test_qos0_cut_mid_write_is_done_with_connection_lost),
        T(test_qos0_written_before_loss_is_not_resent),
        T(test_qos0_never_written_is_sent_after_reconnect),
        T(test_inbound_qos2_is_not_redelivered_after_reconnect),
        T(test_inbound_qos2_lost_before_pubrec_written_is_not_redelivered),
        T(test_connack_without_session_present_clears_inbound_state),
        T(test_clear_inbound_forgets_ids_awaiting_pubrel),
        T(test_disconnect_writes_disconnect_then_closes_with_reason_0),
        T(test_disconnect_comes_after_output_already_queued),
        T(test_disconnect_while_offline_has_no_effect),
        T(test_large_incoming_publish_is_streamed_in_pieces),
        T(test_large_incoming_publish_streams_one_byte_at_a_time),
        T(test_streamed_qos2_duplicate_is_not_redelivered),
        T(test_streamed_message_cut_by_connection_loss_restarts_at_offset_0),
        T(test_large_incoming_publish_without_streaming_is_too_large),
        T(test_max_packet_is_enforced),
        T(test_backpressure_recv_takes_fewer_bytes_until_output_drains),
        T(test_backpressure_with_rx_space_and_commit),
        T(test_publish_from_message_callback),
        T(test_publish_from_publish_done_callback),
        T(test_connection_lost_from_message_callback_stops_processing),
        T(test_connection_lost_from_publish_done_callback),
        T(test_connection_lost_from_qos0_done_during_consume),
        T(test_connection_lost_from_closed_callback_is_harmless),
        T(test_publish_from_done_callback_while_going_offline),
        T(test_subscribe_from_connected_callback),
        T(test_disconnect_from_connected_callback),
        T(test_abandon_returns_everything_oldest_first_when_offline),
        T(test_abandon_is_refused_unless_offline),
        T(test_malformed_remaining_length_closes),
        T(test_reserved_packet_types_close),
        T(test_wrong_fixed_header_flags_close),
        T(test_publish_with_qos3_closes),
        T(test_publish_with_wildcard_topic_closes),
        T(test_malformed_packet_bodies_close),
        T(test_malformed_connack_closes),
        T(test_malformed_bytes_split_one_byte_at_a_time_close_the_same),
        T(test_engine_recovers_after_a_malformed_close),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
