/* mqttc_selftest: runs the protocol core end to end in memory. A tiny broker
 * written with the codec answers an engine that subscribes, publishes at
 * QoS 0, 1 and 2 and receives its own messages back; the transport is a
 * pair of byte buffers and the clock is simulated. Prints the packet trace.
 * Exit status 0 when every message arrived exactly once. */
#include <stdio.h>
#include <string.h>

#include "mqttc/engine.h"

#define PIPE_CAP 8192

typedef struct pipe_buf {
    uint8_t data[PIPE_CAP];
    size_t len;
} pipe_buf;

typedef struct demo {
    mqttc_engine eng;
    pipe_buf to_broker, to_client;
    mqttc_decoder broker_dec;
    uint8_t broker_rx[PIPE_CAP];
    int received[3];
    int done;
    bool subscribed;
} demo;

static const char *const names[] = {"?",      "CONNECT", "CONNACK", "PUBLISH", "PUBACK",
                                    "PUBREC", "PUBREL",  "PUBCOMP", "SUBSCRIBE", "SUBACK",
                                    "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
                                    "DISCONNECT"};

static void to_client(demo *d, const uint8_t *p, int n)
{
    if (n > 0 && d->to_client.len + (size_t)n <= PIPE_CAP) {
        memcpy(d->to_client.data + d->to_client.len, p, (size_t)n);
        d->to_client.len += (size_t)n;
    }
}

/* The broker: answer each client packet; route PUBLISH back to the client. */
static void broker_handle(demo *d, const mqttc_packet *p)
{
    uint8_t out[512];
    int n = 0;
    printf("  client -> broker  %s\n", names[p->type]);
    switch (p->type) {
    case MQTTC_CONNECT:
        n = mqttc_encode_connack(out, sizeof out, false, MQTTC_CONNACK_ACCEPTED);
        break;
    case MQTTC_SUBSCRIBE: {
        uint8_t codes[8];
        size_t pos = 0, i = 0;
        mqttc_str f;
        uint8_t q;
        while (i < 8 && mqttc_entries_next(p, &pos, &f, &q)) {
            codes[i++] = q;
        }
        n = mqttc_encode_suback(out, sizeof out, p->u.subscribe.packet_id, codes, i);
        break;
    }
    case MQTTC_PUBLISH: {
        mqttc_publish fwd = p->u.publish;
        if (fwd.qos == 1) {
            n = mqttc_encode_ack(out, sizeof out, MQTTC_PUBACK, fwd.packet_id);
        } else if (fwd.qos == 2) {
            n = mqttc_encode_ack(out, sizeof out, MQTTC_PUBREC, fwd.packet_id);
        }
        to_client(d, out, n);
        fwd.dup = false;
        fwd.packet_id = fwd.qos ? (uint16_t)(100 + fwd.qos) : 0;
        n = mqttc_encode_publish(out, sizeof out, &fwd);
        printf("  broker -> client  PUBLISH (routed, QoS %u)\n", fwd.qos);
        break;
    }
    case MQTTC_PUBREL:
        n = mqttc_encode_ack(out, sizeof out, MQTTC_PUBCOMP, p->u.packet_id);
        break;
    case MQTTC_PUBREC: /* the client received our QoS 2 copy: release it */
        n = mqttc_encode_ack(out, sizeof out, MQTTC_PUBREL, p->u.packet_id);
        break;
    default:
        break;
    }
    to_client(d, out, n);
}

static void on_event(void *user, const mqttc_event *ev)
{
    demo *d = user;
    switch (ev->type) {
    case MQTTC_EV_CONNECTED:
        printf("event: connected (session present %d)\n", ev->u.connected.session_present);
        break;
    case MQTTC_EV_SUBACK:
        printf("event: subscribed, granted QoS %u\n", ev->u.suback.codes[0]);
        d->subscribed = true;
        break;
    case MQTTC_EV_MESSAGE:
        printf("event: message on '%.*s' QoS %u: %.*s\n", ev->u.message.topic.len,
               ev->u.message.topic.data, ev->u.message.qos, (int)ev->u.message.payload_len,
               (const char *)ev->u.message.payload);
        d->received[ev->u.message.qos]++;
        break;
    case MQTTC_EV_PUBLISH_DONE:
        printf("event: publish id %u done (%s)\n", ev->u.publish_done.msg->packet_id,
               mqttc_strerror(ev->u.publish_done.status));
        d->done++;
        break;
    case MQTTC_EV_CLOSED:
        printf("event: closed (%s)\n", mqttc_strerror(ev->u.closed.reason));
        break;
    default:
        break;
    }
}

