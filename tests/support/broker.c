/* A real mosquitto for the integration tests (broker.h). */
#define _GNU_SOURCE

#include "broker.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"
#define POLL_STEP_MS 10
#define MAX_INHERITED_FDS 1024

uint64_t broker_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000u;
    ts.tv_nsec = (long)(ms % 1000u) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void broker_opts_init(broker_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_inflight = 20;
}

/* ---- ports --------------------------------------------------------------- */

static int loopback_socket(bool ipv6, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(ss, 0, sizeof *ss);
    if (ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        *len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(port);
        *len = sizeof *a;
    }
    return fd;
}

static uint16_t probe_port(bool ipv6)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint16_t port = 0;
    int fd = loopback_socket(ipv6, 0, &ss, &len);
    if (fd < 0) {
        return 0;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) == 0 &&
        getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        port = ipv6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                    : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    close(fd);
    return port;
}

/* The kernel may hand the same free port to consecutive probes, since
 * nothing binds it in between: a test that probes several ports before
 * starting its broker would give two listeners one port. Ports handed out
 * recently by this process are skipped (test support: a process-wide list). */
#define RECENT_PORTS 64
static pthread_mutex_t recent_mu = PTHREAD_MUTEX_INITIALIZER;
static uint16_t recent[RECENT_PORTS];
static unsigned recent_next;

uint16_t broker_unused_port(bool ipv6)
{
    uint16_t port = 0;
    pthread_mutex_lock(&recent_mu);
    for (int attempt = 0; attempt < 50; attempt++) {
        bool seen = false;
        port = probe_port(ipv6);
        for (unsigned i = 0; i < RECENT_PORTS && port != 0; i++) {
            seen |= recent[i] == port;
        }
        if (!seen) {
            break;
        }
        port = 0;
    }
    if (port != 0) {
        recent[recent_next++ % RECENT_PORTS] = port;
    }
    pthread_mutex_unlock(&recent_mu);
    return port;
}

/* Does something accept connections on the port? */
static bool port_accepts(bool ipv6, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    bool ok;
    int fd = loopback_socket(ipv6, port, &ss, &len);
    if (fd < 0) {
        return false;
    }
    ok = connect(fd, (struct sockaddr *)&ss, len) == 0;
    close(fd);
    return ok;
}

/* ---- files --------------------------------------------------------------- */

static int write_conf(const broker *b, const broker_opts *o)
{
    FILE *f = fopen(b->conf, "w");
    if (f == NULL) {
        fprintf(stderr, "broker: cannot write %s: %s\n", b->conf, strerror(errno));
        return -1;
    }
    if (getuid() == 0) {
        fprintf(f, "user root\n"); /* else mosquitto drops to 'mosquitto' and cannot write DIR */
    }
    fprintf(f, "allow_anonymous %s\n", o->deny_anonymous ? "false" : "true");
    fprintf(f, "persistence true\n");
    fprintf(f, "persistence_location %s/\n", b->dir);
    if (o->autosave_interval > 0) {
        fprintf(f, "autosave_interval %u\n", o->autosave_interval);
    }
    fprintf(f, "max_inflight_messages %u\n", o->max_inflight ? o->max_inflight : 20u);
    fprintf(f, "max_queued_messages 100000\n");
    fprintf(f, "set_tcp_nodelay true\n");
    fprintf(f, "log_dest file %s\n", b->log);
    if (!o->quiet_log) {
        fprintf(f, "log_type all\n");
    }
    if (o->extra_conf != NULL) {
        fprintf(f, "%s\n", o->extra_conf);
    }
    fprintf(f, "listener %u 127.0.0.1\n", (unsigned)b->port);
    if (b->port6 != 0) {
        fprintf(f, "listener %u ::1\nsocket_domain ipv6\n", (unsigned)b->port6);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "broker: cannot write %s: %s\n", b->conf, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(broker *b)
{
    if (b->dir[0] != '\0') {
        nftw(b->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        b->dir[0] = '\0';
    }
}

/* ---- the process --------------------------------------------------------- */

/* Descriptors open in this process (other than 0-2), to close in the child
 * if close_range() is not available: the broker must not keep the tests'
 * sockets alive. Collected before fork() since opendir() is not
 * async-signal-safe. */
static size_t open_fds(int *fds, size_t cap)
{
    size_t n = 0;
    struct dirent *e;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL && n < cap) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d)) {
            fds[n++] = fd;
        }
    }
    closedir(d);
    return n;
}

