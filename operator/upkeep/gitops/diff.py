"""Field-level diff between two sets of objects: what a change in git (or the cluster) changes.

Pure: no I/O, so drift detection, ``upkeep plan`` and the benchmark share one definition.
Mappings are compared key by key; a list whose items are all mappings with a ``name`` is
compared item by item by that name (containers, ports, env, volumes: reordering them is no
change, and a path like ``containers[name=web].image`` says which one changed); any other list
is compared by index. ``status`` and the metadata the API server writes (uid,
resourceVersion, managedFields...) are not declared state and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from upkeep.model import paths

__all__ = ["SERVER_METADATA", "FieldChange", "ObjectDiff", "declared", "diff_objects", "diff_sets"]

SERVER_METADATA = frozenset(
    {"uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "managedFields", "selfLink"}
)
"""Metadata fields the API server sets: never in git, so never a difference."""
_SERVER_ANNOTATIONS = frozenset(
    {"kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"}
)

Change = Literal["added", "removed", "changed"]
K = TypeVar("K")


class _Absent:
    """The value on the side where a field does not exist (distinct from an explicit null)."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: where, and its value before and after (ABSENT when not there)."""

    path: str
    old: Any
    new: Any

    @property
    def change(self) -> Change:
        if self.old is ABSENT:
            return "added"
        if self.new is ABSENT:
            return "removed"
        return "changed"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "change": self.change}
        if self.old is not ABSENT:
            out["old"] = self.old
        if self.new is not ABSENT:
            out["new"] = self.new
        return out


@dataclass(frozen=True)
class ObjectDiff:
    """One object that is added, removed or changed; ``fields`` lists the changes of a changed one."""

    key: Any
    change: Change
    fields: tuple[FieldChange, ...] = ()


def declared(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` without status and server-managed metadata: the part a manifest can declare."""
    out = {key: value for key, value in body.items() if key != "status"}
    metadata = out.get("metadata")
    if isinstance(metadata, Mapping):
        kept = {key: value for key, value in metadata.items() if key not in SERVER_METADATA}
        annotations = kept.get("annotations")
        if isinstance(annotations, Mapping):
            left = {key: value for key, value in annotations.items() if key not in _SERVER_ANNOTATIONS}
            if left:
                kept["annotations"] = left
            else:
                del kept["annotations"]
        out["metadata"] = kept
    return out


def _by_name(items: Sequence[Any]) -> dict[str, Any] | None:
    """The items keyed by ``name`` when every one is a mapping with a distinct string name, else None."""
    if not items or not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items):
        return None
    keyed = {str(item["name"]): item for item in items}
    return keyed if len(keyed) == len(items) else None


def _join(base: str, part: str | int) -> str:
    formatted = paths.format_path((part,))
    if not base:
        return formatted
    return base + (formatted if formatted.startswith("[") else f".{formatted}")


def _walk(old: Any, new: Any, at: str, out: list[FieldChange]) -> None:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new), key=str):
            _walk(old.get(key, ABSENT), new.get(key, ABSENT), _join(at, str(key)), out)
        return
    if isinstance(old, list) and isinstance(new, list):
        old_named, new_named = _by_name(old), _by_name(new)
        if old_named is not None and new_named is not None:
            for name in sorted(set(old_named) | set(new_named)):
                _walk(old_named.get(name, ABSENT), new_named.get(name, ABSENT), f"{at}[name={name}]", out)
            return
        for index in range(max(len(old), len(new))):
            _walk(
                old[index] if index < len(old) else ABSENT,
                new[index] if index < len(new) else ABSENT,
                f"{at}[{index}]",
                out,
            )
        return
    if old is ABSENT and new is ABSENT:
        return
    if type(old) is not type(new) or old != new:
        out.append(FieldChange(at, old, new))


def diff_objects(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The declared fields that differ between two versions of one object, sorted by path."""
    out: list[FieldChange] = []
    _walk(declared(old), declared(new), "", out)
    return tuple(out)


def diff_sets(old: Mapping[K, Mapping[str, Any]], new: Mapping[K, Mapping[str, Any]]) -> list[ObjectDiff]:
    """Objects added, removed and changed between two sets keyed alike; unchanged ones are left out."""
    out: list[ObjectDiff] = []
    for key in sorted(set(old) | set(new), key=str):
        if key not in old:
            out.append(ObjectDiff(key, "added"))
        elif key not in new:
            out.append(ObjectDiff(key, "removed"))
        else:
            fields = diff_objects(old[key], new[key])
            if fields:
                out.append(ObjectDiff(key, "changed", fields))
    return out
