-- will(): set before connect, published by the broker when the connection
-- is taken over by a second client with the same id; that takeover gives
-- the first client "disconnect". will() after connect returns false.
local T = require("common")
sys.taskInit(function()
    local wd = T.watchdog(15000)
    local s = T.client("s", T.port)
    s:auth("lua-will-sub")
    s:connect()
    T.expect("s", "conack")
    s:subscribe("lua/will/#", 1)
    T.expect("s", "suback")

    local w = T.client("w", T.port)
    w:auth("lua-will")
    T.eq(w:will("lua/will/gone", "bye", 1, 0), true, "will before connect")
    w:connect()
    T.expect("w", "conack")
    T.eq(w:will("lua/will/late", "x"), false, "will after connect")

    local w2 = T.client("w2", T.port)
    w2:auth("lua-will") -- same id: the broker drops w
    w2:connect()
    T.expect("w2", "conack")
    local topic, payload, m = T.expect("s", "recv")
    T.eq(topic, "lua/will/gone", "will topic")
    T.eq(payload, "bye", "will payload")
    T.eq(m.qos, 1, "will QoS")
    T.expect("w", "disconnect")
    for _, c in ipairs({s, w, w2}) do c:close() end
    T.pass("will", wd)
end)
sys.run()
