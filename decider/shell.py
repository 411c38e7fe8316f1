"""The decider's service shell: every operation the decider serves, on the commit loop.

:class:`DeciderShell` is :class:`~decider.commit_loop.CommitLoop` (read, decide, commit,
act) with the operations the RPC handlers call; starts and commands are in
:mod:`decider.commands`, claims in :mod:`decider.claims`, the TaskDef cache in
:mod:`decider.task_def_cache`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from decider import operations as ops
from decider.claims import Claims
from decider.commands import Commands
from decider.commit_loop import CommitLoop
from decider.decision import (
    Context,
    Decision,
)
from decider.statuses import TaskStatus, WorkflowStatus, is_system_type, task_terminal
from decider.workflow_run import queue_name
from podium.errors import (
    NotFound,
)
from podium.queue_client import Message
from podium.queues import DECIDER_QUEUE
from podium.types import JSON

log = logging.getLogger("podium.decider")


Operation = Callable[[JSON, Context], Decision]


class DeciderShell(CommitLoop):
    """Runs the pure operations against the store and the queues."""

    @functools.cached_property
    def commands(self) -> Commands:
        return Commands(self)

    @functools.cached_property
    def claims(self) -> Claims:
        return Claims(self)

    # -- starting and commands (decider.commands) ---------------------------------------------

    async def resolve_definition(self, name: str | None, version: int | None) -> JSON:
        return await self.commands.resolve_definition(name, version)

    async def start_workflow(self, request: Mapping[str, Any]) -> str:
        """Start a workflow (Conductor's StartWorkflowRequest); returns its id.

        The first decide runs before this returns, so the first tasks are already scheduled.
        """
        return await self.commands.start_workflow(request)

    async def drain(self, grace_s: float) -> None:
        """Let commands running in the background finish for ``grace_s``, then cancel them."""
        await self.commands.drain(grace_s)

    # -- operations ---------------------------------------------------------------------------

    async def decide(self, workflow_id: str) -> Decision:
        """Decide now, re-push any task message a crash may have lost, and apply the end of any
        sub-workflow whose notification was lost."""
        decision = await self.mutate(workflow_id, ops.decide)
        await self._repush_scheduled(decision.workflow)
        await self.commands.finished_children(decision.workflow)
        return decision

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
        """Hand popped tasks to a worker (see :meth:`decider.claims.Claims.claim`)."""
        return await self.claims.claim(queue, items, worker_id, ack=ack)

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
                result=result,
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
        self.records.drop(workflow_id)
        wf = await self.store.executions.get_workflow(workflow_id, include_tasks=True)
        by_queue: dict[str, list[str]] = {}
        for task in wf.get("tasks") or []:
            queue = queue_name(task)
            if queue is not None:
                by_queue.setdefault(queue, []).append(task["taskId"])
        for queue, ids in by_queue.items():
            await self.queues.remove(queue, ids)
        await self.store.executions.remove_workflow(workflow_id)
        self.records.drop(workflow_id)
        await self.queues.remove(DECIDER_QUEUE, [workflow_id])
