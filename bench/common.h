/* The benchmark driver shared by the three harnesses (harness_mqttc.c,
 * harness_mosq.c, harness_paho.c). Each harness only adapts one MQTT library
 * to the small interface below; the modes, the timing, the counting and the
 * JSON output live here, so the method is the same for every library.
 *
 * Threads: the driver runs on the main thread only. A library that calls
 * back on its own threads (Paho) must hand its events to the main thread and
 * deliver them from inside step(), so that every bench_on_*() call below
 * happens on the main thread.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_client bench_client; /* the library's own client wrapper */

typedef struct bench_lib {
    const char *name;
    /* Once, before anything else; writes the library's version into buf. */
    int (*init)(char *buf, size_t n);
    void (*cleanup)(void);
    /* Create client number idx and start connecting it (asynchronously);
     * inflight_max: the library's own outbound QoS 1/2 window. NULL on error. */
    bench_client *(*create)(const char *host, int port, int idx, const char *client_id,
                            int inflight_max);
    int (*subscribe)(bench_client *c, const char *topic, int qos);
    int (*publish)(bench_client *c, const char *topic, const void *payload, size_t len, int qos);
    /* Do the I/O of all n clients, waiting at most timeout_ms for some. <0: error. */
    int (*step)(bench_client **c, int n, int timeout_ms);
    /* Disconnect (DISCONNECT packet) and free one client. */
    void (*destroy)(bench_client *c);
} bench_lib;

/* Called by the library adapters, on the main thread (see above). */
void bench_on_connected(int idx);
void bench_on_subscribed(int idx);
void bench_on_message(int idx, const void *payload, size_t len);
void bench_on_published(int idx); /* QoS 0 written, QoS 1 PUBACK, QoS 2 PUBCOMP */
void bench_on_error(int idx, const char *what, int code);

/* main() of every harness. */
int bench_main(const bench_lib *lib, int argc, char **argv);

uint64_t bench_now_ns(void);

#endif
