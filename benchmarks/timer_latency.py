"""Timer latency: from the moment a WAIT task is due to the moment it is decided.

Workflows of one WAIT task (a short duration, staggered starts) run on a cluster of separate
processes (queue service, decider, sweeper, Redis); each task's lateness is
``endTime - (scheduledTime + duration)``. The baseline in the same run is the queue itself:
messages pushed with the same delays, popped by a long-polling consumer, lateness measured the
same way. The sweeper adds a pop of the decider queue and a decide to that.

    python -m benchmarks.timer_latency [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

from benchmarks.measure import (
    RESULTS,
    CpuMeter,
    cluster_pids,
    cpu_text,
    markdown_table,
    percentile,
    report_header,
)
from podium import aio
from podium.cluster import ClusterSpec, LocalCluster
from podium.queue_client import Message, QueueClient
from podium.store import StoreConfig, open_store
from podium.types import JSON

WAIT_S = 2


def definition() -> JSON:
    return {
        "name": "bench_timer",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "wait",
                "taskReferenceName": "w",
                "type": "WAIT",
                "inputParameters": {"duration": f"{WAIT_S} seconds"},
            }
        ],
    }


async def workflow_lateness(cluster: LocalCluster, count: int, spread_s: float) -> list[float]:
    rpc = cluster.rpc_client(cluster.decider_addresses, timeout_s=60)
    store = await open_store(StoreConfig.from_env(cluster.store_env))
    try:
        await store.metadata.update_workflow_def(definition())
        ids: list[str] = []
        for i in range(count):
            answer = await rpc.call(
                "decider.start_workflow", {"request": {"name": "bench_timer", "input": {"i": i}}}
            )
            ids.append(answer["workflowId"])
            await asyncio.sleep(spread_s / count)
        lateness: list[float] = []
        deadline = time.monotonic() + WAIT_S + spread_s + 60
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for wf_id in list(pending):
                wf = await store.executions.get_workflow(wf_id, include_tasks=True)
                if wf["status"] == "COMPLETED":
                    task = wf["tasks"][0]
                    lateness.append(task["endTime"] - (task["scheduledTime"] + WAIT_S * 1000))
                    pending.discard(wf_id)
            await asyncio.sleep(0.2)
        if pending:
            raise RuntimeError(f"{len(pending)} workflows did not complete")
        return lateness
    finally:
        await rpc.close()
        await store.close()


async def queue_lateness(cluster: LocalCluster, count: int, spread_s: float) -> list[float]:
    queues = QueueClient(cluster.rpc_client(cluster.queue_addresses))
    lateness: list[float] = []
    try:

        async def consume() -> None:
            while len(lateness) < count:
                got = await queues.pop("bench_timer_q", count=10, lease_ms=60_000, wait_ms=1000)
                now = time.time() * 1000
                for m in got:
                    lateness.append(now - m.payload)
                if got:
                    await queues.ack("bench_timer_q", [m.id for m in got])

        consumer = asyncio.ensure_future(consume())
        for i in range(count):
            due = time.time() * 1000 + WAIT_S * 1000
            await queues.push("bench_timer_q", [Message(f"m{i}", due, delay_ms=WAIT_S * 1000)])
            await asyncio.sleep(spread_s / count)
        await asyncio.wait_for(consumer, WAIT_S + spread_s + 60)
        return lateness
    finally:
        await queues.close()


async def main_async(quick: bool, out: Path) -> Path:
    count, spread = (200, 4.0) if quick else (1000, 20.0)
    cluster = LocalCluster(
        ClusterSpec(shards=1, gateways=0, sweepers=1, gateway_port=0), progress=lambda _: None
    )
    await cluster.start()
    try:
        meter = CpuMeter({"bench": os.getpid(), **cluster_pids(cluster)})
        meter.start()
        base = await queue_lateness(cluster, count, spread)
        cpu_queue = meter.stop()
        meter.start()
        wf = await workflow_lateness(cluster, count, spread)
        cpu_wf = meter.stop()
    finally:
        await cluster.stop()
    rows = []
    for label, values, cpu in (
        ("queue (delayed message → long poll)", base, cpu_queue),
        ("workflow (WAIT due → decided)", wf, cpu_wf),
    ):
        rows.append(
            [
                label,
                len(values),
                percentile(values, 50),
                percentile(values, 99),
                max(values),
                cpu_text(cpu),
            ]
        )
    table = markdown_table(["path", "timers", "p50 ms", "p99 ms", "max ms", "CPU"], rows)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "timer_latency.md"
    report.write_text(
        report_header(
            "Timer latency",
            quick,
            "store Redis append-only (appendfsync everysec); queue shard persistence off",
            "workflow input {'i': n}; queue message payload: the due time",
            [f"{count} timers of {WAIT_S} s started over {spread:.0f} s; one sweeper, one decider"],
        )
        + "\n"
        f"{table}\n"
    )
    print(report.read_text())
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    aio.run(main_async(args.quick, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
