#!/usr/bin/env bash
# mqttc pub / sub across connection loss and process death, against a
# mosquitto (with persistence) that this script starts, restarts, stops and
# continues on one free loopback port:
#  - pub -l keeps going across a broker restart and exits 0 only when every
#    line was acknowledged; sub -c -i resumes its session across it;
#  - pub --store, killed with SIGKILL while its messages wait for
#    acknowledgements, re-sends them when run again with the same -i;
#  - sub -c -i, stopped and started again, gets what was published meanwhile.
# Usage: tests/cli/test_cli_resume.sh path/to/mqttc
# Prints one line per check and "N passed, M failed"; exits 1 on any failure.
set -u

MQTTC=${1:?usage: $0 path/to/mqttc}
case $MQTTC in /*) ;; *) MQTTC=$PWD/$MQTTC ;; esac
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
T=30
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-resume.XXXXXX")
BROKER_PID=
PIDS=()
PASSED=0
FAILED=0

cleanup() {
    local pid
    [ -n "$BROKER_PID" ] && kill -CONT "$BROKER_PID" 2>/dev/null
    for pid in "${PIDS[@]}" "$BROKER_PID"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/lib.sh"
check() { # check NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "failed: $*"; fi
}

PORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<CONF
user root
persistence true
persistence_location $WORK/
log_dest stderr
log_type all
max_inflight_messages 20
listener $PORT 127.0.0.1
allow_anonymous true
CONF

start_broker() {
    "$MOSQUITTO" -c "$WORK/mosquitto.conf" >>"$WORK/broker.log" 2>&1 &
    BROKER_PID=$!
    local i
    for i in $(seq 1 100); do
        port_open "$PORT" && return 0
        sleep 0.05
    done
    echo "cannot start mosquitto:"
    tail -n 20 "$WORK/broker.log"
    exit 1
}

stop_broker() { # SIGTERM: mosquitto saves its sessions
    kill "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
}

wait_log() { # wait_log PATTERN: bounded wait for the broker log
    local i
    for i in $(seq 1 200); do
        grep -q -- "$1" "$WORK/broker.log" && return 0
        sleep 0.05
    done
    return 1
}

H=(-h 127.0.0.1 -p "$PORT")
start_broker

# ---- 1. pub -l and sub -c across a broker restart ---------------------------
N=400
timeout "$T" "$MQTTC" sub "${H[@]}" -c -i resume-sub -q 2 -t resume/lines -C "$N" \
    >"$WORK/sub1.out" 2>"$WORK/sub1.err" &
SUB=$!
PIDS+=("$SUB")
wait_log "Sending SUBACK to resume-sub"
mkfifo "$WORK/lines"
timeout "$T" "$MQTTC" pub "${H[@]}" -c -i resume-pub -q 2 -t resume/lines -l \
    <"$WORK/lines" >"$WORK/pub1.out" 2>"$WORK/pub1.err" &
PUB=$!
PIDS+=("$PUB")
{
    for i in $(seq 1 $((N / 2))); do echo "line $i"; done
    sleep 0.5
    # the restart happens while this writer keeps the fifo open
    sleep 1.5
    for i in $(seq $((N / 2 + 1)) "$N"); do echo "line $i"; done
} >"$WORK/lines" &
WRITER=$!
sleep 0.5
stop_broker
sleep 0.5
start_broker
wait "$WRITER"
wait "$PUB"
PUB_RC=$?
wait "$SUB"
SUB_RC=$?
check "pub -l exits 0 after a broker restart (every line acknowledged)" test "$PUB_RC" -eq 0
check "sub -c -i resumes its session and exits after -C $N" test "$SUB_RC" -eq 0
got=$(sort -u "$WORK/sub1.out" | wc -l)
total=$(wc -l <"$WORK/sub1.out")
check "all $N lines arrived across the restart, each once at QoS 2 (got $got distinct, $total in all)" \
    test "$got" -eq "$N" -a "$total" -eq "$N"
grep -q "reconnecting" "$WORK/pub1.err" && ok "pub reported the lost connection" ||
    not_ok "pub reported the lost connection" "$(head -c 300 "$WORK/pub1.err")"

# ---- 2. pub --store killed with SIGKILL, run again --------------------------
for qos in 1 2; do
    id=store-pub-q$qos
    topic=resume/store$qos
    # QoS 1 may deliver twice: count up to 20 copies, for at most 6 s
    if [ "$qos" = 2 ]; then limit=(-C 11); else limit=(-C 20 -W 6); fi
    timeout "$T" "$MQTTC" sub "${H[@]}" -c -i store-sub-q$qos -q 2 -t "$topic" "${limit[@]}" \
        >"$WORK/sub2.out" 2>"$WORK/sub2.err" &
    SUB=$!
    PIDS+=("$SUB")
    wait_log "Sending SUBACK to store-sub-q$qos"
    rm -f "$WORK/ten"
    mkfifo "$WORK/ten"
    "$MQTTC" pub "${H[@]}" -c -i "$id" -q "$qos" -t "$topic" -l --store "$WORK/store" \
        <"$WORK/ten" >/dev/null 2>"$WORK/pub2.err" &
    PUB=$!
    exec 4>"$WORK/ten" # open the fifo for pub, and keep it open
    wait_log "Sending CONNACK to $id"
    sleep 0.2
    kill -STOP "$BROKER_PID" # connected; from now on nothing is acknowledged
    seq 1 10 | sed 's/^/stored /' >&4
    sleep 1
    kill -KILL "$PUB"
    wait "$PUB" 2>/dev/null
    exec 4>&-
    kill -CONT "$BROKER_PID"
    timeout "$T" "$MQTTC" pub "${H[@]}" -c -i "$id" -q "$qos" -t "$topic" -m last -d \
        --store "$WORK/store" >/dev/null 2>"$WORK/pub3.err"
    rc=$?
    check "QoS $qos: pub --store run again after SIGKILL exits 0" test "$rc" -eq 0
    grep -q "10 unacknowledged message(s) restored" "$WORK/pub3.err" &&
        ok "QoS $qos: the killed run's 10 messages were restored from the store" ||
        not_ok "QoS $qos: the killed run's 10 messages were restored from the store" \
            "$(grep -v 'mqttc: debug' "$WORK/pub3.err" | head -c 400)"
    wait "$SUB"
    got=$(sort -u "$WORK/sub2.out" | wc -l)
    total=$(wc -l <"$WORK/sub2.out")
    if [ "$qos" = 2 ]; then
        check "QoS 2: the 10 lines and 'last' arrived exactly once ($total received)" \
            test "$got" -eq 11 -a "$total" -eq 11
    else
        check "QoS 1: the 10 lines and 'last' arrived ($got distinct)" test "$got" -eq 11
    fi
done

# ---- 3. sub -c -i stopped and started again --------------------------------
timeout "$T" "$MQTTC" sub "${H[@]}" -c -i away-sub -q 1 -t resume/away -C 1 >/dev/null 2>&1 &
SUB=$!
wait_log "Sending SUBACK to away-sub"
"$MQTTC" pub "${H[@]}" -q 1 -t resume/away -m first
wait "$SUB"
for i in 1 2 3 4 5; do "$MQTTC" pub "${H[@]}" -q 1 -t resume/away -m "while away $i"; done
out=$(timeout "$T" "$MQTTC" sub "${H[@]}" -c -i away-sub -q 1 -t resume/away -C 5 2>&1)
check "sub -c -i gets the 5 messages published while it was away" \
    test "$(printf '%s\n' "$out" | grep -c 'while away')" -eq 5

# ---- 4. bad store usage ------------------------------------------------------
echo "not a store" >"$WORK/file"
out=$(timeout "$T" "$MQTTC" pub "${H[@]}" -i x -t a -m b --store "$WORK/file/sub" 2>&1)
rc=$?
check "an unusable --store directory is exit 1 with a message" \
    test "$rc" -eq 1 -a -n "$(printf '%s' "$out" | grep 'cannot use the store')"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
