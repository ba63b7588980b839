/* The WebSocket transport (RFC 6455, client side, subprotocol "mqtt") over
 * any inner transport: TCP for ws://, TLS for wss://.
 *
 * connect() drives the inner transport's connect() to completion, writes the
 * upgrade request and reads the reply (ws_http.c checks it). Then the MQTT
 * byte stream travels in binary frames: read() strips the server's frames
 * (an MQTT packet may span frames, a frame may carry several packets),
 * answers pings and reports a close; writev() sends each call's bytes as one
 * masked binary frame.
 *
 * Nothing received is held back where poll() cannot see it: the reader asks
 * the inner transport for exactly the bytes the current frame still needs
 * (the 2-byte start of a header, then its extended length, then the payload,
 * straight into the caller's buffer), and the reply header is read the same
 * way, never past its blank line. Only incomplete headers and control frames
 * wait here, and the rest of them is still in the socket. So pending() only
 * passes on what the inner transport holds (decrypted TLS records), and an
 * error that read() owes after returning the data in front of it.
 *
 * The framing is written here rather than taken from wslay; see
 * docs/ARCHITECTURE.md. In short: wslay_frame_recv() fills a private 4 KiB
 * buffer ahead of the frame it parses, so what it holds is invisible to
 * poll() and to pending(), and it hands out payload from that buffer, which
 * needs a second copy when the caller's buffer is smaller; its frame API
 * leaves the checks on RSV bits, opcodes, masks and fragmentation to the
 * caller anyway; and wslay_frame_send() commits a header to the socket
 * before any payload is taken, against writev()'s "bytes accepted" contract.
 *
 * Sending: writev() frames up to WS_PAYLOAD_MAX bytes into `out`, masked, and
 * reports them all as written; what the inner transport did not take stays in
 * `out` (want() asks for WRITE) and is written before anything else by the
 * next read() or writev() (a writev() with no bytes only flushes). Pongs and
 * the close frame are queued behind it. */
#include "transport.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "ws_http.h"

#define WS_PAYLOAD_MAX 16384u /* payload bytes one writev() frames at most */
#define WS_HEADER_MAX 14      /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_CONTROL_MAX 125    /* payload of a control frame (RFC 6455 5.5) */
#define WS_CONTROL_FRAME (2 + 4 + WS_CONTROL_MAX)
/* One data frame, a pong and the close frame queued while it goes out. */
#define WS_OUT_CAP (WS_HEADER_MAX + WS_PAYLOAD_MAX + 2 * WS_CONTROL_FRAME)
#define WS_RANDOM_POOL 64     /* random bytes fetched at a time (masks) */
#define WS_FRAMES_PER_READ 64 /* frame headers one read() parses at most */
#define WS_DEFAULT_PATH "/mqtt"

#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_PROTOCOL 1002

enum {
    WS_OP_CONTINUATION = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA
};

typedef enum ws_phase {
    WS_INNER,   /* the inner transport is connecting */
    WS_REQUEST, /* the upgrade request (in `out`) is being written */
    WS_REPLY,   /* the reply header is being read into `reply` */
    WS_OPEN,
    WS_FAILED   /* `error` says why; only destroy() remains */
} ws_phase;

typedef enum ws_rx {
    WS_RX_HEADER,  /* hdr[0..hdr_len) of hdr_need bytes */
    WS_RX_DATA,    /* `left` payload bytes of a binary/continuation frame */
    WS_RX_CONTROL  /* ctl[0..ctl_len) of ctl_need bytes */
} ws_rx;

