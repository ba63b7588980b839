/* A scripted MQTT broker around one mqttc_engine, and a scripted broker on a
 * loopback socket; see fake_broker.h. */
#define _POSIX_C_SOURCE 200809L /* sockets, poll, clock_gettime, nanosleep */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fake_broker.h"

/* Upper bounds that keep every loop finite. */
#define FB_MAX_WRITE_CALLS 1000000u
#define FB_MAX_DECODE_STEPS 100000u

/* ---- event recorder --------------------------------------------------- */

static bool fb_points_into(const void *p, const uint8_t *buf, size_t cap)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)buf;
    return a >= b && a < b + cap;
}

static void fb_copy_message(fake_broker *fb, fb_event *r, const mqttc_publish *m)
{
    size_t tl = m->topic.len < FB_TOPIC_MAX - 1 ? m->topic.len : FB_TOPIC_MAX - 1;
    if (m->topic.data != NULL)
        memcpy(r->topic, m->topic.data, tl);
    r->topic[tl] = '\0';
    r->topic_len = m->topic.len;
    r->payload_len = m->payload_len;
    if (m->payload != NULL && m->payload_len > 0) {
        size_t pl = m->payload_len < FB_PAYLOAD_MAX ? m->payload_len : FB_PAYLOAD_MAX;
        memcpy(r->payload, m->payload, pl);
        r->payload_in_rx_buf = fb_points_into(m->payload, fb->cfg.rx_buf, fb->cfg.rx_cap);
        if (m->offset + m->payload_len <= FB_ASSEMBLY_CAP) {
            memcpy(fb->assembled + m->offset, m->payload, m->payload_len);
            if (m->offset + m->payload_len > fb->assembled_end)
                fb->assembled_end = m->offset + m->payload_len;
        }
    }
    r->offset = m->offset;
    r->total_len = m->total_len;
    r->qos = m->qos;
    r->retain = m->retain;
    r->dup = m->dup;
    r->packet_id = m->packet_id;
}

static void fb_record(void *user, const mqttc_event *ev)
{
    fake_broker *fb = user;
    if (fb->event_count >= FB_MAX_EVENTS) {
        fb->events_lost++;
    } else {
        fb_event *r = &fb->events[fb->event_count++];
        memset(r, 0, sizeof *r);
        r->type = ev->type;
        switch (ev->type) {
        case MQTTC_EV_CONNECTED:
            r->session_present = ev->u.connected.session_present;
            break;
        case MQTTC_EV_CLOSED:
            r->reason = ev->u.closed.reason;
            break;
        case MQTTC_EV_MESSAGE:
            fb_copy_message(fb, r, &ev->u.message);
            break;
        case MQTTC_EV_RELEASED:
            r->msg = ev->u.released.msg;
            r->packet_id = r->msg->packet_id;
            break;
        case MQTTC_EV_PUBREL:
            r->packet_id = ev->u.pubrel.packet_id;
            break;
        case MQTTC_EV_PUBLISH_DONE:
            r->msg = ev->u.publish_done.msg;
            r->status = ev->u.publish_done.status;
            r->packet_id = r->msg != NULL ? r->msg->packet_id : 0;
            break;
        case MQTTC_EV_SUBACK:
            r->req = ev->u.suback.req;
            r->count = ev->u.suback.count;
            r->packet_id = r->req != NULL ? r->req->packet_id : 0;
            if (ev->u.suback.codes != NULL) {
                size_t n = r->count < FB_MAX_CODES ? r->count : FB_MAX_CODES;
                memcpy(r->codes, ev->u.suback.codes, n);
            }
            break;
        case MQTTC_EV_UNSUBACK:
            r->req = ev->u.unsuback.req;
            r->packet_id = r->req != NULL ? r->req->packet_id : 0;
            break;
        case MQTTC_EV_PONG:
            break;
        }
    }
    if (fb->hook != NULL)
        fb->hook(fb, ev);
}

