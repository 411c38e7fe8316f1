"""docs/gateway.md's table of endpoints agrees with the gateway's routes."""

from __future__ import annotations

import re
from pathlib import Path

from starlette.routing import Route

from api_gateway.server import create_app
from api_gateway.settings import GatewaySettings
from podium.store import StoreConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
STATUSES = ("same", "extended", "not supported")
ROW = re.compile(r"^\| (\S+) \| `([^`]+)` \| ([a-z ]+) \| (.*) \|$")


def _key(method: str, path: str) -> tuple[str, str]:
    # Parameter names and converters may differ ({id} vs {workflowId}, {event:path}).
    return method, re.sub(r"\{[^}]*\}", "{}", path)


def _table() -> dict[tuple[str, str], tuple[str, str]]:
    text = DOC.read_text()
    section = text[text.index("## Endpoints by status") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith("| method"):
            continue
        match = ROW.match(line)
        assert match, f"malformed row: {line}"
        method, path, status, note = match.groups()
        assert status in STATUSES, line
        key = _key(method, path)
        assert key not in rows, f"listed twice: {method} {path}"
        rows[key] = (status, note.strip())
    return rows


def _routes() -> set[tuple[str, str]]:
    settings = GatewaySettings(
        store=StoreConfig(), decider_addresses=["127.0.0.1:1"], queue_addresses=["127.0.0.1:1"]
    )
    out: set[tuple[str, str]] = set()
    for route in create_app(settings).routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                out.add(_key(method, route.path))
    return out


def test_every_route_is_in_the_table_and_every_supported_row_is_a_route() -> None:
    rows, routes = _table(), _routes()
    assert len(routes) > 50
    missing = sorted(r for r in routes if r not in rows)
    assert not missing, f"routes without a row in docs/gateway.md: {missing}"
    refused = sorted(r for r in routes if rows[r][0] == "not supported")
    assert not refused, f"routes marked not supported: {refused}"
    served = {k for k, (status, _) in rows.items() if status != "not supported"}
    phantom = sorted(served - routes)
    assert not phantom, f"rows marked supported without a route: {phantom}"
    unexplained = sorted(k for k, (status, note) in rows.items()
                         if status == "not supported" and not note)  # fmt: skip
    assert not unexplained, f"not supported without a reason: {unexplained}"


def test_conductor_endpoints_named_in_the_issue_are_listed() -> None:
    rows = _table()
    assert rows[_key("POST", "/api/workflow/test")][0] == "same"
    assert rows[_key("POST", "/api/workflow/{id}/resetcallbacks")][0] == "not supported"
    assert rows[_key("GET", "/api/queue/size")][0] == "not supported"
