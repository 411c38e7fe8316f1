"""Conductor's HTTP system task, executed by the sweeper with an outbound-host policy.

The request is ``inputData.http_request`` (or the whole input): ``uri``, ``method``,
``headers``, ``body``, ``accept``, ``contentType``, ``connectionTimeOut``, ``readTimeOut``.
The output is always ``{"response": {"body", "headers", "statusCode", "reasonPhrase"}}``;
2xx completes the task, anything else fails it (the TaskDef's retries apply).

The policy guards against server-side request forgery: by default a host that resolves to a
loopback, link-local, private, multicast or reserved address is refused, unless the operator
allows it explicitly (``PODIUM_HTTP_ALLOW_HOSTS``); ``PODIUM_HTTP_DENY_HOSTS`` refuses more.
An entry of either list is a host name, an address or a network (CIDR), optionally with a port
(``127.0.0.1:8081``, ``[::1]:8081``, ``svc.local:443``): with one, it covers that port only.
Responses are read up to a size limit, and redirects are not followed unless allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from podium.config import Environ, env_bool, env_int, env_list
from podium.errors import ConfigError
from podium.types import JSON

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HttpPolicy:
    """Which hosts HTTP tasks may call, and the bounds on a call."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    max_response_bytes: int = 1024 * 1024
    max_timeout_ms: int = 60_000
    follow_redirects: bool = False
    allow_rules: tuple[_Rule, ...] = field(default=(), repr=False)
    deny_rules: tuple[_Rule, ...] = field(default=(), repr=False)

    @classmethod
    def from_env(cls, env: Environ) -> HttpPolicy:
        allow = tuple(env_list(env, "PODIUM_HTTP_ALLOW_HOSTS", []))
        deny = tuple(env_list(env, "PODIUM_HTTP_DENY_HOSTS", []))
        return cls.build(
            allow=allow,
            deny=deny,
            max_response_bytes=env_int(
                env, "PODIUM_HTTP_MAX_RESPONSE_BYTES", 1024 * 1024, minimum=1
            ),
            max_timeout_ms=env_int(env, "PODIUM_HTTP_MAX_TIMEOUT_MS", 60_000, minimum=1),
            follow_redirects=env_bool(env, "PODIUM_HTTP_FOLLOW_REDIRECTS", False),
        )

    @classmethod
    def build(cls, allow: Sequence[str] = (), deny: Sequence[str] = (), **kw: Any) -> HttpPolicy:
        return cls(
            allow=tuple(allow),
            deny=tuple(deny),
            allow_rules=_rules(allow, "PODIUM_HTTP_ALLOW_HOSTS"),
            deny_rules=_rules(deny, "PODIUM_HTTP_DENY_HOSTS"),
            **kw,
        )

    async def refusal(self, host: str, port: int | None = None) -> str | None:
        """None if ``host`` (on ``port``) may be called, else why not."""
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            return f"cannot resolve host {host!r}: {exc}"
        addrs = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if any(rule.covers(host, port, addrs) for rule in self.deny_rules):
            return f"host {host!r} is denied by PODIUM_HTTP_DENY_HOSTS"
        if any(rule.covers(host, port, addrs) for rule in self.allow_rules):
            return None
        for addr in addrs:
            kind = _restricted(addr)
            if kind:
                where = f"{host}:{port}" if port is not None else host
                return (
                    f"host {host!r} resolves to {kind} address {addr}, which HTTP tasks may not "
                    f"call unless {where} is listed in PODIUM_HTTP_ALLOW_HOSTS"
                )
        return None


@dataclass(frozen=True)
class _Rule:
    """One entry of an allow or deny list: a name or a network, and maybe a port."""

    name: str
    network: Network | None
    port: int | None

    def covers(self, host: str, port: int | None, addrs: Sequence[Address]) -> bool:
        if self.port is not None and port != self.port:
            return False
        if host.lower() == self.name:
            return True
        return self.network is not None and any(a in self.network for a in addrs)


def _rules(items: Sequence[str], variable: str) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for item in items:
        invalid = ConfigError(f"{variable} has an invalid entry {item!r}", variable=variable)
        host, port = _split_port(item)
        if not host or any(c.isspace() for c in host) or port == -1:
            raise invalid
        try:
            network: Network | None = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        rules.append(_Rule(host.lower(), network, port))
    return tuple(rules)


