#!/usr/bin/env bash
# mqttc against libmosquitto and Eclipse Paho C (MQTTAsync), side by side, in
# one command: installs the packages (scripts/deps.sh), builds mqttc (gcc -Os)
# and the three harnesses, starts its own mosquitto on a free 127.0.0.1 port,
# runs every measurement for the three libraries in turn (mqttc, mosquitto,
# paho, mqttc, ...) for R rounds, and prints one table of medians with the
# min-max spread and the ratio mqttc/peer. Writes bench/results/latest.md
# (the table) and bench/results/raw.jsonl (every run, one JSON line each).
#
# Usage: bench/run.sh [--rounds R] [--quick] [--only NAME] [--build-dir DIR]
#        bench/run.sh --smoke [--build-dir DIR]
#   --rounds R       rounds of the timed measurements (default 5)
#   --quick          1 round, a tenth of the messages, no 10,000-client run
#                    (--quick, --only and a single library write
#                    bench/results/partial.md and raw.partial.jsonl instead)
#   --only NAME      one group (throughput latency idle callgrind strace size c10k)
#                    or one library (mqttc mosquitto paho)
#   --build-dir DIR  build here (default build/bench; an existing build
#                    directory is reused with -DMQTTC_BENCH=ON added)
#   --smoke          tiny counts, every harness in every mode once; checks that
#                    nothing is lost or duplicated and that each line parses;
#                    never judges a speed (scripts/test.sh runs it)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

ROUNDS=5
QUICK=0
SMOKE=0
ONLY=""
BUILD=build/bench
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; ROUNDS=$2; shift ;;
    --quick) QUICK=1 ;;
    --smoke) SMOKE=1 ;;
    --only) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; ONLY=$2; shift ;;
    --build-dir) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; BUILD=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --rounds wants a positive whole number" >&2; exit 2; }
[[ $QUICK -eq 0 ]] || ROUNDS=1
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD

LIBS=(mqttc mosquitto paho)
declare -A EXE=([mqttc]=harness_mqttc [mosquitto]=harness_mosq [paho]=harness_paho)
case $ONLY in
  "" | throughput | latency | idle | callgrind | strace | size | c10k) ;;
  mqttc | mosquitto | paho) LIBS=("$ONLY"); ONLY="" ;;
  mosq) LIBS=(mosquitto); ONLY="" ;;
  *) echo "run.sh: --only wants a group or a library, not '$ONLY'" >&2; exit 2 ;;
esac
want() { [[ -z $ONLY || $ONLY == "$1" ]]; }

RESULTS=$ROOT/bench/results
mkdir -p "$RESULTS"
TABLE=$RESULTS/latest.md
if [[ $SMOKE -eq 1 ]]; then
  RAW=$BUILD/bench-smoke.jsonl
