"""Contract: searching workflows and tasks with filters, sort and paging, without a scan."""

from __future__ import annotations

import random
from typing import Any, TypedDict

import pytest

from podium.errors import InvalidArgument
from podium.store import SearchQuery, Store
from podium.store.model import DAY_MS

from .builders import now_ms, task, workflow
from .conftest import MakeStore

HOUR = 3_600_000


class StartWindow(TypedDict):
    """The start-time bounds of a search, passed as keyword arguments of SearchQuery."""

    start_time_from_ms: int
    start_time_to_ms: int


def ids(result: dict[str, Any], key: str = "workflowId") -> list[str]:
    return [r[key] for r in result["results"]]


async def seed(store: Store, ns: str, base: int) -> list[dict[str, Any]]:
    """Ten workflows of two types over three days, each with one task; newest last."""
    ex = store.executions
    made = []
    for i in range(10):
        name = f"alpha_{ns}" if i % 2 == 0 else f"beta_{ns}"
        status = ["RUNNING", "COMPLETED", "FAILED"][i % 3]
        wf = workflow(
            name,
            wid=f"{ns}-{i:02d}",
            status=status,
            create_time=base + i * 7 * HOUR,
            correlation_id=f"corr-{i % 4}-{ns}",
            input={"order": f"ORD-{i:03d}", "note": "Needle" if i in (3, 8) else "hay"},
        )
        t = task(
            wf,
            "step",
            task_type=f"T{i % 2}_{ns}",
            status="COMPLETED" if i % 3 else "IN_PROGRESS",
            outputData={"color": "teal" if i == 5 else "grey"},
        )
        await ex.create_workflow(wf, [t])
        made.append(wf)
    return made


@pytest.fixture
def base() -> int:
    """A test-only stretch of the past: no other test writes there. Each test of the run gets
    a 10-day slot of its own (a seed spans under three days), chosen at random among those
    left, so that a search by time alone never finds another test's workflows (the Cassandra
    keyspace is shared by the run's tests)."""
    slot = random.choice([k for k in range(_SLOTS) if k not in _USED_SLOTS])
    _USED_SLOTS.add(slot)
    return (now_ms() - 400 * DAY_MS) - slot * 10 * DAY_MS


_SLOTS = 300
_USED_SLOTS: set[int] = set()


async def test_filters(store: Store, ns: str, base: int) -> None:
    made = await seed(store, ns, base)
    ex = store.executions
    rng: StartWindow = {"start_time_from_ms": base, "start_time_to_ms": base + 3 * DAY_MS}
    everything = await ex.search_workflows(SearchQuery(size=100, **rng))
    assert everything["totalHits"] == 10
    assert ids(everything) == [w["workflowId"] for w in reversed(made)]  # newest first
    alpha = await ex.search_workflows(SearchQuery(workflow_types=(f"alpha_{ns}",), **rng))
    assert ids(alpha) == [w["workflowId"] for w in reversed(made[0::2])]
    both = await ex.search_workflows(
        SearchQuery(workflow_types=(f"alpha_{ns}", f"beta_{ns}"), statuses=("FAILED",), **rng)
    )
    assert sorted(ids(both)) == [f"{ns}-02", f"{ns}-05", f"{ns}-08"]
    narrow = SearchQuery(start_time_from_ms=base + 14 * HOUR, start_time_to_ms=base + 28 * HOUR)
    assert ids(await ex.search_workflows(narrow)) == [f"{ns}-04", f"{ns}-03", f"{ns}-02"]
    corr = await ex.search_workflows(SearchQuery(correlation_id=f"corr-1-{ns}", **rng))
    assert ids(corr) == [f"{ns}-09", f"{ns}-05", f"{ns}-01"]
    corr_typed = await ex.search_workflows(
        SearchQuery(correlation_id=f"corr-1-{ns}", workflow_types=(f"beta_{ns}",))
    )
    assert ids(corr_typed) == [f"{ns}-09", f"{ns}-05", f"{ns}-01"]
    text = await ex.search_workflows(SearchQuery(free_text="needle", **rng))
    assert ids(text) == [f"{ns}-08", f"{ns}-03"]
    one = await ex.search_workflows(SearchQuery(workflow_id=f"{ns}-07"))
    assert ids(one) == [f"{ns}-07"]
    none = await ex.search_workflows(SearchQuery(free_text="nothing-like-this", **rng))
    assert none == {"totalHits": 0, "results": []}


