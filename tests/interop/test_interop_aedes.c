/* Interoperability with aedes (npm `aedes` 1.x + `ws` 8.x), a second broker
 * independent of mosquitto, over TCP and over WebSocket. aedes splits one
 * MQTT packet across several WebSocket frames (a CONNACK can arrive as four
 * 1-byte frames), so every WebSocket test here also checks that the client
 * reassembles packets from fragments.
 *
 * The group setup starts `node broker.js TCP WS` in MQTTC_AEDES_DIR (set by
 * run_aedes.sh, which installs the npm packages; else the aedes/ directory
 * beside this file) on two free loopback ports, with a pipe to its stdin, and
 * waits for its "ready" line. Closing the pipe stops it; it also gets SIGKILL
 * if this process dies (PR_SET_PDEATHSIG), so no broker is left behind. Every
 * wait is bounded, every address is 127.0.0.1. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

#define T IT_TIMEOUT_MS
#define AEDES_READY_TIMEOUT_MS 15000
#define AEDES_STOP_TIMEOUT_MS 5000
#define AEDES_START_TRIES 3
#define KIB 1024u

/* ---- the aedes process ---------------------------------------------------- */

typedef struct aedes_proc {
    pid_t pid;
    int stdin_fd; /* write end of the broker's stdin; closing it stops the broker */
    uint16_t tcp_port, ws_port;
} aedes_proc;

static aedes_proc g_aedes = {0, -1, 0, 0};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000u;
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The directory holding broker.js and node_modules. */
static void aedes_dir(char *buf, size_t size)
{
    const char *env = getenv("MQTTC_AEDES_DIR");
    const char *slash;
    if (env != NULL && *env != '\0') {
        snprintf(buf, size, "%s", env);
        return;
    }
    slash = strrchr(__FILE__, '/');
    if (slash == NULL) {
        snprintf(buf, size, "aedes");
    } else {
        snprintf(buf, size, "%.*s/aedes", (int)(slash - __FILE__), __FILE__);
    }
}

/* Wait at most `timeout_ms` for `pid` to exit; true if it did (and was reaped). */
static bool reap(pid_t pid, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR)) {
            return true;
        }
        if (now_ms() >= deadline) {
            return false;
        }
        sleep_ms(10);
    }
}

static void aedes_stop(aedes_proc *a)
{
    if (a->stdin_fd >= 0) {
        close(a->stdin_fd); /* broker.js exits when its stdin closes */
        a->stdin_fd = -1;
    }
    if (a->pid > 0) {
        if (!reap(a->pid, AEDES_STOP_TIMEOUT_MS)) {
            fprintf(stderr, "aedes: did not exit when its stdin closed; killing it\n");
            kill(a->pid, SIGKILL);
            reap(a->pid, AEDES_STOP_TIMEOUT_MS);
        }
        a->pid = 0;
    }
}

/* Read the broker's stdout until a line starting with "ready", EOF or the deadline. */
static bool wait_ready(int fd, uint64_t deadline)
{
    char line[256];
    size_t n = 0;
    for (;;) {
        struct pollfd p;
        uint64_t now = now_ms();
        ssize_t got;
        int pr;
        if (now >= deadline) {
            fprintf(stderr, "aedes: no \"ready\" line within %d ms\n", AEDES_READY_TIMEOUT_MS);
            return false;
        }
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        pr = poll(&p, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR) {
            continue;
        }
        if (pr <= 0) {
            continue; /* the deadline check above ends it */
        }
        got = read(fd, line + n, sizeof line - 1 - n);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            fprintf(stderr, "aedes: exited before it was ready\n");
            return false;
        }
        n += (size_t)got;
        line[n] = '\0';
        if (strchr(line, '\n') != NULL) {
            if (strncmp(line, "ready ", 6) == 0) {
                return true;
            }
            fprintf(stderr, "aedes: unexpected output: %s", line);
            return false;
        }
        if (n == sizeof line - 1) {
            fprintf(stderr, "aedes: unexpected output: %s\n", line);
            return false;
        }
    }
}

