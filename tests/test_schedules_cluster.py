"""A schedule firing every second, driven by the SDK's SchedulerClient, on a cluster of
separate processes with two sweepers: each due second starts exactly one workflow while one
sweeper is killed (kill -9), while both are down and started again (the missed seconds are
caught up), and not while the schedule is paused.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conductor.client.configuration.configuration import Configuration
from conductor.client.http.models.save_schedule_request import SaveScheduleRequest
from conductor.client.http.models.start_workflow_request import StartWorkflowRequest
from conductor.client.orkes.orkes_scheduler_client import OrkesSchedulerClient

from podium.cluster import ClusterSpec, LocalCluster
from tests.polling import eventually


# The Redis store: the claims' exactly-once on Cassandra (a lightweight transaction per run)
# is covered by the store contract tests (tests/store/test_schedules.py), which keeps the suite
# short.
@pytest.fixture
async def cluster() -> AsyncIterator[LocalCluster]:
    work_dir = Path(tempfile.mkdtemp(prefix="podium-schedules-"))
    spec = ClusterSpec(
        shards=1,
        deciders=1,
        gateways=1,
        sweepers=2,
        gateway_port=0,
        work_dir=work_dir,
        # a downtime of seconds is then well past the grace: only catch-up brings its runs back
        extra_env={"PODIUM_SCHEDULE_MISFIRE_GRACE_MS": "500"},
    )
    c = await LocalCluster(spec, progress=lambda _: None).start()
    try:
        yield c
    finally:
        await c.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


class Runs:
    """The schedule's runs as the SDK's search answers them."""

    def __init__(self, client: OrkesSchedulerClient, name: str) -> None:
        self.client = client
        self.name = name

    async def all(self) -> list[Any]:
        found = await asyncio.to_thread(
            self.client.search_schedule_executions,
            size=1000,
            query=f"scheduleName IN ({self.name})",
        )
        return list(found.results or [])

    async def reach(self, at_ms: int, what: str, timeout_s: float = 20) -> list[Any]:
        """Wait until a run scheduled at or after ``at_ms`` has started its workflow."""

        async def read() -> list[Any]:
            return await self.all()

        return await eventually(
            read,
            until=lambda runs: any(
                r.scheduled_time >= at_ms and r.state == "EXECUTED" for r in runs
            ),
            timeout_s=timeout_s,
            what=what,
            interval_s=0.2,
        )


@pytest.mark.timeout(150)
async def test_every_due_second_starts_one_workflow_across_kills_restarts_and_a_pause(
    cluster: LocalCluster,
) -> None:
    url = cluster.gateway_urls[0]
    client = OrkesSchedulerClient(Configuration(server_api_url=url))
    workflow = f"sched_{uuid.uuid4().hex[:8]}"
    name = f"every_second_{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(timeout=10) as http:
        # the schedule under test, and companions firing every second beside it (no pause):
        # together they make well over 60 runs across the kills and the restart
        companions = {f"{name}_{c}": f"{workflow}_{c}" for c in "bcd"}
        for wf_name in [workflow, *companions.values()]:
            r = await http.post(
                f"{url}/metadata/workflow",
                json={
                    "name": wf_name,
                    "version": 1,
                    "schemaVersion": 2,
                    "ownerEmail": "ops@example.com",
                    "tasks": [
                        {
                            "name": "note",
                            "taskReferenceName": "note",
                            "type": "SET_VARIABLE",
                            "inputParameters": {"at": "${workflow.input._scheduledTime}"},
                        }
                    ],
                },
            )
            assert r.status_code == 200, r.text

        request = SaveScheduleRequest(
            name=name,
            cron_expression="* * * * * *",
            zone_id="Europe/Paris",
            run_catchup_schedule_instances=True,
            start_workflow_request=StartWorkflowRequest(name=workflow, input={"k": 1}),
        )
        await asyncio.to_thread(client.save_schedule, request)
        for companion, wf_name in companions.items():
            await asyncio.to_thread(
                client.save_schedule,
                SaveScheduleRequest(
                    name=companion,
                    cron_expression="* * * * * *",
                    zone_id="UTC",
                    run_catchup_schedule_instances=True,
                    start_workflow_request=StartWorkflowRequest(name=wf_name, input={"k": 2}),
                ),
            )
        saved = await asyncio.to_thread(client.get_schedule, name)
        assert saved is not None and saved.cron_expression == "* * * * * *"
        assert saved.zone_id == "Europe/Paris" and saved.paused is False
        listed = await asyncio.to_thread(client.get_all_schedules, workflow)
        assert [s.name for s in listed] == [name]
        runs = Runs(client, name)

        first = await runs.reach(0, "the first run")
        started_at = min(r.scheduled_time for r in first)
        await runs.reach(started_at + 5000, "five seconds of runs")

        # one sweeper dies: the other goes on alone
        sweepers = cluster.of("sweeper.server")
        assert len(sweepers) == 2
        sweepers[0].kill()
        await runs.reach(_now_ms() + 4000, "runs with one sweeper left")

        # both die; the seconds due while none runs are caught up once they are back
        sweepers[1].kill()
        down_from = _now_ms()
        await asyncio.sleep(3)  # the downtime itself, not a wait for some state
        down_to = _now_ms()
        await asyncio.gather(*(cluster.restart(s) for s in sweepers))
        await runs.reach(_now_ms() + 3000, "runs after the restart")

        # paused: no run; resumed: runs again, and the paused seconds are not caught up
        pause_from = _now_ms()
        await asyncio.to_thread(client.pause_schedule, name)
        paused = await asyncio.to_thread(client.get_schedule, name)
        assert paused is not None and paused.paused is True
        await asyncio.sleep(4)  # the paused time itself
        pause_to = _now_ms()
        await asyncio.to_thread(client.resume_schedule, name)
        await runs.reach(_now_ms() + 3000, "runs after resuming")

        await asyncio.to_thread(client.delete_schedule, name)
        assert await asyncio.to_thread(client.get_all_schedules, workflow) == []
        deleted_at = _now_ms()
        companion_runs = 0
        for companion in companions:
            await asyncio.to_thread(client.delete_schedule, companion)
            done = await eventually(
                Runs(client, companion).all,
                until=lambda rs: bool(rs) and all(r.state == "EXECUTED" for r in rs),
                timeout_s=20,
                what=f"every run of {companion} started",
            )
            seconds = sorted(r.scheduled_time for r in done)
            # each second once, none missing (the downtime's caught up), one workflow each
            assert seconds == list(range(seconds[0], seconds[-1] + 1, 1000)), companion
            assert len({r.workflow_id for r in done}) == len(done)
            companion_runs += len(done)

        every = await eventually(
            runs.all,
            until=lambda rs: all(r.state == "EXECUTED" for r in rs),
            timeout_s=20,
            what="every run started",
        )
        times = sorted(r.scheduled_time for r in every)
        assert len(times) == len(set(times))
        assert all(t % 1000 == 0 for t in times)
        assert max(times) <= deleted_at
        # every second from the first to the last ran, but those of the pause (its edges may
        # go either way: a tick under way when the pause lands still starts its run)
        paused_seconds = set(range((pause_from // 1000 + 2) * 1000, pause_to - 1000, 1000))
        assert paused_seconds and not paused_seconds & set(times)
        expected = set(range(times[0], times[-1] + 1, 1000)) - paused_seconds
        edges = {(pause_from // 1000 + d) * 1000 for d in (0, 1)} | {
            (pause_to // 1000 + d) * 1000 for d in (-1, 0, 1)
        }
        assert expected - edges <= set(times), sorted(expected - set(times))
        assert set(times) <= expected
        # the downtime's seconds were caught up
        assert set(range((down_from // 1000 + 1) * 1000, down_to, 1000)) <= set(times)

        # one workflow per run: distinct ids, and no other workflow of that name
        ids = {r.workflow_id for r in every}
        assert len(ids) == len(every) and None not in ids

        async def workflow_count() -> int:
            r = await http.get(
                f"{url}/workflow/search",
                params={"query": f"workflowType IN ({workflow})", "size": 1},
            )
            return int(r.json()["totalHits"])

        count = await eventually(
            workflow_count, until=lambda n: n >= len(ids), timeout_s=20, what="workflows indexed"
        )
        assert count == len(ids)
        sample = await http.get(f"{url}/workflow/{sorted(ids)[0]}", params={"includeTasks": False})
        assert sample.json()["input"]["k"] == 1
        assert sample.json()["input"]["_scheduledTime"] in times

        # the same runs, newest first, paged
        page = await asyncio.to_thread(
            client.search_schedule_executions,
            start=2,
            size=3,
            query=f"scheduleName IN ({name})",
        )
        assert page.total_hits == len(times)
        assert [r.scheduled_time for r in page.results] == sorted(times, reverse=True)[2:5]

        # the sweepers count the runs they started (since their restart)
        counted = 0.0
        for sweeper in sweepers:
            metrics = await http.get(f"http://127.0.0.1:{sweeper.health_port}/metrics")
            for line in metrics.text.splitlines():
                if line.startswith('podium_sweeper_schedule_runs_total{state="EXECUTED"}'):
                    counted += float(line.split()[-1])
        assert 0 < counted <= len(times) + companion_runs
        assert len(times) + companion_runs >= 60
