/* The LuatOS `mqtt` module on top of mqttc (docs/LUATOS.md).
 *
 * Each Lua client object holds its settings until connect(), which creates
 * the native client in MQTTC_RUN_CALLER mode: nothing runs on another
 * thread, and events reach the on() callback only from mqtt._poll(), which
 * the `sys` scheduler calls from sys.run(). Strings for the configuration
 * live in the object's settings table (user value 2); the callback is user
 * value 1. A created native client is also kept in a registry table so that
 * _poll() can find every live client and so that a client stays alive while
 * it is connected even when the script dropped its last reference.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "mqttc/client.h"
#include "lmqtt.h"

#define LMQTT_META "mqttc.luatos.client"
#define LMQTT_CLIENTS "mqttc.luatos.clients" /* registry: lightuserdata -> client */
#define LMQTT_MAX_POLL 256

enum { UV_CALLBACK = 1, UV_SETTINGS = 2 };

typedef struct lmqtt {
    mqttc_client *c;    /* NULL until connect(), and after close() */
    lua_State *L;       /* the state running _poll() while callbacks may run */
    bool closed;
    bool dirty;         /* settings changed since the native client was made */
    bool failed;        /* last attempt/connection ended in an error */
    bool debug;
    bool tls;
    bool clean_session;
    bool will_retain;
    bool auto_reconnect;
    int tls_verify;     /* mqttc_tls_verify */
    int will_qos;
    uint16_t port;
    uint16_t keepalive;
    uint32_t reconnect_ms;
    size_t rx_size;
} lmqtt;

/* ---- helpers ------------------------------------------------------------ */

static lmqtt *check_client(lua_State *L)
{
    return luaL_checkudata(L, 1, LMQTT_META);
}

static lmqtt *check_open(lua_State *L)
{
    lmqtt *m = check_client(L);
    if (m->closed) {
        luaL_error(L, "mqtt client is closed");
    }
    return m;
}

/* Store the value at stack top under `key` in the settings table; pops it. */
static void set_setting(lua_State *L, int obj, const char *key)
{
    lua_getiuservalue(L, obj, UV_SETTINGS);
    lua_insert(L, -2);
    lua_setfield(L, -2, key);
    lua_pop(L, 1);
}

/* Push the setting `key` as a string or NULL; the string stays on the stack. */
static const char *get_setting(lua_State *L, int settings, const char *key, size_t *len)
{
    lua_getfield(L, settings, key);
    if (lua_type(L, -1) != LUA_TSTRING) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    return lua_tolstring(L, -1, len);
}

/* An optional flag given as boolean or 0/1 (the seed uses both). */
static bool opt_flag(lua_State *L, int arg, bool def)
{
    if (lua_isnoneornil(L, arg)) {
        return def;
    }
    if (lua_isboolean(L, arg)) {
        return lua_toboolean(L, arg);
    }
    return luaL_checkinteger(L, arg) != 0;
}

static int opt_qos(lua_State *L, int arg)
{
    lua_Integer q = luaL_optinteger(L, arg, 0);
    luaL_argcheck(L, q >= 0 && q <= 2, arg, "QoS must be 0, 1 or 2");
    return (int)q;
}

static void push_client(lua_State *L, lmqtt *m)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LMQTT_CLIENTS);
    lua_rawgetp(L, -1, m);
    lua_remove(L, -2);
}

static void track(lua_State *L, int obj, lmqtt *m, bool on)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LMQTT_CLIENTS);
    if (on) {
        lua_pushvalue(L, obj);
    } else {
        lua_pushnil(L);
    }
    lua_rawsetp(L, -2, m);
    lua_pop(L, 1);
}

/* ---- events --------------------------------------------------------------- */

