#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/.

    python3 scripts/make_corpus.py

Each seed is one file: a configuration byte (see the comment at the top of
tests/fuzz/fuzz_decoder.c and fuzz_engine.c) followed by MQTT 3.1.1 bytes
built by hand here. Files are overwritten by name; other files in the corpus
directories (inputs the fuzzers found and someone merged on purpose) are left
alone.
"""
import os
import struct
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14


# ---- packet builders ---------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body=b""):
    return bytes([first]) + varint(len(body)) + body


def s(x):
    if isinstance(x, str):
        x = x.encode()
    return struct.pack(">H", len(x)) + x


def u16(n):
    return struct.pack(">H", n)


def connect(client_id="c", keepalive=60, clean=True, user=None, password=None,
            will=None, will_qos=0, will_retain=False):
    flags = 0x02 if clean else 0
    payload = s(client_id)
    if will is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
        payload += s(will[0]) + s(will[1])
    if user is not None:
        flags |= 0x80
        payload += s(user)
    if password is not None:
        flags |= 0x40
        payload += s(password)
    return packet(0x10, s("MQTT") + b"\x04" + bytes([flags]) + u16(keepalive) + payload)


def connack(rc=0, session_present=False):
    return packet(0x20, bytes([1 if session_present else 0, rc]))


def publish(topic, payload=b"", qos=0, pid=0, dup=False, retain=False):
    if isinstance(payload, str):
        payload = payload.encode()
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return packet(first, s(topic) + (u16(pid) if qos else b"") + payload)


def ack(kind, pid):
    return packet((kind << 4) | (0x02 if kind == PUBREL else 0), u16(pid))


def subscribe(pid, entries):
    return packet(0x82, u16(pid) + b"".join(s(f) + bytes([q]) for f, q in entries))


def suback(pid, codes):
    return packet(0x90, u16(pid) + bytes(codes))


def unsubscribe(pid, filters):
    return packet(0xA2, u16(pid) + b"".join(s(f) for f in filters))


def empty(kind):
    return packet(kind << 4)


BIG = bytes((i * 7 + 3) % 256 for i in range(1000))
HUGE = bytes((i * 13 + 1) % 256 for i in range(3000))


# ---- decoder seeds -------------------------------------------------------------
# Configuration byte: bits 0-2 chunk (1,2,3,7,16,64,256,4096), bit 3 stream,
# bits 4-5 buffer (16,64,256,4096), bit 6 space/commit first, bit 7 max 512.

def dcfg(chunk=7, stream=False, buf=3, space_first=False, max512=False):
    return bytes([chunk | (0x08 if stream else 0) | (buf << 4) |
                  (0x40 if space_first else 0) | (0x80 if max512 else 0)])


ALL_VALID = (
    connack() + connack(5) + connack(0, True)
    + publish("a/b", "hello") + publish("a/b", "q1", 1, 1) + publish("a/b", "q2", 2, 2, retain=True)
    + ack(PUBACK, 1) + ack(PUBREC, 2) + ack(PUBREL, 2) + ack(PUBCOMP, 2)
    + suback(3, [0, 1, 2, 0x80]) + ack(UNSUBACK, 4) + empty(PINGRESP)
)

DECODER = {
    "connack-accepted": dcfg(0, buf=0) + connack(),
    "connack-refused": dcfg(1, buf=0) + connack(5),
    "connack-session": dcfg(7) + connack(0, True),
    "publish-qos0": dcfg(3, buf=1) + publish("a/b", "hello"),
    "publish-qos1": dcfg(2, buf=1, space_first=True) + publish("a/b", "hello", 1, 7),
    "publish-qos2-dup-retain": dcfg(4) + publish("sensors/1/temp", "21.5", 2, 65535, dup=True, retain=True),
    "publish-empty-payload": dcfg(0, buf=0) + publish("x", b"", 1, 1),
    "publish-utf8-topic": dcfg(5) + publish("caf\u00e9/\u2603/\U0001F600", "snow", 0),
    "acks": dcfg(1, buf=0) + ack(PUBACK, 1) + ack(PUBREC, 2) + ack(PUBREL, 2) + ack(PUBCOMP, 2) + ack(UNSUBACK, 9),
    "suback": dcfg(3, buf=1) + suback(5, [0, 1, 2, 0x80]),
    "pings": dcfg(0, buf=0) + empty(PINGREQ) + empty(PINGRESP) + empty(DISCONNECT),
    "connect-minimal": dcfg(7) + connect(),
    "connect-full": dcfg(5, space_first=True) + connect("client-1", 30, False, "user", b"p\x00ss",
                                                        ("will/topic", b"bye\xff"), 2, True),
    "subscribe": dcfg(6) + subscribe(10, [("a/#", 0), ("+/b/+", 1), ("$SYS/#", 2)]),
    "unsubscribe": dcfg(2) + unsubscribe(11, ["a/#", "x/+/y"]),
    "stream-all": dcfg(7, buf=2) + ALL_VALID,
    "stream-all-bytewise": dcfg(0, buf=0, space_first=True) + ALL_VALID,
    "publish-large-streamed": dcfg(5, stream=True, buf=1) + publish("big/one", BIG, 1, 3) + empty(PINGRESP),
    "publish-huge-streamed-small-chunks": dcfg(2, stream=True, buf=0) + publish("h", HUGE, 2, 4) + ack(PUBACK, 4),
    "publish-large-not-streamed": dcfg(6, buf=1) + publish("big/one", BIG, 1, 3),
    "publish-over-max-packet": dcfg(7, buf=3, max512=True) + publish("big", BIG, 0),
    "varint-boundaries": dcfg(7, stream=True, buf=3) + publish("v", bytes(127 - 3)) + publish("v", bytes(128 - 3))
    + publish("v", bytes(16383 - 3)),
    "varint-non-minimal": dcfg(7) + b"\xd0\x80\x00" + b"\x20\x82\x00\x00\x00",
    # Malformed inputs.
    "bad-type-0": dcfg(7) + b"\x00\x00",
    "bad-type-15": dcfg(7) + b"\xf0\x00",
    "bad-flags-pubrel": dcfg(7) + b"\x60\x02\x00\x01",
    "bad-flags-connack": dcfg(7) + b"\x21\x02\x00\x00",
    "bad-qos3": dcfg(7) + b"\x36\x05\x00\x01a\x00\x01",
    "bad-varint-5-bytes": dcfg(7) + b"\x30\xff\xff\xff\xff\x7f",
    "bad-topic-wildcard": dcfg(7) + publish("a/+", "x"),
    "bad-topic-utf8": dcfg(7) + publish(b"\xc0\xaf", "x"),
    "bad-topic-nul": dcfg(7) + packet(0x30, b"\x00\x03a\x00b"),
    "bad-topic-empty": dcfg(7) + packet(0x30, b"\x00\x00hi"),
    "bad-topic-longer-than-packet": dcfg(7) + packet(0x30, b"\x00\x09ab"),
    "bad-connack-length": dcfg(7) + packet(0x20, b"\x00\x00\x00"),
    "bad-connack-session-refused": dcfg(7) + packet(0x20, b"\x01\x05"),
    "bad-suback-code": dcfg(7) + suback(1, [3]),
    "bad-suback-empty": dcfg(7) + packet(0x90, u16(1)),
    "bad-puback-length": dcfg(7) + packet(0x40, b"\x00"),
    "bad-pid-zero": dcfg(7) + publish("a", "x", 1, 0) + ack(PUBACK, 0),
    "bad-subscribe-qos": dcfg(7) + packet(0x82, u16(1) + s("a") + b"\x03"),
    "bad-subscribe-filter": dcfg(7) + subscribe(1, [("a/#/b", 0)]),
    "bad-connect-protocol": dcfg(7) + packet(0x10, s("MQIsdp") + b"\x03\x02\x00\x3c" + s("c")),
    "bad-connect-reserved-flag": dcfg(7) + packet(0x10, s("MQTT") + b"\x04\x03\x00\x3c" + s("c")),
    "truncated-publish": dcfg(0) + publish("a/b", "hello", 1, 1)[:-3],
    "valid-then-garbage": dcfg(4, buf=1) + connack() + publish("a", "b", 1, 2) + b"\xff\xff\xff\xff\xff\xff",
}


# ---- engine seeds --------------------------------------------------------------
# Three configuration bytes (see tests/fuzz/fuzz_engine.c). First: bits 0-2
# receive chunk (1,2,3,5,8,16,64, 7: one packet per chunk), bit 3
# stream_payloads, bits 4-5 writes (all, 1 byte, 7 bytes x 4
# calls per turn, 64), bits 6-7 clock step
# (0, 250 ms, next deadline, 40 s). Second: bit 0 tx_buf 64, bit 1
# drop-oldest, bit 2 queue of 4, bit 3 clean session on every other
# connection, bits 4-5 inflight_max (3,1,2,20), bit 6 copy_max 512, bit 7
# rx_buf 64. Third: bit 0 offer the inbound QoS 2 bitmap. The engine publishes ids 1-4 (msgs 1-4), subscribes with id 5
# (codes for 2 filters) and unsubscribes with id 6.

def ecfg(chunk=7, stream=False, write=0, clock=0, small_tx=False, drop=False, queue4=False,
         clean=False, inflight=0, copy512=False, small_rx=False, bitmap=False):
    return bytes([chunk | (0x08 if stream else 0) | (write << 4) | (clock << 6),
                  (0x01 if small_tx else 0) | (0x02 if drop else 0) | (0x04 if queue4 else 0)
                  | (0x08 if clean else 0) | (inflight << 4) | (0x40 if copy512 else 0)
                  | (0x80 if small_rx else 0),
                  0x01 if bitmap else 0])


OK = connack()
ACK_ALL = (ack(PUBACK, 1) + ack(PUBREC, 2) + ack(PUBCOMP, 2) + ack(PUBACK, 3)
           + ack(PUBREC, 4) + ack(PUBCOMP, 4) + suback(5, [1, 2]) + ack(UNSUBACK, 6))
INBOUND = (publish("a/b", "q0") + publish("a/b", "q1", 1, 10) + publish("c/d", "q2", 2, 11)
           + ack(PUBREL, 11) + empty(PINGRESP))

ENGINE = {
    "connack-only": ecfg(7) + OK,
    "connack-bytewise": ecfg(0, write=1) + OK,
    "session-acks": ecfg(7) + OK + ACK_ALL,
    "session-acks-small-chunks": ecfg(2, write=1, clock=1) + OK + ACK_ALL + empty(PINGRESP),
    "session-present": ecfg(7, write=3) + connack(0, True) + ACK_ALL,
    "inbound-qos012": ecfg(7, clock=1) + OK + INBOUND,
    "inbound-qos2-duplicate": ecfg(4) + OK + publish("c/d", "q2", 2, 7) + publish("c/d", "q2", 2, 7, dup=True)
    + ack(PUBREL, 7) + ack(PUBREL, 7),
    "inbound-window": ecfg(7) + OK + b"".join(publish("c/x", "w", 2, i) for i in range(20, 26))
    + b"".join(ack(PUBREL, i) for i in range(20, 26)),
    "inbound-streamed-large": ecfg(5, stream=True, write=3) + OK + publish("a/big", BIG, 1, 12) + ack(PUBACK, 1),
    "inbound-streamed-bytewise": ecfg(1, stream=True) + OK + publish("a/big", BIG[:300], 2, 13) + ack(PUBREL, 13),
    "inbound-large-not-streamed": ecfg(7) + OK + publish("a/big", BIG, 0) + OK + ACK_ALL,
    "refused-then-accepted": ecfg(7) + connack(5) + connack(4) + connack(0, True) + ACK_ALL,
    "refused-all": ecfg(3) + connack(1) + connack(2) + connack(3) + connack(5) + OK,
    "reconnect-resend": ecfg(7) + OK + ack(PUBREC, 2) + b"\xe0\x00" + OK + ack(PUBACK, 1) + ack(PUBCOMP, 2),
    "cmd-disconnect": ecfg(7) + OK + publish("x", "d") + OK + ACK_ALL,
    "cmd-lost": ecfg(7, write=2) + OK + ack(PUBACK, 1) + publish("x", "l") + OK + ACK_ALL,
    "slow-link-lost-mid-write": ecfg(7, write=2) + OK + publish("x", "l") + OK + ACK_ALL,
    "slow-link-backpressure": ecfg(0, write=2, small_tx=True) + OK + INBOUND + INBOUND,
    "cmd-publish-subscribe": ecfg(7) + OK + ACK_ALL + publish("x", "p") + publish("x", "sp")
    + publish("x", "ppp") + ack(PUBACK, 7) + suback(8, [0, 0x80]),
    "keepalive-pings": ecfg(7, clock=2) + OK + empty(PINGRESP) + empty(PINGRESP) + empty(PINGRESP),
    "keepalive-timeout": ecfg(7, clock=3) + OK + ack(PUBACK, 1) + OK,
    "connack-timeout": ecfg(0, clock=3) + b"\x20" + b"\x02" + b"\x00" + b"\x00",
    "unexpected-connack": ecfg(7) + OK + OK + OK,
    "unknown-packet-id": ecfg(7) + OK + ack(PUBACK, 99) + OK + ack(PUBCOMP, 1),
    "suback-mismatch": ecfg(7) + OK + suback(5, [1]) + OK + suback(5, [1, 2, 0]),
    "client-packet-from-broker": ecfg(7) + OK + connect() + OK + subscribe(1, [("a", 0)]) + OK + empty(PINGREQ),
    "inbound-bitmap": ecfg(7, bitmap=True) + OK + b"".join(publish("c/x", "w", 2, i) for i in (20, 21, 22, 23, 24, 65535, 8))
    + b"".join(ack(PUBREL, i) for i in (20, 65535, 21, 22, 23, 24, 8)) + publish("c/x", "w", 2, 21),
    "inbound-bitmap-session": ecfg(7, bitmap=True) + OK + b"".join(publish("c/x", "w", 2, i) for i in range(30, 36))
    + b"\xe0\x00" + connack(0, True) + publish("c/x", "dup", 2, 31, dup=True) + ack(PUBREL, 31)
    + b"\xe0\x00" + connack(0) + publish("c/x", "new", 2, 32) + ack(PUBREL, 32),
    "small-tx-backpressure": ecfg(7, write=1, small_tx=True, small_rx=True) + OK + INBOUND + ACK_ALL,
    "small-tx-copy512": ecfg(7, write=2, small_tx=True, copy512=True) + OK + ACK_ALL + INBOUND,
    "queue-refuse": ecfg(7, queue4=True, inflight=1) + OK + ACK_ALL,
    "queue-drop-oldest": ecfg(7, drop=True, queue4=True, inflight=1) + OK + ACK_ALL,
    "inflight-20": ecfg(7, inflight=3, write=3) + OK + ACK_ALL,
    "clean-session-alternating": ecfg(7, clean=True) + OK + ack(PUBREC, 2) + b"\xe0\x00"
    + connack(0, True) + connack(0) + ack(PUBACK, 1) + ack(PUBREC, 2) + ack(PUBCOMP, 2),
    "small-rx-streamed": ecfg(3, stream=True, small_rx=True) + OK + publish("a/big", BIG[:200], 1, 3)
    + publish("c/" + "t" * 60, "long topic", 1, 4),
    "malformed-after-connack": ecfg(7) + OK + b"\x30\xff\xff\xff\xff\x7f" + OK + b"\x00\x00",
}


def write(kind, seeds):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    return len(seeds)


def main():
    n = write("decoder", DECODER) + write("engine", ENGINE)
    print(f"make_corpus: wrote {n} seeds under {os.path.relpath(CORPUS, ROOT)}/", file=sys.stderr)


if __name__ == "__main__":
    main()
