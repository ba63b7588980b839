/* The client against a hostile broker: a scripted broker on a loopback socket
 * (fb_net, tests/support/fake_broker.h) accepts the client's connection and
 * sends malformed or out-of-order input, one kind per test case. For each the
 * client must close the connection with the specific reason (the error event
 * and, after CONNACK, the disconnected event carry the exact MQTTC_ERR_*),
 * never crash or hang, keep its unfinished QoS 1/2 messages
 * (mqttc_client_queued() unchanged) and deliver them once it is reconnected
 * (mqttc_client_reconnect()) to a well-behaved script. One test repeats
 * malicious exchanges over many auto-reconnect cycles and checks that the
 * heap in use and the number of open descriptors come back to the same level.
 *
 * Heap accounting: this executable is linked with -Wl,--wrap=malloc,calloc,
 * realloc,free (tests/CMakeLists.txt), so every allocation of the library
 * (linked statically) passes through the __wrap_* functions below, which
 * count live bytes (malloc_usable_size) and remember the largest single
 * request; that works under ASan, TSan and valgrind alike. glibc's
 * mallinfo2() is checked too where glibc's allocator is the one in use. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <valgrind/valgrind.h>

#include "fake_broker.h"
#include "itest.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HOSTILE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HOSTILE_SANITIZER 1
#endif
#endif
#ifndef HOSTILE_SANITIZER
#define HOSTILE_SANITIZER 0
#endif

#define WAIT_MS 10000 /* bound for what should take milliseconds */

/* ---- heap accounting (--wrap) -------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

static atomic_llong heap_live;        /* bytes allocated through the wrappers, not freed */
static atomic_size_t heap_peak_request; /* largest single request */
static atomic_size_t fail_malloc_size;  /* the next malloc() of exactly this size fails */

static void note_request(size_t n)
{
    size_t old = atomic_load(&heap_peak_request);
    while (n > old && !atomic_compare_exchange_weak(&heap_peak_request, &old, n)) {
    }
}

void *__wrap_malloc(size_t n)
{
    void *p;
    size_t f = atomic_load(&fail_malloc_size);
    note_request(n);
    if (f != 0 && n == f && atomic_compare_exchange_strong(&fail_malloc_size, &f, 0)) {
        return NULL;
    }
    p = __real_malloc(n);
    if (p != NULL) {
        atomic_fetch_add(&heap_live, (long long)malloc_usable_size(p));
    }
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p;
    note_request(n * size);
    p = __real_calloc(n, size);
    if (p != NULL) {
        atomic_fetch_add(&heap_live, (long long)malloc_usable_size(p));
    }
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    long long old = p != NULL ? (long long)malloc_usable_size(p) : 0;
    void *q;
    note_request(n);
    q = __real_realloc(p, n);
    if (q != NULL) {
        atomic_fetch_add(&heap_live, (long long)malloc_usable_size(q) - old);
    } else if (n == 0 && p != NULL) {
        atomic_fetch_sub(&heap_live, old); /* glibc: realloc(p, 0) frees p */
    }
    return q;
}

void __wrap_free(void *p)
{
    if (p != NULL) {
        atomic_fetch_sub(&heap_live, (long long)malloc_usable_size(p));
    }
    __real_free(p);
}

/* glibc's own view: bytes in use in every arena plus mmap()ed chunks. Not
 * meaningful under a sanitizer or valgrind, which bring their allocator. */
static long long glibc_in_use(void)
{
#if !HOSTILE_SANITIZER
    if (!RUNNING_ON_VALGRIND) {
        struct mallinfo2 mi = mallinfo2();
        return (long long)(mi.uordblks + mi.hblkhd);
    }
#endif
    return -1;
}

/* ---- fixture ------------------------------------------------------------- */

typedef struct hstate {
    itest *t;
    fb_net net;
    char uri[64];
    mqttc_client *c;
    it_rec *r;
    /* what the scripted broker saw in the session under attack */
    uint16_t id_qos1, id_qos2, id_sub, id_unsub;
} hstate;

static int setup(void **state)
{
    hstate *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return -1;
    }
    s->t = it_new_no_broker();
    if (s->t == NULL || fb_net_listen(&s->net) != 0) {
        it_free(s->t);
        free(s);
        return -1;
    }
    snprintf(s->uri, sizeof s->uri, "mqtt://127.0.0.1:%u", (unsigned)s->net.port);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    hstate *s = *state;
    /* Hang up first: the client then does not linger over a DISCONNECT. */
    fb_net_shutdown(&s->net);
    it_free(s->t);
    free(s);
    atomic_store(&fail_malloc_size, 0);
    return 0;
}

static void config(hstate *s, mqttc_client_config *cfg)
{
    it_config(s->t, cfg, s->uri, "hostile");
    cfg->uri = s->uri;
    cfg->keepalive = 60;
    cfg->connect_timeout_ms = WAIT_MS;
    cfg->auto_reconnect = false;
}

static void make_client(hstate *s, mqttc_client_config *cfg)
{
    assert_code(it_client(s->t, cfg, NULL, NULL, &s->c, &s->r), 0);
}

/* Two messages the attack must not lose: published before connecting, so
 * the client sends them right after CONNACK. */
static void queue_two(hstate *s)
{
    assert_true(mqttc_client_publish(s->c, "keep/1", "one", 3, 1, false) > 0);
    assert_true(mqttc_client_publish(s->c, "keep/2", "two", 3, 2, false) > 0);
    assert_int_equal(mqttc_client_queued(s->c), 2);
}

/* ---- the recorder -------------------------------------------------------- */

static size_t count(hstate *s, mqttc_client_event_type type)
{
    return it_count(s->r, type);
}

struct state_arg {
    mqttc_client *c;
    mqttc_client_state want;
};

static bool state_is(it_rec *r, void *arg)
{
    const struct state_arg *a = arg;
    (void)r;
    return mqttc_client_state_get(a->c) == a->want;
}

static void wait_state(hstate *s, mqttc_client_state want)
{
    struct state_arg a = {s->c, want};
    if (!it_wait(s->r, NULL, state_is, &a, WAIT_MS)) {
        fail_msg("client state %d, expected %d", (int)mqttc_client_state_get(s->c), (int)want);
    }
}

static void wait_count(hstate *s, mqttc_client_event_type type, size_t n)
{
    if (!it_wait_count(s->r, NULL, type, n, WAIT_MS)) {
        fail_msg("expected %zu events of type %d, have %zu", n, (int)type, count(s, type));
    }
}

