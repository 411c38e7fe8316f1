"""The audit trail: every state-changing call is recorded (who, what, when, result), refused
ones too, as a log line and in the store, and ``GET /api/audit`` finds them by target."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import httpx
import pytest
from prometheus_client import CollectorRegistry

from api_gateway.audit import DAY_MS, AuditSettings, AuditWriter, make_record
from api_gateway.settings import GatewaySettings, parse_key_entries
from podium.errors import ConfigError
from podium.launch.redis import RedisServer
from podium.store import AuditEntry, AuditStore, StoreConfig, open_store
from podium.types import JSON
from tests.polling import eventually

from .api_calls import poll_one, register, simple_workflow
from .conftest import AuthSettings, Limits, Names

MUTATING = ("post", "put", "delete", "patch")


async def token(client: httpx.AsyncClient, key_id: str, secret: str) -> dict[str, str]:
    r = await client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
    assert r.status_code == 200, r.text
    return {"X-Authorization": r.json()["token"]}


async def audited(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    until: Callable[[list[JSON]], bool],
    what: str,
    **query: Any,
) -> list[JSON]:
    """``GET /api/audit`` until ``until`` holds (records are filed in the background)."""

    async def read() -> list[JSON]:
        r = await client.get("/api/audit", params={"limit": 1000, **query}, headers=headers)
        assert r.status_code == 200, r.text
        records: list[JSON] = r.json()
        return records

    return await eventually(read, until=until, timeout_s=10, what=what)


def _fill(path: str, op: JSON, tag: str) -> str:
    for param in op.get("parameters", []):
        if param["in"] == "path":
            value = "1" if param["schema"].get("type") == "integer" else f"audit-{tag}"
            path = path.replace("{" + param["name"] + "}", value)
    return path


def _body(op: JSON, headers: dict[str, str]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {})
    if "text/plain" in content:
        return {"content": b"a log line", "headers": {**headers, "Content-Type": "text/plain"}}
    if "application/json" in content:
        return {"json": {}, "headers": headers}
    return {"headers": headers}


@pytest.mark.timeout(90)
async def test_every_mutating_operation_is_audited_with_who_what_when_and_result(
    make_gateway: Callable[..., Any], names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = names("auditor"), "audit-secret-1"
    auth = AuthSettings(enabled=True, keys={key: secret})
    limits = Limits(max_poll_timeout_ms=20, max_execute_wait_s=1)
    caplog.set_level(logging.INFO, logger="podium.audit")
    async with make_gateway(auth=auth, limits=limits) as g:
        client: httpx.AsyncClient = g.client
        headers = await token(client, key, secret)
        doc = (await client.get("/api/openapi.json")).json()
        called: dict[tuple[str, str], int] = {}
        began = int(time.time() * 1000)
        for template, ops in doc["paths"].items():
            for method, op in ops.items():
                if method not in MUTATING:
                    continue
                if template == "/api/token":  # a failed sign-in is filed under the key claimed
                    r = await client.post("/api/token", json={"keyId": key, "keySecret": "nope!"})
                else:
                    r = await client.request(
                        method.upper(), _fill(template, op, names.tag), **_body(op, headers)
                    )  # fmt: skip
                called[(method.upper(), template)] = r.status_code
        ended = int(time.time() * 1000)
        assert len(called) > 35

        def complete(records: list[JSON]) -> bool:
            return set(called) <= {(r["method"], r.get("route")) for r in records}

        records = await audited(client, headers, complete, "every call audited", keyId=key)
        # Newest first: the records of the calls above win over the earlier sign-in.
        by_call = {(r["method"], r["route"]): r for r in reversed(records) if "route" in r}
        for (method, template), status in called.items():
            record = by_call[(method, template)]
            assert record["keyId"] == key
            assert record["client"] == "127.0.0.1"
            assert began <= record["time"] <= ended
            assert record["status"] == status, (method, template)
            if status >= 400:
                assert record["error"], record
            assert record["path"].startswith("/api/")
        times = [r["time"] for r in records]
        assert times == sorted(times, reverse=True)  # newest first

        # Path parameters name the targets.
        terminate = by_call[("DELETE", "/api/workflow/{workflowId}")]
        assert terminate["targets"] == [{"workflowId": f"audit-{names.tag}"}]
        delete_def = by_call[("DELETE", "/api/metadata/workflow/{name}/{version}")]
        assert delete_def["targets"] == [{"definition": f"audit-{names.tag}", "version": 1}]
        # The sign-in names the key it claimed and never the secret.
        sign_in = by_call[("POST", "/api/token")]
        assert sign_in["status"] == 401 and "nope!" not in json.dumps(sign_in)

        # The same records went out as JSON lines on the podium.audit logger.
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "podium.audit"]
        assert terminate in lines

        # A call refused for want of a token is audited too, under "anonymous".
        target = names("refused")
        r = await client.delete(f"/api/workflow/{target}")
        assert r.status_code == 401
        [refused] = await audited(client, headers, bool, "refused call", workflowId=target)
        assert refused["keyId"] == "anonymous" and refused["status"] == 401
        assert refused["route"] == "/api/workflow/{workflowId}"
        assert refused["error"] == "Missing X-Authorization token"


async def test_terminate_then_ask_who_did_it(
    make_gateway: Callable[..., Any], names: Names
) -> None:
    starter, operator, viewer = names("starter"), names("operator"), names("viewer")
    keys, grants = parse_key_entries([f"{starter}:starter-secret",
                                      f"{operator}:operator-secret:operator",
                                      f"{viewer}:viewer-secret:viewer"])  # fmt: skip
    async with make_gateway(auth=AuthSettings(enabled=True, keys=keys, grants=grants)) as g:
        client: httpx.AsyncClient = g.client
        as_starter = await token(client, starter, keys[starter])
        as_operator = await token(client, operator, keys[operator])
        as_viewer = await token(client, viewer, keys[viewer])
        wf, task_type = names("audited_wf"), names("audited_task")
        r = await client.post("/api/metadata/workflow", json=simple_workflow(wf, task_type),
                              headers=as_starter)  # fmt: skip
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/workflow/{wf}", json={}, headers=as_starter)
        workflow_id = r.text
        client.headers.update(as_starter)
        task = await poll_one(client, task_type)
        r = await client.post("/api/tasks", json={
            "workflowInstanceId": workflow_id, "taskId": task["taskId"], "status": "IN_PROGRESS",
            "callbackAfterSeconds": 60})  # fmt: skip
        assert r.status_code == 200, r.text
        r = await client.delete(f"/api/workflow/{workflow_id}", headers=as_viewer)
        assert r.status_code == 403, r.text  # a viewer may not: refused, and audited
        r = await client.delete(
            f"/api/workflow/{workflow_id}", params={"reason": "stop"}, headers=as_operator
        )
        assert r.status_code == 200, r.text

        records = await audited(
            client, as_operator, lambda rs: len(rs) >= 4, "four calls", workflowId=workflow_id
        )
        terminate, refused, update, start = records
        assert (terminate["keyId"], terminate["method"]) == (operator, "DELETE")
        assert terminate["roles"] == ["operator"]
        assert (refused["keyId"], refused["roles"], refused["status"]) == (viewer, ["viewer"], 403)
        assert refused["route"] == "/api/workflow/{workflowId}" and refused["error"]
        assert terminate["route"] == "/api/workflow/{workflowId}" and terminate["status"] == 200
        assert (update["keyId"], update["route"]) == (starter, "/api/tasks")
        assert update["targets"] == [{"workflowId": workflow_id, "taskId": task["taskId"],
                                      "taskStatus": "IN_PROGRESS"}]  # fmt: skip
        assert (start["keyId"], start["route"]) == (starter, "/api/workflow/{name}")
        assert start["targets"] == [{"workflowName": wf, "workflowId": workflow_id}]

        by_operator = await audited(
            client, as_operator, bool, "the operator's calls", keyId=operator
        )
        assert [r["route"] for r in by_operator] == ["/api/workflow/{workflowId}", "/api/token"]


async def test_definition_changes_are_found_by_definition(
    client: httpx.AsyncClient, names: Names
) -> None:
    wf = names("audited_def")
    definition = simple_workflow(wf, names("t"))
    await register(client, definition)
    r = await client.put("/api/metadata/workflow", json=[{**definition, "description": "v1b"}])
    assert r.status_code == 200, r.text
    r = await client.post("/api/metadata/workflow", json=definition)  # exists: 409
    assert r.status_code == 409
    r = await client.delete(f"/api/metadata/workflow/{wf}/1")
    assert r.status_code == 200, r.text
    records = await audited(
        client, {}, lambda rs: len(rs) >= 4, "four definition calls", definition=wf
    )
    calls = [(r["method"], r["route"], r["status"]) for r in records]
    assert calls == [
        ("DELETE", "/api/metadata/workflow/{name}/{version}", 200),
        ("POST", "/api/metadata/workflow", 409),
        ("PUT", "/api/metadata/workflow", 200),
        ("POST", "/api/metadata/workflow", 200),
    ]
    assert all(r["keyId"] == "anonymous" for r in records)  # authentication is off
    assert records[1]["error"] and records[0]["targets"] == [{"definition": wf, "version": 1}]


async def test_audit_query_needs_one_target(client: httpx.AsyncClient) -> None:
    asks: list[dict[str, str | int]] = [{}, {"workflowId": "a", "keyId": "b"},
                                        {"workflowId": "a", "limit": 0}]  # fmt: skip
    for params in asks:
        r = await client.get("/api/audit", params=params)
        assert r.status_code == 400, params
        assert r.json()["status"] == 400


async def test_bulk_calls_are_filed_under_each_workflow(
    client: httpx.AsyncClient, names: Names
) -> None:
    ids = [names(f"bulk{i}") for i in range(12)]
    r = await client.put("/api/workflow/bulk/pause", json=ids)
    assert r.status_code == 200, r.text
    [last] = await audited(client, {}, bool, "the bulk pause", workflowId=ids[-1])
    assert last["route"] == "/api/workflow/bulk/pause" and last["targetCount"] == 12
    assert last["targets"] == [{"workflowId": ids[-1]}]


async def test_a_store_that_fails_never_fails_the_caller() -> None:
    with RedisServer() as server:
        store = await open_store(StoreConfig(backend="redis", redis_url=server.url))
    # The server is gone: every write now fails.
    registry = CollectorRegistry()
    writer = AuditWriter(AuditSettings(buffer=100), lambda: store.audit, registry)
    record = make_record(
        {"type": "http", "method": "DELETE", "path": "/api/workflow/x", "state": {}},
        time.time(), b"", 200, b"",
    )  # fmt: skip
    for _ in range(150):  # before the writer runs: 100 wait, 50 find the buffer full
        writer.submit(record)

    def count(outcome: str) -> float:
        value = registry.get_sample_value("podium_gateway_audit_records_total",
                                          {"outcome": outcome})  # fmt: skip
        return value or 0.0

    assert count("dropped") == 50

    async def all_failed() -> bool:
        return count("failed") == 100

    await eventually(all_failed, timeout_s=10, what="the failed writes counted")
    await writer.close(grace_s=1)
    await store.close()
    assert count("stored") == 0


class CountedAudit:
    """A real store's audit table that also keeps the size of each batch it is handed."""

    def __init__(self, audit: AuditStore) -> None:
        self.audit = audit
        self.batches: list[int] = []

    async def append(self, entries: Sequence[AuditEntry], **kwargs: Any) -> None:
        self.batches.append(len(entries))
        await self.audit.append(entries, **kwargs)


