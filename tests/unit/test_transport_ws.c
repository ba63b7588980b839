/* The WebSocket transport, three ways:
 *
 * - over a fake inner transport (fake_io: scripted server bytes, captured
 *   client bytes, reads and writes cut short on demand): the upgrade request,
 *   the handshake in any chunking, frame reassembly, every protocol error,
 *   pings, close, partial writes; and the reply parser on its own;
 * - over TCP against a scripted WebSocket server on a loopback thread: refused
 *   upgrades, a wrong Accept and a missing subprotocol through the client
 *   API (error code and detail), then the transport API: a CONNACK in four
 *   1-byte frames, CONNACK + SUBACK in one frame, ping/pong, a server close, a
 *   masked server frame, and the client's frames checked masked by the server;
 * - through the client API against mosquitto's WebSocket listener: QoS 0/1/2,
 *   a 64 KiB message, and reconnecting after a broker restart.
 *
 * Only 127.0.0.1; every wait is bounded. The server thread never calls
 * cmocka: it writes what went wrong into srv.failure, which the test checks
 * after joining it. */
#define _GNU_SOURCE

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../src/transport.h"
#include "../../src/ws_http.h"
#include "itest.h"

#define DEADLINE_MS 5000
#define T IT_TIMEOUT_MS
#define FAKE_IN_MAX (1u << 17)

/* RFC 6455 section 1.3's example. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define ACCEPT_MARK "@ACCEPT@" /* replaced by the real Sec-WebSocket-Accept */

