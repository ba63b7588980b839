/* The W800 SDK face (compat/w800): constants, the event bus, and the MQTT
 * client against mosquitto, including DATA events split at 65,535 bytes and
 * every error code the face maps. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "broker.h"
#include "wm_mqtt_client.h"

#define TIMEOUT_MS 10000
#define MAX_REC 512

/* ---- recorder: every callback appends here (static storage, guarded by mu) ---- */

typedef struct rec_ev {
    wm_event_group_t group;
    int event;
    void *priv;
    bool on_main_thread;
    int value;             /* first int of the data (bus tests) */
    bool data_null;
    void *client_handle;   /* DISCONNECTED/CONNECTED/DATA */
    int msg_id;            /* PUBLISHED msg_id, DATA msgid */
    char topic[128];
    size_t topic_len, payload_len;
    char payload_head[16];
    uint8_t qos;
    bool payload_ok;       /* DATA: payload matched the expected pattern */
} rec_ev;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rec_ev ev[MAX_REC];
    size_t n;
    size_t pattern_off; /* bytes of the big message seen so far */
} g_rec = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static pthread_t g_main;
static broker g_broker;
static char g_uri[64];

static WM_EVENT_DEFINE_GROUP(TEST_GROUP_A);
static WM_EVENT_DEFINE_GROUP(TEST_GROUP_B);
/* Same text as TEST_GROUP_A, another address: a different group. Not const:
 * clang -O2 may give a const array the address of the identical string
 * literal behind TEST_GROUP_A; a modifiable object is always distinct. */
static char g_text_a[] = "TEST_GROUP_A";

static char pattern_byte(size_t i)
{
    return (char)('a' + (i * 7 + i / 65535) % 26);
}

static rec_ev *rec_append(wm_event_group_t group, int event, void *priv)
{
    if (g_rec.n == MAX_REC) {
        return NULL;
    }
    rec_ev *r = &g_rec.ev[g_rec.n++];
    memset(r, 0, sizeof *r);
    r->group = group;
    r->event = event;
    r->priv = priv;
    r->on_main_thread = pthread_equal(pthread_self(), g_main) != 0;
    return r;
}

static void bus_cb(wm_event_group_t group, int event, void *data, void *priv)
{
    pthread_mutex_lock(&g_rec.mu);
    rec_ev *r = rec_append(group, event, priv);
    if (r != NULL) {
        r->data_null = data == NULL;
        if (data != NULL) {
            memcpy(&r->value, data, sizeof r->value);
        }
    }
    pthread_cond_broadcast(&g_rec.cv);
    pthread_mutex_unlock(&g_rec.mu);
}

/* The application's MQTT handler: records and frees DATA copies as the SDK's example does. */
static void mqtt_cb(wm_event_group_t group, int event, void *data, void *priv)
{
    wm_mqtt_event_data_t *d = data;
    pthread_mutex_lock(&g_rec.mu);
    rec_ev *r = rec_append(group, event, priv);
    if (r != NULL) {
        switch (event) {
        case WM_EVENT_MQTT_CLIENT_CONNECTED:
        case WM_EVENT_MQTT_CLIENT_DISCONNECTED:
            r->client_handle = d->mqtt_client_disconnect_info.client_handle;
            break;
        case WM_EVENT_MQTT_CLIENT_PUBLISHED:
            r->msg_id = d->mqtt_client_published_info.msg_id;
            break;
        case WM_EVENT_MQTT_CLIENT_DATA: {
            r->client_handle = d->mqtt_client_data_info.client_handle;
            r->msg_id = d->mqtt_client_data_info.msgid;
            r->qos = d->mqtt_client_data_info.qos;
            r->topic_len = d->mqtt_client_data_info.topic_len;
            r->payload_len = d->mqtt_client_data_info.payload_len;
            snprintf(r->topic, sizeof r->topic, "%.*s", (int)r->topic_len,
                     d->mqtt_client_data_info.topic);
            snprintf(r->payload_head, sizeof r->payload_head, "%.*s", (int)r->payload_len,
                     d->mqtt_client_data_info.payload);
            if (strcmp(r->topic, "w800/big") == 0) {
                r->payload_ok = true;
                for (size_t i = 0; i < r->payload_len; i++) {
                    char want = pattern_byte(g_rec.pattern_off + i);
                    if (d->mqtt_client_data_info.payload[i] != want) {
                        r->payload_ok = false;
                        break;
                    }
                }
                g_rec.pattern_off += r->payload_len;
            }
            break;
        }
        default:
            break;
        }
    }
    if (event == WM_EVENT_MQTT_CLIENT_DATA) {
        free(d->mqtt_client_data_info.topic);
        free(d->mqtt_client_data_info.payload);
    }
    pthread_cond_broadcast(&g_rec.cv);
    pthread_mutex_unlock(&g_rec.mu);
}

