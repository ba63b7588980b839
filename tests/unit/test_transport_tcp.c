/* The TCP transport against real loopback sockets made by the test: connect
 * by IPv4, IPv6 and name (the resolver thread), writev, read, end of stream,
 * refused connections, unresolvable names, and destroying the transport
 * while its resolver thread still runs. Only loopback addresses are used. */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/transport.h"

#define DEADLINE_MS 5000
/* Names outside /etc/hosts go to DNS. With no network it usually fails at
 * once, but a query can also wait for the resolver's timeout (5 s, retried). */
#define DNS_DEADLINE_MS 30000

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)ms * 1000000};

    nanosleep(&ts, NULL);
}

/* A listening socket on `addr` (127.0.0.1 or ::1), port chosen by the
 * kernel; -1 when the address family is not available here. */
static int listen_on(int family, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_STREAM, 0);

    if (fd < 0) {
        return -1;
    }
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Threads of this process (Linux: /proc/self/task). */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

/* Threads of the process without any resolver thread: the main thread and
 * those of a sanitizer runtime. Set by start_runtime_threads(). */
static int base_threads;

/* Wait (bounded) until every resolver thread has exited. */
static void wait_resolvers_gone(void)
{
    long end = now_ms() + DNS_DEADLINE_MS;

    while (thread_count() > base_threads && now_ms() < end) {
        sleep_ms(2);
    }
    assert_int_equal(thread_count(), base_threads);
}

/* Drive connect() with poll() on fd()/want(), as the client does. */
static int drive_connect_within(mqttc_transport *t, int deadline_ms)
{
    long end = now_ms() + deadline_ms;

    for (;;) {
        int rc = t->vt->connect(t);
        struct pollfd pfd;
        int want;

        if (rc != MQTTC__AGAIN) {
            return rc;
        }
        if (now_ms() > end) {
            fail_msg("connect() still in progress after %d ms", deadline_ms);
        }
        want = t->vt->want(t);
        pfd.fd = t->vt->fd(t);
        pfd.events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                             ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
        pfd.revents = 0;
        assert_true(pfd.fd >= 0);
        assert_true(want != 0);
        assert_true(poll(&pfd, 1, 100) >= 0);
    }
}

static int drive_connect(mqttc_transport *t)
{
    return drive_connect_within(t, DEADLINE_MS);
}

static int accept_one(int lfd)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    int fd;

    assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
    fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    return fd;
}

/* Open `host`, connect, and check the listener sees the connection. */
static void connects_to(const char *host, int family)
{
    uint16_t port = 0;
    int lfd = listen_on(family, &port);
    mqttc_transport *t = NULL;
    int afd;

    if (lfd < 0) { /* e.g. a machine whose loopback has no ::1 */
        print_message("skipped: cannot listen on the %s loopback here\n",
                      family == AF_INET6 ? "IPv6" : "IPv4");
        skip();
    }
    assert_int_equal(mqttc__tcp_open(host, port, &t), 0);
    assert_non_null(t);
    assert_string_equal(t->vt->name, "tcp");
    assert_int_equal(t->vt->fd(t), -1);
    assert_int_equal(drive_connect(t), 0);
    assert_true(t->vt->fd(t) >= 0);
    assert_int_equal(t->vt->want(t), 0);
    assert_int_equal(t->vt->connect(t), 0); /* stays connected */
    afd = accept_one(lfd);
    t->vt->destroy(t);
    close(afd);
    close(lfd);
    wait_resolvers_gone();
}

static void connects_to_ipv4_loopback(void **state)
{
    (void)state;
    connects_to("127.0.0.1", AF_INET);
}

static void connects_to_ipv6_loopback(void **state)
{
    (void)state;
    connects_to("::1", AF_INET6);
}

