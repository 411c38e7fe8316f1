"""``/api/scheduler``: workflow schedules, as the Conductor SDK's ``SchedulerClient`` calls them.

A schedule starts a workflow (its ``startWorkflowRequest``) at the times of a Spring-style cron
expression with seconds, in a time zone (``zoneId``, UTC by default), between
``scheduleStartTime`` and ``scheduleEndTime`` when given. The sweepers run them
(:mod:`podium.scheduling`); here they are saved, read, paused and resumed, and their runs
searched. See docs/schedules.md.
"""

from __future__ import annotations

import re
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api_gateway import checks
from api_gateway.context import Gateway
from api_gateway.http import body_json, body_list, ok_empty, ok_json, path, q_int, q_str
from api_gateway.routing import Endpoint, Param, path_param, query
from podium.cron import Cron, zone
from podium.errors import InvalidArgument, NotFound
from podium.scheduling import ScheduleRunner
from podium.store import Record

TAG = "scheduler"
#: A schedule's name becomes a path segment: no ``/``, no leading dot, no spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_\-.:@]{0,254}$")
#: Runs searched when the query names no time range.
DEFAULT_SEARCH_DAYS = 7
#: The longest range one search reads (Cassandra keeps runs in a partition per day).
MAX_SEARCH_DAYS = 366
_DAY_MS = 86_400_000
_MAX_NEXT = 1000
_STATES = ("POLLED", "EXECUTED", "FAILED")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _opt_ms(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"{key} must be epoch milliseconds")
    return value


def checked_schedule(body: Any, gateway: Gateway) -> Record:
    """A SaveScheduleRequest checked and reduced to the fields a schedule keeps."""
    if not isinstance(body, dict):
        raise InvalidArgument("SaveScheduleRequest must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidArgument(
            "name must be 1-255 letters, digits or _-.:@ and not start with a dot"
        )
    cron = body.get("cronExpression")
    if not isinstance(cron, str):
        raise InvalidArgument("cronExpression is required")
    Cron.parse(cron)
    zone_id = body.get("zoneId") or "UTC"
    if not isinstance(zone_id, str):
        raise InvalidArgument("zoneId must be a time zone name")
    zone(zone_id)
    request = checks.start_request(body.get("startWorkflowRequest"), gateway.definitions)
    if request.get("workflowDef") is not None:
        raise InvalidArgument("a schedule starts a registered workflow: give its name")
    start_ms, end_ms = _opt_ms(body, "scheduleStartTime"), _opt_ms(body, "scheduleEndTime")
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        raise InvalidArgument("scheduleEndTime is before scheduleStartTime")
    out: Record = {
        "name": name,
        "cronExpression": cron,
        "zoneId": zone_id,
        "startWorkflowRequest": request,
        "paused": bool(body.get("paused", False)),
        "runCatchupScheduleInstances": bool(body.get("runCatchupScheduleInstances", False)),
        "scheduleStartTime": start_ms,
        "scheduleEndTime": end_ms,
    }
    for key in ("description", "createdBy", "updatedBy"):
        if isinstance(body.get(key), str):
            out[key] = body[key]
    return {k: v for k, v in out.items() if v is not None}


async def save(request: Request, gateway: Gateway) -> Response:
    await store_schedule(gateway, checked_schedule(await body_json(request), gateway))
    return ok_empty()


async def store_schedule(gateway: Gateway, schedule: Record) -> bool:
    """Create or replace a checked schedule (keeping its stored tags unless it has its own);
    True if one of that name existed. Also used by ``POST /api/admin/import``."""
    schedules = gateway.store.schedules
    now = _now_ms()
    try:
        old = await schedules.get_schedule(schedule["name"])
    except NotFound:
        old = {}
    schedule["createTime"] = old.get("createTime", now)
    schedule["updatedTime"] = now
    if old.get("tags") and "tags" not in schedule:
        schedule["tags"] = old["tags"]
    if schedule["paused"] and old.get("paused"):
        schedule["pausedReason"] = old.get("pausedReason")
    await schedules.put_schedule(schedule)
    if not schedule["paused"] and (not old or old.get("paused")):
        # a new or resumed schedule runs from now on, never for times before
        await schedules.set_cursor(schedule["name"], now)
    return bool(old)