typedef struct ws_transport {
    mqttc_transport base;
    mqttc_transport *inner;
    ws_phase phase;
    int error;           /* with WS_FAILED */
    bool error_held;     /* read() returned data and owes `error` to the caller */
    bool opened;         /* the handshake completed */
    bool inner_ok;       /* the inner transport never failed: it may be written to */
    bool close_queued;   /* our close frame is in `out` or was sent */
    char accept[MQTTC__WS_ACCEPT_SIZE]; /* the Sec-WebSocket-Accept expected */

    uint8_t *reply; /* MQTTC__WS_REPLY_MAX bytes while WS_REPLY; NULL after */
    size_t reply_len;

    /* Receiving. */
    ws_rx rx;
    uint8_t hdr[WS_HEADER_MAX];
    size_t hdr_len, hdr_need;
    uint8_t opcode;  /* of the frame being read */
    bool fin;
    bool fragmented; /* a binary message continues in a later frame */
    uint64_t left;
    uint8_t ctl[WS_CONTROL_MAX];
    size_t ctl_len, ctl_need;

    /* Sending: out[out_pos..out_len) is still to be written. */
    size_t out_pos, out_len;
    uint8_t pool[WS_RANDOM_POOL];
    size_t pool_pos; /* WS_RANDOM_POOL: empty */
    uint8_t out[WS_OUT_CAP];
} ws_transport;

/* ---- helpers -------------------------------------------------------------- */

static int ws_urandom(uint8_t *buf, size_t len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return MQTTC_ERR_TRANSPORT;
    }
    while (len > 0) {
        ssize_t r = read(fd, buf, len);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            close(fd);
            return MQTTC_ERR_TRANSPORT;
        }
        buf += r;
        len -= (size_t)r;
    }
    close(fd);
    return 0;
}

/* Random bytes from the kernel (getrandom(2), /dev/urandom before Linux 3.17). */
static int ws_getrandom(uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t r = getrandom(buf, len, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno == ENOSYS ? ws_urandom(buf, len) : MQTTC_ERR_TRANSPORT;
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

/* `len` (<= WS_RANDOM_POOL) random bytes: a key's nonce, a frame's mask. */
static int ws_random(ws_transport *t, uint8_t *dst, size_t len)
{
    assert(len <= WS_RANDOM_POOL);
    if (WS_RANDOM_POOL - t->pool_pos < len) {
        int rc = ws_getrandom(t->pool, WS_RANDOM_POOL);
        if (rc < 0) {
            return rc;
        }
        t->pool_pos = 0;
    }
    memcpy(dst, t->pool + t->pool_pos, len);
    memset(t->pool + t->pool_pos, 0, len); /* a used mask is not kept */
    t->pool_pos += len;
    return 0;
}

static int ws_fail(ws_transport *t, int error)
{
    assert(error < 0);
    t->phase = WS_FAILED;
    t->error = error;
    return error;
}

/* The inner transport failed: report its error and detail, and never call
 * it again (but destroy). */
static int ws_inner_failed(ws_transport *t, long error)
{
    t->inner_ok = false;
    t->base.detail = t->inner->detail;
    return ws_fail(t, (int)error);
}

/* Read up to `want` bytes from the inner transport: the count, 0 when it
 * would block, < 0 on failure (the transport failed). */
static long ws_inner_read(ws_transport *t, uint8_t *dst, size_t want)
{
    long r = t->inner->vt->read(t->inner, dst, want);

    assert(r <= (long)want);
    return r < 0 ? ws_inner_failed(t, r) : r;
}

/* Write what `out` holds until it is empty or the inner transport would
 * block: 0, or < 0 when it failed. */
static int ws_flush(ws_transport *t)
{
    while (t->out_pos < t->out_len) {
        mqttc_iov v = {t->out + t->out_pos, t->out_len - t->out_pos};
        long w = t->inner->vt->writev(t->inner, &v, 1);

        if (w < 0) {
            return ws_inner_failed(t, w);
        }
        if (w == 0) {
            return 0;
        }
        assert((size_t)w <= v.len);
        t->out_pos += (size_t)w;
    }
    t->out_pos = t->out_len = 0;
    return 0;
}

/* Room for `need` more bytes at the end of `out`, moving what is left of it
 * to the front if that helps. */
static bool ws_out_room(ws_transport *t, size_t need)
{
    if (WS_OUT_CAP - t->out_len >= need) {
        return true;
    }
    memmove(t->out, t->out + t->out_pos, t->out_len - t->out_pos);
    t->out_len -= t->out_pos;
    t->out_pos = 0;
    return WS_OUT_CAP - t->out_len >= need;
}

/* Append one masked frame carrying the first `len` bytes of the iovecs. The
 * caller made room (ws_out_room()). */
static int ws_frame(ws_transport *t, uint8_t opcode, const mqttc_iov *iov, size_t n, size_t len)
{
    uint8_t *p = t->out + t->out_len;
    uint8_t mask[4];
    size_t k = 0;
    int rc = ws_random(t, mask, sizeof(mask));

    if (rc < 0) {
        return rc;
    }
    *p++ = (uint8_t)(0x80u | opcode); /* FIN: every frame sent is a whole message */
    if (len < 126) {
        *p++ = (uint8_t)(0x80u | len);
    } else if (len <= 0xFFFF) {
        *p++ = 0x80u | 126u;
        *p++ = (uint8_t)(len >> 8);
        *p++ = (uint8_t)len;
    } else {
        *p++ = 0x80u | 127u;
        for (int shift = 56; shift >= 0; shift -= 8) {
            *p++ = (uint8_t)((uint64_t)len >> shift);
        }
    }
    memcpy(p, mask, sizeof(mask));
    p += sizeof(mask);
    for (size_t i = 0; i < n && k < len; i++) {
        const uint8_t *src = iov[i].base;
        size_t m = iov[i].len < len - k ? iov[i].len : len - k;

        for (size_t j = 0; j < m; j++, k++) {
            p[k] = src[j] ^ mask[k & 3];
        }
    }
    assert(k == len);
    t->out_len = (size_t)(p + len - t->out);
    return 0;
}

static int ws_control_frame(ws_transport *t, uint8_t opcode, const uint8_t *payload, size_t len)
{
    mqttc_iov v = {payload, len};

    assert(len <= WS_CONTROL_MAX);
    return ws_frame(t, opcode, &v, 1, len);
}

/* Queue our close frame (once): status `code`, or no body for 0. */
static int ws_queue_close(ws_transport *t, int code)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};

    if (t->close_queued || !ws_out_room(t, WS_CONTROL_FRAME)) {
        return 0;
    }
    t->close_queued = true;
    return ws_control_frame(t, WS_OP_CLOSE, body, code != 0 ? 2 : 0);
}

