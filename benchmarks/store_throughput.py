"""Store throughput: workflow creates and task updates per second, per backend.

Starts its own Redis (append-only on) and single-node Cassandra with the project launchers,
then measures, with N concurrent writers in one asyncio process:

* ``create``: ``create_workflow`` of a workflow with its first task (one conditional write);
* ``update``: ``commit`` of one changed task with the workflow (the decider's write);
* ``baseline``: the plain write of the same bytes the backend can do at best (Redis ``HSET``;
  Cassandra ``INSERT`` of one row), through the same client, with the same concurrency;
* Cassandra's ``conditional UPDATE``: the same bytes written ``IF n = <expected>`` on rows
  that exist, one Paxos round each: what a lightweight transaction costs the node against
  the plain write, apart from everything else a commit does;
* reads over the workflows those rows left running: ``running list`` (``running_workflow_ids``
  of their name) and ``search`` (``search_workflows`` by their name, which loads every
  record it finds), counted in workflows per second; on Cassandra against ``records one
  request each``, the same records read by one request per workflow (64 under way), as
  search and the running list read them before they read many partitions a request.

CPU seconds of the load generator and of the Redis / Cassandra process are recorded per row.

    python -m benchmarks.store_throughput --quick [--out DIR]
    python -m benchmarks.store_throughput --backends redis --ops 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import RESULTS, CpuMeter, cpu_text, markdown_table, report_header
from podium.launch.redis import RedisServer
from podium.store import SearchQuery, Store, StoreConfig, open_store
from podium.store.codec import encode

#: the CPU meter of the rows being measured (the load generator and the server's process)
METER: list[CpuMeter] = []
#: the workflow name of every record the benchmark writes
FLOW = "bench_flow"
#: calls per read row (each covers every running workflow)
READ_ROUNDS = 5


@dataclass
class Row:
    backend: str
    op: str
    ops: int
    seconds: float
    cpu: dict[str, float] | None = None
    #: the op of the row this one is compared with: "" the backend's plain write, None none
    base: str | None = ""

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0


def make_workflow(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    now = int(time.time() * 1000)
    wid = str(uuid.uuid4())
    wf = {
        "workflowId": wid, "workflowName": FLOW, "workflowVersion": 1,
        "status": "RUNNING", "createTime": now, "startTime": now, "updateTime": now,
        "correlationId": f"order-{i}", "priority": 0, "variables": {},
        "input": {"orderId": f"ORD-{i:08d}", "amount": i % 977, "items": ["a", "b", "c"]},
        "output": {},
    }  # fmt: skip
    task = {
        "taskId": str(uuid.uuid4()), "taskType": "bench_task", "taskDefName": "bench_task",
        "referenceTaskName": "step_1", "workflowInstanceId": wid, "workflowType": FLOW,
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


async def timed(
    backend: str, op: str, count: int, concurrency: int, fn: Callable[[int], Awaitable[None]]
) -> Row:
    """One measured row, with the CPU of the processes in ``METER``."""
    meter = METER[-1] if METER else CpuMeter({})
    meter.start()
    seconds = await run_workers(count, concurrency, fn)
    return Row(backend, op, count, seconds, meter.stop())


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
    rows = [await timed(backend, "create", ops, conc, create)]
    rows.append(await timed(backend, "update", ops, conc, update))
    return rows


async def measure_reads(store: Store, backend: str, rounds: int) -> list[Row]:
    """Listing and searching the running workflows ``measure_store`` left: workflows per s."""
    ex = store.executions
    listed = len(await ex.running_workflow_ids(FLOW))
    query = SearchQuery(workflow_types=(FLOW,), size=10)
    found = (await ex.search_workflows(query))["totalHits"]

    async def running(i: int) -> None:
        if len(await ex.running_workflow_ids(FLOW)) != listed:
            raise RuntimeError("the running list changed under the benchmark")

    async def search(i: int) -> None:
        if (await ex.search_workflows(query))["totalHits"] != found:
            raise RuntimeError("the search found another count")

    rows = [await timed(backend, f"running list of {listed}", rounds, 1, running)]
    rows.append(await timed(backend, f"search over {found}", rounds, 1, search))
    for row, per_call in zip(rows, (listed, found), strict=True):
        row.ops *= per_call
        row.base = "records one request each" if backend == "cassandra" else None
    return rows


async def cassandra_reads_one_by_one(store: Store, config: StoreConfig, rounds: int) -> Row:
    """The running workflows' records read with one request each, as search read them."""
    from podium.store.cassandra_backend.session import CassandraSession, gather_limited
    from podium.store.codec import decode

    ids = await store.executions.running_workflow_ids(FLOW)
    db = await CassandraSession.connect(config, None)
    one = await asyncio.to_thread(
        db.prepare,
        f"SELECT payload FROM {config.cassandra_keyspace}.workflows WHERE workflow_id = ?"
        " AND shard_id = 0 AND entity = 'workflow' AND item_id = ''",
    )

    async def read_all(i: int) -> None:
        pages = await gather_limited(db.execute(one, (wid,)) for wid in ids)
        if sum(1 for rows in pages for r in rows if decode(r["payload"])) != len(ids):
            raise RuntimeError("a record is missing")

    row = await timed("cassandra", "records one request each", rounds, 1, read_all)
    row.ops *= len(ids)
    row.base = row.op
    await db.close()
    return row


