-- A script without sys.run(): the runner runs the scheduler for it (as
-- LuatOS does after main.lua), and it ends when the tasks are done.
local T = require("common")
sys.taskInit(function()
    local c = T.client("i", T.port)
    c:auth("lua-implicit")
    c:connect()
    T.expect("i", "conack")
    c:subscribe("lua/implicit", 1)
    T.expect("i", "suback")
    c:publish("lua/implicit", "hi", 1)
    local _, payload = T.expect("i", "recv")
    T.eq(payload, "hi", "payload")
    c:disconnect()
    T.expect("i", "disconnect")
    log.info("test", "PASS", "implicit run")
    -- the client is disconnected (not closed): sys.run still returns
end)
