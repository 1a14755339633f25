"""Severity of a new incident, and the SupportPolicy that governs a namespace.

``severity_for`` decides, first answer wins:

1. the policy's ``spec.severityRules``, in order: a rule matches when every criterion it
   gives holds (``match.signalTypes`` holds the signal's type, ``match.namespaces`` its
   namespace, ``match.selector``, a metav1.LabelSelector, selects the signal's labels);
   an empty match matches everything;
2. for an ``Alert``, the alert's own ``severity`` label when it is one this module knows
   (``critical`` → SEV1, ``warning`` → SEV3, ``info`` → SEV4, or ``SEV1`` to ``SEV4``
   itself), because the alert rule's author said how bad it is;
3. the policy's ``spec.defaultSeverity`` (the API server defaults it to SEV3, so with a
   policy the built-ins below are reached only for a spec read without its defaults);
4. the built-in default of the signal type:

   ========================  =====  ==============================================
   NodeNotReady              SEV2   every pod on the node is affected
   DeploymentUnavailable     SEV2   the service is below its minimum availability
   CrashLoopBackOff          SEV3   a workload's pods fail, others may still serve
   OOMKilled                 SEV3
   ImagePullBackOff          SEV3   usually a bad release, caught by its rollout
   ProgressDeadlineExceeded  SEV3
   Unschedulable             SEV3   capacity, not yet an outage
   JobFailed                 SEV4   batch work, retried by its next run
   Alert                     SEV3   no known ``severity`` label
   Manual                    SEV3
   ========================  =====  ==============================================

The second value returned says which of these decided, naming the field.

``policy_for`` picks the SupportPolicy whose ``spec.namespaceSelector`` selects the
namespace's labels: those with a non-empty selector before those with an empty one (which
select every namespace), then by name; when none selects it, the one named ``default``.

Label selectors follow metav1.LabelSelector: ``matchLabels`` and ``matchExpressions``
(``In``, ``NotIn``, ``Exists``, ``DoesNotExist``) must all hold; an empty or absent
selector selects everything. A malformed selector selects nothing.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

from upkeep.engine import signals
from upkeep.model import errors

__all__ = [
    "ALERT_SEVERITY_LABEL",
    "BUILTIN_SEVERITY",
    "DEFAULT_POLICY",
    "SEVERITIES",
    "alert_severity",
    "describe_selector",
    "label_selector_matches",
    "policy_for",
    "severity_for",
]

SEVERITIES: tuple[str, ...] = ("SEV1", "SEV2", "SEV3", "SEV4")
"""Worst first."""

BUILTIN_SEVERITY: Mapping[str, str] = types.MappingProxyType(
    {
        "NodeNotReady": "SEV2",
        "DeploymentUnavailable": "SEV2",
        "CrashLoopBackOff": "SEV3",
        "OOMKilled": "SEV3",
        "ImagePullBackOff": "SEV3",
        "ProgressDeadlineExceeded": "SEV3",
        "Unschedulable": "SEV3",
        "JobFailed": "SEV4",
        "Alert": "SEV3",
        "Manual": "SEV3",
    }
)
"""Signal type → severity when no policy decides."""

ALERT_SEVERITY_LABEL = "severity"
"""The alert label that carries the alert rule's own severity (the Prometheus convention)."""

_ALERT_SEVERITIES: Mapping[str, str] = types.MappingProxyType(
    {"critical": "SEV1", "warning": "SEV3", "info": "SEV4", **{name.lower(): name for name in SEVERITIES}}
)

DEFAULT_POLICY = "default"
"""The SupportPolicy that applies when no policy's namespaceSelector selects the namespace."""

_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_FALLBACK = "SEV3"


def severity_for(
    signal: signals.Signal,
    *,
    namespace_labels: Mapping[str, str],
    policy_spec: Mapping[str, Any] | None,
) -> tuple[str, str]:
    """(severity, why) of a new incident opened by ``signal`` under the policy with ``policy_spec``.

    ``namespace_labels`` are the labels of the signal's namespace. No severity rule field
    looks at them yet (rules name namespaces); they are taken so that choosing the policy
    and its rules stays one call as rules grow.
    """
    spec = policy_spec or {}
    rules = spec.get("severityRules")
    for index, rule in enumerate(rules if isinstance(rules, list) else ()):
        if not isinstance(rule, Mapping) or rule.get("severity") not in SEVERITIES:
            continue
        match = rule.get("match")
        match = match if isinstance(match, Mapping) else {}
        if _rule_matches(match, signal):
            return str(rule["severity"]), f"spec.severityRules[{index}] matched{_describe_match(match)}"
    if signal.type == "Alert":
        found = alert_severity(signal.labels)
        if found is not None:
            value = signal.labels.get(ALERT_SEVERITY_LABEL, "")
            return found, f"alert label {ALERT_SEVERITY_LABEL}={value}"
    default = spec.get("defaultSeverity")
    if default in SEVERITIES:
        return str(default), "spec.defaultSeverity"
    return BUILTIN_SEVERITY.get(signal.type, _FALLBACK), f"built-in default for {signal.type}"


