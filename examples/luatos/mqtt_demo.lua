-- The usual LuatOS MQTT demo shape, runnable on a PC with mqttc-lua:
--   mqttc-lua examples/luatos/mqtt_demo.lua
-- The broker is the global MQTT_HOST / MQTT_PORT if set, else the
-- environment variables of the same names, else 127.0.0.1:1883.
-- DEMO_COUNT (global or environment, default 3) is how many messages the
-- sender task passes before it closes the client, so the script ends.
local host = MQTT_HOST or os.getenv("MQTT_HOST") or "127.0.0.1"
local port = tonumber(MQTT_PORT or os.getenv("MQTT_PORT") or 1883)
local count = tonumber(DEMO_COUNT or os.getenv("DEMO_COUNT") or 3)
local client_id = "luatos-demo-" .. tostring(os.time())
local pub_topic = "/luatos/pub/" .. client_id
local sub_topic = "/luatos/sub/" .. client_id

local mqttc = nil
local sent = 0

sys.taskInit(function()
    mqttc = mqtt.create(nil, host, port, false)
    mqttc:auth(client_id, "", "")
    mqttc:keepalive(240)
    mqttc:autoreconn(true, 3000)
    mqttc:on(function(mqtt_client, event, data, payload, metas)
        log.info("mqtt", "event", event, data, payload)
        if event == "conack" then
            sys.publish("mqtt_conack")
            mqtt_client:subscribe(sub_topic, 1)
            mqtt_client:subscribe(pub_topic, 1) -- hear our own messages
        elseif event == "recv" then
            log.info("mqtt", "downlink", "topic", data, "payload", payload, "qos", metas.qos)
            sys.publish("mqtt_recv", data, payload)
        elseif event == "sent" then
            sent = sent + 1
            sys.publish("mqtt_sent", data)
        end
    end)
    mqttc:connect()
    sys.waitUntil("mqtt_conack")
    while true do
        local ret, topic, data, qos = sys.waitUntil("mqtt_pub", 30000)
        if ret then
            if topic == "close" then break end
            mqttc:publish(topic, data, qos)
        end
    end
    mqttc:close()
    mqttc = nil
    log.info("mqtt", "closed")
end)

-- Another task hands messages to the MQTT task, then asks it to close.
sys.taskInit(function()
    sys.waitUntil("mqtt_conack")
    sys.wait(200) -- let the subscriptions settle
    local received = 0
    for i = 1, count do
        sys.publish("mqtt_pub", pub_topic, "hello " .. i, 1)
        if sys.waitUntil("mqtt_recv", 5000) then received = received + 1 end
    end
    -- the seed's way to know an uplink arrived: wait for "sent" (PUBACK)
    for _ = 1, 10 do
        if sent >= count then break end
        sys.waitUntil("mqtt_sent", 300)
    end
    log.info("demo", "received", received, "sent", sent, "of", count)
    if received == count and sent == count then log.info("demo", "PASS") end
    sys.publish("mqtt_pub", "close")
end)

-- Scripts end with sys.run(), as on the device.
sys.run()
