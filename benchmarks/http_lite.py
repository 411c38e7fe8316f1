"""A lean asyncio HTTP/1.1 client for the load generators (keep-alive, JSON bodies, h11).

httpx's async connection pool walks every connection for every queued request (and, where
``sniffio`` is not installed, retries a failed import per request): ~2-3 ms of CPU per request
on this machine, which on two cores is taken from the server being measured. This client costs
a tenth of that: one request at a time per connection, idle connections kept in a list.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import urlparse

import h11

ERRORS = (OSError, h11.ProtocolError, asyncio.IncompleteReadError, asyncio.TimeoutError)


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        reused = self._writer is not None
        try:
            return await self._request(method, target, body)
        except (OSError, h11.ProtocolError, asyncio.IncompleteReadError):
            self.close()
            if not reused:
                raise
            return await self._request(method, target, body)  # stale keep-alive: retry once

    async def _request(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._h11 = h11.Connection(h11.CLIENT)
        assert self._reader is not None
        headers = [("Host", self.host), ("Content-Length", str(len(body)))]
        if body:
            headers.append(("Content-Type", "application/json"))
        conn = self._h11
        out = conn.send(h11.Request(method=method, target=target, headers=headers))
        out += (conn.send(h11.Data(data=body)) if body else b"") + conn.send(h11.EndOfMessage())
        self._writer.write(out)
        status, chunks = 0, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await self._reader.read(65536)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            self.close()
        return status, b"".join(chunks)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Pool:
    """Idle connections to one server, created on demand."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.host, self.port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self.prefix = parsed.path.rstrip("/")
        self._idle: list[Connection] = []

    async def request(
        self, method: str, path: str, body: Any = None, timeout_s: float = 30.0
    ) -> tuple[int, bytes]:
        """(status, body bytes) of ``method`` ``path`` (after the URL's path prefix)."""
        conn = self._idle.pop() if self._idle else Connection(self.host, self.port)
        raw = json.dumps(body).encode() if body is not None else b""
        try:
            result = await asyncio.wait_for(
                conn.request(method, self.prefix + path, raw), timeout_s
            )
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return result

    def close(self) -> None:
        for conn in self._idle:
            conn.close()

    async def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """(status, decoded JSON or text or None)."""
        status, raw = await self.request(method, path, body)
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")
