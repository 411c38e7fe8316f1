"""The definition editor, the run form, the queues page, the failures view, task search."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.async_api import expect

from tests.gateway.conftest import Names
from tests.polling import eventually

from .api_calls import (
    complete_next,
    fail_next,
    register,
    simple_workflow,
    start,
    status_of,
    workflow,
)
from .conftest import shot


async def test_the_editor_shows_the_servers_validation_and_saves_a_valid_definition(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name, work = names("ui_edit"), names("t")
    original = simple_workflow(name, work, description="first")
    await register(client, original)
    invalid = {**original, "tasks": [{"name": work, "type": "SIMPLE"}]}  # no taskReferenceName
    answer = await client.post("/api/metadata/workflow/validate", json=invalid)
    assert answer.status_code == 400
    server_says = answer.json()

    await page.goto(f"/ui/#/definition/{name}/1?tab=edit")
    editor = page.locator("#def-editor")
    await expect(editor).to_have_value(re.compile(r'"taskReferenceName": "t0"'))
    await editor.fill(json.dumps(invalid, indent=2))
    await page.locator("#save-def").click()
    errors = page.locator("#editor-errors")
    await expect(errors).to_contain_text("The server refused this definition")
    await expect(errors).to_contain_text(server_says["message"])
    for v in server_says.get("validationErrors", []):
        await expect(errors).to_contain_text(v["message"])
    stored = (await client.get(f"/api/metadata/workflow/{name}", params={"version": 1})).json()
    assert stored["tasks"][0]["taskReferenceName"] == "t0"  # nothing was saved
    await shot(page, "definition-editor-error")

    # Not even JSON: said at once, nothing sent.
    await editor.fill("{ not json")
    await page.locator("#validate-def").click()
    await expect(errors).to_contain_text("This is not valid JSON")

    # A valid change, saved as a new version.
    changed = {**original, "description": "second, from the UI"}
    await editor.fill(json.dumps(changed, indent=2))
    await page.locator("#validate-def").click()
    await expect(errors).to_contain_text("The server accepts this definition")
    await page.locator("#as-new-version").check()
    await page.locator("#save-def").click()
    await expect(page.locator("#def-version")).to_have_value("2")
    v2 = (await client.get(f"/api/metadata/workflow/{name}", params={"version": 2})).json()
    assert v2["description"] == "second, from the UI"

    # The difference between the two versions.
    await page.locator("[data-tab=diff]").click()
    # the description and the version
    await expect(page.locator("#diff-summary")).to_contain_text("2 lines added, 2 removed")
    await expect(page.locator("#diff .add").first).to_contain_text("second, from the UI")
    await shot(page, "definition-diff")
    await page.locator("[data-tab=diagram]").click()
    await expect(page.locator("#def-diagram g.node")).to_have_count(1)
    await shot(page, "definition")


async def test_new_task_definition_and_event_handler(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    task = names("ui_taskdef")
    await page.goto("/ui/#/taskdef")
    text = page.locator("#json-editor")
    body = json.loads(await text.input_value())
    await text.fill(json.dumps({**body, "name": task, "retryCount": -5}))
    await page.locator("#save-json").click()
    await expect(page.locator("#editor-errors")).to_contain_text("refused")
    await text.fill(json.dumps({**body, "name": task, "retryCount": 2}))
    await page.locator("#save-json").click()
    await expect(page.locator("h1")).to_have_text(f"Task definition {task}")
    assert (await client.get(f"/api/metadata/taskdefs/{task}")).json()["retryCount"] == 2
    await page.goto("/ui/#/taskdefs")
    await expect(page.locator(f"a[href='#/taskdef/{task}']")).to_be_visible()
    await shot(page, "task-definitions")

    handler = names("ui_handler")
    await page.goto("/ui/#/event")
    text = page.locator("#json-editor")
    body = json.loads(await text.input_value())
    await text.fill(json.dumps({**body, "name": handler}))
    await page.locator("#save-json").click()
    await expect(page.locator("h1")).to_have_text(f"Event handler {handler}")
    handlers = (await client.get("/api/event")).json()
    assert any(h["name"] == handler for h in handlers)


async def test_run_form_prefills_the_input_and_opens_the_execution(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name, work = names("ui_run"), names("t")
    await register(client, {**simple_workflow(name, work), "inputParameters": ["item", "count"]})
    await page.goto(f"/ui/#/run?name={name}")
    run_input = page.locator("#run-input")
    await expect(run_input).to_have_value(json.dumps({"item": "", "count": ""}, indent=2))
    await shot(page, "run")
    await run_input.fill('{"item": "lamp", "count": 2}')
    await page.locator("#run-correlation").fill(names("corr"))
    await page.locator("#run-submit").click()
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
    wf_id = await page.locator("#wf-id").inner_text()
    wf = await workflow(client, wf_id)
    assert wf["input"] == {"item": "lamp", "count": 2}
    assert wf["correlationId"] == names("corr")
    await page.goto("/ui/#/run")
    await expect(page.locator("#recent-runs")).to_contain_text(wf_id)

    # A bad input is the server's or the parser's message, not a silent failure.
    await page.goto(f"/ui/#/run?name={name}")
    await expect(run_input).not_to_have_value("{}")
    await run_input.fill("[1, 2")
    await page.locator("#run-submit").click()
    await expect(page.locator("#run-errors")).to_contain_text("not valid JSON")


async def test_queues_show_depths_in_flight_and_workers(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name, a, b = names("ui_queues"), names("ui_qa"), names("ui_qb")
    await register(client, simple_workflow(name, a, b))
    for i in range(3):
        await start(client, name, {"x": i})
    await complete_next(client, a)  # one done, which makes a b task; poll data for a
    r = await client.get(f"/api/tasks/poll/batch/{a}", params={"workerid": "slow-worker"})
    assert r.status_code == 200 and len(r.json()) == 1  # leased, not answered: in flight

    await page.goto("/ui/#/queues")
    row = page.locator(f"#queue-table tr[data-queue='{a}']")
    await expect(row.locator("[data-ready]")).to_have_attribute("data-ready", "1")
    await expect(row.locator("[data-inflight]")).to_have_attribute("data-inflight", "1")
    await expect(row).to_contain_text("ui-test-worker")
    await expect(row).to_contain_text("slow-worker")
    await expect(page.locator(f"#queue-table tr[data-queue='{b}'] [data-ready]")).to_have_attribute(
        "data-ready", "1"
    )
    await expect(page.locator("#cluster [data-service=decider]")).to_have_attribute(
        "data-reachable", "1"
    )
    await expect(page.locator("#cluster [data-service=queue-service]")).to_have_attribute(
        "data-reachable", "1"
    )
    await page.locator("#queue-filter").fill(names(""))
    await shot(page, "queues")


async def test_failures_are_grouped_by_workflow_and_reason(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name, work = names("ui_fail"), names("t")
    await register(client, simple_workflow(name, work, task_def={"retryCount": 0}))
    ids = [await start(client, name, {"x": i}) for i in range(3)]
    for i in range(3):
        await fail_next(client, work, reason=f"order {100 + i} was refused by the bank")

    async def all_failed() -> bool:
        return all([await status_of(client, w) == "FAILED" for w in ids])

    await eventually(all_failed, timeout_s=10, what="every workflow failed")
    await page.goto("/ui/#/failures?window=1h")
    row = page.locator(f"#failure-table tr[data-workflow='{name}']")
    await expect(row).to_have_attribute("data-count", "3")
    await expect(row).to_contain_text("order # was refused by the bank")
    await shot(page, "failures")
    await row.locator("a").first.click()
    await expect(page.locator("#results tbody tr")).to_have_count(3)

    # Task search finds the failed tasks of that type.
    await page.goto(f"/ui/#/tasks?name={work}&status=FAILED")
    await expect(page.locator("#task-results tbody tr")).to_have_count(3)
    await shot(page, "task-search")
