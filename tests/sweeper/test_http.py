"""HTTP system tasks against a local test server, under the outbound-host policy."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from podium.types import JSON
from sweeper.http_task import HttpPolicy
from sweeper.server import Sweeper
from tests.polling import eventually
from tests.stack import Stack

from .conftest import SweeperFactory


@pytest.fixture(scope="module")
async def http_server() -> AsyncIterator[tuple[str, dict[str, int]]]:
    calls: dict[str, int] = {}

    async def ok(request: Request) -> Response:
        calls["ok"] = calls.get("ok", 0) + 1
        body = await request.body()
        return JSONResponse({"hello": "world", "echo": body.decode()})

    async def flaky(request: Request) -> Response:
        key = request.query_params.get("key", "")
        calls[key] = calls.get(key, 0) + 1
        if calls[key] == 1:
            return PlainTextResponse("try again", status_code=503)
        return JSONResponse({"attempt": calls[key]})

    async def big(request: Request) -> Response:
        return PlainTextResponse("x" * 10_000)

    app = Starlette(
        routes=[
            Route("/ok", ok, methods=["GET", "POST"]),
            Route("/flaky", flaky),
            Route("/big", big),
        ]
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", loop="none")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            task.result()
            raise RuntimeError("the HTTP endpoint stopped while starting")
        return server.started

    await eventually(started, timeout_s=10, what="the HTTP endpoint started", interval_s=0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", calls
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def http_wf(name: str, uri: str, method: str = "GET", body: Any = None) -> JSON:
    request: JSON = {"uri": uri, "method": method}
    if body is not None:
        request["body"] = body
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": f"{name}_http",
                "taskReferenceName": "call",
                "type": "HTTP",
                "inputParameters": {"http_request": request},
            }
        ],
    }


async def test_an_http_task_succeeds(
    stack: Stack, sweeper: Sweeper, http_server: tuple[str, dict[str, int]], name: str
) -> None:
    base, _ = http_server
    wf_id = await stack.start(http_wf(name, f"{base}/ok", "POST", {"a": 1}))
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "COMPLETED"
    response = wf["tasks"][0]["outputData"]["response"]
    assert response["statusCode"] == 200
    assert response["body"] == {"hello": "world", "echo": '{"a": 1}'}


async def test_a_5xx_fails_the_attempt_and_the_retry_succeeds(
    stack: Stack, sweeper: Sweeper, http_server: tuple[str, dict[str, int]], name: str
) -> None:
    base, calls = http_server
    await stack.store.metadata.create_task_def(
        {
            "name": f"{name}_http",
            "retryCount": 2,
            "retryDelaySeconds": 0,
            "responseTimeoutSeconds": 30,
            "ownerEmail": "a@b.c",
        }
    )
    wf_id = await stack.start(http_wf(name, f"{base}/flaky?key={name}"))
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "COMPLETED"
    first, second = wf["tasks"]
    assert first["status"] == "FAILED" and first["reasonForIncompletion"] == "try again"
    assert first["outputData"]["response"]["statusCode"] == 503
    assert second["status"] == "COMPLETED" and second["retryCount"] == 1
    assert calls[name] == 2


async def test_a_denied_host_is_refused_with_a_clear_reason(
    stack: Stack,
    make_sweeper: SweeperFactory,
    http_server: tuple[str, dict[str, int]],
    name: str,
) -> None:
    await make_sweeper(http=HttpPolicy.build())  # the default policy: loopback is denied
    base, calls = http_server
    before = calls.get("ok", 0)
    wf_id = await stack.start(http_wf(name, f"{base}/ok"))
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "FAILED"
    (task,) = wf["tasks"]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert "loopback address 127.0.0.1" in task["reasonForIncompletion"]
    assert "PODIUM_HTTP_ALLOW_HOSTS" in task["reasonForIncompletion"]
    assert calls.get("ok", 0) == before  # the request was never sent


async def test_responses_over_the_size_limit_fail(
    stack: Stack,
    make_sweeper: SweeperFactory,
    http_server: tuple[str, dict[str, int]],
    name: str,
) -> None:
    await make_sweeper(http=HttpPolicy.build(allow=["127.0.0.1"], max_response_bytes=1000))
    base, _ = http_server
    wf_id = await stack.start(http_wf(name, f"{base}/big"))
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "FAILED"
    assert "larger than 1000 bytes" in wf["tasks"][0]["reasonForIncompletion"]


async def test_http_tasks_in_an_isolation_group_or_a_domain_run(
    stack: Stack,
    make_sweeper: SweeperFactory,
    http_server: tuple[str, dict[str, int]],
    name: str,
) -> None:
    await make_sweeper(http=HttpPolicy.build(allow=["127.0.0.1"]), http_queues_refresh_s=0.1)
    base, _ = http_server
    await stack.store.metadata.create_task_def(
        {"name": f"{name}_http", "isolationGroupId": "iso1", "ownerEmail": "a@b.c"}
    )
    isolated = http_wf(name, f"{base}/ok")
    wf_id = await stack.start(isolated)  # queued in HTTP-iso1, as in Conductor
    wf = await stack.until(wf_id, lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "COMPLETED"
    assert wf["tasks"][0]["isolationGroupId"] == "iso1"
    assert "HTTP-iso1" in await stack.queues.list_queues()

    # a domain applies to worker tasks only: the HTTP task of such a workflow runs too
    in_domain = http_wf(f"{name}_d", f"{base}/ok")
    await stack.store.metadata.update_workflow_def(in_domain)
    answer = await stack.rpc.call(
        "decider.start_workflow",
        {"request": {"name": in_domain["name"], "version": 1, "taskToDomain": {"*": "d1"}}},
    )
    wf = await stack.until(str(answer["workflowId"]), lambda w: w["status"] != "RUNNING")
    assert wf["status"] == "COMPLETED"
