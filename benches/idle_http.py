#!/usr/bin/env python3
"""Idle memory of the HTTP listener and the dashboard (issue 17): the
broker's VmRSS 3 s after start with `[http]` absent, with it on, and on
after the dashboard was loaded once (`GET /`, its script and style) and
with one dashboard's event stream (`/api/events`) open for 5 s. Each case
on a fresh broker, `--runs` times. Figures, not a test: see
benches/README.md. Usage: benches/idle_http.py [--edgemq PATH] [--runs 3]
"""

import argparse
import os
import socket
import subprocess
import tempfile
import time

# Same directory: its free-port and VmRSS helpers.
from idle_transports import free_port, rss_kib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
TOKEN = "bench-token"


def get(port, path, stream_secs=0.0):
    """GET `path` with the token; reads the answer (an event stream for
    `stream_secs`)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        req = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n"
        s.sendall(req.encode())
        s.settimeout(2)
        end = time.time() + stream_secs
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
            if stream_secs and time.time() > end:
                break
        return got


def measure(binary, http, visit):
    with tempfile.TemporaryDirectory() as d:
        mqtt, web = free_port(), free_port()
        cfg = os.path.join(d, "edgemq.toml")
        with open(cfg, "w") as f:
            f.write(f'port = {mqtt}\nbind = ["127.0.0.1"]\ndata_dir = "{d}/data"\n')
            if http:
                f.write(f'\n[http]\nbind = "127.0.0.1:{web}"\ntoken = "{TOKEN}"\n')
        p = subprocess.Popen([binary, "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(3)
            if visit:
                for path in ["/", "/dashboard.js", "/dashboard.css", "/api/overview", "/api/sessions"]:
                    get(web, path)
                get(web, "/api/events", stream_secs=5)
                time.sleep(1)
            return rss_kib(p.pid)
        finally:
            p.terminate()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgemq", default=os.path.join(TARGET, "release", "edgemq"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    for name, http, visit in [("[http] absent", False, False), ("[http] on", True, False),
                              ("[http] on, dashboard loaded and streamed 5 s", True, True)]:
        runs = [measure(a.edgemq, http, visit) for _ in range(a.runs)]
        print(f"{name}: " + ", ".join(f"{r / 1024:.2f}" for r in runs) + " MiB")


if __name__ == "__main__":
    main()
