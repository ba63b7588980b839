/* The in-memory index shared by the stores, the record body format, and the
 * memory store. See include/mqttc/store.h. */
#include <stdlib.h>
#include <string.h>

#include "mqttc/error.h"
#include "store_index.h"

/* ---- index --------------------------------------------------------------- */

store_out *store_index_find(store_index *x, uint16_t id)
{
    size_t i;
    /* Acknowledgements come mostly in order: the oldest live records first. */
    for (i = x->head; i < x->n; i++) {
        if (x->v[i].live && x->v[i].id == id) {
            return &x->v[i];
        }
    }
    return NULL;
}

store_out *store_index_add(store_index *x, uint16_t id)
{
    store_out *o = store_index_find(x, id);
    if (o != NULL) {
        store_index_kill(x, o);
    }
    if (x->head > 0 && x->n == x->cap) { /* slide the live part to the front */
        memmove(x->v, x->v + x->head, (x->n - x->head) * sizeof *x->v);
        x->n -= x->head;
        x->head = 0;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        store_out *v = realloc(x->v, cap * sizeof *v);
        if (v == NULL) {
            return NULL;
        }
        x->v = v;
        x->cap = cap;
    }
    o = &x->v[x->n++];
    memset(o, 0, sizeof *o);
    o->id = id;
    o->live = true;
    x->live_out++;
    return o;
}

void store_index_kill(store_index *x, store_out *o)
{
    o->live = false;
    free(o->data);
    o->data = NULL;
    x->live_out--;
    x->live_bytes -= o->len;
    while (x->head < x->n && !x->v[x->head].live) {
        x->head++;
    }
    if (x->head == x->n) {
        x->head = x->n = 0;
    }
}

bool store_index_in_test(const store_index *x, uint16_t id)
{
    return (x->in[id >> 3] >> (id & 7)) & 1;
}

void store_index_in_set(store_index *x, uint16_t id, bool on)
{
    uint8_t bit = (uint8_t)(1u << (id & 7));
    if (store_index_in_test(x, id) == on) {
        return;
    }
    if (on) {
        x->in[id >> 3] |= bit;
        x->live_in++;
    } else {
        x->in[id >> 3] &= (uint8_t)~bit;
        x->live_in--;
    }
}

void store_index_clear(store_index *x, mqttc_store_kind kind)
{
    size_t i;
    if (kind == MQTTC_STORE_INBOUND) {
        memset(x->in, 0, sizeof x->in);
        x->live_in = 0;
        return;
    }
    for (i = x->head; i < x->n; i++) {
        free(x->v[i].data);
    }
    x->head = x->n = 0;
    x->live_out = 0;
    x->live_bytes = 0;
}

