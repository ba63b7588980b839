/*
 * Unit tests for the incremental decoder (include/mqttc/decoder.h).
 *
 * The same byte stream must give the same packets however it is cut: all at
 * once, one byte at a time, in two chunks split at every point, through a
 * buffer smaller than the stream, and through mqttc_decoder_space/commit.
 * Packets are compared as text fingerprints written by hand from the bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttc/codec.h"
#include "mqttc/decoder.h"
#include "mqttc/error.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

static uint32_t lcg_state;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

/* ---- packet fingerprints -------------------------------------------------- */

#define FP_CAP 768
#define MAX_RECS 32

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void append(char *out, size_t cap, const char *fmt, ...)
{
    size_t used = strlen(out);
    assert_true(used < cap);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + used, cap - used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < cap - used);
}

static void format_publish(char *out, size_t cap, uint8_t qos, bool retain, bool dup,
                           uint16_t id, const char *topic, size_t topic_len, size_t off,
                           size_t len, size_t total, const uint8_t *payload)
{
    out[0] = '\0';
    append(out, cap, "PUBLISH q=%u r=%d d=%d id=%u topic=%.*s off=%zu len=%zu total=%zu payload=",
           (unsigned)qos, retain, dup, (unsigned)id, (int)topic_len, topic ? topic : "", off, len,
           total);
    for (size_t i = 0; i < len; i++) {
        append(out, cap, "%02x", payload[i]);
    }
}

static void fingerprint(const mqttc_packet *p, char *out, size_t cap)
{
    static const char *const names[16] = {
        "RESERVED0", "CONNECT", "CONNACK",     "PUBLISH",  "PUBACK",  "PUBREC",
        "PUBREL",    "PUBCOMP", "SUBSCRIBE",   "SUBACK",   "UNSUBSCRIBE",
        "UNSUBACK",  "PINGREQ", "PINGRESP",    "DISCONNECT", "RESERVED15",
    };
    out[0] = '\0';
    switch (p->type) {
    case MQTTC_CONNACK:
        append(out, cap, "CONNACK sp=%d rc=%u", p->u.connack.session_present,
               (unsigned)p->u.connack.return_code);
        break;
    case MQTTC_PUBLISH: {
        const mqttc_publish *m = &p->u.publish;
        format_publish(out, cap, m->qos, m->retain, m->dup, m->packet_id, m->topic.data,
                       m->topic.len, m->offset, m->payload_len, m->total_len, m->payload);
        break;
    }
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBREL:
    case MQTTC_PUBCOMP:
    case MQTTC_UNSUBACK:
        append(out, cap, "%s id=%u", names[p->type], (unsigned)p->u.packet_id);
        break;
    case MQTTC_SUBACK:
        append(out, cap, "SUBACK id=%u codes=", (unsigned)p->u.suback.packet_id);
        for (size_t i = 0; i < p->u.suback.count; i++) {
            append(out, cap, "%s%02x", i ? "," : "", p->u.suback.codes[i]);
        }
        break;
    default:
        append(out, cap, "%s", names[p->type & 15u]);
        break;
    }
}

struct recorder {
    char fp[MAX_RECS][FP_CAP];
    size_t n;
};

typedef void (*packet_fn)(const mqttc_packet *p, void *ctx);

static void record(const mqttc_packet *p, void *ctx)
{
    struct recorder *r = ctx;
    assert_true(r->n < MAX_RECS);
    fingerprint(p, r->fp[r->n], FP_CAP);
    r->n++;
}

static void assert_records(const struct recorder *got, char want[][FP_CAP], size_t n_want)
{
    for (size_t i = 0; i < got->n && i < n_want; i++) {
        if (strcmp(got->fp[i], want[i]) != 0) {
            print_error("packet %zu:\n  got  %s\n  want %s\n", i, got->fp[i], want[i]);
            fail();
        }
    }
    if (got->n != n_want) {
        print_error("got %zu packets, want %zu\n", got->n, n_want);
        fail();
    }
}

/* ---- feeding -------------------------------------------------------------- */

/* How bytes go in: chunk sizes (cycled), and feed() or space()+commit(). */
struct feeder {
    const size_t *chunks;
    size_t n_chunks;
    bool use_space;
};

static const size_t ONE[] = { 1 };
static const size_t ALL[] = { SIZE_MAX };
static const size_t FIB[] = { 1, 2, 3, 5, 8, 13, 21, 34, 55, 89 };
static const size_t MIXED[] = { 1, 7, 64, 255, 300, 3, 1000, 2 };

/* Upper bound on packets from one drain; a decoder that never returns 0 fails it. */
#define DRAIN_LIMIT 4096

static int drain(mqttc_decoder *d, packet_fn fn, void *ctx, size_t *produced)
{
    for (size_t i = 0; i < DRAIN_LIMIT; i++) {
        mqttc_packet p;
        memset(&p, 0, sizeof p);
        int rc = mqttc_decoder_next(d, &p);
        if (rc <= 0) {
            return rc;
        }
        assert_code(rc, 1);
        fn(&p, ctx);
        (*produced)++;
    }
    print_error("mqttc_decoder_next() returned a packet %d times in a row\n", DRAIN_LIMIT);
    fail();
    return 0;
}

/*
 * Puts `data` into the decoder as `f` says, draining packets after every
 * chunk. Returns 0, or the first negative code from mqttc_decoder_next().
 * Fails if the decoder stops taking bytes without producing anything.
 */
