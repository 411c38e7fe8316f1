"""Contract: workflows and tasks, their lookups and indexes, poll data and task logs."""

from __future__ import annotations

import asyncio

import pytest

from podium.errors import Conflict, InvalidArgument, LimitExceeded, NotFound
from podium.store import DuplicateTask, SearchQuery, Store, VersionConflict

from .builders import new_id, now_ms, task, workflow
from .conftest import MakeStore


async def test_create_and_read_back(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}", correlation_id="c1", input={"x": [1, 2], "s": "é"})
    t2 = task(wf, "b", seq=2)
    t1 = task(wf, "a", seq=1)
    assert await ex.create_workflow({**wf, "tasks": [t2]}, [t2, t1]) == 1
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1
    got = snap.workflow
    assert [t["taskId"] for t in got["tasks"]] == [t1["taskId"], t2["taskId"]]
    assert {k: v for k, v in got.items() if k != "tasks"} == wf
    bare = await ex.get_workflow(wf["workflowId"], include_tasks=False)
    assert "tasks" not in bare and bare == wf
    assert await ex.get_task(t2["taskId"]) == t2
    assert [t["taskId"] for t in await ex.get_tasks(wf["workflowId"])] == [
        t1["taskId"],
        t2["taskId"],
    ]


async def test_create_twice_conflicts_and_changes_nothing(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [task(wf, "a")])
    other = {**wf, "status": "COMPLETED", "input": {"other": True}}
    intruder = task(wf, "z")
    with pytest.raises(Conflict):
        await ex.create_workflow(other, [intruder])
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1 and snap.workflow["input"] == wf["input"]
    assert [t["referenceTaskName"] for t in snap.workflow["tasks"]] == ["a"]
    with pytest.raises(NotFound):
        await ex.get_task(intruder["taskId"])
    assert await ex.running_workflow_ids(f"wf_{ns}") == [wf["workflowId"]]


