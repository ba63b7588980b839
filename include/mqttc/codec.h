/**
 * @file codec.h
 * @brief MQTT 3.1.1 packet encoding and decoding: pure functions over
 *        caller-supplied buffers. No I/O, no allocation, no global state.
 *
 * Encoders write one whole packet (or, for PUBLISH, optionally only its
 * header) into `buf` and return the number of bytes written, or a negative
 * MQTTC_ERR_* code; they never write past `cap`.
 *
 * The decoder works on one complete packet: the first byte of the fixed
 * header and the `len` bytes that follow the Remaining Length. Decoded
 * strings and payloads point into the caller's buffer (zero copy) and are
 * valid only as long as that buffer is. For bytes arriving in arbitrary
 * pieces use the incremental decoder in decoder.h.
 *
 * Strings in packets are not NUL-terminated: they are (pointer, length)
 * pairs, mqttc_str. A NULL `data` means "absent" where the protocol has
 * optional fields (user name, password, will).
 */
#ifndef MQTTC_CODEC_H
#define MQTTC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest Remaining Length the protocol can express (MQTT-2.2.3). */
#define MQTTC_MAX_REMAINING_LENGTH 268435455u
/** Largest fixed header: one type byte and four length bytes. */
#define MQTTC_MAX_FIXED_HEADER 5u

/** Control packet types (MQTT-2.2.1). 0 and 15 are reserved. */
typedef enum mqttc_packet_type {
    MQTTC_CONNECT = 1,
    MQTTC_CONNACK = 2,
    MQTTC_PUBLISH = 3,
    MQTTC_PUBACK = 4,
    MQTTC_PUBREC = 5,
    MQTTC_PUBREL = 6,
    MQTTC_PUBCOMP = 7,
    MQTTC_SUBSCRIBE = 8,
    MQTTC_SUBACK = 9,
    MQTTC_UNSUBSCRIBE = 10,
    MQTTC_UNSUBACK = 11,
    MQTTC_PINGREQ = 12,
    MQTTC_PINGRESP = 13,
    MQTTC_DISCONNECT = 14
} mqttc_packet_type;

/** CONNACK return codes (MQTT-3.2.2.3). */
enum {
    MQTTC_CONNACK_ACCEPTED = 0,
    MQTTC_CONNACK_REFUSED_PROTOCOL = 1,
    MQTTC_CONNACK_REFUSED_IDENTIFIER = 2,
    MQTTC_CONNACK_REFUSED_UNAVAILABLE = 3,
    MQTTC_CONNACK_REFUSED_CREDENTIALS = 4,
    MQTTC_CONNACK_REFUSED_NOT_AUTHORIZED = 5
};

/** SUBACK return code for a refused filter (MQTT-3.9.3). */
#define MQTTC_SUBACK_FAILURE 0x80u

/** A length-delimited byte string; not NUL-terminated. Borrowed, never owned. */
typedef struct mqttc_str {
    const char *data; /**< NULL means absent (optional fields only). */
    uint16_t len;
} mqttc_str;

/** CONNECT (MQTT-3.1). All pointers are borrowed for the call. */
typedef struct mqttc_connect {
    mqttc_str client_id;    /**< may be empty (len 0) only with clean_session */
    mqttc_str username;     /**< data NULL: no user name */
    mqttc_str password;     /**< data NULL: no password; binary allowed */
    mqttc_str will_topic;   /**< data NULL: no will */
    mqttc_str will_payload; /**< binary, may be empty */
    uint16_t keepalive;     /**< seconds, 0 disables */
    uint8_t will_qos;
    bool will_retain;
    bool clean_session;
} mqttc_connect;

/**
 * PUBLISH (MQTT-3.3). When decoded from a stream that delivers the payload in
 * pieces (decoder.h), `payload`/`payload_len` is one piece starting at
 * `offset` of a payload of `total_len` bytes; otherwise offset is 0 and
 * payload_len == total_len.
 */
typedef struct mqttc_publish {
    mqttc_str topic;
    const uint8_t *payload;
    size_t payload_len;
    size_t offset;
    size_t total_len;
    uint16_t packet_id; /**< 0 for QoS 0 */
    uint8_t qos;
    bool retain;
    bool dup;
} mqttc_publish;

/** One entry of a SUBSCRIBE request. */
typedef struct mqttc_subscription {
    mqttc_str filter;
    uint8_t qos;
} mqttc_subscription;

