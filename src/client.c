/* The client: drives one engine over a transport, in a background thread or
 * in the caller's loop (client.h). docs/ARCHITECTURE.md has the picture.
 *
 * Locking: one mutex per client guards everything below. Only the loop (the
 * client's thread, or the caller inside mqttc_client_loop/process) does I/O
 * and calls the engine's I/O functions. The loop releases the mutex around
 * every user callback; while it is released, other threads may call exactly
 * the engine functions the engine allows from inside its callback (publish,
 * request, disconnect), so interleaving them is safe. Events raised inside
 * other threads' calls (a message dropped to make room) and message
 * completions are queued and delivered by the loop, so callbacks only ever
 * run on the loop. */
#include "mqttc/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mqttc/uri.h"
#include "transport.h"

#define DEFAULT_BUFFER 4096u
#define READS_PER_TURN 16
#define LINGER_MS 1000u /* wait for the broker to close after DISCONNECT */
#define WRITES_PER_TURN 16

/* A published message and its copies of topic and payload, one allocation. */
typedef struct client_msg {
    mqttc_message m;
    struct client_msg *next_done; /* completion queue, or the pool */
    int status;
    uint32_t cap; /* bytes after the struct */
    /* topic (NUL-terminated) then payload follow */
} client_msg;

/* Nodes of small messages are kept for reuse while messages flow: malloc and
 * free cost about as much as the rest of a QoS 0 publish. The pool, like the
 * large buffers, is freed once the loop sees no activity for IDLE_MS. */
#define POOL_SLOT 256u
#define POOL_MAX 32u
#define IDLE_MS 2000u

/* A SUBSCRIBE/UNSUBSCRIBE and its copies, one allocation. */
typedef struct client_req {
    mqttc_request r;
    bool internal; /* a restore after reconnect: no event for the user */
} client_req;

typedef struct subscription {
    char *filter;
    uint8_t qos;
} subscription;

struct mqttc_client {
    mqttc_client_config cfg; /* strings point into `strings` */
    char *strings;
    char **alpn; /* NULL-terminated, pointing into `strings` */
    /* The servers' URIs (into `strings`), parsed again at each attempt: a
     * parsed mqttc_uri is 1.3 KB, too much to keep per server and client.
     * servers[0] is NULL when the configuration gives host and port. */
    const char **servers;
    size_t uri_count, uri_index, tries_in_cycle;
    mqttc_connect conn;

    pthread_mutex_t lock;
    mqttc_engine eng;
    /* The engine works on rx/tx (rx_size/tx_size bytes, on the heap) while
     * there is traffic, and on the small arrays below once the connection
     * has been idle for IDLE_MS: an idle client holds no buffers. */
    uint8_t *rx, *tx; /* NULL while small */
    size_t rx_size, tx_size;
    uint8_t small_rx[64], small_tx[64];
    uint16_t *inbound;
    uint8_t *inbound_bits; /* given to the engine when its table overflows */
    mqttc_transport *tr;
    mqttc_transport_opts topts; /* borrowed by the transport while it lives */
    mqttc_client_state state;
    int close_reason;    /* from the engine's CLOSED event */
    int last_detail;     /* the closed transport's detail, for the error event */
    bool engine_closed;  /* the engine went offline: tear the transport down */
    uint32_t attempt_start, retry_at, backoff;
    uint64_t rng;

    /* requests from other threads, served by the loop */
    bool want_connect;  /* the application wants a connection */
    bool connect_now, reconnect_now, disconnect_now;

    /* loop */
    int wake[2];
    bool sleeping, looping, dispatching, stop, destroy_requested;
    bool tearing_down; /* in free_client: the lock is not held any more */
    pthread_t thread, loop_owner;
    bool thread_started;

    client_msg *done_head, *done_tail; /* completed or dropped, to report */
    client_msg *pool; /* free nodes of `slot` bytes */
    unsigned pool_count;
    size_t slot; /* POOL_SLOT, or prealloc_message_size with preallocate */
    uint32_t activity;   /* publishes, requests and reads: to notice idleness */
    uint32_t idle_seen;  /* `activity` at idle_since */
    uint32_t idle_since; /* when the loop last saw `activity` change */
    subscription *subs;
    size_t sub_count, sub_cap;
    uint8_t *big; /* reassembly of messages larger than rx (when not in pieces) */
    size_t big_len, big_cap;
};

/* ---- utilities ----------------------------------------------------------- */

