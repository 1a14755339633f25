"""Everything schema-shaped the sandbox serves: definitions, OpenAPI v3, validation, defaulting and pruning.

Four parts, all pure functions over dicts (no HTTP, no I/O but reading package data):

- ``BUILTIN_SCHEMAS``: Kubernetes 1.37's OpenAPI definitions as the kubernetes-validate package bundles them,
  loaded once per process on first use; ``list_semantics`` / ``list_semantics_in_schema`` tell strategic merge
  patch and server-side apply how a list merges (built-in kinds and CRD schemas alike), and
  ``field_semantics`` / ``field_semantics_in_schema`` add map types, free-form objects and list-map key defaults.
- ``openapi_v3_root`` / ``openapi_v3_document``: ``/openapi/v3`` and ``/openapi/v3/apis/<group>/<version>`` as a
  real API server publishes them: what kubectl reads for ``explain``, for strategic merge patches in client-side
  apply, and to decide whether the server validates fields itself (``fieldValidation`` on the PATCH operation).
  Documents are cached per group-version by the identity of the resource types, so rebuilding after a CRD
  change only redoes the group-versions that changed.
- ``validate_object``: the checks the API server makes on a request body: unknown fields (reported the way
  ``fieldValidation=Warn|Strict`` words them), Go decoding errors of built-in kinds, and the OpenAPI schema
  errors of custom resources with the reasons and messages kube-apiserver gives them.
- ``default_and_prune`` (custom resources) and ``prune_builtin`` (built-in kinds): the object the API server
  would store, with defaults applied and unknown fields dropped.

Errors: ``UnknownDefinition`` (a ``KeyError``) when a built-in definition name does not exist. Nothing else is
raised for well-formed input; a body that does not match its schema is reported, never raised.
"""

from __future__ import annotations

import base64
import binascii
import collections
import datetime
import decimal
import hashlib
import importlib.resources
import ipaddress
import itertools
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, NamedTuple

from upkeep.sandbox import kinds

__all__ = [
    "BUILTIN_SCHEMAS",
    "KUBERNETES_VERSION",
    "BuiltinSchemas",
    "FieldError",
    "FieldSemantics",
    "ListSemantics",
    "Pruned",
    "UnknownDefinition",
    "ValidationResult",
    "content_hash",
    "default_and_prune",
    "field_semantics",
    "field_semantics_in_schema",
    "list_semantics",
    "list_semantics_in_schema",
    "openapi_v3_document",
    "openapi_v3_document_json",
    "openapi_v3_etag",
    "openapi_v3_root",
    "prune_builtin",
    "validate_object",
]

KUBERNETES_VERSION = "1.37"
_DEFINITIONS_FILE = ("kubernetes-json-schema", "v1.37.0-local", "_definitions.json")
_REF_PREFIX = "#/$defs/"
_V3_PREFIX = "#/components/schemas/"

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_OBJECT_META = _META + "ObjectMeta"
_LIST_META = _META + "ListMeta"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_TIMES = frozenset({_META + "Time", _META + "MicroTime"})
_COMMON_DEFINITIONS = (
    _META + "DeleteOptions",
    _META + "Status",
    _META + "Patch",
    _META + "WatchEvent",
    _META + "APIResourceList",
)
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_EVICTION = "io.k8s.api.policy.v1.Eviction"

_OBJECT_META_DESCRIPTION = (
    "Standard object's metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_LIST_META_DESCRIPTION = (
    "Standard list metadata. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_API_VERSION_DESCRIPTION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized "
    "schemas to the latest internal value, and may reject unrecognized values. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DESCRIPTION = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this from the "
    "endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)


class UnknownDefinition(KeyError):
    """A built-in definition name that Kubernetes 1.37 does not have."""


# ---------------------------------------------------------------------------------------------------------------------
# Built-in definitions


def _load_bundled_definitions() -> Mapping[str, Any]:
    resource = importlib.resources.files("kubernetes_validate")
    for part in _DEFINITIONS_FILE:
        resource = resource / part
    loaded: dict[str, Any] = json.loads(resource.read_bytes())
    definitions: Mapping[str, Any] = loaded["$defs"]
    return definitions


class ListSemantics(NamedTuple):
    """How a list (or map) at one field path merges: what strategic merge patch and server-side apply need."""

    patch_strategy: str | None
    """``x-kubernetes-patch-strategy``: "merge", "replace", "retainKeys", "merge,retainKeys" or None."""
    patch_merge_key: str | None
    """``x-kubernetes-patch-merge-key``: the field that identifies an item for strategic merge patch."""
    list_type: str | None
    """``x-kubernetes-list-type``: "atomic", "set", "map"; None when unset (server-side apply treats that as atomic)."""
    list_map_keys: tuple[str, ...]
    """``x-kubernetes-list-map-keys`` of a list-type map."""


_NO_SEMANTICS = ListSemantics(None, None, None, ())


class BuiltinSchemas:
    """Kubernetes 1.37's OpenAPI definitions (kubernetes-validate's bundle), loaded on first use.

    Nodes are returned as the bundle has them: ``$ref`` is ``#/$defs/NAME`` and optional fields have type lists
    such as ``["string", "null"]``. Treat every returned node as read-only: it is shared.
    """

    def __init__(self, loader: Callable[[], Mapping[str, Any]] = _load_bundled_definitions) -> None:
        self._loader = loader
        self._definitions: Mapping[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def definitions(self) -> Mapping[str, Any]:
        """Every definition by name (loads the bundle on the first call)."""
        definitions = self._definitions
        if definitions is None:
            with self._lock:
                if self._definitions is None:
                    self._definitions = self._loader()
                definitions = self._definitions
        return definitions

    def resolve(self, definition_name: str) -> Mapping[str, Any]:
        """The definition named ``definition_name`` (io.k8s.api.apps.v1.Deployment); raises UnknownDefinition."""
        try:
            node: Mapping[str, Any] = self.definitions[definition_name]
        except KeyError:
            raise UnknownDefinition(definition_name) from None
        return node

    def deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """``node`` itself, or the definition its ``$ref`` names (followed until a node without one)."""
        seen = 0
        while "$ref" in node and seen < 32:
            node = self.resolve(_ref_name(node["$ref"]))
            seen += 1
        return node

    def node_at(self, definition_name: str, path: Sequence[str | int]) -> Mapping[str, Any] | None:
        """The resolved schema node of a field path inside an object of this definition, or None when none.

        ``path`` steps through properties, map values (additionalProperties) and list items; list indices may be
        given as ints or left out. Raises UnknownDefinition for an unknown definition name.
        """
        found = _walk(self.resolve(definition_name), path, self.deref)
        return None if found is None else found[1]

    def list_semantics(self, definition_name: str, path: Sequence[str | int]) -> ListSemantics:
        """Patch strategy, merge key, list type and map keys of the field at ``path`` (see ``list_semantics``)."""
        return self._list_semantics(definition_name, tuple(path))

    @lru_cache(maxsize=8192)  # noqa: B019 - one process-wide instance; the cache is meant to live as long
    def _list_semantics(self, definition_name: str, path: tuple[str | int, ...]) -> ListSemantics:
        found = _walk(self.resolve(definition_name), path, self.deref)
        if found is None:
            return _NO_SEMANTICS
        return _semantics_of(*found)


BUILTIN_SCHEMAS = BuiltinSchemas()
"""The process-wide definitions of the built-in kinds (loaded lazily)."""


def _ref_name(ref: str) -> str:
    if ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX) :]
    if ref.startswith(_V3_PREFIX):
        return ref[len(_V3_PREFIX) :]
    return ref.rsplit("/", 1)[-1]


