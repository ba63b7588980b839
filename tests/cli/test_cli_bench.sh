#!/usr/bin/env bash
# End-to-end test of `mqttc bench` against a mosquitto broker that this
# script starts on a free loopback port (and stops on exit): small runs at
# QoS 0, 1 and 2, fan-in and fan-out, a fixed rate, --json checked with
# python3, a small connection storm, failures and usage errors. Counts are
# checked exactly where the protocol promises them; no speed is asserted.
#
# Usage: tests/cli/test_cli_bench.sh path/to/mqttc
#   MQTTC_WRAP="valgrind -q --error-exitcode=99" runs every mqttc under a tool.
# Prints one line per check and a last line "N passed, M failed"; exits 1 if
# anything failed. Every command runs under `timeout`.
set -u

MQTTC=${1:?usage: $0 path/to/mqttc}
case $MQTTC in /*) ;; *) MQTTC=$PWD/$MQTTC ;; esac
read -r -a WRAP <<<"${MQTTC_WRAP:-}"
for tool in mosquitto python3 timeout; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "FAIL: $tool is not installed (run scripts/deps.sh)"
        exit 1
    fi
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

T=${MQTTC_BENCH_T:-30} # seconds any single command may take
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-bench.XXXXXX")
BROKER_PID=
PASSED=0
FAILED=0

cleanup() {
    if [ -n "$BROKER_PID" ]; then
        kill "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/lib.sh"

# ---- the broker (as tests/cli/test_cli.sh starts it) -------------------------
# Queues large enough that mosquitto's own limits (max_queued_messages,
# max_inflight_messages: it drops QoS 2 messages beyond them) never decide
# a count here.
start_broker() {
    local try i
    for try in 1 2 3; do
        PORT=$(free_port)
        cat >"$WORK/mosquitto.conf" <<EOF
log_dest stderr
listener $PORT 127.0.0.1
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 100
EOF
        "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/broker.log" 2>&1 &
        BROKER_PID=$!
        for i in $(seq 1 50); do
            if port_open "$PORT"; then
                return 0
            fi
            kill -0 "$BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$BROKER_PID" 2>/dev/null
        wait "$BROKER_PID" 2>/dev/null
        BROKER_PID=
    done
    echo "cannot start mosquitto:"
    cat "$WORK/broker.log"
    exit 1
}

start_broker
H=(-h 127.0.0.1 -p "$PORT")

# bench ARGS...: run mqttc bench; stdout in $OUT, stderr in $ERR, status in $RC.
bench() {
    timeout "$T" "${WRAP[@]}" "$MQTTC" bench "$@" >"$WORK/out" 2>"$WORK/err"
    RC=$?
    OUT=$(cat "$WORK/out")
    ERR=$(cat "$WORK/err")
}

# check_json NAME EXPR...: each python EXPR must hold for the JSON object j
# that the last bench printed (its only stdout line).
check_json() {
    local name=$1
    shift
    local why
    why=$(python3 - "$WORK/out" "$@" <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
lines = text.splitlines()
if len(lines) != 1:
    print("expected one line of JSON, got %d: %r" % (len(lines), text[:300]))
    sys.exit(1)
try:
    j = json.loads(lines[0])
except ValueError as e:
    print("not JSON: %s: %r" % (e, text[:300]))
    sys.exit(1)
bad = [e for e in sys.argv[2:] if not eval(e, {}, {"j": j})]
if bad:
    print("false: %s in %s" % ("; ".join(bad), lines[0]))
    sys.exit(1)
EOF
    )
    if [ $? -eq 0 ] && [ "$RC" -eq 0 ]; then
        ok "$name"
    else
        not_ok "$name" "exit $RC" "$why" "$ERR"
    fi
}

# ---- help and usage errors ------------------------------------------------------
bench --help
missing=
for opt in --pub --sub --qos --size --topic --topics --rate --count --duration --window \
    --threads --timeout --json --connections --connect-rate --hold --host --port --url \
    --username --pw --keepalive --id-prefix --debug --quiet --cafile --ws-path --help; do
    grep -q -- "$opt" <<<"$OUT" || missing="$missing $opt"
done
if [ "$RC" -eq 0 ] && [ -z "$missing" ]; then
    ok "bench --help documents every option (exit 0)"
else
    not_ok "bench --help" "exit $RC" "missing:$missing"
fi

usage_error() { # expected-text args...
    local want=$1
    shift
    bench "$@"
    if [ "$RC" -eq 1 ] && grep -q "^Error: .*$want" <<<"$ERR" && [ -z "$OUT" ]; then
        ok "usage error: bench $* (exit 1: $ERR)"
    else
        not_ok "usage error: bench $*" "exit $RC" "stderr: $ERR" "stdout: $OUT"
    fi
}
usage_error "unknown option '--bogus'" --bogus
usage_error "invalid value '0' for --pub" --pub 0
usage_error "invalid QoS '3'" -q 3
usage_error "invalid value '10' for --size" --size 10
usage_error "invalid value 'many' for --topics" --topics many
usage_error "--count needs an argument" --count
usage_error "need --connections" --hold 3
usage_error "takes none of" --connections 5 --pub 2
usage_error "invalid topic" -t 'a/#'
usage_error "unknown option '-m'" -m hello

# ---- messages at each QoS --------------------------------------------------------
# 2 publishers x 200 messages, 2 subscribers of BASE/+: 800 deliveries expected.
bench "${H[@]}" -q 0 --pub 2 --sub 2 -C 200 --json
check_json "QoS 0: 2 pub x 2 sub, counts add up" \
    'j["mode"] == "messages" and j["qos"] == 0' 'j["sent"] == 400' 'j["expected"] == 800' \
    'j["received"] + j["lost"] == 800' 'j["received"] <= 800' \
    'j["latency_us"]["p50"] <= j["latency_us"]["p99"] <= j["latency_us"]["max"]' \
    'j["reconnects"] == 0' 'j["threads"] >= 1'

for q in 1 2; do
    bench "${H[@]}" -q $q --pub 2 --sub 2 -C 200 --json
    check_json "QoS $q: 2 pub x 2 sub, every message once" \
        "j['qos'] == $q" 'j["sent"] == 400 and j["completed"] == 400' \
        'j["expected"] == 800 and j["received"] == 800' 'j["lost"] == 0' \
        'j["duplicated"] == 0' 'j["drained"] and not j["stalled"]' \
        'j["latency_us"]["max"] > 0' 'j["cpu_us_per_msg"] > 0'
done

# ---- fan-in and fan-out ----------------------------------------------------------
bench "${H[@]}" -q 1 --pub 4 --sub 1 --topics shared -C 100 --threads 2 --json
check_json "fan-in: 4 publishers on one topic -> 1 subscriber" \
    'j["topics"] == "shared" and j["publishers"] == 4' 'j["sent"] == 400' \
    'j["received"] == 400 and j["lost"] == 0 and j["duplicated"] == 0'

bench "${H[@]}" -q 2 --pub 1 --sub 4 -C 100 --json
check_json "fan-out: 1 publisher -> 4 subscribers" \
    'j["subscribers"] == 4' 'j["sent"] == 100' 'j["expected"] == 400' \
    'j["received"] == 400 and j["lost"] == 0 and j["duplicated"] == 0'

# ---- a fixed rate for a duration ------------------------------------------------------
# 50 msgs/s per publisher for 1 s: the limiter allows at most one period's
# burst more than 50 each; no lower bound is asserted (a slow machine).
bench "${H[@]}" -q 1 --pub 2 --sub 1 --rate 50 --duration 1 --json
check_json "fixed rate: --rate 50 --duration 1 sends at most the rate" \
    'j["rate"] == 50' '0 < j["sent"] <= 2 * 52' 'j["received"] == j["sent"]' 'j["lost"] == 0'

# ---- text summary ---------------------------------------------------------------
bench "${H[@]}" -q 1 -C 50 -s 200
if [ "$RC" -eq 0 ] && grep -q "sent  *50 " <<<"$OUT" && grep -q "received  *50 of 50 expected" <<<"$OUT" &&
    grep -q "latency (us)  *p50 .* p90 .* p99 .* max " <<<"$OUT" && grep -q "lost  *0, duplicated 0" <<<"$OUT" &&
    grep -q "cpu .* us per message" <<<"$OUT" && grep -q "reconnects  *0" <<<"$OUT"; then
    ok "text summary: sent, received, latency, lost, cpu, reconnects"
else
    not_ok "text summary" "exit $RC" "$OUT" "$ERR"
fi
if [ -z "$ERR" ]; then
    ok "no progress line when stderr is not a terminal"
else
    not_ok "no progress line when stderr is not a terminal" "stderr: $ERR"
fi

# ---- a progress line on a terminal; SIGINT ends the run with a summary -----------
if command -v script >/dev/null 2>&1; then
    timeout "$T" script -qec "$(printf '%q ' "${WRAP[@]}" "$MQTTC" bench "${H[@]}" -q 1 --rate 200 --duration 2)" \
        /dev/null >"$WORK/tty" 2>&1
    RC=$?
    if [ "$RC" -eq 0 ] && grep -q "running: sent [0-9]* ([0-9]*/s), received [0-9]* ([0-9]*/s), in flight [0-9]*, reconnects 0" "$WORK/tty" &&
        grep -q "received  *[0-9]* of [0-9]* expected" "$WORK/tty"; then
        ok "progress line on a terminal, then the summary"
    else
        not_ok "progress line on a terminal" "exit $RC" "$(tr '\r' '\n' <"$WORK/tty" | tail -n 12)"
    fi
