/*
 * Unit tests for the packet codec (include/mqttc/codec.h).
 *
 * Golden vectors are written by hand from the field layouts of MQTT 3.1.1
 * (OASIS Standard, sections 2 and 3), not produced by the encoder. Every
 * encoder is also run with every buffer size from 0 to size-1 and must fail
 * with MQTTC_ERR_BUFFER_TOO_SMALL without writing past `cap` (canary bytes).
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
#include "mqttc/error.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

static void print_hex(const char *label, const uint8_t *b, size_t n)
{
    char line[3 * 64 + 8];
    size_t shown = n < 64 ? n : 64;
    size_t o = 0;
    for (size_t i = 0; i < shown; i++) {
        o += (size_t)snprintf(line + o, sizeof line - o, "%02X ", b[i]);
    }
    line[o] = '\0';
    print_error("%s (%zu bytes): %s%s\n", label, n, line, n > shown ? "..." : "");
}

#define assert_bytes(got, got_len, want, want_len)                                           \
    check_bytes((got), (got_len), (want), (want_len), __FILE__, __LINE__)

static void check_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len,
                        const char *file, int line)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        for (size_t i = 0; i < got_len && i < want_len; i++) {
            if (got[i] != want[i]) {
                print_error("first difference at byte %zu: got %02X, want %02X\n", i, got[i],
                            want[i]);
                break;
            }
        }
        print_hex("got ", got, got_len);
        print_hex("want", want, want_len);
        _fail(file, line);
    }
}

/* Compares a decoded string with a literal (which may hold NUL bytes). */
#define assert_str(s, lit) check_str((s), (lit), sizeof(lit) - 1, __FILE__, __LINE__)

static void check_str(mqttc_str s, const char *want, size_t want_len, const char *file, int line)
{
    if (s.data == NULL || s.len != want_len || memcmp(s.data, want, want_len) != 0) {
        print_error("string: got %s len %u \"%.*s\", want len %zu \"%.*s\"\n",
                    s.data == NULL ? "NULL" : "data", (unsigned)s.len, s.data == NULL ? 0 : s.len,
                    s.data == NULL ? "" : s.data, want_len, (int)want_len, want);
        _fail(file, line);
    }
}

/* A copy of exactly `len` bytes on the heap, so ASan catches any read past the end. */
static uint8_t *heap_copy(const uint8_t *src, size_t len)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    if (len > 0) {
        memcpy(p, src, len);
    }
    return p;
}

/* Decodes a body given as hex (from an exact-size heap copy); returns mqttc_decode's result. */
static int decode_hex(uint8_t first, const char *hex)
{
    uint8_t tmp[256];
    size_t n = tu_unhex(hex, tmp, sizeof tmp);
    uint8_t *body = heap_copy(tmp, n);
    mqttc_packet p;
    memset(&p, 0, sizeof p);
    int rc = mqttc_decode(first, body, n, &p);
    free(body);
    return rc;
}

/* Splits a whole packet with mqttc_fixed_header_parse() and decodes its body. */
static int decode_packet(const uint8_t *pkt, size_t len, mqttc_packet *out)
{
    uint8_t first = 0;
    uint32_t remaining = 0;
    int hs = mqttc_fixed_header_parse(pkt, len, &first, &remaining);
    assert_in_range(hs, 2, 5);
    assert_int_equal(first, pkt[0]);
    assert_int_equal((size_t)hs + remaining, len);
    memset(out, 0, sizeof *out);
    int rc = mqttc_decode(first, pkt + hs, remaining, out);
    if (rc == 0) {
        assert_int_equal(out->type, pkt[0] >> 4);
        assert_int_equal(out->flags, pkt[0] & 0x0F);
        assert_int_equal(out->remaining_length, remaining);
    }
    return rc;
}

/* ---- encoder harness: golden bytes, every short buffer, canaries ---------- */

enum enc_kind {
    ENC_CONNECT,
    ENC_CONNACK,
    ENC_PUBLISH,
    ENC_PUBLISH_HEADER,
    ENC_ACK,
    ENC_EMPTY,
    ENC_SUBSCRIBE,
    ENC_SUBACK,
    ENC_UNSUBSCRIBE
};

struct enc_call {
    enum enc_kind kind;
    const mqttc_connect *connect;
    const mqttc_publish *publish;
    mqttc_packet_type type;
    bool session_present;
    uint8_t code;
    uint16_t packet_id;
    const mqttc_subscription *subs;
    const mqttc_str *filters;
    const uint8_t *codes;
    size_t n;
};

static int run_encoder(const struct enc_call *c, uint8_t *buf, size_t cap)
{
    switch (c->kind) {
    case ENC_CONNECT:
        return mqttc_encode_connect(buf, cap, c->connect);
    case ENC_CONNACK:
        return mqttc_encode_connack(buf, cap, c->session_present, c->code);
    case ENC_PUBLISH:
        return mqttc_encode_publish(buf, cap, c->publish);
    case ENC_PUBLISH_HEADER:
        return mqttc_encode_publish_header(buf, cap, c->publish);
    case ENC_ACK:
        return mqttc_encode_ack(buf, cap, c->type, c->packet_id);
    case ENC_EMPTY:
        return mqttc_encode_empty(buf, cap, c->type);
    case ENC_SUBSCRIBE:
        return mqttc_encode_subscribe(buf, cap, c->packet_id, c->subs, c->n);
    case ENC_SUBACK:
        return mqttc_encode_suback(buf, cap, c->packet_id, c->codes, c->n);
    case ENC_UNSUBSCRIBE:
        return mqttc_encode_unsubscribe(buf, cap, c->packet_id, c->filters, c->n);
    }
    fail();
    return 0;
}

#define CANARY 0xA5u
#define SLACK 16u

static void check_canary(const uint8_t *buf, size_t from, size_t to, size_t cap)
{
    for (size_t i = from; i < to; i++) {
        if (buf[i] != CANARY) {
            print_error("byte %zu written although cap was %zu\n", i, cap);
            fail();
        }
    }
}

/*
 * Runs the encoder with cap 0 .. want_len-1 (must be BUFFER_TOO_SMALL and
 * write nothing at or past cap), with cap == want_len and with a larger cap
 * (must produce exactly `want`).
 */
static void check_encoder(const struct enc_call *c, const uint8_t *want, size_t want_len)
{
    size_t size = want_len + SLACK;
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    for (size_t cap = 0; cap < want_len; cap++) {
        memset(buf, CANARY, size);
        int rc = run_encoder(c, buf, cap);
        if (rc != MQTTC_ERR_BUFFER_TOO_SMALL) {
            print_error("cap %zu of %zu\n", cap, want_len);
        }
        assert_code(rc, MQTTC_ERR_BUFFER_TOO_SMALL);
        check_canary(buf, cap, size, cap);
    }
    memset(buf, CANARY, size);
    assert_code(run_encoder(c, buf, want_len), (int)want_len);
    assert_bytes(buf, want_len, want, want_len);
    check_canary(buf, want_len, size, want_len);

    memset(buf, CANARY, size);
    assert_code(run_encoder(c, buf, size), (int)want_len);
    assert_bytes(buf, want_len, want, want_len);
    check_canary(buf, want_len, size, size);
    free(buf);
}

/* ---- Remaining Length (MQTT-2.2.3) --------------------------------------- */

static const struct {
    uint32_t value;
    uint8_t bytes[4];
    size_t n;
} VARINTS[] = {
    { 0u, { 0x00 }, 1 },
    { 127u, { 0x7F }, 1 },
    { 128u, { 0x80, 0x01 }, 2 },
    { 16383u, { 0xFF, 0x7F }, 2 },
    { 16384u, { 0x80, 0x80, 0x01 }, 3 },
    { 2097151u, { 0xFF, 0xFF, 0x7F }, 3 },
    { 2097152u, { 0x80, 0x80, 0x80, 0x01 }, 4 },
    { 268435455u, { 0xFF, 0xFF, 0xFF, 0x7F }, 4 },
};
#define N_VARINTS (sizeof VARINTS / sizeof VARINTS[0])

static void test_remaining_length_size_at_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VARINTS; i++) {
        assert_int_equal(mqttc_varint_size(VARINTS[i].value), VARINTS[i].n);
    }
    assert_int_equal(mqttc_varint_size(268435456u), 0);
    assert_int_equal(mqttc_varint_size(UINT32_MAX), 0);
}

static void test_remaining_length_encodes_golden_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VARINTS; i++) {
        uint8_t buf[4 + SLACK];
        for (size_t cap = 0; cap < VARINTS[i].n; cap++) {
            memset(buf, CANARY, sizeof buf);
            assert_code(mqttc_varint_encode(buf, cap, VARINTS[i].value),
                      MQTTC_ERR_BUFFER_TOO_SMALL);
            check_canary(buf, cap, sizeof buf, cap);
        }
        memset(buf, CANARY, sizeof buf);
        assert_code(mqttc_varint_encode(buf, sizeof buf, VARINTS[i].value), (int)VARINTS[i].n);
        assert_bytes(buf, VARINTS[i].n, VARINTS[i].bytes, VARINTS[i].n);
        check_canary(buf, VARINTS[i].n, sizeof buf, VARINTS[i].n);
    }
}

static void test_remaining_length_over_maximum_is_too_large(void **state)
{
    (void)state;
    uint8_t buf[8];
    assert_code(mqttc_varint_encode(buf, sizeof buf, 268435456u), MQTTC_ERR_TOO_LARGE);
    assert_code(mqttc_varint_encode(buf, sizeof buf, UINT32_MAX), MQTTC_ERR_TOO_LARGE);
}

static void test_remaining_length_decodes_golden_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VARINTS; i++) {
        uint8_t *b = heap_copy(VARINTS[i].bytes, VARINTS[i].n);
        uint32_t v = 0xDEADBEEF;
        assert_code(mqttc_varint_decode(b, VARINTS[i].n, &v), (int)VARINTS[i].n);
        assert_int_equal(v, VARINTS[i].value);
        free(b);
        /* Bytes after the last length byte are not part of it. */
        uint8_t longer[8] = { 0 };
        memcpy(longer, VARINTS[i].bytes, VARINTS[i].n);
        longer[VARINTS[i].n] = 0xFF;
        assert_code(mqttc_varint_decode(longer, sizeof longer, &v), (int)VARINTS[i].n);
        assert_int_equal(v, VARINTS[i].value);
    }
}

static void test_remaining_length_incomplete_needs_more(void **state)
{
    (void)state;
    uint32_t v = 0;
    for (size_t i = 0; i < N_VARINTS; i++) {
        for (size_t len = 0; len < VARINTS[i].n; len++) {
            uint8_t *b = heap_copy(VARINTS[i].bytes, len);
            assert_code(mqttc_varint_decode(b, len, &v), 0);
            free(b);
        }
    }
}

static void test_remaining_length_fifth_byte_is_malformed(void **state)
{
    (void)state;
    uint8_t b[8];
    uint32_t v = 0;
    size_t n = tu_unhex("FF FF FF FF 7F", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), MQTTC_ERR_MALFORMED_LENGTH);
    n = tu_unhex("80 80 80 80 01", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), MQTTC_ERR_MALFORMED_LENGTH);
    /* The fourth byte with its continuation bit is already known to be bad. */
    n = tu_unhex("FF FF FF FF", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), MQTTC_ERR_MALFORMED_LENGTH);
}

