#!/usr/bin/env python3
"""Builds bench/run's markdown table from the JSON lines of one run.

Usage: table.py RUN_DIR QUICK(0|1) [PARTS]
PARTS: the kiln parts bench/run ran (default all: queue knowledge service size); rows of the
others are left out.
RUN_DIR holds kiln.jsonl (bench/queue_bench.rs, bench/knowledge_bench.rs, bench/service_bench.rs
and the binary size from bench/run) and anchors/*.jsonl (the anchor harness, when it ran: one
file per part, rows {bench, variant, metric, value, unit, rep}) plus sysinfo.txt. Each figure is
the median over repetitions, with min-max.
"""
import json
import os
import statistics
import sys


def failures(path):
    """The anchor harness records a failed run as a row whose metric is FAILED."""
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    r = json.loads(line)
                    if r.get("metric") == "FAILED":
                        out.append(f"{r.get('bench')} / {r.get('variant')}: {r.get('value')}")
    return out


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


def scaled(fig, factor):
    if fig is None:
        return None
    med, lo, hi, n = fig
    return med * factor, lo * factor, hi * factor, n


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
    parts = set((sys.argv[3] if len(sys.argv) > 3 else "queue knowledge service size").split())
    current = {"part": None}

    def section(part):
        current["part"] = part

    kiln = load(os.path.join(run_dir, "kiln.jsonl"))
    anchors = {}
    failed = []
    adir = os.path.join(run_dir, "anchors")
    anchors_ran = os.path.isdir(adir)
    if anchors_ran:
        for name in sorted(os.listdir(adir)):
            if name.endswith(".jsonl"):
                anchors.update(load(os.path.join(adir, name)))
                failed += failures(os.path.join(adir, name))

    variants = sorted({v for (_, v, m) in kiln if m.startswith("drain rate")})
    k = lambda variant, metric: figure(kiln, ("kiln", variant, metric))
    a = lambda bench, variant, metric: figure(anchors, (bench, variant, metric))

    lines = [
        "| figure | kiln | anchor (same run) | anchor figure | kiln's advantage | target |",
        "|---|---|---|---|---|---|",
    ]

    def row(name, kfig, unit, anchor_name, afig, higher, target="", kiln_note="", bound=""):
        if current["part"] not in parts:
            return
        kiln_cell = fmt(kfig, unit) + kiln_note
        anchor_cell = "—" if anchor_name == "—" else fmt(afig, unit) if anchors_ran else "not run"
        advantage = ratio(kfig, afig, higher)
        if bound and advantage != "—":
            advantage = bound + advantage
        lines.append(f"| {name} | {kiln_cell} | {anchor_name} | {anchor_cell} | {advantage} | {target} |")

    # HTTP: wrk -t1 -c50 on kiln's API and on the gunicorn + gevent Flask anchor. The anchor's
    # wc1000 configs are used: with Dify's --worker-connections 10, 40 (30) of wrk's 50
    # connections wait unaccepted for the whole run, so its latencies leave them out.
    section("service")
    gunicorn = {w: f"gunicorn gevent w{w} wc1000" for w in (1, 2)}
    workers = {1: "1 worker", 2: "2 workers"}

    def wrk_rows(title, kvariant, aendpoint, aname):
        errors = sum(
            (k(kvariant, m) or (0, 0, 0, 0))[2] for m in ("non-2xx responses", "socket errors (incl. timeouts)")
        )
        note = f" ⚠ up to {errors:,.0f} non-2xx/socket errors in a run" if errors else ""
        for metric, label, unit, higher in (("req/s", "req/s", "req/s", True), ("p50 latency", "p50", "ms", False),
                                            ("p99 latency", "p99", "ms", False)):
            for w in (1, 2):
                row(f"{title}, {label}", k(kvariant, metric), unit, f"{aname}, gunicorn + gevent, {workers[w]}",
                    a("http", f"{gunicorn[w]} GET {aendpoint}", metric), higher, kiln_note=note)

    wrk_rows("API `GET /health`, wrk -t1 -c50", "api GET /health", "/health", "`/health`")
    wrk_rows("authenticated read `GET /v1/datasets?limit=20` (dataset key, PostgreSQL), wrk -t1 -c50",
             "api GET /v1/datasets?limit=20, postgres", "/accounts/<id>", "`GET /accounts/<id>` (1 row by key)")

    section("queue")
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

    # Start: spawn → first 200 on /health (kiln in ms; the anchor records seconds).
    section("service")
    gunicorn_start = scaled(a("http", gunicorn[1], "startup: spawn -> first 200 /health"), 1000.0)
    started = "start -> /health 200"
    for kvariant, label in (("api, sqlite", "api, SQLite (migrated file)"),
                            ("api, postgres+redis", "api, PostgreSQL + Redis (migrated)"),
                            ("standalone, sqlite", "standalone (api + worker + beat), SQLite")):
        row(f"start → `/health` 200, {label}", k(kvariant, started), "ms", "gunicorn + gevent (1 worker) start → 200",
            gunicorn_start, False)
    row("start → `/health` 200, api, SQLite", k("api, sqlite", started), "ms",
        "context: Python imports the Flask app alone (hyperfine)",
        a("process start (hyperfine, 10 runs)", "python: import Flask app (app.py)", "wall time"), False)
    section("queue")
    for variant in variants[:1]:
        row("worker spawn → first job taken (backlog waiting)", k(variant, "worker spawn -> first job taken"), "s",
            "Celery threads c2", a(*celery_c2, "worker spawn -> first task taken"), False, "≤ 0.2 s")
        row("worker spawn → first job taken", k(variant, "worker spawn -> first job taken"), "s",
            "BullMQ c2", a("bullmq", "noop c2", "worker spawn -> first job"), False)
        row("push → handler start, idle worker (median)",
            k(variant, "push -> handler start, idle worker (median, 1 ms resolution)"), "ms", "—", None, False,
            "≤ 10 ms")

    # Memory: VmRSS 2 s after ready, and its anonymous part (RssAnon: the process's own
    # memory; the rest is pages of the binary, shared by every kiln process on the host).
    section("service")
    for w in (1, 2):
        row("idle RSS, api (PostgreSQL + Redis)", k("api, postgres+redis", "idle RSS"), "MiB",
            f"gunicorn + gevent master + {workers[w]}", a("http", gunicorn[w], "idle RSS (master + workers)"), False,
            "≤ 15 MiB" if w == 1 else "")
    for w in (1, 2):
        row("RSS after the wrk runs, api", k("api, postgres+redis", "RSS after load"), "MiB",
            f"gunicorn + gevent master + {workers[w]}, after load",
            a("http", gunicorn[w], "RSS after load (master + workers)"), False)
    row("idle RSS, worker (PostgreSQL + Redis, concurrency 2)", k("worker, postgres+redis", "idle RSS"), "MiB",
        "Celery threads c2, peak while draining (no idle figure recorded)",
        a(*celery_c2, "worker peak RSS (process tree)"), False, "≤ 15 MiB", bound="≤ ")
    row("idle RSS, beat (PostgreSQL + Redis)", k("beat, postgres+redis", "idle RSS"), "MiB", "—", None, False)
    row("idle RSS, standalone (SQLite)", k("standalone, sqlite", "idle RSS"), "MiB", "—", None, False, "≤ 30 MiB")
    for variant, title in (("api, postgres+redis", "api"), ("worker, postgres+redis", "worker"),
                           ("beat, postgres+redis", "beat"), ("standalone, sqlite", "standalone")):
        row(f"idle anonymous RSS (own memory, without the shared binary pages), {title}",
            k(variant, "idle anonymous RSS"), "MiB", "—", None, False)
    section("queue")
    for variant in variants[:1]:
        row("worker idle RSS (SQLite metadata, queue bench)", k(variant, "worker idle RSS"), "MiB", "—", None, False,
            "≤ 20 MiB")
        row("worker peak RSS while draining", k(variant, "worker peak RSS"), "MiB", "Celery threads c2 peak RSS",
            a(*celery_c2, "worker peak RSS (process tree)"), False)
        row("worker peak RSS while draining", k(variant, "worker peak RSS"), "MiB", "BullMQ c2 peak RSS",
            a("bullmq", "noop c2", "worker peak RSS"), False)
    section("size")
    row("release binary size (stripped)", k("release binary", "size (stripped)"), "MiB", "—", None, False)

    section("knowledge")
    for backend in ("sqlite", "postgres"):
        variant = f"economy, {backend}"
        row(f"economy indexing, ~10 KB documents, {backend}", k(variant, "economy indexing, ~10 KB documents"),
            "docs/s", "—", None, True)
        row(f"retrieve (keyword, 8 concurrent, ~10k segments), {backend}",
            k(variant, "retrieve, keyword, 8 concurrent"), "req/s", "—", None, True)
        row(f"retrieve p99, {backend}", k(variant, "retrieve p99"), "ms", "—", None, False)
    floor = a("redis-floor", "python redis-py", "jobs/s") or a("reliable-queue loop (BLMOVE+LREM, 1 conn)",
                                                                   "python redis-py", "jobs/s")
    if floor and "queue" in parts:
        lines.append(f"| context: reliable-queue loop, redis-py, 2 round trips per job | — | Redis floor | "
                     f"{fmt(floor, 'jobs/s')} | — | |")

    out = []
    if quick:
        out.append("Quick run (a smoke test: few jobs, one repetition, short wrk runs, no anchors); numbers are not "
                   "comparable.\n")
    out.append("\n".join(lines))
    if failed:
        out.append("\nAnchor runs that failed (their figures read \"not measured\"):\n")
        out += [f"- {f}" for f in failed]
    print("\n".join(out))


if __name__ == "__main__":
    main()
