#!/usr/bin/env bash
# The demo: installs what is missing, builds the release configuration, starts
# a local mosquitto on a free loopback port, and shows `mqttc sub` receiving
# what `mqttc pub` sends at QoS 0, 1 and 2. Stops the broker afterwards.
# Then runs mqttc_selftest, the protocol core alone against an in-memory broker.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/deps.sh

# The same configuration as the release stage of scripts/test.sh, so that
# neither script makes the other reconfigure.
dir=build/release
if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
  rm -rf "$dir"
fi
work=$(mktemp -d)
broker_pid=""
sub_pid=""
cleanup() {
  [[ -z $sub_pid ]] || kill "$sub_pid" 2>/dev/null || true
  [[ -z $broker_pid ]] || { kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

echo "demo: building $dir ..."
if ! { cmake -S . -B "$dir" -G Ninja -Wno-dev -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=MinSizeRel \
         "-DCMAKE_C_FLAGS_MINSIZEREL=-Os -DNDEBUG -g" -DMQTTC_SANITIZE=OFF -DMQTTC_FUZZ=OFF &&
       cmake --build "$dir" -j 2 --target mqttc mqttc_selftest; } >"$work/build.log" 2>&1; then
  cat "$work/build.log" >&2
  echo "demo: the build failed (output above)" >&2
  exit 1
fi
mqttc=$dir/tools/mqttc

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest stdout
log_type all
EOF
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
# Logging to stdout: as root, mosquitto drops to its own user, which could not
# write a log file in our private temporary directory. Line-buffered, so
# that the waits below see each line as it is logged.
stdbuf -oL "$mosquitto" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
echo "demo: mosquitto started on 127.0.0.1:$port (pid $broker_pid)"

# Wait (at most 5 s) for a log line, e.g. the broker listening or a subscription.
wait_log() {
  local i
  for i in $(seq 50); do
    grep -q "$1" "$work/mosquitto.log" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for the broker ('$1')" >&2
  exit 1
}
wait_log "listen socket on port $port"

echo "demo: \$ mqttc sub -h 127.0.0.1 -p $port -t 'demo/#' -v -C 3 -i demo-sub"
timeout 20 "$mqttc" sub -h 127.0.0.1 -p "$port" -t 'demo/#' -v -C 3 -i demo-sub >"$work/sub.out" &
sub_pid=$!
wait_log "demo-sub 0 demo/#"

for qos in 0 1 2; do
  echo "demo: \$ mqttc pub -h 127.0.0.1 -p $port -t demo/hello -q $qos -m 'hello at QoS $qos'"
  timeout 10 "$mqttc" pub -h 127.0.0.1 -p "$port" -t demo/hello -q "$qos" -m "hello at QoS $qos"
done

if ! wait "$sub_pid"; then
  sub_pid=""
  echo "demo: mqttc sub did not receive the three messages" >&2
  exit 1
fi
sub_pid=""
echo "demo: mqttc sub received:"
sed 's/^/    /' "$work/sub.out"

echo
echo "demo: the protocol core alone, against an in-memory broker:"
"$dir/tools/mqttc_selftest"