static void push_suback(lua_State *L, const mqttc_client_event *ev)
{
    bool ok = true;
    int first = ev->u.subscribed.count > 0 ? ev->u.subscribed.granted[0] : 0x80;
    size_t i;
    for (i = 0; i < ev->u.subscribed.count; i++) {
        if (ev->u.subscribed.granted[i] == 0x80) {
            if (ok) {
                first = 0x80;
            }
            ok = false;
        }
    }
    lua_pushboolean(L, ok);
    lua_pushinteger(L, first);
    lua_createtable(L, 0, 2); /* extension: every code, and the message id */
    lua_pushinteger(L, ev->u.subscribed.msg_id);
    lua_setfield(L, -2, "message_id");
    lua_createtable(L, (int)ev->u.subscribed.count, 0);
    for (i = 0; i < ev->u.subscribed.count; i++) {
        lua_pushinteger(L, ev->u.subscribed.granted[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "granted");
}

static void push_recv(lua_State *L, const mqttc_client_event *ev)
{
    lua_pushlstring(L, ev->u.message.topic, ev->u.message.topic_len);
    lua_pushlstring(L, (const char *)ev->u.message.payload, ev->u.message.payload_len);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, ev->u.message.msg_id);
    lua_setfield(L, -2, "message_id");
    lua_pushinteger(L, ev->u.message.qos);
    lua_setfield(L, -2, "qos");
    lua_pushinteger(L, ev->u.message.retain ? 1 : 0);
    lua_setfield(L, -2, "retain");
    lua_pushinteger(L, ev->u.message.dup ? 1 : 0);
    lua_setfield(L, -2, "dup");
}

static const char *error_kind_name(mqttc_error_kind kind)
{
    switch (kind) {
    case MQTTC_ERRKIND_CONNECT:
        return "connect";
    case MQTTC_ERRKIND_CONNACK:
        return "conack";
    case MQTTC_ERRKIND_TRANSPORT:
        return "tx";
    default:
        return "other";
    }
}

/* Push event name and its arguments; returns how many arguments follow the
 * name, or -1 for an event not passed to Lua. */
static int push_event(lua_State *L, lmqtt *m, const mqttc_client_event *ev)
{
    switch (ev->type) {
    case MQTTC_CLIENT_EV_CONNECTED:
        m->failed = false;
        lua_pushliteral(L, "conack");
        return 0;
    case MQTTC_CLIENT_EV_DISCONNECTED:
        lua_pushliteral(L, "disconnect");
        return 0;
    case MQTTC_CLIENT_EV_SUBSCRIBED:
        lua_pushliteral(L, "suback");
        push_suback(L, ev);
        return 3;
    case MQTTC_CLIENT_EV_UNSUBSCRIBED:
        lua_pushliteral(L, "unsuback");
        lua_pushinteger(L, ev->u.unsubscribed.msg_id);
        return 1;
    case MQTTC_CLIENT_EV_MESSAGE:
        lua_pushliteral(L, "recv");
        push_recv(L, ev);
        return 3;
    case MQTTC_CLIENT_EV_PUBLISHED:
        lua_pushliteral(L, "sent");
        lua_pushinteger(L, ev->u.published.msg_id);
        return 1;
    case MQTTC_CLIENT_EV_DROPPED:
        lua_pushliteral(L, "dropped");
        lua_pushinteger(L, ev->u.dropped.msg_id);
        lua_pushinteger(L, ev->u.dropped.reason);
        return 2;
    case MQTTC_CLIENT_EV_PONG:
        lua_pushliteral(L, "pong");
        return 0;
    case MQTTC_CLIENT_EV_ERROR:
        m->failed = true;
        lua_pushstring(L, error_kind_name(ev->u.error.kind));
        lua_pushinteger(L, ev->u.error.kind == MQTTC_ERRKIND_CONNACK
                               ? (lua_Integer)ev->u.error.connack_code
                               : (lua_Integer)ev->u.error.code);
        lua_pushliteral(L, "error");
        lua_insert(L, -3);
        return 2;
    }
    return -1;
}

/* Runs inside mqttc_client_process(), called from _poll() on m->L's thread.
 * The Lua callback runs under lua_pcall so an error cannot unwind through
 * the native client. */
static void on_event(mqttc_client *c, const mqttc_client_event *ev, void *user)
{
    lmqtt *m = user;
    lua_State *L = m->L;
    int top, n;
    (void)c;
    if (L == NULL || m->closed) {
        return;
    }
    top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) {
        return;
    }
    push_client(L, m);
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return;
    }
    lua_getiuservalue(L, -1, UV_CALLBACK);
    lua_insert(L, -2); /* callback, client */
    n = push_event(L, m, ev);
    if (n < 0 || !lua_isfunction(L, top + 1)) {
        lua_settop(L, top);
        return;
    }
    if (lua_pcall(L, n + 2, 0, 0) != LUA_OK) {
        fprintf(stderr, "[error] mqtt callback: %s\n", luaL_tolstring(L, -1, NULL));
    }
    lua_settop(L, top);
}

