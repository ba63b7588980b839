/* MQTT 3.1.1 packet decoder: validates one complete packet body (MQTT-3).
 * Reads never pass `len`: every length field is checked against the bytes
 * left before it is used. */
#include <string.h>

#include "mqttc/codec.h"

/* A read cursor over a packet body; invariant: pos <= len. */
typedef struct {
    const uint8_t *b;
    size_t len;
    size_t pos;
} reader;

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Reads a big-endian u16; MALFORMED if fewer than 2 bytes are left. */
static int read16(reader *r, uint16_t *v)
{
    if (r->len - r->pos < 2) {
        return MQTTC_ERR_MALFORMED;
    }
    *v = get16(r->b + r->pos);
    r->pos += 2;
    return 0;
}

/* Reads a packet id, which must not be 0 (MQTT-2.3.1-1). */
static int read_id(reader *r, uint16_t *id)
{
    int rc = read16(r, id);
    return rc < 0 ? rc : *id == 0 ? MQTTC_ERR_MALFORMED : 0;
}

/* Reads a length-prefixed string; MALFORMED if it runs past the body. */
static int read_str(reader *r, mqttc_str *s)
{
    uint16_t n;

    if (read16(r, &n) < 0 || r->len - r->pos < n) {
        return MQTTC_ERR_MALFORMED;
    }
    s->data = (const char *)(r->b + r->pos);
    s->len = n;
    r->pos += n;
    return 0;
}

/* Reads a string and validates it with `check`; NULL for binary data. */
static int read_field(reader *r, mqttc_str *s, int (*check)(const char *, size_t))
{
    int rc = read_str(r, s);
    return rc < 0 || check == NULL ? rc : check(s->data, s->len);
}

int mqttc_decode_publish_header(uint8_t first, const uint8_t *body, size_t len,
                                uint32_t remaining, mqttc_publish *out)
{
    uint8_t qos = (first >> 1) & 3;
    size_t hs;
    int rc;

    if (body == NULL || out == NULL || first >> 4 != MQTTC_PUBLISH) {
        return MQTTC_ERR_INVALID_ARG;
    }
    rc = mqttc_fixed_header_check(first);
    if (rc < 0) {
        return rc;
    }
    if (remaining < 2) {
        return MQTTC_ERR_MALFORMED;
    }
    if (len < 2) {
        return 0;
    }
    hs = 2u + get16(body) + (qos ? 2u : 0u);
    if (remaining < hs) {
        return MQTTC_ERR_MALFORMED;
    }
    if (len < hs) {
        return 0;
    }
    rc = mqttc_topic_name_check((const char *)body + 2, hs - 2 - (qos ? 2 : 0));
    if (rc < 0) {
        return rc;
    }
    memset(out, 0, sizeof *out);
    out->topic.data = (const char *)body + 2;
    out->topic.len = get16(body);
    if (qos) {
        out->packet_id = get16(body + hs - 2);
        if (out->packet_id == 0) {
            return MQTTC_ERR_MALFORMED; /* MQTT-2.3.1-1 */
        }
    }
    out->total_len = remaining - hs;
    out->qos = qos;
    out->retain = first & 1;
    out->dup = (first >> 3) & 1;
    return (int)hs;
}

