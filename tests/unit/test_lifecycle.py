"""The lifecycle tables and the one function that checks a transition."""

from __future__ import annotations

import pytest

from upkeep.model import errors, lifecycle, schemas


def test_incident_walks_its_whole_lifecycle() -> None:
    path = ["Triggered", "Acknowledged", "Mitigating", "Mitigated", "Resolved", "Closed"]
    current = None
    for phase in path:
        lifecycle.check_transition("Incident", current, phase)
        current = phase


@pytest.mark.parametrize(
    ("kind", "current", "target"),
    [
        ("Incident", "Closed", "Triggered"),
        ("Incident", "Triggered", "Closed"),
        ("Incident", None, "Resolved"),
        ("Change", "Completed", "InProgress"),
        ("Change", "Pending", "InProgress"),
        ("Problem", "KnownError", "Open"),
        ("PlaybookRun", "Succeeded", "Running"),
        ("PlaybookRun", "Pending", "Succeeded"),
    ],
)
def test_invalid_transitions_are_refused_with_the_allowed_ones(kind: str, current: str | None, target: str) -> None:
    with pytest.raises(errors.InvalidTransition) as caught:
        lifecycle.check_transition(kind, current, target)
    allowed = lifecycle.allowed_after(kind, current)
    assert caught.value.allowed == allowed
    assert f"to {target}" in str(caught.value)
    for phase in allowed:
        assert phase in str(caught.value)
    if not allowed:
        assert "final" in str(caught.value)


def test_unknown_phase_names_the_phases() -> None:
    with pytest.raises(errors.InvalidTransition, match="Triggered, Acknowledged"):
        lifecycle.check_transition("Incident", "Triggered", "Fixed")


def test_staying_put_is_allowed() -> None:
    lifecycle.check_transition("Change", "Approved", "Approved")


def test_resolved_incident_can_reopen() -> None:
    lifecycle.check_transition("Incident", "Resolved", "Triggered")


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="no lifecycle"):
        lifecycle.check_transition("Release", None, "Healthy")


@pytest.mark.parametrize("kind", sorted(lifecycle.LIFECYCLES))
def test_tables_match_the_phase_enums_of_the_crds(kind: str) -> None:
    schema = schemas.by_kind()[kind].schema
    enum = schema["properties"]["status"]["properties"]["phase"]["enum"]
    assert set(lifecycle.LIFECYCLES[kind].phases) == set(enum)


@pytest.mark.parametrize("table", list(lifecycle.LIFECYCLES.values()), ids=list(lifecycle.LIFECYCLES))
def test_every_phase_is_reachable_and_targets_exist(table: lifecycle.Lifecycle) -> None:
    reachable = {table.initial}
    frontier = [table.initial]
    while frontier:
        for following in table.transitions[frontier.pop()]:
            assert following in table.transitions
            if following not in reachable:
                reachable.add(following)
                frontier.append(following)
    assert reachable == set(table.phases)
