"""push_pools.schedules: fire times across DST, interval grids, validation, round trips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from push_pools.errors import InvalidInput
from push_pools.schedules import (
    ScheduleSpec,
    describe,
    next_fire_times,
    parse_schedule,
    schedule_from_dict,
    schedule_to_dict,
)

NEW_YORK = "America/New_York"
BERLIN = "Europe/Berlin"
HOUR = timedelta(hours=1)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


def local_day(tz: str, year: int, month: int, day: int) -> tuple[datetime, datetime]:
    """One calendar day on the local wall clock, as aware bounds (23, 24 or 25 real hours)."""
    start = local(tz, year, month, day)
    return start, local(tz, *(start.date() + timedelta(days=1)).timetuple()[:3])


def fires(spec: ScheduleSpec, start: datetime, end: datetime, limit: int = 1000) -> list[datetime]:
    return next_fire_times(spec, start, end, limit)


def gaps(times: list[datetime]) -> set[timedelta]:
    return {later - earlier for earlier, later in zip(times, times[1:], strict=False)}


# --- cron across DST ---------------------------------------------------------------------------


def test_new_york_spring_forward_missing_time_fires_once_at_end_of_gap() -> None:
    spec = parse_schedule(cron="30 2 * * *", timezone=NEW_YORK)

    times = fires(spec, local(NEW_YORK, 2026, 3, 7), local(NEW_YORK, 2026, 3, 10))

    # 02:30 does not exist on 2026-03-08: it fires once at 03:00 EDT, the first instant after it.
    assert times == [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
    assert times[1].astimezone(ZoneInfo(NEW_YORK)).strftime("%H:%M %Z") == "03:00 EDT"


def test_new_york_fall_back_repeated_time_fires_once_at_first_occurrence() -> None:
    spec = parse_schedule(cron="30 1 * * *", timezone=NEW_YORK)

    times = fires(spec, local(NEW_YORK, 2026, 10, 31), local(NEW_YORK, 2026, 11, 3))

    # 01:30 happens at 05:30Z (EDT) and again at 06:30Z (EST) on 2026-11-01; only the first fires.
    assert times == [utc(2026, 10, 31, 5, 30), utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_berlin_daily_job_stays_at_nine_local_across_march_change() -> None:
    spec = parse_schedule(cron="0 9 * * *", timezone=BERLIN)

    times = fires(spec, local(BERLIN, 2026, 3, 28), local(BERLIN, 2026, 3, 31))

    assert [t.hour for t in times] == [8, 7, 7]
    assert {t.astimezone(ZoneInfo(BERLIN)).hour for t in times} == {9}


def test_berlin_daily_job_stays_at_nine_local_across_october_change() -> None:
    spec = parse_schedule(cron="0 9 * * *", timezone=BERLIN)

    times = fires(spec, local(BERLIN, 2026, 10, 24), local(BERLIN, 2026, 10, 27))

    assert [t.hour for t in times] == [7, 8, 8]
    assert {t.astimezone(ZoneInfo(BERLIN)).hour for t in times} == {9}


@pytest.mark.parametrize(
    ("tz", "day", "expected"),
    [
        (NEW_YORK, (2026, 11, 1), 25),
        (NEW_YORK, (2026, 3, 8), 23),
        (BERLIN, (2026, 10, 25), 25),
        (BERLIN, (2026, 3, 29), 23),
        (NEW_YORK, (2026, 6, 1), 24),
    ],
)
def test_hourly_job_fires_on_every_real_hour_of_dst_days(
    tz: str, day: tuple[int, int, int], expected: int
) -> None:
    spec = parse_schedule(cron="0 * * * *", timezone=tz)

    times = fires(spec, *local_day(tz, *day))

    assert len(times) == expected
    assert len(set(times)) == expected
    assert gaps(times) == {HOUR}


@pytest.mark.parametrize(("day", "expected"), [((2026, 11, 1), 100), ((2026, 3, 8), 92)])
def test_quarter_hourly_job_keeps_real_cadence_across_dst(
    day: tuple[int, int, int], expected: int
) -> None:
    spec = parse_schedule(cron="*/15 * * * *", timezone=NEW_YORK)

    times = fires(spec, *local_day(NEW_YORK, *day))

    assert len(times) == expected
    assert gaps(times) == {timedelta(minutes=15)}


def test_hour_restricted_job_does_not_repeat_in_fall_back_hour() -> None:
    # The hour field is not "*", so this targets wall times and each fires once.
    spec = parse_schedule(cron="*/30 1 * * *", timezone=NEW_YORK)

    times = fires(spec, *local_day(NEW_YORK, 2026, 11, 1))

    assert times == [utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 5, 30)]


def test_half_past_hourly_job_maps_missing_half_hour_to_gap_end_without_duplicates() -> None:
    spec = parse_schedule(cron="30 * * * *", timezone=NEW_YORK)

    times = fires(spec, *local_day(NEW_YORK, 2026, 3, 8))

    assert len(times) == len(set(times)) == 24
    assert utc(2026, 3, 8, 7, 0) in times  # 02:30 EST does not exist -> 03:00 EDT
    assert utc(2026, 3, 8, 7, 30) in times  # the regular 03:30 EDT


def test_midnight_job_in_zone_that_skips_midnight_fires_at_one() -> None:
    # Chile springs forward at 24:00: 2026-09-06 00:00 does not exist.
    spec = parse_schedule(cron="0 0 * * *", timezone="America/Santiago")

    times = fires(spec, utc(2026, 9, 5), utc(2026, 9, 8))

    assert times == [utc(2026, 9, 5, 4), utc(2026, 9, 6, 4), utc(2026, 9, 7, 3)]
    assert times[1].astimezone(ZoneInfo("America/Santiago")).hour == 1


def test_whole_skipped_day_fires_once_when_the_clock_resumes() -> None:
    # Samoa skipped 2011-12-30 entirely when it crossed the date line.
    spec = parse_schedule(cron="0 9 * * *", timezone="Pacific/Apia")

    times = fires(spec, utc(2011, 12, 28), utc(2011, 12, 31, 12))

    apia = ZoneInfo("Pacific/Apia")
    assert [t.astimezone(apia).isoformat() for t in times] == [
        "2011-12-28T09:00:00-10:00",
        "2011-12-29T09:00:00-10:00",
        "2011-12-31T00:00:00+14:00",  # 2011-12-30 09:00 never existed
        "2011-12-31T09:00:00+14:00",
    ]


def test_start_and_end_may_be_in_any_timezone_and_results_are_utc() -> None:
    spec = parse_schedule(cron="0 9 * * *", timezone=BERLIN)
    tokyo = ZoneInfo("Asia/Tokyo")

    times = fires(spec, datetime(2026, 1, 5, 9, tzinfo=tokyo), datetime(2026, 1, 7, tzinfo=tokyo))

    assert times == [utc(2026, 1, 5, 8), utc(2026, 1, 6, 8)]
    assert all(t.tzinfo is UTC for t in times)


def test_window_is_half_open() -> None:
    spec = parse_schedule(cron="0 * * * *")

    assert fires(spec, utc(2026, 1, 1, 10), utc(2026, 1, 1, 12)) == [
        utc(2026, 1, 1, 10),
        utc(2026, 1, 1, 11),
    ]
    assert fires(spec, utc(2026, 1, 1, 12), utc(2026, 1, 1, 12)) == []
    assert fires(spec, utc(2026, 1, 1, 13), utc(2026, 1, 1, 12)) == []


def test_cron_aliases_are_accepted_and_normalised() -> None:
    hourly = parse_schedule(cron=" @Hourly ")
    daily = parse_schedule(cron="@daily", timezone=BERLIN)

    assert hourly.cron == "@hourly"
    assert fires(hourly, utc(2026, 1, 1), utc(2026, 1, 1, 3)) == [
        utc(2026, 1, 1),
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
    ]
    assert fires(daily, utc(2026, 7, 1), utc(2026, 7, 2)) == [utc(2026, 7, 1, 22)]


def test_standard_day_of_month_or_day_of_week_semantics() -> None:
    # Classic cron: when both day fields are restricted, either one matching fires.
    spec = parse_schedule(cron="0 9 13 * 5")

    times = fires(spec, utc(2026, 2, 1), utc(2026, 3, 1))

    assert [t.day for t in times] == [6, 13, 20, 27]  # Fridays, plus Friday the 13th once


def test_far_future_end_returns_limit_quickly() -> None:
    every_minute = parse_schedule(cron="* * * * *", timezone=NEW_YORK)
    leap_day = parse_schedule(cron="0 0 29 2 *", timezone=NEW_YORK)
    forever = datetime.max.replace(tzinfo=UTC)

    minutes = next_fire_times(every_minute, utc(2026, 11, 1, 5, 30), forever, limit=100)
    leap_days = next_fire_times(leap_day, utc(2026, 1, 1), forever, limit=3)

    assert len(minutes) == 100
    assert gaps(minutes) == {timedelta(minutes=1)}
    assert leap_days == [utc(2028, 2, 29, 5), utc(2032, 2, 29, 5), utc(2036, 2, 29, 5)]


def _reference_cron(expr: str, tz_name: str, start: datetime, end: datetime) -> list[datetime]:
    """Brute force over every UTC minute; independent of the wall-clock walk being tested.

    Only for numeric fields (no L/W/#) and whole-minute offsets/transitions.
    """
    fields, _ = croniter.expand(expr)
    tz = ZoneInfo(tz_name)
    every_hour = fields[1] == ["*"]

    def matches(wall: datetime) -> bool:
        def ok(index: int, value: int) -> bool:
            return fields[index] == ["*"] or value in fields[index]

        dom, dow = ok(2, wall.day), ok(4, wall.isoweekday() % 7)
        both_days_restricted = fields[2] != ["*"] and fields[4] != ["*"]
        day = (dom or dow) if both_days_restricted else (dom and dow)
        return ok(0, wall.minute) and ok(1, wall.hour) and ok(3, wall.month) and day

    found: list[datetime] = []
    instant = start.astimezone(UTC)
    while instant < end:
        here = instant.astimezone(tz)
        wall = here.replace(tzinfo=None)
        offset, previous = here.utcoffset(), (instant - timedelta(minutes=1)).astimezone(tz)
        assert offset is not None and previous.utcoffset() is not None
        skipped = offset - previous.utcoffset()
        # Wall times swallowed by a gap that starts at this instant fire at this instant.
        gap_hit = any(
            matches(wall - skipped + timedelta(minutes=m))
            for m in range(int(skipped.total_seconds() // 60))
        )
        if gap_hit or (matches(wall) and (here.fold == 0 or every_hour)):
            found.append(instant)
        instant += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    ("expr", "tz", "transition"),
    [
        ("0 * * * *", NEW_YORK, utc(2026, 3, 8, 7)),
        ("0 * * * *", NEW_YORK, utc(2026, 11, 1, 6)),
        ("*/20 1-3 * * *", NEW_YORK, utc(2026, 11, 1, 6)),
        ("30 2 * * *", BERLIN, utc(2026, 3, 29, 1)),
        ("30 2 * * *", BERLIN, utc(2026, 10, 25, 1)),
        ("*/15 * * * *", "Australia/Lord_Howe", utc(2026, 10, 3, 15, 30)),  # 30-minute shift
        ("*/15 * * * *", "Australia/Lord_Howe", utc(2026, 4, 4, 15)),
        ("0 * * * *", "Antarctica/Troll", utc(2026, 3, 29, 1)),  # 2-hour shift
        ("10 1,2 * * *", "Antarctica/Troll", utc(2026, 10, 25, 1)),
        ("0 0,23 * * *", "America/Santiago", utc(2026, 4, 5, 3)),
        ("0 */6 * * *", "Pacific/Apia", utc(2011, 12, 30, 10)),  # 24-hour gap
        ("30 9 * * 1-5", "Asia/Kolkata", utc(2026, 3, 8, 7)),
        ("0 9 13 * 5", NEW_YORK, utc(2026, 11, 13, 6)),
    ],
)
def test_cron_matches_brute_force_reference_around_transitions(
    expr: str, tz: str, transition: datetime
) -> None:
    spec = parse_schedule(cron=expr, timezone=tz)
    window_start, window_end = transition - timedelta(hours=36), transition + timedelta(hours=36)
    reference = _reference_cron(expr, tz, window_start, window_end)

    assert fires(spec, window_start, window_end) == reference
    # Sub-windows starting inside or around the transition, with small limits, must agree too.
    for shift in (-90, -30, 0, 30, 90):
        sub_start = transition + timedelta(minutes=shift)
        expected = [t for t in reference if t >= sub_start]
        assert fires(spec, sub_start, window_end) == expected
        assert next_fire_times(spec, sub_start, window_end, limit=3) == expected[:3]


def test_overlapping_windows_agree_for_dedup() -> None:
    spec = parse_schedule(cron="*/30 * * * *", timezone=NEW_YORK)
    day_start, _ = local_day(NEW_YORK, 2026, 11, 1)

    first = fires(spec, day_start, day_start + timedelta(hours=6))
    second = fires(spec, day_start + timedelta(hours=1), day_start + timedelta(hours=8))
    again = fires(spec, day_start, day_start + timedelta(hours=6))

    overlap = [t for t in first if t >= day_start + timedelta(hours=1)]
    assert overlap == second[: len(overlap)]
    assert len(overlap) > 4
    assert again == first


def test_limit_is_respected_and_returns_the_earliest() -> None:
    cron = parse_schedule(cron="0 * * * *", timezone=NEW_YORK)
    interval = parse_schedule(interval="15m")
    start, end = utc(2026, 11, 1), utc(2026, 11, 3)

    for spec in (cron, interval):
        everything = fires(spec, start, end)
        assert next_fire_times(spec, start, end, limit=5) == everything[:5]
        assert len(next_fire_times(spec, start, start + timedelta(days=30))) == 100  # default
        assert next_fire_times(spec, start, end, limit=0) == []


# --- intervals -------------------------------------------------------------------------------


def test_interval_start_between_grid_points_returns_next_grid_point() -> None:
    spec = parse_schedule(interval="15m")  # default anchor 2020-01-01T00:00Z

    times = fires(spec, utc(2026, 5, 4, 10, 7, 30), utc(2026, 5, 4, 11))

    assert times == [utc(2026, 5, 4, 10, 15), utc(2026, 5, 4, 10, 30), utc(2026, 5, 4, 10, 45)]


def test_interval_start_on_grid_point_is_included() -> None:
    spec = parse_schedule(interval=900)

    assert fires(spec, utc(2026, 5, 4, 10, 15), utc(2026, 5, 4, 10, 31)) == [
        utc(2026, 5, 4, 10, 15),
        utc(2026, 5, 4, 10, 30),
    ]


def test_interval_grid_follows_anchor() -> None:
    spec = parse_schedule(interval="1h", anchor_date="2026-01-01T00:20:00Z")

    times = fires(spec, utc(2025, 12, 31, 22), utc(2026, 1, 1, 2))

    # The grid extends before the anchor too.
    assert times == [
        utc(2025, 12, 31, 22, 20),
        utc(2025, 12, 31, 23, 20),
        utc(2026, 1, 1, 0, 20),
        utc(2026, 1, 1, 1, 20),
    ]


def test_interval_overlapping_windows_give_identical_grid_points() -> None:
    spec = parse_schedule(interval="7m", anchor_date=utc(2026, 1, 1, 0, 0, 13))

    first = fires(spec, utc(2026, 3, 1, 9, 1, 2), utc(2026, 3, 1, 11))
    second = fires(spec, utc(2026, 3, 1, 10, 0, 59), utc(2026, 3, 1, 12))

    shared = [t for t in first if t >= utc(2026, 3, 1, 10, 0, 59)]
    assert shared == second[: len(shared)]
    assert all(
        (t - utc(2026, 1, 1, 0, 0, 13)) % timedelta(minutes=7) == timedelta(0)
        for t in first + second
    )


def test_fractional_interval_stays_exact_far_from_anchor() -> None:
    spec = parse_schedule(interval=0.1)

    times = next_fire_times(spec, utc(2026, 1, 1), utc(2027, 1, 1), limit=3)

    assert times == [
        utc(2026, 1, 1),
        utc(2026, 1, 1) + timedelta(milliseconds=100),
        utc(2026, 1, 1) + timedelta(milliseconds=200),
    ]


def test_interval_is_absolute_across_dst() -> None:
    hourly = parse_schedule(interval="1h", timezone=NEW_YORK)
    daily = parse_schedule(interval="1d", timezone=BERLIN, anchor_date="2026-03-28T09:00:00")

    hours = fires(hourly, *local_day(NEW_YORK, 2026, 11, 1))
    days = fires(daily, utc(2026, 3, 28), utc(2026, 3, 31))

    assert len(hours) == 25 and gaps(hours) == {HOUR}
    # 24 real hours after 09:00 CET is 10:00 CEST: intervals do not follow the wall clock.
    assert [t.astimezone(ZoneInfo(BERLIN)).hour for t in days] == [9, 10, 10]


def test_default_anchor_is_midnight_2020_in_schedule_timezone() -> None:
    spec = parse_schedule(interval="1d", timezone=BERLIN)

    assert fires(spec, utc(2026, 1, 10), utc(2026, 1, 11)) == [utc(2026, 1, 10, 23)]


def test_naive_anchor_is_read_in_schedule_timezone() -> None:
    spec = parse_schedule(interval="1h", timezone=NEW_YORK, anchor_date=datetime(2026, 1, 1, 0, 45))

    assert spec.anchor_date == utc(2026, 1, 1, 5, 45)
    assert spec.anchor_date is not None and spec.anchor_date.tzinfo == ZoneInfo(NEW_YORK)


# --- parsing and validation --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [
        ("15m", 900.0),
        ("2h", 7200.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (" 1.5 H ", 5400.0),
        (90, 90.0),
        (2.5, 2.5),
        (timedelta(minutes=5), 300.0),
    ],
)
def test_parse_interval_forms(interval: float | str | timedelta, seconds: float) -> None:
    spec = parse_schedule(interval=interval)

    assert spec.interval_seconds == seconds
    assert isinstance(spec.interval_seconds, float)
    assert spec.cron is None and spec.timezone == "UTC"


@pytest.mark.parametrize(
    ("kwargs", "offending"),
    [
        ({"cron": "61 * * * *"}, "'61 * * * *'"),
        ({"cron": "* * * *"}, "'* * * *'"),
        ({"cron": "0 0 * * * *"}, "'0 0 * * * *'"),
        ({"cron": "0 9 * 13 *"}, "'0 9 * 13 *'"),
        ({"cron": "banana"}, "'banana'"),
        ({"cron": ""}, "''"),
        ({"cron": "@reboot"}, "'@reboot'"),
        ({"cron": "R * * * *"}, "'R * * * *'"),
        ({"cron": "H 9 * * *"}, "'H 9 * * *'"),
        ({"cron": "0 0 31 2 *"}, "'0 0 31 2 *'"),
        ({"cron": 5}, "5"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Base"}, "'Mars/Base'"),
        ({"interval": 60, "timezone": ""}, "''"),
        ({"interval": 60, "timezone": "localtime"}, "'localtime'"),
        ({"interval": 60, "timezone": 3}, "3"),
        ({"interval": 0}, "0"),
        ({"interval": -5}, "-5"),
        ({"interval": "-5m"}, "'-5m'"),
        ({"interval": "--5m"}, "'--5m'"),
        ({"interval": "0m"}, "'0m'"),
        ({"interval": "abc"}, "'abc'"),
        ({"interval": "15x"}, "'15x'"),
        ({"interval": "15m junk"}, "'15m junk'"),
        ({"interval": float("nan")}, "nan"),
        ({"interval": float("inf")}, "inf"),
        ({"interval": True}, "True"),
        ({"interval": [60]}, "[60]"),
        ({"interval": 60, "anchor_date": "next tuesday"}, "'next tuesday'"),
        ({"cron": "0 9 * * *", "interval": "15m"}, "'0 9 * * *'"),
        ({}, "neither"),
        (
            {"cron": "0 9 * * *", "anchor_date": "2026-01-01T00:00:00Z"},
            "'2026-01-01T00:00:00+00:00'",
        ),
    ],
)
def test_invalid_input_names_the_offending_value(kwargs: dict[str, object], offending: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(**kwargs)  # type: ignore[arg-type]

    assert offending in caught.value.message


def test_invalid_cron_message_explains_field_and_expected_format() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(cron="61 * * * *")

    message = caught.value.message
    assert message.startswith("invalid cron string '61 * * * *': the minute field '61'")
    assert message.endswith("expected 5 fields: minute hour day-of-month month day-of-week")
    assert caught.value.status_code == 422


def test_unknown_timezone_message_suggests_iana_names() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_schedule(cron="0 9 * * *", timezone="Mars/Base")
    assert caught.value.message == (
        "unknown timezone 'Mars/Base'; use an IANA name such as 'Europe/Berlin' or 'UTC'"
    )

    with pytest.raises(
        InvalidInput, match=r"unknown timezone 'europe/berlin'; did you mean 'Europe/Berlin'\?"
    ):
        parse_schedule(cron="0 9 * * *", timezone="europe/berlin")


def test_both_or_neither_kind_is_rejected_with_guidance() -> None:
    with pytest.raises(InvalidInput, match="exactly one of cron or interval, but both were given"):
        parse_schedule(cron="0 9 * * *", interval=60)
    with pytest.raises(
        InvalidInput, match="exactly one of cron or interval, but neither was given"
    ):
        ScheduleSpec()


def test_next_fire_times_rejects_naive_bounds_and_negative_limit() -> None:
    spec = parse_schedule(cron="0 9 * * *")

    with pytest.raises(InvalidInput, match="start 2026-01-01T00:00:00 has no timezone"):
        next_fire_times(spec, datetime(2026, 1, 1), utc(2026, 1, 2))
    with pytest.raises(InvalidInput, match="end 2026-01-02T00:00:00 has no timezone"):
        next_fire_times(spec, utc(2026, 1, 1), datetime(2026, 1, 2))
    with pytest.raises(InvalidInput, match="-1"):
        next_fire_times(spec, utc(2026, 1, 1), utc(2026, 1, 2), limit=-1)


def test_direct_construction_is_validated_and_normalised_like_parse() -> None:
    assert ScheduleSpec(cron="  0   9 * * *", timezone=BERLIN) == parse_schedule(
        cron="0 9 * * *", timezone=BERLIN
    )
    with pytest.raises(InvalidInput, match="'Mars/Base'"):
        ScheduleSpec(interval_seconds=60, timezone="Mars/Base")


# --- describe and dict round trip ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (parse_schedule(cron="0 9 * * *", timezone=BERLIN), "cron '0 9 * * *' (Europe/Berlin)"),
        (parse_schedule(cron="*/5 * * * *"), "cron '*/5 * * * *' (UTC)"),
        (parse_schedule(interval="15m"), "every 15m"),
        (parse_schedule(interval=5400), "every 1h30m"),
        (parse_schedule(interval=1.5), "every 1.5s"),
        (
            parse_schedule(interval="1d", timezone=BERLIN),
            "every 1d from 2020-01-01T00:00:00+01:00 (Europe/Berlin)",
        ),
        (
            parse_schedule(interval="2h", anchor_date="2026-01-05T09:00:00+00:00"),
            "every 2h from 2026-01-05T09:00:00+00:00",
        ),
    ],
)
def test_describe(spec: ScheduleSpec, text: str) -> None:
    assert describe(spec) == text


@pytest.mark.parametrize(
    "spec",
    [
        parse_schedule(cron="0 9 * * MON-FRI", timezone=BERLIN),
        parse_schedule(cron="@hourly"),
        parse_schedule(interval="15m"),
        parse_schedule(interval=0.25, timezone=NEW_YORK, anchor_date="2026-03-08T02:30:00"),
        parse_schedule(interval="1d", anchor_date=datetime(2026, 1, 1, 9, tzinfo=ZoneInfo(BERLIN))),
    ],
)
def test_dict_round_trip_through_json(spec: ScheduleSpec) -> None:
    data = schedule_to_dict(spec)
    restored = schedule_from_dict(json.loads(json.dumps(data)))

    assert restored == spec
    assert schedule_to_dict(restored) == data
    window = (utc(2026, 3, 7), utc(2026, 3, 10))
    assert next_fire_times(restored, *window, limit=50) == next_fire_times(spec, *window, limit=50)


def test_dict_form_is_plain_json() -> None:
    spec = parse_schedule(interval="1h", timezone=BERLIN, anchor_date="2026-01-01T08:00:00Z")

    assert schedule_to_dict(spec) == {
        "cron": None,
        "interval_seconds": 3600.0,
        "timezone": BERLIN,
        "anchor_date": "2026-01-01T09:00:00+01:00",
    }


def test_dict_with_unknown_or_invalid_fields_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown schedule field.*timezon"):
        schedule_from_dict({"cron": "0 9 * * *", "timezon": BERLIN})
    with pytest.raises(InvalidInput, match="'Mars/Base'"):
        schedule_from_dict({"cron": "0 9 * * *", "timezone": "Mars/Base"})
    with pytest.raises(InvalidInput, match="must be an object"):
        schedule_from_dict(["0 9 * * *"])  # type: ignore[arg-type]
