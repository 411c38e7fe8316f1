"""The queue service: :class:`~queue_service.engine.QueueEngine` served over msgpack RPC.

Methods (params are maps; messages travel as ``[id, body, delay_ms, priority]`` with the
payload already encoded, see :mod:`podium.queue_client`):

===================  =====================================================  ===================
method               params                                                 result
===================  =====================================================  ===================
queue.push           queue, messages                                        [bool new]
queue.push_if_absent queue, messages                                        [bool new]
queue.pop            queue, count, lease_ms, wait_ms                        [[id, body, prio]]
queue.ack            queue, ids                                             [bool]
queue.remove         queue, ids                                             [bool]
queue.set_unack_timeout  queue, id, lease_ms                                bool
queue.nack           queue, id (visible again at once)                      bool
queue.postpone       queue, id, delay_ms, priority                          bool
queue.schedule       queue, id, delay_ms, fence, priority                   bool (applied)
queue.contains       queue, id                                              bool
queue.get            queue, id                                     [state, prio, time_ms, body]|nil
queue.size           queue                                                  int
queue.details        queue                                          {shard: {ready,delayed,leased}}
queue.flush          queue                                                  nil
queue.list_queues    -                                                      [name]
queue.batch          ops [[method, params], ...] (run concurrently)         [[ok, result|error]]
queue.ping           -                                                      "pong"
===================  =====================================================  ===================
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from prometheus_client import CollectorRegistry, Gauge

from podium.aio import OwnedTasks
from podium.codec import CodecLimits
from podium.config import Environ, env_int, env_str, rpc_limits, rpc_security
from podium.errors import InvalidArgument, PodiumError
from podium.health import HealthServer
from podium.metrics import rpc_metrics
from podium.queue_client import MAX_PER_OPERATION, RawMessage
from podium.redis_conn import parse_sentinels
from podium.rpc import CallContext, Handler, RpcServer
from podium.rpc_security import RpcSecurity
from podium.rpc_server import chain
from podium.service import run_main, until_stopped
from podium.telemetry import Telemetry
from podium.telemetry.queue import TracedEngine
from podium.telemetry.rpc import server_tracing
from queue_service.engine import QueueEngine
from queue_service.limits import QueueLimits, checked_message
from queue_service.shards import ShardSpec, parse_shards

log = logging.getLogger("podium.queue")

DEFAULT_PORT = 7301
DEFAULT_HEALTH_PORT = 7311


@dataclass(frozen=True)
class QueueSettings:
    shards: list[ShardSpec]
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    limits: QueueLimits = field(default_factory=QueueLimits)
    codec: CodecLimits = field(default_factory=CodecLimits)
    requeue_interval_ms: int = 250
    health_host: str = "127.0.0.1"
    #: -1 turns the health port off (tests that run many services in one process).
    health_port: int = -1
    #: who may call (podium/rpc_security.py); open unless set
    rpc: RpcSecurity = field(default_factory=RpcSecurity)

    @classmethod
    def from_env(cls, env: Environ) -> QueueSettings:
        limits = QueueLimits(
            max_batch=env_int(
                env, "PODIUM_QUEUE_MAX_BATCH", 1000, minimum=MAX_PER_OPERATION, maximum=10_000
            ),
            max_payload_bytes=env_int(
                env, "PODIUM_QUEUE_MAX_PAYLOAD_BYTES", 1024 * 1024, minimum=16
            ),
            max_wait_ms=env_int(env, "PODIUM_QUEUE_MAX_WAIT_MS", 60_000, minimum=0),
        )
        codec = rpc_limits(env)
        return cls(
            shards=parse_shards(
                env_str(env, "PODIUM_QUEUE_SHARDS", "redis://127.0.0.1:6379/0"),
                sentinels=parse_sentinels(
                    env_str(env, "PODIUM_QUEUE_SENTINELS", ""), "PODIUM_QUEUE_SENTINELS"
                ),
                wait_replicas=env_int(env, "PODIUM_QUEUE_WAIT_REPLICAS", 0, minimum=0),
                wait_timeout_ms=env_int(
                    env, "PODIUM_QUEUE_WAIT_TIMEOUT_MS", 1000, minimum=1, maximum=60_000
                ),
            ),
            host=env_str(env, "PODIUM_QUEUE_HOST", "127.0.0.1"),
            port=env_int(env, "PODIUM_QUEUE_PORT", DEFAULT_PORT, minimum=0, maximum=65535),
            limits=limits,
            codec=codec,
            rpc=rpc_security(env),
            requeue_interval_ms=env_int(
                env, "PODIUM_QUEUE_REQUEUE_INTERVAL_MS", 250, minimum=10, maximum=1000
            ),
            health_host=env_str(env, "PODIUM_QUEUE_HEALTH_HOST", "127.0.0.1"),
            health_port=env_int(
                env, "PODIUM_QUEUE_HEALTH_PORT", DEFAULT_HEALTH_PORT, minimum=0, maximum=65535
            ),
        )


def _param(params: Any, name: str) -> Any:
    if not isinstance(params, Mapping) or name not in params:
        raise InvalidArgument(f"missing parameter {name!r}", field=name)
    return params[name]


def handlers(engine: QueueEngine) -> dict[str, Handler]:
    """The RPC methods of the queue service, bound to ``engine``."""
    limits = engine.limits

    def messages(params: Any) -> list[RawMessage]:
        raw = _param(params, "messages")
        if not isinstance(raw, list):
            raise InvalidArgument("messages must be a list", field="messages")
        return [checked_message(m, limits) for m in raw]

    async def push(p: Any, ctx: CallContext) -> Any:
        return await engine.push(_param(p, "queue"), messages(p))

    async def push_if_absent(p: Any, ctx: CallContext) -> Any:
        return await engine.push(_param(p, "queue"), messages(p), if_absent=True)

    async def pop(p: Any, ctx: CallContext) -> Any:
        wait_ms = p.get("wait_ms", 0) if isinstance(p, Mapping) else 0
        # Never hold a long poll past the caller's deadline.
        budget_ms = int((ctx.deadline - asyncio.get_running_loop().time()) * 1000) - 50
        if isinstance(wait_ms, int) and wait_ms > budget_ms:
            wait_ms = max(0, budget_ms)
        got = await engine.pop(
            _param(p, "queue"), _param(p, "count"), _param(p, "lease_ms"), wait_ms
        )
        return [list(m) for m in got]

    async def ack(p: Any, ctx: CallContext) -> Any:
        return await engine.ack(_param(p, "queue"), _param(p, "ids"))

    async def remove(p: Any, ctx: CallContext) -> Any:
        return await engine.remove(_param(p, "queue"), _param(p, "ids"))

    async def set_unack_timeout(p: Any, ctx: CallContext) -> Any:
        return await engine.set_unack_timeout(
            _param(p, "queue"), _param(p, "id"), _param(p, "lease_ms")
        )

    async def nack(p: Any, ctx: CallContext) -> Any:
        return await engine.set_unack_timeout(_param(p, "queue"), _param(p, "id"), 0)

    async def postpone(p: Any, ctx: CallContext) -> Any:
        return await engine.postpone(
            _param(p, "queue"), _param(p, "id"), _param(p, "delay_ms"), p.get("priority", 0)
        )

    async def schedule(p: Any, ctx: CallContext) -> Any:
        return await engine.schedule(
            _param(p, "queue"),
            _param(p, "id"),
            _param(p, "delay_ms"),
            _param(p, "fence"),
            p.get("priority", 0),
        )

    async def contains(p: Any, ctx: CallContext) -> Any:
        return await engine.contains(_param(p, "queue"), _param(p, "id"))

    async def get(p: Any, ctx: CallContext) -> Any:
        info = await engine.get(_param(p, "queue"), _param(p, "id"))
        if info is None:
            return None
        return [info.state, info.priority, info.time_ms, info.payload]

    async def size(p: Any, ctx: CallContext) -> Any:
        return await engine.size(_param(p, "queue"))

    async def details(p: Any, ctx: CallContext) -> Any:
        return await engine.details(_param(p, "queue"))

    async def flush(p: Any, ctx: CallContext) -> Any:
        await engine.flush(_param(p, "queue"))

    async def list_queues(p: Any, ctx: CallContext) -> Any:
        return await engine.list_queues()

    async def ping(p: Any, ctx: CallContext) -> Any:
        return "pong"

    async def batch(p: Any, ctx: CallContext) -> Any:
        """Several operations in one call, run concurrently: [[method, params], ...].

        Answers one ``[True, result]`` or ``[False, error]`` per operation, in order.
        """
        ops = _param(p, "ops")
        if not isinstance(ops, list) or len(ops) > limits.max_batch:
            raise InvalidArgument(f"ops must be a list of at most {limits.max_batch}", field="ops")

        async def one(op: Any) -> list[Any]:
            if not isinstance(op, list) or len(op) != 2 or op[0] not in single:
                return [False, InvalidArgument("each op is [method, params]").to_wire()]
            try:
                return [True, await single[op[0]](op[1], ctx)]
            except PodiumError as exc:
                return [False, exc.to_wire()]

        return list(await asyncio.gather(*(one(op) for op in ops)))

    table: dict[str, Handler] = {
        "push": push,
        "push_if_absent": push_if_absent,
        "pop": pop,
        "ack": ack,
        "remove": remove,
        "set_unack_timeout": set_unack_timeout,
        "nack": nack,
        "postpone": postpone,
        "schedule": schedule,
        "contains": contains,
        "get": get,
        "size": size,
        "details": details,
        "flush": flush,
        "list_queues": list_queues,
        "ping": ping,
    }
    single = dict(table)
    table["batch"] = batch
    return {f"queue.{name}": fn for name, fn in table.items()}


class QueueService:
    """The engine plus its RPC server and health port, with start and graceful stop."""

    def __init__(self, settings: QueueSettings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry.off("podium-queue-service")
        tracer = self.telemetry.tracer
        self.engine = QueueEngine(
            settings.shards,
            limits=settings.limits,
            requeue_interval_s=settings.requeue_interval_ms / 1000.0,
        )
        self.registry = CollectorRegistry()
        # With full detail, the handlers reach the engine through a proxy that opens a PRODUCER
        # span per push of a batch; with the default detail the batch's span names its pushes.
        served = (
            cast(QueueEngine, TracedEngine(self.engine, tracer))
            if tracer is not None and self.telemetry.full
            else self.engine
        )
        self.rpc = RpcServer(
            handlers(served),
            host=settings.host,
            port=settings.port,
            limits=settings.codec,
            interceptor=chain(server_tracing(tracer), rpc_metrics(self.registry, "queue")),
            security=settings.rpc,
        )
        self.health = HealthServer(
            "queue", self.registry, host=settings.health_host, port=settings.health_port
        )
        self.health.add_check("loops", self.engine.loops_failing)
        self._depth = Gauge(
            "podium_queue_depth",
            "Messages per queue and state",
            ["queue", "state"],
            registry=self.registry,
        )
        self._requeued = Gauge(
            "podium_queue_requeued_total",
            "Expired leases returned to ready by this replica",
            registry=self.registry,
        )
        self._sampler = OwnedTasks("queue", log)

    @property
    def address(self) -> str:
        return self.rpc.address

    async def start(self) -> QueueService:
        for name, error in (await self.engine.check_shards()).items():
            if error:
                log.warning("queue shard %s is unreachable at start: %s", name, error)
        await self.engine.start()
        await self.rpc.start()
        if self.settings.health_port >= 0:
            await self.health.start()
        self._sampler.spawn(self._sample_depths(), "queue-depths")
        return self

    async def _sample_depths(self) -> None:
        """Queue depths for /metrics, every few seconds (bounded to 1,000 queues)."""
        # The flag, not only cancellation, ends the loop: a cancel that lands inside a Redis
        # call can be absorbed by the client library.
        while not self.engine.stopping:
            try:
                for queue in (await self.engine.list_queues())[:1000]:
                    totals = {"ready": 0, "delayed": 0, "leased": 0}
                    for shard in (await self.engine.details(queue)).values():
                        for state, n in shard.items():
                            totals[state] += n
                    for state, n in totals.items():
                        self._depth.labels(queue, state).set(n)
                self._requeued.set(self.engine.requeued)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a shard may be down; the next pass tries again
                log.debug("depth sampling failed: %s", exc)
            await asyncio.sleep(5)

    async def stop(self, grace_s: float = 5.0) -> None:
        # Long polls return empty at once, so draining is quick; nothing is leased by us.
        self.engine.begin_shutdown()
        await self._sampler.cancel_all()
        await self.rpc.stop(grace_s)
        await self.health.stop()
        await self.engine.stop()


async def serve(settings: QueueSettings, telemetry: Telemetry) -> None:
    service = await QueueService(settings, telemetry).start()
    log.info("queue service on %s over %d shard(s)", service.address, len(settings.shards))
    print(f"podium-queue-service listening on {service.address}", flush=True)
    await until_stopped()
    await service.stop()


def main(argv: list[str] | None = None) -> int:
    return run_main("podium-queue-service", argv, QueueSettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
