/*
 * libFuzzer target for the incremental decoder (decoder.h) and the codec.
 *
 * Input: one configuration byte, then bytes as a broker or client would send
 * them. The configuration byte picks
 *   bits 0-2  chunk size (1, 2, 3, 7, 16, 64, 256, 4096 bytes per feed)
 *   bit  3    stream mode (oversized PUBLISH payloads delivered in pieces)
 *   bits 4-5  decoder buffer size (16, 64, 256, 4096 bytes)
 *   bit  6    which input path goes first (feed or space/commit; they alternate)
 *   bit  7    max_packet 512 instead of the protocol maximum
 *
 * Properties checked (abort() on violation):
 *   - the decoder never stalls: with its buffer full it yields a packet or
 *     an error, and its errors are sticky;
 *   - streamed PUBLISH pieces are contiguous, in bounds and repeat the topic;
 *   - every whole packet re-encodes with the codec encoders (where the
 *     encoder accepts it) and decodes back to the same packet;
 *   - mqttc_decode() on the whole input as one packet body obeys the same
 *     round trip.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttc/codec.h"
#include "mqttc/decoder.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_decoder: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static const size_t chunk_sizes[8] = {1, 2, 3, 7, 16, 64, 256, 4096};
static const size_t buffer_sizes[4] = {16, 64, 256, 4096};

/* The decoder's buffer is placed at the end of this pool so that a write
 * past `cap` lands in ASan's redzone after the array. */
static uint8_t pool[4096];
/* Re-encoding needs room for a whole packet at most as large as the pool. */
static uint8_t out[4096 + 2 * MQTTC_MAX_FIXED_HEADER];
/* Entries of a SUBSCRIBE/UNSUBSCRIBE: each takes at least 3 bytes. */
static mqttc_subscription subs[4096 / 3 + 1];
static mqttc_str filters[4096 / 3 + 1];

static volatile uint8_t sink;

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= b[i];
    sink ^= x;
}

static bool str_eq(mqttc_str a, mqttc_str b) {
    if ((a.data == NULL) != (b.data == NULL)) return false;
    if (a.len != b.len) return false;
    return a.len == 0 || memcmp(a.data, b.data, a.len) == 0;
}

static void check_str(mqttc_str s) {
    if (s.data != NULL) touch(s.data, s.len);
}

/* Touch every byte a decoded packet points to and check field ranges. */
static void check_packet(const mqttc_packet *p) {
    switch (p->type) {
    case MQTTC_CONNECT:
        check_str(p->u.connect.client_id);
        check_str(p->u.connect.username);
        check_str(p->u.connect.password);
        check_str(p->u.connect.will_topic);
        check_str(p->u.connect.will_payload);
        if (p->u.connect.will_qos > 2) FAIL("CONNECT will QoS %u", p->u.connect.will_qos);
        break;
    case MQTTC_PUBLISH: {
        const mqttc_publish *pub = &p->u.publish;
        check_str(pub->topic);
        if (pub->qos > 2) FAIL("PUBLISH QoS %u", pub->qos);
        if ((pub->qos == 0) != (pub->packet_id == 0))
            FAIL("PUBLISH QoS %u with packet id %u", pub->qos, pub->packet_id);
        if (pub->offset > pub->total_len || pub->payload_len > pub->total_len - pub->offset)
            FAIL("PUBLISH piece %zu+%zu beyond total %zu", pub->offset, pub->payload_len,
                 pub->total_len);
        if (pub->payload_len > 0) touch(pub->payload, pub->payload_len);
        break;
    }
    case MQTTC_SUBACK:
        for (size_t i = 0; i < p->u.suback.count; i++) {
            uint8_t c = p->u.suback.codes[i];
            if (c > 2 && c != MQTTC_SUBACK_FAILURE) FAIL("SUBACK code 0x%02x", c);
        }
        break;
    default:
        break;
    }
}

/* Collect SUBSCRIBE/UNSUBSCRIBE entries; returns their number. */
static size_t collect_entries(const mqttc_packet *p, bool with_qos) {
    size_t pos = 0, n = 0;
    mqttc_str f;
    uint8_t qos = 0;
    while (mqttc_entries_next(p, &pos, &f, with_qos ? &qos : NULL)) {
        if (n >= sizeof subs / sizeof subs[0]) FAIL("more entries than bytes allow");
        touch(f.data, f.len);
        if (with_qos) {
            if (qos > 2) FAIL("SUBSCRIBE entry QoS %u", qos);
            subs[n].filter = f;
            subs[n].qos = qos;
        } else {
            filters[n] = f;
        }
        n++;
    }
    return n;
}