/* The `nth` (from 0) error event must be `code` of `kind`. */
static void expect_error(hstate *s, size_t nth, int code, mqttc_error_kind kind)
{
    wait_count(s, MQTTC_CLIENT_EV_ERROR, nth + 1);
    it_lock(s->r);
    int got = s->r->errors[nth].code;
    mqttc_error_kind got_kind = s->r->errors[nth].kind;
    it_unlock(s->r);
    assert_code(got, code);
    assert_int_equal(got_kind, kind);
}

/* ---- scripted sessions ---------------------------------------------------- */

/* Accept the client's connection and read its CONNECT. */
static void accept_connect(hstate *s)
{
    if (!fb_net_accept(&s->net, WAIT_MS)) {
        fail_msg("the client did not connect within %d ms", WAIT_MS);
    }
    fb_net_expect(&s->net, MQTTC_CONNECT, WAIT_MS);
}

static void send_connack(hstate *s)
{
    assert_true(fb_net_send_hex(&s->net, "20 02 00 00"));
}

/* After CONNACK: read until the client has sent both queued PUBLISHes and
 * the SUBSCRIBE / UNSUBSCRIBE it was asked for; answer nothing. */
static void read_session_start(hstate *s, bool want_sub, bool want_unsub)
{
    bool q1 = false, q2 = false, sub = !want_sub, unsub = !want_unsub;
    for (int i = 0; i < 16 && !(q1 && q2 && sub && unsub); i++) {
        mqttc_packet p;
        int rc = fb_net_recv(&s->net, &p, WAIT_MS);
        if (rc <= 0) {
            fail_msg("scripted broker: the client stopped sending (%d)", rc);
        }
        if (p.type == MQTTC_PUBLISH && p.u.publish.qos == 1) {
            s->id_qos1 = p.u.publish.packet_id;
            q1 = true;
        } else if (p.type == MQTTC_PUBLISH && p.u.publish.qos == 2) {
            s->id_qos2 = p.u.publish.packet_id;
            q2 = true;
        } else if (p.type == MQTTC_SUBSCRIBE) {
            s->id_sub = p.u.subscribe.packet_id;
            sub = true;
        } else if (p.type == MQTTC_UNSUBSCRIBE) {
            s->id_unsub = p.u.unsubscribe.packet_id;
            unsub = true;
        } else {
            fail_msg("scripted broker: unexpected packet type %u", p.type);
        }
    }
    assert_true(q1 && q2 && sub && unsub);
}

static bool session_done(it_rec *r, void *arg)
{
    const size_t *want = arg;
    return r->npub >= want[0] && r->count[MQTTC_CLIENT_EV_SUBSCRIBED] >= want[1] &&
           r->count[MQTTC_CLIENT_EV_UNSUBSCRIBED] >= want[2];
}

/* A well-behaved broker on the current connection (CONNECT already read
 * unless `read_connect`): CONNACK, then every PUBLISH, PUBREL, SUBSCRIBE,
 * UNSUBSCRIBE and PINGREQ answered as the protocol says, until the client
 * reports `published` more completions and the given numbers of SUBACK and
 * UNSUBACK, and has nothing left queued. */
typedef struct totals {
    size_t v[3]; /* PUBLISHED, SUBSCRIBED, UNSUBSCRIBED so far */
} totals;

static totals totals_now(hstate *s)
{
    totals t;
    it_lock(s->r);
    t.v[0] = s->r->npub;
    t.v[1] = s->r->count[MQTTC_CLIENT_EV_SUBSCRIBED];
    t.v[2] = s->r->count[MQTTC_CLIENT_EV_UNSUBSCRIBED];
    it_unlock(s->r);
    return t;
}

static void serve_well_from(hstate *s, bool connack, totals base, size_t published, size_t subs,
                            size_t unsubs)
{
    uint8_t buf[64];
    size_t want[3] = {base.v[0] + published, base.v[1] + subs, base.v[2] + unsubs};
    if (connack) {
        send_connack(s);
    }
    uint64_t deadline = broker_now_ms() + WAIT_MS;
    while (!(it_wait(s->r, NULL, session_done, want, 0) && mqttc_client_queued(s->c) == 0)) {
        mqttc_packet p;
        int n = 0;
        if (broker_now_ms() > deadline) {
            fail_msg("the well-behaved session did not complete: %zu published, %u queued",
                     totals_now(s).v[0], (unsigned)mqttc_client_queued(s->c));
        }
        int rc = fb_net_recv(&s->net, &p, 20);
        if (rc == 0) {
            continue;
        }
        if (rc < 0) {
            fail_msg("scripted broker: the client closed a good session (%d)", rc);
        }
        switch (p.type) {
        case MQTTC_PUBLISH:
            if (p.u.publish.qos > 0) {
                n = mqttc_encode_ack(buf, sizeof buf,
                                     p.u.publish.qos == 1 ? MQTTC_PUBACK : MQTTC_PUBREC,
                                     p.u.publish.packet_id);
            }
            break;
        case MQTTC_PUBREL:
            n = mqttc_encode_ack(buf, sizeof buf, MQTTC_PUBCOMP, p.u.packet_id);
            break;
        case MQTTC_SUBSCRIBE: {
            uint8_t codes[8];
            size_t k = p.u.subscribe.count < sizeof codes ? p.u.subscribe.count : sizeof codes;
            memset(codes, 1, sizeof codes);
            n = mqttc_encode_suback(buf, sizeof buf, p.u.subscribe.packet_id, codes, k);
            break;
        }
        case MQTTC_UNSUBSCRIBE:
            n = mqttc_encode_ack(buf, sizeof buf, MQTTC_UNSUBACK, p.u.unsubscribe.packet_id);
            break;
        case MQTTC_PINGREQ:
            n = mqttc_encode_empty(buf, sizeof buf, MQTTC_PINGRESP);
            break;
        default:
            fail_msg("scripted broker: unexpected packet type %u in a good session", p.type);
        }
        assert_true(n >= 0);
        if (n > 0) {
            assert_true(fb_net_send(&s->net, buf, (size_t)n));
        }
    }
}

static void serve_well(hstate *s, bool connack, size_t published, size_t subs, size_t unsubs)
{
    serve_well_from(s, connack, totals_now(s), published, subs, unsubs);
}

/* The client must reconnect when asked and deliver what it kept. */
static void reconnect_and_deliver(hstate *s, size_t published, size_t subs, size_t unsubs)
{
    size_t connected = count(s, MQTTC_CLIENT_EV_CONNECTED);
    assert_code(mqttc_client_reconnect(s->c), 0);
    accept_connect(s);
    serve_well(s, true, published, subs, unsubs);
    wait_count(s, MQTTC_CLIENT_EV_CONNECTED, connected + 1);
    assert_int_equal(mqttc_client_queued(s->c), 0);
    assert_true(mqttc_client_ready(s->c));
}

/* ---- the table of malformed and out-of-order input ------------------------ */

