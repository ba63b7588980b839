/*
 * libFuzzer target for the WebSocket transport's frame reader and writer
 * (src/transport_ws.c), over a fake inner transport.
 *
 * Input: one configuration byte, then the server's byte stream after a
 * successful handshake (the fake server answers the upgrade request with a
 * valid 101 for the transport's key, then sends the input). The
 * configuration byte picks
 *   bits 0-2  bytes per inner read at most (1, 2, 3, 5, 7, 16, 64, any)
 *   bits 3-5  the caller's buffer (1, 2, 3, 5, 16, 100, 1000, 4096 bytes)
 *   bit  6    the caller writes between reads (1..50 bytes each time)
 *   bit  7    the inner transport takes at most 3 bytes per write, and
 *             every other write none (it would block)
 *
 * Properties checked (abort() on violation), against a whole-buffer model
 * of RFC 6455 written separately below:
 *   - read() delivers exactly the payload bytes of the binary and
 *     continuation frames, in order, never more than asked, then fails with
 *     the model's error (WS_PROTOCOL, WS_CLOSED with the close status as the
 *     detail, or CLOSED_BY_PEER at the end of the input) and keeps failing;
 *   - read() makes progress: the input is consumed in a bounded number of
 *     calls;
 *   - what the transport writes is well-formed client frames: masked, FIN
 *     set, binary, pong or close; the binary payloads are exactly the bytes
 *     writev() accepted, in order; pongs carry ping payloads in order (a ping
 *     may go unanswered only while the writes are stalled); at most one close,
 *     last;
 *   - want() asks for WRITE while bytes are waiting to be written.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport.h"
#include "ws_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "fuzz_ws: " __VA_ARGS__);                                                  \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

static const size_t read_limits[8] = {1, 2, 3, 5, 7, 16, 64, SIZE_MAX};
static const size_t caps[8] = {1, 2, 3, 5, 16, 100, 1000, 4096};

/* ---- growable byte buffers ---------------------------------------------------- */

typedef struct bytes {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n)
{
    if (n == 0) {
        return;
    }
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (b->p == NULL) {
            FAIL("out of memory");
        }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* ---- the fake inner transport ----------------------------------------------- */

typedef struct fake {
    mqttc_transport base;
    bytes in;       /* the 101 reply (once the request is out), then the input */
    const uint8_t *stream;
    size_t stream_len;
    size_t pos;
    size_t read_max;
    bool replied;
    bool slow_writes; /* 3 bytes per write, none every other time */
    bool stalled;     /* slow_writes was on while reading (pongs may be dropped) */
    unsigned writes;
    bytes out;       /* everything the transport wrote */
    size_t request_len;
    bool destroyed;
} fake;

static void reply(fake *f)
{
    static const char name[] = "\r\nSec-WebSocket-Key: ";
    char key[MQTTC__WS_KEY_SIZE], accept[MQTTC__WS_ACCEPT_SIZE], text[256];
    const uint8_t *p = f->out.p;
    size_t k = sizeof(name) - 1, i;
    int n;

    if (f->out.len < 4 || memcmp(p + f->out.len - 4, "\r\n\r\n", 4) != 0) {
        FAIL("reading before the whole request was written");
    }
    for (i = 0; i + k + MQTTC__WS_KEY_SIZE - 1 <= f->out.len; i++) {
        if (memcmp(p + i, name, k) == 0) {
            break;
        }
    }
    if (i + k + MQTTC__WS_KEY_SIZE - 1 > f->out.len) {
        FAIL("no Sec-WebSocket-Key in the request");
    }
    memcpy(key, p + i + k, MQTTC__WS_KEY_SIZE - 1);
    key[MQTTC__WS_KEY_SIZE - 1] = '\0';
    if (mqttc__ws_accept(key, accept) != 0) {
        FAIL("no accept for the key");
    }
    n = snprintf(text, sizeof(text),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                 "Sec-WebSocket-Protocol: mqtt\r\n\r\n",
                 accept);
    bytes_add(&f->in, text, (size_t)n);
    bytes_add(&f->in, f->stream, f->stream_len);
    f->request_len = f->out.len;
    f->replied = true;
}

static int fake_connect(mqttc_transport *base)
{
    (void)base;
    return 0;
}

static long fake_read(mqttc_transport *base, uint8_t *buf, size_t cap)
{
    fake *f = (fake *)base;
    size_t n;

    if (!f->replied) {
        reply(f);
    }
    n = f->in.len - f->pos;
    if (n == 0) {
        return MQTTC_ERR_CLOSED_BY_PEER;
    }
    n = n < cap ? n : cap;
    n = n < f->read_max ? n : f->read_max;
    memcpy(buf, f->in.p + f->pos, n);
    f->pos += n;
    return (long)n;
}

static long fake_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    fake *f = (fake *)base;
    size_t room = SIZE_MAX, total = 0;

    if (f->slow_writes) {
        room = f->writes++ % 2 == 0 ? 0 : 3;
    }
    for (size_t i = 0; i < n && total < room; i++) {
        size_t m = iov[i].len < room - total ? iov[i].len : room - total;
        bytes_add(&f->out, iov[i].base, m);
        total += m;
    }
    return (long)total;
}

