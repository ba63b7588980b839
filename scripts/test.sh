#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run). Stages, in order, stopping at
# the first failure:
#   asan-gcc    gcc, ASan+UBSan, Debug            build/asan-gcc   + ctest
#   asan-clang  clang, ASan+UBSan, -O2, corpora   build/asan-clang + ctest
#   release     gcc -Os (MinSizeRel)              build/release    + ctest + core size report
#   tsan        clang, ThreadSanitizer            build/tsan       + ctest (the threaded client)
#   valgrind    unit tests, selftest and the short soak of build/release under memcheck
#   fuzz        each libFuzzer target for FUZZ_SECONDS over a copy of its corpus
#
# Usage: scripts/test.sh [--quick] [--fuzz-seconds N]
#   --quick           skip the valgrind and fuzz stages (a developer's loop)
#   --fuzz-seconds N  seconds per fuzz target (default: $FUZZ_SECONDS or 60)
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

QUICK=0
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --fuzz-seconds) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; FUZZ_SECONDS=$2; shift ;;
    --fuzz-seconds=*) FUZZ_SECONDS=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $FUZZ_SECONDS =~ ^[0-9]+$ ]] || { echo "test.sh: --fuzz-seconds wants a whole number" >&2; exit 2; }

JOBS=2
CTEST_TIMEOUT=600        # default per-test limit for tests that set none
VALGRIND_TEST_LIMIT=600  # seconds for one executable under valgrind
VALGRIND_STAGE_LIMIT=1800
CORE_OBJECTS=(error utf8 topic codec_encode codec_decode decoder engine)

# Sanitizer behaviour for every instrumented binary (tests and fuzzers).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# ---- stage bookkeeping ------------------------------------------------------

ALL_STAGES=(deps asan-gcc asan-clang release tsan valgrind fuzz)
declare -A RESULT=()
STAGE=""
STAGE_START=0
WORK=""

begin() {
  STAGE=$1
  STAGE_START=$SECONDS
  printf '\n==== %s ====\n' "$1"
}

pass() { # [note]
  RESULT[$STAGE]=$(printf 'PASS %5ss  %s' $((SECONDS - STAGE_START)) "${1:-}")
  STAGE=""
}

skip() { # stage reason
  RESULT[$1]=$(printf 'SKIP         %s' "$2")
}

die() {
  echo "test.sh: $*" >&2
  exit 1
}

summary() {
  local rc=$1 s npass=0 nfail=0 nskip=0
  if [[ -n $STAGE ]]; then
    RESULT[$STAGE]=$(printf 'FAIL %5ss  exit code %s' $((SECONDS - STAGE_START)) "$rc")
  fi
  printf '\n==== summary ====\n'
  for s in "${ALL_STAGES[@]}"; do
    case ${RESULT[$s]:-} in
      PASS*) npass=$((npass + 1)) ;;
      FAIL*) nfail=$((nfail + 1)) ;;
      SKIP*) nskip=$((nskip + 1)) ;;
      *) RESULT[$s]="not run"; nskip=$((nskip + 1)) ;;
    esac
    printf '%-11s %s\n' "$s" "${RESULT[$s]}"
  done
  if [[ $rc -ne 0 ]]; then
    [[ $nfail -gt 0 ]] || nfail=1
    printf 'test.sh: FAILED in stage %s (total %ss)\n' "${STAGE:-setup}" "$SECONDS"
  else
    printf 'test.sh: all stages passed (total %ss)\n' "$SECONDS"
  fi
  printf 'stages: %d passed, %d failed, %d skipped\n' "$npass" "$nfail" "$nskip"
}

on_exit() {
  local rc=$?
  [[ -z $WORK ]] || rm -rf "$WORK"
  summary "$rc"
  exit "$rc"
}
trap on_exit EXIT

# ---- helpers ----------------------------------------------------------------

# configure DIR CMAKE-ARGS...: (re)configure a build directory with Ninja.
configure() {
  local dir=$1
  shift
  if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$dir/CMakeCache.txt"; then
    echo "test.sh: $dir was configured with another generator; starting it afresh"
    rm -rf "$dir"
  fi
  cmake -S "$ROOT" -B "$dir" -G Ninja -Wno-dev "$@"
}

