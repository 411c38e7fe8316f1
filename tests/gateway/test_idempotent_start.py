"""``POST /api/workflow`` with an idempotencyKey: Conductor's answers for each strategy."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

from .api_calls import assert_envelope, register, simple_workflow
from .conftest import Names


async def start(client: httpx.AsyncClient, body: Mapping[str, object]) -> httpx.Response:
    return await client.post("/api/workflow", json=body)


async def test_a_second_start_with_the_key_answers_409_or_the_first_id(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf = names("idem")
    await register(client, simple_workflow(wf, names("t")))
    body: dict[str, object] = {"name": wf, "input": {}, "idempotencyKey": "order-17"}
    first = await start(client, body)
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")

    again = await start(client, {**body, "idempotencyStrategy": "FAIL"})
    envelope = assert_envelope(again, 409, "idempotencyKey order-17")
    assert envelope["retryable"] is False
    assert_envelope(await start(client, body), 409)  # FAIL is the default

    same = await start(client, {**body, "idempotencyStrategy": "RETURN_EXISTING"})
    assert same.status_code == 200 and same.text == first.text


async def test_concurrent_starts_with_one_key_answer_one_id(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf = names("idem_conc")
    await register(client, simple_workflow(wf, names("t")))
    body = {"name": wf, "idempotencyKey": "k", "idempotencyStrategy": "RETURN_EXISTING"}
    answers = await asyncio.gather(*(start(client, body) for _ in range(6)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    running = await client.get(f"/api/workflow/running/{wf}")
    assert running.json() == [answers[0].text]


async def test_an_unknown_strategy_is_a_400(client: httpx.AsyncClient, names: Names) -> None:
    r = await start(
        client, {"name": names("x"), "idempotencyKey": "k", "idempotencyStrategy": "MAYBE"}
    )
    body = assert_envelope(r, 400)
    assert [e["path"] for e in body["validationErrors"]] == ["idempotencyStrategy"]
