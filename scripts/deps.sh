#!/usr/bin/env bash
# Installs the Debian 12 packages mqttc needs to build and test, and only
# those that are missing. Quiet when everything is already there.
set -euo pipefail

# Build and test toolchain.
PACKAGES=(
  build-essential cmake ninja-build pkg-config
  clang llvm libclang-rt-14-dev    # clang builds, libFuzzer, sanitizer runtimes
  libcmocka-dev                    # unit tests
  valgrind                         # memcheck stage of scripts/test.sh
  mosquitto mosquitto-clients      # a real broker for integration tests and the demo
  openssl                          # throwaway CA and certificates for the TLS tests
  iproute2                         # ip netns and tc for tests/netem (a link with loss and delay)
)

# Libraries for the layers being added. Add here, never install by hand:
#   libmbedtls-dev    TLS transport
#   nodejs npm        WebSocket / browser-side tests
#   libmosquitto-dev  libpaho-mqtt-dev   comparison benchmarks
PACKAGES+=(
  libmbedtls-dev                   # TLS, and SHA-1/base64 for the WebSocket handshake
  liblua5.4-dev lua5.4             # the LuatOS face (Lua module, sys/log, mqttc-lua)
  zlib1g-dev                       # CRC-32 of the file store's records
  libmosquitto-dev libpaho-mqtt-dev # bench/: the peers mqttc is compared with
  strace binutils python3          # bench/: syscalls per message, size of .text, the table
)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
       "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
         --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "deps.sh: apt-get failed (see above)" >&2
  exit 1
fi
