"""The sandbox's schemas: built-in definitions, OpenAPI v3 documents, validation, defaulting and pruning."""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from upkeep.sandbox import kinds, openapi

REPO = Path(__file__).resolve().parents[3]
CRD_FILES = sorted((REPO / "crds").glob("*.yaml"))
EXAMPLE_FILES = sorted((REPO / "examples" / "shop").rglob("*.yaml"))
CRDS = [yaml.safe_load(path.read_text(encoding="utf-8")) for path in CRD_FILES]
CUSTOM = {rtype.kind: rtype for crd in CRDS for rtype in kinds.from_crd(crd)}
BUILTIN = {rtype.definition: rtype for rtype in kinds.BUILTIN}
TYPES = [*kinds.BUILTIN, *CUSTOM.values()]
DEPLOYMENT = BUILTIN["io.k8s.api.apps.v1.Deployment"]
POD = "io.k8s.api.core.v1.Pod"


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "examples" / name).read_text(encoding="utf-8"))
    return loaded


def examples() -> Iterator[dict[str, Any]]:
    for path in EXAMPLE_FILES:
        yield from yaml.safe_load_all(path.read_text(encoding="utf-8"))


def stored(kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    return openapi.default_and_prune(CUSTOM[kind].schema, obj).obj


def errors_of(kind: str, obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    result = openapi.validate_object(CUSTOM[kind], stored(kind, obj))
    return [(error.field, error.type, error.message) for error in result.errors]


# ---------------------------------------------------------------------------------------------------------------------
# Built-in definitions


def test_the_nine_upkeep_crds_are_tested() -> None:
    assert len(CRD_FILES) == 9
    assert len(CUSTOM) == 9


@pytest.mark.parametrize("rtype", kinds.BUILTIN, ids=lambda rtype: rtype.kind)
def test_every_builtin_definition_resolves(rtype: kinds.ResourceType) -> None:
    node = openapi.BUILTIN_SCHEMAS.resolve(rtype.definition)
    assert {"group": rtype.group, "kind": rtype.kind, "version": rtype.version} in node[
        "x-kubernetes-group-version-kind"
    ]


def test_an_unknown_definition_raises() -> None:
    with pytest.raises(openapi.UnknownDefinition):
        openapi.BUILTIN_SCHEMAS.resolve("io.k8s.api.apps.v1.Nope")
    with pytest.raises(KeyError):
        openapi.list_semantics("io.k8s.api.apps.v1.Nope", ("spec",))


def test_definitions_load_once_and_only_when_first_used() -> None:
    calls = []

    def loader() -> Mapping[str, Any]:
        calls.append(1)
        return {"a.B": {"properties": {"x": {"$ref": "#/$defs/a.C"}}}, "a.C": {"type": ["string", "null"]}}

    schemas = openapi.BuiltinSchemas(loader)
    assert calls == []
    assert schemas.node_at("a.B", ("x",)) == {"type": ["string", "null"]}
    assert schemas.resolve("a.C") == {"type": ["string", "null"]}
    assert calls == [1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("spec", "replicas"), {"integer"}),
        (("spec", "template", "spec", "containers", 0, "image"), {"string"}),
        (("spec", "template", "spec", "containers", "image"), {"string"}),
        (("metadata", "labels", "app"), {"string"}),
        (("spec", "selector", "matchLabels", "app"), {"string"}),
    ],
)
def test_node_at_follows_refs_items_and_maps(path: tuple[str | int, ...], expected: set[str]) -> None:
    node = openapi.BUILTIN_SCHEMAS.node_at(DEPLOYMENT.definition, path)
    assert node is not None
    assert set(node["type"]) - {"null"} == expected


def test_node_at_an_unknown_field_is_none() -> None:
    assert openapi.BUILTIN_SCHEMAS.node_at(DEPLOYMENT.definition, ("spec", "replcas")) is None
    assert openapi.BUILTIN_SCHEMAS.node_at(DEPLOYMENT.definition, ("spec", "replicas", "deeper")) is None
    strategy = openapi.BUILTIN_SCHEMAS.node_at(DEPLOYMENT.definition, ("spec", "strategy"))
    assert strategy is not None and "rollingUpdate" in strategy["properties"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (("spec", "containers"), ("merge", "name", "map", ("name",))),
        (("spec", "containers", 0, "env"), ("merge", "name", "map", ("name",))),
        (("spec", "containers", "env"), ("merge", "name", "map", ("name",))),
        (("spec", "containers", 1, "ports"), ("merge", "containerPort", "map", ("containerPort", "protocol"))),
        (("spec", "containers", "volumeMounts"), ("merge", "mountPath", "map", ("mountPath",))),
        (("spec", "volumes"), ("merge,retainKeys", "name", "map", ("name",))),
        (("spec", "tolerations"), (None, None, "atomic", ())),
        (("spec", "containers", "args"), (None, None, "atomic", ())),
        (("status", "conditions"), ("merge", "type", "map", ("type",))),
        (("metadata", "finalizers"), ("merge", None, "set", ())),
        (("metadata", "ownerReferences"), ("merge", "uid", "map", ("uid",))),
        (("metadata", "labels"), (None, None, None, ())),
        (("spec", "nope"), (None, None, None, ())),
    ],
)
def test_list_semantics_of_pods(path: tuple[str | int, ...], expected: tuple[Any, ...]) -> None:
    assert openapi.list_semantics(POD, path) == expected