static void rec_reset(void)
{
    pthread_mutex_lock(&g_rec.mu);
    g_rec.n = 0;
    g_rec.pattern_off = 0;
    pthread_mutex_unlock(&g_rec.mu);
}

static size_t count_locked(int event, const char *topic)
{
    size_t k = 0;
    for (size_t i = 0; i < g_rec.n; i++) {
        if (g_rec.ev[i].event == event &&
            (topic == NULL || strcmp(g_rec.ev[i].topic, topic) == 0)) {
            k++;
        }
    }
    return k;
}

static size_t rec_count(int event, const char *topic)
{
    pthread_mutex_lock(&g_rec.mu);
    size_t k = count_locked(event, topic);
    pthread_mutex_unlock(&g_rec.mu);
    return k;
}

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

/* Wait until `n` events of type `event` (on `topic` if given) were recorded. */
static bool rec_wait(int event, const char *topic, size_t n, int ms)
{
    struct timespec dl;
    deadline_in(&dl, ms);
    pthread_mutex_lock(&g_rec.mu);
    bool ok = true;
    while (count_locked(event, topic) < n) {
        if (pthread_cond_timedwait(&g_rec.cv, &g_rec.mu, &dl) != 0) {
            ok = count_locked(event, topic) >= n;
            break;
        }
    }
    pthread_mutex_unlock(&g_rec.mu);
    return ok;
}

/* Total recorded events. */
static size_t rec_total(void)
{
    pthread_mutex_lock(&g_rec.mu);
    size_t n = g_rec.n;
    pthread_mutex_unlock(&g_rec.mu);
    return n;
}

static bool rec_wait_total(size_t n, int ms)
{
    struct timespec dl;
    deadline_in(&dl, ms);
    pthread_mutex_lock(&g_rec.mu);
    while (g_rec.n < n && pthread_cond_timedwait(&g_rec.cv, &g_rec.mu, &dl) == 0) {
    }
    bool ok = g_rec.n >= n;
    pthread_mutex_unlock(&g_rec.mu);
    return ok;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A copy of the recorded event `i` (0-based) of type `event`; false if none. */
static bool rec_get(int event, size_t nth, rec_ev *out)
{
    bool found = false;
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&g_rec.mu);
    for (size_t i = 0; i < g_rec.n; i++) {
        if (g_rec.ev[i].event == event && nth-- == 0) {
            *out = g_rec.ev[i];
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&g_rec.mu);
    return found;
}

static bool published_seen(int msg_id)
{
    bool seen = false;
    pthread_mutex_lock(&g_rec.mu);
    for (size_t i = 0; i < g_rec.n; i++) {
        seen |= g_rec.ev[i].event == WM_EVENT_MQTT_CLIENT_PUBLISHED && g_rec.ev[i].msg_id == msg_id;
    }
    pthread_mutex_unlock(&g_rec.mu);
    return seen;
}

static bool wait_published(int msg_id, int ms)
{
    uint64_t end = broker_now_ms() + (uint64_t)ms;
    while (!published_seen(msg_id)) {
        if (broker_now_ms() > end) {
            return false;
        }
        sleep_ms(5);
    }
    return true;
}

/* ---- fixtures ---- */

static int setup_bus(void **state)
{
    (void)state;
    rec_reset();
    return wm_event_init() == WM_ERR_SUCCESS ? 0 : -1;
}

static int teardown_bus(void **state)
{
    (void)state;
    wm_event_deinit();
    return 0;
}

static int setup_mqtt(void **state)
{
    (void)state;
    rec_reset();
    if (wm_event_init() != WM_ERR_SUCCESS ||
        wm_event_add_callback(WM_MQTT_EV, WM_EVENT_ANY_TYPE, mqtt_cb, NULL) != WM_ERR_SUCCESS) {
        return -1;
    }
    return 0;
}

static void init_config(wm_mqtt_client_config_t *cfg, char *client_id)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->uri = g_uri;
    cfg->client_id = client_id;
    cfg->keep_alive = 30;
    cfg->clean_session = 1;
    cfg->debug = getenv("MQTTC_TEST_DEBUG") != NULL;
}

