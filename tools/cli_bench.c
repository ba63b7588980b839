/* mqttc bench: load generator and measuring tool.
 *
 * Two modes:
 *  - messages (default): N publishers and M subscribers in one process.
 *    Each payload starts with a header (run id, publisher, sequence number,
 *    CLOCK_MONOTONIC send time), so each subscriber measures the round trip
 *    and tracks every publisher's sequence numbers: what it should have
 *    received (sent x the subscribers whose filter matches the publisher's
 *    topic), what is missing and what came twice.
 *  - connection storm (--connections K): open K connections at --connect-rate
 *    per second, hold them for --hold seconds with keepalive, and report the
 *    connect latency, failures and memory per connection.
 *
 * Threads: the clients are dealt round-robin to min(cores, --threads,
 * clients) worker threads. Each worker drives its clients in caller-driven
 * mode (MQTTC_RUN_CALLER) from one poll() loop, so every client is touched by
 * one thread only and its callbacks run on that thread: the per-client state
 * needs no lock. Workers publish their counters through relaxed atomics
 * (written by the owner only) for the main thread's progress line; the
 * histograms and sequence maps are read by the main thread after the workers
 * are joined. The main thread only supervises: phases, progress, summary. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "mqttc/codec.h"

#define BENCH_EXIT_FAILED 2          /* the run finished but a check failed */
#define BENCH_HDR 24                 /* run id, publisher, sequence, send time */
#define BENCH_MAGIC_TOPIC "mqttc/bench"
#define BENCH_BURST 256              /* publishes per publisher per loop turn */
#define BENCH_TICK_MS 50             /* workers look at the phase this often */
#define BENCH_QUIET_MS 500           /* QoS 0 drain: nothing new for this long */
#define BENCH_FD_SPARE 64            /* descriptors kept for everything else */
#define BENCH_MAX_CLIENTS 100000
#define BENCH_DISCONNECT_MS 3000

/* ---- options ------------------------------------------------------------- */

enum {
    BX_PUB, BX_SUB, BX_SIZE, BX_RATE, BX_COUNT, BX_DURATION, BX_WINDOW, BX_TOPICS, BX_THREADS,
    BX_TIMEOUT, BX_JSON, BX_CONNECTIONS, BX_CONNECT_RATE, BX_HOLD
};

static const cli_extra_flag bench_flags[] = {
    {NULL, "--pub", "count", BX_PUB},
    {NULL, "--sub", "count", BX_SUB},
    {"-s", "--size", "bytes", BX_SIZE},
    {NULL, "--rate", "messages/s", BX_RATE},
    {"-C", "--count", "messages", BX_COUNT},
    {NULL, "--duration", "seconds", BX_DURATION},
    {NULL, "--window", "messages", BX_WINDOW},
    {NULL, "--topics", "each|shared", BX_TOPICS},
    {NULL, "--threads", "count", BX_THREADS},
    {"-W", "--timeout", "seconds", BX_TIMEOUT},
    {NULL, "--json", NULL, BX_JSON},
    {NULL, "--connections", "count", BX_CONNECTIONS},
    {NULL, "--connect-rate", "connections/s", BX_CONNECT_RATE},
    {NULL, "--hold", "seconds", BX_HOLD},
};

typedef struct bench_opts {
    long pubs, subs, size, rate, count, duration, window, threads, timeout;
    long connections, connect_rate, hold;
    bool shared_topic, json;
    bool count_given, duration_given, storm_given, msg_given;
} bench_opts;

static void bench_usage(void)
{
    printf(
        "mqttc bench: measure a broker and this client library.\n"
        "\n"
        "Usage: mqttc bench [-h host] [-p port | -L URL] [-u user [-P password]] [-t topic]\n"
        "                   [--pub N] [--sub M] [-q qos] [-s bytes] [--topics each|shared]\n"
        "                   [--rate msgs/s] [-C count | --duration seconds] [--window N]\n"
        "                   [--threads N] [-W timeout] [--json] [TLS and WebSocket options]\n"
        "       mqttc bench --connections K [--connect-rate R] [--hold seconds] [-k keepalive] ...\n"
        "       mqttc bench --help\n"
        "\n"
        "Messages (default): N publishers and M subscribers in this process. Each payload\n"
        "carries a send time and a sequence number; every subscriber subscribes to the\n"
        "pattern that matches all publishers and checks each publisher's sequence.\n"
        " --pub            publishers, 1 to 100000 (default 1)\n"
        " --sub            subscribers, 0 to 100000 (default 1)\n"
        " -q, --qos        QoS of the publishes and the subscriptions, 0, 1 or 2 (default 0)\n"
        " -s, --size       payload size in bytes, 24 (the header) to 268435000 (default 64)\n"
        " -t, --topic      topic base (default mqttc/bench)\n"
        " --topics         each: publisher i publishes to BASE/i and subscribers subscribe\n"
        "                  to BASE/+ (fan-in of many topics, default); shared: every\n"
        "                  publisher publishes to BASE and subscribers subscribe to BASE\n"
        " --rate           messages per second per publisher (default 0: as fast as the\n"
        "                  window allows)\n"
        " -C, --count      messages per publisher (default 1000 unless --duration is given)\n"
        " --duration       seconds of publishing; with -C, whichever comes first\n"
        " --window         messages a publisher may have outstanding, 1 to 65535 (default 16):\n"
        "                  handed over and not completed (written for QoS 0, PUBACK for 1,\n"
        "                  PUBCOMP for 2; also the client's in-flight limit), and sent but\n"
        "                  not yet received by every subscriber. mosquitto accepts 20 QoS 2\n"
        "                  messages in flight per client by default (max_inflight_messages)\n"
        "                  and drops the ones beyond, which MQTT 3.1.1 cannot tell the client\n"
        "\n"
        "Connection storm (--connections K): open K connections, hold them, close them.\n"
        " --connections    connections to open, 1 to 100000\n"
        " --connect-rate   connections opened per second (default 100)\n"
        " --hold           seconds to hold them once all are open (default 5), with keepalive\n"
        "                  (-k) pings\n"
        "\n"
        "Both:\n"
        " -h, --host       broker host name or address (default localhost)\n"
        " -p, --port       broker port (default 1883; 8883 with TLS options)\n"
        " -L, --url        scheme://[user[:password]@]host[:port][/topic base], scheme one of\n"
        "                  mqtt, tcp, mqtts, ssl, ws, wss\n"
        " -u, --username   user name;  -P, --pw  password\n"
        " -k, --keepalive  keepalive in seconds, 5 to 65535 (default 60)\n"
        " -I, --id-prefix  client ids are this prefix and a number (default mqttc-bench-PID-)\n"
        " --threads        worker threads, at most the number of cores and of clients\n"
        "                  (default: the number of cores)\n"
        " -W, --timeout    seconds any wait may take: connecting and subscribing, a publisher\n"
        "                  making no progress, draining after the last publish, opening the\n"
        "                  storm's connections after the last is started (default 10)\n"
        " --json           print the summary as one JSON object on stdout\n"
        " -d, --debug      print the library's debug log on stderr\n"
        " --quiet          no progress line and no runtime errors\n"
        " --help           this message\n"
        "\n");
    cli_tls_usage();
    printf(
        "\n"
        "A progress line (rate, in flight, reconnects) is shown on stderr when it is a\n"
        "terminal. Round-trip latency is from publish to delivery within this process.\n"
        "CPU per message is this process's user+system time over the run divided by the\n"
        "messages sent plus received. Memory per connection is the resident-size growth\n"
        "(/proc/self/statm) and heap growth (mallinfo2), at the end of the hold, divided by\n"
        "the connections open.\n"
        "Exit status: 0 when all is well; 2 when messages were lost at QoS 1 or 2,\n"
        "duplicated at QoS 2, or connections failed or dropped; 1 for usage errors or when\n"
        "the clients could not connect and subscribe in time. SIGINT or SIGTERM ends the\n"
        "publishing (or the storm's hold) early; the drain and the summary follow.\n");
}

