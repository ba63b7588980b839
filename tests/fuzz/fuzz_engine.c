/*
 * libFuzzer target for the session engine (engine.h): the input is what a
 * broker sends, after three configuration bytes.
 *
 * First configuration byte (the transport and the clock):
 *   bits 0-2  receive chunk size (1, 2, 3, 5, 8, 16, 64 bytes per call, or 7:
 *             one whole packet per call, as a broker answering each request)
 *   bit  3    stream_payloads (PUBLISHes larger than rx_buf come in pieces)
 *   bits 4-5  the fake transport's writes: all at once; 1 byte per call;
 *             7 bytes per call and at most 4 calls per turn (a slow link:
 *             output backs up and connections drop mid-packet); 64 bytes
 *   bits 6-7  clock step after each chunk (0 ms, 250 ms, to the engine's
 *             next deadline, 40 s)
 * Second configuration byte (the engine's limits; 0 is a roomy setup):
 *   bit  0    tx_buf of 64 bytes instead of 256 (output back-pressure)
 *   bit  1    queue policy DROP_OLDEST instead of REFUSE
 *   bit  2    queue_max_msgs 4 instead of 8
 *   bit  3    clean_session on every other connection
 *   bits 4-5  inflight_max (3, 1, 2, 20)
 *   bit  6    copy_max 512 instead of 16
 *   bit  7    rx_buf of 64 bytes instead of 128
 * Third configuration byte:
 *   bit  0    offer the inbound QoS 2 bitmap (cfg.inbound_bitmap) when the
 *             4-entry id table overflows (otherwise the engine must close
 *             with MQTTC_ERR_INBOUND_WINDOW_FULL)
 *   bits 1-7  reserved (ignored)
 *
 * The session: CONNECT (client id "fz", keepalive 10 s, a will), two
 * publishes queued offline, then after mqttc_engine_start() three more, a
 * SUBSCRIBE to "a/#" (QoS 1) and "c/+" (QoS 2) and an UNSUBSCRIBE of "a/#".
 * Packet ids are expected to go 1 (msg 1), 2 (msg 2), 3 (msg 3), 4 (msg 4),
 * 5 (SUBSCRIBE), 6 (UNSUBSCRIBE); msg 0 is QoS 0. A seed therefore starts
 * with CONNACK 20 02 00 00 and may acknowledge those ids. When the engine
 * goes offline it is started again (at most MAX_RECONNECTS times) and the
 * rest of the input is the new connection's bytes.
 *
 * A message on topic "x" is a command to the harness, acted on from inside
 * the callback (the engine allows these re-entrant calls): payload 'd' =
 * mqttc_engine_disconnect(), 'l' = mqttc_engine_connection_lost(),
 * 'p' = publish a free message node, 's' = re-issue a free request node.
 * Every message handed back by MQTTC_EV_PUBLISH_DONE is also published again
 * from inside that callback, MAX_REPUBLISH times per input at most.
 *
 * Invariants (abort() on violation): events hand back only nodes the harness
 * gave and each exactly once; payload pieces are in bounds and contiguous;
 * SUBACK codes match the request; everything the engine writes parses as a
 * stream of client packets starting with CONNECT; the engine never stalls
 * (it takes input or has output while connected); at the end,
 * connection_lost + mqttc_engine_abandon() return every node still held.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqttc/codec.h"
#include "mqttc/decoder.h"
#include "mqttc/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_engine: " __VA_ARGS__);                                              \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define NMSG 6
#define NREQ 2
#define MAX_RECONNECTS 4
#define MAX_REPUBLISH 24
#define RX_CAP 128
#define TX_CAP 256

/* 0: one packet per chunk (the fixed header says how long; a malformed one
 * sends the rest of the input at once). */
static const size_t chunk_sizes[8] = {1, 2, 3, 5, 8, 16, 64, 0};
static const size_t write_sizes[4] = {SIZE_MAX, 1, 7, 64};
static const unsigned write_calls[4] = {100000, 100000, 4, 100000};

static bool verbose;

/* ---- fixed session data -------------------------------------------------- */

