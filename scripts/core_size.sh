#!/usr/bin/env bash
# The protocol core's code size as a firmware image links it: the core sources
# compiled with gcc -Os -ffunction-sections, linked with --gc-sections against
# tests/size/core_entry_points.c (which references every public engine
# function), and the .text each core object contributes read from the link map.
# Functions no client reaches (e.g. encoders of broker packets) drop out.
#
# Usage: scripts/core_size.sh [CC]      prints a table; last line "codec+engine N"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CC=${1:-gcc}
CORE=(error utf8 topic codec_encode codec_decode decoder engine)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${CORE[@]}"; do
  "$CC" -Os -std=c11 -ffunction-sections -fdata-sections -I"$ROOT/include" -DMQTTC_BUILDING \
    -c "$ROOT/src/$f.c" -o "$tmp/$f.o"
done
"$CC" -Os -std=c11 -I"$ROOT/include" -c "$ROOT/tests/size/core_entry_points.c" -o "$tmp/entry.o"
"$CC" -Wl,--gc-sections -Wl,-Map="$tmp/map.txt" -o "$tmp/core" "$tmp"/*.o
python3 - "$tmp/map.txt" "${CORE[@]}" <<'PY'
import collections, re, sys
text = open(sys.argv[1]).read()
text = text[text.index("Linker script and memory map"):]  # kept sections only
size = collections.Counter()
pending = False
for line in text.split("\n"):
    m = re.match(r"^ \.text\S*\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*/(\w+)\.o$", line)
    if m:
        size[m.group(2)] += int(m.group(1), 16)
        pending = False
        continue
    if re.match(r"^ \.text\S*$", line):
        pending = True
        continue
    m = re.match(r"^\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+\S*/(\w+)\.o$", line)
    if m and pending:
        size[m.group(2)] += int(m.group(1), 16)
    pending = False
core = sys.argv[2:]
print("linked .text of the protocol core (gcc -Os, --gc-sections, bytes):")
for name in core:
    print(f"  {name:<14} {size[name]:>6}")
print(f"  {'all core':<14} {sum(size[n] for n in core):>6}")
print(f"codec+engine {size['codec_encode'] + size['codec_decode'] + size['engine']}")
PY