async def get(request: Request, gateway: Gateway) -> Response:
    return ok_json(await gateway.store.schedules.get_schedule(path(request, "name")))


async def list_all(request: Request, gateway: Gateway) -> Response:
    found = await gateway.store.schedules.list_schedules()
    workflow = q_str(request, "workflowName")
    if workflow:
        found = [s for s in found if (s.get("startWorkflowRequest") or {}).get("name") == workflow]
    return ok_json(found)


async def remove(request: Request, gateway: Gateway) -> Response:
    await gateway.store.schedules.remove_schedule(path(request, "name"))
    return ok_empty()


async def _set_paused(gateway: Gateway, name: str, paused: bool, reason: str | None) -> bool:
    """Pause or resume one schedule; False if it already was."""
    schedules = gateway.store.schedules
    schedule = await schedules.get_schedule(name)
    if bool(schedule.get("paused")) == paused:
        return False
    schedule["paused"] = paused
    schedule["updatedTime"] = _now_ms()
    if paused and reason:
        schedule["pausedReason"] = reason
    else:
        schedule.pop("pausedReason", None)
    await schedules.put_schedule(schedule)
    if not paused:  # the times it was paused for are not run: it goes on from now
        await schedules.set_cursor(name, schedule["updatedTime"])
    return True


async def pause(request: Request, gateway: Gateway) -> Response:
    await _set_paused(gateway, path(request, "name"), True, q_str(request, "reason"))
    return ok_empty()


async def resume(request: Request, gateway: Gateway) -> Response:
    await _set_paused(gateway, path(request, "name"), False, None)
    return ok_empty()


async def _set_all(gateway: Gateway, paused: bool) -> Response:
    changed = []
    for schedule in await gateway.store.schedules.list_schedules():
        name = str(schedule["name"])
        try:
            if await _set_paused(gateway, name, paused, None):
                changed.append(name)
        except NotFound:  # removed meanwhile
            continue
    return ok_json({"paused" if paused else "resumed": changed})


async def pause_all(request: Request, gateway: Gateway) -> Response:
    return await _set_all(gateway, True)


async def resume_all(request: Request, gateway: Gateway) -> Response:
    return await _set_all(gateway, False)


async def requeue(request: Request, gateway: Gateway) -> Response:
    """Start again every recent run still POLLED (claimed by a sweeper that died mid-way)."""
    runner = ScheduleRunner(gateway.store, gateway.decider.start_workflow)
    found = await runner.recover(older_than_ms=0, window_ms=runner.settings.retention_ms)
    return ok_json({"requeued": found})


async def next_few(request: Request, gateway: Gateway) -> Response:
    expression = q_str(request, "cronExpression")
    if not expression:
        raise InvalidArgument("cronExpression is required")
    cron = Cron.parse(expression)
    tz = zone(q_str(request, "zoneId"))
    start_ms = q_int(request, "scheduleStartTime", None, minimum=0) or 0
    end_ms = q_int(request, "scheduleEndTime", None, minimum=0) or 0
    limit = q_int(request, "limit", 3, minimum=1, maximum=_MAX_NEXT) or 3
    after = max(_now_ms(), start_ms - 1)
    return ok_json(cron.times(after, tz, until_ms=end_ms or 2**62, limit=limit))


_CLAUSE = re.compile(r"^\s*(\w+)\s*(IN|=|>=|<=|>|<)\s*(.+?)\s*$", re.IGNORECASE)


def _values(text: str) -> list[str]:
    text = text.strip()
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    return [v.strip().strip("'\"") for v in text.split(",") if v.strip()]


