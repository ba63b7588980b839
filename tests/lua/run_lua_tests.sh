#!/usr/bin/env bash
# Runs the LuatOS-face tests (tests/lua/t_*.lua and examples/luatos/) with
# mqttc-lua against one mosquitto on free loopback ports:
#   MQTT_PORT       plain, anonymous
#   MQTT_ACL_PORT   anonymous, dynamic-security plugin that refuses subscribing
#                   outside lua/ok/# (SUBACK 0x80)
#   MQTT_AUTH_PORT  allow_anonymous false (CONNACK 5)
#   MQTT_TLS_PORT   TLS with a CA and server certificate made here by openssl
#   MQTT_MTLS_PORT  TLS that requires a client certificate (MQTT_CLIENT_CERT and
#                   MQTT_CLIENT_KEY, the key encrypted with "k3y-pass")
#   MQTT_CLOSED_PORT nothing listens
# t_reconnect.lua writes $MQTT_MARKER once connected; this script then stops
# and restarts the broker. With PLAIN_LUA=1, t_plain_lua.lua also runs under
# lua5.4 with require (not under sanitizers: lua5.4 would need the sanitizer
# runtime preloaded).
# Usage: run_lua_tests.sh MQTTC_LUA MODULE_DIR BINDINGS_DIR [PLAIN_LUA]
set -u
runner=$1 moddir=$2 bindir=$3 plain=${4:-1}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
broker=

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port) acl_port=$(free_port) auth_port=$(free_port) tls_port=$(free_port)
closed_port=$(free_port) mtls_port=$(free_port)

