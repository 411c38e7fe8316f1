"""update-v2's next task: fetched together for the answers of one queue, read from the update's
answer, and right for each worker and domain."""

from __future__ import annotations

import asyncio

import httpx

from podium.types import JSON
from tests.polling import eventually

from .api_calls import poll_one, register, simple_workflow, start
from .conftest import Names, RunningGateway


async def _queued(client: httpx.AsyncClient, task_type: str, n: int, **params: str) -> None:
    async def size() -> int:
        r = await client.get("/api/tasks/queue/size", params={"taskType": task_type, **params})
        assert r.status_code == 200, r.text
        return int(r.json())

    await eventually(size, until=lambda s: s == n, timeout_s=10, what=f"{n} {task_type} queued")


def _completed(task: JSON, worker: str) -> JSON:
    return {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": "COMPLETED",
        "workerId": worker,
        "outputData": {},
    }


async def test_fetches_that_wait_go_out_in_one_pop_with_a_claim_per_worker(
    running_gateway: RunningGateway, names: Names
) -> None:
    client, gateway = running_gateway.client, running_gateway.gateway
    wf, t = names("wf"), names("merged")
    await register(client, simple_workflow(wf, t))
    started = {await start(client, wf) for _ in range(5)}
    await _queued(client, t, 5)
    claims = gateway.stats.decider_calls.get("claim", 0)
    workers = ["wa", "wa", "wb", "wa", "wb", "wb"]
    # Called in one go: the first fetch leaves at once, the five that wait behind it leave
    # together when it returns, with one claim for wa and one for wb.
    got = await asyncio.gather(*(gateway.next_tasks.take(t, None, w) for w in workers))
    assert gateway.stats.decider_calls["claim"] - claims == 3
    tasks = [task for task in got if task is not None]
    assert len(tasks) == 5 and got.count(None) == 1
    assert {task["workflowInstanceId"] for task in tasks} == started
    for worker, task in zip(workers, got, strict=True):
        if task is not None:
            assert task["workerId"] == worker and task["status"] == "IN_PROGRESS"
    assert got[0] is not None  # the first caller's fetch went alone and found a message
    r = await client.get(f"/api/tasks/{got[0]['taskId']}")
    assert r.json()["status"] == "IN_PROGRESS" and r.json()["workerId"] == "wa"


async def test_an_idle_queue_fetch_costs_one_pop_and_no_claim(
    running_gateway: RunningGateway, names: Names
) -> None:
    gateway = running_gateway.gateway
    claims = gateway.stats.decider_calls.get("claim", 0)
    polls, empty = gateway.stats.polls, gateway.stats.empty_polls
    got = await asyncio.gather(*(gateway.next_tasks.take(names("none"), None, "w") for _ in "ab"))
    assert got == [None, None]
    assert gateway.stats.decider_calls.get("claim", 0) == claims
    assert (gateway.stats.polls - polls, gateway.stats.empty_polls - empty) == (2, 2)
    assert not gateway.next_tasks._queues  # nothing kept for a queue no longer fetched


async def test_update_v2_answers_the_next_task_in_the_tasks_domain(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf, t = names("wf"), names("dom")
    await register(client, simple_workflow(wf, t))
    domain = {"taskToDomain": {t: "blue"}}
    in_blue = [
        (await client.post("/api/workflow", json={"name": wf, **domain})).text for _ in range(2)
    ]
    plain = await start(client, wf)
    await _queued(client, t, 2, domain="blue")
    first = await poll_one(client, t, worker="wd", domain="blue")
    r = await client.post("/api/tasks/update-v2", json=_completed(first, "wd"))
    assert r.status_code == 200, r.text
    nxt = r.json()
    assert nxt["domain"] == "blue" and nxt["workerId"] == "wd"
    assert {first["workflowInstanceId"], nxt["workflowInstanceId"]} == set(in_blue)
    assert plain not in {first["workflowInstanceId"], nxt["workflowInstanceId"]}


async def test_a_repeated_update_v2_still_answers_the_next_task(
    client: httpx.AsyncClient, names: Names
) -> None:
    """The second update of a task changes nothing, so its answer names no task type: the
    gateway reads the task to learn its queue."""
    wf, t = names("wf"), names("again")
    await register(client, simple_workflow(wf, t))
    ids = [await start(client, wf) for _ in range(3)]
    first = await poll_one(client, t, worker="wr")
    r = await client.post("/api/tasks/update-v2", json=_completed(first, "wr"))
    assert r.status_code == 200, r.text
    second = r.json()
    r = await client.post("/api/tasks/update-v2", json=_completed(first, "wr"))
    assert r.status_code == 200, r.text
    third = r.json()
    seen = [first["workflowInstanceId"], second["workflowInstanceId"], third["workflowInstanceId"]]
    assert sorted(seen) == sorted(ids)


async def test_the_update_answer_names_the_changed_tasks_type_and_domain(
    running_gateway: RunningGateway, names: Names
) -> None:
    client, decider = running_gateway.client, running_gateway.gateway.decider
    wf, t = names("wf"), names("named")
    await register(client, simple_workflow(wf, t))
    r = await client.post("/api/workflow", json={"name": wf, "taskToDomain": {t: "red"}})
    assert r.status_code == 200, r.text
    task = await poll_one(client, t, worker="wn", domain="red")
    answer = await decider.update_task(_completed(task, "wn"), return_task_type=True)
    assert answer["accepted"] and (answer["taskType"], answer["domain"]) == (t, "red")
    again = await decider.update_task(_completed(task, "wn"), return_task_type=True)
    assert "taskType" not in again  # the task was already COMPLETED: nothing changed
    plain = await decider.update_task(_completed(task, "wn"))
    assert "taskType" not in plain
