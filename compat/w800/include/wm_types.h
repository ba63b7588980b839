/**
 * @file wm_types.h
 * @brief The basic types of the WinnerMicro W800 SDK, as far as the MQTT
 *        client face of mqttc needs them (docs/W800.md).
 */
#ifndef WM_TYPES_H
#define WM_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#endif /* WM_TYPES_H */
