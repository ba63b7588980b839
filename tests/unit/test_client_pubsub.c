/* Integration: publishing and receiving through a real mosquitto. QoS and
 * its downgrades, PUBLISHED ids, retained messages, wills, 1 MiB payloads
 * whole and in pieces, a 100-filter SUBSCRIBE, unsubscribe, and keepalive
 * over an idle period. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "itest.h"

#define T IT_TIMEOUT_MS
#define MIB (1024u * 1024u)

static int setup_broker(void **state)
{
    *state = it_new(NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    it_free(*state);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* A connected thread-mode client with a recorder. */
static mqttc_client *connected(itest *t, const char *id, mqttc_client_config *cfg_in, it_rec **rec)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    char uri[64];
    if (cfg_in == NULL) {
        it_config(t, &cfg, uri, id);
        cfg_in = &cfg;
    }
    assert_int_equal(it_client(t, cfg_in, NULL, NULL, &c, rec), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(*rec, cfg_in->run_mode == MQTTC_RUN_CALLER ? c : NULL,
                       MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        broker_dump_log(&t->b, 2000);
        fail_msg("%s did not connect", id);
    }
    return c;
}

static void subscribe_wait(mqttc_client *c, it_rec *r, const char *filter, int qos)
{
    size_t before = it_count(r, MQTTC_CLIENT_EV_SUBSCRIBED);
    int id = mqttc_client_subscribe(c, filter, qos);
    assert_true(id > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, before + 1, T));
    it_lock(r);
    assert_int_equal(r->sub_msg_id, id);
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
    size_t i, n = 0;
    for (i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, a->topic) == 0;
    }
    return n >= a->n;
}

static bool wait_topic(it_rec *r, mqttc_client *drive, const char *topic, size_t n)
{
    struct topic_n a;
    a.topic = topic;
    a.n = n;
    return it_wait(r, drive, topic_count_reached, &a, T);
}

/* ---- QoS ----------------------------------------------------------------- */

static void qos_downgraded_to_subscription(void **state)
{
    itest *t = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = connected(t, "sub", NULL, &rs);
    mqttc_client *pub = connected(t, "pub", NULL, &rp);
    mqttc_topic_qos items[3] = {{"m/0", 0}, {"m/1", 1}, {"m/2", 2}};
    int ids[3][3];
    int s, p;
    size_t i, q0_published = 0;

    assert_true(mqttc_client_subscribe_many(sub, items, 3) > 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    assert_int_equal(rs->sub_count, 3);
    assert_int_equal(rs->granted[0], 0);
    assert_int_equal(rs->granted[1], 1);
    assert_int_equal(rs->granted[2], 2);

    for (s = 0; s < 3; s++) {
        for (p = 0; p < 3; p++) {
            char topic[8], payload[16];
            snprintf(topic, sizeof topic, "m/%d", s);
            snprintf(payload, sizeof payload, "p%d s%d", p, s);
            ids[s][p] = mqttc_client_publish(pub, topic, payload, strlen(payload), p, false);
            if (p == 0) {
                assert_int_equal(ids[s][p], 0);
            } else {
                assert_true(ids[s][p] > 0);
            }
        }
    }
    if (!it_wait_count(rs, NULL, MQTTC_CLIENT_EV_MESSAGE, 9, T)) {
        fail_msg("only %zu of 9 messages arrived", it_count(rs, MQTTC_CLIENT_EV_MESSAGE));
    }
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 9, T));

    it_lock(rs);
    assert_int_equal(rs->nmsgs, 9);
    for (i = 0; i < rs->nmsgs; i++) {
        const it_msg *m = &rs->msgs[i];
        int mp, ms;
        char buf[16];
        assert_true(m->len < sizeof buf);
        memcpy(buf, m->payload, m->len);
        buf[m->len] = '\0';
        assert_int_equal(sscanf(buf, "p%d s%d", &mp, &ms), 2);
        assert_int_equal(m->topic[2] - '0', ms);
        if (m->qos != (mp < ms ? mp : ms)) {
            print_error("published QoS %d to a QoS %d subscription, received QoS %u\n", mp, ms,
                        (unsigned)m->qos);
        }
        assert_int_equal(m->qos, mp < ms ? mp : ms);
        assert_true(m->qos == 0 ? m->msg_id == 0 : m->msg_id > 0);
        assert_false(m->retain);
        assert_false(m->dup);
        assert_int_equal(m->offset, 0);
        assert_int_equal(m->total, m->len);
    }
    it_unlock(rs);

    /* one PUBLISHED per publish: QoS 1/2 with the id publish returned */
    it_lock(rp);
    assert_int_equal(rp->npub, 9);
    for (i = 0; i < rp->npub; i++) {
        if (rp->pub_qos[i] == 0) {
            assert_int_equal(rp->pub_ids[i], 0);
            q0_published++;
        }
    }
    assert_int_equal(q0_published, 3);
    for (s = 0; s < 3; s++) {
        for (p = 1; p < 3; p++) {
            size_t hits = 0;
            for (i = 0; i < rp->npub; i++) {
                hits += rp->pub_ids[i] == ids[s][p] && rp->pub_qos[i] == p;
            }
            assert_int_equal(hits, 1);
        }
    }
    it_unlock(rp);
}

