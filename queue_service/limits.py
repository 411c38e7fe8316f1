"""Limits and validation of what one call to the queue service may ask for.

The messages themselves and their payload encoding are in :mod:`podium.queue_client`, shared
with the clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podium.errors import InvalidArgument, LimitExceeded
from podium.queue_client import RawMessage

MAX_PRIORITY = 99


@dataclass(frozen=True)
class QueueLimits:
    """Configurable bounds on what one call may ask for."""

    max_batch: int = 1000
    max_payload_bytes: int = 1024 * 1024
    max_wait_ms: int = 60_000
    max_delay_ms: int = 10 * 365 * 24 * 3600 * 1000
    max_lease_ms: int = 7 * 24 * 3600 * 1000
    max_id_bytes: int = 256
    max_queue_name_bytes: int = 256


def check_queue_name(name: Any, limits: QueueLimits) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidArgument("queue name must be a non-empty string", field="queue")
    if len(name.encode()) > limits.max_queue_name_bytes:
        raise InvalidArgument(
            f"queue name longer than {limits.max_queue_name_bytes} bytes", field="queue"
        )
    if any(c in name for c in "{}") or any(c.isspace() for c in name):
        raise InvalidArgument(
            f"queue name {name!r} must not contain braces or whitespace", field="queue"
        )
    return name


def check_id(msg_id: Any, limits: QueueLimits) -> str:
    if not isinstance(msg_id, str) or not msg_id:
        raise InvalidArgument("message id must be a non-empty string", field="id")
    if len(msg_id.encode()) > limits.max_id_bytes:
        raise InvalidArgument(f"message id longer than {limits.max_id_bytes} bytes", field="id")
    return msg_id


def check_int(value: Any, field: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{field} must be an integer in [{low}, {high}]", field=field)
    return value


def check_ids(ids: Any, limits: QueueLimits) -> list[str]:
    if not isinstance(ids, list | tuple):
        raise InvalidArgument("ids must be a list of strings", field="ids")
    if len(ids) > limits.max_batch:
        raise LimitExceeded(f"at most {limits.max_batch} ids per call", field="ids")
    return [check_id(i, limits) for i in ids]


def checked_message(item: Any, limits: QueueLimits) -> RawMessage:
    """Build from the wire form ``[id, body, delay_ms, priority]``, validating each field."""
    if not isinstance(item, list | tuple) or len(item) != 4:
        raise InvalidArgument("a message is [id, body, delay_ms, priority]", field="messages")
    msg_id, body, delay_ms, priority = item
    if not isinstance(body, bytes):
        raise InvalidArgument("message body must be bytes", field="body")
    if len(body) > limits.max_payload_bytes:
        raise LimitExceeded(
            f"payload of {len(body)} bytes exceeds {limits.max_payload_bytes}",
            field="payload",
            id=msg_id,
        )
    return RawMessage(
        check_id(msg_id, limits),
        body,
        check_int(delay_ms, "delay_ms", 0, limits.max_delay_ms),
        check_int(priority, "priority", 0, MAX_PRIORITY),
    )