def test_list_semantics_read_the_patch_strategy_beside_a_ref() -> None:
    # DeploymentSpec.strategy is {"$ref": DeploymentStrategy, "x-kubernetes-patch-strategy": "retainKeys"}
    assert openapi.list_semantics(DEPLOYMENT.definition, ("spec", "strategy")).patch_strategy == "retainKeys"
    deep = ("spec", "template", "spec", "containers", 0, "ports")
    assert openapi.list_semantics(DEPLOYMENT.definition, deep).patch_merge_key == "containerPort"


@pytest.mark.parametrize(
    ("kind", "path", "expected"),
    [
        ("Playbook", ("spec", "steps"), (None, None, "map", ("name",))),
        ("Playbook", ("status", "conditions"), (None, None, "map", ("type",))),
        ("Playbook", ("spec", "steps", 0, "params"), (None, None, None, ())),
        ("SupportPolicy", ("spec", "sla"), (None, None, "map", ("severity",))),
        ("PlaybookRun", ("status", "steps"), (None, None, "map", ("name",))),
        ("Incident", ("spec", "nope", "deeper"), (None, None, None, ())),
    ],
)
def test_list_semantics_in_crd_schemas(kind: str, path: tuple[str | int, ...], expected: tuple[Any, ...]) -> None:
    assert openapi.list_semantics_in_schema(CUSTOM[kind].schema, path) == expected
    assert openapi.list_semantics_in_schema(None, path) == (None, None, None, ())


def test_field_semantics_carry_map_types_free_form_objects_and_key_defaults() -> None:
    ports = openapi.field_semantics(POD, ("spec", "containers", "ports"))
    assert ports == openapi.FieldSemantics(
        "merge", "containerPort", "map", ("containerPort", "protocol"), key_defaults=(("protocol", "TCP"),)
    )
    assert openapi.field_semantics(POD, ("metadata", "labels")).free_form
    assert not openapi.field_semantics(POD, ("spec",)).free_form
    assert openapi.field_semantics(POD, ("spec", "nodeSelector")).free_form
    selector = openapi.field_semantics(DEPLOYMENT.definition, ("spec", "selector"))
    assert selector.map_type == "atomic"
    assert openapi.field_semantics(POD, ("spec", "nope")) == openapi.FieldSemantics()
    schema = CUSTOM["Playbook"].schema
    assert openapi.field_semantics_in_schema(schema, ("spec", "steps")).map_keys == ("name",)
    # params declares the catalog's params (not free form); a Job template inside is.
    assert not openapi.field_semantics_in_schema(schema, ("spec", "steps", "params")).free_form
    assert openapi.field_semantics_in_schema(schema, ("spec", "steps", "params", "template")).free_form
    keyed = {
        "type": "object",
        "properties": {
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["port", "protocol"],
                "items": {
                    "type": "object",
                    "properties": {"port": {"type": "integer"}, "protocol": {"type": "string", "default": "TCP"}},
                },
            }
        },
    }
    assert openapi.field_semantics_in_schema(keyed, ("ports",)).key_defaults == (("protocol", "TCP"),)


# ---------------------------------------------------------------------------------------------------------------------
# OpenAPI v3