async def test_sort_and_paging(store: Store, ns: str, base: int) -> None:
    await seed(store, ns, base)
    ex = store.executions
    rng: StartWindow = {"start_time_from_ms": base, "start_time_to_ms": base + 3 * DAY_MS}
    pages = [
        await ex.search_workflows(SearchQuery(start=s, size=4, sort="startTime:ASC", **rng))
        for s in (0, 4, 8)
    ]
    assert [p["totalHits"] for p in pages] == [10, 10, 10]
    assert [ids(p) for p in pages] == [
        [f"{ns}-{i:02d}" for i in range(0, 4)],
        [f"{ns}-{i:02d}" for i in range(4, 8)],
        [f"{ns}-08", f"{ns}-09"],
    ]
    by_status = await ex.search_workflows(
        SearchQuery(sort="status:ASC|workflowId:DESC", size=100, **rng)
    )
    assert [r["status"] for r in by_status["results"]] == ["COMPLETED"] * 3 + ["FAILED"] * 3 + [
        "RUNNING"
    ] * 4
    assert ids(by_status)[:3] == [f"{ns}-07", f"{ns}-04", f"{ns}-01"]
    past_end = await ex.search_workflows(SearchQuery(start=50, size=5, **rng))
    assert past_end == {"totalHits": 10, "results": []}


async def test_summaries_and_full_records(store: Store, ns: str, base: int) -> None:
    made = await seed(store, ns, base)
    ex = store.executions
    q = SearchQuery(workflow_id=made[3]["workflowId"])
    summary = (await ex.search_workflows(q))["results"][0]
    assert summary["workflowType"] == f"beta_{ns}" and summary["version"] == 1
    assert summary["status"] == "RUNNING" and summary["correlationId"] == f"corr-3-{ns}"
    assert summary["startTime"].endswith("Z") and "T" in summary["startTime"]
    assert "Needle" in summary["input"]
    full = (await ex.search_workflows(q, full=True))["results"][0]
    assert full == made[3]


async def test_task_search(store: Store, ns: str, base: int) -> None:
    await seed(store, ns, base)
    ex = store.executions
    rng: StartWindow = {"start_time_from_ms": base, "start_time_to_ms": base + 3 * DAY_MS}
    t1 = await ex.search_tasks(SearchQuery(task_types=(f"T1_{ns}",), **rng))
    assert [r["workflowId"] for r in t1["results"]] == [f"{ns}-{i:02d}" for i in (9, 7, 5, 3, 1)]
    assert t1["results"][0]["taskType"] == f"T1_{ns}"
    running = await ex.search_tasks(SearchQuery(statuses=("IN_PROGRESS",), **rng))
    assert sorted(r["workflowId"] for r in running["results"]) == [
        f"{ns}-{i:02d}" for i in (0, 3, 6, 9)
    ]
    teal = await ex.search_tasks(SearchQuery(free_text="TEAL", **rng))
    assert [r["workflowId"] for r in teal["results"]] == [f"{ns}-05"]
    of_type = await ex.search_tasks(SearchQuery(workflow_types=(f"alpha_{ns}",), **rng))
    assert of_type["totalHits"] == 5
    by_wf = await ex.search_tasks(SearchQuery(workflow_id=f"{ns}-04"), full=True)
    assert [t["referenceTaskName"] for t in by_wf["results"]] == ["step"]
    by_id = await ex.search_tasks(SearchQuery(task_id=by_wf["results"][0]["taskId"]))
    assert by_id["totalHits"] == 1


