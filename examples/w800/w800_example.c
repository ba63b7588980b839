/* The W800 SDK's MQTT client example, on a POSIX host.
 *
 * As in the SDK: register for WM_MQTT_EV, init a client from a URI, connect;
 * on CONNECTED publish a QoS 1 message, subscribe /topic/qos0 and
 * /topic/qos1, unsubscribe /topic/qos1; print and free every DATA event.
 *
 * Deviations (docs/W800.md): the Wi-Fi and FreeRTOS start-up lines are gone;
 * the broker URI comes from argv[1] (default mqtt://127.0.0.1:1883); when the
 * first publish is acknowledged the example publishes a QoS 1 message on
 * /topic/qos0 (subscribed by then) and exits once it has received it back,
 * or after 10 seconds. */
#define _POSIX_C_SOURCE 200809L

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wm_mqtt_client.h"

#define LOG_TAG "mqtt_example"
#define wm_log_info(fmt, ...) printf("[I] " LOG_TAG ": " fmt "\n", __VA_ARGS__)
#define wm_log_error(fmt, ...) printf("[E] " LOG_TAG ": " fmt "\n", __VA_ARGS__)

static wm_mqtt_client_handle_t mqtt_client;
static atomic_int first_msg_id = -1;
static atomic_bool done;

static void mqtt_event_handler(wm_event_group_t group, int event, void *data, void *priv)
{
    wm_mqtt_event_data_t *mqtt_data = (wm_mqtt_event_data_t *)data;
    int msg_id;
    (void)group;
    (void)priv;

    switch (event) {
    case WM_EVENT_MQTT_CLIENT_CONNECTED:
        wm_log_info("%s", "MQTT_EVENT_CONNECTED");
        msg_id = wm_mqtt_client_publish(mqtt_client, "/topic/qos1", "data_3", 0, 1, 0);
        atomic_store(&first_msg_id, msg_id);
        wm_log_info("sent publish successful, msg_id=%d", msg_id);

        msg_id = wm_mqtt_client_subscribe(mqtt_client, "/topic/qos0", 0);
        wm_log_info("sent subscribe successful, msg_id=%d", msg_id);

        msg_id = wm_mqtt_client_subscribe(mqtt_client, "/topic/qos1", 1);
        wm_log_info("sent subscribe successful, msg_id=%d", msg_id);

        msg_id = wm_mqtt_client_unsubscribe(mqtt_client, "/topic/qos1");
        wm_log_info("sent unsubscribe successful, msg_id=%d", msg_id);
        break;
    case WM_EVENT_MQTT_CLIENT_DISCONNECTED:
        wm_log_info("%s", "MQTT_EVENT_DISCONNECTED");
        break;
    case WM_EVENT_MQTT_CLIENT_DATA:
        wm_log_info("%s", "MQTT_EVENT_DATA");
        printf("TOPIC=%.*s\r\n", mqtt_data->mqtt_client_data_info.topic_len,
               mqtt_data->mqtt_client_data_info.topic);
        printf("DATA=%.*s\r\n", mqtt_data->mqtt_client_data_info.payload_len,
               mqtt_data->mqtt_client_data_info.payload);
        if (strcmp(mqtt_data->mqtt_client_data_info.topic, "/topic/qos0") == 0) {
            atomic_store(&done, true);
        }
        free(mqtt_data->mqtt_client_data_info.topic);
        free(mqtt_data->mqtt_client_data_info.payload);
        break;
    case WM_EVENT_MQTT_CLIENT_PUBLISHED:
        wm_log_info("MQTT_EVENT_PUBLISHED, msg_id=%d",
                    mqtt_data->mqtt_client_published_info.msg_id);
        if (mqtt_data->mqtt_client_published_info.msg_id == atomic_load(&first_msg_id)) {
            /* Host addition: a message this client receives, to know it works. */
            wm_mqtt_client_publish(mqtt_client, "/topic/qos0", "data", 0, 1, 0);
        }
        break;
    default:
        break;
    }
}

int main(int argc, char **argv)
{
    char *uri = argc > 1 ? argv[1] : "mqtt://127.0.0.1:1883";
    wm_mqtt_client_config_t mqtt_cfg = {
        .uri = uri,
        .client_id = "w800_example",
        .keep_alive = 60,
        .clean_session = 1,
        .auth_mode = WM_MQTT_CLIENT_AUTH_MODE_NOT_CERT,
    };

    wm_event_add_callback(WM_MQTT_EV, WM_EVENT_ANY_TYPE, mqtt_event_handler, NULL);

    mqtt_client = wm_mqtt_client_init(&mqtt_cfg);
    if (mqtt_client == NULL) {
        wm_log_error("%s", "mqtt client init failed");
        return 1;
    }
    if (wm_mqtt_client_connect(mqtt_client) != WM_MQTT_CLIENT_ERROR_SUCCESS) {
        wm_log_error("%s", "mqtt client connect failed");
        wm_mqtt_client_deinit(mqtt_client);
        return 1;
    }

    /* Wait (at most 10 s) for our own message to come back. */
    for (int i = 0; i < 1000 && !atomic_load(&done); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    bool ok = atomic_load(&done);
    wm_mqtt_client_deinit(mqtt_client);
    wm_event_deinit();
    if (!ok) {
        wm_log_error("%s", "timed out");
    }
    return ok ? 0 : 1;
}
