"""``/api/admin`` operations over many records: purge old workflows, requeue pending tasks,
export and import every definition.

* ``POST /api/admin/purge``: removes terminal workflows that ended before a time, a bounded
  batch per call. It walks the search's day buckets from the newest day of the range to the
  oldest, and answers with a ``continueToken`` (the day it stopped at) while days remain, so
  any gateway replica can take the next call: nothing is kept between calls. Each workflow
  is removed by the decider (the only writer of executions), with its tasks, logs and index
  entries. RUNNING and PAUSED workflows are never selected.
* ``POST /api/admin/requeue[/{taskType}]``: decides every workflow holding a SCHEDULED task
  of the type (or of every known type); a decide pushes again, if absent, the queue message of
  each of its pending tasks, so a lost message is polled again and a present one stays as is.
* ``GET /api/admin/export`` and ``POST /api/admin/import``: every workflow definition (all
  versions), task definition, event handler and schedule as one JSON document. An import
  checks every definition first, with the checks of the create endpoints, and writes nothing
  if any fails. Schedules are written as ``POST /api/scheduler/schedules`` writes them (an
  imported schedule that runs starts from now, never for times before).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks, schedules
from api_gateway.context import Gateway
from api_gateway.http import body_object, ok_json, path, q_int, q_str
from api_gateway.routing import Endpoint, path_param, query
from podium.errors import InvalidArgument, NotFound, PodiumError, ValidationError
from podium.statuses import WORKFLOW_TERMINAL, TaskStatus
from podium.store.model import DAY_MS, Record, day_of
from podium.store.search import MAX_PAGE_SIZE, SearchQuery

TAG = "admin"
_BASE = "/api/admin"

#: The export document's format; an import refuses any other.
EXPORT_VERSION = 1
#: Largest ``batchSize`` of one purge call, and its default.
MAX_PURGE_BATCH = 1000
DEFAULT_PURGE_BATCH = 100
#: How many day buckets one purge call searches at most before it answers.
PURGE_DAYS_PER_CALL = 31
#: How far before ``endTimeBefore`` a purge looks when ``startedAfter`` is not given.
DEFAULT_PURGE_LOOKBACK_DAYS = 365
#: How many removals or decides run at once.
CONCURRENCY = 16


async def _bounded(items: Iterable[str], act: Callable[[str], Awaitable[bool]]) -> int:
    """Run ``act`` on every item, ``CONCURRENCY`` at a time; how many answered True."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(item: str) -> bool:
        async with gate:
            return await act(item)

    return sum(await asyncio.gather(*(one(i) for i in items)))


# -- purge ------------------------------------------------------------------------------------


