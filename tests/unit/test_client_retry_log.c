/* The client's reconnect schedule (fixed interval; exponential backoff with
 * jitter and a cap) and its logging (levels, debug switch, silence without a
 * log callback). No broker: attempts go to a closed loopback port, which
 * fails at once, so the intervals are the client's own delays. Timing is
 * checked with generous bounds only in the direction a loaded machine
 * cannot break (delays can only grow longer, never shorter). */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqttc/client.h"

#define MAX_ERRORS 16
#define MAX_LOGS 256

typedef struct rec {
    uint64_t at[MAX_ERRORS]; /* ms of each ERROR event */
    int codes[MAX_ERRORS];
    size_t nerr;
    int levels[MAX_LOGS];
    char lines[MAX_LOGS][128];
    size_t nlog;
} rec;

static uint64_t ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A loopback port with nothing listening. */
static uint16_t closed_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    rec *r = user;
    (void)c;
    if (ev->type == MQTTC_CLIENT_EV_ERROR && r->nerr < MAX_ERRORS) {
        r->at[r->nerr] = ms_now();
        r->codes[r->nerr] = ev->u.error.code;
        r->nerr++;
    }
}

static void on_log(mqttc_log_level level, const char *msg, void *user)
{
    rec *r = user;
    if (r->nlog < MAX_LOGS) {
        r->levels[r->nlog] = (int)level;
        snprintf(r->lines[r->nlog], sizeof r->lines[0], "%s", msg);
        r->nlog++;
    }
}

static mqttc_client *make(rec *r, uint32_t first_ms, uint32_t max_ms, char *uri, size_t cap)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    snprintf(uri, cap, "mqtt://127.0.0.1:%u", closed_port());
    mqttc_client_config_init(&cfg);
    cfg.uri = uri;
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = first_ms;
    cfg.reconnect_max_ms = max_ms;
    cfg.on_event = on_event;
    cfg.user = r;
    cfg.on_log = on_log;
    cfg.log_user = r;
    assert_int_equal(mqttc_client_create(&cfg, &c), 0);
    return c;
}

/* Run the caller-driven loop until `n` errors were reported (at most 20 s). */
static void run_until_errors(mqttc_client *c, rec *r, size_t n)
{
    uint64_t end = ms_now() + 20000;
    while (r->nerr < n && ms_now() < end) {
        assert_int_equal(mqttc_client_loop(c, 50), 0);
    }
    assert_true(r->nerr >= n);
}

static void fixed_interval_retries_at_that_interval(void **state)
{
    rec r;
    char uri[64];
    size_t i;
    mqttc_client *c;
    (void)state;
    memset(&r, 0, sizeof r);
    c = make(&r, 100, 0, uri, sizeof uri);
    assert_int_equal(mqttc_client_connect(c), 0);
    run_until_errors(c, &r, 7);
    for (i = 0; i < r.nerr; i++) {
        assert_int_equal(r.codes[i], MQTTC_ERR_CONNECT_REFUSED);
    }
    for (i = 1; i < 7; i++) {
        uint64_t gap = r.at[i] - r.at[i - 1];
        assert_true(gap >= 95); /* never sooner than the interval */
        /* and it does not grow: doubling from 100 ms would reach 3.2 s */
        assert_true(gap < 1500);
    }
    mqttc_client_destroy(c);
}

