#!/usr/bin/env python3
"""Compare edgemq with Mosquitto and rumqttd using edgemq-loadgen.

Every run starts the broker fresh on 127.0.0.1 (a new port each time),
brokers alternate (A B C A B C ...) and each scenario is repeated
(--repeat, default 3). Prints the broker settings, every result line, and
a table of medians with the ratio edgemq/peer for every figure.
See benches/README.md.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def host_triple():
    try:
        out = subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "x86_64-unknown-linux-gnu"
    return next((l[6:].strip() for l in out.splitlines() if l.startswith("host: ")), "x86_64-unknown-linux-gnu")


HOST = host_triple()
# The broker as deployed: a static musl binary (README.md, "Deploying").
MUSL = HOST.replace("-gnu", "-musl")
BUILD_EDGEMQ = f"cargo build --release -p edgemq --target {MUSL}"

# name -> (loadgen arguments, quick-mode arguments, figures: (key, unit, higher_is_better))
SCENARIOS = {
    "fanin_q0": (["fanin", "--qos", "0", "-n", "1000000"], ["fanin", "--qos", "0", "-n", "20000"],
                 [("msgs_per_s", "msg/s", True), ("peak_rss_kib", "KiB", False)]),
    "fanin_q1": (["fanin", "--qos", "1", "-n", "400000"], ["fanin", "--qos", "1", "-n", "20000"],
                 [("msgs_per_s", "msg/s", True), ("peak_rss_kib", "KiB", False)]),
    "fanin_q2": (["fanin", "--qos", "2", "-n", "200000"], ["fanin", "--qos", "2", "-n", "20000"],
                 [("msgs_per_s", "msg/s", True), ("peak_rss_kib", "KiB", False)]),
    "fanout_q0": (["fanout", "--qos", "0", "-n", "200000"], ["fanout", "--qos", "0", "-n", "5000"],
                  [("deliveries_per_s", "deliveries/s", True), ("peak_rss_kib", "KiB", False)]),
    "latency": (["latency", "--rate", "5000", "--duration", "5"], ["latency", "--rate", "1000", "--duration", "0.5"],
                [("p50_us", "µs", False), ("p99_us", "µs", False), ("p999_us", "µs", False), ("max_us", "µs", False)]),
    "conns": (["conns", "-c", "5000"], ["conns", "-c", "200"],
              [("kib_per_conn", "KiB", False), ("conns_per_s", "conn/s", True), ("rss_after_kib", "KiB", False)]),
    # The IoT shape (issue 15): many devices at a low rate, one subscriber on fleet/#.
    "fleet": (["fleet", "-d", "5000", "--rate", "1", "--qos", "1", "--duration", "10"],
              ["fleet", "-d", "100", "--rate", "5", "--duration", "1", "--warmup", "0.5"],
              [("cpu_us_per_msg", "µs", False), ("p50_us", "µs", False), ("p99_us", "µs", False),
               ("peak_rss_kib", "KiB", False)]),
    # {d}: --fleet-devices (20,000, or less where the open-file hard limit is lower).
    "fleet20k": (["fleet", "-d", "{d}", "--rate", "1", "--qos", "1", "--duration", "10"],
                 ["fleet", "-d", "200", "--rate", "2", "--duration", "1", "--warmup", "0.5"],
                 [("cpu_us_per_msg", "µs", False), ("p50_us", "µs", False), ("p99_us", "µs", False),
                  ("peak_rss_kib", "KiB", False)]),
    "storm": (["storm", "-c", "10000", "--queued", "3"], ["storm", "-c", "200", "--queued", "3"],
              [("storm_s", "s", False), ("rss_peak_kib", "KiB", False), ("unique", "msg", True)]),
    "startup": (["startup"], ["startup"], [("startup_ms", "ms", False), ("idle_rss_kib", "KiB", False)]),
    # Store-and-forward: {n} is --backlog-n. `unique` is what the subscriber got back (N unless the broker lost some).
    "backlog": (["backlog", "--qos", "1", "-n", "{n}"], ["backlog", "--qos", "1", "-n", "20000", "--settle", "0.5"],
                [("drain_rate", "msg/s", True), ("pub_rate", "msg/s", True), ("rss_queued_kib", "KiB", False),
                 ("rss_per_msg_b", "B", False), ("unique", "msg", True)]),
}
# Bytes rumqttd's commit log counts per message of `backlog` (4 + topic `bench/ID` + 64-byte payload), rounded up.
BACKLOG_MSG_BYTES = 80
RUMQTTD_SEGMENT = 104857600
# Counts that must be zero (QoS 1/2 must lose nothing; no broker may duplicate or reorder).
CHECKS = ("lost", "dup", "ooo", "foreign", "failed")


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def which(path, name):
    if path:
        return path if os.path.exists(path) else None
    return shutil.which(name)


class Broker:
    """How to start one broker on a given port."""

    def __init__(self, name, binary, workdir, args):
        self.name, self.binary, self.workdir, self.args = name, binary, workdir, args

    def command(self, port):
        d = os.path.join(self.workdir, f"{self.name}-{port}")
        os.makedirs(d, exist_ok=True)
        if self.name == "edgemq":
            conf = os.path.join(d, "edgemq.toml")
            with open(conf, "w") as f:
                f.write(self.edgemq_conf(port, d))
            return [self.binary, "-c", conf]
        if self.name == "mosquitto":
            conf = os.path.join(d, "mosquitto.conf")
            with open(conf, "w") as f:
                f.write(self.mosquitto_conf(port))
            return [self.binary, "-c", conf]
        conf = os.path.join(d, "rumqttd.toml")
        with open(conf, "w") as f:
            f.write(self.rumqttd_conf(port))
        return [self.binary, "-q", "-c", conf]

    def edgemq_conf(self, port, d):
        a = self.args
        if a.stock:
            return f'bind = ["127.0.0.1"]\nport = {port}\ndata_dir = "{d}/data"\n'
        # No queue limit of its own by default (disk quotas decide for a
        # backlog); queue_memory_bytes 4 GiB lets one subscriber hold 1 GiB
        # in memory before it spills, as max_queued_bytes = 1 GiB did.
        return (f'bind = ["127.0.0.1"]\nport = {port}\ndata_dir = "{d}/data"\n'
                f"max_inflight_messages = {a.inflight}\nqueue_memory_bytes = {4 << 30}\n")

    def mosquitto_conf(self, port):
        a = self.args
        if a.stock:
            return f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        # max_queued_messages/bytes raised so QoS 1/2 are not dropped
        # silently (defaults: 1000 messages); same in-flight window as the others.
        return (f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                f"max_inflight_messages {a.inflight}\nmax_queued_messages {a.queued}\nmax_queued_bytes 0\n"
                "set_tcp_nodelay true\nlog_dest stderr\nlog_type error\nlog_type warning\n")

    def rumqttd_conf(self, port):
        a = self.args
        delay, inflight = (1, 100) if a.stock else (0, a.inflight)
        # rumqttd keeps every message in an in-memory commit log per filter
        # and drops its oldest segment when max_segment_count is reached: a
        # persistent session's backlog must fit in the segments (the demo's
        # 10 x 100 MiB hold about 13M backlog messages).
        segments = 10 if a.stock else max(10, -(-a.backlog_n * BACKLOG_MSG_BYTES // RUMQTTD_SEGMENT) + 1)
        # The demo configuration with one v4 listener on 127.0.0.1; no
        # delay between accepted connections (the demo's 1 ms caps the
        # connection rate at 1000/s).
        return ("id = 0\n\n[router]\nid = 0\nmax_connections = 20000\nmax_outgoing_packet_count = 200\n"
                f"max_segment_size = {RUMQTTD_SEGMENT}\nmax_segment_count = {segments}\n\n"
                f'[v4.1]\nname = "v4-1"\nlisten = "127.0.0.1:{port}"\nnext_connection_delay_ms = {delay}\n'
                "    [v4.1.connections]\n    connection_timeout_ms = 60000\n    max_payload_size = 20480\n"
                f"    max_inflight_count = {inflight}\n    dynamic_filters = true\n")

    def settings(self, port=1883):
        d = os.path.join(self.workdir, "settings")
        return {"edgemq": lambda: self.edgemq_conf(port, d), "mosquitto": lambda: self.mosquitto_conf(port),
                "rumqttd": lambda: self.rumqttd_conf(port)}[self.name]()


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def stop(proc):
    """Stops a broker; returns its exit code if it had already exited (a crash)."""
    early = proc.poll()
    if early is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return early


def parse(line):
    out = {}
    for part in line.split()[1:]:
        k, _, v = part.partition("=")
        out[k] = v
    return out


def run_once(args, broker, scenario, port, log):
    lg_args = [a.replace("{n}", str(args.backlog_n)).replace("{d}", str(args.fleet_devices))
               for a in SCENARIOS[scenario][1 if args.quick else 0]]
    if scenario == "startup":
        cmd = [args.loadgen, "-p", str(port)] + lg_args + ["--"] + broker.command(port)
        proc = None
    else:
        logf = open(os.path.join(args.workdir, f"{broker.name}-{port}.log"), "w")
        proc = subprocess.Popen(broker.command(port), stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
        if not wait_port(port, proc):
            stop(proc)
            return None, f"{broker.name} did not start (see {logf.name})"
        cmd = [args.loadgen, "-p", str(port), "--pid", str(proc.pid)] + lg_args
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.run_timeout, preexec_fn=raise_nofile)
        out, err, rc = r.stdout, r.stderr, r.returncode
    except subprocess.TimeoutExpired:
        out, err, rc = "", "load generator timed out", -1
    crashed = stop(proc) if proc else None
    log.write(f"# {broker.name} {scenario} port={port}: {' '.join(cmd)}\n{out}{err}\n")
    log.flush()
    problem = None
    if crashed is not None:
        problem = f"{broker.name} exited during {scenario} (code {crashed}); see its log"
    lines = [l for l in out.splitlines() if l.startswith("RESULT")]
    if rc != 0 or not lines:
        return None, problem or f"{scenario} failed on {broker.name}: {err.strip()[-300:]}"
    return parse(lines[-1]), problem


def fmt(v):
    if v is None:
        return "—"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--brokers", default="edgemq,mosquitto,rumqttd")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run of the script)")
    ap.add_argument("--edgemq", default=os.path.join(TARGET, MUSL, "release", "edgemq"),
                    help=f"default: the static build, `{BUILD_EDGEMQ}`")
    ap.add_argument("--loadgen", default=os.path.join(TARGET, "release", "edgemq-loadgen"))
    ap.add_argument("--mosquitto", default=None, help="default: mosquitto on PATH or /usr/sbin/mosquitto")
    ap.add_argument("--rumqttd", default=None, help="default: rumqttd on PATH or /work/bench-tools/bin/rumqttd")
    ap.add_argument("--inflight", type=int, default=100, help="outgoing QoS 1/2 window of every broker")
    ap.add_argument("--queued", type=int, default=1_000_000,
                    help="per-client queue limit (edgemq, mosquitto); raised to --backlog-n if smaller")
    ap.add_argument("--backlog-n", type=int, default=1_000_000,
                    help="messages queued for the offline subscriber in `backlog` (Mosquitto: ~20 s a run)")
    ap.add_argument("--fleet-devices", type=int, default=None,
                    help="devices of `fleet20k` (default 20,000, or the open-file hard limit less 500)")
    ap.add_argument("--stock", action="store_true",
                    help="each broker's default limits (only the listener set): shows default-limit losses")
    ap.add_argument("--port", type=int, default=21883, help="first port; each run takes the next one")
    ap.add_argument("--run-timeout", type=float, default=300)
    ap.add_argument("--log", default=None, help="raw output of every run (default: in the work dir)")
    args = ap.parse_args()
    args.workdir = tempfile.mkdtemp(prefix="edgemq-compare-")
    # Every broker must be able to hold the whole backlog (--stock shows what the defaults do).
    args.queued = max(args.queued, args.backlog_n)
    raise_nofile()
    if args.fleet_devices is None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        args.fleet_devices = 20_000 if hard == resource.RLIM_INFINITY else min(20_000, hard - 500)

    for b, build in ((args.edgemq, BUILD_EDGEMQ), (args.loadgen, "cargo build --release -p edgemq-benches")):
        if not os.path.exists(b):
            sys.exit(f"{b} not found: build with `{build}` (set CARGO_TARGET_DIR if you use one)")
    bins = {
        "edgemq": args.edgemq,
        "mosquitto": which(args.mosquitto, "mosquitto") or which("/usr/sbin/mosquitto", "mosquitto"),
        "rumqttd": which(args.rumqttd, "rumqttd") or which("/work/bench-tools/bin/rumqttd", "rumqttd"),
    }
    brokers = []
    for name in args.brokers.split(","):
        if not bins.get(name):
            print(f"{name}: not available")
            continue
        brokers.append(Broker(name, bins[name], args.workdir, args))
    scenarios = [s for s in args.scenarios.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS:
            sys.exit(f"unknown scenario {s}; known: {', '.join(SCENARIOS)}")

    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {os.cpu_count()} CPUs; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; repeat {args.repeat}; work dir {args.workdir}")
    for b in brokers:
        ver = subprocess.run([b.binary, "--version"], capture_output=True, text=True, timeout=10)
        first = (ver.stdout or ver.stderr).strip().splitlines()[:1]
        print(f"## {b.name}: {b.binary} ({first[0] if first else '?'}); settings:")
        for line in b.settings().splitlines():
            print(f"    {line}")

    log = open(args.log or os.path.join(args.workdir, "runs.log"), "w")
    results = {}  # (scenario, broker) -> [dict]
    problems = []
    port = args.port
    for s in scenarios:
        for rep in range(args.repeat):
            for b in brokers:
                port += 1
                r, problem = run_once(args, b, s, port, log)
                if problem:
                    problems.append(problem)
                    print(f"!! {problem}", flush=True)
                if r is not None:
                    print(f"{b.name:9} {s:9} #{rep + 1}: RESULT " + " ".join(f"{k}={v}" for k, v in r.items()),
                          flush=True)
                    results.setdefault((s, b.name), []).append(r)
                    bad = {k: r[k] for k in CHECKS if r.get(k) not in (None, "0")}
                    qos = r.get("qos", "0")
                    if bad and not (qos == "0" and set(bad) == {"lost"}):
                        problems.append(f"{b.name} {s} run {rep + 1}: {bad}")
                        print(f"!! {b.name} {s} run {rep + 1}: {bad}", flush=True)

    names = [b.name for b in brokers]
    peers = [n for n in names if n != "edgemq"]
    head = ["scenario", "figure"] + names + [f"edgemq/{p}" for p in peers]
    print()
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in scenarios:
        for key, unit, _higher in SCENARIOS[s][2]:
            med = {}
            for n in names:
                vals = [float(r[key]) for r in results.get((s, n), []) if key in r]
                med[n] = statistics.median(vals) if vals else None
            ratios = []
            for p in peers:
                a, b = med.get("edgemq"), med.get(p)
                ratios.append(f"{a / b:.2f}" if a is not None and b else "—")
            print(f"| {s} | {key} ({unit}) | " + " | ".join(fmt(med[n]) for n in names) + " | "
                  + " | ".join(ratios) + " |")
        lost = {n: sum(int(r.get("lost", 0)) for r in results.get((s, n), [])) for n in names}
        if any(lost.values()) and s.startswith(("fanin", "fanout", "latency", "backlog", "fleet", "storm")):
            print(f"| {s} | lost (sum of runs) | " + " | ".join(str(lost[n]) for n in names) + " |"
                  + " |" * len(peers))
    print()
    print("Ratios are edgemq/peer (>1 is better for rates, <1 is better for times and memory).")
    if problems:
        print("\nProblems:")
        for p in problems:
            print(f"- {p}")
    print(f"\nRaw output: {log.name}")


if __name__ == "__main__":
    main()
