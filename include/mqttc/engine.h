/**
 * @file engine.h
 * @brief The sans-I/O MQTT 3.1.1 session engine.
 *
 * The engine owns the protocol state of one client session: the CONNECT /
 * CONNACK handshake, packet identifiers, the outbound QoS 1/2 flows with an
 * in-flight window, the inbound QoS 2 exactly-once table, re-sending after a
 * reconnect, SUBSCRIBE/UNSUBSCRIBE, keepalive and the queue of publishes
 * waiting for the window or for a connection.
 *
 * It does no I/O, reads no clock, starts no thread and never allocates:
 *  - bytes in:   mqttc_engine_rx_space() + mqttc_engine_rx_commit(), or
 *                mqttc_engine_recv();
 *  - bytes out:  mqttc_engine_output() gives iovecs to write (writev),
 *                mqttc_engine_consume() says how many were written;
 *  - time in:    every call that may act on time takes `now`, a monotonic
 *                millisecond counter that may wrap (compared wrap-safe);
 *  - time out:   mqttc_engine_next_timeout(); call mqttc_engine_tick() then;
 *  - events out: the callback in mqttc_engine_config, called synchronously
 *                from the engine call that caused the event.
 *
 * Memory: every buffer comes from the caller (mqttc_engine_config) and must
 * outlive the engine. Publish and subscribe requests are caller-owned nodes
 * (mqttc_message, mqttc_request) that the engine links into its queues
 * without copying; the caller must keep each node, and the memory its fields
 * point to, unchanged until the engine hands it back in an
 * MQTTC_EV_PUBLISH_DONE / MQTTC_EV_SUBACK / MQTTC_EV_UNSUBACK event, or
 * through mqttc_engine_abandon().
 *
 * Connections: the driver opens the transport, calls mqttc_engine_start(),
 * pumps bytes, and when the transport fails calls
 * mqttc_engine_connection_lost(). When the engine itself decides to close
 * (protocol violation, timeout, refused CONNACK, DISCONNECT written) it
 * emits MQTTC_EV_CLOSED and its state becomes MQTTC_STATE_OFFLINE; the
 * driver then closes the transport. Unacknowledged messages stay queued and
 * are re-sent in their original order after the next CONNACK (MQTT-4.4.0-1):
 * PUBLISH again with DUP=1 and the original id, or PUBREL for a QoS 2 message
 * whose PUBREC had arrived; then the unsent ones. SUBSCRIBE and UNSUBSCRIBE
 * requests still unanswered are sent again too.
 *
 * Clean sessions: the engine re-sends unfinished messages even when the new
 * session is clean (or CONNACK reports no session), because nothing handed
 * over may be lost; the broker then takes them as new messages, so a QoS 2
 * message whose first copy had already been delivered can be delivered again.
 * A driver that prefers MQTT-3.1.2-6's "discard" calls mqttc_engine_abandon()
 * before mqttc_engine_start(). A QoS 0 message cut in the middle of its write
 * is handed back with MQTTC_ERR_CONNECTION_LOST; one not yet started is kept.
 *
 * While CLOSING (after mqttc_engine_disconnect()), incoming bytes are
 * discarded: nothing may be sent after DISCONNECT, so nothing is acted on.
 *
 * Re-entrancy: the callback may call mqttc_engine_publish(),
 * mqttc_engine_request(), mqttc_engine_disconnect() and
 * mqttc_engine_connection_lost(); it must not
 * re-initialise or free the engine. The engine is not thread-safe: one
 * thread at a time (the drivers serialise access).
 */
#ifndef MQTTC_ENGINE_H
#define MQTTC_ENGINE_H

#include "mqttc/codec.h"
#include "mqttc/decoder.h"