static int drive(mqttc_decoder *d, const uint8_t *data, size_t len, const struct feeder *f,
                 packet_fn fn, void *ctx)
{
    size_t pos = 0;
    size_t k = 0;
    int rc = 0;
    while (pos < len) {
        size_t want = f->chunks[k++ % f->n_chunks];
        if (want > len - pos) {
            want = len - pos;
        }
        size_t took;
        if (f->use_space) {
            size_t n = 0;
            uint8_t *space = mqttc_decoder_space(d, &n);
            took = want < n ? want : n;
            if (took > 0) {
                assert_non_null(space);
                memcpy(space, data + pos, took);
            }
            mqttc_decoder_commit(d, took);
        } else {
            took = mqttc_decoder_feed(d, data + pos, want);
            assert_true(took <= want);
        }
        pos += took;
        size_t produced = 0;
        rc = drain(d, fn, ctx, &produced);
        if (rc < 0) {
            return rc;
        }
        if (took == 0 && produced == 0) {
            print_error("decoder stuck at byte %zu of %zu (pending %zu)\n", pos, len,
                        mqttc_decoder_pending(d));
            fail();
        }
    }
    return rc;
}

/* ---- the mixed stream ------------------------------------------------------ */

static const uint8_t STREAM_HEAD[] = {
    0x20, 0x02, 0x01, 0x00,                          /* CONNACK, session present, accepted */
    0x30, 0x07, 0x00, 0x03, 'a', '/', 'b', 'h', 'i', /* PUBLISH QoS 0 "a/b" "hi" */
    0x33, 0x0A, 0x00, 0x03, 't', '/', '1',           /* PUBLISH QoS 1 retain "t/1" */
    0x01, 0x02, 'x', 'y', 'z',                       /*   id 258, "xyz" */
    0x3C, 0x08, 0x00, 0x02, 'q', '2',                /* PUBLISH DUP QoS 2 "q2" */
    0xBE, 0xEF, 0x00, 0xFF,                          /*   id 48879, payload 00 FF */
    0x40, 0x02, 0x00, 0x07,                          /* PUBACK 7 */
    0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x80,  /* SUBACK 10: 0, 1, 2, failure */
    0x62, 0x02, 0x00, 0x09,                          /* PUBREL 9 */
    0xD0, 0x00,                                      /* PINGRESP */
    0xB0, 0x02, 0x00, 0x0B,                          /* UNSUBACK 11 */
    0x30, 0x82, 0x01, 0x00, 0x04, 'l', 'o', 'n', 'g', /* PUBLISH QoS 0, RL 130, "long", */
                                                      /*   then 124 payload bytes */
};
#define LONG_PAYLOAD 124u
static const uint8_t STREAM_TAIL[] = {
    0x70, 0x02, 0x00, 0x0C, /* PUBCOMP 12 */
};
#define LARGEST_IN_STREAM 133u /* the long PUBLISH: 3 + 130 */

static uint8_t mixed_stream[sizeof STREAM_HEAD + LONG_PAYLOAD + sizeof STREAM_TAIL];
static char stream_expect[MAX_RECS][FP_CAP];
static size_t stream_n_expect;

static void build_stream(void)
{
    static uint8_t long_payload[LONG_PAYLOAD];
    for (size_t i = 0; i < LONG_PAYLOAD; i++) {
        long_payload[i] = (uint8_t)('A' + i % 26);
    }
    memcpy(mixed_stream, STREAM_HEAD, sizeof STREAM_HEAD);
    memcpy(mixed_stream + sizeof STREAM_HEAD, long_payload, LONG_PAYLOAD);
    memcpy(mixed_stream + sizeof STREAM_HEAD + LONG_PAYLOAD, STREAM_TAIL, sizeof STREAM_TAIL);

    static const char *const fixed[] = {
        "CONNACK sp=1 rc=0",
        "PUBLISH q=0 r=0 d=0 id=0 topic=a/b off=0 len=2 total=2 payload=6869",
        "PUBLISH q=1 r=1 d=0 id=258 topic=t/1 off=0 len=3 total=3 payload=78797a",
        "PUBLISH q=2 r=0 d=1 id=48879 topic=q2 off=0 len=2 total=2 payload=00ff",
        "PUBACK id=7",
        "SUBACK id=10 codes=00,01,02,80",
        "PUBREL id=9",
        "PINGRESP",
        "UNSUBACK id=11",
    };
    stream_n_expect = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        snprintf(stream_expect[stream_n_expect++], FP_CAP, "%s", fixed[i]);
    }
    format_publish(stream_expect[stream_n_expect++], FP_CAP, 0, false, false, 0, "long", 4, 0,
                   LONG_PAYLOAD, LONG_PAYLOAD, long_payload);
    snprintf(stream_expect[stream_n_expect++], FP_CAP, "PUBCOMP id=12");
}

