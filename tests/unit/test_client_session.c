/* Integration: sessions and queues against a real mosquitto. A persistent
 * session resumed by a new client, subscriptions restored when the broker
 * has lost the session, the offline queue delivered in order once the broker
 * is up, and the queue limits with both policies. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define T IT_TIMEOUT_MS

static int setup_broker(void **state)
{
    *state = it_new(NULL);
    return *state ? 0 : -1;
}

static int setup_no_broker(void **state)
{
    *state = it_new_no_broker();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    it_free(*state);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static mqttc_client *make(itest *t, mqttc_client_config *cfg, it_rec **r)
{
    mqttc_client *c;
    assert_int_equal(it_client(t, cfg, NULL, NULL, &c, r), 0);
    return c;
}

static void connect_wait(itest *t, mqttc_client *c, it_rec *r, mqttc_client *drive, size_t nth)
{
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, drive, MQTTC_CLIENT_EV_CONNECTED, nth, T)) {
        broker_dump_log(&t->b, 2000);
        fail_msg("%s: no CONNECTED #%zu", r->name, nth);
    }
}

static void subscribe_wait(mqttc_client *c, it_rec *r, const char *filter, int qos)
{
    size_t before = it_count(r, MQTTC_CLIENT_EV_SUBSCRIBED);
    assert_true(mqttc_client_subscribe(c, filter, qos) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, before + 1, T));
    assert_int_equal(r->granted[0], qos);
}

struct topic_n {
    const char *topic;
    size_t n;
};

static bool topic_count_reached(it_rec *r, void *arg)
{
    const struct topic_n *a = arg;
    size_t i, n = 0;
    for (i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, a->topic) == 0;
    }
    return n >= a->n;
}

static bool wait_topic(it_rec *r, mqttc_client *drive, const char *topic, size_t n, int ms)
{
    struct topic_n a;
    a.topic = topic;
    a.n = n;
    return it_wait(r, drive, topic_count_reached, &a, ms);
}

/* Messages on `topic` carry "<seq>"; check that seq 0..n-1 arrived in order
 * (`in_order`) or at least once each. */
static void check_sequence(it_rec *r, const char *topic, int n, bool in_order)
{
    int *seen = calloc((size_t)n, sizeof *seen);
    int expect = 0;
    size_t i;
    assert_non_null(seen);
    it_lock(r);
    for (i = 0; i < r->nmsgs; i++) {
        char buf[32];
        int seq;
        if (strcmp(r->msgs[i].topic, topic) != 0) {
            continue;
        }
        assert_true(r->msgs[i].len < sizeof buf);
        memcpy(buf, r->msgs[i].payload, r->msgs[i].len);
        buf[r->msgs[i].len] = '\0';
        seq = atoi(buf);
        assert_true(seq >= 0 && seq < n);
        if (in_order && seen[seq] == 0) {
            if (seq != expect) {
                print_error("%s: message %d arrived where %d was expected\n", topic, seq, expect);
            }
            assert_int_equal(seq, expect);
            expect++;
        }
        seen[seq]++;
    }
    it_unlock(r);
    for (i = 0; i < (size_t)n; i++) {
        if (seen[i] == 0) {
            print_error("%s: message %zu never arrived\n", topic, i);
        }
        assert_true(seen[i] > 0);
    }
    free(seen);
}

static void publish_seq(mqttc_client *c, const char *topic, int from, int to, int qos)
{
    int i;
    for (i = from; i < to; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", i);
        assert_true(mqttc_client_publish(c, topic, buf, strlen(buf), qos, false) > 0);
    }
}

/* ---- persistent sessions ------------------------------------------------- */

static void session_resumed_by_new_client_caller_mode(void **state)
{
    enum { N = 20 };
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *s1, *s2, *p;
    it_rec *r1, *r2, *rp;

    it_config(t, &cfg, uri, "sess-s");
    cfg.clean_session = false;
    s1 = make(t, &cfg, &r1);
    connect_wait(t, s1, r1, NULL, 1);
    assert_false(r1->session_present);
    subscribe_wait(s1, r1, "sess/q1", 1);
    subscribe_wait(s1, r1, "sess/q2", 2);
    it_destroy(t, s1); /* DISCONNECT; the session stays with the broker */
    assert_true(broker_wait_log(&t->b, "Client sess-s disconnected.", T));

    it_config(t, &cfg, uri, "sess-p");
    p = make(t, &cfg, &rp);
    connect_wait(t, p, rp, NULL, 1);
    publish_seq(p, "sess/q1", 0, N, 1);
    publish_seq(p, "sess/q2", 0, N, 2);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 2 * N, T));

    it_config(t, &cfg, uri, "sess-s");
    cfg.clean_session = false;
    cfg.run_mode = MQTTC_RUN_CALLER;
    s2 = make(t, &cfg, &r2);
    connect_wait(t, s2, r2, s2, 1);
    assert_true(r2->session_present);
    assert_true(wait_topic(r2, s2, "sess/q1", N, T));
    assert_true(wait_topic(r2, s2, "sess/q2", N, T));
    check_sequence(r2, "sess/q1", N, true);
    check_sequence(r2, "sess/q2", N, true);
    assert_int_equal(it_count_topic(r2, "sess/q2"), N); /* QoS 2: exactly once */
    assert_int_equal(it_count(r2, MQTTC_CLIENT_EV_SUBSCRIBED), 0);
}

