/**
 * @file error.h
 * @brief Error codes shared by every layer of mqttc.
 *
 * Every function that can fail returns 0 (or a non-negative count) on success
 * and one of the negative MQTTC_ERR_* codes below on failure. The codes and
 * their messages come from one list, so mqttc_strerror() cannot drift.
 *
 * Codes from MQTTC_ERR_MALFORMED_LENGTH to MQTTC_ERR_KEEPALIVE_TIMEOUT are
 * raised by what the peer sent or failed to send; the engine closes the
 * connection with them as the reason (see mqttc_engine_recv()).
 */
#ifndef MQTTC_ERROR_H
#define MQTTC_ERROR_H

#include "mqttc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message) */
#define MQTTC_ERROR_LIST(X)                                                          \
    X(OK, 0, "success")                                                              \
    X(INVALID_ARG, -1, "invalid argument")                                           \
    X(NO_MEMORY, -2, "out of memory")                                                \
    X(BUFFER_TOO_SMALL, -3, "buffer too small for the packet")                       \
    X(STRING_TOO_LONG, -4, "string longer than 65,535 bytes")                        \
    X(BAD_UTF8, -5, "invalid UTF-8 string (MQTT-1.5.3)")                             \
    X(BAD_TOPIC, -6, "invalid topic name (empty, or contains '+' or '#')")           \
    X(BAD_FILTER, -7, "invalid topic filter ('#' must be last, wildcards alone)")    \
    X(BAD_QOS, -8, "QoS must be 0, 1 or 2")                                          \
    X(BAD_CLIENT_ID, -9, "an empty client id requires clean session")                \
    X(TOO_LARGE, -10, "packet larger than the protocol or the buffers allow")        \
    X(NOT_CONNECTED, -11, "not connected")                                           \
    X(QUEUE_FULL, -12, "outgoing queue full")                                        \
    X(BAD_STATE, -13, "operation not allowed in the current state")                  \
    X(BAD_WILL, -14, "will given without a topic, or will fields without a will")   \
    X(BAD_URI, -15, "invalid URI (expected scheme://host[:port][/path])")          \
    X(UNSUPPORTED, -16, "not supported by this build")                              \
    X(MALFORMED_LENGTH, -20, "malformed Remaining Length")                           \
    X(PACKET_TOO_LARGE, -21, "incoming packet exceeds the maximum size")             \
    X(BAD_PACKET_TYPE, -22, "reserved control packet type (0 or 15)")                \
    X(BAD_FLAGS, -23, "invalid fixed-header flags")                                  \
    X(MALFORMED, -24, "malformed packet")                                            \
    X(UNEXPECTED_PACKET, -25, "packet not allowed at this point of the session")     \
    X(UNKNOWN_PACKET_ID, -26, "acknowledgement for a packet id not in flight")       \
    X(SUBACK_MISMATCH, -27, "SUBACK return codes do not match the request")          \
    X(INBOUND_WINDOW_FULL, -28, "broker exceeded the inbound QoS 2 window")          \
    X(CONNACK_TIMEOUT, -29, "no CONNACK within the timeout")                         \
    X(KEEPALIVE_TIMEOUT, -30, "no PINGRESP within the timeout")                      \
    X(REFUSED_PROTOCOL, -31, "connection refused: unacceptable protocol version")    \
    X(REFUSED_IDENTIFIER, -32, "connection refused: identifier rejected")            \
    X(REFUSED_UNAVAILABLE, -33, "connection refused: server unavailable")            \
    X(REFUSED_CREDENTIALS, -34, "connection refused: bad user name or password")     \
    X(REFUSED_NOT_AUTHORIZED, -35, "connection refused: not authorized")             \
    X(CONNECTION_LOST, -36, "connection lost")                                       \
    X(DROPPED, -37, "message dropped: the queue was full (drop-oldest policy)")      \
    X(ABORTED, -38, "request abandoned before completion")                           \
    X(RESOLVE, -40, "host name could not be resolved")                               \
    X(CONNECT_REFUSED, -41, "connection refused by the host (nothing listening)")    \
    X(CONNECT_TIMEOUT, -42, "connection attempt timed out")                          \
    X(UNREACHABLE, -43, "network or host unreachable")                               \
    X(CLOSED_BY_PEER, -44, "connection closed by the broker")                        \
    X(TRANSPORT, -45, "network I/O error")                                           \
    X(THREAD, -46, "could not start the client thread")                              \
    X(STORE, -47, "persistent store: I/O failed (errno in the log)")                 \
    X(STORE_LOCKED, -48, "persistent store: in use by another client or process")    \
    X(TLS_BAD_CA, -50, "TLS: the CA certificate could not be loaded")                \
    X(TLS_BAD_CERT, -51, "TLS: the client certificate could not be loaded")          \
    X(TLS_BAD_KEY, -52, "TLS: the private key could not be loaded")                  \
    X(TLS_KEY_PASSWORD, -53, "TLS: wrong or missing password for the private key")   \
    X(TLS_KEY_MISMATCH, -54, "TLS: the private key does not match the certificate")  \
    X(TLS_UNKNOWN_CA, -55, "TLS: server certificate not signed by a trusted CA")     \
    X(TLS_HOSTNAME, -56, "TLS: server certificate does not match the host name")     \
    X(TLS_EXPIRED, -57, "TLS: server certificate expired or not yet valid")          \
    X(TLS_CERT_REQUIRED, -58, "TLS: the server requires a client certificate")       \
    X(TLS_NOT_TLS, -59, "TLS: the server did not answer in TLS (a plain port?)")     \
    X(TLS_HANDSHAKE, -60, "TLS: handshake failed (see the detail code)")            \
    X(WS_REFUSED, -70, "WebSocket: upgrade refused (HTTP status in the detail)")     \
    X(WS_BAD_ACCEPT, -71, "WebSocket: wrong Sec-WebSocket-Accept in the reply")      \
    X(WS_BAD_REPLY, -72, "WebSocket: malformed HTTP upgrade reply")                  \
    X(WS_NO_SUBPROTOCOL, -73, "WebSocket: the server did not accept subprotocol 'mqtt'") \
    X(WS_PROTOCOL, -74, "WebSocket: invalid frame from the server")                  \
    X(WS_CLOSED, -75, "WebSocket: the server sent a close frame")

/** Error codes. All failures are negative; 0 is success. */
typedef enum mqttc_error {
#define MQTTC__ERR_ENUM(name, value, msg) MQTTC_ERR_##name = (value),
    MQTTC_ERROR_LIST(MQTTC__ERR_ENUM)
#undef MQTTC__ERR_ENUM
} mqttc_error;

/**
 * @brief Describe an error code.
 * @param err any value; non-negative values read as success.
 * @return a static, NUL-terminated English message (never NULL; unknown codes
 *         give "unknown error"). The caller must not free it.
 */
MQTTC_API const char *mqttc_strerror(int err);

/**
 * @brief The symbolic name of an error code, e.g. "MQTTC_ERR_BAD_QOS".
 * @return a static string, or "MQTTC_ERR_UNKNOWN".
 */
MQTTC_API const char *mqttc_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_ERROR_H */