static void check_stream(size_t cap, const struct feeder *f)
{
    uint8_t *buf = malloc(cap); /* exact size: ASan sees any write past cap */
    assert_non_null(buf);
    mqttc_decoder d;
    assert_code(mqttc_decoder_init(&d, buf, cap, 0, false), 0);
    d.decode = mqttc_decode;
    static struct recorder rec;
    rec.n = 0;
    assert_code(drive(&d, mixed_stream, sizeof mixed_stream, f, record, &rec), 0);
    assert_records(&rec, stream_expect, stream_n_expect);
    assert_int_equal(mqttc_decoder_pending(&d), 0);
    free(buf);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_init_rejects_null_buffer_and_tiny_capacity(void **state)
{
    (void)state;
    uint8_t buf[16];
    mqttc_decoder d;
    assert_code(mqttc_decoder_init(&d, NULL, 16, 0, false), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_decoder_init(&d, buf, 15, 0, false), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_decoder_init(&d, buf, 0, 0, true), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_decoder_init(&d, buf, 16, 0, false), 0);
    d.decode = mqttc_decode;
    assert_int_equal(mqttc_decoder_pending(&d), 0);
    mqttc_packet p;
    assert_code(mqttc_decoder_next(&d, &p), 0); /* nothing yet */
}

static void test_stream_fed_all_at_once_yields_every_packet(void **state)
{
    (void)state;
    build_stream();
    const struct feeder f = { ALL, 1, false };
    check_stream(256, &f);
}

static void test_stream_fed_one_byte_at_a_time_yields_every_packet(void **state)
{
    (void)state;
    build_stream();
    const struct feeder f = { ONE, 1, false };
    check_stream(256, &f);
    check_stream(LARGEST_IN_STREAM, &f);
}

static void test_stream_split_in_two_at_every_point_yields_every_packet(void **state)
{
    (void)state;
    build_stream();
    static struct recorder rec;
    const struct feeder f = { ALL, 1, false };
    for (size_t split = 0; split <= sizeof mixed_stream; split++) {
        uint8_t buf[256];
        mqttc_decoder d;
        assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
        d.decode = mqttc_decode;
        rec.n = 0;
        assert_code(drive(&d, mixed_stream, split, &f, record, &rec), 0);
        assert_code(drive(&d, mixed_stream + split, sizeof mixed_stream - split, &f, record, &rec),
                  0);
        if (rec.n != stream_n_expect) {
            print_error("split at %zu\n", split);
        }
        assert_records(&rec, stream_expect, stream_n_expect);
        assert_int_equal(mqttc_decoder_pending(&d), 0);
    }
}

static void test_stream_larger_than_buffer_is_decoded_in_rounds(void **state)
{
    (void)state;
    build_stream();
    /* The buffer holds the largest packet but not the stream: unread bytes
       must be moved to make room. */
    const struct feeder all = { ALL, 1, false };
    const struct feeder fib = { FIB, sizeof FIB / sizeof FIB[0], false };
    const struct feeder mixed = { MIXED, sizeof MIXED / sizeof MIXED[0], false };
    for (size_t cap = LARGEST_IN_STREAM; cap <= LARGEST_IN_STREAM + 8; cap++) {
        check_stream(cap, &all);
        check_stream(cap, &fib);
        check_stream(cap, &mixed);
    }
}

static void test_space_and_commit_path_yields_every_packet(void **state)
{
    (void)state;
    build_stream();
    const struct feeder one = { ONE, 1, true };
    const struct feeder all = { ALL, 1, true };
    const struct feeder fib = { FIB, sizeof FIB / sizeof FIB[0], true };
    const size_t caps[] = { LARGEST_IN_STREAM, LARGEST_IN_STREAM + 1, 200, 256, 4096 };
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        check_stream(caps[i], &one);
        check_stream(caps[i], &all);
        check_stream(caps[i], &fib);
    }
}

static void test_pending_counts_bytes_not_yet_returned(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint8_t in[16];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    size_t n = tu_unhex("20 02 00 00 40 02 00", in, sizeof in); /* CONNACK + 3 bytes of PUBACK */
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_int_equal(mqttc_decoder_pending(&d), 7);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_CONNACK);
    assert_int_equal(mqttc_decoder_pending(&d), 3);
    assert_code(mqttc_decoder_next(&d, &p), 0);
    assert_int_equal(mqttc_decoder_pending(&d), 3);
    n = tu_unhex("05", in, sizeof in);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), 1);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_PUBACK);
    assert_int_equal(p.u.packet_id, 5);
    assert_int_equal(mqttc_decoder_pending(&d), 0);
}

static void test_space_is_zero_when_full_until_next_frees_room(void **state)
{
    (void)state;
    uint8_t buf[16];
    uint8_t in[32];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    /* Five PUBACKs: 20 bytes, of which 16 fit. */
    size_t n = tu_unhex("40 02 00 01 40 02 00 02 40 02 00 03 40 02 00 04 40 02 00 05", in,
                     sizeof in);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), 16);
    size_t space = 99;
    (void)mqttc_decoder_space(&d, &space);
    assert_int_equal(space, 0);
    assert_int_equal(mqttc_decoder_feed(&d, in + 16, 4), 0);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.u.packet_id, 1);
    uint8_t *sp = mqttc_decoder_space(&d, &space);
    assert_true(space >= 4);
    assert_non_null(sp);
    memcpy(sp, in + 16, 4);
    mqttc_decoder_commit(&d, 4);
    for (uint16_t id = 2; id <= 5; id++) {
        assert_code(mqttc_decoder_next(&d, &p), 1);
        assert_int_equal(p.type, MQTTC_PUBACK);
        assert_int_equal(p.u.packet_id, id);
    }
    assert_code(mqttc_decoder_next(&d, &p), 0);
}

