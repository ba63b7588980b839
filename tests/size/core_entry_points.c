/* Linked by scripts/core_size.sh: every public engine entry point, so the
 * linker keeps exactly the core code a driver can reach (--gc-sections). */
#include "mqttc/engine.h"
void *volatile keep[] = {
    (void *)mqttc_engine_init, (void *)mqttc_engine_start, (void *)mqttc_engine_publish,
    (void *)mqttc_engine_restore, (void *)mqttc_engine_restore_inbound,
    (void *)mqttc_engine_request, (void *)mqttc_engine_disconnect,
    (void *)mqttc_engine_connection_lost, (void *)mqttc_engine_rx_space,
    (void *)mqttc_engine_rx_commit, (void *)mqttc_engine_recv, (void *)mqttc_engine_output,
    (void *)mqttc_engine_want_write, (void *)mqttc_engine_consume, (void *)mqttc_engine_tick,
    (void *)mqttc_engine_next_timeout, (void *)mqttc_engine_state, (void *)mqttc_engine_queued,
    (void *)mqttc_engine_inflight, (void *)mqttc_engine_abandon, (void *)mqttc_engine_clear_inbound,
    (void *)mqttc_engine_resize, (void *)mqttc_engine_idle,
};
int main(void) { return keep[0] != 0; }
