/* mqttc pub: connect, publish one message (-m, -f, -s, -n) or a message per
 * line of standard input (-l), wait until the client reports every one
 * published (MQTTC_CLIENT_EV_PUBLISHED: QoS 0 written, QoS 1 PUBACK, QoS 2
 * PUBCOMP), then disconnect cleanly. Flags and exit codes: mosquitto_pub. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "mqttc/codec.h"

#define PUB_LINE_WINDOW 64         /* -l: messages handed to the client and not yet done */
#define PUB_READ_CHUNK (64u * 1024u) /* -l: bytes read from stdin at a time */

typedef struct pub_state {
    cli_opts *o;
    mqttc_client *c;
    uint8_t *payload; /* the single message (-f, -s), owned */
    /* -l: stdin bytes not yet published are buf[start..len) */
    uint8_t *buf;
    size_t start, len, cap;
    bool eof;
    bool connected_once; /* a CONNACK was accepted at least once */
    bool started;        /* publishing has begun (at the first CONNACK) */
    bool input_done;     /* every message has been handed to the client */
    size_t outstanding;  /* handed to the client, not yet PUBLISHED or DROPPED */
    bool failed;         /* a message was dropped */
    bool fatal;          /* stop now with exit_code */
    int exit_code;
} pub_state;

void cli_pub_usage(void)
{
    printf(
        "mqttc pub: publish one message, or a message per line of stdin, and exit.\n"
        "\n"
        "Usage: mqttc pub {[-h host] [-p port] [-u username [-P password]] -t topic | -L URL}\n"
        "                 {-m message | -f file | -s | -l | -n}\n"
        "                 [-q qos] [-r] [-c] [-k keepalive] [-i id | -I id_prefix] [-d] [--quiet]\n"
        "                 [--will-topic topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
        "                 [--cafile file] [--cert file --key file [--key-password password]]\n"
        "                 [--insecure] [--tls-version version] [--alpn protocol ...] [--ws-path path]\n"
        "                 [--store directory [--store-fsync]]\n"
        "       mqttc pub --help\n"
        "\n"
        " -h, --host       broker host name or address (default localhost)\n"
        " -p, --port       broker port (default 1883; 8883 with TLS options)\n"
        " -L, --url        scheme://[user[:password]@]host[:port]/topic, scheme one of mqtt, tcp,\n"
        "                  mqtts, ssl, ws, wss (default ports 1883, 8883, 8083, 8084)\n"
        " -t, --topic      topic to publish to\n"
        " -m, --message    the message payload\n"
        " -f, --file       send the contents of a file as the message\n"
        " -s, --stdin-file send all of stdin as one message\n"
        " -l, --stdin-line send a message per line of stdin (empty lines as empty messages)\n"
        " -n, --null-message send an empty message\n"
        " -q, --qos        quality of service 0, 1 or 2 (default 0)\n"
        " -r, --retain     retain the message (an empty retained message clears the topic)\n");
    cli_common_usage();
    printf(
        "\n"
        "Once connected, a lost connection is re-established and unacknowledged messages are\n"
        "re-sent. Exit status: 0 when every message was published (QoS 1 and 2: acknowledged),\n"
        "including those restored from --store; the CONNACK return code (1-5) when the broker\n"
        "refused the connection; 1 for any other error.\n");
}

static void pub_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    pub_state *s = user;
    (void)c;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        s->connected_once = true;
        break;
    case MQTTC_CLIENT_EV_PUBLISHED:
        s->outstanding--;
        break;
    case MQTTC_CLIENT_EV_DROPPED:
        s->outstanding--;
        s->failed = true;
        cli_error(s->o, "Error: a message to '%s' was not delivered: %s", ev->u.dropped.topic,
                  mqttc_strerror(ev->u.dropped.reason));
        break;
    case MQTTC_CLIENT_EV_ERROR:
        if (!s->connected_once || ev->u.error.kind == MQTTC_ERRKIND_CONNACK) {
            s->exit_code = cli_connection_error(s->o, ev);
            s->fatal = true;
        } else {
            cli_error(s->o, "Connection error: %s: %s (reconnecting)", cli_server(s->o),
                      mqttc_strerror(ev->u.error.code));
        }
        break;
    default:
        break;
    }
}

static void pub_send(pub_state *s, const void *payload, size_t len)
{
    int rc = mqttc_client_publish(s->c, s->o->topics[0], payload, len, s->o->qos, s->o->retain);
    if (rc < 0) {
        cli_error(s->o, "Error: cannot publish to '%s': %s", s->o->topics[0], mqttc_strerror(rc));
        s->exit_code = CLI_EXIT_ERROR;
        s->fatal = true;
        return;
    }
    s->outstanding++;
}

/* -l: publish the complete lines in the buffer (and the last, unterminated
 * one at end of input) while the window allows. */
static void pub_lines(pub_state *s)
{
    while (!s->input_done && !s->fatal && s->outstanding < PUB_LINE_WINDOW &&
           mqttc_client_ready(s->c)) {
        uint8_t *line = s->buf ? s->buf + s->start : NULL;
        size_t avail = s->len - s->start;
        uint8_t *nl = avail > 0 ? memchr(line, '\n', avail) : NULL;
        if (nl != NULL) {
            pub_send(s, line, (size_t)(nl - line));
            s->start += (size_t)(nl - line) + 1;
        } else if (s->eof) {
            if (avail > 0) {
                pub_send(s, line, avail);
            }
            s->start = s->len;
            s->input_done = true;
        } else {
            return; /* more input needed */
        }
    }
}

