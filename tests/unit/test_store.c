/* The stores (src/store.c, src/store_file.c): records survive close and
 * reopen in order, a torn or damaged tail is cut off and never loaded,
 * compaction keeps the live set, a second opener is locked out. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqttc/store.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct loaded {
    size_t n;
    mqttc_store_kind kind[64];
    uint16_t id[64];
    uint8_t qos[64];
    bool retain[64], released[64];
    char topic[64][32];
    char payload[64][64];
    size_t payload_len[64];
} loaded;

static int collect(void *arg, const mqttc_store_record *r)
{
    loaded *l = arg;
    size_t i = l->n++;
    assert_true(i < 64);
    l->kind[i] = r->kind;
    l->id[i] = r->packet_id;
    if (r->kind == MQTTC_STORE_OUTBOUND) {
        assert_true(r->topic_len < sizeof l->topic[0]);
        assert_true(r->payload_len < sizeof l->payload[0]);
        memcpy(l->topic[i], r->topic, r->topic_len);
        l->topic[i][r->topic_len] = '\0';
        memcpy(l->payload[i], r->payload, r->payload_len);
        l->payload_len[i] = r->payload_len;
        l->qos[i] = r->qos;
        l->retain[i] = r->retain;
        l->released[i] = r->released;
    }
    return 0;
}

static void load_all(mqttc_store *s, loaded *l)
{
    memset(l, 0, sizeof *l);
    assert_code(s->ops->load(s->ctx, collect, l), 0);
}

static mqttc_store_record out_rec(uint16_t id, uint8_t qos, const char *topic, const char *payload)
{
    mqttc_store_record r;
    memset(&r, 0, sizeof r);
    r.kind = MQTTC_STORE_OUTBOUND;
    r.packet_id = id;
    r.qos = qos;
    r.topic = topic;
    r.topic_len = strlen(topic);
    r.payload = (const uint8_t *)payload;
    r.payload_len = strlen(payload);
    return r;
}

static void put_out(mqttc_store *s, uint16_t id, uint8_t qos, const char *topic, const char *payload)
{
    mqttc_store_record r = out_rec(id, qos, topic, payload);
    assert_code(s->ops->put(s->ctx, &r), 0);
}

static void put_in(mqttc_store *s, uint16_t id)
{
    mqttc_store_record r;
    memset(&r, 0, sizeof r);
    r.kind = MQTTC_STORE_INBOUND;
    r.packet_id = id;
    assert_code(s->ops->put(s->ctx, &r), 0);
}

typedef struct fixture {
    char root[64];
    char log[128];
} fixture;

static int fx_new(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    strcpy(f->root, "/tmp/mqttc-store-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->log, sizeof f->log, "%s/dev-1/store.log", f->root);
    *state = f;
    return 0;
}

static int fx_free(void **state)
{
    fixture *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->root);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static mqttc_store *open_file(fixture *f, const mqttc_store_file_options *o)
{
    mqttc_store *s = NULL;
    assert_code(mqttc_store_file_open(f->root, "dev-1", o, &s), 0);
    assert_non_null(s);
    return s;
}

static long file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* The standard content: two messages, one released, one inbound id. */
static void put_standard(mqttc_store *s)
{
    put_out(s, 10, 1, "a/one", "first");
    put_out(s, 11, 2, "a/two", "second");
    put_out(s, 12, 1, "a/three", "third");
    assert_code(s->ops->release(s->ctx, 11), 0);
    assert_code(s->ops->remove(s->ctx, MQTTC_STORE_OUTBOUND, 12), 0);
    put_in(s, 300);
}

static void expect_standard(mqttc_store *s)
{
    loaded l;
    load_all(s, &l);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.kind[0], MQTTC_STORE_OUTBOUND);
    assert_int_equal(l.id[0], 10);
    assert_string_equal(l.topic[0], "a/one");
    assert_int_equal(l.payload_len[0], 5);
    assert_memory_equal(l.payload[0], "first", 5);
    assert_false(l.released[0]);
    assert_int_equal(l.id[1], 11);
    assert_int_equal(l.qos[1], 2);
    assert_true(l.released[1]);
    assert_string_equal(l.topic[1], "a/two");
    assert_int_equal(l.kind[2], MQTTC_STORE_INBOUND);
    assert_int_equal(l.id[2], 300);
}

/* ---- both stores ---------------------------------------------------------- */

static void test_memory_store_keeps_order_and_state(void **state)
{
    mqttc_store *s = NULL;
    loaded l;
    (void)state;
    assert_code(mqttc_store_memory_open(&s), 0);
    put_standard(s);
    expect_standard(s);
    /* Clearing inbound keeps outbound; clearing outbound empties it. */
    assert_code(s->ops->clear(s->ctx, MQTTC_STORE_INBOUND), 0);
    load_all(s, &l);
    assert_int_equal(l.n, 2);
    assert_code(s->ops->clear(s->ctx, MQTTC_STORE_OUTBOUND), 0);
    load_all(s, &l);
    assert_int_equal(l.n, 0);
    mqttc_store_close(s);
    mqttc_store_close(NULL);
    assert_code(mqttc_store_memory_open(NULL), MQTTC_ERR_INVALID_ARG);
}

