/* The index both stores keep in memory: live outbound records in the order
 * they were put, and the set of live inbound QoS 2 ids. Private to the
 * library. */
#ifndef MQTTC_STORE_INDEX_H
#define MQTTC_STORE_INDEX_H

#include "mqttc/store.h"

/* Serialised outbound message (the body of a record):
 * qos u8, flags u8 (bit 0 retain, bit 1 released), topic length u16 LE, topic, payload. */
#define STORE_BODY_HEAD 4u

typedef struct store_out {
    uint64_t off;  /* file store: where the body is in the log */
    uint8_t *data; /* memory store: the body */
    uint32_t len;  /* body length */
    uint16_t id;
    bool live;
    bool released;
} store_out;

typedef struct store_index {
    store_out *v; /* v[head .. n-1], dead ones marked, oldest first */
    size_t head, n, cap;
    size_t live_out, live_in;
    uint64_t live_bytes; /* bodies of live outbound records */
    uint8_t in[8192];    /* one bit per inbound packet id */
} store_index;

/* Append a record for `id` (a live one with the same id dies first). NULL: out of memory. */
store_out *store_index_add(store_index *x, uint16_t id);
store_out *store_index_find(store_index *x, uint16_t id);
void store_index_kill(store_index *x, store_out *o);
void store_index_clear(store_index *x, mqttc_store_kind kind);
bool store_index_in_test(const store_index *x, uint16_t id);
void store_index_in_set(store_index *x, uint16_t id, bool on);
void store_index_free(store_index *x);
/* Hand every live inbound id to `each`, in id order. */
int store_index_load_inbound(const store_index *x, mqttc_store_each each, void *arg);

size_t store_body_size(const mqttc_store_record *r);
void store_body_encode(uint8_t *dst, const mqttc_store_record *r);
/* Parse a body into r (pointers into `body`). Returns 0 or MQTTC_ERR_MALFORMED. */
int store_body_decode(const uint8_t *body, size_t len, uint16_t id, mqttc_store_record *r);

#endif
