"""Paths to one field of an object: ``spec.template.spec.containers[name=shop].resources.limits.memory``.

setOverride and proposeFix name the field they hold or change this way, as people write it in a
Playbook. A path is dot-separated keys; ``[name=shop]`` picks the list item whose ``name`` is
``shop`` (items are found by a key, not a position, because a position changes when a container is
added); ``[0]`` picks by position; ``["example.com/owner"]`` is a key that has dots in it (an
annotation). ``with_value`` returns a changed copy; the caller turns the difference into a merge
patch (``patches.merge_patch``), which sends a changed list whole, as merge patches must.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldPathError", "Index", "Key", "Select", "Step", "get", "parse", "with_value"]


class FieldPathError(ValueError):
    """The path does not parse, or does not lead anywhere in the object."""


@dataclass(frozen=True)
class Key:
    """A key of a mapping."""

    name: str


@dataclass(frozen=True)
class Select:
    """The item of a list whose ``field`` equals ``value``."""

    field: str
    value: str


@dataclass(frozen=True)
class Index:
    """The item of a list at a position."""

    position: int


Step = Key | Select | Index

_KEY = re.compile(r"[A-Za-z0-9_$-]+")
_BRACKET = re.compile(r"\[(?:(?P<index>[0-9]+)|\"(?P<quoted>[^\"]+)\"|(?P<field>[A-Za-z0-9_.-]+)=(?P<value>[^\]]*))\]")


def parse(path: str) -> tuple[Step, ...]:
    """The steps of ``path`` (``FieldPathError`` naming the position where it stops making sense)."""
    steps: list[Step] = []
    position = 0
    expect_key = True
    while position < len(path):
        if path[position] == "[":
            match = _BRACKET.match(path, position)
            if match is None:
                raise FieldPathError(f"field path {path!r}: cannot read the brackets at {position}")
            if match["index"] is not None:
                steps.append(Index(int(match["index"])))
            elif match["quoted"] is not None:
                steps.append(Key(match["quoted"]))
            else:
                steps.append(Select(match["field"], match["value"].strip("\"'")))
            position = match.end()
            expect_key = False
            continue
        if path[position] == "." and not expect_key:
            position += 1
            expect_key = True
            continue
        match = _KEY.match(path, position)
        if match is None or not expect_key:
            raise FieldPathError(f"field path {path!r}: unexpected {path[position]!r} at {position}")
        steps.append(Key(match.group()))
        position = match.end()
        expect_key = False
    if not steps or expect_key:
        raise FieldPathError(f"field path {path!r} is empty or ends with a dot")
    return tuple(steps)


def _item(items: list[Any], step: Select | Index, path: str) -> int:
    if isinstance(step, Index):
        if step.position >= len(items):
            raise FieldPathError(f"field path {path!r}: no item {step.position} (the list has {len(items)})")
        return step.position
    for position, item in enumerate(items):
        if isinstance(item, Mapping) and str(item.get(step.field)) == step.value:
            return position
    raise FieldPathError(f"field path {path!r}: no item with {step.field}={step.value}")


def get(obj: Mapping[str, Any], path: str) -> Any:
    """The value at ``path``, or None when a mapping on the way lacks the key.

    A list selector that finds no item is an error (``FieldPathError``): the path names a container
    the workload does not have, which a user should hear about rather than get a default.
    """
    current: Any = obj
    for step in parse(path):
        if isinstance(step, Key):
            if current is None:
                return None
            if not isinstance(current, Mapping):
                raise FieldPathError(f"field path {path!r}: {step.name!r} is under something that is not an object")
            current = current.get(step.name)
        else:
            if not isinstance(current, list):
                raise FieldPathError(f"field path {path!r}: a list selector on something that is not a list")
            current = current[_item(current, step, path)]
    return current


def with_value(obj: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``obj`` with ``value`` at ``path``; missing mappings on the way are created."""
    steps = parse(path)
    if not isinstance(steps[0], Key):
        raise FieldPathError(f"field path {path!r} must start with a key")
    result: dict[str, Any] = copy.deepcopy(dict(obj))
    current: Any = result
    for step, following in zip(steps, (*steps[1:], None), strict=True):
        if isinstance(step, Key):
            if not isinstance(current, dict):
                raise FieldPathError(f"field path {path!r}: {step.name!r} is under something that is not an object")
            if following is None:
                current[step.name] = value
                return result
            if current.get(step.name) is None:
                current[step.name] = {} if isinstance(following, Key) else []
            current = current[step.name]
        else:
            if not isinstance(current, list):
                raise FieldPathError(f"field path {path!r}: a list selector on something that is not a list")
            position = _item(current, step, path)
            if following is None:
                current[position] = value
                return result
            current = current[position]
    return result  # pragma: no cover - the loop returns at the last step
