"""Kubernetes protobuf request bodies, decoded into the dicts the same request would have carried as JSON.

kubectl's typed clients (``kubectl create namespace|configmap|secret|deployment|token|...``,
``auth can-i``, ``auth whoami``) send built-in kinds as ``application/vnd.kubernetes.protobuf`` and never
fall back to JSON (``kubectl run``, ``apply`` and ``drain``'s Eviction were observed to send JSON). The
body is the 4-byte prefix ``k8s\\x00`` and a ``runtime.Unknown`` message: ``typeMeta`` (apiVersion,
kind), ``raw`` (the object's own message), ``contentEncoding`` and ``contentType``.

No ``.proto`` file is needed: a Go binary keeps reflection metadata for every struct type it contains,
with each field's struct tag (``json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"``) and
Go type. This module reads that metadata from the kubectl binary itself (ELF, 64-bit little endian; the
``internal/abi`` type layout of Go 1.20 to 1.26) into a ``Schema``: Go type -> fields (JSON name,
protobuf number and encoding, Go type). The message bytes are then decoded the way the API server does
it, into the Go struct, and rendered as ``encoding/json`` would render that struct: zero values per
``omitempty``, ``null`` for absent pointers, slices and maps without ``omitempty``, RFC 3339 times,
quantities and int-or-strings as JSON scalars, ``[]byte`` as base64, raw extensions as parsed JSON.

The schema is read once per process and cached on disk (``$XDG_CACHE_HOME/upkeep`` or
``~/.cache/upkeep``), keyed by the binary's size and modification time. kubectl is looked up in
``$UPKEEP_KUBECTL``, then next to ``sys.executable``, then on ``PATH``.

Errors::

    ValueError                  the body is not a valid protobuf envelope or message
    ProtobufUnavailable         no kubectl binary, or its type metadata cannot be read: answer 415
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import math
import mmap
import os
import re
import shutil
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CONTENT_TYPE",
    "MAGIC",
    "GoField",
    "GoType",
    "ProtobufUnavailable",
    "Schema",
    "decode_request",
    "find_kubectl",
    "load_schema",
    "read_schema",
]

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
CACHE_FORMAT = 1
"""Bumped whenever the on-disk schema layout or its interpretation changes."""


class ProtobufUnavailable(Exception):
    """Protobuf bodies cannot be decoded here: no kubectl binary, or its type metadata is unreadable."""


# --------------------------------------------------------------------------------------------------------------------
# The schema: Go types as the binary describes them.

_F_REPEATED, _F_OMITEMPTY, _F_OMITZERO, _F_INLINE, _F_SKIP = 1, 2, 4, 8, 16


@dataclass(frozen=True, slots=True)
class GoField:
    """One field of a Go struct: how it is named in JSON and numbered in protobuf."""

    name: str
    """The Go field name."""
    json: str
    """The JSON key; empty for an embedded struct whose fields are inlined."""
    type: int
    """Index of the field's Go type in ``Schema.types``."""
    number: int = 0
    """Protobuf field number; 0 when the field is not serialized in protobuf."""
    encoding: str = ""
    """The protobuf tag's encoding: varint, bytes, fixed32, fixed64, zigzag32 or zigzag64."""
    repeated: bool = False
    omitempty: bool = False
    omitzero: bool = False
    inline: bool = False
    """An embedded struct without a JSON name: its fields are promoted into the parent object."""
    skip: bool = False
    """Not in JSON: ``json:"-"``, or an unexported field."""


@dataclass(frozen=True, slots=True)
class GoType:
    """One Go type: its kind, its name when it is a defined type, and what it is made of."""

    kind: str
    """The Go kind: bool, int, int8..int64, uint..uint64, uintptr, float32, float64, string, struct, ptr, slice,
    array, map, interface, func, chan, complex64, complex128, unsafe.Pointer."""
    name: str = ""
    """Package path and name of a defined type (``k8s.io/api/core/v1.Namespace``); builtin names (``string``)
    as they are; empty for unnamed types."""
    elem: int = -1
    """Element type (pointer, slice, array, map value)."""
    key: int = -1
    """Key type of a map."""
    fields: tuple[GoField, ...] = ()


_INTEGER_BITS = {
    "int": 64,
    "int8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "uint": 64,
    "uint8": 8,
    "uint16": 16,
    "uint32": 32,
    "uint64": 64,
    "uintptr": 64,
}
_SIGNED = frozenset({"int", "int8", "int16", "int32", "int64"})
_SCALARS = frozenset({*_INTEGER_BITS, "bool", "float32", "float64", "string"})
_NILABLE = frozenset({"ptr", "slice", "map", "interface", "func", "chan", "unsafe.Pointer"})

# Meta packages whose kinds are registered in every group-version (DeleteOptions in policy/v1, ...).
_META = "k8s.io/apimachinery/pkg/apis/meta/v1"
# API groups whose Go package is not k8s.io/api/<first label of the group>.
_GROUP_PACKAGES = {
    "": "k8s.io/api/core",
    "meta.k8s.io": "k8s.io/apimachinery/pkg/apis/meta",
    "apiextensions.k8s.io": "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions",
    "apiregistration.k8s.io": "k8s.io/kube-aggregator/pkg/apis/apiregistration",
    "internal.apiserver.k8s.io": "k8s.io/api/apiserverinternal",
    "metrics.k8s.io": "k8s.io/metrics/pkg/apis/metrics",
}


