#!/usr/bin/env python3
"""Median table from results/raw.txt (+ results/strace-*.txt)."""
import re, statistics, sys, os, glob
from collections import defaultdict

raw = sys.argv[1] if len(sys.argv) > 1 else "results/raw.txt"
groups = defaultdict(list)
for line in open(raw):
    kv = dict(re.findall(r"(\w+)=(\S+)", line))
    if "engine" not in kv:
        continue
    if line.split()[1:2] == ["engine=" + kv["engine"]] and "median_ms" in kv:
        groups[(kv["engine"], "probe")].append(kv)
        continue
    if "mode" in kv:
        key = (kv["engine"], "tp-" + kv["mode"])
    elif " fill " in line:
        key = (kv["engine"], "fill-" + kv["close"])
    elif " recover " in line:
        key = (kv["engine"], "recover-" + kv["after"])
    else:
        continue
    groups[key].append(kv)

def med(e, kind, field, scale=1.0):
    vals = [float(r[field]) / scale for r in groups.get((e, kind), []) if field in r]
    return statistics.median(vals) if vals else float("nan")

def fsyncs(e, mode, n):
    p = f"{os.path.dirname(raw)}/strace-{e}-{mode}.txt"
    if not os.path.exists(p):
        return float("nan")
    calls = 0
    for l in open(p):
        f = l.split()
        if len(f) >= 5 and f[-1] in ("fsync", "fdatasync", "sync_file_range", "msync"):
            calls += int(f[3])
    return calls / n

engines = []
for e, _ in groups:
    if e not in engines:
        engines.append(e)
def n_of(e, kind):
    r = groups.get((e, kind))
    return float(r[0]["n"]) if r else float("nan")

reps = max(len(v) for v in groups.values())
print(f"Medians of {reps} runs each (fsync counts: one strace run).\n")
probes = sorted(float(r["median_ms"]) for (e, k), v in groups.items() if k == "probe" for r in v)
if probes:
    print(f"Disk during the run: 4 KiB append+fdatasync median latency per probe ranged {probes[0]:.2f}-{probes[-1]:.2f} ms "
          f"(median of probes {statistics.median(probes):.2f} ms).\n")
print("| engine | batch msg/s | always msg/s | never msg/s (CPU cost) | fsyncs/msg batch (app / strace) | fsyncs/msg always (strace) | dev bytes/msg batch (WA = /64) | dev bytes/msg always | RSS 1M queued MiB | disk 1M MiB | enqueue 1M s | recovery 1M s (kill-9 / clean) | RSS after reopen MiB | drain 1M msg/s | RSS after drain MiB | disk after drain MiB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for e in engines:
    nb, na = n_of(e, "tp-batch"), n_of(e, "tp-always")
    wb = med(e, "tp-batch", "dev_bytes_per_msg")
    print(
        f"| {e} | {med(e,'tp-batch','msgs_per_s'):,.0f} | {med(e,'tp-always','msgs_per_s'):,.0f} | {med(e,'tp-never','msgs_per_s'):,.0f} | "
        f"{med(e,'tp-batch','app_syncs_per_msg'):.4f} / {fsyncs(e,'batch',nb):.4f} | {fsyncs(e,'always',na):.2f} | "
        f"{wb:.0f} ({wb/64:.1f}x) | {med(e,'tp-always','dev_bytes_per_msg'):,.0f} | {med(e,'fill-crash','rss_settled_kb',1024):.0f} | {med(e,'fill-crash','disk',2**20):.0f} | "
        f"{med(e,'fill-crash','secs'):.2f} | {med(e,'recover-crash','open_secs'):.3f} / {med(e,'recover-close','open_secs'):.3f} | "
        f"{med(e,'recover-crash','rss_open_kb',1024):.0f} | {med(e,'recover-crash','drain_per_s'):,.0f} | "
        f"{med(e,'recover-crash','rss_drained_kb',1024):.0f} | {med(e,'recover-crash','disk_drained',2**20):.0f} |"
    )
print()
print("| engine | fill 1M: dev bytes/msg | fill 1M: fsyncs (strace) | RSS at 25/50/75/100% of 1M (MiB, run 1) | drain 1M: dev bytes/msg | disk after drain+close MiB | notes |")
print("|---|---|---|---|---|---|---|")
for e in engines:
    fs = fsyncs(e, "fill", 1.0)
    extra = " ".join(f"{k}={v}" for k, v in groups.get((e, "recover-crash"), [{}])[0].items()
                     if k in ("segments_deleted", "tables", "journals"))
    r1 = groups.get((e, "fill-crash"), [{}])[0]
    steps = [int(x) for x in r1.get("rss_25_50_75pct_kb", "").split(",") if x] + [int(r1.get("rss_settled_kb", 0))]
    steps = "/".join(f"{x/1024:.0f}" for x in steps)
    print(f"| {e} | {med(e,'fill-crash','dev_bytes_per_msg'):.0f} | {fs:.0f} | {steps} | {med(e,'recover-crash','drain_dev_bytes_per_msg'):.0f} | "
          f"{med(e,'recover-crash','disk_closed',2**20):.0f} | {extra} |")