async def test_commit_updates_and_adds_tasks(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    a = task(wf, "a")
    await ex.create_workflow(wf, [a])
    a2 = {**a, "status": "COMPLETED", "outputData": {"ok": 1}}
    b = task(wf, "b", seq=2)
    wf2 = {**wf, "updateTime": wf["updateTime"] + 5, "variables": {"v": 1}}
    assert await ex.commit(wf2, [a2, b], expected_version=1) == 2
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 2
    assert snap.workflow["variables"] == {"v": 1}
    assert snap.workflow["tasks"] == [a2, b]
    assert await ex.get_task(b["taskId"]) == b
    # A commit with no tasks still moves the version on.
    assert await ex.commit(wf2, [], expected_version=2) == 3


async def test_stale_commit_is_refused_and_writes_nothing(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [task(wf, "a")])
    await ex.commit(wf, [], expected_version=1)
    late = task(wf, "late")
    with pytest.raises(VersionConflict) as info:
        await ex.commit({**wf, "status": "FAILED"}, [late], expected_version=1)
    assert info.value.data["actual"] == 2 and info.value.data["expected"] == 1
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 2 and snap.workflow["status"] == "RUNNING"
    assert len(snap.workflow["tasks"]) == 1
    with pytest.raises(NotFound):
        await ex.get_task(late["taskId"])
    assert await ex.pending_tasks_by_type("SIMPLE") is not None
    assert late["taskId"] not in {t["taskId"] for t in await ex.pending_tasks_by_type("SIMPLE")}


async def test_unknown_ids_are_not_found(store: Store, ns: str) -> None:
    ex = store.executions
    ghost = workflow(f"wf_{ns}")
    with pytest.raises(NotFound):
        await ex.get_workflow(ghost["workflowId"])
    with pytest.raises(NotFound):
        await ex.get_tasks(ghost["workflowId"])
    with pytest.raises(NotFound):
        await ex.get_task(new_id())
    with pytest.raises(NotFound):
        await ex.remove_workflow(ghost["workflowId"])
    t = task(ghost, "a")
    with pytest.raises(NotFound):
        await ex.commit(ghost, [t], expected_version=1)
    with pytest.raises(NotFound):
        await ex.get_task(t["taskId"])
    with pytest.raises(NotFound):
        await ex.add_task_logs(new_id(), [{"log": "x"}])
    assert await ex.running_workflow_ids(f"wf_{ns}") == []


async def test_duplicate_task_keys_are_refused(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    a = task(wf, "a")
    await ex.create_workflow(wf, [a])
    twin = task(wf, "a")  # same ref, retryCount and iteration; another id
    with pytest.raises(DuplicateTask) as info:
        await ex.commit({**wf, "status": "PAUSED"}, [twin], expected_version=1)
    assert info.value.data["ownerTaskId"] == a["taskId"]
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1 and snap.workflow["status"] == "RUNNING"
    with pytest.raises(NotFound):
        await ex.get_task(twin["taskId"])
    # Two tasks with one key in the same commit.
    c1, c2 = task(wf, "c"), task(wf, "c")
    with pytest.raises(DuplicateTask):
        await ex.commit(wf, [c1, c2], expected_version=1)
    # A retry or a loop iteration is another key.
    retry = task(wf, "a", retry=1)
    loop = task(wf, "a", iteration=1)
    assert await ex.commit(wf, [retry, loop], expected_version=1) == 2
    assert len(await ex.get_tasks(wf["workflowId"])) == 3


async def test_a_key_another_writer_took_is_refused(
    store: Store, other_store: Store, ns: str
) -> None:
    """What one writer knows of a workflow's keys holds for the version its own commit made,
    not after another writer's (another decider replica's) commit."""
    ex, other = store.executions, other_store.executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [task(wf, "a")])
    b = task(wf, "b")
    assert await other.commit(wf, [b], expected_version=1) == 2
    with pytest.raises(DuplicateTask) as info:
        await ex.commit(wf, [task(wf, "b")], expected_version=2)
    assert info.value.data["ownerTaskId"] == b["taskId"]
    assert await ex.commit(wf, [task(wf, "c")], expected_version=2) == 3
    with pytest.raises(DuplicateTask):
        await ex.commit(wf, [task(wf, "c")], expected_version=3)
    with pytest.raises(DuplicateTask):
        await other.commit(wf, [task(wf, "a")], expected_version=3)
    assert sorted(t["referenceTaskName"] for t in await ex.get_tasks(wf["workflowId"])) == [
        "a",
        "b",
        "c",
    ]


async def test_bad_records_are_refused(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [])
    bad_workflows = [
        {k: v for k, v in wf.items() if k != "workflowId"},
        {**wf, "workflowName": "  "},
        {**wf, "status": "SLEEPING"},
        {**wf, "workflowVersion": 0},
        {**wf, "createTime": "yesterday"},
    ]
    for bad in bad_workflows:
        with pytest.raises(InvalidArgument):
            await ex.commit(bad, [], expected_version=1)
    bad_tasks = [
        {**task(wf, "a"), "workflowInstanceId": new_id()},
        {**task(wf, "a"), "status": "DONE"},
        {**task(wf, "a"), "referenceTaskName": ""},
        {**task(wf, "a"), "retryCount": -1},
        {k: v for k, v in task(wf, "a").items() if k != "scheduledTime"},
    ]
    for bad in bad_tasks:
        with pytest.raises(InvalidArgument):
            await ex.commit(wf, [bad], expected_version=1)
    same = task(wf, "a")
    with pytest.raises(InvalidArgument):
        await ex.commit(wf, [same, same], expected_version=1)
    for version in (0, -1, True):
        with pytest.raises(InvalidArgument):
            await ex.commit(wf, [], expected_version=version)
    with pytest.raises(InvalidArgument):
        await ex.create_workflow({**wf, "workflowId": new_id(), "input": {"f": object()}})
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1 and snap.workflow["tasks"] == []


async def test_oversized_records_are_refused(make_store: MakeStore, ns: str) -> None:
    ex = (await make_store(max_record_bytes=4096)).executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [task(wf, "a")])
    big = "x" * 5000
    with pytest.raises(LimitExceeded) as info:
        await ex.commit({**wf, "output": {"big": big}}, [], expected_version=1)
    assert info.value.data["limit"] == 4096
    fat_task = task(wf, "b", outputData={"big": big})
    with pytest.raises(LimitExceeded):
        await ex.commit(wf, [fat_task], expected_version=1)
    with pytest.raises(LimitExceeded):
        await ex.create_workflow(workflow(f"wf_{ns}", input={"big": big}))
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1 and snap.workflow["output"] == {}
    assert len(snap.workflow["tasks"]) == 1
    with pytest.raises(NotFound):
        await ex.get_task(fat_task["taskId"])
    assert await ex.running_workflow_ids(f"wf_{ns}") == [wf["workflowId"]]


