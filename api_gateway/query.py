"""Conductor's search query language, parsed into a :class:`~podium.store.SearchQuery`.

``query`` is ``cond AND cond ...``; a condition is ``field = value``, ``field > value``,
``field < value`` or ``field IN (a,b)``. Quotes and parentheses around values are stripped.
Fields the store can filter on: workflowType, status, correlationId, workflowId, taskId,
taskType, taskDefName and startTime (epoch ms). Other fields (endTime, updateTime,
parentWorkflowId, classifier) and values with a ``*`` wildcard are accepted and not applied,
as Conductor ignores fields it does not know.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from podium.errors import InvalidArgument
from podium.store import SearchQuery

MAX_SEARCH_SIZE = 5000
DAY_MS = 86_400_000
#: A search walks one index bucket per day of its range: ranges are cut to this many days.
MAX_RANGE_DAYS = 366
_COND = re.compile(r"^\s*([A-Za-z]+)\s*(=|>|<|\bIN\b)\s*(.*?)\s*$", re.S)


@dataclass
class _Filters:
    workflow_types: list[str] = field(default_factory=list)
    task_types: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    correlation_id: str | None = None
    workflow_id: str | None = None
    task_id: str | None = None
    time_from: int | None = None
    time_to: int | None = None


def _values(op: str, raw: str) -> list[str]:
    text = raw.strip()
    if op == "IN":
        text = text.strip("()")
        items = text.split(",")
    else:
        items = [text]
    return [v.strip().strip("()").strip().strip("'\"") for v in items if v.strip()]


def _single(name: str, values: list[str]) -> str:
    if len(values) != 1:
        raise InvalidArgument(f"Search field {name} takes exactly one value", field="query")
    return values[0]


def _epoch_ms(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(
            f"Search field {name} takes epoch milliseconds, got {value!r}", field="query"
        ) from None


def _apply(f: _Filters, name: str, op: str, values: list[str]) -> None:
    if not values or any("*" in v for v in values):
        return  # a wildcard is not something the store indexes: no filter
    if name == "workflowType":
        f.workflow_types.extend(values)
    elif name in ("taskType", "taskDefName"):
        f.task_types.extend(values)
    elif name == "status":
        f.statuses.extend(v.upper() for v in values)
    elif name == "correlationId":
        f.correlation_id = _single(name, values)
    elif name == "workflowId":
        f.workflow_id = _single(name, values)
    elif name == "taskId":
        f.task_id = _single(name, values)
    elif name == "startTime":
        ms = _epoch_ms(name, _single(name, values))
        if op == ">":
            f.time_from = ms + 1
        elif op == "<":
            f.time_to = ms - 1
        else:
            f.time_from = f.time_to = ms


def bound_range(
    lo: int | None, hi: int | None, now_ms: int | None = None
) -> tuple[int | None, int | None]:
    """Cut a start-time range to at most MAX_RANGE_DAYS, ending no later than tomorrow.

    Without a range the store searches its own recent window; with one, every day of it
    costs an index read, so a range like ``startTime > 0`` must not mean fifty years.
    """
    if lo is None and hi is None:
        return None, None
    now = int(time.time() * 1000) if now_ms is None else now_ms
    top = now + DAY_MS if hi is None else min(hi, now + DAY_MS)
    bottom = top - MAX_RANGE_DAYS * DAY_MS
    return (bottom if lo is None else max(lo, bottom)), top


def parse_query(
    query: str | None,
    *,
    free_text: str | None = None,
    sort: str | None = None,
    start: int = 0,
    size: int = 100,
) -> SearchQuery:
    """A SearchQuery from Conductor's search parameters; InvalidArgument (400) if malformed."""
    if size > MAX_SEARCH_SIZE:
        raise InvalidArgument(
            f"Cannot return more than {MAX_SEARCH_SIZE} workflows. Please use pagination.",
            field="size",
        )
    f = _Filters()
    text = (query or "").strip()
    if text and text != "*":
        for cond in text.split(" AND "):
            if not cond.strip():
                continue
            match = _COND.match(cond)
            if match is None:
                raise InvalidArgument(f"Invalid search condition: {cond.strip()!r}", field="query")
            name, op, raw = match.groups()
            _apply(f, name, op.upper(), _values(op.upper(), raw))
    if f.time_from is not None and f.time_to is not None and f.time_from > f.time_to:
        raise InvalidArgument("The startTime range of the search is empty", field="query")
    f.time_from, f.time_to = bound_range(f.time_from, f.time_to)
    if f.time_from is not None and f.time_to is not None and f.time_from > f.time_to:
        f.time_from = f.time_to  # entirely in the future: an empty answer, not an error
    return SearchQuery(
        workflow_types=tuple(dict.fromkeys(f.workflow_types)),
        task_types=tuple(dict.fromkeys(f.task_types)),
        statuses=tuple(dict.fromkeys(f.statuses)),
        start_time_from_ms=f.time_from,
        start_time_to_ms=f.time_to,
        correlation_id=f.correlation_id,
        workflow_id=f.workflow_id,
        task_id=f.task_id,
        free_text=free_text or "*",
        sort=sort or "",
        start=start,
        size=size,
    )
