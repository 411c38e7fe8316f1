"""Conductor API calls the gateway tests make over HTTP, and the check of an error envelope."""

from __future__ import annotations

from typing import Any

import httpx

from podium.types import JSON
from tests.polling import eventually


def simple_workflow(
    name: str, *task_types: str, task_def: JSON | None = None, **extra: Any
) -> JSON:
    """A workflow of SIMPLE tasks run one after another; refs are ``t0``, ``t1``, ...

    ``task_def`` is embedded in each task (inline definitions are seen at once, registered
    ones only when the decider's cache of TaskDefs refreshes).
    """
    tasks: list[JSON] = []
    for i, t in enumerate(task_types):
        workflow_task: JSON = {
            "name": t,
            "taskReferenceName": f"t{i}",
            "type": "SIMPLE",
            "inputParameters": {"x": "${workflow.input.x}"},
        }
        if task_def is not None:
            workflow_task["taskDefinition"] = {"name": t, **task_def}
        tasks.append(workflow_task)
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": tasks,
        "outputParameters": {"result": f"${{t{len(task_types) - 1}.output.result}}"},
        **extra,
    }


async def register(client: httpx.AsyncClient, definition: JSON) -> None:
    r = await client.post("/api/metadata/workflow", json=definition)
    assert r.status_code == 200, r.text


async def start(
    client: httpx.AsyncClient, name: str, data: JSON | None = None, **params: Any
) -> str:
    r = await client.post(f"/api/workflow/{name}", json=data or {}, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


async def poll_one(
    client: httpx.AsyncClient, task_type: str, worker: str = "w1", **params: Any
) -> JSON:
    """Batch-poll until one task of ``task_type`` comes back."""

    async def once() -> JSON | None:
        r = await client.get(
            f"/api/tasks/poll/batch/{task_type}",
            params={"workerid": worker, "count": 1, "timeout": 200, **params},
        )
        assert r.status_code == 200, r.text
        tasks = r.json()
        return tasks[0] if tasks else None

    return await eventually(once, timeout_s=10, what=f"a {task_type} task")


def assert_envelope(r: httpx.Response, status: int, message: str | None = None) -> JSON:
    assert r.status_code == status, r.text
    body: JSON = r.json()
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    assert "instance" in body and body["retryable"] in (True, False)
    if message is not None:
        assert message in body["message"], body
    return body
