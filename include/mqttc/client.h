/**
 * @file client.h
 * @brief The mqttc client: a connection to one broker (or a failover list),
 *        driven by its own background thread or by the caller's loop.
 *
 * Example (background thread):
 * @code
 *   static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user) {
 *       if (ev->type == MQTTC_CLIENT_EV_CONNECTED) mqttc_client_subscribe(c, "sensors/#", 1);
 *       if (ev->type == MQTTC_CLIENT_EV_MESSAGE)
 *           printf("%.*s: %.*s\n", (int)ev->u.message.topic_len, ev->u.message.topic,
 *                  (int)ev->u.message.payload_len, (const char *)ev->u.message.payload);
 *   }
 *   mqttc_client_config cfg;
 *   mqttc_client_config_init(&cfg);
 *   cfg.uri = "mqtt://127.0.0.1:1883";
 *   cfg.on_event = on_event;
 *   mqttc_client *c;
 *   if (mqttc_client_create(&cfg, &c) == 0 && mqttc_client_connect(c) == 0) {
 *       mqttc_client_publish(c, "greetings", "hello", 5, 1, false);
 *       ...
 *       mqttc_client_destroy(c);
 *   }
 * @endcode
 *
 * Threads (MQTTC_RUN_THREAD, the default): mqttc_client_connect() starts one
 * thread per client that does all network I/O and calls the event callback.
 * Every function here may be called from any thread, including from inside
 * the callback; the library never holds a lock while it calls the callback,
 * so calling back into the client cannot deadlock. mqttc_client_destroy()
 * may be called from the callback too: the client is freed when the callback
 * returns.
 *
 * Caller-driven (MQTTC_RUN_CALLER): no thread is started. The application
 * calls mqttc_client_loop() with a timeout, or polls mqttc_client_fd() for
 * mqttc_client_want() and calls mqttc_client_process() when it is ready or
 * when mqttc_client_next_timeout() expires. Callbacks then run inside those
 * calls, on the caller's thread.
 *
 * Ownership: mqttc_client_create() copies every string and buffer of the
 * configuration; the caller may free them afterwards. Publish copies topic
 * and payload. Pointers in events are valid only during the callback.
 */
#ifndef MQTTC_CLIENT_H
#define MQTTC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttc/engine.h"
#include "mqttc/store.h"
#include "mqttc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mqttc_client mqttc_client;

/** How the client is run. */
typedef enum mqttc_run_mode {
    MQTTC_RUN_THREAD = 0, /**< a background thread per client (default) */
    MQTTC_RUN_CALLER = 1  /**< the caller drives it: mqttc_client_loop()/process() */
} mqttc_run_mode;

/** Client states. */
typedef enum mqttc_client_state {
    MQTTC_CLIENT_IDLE = 0,       /**< never connected, or disconnected by the application */
    MQTTC_CLIENT_CONNECTING = 1, /**< resolving the host name or opening the socket */
    MQTTC_CLIENT_HANDSHAKE = 2,  /**< transport up, waiting for CONNACK */
    MQTTC_CLIENT_READY = 3,      /**< CONNACK accepted: publishes go out */
    MQTTC_CLIENT_WAITING = 4     /**< connection lost; waiting to reconnect */
} mqttc_client_state;

/** Event types. */
typedef enum mqttc_client_event_type {
    MQTTC_CLIENT_EV_CONNECTED = 1,    /**< CONNACK accepted */
    MQTTC_CLIENT_EV_DISCONNECTED = 2, /**< an accepted session ended */
    MQTTC_CLIENT_EV_SUBSCRIBED = 3,   /**< SUBACK: granted QoS or 0x80 per filter */
    MQTTC_CLIENT_EV_UNSUBSCRIBED = 4, /**< UNSUBACK */
    MQTTC_CLIENT_EV_MESSAGE = 5,      /**< an incoming message, or a piece of one */
    MQTTC_CLIENT_EV_PUBLISHED = 6,    /**< QoS 0 written to the socket, QoS 1 PUBACK, QoS 2 PUBCOMP */
    MQTTC_CLIENT_EV_DROPPED = 7,      /**< a message accepted by publish will never be sent */
    MQTTC_CLIENT_EV_PONG = 8,         /**< PINGRESP */
    MQTTC_CLIENT_EV_ERROR = 9         /**< a connection attempt or a connection failed */
} mqttc_client_event_type;