/** A decoded packet. Which member is valid depends on `type`. */
typedef struct mqttc_packet {
    uint8_t type;  /**< mqttc_packet_type */
    uint8_t flags; /**< low nibble of the first byte */
    uint32_t remaining_length;
    union {
        mqttc_connect connect;
        struct {
            bool session_present;
            uint8_t return_code;
        } connack;
        mqttc_publish publish;
        /** PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK */
        uint16_t packet_id;
        struct {
            uint16_t packet_id;
            const uint8_t *codes; /**< one per filter: 0, 1, 2 or 0x80 */
            size_t count;
        } suback;
        /** SUBSCRIBE / UNSUBSCRIBE: iterate entries with mqttc_entries_next(). */
        struct {
            uint16_t packet_id;
            const uint8_t *entries; /**< the payload, already validated */
            size_t len;
            size_t count;
        } subscribe, unsubscribe;
    } u;
} mqttc_packet;

/* ---- Remaining Length ---------------------------------------------------- */

/** Number of bytes (1..4) the Remaining Length `value` takes; 0 if over the maximum. */
MQTTC_API size_t mqttc_varint_size(uint32_t value);

/**
 * @brief Encode a Remaining Length.
 * @return bytes written (1..4), MQTTC_ERR_TOO_LARGE over 268,435,455,
 *         MQTTC_ERR_BUFFER_TOO_SMALL if `cap` is short.
 */
MQTTC_API int mqttc_varint_encode(uint8_t *buf, size_t cap, uint32_t value);

/**
 * @brief Decode a Remaining Length from the start of `buf`.
 * @param[out] value the decoded length.
 * @return bytes used (1..4); 0 if `len` ends before the last byte;
 *         MQTTC_ERR_MALFORMED_LENGTH when the fourth byte still has its
 *         continuation bit set. Non-minimal encodings are accepted, as
 *         MQTT 3.1.1 does not forbid them.
 */
MQTTC_API int mqttc_varint_decode(const uint8_t *buf, size_t len, uint32_t *value);

/**
 * @brief Parse a fixed header at the start of `buf`.
 * @param[out] first the type/flags byte.
 * @param[out] remaining the Remaining Length.
 * @return header size (2..5); 0 when more bytes are needed; or
 *         MQTTC_ERR_BAD_PACKET_TYPE, MQTTC_ERR_BAD_FLAGS,
 *         MQTTC_ERR_MALFORMED_LENGTH.
 */
MQTTC_API int mqttc_fixed_header_parse(const uint8_t *buf, size_t len, uint8_t *first,
                                       uint32_t *remaining);

/** Check the fixed-header flags of a first byte (MQTT-2.2.2). 0 or a negative code. */
MQTTC_API int mqttc_fixed_header_check(uint8_t first);

/* ---- Encoding ------------------------------------------------------------ */

/** Total size of the CONNECT packet for `c`, or a negative code if `c` is invalid. */
MQTTC_API int mqttc_connect_size(const mqttc_connect *c);

/** Encode CONNECT (protocol "MQTT", level 4). Validates every field. */
MQTTC_API int mqttc_encode_connect(uint8_t *buf, size_t cap, const mqttc_connect *c);

/** Encode CONNACK. `return_code` must be 0..5 and session_present 0 when refused. */
MQTTC_API int mqttc_encode_connack(uint8_t *buf, size_t cap, bool session_present,
                                   uint8_t return_code);

/**
 * @brief Size of the PUBLISH header (fixed header, topic, packet id) for a
 *        payload of `payload_len` bytes; negative if the packet would exceed
 *        the protocol's maximum.
 */
MQTTC_API int mqttc_publish_header_size(uint16_t topic_len, uint8_t qos, size_t payload_len);

/**
 * @brief Encode the PUBLISH header only; the payload is sent separately
 *        (writev), so a large payload is never copied. Uses p->payload_len.
 *        The topic is not validated here (see mqttc_topic_name_check()).
 * @return header bytes written, or a negative code.
 */
MQTTC_API int mqttc_encode_publish_header(uint8_t *buf, size_t cap, const mqttc_publish *p);

/** Encode a whole PUBLISH (header and payload). */
MQTTC_API int mqttc_encode_publish(uint8_t *buf, size_t cap, const mqttc_publish *p);

/**
 * @brief Encode a 4-byte packet made of a packet id: PUBACK, PUBREC, PUBREL,
 *        PUBCOMP or UNSUBACK. `packet_id` must not be 0.
 */
