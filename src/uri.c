/* Server URIs: scheme://[user[:password]@]host[:port][/path].
 * The parser writes straight into the caller's mqttc_uri: no allocation, and
 * nothing is ever truncated (a part that does not fit is MQTTC_ERR_BAD_URI).
 * On failure *out is left zeroed. */
#include "mqttc/uri.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* Longest IPv6 address text plus "%zone" (zone ids are interface names). */
#define URI_IPV6_TEXT_MAX 64

typedef struct uri_scheme_name {
    const char *name;
    mqttc_scheme scheme;
} uri_scheme_name;

static const uri_scheme_name uri_schemes[] = {
    {"mqtt", MQTTC_SCHEME_MQTT}, {"tcp", MQTTC_SCHEME_MQTT},  {"mqtts", MQTTC_SCHEME_MQTTS},
    {"ssl", MQTTC_SCHEME_MQTTS}, {"ws", MQTTC_SCHEME_WS},     {"wss", MQTTC_SCHEME_WSS},
};

uint16_t mqttc_scheme_default_port(mqttc_scheme s)
{
    switch (s) {
    case MQTTC_SCHEME_MQTT:
        return 1883;
    case MQTTC_SCHEME_MQTTS:
        return 8883;
    case MQTTC_SCHEME_WS:
        return 8083;
    case MQTTC_SCHEME_WSS:
        return 8084;
    }
    return 0;
}

bool mqttc_scheme_is_tls(mqttc_scheme s)
{
    return s == MQTTC_SCHEME_MQTTS || s == MQTTC_SCHEME_WSS;
}

static bool uri_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool uri_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3986 "unreserved": the only characters allowed in a host name and in
 * an IPv6 zone id. */