typedef enum when {
    AT_CONNACK, /* instead of CONNACK */
    IN_SESSION  /* after CONNACK, with both messages in flight */
} when;

typedef struct hcase {
    when at;
    /* Bytes the broker sends, as hex; "P1" / "P2" stand for the ids of the
     * in-flight QoS 1 / QoS 2 PUBLISH, "SI" / "UI" for the SUBSCRIBE /
     * UNSUBSCRIBE id (two bytes each). */
    const char *hex;
    bool hang_up;       /* the broker closes right after */
    int expect;         /* the reason the client must give */
    bool subscribe;     /* the client subscribes to one filter first */
    bool unsubscribe;   /* the client unsubscribes from one filter first */
    uint32_t max_message_size; /* 0: the default */
} hcase;

/* Expand P1, P2, SI, UI in a hex vector. */
static void expand_hex(const hstate *s, const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = in; *p != '\0'; p++) {
        uint16_t id = 0;
        bool token = true;
        if (p[0] == 'P' && p[1] == '1') {
            id = s->id_qos1;
        } else if (p[0] == 'P' && p[1] == '2') {
            id = s->id_qos2;
        } else if (p[0] == 'S' && p[1] == 'I') {
            id = s->id_sub;
        } else if (p[0] == 'U' && p[1] == 'I') {
            id = s->id_unsub;
        } else {
            token = false;
        }
        assert_true(o + 8 < cap);
        if (token) {
            o += (size_t)snprintf(out + o, cap - o, "%02X %02X", id >> 8, id & 0xFF);
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static mqttc_error_kind kind_for(when at, int code)
{
    if (code <= MQTTC_ERR_REFUSED_PROTOCOL && code >= MQTTC_ERR_REFUSED_NOT_AUTHORIZED) {
        return MQTTC_ERRKIND_CONNACK;
    }
    if (at == AT_CONNACK) {
        return MQTTC_ERRKIND_CONNECT;
    }
    return code == MQTTC_ERR_CLOSED_BY_PEER || code == MQTTC_ERR_TRANSPORT ||
                   code == MQTTC_ERR_CONNECTION_LOST
               ? MQTTC_ERRKIND_TRANSPORT
               : MQTTC_ERRKIND_PROTOCOL;
}

/* cmocka passes one state pointer; the case goes in through a prestate that
 * setup_case() wraps in a fixture. */
typedef struct case_state {
    hstate *s;
    const hcase *hc;
} case_state;

static int setup_case(void **state)
{
    const hcase *hc = *state;
    case_state *cs = calloc(1, sizeof *cs);
    void *inner = NULL;
    if (cs == NULL || setup(&inner) != 0) {
        free(cs);
        return -1;
    }
    cs->s = inner;
    cs->hc = hc;
    *state = cs;
    return 0;
}

static int teardown_case(void **state)
{
    case_state *cs = *state;
    void *inner = cs->s;
    teardown(&inner);
    free(cs);
    return 0;
}

static void hostile_case(void **state)
{
    case_state *cs = *state;
    hstate *s = cs->s;
    const hcase *hc = cs->hc;
    mqttc_client_config cfg;
    char hex[1024];

    config(s, &cfg);
    if (hc->max_message_size != 0) {
        cfg.max_message_size = hc->max_message_size;
    }
    make_client(s, &cfg);
    queue_two(s);
    if (hc->subscribe) {
        assert_true(mqttc_client_subscribe(s->c, "sub/#", 1) > 0);
    }
    if (hc->unsubscribe) {
        assert_true(mqttc_client_unsubscribe(s->c, "unsub/x") > 0);
    }
    assert_code(mqttc_client_connect(s->c), 0);
    accept_connect(s);
    if (hc->at == IN_SESSION) {
        send_connack(s);
        wait_count(s, MQTTC_CLIENT_EV_CONNECTED, 1);
        read_session_start(s, hc->subscribe, hc->unsubscribe);
    }

    expand_hex(s, hc->hex, hex, sizeof hex);
    (void)fb_net_send_hex(&s->net, hex); /* the client may close before all is written */
    if (hc->hang_up) {
        fb_net_close(&s->net);
    }

    expect_error(s, 0, hc->expect, kind_for(hc->at, hc->expect));
    if (hc->at == IN_SESSION) {
        wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, 1);
        it_lock(s->r);
        int reason = s->r->disc_reason;
        bool again = s->r->disc_will_reconnect;
        it_unlock(s->r);
        assert_code(reason, hc->expect);
        assert_false(again);
    } else {
        assert_int_equal(count(s, MQTTC_CLIENT_EV_CONNECTED), 0);
    }
    /* The client closed the connection (the broker sees EOF), and stays idle. */
    if (!hc->hang_up && !fb_net_wait_closed(&s->net, WAIT_MS)) {
        fail_msg("the client did not close the connection after %s", mqttc_errname(hc->expect));
    }
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 1);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_PUBLISHED), 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_DROPPED), 0);
    assert_int_equal(mqttc_client_queued(s->c), 2);

    reconnect_and_deliver(s, 2, hc->subscribe ? 1 : 0, hc->unsubscribe ? 1 : 0);
}

#define PRE(hex_, code_)                                                                       \
    {                                                                                          \
        AT_CONNACK, hex_, false, code_, false, false, 0                                        \
    }
#define IN(hex_, code_)                                                                        \
    {                                                                                          \
        IN_SESSION, hex_, false, code_, false, false, 0                                        \
    }

/* Remaining Length */
static const hcase c_len_five_bytes = IN("30 FF FF FF FF 01", MQTTC_ERR_MALFORMED_LENGTH);
static const hcase c_len_five_bytes_pre = PRE("20 80 80 80 80 00", MQTTC_ERR_MALFORMED_LENGTH);
static const hcase c_len_past_end = {IN_SESSION, "30 0A 00 01 74 61", true,
                                     MQTTC_ERR_CLOSED_BY_PEER, false, false, 0};
static const hcase c_len_past_end_pre = {AT_CONNACK, "20 05 00 00", true,
                                         MQTTC_ERR_CLOSED_BY_PEER, false, false, 0};
static const hcase c_len_over_max = {IN_SESSION, "30 80 80 40 00 01 74", false,
                                     MQTTC_ERR_PACKET_TOO_LARGE, false, false, 1024};
/* A SUBACK of 5000 bytes cannot fit the 4 KiB receive buffer, and only a
 * PUBLISH may be streamed: refused from its header alone. */
