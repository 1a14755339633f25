"""The protobuf decoder over a hand-made schema and hand-built wire bytes: JSON shapes, special types, errors."""

from __future__ import annotations

import base64
import contextlib
import json
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from upkeep.sandbox import protobuf
from upkeep.sandbox.protobuf import GoField, GoType

META = "k8s.io/apimachinery/pkg/apis/meta/v1"

# --------------------------------------------------------------------------------------------------------------------
# Wire bytes, built by hand.


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def fixed64(number: int, value: float) -> bytes:
    return varint(number << 3 | 1) + struct.pack("<d", value)


def entry(key: str, value: bytes | str | None) -> bytes:
    return ld(1, key) + (b"" if value is None else ld(2, value))


def envelope(api_version: str, kind: str, raw: bytes, content_type: str = "", encoding: str = "") -> bytes:
    type_meta = ld(1, api_version) + ld(2, kind)
    return protobuf.MAGIC + ld(1, type_meta) + ld(2, raw) + ld(3, encoding) + ld(4, content_type)


# --------------------------------------------------------------------------------------------------------------------
# A schema like the ones read from kubectl, for a made-up kind Widget in demo.example.com/v1.


class Types:
    def __init__(self) -> None:
        self.types: list[GoType] = []

    def add(self, kind: str, name: str = "", elem: int = -1, key: int = -1, fields: tuple[GoField, ...] = ()) -> int:
        self.types.append(GoType(kind, name, elem, key, fields))
        return len(self.types) - 1


def field(name: str, json_name: str, type_: int, number: int = 0, encoding: str = "bytes", **flags: bool) -> GoField:
    return GoField(name, json_name, type_, number, encoding if number else "", **flags)


