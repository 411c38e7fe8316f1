"""``/api/metadata``: task and workflow definitions."""

from __future__ import annotations

import httpx

from .api_calls import assert_envelope, simple_workflow
from .conftest import Names


async def test_task_defs_crud(client: httpx.AsyncClient, names: Names) -> None:
    name = names("td")
    r = await client.put("/api/metadata/taskdefs", json={"name": name, "enforceSchema": False})
    assert_envelope(r, 404, f"No such task by name {name}")
    r = await client.post(
        "/api/metadata/taskdefs", json=[{"name": name, "retryCount": 1, "ownerApp": "x"}]
    )
    assert r.status_code == 200 and r.content == b""
    r = await client.get(f"/api/metadata/taskdefs/{name}")
    task_def = r.json()
    assert task_def["name"] == name and task_def["retryCount"] == 1 and task_def["createTime"] > 0
    assert task_def["timeoutPolicy"] == "TIME_OUT_WF" and task_def["responseTimeoutSeconds"] == 3600
    r = await client.put("/api/metadata/taskdefs", json={"name": name, "retryCount": 4})
    assert r.status_code == 200
    r = await client.get(f"/api/metadata/taskdefs/{name}")
    assert r.json()["retryCount"] == 4 and r.json()["createTime"] == task_def["createTime"]
    assert r.json()["updateTime"] >= task_def["createTime"]
    r = await client.get("/api/metadata/taskdefs")
    assert name in {d["name"] for d in r.json()}
    r = await client.request("DELETE", f"/api/metadata/taskdefs/{name}", json={})
    assert r.status_code == 200
    assert_envelope(await client.get(f"/api/metadata/taskdefs/{name}"), 404,
                    f"No such taskType found by name: {name}")  # fmt: skip
    assert_envelope(await client.delete(f"/api/metadata/taskdefs/{name}"), 404)


async def test_task_def_validation(client: httpx.AsyncClient, names: Names) -> None:
    r = await client.post("/api/metadata/taskdefs", json=[])
    assert_envelope(r, 400)
    r = await client.post("/api/metadata/taskdefs", json=[{"name": ""}])
    body = assert_envelope(r, 400, "Validation failed")
    assert body["validationErrors"][0]["message"] == "TaskDef name cannot be null or empty"
    r = await client.post(
        "/api/metadata/taskdefs",
        json=[{"name": names("td"), "responseTimeoutSeconds": 10, "timeoutSeconds": 5}],
    )
    assert_envelope(r, 400)
    r = await client.post("/api/metadata/taskdefs", json=[{"name": "has space"}])
    assert_envelope(r, 400)
    r = await client.post("/api/metadata/taskdefs", json={"name": names("td")})
    assert_envelope(r, 400)