/* ---- the handshake ---------------------------------------------------------- */

/* How many bytes of "\r\n\r\n" the reply ends with (4: the header is complete). */
static size_t ws_reply_tail(const ws_transport *t)
{
    static const char end[] = "\r\n\r\n";
    const uint8_t *p = t->reply;
    size_t n = t->reply_len;

    for (size_t k = n < 4 ? n : 4; k > 0; k--) {
        if (memcmp(p + n - k, end, k) == 0) {
            return k;
        }
    }
    return 0;
}

static int ws_read_reply(ws_transport *t)
{
    size_t tail = ws_reply_tail(t), used = 0;
    int status = 0, rc;

    /* The blank line can end no sooner than 4 - tail bytes from here, so
     * reading that many never takes a frame byte. */
    while (tail < 4 && t->reply_len < MQTTC__WS_REPLY_MAX) {
        size_t want = 4 - tail, room = MQTTC__WS_REPLY_MAX - t->reply_len;
        long r = ws_inner_read(t, t->reply + t->reply_len, want < room ? want : room);

        if (r <= 0) {
            return r < 0 ? (int)r : MQTTC__AGAIN;
        }
        t->reply_len += (size_t)r;
        tail = ws_reply_tail(t);
    }
    rc = mqttc__ws_reply_parse(t->reply, t->reply_len, t->accept, &used, &status);
    assert(rc != MQTTC__AGAIN);
    if (rc == MQTTC_ERR_WS_REFUSED) {
        t->base.detail = status;
    }
    if (rc < 0) {
        return ws_fail(t, rc);
    }
    assert(used == t->reply_len); /* nothing was read past the header */
    free(t->reply);
    t->reply = NULL;
    t->opened = true;
    t->phase = WS_OPEN;
    return 0;
}

