/* Internal: the HTTP side of the WebSocket opening handshake (RFC 6455
 * section 4): the client's upgrade request, the Sec-WebSocket-Accept value the
 * server must answer with, and the parser of the server's reply. No I/O: the
 * WebSocket transport (transport_ws.c) moves the bytes, and the parser can be
 * fuzzed on its own (tests/fuzz/fuzz_ws_http.c). */
#ifndef MQTTC_WS_HTTP_H
#define MQTTC_WS_HTTP_H

#include <stddef.h>
#include <stdint.h>

/* Largest reply header accepted, blank line included. */
#define MQTTC__WS_REPLY_MAX 8192
/* Base64 of the 16 random bytes of Sec-WebSocket-Key, and of the 20-byte
 * SHA-1 in Sec-WebSocket-Accept, each with its terminating NUL. */
#define MQTTC__WS_KEY_SIZE 25
#define MQTTC__WS_ACCEPT_SIZE 29
/* The upgrade request is at most this long for the longest host and path
 * mqttc_uri allows. */
#define MQTTC__WS_REQUEST_MAX 1024

/* Sec-WebSocket-Key for 16 random bytes: `key` gets 24 characters and a NUL. */
void mqttc__ws_make_key(const uint8_t nonce[16], char key[MQTTC__WS_KEY_SIZE]);

/* The Sec-WebSocket-Accept a server must send for `key`:
 * base64(SHA-1(key "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). 0, or
 * MQTTC_ERR_INVALID_ARG when `key` is too long to be one. */
int mqttc__ws_accept(const char *key, char accept[MQTTC__WS_ACCEPT_SIZE]);

/* Write the upgrade request for ws://host:port/path with subprotocol "mqtt"
 * into `buf` (not NUL-terminated). `host` is a name or an address, IPv6
 * literals without brackets (they are added). Returns the length, or
 * MQTTC_ERR_INVALID_ARG when host or path is empty, has characters that
 * cannot go into a request line or header (controls, spaces), or the path
 * does not begin with '/'; MQTTC_ERR_BUFFER_TOO_SMALL when it does not fit. */
long mqttc__ws_request(char *buf, size_t cap, const char *host, uint16_t port, const char *path,
                       const char *key);

/*
 * Parse the server's reply to the upgrade request. `data` holds everything
 * received so far (any number of bytes, from any number of reads); the
 * parser keeps no state, so calling it again with more bytes is how a reply
 * arriving in pieces is handled. `accept` is mqttc__ws_accept() of the key
 * that was sent.
 *
 * Returns, once the header (up to and including the blank line) is complete:
 *   0                         a valid 101 reply: *used = the header's length
 *                             (bytes after it are WebSocket frames);
 *   MQTTC_ERR_WS_REFUSED      a status other than 101 (*status = it, 100..599);
 *   MQTTC_ERR_WS_BAD_REPLY    a malformed status line or header field, a
 *                             missing or wrong Upgrade or Connection, an
 *                             extension the client did not ask for, a
 *                             repeated Accept or Protocol header;
 *   MQTTC_ERR_WS_BAD_ACCEPT   Sec-WebSocket-Accept missing or not `accept`;
 *   MQTTC_ERR_WS_NO_SUBPROTOCOL  Sec-WebSocket-Protocol missing or not "mqtt".
 * Before that: MQTTC__AGAIN (1) while no blank line was seen and
 * len < MQTTC__WS_REPLY_MAX; MQTTC_ERR_WS_BAD_REPLY when the first
 * MQTTC__WS_REPLY_MAX bytes hold no complete header.
 * *used and *status are written only when 0 or WS_REFUSED is returned.
 */
int mqttc__ws_reply_parse(const uint8_t *data, size_t len, const char *accept, size_t *used,
                          int *status);

#endif /* MQTTC_WS_HTTP_H */
