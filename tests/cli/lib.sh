# Shared by the CLI test scripts (source it): the pass/fail report and the
# loopback helpers. The sourcing script sets PASSED=0 FAILED=0.

ok() {
    PASSED=$((PASSED + 1))
    echo "ok   - $1"
}

# not_ok NAME [WHY...]
not_ok() {
    FAILED=$((FAILED + 1))
    echo "FAIL - $1"
    shift
    for why in "$@"; do
        echo "       $why"
    done
}

# A port nothing listens on now, on 127.0.0.1.
free_port() {
    timeout 5 python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# Does something accept connections on 127.0.0.1:PORT? (one bounded try)
port_open() {
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}