static int ws_connect(mqttc_transport *base)
{
    ws_transport *t = (ws_transport *)base;
    int rc;

    if (t->phase == WS_INNER) {
        rc = t->inner->vt->connect(t->inner);
        if (rc < 0) {
            return ws_inner_failed(t, rc);
        }
        if (rc != 0) {
            return MQTTC__AGAIN;
        }
        t->phase = WS_REQUEST;
    }
    if (t->phase == WS_REQUEST) {
        rc = ws_flush(t);
        if (rc < 0) {
            return rc;
        }
        if (t->out_len > 0) {
            return MQTTC__AGAIN;
        }
        t->phase = WS_REPLY;
    }
    if (t->phase == WS_REPLY) {
        return ws_read_reply(t);
    }
    return t->phase == WS_OPEN ? 0 : t->error;
}

/* ---- receiving -------------------------------------------------------------- */

/* The first two bytes of a server frame are in: check them and learn how
 * long the header is. */
static int ws_header_start(ws_transport *t)
{
    uint8_t b0 = t->hdr[0], b1 = t->hdr[1], len7 = b1 & 0x7Fu;

    t->fin = (b0 & 0x80u) != 0;
    t->opcode = b0 & 0x0Fu;
    if ((b0 & 0x70u) != 0 || (b1 & 0x80u) != 0) {
        return MQTTC_ERR_WS_PROTOCOL; /* RSV bits without an extension; a masked frame */
    }
    switch (t->opcode) {
    case WS_OP_CONTINUATION:
    case WS_OP_BINARY:
        if (t->fragmented != (t->opcode == WS_OP_CONTINUATION)) {
            return MQTTC_ERR_WS_PROTOCOL; /* a stray continuation, or an interrupted message */
        }
        break;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!t->fin || len7 > WS_CONTROL_MAX) {
            return MQTTC_ERR_WS_PROTOCOL;
        }
        break;
    default:
        return MQTTC_ERR_WS_PROTOCOL; /* text (MQTT is binary, MQTT-6.0.0-1), reserved */
    }
    t->hdr_need = 2 + (len7 == 126 ? 2u : len7 == 127 ? 8u : 0u);
    return 0;
}

/* The whole header is in: start reading the payload. */
static void ws_header_done(ws_transport *t)
{
    uint8_t len7 = t->hdr[1] & 0x7Fu;
    uint64_t len = len7;

    if (len7 >= 126) {
        len = 0;
        for (size_t i = 2; i < t->hdr_need; i++) {
            len = len << 8 | t->hdr[i];
        }
    }
    t->hdr_len = 0;
    t->hdr_need = 2;
    if (t->opcode == WS_OP_CONTINUATION || t->opcode == WS_OP_BINARY) {
        t->fragmented = !t->fin;
        t->left = len;
        t->rx = len > 0 ? WS_RX_DATA : WS_RX_HEADER;
    } else {
        t->ctl_len = 0;
        t->ctl_need = (size_t)len;
        t->rx = WS_RX_CONTROL;
    }
}

/* A control frame's payload is in: 0, or WS_CLOSED / WS_PROTOCOL. */
static int ws_control(ws_transport *t)
{
    int code;

    t->rx = WS_RX_HEADER;
    switch (t->opcode) {
    case WS_OP_PING:
        /* Without room (pongs queue up behind a socket that takes nothing)
         * this ping goes unanswered: RFC 6455 5.5.3 allows answering only
         * the last one. */
        if (ws_out_room(t, WS_CONTROL_FRAME)) {
            return ws_control_frame(t, WS_OP_PONG, t->ctl, t->ctl_len);
        }
        return 0;
    case WS_OP_CLOSE:
        if (t->ctl_len == 1) {
            return MQTTC_ERR_WS_PROTOCOL; /* a status code has two bytes */
        }
        code = t->ctl_len >= 2 ? t->ctl[0] << 8 | t->ctl[1] : 0;
        /* Echo the status (RFC 6455 5.5.1), best effort: the server may
         * have closed the socket already, and its close is what to report. */
        if (ws_queue_close(t, code) == 0) {
            (void)ws_flush(t);
        }
        t->base.detail = code;
        return ws_fail(t, MQTTC_ERR_WS_CLOSED);
    default:
        return 0; /* a pong */
    }
}

