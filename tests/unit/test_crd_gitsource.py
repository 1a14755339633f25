"""GitSource: the shop example validates clean, and each broken variant is reported at its field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from support.variants import Mutation, assert_one_error, variant
from support.variants import drop as _drop
from support.variants import errors as _errors
from support.variants import set_field as _set

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "gitsource.yaml"


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


_VERIFY = {"provider": "gpg", "secretRef": {"name": "shop-signers"}}


# Case(id, mutation, field, code, words in the message, text on the reported line)
CASES = [
    Case(
        "interval-not-a-string",
        _set("spec.interval", 5),
        "spec.interval",
        "schema.type",
        ("must be a string",),
        "interval:",
    ),
    Case(
        "suspend-not-a-boolean",
        _set("spec.suspend", "yes"),
        "spec.suspend",
        "schema.type",
        ("true or false",),
        "suspend:",
    ),
    Case(
        "unknown-verify-provider",
        _set("spec.verify", {**_VERIFY, "provider": "pgp"}),
        "spec.verify.provider",
        "schema.enum",
        ("gpg, ssh", "pgp"),
        "provider:",
    ),
    Case("url-missing", _drop("spec.url"), "spec.url", "schema.required", ("required",), "spec:"),
    Case(
        "webhook-secret-missing",
        _set("spec.webhook", {"path": "/hooks/shop"}),
        "spec.webhook.secretRef",
        "schema.required",
        ("required",),
        "webhook:",
    ),
    Case(
        "url-with-unsupported-scheme",
        _set("spec.url", "ftp://git.example.com/shop.git"),
        "spec.url",
        "schema.pattern",
        ("pattern", "https?|ssh|file"),
        "url:",
    ),
    Case(
        "commit-not-a-sha",
        _set("spec.ref", {"commit": "HEAD"}),
        "spec.ref.commit",
        "schema.pattern",
        ("^[0-9a-f]{7,40}$",),
        "commit:",
    ),
    Case(
        "interval-not-a-go-duration",
        _set("spec.interval", "1 minute"),
        "spec.interval",
        "schema.pattern",
        ("(ms|s|m|h)",),
        "interval:",
    ),
    Case(
        "webhook-path-not-absolute",
        _set("spec.webhook.path", "hooks/shop"),
        "spec.webhook.path",
        "schema.pattern",
        ("^/",),
        "path:",
    ),
    Case(
        "branch-and-tag-both-set",
        _set("spec.ref", {"branch": "main", "tag": "v1.0.0"}),
        "spec.ref",
        "schema.maxProperties",
        ("exactly one of", "branch", "tag", "commit"),
        "ref:",
    ),
    Case(
        "empty-ref",
        _set("spec.ref", {}),
        "spec.ref",
        "schema.minProperties",
        ("at least 1", "branch"),
        "ref:",
    ),
    Case(
        "branch-outside-ref",
        _set("spec.branch", "main"),
        "spec.branch",
        "schema.unknown-field",
        ("unknown field", "ref"),
        "branch:",
    ),
    Case(
        "zero-interval",
        _set("spec.interval", "0s"),
        "spec.interval",
        "semantic.non-positive-duration",
        ("longer than 0s",),
        "interval:",
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
        kind="GitSource",
        name="shop",
    )