static const hcase c_suback_over_rx = IN("90 88 27 00 01", MQTTC_ERR_PACKET_TOO_LARGE);
static const hcase c_ack_len_wrong = IN("40 03 P1 00", MQTTC_ERR_MALFORMED);
static const hcase c_connack_len_long = PRE("20 03 00 00 00", MQTTC_ERR_MALFORMED);
static const hcase c_connack_len_short = PRE("20 01 00", MQTTC_ERR_MALFORMED);
static const hcase c_pingresp_with_body = IN("D0 01 00", MQTTC_ERR_MALFORMED);
/* Packet types */
static const hcase c_type_0 = IN("00 00", MQTTC_ERR_BAD_PACKET_TYPE);
static const hcase c_type_15 = IN("F0 00", MQTTC_ERR_BAD_PACKET_TYPE);
static const hcase c_type_0_pre = PRE("00 02 00 00", MQTTC_ERR_BAD_PACKET_TYPE);
static const hcase c_type_connect =
    IN("10 0D 00 04 4D 51 54 54 04 02 00 3C 00 01 78", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_type_subscribe = IN("82 06 00 07 00 01 61 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_type_unsubscribe = IN("A2 05 00 07 00 01 61", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_type_pingreq = IN("C0 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_type_disconnect = IN("E0 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_type_pingreq_pre = PRE("C0 00", MQTTC_ERR_UNEXPECTED_PACKET);
/* Fixed-header flags */
static const hcase c_flags_pubrel_0 = IN("60 02 P2", MQTTC_ERR_BAD_FLAGS);
static const hcase c_flags_puback = IN("42 02 P1", MQTTC_ERR_BAD_FLAGS);
static const hcase c_flags_suback = {IN_SESSION, "92 03 SI 01", false, MQTTC_ERR_BAD_FLAGS, true,
                                     false, 0};
static const hcase c_flags_connack = PRE("21 02 00 00", MQTTC_ERR_BAD_FLAGS);
static const hcase c_flags_pingresp = IN("D8 00", MQTTC_ERR_BAD_FLAGS);
static const hcase c_publish_qos3 = IN("36 07 00 01 74 00 01 68 69", MQTTC_ERR_BAD_QOS);
static const hcase c_publish_dup_qos0 = IN("38 03 00 01 74", MQTTC_ERR_BAD_FLAGS);
/* PUBLISH contents */
static const hcase c_topic_plus = IN("30 05 00 03 61 2F 2B", MQTTC_ERR_BAD_TOPIC);
static const hcase c_topic_hash = IN("30 05 00 03 61 2F 23", MQTTC_ERR_BAD_TOPIC);
static const hcase c_topic_bad_utf8 = IN("30 05 00 03 61 C3 28", MQTTC_ERR_BAD_UTF8);
static const hcase c_topic_nul = IN("30 05 00 03 61 00 62", MQTTC_ERR_BAD_UTF8);
static const hcase c_topic_surrogate = IN("30 05 00 03 ED A0 80", MQTTC_ERR_BAD_UTF8);
static const hcase c_topic_overlong = IN("30 04 00 02 C0 AF", MQTTC_ERR_BAD_UTF8);
static const hcase c_topic_empty = IN("30 04 00 00 68 69", MQTTC_ERR_BAD_TOPIC);
static const hcase c_topic_past_end = IN("30 03 00 05 61", MQTTC_ERR_MALFORMED);
static const hcase c_publish_id_0 = IN("32 05 00 01 74 00 00", MQTTC_ERR_MALFORMED);
static const hcase c_ack_id_0 = IN("40 02 00 00", MQTTC_ERR_MALFORMED);
/* Acknowledgements that match nothing in flight */
static const hcase c_puback_unknown = IN("40 02 12 34", MQTTC_ERR_UNKNOWN_PACKET_ID);
static const hcase c_pubrec_unknown = IN("50 02 12 34", MQTTC_ERR_UNKNOWN_PACKET_ID);
static const hcase c_pubcomp_unknown = IN("70 02 12 34", MQTTC_ERR_UNKNOWN_PACKET_ID);
static const hcase c_puback_for_qos2 = IN("40 02 P2", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_pubrec_for_qos1 = IN("50 02 P1", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_pubcomp_before_pubrec = IN("70 02 P2", MQTTC_ERR_UNEXPECTED_PACKET);
/* CONNACK */
static const hcase c_second_connack = IN("20 02 00 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_connack_reserved = PRE("20 02 02 00", MQTTC_ERR_MALFORMED);
static const hcase c_connack_code_6 = PRE("20 02 00 06", MQTTC_ERR_MALFORMED);
static const hcase c_connack_code_ff = PRE("20 02 00 FF", MQTTC_ERR_MALFORMED);
static const hcase c_connack_sp_refused = PRE("20 02 01 05", MQTTC_ERR_MALFORMED);
static const hcase c_connack_sp_clean = PRE("20 02 01 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_connack_refused = PRE("20 02 00 05", MQTTC_ERR_REFUSED_NOT_AUTHORIZED);
/* SUBACK / UNSUBACK */
static const hcase c_suback_two_codes = {IN_SESSION, "90 04 SI 01 01", false,
                                         MQTTC_ERR_SUBACK_MISMATCH, true, false, 0};
static const hcase c_suback_code_3 = {IN_SESSION, "90 03 SI 03", false, MQTTC_ERR_MALFORMED,
                                      true, false, 0};
static const hcase c_suback_code_81 = {IN_SESSION, "90 03 SI 81", false, MQTTC_ERR_MALFORMED,
                                       true, false, 0};
static const hcase c_suback_no_codes = {IN_SESSION, "90 02 SI", false, MQTTC_ERR_MALFORMED, true,
                                        false, 0};
static const hcase c_suback_unknown = IN("90 03 12 34 00", MQTTC_ERR_UNKNOWN_PACKET_ID);
static const hcase c_suback_for_unsub = {IN_SESSION, "90 03 UI 00", false,
                                         MQTTC_ERR_UNEXPECTED_PACKET, false, true, 0};
static const hcase c_unsuback_long = {IN_SESSION, "B0 03 UI 00", false, MQTTC_ERR_MALFORMED, false,
                                      true, 0};
static const hcase c_unsuback_short = {IN_SESSION, "B0 01 00", false, MQTTC_ERR_MALFORMED, false,
                                       true, 0};
static const hcase c_unsuback_unknown = IN("B0 02 12 34", MQTTC_ERR_UNKNOWN_PACKET_ID);
static const hcase c_unsuback_for_sub = {IN_SESSION, "B0 02 SI", false,
                                         MQTTC_ERR_UNEXPECTED_PACKET, true, false, 0};
/* Packets before CONNACK */
static const hcase c_publish_pre = PRE("30 04 00 01 74 68", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_pingresp_pre = PRE("D0 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_puback_pre = PRE("40 02 00 01", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_suback_pre = PRE("90 03 00 01 00", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_pubrel_pre = PRE("62 02 00 01", MQTTC_ERR_UNEXPECTED_PACKET);
static const hcase c_hang_up_pre = {AT_CONNACK, "", true, MQTTC_ERR_CLOSED_BY_PEER, false, false,
                                    0};
static const hcase c_hang_up_in_session = {IN_SESSION, "", true, MQTTC_ERR_CLOSED_BY_PEER, false,
                                           false, 0};

/* ---- cases that need more than one packet ---------------------------------- */

/* Connect with both messages in flight (the broker read them, acked nothing). */
static void connect_in_session(hstate *s)
{
    queue_two(s);
    assert_code(mqttc_client_connect(s->c), 0);
    accept_connect(s);
    send_connack(s);
    wait_count(s, MQTTC_CLIENT_EV_CONNECTED, 1);
    read_session_start(s, false, false);
}

/* After the session closed with `code`: the client closed the socket, went
 * idle, kept both messages; then it reconnects and delivers them. */
static void expect_session_closed(hstate *s, int code)
{
    expect_error(s, 0, code, kind_for(IN_SESSION, code));
    wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, 1);
    it_lock(s->r);
    int reason = s->r->disc_reason;
    it_unlock(s->r);
    assert_code(reason, code);
    if (!fb_net_wait_closed(&s->net, WAIT_MS)) {
        fail_msg("the client did not close the connection after %s", mqttc_errname(code));
    }
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_queued(s->c), 2);
    reconnect_and_deliver(s, 2, 0, 0);
}

/* MQTT-4.3.3-2 (and 4.3.3 step "respond to PUBREL"): a PUBREL must be answered
 * with PUBCOMP even for an id the client does not know (it may have completed
 * it before a reconnect); not a reason to close. */
static void pubrel_unknown_id_is_answered(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    config(s, &cfg);
    make_client(s, &cfg);
    connect_in_session(s);
    assert_true(fb_net_send_hex(&s->net, "62 02 12 34"));
    const mqttc_packet *p = fb_net_expect(&s->net, MQTTC_PUBCOMP, WAIT_MS);
    assert_int_equal(p->flags, 0);
    assert_int_equal(p->u.packet_id, 0x1234);
    assert_true(mqttc_client_ready(s->c));
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
    /* The session goes on: complete both messages on this connection. */
    char hex[64];
    totals base = totals_now(s);
    expand_hex(s, "40 02 P1 50 02 P2", hex, sizeof hex);
    assert_true(fb_net_send_hex(&s->net, hex));
    serve_well_from(s, false, base, 2, 0, 0);
    assert_int_equal(mqttc_client_queued(s->c), 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_DISCONNECTED), 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
}

/* A PUBACK repeated after the message completed matches nothing in flight. */
static void puback_repeated_after_completion(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    char hex[64];
    config(s, &cfg);
    make_client(s, &cfg);
    connect_in_session(s);
    expand_hex(s, "40 02 P1", hex, sizeof hex);
    assert_true(fb_net_send_hex(&s->net, hex));
    wait_count(s, MQTTC_CLIENT_EV_PUBLISHED, 1);
    assert_int_equal(mqttc_client_queued(s->c), 1);
    assert_true(fb_net_send_hex(&s->net, hex));
    expect_error(s, 0, MQTTC_ERR_UNKNOWN_PACKET_ID, MQTTC_ERRKIND_PROTOCOL);
    wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, 1);
    assert_true(fb_net_wait_closed(&s->net, WAIT_MS));
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_queued(s->c), 1);
    reconnect_and_deliver(s, 1, 0, 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_PUBLISHED), 2);
}

/* A repeated PUBREC for a message in flight is answered with PUBREL again
 * (MQTT-4.3.3: the sender answers every PUBREC); not a reason to close. */
static void pubrec_repeated_is_answered(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    char hex[64];
    config(s, &cfg);
    make_client(s, &cfg);
    connect_in_session(s);
    expand_hex(s, "50 02 P2", hex, sizeof hex);
    for (int i = 0; i < 3; i++) {
        assert_true(fb_net_send_hex(&s->net, hex));
        const mqttc_packet *p = fb_net_expect(&s->net, MQTTC_PUBREL, WAIT_MS);
        assert_int_equal(p->flags, 2);
        assert_int_equal(p->u.packet_id, s->id_qos2);
    }
    assert_true(mqttc_client_ready(s->c));
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
    totals base = totals_now(s);
    expand_hex(s, "40 02 P1 70 02 P2", hex, sizeof hex);
    assert_true(fb_net_send_hex(&s->net, hex));
    serve_well_from(s, false, base, 2, 0, 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
}

/* Good packets and a bad one in the same segment: what came before the bad
 * bytes is delivered (a message larger than the receive buffer, joined
 * whole, from a buffer grown with the bytes received), then the connection
 * is closed for the bad bytes. */
static void large_message_then_garbage(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    enum { LEN = 20000 };
    static uint8_t payload[LEN], pkt[LEN + 64];
    config(s, &cfg);
    cfg.rx_buffer_size = 1024;
    make_client(s, &cfg);
    connect_in_session(s);
    it_pattern(payload, LEN, 7);
    size_t n = fb_encode_publish(pkt, sizeof pkt, "big/one", payload, LEN, 1, 77, false, false);
    pkt[n++] = 0xF0; /* reserved type 15 */
    pkt[n++] = 0x00;
    atomic_store(&heap_peak_request, 0);
    assert_true(fb_net_send(&s->net, pkt, n));
    /* Its PUBACK may never be written: it is staged, and dropped with the
     * connection when the bad bytes come in the same read (the spec asks only
     * that the client close; QoS 1 lets the broker deliver it again). */
    wait_count(s, MQTTC_CLIENT_EV_MESSAGE, 1);
    it_lock(s->r);
    assert_int_equal(s->r->nmsgs, 1);
    assert_string_equal(s->r->msgs[0].topic, "big/one");
    assert_int_equal(s->r->msgs[0].len, LEN);
    assert_int_equal(s->r->msgs[0].offset, 0);
    assert_int_equal(s->r->msgs[0].total, LEN);
    assert_memory_equal(s->r->msgs[0].payload, payload, LEN);
    it_unlock(s->r);
    assert_true(atomic_load(&heap_peak_request) < 4u * LEN); /* joined, not oversized */
    expect_session_closed(s, MQTTC_ERR_BAD_PACKET_TYPE);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), 1);
}

/* CONNACK one byte per 100 ms, well within the connect timeout: accepted. */
static void slowloris_connack_within_timeout(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    config(s, &cfg);
    cfg.connect_timeout_ms = 5000;
    make_client(s, &cfg);
    queue_two(s);
    assert_code(mqttc_client_connect(s->c), 0);
    accept_connect(s);
    assert_true(fb_net_trickle(&s->net, connack, sizeof connack, 100));
    wait_count(s, MQTTC_CLIENT_EV_CONNECTED, 1);
    serve_well(s, false, 2, 0, 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
}

/* CONNACK one byte per 200 ms against a 300 ms connect timeout: the client
 * gives up with CONNACK_TIMEOUT although bytes keep coming. */
static void slowloris_connack_beyond_timeout(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    static const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    config(s, &cfg);
    cfg.connect_timeout_ms = 300;
    make_client(s, &cfg);
    queue_two(s);
    assert_code(mqttc_client_connect(s->c), 0);
    accept_connect(s);
    (void)fb_net_trickle(&s->net, connack, sizeof connack, 200); /* may meet a closed socket */
    expect_error(s, 0, MQTTC_ERR_CONNACK_TIMEOUT, MQTTC_ERRKIND_CONNECT);
    assert_true(fb_net_wait_closed(&s->net, WAIT_MS));
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_CONNECTED), 0);
    assert_int_equal(mqttc_client_queued(s->c), 2);
    reconnect_and_deliver(s, 2, 0, 0);
}

/* The broker reads CONNECT and never answers. */
static void never_connack(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    config(s, &cfg);
    cfg.connect_timeout_ms = 500;
    make_client(s, &cfg);
    queue_two(s);
    assert_code(mqttc_client_connect(s->c), 0);
    accept_connect(s);
    expect_error(s, 0, MQTTC_ERR_CONNACK_TIMEOUT, MQTTC_ERRKIND_CONNECT);
    assert_true(fb_net_wait_closed(&s->net, WAIT_MS));
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_CONNECTED), 0);
    assert_int_equal(mqttc_client_queued(s->c), 2);
    reconnect_and_deliver(s, 2, 0, 0);
}

