"""Severity: SupportPolicy rules, defaults, label selectors, and which policy governs a namespace."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from upkeep.engine import severity, signals
from upkeep.model import errors, resources, schemas

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
SHOP_POLICY = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "examples" / "shop" / "supportpolicy.yaml").read_text(encoding="utf-8")
)["spec"]


def signal(signal_type: str, namespace: str = "shop", labels: dict[str, str] | None = None) -> signals.Signal:
    ref = resources.ObjectRef("Deployment", "shop", namespace, "apps/v1")
    alert_labels = {"alertname": "X", **(labels or {})} if signal_type == "Alert" else None
    return signals.Signal(
        type=signal_type,
        namespace=namespace,
        affected=ref,
        workload=ref,
        reason=signal_type,
        message="",
        labels=alert_labels or labels or {},
        observed_at=NOW,
        source="test",
        fingerprint=signals.fingerprint_for(signal_type, namespace, ref, ref, alert_labels=alert_labels),
    )


def decide(found: signals.Signal, spec: dict[str, Any] | None) -> tuple[str, str]:
    return severity.severity_for(found, namespace_labels={}, policy_spec=spec)


# --- severity_for -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "expected", "why"),
    [
        (signal("NodeNotReady", "default"), "SEV1", "spec.severityRules[0] matched (signalTypes=NodeNotReady)"),
        (
            signal("CrashLoopBackOff"),
            "SEV2",
            "spec.severityRules[1] matched (signalTypes=CrashLoopBackOff,OOMKilled; namespaces=shop)",
        ),
        (signal("OOMKilled"), "SEV2", "spec.severityRules[1] matched"),
        (signal("CrashLoopBackOff", "cart"), "SEV3", "spec.defaultSeverity"),
        (
            signal("DeploymentUnavailable", "cart", {"app.kubernetes.io/part-of": "shop"}),
            "SEV2",
            "spec.severityRules[2] matched (signalTypes=DeploymentUnavailable,ProgressDeadlineExceeded; "
            "selector=app.kubernetes.io/part-of=shop)",
        ),
        (
            signal("DeploymentUnavailable", "shop", {"app.kubernetes.io/part-of": "cart"}),
            "SEV3",
            "spec.defaultSeverity",
        ),
        (signal("JobFailed"), "SEV4", "spec.severityRules[3] matched (signalTypes=JobFailed)"),
    ],
)
def test_the_shop_policy(found: signals.Signal, expected: str, why: str) -> None:
    got, reason = decide(found, SHOP_POLICY)

    assert got == expected
    assert reason.startswith(why)


def test_the_first_matching_rule_wins() -> None:
    spec = {
        "severityRules": [
            {"severity": "SEV4", "match": {"namespaces": ["other"]}},
            {"severity": "SEV2", "match": {"signalTypes": ["CrashLoopBackOff"]}},
            {"severity": "SEV1", "match": {}},
        ]
    }

    assert decide(signal("CrashLoopBackOff"), spec) == (
        "SEV2",
        "spec.severityRules[1] matched (signalTypes=CrashLoopBackOff)",
    )
    assert decide(signal("OOMKilled"), spec) == ("SEV1", "spec.severityRules[2] matched (matches every signal)")


@pytest.mark.parametrize("signal_type", signals.SIGNAL_TYPES)
def test_built_in_defaults_without_a_policy(signal_type: str) -> None:
    got, why = decide(signal(signal_type), None)

    assert got == severity.BUILTIN_SEVERITY[signal_type]
    assert why == f"built-in default for {signal_type}"


@pytest.mark.parametrize(
    ("signal_type", "expected"),
    [
        ("NodeNotReady", "SEV2"),
        ("DeploymentUnavailable", "SEV2"),
        ("CrashLoopBackOff", "SEV3"),
        ("OOMKilled", "SEV3"),
        ("ImagePullBackOff", "SEV3"),
        ("ProgressDeadlineExceeded", "SEV3"),
        ("Unschedulable", "SEV3"),
        ("JobFailed", "SEV4"),
        ("Alert", "SEV3"),
    ],
)
def test_the_documented_defaults(signal_type: str, expected: str) -> None:
    assert decide(signal(signal_type), {"severityRules": []})[0] == expected
    assert f"{signal_type:<24}  {expected}" in (severity.__doc__ or "")


def test_the_policy_default_beats_the_built_in() -> None:
    assert decide(signal("NodeNotReady"), {"defaultSeverity": "SEV4"}) == ("SEV4", "spec.defaultSeverity")


@pytest.mark.parametrize(
    ("label", "expected"),
    [("critical", "SEV1"), ("warning", "SEV3"), ("info", "SEV4"), ("Critical", "SEV1"), ("sev2", "SEV2")],
)
def test_an_alerts_severity_label(label: str, expected: str) -> None:
    found = signal("Alert", labels={"severity": label})

    assert decide(found, None) == (expected, f"alert label severity={label}")
    assert decide(found, {"defaultSeverity": "SEV3"}) == (expected, f"alert label severity={label}")


def test_a_rule_beats_the_alerts_label_and_an_unknown_label_falls_through() -> None:
    rule = {"severityRules": [{"severity": "SEV4", "match": {"selector": {"matchLabels": {"team": "batch"}}}}]}

    assert decide(signal("Alert", labels={"severity": "critical", "team": "batch"}), rule)[0] == "SEV4"
    assert decide(signal("Alert", labels={"severity": "page"}), {"defaultSeverity": "SEV2"})[0] == "SEV2"
    assert decide(signal("Alert", labels={"severity": "page"}), None) == ("SEV3", "built-in default for Alert")


def test_only_alerts_read_the_severity_label() -> None:
    assert decide(signal("JobFailed", labels={"severity": "critical"}), None)[0] == "SEV4"


def test_malformed_rules_are_skipped() -> None:
    spec = {
        "defaultSeverity": "SEV4",
        "severityRules": [
            "nonsense",
            {"severity": "SEV9", "match": {}},
            {"severity": "SEV1", "match": {"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}},
            {"severity": "SEV2", "match": "not an object"},
        ],
    }

    assert decide(signal("CrashLoopBackOff"), spec) == ("SEV2", "spec.severityRules[3] matched (matches every signal)")


def test_builtins_cover_every_signal_type_and_severities_are_the_crd_enum() -> None:
    assert set(severity.BUILTIN_SEVERITY) == set(signals.SIGNAL_TYPES)
    spec = schemas.by_kind()["Incident"].schema["properties"]["spec"]
    assert tuple(spec["properties"]["severity"]["enum"]) == severity.SEVERITIES


# --- label selectors ---------------------------------------------------------------------

LABELS = {"app": "shop", "tier": "web", "canary": "true"}


@pytest.mark.parametrize(
    ("selector", "selects"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {}, "matchExpressions": []}, True),
        ({"matchLabels": {"app": "shop"}}, True),
        ({"matchLabels": {"app": "shop", "tier": "api"}}, False),
        ({"matchLabels": {"missing": "x"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["api"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "In", "values": ["x"]}]}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["api"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "canary", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "missing", "operator": "Exists"}]}, False),
        ({"matchExpressions": [{"key": "canary", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "DoesNotExist"}]}, True),
        (
            {
                "matchLabels": {"app": "shop"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["web"]},
                    {"key": "missing", "operator": "Exists"},
                ],
            },
            False,
        ),
    ],
)
def test_label_selector_semantics(selector: dict[str, Any] | None, selects: bool) -> None:
    assert severity.label_selector_matches(selector, LABELS) is selects


@pytest.mark.parametrize(
    ("selector", "field"),
    [
        ({"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]}, "matchExpressions[0].operator"),
        ({"matchExpressions": [{"key": "a", "operator": "In"}]}, "matchExpressions[0].values"),
        ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}, "matchExpressions[0].values"),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x"]}, {"operator": "Exists"}]},
            "matchExpressions[1].key",
        ),
        ({"matchLabels": ["a"]}, "matchLabels"),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions"),
    ],
)
def test_a_malformed_selector_names_its_field(selector: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.SpecError) as raised:
        severity.label_selector_matches(selector, LABELS)

    assert raised.value.field == field


_KEYS = st.sampled_from(["app", "tier", "team", "zone", "env"])
_VALUES = st.sampled_from(["a", "b", "c"])


@given(labels=st.dictionaries(_KEYS, _VALUES), key=_KEYS, values=st.lists(_VALUES, min_size=1, max_size=3))
def test_not_in_is_the_complement_of_in(labels: dict[str, str], key: str, values: list[str]) -> None:
    def expression(operator: str) -> dict[str, Any]:
        return {"matchExpressions": [{"key": key, "operator": operator, "values": values}]}

    assert severity.label_selector_matches(expression("In"), labels) is not severity.label_selector_matches(
        expression("NotIn"), labels
    )


@given(labels=st.dictionaries(_KEYS, _VALUES), data=st.data())
def test_a_subset_of_the_labels_selects_them(labels: dict[str, str], data: st.DataObject) -> None:
    keys = data.draw(st.lists(st.sampled_from(sorted(labels)), unique=True) if labels else st.just([]))
    selector = {"matchLabels": {key: labels[key] for key in keys}}

    assert severity.label_selector_matches(selector, labels)


def test_describe_selector_in_kubectl_syntax() -> None:
    selector = {
        "matchLabels": {"tier": "web", "app": "shop"},
        "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a", "b"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "canary", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }

    assert severity.describe_selector(selector) == "app=shop,tier=web,zone in (a,b),env notin (dev),canary,!legacy"
    assert severity.describe_selector(None) == ""
    assert severity.describe_selector({}) == ""


# --- policy_for --------------------------------------------------------------------------


def policy(name: str, selector: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"defaultSeverity": "SEV3"}
    if selector is not None:
        spec["namespaceSelector"] = selector
    return {"apiVersion": "upkeep.dev/v1alpha1", "kind": "SupportPolicy", "metadata": {"name": name}, "spec": spec}


def name_of(found: Any) -> str | None:
    return None if found is None else str(found["metadata"]["name"])


PROD = {"env": "prod", "team": "shop"}


def test_a_selecting_policy_comes_before_one_for_every_namespace() -> None:
    policies = [policy("default"), policy("prod", {"matchLabels": {"env": "prod"}}), policy("all", {})]

    assert name_of(severity.policy_for(PROD, policies)) == "prod"
    assert name_of(severity.policy_for({"env": "dev"}, policies)) == "all"  # "all" < "default" by name


def test_ties_go_by_name() -> None:
    policies = [
        policy("zeta", {"matchLabels": {"env": "prod"}}),
        policy("alpha", {"matchExpressions": [{"key": "team", "operator": "Exists"}]}),
    ]

    assert name_of(severity.policy_for(PROD, policies)) == "alpha"
    assert name_of(severity.policy_for(PROD, list(reversed(policies)))) == "alpha"


def test_the_default_policy_applies_when_none_selects() -> None:
    policies = [
        policy("default", {"matchLabels": {"env": "staging"}}),
        policy("prod", {"matchLabels": {"env": "prod"}}),
    ]

    assert name_of(severity.policy_for({"env": "dev"}, policies)) == "default"


def test_no_policy_governs() -> None:
    assert severity.policy_for(PROD, []) is None
    assert severity.policy_for({"env": "dev"}, [policy("prod", {"matchLabels": {"env": "prod"}})]) is None


def test_a_malformed_namespace_selector_selects_nothing() -> None:
    broken = policy("broken", {"matchExpressions": [{"key": "env", "operator": "In"}]})

    assert name_of(severity.policy_for(PROD, [broken, policy("default")])) == "default"


def test_policy_then_severity_for_a_namespace() -> None:
    strict = policy("strict", {"matchLabels": {"env": "prod"}})
    strict["spec"]["severityRules"] = [{"severity": "SEV1", "match": {"signalTypes": ["CrashLoopBackOff"]}}]
    policies = [policy("default"), strict]

    for labels, expected in ((PROD, "SEV1"), ({"env": "dev"}, "SEV3")):
        chosen = severity.policy_for(labels, policies)
        assert chosen is not None
        got, _ = severity.severity_for(signal("CrashLoopBackOff"), namespace_labels=labels, policy_spec=chosen["spec"])
        assert got == expected
