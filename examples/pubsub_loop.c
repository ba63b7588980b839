/* The same exchange, driven by the caller's own poll() loop
 * (MQTTC_RUN_CALLER): no thread, callbacks run inside mqttc_client_process().
 *
 *   pubsub_loop [URI]        default mqtt://127.0.0.1:1883 */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <stdio.h>

#include "mqttc/client.h"

static int received;
static int failed;

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    (void)user;
    if (ev->type == MQTTC_CLIENT_EV_CONNECTED) {
        mqttc_client_subscribe(c, "mqttc/loop/#", 1);
    } else if (ev->type == MQTTC_CLIENT_EV_SUBSCRIBED) {
        mqttc_client_publish(c, "mqttc/loop/hello", "hello from my loop", 18, 1, false);
    } else if (ev->type == MQTTC_CLIENT_EV_MESSAGE) {
        printf("%.*s: %.*s\n", (int)ev->u.message.topic_len, ev->u.message.topic,
               (int)ev->u.message.payload_len, (const char *)ev->u.message.payload);
        received++;
    } else if (ev->type == MQTTC_CLIENT_EV_ERROR) {
        fprintf(stderr, "error: %s\n", mqttc_strerror(ev->u.error.code));
        failed = 1;
    }
}

int main(int argc, char **argv)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    int turns;

    mqttc_client_config_init(&cfg);
    cfg.uri = argc > 1 ? argv[1] : "mqtt://127.0.0.1:1883";
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.on_event = on_event;
    if (mqttc_client_create(&cfg, &c) < 0) {
        return 1;
    }
    mqttc_client_connect(c);
    /* Your loop: poll the client's descriptor with your others. Bounded here. */
    for (turns = 0; turns < 1000 && received == 0 && !failed; turns++) {
        struct pollfd p = {mqttc_client_fd(c), 0, 0};
        int want = mqttc_client_want(c), timeout = mqttc_client_next_timeout(c), ready = 0;
        p.events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                           ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
        if (timeout < 0 || timeout > 100) {
            timeout = 100;
        }
        if (poll(&p, p.fd >= 0 ? 1 : 0, timeout) > 0) {
            ready = ((p.revents & (POLLIN | POLLHUP | POLLERR)) ? MQTTC_WANT_READ : 0) |
                    ((p.revents & POLLOUT) ? MQTTC_WANT_WRITE : 0);
        }
        mqttc_client_process(c, ready);
    }
    mqttc_client_destroy(c);
    return received > 0 ? 0 : 1;
}