static int spawn(broker *b)
{
    char out_path[BROKER_PATH_MAX + 16];
    char *argv[4];
    int fds[MAX_INHERITED_FDS];
    size_t nfds = open_fds(fds, MAX_INHERITED_FDS);
    pid_t pid;

    snprintf(out_path, sizeof out_path, "%s/stderr.log", b->dir);
    argv[0] = (char *)(uintptr_t)MOSQUITTO_BIN;
    argv[1] = (char *)(uintptr_t)"-c";
    argv[2] = b->conf;
    argv[3] = NULL;
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "broker: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        size_t i;
        /* if the test process dies, so does its broker (the forking thread
         * must live as long as the broker: the tests' main thread) */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0) {
            for (i = 0; i < nfds; i++) {
                close(fds[i]);
            }
        }
        execv(MOSQUITTO_BIN, argv);
        _exit(127);
    }
    b->pid = pid;
    return 0;
}

bool broker_running(broker *b)
{
    int status = 0;
    pid_t r;
    if (b->pid <= 0) {
        return false;
    }
    r = waitpid(b->pid, &status, WNOHANG);
    if (r == b->pid || (r < 0 && errno == ECHILD)) {
        b->last_status = status;
        b->pid = 0;
        return false;
    }
    return true;
}

/* Wait until the listeners accept, or the process dies, or the time is up. */
static int wait_ready(broker *b)
{
    uint64_t deadline = broker_now_ms() + BROKER_START_TIMEOUT_MS;
    for (;;) {
        if (!broker_running(b)) {
            fprintf(stderr, "broker: mosquitto exited during start-up (status %d)\n",
                    b->last_status);
            return -1;
        }
        if (port_accepts(false, b->port) && (b->port6 == 0 || port_accepts(true, b->port6))) {
            return 0;
        }
        if (broker_now_ms() >= deadline) {
            fprintf(stderr, "broker: port %u not accepting after %d ms\n", (unsigned)b->port,
                    BROKER_START_TIMEOUT_MS);
            return -1;
        }
        pause_ms(POLL_STEP_MS);
    }
}

static void reap_bounded(broker *b, int timeout_ms, bool *exited)
{
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    *exited = false;
    while (broker_running(b)) {
        if (broker_now_ms() >= deadline) {
            return;
        }
        pause_ms(POLL_STEP_MS);
    }
    *exited = true;
}

int broker_stop(broker *b)
{
    bool exited;
    if (!broker_running(b)) {
        return -1;
    }
    kill(b->pid, SIGTERM);
    reap_bounded(b, BROKER_STOP_TIMEOUT_MS, &exited);
    if (exited) {
        return 0;
    }
    fprintf(stderr, "broker: mosquitto ignored SIGTERM for %d ms; killing it\n",
            BROKER_STOP_TIMEOUT_MS);
    broker_kill(b);
    return 1;
}

int broker_kill(broker *b)
{
    int status = 0;
    if (!broker_running(b)) {
        return -1;
    }
    kill(b->pid, SIGKILL);
    while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR) {
    }
    b->last_status = status;
    b->pid = 0;
    return 0;
}

static int start_process(broker *b)
{
    if (spawn(b) != 0) {
        return -1;
    }
    if (wait_ready(b) != 0) {
        broker_kill(b);
        broker_dump_log(b, 4096);
        return -1;
    }
    return 0;
}