static void test_remaining_length_accepts_non_minimal_encoding(void **state)
{
    (void)state;
    uint8_t b[8];
    uint32_t v = 99;
    size_t n = tu_unhex("80 00", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), 2);
    assert_int_equal(v, 0);
    n = tu_unhex("80 80 80 00", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), 4);
    assert_int_equal(v, 0);
    n = tu_unhex("81 80 00", b, sizeof b);
    assert_code(mqttc_varint_decode(b, n, &v), 3);
    assert_int_equal(v, 1);
}

static void test_remaining_length_null_args_are_invalid(void **state)
{
    (void)state;
    uint8_t b[4] = { 0x05 };
    uint32_t v;
    assert_code(mqttc_varint_encode(NULL, 4, 5), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_varint_decode(NULL, 1, &v), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_varint_decode(b, 1, NULL), MQTTC_ERR_INVALID_ARG);
}

/* ---- fixed header (MQTT-2.2.1, MQTT-2.2.2 Table 2.2) --------------------- */

static void test_fixed_header_parse_reads_type_and_length(void **state)
{
    (void)state;
    uint8_t b[8];
    uint8_t first = 0;
    uint32_t rem = 0;
    size_t n = tu_unhex("30 07", b, sizeof b);
    assert_code(mqttc_fixed_header_parse(b, n, &first, &rem), 2);
    assert_int_equal(first, 0x30);
    assert_int_equal(rem, 7);
    n = tu_unhex("82 80 01", b, sizeof b);
    assert_code(mqttc_fixed_header_parse(b, n, &first, &rem), 3);
    assert_int_equal(first, 0x82);
    assert_int_equal(rem, 128);
    n = tu_unhex("3D FF FF FF 7F", b, sizeof b);
    assert_code(mqttc_fixed_header_parse(b, n, &first, &rem), 5);
    assert_int_equal(first, 0x3D);
    assert_int_equal(rem, 268435455u);
    n = tu_unhex("D0 00 FF", b, sizeof b); /* trailing bytes belong to the next packet */
    assert_code(mqttc_fixed_header_parse(b, n, &first, &rem), 2);
    assert_int_equal(first, 0xD0);
    assert_int_equal(rem, 0);
}

static void test_fixed_header_parse_incomplete_needs_more(void **state)
{
    (void)state;
    const uint8_t full[] = { 0x30, 0xFF, 0xFF, 0xFF, 0x7F };
    uint8_t first;
    uint32_t rem;
    for (size_t len = 0; len < sizeof full; len++) {
        uint8_t *b = heap_copy(full, len);
        assert_code(mqttc_fixed_header_parse(b, len, &first, &rem), 0);
        free(b);
    }
}

static void test_fixed_header_parse_fifth_length_byte_is_malformed(void **state)
{
    (void)state;
    uint8_t b[8];
    uint8_t first;
    uint32_t rem;
    size_t n = tu_unhex("30 FF FF FF FF 7F", b, sizeof b);
    assert_code(mqttc_fixed_header_parse(b, n, &first, &rem), MQTTC_ERR_MALFORMED_LENGTH);
}

static void test_fixed_header_parse_null_args_are_invalid(void **state)
{
    (void)state;
    uint8_t b[2] = { 0xD0, 0x00 };
    uint8_t first;
    uint32_t rem;
    assert_code(mqttc_fixed_header_parse(NULL, 2, &first, &rem), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_fixed_header_parse(b, 2, NULL, &rem), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_fixed_header_parse(b, 2, &first, NULL), MQTTC_ERR_INVALID_ARG);
}

/* Required flags from Table 2.2; -1 marks PUBLISH (DUP, QoS, RETAIN). */
static const int REQUIRED_FLAGS[16] = {
    [MQTTC_CONNECT] = 0,     [MQTTC_CONNACK] = 0,  [MQTTC_PUBLISH] = -1,
    [MQTTC_PUBACK] = 0,      [MQTTC_PUBREC] = 0,   [MQTTC_PUBREL] = 2,
    [MQTTC_PUBCOMP] = 0,     [MQTTC_SUBSCRIBE] = 2, [MQTTC_SUBACK] = 0,
    [MQTTC_UNSUBSCRIBE] = 2, [MQTTC_UNSUBACK] = 0, [MQTTC_PINGREQ] = 0,
    [MQTTC_PINGRESP] = 0,    [MQTTC_DISCONNECT] = 0,
};

static int expected_flags_rc(uint8_t first)
{
    unsigned type = first >> 4;
    unsigned flags = first & 0x0Fu;
    if (type == 0 || type == 15) {
        return MQTTC_ERR_BAD_PACKET_TYPE; /* MQTT-2.2.1: reserved */
    }
    if (type == MQTTC_PUBLISH) {
        unsigned qos = (flags >> 1) & 3u;
        if (qos == 3) {
            return MQTTC_ERR_BAD_QOS; /* MQTT-3.3.1-4 */
        }
        if (qos == 0 && (flags & 8u) != 0) {
            return MQTTC_ERR_BAD_FLAGS; /* MQTT-3.3.1-2: DUP 0 for QoS 0 */
        }
        return 0;
    }
    return (int)flags == REQUIRED_FLAGS[type] ? 0 : MQTTC_ERR_BAD_FLAGS; /* MQTT-2.2.2-2 */
}

/* A valid body for each type, so that only the flags decide the result. */
static size_t valid_body(uint8_t first, uint8_t *out, size_t cap)
{
    switch (first >> 4) {
    case MQTTC_CONNECT:
        return tu_unhex("00 04 4D 51 54 54 04 02 00 3C 00 01 78", out, cap);
    case MQTTC_CONNACK:
        return tu_unhex("00 00", out, cap);
    case MQTTC_PUBLISH:
        /* QoS 0: topic "t", payload 00 01; QoS 1/2: topic "t", packet id 1. */
        return tu_unhex("00 01 74 00 01", out, cap);
    case MQTTC_SUBSCRIBE:
        return tu_unhex("00 01 00 01 74 00", out, cap);
    case MQTTC_SUBACK:
        return tu_unhex("00 01 00", out, cap);
    case MQTTC_UNSUBSCRIBE:
        return tu_unhex("00 01 00 01 74", out, cap);
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBREL:
    case MQTTC_PUBCOMP:
    case MQTTC_UNSUBACK:
        return tu_unhex("00 01", out, cap);
    default:
        return 0;
    }
}

static void test_fixed_header_flags_follow_table_2_2_for_every_byte(void **state)
{
    (void)state;
    for (unsigned v = 0; v < 256; v++) {
        uint8_t first = (uint8_t)v;
        int want = expected_flags_rc(first);
        if (mqttc_fixed_header_check(first) != want) {
            print_error("first byte 0x%02X\n", first);
        }
        assert_code(mqttc_fixed_header_check(first), want);

        uint8_t hdr[2] = { first, 0x00 };
        uint8_t f = 0;
        uint32_t rem = 0;
        int hrc = mqttc_fixed_header_parse(hdr, 2, &f, &rem);
        if (hrc != (want == 0 ? 2 : want)) {
            print_error("first byte 0x%02X\n", first);
        }
        assert_code(hrc, want == 0 ? 2 : want);

        uint8_t body[32];
        size_t n = valid_body(first, body, sizeof body);
        mqttc_packet p;
        int drc = mqttc_decode(first, body, n, &p);
        if (drc != want) {
            print_error("first byte 0x%02X\n", first);
        }
        assert_code(drc, want);
    }
}

static void test_reserved_packet_types_are_rejected(void **state)
{
    (void)state;
    uint8_t b[2];
    uint8_t first;
    uint32_t rem;
    mqttc_packet p;
    const uint8_t body[2] = { 0x00, 0x01 };
    for (unsigned f = 0; f < 16; f++) {
        b[0] = (uint8_t)f; /* type 0 */
        b[1] = 0;
        assert_code(mqttc_fixed_header_check(b[0]), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(mqttc_fixed_header_parse(b, 2, &first, &rem), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(mqttc_decode(b[0], body, sizeof body, &p), MQTTC_ERR_BAD_PACKET_TYPE);
        b[0] = (uint8_t)(0xF0 | f); /* type 15 */
        assert_code(mqttc_fixed_header_check(b[0]), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(mqttc_fixed_header_parse(b, 2, &first, &rem), MQTTC_ERR_BAD_PACKET_TYPE);
        assert_code(mqttc_decode(b[0], body, sizeof body, &p), MQTTC_ERR_BAD_PACKET_TYPE);
    }
}

static void test_publish_qos3_is_bad_qos(void **state)
{
    (void)state;
    assert_code(mqttc_fixed_header_check(0x36), MQTTC_ERR_BAD_QOS);
    assert_code(mqttc_fixed_header_check(0x37), MQTTC_ERR_BAD_QOS);
    assert_code(mqttc_fixed_header_check(0x3E), MQTTC_ERR_BAD_QOS);
    assert_code(decode_hex(0x36, "00 01 74 00 01"), MQTTC_ERR_BAD_QOS);
}

static void test_publish_qos0_with_dup_is_bad_flags(void **state)
{
    (void)state;
    assert_code(mqttc_fixed_header_check(0x38), MQTTC_ERR_BAD_FLAGS);
    assert_code(mqttc_fixed_header_check(0x39), MQTTC_ERR_BAD_FLAGS);
    assert_code(decode_hex(0x38, "00 01 74 41"), MQTTC_ERR_BAD_FLAGS);
    assert_code(mqttc_fixed_header_check(0x3A), 0); /* DUP with QoS 1 is fine */
}

static void test_subscribe_unsubscribe_pubrel_require_flags_0010(void **state)
{
    (void)state;
    const uint8_t types[] = { MQTTC_PUBREL, MQTTC_SUBSCRIBE, MQTTC_UNSUBSCRIBE };
    for (size_t t = 0; t < sizeof types; t++) {
        for (unsigned f = 0; f < 16; f++) {
            uint8_t first = (uint8_t)(types[t] << 4 | f);
            assert_code(mqttc_fixed_header_check(first), f == 2 ? 0 : MQTTC_ERR_BAD_FLAGS);
        }
    }
    assert_code(decode_hex(0x80, "00 01 00 01 74 00"), MQTTC_ERR_BAD_FLAGS);
    assert_code(decode_hex(0xA0, "00 01 00 01 74"), MQTTC_ERR_BAD_FLAGS);
    assert_code(decode_hex(0x60, "00 01"), MQTTC_ERR_BAD_FLAGS);
}

/* ---- CONNECT (MQTT-3.1) --------------------------------------------------- */

static const uint8_t CONNECT_MIN[] = {
    0x10, 0x0F,                     /* CONNECT, Remaining Length 15 */
    0x00, 0x04, 'M', 'Q', 'T', 'T', /* protocol name */
    0x04,                           /* protocol level 4 */
    0x02,                           /* flags: clean session */
    0x00, 0x3C,                     /* keepalive 60 s */
    0x00, 0x03, 'a', 'b', 'c',      /* client id "abc" */
};

static const uint8_t CONNECT_FULL[] = {
    0x10, 0x23,                     /* CONNECT, Remaining Length 35 */
    0x00, 0x04, 'M', 'Q', 'T', 'T', /* protocol name */
    0x04,                           /* protocol level 4 */
    0xEC,                           /* user, password, will retain, will QoS 1, will */
    0x12, 0x34,                     /* keepalive 0x1234 */
    0x00, 0x03, 'c', 'i', 'd',      /* client id */
    0x00, 0x03, 'w', '/', 't',      /* will topic */
    0x00, 0x03, 'b', 'y', 'e',      /* will message */
    0x00, 0x04, 'u', 's', 'e', 'r', /* user name */
    0x00, 0x02, 0x00, 0xFF,         /* password: binary */
};

static const uint8_t CONNECT_WILL_QOS2[] = {
    0x10, 0x15,                     /* CONNECT, Remaining Length 21 */
    0x00, 0x04, 'M', 'Q', 'T', 'T', /* protocol name */
    0x04,                           /* protocol level 4 */
    0x96,                           /* user, will QoS 2, will, clean session */
    0x00, 0x00,                     /* keepalive 0: disabled */
    0x00, 0x01, 'x',                /* client id */
    0x00, 0x01, 't',                /* will topic */
    0x00, 0x00,                     /* will message: empty */
    0x00, 0x01, 'u',                /* user name */
};

static mqttc_connect connect_min(void)
{
    mqttc_connect c;
    memset(&c, 0, sizeof c);
    c.client_id = (mqttc_str){ "abc", 3 };
    c.keepalive = 60;
    c.clean_session = true;
    return c;
}

static mqttc_connect connect_full(void)
{
    mqttc_connect c;
    memset(&c, 0, sizeof c);
    c.client_id = (mqttc_str){ "cid", 3 };
    c.will_topic = (mqttc_str){ "w/t", 3 };
    c.will_payload = (mqttc_str){ "bye", 3 };
    c.will_qos = 1;
    c.will_retain = true;
    c.username = (mqttc_str){ "user", 4 };
    c.password = (mqttc_str){ "\x00\xff", 2 };
    c.keepalive = 0x1234;
    c.clean_session = false;
    return c;
}

static mqttc_connect connect_will_qos2(void)
{
    mqttc_connect c;
    memset(&c, 0, sizeof c);
    c.client_id = (mqttc_str){ "x", 1 };
    c.will_topic = (mqttc_str){ "t", 1 };
    c.will_payload = (mqttc_str){ "", 0 };
    c.will_qos = 2;
    c.username = (mqttc_str){ "u", 1 };
    c.keepalive = 0;
    c.clean_session = true;
    return c;
}

static void test_connect_minimal_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_connect c = connect_min();
    struct enc_call call = { .kind = ENC_CONNECT, .connect = &c };
    assert_code(mqttc_connect_size(&c), (int)sizeof CONNECT_MIN);
    check_encoder(&call, CONNECT_MIN, sizeof CONNECT_MIN);
}

static void test_connect_full_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_connect c = connect_full();
    struct enc_call call = { .kind = ENC_CONNECT, .connect = &c };
    assert_code(mqttc_connect_size(&c), (int)sizeof CONNECT_FULL);
    check_encoder(&call, CONNECT_FULL, sizeof CONNECT_FULL);
}

static void test_connect_will_qos2_username_only_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_connect c = connect_will_qos2();
    struct enc_call call = { .kind = ENC_CONNECT, .connect = &c };
    assert_code(mqttc_connect_size(&c), (int)sizeof CONNECT_WILL_QOS2);
    check_encoder(&call, CONNECT_WILL_QOS2, sizeof CONNECT_WILL_QOS2);
}

