/* Client API argument checking: every invalid input gets its specific code,
 * before anything touches the network; and every code has a message. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqttc/client.h"

/* A config that mqttc_client_create() accepts; nothing is ever connected. */
static void good_config(mqttc_client_config *cfg)
{
    mqttc_client_config_init(cfg);
    cfg->uri = "mqtt://127.0.0.1:1883";
    cfg->client_id = "args";
}

static int create_rc(const mqttc_client_config *cfg)
{
    mqttc_client *c = (mqttc_client *)(uintptr_t)1; /* must be overwritten or left alone */
    int rc = mqttc_client_create(cfg, &c);
    if (rc == 0) {
        mqttc_client_destroy(c);
    }
    return rc;
}

static void expect_create(const mqttc_client_config *cfg, int want, const char *what)
{
    int rc = create_rc(cfg);
    if (rc != want) {
        print_error("%s: mqttc_client_create gave %d (%s), expected %d (%s)\n", what, rc,
                    mqttc_errname(rc), want, mqttc_errname(want));
    }
    assert_int_equal(rc, want);
}

static void create_rejects_null_config_and_out(void **state)
{
    mqttc_client_config cfg;
    mqttc_client *c = NULL;
    (void)state;
    good_config(&cfg);
    assert_int_equal(mqttc_client_create(NULL, &c), MQTTC_ERR_INVALID_ARG);
    assert_null(c);
    assert_int_equal(mqttc_client_create(&cfg, NULL), MQTTC_ERR_INVALID_ARG);
    /* and the good config really is good */
    expect_create(&cfg, 0, "good config");
}

static void create_rejects_every_kind_of_bad_uri(void **state)
{
    static const char *const bad[] = {
        "",                        /* empty */
        "127.0.0.1:1883",          /* no scheme */
        "http://127.0.0.1:1883",   /* unknown scheme */
        "mqtt:/127.0.0.1:1883",    /* one slash */
        "mqtt://",                 /* empty host */
        "mqtt://:1883",            /* empty host with port */
        "mqtt://127.0.0.1:0",      /* port 0 */
        "mqtt://127.0.0.1:65536",  /* port too large */
        "mqtt://127.0.0.1:99999999999", /* port overflow */
        "mqtt://127.0.0.1:http",   /* port not a number */
        "mqtt://127.0.0.1:",       /* empty port */
        "mqtt://127.0.0.1:-1",     /* negative port */
        "mqtt://[::1:1883",        /* unbalanced bracket */
        "mqtt://::1]:1883",        /* unbalanced bracket */
        "mqtt://[]:1883",          /* empty IPv6 literal */
        "mqtt://bro ker:1883",     /* space */
        "mqtt://bro\tker:1883",    /* control character */
        "mqtt://broker\n",         /* control character at the end */
        "mqtt://::1:1883",         /* IPv6 literal without brackets */
        "mqtt://[127.0.0.1]:1883", /* brackets around IPv4 */
        "mqtt://broker:1883#x",    /* fragment */
    };
    mqttc_client_config cfg;
    char longhost[400];
    char what[128];
    size_t i;
    (void)state;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        good_config(&cfg);
        cfg.uri = bad[i];
        snprintf(what, sizeof what, "uri \"%s\"", bad[i]);
        expect_create(&cfg, MQTTC_ERR_BAD_URI, what);
    }
    /* a host longer than any URI part may be */
    memcpy(longhost, "mqtt://", 7);
    memset(longhost + 7, 'h', sizeof longhost - 8);
    longhost[sizeof longhost - 1] = '\0';
    good_config(&cfg);
    cfg.uri = longhost;
    expect_create(&cfg, MQTTC_ERR_BAD_URI, "host of 392 bytes");
}

static void create_rejects_bad_failover_uri(void **state)
{
    static const char *const list[] = {"mqtt://127.0.0.1:1884", "mqtt//oops", NULL};
    mqttc_client_config cfg;
    (void)state;
    good_config(&cfg);
    cfg.failover_uris = list;
    expect_create(&cfg, MQTTC_ERR_BAD_URI, "second failover URI malformed");
}

