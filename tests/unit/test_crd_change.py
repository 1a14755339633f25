"""Change: the shop example validates clean, and each broken variant is reported at its field."""

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
EXAMPLE = SHOP / "change.yaml"


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


def test_example_has_no_errors_with_its_release(validate_yaml: Callable[[str], list[Any]]) -> None:
    files = [SHOP / "gitsource.yaml", SHOP / "changepolicy.yaml", SHOP / "release.yaml", EXAMPLE]
    text = "---\n".join(file.read_text(encoding="utf-8") for file in files)

    assert _errors(validate_yaml(text)) == []


_WINDOW = {"start": "2025-11-24T08:00:00Z", "end": "2025-11-24T12:00:00Z"}


# Case(id, mutation, field, code, words in the message, text on the reported line)
CASES = [
    Case(
        "pull-request-number-not-an-integer",
        _set("spec.pullRequest.number", "42"),
        "spec.pullRequest.number",
        "schema.type",
        ("must be an integer",),
        "number:",
    ),
    Case(
        "reviewers-not-a-list",
        _set("spec.reviewers", "ben.okafor@example.com"),
        "spec.reviewers",
        "schema.type",
        ("must be a list",),
        "reviewers:",
    ),
    Case(
        "unknown-change-type",
        _set("spec.type", "Urgent"),
        "spec.type",
        "schema.enum",
        ("Standard, Normal, Emergency", "Urgent"),
        "type: Urgent",
    ),
    Case(
        "unknown-risk",
        _set("spec.risk", "Extreme"),
        "spec.risk",
        "schema.enum",
        ("Low, Medium, High, Critical",),
        "risk:",
    ),
    Case("revision-missing", _drop("spec.revision"), "spec.revision", "schema.required", ("required",), "spec:"),
    Case("author-missing", _drop("spec.author"), "spec.author", "schema.required", ("required",), "spec:"),
    Case(
        "approval-without-approver",
        _drop("spec.approvals[0].by"),
        "spec.approvals[0].by",
        "schema.required",
        ("required",),
        "at:",
    ),
    Case(
        "window-without-end",
        _set("spec.requestedWindow", {"start": _WINDOW["start"]}),
        "spec.requestedWindow.end",
        "schema.required",
        ("required",),
        "requestedWindow:",
    ),
    Case(
        "pull-request-url-without-scheme",
        _set("spec.pullRequest.url", "git.example.com/shop/shop/pulls/42"),
        "spec.pullRequest.url",
        "schema.pattern",
        ("^https?://",),
        "url:",
    ),
    Case(
        "release-name-not-lowercase",
        _set("spec.releaseRef.name", "Shop"),
        "spec.releaseRef.name",
        "schema.pattern",
        ("pattern",),
        "name: Shop",
    ),
    Case(
        "revision-too-short",
        _set("spec.revision", "a1b2"),
        "spec.revision",
        "schema.minLength",
        ("at least 7 characters",),
        "revision:",
    ),
    Case(
        "title-too-long",
        _set("spec.title", "x" * 201),
        "spec.title",
        "schema.maxLength",
        ("at most 200 characters",),
        "title:",
    ),
    Case(
        "pull-request-number-zero",
        _set("spec.pullRequest.number", 0),
        "spec.pullRequest.number",
        "schema.minimum",
        ("at least 1",),
        "number:",
    ),
    Case(
        "approval-time-not-a-timestamp",
        _set("spec.approvals[0].at", "yesterday"),
        "spec.approvals[0].at",
        "schema.format",
        ("date-time",),
        "at: yesterday",
    ),
    Case(
        "emergency-without-justification",
        _set("spec.type", "Emergency"),
        "spec.emergencyJustification",
        "semantic.emergency-without-justification",
        ("emergencyJustification",),
        "spec:",
    ),
    Case(
        "window-ends-before-it-starts",
        _set("spec.requestedWindow", {"start": _WINDOW["end"], "end": _WINDOW["start"]}),
        "spec.requestedWindow.end",
        "semantic.window-ends-before-start",
        ("later than requestedWindow.start",),
        "end:",
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
        kind="Change",
        name="shop-a1b2c3d",
    )


def test_emergency_with_justification_is_valid(validate_yaml: Callable[[str], list[Any]]) -> None:
    text = _variant(
        _set("spec.type", "Emergency"),
        _set(
            "spec.emergencyJustification",
            "Checkout returns 502 for every order (incident shop-crashloop-7f3c).",
        ),
    )

    assert _errors(validate_yaml(text)) == []


def test_release_missing_from_the_set(validate_yaml: Callable[[str], list[Any]]) -> None:
    change = _variant(_set("spec.releaseRef.name", "checkout"))
    text = (SHOP / "release.yaml").read_text(encoding="utf-8") + "---\n" + change

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.document) for error in errors] == [
        ("spec.releaseRef.name", "semantic.dangling-reference", 1)
    ]
    assert "no Release named 'checkout' in namespace shop" in errors[0].message
