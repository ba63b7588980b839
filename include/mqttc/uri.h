/**
 * @file uri.h
 * @brief Server URIs: scheme://[user[:password]@]host[:port][/path].
 *
 * Schemes: mqtt:// and tcp:// (TCP, port 1883), mqtts:// and ssl:// (TLS,
 * 8883), ws:// (WebSocket, 8083), wss:// (WebSocket over TLS, 8084). IPv6
 * literals go in brackets: mqtt://[::1]:1883. The path defaults to "/mqtt"
 * for the web schemes and to "" otherwise. User name and password are
 * percent-decoded; host and path are kept as written.
 */
#ifndef MQTTC_URI_H
#define MQTTC_URI_H

#include <stdbool.h>
#include <stdint.h>

#include "mqttc/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mqttc_scheme {
    MQTTC_SCHEME_MQTT = 0,
    MQTTC_SCHEME_MQTTS = 1,
    MQTTC_SCHEME_WS = 2,
    MQTTC_SCHEME_WSS = 3
} mqttc_scheme;

#define MQTTC_URI_HOST_MAX 256
#define MQTTC_URI_PATH_MAX 512
#define MQTTC_URI_USER_MAX 256

/** A parsed URI; every string is NUL-terminated and owned by the struct. */
typedef struct mqttc_uri {
    mqttc_scheme scheme;
    char host[MQTTC_URI_HOST_MAX]; /**< without brackets for IPv6 literals */
    uint16_t port;                 /**< the scheme's default when absent */
    char path[MQTTC_URI_PATH_MAX]; /**< begins with '/' when present */
    char username[MQTTC_URI_USER_MAX];
    char password[MQTTC_URI_USER_MAX];
    bool has_username, has_password;
    bool ipv6_literal;
} mqttc_uri;

/**
 * @brief Parse `s` into `out`.
 * @return 0, MQTTC_ERR_INVALID_ARG for NULL, or MQTTC_ERR_BAD_URI (unknown
 *         scheme, empty host, bad port 0 or > 65535, unbalanced brackets,
 *         spaces or control characters, a part too long).
 */
MQTTC_API int mqttc_uri_parse(const char *s, mqttc_uri *out);

/** Default port of a scheme. */
MQTTC_API uint16_t mqttc_scheme_default_port(mqttc_scheme s);

/** True for mqtts:// and wss://. */
MQTTC_API bool mqttc_scheme_is_tls(mqttc_scheme s);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_URI_H */