def _identity(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return node


def _is_array(node: Mapping[str, Any]) -> bool:
    return isinstance(node.get("items"), Mapping) and "properties" not in node


def _walk(
    root: Mapping[str, Any], path: Iterable[str | int], deref: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """(the node as its parent declares it, that node resolved) for ``path``, or None."""
    raw = root
    node = deref(root)
    for key in path:
        if isinstance(key, int) and not isinstance(key, bool):
            items = node.get("items")
            if not isinstance(items, Mapping):
                return None
            raw = items
            node = deref(raw)
            continue
        if _is_array(node):
            node = deref(node["items"])
        properties = node.get("properties")
        if isinstance(properties, Mapping) and key in properties:
            raw = properties[key]
        else:
            additional = node.get("additionalProperties")
            if not isinstance(additional, Mapping):
                return None
            raw = additional
        node = deref(raw)
    return raw, node


def _semantics_of(raw: Mapping[str, Any], node: Mapping[str, Any]) -> ListSemantics:
    def pick(key: str) -> Any:
        value = raw.get(key)
        return node.get(key) if value is None else value

    strategy, merge_key, list_type, map_keys = (
        pick("x-kubernetes-patch-strategy"),
        pick("x-kubernetes-patch-merge-key"),
        pick("x-kubernetes-list-type"),
        pick("x-kubernetes-list-map-keys"),
    )
    return ListSemantics(
        strategy if isinstance(strategy, str) else None,
        merge_key if isinstance(merge_key, str) else None,
        list_type if isinstance(list_type, str) else None,
        tuple(str(key) for key in map_keys) if isinstance(map_keys, list) else (),
    )


def list_semantics(definition_name: str, path: Sequence[str | int]) -> ListSemantics:
    """How the list at ``path`` of an object of a built-in definition merges (ListSemantics of Nones if unknown).

    ``path`` is a field path into an object of that kind, e.g. ``("spec", "template", "spec", "containers")`` or
    ``("spec", "template", "spec", "containers", 0, "ports")``; list indices may be ints or left out.
    Raises UnknownDefinition for an unknown definition name.
    """
    return BUILTIN_SCHEMAS.list_semantics(definition_name, path)


def list_semantics_in_schema(schema: Mapping[str, Any] | None, path: Sequence[str | int]) -> ListSemantics:
    """``list_semantics`` for a custom resource, given the openAPIV3Schema of its version.

    CRD schemas carry ``x-kubernetes-list-type`` and ``x-kubernetes-list-map-keys`` but no patch strategy.
    """
    if not schema:
        return _NO_SEMANTICS
    found = _walk(schema, path, _identity)
    if found is None:
        return _NO_SEMANTICS
    return _semantics_of(*found)


@dataclass(frozen=True)
class FieldSemantics:
    """Everything merging needs of the field at one path; "" and () where the schema says nothing.

    The field names are those of ``patching.ListSemantics``: ``patching.ListSemantics(**vars(found))``.
    """

    patch_strategy: str = ""
    merge_key: str = ""
    list_type: str = ""
    map_keys: tuple[str, ...] = ()
    map_type: str = ""
    """x-kubernetes-map-type: "atomic" or "granular"."""
    free_form: bool = False
    """The object's keys are map entries (additionalProperties, or preserved unknown fields), not properties."""
    key_defaults: tuple[tuple[str, Any], ...] = ()
    """Defaults of the list-map key fields, (name, default) pairs (e.g. ("protocol", "TCP") for ports)."""


_NO_FIELD = FieldSemantics()

# kubernetes-validate's bundle lost the defaults of the built-in list-map keys; these are the API server's.
_BUILTIN_KEY_DEFAULTS = {
    "io.k8s.api.core.v1.ContainerPort": (("protocol", "TCP"),),
    "io.k8s.api.core.v1.ServicePort": (("protocol", "TCP"),),
    "io.k8s.api.core.v1.EndpointPort": (("protocol", "TCP"),),
    "io.k8s.api.discovery.v1.EndpointPort": (("protocol", "TCP"),),
}


def _field_semantics(
    raw: Mapping[str, Any], node: Mapping[str, Any], deref: Callable[[Mapping[str, Any]], Mapping[str, Any]]
) -> FieldSemantics:
    basic = _semantics_of(raw, node)
    map_type = raw.get("x-kubernetes-map-type") or node.get("x-kubernetes-map-type")
    free_form = "properties" not in node and (
        isinstance(node.get("additionalProperties"), Mapping)
        or node.get("x-kubernetes-preserve-unknown-fields") is True
        or (node.get("additionalProperties") is True)
    )
    key_defaults: tuple[tuple[str, Any], ...] = ()
    items = node.get("items")
    if basic.list_map_keys and isinstance(items, Mapping):
        ref = items.get("$ref")
        if isinstance(ref, str) and _ref_name(ref) in _BUILTIN_KEY_DEFAULTS:
            key_defaults = _BUILTIN_KEY_DEFAULTS[_ref_name(ref)]
        else:
            properties = deref(items).get("properties") or {}
            key_defaults = tuple(
                (key, properties[key]["default"])
                for key in basic.list_map_keys
                if isinstance(properties.get(key), Mapping) and properties[key].get("default") is not None
            )
    return FieldSemantics(
        basic.patch_strategy or "",
        basic.patch_merge_key or "",
        basic.list_type or "",
        basic.list_map_keys,
        map_type if isinstance(map_type, str) else "",
        bool(free_form),
        key_defaults,
    )


@lru_cache(maxsize=8192)
def _builtin_field_semantics(definition_name: str, path: tuple[str | int, ...]) -> FieldSemantics:
    found = _walk(BUILTIN_SCHEMAS.resolve(definition_name), path, BUILTIN_SCHEMAS.deref)
    if found is None:
        return _NO_FIELD
    return _field_semantics(*found, BUILTIN_SCHEMAS.deref)


def field_semantics(definition_name: str, path: Sequence[str | int]) -> FieldSemantics:
    """``list_semantics`` and more (map type, free-form objects, list-map key defaults) for a built-in kind.

    Raises UnknownDefinition for an unknown definition name.
    """
    return _builtin_field_semantics(definition_name, tuple(path))


def field_semantics_in_schema(schema: Mapping[str, Any] | None, path: Sequence[str | int]) -> FieldSemantics:
    """``field_semantics`` for a custom resource, given the openAPIV3Schema of its version."""
    if not schema:
        return _NO_FIELD
    found = _walk(schema, path, _identity)
    if found is None:
        return _NO_FIELD
    return _field_semantics(*found, _identity)


# ---------------------------------------------------------------------------------------------------------------------
# OpenAPI v3


def content_hash(data: bytes) -> str:
    """The hash kube-apiserver puts in ``serverRelativeURL`` (?hash=) and the ETag: upper-case hex SHA-512."""
    return hashlib.sha512(data).hexdigest().upper()


def _v3_type(value: Any) -> Any:
    if isinstance(value, list):
        kept = [item for item in value if item != "null"]
        if len(kept) == 1:
            return kept[0]
        return kept or None
    return value


def _to_v3(node: Any, refs: set[str], *, strip_type_enums: bool = False) -> Any:
    """A bundle node converted to OpenAPI 3.0 as kube-apiserver publishes it; collects the names it references."""
    if isinstance(node, list):
        return [_to_v3(item, refs) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    ref: str | None = None
    for key, value in node.items():
        if key == "$ref":
            ref = _ref_name(value)
            refs.add(ref)
        elif key == "type":
            converted = _v3_type(value)
            if converted is not None:
                out["type"] = converted
        elif key == "properties" and isinstance(value, Mapping):
            properties = {}
            for name, prop in value.items():
                converted_prop = _to_v3(prop, refs)
                if strip_type_enums and name in ("apiVersion", "kind") and isinstance(converted_prop, dict):
                    # kubernetes-validate pins apiVersion and kind with an enum; the API server publishes none.
                    converted_prop.pop("enum", None)
                properties[name] = converted_prop
            out["properties"] = properties
        elif key in ("items", "additionalProperties", "not"):
            out[key] = _to_v3(value, refs)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_to_v3(item, refs) for item in value]
        else:
            out[key] = value
    if ref is not None:
        target = {"$ref": _V3_PREFIX + ref}
        if not out:
            return target
        # In OpenAPI 3.0 a $ref's siblings are ignored, so the API server wraps the reference in allOf.
        return {"allOf": [target], **out}
    return out


@cache
def _builtin_component(name: str) -> tuple[dict[str, Any], frozenset[str]]:
    node = BUILTIN_SCHEMAS.resolve(name)
    refs: set[str] = set()
    converted = _to_v3(node, refs, strip_type_enums="x-kubernetes-group-version-kind" in node)
    if name == _INT_OR_STRING:
        converted.setdefault("format", "int-or-string")
    return converted, frozenset(refs)


def _closure(names: Iterable[str], schemas: dict[str, Any]) -> None:
    pending = [name for name in names if name not in schemas]
    while pending:
        name = pending.pop()
        if name in schemas:
            continue
        component, refs = _builtin_component(name)
        schemas[name] = component
        pending.extend(ref for ref in refs if ref not in schemas)


def _crd_model_name(group: str, version: str, kind: str) -> str:
    return ".".join([*reversed(group.split(".")), version, kind])


def _crd_schema_to_v3(node: Any) -> Any:
    """A CRD openAPIV3Schema node as published: unchanged, but int-or-string unfolded to anyOf and embedded meta."""
    if isinstance(node, list):
        return [_crd_schema_to_v3(item) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _crd_schema_to_v3(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, Mapping):
            out[key] = _crd_schema_to_v3(value)
        elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
            out[key] = [_crd_schema_to_v3(item) for item in value]
        else:
            out[key] = value
    if out.get("x-kubernetes-int-or-string") is True:
        alternatives = [{"type": "integer"}, {"type": "string"}]
        if "anyOf" not in out:
            out["anyOf"] = alternatives
        elif out["anyOf"] != alternatives:
            out["allOf"] = [{"anyOf": alternatives}, *out.get("allOf", [])]
    if out.get("x-kubernetes-embedded-resource") is True:
        properties = dict(out.get("properties") or {})
        properties["apiVersion"] = {"description": _API_VERSION_DESCRIPTION, "type": "string"}
        properties["kind"] = {"description": _KIND_DESCRIPTION, "type": "string"}
        properties["metadata"] = {
            "allOf": [{"$ref": _V3_PREFIX + _OBJECT_META}],
            "description": _OBJECT_META_DESCRIPTION,
        }
        out["properties"] = properties
        required = list(out.get("required") or [])
        out["required"] = required + [name for name in ("kind", "apiVersion") if name not in required]
    return out


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "kind": kind, "version": version}


def _custom_components(rtype: kinds.ResourceType) -> dict[str, Any]:
    """The kind and list schemas of a custom resource version, the way the apiextensions server builds them."""
    model = _crd_model_name(rtype.group, rtype.version, rtype.kind)
    list_model = _crd_model_name(rtype.group, rtype.version, rtype.list_kind)
    if rtype.schema:
        schema: dict[str, Any] = _crd_schema_to_v3(rtype.schema)
        schema.setdefault("type", "object")
        properties = dict(schema.get("properties") or {})
        properties["apiVersion"] = {"description": _API_VERSION_DESCRIPTION, "type": "string"}
        properties["kind"] = {"description": _KIND_DESCRIPTION, "type": "string"}
        properties["metadata"] = {
            "allOf": [{"$ref": _V3_PREFIX + _OBJECT_META}],
            "description": _OBJECT_META_DESCRIPTION,
        }
        schema["properties"] = properties
    else:
        schema = {"type": "object"}
    schema["x-kubernetes-group-version-kind"] = [_gvk(rtype.group, rtype.version, rtype.kind)]
    list_schema = {
        "description": f"{rtype.list_kind} is a list of {rtype.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"description": _API_VERSION_DESCRIPTION, "type": "string"},
            "items": {
                "description": f"List of {rtype.plural}. More info: "
                "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "type": "array",
                "items": {"$ref": _V3_PREFIX + model},
            },
            "kind": {"description": _KIND_DESCRIPTION, "type": "string"},
            "metadata": {"allOf": [{"$ref": _V3_PREFIX + _LIST_META}], "description": _LIST_META_DESCRIPTION},
        },
        "x-kubernetes-group-version-kind": [_gvk(rtype.group, rtype.version, rtype.list_kind)],
    }
    return {model: schema, list_model: list_schema}


def _camel_group(group: str) -> str:
    """apps -> Apps, rbac.authorization.k8s.io -> RbacAuthorization, upkeep.dev -> UpkeepDev, core -> Core."""
    trimmed = group.removesuffix(".k8s.io") if group else "core"
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[.\-]", trimmed) if part)


def _tag(group: str, version: str) -> str:
    camel = _camel_group(group)
    return f"{camel[:1].lower()}{camel[1:]}_{version}"


def _parameter(
    name: str, where: str, description: str, kind: str = "string", *, required: bool = False
) -> dict[str, Any]:
    parameter: dict[str, Any] = {"description": description, "in": where, "name": name}
    if required:
        parameter["required"] = True
    parameter["schema"] = {"type": kind, "uniqueItems": True}
    return parameter


_P = {
    "allowWatchBookmarks": _parameter(
        "allowWatchBookmarks",
        "query",
        "Ask for BOOKMARK watch events. Servers that do not implement bookmarks may "
        "ignore the flag; clients must not assume bookmarks arrive at any interval.",
        "boolean",
    ),
    "continue": _parameter(
        "continue",
        "query",
        "The continue token of the previous page of a paged list: the server answers the "
        "next page of the same consistent snapshot, or 410 Gone when that snapshot has expired.",
    ),
    "dryRun": _parameter(
        "dryRun",
        "query",
        "When present, indicates that modifications should not be persisted. An invalid or "
        "unrecognized dryRun directive will result in an error response and no further processing of the request. "
        "Valid values are: - All: all dry run stages will be processed",
    ),
    "fieldManager": _parameter(
        "fieldManager",
        "query",
        "The name of the actor making the change, recorded in managedFields: printable "
        "characters, at most 128. Required for apply patches (application/apply-patch), optional otherwise.",
    ),
    "fieldSelector": _parameter(
        "fieldSelector",
        "query",
        "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
    ),
    "fieldValidation": _parameter(
        "fieldValidation",
        "query",
        "How the server treats unknown and duplicate fields in the request body: Ignore "
        "drops them silently, Warn drops them and answers a warning for each (the default), Strict fails the "
        "request with BadRequest.",
    ),
    "force": _parameter(
        "force",
        "query",
        'Force is going to "force" Apply requests: the request takes over fields other managers '
        "own instead of failing with a conflict. Must be unset for non-apply patch requests.",
        "boolean",
    ),
    "gracePeriodSeconds": _parameter(
        "gracePeriodSeconds",
        "query",
        "The duration in seconds before the object should be deleted. Non-negative; "
        "zero means delete immediately; unset means the default of the kind.",
        "integer",
    ),
    "ignoreStoreReadErrorWithClusterBreakingPotential": _parameter(
        "ignoreStoreReadErrorWithClusterBreakingPotential",
        "query",
        "Delete an object whose stored data cannot be "
        "read (corrupt or undecryptable), skipping finalizers and precondition checks. Dangerous; default false.",
        "boolean",
    ),
    "labelSelector": _parameter(
        "labelSelector",
        "query",
        "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
    ),
    "limit": _parameter(
        "limit",
        "query",
        "The most objects to return in one page of a list; when more exist the list metadata "
        "carries a continue token for the next page.",
        "integer",
    ),
    "name": _parameter("name", "path", "", required=True),
    "namespace": _parameter(
        "namespace", "path", "object name and auth scope, such as for teams and projects", required=True
    ),
    "orphanDependents": _parameter(
        "orphanDependents",
        "query",
        "Deprecated: use propagationPolicy. Whether dependents are orphaned (the "
        '"orphan" finalizer is added) or deleted.',
        "boolean",
    ),
    "pretty": _parameter(
        "pretty",
        "query",
        "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent "
        "indicates a browser or command-line HTTP tool (curl and wget).",
    ),
    "propagationPolicy": _parameter(
        "propagationPolicy",
        "query",
        "Whether and how garbage collection removes dependents: 'Orphan', "
        "'Background' or 'Foreground'. Defaults to the finalizers on the object and the kind's default.",
    ),
    "resourceVersion": _parameter(
        "resourceVersion",
        "query",
        "Which resource version a list or watch starts from, together with "
        "resourceVersionMatch. Defaults to the most recent data.",
    ),
    "resourceVersionMatch": _parameter(
        "resourceVersionMatch",
        "query",
        "How resourceVersion applies to a list: Exact or NotOlderThan. Defaults to unset.",
    ),
    "sendInitialEvents": _parameter(
        "sendInitialEvents",
        "query",
        "With watch=true: start the watch with synthetic ADDED events for the current "
        "objects, followed by a BOOKMARK annotated k8s.io/initial-events-end once they are all sent.",
        "boolean",
    ),
    "timeoutSeconds": _parameter(
        "timeoutSeconds",
        "query",
        "Timeout for the list/watch call: how long the call may last, regardless of activity.",
        "integer",
    ),
    "watch": _parameter(
        "watch",
        "query",
        "Watch for changes to the described resources and return them as a stream of add, update "
        "and remove notifications. Specify resourceVersion.",
        "boolean",
    ),
}
_LIST_PARAMS = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
    "watch",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_PATCH_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force")
_DELETE_PARAMS = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)
_DELETE_COLLECTION_PARAMS = (
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
)
_BUILTIN_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_CUSTOM_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")


