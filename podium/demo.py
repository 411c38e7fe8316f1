"""The demo that ``podium up --demo`` runs against the local cluster."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from queue_service.client import QueueClient
from queue_service.model import Message


async def run_queue_demo(addresses: list[str], total: int = 2000) -> dict[str, float]:
    """Push work with priorities and delays, consume it with long-polling workers.

    One worker drops a few messages without acking them (a crash); their leases expire and
    they are delivered again, so every message is still processed. Returns the figures it
    prints.
    """
    client = QueueClient.connect(addresses)
    queue = "demo"
    try:
        await client.flush(queue)
        started = time.monotonic()
        batch = [
            Message(f"job-{i}", {"n": i}, delay_ms=(500 if i % 10 == 0 else 0), priority=i % 3)
            for i in range(total)
        ]
        for i in range(0, total, 500):
            await client.push(queue, batch[i : i + 500])
        print(f"demo: pushed {total} messages ({total // 10} delayed by 500 ms)", flush=True)

        done: Counter[str] = Counter()
        dropped: list[str] = []

        async def worker(n: int) -> None:
            while len(done) < total:
                got = await client.pop(queue, count=50, lease_ms=300, wait_ms=500)
                if n == 0 and not dropped and got:
                    dropped.extend(m.id for m in got[:5])  # "crash" before acking these
                    got = got[5:]
                if got:
                    await client.ack(queue, [m.id for m in got])
                    done.update(m.id for m in got)

        await asyncio.wait_for(asyncio.gather(*(worker(n) for n in range(4))), 60)
        elapsed = time.monotonic() - started
        redelivered = sum(1 for i in dropped if done[i] >= 1)
        print(
            f"demo: {len(done)}/{total} processed by 4 long-polling workers in {elapsed:.2f}s; "
            f"{redelivered}/{len(dropped)} dropped messages redelivered after their lease "
            f"expired; {sum(n > 1 for n in done.values())} processed twice",
            flush=True,
        )
        size = await client.size(queue)
        ok = len(done) == total and size == 0 and redelivered == len(dropped)
        print(f"demo: queue size now {size}; result: {'OK' if ok else 'FAILED'}")
        return {
            "processed": float(len(done)),
            "seconds": elapsed,
            "redelivered": redelivered,
            "ok": float(ok),
        }
    finally:
        await client.close()