#ifdef __cplusplus
extern "C" {
#endif

/** "No deadline" from mqttc_engine_next_timeout(). */
#define MQTTC_NO_TIMEOUT UINT32_MAX

/** Session states. */
typedef enum mqttc_state {
    MQTTC_STATE_OFFLINE = 0,    /**< no transport; publishes are queued */
    MQTTC_STATE_CONNECTING = 1, /**< CONNECT queued, waiting for CONNACK */
    MQTTC_STATE_CONNECTED = 2,  /**< CONNACK accepted */
    MQTTC_STATE_CLOSING = 3     /**< DISCONNECT queued; offline once written */
} mqttc_state;

/** What to do with a publish when the queue is full. */
typedef enum mqttc_queue_policy {
    MQTTC_QUEUE_REFUSE = 0,     /**< mqttc_engine_publish() returns MQTTC_ERR_QUEUE_FULL */
    MQTTC_QUEUE_DROP_OLDEST = 1 /**< drop the oldest unsent message (event with MQTTC_ERR_DROPPED) */
} mqttc_queue_policy;

/** Intrusive circular list link (private to the engine). */
typedef struct mqttc_link {
    struct mqttc_link *next, *prev;
} mqttc_link;

/**
 * An outgoing PUBLISH. Caller-owned: fill the public fields, pass it to
 * mqttc_engine_publish(), and keep it (and the topic and payload memory)
 * untouched until MQTTC_EV_PUBLISH_DONE returns it.
 */
typedef struct mqttc_message {
    /* public, set by the caller */
    mqttc_str topic;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t qos;
    bool retain;
    void *user; /**< for the caller; the engine never reads it */
    /* set by the engine */
    uint16_t packet_id; /**< assigned by mqttc_engine_publish(); 0 for QoS 0 */
    /* private */
    mqttc_link link_;
    uint8_t state_;
    bool dup_;
    uint64_t end_; /**< output stream offset one past this packet's last byte */
} mqttc_message;

/** Kind of an mqttc_request. */
typedef enum mqttc_request_kind {
    MQTTC_REQ_SUBSCRIBE = 1,
    MQTTC_REQ_UNSUBSCRIBE = 2
} mqttc_request_kind;

/**
 * A SUBSCRIBE or UNSUBSCRIBE request. Caller-owned like mqttc_message; the
 * arrays it points to must stay valid until the SUBACK/UNSUBACK event.
 */
typedef struct mqttc_request {
    mqttc_request_kind kind;
    const mqttc_subscription *subs; /**< SUBSCRIBE: `count` entries */
    const mqttc_str *filters;       /**< UNSUBSCRIBE: `count` entries */
    size_t count;
    void *user;
    uint16_t packet_id; /**< set by the engine */
    /* private */
    mqttc_link link_;
    uint8_t state_;
} mqttc_request;

/** Event types. */
typedef enum mqttc_event_type {
    MQTTC_EV_CONNECTED = 1,    /**< CONNACK accepted */
    MQTTC_EV_CLOSED = 2,       /**< the session went offline; see reason */
    MQTTC_EV_MESSAGE = 3,      /**< an incoming PUBLISH (or a piece of one) */
    MQTTC_EV_PUBLISH_DONE = 4, /**< a message is handed back (status says how) */
    MQTTC_EV_SUBACK = 5,       /**< a SUBSCRIBE was answered */
    MQTTC_EV_UNSUBACK = 6,     /**< an UNSUBSCRIBE was answered */
    MQTTC_EV_PONG = 7,         /**< PINGRESP received */
    /** An outbound QoS 2 message got its first PUBREC: from now on it is
     *  re-sent as PUBREL, never as PUBLISH. Emitted before the PUBREL can be
     *  written, so a store can record the step first. */
    MQTTC_EV_RELEASED = 8,
    /** PUBREL for an inbound QoS 2 message the engine had recorded: its id
     *  is forgotten (emitted before the PUBCOMP can be written). */
    MQTTC_EV_PUBREL = 9
} mqttc_event_type;

/** An event. Pointers are valid only during the callback. */
typedef struct mqttc_event {
    mqttc_event_type type;
    union {
        struct {
            bool session_present;
        } connected;
        struct {
            /** 0 after a DISCONNECT we sent; MQTTC_ERR_CONNECTION_LOST when the
             *  driver reported the transport gone; otherwise the protocol error,
             *  timeout or MQTTC_ERR_REFUSED_* code. */
            int reason;
        } closed;
        /** Points into the receive buffer (zero copy). Pieces of a large
         *  message come as consecutive events with growing offset; if the
         *  connection drops mid-message, the re-sent message starts again
         *  at offset 0. */
        mqttc_publish message;
        struct {
            mqttc_message *msg; /**< back in the caller's hands */
            /** 0: QoS 0 written to the transport, QoS 1 PUBACKed, QoS 2
             *  PUBCOMPed. MQTTC_ERR_DROPPED: removed by the drop-oldest policy.
             *  MQTTC_ERR_CONNECTION_LOST: a QoS 0 message cut mid-write. */
            int status;
        } publish_done;
        struct {
            mqttc_request *req;
            const uint8_t *codes; /**< one per filter: granted QoS or 0x80 */
            size_t count;
        } suback;
        struct {
            mqttc_request *req;
        } unsuback;
        struct {
            mqttc_message *msg; /**< still the engine's */
        } released;
        struct {
            uint16_t packet_id;
        } pubrel;
    } u;
} mqttc_event;

/** Event callback; see the re-entrancy rules above. */
typedef void (*mqttc_engine_cb)(void *user, const mqttc_event *ev);

/** Engine configuration. Zero fields take the defaults in parentheses. */
typedef struct mqttc_engine_config {
    uint8_t *rx_buf; /**< receive buffer (required, >= 64 bytes) */
    size_t rx_cap;
    uint8_t *tx_buf; /**< staging for outgoing packets (required, >= 64 bytes) */
    size_t tx_cap;
    uint16_t *inbound_ids; /**< table of inbound QoS 2 ids awaiting PUBREL (required) */
    uint16_t inbound_cap;  /**< its size (>= 1) */
    /** Optional: called once, when the table is full, for a bitmap of
     *  MQTTC_INBOUND_BITMAP_SIZE bytes (one bit per packet id) that the engine
     *  uses from then on; the caller owns it and keeps it for the engine's
     *  lifetime. MQTT 3.1.1 gives the broker no receive maximum, so without it a
     *  broker may exceed the table: the engine then closes with
     *  MQTTC_ERR_INBOUND_WINDOW_FULL. Return NULL to refuse. */
    uint8_t *(*inbound_bitmap)(void *user);
    uint32_t max_packet;   /**< largest incoming packet (protocol maximum) */
    bool stream_payloads;  /**< deliver PUBLISHes larger than rx_buf in pieces (false: error) */
    uint16_t inflight_max; /**< outbound QoS 1/2 messages in flight (20) */
    uint32_t queue_max_msgs;  /**< queued + in-flight messages (1000) */
    size_t queue_max_bytes;   /**< their topic + payload bytes (16 MiB) */
    mqttc_queue_policy queue_policy;
    uint32_t connack_timeout_ms; /**< counted from mqttc_engine_start() (10000) */
    uint32_t ping_timeout_ms;    /**< wait for PINGRESP (the keepalive interval, at most 30000) */
    size_t copy_max; /**< payloads up to this are copied into tx_buf; larger
                          ones are written from the message itself (512) */
    mqttc_engine_cb on_event; /**< required */
    /** Optional: called by mqttc_engine_publish() for a valid QoS 1/2 message
     *  once it has its packet id, before it is queued (so before any byte of it
     *  can be written). A negative return refuses the publish with that code:
     *  a persistent store records the message here. */
    int (*on_accept)(void *user, mqttc_message *m);
    void *user;
} mqttc_engine_config;

/** One piece of output, as struct iovec. */
typedef struct mqttc_iov {
    const void *base;
    size_t len;
} mqttc_iov;

/** Size of the inbound QoS 2 bitmap: one bit per packet id. */
#define MQTTC_INBOUND_BITMAP_SIZE 8192u

/** Output segments kept at once. */
#define MQTTC_ENGINE_SEGMENTS 16

/** The engine. Allocate it anywhere; treat every field as private. */
typedef struct mqttc_engine {
    mqttc_engine_config cfg;
    mqttc_decoder dec;
    mqttc_connect conn; /**< borrowed from mqttc_engine_start() for the session */
    mqttc_state state;
    int close_reason;
    /* Outbound messages in publish order: those sent in this or an earlier
     * connection first, then the unsent ones. pub_next is the first one not
     * yet written in this connection (&pubs when none); pub_writing the
     * first one whose bytes are queued but not all written (NULL when none). */
    mqttc_link pubs;
    mqttc_link *pub_next;
    mqttc_message *pub_writing;
    uint32_t pub_count;
    size_t pub_bytes;
    uint16_t inflight;
    mqttc_link reqs; /**< SUBSCRIBE/UNSUBSCRIBE requests, oldest first */
    mqttc_link *req_next;
    uint16_t last_id;
    bool ids_wrapped;
    uint16_t inbound_count;
    uint8_t *inbound_bits; /**< from cfg.inbound_bitmap once the table overflowed */
    /* Output: segments over tx_buf (staging) and large message payloads. */
    mqttc_iov seg[MQTTC_ENGINE_SEGMENTS];
    uint8_t seg_count;
    bool tail_staging;       /**< the last segment ends at tx_buf + tx_used */
    size_t seg_off;          /**< bytes of seg[0] already written */
    size_t tx_used;          /**< bytes of tx_buf in use; reset when all is written */
    uint64_t stream_queued;  /**< bytes queued for output in this connection */
    uint64_t stream_written; /**< bytes written in this connection */
    uint64_t disconnect_end; /**< stream offset after DISCONNECT; 0 if none */
    bool disconnect_pending; /**< DISCONNECT waits for room in tx_buf */
    /* time */
    uint32_t now;
    uint32_t last_tx, last_rx, ping_sent, connect_sent;
    uint32_t ping_timeout;
    bool ping_outstanding;
    /* receive */
    bool rx_blocked;  /**< stopped: no room to queue the answer */
    bool msg_dup;     /**< current streamed QoS 2 message is a duplicate */
    int depth;        /**< callback nesting, for deferred close */
    int pending_lost; /**< connection_lost requested from a callback */
} mqttc_engine;

/**
 * @brief Initialise an engine. Takes no ownership; `cfg` is copied.
 * @return 0 or MQTTC_ERR_INVALID_ARG (NULL buffers or callback, rx_cap or
 *         tx_cap under 64, inbound_cap 0, unknown queue policy).
 */
MQTTC_API int mqttc_engine_init(mqttc_engine *e, const mqttc_engine_config *cfg);

/**
 * @brief The transport is up: queue CONNECT and wait for CONNACK.
 * @param c connect options; the strings must stay valid while the engine
 *        may reconnect (the drivers keep them in their config).
 * @return 0, MQTTC_ERR_BAD_STATE unless offline, a validation error for `c`,
 *         MQTTC_ERR_BUFFER_TOO_SMALL if CONNECT does not fit tx_buf.
 */
MQTTC_API int mqttc_engine_start(mqttc_engine *e, const mqttc_connect *c, uint32_t now);

/**
 * @brief Queue a PUBLISH. Validates the topic and QoS, assigns the packet id
 *        (1..65535, unique among unfinished requests) and queues the message;
 *        bytes appear in mqttc_engine_output() when connected and the window
 *        allows. Works offline too: the message is sent after the next CONNACK.
 * @return the packet id (0 for QoS 0), or MQTTC_ERR_INVALID_ARG,
 *         MQTTC_ERR_BAD_TOPIC, MQTTC_ERR_BAD_UTF8, MQTTC_ERR_BAD_QOS,
 *         MQTTC_ERR_TOO_LARGE, MQTTC_ERR_QUEUE_FULL.
 */
MQTTC_API int mqttc_engine_publish(mqttc_engine *e, mqttc_message *m);

/**
 * @brief Put back an unfinished QoS 1/2 message loaded from a persistent
 *        store, with the packet id it had: it is re-sent after the next CONNACK
 *        like any message of a lost connection (PUBLISH with DUP=1, or PUBREL
 *        when `released`, i.e. its PUBREC had arrived). Call while OFFLINE,
 *        oldest first, before new publishes. A released message counts as in
 *        flight at once; the others are queued and go out within the in-flight
 *        window (brokers silently drop what exceeds their receive quota).
 *        Queue limits are not applied (the messages were accepted once
 *        already). Ownership as for mqttc_engine_publish().
 * @return 0, MQTTC_ERR_INVALID_ARG (QoS 0, id 0 or already queued, released
 *         without QoS 2), MQTTC_ERR_BAD_STATE unless offline.
 */
MQTTC_API int mqttc_engine_restore(mqttc_engine *e, mqttc_message *m, uint16_t packet_id,
                                   bool released);

/**
 * @brief Put back an inbound QoS 2 id awaiting PUBREL, loaded from a store,
 *        so that the broker's re-sent copy is acknowledged, not delivered again.
 * @return 0, MQTTC_ERR_INVALID_ARG (id 0), MQTTC_ERR_INBOUND_WINDOW_FULL.
 */
MQTTC_API int mqttc_engine_restore_inbound(mqttc_engine *e, uint16_t packet_id);

/**
 * @brief Queue a SUBSCRIBE or UNSUBSCRIBE (per r->kind). Validates every
 *        filter; the whole packet must fit tx_buf.
 * @return the packet id, or MQTTC_ERR_INVALID_ARG, MQTTC_ERR_BAD_FILTER,
 *         MQTTC_ERR_BAD_UTF8, MQTTC_ERR_BAD_QOS, MQTTC_ERR_TOO_LARGE.
 */
MQTTC_API int mqttc_engine_request(mqttc_engine *e, mqttc_request *r);

/**
 * @brief Send DISCONNECT; the state becomes CLOSING and then OFFLINE (with
 *        MQTTC_EV_CLOSED, reason 0) once it has been written. Queued messages
 *        are kept. Offline already: no effect.
 */
MQTTC_API void mqttc_engine_disconnect(mqttc_engine *e);

/**
 * @brief The transport failed or was closed. Goes OFFLINE (MQTTC_EV_CLOSED
 *        with `reason` unless already offline), drops unwritten output and
 *        keeps every unfinished message for re-sending.
 */
MQTTC_API void mqttc_engine_connection_lost(mqttc_engine *e, int reason);

/**
 * @brief Space to read transport bytes into directly.
 * @param[out] n its size; 0 means stop reading until output drains.
 */
MQTTC_API uint8_t *mqttc_engine_rx_space(mqttc_engine *e, size_t *n);

/**
 * @brief `n` bytes were read into the space; decode and act on them.
 * @return 0, or the negative reason the engine closed the connection.
 */
MQTTC_API int mqttc_engine_rx_commit(mqttc_engine *e, size_t n, uint32_t now);

/**
 * @brief Copying variant of rx_space + rx_commit.
 * @return bytes taken (fewer than `len` when the engine must first write
 *         output: offer the rest again after mqttc_engine_consume()), or the
 *         negative reason the engine closed the connection.
 */
MQTTC_API int mqttc_engine_recv(mqttc_engine *e, const uint8_t *data, size_t len,
                                uint32_t now);

/**
 * @brief Bytes waiting to be written, as up to `max` iovecs, in order.
 * @return the number of iovecs filled (0: nothing to write).
 */
MQTTC_API size_t mqttc_engine_output(mqttc_engine *e, mqttc_iov *iov, size_t max);

/** True when mqttc_engine_output() has bytes to write. */
MQTTC_API bool mqttc_engine_want_write(const mqttc_engine *e);

/**
 * @brief `n` bytes from the front of the output were written; call it right
 *        after each write, before feeding more input. Completes
 *        QoS 0 messages, may queue more output and resume decoding.
 * @return 0, or the negative reason the engine closed the connection.
 */
MQTTC_API int mqttc_engine_consume(mqttc_engine *e, size_t n, uint32_t now);

/**
 * @brief Act on time: CONNACK timeout, PINGREQ, PINGRESP timeout.
 * @return 0, or the negative reason the engine closed the connection.
 */
MQTTC_API int mqttc_engine_tick(mqttc_engine *e, uint32_t now);

/** Milliseconds from `now` until mqttc_engine_tick() is due; MQTTC_NO_TIMEOUT if never. */
MQTTC_API uint32_t mqttc_engine_next_timeout(const mqttc_engine *e, uint32_t now);

/**
 * @brief Move the engine to other buffers (same rules as in the config):
 *        bytes received but not yet decoded and output staged but not yet
 *        written move with it. A driver keeps an idle connection on small
 *        buffers and gives it large ones when traffic comes back. Not from a
 *        callback. The old buffers are free once this returns.
 * @return 0, MQTTC_ERR_INVALID_ARG (NULL, under 64 bytes), MQTTC_ERR_BAD_STATE
 *         (inside a callback, or the held bytes do not fit the new buffers).
 *         Messages queued for the old tx size may stall in a smaller one:
 *         shrink only when mqttc_engine_idle().
 */
MQTTC_API int mqttc_engine_resize(mqttc_engine *e, uint8_t *rx, size_t rx_cap, uint8_t *tx,
                                  size_t tx_cap);

/** True when nothing is queued, staged, half-received or waiting for an answer. */
MQTTC_API bool mqttc_engine_idle(const mqttc_engine *e);

/** Current state. */
MQTTC_API mqttc_state mqttc_engine_state(const mqttc_engine *e);

/** Messages queued or in flight, and in flight alone. */
MQTTC_API uint32_t mqttc_engine_queued(const mqttc_engine *e);
MQTTC_API uint16_t mqttc_engine_inflight(const mqttc_engine *e);

/**
 * @brief Give back every queued message and pending request, oldest first,
 *        without events (before freeing them on shutdown, or for a clean
 *        session that discards them). Only while OFFLINE.
 * @return MQTTC_ERR_BAD_STATE unless offline, else 0.
 */
MQTTC_API int mqttc_engine_abandon(mqttc_engine *e,
                                   void (*on_msg)(void *user, mqttc_message *m),
                                   void (*on_req)(void *user, mqttc_request *r), void *user);

/**
 * @brief Forget the inbound QoS 2 state (ids awaiting PUBREL): for a new
 *        clean session. Done automatically on CONNACK without session present.
 */
MQTTC_API void mqttc_engine_clear_inbound(mqttc_engine *e);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_ENGINE_H */