def alert_severity(labels: Mapping[str, str]) -> str | None:
    """The severity an alert's ``severity`` label means, or None when it is absent or unknown."""
    value = labels.get(ALERT_SEVERITY_LABEL)
    return _ALERT_SEVERITIES.get(value.strip().lower()) if isinstance(value, str) else None


def policy_for(namespace_labels: Mapping[str, str], policies: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The SupportPolicy body that governs a namespace with these labels, or None.

    Selecting policies with a non-empty ``spec.namespaceSelector`` come first, then those
    with an empty one; ties go by name. When none selects the namespace, the policy named
    ``default`` applies.
    """
    candidates: list[tuple[int, str, Mapping[str, Any]]] = []
    fallback: Mapping[str, Any] | None = None
    for body in policies:
        metadata = body.get("metadata")
        name = str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""
        spec = body.get("spec")
        selector = spec.get("namespaceSelector") if isinstance(spec, Mapping) else None
        if name == DEFAULT_POLICY:
            fallback = body
        if _selects(selector, namespace_labels):
            candidates.append((1 if _is_empty(selector) else 0, name, body))
    if candidates:
        return min(candidates, key=lambda item: (item[0], item[1]))[2]
    return fallback


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a metav1.LabelSelector selects these labels; an empty or absent one selects all.

    A malformed selector raises ``errors.SpecError`` naming the field within the selector.
    """
    if selector is None:
        return True
    if not isinstance(selector, Mapping):
        raise errors.SpecError("a label selector must be an object", field="")
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        raise errors.SpecError("matchLabels must be an object of label to value", field="matchLabels")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise errors.SpecError("matchExpressions must be a list", field="matchExpressions")
    requirements = [_requirement(index, item) for index, item in enumerate(expressions)]
    if any(labels.get(str(key)) != str(value) for key, value in match_labels.items()):
        return False
    return all(_holds(operator, key, values, labels) for key, operator, values in requirements)


def describe_selector(selector: Mapping[str, Any] | None) -> str:
    """A selector in kubectl's ``-l`` syntax (``app=shop,tier in (web,api),!canary``); empty for an empty one."""
    if not isinstance(selector, Mapping):
        return ""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for item in selector.get("matchExpressions") or []:
        if not isinstance(item, Mapping):
            continue
        key, operator = str(item.get("key", "")), str(item.get("operator", ""))
        values = ",".join(str(value) for value in item.get("values") or [])
        if operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {'notin' if operator == 'NotIn' else 'in'} ({values})")
    return ",".join(parts)


def _rule_matches(match: Mapping[str, Any], signal: signals.Signal) -> bool:
    types = match.get("signalTypes")
    if types and signal.type not in types:
        return False
    namespaces = match.get("namespaces")
    if namespaces and signal.namespace not in namespaces:
        return False
    return _selects(match.get("selector"), signal.labels)


def _describe_match(match: Mapping[str, Any]) -> str:
    parts = []
    for key in ("signalTypes", "namespaces"):
        values = match.get(key)
        if values:
            parts.append(f"{key}={','.join(str(value) for value in values)}")
    selector = describe_selector(match.get("selector"))
    if selector:
        parts.append(f"selector={selector}")
    return f" ({'; '.join(parts)})" if parts else " (matches every signal)"


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    """``label_selector_matches`` where a malformed selector selects nothing."""
    try:
        return label_selector_matches(selector, labels)
    except errors.SpecError:
        return False


def _is_empty(selector: Any) -> bool:
    return not isinstance(selector, Mapping) or not (selector.get("matchLabels") or selector.get("matchExpressions"))


def _requirement(index: int, item: Any) -> tuple[str, str, frozenset[str]]:
    where = f"matchExpressions[{index}]"
    if not isinstance(item, Mapping) or not item.get("key"):
        raise errors.SpecError("a requirement needs a key", field=f"{where}.key")
    operator = item.get("operator")
    if operator not in _OPERATORS:
        raise errors.SpecError(
            f"operator must be one of {', '.join(_OPERATORS)}, not {operator!r}", field=f"{where}.operator"
        )
    values = item.get("values") or []
    if not isinstance(values, list):
        raise errors.SpecError("values must be a list", field=f"{where}.values")
    if operator in ("In", "NotIn") and not values:
        raise errors.SpecError(f"operator {operator} needs at least one value", field=f"{where}.values")
    if operator in ("Exists", "DoesNotExist") and values:
        raise errors.SpecError(f"operator {operator} takes no values", field=f"{where}.values")
    return str(item["key"]), str(operator), frozenset(str(value) for value in values)


def _holds(operator: str, key: str, values: frozenset[str], labels: Mapping[str, str]) -> bool:
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator == "In":
        return key in labels and labels[key] in values
    return key not in labels or labels[key] not in values
