#!/usr/bin/env bash
# QoS 1 and QoS 2 over a lossy, slow link: mosquitto and the mqttc CLI in a
# network namespace of their own whose loopback interface has a netem qdisc
# (loss, delay with jitter). Every packet between them crosses that lo, so
# both directions are impaired, and only 127.0.0.1 is used: the tests'
# loopback-only rule holds, nothing outside the namespace is touched, and
# the fixed port 1883 cannot collide with anything (the namespace is new).
#
# Checks: every QoS 1 message arrives at least once, every QoS 2 message
# exactly once, in both cases the publisher exits 0 (all completed).
#
# Usage: tests/netem/run_netem.sh MQTTC_BINARY [COUNT]
#   COUNT                messages per QoS (default 300)
#   NETEM_PAD=400        bytes of filler in each message
#   NETEM_LOSS=3%        loss on lo (each packet crosses lo once)
#   NETEM_DELAY=20ms     delay, NETEM_JITTER=5ms its jitter
#   NETEM_TBF=1          when the kernel lacks netem, shape lo with tbf instead
#                        (TBF_RATE=1mbit, TBF_LATENCY=10ms): queueing delay and
#                        tail drops, not random loss; reported as such
#   NETEM_ALLOW_NONE=1   run the flows without any impairment when the kernel
#                        lacks netem (checks this script, not the link)
# Exit status: 0 pass, 1 fail, 77 skipped (the reason on stdout: not root, no
# network namespaces, no netem in this kernel, no mosquitto).
set -euo pipefail

MQTTC=${1:?usage: run_netem.sh MQTTC_BINARY [COUNT]}
COUNT=${2:-300}
LOSS=${NETEM_LOSS:-3%}
DELAY=${NETEM_DELAY:-20ms}
JITTER=${NETEM_JITTER:-5ms}
MOSQUITTO=/usr/sbin/mosquitto
PAD=$(printf '%*s' "${NETEM_PAD:-400}" '' | tr ' ' x) # payload filler: volume for the link
FLOW_TIMEOUT=120   # seconds for one QoS's flow, a bound and not an expectation

NS=mqttc-netem-$$
WORK=""
BROKER_PID=""
SUB_PID=""
NS_MADE=0

skip() {
  echo "SKIP: $*"
  exit 77
}

