#!/usr/bin/env python3
"""RSS of an edgemq broker before, during and after a burst that a
subscriber falls behind on (issue 13): a 3.1.1 subscriber (clean session)
subscribes at QoS 1 and stops reading; a publisher sends N QoS 1 messages
of SIZE bytes (pipelined, every PUBACK awaited); then the subscriber reads
and acknowledges everything (checking order and count), both disconnect,
and the broker's VmRSS is sampled for a while after.

    python3 benches/burst_rss.py --edgemq target/release/edgemq [-n 1600] [--size 65536]

Prints one RESULT line: rss_start_kib, rss_queued_kib (all acknowledged,
subscriber still stalled), rss_drained_kib (everything received),
rss_after_kib (clients gone, after --after seconds), received, lost
(acknowledged to the publisher but never delivered).
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mstr(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def connect(port, cid):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = mstr("MQTT") + bytes([4, 0x02]) + struct.pack(">H", 60) + mstr(cid)
    s.sendall(packet(0x10, body))
    ack = recv_exact(s, 4)
    assert ack[0] == 0x20 and ack[3] == 0, ack
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def read_packet(s):
    first = recv_exact(s, 1)[0]
    mult, length = 1, 0
    while True:
        b = recv_exact(s, 1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, recv_exact(s, length)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgemq", required=True)
    ap.add_argument("-n", type=int, default=1600)
    ap.add_argument("--size", type=int, default=65536)
    ap.add_argument("--port", type=int, default=22883)
    ap.add_argument("--after", type=float, default=5.0)
    ap.add_argument("--config", default="", help="extra lines for edgemq.toml")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "edgemq.toml")
        with open(conf, "w") as f:
            f.write(f'bind = ["127.0.0.1"]\nport = {a.port}\ndata_dir = "{d}/data"\n{a.config}\n')
        broker = subprocess.Popen([a.edgemq, "-c", conf], stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    socket.create_connection(("127.0.0.1", a.port)).close()
                    break
                except OSError:
                    time.sleep(0.01)
            time.sleep(1)
            start = rss_kib(broker.pid)
            sub = connect(a.port, "burst-sub")
            sub.sendall(packet(0x82, struct.pack(">H", 1) + mstr("burst/t") + b"\x01"))
            first, body = read_packet(sub)
            assert first == 0x90, first
            pub = connect(a.port, "burst-pub")
            peak = start
            for i in range(a.n):
                payload = struct.pack(">I", i) + b"x" * (a.size - 4)
                body = mstr("burst/t") + struct.pack(">H", i % 65535 + 1) + payload
                pub.sendall(packet(0x32, body))
                if i % 64 == 63:
                    peak = max(peak, rss_kib(broker.pid))
            pub.settimeout(60)
            acked = 0
            buf = b""
            while acked < a.n:
                buf += pub.recv(65536)
                acked += len(buf) // 4
                buf = buf[len(buf) // 4 * 4:]
            time.sleep(0.5)
            queued = rss_kib(broker.pid)
            # A broker that dropped messages sends fewer: stop 3 s after the last.
            sub.settimeout(3)
            got = []
            while len(got) < a.n:
                try:
                    first, body = read_packet(sub)
                except (TimeoutError, socket.timeout):
                    break
                if first >> 4 != 3:
                    continue
                tlen = struct.unpack(">H", body[:2])[0]
                pid = body[2 + tlen:4 + tlen]
                got.append(struct.unpack(">I", body[4 + tlen:8 + tlen])[0])
                sub.sendall(b"\x40\x02" + pid)
            drained = rss_kib(broker.pid)
            for s in (sub, pub):
                s.sendall(b"\xe0\x00")
                s.close()
            time.sleep(a.after)
            after = rss_kib(broker.pid)
            lost = a.n - len(set(got))
            ordered = int(got == sorted(got))
            print(f"RESULT scenario=burst n={a.n} size={a.size} received={len(got)} lost={lost} in_order={ordered} "
                  f"rss_start_kib={start} rss_peak_kib={peak} rss_queued_kib={queued} rss_drained_kib={drained} "
                  f"rss_after_kib={after}")
        finally:
            broker.terminate()
            broker.wait()


if __name__ == "__main__":
    sys.exit(main())