async def test_remove_deletes_everything_of_the_workflow(store: Store, ns: str) -> None:
    ex = store.executions
    name, ttype = f"wf_{ns}", f"T_{ns}"
    wf = workflow(name, correlation_id=f"c_{ns}")
    a, b = task(wf, "a", task_type=ttype), task(wf, "b", task_type=ttype, seq=2)
    await ex.create_workflow(wf, [a, b])
    await ex.add_task_logs(a["taskId"], [{"log": "hello"}])
    keep = workflow(name, correlation_id=f"c_{ns}")
    await ex.create_workflow(keep, [task(keep, "a", task_type=ttype)])
    await ex.remove_workflow(wf["workflowId"])
    with pytest.raises(NotFound):
        await ex.get_workflow(wf["workflowId"])
    for t in (a, b):
        with pytest.raises(NotFound):
            await ex.get_task(t["taskId"])
    assert await ex.get_task_logs(a["taskId"]) == []
    assert await ex.running_workflow_ids(name) == [keep["workflowId"]]
    pending = await ex.pending_tasks_by_type(ttype)
    assert [t["workflowInstanceId"] for t in pending] == [keep["workflowId"]]
    found = await ex.workflows_by_correlation_id(name, f"c_{ns}", include_closed=True)
    assert [w["workflowId"] for w in found] == [keep["workflowId"]]
    with pytest.raises(NotFound):
        await ex.remove_workflow(wf["workflowId"])


async def test_pending_tasks_follow_task_status(store: Store, ns: str) -> None:
    ex = store.executions
    ttype = f"T_{ns}"
    wf = workflow(f"wf_{ns}")
    a, b = task(wf, "a", task_type=ttype), task(wf, "b", task_type=ttype, seq=2)
    other = task(wf, "c", task_type=f"U_{ns}", seq=3)
    await ex.create_workflow(wf, [a, b, other])
    ids = {t["taskId"] for t in await ex.pending_tasks_by_type(ttype)}
    assert ids == {a["taskId"], b["taskId"]}
    await ex.commit(wf, [{**a, "status": "IN_PROGRESS"}, {**b, "status": "COMPLETED"}], 1)
    pending = await ex.pending_tasks_by_type(ttype)
    assert [(t["taskId"], t["status"]) for t in pending] == [(a["taskId"], "IN_PROGRESS")]
    assert await ex.pending_tasks_by_type(f"none_{ns}") == []


