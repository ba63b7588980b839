#!/usr/bin/env bash
# Runs a LuatOS MQTT demo written by others (openLuat/LuatOS demo/mqtt/main.lua,
# see README.md here) UNEDITED under mqttc-lua against a mosquitto on a free
# 127.0.0.1 port:
#   - the file must have the sha256 recorded below (the upstream copy);
#   - mqttc-lua --broker sends its mqtt.create("lbsmqtt.airm2m.com", 1884) to
#     the local broker; nothing but loopback is reached;
#   - the script must connect (the broker logs its client id, user name and
#     keepalive), subscribe, log a message this test publishes to its "sub"
#     topic ("downlink"), and publish to its "pub" topic (seen by mosquitto_sub);
#   - it loops forever, as device scripts do: --exit-after stops it.
# Exits 77 (ctest: skipped) when the script file is absent.
# Usage: run_thirdparty.sh MQTTC_LUA
set -u
runner=$1
here=$(cd "$(dirname "$0")" && pwd)
script=$here/openluat_demo_mqtt_main.lua
want_sha=d00a980d24acae6ab45d1d4a8794de27f60d7602bd566e14639a9098ea7cbf8b
run_for=14   # seconds: the script publishes every 5 s

if [[ ! -f $script ]]; then
  echo "skip: $script is not there (see $here/README.md for where it comes from)"
  exit 77
fi
got_sha=$(sha256sum "$script" | cut -d' ' -f1)
if [[ $got_sha != "$want_sha" ]]; then
  echo "FAIL: $script was edited: sha256 $got_sha, upstream $want_sha"
  exit 1
fi

work=$(mktemp -d)
broker= sub= lua=
cleanup() {
  for p in $lua $sub $broker; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'user root\npersistence false\nlog_type all\nconnection_messages true\nlistener %s 127.0.0.1\nallow_anonymous true\n' \
  "$port" >"$work/m.conf"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto" -c "$work/m.conf" >"$work/m.log" 2>&1 &
broker=$!
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

# Everything the script publishes (bounded: -W).
mosquitto_sub -h 127.0.0.1 -p "$port" -t '#' -v -W $((run_for + 10)) >"$work/sub.out" 2>&1 &
sub=$!
sleep 0.3

timeout $((run_for + 20)) "$runner" --broker "127.0.0.1:$port" --exit-after "$run_for" "$script" \
  >"$work/lua.out" 2>"$work/lua.err" &
lua=$!

# wait_for FILE REGEX SECONDS
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

fails=0
check() { # NAME OK
  if [[ $2 == 1 ]]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

ok=0; wait_for "$work/lua.out" 'mqtt event suback' 10 && ok=1
check "the script connected and subscribed" "$ok"
sub_topic=$(sed -n 's/^\[info\] mqtt sub //p' "$work/lua.out" | head -n 1)
pub_topic=$(sed -n 's/^\[info\] mqtt pub //p' "$work/lua.out" | head -n 1)
msg="downlink-from-test-$$-$RANDOM"
if [[ -n $sub_topic ]]; then
  mosquitto_pub -h 127.0.0.1 -p "$port" -t "$sub_topic" -m "$msg" -q 1
fi
ok=0; wait_for "$work/lua.out" "mqtt downlink topic $sub_topic payload $msg\$" 10 && ok=1
check "the script received what was sent to its sub topic ($sub_topic)" "$ok"
ok=0; [[ -n $pub_topic ]] && wait_for "$work/sub.out" "^$pub_topic 123," $((run_for + 2)) && ok=1
check "its publish to its pub topic ($pub_topic) arrived" "$ok"

wait "$lua"; rc=$?; lua=
ok=0; [[ $rc == 0 ]] && grep -q 'time limit reached' "$work/lua.err" && ok=1
check "--exit-after $run_for stopped it (rc ${rc:-none})" "$ok"
ok=0; grep -q "redirected to 127.0.0.1:$port" "$work/lua.err" && ok=1
check "mqtt.create was redirected to 127.0.0.1:$port" "$ok"
ok=0; grep -qE "as abc \(p2, c1, k30, u'user'\)" "$work/m.log" && ok=1
check "the broker saw its client id, clean session, keepalive and user name" "$ok"
ok=0; grep -q "mqtt sent pkgid" "$work/lua.out" && ok=1
check "the QoS 1 publish was acknowledged (sent event)" "$ok"
ok=0; ! grep -q '^\[error\]\|mqttc-lua:' "$work/lua.out" "$work/lua.err" && ok=1
check "no error from the script" "$ok"

echo "--- script output"; cat "$work/lua.out" "$work/lua.err"
echo "--- mosquitto_sub"; cat "$work/sub.out"
echo "--- broker"; grep -E 'New client|Sending|Received' "$work/m.log" | head -n 20
(( fails == 0 )) && echo PASS
exit $(( fails > 0 ))
