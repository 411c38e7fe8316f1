"""Command line and report of the workflow driver (``python -m benchmarks.workflow_driver``).

python -m benchmarks.workflow_driver --url http://127.0.0.1:8080/api --quick [--pid server=PID]
python -m benchmarks.workflow_driver --conductor --quick     # the Java server on its own Redis
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULTS, markdown_table, report_header
from benchmarks.peers.procs import cpu_cell, exit_on_sigterm
from benchmarks.peers.venvs import installed_version
from benchmarks.workflow_driver import PAYLOAD, listener_pid, run_workflow_benchmark


def _parse_pids(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        name, _, pid = item.partition("=")
        out[name] = int(pid)
    return out


def write_report(
    results: list[dict[str, Any]],
    label: str,
    notes: list[str],
    out: Path,
    quick: bool,
    durability: str = "as the server under test configures it",
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ok = [r for r in results if "error" not in r]
    rows = [
        [
            r["worker_kind"],
            r["worker_procs"],
            r["shape"],
            r["offered_rate"] or "max",
            f"{r['completed']}/{r['workflows']}",
            r["seconds"],
            r["workflows_per_s"],
            r["task_executions_per_s"],
            *(r["latency_ms"][k] for k in ("p50", "p99", "p99.9")),
            *(r["queue_wait_ms"][k] for k in ("p50", "p99", "p99.9")),
            r["cpu_ms_per_workflow"],
        ]
        for r in ok
    ]
    table = markdown_table(
        [
            "workers",
            "procs",
            "shape",
            "offered/s",
            "completed",
            "s",
            "workflows/s",
            "tasks/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "sched→poll p50",
            "p99",
            "p99.9",
            "CPU ms/wf",
        ],
        rows,
    )
    cpu = markdown_table(
        ["workers", "CPU seconds per process tree during the measured run"],
        [[r["worker_kind"], cpu_cell(r["cpu"])] for r in ok],
    )
    failed = "".join(
        f"- {r['worker_kind']}: FAILED {r['error']}\n" for r in results if "error" in r
    )
    chart = out / f"workflow_{label}.png"
    if ok:
        _chart(ok, chart, label)
    (out / f"workflow_{label}.json").write_text(json.dumps(results, indent=1, default=str))
    report = out / f"workflow_{label}.md"
    report.write_text(
        report_header(f"Workflow throughput: {label}", quick, durability, PAYLOAD, notes)
        + "\nLatency = workflow endTime - startTime; sched→poll = SIMPLE task startTime - "
        "scheduledTime (ms). Throughput over [first start request, last endTime].\n\n"
        f"{table}\n\n{cpu}\n\n{failed}" + (f"![workflows/s]({chart.name})\n" if ok else "")
    )
    return report


def _chart(results: list[dict[str, Any]], path: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    names = [
        f"{r['worker_kind']} x{r['worker_procs']} {r['shape']}\n"
        + (f"at {r['offered_rate']:.0f}/s" if r["offered_rate"] else "max rate")
        for r in results
    ]
    a.bar(names, [r["workflows_per_s"] for r in results], color="tab:blue")
    a.set_ylabel("completed workflows/s")
    a.set_title(label)
    width = 0.25
    for k, p in enumerate(("p50", "p99", "p99.9")):
        xs = [i + k * width for i in range(len(results))]
        b.bar(xs, [r["latency_ms"][p] for r in results], width, label=p)
    b.set_xticks([i + width for i in range(len(results))], names)
    b.set_ylabel("start → COMPLETED, ms")
    b.set_yscale("log")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def _one(
    args: argparse.Namespace,
    url: str,
    pids: dict[str, int],
    kind: str,
    shape: str,
    workflows: int,
    rate: float | None,
    warmup: int,
) -> dict[str, Any]:
    offered = f"{rate:.0f}/s" if rate else "max"
    print(f"  {kind} x{args.procs}, {shape}, {workflows} wf at {offered} ...", end=" ", flush=True)
    try:
        r = await run_workflow_benchmark(
            url,
            workflows,
            kind,
            args.procs,
            rate,
            shape,
            warmup=warmup,
            pids=pids,
            threads=args.threads,
        )
    except Exception as exc:  # report it and go on with the next run
        r = {"worker_kind": kind, "shape": shape, "error": f"{type(exc).__name__}: {exc}"}
        print(f"FAILED: {r['error']}", flush=True)
        return r
    lat = r["latency_ms"]
    print(
        f"{r['workflows_per_s']:.0f} wf/s, {r['task_executions_per_s']:.0f} tasks/s, "
        f"p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms",
        flush=True,
    )
    return r


#: the server is warm when two warm-up rounds in a row are within this share of each other
STABLE_WITHIN = 0.10


def stable(rates: list[float], within: float = STABLE_WITHIN) -> bool:
    """Whether the last two warm-up rounds' throughputs are within ``within`` of each other."""
    if len(rates) < 2 or min(rates[-2:]) <= 0:
        return False
    return abs(rates[-1] - rates[-2]) <= within * max(rates[-2:])