@dataclass(frozen=True)
class Schema:
    """The Go types of the Kubernetes API as one kubectl binary knows them, and how to decode them."""

    types: tuple[GoType, ...]
    go_version: str = ""
    """The Go toolchain that built the binary (``go1.26.8``); empty for hand-made schemas."""
    _named: dict[str, int] = field(init=False, repr=False, compare=False)
    _plans: dict[int, _Plan] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_named", {t.name: i for i, t in enumerate(self.types) if t.name})
        object.__setattr__(self, "_plans", {})

    def type_named(self, name: str) -> int | None:
        """The index of the defined type ``name`` (``k8s.io/api/core/v1.Namespace``), if the binary has it."""
        return self._named.get(name)

    def type_for(self, api_version: str, kind: str) -> int | None:
        """The index of the struct that holds objects of ``kind`` in ``api_version`` (``apps/v1``)."""
        group, _, version = api_version.rpartition("/")
        package = _GROUP_PACKAGES.get(group, "k8s.io/api/" + group.split(".")[0])
        for candidate in (f"{package}/{version}.{kind}", f"{_META}.{kind}"):
            index = self._named.get(candidate)
            if index is not None and self.types[index].kind == "struct":
                return index
        return None

    def decode(self, type_name: str, message: bytes) -> Any:
        """The JSON form of ``message``, a protobuf message of the Go type ``type_name``."""
        index = self.type_named(type_name)
        if index is None:
            raise ValueError(f"no Go type {type_name} in the schema")
        return _Decoder(self).value(index, [(2, message)], "bytes")

    def _plan(self, index: int) -> _Plan:
        """How the struct ``index`` is decoded: its fields, and the JSON keys it sets itself."""
        found = self._plans.get(index)
        if found is None:
            fields = self.types[index].fields
            own = frozenset(f.json for f in fields if not f.skip and not f.inline)
            found = _Plan(fields, own)
            self._plans[index] = found
        return found

    def to_json(self) -> dict[str, Any]:
        """A JSON-serializable form of the schema, for the disk cache."""
        return {
            "format": CACHE_FORMAT,
            "go": self.go_version,
            "types": [[t.kind, t.name, t.elem, t.key, [_field_row(f) for f in t.fields]] for t in self.types],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Schema:
        """The schema ``to_json`` wrote; ValueError when it is of another format or malformed."""
        if data.get("format") != CACHE_FORMAT:
            raise ValueError("schema cache of another format")
        try:
            types = tuple(
                GoType(str(kind), str(name), int(elem), int(key), tuple(_field_from_row(row) for row in fields))
                for kind, name, elem, key, fields in data["types"]
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"malformed schema cache: {error}") from error
        count = len(types)
        for t in types:
            if not (-1 <= t.elem < count and -1 <= t.key < count and all(0 <= f.type < count for f in t.fields)):
                raise ValueError("malformed schema cache: type index out of range")
        return cls(types, str(data.get("go", "")))


@dataclass(frozen=True, slots=True)
class _Plan:
    fields: tuple[GoField, ...]
    own_keys: frozenset[str]


def _field_row(f: GoField) -> list[Any]:
    flags = (
        (_F_REPEATED if f.repeated else 0)
        | (_F_OMITEMPTY if f.omitempty else 0)
        | (_F_OMITZERO if f.omitzero else 0)
        | (_F_INLINE if f.inline else 0)
        | (_F_SKIP if f.skip else 0)
    )
    return [f.name, f.json, f.type, f.number, f.encoding, flags]


def _field_from_row(row: list[Any]) -> GoField:
    name, key, type_, number, encoding, flags = row
    return GoField(
        str(name),
        str(key),
        int(type_),
        int(number),
        str(encoding),
        repeated=bool(flags & _F_REPEATED),
        omitempty=bool(flags & _F_OMITEMPTY),
        omitzero=bool(flags & _F_OMITZERO),
        inline=bool(flags & _F_INLINE),
        skip=bool(flags & _F_SKIP),
    )


# --------------------------------------------------------------------------------------------------------------------
# Decoding requests.


def decode_request(body: bytes, schema: Schema | None = None) -> dict[str, Any]:
    """The object in a protobuf request body, as the JSON body would have given it.

    ``schema`` defaults to the one read from kubectl (``load_schema``). Raises ValueError for a body that
    is not a Kubernetes protobuf envelope, a malformed message, or a kind the schema does not know;
    ProtobufUnavailable when the schema cannot be had.
    """
    if not body.startswith(MAGIC):
        raise ValueError("not a Kubernetes protobuf body: the prefix k8s\\x00 is missing")
    envelope = _message_fields(body[len(MAGIC) :])
    type_meta = _message_fields(_last_bytes(envelope, 1, "typeMeta"))
    api_version = _last_bytes(type_meta, 1, "apiVersion").decode("utf-8", "replace")
    kind = _last_bytes(type_meta, 2, "kind").decode("utf-8", "replace")
    raw = _last_bytes(envelope, 2, "raw")
    encoding = _last_bytes(envelope, 3, "contentEncoding").decode("utf-8", "replace")
    content_type = _last_bytes(envelope, 4, "contentType").decode("utf-8", "replace")
    if not api_version or not kind:
        raise ValueError("protobuf body without apiVersion or kind")
    if encoding:
        raise ValueError(f"protobuf body with an unsupported content encoding {encoding!r}")
    if content_type.split(";")[0].strip() == "application/json":
        try:
            embedded = json.loads(raw)
        except ValueError as error:
            raise ValueError(f"protobuf envelope with malformed JSON inside: {error}") from error
        if not isinstance(embedded, dict):
            raise ValueError("protobuf envelope with JSON inside that is not an object")
        return {"kind": kind, "apiVersion": api_version, **embedded}
    if content_type and content_type.split(";")[0].strip() != CONTENT_TYPE:
        raise ValueError(f"protobuf envelope with an unsupported content type {content_type!r}")
    schema = schema if schema is not None else load_schema()
    index = schema.type_for(api_version, kind)
    if index is None:
        raise ValueError(f"no protobuf schema for {kind} in {api_version}")
    decoded = _Decoder(schema).struct(index, raw)
    decoded.pop("kind", None)
    decoded.pop("apiVersion", None)
    return {"kind": kind, "apiVersion": api_version, **decoded}


_Entry = tuple[int, int | bytes]
"""One occurrence of a field on the wire: (wire type, value); varints as int, the rest as bytes."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    byte = buf[pos] if pos < len(buf) else -1
    if 0 <= byte < 0x80:
        return byte, pos + 1
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ValueError("protobuf message ends inside a varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift >= 70:
            raise ValueError("protobuf varint longer than 10 bytes")


def _message_fields(buf: bytes) -> dict[int, list[_Entry]]:
    """The fields of one message by number, each with its occurrences in wire order."""
    fields: dict[int, list[_Entry]] = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ValueError("protobuf field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"protobuf field {number} runs past the end of its message")
            value = buf[pos : pos + size]
            pos += size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > end:
                raise ValueError(f"protobuf field {number} runs past the end of its message")
            value = buf[pos : pos + size]
            pos += size
        else:
            raise ValueError(f"protobuf wire type {wire} (field {number}) is not supported")
        fields.setdefault(number, []).append((wire, value))
    return fields


def _last_bytes(fields: Mapping[int, list[_Entry]], number: int, what: str) -> bytes:
    entries = fields.get(number)
    if not entries:
        return b""
    wire, value = entries[-1]
    if wire != 2 or not isinstance(value, bytes):
        raise ValueError(f"protobuf field {what} has wire type {wire}, expected 2 (length-delimited)")
    return value


def _merged(entries: list[_Entry], what: str) -> bytes:
    """The bytes of a message field: occurrences repeated on the wire merge, as protobuf says."""
    parts: list[bytes] = []
    for wire, value in entries:
        if wire != 2 or not isinstance(value, bytes):
            raise ValueError(f"protobuf field {what} has wire type {wire}, expected a message")
        parts.append(value)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class _Decoder:
    """Protobuf messages into the values ``encoding/json`` would print for the Go structs they fill."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.types = schema.types

    # A struct: every Go field in declaration order, zero when absent, omitted as its JSON tag says.
    def struct(self, index: int, message: bytes) -> dict[str, Any]:
        special = _SPECIAL_STRUCTS.get(self.types[index].name)
        if special is not None:
            # A request body is an object; the special types print as JSON scalars or null.
            value = special(self, index, message)
            if not isinstance(value, dict):
                raise ValueError(f"{self.types[index].name} is not an object")
            return value
        return self._fields(index, _message_fields(message) if message else {})

    def _fields(self, index: int, wire: Mapping[int, list[_Entry]]) -> dict[str, Any]:
        plan = self.schema._plan(index)
        out: dict[str, Any] = {}
        for f in plan.fields:
            if f.skip:
                continue
            entries = wire.get(f.number) if f.number else None
            value = self._field(f, entries) if entries else self.zero(f.type)
            if f.inline:
                if isinstance(value, dict):
                    for key, inner in value.items():
                        if key not in plan.own_keys:
                            out[key] = inner
                continue
            if f.omitempty and self._empty(f.type, value):
                continue
            if f.omitzero and value == self.zero(f.type):
                continue
            out[f.json] = value
        return out

    def _field(self, f: GoField, entries: list[_Entry]) -> Any:
        return self.value(f.type, entries, f.encoding, f.name)

    def value(self, index: int, entries: list[_Entry], encoding: str, what: str = "") -> Any:
        """The JSON value of a Go value of type ``index`` from its occurrences on the wire."""
        t = self.types[index]
        kind = t.kind
        if kind in _SCALARS:
            return self._scalar(kind, entries[-1], encoding, what)
        if kind == "ptr":
            return self.value(t.elem, entries, encoding, what)
        if kind == "struct":
            message = _merged(entries, what or t.name)
            special = _SPECIAL_STRUCTS.get(t.name)
            if special is not None:
                return special(self, index, message)
            return self._fields(index, _message_fields(message) if message else {})
        if kind in ("slice", "array"):
            elem = self.types[t.elem]
            if kind == "slice" and elem.kind == "uint8":
                return base64.b64encode(_merged(entries[-1:], what)).decode("ascii")
            if t.name and kind == "slice":
                # A defined slice type (metav1.Verbs, ExtraValue) is a message of its own: repeated items = 1.
                items = _message_fields(_merged(entries, what or t.name)).get(1, [])
                return self._elements(t.elem, items, encoding, what)
            return self._elements(t.elem, entries, encoding, what)
        if kind == "map":
            return self._map(t, entries, what)
        raise ValueError(f"protobuf field {what or t.name} of Go kind {kind} cannot be decoded")

    def _elements(self, elem: int, entries: list[_Entry], encoding: str, what: str) -> list[Any]:
        kind = self.types[elem].kind
        out: list[Any] = []
        for wire, raw in entries:
            if wire == 2 and kind in _SCALARS and kind != "string" and isinstance(raw, bytes):
                out.extend(self._scalar(kind, item, encoding, what) for item in _packed(raw, kind))
            else:
                out.append(self.value(elem, [(wire, raw)], encoding, what))
        return out

    def _map(self, t: GoType, entries: list[_Entry], what: str) -> dict[str, Any]:
        value_type = self.types[t.elem]
        pairs: dict[str, Any] = {}
        for wire, raw in entries:
            if wire != 2 or not isinstance(raw, bytes):
                raise ValueError(f"protobuf map {what} has an entry of wire type {wire}")
            entry = _message_fields(raw)
            key_entries = entry.get(1)
            key = self.value(t.key, key_entries, "") if key_entries else self.zero(t.key)
            value_entries = entry.get(2)
            if value_entries:
                value = self.value(t.elem, value_entries, "", what)
            elif value_type.kind == "slice" and self.types[value_type.elem].kind == "uint8":
                value = ""  # gogo-protobuf fills a missing bytes value with []byte{}, not nil
            else:
                value = self.zero(t.elem)
            pairs[key if isinstance(key, str) else json.dumps(key)] = value
        return dict(sorted(pairs.items()))

    def _scalar(self, kind: str, entry: _Entry, encoding: str, what: str) -> Any:
        wire, raw = entry
        if kind == "string":
            if wire != 2 or not isinstance(raw, bytes):
                raise ValueError(f"protobuf field {what} is a string but has wire type {wire}")
            return raw.decode("utf-8", "replace")
        if kind in ("float32", "float64"):
            if not isinstance(raw, bytes) or len(raw) != (4 if wire == 5 else 8) or wire not in (1, 5):
                raise ValueError(f"protobuf field {what} is a {kind} but has wire type {wire}")
            number = struct.unpack("<f" if wire == 5 else "<d", raw)[0]
            if math.isnan(number) or math.isinf(number):
                raise ValueError(f"protobuf field {what} is not a finite number")
            if kind == "float32":
                number = _shortest_float32(number)
            # Go prints integral floats without a fraction, so JSON readers see an int.
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        if isinstance(raw, bytes):
            if wire not in (1, 5):
                raise ValueError(f"protobuf field {what} is a {kind} but has wire type {wire}")
            integer = int.from_bytes(raw, "little")
        else:
            integer = raw
        if kind == "bool":
            return integer != 0
        if encoding.startswith("zigzag"):
            integer = (integer >> 1) ^ -(integer & 1)
        bits = _INTEGER_BITS[kind]
        integer &= (1 << bits) - 1
        if kind in _SIGNED and integer >= 1 << (bits - 1):
            integer -= 1 << bits
        return integer

    def zero(self, index: int) -> Any:
        """The JSON value of the Go zero value of type ``index``."""
        t = self.types[index]
        kind = t.kind
        if kind == "string":
            return ""
        if kind == "bool":
            return False
        if kind in _INTEGER_BITS or kind in ("float32", "float64"):
            return 0
        if kind == "struct":
            special = _SPECIAL_STRUCTS.get(t.name)
            return special(self, index, b"") if special is not None else self._fields(index, {})
        if kind == "array":
            return []
        return None

    def _empty(self, index: int, value: Any) -> bool:
        kind = self.types[index].kind
        if kind in _SCALARS:
            return not value
        if kind in _NILABLE:
            return value is None or (kind in ("slice", "map") and len(value) == 0)
        if kind == "array":
            return len(value) == 0
        return False

    def go_fields(self, index: int, message: bytes) -> dict[str, Any]:
        """A struct's protobuf fields by Go name, zero when absent and never omitted: for the special types."""
        wire = _message_fields(message) if message else {}
        out: dict[str, Any] = {}
        for f in self.types[index].fields:
            if f.number:
                entries = wire.get(f.number)
                out[f.name] = self._field(f, entries) if entries else self.zero(f.type)
        return out


def _packed(raw: bytes, kind: str) -> Iterable[_Entry]:
    """The numbers of a packed repeated field."""
    if kind in ("float32", "float64"):
        wire, size = (5, 4) if kind == "float32" else (1, 8)
        if len(raw) % size:
            raise ValueError(f"packed {kind} values of {len(raw)} bytes")
        for pos in range(0, len(raw), size):
            yield wire, raw[pos : pos + size]
        return
    pos = 0
    while pos < len(raw):
        value, pos = _varint(raw, pos)
        yield 0, value


def _shortest_float32(number: float) -> float:
    """The shortest decimal that is still the same float32, as Go prints a float32."""
    for digits in range(1, 10):
        shorter = float(f"{number:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", shorter))[0] == number:
            return shorter
    return number


