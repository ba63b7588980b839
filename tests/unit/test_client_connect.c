/* Integration: connecting a client to a real mosquitto (tests/support/broker.h)
 * by every kind of address, the failures a connection attempt can meet, the
 * failover list, disconnect/connect/reconnect on one handle, and both
 * caller-driven styles (mqttc_client_loop, and fd/want/next_timeout/process
 * under the test's own poll()). */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

#define T IT_TIMEOUT_MS

/* ---- fixtures ------------------------------------------------------------ */

static int setup_broker(void **state)
{
    *state = it_new(NULL);
    return *state ? 0 : -1;
}

static int setup_broker_v6(void **state)
{
    broker_opts o;
    broker_opts_init(&o);
    o.ipv6 = true;
    *state = it_new(&o);
    return *state ? 0 : -1;
}

static int setup_deny_anonymous(void **state)
{
    broker_opts o;
    broker_opts_init(&o);
    o.deny_anonymous = true;
    *state = it_new(&o);
    return *state ? 0 : -1;
}

static int setup_no_broker(void **state)
{
    *state = it_new_no_broker();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    it_free(*state);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static void dump_on_failure(itest *t, it_rec *r)
{
    size_t i;
    it_lock(r);
    for (i = 0; i < r->nerrors; i++) {
        print_error("%s: error event %zu: %s kind %d connack %u\n", r->name, i,
                    mqttc_errname(r->errors[i].code), (int)r->errors[i].kind,
                    (unsigned)r->errors[i].connack_code);
    }
    it_unlock(r);
    if (t->has_broker) {
        broker_dump_log(&t->b, 3000);
    }
}

/* Connect, wait for CONNECTED, check the state; then disconnect cleanly. */
static void connect_and_disconnect(itest *t, mqttc_client_config *cfg)
{
    mqttc_client *c;
    it_rec *r;
    assert_int_equal(it_client(t, cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        dump_on_failure(t, r);
        fail_msg("no CONNECTED within %d ms", T);
    }
    assert_false(r->session_present);
    assert_true(mqttc_client_ready(c));
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_READY);
    assert_int_equal(mqttc_client_connect(c), MQTTC_ERR_BAD_STATE);

    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    it_lock(r);
    assert_int_equal(r->disc_reason, 0);
    assert_false(r->disc_will_reconnect);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_ERROR], 0);
    it_unlock(r);
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_IDLE);
    assert_false(mqttc_client_ready(c));
}

struct state_arg {
    mqttc_client *c;
    mqttc_client_state want;
};

/* Reads the client's state from inside a recorder predicate: allowed, the
 * library never holds its lock while calling back, and this is not a callback. */
static bool state_is(it_rec *r, void *arg)
{
    const struct state_arg *a = arg;
    (void)r;
    return mqttc_client_state_get(a->c) == a->want;
}

/* ---- addresses ----------------------------------------------------------- */

static void connect_mqtt_uri(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, "c-mqtt");
    connect_and_disconnect(t, &cfg);
}

static void connect_tcp_uri(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, "c-tcp");
    snprintf(uri, sizeof uri, "tcp://127.0.0.1:%u", (unsigned)t->b.port);
    connect_and_disconnect(t, &cfg);
}

static void connect_host_and_port_fields(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, "c-host");
    cfg.uri = NULL;
    cfg.host = "127.0.0.1";
    cfg.port = t->b.port;
    connect_and_disconnect(t, &cfg);
}

static void connect_ipv6_literal(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, "c-v6");
    snprintf(uri, sizeof uri, "mqtt://[::1]:%u", (unsigned)t->b.port6);
    connect_and_disconnect(t, &cfg);
    assert_true(broker_log_contains(&t->b, "New client connected from ::1"));
}

static void connect_localhost_through_resolver(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, "c-localhost");
    snprintf(uri, sizeof uri, "mqtt://localhost:%u", (unsigned)t->b.port);
    connect_and_disconnect(t, &cfg);
}

static void connect_with_broker_assigned_client_id(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    char uri[64];
    it_config(t, &cfg, uri, NULL); /* clean session: the broker picks an id */
    connect_and_disconnect(t, &cfg);
}

/* ---- failures ------------------------------------------------------------ */

