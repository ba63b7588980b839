/* mqttc-lua: run a LuatOS-style script on a PC.
 *
 * Usage: mqttc-lua [--broker HOST:PORT] [--exit-after SECONDS] [--no-shims]
 *                  script.lua [args...]
 *
 * --broker HOST:PORT   every mqtt.create() connects there instead of the
 *                      script's host and port (sets MQTTC_LUA_BROKER, which
 *                      also works on its own)
 * --exit-after SECONDS sys.run() stops after that long (for scripts that
 *                      loop forever, as device scripts do)
 * --no-shims           do not load the host shims for device modules
 *                      (rtos, mcu, mobile, sysplus, string.toHex, ...)
 *
 * The script runs with the standard libraries and `mqtt`, `sys` and `log`
 * loaded as globals (as on the device; `require` finds them too), and the
 * host shims of luatos_host.lua (docs/LUATOS.md). `arg`
 * holds the arguments as in lua5.4. When the script returns without having
 * run the scheduler, sys.run() is called for it, as LuatOS does after
 * main.lua. The exit status is sys.run()'s code (sys.exit(code)), or 1 when
 * the script raised an error.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lmqtt.h"
#include "lua_embedded.h"

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    luaL_traceback(L, L, msg != NULL ? msg : "(error object is not a string)", 1);
    return 1;
}

static int docall(lua_State *L, int nargs, int nres)
{
    int base = lua_gettop(L) - nargs, rc;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    rc = lua_pcall(L, nargs, nres, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        fprintf(stderr, "mqttc-lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    return rc;
}

/* Load an embedded module, store it in package.loaded and, with `global`,
 * as a global. */
static int load_embedded(lua_State *L, const char *name, const unsigned char *src, size_t len,
                         int global)
{
    char chunk[64];
    snprintf(chunk, sizeof chunk, "=%s.lua", name);
    if (luaL_loadbufferx(L, (const char *)src, len, chunk, "t") != LUA_OK) {
        fprintf(stderr, "mqttc-lua: %s\n", lua_tostring(L, -1));
        return -1;
    }
    lua_pushstring(L, name);
    if (docall(L, 1, 1) != LUA_OK) {
        return -1;
    }
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
    if (global) {
        lua_setglobal(L, name);
    } else {
        lua_pop(L, 1);
    }
    return 0;
}

struct options {
    double exit_after; /* seconds; < 0: none */
    int shims;
};

static int run(lua_State *L, int argc, char **argv, const struct options *o)
{
    int i;
    luaL_openlibs(L);
    luaL_requiref(L, "mqtt", luaopen_mqtt, 1);
    lua_pop(L, 1);
    if (load_embedded(L, "log", mqttc_log_lua, sizeof mqttc_log_lua, 1) != 0 ||
        load_embedded(L, "sys", mqttc_sys_lua, sizeof mqttc_sys_lua, 1) != 0) {
        return 1;
    }
    if (o->shims && load_embedded(L, "luatos_host", mqttc_luatos_host_lua,
                                  sizeof mqttc_luatos_host_lua, 0) != 0) {
        return 1;
    }
    if (o->exit_after >= 0) {
        lua_getglobal(L, "sys");
        lua_getfield(L, -1, "_deadline");
        lua_remove(L, -2);
        lua_pushinteger(L, (lua_Integer)(o->exit_after * 1000.0));
        if (docall(L, 1, 0) != LUA_OK) {
            return 1;
        }
    }
    lua_createtable(L, argc, 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, argv[1]) != LUA_OK) {
        fprintf(stderr, "mqttc-lua: %s\n", lua_tostring(L, -1));
        return 1;
    }
    for (i = 2; i < argc; i++) {
        lua_pushstring(L, argv[i]);
    }
    if (docall(L, argc - 2, 0) != LUA_OK) {
        return 1;
    }
    /* LuatOS runs the scheduler after main.lua; sys.run() returns at once
     * (code 0 or the exit code) when the script ran it already. */
    lua_getglobal(L, "sys");
    lua_getfield(L, -1, "run");
    lua_remove(L, -2);
    if (docall(L, 0, 1) != LUA_OK) {
        return 1;
    }
    return (int)lua_tointeger(L, -1);
}

static int usage(void)
{
    fprintf(stderr, "usage: mqttc-lua [--broker HOST:PORT] [--exit-after SECONDS] [--no-shims] "
                    "script.lua [args...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    lua_State *L;
    int rc;
    struct options o = {-1.0, 1};
    /* Options come before the script; everything after it is the script's. */
    while (argc > 1 && strncmp(argv[1], "--", 2) == 0) {
        if (strcmp(argv[1], "--") == 0) {
            argv++;
            argc--;
            break;
        } else if (strcmp(argv[1], "--no-shims") == 0) {
            o.shims = 0;
        } else if (strcmp(argv[1], "--broker") == 0 && argc > 2) {
            if (setenv("MQTTC_LUA_BROKER", argv[2], 1) != 0) {
                perror("mqttc-lua: setenv");
                return 1;
            }
            argv++;
            argc--;
        } else if (strcmp(argv[1], "--exit-after") == 0 && argc > 2) {
            char *end;
            o.exit_after = strtod(argv[2], &end);
            if (end == argv[2] || *end != '\0' || !(o.exit_after >= 0.0) ||
                o.exit_after > 1e9) {
                fprintf(stderr, "mqttc-lua: --exit-after wants seconds >= 0\n");
                return 2;
            }
            argv++;
            argc--;
        } else {
            return usage();
        }
        argv++;
        argc--;
    }
    if (argc < 2) {
        return usage();
    }
    L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "mqttc-lua: out of memory\n");
        return 1;
    }
    rc = run(L, argc, argv, &o);
    lua_close(L);
    return rc;
}
