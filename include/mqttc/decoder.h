/**
 * @file decoder.h
 * @brief Incremental packet decoder: accepts bytes in any chunking (one byte
 *        at a time, many packets at once) and yields whole packets, or, for a
 *        PUBLISH larger than the buffer, its payload in pieces.
 *
 * The decoder works in a buffer the caller supplies and keeps for the
 * decoder's lifetime; it never allocates. Bytes go in either by copy
 * (mqttc_decoder_feed()) or by reading straight into the free space
 * (mqttc_decoder_space() + mqttc_decoder_commit()), which saves a copy.
 *
 * Packets returned by mqttc_decoder_next() point into the buffer and stay
 * valid until the next call to any mqttc_decoder_* function.
 *
 * Example:
 * @code
 *   uint8_t buf[4096];
 *   mqttc_decoder d;
 *   mqttc_decoder_init(&d, buf, sizeof buf, 0, true);
 *   size_t used = mqttc_decoder_feed(&d, bytes, n);
 *   mqttc_packet p;
 *   int rc;
 *   while ((rc = mqttc_decoder_next(&d, &p)) > 0) handle(&p);
 *   if (rc < 0) close_connection(rc);
 * @endcode
 */
#ifndef MQTTC_DECODER_H
#define MQTTC_DECODER_H

#include "mqttc/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Decoder state. Treat the fields as private. */
typedef struct mqttc_decoder {
    uint8_t *buf;        /**< borrowed from the caller for the decoder's lifetime */
    size_t cap;          /**< size of buf */
    size_t start;        /**< first unread byte */
    size_t end;          /**< one past the last byte received */
    uint32_t max_packet; /**< largest whole packet accepted (header included) */
    bool stream;         /**< deliver oversized PUBLISH payloads in pieces */
    bool in_publish;     /**< streaming a PUBLISH: header decoded, payload pending */
    uint8_t first;       /**< streaming: fixed-header first byte */
    uint32_t remaining;  /**< streaming: the PUBLISH's Remaining Length */
    size_t payload_done; /**< streaming: payload bytes already delivered */
    size_t hold;         /**< streaming: bytes at the front holding the PUBLISH header */
    mqttc_publish pub;   /**< streaming: decoded variable header */
    int error;           /**< sticky: once set, every call returns it */
    /** Decodes each framed packet: mqttc_decode_incoming() after init (a
     *  client's view); set it to mqttc_decode to accept both directions (a
     *  broker, a test). */
    int (*decode)(uint8_t first, const uint8_t *body, size_t len, mqttc_packet *out);
} mqttc_decoder;

/**
 * @brief Initialise a decoder over `buf`.
 * @param max_packet largest incoming packet accepted, fixed header included;
 *        0 means the protocol maximum. Larger packets give
 *        MQTTC_ERR_PACKET_TOO_LARGE.
 * @param stream if true, a PUBLISH that does not fit in `buf` is delivered in
 *        pieces (its topic and packet id must fit); if false it is an error.
 * @return 0, or MQTTC_ERR_INVALID_ARG (NULL buf, cap < 16).
 */
MQTTC_API int mqttc_decoder_init(mqttc_decoder *d, uint8_t *buf, size_t cap,
                                 uint32_t max_packet, bool stream);

/** Forget buffered bytes and any error (after a reconnect). */
MQTTC_API void mqttc_decoder_reset(mqttc_decoder *d);

/**
 * @brief Free space to read into directly. May move unread bytes to the
 *        front, so it invalidates the last packet returned.
 * @param[out] n size of the space (0 when full: call mqttc_decoder_next()).
 */
MQTTC_API uint8_t *mqttc_decoder_space(mqttc_decoder *d, size_t *n);

/** Account `n` bytes written into the space from mqttc_decoder_space(). */
MQTTC_API void mqttc_decoder_commit(mqttc_decoder *d, size_t n);

/** Copy in as much of `data` as fits; returns the number of bytes taken. */
MQTTC_API size_t mqttc_decoder_feed(mqttc_decoder *d, const uint8_t *data, size_t len);

/**
 * @brief Produce the next packet or payload piece from buffered bytes.
 * @param[out] out a whole packet; or, for a streamed PUBLISH, a piece with
 *        out->u.publish.offset / payload_len / total_len set (the last piece
 *        ends at total_len). Every piece repeats the topic and packet id.
 * @return 1 when `out` was filled, 0 when more bytes are needed, or a negative
 *         code (malformed input; sticky until mqttc_decoder_reset()).
 */
MQTTC_API int mqttc_decoder_next(mqttc_decoder *d, mqttc_packet *out);

/** Bytes received but not yet returned as packets. */
MQTTC_API size_t mqttc_decoder_pending(const mqttc_decoder *d);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_DECODER_H */
