#!/usr/bin/env python3
"""Reads the peer harness's results.tsv of duro (and workerd, if present) under OUT and prints a
markdown table: per scenario, the median over rounds of req/s, p99 and server CPU per request,
side by side, with duro/workerd ratios."""
import csv
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])


def load(name):
    path = out / name / "results.tsv"
    if not path.exists():
        return {}
    rows = {}
    with path.open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rows.setdefault(row["scenario"], []).append(row)
    return rows


def med(rows, col):
    vals = []
    for r in rows:
        try:
            vals.append(float(r[col]))
        except (ValueError, KeyError):
            pass
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


duro, peer = load("duro"), load("workerd")
print("| scenario | duro req/s | workerd req/s | ratio | duro p99 ms | workerd p99 ms | duro CPU us/req | workerd CPU us/req | CPU ratio |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for scenario in duro:
    d, w = duro[scenario], peer.get(scenario, [])
    drps, wrps = med(d, "req/s"), med(w, "req/s")
    dcpu, wcpu = med(d, "cpu_us/req"), med(w, "cpu_us/req")
    ratio = f"{drps / wrps:.1f}x" if drps and wrps else "n/a"
    cratio = f"1/{wcpu / dcpu:.1f}" if dcpu and wcpu else "n/a"
    print(f"| {scenario} | {fmt(drps)} | {fmt(wrps)} | {ratio} | {fmt(med(d, 'p99_ms'), 1)} | "
          f"{fmt(med(w, 'p99_ms'), 1)} | {fmt(dcpu)} | {fmt(wcpu)} | {cratio} |")
ceiling = load("ceiling").get("b-spread-incr") or next(iter(load("ceiling").values()), None)
if ceiling and "b-spread-incr" in duro:
    crps, drps = med(ceiling, "req/s"), med(duro["b-spread-incr"], "req/s")
    print("\nThe machine's HTTP ceiling (`../shared/peers/ceiling`, bare hyper answering a constant, "
          "same wrk load as b):\n")
    print("| server | req/s | CPU us/req | duro b as share of it |")
    print("| --- | --- | --- | --- |")
    print(f"| bare hyper | {fmt(crps)} | {fmt(med(ceiling, 'cpu_us/req'))} | "
          f"{drps / crps * 100:.0f}% |" if crps and drps else "| bare hyper | n/a | n/a | n/a |")
for name in ("duro", "workerd"):
    checks = out / name / "checks.txt"
    if checks.exists():
        print(f"\n{name} checks:\n")
        for line in checks.read_text().splitlines():
            print(f"- {line}")
p_wrk, p_ceiling = out / "duro-p-wrk.txt", out / "ceiling-p.txt"
if p_wrk.exists() or p_ceiling.exists():
    print("\np beyond the harness's client (its node populate client, not the server, limits p):\n")
    if p_wrk.exists():
        print(f"- duro, wrk as the client: {p_wrk.read_text().strip()}")
    if p_ceiling.exists():
        print(f"- the populate client against bare hyper: {p_ceiling.read_text().strip()}")