async def test_pending_tasks_of_many_workflows(store: Store, ns: str) -> None:
    """More pending tasks than one read covers (Cassandra reads 10 a request), from many
    workflows, some of them finished or removed: exactly the unfinished ones."""
    ex = store.executions
    ttype = f"T_{ns}"
    flows = [workflow(f"wf_{ns}") for _ in range(25)]
    tasks = [task(wf, "a", task_type=ttype) for wf in flows]
    await asyncio.gather(*(ex.create_workflow(wf, [t]) for wf, t in zip(flows, tasks, strict=True)))
    done = list(zip(flows, tasks, strict=True))[:5]
    await asyncio.gather(*(ex.commit(wf, [{**t, "status": "COMPLETED"}], 1) for wf, t in done))
    await asyncio.gather(*(ex.remove_workflow(wf["workflowId"]) for wf in flows[5:8]))
    pending = await ex.pending_tasks_by_type(ttype)
    assert sorted(t["taskId"] for t in pending) == sorted(t["taskId"] for t in tasks[8:])
    assert all(t["status"] == "SCHEDULED" for t in pending)


async def test_running_workflows_by_name_and_version(store: Store, ns: str) -> None:
    ex = store.executions
    name = f"wf_{ns}"
    v1, v2 = workflow(name, version=1), workflow(name, version=2)
    done = workflow(name, version=1)
    for wf in (v1, v2, done):
        await ex.create_workflow(wf)
    await ex.commit({**done, "status": "COMPLETED"}, [], 1)
    assert await ex.running_workflow_ids(name) == sorted([v1["workflowId"], v2["workflowId"]])
    assert await ex.running_workflow_ids(name, version=2) == [v2["workflowId"]]
    assert await ex.running_workflow_ids(f"other_{ns}") == []
    # A finished workflow that is resumed (retry, rerun) is running again.
    await ex.commit({**done, "status": "RUNNING"}, [], 2)
    assert done["workflowId"] in await ex.running_workflow_ids(name, version=1)


async def test_running_workflows_many(store: Store, ns: str) -> None:
    """More running workflows than one status read covers (Cassandra reads them in groups of
    100), some of them finished: exactly the running ones, sorted."""
    ex = store.executions
    name = f"wf_{ns}"
    flows = [workflow(name) for _ in range(240)]
    await asyncio.gather(*(ex.create_workflow(wf) for wf in flows))
    finished = flows[::7]
    await asyncio.gather(*(ex.commit({**wf, "status": "COMPLETED"}, [], 1) for wf in finished))
    gone = {wf["workflowId"] for wf in finished}
    expected = sorted(wf["workflowId"] for wf in flows if wf["workflowId"] not in gone)
    assert len(expected) == 205
    assert await ex.running_workflow_ids(name) == expected


async def test_workflows_by_correlation_id(store: Store, ns: str) -> None:
    ex = store.executions
    name, corr = f"wf_{ns}", f"order-{ns}"
    old = workflow(name, correlation_id=corr, create_time=now_ms() - 60_000)
    new = workflow(name, correlation_id=corr)
    finished = workflow(name, correlation_id=corr, create_time=now_ms() - 30_000)
    elsewhere = workflow(f"other_{ns}", correlation_id=corr)
    for wf in (old, new, finished, elsewhere):
        await ex.create_workflow(wf, [task(wf, "a")])
    await ex.commit({**finished, "status": "TERMINATED"}, [], 1)
    running = await ex.workflows_by_correlation_id(name, corr)
    assert [w["workflowId"] for w in running] == [new["workflowId"], old["workflowId"]]
    assert all("tasks" not in w for w in running)
    every = await ex.workflows_by_correlation_id(
        name, corr, include_closed=True, include_tasks=True
    )
    assert [w["workflowId"] for w in every] == [
        new["workflowId"],
        finished["workflowId"],
        old["workflowId"],
    ]
    assert all(len(w["tasks"]) == 1 for w in every)
    assert await ex.workflows_by_correlation_id(name, f"none-{ns}") == []