/** What failed, in an MQTTC_CLIENT_EV_ERROR event. */
typedef enum mqttc_error_kind {
    MQTTC_ERRKIND_CONNECT = 1,  /**< the attempt failed before CONNACK: name resolution, socket
                                     connect, TLS/WebSocket handshake, or no CONNACK in time */
    MQTTC_ERRKIND_CONNACK = 2,  /**< the broker refused the connection (code in `connack_code`) */
    MQTTC_ERRKIND_TRANSPORT = 3,/**< reading or writing the connection failed */
    MQTTC_ERRKIND_PROTOCOL = 4  /**< the broker violated the protocol, or no PINGRESP in time */
} mqttc_error_kind;

/** An event. All pointers are valid only during the callback. */
typedef struct mqttc_client_event {
    mqttc_client_event_type type;
    union {
        struct {
            bool session_present;
        } connected;
        struct {
            int reason;          /**< 0 when the application ended it (mqttc_client_disconnect()
                                      or mqttc_client_reconnect()), else the cause */
            bool will_reconnect; /**< auto-reconnect is on and will try again */
        } disconnected;
        struct {
            int msg_id;
            size_t count;
            const uint8_t *granted; /**< per filter, in request order: 0..2 or 0x80 */
        } subscribed;
        struct {
            int msg_id;
        } unsubscribed;
        struct {
            const char *topic; /**< not NUL-terminated */
            size_t topic_len;
            const uint8_t *payload;
            size_t payload_len;
            size_t offset; /**< with message_pieces: where this piece starts */
            size_t total;  /**< whole payload length */
            int msg_id;    /**< broker's packet id, 0 for QoS 0 */
            uint8_t qos;
            bool retain;
            bool dup;
        } message;
        struct {
            int msg_id; /**< as returned by mqttc_client_publish() */
            uint8_t qos;
        } published;
        struct {
            int msg_id;
            uint8_t qos;
            const char *topic; /**< NUL-terminated */
            int reason;        /**< MQTTC_ERR_DROPPED (queue full) or MQTTC_ERR_CONNECTION_LOST (QoS 0 cut) */
        } dropped;
        struct {
            int code;              /**< MQTTC_ERR_* */
            mqttc_error_kind kind;
            uint8_t connack_code;  /**< CONNACK return code for MQTTC_ERRKIND_CONNACK */
            int detail;            /**< transport detail: the HTTP status of a refused
                                        WebSocket upgrade, the mbedTLS error code, the
                                        errno of a failed TCP connect; else 0 */
        } error;
    } u;
} mqttc_client_event;

/** Event callback. `c` may be used (even destroyed) inside it. */
typedef void (*mqttc_client_cb)(mqttc_client *c, const mqttc_client_event *ev, void *user);

/** Log levels. */
typedef enum mqttc_log_level {
    MQTTC_LOG_ERROR = 0,
    MQTTC_LOG_WARN = 1,
    MQTTC_LOG_INFO = 2,
    MQTTC_LOG_DEBUG = 3
} mqttc_log_level;

/** Log callback: `msg` is a NUL-terminated line without newline. */
typedef void (*mqttc_log_cb)(mqttc_log_level level, const char *msg, void *user);

/** Server certificate verification for mqtts:// and wss://. */
typedef enum mqttc_tls_verify {
    MQTTC_TLS_VERIFY_REQUIRED = 0, /**< default: the chain must reach `ca` (or the system's CAs)
                                        and the certificate must match the host name */
    MQTTC_TLS_VERIFY_OPTIONAL = 1, /**< verify, log a failure as a warning, connect anyway */
    MQTTC_TLS_VERIFY_NONE = 2      /**< no verification (W800 AUTH_MODE_NOT_CERT, LuatOS ssl=true) */
} mqttc_tls_verify;

