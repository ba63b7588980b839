/* Helpers for the client integration tests (itest.h). */
#define _GNU_SOURCE

#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DRIVE_SLICE_MS 20
#define WAIT_SLICE_MS 10

/* ---- the recorder -------------------------------------------------------- */

static it_rec *rec_new(const char *name)
{
    it_rec *r = calloc(1, sizeof *r);
    pthread_condattr_t ca;
    if (r == NULL) {
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(r->name, sizeof r->name, "%s", name ? name : "(anonymous)");
    r->keep_messages = true;
    return r;
}

static void rec_free(it_rec *r)
{
    size_t i;
    if (r == NULL) {
        return;
    }
    for (i = 0; i < r->nmsgs; i++) {
        free(r->msgs[i].topic);
        free(r->msgs[i].payload);
    }
    free(r->msgs);
    free(r->pub_ids);
    free(r->pub_qos);
    free(r->drop_ids);
    free(r->drop_reasons);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* Grow an array of `elem`-byte items to hold one more; false on OOM. */
static bool grow(void **p, size_t *cap, size_t n, size_t elem)
{
    void *q;
    size_t ncap;
    if (n < *cap) {
        return true;
    }
    ncap = *cap ? *cap * 2 : 64;
    q = realloc(*p, ncap * elem);
    if (q == NULL) {
        return false;
    }
    *p = q;
    *cap = ncap;
    return true;
}

static void record_message(it_rec *r, const mqttc_client_event *ev)
{
    it_msg *m;
    size_t cap;
    r->message_bytes += ev->u.message.payload_len;
    if (!r->keep_messages) {
        return;
    }
    cap = r->cap_msgs;
    if (!grow((void **)&r->msgs, &cap, r->nmsgs, sizeof *r->msgs)) {
        r->oom = true;
        return;
    }
    r->cap_msgs = cap;
    m = &r->msgs[r->nmsgs];
    memset(m, 0, sizeof *m);
    m->topic = malloc(ev->u.message.topic_len + 1);
    if (m->topic == NULL) {
        r->oom = true;
        return;
    }
    memcpy(m->topic, ev->u.message.topic, ev->u.message.topic_len);
    m->topic[ev->u.message.topic_len] = '\0';
    if (ev->u.message.payload_len > 0) {
        m->payload = malloc(ev->u.message.payload_len);
        if (m->payload == NULL) {
            free(m->topic);
            r->oom = true;
            return;
        }
        memcpy(m->payload, ev->u.message.payload, ev->u.message.payload_len);
    }
    m->len = ev->u.message.payload_len;
    m->offset = ev->u.message.offset;
    m->total = ev->u.message.total;
    m->msg_id = ev->u.message.msg_id;
    m->qos = ev->u.message.qos;
    m->retain = ev->u.message.retain;
    m->dup = ev->u.message.dup;
    r->nmsgs++;
}

static void record_published(it_rec *r, const mqttc_client_event *ev)
{
    size_t cap_ids = r->cap_pub, cap_qos = r->cap_pub;
    if (!grow((void **)&r->pub_ids, &cap_ids, r->npub, sizeof *r->pub_ids) ||
        !grow((void **)&r->pub_qos, &cap_qos, r->npub, sizeof *r->pub_qos)) {
        r->oom = true;
        return;
    }
    r->cap_pub = cap_ids < cap_qos ? cap_ids : cap_qos;
    r->pub_ids[r->npub] = ev->u.published.msg_id;
    r->pub_qos[r->npub] = ev->u.published.qos;
    r->npub++;
}

static void record_dropped(it_rec *r, const mqttc_client_event *ev)
{
    size_t cap_ids = r->cap_drop, cap_rs = r->cap_drop;
    if (!grow((void **)&r->drop_ids, &cap_ids, r->ndrop, sizeof *r->drop_ids) ||
        !grow((void **)&r->drop_reasons, &cap_rs, r->ndrop, sizeof *r->drop_reasons)) {
        r->oom = true;
        return;
    }
    r->cap_drop = cap_ids < cap_rs ? cap_ids : cap_rs;
    r->drop_ids[r->ndrop] = ev->u.dropped.msg_id;
    r->drop_reasons[r->ndrop] = ev->u.dropped.reason;
    r->ndrop++;
}

static void record(it_rec *r, const mqttc_client_event *ev)
{
    size_t i;
    if ((unsigned)ev->type < IT_NTYPES) {
        r->count[ev->type]++;
    }
    if (r->norder < IT_MAX_ORDER) {
        r->order[r->norder++] = ev->type;
    }
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        r->session_present = ev->u.connected.session_present;
        break;
    case MQTTC_CLIENT_EV_DISCONNECTED:
        r->disc_reason = ev->u.disconnected.reason;
        r->disc_will_reconnect = ev->u.disconnected.will_reconnect;
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        r->sub_msg_id = ev->u.subscribed.msg_id;
        r->sub_count = ev->u.subscribed.count;
        for (i = 0; i < ev->u.subscribed.count && i < IT_MAX_GRANTED; i++) {
            r->granted[i] = ev->u.subscribed.granted[i];
        }
        break;
    case MQTTC_CLIENT_EV_UNSUBSCRIBED:
        r->unsub_msg_id = ev->u.unsubscribed.msg_id;
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        record_message(r, ev);
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
        record_published(r, ev);
        break;
    case MQTTC_CLIENT_EV_DROPPED:
        record_dropped(r, ev);
        break;
    case MQTTC_CLIENT_EV_ERROR:
        if (r->nerrors < IT_MAX_ERRORS) {
            r->errors[r->nerrors].code = ev->u.error.code;
            r->errors[r->nerrors].kind = ev->u.error.kind;
            r->errors[r->nerrors].connack_code = ev->u.error.connack_code;
            r->nerrors++;
        }
        break;
    case MQTTC_CLIENT_EV_PONG:
        break;
    }
}

static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    it_rec *r = user;
    it_hook hook;
    void *hook_user;
    pthread_mutex_lock(&r->mu);
    record(r, ev);
    hook = r->hook;
    hook_user = r->hook_user;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (hook != NULL) {
        hook(c, ev, hook_user);
    }
}

