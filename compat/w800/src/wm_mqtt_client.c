/* The W800 MQTT client (wm_mqtt_client.h): a thin layer over mqttc_client.
 *
 * As in the SDK, one MQTT task serves every client: each handle wraps an
 * mqttc_client in MQTTC_RUN_CALLER mode, and one shared thread polls every
 * client's descriptor and calls mqttc_client_process(). Native events, raised
 * on that thread, become WM_MQTT_EV events posted with wm_event_send(), so
 * the application's callbacks run on the event task, never on the MQTT task.
 *
 * The MQTT task and its client list are process-global, like the SDK's task;
 * that state lives in this compat layer only (the native library has none),
 * in `g_task`, guarded by g_task.mu. Lock order: g_task.mu, then a client's
 * own lock (inside mqttc). Every API call that gives a client work writes a
 * byte to the task's wake-up pipe. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqttc/client.h"
#include "wm_event_priv.h"
#include "wm_mqtt_client.h"

WM_EVENT_DEFINE_GROUP(WM_MQTT_EV);

/* The largest piece a DATA event can describe (uint16_t lengths). */
#define W800_MAX_PIECE 65535u
/* Outbound QoS 1/2 window; more unacknowledged publishes are refused. */
#define W800_INFLIGHT 20u

typedef struct w800_client {
    wm_mqtt_client_t pub; /* first: wm_mqtt_client_handle_t points here */
    bool debug;
    struct w800_client *next; /* in g_task.clients */
    unsigned in_use;          /* the task is processing it (g_task.mu) */
} w800_client;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* a client's in_use dropped */
    w800_client *clients;
    size_t nclients;
    bool running, stop;
    bool stopping; /* the last client left; the task is being joined */
    pthread_t task;
    int wake[2]; /* valid while running */
} g_task = {.mu = PTHREAD_MUTEX_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER,
            .wake = {-1, -1}};

static w800_client *impl(wm_mqtt_client_handle_t h)
{
    return (w800_client *)h;
}

static int map_err(int rc)
{
    switch (rc) {
    case MQTTC_ERR_INVALID_ARG:
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    case MQTTC_ERR_BAD_UTF8:
        return WM_MQTT_CLIENT_ERROR_BAD_UTF8_STRING;
    case MQTTC_ERR_BAD_QOS:
        return WM_MQTT_CLIENT_ERROR_BAD_QOS;
    case MQTTC_ERR_QUEUE_FULL:
        return WM_MQTT_CLIENT_ERROR_MAX_MESSAGES_INFLIGHT;
    case MQTTC_ERR_NOT_CONNECTED:
        return WM_MQTT_CLIENT_ERROR_DISCONNECTED;
    case MQTTC_ERR_BAD_WILL:
        return WM_MQTT_CLIENT_ERROR_0_LEN_WILL_TOPIC;
    case MQTTC_ERR_BAD_URI:
        return WM_MQTT_CLIENT_ERROR_BAD_PROTOCOL;
    case MQTTC_ERR_UNSUPPORTED:
        return WM_MQTT_CLIENT_ERROR_SSL_NOT_SUPPORTED;
    default:
        return rc < 0 ? WM_MQTT_CLIENT_ERROR_FAILURE : rc;
    }
}

static void dispose_data(void *data)
{
    wm_mqtt_event_data_t *d = data;
    free(d->mqtt_client_data_info.topic);
    free(d->mqtt_client_data_info.payload);
}

static char *dup_bytes(const void *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s != NULL) {
        if (len > 0) {
            memcpy(s, p, len);
        }
        s[len] = '\0';
    }
    return s;
}

static void post_handle_event(w800_client *w, int event)
{
    wm_mqtt_event_data_t d;
    memset(&d, 0, sizeof d);
    d.mqtt_client_disconnect_info.client_handle = w->pub.client;
    wm_event_send(WM_MQTT_EV, event, &d, sizeof d);
}

