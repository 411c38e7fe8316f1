"""Event handler throughput: messages → handler → workflow started, per second.

A cluster of separate processes (queue service, decider, sweeper, Redis) and a local RabbitMQ
broker. One event handler starts a workflow per message; N messages are put on its event at
once, and the time until the handler has started N workflows (the sweeper's
``podium_events_actions_total{action="start_workflow",outcome="done"}``) gives events/s:

* **internal**: the event ``conductor:bench:in`` on Podium's queue service;
* **amqp**: the event ``amqp:<queue>`` on the broker.

Two baselines are measured in the same run, and the figures are reported as ratios to them:
the broker alone (aio-pika publishing N persistent messages and one consumer with manual acks
and the same prefetch taking them), and the workflow starts alone (N starts with idempotency
keys sent straight to the decider, as many at once as the prefetch): what a handler adds to
a message is one of each.

    python -m benchmarks.events [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

import aio_pika
import httpx

from benchmarks.measure import (
    RESULTS,
    CpuMeter,
    cluster_pids,
    cpu_text,
    markdown_table,
    report_header,
)
from podium import aio, events
from podium.cluster import ClusterSpec, LocalCluster
from podium.decider_client import DeciderClient
from podium.launch.rabbitmq import RabbitServer
from podium.queue_client import Message, QueueClient
from podium.store import StoreConfig, open_store
from podium.types import JSON

PREFETCH = 32
TARGET = "bench_event_target"


def target_definition() -> JSON:
    return {
        "name": TARGET,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "noop", "taskReferenceName": "n", "type": "NOOP"}],
    }


def handler(name: str, event: str) -> JSON:
    return {
        "name": name,
        "event": event,
        "active": True,
        "actions": [
            {
                "action": "start_workflow",
                "start_workflow": {"name": TARGET, "version": 1, "input": {"n": "${n}"}},
            }
        ],
    }


async def started(sweeper_metrics: str, client: httpx.AsyncClient) -> float:
    """Workflows the sweeper's handlers have started so far."""
    text = (await client.get(sweeper_metrics)).text
    for line in text.splitlines():
        if (
            line.startswith("podium_events_actions_total{")
            and 'action="start_workflow"' in line
            and 'outcome="done"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def until_started(url: str, client: httpx.AsyncClient, goal: float, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while await started(url, client) < goal:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {goal:.0f} workflows started within {limit_s}s")
        await asyncio.sleep(0.05)


async def through_handler(
    cluster: LocalCluster, rabbit: RabbitServer, transport: str, count: int, metrics_url: str
) -> float:
    """Events/s from N messages on the handler's event to N workflows started."""
    tag = uuid.uuid4().hex[:8]
    event = f"conductor:bench:{tag}" if transport == "internal" else f"amqp:bench_{tag}"
    store = await open_store(StoreConfig.from_env(cluster.store_env))
    queues = QueueClient(cluster.rpc_client(cluster.queue_addresses))
    async with httpx.AsyncClient() as client:
        try:
            await store.metadata.update_workflow_def(target_definition())
            await store.metadata.add_event_handler(handler(f"bench_{tag}", event))
            # warm: the handler's consumer runs once a first message goes through
            before = await started(metrics_url, client)
            await publish(queues, rabbit, event, [f"warm-{tag}"])
            await until_started(metrics_url, client, before + 1, 60)
            before += 1
            ids = [f"{tag}-{i}" for i in range(count)]
            t0 = time.perf_counter()
            await publish(queues, rabbit, event, ids)
            await until_started(metrics_url, client, before + count, 300)
            return count / (time.perf_counter() - t0)
        finally:
            await store.metadata.remove_event_handler(f"bench_{tag}")
            await queues.close()
            await store.close()


async def publish(queues: QueueClient, rabbit: RabbitServer, event: str, ids: list[str]) -> None:
    parsed = events.parse_event(event)
    if parsed.is_internal:
        queue = events.internal_queue(parsed)
        for i in range(0, len(ids), 100):
            batch = [Message(m, {"payload": {"n": m}, "attempts": 0}) for m in ids[i : i + 100]]
            await queues.push(queue, batch)
        return
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(parsed.queue, durable=True)
        await asyncio.gather(
            *(
                channel.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps({"n": m}).encode(),
                        message_id=m,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=parsed.queue,
                )
                for m in ids
            )
        )


