"""SLA clocks and escalation: deadlines from the SupportPolicy, breaches once, levels, and when to look again."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import yaml
from hypothesis import given, settings

from upkeep.engine import sla
from upkeep.model import conditions, errors

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)
POLICY: dict[str, Any] = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples" / "shop" / "supportpolicy.yaml").read_text(encoding="utf-8")
)["spec"]


def triggered(severity: str = "SEV1", *, at: datetime.datetime = T0, policy: dict[str, Any] = POLICY) -> dict[str, Any]:
    """The SLA part of a freshly triggered incident's status."""
    return {
        "phase": "Triggered",
        "triggeredAt": sla.format_time(at),
        "timeline": [{"at": sla.format_time(at), "to": "Triggered", "by": "detector/pods"}],
        "sla": sla.deadlines(severity, at, policy).to_status(),
        "escalationLevel": 0,
    }


def moved(status: dict[str, Any], phase: str, at: datetime.datetime, **stamps: str) -> dict[str, Any]:
    out = dict(status, phase=phase, **stamps)
    out["timeline"] = [
        *status["timeline"],
        {"at": sla.format_time(at), "from": status["phase"], "to": phase, "by": "ana"},
    ]
    return out


# Deadlines


def test_deadlines_come_from_the_target_of_the_severity() -> None:
    found = sla.deadlines("SEV1", T0 + datetime.timedelta(microseconds=700_000), POLICY)

    # triggeredAt is recorded to the second; the deadlines are computed from what is recorded
    assert found.acknowledge_by == T0 + 5 * MINUTE
    assert found.resolve_by == T0 + datetime.timedelta(hours=4)
    assert found.to_status() == {
        "acknowledgeBy": "2026-03-02T10:05:00Z",
        "acknowledgeBreached": False,
        "resolveBy": "2026-03-02T14:00:00Z",
        "resolveBreached": False,
    }


def test_a_severity_without_a_target_has_no_clocks() -> None:
    found = sla.deadlines("SEV2", T0, {"sla": [{"severity": "SEV1", "acknowledgeWithin": "1m", "resolveWithin": "1h"}]})

    assert found == sla.Deadlines()
    assert found.to_status() == {}
    assert sla.deadlines("SEV1", T0, {}) == sla.Deadlines()


def test_an_unreadable_target_names_its_field() -> None:
    policy = {"sla": [{"severity": "SEV1", "acknowledgeWithin": "soon", "resolveWithin": "1h"}]}

    with pytest.raises(errors.SpecError) as caught:
        sla.deadlines("SEV1", T0, policy)

    assert caught.value.field == "spec.sla[0].acknowledgeWithin"
    assert "spec.sla[0].acknowledgeWithin" in str(caught.value)


def test_escalation_levels_are_read_in_level_order() -> None:
    policy = {"escalation": {"levels": [{"level": 2, "after": "15m", "channels": ["pager"]}, POLICY_LEVEL_1]}}

    assert sla.escalation_levels(policy) == (
        sla.Level(1, 5 * MINUTE, ("oncall",)),
        sla.Level(2, 15 * MINUTE, ("pager",)),
    )


POLICY_LEVEL_1 = {"level": 1, "after": "5m", "channels": ["oncall"]}


# Breaches


def test_an_unacknowledged_incident_breaches_at_its_deadline_and_says_so_once() -> None:
    status = triggered()

    before = sla.evaluate(status, POLICY, T0 + 5 * MINUTE - datetime.timedelta(seconds=1))
    at_deadline = sla.evaluate(status, POLICY, T0 + 5 * MINUTE)

    assert before.breaches == ()
    assert at_deadline.breaches == ("acknowledge",)
    assert at_deadline.acknowledge_breached
    assert not at_deadline.resolve_breached
    recorded = sla.apply(status, at_deadline, now=T0 + 5 * MINUTE)
    assert recorded["sla"]["acknowledgeBreached"] is True
    again = sla.evaluate(recorded, POLICY, T0 + 6 * MINUTE)
    assert again.breaches == ()
    assert again.acknowledge_breached