def build_schema() -> protobuf.Schema:
    t = Types()
    string, int32, int64, boolean = (
        t.add("string", "string"),
        t.add("int32", "int32"),
        t.add("int64", "int64"),
        t.add("bool", "bool"),
    )
    float64, byte = t.add("float64", "float64"), t.add("uint8", "uint8")
    raw_bytes, strings, int32s = t.add("slice", elem=byte), t.add("slice", elem=string), t.add("slice", elem=int32)
    labels = t.add("map", key=string, elem=string)
    secret_data = t.add("map", key=string, elem=raw_bytes)
    int32_ptr = t.add("ptr", elem=int32)
    time = t.add("struct", f"{META}.Time")
    time_ptr = t.add("ptr", elem=time)
    micro_time = t.add("struct", f"{META}.MicroTime")
    quantity = t.add("struct", "k8s.io/apimachinery/pkg/api/resource.Quantity")
    resources = t.add("map", "v1.ResourceList", key=string, elem=quantity)
    int_kind = t.add("int64", "k8s.io/apimachinery/pkg/util/intstr.Type")
    int_or_string = t.add(
        "struct",
        "k8s.io/apimachinery/pkg/util/intstr.IntOrString",
        fields=(
            field("Type", "Type", int_kind, 1, "varint"),
            field("IntVal", "IntVal", int32, 2, "varint"),
            field("StrVal", "StrVal", string, 3),
        ),
    )
    int_or_string_ptr = t.add("ptr", elem=int_or_string)
    raw_extension = t.add(
        "struct", "k8s.io/apimachinery/pkg/runtime.RawExtension", fields=(field("Raw", "Raw", raw_bytes, 1, skip=True),)
    )
    duration_ns = t.add("int64", "time.Duration")
    duration = t.add("struct", f"{META}.Duration", fields=(field("Duration", "Duration", duration_ns, 1, "varint"),))
    verbs = t.add("slice", f"{META}.Verbs", elem=string)
    type_meta = t.add(
        "struct",
        f"{META}.TypeMeta",
        fields=(
            field("Kind", "kind", string, 1, omitempty=True),
            field("APIVersion", "apiVersion", string, 2, omitempty=True),
        ),
    )
    object_meta = t.add(
        "struct",
        f"{META}.ObjectMeta",
        fields=(
            field("Name", "name", string, 1, omitempty=True),
            field("Namespace", "namespace", string, 3, omitempty=True),
            field("Generation", "generation", int64, 7, "varint", omitempty=True),
            field("CreationTimestamp", "creationTimestamp", time, 8, omitempty=True),
            field("DeletionTimestamp", "deletionTimestamp", time_ptr, 9, omitempty=True),
            field("Labels", "labels", labels, 11, repeated=True, omitempty=True),
            field("Finalizers", "finalizers", strings, 14, repeated=True, omitempty=True),
        ),
    )
    source = t.add("struct", "k8s.io/api/demo/v1.Source", fields=(field("Path", "path", string, 1, omitempty=True),))
    condition = t.add(
        "struct",
        "k8s.io/api/demo/v1.Condition",
        fields=(field("Type", "type", string, 1), field("Status", "status", string, 2)),
    )
    conditions = t.add("slice", elem=condition)
    spec = t.add(
        "struct",
        "k8s.io/api/demo/v1.WidgetSpec",
        fields=(
            field("Replicas", "replicas", int32_ptr, 1, "varint", omitempty=True),
            field("Name", "name", string, 2),
            field("Data", "data", raw_bytes, 3, omitempty=True),
            field("Items", "items", strings, 4, repeated=True),
            field("Ports", "ports", int32s, 5, "varint", repeated=True, omitempty=True),
            field("Verbs", "verbs", verbs, 6),
            field("Limits", "limits", resources, 7, repeated=True, omitempty=True),
            field("Port", "port", int_or_string, 8, omitempty=True),
            field("Raw", "raw", raw_extension, 9, omitempty=True),
            field("Timeout", "timeout", duration, 10),
            field("Offset", "offset", int64, 11, "varint", omitempty=True),
            field("Enabled", "enabled", boolean, 12, "varint"),
            field("Ratio", "ratio", float64, 13, "fixed64", omitempty=True),
            field("Delta", "delta", int32, 14, "zigzag32", omitempty=True),
            field("Secrets", "secrets", secret_data, 15, repeated=True, omitempty=True),
            field("Source", "", source, 16, inline=True),
            field("Heard", "heard", micro_time, 17, omitempty=True),
            field("Hidden", "Hidden", string, 18, skip=True),
            field("Conditions", "conditions", conditions, 19, repeated=True, omitempty=True),
            field("MaxSurge", "maxSurge", int_or_string_ptr, 20, omitempty=True),
        ),
    )
    t.add(
        "struct",
        "k8s.io/api/demo/v1.Widget",
        fields=(
            field("TypeMeta", "", type_meta, inline=True),
            field("ObjectMeta", "metadata", object_meta, 1, omitempty=True),
            field("Spec", "spec", spec, 2, omitempty=True),
        ),
    )
    t.add("struct", f"{META}.DeleteOptions", fields=(field("DryRun", "dryRun", strings, 5, omitempty=True),))
    return protobuf.Schema(tuple(t.types))


SCHEMA = build_schema()
ZERO_SPEC = {"name": "", "items": None, "verbs": None, "port": 0, "raw": None, "timeout": "0s", "enabled": False}
ZERO_SPEC_WITH_HEARD = {**ZERO_SPEC, "heard": None}


def widget(spec: bytes = b"", metadata: bytes = b"") -> dict[str, Any]:
    return protobuf.decode_request(envelope("demo.example.com/v1", "Widget", ld(1, metadata) + ld(2, spec)), SCHEMA)


def spec_of(spec: bytes) -> dict[str, Any]:
    decoded: dict[str, Any] = widget(spec)["spec"]
    return decoded


# --------------------------------------------------------------------------------------------------------------------
# The JSON shape of the Go struct.


def test_the_envelope_gives_kind_and_api_version_first() -> None:
    decoded = widget(metadata=ld(1, "w") + ld(3, "") + ld(8, b""))
    assert list(decoded) == ["kind", "apiVersion", "metadata", "spec"]
    assert decoded["kind"] == "Widget"
    assert decoded["apiVersion"] == "demo.example.com/v1"
    # Empty strings are omitted (omitempty); a zero Time is null even so (omitempty does not apply to structs).
    assert decoded["metadata"] == {"name": "w", "creationTimestamp": None}


def test_zero_fields_follow_the_json_tags() -> None:
    # Non-pointer scalars are always on the wire; omitempty drops their zero, no omitempty keeps it.
    spec = spec_of(ld(2, "") + vi(11, 0) + vi(12, 0) + vi(14, 0))
    assert spec == ZERO_SPEC_WITH_HEARD