else
    echo "skip - progress line on a terminal: no script(1)"
fi

timeout "$T" "${WRAP[@]}" "$MQTTC" bench "${H[@]}" -q 1 --rate 100 --duration 60 --json >"$WORK/out" 2>"$WORK/err" &
pid=$!
sleep 2
kill -INT "$pid"
wait "$pid"
RC=$?
OUT=$(cat "$WORK/out")
ERR=$(cat "$WORK/err")
check_json "SIGINT: publishing stops, the drain completes, summary printed (exit 0)" \
    'j["interrupted"]' 'j["sent"] > 0 and j["publish_s"] < 30' 'j["received"] == j["sent"]' \
    'j["lost"] == 0 and j["drained"]'

# ---- connection storm ------------------------------------------------------------
bench "${H[@]}" --connections 50 --connect-rate 500 --hold 1 --json
check_json "storm: 50 connections at 500/s held 1 s" \
    'j["mode"] == "storm" and j["connections"] == 50' 'j["connected"] == 50' \
    'j["failed"] == 0 and j["dropped"] == 0' \
    '0 <= j["connect_ms"]["p50"] <= j["connect_ms"]["p99"] <= j["connect_ms"]["max"]' \
    'j["nofile_limit"] >= 50' '"rss_per_conn_bytes" in j and "heap_per_conn_bytes" in j'