def parse_time(value: str, name: str) -> int:
    """Epoch ms from ``value``: a whole number of ms, or an ISO 8601 date or date-time (UTC
    unless it names an offset)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            f"{name} must be epoch milliseconds or an ISO 8601 date, got {value!r}", field=name
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _required_time(request: Request, name: str) -> int:
    value = q_str(request, name)
    if value is None or not value.strip():
        raise InvalidArgument(f"{name} is required", field=name)
    return parse_time(value, name)


def _ended_before(workflow: Record, before_ms: int) -> bool:
    end = workflow.get("endTime") or workflow.get("updateTime")
    return isinstance(end, int) and 0 < end < before_ms


async def _remove(gateway: Gateway, workflow_id: str) -> bool:
    try:
        await gateway.decider.remove(workflow_id)
    except NotFound:
        return False  # removed meanwhile (another purge, a DELETE)
    return True


async def purge(request: Request, gateway: Gateway) -> Response:
    """Remove up to ``batchSize`` terminal workflows that ended before ``endTimeBefore``."""
    before = _required_time(request, "endTimeBefore")
    after_text = q_str(request, "startedAfter")
    floor = (
        parse_time(after_text, "startedAfter")
        if after_text
        else before - DEFAULT_PURGE_LOOKBACK_DAYS * DAY_MS
    )
    batch = q_int(request, "batchSize", DEFAULT_PURGE_BATCH, minimum=1, maximum=MAX_PURGE_BATCH)
    assert batch is not None
    name = q_str(request, "workflowName")
    token = q_str(request, "continueToken")
    if token is not None and not token.isdigit():
        raise InvalidArgument(f"continueToken is not one this API gave: {token!r}")
    day = min(int(token), day_of(before)) if token else day_of(before)
    last_day = day_of(max(floor, 0))
    examined = removed = days = 0
    while day >= last_day and removed < batch and days < PURGE_DAYS_PER_CALL:
        found = await gateway.store.executions.search_workflows(
            SearchQuery(
                workflow_types=(name,) if name else (),
                statuses=tuple(WORKFLOW_TERMINAL),
                start_time_from_ms=max(floor, day * DAY_MS),
                start_time_to_ms=min(before, (day + 1) * DAY_MS - 1),
                sort="startTime:ASC",
                size=MAX_PAGE_SIZE,
            ),
            full=True,
        )
        records: list[Record] = found["results"]
        examined += len(records)
        due = [str(r["workflowId"]) for r in records if _ended_before(r, before)]
        taken = due[: batch - removed]
        removed += await _bounded(taken, lambda wf_id: _remove(gateway, wf_id))
        beyond_page = found["totalHits"] > len(records)
        if len(due) > len(taken) or (taken and beyond_page):
            break  # this day has more to remove: the next call starts here again
        day -= 1
        days += 1
    more = day >= last_day
    return ok_json(
        {
            "endTimeBefore": before,
            "startedAfter": floor,
            "examined": examined,
            "removed": removed,
            "more": more,
            "continueToken": str(day) if more else None,
        }
    )


# -- requeue ----------------------------------------------------------------------------------


async def _known_task_types(gateway: Gateway) -> list[str]:
    """Every task definition's name and every task queue's type."""
    types = {str(d["name"]) for d in await gateway.store.metadata.list_task_defs()}
    for queue in await gateway.queues.list_queues():
        if not queue.startswith("_"):
            types.add(queue.rpartition(":")[2])
    return sorted(types)


async def _requeue(gateway: Gateway, task_types: list[str]) -> Response:
    scheduled = 0
    workflow_ids: set[str] = set()
    for task_type in task_types:
        for task in await gateway.store.executions.pending_tasks_by_type(task_type):
            if task.get("status") == TaskStatus.SCHEDULED:
                scheduled += 1
                workflow_ids.add(str(task["workflowInstanceId"]))

    async def decide(workflow_id: str) -> bool:
        try:
            await gateway.decider.decide(workflow_id)
        except NotFound:
            return False  # removed meanwhile
        return True

    decided = await _bounded(sorted(workflow_ids), decide)
    return ok_json(
        {"taskTypes": len(task_types), "scheduledTasks": scheduled, "workflowsDecided": decided}
    )


async def requeue_type(request: Request, gateway: Gateway) -> Response:
    """Make sure every SCHEDULED task of the type has its queue message."""
    return await _requeue(gateway, [path(request, "taskType")])


async def requeue_all(request: Request, gateway: Gateway) -> Response:
    """Make sure every SCHEDULED task of every known type has its queue message."""
    return await _requeue(gateway, await _known_task_types(gateway))


# -- export and import ------------------------------------------------------------------------


def _schedule(item: Any, where: str, gateway: Gateway) -> Record:
    """A schedule checked as ``POST /api/scheduler/schedules`` checks it, with its tags."""
    checked = schedules.checked_schedule(item, gateway)
    if item.get("tags"):
        checked["tags"] = schedules.checked_tags(item["tags"])
    return checked


async def export(request: Request, gateway: Gateway) -> Response:
    """Every definition as one document that ``POST /api/admin/import`` takes back."""
    meta, meta_schedules = gateway.store.metadata, gateway.store.schedules
    return ok_json(
        {
            "version": EXPORT_VERSION,
            "exportedAt": int(time.time() * 1000),
            "workflowDefs": await meta.list_workflow_defs(),
            "taskDefs": await meta.list_task_defs(),
            "eventHandlers": await meta.list_event_handlers(),
            "schedules": await meta_schedules.list_schedules(),
        }
    )


def _checked(
    items: Any, key: str, check: Callable[[Any, str], Record], problems: list[dict[str, str]]
) -> list[Record]:
    """Each item checked; the problems of the failing ones appended to ``problems``."""
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append({"path": key, "message": "must be a JSON array"})
        return []
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        try:
            out.append(check(item, where))
        except ValidationError as exc:
            problems.extend(
                {"path": _under(where, e.get("path") or ""), "message": e["message"]}
                for e in exc.errors
            )
        except PodiumError as exc:
            problems.append({"path": where, "message": exc.message})
    return out


def _under(where: str, path: str) -> str:
    """A problem's path inside the document (checks name some paths from the item's root)."""
    if not path or path == where:
        return where
    return path if path.startswith(f"{where}.") else f"{where}.{path}"


def _event_handler(item: Any, where: str) -> Record:
    return checks.event_handler(item)


async def import_document(request: Request, gateway: Gateway) -> Response:
    """Check every definition of an export document, then write them all (or none)."""
    doc = await body_object(request, "the export document")
    problems: list[dict[str, str]] = []
    if doc.get("version") != EXPORT_VERSION:
        problems.append(
            {"path": "version", "message": f"must be {EXPORT_VERSION}, got {doc.get('version')!r}"}
        )
    workflow_defs = _checked(
        doc.get("workflowDefs"),
        "workflowDefs",
        lambda d, where: checks.workflow_def(d, gateway.definitions, where),
        problems,
    )
    task_defs = _checked(doc.get("taskDefs"), "taskDefs", checks.task_def, problems)
    handlers = _checked(doc.get("eventHandlers"), "eventHandlers", _event_handler, problems)
    wanted = _checked(
        doc.get("schedules"),
        "schedules",
        lambda s, where: _schedule(s, where, gateway),
        problems,
    )
    for key, records in (("workflowDefs", workflow_defs), ("taskDefs", task_defs),
                         ("eventHandlers", handlers), ("schedules", wanted)):  # fmt: skip
        seen: set[tuple[Any, ...]] = set()
        for r in records:
            ident = (r.get("name"), r.get("version")) if key == "workflowDefs" else (r["name"],)
            if ident in seen:
                problems.append({"path": key, "message": f"{ident} appears twice"})
            seen.add(ident)
    if problems:
        raise ValidationError.of(problems)
    return ok_json(
        {
            "workflowDefs": await _write_workflow_defs(gateway, workflow_defs),
            "taskDefs": await _write_task_defs(gateway, task_defs),
            "eventHandlers": await _write_event_handlers(gateway, handlers),
            "schedules": await _write_schedules(gateway, wanted),
        }
    )


def _counts(created: int, updated: int) -> dict[str, int]:
    return {"created": created, "updated": updated}


async def _write_workflow_defs(gateway: Gateway, defs: list[Record]) -> dict[str, int]:
    meta = gateway.store.metadata
    existing = {(str(d["name"]), d.get("version")) for d in await meta.list_workflow_defs()}
    now = int(time.time() * 1000)
    updated = 0
    for d in defs:
        d.setdefault("createTime", now)
        updated += (str(d["name"]), d.get("version")) in existing
        await meta.update_workflow_def(d)
    return _counts(len(defs) - updated, updated)


async def _write_task_defs(gateway: Gateway, defs: list[Record]) -> dict[str, int]:
    meta = gateway.store.metadata
    existing = {str(d["name"]) for d in await meta.list_task_defs()}
    now = int(time.time() * 1000)
    updated = 0
    for d in defs:
        d.setdefault("createTime", now)
        updated += str(d["name"]) in existing
        await meta.create_task_def(d)  # an upsert, as Conductor's register is
    return _counts(len(defs) - updated, updated)


async def _write_event_handlers(gateway: Gateway, handlers: list[Record]) -> dict[str, int]:
    meta = gateway.store.metadata
    existing = {str(h["name"]) for h in await meta.list_event_handlers()}
    updated = 0
    for h in handlers:
        if str(h["name"]) in existing:
            await meta.update_event_handler(h)
            updated += 1
        else:
            await meta.add_event_handler(h)
    return _counts(len(handlers) - updated, updated)


async def _write_schedules(gateway: Gateway, wanted: list[Record]) -> dict[str, int]:
    updated = 0
    for schedule in wanted:
        updated += await schedules.store_schedule(gateway, schedule)
    return _counts(len(wanted) - updated, updated)


_COUNTS = {
    "type": "object",
    "properties": {"created": {"type": "integer"}, "updated": {"type": "integer"}},
}

ENDPOINTS = [
    Endpoint("POST", f"{_BASE}/purge", purge, "Remove terminal workflows that ended before a "
             "time, a batch per call", TAG,
             params=(query("endTimeBefore", description="epoch ms or ISO 8601 date (required)"),
                     query("startedAfter", description="epoch ms or ISO 8601 date; default "
                           f"{DEFAULT_PURGE_LOOKBACK_DAYS} days before endTimeBefore"),
                     query("batchSize", "integer", minimum=1, maximum=MAX_PURGE_BATCH),
                     query("workflowName"),
                     query("continueToken", description="from the previous call's answer")),
             body_required=False,
             ok_schema={"type": "object", "properties": {
                 "examined": {"type": "integer"}, "removed": {"type": "integer"},
                 "more": {"type": "boolean"}, "continueToken": {"type": ["string", "null"]}}}),
    Endpoint("POST", f"{_BASE}/requeue", requeue_all, "Push again the missing queue messages "
             "of every SCHEDULED task", TAG, body_required=False,
             ok_schema={"type": "object"}, errors=()),
    Endpoint("POST", f"{_BASE}/requeue/{{taskType}}", requeue_type, "Push again the missing "
             "queue messages of the SCHEDULED tasks of a type", TAG,
             params=(path_param("taskType"),), body_required=False,
             ok_schema={"type": "object"}, errors=()),
    Endpoint("GET", f"{_BASE}/export", export, "Every definition as one document", TAG,
             ok_schema={"type": "object"}, errors=()),
    Endpoint("POST", f"{_BASE}/import", import_document, "Write every definition of an export "
             "document, or none if one is invalid", TAG, body={"type": "object"},
             ok_schema={"type": "object", "properties": {
                 "workflowDefs": _COUNTS, "taskDefs": _COUNTS, "eventHandlers": _COUNTS,
                 "schedules": _COUNTS}}),
]  # fmt: skip
