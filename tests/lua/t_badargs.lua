-- Bad arguments raise a clear Lua error; nothing crashes.
local T = require("common")

local function bad(what, pattern, f, ...)
    local ok, err = pcall(f, ...)
    T.check(not ok, what, "did not raise")
    T.check(tostring(err):find(pattern, 1, true), what, "raised", err, "want", pattern)
end

sys.taskInit(function()
    local wd = T.watchdog(10000)
    bad("create without host", "bad argument #2", mqtt.create, nil, nil, 1883)
    bad("create with empty host", "empty host", mqtt.create, nil, "", 1883)
    bad("create without port", "bad argument #3", mqtt.create, nil, "127.0.0.1")
    bad("create with port 0", "port must be", mqtt.create, nil, "127.0.0.1", 0)
    bad("create with port 70000", "port must be", mqtt.create, nil, "127.0.0.1", 70000)
    bad("create with ssl 5", "bad argument #4", mqtt.create, nil, "127.0.0.1", 1883, 5)
    bad("create with verify 7", "verify must be", mqtt.create, nil, "127.0.0.1", 1883, {verify = 7})
    bad("create with server_cert 1", "must be strings", mqtt.create, nil, "127.0.0.1", 1883,
        {server_cert = {}})
    bad("create with opts 'x'", "bad argument #5", mqtt.create, nil, "127.0.0.1", 1883, nil, "x")
    bad("create with rxSize -1", "rxSize", mqtt.create, nil, "127.0.0.1", 1883, nil, {rxSize = -1})

    local c = mqtt.create(nil, "127.0.0.1", T.port, false, true)
    T.check(c, "create with ssl=false, ipv6=true")
    T.check(tostring(c):find("mqtt client"), "tostring")
    bad("auth with a table", "bad argument #2", c.auth, c, {})
    bad("will without topic", "bad argument #2", c.will, c)
    bad("will with QoS 3", "QoS must be", c.will, c, "t", "p", 3)
    bad("on with a number", "bad argument #2", c.on, c, 5)
    bad("keepalive with a string", "bad argument #2", c.keepalive, c, "soon")
    bad("autoreconn with interval 0", "interval", c.autoreconn, c, true, 0)
    bad("subscribe with QoS 3", "QoS must be", c.subscribe, c, "t", 3)
    bad("subscribe with nil", "bad argument #2", c.subscribe, c, nil)
    bad("subscribe with {}", "empty topic table", c.subscribe, c, {})
    bad("subscribe with a bad QoS value", "QoS must be", c.subscribe, c, {["t"] = "x"})
    bad("subscribe with a non-string", "topics must be strings", c.subscribe, c, {1, 2})
    bad("unsubscribe with {}", "empty topic list", c.unsubscribe, c, {})
    bad("unsubscribe with {1}", "topics must be strings", c.unsubscribe, c, {1})
    bad("publish without topic", "bad argument #2", c.publish, c, nil, "x")
    bad("publish with a table payload", "bad argument #3", c.publish, c, "t", {})
    bad("publish with QoS -1", "QoS must be", c.publish, c, "t", "x", -1)
    bad("method on another object", "mqttc.luatos.client expected", c.publish, {}, "t", "x")
    bad("method on nothing", "bad argument #1", c.connect)
    bad("sys.taskInit without a function", "function expected", sys.taskInit, 5)

    -- the native library refuses these; the result is nil, not an error
    c:auth("lua-badargs")
    c:connect()
    T.check(c:subscribe("a/#/b", 0) == nil, "invalid filter gives nil")
    T.check(c:publish("a/+", "x", 1) == nil, "wildcard topic gives nil")
    T.check(c:publish("", "x", 0) == nil, "empty topic gives nil")

    c:close()
    bad("connect after close", "closed", c.connect, c)
    bad("publish after close", "closed", c.publish, c, "t", "x")
    T.eq(c:ready(), false, "ready after close")

    -- an error inside the on() callback is reported, not fatal
    local e = mqtt.create(nil, "127.0.0.1", T.port)
    local called = false
    e:on(function(_, ev)
        if ev == "conack" then
            called = true
            error("deliberate error in a callback")
        end
    end)
    e:auth("lua-badargs-cb")
    e:connect()
    for _ = 1, 200 do
        if called then break end
        sys.wait(10)
    end
    T.check(called, "callback ran")
    T.eq(e:ready(), true, "client still fine")
    e:close()

    -- close() from inside the client's own callback
    local x = mqtt.create(nil, "127.0.0.1", T.port)
    local closed = false
    x:on(function(client, ev)
        if ev == "conack" then
            client:close()
            closed = true
        end
    end)
    x:auth("lua-badargs-close")
    x:connect()
    for _ = 1, 200 do
        if closed then break end
        sys.wait(10)
    end
    T.check(closed, "closed in the callback")
    T.eq(x:state(), 0, "state after close in the callback")
    x = nil
    collectgarbage()
    T.pass("badargs", wd)
end)
sys.run()