async def test_workflows_by_correlation_id_many(store: Store, ns: str) -> None:
    """More workflows than one record read covers (Cassandra reads 20 a request), newest
    first, each one its own record."""
    ex = store.executions
    name, corr = f"wf_{ns}", f"order-{ns}"
    base = now_ms() - 100_000
    flows = [
        workflow(name, correlation_id=corr, create_time=base + i, input={"i": i}) for i in range(45)
    ]
    await asyncio.gather(*(ex.create_workflow(wf) for wf in flows))
    found = await ex.workflows_by_correlation_id(name, corr)
    assert [w["workflowId"] for w in found] == [wf["workflowId"] for wf in reversed(flows)]
    assert [w["input"] for w in found] == [{"i": i} for i in reversed(range(45))]


async def test_poll_data_keeps_the_last_poll_per_worker(store: Store, ns: str) -> None:
    ex = store.executions
    q = f"T_{ns}"
    await ex.update_poll_data(q, None, "w1", 1000)
    await ex.update_poll_data(q, None, "w1", 2000)
    await ex.update_poll_data(q, None, "w2", 1500)
    await ex.update_poll_data(q, "blue", "w1", 1700)
    await ex.update_poll_data(f"other_{ns}", None, "w1", 1)
    polls = await ex.get_poll_data(q)
    assert polls == [
        {"queueName": q, "domain": None, "workerId": "w1", "lastPollTime": 2000},
        {"queueName": q, "domain": None, "workerId": "w2", "lastPollTime": 1500},
        {"queueName": q, "domain": "blue", "workerId": "w1", "lastPollTime": 1700},
    ]
    assert await ex.get_poll_data(f"none_{ns}") == []


