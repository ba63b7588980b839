/* The benchmark harness for mqttc: the public client API (mqttc/client.h) in
 * caller-driven mode (MQTTC_RUN_CALLER), one poll() over every client's
 * descriptor, then mqttc_client_process() for those ready or due.
 * Command line and method: common.c. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mqttc/client.h"

#ifndef MQTTC_BENCH_VERSION
#define MQTTC_BENCH_VERSION "unknown"
#endif

struct bench_client {
    mqttc_client *c;
    int idx;
};

static struct pollfd *pfd;
static int pfd_cap;

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    bench_client *b = user;
    (void)c;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        bench_on_connected(b->idx);
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        if (ev->u.subscribed.count < 1 || ev->u.subscribed.granted[0] == 0x80) {
            bench_on_error(b->idx, "subscription refused", 0x80);
        } else {
            bench_on_subscribed(b->idx);
        }
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        bench_on_message(b->idx, ev->u.message.payload, ev->u.message.payload_len);
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
        bench_on_published(b->idx);
        break;
    case MQTTC_CLIENT_EV_DROPPED:
        bench_on_error(b->idx, "message dropped", ev->u.dropped.reason);
        break;
    case MQTTC_CLIENT_EV_DISCONNECTED:
        bench_on_error(b->idx, "disconnected", ev->u.disconnected.reason);
        break;
    case MQTTC_CLIENT_EV_ERROR: {
        char what[160];
        snprintf(what, sizeof what, "%s (kind %d, detail %d)", mqttc_strerror(ev->u.error.code),
                 (int)ev->u.error.kind, ev->u.error.detail);
        bench_on_error(b->idx, what, ev->u.error.code);
        break;
    }
    default:
        break;
    }
}

static int lib_init(char *buf, size_t n)
{
    snprintf(buf, n, "%s", MQTTC_BENCH_VERSION);
    return 0;
}

static void lib_cleanup(void)
{
    free(pfd);
    pfd = NULL;
    pfd_cap = 0;
}

static bench_client *lib_create(const char *host, int port, int idx, const char *client_id,
                                int inflight_max)
{
    mqttc_client_config cfg;
    bench_client *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return NULL;
    }
    b->idx = idx;
    mqttc_client_config_init(&cfg);
    cfg.host = host;
    cfg.port = (uint16_t)port;
    cfg.client_id = client_id;
    cfg.inflight_max = (uint16_t)inflight_max;
    cfg.queue_max_msgs = 100000;
    cfg.queue_max_bytes = (size_t)1 << 30;
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.on_event = on_event;
    cfg.user = b;
    if (mqttc_client_create(&cfg, &b->c) != 0) {
        free(b);
        return NULL;
    }
    if (mqttc_client_connect(b->c) != 0) {
        mqttc_client_destroy(b->c);
        free(b);
        return NULL;
    }
    return b;
}

static int lib_subscribe(bench_client *b, const char *topic, int qos)
{
    return mqttc_client_subscribe(b->c, topic, qos);
}

static int lib_publish(bench_client *b, const char *topic, const void *p, size_t n, int qos)
{
    return mqttc_client_publish(b->c, topic, p, n, qos, false);
}

static int lib_step(bench_client **c, int n, int timeout_ms)
{
    int timeout = timeout_ms;
    if (n > pfd_cap) {
        struct pollfd *p = realloc(pfd, (size_t)n * sizeof *p);
        if (p == NULL) {
            return -1;
        }
        pfd = p;
        pfd_cap = n;
    }
    for (int i = 0; i < n; i++) {
        int want = mqttc_client_want(c[i]->c), t = mqttc_client_next_timeout(c[i]->c);
        pfd[i].fd = mqttc_client_fd(c[i]->c);
        pfd[i].events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                                ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
        pfd[i].revents = 0;
        if (t >= 0 && t < timeout) {
            timeout = t;
        }
    }
    if (poll(pfd, (nfds_t)n, timeout) < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int ready = ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) ? MQTTC_WANT_READ : 0) |
                    ((pfd[i].revents & (POLLOUT | POLLHUP | POLLERR)) ? MQTTC_WANT_WRITE : 0);
        if (ready != 0 || mqttc_client_next_timeout(c[i]->c) == 0) {
            if (mqttc_client_process(c[i]->c, ready) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

static void lib_destroy(bench_client *b)
{
    mqttc_client_destroy(b->c);
    free(b);
}

int main(int argc, char **argv)
{
    static const bench_lib lib = {"mqttc",       lib_init,    lib_cleanup, lib_create,
                                  lib_subscribe, lib_publish, lib_step,    lib_destroy};
    return bench_main(&lib, argc, argv);
}
