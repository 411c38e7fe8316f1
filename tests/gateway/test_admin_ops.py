"""``/api/admin`` purge, requeue, export and import (api_gateway/admin_ops.py), over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from api_gateway.admin_ops import parse_time
from api_gateway.grants import Grant
from api_gateway.settings import AuthSettings
from podium.queue_client import QueueClient
from podium.types import JSON
from tests.polling import eventually
from tests.stack import Stack

from .api_calls import assert_envelope, poll_one, register, simple_workflow, start
from .conftest import Names, RunningGateway

MakeGateway = Callable[..., AbstractAsyncContextManager[RunningGateway]]


def now_ms() -> int:
    return int(time.time() * 1000)


async def terminate(client: httpx.AsyncClient, workflow_id: str) -> int:
    """Terminate the workflow; its end time."""
    r = await client.request("DELETE", f"/api/workflow/{workflow_id}", params={"reason": "done"})
    assert r.status_code == 200, r.text
    r = await client.get(f"/api/workflow/{workflow_id}", params={"includeTasks": "false"})
    assert r.json()["status"] == "TERMINATED"
    end: int = r.json()["endTime"]
    return end


async def purge(client: httpx.AsyncClient, **params: Any) -> JSON:
    r = await client.post("/api/admin/purge", params=params)
    assert r.status_code == 200, r.text
    body: JSON = r.json()
    return body


async def exists(client: httpx.AsyncClient, workflow_id: str) -> bool:
    r = await client.get(f"/api/workflow/{workflow_id}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


async def search_ids(client: httpx.AsyncClient, name: str) -> set[str]:
    r = await client.get("/api/workflow/search", params={"query": f"workflowType IN ({name})"})
    assert r.status_code == 200, r.text
    return {w["workflowId"] for w in r.json()["results"]}


def test_purge_times_are_epoch_ms_or_iso_dates() -> None:
    assert parse_time("1700000000000", "t") == 1_700_000_000_000
    assert parse_time("2024-01-02", "t") == 1_704_153_600_000
    assert parse_time("2024-01-02T01:00:00+01:00", "t") == 1_704_153_600_000


@pytest.mark.timeout(60)
async def test_purge_removes_old_terminal_workflows_in_batches_and_keeps_the_rest(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    began = now_ms()
    old = [await start(client, wf, {"x": i}) for i in range(3)]
    running = await start(client, wf, {"x": "running"})
    late = await start(client, wf, {"x": "late"})
    old_tasks = [(await client.get(f"/api/workflow/{w}")).json()["tasks"][0]["taskId"] for w in old]
    cutoff = max([await terminate(client, w) for w in old]) + 1
    await eventually(lambda: clock_after(cutoff), timeout_s=5, what="the clock passed the cutoff")
    assert await terminate(client, late) >= cutoff
    assert await search_ids(client, wf) == {*old, running, late}

    common = {"endTimeBefore": str(cutoff), "workflowName": wf, "startedAfter": str(began - 1)}
    first = await purge(client, batchSize=2, **common)
    assert first["removed"] == 2 and first["more"] is True and first["continueToken"]
    assert first["examined"] >= 3
    calls = [first]
    while calls[-1]["more"]:
        calls.append(await purge(client, batchSize=2, continueToken=calls[-1]["continueToken"],
                                 **common))  # fmt: skip
        assert len(calls) < 10
    assert sum(c["removed"] for c in calls) == 3

    for workflow_id in old:
        assert not await exists(client, workflow_id)
    for task_id in old_tasks:
        assert (await client.get(f"/api/tasks/{task_id}")).status_code == 404
    assert await exists(client, running) and await exists(client, late)
    assert await search_ids(client, wf) == {running, late}
    again = await purge(client, **common)
    assert again["removed"] == 0 and again["more"] is False


async def clock_after(ms: int) -> bool:
    return now_ms() > ms


@pytest.mark.timeout(30)
async def test_purge_names_what_it_needs(running_gateway: RunningGateway) -> None:
    client = running_gateway.client
    assert_envelope(await client.post("/api/admin/purge"), 400, "endTimeBefore is required")
    r = await client.post("/api/admin/purge", params={"endTimeBefore": "yesterday"})
    assert_envelope(r, 400, "ISO 8601")
    r = await client.post("/api/admin/purge", params={"endTimeBefore": "1", "batchSize": "0"})
    assert_envelope(r, 400)


@pytest.mark.timeout(60)
async def test_requeue_pushes_a_lost_message_again_and_leaves_others_alone(
    running_gateway: RunningGateway, names: Names, queues: QueueClient
) -> None:
    client = running_gateway.client
    wf, t, u = names("wf"), names("t"), names("u")
    await register(client, simple_workflow(wf, t))
    await register(client, simple_workflow(names("other"), u))
    lost = await start(client, wf, {"x": 1})
    kept = await start(client, wf, {"x": 2})
    await start(client, names("other"), {"x": 3})
    [task] = [x for x in (await client.get(f"/api/workflow/{lost}")).json()["tasks"]]
    assert await queues.size(t) == 2
    assert await queues.remove(t, [task["taskId"]]) == [True]
    assert await queues.size(t) == 1

    r = await client.post(f"/api/admin/requeue/{t}")
    assert r.status_code == 200, r.text
    assert r.json() == {"taskTypes": 1, "scheduledTasks": 2, "workflowsDecided": 2}
    assert await queues.size(t) == 2  # the lost one back, the other not doubled
    assert await queues.size(u) == 1

    polled = {(await poll_one(client, t))["workflowInstanceId"] for _ in range(2)}
    assert polled == {lost, kept}


@pytest.mark.timeout(60)
async def test_requeue_of_every_type_reaches_a_task_whose_queue_was_emptied(
    running_gateway: RunningGateway, names: Names, queues: QueueClient
) -> None:
    client = running_gateway.client
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf, {"x": 1})
    [task] = (await client.get(f"/api/workflow/{workflow_id}")).json()["tasks"]
    await queues.remove(t, [task["taskId"]])
    r = await client.get(f"/api/tasks/poll/batch/{t}", params={"count": 1, "timeout": 1})
    assert r.json() == []

    r = await client.post("/api/admin/requeue")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["taskTypes"] >= 1 and body["scheduledTasks"] >= 1
    assert body["workflowsDecided"] >= 1
    assert (await poll_one(client, t))["taskId"] == task["taskId"]


def definitions_of(names: Names) -> tuple[list[JSON], JSON, JSON, JSON]:
    wf, t = names("wf"), names("t")
    workflows = [simple_workflow(wf, t, description=f"v{v}") | {"version": v} for v in (1, 2)]
    task_def = {"name": t, "retryCount": 2, "timeoutSeconds": 60, "responseTimeoutSeconds": 30}
    handler = {
        "name": names("handler"),
        "event": f"conductor:{wf}:done",
        "actions": [{"action": "complete_task", "complete_task": {"workflowId": "x"}}],
        "active": False,
    }
    schedule = {
        "name": names("schedule"),
        "cronExpression": "0 0 3 * * ?",
        "zoneId": "Europe/Paris",
        "startWorkflowRequest": {"name": wf, "version": 2, "input": {"x": 1}},
        "paused": True,
    }
    return workflows, task_def, handler, schedule


def by_key(doc: JSON) -> dict[str, dict[Any, JSON]]:
    return {
        "workflowDefs": {(d["name"], d["version"]): d for d in doc["workflowDefs"]},
        "taskDefs": {d["name"]: d for d in doc["taskDefs"]},
        "eventHandlers": {h["name"]: h for h in doc["eventHandlers"]},
        # a schedule's times say when it was written, here or there
        "schedules": {
            s["name"]: {k: v for k, v in s.items() if k not in ("createTime", "updatedTime")}
            for s in doc["schedules"]
        },
    }


@pytest.mark.timeout(60)
async def test_export_then_import_into_an_empty_store_gives_the_same_definitions(
    running_gateway: RunningGateway, names: Names, stack: Stack, make_gateway: MakeGateway
) -> None:
    client = running_gateway.client
    workflows, task_def, handler, schedule = definitions_of(names)
    for d in workflows:
        await register(client, d)
    assert (await client.post("/api/metadata/taskdefs", json=[task_def])).status_code == 200
    assert (await client.post("/api/event", json=handler)).status_code == 200
    assert (await client.post("/api/scheduler/schedules", json=schedule)).status_code == 200
    tags = [{"key": "team", "value": "billing"}]
    r = await client.put(f"/api/scheduler/schedules/{schedule['name']}/tags", json=tags)
    assert r.status_code == 200, r.text

    r = await client.get("/api/admin/export")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["version"] == 1
    assert doc["exportedAt"] >= now_ms() - 60_000
    exported = by_key(doc)
    assert {(workflows[0]["name"], 1), (workflows[0]["name"], 2)} <= set(exported["workflowDefs"])
    assert exported["taskDefs"][task_def["name"]]["retryCount"] == 2
    assert exported["eventHandlers"][handler["name"]]["active"] is False
    assert exported["schedules"][schedule["name"]]["tags"][0]["value"] == "billing"

    empty = dataclasses.replace(stack.store_config, key_prefix=f"podium:gwtest:{names.tag}:")
    async with make_gateway(store=empty) as other:
        assert (await other.client.get("/api/admin/export")).json()["workflowDefs"] == []
        r = await other.client.post("/api/admin/import", json=doc)
        assert r.status_code == 200, r.text
        assert r.json() == {
            "workflowDefs": {"created": len(doc["workflowDefs"]), "updated": 0},
            "taskDefs": {"created": len(doc["taskDefs"]), "updated": 0},
            "eventHandlers": {"created": len(doc["eventHandlers"]), "updated": 0},
            "schedules": {"created": len(doc["schedules"]), "updated": 0},
        }
        assert by_key((await other.client.get("/api/admin/export")).json()) == exported

        async def audited() -> bool:
            """The import's audit record is filed under each definition it wrote."""
            r = await other.client.get("/api/audit", params={"eventHandler": handler["name"]})
            return any(x["route"] == "/api/admin/import" for x in r.json())

        await eventually(audited, timeout_s=10, what="the import's audit record")

        r = await other.client.post("/api/admin/import", json=doc)
        assert r.status_code == 200, r.text
        assert r.json()["workflowDefs"] == {"created": 0, "updated": len(doc["workflowDefs"])}
        assert r.json()["eventHandlers"] == {"created": 0, "updated": len(doc["eventHandlers"])}
        assert r.json()["schedules"] == {"created": 0, "updated": len(doc["schedules"])}
        assert by_key((await other.client.get("/api/admin/export")).json()) == exported


