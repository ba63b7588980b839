-- LuatOS-compatible `log` for mqttc: log.info(tag, ...) prints
-- "[info] tag arg1 arg2 ..." to stdout (values through tostring).
-- log.setLevel("DEBUG"/"INFO"/"WARN"/"ERROR") hides the levels below it.
local log = {}

local order = {debug = 1, info = 2, warn = 3, error = 4}
local threshold = 1

local function emit(level)
    return function(tag, ...)
        if order[level] < threshold then return end
        local parts = {"[" .. level .. "]", tostring(tag)}
        for i = 1, select("#", ...) do
            parts[#parts + 1] = tostring((select(i, ...)))
        end
        io.stdout:write(table.concat(parts, " "), "\n")
        io.stdout:flush()
    end
end

log.debug = emit("debug")
log.info = emit("info")
log.warn = emit("warn")
log.error = emit("error")

log.LOG_DEBUG, log.LOG_INFO, log.LOG_WARN, log.LOG_ERROR = 1, 2, 3, 4

function log.setLevel(level)
    if type(level) == "string" then
        threshold = order[level:lower()] or threshold
    elseif math.tointeger(level) then
        threshold = level
    end
end

return log
