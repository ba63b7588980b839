/* Picks the transport for a URI scheme at run time. TLS and WebSocket will
 * wrap the TCP transport; until they exist their schemes are unsupported. */
#include "transport.h"

int mqttc__transport_open(const mqttc_uri *uri, const mqttc_transport_opts *opts,
                          mqttc_transport **out)
{
    (void)opts; /* nothing in it for TCP */
    if (uri == NULL || out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    switch (uri->scheme) {
    case MQTTC_SCHEME_MQTT:
        return mqttc__tcp_open(uri->host, uri->port, out);
    case MQTTC_SCHEME_MQTTS:
    case MQTTC_SCHEME_WS:
    case MQTTC_SCHEME_WSS:
        return MQTTC_ERR_UNSUPPORTED;
    }
    return MQTTC_ERR_INVALID_ARG;
}
