"""The audit trail: who called what state-changing operation, on what, when, with what result.

Every ``POST``, ``PUT``, ``DELETE`` and ``PATCH`` that reaches the gateway makes one record,
refused calls included (a 401 from :class:`~api_gateway.auth.AuthGate`, a 413 from the body
limits, a 400 from a handler): :class:`AuditTrail` is pure ASGI middleware placed outside
both. A record says

* who: ``keyId`` (the token's key, the key id claimed by a ``POST /api/token`` sign-in, or
  ``"anonymous"``), ``roles`` when the key has any, and ``client`` (the peer's address);
* what: ``method``, ``route`` (the template, ``/api/workflow/{workflowId}``), ``path``, and
  ``targets``: what the call named, from its path parameters, from its body where that is
  cheap (a task result's ids, a definition's name and version, a bulk call's workflow ids)
  and from its answer (the id of a workflow it started);
* when: ``time`` (epoch ms, when the request came) and ``tookMs``;
* result: ``status`` and, for a failure, ``error`` (the envelope's message).

Each record is one JSON line on the ``podium.audit`` logger, and (unless the mode is
``log``) is filed in the store under each target it names and under its key id, for
``GET /api/audit``. Filing happens in the background (:class:`AuditWriter`): records wait
in a bounded buffer and go to the store in batches, one round trip per batch, so a request
never waits for its record. The trade-off: a record the store refuses, or one that finds the
buffer full, is lost from the store (it is still in the log), counted and logged; it never
fails the request it describes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from podium.aio import OwnedTasks
from podium.config import Environ, env_int, env_str
from podium.errors import ConfigError
from podium.store import AuditEntry, AuditStore
from podium.types import JSON

log = logging.getLogger("podium.gateway")
#: The audit lines, on a logger of their own so that they can be routed and kept apart.
audit_log = logging.getLogger("podium.audit")

AUDITED_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
ANONYMOUS = "anonymous"
AuditMode = Literal["store", "log", "off"]
MODES: tuple[AuditMode, ...] = ("store", "log", "off")
DAY_MS = 86_400_000
#: A record naming more targets than this is filed under each with that target alone, and
#: under its key with the first this many (see :func:`entries_of`).
MAX_TARGETS_STORED = 10
#: Longest text kept in a record field (paths, names, error messages).
MAX_TEXT = 1000
#: Most bytes of a request or response body kept to read targets and error messages from.
MAX_CAPTURE_BYTES = 1024 * 1024
#: Which target field files a record under which lookup (``GET /api/audit?<kind>=``).
INDEXED_FIELDS = {
    "workflowId": "workflowId",
    "definition": "definition",
    "taskDef": "taskDef",
    "eventHandler": "eventHandler",
}
#: A failure to file records is logged at most this often (they are counted every time).
WARN_INTERVAL_S = 10.0


@dataclass(frozen=True)
class AuditSettings:
    """What the gateway does with audit records (``PODIUM_AUDIT_*``)."""

    #: ``store``: log line and filed in the store; ``log``: log line only; ``off``: nothing.
    mode: AuditMode = "store"
    #: How long filed records are kept.
    retention_days: int = 30
    #: Newest records kept per target on Redis (Cassandra keeps all for the retention).
    max_per_target: int = 1000
    #: Records waiting to be filed, at most; more are dropped (and counted).
    buffer: int = 20_000
    #: Most records filed in one round trip.
    batch: int = 500
    #: How long the first waiting record waits for others to share its round trip (ms).
    linger_ms: int = 50

    @property
    def retention_ms(self) -> int:
        return self.retention_days * DAY_MS

    @classmethod
    def from_env(cls, env: Environ) -> AuditSettings:
        mode = env_str(env, "PODIUM_AUDIT", "store").strip().lower()
        if mode not in MODES:
            raise ConfigError(
                f"PODIUM_AUDIT={mode!r} must be one of {', '.join(MODES)}", variable="PODIUM_AUDIT"
            )
        return cls(
            mode=mode,
            retention_days=env_int(env, "PODIUM_AUDIT_RETENTION_DAYS", 30, minimum=1, maximum=3650),
            max_per_target=env_int(
                env, "PODIUM_AUDIT_MAX_PER_TARGET", 1000, minimum=1, maximum=1_000_000
            ),
            buffer=env_int(env, "PODIUM_AUDIT_BUFFER", 20_000, minimum=100, maximum=10_000_000),
            linger_ms=env_int(env, "PODIUM_AUDIT_LINGER_MS", 50, minimum=0, maximum=10_000),
        )


# -- what a call targets ----------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return value[:MAX_TEXT] if isinstance(value, str) and value else None


def _path_targets(route: str, params: dict[str, Any]) -> JSON:
    """The target named by a route's path parameters (one per route)."""
    target: JSON = {}
    for name, value in params.items():
        text = _text(str(value))
        if text is None:
            continue
        if name == "name":
            if route.startswith("/api/metadata/"):
                target["definition"] = text
            elif route.startswith("/api/event"):
                target["eventHandler"] = text
            elif route.startswith("/api/scheduler"):
                target["schedule"] = text
            else:
                target["workflowName"] = text
        elif name == "tasktype":
            target["taskDef"] = text
        elif name in ("taskRefName", "taskReferenceName"):
            target["taskReferenceName"] = text
        elif name == "status":
            target["taskStatus"] = text
        elif name == "keyId":  # the access key a call manages, not the caller's
            target["accessKey"] = text
        elif name == "version":
            target["version"] = int(value) if str(value).isdigit() else text
        else:  # workflowId, taskId, taskType
            target[name] = text
    return target