static void connects_to_localhost_through_the_resolver_thread(void **state)
{
    uint16_t port = 0;
    int lfd = listen_on(AF_INET, &port);
    mqttc_transport *t = NULL;
    int afd;

    (void)state;
    assert_true(lfd >= 0);
    assert_int_equal(mqttc__tcp_open("localhost", port, &t), 0);
    /* A name is never resolved inline: the first step starts the thread and
     * hands back the pipe to poll for reading. */
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_READ);
    assert_true(t->vt->fd(t) >= 0);
    assert_int_equal(drive_connect(t), 0);
    afd = accept_one(lfd);
    t->vt->destroy(t);
    close(afd);
    close(lfd);
    wait_resolvers_gone();
}

/* A connected pair: transport `*t` and the accepted peer socket. */
static int connected_pair(mqttc_transport **t, int *lfd)
{
    uint16_t port = 0;

    *lfd = listen_on(AF_INET, &port);
    assert_true(*lfd >= 0);
    assert_int_equal(mqttc__tcp_open("127.0.0.1", port, t), 0);
    assert_int_equal(drive_connect(*t), 0);
    return accept_one(*lfd);
}

static void recv_exactly(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ssize_t n;
        assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
        n = recv(fd, buf + got, len - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
}

static void writev_sends_every_iovec_in_order(void **state)
{
    mqttc_transport *t;
    int lfd, afd = connected_pair(&t, &lfd);
    static uint8_t big[3000];
    uint8_t got[sizeof(big) + 32];
    mqttc_iov iov[5];
    size_t total = 0;
    long n;

    (void)state;
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7 + 1);
    }
    iov[0] = (mqttc_iov){"\x30\x0b", 2};
    iov[1] = (mqttc_iov){"", 0};
    iov[2] = (mqttc_iov){"hello", 5};
    iov[3] = (mqttc_iov){big, sizeof(big)};
    iov[4] = (mqttc_iov){" world", 6};
    for (size_t i = 0; i < 5; i++) {
        total += iov[i].len;
    }
    n = t->vt->writev(t, iov, 5);
    assert_int_equal(n, (long)total); /* loopback has room for all of it */
    recv_exactly(afd, got, total);
    assert_memory_equal(got, "\x30\x0bhello", 7);
    assert_memory_equal(got + 7, big, sizeof(big));
    assert_memory_equal(got + 7 + sizeof(big), " world", 6);

    assert_int_equal(t->vt->writev(t, iov, 0), 0);
    t->vt->destroy(t);
    close(afd);
    close(lfd);
}

/* One call writes at most 16 iovecs; the caller comes back for the rest. */
static void writev_takes_at_most_sixteen_iovecs(void **state)
{
    mqttc_transport *t;
    int lfd, afd = connected_pair(&t, &lfd);
    static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
    mqttc_iov iov[20];
    uint8_t got[20];

    (void)state;
    for (size_t i = 0; i < 20; i++) {
        iov[i] = (mqttc_iov){&letters[i], 1};
    }
    assert_int_equal(t->vt->writev(t, iov, 20), 16);
    assert_int_equal(t->vt->writev(t, iov + 16, 4), 4);
    recv_exactly(afd, got, 20);
    assert_memory_equal(got, letters, 20);
    t->vt->destroy(t);
    close(afd);
    close(lfd);
}

static void wait_readable(mqttc_transport *t)
{
    struct pollfd pfd = {.fd = t->vt->fd(t), .events = POLLIN};

    assert_int_equal(poll(&pfd, 1, DEADLINE_MS), 1);
}

static void read_returns_bytes_then_zero_then_closed_by_peer(void **state)
{
    mqttc_transport *t;
    int lfd, afd = connected_pair(&t, &lfd);
    uint8_t buf[64];

    (void)state;
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 0); /* nothing yet */
    assert_int_equal(send(afd, "\x20\x02\x00\x00", 4, 0), 4);
    wait_readable(t);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "\x20\x02\x00\x00", 4);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 0);
    assert_int_equal(t->vt->read(t, buf, 0), 0);

    /* Bytes sent before the close are still delivered first. */
    assert_int_equal(send(afd, "xy", 2, 0), 2);
    close(afd);
    wait_readable(t);
    assert_int_equal(t->vt->read(t, buf, 1), 1);
    assert_int_equal(buf[0], 'x');
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 1);
    assert_int_equal(buf[0], 'y');
    wait_readable(t);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_CLOSED_BY_PEER);
    t->vt->destroy(t);
    close(lfd);
}