static void session_resumed_on_same_handle(void **state)
{
    enum { N = 10 };
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *s, *p;
    it_rec *rs, *rp;

    it_config(t, &cfg, uri, "same-s");
    cfg.clean_session = false;
    s = make(t, &cfg, &rs);
    connect_wait(t, s, rs, NULL, 1);
    subscribe_wait(s, rs, "same/t", 1);
    assert_int_equal(mqttc_client_disconnect(s), 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_true(broker_wait_log(&t->b, "Client same-s disconnected.", T));

    it_config(t, &cfg, uri, "same-p");
    p = make(t, &cfg, &rp);
    connect_wait(t, p, rp, NULL, 1);
    publish_seq(p, "same/t", 0, N, 1);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, N, T));

    connect_wait(t, s, rs, NULL, 2);
    assert_true(rs->session_present);
    assert_true(wait_topic(rs, NULL, "same/t", N, T));
    check_sequence(rs, "same/t", N, true);
}

/* ---- subscriptions restored ---------------------------------------------- */

static void restored_subscription_works(itest *t, it_rec *rs, const char *prefix)
{
    mqttc_client_config cfg;
    char uri[64], pid[32], topic_r[32], topic_l[32];
    mqttc_client *p;
    it_rec *rp;
    snprintf(pid, sizeof pid, "%s-pub", prefix);
    snprintf(topic_r, sizeof topic_r, "%s/retained", prefix);
    snprintf(topic_l, sizeof topic_l, "%s/live", prefix);
    it_config(t, &cfg, uri, pid);
    p = make(t, &cfg, &rp);
    connect_wait(t, p, rp, NULL, 1);
    /* retained: arrives whenever the restored SUBSCRIBE reaches the broker */
    assert_true(mqttc_client_publish(p, topic_r, "r", 1, 1, true) > 0);
    if (!wait_topic(rs, NULL, topic_r, 1, T)) {
        broker_dump_log(&t->b, 3000);
        fail_msg("nothing arrived on %s: subscription not restored", topic_r);
    }
    /* then the subscription is active: a live message arrives too */
    assert_true(mqttc_client_publish(p, topic_l, "l", 1, 1, false) > 0);
    assert_true(wait_topic(rs, NULL, topic_l, 1, T));
}

