"""Helpers shared by the Redis store modules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis import exceptions as rexc

from podium.errors import Unavailable


@contextlib.contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Turn the client's connection failures into :class:`Unavailable` (retryable)."""
    try:
        yield
    # ReadOnlyError: a primary that was just demoted by a failover, until the client moves on.
    except (
        rexc.ConnectionError, rexc.TimeoutError, rexc.BusyLoadingError, rexc.ReadOnlyError
    ) as exc:  # fmt: skip
        raise Unavailable(f"redis store unavailable during {what}: {exc}") from exc


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
