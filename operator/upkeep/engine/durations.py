"""Go-style durations ("30s", "5m", "1h30m", "250ms"), the one duration format of the CRDs."""

from __future__ import annotations

import datetime
import re

__all__ = ["DurationError", "format_duration", "parse_duration"]

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class DurationError(ValueError):
    """A text that is not a duration."""


def parse_duration(text: str) -> datetime.timedelta:
    """The timedelta a duration text means; ``DurationError`` says what is wrong."""
    if not isinstance(text, str) or not _WHOLE.match(text):
        raise DurationError(
            f"{text!r} is not a duration: write a number and a unit (ms, s, m, h), e.g. 30s, 5m or 1h30m"
        )
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    return datetime.timedelta(seconds=seconds)


def format_duration(delta: datetime.timedelta) -> str:
    """The shortest duration text for a timedelta (whole milliseconds)."""
    millis = round(delta.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts = []
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    seconds, millis = divmod(millis, 1000)
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds:
        parts.append(f"{seconds}s")
    if millis:
        parts.append(f"{millis}ms")
    return "".join(parts)