static void test_packet_exactly_filling_the_buffer_is_accepted(void **state)
{
    (void)state;
    uint8_t buf[16];
    uint8_t in[32];
    mqttc_decoder d;
    mqttc_packet p;
    /* PUBLISH QoS 0, RL 14: topic "t" + 11 payload bytes = 16 bytes in all. */
    size_t n = tu_unhex("30 0E 00 01 74 30 31 32 33 34 35 36 37 38 39 41", in, sizeof in);
    assert_int_equal(n, 16);
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    assert_int_equal(mqttc_decoder_feed(&d, in, n), 16);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.u.publish.payload_len, 11);
    assert_int_equal(p.u.publish.total_len, 11);
    assert_memory_equal(p.u.publish.payload, "0123456789A", 11);

    /* One byte more does not fit and is not streamed. */
    n = tu_unhex("30 0F 00 01 74 30 31 32 33 34 35 36 37 38 39 41 42", in, sizeof in);
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    const struct feeder f = { ONE, 1, false };
    static struct recorder rec;
    rec.n = 0;
    assert_code(drive(&d, in, n, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(rec.n, 0);
}

static void test_max_packet_is_enforced_at_the_boundary(void **state)
{
    (void)state;
    uint8_t buf[256];
    uint8_t in[32];
    mqttc_decoder d;
    static struct recorder rec;
    const struct feeder f = { ALL, 1, false };
    /* SUBACK with 8 codes: RL 10, 12 bytes in all. */
    size_t n = tu_unhex("90 0A 00 01 00 01 02 00 01 02 00 01", in, sizeof in);
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 12, false), 0);
    d.decode = mqttc_decode;
    rec.n = 0;
    assert_code(drive(&d, in, n, &f, record, &rec), 0);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.fp[0], "SUBACK id=1 codes=00,01,02,00,01,02,00,01");

    /* 9 codes: 13 bytes, one over. */
    n = tu_unhex("90 0B 00 01 00 01 02 00 01 02 00 01 02", in, sizeof in);
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 12, false), 0);
    d.decode = mqttc_decode;
    rec.n = 0;
    assert_code(drive(&d, in, n, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(rec.n, 0);

    /* The limit applies to PUBLISH with streaming on as well. */
    n = tu_unhex("30 0B 00 01 74 61 62 63 64 65 66 67 68", in, sizeof in);
    assert_code(mqttc_decoder_init(&d, buf, 16, 12, true), 0);
    d.decode = mqttc_decode;
    rec.n = 0;
    assert_code(drive(&d, in, n, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
}

static void test_256mb_claim_is_rejected_from_the_header_alone(void **state)
{
    (void)state;
    uint8_t buf[256];
    uint8_t in[8];
    mqttc_decoder d;
    mqttc_packet p;
    /* PUBLISH claiming Remaining Length 268,435,455: nothing else arrives. */
    size_t n = tu_unhex("30 FF FF FF 7F", in, sizeof in);

    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 1024u * 1024u, true), 0);
    d.decode = mqttc_decode;
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_PACKET_TOO_LARGE);

    /* Without streaming it cannot fit the buffer, whatever max_packet says. */
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_PACKET_TOO_LARGE);

    /* Also for a type that can never be streamed. */
    n = tu_unhex("90 FF FF FF 7F", in, sizeof in);
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_PACKET_TOO_LARGE);
}

static void test_streaming_accepts_protocol_maximum_when_unlimited(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint8_t in[16];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    /* Remaining Length 268,435,450: 268,435,455 bytes in all, legal by any reading of
       "the protocol maximum". */
    size_t n = tu_unhex("30 FA FF FF 7F", in, sizeof in);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), 0);
    n = tu_unhex("00 01 74 61 62 63", in, sizeof in); /* topic "t", payload "abc"... */
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    size_t got = 0;
    for (int i = 0; i < 8 && got < 3; i++) {
        int rc = mqttc_decoder_next(&d, &p);
        if (rc == 0) {
            break;
        }
        assert_code(rc, 1);
        assert_int_equal(p.type, MQTTC_PUBLISH);
        assert_int_equal(p.u.publish.topic.len, 1);
        assert_memory_equal(p.u.publish.topic.data, "t", 1);
        assert_int_equal(p.u.publish.total_len, 268435450u - 3u);
        assert_int_equal(p.u.publish.offset, got);
        assert_true(p.u.publish.payload_len <= 3 - got);
        if (p.u.publish.payload_len > 0) {
            assert_memory_equal(p.u.publish.payload, &"abc"[got], p.u.publish.payload_len);
        }
        got += p.u.publish.payload_len;
    }
    /* A piece may wait for more bytes, but a full buffer's worth must come out. */
    static uint8_t filler[256];
    memset(filler, 'z', sizeof filler);
    size_t fed = 0;
    for (int i = 0; i < 64 && fed < sizeof filler; i++) {
        fed += mqttc_decoder_feed(&d, filler + fed, sizeof filler - fed);
        int rc = 1;
        for (int j = 0; j < DRAIN_LIMIT && rc == 1; j++) {
            rc = mqttc_decoder_next(&d, &p);
            if (rc == 1) {
                assert_int_equal(p.u.publish.offset, got);
                got += p.u.publish.payload_len;
                assert_true(got <= 3 + fed);
            }
        }
        assert_code(rc, 0);
    }
    assert_int_equal(fed, sizeof filler);
    assert_true(got >= 3);
}

static void test_publish_larger_than_buffer_without_streaming_is_too_large(void **state)
{
    (void)state;
    static uint8_t in[3 + 200];
    /* PUBLISH QoS 1, RL 200: topic "t", id 1, 195 payload bytes. */
    in[0] = 0x32;
    in[1] = 0xC8; /* 200 = 0x48 | 0x80 */
    in[2] = 0x01;
    in[3] = 0x00;
    in[4] = 0x01;
    in[5] = 't';
    in[6] = 0x00;
    in[7] = 0x01;
    memset(in + 8, 'p', sizeof in - 8);
    const struct feeder feeders[] = { { ALL, 1, false }, { ONE, 1, false }, { FIB, 10, true } };
    for (size_t i = 0; i < sizeof feeders / sizeof feeders[0]; i++) {
        uint8_t buf[64];
        mqttc_decoder d;
        static struct recorder rec;
        rec.n = 0;
        assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
        d.decode = mqttc_decode;
        assert_code(drive(&d, in, sizeof in, &feeders[i], record, &rec),
                  MQTTC_ERR_PACKET_TOO_LARGE);
        assert_int_equal(rec.n, 0);
    }
}

