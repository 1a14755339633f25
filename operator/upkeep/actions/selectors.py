"""Label selectors (``matchLabels`` and ``matchExpressions``): matched against labels, and written as a query.

A drain refused by a PodDisruptionBudget must name the budget; the Eviction API's answer says only
that one refused, so the action finds which budget selects the pod. Listing a Deployment's
ReplicaSets uses the selector as a ``labelSelector`` query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["matches", "to_query"]


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` satisfy ``selector`` (an empty selector selects everything, as in policy/v1)."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key = str(expression.get("key", ""))
        operator = expression.get("operator")
        values = [str(value) for value in expression.get("values") or []]
        present = key in labels
        if operator == "In" and (not present or labels[key] not in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def to_query(selector: Mapping[str, Any] | None) -> str:
    """The ``labelSelector`` query string of a LabelSelector object."""
    selector = selector or {}
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key = str(expression.get("key", ""))
        values = ",".join(str(value) for value in expression.get("values") or [])
        operator = expression.get("operator")
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
