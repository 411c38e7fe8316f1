"""The Cassandra writer's record of the uniqueness keys it left."""

from __future__ import annotations

from typing import Any

import pytest

from podium.store import DuplicateTask, Store
from podium.store.cassandra_backend.writes import KeptKeys
from tests.store.builders import task, workflow


def test_keys_are_given_only_for_the_version_they_were_kept_for() -> None:
    kept = KeptKeys(max_keys=10)
    kept.put("w1", 3, {"a": "t1"})
    assert kept.get("w1", 3) == {"a": "t1"}
    assert kept.get("w1", 2) is None and kept.get("w1", 4) is None
    given = kept.get("w1", 3)
    assert given is not None
    given["b"] = "t2"  # a copy: a commit that fails leaves the kept keys as they were
    assert kept.get("w1", 3) == {"a": "t1"}
    kept.drop("w1")
    assert kept.get("w1", 3) is None


def test_the_least_recently_used_go_first_once_the_keys_are_too_many() -> None:
    kept = KeptKeys(max_keys=4)
    kept.put("w1", 1, {"a": "t1", "b": "t2"})
    kept.put("w2", 1, {"a": "t3"})
    assert kept.get("w1", 1) is not None  # w1 used after w2
    kept.put("w3", 1, {"a": "t4", "b": "t5"})  # 5 keys: w2 goes
    assert kept.get("w2", 1) is None
    assert kept.get("w1", 1) is not None and kept.get("w3", 1) is not None
    kept.put("w1", 2, {"a": "t1"})  # replaced, not added: 3 keys
    kept.put("w4", 1, {"a": "t6"})
    assert [kept.get(w, v) is not None for w, v in (("w1", 2), ("w3", 1), ("w4", 1))] == [
        True,
        True,
        True,
    ]
    kept.put("w5", 1, {str(i): "t" for i in range(5)})  # larger than the bound: not kept
    assert kept.get("w5", 1) is None and kept.get("w4", 1) is not None


@pytest.mark.parametrize("backend", ["cassandra"])
async def test_a_commit_on_the_version_its_writer_made_reads_no_keys(store: Store, ns: str) -> None:
    """On the version its own commit made, a writer knows every key: a commit then reads
    nothing of the partition, not even to learn that a removed task's key is free again."""
    ex = store.executions
    writer = ex._writer  # type: ignore[attr-defined]
    selects: list[str] = []
    execute = writer._db.execute

    async def counted(statement: Any, params: Any = None) -> Any:
        query = str(getattr(statement, "query_string", ""))
        if query.lstrip().upper().startswith("SELECT"):
            selects.append(query)
        return await execute(statement, params)

    writer._db.execute = counted
    try:
        wf = workflow(f"wf_{ns}")
        a, b = task(wf, "a"), task(wf, "b")
        await ex.create_workflow(wf, [a, b])
        assert await ex.commit(wf, [{**a, "status": "IN_PROGRESS"}], 1) == 2
        assert selects == []
        # Removing b reads b's record (its lookups go with it); then b's key is free.
        assert await ex.commit(wf, [], 2, removed_task_ids=[b["taskId"]]) == 3
        selects.clear()
        assert await ex.commit(wf, [task(wf, "b", seq=3)], 3) == 4
        assert selects == []
        # A key held by another task: whether that task still holds it is read.
        with pytest.raises(DuplicateTask):
            await ex.commit(wf, [task(wf, "a", seq=4)], 4)
    finally:
        del writer._db.execute


def test_pending_entries_are_kept_with_the_keys_and_counted_in_the_bound() -> None:
    kept = KeptKeys(max_keys=4)
    kept.put("w1", 1, {"a": "t1"}, {"t1": "A"})
    assert kept.pending("w1", 1) == {"t1": "A"}
    assert kept.pending("w1", 2) is None
    given = kept.pending("w1", 1)
    assert given is not None
    given["t2"] = "B"  # a copy
    assert kept.pending("w1", 1) == {"t1": "A"}
    kept.put("w2", 1, {"a": "t3"})  # keys only: its entries are not known
    assert kept.get("w2", 1) == {"a": "t3"} and kept.pending("w2", 1) is None
    kept.put("w3", 1, {"a": "t4"}, {"t4": "A"})  # 2 + 1 + 2 = 5 > 4: w1 goes
    assert kept.get("w1", 1) is None and kept.pending("w1", 1) is None


@pytest.mark.parametrize("backend", ["cassandra"])
async def test_a_task_that_stays_unfinished_gets_no_new_pending_entry(
    store: Store, ns: str
) -> None:
    """The writer wrote a task's pending entry when it created the task: claiming it (still
    unfinished) writes none; finishing it deletes it; reopening it writes it again; and a
    writer that does not know the entries (another replica, a restart) writes them."""
    ex = store.executions
    writer = ex._writer  # type: ignore[attr-defined]
    written: list[str] = []
    write_many = writer._db.write_many

    async def counted(calls: Any) -> Any:
        for statement, _ in calls:
            query = str(getattr(statement, "query_string", ""))
            if "pending_tasks" in query:
                written.append("delete" if query.lstrip().upper().startswith("DELETE") else "put")
        return await write_many(calls)

    writer._db.write_many = counted
    try:
        wf = workflow(f"pending_{ns}")
        a = task(wf, "a", task_type=f"type_{ns}")
        await ex.create_workflow(wf, [a])
        assert written == ["put"]
        written.clear()
        claimed = {**a, "status": "IN_PROGRESS", "workerId": "w"}
        assert await ex.commit(wf, [claimed], 1) == 2
        assert written == []
        [entry] = await ex.pending_tasks_by_type(f"type_{ns}")
        assert entry["taskId"] == a["taskId"] and entry["status"] == "IN_PROGRESS"

        assert await ex.commit(wf, [{**a, "status": "COMPLETED"}], 2) == 3
        assert written == ["delete"]
        assert await ex.pending_tasks_by_type(f"type_{ns}") == []
        written.clear()
        assert await ex.commit(wf, [{**a, "status": "SCHEDULED"}], 3) == 4
        assert written == ["put"]
        [entry] = await ex.pending_tasks_by_type(f"type_{ns}")
        assert entry["status"] == "SCHEDULED"

        written.clear()
        writer.kept.drop(wf["workflowId"])  # as a writer that did not make version 4
        assert await ex.commit(wf, [{**a, "status": "IN_PROGRESS"}], 4) == 5
        assert written == ["put"]
    finally:
        del writer._db.write_many