def schema_nodes(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every schema (and operation) node; the keys of "properties" are field names, not keywords."""
    if isinstance(node, Mapping):
        yield node
        for key, value in node.items():
            if key in ("properties", "schemas", "paths", "content", "responses") and isinstance(value, Mapping):
                for item in value.values():
                    yield from schema_nodes(item)
            elif key != "x-kubernetes-group-version-kind":
                yield from schema_nodes(value)
    elif isinstance(node, list):
        for item in node:
            yield from schema_nodes(item)


def refs_in(node: Any) -> Iterator[str]:
    for found in schema_nodes(node):
        if "$ref" in found:
            yield found["$ref"]


def document(group_version: str) -> dict[str, Any]:
    found = openapi.openapi_v3_document(group_version, TYPES)
    assert found is not None
    return found


GROUP_VERSIONS = sorted({rtype.group_version for rtype in TYPES})


def test_the_root_lists_every_group_version_with_its_content_hash() -> None:
    root = openapi.openapi_v3_root(TYPES)
    assert set(root) == {"paths"}
    expected = {f"apis/{gv}" if "/" in gv else f"api/{gv}" for gv in GROUP_VERSIONS}
    assert set(root["paths"]) == expected
    for key, entry in root["paths"].items():
        body = openapi.openapi_v3_document_json(key, TYPES)
        assert body is not None
        digest = openapi.content_hash(body)
        assert re.fullmatch(r"[0-9A-F]{128}", digest)
        assert entry == {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"}
        assert openapi.openapi_v3_etag(key, TYPES) == digest


@pytest.mark.parametrize("group_version", GROUP_VERSIONS)
def test_every_ref_resolves_within_the_document(group_version: str) -> None:
    doc = document(group_version)
    assert doc["openapi"] == "3.0.0"
    schemas = doc["components"]["schemas"]
    for ref in refs_in(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert all(path.startswith("/") for path in doc["paths"])
    for node in schema_nodes(schemas):
        if "type" in node:
            assert isinstance(node["type"], str) and node["type"] != "null"
        if "$ref" in node:
            assert set(node) == {"$ref"}, "siblings of $ref are wrapped in allOf in OpenAPI 3.0"


def patch_parameters(doc: Mapping[str, Any], gvk: Mapping[str, str]) -> list[str] | None:
    """kubectl's QueryParamVerifierV3: the parameters of the PATCH operation of the kind, or None."""
    for item in doc["paths"].values():
        operation = item.get("patch")
        if operation and operation.get("x-kubernetes-group-version-kind") == gvk:
            return [parameter["name"] for parameter in operation.get("parameters", [])]
    return None


@pytest.mark.parametrize("rtype", TYPES, ids=lambda rtype: f"{rtype.group_version}/{rtype.kind}")
def test_every_kind_has_its_schema_and_operations(rtype: kinds.ResourceType) -> None:
    doc = document(rtype.group_version)
    gvk = {"group": rtype.group, "kind": rtype.kind, "version": rtype.version}
    holders = [
        name
        for name, schema in doc["components"]["schemas"].items()
        if gvk in schema.get("x-kubernetes-group-version-kind", [])
    ]
    assert len(holders) == 1
    if "patch" in rtype.verbs:
        parameters = patch_parameters(doc, gvk)
        assert parameters is not None
        assert {"dryRun", "fieldManager", "fieldValidation", "force"} <= set(parameters)
    actions = {
        operation["x-kubernetes-action"]
        for item in doc["paths"].values()
        for method, operation in item.items()
        if method != "parameters" and operation.get("x-kubernetes-group-version-kind") == gvk
    }
    wanted = {"create": "post", "update": "put", "list": "list", "get": "get", "patch": "patch", "delete": "delete"}
    assert {action for verb, action in wanted.items() if verb in rtype.verbs} <= actions
    assert ("deletecollection" in actions) == ("deletecollection" in rtype.verbs)


def test_only_builtin_kinds_offer_strategic_merge_patch() -> None:
    def patch_types(rtype: kinds.ResourceType) -> set[str]:
        doc = document(rtype.group_version)
        prefix = f"/apis/{rtype.group}/{rtype.version}" if rtype.group else f"/api/{rtype.version}"
        scope = "/namespaces/{namespace}" if rtype.namespaced else ""
        operation = doc["paths"][f"{prefix}{scope}/{rtype.plural}/{{name}}"]["patch"]
        return set(operation["requestBody"]["content"])

    assert "application/strategic-merge-patch+json" in patch_types(DEPLOYMENT)
    assert patch_types(CUSTOM["Incident"]) == {
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    }


def test_builtin_kind_schemas_are_published_the_way_the_api_server_does() -> None:
    schemas = document("apps/v1")["components"]["schemas"]
    deployment = schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert "enum" not in deployment["properties"]["apiVersion"], "kubernetes-validate's pin is not published"
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}
    ]
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas  # the scale subresource's body
    paths = document("v1")["paths"]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/eviction" in paths
    assert "/api/v1/namespaces/{namespace}/pods/{name}/log" in paths
    assert "/api/v1/pods" in paths and "/api/v1/nodes/{name}/status" in paths