static void create_rejects_missing_or_empty_host(void **state)
{
    mqttc_client_config cfg;
    (void)state;
    good_config(&cfg);
    cfg.uri = NULL;
    cfg.host = NULL;
    expect_create(&cfg, MQTTC_ERR_BAD_URI, "neither uri nor host");
    cfg.host = "";
    expect_create(&cfg, MQTTC_ERR_BAD_URI, "empty host");
    cfg.host = "127.0.0.1";
    cfg.port = 0; /* 1883 */
    expect_create(&cfg, 0, "host without port");
}

static void create_requires_client_id_for_persistent_session(void **state)
{
    mqttc_client_config cfg;
    (void)state;
    good_config(&cfg);
    cfg.clean_session = false;
    cfg.client_id = "";
    expect_create(&cfg, MQTTC_ERR_BAD_CLIENT_ID, "empty id, clean_session=0");
    cfg.client_id = NULL;
    expect_create(&cfg, MQTTC_ERR_BAD_CLIENT_ID, "NULL id, clean_session=0");
    cfg.clean_session = true;
    expect_create(&cfg, 0, "NULL id, clean_session=1");
    cfg.client_id = "";
    expect_create(&cfg, 0, "empty id, clean_session=1");
}

static void create_rejects_bad_will(void **state)
{
    mqttc_client_config cfg;
    (void)state;

    good_config(&cfg);
    cfg.will_topic = "will/t";
    cfg.will_payload = "bye";
    cfg.will_payload_len = 3;
    cfg.will_qos = 1;
    expect_create(&cfg, 0, "good will");

    cfg.will_qos = 3;
    expect_create(&cfg, MQTTC_ERR_BAD_QOS, "will QoS 3");
    cfg.will_qos = 1;

    cfg.will_topic = "will/#";
    expect_create(&cfg, MQTTC_ERR_BAD_TOPIC, "will topic with '#'");
    cfg.will_topic = "will/+/x";
    expect_create(&cfg, MQTTC_ERR_BAD_TOPIC, "will topic with '+'");
    cfg.will_topic = "";
    expect_create(&cfg, MQTTC_ERR_BAD_TOPIC, "empty will topic");
    cfg.will_topic = "will/\xC3\x28";
    expect_create(&cfg, MQTTC_ERR_BAD_UTF8, "will topic not UTF-8");

    /* will fields without a will topic */
    good_config(&cfg);
    cfg.will_qos = 1;
    expect_create(&cfg, MQTTC_ERR_BAD_WILL, "will QoS without will topic");
    good_config(&cfg);
    cfg.will_retain = true;
    expect_create(&cfg, MQTTC_ERR_BAD_WILL, "will retain without will topic");
}

static void create_rejects_will_payload_without_topic(void **state)
{
    mqttc_client_config cfg;
    (void)state;
    /* error.h: BAD_WILL is "will given without a topic, or will fields without a will" */
    good_config(&cfg);
    cfg.will_payload = "bye";
    cfg.will_payload_len = 3;
    expect_create(&cfg, MQTTC_ERR_BAD_WILL, "will payload without will topic");
}

static void create_rejects_null_will_payload_with_length(void **state)
{
    mqttc_client_config cfg;
    int rc;
    (void)state;
    good_config(&cfg);
    cfg.will_topic = "will/t";
    cfg.will_payload = NULL;
    cfg.will_payload_len = 5;
    rc = create_rc(&cfg);
    assert_true(rc == MQTTC_ERR_INVALID_ARG || rc == MQTTC_ERR_BAD_WILL);
}

/* Publish and subscribe are checked by the client, connected or not. */
static mqttc_client *idle_client(void)
{
    mqttc_client_config cfg;
    mqttc_client *c = NULL;
    good_config(&cfg);
    assert_int_equal(mqttc_client_create(&cfg, &c), 0);
    assert_non_null(c);
    return c;
}

static void expect_rc(int rc, int want, const char *what)
{
    if (rc != want) {
        print_error("%s gave %d (%s), expected %d (%s)\n", what, rc, mqttc_errname(rc), want,
                    mqttc_errname(want));
    }
    assert_int_equal(rc, want);
}