cleanup() {
  local pids
  [[ -z $SUB_PID ]] || kill "$SUB_PID" 2>/dev/null || true
  if [[ -n $BROKER_PID ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  if [[ $NS_MADE -eq 1 ]]; then
    # anything still running in our namespace was started by this script
    pids=$(ip netns pids "$NS" 2>/dev/null || true)
    [[ -z $pids ]] || kill $pids 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
  fi
  [[ -z $WORK ]] || rm -rf "$WORK"
}
trap cleanup EXIT

[[ -x $MQTTC ]] || { echo "run_netem.sh: $MQTTC is not an executable" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || skip "needs root for ip netns and tc"
command -v ip >/dev/null && command -v tc >/dev/null || skip "ip/tc missing (iproute2; scripts/deps.sh installs it)"
[[ -x $MOSQUITTO ]] || skip "$MOSQUITTO is not installed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-netem.XXXXXX")
if ! ip netns add "$NS" 2>"$WORK/err"; then
  skip "cannot create a network namespace: $(tr '\n' ' ' <"$WORK/err")"
fi
NS_MADE=1
inns() { ip netns exec "$NS" "$@"; }
inns ip link set lo up

# 1500 like an Ethernet link (lo's 64 KiB would make every segment one packet)
inns ip link set lo mtu 1500
IMPAIRED=netem
IMPAIRMENT="loss $LOSS, delay $DELAY +- $JITTER"
if ! inns tc qdisc add dev lo root netem delay "$DELAY" "$JITTER" loss "$LOSS" 2>"$WORK/err"; then
  reason="netem is not available: 'tc qdisc add dev lo root netem ...' said: $(tr '\n' ' ' <"$WORK/err")(the kernel needs sch_netem: CONFIG_NET_SCH_NETEM, modprobe sch_netem)"
  if [[ ${NETEM_TBF:-0} == 1 ]] &&
    inns tc qdisc add dev lo root tbf rate "${TBF_RATE:-1mbit}" burst 3000 latency "${TBF_LATENCY:-10ms}" 2>"$WORK/err"; then
    # a token bucket: queueing delay, and tail drops when a burst overflows
    # its queue; not random loss
    echo "NOTE: $reason; shaping lo with tbf instead (NETEM_TBF=1)"
    IMPAIRED=tbf
    IMPAIRMENT="tbf rate ${TBF_RATE:-1mbit}, queue ${TBF_LATENCY:-10ms}: tail drops, no random loss"
  elif [[ ${NETEM_ALLOW_NONE:-0} == 1 ]]; then
    echo "WARNING: $reason; running without impairment (NETEM_ALLOW_NONE=1)"
    IMPAIRED=none
    IMPAIRMENT="NO impairment"
  else
    skip "$reason"
  fi
fi

# ---- the broker ---------------------------------------------------------------
cat >"$WORK/mosquitto.conf" <<EOF
user root
allow_anonymous true
persistence false
max_queued_messages 100000
log_dest file $WORK/mosquitto.log
log_type error
log_type warning
log_type notice
log_type subscribe
listener 1883 127.0.0.1
EOF
# not through inns(): a function in the background is a subshell, and $!
# must be the broker (ip netns exec execs it)
ip netns exec "$NS" "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.out" 2>&1 &
BROKER_PID=$!
up=0
for _ in $(seq 1 100); do # at most ~10 s (each try crosses the netem link)
  if inns timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/1883' 2>/dev/null; then
    up=1
    break
  fi
  kill -0 "$BROKER_PID" 2>/dev/null || break
  sleep 0.1
done
[[ $up -eq 1 ]] || { cat "$WORK/mosquitto.out" "$WORK/mosquitto.log" 2>/dev/null; echo "FAIL: mosquitto did not start in the namespace"; exit 1; }

# wait_file_has FILE PATTERN SECONDS
wait_file_has() {
  local i
  for i in $(seq 1 $(($3 * 10))); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ---- one flow per QoS ---------------------------------------------------------
fail=0
for q in 1 2; do
  out=$WORK/sub$q.out
  : >"$out"
  ip netns exec "$NS" "$MQTTC" sub -h 127.0.0.1 -t "netem/q$q" -q "$q" \
    -i "netem-sub-$q" -W "$FLOW_TIMEOUT" >"$out" 2>"$WORK/sub$q.err" &
  SUB_PID=$!
  if ! wait_file_has "$WORK/mosquitto.log" "netem-sub-$q $q netem/q$q" 30; then
    echo "FAIL: QoS $q: the subscriber did not subscribe"; cat "$WORK/sub$q.err"; exit 1
  fi
  t0=$SECONDS
  # COUNT numbered messages and an end marker, one per line, in one connection
  if ! { seq 1 "$COUNT" | sed "s/\$/-$PAD/; s/^/m-/"; echo END; } |
    inns timeout "$FLOW_TIMEOUT" "$MQTTC" pub -h 127.0.0.1 -t "netem/q$q" -q "$q" -l \
      -i "netem-pub-$q" 2>"$WORK/pub$q.err"; then
    echo "FAIL: QoS $q: the publisher did not complete every message"; cat "$WORK/pub$q.err"
    fail=1
  fi
  wait_file_has "$out" '^END$' 60 || true
  kill "$SUB_PID" 2>/dev/null || true
  wait "$SUB_PID" 2>/dev/null || true
  SUB_PID=""
  missing=0
  dups=0
  for i in $(seq 1 "$COUNT"); do
    n=$(grep -c -x -- "m-$i-$PAD" "$out" || true)
    [[ $n -ge 1 ]] || missing=$((missing + 1))
    [[ $n -le 1 ]] || dups=$((dups + n - 1))
  done
  printf 'netem QoS %d: %d sent, %d missing, %d duplicates, end marker %s, %ds (%s)\n' \
    "$q" "$COUNT" "$missing" "$dups" "$(grep -q -x END "$out" && echo received || echo MISSING)" \
    $((SECONDS - t0)) "$IMPAIRMENT"
  [[ $missing -eq 0 ]] || fail=1
  [[ $q -ne 2 || $dups -eq 0 ]] || fail=1
done

if [[ $IMPAIRED != none ]]; then
  echo "$IMPAIRED on lo: $(inns tc -s qdisc show dev lo | grep -Eo 'dropped [0-9]+' | head -n1 | cut -d' ' -f2) packets dropped"
fi
if [[ $fail -ne 0 ]]; then
  echo "FAIL (broker log: last lines follow)"
  tail -n 20 "$WORK/mosquitto.log" || true
  exit 1
fi
echo "PASS"