static void test_connect_minimal_golden_decodes_every_field(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(CONNECT_MIN, sizeof CONNECT_MIN, &p), 0);
    assert_int_equal(p.type, MQTTC_CONNECT);
    assert_int_equal(p.flags, 0);
    assert_int_equal(p.remaining_length, 15);
    const mqttc_connect *c = &p.u.connect;
    assert_str(c->client_id, "abc");
    assert_ptr_equal(c->client_id.data, (const char *)CONNECT_MIN + 2 + 12); /* zero copy */
    assert_null(c->username.data);
    assert_null(c->password.data);
    assert_null(c->will_topic.data);
    assert_int_equal(c->will_qos, 0);
    assert_false(c->will_retain);
    assert_int_equal(c->keepalive, 60);
    assert_true(c->clean_session);
}

static void test_connect_full_golden_decodes_every_field(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(CONNECT_FULL, sizeof CONNECT_FULL, &p), 0);
    assert_int_equal(p.type, MQTTC_CONNECT);
    assert_int_equal(p.remaining_length, 35);
    const mqttc_connect *c = &p.u.connect;
    assert_str(c->client_id, "cid");
    assert_str(c->will_topic, "w/t");
    assert_str(c->will_payload, "bye");
    assert_str(c->username, "user");
    assert_str(c->password, "\x00\xff");
    assert_int_equal(c->will_qos, 1);
    assert_true(c->will_retain);
    assert_int_equal(c->keepalive, 0x1234);
    assert_false(c->clean_session);
}

static void test_connect_will_qos2_golden_decodes_every_field(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(CONNECT_WILL_QOS2, sizeof CONNECT_WILL_QOS2, &p), 0);
    const mqttc_connect *c = &p.u.connect;
    assert_str(c->client_id, "x");
    assert_str(c->will_topic, "t");
    assert_int_equal(c->will_payload.len, 0);
    assert_str(c->username, "u");
    assert_null(c->password.data);
    assert_int_equal(c->will_qos, 2);
    assert_false(c->will_retain);
    assert_int_equal(c->keepalive, 0);
    assert_true(c->clean_session);
}

static void check_optional_equal(mqttc_str got, mqttc_str want)
{
    if (want.data == NULL) {
        assert_null(got.data);
        return;
    }
    assert_non_null(got.data);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
}

static void round_trip_connect(const mqttc_connect *c)
{
    uint8_t buf[512];
    mqttc_packet p;
    int n = mqttc_encode_connect(buf, sizeof buf, c);
    assert_true(n > 0);
    assert_code(mqttc_connect_size(c), n);
    assert_code(decode_packet(buf, (size_t)n, &p), 0);
    const mqttc_connect *d = &p.u.connect;
    assert_int_equal(d->client_id.len, c->client_id.len);
    assert_memory_equal(d->client_id.data, c->client_id.data, c->client_id.len);
    check_optional_equal(d->username, c->username);
    check_optional_equal(d->password, c->password);
    check_optional_equal(d->will_topic, c->will_topic);
    if (c->will_topic.data != NULL) {
        assert_int_equal(d->will_payload.len, c->will_payload.len);
        if (c->will_payload.len > 0) {
            assert_memory_equal(d->will_payload.data, c->will_payload.data, c->will_payload.len);
        }
    }
    assert_int_equal(d->keepalive, c->keepalive);
    assert_int_equal(d->will_qos, c->will_qos);
    assert_int_equal(d->will_retain, c->will_retain);
    assert_int_equal(d->clean_session, c->clean_session);
}

static void test_connect_round_trips(void **state)
{
    (void)state;
    mqttc_connect c = connect_min();
    round_trip_connect(&c);
    c = connect_full();
    round_trip_connect(&c);
    c = connect_will_qos2();
    round_trip_connect(&c);

    /* A present but empty password, a binary will with NUL bytes, QoS 2 retained. */
    c = connect_full();
    c.password = (mqttc_str){ "", 0 };
    c.will_payload = (mqttc_str){ "\x00\x01\x00", 3 };
    c.will_qos = 2;
    c.keepalive = 0xFFFF;
    round_trip_connect(&c);

    /* UTF-8 client id and user name, no will. */
    memset(&c, 0, sizeof c);
    c.client_id = (mqttc_str){ "\xc3\xa9t\xc3\xa9", 5 }; /* "été" */
    c.username = (mqttc_str){ "\xe2\x82\xac", 3 };
    c.password = (mqttc_str){ "pw", 2 };
    round_trip_connect(&c);
}

static void test_connect_empty_client_id_requires_clean_session(void **state)
{
    (void)state;
    /* MQTT-3.1.3-7: a zero-byte client id needs clean session 1. */
    static const uint8_t golden[] = {
        0x10, 0x0C,                     /* CONNECT, Remaining Length 12 */
        0x00, 0x04, 'M', 'Q', 'T', 'T', /* protocol name */
        0x04, 0x02, 0x00, 0x00,         /* level 4, clean session, keepalive 0 */
        0x00, 0x00,                     /* client id: empty */
    };
    mqttc_connect c;
    memset(&c, 0, sizeof c);
    c.client_id = (mqttc_str){ "", 0 };
    c.clean_session = true;
    struct enc_call call = { .kind = ENC_CONNECT, .connect = &c };
    check_encoder(&call, golden, sizeof golden);
    mqttc_packet p;
    assert_code(decode_packet(golden, sizeof golden, &p), 0);
    assert_int_equal(p.u.connect.client_id.len, 0);
    assert_true(p.u.connect.clean_session);

    c.clean_session = false;
    uint8_t buf[64];
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_CLIENT_ID);
    assert_code(mqttc_connect_size(&c), MQTTC_ERR_BAD_CLIENT_ID);
    assert_code(decode_hex(0x10, "00 04 4D 51 54 54 04 00 00 00 00 00"), MQTTC_ERR_BAD_CLIENT_ID);
}

static void test_connect_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[256];
    mqttc_connect c = connect_min();
    assert_code(mqttc_encode_connect(NULL, sizeof buf, &c), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_connect(buf, sizeof buf, NULL), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_connect_size(NULL), MQTTC_ERR_INVALID_ARG);

    c = connect_full();
    c.will_qos = 3; /* MQTT-3.1.2-14 */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_QOS);
    assert_code(mqttc_connect_size(&c), MQTTC_ERR_BAD_QOS);

    c = connect_min();
    c.will_qos = 1; /* MQTT-3.1.2-13: will QoS without a will */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_WILL);
    c = connect_min();
    c.will_retain = true; /* MQTT-3.1.2-15 */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_WILL);
    c = connect_min();
    c.will_payload = (mqttc_str){ "bye", 3 }; /* will message without a will topic */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_WILL);

    c = connect_min();
    c.client_id = (mqttc_str){ "\xc0\x80", 2 }; /* overlong NUL: MQTT-1.5.3-1 */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_UTF8);
    c = connect_min();
    c.username = (mqttc_str){ "a\0b", 3 }; /* U+0000: MQTT-1.5.3-2 */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_UTF8);
    c = connect_full();
    c.will_topic = (mqttc_str){ "w/+", 3 }; /* the will topic is a topic name */
    assert_code(mqttc_encode_connect(buf, sizeof buf, &c), MQTTC_ERR_BAD_TOPIC);

    /* MQTT-3.1.2-22: a password needs a user name. The header names no code. */
    c = connect_min();
    c.password = (mqttc_str){ "pw", 2 };
    int rc = mqttc_encode_connect(buf, sizeof buf, &c);
    assert_true(rc < 0);
    assert_true(rc != MQTTC_ERR_BUFFER_TOO_SMALL);
}

/* ---- CONNACK (MQTT-3.2) --------------------------------------------------- */

