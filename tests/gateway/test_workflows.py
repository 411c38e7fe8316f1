"""``/api/workflow``: start, execute, read, control, search, correlated, running, bulk."""

from __future__ import annotations

import asyncio

import httpx

from podium.types import JSON
from tests.polling import eventually

from .api_calls import (
    assert_envelope,
    poll_one,
    register,
    simple_workflow,
    start,
)
from .conftest import Names


async def complete(client: httpx.AsyncClient, task: JSON, status: str = "COMPLETED",
                   **extra: object) -> None:  # fmt: skip
    r = await client.post(
        "/api/tasks",
        json={
            "workflowInstanceId": task["workflowInstanceId"],
            "taskId": task["taskId"],
            "status": status,
            **extra,
        },
    )
    assert r.status_code == 200, r.text


async def get(client: httpx.AsyncClient, workflow_id: str, **params: str | bool) -> JSON:
    r = await client.get(f"/api/workflow/{workflow_id}", params=params)
    assert r.status_code == 200, r.text
    body: JSON = r.json()
    return body


async def test_start_with_request_and_read(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    r = await client.post(
        "/api/workflow",
        json={"name": wf, "input": {"x": 1}, "correlationId": "c-1", "priority": 5,
              "idempotencyStrategy": "FAIL"},
    )  # fmt: skip
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    workflow_id = r.text
    assert '"' not in workflow_id
    body = await get(client, workflow_id)
    assert body["workflowName"] == wf and body["status"] == "RUNNING"
    assert body["correlationId"] == "c-1" and body["priority"] == 5
    [task] = body["tasks"]
    assert task["status"] == "SCHEDULED" and task["workflowTask"]["taskReferenceName"] == "t0"
    assert "endTime" not in body or body["endTime"] == 0
    body = await get(client, workflow_id, includeTasks="false")
    assert body["tasks"] == []
    r = await client.get(f"/api/workflow/{workflow_id}/status",
                         params={"includeOutput": "true", "includeVariables": "True"})  # fmt: skip
    assert r.json()["status"] == "RUNNING" and r.json()["output"] == {}
    r = await client.get(f"/api/workflow/{workflow_id}/tasks", params={"status": "scheduled"})
    assert r.json()["totalHits"] == 1


async def test_start_with_inline_definition(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("inline"), names("t")
    r = await client.post(
        "/api/workflow",
        json={"name": wf, "version": 1, "input": {}, "workflowDef": simple_workflow(wf, t)},
    )
    assert r.status_code == 200, r.text
    body = await get(client, r.text)
    assert body["workflowDefinition"]["name"] == wf
    r = await client.post(
        "/api/workflow", json={"name": wf, "workflowDef": {"name": wf, "tasks": []}}
    )
    body = assert_envelope(r, 400)
    assert "WorkflowTask list cannot be empty" in {e["message"] for e in body["validationErrors"]}


async def test_start_errors(client: httpx.AsyncClient, names: Names) -> None:
    r = await client.post(f"/api/workflow/{names('missing')}", json={})
    assert_envelope(r, 404)
    r = await client.post("/api/workflow", json={"input": {}})
    assert_envelope(r, 400, "Validation failed")
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    r = await client.post("/api/workflow", json={"name": wf, "input": None})
    assert_envelope(r, 400, "NULL input passed when starting workflow")
    r = await client.post("/api/workflow", json={"name": wf, "priority": 100})
    assert_envelope(r, 400)
    r = await client.post(f"/api/workflow/{wf}", params={"priority": 100}, json={})
    assert_envelope(r, 400)
    r = await client.post(f"/api/workflow/{wf}", json=[1, 2])
    assert_envelope(r, 400)
    r = await client.post("/api/workflow", json={"name": wf, "input": "text"})
    assert_envelope(r, 400)
    r = await client.post("/api/workflow", json={"name": wf, "taskToDomain": {"*": "a b"}})
    assert_envelope(r, 400)
    r = await client.get("/api/workflow/w123")
    assert_envelope(r, 404, "No such workflow found by id: w123")


async def test_terminate_pause_resume(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf)
    # The SDK sends {} bodies on body-less endpoints; they must be accepted.
    r = await client.put(f"/api/workflow/{workflow_id}/pause", json={})
    assert r.status_code == 200 and r.content == b""
    assert (await get(client, workflow_id))["status"] == "PAUSED"
    r = await client.put(f"/api/workflow/{workflow_id}/resume", json={})
    assert r.status_code == 200
    r = await client.put(f"/api/workflow/{workflow_id}/resume")
    assert_envelope(r, 500, "not PAUSED")
    r = await client.request(
        "DELETE", f"/api/workflow/{workflow_id}", params={"reason": "bye"}, json={}
    )
    assert r.status_code == 200
    body = await get(client, workflow_id)
    assert body["status"] == "TERMINATED" and body["reasonForIncompletion"] == "bye"
    r = await client.put(f"/api/workflow/{workflow_id}/pause")
    assert_envelope(r, 409)


async def test_retry_restart_rerun(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t, task_def={"retryCount": 0}))
    workflow_id = await start(client, wf)
    task = await poll_one(client, t)
    r = await client.post(f"/api/workflow/{workflow_id}/retry", json={})
    assert_envelope(r, 404, "still running")
    await complete(client, task, "FAILED", reasonForIncompletion="boom")
    assert (await get(client, workflow_id))["status"] == "FAILED"
    r = await client.post(f"/api/workflow/{workflow_id}/retry", json={})
    assert r.status_code == 204, r.text
    body = await get(client, workflow_id)
    assert body["status"] == "RUNNING" and len(body["tasks"]) == 2
    r = await client.delete(f"/api/workflow/{workflow_id}")
    r = await client.post(f"/api/workflow/{workflow_id}/restart",
                          params={"useLatestDefinitions": "True"})  # fmt: skip
    assert r.status_code == 204, r.text
    body = await get(client, workflow_id)
    assert body["status"] == "RUNNING" and len(body["tasks"]) == 1
    await client.delete(f"/api/workflow/{workflow_id}")
    r = await client.post(f"/api/workflow/{workflow_id}/rerun", json={"workflowInput": {"x": 2}})
    assert r.status_code == 200 and r.text == workflow_id
    assert (await get(client, workflow_id))["input"]["x"] == 2
    r = await client.post(f"/api/workflow/{workflow_id}/rerun", json={})
    assert_envelope(r, 409)
    r = await client.post(f"/api/workflow/{workflow_id}/rerun", json={"taskInput": 5})
    assert_envelope(r, 400)


async def test_skip_and_decide(client: httpx.AsyncClient, names: Names) -> None:
    wf, t1, t2 = names("wf"), names("a"), names("b")
    await register(client, simple_workflow(wf, t1, t2))
    workflow_id = await start(client, wf)
    r = await client.put(f"/api/workflow/{workflow_id}/skiptask/t1", json={})
    assert r.status_code == 200, r.text
    refs = {t["referenceTaskName"]: t["status"] for t in (await get(client, workflow_id))["tasks"]}
    assert refs["t1"] == "SKIPPED"
    r = await client.put(f"/api/workflow/decide/{workflow_id}", json={})
    assert r.status_code == 200
    r = await client.put("/api/workflow/decide/nope")
    assert_envelope(r, 404)


async def test_remove(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf)
    r = await client.delete(f"/api/workflow/{workflow_id}/remove")
    assert_envelope(r, 400, "Cannot archive workflow")
    r = await client.delete(f"/api/workflow/{workflow_id}/remove",
                            params={"archiveWorkflow": "False"})  # fmt: skip
    assert r.status_code == 200
    assert_envelope(await client.get(f"/api/workflow/{workflow_id}"), 404)
    r = await client.get("/api/tasks/queue/size", params={"taskType": t})
    assert r.json() == 0
    other = await start(client, wf)
    r = await client.delete(f"/api/workflow/{other}/terminate-remove", params={"reason": "x"})
    assert r.status_code == 200
    assert_envelope(await client.get(f"/api/workflow/{other}"), 404)


async def test_search_correlated_running(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    ids = [await start(client, wf, correlationId="corr") for _ in range(3)]
    await client.delete(f"/api/workflow/{ids[0]}")

    async def searched() -> JSON | None:
        r = await client.get("/api/workflow/search", params={"query": f"workflowType IN ({wf})"})
        assert r.status_code == 200, r.text
        body: JSON = r.json()
        return body if body["totalHits"] == 3 else None

    body = await eventually(searched, timeout_s=10, what="three hits")
    assert {s["workflowId"] for s in body["results"]} == set(ids)
    assert all(isinstance(s["startTime"], str) for s in body["results"])
    r = await client.get("/api/workflow/search", params={
        "query": f"workflowType='{wf}' AND status IN (RUNNING)", "start": 0, "size": 1,
        "sort": "startTime:ASC", "freeText": "*"})  # fmt: skip
    assert r.json()["totalHits"] == 2 and len(r.json()["results"]) == 1
    r = await client.get("/api/workflow/search-v2", params={"query": f'workflowId="{ids[1]}"'})
    [full] = r.json()["results"]
    assert full["workflowId"] == ids[1] and full["workflowName"] == wf
    r = await client.get("/api/workflow/search", params={"size": 5001})
    assert_envelope(r, 400, "Cannot return more than 5000 workflows")
    r = await client.get("/api/workflow/search-by-tasks", params={"query": f"taskType={t}"})
    assert r.status_code == 200 and r.json()["totalHits"] == 3
    r = await client.get(f"/api/workflow/{wf}/correlated/corr")
    assert {w["workflowId"] for w in r.json()} == set(ids[1:])
    r = await client.get(f"/api/workflow/{wf}/correlated/corr", params={"includeClosed": "true"})
    assert len(r.json()) == 3
    r = await client.post(f"/api/workflow/{wf}/correlated", json=["corr", "none"])
    assert len(r.json()["corr"]) == 2 and r.json()["none"] == []
    r = await client.get(f"/api/workflow/running/{wf}")
    assert sorted(r.json()) == sorted(ids[1:])


async def test_execute_waits_for_completion_or_timeout(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))

    async def worker() -> None:
        task = await poll_one(client, t)
        await complete(client, task, outputData={"result": "hi"})

    job = asyncio.create_task(worker())
    r = await client.post(
        f"/api/workflow/execute/{wf}/1",
        params={"requestId": "req-1", "waitUntilTaskRef": "None", "waitForSeconds": 10},
        json={"input": {"x": 1}},
    )
    await job
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "COMPLETED" and run["output"] == {"result": "hi"}
    assert run["requestId"] == "req-1" and run["signalTimeout"] is False
    assert run["targetWorkflowId"] == run["workflowId"]
    r = await client.post(f"/api/workflow/execute/{wf}/0", params={"waitForSeconds": 1}, json={})
    run = r.json()
    assert run["status"] == "RUNNING" and run["signalTimeout"] is True
    r = await client.post(
        f"/api/workflow/execute/{wf}/1",
        params={"waitUntilTaskRef": "t0", "returnStrategy": "BLOCKING_TASK", "waitForSeconds": 1},
        json={},
    )
    assert r.status_code == 200 and r.json()["responseType"] == "BLOCKING_TASK"
    r = await client.post(f"/api/workflow/execute/{wf}/1", params={"returnStrategy": "X"})
    assert_envelope(r, 400)


async def test_bulk_operations(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    ids = [await start(client, wf) for _ in range(2)]
    r = await client.put("/api/workflow/bulk/pause", json=[*ids, "nope"])
    body = r.json()
    assert r.status_code == 200 and sorted(body["bulkSuccessfulResults"]) == sorted(ids)
    assert set(body["bulkErrorResults"]) == {"nope"}
    r = await client.put("/api/workflow/bulk/resume", json=ids)
    assert sorted(r.json()["bulkSuccessfulResults"]) == sorted(ids)
    r = await client.post("/api/workflow/bulk/search", json=ids, params={"includeTasks": "false"})
    assert {w["workflowId"] for w in r.json()["bulkSuccessfulResults"]} == set(ids)
    r = await client.post("/api/workflow/bulk/terminate", json=ids, params={"reason": "bulk"})
    assert sorted(r.json()["bulkSuccessfulResults"]) == sorted(ids)
    r = await client.post("/api/workflow/bulk/restart", json=ids)
    assert sorted(r.json()["bulkSuccessfulResults"]) == sorted(ids)
    r = await client.post("/api/workflow/bulk/retry", json=ids)
    assert set(r.json()["bulkErrorResults"]) == set(ids)  # running: nothing to retry
    r = await client.request("DELETE", "/api/workflow/bulk/terminate-remove", json=ids)
    assert sorted(r.json()["bulkSuccessfulResults"]) == sorted(ids)
    r = await client.request("DELETE", "/api/workflow/bulk/remove", json=ids)
    assert set(r.json()["bulkErrorResults"]) == set(ids)
    r = await client.put("/api/workflow/bulk/pause", json=["x"] * 1001)
    assert_envelope(r, 400)
    r = await client.put("/api/workflow/bulk/pause", json={"ids": []})
    assert_envelope(r, 400)


async def test_a_workflow_that_starts_itself_stops_at_the_nesting_depth(
    client: httpx.AsyncClient, names: Names
) -> None:
    # Children start apart from their parent's start (each in a task of its own), so the start
    # answers at once; the deepest workflow fails its SUB_WORKFLOW task and the chain fails.
    wf = names("wf")
    sub = {
        "name": "again", "taskReferenceName": "again", "type": "SUB_WORKFLOW",
        "subWorkflowParam": {"name": wf, "version": 1},
    }  # fmt: skip
    await register(client, {"name": wf, "version": 1, "schemaVersion": 2, "tasks": [sub]})
    top = await start(client, wf)
    first = await eventually(
        lambda: _ended(client, top), timeout_s=30, what=f"{top} ended", interval_s=0.05
    )
    assert first["status"] == "FAILED"
    chain, current = [], first
    while True:
        chain.append(current)
        (task,) = current["tasks"]
        if task["status"] == "FAILED_WITH_TERMINAL_ERROR":
            break
        current = await get(client, task["subWorkflowId"])
    limit = 32  # the default of PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH
    assert len(chain) == limit + 1
    assert all(w["status"] == "FAILED" for w in chain)
    assert [w.get("parentWorkflowId") for w in chain[1:]] == [w["workflowId"] for w in chain[:-1]]
    reason = chain[-1]["tasks"][0]["reasonForIncompletion"]
    assert reason == (
        f"Sub workflow {wf} not started: sub-workflows may nest {limit} deep "
        f"(PODIUM_DECIDER_MAX_SUBWORKFLOW_DEPTH)"
    )
    assert reason in first["reasonForIncompletion"]
    r = await client.get("/api/workflow/search", params={"query": f"workflowType IN ({wf})"})
    assert r.json()["totalHits"] == limit + 1


async def _ended(client: httpx.AsyncClient, workflow_id: str) -> JSON | None:
    wf = await get(client, workflow_id)
    return wf if wf["status"] not in ("RUNNING", "PAUSED") else None


async def test_test_run_takes_task_results_from_mocks_and_stores_nothing(
    client: httpx.AsyncClient, names: Names
) -> None:
    ta, tb = names("ta"), names("tb")
    a = {
        "name": ta,
        "taskReferenceName": "a",
        "type": "SIMPLE",
        "inputParameters": {"x": "${workflow.input.x}"},
        "taskDefinition": {"retryCount": 1, "retryDelaySeconds": 0},
    }
    double = {
        "name": "double",
        "taskReferenceName": "double",
        "type": "INLINE",
        "inputParameters": {
            "evaluatorType": "javascript",
            "v": "${a.output.v}",
            "expression": "$.v * 2",
        },
    }
    fork = {
        "name": "fork",
        "taskReferenceName": "fork",
        "type": "FORK_JOIN",
        "forkTasks": [
            [{"name": tb, "taskReferenceName": "b", "type": "SIMPLE"}],
            [{"name": tb, "taskReferenceName": "c", "type": "SIMPLE"}],
        ],
    }
    join = {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["b", "c"]}
    loop = {
        "name": "loop",
        "taskReferenceName": "loop",
        "type": "DO_WHILE",
        "loopCondition": "$.loop['iteration'] < 2",
        "loopOver": [{"name": tb, "taskReferenceName": "d", "type": "SIMPLE"}],
    }
    last = {"name": tb, "taskReferenceName": "last", "type": "SIMPLE"}
    definition = {
        "name": names("wf"),
        "version": 1,
        "schemaVersion": 2,
        "tasks": [a, double, fork, join, loop, last],
        "outputParameters": {
            "doubled": "${double.output.result}",
            "d": "${d.output.n}",
            "last": "${last.output.ok}",
        },
    }
    mocks = {
        "a": [{"status": "FAILED", "output": {}}, {"status": "COMPLETED", "output": {"v": 21}}],
        "b": [{"output": {"from": "b"}}], "c": [{"output": {"from": "c"}}],
        "d": [{"output": {"n": 1}}, {"output": {"n": 2}}],
    }  # fmt: skip
    body = {"workflowDef": definition, "input": {"x": 1}, "taskRefToMockOutput": mocks}
    r = await client.post("/api/workflow/test", json=body)
    assert r.status_code == 200, r.text
    wf = r.json()
    # "last" has no mock: it stays SCHEDULED and the workflow RUNNING, as in Conductor.
    assert wf["status"] == "RUNNING"
    states = [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]]
    assert states == [
        ("a", "FAILED"), ("a", "COMPLETED"), ("double", "COMPLETED"), ("fork", "COMPLETED"),
        ("b", "COMPLETED"), ("c", "COMPLETED"), ("join", "COMPLETED"), ("loop", "COMPLETED"),
        ("d__1", "COMPLETED"), ("d__2", "COMPLETED"), ("last", "SCHEDULED"),
    ]  # fmt: skip
    assert wf["tasks"][1]["inputData"]["x"] == 1 and wf["tasks"][2]["outputData"]["result"] == 42
    assert wf["tasks"][6]["outputData"] == {"b": {"from": "b"}, "c": {"from": "c"}}
    # Nothing was stored or queued.
    assert_envelope(await client.get(f"/api/workflow/{wf['workflowId']}"), 404)
    r = await client.get("/api/tasks/queue/size", params={"taskType": tb})
    assert r.json() == 0
    # With every task mocked, the workflow completes, with its output.
    mocks["last"] = [{"output": {"ok": True}}]
    r = await client.post("/api/workflow/test", json=body | {"taskRefToMockOutput": mocks})
    done = r.json()
    assert done["status"] == "COMPLETED", done
    assert done["output"] == {"doubled": 42, "d": 2, "last": True}
    # A registered definition by name; bad mocks are refused.
    await register(client, definition)
    r = await client.post(
        "/api/workflow/test",
        json={"name": definition["name"], "version": 1, "input": {"x": 1},
              "taskRefToMockOutput": {"a": [{"status": "FAILED_WITH_TERMINAL_ERROR"}]}},
    )  # fmt: skip
    assert r.json()["status"] == "FAILED"
    r = await client.post("/api/workflow/test", json={**body, "taskRefToMockOutput": {"a": [1]}})
    body_400 = assert_envelope(r, 400)
    assert body_400["validationErrors"][0]["path"] == "taskRefToMockOutput.a[0]"
    r = await client.post("/api/workflow/test", json={"name": names("none"), "input": {}})
    assert_envelope(r, 404, "No such workflow defined")
