"""Server-side apply and managedFields, as kube-apiserver's field manager keeps them.

A pure-Python rendering of k8s.io/apimachinery/pkg/util/managedfields over sigs.k8s.io/structured-merge-diff:

- ``apply`` merges an applied configuration (``application/apply-patch+yaml``) into the live object: it creates
  when there is none, removes what the manager applied before and no longer applies (unless another manager owns
  it), reports conflicts with other managers unless forced, and records the manager's fields.
- ``record_update`` records, for a create, update or non-apply patch, the fields the write changed as owned by
  its manager (and no longer by anyone else).
- ``fields_v1`` is the FieldsV1 set an apply of an object would record.

Field sets use Kubernetes' FieldsV1 encoding: ``f:<name>`` for object fields, ``k:{"name":"nginx"}`` for items of
lists of type map, ``v:"value"`` for items of sets, and ``".": {}`` where a node is owned as well as some of its
children. Atomic lists and atomic maps are single leaves; typed Kubernetes objects never produce the ``i:<index>``
element. The field manager never records apiVersion, kind, metadata.name, .namespace, .uid, .resourceVersion,
.generation, .creationTimestamp, .selfLink or .managedFields.

The shape of each field comes from ``semantics`` (see ``upkeep.sandbox.patching.ListSemantics``): lists are maps
keyed by ``map_keys`` (or by ``merge_key`` when the patch strategy is "merge"), sets (strategy "merge" without a
key), or atomic; objects are granular unless ``map_type`` is "atomic".

Results share unchanged subtrees with the arguments, which are never changed; the result's top-level mapping and
its ``metadata`` mapping are new objects. Callers must not change stored objects in place either: decoded
managedFields are cached by the identity of their FieldsV1 mappings.

Error hierarchy::

    FieldManagerError   the request cannot be processed; carries the Status code, reason and message

Conflicts are not errors: ``apply`` returns them, and ``conflict_status_message`` and ``conflict_causes`` build the
409 Status the API server sends.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import unicodedata
import weakref
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from upkeep.sandbox import patching

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "ApplyResult",
    "Conflict",
    "FieldManagerError",
    "apply",
    "conflict_causes",
    "conflict_status_message",
    "fields_v1",
    "manager_from_user_agent",
    "record_update",
]

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
"""The annotation of kubectl's client-side apply; a server-side apply by manager "kubectl" keeps it current."""

MAX_UPDATE_MANAGERS = 10
"""Update managers kept apart; older ones are merged into "ancient-changes" (DefaultMaxUpdateManagers)."""

FIELD_MANAGER_MAX_LENGTH = 128
"""Bytes of a field manager name (validation.FieldManagerMaxLength)."""

_ANNOTATIONS_MAX_BYTES = 256 * 1024
_BEFORE_FIRST_APPLY = "before-first-apply"
_ANCIENT_CHANGES = "ancient-changes"
_CURRENT_OPERATION = "current-operation"
_MISSING: Any = object()