def test_pointers_keep_a_zero_that_was_sent() -> None:
    assert spec_of(vi(1, 0))["replicas"] == 0
    assert "replicas" not in spec_of(b"")


def test_scalars() -> None:
    spec = spec_of(ld(2, "grüße") + vi(11, -5) + vi(12, 1) + fixed64(13, 1.5) + vi(14, 5))  # zigzag 5 = -3
    assert (spec["name"], spec["offset"], spec["enabled"], spec["ratio"], spec["delta"]) == ("grüße", -5, True, 1.5, -3)
    assert spec_of(fixed64(13, 2.0))["ratio"] == 2
    assert isinstance(spec_of(fixed64(13, 2.0))["ratio"], int)  # as json.loads reads Go's "2"


def test_negative_int32_sent_as_a_ten_byte_varint() -> None:
    assert len(varint(-7)) == 10
    assert spec_of(vi(1, -7))["replicas"] == -7


def test_repeated_strings_and_packed_or_unpacked_numbers() -> None:
    spec = spec_of(ld(4, "a") + ld(4, "b") + vi(5, 80) + ld(5, varint(443) + varint(8080)))
    assert spec["items"] == ["a", "b"]
    assert spec["ports"] == [80, 443, 8080]


def test_a_named_slice_is_a_message_of_items() -> None:
    assert spec_of(ld(6, ld(1, "get") + ld(1, "list")))["verbs"] == ["get", "list"]
    assert spec_of(ld(6, b""))["verbs"] == []


def test_bytes_are_base64() -> None:
    assert spec_of(ld(3, b"\x00\xff"))["data"] == base64.b64encode(b"\x00\xff").decode()
    assert "data" not in spec_of(ld(3, b""))


def test_maps_are_entries_sorted_by_key() -> None:
    decoded = widget(metadata=ld(11, entry("b", "2")) + ld(11, entry("a", "1")) + ld(11, entry("c", None)))
    assert list(decoded["metadata"]["labels"].items()) == [("a", "1"), ("b", "2"), ("c", "")]


def test_secret_style_bytes_map_values() -> None:
    spec = spec_of(ld(15, entry("password", b"s3cr3t")) + ld(15, entry("empty", None)))
    assert spec["secrets"] == {"empty": "", "password": base64.b64encode(b"s3cr3t").decode()}


def test_lists_of_messages_keep_fields_without_omitempty() -> None:
    spec = spec_of(ld(19, ld(1, "Ready") + ld(2, "True")) + ld(19, ld(1, "Stalled")))
    assert spec["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "Stalled", "status": ""}]


def test_an_embedded_struct_is_inlined() -> None:
    assert spec_of(ld(16, ld(1, "/data")))["path"] == "/data"
    assert "path" not in spec_of(ld(16, b""))


def test_json_dash_fields_are_left_out() -> None:
    assert "Hidden" not in spec_of(ld(18, "secret"))


def test_a_message_sent_twice_merges() -> None:
    decoded = protobuf.decode_request(
        envelope("demo.example.com/v1", "Widget", ld(1, ld(1, "w")) + ld(1, ld(3, "ns"))), SCHEMA
    )
    assert decoded["metadata"] == {"name": "w", "namespace": "ns", "creationTimestamp": None}


def test_unknown_fields_are_skipped() -> None:
    assert spec_of(vi(99, 1) + ld(98, "x") + fixed64(97, 1.0)) == ZERO_SPEC_WITH_HEARD


# --------------------------------------------------------------------------------------------------------------------
# Types whose JSON is not their struct.


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (1795255200, 0, "2026-11-21T10:00:00Z"),
        (1795255200, 999_999_999, "2026-11-21T10:00:00Z"),  # RFC 3339 in seconds: the fraction is cut
        (0, 0, "1970-01-01T00:00:00Z"),
        (-1, 0, "1969-12-31T23:59:59Z"),
        (-62135596800, 0, None),  # Go's zero time
    ],
)
def test_times(seconds: int, nanos: int, expected: str | None) -> None:
    assert widget(metadata=ld(8, vi(1, seconds) + vi(2, nanos)))["metadata"]["creationTimestamp"] == expected


