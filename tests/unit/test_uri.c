/* mqttc_uri_parse(): schemes, ports, IPv6 literals, user info, paths, and
 * every kind of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mqttc/uri.h"

static mqttc_uri parse_ok(const char *s)
{
    mqttc_uri u;
    int rc = mqttc_uri_parse(s, &u);

    if (rc != 0) {
        print_error("parsing \"%s\" gave %d\n", s, rc);
    }
    assert_int_equal(rc, 0);
    return u;
}

static void assert_bad(const char *s)
{
    mqttc_uri u;
    int rc;

    memset(&u, 0xa5, sizeof(u));
    rc = mqttc_uri_parse(s, &u);
    if (rc != MQTTC_ERR_BAD_URI) {
        print_error("parsing \"%s\" gave %d, expected BAD_URI\n", s, rc);
    }
    assert_int_equal(rc, MQTTC_ERR_BAD_URI);
    /* Nothing half-parsed is left behind. */
    assert_string_equal(u.host, "");
    assert_int_equal(u.port, 0);
    assert_false(u.has_username);
}

static void scheme_and_port(const char *s, mqttc_scheme scheme, uint16_t port)
{
    mqttc_uri u = parse_ok(s);

    assert_int_equal(u.scheme, scheme);
    assert_int_equal(u.port, port);
    assert_string_equal(u.host, "broker.example");
    assert_false(u.ipv6_literal);
    assert_false(u.has_username);
    assert_false(u.has_password);
}

static void every_scheme_has_its_default_port(void **state)
{
    (void)state;
    scheme_and_port("mqtt://broker.example", MQTTC_SCHEME_MQTT, 1883);
    scheme_and_port("tcp://broker.example", MQTTC_SCHEME_MQTT, 1883);
    scheme_and_port("mqtts://broker.example", MQTTC_SCHEME_MQTTS, 8883);
    scheme_and_port("ssl://broker.example", MQTTC_SCHEME_MQTTS, 8883);
    scheme_and_port("ws://broker.example", MQTTC_SCHEME_WS, 8083);
    scheme_and_port("wss://broker.example", MQTTC_SCHEME_WSS, 8084);
}

static void schemes_are_case_insensitive(void **state)
{
    (void)state;
    scheme_and_port("MQTT://broker.example", MQTTC_SCHEME_MQTT, 1883);
    scheme_and_port("Tcp://broker.example", MQTTC_SCHEME_MQTT, 1883);
    scheme_and_port("MqttS://broker.example", MQTTC_SCHEME_MQTTS, 8883);
    scheme_and_port("SSL://broker.example", MQTTC_SCHEME_MQTTS, 8883);
    scheme_and_port("WS://broker.example", MQTTC_SCHEME_WS, 8083);
    scheme_and_port("wsS://broker.example", MQTTC_SCHEME_WSS, 8084);
}

static void scheme_helpers(void **state)
{
    (void)state;
    assert_int_equal(mqttc_scheme_default_port(MQTTC_SCHEME_MQTT), 1883);
    assert_int_equal(mqttc_scheme_default_port(MQTTC_SCHEME_MQTTS), 8883);
    assert_int_equal(mqttc_scheme_default_port(MQTTC_SCHEME_WS), 8083);
    assert_int_equal(mqttc_scheme_default_port(MQTTC_SCHEME_WSS), 8084);
    assert_int_equal(mqttc_scheme_default_port((mqttc_scheme)42), 0);
    assert_false(mqttc_scheme_is_tls(MQTTC_SCHEME_MQTT));
    assert_true(mqttc_scheme_is_tls(MQTTC_SCHEME_MQTTS));
    assert_false(mqttc_scheme_is_tls(MQTTC_SCHEME_WS));
    assert_true(mqttc_scheme_is_tls(MQTTC_SCHEME_WSS));
}