static void published_event_for_every_message(void **state)
{
    enum { N = 60 };
    itest *t = *state;
    it_rec *rp;
    mqttc_client *pub = connected(t, "pub-ids", NULL, &rp);
    int ids[N];
    int i;
    size_t j;
    for (i = 0; i < N; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "%d", i);
        ids[i] = mqttc_client_publish(pub, "ids/t", payload, strlen(payload), i % 3, false);
        assert_true(i % 3 == 0 ? ids[i] == 0 : ids[i] > 0);
    }
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, N, T));
    assert_int_equal(mqttc_client_queued(pub), 0);
    it_lock(rp);
    assert_int_equal(rp->npub, N);
    for (i = 0; i < N; i++) {
        size_t hits = 0;
        if (i % 3 == 0) {
            continue;
        }
        for (j = 0; j < rp->npub; j++) {
            hits += rp->pub_ids[j] == ids[i] && rp->pub_qos[j] == i % 3;
        }
        if (hits != 1) {
            print_error("message %d (QoS %d, id %d): %zu PUBLISHED events\n", i, i % 3, ids[i],
                        hits);
        }
        assert_int_equal(hits, 1);
    }
    assert_int_equal(rp->count[MQTTC_CLIENT_EV_DROPPED], 0);
    it_unlock(rp);
}

/* ---- retained ------------------------------------------------------------ */

static void retained_message_reaches_new_subscriber(void **state)
{
    itest *t = *state;
    it_rec *rp, *r1, *r2;
    mqttc_client *pub = connected(t, "ret-pub", NULL, &rp);
    mqttc_client *s1, *s2;
    long i;

    assert_true(mqttc_client_publish(pub, "ret/a", "first", 5, 1, true) > 0);
    assert_true(mqttc_client_publish(pub, "ret/a", "kept", 4, 1, true) > 0);
    assert_true(mqttc_client_publish(pub, "ret/b", "bee", 3, 0, true) >= 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));

    s1 = connected(t, "ret-sub1", NULL, &r1);
    subscribe_wait(s1, r1, "ret/#", 1);
    assert_true(wait_topic(r1, NULL, "ret/a", 1));
    assert_true(wait_topic(r1, NULL, "ret/b", 1));
    it_lock(r1);
    i = it_find_msg(r1, "ret/a", 0);
    assert_true(r1->msgs[i].retain);
    assert_int_equal(r1->msgs[i].len, 4);
    assert_memory_equal(r1->msgs[i].payload, "kept", 4); /* the last one replaced the first */
    assert_int_equal(r1->msgs[i].qos, 1);
    i = it_find_msg(r1, "ret/b", 0);
    assert_true(r1->msgs[i].retain);
    assert_int_equal(r1->msgs[i].qos, 0);
    it_unlock(r1);

    /* a live message to an existing subscriber has retain 0, even if published retained */
    assert_true(mqttc_client_publish(pub, "ret/a", "live", 4, 1, true) > 0);
    assert_true(wait_topic(r1, NULL, "ret/a", 2));
    it_lock(r1);
    i = it_find_msg(r1, "ret/a", 1);
    assert_false(r1->msgs[i].retain);
    assert_memory_equal(r1->msgs[i].payload, "live", 4);
    it_unlock(r1);

    /* an empty retained message clears it: the next subscriber gets only ret/b */
    assert_true(mqttc_client_publish(pub, "ret/a", NULL, 0, 1, true) > 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 5, T));
    s2 = connected(t, "ret-sub2", NULL, &r2);
    subscribe_wait(s2, r2, "ret/#", 1);
    assert_true(wait_topic(r2, NULL, "ret/b", 1));
    assert_true(mqttc_client_publish(pub, "ret/marker", "m", 1, 1, false) > 0);
    assert_true(wait_topic(r2, NULL, "ret/marker", 1));
    assert_int_equal(it_count_topic(r2, "ret/a"), 0);
}