/* A connected client; CONNECTED checked. */
static wm_mqtt_client_handle_t connect_client(char *client_id)
{
    wm_mqtt_client_config_t cfg;
    init_config(&cfg, client_id);
    wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
    assert_non_null(h);
    assert_non_null(h->client);
    size_t before = rec_count(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL);
    assert_int_equal(wm_mqtt_client_connect(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL, before + 1, TIMEOUT_MS));
    return h;
}

/* ---- constants ---- */

static void test_constants(void **state)
{
    (void)state;
    assert_int_equal(WM_ERR_SUCCESS, 0);
    assert_int_equal(WM_ERR_FAILED, -1);
    assert_int_equal(WM_ERR_NO_MEM, -2);
    assert_int_equal(WM_ERR_INVALID_PARAM, -3);
    assert_int_equal(WM_ERR_BUSY, -4);
    assert_int_equal(WM_ERR_TIMEOUT, -5);
    assert_int_equal(WM_ERR_NO_SUPPORT, -6);
    assert_int_equal(WM_ERR_NO_INITED, -7);
    assert_int_equal(WM_ERR_NOT_FOUND, -8);
    assert_int_equal(WM_ERR_NOT_ALLOWED, -9);
    assert_int_equal(WM_ERR_ALREADY_INITED, -10);
    assert_int_equal(WM_ERR_EOS, -11);
    assert_int_equal(WM_ERR_MQTT_CLIENT_BASE, -5000);

    assert_null(WM_EVENT_ANY_GROUP);
    assert_int_equal(WM_EVENT_ANY_TYPE, -1);
    assert_string_equal(WM_MQTT_EV, "WM_MQTT_EV");
    assert_string_equal(TEST_GROUP_A, "TEST_GROUP_A");

    assert_int_equal(WM_EVENT_MQTT_CLIENT_CONNECTED, 0);
    assert_int_equal(WM_EVENT_MQTT_CLIENT_DISCONNECTED, 1);
    assert_int_equal(WM_EVENT_MQTT_CLIENT_DATA, 2);
    assert_int_equal(WM_EVENT_MQTT_CLIENT_PUBLISHED, 3);

    assert_int_equal(WM_MQTT_CLIENT_AUTH_MODE_NOT_CERT, 0);
    assert_int_equal(WM_MQTT_CLIENT_AUTH_MODE_AUTH_SERVER_CERT, 1);
    assert_int_equal(WM_MQTT_CLIENT_AUTH_MODE_PROVIDE_CLIENT_CERT, 2);
    assert_int_equal(WM_MQTT_CLIENT_AUTH_MODE_MUTUAL_AUTH, 3);

    assert_int_equal(WM_MQTT_CLIENT_ERROR_SUCCESS, 0);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_FAILURE, -5001);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_PERSISTENCE_ERROR, -5002);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_DISCONNECTED, -5003);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_MAX_MESSAGES_INFLIGHT, -5004);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_UTF8_STRING, -5005);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_NULL_PARAMETER, -5006);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_TOPICNAME_TRUNCATED, -5007);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_STRUCTURE, -5008);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_QOS, -5009);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_SSL_NOT_SUPPORTED, -5010);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_MQTT_VERSION, -5011);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_PROTOCOL, -5014);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_BAD_MQTT_OPTION, -5015);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_WRONG_MQTT_VERSION, -5016);
    assert_int_equal(WM_MQTT_CLIENT_ERROR_0_LEN_WILL_TOPIC, -5017);

    /* The handle's first member is the client pointer events carry. */
    assert_int_equal(offsetof(wm_mqtt_client_t, client), 0);
    wm_mqtt_event_data_t d;
    assert_int_equal(sizeof d.mqtt_client_data_info.topic_len, 2);
    assert_int_equal(sizeof d.mqtt_client_data_info.payload_len, 2);
}