#define GOOD_REPLY                                                                               \
    "HTTP/1.1 101 Switching Protocols\r\n"                                                      \
    "Upgrade: websocket\r\n"                                                                     \
    "Connection: Upgrade\r\n"                                                                    \
    "Sec-WebSocket-Accept: " ACCEPT_MARK "\r\n"                                                  \
    "Sec-WebSocket-Protocol: mqtt\r\n"                                                           \
    "\r\n"

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* `text` with ACCEPT_MARK replaced by the accept for `key`, into out. */
static size_t with_accept(const char *text, const char *key, char *out, size_t cap)
{
    char accept[MQTTC__WS_ACCEPT_SIZE];
    const char *mark = strstr(text, ACCEPT_MARK);
    int n;

    if (mqttc__ws_accept(key, accept) != 0) {
        return 0;
    }
    if (mark == NULL) {
        n = snprintf(out, cap, "%s", text);
    } else {
        n = snprintf(out, cap, "%.*s%s%s", (int)(mark - text), text, accept,
                     mark + strlen(ACCEPT_MARK));
    }
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* The Sec-WebSocket-Key of a request, into key (25 bytes). */
static bool request_key(const char *req, size_t len, char *key)
{
    static const char name[] = "Sec-WebSocket-Key: ";
    const char *p = memmem(req, len, name, sizeof(name) - 1);
    const char *end;

    if (p == NULL) {
        return false;
    }
    p += sizeof(name) - 1;
    end = memmem(p, len - (size_t)(p - req), "\r\n", 2);
    if (end == NULL || end - p != MQTTC__WS_KEY_SIZE - 1) {
        return false;
    }
    memcpy(key, p, MQTTC__WS_KEY_SIZE - 1);
    key[MQTTC__WS_KEY_SIZE - 1] = '\0';
    return true;
}

/* A server frame (unmasked unless `mask`), shortest length encoding. */
static size_t frame(uint8_t *dst, uint8_t b0, const void *payload, size_t len, const uint8_t *mask)
{
    size_t h = 0;
    const uint8_t *p = payload;

    dst[h++] = b0;
    if (len < 126) {
        dst[h++] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        dst[h++] = 126;
        dst[h++] = (uint8_t)(len >> 8);
        dst[h++] = (uint8_t)len;
    } else {
        dst[h++] = 127;
        for (int s = 56; s >= 0; s -= 8) {
            dst[h++] = (uint8_t)((uint64_t)len >> s);
        }
    }
    if (mask != NULL) {
        dst[1] |= 0x80;
        memcpy(dst + h, mask, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++) {
        dst[h + i] = mask != NULL ? p[i] ^ mask[i & 3] : p[i];
    }
    return h + len;
}

/* One client frame from p[0..n): its length, or 0 if incomplete or not
 * masked. The payload is unmasked into `payload` (cap bytes). */
typedef struct cframe {
    uint8_t b0;
    uint8_t mask[4];
    size_t len;
} cframe;

static size_t client_frame(const uint8_t *p, size_t n, cframe *f, uint8_t *payload, size_t cap)
{
    size_t h = 2;
    uint64_t len;

    if (n < 2 || (p[1] & 0x80) == 0) {
        return 0;
    }
    f->b0 = p[0];
    len = p[1] & 0x7F;
    if (len >= 126) {
        size_t k = len == 126 ? 2 : 8;
        if (n < 2 + k) {
            return 0;
        }
        len = 0;
        for (size_t i = 0; i < k; i++) {
            len = len << 8 | p[2 + i];
        }
        h += k;
    }
    if (n < h + 4 || n - h - 4 < len || len > cap) {
        return 0;
    }
    memcpy(f->mask, p + h, 4);
    h += 4;
    for (size_t i = 0; i < len; i++) {
        payload[i] = p[h + i] ^ f->mask[i & 3];
    }
    f->len = (size_t)len;
    return h + (size_t)len;
}

/* ---- a fake inner transport ------------------------------------------------ */

typedef struct fake_io {
    uint8_t in[FAKE_IN_MAX]; /* what the "server" sends */
    size_t in_len, in_pos;
    size_t read_max; /* bytes per read() at most (0: any) */
    bool eof;        /* read() past in_len: end of stream instead of would-block */
    uint8_t *out;    /* what the WebSocket transport wrote */
    size_t out_len, out_cap;
    size_t budget; /* bytes writev() takes before it would block (SIZE_MAX: any) */
    int write_error;
    int connect_again; /* connect() calls to answer MQTTC__AGAIN */
    int connect_error;
    int detail;
    bool has_pending; /* pending() reports the unread input (like TLS records) */
    bool destroyed;
} fake_io;

typedef struct fake_transport {
    mqttc_transport base;
    fake_io *io;
} fake_transport;

static int fake_connect(mqttc_transport *base)
{
    fake_io *io = ((fake_transport *)base)->io;
    if (io->connect_again > 0) {
        io->connect_again--;
        return MQTTC__AGAIN;
    }
    base->detail = io->detail;
    return io->connect_error;
}

static long fake_read(mqttc_transport *base, uint8_t *buf, size_t cap)
{
    fake_io *io = ((fake_transport *)base)->io;
    size_t n = io->in_len - io->in_pos;

    if (n == 0) {
        return io->eof ? MQTTC_ERR_CLOSED_BY_PEER : 0;
    }
    n = n < cap ? n : cap;
    n = io->read_max != 0 && io->read_max < n ? io->read_max : n;
    memcpy(buf, io->in + io->in_pos, n);
    io->in_pos += n;
    return (long)n;
}

static long fake_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    fake_io *io = ((fake_transport *)base)->io;
    size_t total = 0;

    if (io->write_error != 0) {
        base->detail = io->detail;
        return io->write_error;
    }
    for (size_t i = 0; i < n && total < io->budget; i++) {
        size_t m = iov[i].len < io->budget - total ? iov[i].len : io->budget - total;
        if (io->out_len + m > io->out_cap) {
            io->out_cap = (io->out_len + m) * 2;
            io->out = realloc(io->out, io->out_cap);
            assert_non_null(io->out);
        }
        memcpy(io->out + io->out_len, iov[i].base, m);
        io->out_len += m;
        total += m;
    }
    if (io->budget != SIZE_MAX) {
        io->budget -= total;
    }
    return (long)total;
}

static int fake_fd(const mqttc_transport *base)
{
    (void)base;
    return 42;
}

static int fake_want(const mqttc_transport *base)
{
    return ((const fake_transport *)base)->io->connect_again > 0 ? MQTTC_WANT_WRITE : 0;
}

static size_t fake_pending(const mqttc_transport *base)
{
    const fake_io *io = ((const fake_transport *)base)->io;
    return io->has_pending ? io->in_len - io->in_pos : 0;
}

static void fake_destroy(mqttc_transport *base)
{
    ((fake_transport *)base)->io->destroyed = true;
    free(base);
}

static const mqttc_transport_vtable fake_vtable = {
    .name = "fake",
    .connect = fake_connect,
    .read = fake_read,
    .writev = fake_writev,
    .fd = fake_fd,
    .want = fake_want,
    .destroy = fake_destroy,
    .pending = fake_pending,
};

static fake_io *fake_new(void)
{
    fake_io *io = calloc(1, sizeof(*io));
    assert_non_null(io);
    io->budget = SIZE_MAX;
    return io;
}

static void fake_free(fake_io *io)
{
    free(io->out);
    free(io);
}

static mqttc_transport *fake_inner(fake_io *io)
{
    fake_transport *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->base.vt = &fake_vtable;
    f->io = io;
    return &f->base;
}

static void fake_feed(fake_io *io, const void *p, size_t n)
{
    assert_true(io->in_len + n <= FAKE_IN_MAX);
    memcpy(io->in + io->in_len, p, n);
    io->in_len += n;
}

/* A WebSocket transport over `io`, connected up to the point where it waits
 * for the reply; then `reply` (ACCEPT_MARK replaced) is fed. Returns the
 * transport and the reply's length; the request is left in io->out. */
static mqttc_transport *fake_ws(fake_io *io, const char *reply, size_t *reply_len)
{
    mqttc_transport *t;
    char key[MQTTC__WS_KEY_SIZE], text[1024];
    size_t n;

    assert_int_equal(mqttc__ws_open(fake_inner(io), "127.0.0.1", 8083, "/mqtt", &t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_READ);
    assert_true(request_key((const char *)io->out, io->out_len, key));
    n = with_accept(reply, key, text, sizeof(text));
    assert_true(n > 0);
    fake_feed(io, text, n);
    if (reply_len != NULL) {
        *reply_len = n;
    }
    return t;
}

/* A connected WebSocket transport over `io`, with io->out emptied. */
static mqttc_transport *fake_open(fake_io *io)
{
    size_t n;
    mqttc_transport *t = fake_ws(io, GOOD_REPLY, &n);

    assert_int_equal(t->vt->connect(t), 0);
    assert_int_equal(io->in_pos, n);
    io->out_len = 0;
    return t;
}

/* The client frames in io->out[from..]: their count; the first `max` are
 * described in f[] with payloads concatenated into `payload`. Fails the
 * test on an unmasked or truncated frame. */
static size_t fake_frames(const fake_io *io, size_t from, cframe *f, size_t max, uint8_t *payload,
                          size_t cap)
{
    size_t n = 0, used = 0;

    while (from < io->out_len) {
        cframe tmp;
        size_t k = client_frame(io->out + from, io->out_len - from, n < max ? &f[n] : &tmp,
                                payload + used, cap - used);
        assert_true(k > 0);
        used += n < max ? f[n].len : 0;
        from += k;
        n++;
    }
    return n;
}

/* ---- the upgrade request and the handshake (fake) -------------------------- */

static void request_is_a_valid_upgrade(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t;
    char first[MQTTC__WS_KEY_SIZE], second[MQTTC__WS_KEY_SIZE];
    const char *expect_head = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:8083\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
    const char *expect_tail = "\r\nSec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    size_t hl = strlen(expect_head), tl = strlen(expect_tail);
    (void)state;

    t = fake_ws(io, GOOD_REPLY, NULL);
    assert_int_equal(io->out_len, hl + 24 + tl);
    assert_memory_equal(io->out, expect_head, hl);
    assert_memory_equal(io->out + hl + 24, expect_tail, tl);
    assert_true(request_key((const char *)io->out, io->out_len, first));
    assert_int_equal(strspn(first, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "abcdefghijklmnopqrstuvwxyz0123456789+/"),
                     22);
    assert_string_equal(first + 22, "=="); /* 16 bytes */
    assert_int_equal(t->vt->fd(t), 42);
    t->vt->destroy(t);
    assert_true(io->destroyed);

    /* IPv6 literals in brackets; the path as given; a fresh key */
    io->out_len = io->in_len = 0;
    assert_int_equal(mqttc__ws_open(fake_inner(io), "::1", 9001, "/a/b?x=1", &t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_non_null(
        memmem(io->out, io->out_len, "GET /a/b?x=1 HTTP/1.1\r\nHost: [::1]:9001\r\n", 41));
    assert_true(request_key((const char *)io->out, io->out_len, second));
    assert_string_not_equal(first, second);
    t->vt->destroy(t);
    fake_free(io);
}

/* ws:// is TCP wrapped in WebSocket, with the path from the options. */
static void transport_open_picks_ws_over_tcp(void **state)
{
    mqttc_uri uri;
    mqttc_transport_opts opts;
    mqttc_transport *t = NULL;
    (void)state;

    memset(&opts, 0, sizeof(opts));
    opts.ws_path = "/custom";
    assert_int_equal(mqttc_uri_parse("ws://127.0.0.1:8083/custom", &uri), 0);
    assert_int_equal(mqttc__transport_open(&uri, &opts, &t), 0);
    assert_non_null(t);
    assert_string_equal(t->vt->name, "ws");
    assert_int_equal(t->vt->fd(t), -1); /* nothing connected yet */
    t->vt->destroy(t);
    assert_int_equal(mqttc__transport_open(&uri, NULL, &t), 0); /* path: /mqtt */
    t->vt->destroy(t);
}

static void open_refuses_bad_arguments_and_frees_inner(void **state)
{
    static const char *bad_hosts[] = {"", "a b", "a\r\nX: y", "[::1]"};
    static const char *bad_paths[] = {"mqtt", "/a b", "/a\r\n"};
    fake_io *io = fake_new();
    mqttc_transport *t = (mqttc_transport *)io; /* anything but NULL */
    (void)state;

    for (size_t i = 0; i < sizeof(bad_hosts) / sizeof(bad_hosts[0]); i++) {
        io->destroyed = false;
        assert_int_equal(mqttc__ws_open(fake_inner(io), bad_hosts[i], 80, "/", &t),
                         MQTTC_ERR_INVALID_ARG);
        assert_null(t);
        assert_true(io->destroyed);
    }
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        io->destroyed = false;
        assert_int_equal(mqttc__ws_open(fake_inner(io), "h", 80, bad_paths[i], &t),
                         MQTTC_ERR_INVALID_ARG);
        assert_true(io->destroyed);
    }
    io->destroyed = false;
    assert_int_equal(mqttc__ws_open(fake_inner(io), "h", 0, "/", &t), MQTTC_ERR_INVALID_ARG);
    assert_true(io->destroyed);
    assert_int_equal(mqttc__ws_open(NULL, "h", 80, "/", &t), MQTTC_ERR_INVALID_ARG);
    /* NULL or empty path: /mqtt */
    assert_int_equal(mqttc__ws_open(fake_inner(io), "h", 80, NULL, &t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_memory_equal(io->out, "GET /mqtt HTTP/1.1\r\n", 20);
    t->vt->destroy(t);
    fake_free(io);
}

static void handshake_waits_for_the_inner_transport(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t;
    (void)state;

    io->connect_again = 2;
    assert_int_equal(mqttc__ws_open(fake_inner(io), "h", 80, "/mqtt", &t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_WRITE); /* the inner's */
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(io->out_len, 0);
    /* the request goes out in pieces */
    io->budget = 0;
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_WRITE);
    io->budget = 10;
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(io->out_len, 10);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_WRITE);
    io->budget = SIZE_MAX;
    assert_int_equal(t->vt->connect(t), MQTTC__AGAIN);
    assert_int_equal(t->vt->want(t), MQTTC_WANT_READ);
    /* read() and writev() before the end of the handshake */
    assert_int_equal(t->vt->read(t, (uint8_t[4]){0}, 4), MQTTC_ERR_BAD_STATE);
    assert_int_equal(t->vt->writev(t, &(mqttc_iov){"x", 1}, 1), MQTTC_ERR_BAD_STATE);
    t->vt->destroy(t);
    /* the request, and no close frame: there was no WebSocket yet */
    assert_true(io->out_len > 4);
    assert_memory_equal(io->out + io->out_len - 4, "\r\n\r\n", 4);
    assert_int_equal(memmem(io->out, io->out_len, "\r\n\r\n", 4), io->out + io->out_len - 4);
    fake_free(io);
}

static void inner_errors_are_passed_on_with_their_detail(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t;
    (void)state;

    io->connect_error = MQTTC_ERR_TLS_HANDSHAKE;
    io->detail = -0x7780;
    assert_int_equal(mqttc__ws_open(fake_inner(io), "h", 443, "/mqtt", &t), 0);
    assert_int_equal(t->vt->connect(t), MQTTC_ERR_TLS_HANDSHAKE);
    assert_int_equal(t->detail, -0x7780);
    assert_int_equal(t->vt->connect(t), MQTTC_ERR_TLS_HANDSHAKE);
    assert_int_equal(t->vt->want(t), 0);
    t->vt->destroy(t);
    assert_int_equal(io->out_len, 0);
    fake_free(io);

    /* the connection ends in the middle of the reply */
    io = fake_new();
    t = fake_ws(io, "HTTP/1.1 101 Switching", NULL);
    io->eof = true;
    assert_int_equal(t->vt->connect(t), MQTTC_ERR_CLOSED_BY_PEER);
    t->vt->destroy(t);
    fake_free(io);
}

/* The reply and a frame arrive together, in reads of any size: the
 * transport never reads past the blank line, and the frame is delivered. */
static void reply_in_any_chunking_keeps_the_frame_bytes(void **state)
{
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64, 0};
    (void)state;

    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        fake_io *io = fake_new();
        size_t n;
        uint8_t f[16], buf[16];
        mqttc_transport *t = fake_ws(io, GOOD_REPLY, &n);
        size_t fl = frame(f, 0x82, "\x20\x02\x00\x00", 4, NULL);
        int rc;
        long r;

        fake_feed(io, f, fl);
        io->read_max = chunks[c];
        rc = t->vt->connect(t);
        assert_int_equal(rc, 0);
        assert_int_equal(io->in_pos, n);
        assert_int_equal(t->vt->want(t), 0);
        r = 0;
        /* a short inner read counts as drained: 0 now, the rest next time */
        for (int calls = 0; r < 4 && calls < 100; calls++) {
            long k = t->vt->read(t, buf + r, sizeof(buf) - (size_t)r);
            assert_true(k >= 0);
            r += k;
        }
        assert_int_equal(r, 4);
        assert_memory_equal(buf, "\x20\x02\x00\x00", 4);
        assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 0);
        t->vt->destroy(t);
        fake_free(io);
    }
}

static void handshake_failures(void **state)
{
    static const struct {
        const char *reply;
        int rc, detail;
    } cases[] = {
        {"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", MQTTC_ERR_WS_REFUSED, 403},
        {"HTTP/1.1 404 Not Found\r\n\r\n", MQTTC_ERR_WS_REFUSED, 404},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
         MQTTC_ERR_WS_BAD_ACCEPT, 0},
        {"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " ACCEPT_MARK "\r\n\r\n",
         MQTTC_ERR_WS_NO_SUBPROTOCOL, 0},
        {"HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT_MARK
         "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
         MQTTC_ERR_WS_BAD_REPLY, 0},
        {"SSH-2.0-OpenSSH_9.2\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_io *io = fake_new();
        mqttc_transport *t = fake_ws(io, cases[i].reply, NULL);

        io->out_len = 0;
        assert_int_equal(t->vt->connect(t), cases[i].rc);
        assert_int_equal(t->detail, cases[i].detail);
        assert_int_equal(t->vt->connect(t), cases[i].rc);
        assert_int_equal(t->vt->read(t, (uint8_t[4]){0}, 4), cases[i].rc);
        assert_int_equal(t->vt->want(t), 0);
        t->vt->destroy(t);
        assert_int_equal(io->out_len, 0); /* no close frame without a WebSocket */
        fake_free(io);
    }

    /* no blank line within the limit */
    {
        fake_io *io = fake_new();
        mqttc_transport *t = fake_ws(io, "HTTP/1.1 101 Switching Protocols\r\n", NULL);
        char line[64];
        while (io->in_len < MQTTC__WS_REPLY_MAX + 100) {
            int n = snprintf(line, sizeof(line), "X-Filler-%05zu: abcdefghij\r\n", io->in_len);
            fake_feed(io, line, (size_t)n);
        }
        assert_int_equal(t->vt->connect(t), MQTTC_ERR_WS_BAD_REPLY);
        assert_int_equal(io->in_pos, MQTTC__WS_REPLY_MAX);
        t->vt->destroy(t);
        fake_free(io);
    }
}

/* ---- frames in (fake) ------------------------------------------------------ */

/* Read `want` bytes in reads of at most cap_per_read. A read may return 0
 * after a short inner read although the fake has more: give up only after
 * many in a row. */
static size_t read_all(mqttc_transport *t, uint8_t *buf, size_t want, size_t cap_per_read)
{
    size_t got = 0;
    int idle = 0;
    while (got < want && idle < 100) {
        size_t cap = want - got < cap_per_read ? want - got : cap_per_read;
        long r = t->vt->read(t, buf + got, cap);
        assert_true(r >= 0);
        idle = r == 0 ? idle + 1 : 0;
        got += (size_t)r;
    }
    return got;
}

static void frames_reassemble_into_the_stream(void **state)
{
    static const size_t caps[] = {1, 3, 100, 70000};
    static const size_t read_max[] = {0, 1, 7};
    uint8_t *big = malloc(70000), *expect = malloc(70310), *got = malloc(70310);
    uint8_t f[80000];
    (void)state;

    assert_non_null(big);
    assert_non_null(expect);
    assert_non_null(got);
    it_pattern(big, 70000, 1);
    memcpy(expect, "abcdef", 6);
    for (size_t i = 0; i < 300; i++) {
        expect[6 + i] = (uint8_t)i;
    }
    memcpy(expect + 306, big, 70000);
    memcpy(expect + 70306, "xyz!", 4);
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        for (size_t m = 0; m < sizeof(read_max) / sizeof(read_max[0]); m++) {
            fake_io *io = fake_new();
            mqttc_transport *t = fake_open(io);
            cframe fr[4];
            uint8_t pong[256];

            fake_feed(io, f, frame(f, 0x02, "ab", 2, NULL));   /* binary, more to come */
            fake_feed(io, f, frame(f, 0x89, "p", 1, NULL));    /* a ping in between */
            fake_feed(io, f, frame(f, 0x00, "cd", 2, NULL));   /* continuation */
            fake_feed(io, f, frame(f, 0x8A, "x", 1, NULL));    /* an unsolicited pong */
            fake_feed(io, f, frame(f, 0x80, "ef", 2, NULL));   /* last continuation */
            fake_feed(io, f, frame(f, 0x82, "", 0, NULL));     /* empty */
            fake_feed(io, f, frame(f, 0x82, expect + 6, 300, NULL)); /* 16-bit length */
            fake_feed(io, f, frame(f, 0x82, big, 70000, NULL));     /* 64-bit length */
            fake_feed(io, f, frame(f, 0x82, "xyz!", 4, NULL));
            io->read_max = read_max[m];
            memset(got, 0, 70310);
            assert_int_equal(read_all(t, got, 70310, caps[c]), 70310);
            assert_memory_equal(got, expect, 70310);
            assert_int_equal(io->in_pos, io->in_len);
            /* one pong, masked, with the ping's payload */
            assert_int_equal(fake_frames(io, 0, fr, 4, pong, sizeof(pong)), 1);
            assert_int_equal(fr[0].b0, 0x8A);
            assert_int_equal(fr[0].len, 1);
            assert_memory_equal(pong, "p", 1);
            t->vt->destroy(t);
            fake_free(io);
        }
    }
    free(big);
    free(expect);
    free(got);
}

