"""Request body limits as pure ASGI middleware: size first, then JSON nesting depth.

A body is refused with 413 when its ``Content-Length`` says it is too large (before a byte is
read) or when the streamed bytes (chunked uploads) pass the limit; a JSON body nested deeper
than the limit gets a 400 before any parser sees it (Python's ``json`` would recurse on
it). The body is then handed to the app from memory: it is at most ``max_body_bytes``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api_gateway.errors import error_response
from api_gateway.settings import Limits

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = frozenset(b"[]{}")
_DELETE = bytes(b for b in range(256) if b not in _BRACKETS)
#: How much of a too-large streamed body is read and dropped so the client sees the 413.
DRAIN_LIMIT_BYTES = 8 * 1024 * 1024
#: Endpoints whose body is raw text, not JSON (Conductor's task log line).
RAW_TEXT_PATH = re.compile(r"^/api/tasks/[^/]+/log/?$")


def json_depth(body: bytes, stop_above: int | None = None) -> int:
    """The deepest nesting of arrays and objects in ``body`` (strings are skipped).

    Works on bytes that are not JSON too (it then measures brackets); ``stop_above`` lets a
    caller stop counting once the answer is known to be too deep.
    """
    openers = body.count(b"[") + body.count(b"{")
    if stop_above is not None and openers <= stop_above:
        return openers
    brackets = _STRING.sub(b'""', body).translate(None, _DELETE)
    steps = (1 if c in (0x5B, 0x7B) else -1 for c in brackets)
    deepest = 0
    for depth in itertools.accumulate(steps):
        if depth > deepest:
            deepest = depth
            if stop_above is not None and deepest > stop_above:
                break
    return deepest


class BodyLimits:
    """Caps the size and nesting depth of request bodies."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > max_bytes:
            await self._refuse(scope, receive, send, 413, _too_large(declared, max_bytes))
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > max_bytes:
                more = bool(message.get("more_body", False))
                if more and await _drain(receive, DRAIN_LIMIT_BYTES):
                    more = False
                # A client still sending when we answer may never read the answer: drain a
                # bounded amount first, and close the connection if it sends more than that.
                headers = {"Connection": "close"} if more else None
                response = error_response(413, _too_large(total, max_bytes), headers=headers)
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        limit = self.limits.max_json_depth
        if body and not RAW_TEXT_PATH.match(scope.get("path", "")):
            depth = json_depth(body, stop_above=limit)
            if depth > limit:
                message_text = f"JSON body is nested deeper than the limit of {limit} levels"
                await self._refuse(scope, receive, send, 400, message_text)
                return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, status: int, message: str
    ) -> None:
        response = error_response(status, message, headers={"Connection": "close"})
        await response(scope, receive, send)


def _too_large(size: int, limit: int) -> str:
    return f"Request body of {size} bytes or more exceeds the limit of {limit} bytes"


async def _drain(receive: Receive, limit: int) -> bool:
    """Read and drop the rest of a body; False if it is longer than ``limit``."""
    dropped = 0
    while dropped <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            return True
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