static int aedes_start_once(aedes_proc *a, const char *dir)
{
    int in[2], out[2];
    char tcp[8], ws[8];
    pid_t pid;
    bool ok;

    a->tcp_port = broker_unused_port(false);
    do {
        a->ws_port = broker_unused_port(false);
    } while (a->ws_port != 0 && a->ws_port == a->tcp_port);
    if (a->tcp_port == 0 || a->ws_port == 0) {
        fprintf(stderr, "aedes: no free loopback port\n");
        return -1;
    }
    snprintf(tcp, sizeof tcp, "%u", (unsigned)a->tcp_port);
    snprintf(ws, sizeof ws, "%u", (unsigned)a->ws_port);

    if (pipe(in) != 0) {
        return -1;
    }
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1) {
            _exit(127);
        }
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        if (chdir(dir) != 0) {
            fprintf(stderr, "aedes: cannot enter %s: %s\n", dir, strerror(errno));
            _exit(127);
        }
        execlp("node", "node", "broker.js", tcp, ws, (char *)NULL);
        fprintf(stderr, "aedes: cannot run node: %s\n", strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    (void)fcntl(in[1], F_SETFD, FD_CLOEXEC);
    a->pid = pid;
    a->stdin_fd = in[1];
    ok = wait_ready(out[0], now_ms() + AEDES_READY_TIMEOUT_MS);
    close(out[0]); /* broker.js writes to stdout only once */
    if (!ok) {
        aedes_stop(a);
        return -1;
    }
    return 0;
}

static int aedes_start(aedes_proc *a)
{
    char dir[1024];
    int i;
    aedes_dir(dir, sizeof dir);
    /* Another process may take a port between our probe and node's bind: retry. */
    for (i = 0; i < AEDES_START_TRIES; i++) {
        if (aedes_start_once(a, dir) == 0) {
            return 0;
        }
    }
    fprintf(stderr, "aedes: could not start `node broker.js` in %s (run the test through "
                    "tests/interop/run_aedes.sh, which installs the npm packages)\n", dir);
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return aedes_start(&g_aedes);
}

static int group_teardown(void **state)
{
    (void)state;
    aedes_stop(&g_aedes);
    return 0;
}

static int setup(void **state)
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

enum transport { TCP, WS };

static void uri_for(enum transport tr, char *buf, size_t size)
{
    if (tr == TCP) {
        snprintf(buf, size, "mqtt://127.0.0.1:%u", (unsigned)g_aedes.tcp_port);
    } else {
        snprintf(buf, size, "ws://127.0.0.1:%u/", (unsigned)g_aedes.ws_port);
    }
}

/* A connected thread-mode client with a recorder, to `uri`. */
static mqttc_client *connect_uri(itest *t, const char *uri, const char *id, it_rec **rec)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    it_config(t, &cfg, NULL, id);
    cfg.uri = uri;
    cfg.connect_timeout_ms = 10000;
    assert_int_equal(it_client(t, &cfg, NULL, NULL, &c, rec), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(*rec, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        it_lock(*rec);
        if ((*rec)->nerrors > 0) {
            int code = (*rec)->errors[0].code, kind = (int)(*rec)->errors[0].kind;
            it_unlock(*rec);
            fail_msg("%s did not connect to %s: error %d (%s), kind %d", id, uri, code,
                     mqttc_strerror(code), kind);
        }
        it_unlock(*rec);
        fail_msg("%s did not connect to %s within %d ms", id, uri, T);
    }
    return c;
}

static mqttc_client *connect_to(itest *t, enum transport tr, const char *id, it_rec **rec)
{
    char uri[64];
    uri_for(tr, uri, sizeof uri);
    return connect_uri(t, uri, id, rec);
}

/* Subscribe to n filters in one SUBSCRIBE and check the granted codes. */
static void subscribe_many_wait(mqttc_client *c, it_rec *r, const mqttc_topic_qos *items,
                                size_t n)
{
    size_t before = it_count(r, MQTTC_CLIENT_EV_SUBSCRIBED), i;
    int id = mqttc_client_subscribe_many(c, items, n);
    assert_true(id > 0);
    if (!it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, before + 1, T)) {
        fail_msg("no SUBACK within %d ms", T);
    }
    it_lock(r);
    assert_int_equal(r->sub_msg_id, id);
    assert_int_equal(r->sub_count, n);
    for (i = 0; i < n; i++) {
        if (r->granted[i] != items[i].qos) {
            int g = r->granted[i];
            it_unlock(r);
            fail_msg("filter %zu (%s): granted 0x%02x, asked %d", i, items[i].filter, g,
                     items[i].qos);
        }
    }
    it_unlock(r);
}

