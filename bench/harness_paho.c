/* The benchmark harness for Eclipse Paho C: the asynchronous API (MQTTAsync,
 * libpaho-mqtt3a), the one Paho offers for pipelined publishing (the
 * in-flight window is its connect option maxInflight). MQTTAsync always runs
 * its own send and receive threads and calls back on them; the callbacks here
 * only queue the event, and step() hands the queue to the driver on the main
 * thread (common.h), so the driver's code is the same as for the others.
 * Command line and method: common.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>

#include "common.h"

struct bench_client {
    MQTTAsync h;
    int idx;
    int inflight_max;
};

typedef enum { EV_CONNECTED, EV_SUBSCRIBED, EV_MESSAGE, EV_PUBLISHED, EV_ERROR } ev_type;

typedef struct event {
    ev_type type;
    int idx;
    int code;
    const char *what;
    MQTTAsync_message *msg;
    char *topic;
} event;

#define QCAP 65536
static event queue[QCAP];
static event batch[QCAP];
static unsigned qhead, qlen;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER; /* an event was queued */
static pthread_cond_t qroom = PTHREAD_COND_INITIALIZER; /* the queue was emptied */

static void deadline_in(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* From Paho's threads. */
static void push(event ev)
{
    struct timespec ts;
    deadline_in(&ts, 10000);
    pthread_mutex_lock(&qlock);
    while (qlen == QCAP) {
        if (pthread_cond_timedwait(&qroom, &qlock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (qlen == QCAP) { /* the main thread is stuck: report it, lose the event */
        queue[(qhead + qlen - 1) % QCAP] = (event){EV_ERROR, ev.idx, -1, "event queue full",
                                                   NULL, NULL};
    } else {
        queue[(qhead + qlen) % QCAP] = ev;
        qlen++;
    }
    pthread_cond_signal(&qcond);
    pthread_mutex_unlock(&qlock);
}

static void on_connect_ok(void *ctx, MQTTAsync_successData *r)
{
    bench_client *b = ctx;
    (void)r;
    push((event){EV_CONNECTED, b->idx, 0, NULL, NULL, NULL});
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
    bench_client *b = ctx;
    push((event){EV_ERROR, b->idx, r ? r->code : -1, "connect failed", NULL, NULL});
}

static void on_sub_ok(void *ctx, MQTTAsync_successData *r)
{
    bench_client *b = ctx;
    if (r != NULL && r->alt.qos == 0x80) {
        push((event){EV_ERROR, b->idx, 0x80, "subscription refused", NULL, NULL});
    } else {
        push((event){EV_SUBSCRIBED, b->idx, 0, NULL, NULL, NULL});
    }
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData *r)
{
    bench_client *b = ctx;
    push((event){EV_ERROR, b->idx, r ? r->code : -1, "subscribe failed", NULL, NULL});
}

static void on_pub_ok(void *ctx, MQTTAsync_successData *r)
{
    bench_client *b = ctx;
    (void)r;
    push((event){EV_PUBLISHED, b->idx, 0, NULL, NULL, NULL});
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
    bench_client *b = ctx;
    push((event){EV_ERROR, b->idx, r ? r->code : -1, "publish failed", NULL, NULL});
}

static void on_lost(void *ctx, char *cause)
{
    bench_client *b = ctx;
    (void)cause;
    push((event){EV_ERROR, b->idx, -1, "connection lost", NULL, NULL});
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
    bench_client *b = ctx;
    (void)topic_len;
    push((event){EV_MESSAGE, b->idx, 0, NULL, m, topic});
    return 1; /* ours now: freed after delivery in step() */
}

static int lib_init(char *buf, size_t n)
{
    MQTTAsync_nameValue *v = MQTTAsync_getVersionInfo();
    snprintf(buf, n, "unknown");
    for (; v != NULL && v->name != NULL; v++) {
        if (strcmp(v->name, "Version") == 0) {
            snprintf(buf, n, "%s", v->value);
        }
    }
    return 0;
}

static void lib_cleanup(void)
{
}

static bench_client *lib_create(const char *host, int port, int idx, const char *client_id,
                                int inflight_max)
{
    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
    MQTTAsync_connectOptions opts = MQTTAsync_connectOptions_initializer;
    char uri[300];
    int rc;
    bench_client *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return NULL;
    }
    b->idx = idx;
    b->inflight_max = inflight_max;
    snprintf(uri, sizeof uri, "tcp://%s:%d", host, port);
    co.MQTTVersion = MQTTVERSION_3_1_1;
    rc = MQTTAsync_createWithOptions(&b->h, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "MQTTAsync_create: %d\n", rc);
        free(b);
        return NULL;
    }
    rc = MQTTAsync_setCallbacks(b->h, b, on_lost, on_message, NULL);
    if (rc == MQTTASYNC_SUCCESS) {
        opts.keepAliveInterval = 60;
        opts.cleansession = 1;
        opts.maxInflight = inflight_max;
        opts.MQTTVersion = MQTTVERSION_3_1_1;
        opts.connectTimeout = 10;
        opts.onSuccess = on_connect_ok;
        opts.onFailure = on_connect_fail;
        opts.context = b;
        rc = MQTTAsync_connect(b->h, &opts);
    }
    if (rc != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "MQTTAsync_connect: %d\n", rc);
        MQTTAsync_destroy(&b->h);
        free(b);
        return NULL;
    }
    return b;
}

static int lib_subscribe(bench_client *b, const char *topic, int qos)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_sub_ok;
    ro.onFailure = on_sub_fail;
    ro.context = b;
    int rc = MQTTAsync_subscribe(b->h, topic, qos, &ro);
    return rc == MQTTASYNC_SUCCESS ? 0 : (rc < 0 ? rc : -rc);
}