static const uint8_t payload_big[700] = {1, 2, 3}; /* > copy_max and > TX_CAP */
static const uint8_t payload_mid[40] = {4, 5, 6};
static const mqttc_subscription sub_entries[2] = {
    {{"a/#", 3}, 1},
    {{"c/+", 3}, 2},
};
static const mqttc_str unsub_filters[1] = {{"a/#", 3}};
static const uint16_t inflight_limits[4] = {3, 1, 2, 20};
static mqttc_connect connect_opts;
static const mqttc_connect connect_base = {
    .client_id = {"fz", 2},
    .will_topic = {"will", 4},
    .will_payload = {"gone", 4},
    .keepalive = 10,
    .will_qos = 1,
    .clean_session = false,
};

static void set_message(mqttc_message *m, int i) {
    static const struct {
        const char *topic;
        const uint8_t *payload;
        size_t len;
        uint8_t qos;
    } spec[NMSG] = {
        {"t/0", (const uint8_t *)"q0", 2, 0},
        {"t/1", (const uint8_t *)"hello", 5, 1},
        {"t/2", payload_mid, sizeof payload_mid, 2},
        {"t/3", payload_big, sizeof payload_big, 1},
        {"t/4", NULL, 0, 2},
        {"t/5", payload_mid, 10, 0},
    };
    memset(m, 0, sizeof *m);
    m->topic.data = spec[i].topic;
    m->topic.len = (uint16_t)strlen(spec[i].topic);
    m->payload = spec[i].payload;
    m->payload_len = spec[i].len;
    m->qos = spec[i].qos;
    m->retain = i == 2;
}

/* ---- harness state (reset for every input) --------------------------------- */

static uint8_t rx_buf[RX_CAP];
static uint8_t tx_buf[TX_CAP];
static uint16_t inbound_ids[4];
static uint8_t inbound_bits[MQTTC_INBOUND_BITMAP_SIZE];
static bool offer_bitmap;
static int bitmap_calls;
static mqttc_engine engine;
static mqttc_message msgs[NMSG];
static mqttc_request reqs[NREQ];
static bool msg_busy[NMSG];
static bool msg_released[NMSG]; /* MQTTC_EV_RELEASED seen for the current use */
static bool req_busy[NREQ];
static int republish_budget;
static bool connected;

/* The message being delivered to us in pieces. */
static bool in_message;
static size_t msg_next_offset;
static size_t msg_total;

/* The broker's view: a decoder over what the engine writes. */
static uint8_t broker_buf[512];
static mqttc_decoder broker;
static unsigned broker_packets; /* in this connection */
static bool broker_in_publish;

static volatile uint8_t sink;

static void touch(const void *p, size_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) x ^= b[i];
    sink ^= x;
}

static int msg_index(const mqttc_message *m) {
    for (int i = 0; i < NMSG; i++)
        if (m == &msgs[i]) return i;
    FAIL("event hands back a message node the harness never gave");
}

static int req_index(const mqttc_request *r) {
    for (int i = 0; i < NREQ; i++)
        if (r == &reqs[i]) return i;
    FAIL("event hands back a request node the harness never gave");
}

static void publish(int i) {
    if (msg_busy[i]) return;
    set_message(&msgs[i], i);
    int rc = mqttc_engine_publish(&engine, &msgs[i]);
    if (rc >= 0) {
        if ((msgs[i].qos == 0) != (rc == 0)) FAIL("publish QoS %u got id %d", msgs[i].qos, rc);
        if (rc != msgs[i].packet_id) FAIL("publish returned %d, node says %u", rc, msgs[i].packet_id);
        msg_busy[i] = true;
        msg_released[i] = false;
    } else if (rc != MQTTC_ERR_QUEUE_FULL) {
        FAIL("publish of a valid message failed: %d", rc);
    }
}

static void request(int i) {
    if (req_busy[i]) return;
    memset(&reqs[i], 0, sizeof reqs[i]);
    if (i == 0) {
        reqs[i].kind = MQTTC_REQ_SUBSCRIBE;
        reqs[i].subs = sub_entries;
        reqs[i].count = 2;
    } else {
        reqs[i].kind = MQTTC_REQ_UNSUBSCRIBE;
        reqs[i].filters = unsub_filters;
        reqs[i].count = 1;
    }
    int rc = mqttc_engine_request(&engine, &reqs[i]);
    if (rc <= 0) FAIL("valid request %d refused: %d", i, rc);
    req_busy[i] = true;
}

/* ---- events ---------------------------------------------------------------- */