/* Encode `p` again; returns the size, or <= 0 when the encoder refuses it. */
static int reencode(const mqttc_packet *p) {
    switch (p->type) {
    case MQTTC_CONNECT:
        return mqttc_encode_connect(out, sizeof out, &p->u.connect);
    case MQTTC_CONNACK:
        return mqttc_encode_connack(out, sizeof out, p->u.connack.session_present,
                                    p->u.connack.return_code);
    case MQTTC_PUBLISH:
        return mqttc_encode_publish(out, sizeof out, &p->u.publish);
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBREL:
    case MQTTC_PUBCOMP:
    case MQTTC_UNSUBACK:
        return mqttc_encode_ack(out, sizeof out, (mqttc_packet_type)p->type, p->u.packet_id);
    case MQTTC_SUBACK:
        return mqttc_encode_suback(out, sizeof out, p->u.suback.packet_id, p->u.suback.codes,
                                   p->u.suback.count);
    case MQTTC_SUBSCRIBE: {
        size_t n = collect_entries(p, true);
        if (n != p->u.subscribe.count) FAIL("SUBSCRIBE count %zu, iterated %zu", p->u.subscribe.count, n);
        return mqttc_encode_subscribe(out, sizeof out, p->u.subscribe.packet_id, subs, n);
    }
    case MQTTC_UNSUBSCRIBE: {
        size_t n = collect_entries(p, false);
        if (n != p->u.unsubscribe.count)
            FAIL("UNSUBSCRIBE count %zu, iterated %zu", p->u.unsubscribe.count, n);
        return mqttc_encode_unsubscribe(out, sizeof out, p->u.unsubscribe.packet_id, filters, n);
    }
    case MQTTC_PINGREQ:
    case MQTTC_PINGRESP:
    case MQTTC_DISCONNECT:
        return mqttc_encode_empty(out, sizeof out, (mqttc_packet_type)p->type);
    default:
        FAIL("decoded a packet of reserved type %u", p->type);
    }
    return 0;
}

static bool entries_eq(const mqttc_packet *a, const mqttc_packet *b, bool with_qos) {
    size_t pa = 0, pb = 0;
    mqttc_str fa, fb;
    uint8_t qa = 0, qb = 0;
    for (;;) {
        bool ha = mqttc_entries_next(a, &pa, &fa, with_qos ? &qa : NULL);
        bool hb = mqttc_entries_next(b, &pb, &fb, with_qos ? &qb : NULL);
        if (ha != hb) return false;
        if (!ha) return true;
        if (!str_eq(fa, fb) || qa != qb) return false;
    }
}

static bool packet_eq(const mqttc_packet *a, const mqttc_packet *b) {
    if (a->type != b->type || a->flags != b->flags) return false;
    switch (a->type) {
    case MQTTC_CONNECT: {
        const mqttc_connect *x = &a->u.connect, *y = &b->u.connect;
        return str_eq(x->client_id, y->client_id) && str_eq(x->username, y->username) &&
               str_eq(x->password, y->password) && str_eq(x->will_topic, y->will_topic) &&
               (x->will_topic.data == NULL || str_eq(x->will_payload, y->will_payload)) &&
               x->keepalive == y->keepalive && x->will_qos == y->will_qos &&
               x->will_retain == y->will_retain && x->clean_session == y->clean_session;
    }
    case MQTTC_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.return_code == b->u.connack.return_code;
    case MQTTC_PUBLISH: {
        const mqttc_publish *x = &a->u.publish, *y = &b->u.publish;
        return str_eq(x->topic, y->topic) && x->payload_len == y->payload_len &&
               x->total_len == y->total_len && x->offset == y->offset &&
               (x->payload_len == 0 || memcmp(x->payload, y->payload, x->payload_len) == 0) &&
               x->packet_id == y->packet_id && x->qos == y->qos && x->retain == y->retain &&
               x->dup == y->dup;
    }
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBREL:
    case MQTTC_PUBCOMP:
    case MQTTC_UNSUBACK:
        return a->u.packet_id == b->u.packet_id;
    case MQTTC_SUBACK:
        return a->u.suback.packet_id == b->u.suback.packet_id &&
               a->u.suback.count == b->u.suback.count &&
               (a->u.suback.count == 0 ||
                memcmp(a->u.suback.codes, b->u.suback.codes, a->u.suback.count) == 0);
    case MQTTC_SUBSCRIBE:
        return a->u.subscribe.packet_id == b->u.subscribe.packet_id &&
               a->u.subscribe.count == b->u.subscribe.count && entries_eq(a, b, true);
    case MQTTC_UNSUBSCRIBE:
        return a->u.unsubscribe.packet_id == b->u.unsubscribe.packet_id &&
               a->u.unsubscribe.count == b->u.unsubscribe.count && entries_eq(a, b, false);
    default:
        return true;
    }
}

