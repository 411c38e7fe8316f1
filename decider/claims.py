"""Claims: popped tasks handed to a worker, within the limits of their TaskDefs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from decider import operations as ops
from decider.decision import check_claim_limits
from decider.statuses import TaskStatus
from decider.task_index import tasks_by_id
from podium.aio import retrying
from podium.errors import NotFound
from podium.queue_client import QueueBatch
from podium.types import JSON

if TYPE_CHECKING:
    from decider.shell import DeciderShell

log = logging.getLogger("podium.decider")


class Claims:
    """The shell's claims (``decider.claim``)."""

    def __init__(self, shell: DeciderShell) -> None:
        self._shell = shell

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
            for d in (await self._shell.task_defs()).values()
        )

        # The claims' queue operations (timers, removals) and the acks go in one call.
        batch = self._shell.queues.batch()

        async def one(task_id: str, workflow_id: str) -> JSON | None:
            try:
                return await self._claim_one(queue, task_id, workflow_id, worker_id, limited, batch)
            except NotFound:
                batch.remove(queue, [task_id])
                return None

        # A claim that fails (its workflow's store unreachable) leaves its message unacked, to
        # be handed out again when the lease ends; the others still reach the worker.
        results: list[JSON | BaseException | None] = []
        if limited:
            # Limits count what is in progress: each claim must see the one before it.
            for t, w in items:
                try:
                    results.append(await one(t, w))
                except Exception as exc:
                    results.append(exc)
        else:
            # The tasks of one workflow (a fan-out's branches) are claimed in one decision, the
            # workflows concurrently: one decision per task would race on the workflow's
            # version, every loser reading and deciding again.
            by_workflow: dict[str, list[str]] = {}
            for t, w in items:
                by_workflow.setdefault(w, []).append(t)
            groups = await asyncio.gather(
                *(
                    self._claim_group(queue, w, ids, worker_id, batch)
                    for w, ids in by_workflow.items()
                ),
                return_exceptions=True,
            )
            for group in groups:
                if isinstance(group, BaseException):
                    results.append(group)
                else:
                    results.extend(group)
        out = [t for t in results if isinstance(t, dict)]
        failed = [e for e in results if isinstance(e, BaseException)]
        acks = [t["taskId"] for t in out]
        if acks and ack:
            batch.ack(queue, acks)
        await retrying(batch.run)
        if failed:
            if not out:
                raise failed[0]
            log.warning(
                "%d of %d claims on %s failed: %s", len(failed), len(items), queue, failed[0]
            )
        return out

    async def _claim_group(
        self,
        queue: str,
        workflow_id: str,
        task_ids: list[str],
        worker_id: str | None,
        batch: QueueBatch,
    ) -> list[JSON]:
        """Claim popped tasks of one workflow in one decision; the tasks now IN_PROGRESS.
        Messages of tasks that are not (or no longer) in the workflow are removed."""
        try:
            decision = await self._shell.mutate(
                workflow_id,
                lambda wf, ctx: ops.claim_all(wf, task_ids, worker_id, ctx),
                op="claim",
                task_id=task_ids[0] if len(task_ids) == 1 else None,
                batch=batch,
            )
        except NotFound:
            batch.remove(queue, task_ids)
            return []
        # A task handed out is one the claim changed; only the others are looked for in the
        # record, whose messages go if they are not tasks of it (any more).
        handed = {t["taskId"]: t for t in decision.changed_tasks}
        unknown = [t for t in task_ids if t not in handed]
        if unknown:
            present = tasks_by_id(decision.workflow, unknown)
            gone = [t for t in unknown if t not in present]
            if gone:
                batch.remove(queue, gone)
        if not decision.accepted:
            return []
        return [
            dict(handed[t])
            for t in task_ids
            if t in handed and handed[t]["status"] == TaskStatus.IN_PROGRESS.value
        ]

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
        task = await self._shell.store.executions.get_task(task_id) if limited else {}
        task_def = (
            (await self._shell.task_defs()).get(str(task.get("taskDefName"))) if limited else None
        )
        if task_def and (
            task_def.get("concurrentExecLimit") or task_def.get("rateLimitPerFrequency")
        ):
            verdict = check_claim_limits(
                task_def,
                in_progress=await self._in_progress(task["taskType"], task["taskDefName"]),
                claimed_in_window=await self._claimed_in_window(task_def),
                config=self._shell.config,
            )
            if not verdict.allowed:
                await self._shell.queues.postpone(queue, task_id, verdict.postpone_ms)
                return None
        decision = await self._shell.mutate(
            workflow_id,
            lambda wf, ctx: ops.claim(wf, task_id, worker_id, ctx),
            op="claim",
            task_id=task_id,
            batch=batch,
        )
        if not decision.accepted:
            return None
        # a task handed out is one the claim changed (a fan-out has thousands of others)
        for t in decision.changed_tasks:
            if t["taskId"] == task_id:
                return dict(t)
        return None

    async def _in_progress(self, task_type: str, task_def_name: str) -> int:
        pending = await self._shell.store.executions.pending_tasks_by_type(task_type)
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
        since = self._shell.clock() - window_ms
        pending = await self._shell.store.executions.pending_tasks_by_type(task_def["name"])
        return sum(1 for t in pending if int(t.get("startTime") or 0) >= since)
