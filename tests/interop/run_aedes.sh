#!/usr/bin/env bash
# Runs an aedes interoperability test executable ($1, further arguments passed
# on). Checks for Node.js 20 or later, installs the broker's npm packages into
# tests/interop/aedes/node_modules when they are missing, and exports
# MQTTC_AEDES_DIR so the test can start `node broker.js` from there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="$here/aedes"

if [[ $# -lt 1 ]]; then
  echo "usage: $0 TEST_EXECUTABLE [ARGS...]" >&2
  exit 2
fi

if ! command -v node >/dev/null 2>&1; then
  echo "run_aedes.sh: node not found: aedes 1.x needs Node.js 20 or later" >&2
  exit 1
fi
ver=$(node --version)              # v20.20.2
major=${ver#v}
major=${major%%.*}
if ! [[ "$major" =~ ^[0-9]+$ ]] || (( major < 20 )); then
  echo "run_aedes.sh: node $ver is too old: aedes 1.x needs Node.js 20 or later" >&2
  exit 1
fi

if [[ ! -d "$dir/node_modules/aedes" || ! -d "$dir/node_modules/ws" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "run_aedes.sh: npm not found: needed once to install aedes and ws" >&2
    exit 1
  fi
  echo "run_aedes.sh: installing aedes and ws into $dir/node_modules"
  log=$(mktemp)
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "run_aedes.sh: npm ci failed (see above)" >&2
    exit 1
  fi
  rm -f "$log"
fi

export MQTTC_AEDES_DIR="$dir"
exec "$@"
