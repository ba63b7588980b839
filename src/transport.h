/* Internal: the one interface between the client and the network. A
 * transport moves bytes over a non-blocking connection; TCP, TLS and
 * WebSocket are implementations, and TLS/WebSocket wrap another transport
 * (chosen at run time from the URI scheme, never with #ifdef).
 *
 * Every call is non-blocking. Results: > 0 bytes moved; 0 would block (poll
 * mqttc__transport_want() on mqttc__transport_fd()); < 0 a MQTTC_ERR_* code
 * (MQTTC_ERR_CLOSED_BY_PEER at end of stream). After an error, read() may
 * still collect what the peer sent before it (a TLS alert explaining a reset),
 * then only destroy(). */
#ifndef MQTTC_TRANSPORT_H
#define MQTTC_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "mqttc/client.h"
#include "mqttc/engine.h"
#include "mqttc/uri.h"

/* connect() result while the connection is still being set up. */
#define MQTTC__AGAIN 1

typedef struct mqttc_transport mqttc_transport;

typedef struct mqttc_transport_vtable {
    const char *name;
    /* Advance the connection set-up (resolve, connect, handshakes): 0 when
     * established, MQTTC__AGAIN while in progress, < 0 on failure. */
    int (*connect)(mqttc_transport *t);
    long (*read)(mqttc_transport *t, uint8_t *buf, size_t cap);
    /* Write as much of the iovecs as possible, in order (one system call
     * where the OS allows). A transport may accept bytes it cannot pass on
     * yet (the rest of a WebSocket frame, a pong) and ask for WRITE in want();
     * writev(t, NULL, 0) then only flushes those, returning 0 or an error. */
    long (*writev)(mqttc_transport *t, const mqttc_iov *iov, size_t n);
    /* The descriptor to poll; -1 when there is none yet. */
    int (*fd)(const mqttc_transport *t);
    /* MQTTC_WANT_READ/WRITE the transport itself needs now (while
     * connecting, or a TLS record in the middle); the client adds its own. */
    int (*want)(const mqttc_transport *t);
    /* Close the connection and free the transport. */
    void (*destroy)(mqttc_transport *t);
    /* Bytes read() would return now without the descriptor becoming readable
     * (decrypted or deframed already, held inside the transport); NULL when
     * the transport never holds any. The client reads while this is > 0,
     * since poll() cannot see them. */
    size_t (*pending)(const mqttc_transport *t);
} mqttc_transport_vtable;

struct mqttc_transport {
    const mqttc_transport_vtable *vt;
    /* Set by an implementation with its last error: the HTTP status of a
     * refused WebSocket upgrade, the mbedTLS error code, the errno of a
     * failed TCP connect; 0 otherwise. A
     * wrapping transport copies its inner transport's detail. */
    int detail;
};

/* What the transports need from the client's configuration. Borrowed: the
 * client keeps it alive as long as any transport it opened. */
typedef struct mqttc_transport_opts {
    const mqttc_tls_config *tls; /* mqtts://, wss:// */
    const char *ws_path;         /* ws://, wss://: the request path ("/mqtt") */
    /* Log sink for warnings (an optional verification that failed). */
    void (*log)(void *user, mqttc_log_level level, const char *msg);
    void *log_user;
} mqttc_transport_opts;

/* Create the transport for `uri` (connection starts on the first connect()).
 * Returns 0, MQTTC_ERR_UNSUPPORTED for a scheme this build lacks,
 * MQTTC_ERR_NO_MEMORY. */
int mqttc__transport_open(const mqttc_uri *uri, const mqttc_transport_opts *opts,
                          mqttc_transport **out);

/* TCP: resolves `host` without blocking the caller (a numeric address at
 * once; a name on a short-lived resolver thread), then connects to each
 * address in turn (IPv6 and IPv4) with non-blocking sockets, TCP_NODELAY. */
int mqttc__tcp_open(const char *host, uint16_t port, mqttc_transport **out);

/* TLS over `inner` (which it owns from then on, also on failure): loads the
 * certificates and keys at once (so configuration errors come back here, with
 * their specific code), then handshakes inside connect(), after `inner`
 * connected. `host` is used for SNI and verification unless
 * tls->server_name is set. */
int mqttc__tls_open(mqttc_transport *inner, const char *host, const mqttc_transport_opts *opts,
                    mqttc_transport **out);

/* WebSocket (RFC 6455, subprotocol "mqtt") over `inner` (owned, also on
 * failure): sends the HTTP upgrade for `host`:`port``path` once `inner`
 * connected, checks the 101 reply and Sec-WebSocket-Accept, then carries the
 * byte stream in masked binary frames. */
int mqttc__ws_open(mqttc_transport *inner, const char *host, uint16_t port, const char *path,
                   mqttc_transport **out);

#endif /* MQTTC_TRANSPORT_H */