/* Silence after CONNACK: PINGREQ after the keepalive, no PINGRESP. */
static void silent_after_connack(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    config(s, &cfg);
    cfg.keepalive = 1;
    make_client(s, &cfg);
    connect_in_session(s);
    fb_net_expect(&s->net, MQTTC_PINGREQ, WAIT_MS);
    expect_session_closed(s, MQTTC_ERR_KEEPALIVE_TIMEOUT);
}

/* The broker stops reading while the client has much to send: the keepalive
 * still ends the session (the PINGREQ cannot even be written), with the
 * QoS 1/2 messages kept; nothing is lost once a good broker is back. */
static void broker_stops_reading(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    enum { N = 1000, LEN = 12000 };
    static uint8_t payload[LEN];
    config(s, &cfg);
    cfg.keepalive = 1;
    cfg.queue_max_msgs = 2 * N;
    make_client(s, &cfg);
    connect_in_session(s);
    memset(payload, 's', sizeof payload);
    for (int i = 0; i < N; i++) {
        assert_code(mqttc_client_publish(s->c, "stall", payload, LEN, 0, false), 0);
    }
    expect_error(s, 0, MQTTC_ERR_KEEPALIVE_TIMEOUT, MQTTC_ERRKIND_PROTOCOL);
    wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, 1);
    it_lock(s->r);
    int reason = s->r->disc_reason;
    it_unlock(s->r);
    assert_code(reason, MQTTC_ERR_KEEPALIVE_TIMEOUT);
    assert_true(fb_net_wait_closed(&s->net, WAIT_MS));
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_true(mqttc_client_queued(s->c) >= 2);
    /* QoS 0 written before the stall were PUBLISHED, one cut mid-write may
     * be DROPPED; every other message is still queued and goes out now. */
    assert_code(mqttc_client_reconnect(s->c), 0);
    accept_connect(s);
    serve_well_from(s, true, totals_now(s), 0, 0, 0);
    wait_count(s, MQTTC_CLIENT_EV_CONNECTED, 2);
    it_lock(s->r);
    size_t npub = s->r->npub, ndrop = s->r->ndrop;
    it_unlock(s->r);
    assert_int_equal(npub + ndrop, N + 2);
    assert_true(ndrop <= 1);
    assert_int_equal(mqttc_client_queued(s->c), 0);
}