/* CONNECT (MQTT-3.1): only protocol "MQTT" level 4 is accepted. */
static int decode_connect(reader *r, mqttc_connect *c)
{
    uint8_t flags;
    int rc;

    /* Protocol name "MQTT", level 4, then flags and keepalive (MQTT-3.1.2). */
    if (r->len < 10 || memcmp(r->b, "\0\4MQTT\4", 7) != 0) {
        return MQTTC_ERR_MALFORMED;
    }
    flags = r->b[7];
    c->keepalive = get16(r->b + 8);
    r->pos = 10;
    c->will_qos = (flags >> 3) & 3;
    c->will_retain = flags & 0x20;
    c->clean_session = flags & 0x02;
    /* Reserved bit 0 (MQTT-3.1.2-3); will QoS/retain need the will flag
     * (MQTT-3.1.2-13, -15); password needs a user
     * name (MQTT-3.1.2-22). */
    if ((flags & 0x01) || (!(flags & 0x04) && (flags & 0x38)) || (flags & 0xC0) == 0x40) {
        return MQTTC_ERR_MALFORMED;
    }
    if (c->will_qos == 3) {
        return MQTTC_ERR_BAD_QOS; /* MQTT-3.1.2-14; as for PUBLISH QoS 3 */
    }
    rc = read_field(r, &c->client_id, mqttc_utf8_check);
    if (rc < 0) {
        return rc;
    }
    if (c->client_id.len == 0 && !c->clean_session) {
        return MQTTC_ERR_BAD_CLIENT_ID; /* MQTT-3.1.3-7 */
    }
    if ((flags & 0x04) && ((rc = read_field(r, &c->will_topic, mqttc_topic_name_check)) < 0 ||
                           (rc = read_field(r, &c->will_payload, NULL)) < 0)) {
        return rc;
    }
    if ((flags & 0x80) && (rc = read_field(r, &c->username, mqttc_utf8_check)) < 0) {
        return rc;
    }
    if ((flags & 0x40) && (rc = read_field(r, &c->password, NULL)) < 0) {
        return rc;
    }
    return r->pos == r->len ? 0 : MQTTC_ERR_MALFORMED;
}

/* SUBSCRIBE and UNSUBSCRIBE (MQTT-3.8, MQTT-3.10): a packet id, then at
 * least one filter, each followed by a QoS byte in SUBSCRIBE. Both union
 * members have the same type, so filling u.subscribe fills u.unsubscribe. */
static int decode_entries(reader *r, mqttc_packet *out, bool sub)
{
    mqttc_str f;
    int rc = read_id(r, &out->u.subscribe.packet_id);

    if (rc < 0) {
        return rc;
    }
    out->u.subscribe.entries = r->b + r->pos;
    out->u.subscribe.len = r->len - r->pos;
    if (r->pos == r->len) {
        return MQTTC_ERR_MALFORMED; /* MQTT-3.8.3-3, MQTT-3.10.3-2 */
    }
    while (r->pos < r->len) {
        rc = read_field(r, &f, mqttc_topic_filter_check);
        if (rc < 0) {
            return rc;
        }
        if (sub) {
            uint8_t q;
            if (r->pos == r->len || ((q = r->b[r->pos++]) & 0xFC)) {
                return MQTTC_ERR_MALFORMED; /* MQTT-3.8.3-4 */
            }
            if (q > 2) {
                return MQTTC_ERR_BAD_QOS;
            }
        }
        out->u.subscribe.count++;
    }
    return 0;
}

/* SUBACK (MQTT-3.9): a packet id and at least one return code. */
static int decode_suback(reader *r, mqttc_packet *out)
{
    int rc = read_id(r, &out->u.suback.packet_id);

    if (rc < 0 || r->pos == r->len) {
        return MQTTC_ERR_MALFORMED;
    }
    out->u.suback.codes = r->b + r->pos;
    out->u.suback.count = r->len - r->pos;
    for (; r->pos < r->len; r->pos++) {
        if (r->b[r->pos] > 2 && r->b[r->pos] != MQTTC_SUBACK_FAILURE) {
            return MQTTC_ERR_MALFORMED;
        }
    }
    return 0;
}

/* Checks every packet type shares: flags, and the exact Remaining Length of
 * the fixed-size ones. */
