"""Incident: the shop example validates clean, and each broken variant is reported at its field."""

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
EXAMPLE = SHOP / "incident.yaml"


def _variant(*mutations: Mutation) -> str:
    return variant(EXAMPLE, *mutations)


def test_example_has_no_errors(validate_yaml: Callable[[str], list[Any]]) -> None:
    findings = validate_yaml(EXAMPLE.read_text(encoding="utf-8"))

    assert _errors(findings) == []


def test_example_has_no_errors_with_its_playbook_run(validate_yaml: Callable[[str], list[Any]]) -> None:
    files = [SHOP / "playbooks" / "crashloop.yaml", EXAMPLE, SHOP / "playbookrun.yaml"]
    text = "---\n".join(file.read_text(encoding="utf-8") for file in files)

    assert _errors(validate_yaml(text)) == []


@pytest.mark.parametrize(
    "mutations",
    [
        pytest.param([_set("spec.state", "Acknowledged"), _set("spec.note", "Looking at it.")], id="acknowledged"),
        pytest.param([_drop("spec.service"), _drop("spec.summary"), _drop("spec.workload")], id="bare-minimum"),
        pytest.param([_drop("spec.signal.fingerprint"), _set("spec.signal.type", "Manual")], id="manual"),
    ],
)
def test_other_valid_incidents(validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation]) -> None:
    assert _errors(validate_yaml(_variant(*mutations))) == []


_SEVERITIES = "SEV1, SEV2, SEV3, SEV4"
_STATES = "Acknowledged, Mitigating, Mitigated, Resolved, Closed"
_SIGNALS = (
    "CrashLoopBackOff, ImagePullBackOff, OOMKilled, Unschedulable, DeploymentUnavailable, "
    "ProgressDeadlineExceeded, NodeNotReady, JobFailed, Alert, Manual"
)


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected", "line_has"),
    [
        pytest.param(
            [_set("spec.signal.labels.restartCount", 5)],
            "spec.signal.labels.restartCount",
            "schema.type",
            ["must be a string"],
            "restartCount:",
            id="label-value-not-a-string",
        ),
        pytest.param(
            [_set("spec.summary", ["crash", "loop"])],
            "spec.summary",
            "schema.type",
            ["must be a string"],
            "summary:",
            id="summary-not-a-string",
        ),
        pytest.param(
            [_set("spec.workload", "deployment/shop")],
            "spec.workload",
            "schema.type",
            ["must be an object"],
            "workload:",
            id="workload-not-an-object",
        ),
        pytest.param(
            [_set("spec.severity", "SEV5")],
            "spec.severity",
            "schema.enum",
            [_SEVERITIES, "SEV5"],
            "severity: SEV5",
            id="unknown-severity",
        ),
        pytest.param(
            [_set("spec.signal.type", "Crashed")],
            "spec.signal.type",
            "schema.enum",
            [_SIGNALS],
            "type: Crashed",
            id="unknown-signal-type",
        ),
        pytest.param(
            [_set("spec.state", "Fixed")],
            "spec.state",
            "schema.enum",
            [_STATES],
            "state: Fixed",
            id="unknown-requested-state",
        ),
        pytest.param(
            [_set("spec.state", "Triggered")],
            "spec.state",
            "schema.enum",
            [_STATES],
            "state: Triggered",
            id="triggered-cannot-be-requested",
        ),
        pytest.param(
            [_drop("spec.severity")],
            "spec.severity",
            "schema.required",
            ["required"],
            "spec:",
            id="severity-missing",
        ),
        pytest.param(
            [_drop("spec.signal")],
            "spec.signal",
            "schema.required",
            ["required"],
            "spec:",
            id="signal-missing",
        ),
        pytest.param(
            [_drop("spec.signal.type")],
            "spec.signal.type",
            "schema.required",
            ["required"],
            "signal:",
            id="signal-type-missing",
        ),
        pytest.param(
            [_drop("spec.workload.name")],
            "spec.workload.name",
            "schema.required",
            ["required"],
            "workload:",
            id="workload-name-missing",
        ),
        pytest.param(
            [_set("spec.signal.fingerprint", "CrashLoopBackOff/shop")],
            "spec.signal.fingerprint",
            "schema.pattern",
            ["^[a-z0-9][a-z0-9:._-]{0,252}$"],
            "fingerprint:",
            id="fingerprint-not-lowercase",
        ),
        pytest.param(
            [_set("spec.signal.fingerprint", "c" * 254)],
            "spec.signal.fingerprint",
            "schema.pattern",
            ["{0,252}"],
            "fingerprint:",
            id="fingerprint-too-long",
        ),
        pytest.param(
            [_set("spec.summary", "x" * 1025)],
            "spec.summary",
            "schema.maxLength",
            ["at most 1024 characters"],
            "summary:",
            id="summary-too-long",
        ),
        pytest.param(
            [_set("spec.signal.severity", "SEV2")],
            "spec.signal.severity",
            "schema.unknown-field",
            ["fingerprint", "labels", "type"],
            "severity: SEV2",
            id="unknown-field-in-signal",
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
        kind="Incident",
        name="shop-crashloop-7f3c",
    )


def test_status_written_by_hand_is_checked_too(validate_yaml: Callable[[str], list[Any]]) -> None:
    text = _variant(_set("status", {"phase": "Open", "occurrences": 0}))

    errors = {error.field: error for error in _errors(validate_yaml(text))}

    assert {field: error.code for field, error in errors.items()} == {
        "status.occurrences": "schema.minimum",
        "status.phase": "schema.enum",
    }
    assert "at least 1" in errors["status.occurrences"].message
    assert "Triggered, Acknowledged, Mitigating, Mitigated, Resolved, Closed" in errors["status.phase"].message


def test_incident_missing_from_the_set_leaves_its_run_dangling(
    validate_yaml: Callable[[str], list[Any]],
) -> None:
    # Incident has no semantic check of its own; its name is what a PlaybookRun's incidentRef must find.
    incident = _variant(_set("metadata.name", "shop-crashloop-9a0b"))
    text = incident + "---\n" + (SHOP / "playbookrun.yaml").read_text(encoding="utf-8")

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.kind, error.document) for error in errors] == [
        ("spec.incidentRef.name", "semantic.dangling-reference", "PlaybookRun", 1)
    ]
    assert "no Incident named 'shop-crashloop-7f3c' in namespace shop" in errors[0].message
