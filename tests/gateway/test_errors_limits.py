"""Every broken rule or limit gets Conductor's error envelope, and nothing stored changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from api_gateway.http import compact, parse_json
from api_gateway.limits import json_depth
from api_gateway.settings import Limits

from .api_calls import assert_envelope, register, simple_workflow
from .conftest import Names, RunningGateway


async def _stored_names(client: httpx.AsyncClient) -> set[str]:
    r = await client.get("/api/metadata/taskdefs")
    return {d["name"] for d in r.json()}


async def test_malformed_json_bodies(client: httpx.AsyncClient, names: Names) -> None:
    before = await _stored_names(client)
    bad_bodies = [
        b"{",
        b"not json",
        b'[{"name": "x"',
        b'[{"name": NaN}]',
        b'[{"name": "x", "retryCount": 1e999}]',
        b'[{"name": "x", "retryCount": 123456789012345678901234567890}]',
        b'[{"name": "\\ud800"}]',
        b"\xff\xfe",
        b"",
    ]
    for body in bad_bodies:
        r = await client.post(
            "/api/metadata/taskdefs", content=body, headers={"Content-Type": "application/json"}
        )
        assert_envelope(r, 400)
    assert await _stored_names(client) == before


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_envelope(await client.get("/api/nothing/here"), 404)
    assert_envelope(await client.get("/nope"), 404)
    assert_envelope(await client.patch("/api/metadata/taskdefs"), 405)


async def test_body_size_limit(make_gateway: object, names: Names) -> None:
    limits = Limits(max_body_bytes=2048)
    async with make_gateway(limits=limits) as g:  # type: ignore[operator]
        big = [{"name": names("big"), "description": "x" * 4096}]
        r = await g.client.post("/api/metadata/taskdefs", json=big)
        assert_envelope(r, 413, "exceeds the limit of 2048 bytes")

        async def chunks() -> AsyncIterator[bytes]:
            yield b'[{"name": "' + names("chunked").encode() + b'", "description": "'
            for _ in range(10):
                yield b"y" * 512
            yield b'"}]'

        # Chunked transfer: no Content-Length, the limit applies while streaming.
        r = await g.client.post(
            "/api/metadata/taskdefs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert_envelope(r, 413)
        r = await g.client.get(f"/api/metadata/taskdefs/{names('big')}")
        assert_envelope(r, 404)
        r = await g.client.get(f"/api/metadata/taskdefs/{names('chunked')}")
        assert_envelope(r, 404)


async def test_json_depth_limit(client: httpx.AsyncClient, names: Names) -> None:
    wf, t = names("wf"), names("t")
    await register(client, simple_workflow(wf, t))
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    r = await client.post(f"/api/workflow/{wf}", json={"x": deep})
    assert_envelope(r, 400, "nested deeper than the limit of 64")
    r = await client.post(
        "/api/metadata/taskdefs",
        content=b"[" * 100_000,
        headers={"Content-Type": "application/json"},
    )
    assert_envelope(r, 400)
    r = await client.get("/api/workflow/running/" + wf)
    assert r.json() == []  # nothing was started
    # Brackets inside strings do not count.
    r = await client.post(f"/api/workflow/{wf}", json={"x": "[" * 1000})
    assert r.status_code == 200


def test_json_depth_scanner() -> None:
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'{"a": "[[[[\\"[["}') == 1
    assert json_depth(b"[" * 10, stop_above=3) > 3
    assert json_depth(b"[]" * 1000) == 1


def test_parse_json_rules() -> None:
    assert parse_json(b'{"a": 1.5, "b": [true, null]}') == {"a": 1.5, "b": [True, None]}
    assert parse_json(b'"\\ud83d\\ude00"') == "\U0001f600"  # a proper pair is fine
    assert compact({"a": None, "input": {"k": None}, "l": [{"z": None}]}) == {
        "input": {"k": None},
        "l": [{}],
    }
    assert json.loads(json.dumps(compact({"x": 1}))) == {"x": 1}


async def test_many_bad_requests_leave_the_gateway_healthy(running_gateway: RunningGateway) -> None:
    client = running_gateway.client
    bodies = [b"{" * 5000, b"[1,", b"\x00\x01", b'{"a":' * 70 + b"1" + b"}" * 70]
    results = await asyncio.gather(
        *(
            client.post("/api/workflow", content=b, headers={"Content-Type": "application/json"})
            for b in bodies * 5
        )
    )
    assert all(400 <= r.status_code < 500 for r in results)
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["healthy"] is True
    r = await client.get("/api/health")
    assert r.status_code == 200
