"""The Python client of the decider service: one method per RPC, with typed parameters.

The gateway and the sweeper call the decider only through this class, so the names and
shapes of the calls are written once. A call that changes a workflow answers
:data:`DecisionAnswer`: ``workflowId``, ``status``, ``accepted``, ``changedTaskIds``, and
``workflow`` (the whole record, tasks included) when asked for with ``return_workflow``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from podium.rpc import RpcClient
from podium.types import JSON

#: What a call that decides answers (see the module's docstring).
DecisionAnswer = JSON


class DeciderClient:
    """Calls the decider service over RPC."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    async def close(self) -> None:
        await self.rpc.close()

    async def call(
        self,
        method: str,
        params: JSON,
        *,
        timeout_s: float | None = None,
        workflow_id: str | None = None,
    ) -> Any:
        """Send ``decider.<method>``; its errors come back as the same PodiumError classes.

        A call about one workflow goes to the replica that owns it (``workflow_id`` is the
        routing key), which keeps the workflow's record in memory between decisions."""
        return await self.rpc.call(
            f"decider.{method}", params, timeout_s=timeout_s, key=workflow_id
        )

    async def start_workflow(self, request: JSON) -> str:
        """Start a workflow from a StartWorkflowRequest; its id once its first tasks exist.

        The id is chosen here (unless the request has one), so that the start already goes
        to the replica that will own the workflow."""
        wf_id = str(request.get("workflowId") or uuid.uuid4())
        answer = await self.call(
            "start_workflow", {"request": {**request, "workflowId": wf_id}}, workflow_id=wf_id
        )
        return str(answer["workflowId"])

    async def test_workflow(self, request: JSON) -> JSON:
        """Conductor's test run: the workflow run with mocked task results, nothing stored."""
        answer = await self.call("test_workflow", {"request": request})
        workflow: JSON = answer["workflow"]
        return workflow

    async def decide(self, workflow_id: str) -> DecisionAnswer:
        answer: DecisionAnswer = await self.call(
            "decide", {"workflowId": workflow_id}, workflow_id=workflow_id
        )
        return answer

    async def claim(
        self,
        queue: str,
        items: Sequence[tuple[str, str]],
        worker_id: str | None,
        *,
        ack: bool,
    ) -> list[JSON]:
        """Claim popped messages (``(message id, workflow id)``) for a worker: the tasks it
        gets. With ``ack`` their messages are acked with the claims; without, the caller's
        lease covers the work."""
        by_owner: dict[str, list[tuple[str, str]]] = {}
        for msg_id, wf_id in items:
            by_owner.setdefault(await self.rpc.owner(wf_id), []).append((msg_id, wf_id))
        answers = await asyncio.gather(
            *(self._claim(queue, part, worker_id, ack) for part in by_owner.values()),
            return_exceptions=True,
        )
        claimed = [a for a in answers if not isinstance(a, BaseException)]
        if not claimed:  # every owner failed: the poll fails, its messages stay leased
            failure = answers[0]
            assert isinstance(failure, BaseException)
            raise failure
        # An owner that failed leaves its messages leased, to be handed out again; the tasks
        # the others claimed reach the worker.
        return [task for tasks in claimed for task in tasks]

    async def _claim(
        self, queue: str, items: Sequence[tuple[str, str]], worker_id: str | None, ack: bool
    ) -> list[JSON]:
        params = {
            "queue": queue,
            "items": [[msg_id, wf_id] for msg_id, wf_id in items],
            "workerId": worker_id,
            "ack": ack,
        }
        answer = await self.call("claim", params, workflow_id=items[0][1])
        return list(answer.get("tasks") or [])

    async def update_task(self, result: JSON, *, return_task_type: bool = False) -> DecisionAnswer:
        """Report a TaskResult. With ``return_task_type`` the answer names the task's
        ``taskType`` and ``domain`` when the update changed the task."""
        wf_id = result.get("workflowInstanceId")
        params: JSON = {"result": result}
        if return_task_type:
            params["returnTaskType"] = True
        answer: DecisionAnswer = await self.call(
            "update_task", params, workflow_id=wf_id if isinstance(wf_id, str) else None
        )
        return answer

    async def update_task_by_ref(
        self,
        workflow_id: str,
        ref: str,
        status: str,
        output: JSON,
        worker_id: str | None,
        *,
        return_workflow: bool = False,
    ) -> DecisionAnswer:
        params = {
            "workflowId": workflow_id,
            "ref": ref,
            "status": status,
            "output": output,
            "workerId": worker_id,
            "returnWorkflow": return_workflow,
        }
        answer: DecisionAnswer = await self.call(
            "update_task_by_ref", params, workflow_id=workflow_id
        )
        return answer

    async def signal(
        self, workflow_id: str, status: str, output: JSON, *, return_workflow: bool = False
    ) -> DecisionAnswer:
        """Complete the workflow's blocking WAIT, HUMAN or YIELD task with ``status``."""
        params = {
            "workflowId": workflow_id,
            "status": status,
            "output": output,
            "returnWorkflow": return_workflow,
        }
        answer: DecisionAnswer = await self.call("signal", params, workflow_id=workflow_id)
        return answer

    async def terminate(self, workflow_id: str, reason: str | None) -> DecisionAnswer:
        params = {"workflowId": workflow_id, "reason": reason}
        answer: DecisionAnswer = await self.call("terminate", params, workflow_id=workflow_id)
        return answer

    async def pause(self, workflow_id: str) -> DecisionAnswer:
        answer: DecisionAnswer = await self.call(
            "pause", {"workflowId": workflow_id}, workflow_id=workflow_id
        )
        return answer

    async def resume(self, workflow_id: str) -> DecisionAnswer:
        answer: DecisionAnswer = await self.call(
            "resume", {"workflowId": workflow_id}, workflow_id=workflow_id
        )
        return answer

    async def retry(
        self, workflow_id: str, *, resume_subworkflow_tasks: bool = False
    ) -> DecisionAnswer:
        params = {"workflowId": workflow_id, "resumeSubworkflowTasks": resume_subworkflow_tasks}
        answer: DecisionAnswer = await self.call("retry", params, workflow_id=workflow_id)
        return answer

    async def restart(
        self, workflow_id: str, *, use_latest_definitions: bool = False
    ) -> DecisionAnswer:
        params = {"workflowId": workflow_id, "useLatestDefinitions": use_latest_definitions}
        answer: DecisionAnswer = await self.call("restart", params, workflow_id=workflow_id)
        return answer

    async def rerun(self, workflow_id: str, request: JSON) -> DecisionAnswer:
        """Rerun from a task (a RerunWorkflowRequest)."""
        params = {"workflowId": workflow_id, "request": request}
        answer: DecisionAnswer = await self.call("rerun", params, workflow_id=workflow_id)
        return answer

    async def skip_task(
        self,
        workflow_id: str,
        ref: str,
        task_input: JSON | None = None,
        task_output: JSON | None = None,
    ) -> DecisionAnswer:
        params = {
            "workflowId": workflow_id,
            "ref": ref,
            "taskInput": task_input,
            "taskOutput": task_output,
        }
        answer: DecisionAnswer = await self.call("skip_task", params, workflow_id=workflow_id)
        return answer

    async def set_variables(self, workflow_id: str, variables: JSON) -> DecisionAnswer:
        params = {"workflowId": workflow_id, "variables": variables}
        answer: DecisionAnswer = await self.call("set_variables", params, workflow_id=workflow_id)
        return answer

    async def remove(self, workflow_id: str) -> None:
        """Remove the workflow, its tasks and its timer."""
        await self.call("remove", {"workflowId": workflow_id}, workflow_id=workflow_id)

    async def ping(self) -> str:
        return str(await self.call("ping", {}))
