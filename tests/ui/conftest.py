"""The web UI in a real browser against a real cluster.

One Chromium (Debian's, driven by Playwright's async API) and one cluster per session: a
redis-server, the queue service, the decider service and a gateway serving the UI, all
in-process on free ports in the test's event loop. Each test opens its own browser context
(fresh storage, 1280x800) and keeps apart from the others by data (fresh names).

Screenshots of the pages go to ``$UI_SCREENSHOTS_DIR`` when it is set (``docs/ui`` to
refresh the documentation's images), else to ``.cache/ui-screenshots``.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from podium.launch.redis import RedisServer
from podium.types import JSON
from tests.gateway.conftest import Names, RunningGateway, serve_gateway
from tests.stack import Stack, running_stack

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 800}


def screenshot_dir() -> Path:
    path = Path(os.environ.get("UI_SCREENSHOTS_DIR") or ROOT / ".cache" / "ui-screenshots")
    if not path.is_absolute():
        path = ROOT / path
    path.mkdir(parents=True, exist_ok=True)
    return path


async def shot(page: Any, name: str) -> None:
    """A PNG of the page as the user sees it (the viewport, 1280x800)."""
    await page.screenshot(path=str(screenshot_dir() / f"{name}.png"))


@pytest.fixture(scope="session")
def ui_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:  # started, and removed with its files at the end
        yield server


@pytest.fixture(scope="session")
async def ui_stack(ui_redis: RedisServer) -> AsyncIterator[Stack]:
    async with running_stack(ui_redis, "podium:ui:") as running:
        yield running


@pytest.fixture(scope="session")
async def ui_gw(ui_stack: Stack) -> AsyncIterator[RunningGateway]:
    """A gateway (auth off) serving the UI and the API."""
    async with serve_gateway(ui_stack.gateway_settings()) as running:
        yield running


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if not CHROMIUM.exists():  # noqa: ASYNC240 (once per session)
        pytest.skip(f"{CHROMIUM} is missing (scripts/test.sh installs Debian's chromium)")
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=10_000)
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
    )
    try:
        yield browser
    finally:
        await browser.close()
        await pw.stop()


class PageErrors:
    """What went wrong in the page: uncaught errors, console errors, dialogs."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.dialogs: list[str] = []

    def assert_clean(self) -> None:
        assert not self.errors, self.errors
        assert not self.dialogs, self.dialogs


@pytest.fixture
async def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
async def page(browser: Any, ui_gw: RunningGateway, page_errors: PageErrors) -> AsyncIterator[Any]:
    """A fresh browser context and page on the UI's origin; fails the test on page errors."""
    context = await browser.new_context(viewport=VIEWPORT, base_url=ui_gw.url)
    pg = await context.new_page()
    watch(pg, page_errors)
    try:
        yield pg
    finally:
        await context.close()
    page_errors.assert_clean()


def watch(pg: Any, errors: PageErrors) -> None:
    pg.on("pageerror", lambda exc: errors.errors.append(f"pageerror: {exc}"))

    def on_console(msg: Any) -> None:
        # A failed fetch the page itself reports (4xx shown in the UI) is not a page error.
        if msg.type == "error" and not re.search(r"status of [45]\d\d", msg.text):
            errors.errors.append(f"console: {msg.text}")

    pg.on("console", on_console)

    async def on_dialog(dialog: Any) -> None:
        errors.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    pg.on("dialog", on_dialog)


@pytest.fixture
def names() -> Names:
    return Names()


@pytest.fixture
def client(ui_gw: RunningGateway) -> httpx.AsyncClient:
    return ui_gw.client


__all__ = ["JSON", "PageErrors", "shot"]
