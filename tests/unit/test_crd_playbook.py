"""Playbook: the shop playbooks validate clean, and each broken variant is reported at its field."""

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
CRASHLOOP = SHOP / "playbooks" / "crashloop.yaml"
OOM = SHOP / "playbooks" / "oom.yaml"


def _variant(*mutations: Mutation, example: Path = CRASHLOOP) -> str:
    return variant(example, *mutations)


@pytest.mark.parametrize("example", [CRASHLOOP, OOM], ids=["crashloop", "oom"])
def test_example_has_no_errors(validate_yaml: Callable[[str], list[Any]], example: Path) -> None:
    findings = validate_yaml(example.read_text(encoding="utf-8"))

    assert _errors(findings) == []


def test_examples_have_no_errors_with_the_support_policy(validate_yaml: Callable[[str], list[Any]]) -> None:
    files = [SHOP / "supportpolicy.yaml", CRASHLOOP, OOM]
    text = "---\n".join(file.read_text(encoding="utf-8") for file in files)

    assert validate_yaml(text) == []


@pytest.mark.parametrize(
    "mutations",
    [
        pytest.param([_set("spec.guards.minHealthy", 1)], id="min-healthy-count"),
        pytest.param([_set("spec.guards.minHealthy", "50%")], id="min-healthy-percentage"),
        pytest.param([_set("spec.mode", "DryRun"), _set("spec.paused", True)], id="dry-run-paused"),
        pytest.param(
            [_set("spec.steps[1]", {"name": "scale-out", "action": "scale", "params": {"by": 2, "max": 10}})],
            id="scale-by",
        ),
        pytest.param(
            [
                _set(
                    "spec.match.selector",
                    {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]},
                )
            ],
            id="selector",
        ),
        pytest.param([_drop("spec.verification"), _drop("spec.guards"), _drop("spec.escalation")], id="defaults"),
    ],
)
def test_other_valid_playbooks(validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation]) -> None:
    assert _errors(validate_yaml(_variant(*mutations))) == []


