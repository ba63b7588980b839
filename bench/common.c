/* The benchmark driver: argument parsing, the three modes, counting, timing
 * and the JSON line. See common.h and docs/PERFORMANCE.md for the method.
 *
 *   harness_LIB throughput --qos Q --size BYTES --count N --window W [--e2e-window E]
 *   harness_LIB latency    --qos Q --count N [--size BYTES]
 *   harness_LIB idle       --clients K [--hold-ms MS] [--batch B]
 *     heap and RSS per client right after the last CONNACK (*_connected) and
 *     at the end of the hold (the main figures)
 *   common: --host 127.0.0.1 --port P [--timeout-ms MS] [--max-seconds S]
 *
 * Every wait is bounded: no progress for --timeout-ms, or --max-seconds in
 * all, ends the run with an error. Exit status 0 only when the run is right.
 */
#define _GNU_SOURCE
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD_MIN 24 /* seq, send time, run tag */
#define MAX_CLIENTS 100000

typedef struct args {
    const char *mode;
    const char *host;
    int port;
    int qos;
    size_t size;
    long count;
    int window;
    int e2e_window;
    int clients;
    int hold_ms;
    int batch;
    int timeout_ms;
    int max_seconds;
} args;

/* ---- state the callbacks update (main thread only) ----------------------- */

static struct {
    long connected;      /* CONNACKs accepted */
    long subscribed;     /* SUBACKs */
    long completed;      /* publishes completed */
    long received;       /* messages received, duplicates included */
    long unique;         /* distinct sequence numbers received */
    long duplicates;
    long foreign;        /* a payload that is not ours, or out of range */
    long errors;
    char error[256];
    uint64_t run_tag;
    long count;          /* sequence numbers 0..count-1 */
    uint8_t *seen;       /* bitmap of received sequence numbers */
    uint64_t last_rx_ns; /* time of the last new sequence number */
    uint64_t *lat_ns;    /* latency mode: one per sequence number */
    long last_seq;       /* latency mode: the latest sequence number received */
    uint64_t progress_ns;
} S;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void set_error(const char *fmt, ...)
{
    va_list ap;
    S.errors++;
    if (S.error[0] != '\0') {
        return; /* keep the first */
    }
    va_start(ap, fmt);
    vsnprintf(S.error, sizeof S.error, fmt, ap);
    va_end(ap);
}

void bench_on_connected(int idx)
{
    (void)idx;
    S.connected++;
    S.progress_ns = bench_now_ns();
}

void bench_on_subscribed(int idx)
{
    (void)idx;
    S.subscribed++;
    S.progress_ns = bench_now_ns();
}

void bench_on_published(int idx)
{
    (void)idx;
    S.completed++;
    S.progress_ns = bench_now_ns();
}

void bench_on_error(int idx, const char *what, int code)
{
    set_error("client %d: %s (%d)", idx, what, code);
}

void bench_on_message(int idx, const void *payload, size_t len)
{
    uint64_t seq, sent, tag, now = bench_now_ns();
    (void)idx;
    S.received++;
    S.progress_ns = now;
    if (len < PAYLOAD_MIN) {
        S.foreign++;
        return;
    }
    memcpy(&seq, payload, 8);
    memcpy(&sent, (const uint8_t *)payload + 8, 8);
    memcpy(&tag, (const uint8_t *)payload + 16, 8);
    if (tag != S.run_tag || seq >= (uint64_t)S.count) {
        S.foreign++;
        return;
    }
    if (S.seen[seq / 8] & (1u << (seq % 8))) {
        S.duplicates++;
        return;
    }
    S.seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
    S.unique++;
    S.last_rx_ns = now;
    if (S.lat_ns != NULL) {
        S.lat_ns[seq] = now - sent;
    }
    S.last_seq = (long)seq;
}

/* ---- measurements ------------------------------------------------------- */

static uint64_t cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

/* Heap in use: glibc mallinfo2 (one arena: see main). */
static uint64_t heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
}