async def test_workflow_defs(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    definition = simple_workflow(wf, t)
    r = await client.post("/api/metadata/workflow", json=definition)
    assert r.status_code == 200
    r = await client.post("/api/metadata/workflow", json=definition)
    assert_envelope(r, 409, f"Workflow with {wf}.1 already exists!")
    r = await client.post("/api/metadata/workflow", params={"overwrite": "True"},
                          json={**definition, "description": "d"})  # fmt: skip
    assert r.status_code == 200
    r = await client.put(
        "/api/metadata/workflow", json=[{**definition, "version": 2}], params={"overwrite": "True"}
    )
    assert r.status_code == 200
    assert r.json() == {"bulkErrorResults": {}, "bulkSuccessfulResults": [wf]}
    r = await client.get(f"/api/metadata/workflow/{wf}")
    assert r.json()["version"] == 2 and r.json()["tasks"][0]["type"] == "SIMPLE"
    r = await client.get(f"/api/metadata/workflow/{wf}", params={"version": 1})
    assert r.json()["description"] == "d"
    r = await client.get(f"/api/metadata/workflow/{wf}/versions")
    assert [s["version"] for s in r.json()] == [1, 2]
    r = await client.get("/api/metadata/workflow/names-and-versions")
    assert [s["version"] for s in r.json()[wf]] == [1, 2]
    r = await client.get("/api/metadata/workflow/names")
    assert wf in r.json()
    r = await client.get("/api/metadata/workflow/latest-versions")
    assert [d["version"] for d in r.json() if d["name"] == wf] == [2]
    r = await client.get("/api/metadata/workflow")
    assert sorted(d["version"] for d in r.json() if d["name"] == wf) == [1, 2]
    r = await client.request("DELETE", f"/api/metadata/workflow/{wf}/2", json={})
    assert r.status_code == 200
    assert_envelope(await client.get(f"/api/metadata/workflow/{wf}", params={"version": 2}),
                    404, f"No such workflow found by name: {wf}, version: 2")  # fmt: skip
    assert_envelope(await client.delete(f"/api/metadata/workflow/{wf}/2"), 404)
    assert_envelope(await client.delete(f"/api/metadata/workflow/{wf}/two"), 400)


async def test_workflow_def_validation(client: httpx.AsyncClient, names: Names) -> None:
    r = await client.post("/api/metadata/workflow", json={})
    body = assert_envelope(r, 400, "Validation failed, check below errors for detail.")
    messages = {e["message"] for e in body["validationErrors"]}
    assert {"WorkflowDef name cannot be null or empty", "WorkflowTask list cannot be empty"} <= (
        messages
    )
    r = await client.post("/api/metadata/workflow/validate", json=simple_workflow("v", "t"))
    assert r.status_code == 200
    r = await client.post(
        "/api/metadata/workflow/validate",
        json={"name": "v", "tasks": [{"name": "x", "taskReferenceName": "x", "type": "SWITCH"}]},
    )
    assert_envelope(r, 400)
    odd = {"name": "v", "tasks": [{"name": "x", "taskReferenceName": "x",
                                   "type": "FORK_JOIN", "forkTasks": "nope"}]}  # fmt: skip
    assert_envelope(await client.post("/api/metadata/workflow/validate", json=odd), 400)
    r = await client.put("/api/metadata/workflow", json=[])
    assert_envelope(r, 400)
    r = await client.put("/api/metadata/workflow", json=[simple_workflow(names("ok"), "t"), {}])
    assert_envelope(r, 400)
    r = await client.get(f"/api/metadata/workflow/{names('ok')}")
    assert_envelope(r, 404)  # nothing of a rejected list was stored


async def test_registration_follows_conductor_on_joins_inline_defs_and_foreign_types(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf, t = names("wf"), names("t")
    base = simple_workflow(wf, t)
    # A JOIN on a reference name no task has would wait forever: refused, naming the field.
    fork = {
        "name": "f", "taskReferenceName": "f", "type": "FORK_JOIN",
        "forkTasks": [[{**base["tasks"][0], "taskReferenceName": "a"}]],
    }  # fmt: skip
    join = {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["zz"]}
    r = await client.post("/api/metadata/workflow", json={**base, "tasks": [fork, join]})
    body = assert_envelope(r, 400, "Validation failed")
    assert [e["path"] for e in body["validationErrors"]] == ["tasks[1].joinOn"]
    assert "zz" in body["validationErrors"][0]["message"]
    # An inline TaskDef without a name takes the task's.
    inline = {**base["tasks"][0], "taskDefinition": {"retryCount": 0}}
    r = await client.post("/api/metadata/workflow", json={**base, "tasks": [inline]})
    assert r.status_code == 200, r.text
    r = await client.get(f"/api/metadata/workflow/{wf}")
    assert r.json()["tasks"][0]["taskDefinition"]["name"] == t
    # A type of a Conductor module Podium lacks is stored; the task fails when reached.
    chat = {"name": "chat", "taskReferenceName": "chat", "type": "LLM_CHAT_COMPLETE"}
    other = names("wf_llm")
    r = await client.post("/api/metadata/workflow", json={**base, "name": other, "tasks": [chat]})
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/workflow/{other}", json={})
    assert r.status_code == 200, r.text
    run = (await client.get(f"/api/workflow/{r.text}")).json()
    assert run["status"] == "FAILED"
    assert [(x["taskType"], x["status"]) for x in run["tasks"]] == [
        ("LLM_CHAT_COMPLETE", "FAILED_WITH_TERMINAL_ERROR")
    ]
    reason = "task type LLM_CHAT_COMPLETE is not supported by Podium"
    assert run["tasks"][0]["reasonForIncompletion"] == reason
    assert reason in run["reasonForIncompletion"]