static void connect_closed_port_reports_refused(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    struct state_arg idle;
    it_config(t, &cfg, uri, "c-closed");
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    cfg.uri = uri;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 1, T));
    idle.c = c;
    idle.want = MQTTC_CLIENT_IDLE;
    assert_true(it_wait(r, NULL, state_is, &idle, T)); /* no auto-reconnect: gives up */
    it_lock(r);
    assert_int_equal(r->errors[0].code, MQTTC_ERR_CONNECT_REFUSED);
    assert_int_equal(r->errors[0].kind, MQTTC_ERRKIND_CONNECT);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_CONNECTED], 0);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_DISCONNECTED], 0); /* there was no session */
    assert_int_equal(r->nerrors, 1);
    it_unlock(r);
    assert_true(strlen(mqttc_strerror(MQTTC_ERR_CONNECT_REFUSED)) > 0);
    /* the handle can try again */
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 2, T));
}

static void connect_closed_port_caller_loop(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    it_config(t, &cfg, uri, "c-closed-caller");
    snprintf(uri, sizeof uri, "mqtt://[::1]:%u", (unsigned)broker_unused_port(true));
    cfg.uri = uri;
    cfg.run_mode = MQTTC_RUN_CALLER;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_ERROR, 1, T));
    assert_int_equal(r->errors[0].code, MQTTC_ERR_CONNECT_REFUSED);
    assert_int_equal(r->errors[0].kind, MQTTC_ERRKIND_CONNECT);
    it_drive_for(c, 100);
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_IDLE);
    assert_int_equal(mqttc_client_fd(c), -1);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_CONNECTED], 0);
}

static void connack_refused_not_authorized(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    struct state_arg idle;
    it_config(t, &cfg, uri, "c-anon");
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 1, T));
    idle.c = c;
    idle.want = MQTTC_CLIENT_IDLE;
    assert_true(it_wait(r, NULL, state_is, &idle, T));
    it_lock(r);
    if (r->errors[0].code != MQTTC_ERR_REFUSED_NOT_AUTHORIZED) {
        print_error("got %s kind %d\n", mqttc_errname(r->errors[0].code), (int)r->errors[0].kind);
    }
    assert_int_equal(r->errors[0].code, MQTTC_ERR_REFUSED_NOT_AUTHORIZED);
    assert_int_equal(r->errors[0].kind, MQTTC_ERRKIND_CONNACK);
    assert_int_equal(r->errors[0].connack_code, 5);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_CONNECTED], 0);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_DISCONNECTED], 0);
    it_unlock(r);
}

