"""The Python client of the queue service (same operation names as the service), and the
messages it pushes and pops.

A payload is stored as bytes: a one-byte kind, then the data. ``b`` marks raw bytes, ``m`` a
msgpack-encoded value. Clients encode and decode; the service and Redis only move bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from podium import codec
from podium.aio import MERGED_IN_FLIGHT, Merged
from podium.errors import ProtocolError, error_from_wire
from podium.rpc import RpcClient

_KIND_BYTES = b"b"
_KIND_MSGPACK = b"m"


@dataclass(frozen=True)
class Message:
    """A message to push. ``payload`` is bytes or any msgpack-able value."""

    id: str
    payload: Any = None
    delay_ms: int = 0
    priority: int = 0


@dataclass(frozen=True)
class Received:
    """A popped (leased) message."""

    id: str
    payload: Any
    priority: int


@dataclass(frozen=True)
class MessageInfo:
    """Where one message is: ``ready``, ``delayed`` or ``leased``, and when (due or expiry)."""

    id: str
    state: str
    priority: int
    time_ms: int
    payload: Any


def encode_payload(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return _KIND_BYTES + bytes(payload)
    return _KIND_MSGPACK + codec.pack(payload)


def decode_payload(body: bytes) -> Any:
    kind, data = body[:1], body[1:]
    if kind == _KIND_BYTES:
        return data
    if kind == _KIND_MSGPACK:
        return codec.unpack(data)
    raise ProtocolError(f"payload with unknown kind byte {kind!r}")


@dataclass(frozen=True)
class RawMessage:
    """A message as the engine stores it: the payload already encoded."""

    id: str
    body: bytes
    delay_ms: int
    priority: int

    def to_wire(self) -> list[Any]:
        return [self.id, self.body, self.delay_ms, self.priority]

    @classmethod
    def from_message(cls, m: Message) -> RawMessage:
        return cls(m.id, encode_payload(m.payload), m.delay_ms, m.priority)


T = TypeVar("T")

#: batches of at most this many operations are merged, up to this many in one call
_MERGED_OPS, _MERGED_BATCHES = 16, 60

#: messages or ids sent in one operation: more are split (the queue service's
#: PODIUM_QUEUE_MAX_BATCH may not be set lower)
MAX_PER_OPERATION = 1000


def _chunks(items: Sequence[T], size: int = MAX_PER_OPERATION) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)] or [items]


class QueueClient:
    """Calls the queue service over RPC; payloads are encoded and decoded here."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc
        #: small batches sent while others are on their way go in one call (at most
        #: _MERGED_BATCHES times _MERGED_OPS operations: within the service's default limit)
        self._batches: Merged[list[list[Any]], list[list[Any]]] = Merged(
            self._send_batches,
            max_in_flight=MERGED_IN_FLIGHT,
            max_items=_MERGED_BATCHES,
            name="queue-batches",
        )

    async def _send_batches(self, batches: list[list[list[Any]]]) -> list[Any]:
        ops = [op for batch in batches for op in batch]
        answers = await self.rpc.call("queue.batch", {"ops": ops})
        out, at = [], 0
        for batch in batches:
            out.append(answers[at : at + len(batch)])
            at += len(batch)
        return out

    @classmethod
    def connect(cls, addresses: Sequence[str], **kwargs: Any) -> QueueClient:
        return cls(RpcClient(addresses, **kwargs))

    async def close(self) -> None:
        await self._batches.close()
        await self.rpc.close()

    async def _each_chunk(
        self, method: str, queue: str, field: str, items: list[Any]
    ) -> list[bool]:
        """``method`` over ``items``, at most MAX_PER_OPERATION a call; the answers joined."""
        answers = await asyncio.gather(
            *(self.rpc.call(method, {"queue": queue, field: list(c)}) for c in _chunks(items))
        )
        return [bool(a) for answer in answers for a in answer]

    async def push(self, queue: str, messages: Sequence[Message]) -> list[bool]:
        wire = [RawMessage.from_message(m).to_wire() for m in messages]
        return await self._each_chunk("queue.push", queue, "messages", wire)

    async def push_if_absent(self, queue: str, messages: Sequence[Message]) -> list[bool]:
        wire = [RawMessage.from_message(m).to_wire() for m in messages]
        return await self._each_chunk("queue.push_if_absent", queue, "messages", wire)

    async def pop(
        self, queue: str, count: int = 1, lease_ms: int = 60_000, wait_ms: int = 0
    ) -> list[Received]:
        params = {"queue": queue, "count": count, "lease_ms": lease_ms, "wait_ms": wait_ms}
        timeout = self.rpc.timeout_s + wait_ms / 1000.0
        got = await self.rpc.call("queue.pop", params, timeout_s=timeout)
        return [Received(i, decode_payload(b), p) for i, b, p in got]

    async def ack(self, queue: str, ids: Sequence[str]) -> list[bool]:
        return await self._each_chunk("queue.ack", queue, "ids", list(ids))

    async def remove(self, queue: str, ids: Sequence[str]) -> list[bool]:
        return await self._each_chunk("queue.remove", queue, "ids", list(ids))

    async def set_unack_timeout(self, queue: str, msg_id: str, lease_ms: int) -> bool:
        params = {"queue": queue, "id": msg_id, "lease_ms": lease_ms}
        return bool(await self.rpc.call("queue.set_unack_timeout", params))

    async def nack(self, queue: str, msg_id: str) -> bool:
        return bool(await self.rpc.call("queue.nack", {"queue": queue, "id": msg_id}))

    async def postpone(self, queue: str, msg_id: str, delay_ms: int, priority: int = 0) -> bool:
        params = {"queue": queue, "id": msg_id, "delay_ms": delay_ms, "priority": priority}
        return bool(await self.rpc.call("queue.postpone", params))

    async def schedule(
        self, queue: str, msg_id: str, delay_ms: int, fence: int, priority: int = 0
    ) -> bool:
        params = _schedule_params(queue, msg_id, delay_ms, fence, priority)
        return bool(await self.rpc.call("queue.schedule", params))

    async def contains(self, queue: str, msg_id: str) -> bool:
        return bool(await self.rpc.call("queue.contains", {"queue": queue, "id": msg_id}))

    async def get(self, queue: str, msg_id: str) -> MessageInfo | None:
        got = await self.rpc.call("queue.get", {"queue": queue, "id": msg_id})
        if got is None:
            return None
        state, priority, time_ms, body = got
        return MessageInfo(msg_id, state, priority, time_ms, decode_payload(body))

    async def size(self, queue: str) -> int:
        return int(await self.rpc.call("queue.size", {"queue": queue}))

    async def details(self, queue: str) -> dict[str, dict[str, int]]:
        return dict(await self.rpc.call("queue.details", {"queue": queue}))

    async def flush(self, queue: str) -> None:
        await self.rpc.call("queue.flush", {"queue": queue})

    async def list_queues(self) -> list[str]:
        return list(await self.rpc.call("queue.list_queues"))

    def batch(self) -> QueueBatch:
        """Collect several operations and send them in one call (:meth:`QueueBatch.run`)."""
        return QueueBatch(self)

    async def ping(self) -> str:
        return str(await self.rpc.call("queue.ping"))