static void explicit_ports(void **state)
{
    (void)state;
    scheme_and_port("mqtt://broker.example:1884", MQTTC_SCHEME_MQTT, 1884);
    scheme_and_port("mqtts://broker.example:1", MQTTC_SCHEME_MQTTS, 1);
    scheme_and_port("ws://broker.example:65535", MQTTC_SCHEME_WS, 65535);
    scheme_and_port("wss://broker.example:00443", MQTTC_SCHEME_WSS, 443);
}

static void ipv4_and_names(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("mqtt://127.0.0.1:1883");
    assert_string_equal(u.host, "127.0.0.1");
    assert_false(u.ipv6_literal);
    u = parse_ok("tcp://localhost");
    assert_string_equal(u.host, "localhost");
    u = parse_ok("mqtt://my_broker-1.local.");
    assert_string_equal(u.host, "my_broker-1.local.");
}

static void ipv6_literals_lose_their_brackets(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("mqtt://[::1]");
    assert_string_equal(u.host, "::1");
    assert_true(u.ipv6_literal);
    assert_int_equal(u.port, 1883);

    u = parse_ok("mqtt://[::1]:1884");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 1884);

    u = parse_ok("wss://[2001:db8::42]:443/mqtt");
    assert_string_equal(u.host, "2001:db8::42");
    assert_int_equal(u.port, 443);
    assert_string_equal(u.path, "/mqtt");

    u = parse_ok("mqtt://[::ffff:192.0.2.1]");
    assert_string_equal(u.host, "::ffff:192.0.2.1");
}

/* RFC 6874: the zone id follows "%25"; the host keeps it as "addr%zone",
 * the form getaddrinfo() reads. */
static void ipv6_zone_ids_follow_rfc6874(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("mqtt://[fe80::1%25eth0]:1883");
    assert_string_equal(u.host, "fe80::1%eth0");
    assert_true(u.ipv6_literal);
    assert_int_equal(u.port, 1883);

    assert_bad("mqtt://[fe80::1%eth0]");  /* bare '%' */
    assert_bad("mqtt://[fe80::1%25]");    /* empty zone */
    assert_bad("mqtt://[fe80::1%25e/0]"); /* '/' ends the authority */
    assert_bad("mqtt://[fe80::1%25e:0]"); /* not unreserved */
}

static void userinfo_is_percent_decoded(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("mqtt://alice:s3cret@broker.example");
    assert_true(u.has_username);
    assert_true(u.has_password);
    assert_string_equal(u.username, "alice");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "broker.example");

    u = parse_ok("mqtts://al%40ice:p%3Aa%2fss%25w%c3%A9@broker.example:8884");
    assert_string_equal(u.username, "al@ice");
    assert_string_equal(u.password, "p:a/ss%w\xc3\xa9");
    assert_int_equal(u.port, 8884);

    u = parse_ok("mqtt://bob@broker.example");
    assert_true(u.has_username);
    assert_false(u.has_password);
    assert_string_equal(u.username, "bob");
    assert_string_equal(u.password, "");

    /* Everything after the first ':' is the password, ':' included. */
    u = parse_ok("mqtt://bob:a:b@[::1]");
    assert_string_equal(u.password, "a:b");
    assert_string_equal(u.host, "::1");

    /* Empty user name and password are kept as given (MQTT allows them). */
    u = parse_ok("mqtt://:@broker.example");
    assert_true(u.has_username);
    assert_true(u.has_password);
    assert_string_equal(u.username, "");
    assert_string_equal(u.password, "");
}

static void bad_percent_escapes(void **state)
{
    (void)state;
    assert_bad("mqtt://al%4@broker.example");
    assert_bad("mqtt://al%@broker.example");
    assert_bad("mqtt://al%zz@broker.example");
    assert_bad("mqtt://alice:pw%4@broker.example");
    assert_bad("mqtt://alice:pw%00x@broker.example"); /* would cut the string */
    assert_bad("mqtt://a@b@broker.example");          /* '@' must be %40 */
}

