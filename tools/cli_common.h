/* The mqttc command-line tool: what `mqttc pub` and `mqttc sub` share.
 *
 * Both commands take mosquitto_pub's / mosquitto_sub's flags (mosquitto
 * 2.0.11) with the same meanings and exit codes, parse them into a cli_opts,
 * and drive one mqttc_client in MQTTC_RUN_CALLER mode from a single poll()
 * loop (cli_wait): the client's descriptor, a self-pipe for SIGINT/SIGTERM
 * and, for `pub -l`, standard input all wait in the same poll, so the tool
 * has one thread, callbacks run between two poll() calls and nothing needs a
 * lock. The background-thread mode would need a condition variable plus a
 * second way to wake up for signals and stdin; the caller mode needs neither.
 *
 * `mqttc bench` (cli_bench.c) shares the option parser (cli_parse_ex with its
 * own options) and the client settings (cli_client_config), and runs many
 * clients on worker threads, each with its own poll() loop. */
#ifndef MQTTC_CLI_COMMON_H
#define MQTTC_CLI_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttc/client.h"
#include "mqttc/uri.h"

/* Exit codes, as mosquitto_pub / mosquitto_sub 2.0.11 use them. */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,   /* usage errors and runtime failures */
    CLI_EXIT_TIMEOUT = 27 /* sub -W expired: libmosquitto's MOSQ_ERR_TIMEOUT */
    /* A CONNACK refusal exits with the CONNACK return code (1..5). */
};

typedef enum cli_command { CLI_PUB = 1, CLI_SUB = 2, CLI_BENCH = 4 } cli_command;

/* Where `pub` takes its message from. */
typedef enum cli_msg_mode {
    CLI_MSG_NONE = 0,
    CLI_MSG_ARG,   /* -m */
    CLI_MSG_FILE,  /* -f */
    CLI_MSG_STDIN, /* -s: all of stdin, one message */
    CLI_MSG_LINES, /* -l: a message per line of stdin */
    CLI_MSG_NULL   /* -n */
} cli_msg_mode;

/* The command line. Strings point into argv, except where noted. */
typedef struct cli_opts {
    cli_command cmd;
    const char *name; /* "mqttc pub", "mqttc sub" or "mqttc bench", for messages */

    /* server */
    mqttc_scheme scheme;
    char host[MQTTC_URI_HOST_MAX]; /* -h or -L; default localhost */
    long port;                     /* -p or -L; 0: the scheme's default */
    char url_user[MQTTC_URI_USER_MAX], url_pass[MQTTC_URI_USER_MAX]; /* from -L */
    bool url_given;                /* -L: its scheme is the one used */

    /* TLS (mqtts://, wss://) and WebSocket (ws://, wss://) */
    const char *cafile, *certfile, *keyfile, *key_password; /* --cafile, --cert, --key, --key-password */
    bool insecure;                  /* --insecure: MQTTC_TLS_VERIFY_NONE */
    mqttc_tls_version tls_version;  /* --tls-version; MQTTC_TLS_ANY when not given */
    const char **alpn;              /* --alpn (argv strings), NULL-terminated; owned array */
    size_t alpn_count;
    const char *ws_path;            /* --ws-path */

    /* persistence (mqttc's own) */
    const char *store_dir; /* --store: file store of unacknowledged QoS 1/2 state */
    bool store_fsync;      /* --store-fsync: flush every record to the disk */
    mqttc_store *store;    /* opened by cli_client_create(), closed by cli_opts_free() */

    /* session */
    const char *id, *id_prefix; /* -i, -I; after cli_parse() `id` is the id to use */
    char *id_owned;             /* the generated or prefixed id */
    const char *username, *password; /* argv or url_user/url_pass */
    long keepalive;
    bool clean_session;
    bool debug, quiet;
    const char *will_topic, *will_payload;
    int will_qos;
    bool will_retain, will_qos_given;

    /* topics (copies, owned): pub uses the last one; sub subscribes to all */
    char **topics;
    size_t topic_count;
    char **filter_outs; /* sub -T (copies, owned) */
    size_t filter_out_count;
    int qos;

    /* pub */
    cli_msg_mode msg_mode;
    const char *message; /* -m */
    const char *file;    /* -f */
    bool retain;

    /* sub */
    long count;     /* -C: 0 for no limit */
    long timeout_s; /* -W: 0 for none */
    bool verbose, no_eol, no_retained;
} cli_opts;