static uint64_t rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
    long n = 0;
    struct dirent *e;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* ---- helpers ------------------------------------------------------------ */

static const bench_lib *L;
static args A;
static char version[128];
static uint64_t start_ns;

static bool over_time(void)
{
    return bench_now_ns() - start_ns > (uint64_t)A.max_seconds * 1000000000u;
}

static bool stalled(void)
{
    return bench_now_ns() - S.progress_ns > (uint64_t)A.timeout_ms * 1000000u;
}

static int step(bench_client **c, int n, int timeout_ms)
{
    int rc = L->step(c, n, timeout_ms);
    if (rc < 0) {
        set_error("step failed (%d)", rc);
    }
    return rc;
}

/* Step until *counter reaches target; false on error, stall or time. */
static bool wait_for(bench_client **c, int n, const long *counter, long target, const char *what)
{
    S.progress_ns = bench_now_ns();
    long turns;
    for (turns = 0; turns < 100000000L && *counter < target; turns++) {
        if (S.errors > 0 || step(c, n, 50) < 0) {
            return false;
        }
        if (stalled() || over_time()) {
            set_error("timed out waiting for %s (%ld of %ld)", what, *counter, target);
            return false;
        }
    }
    return *counter >= target;
}

static void make_payload(uint8_t *p, uint64_t seq)
{
    uint64_t now = bench_now_ns();
    memcpy(p, &seq, 8);
    memcpy(p + 8, &now, 8);
    memcpy(p + 16, &S.run_tag, 8);
}

static void json_head(void)
{
    printf("{\"mode\":\"%s\",\"lib\":\"%s\",\"version\":\"%s\"", A.mode, L->name, version);
}

static void json_fail(void)
{
    json_head();
    printf(",\"ok\":false,\"error\":\"");
    for (const char *s = S.error[0] ? S.error : "unknown"; *s; s++) {
        putchar((*s == '"' || *s == '\\') ? '\'' : *s);
    }
    printf("\"}\n");
    fflush(stdout);
}

/* Two clients: 0 subscribes, 1 publishes. */
static bool setup_pair(bench_client **c, const char *topic)
{
    char id[64];
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof id, "bench-%s-%d-%d", L->name, (int)getpid(), i);
        c[i] = L->create(A.host, A.port, i, id, A.window > 0 ? A.window : 20);
        if (c[i] == NULL) {
            set_error("create client %d failed", i);
            return false;
        }
    }
    if (!wait_for(c, 2, &S.connected, 2, "CONNACK")) {
        return false;
    }
    if (L->subscribe(c[0], topic, A.qos) < 0) {
        set_error("subscribe failed");
        return false;
    }
    return wait_for(c, 2, &S.subscribed, 1, "SUBACK");
}

