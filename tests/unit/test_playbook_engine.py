"""The playbook engine: matching, params from the incident, run names and keys, and the run's state machine."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from upkeep.engine import playbooks
from upkeep.model import conditions, errors

NOW = datetime.datetime(2025, 3, 5, 12, 0, tzinfo=datetime.UTC)


def incident(
    signal_type: str = "ImagePullBackOff", severity: str = "SEV3", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "shop-imagepull-1", "namespace": "shop", "uid": "uid-inc"},
        "spec": {
            "severity": severity,
            "signal": {"type": signal_type, "labels": labels or {"app": "shop", "container": "web"}},
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"},
        },
        "status": {"phase": "Triggered"},
    }


def playbook(name: str = "pb", order: int = 100, **match: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": name, "namespace": "shop", "generation": 1},
        "spec": {
            "order": order,
            "match": {"signalTypes": ["ImagePullBackOff"], **match},
            "steps": [{"name": "rollback", "action": "rollbackDeployment"}],
        },
    }


def test_match_by_type_namespace_selector_and_severity() -> None:
    assert playbooks.matches(playbook(), incident())
    assert not playbooks.matches(playbook(), incident("CrashLoopBackOff"))
    assert not playbooks.matches(playbook(namespaces=["web"]), incident())
    assert playbooks.matches(playbook(namespaces=["shop"]), incident())
    assert playbooks.matches(playbook(selector={"matchLabels": {"app": "shop"}}), incident())
    assert not playbooks.matches(playbook(selector={"matchLabels": {"app": "web"}}), incident())
    assert not playbooks.matches(
        playbook(selector={"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["shop"]}]}), incident()
    )


@pytest.mark.parametrize(("severity", "matched"), [("SEV1", True), ("SEV3", True), ("SEV4", False)])
def test_min_severity_matches_that_severity_and_worse(severity: str, matched: bool) -> None:
    assert playbooks.matches(playbook(minSeverity="SEV3"), incident(severity=severity)) is matched


def test_rolled_out_within_matches_only_a_rollout_that_recent() -> None:
    now = datetime.datetime(2026, 1, 31, 12, 30, tzinfo=datetime.UTC)
    recent = playbook(rolledOutWithin="30m")
    assert playbooks.needs_rollout_time(recent) and not playbooks.needs_rollout_time(playbook())
    facts = playbooks.WorkloadFacts(now - datetime.timedelta(minutes=20), now)
    assert playbooks.matches(recent, incident(), facts)
    old = playbooks.WorkloadFacts(now - datetime.timedelta(minutes=31), now)
    assert not playbooks.matches(recent, incident(), old)
    # Never rolled out, or nothing known: no match (a rollback must not run on a guess).
    assert not playbooks.matches(recent, incident(), playbooks.WorkloadFacts(None, now))
    assert not playbooks.matches(recent, incident())
    # A playbook that does not ask is not affected by the facts.
    assert playbooks.matches(playbook(), incident(), old)
    assert [item["metadata"]["name"] for item in playbooks.candidates([recent], incident(), facts).playbooks] == ["pb"]
    assert playbooks.candidates([recent], incident(), old).playbooks == ()


def test_candidates_are_ordered_by_order_then_name_with_paused_and_invalid_set_apart() -> None:
    paused = playbook("a-paused", 1)
    paused["spec"]["paused"] = True
    invalid = playbook("b-invalid", 1)
    invalid["spec"]["steps"] = [{"name": "x", "action": "rebootTheWorld"}]
    found = playbooks.candidates(
        [playbook("late", 200), playbook("zeta", 50), playbook("alpha", 50), paused, invalid], incident()
    )
    assert [item["metadata"]["name"] for item in found.playbooks] == ["alpha", "zeta", "late"]
    assert [item["metadata"]["name"] for item in found.paused] == ["a-paused"]


def test_params_take_values_from_the_incident() -> None:
    step = {
        "name": "raise",
        "params": {
            "fieldPath": "spec.containers[name={{ incident.signal.labels.container }}].memory",
            "severity": "{{incident.severity}}",
            "patch": {"metadata": {"labels": {"broken": "{{ incident.name }}"}}},
            "factor": 1.5,
        },
    }
    rendered = playbooks.render_params(step, incident())
    assert rendered == {
        "fieldPath": "spec.containers[name=web].memory",
        "severity": "SEV3",
        "patch": {"metadata": {"labels": {"broken": "shop-imagepull-1"}}},
        "factor": 1.5,
    }


def test_a_whole_reference_keeps_the_value_type() -> None:
    step = {"name": "s", "params": {"labels": "{{ incident.signal.labels }}"}}
    assert playbooks.render_params(step, incident())["labels"] == {"app": "shop", "container": "web"}


def test_a_missing_value_names_the_step_and_the_param() -> None:
    step = {"name": "raise", "params": {"fieldPath": "x[name={{ incident.signal.labels.nope }}]"}}
    with pytest.raises(playbooks.TemplateError) as caught:
        playbooks.render_params(step, incident())
    assert "step 'raise' param 'fieldPath'" in str(caught.value)
    assert isinstance(caught.value, errors.SpecError)


def test_new_run_is_named_labelled_and_owned_by_the_incident() -> None:
    body = playbooks.new_run(incident(), playbook("image-pull"), 2, dry_run=True)
    assert body["metadata"]["name"] == "shop-imagepull-1-image-pull-2"
    assert body["metadata"]["labels"] == {
        "upkeep.dev/incident": "shop-imagepull-1",
        "upkeep.dev/playbook": "image-pull",
    }
    assert body["metadata"]["ownerReferences"][0]["uid"] == "uid-inc"
    assert body["spec"] == {
        "playbookRef": {"name": "image-pull"},
        "incidentRef": {"name": "shop-imagepull-1"},
        "attempt": 2,
        "dryRun": True,
    }
    long = playbooks.run_name("i" * 200, "p" * 100, 1)
    assert len(long) == 253 and long == playbooks.run_name("i" * 200, "p" * 100, 1)


def test_step_keys_are_deterministic() -> None:
    assert playbooks.step_key("uid-1", 0) == "uid-1/0"
    assert playbooks.step_key("uid-1", 2) != playbooks.step_key("uid-2", 2)


def test_raised_severity_stops_at_sev1() -> None:
    assert [playbooks.raised_severity(item) for item in ("SEV4", "SEV3", "SEV2", "SEV1")] == [
        "SEV3",
        "SEV2",
        "SEV1",
        "SEV1",
    ]


SPEC: dict[str, Any] = {
    "steps": [
        {"name": "one", "action": "rolloutRestart"},
        {"name": "two", "action": "wait", "continueOnFailure": True},
        {"name": "three", "action": "rollbackDeployment"},
    ],
    "verification": {"stableFor": "10s", "timeout": "1m"},
}


def run_with(status: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "r", "uid": "u"}, "spec": {"attempt": 1, **spec}, "status": status}


def test_the_state_machine_walks_every_step_then_verifies() -> None:
    status = playbooks.initial_status(playbook_generation=1, awaiting_approval=False, generation=1, now=NOW)
    assert playbooks.next_move(run_with(status), SPEC).kind == "start"
    status = playbooks.started_status(status, generation=1, now=NOW)
    move = playbooks.next_move(run_with(status), SPEC)
    assert (move.kind, move.step.index if move.step else None) == ("run-step", 0)
    status = playbooks.step_started_status(status, SPEC["steps"][0], key="u/0", description="restart shop", now=NOW)
    assert playbooks.next_move(run_with(status), SPEC).kind == "resume-step"  # a restart here asks already_done
    assert status["steps"][0]["idempotencyKey"] == "u/0" and status["steps"][0]["output"] == "restart shop"
    status = playbooks.step_outcome_status(
        status, SPEC["steps"][0], 0, phase="Running", outcome="Restarted", message="ok", output=None, now=NOW
    )
    assert playbooks.next_move(run_with(status), SPEC).kind == "verify-step"
    status = playbooks.step_outcome_status(
        status, SPEC["steps"][0], 0, phase="Succeeded", outcome="Restarted", message="ok", output=None, now=NOW
    )
    assert status["currentStep"] == 1
    status = playbooks.step_outcome_status(
        status, SPEC["steps"][1], 1, phase="Failed", outcome="Failed", message="boom", output=None, now=NOW
    )
    move = playbooks.next_move(run_with(status), SPEC)
    assert (move.kind, move.step.index if move.step else None) == ("run-step", 2)  # continueOnFailure
    status = playbooks.step_outcome_status(
        status, SPEC["steps"][2], 2, phase="Succeeded", outcome="RolledBack", message="ok", output=None, now=NOW
    )
    assert playbooks.next_move(run_with(status), SPEC).kind == "verify"
    status = playbooks.finished_status(
        status, phase="Succeeded", reason="Verified", message="ok", generation=1, now=NOW
    )
    assert playbooks.next_move(run_with(status), SPEC).kind == "done"
    assert conditions.is_true(status["conditions"], "Succeeded")


def test_a_failed_step_without_continue_on_failure_finishes_the_run_failed() -> None:
    status = playbooks.started_status(
        playbooks.initial_status(playbook_generation=1, awaiting_approval=False, generation=1, now=NOW),
        generation=1,
        now=NOW,
    )
    status = playbooks.step_outcome_status(
        status, SPEC["steps"][0], 0, phase="Failed", outcome="Failed", message="boom", output=None, now=NOW
    )
    move = playbooks.next_move(run_with(status), SPEC)
    assert move.kind == "finish" and move.failed and "boom" in move.message
    ended = playbooks.finished_status(status, phase="Failed", reason="StepFailed", message="x", generation=1, now=NOW)
    found = conditions.find(ended["conditions"], "Succeeded")
    assert found is not None and (found.status, found.reason) == ("False", "StepFailed")


def test_approval_holds_a_pending_run() -> None:
    status = playbooks.initial_status(playbook_generation=1, awaiting_approval=True, generation=1, now=NOW)
    spec = {**SPEC, "mode": "RequireApproval"}
    assert playbooks.next_move(run_with(status), spec).kind == "approve"
    approved = run_with(status, approval={"approvedBy": "ben"})
    assert playbooks.next_move(approved, spec).kind == "start"


def test_a_dry_run_records_every_step_and_ends_dry_run() -> None:
    status = playbooks.started_status(
        playbooks.initial_status(playbook_generation=1, awaiting_approval=False, generation=1, now=NOW),
        generation=1,
        now=NOW,
    )
    for index, step in enumerate(SPEC["steps"]):
        move = playbooks.next_move(run_with(status, dryRun=True), SPEC)
        assert (move.kind, move.step.index if move.step else None) == ("dry-run-step", index)
        status = playbooks.dry_run_step_status(status, step, index, description=f"would {index}", now=NOW)
    assert playbooks.next_move(run_with(status, dryRun=True), SPEC).kind == "finish"
    ended = playbooks.finished_status(status, phase="DryRun", reason="DryRun", message="x", generation=1, now=NOW)
    assert ended["phase"] == "DryRun" and [step["output"] for step in ended["steps"]] == [
        "would 0",
        "would 1",
        "would 2",
    ]


def test_a_skipped_run_says_why_and_a_finished_run_cannot_move() -> None:
    status = playbooks.initial_status(playbook_generation=1, awaiting_approval=False, generation=1, now=NOW)
    skipped = playbooks.skipped_status(status, "Storm: too many", generation=1, now=NOW)
    assert skipped["phase"] == "Skipped" and skipped["skipReason"] == "Storm: too many"
    with pytest.raises(errors.InvalidTransition):
        playbooks.started_status(skipped, generation=1, now=NOW)


def test_verification_must_hold_for_stable_for_and_fails_past_its_timeout() -> None:
    status: dict[str, Any] = {"phase": "Running"}
    status, decided, _ = playbooks.verification_status(status, holds=False, why="0/2 ready", spec=SPEC, now=NOW)
    assert decided == "Running"
    later = NOW + datetime.timedelta(seconds=5)
    status, decided, next_at = playbooks.verification_status(status, holds=True, why="2/2 ready", spec=SPEC, now=later)
    assert decided == "Running" and next_at == later + datetime.timedelta(seconds=10)
    blip = later + datetime.timedelta(seconds=5)
    status, decided, _ = playbooks.verification_status(status, holds=False, why="1/2", spec=SPEC, now=blip)
    again = blip + datetime.timedelta(seconds=1)
    status, _, _ = playbooks.verification_status(status, holds=True, why="2/2", spec=SPEC, now=again)
    status, decided, _ = playbooks.verification_status(
        status, holds=True, why="2/2", spec=SPEC, now=again + datetime.timedelta(seconds=9)
    )
    assert decided == "Running"  # the blip restarted the stable period
    status, decided, _ = playbooks.verification_status(
        status, holds=True, why="2/2", spec=SPEC, now=again + datetime.timedelta(seconds=10)
    )
    assert decided == "Succeeded" and status["verification"]["phase"] == "Succeeded"
    failing: dict[str, Any] = {"phase": "Running"}
    failing, _, _ = playbooks.verification_status(failing, holds=False, why="0/2", spec=SPEC, now=NOW)
    failing, decided, _ = playbooks.verification_status(
        failing, holds=False, why="0/2", spec=SPEC, now=NOW + datetime.timedelta(minutes=1)
    )
    assert decided == "Failed" and "0/2" in failing["verification"]["message"]
