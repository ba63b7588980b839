#!/usr/bin/env bash
# Runs the three LuatOS scripts in tests/lua/blind/ (written from LuatOS's own
# documentation by someone who had not seen the binding; see blind/README.md)
# UNEDITED under mqttc-lua against a mosquitto on a free 127.0.0.1 port, and
# checks from outside (mosquitto_sub/mosquitto_pub, the broker log, the
# script's output and exit code) that each did what the README says.
#   s1_device.lua     device: auth + will + table subscribe, echo, telemetry
#                     timer; killed with SIGKILL -> its will must fire.
#   s2_tasks.lua      tasks/waitUntil, qos 0/1/2 + retain, sent ids,
#                     unsubscribe, clean disconnect (no will); ends by itself.
#   s3_reconnect.lua  autoreconn across a broker restart on the same port.
# Loopback only; every wait is bounded.
# Usage: run_blind.sh MQTTC_LUA
set -u
runner=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/blind
work=$(mktemp -d)
broker= lua= subs=()
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)

cleanup() {
  local p
  for p in $lua "${subs[@]}" $broker; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'user root\npersistence false\nlog_type all\nconnection_messages true\nlistener %s 127.0.0.1\nallow_anonymous true\n' \
  "$port" >"$work/m.conf"

broker_up() { # LOGFILE
  "$mosquitto" -c "$work/m.conf" >>"$1" 2>&1 &
  broker=$!
  local i
  for ((i = 0; i < 50; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
broker_down() {
  kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null
  broker=
}

# wait_for FILE REGEX SECONDS
wait_for() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# sub_bg OUTFILE SECONDS TOPIC: a background subscriber at QoS 2 printing
# "topic q<qos> r<retain> payload" (so the QoS/retain the script used show).
sub_bg() {
  mosquitto_sub -h 127.0.0.1 -p "$port" -q 2 -t "$3" -F '%t q%q r%r %p' -W "$2" >"$1" 2>&1 &
  subs+=($!)
}
# retained TOPIC: what a fresh subscriber gets as retained message ("q r payload").
retained() {
  mosquitto_sub -h 127.0.0.1 -p "$port" -q 2 -t "$1" -C 1 -W 2 -F 'q%q r%r %p' 2>/dev/null
}
pub() { mosquitto_pub -h 127.0.0.1 -p "$port" "$@"; }

fails=0
check() { # NAME OK
  if [[ $2 == 1 ]]; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}
ok_if() { # NAME COMMAND...
  local name=$1; shift
  if "$@"; then check "$name" 1; else check "$name" 0; fi
}
dump() { # LABEL FILE...
  echo "--- $1"; shift; cat "$@" 2>/dev/null
}

broker_up "$work/m.log" || { echo "FAIL: mosquitto did not start"; exit 1; }

##############################################################################
echo "=== s1_device.lua"
sub_bg "$work/s1.sub" 30 '/blind/dev001/#'
sleep 0.3
# Not under timeout(1): $! must be mqttc-lua itself so that SIGKILL reaches it;
# --exit-after bounds it.
"$runner" --broker "127.0.0.1:$port" --exit-after 30 "$dir/s1_device.lua" \
  >"$work/s1.out" 2>"$work/s1.err" &
lua=$!
ok_if "s1: connected with id, clean session, keepalive 60, user name" \
  wait_for "$work/m.log" "as blind-dev-001 \(p2, c1, k60, u'devuser'\)" 10
ok_if "s1: will given to the broker as retain 1, qos 1" \
  wait_for "$work/m.log" 'Will message specified \(7 bytes\) \(r1, q1\)' 5
ok_if "s1: table subscribe: cmd at QoS 1" wait_for "$work/m.log" $'^[0-9]+: \t/blind/dev001/cmd \\(QoS 1\\)' 5
ok_if "s1: table subscribe: cfg at QoS 0" wait_for "$work/m.log" $'^[0-9]+: \t/blind/dev001/cfg \\(QoS 0\\)' 5
ok_if "s1: 'online' published qos 1" wait_for "$work/s1.sub" '^/blind/dev001/status q1 r0 online$' 5
got=$(retained /blind/dev001/status)
check "s1: 'online' is retained (fresh subscriber got: $got)" "$([[ $got == 'q1 r1 online' ]] && echo 1)"
ok_if "s1: telemetry seq 1..3 at qos 0" \
  wait_for "$work/s1.sub" '^/blind/dev001/telemetry q0 r0 \{"dev":"blind-dev-001","seq":3,"recv":0\}$' 6
seqs=$(sed -n 's/^\/blind\/dev001\/telemetry q0 r0 .*"seq":\([0-9]*\).*/\1/p' "$work/s1.sub" | tr '\n' ' ')
check "s1: telemetry seq starts at 1 and increases by 1 ($seqs)" \
  "$(awk -v s="$seqs" 'BEGIN { n = split(s, a, " "); ok = (n >= 3 && a[1] == 1); for (i = 2; i <= n; i++) if (a[i] != a[i-1] + 1) ok = 0; print ok }')"
cmd="cmd-$$-$RANDOM"
cfg="interval=$RANDOM"
pub -t /blind/dev001/cmd -q 1 -m "$cmd"
pub -t /blind/dev001/cfg -q 0 -m "$cfg"
ok_if "s1: command echoed at qos 1" wait_for "$work/s1.sub" "^/blind/dev001/reply q1 r0 echo:$cmd\$" 5
ok_if "s1: config acknowledged at qos 0" wait_for "$work/s1.sub" "^/blind/dev001/reply q0 r0 cfg-ok:$cfg\$" 5
ok_if "s1: the script saw recv metas (qos 1 for the command)" \
  grep -q "mqtt downlink /blind/dev001/cmd $cmd qos 1 retain 0 msgid [1-9]" "$work/s1.out"
ok_if "s1: telemetry then reports recv 2" wait_for "$work/s1.sub" '^/blind/dev001/telemetry q0 r0 .*"recv":2\}$' 4
# Power loss: no DISCONNECT -> the broker must publish the will.
kill -KILL "$lua"; wait "$lua" 2>/dev/null; lua=
ok_if "s1: after SIGKILL the will 'offline' arrives at qos 1" \
  wait_for "$work/s1.sub" '^/blind/dev001/status q1 r0 offline$' 5
got=$(retained /blind/dev001/status)
check "s1: the will replaced the retained status (fresh subscriber got: $got)" "$([[ $got == 'q1 r1 offline' ]] && echo 1)"
ok=0; ! grep -q '^\[error\]\|mqttc-lua:' "$work/s1.out" "$work/s1.err" && ok=1
check "s1: no error from the script" "$ok"

##############################################################################
echo "=== s2_tasks.lua"
sub_bg "$work/s2.sub" 60 '/blind/tasks/#'
sleep 0.3
start=$SECONDS
timeout 70 "$runner" --broker "127.0.0.1:$port" "$dir/s2_tasks.lua" >"$work/s2.out" 2>"$work/s2.err" &
lua=$!
ok_if "s2: connected as blind-tasks-002, keepalive 60, will r0 q1" \
  wait_for "$work/m.log" 'as blind-tasks-002 \(p2, c1, k60\)' 10
ok_if "s2: subscribed /blind/tasks/in at QoS 2" wait_for "$work/m.log" $'^[0-9]+: \t/blind/tasks/in \\(QoS 2\\)' 5
ok_if "s2: 'waiting' published qos 1" wait_for "$work/s2.sub" '^/blind/tasks/status q1 r0 waiting$' 15
m1="ping-$RANDOM"; m2="ping-$RANDOM-b"
pub -t /blind/tasks/in -q 1 -m "$m1"
pub -t /blind/tasks/in -q 2 -m "$m2"
ok_if "s2: 'unsubscribed' published" wait_for "$work/s2.sub" '^/blind/tasks/status q1 r0 unsubscribed$' 10
pub -t /blind/tasks/in -q 1 -m late-after-unsubscribe
wait "$lua"; rc=$?; lua=
took=$((SECONDS - start))
check "s2: ended by itself with exit code 0 (rc $rc) in ${took}s (< 30: IP_READY did not time out)" \
  "$([[ $rc == 0 && $took -lt 30 ]] && echo 1)"
ok_if "s2: qos 1 publish" grep -qx '/blind/tasks/out/q1 q1 r0 hello-qos1' "$work/s2.sub"
ok_if "s2: qos 2 publish" grep -qx '/blind/tasks/out/q2 q2 r0 hello-qos2-retained' "$work/s2.sub"
got=$(retained /blind/tasks/out/q2)
check "s2: qos 2 publish retained (fresh subscriber got: $got)" "$([[ $got == 'q2 r1 hello-qos2-retained' ]] && echo 1)"
ok_if "s2: qos 0 publish" grep -qx '/blind/tasks/out/q0 q0 r0 hello-qos0' "$work/s2.sub"
acks=$(sed -n 's/^\/blind\/tasks\/out\/ack q1 r0 //p' "$work/s2.sub" | tr '\n' ' ')
check "s2: both downlinks acked in order at qos 1 ($acks)" "$([[ $acks == "ack:$m1 ack:$m2 " ]] && echo 1)"
ok_if "s2: the script saw the qos of each downlink" \
  grep -qE "^\[info\] recv /blind/tasks/in $m2 2 0\$" "$work/s2.out"
ok_if "s2: sent events carried the publish ids" grep -qE '^\[info\] tasks qos2 pkgid ([0-9]+) sent true \1$' "$work/s2.out"
ok=0; ! grep -q 'late-after-unsubscribe' "$work/s2.out" && ok=1
check "s2: nothing received after unsubscribe" "$ok"
ok_if "s2: result PASS published at qos 1" grep -qx '/blind/tasks/result q1 r0 PASS' "$work/s2.sub"
ok_if "s2: clean DISCONNECT sent" grep -q 'Received DISCONNECT from blind-tasks-002' "$work/m.log"
sleep 0.5
ok=0; ! grep -q '^/blind/tasks/will' "$work/s2.sub" && ok=1
check "s2: the will was not published (clean disconnect)" "$ok"
ok=0; ! grep -q '^\[error\]\|\[warn\] tasks\|mqttc-lua:' "$work/s2.out" "$work/s2.err" && ok=1
check "s2: no error or failed check in the script" "$ok"

##############################################################################
echo "=== s3_reconnect.lua"
sub_bg "$work/s3a.sub" 30 '/blind/reconn/#'
sleep 0.3
timeout 50 "$runner" --broker "127.0.0.1:$port" --exit-after 22 "$dir/s3_reconnect.lua" \
  >"$work/s3.out" 2>"$work/s3.err" &
lua=$!
ok_if "s3: connected as blind-reconn-003 with keepalive 20" wait_for "$work/m.log" 'as blind-reconn-003 \(p2, c1, k20\)' 10
ok_if "s3: online:1" wait_for "$work/s3a.sub" '^/blind/reconn/status q1 r0 online:1$' 5
ok_if "s3: ticks at qos 1" wait_for "$work/s3a.sub" '^/blind/reconn/tick q1 r0 tick:3$' 5
broker_down
ok_if "s3: broker gone -> disconnect event, ready() false" \
  wait_for "$work/s3.out" '^\[warn\] mqtt disconnect 1 ready false$' 5
ok_if "s3: while down, the script sees not ready" wait_for "$work/s3.out" 'tick not ready, state' 3
before=$(sed -n 's/^\/blind\/reconn\/tick q1 r0 tick://p' "$work/s3a.sub" | sort -n | tail -n 1)
sleep 1.5
broker_up "$work/m2.log" || check "s3: broker restarted" 0
sub_bg "$work/s3b.sub" 15 '/blind/reconn/#'
# (its online:2 may reach the broker before a new subscriber does: the broker
# log shows the publish, the state? answer below shows conn=2)
ok_if "s3: reconnected by itself and published its status" \
  wait_for "$work/m2.log" "Received PUBLISH from blind-reconn-003 \\(d0, q1, r0, m[0-9]+, '/blind/reconn/status'" 10
ok_if "s3: re-subscribed after reconnect" wait_for "$work/m2.log" $'^[0-9]+: \t/blind/reconn/in \\(QoS 1\\)' 5
sleep 1.5
after=$(sed -n 's/^\/blind\/reconn\/tick q1 r0 tick://p' "$work/s3b.sub" | sort -n | head -n 1)
check "s3: ticks resumed after the restart (last before ${before:-none}, first after ${after:-none})" \
  "$([[ -n $before && -n $after && $after -gt $before ]] && echo 1)"
pub -t /blind/reconn/in -q 1 -m 'state?'
ok_if "s3: state?/ready()/counters after reconnect" \
  wait_for "$work/s3b.sub" '^/blind/reconn/state q1 r0 state=3 ready=true conn=2 disc=[1-9][0-9]* sent=[1-9][0-9]*$' 5
ok_if "s3: state changes seen via mqtt.STATE_* (READY twice)" \
  test "$(grep -c -- '-> 3 READY$' "$work/s3.out")" -eq 2
wait "$lua"; rc=$?; lua=
ok=0; [[ $rc == 0 ]] && grep -q 'time limit reached' "$work/s3.err" && ok=1
check "s3: --exit-after stopped it (rc $rc)" "$ok"

ok=0; ! grep -qE 'Sanitizer|runtime error:' "$work"/s?.err && ok=1
check "no sanitizer report from any of the runs" "$ok"

##############################################################################
if ((fails > 0)); then
  dump "s1 output" "$work/s1.out" "$work/s1.err"; dump "s1 mosquitto_sub" "$work/s1.sub"
  dump "s2 output" "$work/s2.out" "$work/s2.err"; dump "s2 mosquitto_sub" "$work/s2.sub"
  dump "s3 output" "$work/s3.out" "$work/s3.err"; dump "s3 mosquitto_sub" "$work/s3a.sub" "$work/s3b.sub"
  dump "broker" "$work/m.log" "$work/m2.log"
  echo "FAILED: $fails"
  exit 1
fi
echo PASS
exit 0