/* ---- set-up ----------------------------------------------------------- */

void fb_reset_capture(fake_broker *fb)
{
    fb->capture_len = 0;
    fb->capture_read = 0;
    fb->written_total = 0;
    assert_int_equal(mqttc_decoder_init(&fb->dec, fb->dec_buf, sizeof fb->dec_buf, 0, false), 0);
    fb->dec.decode = mqttc_decode; /* reads what the client sends */
}

void fb_setup(fake_broker *fb)
{
    memset(fb, 0, sizeof *fb);
    fb->cfg.rx_buf = fb->rx_storage;
    fb->cfg.rx_cap = FB_RX_DEFAULT;
    fb->cfg.tx_buf = fb->tx_storage;
    fb->cfg.tx_cap = FB_TX_DEFAULT;
    fb->cfg.inbound_ids = fb->inbound_storage;
    fb->cfg.inbound_cap = FB_INBOUND_DEFAULT;
    fb->cfg.on_event = fb_record;
    fb->cfg.user = fb;
    fb->connect.client_id.data = "test-client";
    fb->connect.client_id.len = (uint16_t)strlen("test-client");
    fb->connect.clean_session = true;
    fb->now = 1000;
    fb_reset_capture(fb);
}

int fb_init(fake_broker *fb)
{
    assert_true(fb->cfg.rx_cap <= FB_RX_STORAGE || fb->cfg.rx_buf != fb->rx_storage);
    assert_true(fb->cfg.tx_cap <= FB_TX_STORAGE || fb->cfg.tx_buf != fb->tx_storage);
    assert_true(fb->cfg.inbound_cap <= FB_INBOUND_STORAGE ||
                fb->cfg.inbound_ids != fb->inbound_storage);
    return mqttc_engine_init(&fb->engine, &fb->cfg);
}

int fb_start(fake_broker *fb)
{
    fb_reset_capture(fb);
    return mqttc_engine_start(&fb->engine, &fb->connect, fb->now);
}

void fb_connect(fake_broker *fb, bool session_present)
{
    size_t connected_before = fb_count_events(fb, MQTTC_EV_CONNECTED);
    assert_code(fb_start(fb), 0);
    assert_int_equal(mqttc_engine_state(&fb->engine), MQTTC_STATE_CONNECTING);
    fb_expect_sent(fb, MQTTC_CONNECT);
    assert_code(fb_send_connack(fb, session_present, MQTTC_CONNACK_ACCEPTED), 0);
    assert_int_equal(mqttc_engine_state(&fb->engine), MQTTC_STATE_CONNECTED);
    assert_int_equal(fb_count_events(fb, MQTTC_EV_CONNECTED), connected_before + 1);
    const fb_event *ev = fb_find_event(fb, MQTTC_EV_CONNECTED, connected_before);
    assert_non_null(ev);
    assert_int_equal(ev->session_present, session_present);
}

void fb_lose_connection(fake_broker *fb)
{
    mqttc_engine_connection_lost(&fb->engine, MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(mqttc_engine_state(&fb->engine), MQTTC_STATE_OFFLINE);
}

/* ---- clock ------------------------------------------------------------ */

void fb_advance_clock(fake_broker *fb, uint32_t ms)
{
    fb->now += ms; /* unsigned: wraps at 2^32 like a real tick counter */
}

int fb_tick(fake_broker *fb)
{
    return mqttc_engine_tick(&fb->engine, fb->now);
}

uint32_t fb_next_timeout(const fake_broker *fb)
{
    return mqttc_engine_next_timeout(&fb->engine, fb->now);
}

/* ---- client -> broker ------------------------------------------------- */

size_t fb_pending_output(fake_broker *fb)
{
    mqttc_iov iov[MQTTC_ENGINE_SEGMENTS];
    size_t n = mqttc_engine_output(&fb->engine, iov, MQTTC_ENGINE_SEGMENTS);
    assert_true(n <= MQTTC_ENGINE_SEGMENTS);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].len;
    return total;
}

