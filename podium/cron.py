"""Spring-style cron expressions with seconds, evaluated in a time zone.

Conductor's scheduler takes six fields, ``second minute hour day-of-month month day-of-week``
(``0 */5 * * * ?``: every five minutes). Each field is ``*`` or ``?`` (any), a value, a range
``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n``, or a comma list of those. Months and days of
the week may be named (``JAN``, ``MON``); days of the week run 0-7 with 0 and 7 both Sunday.
Day-of-month also takes ``L`` (the last day of the month). As in Spring, a time must match
the day-of-month *and* the day-of-week field.

Times are wall-clock times of the zone (``zoneinfo``). A time that a daylight-saving jump skips
fires moved forward by the jump (``02:30`` becomes ``03:30`` on a spring-forward night, as
Java's ``ZonedDateTime`` does), unless a later time of the expression comes first: an
expression that fires every second does not fire the skipped hour. A wall-clock time that
happens twice when the clocks go back fires once, at its first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podium.errors import InvalidArgument

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
#: How far ahead a search for the next time gives up (an expression like ``0 0 0 30 2 *``
#: never matches).
_HORIZON_YEARS = 5


def _field(text: str, low: int, high: int, names: list[str] | None, what: str) -> frozenset[int]:
    """The values of one field between ``low`` and ``high`` inclusive."""
    values: set[int] = set()

    def number(token: str) -> int:
        upper = token.upper()
        if names is not None and upper in names:
            return names.index(upper) + (1 if what == "month" else 0)
        if not token.isdigit():
            raise InvalidArgument(f"cron {what} field: {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise InvalidArgument(f"cron {what} field: {value} is not in {low}-{high}")
        return value

    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidArgument(f"cron {what} field: bad step in {part!r}")
            step = int(step_text)
        if body in ("*", "?"):
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise InvalidArgument(f"cron {what} field: range {body!r} runs backwards")
        else:
            first = number(body)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; :meth:`parse` builds one, :meth:`next_after` evaluates it."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse six fields; InvalidArgument (a 400) says what is wrong."""
        fields = expression.split()
        if len(fields) != 6:
            raise InvalidArgument(
                f"cron expression {expression!r} must have 6 fields "
                "(second minute hour day-of-month month day-of-week)"
            )
        sec, minute, hour, dom, month, dow = fields
        last_day = dom.upper() == "L"
        weekdays = _field(dow, 0, 7, _DAYS, "day-of-week")
        if 7 in weekdays:
            weekdays = (weekdays - {7}) | {0}
        return cls(
            seconds=_field(sec, 0, 59, None, "second"),
            minutes=_field(minute, 0, 59, None, "minute"),
            hours=_field(hour, 0, 23, None, "hour"),
            days=frozenset() if last_day else _field(dom, 1, 31, None, "day-of-month"),
            last_day=last_day,
            months=_field(month, 1, 12, _MONTHS, "month"),
            weekdays=weekdays,
        )

    def _day_matches(self, day: datetime) -> bool:
        if self.last_day:
            if (day + timedelta(days=1)).month == day.month:
                return False
        elif day.day not in self.days:
            return False
        return (day.isoweekday() % 7) in self.weekdays

    def _next_local(self, start: datetime, horizon: datetime) -> datetime | None:
        """The first wall-clock time at or after ``start`` (naive) that matches."""
        t = start
        while t < horizon:
            if t.month not in self.months:
                t = (t.replace(day=1) + timedelta(days=32)).replace(
                    day=1, hour=0, minute=0, second=0
                )
            elif not self._day_matches(t):
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        return None

    def next_after(self, after_ms: int, zone: ZoneInfo) -> int | None:
        """The first time (epoch ms, a whole second) strictly after ``after_ms``, or None."""
        after = datetime.fromtimestamp(after_ms / 1000, UTC)
        local = after.astimezone(zone).replace(tzinfo=None, microsecond=0)
        candidate = local + timedelta(seconds=1)
        horizon = local + timedelta(days=366 * _HORIZON_YEARS)
        while True:
            found = self._next_local(candidate, horizon)
            if found is None:
                return None
            instant_ms = int(found.replace(tzinfo=zone).timestamp()) * 1000
            if instant_ms > after_ms:
                return instant_ms
            candidate = found + timedelta(seconds=1)

    def times(self, after_ms: int, zone: ZoneInfo, *, until_ms: int, limit: int) -> list[int]:
        """Up to ``limit`` times after ``after_ms`` and at most ``until_ms``, ascending."""
        out: list[int] = []
        t = after_ms
        while len(out) < limit:
            nxt = self.next_after(t, zone)
            if nxt is None or nxt > until_ms:
                break
            out.append(nxt)
            t = nxt
        return out


def zone(zone_id: str | None) -> ZoneInfo:
    """The time zone named ``zone_id`` (UTC when empty); InvalidArgument if unknown."""
    name = zone_id or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(f"unknown time zone {name!r}") from exc
