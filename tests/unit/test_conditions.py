"""Conditions as the API conventions and kstatus describe them."""

from __future__ import annotations

import datetime

import pytest

from upkeep.model import conditions

T0 = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)


def test_first_visit_sets_ready_unknown_and_reconciling() -> None:
    out = conditions.mark_reconciling(None, generation=3, now=T0)
    ready = conditions.find(out, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason, ready.observed_generation) == ("Unknown", "Progressing", 3)
    assert conditions.is_true(out, "Reconciling")
    assert ready.last_transition_time == "2026-11-21T10:00:00Z"


def test_transition_time_moves_only_when_status_changes() -> None:
    first = conditions.mark_ready(None, reason="Applied", message="a", generation=1, now=T0)
    same = conditions.mark_ready(first, reason="Applied", message="b", generation=2, now=T1)
    changed = conditions.mark_failed(same, reason="ApplyFailed", message="c", generation=2, stalled=False, now=T1)
    assert conditions.find(same, "Ready").last_transition_time == "2026-11-21T10:00:00Z"  # type: ignore[union-attr]
    assert conditions.find(same, "Ready").message == "b"  # type: ignore[union-attr]
    assert conditions.find(changed, "Ready").last_transition_time == "2026-11-21T10:05:00Z"  # type: ignore[union-attr]


def test_ready_drops_reconciling_and_stalled() -> None:
    stalled = conditions.mark_failed(None, reason="InvalidSpec", message="x", generation=1, stalled=True, now=T0)
    assert conditions.is_true(stalled, "Stalled")
    assert conditions.find(stalled, "Reconciling") is None
    ready = conditions.mark_ready(stalled, reason="Applied", message="ok", generation=2, now=T1)
    assert [c["type"] for c in ready] == ["Ready"]


def test_retryable_failure_keeps_reconciling() -> None:
    out = conditions.mark_failed(None, reason="Unreachable", message="x", generation=1, stalled=False, now=T0)
    assert conditions.find(out, "Ready").status == "False"  # type: ignore[union-attr]
    assert conditions.is_true(out, "Reconciling")
    assert conditions.find(out, "Stalled") is None


def test_bounded_kinds_end_with_succeeded() -> None:
    out = conditions.mark_succeeded(None, succeeded=False, reason="StepFailed", message="x", generation=1, now=T0)
    assert conditions.find(out, "Succeeded").status == "False"  # type: ignore[union-attr]
    assert conditions.find(out, "Ready").reason == "StepFailed"  # type: ignore[union-attr]


def test_input_is_not_mutated() -> None:
    original = conditions.mark_ready(None, reason="Applied", message="a", generation=1, now=T0)
    snapshot = [dict(c) for c in original]
    conditions.mark_failed(original, reason="Broken", message="b", generation=2, stalled=True, now=T1)
    assert original == snapshot


@pytest.mark.parametrize("reason", ["", "has space", "1Starts"])
def test_reason_must_be_a_camel_case_word(reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        conditions.Condition("Ready", "True", reason)


def test_status_must_be_true_false_or_unknown() -> None:
    with pytest.raises(ValueError, match="True, False or Unknown"):
        conditions.Condition("Ready", "Yes", "Fine")  # type: ignore[arg-type]
