"""What the UI's queues page reads: the cluster as this gateway sees it, and queue depths.

* ``GET /api/admin/cluster``: the gateway knows the addresses of the decider and queue-service
  replicas it calls; it opens a TCP connection to each (at most ``PROBE_TIMEOUT_S``) and
  reports whether it answered and how fast. That says a replica is reachable from here, not
  that it is well: each service's own ``/ready`` on its health port says that.
* ``GET /api/admin/queue-stats``: every queue with its messages ready now, delayed and leased
  (per shard), and for task queues the tasks the store holds as SCHEDULED and IN_PROGRESS.
  A claimed task's message is acknowledged at once (its response timeout becomes a timer), so
  "in flight" is the IN_PROGRESS count, not the leases. The store's pending tasks are read for
  at most ``MAX_PENDING_READ`` tasks in all; past that the counts are left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway.admin import VERSION
from api_gateway.context import Gateway
from api_gateway.http import ok_json
from api_gateway.routing import Endpoint

PROBE_TIMEOUT_S = 1.0
MAX_PENDING_READ = 20_000
JSON = dict[str, Any]


async def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> JSON:
    """Whether ``host:port`` accepts a TCP connection, and in how many ms."""
    host, _, port = address.rpartition(":")
    started = time.perf_counter()
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
        )
    except (OSError, ValueError, TimeoutError) as exc:
        return {"address": address, "reachable": False, "error": str(exc) or type(exc).__name__}
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    latency = round((time.perf_counter() - started) * 1000, 2)
    return {"address": address, "reachable": True, "latencyMs": latency}


async def cluster(request: Request, gw: Gateway) -> Response:
    s = gw.settings
    groups = {"decider": s.decider_addresses, "queue-service": s.queue_addresses}
    checks = [(service, address) for service, addresses in groups.items() for address in addresses]
    results = await asyncio.gather(*(probe(address) for _, address in checks))
    return ok_json(
        {
            "gateway": {
                "version": VERSION,
                "uptimeMs": int((time.time() - gw.started_at) * 1000),
                "store": s.store.backend,
                "authEnabled": s.auth.enabled,
            },
            "replicas": [
                {"service": service, **result}
                for (service, _), result in zip(checks, results, strict=True)
            ],
        }
    )


async def queue_stats(request: Request, gw: Gateway) -> Response:
    names = sorted(await gw.queues.list_queues())
    details = await asyncio.gather(*(gw.queues.details(name) for name in names))
    counts: dict[str, dict[str, int]] = {}
    budget = MAX_PENDING_READ
    complete = True
    for task_type in sorted({n.rpartition(":")[2] for n in names if not n.startswith("_")}):
        if budget <= 0:
            complete = False
            break
        pending = await gw.store.executions.pending_tasks_by_type(task_type)
        budget -= len(pending)
        for task in pending:
            domain = task.get("domain")
            queue = f"{domain}:{task_type}" if domain else task_type
            by_status = counts.setdefault(queue, {})
            status = str(task.get("status"))
            by_status[status] = by_status.get(status, 0) + 1
    out = []
    for name, shards in zip(names, details, strict=True):
        row: JSON = {
            "queue": name,
            "ready": sum(int(d.get("ready", 0)) for d in shards.values()),
            "delayed": sum(int(d.get("delayed", 0)) for d in shards.values()),
            "leased": sum(int(d.get("leased", 0)) for d in shards.values()),
            "shards": {
                shard: {k: int(d.get(k, 0)) for k in ("ready", "delayed", "leased")}
                for shard, d in shards.items()
            },
        }
        if not name.startswith("_") and (complete or name in counts):
            row["scheduled"] = counts.get(name, {}).get("SCHEDULED", 0)
            row["inProgress"] = counts.get(name, {}).get("IN_PROGRESS", 0)
        out.append(row)
    return ok_json({"queues": out, "complete": complete})


_QUEUE = {
    "type": "object",
    "properties": {
        "queue": {"type": "string"},
        "ready": {"type": "integer"},
        "delayed": {"type": "integer"},
        "leased": {"type": "integer"},
        "shards": {"type": "object"},
        "scheduled": {"type": "integer"},
        "inProgress": {"type": "integer"},
    },
    "required": ["queue", "ready", "delayed", "leased", "shards"],
}
_STATS = {
    "type": "object",
    "properties": {
        "queues": {"type": "array", "items": _QUEUE},
        "complete": {"type": "boolean"},
    },
    "required": ["queues", "complete"],
}
_REPLICA = {
    "type": "object",
    "properties": {
        "service": {"type": "string"},
        "address": {"type": "string"},
        "reachable": {"type": "boolean"},
        "latencyMs": {"type": "number"},
        "error": {"type": "string"},
    },
    "required": ["service", "address", "reachable"],
}
_CLUSTER = {
    "type": "object",
    "properties": {
        "gateway": {"type": "object"},
        "replicas": {"type": "array", "items": _REPLICA},
    },
    "required": ["gateway", "replicas"],
}

ENDPOINTS = [
    Endpoint(
        "GET",
        "/api/admin/cluster",
        cluster,
        "The service replicas this gateway calls, and whether each is reachable",
        "admin",
        ok_schema=_CLUSTER,
        errors=(),
    ),
    Endpoint(
        "GET",
        "/api/admin/queue-stats",
        queue_stats,
        "Every queue: messages ready, delayed and leased; SCHEDULED and IN_PROGRESS tasks",
        "admin",
        ok_schema=_STATS,
        errors=(),
    ),
]
