"""Nothing a workflow carries runs in the page; with authentication on, sign in first."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import expect

from api_gateway.settings import AuthSettings
from tests.gateway.conftest import Names, serve_gateway
from tests.polling import eventually
from tests.stack import Stack

from .api_calls import (
    complete_next,
    fail_next,
    one_task_workflow_started,
    register,
    signed_in,
    start,
    status_of,
)
from .conftest import VIEWPORT, PageErrors, shot, watch

# Markup that runs script if it ever reaches the DOM as HTML; each sets window.__xss.
IMG = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"
SVG = "<svg/onload=window.__xss=3>"
# Task names become queue names (no whitespace, braces or slashes): markup that would show
# as an element if it were ever parsed as HTML.
MARQUEE = "<marquee>"
PAYLOAD = f'{IMG}{SCRIPT}"><img src=x onerror=window.__xss=4>'


async def assert_nothing_ran(page: Any) -> None:
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("img, script:not([src]), svg[onload], iframe, marquee").count() == 0


async def test_workflow_data_never_runs_as_script(
    page: Any, page_errors: PageErrors, client: httpx.AsyncClient, names: Names
) -> None:
    work = f"{MARQUEE}{names('t')}"
    name = names("ui_xss")
    definition = {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "description": PAYLOAD,
        "tasks": [
            {"name": work, "taskReferenceName": SVG, "type": "SIMPLE",
             "taskDefinition": {"name": work, "retryCount": 0},
             "inputParameters": {"html": "${workflow.input.html}"}},
            {"name": work, "taskReferenceName": f"{IMG}2", "type": "SIMPLE",
             "taskDefinition": {"name": work, "retryCount": 0}},
        ],
    }  # fmt: skip
    await register(client, definition)
    corr = f"{SCRIPT}{names('c')}"
    wf_id = await start(client, name, {"html": PAYLOAD, IMG: SCRIPT}, correlationId=corr)
    await complete_next(client, work, {"out": PAYLOAD, SCRIPT: IMG})
    await fail_next(client, work, reason=f"failed: {PAYLOAD}")

    async def failed() -> bool:
        return await status_of(client, wf_id) == "FAILED"

    await eventually(failed, timeout_s=10, what=f"{wf_id} failed")
    r = await client.post(f"/api/tasks/{(await _task_id(client, wf_id))}/log", content=PAYLOAD)
    assert r.status_code == 200

    # Every page that shows this workflow's data: search, execution (diagram, panel tabs,
    # task list, timeline, JSON), failures, task search, definitions.
    await page.goto(f"/ui/#/executions?name={name}")
    row = page.locator(f"#results tr[data-workflow-id='{wf_id}']")
    await expect(row).to_contain_text(SCRIPT)
    await expect(row).to_contain_text(PAYLOAD)
    await assert_nothing_ran(page)

    await page.goto(f"/ui/#/execution/{wf_id}")
    await expect(page.locator("#wf-reason")).to_contain_text(PAYLOAD)
    await expect(page.locator("#wf-corr")).to_have_text(corr)
    first = page.locator("#diagram g.node").nth(0)
    await expect(first).to_have_attribute("data-ref", SVG)
    await first.click()
    panel = page.locator("#task-panel")
    for tab in ("input", "output", "json", "logs", "definition", "summary"):
        await panel.locator(f"[data-tab={tab}]").click()
        await assert_nothing_ran(page)
    await panel.locator("[data-tab=logs]").click()
    await expect(panel.locator(".logs")).to_contain_text(PAYLOAD)
    await page.locator("#diagram g.node").nth(1).click()
    await panel.locator("[data-tab=summary]").click()
    await expect(page.locator("#task-reason")).to_contain_text(PAYLOAD)
    for tab in ("tasks", "timeline", "summary", "io", "variables", "json"):
        await page.locator(f".tabs [data-tab={tab}]").first.click()
        await assert_nothing_ran(page)
    await expect(page.locator("#exec-main pre.json")).to_contain_text("onerror")

    for hash_ in (
        "#/failures?window=1h",
        f"#/tasks?name={work}",
        f"#/definition/{name}/1",
        f"#/definition/{name}/1?tab=json",
        f"#/definition/{name}/1?tab=edit",
        "#/definitions",
        "#/queues",
    ):
        await page.goto(f"/ui/{hash_}")
        await expect(page.locator("[data-page]")).not_to_have_text("Loading…")
        await page.wait_for_load_state("networkidle")
        await assert_nothing_ran(page)
    await expect(page.locator("#queue-table")).to_contain_text(MARQUEE)
    page_errors.assert_clean()  # no dialog, no error


async def _task_id(client: httpx.AsyncClient, wf_id: str) -> str:
    wf = (await client.get(f"/api/workflow/{wf_id}")).json()
    return str(wf["tasks"][0]["taskId"])


async def test_with_authentication_the_pages_ask_for_credentials(
    browser: Any, ui_stack: Stack, names: Names
) -> None:
    keys = {"ops": "the-secret-key-1"}
    settings = ui_stack.gateway_settings(auth=AuthSettings(enabled=True, keys=keys))
    async with serve_gateway(settings) as gw:
        api = await signed_in(gw.url, "ops", keys["ops"])
        name, wf_id = await one_task_workflow_started(api, names, "ui_auth")

        errors = PageErrors()
        context = await browser.new_context(viewport=VIEWPORT, base_url=gw.url)
        page = await context.new_page()
        watch(page, errors)
        seen: list[tuple[str, str]] = []

        def on_request(req: Any) -> None:
            if "/api/" in req.url:
                seen.append((req.url, req.headers.get("x-authorization", "")))

        page.on("request", on_request)
        try:
            await page.goto(f"/ui/#/executions?name={name}")
            form = page.locator("#login-form")
            await expect(form).to_be_visible()
            await expect(page.locator("#nav")).to_be_hidden()
            await expect(page.locator("#results")).to_have_count(0)  # nothing else shown
            await shot(page, "login")

            await form.locator("input[name=keyId]").fill("ops")
            await form.locator("input[name=keySecret]").fill("wrong-secret")
            await form.locator("button[type=submit]").click()
            await expect(page.locator("#login-error")).to_contain_text(
                "Invalid key id or key secret"
            )
            await expect(page.locator("#results")).to_have_count(0)

            await form.locator("input[name=keySecret]").fill(keys["ops"])
            await form.locator("button[type=submit]").click()
            await expect(page.locator(f"#results tr[data-workflow-id='{wf_id}']")).to_be_visible()
            assert await page.evaluate("sessionStorage.getItem('podium.token')")
            # every call but the sign-in itself carries the token
            calls = [(u, h) for u, h in seen if not u.endswith("/api/token")]
            assert calls and all(h.startswith("v1.") for _, h in calls), calls

            await page.goto(f"/ui/#/execution/{wf_id}")
            await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
            await page.locator("#act-terminate").click()
            await page.locator("dialog.modal button[data-confirm]").click()
            await expect(page.locator("#wf-status")).to_have_attribute("data-status", "TERMINATED")
            assert (await api.get(f"/api/workflow/{wf_id}")).json()["status"] == "TERMINATED"

            # A token that stops working sends the user back to the sign-in form.
            await page.evaluate("sessionStorage.setItem('podium.token', 'v1.bad.1.x')")
            await page.goto("/ui/#/queues")
            await expect(page.locator("#login-form")).to_be_visible()
        finally:
            await context.close()
            await api.aclose()
        assert not [e for e in errors.errors if "401" not in e], errors.errors
        assert not errors.dialogs