/* `n` bytes arrived for the part of the frame being read; payload bytes went
 * to the caller (*got counts them). 0, or < 0 on a protocol error. */
static int ws_received(ws_transport *t, size_t n, size_t *got)
{
    int rc = 0;

    switch (t->rx) {
    case WS_RX_HEADER:
        t->hdr_len += n;
        if (t->hdr_len == 2) {
            rc = ws_header_start(t);
        }
        if (rc == 0 && t->hdr_len == t->hdr_need) {
            if (t->hdr_need == 10 && (t->hdr[2] & 0x80u) != 0) {
                return MQTTC_ERR_WS_PROTOCOL; /* the most significant bit must be 0 */
            }
            ws_header_done(t);
            if (t->rx == WS_RX_CONTROL && t->ctl_need == 0) {
                rc = ws_control(t);
            }
        }
        return rc;
    case WS_RX_DATA:
        *got += n;
        t->left -= n;
        if (t->left == 0) {
            t->rx = WS_RX_HEADER;
        }
        return 0;
    case WS_RX_CONTROL:
        t->ctl_len += n;
        return t->ctl_len == t->ctl_need ? ws_control(t) : 0;
    }
    return MQTTC_ERR_BAD_STATE;
}

static long ws_read(mqttc_transport *base, uint8_t *buf, size_t cap)
{
    ws_transport *t = (ws_transport *)base;
    size_t got = 0;
    int headers = 0, rc;

    if (t->phase != WS_OPEN) {
        t->error_held = false;
        return t->phase == WS_FAILED ? t->error : MQTTC_ERR_BAD_STATE;
    }
    rc = ws_flush(t);
    if (rc < 0 || cap == 0) {
        return rc;
    }
    while (headers < WS_FRAMES_PER_READ) {
        uint8_t *dst;
        size_t want;
        long r;

        if (t->rx == WS_RX_HEADER) {
            dst = t->hdr + t->hdr_len;
            want = t->hdr_need - t->hdr_len;
            headers++;
        } else if (t->rx == WS_RX_CONTROL) {
            dst = t->ctl + t->ctl_len;
            want = t->ctl_need - t->ctl_len;
        } else {
            dst = buf + got;
            want = t->left < cap - got ? (size_t)t->left : cap - got;
        }
        r = ws_inner_read(t, dst, want);
        if (r <= 0) {
            rc = (int)r;
            break;
        }
        rc = ws_received(t, (size_t)r, &got);
        if (rc < 0 || (size_t)r < want || got == cap) {
            break; /* the inner transport is drained, or the caller's buffer full */
        }
    }
    if (rc == 0) {
        rc = ws_flush(t); /* a pong */
    }
    if (rc < 0 && t->phase != WS_FAILED) {
        ws_fail(t, rc);
    }
    /* Deliver what arrived before a failure; the failure comes next call. */
    t->error_held = got > 0 && rc < 0;
    return got > 0 ? (long)got : rc;
}

/* ---- sending ---------------------------------------------------------------- */

static long ws_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    ws_transport *t = (ws_transport *)base;
    size_t len = 0;
    int rc;

    if (t->phase != WS_OPEN) {
        return t->phase == WS_FAILED ? t->error : MQTTC_ERR_BAD_STATE;
    }
    rc = ws_flush(t);
    if (rc < 0) {
        return rc;
    }
    if (t->out_len > 0) {
        return 0; /* the last frame is still going out */
    }
    for (size_t i = 0; i < n && len < WS_PAYLOAD_MAX; i++) {
        len += iov[i].len < WS_PAYLOAD_MAX - len ? iov[i].len : WS_PAYLOAD_MAX - len;
    }
    if (len == 0) {
        return 0;
    }
    rc = ws_frame(t, WS_OP_BINARY, iov, n, len);
    if (rc == 0) {
        rc = ws_flush(t);
    }
    return rc < 0 ? (t->phase == WS_FAILED ? rc : ws_fail(t, rc)) : (long)len;
}

/* ---- the rest of the table --------------------------------------------------- */

static int ws_fd(const mqttc_transport *base)
{
    const ws_transport *t = (const ws_transport *)base;

    return t->inner->vt->fd(t->inner);
}