@pytest.mark.timeout(30)
async def test_an_import_with_one_bad_definition_writes_nothing(
    running_gateway: RunningGateway, names: Names
) -> None:
    client = running_gateway.client
    workflows, task_def, handler, schedule = definitions_of(names)
    bad_schedule = {**schedule, "cronExpression": "61 * * * * *"}
    bad_workflow = {"name": names("bad"), "version": 1}  # no tasks
    bad_handler = {"name": names("bad_handler"), "event": "x"}  # no actions
    doc = {
        "version": 1,
        "workflowDefs": [*workflows, bad_workflow],
        "taskDefs": [task_def],
        "eventHandlers": [handler, bad_handler],
        "schedules": [schedule, bad_schedule],
    }
    body = assert_envelope(await client.post("/api/admin/import", json=doc), 400)
    paths = [e["path"] for e in body["validationErrors"]]
    assert any(p.startswith("workflowDefs[2]") for p in paths), paths
    assert any(p.startswith("eventHandlers[1]") for p in paths), paths
    assert "schedules[1]" in paths and "schedules[0]" not in paths, paths
    assert not any(p.startswith(("workflowDefs[0]", "taskDefs")) for p in paths), paths

    name = workflows[0]["name"]
    assert (await client.get(f"/api/metadata/workflow/{name}")).status_code == 404
    assert (await client.get(f"/api/metadata/taskdefs/{task_def['name']}")).status_code == 404
    handlers = (await client.get("/api/event")).json()
    assert handler["name"] not in {h["name"] for h in handlers}
    r = await client.get(f"/api/scheduler/schedules/{schedule['name']}")
    assert r.status_code == 404

    twice = {"version": 1, "taskDefs": [task_def, task_def]}
    assert_envelope(await client.post("/api/admin/import", json=twice), 400, "")
    assert_envelope(await client.post("/api/admin/import", json={"version": 2}), 400)


