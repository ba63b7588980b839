-- Helpers shared by the LuatOS-face tests (run by run_lua_tests.sh, which
-- sets the MQTT_* variables and LUA_PATH).
local T = {}

T.host = os.getenv("MQTT_HOST") or "127.0.0.1"
T.port = tonumber(os.getenv("MQTT_PORT") or "1883")
T.acl_port = tonumber(os.getenv("MQTT_ACL_PORT") or "0")
T.auth_port = tonumber(os.getenv("MQTT_AUTH_PORT") or "0")
T.tls_port = tonumber(os.getenv("MQTT_TLS_PORT") or "0")
T.closed_port = tonumber(os.getenv("MQTT_CLOSED_PORT") or "1")
T.ca_file = os.getenv("MQTT_CA_FILE")
T.marker = os.getenv("MQTT_MARKER")

function T.read(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

--- Fail the test (inside a task: the error ends sys.run with code 1).
function T.check(cond, ...)
    if not cond then
        local parts = {}
        for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
        error("check failed: " .. table.concat(parts, " "), 2)
    end
    return cond
end

function T.eq(got, want, what)
    T.check(got == want, what or "value", "=", tostring(got), "want", tostring(want))
end

--- End the run with code 1 if the test takes longer than ms.
function T.watchdog(ms)
    return sys.timerStart(function()
        io.stderr:write("watchdog: test took too long\n")
        sys.exit(1)
    end, ms or 30000)
end

--- A client whose events are recorded in T.events[tag] (consumed by
--- T.expect) and also published as sys messages "<tag>_<event>".
T.events = {}
T.count = {}
function T.client(tag, port, ssl, opts)
    local c = mqtt.create(nil, T.host, port or T.port, ssl, opts)
    T.check(c, "mqtt.create returned nil")
    T.events[tag], T.count[tag] = {}, {}
    c:on(function(client, event, data, payload, metas)
        assert(client == c, "the callback gets the client object")
        T.count[tag][event] = (T.count[tag][event] or 0) + 1
        table.insert(T.events[tag], {event, data, payload, metas})
        log.debug(tag, event, data, type(payload) == "string" and #payload .. " bytes" or payload)
        sys.publish(tag .. "_" .. event, data, payload, metas)
    end)
    return c
end

local function take(tag, event)
    for i, e in ipairs(T.events[tag]) do
        if e[1] == event then
            table.remove(T.events[tag], i)
            return e
        end
    end
end

--- Wait for the oldest unconsumed `event` of tag; fail on timeout.
--- Returns data, payload, metas.
function T.expect(tag, event, ms)
    local deadline = mqtt._now() + (ms or 5000)
    repeat
        local e = take(tag, event)
        if e then return e[2], e[3], e[4] end
        sys.wait(5)
    until mqtt._now() > deadline
    T.check(false, "no", event, "event for", tag)
end

--- Check that no `event` of tag comes within ms.
function T.silent(tag, event, ms)
    sys.wait(ms or 500)
    T.check(not take(tag, event), "unexpected", event, "event for", tag)
end

function T.pass(name, wd)
    if wd then sys.timerStop(wd) end
    log.info("test", "PASS", name)
end

return T