static int fake_fd(const mqttc_transport *base)
{
    (void)base;
    return 3;
}

static int fake_want(const mqttc_transport *base)
{
    (void)base;
    return 0;
}

static void fake_destroy(mqttc_transport *base)
{
    ((fake *)base)->destroyed = true;
}

static const mqttc_transport_vtable fake_vtable = {
    .name = "fake",
    .connect = fake_connect,
    .read = fake_read,
    .writev = fake_writev,
    .fd = fake_fd,
    .want = fake_want,
    .destroy = fake_destroy,
};

/* ---- the model: RFC 6455 server frames, read from the whole input ------------ */

typedef struct model {
    bytes data;  /* binary/continuation payloads */
    bytes pings; /* ping payloads, each preceded by its length byte */
    int error;
    int detail;
} model;

static void model_run(const uint8_t *s, size_t n, model *m)
{
    size_t pos = 0;
    bool fragmented = false;

    for (;;) {
        uint8_t b0, b1, op, len7;
        size_t hl;
        uint64_t len;

        if (n - pos < 2) {
            m->error = MQTTC_ERR_CLOSED_BY_PEER;
            return;
        }
        b0 = s[pos];
        b1 = s[pos + 1];
        op = b0 & 0x0F;
        len7 = b1 & 0x7F;
        m->error = MQTTC_ERR_WS_PROTOCOL;
        if ((b0 & 0x70) != 0 || (b1 & 0x80) != 0) {
            return;
        }
        if (op == 0 || op == 2) {
            if (fragmented != (op == 0)) {
                return;
            }
        } else if (op >= 8 && op <= 10) {
            if ((b0 & 0x80) == 0 || len7 > 125) {
                return;
            }
        } else {
            return;
        }
        hl = len7 == 126 ? 4 : len7 == 127 ? 10 : 2;
        if (n - pos < hl) {
            m->error = MQTTC_ERR_CLOSED_BY_PEER;
            return;
        }
        len = len7;
        if (hl > 2) {
            len = 0;
            for (size_t i = 2; i < hl; i++) {
                len = len << 8 | s[pos + i];
            }
            if (hl == 10 && (s[pos + 2] & 0x80) != 0) {
                return;
            }
        }
        pos += hl;
        if (op == 0 || op == 2) {
            size_t avail = (uint64_t)(n - pos) < len ? n - pos : (size_t)len;
            bytes_add(&m->data, s + pos, avail);
            if (avail < len) {
                m->error = MQTTC_ERR_CLOSED_BY_PEER;
                return;
            }
            pos += avail;
            fragmented = (b0 & 0x80) == 0;
            continue;
        }
        if ((uint64_t)(n - pos) < len) {
            m->error = MQTTC_ERR_CLOSED_BY_PEER;
            return;
        }
        if (op == 9) {
            uint8_t l = (uint8_t)len;
            bytes_add(&m->pings, &l, 1);
            bytes_add(&m->pings, s + pos, (size_t)len);
        } else if (op == 8) {
            if (len == 1) {
                return;
            }
            m->error = MQTTC_ERR_WS_CLOSED;
            m->detail = len >= 2 ? s[pos] << 8 | s[pos + 1] : 0;
            return;
        }
        pos += (size_t)len;
    }
}

/* ---- checking what the client wrote ------------------------------------------ */

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31u + 7u);
}

static void check_output(const fake *f, size_t accepted, const model *m, bool complete)
{
    const uint8_t *p = f->out.p + f->request_len;
    size_t n = f->out.len - f->request_len, pos = 0, data = 0, ping = 0;
    bool closed = false;

    while (pos < n) {
        uint8_t b0, b1, mask[4];
        size_t hl = 2, len;

        if (n - pos < 2) {
            break; /* cut short by the end of the connection */
        }
        b0 = p[pos];
        b1 = p[pos + 1];
        if (closed) {
            FAIL("a frame after the close frame");
        }
        if ((b1 & 0x80) == 0 || (b0 & 0xF0) != 0x80) {
            FAIL("a client frame unmasked, not FIN or with RSV bits: %02x %02x", b0, b1);
        }
        len = b1 & 0x7F;
        if (len == 127) {
            FAIL("a 64-bit length for at most 16 KiB");
        }
        if (len == 126) {
            if (n - pos < 4) {
                break;
            }
            len = (size_t)p[pos + 2] << 8 | p[pos + 3];
            hl = 4;
            if (len < 126) {
                FAIL("a 16-bit length for %zu bytes", len);
            }
        }
        if (n - pos < hl + 4) {
            break;
        }
        memcpy(mask, p + pos + hl, 4);
        hl += 4;
        switch (b0 & 0x0F) {
        case 0x2:
            for (size_t i = 0; i < len && pos + hl + i < n; i++) {
                if ((p[pos + hl + i] ^ mask[i & 3]) != pattern(data + i)) {
                    FAIL("binary payload byte %zu differs from what writev() took", data + i);
                }
            }
            data += len;
            break;
        case 0xA:
            if (len > 125) {
                FAIL("a pong of %zu bytes", len);
            }
            /* the next ping (in order) with this payload; skipped ones went unanswered */
            for (;;) {
                size_t pl;
                bool same;
                if (ping >= m->pings.len) {
                    FAIL("a pong for no ping");
                }
                pl = m->pings.p[ping];
                same = pl == len;
                for (size_t i = 0; i < len && same && pos + hl + i < n; i++) {
                    same = (p[pos + hl + i] ^ mask[i & 3]) == m->pings.p[ping + 1 + i];
                }
                ping += 1 + pl;
                if (same) {
                    break;
                }
                if (!f->stalled) {
                    FAIL("a ping went unanswered with writes flowing");
                }
            }
            break;
        case 0x8:
            if (len != 0 && len != 2) {
                FAIL("a close of %zu bytes", len);
            }
            closed = true;
            break;
        default:
            FAIL("a client frame with opcode %u", b0 & 0x0Fu);
        }
        pos += hl + len;
    }
    if (data > accepted) {
        FAIL("%zu payload bytes sent, %zu accepted", data, accepted);
    }
    if (complete && (pos != n || data != accepted)) {
        FAIL("output incomplete: %zu of %zu payload bytes", data, accepted);
    }
    if (complete && !f->stalled && ping != m->pings.len) {
        FAIL("pings unanswered");
    }
}