static void test_non_publish_larger_than_buffer_is_too_large_even_when_streaming(void **state)
{
    (void)state;
    static uint8_t in[3 + 300];
    /* SUBACK, RL 300: id 1 and 298 return codes. */
    in[0] = 0x90;
    in[1] = 0xAC; /* 300 = 0x2C | 0x80, then 0x02 */
    in[2] = 0x02;
    in[3] = 0x00;
    in[4] = 0x01;
    memset(in + 5, 0x01, sizeof in - 5);
    uint8_t buf[64];
    mqttc_decoder d;
    static struct recorder rec;
    rec.n = 0;
    const struct feeder f = { MIXED, sizeof MIXED / sizeof MIXED[0], false };
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    assert_code(drive(&d, in, sizeof in, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(rec.n, 0);
}

/* ---- streaming a large PUBLISH -------------------------------------------- */

#define BIG_PAYLOAD (100u * 1024u)
#define BIG_TOPIC "big/topic"
#define BIG_ID 0x4242u

/* PUBACK 1, then PUBLISH QoS 1 retain with a 100 KB payload, then PINGRESP and PUBACK 0x4242. */
static uint8_t big_stream[10 + 9 + 2 + BIG_PAYLOAD + 6];
static const uint8_t *big_payload;

static size_t build_big_stream(void)
{
    static const uint8_t before[] = {
        0x40, 0x02, 0x00, 0x01, /* PUBACK 1 */
        0x33, 0x8D, 0xA0, 0x06, /* PUBLISH QoS 1 retain, RL 102413 = 13 + 32*128 + 6*16384 */
        0x00, 0x09,             /* topic length 9 */
    };
    static const uint8_t after[] = {
        0xD0, 0x00,             /* PINGRESP */
        0x40, 0x02, 0x42, 0x42, /* PUBACK 0x4242 */
    };
    size_t o = 0;
    memcpy(big_stream + o, before, sizeof before);
    o += sizeof before;
    memcpy(big_stream + o, BIG_TOPIC, 9);
    o += 9;
    big_stream[o++] = (uint8_t)(BIG_ID >> 8);
    big_stream[o++] = (uint8_t)(BIG_ID & 0xFF);
    big_payload = big_stream + o;
    lcg_state = 7u;
    for (size_t i = 0; i < BIG_PAYLOAD; i++) {
        big_stream[o++] = (uint8_t)lcg();
    }
    memcpy(big_stream + o, after, sizeof after);
    o += sizeof after;
    assert_int_equal(o, sizeof big_stream);
    assert_int_equal(2u + 9u + 2u + BIG_PAYLOAD, 102413u);
    return o;
}

struct piece_check {
    const uint8_t *dbuf; /* the decoder's buffer: pieces must point into it */
    size_t dcap;
    size_t next_off;     /* where the next piece must start */
    size_t pieces;
    bool started, done;
    struct recorder others; /* packets around the streamed one */
};

static void check_piece(const mqttc_packet *p, void *ctx)
{
    struct piece_check *c = ctx;
    bool is_big = p->type == MQTTC_PUBLISH && !c->done;
    if (!is_big) {
        record(p, &c->others);
        return;
    }
    const mqttc_publish *m = &p->u.publish;
    c->started = true;
    assert_int_equal(c->others.n, 1); /* the PUBACK before it came first */
    assert_int_equal(m->topic.len, 9);
    assert_memory_equal(m->topic.data, BIG_TOPIC, 9);
    assert_int_equal(m->packet_id, BIG_ID);
    assert_int_equal(m->qos, 1);
    assert_true(m->retain);
    assert_false(m->dup);
    assert_int_equal(m->total_len, BIG_PAYLOAD);
    if (m->offset != c->next_off) {
        print_error("piece %zu starts at %zu, expected %zu\n", c->pieces, m->offset,
                    c->next_off);
        fail();
    }
    assert_true(m->payload_len <= BIG_PAYLOAD - m->offset);
    if (m->payload_len > 0) {
        assert_true(m->payload >= c->dbuf && m->payload + m->payload_len <= c->dbuf + c->dcap);
        assert_memory_equal(m->payload, big_payload + m->offset, m->payload_len);
    }
    c->next_off += m->payload_len;
    c->pieces++;
    if (c->next_off == BIG_PAYLOAD) {
        c->done = true;
    }
}

static void stream_big(const struct feeder *f, size_t cap)
{
    size_t len = build_big_stream();
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    mqttc_decoder d;
    assert_code(mqttc_decoder_init(&d, buf, cap, 0, true), 0);
    d.decode = mqttc_decode;
    static struct piece_check c;
    memset(&c, 0, sizeof c);
    c.dbuf = buf;
    c.dcap = cap;
    assert_code(drive(&d, big_stream, len, f, check_piece, &c), 0);
    assert_true(c.started);
    assert_true(c.done);
    assert_int_equal(c.next_off, BIG_PAYLOAD);
    assert_true(c.pieces >= BIG_PAYLOAD / cap); /* it really came in pieces */
    static char want[3][FP_CAP] = { "PUBACK id=1", "PINGRESP", "PUBACK id=16962" };
    assert_records(&c.others, want, 3);
    assert_int_equal(mqttc_decoder_pending(&d), 0);
    free(buf);
}

static void test_streaming_100kb_payload_through_256_byte_buffer(void **state)
{
    (void)state;
    const struct feeder mixed = { MIXED, sizeof MIXED / sizeof MIXED[0], false };
    const struct feeder all = { ALL, 1, false };
    stream_big(&mixed, 256);
    stream_big(&all, 256);
}

static void test_streaming_100kb_payload_one_byte_at_a_time(void **state)
{
    (void)state;
    const struct feeder one = { ONE, 1, false };
    stream_big(&one, 256);
}

static void test_streaming_100kb_payload_via_space_and_commit(void **state)
{
    (void)state;
    const struct feeder fib = { FIB, sizeof FIB / sizeof FIB[0], true };
    const struct feeder all = { ALL, 1, true };
    stream_big(&fib, 256);
    stream_big(&all, 256);
    stream_big(&fib, 32); /* small: the held header takes 17 of the 32 bytes */
}

static void test_streaming_publish_that_fits_arrives_whole(void **state)
{
    (void)state;
    build_stream();
    uint8_t buf[LARGEST_IN_STREAM];
    mqttc_decoder d;
    static struct recorder rec;
    rec.n = 0;
    const struct feeder f = { ONE, 1, false };
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    assert_code(drive(&d, mixed_stream, sizeof mixed_stream, &f, record, &rec), 0);
    assert_records(&rec, stream_expect, stream_n_expect);
}

static void test_streamed_publish_topic_must_fit_in_buffer(void **state)
{
    (void)state;
    static uint8_t in[5 + 300 + 100];
    /* PUBLISH QoS 0, RL 402: a 300-byte topic and 100 payload bytes. */
    in[0] = 0x30;
    in[1] = 0x92; /* 402 = 0x12 | 0x80, then 0x03 */
    in[2] = 0x03;
    in[3] = 0x01; /* topic length 300 = 0x012C */
    in[4] = 0x2C;
    memset(in + 5, 'a', sizeof in - 5);
    uint8_t buf[64];
    mqttc_decoder d;
    static struct recorder rec;
    rec.n = 0;
    const struct feeder f = { ALL, 1, false };
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    assert_code(drive(&d, in, sizeof in, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(rec.n, 0);
}

/* A streamed PUBLISH whose fixed and variable header fill the whole buffer
 * leaves no room for payload: an error, not a stall (found by fuzzing). */
static void test_streamed_publish_header_filling_buffer_is_too_large(void **state)
{
    (void)state;
    /* PUBLISH QoS 0, RL 100: topic of 12 bytes; 2 + 2 + 12 = 16 = the buffer. */
    static uint8_t in[2 + 100];
    in[0] = 0x30;
    in[1] = 100;
    in[2] = 0x00;
    in[3] = 12;
    memset(in + 4, 'b', sizeof in - 4);
    uint8_t buf[16];
    mqttc_decoder d;
    static struct recorder rec;
    rec.n = 0;
    const struct feeder f = { ALL, 1, false };
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    assert_code(drive(&d, in, sizeof in, &f, record, &rec), MQTTC_ERR_PACKET_TOO_LARGE);
    assert_int_equal(rec.n, 0);
}

/* ---- errors ------------------------------------------------------------------ */

static int first_error(const char *hex, bool stream)
{
    uint8_t in[64];
    size_t n = tu_unhex(hex, in, sizeof in);
    uint8_t buf[64];
    mqttc_decoder d;
    static struct recorder rec;
    rec.n = 0;
    const struct feeder f = { ONE, 1, false };
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, stream), 0);
    d.decode = mqttc_decode;
    return drive(&d, in, n, &f, record, &rec);
}

static void test_malformed_input_gives_the_codec_errors(void **state)
{
    (void)state;
    for (int s = 0; s <= 1; s++) {
        bool st = s != 0;
        assert_code(first_error("30 FF FF FF FF 7F", st), MQTTC_ERR_MALFORMED_LENGTH);
        assert_code(first_error("00 00", st), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(first_error("F0 00", st), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(first_error("41 02 00 01", st), MQTTC_ERR_BAD_FLAGS);
        assert_code(first_error("60 02 00 01", st), MQTTC_ERR_BAD_FLAGS);
        assert_code(first_error("36 05 00 01 74 00 01", st), MQTTC_ERR_BAD_QOS);
        assert_code(first_error("20 03 00 00 00", st), MQTTC_ERR_MALFORMED);
        assert_code(first_error("20 02 00 06", st), MQTTC_ERR_MALFORMED);
        assert_code(first_error("40 02 00 00", st), MQTTC_ERR_MALFORMED);
        assert_code(first_error("90 02 00 01", st), MQTTC_ERR_MALFORMED);
        assert_code(first_error("30 04 00 01 2B 41", st), MQTTC_ERR_BAD_TOPIC);
        assert_code(first_error("30 05 00 05 61 62 63", st), MQTTC_ERR_MALFORMED);
        /* a good packet first, then a bad one */
        assert_code(first_error("D0 00 D0 01 00", st), MQTTC_ERR_MALFORMED);
    }
}

static void test_errors_are_sticky_until_reset(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint8_t in[16];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    size_t n = tu_unhex("20 03 00 00 00", in, sizeof in); /* CONNACK with RL 3 */
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_MALFORMED);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_MALFORMED);

    n = tu_unhex("20 02 00 00", in, sizeof in); /* a good CONNACK changes nothing */
    (void)mqttc_decoder_feed(&d, in, n);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_MALFORMED);
    size_t space = 0;
    (void)mqttc_decoder_space(&d, &space);
    mqttc_decoder_commit(&d, 0);
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_MALFORMED);

    /* The error is remembered, not found again in the bytes: even if the
       buffer now held nothing but valid PINGRESPs, the answer stays the same. */
    for (size_t i = 0; i + 1 < sizeof buf; i += 2) {
        buf[i] = 0xD0;
        buf[i + 1] = 0x00;
    }
    assert_code(mqttc_decoder_next(&d, &p), MQTTC_ERR_MALFORMED);

    mqttc_decoder_reset(&d);
    assert_int_equal(mqttc_decoder_pending(&d), 0);
    assert_code(mqttc_decoder_next(&d, &p), 0);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_CONNACK);
    assert_false(p.u.connack.session_present);
    assert_int_equal(p.u.connack.return_code, 0);
}

