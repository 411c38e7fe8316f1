"""Conductor-shaped workflow and task records for the store tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

Record = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return str(uuid.uuid4())


def workflow(
    name: str,
    *,
    wid: str | None = None,
    status: str = "RUNNING",
    version: int = 1,
    create_time: int | None = None,
    correlation_id: str | None = None,
    input: Any = None,
    **extra: Any,
) -> Record:
    created = now_ms() if create_time is None else create_time
    rec: Record = {
        "workflowId": wid or new_id(),
        "workflowName": name,
        "workflowVersion": version,
        "status": status,
        "createTime": created,
        "startTime": created,
        "updateTime": created,
        "input": input if input is not None else {"n": 1},
        "output": {},
        "priority": 0,
        "variables": {},
    }
    if correlation_id is not None:
        rec["correlationId"] = correlation_id
    rec.update(extra)
    return rec


def task(
    wf: Record,
    ref: str,
    *,
    task_type: str = "SIMPLE",
    status: str = "SCHEDULED",
    seq: int = 1,
    retry: int = 0,
    iteration: int = 0,
    tid: str | None = None,
    scheduled: int | None = None,
    **extra: Any,
) -> Record:
    rec: Record = {
        "taskId": tid or new_id(),
        "taskType": task_type,
        "taskDefName": task_type,
        "referenceTaskName": ref,
        "workflowInstanceId": wf["workflowId"],
        "workflowType": wf["workflowName"],
        "correlationId": wf.get("correlationId"),
        "status": status,
        "seq": seq,
        "retryCount": retry,
        "iteration": iteration,
        "scheduledTime": wf["createTime"] if scheduled is None else scheduled,
        "startTime": 0,
        "endTime": 0,
        "updateTime": wf["createTime"],
        "pollCount": 0,
        "inputData": {"ref": ref},
        "outputData": {},
    }
    rec.update(extra)
    return rec