/* Round trip: encode a whole decoded packet again, decode that, compare. */
static void round_trip(const mqttc_packet *p) {
    check_packet(p);
    int n = reencode(p);
    if (n <= 0) return; /* the encoder is stricter than the decoder here */
    if ((size_t)n > sizeof out) FAIL("encoder wrote %d bytes into %zu", n, sizeof out);
    uint8_t first = 0;
    uint32_t remaining = 0;
    int h = mqttc_fixed_header_parse(out, (size_t)n, &first, &remaining);
    if (h <= 0) FAIL("re-encoded type %u: fixed header does not parse (%d)", p->type, h);
    if ((size_t)h + remaining != (size_t)n)
        FAIL("re-encoded type %u: header %d + remaining %u != size %d", p->type, h,
             (unsigned)remaining, n);
    if (remaining != p->remaining_length)
        FAIL("re-encoded type %u: remaining length %u, decoded one had %u", p->type,
             (unsigned)remaining, (unsigned)p->remaining_length);
    mqttc_packet q;
    memset(&q, 0, sizeof q);
    int rc = mqttc_decode(first, out + h, remaining, &q);
    if (rc != 0) FAIL("re-encoded type %u does not decode: %d", p->type, rc);
    if (q.remaining_length != remaining)
        FAIL("mqttc_decode set remaining_length %u for a %u-byte body",
             (unsigned)q.remaining_length, (unsigned)remaining);
    if (!packet_eq(p, &q)) FAIL("round trip changed a packet of type %u", p->type);
}

/* State of a PUBLISH being delivered in pieces. */
static struct {
    bool active;
    size_t next_offset;
    size_t total;
    uint16_t packet_id;
    uint8_t qos;
    uint16_t topic_len;
    char topic[4096];
} piece;

static void on_packet(const mqttc_packet *p) {
    if (p->type == MQTTC_PUBLISH) {
        const mqttc_publish *pub = &p->u.publish;
        bool whole = pub->offset == 0 && pub->payload_len == pub->total_len;
        if (whole && !piece.active) {
            round_trip(p);
            return;
        }
        check_packet(p);
        if (!piece.active) {
            if (pub->offset != 0) FAIL("first piece at offset %zu", pub->offset);
            if (pub->topic.len > sizeof piece.topic) FAIL("streamed topic larger than the buffer");
            piece.active = true;
            piece.next_offset = 0;
            piece.total = pub->total_len;
            piece.packet_id = pub->packet_id;
            piece.qos = pub->qos;
            piece.topic_len = pub->topic.len;
            memcpy(piece.topic, pub->topic.data, pub->topic.len);
        }
        if (pub->offset != piece.next_offset) FAIL("piece at %zu, expected %zu", pub->offset, piece.next_offset);
        if (pub->total_len != piece.total) FAIL("total changed %zu -> %zu", piece.total, pub->total_len);
        if (pub->packet_id != piece.packet_id || pub->qos != piece.qos ||
            pub->topic.len != piece.topic_len ||
            memcmp(pub->topic.data, piece.topic, piece.topic_len) != 0)
            FAIL("a piece does not repeat the message's topic, id and QoS");
        if (pub->payload_len == 0 && pub->offset != pub->total_len) FAIL("empty piece mid-message");
        piece.next_offset += pub->payload_len;
        if (piece.next_offset == piece.total) piece.active = false;
        return;
    }
    if (piece.active) FAIL("packet type %u in the middle of a streamed PUBLISH", p->type);
    round_trip(p);
}

