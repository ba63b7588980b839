/* What `mqttc pub` and `mqttc sub` share (and `mqttc bench`, the command
 * line and the client's configuration): the command line, the client's
 * configuration, errors and the poll loop (see cli_common.h). */
#define _POSIX_C_SOURCE 200809L

#include "cli_common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mqttc/codec.h"

#define CLI_RECONNECT_MS 1000u      /* mosquitto's loop waits 1 s between attempts */
#define CLI_DISCONNECT_GRACE_MS 3000 /* longest wait for our DISCONNECT to go out */
#define CLI_BUFFER (64u * 1024u) /* receive and send buffers */
#define CLI_RANDOM_ID_CHARS 16 /* "mqttc-" + 16: 22 bytes, within MQTT-3.1.3-5's 23 */

/* ---- messages ------------------------------------------------------------ */

void cli_usage_error(const cli_opts *o, const char *fmt, ...)
{
    va_list ap;
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see '%s --help')\n", o->name);
}

void cli_error(const cli_opts *o, const char *fmt, ...)
{
    va_list ap;
    if (o->quiet) {
        return;
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* ---- the command line ---------------------------------------------------- */

typedef enum opt_id {
    OPT_HOST, OPT_PORT, OPT_URL, OPT_TOPIC, OPT_MESSAGE, OPT_FILE, OPT_STDIN_FILE,
    OPT_STDIN_LINE, OPT_NULL, OPT_QOS, OPT_RETAIN, OPT_ID, OPT_ID_PREFIX, OPT_USER, OPT_PW,
    OPT_KEEPALIVE, OPT_NO_CLEAN, OPT_DEBUG, OPT_COUNT, OPT_TIMEOUT, OPT_VERBOSE, OPT_NO_EOL,
    OPT_NO_RETAINED, OPT_FILTER_OUT, OPT_WILL_TOPIC, OPT_WILL_PAYLOAD, OPT_WILL_QOS,
    OPT_WILL_RETAIN, OPT_QUIET, OPT_HELP, OPT_CAFILE, OPT_CERT, OPT_KEY, OPT_KEY_PASSWORD,
    OPT_INSECURE, OPT_TLS_VERSION, OPT_ALPN, OPT_WS_PATH, OPT_STORE, OPT_STORE_FSYNC
} opt_id;

#define BOTH (CLI_PUB | CLI_SUB)
#define ALL (CLI_PUB | CLI_SUB | CLI_BENCH)

/* mosquitto's spellings; `arg` names the argument of options that take one. */
typedef struct cli_flag {
    const char *short_name, *long_name; /* either may be NULL */
    unsigned cmds;                      /* CLI_PUB, CLI_SUB and/or CLI_BENCH */
    const char *arg;
    opt_id id;
} cli_flag;

static const cli_flag cli_flags[] = {
    {"-h", "--host", ALL, "host", OPT_HOST},
    {"-p", "--port", ALL, "port", OPT_PORT},
    {"-L", "--url", ALL, "URL", OPT_URL},
    {"-t", "--topic", ALL, "topic", OPT_TOPIC},
    {"-m", "--message", CLI_PUB, "message", OPT_MESSAGE},
    {"-f", "--file", CLI_PUB, "file", OPT_FILE},
    {"-s", "--stdin-file", CLI_PUB, NULL, OPT_STDIN_FILE},
    {"-l", "--stdin-line", CLI_PUB, NULL, OPT_STDIN_LINE},
    {"-n", "--null-message", CLI_PUB, NULL, OPT_NULL},
    {"-q", "--qos", ALL, "QoS", OPT_QOS},
    {"-r", "--retain", CLI_PUB, NULL, OPT_RETAIN},
    {"-i", "--id", BOTH, "client id", OPT_ID},
    {"-I", "--id-prefix", ALL, "client id prefix", OPT_ID_PREFIX},
    {"-u", "--username", ALL, "user name", OPT_USER},
    {"-P", "--pw", ALL, "password", OPT_PW},
    {"-k", "--keepalive", ALL, "keepalive", OPT_KEEPALIVE},
    {"-c", "--disable-clean-session", BOTH, NULL, OPT_NO_CLEAN},
    {"-d", "--debug", ALL, NULL, OPT_DEBUG},
    {"-C", NULL, CLI_SUB, "message count", OPT_COUNT},
    {"-W", NULL, CLI_SUB, "timeout", OPT_TIMEOUT},
    {"-v", "--verbose", CLI_SUB, NULL, OPT_VERBOSE},
    {"-N", NULL, CLI_SUB, NULL, OPT_NO_EOL},
    {"-R", NULL, CLI_SUB, NULL, OPT_NO_RETAINED},
    {"-T", "--filter-out", CLI_SUB, "filter", OPT_FILTER_OUT},
    {NULL, "--will-topic", BOTH, "will topic", OPT_WILL_TOPIC},
    {NULL, "--will-payload", BOTH, "will payload", OPT_WILL_PAYLOAD},
    {NULL, "--will-qos", BOTH, "will QoS", OPT_WILL_QOS},
    {NULL, "--will-retain", BOTH, NULL, OPT_WILL_RETAIN},
    {NULL, "--quiet", ALL, NULL, OPT_QUIET},
    {NULL, "--cafile", ALL, "file", OPT_CAFILE},
    {NULL, "--cert", ALL, "file", OPT_CERT},
    {NULL, "--key", ALL, "file", OPT_KEY},
    {NULL, "--key-password", ALL, "password", OPT_KEY_PASSWORD}, /* mqttc's own */
    {NULL, "--insecure", ALL, NULL, OPT_INSECURE},
    {NULL, "--tls-version", ALL, "version", OPT_TLS_VERSION},
    {NULL, "--alpn", ALL, "protocol", OPT_ALPN},
    {NULL, "--tls-alpn", ALL, "protocol", OPT_ALPN}, /* mosquitto's spelling */
    {NULL, "--ws-path", ALL, "path", OPT_WS_PATH}, /* mqttc's own */
    {NULL, "--store", BOTH, "directory", OPT_STORE}, /* mqttc's own */
    {NULL, "--store-fsync", BOTH, NULL, OPT_STORE_FSYNC}, /* mqttc's own */
    {NULL, "--help", ALL, NULL, OPT_HELP},
};

/* mosquitto options mqttc does not have (yet): named as such, not "unknown". */
static const char *const cli_unsupported[] = {
    "-A", "-D", "--property", "-V", "--protocol-version", "-x", "-S", "-M", "-E", "-F", "-U",
    "--unsubscribe", "--unix", "--nodelay", "--proxy", "--repeat", "--repeat-delay", "--pretty",
    "--random-filter", "--remove-retained", "--retained-only", "--retain-as-published",
    "--capath", "--keyform", "--ciphers", "--tls-engine", "--tls-engine-kpass-sha1",
    "--tls-use-os-certs", "--psk", "--psk-identity",
};

static const cli_flag *find_flag(const char *s)
{
    size_t i;
    for (i = 0; i < sizeof cli_flags / sizeof cli_flags[0]; i++) {
        const cli_flag *f = &cli_flags[i];
        if ((f->short_name && strcmp(s, f->short_name) == 0) ||
            (f->long_name && strcmp(s, f->long_name) == 0)) {
            return f;
        }
    }
    return NULL;
}

static bool is_unsupported(const char *s)
{
    size_t i;
    for (i = 0; i < sizeof cli_unsupported / sizeof cli_unsupported[0]; i++) {
        if (strcmp(s, cli_unsupported[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* A whole decimal number in [min, max]. */
static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

static int push_copy(char ***list, size_t *n, const char *s)
{
    char **grown = realloc(*list, (*n + 1) * sizeof **list);
    if (grown == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    *list = grown;
    grown[*n] = strdup(s);
    if (grown[*n] == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    (*n)++;
    return 0;
}

/* -t (and -L): sub subscribes to every one, for pub (and bench's topic
 * base) the last one wins. */
static bool add_topic(cli_opts *o, const char *t)
{
    if (o->cmd != CLI_SUB) {
        while (o->topic_count > 0) {
            free(o->topics[--o->topic_count]);
        }
    }
    if (push_copy(&o->topics, &o->topic_count, t) < 0) {
        cli_usage_error(o, "%s", mqttc_strerror(MQTTC_ERR_NO_MEMORY));
        return false;
    }
    return true;
}

static bool set_host(cli_opts *o, const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n >= sizeof o->host) {
        cli_usage_error(o, "invalid host '%s' for -h", h);
        return false;
    }
    memcpy(o->host, h, n + 1);
    return true;
}

/* -L scheme://[user[:password]@]host[:port]/topic. As mosquitto does, the
 * topic is everything after the first '/' that follows the host, taken as
 * written: filters such as a/# and a/+/b work (a URI parser would read '#'
 * as a fragment). For ws:// and wss:// the WebSocket path stays /mqtt.
 * bench takes the topic (its topic base) as optional. */
static bool set_url(cli_opts *o, const char *url)
{
    mqttc_uri u;
    const char *sep = strstr(url, "://");
    const char *slash = sep ? strchr(sep + 3, '/') : NULL;
    size_t n = slash ? (size_t)(slash - url) : strlen(url);
    char *server = strndup(url, n);
    int rc = server ? mqttc_uri_parse(server, &u) : MQTTC_ERR_NO_MEMORY;

    free(server);
    if (rc < 0) {
        cli_usage_error(o, "invalid URL '%s' for -L: %s", url, mqttc_strerror(rc));
        return false;
    }
    if ((slash == NULL || slash[1] == '\0') && o->cmd != CLI_BENCH) {
        cli_usage_error(o, "invalid URL '%s' for -L: topic missing (expected "
                        "mqtt://[user[:password]@]host[:port]/topic)", url);
        return false;
    }
    o->scheme = u.scheme;
    o->url_given = true;
    memcpy(o->host, u.host, sizeof o->host);
    o->port = u.port;
    if (u.has_username) {
        memcpy(o->url_user, u.username, sizeof o->url_user);
        o->username = o->url_user;
        o->password = NULL;
    }
    if (u.has_password) {
        memcpy(o->url_pass, u.password, sizeof o->url_pass);
        o->password = o->url_pass;
    }
    return slash == NULL || slash[1] == '\0' ? true : add_topic(o, slash + 1);
}

static bool set_msg_mode(cli_opts *o, cli_msg_mode m)
{
    if (o->msg_mode != CLI_MSG_NONE) {
        cli_usage_error(o, "only one of -m, -f, -s, -l and -n may be given");
        return false;
    }
    o->msg_mode = m;
    return true;
}

static bool parse_qos(cli_opts *o, const char *flag, const char *arg, int *qos)
{
    long v;
    if (!parse_long(arg, 0, 2, &v)) {
        cli_usage_error(o, "invalid QoS '%s' for %s: %s", arg, flag, mqttc_strerror(MQTTC_ERR_BAD_QOS));
        return false;
    }
    *qos = (int)v;
    return true;
}

/* --tls-version: mosquitto's names; the version is both the minimum and the
 * maximum. */
static bool set_tls_version(cli_opts *o, const char *arg)
{
    if (strcmp(arg, "tlsv1.2") == 0) {
        o->tls_version = MQTTC_TLS_1_2;
    } else if (strcmp(arg, "tlsv1.3") == 0) {
        o->tls_version = MQTTC_TLS_1_3;
    } else {
        cli_usage_error(o, "invalid TLS version '%s' for --tls-version: expected tlsv1.2 or tlsv1.3",
                        arg);
        return false;
    }
    return true;
}

static bool add_alpn(cli_opts *o, const char *arg)
{
    const char **grown;
    if (arg[0] == '\0' || strlen(arg) > 255) { /* RFC 7301: 1 to 255 bytes */
        cli_usage_error(o, "invalid protocol '%s' for --alpn: expected 1 to 255 characters", arg);
        return false;
    }
    grown = realloc(o->alpn, (o->alpn_count + 2) * sizeof *grown);
    if (grown == NULL) {
        cli_usage_error(o, "%s", mqttc_strerror(MQTTC_ERR_NO_MEMORY));
        return false;
    }
    o->alpn = grown;
    grown[o->alpn_count++] = arg;
    grown[o->alpn_count] = NULL;
    return true;
}

/* Apply one option; `arg` is its argument or NULL. */
static bool apply(cli_opts *o, const cli_flag *f, const char *flag, const char *arg)
{
    switch (f->id) {
    case OPT_HOST:
        return set_host(o, arg);
    case OPT_PORT:
        if (!parse_long(arg, 1, 65535, &o->port)) {
            cli_usage_error(o, "invalid port '%s' for -p: expected 1 to 65535", arg);
            return false;
        }
        return true;
    case OPT_URL:
        return set_url(o, arg);
    case OPT_TOPIC:
        return add_topic(o, arg);
    case OPT_MESSAGE:
        o->message = arg;
        return set_msg_mode(o, CLI_MSG_ARG);
    case OPT_FILE:
        o->file = arg;
        return set_msg_mode(o, CLI_MSG_FILE);
    case OPT_STDIN_FILE:
        return set_msg_mode(o, CLI_MSG_STDIN);
    case OPT_STDIN_LINE:
        return set_msg_mode(o, CLI_MSG_LINES);
    case OPT_NULL:
        return set_msg_mode(o, CLI_MSG_NULL);
    case OPT_QOS:
        return parse_qos(o, flag, arg, &o->qos);
    case OPT_RETAIN:
        o->retain = true;
        return true;
    case OPT_ID:
        o->id = arg;
        return true;
    case OPT_ID_PREFIX:
        o->id_prefix = arg;
        return true;
    case OPT_USER:
        o->username = arg;
        return true;
    case OPT_PW:
        o->password = arg;
        return true;
    case OPT_KEEPALIVE:
        if (!parse_long(arg, 5, 65535, &o->keepalive)) {
            cli_usage_error(o, "invalid keepalive '%s' for -k: expected 5 to 65535 seconds", arg);
            return false;
        }
        return true;
    case OPT_NO_CLEAN:
        o->clean_session = false;
        return true;
    case OPT_DEBUG:
        o->debug = true;
        return true;
    case OPT_COUNT:
        if (!parse_long(arg, 1, INT_MAX, &o->count)) {
            cli_usage_error(o, "invalid message count '%s' for -C: expected a number above 0", arg);
            return false;
        }
        return true;
    case OPT_TIMEOUT:
        if (!parse_long(arg, 1, INT_MAX / 1000, &o->timeout_s)) {
            cli_usage_error(o, "invalid timeout '%s' for -W: expected seconds above 0", arg);
            return false;
        }
        return true;
    case OPT_VERBOSE:
        o->verbose = true;
        return true;
    case OPT_NO_EOL:
        o->no_eol = true;
        return true;
    case OPT_NO_RETAINED:
        o->no_retained = true;
        return true;
    case OPT_FILTER_OUT:
        if (push_copy(&o->filter_outs, &o->filter_out_count, arg) < 0) {
            cli_usage_error(o, "%s", mqttc_strerror(MQTTC_ERR_NO_MEMORY));
            return false;
        }
        return true;
    case OPT_WILL_TOPIC:
        o->will_topic = arg;
        return true;
    case OPT_WILL_PAYLOAD:
        o->will_payload = arg;
        return true;
    case OPT_WILL_QOS:
        o->will_qos_given = true;
        return parse_qos(o, flag, arg, &o->will_qos);
    case OPT_WILL_RETAIN:
        o->will_retain = true;
        return true;
    case OPT_QUIET:
        o->quiet = true;
        return true;
    case OPT_HELP:
        return true;
    case OPT_CAFILE:
        o->cafile = arg;
        return true;
    case OPT_CERT:
        o->certfile = arg;
        return true;
    case OPT_KEY:
        o->keyfile = arg;
        return true;
    case OPT_KEY_PASSWORD:
        o->key_password = arg;
        return true;
    case OPT_INSECURE:
        o->insecure = true;
        return true;
    case OPT_TLS_VERSION:
        return set_tls_version(o, arg);
    case OPT_ALPN:
        return add_alpn(o, arg);
    case OPT_WS_PATH:
        if (arg[0] != '/') {
            cli_usage_error(o, "invalid path '%s' for --ws-path: it must begin with '/'", arg);
            return false;
        }
        o->ws_path = arg;
        return true;
    case OPT_STORE:
        o->store_dir = arg;
        return true;
    case OPT_STORE_FSYNC:
        o->store_fsync = true;
        return true;
    }
    return false;
}

static bool check_topics(cli_opts *o)
{
    size_t i;
    int rc;
    for (i = 0; i < o->topic_count; i++) {
        const char *t = o->topics[i];
        if (t[0] == '\0') {
            cli_usage_error(o, "empty topic: topics are at least one character long");
            return false;
        }
        rc = o->cmd != CLI_SUB ? mqttc_topic_name_check(t, strlen(t))
                               : mqttc_topic_filter_check(t, strlen(t));
        if (rc < 0) {
            cli_usage_error(o, "invalid %s '%s': %s", o->cmd != CLI_SUB ? "topic" : "topic filter",
                            t, mqttc_strerror(rc));
            return false;
        }
    }
    for (i = 0; i < o->filter_out_count; i++) {
        const char *t = o->filter_outs[i];
        rc = mqttc_topic_filter_check(t, strlen(t));
        if (rc < 0) {
            cli_usage_error(o, "invalid filter '%s' for -T: %s", t, mqttc_strerror(rc));
            return false;
        }
    }
    if (o->will_topic != NULL) {
        rc = mqttc_topic_name_check(o->will_topic, strlen(o->will_topic));
        if (rc < 0) {
            cli_usage_error(o, "invalid will topic '%s': %s", o->will_topic, mqttc_strerror(rc));
            return false;
        }
    }
    return true;
}

static bool tls_options_given(const cli_opts *o)
{
    return o->cafile || o->certfile || o->keyfile || o->key_password || o->insecure ||
           o->tls_version != MQTTC_TLS_ANY || o->alpn_count > 0;
}

static bool check_readable(const cli_opts *o, const char *flag, const char *file)
{
    if (file != NULL && access(file, R_OK) != 0) {
        cli_usage_error(o, "cannot read '%s' for %s: %s", file, flag, strerror(errno));
        return false;
    }
    return true;
}

/* The TLS and WebSocket options, and the scheme they select. With -L the
 * URL's scheme stands and must fit the options; with -h/-p, any TLS option
 * selects mqtts:// (default port 8883, as mosquitto does with --cafile) and
 * --ws-path selects ws:// (or wss:// with TLS). */
static bool check_transport(cli_opts *o)
{
    bool tls = tls_options_given(o);
    if (o->certfile != NULL && o->keyfile == NULL) {
        cli_usage_error(o, "--cert needs --key (the certificate's private key)");
        return false;
    }
    if (o->keyfile != NULL && o->certfile == NULL) {
        cli_usage_error(o, "--key needs --cert (the client certificate)");
        return false;
    }
    if (o->key_password != NULL && o->keyfile == NULL) {
        cli_usage_error(o, "--key-password needs --key");
        return false;
    }
    if (!check_readable(o, "--cafile", o->cafile) || !check_readable(o, "--cert", o->certfile) ||
        !check_readable(o, "--key", o->keyfile)) {
        return false;
    }
    if (o->url_given) {
        bool url_tls = o->scheme == MQTTC_SCHEME_MQTTS || o->scheme == MQTTC_SCHEME_WSS;
        bool url_ws = o->scheme == MQTTC_SCHEME_WS || o->scheme == MQTTC_SCHEME_WSS;
        if (tls && !url_tls) {
            cli_usage_error(o, "TLS options need an mqtts://, ssl:// or wss:// URL for -L");
            return false;
        }
        if (o->ws_path != NULL && !url_ws) {
            cli_usage_error(o, "--ws-path needs a ws:// or wss:// URL for -L");
            return false;
        }
        return true;
    }
    if (o->ws_path != NULL) {
        o->scheme = tls ? MQTTC_SCHEME_WSS : MQTTC_SCHEME_WS;
    } else if (tls) {
        o->scheme = MQTTC_SCHEME_MQTTS;
    }
    return true;
}

/* The combinations mosquitto refuses, with its rules. */
static bool check_combinations(cli_opts *o)
{
    if (o->topic_count == 0 && o->cmd != CLI_BENCH) {
        cli_usage_error(o, "no topic given: use -t topic or -L URL");
        return false;
    }
    if (o->cmd == CLI_PUB && o->msg_mode == CLI_MSG_NONE) {
        cli_usage_error(o, "no message given: use one of -m, -f, -s, -l or -n");
        return false;
    }
    if (o->store_dir != NULL && o->id == NULL) {
        cli_usage_error(o, "--store needs -i: the store belongs to one client id");
        return false;
    }
    if (o->store_fsync && o->store_dir == NULL) {
        cli_usage_error(o, "--store-fsync needs --store");
        return false;
    }
    if (o->id != NULL && o->id_prefix != NULL) {
        cli_usage_error(o, "-i and -I cannot be used together");
        return false;
    }
    if (!o->clean_session && (o->id == NULL || o->id[0] == '\0')) {
        cli_usage_error(o, "-c needs a client id given with -i (%s)",
                        mqttc_strerror(MQTTC_ERR_BAD_CLIENT_ID));
        return false;
    }
    if (o->password != NULL && o->username == NULL) {
        cli_usage_error(o, "a password (-P) needs a user name (-u) in MQTT 3.1.1");
        return false;
    }
    if (o->will_topic == NULL && (o->will_payload || o->will_qos_given || o->will_retain)) {
        cli_usage_error(o, "--will-payload, --will-qos and --will-retain need --will-topic (%s)",
                        mqttc_strerror(MQTTC_ERR_BAD_WILL));
        return false;
    }
    return check_transport(o) && check_topics(o);
}

/* "mqttc-" and random letters and digits, like mosquitto's "mosq-...". */
static int make_id(cli_opts *o)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    unsigned char rnd[CLI_RANDOM_ID_CHARS];
    size_t i, n;
    int fd;

    if (o->id != NULL) {
        return 0;
    }
    if (o->id_prefix != NULL) { /* mosquitto: the prefix and the process id */
        n = strlen(o->id_prefix) + 24;
        o->id_owned = malloc(n);
        if (o->id_owned == NULL) {
            return MQTTC_ERR_NO_MEMORY;
        }
        snprintf(o->id_owned, n, "%s%ld", o->id_prefix, (long)getpid());
        o->id = o->id_owned;
        return 0;
    }
    fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, rnd, sizeof rnd) != (ssize_t)sizeof rnd) {
        uint64_t x = (uint64_t)cli_now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
        for (i = 0; i < sizeof rnd; i++) { /* xorshift: good enough for an id */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (unsigned char)x;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    o->id_owned = malloc(sizeof "mqttc-" + CLI_RANDOM_ID_CHARS);
    if (o->id_owned == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    memcpy(o->id_owned, "mqttc-", 6);
    for (i = 0; i < CLI_RANDOM_ID_CHARS; i++) {
        o->id_owned[6 + i] = alnum[rnd[i] % (sizeof alnum - 1)];
    }
    o->id_owned[6 + CLI_RANDOM_ID_CHARS] = '\0';
    o->id = o->id_owned;
    return 0;
}

static const cli_extra_flag *find_extra(const char *s, const cli_extra_flag *extra, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if ((extra[i].short_name && strcmp(s, extra[i].short_name) == 0) ||
            (extra[i].long_name && strcmp(s, extra[i].long_name) == 0)) {
            return &extra[i];
        }
    }
    return NULL;
}

int cli_parse(cli_command cmd, int argc, char **argv, cli_opts *o, bool *help)
{
    return cli_parse_ex(cmd, argc, argv, o, help, NULL, 0, NULL, NULL);
}

int cli_parse_ex(cli_command cmd, int argc, char **argv, cli_opts *o, bool *help,
                 const cli_extra_flag *extra, size_t n, cli_extra_apply extra_apply, void *user)
{
    int i;
    memset(o, 0, sizeof *o);
    o->cmd = cmd;
    o->name = cmd == CLI_PUB ? "mqttc pub" : cmd == CLI_SUB ? "mqttc sub" : "mqttc bench";
    o->scheme = MQTTC_SCHEME_MQTT;
    strcpy(o->host, "localhost");
    o->keepalive = 60;
    o->clean_session = true;
    *help = false;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const cli_flag *f = find_flag(a);
        const cli_extra_flag *x =
            f == NULL || (f->cmds & cmd) == 0 ? find_extra(a, extra, n) : NULL;
        const char *arg = NULL;
        if (x != NULL && extra_apply != NULL) {
            if (x->arg != NULL) {
                if (i + 1 >= argc) {
                    cli_usage_error(o, "%s needs an argument (%s)", a, x->arg);
                    return -1;
                }
                arg = argv[++i];
            }
            if (!extra_apply(o, x->id, a, arg, user)) {
                return -1;
            }
            continue;
        }
        if (f == NULL || (f->cmds & cmd) == 0) {
            if (a[0] != '-') {
                cli_usage_error(o, "unexpected argument '%s'", a);
            } else if (f == NULL && is_unsupported(a)) {
                cli_usage_error(o, "option '%s' is not supported by mqttc", a);
            } else {
                cli_usage_error(o, "unknown option '%s'", a);
            }
            return -1;
        }
        if (f->id == OPT_HELP) {
            *help = true;
            return 1;
        }
        if (f->arg != NULL) {
            if (i + 1 >= argc) {
                cli_usage_error(o, "%s needs an argument (%s)", a, f->arg);
                return -1;
            }
            arg = argv[++i];
        }
        if (!apply(o, f, a, arg)) {
            return -1;
        }
    }
    if (!check_combinations(o)) {
        return -1;
    }
    if (cmd != CLI_BENCH && make_id(o) < 0) {
        cli_usage_error(o, "%s", mqttc_strerror(MQTTC_ERR_NO_MEMORY));
        return -1;
    }
    return 0;
}

void cli_opts_free(cli_opts *o)
{
    size_t i;
    for (i = 0; i < o->topic_count; i++) {
        free(o->topics[i]);
    }
    for (i = 0; i < o->filter_out_count; i++) {
        free(o->filter_outs[i]);
    }
    free(o->topics);
    free(o->filter_outs);
    free(o->alpn);
    free(o->id_owned);
    mqttc_store_close(o->store); /* after the client that used it */
    memset(o, 0, sizeof *o);
}

/* ---- help ------------------------------------------------------------------ */

void cli_common_usage(void)
{
    printf(
        " -c, --disable-clean-session  keep the session on the broker (needs -i)\n"
        " -k, --keepalive  keepalive in seconds, 5 to 65535 (default 60)\n"
        " -i, --id         client id (default mqttc- and random letters)\n"
        " -I, --id-prefix  client id: this prefix and the process id\n"
        " -u, --username   user name\n"
        " -P, --pw         password\n"
        " -d, --debug      print the library's debug log on stderr\n"
        " --quiet          print no runtime errors (usage errors are still printed)\n"
        " --will-topic     topic of the will sent if this client disconnects unexpectedly\n"
        " --will-payload   payload of the will (default empty)\n"
        " --will-qos       QoS of the will (default 0)\n"
        " --will-retain    retain the will\n"
        " --help           this message\n"
        "\n");
    cli_tls_usage();
    cli_store_usage();
}

void cli_tls_usage(void)
{
    printf(
        "TLS and WebSocket (mqtts:// or ssl:// is MQTT over TLS, ws:// MQTT over WebSocket,\n"
        "wss:// both). With -h/-p, any TLS option selects mqtts:// (default port 8883) and\n"
        "--ws-path selects ws:// (default port 8083; wss://, 8084, with a TLS option too).\n"
        " --cafile         PEM file of the CA(s) trusted to sign the broker's certificate\n"
        "                  (default: the system's CA bundle)\n"
        " --cert           PEM file of the client certificate, for brokers that require one\n"
        " --key            PEM file of its private key (needed with --cert)\n"
        " --key-password   password of an encrypted --key (mqttc extension)\n"
        " --insecure       do not verify the broker's certificate at all. Unlike mosquitto,\n"
        "                  which still checks the chain and skips only the host name, mqttc\n"
        "                  then checks neither: use it for tests only\n"
        " --tls-version    tlsv1.2 or tlsv1.3: the only version to use (default: the best\n"
        "                  both sides support; this build has no TLS 1.3)\n"
        " --alpn, --tls-alpn  ALPN protocol to offer; may be repeated\n"
        " --ws-path        WebSocket path (default /mqtt; mqttc extension)\n");
}

void cli_store_usage(void)
{
    printf(
        " --store          directory of a file store (needs -i): unacknowledged QoS 1/2\n"
        "                  messages and QoS 2 state survive a crash and are re-sent when\n"
        "                  the command runs again with the same -i (mqttc extension)\n"
        " --store-fsync    flush every store record to the disk (survives power loss)\n");
}

/* ---- the client ---------------------------------------------------------- */

static const char *scheme_name(mqttc_scheme s)
{
    switch (s) {
    case MQTTC_SCHEME_MQTTS:
        return "mqtts";
    case MQTTC_SCHEME_WS:
        return "ws";
    case MQTTC_SCHEME_WSS:
        return "wss";
    case MQTTC_SCHEME_MQTT:
        break;
    }
    return "mqtt";
}

const char *cli_server(const cli_opts *o)
{
    static char buf[MQTTC_URI_HOST_MAX + 32];
    bool v6 = strchr(o->host, ':') != NULL;
    unsigned port = o->port ? (unsigned)o->port : mqttc_scheme_default_port(o->scheme);
    snprintf(buf, sizeof buf, "%s://%s%s%s:%u", scheme_name(o->scheme), v6 ? "[" : "", o->host,
             v6 ? "]" : "", port);
    return buf;
}

static void log_to_stderr(mqttc_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};
    (void)user;
    fprintf(stderr, "mqttc: %s: %s\n", names[level <= MQTTC_LOG_DEBUG ? level : MQTTC_LOG_DEBUG],
            msg);
}

void cli_client_config(cli_opts *o, mqttc_client_config *cfg)
{
    mqttc_client_config_init(cfg);
    cfg->uri = cli_server(o);
    cfg->client_id = o->id;
    cfg->username = o->username;
    cfg->password = o->password;
    if (o->will_topic != NULL) {
        cfg->will_topic = o->will_topic;
        cfg->will_payload = o->will_payload;
        cfg->will_payload_len = o->will_payload ? strlen(o->will_payload) : 0;
        cfg->will_qos = (uint8_t)o->will_qos;
        cfg->will_retain = o->will_retain;
    }
    cfg->tls.ca = o->cafile;
    cfg->tls.cert = o->certfile;
    cfg->tls.key = o->keyfile;
    cfg->tls.key_password = o->key_password;
    cfg->tls.verify = o->insecure ? MQTTC_TLS_VERIFY_NONE : MQTTC_TLS_VERIFY_REQUIRED;
    cfg->tls.alpn = (const char *const *)o->alpn;
    cfg->tls.min_version = o->tls_version;
    cfg->tls.max_version = o->tls_version;
    cfg->ws_path = o->ws_path;
    cfg->keepalive = (uint16_t)o->keepalive;
    cfg->clean_session = o->clean_session;
    cfg->run_mode = MQTTC_RUN_CALLER;
    if (o->debug) {
        cfg->on_log = log_to_stderr;
        cfg->log_level = MQTTC_LOG_DEBUG;
    }
}

int cli_client_create(cli_opts *o, mqttc_client_cb on_event, void *user, mqttc_client **out)
{
    mqttc_client_config cfg;
    int rc;
    cli_client_config(o, &cfg);
    cfg.rx_buffer_size = CLI_BUFFER;
    cfg.tx_buffer_size = CLI_BUFFER; /* a SUBSCRIBE with every -t must fit */
    /* One message of any size the protocol allows must fit the queue. */
    cfg.queue_max_bytes = (size_t)MQTTC_MAX_REMAINING_LENGTH + 65536u;
    /* mosquitto's loop reconnects after a lost session; the commands give
     * up on the first failure before any session instead. */
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = CLI_RECONNECT_MS;
    cfg.on_event = on_event;
    cfg.user = user;
    if (o->store_dir != NULL) {
        mqttc_store_file_options so;
        memset(&so, 0, sizeof so);
        so.sync = o->store_fsync ? MQTTC_STORE_SYNC_ALWAYS : MQTTC_STORE_SYNC_NONE;
        rc = mqttc_store_file_open(o->store_dir, o->id, &so, &o->store);
        if (rc < 0) {
            cli_usage_error(o, "cannot use the store in '%s': %s%s%s", o->store_dir,
                            mqttc_strerror(rc), rc == MQTTC_ERR_STORE ? ": " : "",
                            rc == MQTTC_ERR_STORE ? strerror(errno) : "");
            return rc;
        }
        cfg.store = o->store;
    }
    rc = mqttc_client_create(&cfg, out);
    if (rc < 0) {
        cli_usage_error(o, "cannot use %s: %s", cli_server(o), mqttc_strerror(rc));
    }
    return rc;
}

int cli_connection_error(const cli_opts *o, const mqttc_client_event *ev)
{
    if (ev->u.error.kind == MQTTC_ERRKIND_CONNACK) {
        cli_error(o, "Connection error: %s", mqttc_strerror(ev->u.error.code));
        return ev->u.error.connack_code ? ev->u.error.connack_code : CLI_EXIT_ERROR;
    }
    cli_error(o, "Connection error: %s: %s", cli_server(o), mqttc_strerror(ev->u.error.code));
    return CLI_EXIT_ERROR;
}

/* ---- the loop ------------------------------------------------------------ */

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_until(int64_t deadline)
{
    int64_t left;
    if (deadline < 0) {
        return -1;
    }
    left = deadline - cli_now_ms();
    return left <= 0 ? 0 : (left > INT_MAX ? INT_MAX : (int)left);
}

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_caught;

static void on_signal(int signo)
{
    int saved = errno;
    ssize_t r;
    (void)signo;
    sig_caught = 1;
    r = write(sig_pipe[1], "", 1); /* a full pipe already wakes the loop */
    (void)r;
    errno = saved;
}

int cli_signals_install(void)
{
    struct sigaction sa;
    int i;
    if (pipe(sig_pipe) != 0) {
        return -1;
    }
    for (i = 0; i < 2; i++) {
        fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
        fcntl(sig_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0) {
        return -1;
    }
    return 0;
}

bool cli_signalled(void)
{
    return sig_caught != 0;
}

bool cli_wait(mqttc_client *c, int extra_fd, int timeout_ms)
{
    struct pollfd p[3];
    nfds_t n = 0;
    int cfd = mqttc_client_fd(c), want = mqttc_client_want(c), t = mqttc_client_next_timeout(c);
    int ci = -1, ei = -1, ready = 0;
    char drain[64];

    if (timeout_ms >= 0 && (t < 0 || timeout_ms < t)) {
        t = timeout_ms;
    }
    memset(p, 0, sizeof p);
    if (sig_pipe[0] >= 0) {
        p[n].fd = sig_pipe[0];
        p[n++].events = POLLIN;
    }
    if (cfd >= 0 && want != 0) {
        ci = (int)n;
        p[n].fd = cfd;
        p[n++].events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                                ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
    }
    if (extra_fd >= 0) {
        ei = (int)n;
        p[n].fd = extra_fd;
        p[n++].events = POLLIN;
    }
    if (n == 0 && t < 0) {
        t = 1000; /* nothing to wait for: never sleep forever */
    }
    if (poll(p, n, t) < 0) {
        memset(p, 0, sizeof p); /* EINTR: a signal, seen through the flag */
    }
    if (sig_pipe[0] >= 0 && p[0].revents != 0) {
        while (read(sig_pipe[0], drain, sizeof drain) > 0) {
        }
    }
    if (ci >= 0) {
        ready |= (p[ci].revents & (POLLIN | POLLHUP | POLLERR)) ? MQTTC_WANT_READ : 0;
        ready |= (p[ci].revents & (POLLOUT | POLLHUP | POLLERR)) ? MQTTC_WANT_WRITE : 0;
    }
    mqttc_client_process(c, ready);
    return ei >= 0 && (p[ei].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

void cli_disconnect(mqttc_client *c)
{
    int64_t deadline = cli_now_ms() + CLI_DISCONNECT_GRACE_MS;
    mqttc_client_disconnect(c);
    do {
        cli_wait(c, -1, cli_until(deadline));
    } while (mqttc_client_state_get(c) != MQTTC_CLIENT_IDLE && cli_until(deadline) > 0);
}

/* ---- input --------------------------------------------------------------- */

int cli_read_all(int fd, uint8_t **data, size_t *len)
{
    const size_t max = MQTTC_MAX_REMAINING_LENGTH; /* no payload can be larger */
    struct stat st;
    size_t cap = 64 * 1024, n = 0;
    uint8_t *buf;

    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= 0) {
        if ((uint64_t)st.st_size > max) {
            return MQTTC_ERR_TOO_LARGE;
        }
        cap = (size_t)st.st_size + 1; /* +1: see EOF without growing */
    }
    buf = malloc(cap);
    if (buf == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    for (;;) {
        ssize_t r;
        if (n == cap) {
            uint8_t *grown;
            if (cap > max) {
                free(buf);
                return MQTTC_ERR_TOO_LARGE;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            grown = realloc(buf, cap);
            if (grown == NULL) {
                free(buf);
                return MQTTC_ERR_NO_MEMORY;
            }
            buf = grown;
        }
        r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int saved = errno;
            free(buf);
            errno = saved;
            return MQTTC_ERR_TRANSPORT;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
    }
    if (n > max) {
        free(buf);
        return MQTTC_ERR_TOO_LARGE;
    }
    *data = buf;
    *len = n;
    return 0;
}
