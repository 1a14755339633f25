"""Drift: where a live object no longer says what git says, and the body that puts git back (overrides kept).

Pure. Only the fields the desired object declares are compared: those are the fields Upkeep owns
through server-side apply, and everything else on a live object (defaults, the status, fields other
managers own) is none of its business. The comparison follows what the API server does to a body:

- mappings are compared on the desired keys only;
- a list of mappings that all have a ``name`` (containers, env, volumes, ports) is matched by name,
  so a reordering is not drift, and items another manager added are left alone, as server-side
  apply leaves them; an item git declares that is missing is drift at ``[name=...]``;
- another list of mappings of the same length is compared item by item (server defaults such as a
  Service port's ``protocol`` must not read as drift); any other list is compared whole;
- values the API server rewrites are compared by meaning: quantities under ``resources.limits``,
  ``requests`` and the like (``500m`` is ``0.5``, ``1Gi`` is ``1024Mi``), an integer and the same
  number as a string (ports, int-or-string fields such as ``maxSurge``), and an empty mapping or
  list or a null that the server dropped;
- server-owned metadata (``gitops.diff.SERVER_METADATA``) is never compared.

A path is written in the syntax of ``engine.fieldpaths`` (``spec.template.spec.containers[name=shop].image``),
the one overrides use, so a drifted field and an override of it can be matched.

Overrides: a remediation (setOverride) holds a value git disagrees with until ``expiresAt``; the
Release's ``status.overrides`` records it. ``heal_body`` is desired with each active override's value
at its path, so self-heal re-applies the fix rather than reverting it; once the override expires,
the desired body alone applies git's value again.
"""

from __future__ import annotations

import copy
import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.engine import fieldpaths, quantities, sla
from upkeep.gitops import diff
from upkeep.model import paths

__all__ = [
    "QUANTITY_PARENTS",
    "FieldDrift",
    "ObjectKey",
    "Override",
    "covers",
    "drifted_fields",
    "heal_body",
    "overrides_for",
    "parse_overrides",
]

QUANTITY_PARENTS = frozenset(
    {
        "limits",
        "requests",
        "capacity",
        "allocatable",
        "hard",
        "overhead",
        "max",
        "min",
        "default",
        "defaultRequest",
        "maxLimitRequestRatio",
    }
)
"""Keys whose values are quantities the API server writes in its canonical form (resources, quotas,
LimitRanges); only there is ``1.10`` the same as ``1.1``, so a label or an image tag never is."""
_QUANTITY_KEYS = frozenset({"sizeLimit", "storage"})
"""Keys that are themselves quantities (``emptyDir.sizeLimit``)."""

_ABSENT: Any = diff.ABSENT


@dataclass(frozen=True)
class ObjectKey:
    """Which object: apiVersion, kind, namespace ("" when cluster-scoped or not given) and name."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectKey:
        metadata = obj.get("metadata") or {}
        return cls(
            str(obj.get("apiVersion") or ""),
            str(obj.get("kind") or ""),
            str(metadata.get("namespace") or ""),
            str(metadata.get("name") or ""),
        )

    @property
    def group(self) -> str:
        """The API group ("" for the core group): versions of one group name the same object."""
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    def matches(self, other: ObjectKey) -> bool:
        """Whether both name the same object; an unset apiVersion or namespace on either side matches any."""
        return (
            self.kind == other.kind
            and self.name == other.name
            and (not self.api_version or not other.api_version or self.group == other.group)
            and (not self.namespace or not other.namespace or self.namespace == other.namespace)
        )

    def to_dict(self) -> dict[str, str]:
        """The reference as ``status.drift[].object`` writes it (no namespace key when cluster-scoped)."""
        out = {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace, "name": self.name}
        return {key: value for key, value in out.items() if value or key in ("kind", "name")}

    def __str__(self) -> str:
        return "/".join(part for part in (self.kind, self.namespace, self.name) if part)


@dataclass(frozen=True)
class Override:
    """A value a remediation holds against git at one field of one object, until it expires."""

    id: str
    target: ObjectKey
    field_path: str
    value: Any
    expires_at: datetime.datetime

    def active(self, now: datetime.datetime) -> bool:
        """Whether the override still holds at ``now`` (it lapses at ``expires_at``)."""
        return now < self.expires_at


@dataclass(frozen=True)
class FieldDrift:
    """One drifted field: its path, git's value and the live one (None when the live object lacks it)."""

    path: str
    desired: Any
    live: Any


_NEVER = datetime.datetime.min.replace(tzinfo=datetime.UTC)


def parse_overrides(status_overrides: Any) -> list[Override]:
    """The overrides in a Release's ``status.overrides`` (the shape the playbook controller writes).

    An entry without an id, a target kind and name, or a readable field path cannot be honoured and
    is left out. An entry whose ``expiresAt`` cannot be read counts as expired: holding a value
    against git without a known end would never let git's value back.
    """
    found: list[Override] = []
    for entry in status_overrides if isinstance(status_overrides, list) else []:
        if not isinstance(entry, Mapping):
            continue
        target = entry.get("target")
        path = str(entry.get("fieldPath") or "")
        if not entry.get("id") or not isinstance(target, Mapping) or not target.get("kind") or not target.get("name"):
            continue
        try:
            fieldpaths.parse(path)
        except fieldpaths.FieldPathError:
            continue
        key = ObjectKey(
            str(target.get("apiVersion") or ""),
            str(target["kind"]),
            str(target.get("namespace") or ""),
            str(target["name"]),
        )
        expires = sla.parse_time(entry.get("expiresAt")) or _NEVER
        found.append(Override(str(entry["id"]), key, path, entry.get("value"), expires))
    return found