static void on_log(mqttc_log_level level, const char *msg, void *user)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    (void)user;
    fprintf(stderr, "[%s] mqttc %s\n", names[(int)level & 3], msg);
}

/* ---- mqtt.create ---------------------------------------------------------- */

static void read_ssl_table(lua_State *L, int obj, lmqtt *m)
{
    static const char *const keys[][2] = {{"server_cert", "ca"},
                                          {"client_cert", "cert"},
                                          {"client_key", "key"},
                                          {"client_password", "key_password"}};
    size_t i;
    for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int t = lua_getfield(L, 4, keys[i][0]);
        if (t != LUA_TNIL) {
            luaL_argcheck(L, t == LUA_TSTRING, 4, "certificate fields must be strings");
            set_setting(L, obj, keys[i][1]);
        } else {
            lua_pop(L, 1);
        }
    }
    lua_getfield(L, 4, "verify");
    if (!lua_isnil(L, -1)) {
        int isnum;
        lua_Integer v = lua_tointegerx(L, -1, &isnum);
        luaL_argcheck(L, isnum && v >= 0 && v <= 2, 4, "verify must be 0, 1 or 2");
        m->tls_verify = v == 0 ? MQTTC_TLS_VERIFY_NONE
                        : v == 1 ? MQTTC_TLS_VERIFY_OPTIONAL
                                 : MQTTC_TLS_VERIFY_REQUIRED;
    }
    lua_pop(L, 1);
}

static void read_opts(lua_State *L, lmqtt *m, bool *ipv6)
{
    if (lua_isboolean(L, 5)) {
        *ipv6 = lua_toboolean(L, 5);
    } else if (lua_istable(L, 5)) {
        lua_getfield(L, 5, "ipv6");
        *ipv6 = lua_toboolean(L, -1);
        lua_getfield(L, 5, "rxSize");
        if (!lua_isnil(L, -1)) {
            int isnum;
            lua_Integer v = lua_tointegerx(L, -1, &isnum);
            luaL_argcheck(L, isnum && v > 0 && v <= 64 * 1024 * 1024, 5,
                          "rxSize must be 1..67108864");
            m->rx_size = (size_t)v;
        }
        lua_pop(L, 2);
    } else {
        luaL_argcheck(L, lua_isnoneornil(L, 5), 5, "expected boolean or table");
    }
}

/* MQTTC_LUA_BROKER=host:port (or [v6]:port) sends every mqtt.create() to
 * that broker instead of the script's own host and port, so that a script
 * written for a public broker runs unedited against a local one
 * (docs/LUATOS.md). Pushes the host and returns the port; 0 when unset. */
static lua_Integer broker_redirect(lua_State *L)
{
    const char *env = getenv("MQTTC_LUA_BROKER");
    const char *colon, *host, *end;
    char *stop;
    long port;
    if (env == NULL || env[0] == '\0') {
        return 0;
    }
    colon = strrchr(env, ':');
    if (colon == NULL) {
        return luaL_error(L, "MQTTC_LUA_BROKER='%s': expected host:port", env);
    }
    port = strtol(colon + 1, &stop, 10);
    if (colon[1] == '\0' || *stop != '\0' || port <= 0 || port > 65535) {
        return luaL_error(L, "MQTTC_LUA_BROKER='%s': port must be 1..65535", env);
    }
    host = env;
    end = colon;
    if (host[0] == '[' && end > host + 1 && end[-1] == ']') {
        host++;
        end--;
    }
    if (end == host) {
        return luaL_error(L, "MQTTC_LUA_BROKER='%s': empty host", env);
    }
    lua_pushlstring(L, host, (size_t)(end - host));
    return (lua_Integer)port;
}

