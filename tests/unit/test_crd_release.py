"""Release: the shop example validates clean, and each broken variant is reported at its field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from support.variants import Mutation, assert_one_error, variant
from support.variants import drop as _drop
from support.variants import errors as _errors
from support.variants import set_field as _set

SHOP = Path(__file__).resolve().parents[2] / "examples" / "shop"
EXAMPLE = SHOP / "release.yaml"


def _variant(*mutations: Mutation) -> str:
    return variant(EXAMPLE, *mutations)


class Case(NamedTuple):
    """One broken variant of the example and the finding it must produce."""

    id: str
    mutate: Mutation
    field: str
    """Path of the field the finding names."""
    code: str
    words: tuple[str, ...]
    """What the message must contain: the expected values, pattern or bound."""
    line_has: str
    """Text on the line the finding points at."""


def test_example_has_no_errors(validate_yaml: Callable[[str], list[Any]]) -> None:
    findings = validate_yaml(EXAMPLE.read_text(encoding="utf-8"))

    assert _errors(findings) == []


def test_example_has_no_errors_with_its_source_and_policy(validate_yaml: Callable[[str], list[Any]]) -> None:
    files = [SHOP / "gitsource.yaml", SHOP / "changepolicy.yaml", EXAMPLE]
    text = "---\n".join(file.read_text(encoding="utf-8") for file in files)

    assert _errors(validate_yaml(text)) == []


_STEPS = "spec.strategy.canary.steps"
_METRICS = f"{_STEPS}[2].analysis.metrics"


# Case(id, mutation, field, code, words in the message, text on the reported line)
CASES = [
    Case(
        "weight-not-an-integer",
        _set(f"{_STEPS}[0].setWeight", "20"),
        f"{_STEPS}[0].setWeight",
        "schema.type",
        ("must be an integer",),
        "setWeight:",
    ),
    Case(
        "self-heal-not-a-boolean",
        _set("spec.selfHeal", "on"),
        "spec.selfHeal",
        "schema.type",
        ("true or false",),
        "selfHeal:",
    ),
    Case(
        "unknown-strategy",
        _set("spec.strategy.type", "BlueGreen"),
        "spec.strategy.type",
        "schema.enum",
        ("Direct, Canary", "BlueGreen"),
        "type: BlueGreen",
    ),
    Case(
        "unsupported-workload-kind",
        _set("spec.workloadRef.kind", "ReplicaSet"),
        "spec.workloadRef.kind",
        "schema.enum",
        ("Deployment, StatefulSet, DaemonSet",),
        "kind: ReplicaSet",
    ),
    Case(
        "severity-not-sev",
        _set("spec.gates.noOpenIncidentAtOrAbove", "P1"),
        "spec.gates.noOpenIncidentAtOrAbove",
        "schema.enum",
        ("SEV1, SEV2, SEV3, SEV4",),
        "noOpenIncidentAtOrAbove:",
    ),
    Case(
        "unknown-metric-type",
        _set(f"{_METRICS}[1].type", "Datadog"),
        f"{_METRICS}[1].type",
        "schema.enum",
        ("PodHealth, Prometheus, HTTP",),
        "type: Datadog",
    ),
    Case("source-missing", _drop("spec.sourceRef"), "spec.sourceRef", "schema.required", ("required",), "spec:"),
    Case(
        "metric-type-missing",
        _drop(f"{_METRICS}[0].type"),
        f"{_METRICS}[0].type",
        "schema.required",
        ("required",),
        "name: pod-health",
    ),
    Case(
        "prometheus-query-missing",
        _drop(f"{_METRICS}[1].prometheus.query"),
        f"{_METRICS}[1].prometheus.query",
        "schema.required",
        ("required",),
        "prometheus:",
    ),
    Case(
        "interval-not-a-go-duration",
        _set("spec.interval", "5 minutes"),
        "spec.interval",
        "schema.pattern",
        ("(ms|s|m|h)",),
        "interval:",
    ),
    Case(
        "prometheus-address-without-scheme",
        _set(f"{_METRICS}[1].prometheus.address", "127.0.0.1:9090"),
        f"{_METRICS}[1].prometheus.address",
        "schema.pattern",
        ("^https?://",),
        "address:",
    ),
    Case(
        "namespace-not-a-dns-label",
        _set("spec.targetNamespace", "Shop_Prod"),
        "spec.targetNamespace",
        "schema.pattern",
        ("pattern",),
        "targetNamespace:",
    ),
    Case(
        "weight-above-100",
        _set(f"{_STEPS}[5].setWeight", 120),
        f"{_STEPS}[5].setWeight",
        "schema.maximum",
        ("at most 100",),
        "setWeight: 120",
    ),
    Case(
        "zero-measurements",
        _set(f"{_STEPS}[2].analysis.count", 0),
        f"{_STEPS}[2].analysis.count",
        "schema.minimum",
        ("at least 1",),
        "count:",
    ),
    Case(
        "step-with-two-actions",
        _set(f"{_STEPS}[0].pause", {"duration": "1m"}),
        f"{_STEPS}[0]",
        "schema.maxProperties",
        ("exactly one of", "setWeight", "pause", "analysis", "approval"),
        "setWeight: 20",
    ),
    Case(
        "empty-step",
        _set(f"{_STEPS}[1]", {}),
        f"{_STEPS}[1]",
        "schema.minProperties",
        ("at least 1", "setWeight"),
        "{}",
    ),
    Case(
        "weight-goes-down",
        _set(f"{_STEPS}[3].setWeight", 10),
        f"{_STEPS}[3].setWeight",
        "semantic.weight-decreases",
        ("previous setWeight 20",),
        "setWeight: 10",
    ),
    Case(
        "path-leaves-repository",
        _set("spec.path", "./apps/../../secrets"),
        "spec.path",
        "semantic.path-escapes",
        ("'..'",),
        "path:",
    ),
    Case(
        "canary-without-steps",
        _drop("spec.strategy.canary"),
        _STEPS,
        "semantic.canary-without-steps",
        ("Canary needs canary.steps",),
        "strategy:",
    ),
    Case(
        "prometheus-metric-without-source",
        _drop(f"{_METRICS}[1].prometheus"),
        f"{_METRICS}[1].prometheus",
        "semantic.metric-without-source",
        ("Prometheus needs its prometheus",),
        "name: error-rate",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_invalid_variant_is_reported_at_its_field(validate_yaml: Callable[[str], list[Any]], case: Case) -> None:
    text = _variant(case.mutate)

    assert_one_error(
        text,
        validate_yaml(text),
        field=case.field,
        code=case.code,
        words=case.words,
        line_has=case.line_has,
        kind="Release",
        name="shop",
    )


@pytest.mark.parametrize(
    ("neighbour", "field", "names"),
    [
        pytest.param(
            "gitsource.yaml",
            "spec.sourceRef.name",
            "no GitSource named 'shop-old' in namespace shop",
            id="unknown-gitsource",
        ),
        pytest.param(
            "changepolicy.yaml",
            "spec.changePolicyRef.name",
            "no ChangePolicy named 'shop-old'",
            id="unknown-changepolicy",
        ),
    ],
)
def test_reference_to_an_object_missing_from_the_set(
    validate_yaml: Callable[[str], list[Any]], neighbour: str, field: str, names: str
) -> None:
    release = _variant(_set(field, "shop-old"))
    text = (SHOP / neighbour).read_text(encoding="utf-8") + "---\n" + release

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.document) for error in errors] == [
        (field, "semantic.dangling-reference", 1)
    ]
    assert names in errors[0].message
