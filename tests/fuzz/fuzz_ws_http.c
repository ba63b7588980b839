/*
 * libFuzzer target for the WebSocket upgrade reply parser (src/ws_http.c),
 * on its own and through the transport's handshake (src/transport_ws.c).
 *
 * Input: the bytes a server answers the upgrade request with. The parser
 * checks them against the Accept of RFC 6455's example key; the transport
 * has a random key, so the fake server it talks to replaces every occurrence
 * of that example Accept with the transport's, and both see the same reply.
 *
 * Properties checked (abort() on violation):
 *   - mqttc__ws_reply_parse() returns a documented code; on success *used is
 *     the first CRLF CRLF's end, within MQTTC__WS_REPLY_MAX; a refusal's
 *     status is 100..599; the verdict for a prefix is "need more" exactly
 *     while the prefix holds no blank line;
 *   - the transport reaches the same verdict whatever the size of its reads
 *     (1..16 bytes, picked from the input), never reads past the header, and
 *     reports the end of the stream where the parser wants more; a refusal's
 *     status is the transport's detail.
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
        fprintf(stderr, "fuzz_ws_http: " __VA_ARGS__);                                             \
        fputc('\n', stderr);                                                                       \
        abort();                                                                                   \
    } while (0)

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
#define ACCEPT_LEN (MQTTC__WS_ACCEPT_SIZE - 1)
#define INPUT_MAX (2 * MQTTC__WS_REPLY_MAX)

/* ---- a fake server behind a fake inner transport ---------------------------- */

typedef struct fake {
    mqttc_transport base;
    uint8_t in[INPUT_MAX]; /* the reply; its example Accept rewritten at the first read */
    size_t len, pos;
    size_t chunk;          /* bytes per read() at most */
    bool rewritten;
    uint8_t req[MQTTC__WS_REQUEST_MAX];
    size_t req_len;
    bool destroyed;
} fake;

/* The key in the request the transport wrote. */
static void request_key(const fake *f, char key[MQTTC__WS_KEY_SIZE])
{
    static const char name[] = "\r\nSec-WebSocket-Key: ";
    size_t k = sizeof(name) - 1;

    for (size_t i = 0; i + k + MQTTC__WS_KEY_SIZE - 1 <= f->req_len; i++) {
        if (memcmp(f->req + i, name, k) == 0) {
            memcpy(key, f->req + i + k, MQTTC__WS_KEY_SIZE - 1);
            key[MQTTC__WS_KEY_SIZE - 1] = '\0';
            return;
        }
    }
    FAIL("no Sec-WebSocket-Key in the request");
}

/* The request is out (the transport reads only after that): answer it
 * with the Accept for its key where the input has the example's. */
static void rewrite_accept(fake *f)
{
    char key[MQTTC__WS_KEY_SIZE], accept[MQTTC__WS_ACCEPT_SIZE];

    if (f->req_len < 4 || memcmp(f->req + f->req_len - 4, "\r\n\r\n", 4) != 0) {
        FAIL("reading before the whole request was written");
    }
    request_key(f, key);
    if (mqttc__ws_accept(key, accept) != 0) {
        FAIL("no accept for the transport's key");
    }
    for (size_t i = 0; i + ACCEPT_LEN <= f->len; i++) {
        if (memcmp(f->in + i, RFC_ACCEPT, ACCEPT_LEN) == 0) {
            memcpy(f->in + i, accept, ACCEPT_LEN);
            i += ACCEPT_LEN - 1;
        }
    }
    f->rewritten = true;
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

    if (!f->rewritten) {
        rewrite_accept(f);
    }
    n = f->len - f->pos;
    if (n == 0) {
        return MQTTC_ERR_CLOSED_BY_PEER;
    }
    n = n < cap ? n : cap;
    n = n < f->chunk ? n : f->chunk;
    memcpy(buf, f->in + f->pos, n);
    f->pos += n;
    return (long)n;
}

static long fake_writev(mqttc_transport *base, const mqttc_iov *iov, size_t n)
{
    fake *f = (fake *)base;
    size_t total = 0;

    for (size_t i = 0; i < n; i++) {
        if (iov[i].len > sizeof(f->req) - f->req_len) {
            FAIL("the request is longer than MQTTC__WS_REQUEST_MAX");
        }
        memcpy(f->req + f->req_len, iov[i].base, iov[i].len);
        f->req_len += iov[i].len;
        total += iov[i].len;
    }
    return (long)total;
}

