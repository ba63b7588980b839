#!/usr/bin/env bash
# End-to-end test of the mqttc command-line tool against a mosquitto broker
# that this script starts on a free loopback port (and stops on exit).
# Cross-checks with mosquitto_pub / mosquitto_sub both ways.
#
# Usage: tests/cli/test_cli.sh path/to/mqttc
# Prints one line per check and a last line "N passed, M failed"; exits 1 if
# anything failed, including when a needed program is missing (scripts/deps.sh
# installs them). Every command runs under `timeout`.
set -u

MQTTC=${1:?usage: $0 path/to/mqttc}
case $MQTTC in /*) ;; *) MQTTC=$PWD/$MQTTC ;; esac
for tool in mosquitto mosquitto_pub mosquitto_sub python3 timeout cmp openssl; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
        echo "FAIL: $tool is not installed (run scripts/deps.sh)"
        exit 1
    fi
done
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

T=20 # seconds any single command may take
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mqttc-cli.XXXXXX")
BROKER_PID=
TLS_BROKER_PID=
LOG=$WORK/broker.log # the log wait_subscribed reads
PASSED=0
FAILED=0

cleanup() {
    local pid
    for pid in "$BROKER_PID" "$TLS_BROKER_PID"; do
        if [ -n "$pid" ]; then
            kill "$pid" 2>/dev/null
            wait "$pid" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$(dirname "$0")/lib.sh"

# ---- the broker -------------------------------------------------------------
# Listener PORT: anonymous clients welcome. Listener DENY_PORT: anonymous
# clients refused at CONNACK (code 5). Logs everything, to find SUBACKs.
start_broker() {
    local try
    for try in 1 2 3; do
        PORT=$(free_port)
        DENY_PORT=$(free_port)
        cat >"$WORK/mosquitto.conf" <<EOF
per_listener_settings true
log_dest stderr
log_type all
listener $PORT 127.0.0.1
allow_anonymous true
listener $DENY_PORT 127.0.0.1
allow_anonymous false
EOF
        "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/broker.log" 2>&1 &
        BROKER_PID=$!
        local i
        for i in $(seq 1 50); do
            if port_open "$PORT" &&
                port_open "$DENY_PORT"; then
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
NEXT_ID=0

# A fresh client id, so the broker log tells the clients apart.
new_id() {
    NEXT_ID=$((NEXT_ID + 1))
    ID="cli-test-$NEXT_ID"
}

# Wait until the broker has acknowledged the subscription of client $1.
wait_subscribed() {
    local i
    for i in $(seq 1 100); do
        grep -q "Sending SUBACK to $1\$" "$LOG" && return 0
        sleep 0.05
    done
    return 1
}

# Run a subscriber in the background: bg_sub NAME CMD...; output in
# $WORK/NAME.out / .err; its client id must be $ID (the last new_id).
bg_sub() {
    local name=$1
    shift
    timeout "$T" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SUB_PID=$!
    wait_subscribed "$ID"
}

# wait_sub: wait for the last bg_sub; its exit status in SUB_RC.
wait_sub() {
    wait "$SUB_PID"
    SUB_RC=$?
}

# ---- help and commands ------------------------------------------------------
out=$(timeout "$T" "$MQTTC" --help 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q "mqttc pub" <<<"$out" && grep -q "mqttc sub" <<<"$out" &&
    grep -q "bench" <<<"$out"; then
    ok "mqttc --help lists pub, sub and bench (exit 0)"
else
    not_ok "mqttc --help" "exit $rc" "$out"
fi
for cmd in pub sub; do
    out=$(timeout "$T" "$MQTTC" $cmd --help 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && grep -q -- "-t, --topic" <<<"$out" && grep -q -- "--will-topic" <<<"$out"; then
        ok "mqttc $cmd --help (exit 0)"
    else
        not_ok "mqttc $cmd --help" "exit $rc" "$out"
    fi
done
# mqttc bench itself: tests/cli/test_cli_bench.sh.
err=$(timeout "$T" "$MQTTC" bench --no-such-option 2>&1 >/dev/null)
rc=$?
if [ $rc -eq 1 ] && grep -q "mqttc bench --help" <<<"$err"; then
    ok "mqttc bench: a usage error exits 1 ($err)"
else
    not_ok "mqttc bench" "exit $rc" "$err"
fi

# ---- pub -> sub at each QoS, and both ways with mosquitto --------------------
for q in 0 1 2; do
    new_id
    bg_sub "q$q" "$MQTTC" sub "${H[@]}" -i "$ID" -t "qos/$q" -q "$q" -C 1 -v
    timeout "$T" "$MQTTC" pub "${H[@]}" -t "qos/$q" -q "$q" -m "hello at $q"
    prc=$?
    wait_sub
    if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/q$q.out")" = "qos/$q hello at $q" ]; then
        ok "mqttc pub -> mqttc sub at QoS $q"
    else
        not_ok "mqttc pub -> mqttc sub at QoS $q" "pub exit $prc, sub exit $SUB_RC" \
            "got: $(cat "$WORK/q$q.out" "$WORK/q$q.err")"
    fi

    new_id
    bg_sub "mq$q" mosquitto_sub "${H[@]}" -i "$ID" -t "qos/$q" -q "$q" -C 1 -v
    timeout "$T" "$MQTTC" pub "${H[@]}" -t "qos/$q" -q "$q" -m "to mosquitto at $q"
    prc=$?
    wait_sub
    if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] &&
        [ "$(cat "$WORK/mq$q.out")" = "qos/$q to mosquitto at $q" ] &&
        grep -q "Received PUBLISH from .*q$q, r0, m[0-9]*, 'qos/$q'" "$WORK/broker.log"; then
        ok "mqttc pub -> mosquitto_sub at QoS $q"
    else
        not_ok "mqttc pub -> mosquitto_sub at QoS $q" "pub exit $prc, sub exit $SUB_RC" \
            "got: $(cat "$WORK/mq$q.out" "$WORK/mq$q.err")"
    fi

    new_id
    bg_sub "fm$q" "$MQTTC" sub "${H[@]}" -i "$ID" -t "qos/$q" -q "$q" -C 1 -v
    timeout "$T" mosquitto_pub "${H[@]}" -t "qos/$q" -q "$q" -m "from mosquitto at $q"
    prc=$?
    wait_sub
    if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] &&
        [ "$(cat "$WORK/fm$q.out")" = "qos/$q from mosquitto at $q" ]; then
        ok "mosquitto_pub -> mqttc sub at QoS $q"
    else
        not_ok "mosquitto_pub -> mqttc sub at QoS $q" "pub exit $prc, sub exit $SUB_RC" \
            "got: $(cat "$WORK/fm$q.out" "$WORK/fm$q.err")"
    fi
done

if ! grep -q "mqttc-.*disconnected\.$" "$WORK/broker.log" ||
    grep -q "Client mqttc-.* closed its connection" "$WORK/broker.log"; then
    not_ok "mqttc pub disconnects cleanly (DISCONNECT sent)" \
        "$(grep "mqttc-" "$WORK/broker.log" | grep -v "New client" | tail -3)"
else
    ok "mqttc pub disconnects cleanly (DISCONNECT sent) with a mqttc-<random> client id"
fi

# ---- -l: a message per line ---------------------------------------------------
printf 'one\n\nthree with spaces\r\nlast line without newline' >"$WORK/lines.in"
printf 'lines/x one\nlines/x (null)\nlines/x three with spaces\r\nlines/x last line without newline\n' \
    >"$WORK/lines.expected"
new_id
MOSQ_ID=$ID
timeout "$T" mosquitto_sub "${H[@]}" -i "$MOSQ_ID" -t 'lines/#' -C 4 -v >"$WORK/lines-m.out" 2>&1 &
MOSQ_PID=$!
new_id
bg_sub lines "$MQTTC" sub "${H[@]}" -i "$ID" -t 'lines/#' -C 4 -v -q 1
wait_subscribed "$MOSQ_ID"
timeout "$T" "$MQTTC" pub "${H[@]}" -t lines/x -q 1 -l <"$WORK/lines.in"
prc=$?
wait_sub
wait "$MOSQ_PID"
mrc=$?
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/lines.out" "$WORK/lines.expected"; then
    ok "mqttc pub -l: a message per line (empty line = empty message, last line unterminated)"
else
    not_ok "mqttc pub -l" "pub exit $prc, sub exit $SUB_RC" "got: $(od -c "$WORK/lines.out" | head -5)"
fi
if [ $mrc -eq 0 ] && cmp -s "$WORK/lines-m.out" "$WORK/lines.expected"; then
    ok "mqttc sub -v prints exactly what mosquitto_sub -v prints"
else
    not_ok "mqttc sub -v vs mosquitto_sub -v" "mosquitto_sub exit $mrc" \
        "mosquitto_sub: $(od -c "$WORK/lines-m.out" | head -5)"
fi

seq 1 500 >"$WORK/burst.in"
new_id
bg_sub burst "$MQTTC" sub "${H[@]}" -i "$ID" -t burst -q 2 -C 500
timeout "$T" "$MQTTC" pub "${H[@]}" -t burst -q 2 -l <"$WORK/burst.in"
prc=$?
wait_sub
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/burst.out" "$WORK/burst.in"; then
    ok "500 lines at QoS 2 through pub -l and sub -C 500, in order"
else
    not_ok "500 lines at QoS 2" "pub exit $prc, sub exit $SUB_RC" "$(tail -2 "$WORK/burst.err")" \
        "got $(wc -l <"$WORK/burst.out") lines"
fi

# ---- -C, -W ------------------------------------------------------------------
new_id
bg_sub count "$MQTTC" sub "${H[@]}" -i "$ID" -t count -C 3
for i in 1 2 3 4 5; do
    timeout "$T" mosquitto_pub "${H[@]}" -t count -m "m$i"
done
wait_sub
if [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/count.out")" = "$(printf 'm1\nm2\nm3')" ]; then
    ok "sub -C 3: exit 0 after three messages"
else
    not_ok "sub -C 3" "exit $SUB_RC" "got: $(cat "$WORK/count.out" "$WORK/count.err")"
fi

start=$(date +%s)
timeout "$T" "$MQTTC" sub "${H[@]}" -t nothing/here -W 1 >"$WORK/w.out" 2>"$WORK/w.err"
rc=$?
took=$(($(date +%s) - start))
timeout "$T" mosquitto_sub "${H[@]}" -t nothing/here -W 1 >/dev/null 2>&1
mrc=$?
if [ $rc -eq 27 ] && [ $mrc -eq 27 ] && [ $took -le 4 ] && grep -q "Timed out" "$WORK/w.err"; then
    ok "sub -W 1: 'Timed out' and exit 27, as mosquitto_sub"
else
    not_ok "sub -W 1" "exit $rc (mosquitto_sub $mrc) after ${took}s" "$(cat "$WORK/w.err")"
fi
timeout "$T" "$MQTTC" sub "${H[@]}" -t nothing/here -W 1 --quiet >/dev/null 2>"$WORK/wq.err"
rc=$?
if [ $rc -eq 27 ] && [ ! -s "$WORK/wq.err" ]; then
    ok "sub -W 1 --quiet: exit 27, nothing on stderr"
else
    not_ok "sub -W 1 --quiet" "exit $rc" "$(cat "$WORK/wq.err")"
fi

# ---- retained messages and -R -------------------------------------------------
timeout "$T" "$MQTTC" pub "${H[@]}" -t retained/x -m stale -r -q 1
new_id
bg_sub fresh "$MQTTC" sub "${H[@]}" -i "$ID" -t 'retained/#' -R -C 1 -v
timeout "$T" "$MQTTC" pub "${H[@]}" -t retained/x -m fresh
wait_sub
timeout "$T" "$MQTTC" sub "${H[@]}" -t 'retained/#' -C 1 -v >"$WORK/stale.out" 2>&1
src=$?
if [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/fresh.out")" = "retained/x fresh" ] && [ $src -eq 0 ] &&
    [ "$(cat "$WORK/stale.out")" = "retained/x stale" ]; then
    ok "pub -r retains; sub -R skips the retained message and prints the fresh one"
else
    not_ok "retained and -R" "exits $SUB_RC/$src" "with -R: $(cat "$WORK/fresh.out")" \
        "without: $(cat "$WORK/stale.out")"
fi
timeout "$T" "$MQTTC" pub "${H[@]}" -t retained/x -n -r
timeout "$T" "$MQTTC" sub "${H[@]}" -t 'retained/#' -W 1 --quiet >"$WORK/cleared.out"
rc=$?
if [ $rc -eq 27 ] && [ ! -s "$WORK/cleared.out" ]; then
    ok "pub -n -r clears the retained message"
else
    not_ok "pub -n -r clears" "exit $rc" "$(cat "$WORK/cleared.out")"
fi

# ---- -n, -N, -T, -s, -L --------------------------------------------------------
new_id
bg_sub null "$MQTTC" sub "${H[@]}" -i "$ID" -t null -C 2
timeout "$T" "$MQTTC" pub "${H[@]}" -t null -n
timeout "$T" "$MQTTC" pub "${H[@]}" -t null -m after
wait_sub
if [ $SUB_RC -eq 0 ] && [ "$(od -c <"$WORK/null.out" | head -1)" = "$(printf '\nafter\n' | od -c | head -1)" ]; then
    ok "pub -n sends an empty message (an empty line without -v)"
else
    not_ok "pub -n" "exit $SUB_RC" "$(od -c "$WORK/null.out")"
fi

new_id
bg_sub noeol "$MQTTC" sub "${H[@]}" -i "$ID" -t noeol -C 3 -N
for i in a b c; do timeout "$T" "$MQTTC" pub "${H[@]}" -t noeol -m "$i"; done
wait_sub
if [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/noeol.out")" = "abc" ] && [ "$(wc -c <"$WORK/noeol.out")" -eq 3 ]; then
    ok "sub -N prints payloads without newlines"
else
    not_ok "sub -N" "exit $SUB_RC" "$(od -c "$WORK/noeol.out")"
fi

new_id
bg_sub filter "$MQTTC" sub "${H[@]}" -i "$ID" -t 'tree/#' -T 'tree/skip/#' -T tree/no -C 2 -v
for t in tree/skip/a tree/no tree/yes tree/skip tree/yes2; do
    timeout "$T" "$MQTTC" pub "${H[@]}" -t "$t" -m "$t"
done
wait_sub
if [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/filter.out")" = "$(printf 'tree/yes tree/yes\ntree/yes2 tree/yes2')" ]; then
    ok "sub -T filters topics out"
else
    not_ok "sub -T" "exit $SUB_RC" "$(cat "$WORK/filter.out")"
fi

new_id
bg_sub url "$MQTTC" sub -L "mqtt://127.0.0.1:$PORT/url/#" -i "$ID" -t other -C 2 -v
timeout "$T" "$MQTTC" pub -L "mqtt://127.0.0.1:$PORT/url/a" -m "by url"
timeout "$T" "$MQTTC" pub "${H[@]}" -t other -m "by -t"
wait_sub
if [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/url.out")" = "$(printf 'url/a by url\nother by -t')" ]; then
    ok "-L mqtt://host:port/topic (wildcards allowed for sub, with -t too)"
else
    not_ok "-L URL" "exit $SUB_RC" "$(cat "$WORK/url.out" "$WORK/url.err")"
fi

# ---- payloads: binary, 1 MiB, stdin ------------------------------------------
{
    printf 'binary\0with NUL\r\n\377\376'
    head -c 65536 /dev/urandom
    printf '\0'
} >"$WORK/binary.in"
new_id
bg_sub bin "$MQTTC" sub "${H[@]}" -i "$ID" -t bin -q 1 -C 1 -N
timeout "$T" "$MQTTC" pub "${H[@]}" -t bin -q 1 -f "$WORK/binary.in"
prc=$?
wait_sub
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/binary.in" "$WORK/bin.out"; then
    ok "pub -f binary file -> sub -N, byte for byte"
else
    not_ok "binary -f" "pub exit $prc, sub exit $SUB_RC" "$(cmp "$WORK/binary.in" "$WORK/bin.out" 2>&1)"
fi

head -c 1048576 /dev/urandom >"$WORK/mib.in"
new_id
bg_sub mib-m mosquitto_sub "${H[@]}" -i "$ID" -t mib -q 2 -C 1 -N
timeout "$T" "$MQTTC" pub "${H[@]}" -t mib -q 2 -f "$WORK/mib.in"
prc=$?
wait_sub
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/mib.in" "$WORK/mib-m.out"; then
    ok "pub -f 1 MiB at QoS 2 -> mosquitto_sub, byte for byte"
else
    not_ok "1 MiB -f -> mosquitto_sub" "pub exit $prc, sub exit $SUB_RC" \
        "$(cmp "$WORK/mib.in" "$WORK/mib-m.out" 2>&1)"
fi

new_id
bg_sub mib "$MQTTC" sub "${H[@]}" -i "$ID" -t mib -q 1 -C 1 -N
timeout "$T" mosquitto_pub "${H[@]}" -t mib -q 1 -f "$WORK/mib.in"
prc=$?
wait_sub
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/mib.in" "$WORK/mib.out"; then
    ok "mosquitto_pub -f 1 MiB -> mqttc sub, byte for byte"
else
    not_ok "1 MiB mosquitto_pub -> mqttc sub" "pub exit $prc, sub exit $SUB_RC" \
        "$(cmp "$WORK/mib.in" "$WORK/mib.out" 2>&1)"
fi

new_id
bg_sub stdin "$MQTTC" sub "${H[@]}" -i "$ID" -t stdin -C 1 -N
timeout "$T" "$MQTTC" pub "${H[@]}" -t stdin -s <"$WORK/binary.in"
prc=$?
wait_sub
if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && cmp -s "$WORK/binary.in" "$WORK/stdin.out"; then
    ok "pub -s sends all of stdin as one message"
else
    not_ok "pub -s" "pub exit $prc, sub exit $SUB_RC"
fi

# ---- sessions, will, signals ---------------------------------------------------
timeout "$T" "$MQTTC" sub "${H[@]}" -t persist -q 1 -c -i cli-test-persist -W 1 --quiet
timeout "$T" "$MQTTC" pub "${H[@]}" -t persist -q 1 -m kept1
timeout "$T" "$MQTTC" pub "${H[@]}" -t persist -q 1 -m kept2
timeout "$T" "$MQTTC" sub "${H[@]}" -t persist -q 1 -c -i cli-test-persist -C 2 >"$WORK/persist.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$WORK/persist.out")" = "$(printf 'kept1\nkept2')" ]; then
    ok "sub -c -i: the broker keeps the session and queues QoS 1 messages"
else
    not_ok "sub -c" "exit $rc" "$(cat "$WORK/persist.out")"
fi

new_id
WATCH_ID=$ID
timeout "$T" mosquitto_sub "${H[@]}" -i "$WATCH_ID" -t will/x -C 1 -v >"$WORK/will.out" 2>&1 &
WATCH_PID=$!
wait_subscribed "$WATCH_ID"
new_id
# SIGKILL after 2 s: the connection drops without DISCONNECT. (In a subshell,
# so the shell's "Killed" notice goes nowhere.)
(timeout -s KILL 2 "$MQTTC" sub "${H[@]}" -i "$ID" -t will/none --will-topic will/x \
    --will-payload "gone away" >/dev/null 2>&1) 2>/dev/null
wait "$WATCH_PID"
rc=$?
if [ $rc -eq 0 ] && [ "$(cat "$WORK/will.out")" = "will/x gone away" ]; then
    ok "--will-topic/--will-payload: the broker publishes the will when the client dies"
else
    not_ok "will" "exit $rc" "$(cat "$WORK/will.out")"
fi

for sig in INT TERM; do
    new_id
    timeout --preserve-status -k 5 -s "$sig" 1 "$MQTTC" sub "${H[@]}" -i "$ID" -t signals \
        >/dev/null 2>"$WORK/sig.err"
    rc=$?
    if [ $rc -eq 0 ] && grep -q "Client $ID disconnected\.\$" "$WORK/broker.log"; then
        ok "sub on SIG$sig: clean DISCONNECT, exit 0"
    else
        not_ok "sub on SIG$sig" "exit $rc" "$(cat "$WORK/sig.err")" \
            "$(grep "$ID" "$WORK/broker.log" | tail -2)"
    fi
done

# ---- connection failures ----------------------------------------------------------
DEAD=$(free_port)
for cmd in pub sub; do
    if [ $cmd = pub ]; then args=(-t x -m y); else args=(-t x); fi
    timeout "$T" "$MQTTC" $cmd -h 127.0.0.1 -p "$DEAD" "${args[@]}" >/dev/null 2>"$WORK/refused.err"
    rc=$?
    timeout "$T" mosquitto_$cmd -h 127.0.0.1 -p "$DEAD" "${args[@]}" >/dev/null 2>&1
    mrc=$?
    if [ $rc -eq 1 ] && [ $mrc -eq 1 ] && grep -q "^Connection error: .*refused" "$WORK/refused.err"; then
        ok "$cmd to a port with nothing listening: exit 1 like mosquitto_$cmd ($(cat "$WORK/refused.err"))"
    else
        not_ok "$cmd refused connection" "exit $rc (mosquitto_$cmd $mrc)" "$(cat "$WORK/refused.err")"
    fi
    timeout "$T" "$MQTTC" $cmd -h 127.0.0.1 -p "$DENY_PORT" "${args[@]}" >/dev/null 2>"$WORK/denied.err"
    rc=$?
    timeout "$T" mosquitto_$cmd -h 127.0.0.1 -p "$DENY_PORT" "${args[@]}" >/dev/null 2>&1
    mrc=$?
    if [ $rc -eq 5 ] && [ $mrc -eq 5 ] && grep -q "^Connection error: .*not authorized" "$WORK/denied.err"; then
        ok "$cmd refused at CONNACK: exit 5 (the CONNACK code) like mosquitto_$cmd"
    else
        not_ok "$cmd CONNACK refusal" "exit $rc (mosquitto_$cmd $mrc)" "$(cat "$WORK/denied.err")"
    fi
done
timeout "$T" "$MQTTC" pub -L "mqtts://127.0.0.1:$PORT/x" -m y >/dev/null 2>"$WORK/tls.err"
rc=$?
if [ $rc -eq 1 ] && grep -q "^Connection error: .*did not answer in TLS" "$WORK/tls.err"; then
    ok "-L mqtts:// to a plain port: $(cat "$WORK/tls.err")"
else
    not_ok "-L mqtts://" "exit $rc" "$(cat "$WORK/tls.err")"
fi

# ---- TLS and WebSocket ----------------------------------------------------------
# A throwaway CA, a server certificate for localhost/127.0.0.1, one for another
# name, and a client certificate (its key also encrypted), made with openssl.
# The encrypted key is PKCS#8 with 3DES: mbedTLS 2.28 cannot decrypt OpenSSL 3's
# default (PBES2 with AES), see tests/unit/test_transport_tls.c.
make_certs() {
    local d=$WORK/certs
    mkdir -p "$d" && cd "$d" || return 1
    cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
[v3_wrong]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
[v3_client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
EOF
    ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    sign() {
        openssl x509 -req -in "$1" -CA ca.pem -CAkey ca.key -set_serial "$2" -days 30 \
            -extfile openssl.cnf -extensions "$3" -out "$4"
    }
    {
        ec ca.key &&
            openssl req -config openssl.cnf -x509 -new -key ca.key -subj "/CN=mqttc cli test CA" \
                -extensions v3_ca -days 30 -out ca.pem &&
            ec server.key &&
            openssl req -config openssl.cnf -new -key server.key -subj /CN=localhost -out server.csr &&
            sign server.csr 2 v3_server server.pem &&
            openssl req -config openssl.cnf -new -key server.key -subj /CN=wrong.example -out wrong.csr &&
            sign wrong.csr 3 v3_wrong wrong.pem &&
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out client.key &&
            openssl req -config openssl.cnf -new -key client.key -subj "/CN=mqttc cli test client" \
                -out client.csr &&
            sign client.csr 4 v3_client client.pem &&
            openssl pkcs8 -topk8 -in client.key -v2 des3 -passout pass:secret -out client-enc.key
    } >openssl.log 2>&1
    local rc=$?
    cd - >/dev/null || return 1
    return $rc
}

# A second broker: TLS_PORT (TLS), WRONG_PORT (TLS, a certificate for another
# name), MTLS_PORT (TLS, client certificate required), WS_PORT (WebSocket),
# WSS_PORT (WebSocket over TLS). `user root`: as root, mosquitto would drop to
# the user 'mosquitto', which cannot read the certificates in our 0700 $WORK.
start_tls_broker() {
    local try i C=$WORK/certs p
    for try in 1 2 3; do
        TLS_PORT=$(free_port)
        WRONG_PORT=$(free_port)
        MTLS_PORT=$(free_port)
        WS_PORT=$(free_port)
        WSS_PORT=$(free_port)
        cat >"$WORK/tls-mosquitto.conf" <<EOF
user root
log_dest stderr
log_type all
allow_anonymous true
listener $TLS_PORT 127.0.0.1
cafile $C/ca.pem
certfile $C/server.pem
keyfile $C/server.key
listener $WRONG_PORT 127.0.0.1
certfile $C/wrong.pem
keyfile $C/server.key
listener $MTLS_PORT 127.0.0.1
cafile $C/ca.pem
certfile $C/server.pem
keyfile $C/server.key
require_certificate true
listener $WS_PORT 127.0.0.1
protocol websockets
socket_domain ipv4
listener $WSS_PORT 127.0.0.1
protocol websockets
socket_domain ipv4
certfile $C/server.pem
keyfile $C/server.key
EOF
        "$MOSQUITTO" -c "$WORK/tls-mosquitto.conf" >"$WORK/tls-broker.log" 2>&1 &
        TLS_BROKER_PID=$!
        for i in $(seq 1 50); do
            local up=1
            for p in "$TLS_PORT" "$WRONG_PORT" "$MTLS_PORT" "$WS_PORT" "$WSS_PORT"; do
                port_open "$p" || up=0
            done
            [ $up -eq 1 ] && return 0
            kill -0 "$TLS_BROKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$TLS_BROKER_PID" 2>/dev/null
        wait "$TLS_BROKER_PID" 2>/dev/null
        TLS_BROKER_PID=
    done
    return 1
}

# tls_check "what" NAME EXPECTED-OUTPUT SUB-CMD... -- PUB-CMD...: the subscriber
# (client id $ID) must print EXPECTED-OUTPUT and both must exit 0.
tls_check() {
    local what=$1 name=$2 expect=$3
    shift 3
    local sub=() pub=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        sub+=("$1")
        shift
    done
    shift
    pub=("$@")
    if ! bg_sub "$name" "${sub[@]}"; then
        kill "$SUB_PID" 2>/dev/null
        wait_sub
        not_ok "$what" "the subscriber never subscribed (exit $SUB_RC)" "$(cat "$WORK/$name.err")"
        return
    fi
    timeout "$T" "${pub[@]}" >"$WORK/$name-pub.out" 2>&1
    local prc=$?
    wait_sub
    if [ $prc -eq 0 ] && [ $SUB_RC -eq 0 ] && [ "$(cat "$WORK/$name.out")" = "$expect" ]; then
        ok "$what"
    else
        not_ok "$what" "pub exit $prc, sub exit $SUB_RC" \
            "got: $(cat "$WORK/$name.out" "$WORK/$name.err" "$WORK/$name-pub.out")"
    fi
}

# fail_check "what" "expected text" CMD...: exit 1 with the text on stderr.
fail_check() {
    local what=$1 expect=$2
    shift 2
    timeout "$T" "$@" >/dev/null 2>"$WORK/fail.err"
    local rc=$?
    if [ $rc -eq 1 ] && grep -q -- "$expect" "$WORK/fail.err"; then
        ok "$what: exit 1: $(head -1 "$WORK/fail.err")"
    else
        not_ok "$what" "exit $rc" "$(cat "$WORK/fail.err")"
    fi
}

if ! make_certs; then
    not_ok "openssl makes the test certificates" "$(cat "$WORK/certs/openssl.log")"
elif ! start_tls_broker; then
    not_ok "mosquitto starts with TLS and WebSocket listeners" "$(cat "$WORK/tls-broker.log")"
else
    LOG=$WORK/tls-broker.log
    C=$WORK/certs
    TH=(-h 127.0.0.1 -p "$TLS_PORT" --cafile "$C/ca.pem")

    new_id
    tls_check "mqtts: pub and sub with -h 127.0.0.1 -p PORT --cafile (an IP address in the SAN)" \
        tls1 "tls/1 over tls" \
        "$MQTTC" sub "${TH[@]}" -i "$ID" -t tls/1 -q 1 -C 1 -v -- \
        "$MQTTC" pub "${TH[@]}" -t tls/1 -q 1 -m "over tls"

    new_id
    tls_check "mqtts: mqttc pub -L mqtts://localhost:PORT/topic --cafile -> mosquitto_sub over TLS" \
        tls2 "tls/2 url" \
        mosquitto_sub -h localhost -p "$TLS_PORT" --cafile "$C/ca.pem" -i "$ID" -t tls/2 -C 1 -v -- \
        "$MQTTC" pub -L "mqtts://localhost:$TLS_PORT/tls/2" --cafile "$C/ca.pem" -m url

    new_id
    tls_check "mqtts: mosquitto_pub over TLS -> mqttc sub -L ssl://localhost:PORT/tls/# --cafile" \
        tls3 "tls/3 from mosquitto" \
        "$MQTTC" sub -L "ssl://localhost:$TLS_PORT/tls/#" --cafile "$C/ca.pem" -i "$ID" -C 1 -v -- \
        mosquitto_pub -h localhost -p "$TLS_PORT" --cafile "$C/ca.pem" -t tls/3 -m "from mosquitto"

    new_id
    tls_check "mqtts: --tls-version tlsv1.2 and --alpn x --alpn mqtt" tls4 "v12" \
        "$MQTTC" sub "${TH[@]}" --tls-version tlsv1.2 -i "$ID" -t tls/4 -C 1 -- \
        "$MQTTC" pub "${TH[@]}" --alpn x --alpn mqtt -t tls/4 -m v12

    fail_check "mqtts: --tls-version tlsv1.3 (no TLS 1.3 in mbedTLS 2.28)" "not supported" \
        "$MQTTC" pub "${TH[@]}" --tls-version tlsv1.3 -t x -m y
    fail_check "--cafile with -h and no -p: mqtts:// on port 8883" \
        "^Connection error: mqtts://127.0.0.1:8883: " \
        "$MQTTC" pub -h 127.0.0.1 --cafile "$C/ca.pem" -t x -m y
    fail_check "mqtts: a certificate for another name" \
        "^Connection error: mqtts://127.0.0.1:$WRONG_PORT: TLS: server certificate does not match the host name" \
        "$MQTTC" pub -h 127.0.0.1 -p "$WRONG_PORT" --cafile "$C/ca.pem" -t x -m y
    fail_check "mqtts: sub, a certificate for another name" "does not match the host name" \
        "$MQTTC" sub -h 127.0.0.1 -p "$WRONG_PORT" --cafile "$C/ca.pem" -t x
    fail_check "mqtts: a server signed by a CA not in --cafile" "^Connection error: mqtts://" \
        "$MQTTC" pub -h localhost -p "$TLS_PORT" --cafile "$C/wrong.pem" -t x -m y

    new_id
    tls_check "mqtts: --insecure accepts the certificate for another name" tls5 "tls/5 insecure" \
        "$MQTTC" sub "${TH[@]}" -i "$ID" -t tls/5 -C 1 -v -- \
        "$MQTTC" pub -h 127.0.0.1 -p "$WRONG_PORT" --insecure -t tls/5 -m insecure

    new_id
    tls_check "mutual TLS: --cert and --key" tls6 "tls/6 mutual" \
        "$MQTTC" sub -h localhost -p "$MTLS_PORT" --cafile "$C/ca.pem" --cert "$C/client.pem" \
        --key "$C/client.key" -i "$ID" -t tls/6 -C 1 -v -- \
        "$MQTTC" pub -L "mqtts://127.0.0.1:$MTLS_PORT/tls/6" --cafile "$C/ca.pem" \
        --cert "$C/client.pem" --key "$C/client.key" -m mutual

    new_id
    tls_check "mutual TLS: an encrypted --key with --key-password" tls7 "tls/7 encrypted key" \
        "$MQTTC" sub "${TH[@]}" -i "$ID" -t tls/7 -C 1 -v -- \
        "$MQTTC" pub -h 127.0.0.1 -p "$MTLS_PORT" --cafile "$C/ca.pem" --cert "$C/client.pem" \
        --key "$C/client-enc.key" --key-password secret -t tls/7 -m "encrypted key"

    fail_check "mutual TLS: no client certificate" "^Connection error: mqtts://127.0.0.1:$MTLS_PORT: " \
        "$MQTTC" pub -h 127.0.0.1 -p "$MTLS_PORT" --cafile "$C/ca.pem" -t x -m y
    fail_check "mutual TLS: sub, no client certificate" "^Connection error: " \
        "$MQTTC" sub -h 127.0.0.1 -p "$MTLS_PORT" --cafile "$C/ca.pem" -t x
    fail_check "mutual TLS: a wrong --key-password" "wrong or missing password for the private key" \
        "$MQTTC" pub -h 127.0.0.1 -p "$MTLS_PORT" --cafile "$C/ca.pem" --cert "$C/client.pem" \
        --key "$C/client-enc.key" --key-password wrong -t x -m y
    fail_check "mutual TLS: an encrypted --key without --key-password" \
        "wrong or missing password for the private key" \
        "$MQTTC" sub -h 127.0.0.1 -p "$MTLS_PORT" --cafile "$C/ca.pem" --cert "$C/client.pem" \
        --key "$C/client-enc.key" -t x

    new_id
    tls_check "ws: sub -L ws://127.0.0.1:PORT/ws/#, pub -h -p --ws-path /mqtt" ws1 "ws/1 over websocket" \
        "$MQTTC" sub -L "ws://127.0.0.1:$WS_PORT/ws/#" -i "$ID" -C 1 -v -- \
        "$MQTTC" pub -h 127.0.0.1 -p "$WS_PORT" --ws-path /mqtt -t ws/1 -m "over websocket"

    new_id
    tls_check "ws: mqttc pub -L ws://... --ws-path /other -> mosquitto_sub over TLS" ws2 "ws/2 path" \
        mosquitto_sub -h localhost -p "$TLS_PORT" --cafile "$C/ca.pem" -i "$ID" -t ws/2 -C 1 -v -- \
        "$MQTTC" pub -L "ws://127.0.0.1:$WS_PORT/ws/2" --ws-path /other -m path

    new_id
    tls_check "wss: sub -L wss://localhost:PORT/topic --cafile, pub --ws-path --cafile" wss1 "wss/1 secure websocket" \
        "$MQTTC" sub -L "wss://localhost:$WSS_PORT/wss/1" --cafile "$C/ca.pem" -i "$ID" -C 1 -v -- \
        "$MQTTC" pub -h 127.0.0.1 -p "$WSS_PORT" --ws-path /mqtt --cafile "$C/ca.pem" -t wss/1 \
        -m "secure websocket"

    fail_check "ws:// to a TLS listener" "^Connection error: ws://127.0.0.1:$TLS_PORT: " \
        "$MQTTC" pub -L "ws://127.0.0.1:$TLS_PORT/x" -m y
    LOG=$WORK/broker.log
fi

# ---- usage errors: one line on stderr naming the problem, exit 1 -------------------
# usage_error "what" "expected text in the message" mqttc-args... [-- mosquitto-args]
usage_error() {
    local what=$1 expect=$2
    shift 2
    local margs=() args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        args+=("$1")
        shift
    done
    [ $# -gt 0 ] && shift && margs=("$@")
    timeout "$T" "$MQTTC" "${args[@]}" >"$WORK/usage.out" 2>"$WORK/usage.err"
    local rc=$? mrc=1 lines
    lines=$(wc -l <"$WORK/usage.err")
    if [ ${#margs[@]} -gt 0 ]; then
        timeout "$T" "${margs[@]}" >/dev/null 2>&1
        mrc=$?
    fi
    if [ $rc -eq 1 ] && [ $mrc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$WORK/usage.out" ] &&
        grep -q -- "$expect" "$WORK/usage.err"; then
        ok "usage error, $what: exit 1: $(cat "$WORK/usage.err")"
    else
        not_ok "usage error, $what" "exit $rc (mosquitto $mrc), $lines line(s)" \
            "$(cat "$WORK/usage.err" "$WORK/usage.out")"
    fi
}
usage_error "QoS 3" "QoS must be 0, 1 or 2" pub "${H[@]}" -t x -m y -q 3 \
    -- mosquitto_pub "${H[@]}" -t x -m y -q 3
usage_error "sub QoS 3" "QoS must be 0, 1 or 2" sub "${H[@]}" -t x -q 3 \
    -- mosquitto_sub "${H[@]}" -t x -q 3
usage_error "unknown option" "unknown option '--bogus'" pub "${H[@]}" -t x -m y --bogus \
    -- mosquitto_pub "${H[@]}" -t x -m y --bogus
usage_error "missing argument" "-m needs an argument" pub "${H[@]}" -t x -m \
    -- mosquitto_pub "${H[@]}" -t x -m
usage_error "wildcard in a publish topic" "invalid topic 'a/#'" pub "${H[@]}" -t 'a/#' -m y \
    -- mosquitto_pub "${H[@]}" -t 'a/#' -m y
usage_error "bad filter" "invalid topic filter 'a/#/b'" sub "${H[@]}" -t 'a/#/b' \
    -- mosquitto_sub "${H[@]}" -t 'a/#/b'
usage_error "bad -T filter" "invalid filter 'a#' for -T" sub "${H[@]}" -t x -T 'a#' \
    -- mosquitto_sub "${H[@]}" -t x -T 'a#'
usage_error "no topic" "no topic given" sub "${H[@]}" -- mosquitto_sub "${H[@]}"
usage_error "no message" "no message given" pub "${H[@]}" -t x -- mosquitto_pub "${H[@]}" -t x
usage_error "two messages" "only one of" pub "${H[@]}" -t x -m y -n \
    -- mosquitto_pub "${H[@]}" -t x -m y -n
usage_error "-c without -i" "-c needs a client id" sub "${H[@]}" -t x -c \
    -- mosquitto_sub "${H[@]}" -t x -c
usage_error "-i with -I" "cannot be used together" pub "${H[@]}" -t x -m y -i a -I b \
    -- mosquitto_pub "${H[@]}" -t x -m y -i a -I b
usage_error "bad port" "invalid port '70000'" pub -p 70000 -t x -m y \
    -- mosquitto_pub -p 70000 -t x -m y
usage_error "bad keepalive" "invalid keepalive" pub "${H[@]}" -k 2 -t x -m y \
    -- mosquitto_pub "${H[@]}" -k 2 -t x -m y
usage_error "-W 0" "invalid timeout" sub "${H[@]}" -t x -W 0 -- mosquitto_sub "${H[@]}" -t x -W 0
usage_error "-C 0" "invalid message count" sub "${H[@]}" -t x -C 0 \
    -- mosquitto_sub "${H[@]}" -t x -C 0
usage_error "missing -f file" "cannot open" pub "${H[@]}" -t x -f "$WORK/no/such/file" \
    -- mosquitto_pub "${H[@]}" -t x -f "$WORK/no/such/file"
usage_error "bad URL scheme" "invalid URL" pub -L "http://127.0.0.1:$PORT/x" -m y \
    -- mosquitto_pub -L "http://127.0.0.1:$PORT/x" -m y
usage_error "URL without topic" "topic missing" pub -L "mqtt://127.0.0.1:$PORT" -m y \
    -- mosquitto_pub -L "mqtt://127.0.0.1:$PORT" -m y
usage_error "will fields without --will-topic" "need --will-topic" pub "${H[@]}" -t x -m y \
    --will-payload z -- mosquitto_pub "${H[@]}" -t x -m y --will-payload z
usage_error "pub-only flag given to sub" "unknown option '-m'" sub "${H[@]}" -t x -m y \
    -- mosquitto_sub "${H[@]}" -t x -m y
usage_error "stray argument" "unexpected argument 'stray'" sub "${H[@]}" -t x stray \
    -- mosquitto_sub "${H[@]}" -t x stray
usage_error "mosquitto option mqttc lacks" "not supported by mqttc" sub "${H[@]}" -t x -F %t
usage_error "--cert without --key" "--cert needs --key" pub "${H[@]}" -t x -m y \
    --cert "$WORK/certs/client.pem" -- mosquitto_pub "${H[@]}" -t x -m y --cert "$WORK/certs/client.pem"
usage_error "--key without --cert" "--key needs --cert" sub "${H[@]}" -t x --key "$WORK/certs/client.key" \
    -- mosquitto_sub "${H[@]}" -t x --key "$WORK/certs/client.key"
usage_error "--key-password without --key" "--key-password needs --key" pub "${H[@]}" -t x -m y \
    --key-password p
usage_error "unknown --tls-version" "invalid TLS version 'tlsv1.1'" sub "${H[@]}" -t x --tls-version tlsv1.1
usage_error "--cafile without its argument" "--cafile needs an argument" sub "${H[@]}" -t x --cafile \
    -- mosquitto_sub "${H[@]}" -t x --cafile
usage_error "unreadable --cafile" "cannot read '$WORK/no/ca.pem' for --cafile" pub "${H[@]}" -t x -m y \
    --cafile "$WORK/no/ca.pem"
usage_error "TLS option with -L mqtt://" "TLS options need an mqtts://" pub -L "mqtt://127.0.0.1:$PORT/x" \
    -m y --insecure
usage_error "--ws-path with -L mqtts://" "--ws-path needs a ws://" sub -L "mqtts://127.0.0.1:$PORT/x" \
    --ws-path /mqtt
usage_error "--ws-path without a leading /" "must begin with '/'" sub "${H[@]}" -t x --ws-path mqtt
usage_error "empty --alpn" "invalid protocol '' for --alpn" pub "${H[@]}" -t x -m y --alpn ""
usage_error "no command" "no command given"
usage_error "unknown command" "unknown command 'frob'" frob

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