static uint32_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static void logf_(mqttc_client *c, mqttc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Run a user callback with the lock released (see the file comment). Only
 * the loop calls it, and only where other threads' calls may interleave. */
static void unlocked_begin(mqttc_client *c)
{
    if (!c->tearing_down) {
        c->dispatching = true;
        pthread_mutex_unlock(&c->lock);
    }
}

static void unlocked_end(mqttc_client *c)
{
    if (!c->tearing_down) {
        pthread_mutex_lock(&c->lock);
        c->dispatching = false;
    }
}

static void logf_(mqttc_client *c, mqttc_log_level level, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    mqttc_log_cb cb = c->cfg.on_log;
    void *user = c->cfg.log_user;
    if (cb == NULL || level > c->cfg.log_level) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    unlocked_begin(c);
    cb(level, line, user);
    unlocked_end(c);
}

static void wake(mqttc_client *c)
{
    if (c->sleeping && c->wake[1] >= 0) {
        ssize_t r = write(c->wake[1], "", 1);
        (void)r; /* a full pipe already wakes the loop */
        c->sleeping = false;
    }
}

/* xorshift64*: jitter for the reconnect backoff; per client, no global state. */
static uint32_t rand32(mqttc_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (uint32_t)((c->rng * 2685821657736338717ull) >> 32);
}

/* Deliver one event with the lock released. */
static void dispatch(mqttc_client *c, const mqttc_client_event *ev)
{
    mqttc_client_cb cb = c->cfg.on_event;
    void *user = c->cfg.user;
    if (cb == NULL || c->destroy_requested) {
        return;
    }
    unlocked_begin(c);
    cb(c, ev, user);
    unlocked_end(c);
}

/* ---- configuration ------------------------------------------------------- */

void mqttc_client_config_init(mqttc_client_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    memset(cfg, 0, sizeof *cfg);
    cfg->keepalive = 60;
    cfg->clean_session = true;
    cfg->inflight_max = 20;
    cfg->inbound_max = 32;
    cfg->queue_max_msgs = 1000;
    cfg->queue_max_bytes = (size_t)16 << 20;
    cfg->rx_buffer_size = DEFAULT_BUFFER;
    cfg->tx_buffer_size = DEFAULT_BUFFER;
    cfg->max_message_size = MQTTC_MAX_REMAINING_LENGTH;
    cfg->connect_timeout_ms = 10000;
    cfg->reconnect_ms = 3000;
    cfg->log_level = MQTTC_LOG_WARN;
}

/* Copy every string of the configuration into one block. */
static const char *const *failover_list(const mqttc_client_config *cfg, size_t *n)
{
    size_t i = 0;
    while (cfg->failover_uris != NULL && cfg->failover_uris[i] != NULL) {
        i++;
    }
    *n = i;
    return cfg->failover_uris;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

static char *put_str(char **cursor, const void *s, size_t n)
{
    char *dst = *cursor;
    memcpy(dst, s, n);
    dst[n] = '\0';
    *cursor += n + 1;
    return dst;
}

static int copy_strings(mqttc_client *c, const mqttc_client_config *cfg)
{
    size_t nf, i, total = 0;
    const char *const *fo = failover_list(cfg, &nf);
    size_t pwlen = cfg->password ? (cfg->password_len ? cfg->password_len : strlen(cfg->password)) : 0;
    char *cur;

    size_t nalpn = 0;

    total += slen(cfg->uri) + slen(cfg->host) + slen(cfg->client_id) + slen(cfg->username);
    total += (cfg->password ? pwlen + 1 : 0) + slen(cfg->will_topic) + cfg->will_payload_len + 1;
    total += slen(cfg->tls.ca) + slen(cfg->tls.cert) + slen(cfg->tls.key);
    total += slen(cfg->tls.key_password) + slen(cfg->tls.server_name) + slen(cfg->ws_path);
    for (i = 0; i < nf; i++) {
        total += slen(fo[i]);
    }
    while (cfg->tls.alpn != NULL && cfg->tls.alpn[nalpn] != NULL) {
        total += slen(cfg->tls.alpn[nalpn++]);
    }
    c->alpn = calloc(nalpn + 1, sizeof *c->alpn);
    c->strings = malloc(total + 1);
    if (c->alpn == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    if (c->strings == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    cur = c->strings;
#define COPY(field) c->cfg.field = cfg->field ? put_str(&cur, cfg->field, strlen(cfg->field)) : NULL
    COPY(uri);
    COPY(host);
    COPY(client_id);
    COPY(username);
    COPY(will_topic);
    COPY(tls.ca);
    COPY(tls.cert);
    COPY(tls.key);
    COPY(tls.key_password);
    COPY(tls.server_name);
    COPY(ws_path);
#undef COPY
    for (i = 0; i < nalpn; i++) {
        c->alpn[i] = put_str(&cur, cfg->tls.alpn[i], strlen(cfg->tls.alpn[i]));
    }
    c->cfg.tls.alpn = nalpn > 0 ? (const char *const *)c->alpn : NULL;
    c->cfg.password = cfg->password ? put_str(&cur, cfg->password, pwlen) : NULL;
    c->cfg.password_len = pwlen;
    c->cfg.will_payload =
        put_str(&cur, cfg->will_payload ? cfg->will_payload : "", cfg->will_payload_len);
    c->cfg.failover_uris = NULL;
    c->uri_count = 1 + nf;
    c->servers = calloc(c->uri_count, sizeof *c->servers);
    if (c->servers == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    c->servers[0] = c->cfg.uri;
    for (i = 0; i < nf; i++) {
        c->servers[1 + i] = put_str(&cur, fo[i], strlen(fo[i]));
    }
    return 0;
}

/* Server `i` parsed. */
static int server_at(const mqttc_client *c, size_t i, mqttc_uri *u)
{
    if (c->servers[i] != NULL) {
        return mqttc_uri_parse(c->servers[i], u);
    }
    if (c->cfg.host == NULL || c->cfg.host[0] == '\0' || strlen(c->cfg.host) >= sizeof u->host) {
        return MQTTC_ERR_BAD_URI;
    }
    memset(u, 0, sizeof *u);
    u->scheme = MQTTC_SCHEME_MQTT;
    strcpy(u->host, c->cfg.host);
    u->port = c->cfg.port ? c->cfg.port : 1883;
    return 0;
}

/* Every server must parse now, so that a bad URI fails create, not connect. */
static int parse_server(mqttc_client *c)
{
    for (size_t i = 0; i < c->uri_count; i++) {
        mqttc_uri u;
        int rc = server_at(c, i, &u);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* "host:port" of the current server, for log lines. */
static const char *server_label(const mqttc_client *c, char *buf, size_t n)
{
    mqttc_uri u;
    if (server_at(c, c->uri_index, &u) < 0) {
        return "?";
    }
    snprintf(buf, n, strchr(u.host, ':') ? "[%s]:%u" : "%s:%u", u.host, (unsigned)u.port);
    return buf;
}

/* The CONNECT fields, borrowed from our copies; validated by the codec. */
static int build_connect(mqttc_client *c)
{
    mqttc_connect *k = &c->conn;
    size_t n;
    memset(k, 0, sizeof *k);
    k->client_id.data = c->cfg.client_id ? c->cfg.client_id : "";
    n = strlen(k->client_id.data);
    if (n > 65535 || (c->cfg.username && strlen(c->cfg.username) > 65535) ||
        c->cfg.password_len > 65535 || c->cfg.will_payload_len > 65535 ||
        (c->cfg.will_topic && strlen(c->cfg.will_topic) > 65535)) {
        return MQTTC_ERR_STRING_TOO_LONG;
    }
    k->client_id.len = (uint16_t)n;
    if (c->cfg.username) {
        k->username.data = c->cfg.username;
        k->username.len = (uint16_t)strlen(c->cfg.username);
    }
    if (c->cfg.password) {
        k->password.data = c->cfg.password;
        k->password.len = (uint16_t)c->cfg.password_len;
    }
    if (c->cfg.will_topic == NULL &&
        (c->cfg.will_payload_len > 0 || c->cfg.will_qos != 0 || c->cfg.will_retain)) {
        return MQTTC_ERR_BAD_WILL;
    }
    if (c->cfg.will_topic) {
        k->will_topic.data = c->cfg.will_topic;
        k->will_topic.len = (uint16_t)strlen(c->cfg.will_topic);
        k->will_payload.data = c->cfg.will_payload;
        k->will_payload.len = (uint16_t)c->cfg.will_payload_len;
    }
    k->will_qos = c->cfg.will_qos;
    k->will_retain = c->cfg.will_retain;
    k->keepalive = c->cfg.keepalive;
    k->clean_session = c->cfg.clean_session;
    return mqttc_connect_size(k) < 0 ? mqttc_connect_size(k) : 0;
}

static void on_engine_event(void *user, const mqttc_event *ev);

static uint8_t *grow_inbound(void *user)
{
    mqttc_client *c = user;
    /* Called mid-packet: no logging here, as logging releases the lock. */
    if (c->inbound_bits == NULL) {
        c->inbound_bits = malloc(MQTTC_INBOUND_BITMAP_SIZE);
    }
    return c->inbound_bits;
}

/* ---- persistence (include/mqttc/store.h) --------------------------------- */

static mqttc_store_record out_record(const mqttc_message *m)
{
    mqttc_store_record r;
    memset(&r, 0, sizeof r);
    r.kind = MQTTC_STORE_OUTBOUND;
    r.packet_id = m->packet_id;
    r.qos = m->qos;
    r.retain = m->retain;
    r.topic = m->topic.data;
    r.topic_len = m->topic.len;
    r.payload = m->payload;
    r.payload_len = m->payload_len;
    return r;
}

/* The engine accepted a QoS 1/2 message: record it before any byte of it can
 * be written. Called inside mqttc_engine_publish(): no logging (it would
 * release the lock mid-call); the caller gets the code, errno says why. */
static int store_accept(void *user, mqttc_message *m)
{
    mqttc_client *c = user;
    mqttc_store_record r = out_record(m);
    return c->cfg.store->ops->put(c->cfg.store->ctx, &r);
}

/* A store step of a flow failed. Continuing would let the next packet of the
 * flow out with the store behind it, so the connection is dropped: the flow
 * resumes from the broker's re-send or ours after the reconnect. */
static void store_failed(mqttc_client *c, int rc)
{
    logf_(c, MQTTC_LOG_ERROR, "store: recording a step of a QoS flow failed: %s (%s)",
          mqttc_strerror(rc), strerror(errno));
    mqttc_engine_connection_lost(&c->eng, MQTTC_ERR_STORE);
}

/* Keep the store in step with an engine event (before its reply is written). */
static void store_track(mqttc_client *c, const mqttc_event *ev)
{
    mqttc_store *st = c->cfg.store;
    const mqttc_message *m;
    mqttc_store_record r;
    int rc = 0;
    switch (ev->type) {
    case MQTTC_EV_RELEASED:
        rc = st->ops->release(st->ctx, ev->u.released.msg->packet_id);
        break;
    case MQTTC_EV_PUBREL:
        rc = st->ops->remove(st->ctx, MQTTC_STORE_INBOUND, ev->u.pubrel.packet_id);
        break;
    case MQTTC_EV_MESSAGE: /* delivered: recorded before PUBREC goes out */
        if (ev->u.message.qos == 2 &&
            ev->u.message.offset + ev->u.message.payload_len == ev->u.message.total_len) {
            memset(&r, 0, sizeof r);
            r.kind = MQTTC_STORE_INBOUND;
            r.packet_id = ev->u.message.packet_id;
            rc = st->ops->put(st->ctx, &r);
        }
        break;
    case MQTTC_EV_PUBLISH_DONE:
        m = ev->u.publish_done.msg;
        if (m->qos > 0) {
            rc = st->ops->remove(st->ctx, MQTTC_STORE_OUTBOUND, m->packet_id);
            if (rc < 0) { /* the flow is over: at worst it is re-sent after a restart */
                logf_(c, MQTTC_LOG_WARN, "store: remove failed: %s", strerror(errno));
                rc = 0;
            }
        }
        break;
    case MQTTC_EV_CONNECTED: /* no session: the broker forgot its half of QoS 2 */
        if (!ev->u.connected.session_present) {
            rc = st->ops->clear(st->ctx, MQTTC_STORE_INBOUND);
        }
        break;
    default:
        break;
    }
    if (rc < 0) {
        store_failed(c, rc);
    }
}

/* A node with room for `cap` bytes of topic and payload. */
static client_msg *alloc_node(size_t cap)
{
    client_msg *cm = malloc(sizeof *cm + cap);
    if (cm != NULL) {
        cm->cap = (uint32_t)(cap <= UINT32_MAX ? cap : 0);
    }
    return cm;
}

static client_msg *new_msg(mqttc_client *c, const char *topic, size_t tlen, const void *payload,
                           size_t len, int qos, bool retain)
{
    size_t need = tlen + 1 + len;
    client_msg *cm;
    if (need <= c->slot && c->pool != NULL) {
        cm = c->pool;
        c->pool = cm->next_done;
        c->pool_count--;
    } else if (c->cfg.preallocate) {
        return NULL; /* the caller tells TOO_LARGE from QUEUE_FULL */
    } else {
        cm = alloc_node(need <= c->slot ? c->slot : need);
        if (cm == NULL) {
            return NULL;
        }
    }
    memset(&cm->m, 0, sizeof cm->m);
    memcpy((char *)(cm + 1), topic, tlen);
    ((char *)(cm + 1))[tlen] = '\0';
    if (len > 0) {
        memcpy((char *)(cm + 1) + tlen + 1, payload, len);
    }
    cm->m.topic.data = (const char *)(cm + 1);
    cm->m.topic.len = (uint16_t)tlen;
    cm->m.payload = (const uint8_t *)(cm + 1) + tlen + 1;
    cm->m.payload_len = len;
    cm->m.qos = (uint8_t)qos;
    cm->m.retain = retain;
    return cm;
}

static void release_msg(mqttc_client *c, client_msg *cm)
{
    if (cm->cap == c->slot && (c->pool_count < POOL_MAX || c->cfg.preallocate)) {
        cm->next_done = c->pool;
        c->pool = cm;
        c->pool_count++;
    } else {
        free(cm);
    }
}

static void free_pool(mqttc_client *c)
{
    while (c->pool != NULL) {
        client_msg *cm = c->pool;
        c->pool = cm->next_done;
        free(cm);
    }
    c->pool_count = 0;
}

/* The preallocated nodes: one per message the queue may hold. */
static int fill_pool(mqttc_client *c)
{
    for (uint32_t i = 0; i < c->eng.cfg.queue_max_msgs; i++) { /* the engine's default applied */
        client_msg *cm = alloc_node(c->slot);
        if (cm == NULL) {
            return MQTTC_ERR_NO_MEMORY;
        }
        release_msg(c, cm); /* into the pool: preallocate keeps every node */
    }
    return 0;
}

static void trim_pool(mqttc_client *c)
{
    if (!c->cfg.preallocate) { /* preallocated nodes are kept for the client's life */
        free_pool(c);
    }
}

/* One record loaded from the store: back into the engine. */
static int restore_one(void *arg, const mqttc_store_record *r)
{
    mqttc_client *c = arg;
    client_msg *cm;
    int rc;
    if (r->kind == MQTTC_STORE_INBOUND) {
        return mqttc_engine_restore_inbound(&c->eng, r->packet_id);
    }
    if (r->topic_len > 65535u) {
        return MQTTC_ERR_INVALID_ARG;
    }
    cm = new_msg(c, r->topic, r->topic_len, r->payload, r->payload_len, r->qos, r->retain);
    if (cm == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    rc = mqttc_engine_restore(&c->eng, &cm->m, r->packet_id, r->released);
    if (rc < 0) {
        release_msg(c, cm);
    }
    return rc;
}

static int load_store(mqttc_client *c)
{
    mqttc_store *st = c->cfg.store;
    if (st == NULL) {
        return 0;
    }
    if (st->ops == NULL || st->ops->put == NULL || st->ops->release == NULL ||
        st->ops->remove == NULL || st->ops->clear == NULL || st->ops->load == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    return st->ops->load(st->ctx, restore_one, c);
}

/* Give the engine its full-size buffers (before any traffic). */
static int grow_buffers(mqttc_client *c)
{
    uint8_t *rx, *tx;
    if (c->rx != NULL) {
        return 0;
    }
    rx = malloc(c->rx_size);
    tx = malloc(c->tx_size);
    if (rx == NULL || tx == NULL ||
        mqttc_engine_resize(&c->eng, rx, c->rx_size, tx, c->tx_size) < 0) {
        free(rx);
        free(tx);
        return MQTTC_ERR_NO_MEMORY;
    }
    c->rx = rx;
    c->tx = tx;
    return 0;
}

/* Back to the small arrays when the engine holds nothing. */
static void shrink_buffers(mqttc_client *c)
{
    if (c->rx != NULL && !c->cfg.preallocate && mqttc_engine_idle(&c->eng) &&
        mqttc_engine_resize(&c->eng, c->small_rx, sizeof c->small_rx, c->small_tx,
                            sizeof c->small_tx) == 0) {
        free(c->rx);
        free(c->tx);
        c->rx = c->tx = NULL;
    }
}

static int setup_engine(mqttc_client *c)
{
    mqttc_engine_config ec;
    int need = mqttc_connect_size(&c->conn);
    c->rx_size = c->cfg.rx_buffer_size;
    c->tx_size = c->cfg.tx_buffer_size;
    if (c->rx_size < 64 || c->tx_size < 64 || c->cfg.inbound_max == 0) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if ((size_t)need > c->tx_size) {
        c->tx_size = (size_t)need; /* CONNECT must fit in one piece */
    }
    c->inbound = malloc(c->cfg.inbound_max * sizeof *c->inbound);
    if (c->inbound == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    memset(&ec, 0, sizeof ec);
    ec.rx_buf = c->small_rx; /* the full buffers come with the first traffic */
    ec.rx_cap = sizeof c->small_rx;
    ec.tx_buf = c->small_tx;
    ec.tx_cap = sizeof c->small_tx;
    ec.inbound_ids = c->inbound;
    ec.inbound_cap = c->cfg.inbound_max;
    ec.inbound_bitmap = grow_inbound;
    ec.max_packet = c->cfg.max_message_size && c->cfg.max_message_size < MQTTC_MAX_REMAINING_LENGTH
                        ? c->cfg.max_message_size + MQTTC_MAX_FIXED_HEADER
                        : 0;
    /* reassembled here unless the user wants pieces; preallocated: never joined */
    ec.stream_payloads = !c->cfg.preallocate || c->cfg.message_pieces;
    ec.inflight_max = c->cfg.inflight_max;
    ec.queue_max_msgs = c->cfg.queue_max_msgs;
    ec.queue_max_bytes = c->cfg.queue_max_bytes;
    ec.queue_policy = c->cfg.queue_policy;
    ec.connack_timeout_ms = c->cfg.connect_timeout_ms;
    ec.on_event = on_engine_event;
    ec.on_accept = c->cfg.store != NULL ? store_accept : NULL;
    ec.user = c;
    return mqttc_engine_init(&c->eng, &ec);
}

static void free_client(mqttc_client *c);

/* The pipe that interrupts a sleeping loop: the client's thread, or
 * mqttc_client_loop() (opened at its first call). A caller that polls
 * mqttc_client_fd() itself never needs it: one descriptor per client. */
static int open_wake(mqttc_client *c)
{
    if (c->wake[0] >= 0) {
        return 0;
    }
    if (pipe(c->wake) != 0) {
        c->wake[0] = c->wake[1] = -1;
        return MQTTC_ERR_NO_MEMORY;
    }
    fcntl(c->wake[0], F_SETFL, O_NONBLOCK);
    fcntl(c->wake[1], F_SETFL, O_NONBLOCK);
    fcntl(c->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(c->wake[1], F_SETFD, FD_CLOEXEC);
    return 0;
}

int mqttc_client_create(const mqttc_client_config *cfg, mqttc_client **out)
{
    mqttc_client *c;
    int rc;
    if (cfg == NULL || out == NULL || cfg->run_mode > MQTTC_RUN_CALLER ||
        (cfg->will_payload == NULL && cfg->will_payload_len > 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    c->cfg = *cfg;
    c->wake[0] = c->wake[1] = -1;
    rc = copy_strings(c, cfg);
    if (rc == 0) {
        rc = parse_server(c);
    }
    if (rc == 0) {
        rc = build_connect(c);
    }
    if (rc == 0) {
        rc = setup_engine(c);
    }
    c->slot = POOL_SLOT;
    if (rc == 0 && c->cfg.preallocate) {
        c->slot = c->cfg.prealloc_message_size ? c->cfg.prealloc_message_size : POOL_SLOT;
        c->inbound_bits = malloc(MQTTC_INBOUND_BITMAP_SIZE);
        rc = c->inbound_bits == NULL ? MQTTC_ERR_NO_MEMORY : grow_buffers(c);
        if (rc == 0) {
            rc = fill_pool(c);
        }
    }
    if (rc == 0) {
        rc = load_store(c);
    }
    if (rc == 0 && c->cfg.run_mode == MQTTC_RUN_THREAD) {
        rc = open_wake(c);
    }
    if (rc < 0) {
        free_client(c);
        return rc;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->rng = ((uint64_t)now_ms() << 32) ^ (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ull;
    c->backoff = c->cfg.reconnect_ms ? c->cfg.reconnect_ms : 3000;
    *out = c;
    return 0;
}

/* ---- messages, requests and subscriptions -------------------------------- */

static const char *msg_topic(const client_msg *cm)
{
    return (const char *)(cm + 1);
}

static void queue_done(mqttc_client *c, client_msg *cm, int status)
{
    cm->status = status;
    cm->next_done = NULL;
    if (c->done_tail) {
        c->done_tail->next_done = cm;
    } else {
        c->done_head = cm;
    }
    c->done_tail = cm;
}

/* Report completed and dropped messages, then free them. */
static void deliver_done(mqttc_client *c)
{
    while (c->done_head != NULL) {
        client_msg *cm = c->done_head;
        mqttc_client_event ev;
        c->done_head = cm->next_done;
        if (c->done_head == NULL) {
            c->done_tail = NULL;
        }
        memset(&ev, 0, sizeof ev);
        if (cm->status == 0) {
            ev.type = MQTTC_CLIENT_EV_PUBLISHED;
            ev.u.published.msg_id = cm->m.packet_id;
            ev.u.published.qos = cm->m.qos;
        } else {
            ev.type = MQTTC_CLIENT_EV_DROPPED;
            ev.u.dropped.msg_id = cm->m.packet_id;
            ev.u.dropped.qos = cm->m.qos;
            ev.u.dropped.topic = msg_topic(cm);
            ev.u.dropped.reason = cm->status;
            logf_(c, MQTTC_LOG_WARN, "message %d on '%s' dropped: %s", cm->m.packet_id,
                  msg_topic(cm), mqttc_strerror(cm->status));
        }
        dispatch(c, &ev);
        release_msg(c, cm);
    }
}

static int sub_find(const mqttc_client *c, const char *f, size_t len)
{
    size_t i;
    for (i = 0; i < c->sub_count; i++) {
        if (strlen(c->subs[i].filter) == len && memcmp(c->subs[i].filter, f, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void sub_remove(mqttc_client *c, const char *f, size_t len)
{
    int i = sub_find(c, f, len);
    if (i >= 0) {
        free(c->subs[i].filter);
        c->subs[i] = c->subs[--c->sub_count];
    }
}

static void sub_add(mqttc_client *c, const char *f, size_t len, uint8_t qos)
{
    int i = sub_find(c, f, len);
    if (i >= 0) {
        c->subs[i].qos = qos;
        return;
    }
    if (c->sub_count == c->sub_cap) {
        size_t cap = c->sub_cap ? c->sub_cap * 2 : 8;
        subscription *s = realloc(c->subs, cap * sizeof *s);
        if (s == NULL) {
            logf_(c, MQTTC_LOG_ERROR, "out of memory: subscription not remembered");
            return;
        }
        c->subs = s;
        c->sub_cap = cap;
    }
    c->subs[c->sub_count].filter = malloc(len + 1);
    if (c->subs[c->sub_count].filter == NULL) {
        return;
    }
    memcpy(c->subs[c->sub_count].filter, f, len);
    c->subs[c->sub_count].filter[len] = '\0';
    c->subs[c->sub_count].qos = qos;
    c->sub_count++;
}

/* Build a request with private copies of the filters; one allocation. */
static client_req *make_req(mqttc_request_kind kind, const mqttc_topic_qos *items,
                            const char *const *filters, size_t n, int *err)
{
    size_t i, strs = 0, entry = kind == MQTTC_REQ_SUBSCRIBE ? sizeof(mqttc_subscription)
                                                           : sizeof(mqttc_str);
    client_req *q;
    char *cur;
    *err = MQTTC_ERR_INVALID_ARG;
    if (n == 0 || n > 65535 || (items == NULL && filters == NULL)) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        const char *f = items ? items[i].filter : filters[i];
        if (f == NULL) {
            return NULL;
        }
        if (strlen(f) > 65535) {
            *err = MQTTC_ERR_STRING_TOO_LONG;
            return NULL;
        }
        if (items && (items[i].qos < 0 || items[i].qos > 2)) {
            *err = MQTTC_ERR_BAD_QOS;
            return NULL;
        }
        strs += strlen(f) + 1;
    }
    q = calloc(1, sizeof *q + n * entry + strs);
    if (q == NULL) {
        *err = MQTTC_ERR_NO_MEMORY;
        return NULL;
    }
    q->r.kind = kind;
    q->r.count = n;
    cur = (char *)(q + 1) + n * entry;
    for (i = 0; i < n; i++) {
        const char *f = items ? items[i].filter : filters[i];
        size_t len = strlen(f);
        mqttc_str s;
        s.data = put_str(&cur, f, len);
        s.len = (uint16_t)len;
        if (kind == MQTTC_REQ_SUBSCRIBE) {
            mqttc_subscription *sub = (mqttc_subscription *)(void *)(q + 1) + i;
            sub->filter = s;
            sub->qos = (uint8_t)items[i].qos;
        } else {
            ((mqttc_str *)(void *)(q + 1))[i] = s;
        }
    }
    if (kind == MQTTC_REQ_SUBSCRIBE) {
        q->r.subs = (const mqttc_subscription *)(const void *)(q + 1);
    } else {
        q->r.filters = (const mqttc_str *)(const void *)(q + 1);
    }
    return q;
}

/* Queue a request with the engine (lock held). Takes `q` either way. */
static int submit_req(mqttc_client *c, client_req *q)
{
    int rc = grow_buffers(c); /* the whole packet must fit the staging buffer */
    c->activity++;
    if (rc == 0) {
        rc = mqttc_engine_request(&c->eng, &q->r);
    }
    if (rc < 0) {
        free(q);
        return rc;
    }
    if (mqttc_engine_want_write(&c->eng)) {
        wake(c);
    }
    return rc;
}

/* After CONNACK without a session: subscribe again to everything, in
 * requests that fit the staging buffer. */
static void restore_subscriptions(mqttc_client *c)
{
    size_t i = 0;
    while (i < c->sub_count) {
        mqttc_topic_qos items[32];
        size_t n = 0, bytes = 5 + 2;
        client_req *q;
        int err;
        while (i + n < c->sub_count && n < 32) {
            size_t add = strlen(c->subs[i + n].filter) + 3;
            if (n > 0 && bytes + add > c->eng.cfg.tx_cap) {
                break;
            }
            items[n].filter = c->subs[i + n].filter;
            items[n].qos = c->subs[i + n].qos;
            bytes += add;
            n++;
        }
        q = make_req(MQTTC_REQ_SUBSCRIBE, items, NULL, n, &err);
        if (q == NULL) {
            logf_(c, MQTTC_LOG_ERROR, "cannot restore subscriptions: %s", mqttc_strerror(err));
            return;
        }
        q->internal = true;
        err = submit_req(c, q);
        if (err < 0) {
            logf_(c, MQTTC_LOG_ERROR, "cannot restore subscriptions: %s", mqttc_strerror(err));
        }
        i += n;
    }
    logf_(c, MQTTC_LOG_INFO, "restored %zu subscription(s)", c->sub_count);
}

/* ---- engine events (called with the lock held, on the loop) -------------- */

static void on_suback(mqttc_client *c, const mqttc_event *ev)
{
    client_req *q = (client_req *)(void *)ev->u.suback.req;
    size_t i;
    mqttc_client_event out;
    for (i = 0; i < ev->u.suback.count; i++) {
        const mqttc_str *f = &q->r.subs[i].filter;
        if (ev->u.suback.codes[i] == MQTTC_SUBACK_FAILURE) {
            sub_remove(c, f->data, f->len);
        } else {
            sub_add(c, f->data, f->len, q->r.subs[i].qos);
        }
    }
    if (!q->internal) {
        memset(&out, 0, sizeof out);
        out.type = MQTTC_CLIENT_EV_SUBSCRIBED;
        out.u.subscribed.msg_id = q->r.packet_id;
        out.u.subscribed.count = ev->u.suback.count;
        out.u.subscribed.granted = ev->u.suback.codes;
        dispatch(c, &out);
    }
    free(q);
}

static void on_unsuback(mqttc_client *c, const mqttc_event *ev)
{
    client_req *q = (client_req *)(void *)ev->u.unsuback.req;
    size_t i;
    mqttc_client_event out;
    for (i = 0; i < q->r.count; i++) {
        sub_remove(c, q->r.filters[i].data, q->r.filters[i].len);
    }
    memset(&out, 0, sizeof out);
    out.type = MQTTC_CLIENT_EV_UNSUBSCRIBED;
    out.u.unsubscribed.msg_id = q->r.packet_id;
    dispatch(c, &out);
    free(q);
}

/* Deliver a message; pieces are joined unless the user asked for pieces. */
static void on_message(mqttc_client *c, const mqttc_publish *p)
{
    mqttc_client_event out;
    const uint8_t *payload = p->payload;
    size_t len = p->payload_len, offset = p->offset;

    if (!c->cfg.message_pieces && p->payload_len != p->total_len) {
        if (p->offset == 0) {
            c->big_len = 0;
        }
        if (p->offset != c->big_len) {
            return; /* the start was lost with an old connection */
        }
        if (p->payload_len > c->big_cap - c->big_len) {
            /* Grow with the bytes that arrived, not with the length the header
             * claims: a broker may announce 256 MiB and send ten bytes. */
            size_t need = c->big_len + p->payload_len;
            size_t cap = c->big_cap > need / 2 ? 2 * c->big_cap : need;
            uint8_t *b;
            if (cap > p->total_len) {
                cap = p->total_len;
            }
            b = realloc(c->big, cap);
            if (b == NULL) {
                logf_(c, MQTTC_LOG_ERROR, "out of memory for a %zu-byte message", p->total_len);
                mqttc_engine_connection_lost(&c->eng, MQTTC_ERR_NO_MEMORY);
                return;
            }
            c->big = b;
            c->big_cap = cap;
        }
        memcpy(c->big + c->big_len, p->payload, p->payload_len);
        c->big_len += p->payload_len;
        if (c->big_len < p->total_len) {
            return;
        }
        payload = c->big;
        len = p->total_len;
        offset = 0;
    }
    memset(&out, 0, sizeof out);
    out.type = MQTTC_CLIENT_EV_MESSAGE;
    out.u.message.topic = p->topic.data;
    out.u.message.topic_len = p->topic.len;
    out.u.message.payload = payload;
    out.u.message.payload_len = len;
    out.u.message.offset = offset;
    out.u.message.total = p->total_len;
    out.u.message.msg_id = p->packet_id;
    out.u.message.qos = p->qos;
    out.u.message.retain = p->retain;
    out.u.message.dup = p->dup;
    dispatch(c, &out);
    if (payload == c->big && c->big_cap > 4 * c->eng.cfg.rx_cap) {
        free(c->big); /* do not keep a large buffer for an idle client */
        c->big = NULL;
        c->big_cap = 0;
    }
}

static void on_engine_event(void *user, const mqttc_event *ev)
{
    mqttc_client *c = user;
    mqttc_client_event out;
    char label[MQTTC_URI_HOST_MAX + 16];
    memset(&out, 0, sizeof out);
    if (c->cfg.store != NULL && ev->type != MQTTC_EV_MESSAGE) {
        store_track(c, ev);
    }
    switch (ev->type) {
    case MQTTC_EV_CONNECTED:
        c->state = MQTTC_CLIENT_READY;
        c->backoff = c->cfg.reconnect_ms ? c->cfg.reconnect_ms : 3000;
        c->tries_in_cycle = 0;
        logf_(c, MQTTC_LOG_INFO, "connected to %s (session present %d)",
              server_label(c, label, sizeof label), ev->u.connected.session_present);
        if (!ev->u.connected.session_present && c->sub_count > 0) {
            restore_subscriptions(c);
        }
        out.type = MQTTC_CLIENT_EV_CONNECTED;
        out.u.connected.session_present = ev->u.connected.session_present;
        dispatch(c, &out);
        break;
    case MQTTC_EV_CLOSED:
        c->engine_closed = true;
        c->close_reason = ev->u.closed.reason;
        break;
    case MQTTC_EV_MESSAGE:
        on_message(c, &ev->u.message);
        if (c->cfg.store != NULL) {
            store_track(c, ev); /* after the application has it */
        }
        break;
    case MQTTC_EV_PUBLISH_DONE:
        queue_done(c, (client_msg *)(void *)ev->u.publish_done.msg, ev->u.publish_done.status);
        break;
    case MQTTC_EV_SUBACK:
        on_suback(c, ev);
        break;
    case MQTTC_EV_UNSUBACK:
        on_unsuback(c, ev);
        break;
    case MQTTC_EV_PONG:
        out.type = MQTTC_CLIENT_EV_PONG;
        dispatch(c, &out);
        break;
    case MQTTC_EV_RELEASED:
    case MQTTC_EV_PUBREL:
        break;
    }
}

/* ---- connection management (on the loop) --------------------------------- */

static void emit_error(mqttc_client *c, int code, mqttc_error_kind kind)
{
    char label[MQTTC_URI_HOST_MAX + 16];
    mqttc_client_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = MQTTC_CLIENT_EV_ERROR;
    ev.u.error.code = code;
    ev.u.error.kind = kind;
    ev.u.error.detail = c->last_detail;
    c->last_detail = 0;
    if (code <= MQTTC_ERR_REFUSED_PROTOCOL && code >= MQTTC_ERR_REFUSED_NOT_AUTHORIZED) {
        ev.u.error.kind = MQTTC_ERRKIND_CONNACK;
        ev.u.error.connack_code = (uint8_t)(MQTTC_ERR_REFUSED_PROTOCOL - code + 1);
    }
    logf_(c, MQTTC_LOG_WARN, "%s: %s (detail %d)", server_label(c, label, sizeof label),
          mqttc_strerror(code), ev.u.error.detail);
    dispatch(c, &ev);
}

static void close_transport(mqttc_client *c)
{
    if (c->tr != NULL) {
        c->last_detail = c->tr->detail;
        c->tr->vt->destroy(c->tr);
        c->tr = NULL;
    }
}

/* Schedule the next attempt: the next failover URI at once, or after the
 * (backed-off, jittered) delay once every URI was tried. */
static void schedule_retry(mqttc_client *c, uint32_t now)
{
    char label[MQTTC_URI_HOST_MAX + 16];
    uint32_t delay = 0;
    c->uri_index = (c->uri_index + 1) % c->uri_count;
    if (++c->tries_in_cycle >= c->uri_count) {
        c->tries_in_cycle = 0;
        if (!c->cfg.auto_reconnect) {
            c->want_connect = false;
            c->state = MQTTC_CLIENT_IDLE;
            return;
        }
        delay = c->backoff;
        if (c->cfg.reconnect_max_ms > 0) {
            delay = delay / 2 + rand32(c) % (delay / 2 + 1); /* "equal jitter" */
            c->backoff = c->backoff >= c->cfg.reconnect_max_ms / 2 ? c->cfg.reconnect_max_ms
                                                                   : c->backoff * 2;
        }
    }
    c->state = MQTTC_CLIENT_WAITING;
    c->retry_at = now + delay;
    logf_(c, MQTTC_LOG_INFO, "next attempt in %u ms to %s", (unsigned)delay,
          server_label(c, label, sizeof label));
}

static void attempt_failed(mqttc_client *c, int code, uint32_t now)
{
    close_transport(c);
    if (mqttc_engine_state(&c->eng) != MQTTC_STATE_OFFLINE) {
        mqttc_engine_connection_lost(&c->eng, code);
    }
    c->engine_closed = false;
    emit_error(c, code, MQTTC_ERRKIND_CONNECT);
    if (c->want_connect) {
        schedule_retry(c, now);
    } else {
        c->state = MQTTC_CLIENT_IDLE;
    }
}

/* Transport warnings (e.g. an optional verification that failed). Called on
 * the loop, outside the engine, so releasing the lock to log is safe. */
static void transport_log(void *user, mqttc_log_level level, const char *msg)
{
    logf_((mqttc_client *)user, level, "%s", msg);
}

static void start_attempt(mqttc_client *c, uint32_t now)
{
    mqttc_uri parsed, *u = &parsed; /* the transports copy what they keep */
    int rc;
    close_transport(c);
    server_at(c, c->uri_index, u); /* checked by create */
    memset(&c->topts, 0, sizeof c->topts);
    c->topts.tls = &c->cfg.tls;
    c->topts.ws_path = c->cfg.ws_path ? c->cfg.ws_path : u->path;
    c->topts.log = transport_log;
    c->topts.log_user = c;
    c->last_detail = 0;
    c->state = MQTTC_CLIENT_CONNECTING;
    c->attempt_start = now;
    logf_(c, MQTTC_LOG_DEBUG, "connecting to %s:%u", u->host, u->port);
    rc = mqttc__transport_open(u, &c->topts, &c->tr);
    c->topts.ws_path = NULL; /* pointed into `parsed`; used only by the open */
    if (rc < 0) {
        c->tr = NULL;
        attempt_failed(c, rc, now);
    }
}

/* The transport finished connecting: hand over to the engine. */
static void transport_up(mqttc_client *c, uint32_t now)
{
    int rc = grow_buffers(c);
    if (rc == 0) {
        rc = mqttc_engine_start(&c->eng, &c->conn, now);
    }
    if (rc < 0) {
        attempt_failed(c, rc, now);
        return;
    }
    c->engine_closed = false;
    c->big_len = 0;
    c->state = MQTTC_CLIENT_HANDSHAKE;
    logf_(c, MQTTC_LOG_DEBUG, "transport up, CONNECT sent");
}

/* After our DISCONNECT: half-close and read (discarding) until the broker
 * closes, for at most LINGER_MS. Closing a socket with unread bytes in it
 * sends a TCP reset, and a reset can make the broker drop the DISCONNECT
 * it has not read yet, and publish the will. Blocks the loop briefly. */
static void linger_close(mqttc_client *c)
{
    uint32_t start = now_ms(), gone;
    int fd = c->tr ? c->tr->vt->fd(c->tr) : -1;
    uint8_t sink[4096];
    if (fd < 0) {
        close_transport(c);
        return;
    }
    shutdown(fd, SHUT_WR);
    while ((gone = now_ms() - start) < LINGER_MS) {
        struct pollfd p;
        long r;
        p.fd = fd;
        p.events = POLLIN;
        p.revents = 0;
        if (poll(&p, 1, (int)(LINGER_MS - gone)) <= 0) {
            break;
        }
        r = c->tr->vt->read(c->tr, sink, sizeof sink);
        if (r < 0) {
            break; /* the broker closed: done */
        }
    }
    close_transport(c);
}

/* The engine went offline: report it and decide what comes next. */
static void session_closed(mqttc_client *c, uint32_t now)
{
    trim_pool(c); /* offline: hold no more than the queue needs */
    shrink_buffers(c);
    int reason = c->close_reason;
    bool was_ready = c->state == MQTTC_CLIENT_READY;
    mqttc_client_event ev;

    c->engine_closed = false;
    if (reason == 0) {
        linger_close(c);
    } else {
        close_transport(c);
    }
    if (reason != 0 && !was_ready) { /* never got a session: a failed attempt */
        attempt_failed(c, reason, now);
        return;
    }
    if (reason != 0) {
        emit_error(c, reason,
                   reason == MQTTC_ERR_CLOSED_BY_PEER || reason == MQTTC_ERR_CONNECTION_LOST ||
                           reason == MQTTC_ERR_TRANSPORT
                       ? MQTTC_ERRKIND_TRANSPORT
                       : MQTTC_ERRKIND_PROTOCOL);
    }
    if (reason == 0 || !c->want_connect) {
        c->want_connect = false;
        c->state = MQTTC_CLIENT_IDLE;
    } else if (c->cfg.auto_reconnect) {
        c->tries_in_cycle = c->uri_count - 1; /* wait the interval, same server first */
        c->uri_index = (c->uri_index + c->uri_count - 1) % c->uri_count;
        schedule_retry(c, now);
    } else {
        c->want_connect = false;
        c->state = MQTTC_CLIENT_IDLE;
    }
    if (!was_ready) {
        return; /* disconnected before CONNACK: there was no session to end */
    }
    memset(&ev, 0, sizeof ev);
    ev.type = MQTTC_CLIENT_EV_DISCONNECTED;
    ev.u.disconnected.reason = reason;
    ev.u.disconnected.will_reconnect = c->state == MQTTC_CLIENT_WAITING;
    logf_(c, MQTTC_LOG_INFO, "disconnected: %s", mqttc_strerror(reason));
    dispatch(c, &ev);
}

static void lose_connection(mqttc_client *c, int reason)
{
    mqttc_engine_connection_lost(&c->eng, reason);
}

/* Write what the engine has, as few system calls as the transport allows. */
static void flush(mqttc_client *c, uint32_t now)
{
    int turns;
    for (turns = 0; turns < WRITES_PER_TURN && c->tr && !c->engine_closed; turns++) {
        mqttc_iov iov[MQTTC_ENGINE_SEGMENTS];
        size_t n = mqttc_engine_output(&c->eng, iov, MQTTC_ENGINE_SEGMENTS);
        long w;
        if (n == 0) {
            /* The transport may still hold bytes it took earlier (the rest of
             * a WebSocket frame, a pong): writev() with nothing flushes them. */
            if (c->tr->vt->want(c->tr) & MQTTC_WANT_WRITE) {
                w = c->tr->vt->writev(c->tr, NULL, 0);
                if (w < 0) {
                    lose_connection(c, (int)w);
                }
            }
            return;
        }
        w = c->tr->vt->writev(c->tr, iov, n);
        if (w < 0) {
            lose_connection(c, (int)w);
            return;
        }
        if (w == 0) {
            return;
        }
        mqttc_engine_consume(&c->eng, (size_t)w, now);
    }
}

static void read_input(mqttc_client *c, uint32_t now)
{
    int turns;
    if (grow_buffers(c) < 0) {
        lose_connection(c, MQTTC_ERR_NO_MEMORY);
        return;
    }
    c->activity++;
    for (turns = 0; turns < READS_PER_TURN && c->tr && !c->engine_closed; turns++) {
        size_t room;
        uint8_t *dst = mqttc_engine_rx_space(&c->eng, &room);
        long r;
        if (room == 0) {
            return;
        }
        r = c->tr->vt->read(c->tr, dst, room);
        if (r < 0) {
            lose_connection(c, (int)r);
            return;
        }
        if (r == 0) {
            return;
        }
        mqttc_engine_rx_commit(&c->eng, (size_t)r, now);
        if ((size_t)r < room) {
            return; /* drained the socket */
        }
    }
}

/* Requests made by other threads (or the callback) since the last turn. */
static void serve_requests(mqttc_client *c, uint32_t now)
{
    if (c->disconnect_now) {
        c->disconnect_now = false;
        if (mqttc_engine_state(&c->eng) == MQTTC_STATE_OFFLINE) {
            close_transport(c);
            c->state = MQTTC_CLIENT_IDLE;
        } else {
            mqttc_engine_disconnect(&c->eng);
        }
    }
    if (c->reconnect_now) {
        bool was_ready = c->state == MQTTC_CLIENT_READY;
        c->reconnect_now = false;
        if (mqttc_engine_state(&c->eng) != MQTTC_STATE_OFFLINE) {
            mqttc_engine_connection_lost(&c->eng, MQTTC_ERR_CONNECTION_LOST);
            c->engine_closed = false;
        }
        close_transport(c);
        c->connect_now = true;
        c->state = MQTTC_CLIENT_CONNECTING;
        if (was_ready) { /* the application ended this session */
            mqttc_client_event ev;
            memset(&ev, 0, sizeof ev);
            ev.type = MQTTC_CLIENT_EV_DISCONNECTED;
            ev.u.disconnected.will_reconnect = true;
            dispatch(c, &ev);
        }
    }
    if (c->connect_now) {
        c->connect_now = false;
        c->tries_in_cycle = 0;
        start_attempt(c, now);
    }
}

/* Input the transport already holds (e.g. decrypted TLS): poll() would not
 * report it, so the loop must read without waiting. */
static bool input_pending(mqttc_client *c)
{
    size_t room;
    if (c->tr == NULL || c->tr->vt->pending == NULL || c->state == MQTTC_CLIENT_CONNECTING ||
        mqttc_engine_state(&c->eng) == MQTTC_STATE_OFFLINE) {
        return false;
    }
    mqttc_engine_rx_space(&c->eng, &room);
    return room > 0 && c->tr->vt->pending(c->tr) > 0;
}

/* One turn of the loop: `ready` says what the descriptor is ready for. */
static void turn(mqttc_client *c, int ready)
{
    uint32_t now = now_ms();
    serve_requests(c, now);
    if (c->state == MQTTC_CLIENT_WAITING && (int32_t)(now - c->retry_at) >= 0 && c->want_connect) {
        start_attempt(c, now);
    }
    if (c->state == MQTTC_CLIENT_CONNECTING && c->tr != NULL) {
        int rc = c->tr->vt->connect(c->tr);
        if (rc == 0) {
            transport_up(c, now);
        } else if (rc < 0) {
            attempt_failed(c, rc, now);
        } else if ((uint32_t)(now - c->attempt_start) >= c->cfg.connect_timeout_ms) {
            attempt_failed(c, MQTTC_ERR_CONNECT_TIMEOUT, now);
        }
    }
    if (c->tr != NULL && mqttc_engine_state(&c->eng) != MQTTC_STATE_OFFLINE) {
        if ((ready & MQTTC_WANT_READ) || input_pending(c)) {
            read_input(c, now);
        }
        if (!c->engine_closed) {
            mqttc_engine_tick(&c->eng, now);
        }
        flush(c, now);
    }
    if (c->engine_closed) {
        /* Completions that arrived before the close are reported before it,
         * so events keep the order in which things happened. */
        deliver_done(c);
        session_closed(c, now);
    }
    deliver_done(c);
    if (c->activity != c->idle_seen) {
        c->idle_seen = c->activity;
        c->idle_since = now;
    } else if ((c->pool != NULL || c->rx != NULL) && (uint32_t)(now - c->idle_since) >= IDLE_MS) {
        trim_pool(c); /* at the loop's next wake-up: keepalive at the latest */
        shrink_buffers(c);
    }
}

static int want_events(mqttc_client *c)
{
    int w = 0;
    size_t room;
    if (c->tr == NULL) {
        return 0;
    }
    if (c->state == MQTTC_CLIENT_CONNECTING) {
        return c->tr->vt->want(c->tr);
    }
    mqttc_engine_rx_space(&c->eng, &room);
    if (room > 0) {
        w |= MQTTC_WANT_READ;
    }
    if (mqttc_engine_want_write(&c->eng)) {
        w |= MQTTC_WANT_WRITE;
    }
    return w | c->tr->vt->want(c->tr);
}

/* Milliseconds until the loop must run even without I/O; -1 for never. */
static int timeout_ms(mqttc_client *c)
{
    uint32_t now = now_ms(), t = MQTTC_NO_TIMEOUT;
    if (c->connect_now || c->reconnect_now || c->disconnect_now || c->done_head != NULL ||
        input_pending(c)) {
        return 0;
    }
    switch (c->state) {
    case MQTTC_CLIENT_CONNECTING: {
        uint32_t gone = now - c->attempt_start;
        t = gone >= c->cfg.connect_timeout_ms ? 0 : c->cfg.connect_timeout_ms - gone;
        break;
    }
    case MQTTC_CLIENT_HANDSHAKE:
    case MQTTC_CLIENT_READY:
        t = mqttc_engine_next_timeout(&c->eng, now);
        break;
    case MQTTC_CLIENT_WAITING:
        t = (int32_t)(c->retry_at - now) <= 0 ? 0 : c->retry_at - now;
        break;
    default:
        break;
    }
    if ((c->state == MQTTC_CLIENT_READY || c->state == MQTTC_CLIENT_HANDSHAKE) &&
        (c->pool != NULL || (c->rx != NULL && mqttc_engine_idle(&c->eng)))) {
        /* wake up to free what an idle client need not hold */
        uint32_t since = now - c->idle_since;
        uint32_t left = c->activity != c->idle_seen ? IDLE_MS
                        : since >= IDLE_MS          ? 0
                                                    : IDLE_MS - since;
        t = left < t ? left : t;
    }
    return t == MQTTC_NO_TIMEOUT ? -1 : (t > 0x7FFFFFFF ? 0x7FFFFFFF : (int)t);
}

/* Poll the connection and the wake pipe (lock released while waiting). */
static int wait_io(mqttc_client *c, int timeout)
{
    struct pollfd p[2];
    int n = 0, fd = c->tr ? c->tr->vt->fd(c->tr) : -1, ready = 0, want = want_events(c);
    char drain[64];
    p[n].fd = c->wake[0];
    p[n].events = POLLIN;
    n++;
    if (fd >= 0 && want) {
        p[n].fd = fd;
        p[n].events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                              ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
        n++;
    }
    p[0].revents = p[1].revents = 0;
    c->sleeping = true;
    pthread_mutex_unlock(&c->lock);
    if (poll(p, (nfds_t)n, timeout) < 0 && errno != EINTR) {
        ready = 0;
    }
    pthread_mutex_lock(&c->lock);
    c->sleeping = false;
    if (p[0].revents) {
        while (read(c->wake[0], drain, sizeof drain) > 0) {
        }
    }
    if (n > 1) {
        ready |= (p[1].revents & (POLLIN | POLLHUP | POLLERR)) ? MQTTC_WANT_READ : 0;
        ready |= (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) ? MQTTC_WANT_WRITE : 0;
    }
    return ready;
}

/* ---- teardown ------------------------------------------------------------ */

static void free_msg(void *user, mqttc_message *m)
{
    (void)user;
    free(m);
}

static void free_req(void *user, mqttc_request *r)
{
    (void)user;
    free(r);
}

static void free_client(mqttc_client *c)
{
    size_t i;
    c->tearing_down = true;
    c->destroy_requested = true; /* no more events */
    close_transport(c);
    if (c->eng.cfg.on_event == on_engine_event) {
        mqttc_engine_connection_lost(&c->eng, MQTTC_ERR_ABORTED);
        deliver_done(c);
        mqttc_engine_abandon(&c->eng, free_msg, free_req, NULL);
    }
    for (i = 0; i < c->sub_count; i++) {
        free(c->subs[i].filter);
    }
    if (c->wake[0] >= 0) {
        close(c->wake[0]);
        close(c->wake[1]);
    }
    free_pool(c);
    free(c->subs);
    free(c->big);
    free(c->rx);
    free(c->tx);
    free(c->inbound);
    free(c->inbound_bits);
    free(c->servers);
    free(c->strings);
    free(c->alpn);
    free(c);
}

/* Best effort on the way out: a DISCONNECT if connected, one write. */
static void goodbye(mqttc_client *c)
{
    uint32_t left = mqttc_engine_queued(&c->eng);
    if (left > 0) {
        logf_(c, MQTTC_LOG_WARN, "destroyed with %u message(s) not completed", (unsigned)left);
    }
    if (c->tr != NULL && mqttc_engine_state(&c->eng) == MQTTC_STATE_CONNECTED) {
        uint32_t start = now_ms();
        mqttc_engine_disconnect(&c->eng);
        /* Write what is queued and the DISCONNECT, for at most LINGER_MS. */
        while (mqttc_engine_state(&c->eng) == MQTTC_STATE_CLOSING && !c->engine_closed &&
               now_ms() - start < LINGER_MS) {
            struct pollfd p;
            flush(c, now_ms());
            if (mqttc_engine_state(&c->eng) != MQTTC_STATE_CLOSING || c->tr == NULL) {
                break;
            }
            p.fd = c->tr->vt->fd(c->tr);
            p.events = POLLOUT;
            p.revents = 0;
            poll(&p, 1, 10);
        }
        if (c->engine_closed && c->close_reason == 0) {
            linger_close(c);
        }
    }
}

static void *thread_main(void *arg)
{
    mqttc_client *c = arg;
    bool self_destroy;
    pthread_mutex_lock(&c->lock);
    c->loop_owner = pthread_self();
    while (!c->stop && !c->destroy_requested) {
        int ready = wait_io(c, timeout_ms(c));
        if (c->stop || c->destroy_requested) {
            break;
        }
        turn(c, ready);
    }
    goodbye(c);
    self_destroy = c->destroy_requested;
    pthread_mutex_unlock(&c->lock);
    if (self_destroy) { /* destroyed from its own callback: nobody joins us */
        pthread_detach(pthread_self());
        pthread_mutex_destroy(&c->lock);
        free_client(c);
    }
    return NULL;
}

/* ---- public API ---------------------------------------------------------- */

void mqttc_client_destroy(mqttc_client *c)
{
    bool join;
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    if (c->dispatching && pthread_equal(pthread_self(), c->loop_owner)) {
        c->destroy_requested = true; /* freed when the callback returns */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    c->stop = true;
    c->sleeping = true; /* force the wake-up byte */
    wake(c);
    join = c->thread_started;
    pthread_mutex_unlock(&c->lock);
    if (join) {
        pthread_join(c->thread, NULL);
    } else {
        pthread_mutex_lock(&c->lock);
        goodbye(c);
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_destroy(&c->lock);
    free_client(c);
}

int mqttc_client_connect(mqttc_client *c)
{
    int rc = 0;
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&c->lock);
    if (c->want_connect && c->state != MQTTC_CLIENT_IDLE) {
        rc = MQTTC_ERR_BAD_STATE;
    } else {
        c->want_connect = true;
        c->connect_now = true;
        c->state = MQTTC_CLIENT_CONNECTING;
        if (c->cfg.run_mode == MQTTC_RUN_THREAD && !c->thread_started) {
            if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
                c->want_connect = c->connect_now = false;
                c->state = MQTTC_CLIENT_IDLE;
                rc = MQTTC_ERR_THREAD;
            } else {
                c->thread_started = true;
            }
        }
        wake(c);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int mqttc_client_disconnect(mqttc_client *c)
{
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&c->lock);
    c->want_connect = false;
    c->connect_now = c->reconnect_now = false;
    c->disconnect_now = true;
    wake(c);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

int mqttc_client_reconnect(mqttc_client *c)
{
    int rc = 0;
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&c->lock);
    c->want_connect = true;
    c->disconnect_now = false;
    c->reconnect_now = true;
    if (c->cfg.run_mode == MQTTC_RUN_THREAD && !c->thread_started) {
        if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
            rc = MQTTC_ERR_THREAD;
        } else {
            c->thread_started = true;
        }
    }
    wake(c);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int mqttc_client_publish(mqttc_client *c, const char *topic, const void *payload, size_t len,
                         int qos, bool retain)
{
    size_t tlen;
    client_msg *cm;
    int rc;
    if (c == NULL || topic == NULL || (payload == NULL && len > 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (qos < 0 || qos > 2) {
        return MQTTC_ERR_BAD_QOS;
    }
    tlen = strlen(topic);
    if (tlen > 65535) {
        return MQTTC_ERR_BAD_TOPIC;
    }
    pthread_mutex_lock(&c->lock);
    cm = new_msg(c, topic, tlen, payload, len, qos, retain);
    if (cm == NULL) {
        pthread_mutex_unlock(&c->lock);
        return !c->cfg.preallocate           ? MQTTC_ERR_NO_MEMORY
               : tlen + 1 + len > c->slot     ? MQTTC_ERR_TOO_LARGE
                                              : MQTTC_ERR_QUEUE_FULL;
    }
    c->activity++;
    rc = grow_buffers(c); /* the engine checks the packet against them */
    if (rc == 0) {
        rc = mqttc_engine_publish(&c->eng, &cm->m);
    }
    if (rc < 0) {
        int e = errno; /* a store failure's reason, for the caller */
        release_msg(c, cm);
        errno = e;
    } else if (mqttc_engine_want_write(&c->eng) || c->done_head != NULL) {
        wake(c);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static int subscribe_common(mqttc_client *c, mqttc_request_kind kind, const mqttc_topic_qos *items,
                            const char *const *filters, size_t n)
{
    int rc;
    client_req *q;
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    q = make_req(kind, items, filters, n, &rc);
    if (q == NULL) {
        return rc;
    }
    pthread_mutex_lock(&c->lock);
    rc = submit_req(c, q);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int mqttc_client_subscribe(mqttc_client *c, const char *filter, int qos)
{
    mqttc_topic_qos item;
    item.filter = filter;
    item.qos = qos;
    return subscribe_common(c, MQTTC_REQ_SUBSCRIBE, &item, NULL, 1);
}

int mqttc_client_subscribe_many(mqttc_client *c, const mqttc_topic_qos *items, size_t n)
{
    return subscribe_common(c, MQTTC_REQ_SUBSCRIBE, items, NULL, n);
}

int mqttc_client_unsubscribe(mqttc_client *c, const char *filter)
{
    return subscribe_common(c, MQTTC_REQ_UNSUBSCRIBE, NULL, &filter, 1);
}

int mqttc_client_unsubscribe_many(mqttc_client *c, const char *const *filters, size_t n)
{
    return subscribe_common(c, MQTTC_REQ_UNSUBSCRIBE, NULL, filters, n);
}

mqttc_client_state mqttc_client_state_get(mqttc_client *c)
{
    mqttc_client_state s;
    if (c == NULL) {
        return MQTTC_CLIENT_IDLE;
    }
    pthread_mutex_lock(&c->lock);
    s = c->state;
    pthread_mutex_unlock(&c->lock);
    return s;
}

bool mqttc_client_ready(mqttc_client *c)
{
    return mqttc_client_state_get(c) == MQTTC_CLIENT_READY;
}

uint32_t mqttc_client_queued(mqttc_client *c)
{
    uint32_t n;
    if (c == NULL) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    n = mqttc_engine_queued(&c->eng);
    pthread_mutex_unlock(&c->lock);
    return n;
}

void mqttc_client_set_debug(mqttc_client *c, bool on)
{
    if (c == NULL) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->cfg.log_level = on ? MQTTC_LOG_DEBUG : MQTTC_LOG_WARN;
    pthread_mutex_unlock(&c->lock);
}

/* ---- caller-driven mode -------------------------------------------------- */

/* Enter the caller's loop; false if not allowed (thread mode, or nested). */
static bool enter_loop(mqttc_client *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->cfg.run_mode != MQTTC_RUN_CALLER || c->looping) {
        pthread_mutex_unlock(&c->lock);
        return false;
    }
    c->looping = true;
    c->loop_owner = pthread_self();
    return true;
}

/* Leave it; frees the client if it was destroyed from a callback. */
static void leave_loop(mqttc_client *c)
{
    bool gone = c->destroy_requested;
    c->looping = false;
    if (gone) {
        goodbye(c);
    }
    pthread_mutex_unlock(&c->lock);
    if (gone) {
        pthread_mutex_destroy(&c->lock);
        free_client(c);
    }
}

int mqttc_client_loop(mqttc_client *c, int timeout)
{
    int t, ready;
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (!enter_loop(c)) {
        return MQTTC_ERR_BAD_STATE;
    }
    if (open_wake(c) < 0) {
        leave_loop(c);
        return MQTTC_ERR_NO_MEMORY;
    }
    t = timeout_ms(c);
    if (timeout >= 0 && (t < 0 || timeout < t)) {
        t = timeout;
    }
    ready = wait_io(c, t);
    turn(c, ready);
    leave_loop(c);
    return 0;
}

int mqttc_client_process(mqttc_client *c, int ready)
{
    if (c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (!enter_loop(c)) {
        return MQTTC_ERR_BAD_STATE;
    }
    turn(c, ready);
    leave_loop(c);
    return 0;
}

int mqttc_client_fd(mqttc_client *c)
{
    int fd;
    if (c == NULL) {
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    fd = c->tr ? c->tr->vt->fd(c->tr) : -1;
    pthread_mutex_unlock(&c->lock);
    return fd;
}

int mqttc_client_want(mqttc_client *c)
{
    int w;
    if (c == NULL) {
        return 0;
    }
    pthread_mutex_lock(&c->lock);
    w = want_events(c);
    pthread_mutex_unlock(&c->lock);
    return w;
}

int mqttc_client_next_timeout(mqttc_client *c)
{
    int t;
    if (c == NULL) {
        return -1;
    }
    pthread_mutex_lock(&c->lock);
    t = timeout_ms(c);
    pthread_mutex_unlock(&c->lock);
    return t;
}
