"""PlaybookRun: the shop example validates clean, and each broken variant is reported at its field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support.variants import Mutation, assert_one_error, variant
from support.variants import drop as _drop
from support.variants import errors as _errors
from support.variants import set_field as _set

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
EXAMPLE = SHOP / "playbookrun.yaml"


def _variant(*mutations: Mutation) -> str:
    return variant(EXAMPLE, *mutations)


def _with_playbooks_and_incident(run: str) -> str:
    files = [SHOP / "playbooks" / "crashloop.yaml", SHOP / "playbooks" / "oom.yaml", SHOP / "incident.yaml"]
    return "---\n".join([*(file.read_text(encoding="utf-8") for file in files), run])


def test_example_has_no_errors(validate_yaml: Callable[[str], list[Any]]) -> None:
    findings = validate_yaml(EXAMPLE.read_text(encoding="utf-8"))

    assert _errors(findings) == []


def test_example_has_no_errors_with_its_playbook_and_incident(validate_yaml: Callable[[str], list[Any]]) -> None:
    text = _with_playbooks_and_incident(EXAMPLE.read_text(encoding="utf-8"))

    assert _errors(validate_yaml(text)) == []


_STEP = {
    "name": "restart",
    "action": "rolloutRestart",
    "phase": "Succeeded",
    "idempotencyKey": "shop-crashloop-7f3c-crashloop-1-restart",
    "startedAt": "2025-11-21T18:02:10Z",
    "finishedAt": "2025-11-21T18:02:41Z",
    "outcome": "Restarted",
    "output": "deployment.apps/shop restarted",
}


@pytest.mark.parametrize(
    "mutations",
    [
        pytest.param(
            [_set("spec.approval", {"approvedBy": "ben.okafor@example.com", "at": "2025-11-21T18:05:00Z"})],
            id="approved",
        ),
        pytest.param([_set("spec.dryRun", True), _set("spec.attempt", 100)], id="dry-run-last-attempt"),
        pytest.param(
            [_set("status", {"phase": "Succeeded", "currentStep": 2, "steps": [_STEP]})],
            id="status-as-the-operator-writes-it",
        ),
    ],
)
def test_other_valid_runs(validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation]) -> None:
    assert _errors(validate_yaml(_variant(*mutations))) == []


_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_PHASES = "Pending, Running, Succeeded, Failed, Skipped, DryRun"


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected", "line_has"),
    [
        pytest.param(
            [_set("spec.attempt", "1")],
            "spec.attempt",
            "schema.type",
            ["must be an integer"],
            "attempt:",
            id="attempt-not-an-integer",
        ),
        pytest.param(
            [_set("spec.dryRun", "no")],
            "spec.dryRun",
            "schema.type",
            ["must be true or false"],
            "dryRun:",
            id="dry-run-not-a-boolean",
        ),
        pytest.param(
            [_set("spec.playbookRef", "crashloop")],
            "spec.playbookRef",
            "schema.type",
            ["must be an object"],
            "playbookRef: crashloop",
            id="playbook-ref-not-an-object",
        ),
        pytest.param(
            [_set("status", {"phase": "Done"})],
            "status.phase",
            "schema.enum",
            [_PHASES, "Done"],
            "phase: Done",
            id="unknown-phase",
        ),
        pytest.param(
            [_set("status", {"steps": [{**_STEP, "phase": "Restarted"}]})],
            "status.steps[0].phase",
            "schema.enum",
            [_PHASES],
            "phase: Restarted",
            id="unknown-step-phase",
        ),
        pytest.param(
            [_drop("spec.attempt")],
            "spec.attempt",
            "schema.required",
            ["required"],
            "spec:",
            id="attempt-missing",
        ),
        pytest.param(
            [_drop("spec.incidentRef")],
            "spec.incidentRef",
            "schema.required",
            ["required"],
            "spec:",
            id="incident-ref-missing",
        ),
        pytest.param(
            [_set("spec.approval", {"at": "2025-11-21T18:05:00Z"})],
            "spec.approval.approvedBy",
            "schema.required",
            ["required"],
            "approval:",
            id="approval-without-approver",
        ),
        pytest.param(
            [_set("spec.playbookRef.name", "CrashLoop")],
            "spec.playbookRef.name",
            "schema.pattern",
            [_NAME_PATTERN],
            "name: CrashLoop",
            id="playbook-name-not-a-dns-name",
        ),
        pytest.param(
            [_set("spec.incidentRef.name", "shop_crashloop_7f3c")],
            "spec.incidentRef.name",
            "schema.pattern",
            [_NAME_PATTERN],
            "name: shop_crashloop_7f3c",
            id="incident-name-not-a-dns-name",
        ),
        pytest.param(
            [_set("spec.attempt", 0)],
            "spec.attempt",
            "schema.minimum",
            ["at least 1"],
            "attempt: 0",
            id="attempt-zero",
        ),
        pytest.param(
            [_set("spec.attempt", 101)],
            "spec.attempt",
            "schema.maximum",
            ["at most 100"],
            "attempt: 101",
            id="attempt-too-high",
        ),
        pytest.param(
            [_set("spec.approval", {"approvedBy": "ben.okafor@example.com", "at": "tomorrow"})],
            "spec.approval.at",
            "schema.format",
            ["date-time"],
            "at: tomorrow",
            id="approval-time-not-a-timestamp",
        ),
        pytest.param(
            [_set("status", {"steps": [{**_STEP, "output": "x" * 4097}]})],
            "status.steps[0].output",
            "schema.maxLength",
            ["at most 4096 characters"],
            "output:",
            id="step-output-too-long",
        ),
        pytest.param(
            [_set("spec.steps", [{"name": "restart"}])],
            "spec.steps",
            "schema.unknown-field",
            ["playbookRef", "incidentRef", "attempt"],
            "steps:",
            id="steps-belong-to-the-playbook",
        ),
    ],
)
def test_invalid_variant_is_reported_at_its_field(
    validate_yaml: Callable[[str], list[Any]],
    mutations: list[Mutation],
    field: str,
    code: str,
    expected: list[str],
    line_has: str,
) -> None:
    text = _variant(*mutations)

    assert_one_error(
        text,
        validate_yaml(text),
        field=field,
        code=code,
        words=expected,
        line_has=line_has,
        kind="PlaybookRun",
        name="shop-crashloop-7f3c-crashloop-1",
    )


@pytest.mark.parametrize(
    ("mutations", "field", "message"),
    [
        pytest.param(
            [_set("spec.playbookRef.name", "imagepull")],
            "spec.playbookRef.name",
            "no Playbook named 'imagepull' in namespace shop; the set has: crashloop, oom",
            id="playbook",
        ),
        pytest.param(
            [_set("spec.incidentRef.name", "shop-crashloop-9a0b")],
            "spec.incidentRef.name",
            "no Incident named 'shop-crashloop-9a0b' in namespace shop; the set has: shop-crashloop-7f3c",
            id="incident",
        ),
    ],
)
def test_reference_missing_from_the_set(
    validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation], field: str, message: str
) -> None:
    text = _with_playbooks_and_incident(_variant(*mutations))

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.kind, error.document) for error in errors] == [
        (field, "semantic.dangling-reference", "PlaybookRun", 3)
    ]
    assert message in errors[0].message
    assert "name:" in text.splitlines()[errors[0].line - 1]


def test_references_are_not_checked_without_playbooks_or_incidents(
    validate_yaml: Callable[[str], list[Any]],
) -> None:
    # The Playbook and the Incident may live in the cluster rather than in this set.
    text = _variant(_set("spec.playbookRef.name", "imagepull"), _set("spec.incidentRef.name", "shop-crashloop-9a0b"))

    assert _errors(validate_yaml(text)) == []