elif [[ -n $ONLY || ${#LIBS[@]} -lt 3 || $QUICK -eq 1 ]]; then
  # a partial run never replaces the full table
  RAW=$RESULTS/raw.partial.jsonl
  TABLE=$RESULTS/partial.md
else
  RAW=$RESULTS/raw.jsonl
fi
START=$SECONDS
BROKER_PID=""
TMP=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-bench.XXXXXX")
cleanup() {
  if [[ -n $BROKER_PID ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# ---- packages and build -----------------------------------------------------

"$ROOT/scripts/deps.sh"
if [[ -f $BUILD/CMakeCache.txt ]]; then
  cmake -S "$ROOT" -B "$BUILD" -Wno-dev -DMQTTC_BENCH=ON >"$TMP/cmake.log" 2>&1 ||
    { cat "$TMP/cmake.log" >&2; exit 1; }
else
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -Wno-dev -DCMAKE_C_COMPILER=gcc \
    -DCMAKE_BUILD_TYPE=MinSizeRel "-DCMAKE_C_FLAGS_MINSIZEREL=-Os -DNDEBUG -g" \
    -DMQTTC_TESTS=OFF -DMQTTC_BENCH=ON >"$TMP/cmake.log" 2>&1 ||
    { cat "$TMP/cmake.log" >&2; exit 1; }
fi
cmake --build "$BUILD" -j 2 --target mqttc_shared harness_mqttc harness_mosq harness_paho \
  >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log" >&2; exit 1; }
grep -q '^CMAKE_BUILD_TYPE:STRING=MinSizeRel$' "$BUILD/CMakeCache.txt" ||
  echo "run.sh: note: $BUILD is not a MinSizeRel (-Os) build" >&2

# ---- the broker ---------------------------------------------------------------

# 10,000 connections need descriptors: as many as the hard limit allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cp "$ROOT/bench/mosquitto.conf" "$TMP/mosquitto.conf"
printf 'listener %s 127.0.0.1\n' "$PORT" >>"$TMP/mosquitto.conf"
BROKER_LOG=$BUILD/bench-mosquitto.log
mosquitto -c "$TMP/mosquitto.conf" >"$BROKER_LOG" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
  kill -0 "$BROKER_PID" 2>/dev/null || { cat "$BROKER_LOG" >&2; echo "run.sh: mosquitto did not start" >&2; exit 1; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "run.sh: mosquitto not listening on $PORT" >&2; exit 1; }
echo "run.sh: mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p') on 127.0.0.1:$PORT (pid $BROKER_PID), fd limit $FD_LIMIT"

: >"$RAW"
FAILED=0

# record BENCH ROUND LIB EXIT RESULT_JSON_OR_EMPTY ERROR
record() {
  local result=$5 err=${6//\"/\'}
  [[ $result == \{*\} ]] || result=null
  printf '{"bench":"%s","round":%s,"lib":"%s","exit":%s,"error":"%s","result":%s}\n' \
    "$1" "$2" "$3" "$4" "${err//$'\n'/ }" "$result" >>"$RAW"
}

# run BENCH ROUND LIB LIMIT_S ARGS...: one harness run, recorded.
run() {
  local bench=$1 round=$2 lib=$3 limit=$4 out rc=0 line
  shift 4
  out=$(timeout -k 5 "$limit" "$BUILD/bench/${EXE[$lib]}" "$@" --host 127.0.0.1 --port "$PORT" \
    2>"$TMP/stderr") || rc=$?
  line=$(printf '%s\n' "$out" | tail -n 1)
  record "$bench" "$round" "$lib" "$rc" "$line" "$(tail -c 300 "$TMP/stderr")"
  if [[ $rc -ne 0 ]]; then
    FAILED=$((FAILED + 1))
    printf 'run.sh: FAILED %s %s (exit %s): %s\n' "$bench" "$lib" "$rc" "$line" >&2
  fi
  printf '  %-12s r%-2s %-10s %s\n' "$bench" "$round" "$lib" "$(printf '%s' "$line" | sed -e 's/.*"results":{//' -e 's/}}$//' | cut -c1-150)"
}

# ---- the measurements -----------------------------------------------------------

# name: mode and arguments (the count scaled by SCALE)
declare -A TIMED=(
  [tp_q0_64]="throughput --qos 0 --size 64 --window 32 --count 200000"
  [tp_q1_64]="throughput --qos 1 --size 64 --window 32 --count 100000"
  [tp_q2_64]="throughput --qos 2 --size 64 --window 32 --count 50000"
  [tp_q0_4096]="throughput --qos 0 --size 4096 --window 32 --count 50000"
  [tp_q1_4096]="throughput --qos 1 --size 4096 --window 32 --count 30000"
  [tp_q2_4096]="throughput --qos 2 --size 4096 --window 32 --count 20000"
  [lat_q0]="latency --qos 0 --size 64 --count 20000"
  [lat_q1]="latency --qos 1 --size 64 --count 20000"
  [idle_1000]="idle --clients 1000 --batch 100 --hold-ms 3000"
)
ORDER=(tp_q0_64 tp_q1_64 tp_q2_64 tp_q0_4096 tp_q1_4096 tp_q2_4096 lat_q0 lat_q1 idle_1000)
group_of() { case $1 in tp_*) echo throughput ;; lat_*) echo latency ;; idle_*) echo idle ;; esac; }

# scale ARGS: divide --count by 10 (--quick)
scale() {
  local out=() a prev=""
  for a in "$@"; do
    if [[ $prev == --count && $QUICK -eq 1 ]]; then a=$((a / 10)); fi
    out+=("$a")
    prev=$a
  done
  printf '%s\n' "${out[@]}"
}

if [[ $SMOKE -eq 1 ]]; then
  SMOKE_RUNS=(
    "tp_q0_64:throughput --qos 0 --size 64 --window 32 --count 300"
    "tp_q1_64:throughput --qos 1 --size 64 --window 32 --count 300"
    "tp_q2_64:throughput --qos 2 --size 64 --window 32 --count 300"
    "tp_q1_4096:throughput --qos 1 --size 4096 --window 8 --count 100"
    "lat_q0:latency --qos 0 --count 50"
    "lat_q1:latency --qos 1 --count 50"
    "lat_q2:latency --qos 2 --count 20"
    "idle_20:idle --clients 20 --batch 10 --hold-ms 100"
  )
  for s in "${SMOKE_RUNS[@]}"; do
    read -r -a args <<<"${s#*:}"
    for lib in "${LIBS[@]}"; do
      [[ $((SECONDS - START)) -lt 120 ]] || { echo "run.sh: smoke over its 120 s budget" >&2; exit 1; }
      run "${s%%:*}" 1 "$lib" 30 "${args[@]}" --timeout-ms 10000 --max-seconds 25
    done
  done
  python3 "$ROOT/bench/report.py" "$RAW" --smoke
  echo "run.sh: smoke done in $((SECONDS - START))s"
  exit 0
fi

TIMED_WANTED=0
for g in throughput latency idle; do want $g && TIMED_WANTED=1; done
for ((r = 1; r <= ROUNDS && TIMED_WANTED; r++)); do
  echo "== round $r of $ROUNDS"
  for b in "${ORDER[@]}"; do
    want "$(group_of "$b")" || continue
    read -r -a base <<<"${TIMED[$b]}"
    mapfile -t args < <(scale "${base[@]}")
    for lib in "${LIBS[@]}"; do
      run "$b" "$r" "$lib" 300 "${args[@]}"
    done
  done
done

# result_line BENCH LIB JSON_RESULTS: a measurement made here, not by a harness.
result_line() {
  printf '{"bench":"%s","round":1,"lib":"%s","exit":0,"error":"","result":{"mode":"%s","lib":"%s","ok":true,"results":%s}}\n' \
    "$1" "$2" "${1%%_*}" "$2" "$3" >>"$RAW"
}
fail_line() { # BENCH LIB ERROR
  FAILED=$((FAILED + 1))
  printf '{"bench":"%s","round":1,"lib":"%s","exit":1,"error":"%s","result":null}\n' "$1" "$2" "${3//\"/\'}" >>"$RAW"
  echo "run.sh: FAILED $1 $2: $3" >&2
}

# Instructions per message: callgrind over N1 and N2 messages, the difference
# removes start-up and tear-down.
if want callgrind; then
  command -v valgrind >/dev/null || { echo "run.sh: valgrind missing" >&2; exit 1; }
  N1=2000 N2=10000
  [[ $QUICK -eq 0 ]] || { N1=500; N2=2500; }
  echo "== callgrind (throughput, 64 B, $N1 and $N2 messages)"
  for q in 0 1; do
    for lib in "${LIBS[@]}"; do
      ok=1
      declare -A IR=()
      for n in $N1 $N2; do
        f=$RESULTS/callgrind.$lib.q$q.n$n.out
        if ! timeout -k 5 600 valgrind --tool=callgrind --callgrind-out-file="$f" \
          "$BUILD/bench/${EXE[$lib]}" throughput --qos "$q" --size 64 --window 32 --count "$n" \
          --host 127.0.0.1 --port "$PORT" --timeout-ms 60000 >"$TMP/cg.out" 2>"$TMP/cg.err"; then
          fail_line "callgrind_q$q" "$lib" "harness failed under callgrind: $(tail -n 1 "$TMP/cg.out")"
          ok=0
          break
        fi
        IR[$n]=$(sed -n 's/^summary: \([0-9]*\).*/\1/p; s/^totals: \([0-9]*\).*/\1/p' "$f" | head -n 1)
      done
      [[ $ok -eq 1 ]] || continue
      per=$(( (IR[$N2] - IR[$N1]) / (N2 - N1) ))
      result_line "callgrind_q$q" "$lib" "{\"ir_per_msg\":$per,\"ir_n1\":${IR[$N1]},\"ir_n2\":${IR[$N2]},\"n1\":$N1,\"n2\":$N2}"
      callgrind_annotate --inclusive=no "$RESULTS/callgrind.$lib.q$q.n$N2.out" 2>/dev/null |
        head -n 60 >"$RESULTS/callgrind.$lib.q$q.txt" || true
      rm -f "$RESULTS/callgrind.$lib.q$q.n$N1.out"
      printf '  callgrind_q%s %-10s %s instructions/msg\n' "$q" "$lib" "$per"
    done
  done
fi

# System calls per message: strace -c -f over N1 and N2 messages, in
# throughput mode (where a library may batch) and in latency mode (a
# ping-pong: nothing to batch, so the count does not depend on timing).
# strace_pair BENCH N1 N2 HARNESS-ARGS...
strace_pair() {
  local bench=$1 n1=$2 n2=$3 lib n f ok per
  shift 3
  for lib in "${LIBS[@]}"; do
    ok=1
    declare -A SC=()
    for n in $n1 $n2; do
      f=$RESULTS/strace.$bench.$lib.n$n.txt
      if ! timeout -k 5 300 strace -f -c -o "$f" "$BUILD/bench/${EXE[$lib]}" "$@" --count "$n" \
        --host 127.0.0.1 --port "$PORT" --timeout-ms 30000 >"$TMP/st.out" 2>"$TMP/st.err"; then
        fail_line "$bench" "$lib" "harness failed under strace: $(tail -n 1 "$TMP/st.out")"
        ok=0
        break
      fi
      SC[$n]=$(awk '$NF == "total" { print $4 }' "$f")
    done
    [[ $ok -eq 1 ]] || continue
    per=$(python3 -c "print(round((${SC[$n2]} - ${SC[$n1]}) / ($n2 - $n1), 3))")
    result_line "$bench" "$lib" "{\"syscalls_per_msg\":$per,\"calls_n1\":${SC[$n1]},\"calls_n2\":${SC[$n2]},\"n1\":$n1,\"n2\":$n2}"
    mv "$RESULTS/strace.$bench.$lib.n$n2.txt" "$RESULTS/strace.$bench.$lib.txt"
    rm -f "$RESULTS/strace.$bench.$lib.n$n1.txt"
    printf '  %-15s %-10s %s syscalls/msg\n' "$bench" "$lib" "$per"
  done
}
if want strace; then
  command -v strace >/dev/null || { echo "run.sh: strace missing" >&2; exit 1; }
  N1=2000 N2=10000 L1=500 L2=2500
  [[ $QUICK -eq 0 ]] || { N1=500; N2=2500; L1=200; L2=1000; }
  echo "== strace -c -f (64 B; throughput $N1 and $N2 messages, latency $L1 and $L2)"
  for q in 0 1; do
    strace_pair "strace_q$q" "$N1" "$N2" throughput --qos "$q" --size 64 --window 32
  done
  for q in 0 1; do
    strace_pair "strace_lat_q$q" "$L1" "$L2" latency --qos "$q" --size 64
  done
fi

# .text: mqttc's shared library and its objects (core and drivers apart), the
# peers' shared libraries as Debian ships them.
text_of() { size -A "$@" | awk '$1 ~ /^\.text/ { t += $2 } END { print t + 0 }'; }
if want size; then
  echo "== .text"
  CORE=(error utf8 topic codec_encode codec_decode decoder engine)
  objdir=$BUILD/CMakeFiles/mqttc_core.dir/src
  core=0 drivers=0 objects=""
  for o in "$objdir"/*.c.o; do
    n=${o##*/}
    t=$(text_of "$o")
    objects+="${objects:+,}\"${n%.c.o}\":$t"
    if [[ " ${CORE[*]} " == *" ${n%.c.o} "* ]]; then core=$((core + t)); else drivers=$((drivers + t)); fi
    printf '  %-20s %8s\n' "${n%.c.o}" "$t"
  done
  so=$(readlink -f "$BUILD/libmqttc.so")
  for lib in "${LIBS[@]}"; do
    case $lib in
      mqttc) result_line size mqttc "{\"text\":$(text_of "$so"),\"core_text\":$core,\"drivers_text\":$drivers,\"objects\":{$objects}}" ;;
      mosquitto) f=$(readlink -f /usr/lib/x86_64-linux-gnu/libmosquitto.so.1)
                 result_line size mosquitto "{\"text\":$(text_of "$f")}" ;;
      paho) f=$(readlink -f /usr/lib/x86_64-linux-gnu/libpaho-mqtt3a.so.1)
            result_line size paho "{\"text\":$(text_of "$f")}" ;;
    esac
  done
  echo "  mqttc core $core, drivers $drivers, libmqttc.so $(text_of "$so")"