/* ---- event bus ---- */

static void test_bus_filters_and_task(void **state)
{
    (void)state;
    static int p_exact, p_any_type, p_any_group, p_b;
    assert_int_equal(wm_event_add_callback(TEST_GROUP_A, 1, bus_cb, &p_exact), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_add_callback(TEST_GROUP_A, WM_EVENT_ANY_TYPE, bus_cb, &p_any_type),
                     WM_ERR_SUCCESS);
    assert_int_equal(wm_event_add_callback(WM_EVENT_ANY_GROUP, 1, bus_cb, &p_any_group),
                     WM_ERR_SUCCESS);
    assert_int_equal(wm_event_add_callback(TEST_GROUP_B, WM_EVENT_ANY_TYPE, bus_cb, &p_b),
                     WM_ERR_SUCCESS);
    assert_int_equal(wm_event_add_callback(TEST_GROUP_A, 1, NULL, NULL), WM_ERR_INVALID_PARAM);

    int value = 1234;
    assert_int_equal(wm_event_send(TEST_GROUP_A, 1, &value, sizeof value), WM_ERR_SUCCESS);
    value = 0; /* the bus sent a copy */
    /* exact + any type + any group */
    assert_true(rec_wait_total(3, TIMEOUT_MS));

    int v2 = 77;
    assert_int_equal(wm_event_send(TEST_GROUP_A, 2, &v2, sizeof v2), WM_ERR_SUCCESS); /* any type */
    /* B + any group */
    assert_int_equal(wm_event_send(TEST_GROUP_B, 1, &v2, sizeof v2), WM_ERR_SUCCESS);
    /* Same text, other address: only the any-group callback. */
    assert_int_equal(wm_event_send(g_text_a, 1, &v2, sizeof v2), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_send(TEST_GROUP_B, 5, NULL, 0), WM_ERR_SUCCESS); /* B, data NULL */
    assert_int_equal(wm_event_send(TEST_GROUP_B, 5, NULL, 4), WM_ERR_INVALID_PARAM);
    assert_true(rec_wait_total(3 + 1 + 2 + 1 + 1, TIMEOUT_MS));
    sleep_ms(50);
    assert_int_equal(rec_total(), 8);

    pthread_mutex_lock(&g_rec.mu);
    for (size_t i = 0; i < g_rec.n; i++) {
        assert_false(g_rec.ev[i].on_main_thread);
    }
    /* The first event reached the three matching callbacks, in registration order. */
    assert_ptr_equal(g_rec.ev[0].priv, &p_exact);
    assert_ptr_equal(g_rec.ev[1].priv, &p_any_type);
    assert_ptr_equal(g_rec.ev[2].priv, &p_any_group);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(g_rec.ev[i].value, 1234);
        assert_ptr_equal(g_rec.ev[i].group, TEST_GROUP_A);
    }
    assert_ptr_equal(g_rec.ev[3].priv, &p_any_type);
    assert_int_equal(g_rec.ev[3].event, 2);
    assert_ptr_equal(g_rec.ev[6].priv, &p_any_group); /* g_text_a */
    assert_ptr_equal(g_rec.ev[6].group, g_text_a);
    assert_ptr_equal(g_rec.ev[7].priv, &p_b);
    assert_true(g_rec.ev[7].data_null);
    pthread_mutex_unlock(&g_rec.mu);
}

static void test_bus_remove(void **state)
{
    (void)state;
    static int p1, p2;
    assert_int_equal(wm_event_add_callback(TEST_GROUP_A, 3, bus_cb, &p1), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_add_callback(TEST_GROUP_A, 3, bus_cb, &p2), WM_ERR_SUCCESS);
    /* Only an exact match of all four removes. */
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 3, bus_cb, NULL), WM_ERR_NOT_FOUND);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_B, 3, bus_cb, &p1), WM_ERR_NOT_FOUND);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 4, bus_cb, &p1), WM_ERR_NOT_FOUND);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 3, mqtt_cb, &p1), WM_ERR_NOT_FOUND);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 3, bus_cb, &p1), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 3, bus_cb, &p1), WM_ERR_NOT_FOUND);
    int v = 9;
    assert_int_equal(wm_event_send(TEST_GROUP_A, 3, &v, sizeof v), WM_ERR_SUCCESS);
    assert_true(rec_wait_total(1, TIMEOUT_MS));
    sleep_ms(50);
    assert_int_equal(rec_total(), 1);
    rec_ev e;
    assert_true(rec_get(3, 0, &e));
    assert_ptr_equal(e.priv, &p2);

    /* deinit removes everything; the bus starts again lazily. */
    assert_int_equal(wm_event_deinit(), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_remove_callback(TEST_GROUP_A, 3, bus_cb, &p2), WM_ERR_NOT_FOUND);
    assert_int_equal(wm_event_send(TEST_GROUP_A, 3, &v, sizeof v), WM_ERR_SUCCESS);
    sleep_ms(50);
    assert_int_equal(rec_total(), 1);
    assert_int_equal(wm_event_init(), WM_ERR_SUCCESS);
    assert_int_equal(wm_event_init(), WM_ERR_SUCCESS); /* idempotent */
}

