"""Errors speak of the request, never of the server's internals.

Bad bodies and parameters (a huge integer, deep nesting, invalid UTF-8, values of the wrong
type) get a 400 with Conductor's error envelope, and neither the message nor the validation
errors carry Python internals: no tracebacks, exception class names, module paths or hints
meant for the server's operator.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from api_gateway.errors import INTERNAL_MESSAGE, UNREACHABLE_MESSAGE, from_exception
from api_gateway.http import parse_json
from podium.errors import InternalError, InvalidArgument
from podium.launch.redis import free_port
from podium.types import JSON

from .api_calls import assert_envelope
from .conftest import Names

#: Text that only the server's internals produce.
INTERNALS = (
    "sys.",
    "Traceback",
    ".py",
    "Error:",
    "Exception",
    "codec",
    "object has no attribute",
    "not subscriptable",
    "NoneType",
    "unicode string",
    "recursion",
    "int_max_str_digits",
)
CLASS_NAMES = (
    "TypeError",
    "KeyError",
    "ValueError",
    "AttributeError",
    "IndexError",
    "RecursionError",
    "OverflowError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "JSONDecodeError",
    "InternalError",
)


def assert_clean_400(r: httpx.Response) -> JSON:
    body = assert_envelope(r, 400)
    texts = [body["message"]] + [str(e) for e in body.get("validationErrors") or []]
    for text in texts:
        for marker in INTERNALS + CLASS_NAMES:
            assert marker not in text, (marker, r.request.method, r.request.url, body)
    return body


def test_body_parsing_messages_name_the_problem_only() -> None:
    cases = {
        b'{"n": ' + b"9" * 5000 + b"}": "integer",
        b'{"n": -' + b"9" * 5000 + b"}": "integer",
        b"[" * 100_000 + b"]" * 100_000: "nested too deeply",
        b'{"s": "\xc3\x28"}': "not valid UTF-8",
        b"\xff\xfe{}": "not valid UTF-8",
        b'{"a": 1} trailing': "Malformed JSON",
    }
    for raw, expected in cases.items():
        try:
            parse_json(raw)
        except InvalidArgument as exc:
            assert expected in exc.message, (raw[:40], exc.message)
            for marker in INTERNALS + CLASS_NAMES:
                assert marker not in exc.message, (raw[:40], exc.message)
        else:
            raise AssertionError(f"accepted {raw[:40]!r}")


async def test_bad_bodies_get_400_without_internals(
    client: httpx.AsyncClient, names: Names
) -> None:
    huge_int = b"9" * 5000
    raw_bodies: list[tuple[str, str, bytes]] = [
        ("POST", "/api/metadata/taskdefs", b'[{"name": "x", "retryCount": ' + huge_int + b"}]"),
        ("POST", "/api/workflow/anything", b'{"n": ' + huge_int + b"}"),
        ("POST", "/api/workflow", b"[" * 60 + b"]" * 60),
        ("POST", "/api/metadata/taskdefs", b'[{"name": "\xc3\x28"}]'),
        ("POST", "/api/tasks", b"\xff\xfe\xfd"),
        ("PUT", "/api/metadata/workflow", b'[{"name": "w", "tasks": [' + huge_int + b"]}]"),
    ]
    for method, path, raw in raw_bodies:
        r = await client.request(
            method, path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert_clean_400(r)

    wf = names("wf")
    wrong_types: list[tuple[str, str, Any]] = [
        ("POST", "/api/metadata/taskdefs", [{"name": {"a": 1}}]),
        ("POST", "/api/metadata/taskdefs", [{"name": names("t"), "retryCount": "three"}]),
        ("POST", "/api/metadata/workflow", {"name": wf, "tasks": "not a list"}),
        ("POST", "/api/metadata/workflow", {"name": wf, "tasks": [1, "two", None]}),
        ("POST", "/api/metadata/workflow", {"name": wf, "tasks": [{"name": 1, "type": []}]}),
        (
            "POST",
            "/api/metadata/workflow",
            {
                "name": wf,
                "tasks": [
                    {
                        "name": "s",
                        "taskReferenceName": "s",
                        "type": "SWITCH",
                        "evaluatorType": "value-param",
                        "expression": "x",
                        "decisionCases": ["not", "a", "map"],
                    }
                ],
            },
        ),
        (
            "POST",
            "/api/metadata/workflow",
            {
                "name": wf,
                "tasks": [
                    {
                        "name": "f",
                        "taskReferenceName": "f",
                        "type": "FORK_JOIN",
                        "forkTasks": [{"not": "a list"}],
                    }
                ],
            },
        ),
        ("POST", "/api/workflow", {"name": 5, "version": "x"}),
        ("POST", "/api/workflow", {"name": wf, "input": [1, 2], "priority": "high"}),
        ("POST", "/api/workflow", {"name": wf, "workflowDef": {"name": wf, "tasks": 3}}),
        ("POST", "/api/tasks", {"taskId": 5, "workflowInstanceId": {}, "status": 7}),
        ("POST", "/api/tasks", {"taskId": "t", "workflowInstanceId": "w", "outputData": []}),
        ("POST", "/api/workflow/bulk/terminate", {"ids": "x"}),
        ("POST", "/api/workflow/some-id/rerun", {"reRunFromTaskId": 5, "workflowInput": []}),
        ("PUT", "/api/workflow/some-id/skiptask/ref", {"taskInput": "x"}),
    ]
    for method, path, body in wrong_types:
        r = await client.request(
            method, path, content=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        assert_clean_400(r)


async def test_bad_query_parameters_get_400_without_internals(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/workflow/search?start=abc",
        "/api/workflow/search?size=" + "9" * 5000,
        "/api/workflow/some-id?includeTasks=maybe",
        "/api/tasks/poll/batch/t?count=-1&timeout=x",
        "/api/tasks/queue/size?taskType=t&isolationGroupId=a%20b",
    ):
        assert_clean_400(await client.get(path))


def test_unexpected_errors_answer_500_with_a_generic_message() -> None:
    relayed = InternalError("AttributeError: 'Context' object has no attribute 'scripts'")
    for exc in (KeyError("workflowDefinition"), relayed):
        r = from_exception(exc)
        assert r.status_code == 500
        body = json.loads(bytes(r.body))
        assert body["status"] == 500 and body["message"] == INTERNAL_MESSAGE
        assert "instance" in body and body["retryable"] is False


async def test_an_unreachable_service_is_a_503_without_its_address(
    make_gateway: Any, names: Names
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with make_gateway(decider_addresses=[dead]) as g:
        r = await g.client.post(f"/api/workflow/{names('wf')}", json={})
        body = assert_envelope(r, 503, UNREACHABLE_MESSAGE)
        assert body["retryable"] is True
        assert dead not in r.text and "Errno" not in r.text