static int l_create(lua_State *L)
{
    const char *host = luaL_checkstring(L, 2);
    lua_Integer port = luaL_checkinteger(L, 3);
    bool ipv6 = false;
    lmqtt *m;
    int obj;
    lua_settop(L, 5); /* the object goes above the five arguments */
    luaL_argcheck(L, host[0] != '\0', 2, "empty host");
    luaL_argcheck(L, port > 0 && port <= 65535, 3, "port must be 1..65535");
    luaL_argcheck(L, lua_isnoneornil(L, 4) || lua_isboolean(L, 4) || lua_istable(L, 4), 4,
                  "expected boolean or table");
    m = lua_newuserdatauv(L, sizeof *m, 2);
    obj = lua_gettop(L);
    memset(m, 0, sizeof *m);
    m->port = (uint16_t)port;
    m->keepalive = 240;
    m->clean_session = true;
    m->reconnect_ms = 3000;
    m->tls_verify = MQTTC_TLS_VERIFY_REQUIRED;
    luaL_setmetatable(L, LMQTT_META);
    lua_newtable(L);
    lua_setiuservalue(L, obj, UV_SETTINGS);
    lua_pushvalue(L, 2);
    set_setting(L, obj, "host");
    if (lua_toboolean(L, 4)) {
        m->tls = true;
        if (lua_istable(L, 4)) {
            read_ssl_table(L, obj, m);
        } else {
            m->tls_verify = MQTTC_TLS_VERIFY_NONE;
        }
    }
    read_opts(L, m, &ipv6);
    (void)ipv6; /* the resolver picks the address family from the host */
    port = broker_redirect(L);
    if (port != 0) {
        fprintf(stderr, "[info] mqtt.create: %s:%u redirected to %s:%lld (MQTTC_LUA_BROKER)\n",
                host, (unsigned)m->port, lua_tostring(L, -1), (long long)port);
        fflush(stderr);
        set_setting(L, obj, "host");
        m->port = (uint16_t)port;
    }
    lua_pushvalue(L, obj);
    return 1;
}

/* ---- settings ------------------------------------------------------------- */

static int l_auth(lua_State *L)
{
    lmqtt *m = check_open(L);
    int i;
    static const char *const keys[] = {"client_id", "username", "password"};
    for (i = 0; i < 3; i++) {
        if (!lua_isnoneornil(L, i + 2)) {
            luaL_checkstring(L, i + 2);
        }
    }
    for (i = 0; i < 3; i++) {
        /* An empty string means "none", as on the device. */
        if (lua_isstring(L, i + 2) && lua_rawlen(L, i + 2) > 0) {
            lua_pushvalue(L, i + 2);
        } else {
            lua_pushnil(L);
        }
        set_setting(L, 1, keys[i]);
    }
    m->clean_session = opt_flag(L, 5, true);
    m->dirty = true;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_keepalive(lua_State *L)
{
    lmqtt *m = check_open(L);
    lua_Integer s = luaL_optinteger(L, 2, 240);
    m->keepalive = (uint16_t)(s < 15 ? 15 : s > 600 ? 600 : s);
    m->dirty = true;
    return 0;
}

static int l_will(lua_State *L)
{
    lmqtt *m = check_open(L);
    luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checkstring(L, 3);
    }
    m->will_qos = opt_qos(L, 4);
    m->will_retain = opt_flag(L, 5, false);
    if (m->c != NULL) {
        lua_pushboolean(L, 0); /* must come before connect() */
        return 1;
    }
    lua_pushvalue(L, 2);
    set_setting(L, 1, "will_topic");
    if (lua_isnoneornil(L, 3)) {
        lua_pushliteral(L, "");
    } else {
        lua_pushvalue(L, 3);
    }
    set_setting(L, 1, "will_payload");
    m->dirty = true;
    lua_pushboolean(L, 1);
    return 1;
}

static int l_autoreconn(lua_State *L)
{
    lmqtt *m = check_open(L);
    lua_Integer ms;
    m->auto_reconnect = opt_flag(L, 2, false);
    ms = luaL_optinteger(L, 3, 3000);
    luaL_argcheck(L, ms > 0 && ms <= INT_MAX, 3, "interval must be positive milliseconds");
    m->reconnect_ms = (uint32_t)ms;
    m->dirty = true;
    return 0;
}

static int l_on(lua_State *L)
{
    check_open(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, UV_CALLBACK);
    return 0;
}

static int l_debug(lua_State *L)
{
    lmqtt *m = check_open(L);
    m->debug = lua_toboolean(L, 2);
    if (m->c != NULL) {
        mqttc_client_set_debug(m->c, m->debug);
    }
    return 0;
}

/* ---- connect / disconnect / close ------------------------------------------ */

