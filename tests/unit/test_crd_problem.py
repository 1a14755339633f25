"""Problem: the shop example validates clean, and each broken variant is reported at its field."""

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
EXAMPLE = SHOP / "problem.yaml"


def _variant(*mutations: Mutation) -> str:
    return variant(EXAMPLE, *mutations)


def test_example_has_no_errors(validate_yaml: Callable[[str], list[Any]]) -> None:
    findings = validate_yaml(EXAMPLE.read_text(encoding="utf-8"))

    assert _errors(findings) == []


def test_example_has_no_errors_with_its_fixing_change(validate_yaml: Callable[[str], list[Any]]) -> None:
    files = [SHOP / "change.yaml", EXAMPLE]
    text = "---\n".join(file.read_text(encoding="utf-8") for file in files)

    assert _errors(validate_yaml(text)) == []


def test_resolved_problem_is_valid(validate_yaml: Callable[[str], list[Any]]) -> None:
    text = _variant(_set("spec.resolution", {"summary": "Probes use /healthz.", "resolvedBy": "ana.lopez@example.com"}))

    assert _errors(validate_yaml(text)) == []


_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@pytest.mark.parametrize(
    ("mutations", "field", "code", "expected", "line_has"),
    [
        pytest.param(
            [_set("spec.knownError", "liveness probe hits the storefront")],
            "spec.knownError",
            "schema.type",
            ["must be an object"],
            "knownError:",
            id="known-error-not-an-object",
        ),
        pytest.param(
            [_set("spec.fixChangeRef.name", 42)],
            "spec.fixChangeRef.name",
            "schema.type",
            ["must be a string"],
            "name: 42",
            id="fix-change-name-not-a-string",
        ),
        pytest.param(
            [_set("status", {"phase": "Closed"})],
            "status.phase",
            "schema.enum",
            ["Open, KnownError, Resolved", "Closed"],
            "phase: Closed",
            id="unknown-phase",
        ),
        pytest.param(
            [_drop("spec.fingerprintFamily")],
            "spec.fingerprintFamily",
            "schema.required",
            ["required"],
            "spec:",
            id="fingerprint-family-missing",
        ),
        pytest.param(
            [_drop("spec.knownError.rootCause")],
            "spec.knownError.rootCause",
            "schema.required",
            ["required"],
            "knownError:",
            id="known-error-without-root-cause",
        ),
        pytest.param(
            [_set("spec.resolution", {"resolvedBy": "ana.lopez@example.com"})],
            "spec.resolution.summary",
            "schema.required",
            ["required"],
            "resolution:",
            id="resolution-without-summary",
        ),
        pytest.param(
            [_set("spec.fingerprintFamily", "CrashLoopBackOff shop")],
            "spec.fingerprintFamily",
            "schema.pattern",
            ["^[a-z0-9][a-z0-9:._-]{0,252}$"],
            "fingerprintFamily:",
            id="family-not-a-fingerprint",
        ),
        pytest.param(
            [_set("spec.fixChangeRef.name", "Shop_A1B2C3D")],
            "spec.fixChangeRef.name",
            "schema.pattern",
            [_NAME_PATTERN],
            "name: Shop_A1B2C3D",
            id="fix-change-name-not-a-dns-name",
        ),
        pytest.param(
            [_set("spec.fixChangeRef.name", "a" * 254)],
            "spec.fixChangeRef.name",
            "schema.maxLength",
            ["at most 253 characters"],
            "name:",
            id="fix-change-name-too-long",
        ),
        pytest.param(
            [_set("spec.rootCause", "probes")],
            "spec.rootCause",
            "schema.unknown-field",
            ["knownError", "fixChangeRef"],
            "rootCause:",
            id="root-cause-outside-known-error",
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
        kind="Problem",
        name="shop-crashloop",
    )


def test_fix_change_missing_from_the_set(validate_yaml: Callable[[str], list[Any]]) -> None:
    problem = _variant(_set("spec.fixChangeRef.name", "shop-b2c3d4e"))
    text = (SHOP / "change.yaml").read_text(encoding="utf-8") + "---\n" + problem

    errors = _errors(validate_yaml(text))

    assert [(error.field, error.code, error.kind, error.document) for error in errors] == [
        ("spec.fixChangeRef.name", "semantic.dangling-reference", "Problem", 1)
    ]
    assert "no Change named 'shop-b2c3d4e' in namespace shop" in errors[0].message
    assert "shop-a1b2c3d" in errors[0].message
    assert "name: shop-b2c3d4e" in text.splitlines()[errors[0].line - 1]


def test_fix_change_is_not_checked_without_changes_in_the_set(
    validate_yaml: Callable[[str], list[Any]],
) -> None:
    # The Change may live in the cluster rather than in this set.
    assert _errors(validate_yaml(_variant(_set("spec.fixChangeRef.name", "shop-b2c3d4e")))) == []