static void test_file_store_survives_close_and_reopen(void **state)
{
    fixture *f = *state;
    mqttc_store *s = open_file(f, NULL);
    mqttc_store_file_stats st;
    put_standard(s);
    expect_standard(s);
    mqttc_store_close(s);

    s = open_file(f, NULL);
    mqttc_store_file_stats_get(s, &st);
    assert_int_equal(st.records, 6);
    assert_int_equal(st.outbound, 2);
    assert_int_equal(st.inbound, 1);
    assert_int_equal(st.dropped_bytes, 0);
    expect_standard(s);
    /* Appending after a reopen continues the same log. */
    put_out(s, 13, 1, "a/four", "fourth");
    assert_code(s->ops->remove(s->ctx, MQTTC_STORE_INBOUND, 300), 0);
    mqttc_store_close(s);
    s = open_file(f, NULL);
    loaded l;
    load_all(s, &l);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.id[2], 13);
    assert_int_equal(l.kind[2], MQTTC_STORE_OUTBOUND);
    mqttc_store_close(s);
}

static void test_put_with_a_live_id_replaces_it_at_the_end(void **state)
{
    fixture *f = *state;
    mqttc_store *s = open_file(f, NULL);
    loaded l;
    put_out(s, 1, 1, "t/x", "old");
    put_out(s, 2, 1, "t/y", "y");
    put_out(s, 1, 1, "t/x", "new");
    mqttc_store_close(s);
    s = open_file(f, NULL);
    load_all(s, &l);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.id[0], 2);
    assert_int_equal(l.id[1], 1);
    assert_memory_equal(l.payload[1], "new", 3);
    mqttc_store_close(s);
}

/* Every possible cut inside the last record, and every flipped byte of it:
 * the records before it load, it never does, and the log goes on. */
static void test_torn_or_damaged_tail_is_cut_off_never_loaded(void **state)
{
    fixture *f = *state;
    mqttc_store *s = open_file(f, NULL);
    put_out(s, 1, 1, "t/keep", "kept");
    mqttc_store_close(s);
    long good = file_size(f->log);
    s = open_file(f, NULL);
    put_out(s, 2, 2, "t/torn", "payload of the last record");
    mqttc_store_close(s);
    long full = file_size(f->log);
    assert_true(full > good);

    int fd = open(f->log, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t last[256];
    assert_int_equal(pread(fd, last, (size_t)(full - good), good), full - good);
    close(fd);

    for (long cut = good; cut < full + (full - good); cut++) {
        bool flip = cut >= full;
        long at = flip ? cut - full : 0;
        fd = open(f->log, O_WRONLY);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, good), 0);
        if (flip) {
            uint8_t copy[256];
            memcpy(copy, last, (size_t)(full - good));
            copy[at] ^= 0x40;
            assert_int_equal(pwrite(fd, copy, (size_t)(full - good), good), full - good);
        } else {
            assert_int_equal(pwrite(fd, last, (size_t)(cut - good), good), cut - good);
        }
        close(fd);

        s = open_file(f, NULL);
        mqttc_store_file_stats st;
        mqttc_store_file_stats_get(s, &st);
        loaded l;
        load_all(s, &l);
        if (l.n != 1 || l.id[0] != 1)
            fail_msg("%s at byte %ld: loaded %zu record(s)", flip ? "flip" : "cut",
                     flip ? at : cut - good, l.n);
        assert_int_equal(st.dropped_bytes, (size_t)(flip ? full - good : cut - good));
        assert_int_equal(file_size(f->log), good); /* cut off on open */
        put_out(s, 3, 1, "t/after", "after");      /* the log goes on */
        mqttc_store_close(s);
        s = open_file(f, NULL);
        load_all(s, &l);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.id[1], 3);
        mqttc_store_close(s);
    }
}

static void test_foreign_file_is_refused_and_left_alone(void **state)
{
    fixture *f = *state;
    mqttc_store *s = open_file(f, NULL);
    mqttc_store_close(s);
    FILE *fp = fopen(f->log, "w");
    assert_non_null(fp);
    fputs("not a store log, keep me\n", fp);
    fclose(fp);
    long before = file_size(f->log);
    s = NULL;
    assert_code(mqttc_store_file_open(f->root, "dev-1", NULL, &s), MQTTC_ERR_STORE);
    assert_null(s);
    assert_int_equal(file_size(f->log), before);
}

static void test_second_opener_is_locked_out(void **state)
{
    fixture *f = *state;
    mqttc_store *s = open_file(f, NULL), *t = NULL;
    assert_code(mqttc_store_file_open(f->root, "dev-1", NULL, &t), MQTTC_ERR_STORE_LOCKED);
    assert_null(t);
    /* Another client id is another directory. */
    assert_code(mqttc_store_file_open(f->root, "dev-2", NULL, &t), 0);
    mqttc_store_close(t);
    mqttc_store_close(s);
    s = open_file(f, NULL); /* free again once closed */
    mqttc_store_close(s);
}