static int lib_publish(bench_client *b, const char *topic, const void *p, size_t n, int qos)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess = on_pub_ok;
    ro.onFailure = on_pub_fail;
    ro.context = b;
    int rc = MQTTAsync_send(b->h, topic, (int)n, p, qos, 0, &ro);
    return rc == MQTTASYNC_SUCCESS ? 0 : (rc < 0 ? rc : -rc);
}

static void deliver(const event *ev)
{
    switch (ev->type) {
    case EV_CONNECTED:
        bench_on_connected(ev->idx);
        break;
    case EV_SUBSCRIBED:
        bench_on_subscribed(ev->idx);
        break;
    case EV_MESSAGE:
        bench_on_message(ev->idx, ev->msg->payload, (size_t)ev->msg->payloadlen);
        break;
    case EV_PUBLISHED:
        bench_on_published(ev->idx);
        break;
    case EV_ERROR:
        bench_on_error(ev->idx, ev->what, ev->code);
        break;
    }
}

static int lib_step(bench_client **c, int n, int timeout_ms)
{
    struct timespec ts;
    unsigned got = 0;
    (void)c;
    (void)n;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&qlock);
    while (qlen == 0) {
        if (pthread_cond_timedwait(&qcond, &qlock, &ts) == ETIMEDOUT) {
            break;
        }
    }
    while (qlen > 0) {
        batch[got++] = queue[qhead];
        qhead = (qhead + 1) % QCAP;
        qlen--;
    }
    pthread_cond_broadcast(&qroom);
    pthread_mutex_unlock(&qlock);
    for (unsigned i = 0; i < got; i++) {
        deliver(&batch[i]);
        if (batch[i].msg != NULL) {
            MQTTAsync_freeMessage(&batch[i].msg);
            MQTTAsync_free(batch[i].topic);
        }
    }
    return 0;
}

static void lib_destroy(bench_client *b)
{
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
    d.timeout = 1000;
    if (MQTTAsync_isConnected(b->h)) {
        MQTTAsync_disconnect(b->h, &d);
        /* MQTTAsync_destroy() discards a disconnect not yet sent: wait, bounded */
        for (int i = 0; i < 200 && MQTTAsync_isConnected(b->h); i++) {
            struct timespec ms = {0, 1000000L};
            nanosleep(&ms, NULL);
        }
    }
    MQTTAsync_destroy(&b->h);
    free(b);
}

int main(int argc, char **argv)
{
    static const bench_lib lib = {"paho",        lib_init,    lib_cleanup, lib_create,
                                  lib_subscribe, lib_publish, lib_step,    lib_destroy};
    return bench_main(&lib, argc, argv);
}