/* A PUBLISH trickled at 10 bytes/s: the bytes keep the link alive, but the
 * PINGRESP cannot get past the unfinished packet, so the keepalive ends it. */
static void slowloris_publish_beyond_keepalive(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    uint8_t pkt[64];
    config(s, &cfg);
    cfg.keepalive = 1;
    make_client(s, &cfg);
    connect_in_session(s);
    size_t n = fb_encode_publish(pkt, sizeof pkt, "slow/topic", "0123456789012345678901234567890", 31,
                                 0, 0, false, false);
    (void)fb_net_trickle(&s->net, pkt, n, 100); /* stops when the client closes */
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), 0);
    expect_session_closed(s, MQTTC_ERR_KEEPALIVE_TIMEOUT);
}

/* A PUBLISH claiming the protocol maximum (256 MiB) followed by 64 KiB and a
 * hang-up: the client must not allocate what was only claimed. */
static void huge_length_claim_not_allocated(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    static uint8_t chunk[4096];
    config(s, &cfg);
    make_client(s, &cfg);
    connect_in_session(s);
    atomic_store(&heap_peak_request, 0);
    assert_true(fb_net_send_hex(&s->net, "30 FF FF FF 7F 00 05 68 75 67 65 21"));
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 16; i++) {
        assert_true(fb_net_send(&s->net, chunk, sizeof chunk));
    }
    fb_net_close(&s->net); /* the data goes first, then the FIN */
    expect_error(s, 0, MQTTC_ERR_CLOSED_BY_PEER, MQTTC_ERRKIND_TRANSPORT);
    wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, 1);
    size_t peak = atomic_load(&heap_peak_request);
    if (peak >= 1024 * 1024) {
        fail_msg("the client allocated %zu bytes at once for a message it never received", peak);
    }
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), 0);
    wait_state(s, MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_queued(s->c), 2);
    reconnect_and_deliver(s, 2, 0, 0);
}

/* A PUBLISH whose topic alone (5000 bytes, legal) is larger than the receive
 * buffer: the header of a streamed message must fit the buffer
 * (mqttc_decoder_init()), so the client refuses it as PACKET_TOO_LARGE. A
 * limit of the client, not a broker fault; this documents the reason given. */
static void topic_longer_than_rx_buffer(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    static char topic[5001];
    static uint8_t pkt[5100];
    config(s, &cfg);
    make_client(s, &cfg);
    connect_in_session(s);
    memset(topic, 'a', sizeof topic - 1);
    size_t n = fb_encode_publish(pkt, sizeof pkt, topic, "x", 1, 1, 9, false, false);
    (void)fb_net_send(&s->net, pkt, n);
    expect_session_closed(s, MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), 0);
}