@dataclass(frozen=True)
class _Resource:
    """What the path builder needs to know of one resource of a group-version document."""

    rtype: kinds.ResourceType
    kind_ref: str
    list_ref: str
    builtin: bool

    @property
    def produces(self) -> tuple[str, ...]:
        if self.builtin:
            return ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
        return ("application/json", "application/yaml")


def _content(ref: str, media_types: Iterable[str]) -> dict[str, Any]:
    return {media: {"schema": {"$ref": _V3_PREFIX + ref}} for media in media_types}


def _responses(codes: Iterable[tuple[str, str]], ref: str, media_types: Iterable[str]) -> dict[str, Any]:
    media = tuple(media_types)
    responses: dict[str, Any] = {
        code: {"description": description, "content": _content(ref, media)} for code, description in codes
    }
    responses["401"] = {"description": "Unauthorized"}
    return responses


def _operation(
    res: _Resource,
    *,
    action: str,
    verb: str,
    description: str,
    params: Iterable[str],
    response: str,
    codes: Iterable[tuple[str, str]],
    body: dict[str, Any] | None = None,
    produces: Iterable[str] | None = None,
    subresource: str = "",
    all_namespaces: bool = False,
    collection: bool = False,
    list_suffix: bool = False,
) -> dict[str, Any]:
    rtype = res.rtype
    namespaced = "Namespaced" if rtype.namespaced and not all_namespaces else ""
    operation_id = (
        f"{verb}{_camel_group(rtype.group)}{rtype.version[:1].upper()}{rtype.version[1:]}"
        f"{'Collection' if collection else ''}{namespaced}{rtype.kind}{subresource.title()}"
        f"{'List' if list_suffix else ''}{'ForAllNamespaces' if all_namespaces else ''}"
    )
    operation: dict[str, Any] = {
        "tags": [_tag(rtype.group, rtype.version)],
        "description": description,
        "operationId": operation_id,
    }
    parameters = [_P[name] for name in params]
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(codes, response, res.produces if produces is None else produces)
    operation["x-kubernetes-action"] = action
    operation["x-kubernetes-group-version-kind"] = _gvk(rtype.group, rtype.version, rtype.kind)
    return operation


def _path_parameters(*, name: str | None, namespaced: bool) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if name is not None:
        parameters.append({**_P["name"], "description": f"name of the {name}"})
    if namespaced:
        parameters.append(_P["namespace"])
    parameters.append(_P["pretty"])
    return parameters


def _article(kind: str) -> str:
    return "an" if kind[:1].lower() in "aeiou" else "a"