def overrides_for(obj: Mapping[str, Any], overrides: Iterable[Override]) -> list[Override]:
    """The overrides whose target is ``obj``."""
    key = ObjectKey.of(obj)
    return [override for override in overrides if override.target.matches(key)]


def covers(override_path: str, field_path: str) -> bool:
    """Whether an override at ``override_path`` holds ``field_path``: one path is within the other.

    An override of ``resources.limits`` holds ``resources.limits.memory``; a drift reported at a
    whole list holds an override inside it too.
    """
    try:
        held, field = fieldpaths.parse(override_path), fieldpaths.parse(field_path)
    except fieldpaths.FieldPathError:
        return False
    shorter = min(len(held), len(field))
    return held[:shorter] == field[:shorter]


def heal_body(desired: Mapping[str, Any], overrides_active_now: Iterable[Override]) -> dict[str, Any]:
    """The object to re-apply: ``desired`` with every active override of it at its path.

    An override whose path does not lead anywhere in ``desired`` (a container git no longer has)
    is skipped: there is nothing left of git's to hold it against.
    """
    body: dict[str, Any] = copy.deepcopy(dict(desired))
    for override in overrides_for(desired, overrides_active_now):
        try:
            body = fieldpaths.with_value(body, override.field_path, copy.deepcopy(override.value))
        except fieldpaths.FieldPathError:
            continue
    return body


def _join(at: str, key: str) -> str:
    formatted = paths.format_path((key,))
    if not at:
        return formatted
    return at + (formatted if formatted.startswith("[") else f".{formatted}")


def _integer_text(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _same_scalar(desired: Any, live: Any, key: str, parent: str) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    if desired == live:
        return True
    if isinstance(desired, int) and _integer_text(live) == desired:
        return True
    if isinstance(live, int) and _integer_text(desired) == live:
        return True
    if (parent in QUANTITY_PARENTS or key in _QUANTITY_KEYS) and isinstance(desired, str | int | float):
        if not isinstance(live, str | int | float):
            return False
        try:
            return quantities.amount(desired) == quantities.amount(live)
        except quantities.QuantityError:
            return False
    return False


def _missing(value: Any) -> bool:
    return value is _ABSENT or value is None


def _zero(value: Any) -> bool:
    """A value the API server leaves out of what it writes (Go's ``omitempty``): the same as not declaring it."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value == 0
    return isinstance(value, str) and not value


def _named(items: Sequence[Any]) -> dict[str, Any] | None:
    """Items keyed by ``name`` when every item is a mapping with a distinct string name, else None."""
    if not items or not all(isinstance(item, Mapping) and isinstance(item.get("name"), str) for item in items):
        return None
    keyed = {str(item["name"]): item for item in items}
    return keyed if len(keyed) == len(items) else None


def _same(desired: Any, live: Any, key: str, parent: str) -> bool:
    out: list[FieldDrift] = []
    _walk(desired, live, "", key, parent, out)
    return not out


def _walk(desired: Any, live: Any, at: str, key: str, parent: str, out: list[FieldDrift]) -> None:
    if desired is None or (isinstance(desired, Mapping) and not desired):
        return  # declares no value (server-side apply drops nulls) or only that the mapping exists
    if _missing(live):
        if not _zero(desired) and not (isinstance(desired, list) and not desired):
            out.append(FieldDrift(at, desired, None))
        return
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            out.append(FieldDrift(at, desired, live))
            return
        for child in sorted(desired, key=str):
            _walk(desired[child], live.get(child, _ABSENT), _join(at, str(child)), str(child), key, out)
        return
    if isinstance(desired, list):
        if not isinstance(live, list):
            out.append(FieldDrift(at, desired, live))
            return
        named = _named(desired)
        if named is not None:
            live_named = {
                str(item["name"]): item
                for item in live
                if isinstance(item, Mapping) and isinstance(item.get("name"), str)
            }
            for name in sorted(named):
                _walk(named[name], live_named.get(name, _ABSENT), f"{at}[name={name}]", key, parent, out)
            return
        if len(desired) == len(live) and all(isinstance(item, Mapping) for item in desired):
            for index, item in enumerate(desired):
                _walk(item, live[index], f"{at}[{index}]", key, parent, out)
            return
        if len(desired) != len(live) or not all(
            _same(mine, theirs, key, parent) for mine, theirs in zip(desired, live, strict=True)
        ):
            out.append(FieldDrift(at, desired, live))
        return
    if not _same_scalar(desired, live, key, parent):
        out.append(FieldDrift(at, desired, live))


def drifted_fields(desired: Mapping[str, Any], live: Mapping[str, Any]) -> list[FieldDrift]:
    """The fields ``desired`` declares whose live value differs in meaning, sorted by path."""
    out: list[FieldDrift] = []
    _walk(diff.declared(desired), diff.declared(live), "", "", "", out)
    return sorted(out, key=lambda drift: drift.path)
