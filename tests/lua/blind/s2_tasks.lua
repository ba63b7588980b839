-- LuaTools需要PROJECT和VERSION这两个信息
PROJECT = "blind_tasks"
VERSION = "1.0.2"

-- sys库是标配
_G.sys = require("sys")
--[[特别注意, 使用mqtt库需要下列语句]]
_G.sysplus = require("sysplus")

local mqtt_host = "lbsmqtt.airm2m.com"
local mqtt_port = 1884

local topic_in = "/blind/tasks/in"
local topic_status = "/blind/tasks/status"
local topic_result = "/blind/tasks/result"
local topic_will = "/blind/tasks/will"

local mqttc = nil
local received = {}
local errors = {}

local function fail(why)
    table.insert(errors, why)
    log.warn("tasks", "FAIL", why)
end

-- 收到的下行数据交给订阅者处理
sys.subscribe("mqtt_recv", function(topic, payload, metas)
    log.info("recv", topic, payload, metas and metas.qos, metas and metas.retain)
    if topic == topic_in then
        table.insert(received, payload)
        if #received == 2 then
            sys.publish("got_all")
        end
    end
end)

-- 看门狗: 60秒还没结束就算失败
sys.timerStart(function()
    log.error("tasks", "timeout, giving up")
    os.exit(2)
end, 60000)

sys.taskInit(function()
    -- 等待联网
    local net = sys.waitUntil("IP_READY", 30000)
    log.info("net", "IP_READY", net)

    mqttc = mqtt.create(nil, mqtt_host, mqtt_port, false)
    mqttc:auth("blind-tasks-002")
    mqttc:keepalive(60)
    -- 正常 disconnect 时遗嘱不应该被发出
    mqttc:will(topic_will, "tasks-died", 1, 0)

    mqttc:on(function(mqtt_client, event, data, payload, metas)
        log.info("mqtt", "event", event, data, payload)
        if event == "conack" then
            sys.publish("mqtt_conack")
        elseif event == "suback" then
            sys.publish("mqtt_suback", data, payload)
        elseif event == "unsuback" then
            sys.publish("mqtt_unsuback")
        elseif event == "recv" then
            sys.publish("mqtt_recv", data, payload, metas)
        elseif event == "sent" then
            sys.publish("mqtt_sent", data)
        elseif event == "disconnect" then
            sys.publish("mqtt_disconnect")
        end
    end)

    mqttc:connect()
    local ok = sys.waitUntil("mqtt_conack", 10000)
    if not ok then
        log.error("tasks", "no conack")
        os.exit(1)
    end
    log.info("tasks", "connected, ready", mqttc:ready())

    -- 订阅, qos2
    mqttc:subscribe(topic_in, 2)
    local ok2, result, granted = sys.waitUntil("mqtt_suback", 5000)
    log.info("tasks", "suback", ok2, result, granted)
    if not ok2 or result ~= true or granted ~= 2 then
        fail("suback " .. tostring(result) .. " " .. tostring(granted))
    end

    -- qos1 上报, 等 sent 事件
    local id1 = mqttc:publish("/blind/tasks/out/q1", "hello-qos1", 1)
    local s1, sid1 = sys.waitUntil("mqtt_sent", 5000)
    log.info("tasks", "qos1 pkgid", id1, "sent", s1, sid1)
    if not id1 or not s1 or sid1 ~= id1 then fail("qos1 sent") end

    -- qos2 + 存档
    local id2 = mqttc:publish("/blind/tasks/out/q2", "hello-qos2-retained", 2, 1)
    local s2, sid2 = sys.waitUntil("mqtt_sent", 5000)
    log.info("tasks", "qos2 pkgid", id2, "sent", s2, sid2)
    if not id2 or not s2 or sid2 ~= id2 then fail("qos2 sent") end

    -- qos0
    mqttc:publish("/blind/tasks/out/q0", "hello-qos0")
    local s0 = sys.waitUntil("mqtt_sent", 5000)
    if not s0 then fail("qos0 sent") end

    -- 告诉对端可以下发了
    mqttc:publish(topic_status, "waiting", 1)
    if not sys.waitUntil("got_all", 15000) then
        fail("only got " .. #received .. " downlink messages")
    end
    for _, p in ipairs(received) do
        mqttc:publish("/blind/tasks/out/ack", "ack:" .. p, 1)
        sys.waitUntil("mqtt_sent", 5000)
    end

    -- 取消订阅, 之后不应该再收到
    mqttc:unsubscribe(topic_in)
    if not sys.waitUntil("mqtt_unsuback", 5000) then
        fail("no unsuback")
    end
    mqttc:publish(topic_status, "unsubscribed", 1)
    sys.wait(2000)
    if #received ~= 2 then
        fail("received after unsubscribe: " .. tostring(received[#received]))
    end

    local verdict = (#errors == 0) and "PASS" or ("FAIL:" .. table.concat(errors, ";"))
    mqttc:publish(topic_result, verdict, 1)
    sys.waitUntil("mqtt_sent", 5000)
    log.info("tasks", "result", verdict)

    mqttc:disconnect()
    sys.wait(500)
    mqttc:close()
    mqttc = nil
    log.info("tasks", "done")
    os.exit(#errors == 0 and 0 or 1)
end)

-- 用户代码已结束---------------------------------------------
-- 结尾总是这一句
sys.run()
-- sys.run()之后后面不要加任何语句!!!!!