static int ws_want(const mqttc_transport *base)
{
    const ws_transport *t = (const ws_transport *)base;

    switch (t->phase) {
    case WS_INNER:
        return t->inner->vt->want(t->inner);
    case WS_REQUEST:
        return t->inner->vt->want(t->inner) | MQTTC_WANT_WRITE;
    case WS_REPLY:
        return t->inner->vt->want(t->inner) | MQTTC_WANT_READ;
    case WS_OPEN:
        return t->inner->vt->want(t->inner) |
               (t->out_len > t->out_pos ? MQTTC_WANT_WRITE : 0);
    case WS_FAILED:
        break;
    }
    return 0; /* nothing more to do but destroy() */
}

/* No deframed payload waits here (see the top), but the inner transport may
 * hold input (decrypted TLS records), and an error found after data that
 * read() returned is still owed: either way read() has something to say
 * without the descriptor becoming readable. */
static size_t ws_pending(const mqttc_transport *base)
{
    const ws_transport *t = (const ws_transport *)base;

    if (t->phase == WS_FAILED) {
        return t->error_held ? 1 : 0;
    }
    if (t->phase != WS_OPEN || t->inner->vt->pending == NULL) {
        return 0;
    }
    return t->inner->vt->pending(t->inner);
}

/* Best effort: a close frame (unless one was sent or the connection is
 * broken), written as far as the inner transport takes it without waiting. */
static void ws_destroy(mqttc_transport *base)
{
    ws_transport *t = (ws_transport *)base;

    if (t == NULL) {
        return;
    }
    if (t->opened && t->inner_ok) {
        if (ws_queue_close(t, t->error == MQTTC_ERR_WS_PROTOCOL ? WS_CLOSE_PROTOCOL
                                                                : WS_CLOSE_NORMAL) == 0) {
            (void)ws_flush(t);
        }
    }
    t->inner->vt->destroy(t->inner);
    free(t->reply);
    free(t);
}

static const mqttc_transport_vtable ws_vtable = {
    .name = "ws",
    .connect = ws_connect,
    .read = ws_read,
    .writev = ws_writev,
    .fd = ws_fd,
    .want = ws_want,
    .destroy = ws_destroy,
    .pending = ws_pending,
};

int mqttc__ws_open(mqttc_transport *inner, const char *host, uint16_t port, const char *path,
                   mqttc_transport **out)
{
    ws_transport *t = NULL;
    uint8_t nonce[16];
    char key[MQTTC__WS_KEY_SIZE];
    long len;
    int rc = MQTTC_ERR_INVALID_ARG;

    if (out != NULL) {
        *out = NULL;
    }
    if (inner == NULL || out == NULL || host == NULL || port == 0) {
        goto fail;
    }
    if (path == NULL || path[0] == '\0') {
        path = WS_DEFAULT_PATH;
    }
    rc = MQTTC_ERR_NO_MEMORY;
    t = calloc(1, sizeof(*t));
    if (t == NULL || (t->reply = malloc(MQTTC__WS_REPLY_MAX)) == NULL) {
        goto fail;
    }
    t->pool_pos = WS_RANDOM_POOL;
    rc = ws_random(t, nonce, sizeof(nonce));
    if (rc < 0) {
        goto fail;
    }
    mqttc__ws_make_key(nonce, key);
    rc = mqttc__ws_accept(key, t->accept);
    if (rc < 0) {
        goto fail;
    }
    len = mqttc__ws_request((char *)t->out, WS_OUT_CAP, host, port, path, key);
    if (len < 0) {
        rc = (int)len;
        goto fail;
    }
    t->base.vt = &ws_vtable;
    t->inner = inner;
    t->phase = WS_INNER;
    t->inner_ok = true;
    t->out_len = (size_t)len;
    t->rx = WS_RX_HEADER;
    t->hdr_need = 2;
    *out = &t->base;
    return 0;

fail:
    if (t != NULL) {
        free(t->reply);
        free(t);
    }
    if (inner != NULL) {
        inner->vt->destroy(inner);
    }
    return rc;
}