class FieldManagerError(Exception):
    """A request the field manager refuses, with the Status the API server answers with."""

    def __init__(self, message: str, *, code: int, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.reason = reason


def _bad_request(message: str) -> FieldManagerError:
    return FieldManagerError(message, code=400, reason="BadRequest")


def _internal(message: str) -> FieldManagerError:
    return FieldManagerError(message, code=500, reason="")


@dataclass(frozen=True)
class Conflict:
    """A field the applier would change that another manager owns."""

    manager: str
    field: str
    """The field path as the API server prints it: ``.spec.replicas``, ``.spec.containers[name="nginx"].image``."""
    operation: str = "Update"
    api_version: str = ""
    subresource: str = ""

    @property
    def manager_label(self) -> str:
        """The manager as conflict messages name it: ``"kubectl" with subresource "scale" using apps/v1``."""
        label = _go_quote(self.manager)
        if self.subresource:
            label = f"{label} with subresource {_go_quote(self.subresource)}"
        if self.operation == "Update":
            return f"{label} using {self.api_version}"
        return label

    @property
    def message(self) -> str:
        return f"conflict with {self.manager_label}"

    @property
    def _identifier(self) -> str:
        return _identifier(self.manager, self.operation, self.api_version, self.subresource)


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of a server-side apply: the new object, or the conflicts that stopped it."""

    obj: dict[str, Any] | None
    """The object to store (with managedFields), or None when there are conflicts."""
    conflicts: tuple[Conflict, ...] = ()


def conflict_status_message(conflicts: Collection[Conflict]) -> str:
    """The message of the 409 Status for apply conflicts, worded as kube-apiserver words it."""
    ordered = list(conflicts)
    if len(ordered) == 1:
        return f"Apply failed with 1 conflict: {ordered[0].message}: {ordered[0].field}"
    by_manager: dict[str, list[Conflict]] = {}
    for conflict in ordered:
        by_manager.setdefault(conflict._identifier, []).append(conflict)
    lines = []
    for identifier in sorted(by_manager):
        group = by_manager[identifier]
        lines.append(f"conflicts with {group[0].manager_label}:")
        lines.extend(f"- {conflict.field}" for conflict in group)
    return f"Apply failed with {len(ordered)} conflicts: " + "\n".join(lines)


def conflict_causes(conflicts: Collection[Conflict]) -> list[dict[str, str]]:
    """The ``details.causes`` of the 409 Status: one FieldManagerConflict cause per conflict."""
    return [
        {"reason": "FieldManagerConflict", "message": conflict.message, "field": conflict.field}
        for conflict in conflicts
    ]


def manager_from_user_agent(user_agent: str) -> str:
    """The field manager kube-apiserver derives from a User-Agent when the request names none.

    The part before the first "/", without unprintable characters, cut to 128 bytes: "kubectl/v1.37.0 (linux/amd64)
    kubernetes/abc" gives "kubectl", "OpenAPI-Generator/33.1.0/python" gives "OpenAPI-Generator".
    """
    out = []
    size = 0
    for char in user_agent.split("/", 1)[0]:
        if char != " " and unicodedata.category(char)[0] not in "LMNPS":  # Go's unicode.IsPrint
            continue
        width = len(char.encode())
        if size + width > FIELD_MANAGER_MAX_LENGTH:
            break
        out.append(char)
        size += width
    return "".join(out)


# --- JSON as Go writes it ------------------------------------------------------------------------------------


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _go_json(value: Any) -> str:
    """Compact JSON as encoding/json writes it: sorted keys, HTML characters escaped, Go's float format."""
    if isinstance(value, str):
        return _go_json_string(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_json_float(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_json_string(key)}:{_go_json(value[key])}" for key in sorted(value)) + "}"
    return "[" + ",".join(_go_json(item) for item in value) + "]"


@functools.lru_cache(maxsize=65536)
def _go_json_string(text: str) -> str:
    encoded = json.dumps(text, ensure_ascii=False)
    if any(char in text for char in "<>&\u2028\u2029"):
        encoded = (
            encoded.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return encoded


def _go_json_float(number: float) -> str:
    """A float as encoding/json writes it: shortest digits, plain from 1e-6 to 1e21, else "1e+21" or "1e-7"."""
    if not math.isfinite(number):
        return "null"
    if number == 0:
        return "0"
    exact = Decimal(repr(number))
    if 1e-6 <= abs(number) < 1e21:
        text = format(exact, "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    mantissa, _, exponent = format(exact.normalize(), "e").partition("e")
    power = int(exponent)
    return f"{mantissa}e-{-power}" if power < 0 else f"{mantissa}e+{power:02d}"


def _to_string(value: Any) -> str:
    """A key or set value as structured-merge-diff prints it inside a field path."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _go_quote(value)
    if isinstance(value, float):
        return str(int(value)) if value == int(value) and abs(value) < 1e21 else repr(value)
    if isinstance(value, list):
        return "[" + ",".join(_to_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "".join(f"{key}={_to_string(value[key])}" for key in sorted(value))
    return str(value)


# --- path elements -------------------------------------------------------------------------------------------
# A path element is kept as its FieldsV1 key: "f:name", 'k:{"name":"x"}', 'v:"x"', "i:0".


class _TypedError(Exception):
    """An object that does not fit its schema, worded as structured-merge-diff words it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.path = ""
        self.message = message

    def under(self, element: str) -> _TypedError:
        self.path = _pe_display(element) + self.path
        return self

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _DecodeError(Exception):
    pass


@functools.lru_cache(maxsize=65536)
def _pe_display(element: str) -> str:
    kind, text = element[0], element[2:]
    if kind == "f":
        return "." + text
    if kind == "k":
        fields = json.loads(text)
        return "[" + ",".join(f"{name}={_to_string(fields[name])}" for name in fields) + "]"
    if kind == "v":
        return f"[={_to_string(json.loads(text))}]"
    return f"[{text}]"


def _path_display(path: tuple[str, ...]) -> str:
    return "".join(_pe_display(element) for element in path)


def _value_order(value: Any) -> tuple[Any, ...]:
    """A sort key following structured-merge-diff's total order of values."""
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    if isinstance(value, list):
        return (3, tuple(_value_order(item) for item in value))
    if isinstance(value, dict):
        return (4, tuple((key, _value_order(value[key])) for key in sorted(value)))
    return (5,)


@functools.lru_cache(maxsize=65536)
def _pe_order(element: str) -> tuple[Any, ...]:
    kind, text = element[0], element[2:]
    if kind == "f":
        return (0, text)
    if kind == "k":
        fields = json.loads(text)
        return (1, tuple((name, _value_order(fields[name])) for name in fields))
    if kind == "v":
        return (2, _value_order(json.loads(text)))
    return (3, int(text))


@functools.lru_cache(maxsize=65536)
def _canonical_pe(raw: str) -> str | None:
    """A FieldsV1 key in canonical form, None for an element type this version does not know."""
    if len(raw) < 2:
        raise _DecodeError("key must be 2 characters long:")
    if raw[1] != ":":
        raise _DecodeError(f"missing colon: {raw}")
    kind, text = raw[0], raw[2:]
    try:
        if kind == "f":
            return raw
        if kind == "k":
            fields = json.loads(text)
            if not isinstance(fields, dict):
                raise _DecodeError(f"parsing key as path element: expected an object in {raw}")
            return (
                "k:{" + ",".join(f"{_go_json_string(name)}:{_go_json(fields[name])}" for name in sorted(fields)) + "}"
            )
        if kind == "v":
            return "v:" + _go_json(json.loads(text))
        if kind == "i":
            return f"i:{int(text)}"
    except ValueError as error:
        raise _DecodeError(f"parsing key as path element: {error}") from None
    return None


# --- field sets ----------------------------------------------------------------------------------------------


class _Set:
    """A set of field paths: a trie whose nodes list member elements and child subsets (never empty ones).

    Treated as immutable once built; operations return ``self`` when they change nothing.
    """

    __slots__ = ("children", "members")

    def __init__(self, members: set[str] | None = None, children: dict[str, _Set] | None = None) -> None:
        self.members: set[str] = members if members is not None else set()
        self.children: dict[str, _Set] = children if children is not None else {}

    def empty(self) -> bool:
        return not self.members and not self.children

    def insert(self, path: tuple[str, ...]) -> None:
        if not path:
            return
        node = self
        for element in path[:-1]:
            child = node.children.get(element)
            if child is None:
                child = node.children[element] = _Set()
            node = child
        node.members.add(path[-1])

    def has(self, path: tuple[str, ...]) -> bool:
        if not path:
            return False
        node: _Set | None = self
        for element in path[:-1]:
            node = node.children.get(element) if node is not None else None
        return node is not None and path[-1] in node.members

    def union(self, other: _Set) -> _Set:
        if other.empty():
            return self
        if self.empty():
            return other
        children = dict(self.children)
        for element, child in other.children.items():
            mine = children.get(element)
            children[element] = child if mine is None else mine.union(child)
        return _Set(self.members | other.members, children)

    def intersection(self, other: _Set) -> _Set:
        members = self.members & other.members
        children = {}
        for element, child in self.children.items():
            theirs = other.children.get(element)
            if theirs is not None:
                common = child.intersection(theirs)
                if not common.empty():
                    children[element] = common
        return _Set(members, children)

    def difference(self, other: _Set) -> _Set:
        """Paths of this set that are not paths of ``other`` (a member removes only itself, not its children)."""
        if other.empty() or self.empty():
            return self
        changed = not self.members.isdisjoint(other.members)
        members = self.members - other.members if changed else self.members
        children = self.children
        for element, theirs in other.children.items():
            mine = self.children.get(element)
            if mine is None:
                continue
            rest = mine.difference(theirs)
            if rest is mine:
                continue
            if children is self.children:
                children = dict(self.children)
            if rest.empty():
                del children[element]
            else:
                children[element] = rest
        if not changed and children is self.children:
            return self
        return _Set(members, children)

    def recursive_difference(self, other: _Set) -> _Set:
        """Paths of this set that are neither paths of ``other`` nor below a member of ``other``."""
        if other.empty() or self.empty():
            return self
        members = self.members - other.members
        children = {}
        for element, mine in self.children.items():
            if element in other.members:
                continue
            theirs = other.children.get(element)
            rest = mine if theirs is None else mine.recursive_difference(theirs)
            if not rest.empty():
                children[element] = rest
        unchanged = len(members) == len(self.members) and children.keys() == self.children.keys()
        if unchanged and all(children[element] is self.children[element] for element in children):
            return self
        return _Set(members, children)

    def paths(self, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
        """Every path, in structured-merge-diff's order: members first, then children, each sorted."""
        for element in sorted(self.members, key=_pe_order):
            yield (*prefix, element)
        for element in sorted(self.children, key=_pe_order):
            yield from self.children[element].paths((*prefix, element))

    def to_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        elements = self.members | self.children.keys()
        if all(element[0] == "f" for element in elements):  # field names sort as plain strings
            ordered = sorted(elements)
        else:
            ordered = sorted(elements, key=_pe_order)
        for element in ordered:
            child = self.children.get(element)
            if child is None:
                out[element] = {}
            elif element in self.members:
                out[element] = {".": {}, **child.to_fields()}
            else:
                out[element] = child.to_fields()
        return out

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> _Set:
        out = cls()
        for raw, value in fields.items():
            if raw == ".":
                continue
            element = _canonical_pe(raw)
            if element is None:
                continue
            if not isinstance(value, dict):
                raise _DecodeError(f"expected an object for {raw}")
            child = cls.from_fields(value)
            if "." in value or child.empty():
                out.members.add(element)
            if not child.empty():
                out.children[element] = child
        return out

    @classmethod
    def of_paths(cls, paths: Collection[tuple[str, ...]]) -> _Set:
        out = cls()
        for path in paths:
            out.insert(tuple("f:" + name for name in path))
        return out


_EMPTY = _Set()
_STRIPPED = _Set(
    {"f:apiVersion", "f:kind", "f:metadata"},
    {
        "f:metadata": _Set(
            {
                "f:name",
                "f:namespace",
                "f:creationTimestamp",
                "f:selfLink",
                "f:uid",
                "f:clusterName",
                "f:generation",
                "f:managedFields",
                "f:resourceVersion",
            }
        )
    },
)


# --- schema --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ListShape:
    kind: str  # "atomic", "set" or "map"
    keys: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()


_ATOMIC_LIST = _ListShape("atomic")
_WELL_KNOWN_KEY_DEFAULTS = (("protocol", "TCP"),)
"""Used when the semantics give no key defaults: ports of containers and services are keyed by (port, protocol)
and their OpenAPI schema defaults protocol to TCP."""


def _shape_of(semantics: patching.ListSemantics) -> _ListShape:
    list_type = semantics.list_type
    if list_type == "map":
        if not semantics.map_keys:
            return _ATOMIC_LIST
        defaults = semantics.key_defaults or tuple(
            (name, value) for name, value in _WELL_KNOWN_KEY_DEFAULTS if name in semantics.map_keys
        )
        return _ListShape("map", tuple(semantics.map_keys), defaults)
    if list_type == "set":
        return _ListShape("set")
    if list_type:
        return _ATOMIC_LIST
    if semantics.patch_strategy in ("merge", "merge,retainKeys"):
        if semantics.merge_key:
            return _ListShape("map", (semantics.merge_key,), semantics.key_defaults)
        return _ListShape("set")
    return _ATOMIC_LIST


class _Schema:
    """One request's view of a semantics callable, with its answers cached across requests."""

    __slots__ = ("_fields", "_lists", "_semantics")

    def __init__(
        self,
        semantics: patching.Semantics,
        fields: dict[tuple[str, ...], patching.ListSemantics],
        lists: dict[tuple[str, ...], _ListShape],
    ) -> None:
        self._semantics = semantics
        self._fields = fields
        self._lists = lists

    def at(self, path: tuple[str, ...]) -> patching.ListSemantics:
        found = self._fields.get(path)
        if found is None:
            if len(self._fields) >= _SCHEMA_CACHE_LIMIT:  # free-form keys (labels, data) are unbounded
                self._fields.clear()
                self._lists.clear()
            found = self._fields[path] = self._semantics(path)
        return found

    def list_shape(self, path: tuple[str, ...]) -> _ListShape:
        found = self._lists.get(path)
        if found is None:
            found = self._lists[path] = _shape_of(self.at(path))
        return found

    def atomic_map(self, path: tuple[str, ...]) -> bool:
        return self.at(path).map_type == "atomic"

    def free_form(self, path: tuple[str, ...]) -> bool:
        return self.at(path).free_form


_SCHEMA_CACHE_LIMIT = 50_000
_Caches = tuple[dict[tuple[str, ...], patching.ListSemantics], dict[tuple[str, ...], _ListShape]]
_SCHEMA_CACHES: weakref.WeakKeyDictionary[Any, _Caches] = weakref.WeakKeyDictionary()
"""The answers of each semantics callable, kept as long as the callable lives (it must keep its answers)."""


def _schema_for(semantics: patching.Semantics) -> _Schema:
    try:
        caches = _SCHEMA_CACHES.get(semantics)
        if caches is None:
            caches = _SCHEMA_CACHES[semantics] = ({}, {})
    except TypeError:  # not weakly referenceable: cache for this request only
        caches = ({}, {})
    return _Schema(semantics, *caches)


def _item_element(item: Any, shape: _ListShape) -> str:
    if shape.kind == "map":
        if item is None:
            raise _TypedError("associative list with keys may not have a null element")
        if not isinstance(item, dict):
            raise _TypedError("associative list with keys may not have non-map elements")
        defaults = dict(shape.defaults)
        parts = []
        for name in sorted(shape.keys):
            if name in item:
                parts.append(f"{_go_json_string(name)}:{_go_json(item[name])}")
            elif defaults.get(name) is not None:
                parts.append(f"{_go_json_string(name)}:{_go_json(defaults[name])}")
        if not parts:
            keys = " ".join(_go_quote(name) for name in shape.keys)
            raise _TypedError(
                f"associative list with keys has an element that omits all key fields [{keys}] "
                "(and doesn't have default values for any key fields)"
            )
        return "k:{" + ",".join(parts) + "}"
    if isinstance(item, dict):
        raise _TypedError("associative list without keys has an element that's a map type")
    if isinstance(item, list):
        raise _TypedError("not supported: associative list with lists as elements")
    if item is None:
        raise _TypedError("associative list without keys has an element that's an explicit null")
    return "v:" + _go_json(item)


def _item_elements(items: list[Any], shape: _ListShape) -> list[str]:
    elements = []
    for index, item in enumerate(items):
        try:
            elements.append(_item_element(item, shape))
        except _TypedError as error:
            raise _TypedError(f"element {index}: {error.message}") from None
    return elements


# --- the field set of a value (typed.TypedValue.ToFieldSet) ----------------------------------------------------


def _field_set(value: Mapping[str, Any], schema: _Schema, *, allow_duplicates: bool = True) -> _Set:
    return _fields_below(value, (), schema, allow_duplicates) or _Set()


def _fields_below(value: Any, keys: tuple[str, ...], schema: _Schema, allow_duplicates: bool) -> _Set | None:
    """The paths below a node (relative to it); the node itself is owned when it is a leaf (None returned)."""
    if isinstance(value, dict):
        if schema.atomic_map(keys):
            return None
        out = _Set()
        free = schema.free_form(keys)
        for name, child in value.items():
            element = "f:" + name
            try:
                below = _fields_below(child, (*keys, name), schema, allow_duplicates)
            except _TypedError as error:
                raise error.under(element) from None
            if below is None:
                out.members.add(element)
            else:
                if not below.empty():
                    out.children[element] = below
                if free or (isinstance(child, dict) and not child):
                    out.members.add(element)
        return out
    if isinstance(value, list):
        shape = schema.list_shape(keys)
        if shape.kind == "atomic":
            return None
        out = _Set()
        elements = _item_elements(value, shape)
        seen: set[str] = set()
        duplicates: set[str] = set()
        for element in elements:
            if element in seen:
                if not allow_duplicates:
                    raise _TypedError(f"duplicate entries for key {_pe_display(element)}")
                duplicates.add(element)
            seen.add(element)
        for item, element in zip(value, elements, strict=True):
            out.members.add(element)
            if element in duplicates:
                continue
            try:
                below = _fields_below(item, keys, schema, allow_duplicates)
            except _TypedError as error:
                raise error.under(element) from None
            if below is not None and not below.empty():
                out.children[element] = below
        return out
    return None


def _ensure_named(fields: _Set, keys: tuple[str, ...], schema: _Schema) -> _Set:
    """The set with every declared object field that has owned children made a member too."""
    if not fields.children:
        return fields
    declared = not schema.free_form(keys)
    members = set(fields.members)
    children = {}
    for element, child in fields.children.items():
        if element[0] == "f":
            if declared:
                members.add(element)
            children[element] = _ensure_named(child, (*keys, element[2:]), schema)
        else:
            children[element] = _ensure_named(child, keys, schema)
    return _Set(members, children)


# --- comparison (typed.TypedValue.Compare) ---------------------------------------------------------------------


class _Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = _Set()
        self.modified = _Set()
        self.removed = _Set()

    def changed(self) -> _Set:
        return self.modified.union(self.added)

    def excluding(self, ignored: _Set) -> _Comparison:
        if ignored.empty():
            return self
        out = _Comparison()
        out.added = self.added.recursive_difference(ignored)
        out.modified = self.modified.recursive_difference(ignored)
        out.removed = self.removed.recursive_difference(ignored)
        return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


_Diff = tuple[str, "_Set | None", "_Set | None", "_Set | None"]
"""How a node changed: its own flag ("A" added, "R" removed, "M" modified, "" none) and the added, modified and
removed paths below it (relative to it)."""
_UNCHANGED: _Diff = ("", None, None, None)


class _DiffBuilder:
    """The added, modified and removed paths below one node, collected from its children."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: _Set | None = None
        self.modified: _Set | None = None
        self.removed: _Set | None = None

    def attach(self, element: str, diff: _Diff) -> None:
        flag, added, modified, removed = diff
        if flag == "A" or added is not None:
            self.added = _attach(self.added, element, flag == "A", added)
        if flag == "M" or modified is not None:
            self.modified = _attach(self.modified, element, flag == "M", modified)
        if flag == "R" or removed is not None:
            self.removed = _attach(self.removed, element, flag == "R", removed)

    def result(self, flag: str = "") -> _Diff:
        return (flag, self.added, self.modified, self.removed)


def _attach(into: _Set | None, element: str, member: bool, below: _Set | None) -> _Set:
    if into is None:
        into = _Set()
    if member:
        into.members.add(element)
    if below is not None and not below.empty():
        existing = into.children.get(element)
        into.children[element] = below if existing is None else existing.union(below)
    return into


def _all_paths(value: Any, keys: tuple[str, ...], schema: _Schema) -> _Set | None:
    """Every path below a node that is added or removed as a whole (None for a leaf)."""
    if isinstance(value, dict):
        if not value or schema.atomic_map(keys):
            return None
        out = _Set()
        for name, child in value.items():
            element = "f:" + name
            out.members.add(element)
            if child and isinstance(child, dict | list):
                try:
                    below = _all_paths(child, (*keys, name), schema)
                except _TypedError as error:
                    raise error.under(element) from None
                if below is not None:
                    out.children[element] = below
        return out
    if isinstance(value, list):
        if not value:
            return None
        shape = schema.list_shape(keys)
        if shape.kind == "atomic":
            return None
        elements = _item_elements(value, shape)
        repeated = _repeated(elements)
        out = _Set()
        for element, item in zip(elements, value, strict=True):
            out.members.add(element)
            if item and isinstance(item, dict | list) and element not in repeated:
                try:
                    below = _all_paths(item, keys, schema)
                except _TypedError as error:
                    raise error.under(element) from None
                if below is not None:
                    out.children[element] = below
        return out
    return None


def _repeated(elements: list[str]) -> set[str]:
    if len(set(elements)) == len(elements):
        return set()
    seen: set[str] = set()
    repeated = set()
    for element in elements:
        if element in seen:
            repeated.add(element)
        seen.add(element)
    return repeated


def _compare(lhs: Mapping[str, Any], rhs: Mapping[str, Any], schema: _Schema) -> _Comparison:
    _, added, modified, removed = _diff(lhs, rhs, (), schema)
    out = _Comparison()
    out.added = added or _Set()
    out.modified = modified or _Set()
    out.removed = removed or _Set()
    return out


def _diff(lhs: Any, rhs: Any, keys: tuple[str, ...], schema: _Schema) -> _Diff:
    """How a node changed from ``lhs`` to ``rhs`` (either may be _MISSING), as typed.TypedValue.Compare sees it."""
    if lhs is _MISSING:
        return ("A", _all_paths(rhs, keys, schema), None, None)
    if rhs is _MISSING:
        return ("R", None, None, _all_paths(lhs, keys, schema))
    if lhs is rhs or lhs == rhs:
        return _UNCHANGED
    left_kind = _kind(lhs)
    right_kind = _kind(rhs)
    if left_kind == right_kind or lhs is None:
        return _diff_as(right_kind, lhs, rhs, keys, schema)
    if rhs is None:
        return _diff_as(left_kind, lhs, rhs, keys, schema)
    # a field that changed shape: compared once as each shape (the object's fields removed, the list's added...)
    first = _diff_as(left_kind, lhs, rhs, keys, schema)
    second = _diff_as(right_kind, lhs, rhs, keys, schema)
    builder = _DiffBuilder()
    builder.added, builder.modified, builder.removed = first[1], first[2], first[3]
    for mine, theirs, slot in ((first[1], second[1], "added"), (first[2], second[2], "modified")):
        if theirs is not None:
            setattr(builder, slot, theirs if mine is None else mine.union(theirs))
    if second[3] is not None:
        builder.removed = second[3] if first[3] is None else first[3].union(second[3])
    return builder.result("M" if "M" in (first[0], second[0]) else "")


def _diff_as(kind: str, lhs: Any, rhs: Any, keys: tuple[str, ...], schema: _Schema) -> _Diff:
    """The comparison of two present, different values seen as one shape (the other side, if not, as nothing)."""
    if kind == "map":
        left = lhs if isinstance(lhs, dict) else None
        right = rhs if isinstance(rhs, dict) else None
        if (not left and not right) or schema.atomic_map(keys):
            return ("M", None, None, None)
        builder = _DiffBuilder()
        for name in {**(left or {}), **(right or {})}:
            element = "f:" + name
            try:
                child = _diff(
                    left.get(name, _MISSING) if left else _MISSING,
                    right.get(name, _MISSING) if right else _MISSING,
                    (*keys, name),
                    schema,
                )
            except _TypedError as error:
                raise error.under(element) from None
            if child is not _UNCHANGED:
                builder.attach(element, child)
        return builder.result()
    if kind == "list":
        left_list = lhs if isinstance(lhs, list) else None
        right_list = rhs if isinstance(rhs, list) else None
        shape = schema.list_shape(keys)
        if (not left_list and not right_list) or shape.kind == "atomic":
            return ("M", None, None, None)
        return _diff_items(left_list or [], right_list or [], shape, keys, schema)
    return ("M", None, None, None)


def _diff_items(lhs: list[Any], rhs: list[Any], shape: _ListShape, keys: tuple[str, ...], schema: _Schema) -> _Diff:
    left: dict[str, list[Any]] = {}
    for element, item in zip(_item_elements(lhs, shape), lhs, strict=True):
        left.setdefault(element, []).append(item)
    right: dict[str, list[Any]] = {}
    for element, item in zip(_item_elements(rhs, shape), rhs, strict=True):
        right.setdefault(element, []).append(item)
    builder = _DiffBuilder()
    for element in {**left, **right}:
        left_items = left.get(element, [])
        right_items = right.get(element, [])
        try:
            if len(left_items) <= 1 and len(right_items) <= 1:
                child = _diff(
                    left_items[0] if left_items else _MISSING,
                    right_items[0] if right_items else _MISSING,
                    keys,
                    schema,
                )
                if child is not _UNCHANGED:
                    builder.attach(element, child)
            elif len(left_items) >= 2 and len(right_items) >= 2:
                if left_items != right_items:
                    builder.attach(element, ("M", None, None, None))
            elif len(left_items) >= 2:
                if right_items:
                    builder.attach(element, _diff(_MISSING, right_items[0], keys, schema))
                builder.attach(element, ("R", None, None, None))
            else:
                if left_items:
                    builder.attach(element, _diff(left_items[0], _MISSING, keys, schema))
                builder.attach(element, ("A", None, None, None))
        except _TypedError as error:
            raise error.under(element) from None
    return builder.result()


def _compare_created(value: Mapping[str, Any], schema: _Schema) -> _Comparison:
    """The comparison of a new object with the empty object of its type.

    kube-apiserver compares a created object with the Go zero value of its type, where nested structs exist but
    lists, maps and pointers do not: objects outside list items count as already there (no "." for them) unless
    they are empty, free-form (labels, annotations) or atomic.
    """
    out = _Comparison()
    out.added = _created(value, (), schema)
    return out


def _created(value: Mapping[str, Any], keys: tuple[str, ...], schema: _Schema) -> _Set:
    out = _Set()
    for name, child in value.items():
        element = "f:" + name
        child_keys = (*keys, name)
        below: _Set | None
        try:
            if (
                isinstance(child, dict)
                and child
                and not schema.free_form(child_keys)
                and not schema.atomic_map(child_keys)
            ):
                below = _created(child, child_keys, schema)
            else:
                out.members.add(element)
                below = _all_paths(child, child_keys, schema) if child and isinstance(child, dict | list) else None
        except _TypedError as error:
            raise error.under(element) from None
        if below is not None and not below.empty():
            out.children[element] = below
    return out


# --- merging an applied configuration (typed.TypedValue.Merge) ---------------------------------------------------


def _merge(lhs: Any, rhs: Any, keys: tuple[str, ...], schema: _Schema) -> Any:
    if rhs is _MISSING:
        return lhs
    if lhs is _MISSING:
        return rhs
    if rhs is None and isinstance(lhs, dict | list) and lhs:
        # an applied null leaves a live object or list as it is; only the ownership is recorded
        atomic = schema.atomic_map(keys) if isinstance(lhs, dict) else schema.list_shape(keys).kind == "atomic"
        return rhs if atomic else lhs
    if isinstance(lhs, dict) and isinstance(rhs, dict):
        if schema.atomic_map(keys) or (not lhs and not rhs):
            return rhs
        out = dict(lhs)
        for name, value in rhs.items():
            out[name] = _merge(lhs.get(name, _MISSING), value, (*keys, name), schema)
        return out
    if isinstance(lhs, list) and isinstance(rhs, list):
        shape = schema.list_shape(keys)
        if shape.kind == "atomic" or (not lhs and not rhs):
            return rhs
        return _merge_items(lhs, rhs, shape, keys, schema)
    return rhs


def _merge_items(
    lhs: list[Any], rhs: list[Any], shape: _ListShape, keys: tuple[str, ...], schema: _Schema
) -> list[Any]:
    rhs_elements = _item_elements(rhs, shape)
    observed_rhs = dict(zip(rhs_elements, rhs, strict=True))
    lhs_elements = _item_elements(lhs, shape)
    observed_lhs: dict[str, Any] = {}
    for element, item in zip(lhs_elements, lhs, strict=True):
        # duplicated items of the live list are not merged with the applied one
        observed_lhs[element] = None if element in observed_lhs else item
    shared = [element for element in rhs_elements if element in observed_lhs]
    shared.reverse()
    next_shared = shared.pop() if shared else None
    merged_rhs: set[str] = set()
    out = []
    left = right = 0
    while left < len(lhs_elements) or right < len(rhs_elements):
        if left < len(lhs_elements) and right < len(rhs_elements):
            element = lhs_elements[left]
            if element == rhs_elements[right]:
                merged_rhs.add(element)
                out.append(_merge(observed_lhs[element], observed_rhs[element], keys, schema))
                left += 1
                right += 1
                next_shared = shared.pop() if shared else None
                continue
            if element in observed_rhs and next_shared is not None and next_shared != element:
                left += 1
                continue
        if left < len(lhs_elements):
            element = lhs_elements[left]
            if element not in observed_rhs:
                out.append(lhs[left])
                left += 1
                continue
            if element in merged_rhs:
                left += 1
        if right < len(rhs_elements):
            element = rhs_elements[right]
            merged_rhs.add(element)
            out.append(_merge(observed_lhs.get(element, _MISSING), observed_rhs[element], keys, schema))
            right += 1
            if next_shared is not None and next_shared == element:
                next_shared = shared.pop() if shared else None
    return out


# --- removing owned items (typed.TypedValue.RemoveItems) ---------------------------------------------------------


def _remove(value: Any, doomed: _Set, keys: tuple[str, ...], schema: _Schema) -> Any:
    """The value without the paths of ``doomed``; _MISSING where a container is left with nothing."""
    if isinstance(value, dict):
        if not value or schema.atomic_map(keys):
            return _MISSING
        out = {}
        for name, child in value.items():
            element = "f:" + name
            if element in doomed.members:
                continue
            below = doomed.children.get(element)
            kept = child if below is None else _remove(child, below, (*keys, name), schema)
            if kept is not _MISSING:
                out[name] = kept
        return out or _MISSING
    if isinstance(value, list):
        shape = schema.list_shape(keys)
        if not value or shape.kind == "atomic":
            return _MISSING
        items = []
        for item in value:
            try:
                element = _item_element(item, shape)
            except _TypedError:
                items.append(item)
                continue
            if element in doomed.members:
                continue
            below = doomed.children.get(element)
            kept = item if below is None else _remove(item, below, keys, schema)
            items.append({} if kept is _MISSING else kept)
        return items or _MISSING
    return value


def _remove_root(value: Mapping[str, Any], doomed: _Set, schema: _Schema) -> dict[str, Any]:
    if doomed.empty():
        return dict(value)
    out = _remove(dict(value), doomed, (), schema)
    return {} if out is _MISSING else dict(out)


# --- managers and their managedFields entries --------------------------------------------------------------------


@dataclass(frozen=True)
class _Manager:
    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: _Set
    time: str | None = None
    entry: Mapping[str, Any] | None = None
    """The entry this record was decoded from, reused as long as nothing changed."""

    @property
    def applied(self) -> bool:
        return self.operation == "Apply"

    def with_fields(self, fields: _Set) -> _Manager:
        if fields is self.fields:
            return self
        return dataclasses.replace(self, fields=fields, entry=None)

    def with_time(self, time: str | None) -> _Manager:
        if time == self.time:
            return self
        return dataclasses.replace(self, time=time, entry=None)


def _identifier(manager: str, operation: str, api_version: str, subresource: str) -> str:
    """The key kube-apiserver gives a manager: its entry's JSON without fields, time, and (for Apply) apiVersion."""
    parts = []
    if manager:
        parts.append(f'"manager":{_go_json_string(manager)}')
    if operation:
        parts.append(f'"operation":{_go_json_string(operation)}')
    if api_version and operation != "Apply":
        parts.append(f'"apiVersion":{_go_json_string(api_version)}')
    if subresource:
        parts.append(f'"subresource":{_go_json_string(subresource)}')
    return "{" + ",".join(parts) + "}"


def _key(record: _Manager) -> str:
    return _identifier(record.manager, record.operation, record.api_version, record.subresource)


_DECODED: dict[int, tuple[Mapping[str, Any], _Set]] = {}
"""FieldsV1 mappings seen, by identity, with their sets: stored objects are not changed in place, so the same
mapping always decodes to the same set, and decoding is the costly part of every write."""
_DECODED_LIMIT = 8192


def _remember(fields: Mapping[str, Any], decoded: _Set) -> None:
    if len(_DECODED) >= _DECODED_LIMIT:
        for stale in list(_DECODED)[: _DECODED_LIMIT // 4]:
            del _DECODED[stale]
    _DECODED[id(fields)] = (fields, decoded)


def _decode_fields(fields: Mapping[str, Any]) -> _Set:
    cached = _DECODED.get(id(fields))
    if cached is not None and cached[0] is fields:
        return cached[1]
    decoded = _Set.from_fields(fields)
    _remember(fields, decoded)
    return decoded


def _decode_managers(entries: Any) -> dict[str, _Manager]:
    if entries is None:
        return {}
    if not isinstance(entries, list):
        raise _DecodeError("managedFields must be a list")
    managers: dict[str, _Manager] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise _DecodeError(f"managed fields entry {index} is not an object")
        operation = entry.get("operation")
        if operation not in ("Apply", "Update"):
            raise _DecodeError("operation must be `Apply` or `Update`")
        api_version = entry.get("apiVersion")
        if not api_version or not isinstance(api_version, str):
            raise _DecodeError("apiVersion must not be empty")
        fields_type = entry.get("fieldsType")
        if fields_type != "FieldsV1":
            if not fields_type:
                raise _DecodeError(f"missing fieldsType in managed fields entry {index}")
            raise _DecodeError(f"invalid fieldsType {_go_quote(str(fields_type))} in managed fields entry {index}")
        fields = entry.get("fieldsV1")
        if fields is None:
            fields = {}
        if not isinstance(fields, dict):
            raise _DecodeError(f"error decoding set: fieldsV1 of entry {index} is not an object")
        manager = entry.get("manager") or ""
        subresource = entry.get("subresource") or ""
        time = entry.get("time")
        if not isinstance(manager, str) or not isinstance(subresource, str) or not isinstance(time, str | None):
            raise _DecodeError(f"managed fields entry {index} has fields of the wrong type")
        record = _Manager(manager, operation, api_version, subresource, _decode_fields(fields), time, entry)
        managers[_key(record)] = record
    return managers


@functools.lru_cache(maxsize=4096)
def _seconds(time: str) -> int:
    try:
        return int(datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _entry_order(record: _Manager) -> tuple[str, int, str, str, str]:
    return (
        record.operation,
        _seconds(record.time) if record.time else 0,
        record.manager,
        record.api_version,
        record.subresource,
    )


def _encode_managers(managers: Mapping[str, _Manager]) -> list[dict[str, Any]]:
    entries = []
    for record in sorted(managers.values(), key=_entry_order):
        if record.entry is not None:
            entries.append(dict(record.entry))
            continue
        fields = record.fields.to_fields()
        _remember(fields, record.fields)
        entry: dict[str, Any] = {}
        if record.manager:
            entry["manager"] = record.manager
        entry["operation"] = record.operation
        entry["apiVersion"] = record.api_version
        if record.time is not None:
            entry["time"] = record.time
        entry["fieldsType"] = "FieldsV1"
        entry["fieldsV1"] = fields
        if record.subresource:
            entry["subresource"] = record.subresource
        entries.append(entry)
    return entries


def _without_managed_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict) or "managedFields" not in metadata:
        return dict(obj)
    out = dict(obj)
    out["metadata"] = {key: value for key, value in metadata.items() if key != "managedFields"}
    return out


def _with_managed_fields(obj: Mapping[str, Any], managers: Mapping[str, _Manager]) -> dict[str, Any]:
    out = dict(obj)
    metadata = dict(out.get("metadata") or {})
    if managers:
        metadata["managedFields"] = _encode_managers(managers)
    else:
        metadata.pop("managedFields", None)
    out["metadata"] = metadata
    return out


# --- the updater (merge.Updater.update / Update) -----------------------------------------------------------------


def _take_from_others(
    comparison: _Comparison, managers: dict[str, _Manager], workflow: str, *, force: bool
) -> dict[str, _Set]:
    """Remove changed and removed fields from every other manager; without force, return conflicts instead."""
    changed = comparison.changed()
    conflicts: dict[str, _Set] = {}
    for key, record in managers.items():
        if key == workflow:
            continue
        overlap = record.fields.intersection(changed)
        if not overlap.empty():
            conflicts[key] = overlap
    if conflicts and not force:
        return conflicts
    for key in list(managers):
        if key == workflow:
            continue
        record = managers[key]
        fields = record.fields
        if key in conflicts:
            fields = fields.difference(conflicts[key])
        fields = fields.difference(comparison.removed)
        if fields.empty():
            del managers[key]
        else:
            managers[key] = record.with_fields(fields)
    return {}


def _record_update(
    managers: dict[str, _Manager],
    comparison: _Comparison,
    manager: str,
    api_version: str,
    subresource: str,
    now: str,
    ignored: _Set,
) -> None:
    """What one non-apply write does to the managers (managedFieldsUpdater over the structured merge manager)."""
    comparison = comparison.excluding(ignored)
    _take_from_others(comparison, managers, _CURRENT_OPERATION, force=True)
    taken = comparison.changed().difference(_STRIPPED)
    if taken.empty():
        return
    key = _identifier(manager, "Update", api_version, subresource)
    previous = managers.get(key)
    fields = taken if previous is None else taken.union(previous.fields)
    managers[key] = _Manager(manager, "Update", api_version, subresource, fields, now)


def _cap_update_managers(managers: dict[str, _Manager]) -> None:
    updaters = [key for key, record in managers.items() if not record.applied]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return
    updaters.sort(key=lambda key: (_seconds(managers[key].time or "") if managers[key].time else 0, key))
    first_of_version: dict[str, str] = {}
    remaining = len(updaters)
    for key in updaters:
        if remaining <= MAX_UPDATE_MANAGERS:
            break
        record = managers[key]
        version = record.api_version
        bucket = _identifier(_ANCIENT_CHANGES, "Update", version, "")
        if version not in first_of_version:
            first_of_version[version] = key
            continue
        if bucket not in managers:
            first = managers.pop(first_of_version[version])
            managers[bucket] = _Manager(_ANCIENT_CHANGES, "Update", version, "", first.fields, first.time)
        merged = record.fields.union(managers[bucket].fields)
        managers[bucket] = _Manager(_ANCIENT_CHANGES, "Update", version, "", merged, record.time)
        del managers[key]
        remaining -= 1


# --- public operations -------------------------------------------------------------------------------------------


def fields_v1(obj: Mapping[str, Any], semantics: patching.Semantics) -> dict[str, Any]:
    """The FieldsV1 set a server-side apply of ``obj`` records for its manager.

    Raises FieldManagerError (500) when a list item lacks its keys or a set holds objects.
    """
    schema = _schema_for(semantics)
    try:
        fields = _field_set(_without_managed_fields(obj), schema)
    except _TypedError as error:
        raise _internal(f"failed to create typed object: {error}") from None
    return fields.difference(_STRIPPED).to_fields()


def record_update(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    manager: str,
    operation: str,
    semantics: patching.Semantics,
    now: str,
    subresource: str = "",
    *,
    api_version: str = "",
    ignored: Collection[tuple[str, ...]] = (),
) -> dict[str, Any]:
    """``new`` with managedFields updated for a create (``old`` None), update or non-apply patch by ``manager``.

    The fields the write added or changed become the manager's (an "Update" entry at ``now``, an RFC 3339 time) and
    stop being anyone else's; removed fields stop being anyone's. As kube-apiserver does: managedFields sent in
    ``new`` replace the live ones when they are valid and not empty (``[]`` or ``[{}]`` clears them; a subresource
    write ignores them); an existing object without managedFields stays without; an empty manager is "unknown".
    ``operation`` is "Update" (the only non-apply operation). ``api_version`` is the group-version the entries
    record (default: new's apiVersion); ``ignored`` lists field paths the write cannot change (("status",) for
    writes to a resource with a status subresource), which nobody is recorded to own through this write.
    """
    manager = manager or "unknown"
    api_version = api_version or str(new.get("apiVersion") or "")
    schema = _schema_for(semantics)
    new_clean = _without_managed_fields(new)
    old_entries = (old.get("metadata") or {}).get("managedFields") if old is not None else None
    sent = _MISSING if subresource else (new.get("metadata") or {}).get("managedFields", _MISSING)
    managers: dict[str, _Manager] = {}
    if sent is not _MISSING and isinstance(sent, list) and (not sent or sent == [{}]):
        managers = {}
    else:
        decoded: dict[str, _Manager] = {}
        if sent is not _MISSING:
            try:
                decoded = _decode_managers(sent)
            except _DecodeError:
                decoded = {}
        if decoded:
            managers = decoded
        else:
            try:
                managers = _decode_managers(old_entries)
            except _DecodeError:
                managers = {}
    if not managers and old is not None:
        return _with_managed_fields(new_clean, {})
    try:
        if old is None:
            comparison = _compare_created(new_clean, schema)
        else:
            comparison = _compare(_without_managed_fields(old), new_clean, schema)
        _record_update(managers, comparison, manager, api_version, subresource, now, _Set.of_paths(ignored))
    except _TypedError:
        # kube-apiserver keeps the live managedFields when it cannot work out the change (UpdateNoErrors)
        out = dict(new_clean)
        metadata = dict(out.get("metadata") or {})
        if old_entries is not None:
            metadata["managedFields"] = old_entries
        out["metadata"] = metadata
        return out
    _cap_update_managers(managers)
    return _with_managed_fields(new_clean, managers)


def apply(
    live: Mapping[str, Any] | None,
    applied: Mapping[str, Any],
    manager: str,
    force: bool,
    semantics: patching.Semantics,
    now: str,
    *,
    api_version: str = "",
    kind: str = "",
    subresource: str = "",
    ignored: Collection[tuple[str, ...]] = (),
) -> ApplyResult:
    """Server-side apply of the configuration ``applied`` by ``manager``; ``live`` is None to create.

    Returns the merged object with managedFields (its "Apply" entry timed ``now`` when the object changed), or,
    when fields the configuration changes are owned by other managers and ``force`` is false, those conflicts and
    no object. Fields the manager applied before and leaves out now are removed unless another manager owns them.
    As kube-apiserver does for manager "kubectl": conflicts with values kubectl's last-applied-configuration
    annotation still holds are forced (upgrade from client-side apply), and that annotation, when present, is
    rewritten to the applied configuration. ``api_version``/``kind`` are the resource's (a mismatch is a 400);
    ``ignored`` as for ``record_update``.

    Raises FieldManagerError: 400 for a configuration of another kind or with managedFields, 500 for one whose list
    items lack their keys or repeat them (the API server's "failed to create typed patch object").
    """
    if not isinstance(applied, Mapping):
        raise _bad_request("apply patch must be an object")
    api_version = api_version or str(applied.get("apiVersion") or "")
    kind = kind or str(applied.get("kind") or "")
    if (applied.get("apiVersion"), applied.get("kind")) != (api_version, kind):
        raise _bad_request(f"invalid object type: {_gvk(applied.get('apiVersion'), applied.get('kind'))}")
    metadata = applied.get("metadata")
    if isinstance(metadata, dict) and metadata.get("managedFields") is not None:
        raise _bad_request("metadata.managedFields must be nil")
    schema = _schema_for(semantics)
    live_clean = _without_managed_fields(live) if live is not None else {}
    try:
        managers = _decode_managers((live or {}).get("metadata", {}).get("managedFields"))
    except _DecodeError as error:
        raise _internal(f"failed to decode managed fields: {error}") from None
    try:
        applied_set = _field_set(applied, schema, allow_duplicates=False)
    except _TypedError as error:
        raise _internal(f"failed to create typed patch object ({_object_name(applied)}): {error}") from None
    request = _ApplyRequest(
        live_clean, applied, applied_set, manager, api_version, subresource, now, _Set.of_paths(ignored), schema
    )
    try:
        outcome = request.run(dict(managers), force=force)
        if isinstance(outcome, list) and manager == "kubectl":
            allowed = _allowed_by_last_applied(live_clean, api_version, schema)
            if allowed is not None:
                remaining = [(conflict, path) for conflict, path in outcome if not allowed.has(path)]
                outcome = remaining or request.run(dict(managers), force=True)
    except _TypedError as error:
        raise _internal(f"failed to create typed live object ({_object_name(live_clean)}): {error}") from None
    if isinstance(outcome, list):
        return ApplyResult(None, tuple(conflict for conflict, _ in outcome))
    obj, managers = outcome
    if manager == "kubectl":
        obj = _sync_last_applied(obj, applied)
    return ApplyResult(_with_managed_fields(obj, managers))


def _gvk(api_version: Any, kind: Any) -> str:
    group, _, version = str(api_version or "").rpartition("/")
    return f"{group}/{version}, Kind={kind or ''}"


def _object_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    name = f"{metadata.get('namespace') or ''}/{metadata.get('name') or ''}"
    return f"{name}; {_gvk(obj.get('apiVersion'), obj.get('kind'))}"


@dataclass(frozen=True)
class _ApplyRequest:
    live: dict[str, Any]
    applied: Mapping[str, Any]
    applied_set: _Set
    manager: str
    api_version: str
    subresource: str
    now: str
    ignored: _Set
    schema: _Schema

    def run(
        self, managers: dict[str, _Manager], *, force: bool
    ) -> tuple[dict[str, Any], dict[str, _Manager]] | list[tuple[Conflict, tuple[str, ...]]]:
        """One pass of the apply chain below kubectl's last-applied handling: merged object or conflicts."""
        if not managers:
            # existing fields of an object nobody manages yet belong to "before-first-apply"
            _record_update(
                managers,
                _compare_created(self.live, self.schema),
                _BEFORE_FIRST_APPLY,
                self.api_version,
                self.subresource,
                self.now,
                self.ignored,
            )
        key = _identifier(self.manager, "Apply", self.api_version, self.subresource)
        last = managers.get(key)
        fields = self.applied_set.recursive_difference(self.ignored)
        managers[key] = _Manager(
            self.manager, "Apply", self.api_version, self.subresource, fields, last.time if last else None
        )
        merged = _merge(self.live, self.applied, (), self.schema)
        if last is not None and not last.fields.empty():
            merged = _prune(merged, managers, last.fields, self.schema)
        comparison = _compare(self.live, merged, self.schema).excluding(self.ignored)
        conflicts = _take_from_others(comparison, managers, key, force=force)
        if conflicts:
            return _conflict_list(conflicts, managers)
        record = managers[key]
        if merged != self.live:
            record = record.with_time(self.now)
        else:
            merged = dict(self.live)
        fields = record.fields.difference(_STRIPPED)
        if fields.empty():
            del managers[key]
        else:
            managers[key] = record.with_fields(fields)
        return merged, managers


def _conflict_list(
    conflicts: Mapping[str, _Set], managers: Mapping[str, _Manager]
) -> list[tuple[Conflict, tuple[str, ...]]]:
    out = []
    for key in sorted(conflicts):
        record = managers[key]
        for path in conflicts[key].paths():
            conflict = Conflict(
                record.manager, _path_display(path), record.operation, record.api_version, record.subresource
            )
            out.append((conflict, path))
    return out


def _prune(merged: dict[str, Any], managers: Mapping[str, _Manager], last: _Set, schema: _Schema) -> dict[str, Any]:
    """Remove what the applier applied last time and not now, unless a manager still owns it (merge.Updater.prune)."""
    last_named = _ensure_named(last, (), schema)
    pruned = _remove_root(merged, last_named, schema)
    merged_named = _ensure_named(_field_set(merged, schema), (), schema)
    owned = _EMPTY
    for record in managers.values():
        owned = owned.union(record.fields)
    owned_named = _ensure_named(owned, (), schema)
    pruned_named = _ensure_named(_field_set(pruned, schema), (), schema)
    pruned = _remove_root(merged, merged_named.difference(pruned_named.union(owned_named)), schema)
    pruned_named = _ensure_named(_field_set(pruned, schema), (), schema)
    return _remove_root(merged, merged_named.difference(pruned_named).intersection(last_named), schema)


def _allowed_by_last_applied(live: Mapping[str, Any], api_version: str, schema: _Schema) -> _Set | None:
    """Fields kubectl's last-applied-configuration still sets to their live values (lastAppliedManager)."""
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(LAST_APPLIED_ANNOTATION)
    if not text or not isinstance(text, str):
        return None
    try:
        last_applied = json.loads(text)
    except ValueError:
        return None
    if not isinstance(last_applied, dict) or last_applied.get("apiVersion") != api_version:
        return None
    try:
        fields = _field_set(last_applied, schema, allow_duplicates=False)
        comparison = _compare(last_applied, live, schema)
    except _TypedError:
        return None
    return fields.difference(comparison.modified).difference(comparison.added).difference(comparison.removed)


def _sync_last_applied(obj: dict[str, Any], applied: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite an existing last-applied-configuration to the configuration kubectl applied (lastAppliedUpdater)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if not annotations.get(LAST_APPLIED_ANNOTATION):
        return obj
    config = dict(applied)
    config_metadata = config.get("metadata")
    if isinstance(config_metadata, dict) and isinstance(config_metadata.get("annotations"), dict):
        kept = {key: value for key, value in config_metadata["annotations"].items() if key != LAST_APPLIED_ANNOTATION}
        config["metadata"] = {**config_metadata, "annotations": kept}
    updated = {**annotations, LAST_APPLIED_ANNOTATION: _go_json(config) + "\n"}
    if sum(len(key.encode()) + len(str(value).encode()) for key, value in updated.items()) > _ANNOTATIONS_MAX_BYTES:
        updated.pop(LAST_APPLIED_ANNOTATION)
    out = dict(obj)
    out["metadata"] = {**obj["metadata"], "annotations": updated}
    return out
