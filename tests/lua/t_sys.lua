-- The sys scheduler alone: tasks, wait, waitUntil with and without timeout,
-- publish/subscribe/unsubscribe, timers (one-shot with arguments, loop,
-- stop by id and by function, isActive), and log.
local T = require("common")

local got = {}
local function on_news(a, b) got[#got + 1] = a .. b end

sys.taskInit(function(x, y)
    local wd = T.watchdog(10000)
    T.eq(x + y, 3, "taskInit passes its arguments")

    local t0 = mqtt._now()
    sys.wait(100)
    local dt = mqtt._now() - t0
    T.check(dt >= 95 and dt < 1000, "sys.wait(100) took", dt)

    -- waitUntil: a timeout returns false
    t0 = mqtt._now()
    T.eq(sys.waitUntil("nobody", 50), false, "waitUntil timeout")
    T.check(mqtt._now() - t0 >= 45, "waitUntil waited")

    -- waitUntil: a message returns true and its arguments (nil kept)
    sys.timerStart(sys.publish, 20, "news", "a", nil, 3)
    local r = table.pack(sys.waitUntil("news", 1000))
    T.eq(r.n, 4, "waitUntil returns true + all arguments")
    T.check(r[1] == true and r[2] == "a" and r[3] == nil and r[4] == 3, "waitUntil values")

    -- subscribe / unsubscribe with a function
    sys.subscribe("news2", on_news)
    sys.subscribe("news2", on_news) -- once only
    sys.publish("news2", "x", "y")
    sys.wait(10)
    T.eq(#got, 1, "subscriber called once")
    T.eq(got[1], "xy", "subscriber arguments")
    sys.unsubscribe("news2", on_news)
    sys.publish("news2", "x", "z")
    sys.wait(10)
    T.eq(#got, 1, "unsubscribed")

    -- timers
    local fired = {}
    local id = sys.timerStart(function(a) fired.once = a end, 30, "arg")
    T.check(math.type(id) == "integer", "timerStart id")
    T.eq(sys.timerIsActive(id), true, "timer active")
    local n = 0
    local loop = sys.timerLoopStart(function() n = n + 1 end, 20)
    local stopped = sys.timerStart(function() fired.stopped = true end, 10)
    sys.timerStop(stopped)
    T.eq(sys.timerIsActive(stopped), false, "stopped timer inactive")
    local function byfn() fired.byfn = true end
    sys.timerStart(byfn, 10)
    sys.timerStop(byfn)
    sys.wait(150)
    T.eq(fired.once, "arg", "one-shot timer with argument")
    T.eq(sys.timerIsActive(id), false, "one-shot timer done")
    T.check(fired.stopped == nil and fired.byfn == nil, "stopped timers did not fire")
    T.check(n >= 3, "loop timer fired", n)
    T.eq(sys.timerIsActive(loop), true, "loop timer active")
    sys.timerStop(loop)
    T.eq(sys.timerIsActive(loop), false, "loop timer stopped")

    -- two tasks talking
    sys.taskInit(function()
        local ok, v = sys.waitUntil("ping", 1000)
        sys.publish("pong", ok and v + 1)
    end)
    sys.publish("ping", 41)
    local ok, v = sys.waitUntil("pong", 1000)
    T.check(ok and v == 42, "tasks exchange messages", v)

    -- errors
    log.info("sys", "log", "line", 1, true, nil)
    log.warn("sys", "warn")
    log.error("sys", "error")
    log.debug("sys", "debug")
    T.pass("sys", wd)
end, 1, 2)

T.check(not pcall(sys.wait, 10), "sys.wait outside a task raises")
sys.run()