static void web_schemes_default_to_path_mqtt(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("ws://broker.example");
    assert_string_equal(u.path, "/mqtt");
    u = parse_ok("wss://broker.example:443");
    assert_string_equal(u.path, "/mqtt");
    u = parse_ok("ws://broker.example/");
    assert_string_equal(u.path, "/");
    u = parse_ok("wss://broker.example/custom/ws");
    assert_string_equal(u.path, "/custom/ws");
    u = parse_ok("ws://broker.example:8080/mqtt?token=abc&x=1");
    assert_string_equal(u.path, "/mqtt?token=abc&x=1");
    assert_int_equal(u.port, 8080);
}

/* The CLI reads a path on mqtt:// as a topic (like mosquitto's -L). */
static void tcp_schemes_keep_their_path(void **state)
{
    mqttc_uri u;

    (void)state;
    u = parse_ok("mqtt://broker.example");
    assert_string_equal(u.path, "");
    u = parse_ok("mqtt://u:p@broker.example:1884/sensors/+/temp");
    assert_string_equal(u.path, "/sensors/+/temp");
    assert_string_equal(u.host, "broker.example");
    u = parse_ok("mqtts://[::1]/a/b");
    assert_string_equal(u.path, "/a/b");
    u = parse_ok("mqtt://h/caf\xc3\xa9"); /* UTF-8 is kept as is */
    assert_string_equal(u.path, "/caf\xc3\xa9");
    u = parse_ok("mqtt://h/a/#"); /* a topic filter, as mosquitto's -L takes it */
    assert_string_equal(u.path, "/a/#");
}

static void bad_schemes(void **state)
{
    (void)state;
    assert_bad("http://broker.example");
    assert_bad("mqttx://broker.example");
    assert_bad("://broker.example");
    assert_bad("broker.example");
    assert_bad("broker.example:1883");
    assert_bad("mqtt:/broker.example");
    assert_bad("mqtt:broker.example");
    assert_bad("");
}

static void bad_hosts(void **state)
{
    (void)state;
    assert_bad("mqtt://");
    assert_bad("mqtt://:1883");
    assert_bad("mqtt:///topic");
    assert_bad("mqtt://user@");
    assert_bad("mqtt://user@:1883");
    assert_bad("mqtt://[]");
    assert_bad("mqtt://[::1");
    assert_bad("mqtt://[::1:1883");
    assert_bad("mqtt://::1]");
    assert_bad("mqtt://::1");        /* IPv6 needs brackets */
    assert_bad("mqtt://fe80::1:1883");
    assert_bad("mqtt://a:b:1883");
    assert_bad("mqtt://[::1]x");
    assert_bad("mqtt://[::1]1883");
    assert_bad("mqtt://[not:an:address]");
    assert_bad("mqtt://[127.0.0.1]"); /* brackets are for IPv6 only */
    assert_bad("mqtt://bro%6Bker");
    assert_bad("mqtt://bro[ker");
    assert_bad("mqtt://bro,ker");
}

static void bad_ports(void **state)
{
    (void)state;
    assert_bad("mqtt://broker.example:0");
    assert_bad("mqtt://broker.example:00000");
    assert_bad("mqtt://broker.example:65536");
    assert_bad("mqtt://broker.example:99999");
    assert_bad("mqtt://broker.example:100000");
    assert_bad("mqtt://broker.example:18834444444444444444444");
    assert_bad("mqtt://broker.example:");
    assert_bad("mqtt://broker.example:abc");
    assert_bad("mqtt://broker.example:18a3");
    assert_bad("mqtt://broker.example:-1");
    assert_bad("mqtt://broker.example:+1883");
    assert_bad("mqtt://[::1]:");
    assert_bad("mqtt://[::1]:65536");
}

static void bad_paths_queries_fragments(void **state)
{
    (void)state;
    assert_bad("mqtt://broker.example?x=1");
    assert_bad("ws://broker.example?x=1");
    assert_bad("mqtt://broker.example#frag");
    assert_bad("ws://broker.example/mqtt#frag");
}