static void fb_capture_append(fake_broker *fb, const void *data, size_t len)
{
    if (fb->capture_len + len > sizeof fb->capture && fb->capture_read > 0) {
        memmove(fb->capture, fb->capture + fb->capture_read, fb->capture_len - fb->capture_read);
        fb->capture_len -= fb->capture_read;
        fb->capture_read = 0;
    }
    if (fb->capture_len + len > sizeof fb->capture)
        fail_msg("fake broker: capture buffer full (%zu bytes unread)", fb->capture_len);
    memcpy(fb->capture + fb->capture_len, data, len);
    fb->capture_len += len;
}

/* One write of at most `max` bytes. Returns bytes written (0: nothing to
 * write) or the negative code from mqttc_engine_consume(). */
static long fb_write_once(fake_broker *fb, size_t max)
{
    mqttc_iov iov[MQTTC_ENGINE_SEGMENTS];
    size_t want = fb->iov_max > 0 && fb->iov_max < MQTTC_ENGINE_SEGMENTS ? fb->iov_max
                                                                          : MQTTC_ENGINE_SEGMENTS;
    size_t n = mqttc_engine_output(&fb->engine, iov, want);
    assert_true(n <= want);
    size_t total = 0;
    for (size_t i = 0; i < n && total < max; i++) {
        size_t take = iov[i].len < max - total ? iov[i].len : max - total;
        if (take == 0)
            continue;
        assert_non_null(iov[i].base);
        fb_capture_append(fb, iov[i].base, take);
        total += take;
    }
    if (total == 0)
        return 0;
    fb->written_total += total;
    int rc = mqttc_engine_consume(&fb->engine, total, fb->now);
    return rc < 0 ? rc : (long)total;
}

static int fb_drain(fake_broker *fb, size_t per_write, size_t limit)
{
    size_t done = 0;
    for (unsigned i = 0; i < FB_MAX_WRITE_CALLS && done < limit; i++) {
        size_t max = limit - done < per_write ? limit - done : per_write;
        long rc = fb_write_once(fb, max);
        if (rc < 0)
            return (int)rc;
        if (rc == 0)
            return 0;
        done += (size_t)rc;
    }
    if (done < limit && mqttc_engine_want_write(&fb->engine))
        fail_msg("fake broker: output never drained");
    return 0;
}

int fb_drain_output(fake_broker *fb)
{
    return fb_drain(fb, fb->tx_one_byte_at_a_time ? 1 : SIZE_MAX, SIZE_MAX);
}

int fb_drain_output_one_byte_at_a_time(fake_broker *fb)
{
    return fb_drain(fb, 1, SIZE_MAX);
}

int fb_drain_output_bytes(fake_broker *fb, size_t max)
{
    return fb_drain(fb, max, max);
}

bool fb_next_sent_packet(fake_broker *fb, mqttc_packet *out)
{
    (void)fb_drain_output(fb); /* a close reason shows in the events */
    for (unsigned i = 0; i < FB_MAX_DECODE_STEPS; i++) {
        int rc = mqttc_decoder_next(&fb->dec, out);
        if (rc < 0)
            fail_msg("fake broker: the client sent undecodable bytes: %s", mqttc_errname(rc));
        if (rc > 0)
            return true;
        if (fb->capture_read == fb->capture_len) {
            fb->capture_read = fb->capture_len = 0;
            return false;
        }
        size_t taken = mqttc_decoder_feed(&fb->dec, fb->capture + fb->capture_read,
                                          fb->capture_len - fb->capture_read);
        if (taken == 0)
            fail_msg("fake broker: decoder takes no bytes (packet over %u bytes?)",
                     FB_DECODER_CAP);
        fb->capture_read += taken;
        if (fb->capture_read == fb->capture_len)
            fb->capture_read = fb->capture_len = 0;
    }
    fail_msg("fake broker: decoding did not finish");
    return false;
}

