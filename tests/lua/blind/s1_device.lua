-- LuaTools需要PROJECT和VERSION这两个信息
PROJECT = "blind_device"
VERSION = "1.0.0"

-- 老版本LuatOS的写法, sys库是标配
local sys = require "sys"

-- 有看门狗就开看门狗, 没有就算了
if wdt then
    wdt.init(9000)
    sys.timerLoopStart(wdt.feed, 3000)
end

-- 根据自己的服务器修改以下参数
local mqtt_host = "lbsmqtt.airm2m.com"
local mqtt_port = 1884
local mqtt_isssl = false
local client_id = "blind-dev-001"
local user_name = "devuser"
local password = "devpass"

local base = "/blind/dev001/"
local topic_cmd = base .. "cmd"            -- 下发: 命令, qos1
local topic_cfg = base .. "cfg"            -- 下发: 配置, qos0
local topic_reply = base .. "reply"        -- 上报: 命令回显
local topic_status = base .. "status"      -- 上报: 在线状态 (遗嘱也在这里)
local topic_telemetry = base .. "telemetry" -- 上报: 定时数据

local seq = 0
local recv_count = 0

local mqttc = mqtt.create(nil, mqtt_host, mqtt_port, mqtt_isssl)
if not mqttc then
    log.error("mqtt", "create failed")
    return
end

mqttc:auth(client_id, user_name, password)
mqttc:keepalive(60)
-- 要在connect之前调用. 掉电/断网时服务器替我们发 offline, qos1, 存档
mqttc:will(topic_status, "offline", 1, 1)
mqttc:autoreconn(true, 3000)

mqttc:on(function(mqtt_client, event, data, payload, metas)
    log.info("mqtt", "event", event, data, payload)
    if event == "conack" then
        -- 多主题订阅, 不同qos
        mqtt_client:subscribe({[topic_cmd] = 1, [topic_cfg] = 0})
        mqtt_client:publish(topic_status, "online", 1, 1)
    elseif event == "suback" then
        log.info("mqtt", "suback", data, payload)
    elseif event == "recv" then
        recv_count = recv_count + 1
        if metas then
            log.info("mqtt", "downlink", data, payload, "qos", metas.qos, "retain", metas.retain, "msgid", metas.message_id)
        end
        if data == topic_cmd then
            -- 命令原样回显
            mqtt_client:publish(topic_reply, "echo:" .. payload, 1)
        elseif data == topic_cfg then
            mqtt_client:publish(topic_reply, "cfg-ok:" .. payload, 0)
        end
    elseif event == "sent" then
        log.debug("mqtt", "sent", "pkgid", data)
    elseif event == "disconnect" then
        log.warn("mqtt", "disconnect")
    end
end)

mqttc:connect()

-- 定时上报, 每秒一次
sys.timerLoopStart(function()
    if mqttc:ready() then
        seq = seq + 1
        local data = string.format('{"dev":"%s","seq":%d,"recv":%d}', client_id, seq, recv_count)
        mqttc:publish(topic_telemetry, data, 0)
        log.info("telemetry", data)
    end
end, 1000)

-- 用户代码已结束---------------------------------------------
-- 结尾总是这一句
sys.run()
-- sys.run()之后后面不要加任何语句!!!!!