def test_acknowledging_in_time_stops_the_acknowledge_clock() -> None:
    status = moved(triggered(), "Acknowledged", T0 + 2 * MINUTE, acknowledgedAt=sla.format_time(T0 + 2 * MINUTE))

    state = sla.evaluate(status, POLICY, T0 + datetime.timedelta(hours=1))

    assert state.breaches == ()
    assert not state.acknowledge_breached
    # only the resolve clock still runs
    assert state.next_check == T0 + datetime.timedelta(hours=4)


def test_acknowledging_late_is_a_breach() -> None:
    late = T0 + 7 * MINUTE
    status = moved(triggered(), "Acknowledged", late, acknowledgedAt=sla.format_time(late))

    state = sla.evaluate(status, POLICY, late + MINUTE)

    assert state.breaches == ("acknowledge",)


def test_resolving_stops_both_clocks() -> None:
    status = moved(triggered(), "Resolved", T0 + 3 * MINUTE, resolvedAt=sla.format_time(T0 + 3 * MINUTE))

    state = sla.evaluate(status, POLICY, T0 + datetime.timedelta(days=2))

    assert state.breaches == ()
    assert state.escalation_level == 0
    assert state.next_check is None


def test_resolving_late_breaches_the_resolve_deadline() -> None:
    late = T0 + datetime.timedelta(hours=5)
    status = moved(triggered(), "Acknowledged", T0 + MINUTE, acknowledgedAt=sla.format_time(T0 + MINUTE))
    status = moved(status, "Resolved", late, resolvedAt=sla.format_time(late))

    state = sla.evaluate(status, POLICY, late + MINUTE)

    assert state.breaches == ("resolve",)
    recorded = sla.apply(status, state, now=late + MINUTE)
    breached = conditions.find(recorded["conditions"], sla.SLA_BREACHED)
    assert breached is not None
    assert (breached.status, breached.reason) == ("True", "ResolveDeadlineMissed")
    assert "not resolved by 2026-03-02T14:00:00Z" in breached.message


def test_a_reopened_incident_runs_its_resolve_clock_again() -> None:
    status = moved(triggered(), "Acknowledged", T0 + MINUTE, acknowledgedAt=sla.format_time(T0 + MINUTE))
    status = moved(status, "Resolved", T0 + 2 * MINUTE, resolvedAt=sla.format_time(T0 + 2 * MINUTE))
    status = moved(status, "Triggered", T0 + 3 * MINUTE)

    state = sla.evaluate(status, POLICY, T0 + datetime.timedelta(hours=4))

    assert state.breaches == ("resolve",)


# Escalation


def test_levels_are_reached_while_nobody_acknowledges() -> None:
    status = triggered()

    state = sla.evaluate(status, POLICY, T0 + 16 * MINUTE)

    assert state.escalation_level == 2
    assert state.new_levels == (1, 2)
    assert state.channels == ("oncall", "pager")
    assert state.next_check == T0 + datetime.timedelta(hours=1)
    recorded = sla.apply(status, state, now=T0 + 16 * MINUTE)
    assert recorded["escalationLevel"] == 2
    escalated = conditions.find(recorded["conditions"], sla.ESCALATED)
    assert escalated is not None
    assert (escalated.status, escalated.reason) == ("True", "EscalationLevelReached")

    later = sla.evaluate(recorded, POLICY, T0 + datetime.timedelta(hours=2))
    assert later.new_levels == (3,)
    assert later.channels == ("pager",)
    assert later.escalation_level == 3


def test_acknowledging_stops_further_escalation() -> None:
    status = sla.apply(triggered(), sla.evaluate(triggered(), POLICY, T0 + 6 * MINUTE), now=T0 + 6 * MINUTE)
    status = moved(status, "Acknowledged", T0 + 10 * MINUTE, acknowledgedAt=sla.format_time(T0 + 10 * MINUTE))

    state = sla.evaluate(status, POLICY, T0 + datetime.timedelta(hours=3))

    assert state.escalation_level == 1
    assert state.new_levels == ()
    assert state.channels == ()


