/**
 * @file wm_mqtt_client.h
 * @brief The W800 SDK MQTT client API, implemented on mqttc (docs/W800.md).
 *
 * Flow: wm_mqtt_client_init() builds a handle from a configuration,
 * wm_mqtt_client_connect() starts connecting, and results arrive as events
 * of group WM_MQTT_EV on the event bus (wm_event.h), on the event task.
 *
 * Example:
 * @code
 *   static void on_mqtt(wm_event_group_t g, int ev, void *data, void *priv) {
 *       wm_mqtt_event_data_t *d = data;
 *       if (ev == WM_EVENT_MQTT_CLIENT_DATA) {
 *           printf("%.*s: %.*s\n", d->mqtt_client_data_info.topic_len,
 *                  d->mqtt_client_data_info.topic, d->mqtt_client_data_info.payload_len,
 *                  d->mqtt_client_data_info.payload);
 *           free(d->mqtt_client_data_info.topic);
 *           free(d->mqtt_client_data_info.payload);
 *       }
 *   }
 *   wm_mqtt_client_config_t cfg = { .uri = "mqtt://127.0.0.1:1883", .client_id = "w800",
 *                                   .keep_alive = 60, .clean_session = 1 };
 *   wm_event_add_callback(WM_MQTT_EV, WM_EVENT_ANY_TYPE, on_mqtt, NULL);
 *   wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
 *   wm_mqtt_client_connect(h);
 * @endcode
 *
 * Ownership: wm_mqtt_client_init() copies every string of the configuration.
 * On a DATA event `topic` and `payload` are heap copies (NUL-terminated as
 * well) that the application frees with free(); when no callback is
 * registered for the event the library frees them.
 */
#ifndef WM_MQTT_CLIENT_H
#define WM_MQTT_CLIENT_H

#include "wm_types.h"
#include "wm_error.h"
#include "wm_event.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The event group of the MQTT client. */
WM_EVENT_DECLARE_GROUP(WM_MQTT_EV);

/** MQTT client events. */
enum {
    WM_EVENT_MQTT_CLIENT_CONNECTED = 0,    /**< the broker accepted the connection */
    WM_EVENT_MQTT_CLIENT_DISCONNECTED = 1, /**< the connection ended, or an attempt failed */
    WM_EVENT_MQTT_CLIENT_DATA = 2,         /**< a message (or a 65,535-byte part of one) */
    WM_EVENT_MQTT_CLIENT_PUBLISHED = 3     /**< QoS 1 PUBACK or QoS 2 PUBCOMP (never QoS 0) */
};

/** How a TLS connection (ssl://, mqtts://, wss://) is authenticated. */
typedef enum {
    WM_MQTT_CLIENT_AUTH_MODE_NOT_CERT = 0,            /**< TLS without verification */
    WM_MQTT_CLIENT_AUTH_MODE_AUTH_SERVER_CERT = 1,    /**< verify the server with `ca` */
    WM_MQTT_CLIENT_AUTH_MODE_PROVIDE_CLIENT_CERT = 2, /**< present `cert`/`key`, no verification */
    WM_MQTT_CLIENT_AUTH_MODE_MUTUAL_AUTH = 3          /**< both */
} wm_mqtt_client_auth_mode_t;

/** Error codes. */
typedef enum {
    WM_MQTT_CLIENT_ERROR_SUCCESS = WM_ERR_SUCCESS,
    WM_MQTT_CLIENT_ERROR_FAILURE = WM_ERR_MQTT_CLIENT_BASE - 1,
    WM_MQTT_CLIENT_ERROR_PERSISTENCE_ERROR = WM_ERR_MQTT_CLIENT_BASE - 2,
    WM_MQTT_CLIENT_ERROR_DISCONNECTED = WM_ERR_MQTT_CLIENT_BASE - 3,
    WM_MQTT_CLIENT_ERROR_MAX_MESSAGES_INFLIGHT = WM_ERR_MQTT_CLIENT_BASE - 4,
    WM_MQTT_CLIENT_ERROR_BAD_UTF8_STRING = WM_ERR_MQTT_CLIENT_BASE - 5,
    WM_MQTT_CLIENT_ERROR_NULL_PARAMETER = WM_ERR_MQTT_CLIENT_BASE - 6,
    WM_MQTT_CLIENT_ERROR_TOPICNAME_TRUNCATED = WM_ERR_MQTT_CLIENT_BASE - 7,
    WM_MQTT_CLIENT_ERROR_BAD_STRUCTURE = WM_ERR_MQTT_CLIENT_BASE - 8,
    WM_MQTT_CLIENT_ERROR_BAD_QOS = WM_ERR_MQTT_CLIENT_BASE - 9,
    WM_MQTT_CLIENT_ERROR_SSL_NOT_SUPPORTED = WM_ERR_MQTT_CLIENT_BASE - 10,
    WM_MQTT_CLIENT_ERROR_BAD_MQTT_VERSION = WM_ERR_MQTT_CLIENT_BASE - 11,
    WM_MQTT_CLIENT_ERROR_BAD_PROTOCOL = WM_ERR_MQTT_CLIENT_BASE - 14,
    WM_MQTT_CLIENT_ERROR_BAD_MQTT_OPTION = WM_ERR_MQTT_CLIENT_BASE - 15,
    WM_MQTT_CLIENT_ERROR_WRONG_MQTT_VERSION = WM_ERR_MQTT_CLIENT_BASE - 16,
    WM_MQTT_CLIENT_ERROR_0_LEN_WILL_TOPIC = WM_ERR_MQTT_CLIENT_BASE - 17
} wm_mqtt_client_error_code_t;