static void test_connack_encodes_to_golden(void **state)
{
    (void)state;
    static const uint8_t accepted_sp[] = {
        0x20, 0x02, /* CONNACK, Remaining Length 2 */
        0x01,       /* session present */
        0x00,       /* accepted */
    };
    static const uint8_t refused[] = {
        0x20, 0x02, /* CONNACK, Remaining Length 2 */
        0x00,       /* no session */
        0x05,       /* not authorized */
    };
    struct enc_call call = { .kind = ENC_CONNACK, .session_present = true, .code = 0 };
    check_encoder(&call, accepted_sp, sizeof accepted_sp);
    call.session_present = false;
    call.code = MQTTC_CONNACK_REFUSED_NOT_AUTHORIZED;
    check_encoder(&call, refused, sizeof refused);
}

static void test_connack_decodes_every_field(void **state)
{
    (void)state;
    static const uint8_t golden[] = { 0x20, 0x02, 0x01, 0x00 };
    mqttc_packet p;
    assert_code(decode_packet(golden, sizeof golden, &p), 0);
    assert_int_equal(p.type, MQTTC_CONNACK);
    assert_true(p.u.connack.session_present);
    assert_int_equal(p.u.connack.return_code, 0);
    for (uint8_t code = 0; code <= 5; code++) {
        uint8_t pkt[4] = { 0x20, 0x02, 0x00, code };
        assert_code(decode_packet(pkt, sizeof pkt, &p), 0);
        assert_false(p.u.connack.session_present);
        assert_int_equal(p.u.connack.return_code, code);
    }
}

static void test_connack_round_trips(void **state)
{
    (void)state;
    uint8_t buf[8];
    mqttc_packet p;
    for (uint8_t code = 0; code <= 5; code++) {
        for (int sp = 0; sp <= (code == 0 ? 1 : 0); sp++) {
            assert_code(mqttc_encode_connack(buf, sizeof buf, sp != 0, code), 4);
            assert_code(decode_packet(buf, 4, &p), 0);
            assert_int_equal(p.u.connack.session_present, sp != 0);
            assert_int_equal(p.u.connack.return_code, code);
        }
    }
}

static void test_connack_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[8];
    assert_code(mqttc_encode_connack(NULL, sizeof buf, false, 0), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_connack(buf, sizeof buf, false, 6), MQTTC_ERR_INVALID_ARG);
    /* MQTT-3.2.2-4: session present must be 0 with a refusal. */
    assert_code(mqttc_encode_connack(buf, sizeof buf, true, 1), MQTTC_ERR_INVALID_ARG);
}

/* ---- PUBLISH (MQTT-3.3) --------------------------------------------------- */

static const uint8_t PUBLISH_QOS0[] = {
    0x30, 0x07,                /* PUBLISH QoS 0, Remaining Length 7 */
    0x00, 0x03, 'a', '/', 'b', /* topic "a/b" */
    'h', 'i',                  /* payload */
};

static const uint8_t PUBLISH_QOS1_RETAIN[] = {
    0x33, 0x0A,                /* PUBLISH QoS 1 retain, Remaining Length 10 */
    0x00, 0x03, 'a', '/', 'b', /* topic "a/b" */
    0x12, 0x34,                /* packet id */
    'x', 'y', 'z',             /* payload */
};

static const uint8_t PUBLISH_QOS2_DUP[] = {
    0x3C, 0x05,          /* PUBLISH DUP QoS 2, Remaining Length 5 */
    0x00, 0x01, 't',     /* topic "t" */
    0x00, 0x01,          /* packet id 1; empty payload */
};

static mqttc_publish make_publish(const char *topic, const void *payload, size_t len, uint8_t qos,
                                  uint16_t id, bool retain, bool dup)
{
    mqttc_publish p;
    memset(&p, 0, sizeof p);
    p.topic = (mqttc_str){ topic, (uint16_t)strlen(topic) };
    p.payload = payload;
    p.payload_len = len;
    p.total_len = len;
    p.qos = qos;
    p.packet_id = id;
    p.retain = retain;
    p.dup = dup;
    return p;
}

static void check_publish(const mqttc_publish *p, const char *topic, const void *payload,
                          size_t len, uint8_t qos, uint16_t id, bool retain, bool dup)
{
    assert_non_null(p->topic.data);
    assert_int_equal(p->topic.len, strlen(topic));
    assert_memory_equal(p->topic.data, topic, p->topic.len);
    assert_int_equal(p->payload_len, len);
    assert_int_equal(p->total_len, len);
    assert_int_equal(p->offset, 0);
    if (len > 0) {
        assert_non_null(p->payload);
        assert_memory_equal(p->payload, payload, len);
    }
    assert_int_equal(p->qos, qos);
    assert_int_equal(p->packet_id, id);
    assert_int_equal(p->retain, retain);
    assert_int_equal(p->dup, dup);
}

static void test_publish_qos0_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_publish p = make_publish("a/b", "hi", 2, 0, 0, false, false);
    struct enc_call call = { .kind = ENC_PUBLISH, .publish = &p };
    check_encoder(&call, PUBLISH_QOS0, sizeof PUBLISH_QOS0);
}

static void test_publish_qos1_retain_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_publish p = make_publish("a/b", "xyz", 3, 1, 0x1234, true, false);
    struct enc_call call = { .kind = ENC_PUBLISH, .publish = &p };
    check_encoder(&call, PUBLISH_QOS1_RETAIN, sizeof PUBLISH_QOS1_RETAIN);
}

static void test_publish_qos2_dup_empty_payload_encodes_to_golden(void **state)
{
    (void)state;
    mqttc_publish p = make_publish("t", "", 0, 2, 1, false, true);
    struct enc_call call = { .kind = ENC_PUBLISH, .publish = &p };
    check_encoder(&call, PUBLISH_QOS2_DUP, sizeof PUBLISH_QOS2_DUP);
}

static void test_publish_goldens_decode_every_field(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(PUBLISH_QOS0, sizeof PUBLISH_QOS0, &p), 0);
    assert_int_equal(p.type, MQTTC_PUBLISH);
    assert_int_equal(p.remaining_length, 7);
    check_publish(&p.u.publish, "a/b", "hi", 2, 0, 0, false, false);
    /* zero copy: topic and payload point into the body */
    assert_ptr_equal(p.u.publish.topic.data, (const char *)PUBLISH_QOS0 + 4);
    assert_ptr_equal(p.u.publish.payload, PUBLISH_QOS0 + 7);

    assert_code(decode_packet(PUBLISH_QOS1_RETAIN, sizeof PUBLISH_QOS1_RETAIN, &p), 0);
    assert_int_equal(p.flags, 0x3);
    check_publish(&p.u.publish, "a/b", "xyz", 3, 1, 0x1234, true, false);
    assert_ptr_equal(p.u.publish.payload, PUBLISH_QOS1_RETAIN + 9);

    assert_code(decode_packet(PUBLISH_QOS2_DUP, sizeof PUBLISH_QOS2_DUP, &p), 0);
    assert_int_equal(p.flags, 0xC);
    check_publish(&p.u.publish, "t", "", 0, 2, 1, false, true);
}

static void test_publish_header_only_encoding_stops_before_payload(void **state)
{
    (void)state;
    mqttc_publish p = make_publish("a/b", "xyz", 3, 1, 0x1234, true, false);
    struct enc_call call = { .kind = ENC_PUBLISH_HEADER, .publish = &p };
    /* The first 9 bytes of PUBLISH_QOS1_RETAIN: everything up to the payload. */
    check_encoder(&call, PUBLISH_QOS1_RETAIN, 9);
    assert_code(mqttc_publish_header_size(3, 1, 3), 9);
    assert_code(mqttc_publish_header_size(3, 0, 2), 7);
    assert_code(mqttc_publish_header_size(1, 2, 0), 7);
}

static uint8_t big_payload[16384];
static uint8_t big_packet[16384 + 16];

static const struct {
    uint32_t remaining;
    uint8_t header[8]; /* fixed header, topic "t", QoS 0 */
    size_t header_len;
    bool whole;        /* small enough to encode the payload too */
} PUBLISH_LENGTHS[] = {
    { 127u, { 0x30, 0x7F, 0x00, 0x01, 't' }, 5, true },
    { 128u, { 0x30, 0x80, 0x01, 0x00, 0x01, 't' }, 6, true },
    { 16383u, { 0x30, 0xFF, 0x7F, 0x00, 0x01, 't' }, 6, true },
    { 16384u, { 0x30, 0x80, 0x80, 0x01, 0x00, 0x01, 't' }, 7, true },
    { 2097151u, { 0x30, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 't' }, 7, false },
    { 2097152u, { 0x30, 0x80, 0x80, 0x80, 0x01, 0x00, 0x01, 't' }, 8, false },
    { 268435455u, { 0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 't' }, 8, false },
};

static void test_publish_remaining_length_boundaries(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof big_payload; i++) {
        big_payload[i] = (uint8_t)(i * 7u + 3u);
    }
    for (size_t i = 0; i < sizeof PUBLISH_LENGTHS / sizeof PUBLISH_LENGTHS[0]; i++) {
        size_t payload_len = PUBLISH_LENGTHS[i].remaining - 3u;
        size_t hlen = PUBLISH_LENGTHS[i].header_len;
        mqttc_publish p = make_publish("t", big_payload, payload_len, 0, 0, false, false);
        assert_code(mqttc_publish_header_size(1, 0, payload_len), (int)hlen);
        struct enc_call call = { .kind = ENC_PUBLISH_HEADER, .publish = &p };
        check_encoder(&call, PUBLISH_LENGTHS[i].header, hlen);
        if (!PUBLISH_LENGTHS[i].whole) {
            continue;
        }
        memcpy(big_packet, PUBLISH_LENGTHS[i].header, hlen);
        memcpy(big_packet + hlen, big_payload, payload_len);
        call.kind = ENC_PUBLISH;
        check_encoder(&call, big_packet, hlen + payload_len);
        mqttc_packet d;
        assert_code(decode_packet(big_packet, hlen + payload_len, &d), 0);
        assert_int_equal(d.remaining_length, PUBLISH_LENGTHS[i].remaining);
        check_publish(&d.u.publish, "t", big_payload, payload_len, 0, 0, false, false);
    }
}

static void test_publish_over_protocol_maximum_is_too_large(void **state)
{
    (void)state;
    uint8_t buf[64];
    /* 2 + 1 + 268435453 = 268435456: one over the maximum Remaining Length. */
    mqttc_publish p = make_publish("t", big_payload, 268435453u, 0, 0, false, false);
    assert_code(mqttc_encode_publish_header(buf, sizeof buf, &p), MQTTC_ERR_TOO_LARGE);
    assert_code(mqttc_publish_header_size(1, 0, 268435453u), MQTTC_ERR_TOO_LARGE);
    assert_code(mqttc_publish_header_size(1, 1, 268435451u), MQTTC_ERR_TOO_LARGE);
    assert_code(mqttc_publish_header_size(1, 1, 268435450u), 10);
#if SIZE_MAX > UINT32_MAX
    /* A payload length that would wrap a 32-bit computation. */
    size_t wrap = (size_t)UINT32_MAX + 2u;
    p.payload_len = wrap;
    p.total_len = wrap;
    assert_code(mqttc_encode_publish_header(buf, sizeof buf, &p), MQTTC_ERR_TOO_LARGE);
    assert_code(mqttc_publish_header_size(1, 0, wrap), MQTTC_ERR_TOO_LARGE);
#endif
}

