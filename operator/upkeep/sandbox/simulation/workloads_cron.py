"""CronJob schedules as the CronJob controller reads them (robfig/cron's standard parser): pure functions.

Five fields (minute, hour, day of month, month, day of week 0-6 with SUN-SAT and JAN-DEC names,
``*``, ``?``, ranges, lists and steps), the descriptors @yearly, @annually, @monthly, @weekly, @daily,
@midnight and @hourly, and a ``TZ=`` or ``CRON_TZ=`` prefix. When both day fields are restricted, a day
matching either runs (as cron does); a ``*`` in either makes the other decide alone.
"""

from __future__ import annotations

import datetime
import zoneinfo
from dataclasses import dataclass

__all__ = ["Schedule", "most_recent", "next_after", "parse", "zone"]

UTC = datetime.UTC
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_WEEKDAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _WEEKDAYS),
)
MAX_MISSED = 100
"""More missed start times than this, the controller warns (TooManyMissedTimes)."""


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: the allowed values of each field, and the time zone it is read in."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    """Day of month was ``*`` or ``?``."""
    any_weekday: bool
    """Day of week was ``*`` or ``?``."""
    zone: str = ""
    """The TZ= prefix's zone; empty: the zone the caller gives (the controller's, UTC)."""

    def day_matches(self, moment: datetime.datetime) -> bool:
        day = moment.day in self.days
        weekday = (moment.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return day and weekday
        return day or weekday


def zone(name: str) -> datetime.tzinfo:
    """The IANA zone ``name`` (ValueError when unknown; "" and "UTC" are UTC, "Local" too: the controller's)."""
    if name in ("", "UTC", "Local"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name}") from error


def _number(text: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"failed to parse int from {text}: strconv.Atoi: parsing {text!r}: invalid syntax") from None


def _field(expression: str, low: int, high: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    """The values of one field, and whether it was an unrestricted ``*``/``?``."""
    values: set[int] = set()
    star = False
    for part in expression.split(","):
        range_and_step = part.split("/")
        if len(range_and_step) > 2:
            raise ValueError(f"too many slashes: {part}")
        bounds = range_and_step[0].split("-")
        if len(bounds) > 2:
            raise ValueError(f"too many hyphens: {part}")
        part_star = bounds[0] in ("*", "?")
        if part_star:
            start, end = low, high
        else:
            start = _number(bounds[0], names)
            end = _number(bounds[1], names) if len(bounds) == 2 else start
        step = 1
        if len(range_and_step) == 2:
            try:
                step = int(range_and_step[1])
            except ValueError:
                raise ValueError(f"failed to parse int from {range_and_step[1]}") from None
            if step <= 0:
                raise ValueError(f"step of range should be a positive number: {part}")
            if len(bounds) == 1 and not part_star:
                end = high
        if start < low:
            raise ValueError(f"beginning of range ({start}) below minimum ({low}): {part}")
        if end > high:
            raise ValueError(f"end of range ({end}) above maximum ({high}): {part}")
        if start > end:
            raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
        star = star or (part_star and step == 1)
    return frozenset(values), star


def parse(expression: str) -> Schedule:
    """A schedule from a cron expression (ValueError, worded as robfig/cron words it, when it is not one)."""
    text = expression.strip()
    zone_name = ""
    if text.startswith(("TZ=", "CRON_TZ=")):
        prefix, _, text = text.partition(" ")
        zone_name = prefix.partition("=")[2]
        zone(zone_name)
        text = text.strip()
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise ValueError(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {fields}")
    parsed = [_field(item, low, high, names) for item, (_, low, high, names) in zip(fields, _FIELDS, strict=True)]
    return Schedule(
        minutes=parsed[0][0],
        hours=parsed[1][0],
        days=parsed[2][0],
        months=parsed[3][0],
        weekdays=parsed[4][0],
        any_day=parsed[2][1],
        any_weekday=parsed[4][1],
        zone=zone_name,
    )


def next_after(schedule: Schedule, after: datetime.datetime, where: datetime.tzinfo = UTC) -> datetime.datetime | None:
    """The first start strictly after ``after`` (aware), in UTC; None if none comes within five years."""
    local_zone = zone(schedule.zone) if schedule.zone else where
    local = after.astimezone(local_zone)
    moment = local.replace(tzinfo=None, second=0, microsecond=0) + datetime.timedelta(minutes=1)
    limit = moment.year + 5
    while moment.year <= limit:
        if moment.month not in schedule.months:
            year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
            moment = datetime.datetime(year, month, 1)
            continue
        if not schedule.day_matches(moment):
            moment = datetime.datetime(moment.year, moment.month, moment.day) + datetime.timedelta(days=1)
            continue
        if moment.hour not in schedule.hours:
            moment = moment.replace(minute=0) + datetime.timedelta(hours=1)
            continue
        if moment.minute not in schedule.minutes:
            moment += datetime.timedelta(minutes=1)
            continue
        candidate = moment.replace(tzinfo=local_zone)
        if candidate.astimezone(UTC).astimezone(local_zone).replace(tzinfo=None) != moment or candidate <= after:
            moment += datetime.timedelta(minutes=1)  # a wall time a DST change skips, or not after ``after``
            continue
        return candidate.astimezone(UTC)
    return None


def most_recent(
    schedule: Schedule, earliest: datetime.datetime, now: datetime.datetime, where: datetime.tzinfo = UTC
) -> tuple[datetime.datetime | None, int]:
    """The latest start in (earliest, now], and how many starts that interval holds (counted in the last
    hour, day, month or year that holds one, and estimated from it for a longer interval)."""
    for window in _WINDOWS:
        start = earliest if window is None or now - window <= earliest else now - window
        found: datetime.datetime | None = None
        count = 0
        moment = start
        while True:
            following = next_after(schedule, moment, where)
            if following is None or following > now:
                break
            found = moment = following
            count += 1
        if found is not None and window is not None and start != earliest:
            # the starts before the window: as many per window as in it (the controller estimates too)
            return found, max(count, int(count * ((now - earliest) / window)))
        if found is not None or window is None or start == earliest:
            return found, count
    return None, 0


_WINDOWS: tuple[datetime.timedelta | None, ...] = (
    datetime.timedelta(hours=1),
    datetime.timedelta(days=1),
    datetime.timedelta(days=32),
    datetime.timedelta(days=400),
    None,
)