def test_levels_never_go_down() -> None:
    status = dict(triggered(), escalationLevel=3)

    state = sla.evaluate(status, POLICY, T0 + MINUTE)

    assert state.escalation_level == 3
    assert state.new_levels == ()


def test_the_acceptance_scenario_a_two_second_target() -> None:
    policy = {
        "sla": [{"severity": "SEV1", "acknowledgeWithin": "2s", "resolveWithin": "1h"}],
        "escalation": {"levels": [{"level": 1, "after": "2s", "channels": ["hook"]}]},
    }
    status = triggered(policy=policy)

    first = sla.evaluate(status, policy, T0 + datetime.timedelta(seconds=1))
    assert first.next_check == T0 + datetime.timedelta(seconds=2)
    assert not first.changed

    due = sla.evaluate(status, policy, first.next_check)
    assert due.breaches == ("acknowledge",)
    assert due.channels == ("hook",)
    recorded = sla.apply(status, due, now=first.next_check)
    assert recorded["sla"]["acknowledgeBreached"] is True
    assert recorded["escalationLevel"] == 1


def test_a_new_status_reports_no_breach_and_no_target() -> None:
    assert sla.breach_condition({}).reason == "NoSLATarget"
    assert sla.breach_condition(triggered()["sla"]).reason == "WithinSLA"
    assert sla.escalation_condition(0).status == "False"


# The next look is exact: nothing changes before it, something changes at it.

_SECONDS = st.integers(min_value=1, max_value=4 * 3600)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    acknowledge = draw(_SECONDS)
    resolve = acknowledge + draw(st.integers(min_value=0, max_value=3600))
    afters = sorted(draw(st.sets(_SECONDS, min_size=0, max_size=4)))
    return {
        "sla": [{"severity": "SEV1", "acknowledgeWithin": f"{acknowledge}s", "resolveWithin": f"{resolve}s"}],
        "escalation": {
            "levels": [
                {"level": index, "after": f"{after}s", "channels": [f"c{index}"]}
                for index, after in enumerate(afters, start=1)
            ]
        },
    }


@settings(max_examples=150, deadline=None)
@given(
    policy=policies(),
    start=st.integers(min_value=0, max_value=5 * 3600),
    acknowledged=st.one_of(st.none(), _SECONDS),
)
def test_next_check_is_the_first_moment_anything_changes(
    policy: dict[str, Any], start: int, acknowledged: int | None
) -> None:
    status = triggered(policy=policy)
    if acknowledged is not None:
        at = T0 + datetime.timedelta(seconds=acknowledged)
        status = moved(status, "Acknowledged", at, acknowledgedAt=sla.format_time(at))
    now = T0 + datetime.timedelta(seconds=start)
    status = sla.apply(status, sla.evaluate(status, policy, now), now=now)

    state = sla.evaluate(status, policy, now)
    assert not state.changed
    if state.next_check is None:
        assert not sla.evaluate(status, policy, now + datetime.timedelta(days=30)).changed
        return
    assert state.next_check > now
    just_before = state.next_check - datetime.timedelta(milliseconds=1)
    if just_before > now:
        assert not sla.evaluate(status, policy, just_before).changed
    assert sla.evaluate(status, policy, state.next_check).changed


@settings(max_examples=100, deadline=None)
@given(policy=policies(), moments=st.lists(st.integers(min_value=0, max_value=6 * 3600), min_size=1, max_size=6))
def test_escalation_only_rises_and_each_level_is_announced_once(policy: dict[str, Any], moments: list[int]) -> None:
    status = triggered(policy=policy)
    announced: list[int] = []
    level = 0
    for offset in sorted(moments):
        now = T0 + datetime.timedelta(seconds=offset)
        state = sla.evaluate(status, policy, now)
        assert state.escalation_level >= level
        level = state.escalation_level
        announced += state.new_levels
        status = sla.apply(status, state, now=now)
    assert len(announced) == len(set(announced))
    assert announced == sorted(announced)