/* Drain whole packets. Returns 0 (needs bytes) or the sticky error. */
static int drain(mqttc_decoder *d) {
    mqttc_packet p;
    int rc;
    for (;;) {
        memset(&p, 0, sizeof p);
        rc = mqttc_decoder_next(d, &p);
        if (rc <= 0) break;
        if (rc != 1) FAIL("mqttc_decoder_next returned %d", rc);
        on_packet(&p);
    }
    if (rc < 0) {
        int again = mqttc_decoder_next(d, &p);
        if (again != rc) FAIL("error %d not sticky: then %d", rc, again);
    }
    return rc;
}

static void fuzz_stream(uint8_t cfg, const uint8_t *data, size_t size) {
    size_t chunk = chunk_sizes[cfg & 7];
    bool stream = (cfg & 0x08) != 0;
    size_t cap = buffer_sizes[(cfg >> 4) & 3];
    bool space_first = (cfg & 0x40) != 0;
    uint32_t max_packet = (cfg & 0x80) ? 512 : 0;

    uint8_t *buf = pool + sizeof pool - cap;
    mqttc_decoder d;
    if (mqttc_decoder_init(&d, buf, cap, max_packet, stream) != 0) FAIL("init failed, cap %zu", cap);
    d.decode = mqttc_decode; /* both directions */
    memset(&piece, 0, sizeof piece);

    size_t pos = 0;
    for (unsigned turn = 0; pos < size; turn++) {
        size_t want = size - pos < chunk ? size - pos : chunk;
        size_t took;
        if (((turn & 1) == 0) == space_first) {
            size_t room = 0;
            uint8_t *sp = mqttc_decoder_space(&d, &room);
            if (room > 0 && (sp < buf || sp + room > buf + cap)) FAIL("space outside the buffer");
            took = want < room ? want : room;
            if (took > 0) memcpy(sp, data + pos, took);
            mqttc_decoder_commit(&d, took);
        } else {
            took = mqttc_decoder_feed(&d, data + pos, want);
            if (took > want) FAIL("feed took %zu of %zu", took, want);
        }
        pos += took;
        if (drain(&d) < 0) {
            /* Sticky: nothing more goes in or comes out. */
            return;
        }
        if (took == 0) {
            /* Full and no packet: the decoder must have made room by now. */
            size_t room = 0;
            (void)mqttc_decoder_space(&d, &room);
            if (room == 0) FAIL("decoder stalled: buffer full (cap %zu) and no packet or error", cap);
        }
    }
    (void)mqttc_decoder_pending(&d);
    mqttc_decoder_reset(&d);
    if (mqttc_decoder_pending(&d) != 0) FAIL("bytes pending after reset");
}

/* The whole input as one packet: first byte, then the body. */
static void fuzz_one_packet(const uint8_t *data, size_t size) {
    if (size == 0) return;
    mqttc_packet p;
    memset(&p, 0, sizeof p);
    int rc = mqttc_decode(data[0], data + 1, size - 1, &p);
    if (rc > 0) FAIL("mqttc_decode returned %d", rc);
    if (rc == 0) {
        if (p.remaining_length != size - 1) FAIL("remaining_length %u for %zu bytes", (unsigned)p.remaining_length, size - 1);
        if (p.type == MQTTC_PUBLISH && (p.u.publish.offset != 0 || p.u.publish.payload_len != p.u.publish.total_len))
            FAIL("mqttc_decode gave a PUBLISH piece");
        if (size - 1 <= 4096) round_trip(&p);
        else check_packet(&p);
    }

    uint8_t first;
    uint32_t remaining;
    int h = mqttc_fixed_header_parse(data, size, &first, &remaining);
    if (h > (int)MQTTC_MAX_FIXED_HEADER || h == 1) FAIL("fixed header size %d", h);
    if (h > 0 && remaining > MQTTC_MAX_REMAINING_LENGTH) FAIL("remaining length %u", (unsigned)remaining);
    if (h > 0 && (size_t)h <= size) {
        mqttc_publish pub;
        memset(&pub, 0, sizeof pub);
        size_t body = size - (size_t)h;
        if (body > remaining) body = remaining;
        if ((first >> 4) == MQTTC_PUBLISH) {
            int v = mqttc_decode_publish_header(first, data + h, body, remaining, &pub);
            if (v > 0 && (size_t)v > body) FAIL("publish header %d longer than %zu bytes", v, body);
            if (v > 0) touch(pub.topic.data, pub.topic.len);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    fuzz_stream(data[0], data + 1, size - 1);
    fuzz_one_packet(data + 1, size - 1);
    return 0;
}
