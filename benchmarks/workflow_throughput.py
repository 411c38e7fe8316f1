"""Workflow throughput and latency of Podium, with each persistence backend.

Workflows of three sequential SIMPLE tasks are started over HTTP and completed by external
worker processes polling the gateway (Podium's asyncio HTTP worker, and optionally the
official SDK's workers), on a local cluster of separate processes (``podium up``'s
``LocalCluster``): Redis queue shards, the store (Redis with append-only persistence, or one
Cassandra node), and one replica of each service. For each backend it reports completed
workflows/s at saturation, and the start→COMPLETED and scheduled→polled percentiles at half
that rate, with the CPU of every process.

    python -m benchmarks.workflow_throughput [--quick] [--backends redis,cassandra]
                                             [--workers http,sdk]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, machine, machine_block, markdown_table
from benchmarks.workflow_driver import run_workflow_benchmark
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster


def cluster_pids(cluster: LocalCluster) -> dict[str, int]:
    pids = {s.name: s.proc.pid for s in cluster.services if s.proc}
    pids.update({f"redis-shard-{i}": r._proc.pid for i, r in enumerate(cluster.redis) if r._proc})
    if cluster.store_redis is not None and cluster.store_redis._proc is not None:
        pids["redis-store"] = cluster.store_redis._proc.pid
    node = cluster.cassandra
    proc = getattr(node, "_proc", None)
    if proc is not None:
        pids["cassandra"] = proc.pid
    return pids


async def measure(backend: str, workers: list[str], n: int) -> list[dict[str, Any]]:
    spec = ClusterSpec(shards=1, store=backend, gateway_port=0)
    cluster = await LocalCluster(spec, progress=lambda _: None).start()
    rows: list[dict[str, Any]] = []
    try:
        url = cluster.gateway_urls[0]
        pids = cluster_pids(cluster)
        for kind in workers:
            peak = await run_workflow_benchmark(url, n, kind, pids=pids, warmup=min(100, n // 5))
            peak.update(backend=backend, load="saturation")
            rows.append(peak)
            half = max(1.0, float(peak["workflows_per_s"]) / 2)
            steady = await run_workflow_benchmark(
                url, n // 2, kind, offered_rate=half, pids=pids, warmup=0
            )
            steady.update(backend=backend, load=f"{half:.0f}/s offered")
            rows.append(steady)
    finally:
        await cluster.stop()
    return rows


def report(rows: list[dict[str, Any]], out: Path, quick: bool) -> Path:
    table = []
    for r in rows:
        lat, wait = r["latency_ms"], r["queue_wait_ms"]
        cpu = r.get("cpu", {})
        cpu_text = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(cpu.items()))
        table.append(
            [
                r["backend"],
                r["worker_kind"],
                r["load"],
                r["workflows_per_s"],
                r["task_executions_per_s"],
                lat["p50"],
                lat["p99"],
                wait["p50"],
                wait["p99"],
                r.get("cpu_ms_per_workflow", float("nan")),
                cpu_text,
            ]
        )
    headers = [
        "store",
        "workers",
        "load",
        "workflows/s",
        "tasks/s",
        "start→done p50 ms",
        "p99 ms",
        "scheduled→polled p50 ms",
        "p99 ms",
        "CPU ms/workflow",
        "CPU",
    ]
    out.mkdir(parents=True, exist_ok=True)
    (out / "workflow_throughput.json").write_text(json.dumps(rows, indent=1, default=str))
    path = out / "workflow_throughput.md"
    path.write_text(
        f"# Workflow throughput ({'quick' if quick else 'full'} run)\n\n"
        f"{machine_block(machine())}\n- workflow: 3 sequential SIMPLE tasks, started over HTTP\n"
        "- store: Redis with append-only persistence (fsync every second), or one Cassandra "
        "node; queue: one Redis shard, persistence off\n"
        "- one replica of each service; workers in their own processes\n\n"
        + markdown_table(headers, table)
        + "\n"
    )
    return path


async def main_async(quick: bool, backends: list[str], workers: list[str], out: Path) -> Path:
    n = 600 if quick else 4000
    rows: list[dict[str, Any]] = []
    for backend in backends:
        rows += await measure(backend, workers, n)
        print(f"{backend}: {[round(r['workflows_per_s'], 1) for r in rows]}", flush=True)
    path = report(rows, out, quick)
    print(path.read_text())
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="redis,cassandra")
    parser.add_argument("--workers", default="http", help="http and/or sdk")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    aio.run(main_async(args.quick, args.backends.split(","), args.workers.split(","), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
