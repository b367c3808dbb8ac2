"""Schedules in plain words for the deployments page ("every day at 01:00 Europe/Berlin"), and
fire times on the schedule's own wall clock, where a user thinks about them.

Only the common cron shapes are put into words; anything else keeps the API's description
(the cron expression itself), which is exact if not friendly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from push_pools.models import ScheduleOut

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}


def _number(field: str, top: int) -> int | None:
    return int(field) if field.isdigit() and int(field) <= top else None


def _every(field: str) -> int | None:
    """N for a field of "*/N"."""
    step = field.removeprefix("*/")
    return int(step) if field.startswith("*/") and step.isdigit() and int(step) > 0 else None


def _plural(count: int, unit: str) -> str:
    return f"{unit}" if count == 1 else f"{count} {unit}s"


def _days(field: str) -> str | None:
    if field == "1-5":
        return "every weekday (Monday to Friday)"
    if field in ("0,6", "6,0", "6,7"):
        return "every Saturday and Sunday"
    parts = field.split(",")
    if not all(_number(p, 7) is not None for p in parts):
        return None
    names = [DAYS[int(p) % 7] for p in parts]
    return "every " + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1])


def _cron_words(cron: str) -> str | None:
    fields = ALIASES.get(cron.strip().lower(), cron).split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if month != "*":
        return None
    if dom == "*" and dow == "*" and hour == "*":
        if minute == "*":
            return "every minute"
        step = _every(minute)
        if step:
            return f"every {_plural(step, 'minute')}"
        if _number(minute, 59) is not None:
            return f"every hour at {int(minute):02d} minutes past"
        return None
    m = _number(minute, 59)
    if m is None:
        return None
    step = _every(hour)
    if step and dom == "*" and dow == "*":
        return f"every {_plural(step, 'hour')} at {m:02d} minutes past"
    h = _number(hour, 23)
    if h is None:
        return None
    at = f"at {h:02d}:{m:02d}"
    if dom == "*" and dow == "*":
        return f"every day {at}"
    if dom == "*":
        days = _days(dow)
        return f"{days} {at}" if days else None
    day = _number(dom, 31)
    if dow == "*" and day:
        return f"on day {day} of every month {at}"
    return None


def _interval_words(seconds: float) -> str:
    whole = int(seconds)
    if whole != seconds or whole <= 0:
        return f"every {seconds:g} seconds"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if whole % size == 0:
            return f"every {_plural(whole // size, unit)}"
    return f"every {_plural(whole, 'second')}"


def in_words(schedule: ScheduleOut) -> str:
    """The schedule as a user would say it, its timezone named."""
    if schedule.cron is not None:
        words = _cron_words(schedule.cron)
        return f"{words} {schedule.timezone}" if words else schedule.description
    if schedule.interval_seconds is not None:
        words = _interval_words(schedule.interval_seconds)
        if schedule.anchor_date is None:
            return words
        return f"{words} from {wall_clock(schedule.anchor_date, schedule.timezone)}"
    return schedule.description


def zone_of(schedules: list[ScheduleOut]) -> str:
    """The timezone to show a deployment's fire times in: its first active schedule's."""
    active = [s for s in schedules if s.active] or schedules
    return active[0].timezone if active else "UTC"


def wall_clock(when: datetime, timezone: str) -> str:
    """E.g. "Tue 8 Dec 2026 01:00 CET": a fire time as it reads where the schedule lives."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {local.tzname()}"