static void subscribe_wait(mqttc_client *c, it_rec *r, const char *filter, int qos)
{
    mqttc_topic_qos item;
    item.filter = filter;
    item.qos = qos;
    subscribe_many_wait(c, r, &item, 1);
}

struct topic_n {
    const char *topic;
    size_t n;
};

static bool topic_count_reached(it_rec *r, void *arg)
{
    const struct topic_n *a = arg;
    size_t i, n = 0;
    for (i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, a->topic) == 0;
    }
    return n >= a->n;
}

static bool wait_topic(it_rec *r, const char *topic, size_t n)
{
    struct topic_n a;
    a.topic = topic;
    a.n = n;
    return it_wait(r, NULL, topic_count_reached, &a, T);
}

/* The one message on `topic` must be `payload` at `qos`. */
static void expect_message(it_rec *r, const char *topic, const void *payload, size_t len,
                           int qos)
{
    long i;
    if (!wait_topic(r, topic, 1)) {
        fail_msg("%s: nothing on %s within %d ms", r->name, topic, T);
    }
    it_lock(r);
    i = it_find_msg(r, topic, 0);
    assert_true(i >= 0);
    assert_int_equal(r->msgs[i].len, len);
    assert_int_equal(r->msgs[i].total, len);
    assert_int_equal(r->msgs[i].qos, qos);
    assert_false(r->msgs[i].retain);
    assert_true(memcmp(r->msgs[i].payload, payload, len) == 0);
    assert_int_equal(it_find_msg(r, topic, 1), -1); /* exactly once */
    it_unlock(r);
}

/* Publish at QoS 0, 1 and 2 from `pub` to `sub` (subscribed at QoS 2 to
 * PREFIX/#) and check each arrives once at its own QoS, and that every
 * publish is reported PUBLISHED with its id. */
static void pubsub_qos012(itest *t, enum transport sub_tr, enum transport pub_tr,
                          const char *prefix)
{
    it_rec *rs, *rp;
    char filter[64], sid[64], pid[64];
    mqttc_client *sub, *pub;
    int q, ids[3];

    snprintf(sid, sizeof sid, "%s-sub", prefix);
    snprintf(pid, sizeof pid, "%s-pub", prefix);
    sub = connect_to(t, sub_tr, sid, &rs);
    pub = connect_to(t, pub_tr, pid, &rp);
    snprintf(filter, sizeof filter, "%s/#", prefix);
    subscribe_wait(sub, rs, filter, 2);

    for (q = 0; q < 3; q++) {
        char topic[64], payload[64];
        snprintf(topic, sizeof topic, "%s/q%d", prefix, q);
        snprintf(payload, sizeof payload, "hello at qos %d via %s", q, prefix);
        ids[q] = mqttc_client_publish(pub, topic, payload, strlen(payload), q, false);
        if (q == 0) {
            assert_int_equal(ids[q], 0);
        } else {
            assert_true(ids[q] > 0);
        }
    }
    for (q = 0; q < 3; q++) {
        char topic[64], payload[64];
        snprintf(topic, sizeof topic, "%s/q%d", prefix, q);
        snprintf(payload, sizeof payload, "hello at qos %d via %s", q, prefix);
        expect_message(rs, topic, payload, strlen(payload), q);
    }
    if (!it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T)) {
        fail_msg("only %zu of 3 publishes completed", it_count(rp, MQTTC_CLIENT_EV_PUBLISHED));
    }
    it_lock(rp);
    for (q = 1; q < 3; q++) {
        size_t i;
        bool found = false;
        for (i = 0; i < rp->npub; i++) {
            found = found || (rp->pub_ids[i] == ids[q] && rp->pub_qos[i] == q);
        }
        assert_true(found);
    }
    it_unlock(rp);
    assert_int_equal(mqttc_client_queued(pub), 0);
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_ERROR), 0);
    assert_int_equal(it_count(rp, MQTTC_CLIENT_EV_ERROR), 0);
}