/* Build the configuration from the settings table (its strings stay on the
 * Lua stack until the caller pops them) and create the native client. */
static int make_client(lua_State *L, lmqtt *m)
{
    mqttc_client_config cfg;
    int settings, rc;
    const char *host;
    size_t plen = 0, wlen = 0;
    luaL_checkstack(L, 16, NULL);
    lua_getiuservalue(L, 1, UV_SETTINGS);
    settings = lua_gettop(L);
    mqttc_client_config_init(&cfg);
    host = get_setting(L, settings, "host", NULL);
    if (strchr(host, ':') != NULL) {
        lua_pushfstring(L, "%s://[%s]:%d", m->tls ? "mqtts" : "mqtt", host, (int)m->port);
    } else {
        lua_pushfstring(L, "%s://%s:%d", m->tls ? "mqtts" : "mqtt", host, (int)m->port);
    }
    cfg.uri = lua_tostring(L, -1);
    cfg.client_id = get_setting(L, settings, "client_id", NULL);
    cfg.username = get_setting(L, settings, "username", NULL);
    cfg.password = get_setting(L, settings, "password", &plen);
    cfg.password_len = plen;
    cfg.will_topic = get_setting(L, settings, "will_topic", NULL);
    cfg.will_payload = get_setting(L, settings, "will_payload", &wlen);
    cfg.will_payload_len = wlen;
    cfg.will_qos = (uint8_t)m->will_qos;
    cfg.will_retain = m->will_retain;
    cfg.keepalive = m->keepalive;
    cfg.clean_session = m->clean_session;
    if (m->rx_size > 0) {
        cfg.rx_buffer_size = m->rx_size;
    }
    cfg.auto_reconnect = m->auto_reconnect;
    cfg.reconnect_ms = m->reconnect_ms;
    cfg.reconnect_max_ms = 0;
    cfg.tls.ca = get_setting(L, settings, "ca", NULL);
    cfg.tls.cert = get_setting(L, settings, "cert", NULL);
    cfg.tls.key = get_setting(L, settings, "key", NULL);
    cfg.tls.key_password = get_setting(L, settings, "key_password", NULL);
    cfg.tls.verify = (mqttc_tls_verify)m->tls_verify;
    cfg.run_mode = MQTTC_RUN_CALLER;
    cfg.on_event = on_event;
    cfg.user = m;
    cfg.on_log = on_log;
    cfg.log_level = m->debug ? MQTTC_LOG_DEBUG : MQTTC_LOG_WARN;
    rc = mqttc_client_create(&cfg, &m->c);
    lua_settop(L, settings - 1);
    if (rc != 0) {
        m->c = NULL;
        fprintf(stderr, "[error] mqtt connect: %s\n", mqttc_strerror(rc));
        return rc;
    }
    m->dirty = false;
    track(L, 1, m, true);
    return 0;
}

static int l_connect(lua_State *L)
{
    lmqtt *m = check_open(L);
    if (m->c != NULL && m->dirty && mqttc_client_state_get(m->c) == MQTTC_CLIENT_IDLE) {
        mqttc_client_destroy(m->c); /* settings changed: make a new one */
        m->c = NULL;
        track(L, 1, m, false);
    }
    if (m->c == NULL && make_client(L, m) != 0) {
        lua_pushboolean(L, 0);
        return 1;
    }
    m->failed = false;
    lua_pushboolean(L, mqttc_client_connect(m->c) == 0);
    return 1;
}

static int l_disconnect(lua_State *L)
{
    lmqtt *m = check_open(L);
    lua_pushboolean(L, m->c != NULL && mqttc_client_disconnect(m->c) == 0);
    return 1;
}

static int l_close(lua_State *L)
{
    lmqtt *m = check_client(L);
    if (!m->closed) {
        m->closed = true;
        if (m->c != NULL) {
            mqttc_client_destroy(m->c);
            m->c = NULL;
        }
        track(L, 1, m, false);
    }
    return 0;
}

static int l_ready(lua_State *L)
{
    lmqtt *m = check_client(L);
    lua_pushboolean(L, m->c != NULL && mqttc_client_ready(m->c));
    return 1;
}

/* 0 disconnected (also while waiting to reconnect: LuatOS sets 0 when its
 * socket closes, and scripts reconnect on STATE_DISCONNECT), 1 connecting,
 * 2 handshake, 3 ready, 4 error (the last attempt failed, no reconnect). */
