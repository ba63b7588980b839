/**
 * @file broker.h
 * @brief A real mosquitto broker for the integration tests.
 *
 * broker_start() writes a configuration into a fresh mkdtemp() directory,
 * picks a free loopback port, starts `/usr/sbin/mosquitto -c CONF` with
 * fork/exec and waits (at most BROKER_START_TIMEOUT_MS) until the port
 * accepts connections. The broker keeps its persistence file in the same
 * directory, so broker_restart() after broker_stop() (SIGTERM: mosquitto
 * saves its database) brings back every persistent session, while
 * broker_restart() after broker_kill() (SIGKILL, a crash) brings back only
 * what mosquitto had saved before (at the last autosave or clean stop).
 *
 * Plain functions with no global state: they report problems on stderr and
 * return -1, and never call cmocka. Every wait is bounded. The broker gets
 * SIGKILL when the thread that started it exits (PR_SET_PDEATHSIG), so a
 * crashed test leaves no broker behind: start and restart brokers from the
 * test's main thread.
 *
 * Usage:
 * @code
 *   broker b;
 *   broker_opts o;
 *   broker_opts_init(&o);
 *   if (broker_start(&b, &o) != 0) fail();
 *   ... connect to mqtt://127.0.0.1:b.port ...
 *   broker_kill(&b);     // crash
 *   broker_restart(&b);  // same port, same persistence directory
 *   broker_cleanup(&b);  // stop it and remove the directory
 * @endcode
 */
#ifndef MQTTC_TESTS_BROKER_H
#define MQTTC_TESTS_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define BROKER_START_TIMEOUT_MS 5000
#define BROKER_STOP_TIMEOUT_MS 5000
#define BROKER_PATH_MAX 256

/** What the configuration should contain beyond the fixed lines. */
typedef struct broker_opts {
    /** Extra configuration lines, appended verbatim (may be NULL). Global
     *  options must come before listener-specific ones in mosquitto, so the
     *  extra lines are written before the listeners. */
    const char *extra_conf;
    bool ipv6;                 /**< also listen on [::1]:port6 (socket_domain ipv6) */
    bool deny_anonymous;       /**< allow_anonymous false instead of true */
    unsigned max_inflight;     /**< max_inflight_messages (default 20) */
    unsigned autosave_interval;/**< seconds; 0: mosquitto's default (1800) */
    bool quiet_log;            /**< mosquitto's default log types instead of "all" */
} broker_opts;

typedef struct broker {
    pid_t pid;       /**< 0 when not running */
    uint16_t port;   /**< 127.0.0.1 listener */
    uint16_t port6;  /**< ::1 listener, 0 without opts.ipv6 */
    char dir[BROKER_PATH_MAX];  /**< the mkdtemp directory; "" once cleaned up */
    char conf[BROKER_PATH_MAX + 32]; /**< DIR/mosquitto.conf */
    char log[BROKER_PATH_MAX + 32];  /**< DIR/mosquitto.log */
    int last_status; /**< waitpid() status of the last exit */
} broker;

/** Fill `o` with the defaults (IPv4 only, anonymous allowed, 20 in flight). */
void broker_opts_init(broker_opts *o);

/** Create the directory and configuration, start mosquitto, wait for the port.
 *  On failure everything is cleaned up and -1 returned. */
int broker_start(broker *b, const broker_opts *o);

/** SIGTERM (mosquitto saves its persistence file), wait, SIGKILL if it does
 *  not exit in time. 0 if it exited by itself, 1 if it had to be killed,
 *  -1 if it was not running. */
int broker_stop(broker *b);

/** SIGKILL: a crash; nothing more is saved. 0, or -1 if it was not running. */
int broker_kill(broker *b);

/** Start mosquitto again with the same configuration, port and persistence
 *  directory (stopping it with broker_stop() first if it is running). */
int broker_restart(broker *b);

/** Stop the broker if it runs and remove its directory (kept, and its path
 *  printed, when the environment has MQTTC_TEST_KEEP_BROKER). Idempotent. */
void broker_cleanup(broker *b);

/** True while the broker's process exists (reaps it if it exited). */
bool broker_running(broker *b);

/** True if the broker's log contains `needle`. */
bool broker_log_contains(const broker *b, const char *needle);

/** Wait (polling the log file, at most `timeout_ms`) until the log contains `needle`. */
bool broker_wait_log(const broker *b, const char *needle, int timeout_ms);

/** Wait until the log shows the client `id` gone, cleanly ("Client ID
 *  disconnected.", after its DISCONNECT) or not ("Client ID closed its
 *  connection.", "Client ID disconnected: Broken pipe.", ...). `clean` (may
 *  be NULL): which of the two. */
bool broker_wait_client_gone(const broker *b, const char *id, int timeout_ms, bool *clean);

/** Print the tail of the broker's log to stderr (for failing tests). */
void broker_dump_log(const broker *b, size_t max_bytes);

/** A loopback TCP port with nothing listening on it right now (bound to
 *  port 0 and closed). `ipv6`: checked on ::1 instead of 127.0.0.1. 0 on error. */
uint16_t broker_unused_port(bool ipv6);

/** Milliseconds from a monotonic clock (for the tests' deadlines). */
uint64_t broker_now_ms(void);

#endif /* MQTTC_TESTS_BROKER_H */
