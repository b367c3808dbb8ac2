"""When a deployment's schedules fire: pure computation, no database, no clock.

The scheduler loop creates runs ahead of time and deduplicates them by
(schedule id, UTC timestamp), so every function here is deterministic: the same spec and
window always give the same UTC datetimes, and overlapping windows agree on their overlap.

Cron expressions are evaluated on the schedule's local wall clock (zoneinfo), then converted
to UTC. Daylight-saving rules, chosen so that no run is lost and none is doubled:

* A wall time that does not exist (spring forward) fires once, at the first real instant after
  the gap (the transition itself: 02:30 on a New York spring-forward day fires at 03:00 EDT).
* A wall time that happens twice (fall back) fires once, at its first occurrence, unless the
  hour field is ``*``: such jobs are "every hour" jobs and fire on every real hour, so
  ``0 * * * *`` fires 25 times on a fall-back day (and 23 times on a spring-forward day).
  This is the rule classic Vixie cron uses for wildcard jobs.

Intervals are absolute durations of real time on a grid ``anchor + k * interval``; the
timezone only matters for the default anchor (2020-01-01T00:00 local time).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from push_pools.errors import InvalidInput

__all__ = [
    "ScheduleSpec",
    "describe",
    "next_fire_times",
    "parse_schedule",
    "schedule_from_dict",
    "schedule_to_dict",
]

DEFAULT_TIMEZONE = "UTC"
# Wall-clock origin of interval grids when no anchor is given, read in the schedule's timezone.
DEFAULT_ANCHOR_WALL_TIME = datetime(2020, 1, 1)

_CRON_HINT = "expected 5 fields: minute hour day-of-month month day-of-week"
_CRON_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_FIELD_ALLOWED = (
    "0-59",
    "0-23",
    "1-31 or L",
    "1-12 or JAN-DEC",
    "0-7 or SUN-SAT (0 and 7 are Sunday)",
)
_CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# croniter's "R" (random) and "H" (hashed) fields; R is re-rolled on every parse.
_RANDOM_OR_HASH_FIELD = re.compile(r"^[hr](\(\d+-\d+\))?(/\d+)?$", re.IGNORECASE)

_TZ_HINT = "use an IANA name such as 'Europe/Berlin' or 'UTC'"
# These resolve to whatever the host is configured with, so results would differ between machines.
_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules"})

_INTERVAL_HINT = (
    "give a positive number of seconds or a duration such as '90', '90s', '15m', '2h', '1d' "
    "or '1h30m'"
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PLAIN_NUMBER = re.compile(r"^\d+(\.\d+)?$|^\.\d+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*([a-z]+)", re.IGNORECASE)

_ONE_US = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Fire-time windows are clamped inside these so that the day-sized margins the cron search
# adds around a window never overflow datetime.
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=4)
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=4)
_DICT_KEYS = frozenset({"cron", "interval_seconds", "timezone", "anchor_date"})


@dataclass(frozen=True)
class ScheduleSpec:
    """A validated schedule: exactly one of ``cron`` / ``interval_seconds``.

    Construction validates and normalises (cron whitespace collapsed, interval as float seconds,
    anchor converted to the schedule's timezone), so two specs that fire identically compare equal
    and every instance is safe to hand to ``next_fire_times``.
    """

    cron: str | None = None
    interval_seconds: float | None = None
    # Grid origin for intervals; None means 2020-01-01T00:00 in `timezone`.
    anchor_date: datetime | None = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        _require_one_kind(self.cron, self.interval_seconds)
        tz = _resolve_timezone(self.timezone)
        # object.__setattr__ because the dataclass is frozen; this runs only during __init__.
        object.__setattr__(self, "timezone", tz.key)
        if self.cron is not None:
            if self.anchor_date is not None:
                raise InvalidInput(
                    f"anchor_date {_show(self.anchor_date)} only applies to interval schedules; "
                    "remove it, or use interval instead of cron"
                )
            object.__setattr__(self, "cron", _normalise_cron(self.cron))
        else:
            object.__setattr__(self, "interval_seconds", _parse_interval(self.interval_seconds))
            object.__setattr__(self, "anchor_date", _normalise_anchor(self.anchor_date, tz))


def parse_schedule(
    cron: str | None = None,
    interval: float | str | timedelta | None = None,
    timezone: str | None = None,
    anchor_date: datetime | str | None = None,
) -> ScheduleSpec:
    """Validate user input and build a ScheduleSpec; raises InvalidInput saying what to fix.

    ``interval`` may be seconds (number or numeric string), a duration string such as "15m",
    "2h", "1d" or "1h30m", or a timedelta. A naive ``anchor_date`` (or an ISO string without an
    offset) is read as wall-clock time in ``timezone``.
    """
    _require_one_kind(cron, interval)
    tz = _resolve_timezone(DEFAULT_TIMEZONE if timezone is None else _strip(timezone))
    return ScheduleSpec(
        cron=cron,
        interval_seconds=None if interval is None else _parse_interval(interval),
        anchor_date=_normalise_anchor(anchor_date, tz),
        timezone=tz.key,
    )


def next_fire_times(
    spec: ScheduleSpec, start: datetime, end: datetime, limit: int = 100
) -> list[datetime]:
    """Fire times t with start <= t < end, ascending, at most ``limit``, as aware UTC datetimes.

    ``start`` and ``end`` must be timezone-aware (any timezone). Deterministic: calling it again,
    or with an overlapping window, yields identical datetimes for the shared part.
    """
    if not isinstance(spec, ScheduleSpec):
        raise TypeError(f"spec must be a ScheduleSpec, got {type(spec).__name__}")
    start_utc = _aware_utc(start, "start")
    end_utc = _aware_utc(end, "end")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise InvalidInput(f"limit must be a non-negative integer, got {limit!r}")
    start_utc = max(start_utc, _EARLIEST)
    end_utc = min(end_utc, _LATEST)
    if limit == 0 or end_utc <= start_utc:
        return []
    if spec.cron is not None:
        return _cron_fire_times(
            spec.cron, _resolve_timezone(spec.timezone), start_utc, end_utc, limit
        )
    return _interval_fire_times(spec, start_utc, end_utc, limit)


def describe(spec: ScheduleSpec) -> str:
    """One line for humans, e.g. "cron '0 9 * * *' (Europe/Berlin)" or "every 15m"."""
    if spec.cron is not None:
        return f"cron '{spec.cron}' ({spec.timezone})"
    text = f"every {_format_duration(_interval_of(spec))}"
    if spec.anchor_date is None and spec.timezone == DEFAULT_TIMEZONE:
        return text
    # Alignment is not obvious from the duration alone once an anchor or zone is involved.
    text += f" from {_effective_anchor(spec).isoformat()}"
    if spec.timezone != DEFAULT_TIMEZONE:
        text += f" ({spec.timezone})"
    return text


def schedule_to_dict(spec: ScheduleSpec) -> dict[str, Any]:
    """JSON-friendly form; always has the same four keys."""
    return {
        "cron": spec.cron,
        "interval_seconds": spec.interval_seconds,
        "timezone": spec.timezone,
        "anchor_date": None if spec.anchor_date is None else spec.anchor_date.isoformat(),
    }


def schedule_from_dict(data: Mapping[str, Any]) -> ScheduleSpec:
    """Inverse of schedule_to_dict; validates like parse_schedule."""
    if not isinstance(data, Mapping):
        raise InvalidInput(
            f"a schedule must be an object with keys {sorted(_DICT_KEYS)}, got {_show(data)}"
        )
    # A misspelt key (say "timezon") would otherwise silently schedule in UTC.
    unknown = sorted(str(key) for key in data if key not in _DICT_KEYS)
    if unknown:
        raise InvalidInput(
            f"unknown schedule field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_DICT_KEYS))}"
        )
    return parse_schedule(
        cron=data.get("cron"),
        interval=data.get("interval_seconds"),
        timezone=data.get("timezone"),
        anchor_date=data.get("anchor_date"),
    )


# --- validation and normalisation -------------------------------------------------------------


def _show(value: object) -> str:
    """The offending value, quoted and short enough for an error message."""
    text = repr(value.isoformat()) if isinstance(value, datetime) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _require_one_kind(cron: object, interval: object) -> None:
    if (cron is None) == (interval is None):
        given = (
            "neither was given"
            if cron is None
            else f"both were given (cron={_show(cron)}, interval={_show(interval)})"
        )
        raise InvalidInput(
            f"a schedule needs exactly one of cron or interval, but {given}; "
            "use e.g. cron='0 9 * * *' or interval='15m'"
        )


def _resolve_timezone(name: object) -> ZoneInfo:
    if not isinstance(name, str):
        raise InvalidInput(f"invalid timezone {_show(name)}; {_TZ_HINT}")
    if name in _HOST_DEPENDENT_ZONES:
        raise InvalidInput(f"timezone {name!r} depends on the server's configuration; {_TZ_HINT}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    # Only on the error path: scanning the tz database is slow but catches case typos.
    matches = [key for key in available_timezones() if key.lower() == name.strip().lower()]
    if matches:
        raise InvalidInput(f"unknown timezone {_show(name)}; did you mean {matches[0]!r}?")
    raise InvalidInput(f"unknown timezone {_show(name)}; {_TZ_HINT}")


def _cron_error(cron: str, why: str) -> InvalidInput:
    return InvalidInput(f"invalid cron string {_show(cron)}: {why}; {_CRON_HINT}")


def _croniter_reason(error: Exception) -> str:
    """croniter's message without its "[expr] is not acceptable" boilerplate."""
    text = re.sub(r"^\[[^\]]*\] is not acceptable[.,]?\s*", "", str(error)).strip()
    return text.rstrip(".")


def _normalise_cron(cron: object) -> str:
    if not isinstance(cron, str):
        raise InvalidInput(
            f"invalid cron string {_show(cron)}: it must be text such as '0 9 * * *'; {_CRON_HINT}"
        )
    text = " ".join(cron.split())
    if not text:
        raise _cron_error(cron, "it is empty")
    if text.startswith("@"):
        alias = text.lower()
        if alias not in _CRON_ALIASES:
            raise _cron_error(cron, f"unknown shortcut; supported: {', '.join(_CRON_ALIASES)}")
        return alias
    fields = text.split(" ")
    if len(fields) != 5:
        extra = " (seconds and year fields are not supported)" if len(fields) in (6, 7) else ""
        raise _cron_error(cron, f"got {len(fields)} field(s){extra}")
    for name, field in zip(_CRON_FIELD_NAMES, fields, strict=True):
        if any(_RANDOM_OR_HASH_FIELD.match(part) for part in field.split(",")):
            raise _cron_error(
                cron,
                f"the {name} field {field!r} uses random/hashed syntax (R/H), which would make "
                "fire times differ between calls; use explicit values",
            )
    # croniter (with dateutil) is imported when a cron is first read, not by every importer.
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter(text)
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as error:
        raise _cron_error(cron, _explain_cron_failure(fields, error)) from None
    try:
        # Any 5-field expression that can fire does so within a few years of any date.
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise _cron_error(
            cron, "it never fires: no date matches its day-of-month, month and day-of-week"
        ) from None
    return text


def _explain_cron_failure(fields: list[str], error: Exception) -> str:
    """Name the first field that is invalid on its own; fall back to croniter's reason."""
    from croniter import CroniterError, croniter

    for index, field in enumerate(fields):
        probe = ["*"] * 5
        probe[index] = field
        try:
            croniter(" ".join(probe))
        except (CroniterError, ValueError, TypeError, KeyError, IndexError) as field_error:
            reason = _croniter_reason(field_error)
            detail = f" ({reason})" if reason else ""
            return (
                f"the {_CRON_FIELD_NAMES[index]} field {field!r} is not valid{detail}; "
                f"allowed: {_CRON_FIELD_ALLOWED[index]}, '*', ranges a-b, steps */n, lists a,b"
            )
    return _croniter_reason(error) or "croniter rejected it"


def _parse_interval(value: object) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"invalid interval {value!r}: not a number; {_INTERVAL_HINT}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        seconds = _parse_duration_text(value)
    else:
        raise InvalidInput(f"invalid interval {_show(value)}: not a number; {_INTERVAL_HINT}")
    if not math.isfinite(seconds):
        raise InvalidInput(
            f"invalid interval {_show(value)}: not a finite number; {_INTERVAL_HINT}"
        )
    if seconds <= 0:
        raise InvalidInput(
            f"invalid interval {_show(value)}: it must be greater than zero; {_INTERVAL_HINT}"
        )
    if round(seconds * 1_000_000) == 0:
        raise InvalidInput(
            f"invalid interval {_show(value)}: shorter than the 1 microsecond resolution; "
            f"{_INTERVAL_HINT}"
        )
    if seconds > timedelta.max.total_seconds():
        raise InvalidInput(f"invalid interval {_show(value)}: too long; {_INTERVAL_HINT}")
    return seconds


def _parse_duration_text(value: str) -> float:
    text = value.strip()
    sign = 1.0
    if text.startswith("-"):
        # Parse the magnitude so the caller reports "must be greater than zero", not "garbage".
        sign, text = -1.0, text[1:].lstrip()
    return sign * _parse_unsigned_duration(text, value)


def _parse_unsigned_duration(text: str, value: str) -> float:
    if _PLAIN_NUMBER.match(text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    # findall skips junk between matches, so require the parts to rebuild the whole string.
    rebuilt = "".join(number + unit for number, unit in parts)
    if not parts or rebuilt.lower() != re.sub(r"\s+", "", text).lower():
        raise InvalidInput(f"invalid interval {value!r}: not a duration; {_INTERVAL_HINT}")
    total = 0.0
    for number, unit in parts:
        factor = _UNIT_SECONDS.get(unit.lower())
        if factor is None:
            raise InvalidInput(
                f"invalid interval {value!r}: unknown unit {unit!r} (use s, m, h or d); "
                f"{_INTERVAL_HINT}"
            )
        total += float(number) * factor
    return total


def _normalise_anchor(value: object, tz: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"invalid anchor_date {_show(value)}: expected an ISO 8601 datetime such as "
                "'2026-01-05T09:00:00+01:00'"
            ) from None
    if not isinstance(value, datetime):
        raise InvalidInput(
            f"invalid anchor_date {_show(value)}: expected a datetime or an ISO 8601 string such "
            "as '2026-01-05T09:00:00+01:00'"
        )
    if value.utcoffset() is None:
        return _localise(value, tz)
    return value.astimezone(tz)


def _aware_utc(value: object, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {_show(value)}")
    if value.utcoffset() is None:
        raise InvalidInput(
            f"{name} {value.isoformat()} has no timezone; pass an aware datetime, "
            "e.g. datetime.now(UTC)"
        )
    return value.astimezone(UTC)


def _format_duration(seconds: float) -> str:
    micros = round(seconds * 1_000_000)
    if micros % 1_000_000:
        return f"{seconds:g}s"
    rest = micros // 1_000_000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# --- wall clock <-> UTC ---------------------------------------------------------------------


def _offset(value: datetime) -> timedelta:
    offset = value.utcoffset()
    # ZoneInfo always has an offset; the fallback only keeps the type checker honest.
    return offset if offset is not None else timedelta(0)


def _offset_at(instant_utc: datetime, tz: ZoneInfo) -> timedelta:
    return _offset(instant_utc.astimezone(tz))


def _instants(wall: datetime, tz: ZoneInfo, every_hour: bool) -> list[datetime]:
    """The UTC instants at which naive local ``wall`` fires (see module docstring)."""
    # PEP 495: in a gap or fold, fold=0 uses the offset from before the transition, fold=1 after.
    before = _offset(wall.replace(tzinfo=tz, fold=0))
    after = _offset(wall.replace(tzinfo=tz, fold=1))
    if before == after:
        return [(wall - before).replace(tzinfo=UTC)]
    if before > after:  # the clock went back: this wall time happens twice
        first = (wall - before).replace(tzinfo=UTC)
        if every_hour:
            return [first, (wall - after).replace(tzinfo=UTC)]
        return [first]
    return [_transition_instant(wall, before, after, tz)]


def _transition_instant(
    wall: datetime, before: timedelta, after: timedelta, tz: ZoneInfo
) -> datetime:
    """The first real instant after the gap containing ``wall``: the transition itself."""
    # wall - after lies before the transition and wall - before after it. tzdata transitions
    # fall on whole seconds, and both ends are whole seconds apart, so bisect over seconds.
    low = (wall - after).replace(tzinfo=UTC)
    low_seconds, high_seconds = 0, int((after - before).total_seconds())
    while high_seconds - low_seconds > 1:
        middle = (low_seconds + high_seconds) // 2
        if _offset_at(low + timedelta(seconds=middle), tz) == before:
            low_seconds = middle
        else:
            high_seconds = middle
    return low + timedelta(seconds=high_seconds)


def _localise(wall: datetime, tz: ZoneInfo) -> datetime:
    """Naive wall time -> aware datetime in ``tz``, with the same gap/fold rules as cron."""
    return _instants(wall.replace(tzinfo=None), tz, every_hour=False)[0].astimezone(tz)


def _offset_range(tz: ZoneInfo, first: datetime, last: datetime) -> tuple[timedelta, timedelta]:
    """Smallest and largest UTC offset of ``tz`` in effect at any instant in [first, last].

    Sampled hourly with 2 h of slack on each side; exact because every offset in tzdata stays
    in effect for days (the shortest period is ~4 days), so no offset fits between samples.
    """
    lowest = highest = _offset_at(first, tz)
    instant = first - timedelta(hours=2)
    stop = last + timedelta(hours=2)
    while instant <= stop:
        offset = _offset_at(instant, tz)
        lowest, highest = min(lowest, offset), max(highest, offset)
        instant += timedelta(hours=1)
    return lowest, highest


# --- fire-time search --------------------------------------------------------------------------


def _fires_every_hour(cron: str) -> bool:
    from croniter import croniter

    hours = croniter(cron).expanded[1]
    return hours == ["*"] or set(hours) >= set(range(24))


def _cron_fire_times(
    cron: str, tz: ZoneInfo, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    # Walk naive local wall times in order and map each to its UTC instant(s). The mapping is
    # not monotonic around folds, so collect the `limit` smallest instants and stop once no
    # later wall time can produce an instant below the current bound. Any wall time w that fires
    # at instant u satisfies w - u == an offset in effect at (or just before) u, which gives:
    #   lowest useful wall time  = start + min offset near start
    #   no useful wall time from = bound + max offset near bound
    # "Near" is two days because |offset| < 24 h, which covers instants further away.
    from croniter import CroniterError, croniter

    every_hour = _fires_every_hour(cron)
    two_days = timedelta(days=2)
    lowest_offset, _ = _offset_range(tz, start, start + two_days)
    first_wall = start.replace(tzinfo=None) + lowest_offset

    def wall_limit(bound: datetime) -> datetime:
        _, highest_offset = _offset_range(tz, bound - two_days, bound)
        return bound.replace(tzinfo=None) + highest_offset

    bound = end
    stop_wall = wall_limit(bound)
    seen: set[int] = set()
    heap: list[int] = []  # negated microsecond keys: a max-heap of the smallest `limit` found
    walls = croniter(cron, first_wall - timedelta(minutes=1))
    while True:
        try:
            wall = walls.get_next(datetime)
        except (CroniterError, ValueError, OverflowError):
            break  # no further match within croniter's search range or datetime's
        if wall >= stop_wall:
            break
        for instant in _instants(wall, tz, every_hour):
            if not start <= instant < end:
                continue
            key = (instant - _EPOCH) // _ONE_US
            if key in seen:
                continue  # a gap maps several wall times onto one instant
            seen.add(key)
            if len(heap) < limit:
                heapq.heappush(heap, -key)
            elif key < -heap[0]:
                heapq.heapreplace(heap, -key)
            else:
                continue
            if len(heap) == limit:
                kth = _EPOCH + timedelta(microseconds=-heap[0])
                if kth < bound:
                    bound = kth
                    stop_wall = wall_limit(bound)
    return sorted(_EPOCH + timedelta(microseconds=-key) for key in heap)


def _interval_of(spec: ScheduleSpec) -> float:
    """The interval of a schedule that has no cron (ScheduleSpec holds exactly one of them)."""
    if spec.interval_seconds is None:
        # Not an assert: those vanish under `python -O`, and this would then fail obscurely.
        raise ValueError("a schedule without cron must have interval_seconds")
    return spec.interval_seconds


def _effective_anchor(spec: ScheduleSpec) -> datetime:
    if spec.anchor_date is not None:
        return spec.anchor_date
    return _localise(DEFAULT_ANCHOR_WALL_TIME, _resolve_timezone(spec.timezone))


def _interval_fire_times(
    spec: ScheduleSpec, start: datetime, end: datetime, limit: int
) -> list[datetime]:
    # Integer microseconds keep the grid exact: float accumulation would drift and break dedup.
    step = round(_interval_of(spec) * 1_000_000)
    anchor = _effective_anchor(spec).astimezone(UTC)
    since_anchor = (start - anchor) // _ONE_US
    index = -(-since_anchor // step)  # ceiling: first grid point at or after start
    fire_times: list[datetime] = []
    while len(fire_times) < limit:
        try:
            instant = anchor + timedelta(microseconds=index * step)
        except OverflowError:
            break
        if instant >= end:
            break
        fire_times.append(instant)
        index += 1
    return fire_times