/* mosquitto_passwd -c -b FILE USER PASSWORD */
static int make_password_file(const char *file, const char *user, const char *pw)
{
    int status = 0;
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execl("/usr/bin/mosquitto_passwd", "mosquitto_passwd", "-c", "-b", file, user, pw,
              (char *)NULL);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void connect_with_password_file(void **state)
{
    char dir[] = "/tmp/mqttc-pw.XXXXXX";
    char file[64], extra[128], uri[64];
    broker_opts o;
    itest *t;
    mqttc_client_config cfg;
    mqttc_client *good, *bad, *none;
    it_rec *rg, *rb, *rn;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/passwd", dir);
    assert_int_equal(make_password_file(file, "alice", "s3cret"), 0);
    snprintf(extra, sizeof extra, "password_file %s", file);
    broker_opts_init(&o);
    o.deny_anonymous = true;
    o.extra_conf = extra;
    t = it_new(&o);
    *state = t; /* teardown frees it */
    assert_non_null(t);

    it_config(t, &cfg, uri, "pw-good");
    cfg.username = "alice";
    cfg.password = "s3cret";
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &good, &rg), 0);
    it_config(t, &cfg, uri, "pw-len");
    cfg.username = "alice";
    cfg.password = "s3cretX";
    cfg.password_len = 6; /* only "s3cret" is sent: binary-safe length wins */
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &bad, &rb), 0);
    it_config(t, &cfg, uri, "pw-wrong");
    cfg.username = "alice";
    cfg.password = "wrong";
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &none, &rn), 0);

    assert_int_equal(mqttc_client_connect(good), 0);
    assert_int_equal(mqttc_client_connect(bad), 0);
    assert_int_equal(mqttc_client_connect(none), 0);
    assert_true(it_wait_count(rg, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(it_wait_count(rb, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(it_wait_count(rn, NULL, MQTTC_CLIENT_EV_ERROR, 1, T));
    it_lock(rn);
    assert_int_equal(rn->errors[0].kind, MQTTC_ERRKIND_CONNACK);
    assert_int_equal(rn->errors[0].connack_code, 5);
    assert_int_equal(rn->errors[0].code, MQTTC_ERR_REFUSED_NOT_AUTHORIZED);
    it_unlock(rn);
    unlink(file);
    rmdir(dir);
}

static int teardown_state_or_null(void **state)
{
    if (*state != NULL) {
        it_free(*state);
    }
    return 0;
}

static int setup_null(void **state)
{
    *state = NULL;
    return 0;
}

/* A listener that completes the TCP handshake but never answers. */
static int silent_listener(uint16_t *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void connack_timeout_is_reported(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    uint16_t port = 0;
    uint64_t t0;
    int lfd = silent_listener(&port);
    assert_true(lfd >= 0);
    it_config(t, &cfg, uri, "c-silent");
    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%u", (unsigned)port);
    cfg.uri = uri;
    cfg.connect_timeout_ms = 500;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    t0 = broker_now_ms();
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_ERROR, 1, T)) {
        close(lfd);
        fail_msg("no error event although the server never sent CONNACK");
    }
    close(lfd);
    it_lock(r);
    print_message("CONNACK timeout after %llu ms: %s, kind %d\n",
                  (unsigned long long)(broker_now_ms() - t0), mqttc_errname(r->errors[0].code),
                  (int)r->errors[0].kind);
    assert_int_equal(r->errors[0].code, MQTTC_ERR_CONNACK_TIMEOUT);
    /* client.h: CONNECT is "socket connect failed or timed out", PROTOCOL "the
     * broker violated the protocol, or a timeout"; either reading is accepted */
    assert_true(r->errors[0].kind == MQTTC_ERRKIND_PROTOCOL ||
                r->errors[0].kind == MQTTC_ERRKIND_CONNECT);
    assert_int_equal(r->count[MQTTC_CLIENT_EV_CONNECTED], 0);
    it_unlock(r);
    assert_true(broker_now_ms() - t0 >= 400);
}

/* ---- failover ------------------------------------------------------------ */

static void failover_skips_dead_uri(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64], dead[64], live[64];
    const char *list[2];
    it_config(t, &cfg, uri, "c-failover");
    snprintf(dead, sizeof dead, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    snprintf(live, sizeof live, "mqtt://127.0.0.1:%u", (unsigned)t->b.port);
    list[0] = live;
    list[1] = NULL;
    cfg.uri = dead;
    cfg.failover_uris = list;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        dump_on_failure(t, r);
        fail_msg("failover to the live broker did not connect");
    }
    it_lock(r);
    assert_int_equal(r->nerrors, 1);
    assert_int_equal(r->errors[0].code, MQTTC_ERR_CONNECT_REFUSED);
    assert_int_equal(r->order[0], MQTTC_CLIENT_EV_ERROR);
    assert_int_equal(r->order[1], MQTTC_CLIENT_EV_CONNECTED);
    it_unlock(r);
    assert_true(mqttc_client_ready(c));
}

static void failover_tries_each_in_turn(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64], dead1[64], dead2[64], live[64];
    const char *list[3];
    it_config(t, &cfg, uri, "c-failover2");
    snprintf(dead1, sizeof dead1, "mqtt://127.0.0.1:%u", (unsigned)broker_unused_port(false));
    snprintf(dead2, sizeof dead2, "mqtt://[::1]:%u", (unsigned)broker_unused_port(true));
    snprintf(live, sizeof live, "tcp://localhost:%u", (unsigned)t->b.port);
    list[0] = dead2;
    list[1] = live;
    list[2] = NULL;
    cfg.uri = dead1;
    cfg.failover_uris = list;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    it_lock(r);
    assert_int_equal(r->nerrors, 2);
    assert_int_equal(r->errors[0].code, MQTTC_ERR_CONNECT_REFUSED);
    assert_int_equal(r->errors[1].code, MQTTC_ERR_CONNECT_REFUSED);
    it_unlock(r);
}

/* ---- one handle, several connections ------------------------------------- */

static bool has_topic_n(it_rec *r, void *arg)
{
    const char *topic = arg;
    size_t i, n = 0;
    for (i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, topic) == 0;
    }
    return n >= 1;
}

