/**
 * @file export.h
 * @brief Symbol visibility. The library is built with -fvisibility=hidden;
 * only declarations marked MQTTC_API are exported from the shared object.
 */
#ifndef MQTTC_EXPORT_H
#define MQTTC_EXPORT_H

#if defined(MQTTC_BUILDING) && defined(__GNUC__)
#define MQTTC_API __attribute__((visibility("default")))
#else
#define MQTTC_API
#endif

#endif /* MQTTC_EXPORT_H */
