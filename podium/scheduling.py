"""Running workflow schedules: which times are due, and starting each run exactly once.

Every sweeper replica calls :meth:`ScheduleRunner.tick` a few times a second. For each
schedule that is not paused it lists the cron times due since the schedule's *cursor* (the
latest time already dealt with, kept in the store), and for each time:

1. **claims** the run in the store (:meth:`~podium.store.ScheduleStore.claim_run`, which
   stores a ``POLLED`` record only if none has that (schedule, time)): of several replicas
   exactly one goes on;
2. **starts** the workflow through the decider with the idempotency key
   ``schedule:<name>:<time>`` and ``RETURN_EXISTING``, then records the run ``EXECUTED``
   with its workflow id (``FAILED`` with the reason if the start was refused).

A replica that dies between 1 and 2 leaves a ``POLLED`` run; :meth:`ScheduleRunner.recover`
(every few seconds, and ``GET /api/scheduler/admin/requeue``) starts such runs again with the
same key, so the workflow starts once whether or not the first attempt got through.

Catch-up (``runCatchupScheduleInstances``): times missed while no sweeper ran are started
late, the newest :attr:`ScheduleSettings.catchup_max` of those within
:attr:`ScheduleSettings.catchup_window_ms`; without catch-up, a time later than
:attr:`ScheduleSettings.misfire_grace_ms` is skipped (no run, no record) and the schedule goes
on from now, as Conductor's scheduler does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from podium.config import Environ, env_int
from podium.cron import Cron, zone
from podium.errors import PodiumError, Unavailable
from podium.store import Record, Store

log = logging.getLogger("podium.scheduling")

DAY_MS = 86_400_000

StartWorkflow = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class ScheduleSettings:
    """How schedules run; the sweeper reads them from ``PODIUM_SCHEDULE_*``."""

    #: How long run records are kept.
    retention_ms: int = 7 * DAY_MS
    #: With catch-up, at most this many missed times of a schedule are started (the newest).
    catchup_max: int = 100
    #: With catch-up, times missed longer ago than this are not started.
    catchup_window_ms: int = 3_600_000
    #: Without catch-up, a time is still started if it is at most this late.
    misfire_grace_ms: int = 5_000
    #: A run still POLLED this long after it was claimed is started again...
    recover_after_ms: int = 10_000
    #: ...if it was due within this long (a requeue looks back over the whole retention).
    recover_window_ms: int = 600_000


def idempotency_key(name: str, scheduled_ms: int) -> str:
    """The idempotency key of one run: the same for every attempt to start it."""
    return f"schedule:{name}:{scheduled_ms}"


def now_ms() -> int:
    return int(time.time() * 1000)


def due_times(schedule: Record, cursor: int, now: int, settings: ScheduleSettings) -> list[int]:
    """The times of ``schedule`` to start at ``now`` when times up to ``cursor`` were dealt
    with: those in (cursor, now] within the schedule's start and end times, of the last
    ``catchup_window_ms`` (the newest ``catchup_max``) with catch-up, else of the last
    ``misfire_grace_ms``."""
    cron = Cron.parse(str(schedule.get("cronExpression", "")))
    tz = zone(schedule.get("zoneId"))
    lower = cursor
    if schedule.get("scheduleStartTime"):
        lower = max(lower, int(schedule["scheduleStartTime"]) - 1)
    upper = now
    if schedule.get("scheduleEndTime"):
        upper = min(upper, int(schedule["scheduleEndTime"]))
    catchup = bool(schedule.get("runCatchupScheduleInstances"))
    oldest = now - (settings.catchup_window_ms if catchup else settings.misfire_grace_ms)
    lower = max(lower, oldest - 1)
    if upper <= lower:
        return []
    times = cron.times(lower, tz, until_ms=upper, limit=1_000_000)
    return times[-settings.catchup_max :] if catchup else times


class ScheduleRunner:
    """Starts the due runs of every schedule; safe to run on any number of replicas."""

    def __init__(
        self,
        store: Store,
        start: StartWorkflow,
        settings: ScheduleSettings | None = None,
        *,
        clock: Callable[[], int] = now_ms,
        on_run: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.start = start
        self.settings = settings or ScheduleSettings()
        self.clock = clock
        #: told the state each start attempt left its run in (EXECUTED, FAILED, POLLED)
        self.on_run = on_run or (lambda _state: None)

    async def tick(self) -> int:
        """Start every due run of every schedule; returns how many this call started."""
        now = self.clock()
        started = 0
        for schedule in await self.store.schedules.list_schedules():
            if schedule.get("paused"):
                continue
            try:
                started += await self._tick_one(schedule, now)
            except PodiumError as exc:
                log.warning("schedule %s: %s", schedule.get("name"), exc.message)
        return started

    async def _tick_one(self, schedule: Record, now: int) -> int:
        name = str(schedule["name"])
        cursor = await self.store.schedules.get_cursor(name)
        if cursor is None:  # never run: it starts from when it was saved
            cursor = int(schedule.get("updatedTime") or schedule.get("createTime") or now)
        started = 0
        due = due_times(schedule, cursor, now, self.settings)
        for at in due:
            if await self._claim_and_start(schedule, at, now):
                started += 1
        if due:  # (cursor, now] is dealt with; with nothing due the cursor may stay behind
            await self.store.schedules.set_cursor(name, now)
        return started

    async def _claim_and_start(self, schedule: Record, at: int, now: int) -> bool:
        request = schedule.get("startWorkflowRequest") or {}
        run: Record = {
            "executionId": idempotency_key(str(schedule["name"]), at),
            "scheduleName": schedule["name"],
            "scheduledTime": at,
            "executionTime": now,
            "workflowName": request.get("name"),
            "startWorkflowRequest": request,
            "zoneId": schedule.get("zoneId") or "UTC",
            "state": "POLLED",
        }
        retention = self.settings.retention_ms
        if not await self.store.schedules.claim_run(run, retention_ms=retention):
            return False
        await self.start_run(run)
        return True

    async def start_run(self, run: Record) -> None:
        """Start the workflow of a claimed run (again: the key makes it once) and record it.

        A start the decider refuses marks the run FAILED with the reason; one that could not
        get through (Unavailable) leaves it POLLED, for :meth:`recover` to start again.
        """
        name, at = str(run["scheduleName"]), int(run["scheduledTime"])
        request = dict(run.get("startWorkflowRequest") or {})
        request["input"] = {
            **(request.get("input") or {}),
            "_scheduledTime": at,
            "_executedTime": int(run.get("executionTime") or at),
        }
        request["idempotencyKey"] = idempotency_key(name, at)
        request["idempotencyStrategy"] = "RETURN_EXISTING"
        try:
            workflow_id = await self.start(request)
        except Unavailable as exc:
            log.warning("run %s of schedule %s not started yet: %s", at, name, exc.message)
            self.on_run("POLLED")
            return
        except PodiumError as exc:
            done = {**run, "state": "FAILED", "reason": exc.message}
        else:
            done = {**run, "state": "EXECUTED", "workflowId": workflow_id}
        await self.store.schedules.update_run(done, retention_ms=self.settings.retention_ms)
        self.on_run(str(done["state"]))

    async def recover(
        self, *, older_than_ms: int | None = None, window_ms: int | None = None
    ) -> int:
        """Start again the runs still POLLED (claimed, not known started) that were claimed
        at least ``older_than_ms`` ago (default :attr:`ScheduleSettings.recover_after_ms`) and
        due within ``window_ms`` (default :attr:`ScheduleSettings.recover_window_ms`); returns
        how many were tried."""
        now = self.clock()
        wait = self.settings.recover_after_ms if older_than_ms is None else older_than_ms
        window = self.settings.recover_window_ms if window_ms is None else window_ms
        names = [str(s["name"]) for s in await self.store.schedules.list_schedules()]
        if not names:
            return 0
        found = await self.store.schedules.search_runs(
            names, from_ms=now - window, to_ms=now, size=100_000
        )
        stuck = [
            r
            for r in found["results"]
            if r.get("state") == "POLLED" and int(r.get("executionTime") or 0) <= now - wait
        ]
        await asyncio.gather(*(self.start_run(r) for r in stuck))
        return len(stuck)


def settings_from_env(env: Environ) -> ScheduleSettings:
    """``PODIUM_SCHEDULE_*``: see docs/schedules.md."""
    return ScheduleSettings(
        retention_ms=env_int(env, "PODIUM_SCHEDULE_RUN_RETENTION_DAYS", 7, minimum=1) * DAY_MS,
        catchup_max=env_int(env, "PODIUM_SCHEDULE_CATCHUP_MAX", 100, minimum=1),
        catchup_window_ms=env_int(env, "PODIUM_SCHEDULE_CATCHUP_WINDOW_S", 3600, minimum=1) * 1000,
        misfire_grace_ms=env_int(env, "PODIUM_SCHEDULE_MISFIRE_GRACE_MS", 5000, minimum=0),
        recover_after_ms=env_int(env, "PODIUM_SCHEDULE_RECOVER_AFTER_MS", 10_000, minimum=0),
    )