_SIGNALS = (
    "CrashLoopBackOff, ImagePullBackOff, OOMKilled, Unschedulable, DeploymentUnavailable, "
    "ProgressDeadlineExceeded, NodeNotReady, JobFailed, Alert, Manual"
)
_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected", "line_has"),
    [
        pytest.param(
            [_set("spec.order", "first")],
            "spec.order",
            "schema.type",
            ["must be an integer"],
            "order: first",
            id="order-not-an-integer",
        ),
        pytest.param(
            [_set("spec.paused", "no")],
            "spec.paused",
            "schema.type",
            ["must be true or false"],
            "paused:",
            id="paused-not-a-boolean",
        ),
        pytest.param(
            [_set("spec.steps[1].params", "replicas=3")],
            "spec.steps[1].params",
            "schema.type",
            ["must be an object"],
            "params: replicas=3",
            id="params-not-an-object",
        ),
        pytest.param(
            [_set("spec.guards.minHealthy", 0.5)],
            "spec.guards.minHealthy",
            "schema.type",
            ["an integer or a string"],
            "minHealthy: 0.5",
            id="min-healthy-a-fraction",
        ),
        pytest.param(
            [_set("spec.mode", "Manual")],
            "spec.mode",
            "schema.enum",
            ["Automatic, DryRun, RequireApproval", "Manual"],
            "mode: Manual",
            id="unknown-mode",
        ),
        pytest.param(
            [_set("spec.match.signalTypes[0]", "CrashLoop")],
            "spec.match.signalTypes[0]",
            "schema.enum",
            [_SIGNALS],
            "- CrashLoop",
            id="unknown-signal-type",
        ),
        pytest.param(
            [_set("spec.match.minSeverity", "SEV0")],
            "spec.match.minSeverity",
            "schema.enum",
            ["SEV1, SEV2, SEV3, SEV4"],
            "minSeverity: SEV0",
            id="unknown-severity",
        ),
        pytest.param(
            [_set("spec.match.selector", {"matchExpressions": [{"key": "tier", "operator": "Has"}]})],
            "spec.match.selector.matchExpressions[0].operator",
            "schema.enum",
            ["In, NotIn, Exists, DoesNotExist"],
            "operator: Has",
            id="unknown-selector-operator",
        ),
        pytest.param(
            [_drop("spec.match.signalTypes")],
            "spec.match.signalTypes",
            "schema.required",
            ["required"],
            "match:",
            id="signal-types-missing",
        ),
        pytest.param(
            [_drop("spec.steps[1].name")],
            "spec.steps[1].name",
            "schema.required",
            ["required"],
            "- action: rolloutRestart",
            id="step-without-name",
        ),
        pytest.param(
            [_drop("spec.steps")],
            "spec.steps",
            "schema.required",
            ["required"],
            "spec:",
            id="steps-missing",
        ),
        pytest.param(
            [_set("spec.steps[1].name", "Restart_Pods")],
            "spec.steps[1].name",
            "schema.pattern",
            ["^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"],
            "name: Restart_Pods",
            id="step-name-not-a-dns-label",
        ),
        pytest.param(
            [_set("spec.guards.cooldown", "30 minutes")],
            "spec.guards.cooldown",
            "schema.pattern",
            [_DURATION],
            "cooldown:",
            id="cooldown-not-a-duration",
        ),
        pytest.param(
            [_set("spec.guards.minHealthy", "half")],
            "spec.guards.minHealthy",
            "schema.pattern",
            ["^[0-9]{1,3}%$"],
            "minHealthy: half",
            id="min-healthy-not-a-percentage",
        ),
        pytest.param(
            [_set("spec.guards.minHealthy", -1)],
            "spec.guards.minHealthy",
            "schema.minimum",
            ["at least 0"],
            "minHealthy: -1",
            id="min-healthy-negative",
        ),
        pytest.param(
            [_set("spec.guards.maxAttempts", 0)],
            "spec.guards.maxAttempts",
            "schema.minimum",
            ["at least 1"],
            "maxAttempts: 0",
            id="no-attempts",
        ),
        pytest.param(
            [_set("spec.order", 10001)],
            "spec.order",
            "schema.maximum",
            ["at most 10000"],
            "order: 10001",
            id="order-too-high",
        ),
        pytest.param(
            [_set("spec.guards.rateLimit.perHour", 0)],
            "spec.guards.rateLimit.perHour",
            "schema.minimum",
            ["at least 1"],
            "perHour: 0",
            id="rate-limit-zero",
        ),
        pytest.param(
            [_set("spec.steps", [])],
            "spec.steps",
            "schema.minItems",
            ["at least 1 items"],
            "steps:",
            id="no-steps",
        ),
        pytest.param(
            [
                _set(
                    "spec.steps",
                    [{"name": f"wait-{n}", "action": "wait", "params": {"duration": "1s"}} for n in range(21)],
                )
            ],
            "spec.steps",
            "schema.maxItems",
            ["at most 20 items"],
            "steps:",
            id="too-many-steps",
        ),
        pytest.param(
            [_set("spec.steps[1].action", "restartEverything")],
            "spec.steps[1].action",
            "schema.enum",
            ["must be one of", "rolloutRestart", "restartEverything"],
            "action: restartEverything",
            id="action-not-in-catalog",
        ),
        pytest.param(
            [_drop("spec.steps[0].params.channels")],
            "spec.steps[0].params.channels",
            "semantic.missing-param",
            ["needs param 'channels'"],
            "params:",
            id="notify-without-channels",
        ),
        pytest.param(
            [_set("spec.steps[1].params", {"force": True})],
            "spec.steps[1].params.force",
            "semantic.unknown-param",
            ["rolloutRestart has no param 'force'"],
            "force: true",
            id="unknown-param",
        ),
        pytest.param(
            [_set("spec.steps[1]", {"name": "settle", "action": "wait", "params": {"duration": "soon"}})],
            "spec.steps[1].params.duration",
            "schema.pattern",
            [_DURATION],
            "duration: soon",
            id="wait-duration-not-a-duration",
        ),
        pytest.param(
            [_set("spec.steps[1].name", "tell-oncall")],
            "spec.steps[1].name",
            "semantic.duplicate-name",
            ["'tell-oncall' is used twice"],
            "name: tell-oncall",
            id="step-name-twice",
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
        kind="Playbook",
        name="crashloop",
    )


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected"),
    [
        pytest.param(
            [_set("spec.steps[0].params.value", "256Mi")],
            "spec.steps[0].params",
            "semantic.param-choice",
            ["exactly one of value or factor"],
            id="value-and-factor",
        ),
        pytest.param(
            [_drop("spec.steps[0].params.factor")],
            "spec.steps[0].params",
            "semantic.param-choice",
            ["exactly one of value or factor"],
            id="neither-value-nor-factor",
        ),
        pytest.param(
            [_drop("spec.steps[0].params.expiresIn")],
            "spec.steps[0].params.expiresIn",
            "semantic.missing-param",
            ["needs param 'expiresIn'"],
            id="override-without-expiry",
        ),
        pytest.param(
            [_set("spec.steps[0].params.maxFactor", "2x")],
            "spec.steps[0].params.maxFactor",
            "schema.type",
            ["must be a number"],
            id="max-factor-not-a-number",
        ),
        pytest.param(
            [_drop("spec.steps[1].params.fieldPath")],
            "spec.steps[1].params.fieldPath",
            "semantic.missing-param",
            ["proposeFix needs param 'fieldPath'"],
            id="proposal-without-field",
        ),
    ],
)
def test_invalid_oom_override_is_reported_at_its_field(
    validate_yaml: Callable[[str], list[Any]],
    mutations: list[Mutation],
    field: str,
    code: str,
    expected: list[str],
) -> None:
    errors = _errors(validate_yaml(_variant(*mutations, example=OOM)))

    assert [(error.field, error.code, error.kind, error.name) for error in errors] == [(field, code, "Playbook", "oom")]
    for words in expected:
        assert words in errors[0].message


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected"),
    [
        pytest.param(
            [_drop("spec.steps[1].action")],
            "spec.steps[1].action",
            "schema.required",
            ["required"],
            id="step-without-action",
        ),
        pytest.param(
            [_set("spec.steps[1].action", "rollout-restart")],
            "spec.steps[1].action",
            "schema.enum",
            ["must be one of", "rolloutRestart"],
            id="action-not-camel-case",
        ),
    ],
)
def test_broken_action_is_reported_at_the_action(
    validate_yaml: Callable[[str], list[Any]],
    mutations: list[Mutation],
    field: str,
    code: str,
    expected: list[str],
) -> None:
    # The catalog check may add its own "unknown action" finding; every finding names the same field.
    errors = _errors(validate_yaml(_variant(*mutations)))

    assert {error.field for error in errors} == {field}
    (error,) = [error for error in errors if error.code == code]
    for words in expected:
        assert words in error.message


@pytest.mark.parametrize(
    ("mutations", "field"),
    [
        pytest.param([_set("spec.escalation.notify", ["pager", "sms"])], "spec.escalation.notify[1]", id="escalation"),
        pytest.param([_set("spec.steps[0].params.channels", ["ops"])], "spec.steps[0].params.channels[0]", id="step"),
    ],
)
def test_channel_missing_from_the_support_policy(
    validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation], field: str
) -> None:
    text = (SHOP / "supportpolicy.yaml").read_text(encoding="utf-8") + "---\n" + _variant(*mutations)

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.kind, error.document) for error in errors] == [
        (field, "semantic.unknown-channel", "Playbook", 1)
    ]
    assert "channels: oncall, pager" in errors[0].message


def test_channels_are_not_checked_without_a_support_policy(validate_yaml: Callable[[str], list[Any]]) -> None:
    # The SupportPolicy may live in the cluster rather than in this set.
    assert _errors(validate_yaml(_variant(_set("spec.escalation.notify", ["sms"])))) == []
