"""Decisions per second: the pure decide function, and through the decider service.

The workload is the life of a workflow of three sequential SIMPLE tasks: start, then for each
task a claim (poll) and a completion, i.e. 7 decisions per workflow.

* ``pure``: the operations of :mod:`decider.operations` on records in memory, no I/O;
* ``service/<backend>``: the same life through a decider process over RPC, with the queue
  service and the store (Redis with append-only persistence, or Cassandra) each in their own
  processes, driven by concurrent clients.

The ratio service/pure shows what persistence and the network cost per decision.

    python -m benchmarks.decide_throughput [--quick] [--backends redis,cassandra]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    RESULTS,
    CpuMeter,
    cluster_pids,
    cpu_text,
    markdown_table,
    report_header,
)
from decider import operations as ops
from decider.decision import Context
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.queue_client import QueueClient
from podium.store import StoreConfig, open_store
from podium.types import JSON

TASK = "bench_decide_task"


def definition(name: str = "bench_decide") -> JSON:
    tasks = [{"name": TASK, "taskReferenceName": f"t{i}", "type": "SIMPLE"} for i in range(3)]
    return {"name": name, "version": 1, "schemaVersion": 2, "tasks": tasks}


def pure_rate(seconds: float) -> tuple[float, int]:
    """Decisions/s of the pure operations for whole 3-task workflow lives."""
    counter = itertools.count()
    now = [1_700_000_000_000]

    def ctx() -> Context:
        now[0] += 1
        return Context(now_ms=now[0], ids=lambda: f"id{next(counter)}")

    wf_def = definition()
    decisions = 0
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop_at:
        d = ops.start_workflow(wf_def, {"input": {"n": 1}}, ctx())
        decisions += 1
        wf = d.workflow
        for _ in range(3):
            task = next(t for t in wf["tasks"] if t["status"] == "SCHEDULED")
            wf = ops.claim(wf, task["taskId"], "w", ctx()).workflow
            result = {
                "workflowInstanceId": wf["workflowId"],
                "taskId": task["taskId"],
                "status": "COMPLETED",
                "outputData": {"ok": True},
            }
            wf = ops.update_task(wf, result, ctx()).workflow
            decisions += 2
        assert wf["status"] == "COMPLETED"
    return decisions / (time.perf_counter() - started), decisions


async def service_rate(
    cluster: LocalCluster, seconds: float, concurrency: int
) -> tuple[float, dict[str, float]]:
    rpc = cluster.rpc_client(cluster.decider_addresses, timeout_s=60)
    queues = QueueClient(cluster.rpc_client(cluster.queue_addresses))
    store = await open_store(StoreConfig.from_env(cluster.store_env))
    await store.metadata.update_workflow_def(definition())
    decisions = 0
    stop_at = time.perf_counter() + seconds

    async def life() -> None:
        nonlocal decisions
        while time.perf_counter() < stop_at:
            await rpc.call(
                "decider.start_workflow", {"request": {"name": "bench_decide", "input": {"n": 1}}}
            )
            decisions += 1
            for _ in range(3):
                got: list[Any] = []
                while not got:
                    got = await queues.pop(TASK, count=1, lease_ms=60_000, wait_ms=200)
                items = [[m.id, m.payload.decode()] for m in got]
                claimed = (
                    await rpc.call(
                        "decider.claim", {"queue": TASK, "items": items, "workerId": "bench"}
                    )
                )["tasks"]
                for t in claimed:
                    await rpc.call(
                        "decider.update_task",
                        {
                            "result": {
                                "workflowInstanceId": t["workflowInstanceId"],
                                "taskId": t["taskId"],
                                "status": "COMPLETED",
                                "outputData": {"ok": True},
                            }
                        },
                    )
                decisions += 2

    pids = {"bench": os.getpid(), **cluster_pids(cluster)}
    meter = CpuMeter(pids)
    meter.start()
    started = time.perf_counter()
    try:
        await asyncio.gather(*(life() for _ in range(concurrency)))
    finally:
        cpu = meter.stop()
        await rpc.close()
        await queues.close()
        await store.close()
    return decisions / (time.perf_counter() - started), cpu


async def main_async(quick: bool, backends: list[str], out: Path) -> Path:
    seconds = 3.0 if quick else 15.0
    pure, n = pure_rate(seconds)
    print(f"pure decide: {pure:,.0f} decisions/s ({n} decisions)", flush=True)
    rows: list[list[object]] = [["pure", pure, 1.0, "-"]]
    for backend in backends:
        cluster = LocalCluster(
            ClusterSpec(shards=1, gateways=0, sweepers=0, store=backend, gateway_port=0),
            progress=lambda line: None,
        )
        await cluster.start()
        try:
            await service_rate(cluster, min(1.0, seconds / 3), 16)  # warm up
            rate, cpu = await service_rate(cluster, seconds, 16)
        finally:
            await cluster.stop()
        print(f"service/{backend}: {rate:,.0f} decisions/s", flush=True)
        rows.append([f"service/{backend}", rate, rate / pure, cpu_text(cpu)])
    out.mkdir(parents=True, exist_ok=True)
    report = out / "decide_throughput.md"
    report.write_text(
        report_header(
            "Decide throughput",
            quick,
            "store Redis append-only (appendfsync everysec), or one Cassandra node (commit "
            "log periodic, fsync every 1 s); queue shard persistence off",
            "workflow input {'n': 1}, task output {'ok': true}",
            [
                "workload: 3 sequential SIMPLE tasks; start + 3 x (claim, complete) = 7 "
                "decisions; 16 concurrent clients (bench) over RPC"
            ],
        )
        + "\n"
        + markdown_table(["path", "decisions/s", "ratio to pure", "CPU"], rows)
        + "\n"
    )
    print(report.read_text())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backends", default="redis,cassandra")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    aio.run(main_async(args.quick, [b for b in args.backends.split(",") if b], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
