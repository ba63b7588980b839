/* Publish and subscribe with the background thread (MQTTC_RUN_THREAD).
 *
 *   pubsub_thread [URI]      default mqtt://127.0.0.1:1883
 *
 * Subscribes to "mqttc/example/#", publishes three messages at QoS 0, 1 and
 * 2 to "mqttc/example/hello", prints what comes back and exits. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "mqttc/client.h"

typedef struct state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int received;
    int failed;
} state;

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    state *s = user;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        /* Calling the client from its own callback is allowed. */
        mqttc_client_subscribe(c, "mqttc/example/#", 2);
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        for (int qos = 0; qos <= 2; qos++) {
            char text[32];
            int n = snprintf(text, sizeof text, "hello at QoS %d", qos);
            mqttc_client_publish(c, "mqttc/example/hello", text, (size_t)n, qos, false);
        }
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        printf("%.*s: %.*s (QoS %u)\n", (int)ev->u.message.topic_len, ev->u.message.topic,
               (int)ev->u.message.payload_len, (const char *)ev->u.message.payload,
               ev->u.message.qos);
        pthread_mutex_lock(&s->lock);
        s->received++;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        break;
    case MQTTC_CLIENT_EV_ERROR:
        fprintf(stderr, "error: %s\n", mqttc_strerror(ev->u.error.code));
        pthread_mutex_lock(&s->lock);
        s->failed = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    state s = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    mqttc_client_config cfg;
    mqttc_client *c;
    struct timespec deadline;
    int rc;

    mqttc_client_config_init(&cfg);
    cfg.uri = argc > 1 ? argv[1] : "mqtt://127.0.0.1:1883";
    cfg.on_event = on_event;
    cfg.user = &s;
    rc = mqttc_client_create(&cfg, &c);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", cfg.uri, mqttc_strerror(rc));
        return 1;
    }
    mqttc_client_connect(c);

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&s.lock);
    while (s.received < 3 && !s.failed &&
           pthread_cond_timedwait(&s.cond, &s.lock, &deadline) == 0) {
    }
    rc = s.received == 3 ? 0 : 1;
    pthread_mutex_unlock(&s.lock);

    mqttc_client_destroy(c); /* sends DISCONNECT */
    return rc;
}