static const char *fb_type_name(unsigned type)
{
    static const char *const names[16] = {
        "reserved(0)", "CONNECT", "CONNACK", "PUBLISH",     "PUBACK",   "PUBREC",
        "PUBREL",      "PUBCOMP", "SUBSCRIBE", "SUBACK",    "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ",     "PINGRESP", "DISCONNECT", "reserved(15)"};
    return type < 16 ? names[type] : "?";
}

const mqttc_packet *fb_expect_sent(fake_broker *fb, uint8_t type)
{
    if (!fb_next_sent_packet(fb, &fb->pkt))
        fail_msg("expected the client to send %s, it sent nothing", fb_type_name(type));
    if (fb->pkt.type != type)
        fail_msg("expected the client to send %s, it sent %s", fb_type_name(type),
                 fb_type_name(fb->pkt.type));
    return &fb->pkt;
}

void fb_expect_sent_ack(fake_broker *fb, uint8_t type, uint16_t packet_id)
{
    const mqttc_packet *p = fb_expect_sent(fb, type);
    /* MQTT-2.2.2: PUBREL has flags 0010, the other acks 0000. */
    assert_int_equal(p->flags, type == MQTTC_PUBREL ? 2 : 0);
    assert_int_equal(p->remaining_length, 2);
    if (p->u.packet_id != packet_id)
        fail_msg("%s for packet id %u, expected %u", fb_type_name(type), p->u.packet_id,
                 packet_id);
}

const mqttc_publish *fb_expect_sent_publish(fake_broker *fb, const mqttc_message *m,
                                            uint16_t packet_id, int dup)
{
    const mqttc_packet *p = fb_expect_sent(fb, MQTTC_PUBLISH);
    const mqttc_publish *pub = &p->u.publish;
    if (pub->packet_id != packet_id)
        fail_msg("PUBLISH with packet id %u, expected %u", pub->packet_id, packet_id);
    assert_int_equal(pub->topic.len, m->topic.len);
    assert_memory_equal(pub->topic.data, m->topic.data, m->topic.len);
    assert_int_equal(pub->payload_len, m->payload_len);
    assert_int_equal(pub->total_len, m->payload_len);
    assert_int_equal(pub->offset, 0);
    if (m->payload_len > 0)
        assert_memory_equal(pub->payload, m->payload, m->payload_len);
    assert_int_equal(pub->qos, m->qos);
    assert_int_equal(pub->retain, m->retain);
    if (dup != FB_ANY_DUP && pub->dup != (dup != 0))
        fail_msg("PUBLISH id %u has DUP=%d, expected %d", pub->packet_id, pub->dup, dup);
    /* The first byte must agree with the decoded fields (MQTT-3.3.1). */
    assert_int_equal(p->flags, (pub->dup ? 8 : 0) | (m->qos << 1) | (m->retain ? 1 : 0));
    return pub;
}

void fb_expect_nothing_sent(fake_broker *fb)
{
    mqttc_packet p;
    if (fb_next_sent_packet(fb, &p))
        fail_msg("expected no packet, the client sent %s", fb_type_name(p.type));
}

/* ---- broker -> client ------------------------------------------------- */

