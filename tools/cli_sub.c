/* mqttc sub: subscribe to every -t at -q and print messages as they arrive,
 * until -C messages were printed, -W seconds passed, or SIGINT/SIGTERM;
 * then disconnect cleanly. Flags, output format and exit codes:
 * mosquitto_sub. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "mqttc/codec.h"

typedef struct sub_state {
    cli_opts *o;
    mqttc_client *c;
    bool connected_once; /* a CONNACK was accepted at least once */
    bool subscribed;     /* the SUBSCRIBE was handed to the client */
    bool finished;       /* leave the loop (and print nothing more) */
    int exit_code;
    long printed;     /* messages printed, for -C */
    int64_t deadline; /* -W: when to give up; -1 until the first CONNACK */
} sub_state;

void cli_sub_usage(void)
{
    printf(
        "mqttc sub: subscribe to topics and print the messages that arrive.\n"
        "\n"
        "Usage: mqttc sub {[-h host] [-p port] [-u username [-P password]] -t topic ... | -L URL [-t topic ...]}\n"
        "                 [-q qos] [-c] [-k keepalive] [-i id | -I id_prefix]\n"
        "                 [-C msg_count] [-W timeout_secs] [-R] [-T filter_out ...] [-v] [-N]\n"
        "                 [-d] [--quiet]\n"
        "                 [--will-topic topic [--will-payload payload] [--will-qos qos] [--will-retain]]\n"
        "                 [--cafile file] [--cert file --key file [--key-password password]]\n"
        "                 [--insecure] [--tls-version version] [--alpn protocol ...] [--ws-path path]\n"
        "                 [--store directory [--store-fsync]]\n"
        "       mqttc sub --help\n"
        "\n"
        " -h, --host       broker host name or address (default localhost)\n"
        " -p, --port       broker port (default 1883; 8883 with TLS options)\n"
        " -L, --url        scheme://[user[:password]@]host[:port]/topic, scheme one of mqtt, tcp,\n"
        "                  mqtts, ssl, ws, wss (default ports 1883, 8883, 8083, 8084)\n"
        " -t, --topic      topic filter to subscribe to; may be repeated\n"
        " -T, --filter-out do not print messages whose topic matches this filter; may be repeated\n"
        " -q, --qos        quality of service of the subscriptions, 0, 1 or 2 (default 0)\n"
        " -C               disconnect and exit after printing this many messages\n"
        " -W               disconnect and exit (status 27) after this many seconds, counted\n"
        "                  from the first connection\n"
        " -R               do not print stale messages (those with the retain flag set)\n"
        " -v, --verbose    print \"topic payload\" instead of the payload alone\n"
        " -N               do not print a newline after each payload\n");
    cli_common_usage();
    printf(
        "\n"
        "A lost connection is re-established every second, as mosquitto_sub does.\n"
        "Exit status: 0 after -C messages or SIGINT/SIGTERM; 27 when -W expired; the CONNACK\n"
        "return code (1-5) when the broker refused the connection; 1 for any other error.\n");
}

/* mosquitto_sub's format: the payload, or "topic payload" with -v (and
 * "topic (null)" for an empty payload), then a newline unless -N. */
static bool sub_print(const cli_opts *o, const mqttc_client_event *ev)
{
    const char *topic = ev->u.message.topic;
    size_t topic_len = ev->u.message.topic_len, len = ev->u.message.payload_len;
    bool eol = !o->no_eol;
    if (o->verbose && len == 0) {
        if (eol) {
            fwrite(topic, 1, topic_len, stdout);
            fputs(" (null)\n", stdout);
        }
    } else {
        if (o->verbose) {
            fwrite(topic, 1, topic_len, stdout);
            fputc(' ', stdout);
        }
        fwrite(ev->u.message.payload, 1, len, stdout);
        if (eol) {
            fputc('\n', stdout);
        }
    }
    return fflush(stdout) == 0 && !ferror(stdout);
}

static void sub_message(sub_state *s, const mqttc_client_event *ev)
{
    const cli_opts *o = s->o;
    size_t i;
    if (s->finished || (o->no_retained && ev->u.message.retain)) {
        return;
    }
    for (i = 0; i < o->filter_out_count; i++) {
        if (mqttc_topic_matches(o->filter_outs[i], strlen(o->filter_outs[i]), ev->u.message.topic,
                                ev->u.message.topic_len)) {
            return;
        }
    }
    if (!sub_print(o, ev)) {
        cli_error(o, "Error: cannot write to stdout: %s", strerror(errno));
        s->exit_code = CLI_EXIT_ERROR;
        s->finished = true;
        return;
    }
    if (o->count > 0 && ++s->printed >= o->count) {
        s->finished = true;
    }
}