int store_index_load_inbound(const store_index *x, mqttc_store_each each, void *arg)
{
    uint32_t id;
    for (id = 1; id <= 65535u; id++) {
        if (store_index_in_test(x, (uint16_t)id)) {
            mqttc_store_record r;
            int rc;
            memset(&r, 0, sizeof r);
            r.kind = MQTTC_STORE_INBOUND;
            r.packet_id = (uint16_t)id;
            rc = each(arg, &r);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

void store_index_free(store_index *x)
{
    store_index_clear(x, MQTTC_STORE_OUTBOUND);
    free(x->v);
    x->v = NULL;
    x->cap = 0;
}

/* ---- record bodies ------------------------------------------------------- */

size_t store_body_size(const mqttc_store_record *r)
{
    return STORE_BODY_HEAD + r->topic_len + r->payload_len;
}

void store_body_encode(uint8_t *dst, const mqttc_store_record *r)
{
    dst[0] = r->qos;
    dst[1] = (uint8_t)((r->retain ? 1u : 0u) | (r->released ? 2u : 0u));
    dst[2] = (uint8_t)(r->topic_len & 0xFFu);
    dst[3] = (uint8_t)(r->topic_len >> 8);
    memcpy(dst + STORE_BODY_HEAD, r->topic, r->topic_len);
    if (r->payload_len > 0) {
        memcpy(dst + STORE_BODY_HEAD + r->topic_len, r->payload, r->payload_len);
    }
}

int store_body_decode(const uint8_t *body, size_t len, uint16_t id, mqttc_store_record *r)
{
    size_t tlen;
    if (len < STORE_BODY_HEAD) {
        return MQTTC_ERR_MALFORMED;
    }
    tlen = (size_t)body[2] | ((size_t)body[3] << 8);
    if (body[0] < 1 || body[0] > 2 || (body[1] & ~3u) != 0 || tlen == 0 ||
        tlen > len - STORE_BODY_HEAD || ((body[1] & 2u) && body[0] != 2)) {
        return MQTTC_ERR_MALFORMED;
    }
    memset(r, 0, sizeof *r);
    r->kind = MQTTC_STORE_OUTBOUND;
    r->packet_id = id;
    r->qos = body[0];
    r->retain = body[1] & 1u;
    r->released = (body[1] & 2u) != 0;
    r->topic = (const char *)body + STORE_BODY_HEAD;
    r->topic_len = tlen;
    r->payload = body + STORE_BODY_HEAD + tlen;
    r->payload_len = len - STORE_BODY_HEAD - tlen;
    return 0;
}

/* ---- memory store -------------------------------------------------------- */

typedef struct mem_store {
    mqttc_store base;
    store_index x;
} mem_store;

static int mem_put(void *ctx, const mqttc_store_record *r)
{
    mem_store *s = ctx;
    store_out *o;
    size_t len;
    uint8_t *data;
    if (r->kind == MQTTC_STORE_INBOUND) {
        store_index_in_set(&s->x, r->packet_id, true);
        return 0;
    }
    len = store_body_size(r);
    data = malloc(len);
    if (data == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    o = store_index_add(&s->x, r->packet_id);
    if (o == NULL) {
        free(data);
        return MQTTC_ERR_NO_MEMORY;
    }
    store_body_encode(data, r);
    o->data = data;
    o->len = (uint32_t)len;
    o->released = r->released;
    s->x.live_bytes += len;
    return 0;
}

static int mem_release(void *ctx, uint16_t id)
{
    mem_store *s = ctx;
    store_out *o = store_index_find(&s->x, id);
    if (o != NULL) {
        o->released = true;
    }
    return 0;
}

static int mem_remove(void *ctx, mqttc_store_kind kind, uint16_t id)
{
    mem_store *s = ctx;
    if (kind == MQTTC_STORE_INBOUND) {
        store_index_in_set(&s->x, id, false);
    } else {
        store_out *o = store_index_find(&s->x, id);
        if (o != NULL) {
            store_index_kill(&s->x, o);
        }
    }
    return 0;
}

static int mem_clear(void *ctx, mqttc_store_kind kind)
{
    mem_store *s = ctx;
    store_index_clear(&s->x, kind);
    return 0;
}

static int mem_load(void *ctx, mqttc_store_each each, void *arg)
{
    mem_store *s = ctx;
    size_t i;
    for (i = s->x.head; i < s->x.n; i++) {
        mqttc_store_record r;
        store_out *o = &s->x.v[i];
        int rc;
        if (!o->live) {
            continue;
        }
        rc = store_body_decode(o->data, o->len, o->id, &r);
        if (rc == 0) {
            r.released = o->released;
            rc = each(arg, &r);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return store_index_load_inbound(&s->x, each, arg);
}

static void mem_close(void *ctx)
{
    mem_store *s = ctx;
    store_index_free(&s->x);
    free(s);
}

static const mqttc_store_ops mem_ops = {mem_put, mem_release, mem_remove,
                                        mem_clear, mem_load, mem_close};

int mqttc_store_memory_open(mqttc_store **out)
{
    mem_store *s;
    if (out == NULL) {
        return MQTTC_ERR_INVALID_ARG;
    }
    *out = NULL;
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        return MQTTC_ERR_NO_MEMORY;
    }
    s->base.ops = &mem_ops;
    s->base.ctx = s;
    *out = &s->base;
    return 0;
}

void mqttc_store_close(mqttc_store *s)
{
    if (s != NULL && s->ops != NULL && s->ops->close != NULL) {
        s->ops->close(s->ctx);
    }
}
