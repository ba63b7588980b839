/**
 * @file proxy.h
 * @brief A fault-injecting TCP proxy for the client tests: it sits between a
 *        client under test and a real broker (broker.h), both on 127.0.0.1,
 *        and can cut, stall, delay or split the connection.
 *
 * proxy_start() listens on a free 127.0.0.1 port and starts one thread with
 * a poll loop. Every accepted connection gets its own connection to the
 * broker's port; bytes are forwarded both ways through a ring buffer per
 * direction. The proxy follows the MQTT framing of both directions (fixed
 * header, Remaining Length, body) as it reads, which lets a cut rule name a
 * packet: "the 3rd PUBREC from the broker, before any byte of it is
 * forwarded", "the 10th PUBLISH from the client, after 5 bytes of it".
 *
 * Two kinds of control, both thread-safe and changeable at any time:
 *
 * - A cut rule (proxy_arm()): one-shot. It counts packets of one type (or
 *   bytes) read in one direction from the moment it is armed, across
 *   connections; when it matches, the connection it matched on is cut at
 *   that point (the bytes before it are forwarded first, nothing after), by
 *   closing both sides (FIN, or RST if unread data remains) or by RST
 *   (SO_LINGER 0). The rule is consumed when it matches.
 * - A policy (proxy_set_policy()) for every connection, open or new: a delay
 *   per direction (each chunk read is held that long), splitting (one byte
 *   per send(), optionally with a pause between bytes), and stalling (a
 *   direction forwards nothing and reads nothing; a connection stalled both
 *   ways is a black hole: the proxy does not even notice its ends closing
 *   until the stall is lifted).
 *
 * Counters (proxy_get_stats()) say what happened: connections, cuts, bytes,
 * send() calls and packets by type per direction.
 *
 * Plain functions, no cmocka, no global state. Every wait is bounded.
 */
#ifndef MQTTC_TESTS_PROXY_H
#define MQTTC_TESTS_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#define PROXY_MAX_CONNS 8       /* open connection pairs at once; more are refused */
#define PROXY_BUF_SIZE 65536    /* per direction and connection */
#define PROXY_CONNECT_TIMEOUT_MS 2000
#define PROXY_MAX_RULES 8       /* rules waiting behind the armed one */

typedef struct proxy proxy;

/** Directions. */
typedef enum proxy_dir {
    PROXY_UP = 0,  /**< client -> broker */
    PROXY_DOWN = 1 /**< broker -> client */
} proxy_dir;

/** How a cut closes the two sockets. */
typedef enum proxy_how {
    PROXY_CLOSE = 0, /**< close(): FIN (the kernel sends RST if unread data remains) */
    PROXY_RESET = 1  /**< SO_LINGER 0, then close(): RST */
} proxy_how;

/** Where, relative to the matched packet, a packet rule cuts. */
typedef enum proxy_when {
    PROXY_BEFORE = 0, /**< no byte of the packet is forwarded */
    PROXY_INSIDE = 1, /**< `inside` bytes of it are forwarded (clamped to 1..length-1) */
    PROXY_AFTER = 2   /**< all of it is forwarded, then the cut */
} proxy_when;

/** A one-shot cut rule. */
typedef struct proxy_cut {
    proxy_dir dir;
    uint8_t type;     /**< MQTT packet type 1..15 (MQTTC_PUBREC...), or 0: a byte count */
    uint32_t nth;     /**< type != 0: the nth (>= 1) packet of that type read in `dir` after arming */
    proxy_when when;  /**< type != 0 */
    uint32_t inside;  /**< PROXY_INSIDE: bytes of the packet forwarded before the cut */
    uint64_t bytes;   /**< type == 0: cut after this many (>= 1) bytes read in `dir` after
                           arming have been forwarded */
    proxy_how how;
} proxy_cut;

/** What every connection does (open ones and new ones). */
typedef struct proxy_policy {
    uint32_t delay_ms[2];  /**< per direction: hold each chunk read this long */
    bool split[2];         /**< per direction: one byte per send() */
    uint32_t split_gap_us; /**< with split: pause between two bytes */
    bool stall[2];         /**< per direction: forward nothing, read nothing */
    bool refuse;           /**< close new connections at once (before connecting upstream) */
} proxy_policy;

/** Counters since proxy_start(). */
typedef struct proxy_stats {
    uint64_t accepted;        /**< client connections accepted (refused ones included) */
    uint64_t refused;         /**< closed at once: policy.refuse or too many open */
    uint64_t upstream_failed; /**< the broker could not be reached */
    uint64_t open;            /**< connection pairs open now */
    uint64_t ended;           /**< pairs ended by their ends (EOF both ways, or an error) */
    uint64_t matched;         /**< cut rules that matched */
    uint64_t cuts;            /**< cuts done (a matched rule, or proxy_cut_now(), per pair) */
    uint64_t bytes[2];        /**< forwarded, per direction */
    uint64_t writes[2];       /**< send() calls that forwarded something, per direction */
    uint64_t packets[2][16];  /**< packets seen (read) per direction, by type */
    uint64_t bad_framing[2];  /**< streams whose framing the proxy could not follow */
} proxy_stats;

/** Listen on a free 127.0.0.1 port, forwarding to 127.0.0.1:upstream_port.
 *  0, or -1 (reason on stderr). */
int proxy_start(proxy **out, uint16_t upstream_port);

/** The port clients connect to. */
uint16_t proxy_port(const proxy *p);

/** Stop the thread (bounded), close every socket, free. NULL is fine. */
void proxy_stop(proxy *p);

/** Replace the policy. */
void proxy_set_policy(proxy *p, const proxy_policy *pol);

/** Arm a cut rule (replacing an armed one and any waiting behind it).
 *  0, or -1 when the rule is invalid. */
int proxy_arm(proxy *p, const proxy_cut *cut);

/** Queue a rule to be armed the moment the armed one matches (its count
 *  starts there), or arm it now if none is armed: a sequence of cuts with no
 *  window for a race ("the PUBCOMP, then the reconnection's CONNECT").
 *  0, or -1 when invalid or PROXY_MAX_RULES are already waiting. */
int proxy_arm_then(proxy *p, const proxy_cut *cut);

/** Forget the armed rule and those waiting, if any. */
void proxy_disarm(proxy *p);

/** True while a rule is armed and has not matched. */
bool proxy_armed(proxy *p);

/** Cut every open connection now (done by the proxy's thread; wait on the
 *  `cuts` counter to see it done). */
void proxy_cut_now(proxy *p, proxy_how how);

/** A copy of the counters. */
void proxy_get_stats(proxy *p, proxy_stats *st);

/** Predicate over the counters, called under the proxy's lock. */
typedef bool (*proxy_pred)(const proxy_stats *st, void *arg);

/** Wait until `pred` holds (re-checked whenever the counters change, and
 *  at least every 10 ms), at most `timeout_ms`. */
bool proxy_wait(proxy *p, proxy_pred pred, void *arg, int timeout_ms);

/** Short names for directions and packet types, for messages. */
const char *proxy_dir_name(proxy_dir d);
const char *proxy_type_name(unsigned type);

#endif /* MQTTC_TESTS_PROXY_H */
