"""WAIT task inputs: ``duration`` and ``until`` (Conductor's ``DateTimeUtils``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(
    r"^\s*(?:(\d+)\s*(?:days|day|d))?\s*(?:(\d+)\s*(?:hours|hrs|hr|h))?"
    r"\s*(?:(\d+)\s*(?:minutes|mins|min|m))?\s*(?:(\d+)\s*(?:seconds|secs|sec|s))?\s*$",
    re.IGNORECASE,
)
_UNTIL_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d")
_OFFSET = re.compile(r"^(?:GMT|UTC)?([+-])(\d{1,2}):?(\d{2})$")


def parse_duration(text: str) -> int | None:
    """Seconds in ``"1 days 2 hours 3m 4s"`` style text, or None when it does not parse."""
    m = _DURATION.match(text)
    if m is None or not any(m.groups()):
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return int(timedelta(days=d, hours=h, minutes=mi, seconds=s).total_seconds())


def parse_until(text: str) -> int | None:
    """Epoch ms of ``yyyy-MM-dd HH:mm[ z]`` or ``yyyy-MM-dd`` (UTC unless a zone is given)."""
    text = text.strip()
    zone: timezone | ZoneInfo = UTC
    parts = text.split(" ")
    if len(parts) == 3:
        parsed_zone = _zone(parts[2])
        if parsed_zone is None:
            return None
        zone, text = parsed_zone, " ".join(parts[:2])
    for fmt in _UNTIL_FORMATS:
        try:
            dt = datetime.strptime(text, fmt).replace(tzinfo=zone)
        except ValueError:
            continue
        return int(dt.timestamp() * 1000)
    return None


def _zone(name: str) -> timezone | ZoneInfo | None:
    if name.upper() in ("UTC", "GMT", "Z"):
        return UTC
    m = _OFFSET.match(name)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
