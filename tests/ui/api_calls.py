"""API calls the UI tests make to set up what the pages show: workflows to start and read,
and a worker that completes or fails one task."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from podium.types import JSON
from tests.gateway.api_calls import poll_one, register, simple_workflow, start

__all__ = [
    "complete_next",
    "fail_next",
    "one_task_workflow_started",
    "register",
    "signed_in",
    "simple_workflow",
    "start",
    "status_of",
    "workflow",
]


async def workflow(client: httpx.AsyncClient, wf_id: str) -> JSON:
    r = await client.get(f"/api/workflow/{wf_id}")
    assert r.status_code == 200, r.text
    body: JSON = r.json()
    return body


async def status_of(client: httpx.AsyncClient, wf_id: str) -> str:
    return str((await workflow(client, wf_id))["status"])


async def _result(client: httpx.AsyncClient, task: JSON, status: str, **fields: Any) -> JSON:
    r = await client.post(
        "/api/tasks",
        json={
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "status": status,
            "workerId": "ui-test-worker",
            **fields,
        },
    )
    assert r.status_code == 200, r.text
    return task


async def complete_next(
    client: httpx.AsyncClient, task_type: str, output: JSON | None = None
) -> JSON:
    """Be a worker once: poll one task of the type and complete it with ``output``."""
    task = await poll_one(client, task_type, worker="ui-test-worker")
    return await _result(client, task, "COMPLETED", outputData=output or {"result": "done"})


async def fail_next(client: httpx.AsyncClient, task_type: str, reason: str = "boom") -> JSON:
    task = await poll_one(client, task_type, worker="ui-test-worker")
    return await _result(client, task, "FAILED", reasonForIncompletion=reason)


async def signed_in(gateway_url: str, key_id: str, secret: str) -> httpx.AsyncClient:
    """An API client holding the token of ``key_id`` (the caller closes it)."""
    async with httpx.AsyncClient(base_url=gateway_url) as anonymous:
        r = await anonymous.post("/api/token", json={"keyId": key_id, "keySecret": secret})
    assert r.status_code == 200, r.text
    return httpx.AsyncClient(base_url=gateway_url, headers={"X-Authorization": r.json()["token"]})


async def one_task_workflow_started(
    client: httpx.AsyncClient, names: Callable[[str], str], prefix: str
) -> tuple[str, str]:
    """Register a workflow of one SIMPLE task and start it: (its name, the workflow id)."""
    name = names(prefix)
    wf = {"name": name, "version": 1, "schemaVersion": 2, "tasks": [
        {"name": names("t"), "taskReferenceName": "t0", "type": "SIMPLE"}]}  # fmt: skip
    assert (await client.post("/api/metadata/workflow", json=wf)).status_code == 200
    r = await client.post(f"/api/workflow/{name}", json={})
    assert r.status_code == 200, r.text
    return name, r.text