def parse_query(text: str | None, now: int) -> tuple[list[str] | None, list[str] | None, int, int]:
    """(schedule names or None, states or None, from ms, to ms) of a search query.

    Clauses joined by ``AND``: ``scheduleName IN (a,b)`` or ``= a``, ``state IN (...)``, and
    ``scheduledTime`` compared with ``>``, ``>=``, ``<``, ``<=`` to epoch ms. The range is
    cut to the last :data:`MAX_SEARCH_DAYS` before its end.
    """
    names: list[str] | None = None
    states: list[str] | None = None
    from_ms, to_ms = now - DEFAULT_SEARCH_DAYS * _DAY_MS, now
    for clause in re.split(r"\s+AND\s+", text or "", flags=re.IGNORECASE):
        if not clause.strip():
            continue
        match = _CLAUSE.match(clause)
        if match is None:
            raise InvalidArgument(f"cannot read the query clause {clause.strip()!r}")
        field, op, value = match.group(1), match.group(2).upper(), match.group(3)
        if field == "scheduleName" and op in ("IN", "="):
            names = _values(value)
        elif field == "state" and op in ("IN", "="):
            states = [v.upper() for v in _values(value)]
            unknown = set(states) - set(_STATES)
            if unknown:
                raise InvalidArgument(f"unknown run states {sorted(unknown)}")
        elif field in ("scheduledTime", "executionTime") and op in (">", ">=", "<", "<="):
            try:
                ms = int(value)
            except ValueError:
                raise InvalidArgument(f"{field} must be compared with epoch ms") from None
            if op == ">":
                from_ms = ms + 1
            elif op == ">=":
                from_ms = ms
            elif op == "<":
                to_ms = ms - 1
            else:
                to_ms = ms
        else:
            raise InvalidArgument(f"cannot search by {field} {op}")
    return names, states, max(from_ms, to_ms - MAX_SEARCH_DAYS * _DAY_MS), to_ms


async def search(request: Request, gateway: Gateway) -> Response:
    """Runs newest first; ``freeText`` (other than ``*``) keeps the schedules whose name or
    workflow name contains it."""
    start = q_int(request, "start", 0, minimum=0) or 0
    size = q_int(request, "size", 100, minimum=0, maximum=1000)
    size = 100 if size is None else size
    names, states, from_ms, to_ms = parse_query(q_str(request, "query"), _now_ms())
    if names is None:
        text = (q_str(request, "freeText") or "*").strip().lower()
        names = [
            str(s["name"])
            for s in await gateway.store.schedules.list_schedules()
            if text in ("", "*")
            or text in str(s["name"]).lower()
            or text in str((s.get("startWorkflowRequest") or {}).get("name", "")).lower()
        ]
    runs = gateway.store.schedules
    if states is None:
        found = await runs.search_runs(names, from_ms=from_ms, to_ms=to_ms, start=start, size=size)
        return ok_json(found)
    # a state filter reads the runs of the range and pages what matches
    every = await runs.search_runs(names, from_ms=from_ms, to_ms=to_ms, size=100_000)
    matching = [r for r in every["results"] if r.get("state") in states]
    return ok_json({"totalHits": len(matching), "results": matching[start : start + size]})


def checked_tags(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
        isinstance(t, dict) and isinstance(t.get("key"), str) for t in value
    ):
        raise InvalidArgument("tags must be a list of {key, value} objects")
    return [{"key": t["key"], "value": t.get("value"), "type": t.get("type")} for t in value]


async def put_tags(request: Request, gateway: Gateway) -> Response:
    schedules = gateway.store.schedules
    schedule = await schedules.get_schedule(path(request, "name"))
    new = checked_tags(await body_list(request, "tags"))
    kept = [t for t in schedule.get("tags") or [] if t not in new]
    schedule["tags"] = kept + new
    await schedules.put_schedule(schedule)
    return ok_empty()


async def get_tags(request: Request, gateway: Gateway) -> Response:
    schedule = await gateway.store.schedules.get_schedule(path(request, "name"))
    return ok_json(schedule.get("tags") or [])