static void disconnect_keeps_handle_usable(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    int id;
    it_config(t, &cfg, uri, "c-again");
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);

    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_int_equal(r->disc_reason, 0);
    assert_true(broker_wait_log(&t->b, "Client c-again disconnected.", T));

    /* a message queued while disconnected goes out after the next connect */
    id = mqttc_client_publish(c, "again/q", "queued", 6, 1, false);
    assert_true(id > 0);

    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    assert_true(mqttc_client_ready(c));
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_PUBLISHED, 1, T));
    it_lock(r);
    assert_int_equal(r->pub_ids[0], id);
    it_unlock(r);

    /* and the handle still subscribes and receives */
    assert_true(mqttc_client_subscribe(c, "again/t", 1) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    assert_true(mqttc_client_publish(c, "again/t", "hi", 2, 1, false) > 0);
    assert_true(it_wait(r, NULL, has_topic_n, (void *)(uintptr_t)"again/t", T));
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_ERROR), 0);

    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 2, T));
    assert_int_equal(mqttc_client_state_get(c), MQTTC_CLIENT_IDLE);
}

static void reconnect_drops_and_connects_again(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    it_config(t, &cfg, uri, "c-reconnect");
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);

    /* reconnect on a handle that never connected: connects */
    assert_int_equal(mqttc_client_reconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));

    /* while connected: a new connection (the broker sees a second one) */
    assert_int_equal(mqttc_client_reconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    assert_true(mqttc_client_ready(c));

    /* the new connection works */
    assert_true(mqttc_client_subscribe(c, "re/t", 2) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    assert_true(mqttc_client_publish(c, "re/t", "x", 1, 2, false) > 0);
    assert_true(it_wait(r, NULL, has_topic_n, (void *)(uintptr_t)"re/t", T));
}

static void reconnect_reports_end_of_session(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    size_t n_disc;
    int reason;
    mqttc_client_event_type first, second;
    it_config(t, &cfg, uri, "c-reconnect-ev");
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_int_equal(mqttc_client_reconnect(c), 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T));
    it_lock(r);
    n_disc = r->count[MQTTC_CLIENT_EV_DISCONNECTED];
    reason = r->disc_reason;
    first = r->order[0];
    second = r->order[1];
    it_unlock(r);
    /* client.h: DISCONNECTED is "an accepted session ended", with reason 0
     * "when the application ended it (mqttc_client_disconnect() or
     * mqttc_client_reconnect())"; it comes between the two CONNECTED */
    if (n_disc != 1) {
        print_error("mqttc_client_reconnect() on a connected client gave %zu DISCONNECTED events\n",
                    n_disc);
    }
    assert_int_equal(n_disc, 1);
    assert_int_equal(reason, 0);
    assert_int_equal(first, MQTTC_CLIENT_EV_CONNECTED);
    assert_int_equal(second, MQTTC_CLIENT_EV_DISCONNECTED);
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_ERROR), 0);
}

/* ---- caller-driven ------------------------------------------------------- */

static void caller_loop_connect_subscribe_publish(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    int id;
    long i;
    it_config(t, &cfg, uri, "c-caller");
    cfg.run_mode = MQTTC_RUN_CALLER;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_CONNECTED, 1, T));
    assert_true(mqttc_client_fd(c) >= 0);
    assert_true(mqttc_client_subscribe(c, "caller/t", 2) > 0);
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_SUBSCRIBED, 1, T));
    assert_int_equal(r->granted[0], 2);
    id = mqttc_client_publish(c, "caller/t", "payload", 7, 2, false);
    assert_true(id > 0);
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_MESSAGE, 1, T));
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_PUBLISHED, 1, T));
    assert_int_equal(r->pub_ids[0], id);
    i = it_find_msg(r, "caller/t", 0);
    assert_true(i >= 0);
    assert_int_equal(r->msgs[i].qos, 2);
    assert_int_equal(r->msgs[i].len, 7);
    assert_memory_equal(r->msgs[i].payload, "payload", 7);
    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(it_wait_count(r, c, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    assert_int_equal(mqttc_client_fd(c), -1);
}

/* The application's own poll() loop around fd/want/next_timeout/process. */
struct poll_stats {
    unsigned polls, with_fd;
};

static void poll_once(mqttc_client *c, int cap_ms, struct poll_stats *st)
{
    struct pollfd p;
    int fd = mqttc_client_fd(c);
    int want = mqttc_client_want(c);
    int timeout = mqttc_client_next_timeout(c);
    int ready = 0, n;
    if (timeout < 0 || timeout > cap_ms) {
        timeout = cap_ms;
    }
    p.fd = fd;
    p.events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                       ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
    p.revents = 0;
    n = poll(&p, fd >= 0 ? 1 : 0, timeout);
    st->polls++;
    if (fd >= 0) {
        st->with_fd++;
    }
    if (n > 0) {
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ready |= MQTTC_WANT_READ;
        }
        if (p.revents & (POLLOUT | POLLHUP | POLLERR)) {
            ready |= MQTTC_WANT_WRITE;
        }
    }
    assert_int_equal(mqttc_client_process(c, ready), 0);
}