async def _warm_up(args: argparse.Namespace, url: str, pids: dict[str, int]) -> list[float]:
    """Run rounds of ``--server-warmup`` seq3 workflows until two in a row are within 10 % in
    throughput (a JVM's JIT takes thousands of workflows to settle: after one round of 300 the
    Java server ran at under half its warmed rate), at most ``--server-warmup-rounds``; the
    rounds' workflows/s, for the report."""
    rates: list[float] = []
    while len(rates) < args.server_warmup_rounds and not stable(rates):
        print(f"  server warm-up round {len(rates) + 1}:", end="", flush=True)
        r = await _one(args, url, pids, "http", "seq3", args.server_warmup, None, 0)
        rates.append(float(r.get("workflows_per_s") or 0.0))
    return rates


async def _measure(
    args: argparse.Namespace, url: str, pids: dict[str, int]
) -> list[dict[str, Any]]:
    """Per shape and worker kind: a run at the offered rate (default: as fast as starts go),
    then, unless --latency-rate off, a latency run at a fixed rate below that throughput."""
    results = []
    if args.server_warmup:  # JIT and pools of a JVM server; not measured
        args.warmup_rounds = await _warm_up(args, url, pids)
    for shape in args.shape.split(","):
        for kind in args.kinds.split(","):
            # a fork10 workflow is ten tasks: a fifth of the workflows, about the same work
            n, warmup = args.workflows, args.warmup
            if shape != "seq3":
                n, warmup = max(50, n // 5), warmup // 5
            r = await _one(args, url, pids, kind, shape, n, args.rate, warmup)
            results.append(r)
            if args.latency_rate == "off" or "error" in r:
                continue
            if args.latency_kinds != "all" and kind not in args.latency_kinds.split(","):
                continue
            if args.latency_rate == "auto":
                rate = max(1.0, round(0.5 * r["workflows_per_s"]))
            else:
                rate = float(args.latency_rate)
            n = max(50, int(rate * args.latency_seconds))
            results.append(await _one(args, url, pids, kind, shape, n, rate, 20))
    return results


def _warm_note(args: argparse.Namespace) -> str:
    rates = getattr(args, "warmup_rounds", [])
    if not rates:
        return "server warm-up: none"
    verdict = (
        f"stable (last two within {STABLE_WITHIN:.0%})"
        if stable(rates)
        else f"NOT stable after {len(rates)} rounds"
    )
    shown = ", ".join(f"{x:.0f}" for x in rates)
    return (
        f"server warm-up (not measured): rounds of {args.server_warmup} seq3 workflows at "
        f"{shown} wf/s, {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Workflow throughput against a Conductor API")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="API base URL including /api")
    target.add_argument("--conductor", action="store_true", help="start the Java Conductor")
    parser.add_argument("--conductor-version", default=None)
    parser.add_argument("--quick", action="store_true", help="600 workflows per kind")
    parser.add_argument("--workflows", type=int, default=None, help="default 5,000")
    parser.add_argument("--kinds", default="sdk,http", help="worker kinds: sdk,http")
    parser.add_argument("--procs", type=int, default=1, help="worker processes per kind")
    parser.add_argument("--threads", type=int, default=10, help="SDK threads / HTTP batch")
    parser.add_argument("--rate", type=float, default=None, help="offered starts/s (default max)")
    parser.add_argument("--shape", default="seq3", help="seq3, fork10 or both (comma)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up workflows")
    parser.add_argument(
        "--latency-rate",
        default="auto",
        help="offered rate (wf/s) of the latency run; 'auto' = half the measured throughput, "
        "'off' = no latency run",
    )
    parser.add_argument(
        "--server-warmup",
        type=int,
        default=None,
        help="workflows per warm-up round before all measurements (default 3,000, quick too); "
        "0: no warm-up",
    )
    parser.add_argument(
        "--server-warmup-rounds",
        type=int,
        default=8,
        help="at most this many warm-up rounds, until two in a row are within 10 %% (8)",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=None, help="latency run length (6 quick, 20)"
    )
    parser.add_argument(
        "--latency-kinds", default="all", help="worker kinds that get a latency run (all)"
    )
    parser.add_argument("--pid", action="append", default=[], help="NAME=PID to report CPU of")
    parser.add_argument("--label", default=None, help="report name (default from the target)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.workflows = args.workflows or (600 if args.quick else 5000)
    args.warmup = args.warmup if args.warmup is not None else (100 if args.quick else 500)
    if args.server_warmup is None:
        # The quick run warms as the full one does: with rounds of 300 the JIT had seen too
        # little when two rounds first agreed (124 wf/s, against 265 after rounds of 3,000).
        args.server_warmup = 3000
    if args.latency_seconds is None:
        args.latency_seconds = 6.0 if args.quick else 20.0
    pids = _parse_pids(args.pid)
    exit_on_sigterm()
    durability = (
        "the server's own Redis, append-only (appendfsync everysec), as Podium's store"
        if args.conductor
        else "as the server under test configures it"
    )
    notes = [
        f"SDK: conductor-python {installed_version('conductor', 'conductor-python')}, "
        f"{args.threads} threads per task type, poll interval 10 ms; http worker: batch "
        f"{args.threads}, 2 pollers per type, long poll 100 ms",
        "load average (1/5/15 min) at start: " + " ".join(f"{x:.1f}" for x in os.getloadavg()),
    ]
    if args.conductor:
        from benchmarks.peers.conductor_server import (
            DEFAULT_VERSION,
            ConductorServer,
            ConductorUnavailable,
        )

        version = args.conductor_version or DEFAULT_VERSION
        label = args.label or f"conductor-{version}"
        print(f"starting Conductor {version} (about a minute) ...", flush=True)
        booted = time.monotonic()
        try:
            with ConductorServer(version) as server:
                pids.update(conductor=server.pid or 0, redis=server.redis_pid or 0)
                notes.append(
                    f"server: conductor-server {version} boot jar, -Xmx{server.heap}, "
                    "Redis executions + queues, indexing off, local_only lock; up in "
                    f"{time.monotonic() - booted:.0f} s (not measured)"
                )
                results = asyncio.run(_measure(args, server.url, pids))
                notes.append(_warm_note(args))
        except ConductorUnavailable as exc:  # the report says why, the summary shows it
            print(f"Conductor server unavailable: {exc}", flush=True)
            results = [{"worker_kind": "-", "shape": "-", "error": f"server unavailable: {exc}"}]
    else:
        label = args.label or "server"
        found = listener_pid(args.url)
        if found and "server" not in pids:
            pids["server"] = found
        notes.append(f"server: {args.url}")
        results = asyncio.run(_measure(args, args.url, pids))
        notes.append(_warm_note(args))
    report = write_report(results, label, notes, args.out, args.quick, durability)
    print(report.read_text())
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
