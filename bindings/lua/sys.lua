-- LuatOS-compatible `sys` scheduler for mqttc (docs/LUATOS.md).
--
-- Coroutine tasks, timers and a message bus, plus the driver of every live
-- mqtt client: sys.run() waits in mqtt._poll() until the next timer is due,
-- so client callbacks run here, between tasks, never on another thread.
--
-- sys.run() returns when no task, timer, pending message or connecting /
-- connected / reconnecting mqtt client is left (tasks blocked forever on a
-- topic nobody can publish any more are reported and abandoned), or after
-- sys.exit(code) — an extension of this port for tests. It returns the exit
-- code (0 unless sys.exit gave one or a task raised an error, then 1).
local mqtt = require("mqtt")

local sys = {}

local now = mqtt._now
local tasks = {}        -- coroutine -> true while alive
local ntasks = 0
local timers = {}       -- id -> {at=, ms=, fn=, args=, n=, loop=}
local ntimers = 0
local next_id = 0
local subs = {}         -- topic -> list of functions / coroutines
local queue = {}        -- pending {topic, n, ...}
local qhead, qtail = 1, 0
local exiting, exit_code = false, 0
local deadline          -- mqtt._now() value at which sys.run() stops (runner's --exit-after)

local function report(co, err)
    io.stderr:write("[error] sys task: ", debug.traceback(co, tostring(err)), "\n")
    exiting, exit_code = true, 1
end

local function resume(co, ...)
    local ok, err = coroutine.resume(co, ...)
    if not ok then
        report(co, err)
    end
    if coroutine.status(co) == "dead" and tasks[co] then
        tasks[co] = nil
        ntasks = ntasks - 1
    end
end

local function add_timer(fn, ms, loop, ...)
    assert(type(fn) == "function" or type(fn) == "thread", "sys timer: function expected")
    ms = math.tointeger(ms) or error("sys timer: milliseconds expected", 3)
    if ms < 0 then ms = 0 end
    next_id = next_id + 1
    timers[next_id] = {at = now() + ms, ms = ms, fn = fn, args = table.pack(...), loop = loop}
    ntimers = ntimers + 1
    return next_id
end

local function del_timer(id)
    if timers[id] then
        timers[id] = nil
        ntimers = ntimers - 1
    end
end

--- Start a task: fn(...) runs at once as a coroutine until its first wait.
function sys.taskInit(fn, ...)
    assert(type(fn) == "function", "sys.taskInit: function expected")
    local co = coroutine.create(fn)
    tasks[co] = true
    ntasks = ntasks + 1
    resume(co, ...)
    return co
end

local function running_task(name)
    local co, main = coroutine.running()
    if main or not tasks[co] then
        error(name .. " must be called inside a sys.taskInit task", 3)
    end
    return co
end

--- Suspend the calling task for ms milliseconds.
function sys.wait(ms)
    local co = running_task("sys.wait")
    add_timer(co, ms or 0, false)
    coroutine.yield()
end

local function unsubscribe(topic, fn)
    local list = subs[topic]
    if not list then return end
    for i = #list, 1, -1 do
        if list[i] == fn then table.remove(list, i) end
    end
    if #list == 0 then subs[topic] = nil end
end

--- Wait for sys.publish(topic, ...): returns true, ... or false on timeout.
function sys.waitUntil(topic, timeout)
    local co = running_task("sys.waitUntil")
    subs[topic] = subs[topic] or {}
    table.insert(subs[topic], co)
    local id = timeout and add_timer(co, timeout, false, "__sys_timeout__")
    local r = table.pack(coroutine.yield())
    unsubscribe(topic, co)
    if r[1] == "__sys_timeout__" then
        return false
    end
    if id then del_timer(id) end
    return true, table.unpack(r, 1, r.n)
end

--- Queue a message for subscribers and tasks waiting on topic.
function sys.publish(topic, ...)
    qtail = qtail + 1
    queue[qtail] = table.pack(topic, ...)
end

function sys.subscribe(topic, fn)
    assert(type(fn) == "function" or type(fn) == "thread", "sys.subscribe: function expected")
    subs[topic] = subs[topic] or {}
    for _, f in ipairs(subs[topic]) do
        if f == fn then return end
    end
    table.insert(subs[topic], fn)
end

function sys.unsubscribe(topic, fn)
    unsubscribe(topic, fn)
end

function sys.timerStart(fn, ms, ...)
    return add_timer(fn, ms, false, ...)
end

function sys.timerLoopStart(fn, ms, ...)
    return add_timer(fn, ms, true, ...)
end

--- Stop a timer by id, or every timer of function fn.
function sys.timerStop(id)
    if type(id) == "function" then
        for k, t in pairs(timers) do
            if t.fn == id then del_timer(k) end
        end
    elseif id then
        del_timer(id)
    end
end

function sys.timerIsActive(id)
    return timers[id] ~= nil
end

--- Extension: stop sys.run() with an exit code (the runner exits with it).
function sys.exit(code)
    exiting = true
    exit_code = math.tointeger(code) or (code == false and 1 or 0)
end

local function call(fn, ...)
    if type(fn) == "thread" then
        if coroutine.status(fn) == "suspended" then resume(fn, ...) end
        return
    end
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then
        io.stderr:write("[error] sys callback: ", tostring(err), "\n")
        exiting, exit_code = true, 1
    end
end

local function dispatch_messages()
    while qhead <= qtail and not exiting do
        local m = queue[qhead]
        queue[qhead] = nil
        qhead = qhead + 1
        local list = subs[m[1]]
        if list then
            local copy = table.move(list, 1, #list, 1, {})
            for _, fn in ipairs(copy) do
                if type(fn) == "thread" then unsubscribe(m[1], fn) end
                call(fn, table.unpack(m, 2, m.n))
                if exiting then break end
            end
        end
    end
end

local function run_timers()
    local t = now()
    local due = {}
    for id, tm in pairs(timers) do
        if tm.at <= t then due[#due + 1] = id end
    end
    table.sort(due, function(a, b) return timers[a].at < timers[b].at or
        (timers[a].at == timers[b].at and a < b) end)
    for _, id in ipairs(due) do
        local tm = timers[id]
        if tm and not exiting then
            if tm.loop then
                tm.at = t + math.max(tm.ms, 1)
            else
                del_timer(id)
            end
            call(tm.fn, table.unpack(tm.args, 1, tm.args.n))
        end
    end
end

local function next_wait()
    if qhead <= qtail then return 0 end
    local soonest
    for _, tm in pairs(timers) do
        if not soonest or tm.at < soonest then soonest = tm.at end
    end
    if deadline and (not soonest or deadline < soonest) then soonest = deadline end
    if not soonest then return 1000 end
    return math.max(0, soonest - now())
end

--- Run tasks, timers, messages and mqtt clients until nothing is left.
function sys.run()
    local clients = mqtt._poll(0)
    while not exiting do
        dispatch_messages()
        run_timers()
        dispatch_messages()
        if exiting then break end
        if deadline and now() >= deadline then
            io.stderr:write("[info] sys.run: time limit reached, stopping\n")
            exiting = true
            break
        end
        if ntimers == 0 and qhead > qtail and clients == 0 then
            if ntasks > 0 then
                io.stderr:write("[warn] sys.run: ", ntasks,
                    " task(s) waiting on topics nobody can publish; stopping\n")
            end
            break
        end
        clients = mqtt._poll(next_wait())
    end
    return exit_code
end

-- Internal state for the mqttc-lua runner.
function sys._exit_code() return exit_code end

-- Runner hook (--exit-after): sys.run() stops ms milliseconds from now, with
-- the exit code it has then (0 unless sys.exit or an error set one).
function sys._deadline(ms)
    deadline = now() + ms
end

return sys