def _named(body: Any, field: str, with_version: bool = False) -> JSON:
    """``{field: body["name"]}`` (and its ``version``) of one definition-like body."""
    if not isinstance(body, dict):
        return {}
    out: JSON = {}
    name = _text(body.get("name"))
    if name is not None:
        out[field] = name
    version = body.get("version")
    if with_version and isinstance(version, int) and not isinstance(version, bool):
        out["version"] = version
    return out


def _task_result(body: Any) -> list[JSON]:
    if not isinstance(body, dict):
        return []
    out: JSON = {}
    for field, key in (("workflowInstanceId", "workflowId"), ("taskId", "taskId"),
                       ("status", "taskStatus")):  # fmt: skip
        text = _text(body.get(field))
        if text is not None:
            out[key] = text
    return [out]


def _each(body: Any, make: Callable[[Any], JSON]) -> list[JSON]:
    items = body if isinstance(body, list) else []
    return [t for t in (make(item) for item in items) if t]


def _workflow_ids(body: Any) -> list[JSON]:
    """A bulk call's body: a list of workflow ids."""
    return _each(body, lambda item: {"workflowId": _text(item)} if _text(item) else {})


def _workflow_def(body: Any) -> JSON:
    return _named(body, "definition", with_version=True)


def _start(body: Any) -> list[JSON]:
    return [_named(body, "workflowName", with_version=True)]


def _export_document(body: Any) -> list[JSON]:
    """An import's document: each definition it names."""
    if not isinstance(body, dict):
        return []
    return [
        *_each(body.get("workflowDefs"), _workflow_def),
        *_each(body.get("taskDefs"), lambda d: _named(d, "taskDef")),
        *_each(body.get("eventHandlers"), lambda d: _named(d, "eventHandler")),
    ]


#: Where a route's body names its targets.
_BODY_TARGETS: dict[tuple[str, str], Callable[[Any], list[JSON]]] = {
    ("POST", "/api/tasks"): _task_result,
    ("POST", "/api/tasks/update-v2"): _task_result,
    ("POST", "/api/workflow"): _start,
    ("POST", "/api/workflow/test"): _start,
    ("POST", "/api/metadata/workflow"): lambda body: [_workflow_def(body)],
    ("POST", "/api/metadata/workflow/validate"): lambda body: [_workflow_def(body)],
    ("PUT", "/api/metadata/workflow"): lambda body: _each(body, _workflow_def),
    ("POST", "/api/metadata/taskdefs"): lambda body: _each(body, lambda d: _named(d, "taskDef")),
    ("PUT", "/api/metadata/taskdefs"): lambda body: [_named(body, "taskDef")],
    ("POST", "/api/event"): lambda body: [_named(body, "eventHandler")],
    ("PUT", "/api/event"): lambda body: [_named(body, "eventHandler")],
    ("POST", "/api/scheduler/schedules"): lambda body: [_named(body, "schedule")],
    ("POST", "/api/admin/import"): _export_document,
    **{
        (method, f"/api/workflow/bulk/{op}"): _workflow_ids
        for method, op in (("PUT", "pause"), ("PUT", "resume"), ("POST", "restart"),
                           ("POST", "retry"), ("POST", "terminate"), ("DELETE", "remove"),
                           ("DELETE", "terminate-remove"))
    },
}  # fmt: skip
#: Routes whose successful answer names the workflow they started.
_STARTS = frozenset(
    {
        ("POST", "/api/workflow"),
        ("POST", "/api/workflow/{name}"),
        ("POST", "/api/workflow/execute/{name}/{version}"),
        ("POST", "/api/workflow/test"),
    }
)


def _started_id(reply: bytes) -> str | None:
    """The workflow id in a start's answer: the text itself, or a JSON object's workflowId."""
    text = reply.strip()
    if not text.startswith(b"{"):
        return _text(text.decode("utf-8", "replace"))
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return _text(value.get("workflowId")) if isinstance(value, dict) else None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # the handler answered the client about it; no targets from it
        return None


