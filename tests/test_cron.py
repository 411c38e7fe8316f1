"""Spring-style cron with seconds, in a time zone: parsing, next times, daylight-saving edges."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import pytest

from podium.cron import Cron, zone
from podium.errors import InvalidArgument

PARIS = zone("Europe/Paris")
NEW_YORK = zone("America/New_York")


def ms(
    year: int, month: int, day: int, hour: int, minute: int, second: int, tz: tzinfo = UTC
) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=tz).timestamp() * 1000)


def local(times: list[int], tz: tzinfo) -> list[str]:
    return [datetime.fromtimestamp(t / 1000, tz).strftime("%Y-%m-%d %H:%M:%S") for t in times]


def test_every_second_and_steps() -> None:
    start = ms(2026, 1, 1, 0, 0, 0)
    assert Cron.parse("* * * * * *").times(start, zone(None), until_ms=start + 3000, limit=10) == [
        start + 1000, start + 2000, start + 3000
    ]  # fmt: skip
    every15 = Cron.parse("*/15 * * * * ?").times(start, zone(None), until_ms=2**62, limit=5)
    assert [(t - start) // 1000 for t in every15] == [15, 30, 45, 60, 75]
    assert Cron.parse("10-20/5 * * * * *").times(start, zone(None), until_ms=2**62, limit=3) == [
        start + 10_000, start + 15_000, start + 20_000
    ]  # fmt: skip


def test_days_months_and_names_in_a_zone() -> None:
    # noon on weekdays, Paris time: 2026-01-02 is a Friday
    cron = Cron.parse("0 0 12 * JAN MON-FRI")
    times = cron.times(ms(2026, 1, 2, 0, 0, 0), PARIS, until_ms=2**62, limit=3)
    assert local(times, PARIS) == ["2026-01-02 12:00:00", "2026-01-05 12:00:00",
                                   "2026-01-06 12:00:00"]  # fmt: skip
    assert times[0] == ms(2026, 1, 2, 11, 0, 0)  # UTC+1 in winter
    # the last day of each month, and Sunday as 7
    last = Cron.parse("0 30 9 L * *").times(ms(2026, 1, 1, 0, 0, 0), PARIS, until_ms=2**62, limit=3)
    assert local(last, PARIS) == ["2026-01-31 09:30:00", "2026-02-28 09:30:00",
                                  "2026-03-31 09:30:00"]  # fmt: skip
    sundays = Cron.parse("0 0 0 ? * 7").times(
        ms(2026, 1, 1, 0, 0, 0), PARIS, until_ms=2**62, limit=1
    )
    assert local(sundays, PARIS) == ["2026-01-04 00:00:00"]


def test_a_time_the_clocks_skip_moves_forward_and_a_repeated_one_runs_once() -> None:
    # New York springs forward at 02:00 on 2026-03-08 and falls back at 02:00 on 2026-11-01
    daily = Cron.parse("0 30 2 * * *")
    spring = daily.times(ms(2026, 3, 7, 0, 0, 0, tz=NEW_YORK), NEW_YORK, until_ms=2**62, limit=3)
    assert local(spring, NEW_YORK) == ["2026-03-07 02:30:00", "2026-03-08 03:30:00",
                                       "2026-03-09 02:30:00"]  # fmt: skip
    fall = Cron.parse("0 30 1 * * *").times(
        ms(2026, 10, 31, 0, 0, 0, tz=NEW_YORK), NEW_YORK, until_ms=2**62, limit=3
    )
    assert local(fall, NEW_YORK) == ["2026-10-31 01:30:00", "2026-11-01 01:30:00",
                                     "2026-11-02 01:30:00"]  # fmt: skip
    # every second across the spring jump: the wall clock goes 01:59:59 -> 03:00:00
    before = ms(2026, 3, 8, 6, 59, 58)  # 01:59:58 EST
    seconds = Cron.parse("* * * * * *").times(before, NEW_YORK, until_ms=2**62, limit=3)
    assert [t - before for t in seconds] == [1000, 2000, 3000]
    assert local(seconds, NEW_YORK) == ["2026-03-08 01:59:59", "2026-03-08 03:00:00",
                                        "2026-03-08 03:00:01"]  # fmt: skip


def test_end_and_impossible_dates() -> None:
    start = ms(2026, 1, 1, 0, 0, 0)
    assert Cron.parse("0 0 0 30 2 *").next_after(start, zone(None)) is None
    assert Cron.parse("* * * * * *").times(start, zone(None), until_ms=start + 999, limit=5) == []


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "60 * * * * *", "* * 24 * * *", "* * * 0 * *", "* * * * 13 *", "a * * * * *",
     "*/0 * * * * *", "5-1 * * * * *", "* * * * * FOO"],
)  # fmt: skip
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(InvalidArgument):
        Cron.parse(expression)


def test_unknown_zones_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        zone("Mars/Olympus")
    assert zone("") == zone("UTC")