/* ---- init ---- */

static void test_init_uris(void **state)
{
    (void)state;
    static const char *const good[] = {"tcp://127.0.0.1:1883", "mqtt://127.0.0.1:1883",
                                       "ssl://127.0.0.1:8883", "mqtts://127.0.0.1:8883",
                                       "ws://127.0.0.1:8083/mqtt", "wss://127.0.0.1:8084/mqtt"};
    wm_mqtt_client_config_t cfg;
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        init_config(&cfg, "w800_uri");
        char uri[64];
        snprintf(uri, sizeof uri, "%s", good[i]);
        cfg.uri = uri;
        wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
        assert_non_null(h);
        assert_int_equal(wm_mqtt_client_deinit(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    }
    static const char *const bad[] = {"http://127.0.0.1:1883", "127.0.0.1:1883", "MQTT:/x", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        init_config(&cfg, "w800_uri");
        char uri[64];
        snprintf(uri, sizeof uri, "%s", bad[i]);
        cfg.uri = uri;
        assert_null(wm_mqtt_client_init(&cfg));
    }
    assert_null(wm_mqtt_client_init(NULL));
    init_config(&cfg, "w800_uri");
    cfg.uri = NULL;
    assert_null(wm_mqtt_client_init(&cfg));
}

static void test_init_will_and_auth(void **state)
{
    (void)state;
    wm_mqtt_client_config_t cfg;
    char empty[] = "", topic[] = "w800/will", msg[] = "gone";
    init_config(&cfg, "w800_will");
    cfg.will_topic = empty; /* WM_MQTT_CLIENT_ERROR_0_LEN_WILL_TOPIC */
    assert_null(wm_mqtt_client_init(&cfg));
    cfg.will_topic = topic;
    cfg.will_msg = msg;
    cfg.will_qos = 3; /* WM_MQTT_CLIENT_ERROR_BAD_QOS */
    assert_null(wm_mqtt_client_init(&cfg));
    cfg.will_qos = 1;
    cfg.will_retain = 1;
    wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
    assert_non_null(h);
    wm_mqtt_client_deinit(h);

    /* Persistent session without a client id: the broker could not resume it. */
    init_config(&cfg, NULL);
    cfg.clean_session = 0;
    assert_null(wm_mqtt_client_init(&cfg));

    char pem_ca[] = "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n";
    char pem_cert[] = "-----BEGIN CERTIFICATE-----\nC\n-----END CERTIFICATE-----\n";
    char pem_key[] = "-----BEGIN PRIVATE KEY-----\nK\n-----END PRIVATE KEY-----\n";
    char a1[] = "mqtt", a2[] = "x-amzn-mqtt-ca";
    char *alpn[] = {a1, a2, NULL};
    char uri[] = "mqtts://127.0.0.1:8883";
    static const wm_mqtt_client_auth_mode_t modes[] = {
        WM_MQTT_CLIENT_AUTH_MODE_NOT_CERT, WM_MQTT_CLIENT_AUTH_MODE_AUTH_SERVER_CERT,
        WM_MQTT_CLIENT_AUTH_MODE_PROVIDE_CLIENT_CERT, WM_MQTT_CLIENT_AUTH_MODE_MUTUAL_AUTH};
    for (size_t i = 0; i < 4; i++) {
        init_config(&cfg, "w800_tls");
        cfg.uri = uri;
        cfg.auth_mode = modes[i];
        cfg.ca = pem_ca;
        cfg.cert = pem_cert;
        cfg.key = pem_key;
        cfg.alpn = alpn;
        char user[] = "u", pass[] = "p";
        cfg.username = user;
        cfg.password = pass;
        h = wm_mqtt_client_init(&cfg);
        assert_non_null(h);
        assert_int_equal(wm_mqtt_client_deinit(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    }
}

/* ---- against mosquitto ---- */

static void test_null_parameters(void **state)
{
    (void)state;
    assert_int_equal(wm_mqtt_client_deinit(NULL), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_connect(NULL), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_disconnect(NULL), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_reconnect(NULL), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_subscribe(NULL, "a", 0), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_unsubscribe(NULL, "a"), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_publish(NULL, "a", "b", 0, 0, 0),
                     WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    wm_mqtt_client_config_t cfg;
    init_config(&cfg, "w800_null");
    wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
    assert_non_null(h);
    assert_int_equal(wm_mqtt_client_subscribe(h, NULL, 0), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_unsubscribe(h, NULL), WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    assert_int_equal(wm_mqtt_client_publish(h, NULL, "b", 0, 0, 0),
                     WM_MQTT_CLIENT_ERROR_NULL_PARAMETER);
    /* Not connected: publish is refused (nothing queued). */
    assert_int_equal(wm_mqtt_client_publish(h, "w800/x", "b", 0, 1, 0),
                     WM_MQTT_CLIENT_ERROR_DISCONNECTED);
    assert_int_equal(wm_mqtt_client_deinit(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    sleep_ms(50);
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL), 0);
}

static void test_pubsub(void **state)
{
    (void)state;
    char id[] = "w800_pubsub";
    wm_mqtt_client_handle_t h = connect_client(id);
    rec_ev e;
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_CONNECTED, 0, &e));
    assert_ptr_equal(e.client_handle, h->client);
    assert_ptr_equal(e.group, WM_MQTT_EV);
    assert_false(e.on_main_thread);
    assert_int_equal(wm_mqtt_client_connect(h), WM_MQTT_CLIENT_ERROR_FAILURE); /* already */

    int sid = wm_mqtt_client_subscribe(h, "w800/t/#", 2);
    assert_true(sid > 0);
    int sid2 = wm_mqtt_client_subscribe(h, "w800/gone", 0);
    assert_true(sid2 > 0 && sid2 != sid);
    int uid = wm_mqtt_client_unsubscribe(h, "w800/gone");
    assert_true(uid > 0 && uid != sid2);
    /* Let the SUBACK come back before publishing (no SUBSCRIBED event in the SDK). */
    sleep_ms(200);

    assert_int_equal(wm_mqtt_client_publish(h, "w800/t/q0", "zero", 0, 0, 0), 0);
    int id1 = wm_mqtt_client_publish(h, "w800/t/q1", "one-and-more", 3, 1, 0); /* "one" */
    assert_true(id1 > 0);
    int id2 = wm_mqtt_client_publish(h, "w800/t/q2", NULL, 0, 2, 0); /* empty payload */
    assert_true(id2 > 0 && id2 != id1);
    assert_int_equal(wm_mqtt_client_publish(h, "w800/gone", "nobody", 0, 1, 0) > 0, 1);

    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DATA, NULL, 3, TIMEOUT_MS));
    assert_true(wait_published(id1, TIMEOUT_MS));
    assert_true(wait_published(id2, TIMEOUT_MS));
    sleep_ms(100);
    /* PUBLISHED for QoS 1 and 2 only (the unsubscribed topic's QoS 1 included). */
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_PUBLISHED, NULL), 3);
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_DATA, NULL), 3);
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_DATA, "w800/gone"), 0);

    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 0, &e));
    assert_string_equal(e.topic, "w800/t/q0");
    assert_int_equal(e.topic_len, 9);
    assert_string_equal(e.payload_head, "zero");
    assert_int_equal(e.payload_len, 4);
    assert_int_equal(e.qos, 0);
    assert_ptr_equal(e.client_handle, h->client);
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 1, &e));
    assert_string_equal(e.topic, "w800/t/q1");
    assert_string_equal(e.payload_head, "one");
    assert_int_equal(e.qos, 1);
    assert_true(e.msg_id > 0);
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 2, &e));
    assert_string_equal(e.topic, "w800/t/q2");
    assert_int_equal(e.payload_len, 0);
    assert_int_equal(e.qos, 2);

    /* Argument errors. */
    assert_int_equal(wm_mqtt_client_publish(h, "w800/t", "x", 0, 3, 0),
                     WM_MQTT_CLIENT_ERROR_BAD_QOS);
    assert_int_equal(wm_mqtt_client_subscribe(h, "w800/t", 3), WM_MQTT_CLIENT_ERROR_BAD_QOS);
    assert_int_equal(wm_mqtt_client_publish(h, "w800/\xff\xfe", "x", 0, 0, 0),
                     WM_MQTT_CLIENT_ERROR_BAD_UTF8_STRING);
    assert_int_equal(wm_mqtt_client_subscribe(h, "w800/\xc3", 0),
                     WM_MQTT_CLIENT_ERROR_BAD_UTF8_STRING);
    assert_int_equal(wm_mqtt_client_publish(h, "w800/+", "x", 0, 0, 0),
                     WM_MQTT_CLIENT_ERROR_FAILURE);

    size_t disc = rec_count(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL);
    assert_int_equal(wm_mqtt_client_disconnect(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL, disc + 1, TIMEOUT_MS));
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DISCONNECTED, disc, &e));
    assert_ptr_equal(e.client_handle, h->client);
    assert_int_equal(wm_mqtt_client_publish(h, "w800/t/q1", "late", 0, 1, 0),
                     WM_MQTT_CLIENT_ERROR_DISCONNECTED);

    /* The handle connects again; reconnect drops and restores the session. */
    size_t conn = rec_count(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL);
    assert_int_equal(wm_mqtt_client_connect(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL, conn + 1, TIMEOUT_MS));
    assert_int_equal(wm_mqtt_client_reconnect(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL, disc + 2, TIMEOUT_MS));
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL, conn + 2, TIMEOUT_MS));

    /* deinit while connected emits DISCONNECTED. */
    void *client = h->client;
    assert_int_equal(wm_mqtt_client_deinit(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL, disc + 3, TIMEOUT_MS));
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DISCONNECTED, disc + 2, &e));
    assert_ptr_equal(e.client_handle, client);
}