build() { # DIR [TARGET...]
  local dir=$1
  shift
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$dir" -j "$JOBS" "${targets[@]}"
}

run_ctest() { # DIR
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$JOBS" --timeout "$CTEST_TIMEOUT"
}

fuzz_targets() {
  local f
  for f in "$ROOT"/tests/fuzz/fuzz_*.c; do
    [[ -e $f ]] || continue
    f=${f##*/}
    echo "${f%.c}"
  done
}

# size_report LIB: .text/.rodata of the protocol core objects in a static library.
size_report() {
  local lib=$1 tmp o obj text rodata data bss ttext=0 trodata=0 tdata=0 tbss=0
  tmp=$(mktemp -d)
  local objs=()
  for o in "${CORE_OBJECTS[@]}"; do objs+=("$o.c.o"); done
  (cd "$tmp" && ar x "$lib" "${objs[@]}") || { rm -rf "$tmp"; die "core objects missing from $lib"; }
  printf '\ncode size of the protocol core (%s, gcc -Os, bytes):\n' "$(uname -m)"
  printf '  %-16s %8s %8s %8s %8s\n' object .text .rodata .data .bss
  for o in "${CORE_OBJECTS[@]}"; do
    obj=$tmp/$o.c.o
    read -r text rodata data bss < <(size -A "$obj" | awk '
      $1 ~ /^\.text/   { t += $2 }
      $1 ~ /^\.rodata/ { r += $2 }
      $1 ~ /^\.data/   { d += $2 }
      $1 ~ /^\.bss/    { b += $2 }
      END { print t + 0, r + 0, d + 0, b + 0 }')
    printf '  %-16s %8d %8d %8d %8d\n' "$o" "$text" "$rodata" "$data" "$bss"
    ttext=$((ttext + text)); trodata=$((trodata + rodata))
    tdata=$((tdata + data)); tbss=$((tbss + bss))
  done
  printf '  %-16s %8d %8d %8d %8d\n' total "$ttext" "$trodata" "$tdata" "$tbss"
  rm -rf "$tmp"
  CORE_TEXT=$ttext
  CORE_RODATA=$trodata
}

# ---- stages -----------------------------------------------------------------

begin deps
./scripts/deps.sh
echo "$(gcc --version | head -n1); $(clang --version | head -n1); $(cmake --version | head -n1)"
pass

begin asan-gcc
configure build/asan-gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug -DMQTTC_SANITIZE=ON -DMQTTC_FUZZ=OFF
build build/asan-gcc
run_ctest build/asan-gcc
pass

# clang at -O2 with the sanitizers, and the fuzzers built too, so that ctest
# replays every committed fuzz corpus even in --quick runs.
begin asan-clang
configure build/asan-clang -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQTTC_SANITIZE=ON -DMQTTC_FUZZ=ON
build build/asan-clang
run_ctest build/asan-clang
pass

# -g does not change the sizes reported (debug sections are not loaded) and
# gives valgrind line numbers.
begin release
configure build/release -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=MinSizeRel \
  "-DCMAKE_C_FLAGS_MINSIZEREL=-Os -DNDEBUG -g" -DMQTTC_SANITIZE=OFF -DMQTTC_FUZZ=OFF
build build/release
run_ctest build/release
CORE_TEXT=0
CORE_RODATA=0
size_report "$ROOT/build/release/libmqttc.a"
LINKED=$(./scripts/core_size.sh gcc) || die "scripts/core_size.sh failed"
printf '\n%s\n' "$LINKED"
"$ROOT/bench/run.sh" --smoke --build-dir build/release  # harnesses vs mosquitto, libmosquitto, Paho: counts only
pass "core .text $CORE_TEXT B, .rodata $CORE_RODATA B; linked: $(tail -n1 <<<"$LINKED") B"

# Every test again under ThreadSanitizer: the client's thread, the resolver
# thread, callbacks calling back into the client from several threads.
begin tsan
configure build/tsan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQTTC_TSAN=ON -DMQTTC_FUZZ=OFF
build build/tsan
run_ctest build/tsan
pass

if [[ $QUICK -eq 1 ]]; then
  skip valgrind "--quick"
else
  begin valgrind
  command -v valgrind >/dev/null || die "valgrind is not installed (scripts/deps.sh installs it)"
  mapfile -t exes < <(find build/release/tests -maxdepth 1 -type f -name 'test_*' -perm -u+x | sort)
  [[ ${#exes[@]} -gt 0 ]] || die "no unit test executables in build/release/tests"
  [[ ! -x build/release/tools/mqttc_selftest ]] || exes+=(build/release/tools/mqttc_selftest)
  # The short soak (fewer messages under valgrind; tests/soak/README.md).
  [[ ! -x build/release/tests/soak/soak ]] || exes+=(build/release/tests/soak/soak)
  mkdir -p build/valgrind
  for exe in "${exes[@]}"; do
    left=$((VALGRIND_STAGE_LIMIT - (SECONDS - STAGE_START)))
    [[ $left -gt 0 ]] || die "valgrind stage over its ${VALGRIND_STAGE_LIMIT}s limit"
    limit=$((left < VALGRIND_TEST_LIMIT ? left : VALGRIND_TEST_LIMIT))
    name=${exe##*/}
    log=$ROOT/build/valgrind/$name.log
    t0=$SECONDS
    # Run from the executable's directory, as ctest does.
    if ! (cd "${exe%/*}" && timeout -k 10 "$limit" valgrind -q --error-exitcode=1 \
      --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
      --track-origins=yes "./$name") >"$log" 2>&1; then
      cat "$log"
      die "valgrind: $name failed (memcheck error, test failure or ${limit}s timeout); log: $log"
    fi
    printf 'ok  %-28s %4ss\n' "$name" $((SECONDS - t0))
  done
  pass "${#exes[@]} executables clean"
fi

if [[ $QUICK -eq 1 ]]; then
  skip fuzz "--quick"
elif [[ $FUZZ_SECONDS -eq 0 ]]; then
  skip fuzz "--fuzz-seconds 0"
else
  begin fuzz
  mapfile -t targets < <(fuzz_targets)
  [[ ${#targets[@]} -gt 0 ]] || die "no tests/fuzz/fuzz_*.c targets"
  configure build/fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMQTTC_SANITIZE=OFF -DMQTTC_FUZZ=ON
  build build/fuzz "${targets[@]}"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-fuzz.XXXXXX")
  for t in "${targets[@]}"; do
    seeds=$ROOT/tests/fuzz/corpus/${t#fuzz_}
    [[ -d $seeds ]] || die "$t has no seed corpus in tests/fuzz/corpus/${t#fuzz_}/"
    corpus=$WORK/$t
    mkdir -p "$corpus"
    cp -R "$seeds"/. "$corpus"/
    nseeds=$(find "$corpus" -type f | wc -l)
    art=$ROOT/build/fuzz/artifacts/$t
    rm -rf "$art"
    mkdir -p "$art"
    log=$ROOT/build/fuzz/$t.log
    echo "fuzzing $t for ${FUZZ_SECONDS}s over $nseeds seeds (log: build/fuzz/$t.log)"
    if ! timeout -k 30 $((FUZZ_SECONDS + 300)) "build/fuzz/tests/fuzz/$t" \
      -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$art/" "$corpus" >"$log" 2>&1; then
      tail -n 80 "$log"
      for f in "$art"/*; do
        [[ -f $f ]] || continue
        echo "reproducer $f ($(wc -c <"$f") bytes):"
        head -c 4096 "$f" | od -An -tx1 | head -n 64
      done
      die "fuzz target $t failed; reproducers in build/fuzz/artifacts/$t/ (replay: build/fuzz/tests/fuzz/$t FILE)"
    fi
    runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$log")
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n1 || true)
    grown=$(($(find "$corpus" -type f | wc -l) - nseeds))
    printf 'ok  %-16s %s runs, %s, corpus +%d\n' "$t" "${runs:-?}" "${cov:-cov: ?}" "$grown"
  done
  pass "${#targets[@]} targets x ${FUZZ_SECONDS}s, no crash"
fi
