"""The CustomResourceDefinitions shipped in ``crds/``: loading them and reading their schemas.

``crds/`` is the one source of every schema. This module loads those files (the package
ships them as ``upkeep/crds``), turns an openAPIV3Schema into a JSON Schema that rejects
unknown fields the way ``kubectl apply --validate=strict`` does, and applies the schema's
defaults to an object the way the API server would.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "CustomResource",
    "apply_defaults",
    "by_kind",
    "crd_documents",
    "kinds",
    "load",
    "to_json_schema",
]

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"


@dataclass(frozen=True)
class CustomResource:
    """One kind as its CRD declares it."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    schema: Mapping[str, Any]
    """The openAPIV3Schema of the storage version, as written in the CRD."""
    printer_columns: tuple[Mapping[str, Any], ...]
    definition: Mapping[str, Any]
    """The whole CustomResourceDefinition document."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @functools.cached_property
    def json_schema(self) -> dict[str, Any]:
        """The schema as JSON Schema, strict about unknown fields."""
        return to_json_schema(self.schema)


def crd_documents() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in the package's ``crds/``, sorted by file name."""
    folder = resources.files("upkeep").joinpath("crds")
    documents: list[dict[str, Any]] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(entry.read_text(encoding="utf-8")):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                documents.append(document)
    return documents


@functools.cache
def load() -> tuple[CustomResource, ...]:
    """The kinds of every shipped CRD, read once per process."""
    found: list[CustomResource] = []
    for document in crd_documents():
        spec = document["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("storage"):
                continue
            found.append(
                CustomResource(
                    group=spec["group"],
                    version=version["name"],
                    kind=names["kind"],
                    plural=names["plural"],
                    singular=names.get("singular", names["kind"].lower()),
                    short_names=tuple(names.get("shortNames", ())),
                    namespaced=spec["scope"] == "Namespaced",
                    schema=version["schema"]["openAPIV3Schema"],
                    printer_columns=tuple(version.get("additionalPrinterColumns", ())),
                    definition=document,
                )
            )
    return tuple(found)


def by_kind() -> dict[str, CustomResource]:
    """The shipped kinds keyed by ``kind`` (``"Incident"``)."""
    return {resource.kind: resource for resource in load()}


def kinds() -> tuple[str, ...]:
    """The names of the shipped kinds, sorted."""
    return tuple(sorted(by_kind()))


def to_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an openAPIV3Schema that JSON Schema validators read as the API server does.

    Objects with ``properties`` get ``additionalProperties: false`` unless they preserve
    unknown fields, so an unknown field is an error as with ``fieldValidation=Strict``;
    ``nullable`` admits ``null``; ``x-kubernetes-int-or-string`` admits both types. The
    top level always admits ``apiVersion``, ``kind`` and ``metadata``, whose rules are the
    API server's own.
    """
    converted = _convert(schema)
    properties = converted.setdefault("properties", {})
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"type": "object"}
    return converted


def _convert(node: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = _convert(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_convert(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    if node.get(_INT_OR_STRING):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
    if "properties" in node and not node.get(_PRESERVE) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def apply_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's defaults filled in where fields are absent.

    As the API server does: a default applies to an absent field of an object that is
    present; defaults inside list items apply to every item.
    """
    if isinstance(value, dict):
        result = dict(value)
        for name, sub in schema.get("properties", {}).items():
            if name not in result and "default" in sub:
                result[name] = copy.deepcopy(sub["default"])
            if name in result:
                result[name] = apply_defaults(sub, result[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            known = set(schema.get("properties", {}))
            for name, item in result.items():
                if name not in known:
                    result[name] = apply_defaults(extra, item)
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [apply_defaults(schema["items"], item) for item in value]
    return value