async def test_task_logs_in_order(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    a, b = task(wf, "a"), task(wf, "b", seq=2)
    await ex.create_workflow(wf, [a, b])
    await ex.add_task_logs(a["taskId"], [{"log": "one", "createdTime": 10}, {"log": "two"}])
    await ex.add_task_logs(a["taskId"], [{"log": "three", "taskId": a["taskId"]}])
    await ex.add_task_logs(b["taskId"], [{"log": "bee"}])
    logs = await ex.get_task_logs(a["taskId"])
    assert [entry["log"] for entry in logs] == ["one", "two", "three"]
    assert logs[0] == {"log": "one", "taskId": a["taskId"], "createdTime": 10}
    assert all(isinstance(entry["createdTime"], int) for entry in logs)
    assert [entry["log"] for entry in await ex.get_task_logs(b["taskId"])] == ["bee"]
    with pytest.raises(InvalidArgument):
        await ex.add_task_logs(a["taskId"], [{"log": "x", "taskId": b["taskId"]}])
    with pytest.raises(InvalidArgument):
        await ex.add_task_logs(a["taskId"], [{"nolog": 1}])
    assert len(await ex.get_task_logs(a["taskId"])) == 3
    assert await ex.get_task_logs(new_id()) == []


async def test_an_id_can_be_used_again_after_removal(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    await ex.create_workflow(wf, [task(wf, "a")])
    await ex.commit(wf, [task(wf, "b", seq=2)], 1)
    await ex.remove_workflow(wf["workflowId"])
    again = {**wf, "input": {"second": True}}
    fresh = task(again, "a")  # the old task's key is free again
    assert await ex.create_workflow(again, [fresh]) == 1
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 1 and snap.workflow["input"] == {"second": True}
    assert [t["taskId"] for t in snap.workflow["tasks"]] == [fresh["taskId"]]


async def test_commit_can_remove_tasks(store: Store, ns: str) -> None:
    """A restart: every task goes, the first one is scheduled afresh under the same key."""
    ex = store.executions
    ttype = f"T_{ns}"
    wf = workflow(f"wf_{ns}")
    a = task(wf, "a", task_type=ttype, status="COMPLETED")
    b = task(wf, "b", task_type=ttype, seq=2, status="IN_PROGRESS")
    keep = task(wf, "c", task_type=ttype, seq=3)
    await ex.create_workflow(wf, [a, b, keep])
    await ex.add_task_logs(a["taskId"], [{"log": "first run"}])
    again = task(wf, "a", task_type=ttype, seq=4)  # same ref, retryCount and iteration as a
    version = await ex.commit(
        {**wf, "variables": {"restarted": True}},
        [again],
        1,
        removed_task_ids=[a["taskId"], b["taskId"]],
    )
    assert version == 2
    tasks = await ex.get_tasks(wf["workflowId"])
    assert [t["taskId"] for t in tasks] == [keep["taskId"], again["taskId"]]
    for gone in (a, b):
        with pytest.raises(NotFound):
            await ex.get_task(gone["taskId"])
    assert await ex.get_task_logs(a["taskId"]) == []
    pending = {t["taskId"] for t in await ex.pending_tasks_by_type(ttype)}
    assert pending == {keep["taskId"], again["taskId"]}
    found = await ex.search_tasks(SearchQuery(task_types=(ttype,)))
    assert {r["taskId"] for r in found["results"]} == {keep["taskId"], again["taskId"]}
    # The freed key of b can be taken later, a's key is held by the new task.
    assert await ex.commit(wf, [task(wf, "b", task_type=ttype, seq=5)], 2) == 3
    with pytest.raises(DuplicateTask):
        await ex.commit(wf, [task(wf, "a", task_type=ttype, seq=6)], 3)


async def test_a_key_a_task_moved_off_is_free_once_the_task_is_removed(
    store: Store, ns: str
) -> None:
    # A DO_WHILE task is rewritten with each new iteration (and a retry in place bumps its
    # retryCount): the keys it held before must not outlive it, or a rerun that replaces it
    # can never write the new loop task.
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    loop = task(wf, "loop", task_type="DO_WHILE", iteration=1)
    await ex.create_workflow(wf, [loop])
    version = await ex.commit(wf, [{**loop, "iteration": 2}], 1)
    version = await ex.commit(wf, [{**loop, "iteration": 2, "retryCount": 1}], version)
    version = await ex.commit(wf, [], version, removed_task_ids=[loop["taskId"]])
    again = task(wf, "loop", task_type="DO_WHILE", iteration=1)
    version = await ex.commit(wf, [again], version)
    version = await ex.commit(wf, [{**again, "iteration": 2}], version)
    assert [t["taskId"] for t in await ex.get_tasks(wf["workflowId"])] == [again["taskId"]]
    # A key still held by a task of the workflow stays refused.
    with pytest.raises(DuplicateTask):
        await ex.commit(wf, [task(wf, "loop", task_type="DO_WHILE", iteration=2)], version)
    # Also when the commit ends the workflow (the whole record is rewritten).
    done = {**wf, "status": "COMPLETED"}
    version = await ex.commit(done, [], version, removed_task_ids=[again["taskId"]])
    third = task(wf, "loop", task_type="DO_WHILE", iteration=1)
    assert await ex.commit(wf, [third], version) == version + 1


async def test_bad_removals_write_nothing(store: Store, ns: str) -> None:
    ex = store.executions
    wf = workflow(f"wf_{ns}")
    a = task(wf, "a")
    await ex.create_workflow(wf, [a])
    other = workflow(f"wf_{ns}")
    stranger = task(other, "s")
    await ex.create_workflow(other, [stranger])
    for bad in ([new_id()], [stranger["taskId"]]):
        with pytest.raises(InvalidArgument):
            await ex.commit({**wf, "status": "PAUSED"}, [], 1, removed_task_ids=bad)
    with pytest.raises(InvalidArgument):
        await ex.commit(wf, [a], 1, removed_task_ids=[a["taskId"]])
    await ex.commit(wf, [], 1)
    with pytest.raises(VersionConflict):
        await ex.commit(wf, [], 1, removed_task_ids=[a["taskId"]])
    snap = await ex.read_workflow(wf["workflowId"])
    assert snap.version == 2 and snap.workflow["status"] == "RUNNING"
    assert [t["taskId"] for t in snap.workflow["tasks"]] == [a["taskId"]]
    assert (await ex.get_task(stranger["taskId"]))["taskId"] == stranger["taskId"]