static bool bench_num(cli_opts *o, const char *flag, const char *arg, long min, long max,
                      long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(arg, &end, 10);
    if (arg[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        cli_usage_error(o, "invalid value '%s' for %s: expected %ld to %ld", arg, flag, min, max);
        return false;
    }
    *out = v;
    return true;
}

static bool bench_apply(cli_opts *o, int id, const char *flag, const char *arg, void *user)
{
    bench_opts *b = user;
    switch (id) {
    case BX_PUB:
        b->msg_given = true;
        return bench_num(o, flag, arg, 1, BENCH_MAX_CLIENTS, &b->pubs);
    case BX_SUB:
        b->msg_given = true;
        return bench_num(o, flag, arg, 0, BENCH_MAX_CLIENTS, &b->subs);
    case BX_SIZE:
        b->msg_given = true;
        return bench_num(o, flag, arg, BENCH_HDR, MQTTC_MAX_REMAINING_LENGTH - 65536, &b->size);
    case BX_RATE:
        b->msg_given = true;
        return bench_num(o, flag, arg, 0, 10000000, &b->rate);
    case BX_COUNT:
        b->count_given = true;
        return bench_num(o, flag, arg, 1, LONG_MAX / 2, &b->count);
    case BX_DURATION:
        b->duration_given = true;
        return bench_num(o, flag, arg, 1, 86400 * 7, &b->duration);
    case BX_WINDOW:
        b->msg_given = true;
        return bench_num(o, flag, arg, 1, 65535, &b->window);
    case BX_THREADS:
        return bench_num(o, flag, arg, 1, 1024, &b->threads);
    case BX_TIMEOUT:
        return bench_num(o, flag, arg, 1, 86400, &b->timeout);
    case BX_CONNECTIONS:
        b->storm_given = true;
        return bench_num(o, flag, arg, 1, BENCH_MAX_CLIENTS, &b->connections);
    case BX_CONNECT_RATE:
        b->storm_given = true;
        return bench_num(o, flag, arg, 1, 1000000, &b->connect_rate);
    case BX_HOLD:
        b->storm_given = true;
        return bench_num(o, flag, arg, 0, 86400, &b->hold);
    case BX_JSON:
        b->json = true;
        return true;
    case BX_TOPICS:
        if (strcmp(arg, "each") == 0 || strcmp(arg, "shared") == 0) {
            b->shared_topic = strcmp(arg, "shared") == 0;
            b->msg_given = true;
            return true;
        }
        cli_usage_error(o, "invalid value '%s' for --topics: expected each or shared", arg);
        return false;
    default:
        return false;
    }
}

/* ---- latency histogram: 32 sub-buckets per power of two (about 3%) ------- */

#define H_SUB 32
#define H_BUCKETS (64 * H_SUB)

typedef struct hist {
    uint64_t n[H_BUCKETS];
    uint64_t count, max, sum;
} hist;

static unsigned hist_index(uint64_t v)
{
    unsigned e;
    if (v < H_SUB) {
        return (unsigned)v;
    }
    e = 63u - (unsigned)__builtin_clzll(v); /* >= 5 */
    return (e - 4u) * H_SUB + (unsigned)((v >> (e - 5u)) & (H_SUB - 1));
}

/* The middle of bucket i. */
static uint64_t hist_value(unsigned i)
{
    unsigned e;
    uint64_t lo;
    if (i < H_SUB) {
        return i;
    }
    e = i / H_SUB + 4u;
    lo = (uint64_t)(H_SUB + i % H_SUB) << (e - 5u);
    return lo + (((uint64_t)1 << (e - 5u)) >> 1);
}

static void hist_add(hist *h, uint64_t v)
{
    h->n[hist_index(v)]++;
    h->count++;
    h->sum += v;
    if (v > h->max) {
        h->max = v;
    }
}

static void hist_merge(hist *into, const hist *h)
{
    unsigned i;
    for (i = 0; i < H_BUCKETS; i++) {
        into->n[i] += h->n[i];
    }
    into->count += h->count;
    into->sum += h->sum;
    if (h->max > into->max) {
        into->max = h->max;
    }
}

/* The value below which a fraction q of the samples lie; 0 without any. */
static uint64_t hist_quantile(const hist *h, double q)
{
    uint64_t want, seen = 0;
    unsigned i;
    if (h->count == 0) {
        return 0;
    }
    want = (uint64_t)(q * (double)h->count);
    if (want >= h->count) {
        want = h->count - 1;
    }
    for (i = 0; i < H_BUCKETS; i++) {
        seen += h->n[i];
        if (seen > want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- sequence tracking: a growing bitmap per (subscriber, publisher) ----- */

typedef struct seqmap {
    uint8_t *bits;
    uint64_t cap; /* bits */
    uint64_t unique, dups;
} seqmap;

/* Mark `seq`; false when out of memory. */
static bool seq_mark(seqmap *m, uint64_t seq)
{
    if (seq >= m->cap) {
        uint64_t cap = m->cap ? m->cap : 1024;
        uint8_t *grown;
        while (cap <= seq) {
            cap *= 2;
        }
        grown = realloc(m->bits, (size_t)(cap / 8));
        if (grown == NULL) {
            return false;
        }
        memset(grown + m->cap / 8, 0, (size_t)((cap - m->cap) / 8));
        m->bits = grown;
        m->cap = cap;
    }
    if (m->bits[seq / 8] & (1u << (seq % 8))) {
        m->dups++;
    } else {
        m->bits[seq / 8] |= (uint8_t)(1u << (seq % 8));
        m->unique++;
    }
    return true;
}

/* ---- clients, workers, the run ------------------------------------------- */

typedef enum role { ROLE_PUB, ROLE_SUB, ROLE_CONN } role;
typedef enum phase { PH_CONNECT, PH_RUN, PH_DRAIN, PH_STOP } phase;

struct worker;
struct bench;

typedef struct bclient {
    struct worker *w;
    mqttc_client *c;
    role role;
    uint32_t index;     /* publisher or subscriber number, or connection number */
    char *topic;        /* publisher: its topic; subscriber: its filter */
    bool connected_once, up, subscribed, failed, dropped;
    int64_t connect_start; /* ns; storm: 0 until started */
    int64_t deadline;      /* ms: process it then even if idle; -1: none */
    /* publisher */
    uint64_t seq, inflight, completed;
    uint64_t matching;  /* subscribers whose filter matches the topic */
    /* copies received by them: the subscribers' threads add, so it has a
     * cache line of its own (the publisher's fields are written all the time) */
    _Alignas(64) _Atomic uint64_t delivered;
    _Alignas(64) uint64_t given_up; /* QoS 0: copies no longer waited for */
    int64_t last_delivered_ms; /* QoS 0: when `delivered` last moved */
    uint64_t last_delivered;
    int64_t next_due; /* ns */
    int64_t last_progress; /* ms */
    bool done, blocked; /* blocked: by the windows or the connection */
    /* subscriber: one map per publisher */
    seqmap *maps;
} bclient;

typedef struct worker {
    struct bench *b;
    pthread_t thread;
    bclient **clients;
    size_t n;
    struct pollfd *pfds;
    size_t *pidx;
    uint8_t *payload;
    hist lat, conn_lat;
    uint64_t foreign, nomem;
    /* written by the worker only, read by main for progress and phases */
    _Atomic uint64_t sent, completed, received, reconnects, connected, subscribed, failed,
        dropped_conns, inflight, pubs_done, stalled, dropped_msgs;
    _Atomic uint64_t last_pub_ns, last_rx_ns; /* when it last published, received */
} worker;

typedef struct bench {
    cli_opts *o;
    bench_opts *bo;
    bool storm;
    uint32_t run_id;
    worker *workers;
    size_t nworkers;
    bclient *clients;
    size_t nclients;
    _Atomic int phase;
    atomic_bool error_shown;
    int64_t run_start_ns; /* set before PH_RUN */
    int64_t run_end_ns;   /* --duration: no publish from then on; 0: none */
    int64_t stall_ms;
} bench;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t ld(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Only the owning worker writes its counters: no read-modify-write needed. */
static void bump(_Atomic uint64_t *a, int64_t d)
{
    atomic_store_explicit(a, ld(a) + (uint64_t)d, memory_order_relaxed);
}

static phase get_phase(bench *b)
{
    return (phase)atomic_load_explicit(&b->phase, memory_order_acquire);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void on_message(bclient *bc, const mqttc_client_event *ev)
{
    worker *w = bc->w;
    bench *b = w->b;
    const uint8_t *p = ev->u.message.payload;
    uint32_t pub;
    uint64_t seq;
    int64_t sent_at;

    if (ev->u.message.payload_len < BENCH_HDR || get_u32(p) != b->run_id) {
        w->foreign++; /* someone else's message, or a retained one */
        return;
    }
    pub = get_u32(p + 4);
    seq = get_u64(p + 8);
    sent_at = (int64_t)get_u64(p + 16);
    if (pub >= (uint32_t)b->bo->pubs) {
        w->foreign++;
        return;
    }
    if (!seq_mark(&bc->maps[pub], seq)) {
        w->nomem++;
    }
    atomic_fetch_add_explicit(&b->clients[pub].delivered, 1, memory_order_relaxed);
    {
        int64_t now = now_ns(), d = now - sent_at;
        hist_add(&w->lat, d > 0 ? (uint64_t)d : 0);
        atomic_store_explicit(&w->last_rx_ns, (uint64_t)now, memory_order_relaxed);
    }
    bump(&w->received, 1);
}

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    bclient *bc = user;
    worker *w = bc->w;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        bc->up = true;
        if (bc->connected_once) {
            bump(&w->reconnects, 1);
            break;
        }
        bc->connected_once = true;
        {
            int64_t d = now_ns() - bc->connect_start;
            hist_add(&w->conn_lat, d > 0 ? (uint64_t)d : 0);
        }
        bump(&w->connected, 1);
        if (bc->role == ROLE_SUB) {
            int rc = mqttc_client_subscribe(c, bc->topic, w->b->o->qos);
            if (rc < 0 && !bc->failed) {
                bc->failed = true;
                bump(&w->failed, 1);
            }
        }
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        if (!bc->subscribed && !bc->failed) {
            if (ev->u.subscribed.count < 1 || ev->u.subscribed.granted[0] == 0x80) {
                bc->failed = true;
                bump(&w->failed, 1);
            } else {
                bc->subscribed = true;
                bump(&w->subscribed, 1);
            }
        }
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        if (bc->role == ROLE_SUB) {
            on_message(bc, ev);
        }
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
    case MQTTC_CLIENT_EV_DROPPED:
        if (bc->role == ROLE_PUB && bc->inflight > 0) {
            bc->inflight--;
            bump(&w->inflight, -1);
            bc->last_progress = cli_now_ms();
            if (ev->type == MQTTC_CLIENT_EV_PUBLISHED) {
                bc->completed++;
                bump(&w->completed, 1);
            } else {
                bump(&w->dropped_msgs, 1);
            }
        }
        break;
    case MQTTC_CLIENT_EV_ERROR:
        if (!bc->connected_once && !bc->failed) {
            bc->failed = true;
            bump(&w->failed, 1);
            if (!atomic_exchange(&w->b->error_shown, true)) {
                /* the first client that could not connect says why */
                cli_error(w->b->o, "mqttc bench: %s %u: %s",
                          bc->role == ROLE_PUB ? "publisher" : bc->role == ROLE_SUB ? "subscriber"
                                                                                   : "connection",
                          (unsigned)bc->index, mqttc_strerror(ev->u.error.code));
            }
        }
        break;
    case MQTTC_CLIENT_EV_DISCONNECTED:
        bc->up = false;
        if (bc->role == ROLE_CONN && !bc->dropped && get_phase(w->b) != PH_STOP) {
            bc->dropped = true;
            bump(&w->dropped_conns, 1);
        }
        break;
    case MQTTC_CLIENT_EV_UNSUBSCRIBED:
    case MQTTC_CLIENT_EV_PONG:
        break;
    }
}

/* The end-to-end window: copies sent to the matching subscribers and not yet
 * received by them stay below window x matching, so a publisher cannot run
 * ahead of its subscribers and overflow the broker's queues (mosquitto drops
 * QoS 1 and 2 messages beyond max_queued_messages). At QoS 0 copies may be
 * lost for good: after a second without any delivery the publisher stops
 * waiting for those outstanding. */
static bool e2e_room(bclient *bc, int64_t now_ms)
{
    uint64_t delivered = atomic_load_explicit(&bc->delivered, memory_order_relaxed);
    uint64_t limit = (uint64_t)bc->w->b->bo->window * bc->matching;
    uint64_t out;
    if (bc->matching == 0) {
        return true;
    }
    if (delivered != bc->last_delivered) {
        bc->last_delivered = delivered;
        bc->last_delivered_ms = now_ms;
        bc->last_progress = now_ms;
    }
    out = bc->seq * bc->matching - delivered - bc->given_up;
    if (out < limit) {
        return true;
    }
    if (bc->w->b->o->qos == 0 && now_ms - bc->last_delivered_ms >= 2 * BENCH_QUIET_MS) {
        bc->given_up += out;
        bc->last_delivered_ms = now_ms;
        return true;
    }
    return false;
}

/* Publish what the window, the rate and the count allow. */
static void publish_some(bclient *bc, int64_t now, int64_t *wake_ns)
{
    worker *w = bc->w;
    bench *b = w->b;
    const bench_opts *bo = b->bo;
    int64_t period = bo->rate > 0 ? 1000000000 / bo->rate : 0;
    int burst;

    bc->blocked = false;
    if (bc->done || bc->failed) {
        return;
    }
    if (!mqttc_client_ready(bc->c)) {
        bc->blocked = true;
        return;
    }
    for (burst = 0; burst < BENCH_BURST; burst++) {
        int rc;
        if (bo->count > 0 && bc->seq >= (uint64_t)bo->count) {
            bc->done = true;
            bump(&w->pubs_done, 1);
            return;
        }
        if (b->run_end_ns > 0 && now >= b->run_end_ns) {
            return; /* --duration is over; main moves on to the drain */
        }
        if (bc->inflight >= (uint64_t)bo->window || !e2e_room(bc, now / 1000000)) {
            bc->blocked = true;
            return;
        }
        if (period > 0 && now < bc->next_due) {
            if (*wake_ns < 0 || bc->next_due < *wake_ns) {
                *wake_ns = bc->next_due;
            }
            return;
        }
        put_u32(w->payload, b->run_id);
        put_u32(w->payload + 4, bc->index);
        put_u64(w->payload + 8, bc->seq);
        put_u64(w->payload + 16, (uint64_t)now_ns());
        rc = mqttc_client_publish(bc->c, bc->topic, w->payload, (size_t)bo->size, b->o->qos,
                                  false);
        if (rc < 0) {
            return; /* queue full or offline: try again next turn */
        }
        bc->seq++;
        bc->last_progress = now / 1000000;
        bc->inflight++;
        bump(&w->inflight, 1);
        bump(&w->sent, 1);
        if (period > 0) {
            bc->next_due += period;
        }
        now = now_ns();
        atomic_store_explicit(&w->last_pub_ns, (uint64_t)now, memory_order_relaxed);
    }
    if (*wake_ns < 0 || now < *wake_ns) {
        *wake_ns = now; /* more to do at once */
    }
}

/* The storm: start the connections whose time has come. */
static void storm_start(bclient *bc, int64_t now, int64_t *wake_ns)
{
    bench *b = bc->w->b;
    int64_t due;
    if (bc->connect_start != 0) {
        return;
    }
    due = b->run_start_ns + (int64_t)bc->index * 1000000000 / b->bo->connect_rate;
    if (now >= due) {
        bc->connect_start = now_ns();
        if (mqttc_client_connect(bc->c) < 0) {
            bc->failed = true;
            bump(&bc->w->failed, 1);
        }
        bc->deadline = 0;
    } else if (*wake_ns < 0 || due < *wake_ns) {
        *wake_ns = due;
    }
}

/* One poll over all clients of the worker, then their I/O and timers. */
static void worker_turn(worker *w, int64_t wake_ns, int cap_ms)
{
    size_t i, np = 0;
    int64_t now_n = now_ns(), now = now_n / 1000000;
    int64_t wake = now_n + (int64_t)cap_ms * 1000000; /* ns */
    int t;

    if (wake_ns >= 0 && wake_ns < wake) {
        wake = wake_ns;
    }
    for (i = 0; i < w->n; i++) {
        bclient *bc = w->clients[i];
        int fd, want, to;
        if (bc->connect_start == 0) {
            bc->deadline = -1; /* storm: not started yet */
            continue;
        }
        fd = mqttc_client_fd(bc->c);
        want = mqttc_client_want(bc->c);
        to = mqttc_client_next_timeout(bc->c);
        bc->deadline = to >= 0 ? now + to : -1;
        if (to >= 0 && now_n + (int64_t)to * 1000000 < wake) {
            wake = now_n + (int64_t)to * 1000000;
        }
        if (fd >= 0 && want != 0) {
            w->pfds[np].fd = fd;
            w->pfds[np].events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                                         ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
            w->pfds[np].revents = 0;
            w->pidx[np++] = i;
        }
    }
    /* round up: waking early would spin until the millisecond turns */
    t = wake <= now_n ? 0 : (int)((wake - now_n + 999999) / 1000000);
    if (poll(w->pfds, (nfds_t)np, t) < 0) {
        for (i = 0; i < np; i++) {
            w->pfds[i].revents = 0;
        }
    }
    now = cli_now_ms();
    {
        size_t k = 0;
        for (i = 0; i < w->n; i++) {
            bclient *bc = w->clients[i];
            int ready = 0;
            if (k < np && w->pidx[k] == i) {
                short r = w->pfds[k++].revents;
                ready |= (r & (POLLIN | POLLHUP | POLLERR)) ? MQTTC_WANT_READ : 0;
                ready |= (r & (POLLOUT | POLLHUP | POLLERR)) ? MQTTC_WANT_WRITE : 0;
            }
            if (ready != 0 || (bc->deadline >= 0 && now >= bc->deadline)) {
                mqttc_client_process(bc->c, ready);
            }
        }
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    bench *b = w->b;
    size_t i;
    int64_t stop_deadline;
    phase ph;

    if (!b->storm) {
        for (i = 0; i < w->n; i++) {
            w->clients[i]->connect_start = now_ns();
            if (mqttc_client_connect(w->clients[i]->c) < 0) {
                w->clients[i]->failed = true;
                bump(&w->failed, 1);
            }
        }
    }
    while ((ph = get_phase(b)) != PH_STOP) {
        int64_t wake_ns = -1, now = now_ns();
        int64_t now_ms = now / 1000000;
        for (i = 0; i < w->n; i++) {
            bclient *bc = w->clients[i];
            if (b->storm && ph == PH_RUN) {
                storm_start(bc, now, &wake_ns);
            } else if (bc->role == ROLE_PUB && ph == PH_RUN) {
                if (bc->next_due == 0) {
                    bc->next_due = b->run_start_ns;
                    if (b->bo->rate > 0) { /* spread the publishers over one period */
                        bc->next_due += (int64_t)bc->index * (1000000000 / b->bo->rate) /
                                        b->bo->pubs;
                    }
                    bc->last_progress = now_ms;
                    bc->last_delivered_ms = now_ms;
                }
                publish_some(bc, now, &wake_ns);
                if (!bc->done && bc->blocked && bc->last_progress >= 0 &&
                    now_ms - bc->last_progress > b->stall_ms) {
                    bc->last_progress = -1; /* report once */
                    bump(&w->stalled, 1);
                }
            }
        }
        worker_turn(w, wake_ns, BENCH_TICK_MS);
    }
    /* Close everything cleanly, bounded in time. */
    for (i = 0; i < w->n; i++) {
        if (w->clients[i]->connect_start != 0) {
            mqttc_client_disconnect(w->clients[i]->c);
        }
    }
    stop_deadline = cli_now_ms() + BENCH_DISCONNECT_MS;
    while (cli_now_ms() < stop_deadline) {
        bool busy = false;
        for (i = 0; i < w->n; i++) {
            if (mqttc_client_state_get(w->clients[i]->c) != MQTTC_CLIENT_IDLE) {
                busy = true;
                break;
            }
        }
        if (!busy) {
            break;
        }
        worker_turn(w, -1, BENCH_TICK_MS);
    }
    return NULL;
}

/* ---- totals, memory, CPU ------------------------------------------------- */

typedef struct totals {
    uint64_t sent, completed, received, reconnects, connected, subscribed, failed,
        dropped_conns, inflight, pubs_done, stalled, dropped_msgs;
} totals;

static totals sum(bench *b)
{
    totals t;
    size_t i;
    memset(&t, 0, sizeof t);
    for (i = 0; i < b->nworkers; i++) {
        worker *w = &b->workers[i];
        t.sent += ld(&w->sent);
        t.completed += ld(&w->completed);
        t.received += ld(&w->received);
        t.reconnects += ld(&w->reconnects);
        t.connected += ld(&w->connected);
        t.subscribed += ld(&w->subscribed);
        t.failed += ld(&w->failed);
        t.dropped_conns += ld(&w->dropped_conns);
        t.inflight += ld(&w->inflight);
        t.pubs_done += ld(&w->pubs_done);
        t.stalled += ld(&w->stalled);
        t.dropped_msgs += ld(&w->dropped_msgs);
    }
    return t;
}

static int64_t cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        return 0;
    }
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* Resident bytes (/proc/self/statm), -1 when unknown. */
static int64_t rss_bytes(void)
{
    long pages = -1, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) {
        return -1;
    }
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = -1;
    }
    fclose(f);
    return resident < 0 ? -1 : (int64_t)resident * sysconf(_SC_PAGESIZE);
}

static int64_t heap_bytes(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)mi.uordblks + (int64_t)mi.hblkhd;
#else
    return -1;
#endif
}

/* Raise RLIMIT_NOFILE towards `need`; returns how many descriptors we may use. */
static long raise_nofile(long need, bool *raised, long *hard)
{
    struct rlimit rl;
    *raised = false;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        *hard = -1;
        return need;
    }
    *hard = rl.rlim_max == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
        rlim_t want = (rlim_t)need;
        if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
            want = rl.rlim_max;
        }
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            *raised = true;
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