/* ---- tests --------------------------------------------------------------- */

static void tcp_pubsub_qos012(void **state)
{
    pubsub_qos012(*state, TCP, TCP, "aedes-tcp");
}

static void ws_pubsub_qos012(void **state)
{
    pubsub_qos012(*state, WS, WS, "aedes-ws");
}

/* No path in the URI: the client asks for /mqtt, which aedes+ws accept too. */
static void ws_default_path(void **state)
{
    itest *t = *state;
    it_rec *r;
    char uri[64];
    mqttc_client *c;
    snprintf(uri, sizeof uri, "ws://127.0.0.1:%u", (unsigned)g_aedes.ws_port);
    c = connect_uri(t, uri, "aedes-ws-path", &r);
    subscribe_wait(c, r, "aedes-ws-path/t", 1);
    assert_int_equal(mqttc_client_publish(c, "aedes-ws-path/t", "x", 1, 0, false), 0);
    expect_message(r, "aedes-ws-path/t", "x", 1, 0);
}

/* A 100 KiB message over WebSocket, both ways through the broker, at QoS 1. */
static void ws_100k_message(void **state)
{
    itest *t = *state;
    it_rec *rs, *rp;
    const size_t len = 100 * KIB;
    mqttc_client *sub = connect_to(t, WS, "aedes-big-sub", &rs);
    mqttc_client *pub = connect_to(t, WS, "aedes-big-pub", &rp);
    uint8_t *payload = malloc(len);
    long i;
    int id;

    assert_non_null(payload);
    it_pattern(payload, len, 100);
    subscribe_wait(sub, rs, "aedes-big/#", 1);
    id = mqttc_client_publish(pub, "aedes-big/t", payload, len, 1, false);
    assert_true(id > 0);
    if (!wait_topic(rs, "aedes-big/t", 1)) {
        free(payload);
        fail_msg("the 100 KiB message did not arrive within %d ms", T);
    }
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 1, T));
    it_lock(rs);
    i = it_find_msg(rs, "aedes-big/t", 0);
    if (i < 0 || rs->msgs[i].len != len || rs->msgs[i].offset != 0 ||
        memcmp(rs->msgs[i].payload, payload, len) != 0) {
        size_t got = i < 0 ? 0 : rs->msgs[i].len;
        it_unlock(rs);
        free(payload);
        fail_msg("the 100 KiB message arrived damaged (%zu bytes)", got);
    }
    assert_int_equal(rs->msgs[i].qos, 1);
    assert_int_equal(it_find_msg(rs, "aedes-big/t", 1), -1);
    it_unlock(rs);
    free(payload);
}

/* Ten filters in one SUBSCRIBE: ten granted codes, in order; then one
 * message on each arrives once. */
static void subscribe_ten_filters(void **state)
{
    itest *t = *state;
    it_rec *r;
    mqttc_client *c = connect_to(t, WS, "aedes-ten", &r);
    static char filters[10][32];
    mqttc_topic_qos items[10];
    size_t i;

    for (i = 0; i < 10; i++) {
        snprintf(filters[i], sizeof filters[i], "aedes-ten/%zu", i);
        items[i].filter = filters[i];
        items[i].qos = (int)(i % 3);
    }
    subscribe_many_wait(c, r, items, 10);
    for (i = 0; i < 10; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "m%zu", i);
        assert_true(mqttc_client_publish(c, filters[i], payload, strlen(payload), 2, false) > 0);
    }
    for (i = 0; i < 10; i++) {
        char payload[16];
        snprintf(payload, sizeof payload, "m%zu", i);
        expect_message(r, filters[i], payload, strlen(payload), (int)(i % 3));
    }
}