async def delete_tags(request: Request, gateway: Gateway) -> Response:
    schedules = gateway.store.schedules
    schedule = await schedules.get_schedule(path(request, "name"))
    gone = checked_tags(await body_list(request, "tags"))
    schedule["tags"] = [
        t for t in schedule.get("tags") or []
        if not any(t["key"] == g["key"] and t.get("value") == g["value"] for g in gone)
    ]  # fmt: skip
    await schedules.put_schedule(schedule)
    return ok_empty()


_BASE = "/api/scheduler"
_ONE = f"{_BASE}/schedules/{{name}}"
_NAME = path_param("name", "The schedule's name")
_SCHEDULE = {"type": "object", "description": "WorkflowSchedule"}
_SAVE = {"type": "object", "description": "SaveScheduleRequest"}
_RESULT = {"type": "object", "description": "SearchResultWorkflowScheduleExecutionModel"}
_TAGS = {"type": "array", "items": {"type": "object", "description": "TagObject"}}
_MAP = {"type": "object"}

ENDPOINTS = [
    Endpoint("POST", f"{_BASE}/schedules", save, "Create or update a schedule", TAG,
             body=_SAVE, ok_kind="empty", errors=(400,)),
    Endpoint("GET", f"{_BASE}/schedules", list_all, "All schedules", TAG,
             params=(query("workflowName", description="Only those starting this workflow"),),
             ok_schema={"type": "array", "items": _SCHEDULE}, errors=()),
    Endpoint("GET", _ONE, get, "One schedule", TAG, params=(_NAME,), ok_schema=_SCHEDULE,
             errors=(404,)),
    Endpoint("DELETE", _ONE, remove, "Delete a schedule", TAG, params=(_NAME,),
             body_required=False, ok_kind="empty", errors=(404,)),
    Endpoint("PUT", f"{_ONE}/pause", pause, "Pause a schedule", TAG,
             params=(_NAME, query("reason")), body_required=False, ok_kind="empty",
             errors=(404,)),
    Endpoint("PUT", f"{_ONE}/resume", resume, "Resume a schedule", TAG, params=(_NAME,),
             body_required=False, ok_kind="empty", errors=(404,)),
    Endpoint("GET", f"{_BASE}/admin/pause", pause_all, "Pause every schedule", TAG,
             ok_schema=_MAP, errors=()),
    Endpoint("GET", f"{_BASE}/admin/resume", resume_all, "Resume every schedule", TAG,
             ok_schema=_MAP, errors=()),
    Endpoint("GET", f"{_BASE}/admin/requeue", requeue,
             "Start again the runs whose start was left unfinished", TAG, ok_schema=_MAP,
             errors=()),
    Endpoint("GET", f"{_BASE}/nextFewSchedules", next_few, "The next times of a cron expression",
             TAG, params=(Param("cronExpression", required=True), query("zoneId"),
                          query("scheduleStartTime", "integer"),
                          query("scheduleEndTime", "integer"), query("limit", "integer")),
             ok_schema={"type": "array", "items": {"type": "integer", "format": "int64"}}),
    Endpoint("GET", f"{_BASE}/search/executions", search, "Search the runs of schedules", TAG,
             params=(query("start", "integer"), query("size", "integer"), query("sort"),
                     query("freeText"), query("query")),
             ok_schema=_RESULT),
    Endpoint("PUT", f"{_ONE}/tags", put_tags, "Add tags to a schedule", TAG, params=(_NAME,),
             body=_TAGS, ok_kind="empty", errors=(400, 404)),
    Endpoint("GET", f"{_ONE}/tags", get_tags, "A schedule's tags", TAG, params=(_NAME,),
             ok_schema=_TAGS, errors=(404,)),
    Endpoint("DELETE", f"{_ONE}/tags", delete_tags, "Remove tags from a schedule", TAG,
             params=(_NAME,), body=_TAGS, ok_kind="empty", errors=(400, 404)),
]  # fmt: skip
