"""Store throughput: workflow creates and task updates per second, per backend.

Starts its own Redis (append-only on) and single-node Cassandra with the project launchers,
then measures, with N concurrent writers in one asyncio process:

* ``create``: ``create_workflow`` of a workflow with its first task (one conditional write);
* ``update``: ``commit`` of one changed task with the workflow (the decider's write);
* ``baseline``: the plain write of the same bytes the backend can do at best (Redis ``HSET``;
  Cassandra ``INSERT`` of one row), through the same client, with the same concurrency.

    .venv/bin/python benchmarks/store_throughput.py --quick
    .venv/bin/python benchmarks/store_throughput.py --backends redis --ops 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from podium.launch.redis import RedisServer
from podium.store import Store, StoreConfig, open_store
from podium.store.codec import encode

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    backend: str
    op: str
    ops: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def make_workflow(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    now = int(time.time() * 1000)
    wid = str(uuid.uuid4())
    wf = {
        "workflowId": wid, "workflowName": "bench_flow", "workflowVersion": 1,
        "status": "RUNNING", "createTime": now, "startTime": now, "updateTime": now,
        "correlationId": f"order-{i}", "priority": 0, "variables": {},
        "input": {"orderId": f"ORD-{i:08d}", "amount": i % 977, "items": ["a", "b", "c"]},
        "output": {},
    }  # fmt: skip
    task = {
        "taskId": str(uuid.uuid4()), "taskType": "bench_task", "taskDefName": "bench_task",
        "referenceTaskName": "step_1", "workflowInstanceId": wid, "workflowType": "bench_flow",
        "status": "SCHEDULED", "seq": 1, "retryCount": 0, "iteration": 0, "scheduledTime": now,
        "startTime": 0, "endTime": 0, "updateTime": now, "pollCount": 0,
        "inputData": {"orderId": f"ORD-{i:08d}"}, "outputData": {},
    }  # fmt: skip
    return wf, task


async def run_workers(count: int, concurrency: int, op: Callable[[int], Awaitable[None]]) -> float:
    """Run ``op(i)`` for i in range(count) with ``concurrency`` workers; the seconds taken."""
    next_i = 0

    async def worker() -> None:
        nonlocal next_i
        while next_i < count:
            i = next_i
            next_i += 1
            await op(i)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


async def measure_store(store: Store, backend: str, ops: int, conc: int) -> list[Row]:
    ex = store.executions
    made = [make_workflow(i) for i in range(ops)]
    versions = [0] * ops

    async def create(i: int) -> None:
        wf, task = made[i]
        versions[i] = await ex.create_workflow(wf, [task])

    async def update(i: int) -> None:
        wf, task = made[i]
        now = int(time.time() * 1000)
        done = {**task, "status": "IN_PROGRESS", "startTime": now, "updateTime": now,
                "pollCount": 1, "workerId": "bench-worker"}  # fmt: skip
        versions[i] = await ex.commit({**wf, "updateTime": now}, [done], versions[i])

    await run_workers(min(ops, 200), conc, create)  # warm-up: connections, statements
    made = [make_workflow(i) for i in range(ops)]
    rows = [Row(backend, "create", ops, await run_workers(ops, conc, create))]
    rows.append(Row(backend, "update", ops, await run_workers(ops, conc, update)))
    return rows


async def redis_baseline(server: RedisServer, ops: int, conc: int) -> Row:
    from redis.asyncio import Redis

    client = Redis.from_url(server.url)
    blob = encode(make_workflow(0)[0], 1 << 20, "bench")

    async def hset(i: int) -> None:
        await client.hset(f"bench:raw:{i}", "rec", blob)

    await run_workers(min(ops, 200), conc, hset)
    seconds = await run_workers(ops, conc, hset)
    await client.aclose()
    return Row("redis", "baseline HSET", ops, seconds)


async def cassandra_baseline(config: StoreConfig, ops: int, conc: int) -> Row:
    from podium.store.cassandra_backend.session import CassandraSession

    db = await CassandraSession.connect(config, None)
    ks = config.cassandra_keyspace
    await db.execute(f"CREATE TABLE IF NOT EXISTS {ks}.bench_raw (k text PRIMARY KEY, v blob)")
    stmt = await asyncio.to_thread(db.prepare, f"INSERT INTO {ks}.bench_raw (k, v) VALUES (?, ?)")
    blob = encode(make_workflow(0)[0], 1 << 20, "bench")

    async def insert(i: int) -> None:
        await db.execute(stmt, (str(uuid.uuid4()), blob))

    await run_workers(min(ops, 200), conc, insert)
    seconds = await run_workers(ops, conc, insert)
    await db.close()
    return Row("cassandra", "baseline INSERT", ops, seconds)


async def bench_redis(ops: int, conc: int, data_dir: Path) -> list[Row]:
    server = RedisServer(appendonly=True, data_dir=data_dir / "redis").start()
    try:
        store = await open_store(StoreConfig(backend="redis", redis_url=server.url))
        rows = await measure_store(store, "redis", ops, conc)
        await store.close()
        rows.append(await redis_baseline(server, ops, conc))
        return rows
    finally:
        server.cleanup()


async def bench_cassandra(ops: int, conc: int, data_dir: Path) -> list[Row]:
    from podium.launch.cassandra import CassandraNode

    node = await asyncio.to_thread(CassandraNode(data_dir=data_dir / "cassandra").start)
    try:
        config = StoreConfig(
            backend="cassandra", cassandra_hosts=tuple(node.contact_points),
            cassandra_port=node.port, cassandra_keyspace="podium_bench",
        )  # fmt: skip
        store = await open_store(config)
        rows = await measure_store(store, "cassandra", ops, conc)
        await store.close()
        rows.append(await cassandra_baseline(config, ops, conc))
        return rows
    finally:
        await asyncio.to_thread(node.cleanup)


def table(rows: list[Row]) -> str:
    base = {r.backend: r.rate for r in rows if r.op.startswith("baseline")}
    lines = [f"{'backend':<10} {'operation':<16} {'ops':>7} {'seconds':>8} {'ops/s':>9} "
             f"{'vs baseline':>11}"]  # fmt: skip
    for r in rows:
        ratio = r.rate / base[r.backend] if base.get(r.backend) else float("nan")
        lines.append(f"{r.backend:<10} {r.op:<16} {r.ops:>7} {r.seconds:>8.2f} {r.rate:>9.0f} "
                     f"{ratio:>10.2f}x")  # fmt: skip
    return "\n".join(lines)


async def main_async(opts: argparse.Namespace) -> int:
    import tempfile

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        for backend in opts.backends.split(","):
            ops = opts.ops or (2000 if opts.quick else 20000)
            if backend == "cassandra":
                ops = opts.ops or (1000 if opts.quick else 10000)
                rows += await bench_cassandra(ops, opts.concurrency, Path(tmp))
            elif backend == "redis":
                rows += await bench_redis(ops, opts.concurrency, Path(tmp))
            else:
                print(f"unknown backend {backend!r}", file=sys.stderr)
                return 2
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "store_throughput.json"
    out.write_text(json.dumps([{**r.__dict__, "ops_per_s": r.rate} for r in rows], indent=2))
    print(f"(written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out})")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few operations (a smoke run)")
    p.add_argument("--backends", default="redis,cassandra")
    p.add_argument("--ops", type=int, default=0, help="operations per measurement")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent writers")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