static void writing_to_a_reset_connection_is_connection_lost(void **state)
{
    mqttc_transport *t;
    int lfd, afd = connected_pair(&t, &lfd);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    mqttc_iov iov = {"data", 4};
    long end = now_ms() + DEADLINE_MS;
    long rc;

    (void)state;
    /* SO_LINGER 0: close() sends RST. No SIGPIPE may be raised. */
    assert_int_equal(setsockopt(afd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(afd);
    do {
        rc = t->vt->writev(t, &iov, 1);
        if (rc >= 0) {
            sleep_ms(5);
        }
    } while (rc >= 0 && now_ms() < end);
    assert_int_equal(rc, MQTTC_ERR_CONNECTION_LOST);
    t->vt->destroy(t);
    close(lfd);
}

static void closed_port_is_connect_refused(void **state)
{
    uint16_t port = 0;
    int fd = listen_on(AF_INET, &port);
    mqttc_transport *t;

    (void)state;
    assert_true(fd >= 0);
    close(fd); /* nothing listens there any more */
    assert_int_equal(mqttc__tcp_open("127.0.0.1", port, &t), 0);
    assert_int_equal(drive_connect(t), MQTTC_ERR_CONNECT_REFUSED);
    assert_int_equal(t->detail, ECONNREFUSED); /* the errno, for the error event */
    assert_int_equal(t->vt->fd(t), -1);
    assert_int_equal(t->vt->want(t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC_ERR_CONNECT_REFUSED); /* sticky */
    t->vt->destroy(t);
}

/* Out of descriptors: a generic I/O error, but the detail says EMFILE. */
static void no_descriptor_left_keeps_its_errno(void **state)
{
    struct rlimit old, low;
    mqttc_transport *t;
    int rc, lowest = dup(0);

    (void)state;
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)lowest; /* the next descriptor would be over the limit */
    assert_int_equal(mqttc__tcp_open("127.0.0.1", 1, &t), 0);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    rc = drive_connect(t);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(rc, MQTTC_ERR_TRANSPORT);
    assert_int_equal(t->detail, EMFILE);
    t->vt->destroy(t);
}

static void unresolvable_name_is_resolve_error(void **state)
{
    mqttc_transport *t;

    (void)state;
    assert_int_equal(mqttc__tcp_open("nonexistent.invalid", 1883, &t), 0);
    assert_int_equal(drive_connect_within(t, DNS_DEADLINE_MS), MQTTC_ERR_RESOLVE);
    assert_int_equal(t->vt->fd(t), -1);
    assert_int_equal(t->vt->connect(t), MQTTC_ERR_RESOLVE);
    t->vt->destroy(t);
    wait_resolvers_gone();
}

/* The thread outlives the transport and frees the shared state itself:
 * valgrind and the sanitizers see no leak and no use after free. Many
 * rounds, so both orders (thread first, transport first) happen; "localhost"
 * comes from /etc/hosts, and two rounds go to DNS, where they can be slow. */
static void destroy_while_resolving_is_safe(void **state)
{

    (void)state;
    for (int i = 0; i < 40; i++) {
        const char *name = i % 20 == 1 ? "nonexistent.invalid" : "localhost";
        mqttc_transport *t;
        assert_int_equal(mqttc__tcp_open(name, 1883, &t), 0);
        assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
        if (i % 4 >= 2) {
            sleep_ms(1); /* let some threads finish before the destroy */
        }
        t->vt->destroy(t);
    }
    wait_resolvers_gone();
}

static void io_before_connect_is_refused(void **state)
{
    mqttc_transport *t;
    uint8_t buf[4];
    mqttc_iov iov = {"x", 1};

    (void)state;
    assert_int_equal(mqttc__tcp_open("127.0.0.1", 1883, &t), 0);
    assert_int_equal(t->vt->want(t), 0);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_BAD_STATE);
    assert_int_equal(t->vt->writev(t, &iov, 1), MQTTC_ERR_BAD_STATE);
    t->vt->destroy(t); /* never connected: nothing to close */
}

static void open_checks_its_arguments(void **state)
{
    char long_host[MQTTC_URI_HOST_MAX + 1];
    mqttc_transport *t = (mqttc_transport *)&t;

    (void)state;
    memset(long_host, 'h', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    assert_int_equal(mqttc__tcp_open(NULL, 1883, &t), MQTTC_ERR_INVALID_ARG);
    assert_null(t);
    assert_int_equal(mqttc__tcp_open("", 1883, &t), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc__tcp_open("h", 0, &t), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc__tcp_open(long_host, 1883, &t), MQTTC_ERR_INVALID_ARG);
    assert_int_equal(mqttc__tcp_open("h", 1883, NULL), MQTTC_ERR_INVALID_ARG);
}

static void transport_open_picks_the_stack_for_each_scheme(void **state)
{
    mqttc_uri uri;
    mqttc_transport *t = NULL;
    /* scheme -> outermost transport: mqtts wraps TCP in TLS, ws wraps TCP in
     * WebSocket, wss wraps TLS in WebSocket (no opts: verify against the
     * system CAs; nothing connects here). */
    static const char *const cases[][2] = {
        {"mqtt://127.0.0.1:1883", "tcp"}, {"tcp://127.0.0.1", "tcp"},
        {"mqtts://127.0.0.1", "tls"},     {"ssl://127.0.0.1", "tls"},
        {"ws://127.0.0.1", "ws"},         {"wss://127.0.0.1", "ws"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(mqttc_uri_parse(cases[i][0], &uri), 0);
        assert_int_equal(mqttc__transport_open(&uri, NULL, &t), 0);
        assert_non_null(t);
        assert_string_equal(t->vt->name, cases[i][1]);
        t->vt->destroy(t);
    }
    assert_int_equal(mqttc__transport_open(NULL, NULL, &t), MQTTC_ERR_INVALID_ARG);
}

static void *noop_thread(void *arg)
{
    return arg;
}

/* Sanitizer runtimes (TSan) start a helper thread with the first
 * pthread_create(); start it now, then count. A joined thread can stay
 * listed for a moment, so take the lowest of a few counts. */
static int start_runtime_threads(void **state)
{
    pthread_t tid;

    (void)state;
    if (pthread_create(&tid, NULL, noop_thread, NULL) != 0 || pthread_join(tid, NULL) != 0) {
        return -1;
    }
    base_threads = thread_count();
    for (int i = 0; i < 10; i++) {
        int n;
        sleep_ms(5);
        n = thread_count();
        base_threads = n < base_threads ? n : base_threads;
    }
    return 0;
}

/* No resolver thread may outlive the tests (the leak checkers run at exit). */
static int wait_for_resolver_threads(void **state)
{
    (void)state;
    wait_resolvers_gone();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connects_to_ipv4_loopback),
        cmocka_unit_test(connects_to_ipv6_loopback),
        cmocka_unit_test(connects_to_localhost_through_the_resolver_thread),
        cmocka_unit_test(writev_sends_every_iovec_in_order),
        cmocka_unit_test(writev_takes_at_most_sixteen_iovecs),
        cmocka_unit_test(read_returns_bytes_then_zero_then_closed_by_peer),
        cmocka_unit_test(writing_to_a_reset_connection_is_connection_lost),
        cmocka_unit_test(closed_port_is_connect_refused),
        cmocka_unit_test(no_descriptor_left_keeps_its_errno),
        cmocka_unit_test(unresolvable_name_is_resolve_error),
        cmocka_unit_test(destroy_while_resolving_is_safe),
        cmocka_unit_test(io_before_connect_is_refused),
        cmocka_unit_test(open_checks_its_arguments),
        cmocka_unit_test(transport_open_picks_the_stack_for_each_scheme),
    };
    return cmocka_run_group_tests(tests, start_runtime_threads, wait_for_resolver_threads);
}
