"""``/api/scheduler``: schedules saved, read, paused and tagged; next times; run search; and
the requeue that finishes a run whose sweeper died between claiming and recording it."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from api_gateway.audit import targets_of
from podium.scheduling import idempotency_key
from tests.stack import Stack

from .api_calls import assert_envelope, register, simple_workflow
from .conftest import Names


def schedule_body(name: str, workflow: str, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "cronExpression": "0 0 * * * ?",
        "zoneId": "Europe/Paris",
        "startWorkflowRequest": {"name": workflow, "input": {"a": 1}},
        **fields,
    }


async def test_a_schedule_is_saved_read_listed_paused_tagged_and_deleted(
    client: httpx.AsyncClient, names: Names
) -> None:
    name, workflow = names("sched"), names("wf")
    r = await client.post("/api/scheduler/schedules", json=schedule_body(name, workflow))
    assert r.status_code == 200, r.text
    got = (await client.get(f"/api/scheduler/schedules/{name}")).json()
    assert got["cronExpression"] == "0 0 * * * ?" and got["zoneId"] == "Europe/Paris"
    assert got["paused"] is False and got["runCatchupScheduleInstances"] is False
    assert got["startWorkflowRequest"] == {"name": workflow, "input": {"a": 1}}
    assert got["createTime"] == got["updatedTime"] > 0
    listed = await client.get("/api/scheduler/schedules", params={"workflowName": workflow})
    assert [s["name"] for s in listed.json()] == [name]

    r = await client.put(f"/api/scheduler/schedules/{name}/pause", params={"reason": "upgrade"})
    assert r.status_code == 200
    got = (await client.get(f"/api/scheduler/schedules/{name}")).json()
    assert got["paused"] is True and got["pausedReason"] == "upgrade"
    await client.put(f"/api/scheduler/schedules/{name}/resume")
    got = (await client.get(f"/api/scheduler/schedules/{name}")).json()
    assert got["paused"] is False and "pausedReason" not in got

    tags = [{"key": "team", "value": "ops"}, {"key": "tier", "value": "1"}]
    assert (await client.put(f"/api/scheduler/schedules/{name}/tags", json=tags)).status_code == 200
    r = await client.request(
        "DELETE", f"/api/scheduler/schedules/{name}/tags", json=[{"key": "tier", "value": "1"}]
    )
    assert r.status_code == 200
    r = await client.get(f"/api/scheduler/schedules/{name}/tags")
    assert [(t["key"], t["value"]) for t in r.json()] == [("team", "ops")]

    assert (await client.delete(f"/api/scheduler/schedules/{name}")).status_code == 200
    assert_envelope(await client.get(f"/api/scheduler/schedules/{name}"), 404)
    assert_envelope(await client.delete(f"/api/scheduler/schedules/{name}"), 404)
    assert_envelope(await client.put(f"/api/scheduler/schedules/{name}/pause"), 404)


async def test_pause_all_and_resume_all_answer_what_they_changed(
    client: httpx.AsyncClient, names: Names
) -> None:
    a, b, workflow = names("a"), names("b"), names("wf")
    await client.post("/api/scheduler/schedules", json=schedule_body(a, workflow))
    await client.post("/api/scheduler/schedules", json=schedule_body(b, workflow, paused=True))
    paused = (await client.get("/api/scheduler/admin/pause")).json()["paused"]
    assert a in paused and b not in paused
    resumed = (await client.get("/api/scheduler/admin/resume")).json()["resumed"]
    assert {a, b} <= set(resumed)
    for n in (a, b):
        assert (await client.get(f"/api/scheduler/schedules/{n}")).json()["paused"] is False
        await client.delete(f"/api/scheduler/schedules/{n}")


async def test_bad_schedules_are_refused(client: httpx.AsyncClient, names: Names) -> None:
    name, workflow = names("bad"), names("wf")
    cases: list[tuple[dict[str, object], str | None]] = [
        ({"cronExpression": "* * * * *"}, "6 fields"),
        ({"cronExpression": "61 * * * * *"}, "not in 0-59"),
        ({"zoneId": "Nowhere/Land"}, "unknown time zone"),
        ({"name": "has/slash"}, "name must be"),
        ({"scheduleStartTime": 2000, "scheduleEndTime": 1000}, "before"),
        ({"startWorkflowRequest": {"input": {}}}, None),
    ]
    for fields, message in cases:
        body = {**schedule_body(name, workflow), **fields}
        assert_envelope(await client.post("/api/scheduler/schedules", json=body), 400, message)
    assert_envelope(await client.get(f"/api/scheduler/schedules/{name}"), 404)


async def test_next_few_schedules_in_a_zone_between_start_and_end(
    client: httpx.AsyncClient,
) -> None:
    paris = ZoneInfo("Europe/Paris")
    start = int(datetime(2030, 3, 29, tzinfo=UTC).timestamp() * 1000)
    r = await client.get(
        "/api/scheduler/nextFewSchedules",
        params={"cronExpression": "0 0 12 * * ?", "zoneId": "Europe/Paris",
                "scheduleStartTime": start, "limit": 4},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    noon = [int(datetime(2030, 3, d, 12, tzinfo=paris).timestamp() * 1000) for d in (29, 30, 31)]
    noon.append(int(datetime(2030, 4, 1, 12, tzinfo=paris).timestamp() * 1000))
    assert r.json() == noon
    # Paris moves to summer time on 2030-03-31: noon is 11:00 UTC before and 10:00 after
    assert [datetime.fromtimestamp(t / 1000, UTC).hour for t in r.json()] == [11, 11, 10, 10]
    r = await client.get(
        "/api/scheduler/nextFewSchedules",
        params={"cronExpression": "0 0 12 * * ?", "scheduleStartTime": start,
                "scheduleEndTime": start + 86_400_000 * 2},
    )  # fmt: skip
    assert [datetime.fromtimestamp(t / 1000, UTC).day for t in r.json()] == [29, 30]
    assert_envelope(
        await client.get("/api/scheduler/nextFewSchedules", params={"cronExpression": "x"}), 400
    )


async def test_requeue_finishes_a_run_left_polled_with_the_workflow_it_started(
    client: httpx.AsyncClient, stack: Stack, names: Names
) -> None:
    name, workflow = names("sched"), names("wf")
    await register(client, simple_workflow(workflow, names("task")))
    await client.post("/api/scheduler/schedules", json=schedule_body(name, workflow, paused=True))
    now = int(time.time() * 1000) // 1000 * 1000
    runs = stack.store.schedules

    def run(at: int) -> dict[str, object]:
        return {"scheduleName": name, "scheduledTime": at, "executionTime": at,
                "workflowName": workflow, "state": "POLLED",
                "startWorkflowRequest": {"name": workflow, "input": {}}}  # fmt: skip

    # one sweeper claimed and started a run, then died before recording it; another claimed
    # a run and died before starting it
    assert await runs.claim_run(run(now - 2000), retention_ms=86_400_000)
    started = await client.post(
        "/api/workflow",
        json={"name": workflow, "input": {}, "idempotencyKey": idempotency_key(name, now - 2000),
              "idempotencyStrategy": "RETURN_EXISTING"},
    )  # fmt: skip
    assert started.status_code == 200, started.text
    assert await runs.claim_run(run(now - 1000), retention_ms=86_400_000)

    for _ in range(2):  # a second requeue finds nothing left to do
        await client.get("/api/scheduler/admin/requeue")
    r = await client.get(
        "/api/scheduler/search/executions",
        params={"query": f"scheduleName IN ({name}) AND state IN (EXECUTED)"},
    )
    found = r.json()
    assert found["totalHits"] == 2
    first, second = sorted(found["results"], key=lambda x: x["scheduledTime"])
    assert first["workflowId"] == started.text
    assert second["workflowId"] not in (None, started.text)
    assert (await client.get("/api/scheduler/admin/requeue")).json() == {"requeued": 0}
    # exactly one workflow each
    wf = (await client.get(f"/api/workflow/{second['workflowId']}")).json()
    assert wf["input"]["_scheduledTime"] == now - 1000
    r = await client.get("/api/workflow/search", params={"query": f"workflowType IN ({workflow})"})
    assert r.json()["totalHits"] == 2

    # the search by time and state
    r = await client.get(
        "/api/scheduler/search/executions",
        params={"query": f"scheduleName = {name} AND scheduledTime > {now - 2000}"},
    )
    assert [x["scheduledTime"] for x in r.json()["results"]] == [now - 1000]
    r = await client.get(
        "/api/scheduler/search/executions",
        params={"query": f"scheduleName IN ({name}) AND state IN (FAILED)"},
    )
    assert r.json() == {"totalHits": 0, "results": []}
    assert_envelope(
        await client.get("/api/scheduler/search/executions", params={"query": "owner = me"}), 400
    )
    await client.delete(f"/api/scheduler/schedules/{name}")


def test_audit_records_name_the_schedule() -> None:
    body = b'{"name": "nightly", "cronExpression": "0 0 2 * * ?"}'
    assert targets_of("POST", "/api/scheduler/schedules", {}, body, 200, b"") == [
        {"schedule": "nightly"}
    ]
    route = "/api/scheduler/schedules/{name}/pause"
    assert targets_of("PUT", route, {"name": "nightly"}, b"", 200, b"") == [{"schedule": "nightly"}]


def test_a_search_range_is_cut_to_a_year() -> None:
    from api_gateway.schedules import MAX_SEARCH_DAYS, parse_query

    now = 1_800_000_000_000
    day = 86_400_000
    _, _, from_ms, to_ms = parse_query("scheduledTime > 0", now)
    assert (from_ms, to_ms) == (now - MAX_SEARCH_DAYS * day, now)
    _, _, from_ms, to_ms = parse_query(f"scheduledTime >= {now - day}", now)
    assert (from_ms, to_ms) == (now - day, now)
