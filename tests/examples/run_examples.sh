#!/usr/bin/env bash
# Runs the example programs against a mosquitto started on a free loopback
# port (stopped on exit). Usage: run_examples.sh EXAMPLE...
set -u
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
work=$(mktemp -d)
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/m.conf"
mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosquitto" -c "$work/m.conf" >"$work/m.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for i in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
pass=0 fail=0
for ex in "$@"; do
  if out=$(timeout 20 "$ex" "mqtt://127.0.0.1:$port" 2>&1) && [[ -n $out ]]; then
    echo "ok   ${ex##*/}"; pass=$((pass + 1))
  else
    echo "FAIL ${ex##*/}"; fail=$((fail + 1))
  fi
  echo "$out" | sed 's/^/     /'
done
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
