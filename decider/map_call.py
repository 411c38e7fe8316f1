"""What a task mapper is given: :class:`MapCall`, one WorkflowTask to turn into runtime task
records, and the helpers mappers share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from decider.binding import resolve_params
from decider.definition_tree import populate_one
from decider.statuses import TaskStatus, task_terminal
from decider.workflow_run import Run
from podium.definitions.shape import normalize_task_def, normalize_workflow_task
from podium.types import JSON

Mapper = Callable[["MapCall"], list[JSON]]
#: ``map_task(run, workflow_task, retry_count)``: the runtime tasks for a WorkflowTask.
MapTask = Callable[[Run, JSON, int], list[JSON]]


class MapCall:
    """One mapping: the run, the WorkflowTask, its retry count and the new task's id."""

    def __init__(
        self,
        run: Run,
        workflow_task: JSON,
        retry_count: int,
        retried_task_id: str | None,
        map_task: MapTask,
    ) -> None:
        self.run = run
        #: Maps further WorkflowTasks (a fork's branches): passed in, so that mappers in other
        #: modules need not import the table of mappers that imports them.
        self.map_task = map_task
        self.workflow_task = workflow_task
        self.retry_count = retry_count
        self.retried_task_id = retried_task_id
        self.task_id = run.ctx.ids()
        self.task_def = task_def_of(run, workflow_task)

    def input(self) -> JSON:
        return resolve_params(
            self.workflow_task.get("inputParameters"),
            self.run.wf,
            self.task_id,
            self.task_def,
            self.run.ctx.env,
            paths=self.run.ctx.paths,
        )

    def create(
        self, task_type: str, status: str, input_data: JSON, def_name: str | None = None
    ) -> JSON:
        """``TaskMapperContext.createTaskModel`` plus the type and status."""
        run, workflow_task = self.run, self.workflow_task
        task: JSON = {
            "taskId": self.task_id,
            "taskType": task_type,
            "taskDefName": def_name if def_name is not None else workflow_task["name"],
            "referenceTaskName": workflow_task["taskReferenceName"],
            "status": str(status),
            "inputData": input_data,
            "outputData": {},
            "workflowInstanceId": run.wf["workflowId"],
            "workflowType": run.wf.get("workflowName"),
            "seq": 0,
            "retryCount": self.retry_count,
            "retried": False,
            "executed": False,
            "pollCount": 0,
            "scheduledTime": run.now,
            "startTime": 0,
            "endTime": 0,
            "updateTime": run.now,
            "startDelayInSeconds": 0,
            "callbackAfterSeconds": 0,
            "callbackFromWorker": True,
            "responseTimeoutSeconds": 0,
            "workflowTask": workflow_task,
            "rateLimitPerFrequency": 0,
            "rateLimitFrequencyInSeconds": 1,
            "workflowPriority": int(run.wf.get("priority") or 0),
            "iteration": 0,
            "subworkflowChanged": False,
        }
        if run.wf.get("correlationId") is not None:
            task["correlationId"] = run.wf["correlationId"]
        if self.retried_task_id is not None:
            task["retriedTaskId"] = self.retried_task_id
        task_def = self.task_def
        if task_def is not None:
            task["responseTimeoutSeconds"] = task_def.get("responseTimeoutSeconds", 0)
            task["rateLimitPerFrequency"] = task_def.get("rateLimitPerFrequency") or 0
            task["rateLimitFrequencyInSeconds"] = task_def.get("rateLimitFrequencyInSeconds") or 1
            for key in ("isolationGroupId", "executionNameSpace"):
                if task_def.get(key):
                    task[key] = task_def[key]
        if status in (TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED, TaskStatus.FAILED):
            task["startTime"] = run.now
        if task_terminal(status):
            task["endTime"] = run.now
        return task


def task_def_of(run: Run, workflow_task: JSON) -> JSON | None:
    """The TaskDef of a WorkflowTask: inline/populated, else registered, else None."""
    task_def = workflow_task.get("taskDefinition")
    if isinstance(task_def, dict):
        return task_def
    registered = run.ctx.task_defs.get(workflow_task.get("name", ""))
    return normalize_task_def(registered) if registered is not None else None


def dynamic_fork_wt(run: Run, raw: Any, parent: JSON) -> JSON:
    """A dynamically forked WorkflowTask, normalized and given its TaskDef."""
    workflow_task = normalize_workflow_task(raw)
    populate_one(workflow_task, run.ctx.task_defs)
    if parent.get("optional"):
        workflow_task["optional"] = True
    return workflow_task