/* The commands: argv starts after the command word; return the exit code. */
int cli_pub_main(int argc, char **argv);
int cli_sub_main(int argc, char **argv);
int cli_bench_main(int argc, char **argv);

/* A command's own options (bench), parsed by cli_parse_ex() after the
 * shared ones: `arg` names the argument of options that take one. */
typedef struct cli_extra_flag {
    const char *short_name, *long_name; /* either may be NULL */
    const char *arg;
    int id;
} cli_extra_flag;

/* Apply one of a command's own options (`arg` is NULL for a switch); print
 * a usage error (cli_usage_error) and return false when it is invalid. */
typedef bool (*cli_extra_apply)(cli_opts *o, int id, const char *flag, const char *arg,
                                void *user);

/* Parse argv (after the command word). Returns 0 to run, 1 after printing
 * help (`help` set), or -1 after printing a one-line error on stderr. */
int cli_parse(cli_command cmd, int argc, char **argv, cli_opts *o, bool *help);
/* The same, with a command's own options: `extra` (n of them) go to `apply`.
 * For bench, -t and -L's topic are optional (a topic base) and no client id
 * is made (the command names its clients). */
int cli_parse_ex(cli_command cmd, int argc, char **argv, cli_opts *o, bool *help,
                 const cli_extra_flag *extra, size_t n, cli_extra_apply apply, void *user);
void cli_opts_free(cli_opts *o);

/* Print the usage of a command on stdout. */
void cli_pub_usage(void);
void cli_sub_usage(void);
/* The TLS and WebSocket options, for both usages. */
/* The options pub and sub share (session, identity, will, --help), then the
 * TLS/WebSocket ones: printed after each command's own. */
void cli_common_usage(void);
void cli_tls_usage(void);
/* --store and --store-fsync (pub and sub), printed after the TLS options. */
void cli_store_usage(void);

/* A one-line usage error on stderr (always printed, even with --quiet, as
 * mosquitto does), ending with a pointer to --help. */
void cli_usage_error(const cli_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A runtime error on stderr, unless --quiet. */
void cli_error(const cli_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Create the client for `o` (caller mode, auto-reconnect after the first
 * session like mosquitto's loop). Prints the error and returns it on
 * failure. */
int cli_client_create(cli_opts *o, mqttc_client_cb on_event, void *user, mqttc_client **out);

/* Fill `cfg` with what the command line says about the server, the
 * credentials, TLS, WebSocket, keepalive, the session, the client id and
 * debug logging, in caller-driven mode; the caller sets the rest. Strings
 * point into `o` and into cli_server()'s buffer: create the client before
 * calling cli_server() again. */
void cli_client_config(cli_opts *o, mqttc_client_config *cfg);

/* The server as "scheme://host:port", for messages. */
const char *cli_server(const cli_opts *o);

/* The outcome of a connection problem reported by an ERROR event:
 * prints "Connection error: ..." and returns the exit code (the CONNACK
 * code for a refusal, else 1). */
int cli_connection_error(const cli_opts *o, const mqttc_client_event *ev);

/* Monotonic milliseconds. */
int64_t cli_now_ms(void);

/* SIGINT/SIGTERM: set a flag and wake cli_wait(). */
int cli_signals_install(void);
bool cli_signalled(void);

/* Wait up to `timeout_ms` (-1: no limit of ours) for the client, for a
 * signal and, when `extra_fd` >= 0, for `extra_fd` to be readable; then let
 * the client do its I/O and timers (its callbacks run here). Returns true
 * when `extra_fd` is readable. */
bool cli_wait(mqttc_client *c, int extra_fd, int timeout_ms);

/* Milliseconds from now until `deadline` (a cli_now_ms() value), clamped
 * to 0..INT_MAX; -1 when `deadline` < 0 (none). */
int cli_until(int64_t deadline);

/* Ask for a clean DISCONNECT and run the client until it is closed (at most
 * a couple of seconds). */
void cli_disconnect(mqttc_client *c);

/* Read all of `fd` into a new buffer (any size up to the protocol maximum;
 * free it). Returns 0, MQTTC_ERR_TOO_LARGE, MQTTC_ERR_NO_MEMORY, or
 * MQTTC_ERR_TRANSPORT for a read error (errno says which). */
int cli_read_all(int fd, uint8_t **data, size_t *len);

#endif /* MQTTC_CLI_COMMON_H */
