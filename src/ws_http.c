/* The HTTP side of the WebSocket opening handshake (ws_http.h): the request,
 * the expected Sec-WebSocket-Accept (mbedTLS SHA-1 and base64), and a
 * bounded reply parser that keeps no state between calls. */
#include "ws_http.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/sha1.h>
#include <mbedtls/version.h>

#include "transport.h"

#define WS_KEY_MAX 64 /* longest key mqttc__ws_accept() hashes */

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* mbedTLS 3 renamed mbedtls_sha1_ret() to mbedtls_sha1(). */
static int ws_sha1(const uint8_t *in, size_t len, uint8_t out[20])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_sha1(in, len, out);
#else
    return mbedtls_sha1_ret(in, len, out);
#endif
}

void mqttc__ws_make_key(const uint8_t nonce[16], char key[MQTTC__WS_KEY_SIZE])
{
    size_t olen = 0;
    int rc = mbedtls_base64_encode((unsigned char *)key, MQTTC__WS_KEY_SIZE, &olen, nonce, 16);

    assert(rc == 0 && olen == MQTTC__WS_KEY_SIZE - 1);
    (void)rc;
}

int mqttc__ws_accept(const char *key, char accept[MQTTC__WS_ACCEPT_SIZE])
{
    uint8_t text[WS_KEY_MAX + sizeof(ws_guid)];
    uint8_t digest[20];
    size_t klen = strlen(key), olen = 0;

    if (klen > WS_KEY_MAX) {
        return MQTTC_ERR_INVALID_ARG;
    }
    memcpy(text, key, klen);
    memcpy(text + klen, ws_guid, sizeof(ws_guid) - 1);
    if (ws_sha1(text, klen + sizeof(ws_guid) - 1, digest) != 0 ||
        mbedtls_base64_encode((unsigned char *)accept, MQTTC__WS_ACCEPT_SIZE, &olen, digest,
                              sizeof(digest)) != 0) {
        return MQTTC_ERR_INVALID_ARG; /* neither fails for these sizes */
    }
    return 0;
}

/* ---- the request ---------------------------------------------------------- */

/* Visible ASCII only: no spaces or controls that would end the request line
 * or a header early (request splitting), and no bytes outside ASCII. */
static bool ws_visible(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7F) {
            return false;
        }
    }
    return true;
}

long mqttc__ws_request(char *buf, size_t cap, const char *host, uint16_t port, const char *path,
                       const char *key)
{
    bool v6 = strchr(host, ':') != NULL; /* an IPv6 literal goes in brackets */
    int n;

    if (!ws_visible(host) || !ws_visible(path) || path[0] != '/' || !ws_visible(key) ||
        strchr(host, '[') != NULL || strchr(host, ']') != NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    n = snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s%s%s:%u\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Protocol: mqtt\r\n"
                 "\r\n",
                 path, v6 ? "[" : "", host, v6 ? "]" : "", (unsigned)port, key);
    if (n < 0 || (size_t)n >= cap) {
        return MQTTC_ERR_BUFFER_TOO_SMALL;
    }
    return n;
}

/* ---- the reply ------------------------------------------------------------ */

typedef struct ws_span {
    const uint8_t *p;
    size_t n;
} ws_span;

/* What the header fields said. */
typedef struct ws_fields {
    int upgrade;         /* Upgrade fields seen */
    bool upgrade_other;  /* one of them was not "websocket" */
    bool conn_upgrade;   /* some Connection field lists "upgrade" */
    bool extensions;     /* the server chose an extension we did not offer */
    int accepts, protocols;
    ws_span accept, protocol;
} ws_fields;

static uint8_t ws_lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + ('a' - 'A')) : c;
}

/* ASCII case-insensitive comparison with a lower-case literal. */
static bool ws_ieq(ws_span s, const char *lit)
{
    size_t n = strlen(lit);

    if (s.n != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (ws_lower(s.p[i]) != (uint8_t)lit[i]) {
            return false;
        }
    }
    return true;
}