def _record(path: str) -> JSON:
    return make_record(
        {"type": "http", "method": "DELETE", "path": path, "state": {}},
        time.time(), b"", 200, b"",
    )  # fmt: skip


async def test_records_of_a_trickle_share_one_round_trip(names: Names) -> None:
    target = names("trickle")
    with RedisServer() as server:
        store = await open_store(StoreConfig(backend="redis", redis_url=server.url))
        counted = CountedAudit(store.audit)
        registry = CollectorRegistry()
        writer = AuditWriter(
            AuditSettings(linger_ms=500), lambda: cast(AuditStore, counted), registry
        )
        for _ in range(5):
            writer.submit(_record(f"/api/workflow/{target}"))
            await asyncio.sleep(0)  # the writer runs between the calls, as between requests

        async def stored() -> float:
            return registry.get_sample_value(
                "podium_gateway_audit_records_total", {"outcome": "stored"}) or 0.0  # fmt: skip

        await eventually(stored, until=lambda n: n == 5, timeout_s=10, what="five filed")
        assert counted.batches == [5]
        # each record is filed under its key id (anonymous here): this server holds only these
        found = await store.audit.query("keyId", "anonymous", limit=10,
                                        now_ms=int(time.time() * 1000),
                                        retention_ms=DAY_MS)  # fmt: skip
        assert len(found) == 5 and {r["path"] for r in found} == {f"/api/workflow/{target}"}
        # close() files what waits at once instead of waiting out the linger
        slow = AuditWriter(
            AuditSettings(linger_ms=60_000), lambda: cast(AuditStore, counted), CollectorRegistry()
        )
        slow.submit(_record(f"/api/workflow/{target}"))
        await asyncio.sleep(0)
        await asyncio.wait_for(slow.close(grace_s=5), timeout=5)
        assert counted.batches == [5, 1] and slow.waiting == 0
        await writer.close()
        await store.close()