async def redis_baseline(server: RedisServer, ops: int, conc: int) -> Row:
    from redis.asyncio import Redis

    client = Redis.from_url(server.url)
    blob = encode(make_workflow(0)[0], 1 << 20, "bench")

    async def hset(i: int) -> None:
        await client.hset(f"bench:raw:{i}", "rec", blob)

    await run_workers(min(ops, 200), conc, hset)
    row = await timed("redis", "baseline HSET", ops, conc, hset)
    await client.aclose()
    return row


async def cassandra_baseline(config: StoreConfig, ops: int, conc: int) -> list[Row]:
    from podium.store.cassandra_backend.session import CassandraSession

    db = await CassandraSession.connect(config, None)
    ks = config.cassandra_keyspace
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {ks}.bench_raw (k text PRIMARY KEY, v blob, n int)"
    )
    stmt = await asyncio.to_thread(db.prepare, f"INSERT INTO {ks}.bench_raw (k, v) VALUES (?, ?)")
    cas = await asyncio.to_thread(
        db.prepare, f"UPDATE {ks}.bench_raw SET v = ?, n = ? WHERE k = ? IF n = ?"
    )
    blob = encode(make_workflow(0)[0], 1 << 20, "bench")
    keys = [str(uuid.uuid4()) for _ in range(ops)]
    counts = [0] * ops

    async def insert(i: int) -> None:
        await db.execute(stmt, (keys[i], blob))

    async def conditional(i: int) -> None:
        rows = await db.execute(cas, (blob, counts[i] + 1, keys[i], counts[i] or None))
        if not rows or not rows[0].get("[applied]"):
            raise RuntimeError(f"conditional update of {keys[i]} not applied: {rows}")
        counts[i] += 1

    await run_workers(min(ops, 200), conc, insert)
    await run_workers(min(ops, 200), conc, conditional)
    rows = [await timed("cassandra", "baseline INSERT", ops, conc, insert)]
    rows.append(await timed("cassandra", "conditional UPDATE", ops, conc, conditional))
    await db.close()
    return rows


async def bench_redis(ops: int, conc: int, data_dir: Path) -> list[Row]:
    server = RedisServer(appendonly=True, data_dir=data_dir / "redis").start()
    assert server._proc is not None
    METER.append(CpuMeter({"bench": os.getpid(), "redis": server._proc.pid}))
    try:
        store = await open_store(StoreConfig(backend="redis", redis_url=server.url))
        rows = await measure_store(store, "redis", ops, conc)
        rows += await measure_reads(store, "redis", READ_ROUNDS)
        await store.close()
        rows.append(await redis_baseline(server, ops, conc))
        return rows
    finally:
        server.cleanup()