def _resource_paths(res: _Resource, paths: dict[str, Any]) -> None:
    """Add the paths of one resource (and its subresources) the way kube-apiserver lays them out."""
    rtype = res.rtype
    verbs = set(rtype.verbs)
    base = f"/api/{rtype.version}" if not rtype.group else f"/apis/{rtype.group}/{rtype.version}"
    scope = f"{base}/namespaces/{{namespace}}" if rtype.namespaced else base
    collection_path = f"{scope}/{rtype.plural}"
    item_path = f"{collection_path}/{{name}}"
    kind = rtype.kind
    object_body = {"content": {"*/*": {"schema": {"$ref": _V3_PREFIX + res.kind_ref}}}, "required": True}
    patch_types = _BUILTIN_PATCH_TYPES if res.builtin else _CUSTOM_PATCH_TYPES
    patch_body = {
        "content": {media: {"schema": {"$ref": _V3_PREFIX + _META + "Patch"}} for media in patch_types},
        "required": True,
    }
    delete_body = {"content": {"*/*": {"schema": {"$ref": _V3_PREFIX + _META + "DeleteOptions"}}}}
    list_media = (
        (*res.produces, "application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch")
        if res.builtin
        else res.produces
    )
    watch_media = (
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
        "application/json;stream=watch",
        "application/vnd.kubernetes.protobuf;stream=watch",
    )
    ok = (("200", "OK"),)

    collection: dict[str, Any] = {}
    if "list" in verbs:
        collection["get"] = _operation(
            res,
            action="list",
            verb="list",
            description=f"list or watch objects of kind {kind}",
            params=_LIST_PARAMS,
            response=res.list_ref,
            codes=ok,
            produces=list_media,
        )
    if "create" in verbs:
        collection["post"] = _operation(
            res,
            action="post",
            verb="create",
            description=f"create {_article(kind)} {kind}",
            params=_WRITE_PARAMS,
            response=res.kind_ref,
            body=object_body,
            codes=(("200", "OK"), ("201", "Created"), ("202", "Accepted")),
        )
    if "deletecollection" in verbs:
        collection["delete"] = _operation(
            res,
            action="deletecollection",
            verb="delete",
            description=f"delete collection of {kind}",
            params=_DELETE_COLLECTION_PARAMS,
            response=_META + "Status",
            body=delete_body,
            codes=ok,
            collection=True,
        )
    if collection:
        collection["parameters"] = _path_parameters(name=None, namespaced=rtype.namespaced)
        paths[collection_path] = collection

    if rtype.namespaced and "list" in verbs:
        paths[f"{base}/{rtype.plural}"] = {
            "get": _operation(
                res,
                action="list",
                verb="list",
                description=f"list or watch objects of kind {kind}",
                params=(),
                response=res.list_ref,
                codes=ok,
                produces=list_media,
                all_namespaces=True,
            ),
            "parameters": [
                *(_P[name] for name in _LIST_PARAMS[:6]),
                _P["pretty"],
                *(_P[name] for name in _LIST_PARAMS[6:]),
            ],
        }

    item: dict[str, Any] = {}
    if "get" in verbs:
        item["get"] = _operation(
            res,
            action="get",
            verb="read",
            description=f"read the specified {kind}",
            params=(),
            response=res.kind_ref,
            codes=ok,
        )
    if "update" in verbs:
        item["put"] = _operation(
            res,
            action="put",
            verb="replace",
            description=f"replace the specified {kind}",
            params=_WRITE_PARAMS,
            response=res.kind_ref,
            body=object_body,
            codes=(("200", "OK"), ("201", "Created")),
        )
    if "patch" in verbs:
        item["patch"] = _operation(
            res,
            action="patch",
            verb="patch",
            description=f"partially update the specified {kind}",
            params=_PATCH_PARAMS,
            response=res.kind_ref,
            body=patch_body,
            codes=(("200", "OK"), ("201", "Created")),
        )
    if "delete" in verbs:
        item["delete"] = _operation(
            res,
            action="delete",
            verb="delete",
            description=f"delete {_article(kind)} {kind}",
            params=_DELETE_PARAMS,
            response=_META + "Status",
            body=delete_body,
            codes=(("200", "OK"), ("202", "Accepted")),
        )
    if item:
        item["parameters"] = _path_parameters(name=kind, namespaced=rtype.namespaced)
        paths[item_path] = item

    for subresource in rtype.subresources:
        if subresource in ("status", "scale"):
            ref = res.kind_ref if subresource == "status" else _SCALE
            body_ref = {"content": {"*/*": {"schema": {"$ref": _V3_PREFIX + ref}}}, "required": True}
            paths[f"{item_path}/{subresource}"] = {
                "get": _operation(
                    res,
                    action="get",
                    verb="read",
                    description=f"read {subresource} of the specified {kind}",
                    params=(),
                    response=ref,
                    codes=ok,
                    subresource=subresource,
                ),
                "put": _operation(
                    res,
                    action="put",
                    verb="replace",
                    description=f"replace {subresource} of the specified {kind}",
                    params=_WRITE_PARAMS,
                    response=ref,
                    body=body_ref,
                    codes=(("200", "OK"), ("201", "Created")),
                    subresource=subresource,
                ),
                "patch": _operation(
                    res,
                    action="patch",
                    verb="patch",
                    description=f"partially update {subresource} of the specified {kind}",
                    params=_PATCH_PARAMS,
                    response=ref,
                    body=patch_body,
                    codes=(("200", "OK"), ("201", "Created")),
                    subresource=subresource,
                ),
                "parameters": _path_parameters(name=kind, namespaced=rtype.namespaced),
            }
        elif subresource == "eviction":
            body_ref = {"content": {"*/*": {"schema": {"$ref": _V3_PREFIX + _EVICTION}}}, "required": True}
            eviction = _operation(
                res,
                action="post",
                verb="create",
                description=f"create eviction of {_article(kind)} {kind}",
                params=_WRITE_PARAMS,
                response=_EVICTION,
                body=body_ref,
                codes=(("200", "OK"), ("201", "Created"), ("202", "Accepted")),
                subresource=subresource,
            )
            eviction["x-kubernetes-group-version-kind"] = _gvk("policy", "v1", "Eviction")
            paths[f"{item_path}/eviction"] = {
                "post": eviction,
                "parameters": _path_parameters(name="Eviction", namespaced=rtype.namespaced),
            }
        elif subresource == "log":
            log = _operation(
                res,
                action="get",
                verb="read",
                description=f"read log of the specified {kind}",
                params=(),
                response=res.kind_ref,
                codes=ok,
                subresource=subresource,
            )
            log["responses"] = {
                "200": {
                    "description": "OK",
                    "content": {
                        media: {"schema": {"type": "string"}}
                        for media in ("text/plain", "application/json", "application/yaml")
                    },
                },
                "401": {"description": "Unauthorized"},
            }
            log["parameters"] = [
                _parameter(name, "query", description, kind)
                for name, description, kind in (
                    (
                        "container",
                        "The container for which to stream logs. Defaults to the only container if there is "
                        "one container in the pod.",
                        "string",
                    ),
                    ("follow", "Follow the log stream of the pod. Defaults to false.", "boolean"),
                    ("limitBytes", "The most bytes of log to return; the output may stop mid-line.", "integer"),
                    (
                        "previous",
                        "Return the logs of the previous, terminated container. Defaults to false.",
                        "boolean",
                    ),
                    ("sinceSeconds", "Only return logs newer than this many seconds.", "integer"),
                    ("tailLines", "The number of lines from the end of the logs to show.", "integer"),
                    (
                        "timestamps",
                        "Prefix every line of log output with an RFC3339 timestamp. Defaults to false.",
                        "boolean",
                    ),
                )
            ]
            paths[f"{item_path}/log"] = {
                "get": log,
                "parameters": _path_parameters(name=kind, namespaced=rtype.namespaced),
            }

    if "watch" in verbs:
        watch_base = f"{base}/watch"
        watch_scope = f"{watch_base}/namespaces/{{namespace}}" if rtype.namespaced else watch_base
        watch_params = [
            *(_P[name] for name in _LIST_PARAMS[:6]),
            _P["pretty"],
            *(_P[name] for name in _LIST_PARAMS[6:]),
        ]
        paths[f"{watch_scope}/{rtype.plural}"] = {
            "get": _operation(
                res,
                action="watchlist",
                verb="watch",
                description=f"watch individual changes to a list "
                f"of {kind}. deprecated: use the 'watch' parameter with a list operation instead.",
                params=(),
                response=_META + "WatchEvent",
                codes=ok,
                produces=watch_media,
                list_suffix=True,
            ),
            "parameters": [*(_P["namespace"],) * rtype.namespaced, *watch_params],
        }
        paths[f"{watch_scope}/{rtype.plural}/{{name}}"] = {
            "get": _operation(
                res,
                action="watch",
                verb="watch",
                description=f"watch changes to an object of kind "
                f"{kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered "
                f"to a single item with the 'fieldSelector' parameter.",
                params=(),
                response=_META + "WatchEvent",
                codes=ok,
                produces=watch_media,
            ),
            "parameters": [
                {**_P["name"], "description": f"name of the {kind}"},
                *(_P["namespace"],) * rtype.namespaced,
                *watch_params,
            ],
        }
        if rtype.namespaced:
            paths[f"{watch_base}/{rtype.plural}"] = {
                "get": _operation(
                    res,
                    action="watchlist",
                    verb="watch",
                    description=f"watch individual changes to a "
                    f"list of {kind}. deprecated: use the 'watch' parameter with a list operation "
                    f"instead.",
                    params=(),
                    response=_META + "WatchEvent",
                    codes=ok,
                    produces=watch_media,
                    all_namespaces=True,
                    list_suffix=True,
                ),
                "parameters": watch_params,
            }


def _build_document(group_version: str, types: Sequence[kinds.ResourceType]) -> dict[str, Any]:
    group, _, version = group_version.rpartition("/")
    resources: list[_Resource] = []
    schemas: dict[str, Any] = {}
    builtin_roots: list[str] = list(_COMMON_DEFINITIONS)
    for rtype in sorted(types, key=lambda t: t.plural):
        if rtype.builtin:
            list_definition = rtype.definition + "List"
            builtin_roots.append(rtype.definition)
            if list_definition in BUILTIN_SCHEMAS.definitions:
                builtin_roots.append(list_definition)
            else:
                list_definition = _META + "Status"
            resources.append(_Resource(rtype, rtype.definition, list_definition, True))
        else:
            custom = _custom_components(rtype)
            schemas.update(custom)
            builtin_roots.append(_OBJECT_META)
            builtin_roots.append(_LIST_META)
            model, list_model = custom
            resources.append(_Resource(rtype, model, list_model, False))
        if "scale" in rtype.subresources:
            builtin_roots.append(_SCALE)
        if "eviction" in rtype.subresources:
            builtin_roots.append(_EVICTION)
    _closure(builtin_roots, schemas)

    tag = _tag(group, version)
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    paths: dict[str, Any] = {
        f"{base}/": {
            "get": {
                "tags": [tag],
                "description": "get available resources",
                "operationId": f"get{_camel_group(group)}{version[:1].upper()}{version[1:]}APIResources",
                "responses": _responses(
                    (("200", "OK"),),
                    _META + "APIResourceList",
                    ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf"),
                ),
            }
        }
    }
    for resource in resources:
        _resource_paths(resource, paths)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": f"v{KUBERNETES_VERSION}.0"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


@dataclass(frozen=True)
class _Document:
    types: tuple[kinds.ResourceType, ...]
    """Held so that the ids in the cache key cannot be reused while the entry lives."""
    document: dict[str, Any]
    body: bytes
    etag: str


_DOCUMENTS: collections.OrderedDict[tuple[str, tuple[int, ...]], _Document] = collections.OrderedDict()
_ROOTS: collections.OrderedDict[tuple[int, ...], tuple[tuple[kinds.ResourceType, ...], dict[str, Any]]] = (
    collections.OrderedDict()
)
_CACHE_LOCK = threading.RLock()
_CACHE_SIZE = 128