static int decode_begin(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out)
{
    /* Exact Remaining Length per type; 0xFF where it varies. */
    static const uint8_t fixed_len[16] = {0xFF, 0xFF, 2, 0xFF, 2, 2, 2, 2,
                                          0xFF, 0xFF, 0xFF, 2, 0, 0, 0, 0xFF};
    unsigned type = first >> 4;
    int rc;

    if (out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof *out);
    out->type = (uint8_t)type;
    out->flags = first & 0x0F;
    out->remaining_length = (uint32_t)len;
    if (body == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (len > MQTTC_MAX_REMAINING_LENGTH) {
        return MQTTC_ERR_MALFORMED;
    }
    rc = mqttc_fixed_header_check(first);
    if (rc < 0) {
        return rc;
    }
    if (fixed_len[type] != 0xFF && len != fixed_len[type]) {
        return MQTTC_ERR_MALFORMED;
    }
    return 0;
}

/* The bodies of the packets a server sends. */
static int decode_from_server(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out)
{
    reader r = {body, len, 0};
    int rc;
    switch (out->type) {
    case MQTTC_CONNACK:
        /* Reserved bits 7..1 of the flags byte (MQTT-3.2.2.1); return codes 0..5;
         * session present must be 0 when refused (MQTT-3.2.2-4). */
        out->u.connack.session_present = body[0] & 1;
        out->u.connack.return_code = body[1];
        return (body[0] & 0xFE) || body[1] > MQTTC_CONNACK_REFUSED_NOT_AUTHORIZED ||
                       (body[0] && body[1])
                   ? MQTTC_ERR_MALFORMED
                   : 0;
    case MQTTC_PUBLISH:
        rc = mqttc_decode_publish_header(first, body, len, (uint32_t)len, &out->u.publish);
        if (rc < 0) {
            return rc;
        }
        /* rc > 0: with remaining == len a short body is MALFORMED, not "need more". */
        out->u.publish.payload = body + rc;
        out->u.publish.payload_len = out->u.publish.total_len;
        return 0;
    case MQTTC_SUBACK:
        return decode_suback(&r, out);
    case MQTTC_PINGRESP:
        return 0;
    default: /* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK */
        return read_id(&r, &out->u.packet_id);
    }
}

/* Packets only a client sends. */
static bool client_only(unsigned type)
{
    return type == MQTTC_CONNECT || type == MQTTC_SUBSCRIBE || type == MQTTC_UNSUBSCRIBE ||
           type == MQTTC_PINGREQ || type == MQTTC_DISCONNECT;
}

int mqttc_decode_incoming(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out)
{
    int rc = decode_begin(first, body, len, out);
    if (rc < 0) {
        return rc;
    }
    return client_only(out->type) ? MQTTC_ERR_UNEXPECTED_PACKET
                                  : decode_from_server(first, body, len, out);
}

int mqttc_decode(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out)
{
    reader r = {body, len, 0};
    int rc = decode_begin(first, body, len, out);
    if (rc < 0) {
        return rc;
    }
    switch (out->type) {
    case MQTTC_CONNECT:
        return decode_connect(&r, &out->u.connect);
    case MQTTC_SUBSCRIBE:
    case MQTTC_UNSUBSCRIBE:
        return decode_entries(&r, out, out->type == MQTTC_SUBSCRIBE);
    case MQTTC_PINGREQ:
    case MQTTC_DISCONNECT:
        return 0;
    default:
        return decode_from_server(first, body, len, out);
    }
}

bool mqttc_entries_next(const mqttc_packet *p, size_t *pos, mqttc_str *filter, uint8_t *qos)
{
    const uint8_t *e;
    size_t left, n;
    bool sub;

    if (p == NULL || pos == NULL || filter == NULL) {
        return false;
    }
    sub = p->type == MQTTC_SUBSCRIBE;
    if (!sub && p->type != MQTTC_UNSUBSCRIBE) {
        return false;
    }
    /* Same type for both members (see decode_entries). Bounds are rechecked
     * because the packet may not come from mqttc_decode(). */
    e = p->u.subscribe.entries;
    if (e == NULL || *pos >= p->u.subscribe.len || p->u.subscribe.len - *pos < 2) {
        return false;
    }
    left = p->u.subscribe.len - *pos - 2;
    n = get16(e + *pos);
    if (left < n + sub) {
        return false;
    }
    filter->data = (const char *)e + *pos + 2;
    filter->len = (uint16_t)n;
    *pos += 2 + n;
    if (qos != NULL) {
        *qos = sub ? e[*pos] : 0;
    }
    *pos += sub;
    return true;
}