static void protocol_errors_fail_the_connection(void **state)
{
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"text frame", {0x81, 0x01, 'a'}, 3},
        {"reserved opcode 3", {0x83, 0x00}, 2},
        {"reserved control opcode 11", {0x8B, 0x00}, 2},
        {"RSV1", {0xC2, 0x00}, 2},
        {"RSV3", {0x92, 0x00}, 2},
        {"masked", {0x82, 0x81, 1, 2, 3, 4, 'a'}, 7},
        {"fragmented ping", {0x09, 0x00}, 2},
        {"ping of 126 bytes", {0x89, 0x7E, 0x00, 0x7E}, 4},
        {"stray continuation", {0x80, 0x01, 'a'}, 3},
        {"binary inside a fragmented message", {0x02, 0x01, 'a', 0x82, 0x01, 'b'}, 6},
        {"64-bit length with the top bit", {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 1}, 10},
        {"close with a 1-byte body", {0x88, 0x01, 0x03}, 3},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fake_io *io = fake_new();
        mqttc_transport *t = fake_open(io);
        uint8_t buf[8], payload[16];
        cframe fr[2];
        long r;

        fake_feed(io, cases[i].bytes, cases[i].len);
        r = t->vt->read(t, buf, sizeof(buf));
        if (r == 1) { /* "binary inside a fragmented message": 'a' first */
            r = t->vt->read(t, buf, sizeof(buf));
        }
        if (r != MQTTC_ERR_WS_PROTOCOL) {
            fail_msg("%s: read returned %ld", cases[i].name, r);
        }
        assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_WS_PROTOCOL);
        assert_int_equal(t->vt->writev(t, &(mqttc_iov){"x", 1}, 1), MQTTC_ERR_WS_PROTOCOL);
        assert_int_equal(t->vt->want(t), 0);
        t->vt->destroy(t);
        /* a close frame with 1002 (protocol error) on the way out */
        assert_int_equal(fake_frames(io, 0, fr, 2, payload, sizeof(payload)), 1);
        assert_int_equal(fr[0].b0, 0x88);
        assert_int_equal(fr[0].len, 2);
        assert_memory_equal(payload, "\x03\xEA", 2);
        fake_free(io);
    }
}

