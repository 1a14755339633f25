"""The resource types the sandbox serves: the built-in kinds, and custom ones from CRDs.

A ``ResourceType`` is what discovery, routing, storage and tables need to know of a kind.
Built-in kinds are listed here; CRDs add theirs at run time (``from_crd``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTIN", "ResourceType", "from_crd"]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One resource of one group-version: how it is named, scoped and served."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    """Served subresources: "status", "scale", "log", "eviction"."""
    definition: str = ""
    """Built-in kinds: the OpenAPI definition name (io.k8s.api.apps.v1.Deployment)."""
    schema: Mapping[str, Any] | None = None
    """Custom kinds: the openAPIV3Schema of this version."""
    printer_columns: tuple[Mapping[str, Any], ...] = ()
    """Custom kinds: additionalPrinterColumns of this version."""
    storage: bool = True
    """Whether this version is the one objects are stored in."""
    scale_paths: Mapping[str, str] = field(default_factory=dict)
    """Custom kinds with a scale subresource: specReplicasPath, statusReplicasPath, labelSelectorPath."""
    crd_name: str = ""
    """Custom kinds: the name of the CRD that defines them."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def builtin(self) -> bool:
        return not self.crd_name


def _core(kind: str, plural: str, namespaced: bool = True, **extra: Any) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, definition=f"io.k8s.api.core.v1.{kind}", **extra)


def _grouped(
    group: str, package: str, version: str, kind: str, plural: str, namespaced: bool = True, **extra: Any
) -> ResourceType:
    return ResourceType(
        group, version, kind, plural, namespaced, definition=f"io.k8s.api.{package}.{version}.{kind}", **extra
    )


BUILTIN: Sequence[ResourceType] = (
    _core(
        "Namespace",
        "namespaces",
        False,
        short_names=("ns",),
        subresources=("status",),
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _core("Pod", "pods", short_names=("po",), categories=("all",), subresources=("status", "log", "eviction")),
    _core("Service", "services", short_names=("svc",), categories=("all",), subresources=("status",)),
    _core("Endpoints", "endpoints", short_names=("ep",)),
    _core("ConfigMap", "configmaps", short_names=("cm",)),
    _core("Secret", "secrets"),
    _core("ServiceAccount", "serviceaccounts", short_names=("sa",), subresources=("token",)),
    _core("Event", "events", short_names=("ev",)),
    _core("Node", "nodes", False, short_names=("no",), subresources=("status",)),
    _grouped("discovery.k8s.io", "discovery", "v1", "EndpointSlice", "endpointslices"),
    _grouped("events.k8s.io", "events", "v1", "Event", "events", short_names=("ev",)),
    _grouped("coordination.k8s.io", "coordination", "v1", "Lease", "leases"),
    _grouped(
        "apps",
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _grouped(
        "apps",
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _grouped(
        "apps",
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _grouped(
        "apps",
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    _grouped("batch", "batch", "v1", "Job", "jobs", categories=("all",), subresources=("status",)),
    _grouped(
        "batch",
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    _grouped(
        "policy",
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        short_names=("pdb",),
        subresources=("status",),
    ),
    ResourceType(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
        definition="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
    ),
    _grouped("rbac.authorization.k8s.io", "rbac", "v1", "Role", "roles"),
    _grouped("rbac.authorization.k8s.io", "rbac", "v1", "ClusterRole", "clusterroles", False),
    _grouped("rbac.authorization.k8s.io", "rbac", "v1", "RoleBinding", "rolebindings"),
    _grouped("rbac.authorization.k8s.io", "rbac", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _grouped(
        "admissionregistration.k8s.io",
        "admissionregistration",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        categories=("api-extensions",),
    ),
    _grouped(
        "admissionregistration.k8s.io",
        "admissionregistration",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        categories=("api-extensions",),
    ),
    _grouped(
        "authorization.k8s.io",
        "authorization",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        verbs=("create",),
    ),
    _grouped(
        "authorization.k8s.io",
        "authorization",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        False,
        verbs=("create",),
    ),
    _grouped(
        "authentication.k8s.io",
        "authentication",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        False,
        verbs=("create",),
    ),
)


def from_crd(crd: Mapping[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition defines, one per served version."""
    spec = crd["spec"]
    names = spec["names"]
    found = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        served = tuple(name for name in ("status", "scale") if name in subresources)
        found.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                kind=names["kind"],
                plural=names["plural"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=served,
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                storage=bool(version.get("storage", False)),
                scale_paths=dict(subresources.get("scale") or {}),
                crd_name=crd["metadata"]["name"],
            )
        )
    return found