/* One DATA event per piece of at most W800_MAX_PIECE bytes (one for an empty payload). */
static void post_message(w800_client *w, const mqttc_client_event *ev)
{
    size_t off = 0;
    do {
        size_t n = ev->u.message.payload_len - off;
        if (n > W800_MAX_PIECE) {
            n = W800_MAX_PIECE;
        }
        wm_mqtt_event_data_t d;
        memset(&d, 0, sizeof d);
        d.mqtt_client_data_info.topic = dup_bytes(ev->u.message.topic, ev->u.message.topic_len);
        d.mqtt_client_data_info.topic_len = (uint16_t)ev->u.message.topic_len;
        d.mqtt_client_data_info.payload = dup_bytes(ev->u.message.payload + off, n);
        d.mqtt_client_data_info.payload_len = (uint16_t)n;
        d.mqtt_client_data_info.msgid = ev->u.message.msg_id;
        d.mqtt_client_data_info.qos = ev->u.message.qos;
        d.mqtt_client_data_info.dup = ev->u.message.dup;
        d.mqtt_client_data_info.retained = ev->u.message.retain;
        d.mqtt_client_data_info.client_handle = w->pub.client;
        if (d.mqtt_client_data_info.topic == NULL || d.mqtt_client_data_info.payload == NULL) {
            fprintf(stderr, "wm_mqtt_client: out of memory, message on %.*s lost\n",
                    (int)ev->u.message.topic_len, ev->u.message.topic);
            dispose_data(&d);
            return;
        }
        /* The bus owns the copies now; it frees them when no callback takes them. */
        wm_event__send_owned(WM_MQTT_EV, WM_EVENT_MQTT_CLIENT_DATA, &d, sizeof d, dispose_data);
        off += n;
    } while (off < ev->u.message.payload_len);
}

/* Runs on the mqttc client's thread. */
static void on_native_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    (void)c;
    w800_client *w = user;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        post_handle_event(w, WM_EVENT_MQTT_CLIENT_CONNECTED);
        break;
    case MQTTC_CLIENT_EV_DISCONNECTED:
        post_handle_event(w, WM_EVENT_MQTT_CLIENT_DISCONNECTED);
        break;
    case MQTTC_CLIENT_EV_ERROR:
        /* A failed attempt (no session had been accepted): the SDK reports it
         * as DISCONNECTED; a lost session already gave DISCONNECTED. */
        if (ev->u.error.kind == MQTTC_ERRKIND_CONNECT ||
            ev->u.error.kind == MQTTC_ERRKIND_CONNACK) {
            post_handle_event(w, WM_EVENT_MQTT_CLIENT_DISCONNECTED);
        }
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        post_message(w, ev);
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
        if (ev->u.published.qos > 0) { /* the SDK: PUBACK / PUBCOMP only */
            wm_mqtt_event_data_t d;
            memset(&d, 0, sizeof d);
            d.mqtt_client_published_info.msg_id = ev->u.published.msg_id;
            wm_event_send(WM_MQTT_EV, WM_EVENT_MQTT_CLIENT_PUBLISHED, &d, sizeof d);
        }
        break;
    default:
        break;
    }
}

static void on_log(mqttc_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"E", "W", "I", "D"};
    (void)user;
    fprintf(stderr, "[wm_mqtt %s] %s\n", names[(unsigned)level & 3u], msg);
}

static bool known_scheme(const char *uri)
{
    static const char *const schemes[] = {"tcp://", "mqtt://", "ssl://", "mqtts://", "ws://",
                                          "wss://"};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        if (strncmp(uri, schemes[i], strlen(schemes[i])) == 0) {
            return true;
        }
    }
    return false;
}

static void tls_from_config(mqttc_tls_config *tls, const wm_mqtt_client_config_t *config)
{
    switch (config->auth_mode) {
    case WM_MQTT_CLIENT_AUTH_MODE_AUTH_SERVER_CERT:
        tls->ca = config->ca;
        tls->verify = MQTTC_TLS_VERIFY_REQUIRED;
        break;
    case WM_MQTT_CLIENT_AUTH_MODE_PROVIDE_CLIENT_CERT:
        tls->cert = config->cert;
        tls->key = config->key;
        tls->verify = MQTTC_TLS_VERIFY_NONE;
        break;
    case WM_MQTT_CLIENT_AUTH_MODE_MUTUAL_AUTH:
        tls->ca = config->ca;
        tls->cert = config->cert;
        tls->key = config->key;
        tls->verify = MQTTC_TLS_VERIFY_REQUIRED;
        break;
    case WM_MQTT_CLIENT_AUTH_MODE_NOT_CERT:
    default:
        tls->verify = MQTTC_TLS_VERIFY_NONE;
        break;
    }
    tls->alpn = (const char *const *)config->alpn;
}