/* ---- wills --------------------------------------------------------------- */

static void will_published_when_connection_dies(void **state)
{
    itest *t = *state;
    it_rec *rs;
    mqttc_client *sub = connected(t, "will-sub", NULL, &rs);
    mqttc_connect conn;
    int fd;
    long i;

    subscribe_wait(sub, rs, "will/#", 2);
    memset(&conn, 0, sizeof conn);
    conn.client_id.data = "raw-will";
    conn.client_id.len = 8;
    conn.will_topic.data = "will/raw";
    conn.will_topic.len = 8;
    conn.will_payload.data = "gone";
    conn.will_payload.len = 4;
    conn.will_qos = 1;
    conn.keepalive = 60;
    conn.clean_session = true;
    fd = it_raw_connect(t->b.port, &conn, T);
    assert_true(fd >= 0);
    close(fd); /* no DISCONNECT: the broker must publish the will */

    assert_true(wait_topic(rs, NULL, "will/raw", 1));
    it_lock(rs);
    i = it_find_msg(rs, "will/raw", 0);
    assert_int_equal(rs->msgs[i].len, 4);
    assert_memory_equal(rs->msgs[i].payload, "gone", 4);
    assert_int_equal(rs->msgs[i].qos, 1);
    assert_false(rs->msgs[i].retain);
    it_unlock(rs);
}

/* The client's own CONNECT carries the will: a caller-driven client that
 * stops being driven goes silent, the broker's keepalive check (1.5 x 1 s)
 * drops it and publishes the will. */
static void will_published_on_keepalive_expiry_caller_mode(void **state)
{
    itest *t = *state;
    it_rec *rs, *rw;
    mqttc_client *sub = connected(t, "ka-sub", NULL, &rs);
    mqttc_client *w;
    mqttc_client_config cfg;
    char uri[64];
    long i;

    subscribe_wait(sub, rs, "will/#", 1);
    it_config(t, &cfg, uri, "ka-will");
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.keepalive = 1;
    cfg.will_topic = "will/ka";
    cfg.will_payload = "\0binary\xff";
    cfg.will_payload_len = 8;
    cfg.will_qos = 2;
    cfg.will_retain = true;
    w = connected(t, "ka-will", &cfg, &rw);
    assert_true(mqttc_client_ready(w));
    /* not driven from here on */
    if (!wait_topic(rs, NULL, "will/ka", 1)) {
        broker_dump_log(&t->b, 2000);
        fail_msg("the will of a client the broker dropped did not arrive");
    }
    it_lock(rs);
    i = it_find_msg(rs, "will/ka", 0);
    assert_int_equal(rs->msgs[i].len, 8);
    assert_memory_equal(rs->msgs[i].payload, "\0binary\xff", 8);
    assert_int_equal(rs->msgs[i].qos, 1); /* will QoS 2, subscription QoS 1 */
    it_unlock(rs);
    assert_true(broker_log_contains(&t->b, "ka-will has exceeded timeout"));
}