static void publish_rejects_bad_arguments(void **state)
{
    mqttc_client *c = idle_client();
    char *longtopic = malloc(65537);
    uint32_t before;
    (void)state;
    assert_non_null(longtopic);
    memset(longtopic, 't', 65536);
    longtopic[65536] = '\0';

    expect_rc(mqttc_client_publish(NULL, "a", "x", 1, 0, false), MQTTC_ERR_INVALID_ARG, "NULL client");
    expect_rc(mqttc_client_publish(c, NULL, "x", 1, 0, false), MQTTC_ERR_INVALID_ARG, "NULL topic");
    expect_rc(mqttc_client_publish(c, "a", NULL, 1, 0, false), MQTTC_ERR_INVALID_ARG,
              "NULL payload, len 1");
    expect_rc(mqttc_client_publish(c, "", "x", 1, 0, false), MQTTC_ERR_BAD_TOPIC, "empty topic");
    expect_rc(mqttc_client_publish(c, "a/+", "x", 1, 1, false), MQTTC_ERR_BAD_TOPIC, "topic with +");
    expect_rc(mqttc_client_publish(c, "a/#", "x", 1, 1, false), MQTTC_ERR_BAD_TOPIC, "topic with #");
    expect_rc(mqttc_client_publish(c, "#", "x", 1, 2, false), MQTTC_ERR_BAD_TOPIC, "topic #");
    expect_rc(mqttc_client_publish(c, "a/\xFF", "x", 1, 1, false), MQTTC_ERR_BAD_UTF8,
              "topic not UTF-8");
    expect_rc(mqttc_client_publish(c, "a/\xED\xA0\x80", "x", 1, 1, false), MQTTC_ERR_BAD_UTF8,
              "topic with a surrogate");
    expect_rc(mqttc_client_publish(c, longtopic, "x", 1, 1, false), MQTTC_ERR_BAD_TOPIC,
              "topic of 65,536 bytes");
    expect_rc(mqttc_client_publish(c, "a", "x", 1, 3, false), MQTTC_ERR_BAD_QOS, "QoS 3");
    expect_rc(mqttc_client_publish(c, "a", "x", 1, -1, false), MQTTC_ERR_BAD_QOS, "QoS -1");
    /* nothing was queued by the failures */
    assert_int_equal(mqttc_client_queued(c), 0);

    /* NULL payload is fine with len 0; QoS 1 is queued while offline */
    expect_rc(mqttc_client_publish(c, "a", NULL, 0, 0, false), 0, "QoS 0, NULL payload, len 0");
    before = mqttc_client_queued(c);
    assert_true(mqttc_client_publish(c, "a", NULL, 0, 1, false) > 0);
    assert_int_equal(mqttc_client_queued(c), before + 1);
    free(longtopic);
    mqttc_client_destroy(c);
}