static void subscriptions_restored_after_broker_restart(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *s;
    it_rec *rs;

    it_config(t, &cfg, uri, "rest-s");
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    s = make(t, &cfg, &rs);
    connect_wait(t, s, rs, NULL, 1);
    subscribe_wait(s, rs, "rest/#", 1);

    assert_int_equal(broker_stop(&t->b), 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_true(rs->disc_will_reconnect);
    assert_true(rs->disc_reason < 0);
    assert_int_equal(broker_restart(&t->b), 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    assert_false(rs->session_present); /* clean session: nothing kept */
    restored_subscription_works(t, rs, "rest");
}

static void subscriptions_restored_after_broker_crash(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *s;
    it_rec *rs;

    /* A persistent session the broker loses: killed before it saved anything. */
    it_config(t, &cfg, uri, "crash-s");
    cfg.clean_session = false;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    s = make(t, &cfg, &rs);
    connect_wait(t, s, rs, NULL, 1);
    subscribe_wait(s, rs, "crash/#", 2);

    assert_int_equal(broker_kill(&t->b), 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_int_equal(broker_restart(&t->b), 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    assert_false(rs->session_present);
    restored_subscription_works(t, rs, "crash");
}

/* ---- the offline queue --------------------------------------------------- */

static void offline_queue_sent_in_order_when_broker_starts(void **state)
{
    enum { N = 200 };
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *s, *p;
    it_rec *rs, *rp;
    size_t i;

    /* the subscriber's persistent session is saved by a clean stop */
    it_config(t, &cfg, uri, "offq-s");
    cfg.clean_session = false;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    s = make(t, &cfg, &rs);
    connect_wait(t, s, rs, NULL, 1);
    subscribe_wait(s, rs, "offq/t", 1);
    assert_int_equal(broker_stop(&t->b), 0);

    /* the publisher starts while the broker is down */
    it_config(t, &cfg, uri, "offq-p");
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    p = make(t, &cfg, &rp);
    assert_int_equal(mqttc_client_connect(p), 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_ERROR, 1, T));
    assert_false(mqttc_client_ready(p));
    publish_seq(p, "offq/t", 0, N, 1);
    assert_int_equal(mqttc_client_queued(p), N);
    assert_int_equal(it_count(rp, MQTTC_CLIENT_EV_PUBLISHED), 0);

    assert_int_equal(broker_restart(&t->b), 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, N, T));
    assert_int_equal(mqttc_client_queued(p), 0);
    if (!wait_topic(rs, NULL, "offq/t", N, T)) {
        fail_msg("%zu of %d queued messages arrived", it_count_topic(rs, "offq/t"), N);
    }
    check_sequence(rs, "offq/t", N, true);
    it_lock(rp);
    for (i = 0; i < rp->nerrors; i++) {
        assert_int_equal(rp->errors[i].code, MQTTC_ERR_CONNECT_REFUSED);
        assert_int_equal(rp->errors[i].kind, MQTTC_ERRKIND_CONNECT);
    }
    it_unlock(rp);
}

static void queue_full_with_refuse_policy(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *c;
    it_rec *r;
    char payload[60];
    int i;

    it_config(t, &cfg, uri, "refuse");
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    cfg.uri = uri;
    cfg.queue_max_msgs = 5;
    cfg.queue_policy = MQTTC_QUEUE_REFUSE;
    c = make(t, &cfg, &r);
    for (i = 0; i < 5; i++) {
        assert_true(mqttc_client_publish(c, "q/t", "x", 1, 1, false) > 0);
    }
    assert_int_equal(mqttc_client_publish(c, "q/t", "x", 1, 1, false), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(mqttc_client_publish(c, "q/t", "x", 1, 2, false), MQTTC_ERR_QUEUE_FULL);
    assert_int_equal(mqttc_client_queued(c), 5);
    it_destroy(t, c);

    /* the byte limit counts topic + payload */
    it_config(t, &cfg, uri, "refuse-bytes");
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    cfg.uri = uri;
    cfg.queue_max_bytes = 100;
    c = make(t, &cfg, &r);
    memset(payload, 'p', sizeof payload);
    assert_true(mqttc_client_publish(c, "q/t", payload, sizeof payload, 1, false) > 0);
    assert_int_equal(mqttc_client_publish(c, "q/t", payload, sizeof payload, 1, false),
                     MQTTC_ERR_QUEUE_FULL);
    assert_true(mqttc_client_publish(c, "q/t", payload, 30, 1, false) > 0);
    assert_int_equal(mqttc_client_queued(c), 2);
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_DROPPED), 0);
}

static void queue_full_with_drop_oldest_policy(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *c;
    it_rec *r;
    int ids[8];
    size_t i, j;

    assert_int_equal(broker_stop(&t->b), 0); /* keep the port, nobody listening */
    it_config(t, &cfg, uri, "dropper");
    cfg.queue_max_msgs = 5;
    cfg.queue_policy = MQTTC_QUEUE_DROP_OLDEST;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    c = make(t, &cfg, &r);
    assert_int_equal(mqttc_client_connect(c), 0); /* starts the thread; fails, retries */
    for (i = 0; i < 8; i++) {
        char buf[8];
        snprintf(buf, sizeof buf, "%zu", i);
        ids[i] = mqttc_client_publish(c, "drop/t", buf, strlen(buf), 1, false);
        assert_true(ids[i] > 0);
    }
    assert_int_equal(mqttc_client_queued(c), 5);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_DROPPED, 3, T)) {
        fail_msg("%zu DROPPED events for 3 dropped messages", it_count(r, MQTTC_CLIENT_EV_DROPPED));
    }
    it_lock(r);
    assert_int_equal(r->ndrop, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(r->drop_ids[i], ids[i]); /* the oldest ones, oldest first */
        assert_int_equal(r->drop_reasons[i], MQTTC_ERR_DROPPED);
    }
    it_unlock(r);

    /* the other five are sent once the broker is there */
    assert_int_equal(broker_restart(&t->b), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_PUBLISHED, 5, T));
    it_lock(r);
    for (i = 3; i < 8; i++) {
        size_t hits = 0;
        for (j = 0; j < r->npub; j++) {
            hits += r->pub_ids[j] == ids[i];
        }
        assert_int_equal(hits, 1);
    }
    assert_int_equal(r->ndrop, 3);
    it_unlock(r);
    assert_int_equal(mqttc_client_queued(c), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(session_resumed_by_new_client_caller_mode, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(session_resumed_on_same_handle, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(subscriptions_restored_after_broker_restart, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(subscriptions_restored_after_broker_crash, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(offline_queue_sent_in_order_when_broker_starts,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(queue_full_with_refuse_policy, setup_no_broker, teardown),
        cmocka_unit_test_setup_teardown(queue_full_with_drop_oldest_policy, setup_broker,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
