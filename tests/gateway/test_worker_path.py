"""The worker path: poll, batch poll (long poll), update, update-v2, logs, poll data."""

from __future__ import annotations

import asyncio

import httpx

from tests.polling import eventually

from .api_calls import assert_envelope, poll_one, register, simple_workflow, start
from .conftest import Names, RunningGateway


async def test_empty_poll_costs_no_decider_call(
    running_gateway: RunningGateway, names: Names
) -> None:
    client, stats = running_gateway.client, running_gateway.gateway.stats
    before_decider = stats.decider_total
    before_polls = stats.polls
    r = await client.get(
        f"/api/tasks/poll/batch/{names('nothing')}", params={"workerid": "w", "timeout": 0}
    )
    assert r.status_code == 200 and r.json() == []
    r = await client.get(f"/api/tasks/poll/{names('nothing')}", params={"workerid": "w"})
    assert r.status_code == 204 and r.content == b""
    assert stats.polls == before_polls + 2
    assert stats.decider_total == before_decider


async def test_empty_polls_write_poll_data_at_most_once_a_second(
    running_gateway: RunningGateway, names: Names
) -> None:
    task_type = names("idle")
    before = running_gateway.gateway.stats.poll_data_writes
    for _ in range(5):
        r = await running_gateway.client.get(
            f"/api/tasks/poll/batch/{task_type}", params={"workerid": "w9", "timeout": 0}
        )
        assert r.status_code == 200
    assert running_gateway.gateway.stats.poll_data_writes == before + 1
    r = await running_gateway.client.get(
        "/api/tasks/queue/polldata", params={"taskType": task_type}
    )
    assert r.status_code == 200
    [pd] = r.json()
    assert pd["queueName"] == task_type and pd["workerId"] == "w9" and pd["lastPollTime"] > 0
    assert "domain" not in pd  # null fields are left out


async def test_poll_update_completes_workflow(client: httpx.AsyncClient, names: Names) -> None:
    wf, t1, t2 = names("wf"), names("a"), names("b")
    await register(client, simple_workflow(wf, t1, t2))
    workflow_id = await start(client, wf, {"x": 7})
    task = await poll_one(client, t1, worker="worker-1")
    assert task["status"] == "IN_PROGRESS"
    assert task["workflowInstanceId"] == workflow_id
    assert task["inputData"] == {"x": 7}
    assert task["pollCount"] == 1 and task["workerId"] == "worker-1"
    assert task["taskType"] == t1 and task["referenceTaskName"] == "t0"
    r = await client.post(
        "/api/tasks",
        json={
            "workflowInstanceId": workflow_id,
            "taskId": task["taskId"],
            "status": "COMPLETED",
            "outputData": {"result": 1},
            "workerId": "worker-1",
            "extendLease": False,
            "logs": [{"log": "did it", "taskId": task["taskId"], "createdTime": 5}],
        },
    )
    assert r.status_code == 200 and r.text == task["taskId"]
    assert r.headers["content-type"].startswith("text/plain")
    second = await poll_one(client, t2)
    r = await client.post(
        "/api/tasks/update-v2",
        json={
            "workflowInstanceId": workflow_id,
            "taskId": second["taskId"],
            "status": "COMPLETED",
            "outputData": {"result": "done"},
        },
    )
    assert r.status_code == 204
    r = await client.get(f"/api/workflow/{workflow_id}")
    wf_json = r.json()
    assert wf_json["status"] == "COMPLETED"
    assert wf_json["output"] == {"result": "done"}
    r = await client.get(f"/api/tasks/{task['taskId']}/log")
    assert r.status_code == 200
    assert [entry["log"] for entry in r.json()] == ["did it"]


