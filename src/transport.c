/* Picks the transport stack for a URI scheme at run time: TCP; TLS over TCP;
 * WebSocket over TCP; WebSocket over TLS over TCP. */
#include "transport.h"

int mqttc__transport_open(const mqttc_uri *uri, const mqttc_transport_opts *opts,
                          mqttc_transport **out)
{
    mqttc_transport *tcp, *tls;
    int rc;
    if (uri == NULL || out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    switch (uri->scheme) {
    case MQTTC_SCHEME_MQTT:
        return mqttc__tcp_open(uri->host, uri->port, out);
    case MQTTC_SCHEME_MQTTS:
        rc = mqttc__tcp_open(uri->host, uri->port, &tcp);
        return rc < 0 ? rc : mqttc__tls_open(tcp, uri->host, opts, out);
    case MQTTC_SCHEME_WS:
        rc = mqttc__tcp_open(uri->host, uri->port, &tcp);
        return rc < 0 ? rc
                      : mqttc__ws_open(tcp, uri->host, uri->port,
                                       opts != NULL ? opts->ws_path : NULL, out);
    case MQTTC_SCHEME_WSS:
        rc = mqttc__tcp_open(uri->host, uri->port, &tcp);
        if (rc < 0) {
            return rc;
        }
        rc = mqttc__tls_open(tcp, uri->host, opts, &tls); /* owns tcp, even on failure */
        return rc < 0 ? rc
                      : mqttc__ws_open(tls, uri->host, uri->port,
                                       opts != NULL ? opts->ws_path : NULL, out);
    }
    return MQTTC_ERR_INVALID_ARG;
}
