/**
 * @file store.h
 * @brief Persistence of the session state that QoS 1 and 2 promise to keep:
 *        outbound messages not yet acknowledged, and inbound QoS 2 packet ids
 *        awaiting PUBREL.
 *
 * A client given a store (mqttc_client_config.store) records every QoS 1/2
 * message it accepts before any byte of it is written, marks a QoS 2 message
 * "released" when its PUBREC arrives (before PUBREL is written), records an
 * inbound QoS 2 id once the message was delivered (before PUBREC is written),
 * and removes each record when its flow completes. At creation it loads the
 * store and re-sends what it finds after the first CONNACK. A process killed
 * at any moment and restarted with the same store (and clean_session = 0)
 * therefore loses no message and delivers no QoS 2 message twice.
 *
 * Two implementations come with the library: a memory store (records live as
 * long as the store object: they survive a client, not the process) and a
 * file store (a directory per client id; an append-only log of records with
 * CRC-32 checksums, compacted as it grows). Embedded users plug in their own
 * (a flash store, say) by filling an mqttc_store_ops table.
 *
 * Threads: a store is used by one client at a time, from that client's loop
 * and from the threads calling mqttc_client_publish(), always under the
 * client's lock; an implementation needs no locking of its own.
 */
#ifndef MQTTC_STORE_H
#define MQTTC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mqttc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a record is about. */
typedef enum mqttc_store_kind {
    MQTTC_STORE_OUTBOUND = 1, /**< a QoS 1/2 message we publish */
    MQTTC_STORE_INBOUND = 2   /**< a QoS 2 packet id received, awaiting PUBREL */
} mqttc_store_kind;

/**
 * One record. Pointers are borrowed for the duration of the call that passes
 * the record (an implementation copies what it keeps).
 */
typedef struct mqttc_store_record {
    mqttc_store_kind kind;
    uint16_t packet_id;
    /* outbound only */
    uint8_t qos;   /**< 1 or 2 */
    bool retain;
    bool released; /**< QoS 2: PUBREC arrived, PUBREL owed */
    const char *topic;
    size_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
} mqttc_store_record;

/** Called by load() for each record, oldest first; a negative return stops the load with it. */
typedef int (*mqttc_store_each)(void *arg, const mqttc_store_record *r);

/**
 * The operations of a store. Each returns 0 or a negative MQTTC_ERR_* code
 * (MQTTC_ERR_STORE for an I/O failure). Keys are (kind, packet_id): at most
 * one live record per key.
 */
typedef struct mqttc_store_ops {
    /** Record a new outbound message or inbound id (replaces a live one with the same key). */
    int (*put)(void *ctx, const mqttc_store_record *r);
    /** Mark the outbound QoS 2 message `packet_id` released. */
    int (*release)(void *ctx, uint16_t packet_id);
    /** Forget a record; unknown keys are not an error. */
    int (*remove)(void *ctx, mqttc_store_kind kind, uint16_t packet_id);
    /** Forget every record of `kind` (a new clean session forgets inbound ids). */
    int (*clear)(void *ctx, mqttc_store_kind kind);
    /** Hand every live record to `each`, outbound in the order they were put. */
    int (*load)(void *ctx, mqttc_store_each each, void *arg);
    /** Release the store (called by mqttc_store_close()). */
    void (*close)(void *ctx);
} mqttc_store_ops;

/** A store: operations and their context. */
typedef struct mqttc_store {
    const mqttc_store_ops *ops;
    void *ctx;
} mqttc_store;

/** When the file store forces its writes to the disk. */
typedef enum mqttc_store_sync {
    /** write() only: every record survives a crash of the process (the kernel
     *  keeps it), not a crash of the machine. The default. */
    MQTTC_STORE_SYNC_NONE = 0,
    /** fdatasync() after every record: survives power loss, at the cost of a
     *  disk flush per QoS 1/2 message and acknowledgement. */
    MQTTC_STORE_SYNC_ALWAYS = 1
} mqttc_store_sync;

/** File store options; zero fields take the defaults in parentheses. */
typedef struct mqttc_store_file_options {
    mqttc_store_sync sync;
    /** Compact when the log exceeds this many bytes and holds more than twice
     *  the live records' size (1 MiB). */
    size_t compact_bytes;
} mqttc_store_file_options;

/** What the file store found when it opened its log. */
typedef struct mqttc_store_file_stats {
    size_t records;       /**< valid records read */
    size_t outbound;      /**< live outbound messages */
    size_t inbound;       /**< live inbound ids */
    size_t dropped_bytes; /**< bytes of a torn or corrupt tail cut off */
    size_t compactions;   /**< compactions since opened */
} mqttc_store_file_stats;

/**
 * @brief Open (creating if needed) the file store of `client_id` under `dir`:
 *        the directory `dir`/<client id, %-encoded>/ holding the log `store.log`.
 *        The log is read, a torn or corrupt tail is cut off (never loaded as a
 *        message), and the directory is locked against a second opener.
 * @param opts NULL for the defaults.
 * @param[out] out the store; free with mqttc_store_close() after the client
 *        that uses it is destroyed.
 * @return 0, MQTTC_ERR_INVALID_ARG, MQTTC_ERR_NO_MEMORY, MQTTC_ERR_STORE
 *         (cannot create or read; errno says why), MQTTC_ERR_STORE_LOCKED.
 */
MQTTC_API int mqttc_store_file_open(const char *dir, const char *client_id,
                                    const mqttc_store_file_options *opts, mqttc_store **out);

/** @brief What the file store read when opened, and compactions since. NULL-safe. */
MQTTC_API void mqttc_store_file_stats_get(const mqttc_store *s, mqttc_store_file_stats *st);

/**
 * @brief A store kept in memory: records survive the clients that use it in
 *        turn, not the process.
 * @return 0 or MQTTC_ERR_NO_MEMORY.
 */
MQTTC_API int mqttc_store_memory_open(mqttc_store **out);

/** @brief Close a store from mqttc_store_file_open() / mqttc_store_memory_open(). NULL-safe. */
MQTTC_API void mqttc_store_close(mqttc_store *s);

#ifdef __cplusplus
}
#endif
#endif /* MQTTC_STORE_H */
