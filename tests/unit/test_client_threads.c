/* Integration: the client under threads, against a real mosquitto. Several
 * threads publishing into one client while it receives; callbacks that call
 * back into the client; mqttc_client_destroy() from the client's own
 * callback (thread and caller-driven modes) and from another thread while
 * messages flow and while a callback is running. Meant to be run under
 * ThreadSanitizer too (MQTTC_TSAN=ON). */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define T IT_TIMEOUT_MS

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

/* A mutex + condvar protected flag set, shared with hooks; on the heap. */
typedef struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
} shared;

static void shared_init(shared *s)
{
    pthread_condattr_t ca;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void shared_destroy(shared *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

/* Wait on `s` until pred(arg) holds (checked under the lock), bounded. */
static bool shared_wait(shared *s, bool (*pred)(void *), void *arg, int timeout_ms)
{
    struct timespec ts;
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    bool ok;
    ts.tv_sec = (time_t)(deadline / 1000u);
    ts.tv_nsec = (long)(deadline % 1000u) * 1000000L;
    pthread_mutex_lock(&s->mu);
    while (!(ok = pred(arg))) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
            ok = pred(arg);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* ---- four threads publishing into one client ------------------------------ */

#define PUB_THREADS 4
#define PER_THREAD 2000

typedef struct fan {
    shared sh;
    mqttc_client *c;
    pthread_barrier_t start;
    uint8_t recv[PUB_THREADS][PER_THREAD];
    size_t received, dups, bad;
    int fail_rc[PUB_THREADS]; /* first failed publish per thread */
    size_t published_ok[PUB_THREADS];
    int ids[PUB_THREADS][PER_THREAD];
} fan;

static void fan_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    fan *f = user;
    char buf[16];
    int k, seq;
    (void)c;
    if (ev->type != MQTTC_CLIENT_EV_MESSAGE) {
        return;
    }
    pthread_mutex_lock(&f->sh.mu);
    if (ev->u.message.topic_len == 4 && memcmp(ev->u.message.topic, "th/", 3) == 0 &&
        ev->u.message.payload_len < sizeof buf) {
        k = ev->u.message.topic[3] - '0';
        memcpy(buf, ev->u.message.payload, ev->u.message.payload_len);
        buf[ev->u.message.payload_len] = '\0';
        seq = atoi(buf);
        if (k >= 0 && k < PUB_THREADS && seq >= 0 && seq < PER_THREAD) {
            f->received++;
            if (f->recv[k][seq]++ > 0) {
                f->dups++;
            }
        } else {
            f->bad++;
        }
    } else {
        f->bad++;
    }
    pthread_cond_broadcast(&f->sh.cv);
    pthread_mutex_unlock(&f->sh.mu);
}

struct fan_arg {
    fan *f;
    int k;
};

static void *fan_publisher(void *p)
{
    struct fan_arg *a = p;
    fan *f = a->f;
    char topic[8];
    int i;
    snprintf(topic, sizeof topic, "th/%d", a->k);
    pthread_barrier_wait(&f->start);
    for (i = 0; i < PER_THREAD; i++) {
        char payload[16];
        int id;
        snprintf(payload, sizeof payload, "%d", i);
        id = mqttc_client_publish(f->c, topic, payload, strlen(payload), 1, false);
        if (id <= 0) {
            pthread_mutex_lock(&f->sh.mu);
            f->fail_rc[a->k] = id;
            pthread_mutex_unlock(&f->sh.mu);
            break;
        }
        f->ids[a->k][i] = id; /* only this thread writes its row */
        f->published_ok[a->k]++;
    }
    return NULL;
}

static bool fan_all_received(void *arg)
{
    const fan *f = arg;
    return f->received >= PUB_THREADS * PER_THREAD;
}

static void four_threads_publish_while_receiving(void **state)
{
    itest *t = *state;
    fan *f = calloc(1, sizeof *f);
    struct fan_arg args[PUB_THREADS];
    pthread_t th[PUB_THREADS];
    mqttc_client_config cfg;
    char uri[64];
    it_rec *r;
    size_t i, published, polls = 0;
    bool all;
    int k;
    uint8_t *seen_ids;

    assert_non_null(f);
    shared_init(&f->sh);
    assert_int_equal(pthread_barrier_init(&f->start, NULL, PUB_THREADS + 1), 0);
    it_config(t, &cfg, uri, "fan");
    cfg.queue_max_msgs = PUB_THREADS * PER_THREAD + 10;
    assert_int_equal(it_client(t, &cfg, fan_on_event, f, &f->c, &r), 0);
    r->keep_messages = false;
    assert_int_equal(mqttc_client_connect(f->c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(mqttc_client_subscribe(f->c, "th/+", 1) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));

    for (k = 0; k < PUB_THREADS; k++) {
        args[k].f = f;
        args[k].k = k;
        assert_int_equal(pthread_create(&th[k], NULL, fan_publisher, &args[k]), 0);
    }
    pthread_barrier_wait(&f->start);
    /* meanwhile, this thread reads the client's state as fast as it can */
    while (polls < 20000) {
        (void)mqttc_client_queued(f->c);
        (void)mqttc_client_ready(f->c);
        (void)mqttc_client_state_get(f->c);
        polls++;
    }
    for (k = 0; k < PUB_THREADS; k++) {
        pthread_join(th[k], NULL);
    }
    all = shared_wait(&f->sh, fan_all_received, f, 60000);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_PUBLISHED, PUB_THREADS * PER_THREAD, T));

    pthread_mutex_lock(&f->sh.mu);
    print_message("%d threads x %d QoS 1: %zu received, %zu duplicates, %zu bad; "
                  "%zu state polls meanwhile\n",
                  PUB_THREADS, PER_THREAD, f->received, f->dups, f->bad, polls);
    pthread_mutex_unlock(&f->sh.mu);
    for (k = 0; k < PUB_THREADS; k++) {
        if (f->fail_rc[k] != 0) {
            print_error("thread %d: publish failed with %s\n", k, mqttc_errname(f->fail_rc[k]));
        }
        assert_int_equal(f->fail_rc[k], 0);
        assert_int_equal(f->published_ok[k], PER_THREAD);
    }
    assert_true(all);
    assert_int_equal(f->dups, 0);
    assert_int_equal(f->bad, 0);
    for (k = 0; k < PUB_THREADS; k++) {
        for (i = 0; i < PER_THREAD; i++) {
            assert_int_equal(f->recv[k][i], 1);
        }
    }
    /* every id handed out once, and one PUBLISHED for each */
    seen_ids = calloc(65536, 1);
    assert_non_null(seen_ids);
    for (k = 0; k < PUB_THREADS; k++) {
        for (i = 0; i < PER_THREAD; i++) {
            assert_true(f->ids[k][i] > 0 && f->ids[k][i] <= 65535);
            assert_int_equal(seen_ids[f->ids[k][i]]++, 0);
        }
    }
    it_lock(r);
    published = r->npub;
    for (i = 0; i < r->npub; i++) {
        assert_int_equal(seen_ids[r->pub_ids[i]]++, 1);
    }
    it_unlock(r);
    assert_int_equal(published, PUB_THREADS * PER_THREAD);
    assert_int_equal(mqttc_client_queued(f->c), 0);
    free(seen_ids);

    it_destroy(t, f->c); /* before the hook's data goes */
    pthread_barrier_destroy(&f->start);
    shared_destroy(&f->sh);
    free(f);
}

/* ---- callbacks calling into the client ------------------------------------ */

typedef struct chain {
    shared sh;
    int step; /* 0 .. 6 */
    int rc[8];
    size_t a_msgs, b_msgs;
    bool done;
    int subscribed_seen;
    uint32_t queued_in_cb;
    bool ready_in_cb;
} chain;

/* Each event triggers the next call from inside the callback:
 * CONNECTED -> subscribe a; SUBSCRIBED(a) -> publish a "1"; MESSAGE a ->
 * unsubscribe a; UNSUBSCRIBED -> publish a "2" + subscribe b;
 * SUBSCRIBED(b) -> publish b QoS 2; MESSAGE b -> done. */
static void chain_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    chain *ch = user;
    int rc;
    pthread_mutex_lock(&ch->sh.mu);
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        pthread_mutex_unlock(&ch->sh.mu);
        rc = mqttc_client_subscribe(c, "cb/a", 1);
        pthread_mutex_lock(&ch->sh.mu);
        ch->rc[0] = rc;
        ch->step = 1;
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        ch->subscribed_seen++;
        if (ch->subscribed_seen == 1) {
            pthread_mutex_unlock(&ch->sh.mu);
            rc = mqttc_client_publish(c, "cb/a", "1", 1, 1, false);
            pthread_mutex_lock(&ch->sh.mu);
            ch->rc[1] = rc + 1; /* id > 0 -> > 1 */
            ch->step = 2;
        } else {
            pthread_mutex_unlock(&ch->sh.mu);
            rc = mqttc_client_publish(c, "cb/b", "3", 1, 2, false);
            pthread_mutex_lock(&ch->sh.mu);
            ch->rc[5] = rc;
            ch->step = 5;
        }
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        if (ev->u.message.topic_len == 4 && memcmp(ev->u.message.topic, "cb/a", 4) == 0) {
            ch->a_msgs++;
            if (ch->a_msgs == 1) {
                pthread_mutex_unlock(&ch->sh.mu);
                rc = mqttc_client_unsubscribe(c, "cb/a");
                pthread_mutex_lock(&ch->sh.mu);
                ch->rc[2] = rc;
                ch->step = 3;
            }
        } else {
            uint32_t q;
            bool ready;
            ch->b_msgs++;
            pthread_mutex_unlock(&ch->sh.mu);
            q = mqttc_client_queued(c);
            ready = mqttc_client_ready(c);
            (void)mqttc_client_state_get(c);
            (void)mqttc_client_want(c);
            (void)mqttc_client_next_timeout(c);
            pthread_mutex_lock(&ch->sh.mu);
            ch->queued_in_cb = q;
            ch->ready_in_cb = ready;
            ch->step = 6;
            ch->done = true;
        }
        break;
    case MQTTC_CLIENT_EV_UNSUBSCRIBED:
        pthread_mutex_unlock(&ch->sh.mu);
        rc = mqttc_client_publish(c, "cb/a", "2", 1, 1, false); /* nobody listens now */
        pthread_mutex_lock(&ch->sh.mu);
        ch->rc[3] = rc;
        pthread_mutex_unlock(&ch->sh.mu);
        rc = mqttc_client_subscribe(c, "cb/b", 2);
        pthread_mutex_lock(&ch->sh.mu);
        ch->rc[4] = rc;
        ch->step = 4;
        break;
    default:
        break;
    }
    pthread_cond_broadcast(&ch->sh.cv);
    pthread_mutex_unlock(&ch->sh.mu);
}