static bool poll_until(mqttc_client *c, it_rec *r, mqttc_client_event_type type, size_t n,
                       struct poll_stats *st)
{
    uint64_t deadline = broker_now_ms() + T;
    while (it_count(r, type) < n) {
        uint64_t now = broker_now_ms();
        if (now >= deadline) {
            return false;
        }
        poll_once(c, (int)(deadline - now), st);
    }
    return true;
}

static void own_poll_loop_with_fd_want_timeout_process(void **state)
{
    itest *t = *state;
    mqttc_client_config cfg;
    mqttc_client *c;
    it_rec *r;
    char uri[64];
    struct poll_stats st = {0, 0};
    uint64_t idle_end;
    unsigned idle_polls;
    int id;
    it_config(t, &cfg, uri, "c-poll");
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.keepalive = 30;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, &r), 0);
    assert_int_equal(mqttc_client_fd(c), -1);
    assert_int_equal(mqttc_client_connect(c), 0);
    assert_int_equal(mqttc_client_next_timeout(c), 0); /* work to do right away */

    assert_true(poll_until(c, r, MQTTC_CLIENT_EV_CONNECTED, 1, &st));
    assert_true(mqttc_client_fd(c) >= 0);
    assert_true(mqttc_client_want(c) & MQTTC_WANT_READ);

    assert_true(mqttc_client_subscribe(c, "poll/t", 1) > 0);
    assert_true(mqttc_client_want(c) & MQTTC_WANT_WRITE); /* SUBSCRIBE waits to be written */
    assert_true(poll_until(c, r, MQTTC_CLIENT_EV_SUBSCRIBED, 1, &st));
    id = mqttc_client_publish(c, "poll/t", "p", 1, 1, false);
    assert_true(id > 0);
    assert_true(poll_until(c, r, MQTTC_CLIENT_EV_MESSAGE, 1, &st));
    assert_true(poll_until(c, r, MQTTC_CLIENT_EV_PUBLISHED, 1, &st));
    assert_int_equal(r->pub_ids[0], id);

    /* Idle: with nothing to do the loop sleeps until next_timeout (keepalive
     * 30 s) instead of spinning. 1.5 s idle should take a handful of polls. */
    idle_polls = st.polls;
    assert_true(mqttc_client_next_timeout(c) > 1000 || mqttc_client_next_timeout(c) == -1);
    idle_end = broker_now_ms() + 1500;
    while (broker_now_ms() < idle_end) {
        poll_once(c, (int)(idle_end - broker_now_ms()), &st);
    }
    print_message("idle 1.5 s: %u polls\n", st.polls - idle_polls);
    assert_true(st.polls - idle_polls <= 5);

    assert_int_equal(mqttc_client_disconnect(c), 0);
    assert_true(poll_until(c, r, MQTTC_CLIENT_EV_DISCONNECTED, 1, &st));
    assert_int_equal(mqttc_client_fd(c), -1);
    assert_int_equal(mqttc_client_want(c), 0);
    assert_int_equal(mqttc_client_next_timeout(c), -1);
    assert_int_equal(it_count(r, MQTTC_CLIENT_EV_ERROR), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(connect_mqtt_uri, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(connect_tcp_uri, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(connect_host_and_port_fields, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(connect_ipv6_literal, setup_broker_v6, teardown),
        cmocka_unit_test_setup_teardown(connect_localhost_through_resolver, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(connect_with_broker_assigned_client_id, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(connect_closed_port_reports_refused, setup_no_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(connect_closed_port_caller_loop, setup_no_broker, teardown),
        cmocka_unit_test_setup_teardown(connack_refused_not_authorized, setup_deny_anonymous,
                                        teardown),
        cmocka_unit_test_setup_teardown(connect_with_password_file, setup_null,
                                        teardown_state_or_null),
        cmocka_unit_test_setup_teardown(connack_timeout_is_reported, setup_no_broker, teardown),
        cmocka_unit_test_setup_teardown(failover_skips_dead_uri, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(failover_tries_each_in_turn, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(disconnect_keeps_handle_usable, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(reconnect_drops_and_connects_again, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(reconnect_reports_end_of_session, setup_broker, teardown),
        cmocka_unit_test_setup_teardown(caller_loop_connect_subscribe_publish, setup_broker,
                                        teardown),
        cmocka_unit_test_setup_teardown(own_poll_loop_with_fd_want_timeout_process, setup_broker,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