static int l_state(lua_State *L)
{
    lmqtt *m = check_client(L);
    int s = 0;
    if (m->c != NULL) {
        switch (mqttc_client_state_get(m->c)) {
        case MQTTC_CLIENT_IDLE:
            s = m->failed ? 4 : 0;
            break;
        case MQTTC_CLIENT_CONNECTING:
            s = 1;
            break;
        case MQTTC_CLIENT_HANDSHAKE:
            s = 2;
            break;
        case MQTTC_CLIENT_READY:
            s = 3;
            break;
        case MQTTC_CLIENT_WAITING:
            s = 0;
            break;
        }
    }
    lua_pushinteger(L, s);
    return 1;
}

/* ---- subscribe / unsubscribe / publish -------------------------------------- */

static void push_id(lua_State *L, int rc)
{
    if (rc < 0) {
        lua_pushnil(L);
    } else {
        lua_pushinteger(L, rc);
    }
}

static int l_subscribe(lua_State *L)
{
    lmqtt *m = check_open(L);
    mqttc_topic_qos *items;
    size_t n = 0, cap;
    if (!lua_istable(L, 2)) {
        const char *filter = luaL_checkstring(L, 2);
        int qos = opt_qos(L, 3);
        push_id(L, m->c ? mqttc_client_subscribe(m->c, filter, qos) : -1);
        return 1;
    }
    cap = (size_t)luaL_len(L, 2);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        cap++;
        lua_pop(L, 1);
    }
    luaL_argcheck(L, cap > 0, 2, "empty topic table");
    items = lua_newuserdatauv(L, cap * sizeof *items, 0); /* freed by the GC */
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        lua_Integer q = 0;
        int isnum = 1;
        if (lua_type(L, -2) == LUA_TSTRING) { /* {[topic] = qos} */
            q = lua_tointegerx(L, -1, &isnum);
            items[n].filter = lua_tostring(L, -2);
        } else { /* {topic, ...} with QoS 0 */
            luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "topics must be strings");
            items[n].filter = lua_tostring(L, -1);
        }
        luaL_argcheck(L, isnum && q >= 0 && q <= 2, 2, "QoS must be 0, 1 or 2");
        items[n++].qos = (int)q;
        lua_pop(L, 1);
    }
    push_id(L, m->c ? mqttc_client_subscribe_many(m->c, items, n) : -1);
    return 1;
}

static int l_unsubscribe(lua_State *L)
{
    lmqtt *m = check_open(L);
    const char **filters;
    size_t n, i;
    if (!lua_istable(L, 2)) {
        const char *filter = luaL_checkstring(L, 2);
        push_id(L, m->c ? mqttc_client_unsubscribe(m->c, filter) : -1);
        return 1;
    }
    n = (size_t)luaL_len(L, 2);
    luaL_argcheck(L, n > 0, 2, "empty topic list");
    filters = lua_newuserdatauv(L, n * sizeof *filters, 0);
    for (i = 0; i < n; i++) {
        lua_geti(L, 2, (lua_Integer)i + 1);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "topics must be strings");
        filters[i] = lua_tostring(L, -1); /* anchored by the table */
        lua_pop(L, 1);
    }
    push_id(L, m->c ? mqttc_client_unsubscribe_many(m->c, filters, n) : -1);
    return 1;
}

/* Returns the message id for QoS 1/2, 0 for QoS 0 (like the device, whose
 * QoS 0 "sent" event also carries 0 here), nil on failure. */
static int l_publish(lua_State *L)
{
    lmqtt *m = check_open(L);
    const char *topic = luaL_checkstring(L, 2);
    size_t len = 0;
    const char *data = "";
    int qos;
    bool retain;
    if (!lua_isnoneornil(L, 3)) {
        data = luaL_checklstring(L, 3, &len);
    }
    qos = opt_qos(L, 4);
    retain = opt_flag(L, 5, false);
    push_id(L, m->c ? mqttc_client_publish(m->c, topic, data, len, qos, retain) : -1);
    return 1;
}

static int l_tostring(lua_State *L)
{
    lmqtt *m = check_client(L);
    lua_pushfstring(L, "mqtt client (%p)%s", (void *)m, m->closed ? " closed" : "");
    return 1;
}