static void subscribe_rejects_bad_filters(void **state)
{
    mqttc_client *c = idle_client();
    mqttc_topic_qos items[3];
    const char *filters[2];
    (void)state;

    expect_rc(mqttc_client_subscribe(NULL, "a", 0), MQTTC_ERR_INVALID_ARG, "NULL client");
    expect_rc(mqttc_client_subscribe(c, NULL, 0), MQTTC_ERR_INVALID_ARG, "NULL filter");
    expect_rc(mqttc_client_subscribe(c, "", 0), MQTTC_ERR_BAD_FILTER, "empty filter");
    expect_rc(mqttc_client_subscribe(c, "a/#/b", 0), MQTTC_ERR_BAD_FILTER, "# not last");
    expect_rc(mqttc_client_subscribe(c, "a#", 0), MQTTC_ERR_BAD_FILTER, "# inside a level");
    expect_rc(mqttc_client_subscribe(c, "a/b+", 0), MQTTC_ERR_BAD_FILTER, "+ inside a level");
    expect_rc(mqttc_client_subscribe(c, "+a/b", 1), MQTTC_ERR_BAD_FILTER, "+ inside first level");
    expect_rc(mqttc_client_subscribe(c, "a/\xC0\xAF", 1), MQTTC_ERR_BAD_UTF8, "overlong UTF-8");
    expect_rc(mqttc_client_subscribe(c, "a/b", 3), MQTTC_ERR_BAD_QOS, "QoS 3");
    expect_rc(mqttc_client_subscribe(c, "a/b", -1), MQTTC_ERR_BAD_QOS, "QoS -1");

    items[0].filter = "ok/1";
    items[0].qos = 1;
    items[1].filter = "bad/#/x";
    items[1].qos = 1;
    items[2].filter = "ok/2";
    items[2].qos = 2;
    expect_rc(mqttc_client_subscribe_many(c, items, 3), MQTTC_ERR_BAD_FILTER,
              "subscribe_many with one bad filter");
    items[1].filter = "ok/+";
    items[1].qos = 7;
    expect_rc(mqttc_client_subscribe_many(c, items, 3), MQTTC_ERR_BAD_QOS,
              "subscribe_many with one bad QoS");
    expect_rc(mqttc_client_subscribe_many(c, items, 0), MQTTC_ERR_INVALID_ARG, "n = 0");
    expect_rc(mqttc_client_subscribe_many(c, NULL, 2), MQTTC_ERR_INVALID_ARG, "NULL items");

    expect_rc(mqttc_client_unsubscribe(c, NULL), MQTTC_ERR_INVALID_ARG, "unsubscribe NULL");
    expect_rc(mqttc_client_unsubscribe(c, "x/#/y"), MQTTC_ERR_BAD_FILTER, "unsubscribe bad");
    expect_rc(mqttc_client_unsubscribe(c, ""), MQTTC_ERR_BAD_FILTER, "unsubscribe empty");
    filters[0] = "ok";
    filters[1] = "a+";
    expect_rc(mqttc_client_unsubscribe_many(c, filters, 2), MQTTC_ERR_BAD_FILTER,
              "unsubscribe_many with one bad filter");
    expect_rc(mqttc_client_unsubscribe_many(c, filters, 0), MQTTC_ERR_INVALID_ARG,
              "unsubscribe_many n = 0");

    /* valid ones are accepted (queued) and get a message id */
    assert_true(mqttc_client_subscribe(c, "a/+/c/#", 2) > 0);
    assert_true(mqttc_client_unsubscribe(c, "a/+/c/#") > 0);
    mqttc_client_destroy(c);
}

static void null_client_is_harmless(void **state)
{
    (void)state;
    mqttc_client_destroy(NULL);
    assert_int_equal(mqttc_client_connect(NULL), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc_client_disconnect(NULL), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc_client_reconnect(NULL), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc_client_state_get(NULL), MQTTC_CLIENT_IDLE);
    assert_false(mqttc_client_ready(NULL));
    assert_int_equal(mqttc_client_queued(NULL), 0);
    assert_int_equal(mqttc_client_fd(NULL), -1);
    assert_int_equal(mqttc_client_want(NULL), 0);
    assert_int_equal(mqttc_client_next_timeout(NULL), -1);
    assert_int_equal(mqttc_client_loop(NULL, 0), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc_client_process(NULL, 0), MQTTC_ERR_INVALID_ARG);
    mqttc_client_set_debug(NULL, true);
    mqttc_client_config_init(NULL);
}

static void caller_functions_refuse_thread_mode(void **state)
{
    mqttc_client *c = idle_client();
    (void)state;
    assert_int_equal(mqttc_client_loop(c, 0), MQTTC_ERR_BAD_STATE);
    assert_int_equal(mqttc_client_process(c, 0), MQTTC_ERR_BAD_STATE);
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_fd(c), -1);
    mqttc_client_destroy(c);
}

static void config_init_gives_documented_defaults(void **state)
{
    mqttc_client_config cfg;
    (void)state;
    memset(&cfg, 0xA5, sizeof cfg);
    mqttc_client_config_init(&cfg);
    assert_null(cfg.uri);
    assert_null(cfg.failover_uris);
    assert_null(cfg.host);
    assert_int_equal(cfg.port, 0);
    assert_null(cfg.client_id);
    assert_null(cfg.will_topic);
    assert_int_equal(cfg.keepalive, 60);
    assert_true(cfg.clean_session);
    assert_int_equal(cfg.inflight_max, 20);
    assert_int_equal(cfg.inbound_max, 32);
    assert_int_equal(cfg.queue_max_msgs, 1000);
    assert_int_equal(cfg.queue_max_bytes, 16u << 20);
    assert_int_equal(cfg.queue_policy, MQTTC_QUEUE_REFUSE);
    assert_false(cfg.message_pieces);
    assert_int_equal(cfg.connect_timeout_ms, 10000);
    assert_false(cfg.auto_reconnect);
    assert_int_equal(cfg.reconnect_ms, 3000);
    assert_int_equal(cfg.reconnect_max_ms, 0);
    assert_int_equal(cfg.run_mode, MQTTC_RUN_THREAD);
    assert_null(cfg.on_event);
    assert_null(cfg.on_log);
    assert_int_equal(cfg.log_level, MQTTC_LOG_WARN);
    assert_int_equal(cfg.max_message_size, MQTTC_MAX_REMAINING_LENGTH);
}