cleanup() {
  [[ -n $broker ]] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
(
  cd "$work" &&
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=mqttc test CA" \
    -keyout ca.key -out ca.crt &&
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
  printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\n' >ext.cnf &&
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out server.crt &&
  openssl req -newkey rsa:2048 -passout pass:k3y-pass -subj "/CN=lua-client" \
    -keyout client.key -out client.csr &&
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -out client.crt
) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log"; echo "openssl failed"; exit 1; }

cat >"$work/dynsec.json" <<JSON
{
  "defaultACLAccess": {"publishClientSend": true, "publishClientReceive": true,
                       "subscribe": false, "unsubscribe": true},
  "clients": [],
  "groups": [{"groupname": "anon", "roles": [{"rolename": "anonrole"}], "clients": []}],
  "roles": [{"rolename": "anonrole", "acls": [{"acltype": "subscribePattern",
             "topic": "lua/ok/#", "priority": 0, "allow": true}]}],
  "anonymousGroup": "anon"
}
JSON
dynsec=
for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib /usr/local/lib; do
  [[ -f $d/mosquitto_dynamic_security.so ]] && dynsec=$d/mosquitto_dynamic_security.so && break
done
{
  printf 'user root\nper_listener_settings true\npersistence false\nlog_type all\n'
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$acl_port"
  [[ -n $dynsec ]] && printf 'plugin %s\nplugin_opt_config_file %s\n' "$dynsec" "$work/dynsec.json"
  printf 'listener %s 127.0.0.1\nallow_anonymous false\n' "$auth_port"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$tls_port"
  printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$work/ca.crt" "$work/server.crt" "$work/server.key"
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nrequire_certificate true\n' "$mtls_port"
  printf 'cafile %s\ncertfile %s\nkeyfile %s\n' "$work/ca.crt" "$work/server.crt" "$work/server.key"
} >"$work/m.conf"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

start_broker() {
  "$mosquitto" -c "$work/m.conf" >>"$work/m.log" 2>&1 &
  broker=$!
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$tls_port") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "mosquitto did not start"; cat "$work/m.log"; return 1
}
stop_broker() {
  kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; broker=
}
start_broker || exit 1

export MQTT_HOST=127.0.0.1 MQTT_PORT=$port MQTT_ACL_PORT=$acl_port MQTT_AUTH_PORT=$auth_port
export MQTT_TLS_PORT=$tls_port MQTT_CLOSED_PORT=$closed_port MQTT_CA_FILE=$work/ca.crt
export MQTT_MARKER=$work/marker MQTT_MTLS_PORT=$mtls_port
export MQTT_CLIENT_CERT=$work/client.crt MQTT_CLIENT_KEY=$work/client.key
export LUA_PATH="$here/?.lua;$bindir/?.lua;;" LUA_CPATH="$moddir/?.so;;"

pass=0 fail=0
# result NAME OK OUTPUT
result() {
  if [[ $2 == 1 ]]; then echo "ok   $1"; pass=$((pass + 1)); else echo "FAIL $1"; fail=$((fail + 1)); fi
  printf '%s\n' "$3" | sed 's/^/     /' | tail -n 40
}
# run NAME EXPECTED_RC CMD...: passes on the exit code, and for 0 on a PASS line.
run() {
  local name=$1 want=$2 out rc ok=0
  shift 2
  out=$(cd "$here" && timeout 60 "$@" 2>&1); rc=$?
  if [[ $rc == "$want" ]] && { [[ $want != 0 ]] || grep -q 'PASS' <<<"$out"; }; then ok=1; fi
  result "$name (rc $rc)" "$ok" "$out"
}

for t in t_sys t_badargs t_basic t_suback t_errors t_will t_tls t_keepalive; do
  run "$t" 0 "$runner" "$here/$t.lua"
done
run t_exit 7 "$runner" "$here/t_exit.lua" extra-arg
# keepalive() clamps to 15..600: the broker saw both values.
ok=0
grep -q 'as lua-ka-low (.*k15)' "$work/m.log" && grep -q 'as lua-ka-high (.*k600)' "$work/m.log" && ok=1
result "keepalive clamp seen by the broker" "$ok" "$(grep -E 'as lua-ka-' "$work/m.log")"

run t_runner_implicit_run 0 "$runner" "$here/t_implicit_run.lua"
# Host shims and the broker redirect (env and option), --exit-after.
run "t_host (MQTTC_LUA_BROKER)" 0 env MQTTC_LUA_BROKER=127.0.0.1:$port "$runner" "$here/t_host.lua"
run "t_host (--broker)" 0 "$runner" --broker "127.0.0.1:$port" "$here/t_host.lua"
run "t_host (--broker with a bracketed host)" 0 "$runner" --broker "[127.0.0.1]:$port" "$here/t_host.lua"
run "--broker without a port" 1 "$runner" --broker 127.0.0.1 "$here/t_host.lua"
run "--no-shims" 1 "$runner" --no-shims "$here/t_host.lua"
run "--exit-after bad" 2 "$runner" --exit-after soon "$here/t_forever.lua"
start=$SECONDS
run "t_forever (--exit-after 1)" 0 "$runner" --exit-after 1 "$here/t_forever.lua"
ok=0; (( SECONDS - start <= 10 )) && ok=1
result "--exit-after 1 ended within 10 s" "$ok" "$((SECONDS - start)) s"
if [[ $plain == 1 ]]; then
  run "t_plain_lua (lua5.4 + require)" 0 lua5.4 "$here/t_plain_lua.lua"
else
  echo "skip t_plain_lua: sanitized build (lua5.4 cannot load a sanitized mqtt.so without LD_PRELOAD)"
fi
run "examples/luatos/mqtt_demo.lua" 0 "$runner" "$root/examples/luatos/mqtt_demo.lua"

# Auto-reconnect across a broker restart.
rm -f "$MQTT_MARKER"
(cd "$here" && timeout 60 "$runner" "$here/t_reconnect.lua" >"$work/reconnect.out" 2>&1; echo $? >"$work/reconnect.rc") &
script=$!
for _ in $(seq 100); do [[ -e $MQTT_MARKER ]] && break; sleep 0.1; done
if [[ -e $MQTT_MARKER ]]; then
  stop_broker
  sleep 1
  start_broker
fi
wait "$script"
ok=0
[[ $(cat "$work/reconnect.rc") == 0 ]] && grep -q PASS "$work/reconnect.out" && ok=1
result "t_reconnect (broker restarted)" "$ok" "$(cat "$work/reconnect.out")"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