static void on_log(mqttc_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    const it_rec *r = user;
    fprintf(stderr, "[%llu %s %s] %s\n", (unsigned long long)broker_now_ms(),
            r ? r->name : "?", (unsigned)level < 4 ? names[level] : "?", msg);
}

/* ---- the itest ----------------------------------------------------------- */

itest *it_new_no_broker(void)
{
    return calloc(1, sizeof(itest));
}

itest *it_new(const broker_opts *o)
{
    itest *t = it_new_no_broker();
    if (t == NULL) {
        return NULL;
    }
    if (broker_start(&t->b, o) != 0) {
        free(t);
        return NULL;
    }
    t->has_broker = true;
    return t;
}

void it_free(itest *t)
{
    size_t i;
    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->n; i++) {
        if (t->cl[i].rec != NULL && t->cl[i].rec->held_by_test) {
            it_unlock(t->cl[i].rec); /* a failed assertion left it locked */
        }
    }
    for (i = t->n; i-- > 0;) {
        if (t->cl[i].c != NULL) {
            mqttc_client_destroy(t->cl[i].c);
            t->cl[i].c = NULL;
        }
    }
    for (i = 0; i < t->n; i++) {
        rec_free(t->cl[i].rec);
    }
    if (t->has_broker) {
        broker_cleanup(&t->b);
    }
    free(t);
}

void it_config(itest *t, mqttc_client_config *cfg, char *uri_buf, const char *client_id)
{
    mqttc_client_config_init(cfg);
    if (t->has_broker) {
        snprintf(uri_buf, 64, "mqtt://127.0.0.1:%u", (unsigned)t->b.port);
        cfg->uri = uri_buf;
    }
    cfg->client_id = client_id;
}

