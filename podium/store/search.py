"""Search over workflows and tasks without Elasticsearch.

A backend keeps, for each UTC day, index entries (time, id) of every workflow and task, one
index over all names and one per workflow type / task type. A search walks the day buckets
of its time range (newest first), loads the records those entries point to, applies every
filter to the records themselves (so an index entry that is stale or orphaned never shows),
then sorts and pages. It never scans all workflows: it reads only the buckets of the range,
and a query without a range is bounded to the last ``search_window_days``; at most
``search_max_scan`` entries are examined (beyond that ``totalHits`` is a lower bound).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from podium.errors import InvalidArgument
from podium.store.model import DAY_MS, Record, day_of, task_index_time, workflow_index_time

if TYPE_CHECKING:
    from podium.store.config import StoreConfig

Kind = Literal["workflow", "task"]
MAX_PAGE_SIZE = 5000
_LOAD_CHUNK = 256
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Summary field names that differ from the record's.
_WORKFLOW_ALIASES = {"workflowType": "workflowName", "version": "workflowVersion"}
_TASK_ALIASES = {"workflowId": "workflowInstanceId", "input": "inputData", "output": "outputData"}


@dataclass(frozen=True)
class SearchQuery:
    """Filters, sort and page of a search; every filter given must hold (AND).

    ``workflow_types`` filters by workflow name (for tasks: the task's workflowType);
    ``task_types`` applies to task searches only. The time range is inclusive, in epoch ms, on
    a workflow's startTime (createTime if unset) or a task's scheduledTime. ``free_text`` is a
    case-insensitive substring of the JSON of input and output ("*" or "" matches all).
    ``sort`` is Conductor's ``field:ASC|field2:DESC``; the default is newest first.
    """

    workflow_types: tuple[str, ...] = ()
    task_types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start_time_from_ms: int | None = None
    start_time_to_ms: int | None = None
    correlation_id: str | None = None
    workflow_id: str | None = None
    task_id: str | None = None
    free_text: str = "*"
    sort: str = ""
    start: int = 0
    size: int = 100
    sort_keys: tuple[tuple[str, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("workflow_types", "task_types", "statuses"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        if self.start < 0:
            raise InvalidArgument(f"search start must be >= 0, got {self.start}", field="start")
        if not 0 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidArgument(
                f"Cannot return more than {MAX_PAGE_SIZE} results. Please use pagination.",
                field="size",
            )
        lo, hi = self.start_time_from_ms, self.start_time_to_ms
        if lo is not None and hi is not None and lo > hi:
            raise InvalidArgument("search time range is empty (from > to)", field="startTime")
        object.__setattr__(self, "sort_keys", _parse_sort(self.sort))


def _parse_sort(sort: str) -> tuple[tuple[str, bool], ...]:
    keys: list[tuple[str, bool]] = []
    for part in sort.split("|"):
        part = part.strip()
        if not part:
            continue
        name, _, direction = part.partition(":")
        direction = direction.strip().upper() or "ASC"
        if not _FIELD_RE.match(name.strip()) or direction not in ("ASC", "DESC"):
            raise InvalidArgument(
                f"bad sort {part!r}: expected field:ASC or field:DESC", field="sort"
            )
        keys.append((name.strip(), direction == "DESC"))
    return tuple(keys)


class Candidate(NamedTuple):
    """One index entry: the record it points to and where the entry lives."""

    index_time: int
    entity_id: str
    #: For a task, the owning workflow when the index knows it (saves a lookup).
    workflow_id: str | None
    #: The type the entry is indexed under; None for the index over all names.
    index_name: str | None
    #: The day bucket of the entry; NOT_INDEXED for a candidate found another way.
    day: int


NOT_INDEXED = -1


class SearchSource(Protocol):
    """What a backend provides to the search engine."""

    async def index_entries(
        self, kind: Kind, name: str | None, day: int, from_ms: int, to_ms: int
    ) -> list[Candidate]: ...

    async def load(self, kind: Kind, candidates: Sequence[Candidate]) -> list[Record | None]: ...

    async def drop_entries(self, kind: Kind, candidates: Sequence[Candidate]) -> None: ...

    async def correlation_candidates(self, name: str, correlation_id: str) -> list[Candidate]: ...

    async def workflow_task_candidates(self, workflow_id: str) -> list[Candidate]: ...


async def run_search(
    kind: Kind,
    query: SearchQuery,
    source: SearchSource,
    *,
    window_days: int,
    max_scan: int,
    full: bool,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Answer a search: ``{"totalHits": n, "results": [...]}``."""
    candidates = await _candidates(kind, query, source, window_days, max_scan, now_ms)
    matches: list[Record] = []
    for i in range(0, len(candidates), _LOAD_CHUNK):
        chunk = candidates[i : i + _LOAD_CHUNK]
        records = await source.load(kind, chunk)
        gone = [
            c for c, r in zip(chunk, records, strict=True) if r is None and c.day != NOT_INDEXED
        ]
        if gone:
            # Entries of removed or expired records: clean them as we meet them.
            await source.drop_entries(kind, gone)
        matches.extend(r for r in records if r is not None and _matches(kind, query, r))
    _sort(kind, matches, query.sort_keys)
    page = matches[query.start : query.start + query.size]
    summarise = workflow_summary if kind == "workflow" else task_summary
    return {"totalHits": len(matches), "results": page if full else [summarise(r) for r in page]}


async def _candidates(
    kind: Kind,
    query: SearchQuery,
    source: SearchSource,
    window_days: int,
    max_scan: int,
    now_ms: int | None,
) -> list[Candidate]:
    # Exact lookups first: they need no walk over time buckets.
    if kind == "workflow" and query.workflow_id:
        return [Candidate(0, query.workflow_id, query.workflow_id, None, NOT_INDEXED)]
    if kind == "task" and query.task_id:
        return [Candidate(0, query.task_id, query.workflow_id, None, NOT_INDEXED)]
    if kind == "task" and query.workflow_id:
        return await source.workflow_task_candidates(query.workflow_id)
    if kind == "workflow" and query.correlation_id and query.workflow_types:
        found: list[Candidate] = []
        for name in query.workflow_types:
            found.extend(await source.correlation_candidates(name, query.correlation_id))
        return _dedupe(found)[:max_scan]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    hi = query.start_time_to_ms if query.start_time_to_ms is not None else now + DAY_MS
    lo = query.start_time_from_ms
    if lo is None:
        lo = now - window_days * DAY_MS
    names: tuple[str | None, ...]
    names = (query.workflow_types if kind == "workflow" else query.task_types) or (None,)
    out: list[Candidate] = []
    for day in range(day_of(hi), day_of(lo) - 1, -1):
        for index_name in names:
            out.extend(await source.index_entries(kind, index_name, day, lo, hi))
        if len(out) >= max_scan:
            break
    return _dedupe(out)[:max_scan]


def _dedupe(candidates: Iterable[Candidate]) -> list[Candidate]:
    seen: set[str] = set()
    out = []
    for c in sorted(candidates, key=lambda c: c.index_time, reverse=True):
        if c.entity_id not in seen:
            seen.add(c.entity_id)
            out.append(c)
    return out


def _matches(kind: Kind, q: SearchQuery, rec: Record) -> bool:
    name: Any
    if kind == "workflow":
        name, when = rec.get("workflowName"), workflow_index_time(rec)
        if q.workflow_id is not None and rec.get("workflowId") != q.workflow_id:
            return False
    else:
        name, when = rec.get("taskType"), task_index_time(rec)
        if q.task_types and name not in q.task_types:
            return False
        if q.workflow_types and rec.get("workflowType") not in q.workflow_types:
            return False
        if q.workflow_id is not None and rec.get("workflowInstanceId") != q.workflow_id:
            return False
        if q.task_id is not None and rec.get("taskId") != q.task_id:
            return False
    if kind == "workflow" and q.workflow_types and name not in q.workflow_types:
        return False
    if q.statuses and rec.get("status") not in q.statuses:
        return False
    if q.correlation_id is not None and rec.get("correlationId") != q.correlation_id:
        return False
    if q.start_time_from_ms is not None and when < q.start_time_from_ms:
        return False
    if q.start_time_to_ms is not None and when > q.start_time_to_ms:
        return False
    return _free_text_matches(kind, q.free_text, rec)


def _free_text_matches(kind: Kind, text: str, rec: Record) -> bool:
    needle = text.strip()
    if needle in ("", "*"):
        return True
    if kind == "workflow":
        doc = [rec.get("input"), rec.get("output")]
    else:
        doc = [rec.get("inputData"), rec.get("outputData")]
    haystack = json.dumps(doc, default=str, ensure_ascii=False, sort_keys=True)
    return needle.lower() in haystack.lower()


def _sort(kind: Kind, records: list[Record], keys: tuple[tuple[str, bool], ...]) -> None:
    aliases = _WORKFLOW_ALIASES if kind == "workflow" else _TASK_ALIASES
    when = workflow_index_time if kind == "workflow" else task_index_time
    id_field = "workflowId" if kind == "workflow" else "taskId"
    # Default order: newest first, ties by id, so that paging is stable.
    records.sort(key=lambda r: str(r.get(id_field)))
    records.sort(key=when, reverse=True)
    # Python's sort is stable, so sorting by the last key first yields a multi-key order.
    for name, desc in reversed(keys):
        fld = aliases.get(name, name)
        present = [r for r in records if r.get(fld) is not None]
        missing = [r for r in records if r.get(fld) is None]
        present.sort(key=lambda r, f=fld: _comparable(r[f]), reverse=desc)  # type: ignore[misc]
        records[:] = present + missing  # missing values last in either direction


def _comparable(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, json.dumps(value, default=str, sort_keys=True))


def iso_time(ms: Any) -> str | None:
    """Conductor's summary time format, ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'``; None if unset."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":"))


def _duration(start: Any, end: Any) -> int:
    if isinstance(start, int) and isinstance(end, int) and start > 0 and end > 0:
        return max(0, end - start)
    return 0


def workflow_summary(wf: Record) -> Record:
    """Conductor's WorkflowSummary of a workflow record (null fields left out)."""
    failed_refs = wf.get("failedReferenceTaskNames")
    summary = {
        "workflowType": wf.get("workflowName"),
        "version": wf.get("workflowVersion"),
        "workflowId": wf.get("workflowId"),
        "correlationId": wf.get("correlationId"),
        "startTime": iso_time(wf.get("startTime") or wf.get("createTime")),
        "updateTime": iso_time(wf.get("updateTime")),
        "endTime": iso_time(wf.get("endTime")),
        "status": wf.get("status"),
        "input": _json(wf.get("input")),
        "output": _json(wf.get("output")),
        "reasonForIncompletion": wf.get("reasonForIncompletion"),
        "executionTime": _duration(wf.get("startTime") or wf.get("createTime"), wf.get("endTime")),
        "event": wf.get("event"),
        "failedReferenceTaskNames": ",".join(failed_refs) if failed_refs else "",
        "failedTaskNames": wf.get("failedTaskNames"),
        "externalInputPayloadStoragePath": wf.get("externalInputPayloadStoragePath"),
        "externalOutputPayloadStoragePath": wf.get("externalOutputPayloadStoragePath"),
        "priority": wf.get("priority"),
        "createdBy": wf.get("createdBy"),
        "taskToDomain": wf.get("taskToDomain"),
        "idempotencyKey": wf.get("idempotencyKey"),
        "parentWorkflowId": wf.get("parentWorkflowId") or "",
    }
    return {k: v for k, v in summary.items() if v is not None}


def task_summary(task: Record) -> Record:
    """Conductor's TaskSummary of a task record (null fields left out)."""
    start = task.get("startTime")
    summary = {
        "workflowId": task.get("workflowInstanceId"),
        "workflowType": task.get("workflowType"),
        "correlationId": task.get("correlationId"),
        "scheduledTime": iso_time(task.get("scheduledTime")),
        "startTime": iso_time(start),
        "updateTime": iso_time(task.get("updateTime")),
        "endTime": iso_time(task.get("endTime")),
        "status": task.get("status"),
        "reasonForIncompletion": task.get("reasonForIncompletion"),
        "executionTime": _duration(start, task.get("endTime")),
        "queueWaitTime": _duration(task.get("scheduledTime"), start),
        "taskDefName": task.get("taskDefName"),
        "taskType": task.get("taskType"),
        "input": _json(task.get("inputData")),
        "output": _json(task.get("outputData")),
        "taskId": task.get("taskId"),
        "externalInputPayloadStoragePath": task.get("externalInputPayloadStoragePath"),
        "externalOutputPayloadStoragePath": task.get("externalOutputPayloadStoragePath"),
        "workflowPriority": task.get("workflowPriority"),
        "domain": task.get("domain"),
    }
    return {k: v for k, v in summary.items() if v is not None}


class IndexedSearch:
    """Workflow and task search over a backend's time-bucketed index (``_search``).

    Mixed into both backends' ExecutionStore, which supply ``_search`` and ``_cfg``.
    """

    _search: SearchSource
    _cfg: StoreConfig

    async def search_workflows(self, query: SearchQuery, *, full: bool = False) -> dict[str, Any]:
        return await self._run("workflow", query, full)

    async def search_tasks(self, query: SearchQuery, *, full: bool = False) -> dict[str, Any]:
        return await self._run("task", query, full)

    async def _run(self, kind: Kind, query: SearchQuery, full: bool) -> dict[str, Any]:
        return await run_search(
            kind,
            query,
            self._search,
            full=full,
            window_days=self._cfg.search_window_days,
            max_scan=self._cfg.search_max_scan,
        )