/** The data of a WM_MQTT_EV event (the event task's copy). */
typedef union {
    /** WM_EVENT_MQTT_CLIENT_DATA. A message longer than 65,535 bytes comes as
     *  consecutive DATA events of at most 65,535 bytes each. */
    struct {
        char *topic; /**< heap, NUL-terminated; the application frees it */
        uint16_t topic_len;
        char *payload; /**< heap, NUL-terminated; the application frees it */
        uint16_t payload_len;
        int msgid; /**< the broker's packet id, 0 for QoS 0 */
        uint8_t qos;
        uint8_t dup;
        uint8_t retained;
        void *client_handle; /**< handle->client of the receiving client */
    } mqtt_client_data_info;
    /** WM_EVENT_MQTT_CLIENT_PUBLISHED. */
    struct {
        int msg_id; /**< as returned by wm_mqtt_client_publish() */
    } mqtt_client_published_info;
    /** WM_EVENT_MQTT_CLIENT_DISCONNECTED (and CONNECTED). */
    struct {
        void *client_handle; /**< handle->client */
    } mqtt_client_disconnect_info;
} wm_mqtt_event_data_t;

/** Client configuration. Zero it, then fill what is needed. */
typedef struct {
    char *uri;       /**< tcp:// mqtt:// ssl:// mqtts:// ws:// wss:// host[:port][/path] */
    char *client_id; /**< NULL or "": the broker assigns one (needs clean_session) */
    char *username;  /**< NULL: none */
    char *password;  /**< NULL: none */
    wm_mqtt_client_auth_mode_t auth_mode; /**< TLS only */
    char *ca;        /**< PEM text (or a PEM file path) */
    char *cert;      /**< PEM text (or a PEM file path) */
    char *key;       /**< PEM text (or a PEM file path) */
    char **alpn;     /**< NULL-terminated ALPN list, or NULL */
    char *will_topic; /**< NULL: no will; "" is an error */
    char *will_msg;   /**< NUL-terminated; NULL: empty */
    uint8_t will_qos;
    uint8_t will_retain;
    uint16_t keep_alive;   /**< seconds; 0: the default, 60 */
    uint8_t clean_session; /**< 0: resume the broker's session for client_id */
    bool debug;            /**< log the protocol to stderr */
} wm_mqtt_client_config_t;

/** The client's state; `client` is the mqttc_client (events carry it). */
typedef struct wm_mqtt_client {
    void *client;
} wm_mqtt_client_t;

/** A client handle. */
typedef wm_mqtt_client_t *wm_mqtt_client_handle_t;

/**
 * @brief Create a client (nothing is connected yet).
 * @return the handle, or NULL: config or uri NULL, unknown URI scheme, empty
 *         will topic, will QoS above 2, bad URI or client id, no memory.
 */
wm_mqtt_client_handle_t wm_mqtt_client_init(wm_mqtt_client_config_t *config);

/** Disconnect (emitting DISCONNECTED if it was connected) and free the handle. */
int wm_mqtt_client_deinit(wm_mqtt_client_handle_t handle);

/** Start connecting; CONNECTED or DISCONNECTED follows. FAILURE if already
 *  connecting or connected; NULL_PARAMETER. */
int wm_mqtt_client_connect(wm_mqtt_client_handle_t handle);

/** Send DISCONNECT and close; DISCONNECTED follows. */
int wm_mqtt_client_disconnect(wm_mqtt_client_handle_t handle);

/** Drop the connection (if any) and connect again. */
int wm_mqtt_client_reconnect(wm_mqtt_client_handle_t handle);

/** Subscribe. @return the message id (> 0), or NULL_PARAMETER, BAD_QOS,
 *  BAD_UTF8_STRING, FAILURE (invalid filter), DISCONNECTED. */
int wm_mqtt_client_subscribe(wm_mqtt_client_handle_t handle, const char *topic, uint8_t qos);

/** Unsubscribe. @return the message id (> 0), or a negative code as subscribe. */
int wm_mqtt_client_unsubscribe(wm_mqtt_client_handle_t handle, const char *topic);

/**
 * @brief Publish. `msg_len` 0 means strlen(message); `message` NULL sends an
 *        empty payload. Topic and payload are copied.
 * @return the message id (1..65535) for QoS 1/2, 0 for QoS 0, or a negative
 *         code: NULL_PARAMETER, BAD_QOS, BAD_UTF8_STRING, FAILURE (invalid
 *         topic), DISCONNECTED (not connected: nothing is queued),
 *         MAX_MESSAGES_INFLIGHT (the window of 20 unacknowledged messages is full).
 */
int wm_mqtt_client_publish(wm_mqtt_client_handle_t handle, const char *topic, const char *message,
                           uint16_t msg_len, uint8_t qos, uint8_t retain);

#ifdef __cplusplus
}
#endif
#endif /* WM_MQTT_CLIENT_H */