/** TLS versions for mqttc_tls_config. */
typedef enum mqttc_tls_version {
    MQTTC_TLS_ANY = 0, /**< the best both sides support */
    MQTTC_TLS_1_2 = 1,
    MQTTC_TLS_1_3 = 2  /**< MQTTC_ERR_UNSUPPORTED when the TLS library lacks it */
} mqttc_tls_version;

/**
 * TLS settings (mbedTLS). Each of ca, cert and key is either PEM text (it
 * begins with "-----BEGIN") or the path of a PEM file. The four W800 modes:
 * no verification (verify NONE); server verified (ca); client certificate
 * (cert + key, verify NONE); mutual (ca + cert + key).
 */
typedef struct mqttc_tls_config {
    const char *ca;           /**< trusted CA(s); NULL: the system bundle */
    const char *cert;         /**< client certificate chain; NULL: none */
    const char *key;          /**< its private key (required with cert) */
    const char *key_password; /**< for an encrypted key; NULL: none */
    mqttc_tls_verify verify;
    const char *server_name;  /**< SNI and the name verified; NULL: the URI's host */
    const char *const *alpn;  /**< NULL-terminated ALPN list, or NULL */
    mqttc_tls_version min_version, max_version;
} mqttc_tls_config;

/** Client configuration. Start from mqttc_client_config_init(). */
typedef struct mqttc_client_config {
    /** Server URI: mqtt:// or tcp:// (1883), mqtts:// or ssl:// (TLS, 8883), ws://
     *  (WebSocket, 8083), wss:// (WebSocket over TLS, 8084), with an optional
     *  :port and, for the web schemes, a /path (default /mqtt). IPv6 literals in
     *  brackets: mqtt://[::1]:1883. NULL: use host and port (TCP). */
    const char *uri;
    /** More URIs tried in turn after `uri` when a connection attempt fails
     *  (failover across a cluster's nodes); NULL-terminated, may be NULL. */
    const char *const *failover_uris;
    const char *host; /**< used when uri is NULL */
    uint16_t port;    /**< with host; 0: 1883 */

    const char *client_id; /**< NULL or "": the broker assigns one (clean session only) */
    const char *username;  /**< NULL: none */
    const char *password;  /**< NULL: none (needs username) */
    size_t password_len;   /**< 0: strlen(password) */

    const char *will_topic; /**< NULL: no will */
    const void *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    bool will_retain;

    uint16_t keepalive;  /**< seconds; default 60; 0 disables */
    bool clean_session;  /**< default true */

    uint16_t inflight_max;    /**< outbound QoS 1/2 in flight (default 20) */
    uint16_t inbound_max;     /**< inbound QoS 2 awaiting PUBREL tracked in a table (default
                                   32); beyond that an 8 KiB bitmap takes over, so any
                                   number the broker sends is handled exactly once */
    uint32_t queue_max_msgs;  /**< queued + in flight (default 1000) */
    size_t queue_max_bytes;   /**< topic + payload bytes of those (default 16 MiB) */
    mqttc_queue_policy queue_policy; /**< when full: refuse (default) or drop the oldest unsent */

    size_t rx_buffer_size; /**< receive buffer (default 4 KiB; larger messages are joined
                                in a heap buffer, or delivered in pieces) */
    size_t tx_buffer_size; /**< outgoing staging buffer (default 4 KiB; larger payloads
                                are written from the message itself) */
    uint32_t max_message_size; /**< largest incoming message (default 256 MiB, the protocol maximum) */
    bool message_pieces; /**< deliver messages larger than rx_buffer_size in pieces instead of whole */

    /** Allocate everything the steady state needs in mqttc_client_create():
     *  the receive and send buffers (kept, never given back when idle), the
     *  inbound QoS 2 bitmap, and queue_max_msgs message nodes of
     *  prealloc_message_size bytes (topic + payload). Once connected and
     *  subscribed, publishing, receiving, acknowledging and keepalive then
     *  call no allocator: a larger publish fails with MQTTC_ERR_TOO_LARGE, a
     *  full pool with MQTTC_ERR_QUEUE_FULL, and an incoming message larger than
     *  rx_buffer_size arrives in pieces if message_pieces is set, or closes the
     *  connection with MQTTC_ERR_PACKET_TOO_LARGE (nothing is joined on the
     *  heap). Connecting, subscribing, a store and TLS/WebSocket still allocate.
     *  Size queue_max_msgs to need: the default 1000 nodes take ~340 KB. */
    bool preallocate;
    size_t prealloc_message_size; /**< with preallocate: bytes per node (default 256) */

    uint32_t connect_timeout_ms; /**< DNS + socket connect, and then CONNACK (default 10000) */
    bool auto_reconnect;         /**< default false */
    uint32_t reconnect_ms;       /**< first (or fixed) delay (default 3000) */
    uint32_t reconnect_max_ms;   /**< 0: fixed interval; else exponential backoff with
                                      jitter, doubling up to this cap */

    /** Persistent store for unacknowledged QoS 1/2 messages and inbound QoS 2
     *  state (include/mqttc/store.h), borrowed: it must outlive the client, and
     *  serve one client at a time. Loaded by mqttc_client_create(): what it
     *  holds is re-sent after the first CONNACK. NULL: kept in memory only. */
    mqttc_store *store;

    mqttc_tls_config tls; /**< used by mqtts:// and wss:// */
    const char *ws_path;  /**< WebSocket path; NULL: the URI's path, or "/mqtt" */

    mqttc_run_mode run_mode;
    mqttc_client_cb on_event; /**< may be NULL */
    void *user;
    mqttc_log_cb on_log; /**< NULL: the library prints nothing */
    void *log_user;
    mqttc_log_level log_level; /**< most verbose level passed to on_log (default WARN) */
} mqttc_client_config;