static bool chain_done(void *arg)
{
    return ((chain *)arg)->done;
}

static void run_chain(itest *t, mqttc_run_mode mode, const char *id)
{
    chain *ch = calloc(1, sizeof *ch);
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *c;
    it_rec *r;
    bool done;
    int i;
    assert_non_null(ch);
    shared_init(&ch->sh);
    it_config(t, &cfg, uri, id);
    cfg.run_mode = mode;
    assert_int_equal(it_client(t, &cfg, chain_on_event, ch, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (mode == MQTTC_RUN_THREAD) {
        done = shared_wait(&ch->sh, chain_done, ch, T);
    } else {
        uint64_t deadline = broker_now_ms() + T;
        for (;;) {
            pthread_mutex_lock(&ch->sh.mu);
            done = ch->done;
            pthread_mutex_unlock(&ch->sh.mu);
            if (done || broker_now_ms() >= deadline) {
                break;
            }
            mqttc_client_loop(c, 20);
        }
    }
    pthread_mutex_lock(&ch->sh.mu);
    print_message("%s: chain reached step %d of 6\n", id, ch->step);
    pthread_mutex_unlock(&ch->sh.mu);
    it_destroy(t, c); /* no more callbacks into `ch` */
    assert_true(done);
    for (i = 0; i < 6; i++) {
        if (ch->rc[i] <= 0) {
            print_error("call %d from the callback returned %d (%s)\n", i, ch->rc[i],
                        mqttc_errname(ch->rc[i]));
        }
        assert_true(ch->rc[i] > 0);
    }
    assert_int_equal(ch->a_msgs, 1); /* "2" was published after UNSUBACK */
    assert_int_equal(ch->b_msgs, 1);
    assert_true(ch->ready_in_cb);
    shared_destroy(&ch->sh);
    free(ch);
}

static void callbacks_call_back_into_client(void **state)
{
    run_chain(*state, MQTTC_RUN_THREAD, "chain-thread");
}

static void callbacks_call_back_into_client_caller_mode(void **state)
{
    run_chain(*state, MQTTC_RUN_CALLER, "chain-caller");
}

/* ---- destroy from the client's own callback ------------------------------- */

typedef struct selfdestroy {
    shared sh;
    size_t messages, after_destroy;
    size_t destroy_at;
    bool destroyed;
} selfdestroy;

static void self_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    selfdestroy *sd = user;
    bool now = false;
    pthread_mutex_lock(&sd->sh.mu);
    if (sd->destroyed) {
        sd->after_destroy++; /* must never happen */
    } else if (ev->type == MQTTC_CLIENT_EV_MESSAGE && ++sd->messages == sd->destroy_at) {
        now = true;
    }
    pthread_mutex_unlock(&sd->sh.mu);
    if (now) {
        mqttc_client_destroy(c); /* freed when this callback returns */
        pthread_mutex_lock(&sd->sh.mu);
        sd->destroyed = true;
        pthread_cond_broadcast(&sd->sh.cv);
        pthread_mutex_unlock(&sd->sh.mu);
    }
}

static bool self_destroyed(void *arg)
{
    return ((selfdestroy *)arg)->destroyed;
}

/* A publisher streams QoS 1 into `victim`, which destroys itself from
 * inside its callback at message `at`. */
static void destroy_from_own_callback(itest *t, mqttc_run_mode mode, const char *id)
{
    selfdestroy *sd = calloc(1, sizeof *sd);
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *victim, *pub;
    it_rec *rv, *rp;
    int i;
    bool ok, clean = false;
    assert_non_null(sd);
    shared_init(&sd->sh);
    sd->destroy_at = 50;

    it_config(t, &cfg, uri, id);
    cfg.run_mode = mode;
    assert_int_equal(it_client(t, &cfg, self_on_event, sd, &victim, &rv), 0);
    assert_int_equal(mqttc_client_connect(victim), 0);
    assert_true(it_wait_count(rv, mode == MQTTC_RUN_CALLER ? victim : NULL,
                              MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(mqttc_client_subscribe(victim, "sd/t", 1) > 0);
    assert_true(it_wait_count(rv, mode == MQTTC_RUN_CALLER ? victim : NULL,
                              MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    /* the victim's own messages in flight are abandoned by the destroy */
    for (i = 0; i < 100; i++) {
        assert_true(mqttc_client_publish(victim, "sd/own", "x", 1, 1, false) > 0);
    }

    it_config(t, &cfg, uri, "sd-pub");
    cfg.client_id = "sd-pub";
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &pub, &rp), 0);
    assert_int_equal(mqttc_client_connect(pub), 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    for (i = 0; i < 500; i++) {
        assert_true(mqttc_client_publish(pub, "sd/t", "m", 1, 1, false) > 0);
    }

    it_forget(t, victim); /* it frees itself */
    if (mode == MQTTC_RUN_THREAD) {
        ok = shared_wait(&sd->sh, self_destroyed, sd, T);
    } else {
        /* drive it until the callback destroyed it; never touch it after */
        uint64_t deadline = broker_now_ms() + T;
        for (;;) {
            pthread_mutex_lock(&sd->sh.mu);
            ok = sd->destroyed;
            pthread_mutex_unlock(&sd->sh.mu);
            if (ok || broker_now_ms() >= deadline) {
                break;
            }
            mqttc_client_loop(victim, 20);
        }
    }
    if (!ok) {
        it_destroy(t, victim);
        fail_msg("the client did not reach message %zu", sd->destroy_at);
    }
    /* The freeing client closes its connection on its way out (with a
     * DISCONNECT if it can write one at once): when the broker has seen the
     * connection go, the client's thread has left its loop. */
    assert_true(broker_wait_client_gone(&t->b, id, T, &clean));
    print_message("%s: connection closed %s\n", id, clean ? "with DISCONNECT" : "without DISCONNECT");
    pthread_mutex_lock(&sd->sh.mu);
    assert_int_equal(sd->messages, sd->destroy_at);
    assert_int_equal(sd->after_destroy, 0);
    pthread_mutex_unlock(&sd->sh.mu);
    /* the rest of the stream keeps flowing for the other client */
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 500, T));
    it_destroy(t, pub);
    shared_destroy(&sd->sh);
    free(sd);
}

static void destroy_from_own_callback_thread_mode(void **state)
{
    destroy_from_own_callback(*state, MQTTC_RUN_THREAD, "sd-thread");
}

static void destroy_from_own_callback_caller_mode(void **state)
{
    destroy_from_own_callback(*state, MQTTC_RUN_CALLER, "sd-caller");
}

/* ---- destroy from another thread while messages flow ----------------------- */

typedef struct flow {
    shared sh;
    size_t messages;
    size_t hold_at;        /* the callback for this message waits for the destroy */
    bool holding, destroy_called, destroy_returned;
    size_t after_destroy;  /* callbacks after destroy returned: must be 0 */
    size_t hold_timeouts;
} flow;

static void flow_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    flow *fl = user;
    (void)c;
    pthread_mutex_lock(&fl->sh.mu);
    if (fl->destroy_returned) {
        fl->after_destroy++;
    }
    if (ev->type == MQTTC_CLIENT_EV_MESSAGE && ++fl->messages == fl->hold_at) {
        /* stay inside this callback until the destroy has been called */
        struct timespec ts;
        uint64_t deadline = broker_now_ms() + 5000;
        ts.tv_sec = (time_t)(deadline / 1000u);
        ts.tv_nsec = (long)(deadline % 1000u) * 1000000L;
        fl->holding = true;
        pthread_cond_broadcast(&fl->sh.cv);
        while (!fl->destroy_called) {
            if (pthread_cond_timedwait(&fl->sh.cv, &fl->sh.mu, &ts) == ETIMEDOUT) {
                fl->hold_timeouts++;
                break;
            }
        }
    }
    pthread_mutex_unlock(&fl->sh.mu);
}

static bool flow_holding(void *arg)
{
    return ((flow *)arg)->holding;
}

struct destroy_job {
    mqttc_client *c;
};

static void destroy_job_run(void *p)
{
    struct destroy_job *j = p;
    mqttc_client_destroy(j->c);
}

static void destroy_from_other_thread_while_flowing(void **state)
{
    itest *t = *state;
    flow *fl = calloc(1, sizeof *fl);
    struct destroy_job *job = calloc(1, sizeof *job);
    mqttc_client_config cfg;
    char uri[64];
    mqttc_client *victim, *pub;
    it_rec *rv, *rp;
    int i;
    bool returned;
    assert_non_null(fl);
    assert_non_null(job);
    shared_init(&fl->sh);
    fl->hold_at = 300;

    it_config(t, &cfg, uri, "flow-victim");
    cfg.queue_max_msgs = 5000;
    assert_int_equal(it_client(t, &cfg, flow_on_event, fl, &victim, &rv), 0);
    rv->keep_messages = false;
    assert_int_equal(mqttc_client_connect(victim), 0);
    assert_true(it_wait_count(rv, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(mqttc_client_subscribe(victim, "flow/#", 1) > 0);
    assert_true(it_wait_count(rv, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));

    it_config(t, &cfg, uri, "flow-pub");
    cfg.queue_max_msgs = 5000;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &pub, &rp), 0);
    rp->keep_messages = false;
    assert_int_equal(mqttc_client_connect(pub), 0);
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    for (i = 0; i < 3000; i++) {
        assert_true(mqttc_client_publish(pub, "flow/in", "m", 1, 1, false) > 0);
        if (i < 1000) { /* and the victim's own traffic, in flight when it goes */
            assert_true(mqttc_client_publish(victim, "flow/own", "o", 1, i % 3, false) >= 0);
        }
    }

    /* the victim's thread is inside a callback when destroy is called */
    assert_true(shared_wait(&fl->sh, flow_holding, fl, T));
    it_forget(t, victim);
    job->c = victim;
    pthread_mutex_lock(&fl->sh.mu);
    fl->destroy_called = true; /* the callback may return from here on */
    pthread_cond_broadcast(&fl->sh.cv);
    pthread_mutex_unlock(&fl->sh.mu);
    returned = it_run_bounded(destroy_job_run, job, 20000);
    if (!returned) {
        fail_msg("mqttc_client_destroy() from another thread did not return in 20 s (deadlock)");
    }
    pthread_mutex_lock(&fl->sh.mu);
    fl->destroy_returned = true;
    print_message("destroyed after %zu messages while they flowed\n", fl->messages);
    assert_int_equal(fl->hold_timeouts, 0);
    pthread_mutex_unlock(&fl->sh.mu);
    assert_true(broker_wait_client_gone(&t->b, "flow-victim", T, NULL));

    /* the publisher's stream still completes (the broker queues or drops
     * for the gone subscriber; either way every PUBLISH is acknowledged) */
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3000, 30000));
    it_destroy(t, pub);
    pthread_mutex_lock(&fl->sh.mu);
    assert_int_equal(fl->after_destroy, 0);
    pthread_mutex_unlock(&fl->sh.mu);
    free(job);
    shared_destroy(&fl->sh);
    free(fl);
}

/* Destroy from another thread with no callback running, many times in a
 * row, at random points of a connection's life (connecting, handshake,
 * streaming). */
static void destroy_at_any_moment(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64], id[32];
    mqttc_client *c;
    int round, i;
    for (round = 0; round < 30; round++) {
        snprintf(id, sizeof id, "any-%d", round);
        it_config(t, &cfg, uri, id);
        cfg.keepalive = 1;
        assert_int_equal(mqttc_client_create(&cfg, &c), 0);
        if (round % 3 != 0) {
            assert_int_equal(mqttc_client_connect(c), 0);
        }
        for (i = 0; i < round * 10; i++) {
            assert_true(mqttc_client_publish(c, "any/t", "x", 1, i % 3, false) >= 0);
        }
        if (round % 2 == 0) {
            assert_true(mqttc_client_subscribe(c, "any/#", 1) > 0);
        }
        mqttc_client_destroy(c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(four_threads_publish_while_receiving, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(callbacks_call_back_into_client, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(callbacks_call_back_into_client_caller_mode, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(destroy_from_own_callback_thread_mode, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(destroy_from_own_callback_caller_mode, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(destroy_from_other_thread_while_flowing, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(destroy_at_any_moment, setup_broker, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