static void test_publish_round_trips(void **state)
{
    (void)state;
    static const uint8_t bin[] = { 0x00, 0xFF, 0x80, 0x00, 0x7F };
    const struct {
        const char *topic;
        uint8_t qos;
        uint16_t id;
        bool retain, dup;
    } cases[] = {
        { "a", 0, 0, false, false },           { "sport/tennis/player1", 1, 1, true, false },
        { "/leading", 2, 0xFFFF, false, true }, { "$SYS/x", 1, 0x8000, true, true },
        { "\xc3\xa9/\xe2\x82\xac", 0, 0, true, false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[128];
        mqttc_publish p = make_publish(cases[i].topic, bin, sizeof bin, cases[i].qos, cases[i].id,
                                       cases[i].retain, cases[i].dup);
        int n = mqttc_encode_publish(buf, sizeof buf, &p);
        assert_true(n > 0);
        int hn = mqttc_publish_header_size(p.topic.len, p.qos, p.payload_len);
        assert_code(n, hn + (int)sizeof bin);
        mqttc_packet d;
        assert_code(decode_packet(buf, (size_t)n, &d), 0);
        check_publish(&d.u.publish, cases[i].topic, bin, sizeof bin, cases[i].qos, cases[i].id,
                      cases[i].retain, cases[i].dup);
    }
}

static void test_publish_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[64];
    mqttc_publish p = make_publish("a/b", "hi", 2, 1, 7, false, false);
    assert_code(mqttc_encode_publish(NULL, sizeof buf, &p), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_publish(buf, sizeof buf, NULL), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_publish_header(NULL, sizeof buf, &p), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_publish_header(buf, sizeof buf, NULL), MQTTC_ERR_INVALID_ARG);

    p.qos = 3; /* MQTT-3.3.1-4 */
    assert_code(mqttc_encode_publish(buf, sizeof buf, &p), MQTTC_ERR_BAD_QOS);
    assert_code(mqttc_encode_publish_header(buf, sizeof buf, &p), MQTTC_ERR_BAD_QOS);
    assert_true(mqttc_publish_header_size(3, 3, 2) < 0);

    for (uint8_t qos = 1; qos <= 2; qos++) { /* MQTT-2.3.1-1: non-zero packet id */
        p = make_publish("a/b", "hi", 2, qos, 0, false, false);
        assert_code(mqttc_encode_publish(buf, sizeof buf, &p), MQTTC_ERR_INVALID_ARG);
        assert_code(mqttc_encode_publish_header(buf, sizeof buf, &p), MQTTC_ERR_INVALID_ARG);
    }

    p = make_publish("a/b", NULL, 5, 0, 0, false, false); /* payload missing */
    assert_code(mqttc_encode_publish(buf, sizeof buf, &p), MQTTC_ERR_INVALID_ARG);

    p = make_publish("a/b", "hi", 2, 0, 0, false, true); /* MQTT-3.3.1-2: DUP with QoS 0 */
    int rc = mqttc_encode_publish(buf, sizeof buf, &p);
    assert_true(rc == MQTTC_ERR_INVALID_ARG || rc == MQTTC_ERR_BAD_FLAGS);
}

/* ---- acknowledgements: PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK ---------- */

static const struct {
    mqttc_packet_type type;
    uint8_t bytes[4];
} ACKS[] = {
    { MQTTC_PUBACK, { 0x40, 0x02, 0x12, 0x34 } },   /* PUBACK, RL 2, id 0x1234 */
    { MQTTC_PUBREC, { 0x50, 0x02, 0x12, 0x34 } },   /* PUBREC */
    { MQTTC_PUBREL, { 0x62, 0x02, 0x12, 0x34 } },   /* PUBREL: flags 0010 (MQTT-3.6.1-1) */
    { MQTTC_PUBCOMP, { 0x70, 0x02, 0x12, 0x34 } },  /* PUBCOMP */
    { MQTTC_UNSUBACK, { 0xB0, 0x02, 0x12, 0x34 } }, /* UNSUBACK */
};
#define N_ACKS (sizeof ACKS / sizeof ACKS[0])

static void test_acks_encode_to_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ACKS; i++) {
        struct enc_call call = { .kind = ENC_ACK, .type = ACKS[i].type, .packet_id = 0x1234 };
        check_encoder(&call, ACKS[i].bytes, 4);
    }
}

static void test_acks_decode_every_field(void **state)
{
    (void)state;
    mqttc_packet p;
    for (size_t i = 0; i < N_ACKS; i++) {
        assert_code(decode_packet(ACKS[i].bytes, 4, &p), 0);
        assert_int_equal(p.type, ACKS[i].type);
        assert_int_equal(p.remaining_length, 2);
        assert_int_equal(p.u.packet_id, 0x1234);
    }
}

static void test_acks_round_trip(void **state)
{
    (void)state;
    const uint16_t ids[] = { 1, 0x00FF, 0xFF00, 0xFFFF };
    uint8_t buf[8];
    mqttc_packet p;
    for (size_t i = 0; i < N_ACKS; i++) {
        for (size_t j = 0; j < sizeof ids / sizeof ids[0]; j++) {
            assert_code(mqttc_encode_ack(buf, sizeof buf, ACKS[i].type, ids[j]), 4);
            assert_code(decode_packet(buf, 4, &p), 0);
            assert_int_equal(p.type, ACKS[i].type);
            assert_int_equal(p.u.packet_id, ids[j]);
        }
    }
}

static void test_ack_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[8];
    assert_code(mqttc_encode_ack(NULL, sizeof buf, MQTTC_PUBACK, 1), MQTTC_ERR_INVALID_ARG);
    for (size_t i = 0; i < N_ACKS; i++) { /* MQTT-2.3.1-1 */
        assert_code(mqttc_encode_ack(buf, sizeof buf, ACKS[i].type, 0), MQTTC_ERR_INVALID_ARG);
    }
    const mqttc_packet_type others[] = { MQTTC_CONNECT,  MQTTC_CONNACK,   MQTTC_PUBLISH,
                                         MQTTC_SUBSCRIBE, MQTTC_SUBACK,   MQTTC_UNSUBSCRIBE,
                                         MQTTC_PINGREQ,  MQTTC_PINGRESP, MQTTC_DISCONNECT };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_code(mqttc_encode_ack(buf, sizeof buf, others[i], 1), MQTTC_ERR_INVALID_ARG);
    }
    assert_code(mqttc_encode_ack(buf, sizeof buf, (mqttc_packet_type)0, 1), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_ack(buf, sizeof buf, (mqttc_packet_type)15, 1), MQTTC_ERR_INVALID_ARG);
}

/* ---- PINGREQ, PINGRESP, DISCONNECT --------------------------------------- */

static const struct {
    mqttc_packet_type type;
    uint8_t bytes[2];
} EMPTIES[] = {
    { MQTTC_PINGREQ, { 0xC0, 0x00 } },    /* PINGREQ, Remaining Length 0 */
    { MQTTC_PINGRESP, { 0xD0, 0x00 } },   /* PINGRESP */
    { MQTTC_DISCONNECT, { 0xE0, 0x00 } }, /* DISCONNECT */
};

static void test_empty_packets_encode_to_golden(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        struct enc_call call = { .kind = ENC_EMPTY, .type = EMPTIES[i].type };
        check_encoder(&call, EMPTIES[i].bytes, 2);
    }
}

static void test_empty_packets_decode_and_round_trip(void **state)
{
    (void)state;
    mqttc_packet p;
    uint8_t buf[4];
    for (size_t i = 0; i < 3; i++) {
        assert_code(decode_packet(EMPTIES[i].bytes, 2, &p), 0);
        assert_int_equal(p.type, EMPTIES[i].type);
        assert_int_equal(p.remaining_length, 0);
        assert_code(mqttc_encode_empty(buf, sizeof buf, EMPTIES[i].type), 2);
        assert_code(decode_packet(buf, 2, &p), 0);
        assert_int_equal(p.type, EMPTIES[i].type);
    }
}

static void test_empty_encoder_rejects_other_types(void **state)
{
    (void)state;
    uint8_t buf[4];
    assert_code(mqttc_encode_empty(NULL, sizeof buf, MQTTC_PINGREQ), MQTTC_ERR_INVALID_ARG);
    for (int t = 0; t < 16; t++) {
        if (t == MQTTC_PINGREQ || t == MQTTC_PINGRESP || t == MQTTC_DISCONNECT) {
            continue;
        }
        assert_code(mqttc_encode_empty(buf, sizeof buf, (mqttc_packet_type)t),
                  MQTTC_ERR_INVALID_ARG);
    }
}

/* ---- SUBSCRIBE (MQTT-3.8) ------------------------------------------------- */

static const uint8_t SUBSCRIBE_GOLDEN[] = {
    0x82, 0x0E,                /* SUBSCRIBE flags 0010, Remaining Length 14 */
    0x00, 0x0A,                /* packet id 10 */
    0x00, 0x03, 'a', '/', 'b', /* filter "a/b" */
    0x01,                      /* requested QoS 1 */
    0x00, 0x03, 'c', '/', '#', /* filter "c/#" */
    0x02,                      /* requested QoS 2 */
};

static const mqttc_subscription SUBSCRIBE_SUBS[] = {
    { { "a/b", 3 }, 1 },
    { { "c/#", 3 }, 2 },
};

static void test_subscribe_encodes_to_golden(void **state)
{
    (void)state;
    struct enc_call call = {
        .kind = ENC_SUBSCRIBE, .packet_id = 10, .subs = SUBSCRIBE_SUBS, .n = 2
    };
    assert_code(mqttc_subscribe_size(SUBSCRIBE_SUBS, 2), (int)sizeof SUBSCRIBE_GOLDEN);
    check_encoder(&call, SUBSCRIBE_GOLDEN, sizeof SUBSCRIBE_GOLDEN);
}

static void test_subscribe_golden_decodes_and_iterates_entries(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(SUBSCRIBE_GOLDEN, sizeof SUBSCRIBE_GOLDEN, &p), 0);
    assert_int_equal(p.type, MQTTC_SUBSCRIBE);
    assert_int_equal(p.flags, 2);
    assert_int_equal(p.u.subscribe.packet_id, 10);
    assert_int_equal(p.u.subscribe.count, 2);
    assert_ptr_equal(p.u.subscribe.entries, SUBSCRIBE_GOLDEN + 4);
    assert_int_equal(p.u.subscribe.len, 12);

    size_t pos = 0;
    mqttc_str f;
    uint8_t qos = 0xEE;
    assert_true(mqttc_entries_next(&p, &pos, &f, &qos));
    assert_str(f, "a/b");
    assert_int_equal(qos, 1);
    assert_true(mqttc_entries_next(&p, &pos, &f, &qos));
    assert_str(f, "c/#");
    assert_int_equal(qos, 2);
    assert_false(mqttc_entries_next(&p, &pos, &f, &qos));
    assert_false(mqttc_entries_next(&p, &pos, &f, &qos)); /* stays at the end */

    pos = 0; /* qos may be NULL */
    assert_true(mqttc_entries_next(&p, &pos, &f, NULL));
    assert_str(f, "a/b");
}

