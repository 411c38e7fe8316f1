"""The executions search page and its bulk actions."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.async_api import expect

from tests.gateway.conftest import Names

from .api_calls import register, simple_workflow, start, status_of
from .conftest import shot


async def test_search_finds_a_workflow_by_name_status_and_correlation_id(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name, other = names("ui_search"), names("ui_other")
    await register(client, simple_workflow(name, names("t")))
    await register(client, simple_workflow(other, names("u")))
    wanted = await start(client, name, {"x": 1}, correlationId=names("order"))
    decoy = await start(client, name, {"x": 2}, correlationId=names("other-order"))
    unrelated = await start(client, other, {"x": 3}, correlationId=names("order"))

    await page.goto("/ui/#/executions")
    form = page.locator("#search-form")
    # Workflow name (several may be chosen) and status: the multi-selects.
    await form.locator("details[data-name=names] summary").click()
    await form.locator("details[data-name=names] input.ms-filter").fill(name)
    await form.locator(f"details[data-name=names] input[value='{name}']").check()
    await form.locator("details[data-name=statuses] summary").click()
    await form.locator("details[data-name=statuses] input[value=RUNNING]").check()
    await form.locator("input[name=correlationId]").fill(names("order"))
    await form.locator("#search-btn").click()

    rows = page.locator("#results tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-workflow-id", wanted)
    await expect(page.locator("#results .count")).to_have_text("1\u20131 of 1")
    await expect(page.locator("#status-counts [data-count=RUNNING] b")).to_have_text("1")
    # The filters are in the address: a reload (or a shared link) runs the same search.
    assert f"corr={names('order')}" in page.url and "status=RUNNING" in page.url
    await page.reload()
    await expect(page.locator("#results tbody tr")).to_have_count(1)

    # By name alone: both of that name, none of the other.
    await page.goto(f"/ui/#/executions?name={name}")
    await expect(page.locator("#results tbody tr")).to_have_count(2)
    shown = await page.locator("#results tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.workflowId)"
    )
    assert set(shown) == {wanted, decoy} and unrelated not in shown

    # A status that does not match says so.
    await page.goto(f"/ui/#/executions?name={name}&status=COMPLETED")
    await expect(page.locator("#no-results")).to_be_visible()
    await page.goto(f"/ui/#/executions?name={name},{other}")
    await expect(page.locator("#results tbody tr")).to_have_count(3)
    await shot(page, "search")


async def test_search_says_when_it_cannot_answer(page: Any) -> None:
    await page.goto("/ui/#/executions?from=2024-01-02T00:00&to=2024-01-01T00:00")
    banner = page.locator("#results [role=alert]")
    await expect(banner).to_contain_text("The search cannot answer")
    await expect(banner).to_contain_text("HTTP 400")
    await expect(page.locator("#results table")).to_have_count(0)


async def test_bulk_terminate_acts_on_exactly_the_selected_rows(
    page: Any, client: httpx.AsyncClient, names: Names
) -> None:
    name = names("ui_bulk")
    await register(client, simple_workflow(name, names("t")))
    ids = [await start(client, name, {"x": i}) for i in range(4)]
    chosen, kept = ids[:2], ids[2:]

    await page.goto(f"/ui/#/executions?name={name}")
    await expect(page.locator("#results tbody tr")).to_have_count(4)
    for wid in chosen:
        await page.locator(f"input[data-select='{wid}']").check()
    await expect(page.locator("#bulkbar strong")).to_have_text("2 selected")
    await page.locator("#bulkbar [data-bulk=terminate]").click()
    dialog = page.locator("dialog.modal")
    await expect(dialog).to_be_visible()
    await dialog.locator("input[name=reason]").fill("bulk from the UI")
    await dialog.locator("button[data-confirm]").click()

    for wid in chosen:
        row = page.locator(f"#results tr[data-workflow-id='{wid}']")
        await expect(row.locator("[data-result]")).to_have_attribute("data-result", "ok")
        await expect(row).to_have_attribute("data-status", "TERMINATED")
    for wid in kept:
        await expect(page.locator(f"#results tr[data-workflow-id='{wid}']")).to_have_attribute(
            "data-status", "RUNNING"
        )
    await shot(page, "bulk-actions")
    assert [await status_of(client, w) for w in chosen] == ["TERMINATED"] * 2
    assert [await status_of(client, w) for w in kept] == ["RUNNING"] * 2
    wf = (await client.get(f"/api/workflow/{chosen[0]}")).json()
    assert "bulk from the UI" in wf.get("reasonForIncompletion", "")
