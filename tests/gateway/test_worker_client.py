"""podium.worker: the asyncio worker client against a real gateway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from api_gateway.settings import AuthSettings
from podium.types import JSON
from podium.worker import InProgress, TaskRunner, TerminalError, Worker
from tests.polling import eventually

from .api_calls import register, simple_workflow, start
from .conftest import Names, RunningGateway


async def _statuses(client: httpx.AsyncClient, ids: list[str]) -> list[str]:
    out = []
    for wid in ids:
        r = await client.get(f"/api/workflow/{wid}", params={"includeTasks": "false"})
        out.append(r.json()["status"])
    return out


async def test_runner_completes_many_workflows(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    wf, t1, t2 = names("wf"), names("a"), names("b")
    await register(client, simple_workflow(wf, t1, t2))
    running = 0
    peak = 0

    async def first(task: JSON) -> JSON:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return {"result": task["inputData"]["x"] * 2}

    async def second(task: JSON) -> JSON:
        return {"result": "ok"}

    runner = TaskRunner(
        running_gateway.url,
        [Worker(t1, first, concurrency=4, poll_timeout_ms=200),
         Worker(t2, second, concurrency=2, poll_timeout_ms=200)],
        worker_id="bench",
    )  # fmt: skip
    job = asyncio.create_task(runner.run())
    ids = [await start(client, wf, {"x": i}) for i in range(20)]

    async def all_done() -> bool:
        return all(s == "COMPLETED" for s in await _statuses(client, ids))

    await eventually(all_done, timeout_s=30, what="20 workflows completed")
    runner.stop()
    await asyncio.wait_for(job, 10)
    assert peak <= 4
    assert runner.stats.completed == 40 and runner.stats.failed == 0
    assert runner.stats.update_errors == 0 and runner.stats.poll_errors == 0


async def test_runner_failures_in_progress_and_shutdown(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t, task_def={"retryCount": 0}))
    calls: dict[str, int] = {}

    async def handler(task: JSON) -> Any:
        kind = task["inputData"]["x"]
        calls[kind] = calls.get(kind, 0) + 1
        if kind == "fail":
            raise ValueError("kaboom")
        if kind == "terminal":
            raise TerminalError("no retry please")
        if kind == "later" and calls[kind] == 1:
            return InProgress(0, {"step": 1})
        return {"result": kind}

    runner = TaskRunner(
        running_gateway.url, [Worker(t, handler, concurrency=3, poll_timeout_ms=100)]
    )
    job = asyncio.create_task(runner.run())
    ids = {k: await start(client, wf, {"x": k}) for k in ("fail", "terminal", "later", "ok")}

    async def settled() -> bool:
        statuses = await _statuses(client, list(ids.values()))
        return all(s != "RUNNING" for s in statuses)

    await eventually(settled, timeout_s=30, what="every workflow settled")
    runner.stop()
    await asyncio.wait_for(job, 10)
    got = dict(zip(ids, await _statuses(client, list(ids.values())), strict=True))
    assert got == {"fail": "FAILED", "terminal": "FAILED", "later": "COMPLETED", "ok": "COMPLETED"}
    assert calls["later"] == 2
    r = await client.get(f"/api/workflow/{ids['fail']}")
    task_id = r.json()["tasks"][0]["taskId"]
    r = await client.get(f"/api/tasks/{task_id}/log")
    assert "kaboom" in r.json()[0]["log"]


async def test_runner_with_auth_and_v1_fallback(
    make_gateway: Callable[..., Any], names: Names
) -> None:
    keys = {"w": "worker-secret"}
    async with make_gateway(auth=AuthSettings(enabled=True, keys=keys)) as g:
        token = (
            await g.client.post("/api/token", json={"keyId": "w", "keySecret": "worker-secret"})
        ).json()
        headers = {"X-Authorization": token["token"]}
        wf, t = names("wf"), names("t")
        r = await g.client.post("/api/metadata/workflow", json=simple_workflow(wf, t),
                                headers=headers)  # fmt: skip
        assert r.status_code == 200
        runner = TaskRunner(g.url, [Worker(t, _echo, poll_timeout_ms=100)], key_id="w",
                            key_secret="worker-secret")  # fmt: skip
        runner._v2 = False  # exercise the v1 path: POST /api/tasks then poll again
        job = asyncio.create_task(runner.run())
        r = await g.client.post(f"/api/workflow/{wf}", json={"x": 1}, headers=headers)
        wid = r.text

        async def done() -> bool:
            r = await g.client.get(f"/api/workflow/{wid}", headers=headers)
            return bool(r.json()["status"] == "COMPLETED")

        await eventually(done, timeout_s=10, what=f"workflow {wid} completed")
        runner.stop()
        await asyncio.wait_for(job, 10)


async def _echo(task: JSON) -> JSON:
    return {"result": task["inputData"]}


async def test_stop_lets_running_tasks_finish_and_takes_no_new_work(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(task: JSON) -> JSON:
        started.set()
        await release.wait()
        return {"result": "late"}

    runner = TaskRunner(running_gateway.url, [Worker(t, slow, concurrency=1, poll_timeout_ms=50)])
    job = asyncio.create_task(runner.run())
    first = await start(client, wf)
    await asyncio.wait_for(started.wait(), 10)
    second = await start(client, wf)  # queued behind the running task
    runner.stop()
    release.set()
    await asyncio.wait_for(job, 10)
    assert await _statuses(client, [first, second]) == ["COMPLETED", "RUNNING"]
    r = await client.get("/api/tasks/queue/size", params={"taskType": t})
    assert r.json() == 1  # the second task was not taken by the stopping runner