#: The request's JSON as its handler parsed it (``body_json`` keeps it in the scope's state),
#: so a task update's body is not parsed a second time for its record.
PARSED_BODY = "parsed_body"
_UNPARSED = object()


def targets_of(
    method: str,
    route: str | None,
    params: dict[str, Any],
    body: bytes,
    status: int,
    reply: bytes,
    parsed: Any = _UNPARSED,
) -> list[JSON]:
    """What a call named: its path target merged into the first body target, and the
    workflow a start made. ``parsed`` is the body as the handler read it, if it did."""
    if route is None:
        return []
    path_target = _path_targets(route, params)
    extract = _BODY_TARGETS.get((method, route))
    targets: list[JSON] = []
    if extract is not None and body:
        targets = extract(_json(body) if parsed is _UNPARSED else parsed)
    targets = [t for t in targets if t]
    if path_target:
        targets = [{**path_target, **(targets[0] if targets else {})}, *targets[1:]]
    if (method, route) in _STARTS and 200 <= status < 300:
        workflow_id = _started_id(reply)
        if workflow_id is not None:
            if targets:
                targets[0] = {**targets[0], "workflowId": workflow_id}
            else:
                targets = [{"workflowId": workflow_id}]
    return targets


def error_message(reply: bytes) -> str:
    """The envelope's message of a failed call (or the start of its body)."""
    value = _json(reply)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        return str(value["message"])[:MAX_TEXT]
    return reply[:MAX_TEXT].decode("utf-8", "replace")


def entries_of(record: JSON) -> Iterator[AuditEntry]:
    """The record filed under its key id and under each indexed target it names.

    A record naming more than :data:`MAX_TARGETS_STORED` targets (a bulk call) is filed under
    each target with that target alone (``targetCount`` says how many there were), so that
    a bulk call on 1,000 workflows does not store 1,000 copies of a 1,000-id list.
    """
    targets: list[JSON] = record.get("targets") or []
    many = len(targets) > MAX_TARGETS_STORED
    time_ms, record_id = int(record["time"]), str(record["id"])
    head = {**record, "targets": targets[:MAX_TARGETS_STORED]} if many else record
    yield AuditEntry("keyId", str(record["keyId"]), time_ms, record_id, head)
    seen: set[tuple[str, str]] = set()
    for target in targets:
        for field, kind in INDEXED_FIELDS.items():
            value = target.get(field)
            if not isinstance(value, str) or (kind, value) in seen:
                continue
            seen.add((kind, value))
            view = {**record, "targets": [target]} if many else record
            yield AuditEntry(kind, value, time_ms, record_id, view)


# -- filing records ---------------------------------------------------------------------------


