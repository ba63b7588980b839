-- sys.exit(code) ends sys.run(); the runner exits with that code. `arg`.
assert(arg[0]:match("t_exit%.lua$"), "arg[0] is the script")
assert(arg[1] == "extra-arg" and select(1, ...) == "extra-arg", "script arguments")
sys.timerLoopStart(function() end, 1000) -- would keep sys.run going
sys.taskInit(function()
    sys.wait(10)
    sys.exit(7)
end)
sys.run()