static int fake_fd(const mqttc_transport *base)
{
    (void)base;
    return -1;
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

/* ---- the properties --------------------------------------------------------- */

static size_t header_end(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(data + i, "\r\n\r\n", 4) == 0) {
            return i + 4;
        }
    }
    return 0;
}

static int check_parse(const uint8_t *data, size_t size, size_t *used, int *status)
{
    size_t end = header_end(data, size < MQTTC__WS_REPLY_MAX ? size : MQTTC__WS_REPLY_MAX);
    int rc;

    *used = 0;
    *status = 0;
    rc = mqttc__ws_reply_parse(data, size, RFC_ACCEPT, used, status);
    switch (rc) {
    case MQTTC__AGAIN:
        if (end != 0 || size >= MQTTC__WS_REPLY_MAX) {
            FAIL("wants more bytes with a complete header or a full buffer");
        }
        break;
    case 0:
        if (*used != end) {
            FAIL("used %zu, but the header ends at %zu", *used, end);
        }
        break;
    case MQTTC_ERR_WS_REFUSED:
        if (*status < 100 || *status > 599 || *status == 101 || end == 0) {
            FAIL("refused with status %d", *status);
        }
        break;
    case MQTTC_ERR_WS_BAD_REPLY:
        if (end == 0 && size < MQTTC__WS_REPLY_MAX) {
            FAIL("a bad reply before its end");
        }
        break;
    case MQTTC_ERR_WS_BAD_ACCEPT:
    case MQTTC_ERR_WS_NO_SUBPROTOCOL:
        if (end == 0) {
            FAIL("a verdict before the end of the header");
        }
        break;
    default:
        FAIL("undocumented result %d", rc);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fake f; /* large: not on the stack */
    mqttc_transport *t;
    size_t used, prefix_used, chunk, end;
    int status, prefix_status, rc, trc;
    uint32_t h = 2166136261u;

    if (size > INPUT_MAX) {
        return 0;
    }
    end = header_end(data, size < MQTTC__WS_REPLY_MAX ? size : MQTTC__WS_REPLY_MAX);
    rc = check_parse(data, size, &used, &status);
    /* a prefix ending before the blank line wants more; one containing it
     * gives the same verdict */
    if (size > 0) {
        size_t cut = data[0] % (size + 1);
        int prc = check_parse(data, cut, &prefix_used, &prefix_status);
        if (prc != MQTTC__AGAIN && (prc != rc || prefix_used != used || prefix_status != status)) {
            FAIL("prefix of %zu bytes: %d, whole: %d", cut, prc, rc);
        }
    }

    for (size_t i = 0; i < size; i++) {
        h = (h ^ data[i]) * 16777619u;
    }
    chunk = 1 + h % 16;
    memset(&f, 0, sizeof(f));
    f.base.vt = &fake_vtable;
    memcpy(f.in, data, size);
    f.len = size;
    f.chunk = chunk;
    if (mqttc__ws_open(&f.base, "example.com", 8083, "/mqtt", &t) != 0) {
        FAIL("open failed");
    }
    trc = t->vt->connect(t);
    switch (rc) {
    case MQTTC__AGAIN:
        if (trc != MQTTC_ERR_CLOSED_BY_PEER) {
            FAIL("the parser wants more, the transport says %d", trc);
        }
        break;
    case 0:
        if (trc != 0 || f.pos != used) {
            FAIL("accepted by the parser; transport %d, read %zu of %zu", trc, f.pos, used);
        }
        if (t->vt->want(t) != 0) {
            FAIL("wants I/O after the handshake");
        }
        break;
    default:
        if (trc != rc || (rc == MQTTC_ERR_WS_REFUSED && t->detail != status)) {
            FAIL("parser %d (status %d), transport %d (detail %d)", rc, status, trc, t->detail);
        }
        /* read up to the blank line, or the whole buffer without one */
        if (f.pos != (end != 0 ? end : (size_t)MQTTC__WS_REPLY_MAX)) {
            FAIL("read %zu bytes for a verdict at %zu", f.pos, end);
        }
        break;
    }
    t->vt->destroy(t);
    if (!f.destroyed) {
        FAIL("destroy() left the inner transport");
    }
    return 0;
}
