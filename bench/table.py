#!/usr/bin/env python3
"""Builds bench/run's markdown table from the JSON lines of one run.

Usage: table.py RUN_DIR QUICK(0|1)
RUN_DIR holds kiln.jsonl (bench/queue_bench.rs) and anchors/*.jsonl (the anchor harness,
when it ran) plus sysinfo.txt. Each figure is the median over repetitions, with min-max.
"""
import json
import os
import statistics
import sys


def load(path):
    rows = {}
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if not isinstance(r.get("value"), (int, float)):
                continue
            rows.setdefault((r["bench"], r["variant"], r["metric"]), []).append(float(r["value"]))
    return rows


def figure(rows, key):
    values = rows.get(key)
    if not values:
        return None
    return statistics.median(values), min(values), max(values), len(values)


def fmt(fig, unit):
    if fig is None:
        return "not measured"
    med, lo, hi, n = fig
    digits = 0 if med >= 100 else (1 if med >= 10 else 3)
    text = f"{med:,.{digits}f} {unit}"
    if n > 1:
        text += f" ({lo:,.{digits}f}–{hi:,.{digits}f}, n={n})"
    return text


def ratio(kiln, anchor, higher_is_better):
    if kiln is None or anchor is None or kiln[0] == 0 or anchor[0] == 0:
        return "—"
    r = kiln[0] / anchor[0] if higher_is_better else anchor[0] / kiln[0]
    return f"{r:,.1f}×"


def main():
    run_dir, quick = sys.argv[1], sys.argv[2] == "1"
    kiln = load(os.path.join(run_dir, "kiln.jsonl"))
    anchors = {}
    adir = os.path.join(run_dir, "anchors")
    if os.path.isdir(adir):
        for name in os.listdir(adir):
            if name.endswith(".jsonl"):
                anchors.update(load(os.path.join(adir, name)))

    variants = sorted({v for (_, v, m) in kiln if m.startswith("drain rate")})
    k = lambda variant, metric: figure(kiln, ("kiln", variant, metric))
    a = lambda bench, variant, metric: figure(anchors, (bench, variant, metric))

    lines = [
        "| figure | kiln | anchor (same run) | anchor figure | kiln's advantage | target |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, kfig, unit, anchor_name, afig, higher, target=""):
        lines.append(
            f"| {name} | {fmt(kfig, unit)} | {anchor_name} | {fmt(afig, unit) if anchor_name != '—' else '—'} "
            f"| {ratio(kfig, afig, higher)} | {target} |"
        )

    celery_c2 = ("celery", "noop threads c2")
    for variant in variants:
        drain = k(variant, "drain rate (first take -> all acked)")
        row(f"drain, no-op jobs, Redis, {variant}, acked", drain, "jobs/s", "Celery 5.6 threads c2 (prefetch 4)",
            a(*celery_c2, "process rate (first take -> all acked)"), True, "≥ 30,000 jobs/s")
        row(f"drain, {variant}", drain, "jobs/s", "BullMQ c2",
            a("bullmq", "noop c2", "process rate (first job -> Nth completed)"), True, "≈ 2× BullMQ c2")
    row("enqueue, one job per call", k("push x1", "enqueue rate (one push per call, 1 producer)"), "jobs/s",
        "Celery delay() loop", a(*celery_c2, "enqueue rate (delay() loop, 1 producer)"), True)
    row("enqueue, one job per call", k("push x1", "enqueue rate (one push per call, 1 producer)"), "jobs/s",
        "BullMQ await add() loop", a("bullmq", "noop c50", "enqueue rate (await add() loop, 1 producer)"), True)
    row("enqueue, 1,000 per call", k("push x1000", "enqueue rate (1,000 per call)"), "jobs/s",
        "BullMQ addBulk x1000", a("bullmq", "addBulk x1000", "enqueue rate (addBulk, 1000/batch)"), True,
        "≥ 70,000 jobs/s")
    for variant in variants[:1]:
        row("worker spawn → first job taken (backlog waiting)", k(variant, "worker spawn -> first job taken"), "s",
            "Celery threads c2", a(*celery_c2, "worker spawn -> first task taken"), False, "≤ 0.2 s")
        row("worker spawn → first job taken", k(variant, "worker spawn -> first job taken"), "s",
            "BullMQ c2", a("bullmq", "noop c2", "worker spawn -> first job"), False)
        row("push → handler start, idle worker (median)",
            k(variant, "push -> handler start, idle worker (median, 1 ms resolution)"), "ms", "—", None, False,
            "≤ 10 ms")
        row("worker idle RSS", k(variant, "worker idle RSS"), "MiB", "—", None, False, "≤ 20 MiB")
        row("worker peak RSS while draining", k(variant, "worker peak RSS"), "MiB", "Celery threads c2 peak RSS",
            a(*celery_c2, "worker peak RSS (process tree)"), False)
        row("worker peak RSS while draining", k(variant, "worker peak RSS"), "MiB", "BullMQ c2 peak RSS",
            a("bullmq", "noop c2", "worker peak RSS"), False)
    for backend in ("sqlite", "postgres"):
        variant = f"economy, {backend}"
        row(f"economy indexing, ~10 KB documents, {backend}", k(variant, "economy indexing, ~10 KB documents"),
            "docs/s", "—", None, True)
        row(f"retrieve (keyword, 8 concurrent, ~10k segments), {backend}",
            k(variant, "retrieve, keyword, 8 concurrent"), "req/s", "—", None, True)
        row(f"retrieve p99, {backend}", k(variant, "retrieve p99"), "ms", "—", None, False)
    floor = a("redis-floor", "python redis-py", "jobs/s") or a("reliable-queue loop (BLMOVE+LREM, 1 conn)",
                                                                   "python redis-py", "jobs/s")
    if floor:
        lines.append(f"| context: reliable-queue loop, redis-py, 2 round trips per job | — | Redis floor | "
                     f"{fmt(floor, 'jobs/s')} | — | |")

    out = []
    if quick:
        out.append("Quick run (a smoke test: few jobs, one repetition, no anchors); numbers are not comparable.\n")
    out.append("\n".join(lines))
    print("\n".join(out))


if __name__ == "__main__":
    main()
