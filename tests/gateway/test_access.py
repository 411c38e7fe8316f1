"""Roles on every route: admin, operator, viewer, and worker keys bound to their task types."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from api_gateway.access import POLICY
from api_gateway.grants import ROLES, Grant
from api_gateway.routing import Endpoint, routes
from api_gateway.server import create_app
from api_gateway.settings import AuthSettings, GatewaySettings
from podium.errors import ConfigError

from .api_calls import assert_envelope, register, simple_workflow
from .conftest import Names, RunningGateway

SECRETS = {
    "adm": "secret-admin-1",
    "ops": "secret-operator-1",
    "view": "secret-viewer-1",
    "work": "secret-worker-1",
}
KEY_OF_ROLE = {"admin": "adm", "operator": "ops", "viewer": "view", "worker": "work"}

#: Operations that change nothing though they are not GETs (a viewer may call them).
READ_ONLY_POSTS = {
    ("post", "/api/metadata/workflow/validate"),
    ("post", "/api/workflow/bulk/search"),
    ("post", "/api/workflow/{name}/correlated"),
}
#: Everything a worker key may call (for its own task types), written out independently of
#: the policy table: any other operation must be a 403 for a worker.
WORKER_OPERATIONS = {
    ("get", "/api/auth/me"),
    ("get", "/api/tasks/poll/batch/{tasktype}"),
    ("get", "/api/tasks/poll/{tasktype}"),
    ("post", "/api/tasks"),
    ("post", "/api/tasks/update-v2"),
    ("post", "/api/tasks/{workflowId}/{taskRefName}/{status}"),
    ("post", "/api/tasks/{workflowId}/{taskRefName}/{status}/sync"),
    ("post", "/api/tasks/{taskId}/log"),
    ("get", "/api/tasks/{taskId}/log"),
    ("get", "/api/tasks/{taskId}"),
    ("get", "/api/tasks/queue/sizes"),
    ("get", "/api/tasks/queue/size"),
    ("get", "/api/tasks/queue/polldata"),
    ("get", "/api/metadata/taskdefs/{tasktype}"),
}


@dataclass
class Keys:
    """A gateway with one key per role, and their tokens."""

    g: RunningGateway
    tokens: dict[str, str]

    def as_(self, role: str) -> dict[str, str]:
        return {"X-Authorization": self.tokens[role]}

    async def call(self, role: str, method: str, url: str, **kw: Any) -> httpx.Response:
        return await self.g.client.request(method, url, headers=self.as_(role), **kw)


async def _token(client: httpx.AsyncClient, key_id: str, secret: str) -> str:
    r = await client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


@contextlib.asynccontextmanager
async def role_gateway(
    make_gateway: Callable[..., Any], worker_types: tuple[str, ...]
) -> AsyncIterator[Keys]:
    grants = {
        "ops": Grant(("operator",)),
        "view": Grant(("viewer",)),
        "work": Grant(("worker",), worker_types),
    }
    auth = AuthSettings(enabled=True, keys=SECRETS, grants=grants)
    async with make_gateway(auth=auth) as g:
        tokens = {
            role: await _token(g.client, key_id, SECRETS[key_id])
            for role, key_id in KEY_OF_ROLE.items()
        }
        yield Keys(g, tokens)


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def _url(path: str) -> str:
    """A concrete URL for a documented path: every parameter a name that matches nothing."""
    return re.sub(r"\{version\}", "1", re.sub(r"\{(?!version)\w+\}", "acc_nothing", path))


def test_every_route_has_a_rule_and_none_can_be_served_without() -> None:
    app = create_app(GatewaySettings())
    served = set()
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                served.add((method, route.path))
    assert served == set(POLICY)

    async def handler(request: Any, gateway: Any) -> Any:
        raise AssertionError("never served")

    stray = Endpoint("GET", "/api/unguarded", handler, "no rule", "test")
    with pytest.raises(LookupError, match="no access rule"):
        routes([stray])


async def test_the_document_shows_the_enforced_roles(make_gateway: Callable[..., Any]) -> None:
    async with make_gateway(auth=AuthSettings(enabled=True, keys=SECRETS)) as g:
        doc = (await g.client.get("/api/openapi.json")).json()
    app = create_app(GatewaySettings())
    by_path = {
        (m.lower(), re.sub(r"\{(\w+):\w+\}", r"{\1}", r.path)): r.path
        for r in app.routes
        if isinstance(r, Route)
        for m in r.methods or ()
    }
    for method, path, op in _operations(doc):
        declared = by_path[(method, path)]
        rule = POLICY[(method.upper(), declared)]
        assert op["x-podium-roles"] == list(rule.roles), (method, path)
        assert op["description"] == rule.describe()
        if rule.public:
            assert op["security"] == [] and "403" not in op["responses"]
        else:
            assert {"401", "403"} <= set(op["responses"]), (method, path)
            assert "admin" in op["x-podium-roles"]
    # key management is the admin's alone
    keys_ops = [op for m, p, op in _operations(doc) if p.startswith("/api/admin/keys")]
    assert len(keys_ops) == 3 and all(op["x-podium-roles"] == ["admin"] for op in keys_ops)


@pytest.mark.timeout(60)
async def test_every_operation_refuses_the_roles_it_does_not_list(
    make_gateway: Callable[..., Any], names: Names
) -> None:
    """Walk the document: a listed role gets past the check; any other role gets a 403."""
    async with role_gateway(make_gateway, (names("acc_w") + "*",)) as k:
        doc = (await k.g.client.get("/api/openapi.json")).json()
        checked = 0
        for method, path, op in _operations(doc):
            if op.get("security") == []:
                continue
            url = _url(path)
            worker_scoped = "x-podium-task-type" in op
            for role in ROLES:
                if role == "worker" and worker_scoped:
                    continue  # checked against real tasks below
                r = await k.call(role, method, url, params={"timeout": 0})
                if role in op["x-podium-roles"]:
                    assert r.status_code not in (401, 403), (role, method, path, r.text)
                else:
                    body = assert_envelope(r, 403)
                    assert body["error"] == "FORBIDDEN"
                    assert " or ".join(op["x-podium-roles"]) in body["message"], body
                    checked += 1
            # Independently of the table: a viewer changes nothing, a worker does only its work.
            if method != "get" and (method, path) not in READ_ONLY_POSTS:
                assert "viewer" not in op["x-podium-roles"], (method, path)
            if (method, path) not in WORKER_OPERATIONS:
                assert "worker" not in op["x-podium-roles"], (method, path)
            if path.startswith("/api/admin/keys"):
                assert "operator" not in op["x-podium-roles"]
        assert checked > 100  # about 90 operations, most refused to two or three roles


async def _start(k: Keys, role: str, wf: str) -> str:
    r = await k.call(role, "POST", f"/api/workflow/{wf}", json={"x": 1})
    assert r.status_code == 200, r.text
    return r.text


async def _poll(k: Keys, role: str, task_type: str) -> httpx.Response:
    return await k.call(
        role, "GET", f"/api/tasks/poll/batch/{task_type}", params={"count": 1, "timeout": 1000}
    )


@pytest.mark.timeout(60)
async def test_a_worker_key_works_only_on_its_task_types(
    make_gateway: Callable[..., Any], names: Names
) -> None:
    mine, theirs = f"acc_bill_{names.tag}_a", names("acc_other")
    wf_mine, wf_theirs = names("acc_wf_mine"), names("acc_wf_theirs")
    async with role_gateway(make_gateway, (f"acc_bill_{names.tag}_*", "unrelated")) as k:
        admin = httpx.AsyncClient(base_url=k.g.url, headers=k.as_("operator"), timeout=30)
        async with admin:
            await register(admin, simple_workflow(wf_mine, mine))
            await register(admin, simple_workflow(wf_theirs, theirs))
            r = await admin.post("/api/metadata/taskdefs", json=[{"name": mine}, {"name": theirs}])
            assert r.status_code == 200, r.text
        # A worker starts nothing.
        r = await k.call("worker", "POST", f"/api/workflow/{wf_mine}", json={})
        assert "needs the role admin or operator" in assert_envelope(r, 403)["message"]
        mine_wf, theirs_wf = (
            await _start(k, "operator", wf_mine),
            await _start(k, "admin", wf_theirs),
        )

        # Its own type: poll, log, read, queue size, task definition, update.
        r = await _poll(k, "worker", mine)
        assert r.status_code == 200, r.text
        [task] = r.json()
        assert task["taskType"] == mine
        tid = task["taskId"]
        r = await k.call("worker", "POST", f"/api/tasks/{tid}/log", content="working")
        assert r.status_code == 200, r.text
        assert (await k.call("worker", "GET", f"/api/tasks/{tid}/log")).status_code == 200
        assert (await k.call("worker", "GET", f"/api/tasks/{tid}")).json()["taskId"] == tid
        r = await k.call("worker", "GET", "/api/tasks/queue/size", params={"taskType": mine})
        assert r.status_code == 200 and r.json() == 0
        r = await k.call("worker", "GET", f"/api/metadata/taskdefs/{mine}")
        assert r.status_code == 200 and r.json()["name"] == mine

        # Another type: refused by path, by parameter and by the task the request names.
        r = await _poll(k, "worker", theirs)
        body = assert_envelope(r, 403)
        assert theirs in body["message"] and "acc_bill" in body["message"]
        r = await k.call("worker", "GET", "/api/tasks/poll/" + theirs)
        assert_envelope(r, 403)
        r = await k.call("worker", "GET", f"/api/metadata/taskdefs/{theirs}")
        assert_envelope(r, 403)
        for params in ({"taskType": theirs}, {"taskType": [mine, theirs]}):
            r = await k.call("worker", "GET", "/api/tasks/queue/sizes", params=params)
            assert_envelope(r, 403)
        r = await k.call("worker", "GET", "/api/tasks/queue/size", params={"taskType": theirs})
        assert_envelope(r, 403)
        r = await k.call("worker", "GET", f"/api/workflow/{mine_wf}")
        assert_envelope(r, 403)
        r = await k.call("worker", "GET", "/api/tasks/search")
        assert_envelope(r, 403)

        [other] = (await _poll(k, "admin", theirs)).json()
        oid = other["taskId"]
        result = {"workflowInstanceId": theirs_wf, "taskId": oid, "status": "COMPLETED"}
        for update in ("/api/tasks", "/api/tasks/update-v2"):
            r = await k.call("worker", "POST", update, json=result)
            assert theirs in assert_envelope(r, 403)["message"]
        # Naming its own workflow does not help: the task's type comes from the store.
        r = await k.call(
            "worker", "POST", "/api/tasks", json={**result, "workflowInstanceId": mine_wf}
        )
        assert_envelope(r, 403)
        r = await k.call("worker", "POST", f"/api/tasks/{theirs_wf}/t0/COMPLETED", json={})
        assert_envelope(r, 403)
        r = await k.call("worker", "POST", f"/api/tasks/{oid}/log", content="not mine")
        assert_envelope(r, 403)
        assert_envelope(await k.call("worker", "GET", f"/api/tasks/{oid}"), 403)
        assert_envelope(await k.call("worker", "GET", f"/api/tasks/{oid}/log"), 403)
        r = await k.call("admin", "GET", f"/api/tasks/{oid}")
        assert r.json()["status"] == "IN_PROGRESS"  # nothing the worker sent took effect
        assert (await k.call("admin", "GET", f"/api/tasks/{oid}/log")).status_code == 204

        # Its own task completes, and its workflow with it.
        r = await k.call(
            "worker",
            "POST",
            "/api/tasks",
            json={"workflowInstanceId": mine_wf, "taskId": tid, "status": "COMPLETED"},
        )
        assert r.status_code == 200, r.text
        r = await k.call("viewer", "GET", f"/api/workflow/{mine_wf}/status")
        assert r.json()["status"] == "COMPLETED"
        # A task that does not exist is a 404, as for everyone.
        r = await k.call("worker", "POST", "/api/tasks", json={**result, "taskId": "no-such"})
        assert_envelope(r, 404)


async def test_a_viewer_reads_but_changes_nothing(
    make_gateway: Callable[..., Any], names: Names
) -> None:
    wf = names("acc_view")
    async with role_gateway(make_gateway, ("x",)) as k:
        r = await k.call("viewer", "POST", "/api/metadata/workflow", json=simple_workflow(wf, "t"))
        assert "viewer" in assert_envelope(r, 403)["message"]
        r = await k.call(
            "operator", "POST", "/api/metadata/workflow", json=simple_workflow(wf, "t")
        )
        assert r.status_code == 200, r.text
        assert (await k.call("viewer", "GET", f"/api/metadata/workflow/{wf}")).status_code == 200
        workflow_id = await _start(k, "operator", wf)
        assert (await k.call("viewer", "GET", f"/api/workflow/{workflow_id}")).status_code == 200
        for method, url in (
            ("DELETE", f"/api/workflow/{workflow_id}"),
            ("PUT", f"/api/workflow/{workflow_id}/pause"),
            ("POST", f"/api/workflow/{workflow_id}/restart"),
            ("DELETE", f"/api/metadata/workflow/{wf}/1"),
        ):
            assert_envelope(await k.call("viewer", method, url), 403)
        r = await k.call("viewer", "GET", f"/api/workflow/{workflow_id}")
        assert r.json()["status"] == "RUNNING"
        r = await k.call("operator", "DELETE", f"/api/workflow/{workflow_id}")
        assert r.status_code == 200, r.text


async def test_me_names_the_callers_key(
    make_gateway: Callable[..., Any], client: httpx.AsyncClient
) -> None:
    async with role_gateway(make_gateway, ("a_*", "b")) as k:
        for role, key_id in KEY_OF_ROLE.items():
            r = await k.call(role, "GET", "/api/auth/me")
            assert r.status_code == 200
            me = r.json()
            assert me["keyId"] == key_id and me["roles"] == [role] and me["authEnabled"]
            assert me["taskTypes"] == (["a_*", "b"] if role == "worker" else [])
        assert_envelope(await k.g.client.get("/api/auth/me"), 401)
    # Authentication off: everything is open, the caller is an admin.
    r = await client.get("/api/auth/me")
    assert r.json() == {"authEnabled": False, "keyId": "", "roles": ["admin"], "taskTypes": []}
    # ... but no key can be made for the day authentication is turned on.
    r = await client.post("/api/admin/keys", json={"keyId": "early", "roles": ["admin"]})
    assert "not enabled" in assert_envelope(r, 404)["message"]


@pytest.mark.timeout(60)
async def test_admins_manage_keys_and_operators_cannot(
    make_gateway: Callable[..., Any], names: Names, stack: Any
) -> None:
    task_type = names("acc_made")
    key_id = names("made-key")
    new_key = {"keyId": key_id, "roles": ["worker"], "taskTypes": [task_type]}
    async with role_gateway(make_gateway, ("x",)) as k:
        for role in ("operator", "viewer", "worker"):
            assert_envelope(await k.call(role, "POST", "/api/admin/keys", json=new_key), 403)
            assert_envelope(await k.call(role, "GET", "/api/admin/keys"), 403)
            assert_envelope(await k.call(role, "DELETE", "/api/admin/keys/adm"), 403)
        r = await k.call("admin", "POST", "/api/admin/keys", json=new_key)
        assert r.status_code == 200, r.text
        made = r.json()
        assert made["keyId"] == key_id and made["roles"] == ["worker"]
        assert "secretHash" not in made and len(made["keySecret"]) >= 32
        secret = made["keySecret"]
        assert_envelope(await k.call("admin", "POST", "/api/admin/keys", json=new_key), 409)
        r = await k.call("admin", "POST", "/api/admin/keys", json={**new_key, "keyId": "adm"})
        assert_envelope(r, 409)
        for bad in ({**new_key, "roles": ["root"]}, {**new_key, "taskTypes": []},
                    {**new_key, "keyId": "a b"}, {"keyId": "v", "roles": "viewer"}):  # fmt: skip
            assert_envelope(await k.call("admin", "POST", "/api/admin/keys", json=bad), 400)
        r = await k.call("admin", "GET", "/api/admin/keys")
        listed = {entry["keyId"]: entry for entry in r.json()}
        assert listed[key_id]["source"] == "store" and listed[key_id]["createdBy"] == "adm"
        assert listed["ops"] == {"keyId": "ops", "source": "config", "roles": ["operator"],
                                 "taskTypes": []}  # fmt: skip
        assert secret not in r.text and "secretHash" not in r.text

        # The new key works, with its grant, on this replica and on another one.
        token = await _token(k.g.client, key_id, secret)
        headers = {"X-Authorization": token}
        r = await k.g.client.get(f"/api/tasks/poll/{task_type}", headers=headers)
        assert r.status_code == 204, r.text
        r = await k.g.client.get("/api/tasks/poll/elsewhere", headers=headers)
        assert_envelope(r, 403)
        auth = AuthSettings(enabled=True, keys=SECRETS)
        async with make_gateway(auth=auth) as replica:
            r = await replica.client.get("/api/auth/me", headers=headers)
            assert r.json()["roles"] == ["worker"], r.text

        # Removed, its tokens and its secret stop working at once on this replica.
        assert_envelope(await k.call("admin", "DELETE", "/api/admin/keys/ops"), 409)
        r = await k.call("admin", "DELETE", f"/api/admin/keys/{key_id}")
        assert r.status_code == 200, r.text
        assert_envelope(await k.call("admin", "DELETE", f"/api/admin/keys/{key_id}"), 404)
        r = await k.g.client.get("/api/auth/me", headers=headers)
        assert assert_envelope(r, 401)["error"] == "INVALID_TOKEN"
        r = await k.g.client.post("/api/token", json={"keyId": key_id, "keySecret": secret})
        assert_envelope(r, 401)


def test_keys_with_roles_from_the_environment() -> None:
    env = {
        "PODIUM_AUTH_ENABLED": "true",
        "PODIUM_AUTH_KEYS": "old:secret-old,ops:secret-ops:operator,"
        "w:secret-w:worker=billing_*|email,vw:secret-vw:viewer+worker=a",
    }
    auth = GatewaySettings.from_env(env).auth
    assert auth.keys["old"] == "secret-old"
    assert auth.grant("old") == Grant(("admin",))  # an entry without a role is an admin
    assert auth.grant("ops") == Grant(("operator",))
    assert auth.grant("w") == Grant(("worker",), ("billing_*", "email"))
    assert auth.grant("vw") == Grant(("viewer", "worker"), ("a",))
    assert auth.grant("w").may_work_on("billing_charge")
    assert not auth.grant("w").may_work_on("emails") and not auth.grant("ops").may_work_on("a")
    assert "secret" not in repr(auth) and "worker=billing_*|email" in repr(auth)
    for bad, says in (
        ("a:secret-aa:boss", "unknown role"),
        ("a:secret-aa:worker", "needs its task types"),
        ("a:secret-aa:viewer=x", "only the worker role"),
        ("a:secret-aa:worker=bad type", "pattern"),
        ("a:secret-aa,a:secret-bb", "given twice"),
        ("a b:secret-aa", "key id"),
        ("a:sec:ret-aa-long", "secret may not contain ':'"),
    ):
        with pytest.raises(ConfigError) as exc:
            GatewaySettings.from_env({"PODIUM_AUTH_KEYS": bad})
        assert says in exc.value.message, exc.value.message
        assert exc.value.data.get("variable", "PODIUM_AUTH_KEYS") == "PODIUM_AUTH_KEYS"
        assert "ret-aa-long" not in exc.value.message


def test_the_deploy_examples_give_keys_with_roles() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy"
    examples = {
        "k8s/base/secret.example.yaml": r'^  PODIUM_AUTH_KEYS: "([^"]+)"$',
        "compose/.env.example": r"^PODIUM_AUTH_KEYS=(\S+)$",
        "systemd/env/gateway-secrets.env.example": r"^PODIUM_AUTH_KEYS=(\S+)$",
    }
    for name, pattern in examples.items():
        match = re.search(pattern, (root / name).read_text(), re.M)
        assert match, name
        auth = GatewaySettings.from_env(
            {"PODIUM_AUTH_ENABLED": "true", "PODIUM_AUTH_KEYS": match.group(1)}
        ).auth
        roles = {role for key_id in auth.keys for role in auth.grant(key_id).roles}
        assert {"admin", "operator", "worker"} <= roles, name
        workers = [k for k in auth.keys if auth.grant(k).has("worker")]
        assert workers and all(auth.grant(k).task_types != ("*",) for k in workers), name