/* Move bytes both ways until neither side has anything to say. */
static void run(demo *d, uint32_t now)
{
    int rounds;
    for (rounds = 0; rounds < 64; rounds++) {
        mqttc_iov iov[MQTTC_ENGINE_SEGMENTS];
        size_t i, n = mqttc_engine_output(&d->eng, iov, MQTTC_ENGINE_SEGMENTS), total = 0;
        mqttc_packet p;
        for (i = 0; i < n; i++) {
            mqttc_decoder_feed(&d->broker_dec, iov[i].base, iov[i].len);
            total += iov[i].len;
        }
        mqttc_engine_consume(&d->eng, total, now);
        while (mqttc_decoder_next(&d->broker_dec, &p) > 0) {
            broker_handle(d, &p);
        }
        if (d->to_client.len == 0 && !mqttc_engine_want_write(&d->eng)) {
            return;
        }
        mqttc_engine_recv(&d->eng, d->to_client.data, d->to_client.len, now);
        d->to_client.len = 0;
    }
}

int main(void)
{
    static demo d;
    static uint8_t rx[1024], tx[2048];
    static uint16_t inbound[16];
    mqttc_engine_config cfg;
    mqttc_connect conn;
    mqttc_subscription sub = {{"demo/#", 6}, 2};
    mqttc_request req;
    mqttc_message msgs[3];
    const char *texts[3] = {"hello at QoS 0", "hello at QoS 1", "hello at QoS 2"};
    int q;

    memset(&cfg, 0, sizeof cfg);
    cfg.rx_buf = rx;
    cfg.rx_cap = sizeof rx;
    cfg.tx_buf = tx;
    cfg.tx_cap = sizeof tx;
    cfg.inbound_ids = inbound;
    cfg.inbound_cap = 16;
    cfg.on_event = on_event;
    cfg.user = &d;
    memset(&conn, 0, sizeof conn);
    conn.client_id.data = "selftest";
    conn.client_id.len = 8;
    conn.keepalive = 60;
    conn.clean_session = true;

    puts("mqttc protocol core self-test: engine <-> in-memory broker");
    if (mqttc_engine_init(&d.eng, &cfg) < 0 ||
        mqttc_decoder_init(&d.broker_dec, d.broker_rx, sizeof d.broker_rx, 0, false) < 0 ||
        mqttc_engine_start(&d.eng, &conn, 0) < 0) {
        puts("FAIL: setup");
        return 1;
    }
    d.broker_dec.decode = mqttc_decode; /* the broker reads client packets */
    memset(&req, 0, sizeof req);
    req.kind = MQTTC_REQ_SUBSCRIBE;
    req.subs = &sub;
    req.count = 1;
    mqttc_engine_request(&d.eng, &req);
    run(&d, 10);
    for (q = 0; q < 3; q++) {
        memset(&msgs[q], 0, sizeof msgs[q]);
        msgs[q].topic.data = "demo/hello";
        msgs[q].topic.len = 10;
        msgs[q].payload = (const uint8_t *)texts[q];
        msgs[q].payload_len = strlen(texts[q]);
        msgs[q].qos = (uint8_t)q;
        mqttc_engine_publish(&d.eng, &msgs[q]);
    }
    run(&d, 20);
    mqttc_engine_disconnect(&d.eng);
    run(&d, 30);
    if (!d.subscribed || d.done != 3 || d.received[0] != 1 || d.received[1] != 1 ||
        d.received[2] != 1 || mqttc_engine_state(&d.eng) != MQTTC_STATE_OFFLINE) {
        puts("FAIL: not every message arrived exactly once");
        return 1;
    }
    puts("PASS: 3 messages published and received exactly once at QoS 0, 1 and 2");
    return 0;
}