/* ---- set up -------------------------------------------------------------- */

static uint32_t random_u32(void)
{
    uint64_t x = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

static int bench_setup(bench *b, const char *id_prefix, const char *base)
{
    const bench_opts *bo = b->bo;
    size_t i, nw;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    char *uri;

    b->nclients = b->storm ? (size_t)bo->connections : (size_t)(bo->pubs + bo->subs);
    nw = cores > 0 ? (size_t)cores : 1;
    if (bo->threads > 0 && (size_t)bo->threads < nw) {
        nw = (size_t)bo->threads;
    }
    if (nw > b->nclients) {
        nw = b->nclients;
    }
    b->nworkers = nw;
    /* over-aligned (the `delivered` cache line): calloc does not promise 64 */
    b->clients = aligned_alloc(_Alignof(bclient), b->nclients * sizeof *b->clients);
    if (b->clients != NULL) {
        memset(b->clients, 0, b->nclients * sizeof *b->clients);
    }
    b->workers = calloc(nw, sizeof *b->workers);
    if (b->clients == NULL || b->workers == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    for (i = 0; i < nw; i++) {
        worker *w = &b->workers[i];
        size_t cap = b->nclients / nw + 1;
        w->b = b;
        w->clients = calloc(cap, sizeof *w->clients);
        w->pfds = calloc(cap, sizeof *w->pfds);
        w->pidx = calloc(cap, sizeof *w->pidx);
        w->payload = calloc(1, b->storm ? 1 : (size_t)bo->size);
        if (!w->clients || !w->pfds || !w->pidx || !w->payload) {
            return MQTTC_ERR_NO_MEMORY;
        }
    }
    uri = strdup(cli_server(b->o));
    if (uri == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    for (i = 0; i < b->nclients; i++) {
        bclient *bc = &b->clients[i];
        worker *w = &b->workers[i % nw];
        mqttc_client_config cfg;
        char id[256];
        size_t tl = strlen(base) + 16;
        int rc;

        bc->w = w;
        bc->deadline = -1;
        w->clients[w->n++] = bc;
        if (b->storm) {
            bc->role = ROLE_CONN;
            bc->index = (uint32_t)i;
            snprintf(id, sizeof id, "%sc%zu", id_prefix, i);
        } else if (i < (size_t)bo->pubs) {
            bc->role = ROLE_PUB;
            bc->index = (uint32_t)i;
            snprintf(id, sizeof id, "%sp%zu", id_prefix, i);
        } else {
            bc->role = ROLE_SUB;
            bc->index = (uint32_t)(i - (size_t)bo->pubs);
            snprintf(id, sizeof id, "%ss%u", id_prefix, bc->index);
            bc->maps = calloc((size_t)bo->pubs, sizeof *bc->maps);
            if (bc->maps == NULL) {
                free(uri);
                return MQTTC_ERR_NO_MEMORY;
            }
        }
        if (bc->role != ROLE_CONN) {
            bc->topic = malloc(tl);
            if (bc->topic == NULL) {
                free(uri);
                return MQTTC_ERR_NO_MEMORY;
            }
            if (bo->shared_topic) {
                snprintf(bc->topic, tl, "%s", base);
            } else if (bc->role == ROLE_PUB) {
                snprintf(bc->topic, tl, "%s/%u", base, bc->index);
            } else {
                snprintf(bc->topic, tl, "%s/+", base);
            }
        }
        cli_client_config(b->o, &cfg);
        cfg.uri = uri;
        cfg.client_id = id;
        cfg.on_event = on_event;
        cfg.user = bc;
        cfg.connect_timeout_ms = (uint32_t)bo->timeout * 1000u;
        if (b->storm) {
            cfg.auto_reconnect = false; /* a failure is a failure */
        } else {
            size_t buf = (size_t)bo->size + strlen(base) + 64;
            cfg.auto_reconnect = true;
            cfg.reconnect_ms = 250;
            cfg.inflight_max = (uint16_t)bo->window;
            cfg.queue_max_msgs = (uint32_t)bo->window * 2u + 16u;
            cfg.queue_max_bytes = ((size_t)bo->window * 2u + 16u) * buf;
            if (buf < 4096) {
                buf = 4096;
            } else if (buf > 256u * 1024u) {
                buf = 256u * 1024u; /* larger ones are joined on the heap */
            }
            cfg.rx_buffer_size = buf;
            cfg.tx_buffer_size = buf;
            /* a subscriber's inbound QoS 2 window: the table, then the bitmap */
            cfg.inbound_max = 64;
        }
        rc = mqttc_client_create(&cfg, &bc->c);
        if (rc < 0) {
            cli_usage_error(b->o, "cannot use %s: %s", uri, mqttc_strerror(rc));
            free(uri);
            return rc;
        }
    }
    free(uri);
    if (!b->storm) {
        size_t j;
        for (i = 0; i < (size_t)bo->pubs; i++) {
            bclient *pub = &b->clients[i];
            for (j = (size_t)bo->pubs; j < b->nclients; j++) {
                const char *f = b->clients[j].topic;
                pub->matching += mqttc_topic_matches(f, strlen(f), pub->topic, strlen(pub->topic));
            }
        }
    }
    return 0;
}

static void bench_free(bench *b)
{
    size_t i, j;
    for (i = 0; i < b->nclients; i++) {
        bclient *bc = &b->clients[i];
        if (bc->c != NULL) {
            mqttc_client_destroy(bc->c);
        }
        if (bc->maps != NULL) {
            for (j = 0; j < (size_t)b->bo->pubs; j++) {
                free(bc->maps[j].bits);
            }
            free(bc->maps);
        }
        free(bc->topic);
    }
    for (i = 0; b->workers != NULL && i < b->nworkers; i++) {
        free(b->workers[i].clients);
        free(b->workers[i].pfds);
        free(b->workers[i].pidx);
        free(b->workers[i].payload);
    }
    free(b->clients);
    free(b->workers);
}

/* ---- progress and waiting ------------------------------------------------ */

typedef struct progress {
    bool on;
    bool shown;
    int64_t last_ms;
    uint64_t last_sent, last_received, last_connected;
} progress;

static void progress_line(bench *b, progress *p, const char *what, bool force)
{
    int64_t now = cli_now_ms();
    totals t;
    double secs;
    if (!p->on || (!force && now - p->last_ms < 1000)) {
        return;
    }
    t = sum(b);
    secs = (double)(now - p->last_ms) / 1000.0;
    if (secs <= 0) {
        secs = 1;
    }
    if (b->storm) {
        fprintf(stderr, "\r\033[K%s: %" PRIu64 "/%zu connected (%.0f/s), %" PRIu64
                " failed, %" PRIu64 " dropped",
                what, t.connected, b->nclients, (double)(t.connected - p->last_connected) / secs,
                t.failed, t.dropped_conns);
    } else {
        fprintf(stderr, "\r\033[K%s: sent %" PRIu64 " (%.0f/s), received %" PRIu64
                " (%.0f/s), in flight %" PRIu64 ", reconnects %" PRIu64,
                what, t.sent, (double)(t.sent - p->last_sent) / secs, t.received,
                (double)(t.received - p->last_received) / secs, t.inflight, t.reconnects);
    }
    fflush(stderr);
    p->shown = true;
    p->last_ms = now;
    p->last_sent = t.sent;
    p->last_received = t.received;
    p->last_connected = t.connected;
}

static void progress_end(progress *p)
{
    if (p->shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        p->shown = false;
    }
}

/* Sleep a tick (at most until `deadline_ms`), showing progress. */
static void tick(bench *b, progress *p, const char *what, int64_t deadline_ms)
{
    int t = 100;
    int left = cli_until(deadline_ms);
    struct timespec ts;
    if (deadline_ms >= 0 && left < t) {
        t = left;
    }
    ts.tv_sec = 0;
    ts.tv_nsec = (long)t * 1000000L;
    nanosleep(&ts, NULL);
    progress_line(b, p, what, false);
}

/* ---- the two modes -------------------------------------------------------- */

typedef struct result {
    bool ok_setup;
    int64_t run_ms, pub_ns, recv_ns, cpu; /* pub_ns, recv_ns: from the start to the last */
    uint64_t expected, unique, dups, lost, foreign, untracked;
    totals t;
    hist lat, conn_lat;
    int64_t rss0, rss1, heap0, heap1;
    long nofile, nofile_hard;
    bool nofile_raised, nofile_short;
    size_t requested;
    bool interrupted, stalled, drained;
} result;

static void start_workers(bench *b, size_t *started)
{
    size_t i;
    *started = 0;
    for (i = 0; i < b->nworkers; i++) {
        if (pthread_create(&b->workers[i].thread, NULL, worker_main, &b->workers[i]) != 0) {
            break;
        }
        (*started)++;
    }
}

static void stop_workers(bench *b, size_t started)
{
    size_t i;
    atomic_store_explicit(&b->phase, PH_STOP, memory_order_release);
    for (i = 0; i < started; i++) {
        pthread_join(b->workers[i].thread, NULL);
    }
}

static void set_phase(bench *b, phase p)
{
    atomic_store_explicit(&b->phase, p, memory_order_release);
}

/* Messages: connect, subscribe, publish, drain. */
static void run_messages(bench *b, progress *p, result *r, size_t started)
{
    const bench_opts *bo = b->bo;
    int64_t deadline = cli_now_ms() + bo->timeout * 1000, cpu0, t0, end_at = -1;
    uint64_t last_received = 0;
    int64_t last_change = -1;
    totals t;

    /* 1. every client connected, every subscriber subscribed */
    for (;;) {
        t = sum(b);
        if (t.connected == b->nclients && t.subscribed == (uint64_t)bo->subs) {
            break;
        }
        if (t.failed > 0 || cli_until(deadline) == 0 || cli_signalled() ||
            started < b->nworkers) {
            progress_end(p);
            if (cli_signalled()) {
                r->interrupted = true;
            } else {
                cli_error(b->o, "Error: %s: %" PRIu64 " of %zu clients connected and %" PRIu64
                          " of %ld subscribed%s", cli_server(b->o), t.connected, b->nclients,
                          t.subscribed, bo->subs,
                          t.failed > 0 ? "; some failed" : " within the timeout (-W)");
            }
            return;
        }
        tick(b, p, "connecting", deadline);
    }
    r->ok_setup = true;
    /* 2. publish */
    cpu0 = cpu_us();
    t0 = cli_now_ms();
    b->run_start_ns = now_ns();
    if (bo->duration > 0) {
        end_at = t0 + bo->duration * 1000;
        b->run_end_ns = b->run_start_ns + (int64_t)bo->duration * 1000000000;
    }
    set_phase(b, PH_RUN);
    for (;;) {
        t = sum(b);
        if (t.received != last_received) {
            last_received = t.received;
            last_change = cli_now_ms();
        }
        if (cli_signalled()) {
            r->interrupted = true;
            break;
        }
        if (end_at >= 0 && cli_now_ms() >= end_at) {
            break;
        }
        if (bo->count > 0 && t.pubs_done == (uint64_t)bo->pubs) {
            break;
        }
        if (t.stalled > 0) {
            r->stalled = true;
            break;
        }
        tick(b, p, "running", end_at);
    }
    set_phase(b, PH_DRAIN);

    /* 3. drain: until every publish completed and every subscriber has all it
     *    should (each subscriber's filter matches every publisher's topic:
     *    sent x subscribers); at QoS 0, until nothing new came for a while */
    deadline = cli_now_ms() + bo->timeout * 1000;
    if (last_change < 0) {
        last_change = cli_now_ms();
    }
    for (;;) {
        t = sum(b);
        if (t.received != last_received) {
            last_received = t.received;
            last_change = cli_now_ms();
        }
        if (t.inflight == 0 && t.received >= t.sent * (uint64_t)bo->subs) {
            r->drained = true;
            break;
        }
        if (b->o->qos == 0 && t.inflight == 0 && cli_now_ms() - last_change >= BENCH_QUIET_MS) {
            r->drained = true;
            break;
        }
        if (cli_until(deadline) == 0) { /* a signal ended publishing, not this */
            break;
        }
        tick(b, p, "draining", deadline);
    }
    r->run_ms = cli_now_ms() - t0;
    r->cpu = cpu_us() - cpu0;
}

/* Storm: open K connections at R/s, hold them, close them. */
static void run_storm(bench *b, progress *p, result *r)
{
    const bench_opts *bo = b->bo;
    int64_t spread_ms = (int64_t)(b->nclients > 0 ? b->nclients - 1 : 0) * 1000 / bo->connect_rate;
    int64_t deadline, cpu0 = cpu_us(), t0 = cli_now_ms();
    totals t;

    r->ok_setup = true;
    b->run_start_ns = now_ns();
    set_phase(b, PH_RUN);
    deadline = cli_now_ms() + spread_ms + bo->timeout * 1000;
    for (;;) {
        t = sum(b);
        if (t.connected + t.failed >= b->nclients || cli_until(deadline) == 0) {
            break;
        }
        if (cli_signalled()) {
            r->interrupted = true;
            break;
        }
        tick(b, p, "connecting", deadline);
    }
    deadline = cli_now_ms() + bo->hold * 1000;
    while (!r->interrupted && cli_until(deadline) > 0) {
        if (cli_signalled()) {
            r->interrupted = true;
            break;
        }
        tick(b, p, "holding", deadline);
    }
    /* Memory of the connections as they are held (idle), not as they open:
     * an idle mqttc client gives its buffers back after 2 s. */
    r->rss1 = rss_bytes();
    r->heap1 = heap_bytes();
    r->run_ms = cli_now_ms() - t0;
    r->cpu = cpu_us() - cpu0;
}

/* After the workers stopped: merge histograms and sequence maps. */
static void collect(bench *b, result *r)
{
    size_t i, j, k;
    r->t = sum(b);
    for (i = 0; i < b->nworkers; i++) {
        hist_merge(&r->lat, &b->workers[i].lat);
        hist_merge(&r->conn_lat, &b->workers[i].conn_lat);
        r->foreign += b->workers[i].foreign;
        r->untracked += b->workers[i].nomem;
    }
    if (b->storm) {
        return;
    }
    for (i = 0; i < b->nworkers; i++) { /* the last publish and delivery */
        int64_t lp = (int64_t)ld(&b->workers[i].last_pub_ns) - b->run_start_ns;
        int64_t lr = (int64_t)ld(&b->workers[i].last_rx_ns) - b->run_start_ns;
        if (lp > r->pub_ns) {
            r->pub_ns = lp;
        }
        if (lr > r->recv_ns) {
            r->recv_ns = lr;
        }
    }
    for (i = 0; i < b->nclients; i++) { /* publishers */
        bclient *pub = &b->clients[i];
        if (pub->role != ROLE_PUB) {
            continue;
        }
        for (j = 0; j < b->nclients; j++) { /* subscribers */
            bclient *sub = &b->clients[j];
            seqmap *m;
            uint64_t seen;
            if (sub->role != ROLE_SUB ||
                !mqttc_topic_matches(sub->topic, strlen(sub->topic), pub->topic,
                                     strlen(pub->topic))) {
                continue;
            }
            m = &sub->maps[pub->index];
            /* what the publisher handed over, in sequence 0..seq-1 */
            seen = 0;
            for (k = 0; k < pub->seq && k < m->cap; k += 8) {
                unsigned byte = m->bits[k / 8];
                if (pub->seq - k < 8) {
                    byte &= (1u << (pub->seq - k)) - 1u;
                }
                seen += (uint64_t)__builtin_popcount(byte);
            }
            r->expected += pub->seq;
            r->unique += seen;
            r->lost += pub->seq - seen;
            r->dups += m->dups;
        }
    }
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void print_text(bench *b, const result *r)
{
    const bench_opts *bo = b->bo;
    double ps = r->pub_ns > 0 ? (double)r->pub_ns / 1e9 : 1e-9;
    double rs = r->recv_ns > 0 ? (double)r->recv_ns / 1e9 : 1e-9;
    uint64_t msgs = r->t.sent + r->t.received;
    if (b->storm) {
        size_t open = (size_t)(r->t.connected - r->t.dropped_conns);
        printf("mqttc bench: %zu connections to %s at %ld/s, held %ld s, %zu threads\n",
               b->nclients, cli_server(b->o), bo->connect_rate, bo->hold, b->nworkers);
        if (r->nofile_short) {
            printf("  requested      %zu, but RLIMIT_NOFILE allows only %ld descriptors (hard "
                   "limit %ld)\n", r->requested, r->nofile, r->nofile_hard);
        }
        printf("  connected      %" PRIu64 ", failed %" PRIu64 ", dropped while held %" PRIu64
               "\n", r->t.connected, r->t.failed, r->t.dropped_conns);
        printf("  connect (ms)   p50 %.2f  p99 %.2f  max %.2f\n",
               us(hist_quantile(&r->conn_lat, 0.50)) / 1000.0,
               us(hist_quantile(&r->conn_lat, 0.99)) / 1000.0, us(r->conn_lat.max) / 1000.0);
        if (open > 0 && r->rss0 >= 0 && r->rss1 >= 0) {
            printf("  memory         %.1f KiB resident and %.1f KiB heap per connection\n",
                   (double)(r->rss1 - r->rss0) / 1024.0 / (double)open,
                   (double)(r->heap1 - r->heap0) / 1024.0 / (double)open);
        }
        printf("  cpu            %.3f s\n", (double)r->cpu / 1e6);
        return;
    }
    printf("mqttc bench: %ld publisher%s -> %ld subscriber%s on %s, QoS %d, %ld bytes, "
           "topics %s, %zu thread%s\n",
           bo->pubs, bo->pubs == 1 ? "" : "s", bo->subs, bo->subs == 1 ? "" : "s",
           cli_server(b->o), b->o->qos, bo->size, bo->shared_topic ? "shared" : "each",
           b->nworkers, b->nworkers == 1 ? "" : "s");
    printf("  sent           %" PRIu64 " in %.3f s (%.0f msg/s), %" PRIu64 " completed\n",
           r->t.sent, ps, (double)r->t.sent / ps, r->t.completed);
    printf("  received       %" PRIu64 " of %" PRIu64 " expected in %.3f s (%.0f msg/s)\n",
           r->t.received, r->expected, rs, r->t.received ? (double)r->t.received / rs : 0.0);
    printf("  lost           %" PRIu64 ", duplicated %" PRIu64 "\n", r->lost, r->dups);
    printf("  latency (us)   p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
           us(hist_quantile(&r->lat, 0.50)), us(hist_quantile(&r->lat, 0.90)),
           us(hist_quantile(&r->lat, 0.99)), us(r->lat.max));
    printf("  cpu            %.2f us per message sent or received (%.3f s)\n",
           msgs ? (double)r->cpu / (double)msgs : 0.0, (double)r->cpu / 1e6);
    printf("  reconnects     %" PRIu64 "\n", r->t.reconnects);
    if (r->foreign > 0) {
        printf("  ignored        %" PRIu64 " messages not from this run\n", r->foreign);
    }
    if (r->untracked > 0) {
        printf("  untracked      %" PRIu64 " messages (no memory for the sequence maps)\n",
               r->untracked);
    }
    if (r->stalled) {
        printf("  stalled        a publisher made no progress for %ld s (-W)\n", bo->timeout);
    }
    if (!r->drained) {
        printf("  incomplete     the drain did not finish within %ld s (-W)\n", bo->timeout);
    }
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            printf("\\%c", ch);
        } else if (ch < 0x20) {
            printf("\\u%04x", ch);
        } else {
            putchar(ch);
        }
    }
    putchar('"');
}

static void print_json(bench *b, const result *r)
{
    const bench_opts *bo = b->bo;
    double ps = r->pub_ns > 0 ? (double)r->pub_ns / 1e9 : 1e-9;
    double rs = r->recv_ns > 0 ? (double)r->recv_ns / 1e9 : 1e-9;
    uint64_t msgs = r->t.sent + r->t.received;
    printf("{\"mode\":\"%s\",\"server\":", b->storm ? "storm" : "messages");
    json_str(cli_server(b->o));
    printf(",\"threads\":%zu,", b->nworkers);
    if (b->storm) {
        size_t open = (size_t)(r->t.connected - r->t.dropped_conns);
        bool mem = open > 0 && r->rss0 >= 0 && r->rss1 >= 0;
        printf("\"connections\":%zu,\"requested\":%zu,\"connect_rate\":%ld,\"hold_s\":%ld,"
               "\"connected\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"dropped\":%" PRIu64 ","
               "\"connect_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},",
               b->nclients, r->requested, bo->connect_rate, bo->hold, r->t.connected, r->t.failed,
               r->t.dropped_conns, us(hist_quantile(&r->conn_lat, 0.50)) / 1000.0,
               us(hist_quantile(&r->conn_lat, 0.99)) / 1000.0, us(r->conn_lat.max) / 1000.0);
        if (mem) {
            printf("\"rss_per_conn_bytes\":%.0f,\"heap_per_conn_bytes\":%.0f,",
                   (double)(r->rss1 - r->rss0) / (double)open,
                   (double)(r->heap1 - r->heap0) / (double)open);
        } else {
            printf("\"rss_per_conn_bytes\":null,\"heap_per_conn_bytes\":null,");
        }
        printf("\"nofile_limit\":%ld,\"nofile_raised\":%s,\"cpu_s\":%.3f",
               r->nofile, r->nofile_raised ? "true" : "false", (double)r->cpu / 1e6);
    } else {
        printf("\"publishers\":%ld,\"subscribers\":%ld,\"qos\":%d,\"size\":%ld,\"topics\":\"%s\","
               "\"rate\":%ld,\"window\":%ld,\"publish_s\":%.6f,\"receive_s\":%.6f,"
               "\"sent\":%" PRIu64 ",\"completed\":%" PRIu64 ",\"received\":%" PRIu64 ","
               "\"expected\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"duplicated\":%" PRIu64 ","
               "\"sent_per_s\":%.1f,\"received_per_s\":%.1f,"
               "\"latency_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
               "\"cpu_us_per_msg\":%.3f,\"cpu_s\":%.3f,\"reconnects\":%" PRIu64 ","
               "\"ignored\":%" PRIu64 ",\"untracked\":%" PRIu64 ",\"stalled\":%s,\"drained\":%s",
               bo->pubs, bo->subs, b->o->qos, bo->size, bo->shared_topic ? "shared" : "each",
               bo->rate, bo->window, ps, rs, r->t.sent, r->t.completed, r->t.received,
               r->expected, r->lost, r->dups, (double)r->t.sent / ps,
               r->t.received ? (double)r->t.received / rs : 0.0,
               us(hist_quantile(&r->lat, 0.50)), us(hist_quantile(&r->lat, 0.90)),
               us(hist_quantile(&r->lat, 0.99)), us(r->lat.max),
               msgs ? (double)r->cpu / (double)msgs : 0.0, (double)r->cpu / 1e6,
               r->t.reconnects, r->foreign, r->untracked, r->stalled ? "true" : "false",
               r->drained ? "true" : "false");
    }
    printf(",\"interrupted\":%s}\n", r->interrupted ? "true" : "false");
}

/* The exit status and, unless --quiet, why it is not 0. */
static int verdict(bench *b, const result *r)
{
    int qos = b->o->qos;
    if (b->storm) {
        if (r->t.failed > 0 || r->t.dropped_conns > 0 || r->t.connected < r->requested) {
            cli_error(b->o, "mqttc bench: %" PRIu64 " of %zu connections opened, %" PRIu64
                      " failed, %" PRIu64 " dropped", r->t.connected, r->requested, r->t.failed,
                      r->t.dropped_conns);
            return BENCH_EXIT_FAILED;
        }
        return CLI_EXIT_OK;
    }
    if (!r->ok_setup) {
        return CLI_EXIT_ERROR;
    }
    if (qos >= 1 && r->lost > 0) {
        cli_error(b->o, "mqttc bench: %" PRIu64 " messages lost at QoS %d", r->lost, qos);
        return BENCH_EXIT_FAILED;
    }
    if (qos == 2 && r->dups > 0) {
        cli_error(b->o, "mqttc bench: %" PRIu64 " messages duplicated at QoS 2", r->dups);
        return BENCH_EXIT_FAILED;
    }
    if (r->untracked > 0) {
        cli_error(b->o, "mqttc bench: %" PRIu64 " messages could not be tracked (out of memory)",
                  r->untracked);
        return BENCH_EXIT_FAILED;
    }
    if (r->stalled || (qos >= 1 && !r->drained)) {
        cli_error(b->o, "mqttc bench: the run did not complete within the timeout (-W %ld)",
                  b->bo->timeout);
        return BENCH_EXIT_FAILED;
    }
    return CLI_EXIT_OK;
}

int cli_bench_main(int argc, char **argv)
{
    cli_opts o;
    bench_opts bo;
    bench b;
    result r;
    progress p;
    bool help;
    char prefix[64];
    const char *base;
    size_t started = 0;
    long need, hard;
    int rc, code;

    memset(&bo, 0, sizeof bo);
    bo.pubs = 1;
    bo.subs = 1;
    bo.size = 64;
    bo.window = 16;
    bo.timeout = 10;
    bo.connect_rate = 100;
    bo.hold = 5;
    rc = cli_parse_ex(CLI_BENCH, argc, argv, &o, &help, bench_flags,
                      sizeof bench_flags / sizeof bench_flags[0], bench_apply, &bo);
    if (rc != 0) {
        if (help) {
            bench_usage();
        }
        cli_opts_free(&o);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    }
    if (bo.storm_given && bo.connections == 0) {
        cli_usage_error(&o, "--connect-rate and --hold need --connections");
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    if (bo.connections > 0 && (bo.msg_given || bo.count_given || bo.duration_given)) {
        cli_usage_error(&o, "--connections (the connection storm) takes none of --pub, --sub, "
                        "--size, --rate, --count, --duration, --window, --topics");
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    if (!bo.count_given && !bo.duration_given) {
        bo.count = 1000;
    }
    base = o.topic_count > 0 ? o.topics[o.topic_count - 1] : BENCH_MAGIC_TOPIC;
    if (bo.connections == 0 && !bo.shared_topic && strlen(base) > 60000) {
        cli_usage_error(&o, "topic base too long");
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    if (o.id_prefix != NULL && strlen(o.id_prefix) > 100) {
        cli_usage_error(&o, "client id prefix too long for -I (at most 100 characters)");
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    snprintf(prefix, sizeof prefix, "mqttc-bench-%ld-", (long)getpid());

    memset(&b, 0, sizeof b);
    memset(&r, 0, sizeof r);
    memset(&p, 0, sizeof p);
    b.o = &o;
    b.bo = &bo;
    b.storm = bo.connections > 0;
    b.run_id = random_u32();
    b.stall_ms = bo.timeout * 1000;
    atomic_init(&b.phase, PH_CONNECT);
    p.on = isatty(STDERR_FILENO) && !o.quiet;
    p.last_ms = cli_now_ms();
    cli_signals_install();

    r.requested = b.storm ? (size_t)bo.connections : (size_t)(bo.pubs + bo.subs);
    need = (long)r.requested + BENCH_FD_SPARE;
    r.nofile = raise_nofile(need, &r.nofile_raised, &hard);
    r.nofile_hard = hard;
    if (r.nofile < need) {
        long can = r.nofile - BENCH_FD_SPARE;
        r.nofile_short = true;
        if (!b.storm || can < 1) {
            cli_error(&o, "Error: %zu clients need %ld file descriptors; RLIMIT_NOFILE allows "
                      "%ld (hard limit %ld)", r.requested, need, r.nofile, hard);
            cli_opts_free(&o);
            return CLI_EXIT_ERROR;
        }
        cli_error(&o, "Warning: RLIMIT_NOFILE allows %ld descriptors (hard limit %ld): opening "
                  "%ld of the %zu connections", r.nofile, hard, can, r.requested);
        bo.connections = can;
    }

    r.rss0 = rss_bytes();
    r.heap0 = heap_bytes();
    rc = bench_setup(&b, o.id_prefix ? o.id_prefix : prefix, base);
    if (rc < 0) {
        if (rc == MQTTC_ERR_NO_MEMORY) {
            cli_error(&o, "Error: %s", mqttc_strerror(rc));
        }
        bench_free(&b);
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    start_workers(&b, &started);
    if (started < b.nworkers) {
        cli_error(&o, "Error: cannot start worker threads");
    } else if (b.storm) {
        run_storm(&b, &p, &r);
    } else {
        run_messages(&b, &p, &r, started);
    }
    progress_end(&p);
    stop_workers(&b, started);
    collect(&b, &r);
    if (!b.storm) {
        r.drained = r.drained && r.t.inflight == 0;
    }
    code = verdict(&b, &r);
    if (r.ok_setup && started == b.nworkers) {
        if (bo.json) {
            print_json(&b, &r);
        } else {
            print_text(&b, &r);
        }
    }
    fflush(stdout);
    bench_free(&b);
    cli_opts_free(&o);
    return started < b.nworkers ? CLI_EXIT_ERROR : code;
}