int it_client(itest *t, mqttc_client_config *cfg, it_hook hook, void *hook_user,
              mqttc_client **out, it_rec **rec)
{
    it_rec *r;
    int rc;
    *out = NULL;
    if (t->n >= IT_MAX_CLIENTS) {
        return MQTTC_ERR_NO_MEMORY;
    }
    r = rec_new(cfg->client_id);
    if (r == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    r->hook = hook;
    r->hook_user = hook_user;
    cfg->on_event = on_event;
    cfg->user = r;
    if (getenv("MQTTC_TEST_DEBUG") != NULL) {
        cfg->on_log = on_log;
        cfg->log_user = r;
        cfg->log_level = MQTTC_LOG_DEBUG;
    }
    rc = mqttc_client_create(cfg, out);
    if (rc != 0) {
        rec_free(r);
        return rc;
    }
    t->cl[t->n].c = *out;
    t->cl[t->n].rec = r;
    t->n++;
    if (rec != NULL) {
        *rec = r;
    }
    return 0;
}

void it_forget(itest *t, mqttc_client *c)
{
    size_t i;
    for (i = 0; i < t->n; i++) {
        if (t->cl[i].c == c) {
            t->cl[i].c = NULL;
        }
    }
}

void it_destroy(itest *t, mqttc_client *c)
{
    it_forget(t, c);
    mqttc_client_destroy(c);
}

void it_lock(it_rec *r)
{
    pthread_mutex_lock(&r->mu);
    r->held_by_test = true;
}

void it_unlock(it_rec *r)
{
    r->held_by_test = false;
    pthread_mutex_unlock(&r->mu);
}

/* ---- waiting ------------------------------------------------------------- */

static struct timespec deadline_ts(uint64_t deadline_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(deadline_ms / 1000u);
    ts.tv_nsec = (long)(deadline_ms % 1000u) * 1000000L;
    return ts;
}

bool it_wait(it_rec *r, mqttc_client *drive, it_pred pred, void *arg, int timeout_ms)
{
    uint64_t deadline = broker_now_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
    bool ok;
    if (drive == NULL) {
        /* Events wake us at once; the slices re-check predicates that look at
         * more than the recorder (the client's state, say) between events. */
        pthread_mutex_lock(&r->mu);
        while (!(ok = pred(r, arg))) {
            uint64_t now = broker_now_ms(), wake;
            struct timespec ts;
            if (now >= deadline) {
                break;
            }
            wake = deadline - now < WAIT_SLICE_MS ? deadline : now + WAIT_SLICE_MS;
            ts = deadline_ts(wake);
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        pthread_mutex_unlock(&r->mu);
        return ok;
    }
    for (;;) {
        uint64_t now;
        pthread_mutex_lock(&r->mu);
        ok = pred(r, arg);
        pthread_mutex_unlock(&r->mu);
        now = broker_now_ms();
        if (ok || now >= deadline) {
            return ok;
        }
        mqttc_client_loop(drive, (int)(deadline - now < DRIVE_SLICE_MS ? deadline - now
                                                                       : DRIVE_SLICE_MS));
    }
}

struct count_arg {
    mqttc_client_event_type type;
    size_t n;
};

static bool count_reached(it_rec *r, void *arg)
{
    const struct count_arg *a = arg;
    return r->count[a->type] >= a->n;
}

bool it_wait_count(it_rec *r, mqttc_client *drive, mqttc_client_event_type t, size_t n,
                   int timeout_ms)
{
    struct count_arg a;
    a.type = t;
    a.n = n;
    return it_wait(r, drive, count_reached, &a, timeout_ms);
}

size_t it_count(it_rec *r, mqttc_client_event_type t)
{
    size_t n;
    pthread_mutex_lock(&r->mu);
    n = r->count[t];
    pthread_mutex_unlock(&r->mu);
    return n;
}

void it_drive_for(mqttc_client *c, int ms)
{
    uint64_t end = broker_now_ms() + (uint64_t)ms;
    uint64_t now;
    while ((now = broker_now_ms()) < end) {
        mqttc_client_loop(c, (int)(end - now < DRIVE_SLICE_MS ? end - now : DRIVE_SLICE_MS));
    }
}

long it_find_msg(const it_rec *r, const char *topic, size_t nth)
{
    size_t i;
    for (i = 0; i < r->nmsgs; i++) {
        if (strcmp(r->msgs[i].topic, topic) == 0 && nth-- == 0) {
            return (long)i;
        }
    }
    return -1;
}

size_t it_count_topic(it_rec *r, const char *topic)
{
    size_t i, n = 0;
    pthread_mutex_lock(&r->mu);
    for (i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, topic) == 0;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

void it_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    size_t i;
    for (i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x ^ (uint32_t)i);
    }
}

/* ---- a raw MQTT connection ----------------------------------------------- */

static bool read_exact(int fd, uint8_t *buf, size_t len, uint64_t deadline)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p;
        uint64_t now = broker_now_ms();
        ssize_t n;
        if (now >= deadline) {
            return false;
        }
        p.fd = fd;
        p.events = POLLIN;
        if (poll(&p, 1, (int)(deadline - now)) <= 0) {
            continue;
        }
        n = read(fd, buf + got, len - got);
        if (n <= 0) {
            return false;
        }
        got += (size_t)n;
    }
    return true;
}

int it_raw_connect(uint16_t port, const mqttc_connect *conn, int timeout_ms)
{
    uint8_t pkt[1024];
    uint8_t ack[4];
    struct sockaddr_in a;
    int fd, len;
    uint64_t deadline = broker_now_ms() + (uint64_t)timeout_ms;

    len = mqttc_encode_connect(pkt, sizeof pkt, conn);
    if (len < 0) {
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        write(fd, pkt, (size_t)len) != (ssize_t)len || !read_exact(fd, ack, 4, deadline) ||
        ack[0] != 0x20 || ack[1] != 2 || ack[3] != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- deadlock detection -------------------------------------------------- */

struct bounded {
    void (*fn)(void *);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, abandoned;
};

static void *bounded_main(void *p)
{
    struct bounded *b = p;
    bool abandoned;
    b->fn(b->arg);
    pthread_mutex_lock(&b->mu);
    b->done = true;
    abandoned = b->abandoned;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (abandoned) {
        free(b); /* the waiter gave up on us and left the record to us */
    }
    return NULL;
}

bool it_run_bounded(void (*fn)(void *), void *arg, int timeout_ms)
{
    struct bounded *b = calloc(1, sizeof *b);
    pthread_condattr_t ca;
    pthread_t th;
    struct timespec ts;
    bool done;
    if (b == NULL) {
        return false;
    }
    b->fn = fn;
    b->arg = arg;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&th, NULL, bounded_main, b) != 0) {
        free(b);
        return false;
    }
    ts = deadline_ts(broker_now_ms() + (uint64_t)timeout_ms);
    pthread_mutex_lock(&b->mu);
    while (!b->done) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    done = b->done;
    b->abandoned = !done;
    pthread_mutex_unlock(&b->mu);
    if (done) {
        pthread_join(th, NULL);
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
    } else {
        pthread_detach(th);
    }
    return done;
}
