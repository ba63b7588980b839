/* The LuatOS-compatible `mqtt` Lua module (bindings/lua/lmqtt.c). */
#ifndef MQTTC_LMQTT_H
#define MQTTC_LMQTT_H

#include <lua.h>

/** Open the module: `require "mqtt"` (mqtt.so) or preloaded by mqttc-lua. */
int luaopen_mqtt(lua_State *L);

#endif /* MQTTC_LMQTT_H */