def test_verbs_decide_the_operations() -> None:
    review = document("authorization.k8s.io/v1")["paths"]
    assert set(review["/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]) == {"post", "parameters"}
    assert "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/{name}" not in review
    namespaces = document("v1")["paths"]["/api/v1/namespaces"]
    assert "delete" not in namespaces and "post" in namespaces


def resolve(doc: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while True:
        if "$ref" in node:
            node = doc["components"]["schemas"][node["$ref"].removeprefix("#/components/schemas/")]
        elif len(node.get("allOf", [])) == 1 and "properties" not in node:
            node = node["allOf"][0]
        else:
            return node


def explain(kind: str, resource: str, group_version: str, field_path: tuple[str, ...]) -> Mapping[str, Any]:
    """What kubectl explain does: the kind's GVK from a path operation, its schema, then the field path."""
    doc = document(group_version)
    gvk = next(
        operation["x-kubernetes-group-version-kind"]
        for path, item in doc["paths"].items()
        if path.endswith(f"/{resource}") or path.endswith(f"/{resource}/{{name}}")
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    )
    assert gvk["kind"] == kind
    node: Mapping[str, Any] = next(
        schema
        for schema in doc["components"]["schemas"].values()
        if gvk in schema.get("x-kubernetes-group-version-kind", [])
    )
    for name in field_path:
        node = resolve(doc, node)
        if "items" in node and "properties" not in node:
            node = resolve(doc, node["items"])
        node = node["properties"][name]
    return node


def test_explain_finds_descriptions_of_crd_fields() -> None:
    spec = explain("Incident", "incidents", "upkeep.dev/v1alpha1", ("spec",))
    assert spec["description"].startswith("What failed")
    severity = explain("Incident", "incidents", "upkeep.dev/v1alpha1", ("spec", "severity"))
    assert severity["enum"] == ["SEV1", "SEV2", "SEV3", "SEV4"]
    steps = explain("Playbook", "playbooks", "upkeep.dev/v1alpha1", ("spec", "steps", "action"))
    assert "description" in steps
    metadata = explain("Incident", "incidents", "upkeep.dev/v1alpha1", ("metadata", "labels"))
    assert metadata["additionalProperties"]["type"] == "string"
    assert explain("Deployment", "deployments", "apps/v1", ("spec", "replicas"))["type"] == "integer"


def test_crd_kinds_publish_their_schema_with_type_meta_and_int_or_string_unfolded() -> None:
    schemas = document("upkeep.dev/v1alpha1")["components"]["schemas"]
    playbook = schemas["dev.upkeep.v1alpha1.Playbook"]
    assert playbook["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert playbook["properties"]["kind"]["type"] == "string"
    min_healthy = playbook["properties"]["spec"]["properties"]["guards"]["properties"]["minHealthy"]
    assert min_healthy["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    listing = schemas["dev.upkeep.v1alpha1.PlaybookList"]
    assert listing["x-kubernetes-group-version-kind"] == [
        {"group": "upkeep.dev", "kind": "PlaybookList", "version": "v1alpha1"}
    ]
    assert listing["properties"]["items"]["items"] == {"$ref": "#/components/schemas/dev.upkeep.v1alpha1.Playbook"}


def test_documents_are_cached_by_the_identity_of_the_types() -> None:
    assert openapi.openapi_v3_document("apps/v1", TYPES) is openapi.openapi_v3_document("apps/v1", list(TYPES))
    assert openapi.openapi_v3_root(TYPES) is openapi.openapi_v3_root(TYPES)
    before = openapi.openapi_v3_etag("upkeep.dev/v1alpha1", TYPES)
    crd = copy.deepcopy(CRDS[0])
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "changed"
    changed = [rtype for rtype in TYPES if rtype.crd_name != crd["metadata"]["name"]] + kinds.from_crd(crd)
    assert openapi.openapi_v3_document("apps/v1", changed) is openapi.openapi_v3_document("apps/v1", TYPES)
    assert openapi.openapi_v3_etag("upkeep.dev/v1alpha1", changed) != before
    rebuilt = [rtype for rtype in TYPES if rtype.crd_name != crd["metadata"]["name"]] + kinds.from_crd(CRDS[0])
    assert openapi.openapi_v3_etag("upkeep.dev/v1alpha1", rebuilt) == before, "the hash is of the content"


def test_unknown_group_versions_have_no_document() -> None:
    assert openapi.openapi_v3_document("nope.dev/v1", TYPES) is None
    assert openapi.openapi_v3_document_json("apis/nope.dev/v1", TYPES) is None
    assert openapi.openapi_v3_document("apis/apps/v1", TYPES) is document("apps/v1")
    assert openapi.openapi_v3_document("api/v1", TYPES) is document("v1")


# ---------------------------------------------------------------------------------------------------------------------
# Custom resources: validation


def test_every_example_is_valid_and_keeps_every_field() -> None:
    seen = set()
    for obj in examples():
        rtype = CUSTOM[obj["kind"]]
        seen.add(obj["kind"])
        result = openapi.default_and_prune(rtype.schema, obj)
        assert result.pruned == []
        checked = openapi.validate_object(rtype, result.obj)
        assert checked.ok and checked.errors == [] and checked.unknown_fields == [], obj["kind"]
    assert seen == set(CUSTOM)


def incident(**spec: Any) -> dict[str, Any]:
    obj = example("shop/incident.yaml")
    for key, value in spec.items():
        if value is None:
            obj["spec"].pop(key, None)
        else:
            obj["spec"][key] = value
    return obj


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"severity": "SEV9"},
            (
                "spec.severity",
                "FieldValueNotSupported",
                'Unsupported value: "SEV9": supported values: "SEV1", "SEV2", "SEV3", "SEV4"',
            ),
        ),
        ({"severity": None}, ("spec.severity", "FieldValueRequired", "Required value")),
        (
            {"summary": "x" * 1025},
            ("spec.summary", "FieldValueTooLong", "Too long: may not be more than 1024 bytes"),
        ),
        (
            {"service": 7},
            (
                "spec.service",
                "FieldValueTypeInvalid",
                'Invalid value: "integer": spec.service in body must be of type string: "integer"',
            ),
        ),
        (
            {"signal": {"type": "Manual", "fingerprint": "Not-Lower"}},
            (
                "spec.signal.fingerprint",
                "FieldValueInvalid",
                'Invalid value: "Not-Lower": spec.signal.fingerprint in body should match '
                "'^[a-z0-9][a-z0-9:._-]{0,252}$'",
            ),
        ),
        (
            {"signal": {"fingerprint": "f"}},
            ("spec.signal.type", "FieldValueRequired", "Required value"),
        ),
        (
            {"workload": {"kind": "Deployment", "name": ["a"]}},
            (
                "spec.workload.name",
                "FieldValueTypeInvalid",
                'Invalid value: "array": spec.workload.name in body must be of type string: "array"',
            ),
        ),
    ],
)
def test_schema_errors_are_worded_as_the_api_server_words_them(
    spec: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert errors_of("Incident", incident(**spec)) == [expected]


def test_bounds_lists_formats_and_duplicates() -> None:
    playbook = example("shop/playbooks/crashloop.yaml")
    playbook["spec"]["order"] = 10001
    playbook["spec"]["guards"]["maxAttempts"] = 0
    playbook["spec"]["match"]["signalTypes"] = []
    playbook["spec"]["steps"] = [*playbook["spec"]["steps"], copy.deepcopy(playbook["spec"]["steps"][0])]
    playbook["spec"]["guards"]["minHealthy"] = True
    assert errors_of("Playbook", playbook) == [
        (
            "spec.order",
            "FieldValueInvalid",
            "Invalid value: 10001: spec.order in body should be less than or equal to 10000",
        ),
        (
            "spec.match.signalTypes",
            "FieldValueInvalid",
            "Invalid value: 0: spec.match.signalTypes in body should have at least 1 items",
        ),
        (
            "spec.guards.maxAttempts",
            "FieldValueInvalid",
            "Invalid value: 0: spec.guards.maxAttempts in body should be greater than or equal to 1",
        ),
        (
            "spec.guards.minHealthy",
            "FieldValueTypeInvalid",
            'Invalid value: "boolean": spec.guards.minHealthy in body must be of type integer,string: "boolean"',
        ),
        (
            f"spec.steps[{len(playbook['spec']['steps']) - 1}]",
            "FieldValueDuplicate",
            f'Duplicate value: {{"name":"{playbook["spec"]["steps"][0]["name"]}"}}',
        ),
    ]
    change = example("shop/change.yaml")
    change["spec"]["revision"] = "abc"
    change["spec"]["requestedWindow"] = {"start": "tomorrow", "end": "2026-01-02T10:00:00Z"}
    assert errors_of("Change", change) == [
        (
            "spec.revision",
            "FieldValueInvalid",
            'Invalid value: "abc": spec.revision in body should be at least 7 chars long',
        ),
        (
            "spec.requestedWindow.start",
            "FieldValueTypeInvalid",
            'Invalid value: "tomorrow": spec.requestedWindow.start in body must be of type date-time: "tomorrow"',
        ),
    ]


SYNTHETIC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "ratio": {"type": "number", "minimum": 1000000, "exclusiveMinimum": True},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 1, "uniqueItems": True},
                "one": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}},
                "maybe": {"type": "string", "nullable": True},
                "set": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "when": {"type": "string", "format": "date-time"},
                "odd": {"type": "string", "format": "no-such-format"},
            },
        },
    },
}
SYNTHETIC_TYPE = kinds.ResourceType("example.dev", "v1", "Thing", "things", True, schema=SYNTHETIC, crd_name="x")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"ratio": 1000000},
            # integer data is compared with the bound as an int64, float data with a float64 (printed as Go does)
            [
                (
                    "spec.ratio",
                    "FieldValueInvalid",
                    "Invalid value: 1000000: spec.ratio in body should be greater than 1000000",
                )
            ],
        ),
        (
            {"ratio": 2.5},
            [
                (
                    "spec.ratio",
                    "FieldValueInvalid",
                    "Invalid value: 2.5: spec.ratio in body should be greater than 1e+06",
                )
            ],
        ),
        (
            {"tags": ["a", "a"]},
            [
                ("spec.tags", "FieldValueTooMany", "Too many: 2: must have at most 1 item"),
                (
                    "spec.tags",
                    "FieldValueInvalid",
                    'Invalid value: "": spec.tags in body shouldn\'t contain duplicates',
                ),
            ],
        ),
        ({"one": {"a": 1, "b": 2}}, [("spec.one", "FieldValueTooMany", "Too many: 2: must have at most 1 item")]),
        (
            {"one": {"a": "x"}},
            [
                (
                    "spec.one.a",
                    "FieldValueTypeInvalid",
                    'Invalid value: "string": spec.one.a in body must be of type integer: "string"',
                )
            ],
        ),
        ({"maybe": None, "when": "2026-01-01T10:00:00.5+02:00", "odd": "anything"}, []),
        ({"set": ["a", "b", "a", "a"]}, [("spec.set[2]", "FieldValueDuplicate", 'Duplicate value: "a"')]),
        # kube-openapi lets an array through a string field that has a format (a quirk kept on purpose)
        ({"when": []}, []),
        (
            {"when": "2026-02-30T10:00:00Z"},
            [
                (
                    "spec.when",
                    "FieldValueTypeInvalid",
                    'Invalid value: "2026-02-30T10:00:00Z": spec.when in body must be of type date-time: '
                    '"2026-02-30T10:00:00Z"',
                )
            ],
        ),
    ],
)
def test_synthetic_schema_errors(spec: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    obj = {"apiVersion": "example.dev/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": spec}
    result = openapi.validate_object(SYNTHETIC_TYPE, obj)
    assert [(error.field, error.type, error.message) for error in result.errors] == expected


def test_unknown_fields_are_reported_for_warn_and_strict() -> None:
    obj = incident(severityy="SEV1")
    obj["spec"]["signal"]["labels"]["ok"] = "maps of strings keep any key"
    obj["spec"]["workload"]["extra"] = 1
    obj["status"] = {"timeline": [{"at": "2026-01-01T00:00:00Z", "to": "Acknowledged", "by": "me", "how": "?"}]}
    result = openapi.validate_object(CUSTOM["Incident"], obj)
    assert result.unknown_fields == ["spec.severityy", "spec.workload.extra", "status.timeline[0].how"]
    assert result.warnings == [
        'unknown field "spec.severityy"',
        'unknown field "spec.workload.extra"',
        'unknown field "status.timeline[0].how"',
    ]
    assert result.strict_error == (
        'strict decoding error: unknown field "spec.severityy", unknown field "spec.workload.extra", '
        'unknown field "status.timeline[0].how"'
    )
    assert openapi.default_and_prune(CUSTOM["Incident"].schema, obj).pruned == result.unknown_fields
    assert result.bad_request("Incident", "v1alpha1", strict=True) == (
        f'Incident in version "v1alpha1" cannot be handled as a Incident: {result.strict_error}'
    )
    assert result.bad_request("Incident", "v1alpha1", strict=False) is None
    clean = openapi.validate_object(CUSTOM["Incident"], incident())
    assert clean.strict_error is None and clean.bad_request("Incident", "v1alpha1", strict=True) is None


# ---------------------------------------------------------------------------------------------------------------------
# Custom resources: defaulting and pruning


def test_defaults_fill_absent_fields_of_present_objects_and_list_items() -> None:
    playbook = example("shop/playbooks/crashloop.yaml")
    playbook["spec"].pop("guards", None)
    playbook["spec"].pop("mode", None)
    for step in playbook["spec"]["steps"]:
        step.pop("timeout", None)
    result = stored("Playbook", playbook)
    assert result["spec"]["mode"] == "Automatic"
    assert all(step["timeout"] == "5m" for step in result["spec"]["steps"])
    # guards defaults to {} and its own fields then default in turn
    assert result["spec"]["guards"]["maxAttempts"] == 3
    assert result["spec"]["guards"]["rateLimit"] == {"perHour": 6, "burst": 2}
    assert "status" not in result, "absent objects are not created unless they have a default"


def test_pruning_keeps_meta_and_preserved_fields() -> None:
    playbook = example("shop/playbooks/oom.yaml")
    playbook["metadata"]["anything"] = {"kept": True}
    playbook["unknownTop"] = 1
    playbook["spec"]["steps"][0]["params"]["free"] = {"form": [1, 2]}
    playbook["spec"]["steps"][0]["bogus"] = "x"
    original = copy.deepcopy(playbook)
    result = openapi.default_and_prune(CUSTOM["Playbook"].schema, playbook)
    assert playbook == original, "the input is not modified"
    assert result.pruned == ["spec.steps[0].bogus", "unknownTop"]
    assert result.obj["metadata"]["anything"] == {"kept": True}
    assert result.obj["spec"]["steps"][0]["params"]["free"] == {"form": [1, 2]}
    assert "bogus" not in result.obj["spec"]["steps"][0]
    assert result.obj["apiVersion"] == "upkeep.dev/v1alpha1" and result.obj["kind"] == "Playbook"


EMBEDDING: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {
                        "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 1}}}
                    },
                },
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}},
                },
                "items": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"name": {"type": "string"}, "port": {"type": "integer", "default": 80}},
                    },
                },
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": "none"}},
                "gone": {"type": "string"},
                "nullable": {"type": "string", "nullable": True},
            },
        }
    },
}