/* QoS 2 PUBLISHes, never released: many more than the inbound table holds.
 * The client switches to its bitmap, acknowledges each one (PUBREC), delivers
 * each once, acknowledges a repeat without delivering it again, and answers
 * the PUBRELs that finally come. */
#define FLOOD_FIRST_ID 1000u

static void qos2_flood_without_pubrel(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    size_t n = RUNNING_ON_VALGRIND ? 100 : 500;
    static uint8_t buf[64 * 600];
    size_t len = 0;
    config(s, &cfg);
    cfg.inbound_max = 4;
    make_client(s, &cfg);
    connect_in_session(s);
    for (size_t i = 0; i < n; i++) {
        len += fb_encode_publish(buf + len, sizeof buf - len, "flood", "x", 1, 2,
                                 (uint16_t)(FLOOD_FIRST_ID + i), false, false);
    }
    assert_true(fb_net_send(&s->net, buf, len));
    for (size_t i = 0; i < n; i++) {
        const mqttc_packet *p = fb_net_expect(&s->net, MQTTC_PUBREC, WAIT_MS);
        assert_int_equal(p->u.packet_id, FLOOD_FIRST_ID + i);
    }
    wait_count(s, MQTTC_CLIENT_EV_MESSAGE, n);
    /* Repeats (DUP) of the first ten: acknowledged, not delivered again. */
    len = 0;
    for (size_t i = 0; i < 10; i++) {
        len += fb_encode_publish(buf + len, sizeof buf - len, "flood", "x", 1, 2,
                                 (uint16_t)(FLOOD_FIRST_ID + i), false, true);
    }
    assert_true(fb_net_send(&s->net, buf, len));
    for (size_t i = 0; i < 10; i++) {
        const mqttc_packet *p = fb_net_expect(&s->net, MQTTC_PUBREC, WAIT_MS);
        assert_int_equal(p->u.packet_id, FLOOD_FIRST_ID + i);
    }
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), n);
    /* Now the releases. */
    len = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)mqttc_encode_ack(buf + len, sizeof buf - len, MQTTC_PUBREL,
                                        (uint16_t)(FLOOD_FIRST_ID + i));
    }
    assert_true(fb_net_send(&s->net, buf, len));
    for (size_t i = 0; i < n; i++) {
        const mqttc_packet *p = fb_net_expect(&s->net, MQTTC_PUBCOMP, WAIT_MS);
        assert_int_equal(p->u.packet_id, FLOOD_FIRST_ID + i);
    }
    assert_true(mqttc_client_ready(s->c));
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), n);
    /* After PUBCOMP an id starts a new publication (MQTT-4.3.3-2). */
    len = fb_encode_publish(buf, sizeof buf, "flood", "y", 1, 2, FLOOD_FIRST_ID, false, false);
    assert_true(fb_net_send(&s->net, buf, len));
    assert_int_equal(fb_net_expect(&s->net, MQTTC_PUBREC, WAIT_MS)->u.packet_id, FLOOD_FIRST_ID);
    wait_count(s, MQTTC_CLIENT_EV_MESSAGE, n + 1);
    /* The session still works: the two kept messages complete here. */
    char hex[64];
    totals base = totals_now(s);
    expand_hex(s, "40 02 P1 50 02 P2", hex, sizeof hex);
    assert_true(fb_net_send_hex(&s->net, hex));
    serve_well_from(s, false, base, 2, 0, 0);
}

/* The same flood when the bitmap cannot be had (its allocation fails): the
 * client closes with INBOUND_WINDOW_FULL rather than lose exactly-once. */
static void qos2_flood_without_bitmap(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    uint8_t buf[64 * 8];
    size_t len = 0;
    config(s, &cfg);
    cfg.inbound_max = 4;
    make_client(s, &cfg);
    connect_in_session(s);
    atomic_store(&fail_malloc_size, (size_t)MQTTC_INBOUND_BITMAP_SIZE);
    for (size_t i = 0; i < 5; i++) {
        len += fb_encode_publish(buf + len, sizeof buf - len, "flood", "x", 1, 2,
                                 (uint16_t)(FLOOD_FIRST_ID + i), false, false);
    }
    (void)fb_net_send(&s->net, buf, len);
    expect_session_closed(s, MQTTC_ERR_INBOUND_WINDOW_FULL);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_MESSAGE), 4);
    assert_int_equal(atomic_load(&fail_malloc_size), 0); /* the failure was used */
}

/* ---- many malicious sessions in a row ------------------------------------- */

typedef struct attack {
    when at;
    const char *hex;
    bool hang_up;
    int expect;
} attack;

static const attack attacks[] = {
    {IN_SESSION, "00 00", false, MQTTC_ERR_BAD_PACKET_TYPE},
    {IN_SESSION, "30 FF FF FF FF 01", false, MQTTC_ERR_MALFORMED_LENGTH},
    {IN_SESSION, "60 02 P2", false, MQTTC_ERR_BAD_FLAGS},
    {IN_SESSION, "40 02 12 34", false, MQTTC_ERR_UNKNOWN_PACKET_ID},
    {IN_SESSION, "30 05 00 03 61 2F 2B", false, MQTTC_ERR_BAD_TOPIC},
    {IN_SESSION, "30 05 00 03 61 00 62", false, MQTTC_ERR_BAD_UTF8},
    {IN_SESSION, "20 02 00 00", false, MQTTC_ERR_UNEXPECTED_PACKET},
    {IN_SESSION, "36 07 00 01 74 00 01 68 69", false, MQTTC_ERR_BAD_QOS},
    {IN_SESSION, "30 FF FF FF 7F 00 01 74 61 62 63 64 65 66 67", true, MQTTC_ERR_CLOSED_BY_PEER},
    {IN_SESSION, "", true, MQTTC_ERR_CLOSED_BY_PEER},
    {AT_CONNACK, "D0 00", false, MQTTC_ERR_UNEXPECTED_PACKET},
    {AT_CONNACK, "20 02 00 06", false, MQTTC_ERR_MALFORMED},
    {AT_CONNACK, "20 05 00 00", true, MQTTC_ERR_CLOSED_BY_PEER},
};
#define NATTACKS (sizeof attacks / sizeof attacks[0])

