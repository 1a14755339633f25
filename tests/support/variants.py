"""Broken variants of an example object, and the one finding each must produce (schema tests)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Mutation", "assert_one_error", "drop", "errors", "set_field", "variant"]

Mutation = Callable[[dict[str, Any]], None]


def _parts(field: str) -> list[str | int]:
    """``spec.signal.type`` or ``spec.items[0].name`` → the keys and indexes along the way."""
    return [int(part) if part.isdigit() else part for part in re.split(r"\.|\[|\]\.?", field) if part]


def set_field(field: str, value: Any) -> Mutation:
    """A mutation that sets ``field`` (creating missing objects on the way)."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _parts(field)
        node: Any = body
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        node[last] = value

    return mutate


def drop(field: str) -> Mutation:
    """A mutation that removes ``field``."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _parts(field)
        node: Any = body
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def variant(example: Path, *mutations: Mutation) -> str:
    """The example's YAML with the mutations applied."""
    body = yaml.safe_load(example.read_text(encoding="utf-8"))
    for mutate in mutations:
        mutate(body)
    return yaml.safe_dump(body, sort_keys=False)


def errors(findings: Iterable[Any]) -> list[Any]:
    return [finding for finding in findings if finding.severity == "error"]


def assert_one_error(
    text: str,
    findings: Iterable[Any],
    *,
    field: str,
    code: str,
    words: Sequence[str],
    line_has: str,
    kind: str,
    name: str,
    document: int = 0,
) -> None:
    """Exactly one error, at ``field`` with ``code``, saying ``words``, on the line that has ``line_has``."""
    found = errors(findings)
    assert [(error.field, error.code) for error in found] == [(field, code)]
    error = found[0]
    for expected in words:
        assert expected in error.message
    assert (error.kind, error.name, error.document) == (kind, name, document)
    assert line_has in text.splitlines()[error.line - 1]
