-- The host side of running device scripts unedited (docs/LUATOS.md):
-- the shims of luatos_host.lua, and the broker redirect. run_lua_tests.sh runs
-- this with MQTTC_LUA_BROKER=127.0.0.1:$MQTT_PORT, so the client below, made
-- for a host that does not exist, reaches the local broker.
local T = require("common")
T.watchdog(20000)

-- Shims.
T.eq(rtos.bsp(), "PC", "rtos.bsp()")
T.eq(type(rtos.version()), "string", "rtos.version() type")
T.check(math.type(rtos.meminfo()) == "integer", "rtos.meminfo() is an integer")
T.eq(mcu.unique_id(), "MQTTCLUA", "mcu.unique_id()")
T.eq(mobile.imei(), "860000000000000", "mobile.imei()")
local hex, n = mcu.unique_id():toHex()
T.eq(hex, "4D515454434C5541", "toHex")
T.eq(n, 16, "toHex length")
T.eq(("\0\255"):toHex(" "), "00 FF ", "toHex with a separator")
T.eq(("4d51 54"):fromHex(), "MQT", "fromHex")
T.check(("ESP32C3"):startsWith("ESP32") and not ("EC618"):startsWith("ESP32"), "startsWith")
T.check(("abc.lua"):endsWith(".lua") and ("abc"):endsWith(""), "endsWith")
T.eq(type(require("sysplus")), "table", "require('sysplus')")

sys.taskInit(function()
    -- The shims announce the network once, as the device does.
    local ok, ip = sys.waitUntil("IP_READY", 1000)
    T.check(ok and ip == "127.0.0.1", "IP_READY published by the shims", ok, ip)
    -- Redirected: the host below is never looked up.
    local c = mqtt.create(nil, "broker.invalid", 1, false)
    c:auth("lua-host")
    c:on(function(_, event) sys.publish("h2_" .. event) end)
    c:connect()
    T.check(sys.waitUntil("h2_conack", 5000), "conack through the redirect")
    c:close()
    log.info("test", "PASS", "host shims and redirect")
    sys.exit(0)
end)
-- The shim loader itself leaves no global behind.
T.eq(rawget(_G, "luatos_host"), nil, "no luatos_host global")
