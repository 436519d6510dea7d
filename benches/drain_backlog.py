#!/usr/bin/env python3
"""Drains the backlog edgemq-fillstore queued: `drain_backlog.py HOST PORT N`.

Connects as `backlog-sub` (MQTT 3.1.1, clean session 0), acknowledges every
QoS 1 PUBLISH and checks that messages 0..N-1 arrive once each, in order
(each payload is its number). Exits non-zero otherwise."""
import socket, struct, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port))
cid = b"backlog-sub"
var = b"\x00\x04MQTT\x04\x00\x00\x3c"  # 3.1.1, clean session 0, keepalive 60
pl = struct.pack(">H", len(cid)) + cid
body = var + pl
s.sendall(bytes([0x10, len(body)]) + body)
buf = bytearray()
acks = bytearray()
def need(k):
    global acks
    while len(buf) < k:
        if acks:
            s.sendall(acks); acks = bytearray()
        d = s.recv(1 << 20)
        if not d: raise SystemExit("closed")
        buf.extend(d)
def packet():
    need(2)
    mult, ln, i = 1, 0, 1
    while True:
        need(i + 1)
        b = buf[i]; ln += (b & 127) * mult; mult *= 128; i += 1
        if b < 128: break
    need(i + ln)
    h = buf[0]; p = bytes(buf[i:i+ln]); del buf[:i+ln]
    return h, p
h, p = packet()
assert h == 0x20 and p[0] == 1, ("session not present", h, p)
want = 0
while want < n:
    h, p = packet()
    assert h >> 4 == 3, h
    tl = struct.unpack(">H", p[:2])[0]
    pkid = p[2+tl:4+tl]
    got = int(p[4+tl:])
    assert got == want, (got, want)
    want += 1
    acks += b"\x40\x02" + pkid
s.sendall(acks)
print("all", want, "delivered in order")