static void backoff_doubles_with_jitter_up_to_the_cap(void **state)
{
    rec r;
    char uri[64];
    size_t i;
    uint32_t d = 50;
    mqttc_client *c;
    (void)state;
    memset(&r, 0, sizeof r);
    c = make(&r, 50, 400, uri, sizeof uri);
    assert_int_equal(mqttc_client_connect(c), 0);
    run_until_errors(c, &r, 8);
    /* Delays 50, 100, 200, 400, 400, ...; each waited in [d/2, d] ("equal
     * jitter"). The lower bound shows the doubling and the cap. */
    for (i = 1; i < 8; i++) {
        uint64_t gap = r.at[i] - r.at[i - 1];
        if (gap + 5 < d / 2) {
            fail_msg("attempt %zu came %llu ms after the previous one; the delay was %u ms, "
                     "so at least %u ms",
                     i, (unsigned long long)gap, d, d / 2);
        }
        d = d * 2 > 400 ? 400 : d * 2;
    }
    /* With the cap at 400 ms the late gaps stay near it (not 800, 1600...). */
    assert_true(r.at[7] - r.at[6] < 3000);
    mqttc_client_destroy(c);
}

static bool logged(const rec *r, int level, const char *needle)
{
    size_t i;
    for (i = 0; i < r->nlog; i++) {
        if (r->levels[i] == level && strstr(r->lines[i], needle) != NULL) {
            return true;
        }
    }
    return false;
}

static size_t count_level(const rec *r, int level)
{
    size_t i, n = 0;
    for (i = 0; i < r->nlog; i++) {
        n += r->levels[i] == level;
    }
    return n;
}

static void log_levels_and_debug_switch(void **state)
{
    rec r;
    char uri[64];
    mqttc_client *c;
    (void)state;
    memset(&r, 0, sizeof r);
    c = make(&r, 20, 0, uri, sizeof uri);
    /* Default level WARN: the failure is logged, debug chatter is not. */
    assert_int_equal(mqttc_client_connect(c), 0);
    run_until_errors(c, &r, 1);
    assert_true(logged(&r, MQTTC_LOG_WARN, "connection refused"));
    assert_int_equal(count_level(&r, MQTTC_LOG_DEBUG), 0);
    assert_int_equal(count_level(&r, MQTTC_LOG_INFO), 0);
    /* The debug switch lets DEBUG lines through... */
    mqttc_client_set_debug(c, true);
    run_until_errors(c, &r, 3);
    assert_true(logged(&r, MQTTC_LOG_DEBUG, "connecting to 127.0.0.1"));
    /* ...and back off again. */
    mqttc_client_set_debug(c, false);
    r.nlog = 0;
    run_until_errors(c, &r, 5);
    assert_int_equal(count_level(&r, MQTTC_LOG_DEBUG), 0);
    assert_true(count_level(&r, MQTTC_LOG_WARN) > 0);
    mqttc_client_destroy(c);
}

/* Without a log callback the library prints nothing at all. */
static void no_log_callback_prints_nothing(void **state)
{
    rec r;
    char uri[64], path[] = "/tmp/mqttc-silence-XXXXXX";
    mqttc_client_config cfg;
    mqttc_client *c;
    int out, saved1, saved2;
    off_t size;
    (void)state;
    memset(&r, 0, sizeof r);
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", closed_port());
    mqttc_client_config_init(&cfg);
    cfg.uri = uri;
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 20;
    cfg.log_level = MQTTC_LOG_DEBUG; /* even when asking for everything */
    cfg.on_event = on_event;
    cfg.user = &r;
    out = mkstemp(path);
    assert_true(out >= 0);
    fflush(stdout);
    fflush(stderr);
    saved1 = dup(1);
    saved2 = dup(2);
    dup2(out, 1);
    dup2(out, 2);
    assert_int_equal(mqttc_client_create(&cfg, &c), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    run_until_errors(c, &r, 3);
    mqttc_client_destroy(c);
    fflush(stdout);
    fflush(stderr);
    dup2(saved1, 1);
    dup2(saved2, 2);
    close(saved1);
    close(saved2);
    size = lseek(out, 0, SEEK_END);
    close(out);
    unlink(path);
    assert_int_equal(size, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixed_interval_retries_at_that_interval),
        cmocka_unit_test(backoff_doubles_with_jitter_up_to_the_cap),
        cmocka_unit_test(log_levels_and_debug_switch),
        cmocka_unit_test(no_log_callback_prints_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