static bool ws_eq(ws_span s, const char *lit)
{
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static bool ws_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

static ws_span ws_trim(ws_span s)
{
    while (s.n > 0 && ws_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && ws_ows(s.p[s.n - 1])) {
        s.n--;
    }
    return s;
}

/* RFC 9110 tchar: the characters of a header field name. */
static bool ws_tchar(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Field values and the reason phrase: no controls but HTAB (a lone CR or LF
 * inside a line included). */
static bool ws_text(ws_span s)
{
    for (size_t i = 0; i < s.n; i++) {
        if ((s.p[i] < 0x20 && s.p[i] != '\t') || s.p[i] == 0x7F) {
            return false;
        }
    }
    return true;
}

/* Does the comma-separated list `v` hold `token` (case-insensitive)? */
static bool ws_has_token(ws_span v, const char *token)
{
    while (v.n > 0) {
        const uint8_t *comma = memchr(v.p, ',', v.n);
        size_t n = comma != NULL ? (size_t)(comma - v.p) : v.n;
        ws_span item = {v.p, n};

        if (ws_ieq(ws_trim(item), token)) {
            return true;
        }
        v.p += comma != NULL ? n + 1 : n;
        v.n -= comma != NULL ? n + 1 : n;
    }
    return false;
}

/* "HTTP/1.x NNN[ reason]": the status, or MQTTC_ERR_WS_BAD_REPLY. */
static int ws_status_line(ws_span line)
{
    const uint8_t *p = line.p;
    int status;

    if (line.n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' || p[7] > '9' ||
        p[8] != ' ') {
        return MQTTC_ERR_WS_BAD_REPLY;
    }
    for (size_t i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return MQTTC_ERR_WS_BAD_REPLY;
        }
    }
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (status < 100 || status > 599 || (line.n > 12 && p[12] != ' ')) {
        return MQTTC_ERR_WS_BAD_REPLY;
    }
    line.p += 12;
    line.n -= 12;
    return ws_text(line) ? status : MQTTC_ERR_WS_BAD_REPLY;
}

/* One "Name: value" line. */
static int ws_field(ws_span line, ws_fields *f)
{
    size_t colon = 0;
    ws_span name, value;

    while (colon < line.n && ws_tchar(line.p[colon])) {
        colon++;
    }
    if (colon == 0 || colon == line.n || line.p[colon] != ':') {
        return MQTTC_ERR_WS_BAD_REPLY; /* also folded lines and "Name : value" */
    }
    name.p = line.p;
    name.n = colon;
    value.p = line.p + colon + 1;
    value.n = line.n - colon - 1;
    if (!ws_text(value)) {
        return MQTTC_ERR_WS_BAD_REPLY;
    }
    value = ws_trim(value);
    if (ws_ieq(name, "upgrade")) {
        f->upgrade++;
        f->upgrade_other = f->upgrade_other || !ws_ieq(value, "websocket");
    } else if (ws_ieq(name, "connection")) {
        f->conn_upgrade = f->conn_upgrade || ws_has_token(value, "upgrade");
    } else if (ws_ieq(name, "sec-websocket-extensions")) {
        f->extensions = f->extensions || value.n > 0;
    } else if (ws_ieq(name, "sec-websocket-accept")) {
        f->accepts++;
        f->accept = value;
    } else if (ws_ieq(name, "sec-websocket-protocol")) {
        f->protocols++;
        f->protocol = value;
    }
    return 0;
}

/* Length of the header (through the first blank line) within data[0..len),
 * or 0 when it is not complete there. */
static size_t ws_header_end(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (data[i] == '\r' && memcmp(data + i, "\r\n\r\n", 4) == 0) {
            return i + 4;
        }
    }
    return 0;
}

/* The header fields of data[0..end) after the status line starting at `pos`. */
static int ws_fields_parse(const uint8_t *data, size_t pos, size_t end, ws_fields *f)
{
    /* data[end-4..end) is CRLF CRLF, and no earlier CRLF CRLF exists: every
     * line found below is non-empty until the last, empty one. */
    while (pos < end - 2) {
        const uint8_t *crlf = data + pos;
        ws_span line;
        int rc;

        while (!(crlf[0] == '\r' && crlf[1] == '\n')) {
            crlf++;
        }
        line.p = data + pos;
        line.n = (size_t)(crlf - line.p);
        rc = ws_field(line, f);
        if (rc < 0) {
            return rc;
        }
        pos += line.n + 2;
    }
    return 0;
}

int mqttc__ws_reply_parse(const uint8_t *data, size_t len, const char *accept, size_t *used,
                          int *status)
{
    size_t end = ws_header_end(data, len < MQTTC__WS_REPLY_MAX ? len : MQTTC__WS_REPLY_MAX);
    const uint8_t *eol;
    ws_fields f;
    ws_span line;
    int code, rc;

    if (end == 0) {
        return len >= MQTTC__WS_REPLY_MAX ? MQTTC_ERR_WS_BAD_REPLY : MQTTC__AGAIN;
    }
    eol = memchr(data, '\r', end);
    while (eol[1] != '\n') { /* a lone CR in the status line: ws_text() refuses it */
        eol = memchr(eol + 1, '\r', end - (size_t)(eol + 1 - data));
    }
    line.p = data;
    line.n = (size_t)(eol - data);
    code = ws_status_line(line);
    if (code < 0) {
        return code;
    }
    if (code != 101) {
        *status = code;
        return MQTTC_ERR_WS_REFUSED;
    }
    memset(&f, 0, sizeof(f));
    rc = ws_fields_parse(data, line.n + 2, end, &f);
    if (rc < 0) {
        return rc;
    }
    if (f.upgrade == 0 || f.upgrade_other || !f.conn_upgrade || f.extensions || f.accepts > 1 ||
        f.protocols > 1) {
        return MQTTC_ERR_WS_BAD_REPLY;
    }
    if (f.accepts == 0 || !ws_eq(f.accept, accept)) {
        return MQTTC_ERR_WS_BAD_ACCEPT;
    }
    if (f.protocols == 0 || !ws_eq(f.protocol, "mqtt")) {
        return MQTTC_ERR_WS_NO_SUBPROTOCOL;
    }
    *used = end;
    return 0;
}
