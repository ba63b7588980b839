/*
 * Unit tests for UTF-8 validation (MQTT-1.5.3), topic names and filters
 * (MQTT-4.7) and the error strings (error.h).
 *
 * Every string is passed with an explicit length: none of these functions may
 * rely on a terminating NUL.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttc/codec.h"
#include "mqttc/error.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

/*
 * mqttc_utf8_check() on a hex vector, from a heap copy of exactly its length
 * so that ASan reports any read past the end.
 */
static int utf8_hex(const char *hex)
{
    uint8_t tmp[64];
    size_t n = tu_unhex(hex, tmp, sizeof tmp);
    char *s = malloc(n > 0 ? n : 1);
    assert_non_null(s);
    memcpy(s, tmp, n);
    int rc = mqttc_utf8_check(s, n);
    free(s);
    return rc;
}

/* Runs `fn` on an exact-length heap copy of a C string (no NUL after it). */
static int on_heap(int (*fn)(const char *, size_t), const char *str)
{
    size_t n = strlen(str);
    char *s = malloc(n > 0 ? n : 1);
    assert_non_null(s);
    memcpy(s, str, n);
    int rc = fn(s, n);
    free(s);
    return rc;
}

static bool matches(const char *filter, const char *name)
{
    size_t fl = strlen(filter);
    size_t nl = strlen(name);
    char *f = malloc(fl > 0 ? fl : 1);
    char *n = malloc(nl > 0 ? nl : 1);
    assert_non_null(f);
    assert_non_null(n);
    memcpy(f, filter, fl);
    memcpy(n, name, nl);
    bool r = mqttc_topic_matches(f, fl, n, nl);
    free(f);
    free(n);
    return r;
}

#define expect_match(filter, name) check_match((filter), (name), true, __FILE__, __LINE__)
#define expect_no_match(filter, name) check_match((filter), (name), false, __FILE__, __LINE__)

static void check_match(const char *filter, const char *name, bool want, const char *file,
                        int line)
{
    if (matches(filter, name) != want) {
        print_error("filter \"%s\" %s match name \"%s\"\n", filter,
                    want ? "should" : "should not", name);
        _fail(file, line);
    }
}

/* ---- UTF-8 (MQTT-1.5.3, RFC 3629) ---------------------------------------- */

static void test_utf8_accepts_ascii_and_empty(void **state)
{
    (void)state;
    assert_code(utf8_hex(""), 0);
    assert_code(utf8_hex("68 65 6C 6C 6F 2F 77 6F 72 6C 64"), 0); /* "hello/world" */
    assert_code(utf8_hex("7F"), 0);
    assert_code(utf8_hex("01"), 0); /* control characters are only SHOULD NOT */
}

static void test_utf8_accepts_two_three_and_four_byte_sequences(void **state)
{
    (void)state;
    assert_code(utf8_hex("C2 80"), 0);       /* U+0080, smallest 2-byte */
    assert_code(utf8_hex("C3 A9"), 0);       /* U+00E9 */
    assert_code(utf8_hex("DF BF"), 0);       /* U+07FF, largest 2-byte */
    assert_code(utf8_hex("E0 A0 80"), 0);    /* U+0800, smallest 3-byte */
    assert_code(utf8_hex("E2 82 AC"), 0);    /* U+20AC */
    assert_code(utf8_hex("ED 9F BF"), 0);    /* U+D7FF, just below the surrogates */
    assert_code(utf8_hex("EE 80 80"), 0);    /* U+E000, just above the surrogates */
    assert_code(utf8_hex("F0 90 80 80"), 0); /* U+10000, smallest 4-byte */
    assert_code(utf8_hex("F0 9F 98 80"), 0); /* U+1F600 */
    assert_code(utf8_hex("F4 8F BF BF"), 0); /* U+10FFFF, the largest code point */
    assert_code(utf8_hex("61 C3 A9 E2 82 AC F0 9F 98 80 7A"), 0); /* mixed */
}

static void test_utf8_allows_byte_order_mark(void **state)
{
    (void)state;
    /* MQTT-1.5.3-3: EF BB BF is U+FEFF and must not be skipped or stripped. */
    assert_code(utf8_hex("EF BB BF"), 0);
    assert_code(utf8_hex("EF BB BF 61"), 0);
    assert_code(utf8_hex("61 EF BB BF"), 0);
}