fi

# 10,000 idle clients in one process (skipped by --quick).
if want c10k && [[ $QUICK -eq 0 ]]; then
  echo "== 10,000 idle clients (fd limit $FD_LIMIT)"
  for lib in "${LIBS[@]}"; do
    run c10k 1 "$lib" 600 idle --clients 10000 --batch 200 --hold-ms 3000 --timeout-ms 30000 --max-seconds 550
  done
  # A client that needs 3 descriptors (socket + wake pipe or socket pair)
  # cannot reach 10,000 under a 20,000 limit: compare them all at the most
  # that 3 per client allow too.
  CMAX=$(( (FD_LIMIT - 100) / 3 ))
  if [[ $CMAX -lt 10000 ]]; then
    echo "== $CMAX idle clients (fd limit $FD_LIMIT / 3)"
    for lib in "${LIBS[@]}"; do
      run cmax 1 "$lib" 600 idle --clients "$CMAX" --batch 200 --hold-ms 3000 --timeout-ms 30000 --max-seconds 550
    done
  fi
fi
C10K_FAILED=$(grep -c '"bench":"c10k".*"exit":[1-9]' "$RAW" || true)

QUICK_NOTE=""
[[ $QUICK -eq 0 ]] || QUICK_NOTE=" --quick"
HEADER="Run $(date -u +%Y-%m-%dT%H:%MZ), mqttc $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), \
$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores, fd limit $FD_LIMIT, \
command: bench/run.sh$QUICK_NOTE --rounds $ROUNDS${ONLY:+ --only $ONLY}"
echo
echo "$HEADER"
python3 "$ROOT/bench/report.py" "$RAW" --md "$TABLE" --header "$HEADER"
echo "run.sh: $FAILED failed run(s) ($C10K_FAILED of them 10,000-client runs); table in ${TABLE#"$ROOT"/}, every run in ${RAW#"$ROOT"/} ($((SECONDS - START))s)"
# a library that cannot hold 10,000 clients is a result; any other failure is not
[[ $((FAILED - C10K_FAILED)) -eq 0 ]]
