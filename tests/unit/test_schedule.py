"""Cron expressions and freeze/maintenance windows."""

from __future__ import annotations

import datetime

import pytest

from upkeep.engine import schedule

UTC = datetime.UTC
BERLIN = schedule.resolve_time_zone("Europe/Berlin")


@pytest.mark.parametrize(
    ("expression", "moment", "fires"),
    [
        ("0 17 * * 5", datetime.datetime(2026, 11, 20, 17, 0), True),  # a Friday
        ("0 17 * * 5", datetime.datetime(2026, 11, 21, 17, 0), False),  # a Saturday
        ("0 17 * * FRI", datetime.datetime(2026, 11, 20, 17, 0), True),
        ("*/15 * * * *", datetime.datetime(2026, 1, 1, 3, 45), True),
        ("*/15 * * * *", datetime.datetime(2026, 1, 1, 3, 46), False),
        ("0 9-17/4 * * *", datetime.datetime(2026, 1, 1, 13, 0), True),
        ("0 9-17/4 * * *", datetime.datetime(2026, 1, 1, 15, 0), False),
        ("0 0 * * 7", datetime.datetime(2026, 11, 22, 0, 0), True),  # 7 is Sunday
        ("0 0 1 JAN,JUL *", datetime.datetime(2026, 7, 1, 0, 0), True),
        # day of month and day of week both restricted: either matches
        ("0 0 13 * 5", datetime.datetime(2026, 11, 13, 0, 0), True),
        ("0 0 13 * 5", datetime.datetime(2026, 11, 20, 0, 0), True),
        ("0 0 13 * 5", datetime.datetime(2026, 11, 19, 0, 0), False),
        ("@daily", datetime.datetime(2026, 11, 19, 0, 0), True),
        ("@hourly", datetime.datetime(2026, 11, 19, 5, 1), False),
    ],
)
def test_matches(expression: str, moment: datetime.datetime, fires: bool) -> None:
    assert schedule.parse_cron(expression).matches(moment) is fires


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("0 17 * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("0 25 * * *", "hour: 25 is out of range 0-23"),
        ("0 0 * * FUN", "day of week: 'FUN' is not a number"),
        ("0 0 5-1 * *", "runs backwards"),
        ("*/0 * * * *", "must be a positive number"),
        ("@sometimes", "unknown macro"),
        ("", "a cron expression is needed"),
    ],
)
def test_parse_errors_say_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(schedule.CronError, match=says):
        schedule.parse_cron(expression)


def friday_freeze() -> schedule.Window:
    return schedule.Window(
        name="friday-evening",
        schedule=schedule.parse_cron("0 17 * * 5"),
        duration=datetime.timedelta(hours=63),
        time_zone=BERLIN,
    )


def test_window_is_open_from_friday_evening_to_monday_morning_berlin_time() -> None:
    window = friday_freeze()
    # Friday 2026-11-20 16:30 UTC is 17:30 in Berlin (CET, UTC+1)
    opened = window.open_at(datetime.datetime(2026, 11, 20, 16, 30, tzinfo=UTC))
    assert opened is not None
    start, end = opened
    assert start.isoformat() == "2026-11-20T17:00:00+01:00"
    assert end.isoformat() == "2026-11-23T08:00:00+01:00"
    assert window.open_at(datetime.datetime(2026, 11, 20, 15, 59, tzinfo=UTC)) is None
    assert window.open_at(datetime.datetime(2026, 11, 23, 6, 59, tzinfo=UTC)) is not None
    assert window.open_at(datetime.datetime(2026, 11, 23, 7, 0, tzinfo=UTC)) is None


def test_next_start() -> None:
    start = friday_freeze().next_start(datetime.datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    assert start is not None
    assert start.isoformat() == "2026-11-27T17:00:00+01:00"


def test_unknown_time_zone() -> None:
    with pytest.raises(ValueError, match="not an IANA time zone"):
        schedule.resolve_time_zone("Mars/Olympus")