# --------------------------------------------------------------------------------------------------------------------
# Types whose JSON is not their struct: what their MarshalJSON methods print.

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(message: bytes) -> datetime.datetime | None:
    """A metav1.Time or MicroTime: Timestamp {seconds = 1, nanos = 2}; empty means the zero time (null)."""
    if not message:
        return None
    wire = _message_fields(message)
    seconds = _signed(wire.get(1), 64)
    nanos = _signed(wire.get(2), 32)
    if seconds == -62135596800 and nanos == 0:  # Go's zero time, 0001-01-01T00:00:00Z
        return None
    try:
        return _EPOCH + datetime.timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as error:
        raise ValueError(f"timestamp out of range: {seconds}s") from error


def _signed(entries: list[_Entry] | None, bits: int) -> int:
    if not entries:
        return 0
    wire, raw = entries[-1]
    if wire != 0 or not isinstance(raw, int):
        raise ValueError(f"protobuf timestamp field has wire type {wire}")
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >= 1 << (bits - 1) else raw


def _iso_seconds(moment: datetime.datetime) -> str:
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"


def _time(decoder: _Decoder, index: int, message: bytes) -> Any:
    moment = _timestamp(message)
    return None if moment is None else _iso_seconds(moment) + "Z"


def _micro_time(decoder: _Decoder, index: int, message: bytes) -> Any:
    moment = _timestamp(message)
    return None if moment is None else f"{_iso_seconds(moment)}.{moment.microsecond:06d}Z"


