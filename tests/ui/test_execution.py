"""The execution view: the live diagram, the task panel, and actions done in the UI."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from playwright.async_api import expect

from api_gateway.settings import UiSettings
from podium.store import open_store
from tests.gateway.conftest import Names, serve_gateway
from tests.polling import eventually
from tests.stack import Stack

from .api_calls import (
    complete_next,
    fail_next,
    register,
    simple_workflow,
    start,
    status_of,
    workflow,
)
from .conftest import VIEWPORT, shot


def node(page: Any, ref: str) -> Any:
    return page.locator(f"#diagram g.node[data-ref='{ref}']")


async def test_the_diagram_follows_a_running_workflow_live(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    a, b, c = names("ui_a"), names("ui_b"), names("ui_c")
    name = names("ui_live")
    await register(client, simple_workflow(name, a, b, c))
    wf_id = await start(client, name, {"x": 7}, correlationId=names("live"))

    await page.goto(f"/ui/#/execution/{wf_id}")
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
    await expect(page.locator("#live")).to_have_attribute("data-live", "1")
    await expect(node(page, "t0")).to_have_attribute("data-status", "SCHEDULED")
    await expect(node(page, "t1")).to_have_attribute("data-status", "NONE")
    await expect(page.locator("#legend")).to_contain_text("In progress")

    # A worker completes the tasks one by one; the page follows without a reload.
    await complete_next(client, a, {"result": "first"})
    await expect(node(page, "t0")).to_have_attribute("data-status", "COMPLETED")
    await expect(node(page, "t1")).to_have_attribute("data-status", "SCHEDULED")
    await complete_next(client, b, {"result": "second"})
    await expect(node(page, "t1")).to_have_attribute("data-status", "COMPLETED")
    await expect(node(page, "t2")).to_have_attribute("data-status", "SCHEDULED")
    await shot(page, "execution-running")
    await complete_next(client, c, {"result": "third"})
    await expect(node(page, "t2")).to_have_attribute("data-status", "COMPLETED")
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "COMPLETED")
    # ... and stops following once the workflow has ended.
    await expect(page.locator("#live")).to_have_attribute("data-live", "0")

    # A click on a node opens its task panel with that task's input and output.
    await node(page, "t1").click()
    panel = page.locator("#task-panel")
    await expect(panel).to_have_attribute("data-ref", "t1")
    await panel.locator("[data-tab=input]").click()
    await expect(panel.locator("pre.json")).to_contain_text('"x": 7')
    await panel.locator("[data-tab=output]").click()
    await expect(panel.locator("pre.json")).to_contain_text('"result": "second"')
    await panel.locator("[data-tab=summary]").click()
    await expect(panel).to_contain_text("ui-test-worker")
    assert "task=" in page.url  # the selected task is part of the deep link
    await shot(page, "task-panel")

    # The task list and the timeline show the same tasks.
    await page.locator("[data-tab=tasks]").first.click()
    await expect(page.locator("#task-table tbody tr")).to_have_count(3)
    await page.locator("[data-tab=timeline]").first.click()
    await expect(page.locator("#timeline g.row")).to_have_count(3)


async def test_terminate_and_retry_from_the_ui(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    a, b = names("ui_a"), names("ui_b")
    name = names("ui_actions")
    await register(client, simple_workflow(name, a, b))
    wf_id = await start(client, name, {"x": 1})
    await page.goto(f"/ui/#/execution/{wf_id}")
    await expect(node(page, "t0")).to_have_attribute("data-status", "SCHEDULED")

    await page.locator("#act-terminate").click()
    dialog = page.locator("dialog.modal")
    await dialog.locator("input[name=reason]").fill("stopped in the UI")
    await dialog.locator("button[data-confirm]").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "TERMINATED")
    await expect(page.locator("#wf-reason")).to_contain_text("stopped in the UI")
    assert await status_of(client, wf_id) == "TERMINATED"

    await page.locator("#act-retry").click()
    await page.locator("dialog.modal button[data-confirm]").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
    await expect(node(page, "t0")).to_have_attribute("data-status", "SCHEDULED")
    assert await status_of(client, wf_id) == "RUNNING"
    wf = await workflow(client, wf_id)
    assert [t["status"] for t in wf["tasks"] if t["referenceTaskName"] == "t0"][-1] == "SCHEDULED"

    # An action the server refuses shows the server's answer (resume a running workflow).
    await page.locator("#act-resume").evaluate("b => b.disabled = false")
    await page.locator("#act-resume").click()
    await page.locator("dialog.modal button[data-confirm]").click()
    await expect(page.locator("#action-result [role=alert]")).to_contain_text("Resume failed")
    assert await status_of(client, wf_id) == "RUNNING"

    await page.locator("#act-pause").click()
    await page.locator("dialog.modal button[data-confirm]").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "PAUSED")
    assert await status_of(client, wf_id) == "PAUSED"
    await page.locator("#act-resume").click()
    await page.locator("dialog.modal button[data-confirm]").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")


async def test_rerun_from_a_task_with_edited_input(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    a, b = names("ui_a"), names("ui_b")
    name = names("ui_rerun")
    await register(client, simple_workflow(name, a, b, task_def={"retryCount": 0}))
    wf_id = await start(client, name, {"x": 1})
    await complete_next(client, a)
    await fail_next(client, b, reason="the second step broke")
    await eventually(lambda: _is(client, wf_id, "FAILED"), timeout_s=10, what=f"{wf_id} failed")

    await page.goto(f"/ui/#/execution/{wf_id}")
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "FAILED")
    await expect(node(page, "t1")).to_have_attribute("data-status", "FAILED")
    await node(page, "t1").click()
    await expect(page.locator("#task-reason")).to_contain_text("the second step broke")
    await page.locator("#rerun-from-task").click()
    dialog = page.locator("dialog.modal")
    await dialog.locator("textarea[name=input]").fill('{"x": 99, "note": "edited"}')
    await dialog.locator("button[data-confirm]").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
    await expect(node(page, "t1")).to_have_attribute("data-status", "SCHEDULED")

    wf = await workflow(client, wf_id)
    assert wf["status"] == "RUNNING"
    rerun = [t for t in wf["tasks"] if t["referenceTaskName"] == "t1"][-1]
    assert rerun["status"] == "SCHEDULED" and rerun["inputData"]["x"] == 99
    assert rerun["inputData"]["note"] == "edited"


async def _is(client: httpx.AsyncClient, wf_id: str, status: str) -> bool:
    return await status_of(client, wf_id) == status


async def test_complete_a_wait_task_and_skip_a_task_by_hand(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    a, b = names("ui_a"), names("ui_b")
    name = names("ui_by_hand")
    await register(client, {
        "name": name, "version": 1, "schemaVersion": 2,
        "tasks": [
            {"name": "approval", "taskReferenceName": "approval", "type": "WAIT"},
            {"name": a, "taskReferenceName": "work", "type": "SIMPLE"},
            {"name": b, "taskReferenceName": "optional", "type": "SIMPLE"},
        ],
    })  # fmt: skip
    wf_id = await start(client, name, {})
    await page.goto(f"/ui/#/execution/{wf_id}")
    await expect(node(page, "approval")).to_have_attribute("data-status", "IN_PROGRESS")

    # Skip a task that has not been scheduled yet.
    await node(page, "optional").click()
    await page.locator("#skip-task").click()
    await page.locator("dialog.modal button[data-confirm]").click()
    await expect(page.locator("#action-result")).to_contain_text("Skip optional: done")

    # Complete the WAIT task by hand, with an output.
    await node(page, "approval").click()
    await page.locator("#complete-task").click()
    dialog = page.locator("dialog.modal")
    await dialog.locator("textarea[name=output]").fill('{"approved": true, "by": "ops"}')
    await dialog.locator("button[data-confirm]").click()
    await expect(node(page, "approval")).to_have_attribute("data-status", "COMPLETED")
    await expect(node(page, "work")).to_have_attribute("data-status", "SCHEDULED")
    await complete_next(client, a)
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "COMPLETED")
    await expect(node(page, "optional")).to_have_attribute("data-status", "SKIPPED")

    wf = await workflow(client, wf_id)
    by_ref = {t["referenceTaskName"]: t for t in wf["tasks"]}
    assert by_ref["approval"]["outputData"] == {"approved": True, "by": "ops"}
    assert by_ref["optional"]["status"] == "SKIPPED"


async def test_the_trace_id_links_to_the_configured_trace_viewer(
    browser: Any, ui_stack: Stack, names: Names
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    settings = ui_stack.gateway_settings(
        ui=UiSettings(trace_url="https://traces.example/trace/{traceId}")
    )
    store = await open_store(ui_stack.store_config)
    wf_id = str(uuid.uuid4())
    now = int(time.time() * 1000)
    await store.executions.create_workflow({
        "workflowId": wf_id, "workflowName": names("ui_traced"), "workflowVersion": 1,
        "createTime": now, "startTime": now, "status": "COMPLETED", "endTime": now,
        "traceId": trace_id, "input": {}, "output": {},
        "workflowDefinition": {"name": "x", "version": 1, "tasks": []},
    })  # fmt: skip
    await store.close()
    async with serve_gateway(settings) as gw:
        context = await browser.new_context(viewport=VIEWPORT, base_url=gw.url)
        pg = await context.new_page()
        try:
            await pg.goto(f"/ui/#/execution/{wf_id}")
            link = pg.locator("#trace-link")
            await expect(link).to_have_attribute("href", f"https://traces.example/trace/{trace_id}")
            await expect(link).to_have_attribute("rel", "noopener noreferrer")
        finally:
            await context.close()
    async with serve_gateway(ui_stack.gateway_settings()) as gw:  # no template: the id as text
        context = await browser.new_context(viewport=VIEWPORT, base_url=gw.url)
        pg = await context.new_page()
        try:
            await pg.goto(f"/ui/#/execution/{wf_id}")
            await expect(pg.locator("#trace-id")).to_have_text(trace_id)
            await expect(pg.locator("#trace-link")).to_have_count(0)
        finally:
            await context.close()
