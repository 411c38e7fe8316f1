"""Workflow throughput and latency of Podium, with each persistence backend.

Workflows are started over HTTP and completed by external worker processes polling the
gateway (Podium's asyncio HTTP worker, and the official SDK's workers), on a local cluster of
separate processes (``podium up``'s ``LocalCluster``): a Redis queue shard, the store (Redis
with append-only persistence, or one Cassandra node), and one replica of each service.
Two shapes: ``seq3`` (three sequential SIMPLE tasks) and ``fork10`` (a FORK_JOIN of ten SIMPLE
branches and a JOIN).

For each backend, shape and worker kind: completed workflows/s and task executions/s at
saturation (starts as fast as the gateway takes them), then runs at fixed offered rates below
that (full: 25, 50 and 75 % of it; quick: 25 and 50 % for seq3, 50 % for fork10), with
p50/p99/p99.9 of start→COMPLETED and of scheduled→polled, and the CPU of every process.
Chart: latency percentiles vs offered load.

    python -m benchmarks.workflow_throughput [--quick] [--backends redis,cassandra]
                                             [--workers http,sdk] [--shapes seq3,fork10]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    RESULTS,
    chart_style,
    cluster_pids,
    cpu_text,
    markdown_table,
    report_header,
)
from benchmarks.workflow_driver import PAYLOAD, run_workflow_benchmark
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster

DURABILITY = {
    "redis": "store Redis append-only (appendfsync everysec); queue shard persistence off",
    "cassandra": "store: one Cassandra node (commit log periodic, fsync every 1 s); queue shard "
    "persistence off",
}


def plan(quick: bool, backend: str, shape: str, kind: str) -> tuple[int, list[float], float]:
    """(workflows at saturation, offered-load fractions, seconds per offered-load run); no
    workflows: skip. Quick runs: seq3 with both kinds of workers, fork10 with the http one, and
    latency runs with the http worker only (seq3 at 25 and 50 %, fork10 at 50 %). Cassandra
    commits are about ten times slower than Redis ones, so it gets a fifth of the workflows."""
    if quick:
        counts = {("seq3", "http"): 500, ("seq3", "sdk"): 300, ("fork10", "http"): 60}
        fractions = {("seq3", "http"): [0.25, 0.5], ("fork10", "http"): [0.5]}
        return counts.get((shape, kind), 0), fractions.get((shape, kind), []), 6.0
    n = {"seq3": 3000, "fork10": 500}[shape] // (5 if backend == "cassandra" else 1)
    return n, [0.25, 0.5, 0.75], 15.0


async def measure(
    backend: str, workers: list[str], shapes: list[str], quick: bool
) -> list[dict[str, Any]]:
    spec = ClusterSpec(shards=1, store=backend, gateway_port=0)
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    rows: list[dict[str, Any]] = []
    try:
        url = cluster.gateway_urls[0]
        pids = cluster_pids(cluster)
        for shape in shapes:
            for kind in workers:
                n, fractions, seconds = plan(quick, backend, shape, kind)
                if not n:
                    continue
                warmup = min(100, n // 5) if shape == "seq3" else min(30, n // 4)
                peak = await run_workflow_benchmark(
                    url, n, kind, shape=shape, pids=pids, warmup=warmup
                )
                peak.update(backend=backend, load="saturation", fraction=None)
                rows.append(peak)
                print(f"  {backend} {shape} {kind} saturation: {_brief(peak)}", flush=True)
                for frac in fractions:
                    rate = max(1.0, round(float(peak["workflows_per_s"]) * frac, 1))
                    steady = await run_workflow_benchmark(
                        url,
                        max(10, int(rate * seconds)),
                        kind,
                        offered_rate=rate,
                        shape=shape,
                        pids=pids,
                        warmup=0,
                    )
                    steady.update(backend=backend, load=f"{rate:g}/s ({frac:.0%})", fraction=frac)
                    rows.append(steady)
                    print(f"  {backend} {shape} {kind} {rate:g}/s: {_brief(steady)}", flush=True)
    finally:
        await cluster.stop()
    return rows


def _brief(r: dict[str, Any]) -> str:
    lat, wait = r["latency_ms"], r["queue_wait_ms"]
    return (
        f"{r['workflows_per_s']:.1f} wf/s, {r['task_executions_per_s']:.0f} tasks/s, "
        f"start→done p50 {lat['p50']:.0f} ms p99 {lat['p99']:.0f} ms, "
        f"sched→poll p99 {wait['p99']:.1f} ms"
    )


def report(rows: list[dict[str, Any]], out: Path, quick: bool) -> Path:
    table = []
    cpu_rows = []
    for r in rows:
        lat, wait = r["latency_ms"], r["queue_wait_ms"]
        label = [r["backend"], r["shape"], r["worker_kind"], r["load"]]
        table.append(
            [
                *label,
                f"{r['completed']}/{r['workflows']}",
                r["workflows_per_s"],
                r["task_executions_per_s"],
                *(lat[k] for k in ("p50", "p99", "p99.9")),
                *(wait[k] for k in ("p50", "p99", "p99.9")),
                r.get("cpu_ms_per_workflow", float("nan")),
            ]
        )
        cpu_rows.append([*label, cpu_text(r.get("cpu", {}))])
    headers = [
        "store",
        "shape",
        "workers",
        "load",
        "completed",
        "workflows/s",
        "tasks/s",
        "start→done p50 ms",
        "p99",
        "p99.9",
        "sched→polled p50 ms",
        "p99",
        "p99.9",
        "CPU ms/workflow",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "workflow_throughput.json").write_text(json.dumps(rows, indent=1, default=str))
    chart = out / "workflow_latency.png"
    charted = _chart(rows, chart)
    backends = sorted({r["backend"] for r in rows})
    path = out / "workflow_throughput.md"
    path.write_text(
        report_header(
            "Workflow throughput and latency",
            quick,
            "; ".join(DURABILITY[b] for b in backends),
            PAYLOAD,
            [
                "shapes: seq3 = 3 sequential SIMPLE tasks; fork10 = FORK_JOIN of 10 SIMPLE "
                "branches + JOIN; started over HTTP (POST /workflow/{name})",
                "one replica of each service, one queue shard; workers in their own "
                "processes (http: Podium's asyncio worker, batch 10, 2 pollers per type, "
                "long poll 100 ms; sdk: conductor-python TaskHandler, 10 threads, poll 10 ms)",
                "saturation: starts as fast as the gateway takes them (16 in flight), so "
                "start→done there is mostly backlog; the offered-rate rows are the latency "
                "figures",
            ],
        )
        + "\nstart→done = workflow endTime - startTime; sched→polled = SIMPLE task startTime "
        "- scheduledTime (ms); throughput over [first start request, last endTime].\n\n"
        + markdown_table(headers, table)
        + "\n\nCPU seconds per process during each measured run (driver = load generator):\n\n"
        + markdown_table(["store", "shape", "workers", "load", "CPU"], cpu_rows)
        + "\n"
        + (f"\n![latency vs offered load]({chart.name})\n" if charted else "")
    )
    return path


def _chart(rows: list[dict[str, Any]], path: Path) -> bool:
    """Latency percentiles vs offered load: a column per (shape, workers), two rows (start→
    COMPLETED, scheduled→polled) per store."""
    series = sorted({_key(r) for r in rows if r["fraction"]})
    if not series:
        return False
    backends = sorted({k[0] for k in series})
    columns = sorted({k[1:] for k in series}, key=lambda c: (c[0] != "seq3", c))
    chart_style()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2 * len(backends),
        len(columns),
        figsize=(4.2 * len(columns), 3.5 * 2 * len(backends)),
        squeeze=False,
    )
    for b, backend in enumerate(backends):
        for col, (shape, kind) in enumerate(columns):
            key = (backend, shape, kind)
            points = sorted(
                (r for r in rows if _key(r) == key and r["fraction"]),
                key=lambda r: r["offered_rate"],
            )
            peak = next((r for r in rows if _key(r) == key and not r["fraction"]), None)
            xs = [r["offered_rate"] for r in points]
            for m, (field, title) in enumerate(
                (("latency_ms", "start → COMPLETED"), ("queue_wait_ms", "scheduled → polled"))
            ):
                ax = axes[2 * b + m][col]
                if not points:
                    ax.set_axis_off()
                    continue
                for p in ("p50", "p99", "p99.9"):
                    ax.plot(xs, [r[field][p] for r in points], marker="o", label=p)
                if peak is not None:
                    ax.axvline(peak["workflows_per_s"], color="grey", linestyle="--", label="max")
                ax.set_ylim(bottom=0)
                ax.set_xlim(left=0)
                ax.set_xlabel("offered workflows/s")
                ax.set_ylabel(f"{title}, ms")
                ax.set_title(f"{backend} {shape} {kind}: {title}", fontsize=9)
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _key(r: dict[str, Any]) -> tuple[str, str, str]:
    return (r["backend"], r["shape"], r["worker_kind"])


async def main_async(
    quick: bool, backends: list[str], workers: list[str], shapes: list[str], out: Path
) -> Path:
    rows: list[dict[str, Any]] = []
    for backend in backends:
        rows += await measure(backend, workers, shapes, quick)
    path = report(rows, out, quick)
    print(path.read_text())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="redis,cassandra")
    parser.add_argument("--workers", default="http,sdk", help="http and/or sdk")
    parser.add_argument("--shapes", default="seq3,fork10", help="seq3 and/or fork10")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    aio.run(
        main_async(
            args.quick,
            args.backends.split(","),
            args.workers.split(","),
            args.shapes.split(","),
            args.out,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