static void data_before_an_error_comes_first(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    uint8_t f[16], buf[16];
    (void)state;

    fake_feed(io, f, frame(f, 0x82, "abc", 3, NULL));
    fake_feed(io, "\x81\x00", 2);
    assert_int_equal(t->vt->pending(t), 0);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "abc", 3);
    /* the error is owed: read() has something to say without new input */
    assert_int_equal(t->vt->pending(t), 1);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_WS_PROTOCOL);
    assert_int_equal(t->vt->pending(t), 0);
    t->vt->destroy(t);
    fake_free(io);

    /* and before the end of the stream */
    io = fake_new();
    t = fake_open(io);
    fake_feed(io, f, frame(f, 0x82, "abc", 3, NULL));
    io->eof = true;
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 3);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_CLOSED_BY_PEER);
    t->vt->destroy(t);
    assert_int_equal(io->out_len, 0); /* nothing written to a closed connection */
    fake_free(io);
}

/* Input the inner transport holds (TLS records) is passed on by pending(). */
static void inner_pending_input_is_passed_on(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_ws(io, GOOD_REPLY, NULL);
    uint8_t f[16], buf[16];
    (void)state;

    io->has_pending = true;
    fake_feed(io, f, frame(f, 0x82, "abc", 3, NULL));
    assert_int_equal(t->vt->pending(t), 0); /* not during the handshake */
    assert_int_equal(t->vt->connect(t), 0);
    assert_int_equal(t->vt->pending(t), 5);
    assert_int_equal(t->vt->read(t, buf, 2), 2);
    assert_int_equal(t->vt->pending(t), 1);
    assert_int_equal(t->vt->read(t, buf + 2, 2), 1);
    assert_int_equal(t->vt->pending(t), 0);
    assert_memory_equal(buf, "abc", 3);
    t->vt->destroy(t);
    fake_free(io);
}

static void close_frame_is_echoed_and_reported(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    uint8_t f[64], buf[16], payload[32];
    cframe fr[3];
    (void)state;

    fake_feed(io, f, frame(f, 0x82, "ab", 2, NULL));
    fake_feed(io, f, frame(f, 0x88, "\x03\xE9going away", 12, NULL));
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 2);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_WS_CLOSED);
    assert_int_equal(t->detail, 1001);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_WS_CLOSED);
    t->vt->destroy(t);
    /* exactly one close, echoing the status */
    assert_int_equal(fake_frames(io, 0, fr, 3, payload, sizeof(payload)), 1);
    assert_int_equal(fr[0].b0, 0x88);
    assert_int_equal(fr[0].len, 2);
    assert_memory_equal(payload, "\x03\xE9", 2);
    fake_free(io);

    /* without a status: detail 0, an empty close back */
    io = fake_new();
    t = fake_open(io);
    fake_feed(io, "\x88\x00", 2);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_WS_CLOSED);
    assert_int_equal(t->detail, 0);
    t->vt->destroy(t);
    assert_int_equal(fake_frames(io, 0, fr, 3, payload, sizeof(payload)), 1);
    assert_int_equal(fr[0].b0, 0x88);
    assert_int_equal(fr[0].len, 0);
    fake_free(io);
}

/* ---- frames out (fake) ----------------------------------------------------- */

static void writev_sends_one_masked_binary_frame(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    mqttc_iov v[3] = {{"CON", 3}, {"", 0}, {"NECT", 4}};
    uint8_t payload[64];
    cframe fr[3];
    (void)state;

    assert_int_equal(t->vt->writev(t, v, 3), 7);
    assert_int_equal(t->vt->writev(t, v, 3), 7);
    assert_int_equal(t->vt->want(t), 0);
    assert_int_equal(t->vt->writev(t, v, 0), 0);
    assert_int_equal(fake_frames(io, 0, fr, 3, payload, sizeof(payload)), 2);
    assert_int_equal(fr[0].b0, 0x82);
    assert_int_equal(fr[0].len, 7);
    assert_memory_equal(payload, "CONNECTCONNECT", 14);
    assert_memory_not_equal(fr[0].mask, fr[1].mask, 4); /* a fresh mask per frame */
    assert_memory_not_equal(io->out + 6, "CONNECT", 7); /* really masked */
    t->vt->destroy(t);
    /* destroy: a close frame with 1000 after them */
    assert_int_equal(fake_frames(io, 0, fr, 3, payload, sizeof(payload)), 3);
    assert_int_equal(fr[2].b0, 0x88);
    assert_memory_equal(payload + 14, "\x03\xE8", 2);
    fake_free(io);
}

static void writev_frames_at_most_16_kib(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    uint8_t *big = malloc(40000), *payload = malloc(40000);
    mqttc_iov v[2];
    cframe fr[2];
    (void)state;

    assert_non_null(big);
    assert_non_null(payload);
    it_pattern(big, 40000, 2);
    v[0].base = big;
    v[0].len = 100;
    v[1].base = big + 100;
    v[1].len = 39900;
    assert_int_equal(t->vt->writev(t, v, 2), 16384);
    assert_int_equal(io->out[1], 0x80 | 126);
    assert_int_equal(fake_frames(io, 0, fr, 2, payload, 40000), 1);
    assert_int_equal(fr[0].len, 16384);
    assert_memory_equal(payload, big, 16384);
    t->vt->destroy(t);
    free(big);
    free(payload);
    fake_free(io);
}

/* The inner transport takes a few bytes at a time: writev() reports the
 * payload accepted, keeps the rest of the frame, and wants WRITE until it is
 * out; a pong queues behind it. */
static void partial_writes_are_kept_and_flushed(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    uint8_t data[100], payload[256], f[16], buf[8];
    mqttc_iov v = {data, sizeof(data)};
    cframe fr[3];
    (void)state;

    it_pattern(data, sizeof(data), 3);
    io->budget = 5;
    assert_int_equal(t->vt->writev(t, &v, 1), 100);
    assert_int_equal(io->out_len, 5);
    assert_int_equal(t->vt->want(t) & MQTTC_WANT_WRITE, MQTTC_WANT_WRITE);
    /* more data waits until the frame is out */
    assert_int_equal(t->vt->writev(t, &v, 1), 0);
    assert_int_equal(io->out_len, 5);
    /* a ping meanwhile: its pong goes after the frame */
    fake_feed(io, f, frame(f, 0x89, "hi", 2, NULL));
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), 0);
    for (int calls = 0; (t->vt->want(t) & MQTTC_WANT_WRITE) != 0; calls++) {
        assert_true(calls < 100);
        io->budget = 7;
        assert_int_equal(t->vt->writev(t, NULL, 0), 0); /* flush only */
    }
    assert_int_equal(io->out_len, 106 + 8);
    assert_int_equal(fake_frames(io, 0, fr, 3, payload, sizeof(payload)), 2);
    assert_int_equal(fr[0].b0, 0x82);
    assert_int_equal(fr[0].len, 100);
    assert_memory_equal(payload, data, 100);
    assert_int_equal(fr[1].b0, 0x8A);
    assert_memory_equal(payload + 100, "hi", 2);
    t->vt->destroy(t);
    fake_free(io);
}

