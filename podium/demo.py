"""The demo that ``podium up --demo`` runs against the local cluster.

It registers a workflow that uses a fork/join, an HTTP call to a local endpoint, a switch and
a loop; starts sample workers (Podium's asyncio worker client); runs the workflow over the
HTTP API like any client would; and prints what happened, task by task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from podium.types import JSON
from podium.worker import TaskRunner, Worker

NAME = "podium_demo"


def demo_workflow(quote_url: str) -> JSON:
    """Fork two lookups, call a price service, branch on the price, then loop three times."""
    return {
        "name": NAME,
        "version": 1,
        "schemaVersion": 2,
        "ownerEmail": "demo@podium.local",
        "description": "fork/join, HTTP, SWITCH and DO_WHILE",
        "inputParameters": ["item"],
        "outputParameters": {
            "stock": "${stock.output.units}",
            "rating": "${rating.output.stars}",
            "price": "${quote.output.response.body.price}",
            "decision": "${decide_price.output.selectedCase}",
            "packed": "${pack_loop.output.iteration}",
        },
        "tasks": [
            {
                "name": "lookups",
                "taskReferenceName": "lookups",
                "type": "FORK_JOIN",
                "forkTasks": [
                    [
                        {
                            "name": "demo_stock",
                            "taskReferenceName": "stock",
                            "type": "SIMPLE",
                            "inputParameters": {"item": "${workflow.input.item}"},
                        }
                    ],
                    [
                        {
                            "name": "demo_rating",
                            "taskReferenceName": "rating",
                            "type": "SIMPLE",
                            "inputParameters": {"item": "${workflow.input.item}"},
                        }
                    ],
                ],
            },
            {
                "name": "join",
                "taskReferenceName": "join",
                "type": "JOIN",
                "joinOn": ["stock", "rating"],
            },
            {
                "name": "quote",
                "taskReferenceName": "quote",
                "type": "HTTP",
                "inputParameters": {
                    "http_request": {
                        "uri": f"{quote_url}?item=${{workflow.input.item}}",
                        "method": "GET",
                    }
                },
            },
            {
                "name": "decide_price",
                "taskReferenceName": "decide_price",
                "type": "SWITCH",
                "evaluatorType": "javascript",
                "expression": "$.price > 40 ? 'premium' : 'standard'",
                "inputParameters": {"price": "${quote.output.response.body.price}"},
                "decisionCases": {
                    "premium": [
                        {
                            "name": "demo_notify",
                            "taskReferenceName": "notify",
                            "type": "SIMPLE",
                            "inputParameters": {"price": "${quote.output.response.body.price}"},
                        }
                    ],
                },
                "defaultCase": [
                    {"name": "noop", "taskReferenceName": "skip_notify", "type": "NOOP"}
                ],
            },
            {
                "name": "pack_loop",
                "taskReferenceName": "pack_loop",
                "type": "DO_WHILE",
                "loopCondition": "if ($.pack_loop['iteration'] < 3) { true; } else { false; }",
                "loopOver": [
                    {
                        "name": "demo_pack",
                        "taskReferenceName": "pack",
                        "type": "SIMPLE",
                        "inputParameters": {"box": "${pack_loop.output.iteration}"},
                    }
                ],
            },
        ],
    }


async def _stock(task: JSON) -> JSON:
    return {"units": 17, "item": task["inputData"].get("item")}


async def _rating(task: JSON) -> JSON:
    return {"stars": 4.5}


async def _notify(task: JSON) -> JSON:
    return {"sent": True, "price": task["inputData"].get("price")}


async def _pack(task: JSON) -> JSON:
    return {"box": task["inputData"].get("box")}


@contextlib.asynccontextmanager
async def quote_service(port: int = 0) -> AsyncIterator[str]:
    """The local endpoint the HTTP task calls (on ``port``, the one `podium up` allows)."""

    async def quote(request: Request) -> JSONResponse:
        return JSONResponse({"item": request.query_params.get("item"), "price": 42.5})

    app = Starlette(routes=[Route("/quote", quote)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", loop="none")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/quote"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


async def run_demo(api_url: str, quote_url: str, timeout_s: float = 60.0) -> JSON:
    """Register, start, run and report the demo workflow; returns the finished workflow.

    ``quote_url`` is the endpoint of :func:`quote_service` that the HTTP task calls.
    """
    base = api_url.rstrip("/")
    async with httpx.AsyncClient(timeout=30) as http:
        task_defs = [
            {
                "name": n,
                "retryCount": 1,
                "retryDelaySeconds": 0,
                "responseTimeoutSeconds": 30,
                "timeoutSeconds": 120,
                "ownerEmail": "demo@podium.local",
            }
            for n in ("demo_stock", "demo_rating", "demo_notify", "demo_pack")
        ]
        _check(await http.post(f"{base}/metadata/taskdefs", json=task_defs))
        _check(await http.put(f"{base}/metadata/workflow", json=[demo_workflow(quote_url)]))
        print(f"demo: registered workflow {NAME!r} and {len(task_defs)} task definitions")

        runner = TaskRunner(
            base.removesuffix("/api"),
            [
                Worker("demo_stock", _stock),
                Worker("demo_rating", _rating),
                Worker("demo_notify", _notify),
                Worker("demo_pack", _pack),
            ],
        )
        workers = asyncio.ensure_future(runner.run())
        try:
            started = time.monotonic()
            resp = _check(await http.post(f"{base}/workflow/{NAME}", json={"item": "lamp"}))
            wf_id = resp.text
            print(f"demo: started workflow {wf_id}; sample workers are polling")
            print(f"demo: watch it in the UI: {execution_link(base, wf_id)}", flush=True)
            wf = await _wait(http, f"{base}/workflow/{wf_id}", timeout_s)
            elapsed = time.monotonic() - started
        finally:
            runner.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(workers, 15)
    _report(wf, elapsed)
    return wf


def ui_address(api_url: str) -> str:
    """The web UI of the gateway whose API is at ``api_url`` (``http://host:port/api``)."""
    return f"{api_url.rstrip('/').removesuffix('/api')}/ui/"


def execution_link(api_url: str, workflow_id: str) -> str:
    return f"{ui_address(api_url)}#/execution/{workflow_id}"


async def _wait(http: httpx.AsyncClient, url: str, timeout_s: float) -> JSON:
    deadline = time.monotonic() + timeout_s
    while True:
        wf: JSON = _check(await http.get(url)).json()
        if wf["status"] != "RUNNING" or time.monotonic() > deadline:
            return wf
        await asyncio.sleep(0.1)


def _check(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text}"
        )
    return resp


def _report(wf: JSON, elapsed: float) -> None:
    print(f"demo: workflow {wf['status']} in {elapsed:.2f}s; tasks:")
    for t in wf.get("tasks", []):
        print(f"  {t['seq']:>3}  {t['referenceTaskName']:<14} {t['taskType']:<12} {t['status']}")
    print(f"demo: output {wf.get('output')}")
    print(f"demo: result: {'OK' if wf['status'] == 'COMPLETED' else 'FAILED'}")
