/* The sans-I/O session engine. See engine.h for the contract and
 * docs/ARCHITECTURE.md for the data paths.
 *
 * Invariants:
 *  - pubs holds every unfinished outbound message in publish order; all the
 *    messages ever written (states WRITING, AWAIT_ACK, AWAIT_PUBCOMP) come
 *    before all unsent ones (QUEUED), because messages are written in order.
 *  - inflight counts the QoS 1/2 messages not in state QUEUED.
 *  - every byte staged in tx_buf belongs to a segment; tx_used returns to 0
 *    when the last segment is written.
 *  - a message's payload may be referenced by a segment only while it is
 *    WRITING, and a WRITING message is never handed back by an ack. */
#include "mqttc/engine.h"

#include <stddef.h>
#include <string.h>

enum { MSG_QUEUED, MSG_WRITING, MSG_AWAIT_ACK, MSG_AWAIT_PUBCOMP };
enum { REQ_QUEUED, REQ_SENT };

#define MSG_OF(l) ((mqttc_message *)(void *)((char *)(l)-offsetof(mqttc_message, link_)))
#define REQ_OF(l) ((mqttc_request *)(void *)((char *)(l)-offsetof(mqttc_request, link_)))

/* ---- small helpers ------------------------------------------------------- */

/* Wrap-safe "at least `ms` since `since`". */
static bool elapsed(uint32_t now, uint32_t since, uint32_t ms)
{
    return (uint32_t)(now - since) >= ms;
}

static void list_init(mqttc_link *l)
{
    l->next = l->prev = l;
}