static void write_errors_are_passed_on(void **state)
{
    fake_io *io = fake_new();
    mqttc_transport *t = fake_open(io);
    uint8_t buf[8];
    (void)state;

    io->write_error = MQTTC_ERR_CONNECTION_LOST;
    io->detail = 32;
    assert_int_equal(t->vt->writev(t, &(mqttc_iov){"abc", 3}, 1), MQTTC_ERR_CONNECTION_LOST);
    assert_int_equal(t->detail, 32);
    assert_int_equal(t->vt->read(t, buf, sizeof(buf)), MQTTC_ERR_CONNECTION_LOST);
    t->vt->destroy(t);
    fake_free(io);
}

/* ---- the reply parser ------------------------------------------------------ */

static int parse(const char *reply, size_t *used, int *status)
{
    return mqttc__ws_reply_parse((const uint8_t *)reply, strlen(reply), RFC_ACCEPT, used, status);
}

static void reply_parser_accepts_valid_replies(void **state)
{
    static const char *good[] = {
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
        /* case-insensitive names and Upgrade/Connection values, spaces, a list */
        "HTTP/1.1 101 \r\nUPGRADE:WebSocket\r\nconnection: keep-alive, upgrade \r\n"
        "sec-websocket-accept:\t" RFC_ACCEPT " \r\nSEC-WEBSOCKET-PROTOCOL: mqtt\r\n"
        "Server: x\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
        /* no reason phrase; Connection in two fields; an empty extensions field */
        "HTTP/1.1 101\r\nConnection: close\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Extensions:\r\nSec-WebSocket-Protocol: mqtt\r\n"
        "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n",
    };
    char accept[MQTTC__WS_ACCEPT_SIZE];
    (void)state;

    assert_int_equal(mqttc__ws_accept(RFC_KEY, accept), 0);
    assert_string_equal(accept, RFC_ACCEPT);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        size_t used = 0;
        int status = 0;
        assert_int_equal(parse(good[i], &used, &status), 0);
        assert_int_equal(used, strlen(good[i]));
    }
}

static void reply_parser_rejects_bad_replies(void **state)
{
#define UP "Upgrade: websocket\r\n"
#define CONN "Connection: Upgrade\r\n"
#define ACC "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
#define PROTO "Sec-WebSocket-Protocol: mqtt\r\n"
#define S101 "HTTP/1.1 101 Switching Protocols\r\n"
    static const struct {
        const char *reply;
        int rc, status;
    } cases[] = {
        {"HTTP/1.1 403 Forbidden\r\n\r\n", MQTTC_ERR_WS_REFUSED, 403},
        {"HTTP/1.0 404 Not Found\r\nContent-Type: text/html\r\n\r\n", MQTTC_ERR_WS_REFUSED, 404},
        {"HTTP/1.1 200 OK\r\n" UP CONN ACC PROTO "\r\n", MQTTC_ERR_WS_REFUSED, 200},
        {"HTTP/1.1 503 \x01\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"HTTP/1.1 1O1 x\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"HTTP/1.1 099 x\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"HTTP/1.1 101x\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"HTTP/2 101\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"ICY 200 OK\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {"\r\n\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 CONN ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 "Upgrade: h2c\r\n" CONN ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP "Upgrade: h2c\r\n" CONN ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP "Connection: upgraded\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN ACC PROTO "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN ACC ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN ACC PROTO PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN "NoColon\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN "Name : value\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN " folded\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN "X: a\rb\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN "X: a\nb\r\n" ACC PROTO "\r\n", MQTTC_ERR_WS_BAD_REPLY, 0},
        {S101 UP CONN PROTO "\r\n", MQTTC_ERR_WS_BAD_ACCEPT, 0},
        {S101 UP CONN "Sec-WebSocket-Accept: " RFC_KEY "\r\n" PROTO "\r\n",
         MQTTC_ERR_WS_BAD_ACCEPT, 0},
        {S101 UP CONN "Sec-WebSocket-Accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n" PROTO "\r\n",
         MQTTC_ERR_WS_BAD_ACCEPT, 0},
        {S101 UP CONN ACC "\r\n", MQTTC_ERR_WS_NO_SUBPROTOCOL, 0},
        {S101 UP CONN ACC "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n",
         MQTTC_ERR_WS_NO_SUBPROTOCOL, 0},
        {S101 UP CONN ACC "Sec-WebSocket-Protocol: MQTT\r\n\r\n", MQTTC_ERR_WS_NO_SUBPROTOCOL, 0},
        {S101 UP CONN ACC "Sec-WebSocket-Protocol:\r\n\r\n", MQTTC_ERR_WS_NO_SUBPROTOCOL, 0},
    };
#undef UP
#undef CONN
#undef ACC
#undef PROTO
#undef S101
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t used = 12345;
        int status = 0;
        int rc = parse(cases[i].reply, &used, &status);
        if (rc != cases[i].rc || status != cases[i].status) {
            fail_msg("case %zu: %s -> %d (status %d), expected %d (%d)", i, cases[i].reply, rc,
                     status, cases[i].rc, cases[i].status);
        }
        assert_int_equal(used, 12345);
    }
    /* a NUL inside a value */
    {
        static const char nul[] = "HTTP/1.1 101 x\r\nX: a\0b\r\n\r\n";
        size_t used;
        int status;
        assert_int_equal(mqttc__ws_reply_parse((const uint8_t *)nul, sizeof(nul) - 1, RFC_ACCEPT,
                                               &used, &status),
                         MQTTC_ERR_WS_BAD_REPLY);
    }
}

static int parse_n(const void *data, size_t n)
{
    size_t used;
    int status;
    return mqttc__ws_reply_parse(data, n, RFC_ACCEPT, &used, &status);
}

static void reply_parser_needs_the_blank_line_within_8_kib(void **state)
{
    static const char good[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "Sec-WebSocket-Protocol: mqtt\r\n\r\n\x82\x02\x20\x02";
    size_t hlen = sizeof(good) - 1 - 4, used;
    int status;
    char *big = malloc(MQTTC__WS_REPLY_MAX + 16);
    const char *head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                       "Sec-WebSocket-Protocol: mqtt\r\nX-Pad: ";
    size_t pad;
    (void)state;

    assert_non_null(big);
    for (size_t n = 0; n < hlen; n++) {
        assert_int_equal(parse_n(good, n), MQTTC__AGAIN);
    }
    for (size_t n = hlen; n < sizeof(good); n++) {
        used = 0;
        assert_int_equal(
            mqttc__ws_reply_parse((const uint8_t *)good, n, RFC_ACCEPT, &used, &status), 0);
        assert_int_equal(used, hlen); /* the frame after it is not part of the reply */
    }
    /* a header of exactly MQTTC__WS_REPLY_MAX bytes is accepted, one more is not */
    pad = MQTTC__WS_REPLY_MAX - strlen(head) - 4;
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), 'p', pad);
    memcpy(big + strlen(head) + pad, "\r\n\r\n", 4);
    assert_int_equal(mqttc__ws_reply_parse((const uint8_t *)big, MQTTC__WS_REPLY_MAX, RFC_ACCEPT,
                                           &used, &status),
                     0);
    assert_int_equal(used, MQTTC__WS_REPLY_MAX);
    memset(big + strlen(head), 'p', pad + 1);
    memcpy(big + strlen(head) + pad + 1, "\r\n\r\n", 4);
    assert_int_equal(parse_n(big, MQTTC__WS_REPLY_MAX - 1), MQTTC__AGAIN);
    assert_int_equal(parse_n(big, MQTTC__WS_REPLY_MAX + 1), MQTTC_ERR_WS_BAD_REPLY);
    /* LF-only line ends never complete a header */
    memset(big, '\n', MQTTC__WS_REPLY_MAX);
    assert_int_equal(parse_n(big, MQTTC__WS_REPLY_MAX - 1), MQTTC__AGAIN);
    assert_int_equal(parse_n(big, MQTTC__WS_REPLY_MAX), MQTTC_ERR_WS_BAD_REPLY);
    assert_int_equal(mqttc__ws_reply_parse(NULL, 0, RFC_ACCEPT, &used, &status), MQTTC__AGAIN);
    free(big);
}

/* ---- a scripted WebSocket server on a loopback thread --------------------- */

