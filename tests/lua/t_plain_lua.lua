-- Plain lua5.4: mqtt.so, sys.lua and log.lua found through LUA_CPATH and
-- LUA_PATH with require, as on the device (the runner sets the paths).
local mqtt = require("mqtt")
local sys = require("sys")
local log = require("log")
local port = tonumber(os.getenv("MQTT_PORT"))
local result = "FAIL"

sys.taskInit(function()
    local c = mqtt.create(nil, "127.0.0.1", port)
    c:auth("lua-plain")
    c:on(function(_, event, data, payload)
        if event == "conack" then sys.publish("conack") end
        if event == "recv" then sys.publish("recv", data, payload) end
    end)
    c:connect()
    assert(sys.waitUntil("conack", 5000), "no conack")
    c:subscribe("lua/plain", 1)
    sys.wait(100)
    c:publish("lua/plain", "from lua5.4", 1)
    local ok, topic, payload = sys.waitUntil("recv", 5000)
    assert(ok and topic == "lua/plain" and payload == "from lua5.4", "no message")
    c:close()
    result = "PASS"
end)
local code = sys.run()
log.info("test", result, "plain lua5.4")
os.exit(code == 0 and result == "PASS" and 0 or 1)
