"""The commit loop of the decider's shell: load, decide (pure), write conditionally, then act.

Every operation on a workflow goes through :meth:`CommitLoop.mutate`: read the workflow and
its version, run a pure operation from :mod:`decider.operations`, commit the result only if
the version is unchanged (retrying from a fresh read when another replica won the race), and
then carry out the effects: queue pushes and removals, the workflow's timer on the decider
queue, task logs, and commands for other workflows.

Crash safety comes from the order of these steps. A new workflow's timer is set before the
workflow is written, so a workflow can never exist without one; the timer of a running
workflow is only removed once it has finished. Whatever is lost between a commit and its
effects is redone by the next decide (the sweeper re-pushes missing task messages).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Tracer

from decider.commands import IN_COMMAND, Commands
from decider.decision import (
    Context,
    DeciderConfig,
    Decision,
)
from decider.script_host import ScriptHost
from decider.scripting import NeedsScriptThread, OnLoop, Scripts
from decider.task_def_cache import Lookups, TaskDefCache, task_names
from podium.aio import retrying
from podium.definitions.expressions import JsonPaths
from podium.definitions.validation import ValidatedDefinitions
from podium.errors import (
    PodiumError,
    Unavailable,
)
from podium.queue_client import Message, QueueBatch, QueueClient
from podium.queues import DECIDER_QUEUE
from podium.statuses import WORKFLOW_TERMINAL
from podium.store import Store, VersionConflict
from podium.telemetry.workflow import DecideSpans
from podium.types import JSON

log = logging.getLogger("podium.decider")


Operation = Callable[[JSON, Context], Decision]

_ON_LOOP = OnLoop()


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ShellStats:
    decisions: int = 0
    conflicts: int = 0
    commits: int = 0


class CommitLoop:
    """Runs pure operations against the store and the queues: read, decide, commit if the
    version holds, then act. :class:`~decider.shell.DeciderShell` adds the operations."""

    def __init__(
        self,
        store: Store,
        queues: QueueClient,
        *,
        config: DeciderConfig | None = None,
        clock: Callable[[], int] = now_ms,
        ids: Callable[[], str] = lambda: str(uuid.uuid4()),
        max_attempts: int = 50,
        task_def_ttl_s: float = 2.0,
        tracer: Tracer | None = None,
        scripts: ScriptHost | None = None,
    ) -> None:
        self.store = store
        #: where decisions that evaluate scripts run (None: the loop's default executor, with
        #: jq in-process and so without limits)
        self.scripts = scripts
        self.spans = DecideSpans(tracer)
        self.queues = queues
        self.config = config or DeciderConfig()
        self.clock = clock
        self.ids = ids
        self.max_attempts = max_attempts
        self.stats = ShellStats()
        self.definitions = ValidatedDefinitions()
        self.paths = JsonPaths()
        #: evaluates scripts in an executor thread when there is no ScriptHost
        self._in_thread = Scripts()
        self.task_def_cache = TaskDefCache(store.metadata, task_def_ttl_s)

    @property
    def commands(self) -> Commands:
        """Where the commands of decisions run (the shell's)."""
        raise NotImplementedError

    # -- context ------------------------------------------------------------------------------

    async def task_defs(self) -> dict[str, Mapping[str, Any]]:
        """Registered TaskDefs by name, cached for a couple of seconds."""
        return await self.task_def_cache.all()

    def invalidate_task_defs(self) -> None:
        self.task_def_cache.invalidate()

    async def run_op(
        self, operation: Callable[[Context], Decision], ctx: Context
    ) -> tuple[Decision, Context]:
        """Run a pure operation; when it looked for TaskDefs the cache lacks (a DYNAMIC task's
        name, a dynamic fork's branches, a newer definition on restart), read those from the
        store and run it again with them (the operation is pure: the first run left nothing)."""
        lookups = Lookups(ctx.task_defs)
        ctx = replace(ctx, task_defs=lookups)
        decision = await self._pure(operation, ctx)
        found = await self.task_def_cache.look_up(ctx.task_defs, lookups.missed)
        if not found:
            return decision, ctx
        ctx = replace(ctx, task_defs={**ctx.task_defs, **found})
        return await self._pure(operation, ctx), ctx

    async def _pure(self, operation: Callable[[Context], Decision], ctx: Context) -> Decision:
        """Run a pure operation on the event loop, or, if it reaches a script (INLINE, jq, a
        JavaScript condition), run it again whole on a script thread, so that a slow script
        never holds up the other workflows of this replica. Most decisions evaluate no script
        and so cost no thread hop."""
        try:
            return operation(replace(ctx, scripts=_ON_LOOP))
        except NeedsScriptThread:
            pass
        defs = ctx.task_defs
        # the loop may add to the cached TaskDefs while the thread reads them
        detached = defs.detached() if isinstance(defs, Lookups) else dict(defs)
        if self.scripts is None:
            threaded = replace(ctx, task_defs=detached, scripts=self._in_thread)
            return await asyncio.get_running_loop().run_in_executor(None, operation, threaded)
        threaded = replace(ctx, task_defs=detached, scripts=self.scripts)
        return await self.scripts.run(operation, threaded)

    async def context(
        self, workflow: Mapping[str, Any] | None = None, definition: Mapping[str, Any] | None = None
    ) -> Context:
        poll_times: dict[tuple[str, str], int] = {}
        domains = (workflow or {}).get("taskToDomain") or {}
        if domains:
            poll_times = await self._poll_times(workflow or {}, domains)
        if definition is None and workflow is not None:
            definition = workflow.get("workflowDefinition")
        return Context(
            now_ms=self.clock(),
            ids=self.ids,
            task_defs=await self.task_def_cache.with_misses(definition),
            poll_times=poll_times,
            config=self.config,
            scripts=_ON_LOOP,
            definitions=self.definitions,
            paths=self.paths,
        )

    async def _poll_times(
        self, workflow: Mapping[str, Any], domains: Mapping[str, str]
    ) -> dict[tuple[str, str], int]:
        names = {k for k in domains if k != "*"}
        if "*" in domains:
            names |= set(task_names((workflow.get("workflowDefinition") or {}).get("tasks", [])))
        out: dict[tuple[str, str], int] = {}
        for name in names:
            for pd in await self.store.executions.get_poll_data(name):
                key = (name, str(pd.get("domain") or ""))
                out[key] = max(out.get(key, 0), int(pd.get("lastPollTime") or 0))
        return out

    # -- the core loop ------------------------------------------------------------------------

    async def mutate(
        self,
        workflow_id: str,
        operation: Operation,
        *,
        op: str | None = None,
        task_id: str | None = None,
        batch: QueueBatch | None = None,
    ) -> Decision:
        """Read, apply ``operation``, commit if the version still holds, then act.

        ``op`` names the operation in its span (default: the function's name); ``task_id`` is
        the task it concerns, whose scheduling span the decide span links to. With ``batch``
        the decision's queue operations are added to it, for the caller to send (with those of
        other decisions) once they are all committed; otherwise they are sent before this
        returns.
        """
        name = op or str(getattr(operation, "__name__", "decide"))
        with self.spans.decide(name, workflow_id, task_id) as span:
            for attempt in range(self.max_attempts):
                snap = await self.store.executions.read_workflow(workflow_id, include_tasks=True)
                span.read(snap.workflow, task_id)
                decision, ctx = await self.run_op(
                    functools.partial(operation, snap.workflow), await self.context(snap.workflow)
                )
                self.stats.decisions += 1
                version = snap.version
                if decision.changed:
                    span.stamp(decision.workflow, decision.changed_tasks, decision.created_task_ids)
                    try:
                        version = await self.store.executions.commit(
                            decision.workflow,
                            decision.changed_tasks,
                            snap.version,
                            removed_task_ids=decision.removed_task_ids,
                        )
                        self.stats.commits += 1
                    except VersionConflict:
                        self.stats.conflicts += 1
                        # Another replica wrote first: decide again on what it wrote.
                        await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
                        continue
                await self.effects(decision, version, ctx, batch)
                span.done(decision.workflow, len(decision.created_task_ids), attempt)
                return decision
        raise Unavailable(
            f"workflow {workflow_id} is too contended: {self.max_attempts} conflicting writes",
            workflowId=workflow_id,
        )

    async def effects(
        self,
        decision: Decision,
        version: int,
        ctx: Context,
        shared: QueueBatch | None = None,
        *,
        defer_commands: bool = False,
    ) -> None:
        wf = decision.workflow
        wf_id = wf["workflowId"]
        pushes: dict[str, list[Message]] = {}
        for p in decision.pushes:
            pushes.setdefault(p.queue, []).append(
                Message(p.message_id, wf_id.encode(), p.delay_ms, p.priority)
            )
        removals: dict[str, list[str]] = {}
        for r in decision.removals:
            removals.setdefault(r.queue, []).append(r.message_id)
        # One call to the queue service for all of it; every operation is idempotent, so the
        # batch is simply sent again (to another replica) if a replica disappears under it.
        batch = self.queues.batch() if shared is None else shared
        for q, msgs in pushes.items():
            batch.push(q, msgs)
        for q, ids in removals.items():
            batch.remove(q, ids)
        self._timer(batch, wf, decision.next_check_ms, version)
        jobs: list[Awaitable[Any]] = [] if shared is not None else [retrying(batch.run)]
        if decision.logs:
            jobs.append(self._add_logs(decision.logs))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        if shared is None and isinstance(results[0], BaseException):
            await self._decide_soon(wf, decision.next_check_ms, version)
        # Commands go out even when the queue call failed: the decision is committed, and a
        # repeated call (the caller's retry) finds nothing left to do and issues none.
        if decision.commands:
            if defer_commands or IN_COMMAND.get():
                # A start's commands, or the commands of a decision a command made (a child's
                # start, a parent told of its child): run in a task of their own, so that
                # nesting never deepens the caller's stack (a workflow that starts itself).
                self.commands.spawn(self.commands.run(decision.commands))
            else:
                await self.commands.run(decision.commands)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _decide_soon(
        self, wf: Mapping[str, Any], next_check_ms: int | None, version: int
    ) -> None:
        """After a queue call that failed, have the workflow decided within the start offset.

        That decide re-pushes the task messages the call may not have pushed; left alone, they
        would wait for the workflow's next check, which may be an hour away (a long WAIT).
        """
        if wf["status"] in WORKFLOW_TERMINAL or next_check_ms is None:
            return
        delay = min(self.config.workflow_offset_s * 1000, max(0, next_check_ms - self.clock()))
        wf_id, priority = wf["workflowId"], wf.get("priority") or 0
        try:
            await self.queues.schedule(DECIDER_QUEUE, wf_id, delay, version, priority)
        except PodiumError as exc:
            log.warning("timer of %s not brought forward: %s", wf_id, exc.message)

    def _timer(
        self, batch: QueueBatch, wf: Mapping[str, Any], next_check_ms: int | None, version: int
    ) -> None:
        """Set (or, for a finished workflow, remove) its entry on the decider queue."""
        wf_id = wf["workflowId"]
        if wf["status"] in WORKFLOW_TERMINAL or next_check_ms is None:
            batch.remove(DECIDER_QUEUE, [wf_id])
        else:
            delay = max(0, next_check_ms - self.clock())
            batch.schedule(DECIDER_QUEUE, wf_id, delay, version, wf.get("priority") or 0)

    async def _add_logs(self, logs: Sequence[JSON]) -> None:
        by_task: dict[str, list[JSON]] = {}
        for entry in logs:
            by_task.setdefault(str(entry.get("taskId")), []).append(entry)
        for task_id, entries in by_task.items():
            await self.store.executions.add_task_logs(task_id, entries)
