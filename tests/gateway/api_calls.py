"""Helpers shared by the gateway tests (no fixtures here)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

JSON = dict[str, Any]


def simple_workflow(
    name: str, *task_types: str, task_def: JSON | None = None, **extra: Any
) -> JSON:
    """A workflow of SIMPLE tasks run one after another; refs are ``t0``, ``t1``, ...

    ``task_def`` is embedded in each task (inline definitions are seen at once, registered
    ones only when the decider's cache of TaskDefs refreshes).
    """
    tasks: list[JSON] = []
    for i, t in enumerate(task_types):
        wt: JSON = {
            "name": t,
            "taskReferenceName": f"t{i}",
            "type": "SIMPLE",
            "inputParameters": {"x": "${workflow.input.x}"},
        }
        if task_def is not None:
            wt["taskDefinition"] = {"name": t, **task_def}
        tasks.append(wt)
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


async def poll_until(
    check: Callable[[], Awaitable[Any]], timeout_s: float = 10.0, interval_s: float = 0.02
) -> Any:
    """Call ``check`` until it returns something truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last: {value!r})")
        await asyncio.sleep(interval_s)


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

    task: JSON = await poll_until(once)
    return task


def assert_envelope(r: httpx.Response, status: int, message: str | None = None) -> JSON:
    assert r.status_code == status, r.text
    body: JSON = r.json()
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    assert "instance" in body and body["retryable"] in (True, False)
    if message is not None:
        assert message in body["message"], body
    return body