/* -l: read what stdin has (poll said it is readable). */
static void pub_read_stdin(pub_state *s)
{
    ssize_t r;
    if (s->start > 0) {
        memmove(s->buf, s->buf + s->start, s->len - s->start);
        s->len -= s->start;
        s->start = 0;
    }
    if (s->len > MQTTC_MAX_REMAINING_LENGTH) {
        cli_error(s->o, "Error: a line of stdin is too long: %s", mqttc_strerror(MQTTC_ERR_TOO_LARGE));
        s->exit_code = CLI_EXIT_ERROR;
        s->fatal = true;
        return;
    }
    if (s->cap - s->len < PUB_READ_CHUNK) {
        size_t cap = s->cap ? s->cap * 2 : PUB_READ_CHUNK;
        uint8_t *grown = realloc(s->buf, cap);
        if (grown == NULL) {
            cli_error(s->o, "Error: %s", mqttc_strerror(MQTTC_ERR_NO_MEMORY));
            s->exit_code = CLI_EXIT_ERROR;
            s->fatal = true;
            return;
        }
        s->buf = grown;
        s->cap = cap;
    }
    r = read(STDIN_FILENO, s->buf + s->len, s->cap - s->len);
    if (r > 0) {
        s->len += (size_t)r;
    } else if (r == 0) {
        s->eof = true;
    } else if (errno != EINTR && errno != EAGAIN) {
        cli_error(s->o, "Error: cannot read stdin: %s", strerror(errno));
        s->exit_code = CLI_EXIT_ERROR;
        s->fatal = true;
    }
}

/* -f, -s: the whole message in memory before connecting. */
static int pub_load(pub_state *s, size_t *len)
{
    cli_opts *o = s->o;
    int fd = STDIN_FILENO, rc;
    if (o->msg_mode == CLI_MSG_FILE) {
        fd = open(o->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            cli_usage_error(o, "cannot open '%s' for -f: %s", o->file, strerror(errno));
            return -1;
        }
    }
    rc = cli_read_all(fd, &s->payload, len);
    if (rc < 0) {
        const char *why = rc == MQTTC_ERR_TRANSPORT ? strerror(errno) : mqttc_strerror(rc);
        cli_usage_error(o, "cannot read %s: %s",
                        o->msg_mode == CLI_MSG_FILE ? o->file : "stdin", why);
    }
    if (fd != STDIN_FILENO) {
        close(fd);
    }
    return rc < 0 ? -1 : 0;
}

/* Publish until every message is done or something fatal happens. */
static void pub_run(pub_state *s, const void *payload, size_t len)
{
    bool lines = s->o->msg_mode == CLI_MSG_LINES;
    while (!s->fatal) {
        bool want_stdin;
        if (!s->started && mqttc_client_ready(s->c)) {
            s->started = true;
            if (!lines) {
                pub_send(s, payload, len);
                s->input_done = true;
            }
        }
        if (s->started && lines) {
            pub_lines(s);
        }
        if (s->fatal || (s->input_done && s->outstanding == 0)) {
            break;
        }
        want_stdin = lines && s->started && !s->eof && !s->input_done &&
                     s->outstanding < PUB_LINE_WINDOW && mqttc_client_ready(s->c);
        if (cli_wait(s->c, want_stdin ? STDIN_FILENO : -1, -1)) {
            pub_read_stdin(s);
        }
    }
}

int cli_pub_main(int argc, char **argv)
{
    cli_opts o;
    pub_state s;
    bool help;
    const void *payload = NULL;
    size_t len = 0;
    int rc = cli_parse(CLI_PUB, argc, argv, &o, &help);

    if (rc != 0) {
        if (help) {
            cli_pub_usage();
        }
        cli_opts_free(&o);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    }
    memset(&s, 0, sizeof s);
    s.o = &o;
    if (o.msg_mode == CLI_MSG_ARG) {
        payload = o.message;
        len = strlen(o.message);
    } else if (o.msg_mode == CLI_MSG_FILE || o.msg_mode == CLI_MSG_STDIN) {
        if (pub_load(&s, &len) < 0) {
            cli_opts_free(&o);
            return CLI_EXIT_ERROR;
        }
        payload = s.payload;
    }
    if (cli_client_create(&o, pub_on_event, &s, &s.c) < 0) {
        free(s.payload);
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    /* Messages a killed earlier run left in the store are sent first and
     * count like the new ones: the exit status covers them too. */
    s.outstanding = mqttc_client_queued(s.c);
    if (s.outstanding > 0 && o.debug) {
        fprintf(stderr, "mqttc pub: %zu unacknowledged message(s) restored from %s\n",
                s.outstanding, o.store_dir);
    }
    mqttc_client_connect(s.c);
    pub_run(&s, payload, len);
    cli_disconnect(s.c);
    mqttc_client_destroy(s.c);
    free(s.payload);
    free(s.buf);
    cli_opts_free(&o);
    if (s.fatal) {
        return s.exit_code;
    }
    return s.failed ? CLI_EXIT_ERROR : CLI_EXIT_OK;
}
