"""The schedules page: the schedules with their next times, pause and resume, and the recent
runs linked to the workflows they started."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
from playwright.async_api import expect

from tests.gateway.conftest import Names
from tests.stack import Stack

from .api_calls import register, simple_workflow, start
from .conftest import shot


async def test_schedules_are_listed_paused_resumed_and_their_runs_link_to_workflows(
    page: Any, client: httpx.AsyncClient, ui_stack: Stack, names: Names
) -> None:
    name, workflow = names("nightly"), names("wf")
    await register(client, simple_workflow(workflow, names("t")))
    r = await client.post(
        "/api/scheduler/schedules",
        json={
            "name": name,
            "cronExpression": "0 0 2 * * ?",
            "zoneId": "Europe/Paris",
            "startWorkflowRequest": {"name": workflow},
        },
    )
    assert r.status_code == 200, r.text
    # two runs as sweepers record them: one started a workflow, one was refused
    wf_id = await start(client, workflow)
    now = int(time.time() * 1000) // 1000 * 1000
    for at, fields in (
        (now - 2000, {"state": "EXECUTED", "workflowId": wf_id}),
        (now - 1000, {"state": "FAILED", "reason": "No such workflow definition"}),
    ):
        run = {"scheduleName": name, "scheduledTime": at, "executionTime": at, **fields}
        assert await ui_stack.store.schedules.claim_run(run, retention_ms=86_400_000)

    await page.goto(f"/ui/#/schedules?schedule={name}")
    row = page.locator(f'tr[data-schedule="{name}"]')
    await expect(row).to_contain_text("0 0 2 * * ?")
    await expect(row).to_contain_text("Europe/Paris")
    await expect(row).to_contain_text(workflow)
    await expect(row.locator("[data-paused]")).to_have_text("active")
    # the next run is at 02:00 in Paris (UTC+1 or +2): 00:00 or 01:00 UTC
    await expect(row).to_contain_text(":00:00")

    runs = page.locator("#schedule-runs")
    await expect(runs).to_contain_text("2 runs")
    executed = page.locator(f'tr[data-run="{name}@{now - 2000}"]')
    await expect(executed.locator("[data-state]")).to_have_text("EXECUTED")
    await expect(executed.locator(f'a[href*="{wf_id}"]')).to_be_visible()
    failed = page.locator(f'tr[data-run="{name}@{now - 1000}"]')
    await expect(failed).to_contain_text("No such workflow definition")
    await shot(page, "schedules")

    await row.locator(f'button[data-toggle="{name}"]').click()
    await expect(row.locator("[data-paused]")).to_have_text("paused")
    stored = (await client.get(f"/api/scheduler/schedules/{name}")).json()
    assert stored["paused"] is True
    await row.locator(f'button[data-toggle="{name}"]').click()
    await expect(row.locator("[data-paused]")).to_have_text("active")
    assert (await client.get(f"/api/scheduler/schedules/{name}")).json()["paused"] is False

    await executed.locator(f'a[href*="{wf_id}"]').click()
    await expect(page).to_have_url(re.compile(f"#/execution/{wf_id}"))
    await client.delete(f"/api/scheduler/schedules/{name}")