def _quantity(decoder: _Decoder, index: int, message: bytes) -> Any:
    text = _last_bytes(_message_fields(message), 1, "Quantity.string").decode("utf-8", "replace")
    return text or "0"


def _raw_json(decoder: _Decoder, index: int, message: bytes) -> Any:
    """runtime.RawExtension, metav1.FieldsV1, apiextensions JSON: bytes = 1 holding JSON (or a protobuf object)."""
    raw = _last_bytes(_message_fields(message), 1, "raw")
    if not raw:
        return None
    if raw.startswith(MAGIC):
        return decode_request(raw, decoder.schema)
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ValueError(f"{decoder.types[index].name}: the raw bytes are not JSON: {error}") from error


def _int_or_string(decoder: _Decoder, index: int, message: bytes) -> Any:
    values = decoder.go_fields(index, message)
    kind = values.get("Type", 0)
    if kind == 0:
        return values.get("IntVal", 0)
    if kind == 1:
        return values.get("StrVal", "")
    raise ValueError(f"IntOrString of unknown type {kind}")


def _duration(decoder: _Decoder, index: int, message: bytes) -> Any:
    nanoseconds = decoder.go_fields(index, message).get("Duration", 0)
    return _go_duration(int(nanoseconds))


def _go_duration(nanoseconds: int) -> str:
    """A duration as Go's time.Duration.String() prints it: 1h2m3.5s, 1.5ms, 0s."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    left = abs(nanoseconds)
    if left < 1_000_000_000:
        unit, scale = ("ns", 1) if left < 1_000 else ("µs", 1_000) if left < 1_000_000 else ("ms", 1_000_000)
        return sign + _fraction(left, scale) + unit
    seconds = _fraction(left % 60_000_000_000, 1_000_000_000) + "s"
    minutes = left // 60_000_000_000
    if not minutes:
        return sign + seconds
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes}m{seconds}" if hours else f"{sign}{minutes}m{seconds}"


def _fraction(value: int, scale: int) -> str:
    whole, rest = divmod(value, scale)
    if not rest:
        return str(whole)
    digits = str(rest).rjust(len(str(scale)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _schema_or_array(decoder: _Decoder, index: int, message: bytes) -> Any:
    values = decoder.go_fields(index, message)
    return values.get("JSONSchemas") or values.get("Schema")


def _schema_or_bool(decoder: _Decoder, index: int, message: bytes) -> Any:
    values = decoder.go_fields(index, message)
    schema = values.get("Schema")
    return schema if schema is not None else bool(values.get("Allows"))


def _schema_or_strings(decoder: _Decoder, index: int, message: bytes) -> Any:
    values = decoder.go_fields(index, message)
    return values.get("Property") or values.get("Schema")


_SpecialDecoder = Callable[[_Decoder, int, bytes], Any]
_APIEXTENSIONS = "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
_SPECIAL_STRUCTS: dict[str, _SpecialDecoder] = {
    f"{_META}.Time": _time,
    f"{_META}.MicroTime": _micro_time,
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": _raw_json,
    "k8s.io/apimachinery/pkg/api/resource.Quantity": _quantity,
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString": _int_or_string,
    "k8s.io/apimachinery/pkg/runtime.RawExtension": _raw_json,
    **{
        f"{_APIEXTENSIONS}/{version}.{name}": special
        for version in ("v1", "v1beta1")
        for name, special in (
            ("JSON", _raw_json),
            ("JSONSchemaPropsOrArray", _schema_or_array),
            ("JSONSchemaPropsOrBool", _schema_or_bool),
            ("JSONSchemaPropsOrStringArray", _schema_or_strings),
        )
    },
}
# Special types whose Go fields are private: nothing below them is needed in the schema.
_OPAQUE = frozenset({f"{_META}.Time", f"{_META}.MicroTime", "k8s.io/apimachinery/pkg/api/resource.Quantity"})


# --------------------------------------------------------------------------------------------------------------------
# Reading the schema from a Go binary: ELF sections, moduledata, type descriptors (internal/abi).

_KINDS = (
    *("invalid", "bool", "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64"),
    *("uintptr", "float32", "float64", "complex64", "complex128", "array", "chan", "func", "interface", "map"),
    *("ptr", "slice", "string", "struct", "unsafe.Pointer"),
)
_TFLAG_UNCOMMON, _TFLAG_EXTRA_STAR, _TFLAG_NAMED = 1, 2, 4
_TYPE_SIZE = 48
"""abi.Type on 64-bit: Size_, PtrBytes, Hash, TFlag, Align_, FieldAlign_, Kind_, Equal, GCData, Str, PtrToThis."""
_UNCOMMON_AT = {"struct": 80, "ptr": 56, "slice": 56, "func": 56, "array": 72, "chan": 64, "interface": 80}
"""Where the UncommonType follows each kind's descriptor; a map's is never needed."""
_TYPE_HEADER = struct.Struct("<QQIBBBBQQii")
_U64 = struct.Struct("<Q")
_TAG = re.compile(r'([^\s:"]+):"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class _RawType:
    kind: str
    name: str
    elem: int = 0
    key: int = 0
    fields: tuple[tuple[str, str, bool, bool, int], ...] = ()
    """(name, tag, exported, embedded, type address) per field."""


class _Image:
    """A 64-bit little-endian ELF executable, mapped: its sections and loaded segments."""

    def __init__(self, data: mmap.mmap | bytes) -> None:
        self.data = data
        if data[:4] != b"\x7fELF":
            raise ProtobufUnavailable("not an ELF executable")
        if data[4] != 2 or data[5] != 1:
            raise ProtobufUnavailable("not a 64-bit little-endian ELF executable")
        e_type = struct.unpack_from("<H", data, 16)[0]
        if e_type != 2:
            raise ProtobufUnavailable("not a statically positioned executable (ET_EXEC)")
        phoff, shoff = struct.unpack_from("<QQ", data, 32)
        phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 54)
        self.segments: list[tuple[int, int, int]] = []
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
            if p_type == 1:
                self.segments.append((p_vaddr, p_offset, p_filesz))
        headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        if not headers or shstrndx >= len(headers):
            raise ProtobufUnavailable("the ELF executable has no section headers")
        names_at = headers[shstrndx][4]
        self.sections: dict[str, tuple[int, int, int]] = {}
        for name_offset, _, _, addr, offset, size in headers:
            start = names_at + name_offset
            name = bytes(data[start : data.find(b"\x00", start)]).decode("ascii", "replace")
            self.sections[name] = (addr, offset, size)

    def offset(self, address: int) -> int:
        for vaddr, offset, size in self.segments:
            if vaddr <= address < vaddr + size:
                return address - vaddr + offset
        raise ValueError(f"address {address:#x} is not in the file")

    def section(self, name: str) -> tuple[int, int, int]:
        found = self.sections.get(name)
        if found is None:
            raise ProtobufUnavailable(f"the executable has no {name} section (not a Go binary?)")
        return found


def _go_version(image: _Image) -> str:
    """The Go version in .go.buildinfo (``go1.26.8``), when it is stored inline (Go 1.18 and later)."""
    found = image.sections.get(".go.buildinfo")
    if found is None:
        return ""
    _, offset, _ = found
    header = bytes(image.data[offset : offset + 32])
    if not header.startswith(b"\xff Go buildinf:") or not header[15] & 2:
        return ""
    size, pos = _varint(bytes(image.data[offset + 32 : offset + 42]), 0)
    return bytes(image.data[offset + 32 + pos : offset + 32 + pos + size]).decode("ascii", "replace")


def _types_base(image: _Image) -> tuple[int, list[int]]:
    """The address type offsets are relative to (moduledata.types), and the type addresses typelinks lists."""
    typelink_addr, typelink_offset, typelink_size = image.section(".typelink")
    rodata_addr, _, rodata_size = image.section(".rodata")
    pclntab_addr = image.section(".gopclntab")[0]
    count = typelink_size // 4
    module = image.sections.get(".go.module")  # Go 1.26 gives moduledata a section of its own
    regions = [module] if module else [image.sections[s] for s in (".noptrdata", ".data") if s in image.sections]
    data = image.data
    for _, offset, size in regions:
        for at in range(offset, offset + size - 8, 8):
            if _U64.unpack_from(data, at)[0] != pclntab_addr:
                continue
            words = [_U64.unpack_from(data, at + 8 * i)[0] for i in range(96) if at + 8 * i + 8 <= len(data)]
            for k in range(len(words) - 2):
                if words[k] == typelink_addr and words[k + 1] == words[k + 2] == count:
                    inside = [w for w in words[:k] if rodata_addr <= w < rodata_addr + rodata_size]
                    if inside:
                        base = min(inside)
                        links = struct.unpack_from(f"<{count}i", data, typelink_offset)
                        return base, [base + link for link in links]
    raise ProtobufUnavailable("cannot find the Go module data (moduledata) in the executable")


class _TypeReader:
    """Go type descriptors, read from the mapped executable."""

    def __init__(self, image: _Image, base: int) -> None:
        self.image = image
        self.data = image.data
        self.base = base
        self.names: dict[int, tuple[str, str, int]] = {}

    def name(self, address: int) -> tuple[str, str, int]:
        """An abi.Name: (name, tag, flag byte)."""
        found = self.names.get(address)
        if found is None:
            data = self.data
            at = self.image.offset(address)
            flags = data[at]
            size, at = self._uvarint(at + 1)
            text = bytes(data[at : at + size]).decode("utf-8", "replace")
            tag = ""
            if flags & 2:
                tag_size, tag_at = self._uvarint(at + size)
                tag = bytes(data[tag_at : tag_at + tag_size]).decode("utf-8", "replace")
            found = (text, tag, flags)
            self.names[address] = found
        return found

    def _uvarint(self, at: int) -> tuple[int, int]:
        value, shift = 0, 0
        while True:
            byte = self.data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, at
            shift += 7

    def read(self, address: int) -> tuple[_RawType, list[int]]:
        """One type descriptor, and the addresses of the types it refers to."""
        data = self.data
        at = self.image.offset(address)
        _, _, _, tflag, _, _, kind_byte, _, _, str_off, ptr_to_this = _TYPE_HEADER.unpack_from(data, at)
        kind = _KINDS[kind_byte & 0x1F] if kind_byte & 0x1F < len(_KINDS) else "invalid"
        text = self.name(self.base + str_off)[0]
        if tflag & _TFLAG_EXTRA_STAR:
            text = text[1:]
        name = ""
        if tflag & _TFLAG_NAMED:
            # A map's UncommonType moves with the map implementation; its short name is enough.
            package = self._package(at, kind, tflag) if kind != "map" else ""
            name = f"{package}.{text.partition('.')[2]}" if package else text
        refs: list[int] = [self.base + ptr_to_this] if ptr_to_this > 0 else []
        elem = key = 0
        fields: tuple[tuple[str, str, bool, bool, int], ...] = ()
        if kind in ("ptr", "slice", "array", "chan"):
            elem = _U64.unpack_from(data, at + 48)[0]
            refs.append(elem)
        elif kind == "map":
            key, elem = struct.unpack_from("<QQ", data, at + 48)
            refs += (key, elem)
        elif kind == "struct":
            fields_at, count = struct.unpack_from("<QQ", data, at + 56)
            rows = []
            if count:
                base = self.image.offset(fields_at)
                for i in range(count):
                    name_at, type_at, _ = struct.unpack_from("<QQQ", data, base + 24 * i)
                    field_name, tag, flags = self.name(name_at)
                    rows.append((field_name, tag, bool(flags & 1), bool(flags & 8), type_at))
                    refs.append(type_at)
            fields = tuple(rows)
        elif kind == "func":
            in_count, out_count = struct.unpack_from("<HH", data, at + 48)
            params = at + 56 + (16 if tflag & _TFLAG_UNCOMMON else 0)
            total = in_count + (out_count & 0x7FFF)
            refs += struct.unpack_from(f"<{total}Q", data, params)
        return _RawType(kind, name, elem, key, fields), refs

    def _package(self, at: int, kind: str, tflag: int) -> str:
        if not tflag & _TFLAG_UNCOMMON:
            return ""
        package_off = struct.unpack_from("<i", self.data, at + _UNCOMMON_AT.get(kind, _TYPE_SIZE))[0]
        return self.name(self.base + package_off)[0] if package_off else ""


def _itab_types(image: _Image) -> list[int]:
    found = image.sections.get(".itablink")
    if found is None:
        return []
    _, offset, size = found
    types = []
    for itab in struct.unpack_from(f"<{size // 8}Q", image.data, offset):
        try:
            types.append(_U64.unpack_from(image.data, image.offset(itab) + 8)[0])
        except ValueError:
            continue
    return types


def read_schema(binary: Path) -> Schema:
    """The schema of the Kubernetes API types in the Go binary ``binary`` (no caching).

    Raises ProtobufUnavailable when the file cannot be read or holds no usable Go type metadata.
    """
    try:
        with binary.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _read_schema(_Image(data))
    except ProtobufUnavailable:
        raise
    except (OSError, ValueError, struct.error, IndexError) as error:
        raise ProtobufUnavailable(f"cannot read Go type metadata from {binary}: {error}") from error


def _read_schema(image: _Image) -> Schema:
    version = _go_version(image)
    if version and _older_than(version, (1, 20)):
        raise ProtobufUnavailable(f"built with {version}; Go 1.20 or later is needed")
    base, roots = _types_base(image)
    reader = _TypeReader(image, base)
    raw: dict[int, _RawType] = {}
    pending = roots + _itab_types(image)
    while pending:
        address = pending.pop()
        if address in raw or not address:
            continue
        try:
            described, refs = reader.read(address)
        except (ValueError, struct.error, IndexError):
            continue
        raw[address] = described
        pending.extend(refs)
    kept = [
        address
        for address, t in raw.items()
        if t.kind == "struct"
        and (
            t.name in _SPECIAL_STRUCTS or (t.name.startswith("k8s.io/") and any("protobuf:" in f[1] for f in t.fields))
        )
    ]
    if not kept:
        raise ProtobufUnavailable("the executable holds no Kubernetes API types")
    return _tabulate(raw, kept, version)


def _older_than(version: str, wanted: tuple[int, int]) -> bool:
    match = re.match(r"go(\d+)\.(\d+)", version)
    if match is None:
        return False
    return (int(match[1]), int(match[2])) < wanted


def _tabulate(raw: Mapping[int, _RawType], roots: list[int], version: str) -> Schema:
    """The types reachable from ``roots``, numbered, with their fields' tags parsed."""
    ids: dict[int, int] = {}
    order: list[int] = []

    def number(address: int) -> int:
        if address not in raw:
            return -1
        found = ids.get(address)
        if found is None:
            found = ids[address] = len(order)
            order.append(address)
        return found

    for address in sorted(roots, key=lambda a: raw[a].name):
        number(address)
    types: list[GoType] = []
    while len(types) < len(order):
        t = raw[order[len(types)]]
        opaque = t.name in _OPAQUE
        if t.kind in ("ptr", "slice", "array", "map"):
            elem = number(t.elem)
            key = number(t.key) if t.kind == "map" else -1
            if elem < 0 or (t.kind == "map" and key < 0):
                types.append(GoType("interface", t.name))  # unreadable: decodes as nothing
                continue
            types.append(GoType(t.kind, t.name, elem, key))
        elif t.kind == "struct" and not opaque:
            fields = []
            for name, tag, exported, embedded, type_address in t.fields:
                index = number(type_address)
                if index >= 0:
                    fields.append(_go_field(name, tag, exported, embedded, index, raw[type_address]))
            types.append(GoType("struct", t.name, fields=tuple(fields)))
        else:
            types.append(GoType(t.kind, t.name))
    return Schema(tuple(types), version)