/* ---- the target ---------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fake f;
    model m;
    bytes got = {NULL, 0, 0};
    mqttc_transport *t;
    uint8_t buf[4096], wbuf[50];
    size_t cap, accepted = 0, calls, limit;
    bool writes;
    int rc, error = 0;

    if (size < 1) {
        return 0;
    }
    memset(&f, 0, sizeof(f));
    memset(&m, 0, sizeof(m));
    f.base.vt = &fake_vtable;
    f.read_max = read_limits[data[0] & 7];
    f.slow_writes = f.stalled = (data[0] & 0x80) != 0;
    f.stream = data + 1;
    f.stream_len = size - 1;
    cap = caps[(data[0] >> 3) & 7];
    writes = (data[0] & 0x40) != 0;
    model_run(data + 1, size - 1, &m);

    if (mqttc__ws_open(&f.base, "broker.example", 443, "/mqtt", &t) != 0) {
        FAIL("open failed");
    }
    /* the request may need several tries when writes stall */
    for (calls = 0; (rc = t->vt->connect(t)) == MQTTC__AGAIN; calls++) {
        if (calls > 10000) {
            FAIL("the handshake does not finish");
        }
    }
    if (rc != 0) {
        FAIL("handshake failed: %d", rc);
    }

    limit = 2 * size + 64;
    for (calls = 0; calls < limit && error == 0; calls++) {
        long r;

        if (writes) {
            size_t k = 1 + calls % sizeof(wbuf);
            mqttc_iov v = {wbuf, k};
            long w;
            for (size_t i = 0; i < k; i++) {
                wbuf[i] = pattern(accepted + i);
            }
            w = t->vt->writev(t, &v, 1);
            if (w > 0) {
                if ((size_t)w > k) {
                    FAIL("writev() took %ld of %zu bytes", w, k);
                }
                accepted += (size_t)w;
            } else if (w < 0 && w != m.error) {
                FAIL("writev() failed with %ld, expected %d", w, m.error);
            }
        }
        r = t->vt->read(t, buf, cap);
        if (r > (long)cap) {
            FAIL("read() returned %ld for a %zu-byte buffer", r, cap);
        }
        if (r > 0) {
            bytes_add(&got, buf, (size_t)r);
        } else if (r < 0) {
            error = (int)r;
        }
        if (error == 0 && (t->vt->want(t) & MQTTC_WANT_READ) != 0) {
            FAIL("want() asks for READ when open");
        }
    }
    if (error == 0) {
        FAIL("no error after %zu reads of a %zu-byte input", calls, size);
    }
    if (error != m.error || (error == MQTTC_ERR_WS_CLOSED && t->detail != m.detail)) {
        FAIL("read() failed with %d (detail %d), the model says %d (%d)", error, t->detail,
             m.error, m.detail);
    }
    if (t->vt->read(t, buf, cap) != error || t->vt->writev(t, NULL, 0) != error ||
        t->vt->want(t) != 0) {
        FAIL("the error is not sticky");
    }
    if (got.len != m.data.len || (got.len > 0 && memcmp(got.p, m.data.p, got.len) != 0)) {
        FAIL("delivered %zu bytes, the model %zu (or different ones)", got.len, m.data.len);
    }
    f.slow_writes = false; /* let destroy() write everything it has */
    f.writes = 0;
    t->vt->destroy(t);
    if (!f.destroyed) {
        FAIL("destroy() left the inner transport");
    }
    check_output(&f, accepted, &m, error != MQTTC_ERR_CLOSED_BY_PEER);
    free(got.p);
    free(f.in.p);
    free(f.out.p);
    free(m.data.p);
    free(m.pings.p);
    return 0;
}