async def test_batch_poll_returns_at_most_count(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("batch")
    await register(client, simple_workflow(wf, t))
    ids = {await start(client, wf) for _ in range(3)}

    got: list[dict[str, object]] = []

    async def take() -> bool:
        r = await client.get(
            f"/api/tasks/poll/batch/{t}", params={"workerid": "w", "count": 2, "timeout": 100}
        )
        batch = r.json()
        assert len(batch) <= 2
        got.extend(batch)
        return len(got) >= 3

    await eventually(take, timeout_s=10, what="three tasks in batches of two")
    assert {task["workflowInstanceId"] for task in got} == ids
    assert len({task["taskId"] for task in got}) == 3


async def test_long_poll_wakes_when_a_task_arrives(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("lp")
    await register(client, simple_workflow(wf, t))
    poll = asyncio.create_task(
        client.get(f"/api/tasks/poll/batch/{t}", params={"count": 1, "timeout": 5000})
    )
    await asyncio.sleep(0)  # let the poll go out first
    workflow_id = await start(client, wf)
    r = await asyncio.wait_for(poll, 10)
    assert r.status_code == 200
    tasks = r.json()
    if not tasks:  # the poll may have returned before the push: poll again
        tasks = [await poll_one(client, t)]
    assert tasks[0]["workflowInstanceId"] == workflow_id


async def test_update_v2_returns_next_task_of_same_type(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf, t = names("wf"), names("v2")
    await register(client, simple_workflow(wf, t))
    first_wf = await start(client, wf)
    second_wf = await start(client, wf)
    task = await poll_one(client, t, worker="wv2")
    other = second_wf if task["workflowInstanceId"] == first_wf else first_wf

    async def update() -> httpx.Response:
        r = await client.post(
            "/api/tasks/update-v2",
            json={
                "workflowInstanceId": task["workflowInstanceId"],
                "taskId": task["taskId"],
                "status": "COMPLETED",
                "workerId": "wv2",
                "outputData": {},
            },
        )
        return r

    r = await update()
    assert r.status_code == 200, r.text
    nxt = r.json()
    assert nxt["workflowInstanceId"] == other
    assert nxt["status"] == "IN_PROGRESS" and nxt["workerId"] == "wv2"


async def test_in_progress_update_with_callback_requeues(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf, t = names("wf"), names("cb")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf)
    task = await poll_one(client, t)
    r = await client.post(
        "/api/tasks/update-v2",
        json={
            "workflowInstanceId": workflow_id,
            "taskId": task["taskId"],
            "status": "IN_PROGRESS",
            "callbackAfterSeconds": 0,
            "outputData": {"p": 1},
        },
    )
    assert r.status_code == 204
    again = await poll_one(client, t)
    assert again["taskId"] == task["taskId"]
    assert again["pollCount"] == 2


async def test_update_of_unknown_ids_is_404_and_validation_is_400(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/api/tasks", json={})
    body = assert_envelope(r, 400)
    messages = {e["message"] for e in body["validationErrors"]}
    assert messages == {"Workflow Id cannot be null or empty", "Task ID cannot be null or empty"}
    r = await client.post(
        "/api/tasks", json={"workflowInstanceId": "nope", "taskId": "t", "status": "COMPLETED"}
    )
    assert_envelope(r, 404, "No such workflow found by id: nope")
    r = await client.post(
        "/api/tasks", json={"workflowInstanceId": "w", "taskId": "t", "status": "DONE"}
    )
    assert_envelope(r, 400)
    r = await client.post(
        "/api/tasks",
        json={"workflowInstanceId": "w", "taskId": "t", "callbackAfterSeconds": "soon"},
    )
    assert_envelope(r, 400)


async def test_poll_limits(running_gateway: RunningGateway) -> None:
    client = running_gateway.client
    r = await client.get("/api/tasks/poll/batch/x", params={"timeout": 5001})
    assert_envelope(r, 400, "Long Poll Timeout value cannot be more than 5 seconds")
    r = await client.get("/api/tasks/poll/batch/x", params={"count": 0})
    assert_envelope(r, 400)
    r = await client.get("/api/tasks/poll/batch/x", params={"count": 1001})
    assert_envelope(r, 400)
    r = await client.get("/api/tasks/poll/batch/x", params={"count": "many"})
    assert_envelope(r, 400)
    r = await client.get("/api/tasks/poll/batch/a b")
    assert_envelope(r, 400)


async def test_logs_raw_text_and_task_reads(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("log")
    await register(client, simple_workflow(wf, t))
    await start(client, wf)
    task = await poll_one(client, t)
    task_id = task["taskId"]
    r = await client.get(f"/api/tasks/{task_id}/log")
    assert r.status_code == 204
    # The SDKs send the line raw (not JSON-quoted) while labelling it application/json.
    r = await client.post(
        f"/api/tasks/{task_id}/log",
        content=b"a [raw] {log} line",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"/api/tasks/{task_id}/log")
    [entry] = r.json()
    assert entry["log"] == "a [raw] {log} line" and entry["taskId"] == task_id
    r = await client.get(f"/api/tasks/{task_id}")
    assert r.status_code == 200 and r.json()["taskId"] == task_id
    r = await client.get("/api/tasks/test999")
    assert_envelope(r, 404, "Task not found for taskId: test999")
    r = await client.post("/api/tasks/test999/log", content=b"x")
    assert_envelope(r, 404)


async def test_queue_sizes_and_requeue(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("q")
    await register(client, simple_workflow(wf, t))
    await start(client, wf)
    await start(client, wf)
    r = await client.get("/api/tasks/queue/sizes", params={"taskType": [t, names("none")]})
    assert r.json() == {t: 2, names("none"): 0}
    r = await client.get("/api/tasks/queue/size", params={"taskType": t})
    assert r.json() == 2
    r = await client.get("/api/tasks/queue/all")
    assert r.json()[t] == 2
    r = await client.get("/api/tasks/queue/all/verbose")
    assert sum(s["size"] for s in r.json()[t].values()) == 2
    r = await client.post(f"/api/tasks/queue/requeue/{t}")
    assert r.status_code == 200 and r.text == "2"
    r = await client.get("/api/tasks/queue/size", params={"taskType": t})
    assert r.json() == 2  # requeue never duplicates a message


async def test_update_by_ref_and_sync(client: httpx.AsyncClient, names: Names) -> None:
    wf, t1, t2 = names("wf"), names("r1"), names("r2")
    await register(client, simple_workflow(wf, t1, t2))
    workflow_id = await start(client, wf)
    r = await client.post(f"/api/tasks/{workflow_id}/t0/COMPLETED", json={"result": 1})
    assert r.status_code == 200 and r.text
    r = await client.get(f"/api/tasks/{r.text}")
    assert r.json()["referenceTaskName"] == "t0" and r.json()["status"] == "COMPLETED"
    r = await client.post(
        f"/api/tasks/{workflow_id}/t1/COMPLETED/sync", json={"result": 2}, params={"workerid": "x"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "COMPLETED" and r.json()["output"] == {"result": 2}
    r = await client.post(f"/api/tasks/{workflow_id}/t1/COMPLETED/sync", json={})
    assert_envelope(r, 404, "Found no running task")
    r = await client.post(f"/api/tasks/{workflow_id}/t1/COMPLETED", json={})
    assert r.status_code == 200 and r.text == ""
    r = await client.post(f"/api/tasks/{workflow_id}/t1/BOGUS", json={})
    assert_envelope(r, 400)


async def test_signal_completes_wait_task(client: httpx.AsyncClient, names: Names) -> None:
    wf = names("wf")
    definition = {
        "name": wf,
        "version": 1,
        "tasks": [{"name": "wait", "taskReferenceName": "w", "type": "WAIT"}],
    }
    await register(client, definition)
    workflow_id = await start(client, wf)
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal/sync", json={"ok": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["targetWorkflowId"] == workflow_id
    assert body["targetWorkflowStatus"] == "COMPLETED" and body["signalTimeout"] is False
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal/sync", json={})
    assert_envelope(r, 404, "Found no blocked task")
    r = await client.post(f"/api/tasks/{workflow_id}/COMPLETED/signal", json={})
    assert r.status_code == 200
    r = await client.post("/api/tasks/unknown-wf/COMPLETED/signal", json={})
    assert_envelope(r, 404)


async def test_task_search(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("s")
    await register(client, simple_workflow(wf, t))
    workflow_id = await start(client, wf)

    async def found() -> list[dict[str, object]]:
        r = await client.get("/api/tasks/search", params={"query": f"taskType='{t}'"})
        assert r.status_code == 200, r.text
        results: list[dict[str, object]] = r.json()["results"]
        return results

    [summary] = await eventually(found, timeout_s=10, what=f"a search hit for {t}")
    assert summary["workflowId"] == workflow_id and isinstance(summary["scheduledTime"], str)
    r = await client.get("/api/tasks/search-v2", params={"query": f"taskType IN ({t},zz)"})
    [full] = r.json()["results"]
    assert full["workflowInstanceId"] == workflow_id
    r = await client.get("/api/tasks/search", params={"query": "taskType ~ x"})
    assert_envelope(r, 400)