int broker_start(broker *b, const broker_opts *o)
{
    broker_opts defaults;
    int attempt;
    char tmpl[] = "/tmp/mqttc-broker.XXXXXX";

    memset(b, 0, sizeof *b);
    if (o == NULL) {
        broker_opts_init(&defaults);
        o = &defaults;
    }
    if (access(MOSQUITTO_BIN, X_OK) != 0) {
        fprintf(stderr, "broker: %s is not installed\n", MOSQUITTO_BIN);
        return -1;
    }
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "broker: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(b->dir, sizeof b->dir, "%s", tmpl);
    snprintf(b->conf, sizeof b->conf, "%s/mosquitto.conf", b->dir);
    snprintf(b->log, sizeof b->log, "%s/mosquitto.log", b->dir);
    /* Another process may take the port between our probe and mosquitto's
     * bind: try a few ports. */
    for (attempt = 0; attempt < 3; attempt++) {
        b->port = broker_unused_port(false);
        b->port6 = o->ipv6 ? broker_unused_port(true) : 0;
        if (b->port == 0 || (o->ipv6 && b->port6 == 0)) {
            fprintf(stderr, "broker: no free loopback port%s\n", o->ipv6 ? " (IPv6)" : "");
            break;
        }
        if (write_conf(b, o) != 0) {
            break;
        }
        if (start_process(b) == 0) {
            return 0;
        }
    }
    remove_dir(b);
    return -1;
}

int broker_restart(broker *b)
{
    if (b->dir[0] == '\0') {
        return -1;
    }
    if (broker_running(b)) {
        broker_stop(b);
    }
    return start_process(b);
}

void broker_cleanup(broker *b)
{
    if (broker_running(b)) {
        broker_stop(b);
    }
    if (getenv("MQTTC_TEST_KEEP_BROKER") != NULL && b->dir[0] != '\0') {
        fprintf(stderr, "broker: kept %s (MQTTC_TEST_KEEP_BROKER)\n", b->dir);
        return;
    }
    remove_dir(b);
}

/* ---- the log ------------------------------------------------------------- */

bool broker_log_contains(const broker *b, const char *needle)
{
    FILE *f = fopen(b->log, "r");
    char line[4096];
    bool found = false;
    if (f == NULL) {
        return false;
    }
    while (!found && fgets(line, sizeof line, f) != NULL) {
        found = strstr(line, needle) != NULL;
    }
    fclose(f);
    return found;
}

bool broker_wait_log(const broker *b, const char *needle, int timeout_ms)
{
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (broker_log_contains(b, needle)) {
            return true;
        }
        if (broker_now_ms() >= deadline) {
            return false;
        }
        pause_ms(POLL_STEP_MS);
    }
}

bool broker_wait_client_gone(const broker *b, const char *id, int timeout_ms, bool *clean)
{
    char ok[320], closed[320], err[320];
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;
    /* "Client ID disconnected." after a DISCONNECT; mosquitto 2.0 also logs
     * "Client ID disconnected: Broken pipe." and the like for failures */
    snprintf(ok, sizeof ok, "Client %s disconnected.\n", id);
    snprintf(closed, sizeof closed, "Client %s closed its connection", id);
    snprintf(err, sizeof err, "Client %s disconnected", id);
    for (;;) {
        bool c = broker_log_contains(b, ok);
        if (c || broker_log_contains(b, closed) || broker_log_contains(b, err)) {
            if (clean != NULL) {
                *clean = c;
            }
            return true;
        }
        if (broker_now_ms() >= deadline) {
            return false;
        }
        pause_ms(POLL_STEP_MS);
    }
}

void broker_dump_log(const broker *b, size_t max_bytes)
{
    FILE *f = fopen(b->log, "r");
    char buf[1024];
    size_t n;
    long size;
    if (f == NULL) {
        return;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    if (size > 0 && (size_t)size > max_bytes) {
        fseek(f, size - (long)max_bytes, SEEK_SET);
    } else {
        fseek(f, 0, SEEK_SET);
    }
    fprintf(stderr, "---- %s (last %zu bytes) ----\n", b->log, max_bytes);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        fwrite(buf, 1, n, stderr);
    }
    fprintf(stderr, "---- end of broker log ----\n");
    fclose(f);
}