def _serialize(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _document(group_version: str, types: Sequence[kinds.ResourceType]) -> _Document | None:
    selected = tuple(rtype for rtype in types if rtype.group_version == group_version)
    if not selected:
        return None
    key = (group_version, tuple(id(rtype) for rtype in selected))
    with _CACHE_LOCK:
        cached = _DOCUMENTS.get(key)
        if cached is not None:
            _DOCUMENTS.move_to_end(key)
            return cached
    document = _build_document(group_version, selected)
    body = _serialize(document)
    built = _Document(selected, document, body, content_hash(body))
    with _CACHE_LOCK:
        _DOCUMENTS[key] = built
        while len(_DOCUMENTS) > _CACHE_SIZE:
            _DOCUMENTS.popitem(last=False)
    return built


def _document_path(group_version: str) -> str:
    return f"apis/{group_version}" if "/" in group_version else f"api/{group_version}"


def _group_version_of(path_or_group_version: str) -> str:
    """Accept "apps/v1", "v1", or the root's keys "apis/apps/v1" and "api/v1"."""
    if path_or_group_version.startswith("apis/") and path_or_group_version.count("/") == 2:
        return path_or_group_version[len("apis/") :]
    if path_or_group_version.startswith("api/") and path_or_group_version.count("/") == 1:
        return path_or_group_version[len("api/") :]
    return path_or_group_version


def openapi_v3_root(types: Sequence[kinds.ResourceType]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per served group-version, each with its document's URL and content hash.

    Shared and cached: do not modify the returned dict.
    """
    key = tuple(id(rtype) for rtype in types)
    with _CACHE_LOCK:
        cached = _ROOTS.get(key)
        if cached is not None:
            _ROOTS.move_to_end(key)
            return cached[1]
    group_versions = sorted({rtype.group_version for rtype in types})
    paths: dict[str, Any] = {}
    for group_version in group_versions:
        document = _document(group_version, types)
        if document is None:  # pragma: no cover - every listed group-version has a type
            continue
        path = _document_path(group_version)
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={document.etag}"}
    root = {"paths": dict(sorted(paths.items()))}
    with _CACHE_LOCK:
        _ROOTS[key] = (tuple(types), root)
        while len(_ROOTS) > _CACHE_SIZE:
            _ROOTS.popitem(last=False)
    return root


def openapi_v3_document(group_version: str, types: Sequence[kinds.ResourceType]) -> dict[str, Any] | None:
    """``/openapi/v3/apis/<group>/<version>`` (or ``/openapi/v3/api/v1``), or None when no type serves it.

    ``group_version`` is "apps/v1" or "v1" (the root's keys "apis/apps/v1" and "api/v1" are accepted too).
    Shared and cached: do not modify the returned dict.
    """
    document = _document(_group_version_of(group_version), types)
    return None if document is None else document.document


def openapi_v3_document_json(group_version: str, types: Sequence[kinds.ResourceType]) -> bytes | None:
    """The document serialized as JSON: the bytes whose ``content_hash`` the root's ?hash= and the ETag carry."""
    document = _document(_group_version_of(group_version), types)
    return None if document is None else document.body


def openapi_v3_etag(group_version: str, types: Sequence[kinds.ResourceType]) -> str | None:
    """The content hash of the group-version document (answer it quoted as the ETag; compare with ?hash=)."""
    document = _document(_group_version_of(group_version), types)
    return None if document is None else document.etag


# ---------------------------------------------------------------------------------------------------------------------
# Values and messages the way Go prints them


def _go_float(value: float) -> str:
    """fmt's %v of a float64 (strconv 'g' with the shortest precision, exponent from 1e+06 and below 1e-04)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = decimal.Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(digit) for digit in digits).rstrip("0") or "0"
    point = len(digits) + exponent  # the decimal point sits after this many digits
    sign_text = "-" if sign else ""
    power = point - 1
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{sign_text}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{sign_text}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{sign_text}{text}{'0' * (point - len(text))}"
    return f"{sign_text}{text[:point]}.{text[point:]}"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _go_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _go_number(value: int | float) -> str:
    return _go_float(value) if isinstance(value, float) else str(value)


def _bad_value(value: Any) -> str:
    """How field.Error's ErrorBody prints a bad value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _go_number(value)
    if isinstance(value, str):
        return _go_quote(value)
    return _go_json(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@dataclass(frozen=True)
class FieldError:
    """One cause of a 422 Invalid answer, as kube-apiserver words it in a Status's details.causes."""

    field: str
    """The field path, e.g. "spec.severity" or "spec.steps[0].name" ("<nil>" for errors not tied to a field)."""
    type: str
    """The reason: FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueTypeInvalid, ..."""
    message: str
    """The message without the field, e.g. 'Unsupported value: "SEV9": supported values: "SEV1", "SEV2"'."""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"

    def cause(self) -> dict[str, str]:
        """As a Status cause: {"reason", "message", "field"}."""
        return {"reason": self.type, "message": self.message, "field": self.field}


def _required(path: str) -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value")


def _invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {_bad_value(value)}: {detail}")


def _type_invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueTypeInvalid", f"Invalid value: {_bad_value(value)}: {detail}")


def _not_supported(path: str, value: Any, allowed: Iterable[Any]) -> FieldError:
    quoted = ", ".join(_go_quote(item if isinstance(item, str) else _go_json(item)) for item in allowed)
    detail = f": supported values: {quoted}" if quoted else ""
    return FieldError(path, "FieldValueNotSupported", f"Unsupported value: {_bad_value(value)}{detail}")


def _too_long(path: str, limit: int) -> FieldError:
    return FieldError(
        path, "FieldValueTooLong", f"Too long: may not be more than {limit} {'byte' if limit == 1 else 'bytes'}"
    )


def _too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(
        path, "FieldValueTooMany", f"Too many: {actual}: must have at most {limit} {'item' if limit == 1 else 'items'}"
    )


def _duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {_bad_value(value)}")


# ---------------------------------------------------------------------------------------------------------------------
# Formats (the ones a CRD schema may use; others are ignored, as the API server strips them)


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$")
_UUID = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID3 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
_UUID4 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_UUID5 = re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HOSTNAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SHORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GO_DURATION = re.compile(
    r"^[-+]?(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))*$"
    r"|^0$"
)
_SCALA_DURATION = re.compile(
    r"^(\d+)\s*(ns|nano|nanos|nanosecond|nanoseconds|us|micro|micros|microsecond|microseconds|"
    r"ms|milli|millis|millisecond|milliseconds|s|sec|secs|second|seconds|m|min|mins|minute|"
    r"minutes|h|hr|hour|hours|d|day|days|w|wk|week|weeks)$"
)


def _is_date(text: str) -> bool:
    match = _DATE.match(text)
    if not match:
        return False
    try:
        datetime.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    if len(text) < 4:
        return False
    parts = text.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _TIME.match(parts[1])
    if match is None:
        return False
    return match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


def _is_ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return "/" in text


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_hostname(text: str) -> bool:
    if not text or len(text) > 255:
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in text.rstrip(".").split("."))


def _is_long_name(text: str) -> bool:
    return 0 < len(text) <= 253 and all(_SHORT_NAME.match(part) for part in text.split("."))


_FORMATS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "uuid": lambda text: bool(_UUID.match(text)),
    "uuid3": lambda text: bool(_UUID3.match(text)),
    "uuid4": lambda text: bool(_UUID4.match(text)),
    "uuid5": lambda text: bool(_UUID5.match(text)),
    "ipv4": lambda text: _is_ip(text, 4),
    "ipv6": lambda text: _is_ip(text, 6),
    "cidr": _is_cidr,
    "mac": lambda text: bool(_MAC.match(text)),
    "byte": _is_base64,
    "hostname": _is_hostname,
    "duration": lambda text: bool(_GO_DURATION.match(text) or _SCALA_DURATION.match(text)),
    "k8s-short-name": lambda text: len(text) <= 63 and bool(_SHORT_NAME.match(text)),
    "k8s-long-name": _is_long_name,
}
"""Formats checked; the API server also knows uri, email, isbn, creditcard, ssn, colors and password (not checked)."""


# ---------------------------------------------------------------------------------------------------------------------
# Custom resource schemas, compiled once


class _Schema:
    """One node of a CRD openAPIV3Schema, compiled for repeated validation, pruning and defaulting."""

    __slots__ = (
        "additional",
        "all_of",
        "any_of",
        "default",
        "embedded",
        "enum",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "format_check",
        "has_default",
        "items",
        "list_map_keys",
        "list_type",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "one_of",
        "pattern",
        "pattern_text",
        "preserve",
        "properties",
        "required",
        "types",
        "unique",
    )

    def __init__(self, node: Mapping[str, Any]) -> None:
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        declared = node.get("type")
        self.types: tuple[str, ...] = (
            ("integer", "string") if int_or_string else ((declared,) if isinstance(declared, str) and declared else ())
        )
        self.nullable = node.get("nullable") is True
        properties = node.get("properties")
        self.properties: dict[str, _Schema] | None = (
            {name: _Schema(prop) for name, prop in properties.items() if isinstance(prop, Mapping)}
            if isinstance(properties, Mapping)
            else None
        )
        additional = node.get("additionalProperties")
        self.additional: _Schema | bool | None = (
            _Schema(additional)
            if isinstance(additional, Mapping)
            else additional
            if isinstance(additional, bool)
            else None
        )
        items = node.get("items")
        self.items: _Schema | None = _Schema(items) if isinstance(items, Mapping) else None
        self.preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        self.embedded = node.get("x-kubernetes-embedded-resource") is True
        self.has_default = node.get("default") is not None  # a null default is no default
        self.default: Any = node.get("default")
        required = node.get("required")
        self.required: tuple[str, ...] = tuple(required) if isinstance(required, list) else ()
        enum = node.get("enum")
        self.enum: list[Any] | None = list(enum) if isinstance(enum, list) and enum else None
        pattern = node.get("pattern")
        self.pattern_text: str | None = pattern if isinstance(pattern, str) and pattern else None
        self.pattern: re.Pattern[str] | None = _compile_pattern(self.pattern_text) if self.pattern_text else None
        self.min_length: int | None = _int_or_none(node.get("minLength"))
        self.max_length: int | None = _int_or_none(node.get("maxLength"))
        self.minimum: float | None = _number_or_none(node.get("minimum"))
        self.maximum: float | None = _number_or_none(node.get("maximum"))
        self.exclusive_minimum = node.get("exclusiveMinimum") is True
        self.exclusive_maximum = node.get("exclusiveMaximum") is True
        self.multiple_of: float | None = _number_or_none(node.get("multipleOf"))
        self.min_items: int | None = _int_or_none(node.get("minItems"))
        self.max_items: int | None = _int_or_none(node.get("maxItems"))
        self.unique = node.get("uniqueItems") is True
        self.min_properties: int | None = _int_or_none(node.get("minProperties"))
        self.max_properties: int | None = _int_or_none(node.get("maxProperties"))
        self.format, self.format_check = _format_of(node.get("format"), self.types)
        list_type = node.get("x-kubernetes-list-type")
        self.list_type: str | None = list_type if isinstance(list_type, str) else None
        keys = node.get("x-kubernetes-list-map-keys")
        self.list_map_keys: tuple[str, ...] = tuple(keys) if isinstance(keys, list) else ()
        self.all_of = _compile_list(node.get("allOf"))
        self.any_of = _compile_list(node.get("anyOf"))
        self.one_of = _compile_list(node.get("oneOf"))
        not_ = node.get("not")
        self.not_: _Schema | None = _Schema(not_) if isinstance(not_, Mapping) else None


def _compile_list(value: Any) -> tuple[_Schema, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(_Schema(item) for item in value if isinstance(item, Mapping))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _format_of(value: Any, types: tuple[str, ...]) -> tuple[str | None, Callable[[str], bool] | None]:
    """The format the API server keeps (unsupported ones are stripped) and its checker."""
    if not isinstance(value, str) or not value:
        return None, None
    kind = types[0] if len(types) == 1 else ""
    if kind in ("", "string"):
        check = _FORMATS.get(value.replace("-", ""))
        return (
            (value, check) if check is not None or value.replace("-", "") in _KNOWN_UNCHECKED_FORMATS else (None, None)
        )
    if kind == "integer" and value in ("int32", "int64"):
        return value, None
    if kind == "number" and value in ("float", "double"):
        return value, None
    return None, None


_KNOWN_UNCHECKED_FORMATS = frozenset(
    {
        "bsonobjectid",
        "uri",
        "email",
        "isbn",
        "isbn10",
        "isbn13",
        "creditcard",
        "ssn",
        "hexcolor",
        "rgbcolor",
        "password",
    }
)


@lru_cache(maxsize=1024)
def _compile_pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


_COMPILED: collections.OrderedDict[int, tuple[Mapping[str, Any], _Schema]] = collections.OrderedDict()


def _compiled(schema: Mapping[str, Any]) -> _Schema:
    """The compiled form of an openAPIV3Schema, cached by identity (the cache holds the schema alive)."""
    key = id(schema)
    with _CACHE_LOCK:
        cached = _COMPILED.get(key)
        if cached is not None and cached[0] is schema:
            _COMPILED.move_to_end(key)
            return cached[1]
    compiled = _Schema(schema)
    with _CACHE_LOCK:
        _COMPILED[key] = (schema, compiled)
        while len(_COMPILED) > 256:
            _COMPILED.popitem(last=False)
    return compiled


# ---------------------------------------------------------------------------------------------------------------------
# Custom resources: pruning and defaulting


class Pruned(NamedTuple):
    """An object as the API server would store it, and the paths of the unknown fields it dropped."""

    obj: dict[str, Any]
    pruned: list[str]
    """Dropped fields, sorted, as fieldValidation words them ("spec.replcas", "spec.steps[0].foo")."""


_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(value: Any, schema: _Schema | None, path: str, pruned: list[str], *, embedded: bool = False) -> Any:
    """``value`` without the fields ``schema`` does not know (copy on write: unchanged parts are shared)."""
    if schema is not None and schema.preserve:
        return _prune_preserved(value, schema, path, pruned, embedded=embedded)
    if isinstance(value, dict):
        if schema is None:
            pruned.extend(_join(path, key) for key in value)
            return {} if value else value
        embedded = embedded or schema.embedded
        properties = schema.properties or {}
        additional = schema.additional
        out: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            if embedded and key in _META_FIELDS:
                kept = item
            else:
                prop = properties.get(key)
                if prop is not None:
                    kept = _prune(item, prop, _join(path, key), pruned)
                elif additional is not None:
                    kept = _prune(
                        item, additional if isinstance(additional, _Schema) else None, _join(path, key), pruned
                    )
                else:
                    pruned.append(_join(path, key))
                    if out is None:
                        out = _head(value, index)
                    continue
            if out is None and kept is not item:
                out = _head(value, index)
            if out is not None:
                out[key] = kept
        return value if out is None else out
    if isinstance(value, list):
        items = schema.items if schema is not None else None
        return _map_list(value, lambda index, item: _prune(item, items, f"{path}[{index}]", pruned))
    return value


def _prune_preserved(
    value: Any, schema: _Schema | None, path: str, pruned: list[str], *, embedded: bool = False
) -> Any:
    """Under x-kubernetes-preserve-unknown-fields: unknown fields stay, known ones are pruned by their schema."""
    if schema is None:
        return value
    if isinstance(value, dict):
        embedded = embedded or schema.embedded
        properties = schema.properties or {}
        additional = schema.additional
        out: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            if embedded and key in _META_FIELDS:
                kept = item
            else:
                prop = properties.get(key)
                if prop is not None:
                    kept = _prune(item, prop, _join(path, key), pruned)
                elif isinstance(additional, _Schema):
                    kept = _prune(item, additional, _join(path, key), pruned)
                else:
                    kept = item
            if out is None and kept is not item:
                out = _head(value, index)
            if out is not None:
                out[key] = kept
        return value if out is None else out
    if isinstance(value, list):
        items = schema.items
        return _map_list(value, lambda index, item: _prune_preserved(item, items, f"{path}[{index}]", pruned))
    return value


def _head(value: dict[str, Any], count: int) -> dict[str, Any]:
    """A new dict with the first ``count`` items of ``value`` (the part a copy-on-write walk has passed)."""
    return dict(itertools.islice(value.items(), count))


def _map_list(value: list[Any], transform: Callable[[int, Any], Any]) -> list[Any]:
    """``value`` with ``transform`` applied to each item; ``value`` itself when no item changed."""
    out: list[Any] | None = None
    for index, item in enumerate(value):
        kept = transform(index, item)
        if out is None and kept is not item:
            out = value[:index]
        if out is not None:
            out.append(kept)
    return value if out is None else out


def _field_schema(schema: _Schema | None, key: str) -> _Schema | None:
    if schema is None:
        return None
    if schema.properties is not None and key in schema.properties:
        return schema.properties[key]
    return schema.additional if isinstance(schema.additional, _Schema) else None


def _drop_nulls(value: Any, schema: _Schema | None) -> Any:
    """Drop ``null`` of fields that are neither nullable nor defaulted (they would fail validation otherwise)."""
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        for index, (key, item) in enumerate(value.items()):
            sub = _field_schema(schema, key)
            if item is None and sub is not None and not sub.nullable and not sub.has_default:
                if out is None:
                    out = _head(value, index)
                continue
            kept = _drop_nulls(item, sub)
            if out is None and kept is not item:
                out = _head(value, index)
            if out is not None:
                out[key] = kept
        return value if out is None else out
    if isinstance(value, list):
        items = schema.items if schema is not None else None
        return _map_list(value, lambda _, item: _drop_nulls(item, items))
    return value


def _is_unset(value: Any, schema: _Schema) -> bool:
    return value is None and not schema.nullable


def _default(value: Any, schema: _Schema | None) -> Any:
    """``value`` with the schema's defaults filled in for absent fields of present objects (and unset nulls)."""
    if schema is None:
        return value
    if isinstance(value, dict):
        out: dict[str, Any] | None = None
        if schema.properties:
            for key, prop in schema.properties.items():
                if prop.has_default and (key not in value or _is_unset(value[key], prop)):
                    if out is None:
                        out = dict(value)
                    out[key] = _copy_json(prop.default)
        current = value if out is None else out
        for key, item in list(current.items()):
            known = schema.properties.get(key) if schema.properties else None
            if known is not None:
                kept = _default(item, known)
            elif isinstance(schema.additional, _Schema):
                additional = schema.additional
                kept = (
                    _copy_json(additional.default) if additional.has_default and _is_unset(item, additional) else item
                )
                kept = _default(kept, additional)
            else:
                continue
            if kept is not item:
                if out is None:
                    out = dict(value)
                out[key] = kept
        return value if out is None else out
    if isinstance(value, list) and schema.items is not None:
        items = schema.items

        def fill(_: int, item: Any) -> Any:
            kept = _copy_json(items.default) if items.has_default and _is_unset(item, items) else item
            return _default(kept, items)

        return _map_list(value, fill)
    return value


def default_and_prune(schema: Mapping[str, Any] | None, obj: Mapping[str, Any]) -> Pruned:
    """A custom resource as the API server stores it: unknown fields pruned, nulls dropped, defaults applied.

    ``schema`` is the openAPIV3Schema of the object's version. apiVersion, kind and metadata stay at the root
    (and in x-kubernetes-embedded-resource objects); x-kubernetes-preserve-unknown-fields keeps unknown fields.
    ``obj`` is not modified; unchanged parts are shared with the result (copy on write).
    """
    if not schema:
        return Pruned(dict(obj), [])
    compiled = _compiled(schema)
    pruned: list[str] = []
    result = _prune(obj if isinstance(obj, dict) else dict(obj), compiled, "", pruned, embedded=True)
    result = _drop_nulls(result, compiled)
    result = _default(result, compiled)
    pruned.sort()
    return Pruned(result, pruned)


# ---------------------------------------------------------------------------------------------------------------------
# Custom resources: schema validation, with kube-apiserver's reasons and messages


def _trim(name: str) -> str:
    return name[1:] if name.startswith(".") else name


def _must_be_type(name: str, type_name: str, actual: str) -> str:
    return f"{name} in body must be of type {type_name}: {_go_quote(actual)}"


def _enum_ok(value: Any, allowed: Sequence[Any]) -> bool:
    for candidate in allowed:
        if isinstance(candidate, bool) or isinstance(value, bool):
            if isinstance(candidate, bool) and isinstance(value, bool) and candidate == value:
                return True
            continue
        if isinstance(candidate, int | float) and isinstance(value, int | float):
            if isinstance(candidate, int) and isinstance(value, float) and not value.is_integer():
                continue
            if candidate == value:
                return True
            continue
        if type(candidate) is type(value) and candidate == value:
            return True
    return False


def _check(schema: _Schema, value: Any, name: str, errors: list[FieldError]) -> None:
    """Validate ``value`` against ``schema`` in kube-openapi's order; ``name`` is the field path so far."""
    if value is None:
        if schema.types and "null" not in schema.types and not schema.nullable:
            errors.append(_type_invalid(_trim(name), "null", _must_be_type(name, ",".join(schema.types), "null")))
        if schema.enum is not None:  # kube-openapi never matches null against an enum
            errors.append(_not_supported(_trim(name), None, schema.enum))
        return
    actual = _json_type(value)
    _check_type(schema, value, actual, name, errors)
    if schema.all_of or schema.any_of or schema.one_of or schema.not_ is not None:
        _check_composition(schema, value, name, errors)
    if actual == "string":
        _check_string(schema, value, name, errors)
    elif actual in ("integer", "number"):
        _check_number(schema, value, name, errors)
    elif actual == "array":
        _check_array(schema, value, name, errors)
    if schema.enum is not None and not _enum_ok(value, schema.enum):
        errors.append(_not_supported(_trim(name), value, schema.enum))
    if actual == "object":
        _check_object(schema, value, name, errors)


def _check_type(schema: _Schema, value: Any, actual: str, name: str, errors: list[FieldError]) -> None:
    """kube-openapi's type validator, quirks included (format mismatches name the format)."""
    types = schema.types
    fmt = schema.format
    if not types and not fmt:
        return
    data_format = "int64" if actual == "integer" else "float64" if actual == "number" else ""
    matches = (
        actual in types
        or (actual == "number" and "integer" in types and float(value).is_integer())
        or (actual == "integer" and "number" in types)
    )
    if fmt and actual not in ("string", "array") and not (matches or data_format == fmt):
        errors.append(_type_invalid(_trim(name), data_format, _must_be_type(name, fmt, data_format)))
        return
    if fmt and "integer" not in types and "number" not in types and actual in ("string", "array"):
        return
    if not matches:
        errors.append(_type_invalid(_trim(name), actual, _must_be_type(name, ",".join(types), actual)))


def _check_string(schema: _Schema, value: str, name: str, errors: list[FieldError]) -> None:
    path = _trim(name)
    if schema.max_length is not None and len(value) > schema.max_length:
        errors.append(_too_long(path, schema.max_length))
    elif schema.min_length is not None and len(value) < schema.min_length:
        errors.append(_invalid(path, value, f"{name} in body should be at least {schema.min_length} chars long"))
    elif schema.pattern_text is not None:
        if schema.pattern is None:
            errors.append(
                _invalid(path, value, f"{name} in body should match '{schema.pattern_text}, but pattern is invalid'")
            )
        elif not schema.pattern.search(value):
            errors.append(_invalid(path, value, f"{name} in body should match '{schema.pattern_text}'"))
    if schema.format_check is not None and not schema.format_check(value):
        errors.append(_type_invalid(path, value, _must_be_type(name, schema.format or "", value)))


def _check_number(schema: _Schema, value: int | float, name: str, errors: list[FieldError]) -> None:
    path = _trim(name)
    integral = isinstance(value, int)
    if schema.multiple_of is not None:
        factor = schema.multiple_of
        if factor <= 0:
            errors.append(
                FieldError(
                    "<nil>",
                    "FieldValueInvalid",
                    f'Invalid value: "": factor MultipleOf declared for {name} must be positive: {_go_float(factor)}',
                )
            )
        elif integral and factor.is_integer():
            if value % int(factor):
                errors.append(_invalid(path, value, f"{name} in body should be a multiple of {int(factor)}"))
        else:
            quotient = (1 / factor * value) if factor < 1 else value / factor
            if not float(quotient).is_integer():
                errors.append(_invalid(path, value, f"{name} in body should be a multiple of {_go_float(factor)}"))
    if schema.minimum is not None:
        bound: int | float = int(schema.minimum) if integral else schema.minimum
        low = value <= bound if schema.exclusive_minimum else value < bound
        if low:
            relation = "greater than" if schema.exclusive_minimum else "greater than or equal to"
            errors.append(_invalid(path, value, f"{name} in body should be {relation} {_go_number(bound)}"))
    if schema.maximum is not None:
        bound = int(schema.maximum) if integral else schema.maximum
        high = value >= bound if schema.exclusive_maximum else value > bound
        if high:
            relation = "less than" if schema.exclusive_maximum else "less than or equal to"
            errors.append(_invalid(path, value, f"{name} in body should be {relation} {_go_number(bound)}"))


def _check_array(schema: _Schema, value: list[Any], name: str, errors: list[FieldError]) -> None:
    path = _trim(name)
    if schema.items is not None:
        for index, item in enumerate(value):
            _check(schema.items, item, f"{name}[{index}]", errors)
    if schema.min_items is not None and len(value) < schema.min_items:
        errors.append(_invalid(path, len(value), f"{name} in body should have at least {schema.min_items} items"))
    if schema.max_items is not None and len(value) > schema.max_items:
        errors.append(_too_many(path, len(value), schema.max_items))
    if schema.unique and len({_go_json(item) for item in value}) < len(value):
        errors.append(_invalid(path, "", f"{name} in body shouldn't contain duplicates"))


def _check_object(schema: _Schema, value: dict[str, Any], name: str, errors: list[FieldError]) -> None:
    path = _trim(name)
    if schema.min_properties is not None and len(value) < schema.min_properties:
        errors.append(
            _invalid(path, len(value), f"{name} in body should have at least {schema.min_properties} properties")
        )
    if schema.max_properties is not None and len(value) > schema.max_properties:
        errors.append(_too_many(path, len(value), schema.max_properties))
    properties = schema.properties or {}
    if isinstance(schema.additional, _Schema):
        for key, item in value.items():
            if key not in properties:
                _check(schema.additional, item, f"{name}.{key}", errors)
    for key, prop in properties.items():
        if key in value:
            if not name and key == "metadata":
                continue  # ObjectMeta is validated by the API machinery, not by the CRD schema
            _check(prop, value[key], f"{name}.{key}" if name else key, errors)
    for key in schema.required:
        if key not in value:
            errors.append(_required(_trim(f"{name}.{key}")))


def _composite(message: str) -> FieldError:
    return FieldError("<nil>", "FieldValueInvalid", f'Invalid value: "": {message}')


def _fewest(attempts: list[list[FieldError]]) -> list[FieldError]:
    """The errors of the alternative that came closest (kube-openapi keeps the one with the most passing checks)."""
    best = attempts[0]
    for found in attempts[1:]:
        if len(found) < len(best):
            best = found
    return best


def _check_composition(schema: _Schema, value: Any, name: str, errors: list[FieldError]) -> None:
    quoted = _go_quote(name)
    if schema.any_of:
        attempts = []
        for alternative in schema.any_of:
            found: list[FieldError] = []
            _check(alternative, value, name, found)
            if not found:
                break
            attempts.append(found)
        else:
            errors.append(_composite(f"{quoted} must validate at least one schema (anyOf)"))
            errors.extend(_fewest(attempts))
    if schema.one_of:
        valid = 0
        failures: list[list[FieldError]] = []
        for alternative in schema.one_of:
            found = []
            _check(alternative, value, name, found)
            if found:
                failures.append(found)
            else:
                valid += 1
        if valid != 1:
            detail = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            errors.append(_composite(f"{quoted} must validate one and only one schema (oneOf). {detail}"))
            if valid == 0:
                errors.extend(_fewest(failures))
    if schema.all_of:
        validated = 0
        for alternative in schema.all_of:
            found = []
            _check(alternative, value, name, found)
            errors.extend(found)
            validated += not found
        if validated != len(schema.all_of):
            errors.append(
                _composite(
                    f"{quoted} must validate all the schemas (allOf){'. None validated' if validated == 0 else ''}"
                )
            )
    if schema.not_ is not None:
        found = []
        _check(schema.not_, value, name, found)
        if not found:
            errors.append(_composite(f"{quoted} must not validate the schema (not)"))


def _list_path_key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _check_list_types(schema: _Schema, value: Any, path: str, errors: list[FieldError]) -> None:
    """Duplicates in x-kubernetes-list-type set and map lists (validated after the schema, as the server does)."""
    if isinstance(value, dict):
        if isinstance(schema.additional, _Schema):
            for key, item in value.items():
                _check_list_types(schema.additional, item, _list_path_key(path, key), errors)
        if schema.properties:
            for key, item in value.items():
                prop = schema.properties.get(key)
                if prop is not None and not (not path and key == "metadata"):
                    _check_list_types(prop, item, _join(path, key), errors)
        return
    if not isinstance(value, list):
        return
    if schema.list_type == "set":
        for index in _first_repeats([_go_json(item) for item in value]):
            errors.append(_duplicate(f"{path}[{index}]", value[index]))
    elif schema.list_type == "map":
        _check_list_map(schema, value, path, errors)
    if schema.items is not None:
        for index, item in enumerate(value):
            _check_list_types(schema.items, item, f"{path}[{index}]", errors)


def _first_repeats(keys: Sequence[str]) -> list[int]:
    """Indices of the second occurrence of each repeated key (later repeats are not reported)."""
    counts: dict[str, int] = {}
    repeats = []
    for index, key in enumerate(keys):
        seen = counts.get(key, 0)
        if seen == 1:
            repeats.append(index)
        counts[key] = seen + 1
    return repeats


def _check_list_map(schema: _Schema, value: list[Any], path: str, errors: list[FieldError]) -> None:
    for index, item in enumerate(value):
        if item is not None and not isinstance(item, dict):
            errors.append(_invalid(f"{path}[{index}]", item, "must be an object for an array of list-type map"))
            return
    if len(value) <= 1:
        return
    identities = []
    for item in value:
        key = {name: item[name] for name in schema.list_map_keys if isinstance(item, dict) and name in item}
        identities.append(key)
    for index in _first_repeats([_go_json(identity) for identity in identities]):
        errors.append(_duplicate(f"{path}[{index}]", identities[index]))


# ---------------------------------------------------------------------------------------------------------------------
# Built-in kinds: unknown fields and Go decoding errors


_QUANTITY_FORMAT = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_QUANTITY_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_QUANTITY_SUFFIX = re.compile(r"^(|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][-+]?[0-9]+)$")
_QUANTITY_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def _quantity_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return _QUANTITY_FORMAT
    text = value.strip() if isinstance(value, str) else (json.dumps(value))
    match = _QUANTITY_SHAPE.match(text)
    if not match:
        return _QUANTITY_FORMAT
    if not _QUANTITY_NUMBER.match(match[1]):
        return "unable to parse numeric part of quantity"
    if not _QUANTITY_SUFFIX.match(match[2]):
        return "unable to parse quantity's suffix"
    return None


def _go_type(node: Mapping[str, Any]) -> str:
    """The Go type a bundle node stands for, as encoding/json names it in errors."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = _ref_name(ref)
        parts = name.split(".")
        if name == _INT_OR_STRING:
            return "intstr.IntOrString"
        if name == _QUANTITY:
            return "resource.Quantity"
        return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 2 else name
    declared = _v3_type(node.get("type"))
    fmt = node.get("format")
    if declared == "array":
        items = node.get("items")
        return "[]" + (_go_type(items) if isinstance(items, Mapping) else "interface {}")
    if declared == "object":
        additional = node.get("additionalProperties")
        if isinstance(additional, Mapping):
            return "map[string]" + _go_type(additional)
        return "map[string]interface {}"
    if declared == "integer":
        return fmt if fmt in ("int32", "int64") else "int"
    if declared == "number":
        return "float32" if fmt == "float" else "float64"
    if declared == "boolean":
        return "bool"
    if declared == "string":
        return "[]uint8" if fmt == "byte" else "string"
    return "interface {}"


def _go_value_word(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class _Abort(Exception):
    """A custom UnmarshalJSON failed: Go stops decoding and answers that error, whatever came before."""


class _BuiltinScan:
    """One walk over a built-in object: unknown field paths and the Go decoding error (the first one saved)."""

    __slots__ = ("decode_error", "keep_going", "unknown")

    def __init__(self, *, keep_going: bool = False) -> None:
        self.unknown: list[str] = []
        self.decode_error: str | None = None
        self.keep_going = keep_going
        """Collect every unknown field even past an error that stops Go's decoder."""

    def fail(self, message: str) -> None:
        if self.decode_error is None:
            self.decode_error = message

    def abort(self, message: str) -> None:
        self.decode_error = message
        if not self.keep_going:
            raise _Abort(message)

    def mismatch(self, value: Any, struct: str, go_field: str, go_type: str, literal: bool = False) -> None:
        word = _go_value_word(value)
        if literal and word == "number":
            word = _number_word(value)
        self.fail(f"json: cannot unmarshal {word} into Go struct field {struct}.{go_field} of type {go_type}")

    def scan(self, raw: Mapping[str, Any], value: Any, path: str, struct: str, go_field: str) -> None:
        if value is None:
            return
        ref = raw.get("$ref")
        node = raw
        definition = ""
        if isinstance(ref, str):
            definition = _ref_name(ref)
            if definition == _INT_OR_STRING:
                if isinstance(value, bool) or not isinstance(value, str | int) or not _fits(value, "int32"):
                    word = _go_value_word(value)
                    self.abort(
                        f"json: cannot unmarshal {_number_word(value) if word == 'number' else word} into Go "
                        f"value of type int32"
                    )
                return
            if definition == _QUANTITY:
                problem = _quantity_problem(value)
                if problem:
                    self.abort(problem)
                return
            if definition in _TIMES:
                if not isinstance(value, str):
                    self.abort(f"json: cannot unmarshal {_go_value_word(value)} into Go value of type string")
                return
            node = BUILTIN_SCHEMAS.deref(raw)
        properties = node.get("properties")
        if isinstance(properties, Mapping):
            if not isinstance(value, dict):
                self.mismatch(value, struct, go_field, _go_type(raw))
                return
            struct_name = definition.rsplit(".", 1)[-1] if definition else struct
            for key, item in value.items():
                prop = properties.get(key)
                if prop is None:
                    self.unknown.append(_join(path, key))
                    continue
                self.scan(prop, item, _join(path, key), struct_name, _join(go_field, key))
            return
        declared = _v3_type(node.get("type"))
        if declared == "array":
            items = node.get("items")
            if not isinstance(value, list):
                if not (isinstance(value, str) and node.get("format") == "byte"):
                    self.mismatch(value, struct, go_field, _go_type(raw))
                return
            if isinstance(items, Mapping):
                for index, item in enumerate(value):
                    self.scan(items, item, f"{path}[{index}]", struct, go_field)
            return
        if declared == "object":
            additional = node.get("additionalProperties")
            if isinstance(additional, Mapping):
                if not isinstance(value, dict):
                    self.mismatch(value, struct, go_field, _go_type(raw))
                    return
                for key, item in value.items():
                    self.scan(additional, item, _join(path, key), struct, go_field)
            return
        if declared == "string":
            if not isinstance(value, str):
                self.mismatch(value, struct, go_field, _go_type(raw))
        elif declared == "boolean":
            if not isinstance(value, bool):
                self.mismatch(value, struct, go_field, "bool")
        elif declared == "integer":
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.mismatch(value, struct, go_field, _go_type(raw))
            elif isinstance(value, float) or not _fits(value, node.get("format")):
                self.mismatch(value, struct, go_field, _go_type(raw), literal=True)
        elif declared == "number" and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.mismatch(value, struct, go_field, _go_type(raw))


def _number_word(value: Any) -> str:
    """encoding/json names a number it cannot store by its literal: "number 1.5"."""
    return f"number {_go_json(value)}"


def _fits(value: Any, fmt: Any) -> bool:
    if not isinstance(value, int) or isinstance(value, bool):
        return True
    if fmt == "int32":
        return -(2**31) <= value < 2**31
    return -(2**63) <= value < 2**63


def _scan_builtin(definition: str, obj: Mapping[str, Any], *, keep_going: bool = False) -> _BuiltinScan:
    scan = _BuiltinScan(keep_going=keep_going)
    root = BUILTIN_SCHEMAS.resolve(definition)
    properties = root.get("properties") or {}
    struct = definition.rsplit(".", 1)[-1]
    for key, value in obj.items():
        if key == "metadata":
            continue  # ObjectMeta is checked by the API machinery
        prop = properties.get(key)
        if prop is None:
            scan.unknown.append(key)
            continue
        if key in ("apiVersion", "kind"):
            if value is not None and not isinstance(value, str):
                scan.mismatch(value, struct, key, "string")
            continue
        try:
            scan.scan(prop, value, key, struct, key)
        except _Abort:
            break
    return scan


def _drop_paths(value: Any, node: Mapping[str, Any], prefix: str, unknown: set[str]) -> Any:
    """``value`` without the unknown fields found in it (copy on write)."""
    node = BUILTIN_SCHEMAS.deref(node)
    if isinstance(value, dict):
        properties = node.get("properties")
        additional = node.get("additionalProperties")
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            path = _join(prefix, key)
            if path in unknown:
                changed = True
                continue
            if isinstance(properties, Mapping) and key in properties:
                kept = _drop_paths(item, properties[key], path, unknown)
            elif isinstance(additional, Mapping):
                kept = _drop_paths(item, additional, path, unknown)
            else:
                kept = item
            changed = changed or kept is not item
            out[key] = kept
        return out if changed else value
    if isinstance(value, list) and isinstance(node.get("items"), Mapping):
        items = node["items"]
        new = [_drop_paths(item, items, f"{prefix}[{index}]", unknown) for index, item in enumerate(value)]
        return new if any(a is not b for a, b in zip(new, value, strict=True)) else value
    return value


def prune_builtin(definition: str, obj: Mapping[str, Any]) -> Pruned:
    """A built-in object without its unknown fields (Go decoding drops them; metadata is left alone).

    Returns ``obj`` itself (as a dict) when nothing is unknown. Raises UnknownDefinition.
    """
    unknown = _scan_builtin(definition, obj, keep_going=True).unknown
    if not unknown:
        return Pruned(obj if isinstance(obj, dict) else dict(obj), [])
    root = BUILTIN_SCHEMAS.resolve(definition)
    cleaned = _drop_paths(dict(obj), root, "", set(unknown))
    return Pruned(cleaned, sorted(unknown))


# ---------------------------------------------------------------------------------------------------------------------
# The entry point


@dataclass(frozen=True)
class ValidationResult:
    """What the API server finds wrong with a request body (metadata aside)."""

    unknown_fields: list[str] = field(default_factory=list)
    """Paths of unknown fields, e.g. "spec.replcas", "spec.template.spec.containers[0].imagee"."""
    errors: list[FieldError] = field(default_factory=list)
    """Schema errors of custom resources: the causes of a 422 Invalid answer."""
    decode_error: str | None = None
    """Built-in kinds: the Go decoding error (wrong JSON type), answered as 400 BadRequest with the message
    '<Kind> in version "<version>" cannot be handled as a <Kind>: <decode_error>'."""

    @property
    def warnings(self) -> list[str]:
        """fieldValidation=Warn: one warning per unknown field, 'unknown field "spec.replcas"'."""
        return [f'unknown field "{path}"' for path in self.unknown_fields]

    @property
    def strict_error(self) -> str | None:
        """fieldValidation=Strict: the BadRequest message, 'strict decoding error: unknown field "spec.x", ...'."""
        if not self.unknown_fields:
            return None
        return "strict decoding error: " + ", ".join(self.warnings)

    @property
    def ok(self) -> bool:
        return not self.errors and self.decode_error is None

    def bad_request(self, kind: str, version: str, *, strict: bool) -> str | None:
        """The message of the 400 BadRequest the API server answers for this body, or None.

        A decoding error always fails the request; unknown fields fail it when ``strict`` (fieldValidation=Strict).
        Worded as kube-apiserver's decoder: 'Deployment in version "v1" cannot be handled as a Deployment: ...'.
        """
        problem = self.decode_error or (self.strict_error if strict else None)
        if problem is None:
            return None
        return f"{kind} in version {_go_quote(version)} cannot be handled as a {kind}: {problem}"


def validate_object(rtype: kinds.ResourceType, obj: Mapping[str, Any]) -> ValidationResult:
    """Check a request body of ``rtype`` the way the API server does (metadata is skipped).

    Built-in kinds: unknown fields and the first Go decoding error (wrong JSON type of a field).
    Custom kinds: unknown fields (what pruning drops) and the errors of the version's openAPIV3Schema, then
    duplicates in list-type set/map lists. Call it on the object after ``default_and_prune`` so defaults count
    for ``required`` (the unknown fields of the original are in ``Pruned.pruned``). Raises UnknownDefinition for a
    built-in type whose definition does not exist.
    """
    if rtype.builtin:
        if not rtype.definition:
            return ValidationResult()
        scan = _scan_builtin(rtype.definition, obj)
        return ValidationResult(scan.unknown, [], scan.decode_error)
    if not rtype.schema:
        return ValidationResult()
    compiled = _compiled(rtype.schema)
    unknown: list[str] = []
    _prune(obj, compiled, "", unknown, embedded=True)  # only the paths are wanted; nothing is built unless needed
    unknown.sort()
    errors: list[FieldError] = []
    _check(compiled, obj, "", errors)
    _check_list_types(compiled, obj, "", errors)
    return ValidationResult(unknown, errors, None)