async def broker_alone(rabbit: RabbitServer, count: int) -> float:
    """Messages/s of aio-pika publishing ``count`` persistent messages (with confirms) and one
    consumer with manual acks and the processor's prefetch taking them all."""
    queue_name = f"bench_raw_{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(rabbit.url)
    async with connection:
        consuming = await connection.channel()
        await consuming.set_qos(prefetch_count=PREFETCH)
        queue = await consuming.declare_queue(queue_name, durable=True)
        done = asyncio.Event()
        seen = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal seen
            json.loads(message.body)
            await message.ack()
            seen += 1
            if seen >= count:
                done.set()

        await queue.consume(on_message)
        publishing = await connection.channel(publisher_confirms=True)
        t0 = time.perf_counter()
        await asyncio.gather(
            *(
                publishing.default_exchange.publish(
                    aio_pika.Message(
                        json.dumps({"n": i}).encode(),
                        message_id=str(i),
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue_name,
                )
                for i in range(count)
            )
        )
        await asyncio.wait_for(done.wait(), 300)
        return count / (time.perf_counter() - t0)


async def direct_starts(cluster: LocalCluster, count: int) -> float:
    """Starts/s of the handler's workflow sent straight to the decider, ``PREFETCH`` at once,
    each with an idempotency key as a handler's start has."""
    decider = DeciderClient(cluster.rpc_client(cluster.decider_addresses, timeout_s=60))
    store = await open_store(StoreConfig.from_env(cluster.store_env))
    slots = asyncio.Semaphore(PREFETCH)
    tag = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        async with slots:
            await decider.start_workflow(
                {
                    "name": TARGET,
                    "version": 1,
                    "input": {"n": i},
                    "idempotencyKey": f"direct:{tag}:{i}",
                    "idempotencyStrategy": "RETURN_EXISTING",
                }
            )

    try:
        await store.metadata.update_workflow_def(target_definition())
        await one(-1)  # warm
        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return count / (time.perf_counter() - t0)
    finally:
        await decider.close()
        await store.close()


async def main_async(quick: bool, out: Path) -> Path:
    count = 1000 if quick else 10000
    with RabbitServer() as rabbit:
        env = {
            "PODIUM_AMQP_URL": rabbit.url,
            "PODIUM_EVENTS_REFRESH_S": "0.2",
            "PODIUM_EVENTS_PREFETCH": str(PREFETCH),
        }
        cluster = LocalCluster(
            ClusterSpec(shards=1, gateways=0, sweepers=1, gateway_port=0, extra_env=env),
            progress=lambda _: None,
        )
        await cluster.start()
        try:
            [sweeper] = cluster.of("sweeper.server")
            metrics_url = f"http://127.0.0.1:{sweeper.health_port}/metrics"
            pids = {"bench": os.getpid(), "rabbitmq": rabbit.vm_pid or 0, **cluster_pids(cluster)}
            meter = CpuMeter(pids)
            results: list[tuple[str, float, dict[str, float]]] = []
            meter.start()
            raw = await broker_alone(rabbit, count)
            results.append(("RabbitMQ alone (aio-pika publish + consume)", raw, meter.stop()))
            meter.start()
            starts = await direct_starts(cluster, count)
            results.append(("workflow starts alone (decider RPC)", starts, meter.stop()))
            for transport in ("internal", "amqp"):
                meter.start()
                rate = await through_handler(cluster, rabbit, transport, count, metrics_url)
                label = (
                    "handler on Podium's queue (conductor:…)"
                    if transport == "internal"
                    else "handler on RabbitMQ (amqp:…)"
                )
                results.append((label, rate, meter.stop()))
        finally:
            await cluster.stop()
    rows = [[label, f"{rate:,.0f}", f"{rate / raw:.2f}", f"{rate / starts:.2f}", cpu_text(cpu)]
            for label, rate, cpu in results]  # fmt: skip
    headers = ["path", "per second", "ratio to RabbitMQ alone", "ratio to starts alone", "CPU"]
    table = markdown_table(headers, rows)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "events.md"
    report.write_text(
        report_header(
            "Event handler throughput",
            quick,
            "store Redis append-only (appendfsync everysec); queue shard persistence off; "
            "RabbitMQ durable queues, persistent messages, publisher confirms",
            "message {'n': id}; each starts a workflow of one NOOP task",
            [
                f"{count} messages put on the event at once; one sweeper, one decider; "
                f"prefetch {PREFETCH}"
            ],
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
