/* Integration: the broker goes away in the middle of a stream of 10,000
 * QoS 1 and 10,000 QoS 2 messages and comes back on the same port, with the
 * publisher and a persistent subscriber reconnecting on their own
 * (auto_reconnect, 100 ms).
 *
 * Two variants, because they can promise different things:
 *
 * - SIGTERM (a clean restart): mosquitto saves its database, with the
 *   subscriber's queue and both sides' in-flight QoS 2 state, so the
 *   promise is end to end: every QoS 1 message arrives at least once and
 *   every QoS 2 message exactly once.
 *   Except for one mosquitto 2.0.11 defect, which the test identifies in
 *   the broker's log rather than ignores: after a clean restart it sometimes
 *   re-sends, as a new PUBLISH (DUP=1, same packet id), a QoS 2 message
 *   whose PUBREL it had already sent before stopping (MQTT-4.3.3 forbids
 *   re-sending the PUBLISH after PUBREL). The client had answered that
 *   PUBREL and forgotten the id, as the protocol says, so it can only take
 *   the PUBLISH for a new message and deliver it again. Seen in about one
 *   run in five under load; for example, in the log: "Sending PUBLISH to
 *   rs-sub (d0, q2, r0, m2205 ...", "Received PUBREC from rs-sub (Mid:
 *   2205)", "Sending PUBREL to rs-sub (m2205)", terminating, running,
 *   "Sending PUBLISH to rs-sub (d1, q2, r0, m2205 ...". This variant runs
 *   the broker with its full log, and a QoS 2 duplicate fails the test
 *   unless the log shows exactly that sequence for its packet id.
 *
 * - SIGKILL (a crash): mosquitto saves only at its autosave interval or at a
 *   clean exit, so it forgets whatever it acknowledged after the last save
 *   (here: the save at the clean restart done before the stream starts, which
 *   holds the subscriber's subscription and nothing else). Messages it had
 *   PUBACKed/PUBCOMPed and not yet delivered are lost by the broker, not by
 *   the client. The assertions are about what the client controls:
 *     . the publisher completes every one of the 20,000 messages (one
 *       PUBLISHED each, nothing dropped, nothing left queued);
 *     . every QoS 1 message for which no PUBLISHED event had arrived before
 *       the publisher saw the connection drop is re-sent, and arrives;
 *     . no QoS 2 message arrives twice (the client never re-sends a
 *       PUBLISH after PUBREC, and drops repeated deliveries).
 *   QoS 2 messages whose PUBREC had arrived before the crash are completed
 *   with PUBREL; a broker that forgot them answers PUBCOMP without ever
 *   delivering them. Those losses, and any QoS 2 message a subscriber's stale
 *   packet id made the client take for a repeat, are counted and printed,
 *   not asserted.
 *
 * Each prints its counts: sent, completed before the outage, received,
 * duplicates and missing, per QoS. */
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

#define NSEQ 10000                 /* per QoS */
#define KILL_AFTER_RECEIVED 3000   /* messages at the subscriber when the broker goes */
#define MAX_NOTED_ERRORS 5
#define MAX_DUP_NOTES 10
#define STREAM_TIMEOUT_MS 60000 
#define MARKER_TIMEOUT_MS 20000
#define T IT_TIMEOUT_MS

/* Everything the two hooks record; on the heap, shared with the clients' threads. */
typedef struct stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* publisher: msg id -> (qos, seq) while in flight */
    uint8_t id_qos[65536];
    uint16_t id_seq[65536];
    uint32_t done[3][NSEQ];         /* PUBLISHED events per message */
    uint32_t done_before[3][NSEQ];  /* ... up to the DISCONNECTED after the outage */
    bool outage, snapshot_taken;
    size_t published, unknown_ids, dropped;
    size_t pub_disconnects;

    /* subscriber */
    uint32_t recv[3][NSEQ];
    size_t received, dups[3], bad, qos_mismatch, dup_flagged;
    bool end_marker;
    int marker_id;
    /* for explaining duplicates: the first delivery of each message */
    uint16_t first_id[3][NSEQ];
    uint8_t first_conn[3][NSEQ];
    bool first_dupflag[3][NSEQ];
    unsigned sub_conn;
    char dup_notes[MAX_DUP_NOTES][128];
    size_t ndup_notes;
    uint16_t q2_dup_ids[4096]; /* packet ids of QoS 2 second deliveries */
    size_t nq2_dup_ids;
} stream;

