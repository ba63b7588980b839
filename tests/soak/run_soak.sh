#!/usr/bin/env bash
# The long soak run: builds tests/soak/soak (Release, in build/soak) and runs it.
#   tests/soak/run_soak.sh --messages 1000000            # the documented long run
#   tests/soak/run_soak.sh --messages 1000000 --reconnects 20
#   tests/soak/run_soak.sh --qos2-every 0 --broker-restarts 5 --messages 200000
# Every option goes to the soak program (tests/soak/soak.c, README.md here).
# Without --time-limit, the limit is 600 s plus 1 s per 2000 messages.
# BUILD_DIR=... to use another build directory.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${BUILD_DIR:-$root/build/soak}
if [[ ! -x $build/tests/soak/soak || -n $(find "$root/src" "$root/tests/soak" "$root/tests/support" \
        -newer "$build/tests/soak/soak" -name '*.[ch]' -print -quit) ]]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target soak -j2 >/dev/null
fi
args=("$@") messages=20000 limit=
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --messages) messages=${args[i + 1]:-20000} ;;
    --time-limit) limit=${args[i + 1]:-} ;;
  esac
done
[[ -n $limit ]] || args+=(--time-limit $((600 + messages / 2000)))
exec "$build/tests/soak/soak" "${args[@]}"