static int fb_feed(fake_broker *fb, const uint8_t *data, size_t len, fb_rx_mode mode)
{
    size_t off = 0;
    unsigned stalls = 0;
    size_t max_steps = 4 * len + 1000;
    for (size_t step = 0; off < len; step++) {
        if (step > max_steps)
            return FB_ERR_STALLED;
        size_t chunk = mode == FB_RX_ONE_BYTE_AT_A_TIME ? 1 : len - off;
        long taken;
        if (mode == FB_RX_ZERO_COPY) {
            size_t space = 0;
            uint8_t *p = mqttc_engine_rx_space(&fb->engine, &space);
            if (p != NULL && space > 0) {
                size_t n = chunk < space ? chunk : space;
                memcpy(p, data + off, n);
                int rc = mqttc_engine_rx_commit(&fb->engine, n, fb->now);
                taken = rc < 0 ? rc : (long)n;
            } else {
                taken = 0;
            }
        } else {
            taken = mqttc_engine_recv(&fb->engine, data + off, chunk, fb->now);
        }
        if (taken < 0)
            return (int)taken;
        if ((size_t)taken > chunk)
            fail_msg("mqttc_engine_recv took %ld bytes of %zu", taken, chunk);
        off += (size_t)taken;
        if (mqttc_engine_state(&fb->engine) == MQTTC_STATE_OFFLINE)
            return FB_ERR_OFFLINE;
        if ((size_t)taken < chunk) {
            /* Back-pressure: write the output, as a driver would, then retry. */
            if (!mqttc_engine_want_write(&fb->engine) && taken == 0 && ++stalls > 3)
                return FB_ERR_STALLED;
            int rc = fb_drain_output(fb);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int fb_inject(fake_broker *fb, const uint8_t *data, size_t len)
{
    return fb_feed(fb, data, len, fb->rx_mode);
}

int fb_inject_one_byte_at_a_time(fake_broker *fb, const uint8_t *data, size_t len)
{
    return fb_feed(fb, data, len, FB_RX_ONE_BYTE_AT_A_TIME);
}

static int fb_checked_encode(int n, const char *what)
{
    if (n <= 0)
        fail_msg("fake broker: encoding %s failed: %s", what, mqttc_errname(n));
    return n;
}

int fb_send_connack(fake_broker *fb, bool session_present, uint8_t return_code)
{
    int n = fb_checked_encode(
        mqttc_encode_connack(fb->scratch, sizeof fb->scratch, session_present, return_code),
        "CONNACK");
    return fb_inject(fb, fb->scratch, (size_t)n);
}

int fb_send_ack(fake_broker *fb, mqttc_packet_type type, uint16_t packet_id)
{
    int n = fb_checked_encode(mqttc_encode_ack(fb->scratch, sizeof fb->scratch, type, packet_id),
                              fb_type_name(type));
    return fb_inject(fb, fb->scratch, (size_t)n);
}

int fb_send_puback(fake_broker *fb, uint16_t packet_id)
{
    return fb_send_ack(fb, MQTTC_PUBACK, packet_id);
}

int fb_send_pubrec(fake_broker *fb, uint16_t packet_id)
{
    return fb_send_ack(fb, MQTTC_PUBREC, packet_id);
}

int fb_send_pubrel(fake_broker *fb, uint16_t packet_id)
{
    return fb_send_ack(fb, MQTTC_PUBREL, packet_id);
}

int fb_send_pubcomp(fake_broker *fb, uint16_t packet_id)
{
    return fb_send_ack(fb, MQTTC_PUBCOMP, packet_id);
}

int fb_send_unsuback(fake_broker *fb, uint16_t packet_id)
{
    return fb_send_ack(fb, MQTTC_UNSUBACK, packet_id);
}

int fb_send_suback(fake_broker *fb, uint16_t packet_id, const uint8_t *codes, size_t n)
{
    int len = fb_checked_encode(
        mqttc_encode_suback(fb->scratch, sizeof fb->scratch, packet_id, codes, n), "SUBACK");
    return fb_inject(fb, fb->scratch, (size_t)len);
}

int fb_send_pingresp(fake_broker *fb)
{
    int n = fb_checked_encode(mqttc_encode_empty(fb->scratch, sizeof fb->scratch, MQTTC_PINGRESP),
                              "PINGRESP");
    return fb_inject(fb, fb->scratch, (size_t)n);
}

size_t fb_encode_publish(uint8_t *buf, size_t cap, const char *topic, const void *payload,
                         size_t len, uint8_t qos, uint16_t packet_id, bool retain, bool dup)
{
    mqttc_publish p;
    memset(&p, 0, sizeof p);
    p.topic.data = topic;
    p.topic.len = (uint16_t)strlen(topic);
    p.payload = payload;
    p.payload_len = len;
    p.total_len = len;
    p.packet_id = packet_id;
    p.qos = qos;
    p.retain = retain;
    p.dup = dup;
    return (size_t)fb_checked_encode(mqttc_encode_publish(buf, cap, &p), "PUBLISH");
}

int fb_send_publish(fake_broker *fb, const char *topic, const void *payload, size_t len,
                    uint8_t qos, uint16_t packet_id, bool retain, bool dup)
{
    size_t n = fb_encode_publish(fb->scratch, sizeof fb->scratch, topic, payload, len, qos,
                                 packet_id, retain, dup);
    return fb_inject(fb, fb->scratch, n);
}

/* ---- events ----------------------------------------------------------- */

size_t fb_count_events(const fake_broker *fb, mqttc_event_type type)
{
    size_t n = 0;
    for (size_t i = 0; i < fb->event_count; i++)
        if (fb->events[i].type == type)
            n++;
    return n;
}

const fb_event *fb_find_event(const fake_broker *fb, mqttc_event_type type, size_t nth)
{
    for (size_t i = 0; i < fb->event_count; i++)
        if (fb->events[i].type == type && nth-- == 0)
            return &fb->events[i];
    return NULL;
}

const fb_event *fb_expect_event(const fake_broker *fb, mqttc_event_type type, size_t nth)
{
    const fb_event *ev = fb_find_event(fb, type, nth);
    if (ev == NULL)
        fail_msg("expected event type %d #%zu, have %zu of that type", (int)type, nth,
                 fb_count_events(fb, type));
    return ev;
}

const fb_event *fb_last_event(const fake_broker *fb)
{
    return fb->event_count > 0 ? &fb->events[fb->event_count - 1] : NULL;
}

void fb_clear_events(fake_broker *fb)
{
    fb->event_count = 0;
    fb->events_lost = 0;
    fb->assembled_end = 0;
}

void fb_message_init(mqttc_message *m, const char *topic, const void *payload, size_t len,
                     uint8_t qos)
{
    memset(m, 0, sizeof *m);
    m->topic.data = topic;
    m->topic.len = (uint16_t)strlen(topic);
    m->payload = payload;
    m->payload_len = len;
    m->qos = qos;
}

/* ---- the network face -------------------------------------------------- */

static uint64_t fb_net_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds left before `deadline` (0 when past), for poll(). */
static int fb_net_left(uint64_t deadline)
{
    uint64_t now = fb_net_now_ms();
    return now >= deadline ? 0 : (int)(deadline - now);
}

int fb_net_listen(fb_net *n)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int one = 1;
    memset(n, 0, sizeof *n);
    n->fd = -1;
    n->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (n->listen_fd < 0)
        return -1;
    setsockopt(n->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0; /* the kernel picks a free port */
    if (bind(n->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(n->listen_fd, 8) != 0 ||
        getsockname(n->listen_fd, (struct sockaddr *)&a, &alen) != 0) {
        close(n->listen_fd);
        n->listen_fd = -1;
        return -1;
    }
    n->port = ntohs(a.sin_port);
    return 0;
}

void fb_net_close(fb_net *n)
{
    if (n->fd >= 0) {
        /* Unread input would turn close() into a reset, which can overtake
         * the data still on its way to the client: read it first. */
        uint8_t sink[4096];
        for (unsigned i = 0; i < 1024 && recv(n->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
        }
        close(n->fd);
        n->fd = -1;
    }
}

void fb_net_shutdown(fb_net *n)
{
    fb_net_close(n);
    if (n->listen_fd >= 0) {
        close(n->listen_fd);
        n->listen_fd = -1;
    }
}

bool fb_net_accept(fb_net *n, int timeout_ms)
{
    struct pollfd p;
    fb_net_close(n);
    p.fd = n->listen_fd;
    p.events = POLLIN;
    p.revents = 0;
    if (n->listen_fd < 0 || poll(&p, 1, timeout_ms) <= 0)
        return false;
    n->fd = accept(n->listen_fd, NULL, NULL);
    if (n->fd < 0)
        return false;
    n->accepted++;
    /* a fresh stream: forget any partial packet of the last connection */
    if (mqttc_decoder_init(&n->dec, n->dec_buf, sizeof n->dec_buf, 0, false) != 0) {
        return false;
    }
    n->dec.decode = mqttc_decode; /* reads what the client sends */
    return true;
}

int fb_net_recv(fb_net *n, mqttc_packet *out, int timeout_ms)
{
    uint64_t deadline = fb_net_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    if (n->fd < 0)
        return -1;
    for (unsigned i = 0; i < FB_MAX_DECODE_STEPS; i++) {
        int rc = mqttc_decoder_next(&n->dec, out);
        if (rc < 0)
            return -2;
        if (rc > 0)
            return 1;
        struct pollfd p;
        p.fd = n->fd;
        p.events = POLLIN;
        p.revents = 0;
        int pr = poll(&p, 1, fb_net_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return 0;
        size_t room;
        uint8_t *dst = mqttc_decoder_space(&n->dec, &room);
        if (room == 0)
            return -2; /* a packet over FB_NET_DECODER_CAP */
        ssize_t r = recv(n->fd, dst, room, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        mqttc_decoder_commit(&n->dec, (size_t)r);
    }
    return 0;
}

const mqttc_packet *fb_net_expect(fb_net *n, uint8_t type, int timeout_ms)
{
    int rc = fb_net_recv(n, &n->pkt, timeout_ms);
    if (rc == 0)
        fail_msg("scripted broker: expected %s within %d ms, got nothing", fb_type_name(type),
                 timeout_ms);
    if (rc == -1)
        fail_msg("scripted broker: expected %s, the client closed the connection",
                 fb_type_name(type));
    if (rc < 0)
        fail_msg("scripted broker: expected %s, the client sent undecodable bytes",
                 fb_type_name(type));
    if (n->pkt.type != type)
        fail_msg("scripted broker: expected %s, the client sent %s", fb_type_name(type),
                 fb_type_name(n->pkt.type));
    return &n->pkt;
}

bool fb_net_send(fb_net *n, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t off = 0;
    uint64_t deadline = fb_net_now_ms() + 5000u;
    while (off < len && n->fd >= 0) {
        ssize_t w = send(n->fd, p + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd q;
            q.fd = n->fd;
            q.events = POLLOUT;
            q.revents = 0;
            if (fb_net_left(deadline) == 0 || poll(&q, 1, fb_net_left(deadline)) <= 0)
                return false; /* the client stopped reading */
            continue;
        }
        return false;
    }
    return off == len;
}

bool fb_net_send_hex(fb_net *n, const char *hex)
{
    uint8_t buf[1024];
    size_t len = tu_unhex(hex, buf, sizeof buf);
    return fb_net_send(n, buf, len);
}

bool fb_net_trickle(fb_net *n, const void *data, size_t len, int gap_ms)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        if (i > 0 && gap_ms > 0) {
            struct timespec ts = {gap_ms / 1000, (long)(gap_ms % 1000) * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
        if (!fb_net_send(n, p + i, 1))
            return false;
    }
    return true;
}

bool fb_net_wait_closed(fb_net *n, int timeout_ms)
{
    uint64_t deadline = fb_net_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uint8_t sink[4096];
    if (n->fd < 0)
        return true;
    for (unsigned i = 0; i < FB_MAX_DECODE_STEPS; i++) {
        struct pollfd p;
        p.fd = n->fd;
        p.events = POLLIN;
        p.revents = 0;
        int pr = poll(&p, 1, fb_net_left(deadline));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return false;
        ssize_t r = recv(n->fd, sink, sizeof sink, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return true; /* EOF, or a reset */
    }
    return false;
}