bench "${H[@]}" --connections 10 --connect-rate 1000 --hold 0
if [ "$RC" -eq 0 ] && grep -q "connected  *10, failed 0" <<<"$OUT" &&
    grep -q "connect (ms)  *p50 .* p99 .* max " <<<"$OUT" && grep -q "per connection" <<<"$OUT"; then
    ok "storm: text summary"
else
    not_ok "storm: text summary" "exit $RC" "$OUT" "$ERR"
fi

# ---- failures: nothing listens on DEAD ---------------------------------------------
DEAD=$(free_port)
bench -h 127.0.0.1 -p "$DEAD" --connections 3 --connect-rate 100 --hold 0 -W 5 --json
if [ "$RC" -eq 2 ] && python3 -c 'import json,sys;j=json.load(open(sys.argv[1]));sys.exit(0 if j["failed"]==3 and j["connected"]==0 else 1)' "$WORK/out"; then
    ok "storm against a closed port: 3 failed, exit 2"
else
    not_ok "storm against a closed port" "exit $RC" "$OUT" "$ERR"
fi

bench -h 127.0.0.1 -p "$DEAD" -C 10 -W 5
if [ "$RC" -eq 1 ] && grep -q "clients connected" <<<"$ERR"; then
    ok "messages against a closed port: exit 1 ($(head -n 1 <<<"$ERR"))"
else
    not_ok "messages against a closed port" "exit $RC" "$OUT" "$ERR"
fi

# ---- too few file descriptors: the storm says so and fails ----------------------------
# A hard limit of 80 leaves 16 for connections (64 are kept for the rest;
# valgrind takes a few more for itself, hence nofile_limit - 64).
(
    ulimit -n 80 || exit 77
    bench "${H[@]}" --connections 40 --connect-rate 1000 --hold 0 --json
    echo "$RC" >"$WORK/rc"
    printf '%s\n' "$ERR" >"$WORK/err.nofile"
)
if [ -s "$WORK/rc" ]; then
    RC=$(cat "$WORK/rc")
    ERR=$(cat "$WORK/err.nofile")
    if [ "$RC" -eq 2 ] && grep -q "RLIMIT_NOFILE allows [0-9]* descriptors" <<<"$ERR" &&
        python3 -c 'import json,sys;j=json.load(open(sys.argv[1]));n=j["nofile_limit"]-64;sys.exit(0 if j["requested"]==40 and 0<n<=16 and j["connections"]==n and j["connected"]==n else 1)' "$WORK/out"; then
        ok "storm beyond RLIMIT_NOFILE: opens what it may, says so, exit 2 ($(head -n 1 <<<"$ERR"))"
    else
        not_ok "storm beyond RLIMIT_NOFILE" "exit $RC" "$(cat "$WORK/out")" "$ERR"
    fi
else
    not_ok "storm beyond RLIMIT_NOFILE: cannot lower the limit in a subshell"
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
