/* The benchmark harness for libmosquitto: no thread of its own (no
 * mosquitto_loop_start); one poll() over every client's socket, then
 * mosquitto_loop_read / loop_write / loop_misc, as its documentation describes
 * for an external loop. Command line and method: common.c. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>

#include "common.h"

struct bench_client {
    struct mosquitto *m;
    int idx;
};

static struct pollfd *pfd;
static int pfd_cap;

static void on_connect(struct mosquitto *m, void *user, int rc)
{
    bench_client *b = user;
    (void)m;
    if (rc == 0) {
        bench_on_connected(b->idx);
    } else {
        bench_on_error(b->idx, "connection refused", rc);
    }
}

static void on_disconnect(struct mosquitto *m, void *user, int rc)
{
    bench_client *b = user;
    (void)m;
    if (rc != 0) {
        bench_on_error(b->idx, "disconnected", rc);
    }
}

static void on_subscribe(struct mosquitto *m, void *user, int mid, int n, const int *granted)
{
    bench_client *b = user;
    (void)m;
    (void)mid;
    if (n < 1 || granted[0] == 0x80) {
        bench_on_error(b->idx, "subscription refused", 0x80);
    } else {
        bench_on_subscribed(b->idx);
    }
}

static void on_message(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
    bench_client *b = user;
    (void)m;
    bench_on_message(b->idx, msg->payload, (size_t)msg->payloadlen);
}

static void on_publish(struct mosquitto *m, void *user, int mid)
{
    bench_client *b = user;
    (void)m;
    (void)mid;
    bench_on_published(b->idx);
}

static int lib_init(char *buf, size_t n)
{
    int maj, min, rev;
    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        return -1;
    }
    mosquitto_lib_version(&maj, &min, &rev);
    snprintf(buf, n, "%d.%d.%d", maj, min, rev);
    return 0;
}

static void lib_cleanup(void)
{
    free(pfd);
    pfd = NULL;
    pfd_cap = 0;
    mosquitto_lib_cleanup();
}

static bench_client *lib_create(const char *host, int port, int idx, const char *client_id,
                                int inflight_max)
{
    bench_client *b = calloc(1, sizeof *b);
    int rc;
    if (b == NULL) {
        return NULL;
    }
    b->idx = idx;
    b->m = mosquitto_new(client_id, true, b);
    if (b->m == NULL) {
        free(b);
        return NULL;
    }
    mosquitto_int_option(b->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    /* off by default in libmosquitto; mqttc and Paho set it: Nagle would add
     * 40 ms delayed-ACK stalls to a ping-pong */
    mosquitto_int_option(b->m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_max_inflight_messages_set(b->m, (unsigned)inflight_max);
    mosquitto_connect_callback_set(b->m, on_connect);
    mosquitto_disconnect_callback_set(b->m, on_disconnect);
    mosquitto_subscribe_callback_set(b->m, on_subscribe);
    mosquitto_message_callback_set(b->m, on_message);
    mosquitto_publish_callback_set(b->m, on_publish);
    rc = mosquitto_connect_async(b->m, host, port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "mosquitto_connect_async: %s\n", mosquitto_strerror(rc));
        mosquitto_destroy(b->m);
        free(b);
        return NULL;
    }
    return b;
}

static int lib_subscribe(bench_client *b, const char *topic, int qos)
{
    int rc = mosquitto_subscribe(b->m, NULL, topic, qos);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -rc;
}

static int lib_publish(bench_client *b, const char *topic, const void *p, size_t n, int qos)
{
    int rc = mosquitto_publish(b->m, NULL, topic, (int)n, p, qos, false);
    return rc == MOSQ_ERR_SUCCESS ? 0 : -rc;
}

static int lib_step(bench_client **c, int n, int timeout_ms)
{
    if (n > pfd_cap) {
        struct pollfd *p = realloc(pfd, (size_t)n * sizeof *p);
        if (p == NULL) {
            return -1;
        }
        pfd = p;
        pfd_cap = n;
    }
    for (int i = 0; i < n; i++) {
        pfd[i].fd = mosquitto_socket(c[i]->m);
        pfd[i].events = (short)(POLLIN | (mosquitto_want_write(c[i]->m) ? POLLOUT : 0));
        pfd[i].revents = 0;
    }
    if (poll(pfd, (nfds_t)n, timeout_ms) < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int rc = MOSQ_ERR_SUCCESS;
        if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
            rc = mosquitto_loop_read(c[i]->m, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS && (pfd[i].revents & POLLOUT)) {
            rc = mosquitto_loop_write(c[i]->m, 1);
        }
        if (rc == MOSQ_ERR_SUCCESS) {
            rc = mosquitto_loop_misc(c[i]->m);
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "client %d: %s\n", c[i]->idx, mosquitto_strerror(rc));
            return -1;
        }
    }
    return 0;
}

static void lib_destroy(bench_client *b)
{
    /* DISCONNECT is written at once when the socket can take it */
    mosquitto_disconnect(b->m);
    mosquitto_destroy(b->m);
    free(b);
}

int main(int argc, char **argv)
{
    static const bench_lib lib = {"mosquitto",   lib_init,    lib_cleanup, lib_create,
                                  lib_subscribe, lib_publish, lib_step,    lib_destroy};
    return bench_main(&lib, argc, argv);
}