def test_audit_settings_come_from_the_environment() -> None:
    settings = GatewaySettings.from_env({"PODIUM_AUDIT": "log",
                                         "PODIUM_AUDIT_RETENTION_DAYS": "7",
                                         "PODIUM_AUDIT_LINGER_MS": "0"})  # fmt: skip
    assert settings.audit.mode == "log" and settings.audit.retention_ms == 7 * 86_400_000
    assert settings.audit.linger_ms == 0
    assert GatewaySettings.from_env({}).audit == AuditSettings()
    with pytest.raises(ConfigError, match="PODIUM_AUDIT"):
        GatewaySettings.from_env({"PODIUM_AUDIT": "sometimes"})
    with pytest.raises(ConfigError, match="PODIUM_AUDIT_RETENTION_DAYS"):
        GatewaySettings.from_env({"PODIUM_AUDIT_RETENTION_DAYS": "0"})


async def test_log_mode_writes_the_line_and_files_nothing(
    make_gateway: Callable[..., Any], names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="podium.audit")
    target = names("logged")
    async with make_gateway(audit=AuditSettings(mode="log")) as g:
        r = await g.client.delete(f"/api/workflow/{target}")
        assert r.status_code == 404

        async def line() -> JSON | None:
            found = [json.loads(r.getMessage()) for r in caplog.records
                     if r.name == "podium.audit" and target in r.getMessage()]  # fmt: skip
            return found[0] if found else None

        record = await eventually(line, timeout_s=5, what="the audit line")
        assert record["targets"] == [{"workflowId": target}] and record["status"] == 404
        assert record["error"] == f"No such workflow found by id: {target}"
        assert g.gateway.audit.waiting == 0
        registry = g.gateway.metrics.registry
        assert registry.get_sample_value(
            "podium_gateway_audit_records_total", {"outcome": "stored"}) is None  # fmt: skip