static void no_will_after_clean_disconnect(void **state)
{
    itest *t = *state;
    it_rec *rs, *rw1, *rw2;
    mqttc_client *sub = connected(t, "nowill-sub", NULL, &rs);
    mqttc_client *w1, *w2;
    mqttc_client_config cfg;
    char uri[64];

    subscribe_wait(sub, rs, "will/#", 1);
    it_config(t, &cfg, uri, "clean-will");
    cfg.will_topic = "will/clean";
    cfg.will_payload = "should not arrive";
    cfg.will_payload_len = 17;
    cfg.will_qos = 1;
    w1 = connected(t, "clean-will", &cfg, &rw1);
    it_config(t, &cfg, uri, "destroyed-will");
    cfg.will_topic = "will/destroyed";
    cfg.will_payload = "should not arrive";
    cfg.will_payload_len = 17;
    w2 = connected(t, "destroyed-will", &cfg, &rw2);

    assert_int_equal(mqttc_client_disconnect(w1), 0);
    assert_true(it_wait_count(rw1, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_int_equal(rw1->disc_reason, 0);
    it_destroy(t, w2); /* destroy sends DISCONNECT too */

    /* once the broker has handled both DISCONNECTs, a marker published after
     * them arrives after any will would have */
    assert_true(broker_wait_log(&t->b, "Client clean-will disconnected.", T));
    assert_true(broker_wait_log(&t->b, "Client destroyed-will disconnected.", T));
    assert_true(mqttc_client_publish(sub, "will/marker", "m", 1, 1, false) > 0);
    assert_true(wait_topic(rs, NULL, "will/marker", 1));
    assert_int_equal(it_count_topic(rs, "will/clean"), 0);
    assert_int_equal(it_count_topic(rs, "will/destroyed"), 0);
}

/* A clean end while the broker is still sending: the client closes its
 * socket with unread bytes in it. The DISCONNECT must still reach the
 * broker (not be lost to the TCP reset that closing a socket with unread
 * data sends) and the will must not be published. The outcome depends on
 * timing, so up to BUSY_ROUNDS rounds are tried, each with its own will
 * client; the first round the broker did not see the DISCONNECT fails.
 * `destroy`: end with mqttc_client_destroy() instead of
 * mqttc_client_disconnect(). */
#define BUSY_ROUNDS 3

static void busy_round(itest *t, mqttc_client *pub, mqttc_client *sub, it_rec *rs, bool destroy,
                       int round, bool *clean, size_t *wills)
{
    mqttc_client_config cfg;
    mqttc_client *w;
    it_rec *rw;
    char uri[64], id[32], will_topic[48], marker[32];
    uint8_t payload[512];
    int i;

    snprintf(id, sizeof id, "busy-%s-%d", destroy ? "destroy" : "disconnect", round);
    snprintf(will_topic, sizeof will_topic, "will/%s", id);
    snprintf(marker, sizeof marker, "will/marker-%d", round);
    it_config(t, &cfg, uri, id);
    cfg.will_topic = will_topic;
    cfg.will_payload = "should not arrive";
    cfg.will_payload_len = 17;
    cfg.will_qos = 1;
    w = connected(t, id, &cfg, &rw);
    subscribe_wait(w, rw, "busy/#", 1);
    it_lock(rw);
    rw->keep_messages = false;
    it_unlock(rw);
    memset(payload, 'b', sizeof payload);
    for (i = 0; i < 3000; i++) {
        assert_true(mqttc_client_publish(pub, "busy/t", payload, sizeof payload, 1, false) > 0);
    }
    assert_true(it_wait_count(rw, NULL, MQTTC_CLIENT_EV_MESSAGE, 100, T));
    /* messages still pouring in */
    if (destroy) {
        it_destroy(t, w);
    } else {
        assert_int_equal(mqttc_client_disconnect(w), 0);
        assert_true(it_wait_count(rw, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    }
    assert_true(broker_wait_client_gone(&t->b, id, T, clean));
    assert_true(mqttc_client_publish(sub, marker, "m", 1, 1, false) > 0);
    assert_true(wait_topic(rs, NULL, marker, 1));
    *wills = it_count_topic(rs, will_topic);
    if (!*clean || *wills > 0) {
        print_error("%s: the broker saw no DISCONNECT (it logged the connection as closed "
                    "without one): %s; will messages: %zu\n", id, *clean ? "no" : "yes", *wills);
    }
    if (!destroy) {
        it_destroy(t, w);
    }
    /* let the stream drain before the next round */
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_PUBLISHED, (size_t)round + 1, T));
}

static void no_will_after_ending_while_receiving(itest *t, bool destroy)
{
    it_rec *rs, *rp;
    mqttc_client *sub = connected(t, "busy-sub", NULL, &rs);
    mqttc_client *pub;
    mqttc_client_config cfg;
    char uri[64];
    bool clean = true;
    size_t wills = 0;
    int round;

    it_config(t, &cfg, uri, "busy-pub");
    cfg.queue_max_msgs = 5000;
    pub = connected(t, "busy-pub", &cfg, &rp);
    subscribe_wait(sub, rs, "will/#", 1);
    for (round = 0; round < BUSY_ROUNDS && clean && wills == 0; round++) {
        busy_round(t, pub, sub, rs, destroy, round, &clean, &wills);
        assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3000 * ((size_t)round + 1),
                                  30000));
    }
    assert_true(clean);
    assert_int_equal(wills, 0);
}

static void no_will_after_disconnect_while_receiving(void **state)
{
    no_will_after_ending_while_receiving(*state, false);
}

static void no_will_after_destroy_while_receiving(void **state)
{
    no_will_after_ending_while_receiving(*state, true);
}

/* ---- large payloads ------------------------------------------------------ */

