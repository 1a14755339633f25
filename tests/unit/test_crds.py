"""The files in crds/: accepted by Kubernetes' own schema, structural, and alike in shape."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from upkeep.model import schemas

CRDS = Path(__file__).resolve().parents[2] / "crds"
DESIGN_KINDS = {
    "GitSource": "Namespaced",
    "Release": "Namespaced",
    "Change": "Namespaced",
    "ChangePolicy": "Cluster",
    "Incident": "Namespaced",
    "Problem": "Namespaced",
    "Playbook": "Namespaced",
    "PlaybookRun": "Namespaced",
    "SupportPolicy": "Cluster",
}
# Where free-form content is meant, and nowhere else.
FREE_FORM = {
    ("Playbook", "spec.steps[].params"),
    ("Playbook", "spec.steps[].params.patch"),
    ("Playbook", "spec.steps[].params.target"),
    ("Playbook", "spec.steps[].params.template"),
    ("Release", "status.overrides[].value"),
}
FILES = sorted(CRDS.glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def walk(node: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from walk(sub, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), Mapping):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), Mapping):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_one_file_per_kind_of_the_design() -> None:
    kinds = {load(path)["spec"]["names"]["kind"]: load(path)["spec"]["scope"] for path in FILES}
    assert kinds == DESIGN_KINDS


def test_the_package_loads_the_same_files() -> None:
    assert {r.kind for r in schemas.load()} == set(DESIGN_KINDS)
    assert [d["metadata"]["name"] for d in schemas.crd_documents()] == [load(p)["metadata"]["name"] for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_kubernetes_accepts_the_crd(path: Path) -> None:
    kubernetes_validate.validate(load(path), "1.37", strict=True)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_names_versions_and_subresources(path: Path) -> None:
    crd = load(path)
    spec = crd["spec"]
    names = spec["names"]
    assert path.name == f"{names['plural']}.upkeep.dev.yaml"
    assert crd["metadata"]["name"] == f"{names['plural']}.upkeep.dev"
    assert spec["group"] == "upkeep.dev"
    assert names["singular"] == names["kind"].lower()
    assert names["listKind"] == names["kind"] + "List"
    assert "upkeep" in names["categories"]
    assert names["shortNames"]
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_printer_columns(path: Path) -> None:
    crd = load(path)
    columns = {c["name"]: c for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    kind = crd["spec"]["names"]["kind"]
    if kind == "Incident":
        assert columns["Severity"]["jsonPath"] == ".spec.severity"
    if kind == "Release":
        assert columns["Revision"]["jsonPath"] == ".status.revision"
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    if "phase" in schema["properties"]["status"]["properties"]:
        assert columns["Phase"]["jsonPath"] == ".status.phase"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_schema_is_structural_and_described(path: Path) -> None:
    crd = load(path)
    kind = crd["spec"]["names"]["kind"]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems = []
    for where, node in walk(schema):
        free = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "type" not in node and not node.get("x-kubernetes-int-or-string") and not free:
            problems.append(f"{where}: no type")
        if free and (kind, where) not in FREE_FORM:
            problems.append(f"{where}: preserves unknown fields where no free form is meant")
        if where and where not in ("apiVersion", "kind", "metadata") and not node.get("description"):
            problems.append(f"{where}: no description for kubectl explain")
        for banned in ("oneOf", "anyOf", "allOf", "not"):
            if banned in node:
                problems.append(f"{where}: uses {banned}")
        if node.get("type") == "object" and "properties" in node:
            for required in node.get("required", []):
                if required not in node["properties"]:
                    problems.append(f"{where}: requires {required!r}, which it does not declare")
        if node.get("x-kubernetes-list-type") == "map":
            keys = node["x-kubernetes-list-map-keys"]
            item = node["items"]
            for key in keys:
                if key not in item.get("required", []):
                    problems.append(f"{where}: list-map key {key!r} is not required in its items")
    assert not problems, "\n".join(problems)
    declared = {where for where, _ in walk(schema)}
    assert {w for k, w in FREE_FORM if k == kind} <= declared, "a FREE_FORM path no longer exists"


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_status_follows_the_conventions(path: Path) -> None:
    crd = load(path)
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["observedGeneration"]["type"] == "integer"
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["required"]) >= {"type", "status", "reason", "lastTransitionTime"}
    assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]


def test_defaults_are_valid_against_their_own_schema() -> None:
    import jsonschema

    for resource in schemas.load():
        for _, node in walk(resource.schema):
            if "default" in node:
                sub = schemas.to_json_schema({"type": "object", "properties": {"v": node}})
                sub["properties"].pop("metadata")
                jsonschema.validate({"v": node["default"]}, sub)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_root_metadata_is_left_to_the_api_server(path: Path) -> None:
    # The API server refuses a CRD whose root metadata schema says more than its type.
    schema = load(path)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["metadata"] == {"type": "object"}
