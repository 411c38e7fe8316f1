"""The decider's service shell: load, decide (pure), write conditionally, then act.

Every operation on a workflow goes through :meth:`DeciderShell.mutate`: read the workflow and
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
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from opentelemetry.trace import Tracer

from decider import idempotency
from decider import operations as ops
from decider.mapping import depth_limit_reason
from decider.records import (
    Command,
    Context,
    DeciderConfig,
    Decision,
    NotifyParent,
    RetryWorkflow,
    StartSubWorkflow,
    StartWorkflow,
    TerminateWorkflow,
    check_claim_limits,
)
from decider.run import queue_name
from decider.script_host import ScriptHost
from decider.scripting import NeedsScriptThread, OnLoop, Scripts
from decider.state import TaskStatus, WorkflowStatus, is_system_type, task_terminal
from podium.definitions.validation import ValidatedDefinitions
from podium.errors import (
    Conflict,
    DeadlineExceeded,
    LimitExceeded,
    NotFound,
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

#: Set while commands run: the commands of decisions they make run in a task of their own.
_IN_COMMAND: ContextVar[bool] = ContextVar("podium_decider_in_command", default=False)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class ShellStats:
    decisions: int = 0
    conflicts: int = 0
    commits: int = 0


class DeciderShell:
    """Runs the pure operations against the store and the queues."""

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
        self._task_defs: dict[str, Mapping[str, Any]] = {}
        self._task_defs_at = -1e9
        self._task_def_ttl_s = task_def_ttl_s
        self._task_defs_lock = asyncio.Lock()
        self._absent: dict[str, float] = {}  # names without a TaskDef, and when last looked up
        self._background: set[asyncio.Task[None]] = set()  # commands run apart, see _effects
        self.definitions = ValidatedDefinitions()

    # -- context ------------------------------------------------------------------------------

    async def task_defs(self) -> dict[str, Mapping[str, Any]]:
        """Registered TaskDefs by name, cached for a couple of seconds."""
        if time.monotonic() - self._task_defs_at < self._task_def_ttl_s:
            return self._task_defs
        async with self._task_defs_lock:
            if time.monotonic() - self._task_defs_at >= self._task_def_ttl_s:
                defs = await self.store.metadata.list_task_defs()
                self._task_defs = {d["name"]: d for d in defs}
                self._task_defs_at = time.monotonic()
        return self._task_defs

    def invalidate_task_defs(self) -> None:
        self._task_defs_at = -1e9

    async def _with_misses(
        self, definition: Mapping[str, Any] | None
    ) -> Mapping[str, Mapping[str, Any]]:
        """The cached TaskDefs, plus any the definition names that the cache does not hold.

        A TaskDef registered just before a start is found at once (as in Conductor, whose
        metadata cache falls back to the store on a miss); a changed one is seen within the
        cache's lifetime. Names with no TaskDef are remembered for that lifetime too.
        """
        defs = await self.task_defs()
        if not definition:
            return defs
        found = await self._look_up(defs, _task_names(definition.get("tasks") or []))
        return {**defs, **found} if found else defs

    async def _look_up(
        self, defs: Mapping[str, Mapping[str, Any]], names: Iterable[str]
    ) -> dict[str, Mapping[str, Any]]:
        """TaskDefs of ``names`` read from the store: those the cache lacks and that were not
        found absent within the cache's lifetime (they are cached, absences remembered)."""
        now = time.monotonic()
        found: dict[str, Mapping[str, Any]] = {}
        for n in set(names):
            if n in defs or now - self._absent.get(n, -1e9) < self._task_def_ttl_s:
                continue
            try:
                found[n] = self._task_defs[n] = await self.store.metadata.get_task_def(n)
            except NotFound:
                self._absent[n] = now
        return found

    async def run_op(
        self, operation: Callable[[Context], Decision], ctx: Context
    ) -> tuple[Decision, Context]:
        """Run a pure operation; when it looked for TaskDefs the cache lacks (a DYNAMIC task's
        name, a dynamic fork's branches, a newer definition on restart), read those from the
        store and run it again with them (the operation is pure: the first run left nothing)."""
        lookups = _Lookups(ctx.task_defs)
        ctx = replace(ctx, task_defs=lookups)
        decision = await self._pure(operation, ctx)
        found = await self._look_up(ctx.task_defs, lookups.missed)
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
        detached = defs.detached() if isinstance(defs, _Lookups) else dict(defs)
        if self.scripts is None:
            threaded = replace(ctx, task_defs=detached, scripts=Scripts())
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
            task_defs=await self._with_misses(definition),
            poll_times=poll_times,
            config=self.config,
            scripts=_ON_LOOP,
            definitions=self.definitions,
        )

    async def _poll_times(
        self, workflow: Mapping[str, Any], domains: Mapping[str, str]
    ) -> dict[tuple[str, str], int]:
        names = {k for k in domains if k != "*"}
        if "*" in domains:
            names |= set(_task_names((workflow.get("workflowDefinition") or {}).get("tasks", [])))
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
                await self._effects(decision, version, ctx, batch)
                span.done(decision.workflow, len(decision.created_task_ids), attempt)
                return decision
        raise Unavailable(
            f"workflow {workflow_id} is too contended: {self.max_attempts} conflicting writes",
            workflowId=workflow_id,
        )

    async def _effects(
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
        jobs: list[Awaitable[Any]] = [] if shared is not None else [_retrying(batch.run)]
        if decision.logs:
            jobs.append(self._add_logs(decision.logs))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        if shared is None and isinstance(results[0], BaseException):
            await self._decide_soon(wf, decision.next_check_ms, version)
        # Commands go out even when the queue call failed: the decision is committed, and a
        # repeated call (the caller's retry) finds nothing left to do and issues none.
        if decision.commands:
            if defer_commands or _IN_COMMAND.get():
                # A start's commands, or the commands of a decision a command made (a child's
                # start, a parent told of its child): run in a task of their own, so that
                # nesting never deepens the caller's stack (a workflow that starts itself).
                self._spawn(self._commands(decision.commands))
            else:
                await self._commands(decision.commands)
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

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A child's start is issued again by its parent's next decide.
            log.warning("commands failed: %r", task.exception())

    async def _commands(self, commands: Sequence[Command]) -> None:
        token = _IN_COMMAND.set(True)
        try:
            for command in commands:
                await self._command(command)
        finally:
            _IN_COMMAND.reset(token)

    async def drain(self, grace_s: float) -> None:
        """Let commands running in the background finish for ``grace_s``, then cancel them."""
        deadline = time.monotonic() + grace_s
        while self._background:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(set(self._background), timeout=left)
        pending = set(self._background)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _command(self, command: Command) -> None:
        try:
            if isinstance(command, StartSubWorkflow):
                await self._start_child(command)
            elif isinstance(command, StartWorkflow):
                await self._start_other(command)
            elif isinstance(command, NotifyParent):
                await self.mutate(
                    command.parent_workflow_id,
                    lambda wf, ctx: ops.child_status(
                        wf,
                        command.parent_workflow_task_id,
                        command.workflow_id,
                        command.status,
                        ctx,
                        output=command.output,
                        reason=command.reason,
                    ),
                    op="child_status",
                )
            elif isinstance(command, TerminateWorkflow):
                await self.terminate(command.workflow_id, command.reason)
            elif isinstance(command, RetryWorkflow):
                await self.retry(command.workflow_id, command.resume_subworkflow_tasks)
        except (NotFound, Conflict) as exc:
            # The other workflow is gone or already in the target state: nothing to do.
            log.info("command %s skipped: %s", command.kind, exc.message)

    # -- starting -----------------------------------------------------------------------------

    async def resolve_definition(self, name: str | None, version: int | None) -> JSON:
        if not name:
            raise NotFound("No such workflow defined. name=None, version=None")
        try:
            return await self.store.metadata.get_workflow_def(name, version)
        except NotFound:
            raise NotFound(
                f"No such workflow defined. name={name}, version={version}",
                name=name,
                version=version,
            ) from None

    async def start_workflow(self, request: Mapping[str, Any]) -> str:
        """Start a workflow (Conductor's StartWorkflowRequest); returns its id.

        The first decide runs before this returns, so the first tasks are already scheduled.
        """
        # the nesting depth is the shell's to set, on the sub-workflows it starts
        request = {k: v for k, v in request.items() if k != "subWorkflowDepth"}
        definition = request.get("workflowDef")
        if not isinstance(definition, Mapping):
            definition = await self.resolve_definition(request.get("name"), request.get("version"))
        if request.get("idempotencyKey"):
            chosen: Mapping[str, Any] = definition
            return await idempotency.start_once(
                self.store.executions,
                str(chosen.get("name") or request.get("name")),
                request,
                str(request.get("workflowId") or self.ids()),
                lambda wf_id: self._begin(chosen, {**request, "workflowId": wf_id}),
                self.clock,
            )
        return await self._begin(definition, request)

    async def _begin(self, definition: Mapping[str, Any], request: Mapping[str, Any]) -> str:
        """The first decide of a new workflow, in its own span (whose trace the record keeps)."""
        with self.spans.decide("start_workflow", request.get("workflowId")) as span:
            ctx = await self.context(request, definition)
            decision, ctx = await self.run_op(
                lambda c: ops.start_workflow(definition, request, c), ctx
            )
            span.started(decision.workflow, decision.changed_tasks, decision.created_task_ids)
            wf_id = await self._create(decision, ctx)
            span.done(decision.workflow, len(decision.created_task_ids))
            return wf_id

    async def _create(self, decision: Decision, ctx: Context) -> str:
        wf = decision.workflow
        wf_id = wf["workflowId"]
        # The timer first: a crash after the write below still leaves the workflow swept.
        offset_ms = self.config.workflow_offset_s * 1000
        priority = wf.get("priority") or 0
        try:
            await _retrying(
                lambda: self.queues.schedule(DECIDER_QUEUE, wf_id, offset_ms, 0, priority)
            )
        except (Unavailable, DeadlineExceeded) as exc:
            raise idempotency.NothingWritten(exc.message, **exc.data) from exc
        try:
            version = await self.store.executions.create_workflow(wf, decision.changed_tasks)
        except BaseException as exc:
            # A store that could not be reached may still have applied the write: the timer
            # stays then (a sweep of a workflow that does not exist just drops it). On a
            # Conflict the id is an existing workflow's (a repeated child start): its timer.
            if not (isinstance(exc, PodiumError) and (exc.retryable or isinstance(exc, Conflict))):
                await self.queues.remove(DECIDER_QUEUE, [wf_id])
            raise
        # The workflow exists now, so the start has succeeded whatever happens next: a client
        # told otherwise would start it again. Queue effects that fail here are redone by the
        # decide its timer (set above) triggers, which re-pushes missing task messages.
        try:
            await self._effects(decision, version, ctx, defer_commands=True)
        except (Unavailable, DeadlineExceeded) as exc:
            log.warning("workflow %s started; its queue effects wait for its timer: %s", wf_id, exc)
        except Exception:
            log.exception("workflow %s started; its effects failed, its timer redoes them", wf_id)
        return str(wf_id)

    async def _start_child(self, cmd: StartSubWorkflow) -> None:
        request = {
            **_start_request(cmd),
            "parentWorkflowId": cmd.parent_workflow_id,
            "parentWorkflowTaskId": cmd.parent_workflow_task_id,
            "subWorkflowDepth": cmd.depth,
        }
        try:
            limit = self.config.max_subworkflow_depth
            if cmd.depth > limit:
                # The mapper fails such a task when it is scheduled; a retried one comes here.
                raise LimitExceeded(depth_limit_reason(cmd.name, limit))
            definition = cmd.definition or await self.resolve_definition(cmd.name, cmd.version)
            await self._begin(definition, request)
        except Conflict:
            return  # already started (the command is idempotent)
        except PodiumError as exc:
            if exc.retryable:
                # The task stays SCHEDULED: the parent's next decide issues the start again.
                log.warning("sub-workflow %s not started yet: %s", cmd.workflow_id, exc.message)
                return
            reason = exc.message
            await self.mutate(
                cmd.parent_workflow_id,
                lambda wf, ctx: ops.child_status(
                    wf,
                    cmd.parent_workflow_task_id,
                    cmd.workflow_id,
                    WorkflowStatus.FAILED.value,
                    ctx,
                    reason=reason,
                ),
                op="child_status",
            )

    async def _start_other(self, cmd: StartWorkflow) -> None:
        request = _start_request(cmd)
        result: JSON
        try:
            definition = cmd.definition or await self.resolve_definition(cmd.name, cmd.version)
            await self._begin(definition, request)
            result = {"status": "COMPLETED", "outputData": {"workflowId": cmd.workflow_id}}
        except Conflict:
            result = {"status": "COMPLETED", "outputData": {"workflowId": cmd.workflow_id}}
        except PodiumError as exc:
            result = {"status": "FAILED", "reasonForIncompletion": exc.message}
        if cmd.reply_workflow_id and cmd.reply_task_id:
            await self.update_task(
                {"workflowInstanceId": cmd.reply_workflow_id, "taskId": cmd.reply_task_id, **result}
            )

    # -- operations ---------------------------------------------------------------------------

    async def decide(self, workflow_id: str) -> Decision:
        """Decide now, re-push any task message a crash may have lost, and apply the end of any
        sub-workflow whose notification was lost."""
        decision = await self.mutate(workflow_id, ops.decide)
        await self._repush_scheduled(decision.workflow)
        await self._finished_children(decision.workflow)
        return decision

    async def _finished_children(self, wf: Mapping[str, Any]) -> None:
        """A child tells its parent it has ended after committing its end; a decider killed in
        between, or a parent write that failed, loses that notice, and the child, finished, never
        sends it again. The parent's timer-driven decide looks at its unfinished children."""
        if wf["status"] != WorkflowStatus.RUNNING.value:
            return
        for task in wf.get("tasks") or []:
            child_id = task.get("subWorkflowId")
            if task["taskType"] != "SUB_WORKFLOW" or task_terminal(task["status"]) or not child_id:
                continue
            try:
                child = await self.store.executions.get_workflow(child_id, include_tasks=False)
            except NotFound:
                continue  # not started yet: the parent's decide (re)issues its start
            if child["status"] not in WORKFLOW_TERMINAL:
                continue
            log.info(
                "workflow %s: applying the end of its sub-workflow %s", wf["workflowId"], child_id
            )
            await self._command(
                NotifyParent(
                    parent_workflow_id=wf["workflowId"],
                    parent_workflow_task_id=task["taskId"],
                    workflow_id=child_id,
                    status=child["status"],
                    output=dict(child.get("output") or {}),
                    reason=child.get("reasonForIncompletion"),
                )
            )

    async def _repush_scheduled(self, wf: Mapping[str, Any]) -> None:
        if wf["status"] != WorkflowStatus.RUNNING.value:
            return
        by_queue: dict[str, list[Message]] = {}
        for task in wf.get("tasks") or []:
            queue = queue_name(task)
            if queue is None or task_terminal(task["status"]):
                continue
            if task["status"] == TaskStatus.IN_PROGRESS.value and not is_system_type(
                task["taskType"]
            ):
                continue  # a worker holds it; its response timeout covers a lost worker
            by_queue.setdefault(queue, []).append(
                Message(task["taskId"], wf["workflowId"].encode(), 0, wf.get("priority") or 0)
            )
        for queue, msgs in by_queue.items():
            await self.queues.push_if_absent(queue, msgs)

    async def claim(
        self,
        queue: str,
        items: Sequence[tuple[str, str]],
        worker_id: str | None,
        *,
        ack: bool = True,
    ) -> list[JSON]:
        """Hand popped tasks to a worker: ``items`` are (task id, workflow id) pairs.

        Returns the tasks now IN_PROGRESS; their messages are acked (Conductor's poll), unless
        ``ack`` is False: the sweeper keeps the lease of an HTTP task while it runs, so a crash
        leads to a new attempt. A task that may not run now (a limit of its TaskDef) is
        postponed in its queue; a finished one is dropped.
        """
        limited = any(
            d.get("concurrentExecLimit") or d.get("rateLimitPerFrequency")
            for d in (await self.task_defs()).values()
        )

        # The claims' queue operations (timers, removals) and the acks go in one call.
        batch = self.queues.batch()

        async def one(task_id: str, workflow_id: str) -> JSON | None:
            try:
                return await self._claim_one(queue, task_id, workflow_id, worker_id, limited, batch)
            except NotFound:
                batch.remove(queue, [task_id])
                return None

        # Tasks of different workflows are claimed concurrently (the same workflow twice
        # just loses a race and retries), unless limits apply: their counts must see each
        # claim before the next.
        # A claim that fails (its workflow's store unreachable) leaves its message unacked, to
        # be handed out again when the lease ends; the others still reach the worker.
        results: list[JSON | BaseException | None]
        if limited:
            results = []
            for t, w in items:
                try:
                    results.append(await one(t, w))
                except Exception as exc:
                    results.append(exc)
        else:
            results = list(
                await asyncio.gather(*(one(t, w) for t, w in items), return_exceptions=True)
            )
        out = [t for t in results if isinstance(t, dict)]
        failed = [e for e in results if isinstance(e, BaseException)]
        acks = [t["taskId"] for t in out]
        if acks and ack:
            batch.ack(queue, acks)
        await _retrying(batch.run)
        if failed:
            if not out:
                raise failed[0]
            log.warning(
                "%d of %d claims on %s failed: %s", len(failed), len(items), queue, failed[0]
            )
        return out

    async def _claim_one(
        self,
        queue: str,
        task_id: str,
        workflow_id: str,
        worker_id: str | None,
        limited: bool,
        batch: QueueBatch,
    ) -> JSON | None:
        # Only when some TaskDef has a limit is the task read first to find its definition.
        task = await self.store.executions.get_task(task_id) if limited else {}
        task_def = (await self.task_defs()).get(str(task.get("taskDefName"))) if limited else None
        if task_def and (
            task_def.get("concurrentExecLimit") or task_def.get("rateLimitPerFrequency")
        ):
            verdict = check_claim_limits(
                task_def,
                in_progress=await self._in_progress(task["taskType"], task["taskDefName"]),
                claimed_in_window=await self._claimed_in_window(task_def),
                config=self.config,
            )
            if not verdict.allowed:
                await self.queues.postpone(queue, task_id, verdict.postpone_ms)
                return None
        decision = await self.mutate(
            workflow_id,
            lambda wf, ctx: ops.claim(wf, task_id, worker_id, ctx),
            op="claim",
            task_id=task_id,
            batch=batch,
        )
        if not decision.accepted:
            return None
        for t in decision.workflow.get("tasks") or []:
            if t["taskId"] == task_id:
                return dict(t)
        return None

    async def _in_progress(self, task_type: str, task_def_name: str) -> int:
        pending = await self.store.executions.pending_tasks_by_type(task_type)
        return sum(
            1
            for t in pending
            if t.get("taskDefName") == task_def_name and t["status"] == TaskStatus.IN_PROGRESS.value
        )

    async def _claimed_in_window(self, task_def: Mapping[str, Any]) -> int:
        per = task_def.get("rateLimitPerFrequency") or 0
        if per <= 0:
            return 0
        window_ms = int(task_def.get("rateLimitFrequencyInSeconds") or 1) * 1000
        since = self.clock() - window_ms
        pending = await self.store.executions.pending_tasks_by_type(task_def["name"])
        return sum(1 for t in pending if int(t.get("startTime") or 0) >= since)

    async def update_task(self, result: Mapping[str, Any]) -> Decision:
        """Apply a worker's TaskResult (Conductor's ``POST /api/tasks``)."""
        workflow_id = str(result.get("workflowInstanceId") or "")
        if not workflow_id:
            ops.update_task({}, result, await self.context())  # raises the validation error
        try:
            return await self.mutate(
                workflow_id,
                lambda wf, ctx: ops.update_task(wf, result, ctx),
                op="update_task",
                task_id=str(result.get("taskId") or "") or None,
            )
        except NotFound as exc:
            if exc.data.get("taskId") is None:
                raise NotFound(
                    f"No such workflow found by id: {workflow_id}", workflowId=workflow_id
                ) from None
            raise

    async def update_task_by_ref(
        self,
        workflow_id: str,
        ref: str,
        status: str,
        output: Mapping[str, Any],
        worker_id: str | None = None,
    ) -> Decision:
        return await self.mutate(
            workflow_id,
            lambda wf, ctx: ops.update_task_by_ref(wf, ref, status, output, ctx, worker_id),
            op="update_task_by_ref",
        )

    async def signal(self, workflow_id: str, status: str, output: Mapping[str, Any]) -> Decision:
        return await self.mutate(
            workflow_id, lambda wf, ctx: ops.signal(wf, status, output, ctx), op="signal"
        )

    async def terminate(self, workflow_id: str, reason: str | None) -> Decision:
        return await self.mutate(
            workflow_id, lambda wf, ctx: ops.terminate(wf, reason, ctx), op="terminate"
        )

    async def pause(self, workflow_id: str) -> Decision:
        return await self.mutate(workflow_id, ops.pause)

    async def resume(self, workflow_id: str) -> Decision:
        return await self.mutate(workflow_id, ops.resume)

    async def retry(self, workflow_id: str, resume_subworkflow_tasks: bool = False) -> Decision:
        return await self.mutate(
            workflow_id,
            lambda wf, ctx: ops.retry(wf, ctx, resume_subworkflow_tasks=resume_subworkflow_tasks),
            op="retry",
        )

    async def restart(self, workflow_id: str, use_latest_definition: bool = False) -> Decision:
        latest: JSON | None = None
        if use_latest_definition:
            current = await self.store.executions.get_workflow(workflow_id, include_tasks=False)
            latest = await self.resolve_definition(current.get("workflowName"), None)
        return await self.mutate(
            workflow_id,
            lambda wf, ctx: ops.restart(wf, ctx, latest_definition=latest),
            op="restart",
        )

    async def rerun(self, workflow_id: str, request: Mapping[str, Any]) -> Decision:
        return await self.mutate(
            workflow_id, lambda wf, ctx: ops.rerun(wf, request, ctx), op="rerun"
        )

    async def skip_task(
        self,
        workflow_id: str,
        ref: str,
        task_input: Mapping[str, Any] | None = None,
        task_output: Mapping[str, Any] | None = None,
    ) -> Decision:
        return await self.mutate(
            workflow_id,
            lambda wf, ctx: ops.skip_task(
                wf, ref, ctx, task_input=task_input, task_output=task_output
            ),
            op="skip_task",
        )

    async def set_variables(self, workflow_id: str, variables: Mapping[str, Any]) -> Decision:
        return await self.mutate(
            workflow_id, lambda wf, ctx: ops.set_variables(wf, variables, ctx), op="set_variables"
        )

    async def remove(self, workflow_id: str) -> None:
        """Delete a workflow and everything queued for it."""
        wf = await self.store.executions.get_workflow(workflow_id, include_tasks=True)
        by_queue: dict[str, list[str]] = {}
        for task in wf.get("tasks") or []:
            queue = queue_name(task)
            if queue is not None:
                by_queue.setdefault(queue, []).append(task["taskId"])
        for queue, ids in by_queue.items():
            await self.queues.remove(queue, ids)
        await self.store.executions.remove_workflow(workflow_id)
        await self.queues.remove(DECIDER_QUEUE, [workflow_id])


def _start_request(cmd: StartWorkflow | StartSubWorkflow) -> JSON:
    """The StartWorkflowRequest of a command that starts a workflow with a chosen id."""
    return {
        "workflowId": cmd.workflow_id,
        "input": cmd.input,
        "correlationId": cmd.correlation_id,
        "taskToDomain": cmd.task_to_domain,
        "priority": cmd.priority,
    }


async def _retrying(call: Callable[[], Awaitable[Any]], attempts: int = 4) -> Any:
    """Run an idempotent call, again after a short pause if a replica was unavailable."""
    for attempt in range(attempts):
        try:
            return await call()
        except (Unavailable, DeadlineExceeded):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05 * 2**attempt)
    return None


class _Lookups(Mapping[str, Mapping[str, Any]]):
    """TaskDefs handed to a pure operation, noting the names it asked for and did not find."""

    def __init__(self, defs: Mapping[str, Mapping[str, Any]]) -> None:
        self._defs = defs
        self.missed: set[str] = set()

    def detached(self) -> _Lookups:
        """A copy of the TaskDefs for another thread, noting its misses here."""
        copy = _Lookups(dict(self._defs))
        copy.missed = self.missed
        return copy

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        try:
            return self._defs[name]
        except KeyError:
            self.missed.add(name)
            raise

    def __iter__(self) -> Iterator[str]:
        return iter(self._defs)

    def __len__(self) -> int:
        return len(self._defs)


def _task_names(tasks: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for t in tasks:
        if t.get("name"):
            yield str(t["name"])
        for branch in t.get("forkTasks") or []:
            yield from _task_names(branch)
        for case in (t.get("decisionCases") or {}).values():
            yield from _task_names(case)
        yield from _task_names(t.get("defaultCase") or [])
        yield from _task_names(t.get("loopOver") or [])
