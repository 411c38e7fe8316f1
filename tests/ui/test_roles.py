"""The UI offers only what the signed-in key's roles allow (GET /api/auth/me)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from api_gateway.grants import Grant
from api_gateway.settings import AuthSettings
from tests.gateway.conftest import Names, serve_gateway
from tests.stack import Stack

from .api_calls import one_task_workflow_started, signed_in
from .conftest import VIEWPORT, PageErrors, shot, watch

SECRETS = {"adm": "the-admin-secret", "view": "the-viewer-secret", "work": "the-worker-secret"}
GRANTS = {"view": Grant(("viewer",)), "work": Grant(("worker",), ("billing_*",))}
#: The execution page's buttons that change the workflow.
WORKFLOW_ACTIONS = ("#act-pause", "#act-resume", "#act-retry", "#act-restart", "#act-rerun",
                    "#act-terminate")  # fmt: skip


async def sign_in(page: Any, key_id: str) -> None:
    form = page.locator("#login-form")
    await expect(form).to_be_visible()
    await form.locator("input[name=keyId]").fill(key_id)
    await form.locator("input[name=keySecret]").fill(SECRETS[key_id])
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#whoami")).to_contain_text(key_id)


async def sign_out(page: Any) -> None:
    await page.locator("#logout").click()
    await expect(page.locator("#login-form")).to_be_visible()


@pytest.mark.timeout(90)
async def test_a_viewer_sees_no_actions_an_admin_does(
    browser: Any, ui_stack: Stack, names: Names
) -> None:
    auth = AuthSettings(enabled=True, keys=SECRETS, grants=GRANTS)
    async with serve_gateway(ui_stack.gateway_settings(auth=auth)) as gw:
        api = await signed_in(gw.url, "adm", SECRETS["adm"])
        name, wf_id = await one_task_workflow_started(api, names, "ui_roles")

        errors = PageErrors()
        context = await browser.new_context(viewport=VIEWPORT, base_url=gw.url)
        page = await context.new_page()
        watch(page, errors)
        execution = f"/ui/#/execution/{wf_id}"
        try:
            # A viewer: the workflow and its definition, but nothing that changes them.
            await page.goto(execution)
            await sign_in(page, "view")
            await expect(page.locator("#whoami")).to_contain_text("viewer")
            await expect(page.locator("#wf-status")).to_have_attribute("data-status", "RUNNING")
            await expect(page.locator("#act-refresh")).to_be_visible()
            for action in WORKFLOW_ACTIONS:
                await expect(page.locator(action)).to_have_count(0)
            await page.locator("#diagram g.node[data-ref='t0']").click()
            await expect(page.locator("#task-panel")).to_be_visible()
            await expect(page.locator("#complete-task")).to_have_count(0)
            await expect(page.locator("#fail-task")).to_have_count(0)
            await expect(page.locator("#nav [data-nav=executions]")).to_be_visible()
            await expect(page.locator("#nav [data-nav=run]")).to_have_count(0)
            await shot(page, "roles-viewer")
            await page.goto(f"/ui/#/definition/{name}/1?tab=edit")
            await expect(page.locator("#validate-def")).to_be_visible()
            await expect(page.locator("#save-def")).to_have_count(0)
            await expect(page.locator("#def-run")).to_have_count(0)
            await page.goto("/ui/#/definitions")
            await expect(page.locator(f"[data-def='{name}']")).to_be_visible()
            await expect(page.locator("#new-def")).to_have_count(0)
            await page.goto("/ui/#/run")
            await expect(page.locator("#not-allowed")).to_contain_text("may not use this page")
            await sign_out(page)

            # An admin: the same pages offer every action.
            await page.goto(execution)
            await sign_in(page, "adm")
            await expect(page.locator("#whoami")).to_contain_text("admin")
            await expect(page.locator("#act-terminate")).to_be_enabled()
            await expect(page.locator("#act-pause")).to_be_enabled()
            await page.locator("#diagram g.node[data-ref='t0']").click()
            await expect(page.locator("#complete-task")).to_be_visible()
            await expect(page.locator("#nav [data-nav=run]")).to_be_visible()
            await page.goto(f"/ui/#/definition/{name}/1?tab=edit")
            await expect(page.locator("#save-def")).to_be_visible()
            await expect(page.locator("#def-run")).to_be_visible()
            await page.goto("/ui/#/definitions")
            await expect(page.locator("#new-def")).to_be_visible()
            await sign_out(page)

            # A worker key has no page: it works through the API.
            await page.goto(execution)
            await sign_in(page, "work")
            await expect(page.locator("#not-allowed")).to_contain_text("billing_*")
            await expect(page.locator("#nav a")).to_have_count(0)
            await expect(page.locator("#wf-status")).to_have_count(0)
        finally:
            await context.close()
            await api.aclose()
        assert not [e for e in errors.errors if "403" not in e], errors.errors
        assert not errors.dialogs
