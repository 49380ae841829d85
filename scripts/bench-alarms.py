#!/usr/bin/env python3
"""Alarm throughput and lateness: sets one alarm on each of N alarm-probe objects, all due at the
same moment T, waits until every one has fired, then reads each object's log (the guest records
when its alarm() ran) and prints alarms/s and p50/p99/max lateness (fired - scheduled).

Usage: bench-alarms.py INGRESS_URL [N] [LEAD_MS]   (objects Alarm/bench-<i>; loopback only)
"""
import json
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

base = sys.argv[1].rstrip("/")
assert base.startswith("http://127.") or base.startswith("http://localhost"), "loopback only"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
lead_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 20_000
run = int(time.time())


def call(method, path):
    req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


due = int(time.time() * 1000) + lead_ms
started = time.time()
with ThreadPoolExecutor(64) as pool:
    list(pool.map(lambda i: call("POST", f"/objects/Alarm/b{run}-{i}/set?at={due}"), range(n)))
print(f"set {n} alarms in {time.time() - started:.1f} s, all due at T+{(due - time.time() * 1000) / 1000:.1f} s",
      file=sys.stderr)


def log_of(i):
    return call("GET", f"/objects/Alarm/b{run}-{i}/log")["invocations"]


fired = []
deadline = time.time() + lead_ms / 1000 + 300
pending = list(range(n))
while pending and time.time() < deadline:
    time.sleep(max(0.5, min(5.0, due / 1000 - time.time())))
    if time.time() * 1000 < due:
        continue
    with ThreadPoolExecutor(64) as pool:
        logs = list(pool.map(log_of, pending))
    still = []
    for i, log in zip(pending, logs):
        if log:
            fired.append(log[0]["firedAtMs"])
        else:
            still.append(i)
    pending = still
late = sorted(f - due for f in fired)
if not late:
    sys.exit("no alarm fired")
span_s = max(1, late[-1]) / 1000
q = lambda p: late[min(len(late) - 1, int(p * len(late)))]
print(json.dumps({
    "alarms": n, "fired": len(late), "never_before": all(x >= 0 for x in late),
    "alarms_per_s": round(len(late) / span_s), "lateness_ms": {"p50": q(0.5), "p99": q(0.99), "max": late[-1]},
}))
