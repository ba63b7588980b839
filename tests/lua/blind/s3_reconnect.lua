-- LuaTools需要PROJECT和VERSION这两个信息
PROJECT = "blind_reconn"
VERSION = "1.0.0"

sys = require("sys")

local mqtt_host = "lbsmqtt.airm2m.com"
local mqtt_port = 1884

local topic_in = "/blind/reconn/in"
local topic_status = "/blind/reconn/status"
local topic_state = "/blind/reconn/state"
local topic_tick = "/blind/reconn/tick"

local conn_count = 0
local disc_count = 0
local sent_count = 0
local tick = 0

local mqttc = mqtt.create(nil, mqtt_host, mqtt_port)
mqttc:auth("blind-reconn-003")
mqttc:keepalive(20)
-- 自动重连, 1秒
mqttc:autoreconn(true, 1000)

mqttc:on(function(mqtt_client, event, data, payload, metas)
    if event == "conack" then
        conn_count = conn_count + 1
        log.info("mqtt", "conack", conn_count)
        -- cleanSession 默认 true, 每次连上都要重新订阅
        mqtt_client:subscribe(topic_in, 1)
        mqtt_client:publish(topic_status, "online:" .. conn_count, 1)
        sys.publish("mqtt_conack")
    elseif event == "disconnect" then
        disc_count = disc_count + 1
        log.warn("mqtt", "disconnect", disc_count, "ready", mqtt_client:ready())
    elseif event == "sent" then
        sent_count = sent_count + 1
    elseif event == "recv" then
        log.info("mqtt", "recv", data, payload)
        if payload == "state?" then
            local s = string.format("state=%d ready=%s conn=%d disc=%d sent=%d",
                mqtt_client:state(), tostring(mqtt_client:ready()), conn_count, disc_count, sent_count)
            mqtt_client:publish(topic_state, s, 1)
        end
    elseif event == "error" then
        log.error("mqtt", "error", data, payload)
    elseif event == "pong" then
        log.debug("mqtt", "pong")
    end
end)

-- 监视状态变化
local last_state = -1
sys.timerLoopStart(function()
    local st = mqttc:state()
    if st ~= last_state then
        local name = "other"
        if st == mqtt.STATE_DISCONNECT then name = "DISCONNECT"
        elseif st == mqtt.STATE_SCONNECT then name = "SCONNECT"
        elseif st == mqtt.STATE_MQTT then name = "MQTT"
        elseif st == mqtt.STATE_READY then name = "READY"
        end
        log.info("state", last_state, "->", st, name)
        last_state = st
    end
end, 100)

sys.taskInit(function()
    mqttc:connect()
    sys.waitUntil("mqtt_conack", 15000)
    while true do
        if mqttc:ready() then
            tick = tick + 1
            mqttc:publish(topic_tick, "tick:" .. tick, 1)
        else
            log.info("tick", "not ready, state", mqttc:state())
        end
        sys.wait(500)
    end
end)

-- 用户代码已结束---------------------------------------------
sys.run()