static void destroy_all(bench_client **c, int n)
{
    for (int i = 0; i < n; i++) {
        if (c[i] != NULL) {
            L->destroy(c[i]);
            c[i] = NULL;
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- modes -------------------------------------------------------------- */

static int run_throughput(void)
{
    bench_client *c[2] = {NULL, NULL};
    char topic[96];
    uint8_t *payload = malloc(A.size);
    long sent = 0, turns;
    uint64_t t0, cpu0, cpu1, drain_from = 0;
    bool ok = false;

    snprintf(topic, sizeof topic, "bench/%s/%d/tp", L->name, (int)getpid());
    if (payload == NULL) {
        set_error("out of memory");
        goto out;
    }
    memset(payload, 'x', A.size);
    if (!setup_pair(c, topic)) {
        goto out;
    }
    t0 = bench_now_ns();
    cpu0 = cpu_us();
    S.progress_ns = t0;
    for (turns = 0; turns < 1000000000L; turns++) {
        /* top up: at most `window` not completed, at most `e2e` not received */
        while (sent < A.count && sent - S.completed < A.window && sent - S.received < A.e2e_window) {
            make_payload(payload, (uint64_t)sent);
            int rc = L->publish(c[1], topic, payload, A.size, A.qos);
            if (rc < 0) {
                set_error("publish %ld failed (%d)", sent, rc);
                goto out;
            }
            sent++;
        }
        if (sent == A.count && S.completed >= A.count && S.unique >= A.count) {
            break;
        }
        if (S.errors > 0 || step(c, 2, 100) < 0) {
            goto out;
        }
        if (sent == A.count && S.completed >= A.count) {
            /* all published: wait a bounded time for the rest */
            if (drain_from == 0) {
                drain_from = bench_now_ns();
            }
            if (bench_now_ns() - S.progress_ns > 2000000000u) {
                break;
            }
        }
        if (stalled() || over_time()) {
            set_error("stalled: sent %ld completed %ld received %ld", sent, S.completed,
                      S.received);
            goto out;
        }
    }
    cpu1 = cpu_us();
    {
        long lost = A.count - S.unique;
        double secs = (double)((S.last_rx_ns > t0 ? S.last_rx_ns : bench_now_ns()) - t0) / 1e9;
        if (A.qos >= 1 && lost > 0) {
            set_error("lost %ld messages at QoS %d", lost, A.qos);
        }
        if (A.qos == 2 && S.duplicates > 0) {
            set_error("%ld duplicates at QoS 2", S.duplicates);
        }
        if (S.foreign > 0) {
            set_error("%ld foreign messages", S.foreign);
        }
        if (S.completed != A.count) {
            set_error("completed %ld of %ld publishes", S.completed, A.count);
        }
        if (S.errors > 0) {
            goto out;
        }
        json_head();
        printf(",\"ok\":true,\"params\":{\"qos\":%d,\"size\":%zu,\"count\":%ld,\"window\":%d,"
               "\"e2e_window\":%d},",
               A.qos, A.size, A.count, A.window, A.e2e_window);
        printf("\"results\":{\"msgs_per_s\":%.1f,\"seconds\":%.6f,\"received\":%ld,\"unique\":%ld,"
               "\"lost\":%ld,\"duplicated\":%ld,\"cpu_us_per_msg\":%.3f}}\n",
               secs > 0 ? (double)S.unique / secs : 0.0, secs, S.received, S.unique, lost,
               S.duplicates, (double)(cpu1 - cpu0) / (double)A.count);
        fflush(stdout);
        ok = true;
    }
out:
    destroy_all(c, 2);
    free(payload);
    return ok ? 0 : 1;
}

static int run_latency(void)
{
    bench_client *c[2] = {NULL, NULL};
    char topic[96];
    uint8_t *payload = malloc(A.size);
    uint64_t cpu0, cpu1, *lat = NULL;
    bool ok = false;

    snprintf(topic, sizeof topic, "bench/%s/%d/lat", L->name, (int)getpid());
    S.lat_ns = calloc((size_t)A.count, sizeof *S.lat_ns);
    lat = calloc((size_t)A.count, sizeof *lat);
    if (payload == NULL || S.lat_ns == NULL || lat == NULL) {
        set_error("out of memory");
        goto out;
    }
    memset(payload, 'x', A.size);
    if (!setup_pair(c, topic)) {
        goto out;
    }
    cpu0 = cpu_us();
    for (long i = 0; i < A.count; i++) {
        long target = S.unique + 1;
        make_payload(payload, (uint64_t)i);
        int rc = L->publish(c[1], topic, payload, A.size, A.qos);
        if (rc < 0) {
            set_error("publish %ld failed (%d)", i, rc);
            goto out;
        }
        if (!wait_for(c, 2, &S.unique, target, "the message") || S.last_seq != i) {
            if (S.errors == 0) {
                set_error("message %ld: got %ld instead", i, S.last_seq);
            }
            goto out;
        }
    }
    if (!wait_for(c, 2, &S.completed, A.count, "completions")) {
        goto out;
    }
    cpu1 = cpu_us();
    if (S.duplicates > 0 && A.qos == 2) {
        set_error("%ld duplicates at QoS 2", S.duplicates);
        goto out;
    }
    memcpy(lat, S.lat_ns, (size_t)A.count * sizeof *lat);
    qsort(lat, (size_t)A.count, sizeof *lat, cmp_u64);
#define PCT(p) ((double)lat[(size_t)(((double)(A.count - 1)) * (p) + 0.5)] / 1000.0)
    json_head();
    printf(",\"ok\":true,\"params\":{\"qos\":%d,\"size\":%zu,\"count\":%ld},", A.qos, A.size,
           A.count);
    printf("\"results\":{\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
           "\"received\":%ld,\"unique\":%ld,\"lost\":%ld,\"duplicated\":%ld,"
           "\"cpu_us_per_msg\":%.3f}}\n",
           PCT(0.50), PCT(0.90), PCT(0.99), (double)lat[A.count - 1] / 1000.0, S.received,
           S.unique, A.count - S.unique, S.duplicates, (double)(cpu1 - cpu0) / (double)A.count);
#undef PCT
    fflush(stdout);
    ok = true;
out:
    destroy_all(c, 2);
    free(payload);
    free(lat);
    free(S.lat_ns);
    S.lat_ns = NULL;
    return ok ? 0 : 1;
}

static int run_idle(void)
{
    int k = A.clients;
    bench_client **c = calloc((size_t)k, sizeof *c);
    uint64_t heap0, rss0, heap1, rss1, heap2, rss2, t0, t1, t2, cpu0;
    long fds0, fds1;
    bool ok = false;
    char id[64];

    if (c == NULL) {
        set_error("out of memory");
        goto out;
    }
    heap0 = heap_bytes();
    rss0 = rss_bytes();
    fds0 = open_fds();
    cpu0 = cpu_us();
    t0 = bench_now_ns();
    /* connect in batches, so the broker's accept backlog never overflows */
    for (int i = 0; i < k; i += A.batch) {
        int n = k - i < A.batch ? k - i : A.batch;
        for (int j = i; j < i + n; j++) {
            snprintf(id, sizeof id, "bench-%s-%d-%d", L->name, (int)getpid(), j);
            c[j] = L->create(A.host, A.port, j, id, 20);
            if (c[j] == NULL) {
                int e = errno;
                struct rlimit rl = {0, 0};
                getrlimit(RLIMIT_NOFILE, &rl);
                set_error("create client %d failed: %s (fd limit %ld)", j, strerror(e),
                          (long)rl.rlim_cur);
                goto out;
            }
        }
        if (!wait_for(c, i + n, &S.connected, i + n, "CONNACKs")) {
            goto out;
        }
    }
    t1 = bench_now_ns();
    /* settle: a few turns so that nothing is left half-done */
    for (int t = 0; t < 5; t++) {
        if (step(c, k, 10) < 0) {
            goto out;
        }
    }
    /* right after connecting */
    heap1 = heap_bytes();
    rss1 = rss_bytes();
    fds1 = open_fds();
    /* hold them connected, idle; measure again at the end (a library may
     * release what an idle connection does not need after a while) */
    t2 = bench_now_ns();
    for (long turns = 0; turns < 1000000L && bench_now_ns() - t2 < (uint64_t)A.hold_ms * 1000000u;
         turns++) {
        if (S.errors > 0 || step(c, k, 50) < 0) {
            goto out;
        }
    }
    heap2 = heap_bytes();
    rss2 = rss_bytes();
    if (S.errors > 0 || S.connected != k) {
        set_error("%ld of %d clients connected", S.connected, k);
        goto out;
    }
    json_head();
    printf(",\"ok\":true,\"params\":{\"clients\":%d,\"batch\":%d,\"hold_ms\":%d},", k, A.batch,
           A.hold_ms);
    printf("\"results\":{\"heap_per_client\":%.1f,\"rss_per_client\":%.1f,"
           "\"heap_per_client_connected\":%.1f,\"rss_per_client_connected\":%.1f,"
           "\"fds_per_client\":%.2f,\"connect_s\":%.3f,\"connected\":%ld,"
           "\"cpu_us_per_client\":%.1f}}\n",
           ((double)heap2 - (double)heap0) / k, ((double)rss2 - (double)rss0) / k,
           ((double)heap1 - (double)heap0) / k, ((double)rss1 - (double)rss0) / k,
           (double)(fds1 - fds0) / k, (double)(t1 - t0) / 1e9, S.connected,
           (double)(cpu_us() - cpu0) / k);
    fflush(stdout);
    ok = true;
out:
    if (c != NULL) {
        destroy_all(c, k);
    }
    free(c);
    return ok ? 0 : 1;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: harness throughput --qos Q --size BYTES --count N --window W [--e2e-window E]\n"
            "       harness latency --qos Q --count N [--size BYTES]\n"
            "       harness idle --clients K [--hold-ms MS] [--batch B]\n"
            "  common: --host H --port P [--timeout-ms MS] [--max-seconds S]\n");
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return false;
    }
    *out = v;
    return true;
}

static bool parse_args(int argc, char **argv)
{
    long v;
    A = (args){.host = "127.0.0.1", .port = 1883, .qos = 0, .size = 64, .count = 1000,
               .window = 32, .e2e_window = 1000, .clients = 100, .hold_ms = 1000,
               .batch = 100, .timeout_ms = 10000, .max_seconds = 600};
    if (argc < 2) {
        return false;
    }
    A.mode = argv[1];
    if (strcmp(A.mode, "throughput") != 0 && strcmp(A.mode, "latency") != 0 &&
        strcmp(A.mode, "idle") != 0) {
        return false;
    }
    for (int i = 2; i < argc; i += 2) {
        const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (val == NULL) {
            return false;
        }
        if (strcmp(o, "--host") == 0) {
            A.host = val;
            continue;
        }
#define NUM(name, lo, hi, field)                                                                   \
    if (strcmp(o, name) == 0) {                                                                    \
        if (!parse_long(val, lo, hi, &v)) {                                                        \
            fprintf(stderr, "bad value for %s: %s\n", name, val);                                  \
            return false;                                                                          \
        }                                                                                          \
        A.field = v;                                                                               \
        continue;                                                                                  \
    }
        NUM("--port", 1, 65535, port)
        NUM("--qos", 0, 2, qos)
        NUM("--size", PAYLOAD_MIN, 16 * 1024 * 1024, size)
        NUM("--count", 1, 100000000, count)
        NUM("--window", 1, 65535, window)
        NUM("--e2e-window", 1, 1000000, e2e_window)
        NUM("--clients", 1, MAX_CLIENTS, clients)
        NUM("--hold-ms", 0, 600000, hold_ms)
        NUM("--batch", 1, MAX_CLIENTS, batch)
        NUM("--timeout-ms", 100, 600000, timeout_ms)
        NUM("--max-seconds", 1, 3600, max_seconds)
#undef NUM
        fprintf(stderr, "unknown option %s\n", o);
        return false;
    }
    return true;
}

int bench_main(const bench_lib *lib, int argc, char **argv)
{
    int rc;
    /* One malloc arena, so that mallinfo2() also sees what other threads
     * allocate (Paho's); the same for every library. */
    mallopt(M_ARENA_MAX, 1);
    L = lib;
    if (!parse_args(argc, argv)) {
        usage();
        return 2;
    }
    start_ns = bench_now_ns();
    S.run_tag = start_ns ^ ((uint64_t)getpid() << 32);
    S.last_seq = -1;
    S.count = A.mode[0] == 'i' ? 0 : A.count;
    S.seen = calloc((size_t)(S.count / 8 + 1), 1);
    if (S.seen == NULL) {
        return 1;
    }
    if (lib->init(version, sizeof version) != 0) {
        set_error("library init failed");
        json_fail();
        return 1;
    }
    if (strcmp(A.mode, "throughput") == 0) {
        rc = run_throughput();
    } else if (strcmp(A.mode, "latency") == 0) {
        rc = run_latency();
    } else {
        rc = run_idle();
    }
    lib->cleanup();
    if (rc != 0) {
        json_fail();
    }
    free(S.seen);
    return rc;
}