/** Fill `cfg` with the defaults. */
MQTTC_API void mqttc_client_config_init(mqttc_client_config *cfg);

/**
 * @brief Create a client (nothing is connected yet).
 * @param[out] out the client; free it with mqttc_client_destroy().
 * @return 0, MQTTC_ERR_INVALID_ARG, MQTTC_ERR_BAD_URI, MQTTC_ERR_BAD_CLIENT_ID,
 *         MQTTC_ERR_BAD_TOPIC / BAD_UTF8 / BAD_QOS / BAD_WILL (will),
 *         MQTTC_ERR_NO_MEMORY.
 */
MQTTC_API int mqttc_client_create(const mqttc_client_config *cfg, mqttc_client **out);

/**
 * @brief Stop and free the client. If connected, sends DISCONNECT first (after
 *        what is already queued, waiting at most about a second), so no will
 *        is published. Messages not yet completed are abandoned (check
 *        mqttc_client_queued() beforehand). Safe from the event callback; no
 *        event is delivered once destroy has begun.
 */
MQTTC_API void mqttc_client_destroy(mqttc_client *c);

/**
 * @brief Start connecting (asynchronously). With MQTTC_RUN_THREAD this starts
 *        the client's thread. Success or failure arrives as an event.
 * @return 0, or MQTTC_ERR_BAD_STATE if already connecting or connected.
 */
MQTTC_API int mqttc_client_connect(mqttc_client *c);

/**
 * @brief Send DISCONNECT (after what is already being written) and close.
 *        The handle stays usable: connect again with mqttc_client_connect().
 *        Auto-reconnect stops until then. Queued messages are kept.
 */
MQTTC_API int mqttc_client_disconnect(mqttc_client *c);

/** Drop the current connection (if any) and connect again now. */
MQTTC_API int mqttc_client_reconnect(mqttc_client *c);

