"""Queue throughput and long-poll latency: through the queue service vs. straight to Redis.

For 1, 2 and 4 Redis shards, concurrent loops each push, pop and ack messages (one at a time,
or in batches of 100) for a fixed time. The same loops run twice in the same run:

* ``service``: through a queue-service process over loopback RPC (the real deployment path);
* ``direct``: the same engine and Lua scripts in this process, straight to Redis (the limit).

The ratio service/direct is the figure to read; absolute numbers move with the machine.
Then an idle consumer long-polls through the service while a producer pushes one message at a
time, and the push→pop latency percentiles are reported.

    python -m benchmarks.queue_throughput [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import (
    RESULTS,
    CpuMeter,
    cpu_text,
    markdown_table,
    percentile,
    report_header,
)
from podium import aio
from podium.config import rpc_security
from podium.launch.redis import RedisServer, free_port
from podium.queue_client import Message, QueueClient, RawMessage, encode_payload
from queue_service.engine import QueueEngine
from queue_service.shards import ShardSpec

#: the service is started with this process's environment: its PODIUM_RPC_* settings too
SECURITY = rpc_security(os.environ)
PAYLOAD = {"taskId": "0" * 36, "workflowId": "1" * 36, "input": {"n": 1, "s": "x" * 100}}


@dataclass
class Result:
    path: str  # service | direct
    mode: str  # single | batch100
    shards: int
    msgs_per_s: float
    cpu: dict[str, float]


class QueueOps:
    """The three operations, through the service or straight to the engine."""

    def __init__(
        self,
        push: Callable[[list[str]], Awaitable[Any]],
        pop: Callable[[int], Awaitable[list[str]]],
        ack: Callable[[list[str]], Awaitable[Any]],
    ) -> None:
        self.push, self.pop, self.ack = push, pop, ack


def service_ops(client: QueueClient, queue: str) -> QueueOps:
    async def push(ids: list[str]) -> None:
        await client.push(queue, [Message(i, PAYLOAD) for i in ids])

    async def pop(n: int) -> list[str]:
        return [m.id for m in await client.pop(queue, n, lease_ms=60_000)]

    async def ack(ids: list[str]) -> None:
        await client.ack(queue, ids)

    return QueueOps(push, pop, ack)


def direct_ops(engine: QueueEngine, queue: str) -> QueueOps:
    body = encode_payload(PAYLOAD)

    async def push(ids: list[str]) -> None:
        await engine.push(queue, [RawMessage(i, body, 0, 0) for i in ids])

    async def pop(n: int) -> list[str]:
        return [m[0] for m in await engine.pop(queue, n, 60_000)]

    async def ack(ids: list[str]) -> None:
        await engine.ack(queue, ids)

    return QueueOps(push, pop, ack)


async def cycle_load(ops: QueueOps, batch: int, loops: int, seconds: float) -> float:
    """Concurrent push→pop→ack loops; returns acked messages per second."""
    done = 0
    stop_at = time.perf_counter() + seconds
    seq = 0

    async def loop(n: int) -> None:
        nonlocal done, seq
        while time.perf_counter() < stop_at:
            ids = [f"{n}-{seq + k}" for k in range(batch)]
            seq += batch
            await ops.push(ids)
            got = await ops.pop(batch)
            if got:
                await ops.ack(got)
                done += len(got)

    started = time.perf_counter()
    await asyncio.gather(*(loop(n) for n in range(loops)))
    return done / (time.perf_counter() - started)


async def start_service(shards: list[RedisServer]) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    env = dict(os.environ)
    env["PODIUM_QUEUE_SHARDS"] = ",".join(f"s{i}={s.url}" for i, s in enumerate(shards))
    env["PODIUM_QUEUE_PORT"] = str(port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "queue_service.server"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    if "listening" not in line:
        proc.kill()
        raise RuntimeError(f"queue service did not start: {line!r}")
    return proc, f"127.0.0.1:{port}"


async def measure(
    servers: list[RedisServer], shard_counts: list[int], seconds: float
) -> list[Result]:
    results: list[Result] = []
    for n in shard_counts:
        shards = servers[:n]
        specs = [ShardSpec(f"s{i}", s.url) for i, s in enumerate(shards)]
        proc, address = await start_service(shards)
        client = QueueClient.connect([address], connections_per_address=2, security=SECURITY)
        engine = await QueueEngine(specs, notify=False).start()
        pids = {"bench": os.getpid(), "service": proc.pid}
        pids.update({f"redis{i}": s._proc.pid for i, s in enumerate(shards) if s._proc})
        try:
            for mode, batch, loops in (("single", 1, 32), ("batch100", 100, 8)):
                for path, ops in (
                    ("direct", direct_ops(engine, f"bench-{mode}-{n}-d")),
                    ("service", service_ops(client, f"bench-{mode}-{n}-s")),
                ):
                    await cycle_load(ops, batch, loops, min(0.5, seconds / 4))  # warm up
                    meter = CpuMeter(pids)
                    meter.start()
                    rate = await cycle_load(ops, batch, loops, seconds)
                    cpu = meter.stop()
                    results.append(Result(path, mode, n, rate, cpu))
                    print(f"  {n} shard(s) {mode:9} {path:8} {rate:10,.0f} msgs/s", flush=True)
        finally:
            await client.close()
            await engine.stop()
            proc.terminate()
            proc.wait(10)
    return results


async def long_poll_latency(servers: list[RedisServer], samples: int) -> dict[str, float]:
    """Push→pop latency seen by an idle consumer parked in a long poll, through the service."""
    proc, address = await start_service(servers[:1])
    producer = QueueClient.connect([address], security=SECURITY)
    consumer = QueueClient.connect([address], security=SECURITY)
    latencies: list[float] = []
    try:
        await producer.push("lat-warm", [Message("w")])
        await consumer.pop("lat-warm", 1)
        for i in range(samples):
            waiting = asyncio.ensure_future(consumer.pop("lat", 1, lease_ms=1000, wait_ms=5000))
            await asyncio.sleep(0.002)  # let the poll park on the server
            sent = time.perf_counter()
            await producer.push("lat", [Message(f"m{i}")])
            got = await waiting
            latencies.append((time.perf_counter() - sent) * 1000)
            await consumer.ack("lat", [m.id for m in got])
    finally:
        await producer.close()
        await consumer.close()
        proc.terminate()
        proc.wait(10)
    return {
        "samples": float(len(latencies)),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
    }


def write_report(results: list[Result], latency: dict[str, float], out: Path, quick: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    by_key = {(r.path, r.mode, r.shards): r for r in results}
    rows = []
    for r in results:
        if r.path != "service":
            continue
        direct = by_key[("direct", r.mode, r.shards)]
        cpu = cpu_text(r.cpu)
        rows.append(
            [
                r.mode,
                r.shards,
                r.msgs_per_s,
                direct.msgs_per_s,
                r.msgs_per_s / direct.msgs_per_s,
                cpu,
            ]
        )
    table = markdown_table(
        [
            "mode",
            "shards",
            "service msgs/s",
            "direct msgs/s",
            "service/direct",
            "CPU (service run)",
        ],
        rows,
    )
    lat = markdown_table(
        ["samples", "p50 ms", "p99 ms", "max ms"],
        [[int(latency["samples"]), latency["p50_ms"], latency["p99_ms"], latency["max_ms"]]],
    )
    (out / "queue_throughput.json").write_text(
        json.dumps({"results": [r.__dict__ for r in results], "latency": latency}, indent=1)
    )
    chart = out / "queue_throughput.png"
    _chart(results, chart)
    report = out / "queue_throughput.md"
    report.write_text(
        report_header(
            "Queue throughput",
            quick,
            "Redis persistence off (queue shards)",
            f"{len(encode_payload(PAYLOAD))} bytes per message",
            [
                "loops: 32 concurrent for single messages, 8 for batches of 100; bench = the "
                "load generator (and, on the direct path, the engine itself)"
            ],
        )
        + "\npush + pop + ack cycles; `direct` runs the same engine and Lua scripts in the load "
        "generator's process, straight to Redis.\n\n"
        f"{table}\n\n## Long-poll push→pop latency (idle consumer, through the service)\n\n"
        f"{lat}\n\n![throughput]({chart.name})\n"
    )
    return report


def _chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, mode in zip(axes, ("single", "batch100"), strict=True):
        shards = sorted({r.shards for r in results if r.mode == mode})
        width = 0.38
        for k, path_name in enumerate(("direct", "service")):
            vals = [
                next(
                    r.msgs_per_s
                    for r in results
                    if (r.path, r.mode, r.shards) == (path_name, mode, s)
                )
                for s in shards
            ]
            ax.bar([x + k * width for x in range(len(shards))], vals, width, label=path_name)
        ax.set_xticks(
            [x + width / 2 for x in range(len(shards))], [f"{s} shard(s)" for s in shards]
        )
        ax.set_title(f"push+pop+ack, {mode}")
        ax.set_ylabel("messages/s")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def main_async(quick: bool, out: Path) -> Path:
    servers = [RedisServer().start() for _ in range(4)]
    try:
        seconds = 1.5 if quick else 8.0
        print(f"queue throughput, {seconds:g}s per point", flush=True)
        results = await measure(servers, [1, 2, 4], seconds)
        latency = await long_poll_latency(servers, 200 if quick else 1000)
        print(
            f"  long-poll push→pop latency p50 {latency['p50_ms']:.2f} ms, "
            f"p99 {latency['p99_ms']:.2f} ms",
            flush=True,
        )
        report = write_report(results, latency, out, quick)
        print(report.read_text())
        return report
    finally:
        for s in servers:
            s.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (about a minute)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the report")
    args = parser.parse_args(argv)
    aio.run(main_async(args.quick, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
