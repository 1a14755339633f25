"""Cron schedules and time windows (freeze and maintenance windows of a ChangePolicy).

A window opens at each time its five-field cron expression matches, in its time zone, and
stays open for its duration. Supported cron syntax: ``*``, numbers, ranges ``a-b``, steps
``*/n`` and ``a-b/n``, lists ``a,b``, month and weekday names (``JAN``, ``MON``), weekday
7 as Sunday, and the macros ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
``@daily``, ``@midnight`` and ``@hourly``. As in classic cron, when both day of month and
day of week are restricted, a time matches if either does.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["CronError", "CronSchedule", "Window", "parse_cron", "resolve_time_zone"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = {
    name: number
    for number, name in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], start=1
    )
}
_DAYS = {name: number for number, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)


class CronError(ValueError):
    """A text that is not a cron expression, with what is wrong in it."""


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field cron expression."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    def matches(self, moment: datetime.datetime) -> bool:
        """Whether the schedule fires at this minute (wall-clock time of ``moment``)."""
        if moment.minute not in self.minutes or moment.hour not in self.hours:
            return False
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def starts_between(self, start: datetime.datetime, end: datetime.datetime) -> Iterable[datetime.datetime]:
        """The minutes in ``[start, end]`` at which the schedule fires, in order.

        ``start`` and ``end`` are aware datetimes in the schedule's time zone.
        """
        moment = start.replace(second=0, microsecond=0)
        if moment < start:
            moment += datetime.timedelta(minutes=1)
        step = datetime.timedelta(minutes=1)
        while moment <= end:
            if moment.month not in self.months:
                moment = _first_of_next_month(moment)
                continue
            if moment.hour not in self.hours:
                moment = (moment + datetime.timedelta(hours=1)).replace(minute=0)
                continue
            if self.matches(moment):
                yield moment
            moment += step


def _first_of_next_month(moment: datetime.datetime) -> datetime.datetime:
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0)


def _parse_value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        known = f" or a name ({', '.join(names)})" if names else ""
        raise CronError(f"{name}: {text!r} is not a number{known}")
    value = int(text)
    if not low <= value <= high:
        raise CronError(f"{name}: {value} is out of range {low}-{high}")
    return value


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{name}: empty list item in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            left, _, right = base.partition("-")
            first = _parse_value(left, name, low, high, names)
            last = _parse_value(right, name, low, high, names)
            if first > last:
                raise CronError(f"{name}: range {base!r} runs backwards")
        else:
            first = _parse_value(base, name, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def parse_cron(expression: str) -> CronSchedule:
    """Parse a cron expression; ``CronError`` names the field that is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise CronError("a cron expression is needed, e.g. '0 17 * * 5' (Fridays at 17:00)")
    text = _MACROS.get(expression.strip().lower(), expression.strip())
    if text.startswith("@"):
        raise CronError(f"unknown macro {expression!r}; known: {', '.join(_MACROS)}")
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{expression!r} has {len(parts)} fields; cron needs 5: minute hour day-of-month month day-of-week"
        )
    parsed = [
        _parse_field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = frozenset(day % 7 for day in parsed[4])
    return CronSchedule(
        expression=expression,
        minutes=parsed[0],
        hours=parsed[1],
        days=parsed[2],
        months=parsed[3],
        weekdays=weekdays,
        days_restricted=parts[2] != "*",
        weekdays_restricted=parts[4] != "*",
    )


def resolve_time_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA time zone of that name; ``ValueError`` says it is unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)") from None


@dataclass(frozen=True)
class Window:
    """A recurring window: opens when ``schedule`` fires, lasts ``duration``."""

    name: str
    schedule: CronSchedule
    duration: datetime.timedelta
    time_zone: zoneinfo.ZoneInfo

    def open_at(self, moment: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime] | None:
        """The (start, end) of the occurrence open at ``moment``, or None when closed."""
        local = moment.astimezone(self.time_zone)
        latest = None
        for start in self.schedule.starts_between(local - self.duration, local):
            latest = start
        if latest is None:
            return None
        end = latest + self.duration
        return (latest, end) if local < end else None

    def next_start(
        self, moment: datetime.datetime, *, horizon: datetime.timedelta = datetime.timedelta(days=400)
    ) -> datetime.datetime | None:
        """The first start after ``moment`` within the horizon, or None."""
        local = moment.astimezone(self.time_zone)
        for start in self.schedule.starts_between(local + datetime.timedelta(minutes=1), local + horizon):
            return start
        return None