class QueueBatch:
    """Operations sent in one RPC and run concurrently by the queue service.

    ``run()`` raises the first operation's error if any failed (after all ran); every
    operation here is idempotent, so the whole batch can simply be sent again.
    """

    def __init__(self, client: QueueClient) -> None:
        self.client = client
        self.ops: list[list[Any]] = []

    def push(self, queue: str, messages: Sequence[Message]) -> QueueBatch:
        wire = [RawMessage.from_message(m).to_wire() for m in messages]
        for chunk in _chunks(wire):
            self.ops.append(["push", {"queue": queue, "messages": list(chunk)}])
        return self

    def remove(self, queue: str, ids: Sequence[str]) -> QueueBatch:
        for chunk in _chunks(list(ids)):
            self.ops.append(["remove", {"queue": queue, "ids": list(chunk)}])
        return self

    def ack(self, queue: str, ids: Sequence[str]) -> QueueBatch:
        for chunk in _chunks(list(ids)):
            self.ops.append(["ack", {"queue": queue, "ids": list(chunk)}])
        return self

    def schedule(
        self, queue: str, msg_id: str, delay_ms: int, fence: int, priority: int = 0
    ) -> QueueBatch:
        self.ops.append(["schedule", _schedule_params(queue, msg_id, delay_ms, fence, priority)])
        return self

    async def run(self) -> list[Any]:
        if not self.ops:
            return []
        if len(self.ops) > _MERGED_OPS:
            answers = await self.client.rpc.call("queue.batch", {"ops": self.ops})
        else:  # with other small batches under way at the time, if any
            answers = await self.client._batches(self.ops)
        for ok, value in answers:
            if not ok:
                raise error_from_wire(value)
        return [value for _, value in answers]


def _schedule_params(
    queue: str, msg_id: str, delay_ms: int, fence: int, priority: int
) -> dict[str, Any]:
    return {
        "queue": queue,
        "id": msg_id,
        "delay_ms": delay_ms,
        "fence": fence,
        "priority": priority,
    }
