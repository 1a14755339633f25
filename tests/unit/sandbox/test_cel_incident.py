"""The Incident CRD's CEL rules allow exactly the moves model/lifecycle.py allows, worded as it words them.

The rules live in crds/incidents.upkeep.dev.yaml (real API servers enforce them); these tests keep
them equal to ``lifecycle.INCIDENT`` so the two cannot drift.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep.model import errors, lifecycle
from upkeep.sandbox import cel

CRD = yaml.safe_load((Path(__file__).resolve().parents[3] / "crds" / "incidents.upkeep.dev.yaml").read_text())
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
REQUESTABLE = tuple(SCHEMA["properties"]["spec"]["properties"]["state"]["enum"])
PHASES = lifecycle.INCIDENT.phases
VALIDATOR = cel.validator_for(SCHEMA)


def incident(state: str | None = None, phase: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "checkout-502", "namespace": "shop"},
        "spec": {"severity": "SEV2", "signal": {"type": "Manual"}},
    }
    if state:
        body["spec"]["state"] = state
    if phase:
        body["status"] = {
            "phase": phase,
            "occurrences": 1,
            "timeline": [{"at": "2026-01-01T00:00:00Z", "to": phase, "by": "upkeep"}],
        }
    return body


def refusal(current: str, target: str) -> str | None:
    """What the lifecycle says of a move, without the field name (the API server puts the field first)."""
    try:
        lifecycle.check_transition("Incident", current, target, field="spec.state")
    except errors.InvalidTransition as refused:
        return str(refused).removeprefix("spec.state: ")
    return None


def outcome(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    assert VALIDATOR is not None
    found = VALIDATOR.validate(new, old)
    return [(cause.field, cause.message) for cause in found.causes]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("target", REQUESTABLE)
def test_a_changed_spec_state_must_be_a_move_the_lifecycle_allows_from_the_phase(phase: str, target: str) -> None:
    old = incident(None, phase)
    expected = refusal(phase, target)
    found = outcome(incident(target, phase), old)
    assert found == ([] if expected is None else [("spec.state", f'Invalid value: "object": {expected}')])


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("target", REQUESTABLE)
def test_an_unchanged_spec_state_always_passes_so_status_writes_never_trip(phase: str, target: str) -> None:
    # The operator reopens (Resolved → Triggered) or auto-resolves while spec.state stays as a person left it.
    before = "Resolved" if phase != "Resolved" else "Triggered"
    assert outcome(incident(target, phase), incident(target, before)) == []


@pytest.mark.parametrize("target", REQUESTABLE)
def test_before_the_incident_has_a_phase_it_counts_as_triggered(target: str) -> None:
    expected = refusal(lifecycle.INCIDENT.initial, target)
    wanted = [] if expected is None else [("spec.state", f'Invalid value: "object": {expected}')]
    assert outcome(incident(target)) == wanted  # create
    assert outcome(incident(target), incident()) == wanted  # an update before the operator took it in


def test_removing_spec_state_is_always_allowed() -> None:
    assert outcome(incident(None, "Closed"), incident("Closed", "Closed")) == []


def test_the_tables_in_the_rules_are_the_lifecycle_tables() -> None:
    rules = SCHEMA["x-kubernetes-validations"]
    pattern = re.compile(r"(\{'Triggered'.*?\})\[self\.status\.phase\]", re.S)
    tables = [
        ast.literal_eval(table) for rule in rules for text in rule.values() for table in pattern.findall(str(text))
    ]
    assert len(tables) == 2
    for table in tables:
        assert table == {phase: list(following) for phase, following in lifecycle.INCIDENT.transitions.items()}
    from_initial = re.search(r"self\.spec\.state in (\[[^\]]*\])", rules[1]["rule"])
    assert from_initial is not None
    assert ast.literal_eval(from_initial.group(1)) == list(lifecycle.INCIDENT.transitions[lifecycle.INCIDENT.initial])
    assert {rule["fieldPath"] for rule in rules} == {".spec.state"}


def test_every_requestable_state_is_a_phase() -> None:
    assert set(REQUESTABLE) <= set(PHASES)


def test_a_status_write_that_moves_the_phase_passes() -> None:
    old = incident("Resolved", "Resolved")
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Triggered"
    assert outcome(new, old) == []
