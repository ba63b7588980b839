/**
 * @file fake_broker.h
 * @brief A scripted MQTT broker for engine tests.
 *
 * It wraps one mqttc_engine with static buffers and plays the network and
 * the broker around it:
 *  - a fake clock (`now`, uint32 milliseconds) that tests move by hand, in
 *    big jumps and across the 2^32 wrap;
 *  - an event recorder: every engine event is copied (topic, payload, codes)
 *    into `events`, so tests can inspect them after the callback returned;
 *  - the wire towards the broker: fb_drain_output() writes what the engine
 *    wants to send (whole, one byte at a time, or only part of it) into a
 *    capture buffer, and fb_next_sent_packet() decodes the capture back into
 *    mqttc_packet values with mqttc_decoder;
 *  - the wire towards the client: fb_send_*() build broker packets with the
 *    codec encoders and feed them to mqttc_engine_recv() (or rx_space +
 *    rx_commit), whole or one byte at a time.
 *
 * Usage: fb_setup() fills `cfg` with defaults (rx 512 B, tx 1024 B, inbound
 * table of 8) over the broker's own storage; a test changes `cfg` and
 * `connect` as it needs, then calls fb_init().
 *
 * Helpers whose name starts with fb_expect_ check with cmocka assertions and
 * fail the running test.
 */
#ifndef MQTTC_TESTS_FAKE_BROKER_H
#define MQTTC_TESTS_FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttc/engine.h"
#include "testutil.h"

#define FB_RX_DEFAULT 512u
#define FB_TX_DEFAULT 1024u
#define FB_INBOUND_DEFAULT 8u

/* Storage behind cfg; a test may lower rx_cap/tx_cap/inbound_cap, not raise
 * them past these. */
#define FB_RX_STORAGE 4096u
#define FB_TX_STORAGE 4096u
#define FB_INBOUND_STORAGE 64u

#define FB_MAX_EVENTS 2048u
#define FB_TOPIC_MAX 128u
#define FB_PAYLOAD_MAX 256u
#define FB_MAX_CODES 16u
#define FB_CAPTURE_CAP 65536u
#define FB_DECODER_CAP 16384u
#define FB_ASSEMBLY_CAP 8192u
#define FB_SCRATCH_CAP 16384u

/** fb_inject(): the engine stopped taking bytes and had nothing to write. */
#define FB_ERR_STALLED (-1000)
/** fb_inject(): the engine went offline without returning a negative code
 *  (a callback called mqttc_engine_connection_lost()). */
#define FB_ERR_OFFLINE (-1001)

/** A copy of one mqttc_event. */
typedef struct fb_event {
    mqttc_event_type type;
    /* MQTTC_EV_CONNECTED */
    bool session_present;
    /* MQTTC_EV_CLOSED */
    int reason;
    /* MQTTC_EV_MESSAGE */
    char topic[FB_TOPIC_MAX];
    size_t topic_len;
    uint8_t payload[FB_PAYLOAD_MAX]; /**< first FB_PAYLOAD_MAX bytes of the piece */
    size_t payload_len;
    size_t offset;
    size_t total_len;
    uint8_t qos;
    bool retain;
    bool dup;
    bool payload_in_rx_buf; /**< the piece pointed into cfg.rx_buf (zero copy) */
    uint16_t packet_id;     /**< MESSAGE, and the request/message id otherwise */
    /* MQTTC_EV_PUBLISH_DONE */
    mqttc_message *msg;
    int status;
    /* MQTTC_EV_SUBACK / MQTTC_EV_UNSUBACK */
    mqttc_request *req;
    uint8_t codes[FB_MAX_CODES];
    size_t count;
} fb_event;

/** How fb_inject() hands bytes to the engine. */
typedef enum fb_rx_mode {
    FB_RX_COPY = 0,              /**< mqttc_engine_recv() with everything at once */
    FB_RX_ONE_BYTE_AT_A_TIME = 1, /**< mqttc_engine_recv() one byte per call */
    FB_RX_ZERO_COPY = 2          /**< mqttc_engine_rx_space() + mqttc_engine_rx_commit() */
} fb_rx_mode;

typedef struct fake_broker fake_broker;

/** Called from the engine's callback after the event was recorded. */
typedef void (*fb_hook)(fake_broker *fb, const mqttc_event *ev);

struct fake_broker {
    mqttc_engine engine;
    mqttc_engine_config cfg; /**< filled by fb_setup(); edit before fb_init() */
    mqttc_connect connect;   /**< used by fb_start(); client id "test-client" */
    uint32_t now;            /**< the fake clock, passed to every engine call */

    fb_rx_mode rx_mode;
    bool tx_one_byte_at_a_time; /**< fb_drain_output() writes one byte per consume */
    size_t iov_max;             /**< iovecs asked per mqttc_engine_output(); 0: all 16 */