static void test_big_message_split(void **state)
{
    (void)state;
    char id[] = "w800_big";
    wm_mqtt_client_handle_t h = connect_client(id);
    assert_true(wm_mqtt_client_subscribe(h, "w800/big", 1) > 0);
    sleep_ms(200);
    enum { BIG = 70000 };
    char *msg = malloc(BIG + 1);
    assert_non_null(msg);
    for (size_t i = 0; i < BIG; i++) {
        msg[i] = pattern_byte(i);
    }
    msg[BIG] = '\0';
    int mid = wm_mqtt_client_publish(h, "w800/big", msg, 0, 1, 0); /* msg_len 0: strlen */
    free(msg);
    assert_true(mid > 0);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DATA, "w800/big", 2, TIMEOUT_MS));
    sleep_ms(100);
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_DATA, "w800/big"), 2);
    rec_ev a, b;
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 0, &a));
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 1, &b));
    assert_int_equal(a.payload_len, 65535);
    assert_int_equal(b.payload_len, 4465);
    assert_true(a.payload_ok);
    assert_true(b.payload_ok);
    assert_int_equal(a.msg_id, b.msg_id);
    assert_true(wait_published(mid, TIMEOUT_MS));
    wm_mqtt_client_deinit(h);
}

static void test_inflight_window_full(void **state)
{
    (void)state;
    char id[] = "w800_window";
    wm_mqtt_client_handle_t h = connect_client(id);
    int rc = 0;
    int attempts = 0;
    /* Publishing is far faster than the broker's round trip: the window of 20 fills. */
    while (attempts < 200000) {
        rc = wm_mqtt_client_publish(h, "w800/window", "x", 0, 1, 0);
        attempts++;
        if (rc < 0) {
            break;
        }
    }
    assert_int_equal(rc, WM_MQTT_CLIENT_ERROR_MAX_MESSAGES_INFLIGHT);
    assert_true(attempts > 20);
    /* It drains: every accepted message gets its PUBLISHED. */
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_PUBLISHED, NULL, (size_t)attempts - 1, TIMEOUT_MS));
    wm_mqtt_client_deinit(h);
}

