"""CRD validation rules (``x-kubernetes-validations``) evaluated as kube-apiserver evaluates them.

A real API server compiles the CEL rules of a CRD's schema when the CRD is written and runs
them on every create, update, patch and apply of its objects (status writes included, dry run
included), after the OpenAPI checks. This module does the same on cel-python (``celpy``), so a
manifest that a real cluster refuses is refused by the sandbox with the same words.

What is modelled (Kubernetes 1.25+ semantics, as 1.37 has them):

- rules at any level of the schema (the root too), ``self`` being the value at that level,
  typed by the schema: integers, doubles, strings, ``format: date-time``/``date`` strings as
  timestamps, ``format: duration`` as durations, ``byte`` as bytes; property names escaped as
  the server escapes them (``foo-bar`` → ``foo__dash__bar``); at the root of an object only
  ``apiVersion``, ``kind``, ``metadata.name`` and ``metadata.generateName`` are visible.
- transition rules: a rule that names ``oldSelf`` runs on update only, where an old value
  exists at that place (through maps and ``x-kubernetes-list-type: map`` lists); with
  ``optionalOldSelf: true`` it also runs without one, ``oldSelf`` then being an optional
  (``hasValue()``, ``value()``, ``orValue()``).
- ``message``, ``messageExpression`` (falling back to the message when it fails), ``reason``
  (``FieldValueInvalid`` by default, ``FieldValueForbidden``, ``FieldValueRequired``,
  ``FieldValueDuplicate``) and ``fieldPath``; the failure reads as the server's:
  ``spec.state: Invalid value: "object": <message>`` (the value shown is the schema type of
  the level the rule sits on; a root rule without fieldPath names the field ``<nil>``).
- ratcheting: a rule without ``oldSelf`` that fails on a value the update did not change is a
  warning, not an error, as with the CRDValidationRatcheting feature (on since 1.30).
- the functions of the CEL standard library that celpy has, plus the Kubernetes extensions
  most rules use: strings (``join``, ``split``, ``lowerAscii``, ``upperAscii``, ``trim``,
  ``replace``, ``substring``, ``charAt``, ``indexOf``, ``lastIndexOf``), lists (``isSorted``,
  ``sum``, ``min``, ``max``, ``indexOf``, ``lastIndexOf``), regex (``find``, ``findAll``), ``dyn``.

Not modelled: cost estimation and the runtime cost budget, type checking at compile time
(a rule naming a field the schema lacks fails when evaluated, not when the CRD is written),
the optional syntax ``a.?b``, and the quantity, URL, IP, CIDR, semver and format libraries.
``crd_causes`` refuses a CRD whose rules use a function the sandbox lacks, saying so, rather
than accepting rules it cannot run.

Speed: celpy interprets a rule's tree on every evaluation, which costs a busy sandbox a fifth of its time
when rules sit at the root of an object written often (an Incident's status). So the outcome of a level's
rules is kept, keyed by what the rules can read: each chain ``self.a.b`` (and ``oldSelf.a.b``) they name,
by its JSON, or by its presence alone when only ``has()`` looks at it; a rule that reads its value some
other way keys on the whole value. Two writes with equal keys get equal outcomes, evaluated once.

Errors: ``RuleError`` (a ``ValueError``) when a rule does not compile; ``Validator.validate``
never raises for a body, it reports.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import celpy
import lark
from celpy import adapter, celparser, celtypes, evaluation

__all__ = [
    "BLOCKING_REASONS",
    "Cause",
    "Outcome",
    "RuleError",
    "Validator",
    "blocked_cause",
    "crd_causes",
    "validator_for",
]

BLOCKING_REASONS = frozenset(
    {
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    }
)
"""Schema errors after which the server does not run the rules: the object lacks the shape they were written for."""

_REASONS = frozenset({"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"})
_RESERVED = frozenset(
    {
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)
_ESCAPABLE = re.compile(r"^[a-zA-Z_.\-/][a-zA-Z0-9_.\-/]*$")
_MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
_MISSING: Any = object()


class RuleError(ValueError):
    """A rule (or its messageExpression) that does not compile; the message says where."""


@dataclass(frozen=True)
class Cause:
    """One cause of a 422 Invalid answer, worded as kube-apiserver words a failed rule."""

    field: str
    reason: str
    message: str

    def cause(self) -> dict[str, str]:
        """As a Status cause: {"reason", "message", "field"}."""
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Outcome:
    """What the rules found: causes refuse the write, warnings go back in Warning headers."""

    causes: tuple[Cause, ...] = ()
    warnings: tuple[str, ...] = ()


def blocked_cause() -> Cause:
    """The cause the server adds instead of running the rules when the schema checks found a blocking error."""
    return Cause(
        "<nil>",
        "FieldValueInvalid",
        'Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation",
    )


# Values: JSON under a schema → CEL values


def escape(name: str) -> str | None:
    """The name a property has in CEL, or None when it cannot be named (the server leaves it out)."""
    if name in _RESERVED:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return (
        name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")
    )


def _string(value: str, node: Mapping[str, Any]) -> Any:
    fmt = node.get("format")
    try:
        if fmt in ("date-time", "datetime", "date"):
            return celtypes.TimestampType(value if fmt != "date" else f"{value}T00:00:00Z")
        if fmt == "duration":
            return celtypes.DurationType(value)
        if fmt == "byte":
            return celtypes.BytesType(base64.b64decode(value, validate=True))
    except (ValueError, TypeError, binascii.Error):
        pass
    return celtypes.StringType(value)


def to_cel(value: Any, node: Mapping[str, Any] | None, *, root: bool = False) -> Any:
    """``value`` (JSON) as the CEL value a rule sees at a schema ``node``."""
    if value is None:
        return None
    if node is None or node.get("x-kubernetes-int-or-string") is True or not node.get("type"):
        if node is not None and node.get("x-kubernetes-int-or-string") is True:
            if isinstance(value, bool):
                return adapter.json_to_cel(value)
            if isinstance(value, int):
                return celtypes.IntType(value)
            if isinstance(value, str):
                return celtypes.StringType(value)
        if node is None or not (node.get("properties") or isinstance(node.get("additionalProperties"), Mapping)):
            return adapter.json_to_cel(value)
    kind = node.get("type") or "object"
    if kind == "object" and isinstance(value, Mapping):
        return _object(value, node, root=root)
    if kind == "array" and isinstance(value, list):
        items = node.get("items") if isinstance(node.get("items"), Mapping) else None
        return celtypes.ListType([to_cel(item, items) for item in value])
    if kind == "integer" and isinstance(value, int) and not isinstance(value, bool):
        return celtypes.IntType(value)
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    if kind == "boolean" and isinstance(value, bool):
        return celtypes.BoolType(value)
    if kind == "string" and isinstance(value, str):
        return _string(value, node)
    return adapter.json_to_cel(value)


def _object(value: Mapping[str, Any], node: Mapping[str, Any], *, root: bool) -> Any:
    properties = node.get("properties") or {}
    additional = node.get("additionalProperties")
    out: dict[Any, Any] = {}
    if properties or not isinstance(additional, Mapping):
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        for key, item in value.items():
            if root and key == "metadata" and isinstance(item, Mapping):
                # At a resource's root a rule sees metadata.name and metadata.generateName only.
                kept = {part: item[part] for part in ("name", "generateName") if isinstance(item.get(part), str)}
                out[celtypes.StringType("metadata")] = adapter.json_to_cel(kept)
                continue
            if root and key in ("apiVersion", "kind"):
                out[celtypes.StringType(key)] = adapter.json_to_cel(item)
                continue
            name = escape(key)
            if name is None:
                continue
            sub = properties.get(key)
            if sub is None and not preserve:
                continue
            out[celtypes.StringType(name)] = to_cel(item, sub)
    else:
        for key, item in value.items():
            out[celtypes.StringType(key)] = to_cel(item, additional)
    return celtypes.MapType(out)


# Functions: the Kubernetes libraries most rules use, beyond what celpy has


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"no such overload: {type(value).__name__}")
    return str(value)


def _join(items: Any, separator: Any = "") -> Any:
    return celtypes.StringType(_text(separator).join(_text(item) for item in items))


def _split(text: Any, separator: Any, limit: Any = -1) -> Any:
    pieces = (
        _text(text).split(_text(separator)) if int(limit) < 0 else _text(text).split(_text(separator), int(limit) - 1)
    )
    if int(limit) == 0:
        pieces = []
    return celtypes.ListType([celtypes.StringType(piece) for piece in pieces])


def _replace(text: Any, old: Any, new: Any, limit: Any = -1) -> Any:
    return celtypes.StringType(_text(text).replace(_text(old), _text(new), int(limit)))


def _substring(text: Any, start: Any, end: Any = None) -> Any:
    value = _text(text)
    stop = len(value) if end is None else int(end)
    if not 0 <= int(start) <= stop <= len(value):
        raise IndexError(f"index out of range: {int(start)}")
    return celtypes.StringType(value[int(start) : stop])


def _char_at(text: Any, index: Any) -> Any:
    value = _text(text)
    if not 0 <= int(index) <= len(value):
        raise IndexError(f"index out of range: {int(index)}")
    return celtypes.StringType(value[int(index) : int(index) + 1])


def _index_of(container: Any, item: Any, start: Any = 0) -> Any:
    if isinstance(container, str):
        return celtypes.IntType(_text(container).find(_text(item), int(start)))
    for position, candidate in enumerate(container):
        if candidate == item:
            return celtypes.IntType(position)
    return celtypes.IntType(-1)


def _last_index_of(container: Any, item: Any) -> Any:
    if isinstance(container, str):
        return celtypes.IntType(_text(container).rfind(_text(item)))
    found = -1
    for position, candidate in enumerate(container):
        if candidate == item:
            found = position
    return celtypes.IntType(found)


def _sum(items: Any) -> Any:
    values = list(items)
    total: Any = values[0] if values else celtypes.IntType(0)
    for value in values[1:]:
        total = total + value
    return total


def _min(items: Any) -> Any:
    values = list(items)
    if not values:
        raise ValueError("min called on empty list")
    return min(values)


def _max(items: Any) -> Any:
    values = list(items)
    if not values:
        raise ValueError("max called on empty list")
    return max(values)


def _is_sorted(items: Any) -> Any:
    values = list(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(values)))


def _find(text: Any, pattern: Any) -> Any:
    match = re.search(_text(pattern), _text(text))
    return celtypes.StringType(match.group(0) if match else "")


def _find_all(text: Any, pattern: Any, limit: Any = -1) -> Any:
    found = [match.group(0) for match in re.finditer(_text(pattern), _text(text))]
    if int(limit) >= 0:
        found = found[: int(limit)]
    return celtypes.ListType([celtypes.StringType(item) for item in found])


@dataclass(frozen=True)
class _Optional:
    """``oldSelf`` of an ``optionalOldSelf`` rule: a value, or none on create."""

    value: Any
    present: bool


def _has_value(optional: Any) -> Any:
    return celtypes.BoolType(bool(optional.present))


def _value(optional: Any) -> Any:
    if not optional.present:
        raise ValueError("optional.none() dereference")
    return optional.value


def _or_value(optional: Any, default: Any) -> Any:
    return optional.value if optional.present else default


_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    "join": _join,
    "split": _split,
    "lowerAscii": lambda text: celtypes.StringType(_text(text).lower()),
    "upperAscii": lambda text: celtypes.StringType(_text(text).upper()),
    "trim": lambda text: celtypes.StringType(_text(text).strip()),
    "replace": _replace,
    "substring": _substring,
    "charAt": _char_at,
    "indexOf": _index_of,
    "lastIndexOf": _last_index_of,
    "isSorted": _is_sorted,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "find": _find,
    "findAll": _find_all,
    "dyn": lambda value: value,
    "hasValue": _has_value,
    "value": _value,
    "orValue": _or_value,
}
_KNOWN = frozenset(_FUNCTIONS) | frozenset(evaluation.base_functions) | _MACROS


_ENVIRONMENT = celpy.Environment()


def _parse(text: str) -> lark.Tree[Any]:
    try:
        tree = _ENVIRONMENT.compile(text)
    except celparser.CELParseError as error:
        where = f"<input>:{getattr(error, 'line', None) or 1}:{getattr(error, 'column', None) or 1}"
        raise RuleError(f"ERROR: {where}: Syntax error: the expression does not parse") from None
    for node in tree.iter_subtrees():
        name = None
        if node.data == "ident_arg" and node.children:
            name = str(node.children[0])
        elif node.data == "member_dot_arg" and len(node.children) > 1:
            name = str(node.children[1])
        if name is not None and name not in _KNOWN:
            raise RuleError(f"ERROR: undeclared reference to '{name}' (the sandbox's CEL does not provide it)")
    return tree


def _uses_old_self(tree: lark.Tree[Any]) -> bool:
    return any(str(child) == "oldSelf" for node in tree.find_data("ident") for child in node.children)


_WRAPPERS = frozenset(
    {"unary", "multiplication", "addition", "relation", "conditionaland", "conditionalor", "expr", "member"}
)

Read = tuple[str, tuple[str, ...], bool]
"""What a rule reads: the variable (``self`` or ``oldSelf``), the path of names after it, presence only."""


def _reads(tree: lark.Tree[Any]) -> frozenset[Read]:
    """Every chain ``self.a.b`` / ``oldSelf.a.b`` in a rule, as far as plain field names go (see the module)."""
    found: set[Read] = set()

    def walk(node: Any, parents: tuple[lark.Tree[Any], ...]) -> None:
        if not isinstance(node, lark.Tree):
            return
        if node.data == "ident" and node.children and str(node.children[0]) in ("self", "oldSelf"):
            found.add(_chain(str(node.children[0]), parents))
            return
        for child in node.children:
            walk(child, (*parents, node))

    walk(tree, ())
    return frozenset(found)


def _chain(variable: str, parents: tuple[lark.Tree[Any], ...]) -> Read:
    """From an identifier up through ``member_dot`` nodes: the names; then whether ``has()`` is all that uses it."""
    path: list[str] = []
    index = len(parents) - 2  # parents[-1] is the primary around the identifier, parents[-2] its member
    while index >= 1:
        above = parents[index - 1]
        if above.data != "member_dot" or above.children[0] is not parents[index] or len(above.children) < 2:
            break
        name = str(above.children[1])
        if "__" in name or index < 2 or parents[index - 2].data != "member":
            break  # an escaped name (``foo__dash__bar``) is not looked up here: the chain ends before it
        path.append(name)
        index -= 2
    presence = False
    if path and index >= 0:
        up = index - 1
        while up >= 0 and parents[up].data in _WRAPPERS and len(parents[up].children) == 1:
            up -= 1
        presence = (
            up >= 1
            and parents[up].data == "exprlist"
            and len(parents[up].children) == 1
            and parents[up - 1].data == "ident_arg"
            and str(parents[up - 1].children[0]) == "has"
        )
    return variable, tuple(path), presence


def _probe(value: Any, path: tuple[str, ...], presence: bool) -> Any:
    """What a read sees of a JSON value: where the path stops (-1 for its first name, ...), present, or the JSON
    text of the value at the path (``has(self.a.b)`` is an error without ``a`` and false without ``b``)."""
    for depth, name in enumerate(path):
        if not isinstance(value, Mapping) or name not in value:
            return -1 - depth
        value = value[name]
    if presence:
        return 1
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


_KEPT_OUTCOMES = 4096
"""Outcomes a validator keeps; all are dropped when it is full (the keys of a busy sandbox repeat)."""


def _eval_error(error: Exception) -> str:
    """The server's words for a rule that failed to evaluate (celpy's own messages carry its internals)."""
    kind = error.args[1] if len(error.args) > 1 else None
    text = str(error.args[0]) if error.args else str(error)
    if kind is KeyError or text.startswith("no such member"):
        key = re.search(r"'([^']*)'", text)
        return f"no such key: {key.group(1) if key else text}"
    if kind is ZeroDivisionError:
        return "division by zero"
    if kind is IndexError:
        return "index out of bounds"
    if kind is TypeError or "overload" in text:
        return "no such overload"
    return text.split("\n", 1)[0][:200]


# Rules and the tree of schema levels that have some


@dataclass(frozen=True)
class _Rule:
    source: Mapping[str, Any]
    program: Any
    message_program: Any
    uses_old_self: bool
    optional_old_self: bool
    field_path: str
    reason: str
    reads: frozenset[Read] = frozenset()
    """What the rule and its messageExpression read (``_reads``)."""

    @property
    def text(self) -> str:
        return str(self.source.get("rule") or "").strip()

    @property
    def error_string(self) -> str:
        """What an evaluation error names the rule by: its message, else its text."""
        message = str(self.source.get("message") or "").strip()
        return message or self.text

    @property
    def default_message(self) -> str:
        message = str(self.source.get("message") or "").strip()
        return message or f"failed rule: {self.text}"


def _normalized_field_path(path: str, node: Mapping[str, Any]) -> str:
    """``.spec.state`` → ``spec.state``; ``.labels['a.b']`` → ``labels[a.b]`` (map keys in brackets)."""
    out = ""
    current: Mapping[str, Any] | None = node
    for name, quoted in re.findall(r"\.([^.\[\]]+)|\['((?:[^'\\]|\\.)*)'\]", path):
        key = name or re.sub(r"\\(.)", r"\1", quoted)
        properties = (current or {}).get("properties")
        additional = (current or {}).get("additionalProperties")
        if isinstance(properties, Mapping) and key in properties:
            out = f"{out}.{key}" if out else key
            current = properties[key]
        elif isinstance(additional, Mapping):
            out = f"{out}[{key}]"
            current = additional
        else:
            raise RuleError(f"fieldPath {path!r} does not refer to a valid field")
    if not out:
        raise RuleError(f"fieldPath {path!r} does not refer to a valid field")
    return out


def _compile_rule(source: Mapping[str, Any], node: Mapping[str, Any]) -> _Rule:
    text = str(source.get("rule") or "")
    if not text.strip():
        raise RuleError("rule is required")
    message = source.get("message")
    if isinstance(message, str) and "\n" in message.strip():
        raise RuleError("message must not contain line breaks")
    if "\n" in text and not (isinstance(message, str) and message.strip()):
        raise RuleError("message must be specified if rule contains line breaks")
    reason = str(source.get("reason") or "FieldValueInvalid")
    if reason not in _REASONS:
        raise RuleError(f"reason {reason!r}: supported values: {', '.join(sorted(_REASONS))}")
    tree = _parse(text)
    program = _ENVIRONMENT.program(tree, functions=dict(_FUNCTIONS))
    message_program = None
    expression = source.get("messageExpression")
    if isinstance(expression, str) and expression.strip():
        message_program = _ENVIRONMENT.program(_parse(expression), functions=dict(_FUNCTIONS))
    uses_old_self = _uses_old_self(tree)
    reads = _reads(tree)
    if isinstance(expression, str) and expression.strip():
        reads |= _reads(_parse(expression))
    optional_old_self = source.get("optionalOldSelf") is True
    if optional_old_self and not uses_old_self:
        raise RuleError("optionalOldSelf may only be set for rules that use oldSelf")
    path = str(source.get("fieldPath") or "")
    return _Rule(
        source=source,
        program=program,
        message_program=message_program,
        uses_old_self=uses_old_self,
        optional_old_self=optional_old_self,
        field_path=_normalized_field_path(path, node) if path else "",
        reason=reason,
        reads=reads,
    )


@dataclass(frozen=True)
class _Level:
    """One level of the schema with rules at it or below it."""

    schema: Mapping[str, Any]
    rules: tuple[_Rule, ...]
    properties: Mapping[str, _Level] = field(default_factory=dict)
    items: _Level | None = None
    additional: _Level | None = None
    root: bool = False

    @property
    def reads(self) -> tuple[Read, ...]:
        return tuple(sorted(set().union(*(rule.reads for rule in self.rules))))


def _rules_at(node: Mapping[str, Any]) -> Iterator[tuple[int, Mapping[str, Any]]]:
    listed = node.get("x-kubernetes-validations")
    for index, source in enumerate(listed if isinstance(listed, list) else ()):
        if isinstance(source, Mapping):
            yield index, source


def _level(node: Mapping[str, Any], *, root: bool = False) -> _Level | None:
    rules = tuple(_compile_rule(source, node) for _, source in _rules_at(node))
    properties: dict[str, _Level] = {}
    for name, sub in (node.get("properties") or {}).items():
        if isinstance(sub, Mapping) and (found := _level(sub, root=sub.get("x-kubernetes-embedded-resource") is True)):
            properties[name] = found
    items = node.get("items")
    items_level = (
        _level(items, root=items.get("x-kubernetes-embedded-resource") is True) if isinstance(items, Mapping) else None
    )
    additional = node.get("additionalProperties")
    additional_level = _level(additional) if isinstance(additional, Mapping) else None
    if not (rules or properties or items_level or additional_level):
        return None
    return _Level(node, rules, properties, items_level, additional_level, root)


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _list_keys(schema: Mapping[str, Any]) -> tuple[str, ...] | None:
    if schema.get("x-kubernetes-list-type") != "map":
        return None
    return tuple(str(key) for key in schema.get("x-kubernetes-list-map-keys") or ())


class Validator:
    """The compiled rules of one schema; ``validate`` runs them on a write."""

    def __init__(self, level: _Level) -> None:
        self._top = level
        self._outcomes: dict[tuple[Any, ...], tuple[tuple[bool, Cause], ...]] = {}
        self._reads: dict[int, tuple[Read, ...]] = {}

    def validate(self, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> Outcome:
        """Run every rule on ``obj`` (``old``: the stored object on update, None on create)."""
        causes: list[Cause] = []
        warnings: list[str] = []
        self._visit(self._top, obj, _MISSING if old is None else old, "", False, causes, warnings)
        return Outcome(tuple(causes), tuple(warnings))

    def _visit(
        self,
        level: _Level,
        value: Any,
        old: Any,
        path: str,
        parent_unchanged: bool,
        causes: list[Cause],
        warnings: list[str],
    ) -> None:
        if value is None:
            return
        unchanged = (old == value) if old is not _MISSING else parent_unchanged
        if level.rules:
            self._run(level, value, old, path, unchanged, causes, warnings)
        if isinstance(value, Mapping):
            old_map = old if isinstance(old, Mapping) else {}
            for name, sub in level.properties.items():
                if name in value:
                    self._visit(
                        sub, value[name], old_map.get(name, _MISSING), _child(path, name), False, causes, warnings
                    )
            if level.additional is not None:
                for key, item in value.items():
                    self._visit(
                        level.additional, item, old_map.get(key, _MISSING), f"{path}[{key}]", False, causes, warnings
                    )
        elif isinstance(value, list) and level.items is not None:
            keys = _list_keys(level.schema)
            old_items: dict[tuple[Any, ...], Any] = {}
            if keys and isinstance(old, list):
                old_items = {tuple(item.get(k) for k in keys): item for item in old if isinstance(item, Mapping)}
            for index, item in enumerate(value):
                previous = _MISSING
                if keys and isinstance(item, Mapping):
                    previous = old_items.get(tuple(item.get(k) for k in keys), _MISSING)
                self._visit(
                    level.items, item, previous, f"{path}[{index}]", keys is None and unchanged, causes, warnings
                )

    def _run(
        self,
        level: _Level,
        value: Any,
        old: Any,
        path: str,
        unchanged: bool,
        causes: list[Cause],
        warnings: list[str],
    ) -> None:
        reads = self._reads.get(id(level))
        if reads is None:
            reads = self._reads[id(level)] = level.reads
        key = (
            id(level),
            path,
            unchanged,
            old is _MISSING,
            tuple(_probe(old if name == "oldSelf" else value, names, presence) for name, names, presence in reads),
        )
        found = self._outcomes.get(key)
        if found is None:
            found = self._evaluate(level, value, old, path, unchanged)
            if len(self._outcomes) >= _KEPT_OUTCOMES:
                self._outcomes.clear()
            self._outcomes[key] = found
        for failed, cause in found:
            if failed:
                causes.append(cause)
            else:
                warnings.append(str(cause))

    def _evaluate(
        self, level: _Level, value: Any, old: Any, path: str, unchanged: bool
    ) -> tuple[tuple[bool, Cause], ...]:
        """The rules of a level on a value: each failure, True for an error and False for a (ratcheted) warning."""
        out: list[tuple[bool, Cause]] = []
        schema_type = str(level.schema.get("type") or ("object" if level.root else ""))
        here = path or "<nil>"

        def failed(error: Exception) -> tuple[bool, Cause]:
            why = f"{_eval_error(error)} evaluating rule: {rule.error_string}"
            return True, Cause(here, "FieldValueInvalid", f'Invalid value: "{schema_type}": {why}')

        this = to_cel(value, level.schema, root=level.root)
        previous: Any = None
        for rule in level.rules:
            if rule.uses_old_self and old is _MISSING and not rule.optional_old_self:
                continue
            activation: dict[str, Any] = {"self": this}
            if rule.uses_old_self:
                if previous is None and old is not _MISSING:
                    previous = to_cel(old, level.schema, root=level.root)
                if rule.optional_old_self:
                    activation["oldSelf"] = _Optional(previous, old is not _MISSING)
                else:
                    activation["oldSelf"] = previous
            try:
                result = rule.program.evaluate(activation)
            except evaluation.CELEvalError as error:
                out.append(failed(error))
                continue
            if isinstance(result, evaluation.CELEvalError):
                out.append(failed(result))
                continue
            if result is True or (isinstance(result, celtypes.BoolType) and bool(result)):
                continue
            detail = self._message(rule, activation)
            where = _child(path, rule.field_path) if rule.field_path else here
            cause = _cause(where, rule.reason, schema_type, detail)
            out.append((rule.uses_old_self or not unchanged, cause))
        return tuple(out)

    @staticmethod
    def _message(rule: _Rule, activation: Mapping[str, Any]) -> str:
        if rule.message_program is not None:
            try:
                found = rule.message_program.evaluate(dict(activation))
            except evaluation.CELEvalError:
                found = None
            if isinstance(found, str) and found.strip() and "\n" not in found.strip():
                return found.strip()
        return rule.default_message


def _cause(path: str, reason: str, schema_type: str, detail: str) -> Cause:
    if reason == "FieldValueForbidden":
        return Cause(path, reason, f"Forbidden: {detail}")
    if reason == "FieldValueRequired":
        return Cause(path, reason, f"Required value: {detail}")
    if reason == "FieldValueDuplicate":
        return Cause(path, reason, f'Duplicate value: "{schema_type}"')
    return Cause(path, "FieldValueInvalid", f'Invalid value: "{schema_type}": {detail}')


def validator_for(schema: Mapping[str, Any] | None) -> Validator | None:
    """The compiled rules of a CRD version's openAPIV3Schema, or None when it has none.

    Raises ``RuleError`` for a rule that does not compile (``crd_causes`` refuses such CRDs up front).
    """
    if not isinstance(schema, Mapping):
        return None
    level = _level(schema, root=True)
    return Validator(level) if level is not None else None


def _walk(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in (node.get("properties") or {}).items():
        if isinstance(sub, Mapping):
            yield from _walk(sub, f"{path}.properties[{name}]")
    for part in ("items", "additionalProperties"):
        sub = node.get(part)
        if isinstance(sub, Mapping):
            yield from _walk(sub, f"{path}.{part}")


def crd_causes(crd: Mapping[str, Any]) -> list[dict[str, str]]:
    """The causes for refusing a CRD whose rules do not compile, one per rule, as Status causes."""
    found: list[dict[str, str]] = []
    versions = (crd.get("spec") or {}).get("versions")
    for index, version in enumerate(versions if isinstance(versions, Sequence) else ()):
        if not isinstance(version, Mapping):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if not isinstance(schema, Mapping):
            continue
        for path, node in _walk(schema, f"spec.versions[{index}].schema.openAPIV3Schema"):
            for position, source in _rules_at(node):
                try:
                    _compile_rule(source, node)
                except RuleError as error:
                    text = str(source.get("rule") or "")
                    found.append(
                        {
                            "reason": "FieldValueInvalid",
                            "field": f"{path}.x-kubernetes-validations[{position}].rule",
                            "message": f'Invalid value: "{text}": compilation failed: {error}',
                        }
                    )
    return found