def _struct_tag(tag: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for key, quoted in _TAG.findall(tag):
        try:
            values.setdefault(key, json.loads(f'"{quoted}"'))
        except ValueError:
            values.setdefault(key, quoted)
    return values


def _go_field(name: str, tag: str, exported: bool, embedded: bool, index: int, t: _RawType) -> GoField:
    """A struct field as encoding/json and gogo-protobuf see it."""
    tags = _struct_tag(tag)
    json_tag = tags.get("json")
    json_name, *options = (json_tag or "").split(",")
    # encoding/json promotes the fields of an embedded struct (or pointer to one) that has no JSON name.
    inline = embedded and not json_name and json_tag != "-" and t.kind in ("struct", "ptr")
    skip = json_tag == "-" or not (exported or inline)
    if not json_name:
        json_name = "" if inline else name
    number, encoding, repeated = 0, "", False
    proto = tags.get("protobuf", "")
    if proto and proto != "-":
        parts = proto.split(",")
        if len(parts) >= 2 and parts[1].isdigit():
            encoding, number = parts[0], int(parts[1])
            repeated = "rep" in parts[2:]
    return GoField(
        name,
        json_name,
        index,
        number,
        encoding,
        repeated=repeated,
        omitempty="omitempty" in options,
        omitzero="omitzero" in options,
        inline=inline,
        skip=skip,
    )


# --------------------------------------------------------------------------------------------------------------------
# Finding kubectl, and caching its schema in the process and on disk.

_loaded: dict[tuple[str, int, int, str], Schema] = {}
_lock = threading.Lock()


def find_kubectl() -> Path:
    """The kubectl binary: $UPKEEP_KUBECTL, else next to the running Python, else on PATH."""
    configured = os.environ.get("UPKEEP_KUBECTL")
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ProtobufUnavailable(f"UPKEEP_KUBECTL={configured} is not a file")
        return path
    beside = Path(sys.executable).parent / "kubectl"
    if beside.is_file():
        return beside
    found = shutil.which("kubectl")
    if found is None:
        raise ProtobufUnavailable("no kubectl binary to read protobuf schemas from (set UPKEEP_KUBECTL)")
    return Path(found)


def _cache_folder() -> Path:
    root = os.environ.get("XDG_CACHE_HOME")
    return (Path(root) if root else Path.home() / ".cache") / "upkeep"


def load_schema(binary: Path | None = None, *, cache: Path | None = None) -> Schema:
    """The schema of ``binary`` (default: ``find_kubectl()``), read once per process and cached on disk.

    ``cache`` is the folder of the disk cache (default: ``$XDG_CACHE_HOME/upkeep`` or ``~/.cache/upkeep``);
    its entries are keyed by the binary's size and modification time. Thread-safe. Raises
    ProtobufUnavailable when there is no binary or it cannot be read.
    """
    path = (binary or find_kubectl()).resolve()
    try:
        stat = path.stat()
    except OSError as error:
        raise ProtobufUnavailable(f"cannot read {path}: {error}") from error
    folder = cache or _cache_folder()
    key = (str(path), stat.st_size, stat.st_mtime_ns, str(folder))
    with _lock:
        found = _loaded.get(key)
        if found is None:
            found = _loaded[key] = _cached_schema(path, stat.st_size, stat.st_mtime_ns, folder)
        return found


def _cached_schema(path: Path, size: int, mtime_ns: int, folder: Path) -> Schema:
    digest = hashlib.sha256(f"{size}:{mtime_ns}:{CACHE_FORMAT}".encode()).hexdigest()[:24]
    cache = folder / f"kubectl-protobuf-{digest}.json"
    try:
        return Schema.from_json(json.loads(cache.read_bytes()))
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    schema = read_schema(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(schema.to_json(), separators=(",", ":")), encoding="utf-8")
        os.replace(partial, cache)
    except OSError:
        pass  # a read-only home only costs the next process a re-read
    return schema