static void test_connect_refused(void **state)
{
    (void)state;
    wm_mqtt_client_config_t cfg;
    char id[] = "w800_refused";
    init_config(&cfg, id);
    char uri[64];
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    cfg.uri = uri;
    wm_mqtt_client_handle_t h = wm_mqtt_client_init(&cfg);
    assert_non_null(h);
    assert_int_equal(wm_mqtt_client_connect(h), WM_MQTT_CLIENT_ERROR_SUCCESS);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DISCONNECTED, NULL, 1, TIMEOUT_MS));
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_CONNECTED, NULL), 0);
    wm_mqtt_client_deinit(h);
}

/* Without a DATA callback the library frees the copies itself (ASan checks). */
static void test_data_without_handler(void **state)
{
    (void)state;
    char id[] = "w800_nohandler";
    wm_mqtt_client_handle_t h = connect_client(id);
    assert_int_equal(wm_event_remove_callback(WM_MQTT_EV, WM_EVENT_ANY_TYPE, mqtt_cb, NULL),
                     WM_ERR_SUCCESS);
    static int p;
    assert_int_equal(wm_event_add_callback(WM_MQTT_EV, WM_EVENT_MQTT_CLIENT_PUBLISHED, mqtt_cb, &p),
                     WM_ERR_SUCCESS);
    assert_true(wm_mqtt_client_subscribe(h, "w800/nh", 1) > 0);
    sleep_ms(200);
    int mid = wm_mqtt_client_publish(h, "w800/nh", "lost", 0, 1, 0);
    assert_true(mid > 0);
    assert_true(wait_published(mid, TIMEOUT_MS));
    sleep_ms(200);
    assert_int_equal(rec_count(WM_EVENT_MQTT_CLIENT_DATA, NULL), 0);
    wm_mqtt_client_deinit(h);
}

