#!/usr/bin/env python3
"""Bridge throughput at QoS 1 to a local edgemq "cloud":
`benches/bridge.py [N]` (default 1,000,000), release binaries in target/release.

1. live: the cloud up, `edgemq-loadgen fanin` publishes N QoS 1 messages on
   the edge (its subscriber there too); the bridge forwards them to the
   cloud. Reports the time until the bridge's cursor (DATA_DIR/bridge/up/
   cursor: the last LSN the cloud acknowledged, one record per message)
   passes N, so msg/s forwarded.
2. outage: the cloud stopped, N more published and queued on the edge
   (edge RSS before and after); the edge restarted with them queued (its
   peak RSS while it opens the queue); the cloud started again: drain msg/s, and
   the CPU time each broker spent per message meanwhile (a figure that
   depends less on what else the machine runs)."""
import os, socket, struct, subprocess, sys, tempfile, time

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bin_ = os.path.join(root, "target/release/edgemq")
loadgen = os.path.join(root, "target/release/edgemq-loadgen")
tmp = tempfile.mkdtemp(prefix="edgemq-bridge-bench-")

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start(args, name):
    p = subprocess.Popen([bin_, "--bind", "127.0.0.1", "--data-dir", os.path.join(tmp, name)] + args,
                         stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, name + ".log"), "w"))
    line = p.stdout.readline().decode()
    port = int(line.split("mqtt://")[1].split(";")[0].rsplit(":", 1)[1])
    return p, port

def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"):
            return int(l.split()[1]) / 1024
    return 0.0

def hwm(pid):
    """Peak RSS of the process, MiB."""
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmHWM:"):
            return int(l.split()[1]) / 1024
    return 0.0

def cpu(pid):
    """User + system CPU seconds of the process so far (all its threads)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def cursor():
    try:
        b = open(os.path.join(tmp, "edge/bridge/up/cursor"), "rb").read()
        return struct.unpack("<Q", b[:8])[0]
    except OSError:
        return 0

def wait_cursor(lsn, limit=600):
    t0 = time.time()
    while cursor() < lsn:
        if time.time() - t0 > limit:
            raise SystemExit(f"cursor at {cursor()} of {lsn} after {limit} s")
        time.sleep(0.02)
    return time.time()

cloud_port = free_port()
cloud, _ = start(["-p", str(cloud_port)], "cloud")
conf = os.path.join(tmp, "edge.toml")
open(conf, "w").write(f'[[bridge]]\nname = "up"\naddresses = ["127.0.0.1:{cloud_port}"]\n'
                      f'topics = ["bench/# out 1"]\nmax_inflight = 1000\nreconnect_min_ms = 100\nreconnect_max_ms = 200\n')
edge, edge_port = start(["-p", "0", "-c", conf], "edge")
time.sleep(0.5)

def fanin(n):
    out = subprocess.run([loadgen, "-p", str(edge_port), "fanin", "--qos", "1", "-n", str(n), "--pubs", "4"],
                         capture_output=True, text=True, timeout=900)
    return [l for l in out.stdout.splitlines() if l.startswith("RESULT")]

t0 = time.time()
res = fanin(N)
t_pub = time.time()
t_fwd = wait_cursor(N)
print(f"live: {N} published in {t_pub - t0:.1f} s on the edge ({res}); forwarded to the cloud "
      f"in {t_fwd - t0:.1f} s: {N / (t_fwd - t0):,.0f} msg/s")

cloud.kill(); cloud.wait()
r0 = rss(edge.pid)
t0 = time.time()
fanin(N)
print(f"outage: {N} queued in {time.time() - t0:.1f} s; edge RSS {r0:.1f} -> {rss(edge.pid):.1f} MiB; "
      f"queue on disk {sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(tmp, 'edge/bridge')) for f in fs) / 2**20:.0f} MiB")
# A restart of the edge with the queue full: its peak RSS while it opens
# the queue (VmHWM once it listens and a second later).
edge.terminate(); edge.wait()
t0 = time.time()
edge, edge_port = start(["-p", "0", "-c", conf], "edge")
t_listen = time.time() - t0
time.sleep(1)
print(f"restart with {N} queued: listening after {t_listen:.2f} s; edge peak RSS {hwm(edge.pid):.1f} MiB, "
      f"RSS {rss(edge.pid):.1f} MiB")
cloud = subprocess.Popen([bin_, "--bind", "127.0.0.1", "-p", str(cloud_port), "--data-dir", os.path.join(tmp, "cloud")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
t0, e0, c0 = time.time(), cpu(edge.pid), cpu(cloud.pid)
t_done = wait_cursor(2 * N)
e1, c1 = cpu(edge.pid), cpu(cloud.pid)
print(f"drain: {N} forwarded in {t_done - t0:.1f} s after the cloud returned: {N / (t_done - t0):,.0f} msg/s; "
      f"edge RSS {rss(edge.pid):.1f} MiB; CPU per message: edge {(e1 - e0) * 1e6 / N:.2f} us, "
      f"cloud {(c1 - c0) * 1e6 / N:.2f} us")
for p in (edge, cloud):
    p.kill(); p.wait()
