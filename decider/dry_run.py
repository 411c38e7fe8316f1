"""Conductor's test run (``POST /api/workflow/test``): a workflow run with mocked task results.

The run goes through the pure operations only and writes nothing: the workflow is started in
memory, the decide loop runs system tasks as usual, and each unfinished task whose reference
name has mocks left (``taskRefToMockOutput``: ``{ref: [{status, output}, ...]}``, one entry
per attempt, in order) gets the next one as its result. It ends when the workflow ends, when no
unfinished task has a mock left, or after ``MAX_STEPS`` results; the workflow is returned as
it stands then (RUNNING when some task had no mock, as in Conductor). Nothing runs outside the
decider: a task without a mock (a worker task, HTTP, a SUB_WORKFLOW, a WAIT) stays SCHEDULED
or IN_PROGRESS, no sub-workflow is started, and the workflow id names no stored workflow.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from decider import operations as ops
from decider.definition_tree import strip_iteration
from decider.statuses import WorkflowStatus, task_terminal
from podium.types import JSON

if TYPE_CHECKING:
    from decider.shell import DeciderShell


#: Mocked results applied at most per run: each is a decision on the whole record, run on the
#: decider's event loop.
MAX_STEPS = 2000
#: Fields of a test request that are not a StartWorkflowRequest's.
_TEST_ONLY = ("taskRefToMockOutput", "subWorkflowTestRequest")
#: Fields the shell sets itself on workflows it starts for real.
_NOT_FROM_CLIENTS = ("workflowId", "subWorkflowDepth", "idempotencyKey", "parentWorkflowId",
                     "parentWorkflowTaskId")  # fmt: skip


async def run_with_mocks(
    shell: DeciderShell, request: Mapping[str, Any], max_steps: int = MAX_STEPS
) -> JSON:
    """Run ``request`` (a WorkflowTestRequest) with its mocks; return the workflow record."""
    definition = request.get("workflowDef")
    if not isinstance(definition, Mapping):
        definition = await shell.resolve_definition(request.get("name"), request.get("version"))
    start = {k: v for k, v in request.items() if k not in _TEST_ONLY + _NOT_FROM_CLIENTS}
    mocks = {str(ref): list(entries) for ref, entries in _mocks(request).items()}
    ctx = await shell.context(start, definition)
    decision, _ = await shell.run_op(functools.partial(ops.start_workflow, definition, start), ctx)
    wf = decision.workflow
    for _ in range(max_steps):
        if wf["status"] != WorkflowStatus.RUNNING:
            break
        found = _next_mocked(wf, mocks)
        if found is None:
            break
        task, mock = found
        result = {
            "workflowInstanceId": wf["workflowId"],
            "taskId": task["taskId"],
            "status": mock.get("status") or "COMPLETED",
            "outputData": mock.get("output") or {},
        }
        decision, _ = await shell.run_op(
            functools.partial(ops.update_task, wf, result), await shell.context(wf)
        )
        wf = decision.workflow
        await asyncio.sleep(0)  # let the replica's other calls in between steps
    return wf


def _mocks(request: Mapping[str, Any]) -> Mapping[str, list[Mapping[str, Any]]]:
    mocks = request.get("taskRefToMockOutput")
    return mocks if isinstance(mocks, Mapping) else {}


def _next_mocked(
    wf: Mapping[str, Any], mocks: dict[str, list[Mapping[str, Any]]]
) -> tuple[JSON, Mapping[str, Any]] | None:
    """The first unfinished task with a mock left (by its reference name, or, in a loop, by
    the name without its ``__N`` suffix), and that mock, taken from the list."""
    for task in wf.get("tasks") or []:
        if task_terminal(task["status"]):
            continue
        ref = task["referenceTaskName"]
        for name in (ref, strip_iteration(ref)):
            if mocks.get(name):
                return task, mocks[name].pop(0)
    return None
