"""Commands: what a decision asks of other workflows (start a child or another workflow, tell
a parent its child ended, terminate, retry), and the starts of new workflows.

The commands of a start, and those of decisions that commands make, run in a task of their
own, so that a chain of sub-workflows never runs inside one call.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from decider import idempotency
from decider import operations as ops
from decider.child_status import child_status
from decider.decision import (
    Command,
    Context,
    Decision,
    NotifyParent,
    RetryWorkflow,
    StartSubWorkflow,
    StartWorkflow,
    TerminateWorkflow,
)
from decider.mapping import depth_limit_reason
from decider.statuses import WorkflowStatus, task_terminal
from podium.aio import OwnedTasks, retrying
from podium.errors import (
    Conflict,
    DeadlineExceeded,
    LimitExceeded,
    NotFound,
    PodiumError,
    Unavailable,
)
from podium.queues import DECIDER_QUEUE
from podium.statuses import WORKFLOW_TERMINAL
from podium.types import JSON

if TYPE_CHECKING:
    from decider.shell import DeciderShell

log = logging.getLogger("podium.decider")

#: Set while commands run: the commands of decisions they make run in a task of their own.
IN_COMMAND: ContextVar[bool] = ContextVar("podium_decider_in_command", default=False)


class Commands:
    """The shell's commands and starts, and the background tasks that run commands."""

    def __init__(self, shell: DeciderShell) -> None:
        self._shell = shell
        self._background = OwnedTasks("decider", log)  # commands run apart, see effects

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # A failed command needs no retry here: a child's start is issued again by its
        # parent's next decide.
        self._background.spawn(work, "commands")

    async def run(self, commands: Sequence[Command]) -> None:
        token = IN_COMMAND.set(True)
        try:
            for command in commands:
                await self._one(command)
        finally:
            IN_COMMAND.reset(token)

    async def drain(self, grace_s: float) -> None:
        """Let commands running in the background finish for ``grace_s``, then cancel them."""
        await self._background.drain(grace_s)

    async def _one(self, command: Command) -> None:
        try:
            if isinstance(command, StartSubWorkflow):
                await self._start_child(command)
            elif isinstance(command, StartWorkflow):
                await self._start_other(command)
            elif isinstance(command, NotifyParent):
                await self._shell.mutate(
                    command.parent_workflow_id,
                    lambda wf, ctx: child_status(
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
                await self._shell.terminate(command.workflow_id, command.reason)
            elif isinstance(command, RetryWorkflow):
                await self._shell.retry(command.workflow_id, command.resume_subworkflow_tasks)
        except (NotFound, Conflict) as exc:
            # The other workflow is gone or already in the target state: nothing to do.
            log.info("command %s skipped: %s", command.kind, exc.message)

    async def finished_children(self, wf: Mapping[str, Any]) -> None:
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
                child = await self._shell.store.executions.get_workflow(
                    child_id, include_tasks=False
                )
            except NotFound:
                continue  # not started yet: the parent's decide (re)issues its start
            if child["status"] not in WORKFLOW_TERMINAL:
                continue
            log.info(
                "workflow %s: applying the end of its sub-workflow %s", wf["workflowId"], child_id
            )
            await self._one(
                NotifyParent(
                    parent_workflow_id=wf["workflowId"],
                    parent_workflow_task_id=task["taskId"],
                    workflow_id=child_id,
                    status=child["status"],
                    output=dict(child.get("output") or {}),
                    reason=child.get("reasonForIncompletion"),
                )
            )

    async def resolve_definition(self, name: str | None, version: int | None) -> JSON:
        if not name:
            raise NotFound("No such workflow defined. name=None, version=None")
        try:
            return await self._shell.store.metadata.get_workflow_def(name, version)
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
                self._shell.store.executions,
                str(chosen.get("name") or request.get("name")),
                request,
                str(request.get("workflowId") or self._shell.ids()),
                lambda wf_id: self.begin(
                    chosen, {**request, "workflowId": wf_id}, own_id=not request.get("workflowId")
                ),
                self._shell.clock,
            )
        return await self.begin(definition, request)

    async def begin(
        self, definition: Mapping[str, Any], request: Mapping[str, Any], *, own_id: bool = False
    ) -> str:
        """The first decide of a new workflow, in its own span (whose trace the record keeps).

        The workflow's timer is set first (a crash after the write still leaves the workflow
        swept), and before the decision: the first tasks' ``scheduledTime`` is the decision's
        clock, so their wait for a worker then starts after that queue call, not before it.
        ``own_id``: the request's ``workflowId`` was made for this start (no other holds it).
        """
        fresh = own_id or not request.get("workflowId")
        request = {**request, "workflowId": request.get("workflowId") or self._shell.ids()}
        wf_id = str(request["workflowId"])
        with self._shell.spans.decide("start_workflow", wf_id) as span:
            timer_failed = await self._set_timer(wf_id, request.get("priority"))
            try:
                ctx = await self._shell.context(request, definition)
                decision, ctx = await self._shell.run_op(
                    lambda c: ops.start_workflow(definition, request, c), ctx
                )
            except Exception:
                # An invalid request answers its own error, even when the timer failed too. The
                # timer of an id made here can only be this start's; one given (a child's,
                # which may exist already) is left to the sweeper, which drops the timer of a
                # workflow that does not exist.
                if fresh and timer_failed is None:
                    await self._drop_timer(wf_id)
                raise
            if timer_failed is not None:
                raise idempotency.NothingWritten(
                    timer_failed.message, **timer_failed.data
                ) from timer_failed
            span.started(decision.workflow, decision.changed_tasks, decision.created_task_ids)
            await self._create(decision, ctx)
            span.done(decision.workflow, len(decision.created_task_ids))
            return wf_id

    async def _set_timer(self, wf_id: str, priority: Any) -> Unavailable | DeadlineExceeded | None:
        """Put the new workflow on the decider queue, due after the start offset (fence 0:
        an existing workflow's later timer stays). Answers the error if that failed."""
        offset_ms = self._shell.config.workflow_offset_s * 1000
        if not ops.is_priority(priority):
            priority = 0  # the decision refuses such a start; the timer must not fail first
        try:
            await retrying(
                lambda: self._shell.queues.schedule(DECIDER_QUEUE, wf_id, offset_ms, 0, priority)
            )
        except (Unavailable, DeadlineExceeded) as exc:
            return exc
        return None

    async def _drop_timer(self, wf_id: str) -> None:
        try:
            await self._shell.queues.remove(DECIDER_QUEUE, [wf_id])
        except PodiumError as exc:
            log.warning("timer of refused start %s left to the sweeper: %s", wf_id, exc.message)

    async def _create(self, decision: Decision, ctx: Context) -> None:
        wf = decision.workflow
        wf_id = wf["workflowId"]
        try:
            version = await self._shell.store.executions.create_workflow(wf, decision.changed_tasks)
        except BaseException as exc:
            # A store that could not be reached may still have applied the write: the timer
            # stays then (a sweep of a workflow that does not exist just drops it). On a
            # Conflict the id is an existing workflow's (a repeated child start): its timer.
            if not (isinstance(exc, PodiumError) and (exc.retryable or isinstance(exc, Conflict))):
                await self._shell.queues.remove(DECIDER_QUEUE, [wf_id])
            raise
        self._shell.records.put(wf, version)
        # The workflow exists now, so the start has succeeded whatever happens next: a client
        # told otherwise would start it again. Queue effects that fail here are redone by the
        # decide its timer (set above) triggers, which re-pushes missing task messages.
        try:
            await self._shell.effects(decision, version, ctx, defer_commands=True)
        except (Unavailable, DeadlineExceeded) as exc:
            log.warning("workflow %s started; its queue effects wait for its timer: %s", wf_id, exc)
        except Exception:
            log.exception("workflow %s started; its effects failed, its timer redoes them", wf_id)

    async def _start_child(self, cmd: StartSubWorkflow) -> None:
        request = {
            **start_request(cmd),
            "parentWorkflowId": cmd.parent_workflow_id,
            "parentWorkflowTaskId": cmd.parent_workflow_task_id,
            "subWorkflowDepth": cmd.depth,
        }
        try:
            limit = self._shell.config.max_subworkflow_depth
            if cmd.depth > limit:
                # The mapper fails such a task when it is scheduled; a retried one comes here.
                raise LimitExceeded(depth_limit_reason(cmd.name, limit))
            definition = cmd.definition or await self.resolve_definition(cmd.name, cmd.version)
            await self.begin(definition, request)
        except Conflict:
            return  # already started (the command is idempotent)
        except PodiumError as exc:
            if exc.retryable:
                # The task stays SCHEDULED: the parent's next decide issues the start again.
                log.warning("sub-workflow %s not started yet: %s", cmd.workflow_id, exc.message)
                return
            reason = exc.message
            await self._shell.mutate(
                cmd.parent_workflow_id,
                lambda wf, ctx: child_status(
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
        request = start_request(cmd)
        result: JSON
        try:
            definition = cmd.definition or await self.resolve_definition(cmd.name, cmd.version)
            await self.begin(definition, request)
            result = {"status": "COMPLETED", "outputData": {"workflowId": cmd.workflow_id}}
        except Conflict:
            result = {"status": "COMPLETED", "outputData": {"workflowId": cmd.workflow_id}}
        except PodiumError as exc:
            result = {"status": "FAILED", "reasonForIncompletion": exc.message}
        if cmd.reply_workflow_id and cmd.reply_task_id:
            await self._shell.update_task(
                {"workflowInstanceId": cmd.reply_workflow_id, "taskId": cmd.reply_task_id, **result}
            )


def start_request(cmd: StartWorkflow | StartSubWorkflow) -> JSON:
    """The StartWorkflowRequest of a command that starts a workflow with a chosen id."""
    return {
        "workflowId": cmd.workflow_id,
        "input": cmd.input,
        "correlationId": cmd.correlation_id,
        "taskToDomain": cmd.task_to_domain,
        "priority": cmd.priority,
    }