def _split_port(item: str) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port`` or a bare host, address or network; port -1 if invalid."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            return host, -1
        raw = rest[1:]
    elif item.count(":") == 1:
        host, raw = item.split(":")
    else:
        return item, None  # a name, an IPv4 address or network, or a bare IPv6 one
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        return host, -1
    return host, int(raw)


def _restricted(addr: Address) -> str | None:
    if addr.is_loopback:
        return "a loopback"
    if addr.is_link_local:
        return "a link-local"
    if addr.is_private:
        return "a private"
    if addr.is_multicast:
        return "a multicast"
    if addr.is_reserved or addr.is_unspecified:
        return "a reserved"
    return None


def _request_of(task: Mapping[str, Any]) -> Mapping[str, Any]:
    inp = task.get("inputData") or {}
    req = inp.get("http_request")
    return req if isinstance(req, Mapping) else inp


def _failed(
    task: Mapping[str, Any], reason: str, response: JSON | None = None, *, terminal: bool = False
) -> JSON:
    return {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": "FAILED_WITH_TERMINAL_ERROR" if terminal else "FAILED",
        "reasonForIncompletion": reason,
        "outputData": {"response": response if response is not None else reason},
    }


async def execute(
    task: Mapping[str, Any], policy: HttpPolicy, client: httpx.AsyncClient, worker_id: str
) -> JSON:
    """Run one HTTP task; returns the TaskResult to send to the decider."""
    req = _request_of(task)
    uri = req.get("uri")
    method = req.get("method")
    if not uri:
        return _failed(
            task, "Missing HTTP URI. See documentation for HttpTask for required input parameters"
        )
    if not method:
        return _failed(task, "No HTTP method specified")
    parts = urlsplit(str(uri))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _failed(task, f"HTTP URI {uri!r} is not an absolute http(s) URL", terminal=True)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return _failed(task, f"HTTP URI {uri!r} has an invalid port", terminal=True)
    refusal = await policy.refusal(parts.hostname, port)
    if refusal:
        return _failed(task, f"HTTP task refused: {refusal}", terminal=True)
    headers = {str(k): str(v) for k, v in (req.get("headers") or {}).items()}
    accept = req.get("accept") or "application/json"
    headers.setdefault("Accept", ", ".join(accept) if isinstance(accept, list) else str(accept))
    content: bytes | None = None
    if req.get("body") is not None:
        body = req["body"]
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.setdefault("Content-Type", str(req.get("contentType") or "application/json"))
    connect_ms = min(int(req.get("connectionTimeOut") or 3000), policy.max_timeout_ms)
    read_ms = min(int(req.get("readTimeOut") or 3000), policy.max_timeout_ms)
    timeout = httpx.Timeout(read_ms / 1000, connect=connect_ms / 1000)
    try:
        async with client.stream(
            str(method).upper(),
            str(uri),
            headers=headers,
            content=content,
            timeout=timeout,
            follow_redirects=policy.follow_redirects,
        ) as resp:
            raw = bytearray()
            async for chunk in resp.aiter_bytes():
                raw += chunk
                if len(raw) > policy.max_response_bytes:
                    return _failed(
                        task,
                        f"HTTP response larger than {policy.max_response_bytes} bytes "
                        "(PODIUM_HTTP_MAX_RESPONSE_BYTES)",
                    )
            response = {
                "body": _parse_body(bytes(raw)),
                "headers": {k: [v] for k, v in resp.headers.items()},
                "statusCode": resp.status_code,
                "reasonPhrase": resp.reason_phrase,
            }
    except httpx.HTTPError as exc:
        reason = f"Failed to invoke HTTP task due to: {type(exc).__name__}: {exc}"
        return _failed(task, reason)
    result: JSON = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "workerId": worker_id,
        "outputData": {"response": response},
    }
    if 200 <= response["statusCode"] < 300:
        async_complete = (task.get("inputData") or {}).get("asyncComplete") is True
        result["status"] = "IN_PROGRESS" if async_complete else "COMPLETED"
    else:
        body = response["body"]
        result["status"] = "FAILED"
        result["reasonForIncompletion"] = (
            body if isinstance(body, str) and body else json.dumps(body)
        ) or "No response from the remote service"
    return result


def _parse_body(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text
