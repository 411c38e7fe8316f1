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

from decider import operations as ops
from decider.commands import IN_COMMAND, Commands
from decider.decision import (
    Context,
    DeciderConfig,
    Decision,
    combine,
)
from decider.operations import Applied
from decider.records import Records
from decider.script_host import ScriptHost
from decider.scripting import NeedsScriptThread, OnLoop, Scripts
from decider.task_def_cache import Lookups, TaskDefCache, task_names
from decider.task_index import tasks_by_id
from podium.aio import retrying
from podium.definitions.expressions import JsonPaths
from podium.definitions.validation import ValidatedDefinitions
from podium.errors import (
    IllegalState,
    PodiumError,
    Unavailable,
)
from podium.queue_client import Message, QueueBatch, QueueClient
from podium.queues import DECIDER_QUEUE
from podium.statuses import WORKFLOW_TERMINAL
from podium.store import Store, VersionConflict
from podium.telemetry.workflow import DecideSpan, DecideSpans
from podium.types import JSON

log = logging.getLogger("podium.decider")


Operation = Callable[[JSON, Context], Decision]

_ON_LOOP = OnLoop()

#: the turn of a waiting operation has come: it leads the next group
_LEAD = object()


class _Entry:
    """One operation waiting for, or taking part in, a decision of its workflow."""

    __slots__ = ("batch", "decision", "error", "in_command", "operation", "result", "span",
                 "task_id", "turn")  # fmt: skip

    def __init__(
        self,
        operation: Operation,
        span: DecideSpan,
        task_id: str | None,
        batch: QueueBatch | None,
        result: Mapping[str, Any] | None,
        in_command: bool,
    ) -> None:
        self.operation = operation
        self.span = span
        self.task_id = task_id
        self.batch = batch
        self.result = result
        self.in_command = in_command
        #: resolved when the entry's group is done (None), or with _LEAD when it is to lead
        self.turn: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.decision: Decision | None = None
        self.error: BaseException | None = None

    def outcome(self) -> Decision:
        if self.error is not None:
            raise self.error
        if self.decision is None:
            raise IllegalState("an operation ended without a decision")
        return self.decision


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
        cached_workflows: int = 10_000,
        trace_each_decide: bool = False,
    ) -> None:
        self.store = store
        #: the records of the workflows this replica decided lately (see decider.records)
        self.records = Records(cached_workflows)
        #: where decisions that evaluate scripts run (None: the loop's default executor, with
        #: jq in-process and so without limits)
        self.scripts = scripts
        #: ``trace_each_decide`` (``PODIUM_TRACE_DETAIL=full``): a span per decide of a batch
        #: call too, rather than the call's span recording them
        self.spans = DecideSpans(tracer, each_in_batch=trace_each_decide)
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
        #: workflows being decided, with the operations waiting for the next decision
        self._waiting: dict[str, list[_Entry]] = {}

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
            return operation(ctx if ctx.scripts is _ON_LOOP else replace(ctx, scripts=_ON_LOOP))
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
        # A start's definition names the TaskDefs it needs, read now if the cache lacks them.
        # A running workflow's definition carries the TaskDefs populated at its start; what a
        # later decision looks for beyond them (a DYNAMIC task, a dynamic fork's branches) is
        # read when it misses (run_op), so its definition is not walked at every decision.
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
        result: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Read, apply ``operation``, commit if the version still holds, then act.

        ``op`` names the operation in its span (default: the function's name); ``task_id`` is
        the task it concerns, whose scheduling span the decide span links to. With ``batch``
        the decision's queue operations are added to it, for the caller to send (with those of
        other decisions) once they are all committed; otherwise they are sent before this
        returns. ``result``, the TaskResult of an ``update_task``, lets it be applied together
        with the results for the same workflow waiting beside it (:func:`ops.update_tasks`).

        Operations on one workflow are not decided concurrently in one replica: those that
        arrive while it is being decided wait, and then go together, each applied to the
        record the one before it produced, in one read, one commit and one round of effects
        (:meth:`_decide_group`). A fan-out's branches finishing together so cost one decision
        of the workflow, where one each would race on its version.
        """
        name = op or str(getattr(operation, "__name__", "decide"))
        with self.spans.decide(name, workflow_id, task_id) as span:
            entry = _Entry(operation, span, task_id, batch, result, IN_COMMAND.get())
            waiting = self._waiting.get(workflow_id)
            if waiting is None:
                self._waiting[workflow_id] = []
                return await self._lead(workflow_id, entry)
            waiting.append(entry)  # being decided: wait to go with the next group
            try:
                turn = await entry.turn
            except asyncio.CancelledError:
                turn_came = entry.turn.done() and not entry.turn.cancelled()
                if turn_came and entry.turn.result() is _LEAD:
                    self._hand_over(workflow_id)  # cancelled as its turn came: pass it on
                raise
            if turn is _LEAD:
                return await self._lead(workflow_id, entry)
            return entry.outcome()

    async def _lead(self, workflow_id: str, entry: _Entry) -> Decision:
        """Decide ``entry`` with every operation waiting on the workflow, then hand the
        workflow to the first of those that arrived meanwhile.

        A group of several is decided in a task of its own: a caller that gives up
        (cancelled) does not stop the decision of the others that went with it. One alone (no
        other operation on the workflow waiting: the common case) is decided in its caller.
        """
        waiting = self._waiting[workflow_id]
        group = [entry, *waiting]
        waiting.clear()
        if len(group) == 1:
            try:
                await self._decide_group(workflow_id, group)
            finally:
                self._hand_over(workflow_id)
            return entry.outcome()
        job = asyncio.ensure_future(self._decide_group(workflow_id, group))
        job.add_done_callback(functools.partial(self._group_done, workflow_id, group))
        await asyncio.shield(job)
        return entry.outcome()

    def _group_done(self, workflow_id: str, group: list[_Entry], job: asyncio.Future[None]) -> None:
        error = (
            Unavailable(f"the decision of workflow {workflow_id} was cancelled")
            if job.cancelled()
            else job.exception()
        )
        for other in group[1:]:
            if other.turn.done():  # its caller gave up
                continue
            if error is None:
                other.turn.set_result(None)
            else:
                other.turn.set_exception(error)
        self._hand_over(workflow_id)

    def _hand_over(self, workflow_id: str) -> None:
        waiting = self._waiting[workflow_id]
        while waiting:
            nxt = waiting.pop(0)
            if not nxt.turn.done():  # its caller may have given up
                nxt.turn.set_result(_LEAD)
                return
        del self._waiting[workflow_id]

    async def _decide_group(self, workflow_id: str, group: list[_Entry]) -> None:
        """Read once, apply the group's operations in turn, commit once, act once; each
        entry gets its own decision or error. A lost race repeats the whole group."""
        kept = self.records.get(workflow_id)
        for attempt in range(self.max_attempts):
            if kept is not None:
                snap = kept
            else:
                snap = await self.store.executions.read_workflow(workflow_id, include_tasks=True)
            ctx = await self.context(snap.workflow)
            state = snap.workflow
            made: list[tuple[list[_Entry], Decision]] = []
            i = 0
            while i < len(group):
                j = i + 1
                if group[i].result is not None:
                    while j < len(group) and group[j].result is not None:
                        j += 1
                part = group[i:j]
                for e in part:
                    e.span.read(state, e.task_id, tasks_by_id)
                try:
                    if len(part) == 1:
                        decision, ctx = await self.run_op(
                            functools.partial(part[0].operation, state), ctx
                        )
                        part[0].decision, part[0].error = decision, None
                    else:
                        decision, ctx = await self._update_together(state, part, ctx)
                except Exception as exc:  # this operation's own refusal; the others go on
                    for e in part:
                        e.decision, e.error = None, exc
                    i = j
                    continue
                finally:
                    self.stats.decisions += 1
                made.append((part, decision))
                state = decision.workflow
                i = j
            combined = combine([d for _, d in made]) if made else None
            if kept is not None:
                kept = None
                if combined is None or not combined.changed:
                    # Only a commit proves a kept record current (and with it every decision
                    # and refusal made on it): what would not commit is made again on a fresh
                    # read.
                    self.records.drop(workflow_id)
                    continue
            if combined is None:
                return
            version = snap.version
            if combined.changed:
                self._stamp(made, combined)
                try:
                    version = await self.store.executions.commit(
                        combined.workflow,
                        combined.changed_tasks,
                        snap.version,
                        removed_task_ids=combined.removed_task_ids,
                    )
                    self.stats.commits += 1
                except VersionConflict:
                    self.stats.conflicts += 1
                    self.records.drop(workflow_id)
                    # Another replica wrote first: decide again on what it wrote.
                    await asyncio.sleep(random.uniform(0, 0.002 * min(attempt, 10)))
                    continue
                except BaseException:
                    self.records.drop(workflow_id)  # written or not: read it next time
                    raise
            self.records.put(combined.workflow, version)
            shared = group[0].batch if len(group) == 1 else None
            await self.effects(
                combined, version, ctx, shared, defer_commands=any(e.in_command for e in group)
            )
            for part, decision in made:
                for e in part:
                    e.span.done(decision.workflow, len(decision.created_task_ids), attempt)
            return
        raise Unavailable(
            f"workflow {workflow_id} is too contended: {self.max_attempts} conflicting writes",
            workflowId=workflow_id,
        )

    async def _update_together(
        self, state: JSON, part: list[_Entry], ctx: Context
    ) -> tuple[Decision, Context]:
        """Apply several TaskResults in one run (:func:`ops.update_tasks`); each entry gets
        the decision with its own ``accepted``, or its own error."""
        results = [e.result or {} for e in part]
        outcomes: list[Applied | PodiumError] = []

        def together(wf: JSON, c: Context) -> Decision:
            decision, found = ops.update_tasks(wf, results, c)
            outcomes[:] = found
            return decision

        decision, ctx = await self.run_op(functools.partial(together, state), ctx)
        for e, outcome in zip(part, outcomes, strict=True):
            if isinstance(outcome, PodiumError):
                e.decision, e.error = None, outcome
            else:
                e.decision = replace(decision, accepted=outcome.accepted, note=outcome.note)
                e.error = None
        return decision, ctx

    @staticmethod
    def _stamp(made: list[tuple[list[_Entry], Decision]], combined: Decision) -> None:
        """Stamp each new task with the span of the operation that created it."""
        final = {t["taskId"]: t for t in combined.changed_tasks}
        for part, decision in made:
            tasks = [final[i] for i in decision.created_task_ids if i in final]
            part[0].span.stamp(combined.workflow, tasks, decision.created_task_ids)

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