    fb_hook hook;
    void *hook_ctx;

    fb_event events[FB_MAX_EVENTS];
    size_t event_count;
    size_t events_lost; /**< events past FB_MAX_EVENTS (a test bug) */

    /* MESSAGE pieces written at their offset, to check streamed payloads */
    uint8_t assembled[FB_ASSEMBLY_CAP];
    size_t assembled_end; /**< highest offset + length seen */

    /* bytes the client wrote in this connection, not yet decoded */
    uint8_t capture[FB_CAPTURE_CAP];
    size_t capture_len;
    size_t capture_read;
    size_t written_total; /**< bytes written in this connection */
    mqttc_decoder dec;
    uint8_t dec_buf[FB_DECODER_CAP];
    mqttc_packet pkt; /**< the last packet from fb_expect_sent() */

    /* where fb_send_*() encode broker packets (so not from a hook) */
    uint8_t scratch[FB_SCRATCH_CAP];

    uint8_t rx_storage[FB_RX_STORAGE];
    uint8_t tx_storage[FB_TX_STORAGE];
    uint16_t inbound_storage[FB_INBOUND_STORAGE];
};

/* assert_code(): see testutil.h. */

/* ---- set-up ----------------------------------------------------------- */

/** Defaults: zeroes everything, cfg over the storage, recorder as callback. */
void fb_setup(fake_broker *fb);
/** mqttc_engine_init(&fb->engine, &fb->cfg). */
int fb_init(fake_broker *fb);
/** New transport: forget the capture, then mqttc_engine_start(). */
int fb_start(fake_broker *fb);
/** fb_start(), expect CONNECT, answer CONNACK 0, expect CONNECTED. */
void fb_connect(fake_broker *fb, bool session_present);
/** The transport breaks: mqttc_engine_connection_lost(CONNECTION_LOST). */
void fb_lose_connection(fake_broker *fb);

/* ---- clock ------------------------------------------------------------ */

void fb_advance_clock(fake_broker *fb, uint32_t ms);
/** mqttc_engine_tick() at the current time. */
int fb_tick(fake_broker *fb);
/** mqttc_engine_next_timeout() at the current time. */
uint32_t fb_next_timeout(const fake_broker *fb);

/* ---- client -> broker ------------------------------------------------- */

/** Bytes mqttc_engine_output() offers right now (one call, up to 16 iovecs). */
size_t fb_pending_output(fake_broker *fb);
/** Write everything the engine wants to send (one byte per consume if
 *  tx_one_byte_at_a_time). @return 0 or the negative code from consume. */
int fb_drain_output(fake_broker *fb);
/** Same, but one byte per mqttc_engine_consume() call. */
int fb_drain_output_one_byte_at_a_time(fake_broker *fb);
/** A partial write: at most `max` bytes, in one consume. */
int fb_drain_output_bytes(fake_broker *fb, size_t max);
/** Forget the capture (a new transport). */
void fb_reset_capture(fake_broker *fb);
/**
 * Drain the output, then decode the next packet the client sent.
 * @return true with `out` filled (pointers valid until the next call), false
 *         when no whole packet is left. Fails the test on undecodable bytes.
 */
bool fb_next_sent_packet(fake_broker *fb, mqttc_packet *out);
/** Next sent packet must be of `type`; returns &fb->pkt. */
const mqttc_packet *fb_expect_sent(fake_broker *fb, uint8_t type);
/** Next sent packet must be the 4-byte ack `type` for `packet_id`. */
void fb_expect_sent_ack(fake_broker *fb, uint8_t type, uint16_t packet_id);
/** For fb_expect_sent_publish(): either value of the DUP flag will do. */
#define FB_ANY_DUP (-1)
/** Next sent packet must be a PUBLISH for `m` with this id and DUP flag
 *  (0, 1 or FB_ANY_DUP). */
const mqttc_publish *fb_expect_sent_publish(fake_broker *fb, const mqttc_message *m,
                                            uint16_t packet_id, int dup);
/** The client sent nothing more (after draining). */
void fb_expect_nothing_sent(fake_broker *fb);

/* ---- broker -> client ------------------------------------------------- */

/**
 * Feed `len` bytes per rx_mode. When the engine takes fewer bytes than
 * offered, drains its output and offers the rest again, like a driver.
 * @return 0 when all were taken; the engine's negative code; FB_ERR_OFFLINE;
 *         FB_ERR_STALLED.
 */
int fb_inject(fake_broker *fb, const uint8_t *data, size_t len);
/** fb_inject() with FB_RX_ONE_BYTE_AT_A_TIME whatever rx_mode says. */
int fb_inject_one_byte_at_a_time(fake_broker *fb, const uint8_t *data, size_t len);