typedef struct srv srv;
typedef void (*srv_script)(srv *s);

struct srv {
    int lfd, fd;
    uint16_t port;
    pthread_t th;
    const char *reply;  /* sent after the request (ACCEPT_MARK replaced) */
    srv_script script;  /* then this */
    char request[4096];
    size_t request_len;
    char failure[256];  /* "" when everything went as the script expected */
    /* what the client sent, for the test to look at */
    uint8_t got[4096];
    size_t got_len;
    uint8_t got_op;
};

static void srv_fail(srv *s, const char *what)
{
    if (s->failure[0] == '\0') {
        snprintf(s->failure, sizeof(s->failure), "%s", what);
    }
}

/* Wait for `events` on the connection: false after DEADLINE_MS. */
static bool srv_wait(srv *s, short events)
{
    struct pollfd p = {.fd = s->fd, .events = events};
    return poll(&p, 1, DEADLINE_MS) == 1;
}

static bool srv_recv(srv *s, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r;
        if (!srv_wait(s, POLLIN)) {
            srv_fail(s, "timed out reading from the client");
            return false;
        }
        r = recv(s->fd, p, n, 0);
        if (r <= 0) {
            srv_fail(s, "the client closed the connection early");
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void srv_send(srv *s, const void *buf, size_t n)
{
    if (send(s->fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        srv_fail(s, "send failed");
    }
}

static void srv_send_frame(srv *s, uint8_t b0, const void *payload, size_t len)
{
    uint8_t f[256];
    srv_send(s, f, frame(f, b0, payload, len, NULL));
}

/* Read one client frame into s->got / s->got_op, checking it is masked. */
static bool srv_recv_frame(srv *s)
{
    uint8_t h[2], ext[8], mask[4];
    uint64_t len;

    if (!srv_recv(s, h, 2)) {
        return false;
    }
    if ((h[1] & 0x80) == 0) {
        srv_fail(s, "a client frame without a mask");
        return false;
    }
    s->got_op = h[0];
    len = h[1] & 0x7F;
    if (len >= 126) {
        size_t k = len == 126 ? 2 : 8;
        if (!srv_recv(s, ext, k)) {
            return false;
        }
        len = 0;
        for (size_t i = 0; i < k; i++) {
            len = len << 8 | ext[i];
        }
    }
    if (len > sizeof(s->got)) {
        srv_fail(s, "a client frame too large for the script");
        return false;
    }
    if (!srv_recv(s, mask, 4) || !srv_recv(s, s->got, (size_t)len)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        s->got[i] ^= mask[i & 3];
    }
    s->got_len = (size_t)len;
    return true;
}

static bool srv_handshake(srv *s)
{
    char key[MQTTC__WS_KEY_SIZE], reply[2048];
    size_t n;

    while (s->request_len < 4 ||
           memcmp(s->request + s->request_len - 4, "\r\n\r\n", 4) != 0) {
        if (s->request_len == sizeof(s->request) || !srv_recv(s, s->request + s->request_len, 1)) {
            srv_fail(s, "no complete upgrade request");
            return false;
        }
        s->request_len++;
    }
    if (!request_key(s->request, s->request_len, key)) {
        srv_fail(s, "no Sec-WebSocket-Key");
        return false;
    }
    n = with_accept(s->reply, key, reply, sizeof(reply));
    srv_send(s, reply, n);
    return true;
}

static void *srv_main(void *arg)
{
    srv *s = arg;
    struct pollfd p = {.fd = s->lfd, .events = POLLIN};
    static const int one = 1;
    char drain[256];

    if (poll(&p, 1, DEADLINE_MS) != 1 || (s->fd = accept(s->lfd, NULL, NULL)) < 0) {
        srv_fail(s, "no connection");
        return NULL;
    }
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (srv_handshake(s) && s->script != NULL) {
        s->script(s);
    }
    /* wait until the client closes, so that nothing it sends meets a reset */
    while (srv_wait(s, POLLIN) && recv(s->fd, drain, sizeof(drain), 0) > 0) {
    }
    return NULL;
}

static srv *srv_start(const char *reply, srv_script script)
{
    srv *s = calloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    assert_non_null(s);
    s->fd = -1;
    s->reply = reply;
    s->script = script;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 4), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
    return s;
}

/* Join the thread (the client side must be closed by now) and free. Returns
 * the failure text in `failure` (copied) so the caller can assert on it. */
static void srv_finish(srv *s, char *failure, size_t cap)
{
    pthread_join(s->th, NULL);
    snprintf(failure, cap, "%s", s->failure);
    if (s->fd >= 0) {
        close(s->fd);
    }
    close(s->lfd);
}

/* ---- the transport API over TCP -------------------------------------------- */

static bool wait_transport(mqttc_transport *t, int want)
{
    struct pollfd p = {.fd = t->vt->fd(t),
                       .events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                                         ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0))};
    return p.fd < 0 || poll(&p, 1, DEADLINE_MS) == 1;
}

static mqttc_transport *ws_connect(uint16_t port)
{
    mqttc_transport *tcp, *t;
    int rc;

    assert_int_equal(mqttc__tcp_open("127.0.0.1", port, &tcp), 0);
    assert_int_equal(mqttc__ws_open(tcp, "127.0.0.1", port, "/mqtt", &t), 0);
    while ((rc = t->vt->connect(t)) == MQTTC__AGAIN) {
        if (!wait_transport(t, t->vt->want(t))) {
            break;
        }
    }
    if (rc != 0) {
        t->vt->destroy(t);
        fail_msg("WebSocket connect: %s", mqttc_strerror(rc));
    }
    return t;
}

/* Read until `n` bytes or an error (returned), polling in between. */
static long ws_read_n(mqttc_transport *t, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        long r = t->vt->read(t, buf + got, n - got);
        if (r < 0) {
            return r;
        }
        got += (size_t)r;
        if (r == 0 && !wait_transport(t, MQTTC_WANT_READ | t->vt->want(t))) {
            break;
        }
    }
    return (long)got;
}

static void ws_write_all(mqttc_transport *t, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        mqttc_iov v = {b, n};
        long w = t->vt->writev(t, &v, 1);
        assert_true(w >= 0);
        if (w == 0) {
            assert_true(wait_transport(t, MQTTC_WANT_WRITE));
        }
        b += w;
        n -= (size_t)w;
    }
    while (t->vt->want(t) & MQTTC_WANT_WRITE) {
        assert_true(wait_transport(t, MQTTC_WANT_WRITE));
        assert_int_equal(t->vt->writev(t, NULL, 0), 0);
    }
}

static const uint8_t CONNECT[] = {0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
                                  0x00, 0x3C, 0x00, 0x00};

/* The client's first frame must be CONNECT, masked, in one binary frame. */
static bool srv_expect_connect(srv *s)
{
    if (!srv_recv_frame(s)) {
        return false;
    }
    if (s->got_op != 0x82 || s->got_len != sizeof(CONNECT) ||
        memcmp(s->got, CONNECT, sizeof(CONNECT)) != 0) {
        srv_fail(s, "the client's first frame is not CONNECT in a binary frame");
        return false;
    }
    return true;
}

static void script_connack_in_four_frames(srv *s)
{
    static const uint8_t connack[4] = {0x20, 0x02, 0x00, 0x00};
    if (!srv_expect_connect(s)) {
        return;
    }
    srv_send_frame(s, 0x82, connack, 1); /* four whole 1-byte binary messages */
    sleep_ms(20);
    srv_send_frame(s, 0x82, connack + 1, 1);
    sleep_ms(20);
    srv_send_frame(s, 0x02, connack + 2, 1); /* ... and, once, fragments */
    sleep_ms(20);
    srv_send_frame(s, 0x80, connack + 3, 1);
}

static void connack_split_over_four_frames(void **state)
{
    srv *s = srv_start(GOOD_REPLY, script_connack_in_four_frames);
    mqttc_transport *t = ws_connect(s->port);
    uint8_t buf[8];
    char failure[256];
    long r;
    (void)state;

    ws_write_all(t, CONNECT, sizeof(CONNECT));
    r = ws_read_n(t, buf, 4);
    t->vt->destroy(t);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(r, 4);
    assert_memory_equal(buf, "\x20\x02\x00\x00", 4);
}

static void script_connack_and_suback(srv *s)
{
    static const uint8_t both[] = {0x20, 0x02, 0x00, 0x00, 0x90, 0x03, 0x00, 0x01, 0x01};
    if (srv_expect_connect(s)) {
        srv_send_frame(s, 0x82, both, sizeof(both));
    }
}

