/**
 * @file itest.h
 * @brief Helpers for the client integration tests (tests/unit/test_client_*.c):
 *        an event recorder, a registry of clients torn down in one place,
 *        bounded waits, and a raw MQTT socket.
 *
 * The recorder is the clients' event callback. In MQTTC_RUN_THREAD mode the
 * events arrive on the client's thread, so everything the recorder keeps is
 * guarded by its mutex, and waiters sleep on its condition variable with a
 * deadline. In MQTTC_RUN_CALLER mode a wait is given the client to drive and
 * calls mqttc_client_loop() in short slices until the condition holds or the
 * deadline passes.
 *
 * The itest owns its broker, its clients and their recorders: it_free()
 * destroys the clients first (so no callback can run into freed memory when
 * a test fails half-way), then the recorders, then the broker. Tests keep
 * state that a hook touches in the heap or in static storage, never on the
 * stack of a test function that may longjmp out on a failed assertion.
 *
 * Plain functions: no cmocka calls, no global state.
 */
#ifndef MQTTC_TESTS_ITEST_H
#define MQTTC_TESTS_ITEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "mqttc/client.h"
#include "mqttc/codec.h"

/** Default bound for a wait that should take milliseconds. */
#define IT_TIMEOUT_MS 15000
#define IT_MAX_CLIENTS 16
#define IT_MAX_GRANTED 256
#define IT_MAX_ERRORS 256
#define IT_MAX_ORDER 4096
#define IT_NTYPES 16

/** A received message (or piece), copied out of the event. */
typedef struct it_msg {
    char *topic; /**< NUL-terminated copy */
    uint8_t *payload;
    size_t len, offset, total;
    int msg_id;
    uint8_t qos;
    bool retain, dup;
} it_msg;

/** Called after the recorder has recorded `ev`, without the recorder's lock. */
typedef void (*it_hook)(mqttc_client *c, const mqttc_client_event *ev, void *user);

/** What happened to one client. Read it under it_lock() while the client runs. */
typedef struct it_rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char name[64];

    size_t count[IT_NTYPES]; /**< events by mqttc_client_event_type */
    mqttc_client_event_type order[IT_MAX_ORDER];
    size_t norder;

    bool session_present; /**< of the last CONNECTED */
    int disc_reason;      /**< of the last DISCONNECTED */
    bool disc_will_reconnect;

    struct {
        int code;
        mqttc_error_kind kind;
        uint8_t connack_code;
    } errors[IT_MAX_ERRORS]; /**< the first IT_MAX_ERRORS ERROR events */
    size_t nerrors;

    int sub_msg_id; /**< of the last SUBSCRIBED */
    size_t sub_count;
    uint8_t granted[IT_MAX_GRANTED];
    int unsub_msg_id;

    int *pub_ids; /**< PUBLISHED msg ids, in arrival order */
    uint8_t *pub_qos;
    size_t npub, cap_pub;

    int *drop_ids; /**< DROPPED msg ids and reasons */
    int *drop_reasons;
    size_t ndrop, cap_drop;

    bool keep_messages; /**< copy MESSAGE events into msgs (default true) */
    it_msg *msgs;
    size_t nmsgs, cap_msgs;
    uint64_t message_bytes; /**< payload bytes of every MESSAGE event */

    bool oom; /**< a copy failed: the recording is incomplete */

    it_hook hook;
    void *hook_user;

    /* Set by it_lock(): if an assertion fails (longjmp) while the test holds
     * the lock, it_free() releases it before destroying the client, whose
     * thread would otherwise block in the callback forever and never join. */
    bool held_by_test;
} it_rec;

/** A test's broker and clients. */
typedef struct itest {
    broker b;
    bool has_broker;
    struct {
        mqttc_client *c;
        it_rec *rec;
    } cl[IT_MAX_CLIENTS];
    size_t n;
} itest;

/** Start a broker (`o` NULL: defaults) and return a new itest; NULL on failure. */
itest *it_new(const broker_opts *o);

/** An itest without a broker. */
itest *it_new_no_broker(void);

/** Destroy every registered client, free the recorders, stop and remove the broker. */
void it_free(itest *t);

/** mqttc_client_config_init() plus: uri = "mqtt://127.0.0.1:<broker port>"
 *  (into `uri_buf`, at least 64 bytes), client_id, and a log callback when the
 *  environment variable MQTTC_TEST_DEBUG is set. */
void it_config(itest *t, mqttc_client_config *cfg, char *uri_buf, const char *client_id);

/**
 * @brief Create a client whose events go to a new recorder (and then to `hook`).
 * @return mqttc_client_create()'s code; on success *out and *rec are set and
 *         the client is registered for it_free().
 */
int it_client(itest *t, mqttc_client_config *cfg, it_hook hook, void *hook_user,
              mqttc_client **out, it_rec **rec);

/** Destroy a registered client now (its recorder stays until it_free()). */
void it_destroy(itest *t, mqttc_client *c);

/** Unregister a client without destroying it (it destroyed itself). */
void it_forget(itest *t, mqttc_client *c);

/** Lock a recorder to read it while its client runs. Tests call these on
 *  the thread that runs setup and teardown (cmocka's main thread). */
void it_lock(it_rec *r);
void it_unlock(it_rec *r);

/** Predicate over a recorder, called with its lock held. */
typedef bool (*it_pred)(it_rec *r, void *arg);

/**
 * @brief Wait until `pred` holds, at most `timeout_ms`. Re-checked at every
 *        event and at least every 10 ms (for predicates on the client's state).
 * @param drive NULL for thread-mode clients; else a MQTTC_RUN_CALLER client
 *        that this call drives with mqttc_client_loop() while waiting.
 */
bool it_wait(it_rec *r, mqttc_client *drive, it_pred pred, void *arg, int timeout_ms);

/** Wait until at least `n` events of type `t` were recorded. */
bool it_wait_count(it_rec *r, mqttc_client *drive, mqttc_client_event_type t, size_t n,
                   int timeout_ms);

/** Events of type `t` so far. */
size_t it_count(it_rec *r, mqttc_client_event_type t);

/** Drive a caller-mode client for `ms` milliseconds (an idle period). */
void it_drive_for(mqttc_client *c, int ms);

/** Index of the `nth` (0-based) recorded message on `topic`, or -1. Lock held by the caller. */
long it_find_msg(const it_rec *r, const char *topic, size_t nth);

/** Messages recorded on `topic` so far. */
size_t it_count_topic(it_rec *r, const char *topic);

/** Deterministic test bytes: buf[i] depends on i and seed. */
void it_pattern(uint8_t *buf, size_t len, uint32_t seed);

/** Connect a TCP socket to 127.0.0.1:port, send `conn` as a CONNECT and wait
 *  for CONNACK. Returns the socket (CONNACK accepted) or -1. */
int it_raw_connect(uint16_t port, const mqttc_connect *conn, int timeout_ms);

/** Run fn(arg) on a new thread and wait at most `timeout_ms` for it to
 *  return. False on timeout (the thread is left running: a deadlock). */
bool it_run_bounded(void (*fn)(void *), void *arg, int timeout_ms);

#endif /* MQTTC_TESTS_ITEST_H */
