/* The process that test_client_crash kills with SIGKILL at random moments.
 *
 *   crash_publisher PORT STORE_DIR COUNT [RATE]
 *
 * Publishes "seq" messages 0..COUNT-1 on crash/<seq> (even seq QoS 1, odd
 * QoS 2) through a client with the file store and a persistent session, and
 * exits 0 once every one is acknowledged. Started again after a kill, it
 * resumes: the client re-sends what its store holds, and this program goes
 * on after the highest seq ever accepted — taken from the store itself and
 * from a progress file written right after each publish() returns (caller
 * mode: no I/O happens between the two, so no message can complete unseen).
 * With a RATE it sends in bursts every 50 ms, so that a kill usually finds
 * messages queued, in flight and half-acknowledged.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mqttc/client.h"

/* mosquitto's max_inflight_messages in the test broker: 3.1.1 has no receive
 * maximum, and mosquitto drops what exceeds its quota. */
#define WINDOW 20
#define TIME_LIMIT_MS 90000

static long max_seq = -1;

static int scan(void *arg, const mqttc_store_record *r)
{
    (void)arg;
    if (r->kind == MQTTC_STORE_OUTBOUND) {
        char buf[32];
        size_t n = r->payload_len < sizeof buf - 1 ? r->payload_len : sizeof buf - 1;
        memcpy(buf, r->payload, n);
        buf[n] = '\0';
        long seq = strtol(buf, NULL, 10);
        max_seq = seq > max_seq ? seq : max_seq;
    }
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    char uri[64], path[512];
    mqttc_client_config cfg;
    mqttc_client *c;
    mqttc_store *st;
    long count, rate, next, progress = -1, start = now_ms(), sent = 0;
    int fd, rc;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: crash_publisher PORT STORE_DIR COUNT [MSGS_PER_SECOND]\n");
        return 2;
    }
    count = strtol(argv[3], NULL, 10);
    rate = argc == 5 ? strtol(argv[4], NULL, 10) : 0;
    rc = mqttc_store_file_open(argv[2], "crash-pub", NULL, &st);
    if (rc < 0) {
        fprintf(stderr, "store: %s\n", mqttc_strerror(rc));
        return 3;
    }
    st->ops->load(st->ctx, scan, NULL);
    snprintf(path, sizeof path, "%s/progress", argv[2]);
    fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || pread(fd, &progress, sizeof progress, 0) != (ssize_t)sizeof progress) {
        progress = -1;
    }
    next = (max_seq > progress ? max_seq : progress) + 1;

    snprintf(uri, sizeof uri, "mqtt://127.0.0.1:%s", argv[1]);
    mqttc_client_config_init(&cfg);
    cfg.uri = uri;
    cfg.client_id = "crash-pub";
    cfg.clean_session = false;
    cfg.auto_reconnect = true;
    cfg.reconnect_ms = 50;
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.inflight_max = WINDOW;
    cfg.store = st;
    rc = mqttc_client_create(&cfg, &c);
    if (rc < 0) {
        fprintf(stderr, "create: %s\n", mqttc_strerror(rc));
        return 3;
    }
    fprintf(stderr, "crash_publisher: restored %u, continuing at %ld\n",
            (unsigned)mqttc_client_queued(c), next);
    mqttc_client_connect(c);
    while (now_ms() - start < TIME_LIMIT_MS) {
        while (next < count && mqttc_client_queued(c) < 2 * WINDOW &&
               (rate <= 0 || sent < ((now_ms() - start) / 50 + 1) * (rate / 20))) {
            char payload[32];
            int n = snprintf(payload, sizeof payload, "%ld", next);
            char topic[32];
            snprintf(topic, sizeof topic, "crash/%ld", next);
            rc = mqttc_client_publish(c, topic, payload, (size_t)n, next % 2 ? 2 : 1, false);
            if (rc < 0) {
                fprintf(stderr, "publish %ld: %s\n", next, mqttc_strerror(rc));
                return 4;
            }
            if (pwrite(fd, &next, sizeof next, 0) != (ssize_t)sizeof next) {
                return 4;
            }
            next++;
            sent++;
        }
        if (next >= count && mqttc_client_queued(c) == 0) {
            break;
        }
        mqttc_client_loop(c, 10);
    }
    rc = next >= count && mqttc_client_queued(c) == 0 ? 0 : 5;
    mqttc_client_destroy(c);
    mqttc_store_close(st);
    close(fd);
    fprintf(stderr, "crash_publisher: %s\n", rc == 0 ? "all acknowledged" : "time limit");
    return rc;
}
