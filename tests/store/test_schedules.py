"""Contract: schedules are stored by name, and each run of one is claimed exactly once."""

from __future__ import annotations

import asyncio
import time

import pytest

from podium.errors import NotFound
from podium.store import Store

DAY_MS = 86_400_000


def schedule(name: str, **fields: object) -> dict[str, object]:
    return {"name": name, "cronExpression": "* * * * * *", "paused": False, **fields}


def run(name: str, at: int, state: str = "POLLED", **fields: object) -> dict[str, object]:
    return {"scheduleName": name, "scheduledTime": at, "state": state, **fields}


async def test_schedules_are_upserted_listed_and_removed(store: Store, ns: str) -> None:
    a, b = f"b-{ns}", f"a-{ns}"
    await store.schedules.put_schedule(schedule(a))
    await store.schedules.put_schedule(schedule(b))
    await store.schedules.put_schedule(schedule(a, paused=True))
    assert (await store.schedules.get_schedule(a))["paused"] is True
    mine = [s["name"] for s in await store.schedules.list_schedules() if ns in str(s["name"])]
    assert mine == [b, a]
    await store.schedules.set_cursor(a, 1234)
    assert await store.schedules.get_cursor(a) == 1234
    await store.schedules.remove_schedule(a)
    with pytest.raises(NotFound):
        await store.schedules.get_schedule(a)
    with pytest.raises(NotFound):
        await store.schedules.remove_schedule(a)
    assert await store.schedules.get_cursor(a) is None


async def test_of_concurrent_claims_of_one_run_exactly_one_wins(
    store: Store, other_store: Store, ns: str
) -> None:
    name, at = f"s-{ns}", int(time.time() * 1000) // 1000 * 1000
    claims = [
        s.schedules.claim_run(run(name, at, by=i), retention_ms=DAY_MS)
        for i, s in enumerate([store, other_store] * 4)
    ]
    won = await asyncio.gather(*claims)
    assert sum(won) == 1
    found = await store.schedules.search_runs([name], from_ms=at, to_ms=at)
    assert found["totalHits"] == 1
    assert found["results"][0]["by"] == won.index(True)


async def test_runs_are_updated_and_searched_newest_first_by_time(store: Store, ns: str) -> None:
    a, b = f"a-{ns}", f"b-{ns}"
    now = int(time.time() * 1000) // 1000 * 1000
    # runs a day apart land in different Cassandra partitions
    times = [now - 2 * DAY_MS, now - DAY_MS, now - 2000, now - 1000, now]
    for at in times:
        assert await store.schedules.claim_run(run(a, at), retention_ms=7 * DAY_MS)
    assert await store.schedules.claim_run(run(b, now - 1500), retention_ms=7 * DAY_MS)
    await store.schedules.update_run(
        run(a, now, "EXECUTED", workflowId="wf-1"), retention_ms=7 * DAY_MS
    )

    page = await store.schedules.search_runs([a], from_ms=now - 3 * DAY_MS, to_ms=now)
    assert page["totalHits"] == 5
    assert [r["scheduledTime"] for r in page["results"]] == sorted(times, reverse=True)
    assert page["results"][0]["state"] == "EXECUTED"
    assert page["results"][0]["workflowId"] == "wf-1"

    both = await store.schedules.search_runs([a, b], from_ms=now - 3000, to_ms=now, size=3)
    assert both["totalHits"] == 4
    assert [(r["scheduleName"], r["scheduledTime"]) for r in both["results"]] == [
        (a, now), (a, now - 1000), (b, now - 1500)
    ]  # fmt: skip
    second = await store.schedules.search_runs(
        [a, b], from_ms=now - 3 * DAY_MS, to_ms=now, start=3, size=2
    )
    assert second["totalHits"] == 6
    assert [r["scheduledTime"] for r in second["results"]] == [now - 2000, now - DAY_MS]
    assert (
        await store.schedules.search_runs([f"none-{ns}"], from_ms=now - 3 * DAY_MS, to_ms=now)
    ) == {
        "totalHits": 0,
        "results": [],
    }
