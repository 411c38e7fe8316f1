"""uvicorn's HTTP protocol with each response's head and body sent in one write.

uvicorn writes a response's status line and headers as soon as the application starts the
response, then its body: two ``send`` system calls, two TCP segments, and often two wake-ups
of the client, for every answer of a few hundred bytes: the start, each update and each poll
of a workflow.
:class:`JoinedWritesProtocol` is uvicorn's own protocol (httptools) on a transport that holds a
write until the next one, and sends the two together (``writelines``: one ``writev`` on
uvloop); a write that no other follows in the same turn of the event loop (a lone head of a
streamed response, ``100 Continue``) is sent at the end of that turn. ``close()`` sends what
is held first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class JoinedWrites:
    """A transport whose consecutive writes within one turn of the loop go out together."""

    __slots__ = ("_flush_due", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._flush_due = False

    def write(self, data: bytes) -> None:
        if not self._held:
            self._held.append(data)
            if not self._flush_due:
                self._flush_due = True
                self._loop.call_soon(self._flush)
            return
        held, self._held = self._held, []
        held.append(data)
        self._transport.writelines(held)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def _flush(self) -> None:
        self._flush_due = False
        if self._held:
            held, self._held = self._held, []
            if not self._transport.is_closing():  # a connection lost meanwhile takes nothing
                self._transport.writelines(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        # everything else (extra info, reading, buffer limits, set_protocol) is the transport's
        return getattr(self._transport, name)


class JoinedWritesProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol on a :class:`JoinedWrites` transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(JoinedWrites(transport, self.loop))  # type: ignore[arg-type]