static void command(const mqttc_publish *m) {
    if (m->topic.len != 1 || m->topic.data[0] != 'x' || m->offset != 0 || m->payload_len == 0)
        return;
    switch (m->payload[0]) {
    case 'd':
        mqttc_engine_disconnect(&engine);
        break;
    case 'l':
        mqttc_engine_connection_lost(&engine, MQTTC_ERR_CONNECTION_LOST);
        break;
    case 'p':
        if (republish_budget > 0) {
            republish_budget--;
            publish(m->payload_len % NMSG);
        }
        break;
    case 's':
        if (republish_budget > 0) {
            republish_budget--;
            request(m->payload_len % NREQ);
        }
        break;
    default:
        break;
    }
}

static void on_message(const mqttc_publish *m) {
    if (!connected) FAIL("message while not connected");
    if (m->topic.len == 0 || m->topic.data == NULL) FAIL("message without topic");
    touch(m->topic.data, m->topic.len);
    if (m->qos > 2) FAIL("message QoS %u", m->qos);
    if (m->offset > m->total_len || m->payload_len > m->total_len - m->offset)
        FAIL("piece %zu+%zu beyond %zu", m->offset, m->payload_len, m->total_len);
    if (m->payload_len > 0) {
        if (m->payload == NULL) FAIL("NULL payload of %zu bytes", m->payload_len);
        touch(m->payload, m->payload_len);
    }
    if (m->offset == 0) {
        if (in_message) FAIL("new message before the last one's %zu of %zu bytes", msg_next_offset, msg_total);
        in_message = true;
        msg_next_offset = 0;
        msg_total = m->total_len;
    }
    if (!in_message || m->offset != msg_next_offset || m->total_len != msg_total)
        FAIL("piece at %zu of %zu, expected %zu of %zu", m->offset, m->total_len, msg_next_offset,
             msg_total);
    msg_next_offset += m->payload_len;
    if (msg_next_offset == msg_total) in_message = false;
    else if (m->payload_len == 0) FAIL("empty piece mid-message");
    command(m);
}

static void on_event(void *user, const mqttc_event *ev) {
    if (user != &engine) FAIL("callback user pointer changed");
    if (verbose && !(ev->type == MQTTC_EV_MESSAGE && ev->u.message.offset > 0))
        fprintf(stderr, "event %d\n", ev->type);
    switch (ev->type) {
    case MQTTC_EV_CONNECTED:
        if (connected) FAIL("CONNECTED twice");
        connected = true;
        break;
    case MQTTC_EV_CLOSED:
        if (verbose) fprintf(stderr, "  closed: %d\n", ev->u.closed.reason);
        if (ev->u.closed.reason > 0) FAIL("closed with positive reason %d", ev->u.closed.reason);
        connected = false;
        in_message = false; /* a cut message starts again at offset 0 */
        break;
    case MQTTC_EV_MESSAGE:
        on_message(&ev->u.message);
        break;
    case MQTTC_EV_PUBLISH_DONE: {
        int i = msg_index(ev->u.publish_done.msg);
        int st = ev->u.publish_done.status;
        if (verbose) fprintf(stderr, "  done: msg %d status %d\n", i, st);
        if (!msg_busy[i]) FAIL("message %d handed back twice", i);
        if (st != 0 && st != MQTTC_ERR_DROPPED && st != MQTTC_ERR_CONNECTION_LOST)
            FAIL("publish_done status %d", st);
        if (st == MQTTC_ERR_CONNECTION_LOST && msgs[i].qos != 0)
            FAIL("QoS %u message handed back as lost", msgs[i].qos);
        if (st == 0 && msgs[i].qos == 2 && !msg_released[i])
            FAIL("QoS 2 message %d completed without RELEASED (PUBREC)", i);
        msg_busy[i] = false;
        if (republish_budget > 0) { /* a re-entrant publish from the callback */
            republish_budget--;
            publish(i);
        }
        break;
    }
    case MQTTC_EV_SUBACK: {
        int i = req_index(ev->u.suback.req);
        if (!req_busy[i]) FAIL("request %d handed back twice", i);
        if (reqs[i].kind != MQTTC_REQ_SUBSCRIBE) FAIL("SUBACK for an UNSUBSCRIBE");
        if (ev->u.suback.count != reqs[i].count) FAIL("SUBACK with %zu codes for %zu filters", ev->u.suback.count, reqs[i].count);
        for (size_t k = 0; k < ev->u.suback.count; k++) {
            uint8_t c = ev->u.suback.codes[k];
            if (c > 2 && c != MQTTC_SUBACK_FAILURE) FAIL("SUBACK code 0x%02x", c);
        }
        req_busy[i] = false;
        break;
    }
    case MQTTC_EV_UNSUBACK: {
        int i = req_index(ev->u.unsuback.req);
        if (!req_busy[i]) FAIL("request %d handed back twice", i);
        if (reqs[i].kind != MQTTC_REQ_UNSUBSCRIBE) FAIL("UNSUBACK for a SUBSCRIBE");
        req_busy[i] = false;
        break;
    }
    case MQTTC_EV_PONG:
        break;
    case MQTTC_EV_RELEASED: {
        int i = msg_index(ev->u.released.msg);
        if (!msg_busy[i]) FAIL("RELEASED for message %d not in the engine", i);
        if (msgs[i].qos != 2) FAIL("RELEASED for a QoS %u message", msgs[i].qos);
        if (msg_released[i]) FAIL("RELEASED twice for message %d", i);
        msg_released[i] = true;
        break;
    }
    case MQTTC_EV_PUBREL:
        if (ev->u.pubrel.packet_id == 0) FAIL("PUBREL event for id 0");
        break;
    default:
        FAIL("unknown event type %d", ev->type);
    }
}

