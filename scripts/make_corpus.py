#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/.

    python3 scripts/make_corpus.py

Each seed is one file: a configuration byte (see the comment at the top of
tests/fuzz/fuzz_decoder.c and fuzz_engine.c) followed by MQTT 3.1.1 bytes
built by hand here; for fuzz_ws.c a configuration byte and a server's
WebSocket frames; for fuzz_ws_http.c a server's reply to the upgrade request. Files are overwritten by name; other files in the corpus
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


# ---- WebSocket (fuzz_ws.c: frames after the handshake) ------------------------

def wscfg(read=7, cap=5, writes=False, slow=False):
    """read: index into 1, 2, 3, 5, 7, 16, 64, any bytes per inner read;
    cap: index into 1, 2, 3, 5, 16, 100, 1000, 4096 bytes of caller buffer."""
    return bytes([read | cap << 3 | (0x40 if writes else 0) | (0x80 if slow else 0)])


WS_BINARY, WS_CONT, WS_TEXT, WS_CLOSE, WS_PING, WS_PONG = 2, 0, 1, 8, 9, 10


def wsframe(op, payload=b"", fin=True, rsv=0, mask=None, form=None):
    """A server frame; form forces the length encoding (7, 16 or 64 bits)."""
    n = len(payload)
    form = form or (7 if n < 126 else 16 if n < 65536 else 64)
    out = bytes([(0x80 if fin else 0) | rsv << 4 | op])
    m = 0x80 if mask else 0
    if form == 7:
        out += bytes([m | n])
    elif form == 16:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return out + payload


def close_body(code, reason=b""):
    return struct.pack(">H", code) + reason


CONNACK_OK = connack(0)
SUBACK_1 = suback(1, [1])

WS = {
    "connack-four-frames": wscfg(0, 2) + b"".join(wsframe(WS_BINARY, bytes([b])) for b in CONNACK_OK),
    "connack-suback-one-frame": wscfg(7, 3) + wsframe(WS_BINARY, CONNACK_OK + SUBACK_1),
    "fragmented-with-ping": wscfg(2, 1) + wsframe(WS_BINARY, b"ab", fin=False)
    + wsframe(WS_PING, b"p") + wsframe(WS_CONT, b"cd", fin=False) + wsframe(WS_PONG, b"x")
    + wsframe(WS_CONT, b"ef") + wsframe(WS_BINARY, b""),
    "ping-answered": wscfg(7, 5, writes=True) + wsframe(WS_PING, b"are you there?")
    + wsframe(WS_BINARY, CONNACK_OK),
    "pings-while-writes-stall": wscfg(3, 4, writes=True, slow=True)
    + b"".join(wsframe(WS_PING, bytes([i]) * i) for i in range(0, 40, 3))
    + wsframe(WS_BINARY, publish("a/b", b"x" * 300, 1, 7)),
    "publishes-across-frames": wscfg(4, 2, writes=True)
    + (lambda st: wsframe(WS_BINARY, st[:5]) + wsframe(WS_BINARY, st[5:200], fin=False)
       + wsframe(WS_CONT, st[200:]))(publish("t", b"q" * 150) + publish("u/v", b"w" * 90, 1, 2)
                                      + ack(PUBACK, 3)),
    "len16": wscfg(5, 6) + wsframe(WS_BINARY, bytes(range(256)) * 2),
    "len64-nonminimal": wscfg(6, 7) + wsframe(WS_BINARY, b"z" * 200, form=64),
    "len16-nonminimal": wscfg(6, 7) + wsframe(WS_BINARY, b"y" * 3, form=16),
    "close-1001": wscfg(7, 5) + wsframe(WS_BINARY, b"ab")
    + wsframe(WS_CLOSE, close_body(1001, b"going away")),
    "close-empty": wscfg(7, 5) + wsframe(WS_CLOSE),
    "close-1-byte": wscfg(7, 5) + wsframe(WS_CLOSE, b"\x03"),
    "masked": wscfg(7, 5) + wsframe(WS_BINARY, CONNACK_OK, mask=b"\x01\x02\x03\x04"),
    "text": wscfg(7, 5) + wsframe(WS_TEXT, b"hello"),
    "rsv1": wscfg(7, 5) + wsframe(WS_BINARY, b"a", rsv=4),
    "reserved-opcode": wscfg(7, 5) + wsframe(3, b"a"),
    "reserved-control-opcode": wscfg(7, 5) + wsframe(11),
    "fragmented-ping": wscfg(7, 5) + wsframe(WS_PING, b"a", fin=False),
    "ping-126": wscfg(7, 5) + wsframe(WS_PING, b"p" * 126),
    "stray-continuation": wscfg(7, 5) + wsframe(WS_CONT, b"a"),
    "binary-inside-message": wscfg(7, 5) + wsframe(WS_BINARY, b"a", fin=False)
    + wsframe(WS_BINARY, b"b"),
    "len64-top-bit": wscfg(7, 5) + b"\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x01",
    "truncated-header": wscfg(1, 5) + b"\x82\x7e\x01",
    "truncated-payload": wscfg(7, 5) + wsframe(WS_BINARY, b"abcdef")[:5],
    "empty": wscfg(7, 5),
}


