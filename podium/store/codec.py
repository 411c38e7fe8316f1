"""How records are stored: msgpack bytes, with a size limit. Never pickle."""

from __future__ import annotations

from typing import Any

import msgpack

from podium.errors import InvalidArgument, LimitExceeded, PodiumError


def encode(record: Any, limit: int, what: str, *, beside: int = 0) -> bytes:
    """Serialise ``record``; raise :class:`LimitExceeded` if it is over ``limit`` bytes, counting
    ``beside`` bytes stored with it (a workflow's input kept apart from its record)."""
    try:
        blob: bytes = msgpack.packb(record, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidArgument(f"{what} cannot be serialised: {exc}") from exc
    size = len(blob) + beside
    if size > limit:
        raise LimitExceeded(
            f"{what} is {size} bytes serialised, over the limit of {limit}",
            size=size,
            limit=limit,
        )
    return blob


def decode(blob: bytes | str) -> dict[str, Any]:
    """Read back a record written by :func:`encode`."""
    if isinstance(blob, str):
        raise PodiumError("stored record came back as text; the client must not decode replies")
    try:
        value = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData) as exc:
        raise PodiumError(f"stored record cannot be decoded: {exc}") from exc
    if not isinstance(value, dict):
        raise PodiumError(f"stored record is a {type(value).__name__}, not a map")
    return value


def with_input(record: dict[str, Any], input_blob: bytes | None) -> dict[str, Any]:
    """A workflow record read back, with its input if the store keeps that apart (``None``: the
    record holds its input itself, as records written before the split do)."""
    if input_blob is not None:
        try:
            record["input"] = msgpack.unpackb(input_blob, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise PodiumError(f"stored workflow input cannot be decoded: {exc}") from exc
    return record
