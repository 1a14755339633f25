"""Go-style durations."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upkeep.engine import durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1.5h", 5400), ("63h", 226800), ("0s", 0)],
)
def test_parse(text: str, seconds: float) -> None:
    assert durations.parse_duration(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "1d", "-5s", "m5", "5M", "1h 30m"])
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(durations.DurationError, match=r"e\.g\. 30s"):
        durations.parse_duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_then_parse_round_trips(millis: int) -> None:
    delta = datetime.timedelta(milliseconds=millis)
    assert durations.parse_duration(durations.format_duration(delta)) == delta