static void spaces_and_control_characters(void **state)
{
    (void)state;
    assert_bad(" mqtt://broker.example");
    assert_bad("mqtt://broker.example ");
    assert_bad("mqtt://bro ker");
    assert_bad("mqtt://broker.example/a b");
    assert_bad("mqtt://us er@broker.example");
    assert_bad("mqtt://broker.example/a\tb");
    assert_bad("mqtt://broker.example/a\nb");
    assert_bad("mqtt://broker.example/a\x7f");
    assert_bad("mqtt://broker.example\r");
}

static void fill(char *dst, const char *prefix, size_t n, char c, const char *suffix)
{
    size_t p = strlen(prefix);

    memcpy(dst, prefix, p);
    memset(dst + p, c, n);
    strcpy(dst + p + n, suffix);
}

static void overlong_parts_are_refused_not_truncated(void **state)
{
    char s[2048];
    mqttc_uri u;

    (void)state;
    fill(s, "mqtt://", MQTTC_URI_HOST_MAX - 1, 'h', ":1883");
    u = parse_ok(s);
    assert_int_equal(strlen(u.host), MQTTC_URI_HOST_MAX - 1);
    fill(s, "mqtt://", MQTTC_URI_HOST_MAX, 'h', ":1883");
    assert_bad(s);

    fill(s, "ws://h/", MQTTC_URI_PATH_MAX - 2, 'p', "");
    u = parse_ok(s);
    assert_int_equal(strlen(u.path), MQTTC_URI_PATH_MAX - 1);
    fill(s, "ws://h/", MQTTC_URI_PATH_MAX - 1, 'p', "");
    assert_bad(s);

    fill(s, "mqtt://", MQTTC_URI_USER_MAX - 1, 'u', "@h");
    u = parse_ok(s);
    assert_int_equal(strlen(u.username), MQTTC_URI_USER_MAX - 1);
    fill(s, "mqtt://", MQTTC_URI_USER_MAX, 'u', "@h");
    assert_bad(s);

    /* Length counts decoded bytes: 255 x "%41" fits, 256 do not. */
    strcpy(s, "mqtt://u:");
    for (int i = 0; i < MQTTC_URI_USER_MAX - 1; i++) {
        strcat(s, "%41");
    }
    strcat(s, "@h");
    u = parse_ok(s);
    assert_int_equal(strlen(u.password), MQTTC_URI_USER_MAX - 1);
    assert_int_equal(u.password[0], 'A');
    strcpy(s + strlen(s) - 2, "%41@h");
    assert_bad(s);
}

static void null_arguments(void **state)
{
    mqttc_uri u;

    (void)state;
    assert_int_equal(mqttc_uri_parse(NULL, &u), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc_uri_parse("mqtt://h", NULL), MQTTC_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_scheme_has_its_default_port),
        cmocka_unit_test(schemes_are_case_insensitive),
        cmocka_unit_test(scheme_helpers),
        cmocka_unit_test(explicit_ports),
        cmocka_unit_test(ipv4_and_names),
        cmocka_unit_test(ipv6_literals_lose_their_brackets),
        cmocka_unit_test(ipv6_zone_ids_follow_rfc6874),
        cmocka_unit_test(userinfo_is_percent_decoded),
        cmocka_unit_test(bad_percent_escapes),
        cmocka_unit_test(web_schemes_default_to_path_mqtt),
        cmocka_unit_test(tcp_schemes_keep_their_path),
        cmocka_unit_test(bad_schemes),
        cmocka_unit_test(bad_hosts),
        cmocka_unit_test(bad_ports),
        cmocka_unit_test(bad_paths_queries_fragments),
        cmocka_unit_test(spaces_and_control_characters),
        cmocka_unit_test(overlong_parts_are_refused_not_truncated),
        cmocka_unit_test(null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
