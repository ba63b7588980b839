/* MQTT 3.1.1 packet encoders (MQTT-2, MQTT-3). Every encoder validates its
 * arguments and the buffer size first, then writes the packet in one pass,
 * so nothing is written when it fails. */
#include <string.h>

#include "mqttc/codec.h"

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_str(uint8_t *p, const mqttc_str *s)
{
    p = put16(p, s->len);
    if (s->len > 0) { /* data may be NULL when empty */
        memcpy(p, s->data, s->len);
    }
    return p + s->len;
}

/* Writes the fixed header of a packet whose Remaining Length is `rem`, after
 * checking that `cap` also holds the `body` bytes the caller writes next.
 * Returns the header size. */
static int put_header(uint8_t *buf, size_t cap, uint8_t first, size_t rem, size_t body)
{
    size_t n;

    if (buf == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (rem > MQTTC_MAX_REMAINING_LENGTH) {
        return MQTTC_ERR_TOO_LARGE;
    }
    n = 1 + mqttc_varint_size((uint32_t)rem);
    if (cap < n || cap - n < body) {
        return MQTTC_ERR_BUFFER_TOO_SMALL;
    }
    buf[0] = first;
    (void)mqttc_varint_encode(buf + 1, cap - 1, (uint32_t)rem);
    return (int)n;
}

size_t mqttc_varint_size(uint32_t value)
{
    if (value > MQTTC_MAX_REMAINING_LENGTH) {
        return 0;
    }
    return value < 128u ? 1 : value < 16384u ? 2 : value < 2097152u ? 3 : 4;
}

int mqttc_varint_encode(uint8_t *buf, size_t cap, uint32_t value)
{
    size_t n = mqttc_varint_size(value);

    if (buf == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (n == 0) {
        return MQTTC_ERR_TOO_LARGE;
    }
    if (cap < n) {
        return MQTTC_ERR_BUFFER_TOO_SMALL;
    }
    for (size_t i = 0; i < n; i++, value >>= 7) {
        buf[i] = (uint8_t)((value & 0x7F) | (i + 1 < n ? 0x80 : 0));
    }
    return (int)n;
}

int mqttc_varint_decode(const uint8_t *buf, size_t len, uint32_t *value)
{
    uint32_t v = 0;

    if (buf == NULL || value == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < 4; i++) {
        if (i >= len) {
            return 0;
        }
        v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
        if ((buf[i] & 0x80) == 0) {
            *value = v;
            return (int)i + 1;
        }
    }
    return MQTTC_ERR_MALFORMED_LENGTH;
}

int mqttc_fixed_header_check(uint8_t first)
{
    unsigned type = first >> 4, flags = first & 0x0F;

    if (type == 0 || type == 15) {
        return MQTTC_ERR_BAD_PACKET_TYPE;
    }
    if (type == MQTTC_PUBLISH) {
        if ((flags & 0x06) == 0x06) {
            return MQTTC_ERR_BAD_QOS;
        }
        /* DUP must be 0 for QoS 0 (MQTT-3.3.1-2). */
        return (flags & 0x0E) == 0x08 ? MQTTC_ERR_BAD_FLAGS : 0;
    }
    /* PUBREL, SUBSCRIBE and UNSUBSCRIBE carry 0b0010, the rest 0 (MQTT-2.2.2). */
    if (flags != (((1u << MQTTC_PUBREL | 1u << MQTTC_SUBSCRIBE | 1u << MQTTC_UNSUBSCRIBE) >>
                   type & 1u) << 1)) {
        return MQTTC_ERR_BAD_FLAGS;
    }
    return 0;
}

int mqttc_fixed_header_parse(const uint8_t *buf, size_t len, uint8_t *first,
                             uint32_t *remaining)
{
    int rc;

    if (buf == NULL || first == NULL || remaining == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (len == 0) {
        return 0;
    }
    rc = mqttc_fixed_header_check(buf[0]);
    if (rc < 0) {
        return rc;
    }
    rc = mqttc_varint_decode(buf + 1, len - 1, remaining);
    if (rc <= 0) {
        return rc;
    }
    *first = buf[0];
    return rc + 1;
}

/* ---- CONNECT ------------------------------------------------------------- */

/* Validates `c`; returns its Remaining Length or a negative code. */
static int connect_rem(const mqttc_connect *c)
{
    const mqttc_str *strs[5];
    int rem, rc;

    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    strs[0] = &c->client_id;
    strs[1] = &c->username;
    strs[2] = &c->password;
    strs[3] = &c->will_topic;
    strs[4] = &c->will_payload;
    for (int i = 0; i < 5; i++) {
        if (strs[i]->data == NULL && strs[i]->len > 0) {
            return MQTTC_ERR_INVALID_ARG;
        }
    }
    if (c->client_id.len > 0) {
        rc = mqttc_utf8_check(c->client_id.data, c->client_id.len);
        if (rc < 0) {
            return rc;
        }
    } else if (!c->clean_session) {
        return MQTTC_ERR_BAD_CLIENT_ID; /* MQTT-3.1.3-7 */
    }
    /* Protocol name, level, flags and keepalive, then the client id. */
    rem = 10 + 2 + c->client_id.len;
    if (c->will_qos > 2) {
        return MQTTC_ERR_BAD_QOS;
    }
    if (c->will_topic.data != NULL) {
        rc = mqttc_topic_name_check(c->will_topic.data, c->will_topic.len);
        if (rc < 0) {
            return rc;
        }
        rem += 4 + c->will_topic.len + c->will_payload.len;
    } else if (c->will_qos != 0 || c->will_retain || c->will_payload.data != NULL) {
        return MQTTC_ERR_BAD_WILL; /* MQTT-3.1.2-13, -15 */
    }
    if (c->password.data != NULL) {
        if (c->username.data == NULL) {
            return MQTTC_ERR_INVALID_ARG; /* MQTT-3.1.2-22 */
        }
        rem += 2 + c->password.len;
    }
    if (c->username.data != NULL) {
        rc = mqttc_utf8_check(c->username.data, c->username.len);
        if (rc < 0) {
            return rc;
        }
        rem += 2 + c->username.len;
    }
    return rem;
}

int mqttc_connect_size(const mqttc_connect *c)
{
    int rem = connect_rem(c);
    return rem < 0 ? rem : 1 + (int)mqttc_varint_size((uint32_t)rem) + rem;
}

int mqttc_encode_connect(uint8_t *buf, size_t cap, const mqttc_connect *c)
{
    int rem = connect_rem(c), hs;
    bool will;
    uint8_t *p;

    if (rem < 0) {
        return rem;
    }
    hs = put_header(buf, cap, MQTTC_CONNECT << 4, (size_t)rem, (size_t)rem);
    if (hs < 0) {
        return hs;
    }
    will = c->will_topic.data != NULL;
    p = buf + hs;
    memcpy(p, "\0\4MQTT\4", 7); /* protocol name and level 4 (MQTT-3.1.2-1, -2) */
    p[7] = (uint8_t)((c->username.data ? 0x80 : 0) | (c->password.data ? 0x40 : 0) |
                     (c->will_retain ? 0x20 : 0) | c->will_qos << 3 | (will ? 0x04 : 0) |
                     (c->clean_session ? 0x02 : 0));
    p = put16(p + 8, c->keepalive);
    p = put_str(p, &c->client_id);
    if (will) {
        p = put_str(p, &c->will_topic);
        p = put_str(p, &c->will_payload);
    }
    if (c->username.data != NULL) {
        p = put_str(p, &c->username);
    }
    if (c->password.data != NULL) {
        p = put_str(p, &c->password);
    }
    return (int)(p - buf);
}

/* ---- Fixed-size packets -------------------------------------------------- */

/* Writes a 4-byte packet: `first`, Remaining Length 2, then `v` big-endian. */
static int put4(uint8_t *buf, size_t cap, uint8_t first, uint16_t v)
{
    int hs = put_header(buf, cap, first, 2, 2);

    if (hs < 0) {
        return hs;
    }
    put16(buf + hs, v);
    return 4;
}

int mqttc_encode_connack(uint8_t *buf, size_t cap, bool session_present, uint8_t return_code)
{
    if (return_code > MQTTC_CONNACK_REFUSED_NOT_AUTHORIZED ||
        (session_present && return_code != 0)) {
        return MQTTC_ERR_INVALID_ARG; /* MQTT-3.2.2-4 */
    }
    return put4(buf, cap, MQTTC_CONNACK << 4, (uint16_t)(session_present << 8 | return_code));
}

int mqttc_encode_ack(uint8_t *buf, size_t cap, mqttc_packet_type type, uint16_t packet_id)
{
    if (packet_id == 0 || !(type == MQTTC_UNSUBACK ||
                            (type >= MQTTC_PUBACK && type <= MQTTC_PUBCOMP))) {
        return MQTTC_ERR_INVALID_ARG;
    }
    /* PUBREL is the only one with flags 0b0010 (MQTT-3.6.1-1). */
    return put4(buf, cap, (uint8_t)(type << 4 | (type == MQTTC_PUBREL ? 2 : 0)), packet_id);
}

int mqttc_encode_empty(uint8_t *buf, size_t cap, mqttc_packet_type type)
{
    if (type != MQTTC_PINGREQ && type != MQTTC_PINGRESP && type != MQTTC_DISCONNECT) {
        return MQTTC_ERR_INVALID_ARG;
    }
    return put_header(buf, cap, (uint8_t)(type << 4), 0, 0);
}

/* ---- PUBLISH ------------------------------------------------------------- */

int mqttc_publish_header_size(uint16_t topic_len, uint8_t qos, size_t payload_len)
{
    size_t var = 2u + topic_len + (qos ? 2u : 0u);

    if (qos > 2) {
        return MQTTC_ERR_BAD_QOS;
    }
    /* Checked apart first so the sum cannot wrap a 32-bit size_t. */
    if (payload_len > MQTTC_MAX_REMAINING_LENGTH ||
        var + payload_len > MQTTC_MAX_REMAINING_LENGTH) {
        return MQTTC_ERR_TOO_LARGE;
    }
    return (int)(1 + mqttc_varint_size((uint32_t)(var + payload_len)) + var);
}

/* Encodes the PUBLISH header, and the payload too when `whole`. */
static int put_publish(uint8_t *buf, size_t cap, const mqttc_publish *p, bool whole)
{
    size_t var, rem;
    int hs;
    uint8_t *o;

    if (p == NULL || p->topic.data == NULL || (whole && !p->payload && p->payload_len)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    hs = mqttc_publish_header_size(p->topic.len, p->qos, p->payload_len);
    if (hs < 0) {
        return hs;
    }
    /* A packet id goes with QoS 1 and 2 only (MQTT-2.3.1-5); DUP needs QoS > 0. */
    if ((p->packet_id != 0) != (p->qos != 0) || (p->dup && p->qos == 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    var = 2u + p->topic.len + (p->qos ? 2u : 0u);
    rem = var + p->payload_len;
    hs = put_header(buf, cap,
                    (uint8_t)(MQTTC_PUBLISH << 4 | (p->dup ? 8 : 0) | p->qos << 1 |
                              (p->retain ? 1 : 0)),
                    rem, whole ? rem : var);
    if (hs < 0) {
        return hs;
    }
    o = put_str(buf + hs, &p->topic);
    if (p->qos) {
        o = put16(o, p->packet_id);
    }
    if (whole && p->payload_len > 0) {
        memcpy(o, p->payload, p->payload_len);
        o += p->payload_len;
    }
    return (int)(o - buf);
}

int mqttc_encode_publish_header(uint8_t *buf, size_t cap, const mqttc_publish *p)
{
    return put_publish(buf, cap, p, false);
}

int mqttc_encode_publish(uint8_t *buf, size_t cap, const mqttc_publish *p)
{
    return put_publish(buf, cap, p, true);
}

/* ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE -------------------------------------- */

/* SUBSCRIBE and UNSUBSCRIBE share a layout: a packet id, then per entry a
 * filter and, for SUBSCRIBE only, a QoS byte. `subs` (SUBSCRIBE) or
 * `filters` (UNSUBSCRIBE) is set, the other NULL. With buf == NULL this only
 * validates and returns the packet size. */
static int put_sub(uint8_t *buf, size_t cap, uint16_t packet_id,
                   const mqttc_subscription *subs, const mqttc_str *filters, size_t n)
{
    size_t rem = 2;
    int hs;
    uint8_t *p;

    if ((subs == NULL && filters == NULL) || n == 0) {
        return MQTTC_ERR_INVALID_ARG; /* MQTT-3.8.3-3, MQTT-3.10.3-2 */
    }
    for (size_t i = 0; i < n; i++) {
        const mqttc_str *f = subs ? &subs[i].filter : &filters[i];
        int rc = mqttc_topic_filter_check(f->data, f->len);
        if (rc < 0) {
            return rc;
        }
        if (subs && subs[i].qos > 2) {
            return MQTTC_ERR_BAD_QOS;
        }
        rem += 2u + f->len + (subs != NULL);
        if (rem > MQTTC_MAX_REMAINING_LENGTH) {
            return MQTTC_ERR_TOO_LARGE;
        }
    }
    if (buf == NULL) {
        return (int)(1 + mqttc_varint_size((uint32_t)rem) + rem);
    }
    if (packet_id == 0) {
        return MQTTC_ERR_INVALID_ARG;
    }
    hs = put_header(buf, cap, subs ? MQTTC_SUBSCRIBE << 4 | 2 : MQTTC_UNSUBSCRIBE << 4 | 2, rem,
                    rem);
    if (hs < 0) {
        return hs;
    }
    p = put16(buf + hs, packet_id);
    for (size_t i = 0; i < n; i++) {
        if (subs) {
            p = put_str(p, &subs[i].filter);
            *p++ = subs[i].qos;
        } else {
            p = put_str(p, &filters[i]);
        }
    }
    return (int)(p - buf);
}

int mqttc_subscribe_size(const mqttc_subscription *subs, size_t n)
{
    return put_sub(NULL, 0, 0, subs, NULL, n);
}

int mqttc_encode_subscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                           const mqttc_subscription *subs, size_t n)
{
    return buf ? put_sub(buf, cap, packet_id, subs, NULL, n) : MQTTC_ERR_INVALID_ARG;
}

int mqttc_unsubscribe_size(const mqttc_str *filters, size_t n)
{
    return put_sub(NULL, 0, 0, NULL, filters, n);
}

int mqttc_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                             const mqttc_str *filters, size_t n)
{
    return buf ? put_sub(buf, cap, packet_id, NULL, filters, n) : MQTTC_ERR_INVALID_ARG;
}

int mqttc_encode_suback(uint8_t *buf, size_t cap, uint16_t packet_id, const uint8_t *codes,
                        size_t n)
{
    int hs;

    if (codes == NULL || n == 0 || packet_id == 0) {
        return MQTTC_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n; i++) {
        if (codes[i] > 2 && codes[i] != MQTTC_SUBACK_FAILURE) {
            return MQTTC_ERR_INVALID_ARG; /* MQTT-3.9.3-2 */
        }
    }
    /* n is checked before adding so the sum cannot wrap. */
    hs = put_header(buf, cap, MQTTC_SUBACK << 4,
                    n > MQTTC_MAX_REMAINING_LENGTH ? n : n + 2, n + 2);
    if (hs < 0) {
        return hs;
    }
    memcpy(put16(buf + hs, packet_id), codes, n);
    return hs + 2 + (int)n;
}