static void config_init_gives_documented_buffer_sizes(void **state)
{
    mqttc_client_config cfg;
    (void)state;
    mqttc_client_config_init(&cfg);
    /* client.h: "receive buffer (default 4 KiB ...)", "outgoing staging buffer (default 4 KiB ...)" */
    assert_int_equal(cfg.rx_buffer_size, 4096);
    assert_int_equal(cfg.tx_buffer_size, 4096);
}

static void every_error_code_has_a_message(void **state)
{
#define CHECK_CODE(name, value, msg)                                                    \
    do {                                                                                \
        const char *s = mqttc_strerror(MQTTC_ERR_##name);                               \
        assert_non_null(s);                                                             \
        assert_true(strlen(s) > 0);                                                     \
        assert_string_not_equal(s, "unknown error");                                    \
        assert_string_equal(mqttc_errname(MQTTC_ERR_##name), "MQTTC_ERR_" #name);       \
    } while (0);
    (void)state;
    MQTTC_ERROR_LIST(CHECK_CODE)
#undef CHECK_CODE
    assert_string_equal(mqttc_strerror(-9999), "unknown error");
    assert_string_equal(mqttc_errname(-9999), "MQTTC_ERR_UNKNOWN");
}

static void codes_used_by_client_api_have_messages(void **state)
{
    static const int codes[] = {
        MQTTC_ERR_INVALID_ARG,  MQTTC_ERR_BAD_URI,        MQTTC_ERR_BAD_CLIENT_ID,
        MQTTC_ERR_BAD_TOPIC,    MQTTC_ERR_BAD_UTF8,       MQTTC_ERR_BAD_QOS,
        MQTTC_ERR_BAD_WILL,     MQTTC_ERR_BAD_FILTER,     MQTTC_ERR_TOO_LARGE,
        MQTTC_ERR_QUEUE_FULL,   MQTTC_ERR_NO_MEMORY,      MQTTC_ERR_BAD_STATE,
        MQTTC_ERR_CONNECT_REFUSED, MQTTC_ERR_REFUSED_NOT_AUTHORIZED, MQTTC_ERR_DROPPED,
        MQTTC_ERR_CONNECTION_LOST, MQTTC_ERR_CLOSED_BY_PEER, MQTTC_ERR_RESOLVE,
        MQTTC_ERR_THREAD,
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = mqttc_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 3);
        assert_string_not_equal(s, "unknown error");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_rejects_null_config_and_out),
        cmocka_unit_test(create_rejects_every_kind_of_bad_uri),
        cmocka_unit_test(create_rejects_bad_failover_uri),
        cmocka_unit_test(create_rejects_missing_or_empty_host),
        cmocka_unit_test(create_requires_client_id_for_persistent_session),
        cmocka_unit_test(create_rejects_bad_will),
        cmocka_unit_test(create_rejects_will_payload_without_topic),
        cmocka_unit_test(create_rejects_null_will_payload_with_length),
        cmocka_unit_test(publish_rejects_bad_arguments),
        cmocka_unit_test(subscribe_rejects_bad_filters),
        cmocka_unit_test(null_client_is_harmless),
        cmocka_unit_test(caller_functions_refuse_thread_mode),
        cmocka_unit_test(config_init_gives_documented_defaults),
        cmocka_unit_test(config_init_gives_documented_buffer_sizes),
        cmocka_unit_test(every_error_code_has_a_message),
        cmocka_unit_test(codes_used_by_client_api_have_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