/* Two clients served by the one MQTT task: one publishes, the other receives. */
static void test_two_clients(void **state)
{
    (void)state;
    char ida[] = "w800_two_a", idb[] = "w800_two_b";
    wm_mqtt_client_handle_t a = connect_client(ida);
    wm_mqtt_client_handle_t b = connect_client(idb);
    assert_true(wm_mqtt_client_subscribe(b, "w800/two", 1) > 0);
    sleep_ms(200);
    int mid = wm_mqtt_client_publish(a, "w800/two", "hello b", 0, 1, 0);
    assert_true(mid > 0);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DATA, "w800/two", 1, TIMEOUT_MS));
    rec_ev e;
    assert_true(rec_get(WM_EVENT_MQTT_CLIENT_DATA, 0, &e));
    assert_ptr_equal(e.client_handle, b->client);
    assert_string_equal(e.payload_head, "hello b");
    assert_true(wait_published(mid, TIMEOUT_MS));
    wm_mqtt_client_deinit(a);
    /* b keeps working after a is gone. */
    assert_true(wm_mqtt_client_publish(b, "w800/two", "again", 0, 0, 0) == 0);
    assert_true(rec_wait(WM_EVENT_MQTT_CLIENT_DATA, "w800/two", 2, TIMEOUT_MS));
    wm_mqtt_client_deinit(b);
}

int main(void)
{
    g_main = pthread_self();
    broker_opts o;
    broker_opts_init(&o);
    if (broker_start(&g_broker, &o) != 0) {
        return 1;
    }
    snprintf(g_uri, sizeof g_uri, "mqtt://127.0.0.1:%u", (unsigned)g_broker.port);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constants),
        cmocka_unit_test_setup_teardown(test_bus_filters_and_task, setup_bus, teardown_bus),
        cmocka_unit_test_setup_teardown(test_bus_remove, setup_bus, teardown_bus),
        cmocka_unit_test_setup_teardown(test_init_uris, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_init_will_and_auth, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_null_parameters, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_pubsub, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_big_message_split, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_inflight_window_full, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_connect_refused, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_data_without_handler, setup_mqtt, teardown_bus),
        cmocka_unit_test_setup_teardown(test_two_clients, setup_mqtt, teardown_bus),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    broker_cleanup(&g_broker);
    return failed;
}
