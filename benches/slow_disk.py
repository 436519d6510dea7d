#!/usr/bin/env python3
"""Slow-disk scenario (issue 20): the latency of a QoS 0 stream while a
durable QoS 1 flood to a persistent subscriber waits on a slow disk.

For each fdatasync delay (0 = the plain disk, then e.g. 200 ms and 2 s, an
SD card under load) it starts edgemq in-process (`edgemq-loadgen serve
--sync-delay-ms D`, the store's `SlowSyncFs` seam), floods it with QoS 1
messages for a persistent subscriber (`fanin --persistent --qos 1`), and
meanwhile measures a separate QoS 0 publisher -> subscriber stream
(`latency --qos 0`). Prints every RESULT line and a table: the QoS 0 p50 /
p99 / max should not follow the sync delay (the router and connection
tasks never wait for the disk); the flood's rate does. Figures, not a
test: see benches/README.md. Usage: benches/slow_disk.py [--delays 0,200,2000]
"""

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LOADGEN = os.path.join(TARGET, "release", "edgemq-loadgen")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def result(line):
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


def run_one(delay_ms, rate, duration):
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [LOADGEN, "-p", str(port), "serve", "--sync-delay-ms", str(delay_ms), "--data-dir", data],
            stdout=subprocess.PIPE, text=True)
        try:
            server.stdout.readline()  # "listening on"
            flood = subprocess.Popen(
                [LOADGEN, "-p", str(port), "--pid", str(server.pid), "fanin", "--persistent", "--qos", "1",
                 "--pubs", "2", "-n", "100000000", "--timeout", str(int(duration + 10))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(1.0)
            lat = subprocess.run(
                [LOADGEN, "-p", str(port), "latency", "--qos", "0", "--rate", str(rate), "--duration", str(duration)],
                capture_output=True, text=True, timeout=duration + 60)
            flood.terminate()
            flood.wait(timeout=10)
            line = next((l for l in lat.stdout.splitlines() if l.startswith("RESULT")), None)
            if line is None:
                sys.exit(f"latency scenario failed (delay {delay_ms} ms): {lat.stderr}")
            print(f"delay_ms={delay_ms} {line}", flush=True)
            return result(line)
        finally:
            server.terminate()
            server.wait(timeout=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", default="0,200,2000", help="fdatasync delays in ms, comma-separated")
    ap.add_argument("--rate", type=int, default=1000, help="QoS 0 messages/s measured")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds measured per delay")
    a = ap.parse_args()
    if not os.path.exists(LOADGEN):
        subprocess.run(["cargo", "build", "--release", "-p", "edgemq-benches"], cwd=ROOT, check=True)
    rows = [(int(d), run_one(int(d), a.rate, a.duration)) for d in a.delays.split(",")]
    keys = [k for k in ("p50_us", "p99_us", "max_us", "received") if k in rows[0][1]]
    print("\nQoS 0 stream beside a durable QoS 1 flood, by fdatasync delay")
    print("| fdatasync delay | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for d, r in rows:
        print(f"| {d} ms | " + " | ".join(r.get(k, "?") for k in keys) + " |")


if __name__ == "__main__":
    main()