static void one_mib_payload_whole(void **state)
{
    itest *t = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = connected(t, "big-sub", NULL, &rs);
    mqttc_client *pub = connected(t, "big-pub", NULL, &rp);
    uint8_t *data = malloc(MIB);
    int q;
    assert_non_null(data);

    subscribe_wait(sub, rs, "big/#", 2);
    for (q = 0; q <= 2; q++) {
        char topic[16];
        snprintf(topic, sizeof topic, "big/%d", q);
        it_pattern(data, MIB, (uint32_t)q + 1);
        assert_true(mqttc_client_publish(pub, topic, data, MIB, q, false) >= 0);
    }
    if (!it_wait_count(rs, NULL, MQTTC_CLIENT_EV_MESSAGE, 3, 30000)) {
        free(data);
        fail_msg("%zu of 3 1-MiB messages arrived", it_count(rs, MQTTC_CLIENT_EV_MESSAGE));
    }
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
    it_lock(rs);
    assert_int_equal(rs->nmsgs, 3);
    for (q = 0; q <= 2; q++) {
        char topic[16];
        long i;
        snprintf(topic, sizeof topic, "big/%d", q);
        i = it_find_msg(rs, topic, 0);
        assert_true(i >= 0);
        assert_int_equal(rs->msgs[i].len, MIB);
        assert_int_equal(rs->msgs[i].total, MIB);
        assert_int_equal(rs->msgs[i].offset, 0);
        assert_int_equal(rs->msgs[i].qos, q);
        it_pattern(data, MIB, (uint32_t)q + 1);
        assert_true(memcmp(rs->msgs[i].payload, data, MIB) == 0);
    }
    it_unlock(rs);
    free(data);
}

static void one_mib_payload_in_pieces_caller_mode(void **state)
{
    itest *t = *state;
    it_rec *rs, *rp;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *sub, *pub;
    uint8_t *data = malloc(MIB), *joined = malloc(MIB);
    size_t i, at = 0;
    assert_non_null(data);
    assert_non_null(joined);

    it_config(t, &cfg, uri, "pieces-sub");
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.message_pieces = true;
    cfg.rx_buffer_size = 8192;
    sub = connected(t, "pieces-sub", &cfg, &rs);
    assert_true(mqttc_client_subscribe(sub, "pieces/t", 1) > 0);
    assert_true(it_wait_count(rs, sub, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    pub = connected(t, "pieces-pub", NULL, &rp);
    it_pattern(data, MIB, 77);
    assert_true(mqttc_client_publish(pub, "pieces/t", data, MIB, 1, false) > 0);
    assert_true(mqttc_client_publish(pub, "pieces/t", "tail", 4, 1, false) > 0);

    /* the pieces of the big one, then the small one whole */
    assert_true(wait_topic(rs, sub, "pieces/t", 2));
    for (;;) {
        bool done;
        it_lock(rs);
        done = rs->nmsgs > 0 && rs->msgs[rs->nmsgs - 1].len == 4 &&
               rs->msgs[rs->nmsgs - 1].total == 4;
        it_unlock(rs);
        if (done) {
            break;
        }
        assert_true(it_wait_count(rs, sub, MQTTC_CLIENT_EV_MESSAGE,
                                  it_count(rs, MQTTC_CLIENT_EV_MESSAGE) + 1, T));
    }
    it_lock(rs);
    print_message("1 MiB arrived in %zu pieces (rx buffer 8 KiB)\n", rs->nmsgs - 1);
    assert_true(rs->nmsgs > 2);
    for (i = 0; i + 1 < rs->nmsgs; i++) {
        const it_msg *m = &rs->msgs[i];
        assert_string_equal(m->topic, "pieces/t");
        assert_int_equal(m->total, MIB);
        assert_int_equal(m->offset, at);
        assert_true(m->len > 0 && at + m->len <= MIB);
        assert_int_equal(m->qos, 1);
        memcpy(joined + at, m->payload, m->len);
        at += m->len;
    }
    assert_int_equal(at, MIB);
    assert_true(memcmp(joined, data, MIB) == 0);
    assert_int_equal(rs->msgs[rs->nmsgs - 1].offset, 0);
    assert_memory_equal(rs->msgs[rs->nmsgs - 1].payload, "tail", 4);
    it_unlock(rs);
    free(data);
    free(joined);
}

/* ---- many filters -------------------------------------------------------- */

static void hundred_filters_in_one_subscribe(void **state)
{
    enum { N = 100 };
    itest *t = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = connected(t, "many-sub", NULL, &rs);
    mqttc_client *pub = connected(t, "many-pub", NULL, &rp);
    static char names[N][16];
    mqttc_topic_qos items[N];
    unsigned seen[N];
    int i, id;
    size_t j;

    for (i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "many/%03d", i);
        items[i].filter = names[i];
        items[i].qos = i % 3;
    }
    id = mqttc_client_subscribe_many(sub, items, N);
    assert_true(id > 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    it_lock(rs);
    assert_int_equal(rs->sub_msg_id, id);
    assert_int_equal(rs->sub_count, N);
    for (i = 0; i < N; i++) {
        assert_int_equal(rs->granted[i], i % 3);
    }
    it_unlock(rs);
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_SUBSCRIBED), 1);

    for (i = 0; i < N; i++) {
        assert_true(mqttc_client_publish(pub, names[i], names[i], strlen(names[i]), 1, false) > 0);
    }
    if (!it_wait_count(rs, NULL, MQTTC_CLIENT_EV_MESSAGE, N, T)) {
        fail_msg("%zu of %d messages arrived", it_count(rs, MQTTC_CLIENT_EV_MESSAGE), N);
    }
    memset(seen, 0, sizeof seen);
    it_lock(rs);
    for (j = 0; j < rs->nmsgs; j++) {
        int k = atoi(rs->msgs[j].topic + 5);
        assert_true(k >= 0 && k < N);
        seen[k]++;
        assert_int_equal(rs->msgs[j].qos, k % 3 == 0 ? 0 : 1);
        assert_int_equal(rs->msgs[j].len, strlen(names[k]));
        assert_memory_equal(rs->msgs[j].payload, names[k], rs->msgs[j].len);
    }
    it_unlock(rs);
    for (i = 0; i < N; i++) {
        assert_int_equal(seen[i], 1);
    }
}