static void test_utf8_rejects_null_character(void **state)
{
    (void)state;
    /* MQTT-1.5.3-2 */
    assert_code(utf8_hex("00"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("61 00 62"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("61 62 00"), MQTTC_ERR_BAD_UTF8);
}

static void test_utf8_rejects_surrogates(void **state)
{
    (void)state;
    /* MQTT-1.5.3-1: U+D800..U+DFFF must not appear. */
    assert_code(utf8_hex("ED A0 80"), MQTTC_ERR_BAD_UTF8); /* U+D800 */
    assert_code(utf8_hex("ED BF BF"), MQTTC_ERR_BAD_UTF8); /* U+DFFF */
    assert_code(utf8_hex("ED B0 80"), MQTTC_ERR_BAD_UTF8); /* U+DC00 */
    assert_code(utf8_hex("ED A0 BD ED B8 80"), MQTTC_ERR_BAD_UTF8); /* CESU-8 pair */
}

static void test_utf8_rejects_overlong_forms(void **state)
{
    (void)state;
    assert_code(utf8_hex("C0 80"), MQTTC_ERR_BAD_UTF8);       /* U+0000 in two bytes */
    assert_code(utf8_hex("C1 BF"), MQTTC_ERR_BAD_UTF8);       /* U+007F in two bytes */
    assert_code(utf8_hex("C0 AF"), MQTTC_ERR_BAD_UTF8);       /* '/' in two bytes */
    assert_code(utf8_hex("E0 80 80"), MQTTC_ERR_BAD_UTF8);    /* U+0000 in three bytes */
    assert_code(utf8_hex("E0 9F BF"), MQTTC_ERR_BAD_UTF8);    /* U+07FF in three bytes */
    assert_code(utf8_hex("F0 80 80 80"), MQTTC_ERR_BAD_UTF8); /* U+0000 in four bytes */
    assert_code(utf8_hex("F0 8F BF BF"), MQTTC_ERR_BAD_UTF8); /* U+FFFF in four bytes */
}

static void test_utf8_rejects_code_points_above_10ffff(void **state)
{
    (void)state;
    assert_code(utf8_hex("F4 90 80 80"), MQTTC_ERR_BAD_UTF8); /* U+110000 */
    assert_code(utf8_hex("F4 BF BF BF"), MQTTC_ERR_BAD_UTF8);
}

static void test_utf8_rejects_truncated_sequences(void **state)
{
    (void)state;
    assert_code(utf8_hex("C3"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("E2 82"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("E2"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("F0 9F 98"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("61 62 E2"), MQTTC_ERR_BAD_UTF8);
    /* A lead byte followed by something that is not a continuation byte. */
    assert_code(utf8_hex("C3 28"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("E2 28 A1"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("E2 82 28"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("F0 9F 98 28"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("C3 C3 A9"), MQTTC_ERR_BAD_UTF8);
}

static void test_utf8_rejects_stray_continuation_bytes(void **state)
{
    (void)state;
    assert_code(utf8_hex("80"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("BF"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("61 80 62"), MQTTC_ERR_BAD_UTF8);
    assert_code(utf8_hex("C3 A9 A9"), MQTTC_ERR_BAD_UTF8); /* one continuation too many */
}

static void test_utf8_rejects_bytes_f5_to_ff(void **state)
{
    (void)state;
    for (unsigned b = 0xF5; b <= 0xFF; b++) {
        char s[4] = { (char)b, (char)0x80, (char)0x80, (char)0x80 };
        if (mqttc_utf8_check(s, 1) != MQTTC_ERR_BAD_UTF8 ||
            mqttc_utf8_check(s, 4) != MQTTC_ERR_BAD_UTF8) {
            print_error("byte 0x%02X accepted\n", b);
            fail();
        }
    }
}

static void test_utf8_uses_the_length_not_a_terminator(void **state)
{
    (void)state;
    const char s[] = { 'a', 'b', (char)0xC3 };
    assert_code(mqttc_utf8_check(s, 2), 0);                  /* stops before the lead byte */
    assert_code(mqttc_utf8_check(s, 3), MQTTC_ERR_BAD_UTF8); /* includes it */
    assert_code(mqttc_utf8_check("ab\0cd", 2), 0);
}

/* ---- topic names (MQTT-4.7.3, MQTT-3.3.2-2) ------------------------------ */

static void test_topic_name_accepts_valid_names(void **state)
{
    (void)state;
    const char *good[] = { "a", "a/b", "/a", "a/", "/", "//", "a//b", "$SYS/x", "sport/tennis",
                           "with space", "\xc3\xa9t\xc3\xa9/\xe2\x82\xac" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (on_heap(mqttc_topic_name_check, good[i]) != 0) {
            print_error("topic name \"%s\" rejected\n", good[i]);
            fail();
        }
    }
}

static void test_topic_name_rejects_empty_and_wildcards(void **state)
{
    (void)state;
    const char *bad[] = { "", "+", "#", "a/+", "a/#", "+/a", "a+", "a#b", "sport/tennis/#" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = on_heap(mqttc_topic_name_check, bad[i]);
        if (rc != MQTTC_ERR_BAD_TOPIC) {
            print_error("topic name \"%s\": got %d (%s)\n", bad[i], rc, mqttc_errname(rc));
            fail();
        }
    }
}

static void test_topic_name_rejects_bad_utf8(void **state)
{
    (void)state;
    assert_code(mqttc_topic_name_check("a\0b", 3), MQTTC_ERR_BAD_UTF8);
    assert_code(mqttc_topic_name_check("a/\xed\xa0\x80", 5), MQTTC_ERR_BAD_UTF8);
    assert_code(mqttc_topic_name_check("\xc0\xaf", 2), MQTTC_ERR_BAD_UTF8);
}

static void test_topic_name_length_limit(void **state)
{
    (void)state;
    static char big[65536];
    memset(big, 'a', sizeof big);
    assert_code(mqttc_topic_name_check(big, 65535), 0);
    /* Over 65,535 bytes (MQTT-1.5.3): the header names no code, only failure. */
    assert_true(mqttc_topic_name_check(big, 65536) < 0);
}

/* ---- topic filters (MQTT-4.7.1) ------------------------------------------ */

static void test_topic_filter_accepts_valid_filters(void **state)
{
    (void)state;
    const char *good[] = { "#",       "+",     "a/#",    "+/+",    "/+",     "a/+/b",
                           "sport/tennis/#",   "+/#",    "$SYS/#", "a",      "/",
                           "+/tennis/#",       "sport/+/player1",   "a//b",   "//#" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (on_heap(mqttc_topic_filter_check, good[i]) != 0) {
            print_error("filter \"%s\" rejected\n", good[i]);
            fail();
        }
    }
}

static void test_topic_filter_rejects_misplaced_wildcards(void **state)
{
    (void)state;
    /* MQTT-4.7.1-2 ('#' alone, last) and MQTT-4.7.1-3 ('+' occupies a whole level) */
    const char *bad[] = { "a#", "a/#/b", "a+", "a/b+", "#/a", "++", "", "+a", "a/+b/c",
                          "sport/tennis#", "sport/tennis/#/ranking", "##", "#+", "a/b/#/" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = on_heap(mqttc_topic_filter_check, bad[i]);
        if (rc != MQTTC_ERR_BAD_FILTER) {
            print_error("filter \"%s\": got %d (%s)\n", bad[i], rc, mqttc_errname(rc));
            fail();
        }
    }
}

static void test_topic_filter_rejects_bad_utf8(void **state)
{
    (void)state;
    assert_code(mqttc_topic_filter_check("a\0b", 3), MQTTC_ERR_BAD_UTF8);
    assert_code(mqttc_topic_filter_check("+/\xff", 3), MQTTC_ERR_BAD_UTF8);
}

/* ---- matching (MQTT-4.7.1, MQTT-4.7.2) ----------------------------------- */

static void test_multi_level_wildcard_matches_parent_and_children(void **state)
{
    (void)state;
    /* MQTT-4.7.1.2 examples */
    expect_match("sport/tennis/player1/#", "sport/tennis/player1");
    expect_match("sport/tennis/player1/#", "sport/tennis/player1/ranking");
    expect_match("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon");
    expect_match("sport/#", "sport");
    expect_match("sport/#", "sport/tennis/player1");
    expect_match("#", "sport");
    expect_match("#", "a/b/c");
    expect_match("#", "/");
    expect_no_match("sport/tennis/player1/#", "sport/tennis/player2");
    expect_no_match("sport/tennis/player1/#", "sport/tennis");
    expect_no_match("sport/#", "sports");
}

static void test_single_level_wildcard_matches_exactly_one_level(void **state)
{
    (void)state;
    /* MQTT-4.7.1.3 examples */
    expect_match("sport/tennis/+", "sport/tennis/player1");
    expect_match("sport/tennis/+", "sport/tennis/player2");
    expect_no_match("sport/tennis/+", "sport/tennis/player1/ranking");
    expect_no_match("sport/+", "sport");
    expect_match("sport/+", "sport/");
    expect_match("+/+", "/finance");
    expect_match("/+", "/finance");
    expect_no_match("+", "/finance");
    expect_match("+", "finance");
    expect_match("+/tennis/#", "sport/tennis/player1/ranking");
    expect_match("sport/+/player1", "sport/tennis/player1");
    expect_no_match("sport/+/player1", "sport/tennis/player2");
    expect_no_match("+/+", "a");
    expect_no_match("+/+", "a/b/c");
    expect_match("a/+/#", "a/b");
}

static void test_filters_without_wildcards_match_exactly(void **state)
{
    (void)state;
    expect_match("a/b", "a/b");
    expect_no_match("a/b", "a/c");
    expect_no_match("a/b", "a/b/c");
    expect_no_match("a/b/c", "a/b");
    expect_no_match("a/b", "a/bc");
    expect_no_match("a/bc", "a/b");
    expect_no_match("a", "A"); /* case-sensitive */
    expect_no_match("a/b", "a/b/");
    expect_match("/", "/");
    expect_no_match("/", "//");
}

static void test_wildcards_in_first_level_do_not_match_dollar_topics(void **state)
{
    (void)state;
    /* MQTT-4.7.2-1 */
    expect_no_match("#", "$SYS/monitor/Clients");
    expect_no_match("+/monitor/Clients", "$SYS/monitor/Clients");
    expect_match("$SYS/#", "$SYS/monitor/Clients");
    expect_match("$SYS/monitor/+", "$SYS/monitor/Clients");
    expect_no_match("#", "$SYS");
    expect_no_match("+", "$foo");
    /* Only the first level is special. */
    expect_match("a/+", "a/$x");
    expect_match("a/#", "a/$x/y");
}

static void test_matching_uses_lengths_not_terminators(void **state)
{
    (void)state;
    const char filter[] = "a/+XYZ";
    const char name[] = "a/bc/d";
    assert_true(mqttc_topic_matches(filter, 3, name, 4));  /* "a/+" vs "a/bc" */
    assert_false(mqttc_topic_matches(filter, 3, name, 6)); /* "a/+" vs "a/bc/d" */
    assert_true(mqttc_topic_matches("a/b", 3, "a/bX", 3));
    assert_false(mqttc_topic_matches("a/bX", 4, "a/b", 3));
}

/* ---- error strings (error.h) ---------------------------------------------- */

static const struct {
    int code;
    const char *name;
    const char *message;
} ERRORS[] = {
#define ERROR_ENTRY(name, value, msg) { (value), "MQTTC_ERR_" #name, (msg) },
    MQTTC_ERROR_LIST(ERROR_ENTRY)
#undef ERROR_ENTRY
};
#define N_ERRORS (sizeof ERRORS / sizeof ERRORS[0])

static void test_every_error_has_its_message_and_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        const char *msg = mqttc_strerror(ERRORS[i].code);
        const char *name = mqttc_errname(ERRORS[i].code);
        assert_non_null(msg);
        assert_non_null(name);
        assert_true(msg[0] != '\0');
        assert_string_equal(msg, ERRORS[i].message);
        assert_string_equal(name, ERRORS[i].name);
    }
}

static void test_error_messages_and_names_are_distinct(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_ERRORS; i++) {
        assert_true(ERRORS[i].code <= 0);
        for (size_t j = i + 1; j < N_ERRORS; j++) {
            assert_true(ERRORS[i].code != ERRORS[j].code);
            if (strcmp(mqttc_strerror(ERRORS[i].code), mqttc_strerror(ERRORS[j].code)) == 0 ||
                strcmp(mqttc_errname(ERRORS[i].code), mqttc_errname(ERRORS[j].code)) == 0) {
                print_error("%s and %s share a message or a name\n", ERRORS[i].name,
                            ERRORS[j].name);
                fail();
            }
        }
    }
}

static bool is_listed(int code)
{
    for (size_t j = 0; j < N_ERRORS; j++) {
        if (ERRORS[j].code == code) {
            return true;
        }
    }
    return false;
}

static void test_unknown_error_codes_are_described_as_unknown(void **state)
{
    (void)state;
    /* Every gap in the list, a few codes below its end, and INT_MIN. */
    int lowest = 0;
    for (size_t j = 0; j < N_ERRORS; j++) {
        lowest = ERRORS[j].code < lowest ? ERRORS[j].code : lowest;
    }
    size_t tested = 0;
    for (int code = lowest - 3; code < 0; code++) {
        if (is_listed(code)) {
            continue;
        }
        assert_string_equal(mqttc_strerror(code), "unknown error");
        assert_string_equal(mqttc_errname(code), "MQTTC_ERR_UNKNOWN");
        tested++;
    }
    const int far[] = { lowest - 1000, -2147483647 - 1 };
    for (size_t i = 0; i < sizeof far / sizeof far[0]; i++) {
        assert_false(is_listed(far[i]));
        assert_string_equal(mqttc_strerror(far[i]), "unknown error");
        assert_string_equal(mqttc_errname(far[i]), "MQTTC_ERR_UNKNOWN");
    }
    assert_true(tested >= 3);
}

static void test_non_negative_values_read_as_success(void **state)
{
    (void)state;
    assert_string_equal(mqttc_strerror(0), "success");
    assert_string_equal(mqttc_strerror(1), "success");
    assert_string_equal(mqttc_strerror(4096), "success");
}

/* The word-at-a-time fast path must see a bad byte at every position, and
 * hand a multi-byte character that starts anywhere to the full check. */
static void test_checks_find_bad_bytes_at_every_position(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 40; len++) {
        for (size_t at = 0; at < len; at++) {
            char buf[48];
            memset(buf, 'a', len);
            buf[at] = '\0';
            assert_code(mqttc_utf8_check(buf, len), MQTTC_ERR_BAD_UTF8);
            assert_code(mqttc_topic_name_check(buf, len), MQTTC_ERR_BAD_UTF8);
            buf[at] = '+';
            assert_code(mqttc_utf8_check(buf, len), 0);
            assert_code(mqttc_topic_name_check(buf, len), MQTTC_ERR_BAD_TOPIC);
            buf[at] = '#';
            assert_code(mqttc_topic_name_check(buf, len), MQTTC_ERR_BAD_TOPIC);
            buf[at] = (char)0x80; /* stray continuation byte */
            assert_code(mqttc_utf8_check(buf, len), MQTTC_ERR_BAD_UTF8);
            assert_code(mqttc_topic_name_check(buf, len), MQTTC_ERR_BAD_UTF8);
            if (at + 1 < len) {
                buf[at] = (char)0xC3; /* e-acute: valid */
                buf[at + 1] = (char)0xA9;
                assert_code(mqttc_utf8_check(buf, len), 0);
                assert_code(mqttc_topic_name_check(buf, len), 0);
                buf[at + 1] = '('; /* lead byte without its continuation */
                assert_code(mqttc_utf8_check(buf, len), MQTTC_ERR_BAD_UTF8);
                assert_code(mqttc_topic_name_check(buf, len), MQTTC_ERR_BAD_UTF8);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checks_find_bad_bytes_at_every_position),
        cmocka_unit_test(test_utf8_accepts_ascii_and_empty),
        cmocka_unit_test(test_utf8_accepts_two_three_and_four_byte_sequences),
        cmocka_unit_test(test_utf8_allows_byte_order_mark),
        cmocka_unit_test(test_utf8_rejects_null_character),
        cmocka_unit_test(test_utf8_rejects_surrogates),
        cmocka_unit_test(test_utf8_rejects_overlong_forms),
        cmocka_unit_test(test_utf8_rejects_code_points_above_10ffff),
        cmocka_unit_test(test_utf8_rejects_truncated_sequences),
        cmocka_unit_test(test_utf8_rejects_stray_continuation_bytes),
        cmocka_unit_test(test_utf8_rejects_bytes_f5_to_ff),
        cmocka_unit_test(test_utf8_uses_the_length_not_a_terminator),
        cmocka_unit_test(test_topic_name_accepts_valid_names),
        cmocka_unit_test(test_topic_name_rejects_empty_and_wildcards),
        cmocka_unit_test(test_topic_name_rejects_bad_utf8),
        cmocka_unit_test(test_topic_name_length_limit),
        cmocka_unit_test(test_topic_filter_accepts_valid_filters),
        cmocka_unit_test(test_topic_filter_rejects_misplaced_wildcards),
        cmocka_unit_test(test_topic_filter_rejects_bad_utf8),
        cmocka_unit_test(test_multi_level_wildcard_matches_parent_and_children),
        cmocka_unit_test(test_single_level_wildcard_matches_exactly_one_level),
        cmocka_unit_test(test_filters_without_wildcards_match_exactly),
        cmocka_unit_test(test_wildcards_in_first_level_do_not_match_dollar_topics),
        cmocka_unit_test(test_matching_uses_lengths_not_terminators),
        cmocka_unit_test(test_every_error_has_its_message_and_name),
        cmocka_unit_test(test_error_messages_and_names_are_distinct),
        cmocka_unit_test(test_unknown_error_codes_are_described_as_unknown),
        cmocka_unit_test(test_non_negative_values_read_as_success),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
