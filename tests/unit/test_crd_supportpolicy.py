"""SupportPolicy: the default policy validates clean, and each broken variant is reported at its field."""

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
EXAMPLE = SHOP / "supportpolicy.yaml"


def _variant(*mutations: Mutation) -> str:
    return variant(EXAMPLE, *mutations)


def test_example_has_no_findings(validate_yaml: Callable[[str], list[Any]]) -> None:
    findings = validate_yaml(EXAMPLE.read_text(encoding="utf-8"))

    assert findings == []


@pytest.mark.parametrize(
    "mutations",
    [
        pytest.param([_set("spec", {})], id="empty-spec"),
        pytest.param(
            [_set("spec.namespaceSelector", {"matchLabels": {"upkeep.dev/support": "business-hours"}})],
            id="namespace-selector",
        ),
        pytest.param([_set("spec.sla[0].resolveWithin", "5m")], id="resolve-as-soon-as-acknowledge"),
        pytest.param([_drop("spec.channels[0].urlSecretRef.key")], id="secret-key-defaults-to-url"),
    ],
)
def test_other_valid_policies(validate_yaml: Callable[[str], list[Any]], mutations: list[Mutation]) -> None:
    assert _errors(validate_yaml(_variant(*mutations))) == []


_SEVERITIES = "SEV1, SEV2, SEV3, SEV4"
_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected", "line_has"),
    [
        pytest.param(
            [_set("spec.sla[0].acknowledgeWithin", 300)],
            "spec.sla[0].acknowledgeWithin",
            "schema.type",
            ["must be a string"],
            "acknowledgeWithin: 300",
            id="duration-as-seconds",
        ),
        pytest.param(
            [_set("spec.escalation.levels[0].level", "one")],
            "spec.escalation.levels[0].level",
            "schema.type",
            ["must be an integer"],
            "level: one",
            id="level-not-an-integer",
        ),
        pytest.param(
            [_set("spec.escalation.levels[2].channels", "pager")],
            "spec.escalation.levels[2].channels",
            "schema.type",
            ["must be a list"],
            "channels: pager",
            id="level-channels-not-a-list",
        ),
        pytest.param(
            [_set("spec.defaultSeverity", "SEV0")],
            "spec.defaultSeverity",
            "schema.enum",
            [_SEVERITIES, "SEV0"],
            "defaultSeverity: SEV0",
            id="unknown-default-severity",
        ),
        pytest.param(
            [_set("spec.sla[0].severity", "P1")],
            "spec.sla[0].severity",
            "schema.enum",
            [_SEVERITIES],
            "severity: P1",
            id="unknown-sla-severity",
        ),
        pytest.param(
            [_set("spec.channels[0].type", "Email")],
            "spec.channels[0].type",
            "schema.enum",
            ["Webhook, Slack", "Email"],
            "type: Email",
            id="unknown-channel-type",
        ),
        pytest.param(
            [_set("spec.severityRules[0].match.signalTypes[0]", "NodeDown")],
            "spec.severityRules[0].match.signalTypes[0]",
            "schema.enum",
            ["NodeNotReady"],
            "- NodeDown",
            id="unknown-signal-type",
        ),
        pytest.param(
            [_drop("spec.channels[1].urlSecretRef")],
            "spec.channels[1].urlSecretRef",
            "schema.required",
            ["required"],
            "- name: pager",
            id="channel-without-url-secret",
        ),
        pytest.param(
            [_drop("spec.sla[1].resolveWithin")],
            "spec.sla[1].resolveWithin",
            "schema.required",
            ["required"],
            "- severity: SEV2",
            id="sla-without-resolve-target",
        ),
        pytest.param(
            [_drop("spec.severityRules[0].match")],
            "spec.severityRules[0].match",
            "schema.required",
            ["required"],
            "- severity: SEV1",
            id="rule-without-match",
        ),
        pytest.param(
            [_set("spec.sla[0].acknowledgeWithin", "5 minutes")],
            "spec.sla[0].acknowledgeWithin",
            "schema.pattern",
            [_DURATION],
            "acknowledgeWithin: 5 minutes",
            id="duration-in-words",
        ),
        pytest.param(
            [
                _set("spec.channels[0].name", "On-Call"),
                _set("spec.escalation.levels[0].channels", ["On-Call"]),
                _set("spec.escalation.levels[1].channels", ["On-Call", "pager"]),
            ],
            "spec.channels[0].name",
            "schema.pattern",
            ["^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"],
            "name: On-Call",
            id="channel-name-not-a-dns-label",
        ),
        pytest.param(
            [_set("spec.channels[0].urlSecretRef.name", "upkeep_slack")],
            "spec.channels[0].urlSecretRef.name",
            "schema.pattern",
            [r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"],
            "name: upkeep_slack",
            id="secret-name-not-a-dns-name",
        ),
        pytest.param(
            [_set("spec.escalation.levels[2].level", 11)],
            "spec.escalation.levels[2].level",
            "schema.maximum",
            ["at most 10"],
            "level: 11",
            id="level-too-high",
        ),
        pytest.param(
            [_set("spec.problems.recurrences", 1)],
            "spec.problems.recurrences",
            "schema.minimum",
            ["at least 2"],
            "recurrences: 1",
            id="one-incident-is-no-problem",
        ),
        pytest.param(
            [_set("spec.channels[0].rateLimit.perMinute", 601)],
            "spec.channels[0].rateLimit.perMinute",
            "schema.maximum",
            ["at most 600"],
            "perMinute: 601",
            id="channel-rate-too-high",
        ),
        pytest.param(
            [_set("spec.escalation.levels[0].channels", [])],
            "spec.escalation.levels[0].channels",
            "schema.minItems",
            ["at least 1 items"],
            "channels: []",
            id="level-without-channels",
        ),
        pytest.param(
            [_set("spec.severityRules", [{"severity": "SEV4", "match": {"signalTypes": ["JobFailed"]}}] * 101)],
            "spec.severityRules",
            "schema.maxItems",
            ["at most 100 items"],
            "severityRules:",
            id="too-many-rules",
        ),
        pytest.param(
            [_set("spec.sla[0].resolveWithin", "1m")],
            "spec.sla[0].resolveWithin",
            "semantic.resolve-before-acknowledge",
            ["at least acknowledgeWithin (5m)"],
            "resolveWithin: 1m",
            id="resolve-before-acknowledge",
        ),
        pytest.param(
            [_set("spec.sla[0].acknowledgeWithin", "0s")],
            "spec.sla[0].acknowledgeWithin",
            "semantic.non-positive-duration",
            ["longer than 0s"],
            "acknowledgeWithin: 0s",
            id="acknowledge-within-zero",
        ),
        pytest.param(
            [_set("spec.sla[1].severity", "SEV1")],
            "spec.sla[1].severity",
            "semantic.duplicate-name",
            ["SEV1 has two SLA entries"],
            "- severity: SEV1",
            id="two-targets-for-one-severity",
        ),
        pytest.param(
            [_set("spec.escalation.levels[1].channels", ["oncall", "sms"])],
            "spec.escalation.levels[1].channels[1]",
            "semantic.unknown-channel",
            ["no channel 'sms'", "channels: oncall, pager"],
            "- sms",
            id="level-names-an-unknown-channel",
        ),
        pytest.param(
            [_set("spec.escalation.levels[1].after", "5m")],
            "spec.escalation.levels[1].after",
            "semantic.escalation-order",
            ["later than level 1"],
            "after: 5m",
            id="levels-not-in-time-order",
        ),
        pytest.param(
            [_set("metadata.namespace", "shop")],
            "metadata.namespace",
            "semantic.scope",
            ["cluster-scoped"],
            "namespace: shop",
            id="namespace-on-a-cluster-scoped-policy",
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
        kind="SupportPolicy",
        name="default",
    )


def test_rule_that_matches_everything_is_a_warning(validate_yaml: Callable[[str], list[Any]]) -> None:
    text = _variant(_set("spec.severityRules[3].match", {}))

    findings = validate_yaml(text)

    assert [(finding.field, finding.code, finding.severity) for finding in findings] == [
        ("spec.severityRules[3].match", "semantic.empty-match", "warning")
    ]
    assert "defaultSeverity" in findings[0].message