def test_a_time_pointer_is_omitted_when_absent() -> None:
    metadata = widget(metadata=ld(9, vi(1, 1795255200)))["metadata"]
    assert metadata["deletionTimestamp"] == "2026-11-21T10:00:00Z"
    assert "deletionTimestamp" not in widget()["metadata"]


def test_micro_time() -> None:
    assert spec_of(ld(17, vi(1, 1795255200) + vi(2, 123_456_789)))["heard"] == "2026-11-21T10:00:00.123456Z"


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1_500, "1.5µs"),
        (1_500_000, "1.5ms"),
        (1_000_000_000, "1s"),
        (90_000_000_000, "1m30s"),
        (3_600_000_000_000, "1h0m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_durations_print_as_go_does(nanoseconds: int, expected: str) -> None:
    assert spec_of(ld(10, vi(1, nanoseconds)))["timeout"] == expected


def test_quantities_in_a_resource_list() -> None:
    spec = spec_of(ld(7, entry("memory", ld(1, "128Mi"))) + ld(7, entry("cpu", ld(1, "500m"))))
    assert spec["limits"] == {"cpu": "500m", "memory": "128Mi"}


def test_int_or_string() -> None:
    assert spec_of(ld(8, vi(1, 0) + vi(2, 8080) + ld(3, "")))["port"] == 8080
    assert spec_of(ld(8, vi(1, 1) + vi(2, 0) + ld(3, "http")))["port"] == "http"
    assert spec_of(ld(20, vi(1, 1) + ld(3, "25%")))["maxSurge"] == "25%"
    with pytest.raises(ValueError, match="IntOrString"):
        spec_of(ld(8, vi(1, 7)))


def test_raw_extensions_hold_json_or_a_nested_protobuf_object() -> None:
    assert spec_of(ld(9, ld(1, b'{"a": [1, true]}')))["raw"] == {"a": [1, True]}
    nested = envelope("demo.example.com/v1", "Widget", ld(1, ld(1, "inner")))
    assert spec_of(ld(9, ld(1, nested)))["raw"]["metadata"]["name"] == "inner"
    with pytest.raises(ValueError, match="not JSON"):
        spec_of(ld(9, ld(1, b"{nope")))


# --------------------------------------------------------------------------------------------------------------------
# The envelope, kinds, and bad input.


def test_json_inside_the_envelope() -> None:
    body = envelope("v1", "ConfigMap", b'{"data": {"a": "b"}}', content_type="application/json")
    assert protobuf.decode_request(body, SCHEMA) == {"kind": "ConfigMap", "apiVersion": "v1", "data": {"a": "b"}}


def test_kinds_of_meta_are_found_in_every_group_version() -> None:
    body = envelope("policy/v1", "DeleteOptions", ld(5, "All"))
    assert protobuf.decode_request(body, SCHEMA) == {
        "kind": "DeleteOptions",
        "apiVersion": "policy/v1",
        "dryRun": ["All"],
    }


def test_group_versions_map_to_go_packages() -> None:
    types = (GoType("struct", "k8s.io/api/rbac/v1.Role"), GoType("struct", "k8s.io/api/core/v1.Pod"))
    schema = protobuf.Schema(types)
    assert schema.type_for("rbac.authorization.k8s.io/v1", "Role") == 0
    assert schema.type_for("v1", "Pod") == 1
    assert schema.type_for("apps/v1", "Pod") is None


def test_decoding_a_message_by_type_name() -> None:
    assert SCHEMA.decode("k8s.io/api/demo/v1.Condition", ld(1, "Ready")) == {"type": "Ready", "status": ""}
    with pytest.raises(ValueError, match="no Go type"):
        SCHEMA.decode("k8s.io/api/demo/v1.Nothing", b"")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind": "Widget"}', "prefix"),
        (protobuf.MAGIC + b"\x0a\x05\x0a", "past the end"),
        (protobuf.MAGIC + b"\x10\xff", "inside a varint"),
        (protobuf.MAGIC + b"\x0b", "wire type 3"),
        (protobuf.MAGIC + b"\x08\x01", "wire type 0"),
        (envelope("", "Widget", b""), "without apiVersion"),
        (envelope("demo.example.com/v1", "Gadget", b""), "no protobuf schema for Gadget"),
        (envelope("demo.example.com/v1", "Widget", b"", encoding="gzip"), "content encoding"),
        (envelope("demo.example.com/v1", "Widget", b"", content_type="application/cbor"), "content type"),
        (envelope("demo.example.com/v1", "Widget", ld(2, vi(2, 1))), "Name is a string"),
        (envelope("demo.example.com/v1", "Widget", ld(2, ld(12, "x"))), "Enabled is a bool"),
    ],
)
def test_bad_bodies_are_value_errors(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        protobuf.decode_request(body, SCHEMA)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_value_error(noise: bytes) -> None:
    for body in (protobuf.MAGIC + noise, envelope("demo.example.com/v1", "Widget", noise)):
        with contextlib.suppress(ValueError):
            protobuf.decode_request(body, SCHEMA)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_integers_round_trip(int64: int, int32: int) -> None:
    spec = spec_of(vi(11, int64) + vi(1, int32))
    assert spec.get("offset", 0) == int64
    assert spec["replicas"] == int32


@given(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=8))
def test_string_maps_round_trip(labels: dict[str, str]) -> None:
    metadata = b"".join(ld(11, entry(k, v)) for k, v in labels.items())
    assert widget(metadata=metadata)["metadata"].get("labels", {}) == dict(sorted(labels.items()))


