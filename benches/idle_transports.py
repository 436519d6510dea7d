#!/usr/bin/env python3
"""Memory per idle connection by transport (issue 14): plain MQTT, MQTT
over TLS and MQTT over WebSocket, edgemq beside Mosquitto.

For each broker it writes a CA and server certificate (openssl), starts the
broker with three listeners (mqtt, mqtts, ws) on free 127.0.0.1 ports,
then for each transport opens N connections (CONNECT, clean session,
keep-alive 600 s, wait for CONNACK) and reads the broker's VmRSS before
and after: (after - before) / N is the memory one idle connection costs.
Each transport is measured on a fresh broker. Figures, not a
test: see benches/README.md. Usage: benches/idle_transports.py [-n 1000]
[--edgemq PATH] [--mosquitto PATH]
"""

import argparse
import base64
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def certs(d):
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=bench CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/ext", "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext", "-out", f"{d}/server.pem")
    # PKCS#8 for every broker.
    run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", f"{d}/server.key", "-out", f"{d}/server.p8")


def connect_packet(cid):
    body = b"\x00\x04MQTT\x04\x02\x02\x58" + len(cid).to_bytes(2, "big") + cid
    return bytes([0x10, len(body)]) + body


def ws_frame(payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + masked


def open_conn(kind, port, ctx, i):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if kind == "mqtts":
        s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    cid = f"idle-{kind}-{i}".encode()
    if kind == "ws":
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall((f"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
        resp = b""
        while b"\r\n\r\n" not in resp:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("upgrade refused")
            resp += chunk
        if b" 101 " not in resp.split(b"\r\n")[0]:
            raise RuntimeError(resp.split(b"\r\n")[0])
        s.sendall(ws_frame(connect_packet(cid)))
        ack = s.recv(16)  # a binary frame holding CONNACK
        if len(ack) < 6 or ack[2] != 0x20:
            raise RuntimeError(f"no CONNACK over ws: {ack!r}")
    else:
        s.sendall(connect_packet(cid))
        ack = s.recv(4)
        if ack[:1] != b"\x20":
            raise RuntimeError(f"no CONNACK: {ack!r}")
    return s


def measure(pid, kind, port, ctx, n):
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = [open_conn(kind, port, ctx, i) for i in range(n)]
    time.sleep(1.0)
    after = rss_kib(pid)
    for c in conns:
        c.close()
    time.sleep(1.0)
    return (after - before) / n


def start_edgemq(path, d, ports):
    cfg = f"{d}/edgemq.toml"
    data = tempfile.mkdtemp(dir=d)
    with open(cfg, "w") as f:
        f.write(f'data_dir = "{data}"\n')
        for kind, port in ports.items():
            f.write(f'[[listener]]\nbind = "127.0.0.1:{port}"\nprotocol = "{kind}"\n')
            if kind == "mqtts":
                f.write(f'certfile = "{d}/server.pem"\nkeyfile = "{d}/server.p8"\n')
    p = subprocess.Popen([path, "-c", cfg], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    p.stdout.readline()
    return p


def start_mosquitto(path, d, ports):
    cfg = f"{d}/mosquitto.conf"
    with open(cfg, "w") as f:
        # As root Mosquitto drops to user mosquitto, who cannot read the
        # temporary directory: keep the user that started it.
        f.write(f"per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest none\nuser {os.environ.get('USER', 'root')}\n")
        f.write(f"listener {ports['mqtt']} 127.0.0.1\n")
        f.write(f"listener {ports['mqtts']} 127.0.0.1\ncertfile {d}/server.pem\nkeyfile {d}/server.p8\n")
        # libwebsockets does not bind an address given here: bind to lo.
        f.write(f"listener {ports['ws']}\nbind_interface lo\nprotocol websockets\n")
    p = subprocess.Popen([path, "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", ports["mqtt"]), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="connections per transport")
    ap.add_argument("--edgemq", default=os.path.join(TARGET, "x86_64-unknown-linux-musl", "release", "edgemq"))
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        certs(d)
        ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
        for name, start, path in [("edgemq", start_edgemq, a.edgemq), ("mosquitto", start_mosquitto, a.mosquitto)]:
            if not os.path.exists(path):
                print(f"{name}: not available ({path})")
                continue
            # A fresh broker per transport: memory freed by one transport's
            # connections would otherwise serve the next one's.
            for kind in ("mqtt", "mqtts", "ws"):
                ports = {k: free_port() for k in ("mqtt", "mqtts", "ws")}
                p = start(path, d, ports)
                try:
                    kib = measure(p.pid, kind, ports[kind], ctx, a.n)
                    rows[(name, kind)] = kib
                    print(f"RESULT broker={name} transport={kind} conns={a.n} kib_per_conn={kib:.2f}", flush=True)
                finally:
                    p.terminate()
                    p.wait(timeout=10)
    print(f"\nMemory per idle connection (KiB), {a.n} connections per transport")
    print("| transport | edgemq | Mosquitto |")
    print("|---|---|---|")
    for kind in ("mqtt", "mqtts", "ws"):
        cells = [f"{rows[(b, kind)]:.2f}" if (b, kind) in rows else "-" for b in ("edgemq", "mosquitto")]
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