static void test_compaction_bounds_the_log_and_keeps_the_live_set(void **state)
{
    fixture *f = *state;
    mqttc_store_file_options o = {MQTTC_STORE_SYNC_NONE, 4096};
    mqttc_store *s = open_file(f, &o);
    mqttc_store_file_stats st;
    char payload[40];
    long max_size = 0;
    /* 2,000 messages through a window of 5, two inbound ids kept throughout. */
    put_in(s, 7);
    put_in(s, 65535);
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(payload, sizeof payload, "message %u", i);
        put_out(s, (uint16_t)(i % 60000 + 1), (uint8_t)(1 + i % 2), "c/t", payload);
        if (i % 2 == 1)
            assert_code(s->ops->release(s->ctx, (uint16_t)(i % 60000 + 1)), 0);
        if (i >= 5)
            assert_code(s->ops->remove(s->ctx, MQTTC_STORE_OUTBOUND, (uint16_t)(i - 5 + 1)), 0);
        long size = file_size(f->log);
        max_size = size > max_size ? size : max_size;
    }
    mqttc_store_file_stats_get(s, &st);
    assert_true(st.compactions > 0);
    assert_true(max_size < 3 * 4096);
    mqttc_store_close(s);

    s = open_file(f, &o);
    loaded l;
    load_all(s, &l);
    assert_int_equal(l.n, 7);
    for (unsigned k = 0; k < 5; k++) {
        unsigned i = 1995 + k;
        snprintf(payload, sizeof payload, "message %u", i);
        assert_int_equal(l.id[k], i + 1);
        assert_int_equal(l.qos[k], 1 + i % 2);
        assert_int_equal(l.released[k], i % 2 == 1);
        assert_int_equal(l.payload_len[k], strlen(payload));
        assert_memory_equal(l.payload[k], payload, strlen(payload));
    }
    assert_int_equal(l.id[5], 7);
    assert_int_equal(l.id[6], 65535);
    mqttc_store_close(s);
}

static void test_sync_always_and_odd_client_ids(void **state)
{
    fixture *f = *state;
    mqttc_store_file_options o = {MQTTC_STORE_SYNC_ALWAYS, 0};
    mqttc_store *s = NULL;
    char dir[160];
    struct stat st;
    assert_code(mqttc_store_file_open(f->root, "../a/b c", &o, &s), 0);
    put_out(s, 1, 1, "x", "y");
    mqttc_store_close(s);
    /* Every byte outside [A-Za-z0-9_-] is %-encoded: no path escapes. */
    snprintf(dir, sizeof dir, "%s/%%2E%%2E%%2Fa%%2Fb%%20c/store.log", f->root);
    assert_int_equal(stat(dir, &st), 0);
}

static void test_file_store_rejects_bad_arguments(void **state)
{
    fixture *f = *state;
    mqttc_store *s = NULL;
    mqttc_store_file_options bad = {(mqttc_store_sync)7, 0};
    assert_code(mqttc_store_file_open(NULL, "id", NULL, &s), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_store_file_open(f->root, NULL, NULL, &s), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_store_file_open(f->root, "", NULL, &s), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_store_file_open(f->root, "id", NULL, NULL), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_store_file_open(f->root, "id", &bad, &s), MQTTC_ERR_INVALID_ARG);
    assert_code(mqttc_store_file_open("/proc/no/such/dir", "id", NULL, &s), MQTTC_ERR_STORE);
    s = open_file(f, NULL);
    mqttc_store_record r = out_rec(1, 3, "t", "x");
    assert_code(s->ops->put(s->ctx, &r), MQTTC_ERR_INVALID_ARG);
    r = out_rec(1, 1, "", "x");
    assert_code(s->ops->put(s->ctx, &r), MQTTC_ERR_INVALID_ARG);
    /* Unknown keys are not errors. */
    assert_code(s->ops->remove(s->ctx, MQTTC_STORE_OUTBOUND, 999), 0);
    assert_code(s->ops->remove(s->ctx, MQTTC_STORE_INBOUND, 999), 0);
    assert_code(s->ops->release(s->ctx, 999), 0);
    mqttc_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_store_keeps_order_and_state),
#define T(name) cmocka_unit_test_setup_teardown(name, fx_new, fx_free)
        T(test_file_store_survives_close_and_reopen),
        T(test_put_with_a_live_id_replaces_it_at_the_end),
        T(test_torn_or_damaged_tail_is_cut_off_never_loaded),
        T(test_foreign_file_is_refused_and_left_alone),
        T(test_second_opener_is_locked_out),
        T(test_compaction_bounds_the_log_and_keeps_the_live_set),
        T(test_sync_always_and_odd_client_ids),
        T(test_file_store_rejects_bad_arguments),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
