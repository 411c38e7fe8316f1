"""The sweeper service: the background work that keeps every workflow moving.

Loops (each supervised: an exception is logged and counted, and the loop starts again; each
beats a heartbeat that ``/ready`` checks):

* **sweep**: pops due workflow ids from the decider queue with a lease and asks the decider to
  decide each. The decider sets the entry's next due time (re-timing the lease), or removes it
  when the workflow has finished. Nothing acks the entry here: if this replica dies mid-way,
  the lease expires and another replica decides the workflow.
* **http**: pops HTTP tasks from every HTTP queue (``HTTP``, and those of the isolation groups
  and execution namespaces of TaskDefs, as Conductor's system task worker does), claims them
  without acking (the lease covers the call), calls out under the host policy, and reports
  the result to the decider. A replica that dies
  mid-call leaves the lease to expire, and the task is called again (at-least-once).
* **plugins**: the same for the task types of the installed plugins (:mod:`podium.plugins`,
  :mod:`sweeper.plugin_tasks`); only when there are some.
* **repair**: finds RUNNING workflows that have no decider-queue entry (the classic "stuck
  RUNNING" failure) and gives them one, counting each repair.
* **schedules**: starts the due runs of the workflow schedules, each exactly once across
  replicas, and starts again runs whose replica died mid-way (:mod:`podium.scheduling`).
* **event-tasks** and **events**: EVENT tasks published to their sinks, and the event
  handlers' consumers kept in line with the active handlers (:mod:`sweeper.events`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from prometheus_client import CollectorRegistry, Counter, Histogram

from podium import logs
from podium import queues as queue_names
from podium.aio import OwnedTasks, Refreshed
from podium.codec import CodecLimits
from podium.config import (
    Environ,
    env_address_list,
    env_int,
    env_str,
    rpc_limits,
    rpc_security,
)
from podium.decider_client import DeciderClient
from podium.errors import NotFound, PodiumError
from podium.health import HealthServer, Heartbeats
from podium.plugins import SystemTask, installed
from podium.queue_client import Message, QueueClient, Received
from podium.queues import DECIDER_QUEUE
from podium.rpc import RpcClient
from podium.rpc_security import RpcSecurity
from podium.scheduling import ScheduleRunner, ScheduleSettings, settings_from_env
from podium.service import run_main, until_stopped
from podium.store import SearchQuery, Store, StoreConfig, open_store
from podium.telemetry import Telemetry, names
from podium.telemetry.rpc import client_tracing
from podium.telemetry.store import traced
from podium.telemetry.workflow import consume, untraced
from sweeper.events import EventSettings, SweeperEvents
from sweeper.http_task import HttpPolicy, execute
from sweeper.plugin_tasks import PluginTasks

log = logging.getLogger("podium.sweeper")

HTTP_QUEUE = queue_names.HTTP
DEFAULT_HEALTH_PORT = 7314


@dataclass(frozen=True)
class SweeperSettings:
    store: StoreConfig
    queue_addresses: list[str]
    decider_addresses: list[str]
    http: HttpPolicy = field(default_factory=HttpPolicy)
    health_host: str = "127.0.0.1"
    health_port: int = DEFAULT_HEALTH_PORT
    concurrency: int = 16
    batch: int = 10
    lease_ms: int = 30_000
    http_concurrency: int = 32
    repair_interval_s: int = 60
    repair_window_days: int = 30
    #: how often the HTTP queues (one per isolation group and namespace) are looked up
    http_queues_refresh_s: float = 5.0
    codec: CodecLimits = field(default_factory=CodecLimits)
    #: how the sweeper authenticates to the queue service and the deciders
    rpc: RpcSecurity = field(default_factory=RpcSecurity)
    #: workflow schedules: run retention, catch-up, recovery
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    #: how often due schedule runs are looked for
    schedule_tick_ms: int = 200
    #: EVENT tasks and event handlers: the broker, retries, parking
    events: EventSettings = field(default_factory=EventSettings)
    #: the plugin system tasks this sweeper runs, by type (from_env: every one installed)
    plugins: Mapping[str, SystemTask] = field(default_factory=dict)
    plugin_concurrency: int = 32
    #: the longest one plugin task execution may take (its responseTimeoutSeconds if shorter)
    plugin_timeout_s: int = 60

    @classmethod
    def from_env(cls, env: Environ) -> SweeperSettings:
        return cls(
            store=StoreConfig.from_env(env),
            queue_addresses=env_address_list(env, "PODIUM_QUEUE_ADDRESSES", ["127.0.0.1:7301"]),
            decider_addresses=env_address_list(env, "PODIUM_DECIDER_ADDRESSES", ["127.0.0.1:7302"]),
            http=HttpPolicy.from_env(env),
            health_host=env_str(env, "PODIUM_SWEEPER_HEALTH_HOST", "127.0.0.1"),
            health_port=env_int(
                env, "PODIUM_SWEEPER_HEALTH_PORT", DEFAULT_HEALTH_PORT, minimum=0, maximum=65535
            ),
            concurrency=env_int(env, "PODIUM_SWEEPER_CONCURRENCY", 16, minimum=1, maximum=1000),
            batch=env_int(env, "PODIUM_SWEEPER_BATCH", 10, minimum=1, maximum=1000),
            lease_ms=env_int(env, "PODIUM_SWEEPER_LEASE_MS", 30_000, minimum=100),
            http_concurrency=env_int(env, "PODIUM_SWEEPER_HTTP_CONCURRENCY", 32, minimum=1),
            repair_interval_s=env_int(env, "PODIUM_SWEEPER_REPAIR_INTERVAL_S", 60, minimum=1),
            repair_window_days=env_int(env, "PODIUM_SWEEPER_REPAIR_WINDOW_DAYS", 30, minimum=1),
            codec=rpc_limits(env),
            rpc=rpc_security(env),
            schedules=settings_from_env(env),
            schedule_tick_ms=env_int(env, "PODIUM_SCHEDULE_TICK_MS", 200, minimum=10),
            events=EventSettings.from_env(env),
            plugins=installed(),
            plugin_concurrency=env_int(env, "PODIUM_SWEEPER_PLUGIN_CONCURRENCY", 32, minimum=1),
            plugin_timeout_s=env_int(env, "PODIUM_SWEEPER_PLUGIN_TIMEOUT_S", 60, minimum=1),
        )


class SweeperMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decided = Counter(
            "podium_sweeper_decided", "Workflows decided by sweeps", registry=registry
        )
        self.decide_seconds = Histogram(
            "podium_sweeper_decide_seconds", "Time of one sweep decide", registry=registry
        )
        self.timer_lag = Histogram(
            "podium_sweeper_timer_lag_seconds",
            "From a workflow's due time to its decide",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.http_calls = Counter(
            "podium_sweeper_http_tasks", "HTTP tasks run", ["status"], registry=registry
        )
        self.repaired = Counter(
            "podium_sweeper_repaired",
            "Running workflows given back a decider-queue entry",
            registry=registry,
        )
        self.schedule_runs = Counter(
            "podium_sweeper_schedule_runs",
            "Attempts to start a scheduled run, by the state they left it in",
            ["state"],
            registry=registry,
        )
        self.loop_errors = Counter(
            "podium_sweeper_loop_errors", "Exceptions caught in loops", ["loop"], registry=registry
        )


class Sweeper:
    """The sweeper's loops over the queue service, the decider and the store."""

    def __init__(
        self,
        settings: SweeperSettings,
        *,
        worker_id: str | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry or Telemetry.off("podium-sweeper")
        self.tracer = self.telemetry.tracer
        rpc_tracing = client_tracing(self.tracer, spans=self.telemetry.full)
        self.worker_id = worker_id or f"sweeper-{socket.gethostname()}-{os.getpid()}"
        self.registry = CollectorRegistry()
        self.metrics = SweeperMetrics(self.registry)
        self.heartbeats = Heartbeats()
        self.health = HealthServer(
            "sweeper", self.registry, host=settings.health_host, port=settings.health_port
        )
        self.health.add_check("loops", self.heartbeats.check)
        codec = settings.codec
        self.queues = QueueClient(
            RpcClient(
                settings.queue_addresses, limits=codec, tracer=rpc_tracing, security=settings.rpc
            )
        )
        self.decider = DeciderClient(
            RpcClient(
                settings.decider_addresses,
                limits=codec,
                timeout_s=30,
                tracer=rpc_tracing,
                security=settings.rpc,
            )
        )
        self.store: Store | None = None
        self.schedules: ScheduleRunner | None = None
        self._next_recovery = 0.0
        self.http: httpx.AsyncClient | None = None
        self._loops = OwnedTasks("sweeper", log)
        self._stopping = asyncio.Event()
        self._decides = asyncio.Semaphore(settings.concurrency)
        self._http_slots = asyncio.Semaphore(settings.http_concurrency)
        self._inflight = OwnedTasks("sweeper", log)
        self._http_queues = Refreshed(
            self._list_http_queues, self.settings.http_queues_refresh_s, "the HTTP queues"
        )
        self.events = SweeperEvents(
            settings.events,
            self.queues,
            self.decider,
            self.registry,
            worker_id=self.worker_id,
            inflight=self._inflight,
            batch=settings.batch,
            lease_ms=settings.lease_ms,
        )
        self.plugin_tasks = PluginTasks(
            settings.plugins,
            self.queues,
            self.decider,
            lambda: self._opened().metadata.list_task_defs(),
            tracer=self.tracer,
            registry=self.registry,
            inflight=self._inflight,
            worker_id=self.worker_id,
            batch=settings.batch,
            concurrency=settings.plugin_concurrency,
            timeout_s=settings.plugin_timeout_s,
            refresh_s=settings.http_queues_refresh_s,
        )

    async def start(self) -> Sweeper:
        store = await open_store(self.settings.store)
        self.store = traced(store, self.tracer, self.settings.store, spans=self.telemetry.full)
        self.http = httpx.AsyncClient()
        await self.health.start()
        self._supervise("sweep", self._sweep_once, allowance_s=15)
        self._supervise("http", self._http_once, allowance_s=15)
        self.events.open(self.store)
        self._supervise("event-tasks", self.events.publish_once, allowance_s=15)
        self._supervise(
            "events",
            self.events.refresh_once,
            allowance_s=self.settings.events.refresh_s * 3 + 30,
            pause_s=self.settings.events.refresh_s,
        )
        if self.settings.plugins:
            self._supervise("plugins", self.plugin_tasks.run_once, allowance_s=15)
        self._supervise(
            "repair",
            self._repair_once,
            allowance_s=self.settings.repair_interval_s * 3 + 30,
            pause_s=self.settings.repair_interval_s,
        )
        self.schedules = ScheduleRunner(
            self.store,
            self.decider.start_workflow,
            self.settings.schedules,
            on_run=lambda state: self.metrics.schedule_runs.labels(state).inc(),
        )
        self._supervise(
            "schedules",
            self._schedules_once,
            allowance_s=30,
            pause_s=self.settings.schedule_tick_ms / 1000,
        )
        return self

    def _supervise(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        *,
        allowance_s: float,
        pause_s: float = 0.0,
    ) -> None:
        self.heartbeats.register(name, allowance_s)

        async def loop() -> None:
            while not self._stopping.is_set():
                try:
                    await body()
                    self.heartbeats.beat(name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.metrics.loop_errors.labels(name).inc()
                    log.exception("sweeper loop %s failed; restarting it", name)
                    await self._pause(0.5)
                    continue
                if pause_s:
                    await self._pause(pause_s)

        self._loops.spawn(loop(), f"sweeper-{name}")

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _opened(self) -> Store:
        if self.store is None:
            raise RuntimeError("the sweeper is not started: its store is not open")
        return self.store

    # -- sweep ----------------------------------------------------------------------------------

    async def _sweep_once(self) -> None:
        # Polls that mostly find nothing make no traces; each workflow found starts its own.
        with untraced():
            got = await self.queues.pop(
                DECIDER_QUEUE,
                count=self.settings.batch,
                lease_ms=self.settings.lease_ms,
                wait_ms=1000,
            )
        for msg in got:
            await self._decides.acquire()
            self._inflight.spawn(self._decide(msg.id), f"decide-{msg.id}")

    async def _decide(self, workflow_id: str) -> None:
        started = time.perf_counter()
        ids = {names.WORKFLOW_ID: workflow_id, names.MSG_ID: workflow_id}
        try:
            with consume(self.tracer, DECIDER_QUEUE, ids):
                await self.decider.decide(workflow_id)
            self.metrics.decided.inc()
        except NotFound:
            await self.queues.remove(DECIDER_QUEUE, [workflow_id])
        except PodiumError as exc:
            # The entry stays leased and comes back when the lease expires.
            log.warning("deciding %s failed: %s", workflow_id, exc.message)
        finally:
            self.metrics.decide_seconds.observe(time.perf_counter() - started)
            self._decides.release()

    # -- HTTP tasks -----------------------------------------------------------------------------

    async def http_queues(self) -> list[str]:
        """The HTTP queues that exist, looked up again (in the background, the loop going on
        with the list it has) every ``http_queues_refresh_s``."""
        return await self._http_queues.get()

    async def _list_http_queues(self) -> list[str]:
        with untraced():
            task_defs = await self._opened().metadata.list_task_defs()
            candidates = queue_names.http_queues(task_defs)
            existing = set(await self.queues.list_queues())
        # HTTP itself is always polled: a pop waits for its first message
        return [q for q in candidates if q == HTTP_QUEUE or q in existing]

    async def _http_once(self) -> None:
        pops = {asyncio.ensure_future(self._pop_http(q)): q for q in await self.http_queues()}
        pending = set(pops)
        try:
            # each queue's tasks start as soon as its pop returns, whatever the others wait for
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for pop in done:
                    await self._claim_http(pops[pop], pop.result())
        finally:
            for pop in pending:
                pop.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _pop_http(self, queue: str) -> list[Received]:
        with untraced():
            return await self.queues.pop(
                queue, count=self.settings.batch, lease_ms=self.settings.lease_ms, wait_ms=1000
            )

    async def _claim_http(self, queue: str, got: Sequence[Received]) -> None:
        if not got:
            return
        items = [(m.id, _workflow_of(m.payload)) for m in got]
        tasks = await self.decider.claim(queue, items, self.worker_id, ack=False)
        for task in tasks:
            await self._http_slots.acquire()
            self._inflight.spawn(self._run_http(queue, task), f"http-{task.get('taskId')}")

    async def _run_http(self, queue: str, task: dict[str, object]) -> None:
        ids = {
            names.TASK_ID: str(task["taskId"]),
            names.WORKFLOW_ID: str(task.get("workflowInstanceId")),
        }
        try:
            with consume(self.tracer, queue, ids, task):
                # Keep the message leased for as long as the call may take.
                await self.queues.set_unack_timeout(
                    queue, str(task["taskId"]), self.settings.lease_ms
                )
                if self.http is None:
                    raise RuntimeError("the sweeper is not started: no HTTP client")
                result = await execute(task, self.settings.http, self.http, self.worker_id)
                self.metrics.http_calls.labels(str(result["status"])).inc()
                await self.decider.update_task(result)
        except PodiumError as exc:
            log.warning("HTTP task %s could not be reported: %s", task.get("taskId"), exc.message)
        finally:
            self._http_slots.release()

    # -- repair ---------------------------------------------------------------------------------

    async def repair_once(self) -> int:
        """Give every RUNNING workflow without a decider-queue entry one; returns how many."""
        store = self._opened()
        repaired = 0
        window_ms = self.settings.repair_window_days * 86_400_000
        start = 0
        now = int(time.time() * 1000)
        while True:
            page = await store.executions.search_workflows(
                SearchQuery(
                    statuses=("RUNNING",), start_time_from_ms=now - window_ms, start=start, size=500
                )
            )
            results = page["results"]
            repaired += await self.repair([str(s["workflowId"]) for s in results])
            start += len(results)
            if not results or start >= int(page["totalHits"]):
                break
        return repaired

    async def repair(self, workflow_ids: Sequence[str]) -> int:
        """Give each of these workflows that is RUNNING and has no decider-queue entry one.

        ``workflow_ids`` come from a listing that may be out of date by now: a workflow that
        finished since has no entry because it needs none. So the record is read again, and
        the entry is added only if absent (so that of two sweepers, one repairs and counts);
        if the workflow finished meanwhile, the entry is taken back and nothing is counted.
        """
        repaired = 0
        for wf_id in workflow_ids:
            if await self.queues.contains(DECIDER_QUEUE, wf_id) or not await self._running(wf_id):
                continue
            # The body of a decider-queue entry is its fence (the workflow's version) in digits;
            # 0 yields to any schedule the decider makes.
            entry = Message(wf_id, b"0", 0, 0)
            [added] = await self.queues.push_if_absent(DECIDER_QUEUE, [entry])
            if not added:
                continue
            if not await self._running(wf_id):
                await self.queues.remove(DECIDER_QUEUE, [wf_id])
                continue
            repaired += 1
            log.warning("repaired workflow %s: it had no decider-queue entry", wf_id)
        self.metrics.repaired.inc(repaired)
        return repaired

    async def _running(self, workflow_id: str) -> bool:
        try:
            wf = await self._opened().executions.get_workflow(workflow_id, include_tasks=False)
        except NotFound:
            return False
        return bool(wf.get("status") == "RUNNING")

    async def _repair_once(self) -> None:
        with untraced():  # a scan of every running workflow, every minute: not worth a trace
            await self.repair_once()

    # -- schedules ------------------------------------------------------------------------------

    async def _schedules_once(self) -> None:
        if self.schedules is None:
            return
        with untraced():  # a look at every schedule, several times a second
            await self.schedules.tick()
            now = time.monotonic()
            if now >= self._next_recovery:
                self._next_recovery = now + self.settings.schedules.recover_after_ms / 2000
                await self.schedules.recover()

    # -- lifecycle ------------------------------------------------------------------------------

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop popping, let in-flight work finish within ``grace_s``, then close."""
        self._stopping.set()
        await self._loops.cancel_all()
        await self._inflight.drain(grace_s)
        await self.health.stop()
        if self.http is not None:
            await self.http.aclose()
        await self.events.close()
        await self.queues.close()
        await self.decider.close()
        if self.store is not None:
            await self.store.close()


def _workflow_of(payload: object) -> str:
    if isinstance(payload, bytes):
        return payload.decode()
    return str(payload)


async def serve(settings: SweeperSettings, telemetry: Telemetry) -> None:
    with logs.quiet_start():
        sweeper = await Sweeper(settings, telemetry=telemetry).start()
    print(
        f"podium-sweeper running; health on {settings.health_host}:{sweeper.health.port}",
        flush=True,
    )
    await until_stopped()
    await sweeper.stop()


def main(argv: list[str] | None = None) -> int:
    return run_main("podium-sweeper", argv, SweeperSettings.from_env, serve)


if __name__ == "__main__":
    sys.exit(main())