static void many_cycles_no_growth(void **state)
{
    hstate *s = *state;
    mqttc_client_config cfg;
    size_t cycles = RUNNING_ON_VALGRIND ? 60 : 200, warm = 2 * NATTACKS;
    const char *env = getenv("MQTTC_HOSTILE_CYCLES"); /* for a longer run by hand */
    long long heap0 = 0, glibc0 = 0;
    int fds0 = 0;
    size_t connected = 0;
    char hex[256];

    if (env != NULL && atoi(env) > 0) {
        cycles = (size_t)atoi(env);
    }
    assert_true(cycles > warm);
    config(s, &cfg);
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 1;
    make_client(s, &cfg);
    queue_two(s);
    assert_code(mqttc_client_connect(s->c), 0);
    for (size_t i = 0; i < cycles; i++) {
        const attack *a = &attacks[i % NATTACKS];
        accept_connect(s);
        /* Same point of every cycle: the client waits for CONNACK, with its
         * transport open and both messages queued. */
        if (i == warm || i == cycles - 1) {
            long long heap = atomic_load(&heap_live), glibc = glibc_in_use();
            int fds = tu_open_fds();
            if (i == warm) {
                heap0 = heap;
                glibc0 = glibc;
                fds0 = fds;
            } else {
                print_message("after %zu cycles: library heap %lld -> %lld bytes, mallinfo2 in "
                              "use %lld -> %lld (-1: not glibc's heap), fds %d -> %d\n",
                              cycles, heap0, heap, glibc0, glibc, fds0, fds);
                if (heap != heap0) {
                    fail_msg("heap in use grew from %lld to %lld bytes over %zu cycles", heap0, heap,
                             cycles - warm);
                }
                if (glibc0 >= 0 && (glibc > glibc0 + 4096 || glibc < glibc0 - 4096)) {
                    fail_msg("mallinfo2 in use went from %lld to %lld bytes", glibc0, glibc);
                }
                assert_int_equal(fds, fds0);
            }
        }
        if (a->at == IN_SESSION) {
            send_connack(s);
            wait_count(s, MQTTC_CLIENT_EV_CONNECTED, ++connected);
            read_session_start(s, false, false);
        }
        expand_hex(s, a->hex, hex, sizeof hex);
        (void)fb_net_send_hex(&s->net, hex);
        if (a->hang_up) {
            fb_net_close(&s->net);
        } else if (!fb_net_wait_closed(&s->net, WAIT_MS)) {
            fail_msg("cycle %zu: the client did not close the connection", i);
        }
        wait_count(s, MQTTC_CLIENT_EV_ERROR, i + 1);
        if (i < IT_MAX_ERRORS) {
            it_lock(s->r);
            int code = s->r->errors[i].code;
            it_unlock(s->r);
            if (code != a->expect) {
                fail_msg("cycle %zu: reason %s, expected %s", i, mqttc_errname(code),
                         mqttc_errname(a->expect));
            }
        }
        if (a->at == IN_SESSION) {
            wait_count(s, MQTTC_CLIENT_EV_DISCONNECTED, connected);
            it_lock(s->r);
            bool again = s->r->disc_will_reconnect;
            int reason = s->r->disc_reason;
            it_unlock(s->r);
            assert_true(again);
            assert_code(reason, a->expect);
        }
        assert_int_equal(mqttc_client_queued(s->c), 2);
    }
    /* And after all that, a good session delivers what was kept. */
    accept_connect(s);
    serve_well(s, true, 2, 0, 0);
    assert_int_equal(mqttc_client_queued(s->c), 0);
    assert_int_equal(count(s, MQTTC_CLIENT_EV_ERROR), cycles);
}

/* ---- main ------------------------------------------------------------------ */

#define CASE(name)                                                                             \
    {                                                                                          \
        #name, hostile_case, setup_case, teardown_case, (void *)(uintptr_t)&c_##name           \
    }
#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Remaining Length */
        CASE(len_five_bytes),
        CASE(len_five_bytes_pre),
        CASE(len_past_end),
        CASE(len_past_end_pre),
        CASE(len_over_max),
        CASE(suback_over_rx),
        CASE(ack_len_wrong),
        CASE(connack_len_long),
        CASE(connack_len_short),
        CASE(pingresp_with_body),
        TEST(huge_length_claim_not_allocated),
        TEST(large_message_then_garbage),
        TEST(topic_longer_than_rx_buffer),
        /* packet types */
        CASE(type_0),
        CASE(type_15),
        CASE(type_0_pre),
        CASE(type_connect),
        CASE(type_subscribe),
        CASE(type_unsubscribe),
        CASE(type_pingreq),
        CASE(type_disconnect),
        CASE(type_pingreq_pre),
        /* fixed-header flags */
        CASE(flags_pubrel_0),
        CASE(flags_puback),
        CASE(flags_suback),
        CASE(flags_connack),
        CASE(flags_pingresp),
        CASE(publish_qos3),
        CASE(publish_dup_qos0),
        /* PUBLISH contents */
        CASE(topic_plus),
        CASE(topic_hash),
        CASE(topic_bad_utf8),
        CASE(topic_nul),
        CASE(topic_surrogate),
        CASE(topic_overlong),
        CASE(topic_empty),
        CASE(topic_past_end),
        CASE(publish_id_0),
        CASE(ack_id_0),
        /* acknowledgements */
        CASE(puback_unknown),
        CASE(pubrec_unknown),
        CASE(pubcomp_unknown),
        CASE(puback_for_qos2),
        CASE(pubrec_for_qos1),
        CASE(pubcomp_before_pubrec),
        TEST(pubrel_unknown_id_is_answered),
        TEST(pubrec_repeated_is_answered),
        TEST(puback_repeated_after_completion),
        /* CONNACK */
        CASE(second_connack),
        CASE(connack_reserved),
        CASE(connack_code_6),
        CASE(connack_code_ff),
        CASE(connack_sp_refused),
        CASE(connack_sp_clean),
        CASE(connack_refused),
        /* SUBACK / UNSUBACK */
        CASE(suback_two_codes),
        CASE(suback_code_3),
        CASE(suback_code_81),
        CASE(suback_no_codes),
        CASE(suback_unknown),
        CASE(suback_for_unsub),
        CASE(unsuback_long),
        CASE(unsuback_short),
        CASE(unsuback_unknown),
        CASE(unsuback_for_sub),
        /* out of order, before CONNACK */
        CASE(publish_pre),
        CASE(pingresp_pre),
        CASE(puback_pre),
        CASE(suback_pre),
        CASE(pubrel_pre),
        CASE(hang_up_pre),
        CASE(hang_up_in_session),
        /* time */
        TEST(slowloris_connack_within_timeout),
        TEST(slowloris_connack_beyond_timeout),
        TEST(never_connack),
        TEST(silent_after_connack),
        TEST(slowloris_publish_beyond_keepalive),
        TEST(broker_stops_reading),
        /* inbound window */
        TEST(qos2_flood_without_pubrel),
        TEST(qos2_flood_without_bitmap),
        /* resources */
        TEST(many_cycles_no_growth),
    };
    return cmocka_run_group_tests_name("client_hostile", tests, NULL, NULL);
}