/* ---- the broker side: check what the engine writes ------------------------- */

static void broker_reset(void) {
    mqttc_decoder_reset(&broker);
    broker_packets = 0;
    broker_in_publish = false;
}

static void broker_check(const mqttc_packet *p) {
    if (p->type == MQTTC_PUBLISH && broker_in_publish) {
        if (p->u.publish.offset + p->u.publish.payload_len == p->u.publish.total_len)
            broker_in_publish = false;
        return;
    }
    if (broker_in_publish) FAIL("client packet inside a PUBLISH");
    if (verbose) fprintf(stderr, "client sent type %u\n", p->type);
    if ((broker_packets == 0) != (p->type == MQTTC_CONNECT))
        FAIL("client packet %u is type %u", broker_packets, p->type);
    broker_packets++;
    switch (p->type) {
    case MQTTC_CONNECT:
        if (p->u.connect.client_id.len != 2 || p->u.connect.keepalive != 10) FAIL("CONNECT fields changed");
        break;
    case MQTTC_PUBLISH: {
        const mqttc_publish *pub = &p->u.publish;
        if (pub->topic.len != 3 || pub->topic.data[0] != 't') FAIL("PUBLISH to an unknown topic");
        if (pub->offset + pub->payload_len < pub->total_len) broker_in_publish = true;
        break;
    }
    case MQTTC_PUBACK:
    case MQTTC_PUBREC:
    case MQTTC_PUBREL:
    case MQTTC_PUBCOMP:
    case MQTTC_SUBSCRIBE:
    case MQTTC_UNSUBSCRIBE:
    case MQTTC_PINGREQ:
    case MQTTC_DISCONNECT:
        break;
    default:
        FAIL("client sent a packet of type %u", p->type);
    }
}

static void broker_feed(const uint8_t *b, size_t n) {
    while (n > 0) {
        size_t took = mqttc_decoder_feed(&broker, b, n);
        b += took;
        n -= took;
        mqttc_packet p;
        int rc;
        while ((rc = mqttc_decoder_next(&broker, &p)) > 0) broker_check(&p);
        if (rc < 0) FAIL("engine wrote bytes that do not parse: %d", rc);
        if (took == 0) FAIL("broker-side decoder stalled");
    }
}

/* ---- driving ----------------------------------------------------------------- */

static uint32_t now;
static size_t write_size;
static unsigned write_max_calls;
static int reconnects;
static bool alternate_clean;
static size_t rx_cap;
static uint8_t *rx_base;

/* Write out what the engine has, `write_size` bytes per call, for at most
 * `write_max_calls` calls. */