static bool uri_is_unreserved(char c)
{
    return uri_is_alpha(c) || uri_is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static int uri_hex(char c)
{
    if (uri_is_digit(c)) {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static char uri_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* Spaces, control characters and DEL are never allowed anywhere. */
static bool uri_has_bad_char(const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

/* Copy s[0..len) to dst (capacity cap, NUL included). */
static int uri_copy(char *dst, size_t cap, const char *s, size_t len)
{
    if (len >= cap) {
        return MQTTC_ERR_BAD_URI;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
    return 0;
}

/* Percent-decode s[0..len) into dst. "%00" is refused: it would cut the
 * C string short. */
static int uri_decode(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 1 < len ? uri_hex(s[i + 1]) : -1;
            int lo = i + 2 < len ? uri_hex(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return MQTTC_ERR_BAD_URI;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (o + 1 >= cap) {
            return MQTTC_ERR_BAD_URI;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

/* "scheme://": sets out->scheme and returns the length consumed, or < 0. */
static int uri_parse_scheme(const char *s, mqttc_uri *out)
{
    const char *sep = strstr(s, "://");
    size_t len;

    if (sep == NULL) {
        return MQTTC_ERR_BAD_URI;
    }
    len = (size_t)(sep - s);
    for (size_t i = 0; i < sizeof(uri_schemes) / sizeof(uri_schemes[0]); i++) {
        const char *name = uri_schemes[i].name;
        size_t j = 0;
        if (strlen(name) != len) {
            continue;
        }
        while (j < len && uri_lower(s[j]) == name[j]) {
            j++;
        }
        if (j == len) {
            out->scheme = uri_schemes[i].scheme;
            return (int)len + 3;
        }
    }
    return MQTTC_ERR_BAD_URI;
}

/* "user[:password]" (still percent-encoded), s[0..len). */
static int uri_parse_userinfo(const char *s, size_t len, mqttc_uri *out)
{
    const char *colon = memchr(s, ':', len);
    size_t ulen = colon != NULL ? (size_t)(colon - s) : len;
    int rc = uri_decode(out->username, sizeof(out->username), s, ulen);

    if (rc < 0) {
        return rc;
    }
    out->has_username = true;
    if (colon != NULL) {
        rc = uri_decode(out->password, sizeof(out->password), colon + 1, len - ulen - 1);
        out->has_password = rc == 0;
    }
    return rc;
}

/* The inside of "[...]": an IPv6 address, optionally followed by an RFC 6874
 * zone id "%25zone", stored in host as "addr%zone" (what getaddrinfo reads). */
static int uri_parse_ipv6(const char *s, size_t len, mqttc_uri *out)
{
    char text[URI_IPV6_TEXT_MAX];
    struct in6_addr addr;
    const char *pct = memchr(s, '%', len);
    size_t alen = pct != NULL ? (size_t)(pct - s) : len;

    if (uri_copy(text, sizeof(text), s, alen) < 0 || inet_pton(AF_INET6, text, &addr) != 1) {
        return MQTTC_ERR_BAD_URI;
    }
    if (pct != NULL) {
        const char *zone = pct + 3;
        size_t zlen;
        if (len - alen < 4 || memcmp(pct, "%25", 3) != 0) {
            return MQTTC_ERR_BAD_URI; /* a bare '%', or an empty zone id */
        }
        zlen = len - alen - 3;
        for (size_t i = 0; i < zlen; i++) {
            if (!uri_is_unreserved(zone[i])) {
                return MQTTC_ERR_BAD_URI;
            }
        }
        if (alen + 1 + zlen >= sizeof(text)) {
            return MQTTC_ERR_BAD_URI;
        }
        text[alen] = '%';
        memcpy(text + alen + 1, zone, zlen);
        text[alen + 1 + zlen] = '\0';
    }
    out->ipv6_literal = true;
    return uri_copy(out->host, sizeof(out->host), text, strlen(text));
}

/* Digits only, 1..65535. */
static int uri_parse_port(const char *s, size_t len, mqttc_uri *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 5) {
        return MQTTC_ERR_BAD_URI;
    }
    for (size_t i = 0; i < len; i++) {
        if (!uri_is_digit(s[i])) {
            return MQTTC_ERR_BAD_URI;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > 65535) {
        return MQTTC_ERR_BAD_URI;
    }
    out->port = (uint16_t)v;
    return 0;
}

/* "host[:port]" or "[ipv6][:port]", s[0..len). */
static int uri_parse_hostport(const char *s, size_t len, mqttc_uri *out)
{
    size_t hlen;
    const char *rest;
    int rc;

    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL) {
            return MQTTC_ERR_BAD_URI;
        }
        rc = uri_parse_ipv6(s + 1, (size_t)(close - s) - 1, out);
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', len);
        hlen = colon != NULL ? (size_t)(colon - s) : len;
        if (hlen == 0) {
            return MQTTC_ERR_BAD_URI;
        }
        for (size_t i = 0; i < hlen; i++) {
            if (!uri_is_unreserved(s[i])) {
                return MQTTC_ERR_BAD_URI; /* also '[', ']', '%' and '@' */
            }
        }
        rc = uri_copy(out->host, sizeof(out->host), s, hlen);
        rest = s + hlen;
    }
    if (rc < 0) {
        return rc;
    }
    if (rest == s + len) {
        out->port = mqttc_scheme_default_port(out->scheme);
        return 0;
    }
    if (*rest != ':') {
        return MQTTC_ERR_BAD_URI; /* e.g. "[::1]x" */
    }
    /* Any further ':' is not a digit, so "a:b:1883" fails here. */
    return uri_parse_port(rest + 1, len - (size_t)(rest + 1 - s), out);
}

/* "/path" (may be empty): kept as written, '?' included. '#' is refused in
 * web paths (an HTTP fragment) but kept for mqtt(s), where the CLI reads the
 * path as a topic filter, as mosquitto's -L does ("mqtt://host/a/#"). */
static int uri_parse_path(const char *s, mqttc_uri *out)
{
    size_t len = strlen(s);
    bool web = out->scheme == MQTTC_SCHEME_WS || out->scheme == MQTTC_SCHEME_WSS;

    if (len == 0) {
        return uri_copy(out->path, sizeof(out->path), web ? "/mqtt" : "", web ? 5 : 0);
    }
    if (s[0] != '/' || (web && memchr(s, '#', len) != NULL)) {
        return MQTTC_ERR_BAD_URI;
    }
    return uri_copy(out->path, sizeof(out->path), s, len);
}

static int uri_parse(const char *s, mqttc_uri *out)
{
    const char *auth, *end, *at;
    int rc;

    if (uri_has_bad_char(s)) {
        return MQTTC_ERR_BAD_URI;
    }
    rc = uri_parse_scheme(s, out);
    if (rc < 0) {
        return rc;
    }
    auth = s + rc;
    end = auth + strcspn(auth, "/?#");
    if (*end != '\0' && *end != '/') {
        return MQTTC_ERR_BAD_URI; /* a query or fragment without a path */
    }
    at = memchr(auth, '@', (size_t)(end - auth));
    if (at != NULL) {
        rc = uri_parse_userinfo(auth, (size_t)(at - auth), out);
        if (rc < 0) {
            return rc;
        }
        auth = at + 1; /* a second '@' is refused as a host character */
    }
    rc = uri_parse_hostport(auth, (size_t)(end - auth), out);
    if (rc < 0) {
        return rc;
    }
    return uri_parse_path(end, out);
}

int mqttc_uri_parse(const char *s, mqttc_uri *out)
{
    int rc;

    if (s == NULL || out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    rc = uri_parse(s, out);
    if (rc < 0) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}