static void test_subscribe_round_trips(void **state)
{
    (void)state;
    const mqttc_subscription subs[] = {
        { { "+/+/#", 5 }, 0 },
        { { "$SYS/#", 6 }, 1 },
        { { "sport/tennis/player1", 20 }, 2 },
        { { "#", 1 }, 1 },
    };
    const size_t n = sizeof subs / sizeof subs[0];
    uint8_t buf[128];
    int len = mqttc_encode_subscribe(buf, sizeof buf, 0xFFFF, subs, n);
    assert_true(len > 0);
    assert_code(mqttc_subscribe_size(subs, n), len);
    mqttc_packet p;
    assert_code(decode_packet(buf, (size_t)len, &p), 0);
    assert_int_equal(p.u.subscribe.packet_id, 0xFFFF);
    assert_int_equal(p.u.subscribe.count, n);
    size_t pos = 0;
    size_t i = 0;
    mqttc_str f;
    uint8_t qos;
    while (i <= n && mqttc_entries_next(&p, &pos, &f, &qos)) {
        assert_true(i < n);
        assert_int_equal(f.len, subs[i].filter.len);
        assert_memory_equal(f.data, subs[i].filter.data, f.len);
        assert_int_equal(qos, subs[i].qos);
        i++;
    }
    assert_int_equal(i, n);
}

static void test_subscribe_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[128];
    assert_code(mqttc_encode_subscribe(NULL, sizeof buf, 1, SUBSCRIBE_SUBS, 2),
              MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_subscribe(buf, sizeof buf, 1, NULL, 2), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_subscribe(buf, sizeof buf, 1, SUBSCRIBE_SUBS, 0),
              MQTTC_ERR_INVALID_ARG); /* MQTT-3.8.3-3: at least one entry */
    assert_true(mqttc_subscribe_size(SUBSCRIBE_SUBS, 0) < 0);
    assert_code(mqttc_encode_subscribe(buf, sizeof buf, 0, SUBSCRIBE_SUBS, 2),
              MQTTC_ERR_INVALID_ARG); /* MQTT-2.3.1-1 */

    const char *bad[] = { "", "a#", "a/#/b", "a+", "#/a", "++" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mqttc_subscription subs[2] = { SUBSCRIBE_SUBS[0],
                                       { { bad[i], (uint16_t)strlen(bad[i]) }, 0 } };
        assert_code(mqttc_encode_subscribe(buf, sizeof buf, 1, subs, 2), MQTTC_ERR_BAD_FILTER);
        assert_code(mqttc_subscribe_size(subs, 2), MQTTC_ERR_BAD_FILTER);
    }
    mqttc_subscription q3[1] = { { { "a", 1 }, 3 } };
    assert_code(mqttc_encode_subscribe(buf, sizeof buf, 1, q3, 1), MQTTC_ERR_BAD_QOS);
    assert_code(mqttc_subscribe_size(q3, 1), MQTTC_ERR_BAD_QOS);
    mqttc_subscription utf[1] = { { { "a\xff", 2 }, 0 } };
    assert_code(mqttc_encode_subscribe(buf, sizeof buf, 1, utf, 1), MQTTC_ERR_BAD_UTF8);
}

/* ---- SUBACK (MQTT-3.9) ---------------------------------------------------- */

static const uint8_t SUBACK_GOLDEN[] = {
    0x90, 0x06,             /* SUBACK, Remaining Length 6 */
    0x00, 0x0A,             /* packet id 10 */
    0x00, 0x01, 0x02, 0x80, /* granted QoS 0, 1, 2, failure */
};

static void test_suback_encodes_to_golden(void **state)
{
    (void)state;
    static const uint8_t codes[] = { 0, 1, 2, MQTTC_SUBACK_FAILURE };
    struct enc_call call = { .kind = ENC_SUBACK, .packet_id = 10, .codes = codes, .n = 4 };
    check_encoder(&call, SUBACK_GOLDEN, sizeof SUBACK_GOLDEN);
}

static void test_suback_decodes_every_field(void **state)
{
    (void)state;
    static const uint8_t codes[] = { 0, 1, 2, 0x80 };
    mqttc_packet p;
    assert_code(decode_packet(SUBACK_GOLDEN, sizeof SUBACK_GOLDEN, &p), 0);
    assert_int_equal(p.type, MQTTC_SUBACK);
    assert_int_equal(p.u.suback.packet_id, 10);
    assert_int_equal(p.u.suback.count, 4);
    assert_memory_equal(p.u.suback.codes, codes, 4);
    assert_ptr_equal(p.u.suback.codes, SUBACK_GOLDEN + 4);
}

static void test_suback_round_trips(void **state)
{
    (void)state;
    uint8_t codes[200];
    for (size_t i = 0; i < sizeof codes; i++) {
        codes[i] = (uint8_t)(i % 4 == 3 ? 0x80 : i % 4);
    }
    uint8_t buf[256];
    /* 200 codes: Remaining Length 202 takes two bytes */
    int n = mqttc_encode_suback(buf, sizeof buf, 0xABCD, codes, sizeof codes);
    assert_code(n, 1 + 2 + 2 + (int)sizeof codes);
    assert_int_equal(buf[0], 0x90);
    assert_int_equal(buf[1], 0xCA); /* 202 = 0x4A | 0x80 */
    assert_int_equal(buf[2], 0x01);
    mqttc_packet p;
    assert_code(decode_packet(buf, (size_t)n, &p), 0);
    assert_int_equal(p.u.suback.packet_id, 0xABCD);
    assert_int_equal(p.u.suback.count, sizeof codes);
    assert_memory_equal(p.u.suback.codes, codes, sizeof codes);
}

static void test_suback_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[32];
    const uint8_t ok[] = { 0 };
    const uint8_t bad3[] = { 0, 3 };
    const uint8_t bad81[] = { 0x81 };
    assert_code(mqttc_encode_suback(NULL, sizeof buf, 1, ok, 1), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_suback(buf, sizeof buf, 1, NULL, 1), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_suback(buf, sizeof buf, 1, ok, 0), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_suback(buf, sizeof buf, 0, ok, 1), MQTTC_ERR_INVALID_ARG);
    int rc = mqttc_encode_suback(buf, sizeof buf, 1, bad3, 2); /* MQTT-3.9.3-2 */
    assert_true(rc == MQTTC_ERR_INVALID_ARG || rc == MQTTC_ERR_BAD_QOS);
    rc = mqttc_encode_suback(buf, sizeof buf, 1, bad81, 1);
    assert_true(rc == MQTTC_ERR_INVALID_ARG || rc == MQTTC_ERR_BAD_QOS);
}

/* ---- UNSUBSCRIBE (MQTT-3.10) ---------------------------------------------- */

static const uint8_t UNSUBSCRIBE_GOLDEN[] = {
    0xA2, 0x0A,                /* UNSUBSCRIBE flags 0010, Remaining Length 10 */
    0x01, 0x02,                /* packet id 0x0102 */
    0x00, 0x03, 'a', '/', '+', /* filter "a/+" */
    0x00, 0x01, '#',           /* filter "#" */
};

static const mqttc_str UNSUBSCRIBE_FILTERS[] = { { "a/+", 3 }, { "#", 1 } };

static void test_unsubscribe_encodes_to_golden(void **state)
{
    (void)state;
    struct enc_call call = {
        .kind = ENC_UNSUBSCRIBE, .packet_id = 0x0102, .filters = UNSUBSCRIBE_FILTERS, .n = 2
    };
    assert_code(mqttc_unsubscribe_size(UNSUBSCRIBE_FILTERS, 2), (int)sizeof UNSUBSCRIBE_GOLDEN);
    check_encoder(&call, UNSUBSCRIBE_GOLDEN, sizeof UNSUBSCRIBE_GOLDEN);
}

static void test_unsubscribe_golden_decodes_and_iterates_entries(void **state)
{
    (void)state;
    mqttc_packet p;
    assert_code(decode_packet(UNSUBSCRIBE_GOLDEN, sizeof UNSUBSCRIBE_GOLDEN, &p), 0);
    assert_int_equal(p.type, MQTTC_UNSUBSCRIBE);
    assert_int_equal(p.flags, 2);
    assert_int_equal(p.u.unsubscribe.packet_id, 0x0102);
    assert_int_equal(p.u.unsubscribe.count, 2);
    assert_int_equal(p.u.unsubscribe.len, 8);
    size_t pos = 0;
    mqttc_str f;
    assert_true(mqttc_entries_next(&p, &pos, &f, NULL));
    assert_str(f, "a/+");
    assert_true(mqttc_entries_next(&p, &pos, &f, NULL));
    assert_str(f, "#");
    assert_false(mqttc_entries_next(&p, &pos, &f, NULL));
}

static void test_unsubscribe_round_trips(void **state)
{
    (void)state;
    const mqttc_str filters[] = { { "x", 1 }, { "+/+", 3 }, { "/+", 2 }, { "a/+/b/#", 7 } };
    const size_t n = sizeof filters / sizeof filters[0];
    uint8_t buf[64];
    int len = mqttc_encode_unsubscribe(buf, sizeof buf, 77, filters, n);
    assert_true(len > 0);
    assert_code(mqttc_unsubscribe_size(filters, n), len);
    mqttc_packet p;
    assert_code(decode_packet(buf, (size_t)len, &p), 0);
    assert_int_equal(p.u.unsubscribe.packet_id, 77);
    assert_int_equal(p.u.unsubscribe.count, n);
    size_t pos = 0;
    size_t i = 0;
    mqttc_str f;
    while (i <= n && mqttc_entries_next(&p, &pos, &f, NULL)) {
        assert_true(i < n);
        assert_int_equal(f.len, filters[i].len);
        assert_memory_equal(f.data, filters[i].data, f.len);
        i++;
    }
    assert_int_equal(i, n);
}

static void test_unsubscribe_encoder_rejects_bad_arguments(void **state)
{
    (void)state;
    uint8_t buf[64];
    assert_code(mqttc_encode_unsubscribe(NULL, sizeof buf, 1, UNSUBSCRIBE_FILTERS, 2),
              MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_unsubscribe(buf, sizeof buf, 1, NULL, 2), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_encode_unsubscribe(buf, sizeof buf, 1, UNSUBSCRIBE_FILTERS, 0),
              MQTTC_ERR_INVALID_ARG); /* MQTT-3.10.3-2 */
    assert_true(mqttc_unsubscribe_size(UNSUBSCRIBE_FILTERS, 0) < 0);
    assert_code(mqttc_encode_unsubscribe(buf, sizeof buf, 0, UNSUBSCRIBE_FILTERS, 2),
              MQTTC_ERR_INVALID_ARG);
    const char *bad[] = { "", "a#", "a/#/b", "a/b+", "#/a", "++" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mqttc_str filters[2] = { { "ok", 2 }, { bad[i], (uint16_t)strlen(bad[i]) } };
        assert_code(mqttc_encode_unsubscribe(buf, sizeof buf, 1, filters, 2),
                  MQTTC_ERR_BAD_FILTER);
        assert_code(mqttc_unsubscribe_size(filters, 2), MQTTC_ERR_BAD_FILTER);
    }
}

/* ---- malformed bodies ------------------------------------------------------ */

