-- A device-style script that never ends: the runner's --exit-after stops it.
-- Prints PASS on its first tick, so the caller knows it ran.
local ticks = 0
sys.taskInit(function()
    while true do
        sys.wait(50)
        ticks = ticks + 1
        if ticks == 1 then log.info("test", "PASS", "forever loop is running") end
    end
end)
sys.timerLoopStart(function() end, 1000)
sys.run()
