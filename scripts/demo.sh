#!/usr/bin/env bash
# The demo: installs what is missing, builds the release configuration and
# runs mqttc_selftest, a scripted session between the engine and an
# in-memory broker that prints what crosses the wire.
#
# This is the demo while only the protocol core exists. Issue 3 (the network
# client and the command-line tool) replaces it with a real session: a local
# mosquitto broker, `mqttc sub` listening and `mqttc pub` publishing to it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/deps.sh

# The same configuration as the release stage of scripts/test.sh, so that
# neither script makes the other reconfigure.
dir=build/release
if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
  rm -rf "$dir"
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "demo: building $dir ..."
if ! { cmake -S . -B "$dir" -G Ninja -Wno-dev -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=MinSizeRel \
         "-DCMAKE_C_FLAGS_MINSIZEREL=-Os -DNDEBUG -g" -DMQTTC_SANITIZE=OFF -DMQTTC_FUZZ=OFF &&
       cmake --build "$dir" -j 2 --target mqttc_selftest; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "demo: the build failed (output above)" >&2
  exit 1
fi
echo "demo: running $dir/tools/mqttc_selftest"
echo
"$dir/tools/mqttc_selftest"