/* Checks the SDK makes before anything else; WM_MQTT_CLIENT_ERROR_SUCCESS or a code. */
static int check_config(const wm_mqtt_client_config_t *config)
{
    if (config == NULL || config->uri == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    if (!known_scheme(config->uri)) {
        return WM_MQTT_CLIENT_ERROR_BAD_PROTOCOL;
    }
    if (config->will_topic != NULL && config->will_topic[0] == '\0') {
        return WM_MQTT_CLIENT_ERROR_0_LEN_WILL_TOPIC;
    }
    if (config->will_topic != NULL && config->will_qos > 2) {
        return WM_MQTT_CLIENT_ERROR_BAD_QOS;
    }
    return WM_MQTT_CLIENT_ERROR_SUCCESS;
}

/* ---- the MQTT task ---- */

static void task_wake(void)
{
    pthread_mutex_lock(&g_task.mu);
    if (g_task.running) {
        ssize_t r = write(g_task.wake[1], "", 1);
        (void)r; /* a full pipe wakes the task as well */
    }
    pthread_mutex_unlock(&g_task.mu);
}

/* After a call that may have given a client work. */
static int wake_after(int rc)
{
    task_wake();
    return rc;
}

static int poll_flags(int want)
{
    return ((want & MQTTC_WANT_READ) ? POLLIN : 0) | ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0);
}

static int ready_flags(short revents)
{
    int r = 0;
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
        r |= MQTTC_WANT_READ;
    }
    if (revents & (POLLOUT | POLLERR | POLLHUP)) {
        r |= MQTTC_WANT_WRITE;
    }
    return r;
}

/* One turn: poll every client and the wake-up pipe, then process each client. */
static void task_turn(struct pollfd **pfd, w800_client ***cl, size_t *cap)
{
    pthread_mutex_lock(&g_task.mu);
    size_t n = g_task.nclients;
    if (n + 1 > *cap) {
        struct pollfd *np = realloc(*pfd, (n + 1) * sizeof **pfd);
        if (np != NULL) {
            *pfd = np;
        }
        w800_client **nc = realloc(*cl, (n + 1) * sizeof **cl);
        if (nc != NULL) {
            *cl = nc;
        }
        if (np == NULL || nc == NULL) {
            pthread_mutex_unlock(&g_task.mu);
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL); /* out of memory: try again shortly */
            return;
        }
        *cap = n + 1;
    }
    int timeout = -1;
    (*pfd)[0] = (struct pollfd){.fd = g_task.wake[0], .events = POLLIN, .revents = 0};
    size_t i = 0;
    for (w800_client *w = g_task.clients; w != NULL; w = w->next, i++) {
        mqttc_client *c = w->pub.client;
        int fd = mqttc_client_fd(c);
        (*pfd)[i + 1] = (struct pollfd){.fd = fd, .events = (short)poll_flags(mqttc_client_want(c)),
                                        .revents = 0};
        int t = mqttc_client_next_timeout(c);
        if (t >= 0 && (timeout < 0 || t < timeout)) {
            timeout = t;
        }
        (*cl)[i] = w;
        w->in_use++;
    }
    pthread_mutex_unlock(&g_task.mu);

    poll(*pfd, n + 1, timeout);
    if ((*pfd)[0].revents & POLLIN) {
        char drain[64];
        while (read(g_task.wake[0], drain, sizeof drain) > 0) {
        }
    }
    for (i = 0; i < n; i++) {
        /* Every client gets a turn: timers that fell due, work queued by other threads. */
        int ready = (*pfd)[i + 1].fd >= 0 ? ready_flags((*pfd)[i + 1].revents) : 0;
        mqttc_client_process((*cl)[i]->pub.client, ready);
    }
    pthread_mutex_lock(&g_task.mu);
    for (i = 0; i < n; i++) {
        (*cl)[i]->in_use--;
    }
    pthread_cond_broadcast(&g_task.idle);
    pthread_mutex_unlock(&g_task.mu);
}

