"""The diagram of every structure: fork/join, switch (the taken branch), loop iterations,
dynamic-fork children and sub-workflows (linked both ways)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from playwright.async_api import expect

from podium.types import JSON
from podium.worker import TaskRunner, Worker
from tests.gateway.conftest import Names, RunningGateway
from tests.polling import eventually

from .api_calls import register, start, status_of
from .conftest import shot


def showcase(name: str, child: str, work: str) -> JSON:
    """Every structure the diagram draws, all of its worker tasks of one type ``work``."""

    def simple(ref: str) -> JSON:
        return {"name": work, "taskReferenceName": ref, "type": "SIMPLE",
                "inputParameters": {"item": "${workflow.input.item}"}}  # fmt: skip

    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "inputParameters": ["item", "kind"],
        "tasks": [
            simple("prepare"),
            {"name": "lookups", "taskReferenceName": "lookups", "type": "FORK_JOIN",
             "forkTasks": [[simple("stock")], [simple("rating"), simple("score")]]},
            {"name": "join", "taskReferenceName": "join", "type": "JOIN",
             "joinOn": ["stock", "score"]},
            {"name": "route", "taskReferenceName": "route", "type": "SWITCH",
             "evaluatorType": "value-param", "expression": "kind",
             "inputParameters": {"kind": "${workflow.input.kind}"},
             "decisionCases": {"express": [simple("express_ship")],
                               "standard": [simple("standard_ship")]},
             "defaultCase": [{"name": "noop", "taskReferenceName": "no_ship", "type": "NOOP"}]},
            {"name": "pack_loop", "taskReferenceName": "pack_loop", "type": "DO_WHILE",
             "loopCondition": "if ($.pack_loop['iteration'] < 2) { true; } else { false; }",
             "loopOver": [simple("pack")]},
            {"name": "fanout", "taskReferenceName": "fanout", "type": "FORK_JOIN_DYNAMIC",
             "inputParameters": {"forkTaskName": work,
                                 "forkTaskInputs": [{"n": 1}, {"n": 2}, {"n": 3}]}},
            {"name": "fanout_join", "taskReferenceName": "fanout_join", "type": "JOIN"},
            {"name": "child", "taskReferenceName": "child", "type": "SUB_WORKFLOW",
             "subWorkflowParam": {"name": child, "version": 1}},
        ],
    }  # fmt: skip


async def test_the_diagram_draws_every_structure(
    page: Any, client: httpx.AsyncClient, ui_gw: RunningGateway, names: Names
) -> None:
    work, name, child = names("ui_work"), names("ui_showcase"), names("ui_child")
    await register(client, {"name": child, "version": 1, "schemaVersion": 2,
                            "tasks": [{"name": work, "taskReferenceName": "inner",
                                       "type": "SIMPLE"}]})  # fmt: skip
    await register(client, showcase(name, child, work))

    async def handle(task: JSON) -> JSON:
        return {"done": task["referenceTaskName"]}

    runner = TaskRunner(ui_gw.url, [Worker(work, handle, poll_timeout_ms=200)])
    job = asyncio.create_task(runner.run())
    try:
        wf_id = await start(client, name, {"item": "lamp", "kind": "express"})

        async def done() -> bool:
            return await status_of(client, wf_id) == "COMPLETED"

        await eventually(done, timeout_s=30, what=f"{wf_id} completed")
    finally:
        runner.stop()
        await asyncio.wait_for(job, 10)

    await page.goto(f"/ui/#/execution/{wf_id}")
    diagram = page.locator("#diagram")
    await expect(page.locator("#wf-status")).to_have_attribute("data-status", "COMPLETED")
    # Only what is in view is drawn: the whole diagram, then every node.
    await expect(diagram.locator("svg")).to_have_attribute("data-nodes", "18")
    await diagram.locator("g.node[data-ref='stock']").click()
    await expect(page.locator("#task-panel")).to_have_attribute("data-ref", "stock")
    await shot(page, "execution")
    await page.locator(".diagram-tools button[title=Fit]").click()
    for ref in ("prepare", "stock", "rating", "score", "join", "route", "express_ship",
                "pack_loop", "pack", "fanout", "fanout_join", "child"):  # fmt: skip
        await expect(diagram.locator(f"g.node[data-ref='{ref}']")).to_have_attribute(
            "data-status", "COMPLETED"
        )
    # The switch's taken branch is marked; the others are drawn, dimmed and not run.
    await expect(diagram.locator(".edge-label.taken")).to_have_text("express")
    await expect(diagram.locator("g.node[data-ref='standard_ship']")).to_have_class(
        "node st-NONE not-taken"
    )
    # Two loop iterations; three dynamic-fork children (refs decided at run time).
    await expect(diagram.locator("g.node[data-ref='pack_loop']")).to_have_attribute(
        "data-badge", "2"
    )
    await expect(diagram.locator("g.node[data-ref^='_']")).to_have_count(3)
    await diagram.locator("g.node[data-ref='pack']").click()
    await expect(page.locator("#attempt option")).to_have_count(2)
    await shot(page, "diagram")
    count = len((await client.get(f"/api/workflow/{wf_id}")).json()["tasks"])
    await page.locator(".tabs [data-tab=tasks]").first.click()
    await expect(page.locator("#task-table tbody tr")).to_have_count(count)
    await shot(page, "task-list")
    await page.locator(".tabs [data-tab=timeline]").first.click()
    await expect(page.locator("#timeline g.row")).to_have_count(count)
    await shot(page, "timeline")
    await page.locator(".tabs [data-tab=diagram]").first.click()

    # The sub-workflow is a link, and the child links back to its parent.
    await diagram.locator("g.node[data-ref='child'] .link").click()
    await expect(page.locator("#parent-link")).to_be_visible()
    child_id = page.url.split("/execution/")[1].split("?")[0]
    assert child_id != wf_id
    await expect(page.locator("#diagram g.node[data-ref='inner']")).to_have_attribute(
        "data-status", "COMPLETED"
    )
    await page.locator("#parent-link").click()
    await expect(page.locator("#wf-id")).to_have_text(wf_id)
    await expect(page.locator("#task-panel")).to_have_attribute("data-ref", "child")