static void unsubscribe_stops_delivery(void **state)
{
    itest *t = *state;
    it_rec *rs;
    mqttc_client *c = connected(t, "unsub", NULL, &rs);
    int id;

    subscribe_wait(c, rs, "un/t", 1);
    subscribe_wait(c, rs, "un/marker", 1);
    assert_true(mqttc_client_publish(c, "un/t", "1", 1, 1, false) > 0);
    assert_true(wait_topic(rs, NULL, "un/t", 1));
    id = mqttc_client_unsubscribe(c, "un/t");
    assert_true(id > 0);
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_UNSUBSCRIBED, 1, T));
    assert_int_equal(rs->unsub_msg_id, id);
    assert_true(mqttc_client_publish(c, "un/t", "2", 1, 1, false) > 0);
    assert_true(mqttc_client_publish(c, "un/marker", "m", 1, 1, false) > 0);
    assert_true(wait_topic(rs, NULL, "un/marker", 1));
    assert_int_equal(it_count_topic(rs, "un/t"), 1);
}

/* ---- keepalive ----------------------------------------------------------- */

static bool session_ended(it_rec *r, void *arg)
{
    (void)arg;
    return r->count[MQTTC_CLIENT_EV_DISCONNECTED] > 0 || r->count[MQTTC_CLIENT_EV_ERROR] > 0;
}

static void keepalive_keeps_idle_connection(void **state)
{
    itest *t = *state;
    it_rec *r;
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *c;
    size_t pongs;

    it_config(t, &cfg, uri, "idle");
    cfg.keepalive = 2;
    c = connected(t, "idle", &cfg, &r);
    /* idle for 7 s: the session must not end */
    assert_false(it_wait(r, NULL, session_ended, NULL, 7000));
    pongs = it_count(r, MQTTC_CLIENT_EV_PONG);
    print_message("keepalive 2 s, idle 7 s: %zu PONG events\n", pongs);
    assert_true(pongs >= 2);
    assert_true(mqttc_client_ready(c));
    assert_false(broker_log_contains(&t->b, "idle has exceeded timeout"));
    /* and the connection still carries messages */
    subscribe_wait(c, r, "idle/t", 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(qos_downgraded_to_subscription, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(published_event_for_every_message, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(retained_message_reaches_new_subscriber, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(will_published_when_connection_dies, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(will_published_on_keepalive_expiry_caller_mode,
                                        setup_broker, teardown),
        cmocka_unit_test_setup_teardown(no_will_after_clean_disconnect, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(no_will_after_disconnect_while_receiving, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(no_will_after_destroy_while_receiving, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(one_mib_payload_whole, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(one_mib_payload_in_pieces_caller_mode, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(hundred_filters_in_one_subscribe, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(unsubscribe_stops_delivery, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(keepalive_keeps_idle_connection, setup_broker, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