static void connack_and_suback_in_one_frame(void **state)
{
    srv *s = srv_start(GOOD_REPLY, script_connack_and_suback);
    mqttc_transport *t = ws_connect(s->port);
    uint8_t buf[16];
    char failure[256];
    long r1, r2;
    (void)state;

    ws_write_all(t, CONNECT, sizeof(CONNECT));
    r1 = ws_read_n(t, buf, 4); /* what an engine with a 4-byte buffer would do */
    r2 = ws_read_n(t, buf + 4, 5);
    t->vt->destroy(t);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(r1, 4);
    assert_int_equal(r2, 5);
    assert_memory_equal(buf, "\x20\x02\x00\x00\x90\x03\x00\x01\x01", 9);
}

static void script_ping(srv *s)
{
    static const char hello[] = "are you there?";
    if (!srv_expect_connect(s)) {
        return;
    }
    srv_send_frame(s, 0x89, hello, sizeof(hello) - 1);
    if (!srv_recv_frame(s)) {
        return;
    }
    if (s->got_op != 0x8A || s->got_len != sizeof(hello) - 1 ||
        memcmp(s->got, hello, sizeof(hello) - 1) != 0) {
        srv_fail(s, "the ping was not answered by a pong with its payload");
        return;
    }
    srv_send_frame(s, 0x82, "\x20\x02\x00\x00", 4);
}

static void ping_is_answered_with_its_payload(void **state)
{
    srv *s = srv_start(GOOD_REPLY, script_ping);
    mqttc_transport *t = ws_connect(s->port);
    uint8_t buf[8];
    char failure[256];
    long r;
    (void)state;

    ws_write_all(t, CONNECT, sizeof(CONNECT));
    r = ws_read_n(t, buf, 4); /* answers the ping on the way */
    t->vt->destroy(t);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(r, 4);
}

static void script_close(srv *s)
{
    if (!srv_expect_connect(s)) {
        return;
    }
    srv_send_frame(s, 0x88, "\x03\xE9going away", 12);
    if (srv_recv_frame(s) && (s->got_op != 0x88 || s->got_len != 2 || s->got[0] != 0x03 ||
                              s->got[1] != 0xE9)) {
        srv_fail(s, "the close was not answered with a close echoing 1001");
    }
}

static void server_close_is_reported(void **state)
{
    srv *s = srv_start(GOOD_REPLY, script_close);
    mqttc_transport *t = ws_connect(s->port);
    uint8_t buf[8];
    char failure[256];
    long r;
    int detail;
    (void)state;

    ws_write_all(t, CONNECT, sizeof(CONNECT));
    r = ws_read_n(t, buf, 4);
    detail = t->detail;
    t->vt->destroy(t);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(r, MQTTC_ERR_WS_CLOSED);
    assert_int_equal(detail, 1001);
}

static void script_masked(srv *s)
{
    static const uint8_t mask[4] = {1, 2, 3, 4};
    uint8_t f[32];

    if (!srv_expect_connect(s)) {
        return;
    }
    srv_send(s, f, frame(f, 0x82, "\x20\x02\x00\x00", 4, mask));
    /* the client gives up with a close frame, status 1002 */
    if (srv_recv_frame(s) && (s->got_op != 0x88 || s->got_len != 2 || s->got[0] != 0x03 ||
                              s->got[1] != 0xEA)) {
        srv_fail(s, "the masked frame was not answered with a close 1002");
    }
}

static void masked_server_frame_is_refused(void **state)
{
    srv *s = srv_start(GOOD_REPLY, script_masked);
    mqttc_transport *t = ws_connect(s->port);
    uint8_t buf[8];
    char failure[256];
    long r;
    (void)state;

    ws_write_all(t, CONNECT, sizeof(CONNECT));
    r = ws_read_n(t, buf, 4);
    t->vt->destroy(t);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(r, MQTTC_ERR_WS_PROTOCOL);
}

/* ---- the client API against the scripted server -------------------------- */

/* The first ERROR event; static storage, as the client's thread writes it. */
static struct {
    pthread_mutex_t mu;
    int n, code, detail;
    mqttc_error_kind kind;
} first_error = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0};

static void on_error_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    (void)c;
    (void)user;
    if (ev->type == MQTTC_CLIENT_EV_ERROR) {
        pthread_mutex_lock(&first_error.mu);
        if (first_error.n++ == 0) {
            first_error.code = ev->u.error.code;
            first_error.detail = ev->u.error.detail;
            first_error.kind = ev->u.error.kind;
        }
        pthread_mutex_unlock(&first_error.mu);
    }
}

/* Connect a client to a scripted server answering `reply`; the first error. */
static void client_error(const char *reply, int *code, int *detail, mqttc_error_kind *kind)
{
    srv *s = srv_start(reply, NULL);
    mqttc_client_config cfg;
    mqttc_client *c = NULL;
    char uri[64], failure[256];
    uint64_t deadline = broker_now_ms() + DEADLINE_MS;
    int n = 0;

    pthread_mutex_lock(&first_error.mu);
    first_error.n = 0;
    pthread_mutex_unlock(&first_error.mu);
    mqttc_client_config_init(&cfg);
    snprintf(uri, sizeof(uri), "ws://127.0.0.1:%u/mqtt", (unsigned)s->port);
    cfg.uri = uri;
    cfg.client_id = "ws-error";
    cfg.connect_timeout_ms = DEADLINE_MS;
    cfg.on_event = on_error_event;
    if (mqttc_client_create(&cfg, &c) == 0 && mqttc_client_connect(c) == 0) {
        while (n == 0 && broker_now_ms() < deadline) {
            sleep_ms(5);
            pthread_mutex_lock(&first_error.mu);
            n = first_error.n;
            pthread_mutex_unlock(&first_error.mu);
        }
    }
    mqttc_client_destroy(c);
    srv_finish(s, failure, sizeof(failure));
    free(s);
    assert_string_equal(failure, "");
    assert_int_equal(n, 1);
    *code = first_error.code;
    *detail = first_error.detail;
    *kind = first_error.kind;
}

static void refused_upgrades_report_the_status(void **state)
{
    int code, detail;
    mqttc_error_kind kind;
    (void)state;

    client_error("HTTP/1.1 403 Forbidden\r\nContent-Length: 9\r\n\r\nForbidden", &code, &detail,
                 &kind);
    assert_int_equal(code, MQTTC_ERR_WS_REFUSED);
    assert_int_equal(detail, 403);
    assert_int_equal(kind, MQTTC_ERRKIND_CONNECT);
    client_error("HTTP/1.1 404 Not Found\r\n\r\n", &code, &detail, &kind);
    assert_int_equal(code, MQTTC_ERR_WS_REFUSED);
    assert_int_equal(detail, 404);
}

static void wrong_accept_and_missing_subprotocol(void **state)
{
    int code, detail;
    mqttc_error_kind kind;
    (void)state;

    client_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
                 &code, &detail, &kind);
    assert_int_equal(code, MQTTC_ERR_WS_BAD_ACCEPT);
    assert_int_equal(detail, 0);
    client_error("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: " ACCEPT_MARK "\r\n\r\n",
                 &code, &detail, &kind);
    assert_int_equal(code, MQTTC_ERR_WS_NO_SUBPROTOCOL);
}

/* ---- the client API against mosquitto's WebSocket listener ----------------- */

typedef struct ws_broker {
    itest *it;
    uint16_t ws_port;
    char conf[128];
} ws_broker;

static int setup_broker(void **state)
{
    ws_broker *w = calloc(1, sizeof(*w));
    broker_opts o;

    if (w == NULL) {
        return -1;
    }
    w->ws_port = broker_unused_port(false);
    snprintf(w->conf, sizeof(w->conf),
             "listener %u 127.0.0.1\nprotocol websockets\nsocket_domain ipv4",
             (unsigned)w->ws_port);
    broker_opts_init(&o);
    o.extra_conf = w->conf;
    w->it = it_new(&o);
    if (w->it == NULL || w->ws_port == 0) {
        it_free(w->it);
        free(w);
        return -1;
    }
    *state = w;
    return 0;
}

static int teardown_broker(void **state)
{
    ws_broker *w = *state;
    it_free(w->it);
    free(w);
    return 0;
}

