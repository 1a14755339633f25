"""The API server's semantics, apart from HTTP: what create, update, patch, delete, list and
watch do to objects, as a Kubernetes API server does them.

One global resourceVersion; uid, creationTimestamp, generateName; generation bumped on
changes outside metadata and status; the status subresource; finalizers and
deletionTimestamp; owner references with background, foreground and orphan deletion;
namespace deletion; dry run; field validation; custom resources defaulted, pruned and
validated against their CRD, its CEL rules included (``sandbox.cel``, status writes too);
CRDs that add and remove resource types as they come and go.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from upkeep.sandbox import cel, conversion, fieldmanager, kinds, names, openapi, patching, rbac, selectors, status
from upkeep.sandbox.simulation import workloads_defaults
from upkeep.sandbox.store import Store

__all__ = ["ApiServer", "Request", "WriteResult"]

_WORKLOAD_KINDS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"})
_IMMUTABLE_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "namespace",
    "name",
)


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Request:
    """What a write needs to know of its HTTP request."""

    dry_run: bool = False
    field_manager: str = ""
    field_validation: str = "Warn"
    """Ignore, Warn or Strict (the server's default is Warn)."""
    user_agent: str = ""
    force: bool = False


@dataclass
class WriteResult:
    obj: dict[str, Any]
    created: bool = False
    warnings: list[str] = field(default_factory=list)
    deleted: bool = False
    """A DELETE that removed the object at once (rather than marking it)."""


def _resource_key(rtype: kinds.ResourceType) -> str:
    return conversion.storage_key(rtype.group, rtype.plural)


def _stored(rtype: kinds.ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (in ``rtype``'s form) in the form it is stored in."""
    if rtype.group == "events.k8s.io":
        return conversion.to_stored(rtype.group, rtype.plural, obj)
    return obj


def _strip_volatile(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without fields that change on every write, to detect no-op updates."""
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in ("resourceVersion", "managedFields")}
    return {**obj, "metadata": metadata}


def _outside_metadata_and_status(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


class ApiServer:
    """Kubernetes API semantics over a Store."""

    def __init__(self, store: Store, *, on_change: Callable[[], None] | None = None) -> None:
        self.store = store
        self.types: dict[tuple[str, str, str], kinds.ResourceType] = {}
        self.on_types_changed = on_change
        """Called after CRDs add or remove types (discovery and OpenAPI caches listen)."""
        for rtype in kinds.BUILTIN:
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype
        self.graceful_pods = False
        """Pods bound to nodes stop gracefully (the simulation's kubelets remove them); off for an API server alone."""
        self._semantics_cache: dict[tuple[str, str, str, int], Callable[[tuple[str, ...]], patching.ListSemantics]] = {}
        self._rules_cache: dict[tuple[str, str, str], tuple[Any, cel.Validator | None, str]] = {}
        """Per custom type: (the schema compiled, its CEL rules or None, why they do not compile or "")."""
        self._owners: dict[str, set[tuple[str, str, str]]] = {}
        self._foreground: dict[str, tuple[str, str, str]] = {}
        """Owners waiting in foreground deletion: uid → (resource key, namespace, name)."""
        """Owner uid → dependents as (resource key, namespace, name)."""
        for crd in store.objects("apiextensions.k8s.io/customresourcedefinitions"):
            self._register_crd(crd, notify=False)
        self._index_all_owners()
        self.types_generation = 0
        self._ensure_default_namespaces()
        self._ensure_default_rbac()

    # types

    def lookup(self, group: str, version: str, plural: str) -> kinds.ResourceType | None:
        return self.types.get((group, version, plural))

    def storage_type(self, rtype: kinds.ResourceType) -> kinds.ResourceType:
        for candidate in self.types.values():
            if candidate.group == rtype.group and candidate.plural == rtype.plural and candidate.storage:
                return candidate
        return rtype

    def served_types(self) -> list[kinds.ResourceType]:
        return list(self.types.values())

    def _register_crd(self, crd: Mapping[str, Any], *, notify: bool = True) -> None:
        self._unregister_crd(str(crd["metadata"]["name"]), notify=False)
        for rtype in kinds.from_crd(crd):
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype
        if notify:
            self._types_changed()

    def _unregister_crd(self, crd_name: str, *, notify: bool = True) -> None:
        for key, rtype in list(self.types.items()):
            if rtype.crd_name == crd_name:
                del self.types[key]
        if notify:
            self._types_changed()

    def _types_changed(self) -> None:
        self.types_generation += 1
        if self.on_types_changed:
            self.on_types_changed()

    def _ensure_default_rbac(self) -> None:
        """The ClusterRoles and bindings of a fresh cluster (cluster-admin, admin, edit, view, discovery...)."""
        for obj in rbac.default_objects():
            plural = {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings"}[obj["kind"]]
            rtype = self.lookup("rbac.authorization.k8s.io", "v1", plural)
            assert rtype is not None
            if self.store.get(_resource_key(rtype), "", obj["metadata"]["name"]) is None:
                self.create(rtype, "", obj, Request(field_manager="sandbox"))

    def authorizer(self) -> rbac.Authorizer:
        """RBAC over the stored Roles, ClusterRoles and bindings, rebuilt only when one of them changes."""
        keys = [
            f"rbac.authorization.k8s.io/{plural}"
            for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
        ]
        return rbac.Authorizer(
            *(lambda key=key: self.store.objects(key) for key in keys),
            generation=lambda: sum(self.store.writes[key] for key in keys),
        )

    def _ensure_default_namespaces(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get("/namespaces", "", name) is None:
                namespaces = self.lookup("", "v1", "namespaces")
                assert namespaces is not None
                self.create(
                    namespaces,
                    "",
                    {
                        "apiVersion": "v1",
                        "kind": "Namespace",
                        "metadata": {"name": name},
                    },
                    Request(field_manager="sandbox"),
                )

    # reading

    def get(self, rtype: kinds.ResourceType, namespace: str, name: str) -> dict[str, Any]:
        found = self.store.get(_resource_key(rtype), namespace if rtype.namespaced else "", name)
        if found is None:
            raise status.not_found(rtype.plural, rtype.group, name)
        return self.as_version(found, rtype)

    def as_version(self, obj: dict[str, Any], rtype: kinds.ResourceType) -> dict[str, Any]:
        """Objects are stored in one form; serve them in the requested group and version."""
        if obj.get("apiVersion") == rtype.group_version:
            return obj
        return conversion.from_stored(rtype.group, rtype.version, rtype.plural, obj)

    def list_objects(
        self,
        rtype: kinds.ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 0,
        continue_token: str | None = None,
    ) -> dict[str, Any]:
        labels, fields = self._selectors(rtype, label_selector, field_selector)
        items = self.store.objects(_resource_key(rtype), namespace if rtype.namespaced else None)
        start = ""
        list_rv = self.store.rv
        if continue_token:
            try:
                token = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start, list_rv = str(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise status.bad_request("invalid continue token") from None
            if list_rv < self.store.compacted:
                raise status.gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter."
                )
        selected: list[dict[str, Any]] = []
        remaining = 0
        next_start = ""
        for obj in items:
            metadata = obj["metadata"]
            position = f"{metadata.get('namespace', '')}/{metadata['name']}"
            if start and position <= start:
                continue
            if (labels.empty or labels.matches(metadata.get("labels"))) and (
                fields.empty or fields.matches(self.as_version(obj, rtype))
            ):
                if limit and len(selected) >= limit:
                    remaining += 1
                    continue
                selected.append(self.as_version(obj, rtype))
                next_start = position
        list_metadata: dict[str, Any] = {"resourceVersion": str(list_rv)}
        if remaining:
            token = {"start": next_start, "rv": list_rv}
            list_metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            list_metadata["remainingItemCount"] = remaining
        return {
            "kind": rtype.list_kind,
            "apiVersion": rtype.group_version,
            "metadata": list_metadata,
            "items": selected,
        }

    def _selectors(
        self, rtype: kinds.ResourceType, label_selector: str | None, field_selector: str | None
    ) -> tuple[selectors.LabelSelector, selectors.FieldSelector]:
        try:
            labels = selectors.parse_label_selector(label_selector)
            fields = selectors.parse_field_selector(
                field_selector, rtype.kind, custom=not rtype.builtin, allowed=self._selectable_field(rtype)
            )
        except selectors.SelectorError as error:
            raise status.bad_request(str(error)) from None
        return labels, fields

    def _selectable_field(self, rtype: kinds.ResourceType) -> Callable[[str], bool] | None:
        if rtype.builtin:
            return None
        crd = self.store.get("apiextensions.k8s.io/customresourcedefinitions", "", rtype.crd_name) or {}
        for version in crd.get("spec", {}).get("versions", []):
            if version.get("name") == rtype.version:
                paths = {str(item.get("jsonPath", "")).lstrip(".") for item in version.get("selectableFields") or []}
                return lambda path: path in paths
        return None

    # writing

    def _semantics(self, rtype: kinds.ResourceType) -> Callable[[tuple[str, ...]], patching.ListSemantics]:
        """One semantics callable per type, kept alive: the field manager caches its answers per callable."""
        key = (rtype.group, rtype.version, rtype.plural, id(rtype.schema))
        found = self._semantics_cache.get(key)
        if found is None:
            if rtype.builtin:
                definition = rtype.definition

                def found(path: tuple[str, ...]) -> patching.ListSemantics:
                    return patching.ListSemantics(**vars(openapi.field_semantics(definition, path)))
            else:
                schema = rtype.schema or {}

                def found(path: tuple[str, ...]) -> patching.ListSemantics:
                    return patching.ListSemantics(**vars(openapi.field_semantics_in_schema(schema, path)))

            self._semantics_cache[key] = found
        return found

    @staticmethod
    def _ignored(rtype: kinds.ResourceType, subresource: str) -> list[tuple[str, ...]]:
        """Fields a write does not own: status for main-resource writes of kinds with a status subresource."""
        if subresource == "status":
            return [("spec",)]
        return [("status",)] if "status" in rtype.subresources else []

    def _check_body(self, rtype: kinds.ResourceType, namespace: str, body: Any, *, name: str | None) -> None:
        if not isinstance(body, dict):
            raise status.bad_request(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml (got {type(body).__name__})"
            )
        api_version, kind = body.get("apiVersion"), body.get("kind")
        if api_version and api_version != rtype.group_version:
            raise status.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rtype.group_version})"
            )
        if kind and kind != rtype.kind:
            if not rtype.builtin:
                raise status.invalid(
                    rtype.kind,
                    rtype.group,
                    str((body.get("metadata") or {}).get("name", "")),
                    [
                        {
                            "reason": "FieldValueInvalid",
                            "field": "kind",
                            "message": f'Invalid value: "{kind}": must be {rtype.kind}',
                        }
                    ],
                )
            raise status.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        metadata = body.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise status.bad_request(_undecodable(rtype, "metadata", "ObjectMeta", metadata))
        _check_metadata_types(rtype, metadata)
        if rtype.namespaced:
            given = metadata.get("namespace")
            if given and given != namespace:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
        if name is not None and metadata.get("name") and metadata["name"] != name:
            raise status.bad_request(
                f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})"
            )

    def _rules(self, rtype: kinds.ResourceType) -> tuple[cel.Validator | None, str]:
        """The compiled ``x-kubernetes-validations`` of a custom type (None: none), or why they do not compile."""
        key = (rtype.group, rtype.version, rtype.plural)
        found = self._rules_cache.get(key)
        if found is None or found[0] is not rtype.schema:
            try:
                found = (rtype.schema, cel.validator_for(rtype.schema), "")
            except cel.RuleError as error:
                found = (rtype.schema, None, str(error))
            self._rules_cache[key] = found
        return found[1], found[2]

    def _rule_causes(
        self,
        rtype: kinds.ResourceType,
        obj: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        schema_causes: list[dict[str, str]],
        warnings: list[str],
    ) -> list[dict[str, str]]:
        """What the CRD's CEL rules say of a write (after the schema checks, as the server runs them)."""
        if rtype.builtin:
            return []
        validator, problem = self._rules(rtype)
        if problem:
            return [
                {
                    "reason": "FieldValueInvalid",
                    "field": "<nil>",
                    "message": f'Invalid value: "object": rule compiler initialization error: {problem}',
                }
            ]
        if validator is None:
            return []
        if any(cause.get("reason") in cel.BLOCKING_REASONS for cause in schema_causes):
            return [cel.blocked_cause().cause()]
        outcome = validator.validate(obj, old)
        warnings.extend(outcome.warnings)
        return [cause.cause() for cause in outcome.causes]

    def _validate(
        self,
        rtype: kinds.ResourceType,
        obj: dict[str, Any],
        request: Request,
        warnings: list[str],
        old: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Default, prune and validate ``obj`` (``old``: the stored object of an update) as the API server does.

        Returns the object to store. Custom resources are checked against their schema, then by the
        CEL rules of the CRD (``sandbox.cel``); a CRD whose rules do not compile is refused.
        """
        name = str(obj["metadata"].get("name") or obj["metadata"].get("generateName") or "")
        strict = request.field_validation == "Strict"
        unknown: list[str] = []
        if rtype.builtin:
            result = openapi.validate_object(rtype, obj)
            refusal = result.bad_request(rtype.kind, rtype.version, strict=strict)
            if refusal:
                raise status.bad_request(refusal)
            unknown = list(result.unknown_fields)
            if unknown:
                obj = dict(openapi.prune_builtin(rtype.definition, obj).obj)
        elif rtype.schema:
            pruned = openapi.default_and_prune(rtype.schema, obj)
            obj, unknown = dict(pruned.obj), list(pruned.pruned)
            if unknown and strict:
                listed = ", ".join(f'unknown field "{path}"' for path in unknown)
                raise status.bad_request(
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: '
                    f"strict decoding error: {listed}"
                )
            result = openapi.validate_object(rtype, obj)
            schema_causes = [{"reason": e.type, "field": e.field, "message": e.message} for e in result.errors]
            schema_causes += self._rule_causes(rtype, obj, old, schema_causes, warnings)
            if schema_causes:
                raise status.invalid(rtype.kind, rtype.group, name, schema_causes)
        if unknown and request.field_validation == "Warn":
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        check = names.subdomain_problem
        if rtype.builtin and rtype.kind in ("Namespace", "Service"):
            check = names.label_problem
        elif rtype.builtin and rtype.group == "rbac.authorization.k8s.io":
            check = names.path_segment_problem
        causes: list[dict[str, str]] = []
        given = str(obj["metadata"].get("name", ""))
        problem = check(given) if given else None
        if problem:
            causes.append(
                {
                    "reason": "FieldValueInvalid",
                    "field": "metadata.name",
                    "message": f'Invalid value: "{given}": {problem}',
                }
            )
        prefix = obj["metadata"].get("generateName")
        if isinstance(prefix, str) and prefix:
            problem = check(prefix.rstrip("-") or prefix)
            if problem:
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "metadata.generateName",
                        "message": f'Invalid value: "{prefix}": {problem}',
                    }
                )
        causes += names.label_causes(obj["metadata"].get("labels"))
        if rtype.builtin and rtype.kind == "CustomResourceDefinition":
            causes += cel.crd_causes(obj)
        if rtype.builtin and rtype.kind in ("ConfigMap", "Secret"):
            size = sum(
                len(str(k)) + len(str(v))
                for part in ("data", "binaryData", "stringData")
                for k, v in (obj.get(part) or {}).items()
            )
            if size > 1024 * 1024:
                causes.append(
                    {
                        "reason": "FieldValueTooLong",
                        "field": "[]",
                        "message": f"Too long: must have at most {1024 * 1024} bytes",
                    }
                )
        if causes:
            raise status.invalid(rtype.kind, rtype.group, name, causes)
        return obj

    def create(
        self, rtype: kinds.ResourceType, namespace: str, body: Any, request: Request, *, managed: bool = False
    ) -> WriteResult:
        """Create an object; ``managed``: the body's managedFields were set by server-side apply."""
        if "create" not in rtype.verbs:
            raise status.ApiError(
                405,
                "MethodNotAllowed",
                f"the server does not allow this method on the requested resource ({rtype.plural})",
            )
        self._check_body(rtype, namespace, body, name=None)
        obj = copy.deepcopy(body)
        metadata = obj["metadata"]
        if rtype.namespaced:
            metadata["namespace"] = namespace
            self._require_active_namespace(namespace)
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise status.invalid(
                    rtype.kind,
                    rtype.group,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "field": "metadata.name",
                            "message": "Required value: name or generateName is required",
                        }
                    ],
                )
            metadata["name"] = names.generate(str(metadata["generateName"]))
        obj.setdefault("apiVersion", rtype.group_version)
        obj.setdefault("kind", rtype.kind)
        if "status" in rtype.subresources and not (rtype.builtin and rtype.kind == "Namespace"):
            obj.pop("status", None)
        warnings: list[str] = []
        obj = self._validate(rtype, obj, request, warnings)
        metadata = obj["metadata"]
        key = _resource_key(rtype)
        if self.store.get(key, metadata.get("namespace", ""), metadata["name"]) is not None:
            raise status.already_exists(rtype.plural, rtype.group, metadata["name"])
        for volatile in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            metadata.pop(volatile, None)
        if not managed:
            metadata.pop("managedFields", None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_text()
        metadata["generation"] = 1
        self._prepare_for_create(rtype, obj)
        if not managed:
            manager = request.field_manager or fieldmanager.manager_from_user_agent(request.user_agent)
            obj = fieldmanager.record_update(
                None,
                obj,
                manager,
                "Update",
                self._semantics(rtype),
                now_text(),
                api_version=rtype.group_version,
                ignored=self._ignored(rtype, ""),
            )
        if request.dry_run:
            return WriteResult(obj, created=True, warnings=warnings)
        metadata = obj["metadata"]
        metadata["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put(key, _stored(rtype, obj), "ADDED")
        self._index_owners(key, stored)
        self._after_write(rtype, stored)
        return WriteResult(self.as_version(stored, rtype), created=True, warnings=warnings)

    def _prepare_for_create(self, rtype: kinds.ResourceType, obj: dict[str, Any]) -> None:
        """The defaults a real API server's strategies set on create for a few kinds."""
        kind = rtype.kind if rtype.builtin else ""
        if kind == "Namespace":
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif kind == "Secret":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {})
                for item, value in string_data.items():
                    data[item] = base64.b64encode(str(value).encode()).decode()
        elif kind == "Pod":
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif kind == "Service":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec.get("clusterIP") != "None":
                spec.setdefault("clusterIP", self._next_cluster_ip())
                spec["clusterIPs"] = [spec["clusterIP"]]
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        elif kind in _WORKLOAD_KINDS:
            workloads_defaults.apply(kind, obj)
        elif kind == "CustomResourceDefinition":
            self._crd_status(obj)

    def _next_cluster_ip(self) -> str:
        used = self.store.count("/services") + 1
        return f"10.96.{(used // 250) % 250}.{used % 250 + 1}"

    def _crd_status(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        names_ = dict(spec.get("names", {}))
        names_.setdefault("singular", str(names_.get("kind", "")).lower())
        names_.setdefault("listKind", f"{names_.get('kind', '')}List")
        moment = now_text()
        crd["status"] = {
            "acceptedNames": names_,
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": moment,
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": moment,
                },
            ],
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
        }

    def _require_active_namespace(self, namespace: str) -> None:
        found = self.store.get("/namespaces", "", namespace)
        if found is None:
            raise status.not_found("namespaces", "", namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise status.forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated",
                plural="namespaces",
                name=namespace,
            )

    def update(
        self,
        rtype: kinds.ResourceType,
        namespace: str,
        name: str,
        body: Any,
        request: Request,
        *,
        subresource: str = "",
        owned: bool = False,
    ) -> WriteResult:
        """Replace an object (PUT). ``owned``: ``body`` is the caller's to give away (a request body just parsed),
        so it is not copied first; the server's own controllers pass pieces of stored objects, which are copied."""
        self._check_body(rtype, namespace, body, name=name)
        key = _resource_key(rtype)
        ns = namespace if rtype.namespaced else ""
        old = self.store.get(key, ns, name)
        if old is None:
            raise status.not_found(rtype.plural, rtype.group, name)
        wanted_rv = body["metadata"].get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise status.conflict(rtype.plural, rtype.group, name)
        new = body if owned else copy.deepcopy(body)
        return self._replace(rtype, old, new, request, subresource=subresource, operation="Update")

    def _replace(
        self,
        rtype: kinds.ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        request: Request,
        *,
        subresource: str,
        operation: str,
        managed: bool = False,
    ) -> WriteResult:
        """Write ``new`` over ``old`` with the rules of an update; ``managed``: managedFields already set."""
        key = _resource_key(rtype)
        stored_old = old
        old = self.as_version(old, rtype)
        metadata = new.setdefault("metadata", {})
        for item in _IMMUTABLE_METADATA:
            if item in old["metadata"]:
                metadata[item] = old["metadata"][item]
            else:
                metadata.pop(item, None)
        new["apiVersion"] = old.get("apiVersion", rtype.group_version)
        new["kind"] = rtype.kind
        if subresource == "status":
            new = {**old, "status": new.get("status", {}), "metadata": {**old["metadata"]}}
        elif "status" in rtype.subresources:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        if subresource != "status" and old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                raise status.forbidden(
                    f'{rtype.plural} "{old["metadata"]["name"]}" is forbidden: no new finalizers '
                    f"can be added if the object is being deleted, found new finalizers "
                    f"{json.dumps(sorted(added))}",
                    plural=rtype.plural,
                    group=rtype.group,
                    name=old["metadata"]["name"],
                )
        warnings: list[str] = []
        if subresource != "status":
            new = self._validate(rtype, new, request, warnings, old=old)
            if rtype.builtin and rtype.kind in _WORKLOAD_KINDS:
                workloads_defaults.apply(rtype.kind, new)
        else:
            # A status write runs the CRD's rules on the whole object too, as a real server does.
            causes = self._rule_causes(rtype, new, old, [], warnings)
            if causes:
                raise status.invalid(rtype.kind, rtype.group, str(old["metadata"].get("name", "")), causes)
        if _outside_metadata_and_status(new) != _outside_metadata_and_status(old):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        else:
            new["metadata"]["generation"] = old["metadata"].get("generation", 1)
        if not managed:
            manager = request.field_manager or fieldmanager.manager_from_user_agent(request.user_agent)
            new = fieldmanager.record_update(
                old,
                new,
                manager,
                operation,
                self._semantics(rtype),
                now_text(),
                subresource=subresource,
                api_version=rtype.group_version,
                ignored=self._ignored(rtype, subresource),
            )
        if _strip_volatile(new) == _strip_volatile(old):
            return WriteResult(self.as_version(old, rtype), warnings=warnings)
        if request.dry_run:
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return WriteResult(new, warnings=warnings)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self._remove(rtype, key, _stored(rtype, new))
            return WriteResult(self.as_version(new, rtype), warnings=warnings)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put(key, _stored(rtype, new), "MODIFIED")
        self._index_owners(key, stored, stored_old)
        self._after_write(rtype, stored)
        return WriteResult(self.as_version(stored, rtype), warnings=warnings)

    def patch(
        self,
        rtype: kinds.ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        request: Request,
        *,
        subresource: str = "",
    ) -> WriteResult:
        key = _resource_key(rtype)
        ns = namespace if rtype.namespaced else ""
        old = self.store.get(key, ns, name)
        semantics = self._semantics(rtype)
        if content_type == "application/apply-patch+yaml":
            if not request.field_manager:
                raise status.bad_request(
                    "PATCH requests with content type application/apply-patch+yaml must "
                    "include a fieldManager query parameter"
                )
            if not isinstance(body, dict):
                raise status.bad_request("the body of an apply request must be an object")
            if old is None and subresource:
                raise status.not_found(rtype.plural, rtype.group, name)
            live = None if old is None else self.as_version(old, rtype)
            if subresource == "status" and live is not None:
                body = {**body, "spec": live.get("spec")} if "spec" in live else body
            try:
                applied = fieldmanager.apply(
                    live,
                    body,
                    request.field_manager,
                    request.force,
                    semantics,
                    now_text(),
                    api_version=rtype.group_version,
                    kind=rtype.kind,
                    subresource=subresource,
                    ignored=self._ignored(rtype, subresource),
                )
            except patching.PatchError as error:
                raise status.ApiError(error.code, error.reason or "InternalError", error.message) from None
            if applied.conflicts:
                raise status.ApiError(
                    409,
                    "Conflict",
                    fieldmanager.conflict_status_message(applied.conflicts),
                    details={
                        "name": name,
                        "group": rtype.group,
                        "kind": rtype.plural,
                        "causes": fieldmanager.conflict_causes(applied.conflicts),
                    },
                )
            if applied.obj is None:
                raise status.ApiError(500, "InternalError", "server-side apply produced no object")
            if old is None:
                created = applied.obj
                created.setdefault("metadata", {})["name"] = name
                return self.create(rtype, namespace, created, request, managed=True)
            return self._replace(
                rtype, old, applied.obj, request, subresource=subresource, operation="Apply", managed=True
            )
        if old is None:
            raise status.not_found(rtype.plural, rtype.group, name)
        current = self.as_version(old, rtype)
        try:
            if content_type == "application/merge-patch+json":
                patched = patching.merge_patch(current, body)
            elif content_type == "application/json-patch+json":
                patched = patching.json_patch(current, body)
            elif content_type == "application/strategic-merge-patch+json":
                if not rtype.builtin:
                    raise status.ApiError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format - accepted media types "
                        "include: application/json-patch+json, application/merge-patch+json, "
                        "application/apply-patch+yaml",
                    )
                patched = patching.strategic_merge_patch(current, body, semantics)
            else:
                raise status.ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format "
                    f"- accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/apply-patch+yaml, "
                    f"application/strategic-merge-patch+json (got {content_type})",
                )
        except patching.PatchError as error:
            raise status.ApiError(error.code, error.reason or "InternalError", error.message) from None
        if not isinstance(patched, dict):
            raise status.bad_request("the patch must leave an object")
        wanted_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and str(wanted_rv) != old["metadata"]["resourceVersion"]:
            raise status.conflict(rtype.plural, rtype.group, name)
        self._check_body(rtype, namespace, patched, name=name)
        return self._replace(rtype, old, patched, request, subresource=subresource, operation="Update")

    # deleting

    def delete(
        self, rtype: kinds.ResourceType, namespace: str, name: str, options: Mapping[str, Any], request: Request
    ) -> WriteResult:
        key = _resource_key(rtype)
        ns = namespace if rtype.namespaced else ""
        old = self.store.get(key, ns, name)
        if old is None:
            raise status.not_found(rtype.plural, rtype.group, name)
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != old["metadata"]["uid"]:
            raise status.conflict(
                rtype.plural,
                rtype.group,
                name,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {old['metadata']['uid']}",
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != old["metadata"]["resourceVersion"]
        ):
            raise status.conflict(
                rtype.plural,
                rtype.group,
                name,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object meta: "
                f"{old['metadata']['resourceVersion']}",
            )
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        policy = policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise status.bad_request(
                f"propagationPolicy: Unsupported value: {policy!r}: supported values: "
                f'"Foreground", "Background", "Orphan"'
            )
        finalizers = list(old["metadata"].get("finalizers") or [])
        special = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(policy)
        has_dependents = bool(self._owners.get(old["metadata"]["uid"]))
        if special and has_dependents and special not in finalizers:
            finalizers.append(special)
        if rtype.builtin and rtype.kind == "Namespace":
            return self._delete_namespace(rtype, old, request)
        grace = self._pod_grace(rtype, old, options)
        if grace:
            return self._delete_gracefully(rtype, key, old, grace, request)
        if finalizers:
            if old["metadata"].get("deletionTimestamp") and finalizers == old["metadata"].get("finalizers"):
                return WriteResult(self.as_version(old, rtype))
            marked = copy.deepcopy(old)
            marked["metadata"]["finalizers"] = finalizers
            marked["metadata"].setdefault("deletionTimestamp", now_text())
            marked["metadata"].setdefault("deletionGracePeriodSeconds", 0)
            if request.dry_run:
                return WriteResult(marked)
            marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
            marked["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
            stored = self.store.put(key, marked, "MODIFIED")
            self._process_deleting(rtype, key, stored)
            return WriteResult(self.as_version(stored, rtype))
        if request.dry_run:
            return WriteResult(old, deleted=True)
        removed = copy.deepcopy(old)
        removed["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self._remove(rtype, key, removed)
        return WriteResult(self.as_version(removed, rtype), deleted=True)

    def _pod_grace(self, rtype: kinds.ResourceType, pod: Mapping[str, Any], options: Mapping[str, Any]) -> int:
        """Seconds a running pod gets to stop before it is removed; 0 when it goes at once.

        As on a real cluster: a pod bound to a node and not finished is marked (deletionTimestamp in
        the future, deletionGracePeriodSeconds) and its kubelet removes it once its containers stop.
        Only while kubelets run (``graceful_pods``): without them nobody would ever remove it.
        """
        if not (self.graceful_pods and rtype.builtin and rtype.kind == "Pod"):
            return 0
        if not pod.get("spec", {}).get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        asked = options.get("gracePeriodSeconds")
        if asked is None:
            asked = pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        try:
            grace = int(asked)
        except (TypeError, ValueError):
            raise status.bad_request(f"gracePeriodSeconds: Invalid value: {asked!r}: must be an integer") from None
        return max(grace, 0)

    def _delete_gracefully(
        self, rtype: kinds.ResourceType, key: str, old: dict[str, Any], grace: int, request: Request
    ) -> WriteResult:
        metadata = old["metadata"]
        if metadata.get("deletionTimestamp") and int(metadata.get("deletionGracePeriodSeconds", grace)) <= grace:
            return WriteResult(self.as_version(old, rtype))
        marked = copy.deepcopy(old)
        deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
        marked["metadata"]["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        marked["metadata"]["deletionGracePeriodSeconds"] = grace
        if request.dry_run:
            return WriteResult(marked)
        marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put(key, marked, "MODIFIED")
        return WriteResult(self.as_version(stored, rtype))

    def delete_collection(
        self,
        rtype: kinds.ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None,
        field_selector: str | None,
        options: Mapping[str, Any],
        request: Request,
    ) -> dict[str, Any]:
        listed = self.list_objects(rtype, namespace, label_selector=label_selector, field_selector=field_selector)
        for item in listed["items"]:
            try:
                self.delete(rtype, item["metadata"].get("namespace", ""), item["metadata"]["name"], options, request)
            except status.ApiError as error:
                if error.code != 404:
                    raise
        return listed

    def _remove(self, rtype: kinds.ResourceType, key: str, obj: dict[str, Any]) -> None:
        self.store.remove(key, obj)
        self._unindex_owners(key, obj)
        if rtype.builtin and rtype.kind == "CustomResourceDefinition":
            self._drop_custom_resources(obj)
        self._collect_dependents(obj)
        self._check_waiting_owners()
        self._check_terminating_namespaces()

    def _drop_custom_resources(self, crd: dict[str, Any]) -> None:
        spec = crd.get("spec", {})
        key = f"{spec.get('group')}/{spec.get('names', {}).get('plural')}"
        for obj in self.store.objects(key):
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(key, gone)
            self._unindex_owners(key, gone)
        self.store.drop_resource(key)
        self._unregister_crd(str(crd["metadata"]["name"]))

    def _after_write(self, rtype: kinds.ResourceType, obj: dict[str, Any]) -> None:
        if rtype.builtin and rtype.kind == "CustomResourceDefinition":
            self._register_crd(obj)

    # namespaces

    def _delete_namespace(self, rtype: kinds.ResourceType, old: dict[str, Any], request: Request) -> WriteResult:
        if request.dry_run:
            return WriteResult(old)
        if old["metadata"].get("deletionTimestamp"):
            return WriteResult(old)
        marked = copy.deepcopy(old)
        marked["metadata"]["deletionTimestamp"] = now_text()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked["status"] = {"phase": "Terminating"}
        marked["metadata"]["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put("/namespaces", marked, "MODIFIED")
        namespace = stored["metadata"]["name"]
        for candidate in list(self.types.values()):
            if not candidate.namespaced or not candidate.storage or "delete" not in candidate.verbs:
                continue
            for obj in self.store.objects(_resource_key(candidate), namespace):
                try:
                    self.delete(candidate, namespace, obj["metadata"]["name"], {}, Request())
                except status.ApiError:
                    continue
        self._check_terminating_namespaces()
        found = self.store.get("/namespaces", "", namespace) or stored
        return WriteResult(found)

    def _check_terminating_namespaces(self) -> None:
        for namespace in self.store.objects("/namespaces"):
            if not namespace["metadata"].get("deletionTimestamp"):
                continue
            name = namespace["metadata"]["name"]
            if any(
                self.store.objects(_resource_key(t), name) for t in self.types.values() if t.namespaced and t.storage
            ):
                continue
            gone = copy.deepcopy(namespace)
            gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
            gone.setdefault("spec", {})["finalizers"] = []
            self.store.remove("/namespaces", gone)

    # garbage collection

    def _index_all_owners(self) -> None:
        for resource in self.store.resources():
            for obj in self.store.objects(resource):
                self._index_owners(resource, obj)
                metadata = obj["metadata"]
                if metadata.get("deletionTimestamp") and "foregroundDeletion" in (metadata.get("finalizers") or []):
                    self._foreground[str(metadata["uid"])] = (
                        resource,
                        str(metadata.get("namespace") or ""),
                        str(metadata["name"]),
                    )

    def _index_owners(self, key: str, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> None:
        if old is not None:
            self._unindex_owners(key, old)
        metadata = obj["metadata"]
        for ref in metadata.get("ownerReferences") or []:
            self._owners.setdefault(str(ref.get("uid")), set()).add(
                (key, metadata.get("namespace", ""), metadata["name"])
            )

    def _unindex_owners(self, key: str, obj: Mapping[str, Any]) -> None:
        metadata = obj["metadata"]
        entry = (key, metadata.get("namespace", ""), metadata["name"])
        for ref in metadata.get("ownerReferences") or []:
            dependents = self._owners.get(str(ref.get("uid")))
            if dependents is not None:
                dependents.discard(entry)
                if not dependents:
                    del self._owners[str(ref.get("uid"))]

    def _type_for_key(self, key: str) -> kinds.ResourceType | None:
        group, _, plural = key.partition("/")
        for rtype in self.types.values():
            if rtype.group == group and rtype.plural == plural and rtype.storage:
                return rtype
        return None

    def _dependents(self, uid: str) -> list[tuple[kinds.ResourceType, dict[str, Any]]]:
        found = []
        for key, namespace, name in sorted(self._owners.get(uid, ())):
            rtype = self._type_for_key(key)
            obj = self.store.get(key, namespace, name)
            if rtype is not None and obj is not None:
                found.append((rtype, obj))
        return found

    def _collect_dependents(self, owner: Mapping[str, Any]) -> None:
        """Background deletion: an owner is gone, so are dependents that no other living owner keeps."""
        uid = owner["metadata"]["uid"]
        for rtype, dependent in self._dependents(uid):
            refs = dependent["metadata"].get("ownerReferences") or []
            others = [ref for ref in refs if ref.get("uid") != uid and self._alive(ref, dependent)]
            if others:
                self._drop_owner_reference(rtype, dependent, uid)
                continue
            try:
                self.delete(
                    rtype,
                    dependent["metadata"].get("namespace", ""),
                    dependent["metadata"]["name"],
                    {"propagationPolicy": "Background"},
                    Request(),
                )
            except status.ApiError:
                continue

    def _alive(self, ref: Mapping[str, Any], dependent: Mapping[str, Any]) -> bool:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        for rtype in self.types.values():
            if rtype.group == group and rtype.kind == ref.get("kind") and rtype.storage:
                namespace = dependent["metadata"].get("namespace", "") if rtype.namespaced else ""
                found = self.store.get(_resource_key(rtype), namespace, str(ref.get("name")))
                return found is not None and found["metadata"]["uid"] == ref.get("uid")
        return False

    def _drop_owner_reference(self, rtype: kinds.ResourceType, obj: Mapping[str, Any], uid: str) -> None:
        refs = [ref for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid") != uid]
        updated = copy.deepcopy(dict(obj))
        if refs:
            updated["metadata"]["ownerReferences"] = refs
        else:
            updated["metadata"].pop("ownerReferences", None)
        key = _resource_key(rtype)
        updated["metadata"]["resourceVersion"] = str(self.store.next_rv())
        stored = self.store.put(key, updated, "MODIFIED")
        self._index_owners(key, stored, obj)

    def _process_deleting(self, rtype: kinds.ResourceType, key: str, obj: dict[str, Any]) -> None:
        """An object was marked for deletion: act on the orphan and foreground finalizers."""
        finalizers = obj["metadata"].get("finalizers") or []
        uid = obj["metadata"]["uid"]
        if "orphan" in finalizers:
            for dep_type, dependent in self._dependents(uid):
                self._drop_owner_reference(dep_type, dependent, uid)
            self._remove_finalizer(rtype, key, obj, "orphan")
            return
        if "foregroundDeletion" in finalizers:
            metadata = obj["metadata"]
            self._foreground[uid] = (key, str(metadata.get("namespace") or ""), str(metadata["name"]))
            for dep_type, dependent in self._dependents(uid):
                try:
                    self.delete(
                        dep_type,
                        dependent["metadata"].get("namespace", ""),
                        dependent["metadata"]["name"],
                        {"propagationPolicy": "Foreground"},
                        Request(),
                    )
                except status.ApiError:
                    continue
            self._check_waiting_owners()

    def _check_waiting_owners(self) -> None:
        """Foreground owners whose blocking dependents are all gone lose their finalizer.

        Only owners marked for foreground deletion are looked at (``_foreground``), so a removal
        costs nothing more when none waits: mass deletions stay linear.
        """
        for uid, (key, namespace, name) in list(self._foreground.items()):
            rtype = self._type_for_key(key)
            obj = self.store.get(key, namespace, name)
            if rtype is None or obj is None or obj["metadata"].get("uid") != uid:
                self._foreground.pop(uid, None)
                continue
            metadata = obj["metadata"]
            if not metadata.get("deletionTimestamp") or "foregroundDeletion" not in (metadata.get("finalizers") or []):
                self._foreground.pop(uid, None)
                continue
            blocking = [
                dep
                for _, dep in self._dependents(uid)
                if any(
                    ref.get("uid") == uid and ref.get("blockOwnerDeletion")
                    for ref in dep["metadata"].get("ownerReferences") or []
                )
            ]
            if not blocking:
                self._foreground.pop(uid, None)
                self._remove_finalizer(rtype, key, obj, "foregroundDeletion")

    def _remove_finalizer(self, rtype: kinds.ResourceType, key: str, obj: dict[str, Any], finalizer: str) -> None:
        current = self.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if current is None:
            return
        updated = copy.deepcopy(current)
        updated["metadata"]["finalizers"] = [f for f in current["metadata"].get("finalizers") or [] if f != finalizer]
        updated["metadata"]["resourceVersion"] = str(self.store.next_rv())
        if not updated["metadata"]["finalizers"]:
            updated["metadata"].pop("finalizers")
            self._remove(rtype, key, updated)
        else:
            self.store.put(key, updated, "MODIFIED")

    # watching

    def watch_filter(
        self, rtype: kinds.ResourceType, label_selector: str | None, field_selector: str | None
    ) -> Callable[[Mapping[str, Any]], bool]:
        labels, fields = self._selectors(rtype, label_selector, field_selector)
        if labels.empty and fields.empty:
            return lambda obj: True
        return lambda obj: labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)


_GO_TYPES = {str: "string", int: "int64", dict: "object", list: "array", bool: "bool", float: "number"}
_METADATA_STRINGS = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
)
_OWNER_STRINGS = ("apiVersion", "kind", "name", "uid")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _undecodable(rtype: kinds.ResourceType, field: str, go_type: str, value: Any) -> str:
    """A decoding error worded as kube-apiserver's JSON decoder words it."""
    return (
        f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: json: cannot unmarshal '
        f"{_json_kind(value)} into Go struct field {field} of type {go_type}"
    )


def _check_metadata_types(rtype: kinds.ResourceType, metadata: Mapping[str, Any]) -> None:
    """Metadata of the wrong JSON type is refused before anything is stored (400, as Go's decoder does)."""
    for key in _METADATA_STRINGS:
        if metadata.get(key) is not None and not isinstance(metadata[key], str):
            raise status.bad_request(_undecodable(rtype, f"ObjectMeta.metadata.{key}", "string", metadata[key]))
    for key in ("labels", "annotations"):
        value = metadata.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise status.bad_request(_undecodable(rtype, f"ObjectMeta.metadata.{key}", "map[string]string", value))
        for item in value.values():
            if not isinstance(item, str):
                raise status.bad_request(_undecodable(rtype, f"ObjectMeta.metadata.{key}", "string", item))
    finalizers = metadata.get("finalizers")
    if finalizers is not None and (not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)):
        raise status.bad_request(_undecodable(rtype, "ObjectMeta.metadata.finalizers", "[]string", finalizers))
    owners = metadata.get("ownerReferences")
    if owners is not None:
        if not isinstance(owners, list):
            raise status.bad_request(
                _undecodable(rtype, "ObjectMeta.metadata.ownerReferences", "[]v1.OwnerReference", owners)
            )
        for owner in owners:
            if not isinstance(owner, dict):
                raise status.bad_request(
                    _undecodable(rtype, "ObjectMeta.metadata.ownerReferences", "v1.OwnerReference", owner)
                )
            for key in _OWNER_STRINGS:
                if owner.get(key) is not None and not isinstance(owner[key], str):
                    raise status.bad_request(
                        _undecodable(rtype, f"OwnerReference.metadata.ownerReferences.{key}", "string", owner[key])
                    )
    generation = metadata.get("generation")
    if generation is not None and (isinstance(generation, bool) or not isinstance(generation, int)):
        raise status.bad_request(_undecodable(rtype, "ObjectMeta.metadata.generation", "int64", generation))


def parse_delete_options(body: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """DeleteOptions from the body and the query, the query winning as in the API server."""
    if body is not None and not isinstance(body, dict):
        raise status.bad_request("the body of a DELETE must be DeleteOptions (a JSON object)")
    options: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    for key, kind in (("preconditions", dict), ("propagationPolicy", str), ("dryRun", list)):
        if key in options and options[key] is not None and not isinstance(options[key], kind):
            raise status.bad_request(f"DeleteOptions.{key} has the wrong type: {type(options[key]).__name__}")
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = query["gracePeriodSeconds"]
    return options
