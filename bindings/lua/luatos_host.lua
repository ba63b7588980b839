-- Host shims for LuatOS device modules (docs/LUATOS.md, "Host shims").
--
-- Loaded by mqttc-lua after mqtt, sys and log, so that scripts written for a
-- LuatOS device run on a PC without an edit. Each shim is defined only when
-- the name is still free, and does the least that lets a script go on: it
-- reports a fixed host identity, it touches no hardware.
--
--   rtos.bsp()            "PC" (the name the LuatOS PC simulator reports)
--   rtos.version()        "V0000-mqttc"
--   rtos.meminfo(kind)    Lua heap in bytes: total, used, max used
--   mcu.unique_id()       the fixed 8 bytes "MQTTCLUA" (hex 4D515454434C5541)
--   mobile.imei()         the fixed test IMEI "860000000000000"
--   string.toHex(s[, sep]) upper-case hex and its length, as LuatOS
--   string.fromHex(hex)   the bytes back
--   string.startsWith(s, prefix) / string.endsWith(s, suffix)
--   require("sysplus")    a module table; sysplus's extras are not provided
--   sys.publish("IP_READY", "127.0.0.1") once, as the device's network
--                         layer does when it gets an address
local sys = require("sys")

local function define(name, value)
    if rawget(_G, name) == nil then
        rawset(_G, name, value)
    end
end

local max_used = 0

define("rtos", {
    bsp = function() return "PC" end,
    version = function() return "V0000-mqttc" end,
    meminfo = function()
        local used = math.floor(collectgarbage("count") * 1024)
        if used > max_used then max_used = used end
        return used, used, max_used
    end,
})

define("mcu", {
    unique_id = function() return "MQTTCLUA" end,
})

define("mobile", {
    imei = function() return "860000000000000" end,
})

if string.toHex == nil then
    function string.toHex(s, sep)
        sep = sep or ""
        local hex = s:gsub(".", function(c) return string.format("%02X", c:byte()) .. sep end)
        return hex, #hex
    end
end

if string.fromHex == nil then
    function string.fromHex(hex)
        return (hex:gsub("[^%x]", ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
    end
end

if string.startsWith == nil then
    function string.startsWith(s, prefix)
        return s:sub(1, #prefix) == prefix
    end
end

if string.endsWith == nil then
    function string.endsWith(s, suffix)
        return suffix == "" or s:sub(-#suffix) == suffix
    end
end

if package.loaded.sysplus == nil and package.preload.sysplus == nil then
    package.preload.sysplus = function() return {} end
end

sys.publish("IP_READY", "127.0.0.1")

return true