static void *task_main(void *arg)
{
    (void)arg;
    struct pollfd *pfd = NULL;
    w800_client **cl = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&g_task.mu);
    while (!g_task.stop) {
        pthread_mutex_unlock(&g_task.mu);
        task_turn(&pfd, &cl, &cap);
        pthread_mutex_lock(&g_task.mu);
    }
    pthread_mutex_unlock(&g_task.mu);
    free(pfd);
    free(cl);
    return NULL;
}

/* Add a client, starting the task with the first one. */
static int task_add(w800_client *w)
{
    int rc = 0;
    pthread_mutex_lock(&g_task.mu);
    while (g_task.stopping) {
        pthread_cond_wait(&g_task.idle, &g_task.mu);
    }
    if (!g_task.running) {
        if (pipe(g_task.wake) != 0) {
            rc = -1;
        } else {
            for (int k = 0; k < 2; k++) {
                fcntl(g_task.wake[k], F_SETFL, O_NONBLOCK);
                fcntl(g_task.wake[k], F_SETFD, FD_CLOEXEC);
            }
            g_task.stop = false;
            if (pthread_create(&g_task.task, NULL, task_main, NULL) != 0) {
                close(g_task.wake[0]);
                close(g_task.wake[1]);
                rc = -1;
            } else {
                g_task.running = true;
            }
        }
    }
    if (rc == 0) {
        w->next = g_task.clients;
        g_task.clients = w;
        g_task.nclients++;
        ssize_t r = write(g_task.wake[1], "", 1);
        (void)r;
    }
    pthread_mutex_unlock(&g_task.mu);
    return rc;
}

/* Remove a client once the task no longer uses it; stop the task with the last one. */
static void task_remove(w800_client *w)
{
    pthread_mutex_lock(&g_task.mu);
    for (w800_client **p = &g_task.clients; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            g_task.nclients--;
            break;
        }
    }
    ssize_t r = write(g_task.wake[1], "", 1);
    while (w->in_use > 0) {
        pthread_cond_wait(&g_task.idle, &g_task.mu);
    }
    bool join = g_task.nclients == 0;
    if (join) {
        g_task.stop = true;
        g_task.running = false;
        g_task.stopping = true; /* task_add() waits until the task is gone */
        r = write(g_task.wake[1], "", 1); /* after `stop`: the task may be back in poll */
    }
    (void)r;
    pthread_mutex_unlock(&g_task.mu);
    if (join) {
        pthread_join(g_task.task, NULL);
        pthread_mutex_lock(&g_task.mu);
        close(g_task.wake[0]);
        close(g_task.wake[1]);
        g_task.wake[0] = g_task.wake[1] = -1;
        g_task.stopping = false;
        pthread_cond_broadcast(&g_task.idle);
        pthread_mutex_unlock(&g_task.mu);
    }
}

