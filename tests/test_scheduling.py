"""Which times of a schedule run now: catch-up, the misfire grace, start and end times."""

from __future__ import annotations

from podium.scheduling import ScheduleSettings, due_times

SETTINGS = ScheduleSettings(catchup_max=5, catchup_window_ms=60_000, misfire_grace_ms=2_000)
NOW = 1_800_000_000_000  # a whole second


def every_second(**fields: object) -> dict[str, object]:
    return {"name": "s", "cronExpression": "* * * * * *", **fields}


def test_in_normal_running_the_times_since_the_cursor_are_due() -> None:
    assert due_times(every_second(), NOW - 3000, NOW, SETTINGS) == [NOW - 2000, NOW - 1000, NOW]
    assert due_times(every_second(), NOW, NOW, SETTINGS) == []
    assert due_times(every_second(), NOW - 500, NOW + 400, SETTINGS) == [NOW]


def test_without_catch_up_missed_times_are_skipped_but_for_the_grace() -> None:
    # ten minutes down: only what is at most misfire_grace_ms late still runs
    assert due_times(every_second(), NOW - 600_000, NOW, SETTINGS) == [NOW - 2000, NOW - 1000, NOW]


def test_with_catch_up_the_newest_missed_times_of_the_window_run() -> None:
    schedule = every_second(runCatchupScheduleInstances=True)
    assert due_times(schedule, NOW - 600_000, NOW, SETTINGS) == [
        NOW - 4000, NOW - 3000, NOW - 2000, NOW - 1000, NOW
    ]  # fmt: skip
    minutely = {"name": "m", "cronExpression": "0 * * * * *", "runCatchupScheduleInstances": True}
    minute = NOW - NOW % 60_000
    # the window (60 s) bounds how far back catch-up looks
    assert due_times(minutely, minute - 600_000, minute + 1000, SETTINGS) == [minute]


def test_start_and_end_times_bound_the_runs() -> None:
    schedule = every_second(scheduleStartTime=NOW - 1000, scheduleEndTime=NOW + 2000)
    assert due_times(schedule, NOW - 3000, NOW, SETTINGS) == [NOW - 1000, NOW]
    assert due_times(schedule, NOW, NOW + 2500, SETTINGS) == [NOW + 1000, NOW + 2000]
    assert due_times(schedule, NOW + 2000, NOW + 5000, SETTINGS) == []