static void drain_output(void) {
    for (unsigned rounds = 0; mqttc_engine_want_write(&engine); rounds++) {
        if (rounds == write_max_calls) {
            if (write_max_calls >= 100000) FAIL("output never drains");
            return;
        }
        mqttc_iov iov[4];
        size_t n = mqttc_engine_output(&engine, iov, 4);
        if (n == 0 || n > 4) FAIL("want_write but output gives %zu iovecs", n);
        size_t budget = write_size, written = 0;
        for (size_t k = 0; k < n && budget > 0; k++) {
            if (iov[k].len == 0 || iov[k].base == NULL) FAIL("empty iovec");
            size_t w = iov[k].len < budget ? iov[k].len : budget;
            broker_feed(iov[k].base, w);
            written += w;
            budget -= w;
        }
        int rc = mqttc_engine_consume(&engine, written, now);
        if (rc > 0) FAIL("consume returned %d", rc);
        if (mqttc_engine_state(&engine) == MQTTC_STATE_OFFLINE) break;
    }
}

static bool start(void) {
    if (reconnects >= MAX_RECONNECTS) return false;
    reconnects++;
    broker_reset();
    /* The options are only read during start, but the engine may keep the
     * pointer: change them only between connections. */
    connect_opts.clean_session = alternate_clean && (reconnects % 2) == 0;
    int rc = mqttc_engine_start(&engine, &connect_opts, now);
    if (rc != 0) FAIL("start failed: %d", rc);
    if (mqttc_engine_state(&engine) != MQTTC_STATE_CONNECTING) FAIL("not CONNECTING after start");
    return true;
}

/* Give the engine `len` bytes; false when it went offline for good. */
static bool deliver(const uint8_t *b, size_t len, bool direct) {
    unsigned stuck = 0;
    while (len > 0) {
        if (mqttc_engine_state(&engine) == MQTTC_STATE_OFFLINE) return false;
        size_t took;
        if (direct) {
            size_t room = 0;
            uint8_t *sp = mqttc_engine_rx_space(&engine, &room);
            took = len < room ? len : room;
            if (took > 0) {
                if (sp < rx_base || sp + took > rx_base + rx_cap) FAIL("rx_space outside rx_buf");
                memcpy(sp, b, took);
                int rc = mqttc_engine_rx_commit(&engine, took, now);
                if (rc > 0) FAIL("rx_commit returned %d", rc);
            }
        } else {
            int rc = mqttc_engine_recv(&engine, b, len, now);
            if (rc < 0) return false; /* closed: the rest of this chunk is dropped */
            if ((size_t)rc > len) FAIL("recv took %d of %zu", rc, len);
            took = (size_t)rc;
        }
        b += took;
        len -= took;
        bool had_output = mqttc_engine_want_write(&engine);
        drain_output();
        if (took == 0 && !had_output && mqttc_engine_state(&engine) != MQTTC_STATE_OFFLINE) {
            if (++stuck > 2) FAIL("engine stalled: takes no input and has no output (state %d)", mqttc_engine_state(&engine));
        } else {
            stuck = 0;
        }
    }
    return true;
}

/* Length of the packet at the start of `b`, or `len` if it does not parse. */
static size_t packet_length(const uint8_t *b, size_t len) {
    uint8_t first;
    uint32_t remaining;
    int h = mqttc_fixed_header_parse(b, len, &first, &remaining);
    if (h <= 0) return len;
    return (size_t)h + remaining;
}

static void advance_clock(unsigned sel) {
    switch (sel) {
    case 0:
        break;
    case 1:
        now += 250;
        break;
    case 2: {
        uint32_t t = mqttc_engine_next_timeout(&engine, now);
        if (t != MQTTC_NO_TIMEOUT) now += t;
        break;
    }
    default:
        now += 40000;
        break;
    }
    int rc = mqttc_engine_tick(&engine, now);
    if (rc > 0) FAIL("tick returned %d", rc);
    drain_output();
}

static void on_abandon_msg(void *user, mqttc_message *m) {
    (void)user;
    int i = msg_index(m);
    if (!msg_busy[i]) FAIL("abandon returns message %d twice", i);
    msg_busy[i] = false;
}

static void on_abandon_req(void *user, mqttc_request *r) {
    (void)user;
    int i = req_index(r);
    if (!req_busy[i]) FAIL("abandon returns request %d twice", i);
    req_busy[i] = false;
}

static uint8_t *give_bitmap(void *user) {
    if (user != &engine) FAIL("bitmap callback user pointer changed");
    if (bitmap_calls > 0) FAIL("inbound_bitmap asked for again after it was given");
    if (!offer_bitmap) return NULL; /* refused: may be asked again later */
    bitmap_calls++;
    memset(inbound_bits, 0xA5, sizeof inbound_bits); /* the engine must clear it */
    return inbound_bits;
}

