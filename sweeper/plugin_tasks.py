"""Plugin system tasks (:mod:`podium.plugins`), run by the sweeper as it runs HTTP tasks.

The decider schedules a plugin task as Conductor schedules any type it does not know: a
user-defined task in the queue its type names (``[domain:]TYPE[@namespace][-isolationGroup]``).
Here the sweeper pops those queues for the types it has loaded, claims each task without
acking it (the lease covers the execution; a sweeper that dies mid-way leaves the lease to
expire and the task runs again), runs the plugin under a deadline and a concurrency cap, and
reports the result to the decider, which applies the TaskDef's retries to a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import NoOpTracer, Tracer
from prometheus_client import CollectorRegistry, Counter, Histogram

from podium.aio import OwnedTasks, Refreshed
from podium.decider_client import DeciderClient
from podium.errors import PodiumError
from podium.plugins import Completed, Failed, InProgress, Result, SystemTask, TaskContext
from podium.queue_client import QueueClient, Received
from podium.queues import task_queue
from podium.telemetry import names
from podium.telemetry.workflow import consume, untraced
from podium.types import JSON

log = logging.getLogger("podium.sweeper")

#: The lease of a running task outlasts its execution deadline by this much, so that the
#: result reaches the decider before the task is handed out again.
LEASE_MARGIN_S = 10.0


def plugin_queues(
    task_types: Iterable[str], task_defs: Iterable[Mapping[str, Any]], existing: Iterable[str]
) -> list[str]:
    """The queues to poll for these task types: each type's own, always (a pop waits for its
    first message), and those of ``existing`` that are a type's in a domain (``d:TYPE``), in an
    execution namespace or isolation group that a registered TaskDef sets (``TYPE@ns``,
    ``TYPE-group``), or both. As for HTTP tasks, a namespace or group only an inline
    ``taskDefinition`` sets is not polled: a queue name alone cannot tell ``TYPE-group`` from a
    worker task type of that name."""
    types = set(task_types)
    isolated = {
        (_name(d.get("executionNameSpace")), _name(d.get("isolationGroupId"))) for d in task_defs
    }
    wanted = types | {task_queue(t, None, ns, group) for t in types for ns, group in isolated}
    found = {q for q in existing if q.split(":", 1)[-1] in wanted}
    return sorted(found | types)


def task_result(task: Mapping[str, Any], outcome: Result, worker_id: str) -> JSON:
    """The TaskResult that reports ``outcome`` of ``task`` to the decider."""
    result: JSON = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "workerId": worker_id,
        "outputData": dict(outcome.output),
    }
    if isinstance(outcome, Completed):
        result["status"] = "COMPLETED"
    elif isinstance(outcome, Failed):
        result["status"] = "FAILED_WITH_TERMINAL_ERROR" if outcome.terminal else "FAILED"
        result["reasonForIncompletion"] = outcome.reason
    else:
        result["status"] = "IN_PROGRESS"
        result["callbackAfterSeconds"] = max(0, int(outcome.callback_after_seconds))
    return result


class PluginTasks:
    """Pops, runs and reports the tasks of the loaded plugin types."""

    def __init__(
        self,
        plugins: Mapping[str, SystemTask],
        queues: QueueClient,
        decider: DeciderClient,
        task_defs: Callable[[], Awaitable[list[JSON]]],
        *,
        tracer: Tracer | None,
        registry: CollectorRegistry,
        inflight: OwnedTasks,
        worker_id: str,
        batch: int,
        concurrency: int,
        timeout_s: float,
        refresh_s: float,
    ) -> None:
        self.plugins = dict(plugins)
        self.queues = queues
        self.decider = decider
        self._task_defs = task_defs
        self.tracer = tracer
        self.worker_id = worker_id
        self.batch = batch
        #: the longest one execution may take (a TaskDef's responseTimeoutSeconds may shorten it)
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._running = 0
        self._slot_freed = asyncio.Event()
        self._inflight = inflight
        self._queues = Refreshed(self._list_queues, refresh_s, "the plugin task queues")
        self.runs = Counter(
            "podium_sweeper_plugin_tasks",
            "Plugin system task executions, by type and reported status",
            ["type", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "podium_sweeper_plugin_task_seconds",
            "Time of one plugin system task execution",
            ["type"],
            registry=registry,
        )

    async def queue_names(self) -> list[str]:
        """The queues of the plugin types (:func:`plugin_queues`), looked up again (in the
        background, the loop going on with the list it has) every ``refresh_s``."""
        return await self._queues.get()

    async def _list_queues(self) -> list[str]:
        with untraced():
            task_defs = await self._task_defs()
            existing = await self.queues.list_queues()
        return plugin_queues(self.plugins, task_defs, existing)

    async def run_once(self) -> None:
        """One long poll of every plugin queue for as many tasks as there are free slots; each
        task found starts at once. With every slot busy, it waits (a second at most, so that
        the loop's heartbeat goes on) for one to be freed instead."""
        free = self._concurrency - self._running
        if free <= 0:
            self._slot_freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), 1.0)
            return
        count = min(self.batch, free)
        queues = await self.queue_names()
        pops = {asyncio.ensure_future(self._pop(q, count)): q for q in queues}
        pending = set(pops)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for pop in done:
                    await self._claim(pops[pop], pop.result())
        finally:
            for pop in pending:
                pop.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _pop(self, queue: str, count: int) -> list[Received]:
        with untraced():
            lease_ms = int((self.timeout_s + LEASE_MARGIN_S) * 1000)
            return await self.queues.pop(queue, count=count, lease_ms=lease_ms, wait_ms=1000)

    async def _claim(self, queue: str, got: Sequence[Received]) -> None:
        if not got:
            return
        items = [(m.id, _text(m.payload)) for m in got]
        tasks = await self.decider.claim(queue, items, self.worker_id, ack=False)
        for task in tasks:
            await self._slots.acquire()
            self._running += 1
            self._inflight.spawn(self._run(queue, task), f"plugin-{task.get('taskId')}")

    async def _run(self, queue: str, task: JSON) -> None:
        ids = {
            names.TASK_ID: str(task["taskId"]),
            names.WORKFLOW_ID: str(task.get("workflowInstanceId")),
        }
        try:
            with consume(self.tracer, queue, ids, task):
                timeout_s = self.timeout_of(task)
                # Keep the message leased for as long as the execution may take.
                lease_ms = int((timeout_s + LEASE_MARGIN_S) * 1000)
                await self.queues.set_unack_timeout(queue, str(task["taskId"]), lease_ms)
                result = await self.execute(task, timeout_s)
                await self.decider.update_task(result)
                if result["status"] == "IN_PROGRESS":
                    # The decider has made the task SCHEDULED again, but its message is still
                    # leased here: it comes back when the plugin asked to be called again. (A
                    # sweeper that dies before this leaves the lease to expire instead.)
                    delay_ms = 1000 * int(result["callbackAfterSeconds"])
                    priority = int(task.get("workflowPriority") or 0)
                    await self.queues.postpone(queue, str(task["taskId"]), delay_ms, priority)
        except PodiumError as exc:
            log.warning(
                "%s task %s could not be reported: %s",
                task.get("taskType"),
                task.get("taskId"),
                exc.message,
            )
        finally:
            self._running -= 1
            self._slots.release()
            self._slot_freed.set()

    def timeout_of(self, task: Mapping[str, Any]) -> float:
        """The deadline of one execution: the sweeper's limit, or the task's
        ``responseTimeoutSeconds`` (from its TaskDef) if shorter."""
        response_s = int(task.get("responseTimeoutSeconds") or 0)
        return min(self.timeout_s, response_s) if response_s > 0 else self.timeout_s

    async def execute(self, task: Mapping[str, Any], timeout_s: float) -> JSON:
        """Run one task's plugin; returns the TaskResult. Whatever the plugin does (raises,
        overruns its deadline, returns something else than a result), a result comes back."""
        task_type = str(task["taskType"])
        plugin = self.plugins.get(task_type)
        started = time.monotonic()
        if plugin is None:
            outcome: Result = Failed(f"no plugin for task type {task_type} in this sweeper")
        else:
            context = TaskContext(
                workflow_id=str(task["workflowInstanceId"]),
                task_id=str(task["taskId"]),
                retry_count=int(task.get("retryCount") or 0),
                deadline=started + timeout_s,
                log=logging.getLogger(f"podium.plugins.{task_type}"),
                tracer=self.tracer or NoOpTracer(),
                poll_count=int(task.get("pollCount") or 1),
            )
            outcome = await self._outcome(plugin, task, context, timeout_s)
        self.seconds.labels(task_type).observe(time.monotonic() - started)
        result = task_result(task, outcome, self.worker_id)
        self.runs.labels(task_type, result["status"]).inc()
        return result

    async def _outcome(
        self, plugin: SystemTask, task: Mapping[str, Any], context: TaskContext, timeout_s: float
    ) -> Result:
        task_type = plugin.task_type
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                returned = await plugin.execute(dict(task.get("inputData") or {}), context)
        except TimeoutError as exc:
            if deadline.expired():
                return Failed(f"{task_type} did not finish within {timeout_s:g} s")
            return Failed(f"{task_type} raised TimeoutError: {exc}")
        except Exception as exc:
            log.warning("%s task %s raised", task_type, context.task_id, exc_info=True)
            return Failed(f"{task_type} raised {type(exc).__name__}: {exc}")
        if isinstance(returned, dict):
            returned = Completed(returned)
        if not isinstance(returned, Completed | Failed | InProgress):
            return Failed(
                f"{task_type} returned a {type(returned).__name__}, not a result", terminal=True
            )
        try:
            json.dumps(dict(returned.output))
        except (TypeError, ValueError) as exc:
            return Failed(f"{task_type} returned an output that is not JSON: {exc}", terminal=True)
        return returned


def _name(value: object) -> str | None:
    return str(value) if value else None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