static void test_reset_discards_buffered_bytes(void **state)
{
    (void)state;
    uint8_t buf[64];
    uint8_t in[16];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, false), 0);
    d.decode = mqttc_decode;
    size_t n = tu_unhex("30 0A 00 03 61", in, sizeof in); /* half a PUBLISH */
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), 0);
    mqttc_decoder_reset(&d);
    assert_int_equal(mqttc_decoder_pending(&d), 0);
    n = tu_unhex("40 02 00 2A", in, sizeof in);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_PUBACK);
    assert_int_equal(p.u.packet_id, 42);
}

static void test_reset_in_the_middle_of_a_streamed_publish(void **state)
{
    (void)state;
    size_t len = build_big_stream();
    uint8_t buf[256];
    mqttc_decoder d;
    mqttc_packet p;
    assert_code(mqttc_decoder_init(&d, buf, sizeof buf, 0, true), 0);
    d.decode = mqttc_decode;
    /* The PUBACK, the PUBLISH header and about 2 KB of its payload. */
    size_t fed = 0;
    int pieces = 0;
    for (int i = 0; i < 100 && fed < 2048; i++) {
        fed += mqttc_decoder_feed(&d, big_stream + fed, len - fed);
        int rc = 1;
        for (int j = 0; j < DRAIN_LIMIT && rc == 1; j++) {
            rc = mqttc_decoder_next(&d, &p);
            pieces += rc == 1 && p.type == MQTTC_PUBLISH;
        }
        assert_code(rc, 0);
    }
    assert_true(pieces > 0);
    mqttc_decoder_reset(&d);
    uint8_t in[8];
    size_t n = tu_unhex("D0 00 40 02 00 07", in, sizeof in);
    assert_int_equal(mqttc_decoder_feed(&d, in, n), n);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_PINGRESP);
    assert_code(mqttc_decoder_next(&d, &p), 1);
    assert_int_equal(p.type, MQTTC_PUBACK);
    assert_int_equal(p.u.packet_id, 7);
    assert_code(mqttc_decoder_next(&d, &p), 0);
}