/* The same over TCP, where SUBACK arrives in one piece. */
static void subscribe_ten_filters_tcp(void **state)
{
    itest *t = *state;
    it_rec *r;
    mqttc_client *c = connect_to(t, TCP, "aedes-ten-tcp", &r);
    static char filters[10][32];
    mqttc_topic_qos items[10];
    size_t i;

    for (i = 0; i < 10; i++) {
        snprintf(filters[i], sizeof filters[i], "aedes-ten-tcp/%zu/+", i);
        items[i].filter = filters[i];
        items[i].qos = (int)((i + 1) % 3);
    }
    subscribe_many_wait(c, r, items, 10);
}

/* A TCP client and a WebSocket client exchange messages both ways at every QoS. */
static void tcp_and_ws_exchange(void **state)
{
    itest *t = *state;
    it_rec *rt, *rw;
    mqttc_client *ct = connect_to(t, TCP, "aedes-x-tcp", &rt);
    mqttc_client *cw = connect_to(t, WS, "aedes-x-ws", &rw);
    int q;

    subscribe_wait(ct, rt, "aedes-x/to-tcp/+", 2);
    subscribe_wait(cw, rw, "aedes-x/to-ws/+", 2);
    for (q = 0; q < 3; q++) {
        char topic[64], payload[64];
        snprintf(topic, sizeof topic, "aedes-x/to-ws/%d", q);
        snprintf(payload, sizeof payload, "from tcp, qos %d", q);
        assert_true(mqttc_client_publish(ct, topic, payload, strlen(payload), q, false) >= 0);
        snprintf(topic, sizeof topic, "aedes-x/to-tcp/%d", q);
        snprintf(payload, sizeof payload, "from ws, qos %d", q);
        assert_true(mqttc_client_publish(cw, topic, payload, strlen(payload), q, false) >= 0);
    }
    for (q = 0; q < 3; q++) {
        char topic[64], payload[64];
        snprintf(topic, sizeof topic, "aedes-x/to-ws/%d", q);
        snprintf(payload, sizeof payload, "from tcp, qos %d", q);
        expect_message(rw, topic, payload, strlen(payload), q);
        snprintf(topic, sizeof topic, "aedes-x/to-tcp/%d", q);
        snprintf(payload, sizeof payload, "from ws, qos %d", q);
        expect_message(rt, topic, payload, strlen(payload), q);
    }
    assert_true(it_wait_count(rt, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
    assert_true(it_wait_count(rw, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
}

/* A burst of 200 QoS 1 messages from TCP to WebSocket: many PUBLISH packets,
 * each split into frames by aedes, must all be reassembled in order. */
static void tcp_to_ws_burst(void **state)
{
    itest *t = *state;
    it_rec *rt, *rw;
    mqttc_client *ct = connect_to(t, TCP, "aedes-burst-tcp", &rt);
    mqttc_client *cw = connect_to(t, WS, "aedes-burst-ws", &rw);
    const size_t n = 200;
    size_t i;

    (void)cw;
    subscribe_wait(cw, rw, "aedes-burst", 1);
    for (i = 0; i < n; i++) {
        char payload[32];
        snprintf(payload, sizeof payload, "burst %zu", i);
        assert_true(mqttc_client_publish(ct, "aedes-burst", payload, strlen(payload), 1, false) >
                    0);
    }
    if (!wait_topic(rw, "aedes-burst", n)) {
        fail_msg("only %zu of %zu messages arrived", it_count_topic(rw, "aedes-burst"), n);
    }
    it_lock(rw);
    for (i = 0; i < n; i++) {
        char payload[32];
        long k = it_find_msg(rw, "aedes-burst", i);
        snprintf(payload, sizeof payload, "burst %zu", i);
        assert_true(k >= 0);
        assert_int_equal(rw->msgs[k].len, strlen(payload));
        assert_true(memcmp(rw->msgs[k].payload, payload, strlen(payload)) == 0);
    }
    it_unlock(rw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(tcp_pubsub_qos012, setup, teardown),
        cmocka_unit_test_setup_teardown(ws_pubsub_qos012, setup, teardown),
        cmocka_unit_test_setup_teardown(ws_default_path, setup, teardown),
        cmocka_unit_test_setup_teardown(ws_100k_message, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribe_ten_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribe_ten_filters_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(tcp_and_ws_exchange, setup, teardown),
        cmocka_unit_test_setup_teardown(tcp_to_ws_burst, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