MQTTC_API int mqttc_encode_ack(uint8_t *buf, size_t cap, mqttc_packet_type type,
                               uint16_t packet_id);

/** Encode a 2-byte packet: PINGREQ, PINGRESP or DISCONNECT. */
MQTTC_API int mqttc_encode_empty(uint8_t *buf, size_t cap, mqttc_packet_type type);

/** Size of SUBSCRIBE for `n` entries, or a negative code (bad filter, QoS, n == 0). */
MQTTC_API int mqttc_subscribe_size(const mqttc_subscription *subs, size_t n);

/** Encode SUBSCRIBE. Validates every filter and QoS. */
MQTTC_API int mqttc_encode_subscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                                     const mqttc_subscription *subs, size_t n);

/** Encode SUBACK with `n` return codes (each 0, 1, 2 or 0x80). */
MQTTC_API int mqttc_encode_suback(uint8_t *buf, size_t cap, uint16_t packet_id,
                                  const uint8_t *codes, size_t n);

/** Size of UNSUBSCRIBE for `n` filters, or a negative code. */
MQTTC_API int mqttc_unsubscribe_size(const mqttc_str *filters, size_t n);

/** Encode UNSUBSCRIBE. Validates every filter. */
MQTTC_API int mqttc_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                                       const mqttc_str *filters, size_t n);

/* ---- Decoding ------------------------------------------------------------ */

/**
 * @brief Decode one complete packet.
 * @param first the first byte of the fixed header.
 * @param body the `len` bytes after the Remaining Length.
 * @param[out] out the packet; its pointers point into `body`.
 * @return 0, or MQTTC_ERR_BAD_PACKET_TYPE, MQTTC_ERR_BAD_FLAGS,
 *         MQTTC_ERR_MALFORMED, MQTTC_ERR_BAD_UTF8, MQTTC_ERR_BAD_TOPIC,
 *         MQTTC_ERR_BAD_FILTER, MQTTC_ERR_BAD_QOS.
 */
MQTTC_API int mqttc_decode(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out);

/**
 * @brief mqttc_decode() for a client: only the packets a server sends
 *        (CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
 *        PINGRESP). A packet only clients send gives MQTTC_ERR_UNEXPECTED_PACKET
 *        after the header checks; the code that decodes them is not linked in.
 */
MQTTC_API int mqttc_decode_incoming(uint8_t first, const uint8_t *body, size_t len,
                                    mqttc_packet *out);

/**
 * @brief Decode the variable header of a PUBLISH (topic and packet id) from
 *        the first `len` bytes of its body, without the payload.
 * @return the variable header's size; 0 if `len` is too short to hold it;
 *         or a negative code.
 */
MQTTC_API int mqttc_decode_publish_header(uint8_t first, const uint8_t *body, size_t len,
                                          uint32_t remaining, mqttc_publish *out);

/**
 * @brief Iterate the entries of a decoded SUBSCRIBE or UNSUBSCRIBE.
 * @param[in,out] pos start at 0.
 * @param[out] qos the requested QoS (SUBSCRIBE); may be NULL.
 * @return true while an entry was produced.
 */
MQTTC_API bool mqttc_entries_next(const mqttc_packet *p, size_t *pos, mqttc_str *filter,
                                  uint8_t *qos);

/* ---- Strings and topics (MQTT-1.5.3, MQTT-4.7) --------------------------- */

/** 0 if `s` is well-formed UTF-8 without U+0000, surrogates or overlong forms; else MQTTC_ERR_BAD_UTF8. */
MQTTC_API int mqttc_utf8_check(const char *s, size_t len);

/** 0 if `s` is a valid topic name (non-empty, UTF-8, no wildcards, <= 65535 bytes). */
MQTTC_API int mqttc_topic_name_check(const char *s, size_t len);

/** 0 if `s` is a valid topic filter (non-empty, UTF-8, wildcards used correctly). */
MQTTC_API int mqttc_topic_filter_check(const char *s, size_t len);

/**
 * @brief Does topic name `name` match topic filter `filter`?
 * Both are assumed valid. '#' and '+' in the first level do not match names
 * beginning with '$' (MQTT-4.7.2-1).
 */
MQTTC_API bool mqttc_topic_matches(const char *filter, size_t filter_len, const char *name,
                                   size_t name_len);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_CODEC_H */