static void sub_subscribed(sub_state *s, const mqttc_client_event *ev)
{
    size_t i, refused = 0, n = ev->u.subscribed.count;
    if (s->o->debug) {
        fprintf(stderr, "Subscribed (mid: %d):", ev->u.subscribed.msg_id);
        for (i = 0; i < n; i++) {
            fprintf(stderr, "%s %d", i ? "," : "", ev->u.subscribed.granted[i]);
        }
        fputc('\n', stderr);
    }
    for (i = 0; i < n; i++) {
        if (ev->u.subscribed.granted[i] == 0x80) {
            refused++;
            if (i < s->o->topic_count) {
                cli_error(s->o, "Warning: the broker refused the subscription to '%s'",
                          s->o->topics[i]);
            }
        }
    }
    if (n > 0 && refused == n) {
        cli_error(s->o, "Error: all subscription requests were denied");
        s->exit_code = CLI_EXIT_ERROR;
        s->finished = true;
    }
}

static void sub_on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    sub_state *s = user;
    (void)c;
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        s->connected_once = true;
        if (s->o->timeout_s > 0 && s->deadline < 0) {
            s->deadline = cli_now_ms() + s->o->timeout_s * 1000;
        }
        break;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        sub_subscribed(s, ev);
        break;
    case MQTTC_CLIENT_EV_MESSAGE:
        sub_message(s, ev);
        break;
    case MQTTC_CLIENT_EV_ERROR:
        if (s->finished) {
            break;
        }
        if (!s->connected_once || ev->u.error.kind == MQTTC_ERRKIND_CONNACK) {
            s->exit_code = cli_connection_error(s->o, ev);
            s->finished = true;
        } else {
            cli_error(s->o, "Connection error: %s: %s (reconnecting)", cli_server(s->o),
                      mqttc_strerror(ev->u.error.code));
        }
        break;
    default:
        break;
    }
}

/* One SUBSCRIBE with every -t, at the first CONNACK; the client renews the
 * subscriptions itself after a reconnect without a session. */
static void sub_subscribe(sub_state *s)
{
    mqttc_topic_qos *items = calloc(s->o->topic_count, sizeof *items);
    size_t i;
    int rc = MQTTC_ERR_NO_MEMORY;
    if (items != NULL) {
        for (i = 0; i < s->o->topic_count; i++) {
            items[i].filter = s->o->topics[i];
            items[i].qos = s->o->qos;
        }
        rc = mqttc_client_subscribe_many(s->c, items, s->o->topic_count);
        free(items);
    }
    if (rc < 0) {
        cli_error(s->o, "Error: cannot subscribe: %s", mqttc_strerror(rc));
        s->exit_code = CLI_EXIT_ERROR;
        s->finished = true;
    }
    s->subscribed = true;
}

static void sub_run(sub_state *s)
{
    while (!s->finished) {
        if (!s->subscribed && mqttc_client_ready(s->c)) {
            sub_subscribe(s);
            continue;
        }
        if (cli_signalled()) {
            s->finished = true; /* mosquitto_sub: a clean exit, status 0 */
            break;
        }
        if (s->deadline >= 0 && cli_until(s->deadline) == 0) {
            cli_error(s->o, "Timed out");
            s->exit_code = CLI_EXIT_TIMEOUT;
            s->finished = true;
            break;
        }
        cli_wait(s->c, -1, cli_until(s->deadline));
    }
}

int cli_sub_main(int argc, char **argv)
{
    cli_opts o;
    sub_state s;
    bool help;
    int rc = cli_parse(CLI_SUB, argc, argv, &o, &help);

    if (rc != 0) {
        if (help) {
            cli_sub_usage();
        }
        cli_opts_free(&o);
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_ERROR;
    }
    memset(&s, 0, sizeof s);
    s.o = &o;
    s.deadline = -1;
    if (cli_signals_install() != 0) {
        cli_error(&o, "Error: cannot install the signal handlers: %s", strerror(errno));
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    if (cli_client_create(&o, sub_on_event, &s, &s.c) < 0) {
        cli_opts_free(&o);
        return CLI_EXIT_ERROR;
    }
    mqttc_client_connect(s.c);
    sub_run(&s);
    cli_disconnect(s.c);
    mqttc_client_destroy(s.c);
    cli_opts_free(&o);
    return s.exit_code;
}
