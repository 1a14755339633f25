"""ChangePolicy: the default example validates clean, and each broken variant is reported at its field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from support.variants import Mutation, assert_one_error, variant
from support.variants import drop as _drop
from support.variants import errors as _errors
from support.variants import set_field as _set

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "changepolicy.yaml"


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


_FREEZE = "spec.windows[0]"
_MAINTENANCE = "spec.windows[1]"


# Case(id, mutation, field, code, words in the message, text on the reported line)
CASES = [
    Case(
        "approvals-not-an-integer",
        _set("spec.approvals.Medium", "one"),
        "spec.approvals.Medium",
        "schema.type",
        ("must be an integer",),
        "Medium:",
    ),
    Case(
        "windows-not-a-list",
        _set("spec.windows", {"name": "friday-evening"}),
        "spec.windows",
        "schema.type",
        ("must be a list",),
        "windows:",
    ),
    Case(
        "unknown-window-type",
        _set(f"{_FREEZE}.type", "Blackout"),
        f"{_FREEZE}.type",
        "schema.enum",
        ("Freeze, Maintenance", "Blackout"),
        "type: Blackout",
    ),
    Case(
        "unknown-change-type",
        _set(f"{_MAINTENANCE}.changeTypes", ["Hotfix"]),
        f"{_MAINTENANCE}.changeTypes[0]",
        "schema.enum",
        ("Standard, Normal, Emergency",),
        "Hotfix",
    ),
    Case(
        "unknown-selector-operator",
        _set("spec.namespaceSelector", {"matchExpressions": [{"key": "tier", "operator": "Equals"}]}),
        "spec.namespaceSelector.matchExpressions[0].operator",
        "schema.enum",
        ("In, NotIn, Exists, DoesNotExist",),
        "operator:",
    ),
    Case(
        "schedule-missing",
        _drop(f"{_FREEZE}.schedule"),
        f"{_FREEZE}.schedule",
        "schema.required",
        ("required",),
        "name: friday-evening",
    ),
    Case(
        "duration-missing",
        _drop(f"{_MAINTENANCE}.duration"),
        f"{_MAINTENANCE}.duration",
        "schema.required",
        ("required",),
        "name: weekday-hours",
    ),
    Case(
        "duration-not-a-go-duration",
        _set(f"{_FREEZE}.duration", "63 hours"),
        f"{_FREEZE}.duration",
        "schema.pattern",
        ("(ms|s|m|h)",),
        "duration:",
    ),
    Case(
        "window-name-not-a-dns-label",
        _set(f"{_FREEZE}.name", "Friday Evening"),
        f"{_FREEZE}.name",
        "schema.pattern",
        ("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",),
        "name: Friday Evening",
    ),
    Case(
        "too-many-approvals",
        _set("spec.approvals.High", 11),
        "spec.approvals.High",
        "schema.maximum",
        ("at most 10",),
        "High:",
    ),
    Case(
        "negative-approvals",
        _set("spec.emergency.requiredApprovals", -1),
        "spec.emergency.requiredApprovals",
        "schema.minimum",
        ("at least 0",),
        "requiredApprovals:",
    ),
    Case(
        "unknown-field",
        _set("spec.freezes", []),
        "spec.freezes",
        "schema.unknown-field",
        ("unknown field", "windows"),
        "freezes:",
    ),
    Case(
        "namespace-on-a-cluster-object",
        _set("metadata.namespace", "shop"),
        "metadata.namespace",
        "semantic.scope",
        ("cluster-scoped",),
        "namespace:",
    ),
    Case(
        "schedule-not-cron",
        _set(f"{_FREEZE}.schedule", "0 17 * * Friday"),
        f"{_FREEZE}.schedule",
        "semantic.bad-cron",
        ("not a cron expression",),
        "schedule:",
    ),
    Case(
        "schedule-hour-out-of-range",
        _set(f"{_FREEZE}.schedule", "0 25 * * 5"),
        f"{_FREEZE}.schedule",
        "semantic.bad-cron",
        ("not a cron expression",),
        "schedule:",
    ),
    Case(
        "unknown-time-zone",
        _set(f"{_FREEZE}.timeZone", "Europe/Atlantis"),
        f"{_FREEZE}.timeZone",
        "semantic.unknown-time-zone",
        ("not an IANA time zone", "Europe/Atlantis"),
        "timeZone:",
    ),
    Case(
        "window-name-used-twice",
        _set(f"{_MAINTENANCE}.name", "friday-evening"),
        f"{_MAINTENANCE}.name",
        "semantic.duplicate-name",
        ("'friday-evening' is used twice",),
        "name: friday-evening",
    ),
    Case(
        "window-of-no-length",
        _set(f"{_FREEZE}.duration", "0h"),
        f"{_FREEZE}.duration",
        "semantic.non-positive-duration",
        ("longer than 0s",),
        "duration:",
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
        kind="ChangePolicy",
        name="default",
    )


@pytest.mark.parametrize("schedule", ["@weekly", "*/15 6-18 * * 1-5", "30 2 1 * *"])
def test_other_schedules_are_valid(validate_yaml: Callable[[str], list[Any]], schedule: str) -> None:
    text = _variant(_set(f"{_MAINTENANCE}.schedule", schedule))

    assert _errors(validate_yaml(text)) == []