# --------------------------------------------------------------------------------------------------------------------
# The schema cache and reading binaries.


def test_the_schema_survives_its_json_form() -> None:
    restored = protobuf.Schema.from_json(json.loads(json.dumps(SCHEMA.to_json())))
    assert restored == SCHEMA
    assert (
        protobuf.decode_request(envelope("demo.example.com/v1", "Widget", ld(2, vi(1, 3))), restored)["spec"][
            "replicas"
        ]
        == 3
    )


@pytest.mark.parametrize(
    "data",
    [
        {"format": -1, "types": []},
        {"format": protobuf.CACHE_FORMAT, "types": [["struct", "x", -1, -1, [["F", "f", 5, 1, "bytes", 0]]]]},
        {"format": protobuf.CACHE_FORMAT, "types": [["struct"]]},
        {"format": protobuf.CACHE_FORMAT},
    ],
)
def test_a_bad_schema_cache_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        protobuf.Schema.from_json(data)


def test_a_binary_that_is_not_go_is_unavailable(tmp_path: Path) -> None:
    text = tmp_path / "kubectl"
    text.write_text("#!/bin/sh\necho not really\n")
    with pytest.raises(protobuf.ProtobufUnavailable):
        protobuf.read_schema(text)
    with pytest.raises(protobuf.ProtobufUnavailable):
        protobuf.read_schema(Path(sys.executable).resolve())  # an ELF file, not a Go one
    with pytest.raises(protobuf.ProtobufUnavailable):
        protobuf.read_schema(tmp_path / "missing")
    with pytest.raises(protobuf.ProtobufUnavailable):
        protobuf.load_schema(text, cache=tmp_path / "cache")
    assert not any((tmp_path / "cache").glob("*.json"))


def test_upkeep_kubectl_names_the_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPKEEP_KUBECTL", str(tmp_path / "missing"))
    with pytest.raises(protobuf.ProtobufUnavailable, match="UPKEEP_KUBECTL"):
        protobuf.find_kubectl()
    with pytest.raises(protobuf.ProtobufUnavailable):
        protobuf.decode_request(envelope("v1", "Namespace", b""))
    fake = tmp_path / "kubectl"
    fake.write_bytes(b"\x7fELF")
    monkeypatch.setenv("UPKEEP_KUBECTL", str(fake))
    assert protobuf.find_kubectl() == fake


def test_float32_prints_its_shortest_decimal() -> None:
    types = (
        GoType("float32", "float32"),
        GoType("slice", elem=0),
        GoType(
            "struct", "k8s.io/api/demo/v1.Gauge", fields=(field("Values", "values", 1, 1, "fixed32", repeated=True),)
        ),
    )
    packed = struct.pack("<fff", 0.1, 2.0, -1.25)
    values = protobuf.Schema(types).decode("k8s.io/api/demo/v1.Gauge", ld(1, packed))["values"]
    assert values == [0.1, 2, -1.25]
    with pytest.raises(ValueError, match="packed float32"):
        protobuf.Schema(types).decode("k8s.io/api/demo/v1.Gauge", ld(1, packed[:-1]))