class AuditWriter:
    """Writes each record as a log line and files it in the store in the background.

    :meth:`submit` never blocks and never raises: the record's entries go into a bounded
    buffer that one background task empties in batches (a batch is one store call, one
    pipeline on Redis). The first entry to find the buffer empty waits ``linger_ms`` for
    others, so that a steady trickle of calls makes a few round trips a second rather than
    one per call. When the store is slower than the calls, the batches grow; when the
    buffer is full, new entries are dropped. Both losses are counted in
    ``podium_gateway_audit_records{outcome="dropped"|"failed"}`` and logged.
    """

    def __init__(
        self,
        settings: AuditSettings,
        store: Callable[[], AuditStore],
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._store = store
        self._clock = clock
        self._buffer: collections.deque[AuditEntry] = collections.deque()
        self._wake = asyncio.Event()
        #: set by close(): nothing more is taken, and what waits is filed without lingering
        self._closing = asyncio.Event()
        self._tasks = OwnedTasks("audit", log)
        self._running = False
        self._last_warning = -1e9
        self.records = Counter(
            "podium_gateway_audit_records",
            "Audit records and filed entries, by outcome (logged, stored, failed, dropped)",
            ["outcome"],
            registry=registry,
        )
        self._logged = self.records.labels("logged")

    @property
    def storing(self) -> bool:
        return self.settings.mode == "store"

    def submit(self, record: JSON) -> None:
        """Log ``record`` and queue it for the store."""
        if self.settings.mode == "off":
            return
        if audit_log.isEnabledFor(logging.INFO):
            audit_log.info(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            self._logged.inc()
        if not self.storing or self._closing.is_set():
            return
        dropped = 0
        for entry in entries_of(record):
            if len(self._buffer) >= self.settings.buffer:
                dropped += 1
            else:
                self._buffer.append(entry)
        if dropped:
            self.records.labels("dropped").inc(dropped)
            self._warn(f"{dropped} audit entries dropped: {self.settings.buffer} wait already")
        if not self._running:
            self._running = True
            self._tasks.spawn(self._run(), "audit-writer")
        self._wake.set()

    @property
    def waiting(self) -> int:
        """Entries not filed yet."""
        return len(self._buffer)

    async def _run(self) -> None:
        try:
            while True:
                if not self._buffer:
                    if self._closing.is_set():
                        return
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if self.settings.linger_ms and not self._closing.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), self.settings.linger_ms / 1000)
                while self._buffer:
                    size = min(len(self._buffer), self.settings.batch)
                    await self._file([self._buffer.popleft() for _ in range(size)])
        finally:
            self._running = False

    async def _file(self, batch: list[AuditEntry]) -> None:
        try:
            await self._store().append(
                batch,
                retention_ms=self.settings.retention_ms,
                max_per_target=self.settings.max_per_target,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.records.labels("failed").inc(len(batch))
            self._warn(f"{len(batch)} audit entries could not be stored: {exc!r}")
        else:
            self.records.labels("stored").inc(len(batch))

    def _warn(self, message: str) -> None:
        now = self._clock()
        if now - self._last_warning >= WARN_INTERVAL_S:
            self._last_warning = now
            log.warning("%s (counted in podium_gateway_audit_records)", message)

    async def close(self, grace_s: float = 5.0) -> None:
        """File what waits (for up to ``grace_s``), then stop; idempotent."""
        self._closing.set()
        self._wake.set()
        await self._tasks.drain(grace_s)


# -- the middleware ---------------------------------------------------------------------------


def _route_of(scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """The route template and path parameters of a request, routed or refused before routing."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        for candidate in getattr(app, "routes", ()):
            match, child = candidate.matches(scope)
            if match != Match.NONE:
                route, params = candidate, child.get("path_params", {})
                break
        else:
            return None, {}
    else:
        params = scope.get("path_params") or {}
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return None, {}
    return _template(path), dict(params)


@functools.lru_cache(maxsize=1024)
def _template(path: str) -> str:
    """A route's path as the OpenAPI document writes it (``{id:path}`` → ``{id}``)."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


class AuditTrail:
    """Pure ASGI middleware making one audit record per state-changing call.

    It keeps references to the request's body chunks and the answer's (up to
    :data:`MAX_CAPTURE_BYTES`, no copies), and builds the record once the answer is sent, so
    the client never waits for it. Nothing in here can fail the request: an error building
    a record is logged and counted.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS:
            await self.app(scope, receive, send)
            return
        gateway = (scope.get("state") or {}).get("gateway")
        writer: AuditWriter | None = getattr(gateway, "audit", None)
        if writer is None or writer.settings.mode == "off":
            await self.app(scope, receive, send)
            return
        started = time.time()
        body: list[bytes] = []
        reply: list[bytes] = []
        sizes = [0, 0]
        status = 500

        async def receive_body() -> Message:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk and sizes[0] < MAX_CAPTURE_BYTES:
                body.append(chunk)
                sizes[0] += len(chunk)
            return message

        async def send_reply(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk and sizes[1] < MAX_CAPTURE_BYTES:
                    reply.append(chunk)
                    sizes[1] += len(chunk)
            await send(message)

        try:
            await self.app(scope, receive_body, send_reply)
        finally:
            try:
                writer.submit(make_record(scope, started, b"".join(body), status, b"".join(reply)))
            except Exception:
                writer.records.labels("failed").inc()
                log.exception("an audit record could not be made for %s", scope.get("path"))


def make_record(scope: Scope, started: float, body: bytes, status: int, reply: bytes) -> JSON:
    """The audit record of one call (see the module's docstring for its fields)."""
    method = str(scope["method"])
    state = scope.get("state") or {}
    route, params = _route_of(scope)
    key_id = state.get("key_id")
    if route == "/api/token":  # a sign-in: who is the key it claims
        claimed = _json(body)
        key_id = _text(claimed.get("keyId")) if isinstance(claimed, dict) else None
    record: JSON = {
        # 128 random bits: unique, not secret (the module's generator, seeded from os.urandom
        # and again in a forked child), a fifth of uuid4's cost, which reads os.urandom
        "id": f"{random.getrandbits(128):032x}",
        "time": int(started * 1000),
        "keyId": key_id if isinstance(key_id, str) and key_id else ANONYMOUS,
    }
    roles = state.get("roles")
    if roles:
        record["roles"] = [str(r) for r in roles]
    client = scope.get("client")
    if client:
        record["client"] = str(client[0])
    record["method"] = method
    record["route"] = route
    record["path"] = str(scope.get("path", ""))[:MAX_TEXT]
    parsed = scope.get("state", {}).get(PARSED_BODY, _UNPARSED)
    record["targets"] = targets_of(method, route, params, body, status, reply, parsed)
    if len(record["targets"]) > MAX_TARGETS_STORED:
        record["targetCount"] = len(record["targets"])
    record["status"] = status
    if status >= 400:
        record["error"] = error_message(reply)
    record["tookMs"] = int((time.time() - started) * 1000)
    return record
