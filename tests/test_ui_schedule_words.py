"""Schedules as the deployments page words them, and fire times on the schedule's clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from push_pools.models import ScheduleOut
from push_pools.ui.schedule_words import in_words, wall_clock, zone_of


def _schedule(
    cron: str | None = None,
    interval: float | None = None,
    timezone: str = "UTC",
    active: bool = True,
    anchor: datetime | None = None,
) -> ScheduleOut:
    return ScheduleOut(
        id="s",
        cron=cron,
        interval_seconds=interval,
        timezone=timezone,
        anchor_date=anchor,
        active=active,
        description=f"cron '{cron}' ({timezone})" if cron else f"every {interval}s",
    )


@pytest.mark.parametrize(
    ("cron", "words"),
    [
        ("0 1 * * *", "every day at 01:00 Europe/Berlin"),
        ("30 9 * * 1-5", "every weekday (Monday to Friday) at 09:30 Europe/Berlin"),
        ("0 8 * * 1", "every Monday at 08:00 Europe/Berlin"),
        ("0 8 * * 0,3", "every Sunday and Wednesday at 08:00 Europe/Berlin"),
        ("15 6 1 * *", "on day 1 of every month at 06:15 Europe/Berlin"),
        ("*/15 * * * *", "every 15 minutes Europe/Berlin"),
        ("5 * * * *", "every hour at 05 minutes past Europe/Berlin"),
        ("0 */6 * * *", "every 6 hours at 00 minutes past Europe/Berlin"),
        ("@daily", "every day at 00:00 Europe/Berlin"),
    ],
)
def test_common_crons_read_as_sentences(cron: str, words: str) -> None:
    assert in_words(_schedule(cron, timezone="Europe/Berlin")) == words


@pytest.mark.parametrize("cron", ["0 1 * 6 *", "0 1-3 * * *", "0 1 L * *", "0 1 1 * 1"])
def test_unusual_crons_keep_the_exact_expression(cron: str) -> None:
    assert in_words(_schedule(cron)) == f"cron '{cron}' (UTC)"


def test_intervals_read_in_their_largest_whole_unit() -> None:
    assert in_words(_schedule(interval=900)) == "every 15 minutes"
    assert in_words(_schedule(interval=3600)) == "every hour"
    assert in_words(_schedule(interval=172800)) == "every 2 days"
    assert in_words(_schedule(interval=90)) == "every 90 seconds"


def test_fire_times_read_on_the_schedules_own_clock() -> None:
    winter = datetime(2026, 12, 8, 0, 0, tzinfo=UTC)
    summer = datetime(2026, 7, 8, 23, 0, tzinfo=UTC)
    assert wall_clock(winter, "Europe/Berlin") == "Tue 8 Dec 2026 01:00 CET"
    assert wall_clock(summer, "Europe/Berlin") == "Thu 9 Jul 2026 01:00 CEST"
    assert wall_clock(winter, "UTC") == "Tue 8 Dec 2026 00:00 UTC"


def test_the_first_active_schedule_names_the_zone() -> None:
    paused = _schedule("0 1 * * *", timezone="Asia/Tokyo", active=False)
    berlin = _schedule("0 1 * * *", timezone="Europe/Berlin")
    assert zone_of([paused, berlin]) == "Europe/Berlin"
    assert zone_of([]) == "UTC"