static void setup(uint8_t cfg, uint8_t lim, uint8_t opt) {
    memset(msg_busy, 0, sizeof msg_busy);
    memset(req_busy, 0, sizeof req_busy);
    republish_budget = MAX_REPUBLISH;
    connected = false;
    in_message = false;
    reconnects = 0;
    /* Start near the 32-bit wrap so that every session crosses it. */
    now = UINT32_MAX - 30000;
    write_size = write_sizes[(cfg >> 4) & 3];
    write_max_calls = write_calls[(cfg >> 4) & 3];
    alternate_clean = (lim & 0x08) != 0;
    offer_bitmap = (opt & 0x01) != 0;
    bitmap_calls = 0;
    connect_opts = connect_base;
    rx_cap = (lim & 0x80) ? 64 : sizeof rx_buf;

    mqttc_engine_config c;
    memset(&c, 0, sizeof c);
    /* The buffers sit at the end of their arrays, so that ASan sees any
     * access past rx_cap / tx_cap. */
    c.rx_buf = rx_base = rx_buf + sizeof rx_buf - rx_cap;
    c.rx_cap = rx_cap;
    c.tx_cap = (lim & 0x01) ? 64 : sizeof tx_buf;
    c.tx_buf = tx_buf + sizeof tx_buf - c.tx_cap;
    c.inbound_ids = inbound_ids;
    c.inbound_cap = 4;
    c.inbound_bitmap = give_bitmap;
    c.stream_payloads = (cfg & 0x08) != 0;
    c.inflight_max = inflight_limits[(lim >> 4) & 3];
    c.queue_max_msgs = (lim & 0x04) ? 4 : 8;
    c.queue_policy = (lim & 0x02) ? MQTTC_QUEUE_DROP_OLDEST : MQTTC_QUEUE_REFUSE;
    c.queue_max_bytes = 4096;
    c.connack_timeout_ms = 5000;
    c.copy_max = (lim & 0x40) ? 512 : 16;
    c.on_event = on_event;
    c.user = &engine;
    memset(&engine, 0, sizeof engine);
    if (mqttc_engine_init(&engine, &c) != 0) FAIL("engine init failed");
    if (mqttc_decoder_init(&broker, broker_buf, sizeof broker_buf, 0, true) != 0)
        FAIL("broker decoder init failed");
    broker.decode = mqttc_decode; /* the broker reads client packets */
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    uint8_t cfg = data[0];
    uint8_t lim = data[1];
    uint8_t opt = data[2];
    data += 3;
    size -= 3;
    size_t chunk = chunk_sizes[cfg & 7];
    unsigned clock_sel = (cfg >> 6) & 3;
    setup(cfg, lim, opt);

    publish(0);
    publish(1);
    start();
    drain_output();
    publish(2);
    publish(3);
    publish(4);
    request(0);
    request(1);
    drain_output();

    size_t pos = 0;
    for (unsigned turn = 0; pos < size; turn++) {
        if (mqttc_engine_state(&engine) == MQTTC_STATE_OFFLINE) {
            if (!start()) break;
            drain_output(); /* CONNECT goes out before the broker answers */
        }
        size_t n = chunk != 0 ? chunk : packet_length(data + pos, size - pos);
        if (n > size - pos) n = size - pos;
        deliver(data + pos, n, (turn & 1) != 0);
        pos += n;
        advance_clock(clock_sel);
    }

    /* The transport goes away: every node still held must come back. */
    mqttc_engine_connection_lost(&engine, MQTTC_ERR_CONNECTION_LOST);
    if (mqttc_engine_state(&engine) != MQTTC_STATE_OFFLINE) FAIL("not offline after connection_lost");
    if (mqttc_engine_want_write(&engine)) FAIL("output left after connection_lost");
    if (mqttc_engine_abandon(&engine, on_abandon_msg, on_abandon_req, NULL) != 0) FAIL("abandon failed");
    for (int i = 0; i < NMSG; i++)
        if (msg_busy[i]) FAIL("message %d never handed back", i);
    for (int i = 0; i < NREQ; i++)
        if (req_busy[i]) FAIL("request %d never handed back", i);
    if (mqttc_engine_queued(&engine) != 0 || mqttc_engine_inflight(&engine) != 0)
        FAIL("queue not empty after abandon");
    return 0;
}