async def bench_cassandra(ops: int, conc: int, data_dir: Path) -> list[Row]:
    from podium.launch.cassandra import CassandraNode

    node = await asyncio.to_thread(CassandraNode(data_dir=data_dir / "cassandra").start)
    pids = {"bench": os.getpid()}
    if node._proc is not None:
        pids["cassandra"] = node._proc.pid
    METER.append(CpuMeter(pids))
    try:
        config = StoreConfig(
            backend="cassandra", cassandra_hosts=tuple(node.contact_points),
            cassandra_port=node.port, cassandra_keyspace="podium_bench",
        )  # fmt: skip
        store = await open_store(config)
        rows = await measure_store(store, "cassandra", ops, conc)
        rows.append(await cassandra_reads_one_by_one(store, config, READ_ROUNDS))
        rows += await measure_reads(store, "cassandra", READ_ROUNDS)
        await store.close()
        rows += await cassandra_baseline(config, ops, conc)
        return rows
    finally:
        await asyncio.to_thread(node.cleanup)


def table(rows: list[Row]) -> str:
    plain_write = {r.backend: r for r in rows if r.op.startswith("baseline")}
    by_op = {(r.backend, r.op): r for r in rows}

    def ratio(r: Row) -> float:
        if r.base is None:
            return float("nan")
        base = by_op.get((r.backend, r.base)) if r.base else plain_write.get(r.backend)
        return r.rate / base.rate if base is not None and base.rate else float("nan")

    return markdown_table(
        ["backend", "operation", "ops", "seconds", "ops/s", "vs baseline", "server CPU ms/op",
         "CPU"],
        [
            [r.backend, r.op, r.ops, r.seconds, r.rate, ratio(r), server_ms_per_op(r),
             cpu_text(r.cpu or {})]
            for r in rows
        ],
    )  # fmt: skip


def server_ms_per_op(row: Row) -> float:
    """Milliseconds of the server process's CPU (Redis or Cassandra) per operation."""
    server = sum(v for k, v in (row.cpu or {}).items() if k != "bench")
    return 1000.0 * server / row.ops if row.ops else float("nan")


async def main_async(opts: argparse.Namespace) -> int:
    import tempfile

    rows: list[Row] = []
    backends = opts.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as tmp:
        for backend in backends:
            ops = opts.ops or (5000 if opts.quick else 20000)
            if backend == "cassandra":
                ops = opts.ops or (1000 if opts.quick else 10000)
                rows += await bench_cassandra(ops, opts.concurrency, Path(tmp))
            elif backend == "redis":
                rows += await bench_redis(ops, opts.concurrency, Path(tmp))
            else:
                print(f"unknown backend {backend!r}", file=sys.stderr)
                return 2
    out: Path = opts.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "store_throughput.json").write_text(
        json.dumps([{**r.__dict__, "ops_per_s": r.rate} for r in rows], indent=2)
    )
    durability = {
        "redis": "Redis append-only (appendfsync everysec)",
        "cassandra": "one Cassandra node, commit log periodic (fsync every 1 s)",
    }
    wf, task = make_workflow(0)
    payload = (
        f"workflow record {len(encode(wf, 1 << 20, 'bench'))} bytes encoded, task record "
        f"{len(encode(task, 1 << 20, 'bench'))} bytes"
    )
    report = out / "store_throughput.md"
    report.write_text(
        report_header(
            "Store throughput",
            opts.quick,
            "; ".join(durability[b] for b in backends if b in durability),
            payload,
            [f"{opts.concurrency} concurrent writers in one asyncio process (bench)"],
        )
        + "\ncreate = create_workflow with its first task (one conditional write); update = "
        "commit of one changed task with the workflow (the decider's write); baseline = the "
        "plain write of the same bytes (Redis HSET, Cassandra INSERT) through the same client; "
        "conditional UPDATE = the same bytes written IF n = <expected>, one Paxos round each; "
        "the read rows count workflows per second (running list, search over every running "
        "workflow's record) and compare on Cassandra with the same records read one request "
        "each. CPU seconds per process during each row.\n\n" + table(rows) + "\n"
    )
    print(report.read_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="few operations (a smoke run)")
    p.add_argument("--backends", default="redis,cassandra")
    p.add_argument("--ops", type=int, default=0, help="operations per measurement")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent writers")
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for the report")
    return asyncio.run(main_async(p.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
