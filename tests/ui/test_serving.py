"""How the gateway serves the UI (no browser needed): headers, caching, settings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from api_gateway import webui
from api_gateway.settings import GatewaySettings, UiSettings
from podium.errors import ConfigError
from tests.gateway.conftest import RunningGateway, serve_gateway
from tests.stack import Stack


async def test_the_ui_is_served_with_a_content_security_policy(ui_gw: RunningGateway) -> None:
    client = ui_gw.client
    root = await client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    index = await client.get("/ui/")
    assert index.status_code == 200
    assert index.headers["content-type"].startswith("text/html")
    csp = index.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    js = await client.get("/ui/js/main.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    again = await client.get("/ui/js/main.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/ui/nothing.js")).status_code == 404
    assert (await client.get("/ui/../api_gateway/server.py")).status_code == 404
    config = (await client.get("/ui/config.json")).json()
    assert config == {"authEnabled": False, "traceUrl": ""}
    assert (await client.post("/ui/")).status_code == 405
    # index.html preloads every module (no import waterfall): a new module must be listed.
    ui = Path(webui.__file__).with_name("ui")
    modules = {p.relative_to(ui).as_posix() for p in ui.rglob("*.js")}
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/ui/([^"]+)">', index.text))
    assert modules - {"js/main.js"} == preloaded


async def test_the_ui_can_be_turned_off(ui_stack: Stack) -> None:
    async with serve_gateway(ui_stack.gateway_settings(ui=UiSettings(enabled=False))) as gw:
        assert (await gw.client.get("/ui/")).status_code == 404
        assert (await gw.client.get("/ui/js/main.js")).status_code == 404
        assert (await gw.client.get("/api/health")).status_code == 200


def test_the_trace_url_setting_is_checked() -> None:
    env = {"PODIUM_UI_TRACE_URL": "http://jaeger:16686/trace/{traceId}"}
    assert GatewaySettings.from_env(env).ui.trace_url == env["PODIUM_UI_TRACE_URL"]
    assert GatewaySettings.from_env({}).ui == UiSettings(enabled=True, trace_url="")
    assert GatewaySettings.from_env({"PODIUM_UI_ENABLED": "false"}).ui.enabled is False
    for bad in ("http://jaeger:16686/trace/", "javascript:alert('{traceId}')"):
        with pytest.raises(ConfigError, match="PODIUM_UI_TRACE_URL"):
            GatewaySettings.from_env({"PODIUM_UI_TRACE_URL": bad})


def test_every_ui_file_is_package_data() -> None:
    """pyproject's package-data patterns cover every file the gateway serves (a wheel has them)."""
    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["api_gateway"]
    package = root / "api_gateway"
    covered = {p for pattern in patterns for p in package.glob(pattern)}
    served = {p for p in (package / "ui").rglob("*") if p.is_file()}
    assert served and served <= covered, sorted(str(p) for p in served - covered)
