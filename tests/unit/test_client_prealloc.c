/* Integration: a client created with `preallocate` calls no allocator once
 * it is connected and subscribed — publishing at QoS 0/1/2, receiving its own
 * messages back, acknowledging both ways and keepalive — against a real
 * mosquitto. Every malloc/calloc/realloc made by code linked into this
 * program goes through the counting wrappers below (-Wl,--wrap, set for this
 * test in tests/CMakeLists.txt); the client runs in caller mode on this
 * thread, so the count over the window is the library's. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static atomic_int counting;      /* 1 while the window is open */
static atomic_long alloc_calls;  /* allocator calls inside the window */

void *__wrap_malloc(size_t n)
{
    atomic_fetch_add(&alloc_calls, atomic_load(&counting));
    return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    atomic_fetch_add(&alloc_calls, atomic_load(&counting));
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    atomic_fetch_add(&alloc_calls, atomic_load(&counting));
    return __real_realloc(p, n);
}

/* What the callback sees; it allocates nothing itself. */
typedef struct seen {
    int connected, subscribed, published, messages, dropped, errors;
} seen;

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    seen *s = user;
    (void)c;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        s->connected++;
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        s->subscribed++;
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
        s->published++;
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        s->messages++;
        break;
    case MQTTC_CLIENT_EV_DROPPED:
        s->dropped++;
        break;
    case MQTTC_CLIENT_EV_ERROR:
    case MQTTC_CLIENT_EV_DISCONNECTED:
        s->errors++;
        break;
    default:
        break;
    }
}

static int setup(void **state)
{
    *state = it_new(NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    it_free(*state);
    return 0;
}

/* Drive the client until *counter reaches n, for at most `ms`. */
static bool drive_until(mqttc_client *c, const int *counter, int n, int ms)
{
    uint64_t end = broker_now_ms() + (uint64_t)ms;
    while (*counter < n && broker_now_ms() < end) {
        mqttc_client_loop(c, 10);
    }
    return *counter >= n;
}

static void steady_state_allocates_nothing(void **state)
{
    itest *t = *state;
    static seen s; /* touched by the callback: not on a stack cmocka may unwind */
    mqttc_client_config cfg;
    mqttc_client *c;
    char uri[64];
    const int n = 600; /* 200 at each QoS */
    const uint8_t big[300] = {0};

    memset(&s, 0, sizeof s);
    it_config(t, &cfg, uri, "prealloc");
    cfg.on_log = NULL; /* logging formats on the stack, but keep the window quiet */
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.preallocate = true;
    cfg.queue_max_msgs = 64;
    cfg.prealloc_message_size = 128;
    cfg.keepalive = 1; /* a PINGREQ/PINGRESP inside the window */
    cfg.on_event = on_event;
    cfg.user = &s;
    assert_int_equal(mqttc_client_create(&cfg, &c), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(drive_until(c, &s.connected, 1, IT_TIMEOUT_MS));
    assert_true(mqttc_client_subscribe(c, "prealloc/#", 2) > 0);
    assert_true(drive_until(c, &s.subscribed, 1, IT_TIMEOUT_MS));

    atomic_store(&alloc_calls, 0);
    atomic_store(&counting, 1);
    for (int i = 0; i < n; i++) {
        char payload[32];
        int len = snprintf(payload, sizeof payload, "message %d", i);
        int rc;
        do { /* the pool is the queue: wait for room */
            rc = mqttc_client_publish(c, "prealloc/t", payload, (size_t)len, i % 3, false);
            if (rc == MQTTC_ERR_QUEUE_FULL) {
                mqttc_client_loop(c, 10);
            }
        } while (rc == MQTTC_ERR_QUEUE_FULL);
        assert_true(rc >= 0);
    }
    bool all = drive_until(c, &s.published, n, IT_TIMEOUT_MS) &&
               drive_until(c, &s.messages, n, IT_TIMEOUT_MS);
    uint64_t idle_end = broker_now_ms() + 1600; /* keepalive 1 s: a ping each way */
    while (broker_now_ms() < idle_end) {
        mqttc_client_loop(c, 100);
    }
    atomic_store(&counting, 0);
    long calls = atomic_load(&alloc_calls);
    print_message("preallocated client: %d published, %d received, %ld allocator calls\n",
                  s.published, s.messages, calls);
    assert_true(all);
    assert_int_equal(calls, 0);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(s.errors, 0);

    /* The limits of the preallocated nodes. */
    assert_int_equal(mqttc_client_publish(c, "prealloc/big", big, sizeof big, 1, false),
                     MQTTC_ERR_TOO_LARGE);
    mqttc_client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(steady_state_allocates_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