wm_mqtt_client_handle_t wm_mqtt_client_init(wm_mqtt_client_config_t *config)
{
    int rc = check_config(config);
    if (rc != WM_MQTT_CLIENT_ERROR_SUCCESS) {
        if (config != NULL && config->debug) {
            fprintf(stderr, "[wm_mqtt E] init: error %d\n", rc);
        }
        return NULL;
    }
    w800_client *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return NULL;
    }
    w->debug = config->debug;
    mqttc_client_config cfg;
    mqttc_client_config_init(&cfg);
    cfg.uri = config->uri;
    cfg.client_id = config->client_id;
    cfg.username = config->username;
    cfg.password = config->password;
    if (config->will_topic != NULL) {
        cfg.will_topic = config->will_topic;
        cfg.will_payload = config->will_msg;
        cfg.will_payload_len = config->will_msg != NULL ? strlen(config->will_msg) : 0;
        cfg.will_qos = config->will_qos;
        cfg.will_retain = config->will_retain != 0;
    }
    if (config->keep_alive != 0) {
        cfg.keepalive = config->keep_alive;
    }
    cfg.clean_session = config->clean_session != 0;
    cfg.inflight_max = W800_INFLIGHT;
    cfg.queue_max_msgs = W800_INFLIGHT; /* beyond the window: MAX_MESSAGES_INFLIGHT */
    tls_from_config(&cfg.tls, config);
    cfg.run_mode = MQTTC_RUN_CALLER; /* driven by the MQTT task */
    cfg.on_event = on_native_event;
    cfg.user = w;
    if (config->debug) {
        cfg.on_log = on_log;
        cfg.log_level = MQTTC_LOG_DEBUG;
    }
    mqttc_client *c = NULL;
    rc = mqttc_client_create(&cfg, &c);
    if (rc != 0) {
        if (config->debug) {
            fprintf(stderr, "[wm_mqtt E] init: %s\n", mqttc_strerror(rc));
        }
        free(w);
        return NULL;
    }
    w->pub.client = c;
    if (task_add(w) != 0) {
        mqttc_client_destroy(c);
        free(w);
        return NULL;
    }
    return &w->pub;
}

int wm_mqtt_client_deinit(wm_mqtt_client_handle_t handle)
{
    if (handle == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    w800_client *w = impl(handle);
    mqttc_client *c = w->pub.client;
    task_remove(w); /* the task no longer touches it */
    bool was_ready = mqttc_client_ready(c);
    mqttc_client_destroy(c); /* sends DISCONNECT itself; no native event after this */
    if (was_ready) {
        post_handle_event(w, WM_EVENT_MQTT_CLIENT_DISCONNECTED);
    }
    free(w);
    return WM_MQTT_CLIENT_ERROR_SUCCESS;
}

int wm_mqtt_client_connect(wm_mqtt_client_handle_t handle)
{
    if (handle == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    wm_event_init(); /* the event task must run before the first event */
    return wake_after(map_err(mqttc_client_connect(handle->client)));
}

int wm_mqtt_client_disconnect(wm_mqtt_client_handle_t handle)
{
    if (handle == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    return wake_after(map_err(mqttc_client_disconnect(handle->client)));
}

int wm_mqtt_client_reconnect(wm_mqtt_client_handle_t handle)
{
    if (handle == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    return wake_after(map_err(mqttc_client_reconnect(handle->client)));
}

int wm_mqtt_client_subscribe(wm_mqtt_client_handle_t handle, const char *topic, uint8_t qos)
{
    if (handle == NULL || topic == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    if (qos > 2) {
        return WM_MQTT_CLIENT_ERROR_BAD_QOS;
    }
    return wake_after(map_err(mqttc_client_subscribe(handle->client, topic, qos)));
}

int wm_mqtt_client_unsubscribe(wm_mqtt_client_handle_t handle, const char *topic)
{
    if (handle == NULL || topic == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    return wake_after(map_err(mqttc_client_unsubscribe(handle->client, topic)));
}

int wm_mqtt_client_publish(wm_mqtt_client_handle_t handle, const char *topic, const char *message,
                           uint16_t msg_len, uint8_t qos, uint8_t retain)
{
    if (handle == NULL || topic == NULL) {
        return WM_MQTT_CLIENT_ERROR_NULL_PARAMETER;
    }
    if (qos > 2) {
        return WM_MQTT_CLIENT_ERROR_BAD_QOS;
    }
    /* The W800 contract: nothing is queued while offline (mqttc would queue). */
    if (!mqttc_client_ready(handle->client)) {
        return WM_MQTT_CLIENT_ERROR_DISCONNECTED;
    }
    size_t len = 0;
    if (message != NULL) {
        len = msg_len != 0 ? msg_len : strlen(message);
    }
    int rc = mqttc_client_publish(handle->client, topic, message, len, qos, retain != 0);
    return wake_after(map_err(rc));
}
