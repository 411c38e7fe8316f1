"""The OpenAPI document matches the routes, and schemathesis finds no 5xx or contradiction."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err
from starlette.routing import Route

from api_gateway.server import create_app
from api_gateway.settings import GatewaySettings, Limits

from .conftest import RunningGateway

#: Examples per operation (about 80 operations): the default keeps the run near 30 s; set
#: PODIUM_SCHEMATHESIS_EXAMPLES (and PODIUM_SCHEMATHESIS_RANDOM=1) for a longer exploration.
EXAMPLES = int(os.environ.get("PODIUM_SCHEMATHESIS_EXAMPLES", "12"))
DERANDOMIZE = os.environ.get("PODIUM_SCHEMATHESIS_RANDOM", "") != "1"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


async def test_document_lists_every_route(running_gateway: RunningGateway) -> None:
    doc = (await running_gateway.client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    app = create_app(GatewaySettings())
    served = set()
    for route in app.routes:
        assert isinstance(route, Route)
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method, path))
    assert documented == served
    ops = [op for path_ops in doc["paths"].values() for op in path_ops.values()]
    assert len({op["operationId"] for op in ops}) == len(ops)
    for op in ops:
        assert all(code.isdigit() for code in op["responses"])


def _negatable(op: dict[str, Any]) -> bool:
    params = op.get("parameters", [])
    return "requestBody" in op or any(p["in"] == "query" for p in params)


def _run_schemathesis(
    doc: dict[str, Any], base_url: str, mode: GenerationMode, examples: int
) -> list[str]:
    schema = schemathesis.openapi.from_dict(doc)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # the document itself is invalid
        operation = result.ok()
        if mode == GenerationMode.NEGATIVE and not _negatable(operation.definition.raw):
            continue  # only string path segments: hypothesis would search in vain for seconds

        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=DERANDOMIZE,
        )
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

        try:
            check()
        except hypothesis.errors.Unsatisfiable:
            continue  # negative mode: nothing in this operation can be made invalid
        except (Exception, BaseExceptionGroup) as exc:  # report every operation's failure
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


@pytest.mark.timeout(int(os.environ.get("PODIUM_SCHEMATHESIS_TIMEOUT_S", "240")))
async def test_schemathesis_finds_no_server_error_or_contradiction(
    make_gateway: Callable[..., Any],
) -> None:
    # Short long polls keep the run fast; the document states the limits it is served with.
    limits = Limits(max_poll_timeout_ms=20, max_execute_wait_s=1, max_bulk_ids=50)
    async with make_gateway(limits=limits) as g:
        doc = (await g.client.get("/api/openapi.json")).json()
        failures = await asyncio.to_thread(
            _run_schemathesis, doc, g.url, GenerationMode.POSITIVE, EXAMPLES
        )
        # Invalid requests too: they must get a documented 4xx, never a 5xx.
        failures += await asyncio.to_thread(
            _run_schemathesis, doc, g.url, GenerationMode.NEGATIVE, max(1, EXAMPLES // 2)
        )
    assert not failures, "\n\n".join(failures)