def test_embedded_resources_preserved_fields_maps_and_nulls() -> None:
    obj = {
        "apiVersion": "example.dev/v1",
        "kind": "Thing",
        "metadata": {"name": "t"},
        "spec": {
            "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {}, "other": 1},
            "free": {"anything": [1], "known": {"a": "b", "c": "d"}},
            "items": [{"name": "a"}, {"name": "b", "port": 8080, "junk": True}],
            "labels": {"a": None, "b": "x"},
            "gone": None,
            "nullable": None,
        },
    }
    result = openapi.default_and_prune(EMBEDDING, obj)
    assert result.pruned == ["spec.free.known.c", "spec.items[1].junk", "spec.template.other"]
    spec = result.obj["spec"]
    assert spec["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"x": 1}, "spec": {"size": 1}}
    assert spec["free"] == {"anything": [1], "known": {"a": "b"}}
    assert spec["items"] == [{"name": "a", "port": 80}, {"name": "b", "port": 8080}]
    assert spec["labels"] == {"a": "none", "b": "x"}
    assert "gone" not in spec and spec["nullable"] is None


def test_unchanged_objects_are_not_copied() -> None:
    obj = stored("Incident", incident())
    again = openapi.default_and_prune(CUSTOM["Incident"].schema, obj)
    assert again.obj is obj and again.pruned == []


# ---------------------------------------------------------------------------------------------------------------------
# Built-in kinds


def deployment() -> dict[str, Any]:
    return example("apps/shop/deployment.yaml")


def test_builtin_unknown_fields_in_document_order_and_metadata_skipped() -> None:
    obj = deployment()
    obj["metadata"]["whatever"] = 1
    obj["spec"]["template"]["spec"]["containers"][0]["imagee"] = "nginx"
    obj["spec"]["replcas"] = 3
    obj["spec"]["template"]["metadata"]["labelz"] = {}
    result = openapi.validate_object(DEPLOYMENT, obj)
    assert result.unknown_fields == [
        "spec.template.metadata.labelz",
        "spec.template.spec.containers[0].imagee",
        "spec.replcas",
    ]
    assert result.errors == [] and result.decode_error is None
    assert openapi.validate_object(DEPLOYMENT, deployment()).unknown_fields == []
    pruned = openapi.prune_builtin(DEPLOYMENT.definition, obj)
    assert sorted(result.unknown_fields) == pruned.pruned
    assert (
        "replcas" not in pruned.obj["spec"] and "imagee" not in pruned.obj["spec"]["template"]["spec"]["containers"][0]
    )
    assert "replcas" in obj["spec"], "the input is not modified"
    clean = deployment()
    assert openapi.prune_builtin(DEPLOYMENT.definition, clean).obj is clean


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["spec"].update(replicas="3"),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        (
            lambda d: d["spec"].update(replicas=1.5),
            "json: cannot unmarshal number 1.5 into Go struct field DeploymentSpec.spec.replicas of type int32",
        ),
        (
            lambda d: d["spec"]["template"]["spec"].update(containers={"name": "x"}),
            "json: cannot unmarshal object into Go struct field PodSpec.spec.template.spec.containers of type "
            "[]v1.Container",
        ),
        (
            lambda d: d["spec"].update(template="x"),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.template of type "
            "v1.PodTemplateSpec",
        ),
        (
            lambda d: d["spec"]["selector"]["matchLabels"].update(app=5),
            "json: cannot unmarshal number into Go struct field LabelSelector.spec.selector.matchLabels of type string",
        ),
        (
            lambda d: d["spec"]["strategy"]["rollingUpdate"].update(maxSurge=True),
            "json: cannot unmarshal bool into Go value of type int32",
        ),
        (
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(cpu="lots"),
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            lambda d: d["spec"].update(paused="yes"),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.paused of type bool",
        ),
    ],
)
def test_builtin_decode_errors_are_worded_as_go_does(change: Any, message: str) -> None:
    obj = deployment()
    change(obj)
    result = openapi.validate_object(DEPLOYMENT, obj)
    assert result.decode_error == message and not result.ok
    assert result.bad_request("Deployment", "v1", strict=False) == (
        f'Deployment in version "v1" cannot be handled as a Deployment: {message}'
    )


