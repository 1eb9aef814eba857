#!/usr/bin/env python3
"""Medians of the loadtest JSON summaries in a results folder, as Markdown."""
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
from collections import defaultdict

folder = sys.argv[1]
runs = defaultdict(list)
for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    name = os.path.basename(path).rsplit(".", 2)[0]
    try:
        with open(path) as f:
            runs[name].append(json.load(f))
    except (json.JSONDecodeError, OSError):
        runs[name].append(None)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:,.{digits}f}"
    return f"{int(v):,}"


cpu = "unknown"
try:
    with open("/proc/cpuinfo") as f:
        cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
except (OSError, StopIteration):
    pass
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
      f"results {os.path.basename(folder)} (UTC), commit {commit}; medians of {max(len(v) for v in runs.values())} runs.\n")
print("| run | connections (ok/failed) | published | deliveries/s | lost | dup | p50 ms | p99 ms | p99.9 ms | max ms | ack p50 ms | ack p99 ms | server KiB/conn | accepted ev/s | valid |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, results in runs.items():
    ok = [r for r in results if r]
    get = lambda f: median([f(r) for r in ok])
    mem = get(lambda r: r["server_memory"]["per_connection_bytes"])
    print("| " + " | ".join([
        name,
        f'{fmt(get(lambda r: r["connections"]["established"]))}/{fmt(get(lambda r: r["connections"]["failed"]))}',
        fmt(get(lambda r: r["events"]["published"])),
        fmt(get(lambda r: r["deliveries"]["per_second"]), 0),
        fmt(get(lambda r: r["deliveries"]["lost"])),
        fmt(get(lambda r: r["deliveries"]["duplicated"])),
        fmt(get(lambda r: r["latency_ms"]["p50"])),
        fmt(get(lambda r: r["latency_ms"]["p99"])),
        fmt(get(lambda r: r["latency_ms"]["p99_9"])),
        fmt(get(lambda r: r["latency_ms"]["max"])),
        # Publish acknowledgement (absent from summaries made before it was reported).
        fmt(get(lambda r: r["events"].get("ack_latency_ms", {}).get("p50") or None)),
        fmt(get(lambda r: r["events"].get("ack_latency_ms", {}).get("p99") or None)),
        fmt(mem / 1024 if mem is not None else None),
        fmt(get(lambda r: r["events"]["accepted_per_s"]), 0),
        f'{sum(1 for r in ok if r["valid"])}/{len(results)}',
    ]) + " |")
