"""Deep copies of JSON-shaped records, fast.

Operations never modify their inputs, so they copy the workflow record before working on
it; for plain JSON data a msgpack round trip (C code) is several times faster than
``copy.deepcopy``. Anything msgpack cannot carry falls back to ``copy.deepcopy``.
"""

from __future__ import annotations

import copy
from typing import Any, TypeVar

import msgpack

T = TypeVar("T")


def clone(value: T) -> T:
    """A deep copy of ``value`` (tuples come back as lists, as they would from JSON)."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        packed = msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return copy.deepcopy(value)
    out: Any = msgpack.unpackb(packed, raw=False, strict_map_key=False)
    return out  # type: ignore[no-any-return]