@pytest.mark.timeout(30)
async def test_purge_and_import_are_for_admins_requeue_and_export_for_operators(
    make_gateway: MakeGateway,
) -> None:
    keys = {"adm": "secret-admin-1", "ops": "secret-operator-1", "view": "secret-viewer-1"}
    grants = {"ops": Grant(("operator",)), "view": Grant(("viewer",))}
    async with make_gateway(auth=AuthSettings(enabled=True, keys=keys, grants=grants)) as g:
        tokens = {}
        for key_id, secret in keys.items():
            r = await g.client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
            assert r.status_code == 200, r.text
            tokens[key_id] = r.json()["token"]

        async def status(key_id: str, method: str, url: str, **kw: Any) -> int:
            headers = {"X-Authorization": tokens[key_id]}
            return (await g.client.request(method, url, headers=headers, **kw)).status_code

        purge_params = {"params": {"endTimeBefore": "1", "startedAfter": "0"}}
        assert await status("ops", "POST", "/api/admin/purge", **purge_params) == 403
        assert await status("adm", "POST", "/api/admin/purge", **purge_params) == 200
        empty = {"json": {"version": 1}}
        assert await status("ops", "POST", "/api/admin/import", **empty) == 403
        assert await status("adm", "POST", "/api/admin/import", **empty) == 200
        assert await status("view", "POST", "/api/admin/requeue/nothing_here") == 403
        assert await status("ops", "POST", "/api/admin/requeue/nothing_here") == 200
        assert await status("view", "GET", "/api/admin/export") == 200


async def podium_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m podium.cli ARGS`` without blocking the loop that serves the gateway."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "podium.cli", *args,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.timeout(60)
async def test_the_admin_cli_signs_in_with_a_key(make_gateway: MakeGateway) -> None:
    keys = {"adm": "secret-admin-1", "view": "secret-viewer-1"}
    grants = {"view": Grant(("viewer",))}
    async with make_gateway(auth=AuthSettings(enabled=True, keys=keys, grants=grants)) as g:
        url = f"{g.url}/api"
        code, out, err = await podium_cli(
            "admin", "export", "--url", url, "--key-id", "adm", "--key-secret", "secret-admin-1"
        )
        assert code == 0, err
        assert json.loads(out)["version"] == 1

        code, out, err = await podium_cli("admin", "export", "--url", url)
        assert code == 1 and "401" in err

        viewer = {"CONDUCTOR_AUTH_KEY": "view", "CONDUCTOR_AUTH_SECRET": "secret-viewer-1"}
        code, out, err = await podium_cli(
            "admin", "purge", "--before", "2020-01-01", "--url", url, env=viewer
        )
        assert code == 1 and "403" in err and "Traceback" not in err