static mqttc_client *ws_client(ws_broker *w, const char *id, bool reconnect, it_rec **rec)
{
    mqttc_client_config cfg;
    mqttc_client *c;
    char uri[64];

    it_config(w->it, &cfg, uri, id);
    snprintf(uri, sizeof(uri), "ws://127.0.0.1:%u/mqtt", (unsigned)w->ws_port);
    cfg.uri = uri;
    cfg.auto_reconnect = reconnect;
    cfg.reconnect_ms = 100;
    assert_int_equal(it_client(w->it, &cfg, NULL, NULL, &c, rec), 0);
    assert_int_equal(mqttc_client_connect(c), 0);
    if (!it_wait_count(*rec, NULL, MQTTC_CLIENT_EV_CONNECTED, 1, T)) {
        broker_dump_log(&w->it->b, 2000);
        fail_msg("%s did not connect over WebSocket", id);
    }
    return c;
}

static void subscribe(mqttc_client *c, it_rec *r, const char *filter, int qos)
{
    size_t before = it_count(r, MQTTC_CLIENT_EV_SUBSCRIBED);
    assert_true(mqttc_client_subscribe(c, filter, qos) > 0);
    assert_true(it_wait_count(r, NULL, MQTTC_CLIENT_EV_SUBSCRIBED, before + 1, T));
}

struct topic_n {
    const char *topic;
    size_t n;
};

static bool topic_count_reached(it_rec *r, void *arg)
{
    const struct topic_n *a = arg;
    size_t n = 0;
    for (size_t i = 0; i < r->nmsgs; i++) {
        n += strcmp(r->msgs[i].topic, a->topic) == 0;
    }
    return n >= a->n;
}

static bool wait_topic(it_rec *r, const char *topic, size_t n)
{
    struct topic_n a = {topic, n};
    return it_wait(r, NULL, topic_count_reached, &a, T);
}

static void mosquitto_pubsub_qos_0_1_2(void **state)
{
    ws_broker *w = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = ws_client(w, "ws-sub", false, &rs);
    mqttc_client *pub = ws_client(w, "ws-pub", false, &rp);

    subscribe(sub, rs, "ws/q", 2);
    for (int q = 0; q < 3; q++) {
        char payload[16];
        snprintf(payload, sizeof(payload), "hello qos %d", q);
        assert_true(mqttc_client_publish(pub, "ws/q", payload, strlen(payload), q, false) >= 0);
    }
    assert_true(wait_topic(rs, "ws/q", 3));
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 3, T));
    it_lock(rs);
    for (int q = 0; q < 3; q++) {
        char payload[16];
        long i = it_find_msg(rs, "ws/q", (size_t)q);
        snprintf(payload, sizeof(payload), "hello qos %d", q);
        assert_true(i >= 0);
        assert_int_equal(rs->msgs[i].qos, q);
        assert_int_equal(rs->msgs[i].len, strlen(payload));
        assert_memory_equal(rs->msgs[i].payload, payload, strlen(payload));
    }
    it_unlock(rs);
    assert_int_equal(it_count(rs, MQTTC_CLIENT_EV_ERROR), 0);
    assert_int_equal(it_count(rp, MQTTC_CLIENT_EV_ERROR), 0);
    it_destroy(w->it, pub);
    it_destroy(w->it, sub);
}

static void mosquitto_64_kib_message(void **state)
{
    enum { SIZE = 64 * 1024 };
    ws_broker *w = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = ws_client(w, "ws-big-sub", false, &rs);
    mqttc_client *pub = ws_client(w, "ws-big-pub", false, &rp);
    uint8_t *data = malloc(SIZE);
    long i;

    assert_non_null(data);
    it_pattern(data, SIZE, 64);
    subscribe(sub, rs, "ws/big", 1);
    assert_true(mqttc_client_publish(pub, "ws/big", data, SIZE, 1, false) > 0);
    assert_true(wait_topic(rs, "ws/big", 1));
    assert_true(it_wait_count(rp, NULL, MQTTC_CLIENT_EV_PUBLISHED, 1, T));
    it_lock(rs);
    i = it_find_msg(rs, "ws/big", 0);
    assert_true(i >= 0);
    assert_int_equal(rs->msgs[i].len, SIZE);
    assert_int_equal(rs->msgs[i].total, SIZE);
    assert_memory_equal(rs->msgs[i].payload, data, SIZE);
    it_unlock(rs);
    free(data);
    it_destroy(w->it, pub);
    it_destroy(w->it, sub);
}

static void mosquitto_restart_and_reconnect(void **state)
{
    ws_broker *w = *state;
    it_rec *rs, *rp;
    mqttc_client *sub = ws_client(w, "ws-rs-sub", true, &rs);
    mqttc_client *pub;

    subscribe(sub, rs, "ws/r", 1);
    assert_int_equal(broker_restart(&w->it->b), 0);
    /* the drop, then a new connection and the subscription restored */
    assert_true(it_wait_count(rs, NULL, MQTTC_CLIENT_EV_DISCONNECTED, 1, T));
    if (!it_wait_count(rs, NULL, MQTTC_CLIENT_EV_CONNECTED, 2, T)) {
        broker_dump_log(&w->it->b, 2000);
        fail_msg("no reconnection over WebSocket");
    }
    pub = ws_client(w, "ws-rs-pub", false, &rp);
    /* the restored subscription may still be on its way: publish until one arrives */
    for (int k = 0; k < 50 && it_count_topic(rs, "ws/r") == 0; k++) {
        struct topic_n one = {"ws/r", 1};
        assert_true(mqttc_client_publish(pub, "ws/r", "back", 4, 1, false) > 0);
        (void)it_wait(rs, NULL, topic_count_reached, &one, 200);
    }
    assert_true(it_count_topic(rs, "ws/r") >= 1);
    it_destroy(w->it, pub);
    it_destroy(w->it, sub);
}

int main(void)
{
    const struct CMUnitTest fake[] = {
        cmocka_unit_test(request_is_a_valid_upgrade),
        cmocka_unit_test(transport_open_picks_ws_over_tcp),
        cmocka_unit_test(open_refuses_bad_arguments_and_frees_inner),
        cmocka_unit_test(handshake_waits_for_the_inner_transport),
        cmocka_unit_test(inner_errors_are_passed_on_with_their_detail),
        cmocka_unit_test(reply_in_any_chunking_keeps_the_frame_bytes),
        cmocka_unit_test(handshake_failures),
        cmocka_unit_test(frames_reassemble_into_the_stream),
        cmocka_unit_test(protocol_errors_fail_the_connection),
        cmocka_unit_test(data_before_an_error_comes_first),
        cmocka_unit_test(inner_pending_input_is_passed_on),
        cmocka_unit_test(close_frame_is_echoed_and_reported),
        cmocka_unit_test(writev_sends_one_masked_binary_frame),
        cmocka_unit_test(writev_frames_at_most_16_kib),
        cmocka_unit_test(partial_writes_are_kept_and_flushed),
        cmocka_unit_test(write_errors_are_passed_on),
        cmocka_unit_test(reply_parser_accepts_valid_replies),
        cmocka_unit_test(reply_parser_rejects_bad_replies),
        cmocka_unit_test(reply_parser_needs_the_blank_line_within_8_kib),
    };
    const struct CMUnitTest scripted[] = {
        cmocka_unit_test(connack_split_over_four_frames),
        cmocka_unit_test(connack_and_suback_in_one_frame),
        cmocka_unit_test(ping_is_answered_with_its_payload),
        cmocka_unit_test(server_close_is_reported),
        cmocka_unit_test(masked_server_frame_is_refused),
        cmocka_unit_test(refused_upgrades_report_the_status),
        cmocka_unit_test(wrong_accept_and_missing_subprotocol),
    };
    const struct CMUnitTest mosquitto[] = {
        cmocka_unit_test(mosquitto_pubsub_qos_0_1_2),
        cmocka_unit_test(mosquitto_64_kib_message),
        cmocka_unit_test(mosquitto_restart_and_reconnect),
    };
    int failed = cmocka_run_group_tests_name("ws over a fake transport", fake, NULL, NULL);
    failed += cmocka_run_group_tests_name("ws against a scripted server", scripted, NULL, NULL);
    failed += cmocka_run_group_tests_name("ws against mosquitto", mosquitto, setup_broker,
                                          teardown_broker);
    return failed;
}