/* ---- robustness ------------------------------------------------------------ */

struct fuzz_ctx {
    const uint8_t *buf;
    size_t cap;
    size_t packets;
};

static void check_inside(const struct fuzz_ctx *c, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    const uint8_t *q = p;
    if (!(q >= c->buf && q + n <= c->buf + c->cap)) {
        print_error("pointer outside the decoder's buffer\n");
        fail();
    }
}

static void fuzz_packet(const mqttc_packet *p, void *ctx)
{
    struct fuzz_ctx *c = ctx;
    c->packets++;
    assert_in_range(p->type, 1, 14);
    if (p->type == MQTTC_PUBLISH) {
        const mqttc_publish *m = &p->u.publish;
        assert_true(m->qos <= 2);
        assert_true(m->offset <= m->total_len);
        assert_true(m->payload_len <= m->total_len - m->offset);
        check_inside(c, m->topic.data, m->topic.len);
        check_inside(c, m->payload, m->payload_len);
    } else if (p->type == MQTTC_SUBACK) {
        check_inside(c, p->u.suback.codes, p->u.suback.count);
    } else if (p->type == MQTTC_CONNECT) {
        check_inside(c, p->u.connect.client_id.data, p->u.connect.client_id.len);
    }
}

static bool is_stream_error(int rc)
{
    switch (rc) {
    case MQTTC_ERR_MALFORMED_LENGTH:
    case MQTTC_ERR_PACKET_TOO_LARGE:
    case MQTTC_ERR_BAD_PACKET_TYPE:
    case MQTTC_ERR_BAD_FLAGS:
    case MQTTC_ERR_MALFORMED:
    case MQTTC_ERR_BAD_UTF8:
    case MQTTC_ERR_BAD_TOPIC:
    case MQTTC_ERR_BAD_FILTER:
    case MQTTC_ERR_BAD_QOS:
    case MQTTC_ERR_BAD_CLIENT_ID:
    case MQTTC_ERR_BAD_WILL:
        return true;
    default:
        return false;
    }
}

