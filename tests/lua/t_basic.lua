-- Every method, constant and the main events against a plain broker:
-- conack, suback, recv + metas, sent for QoS 0/1/2, unsuback, disconnect,
-- reconnecting the same object, close, __close and __gc.
local T = require("common")

sys.taskInit(function()
    local wd = T.watchdog(30000)
    T.eq(mqtt.STATE_DISCONNECT, 0, "STATE_DISCONNECT")
    T.eq(mqtt.STATE_SCONNECT, 1, "STATE_SCONNECT")
    T.eq(mqtt.STATE_MQTT, 2, "STATE_MQTT")
    T.eq(mqtt.STATE_READY, 3, "STATE_READY")

    local c = T.client("a", T.port, nil, {rxSize = 8192})
    T.eq(c:auth("lua-basic-a", "", "", true), true, "auth")
    c:keepalive(60)
    c:debug(false)
    T.eq(c:state(), mqtt.STATE_DISCONNECT, "state before connect")
    T.eq(c:ready(), false, "ready before connect")
    T.eq(c:publish("lua/basic/x", "early", 1), nil, "publish before connect")
    T.eq(c:connect(), true, "connect")
    T.eq(c:state(), mqtt.STATE_SCONNECT, "state while connecting")
    T.expect("a", "conack")
    T.eq(c:state(), mqtt.STATE_READY, "state when ready")
    T.eq(c:ready(), true, "ready")

    -- subscribe: single and table forms; suback true + granted QoS
    local id = c:subscribe("lua/basic/q2", 2)
    T.check(math.type(id) == "integer" and id > 0, "subscribe id", id)
    local ok, granted, metas = T.expect("a", "suback")
    T.eq(ok, true, "suback data")
    T.eq(granted, 2, "granted QoS")
    T.eq(metas.message_id, id, "suback message id")
    id = c:subscribe({["lua/basic/q1"] = 1, ["lua/basic/q0"] = 0})
    T.check(id, "table subscribe id")
    ok, granted, metas = T.expect("a", "suback")
    T.eq(ok, true, "suback data (table)")
    T.eq(#metas.granted, 2, "two granted codes")

    -- publish QoS 0: returns 0, "sent" with 0 once written; recv metas
    T.eq(c:publish("lua/basic/q0", "zero"), 0, "QoS 0 publish returns 0")
    T.eq(T.expect("a", "sent"), 0, "QoS 0 sent data")
    local topic, payload, m = T.expect("a", "recv")
    T.eq(topic, "lua/basic/q0", "recv topic")
    T.eq(payload, "zero", "recv payload")
    T.eq(m.qos, 0, "metas.qos")
    T.eq(m.message_id, 0, "metas.message_id for QoS 0")
    T.eq(m.retain, 0, "metas.retain")
    T.eq(m.dup, 0, "metas.dup")

    -- QoS 1 and 2: the id comes back in "sent" (PUBACK / PUBCOMP)
    local id1 = c:publish("lua/basic/q1", "one", 1)
    T.check(math.type(id1) == "integer" and id1 > 0, "QoS 1 id", id1)
    T.eq(T.expect("a", "sent"), id1, "QoS 1 sent data")
    topic, payload, m = T.expect("a", "recv")
    T.eq(payload, "one", "QoS 1 payload")
    T.eq(m.qos, 1, "QoS 1 metas.qos")
    T.check(m.message_id > 0, "QoS 1 metas.message_id")

    local binary = "\0\1\2\255bin"
    local id2 = c:publish("lua/basic/q2", binary, 2, 0)
    T.check(id2 and id2 > 0 and id2 ~= id1, "QoS 2 id", id2)
    topic, payload, m = T.expect("a", "recv")
    T.eq(payload, binary, "binary payload")
    T.eq(m.qos, 2, "QoS 2 metas.qos")
    T.eq(T.expect("a", "sent"), id2, "QoS 2 sent data (PUBCOMP)")

    -- retained message: a new subscription receives it with retain = 1
    c:publish("lua/basic/retained", "kept", 1, 1)
    T.expect("a", "sent")
    c:subscribe("lua/basic/retained", 1)
    T.expect("a", "suback")
    topic, payload, m = T.expect("a", "recv")
    T.eq(topic, "lua/basic/retained", "retained topic")
    T.eq(m.retain, 1, "metas.retain of a retained message")
    c:publish("lua/basic/retained", "", 1, true) -- clear it (we hear it too)
    T.expect("a", "sent")
    topic, payload = T.expect("a", "recv")
    T.check(topic == "lua/basic/retained" and payload == "", "empty retained message")

    -- unsubscribe: string and list; nothing arrives afterwards
    T.check(c:unsubscribe("lua/basic/q0"), "unsubscribe id")
    T.expect("a", "unsuback")
    T.check(c:unsubscribe({"lua/basic/q1", "lua/basic/q2"}), "unsubscribe list id")
    T.expect("a", "unsuback")
    c:publish("lua/basic/q1", "nobody", 1)
    T.expect("a", "sent")
    T.silent("a", "recv", 300)

    -- disconnect keeps the object; connect again works
    T.eq(c:disconnect(), true, "disconnect")
    T.expect("a", "disconnect")
    T.eq(c:state(), mqtt.STATE_DISCONNECT, "state after disconnect")
    T.eq(c:ready(), false, "ready after disconnect")
    c:auth() -- broker-assigned id (a new native client is made at connect)
    T.eq(c:connect(), true, "connect again")
    T.expect("a", "conack")
    c:close()
    c:close() -- twice is harmless
    T.eq(c:state(), 0, "state after close")
    T.check(not pcall(c.publish, c, "x", "y"), "publish after close raises")

    -- to-be-closed variable and the garbage collector
    do
        local b <close> = T.client("b", T.port)
        b:auth("lua-basic-b")
        b:connect()
        T.expect("b", "conack")
    end
    local g = T.client("g", T.port)
    g:auth("lua-basic-g")
    g = nil
    collectgarbage()
    collectgarbage()
    T.pass("basic", wd)
end)
sys.run()