static void stream_lock(stream *s)
{
    pthread_mutex_lock(&s->mu);
}

static void stream_unlock(stream *s)
{
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static stream *stream_new(void)
{
    stream *s = calloc(1, sizeof *s);
    pthread_condattr_t ca;
    if (s == NULL) {
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

static void stream_free(stream *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void on_pub_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    stream *s = user;
    (void)c;
    stream_lock(s);
    if (ev->type == MQTTC_CLIENT_EV_PUBLISHED) {
        int id = ev->u.published.msg_id;
        s->published++;
        if (id > 0 && id == s->marker_id) {
            s->marker_id = -1;
        } else if (id <= 0 || id > 65535 || s->id_qos[id] == 0 || s->id_qos[id] != ev->u.published.qos) {
            s->unknown_ids++;
        } else {
            s->done[s->id_qos[id]][s->id_seq[id]]++;
            s->id_qos[id] = 0;
        }
    } else if (ev->type == MQTTC_CLIENT_EV_DISCONNECTED) {
        s->pub_disconnects++;
        if (s->outage && !s->snapshot_taken) {
            memcpy(s->done_before, s->done, sizeof s->done);
            s->snapshot_taken = true;
        }
    } else if (ev->type == MQTTC_CLIENT_EV_DROPPED) {
        s->dropped++;
    }
    stream_unlock(s);
}

static void on_sub_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    stream *s = user;
    char buf[16];
    int q, seq;
    (void)c;
    if (ev->type == MQTTC_CLIENT_EV_CONNECTED) {
        stream_lock(s);
        s->sub_conn++;
        stream_unlock(s);
    }
    if (ev->type != MQTTC_CLIENT_EV_MESSAGE) {
        return;
    }
    stream_lock(s);
    if (ev->u.message.topic_len == 6 && memcmp(ev->u.message.topic, "rs/end", 6) == 0) {
        s->end_marker = true;
    } else if (ev->u.message.topic_len == 5 && memcmp(ev->u.message.topic, "rs/q", 4) == 0 &&
               ev->u.message.payload_len > 0 && ev->u.message.payload_len < sizeof buf) {
        q = ev->u.message.topic[4] - '0';
        memcpy(buf, ev->u.message.payload, ev->u.message.payload_len);
        buf[ev->u.message.payload_len] = '\0';
        seq = atoi(buf);
        if ((q == 1 || q == 2) && seq >= 0 && seq < NSEQ) {
            s->received++;
            if (s->recv[q][seq]++ > 0) {
                s->dups[q]++;
                if (q == 2 && s->nq2_dup_ids < 4096) {
                    s->q2_dup_ids[s->nq2_dup_ids++] = (uint16_t)ev->u.message.msg_id;
                }
                if (s->ndup_notes < MAX_DUP_NOTES) {
                    snprintf(s->dup_notes[s->ndup_notes++], sizeof s->dup_notes[0],
                             "QoS %d #%d: first as id %u dup %d on connection %u, again as id "
                             "%d dup %d on connection %u",
                             q, seq, (unsigned)s->first_id[q][seq], (int)s->first_dupflag[q][seq],
                             (unsigned)s->first_conn[q][seq], ev->u.message.msg_id,
                             (int)ev->u.message.dup, s->sub_conn);
                }
            } else {
                s->first_id[q][seq] = (uint16_t)ev->u.message.msg_id;
                s->first_conn[q][seq] = (uint8_t)s->sub_conn;
                s->first_dupflag[q][seq] = ev->u.message.dup;
            }
            s->qos_mismatch += ev->u.message.qos != q;
            s->dup_flagged += ev->u.message.dup;
        } else {
            s->bad++;
        }
    } else {
        s->bad++;
    }
    stream_unlock(s);
}

typedef bool (*stream_pred)(const stream *s, const void *arg);

static bool stream_wait(stream *s, stream_pred pred, const void *arg, int timeout_ms)
{
    struct timespec ts;
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    bool ok;
    ts.tv_sec = (time_t)(deadline / 1000u);
    ts.tv_nsec = (long)(deadline % 1000u) * 1000000L;
    pthread_mutex_lock(&s->mu);
    while (!(ok = pred(s, arg))) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
            ok = pred(s, arg);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static bool received_at_least(const stream *s, const void *arg)
{
    return s->received >= *(const size_t *)arg;
}

static bool published_at_least(const stream *s, const void *arg)
{
    return s->published >= *(const size_t *)arg;
}

static bool snapshot_taken(const stream *s, const void *arg)
{
    (void)arg;
    return s->snapshot_taken;
}

static bool end_marker_seen(const stream *s, const void *arg)
{
    (void)arg;
    return s->end_marker;
}

/* Every message of `qos` arrived, or (with `only_unacked`) every one the
 * publisher had not seen completed before the outage. */
struct all_arg {
    int qos;
    bool only_unacked;
};

static bool all_required_arrived(const stream *s, const void *arg)
{
    const struct all_arg *a = arg;
    int i;
    for (i = 0; i < NSEQ; i++) {
        if (s->recv[a->qos][i] == 0 && (!a->only_unacked || s->done_before[a->qos][i] == 0)) {
            return false;
        }
    }
    return true;
}

/* Publish seq [from, to) on both QoS, interleaved, recording id -> message. */
static void publish_range(stream *s, mqttc_client *p, int from, int to)
{
    int i, q;
    for (i = from; i < to; i++) {
        for (q = 1; q <= 2; q++) {
            char topic[16], payload[16];
            int id;
            snprintf(topic, sizeof topic, "rs/q%d", q);
            snprintf(payload, sizeof payload, "%d", i);
            pthread_mutex_lock(&s->mu);
            id = mqttc_client_publish(p, topic, payload, strlen(payload), q, false);
            if (id > 0) {
                if (s->id_qos[id] != 0) {
                    s->unknown_ids++; /* an id reused while its message was in flight */
                }
                s->id_qos[id] = (uint8_t)q;
                s->id_seq[id] = (uint16_t)i;
            }
            pthread_mutex_unlock(&s->mu);
            if (id <= 0) {
                fail_msg("publish #%d QoS %d returned %d (%s)", i, q, id, mqttc_errname(id));
            }
        }
    }
}

struct totals {
    size_t unique[3], missing[3], missing_unacked[3], done_before[3];
};

static void count(stream *s, struct totals *o)
{
    int q, i;
    memset(o, 0, sizeof *o);
    pthread_mutex_lock(&s->mu);
    for (q = 1; q <= 2; q++) {
        for (i = 0; i < NSEQ; i++) {
            o->unique[q] += s->recv[q][i] > 0;
            o->done_before[q] += s->done_before[q][i] > 0;
            if (s->recv[q][i] == 0) {
                o->missing[q]++;
                o->missing_unacked[q] += s->done_before[q][i] == 0;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
}

/* Read the whole broker log (NULL on failure; free it). */
static char *read_log(const broker *b)
{
    FILE *f = fopen(b->log, "r");
    char *buf = NULL;
    long size;
    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) != NULL) {
        size_t n = fread(buf, 1, (size_t)size, f);
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

/* The n-th (1-based) occurrence of `needle` in `hay`, or NULL. */
static const char *nth(const char *hay, const char *needle, int n)
{
    const char *p = hay;
    while (p != NULL && n-- > 0) {
        p = strstr(p, needle);
        if (p != NULL && n > 0) {
            p++;
        }
    }
    return p;
}

/* Is the second delivery of QoS 2 packet `id` explained by the mosquitto
 * defect? The broker's life during the stream runs from the 2nd "running"
 * to the 2nd "terminating" (the 1st is the restart before the stream); it
 * must have sent PUBREL for the id there, and PUBLISH with DUP=1 after the
 * 3rd "running". */
static bool broker_resent_after_pubrel(const char *log, unsigned id)
{
    char pubrel[64], publish[64];
    const char *life = nth(log, "running", 2);
    const char *end = nth(log, "terminating", 2);
    const char *after = nth(log, "running", 3);
    const char *p;
    if (life == NULL || end == NULL || after == NULL) {
        return false;
    }
    snprintf(pubrel, sizeof pubrel, "Sending PUBREL to rs-sub (m%u)", id);
    snprintf(publish, sizeof publish, "Sending PUBLISH to rs-sub (d1, q2, r0, m%u,", id);
    p = strstr(life, pubrel);
    return p != NULL && p < end && strstr(after, publish) != NULL;
}

typedef struct fixture {
    itest *t;
    stream *s;
} fixture;

/* A broker for the stream; `full_log`: every packet in mosquitto's log. */
static int setup_with(void **state, bool full_log)
{
    fixture *f = calloc(1, sizeof *f);
    broker_opts o;
    if (f == NULL) {
        return -1;
    }
    broker_opts_init(&o);
    o.quiet_log = !full_log && getenv("MQTTC_TEST_BROKER_LOG") == NULL;
    o.max_inflight = 20;
    f->t = it_new(&o);
    f->s = stream_new();
    *state = f;
    return f->t && f->s ? 0 : -1;
}

static int setup_full_log(void **state)
{
    return setup_with(state, true);
}

static int setup_quiet_log(void **state)
{
    return setup_with(state, false);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f != NULL) {
        it_free(f->t); /* clients first: their hooks use the stream */
        if (f->s != NULL) {
            stream_free(f->s);
        }
        free(f);
    }
    return 0;
}

/* One run: the two clients and what is reported about it. */
typedef struct run {
    mqttc_client *sub, *pub;
    it_rec *rs, *rp;
    uint64_t t0, t_out, t_back, t_done;
    size_t recv_at_outage, pub_at_outage;
    bool marker;
} run;

/* Everything checked at the end, copied out of the locks first so that no
 * assertion fails while a lock the clients' threads need is held. */
typedef struct report {
    stream fin; /* the counters of the stream */
    struct totals tot;
    bool sub_session;
    int err_sub[MAX_NOTED_ERRORS], err_pub[MAX_NOTED_ERRORS], last_err_sub;
    size_t nerr_sub, nerr_pub, nerr_sub_all;
    size_t not_once;     /* publisher messages without exactly one PUBLISHED */
    long first_not_once; /* qos * NSEQ + seq of the first, or -1 */
    size_t q2_explained; /* QoS 2 duplicates the broker's log explains */
    uint32_t queued;
} report;

static mqttc_client *stream_client(fixture *f, const char *id, it_hook hook, it_rec **rec)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    char uri[64];
    it_config(f->t, &cfg, uri, id);
    cfg.clean_session = false;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 100;
    cfg.queue_max_msgs = 2 * NSEQ + 100;
    assert_int_equal(it_client(f->t, &cfg, hook, f->s, &c, rec), 0);
    it_lock(*rec);
    (*rec)->keep_messages = false;
    it_unlock(*rec);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(*rec, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    return c;
}

/* A persistent subscriber, saved by a clean restart before the stream, and
 * the publisher. */
static void start_clients(fixture *f, run *r)
{
    bool present;
    int granted;
    r->sub = stream_client(f, "rs-sub", on_sub_event, &r->rs);
    assert_true(mqttc_client_subscribe(r->sub, "rs/#", 2) > 0);
    assert_true(it_wait_count(r->rs, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    assert_int_equal(broker_restart(&f->t->b), 0);
    assert_true(it_wait_count(r->rs, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    it_lock(r->rs);
    granted = r->rs->granted[0];
    present = r->rs->session_present;
    it_unlock(r->rs);
    assert_int_equal(granted, 2);
    assert_true(present);
    r->pub = stream_client(f, "rs-pub", on_pub_event, &r->rp);
}

static size_t stream_published(stream *s)
{
    size_t n;
    pthread_mutex_lock(&s->mu);
    n = s->published;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Half the stream, the outage when the subscriber has some of it, the
 * other half while the broker is down, the broker back; then wait (bounded)
 * for everything owed. */
static void stream_with_outage(fixture *f, run *r, bool crash)
{
    stream *s = f->s;
    size_t want;
    struct all_arg a1 = {1, crash}, a2 = {2, false};
    int marker_id;

    r->t0 = broker_now_ms();
    publish_range(s, r->pub, 0, NSEQ / 2);
    want = KILL_AFTER_RECEIVED;
    assert_true(stream_wait(s, received_at_least, &want, STREAM_TIMEOUT_MS));
    pthread_mutex_lock(&s->mu);
    s->outage = true;
    pthread_mutex_unlock(&s->mu);
    assert_int_equal(crash ? broker_kill(&f->t->b) : broker_stop(&f->t->b), 0);
    r->t_out = broker_now_ms();
    pthread_mutex_lock(&s->mu);
    r->recv_at_outage = s->received;
    r->pub_at_outage = s->published;
    pthread_mutex_unlock(&s->mu);
    assert_true(stream_wait(s, snapshot_taken, NULL, T));

    publish_range(s, r->pub, NSEQ / 2, NSEQ);
    assert_int_equal(broker_restart(&f->t->b), 0);
    r->t_back = broker_now_ms();

    want = 2 * NSEQ;
    if (!stream_wait(s, published_at_least, &want, STREAM_TIMEOUT_MS)) {
        fail_msg("the publisher completed %zu of %d messages", stream_published(s), 2 * NSEQ);
    }
    /* a marker after everything: once it is in, only re-sends can trail */
    pthread_mutex_lock(&s->mu);
    marker_id = s->marker_id = mqttc_client_publish(r->pub, "rs/end", "end", 3, 1, false);
    pthread_mutex_unlock(&s->mu);
    assert_true(marker_id > 0);
    r->marker = stream_wait(s, end_marker_seen, NULL, MARKER_TIMEOUT_MS);
    want = 2 * NSEQ + 1;
    stream_wait(s, published_at_least, &want, T);
    stream_wait(s, all_required_arrived, &a1, r->marker ? T : 1);
    if (!crash) {
        stream_wait(s, all_required_arrived, &a2, r->marker ? T : 1);
    }
    r->t_done = broker_now_ms();
}

static void copy_errors(it_rec *rec, int *codes, size_t *n, size_t *all, int *last)
{
    size_t i;
    it_lock(rec);
    *n = rec->nerrors < MAX_NOTED_ERRORS ? rec->nerrors : MAX_NOTED_ERRORS;
    for (i = 0; i < *n; i++) {
        codes[i] = rec->errors[i].code;
    }
    if (all != NULL) {
        *all = rec->nerrors;
        *last = rec->nerrors ? rec->errors[(rec->nerrors < IT_MAX_ERRORS ? rec->nerrors
                                                                           : IT_MAX_ERRORS) - 1].code
                             : 0;
    }
    it_unlock(rec);
}

static void take_report(fixture *f, run *r, bool crash, report *rep)
{
    stream *s = f->s;
    size_t i;
    int q;
    memset(rep, 0, sizeof *rep);
    count(s, &rep->tot);
    it_lock(r->rs);
    rep->sub_session = r->rs->session_present;
    it_unlock(r->rs);
    copy_errors(r->rs, rep->err_sub, &rep->nerr_sub, &rep->nerr_sub_all, &rep->last_err_sub);
    copy_errors(r->rp, rep->err_pub, &rep->nerr_pub, NULL, NULL);
    rep->queued = mqttc_client_queued(r->pub);
    pthread_mutex_lock(&s->mu);
    rep->fin = *s;
    rep->first_not_once = -1;
    for (q = 1; q <= 2; q++) {
        for (i = 0; i < NSEQ; i++) {
            if (s->done[q][i] != 1) {
                if (rep->first_not_once < 0) {
                    rep->first_not_once = q * NSEQ + (long)i;
                }
                rep->not_once++;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (!crash && rep->fin.dups[2] > 0) {
        char *log = read_log(&f->t->b);
        for (i = 0; log != NULL && i < rep->fin.nq2_dup_ids; i++) {
            rep->q2_explained += broker_resent_after_pubrel(log, rep->fin.q2_dup_ids[i]);
        }
        free(log);
    }
}

static void print_report(const run *r, const report *rep, bool crash)
{
    const stream *fin = &rep->fin;
    size_t i;
    int q;
    print_message("%s restart: %d messages sent (%d QoS 1 + %d QoS 2) in %llu ms; broker gone "
                  "after %llu ms, back %llu ms later; at the outage %zu completed, %zu received\n",
                  crash ? "SIGKILL" : "SIGTERM", 2 * NSEQ, NSEQ, NSEQ,
                  (unsigned long long)(r->t_done - r->t0), (unsigned long long)(r->t_out - r->t0),
                  (unsigned long long)(r->t_back - r->t_out), r->pub_at_outage, r->recv_at_outage);
    print_message("  publisher: %zu PUBLISHED (%zu QoS 1 + %zu QoS 2 before the disconnect), "
                  "%zu not completed exactly once, %zu unknown ids, %zu dropped, %u queued, "
                  "%zu disconnects, %zu connects\n",
                  fin->published, rep->tot.done_before[1], rep->tot.done_before[2],
                  rep->not_once, fin->unknown_ids, fin->dropped, (unsigned)rep->queued,
                  fin->pub_disconnects, it_count(r->rp, MQTTC_CLIENT_EV_CONNECTED));
    for (q = 1; q <= 2; q++) {
        print_message("  QoS %d: received %zu unique of %d, %zu duplicates, %zu missing "
                      "(%zu of them not completed before the outage)\n",
                      q, rep->tot.unique[q], NSEQ, fin->dups[q], rep->tot.missing[q],
                      rep->tot.missing_unacked[q]);
    }
    if (!crash && fin->dups[2] > 0) {
        print_message("  %zu QoS 2 duplicates, %zu of them re-sent by mosquitto as PUBLISH after "
                      "its PUBREL (broker defect, see the file comment)\n",
                      fin->dups[2], rep->q2_explained);
    }
    print_message("  subscriber: %zu messages, %zu with DUP set, %zu with a wrong QoS, %zu "
                  "malformed, %zu connects (session present after: %d), end marker %s\n",
                  fin->received, fin->dup_flagged, fin->qos_mismatch, fin->bad,
                  it_count(r->rs, MQTTC_CLIENT_EV_CONNECTED), (int)rep->sub_session,
                  r->marker ? "received" : "NOT received");
    for (i = 0; i < fin->ndup_notes; i++) {
        print_message("  duplicate: %s\n", fin->dup_notes[i]);
    }
    for (i = 0; i < rep->nerr_sub; i++) {
        print_message("  subscriber error %zu: %s\n", i, mqttc_errname(rep->err_sub[i]));
    }
    if (rep->nerr_sub_all > rep->nerr_sub) {
        print_message("  subscriber: %zu error events in all; the last: %s\n", rep->nerr_sub_all,
                      mqttc_errname(rep->last_err_sub));
    }
    for (i = 0; i < rep->nerr_pub; i++) {
        print_message("  publisher error %zu: %s\n", i, mqttc_errname(rep->err_pub[i]));
    }
    if (rep->first_not_once >= 0) {
        print_error("QoS %ld message %ld: not completed exactly once\n",
                    rep->first_not_once / NSEQ, rep->first_not_once % NSEQ);
    }
}

static void stream_through_outage(fixture *f, bool crash)
{
    static report rep; /* big: not on the stack */
    run r;
    memset(&r, 0, sizeof r);
    start_clients(f, &r);
    stream_with_outage(f, &r, crash);
    take_report(f, &r, crash, &rep);
    print_report(&r, &rep, crash);

    /* the publisher: every message completed exactly once, none lost */
    assert_int_equal(rep.fin.unknown_ids, 0);
    assert_int_equal(rep.fin.dropped, 0);
    assert_int_equal(rep.fin.published, 2 * NSEQ + 1);
    assert_int_equal(rep.not_once, 0);
    assert_int_equal(rep.queued, 0);
    /* the subscriber */
    assert_int_equal(rep.fin.bad, 0);
    assert_int_equal(rep.fin.qos_mismatch, 0);
    assert_true(r.marker);
    /* QoS 2: never twice, but for the broker's defect */
    assert_int_equal(rep.fin.dups[2] - rep.q2_explained, 0);
    if (crash) {
        assert_int_equal(rep.tot.missing_unacked[1], 0); /* re-sent by the client */
    } else {
        assert_int_equal(rep.tot.missing[1], 0);
        assert_int_equal(rep.tot.missing[2], 0);
    }
}

static void broker_clean_restart_mid_stream(void **state)
{
    stream_through_outage(*state, false);
}

static void broker_crash_mid_stream(void **state)
{
    stream_through_outage(*state, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(broker_clean_restart_mid_stream, setup_full_log, teardown),
        cmocka_unit_test_setup_teardown(broker_crash_mid_stream, setup_quiet_log, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