/* Well-formed packets that the generator strings together and then damages. */
static const char *const FUZZ_TEMPLATES[] = {
    "20 02 01 00",
    "30 07 00 03 61 2F 62 68 69",
    "33 0A 00 03 74 2F 31 01 02 78 79 7A",
    "3C 08 00 02 71 32 BE EF 00 FF",
    "30 1A 00 02 74 74 30 31 32 33 34 35 36 37 38 39 30 31 32 33 34 35 36 37 38 39 41 42",
    "40 02 00 07",
    "50 02 00 08",
    "62 02 00 09",
    "70 02 00 0A",
    "90 06 00 0A 00 01 02 80",
    "B0 02 00 0B",
    "D0 00",
    "C0 00",
    "E0 00",
    "82 06 00 01 00 01 23 01",
    "A2 05 00 01 00 01 2B",
    "10 0D 00 04 4D 51 54 54 04 02 00 3C 00 01 78",
};
#define N_TEMPLATES (sizeof FUZZ_TEMPLATES / sizeof FUZZ_TEMPLATES[0])

/* Fills `out` with templates, some with a byte changed, some followed by junk. */
static size_t fuzz_input(uint8_t *out, size_t cap)
{
    size_t len = 0;
    size_t target = lcg() % cap;
    for (int k = 0; k < 64 && len < target; k++) {
        uint8_t pkt[64];
        size_t n = tu_unhex(FUZZ_TEMPLATES[lcg() % N_TEMPLATES], pkt, sizeof pkt);
        switch (lcg() % 8u) {
        case 0: /* change one byte */
            pkt[lcg() % n] = (uint8_t)lcg();
            break;
        case 1: /* change a length or flag nibble slightly */
            pkt[lcg() % (n < 3 ? n : 3)] ^= (uint8_t)(1u << (lcg() % 8u));
            break;
        case 2: /* cut it short */
            n = 1 + lcg() % n;
            break;
        default:
            break;
        }
        for (size_t i = 0; i < n && len < cap; i++) {
            out[len++] = pkt[i];
        }
        if (lcg() % 16u == 0) { /* junk */
            size_t junk = lcg() % 8u;
            for (size_t i = 0; i < junk && len < cap; i++) {
                out[len++] = (uint8_t)lcg();
            }
        }
    }
    return len;
}

static void test_random_bytes_never_crash(void **state)
{
    (void)state;
    static const size_t caps[] = { 16, 17, 40, 256 };
    static const uint32_t maxes[] = { 0, 20, 100, 5000 };
    static uint8_t data[400];
    static size_t chunk[8];
    lcg_state = 0xC0FFEEu;
    size_t packets = 0;
    size_t errors = 0;
    for (int round = 0; round < 3000; round++) {
        size_t cap = caps[lcg() % 4u];
        bool stream = (lcg() & 1u) != 0;
        uint32_t max = maxes[lcg() % 4u];
        size_t len = fuzz_input(data, sizeof data);
        for (size_t i = 0; i < 8; i++) {
            chunk[i] = 1 + lcg() % 40u;
        }
        const struct feeder f = { chunk, 8, (lcg() & 1u) != 0 };
        uint8_t *buf = malloc(cap);
        assert_non_null(buf);
        mqttc_decoder d;
        assert_code(mqttc_decoder_init(&d, buf, cap, max, stream), 0);
        d.decode = mqttc_decode;
        struct fuzz_ctx c = { buf, cap, 0 };
        int rc = drive(&d, data, len, &f, fuzz_packet, &c);
        packets += c.packets;
        if (rc < 0) {
            errors++;
            if (!is_stream_error(rc)) {
                print_error("round %d: unexpected code %d (%s)\n", round, rc, mqttc_errname(rc));
                fail();
            }
            mqttc_packet p;
            assert_code(mqttc_decoder_next(&d, &p), rc); /* sticky */
        }
        free(buf);
    }
    /* The generator reaches both the packet and the error paths. */
    assert_true(packets > 1000);
    assert_true(errors > 300);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_null_buffer_and_tiny_capacity),
        cmocka_unit_test(test_stream_fed_all_at_once_yields_every_packet),
        cmocka_unit_test(test_stream_fed_one_byte_at_a_time_yields_every_packet),
        cmocka_unit_test(test_stream_split_in_two_at_every_point_yields_every_packet),
        cmocka_unit_test(test_stream_larger_than_buffer_is_decoded_in_rounds),
        cmocka_unit_test(test_space_and_commit_path_yields_every_packet),
        cmocka_unit_test(test_pending_counts_bytes_not_yet_returned),
        cmocka_unit_test(test_space_is_zero_when_full_until_next_frees_room),
        cmocka_unit_test(test_packet_exactly_filling_the_buffer_is_accepted),
        cmocka_unit_test(test_max_packet_is_enforced_at_the_boundary),
        cmocka_unit_test(test_256mb_claim_is_rejected_from_the_header_alone),
        cmocka_unit_test(test_streaming_accepts_protocol_maximum_when_unlimited),
        cmocka_unit_test(test_publish_larger_than_buffer_without_streaming_is_too_large),
        cmocka_unit_test(test_non_publish_larger_than_buffer_is_too_large_even_when_streaming),
        cmocka_unit_test(test_streaming_100kb_payload_through_256_byte_buffer),
        cmocka_unit_test(test_streaming_100kb_payload_one_byte_at_a_time),
        cmocka_unit_test(test_streaming_100kb_payload_via_space_and_commit),
        cmocka_unit_test(test_streaming_publish_that_fits_arrives_whole),
        cmocka_unit_test(test_streamed_publish_topic_must_fit_in_buffer),
        cmocka_unit_test(test_streamed_publish_header_filling_buffer_is_too_large),
        cmocka_unit_test(test_malformed_input_gives_the_codec_errors),
        cmocka_unit_test(test_errors_are_sticky_until_reset),
        cmocka_unit_test(test_reset_discards_buffered_bytes),
        cmocka_unit_test(test_reset_in_the_middle_of_a_streamed_publish),
        cmocka_unit_test(test_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