int fb_send_connack(fake_broker *fb, bool session_present, uint8_t return_code);
int fb_send_ack(fake_broker *fb, mqttc_packet_type type, uint16_t packet_id);
int fb_send_puback(fake_broker *fb, uint16_t packet_id);
int fb_send_pubrec(fake_broker *fb, uint16_t packet_id);
int fb_send_pubrel(fake_broker *fb, uint16_t packet_id);
int fb_send_pubcomp(fake_broker *fb, uint16_t packet_id);
int fb_send_unsuback(fake_broker *fb, uint16_t packet_id);
int fb_send_suback(fake_broker *fb, uint16_t packet_id, const uint8_t *codes, size_t n);
int fb_send_pingresp(fake_broker *fb);
/** A PUBLISH from the broker; `topic` is a C string. */
int fb_send_publish(fake_broker *fb, const char *topic, const void *payload, size_t len,
                    uint8_t qos, uint16_t packet_id, bool retain, bool dup);
/** Encode a PUBLISH into `buf` (for tests that concatenate packets). */
size_t fb_encode_publish(uint8_t *buf, size_t cap, const char *topic, const void *payload,
                         size_t len, uint8_t qos, uint16_t packet_id, bool retain, bool dup);

/* ---- events ----------------------------------------------------------- */

size_t fb_count_events(const fake_broker *fb, mqttc_event_type type);
/** The `nth` (from 0) recorded event of `type`, or NULL. */
const fb_event *fb_find_event(const fake_broker *fb, mqttc_event_type type, size_t nth);
/** The `nth` event of `type` must exist; returns it. */
const fb_event *fb_expect_event(const fake_broker *fb, mqttc_event_type type, size_t nth);
const fb_event *fb_last_event(const fake_broker *fb);
void fb_clear_events(fake_broker *fb);

/** Build an outgoing message over a C-string topic. */
void fb_message_init(mqttc_message *m, const char *topic, const void *payload, size_t len,
                     uint8_t qos);

/* ---- the network face: a scripted broker on a loopback socket ---------- */

/*
 * For client tests (tests/unit/test_client_hostile.c): the test thread plays
 * the broker, step by step, on a real TCP connection that the client under
 * test opens to 127.0.0.1:port (a free port picked by the kernel). The
 * broker decodes what the client sends with mqttc_decoder and writes
 * whatever bytes the script gives it, well-formed or not. Independent of the
 * engine-facing part above; every wait is bounded by a timeout.
 */

/** Bytes a scripted broker accepts from the client in one packet. */
#define FB_NET_DECODER_CAP 16384u

typedef struct fb_net {
    int listen_fd; /**< -1 when not listening */
    int fd;        /**< the accepted connection, -1 when none */
    uint16_t port; /**< the listening port on 127.0.0.1 */
    size_t accepted; /**< connections accepted so far */
    mqttc_decoder dec;
    uint8_t dec_buf[FB_NET_DECODER_CAP];
    mqttc_packet pkt; /**< the last packet from fb_net_expect() */
} fb_net;

/** Listen on 127.0.0.1 at a free port. @return 0 or -1 (errno set). */
int fb_net_listen(fb_net *n);
/** Close the connection and the listening socket. Idempotent. */
void fb_net_shutdown(fb_net *n);
/** Accept the next connection (closing the current one first), at most
 *  `timeout_ms`. @return true when a client connected. */
bool fb_net_accept(fb_net *n, int timeout_ms);
/** Close the current connection (the broker hangs up). */
void fb_net_close(fb_net *n);
/**
 * Read the next whole packet the client sent, at most `timeout_ms`.
 * @return 1 with `out` filled (pointers valid until the next call), 0 on
 *         timeout, -1 when the client closed the connection (or it failed),
 *         -2 when the client sent undecodable bytes.
 */
int fb_net_recv(fb_net *n, mqttc_packet *out, int timeout_ms);
/** Next packet must be of `type` (cmocka failure otherwise); returns &n->pkt. */
const mqttc_packet *fb_net_expect(fb_net *n, uint8_t type, int timeout_ms);
/** Write all `len` bytes (MSG_NOSIGNAL). @return true if they were written. */
bool fb_net_send(fb_net *n, const void *data, size_t len);
/** fb_net_send() of a hex vector such as "20 02 00 00" (tu_unhex). */
bool fb_net_send_hex(fb_net *n, const char *hex);
/** fb_net_send() one byte at a time, `gap_ms` apart. */
bool fb_net_trickle(fb_net *n, const void *data, size_t len, int gap_ms);
/**
 * Wait until the client closes the connection, discarding what it sends,
 * at most `timeout_ms`. @return true if it closed (EOF or reset).
 */
bool fb_net_wait_closed(fb_net *n, int timeout_ms);

#endif /* MQTTC_TESTS_FAKE_BROKER_H */