async def test_default_window_bounds_the_search(make_store: MakeStore, ns: str) -> None:
    store = await make_store(search_window_days=2)
    ex = store.executions
    name = f"w_{ns}"
    recent = workflow(name, create_time=now_ms() - HOUR)
    old = workflow(name, create_time=now_ms() - 5 * DAY_MS)
    for wf in (recent, old):
        await ex.create_workflow(wf, [task(wf, "a")])
    found = await ex.search_workflows(SearchQuery(workflow_types=(name,)))
    assert ids(found) == [recent["workflowId"]]
    wide = SearchQuery(workflow_types=(name,), start_time_from_ms=now_ms() - 6 * DAY_MS)
    assert ids(await ex.search_workflows(wide)) == [recent["workflowId"], old["workflowId"]]


async def test_removed_and_changed_workflows(store: Store, ns: str) -> None:
    ex = store.executions
    name = f"w_{ns}"
    a, b = workflow(name), workflow(name)
    for wf in (a, b):
        await ex.create_workflow(wf, [task(wf, "x")])
    await ex.commit({**a, "status": "COMPLETED"}, [], expected_version=1)
    done = await ex.search_workflows(SearchQuery(workflow_types=(name,), statuses=("COMPLETED",)))
    assert ids(done) == [a["workflowId"]]
    await ex.remove_workflow(b["workflowId"])
    assert ids(await ex.search_workflows(SearchQuery(workflow_types=(name,)))) == [a["workflowId"]]
    assert (await ex.search_tasks(SearchQuery(workflow_types=(name,))))["totalHits"] == 1


async def test_max_scan_caps_the_work(make_store: MakeStore, ns: str, base: int) -> None:
    store = await make_store(search_max_scan=4)
    await seed(store, ns, base)
    rng: StartWindow = {"start_time_from_ms": base, "start_time_to_ms": base + 3 * DAY_MS}
    found = await store.executions.search_workflows(SearchQuery(**rng))
    # Only the newest entries were examined; what comes back is still right for them.
    assert 4 <= found["totalHits"] < 10
    assert ids(found)[0] == f"{ns}-09"


def test_query_checks() -> None:
    with pytest.raises(InvalidArgument):
        SearchQuery(size=5001)
    with pytest.raises(InvalidArgument):
        SearchQuery(start=-1)
    with pytest.raises(InvalidArgument):
        SearchQuery(sort="startTime:SIDEWAYS")
    with pytest.raises(InvalidArgument):
        SearchQuery(sort="bad field:ASC")
    with pytest.raises(InvalidArgument):
        SearchQuery(start_time_from_ms=10, start_time_to_ms=5)
    q = SearchQuery(workflow_types="one", sort="a|b:desc")  # type: ignore[arg-type]
    assert q.workflow_types == ("one",) and q.sort_keys == (("a", False), ("b", True))


async def test_task_search_over_many_workflows(store: Store, ns: str) -> None:
    """More tasks than one record read covers (Cassandra reads 10 a request), each found by
    its type, and by its id alone (whose workflow is looked up first)."""
    ex = store.executions
    ttype = f"T_{ns}"
    flows = [workflow(f"w_{ns}", create_time=now_ms() - 1000 + i) for i in range(25)]
    tasks = [task(wf, "a", task_type=ttype) for wf in flows]
    for wf, t in zip(flows, tasks, strict=True):
        await ex.create_workflow(wf, [t])
    found = await ex.search_tasks(SearchQuery(task_types=(ttype,), size=100), full=True)
    assert found["totalHits"] == 25
    assert sorted(r["taskId"] for r in found["results"]) == sorted(t["taskId"] for t in tasks)
    assert all(r["taskType"] == ttype for r in found["results"])
    by_id = await ex.search_tasks(SearchQuery(task_id=tasks[7]["taskId"]), full=True)
    assert [r["workflowInstanceId"] for r in by_id["results"]] == [flows[7]["workflowId"]]