/* ---- the scheduler hook --------------------------------------------------- */

static bool active(mqttc_client *c)
{
    return mqttc_client_state_get(c) != MQTTC_CLIENT_IDLE;
}

/* mqtt._poll(timeout_ms): wait at most timeout_ms for any live client's
 * descriptor or deadline, then run every client's I/O and timers (their
 * callbacks run here). Returns the number of clients connecting, connected
 * or waiting to reconnect. */
static int l_poll(lua_State *L)
{
    lua_Integer timeout = luaL_optinteger(L, 1, 0);
    struct pollfd fds[LMQTT_MAX_POLL];
    lmqtt *ms[LMQTT_MAX_POLL];
    int n = 0, i, wait, base, count = 0;
    if (timeout < 0 || timeout > 60000) {
        timeout = timeout < 0 ? 0 : 60000;
    }
    wait = (int)timeout;
    lua_settop(L, 0);
    lua_getfield(L, LUA_REGISTRYINDEX, LMQTT_CLIENTS);
    base = lua_gettop(L);
    lua_newtable(L); /* anchors the clients polled, whatever callbacks do */
    lua_pushnil(L);
    while (lua_next(L, base) != 0) {
        lmqtt *m = lua_touserdata(L, -1);
        if (m != NULL && m->c != NULL && n < LMQTT_MAX_POLL) {
            int want = mqttc_client_want(m->c), t = mqttc_client_next_timeout(m->c);
            ms[n] = m;
            fds[n].fd = mqttc_client_fd(m->c);
            fds[n].events = (short)(((want & MQTTC_WANT_READ) ? POLLIN : 0) |
                                    ((want & MQTTC_WANT_WRITE) ? POLLOUT : 0));
            fds[n].revents = 0;
            if (t >= 0 && t < wait) {
                wait = t;
            }
            n++;
            lua_rawseti(L, base + 1, n);
        } else {
            lua_pop(L, 1);
        }
    }
    if (poll(fds, (nfds_t)n, wait) < 0 && errno != EINTR) {
        return luaL_error(L, "poll: %s", strerror(errno));
    }
    for (i = 0; i < n; i++) {
        lmqtt *m = ms[i];
        int ready = ((fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? MQTTC_WANT_READ : 0) |
                    ((fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) ? MQTTC_WANT_WRITE : 0);
        if (m->c == NULL) {
            continue; /* closed by an earlier callback */
        }
        m->L = L;
        mqttc_client_process(m->c, ready);
        if (m->c != NULL) {
            m->L = NULL;
            count += active(m->c);
        }
    }
    lua_pushinteger(L, count);
    return 1;
}

/* mqtt._now(): monotonic milliseconds, for the scheduler. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    return 1;
}

/* mqtt._sleep(ms): sleep without any client (sys.wait with no client). */
static int l_sleep(lua_State *L)
{
    lua_Integer ms = luaL_checkinteger(L, 1);
    if (ms > 0) {
        poll(NULL, 0, ms > 60000 ? 60000 : (int)ms);
    }
    return 0;
}

/* ---- registration ------------------------------------------------------- */

int luaopen_mqtt(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"auth", l_auth},           {"keepalive", l_keepalive},
        {"will", l_will},           {"autoreconn", l_autoreconn},
        {"on", l_on},               {"connect", l_connect},
        {"disconnect", l_disconnect}, {"close", l_close},
        {"ready", l_ready},         {"state", l_state},
        {"subscribe", l_subscribe}, {"unsubscribe", l_unsubscribe},
        {"publish", l_publish},     {"debug", l_debug},
        {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"create", l_create}, {"_poll", l_poll},
                                     {"_now", l_now},     {"_sleep", l_sleep},
                                     {NULL, NULL}};
    if (luaL_newmetatable(L, LMQTT_META)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LMQTT_CLIENTS) == LUA_TNIL) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, LMQTT_CLIENTS);
    }
    lua_pop(L, 1);
    luaL_newlib(L, funcs);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "STATE_DISCONNECT");
    lua_pushinteger(L, 1);
    lua_setfield(L, -2, "STATE_SCONNECT");
    lua_pushinteger(L, 2);
    lua_setfield(L, -2, "STATE_MQTT");
    lua_pushinteger(L, 3);
    lua_setfield(L, -2, "STATE_READY");
    return 1;
}
