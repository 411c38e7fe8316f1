"""The gateway's typed state: its connections (decider, queue service, store) and counters.

One :class:`Gateway` is built by the app's lifespan and handed to every endpoint; nothing here
is module-level, so several gateways (tests) can live in one process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from api_gateway.audit import AuditWriter
from api_gateway.next_task import NextTasks
from api_gateway.settings import GatewaySettings
from podium.decider_client import DeciderClient
from podium.definitions.validation import ValidatedDefinitions
from podium.errors import InvalidArgument, NotFound, PodiumError
from podium.queue_client import QueueClient
from podium.rpc import RpcClient
from podium.store import Store
from podium.types import JSON

log = logging.getLogger("podium.gateway")


#: The longest a popped message stays leased while the decider claims it (see ClaimLeases).
CLAIM_LEASE_MS = 30_000


@dataclass
class GatewayStats:
    """What the gateway did; tests read these to prove what a request cost."""

    polls: int = 0
    empty_polls: int = 0
    tasks_handed_out: int = 0
    decider_calls: dict[str, int] = field(default_factory=dict)
    poll_data_writes: int = 0

    @property
    def decider_total(self) -> int:
        return sum(self.decider_calls.values())


class Metrics:
    """Prometheus counters of one gateway (served on the health side port)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "podium_gateway_requests",
            "HTTP requests answered, by status class",
            ["status"],
            registry=self.registry,
        )
        self.polls = Counter(
            "podium_gateway_polls", "Task polls, by outcome", ["outcome"], registry=self.registry
        )
        self.decider_calls = Counter(
            "podium_gateway_decider_calls",
            "Calls to the decider, by method",
            ["method"],
            registry=self.registry,
        )


class PollDataThrottle:
    """Remembers when poll data was last written per (queue, domain, worker).

    An empty poll must cost almost nothing, so poll data is written at most once per
    ``interval_s`` for each key; the map is bounded (oldest entries go first).
    """

    def __init__(
        self,
        interval_s: float = 1.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.clock = clock
        self._last: dict[tuple[str, str, str], float] = {}

    def due(self, queue: str, domain: str | None, worker: str) -> bool:
        key = (queue, domain or "", worker)
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            return False
        if last is None and len(self._last) >= self.max_keys:
            cutoff = now - self.interval_s
            self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            if len(self._last) >= self.max_keys:
                self._last.clear()
        self._last[key] = now
        return True


class ClaimLeases:
    """How long a message popped for a worker stays leased while the decider claims it.

    If the gateway dies between the pop and the claim, the task comes back when the lease ends:
    after ``longest_ms``, or after the ``responseTimeoutSeconds`` of the task type's TaskDef
    when that is shorter (a worker that takes the task would have no longer to answer). TaskDefs
    are read from the store at most every ``ttl_s`` per task type; a failed read keeps
    ``longest_ms``, so a poll never fails for it.
    """

    def __init__(
        self,
        read_task_def: Callable[[str], Awaitable[JSON]],
        longest_ms: int,
        ttl_s: float = 2.0,
        max_types: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read_task_def
        self.longest_ms = longest_ms
        self.ttl_s = ttl_s
        self.max_types = max_types
        self.clock = clock
        self._known: dict[str, tuple[float, int]] = {}  # task type -> (read at, lease ms)

    async def lease_ms(self, task_type: str) -> int:
        now = self.clock()
        known = self._known.get(task_type)
        if known is not None and now - known[0] < self.ttl_s:
            return known[1]
        lease = self.longest_ms
        try:
            timeout_s = (await self._read(task_type)).get("responseTimeoutSeconds")
        except NotFound:
            timeout_s = None
        except PodiumError:
            return lease
        if isinstance(timeout_s, int) and not isinstance(timeout_s, bool) and timeout_s > 0:
            lease = min(lease, timeout_s * 1000)
        if len(self._known) >= self.max_types:
            self._known.clear()  # cheap to rebuild: one read per type
        self._known[task_type] = (now, lease)
        return lease


class CountedDeciderClient(DeciderClient):
    """The decider client, each call counted; a request value the RPC cannot encode is the
    client's error (400), not the gateway's."""

    def __init__(self, rpc: RpcClient, stats: GatewayStats, metrics: Metrics) -> None:
        super().__init__(rpc)
        self.stats = stats
        self.metrics = metrics

    async def call(
        self,
        method: str,
        params: JSON,
        *,
        timeout_s: float | None = None,
        workflow_id: str | None = None,
    ) -> Any:
        self.stats.decider_calls[method] = self.stats.decider_calls.get(method, 0) + 1
        self.metrics.decider_calls.labels(method).inc()
        try:
            return await super().call(method, params, timeout_s=timeout_s, workflow_id=workflow_id)
        except (OverflowError, UnicodeEncodeError, TypeError, ValueError) as exc:
            # The value could not be encoded for the RPC (checked bodies should never get here).
            log.info("decider.%s: a request value could not be encoded: %r", method, exc)
            raise InvalidArgument(
                "Request holds a value that cannot be sent (a number out of range or a string "
                "that is not valid Unicode)"
            ) from None


class Gateway:
    """Everything an endpoint needs; built and closed by the app's lifespan."""

    def __init__(
        self,
        settings: GatewaySettings,
        decider: RpcClient,
        queues: QueueClient,
        store: Store,
    ) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.queues = queues
        self.store = store
        self.stats = GatewayStats()
        self.metrics = Metrics()
        self.decider = CountedDeciderClient(decider, self.stats, self.metrics)
        self.definitions = ValidatedDefinitions()
        self.poll_data = PollDataThrottle()
        self.claim_leases = ClaimLeases(store.metadata.get_task_def, CLAIM_LEASE_MS)
        #: update-v2's next tasks, fetched together per queue (api_gateway/next_task.py)
        self.next_tasks = NextTasks(self)
        #: Audit records of state-changing calls (api_gateway/audit.py); files to the store
        #: as it is now (instrument() may wrap it after this).
        self.audit = AuditWriter(settings.audit, lambda: self.store.audit, self.metrics.registry)
        self.started_at = time.time()
        #: The port of /health, /ready and /metrics, once the side server runs.
        self.health_port: int | None = None

    async def close(self) -> None:
        await self.next_tasks.close()
        await self.audit.close()  # files what waits while the store is still open
        await self.decider.close()
        await self.queues.close()
        await self.store.close()