static const struct {
    const char *what;
    uint8_t first;
    const char *body;
    int want;
} MALFORMED_BODIES[] = {
    /* CONNACK: Remaining Length 2 (MQTT-3.2.1), reserved flag bits (3.2.2.1), codes 6..255
       reserved (3.2.2.3), session present 0 with a refusal (MQTT-3.2.2-4) */
    { "connack empty", 0x20, "", MQTTC_ERR_MALFORMED },
    { "connack short", 0x20, "00", MQTTC_ERR_MALFORMED },
    { "connack long", 0x20, "00 00 00", MQTTC_ERR_MALFORMED },
    { "connack reserved bit 1", 0x20, "02 00", MQTTC_ERR_MALFORMED },
    { "connack reserved bit 7", 0x20, "80 00", MQTTC_ERR_MALFORMED },
    { "connack code 6", 0x20, "00 06", MQTTC_ERR_MALFORMED },
    { "connack code 255", 0x20, "00 FF", MQTTC_ERR_MALFORMED },
    { "connack session present with refusal", 0x20, "01 05", MQTTC_ERR_MALFORMED },
    { "connack session present with code 1", 0x20, "01 01", MQTTC_ERR_MALFORMED },
    /* acks: Remaining Length 2, non-zero packet id (MQTT-2.3.1-1) */
    { "puback empty", 0x40, "", MQTTC_ERR_MALFORMED },
    { "puback short", 0x40, "00", MQTTC_ERR_MALFORMED },
    { "puback long", 0x40, "00 01 00", MQTTC_ERR_MALFORMED },
    { "puback id 0", 0x40, "00 00", MQTTC_ERR_MALFORMED },
    { "pubrec short", 0x50, "00", MQTTC_ERR_MALFORMED },
    { "pubrec long", 0x50, "00 01 00", MQTTC_ERR_MALFORMED },
    { "pubrec id 0", 0x50, "00 00", MQTTC_ERR_MALFORMED },
    { "pubrel short", 0x62, "00", MQTTC_ERR_MALFORMED },
    { "pubrel long", 0x62, "00 01 00", MQTTC_ERR_MALFORMED },
    { "pubrel id 0", 0x62, "00 00", MQTTC_ERR_MALFORMED },
    { "pubcomp short", 0x70, "00", MQTTC_ERR_MALFORMED },
    { "pubcomp long", 0x70, "00 01 00", MQTTC_ERR_MALFORMED },
    { "pubcomp id 0", 0x70, "00 00", MQTTC_ERR_MALFORMED },
    { "unsuback short", 0xB0, "00", MQTTC_ERR_MALFORMED },
    { "unsuback long", 0xB0, "00 01 00", MQTTC_ERR_MALFORMED },
    { "unsuback id 0", 0xB0, "00 00", MQTTC_ERR_MALFORMED },
    /* empty packets: Remaining Length 0 */
    { "pingreq with body", 0xC0, "00", MQTTC_ERR_MALFORMED },
    { "pingresp with body", 0xD0, "00", MQTTC_ERR_MALFORMED },
    { "disconnect with body", 0xE0, "00", MQTTC_ERR_MALFORMED },
    /* PUBLISH */
    { "publish empty body", 0x30, "", MQTTC_ERR_MALFORMED },
    { "publish half topic length", 0x30, "00", MQTTC_ERR_MALFORMED },
    { "publish topic past end", 0x30, "00 05 61 62", MQTTC_ERR_MALFORMED },
    { "publish qos1 no packet id", 0x32, "00 01 74", MQTTC_ERR_MALFORMED },
    { "publish qos1 half packet id", 0x32, "00 01 74 00", MQTTC_ERR_MALFORMED },
    { "publish qos1 packet id 0", 0x32, "00 01 74 00 00", MQTTC_ERR_MALFORMED },
    { "publish qos2 packet id 0", 0x34, "00 01 74 00 00 41", MQTTC_ERR_MALFORMED },
    { "publish empty topic", 0x30, "00 00 41", MQTTC_ERR_BAD_TOPIC },       /* MQTT-4.7.3-1 */
    { "publish topic with +", 0x30, "00 03 61 2F 2B", MQTTC_ERR_BAD_TOPIC }, /* MQTT-3.3.2-2 */
    { "publish topic #", 0x30, "00 01 23", MQTTC_ERR_BAD_TOPIC },
    { "publish topic overlong utf8", 0x30, "00 02 C0 80", MQTTC_ERR_BAD_UTF8 },
    { "publish topic with U+0000", 0x30, "00 03 61 00 62", MQTTC_ERR_BAD_UTF8 },
    { "publish topic surrogate", 0x30, "00 03 ED A0 80", MQTTC_ERR_BAD_UTF8 },
    /* SUBACK: at least one code (MQTT-3.9.3), codes 0, 1, 2, 0x80 only (MQTT-3.9.3-2) */
    { "suback no codes", 0x90, "00 01", MQTTC_ERR_MALFORMED },
    { "suback short", 0x90, "00", MQTTC_ERR_MALFORMED },
    { "suback code 3", 0x90, "00 01 03", MQTTC_ERR_MALFORMED },
    { "suback code 0x81", 0x90, "00 01 00 81", MQTTC_ERR_MALFORMED },
    { "suback id 0", 0x90, "00 00 00", MQTTC_ERR_MALFORMED },
    /* SUBSCRIBE: at least one entry (MQTT-3.8.3-3), QoS byte (MQTT-3.8.3-4) */
    { "subscribe no entries", 0x82, "00 01", MQTTC_ERR_MALFORMED },
    { "subscribe empty", 0x82, "", MQTTC_ERR_MALFORMED },
    { "subscribe id 0", 0x82, "00 00 00 01 74 00", MQTTC_ERR_MALFORMED },
    { "subscribe qos 3", 0x82, "00 01 00 01 74 03", MQTTC_ERR_BAD_QOS },
    { "subscribe reserved qos bits", 0x82, "00 01 00 01 74 04", MQTTC_ERR_MALFORMED },
    { "subscribe reserved qos bit 7", 0x82, "00 01 00 01 74 81", MQTTC_ERR_MALFORMED },
    { "subscribe missing qos", 0x82, "00 01 00 01 74", MQTTC_ERR_MALFORMED },
    { "subscribe filter past end", 0x82, "00 01 00 05 74 00", MQTTC_ERR_MALFORMED },
    { "subscribe trailing byte", 0x82, "00 01 00 01 74 00 00", MQTTC_ERR_MALFORMED },
    { "subscribe bad filter", 0x82, "00 01 00 02 61 23 00", MQTTC_ERR_BAD_FILTER },
    { "subscribe empty filter", 0x82, "00 01 00 00 00", MQTTC_ERR_BAD_FILTER },
    { "subscribe filter bad utf8", 0x82, "00 01 00 01 FF 00", MQTTC_ERR_BAD_UTF8 },
    /* UNSUBSCRIBE: at least one filter (MQTT-3.10.3-2) */
    { "unsubscribe no entries", 0xA2, "00 01", MQTTC_ERR_MALFORMED },
    { "unsubscribe id 0", 0xA2, "00 00 00 01 74", MQTTC_ERR_MALFORMED },
    { "unsubscribe filter past end", 0xA2, "00 01 00 02 74", MQTTC_ERR_MALFORMED },
    { "unsubscribe trailing byte", 0xA2, "00 01 00 01 74 00", MQTTC_ERR_MALFORMED },
    { "unsubscribe bad filter", 0xA2, "00 01 00 03 23 2F 61", MQTTC_ERR_BAD_FILTER },
    { "unsubscribe empty filter", 0xA2, "00 01 00 00", MQTTC_ERR_BAD_FILTER },
    /* CONNECT (valid: 00 04 "MQTT" 04 02 00 3C 00 01 "x") */
    { "connect empty", 0x10, "", MQTTC_ERR_MALFORMED },
    { "connect truncated variable header", 0x10, "00 04 4D 51 54 54 04", MQTTC_ERR_MALFORMED },
    { "connect wrong protocol name", 0x10, "00 04 4D 51 54 74 04 02 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED }, /* MQTT-3.1.2-1 */
    { "connect MQIsdp name", 0x10, "00 06 4D 51 49 73 64 70 03 02 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED },
    { "connect protocol level 3", 0x10, "00 04 4D 51 54 54 03 02 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED }, /* MQTT-3.1.2-2 */
    { "connect protocol level 5", 0x10, "00 04 4D 51 54 54 05 02 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED },
    { "connect reserved flag", 0x10, "00 04 4D 51 54 54 04 03 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED }, /* MQTT-3.1.2-3 */
    { "connect password without username", 0x10,
      "00 04 4D 51 54 54 04 42 00 3C 00 01 78 00 01 70", MQTTC_ERR_MALFORMED }, /* 3.1.2-22 */
    { "connect will qos 3", 0x10, "00 04 4D 51 54 54 04 1E 00 3C 00 01 78 00 01 74 00 00",
      MQTTC_ERR_BAD_QOS }, /* MQTT-3.1.2-14 */
    { "connect trailing byte", 0x10, "00 04 4D 51 54 54 04 02 00 3C 00 01 78 00",
      MQTTC_ERR_MALFORMED },
    { "connect client id past end", 0x10, "00 04 4D 51 54 54 04 02 00 3C 00 05 78",
      MQTTC_ERR_MALFORMED },
    { "connect missing client id", 0x10, "00 04 4D 51 54 54 04 02 00 3C", MQTTC_ERR_MALFORMED },
    { "connect missing username", 0x10, "00 04 4D 51 54 54 04 82 00 3C 00 01 78",
      MQTTC_ERR_MALFORMED },
    { "connect missing password", 0x10, "00 04 4D 51 54 54 04 C2 00 3C 00 01 78 00 01 75",
      MQTTC_ERR_MALFORMED },
    { "connect missing will message", 0x10, "00 04 4D 51 54 54 04 06 00 3C 00 01 78 00 01 74",
      MQTTC_ERR_MALFORMED },
    { "connect client id overlong utf8", 0x10, "00 04 4D 51 54 54 04 02 00 3C 00 02 C0 80",
      MQTTC_ERR_BAD_UTF8 },
    { "connect username with U+0000", 0x10,
      "00 04 4D 51 54 54 04 82 00 3C 00 01 78 00 01 00", MQTTC_ERR_BAD_UTF8 },
    { "connect empty client id without clean session", 0x10,
      "00 04 4D 51 54 54 04 00 00 3C 00 00", MQTTC_ERR_BAD_CLIENT_ID }, /* MQTT-3.1.3-7 */
};

static void test_decode_rejects_malformed_bodies(void **state)
{
    (void)state;
    size_t wrong = 0; /* report every failing case, not only the first */
    for (size_t i = 0; i < sizeof MALFORMED_BODIES / sizeof MALFORMED_BODIES[0]; i++) {
        int rc = decode_hex(MALFORMED_BODIES[i].first, MALFORMED_BODIES[i].body);
        if (rc != MALFORMED_BODIES[i].want) {
            print_error("case \"%s\": first 0x%02X body \"%s\": got %d (%s), want %d (%s)\n",
                        MALFORMED_BODIES[i].what, MALFORMED_BODIES[i].first,
                        MALFORMED_BODIES[i].body, rc, mqttc_errname(rc),
                        MALFORMED_BODIES[i].want, mqttc_errname(MALFORMED_BODIES[i].want));
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
}

/*
 * MQTT-3.1.2-13 / -15: with the Will Flag 0, Will QoS and Will Retain must be 0.
 * The header allows MQTTC_ERR_MALFORMED; error.h's MQTTC_ERR_BAD_WILL names
 * exactly this case, so either is accepted.
 */
static void test_decode_connect_will_fields_without_will_flag(void **state)
{
    (void)state;
    const char *bodies[] = {
        "00 04 4D 51 54 54 04 0A 00 3C 00 01 78", /* will QoS 1, will flag 0 */
        "00 04 4D 51 54 54 04 12 00 3C 00 01 78", /* will QoS 2, will flag 0 */
        "00 04 4D 51 54 54 04 22 00 3C 00 01 78", /* will retain, will flag 0 */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        int rc = decode_hex(0x10, bodies[i]);
        if (rc != MQTTC_ERR_MALFORMED && rc != MQTTC_ERR_BAD_WILL) {
            print_error("body %s: got %d (%s), want MALFORMED or BAD_WILL\n", bodies[i], rc,
                        mqttc_errname(rc));
            fail();
        }
    }
}

static void test_decode_null_args_are_invalid(void **state)
{
    (void)state;
    uint8_t body[2] = { 0x00, 0x01 };
    mqttc_packet p;
    assert_code(mqttc_decode(0x40, body, 2, NULL), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_decode(0x40, NULL, 2, &p), MQTTC_ERR_INVALID_ARG);
}

/* ---- mqttc_decode_publish_header ----------------------------------------- */

static void test_decode_publish_header_partial_bodies_need_more(void **state)
{
    (void)state;
    const uint8_t *body1 = PUBLISH_QOS1_RETAIN + 2; /* 00 03 a/b 12 34 x y z */
    const uint8_t *body0 = PUBLISH_QOS0 + 2;        /* 00 03 a/b h i */
    mqttc_publish pub;
    for (size_t len = 0; len <= 10; len++) {
        uint8_t *b = heap_copy(body1, len);
        memset(&pub, 0, sizeof pub);
        int rc = mqttc_decode_publish_header(0x33, b, len, 10, &pub);
        if (len < 7) {
            assert_code(rc, 0);
        } else {
            assert_code(rc, 7);
            assert_int_equal(pub.topic.len, 3);
            assert_memory_equal(pub.topic.data, "a/b", 3);
            assert_ptr_equal(pub.topic.data, (const char *)b + 2);
            assert_int_equal(pub.packet_id, 0x1234);
        }
        free(b);
    }
    for (size_t len = 0; len <= 7; len++) {
        uint8_t *b = heap_copy(body0, len);
        memset(&pub, 0, sizeof pub);
        int rc = mqttc_decode_publish_header(0x30, b, len, 7, &pub);
        if (len < 5) {
            assert_code(rc, 0);
        } else {
            assert_code(rc, 5);
            assert_int_equal(pub.topic.len, 3);
            assert_memory_equal(pub.topic.data, "a/b", 3);
            assert_int_equal(pub.packet_id, 0);
        }
        free(b);
    }
}

static int publish_header_hex(uint8_t first, const char *hex, uint32_t remaining)
{
    uint8_t tmp[64];
    size_t n = tu_unhex(hex, tmp, sizeof tmp);
    uint8_t *b = heap_copy(tmp, n);
    mqttc_publish pub;
    int rc = mqttc_decode_publish_header(first, b, n, remaining, &pub);
    free(b);
    return rc;
}

static void test_decode_publish_header_rejects_bad_headers(void **state)
{
    (void)state;
    assert_code(publish_header_hex(0x36, "00 01 74 00 01", 5), MQTTC_ERR_BAD_QOS);
    assert_code(publish_header_hex(0x30, "00 03 61 2F 2B", 5), MQTTC_ERR_BAD_TOPIC);
    assert_code(publish_header_hex(0x30, "00 00", 2), MQTTC_ERR_BAD_TOPIC);
    assert_code(publish_header_hex(0x30, "00 02 C0 80", 4), MQTTC_ERR_BAD_UTF8);
    /* The topic claims more bytes than the packet has. */
    assert_code(publish_header_hex(0x30, "00 09 61 62 63", 5), MQTTC_ERR_MALFORMED);
    assert_code(publish_header_hex(0x30, "00", 1), MQTTC_ERR_MALFORMED);
    /* QoS 1: no room for the packet id, or packet id 0. */
    assert_code(publish_header_hex(0x32, "00 01 74 00", 4), MQTTC_ERR_MALFORMED);
    assert_code(publish_header_hex(0x32, "00 01 74 00 00 41", 6), MQTTC_ERR_MALFORMED);
    /* A large packet whose header is complete: only the header is needed. */
    assert_code(publish_header_hex(0x34, "00 01 74 12 34", 100000), 5);
}

/* ---- robustness ------------------------------------------------------------ */

static uint32_t lcg_state;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state >> 8;
}

static bool is_decode_error(int rc)
{
    switch (rc) {
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

static void check_inside(const void *p, size_t n, const uint8_t *body, size_t len)
{
    if (n == 0) {
        return;
    }
    const uint8_t *q = p;
    assert_true(q >= body && q + n <= body + len);
}

static void test_decode_random_bodies_never_crash(void **state)
{
    (void)state;
    static const uint8_t firsts[] = { 0x10, 0x20, 0x30, 0x32, 0x34, 0x3B, 0x40, 0x50, 0x62,
                                      0x70, 0x82, 0x90, 0xA2, 0xB0, 0xC0, 0xD0, 0xE0 };
    lcg_state = 20240601u;
    size_t accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t first = (lcg() & 1u) ? firsts[lcg() % sizeof firsts] : (uint8_t)lcg();
        size_t len = lcg() % 48u;
        uint8_t *body = malloc(len > 0 ? len : 1);
        assert_non_null(body);
        for (size_t i = 0; i < len; i++) {
            /* mostly small values, so that lengths and flags are often plausible */
            body[i] = (lcg() % 4u == 0) ? (uint8_t)lcg() : (uint8_t)(lcg() % 8u);
        }
        if (first == 0x10 && len >= 10 && (lcg() & 1u)) {
            memcpy(body, "\x00\x04MQTT\x04", 7);
        }
        mqttc_packet p;
        int rc = mqttc_decode(first, body, len, &p);
        if (rc != 0 && !is_decode_error(rc)) {
            print_error("first 0x%02X len %zu: unexpected code %d (%s)\n", first, len, rc,
                        mqttc_errname(rc));
            fail();
        }
        if (rc == 0) {
            accepted++;
            assert_int_equal(p.type, first >> 4);
            if (p.type == MQTTC_PUBLISH) {
                check_inside(p.u.publish.topic.data, p.u.publish.topic.len, body, len);
                check_inside(p.u.publish.payload, p.u.publish.payload_len, body, len);
                assert_int_equal(p.u.publish.payload_len, p.u.publish.total_len);
            } else if (p.type == MQTTC_SUBACK) {
                check_inside(p.u.suback.codes, p.u.suback.count, body, len);
            } else if (p.type == MQTTC_SUBSCRIBE || p.type == MQTTC_UNSUBSCRIBE) {
                size_t pos = 0;
                size_t count = 0;
                mqttc_str f;
                uint8_t qos;
                while (count <= len && mqttc_entries_next(&p, &pos, &f, &qos)) {
                    check_inside(f.data, f.len, body, len);
                    count++;
                }
                assert_int_equal(count, p.u.subscribe.count);
            }
        }
        free(body);
    }
    assert_true(accepted > 0); /* the generator reaches the success paths too */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remaining_length_size_at_boundaries),
        cmocka_unit_test(test_remaining_length_encodes_golden_boundaries),
        cmocka_unit_test(test_remaining_length_over_maximum_is_too_large),
        cmocka_unit_test(test_remaining_length_decodes_golden_boundaries),
        cmocka_unit_test(test_remaining_length_incomplete_needs_more),
        cmocka_unit_test(test_remaining_length_fifth_byte_is_malformed),
        cmocka_unit_test(test_remaining_length_accepts_non_minimal_encoding),
        cmocka_unit_test(test_remaining_length_null_args_are_invalid),
        cmocka_unit_test(test_fixed_header_parse_reads_type_and_length),
        cmocka_unit_test(test_fixed_header_parse_incomplete_needs_more),
        cmocka_unit_test(test_fixed_header_parse_fifth_length_byte_is_malformed),
        cmocka_unit_test(test_fixed_header_parse_null_args_are_invalid),
        cmocka_unit_test(test_fixed_header_flags_follow_table_2_2_for_every_byte),
        cmocka_unit_test(test_reserved_packet_types_are_rejected),
        cmocka_unit_test(test_publish_qos3_is_bad_qos),
        cmocka_unit_test(test_publish_qos0_with_dup_is_bad_flags),
        cmocka_unit_test(test_subscribe_unsubscribe_pubrel_require_flags_0010),
        cmocka_unit_test(test_connect_minimal_encodes_to_golden),
        cmocka_unit_test(test_connect_full_encodes_to_golden),
        cmocka_unit_test(test_connect_will_qos2_username_only_encodes_to_golden),
        cmocka_unit_test(test_connect_minimal_golden_decodes_every_field),
        cmocka_unit_test(test_connect_full_golden_decodes_every_field),
        cmocka_unit_test(test_connect_will_qos2_golden_decodes_every_field),
        cmocka_unit_test(test_connect_round_trips),
        cmocka_unit_test(test_connect_empty_client_id_requires_clean_session),
        cmocka_unit_test(test_connect_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_connack_encodes_to_golden),
        cmocka_unit_test(test_connack_decodes_every_field),
        cmocka_unit_test(test_connack_round_trips),
        cmocka_unit_test(test_connack_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_publish_qos0_encodes_to_golden),
        cmocka_unit_test(test_publish_qos1_retain_encodes_to_golden),
        cmocka_unit_test(test_publish_qos2_dup_empty_payload_encodes_to_golden),
        cmocka_unit_test(test_publish_goldens_decode_every_field),
        cmocka_unit_test(test_publish_header_only_encoding_stops_before_payload),
        cmocka_unit_test(test_publish_remaining_length_boundaries),
        cmocka_unit_test(test_publish_over_protocol_maximum_is_too_large),
        cmocka_unit_test(test_publish_round_trips),
        cmocka_unit_test(test_publish_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_acks_encode_to_golden),
        cmocka_unit_test(test_acks_decode_every_field),
        cmocka_unit_test(test_acks_round_trip),
        cmocka_unit_test(test_ack_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_empty_packets_encode_to_golden),
        cmocka_unit_test(test_empty_packets_decode_and_round_trip),
        cmocka_unit_test(test_empty_encoder_rejects_other_types),
        cmocka_unit_test(test_subscribe_encodes_to_golden),
        cmocka_unit_test(test_subscribe_golden_decodes_and_iterates_entries),
        cmocka_unit_test(test_subscribe_round_trips),
        cmocka_unit_test(test_subscribe_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_suback_encodes_to_golden),
        cmocka_unit_test(test_suback_decodes_every_field),
        cmocka_unit_test(test_suback_round_trips),
        cmocka_unit_test(test_suback_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_unsubscribe_encodes_to_golden),
        cmocka_unit_test(test_unsubscribe_golden_decodes_and_iterates_entries),
        cmocka_unit_test(test_unsubscribe_round_trips),
        cmocka_unit_test(test_unsubscribe_encoder_rejects_bad_arguments),
        cmocka_unit_test(test_decode_rejects_malformed_bodies),
        cmocka_unit_test(test_decode_connect_will_fields_without_will_flag),
        cmocka_unit_test(test_decode_null_args_are_invalid),
        cmocka_unit_test(test_decode_publish_header_partial_bodies_need_more),
        cmocka_unit_test(test_decode_publish_header_rejects_bad_headers),
        cmocka_unit_test(test_decode_random_bodies_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