static void list_push(mqttc_link *l, mqttc_link *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static void list_remove(mqttc_link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static size_t msg_bytes(const mqttc_message *m)
{
    return (size_t)m->topic.len + m->payload_len;
}

static void emit(mqttc_engine *e, mqttc_event *ev)
{
    e->depth++;
    e->cfg.on_event(e->cfg.user, ev);
    e->depth--;
}

static bool live(const mqttc_engine *e)
{
    return e->state == MQTTC_STATE_CONNECTING || e->state == MQTTC_STATE_CONNECTED;
}

/* ---- output staging ------------------------------------------------------ */

/* Room for `n` staged bytes plus `ext` payload segments? */
static uint8_t *stage_reserve(mqttc_engine *e, size_t n, unsigned ext)
{
    unsigned segs = (e->tail_staging ? 0u : 1u) + ext;
    if (n > e->cfg.tx_cap - e->tx_used || segs > MQTTC_ENGINE_SEGMENTS - (unsigned)e->seg_count) {
        return NULL;
    }
    return e->cfg.tx_buf + e->tx_used;
}

static void stage_commit(mqttc_engine *e, size_t n)
{
    if (e->tail_staging) {
        e->seg[e->seg_count - 1].len += n;
    } else {
        e->seg[e->seg_count].base = e->cfg.tx_buf + e->tx_used;
        e->seg[e->seg_count].len = n;
        e->seg_count++;
        e->tail_staging = true;
    }
    e->tx_used += n;
    e->stream_queued += n;
}

static void stage_external(mqttc_engine *e, const void *p, size_t n)
{
    e->seg[e->seg_count].base = p;
    e->seg[e->seg_count].len = n;
    e->seg_count++;
    e->tail_staging = false;
    e->stream_queued += n;
}

/* Stage a packet of at most 4 bytes (acks, PINGREQ, DISCONNECT). */
static bool put_small(mqttc_engine *e, mqttc_packet_type type, uint16_t id)
{
    uint8_t *dst = stage_reserve(e, 4, 0);
    int n;
    if (dst == NULL) {
        return false;
    }
    n = id ? mqttc_encode_ack(dst, 4, type, id) : mqttc_encode_empty(dst, 4, type);
    stage_commit(e, (size_t)n);
    return true;
}

/* Room to stage any reply (4 bytes) before acting on one more packet. */
static bool reply_room(mqttc_engine *e)
{
    return stage_reserve(e, 4, 0) != NULL;
}

static bool put_publish(mqttc_engine *e, mqttc_message *m)
{
    mqttc_publish p;
    int h = mqttc_publish_header_size(m->topic.len, m->qos, m->payload_len);
    bool copy = m->payload_len <= e->cfg.copy_max && (size_t)h + m->payload_len <= e->cfg.tx_cap;
    size_t n = (size_t)h + (copy ? m->payload_len : 0);
    uint8_t *dst = stage_reserve(e, n, copy ? 0 : 1);
    if (dst == NULL) {
        return false;
    }
    memset(&p, 0, sizeof p);
    p.topic = m->topic;
    p.payload_len = m->payload_len;
    p.packet_id = m->packet_id;
    p.qos = m->qos;
    p.retain = m->retain;
    p.dup = m->dup_;
    mqttc_encode_publish_header(dst, (size_t)h, &p);
    if (copy && m->payload_len > 0) {
        memcpy(dst + h, m->payload, m->payload_len);
    }
    stage_commit(e, n);
    if (!copy) {
        stage_external(e, m->payload, m->payload_len);
    }
    m->end_ = e->stream_queued;
    return true;
}

static int request_size(const mqttc_request *r)
{
    return r->kind == MQTTC_REQ_SUBSCRIBE ? mqttc_subscribe_size(r->subs, r->count)
                                          : mqttc_unsubscribe_size(r->filters, r->count);
}

static bool put_request(mqttc_engine *e, mqttc_request *r)
{
    size_t n = (size_t)request_size(r);
    uint8_t *dst = stage_reserve(e, n, 0);
    if (dst == NULL) {
        return false;
    }
    if (r->kind == MQTTC_REQ_SUBSCRIBE) {
        mqttc_encode_subscribe(dst, n, r->packet_id, r->subs, r->count);
    } else {
        mqttc_encode_unsubscribe(dst, n, r->packet_id, r->filters, r->count);
    }
    stage_commit(e, n);
    return true;
}

/* Stage everything that may go out now, in order: requests, then messages
 * (re-sends first, as they come first in the list), within the window. */
static void pump(mqttc_engine *e)
{
    if (e->state == MQTTC_STATE_CLOSING && e->disconnect_pending &&
        put_small(e, MQTTC_DISCONNECT, 0)) {
        e->disconnect_pending = false;
        e->disconnect_end = e->stream_queued;
    }
    if (e->state != MQTTC_STATE_CONNECTED) {
        return;
    }
    while (e->req_next != &e->reqs && put_request(e, REQ_OF(e->req_next))) {
        REQ_OF(e->req_next)->state_ = REQ_SENT;
        e->req_next = e->req_next->next;
    }
    while (e->pub_next != &e->pubs) {
        mqttc_message *m = MSG_OF(e->pub_next);
        if (m->state_ == MSG_AWAIT_PUBCOMP) {
            if (!put_small(e, MQTTC_PUBREL, m->packet_id)) {
                return;
            }
        } else {
            bool fresh = m->state_ == MSG_QUEUED && m->qos > 0;
            if ((fresh && e->inflight >= e->cfg.inflight_max) || !put_publish(e, m)) {
                return;
            }
            e->inflight += fresh;
            m->state_ = MSG_WRITING;
            if (e->pub_writing == NULL) {
                e->pub_writing = m;
            }
        }
        e->pub_next = e->pub_next->next;
    }
}

/* ---- session transitions ------------------------------------------------- */

static void unlink_msg(mqttc_engine *e, mqttc_message *m)
{
    if (e->pub_next == &m->link_) {
        e->pub_next = m->link_.next;
    }
    if (m->qos > 0 && m->state_ != MSG_QUEUED) {
        e->inflight--;
    }
    list_remove(&m->link_);
    e->pub_count--;
    e->pub_bytes -= msg_bytes(m);
}

static void emit_done(mqttc_engine *e, mqttc_message *m, int status)
{
    mqttc_event ev;
    ev.type = MQTTC_EV_PUBLISH_DONE;
    ev.u.publish_done.msg = m;
    ev.u.publish_done.status = status;
    emit(e, &ev);
}

static void hand_back(mqttc_engine *e, mqttc_message *m, int status)
{
    unlink_msg(e, m);
    emit_done(e, m, status);
}

/* Has no byte of m's packet been written yet? */
static bool unwritten(const mqttc_engine *e, const mqttc_message *m)
{
    int h = mqttc_publish_header_size(m->topic.len, m->qos, m->payload_len);
    return m->end_ - (uint64_t)h - m->payload_len >= e->stream_written;
}

static void reset_output(mqttc_engine *e)
{
    e->seg_count = 0;
    e->seg_off = 0;
    e->tail_staging = false;
    e->tx_used = 0;
    e->stream_queued = e->stream_written = 0;
    e->disconnect_end = 0;
    e->disconnect_pending = false;
}

/* Go offline: drop the transport's state, keep every unfinished message and
 * request for the next connection (re-sent from the start of the lists). */
static void go_offline(mqttc_engine *e, int reason)
{
    mqttc_link *l, *next, cut;
    mqttc_event ev;

    if (e->state == MQTTC_STATE_OFFLINE) {
        return;
    }
    list_init(&cut);
    e->state = MQTTC_STATE_OFFLINE;
    e->close_reason = reason;
    e->rx_blocked = false;
    e->msg_dup = false;
    e->ping_outstanding = false;
    e->pub_writing = NULL;
    for (l = e->pubs.next; l != e->pub_next; l = next) {
        mqttc_message *m = MSG_OF(l);
        next = l->next;
        if (m->qos == 0) {
            if (unwritten(e, m)) {
                m->state_ = MSG_QUEUED;
            } else { /* cut mid-write: at most once allows the loss */
                unlink_msg(e, m); /* handed back below, once the lists are consistent */
                list_push(&cut, &m->link_);
            }
        } else if (m->state_ != MSG_AWAIT_PUBCOMP) {
            m->state_ = MSG_AWAIT_ACK;
            m->dup_ = true;
        }
    }
    e->pub_next = e->pubs.next;
    mqttc_decoder_reset(&e->dec);
    reset_output(e);
    for (l = e->reqs.next; l != &e->reqs; l = l->next) {
        REQ_OF(l)->state_ = REQ_QUEUED;
    }
    e->req_next = e->reqs.next;
    /* The callback may publish again: emit only now that nothing is mid-walk. */
    while (cut.next != &cut) {
        mqttc_message *m = MSG_OF(cut.next);
        list_remove(&m->link_);
        emit_done(e, m, MQTTC_ERR_CONNECTION_LOST);
    }
    ev.type = MQTTC_EV_CLOSED;
    ev.u.closed.reason = reason;
    emit(e, &ev);
}

/* Apply a close requested from inside a callback, once no callback runs.
 * Returns the reason if the engine is offline because of this call. */
static int settle(mqttc_engine *e, int rc)
{
    if (e->pending_lost && e->depth == 0) {
        int reason = e->pending_lost;
        e->pending_lost = 0;
        go_offline(e, reason);
        return reason;
    }
    return rc;
}

/* ---- incoming packets ---------------------------------------------------- */

static mqttc_message *find_sent(mqttc_engine *e, uint16_t id)
{
    mqttc_link *l;
    for (l = e->pubs.next; l != &e->pubs; l = l->next) {
        mqttc_message *m = MSG_OF(l);
        if (m->state_ == MSG_QUEUED && m->qos > 0) {
            break; /* the rest were never sent */
        }
        if (m->packet_id == id && m->qos > 0) {
            return m;
        }
    }
    return NULL;
}

/* Inbound QoS 2 ids awaiting PUBREL: a small table, or once the driver
 * supplies it, a bitmap with one bit per packet id (exact and unbounded, as
 * MQTT 3.1.1 gives the broker no receive maximum). */
static int inbound_find(const mqttc_engine *e, uint16_t id)
{
    int i;
    if (e->inbound_bits != NULL) {
        return (e->inbound_bits[id >> 3] >> (id & 7)) & 1 ? id : -1;
    }
    for (i = 0; i < (int)e->inbound_count; i++) {
        if (e->cfg.inbound_ids[i] == id) {
            return i;
        }
    }
    return -1;
}

/* Room for one more id: switch to the bitmap when the table is full. */
static bool inbound_reserve(mqttc_engine *e)
{
    uint16_t i;
    if (e->inbound_bits != NULL || e->inbound_count < e->cfg.inbound_cap) {
        return true;
    }
    if (e->cfg.inbound_bitmap == NULL ||
        (e->inbound_bits = e->cfg.inbound_bitmap(e->cfg.user)) == NULL) {
        return false;
    }
    memset(e->inbound_bits, 0, MQTTC_INBOUND_BITMAP_SIZE);
    for (i = 0; i < e->inbound_count; i++) {
        uint16_t id = e->cfg.inbound_ids[i];
        e->inbound_bits[id >> 3] |= (uint8_t)(1u << (id & 7));
    }
    e->inbound_count = 0;
    return true;
}

static void inbound_add(mqttc_engine *e, uint16_t id)
{
    if (e->inbound_bits != NULL) {
        e->inbound_bits[id >> 3] |= (uint8_t)(1u << (id & 7));
    } else {
        e->cfg.inbound_ids[e->inbound_count++] = id;
    }
}

/* Forget `id`; false if it was not recorded. */
static bool inbound_remove(mqttc_engine *e, uint16_t id)
{
    int i = inbound_find(e, id);
    if (i < 0) {
        return false;
    }
    if (e->inbound_bits != NULL) {
        e->inbound_bits[id >> 3] &= (uint8_t)~(1u << (id & 7));
    } else {
        e->cfg.inbound_ids[i] = e->cfg.inbound_ids[--e->inbound_count];
    }
    return true;
}

void mqttc_engine_clear_inbound(mqttc_engine *e)
{
    e->inbound_count = 0;
    if (e->inbound_bits != NULL) {
        memset(e->inbound_bits, 0, MQTTC_INBOUND_BITMAP_SIZE);
    }
}

static int on_connack(mqttc_engine *e, const mqttc_packet *p)
{
    mqttc_event ev;
    if (e->state != MQTTC_STATE_CONNECTING) {
        return MQTTC_ERR_UNEXPECTED_PACKET;
    }
    if (p->u.connack.return_code != 0) {
        return MQTTC_ERR_REFUSED_PROTOCOL - (int)(p->u.connack.return_code - 1);
    }
    if (p->u.connack.session_present && e->conn.clean_session) {
        return MQTTC_ERR_UNEXPECTED_PACKET; /* MQTT-3.2.2-1 */
    }
    if (!p->u.connack.session_present) {
        mqttc_engine_clear_inbound(e); /* the broker forgot its half of QoS 2 */
    }
    e->state = MQTTC_STATE_CONNECTED;
    ev.type = MQTTC_EV_CONNECTED;
    ev.u.connected.session_present = p->u.connack.session_present;
    emit(e, &ev);
    pump(e);
    return 0;
}

/* Deliver an incoming PUBLISH (or piece) and acknowledge it. The ack is
 * staged before the callback runs, but cannot be written before the callback
 * returns, so delivery still precedes the acknowledgement on the wire. */
static int on_publish(mqttc_engine *e, const mqttc_packet *p)
{
    const mqttc_publish *pub = &p->u.publish;
    bool first = pub->offset == 0;
    bool last = pub->offset + pub->payload_len == pub->total_len;
    mqttc_event ev;

    if (pub->qos == 2) {
        if (first) {
            e->msg_dup = inbound_find(e, pub->packet_id) >= 0;
            if (!e->msg_dup && !inbound_reserve(e)) {
                return MQTTC_ERR_INBOUND_WINDOW_FULL;
            }
        }
        if (last) {
            if (!e->msg_dup) {
                inbound_add(e, pub->packet_id);
            }
            put_small(e, MQTTC_PUBREC, pub->packet_id);
        }
        if (e->msg_dup) {
            return 0; /* exactly once: acknowledged again, not delivered again */
        }
    } else if (pub->qos == 1 && last) {
        put_small(e, MQTTC_PUBACK, pub->packet_id);
    }
    ev.type = MQTTC_EV_MESSAGE;
    ev.u.message = *pub;
    emit(e, &ev);
    return 0;
}

static int on_pubrel(mqttc_engine *e, uint16_t id)
{
    if (inbound_remove(e, id)) {
        mqttc_event ev;
        ev.type = MQTTC_EV_PUBREL;
        ev.u.pubrel.packet_id = id;
        emit(e, &ev);
    }
    put_small(e, MQTTC_PUBCOMP, id); /* answered even when unknown (MQTT-4.3.3) */
    return 0;
}

/* PUBACK, PUBREC, PUBCOMP for our outbound messages. */
static int on_ack(mqttc_engine *e, uint8_t type, uint16_t id)
{
    mqttc_message *m = find_sent(e, id);
    if (m == NULL) {
        return MQTTC_ERR_UNKNOWN_PACKET_ID;
    }
    if (m->state_ == MSG_WRITING || (type == MQTTC_PUBACK) != (m->qos == 1)) {
        return MQTTC_ERR_UNEXPECTED_PACKET;
    }
    if (type == MQTTC_PUBREC) {
        /* A repeated PUBREC (after a re-sent PUBLISH) gets PUBREL again. */
        if (m->state_ != MSG_AWAIT_PUBCOMP) {
            mqttc_event ev;
            m->state_ = MSG_AWAIT_PUBCOMP;
            ev.type = MQTTC_EV_RELEASED;
            ev.u.released.msg = m;
            emit(e, &ev); /* before PUBREL can be written: a store records it first */
        }
        put_small(e, MQTTC_PUBREL, id);
        return 0;
    }
    if (type == MQTTC_PUBCOMP && m->state_ != MSG_AWAIT_PUBCOMP) {
        return MQTTC_ERR_UNEXPECTED_PACKET;
    }
    hand_back(e, m, 0);
    pump(e);
    return 0;
}

static int on_request_ack(mqttc_engine *e, const mqttc_packet *p)
{
    bool sub = p->type == MQTTC_SUBACK;
    uint16_t id = sub ? p->u.suback.packet_id : p->u.packet_id;
    mqttc_link *l;
    mqttc_event ev;

    for (l = e->reqs.next; l != e->req_next; l = l->next) {
        mqttc_request *r = REQ_OF(l);
        if (r->packet_id != id) {
            continue;
        }
        if (sub != (r->kind == MQTTC_REQ_SUBSCRIBE)) {
            return MQTTC_ERR_UNEXPECTED_PACKET;
        }
        if (sub && p->u.suback.count != r->count) {
            return MQTTC_ERR_SUBACK_MISMATCH;
        }
        list_remove(l);
        ev.type = sub ? MQTTC_EV_SUBACK : MQTTC_EV_UNSUBACK;
        if (sub) {
            ev.u.suback.req = r;
            ev.u.suback.codes = p->u.suback.codes;
            ev.u.suback.count = p->u.suback.count;
        } else {
            ev.u.unsuback.req = r;
        }
        emit(e, &ev);
        return 0;
    }
    return MQTTC_ERR_UNKNOWN_PACKET_ID;
}

static int handle(mqttc_engine *e, const mqttc_packet *p)
{
    mqttc_event ev;
    if (p->type == MQTTC_CONNACK) {
        return on_connack(e, p);
    }
    if (e->state != MQTTC_STATE_CONNECTED) {
        return MQTTC_ERR_UNEXPECTED_PACKET; /* nothing may precede CONNACK */
    }
    switch (p->type) {
    case MQTTC_PUBLISH:
        return on_publish(e, p);
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBCOMP:
        return on_ack(e, p->type, p->u.packet_id);
    case MQTTC_PUBREL:
        return on_pubrel(e, p->u.packet_id);
    case MQTTC_SUBACK:
    case MQTTC_UNSUBACK:
        return on_request_ack(e, p);
    case MQTTC_PINGRESP:
        e->ping_outstanding = false;
        ev.type = MQTTC_EV_PONG;
        emit(e, &ev);
        return 0;
    default: /* CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT */
        return MQTTC_ERR_UNEXPECTED_PACKET;
    }
}

/* Decode and act on buffered input until it runs out, the engine closes, or
 * there is no room left to stage a reply (back-pressure). */
static int process(mqttc_engine *e)
{
    mqttc_packet p;
    int rc = 0;

    e->rx_blocked = false;
    while (rc == 0 && live(e) && !e->pending_lost) {
        if (!reply_room(e)) {
            e->rx_blocked = true;
            break;
        }
        rc = mqttc_decoder_next(&e->dec, &p);
        if (rc == 0) {
            break;
        }
        rc = rc < 0 ? rc : handle(e, &p);
        if (rc < 0) {
            go_offline(e, rc);
        }
    }
    return settle(e, rc);
}

/* ---- public API ---------------------------------------------------------- */

int mqttc_engine_init(mqttc_engine *e, const mqttc_engine_config *cfg)
{
    int rc;
    if (e == NULL || cfg == NULL || cfg->tx_buf == NULL || cfg->tx_cap < 64 ||
        cfg->rx_cap < 64 || cfg->inbound_ids == NULL || cfg->inbound_cap == 0 ||
        cfg->on_event == NULL || cfg->queue_policy > MQTTC_QUEUE_DROP_OLDEST) {
        return MQTTC_ERR_INVALID_ARG;
    }
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    rc = mqttc_decoder_init(&e->dec, cfg->rx_buf, cfg->rx_cap, cfg->max_packet,
                            cfg->stream_payloads);
    if (rc < 0) {
        return rc;
    }
    if (e->cfg.inflight_max == 0) {
        e->cfg.inflight_max = 20;
    }
    if (e->cfg.queue_max_msgs == 0) {
        e->cfg.queue_max_msgs = 1000;
    }
    if (e->cfg.queue_max_bytes == 0) {
        e->cfg.queue_max_bytes = (size_t)16 << 20;
    }
    if (e->cfg.connack_timeout_ms == 0) {
        e->cfg.connack_timeout_ms = 10000;
    }
    if (e->cfg.copy_max == 0) {
        e->cfg.copy_max = 512;
    }
    list_init(&e->pubs);
    list_init(&e->reqs);
    e->pub_next = &e->pubs;
    e->req_next = &e->reqs;
    return 0;
}

int mqttc_engine_start(mqttc_engine *e, const mqttc_connect *c, uint32_t now)
{
    int size;
    uint8_t *dst;
    if (e == NULL || c == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (e->state != MQTTC_STATE_OFFLINE || e->depth > 0) {
        return MQTTC_ERR_BAD_STATE;
    }
    size = mqttc_connect_size(c);
    if (size < 0) {
        return size;
    }
    if ((size_t)size > e->cfg.tx_cap) {
        return MQTTC_ERR_BUFFER_TOO_SMALL;
    }
    e->conn = *c;
    if (c->clean_session) {
        mqttc_engine_clear_inbound(e);
    }
    mqttc_decoder_reset(&e->dec);
    reset_output(e);
    dst = stage_reserve(e, (size_t)size, 0);
    mqttc_encode_connect(dst, (size_t)size, c);
    stage_commit(e, (size_t)size);
    e->state = MQTTC_STATE_CONNECTING;
    e->now = e->connect_sent = e->last_tx = e->last_rx = now;
    e->ping_outstanding = false;
    e->ping_timeout = e->cfg.ping_timeout_ms;
    if (e->ping_timeout == 0) {
        uint32_t ka = (uint32_t)c->keepalive * 1000u;
        e->ping_timeout = ka < 30000u ? ka : 30000u;
    }
    return 0;
}

/* Is `id` taken by an unfinished message or request? */
static bool id_in_use(mqttc_engine *e, uint16_t id)
{
    mqttc_link *l;
    for (l = e->pubs.next; l != &e->pubs; l = l->next) {
        if (MSG_OF(l)->packet_id == id) {
            return true;
        }
    }
    for (l = e->reqs.next; l != &e->reqs; l = l->next) {
        if (REQ_OF(l)->packet_id == id) {
            return true;
        }
    }
    return false;
}

/* Allocate a packet id, 1..65535, not used by any unfinished message or
 * request. Until the counter first wraps every id is fresh. */
static int alloc_id(mqttc_engine *e)
{
    uint32_t tries;
    for (tries = 0; tries < 65535u; tries++) {
        uint16_t id = e->last_id == 65535u ? 1u : (uint16_t)(e->last_id + 1u);
        e->ids_wrapped |= id < e->last_id;
        e->last_id = id;
        if (!e->ids_wrapped || !id_in_use(e, id)) {
            return id;
        }
    }
    return MQTTC_ERR_QUEUE_FULL;
}

/* Make room for `m` under the queue limits, dropping the oldest unsent
 * messages if the policy says so. */
static int make_room(mqttc_engine *e, const mqttc_message *m)
{
    size_t need = msg_bytes(m);
    if (need > e->cfg.queue_max_bytes) {
        return MQTTC_ERR_QUEUE_FULL;
    }
    while (e->pub_count >= e->cfg.queue_max_msgs || e->pub_bytes + need > e->cfg.queue_max_bytes) {
        mqttc_link *l = e->pub_next;
        while (l != &e->pubs && MSG_OF(l)->state_ != MSG_QUEUED) {
            l = l->next;
        }
        if (e->cfg.queue_policy != MQTTC_QUEUE_DROP_OLDEST || l == &e->pubs) {
            return MQTTC_ERR_QUEUE_FULL;
        }
        hand_back(e, MSG_OF(l), MQTTC_ERR_DROPPED);
    }
    return 0;
}

int mqttc_engine_publish(mqttc_engine *e, mqttc_message *m)
{
    int rc, h;
    if (e == NULL || m == NULL || m->topic.data == NULL ||
        (m->payload == NULL && m->payload_len > 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (m->qos > 2) {
        return MQTTC_ERR_BAD_QOS;
    }
    rc = mqttc_topic_name_check(m->topic.data, m->topic.len);
    if (rc < 0) {
        return rc;
    }
    h = mqttc_publish_header_size(m->topic.len, m->qos, m->payload_len);
    if (h < 0 || (size_t)h > e->cfg.tx_cap) {
        return MQTTC_ERR_TOO_LARGE;
    }
    rc = make_room(e, m);
    if (rc < 0) {
        return rc;
    }
    m->packet_id = 0;
    if (m->qos > 0) {
        rc = alloc_id(e);
        if (rc < 0) {
            return rc;
        }
        m->packet_id = (uint16_t)rc;
    }
    if (e->cfg.on_accept != NULL && m->qos > 0) {
        rc = e->cfg.on_accept(e->cfg.user, m);
        if (rc < 0) {
            return rc;
        }
    }
    m->state_ = MSG_QUEUED;
    m->dup_ = false;
    list_push(&e->pubs, &m->link_);
    if (e->pub_next == &e->pubs) {
        e->pub_next = &m->link_;
    }
    e->pub_count++;
    e->pub_bytes += msg_bytes(m);
    pump(e);
    settle(e, 0);
    return m->packet_id;
}

int mqttc_engine_restore(mqttc_engine *e, mqttc_message *m, uint16_t packet_id, bool released)
{
    mqttc_link *l;
    if (e == NULL || m == NULL || m->topic.data == NULL || packet_id == 0 || m->qos == 0 ||
        m->qos > 2 || (released && m->qos != 2) || (m->payload == NULL && m->payload_len > 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (e->state != MQTTC_STATE_OFFLINE || e->depth > 0) {
        return MQTTC_ERR_BAD_STATE;
    }
    if (id_in_use(e, packet_id)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    /* A released message is in flight (the broker holds it): it goes with
     * the written ones, before the first unsent message. Any other may never
     * have been sent: it is queued again, with DUP set and its id, so that
     * the in-flight window applies to it. */
    l = &e->pubs;
    if (released) {
        for (l = e->pubs.next; l != &e->pubs && MSG_OF(l)->state_ != MSG_QUEUED; l = l->next) {
        }
    }
    m->packet_id = packet_id;
    m->state_ = released ? MSG_AWAIT_PUBCOMP : MSG_QUEUED;
    m->dup_ = true;
    list_push(l, &m->link_);
    e->pub_next = e->pubs.next;
    e->pub_count++;
    e->pub_bytes += msg_bytes(m);
    e->inflight += released;
    e->last_id = packet_id;
    e->ids_wrapped = true; /* ids are no longer known fresh: check each */
    return 0;
}

int mqttc_engine_restore_inbound(mqttc_engine *e, uint16_t packet_id)
{
    if (e == NULL || packet_id == 0) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (inbound_find(e, packet_id) < 0) {
        if (!inbound_reserve(e)) {
            return MQTTC_ERR_INBOUND_WINDOW_FULL;
        }
        inbound_add(e, packet_id);
    }
    return 0;
}

int mqttc_engine_request(mqttc_engine *e, mqttc_request *r)
{
    int size, id;
    if (e == NULL || r == NULL || r->count == 0 ||
        (r->kind == MQTTC_REQ_SUBSCRIBE ? r->subs == NULL
                                        : r->kind != MQTTC_REQ_UNSUBSCRIBE || r->filters == NULL)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    size = request_size(r);
    if (size < 0) {
        return size;
    }
    if ((size_t)size > e->cfg.tx_cap) {
        return MQTTC_ERR_TOO_LARGE;
    }
    id = alloc_id(e);
    if (id < 0) {
        return id;
    }
    r->packet_id = (uint16_t)id;
    r->state_ = REQ_QUEUED;
    list_push(&e->reqs, &r->link_);
    if (e->req_next == &e->reqs) {
        e->req_next = &r->link_;
    }
    pump(e);
    return id;
}

void mqttc_engine_disconnect(mqttc_engine *e)
{
    if (e == NULL || !live(e)) {
        return;
    }
    e->state = MQTTC_STATE_CLOSING;
    e->disconnect_pending = true;
    pump(e);
}

void mqttc_engine_connection_lost(mqttc_engine *e, int reason)
{
    if (e == NULL) {
        return;
    }
    if (reason >= 0) {
        reason = MQTTC_ERR_CONNECTION_LOST;
    }
    if (e->depth > 0) { /* inside a callback: the caller's loop is mid-flight */
        if (e->state != MQTTC_STATE_OFFLINE && !e->pending_lost) {
            e->pending_lost = reason;
        }
        return;
    }
    go_offline(e, reason);
}

/* Where `p` lies in [from, from + n), moved to the same offset from `to`. */
static const void *rebase(const void *p, const uint8_t *from, size_t n, uint8_t *to)
{
    uintptr_t a = (uintptr_t)p, b = (uintptr_t)from;
    return a >= b && a - b <= n ? to + (a - b) : p;
}

int mqttc_engine_resize(mqttc_engine *e, uint8_t *rx, size_t rx_cap, uint8_t *tx, size_t tx_cap)
{
    const uint8_t *old_rx = e->cfg.rx_buf, *old_tx = e->cfg.tx_buf;
    if (rx == NULL || tx == NULL || rx_cap < 64 || tx_cap < 64) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (e->dec.start == e->dec.end && !e->dec.in_publish) {
        e->dec.start = e->dec.end = 0; /* all consumed: nothing to move */
    }
    if (e->depth > 0 || e->dec.end > rx_cap || e->tx_used > tx_cap) {
        return MQTTC_ERR_BAD_STATE;
    }
    memmove(rx, old_rx, e->dec.end);
    memmove(tx, old_tx, e->tx_used);
    for (int i = 0; i < e->seg_count; i++) { /* staged segments; payloads stay put */
        e->seg[i].base = rebase(e->seg[i].base, old_tx, e->tx_used, tx);
    }
    /* a streamed PUBLISH's header is held at the front of rx */
    e->dec.pub.topic.data = rebase(e->dec.pub.topic.data, old_rx, e->dec.end, rx);
    e->dec.buf = e->cfg.rx_buf = rx;
    e->dec.cap = e->cfg.rx_cap = rx_cap;
    e->cfg.tx_buf = tx;
    e->cfg.tx_cap = tx_cap;
    return 0;
}

bool mqttc_engine_idle(const mqttc_engine *e)
{
    return e->depth == 0 && e->pubs.next == &e->pubs && e->reqs.next == &e->reqs &&
           e->tx_used == 0 && e->seg_count == 0 && !e->dec.in_publish &&
           e->dec.start == e->dec.end && !e->disconnect_pending;
}

uint8_t *mqttc_engine_rx_space(mqttc_engine *e, size_t *n)
{
    if (e->rx_blocked || e->state == MQTTC_STATE_OFFLINE) {
        *n = 0;
        return e->cfg.rx_buf;
    }
    return mqttc_decoder_space(&e->dec, n);
}

int mqttc_engine_rx_commit(mqttc_engine *e, size_t n, uint32_t now)
{
    e->now = now;
    if (e->state == MQTTC_STATE_OFFLINE) {
        return MQTTC_ERR_NOT_CONNECTED;
    }
    if (n > 0) {
        e->last_rx = now;
    }
    if (!live(e)) { /* CLOSING: nothing more may be answered, drop input */
        return 0;
    }
    mqttc_decoder_commit(&e->dec, n);
    return process(e);
}

int mqttc_engine_recv(mqttc_engine *e, const uint8_t *data, size_t len, uint32_t now)
{
    size_t done = 0;
    if (e == NULL || (data == NULL && len > 0)) {
        return MQTTC_ERR_INVALID_ARG;
    }
    if (e->state == MQTTC_STATE_CLOSING) {
        e->now = now;
        return (int)(len > INT32_MAX ? INT32_MAX : len);
    }
    while (done < len) {
        size_t room;
        uint8_t *dst = mqttc_engine_rx_space(e, &room);
        int rc;
        if (room == 0) {
            break;
        }
        room = room < len - done ? room : len - done;
        memcpy(dst, data + done, room);
        rc = mqttc_engine_rx_commit(e, room, now);
        done += room;
        if (rc < 0) {
            return rc;
        }
    }
    if (e->state == MQTTC_STATE_OFFLINE && done == 0 && len > 0) {
        return MQTTC_ERR_NOT_CONNECTED;
    }
    return (int)(done > INT32_MAX ? INT32_MAX : done);
}

size_t mqttc_engine_output(mqttc_engine *e, mqttc_iov *iov, size_t max)
{
    size_t i, n = e->seg_count < max ? e->seg_count : max;
    for (i = 0; i < n; i++) {
        iov[i] = e->seg[i];
    }
    if (n > 0) {
        iov[0].base = (const uint8_t *)iov[0].base + e->seg_off;
        iov[0].len -= e->seg_off;
    }
    return n;
}

bool mqttc_engine_want_write(const mqttc_engine *e)
{
    return e->seg_count > 0;
}

/* Drop `n` written bytes from the front of the segments. */
static void advance_output(mqttc_engine *e, size_t n)
{
    size_t drop = 0;
    while (n > 0 && drop < e->seg_count) {
        size_t left = e->seg[drop].len - e->seg_off;
        size_t step = n < left ? n : left;
        e->seg_off += step;
        e->stream_written += step;
        n -= step;
        if (e->seg_off == e->seg[drop].len) {
            drop++;
            e->seg_off = 0;
        }
    }
    if (drop > 0) {
        e->seg_count = (uint8_t)(e->seg_count - drop);
        memmove(e->seg, e->seg + drop, e->seg_count * sizeof e->seg[0]);
    }
    if (e->seg_count == 0) {
        e->tx_used = 0;
        e->tail_staging = false;
    }
}

/* Messages whose last byte is now written: QoS 0 is done, QoS 1/2 await acks. */
static void complete_writes(mqttc_engine *e)
{
    while (e->pub_writing != NULL && e->pub_writing->end_ <= e->stream_written) {
        mqttc_message *m = e->pub_writing;
        mqttc_link *l = m->link_.next;
        while (l != e->pub_next && MSG_OF(l)->state_ != MSG_WRITING) {
            l = l->next;
        }
        e->pub_writing = l != e->pub_next ? MSG_OF(l) : NULL;
        if (m->qos == 0) {
            hand_back(e, m, 0);
        } else {
            m->state_ = MSG_AWAIT_ACK;
        }
    }
}

int mqttc_engine_consume(mqttc_engine *e, size_t n, uint32_t now)
{
    e->now = now;
    if (n == 0 || e->state == MQTTC_STATE_OFFLINE) {
        return 0;
    }
    e->last_tx = now;
    advance_output(e, n);
    complete_writes(e);
    if (e->disconnect_end != 0 && e->stream_written >= e->disconnect_end) {
        go_offline(e, 0);
        return 0;
    }
    pump(e);
    if (e->rx_blocked && live(e)) {
        return process(e);
    }
    return settle(e, 0);
}

int mqttc_engine_tick(mqttc_engine *e, uint32_t now)
{
    uint32_t ka_ms = (uint32_t)e->conn.keepalive * 1000u;
    int reason = 0;
    e->now = now;
    if (e->state == MQTTC_STATE_CONNECTING &&
        elapsed(now, e->connect_sent, e->cfg.connack_timeout_ms)) {
        reason = MQTTC_ERR_CONNACK_TIMEOUT;
    } else if (e->state == MQTTC_STATE_CONNECTED && ka_ms > 0) {
        if (e->ping_outstanding) {
            if (elapsed(now, e->ping_sent, e->ping_timeout)) {
                reason = MQTTC_ERR_KEEPALIVE_TIMEOUT;
            }
        } else if (elapsed(now, e->last_tx, ka_ms) || elapsed(now, e->last_rx, ka_ms)) {
            /* If tx_buf is full the link is stalled: the timeout still runs. */
            put_small(e, MQTTC_PINGREQ, 0);
            e->ping_outstanding = true;
            e->ping_sent = now;
        }
    }
    if (reason != 0) {
        go_offline(e, reason);
        return reason;
    }
    return 0;
}

static uint32_t until(uint32_t now, uint32_t since, uint32_t ms)
{
    uint32_t gone = now - since;
    return gone >= ms ? 0 : ms - gone;
}

uint32_t mqttc_engine_next_timeout(const mqttc_engine *e, uint32_t now)
{
    uint32_t ka_ms = (uint32_t)e->conn.keepalive * 1000u;
    uint32_t a, b;
    if (e->state == MQTTC_STATE_CONNECTING) {
        return until(now, e->connect_sent, e->cfg.connack_timeout_ms);
    }
    if (e->state != MQTTC_STATE_CONNECTED || ka_ms == 0) {
        return MQTTC_NO_TIMEOUT;
    }
    if (e->ping_outstanding) {
        return until(now, e->ping_sent, e->ping_timeout);
    }
    a = until(now, e->last_tx, ka_ms);
    b = until(now, e->last_rx, ka_ms);
    return a < b ? a : b;
}

mqttc_state mqttc_engine_state(const mqttc_engine *e)
{
    return e->state;
}

uint32_t mqttc_engine_queued(const mqttc_engine *e)
{
    return e->pub_count;
}

uint16_t mqttc_engine_inflight(const mqttc_engine *e)
{
    return e->inflight;
}

int mqttc_engine_abandon(mqttc_engine *e, void (*on_msg)(void *user, mqttc_message *m),
                         void (*on_req)(void *user, mqttc_request *r), void *user)
{
    if (e->state != MQTTC_STATE_OFFLINE || e->depth > 0) {
        return MQTTC_ERR_BAD_STATE;
    }
    while (e->pubs.next != &e->pubs) {
        mqttc_message *m = MSG_OF(e->pubs.next);
        unlink_msg(e, m);
        if (on_msg != NULL) {
            on_msg(user, m);
        }
    }
    while (e->reqs.next != &e->reqs) {
        mqttc_request *r = REQ_OF(e->reqs.next);
        list_remove(&r->link_);
        if (on_req != NULL) {
            on_req(user, r);
        }
    }
    e->pub_next = &e->pubs;
    e->req_next = &e->reqs;
    return 0;
}