/**
 * @brief Publish a message. Topic and payload are copied. QoS 1/2 messages are
 *        queued while offline or while the in-flight window is full, and are
 *        re-sent after a reconnect until acknowledged.
 * @param payload may be NULL when len is 0.
 * @return the message id (1..65535) for QoS 1/2, 0 for QoS 0, or a negative
 *         code: MQTTC_ERR_INVALID_ARG, BAD_TOPIC, BAD_UTF8, BAD_QOS, TOO_LARGE,
 *         QUEUE_FULL, NO_MEMORY.
 */
MQTTC_API int mqttc_client_publish(mqttc_client *c, const char *topic, const void *payload,
                                   size_t len, int qos, bool retain);

/** One filter of a multi-filter subscribe. */
typedef struct mqttc_topic_qos {
    const char *filter;
    int qos;
} mqttc_topic_qos;

/**
 * @brief Subscribe to one filter. The result comes as MQTTC_CLIENT_EV_SUBSCRIBED.
 *        Subscriptions are restored after a reconnect when the broker has no
 *        session for the client.
 * @return the message id, or MQTTC_ERR_INVALID_ARG, BAD_FILTER, BAD_UTF8,
 *         BAD_QOS, TOO_LARGE, NO_MEMORY.
 */
MQTTC_API int mqttc_client_subscribe(mqttc_client *c, const char *filter, int qos);

/** Subscribe to `n` filters in one SUBSCRIBE. Same returns. */
MQTTC_API int mqttc_client_subscribe_many(mqttc_client *c, const mqttc_topic_qos *items,
                                          size_t n);

/** Unsubscribe from one filter. Result: MQTTC_CLIENT_EV_UNSUBSCRIBED. */
MQTTC_API int mqttc_client_unsubscribe(mqttc_client *c, const char *filter);

/** Unsubscribe from `n` filters in one UNSUBSCRIBE. */
MQTTC_API int mqttc_client_unsubscribe_many(mqttc_client *c, const char *const *filters,
                                            size_t n);

/** Current state. */
MQTTC_API mqttc_client_state mqttc_client_state_get(mqttc_client *c);

/** True when CONNACK was accepted and the connection is up. */
MQTTC_API bool mqttc_client_ready(mqttc_client *c);

/** Messages queued or in flight (not yet completed). */
MQTTC_API uint32_t mqttc_client_queued(mqttc_client *c);

/** Turn debug logging on or off (sets log_level to DEBUG or back to WARN). */
MQTTC_API void mqttc_client_set_debug(mqttc_client *c, bool on);

/* ---- Caller-driven mode (MQTTC_RUN_CALLER) -------------------------------- */

/** Poll flags for mqttc_client_want() / mqttc_client_process(). */
enum { MQTTC_WANT_READ = 1, MQTTC_WANT_WRITE = 2 };

/**
 * @brief Run one iteration: wait up to `timeout_ms` (-1: until the next
 *        deadline) for the connection, then do all I/O and timers due.
 * @return 0, or MQTTC_ERR_BAD_STATE for a client in MQTTC_RUN_THREAD mode.
 */
MQTTC_API int mqttc_client_loop(mqttc_client *c, int timeout_ms);

/** The descriptor to poll, or -1 when none (idle, or waiting to reconnect). */
MQTTC_API int mqttc_client_fd(mqttc_client *c);

/** MQTTC_WANT_READ / MQTTC_WANT_WRITE flags to poll mqttc_client_fd() for. */
MQTTC_API int mqttc_client_want(mqttc_client *c);

/** Milliseconds until mqttc_client_process() must be called even if the fd is idle; -1: none. */
MQTTC_API int mqttc_client_next_timeout(mqttc_client *c);

/**
 * @brief Do the work for poll results `ready` (MQTTC_WANT_* flags; 0 when a
 *        timeout expired) without waiting.
 */
MQTTC_API int mqttc_client_process(mqttc_client *c, int ready);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_CLIENT_H */