def test_builtin_values_that_decode() -> None:
    obj = deployment()
    obj["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": "25%", "maxUnavailable": 0}
    obj["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] = {"cpu": 1, "memory": "1.5Gi"}
    obj["spec"]["replicas"] = None
    result = openapi.validate_object(DEPLOYMENT, obj)
    assert result.ok and result.unknown_fields == []


# ---------------------------------------------------------------------------------------------------------------------
# Property: the CRD validator agrees with a plain JSON Schema validator on what is valid


def to_json_schema(node: Any) -> Any:
    """A CRD schema as plain JSON Schema: int-or-string and nullable spelled as type lists."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out = {key: to_json_schema(value) for key, value in node.items() if not key.startswith("x-kubernetes-")}
    if isinstance(node.get("properties"), Mapping):
        out["properties"] = {name: to_json_schema(prop) for name, prop in node["properties"].items()}
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if node.get("type") == "string" and node.get("format") == "date-time":
        # kube-openapi's type validator returns early for a slice when a string field has a format, and its
        # format validator only looks at strings: kube-apiserver accepts [] there. The reference says so too.
        out["type"] = ["string", "array"]
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    return out


DATE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("date-time")
def is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = DATE_TIME.match(value)
    if not match or int(match[2]) > 23 or int(match[3]) > 59 or int(match[4]) > 59:
        return False
    try:
        datetime.date.fromisoformat(match[1])
    except ValueError:
        return False
    return True


VALIDATORS = {
    kind: jsonschema.Draft7Validator(to_json_schema(rtype.schema), format_checker=FORMATS)
    for kind, rtype in CUSTOM.items()
}
EXAMPLES = [obj for obj in examples()]


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            if path or key not in ("apiVersion", "kind", "metadata"):
                yield from leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaf_paths(item, (*path, index))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=20000)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.sampled_from(["", "a", "SEV1", "Manual", "5m", "x" * 300, "2026-01-01T00:00:00Z", "shop", "Deployment"]),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["name", "type", "x"]), children),
    max_leaves=4,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(EXAMPLES)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = [path for path in leaf_paths(obj) if path]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = obj
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON_VALUES)
    return obj


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_validity_agrees_with_json_schema(obj: dict[str, Any]) -> None:
    kind = obj["kind"]
    result = openapi.default_and_prune(CUSTOM[kind].schema, obj)
    ours = [
        error
        for error in openapi.validate_object(CUSTOM[kind], result.obj).errors
        if error.type != "FieldValueDuplicate"
    ]
    theirs = list(VALIDATORS[kind].iter_errors(result.obj))
    assert bool(ours) == bool(theirs), (ours, [error.message for error in theirs])
    again = openapi.default_and_prune(CUSTOM[kind].schema, result.obj)
    assert again.pruned == [] and again.obj == result.obj, "pruning and defaulting are idempotent"