# ---- WebSocket upgrade replies (fuzz_ws_http.c) ---------------------------------

RFC_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # for RFC 6455's example key; the fuzzer rewrites it


def reply(status=b"101 Switching Protocols", fields=None, extra=b""):
    if fields is None:
        fields = [b"Upgrade: websocket", b"Connection: Upgrade",
                  b"Sec-WebSocket-Accept: " + RFC_ACCEPT, b"Sec-WebSocket-Protocol: mqtt"]
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + extra


WS_HTTP = {
    "101": reply(),
    "101-mixed-case-and-extras": b"HTTP/1.1 101 \r\nUPGRADE: WebSocket\r\nServer: lws\r\n"
    b"connection: keep-alive, Upgrade\r\nsec-websocket-accept:\t" + RFC_ACCEPT
    + b" \r\nSEC-WEBSOCKET-PROTOCOL: mqtt\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n",
    "101-with-frame-after": reply(extra=wsframe(WS_BINARY, CONNACK_OK)),
    "101-no-reason": b"HTTP/1.1 101\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + RFC_ACCEPT + b"\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
    "403": reply(b"403 Forbidden", [b"Content-Length: 9"], b"Forbidden"),
    "404": reply(b"404 Not Found", []),
    "http10-400": b"HTTP/1.0 400 Bad Request\r\n\r\n",
    "200-ok": reply(b"200 OK"),
    "bad-accept": reply(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                                b"Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==",
                                b"Sec-WebSocket-Protocol: mqtt"]),
    "no-subprotocol": reply(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                                    b"Sec-WebSocket-Accept: " + RFC_ACCEPT]),
    "subprotocol-mqttv3.1": reply(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                                          b"Sec-WebSocket-Accept: " + RFC_ACCEPT,
                                          b"Sec-WebSocket-Protocol: mqttv3.1"]),
    "extension": reply(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                               b"Sec-WebSocket-Accept: " + RFC_ACCEPT,
                               b"Sec-WebSocket-Protocol: mqtt",
                               b"Sec-WebSocket-Extensions: permessage-deflate"]),
    "no-upgrade": reply(fields=[b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + RFC_ACCEPT,
                                b"Sec-WebSocket-Protocol: mqtt"]),
    "duplicate-accept": reply(fields=[b"Upgrade: websocket", b"Connection: Upgrade",
                                      b"Sec-WebSocket-Accept: " + RFC_ACCEPT,
                                      b"Sec-WebSocket-Accept: " + RFC_ACCEPT,
                                      b"Sec-WebSocket-Protocol: mqtt"]),
    "folded-line": reply(fields=[b"Upgrade: websocket", b" folded", b"Connection: Upgrade"]),
    "nul-in-value": reply(fields=[b"Upgrade: web\x00socket"]),
    "lf-only": b"HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n\n",
    "not-http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    "truncated": reply()[:60],
    "oversized-header": b"HTTP/1.1 101 Switching Protocols\r\n"
    + b"".join(b"X-Filler-%04d: abcdefghijklmnop\r\n" % i for i in range(300)) + b"\r\n",
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
    n += write("ws", WS) + write("ws_http", WS_HTTP)
    print(f"make_corpus: wrote {n} seeds under {os.path.relpath(CORPUS, ROOT)}/", file=sys.stderr)


if __name__ == "__main__":
    main()
