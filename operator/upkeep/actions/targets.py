"""Which object a step acts on, from its context: the incident's workload, its affected node or pods.

A Playbook step names no object of its own (the incident does), so every action asks here: the
workload for the workload actions, the node for the node actions. Names derived from an
idempotency key (a Job, an Event) come from ``name_from_key``: the key is a run uid and a step
index, not a valid object name, and the same key must always give the same name so that a restart
finds what the first attempt created.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base
from upkeep.model import resources

__all__ = [
    "API_VERSIONS",
    "api_version",
    "digest",
    "key_annotation",
    "name_from_key",
    "node",
    "owner",
    "pod_template_annotation",
    "workload",
]

API_VERSIONS: Mapping[str, str] = {
    "Pod": "v1",
    "Node": "v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "Secret": "v1",
    "Event": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
    "PodDisruptionBudget": "policy/v1",
}
"""The apiVersion of the kinds an incident names, for references that leave it out."""


def api_version(ref: resources.ObjectRef) -> str:
    """The reference's apiVersion, or the usual one of its kind (``ActionFailed`` for an unknown kind)."""
    if ref.api_version:
        return ref.api_version
    found = API_VERSIONS.get(ref.kind)
    if found is None:
        raise base.ActionFailed(f"{ref} has no apiVersion, and {ref.kind} is not a kind Upkeep knows the group of")
    return found


def workload(ctx: base.ActionContext, *kinds: str) -> resources.ObjectRef:
    """The incident's workload, in the incident's namespace unless it names one (one of ``kinds`` when given)."""
    ref = ctx.workload
    if ref is None:
        raise base.ActionFailed("the incident names no workload to act on")
    if kinds and ref.kind not in kinds:
        raise base.ActionFailed(f"{ref} is not a {' or '.join(kinds)}")
    namespace = "" if ref.kind == "Node" else (ref.namespace or ctx.namespace)
    return resources.ObjectRef(ref.kind, ref.name, namespace, api_version(ref))


async def node(ctx: base.ActionContext) -> resources.ObjectRef:
    """The node to act on: the workload when it is a Node, an affected Node, or the node of an affected pod."""
    candidates = [ref for ref in (ctx.workload, *ctx.affected) if ref is not None and ref.kind == "Node"]
    if candidates:
        return resources.ObjectRef("Node", candidates[0].name, "", "v1")
    for ref in ctx.affected:
        if ref.kind == "Pod":
            pod = await ctx.cluster.get("v1", "Pod", ref.namespace or ctx.namespace, ref.name)
            name = ((pod or {}).get("spec") or {}).get("nodeName")
            if name:
                return resources.ObjectRef("Node", str(name), "", "v1")
    raise base.ActionFailed("the incident names no node (neither its workload nor an affected object is a Node)")


def digest(key: str) -> str:
    """A short, stable, name-safe digest of an idempotency key."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


def name_from_key(base_name: str, key: str, *, limit: int = 63) -> str:
    """``<base>-<digest of key>``: a DNS-1123 name, the same for the same key (what a restart looks for)."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", base_name.lower()).strip("-") or "upkeep"
    suffix = digest(key)
    return f"{cleaned[: limit - len(suffix) - 1].rstrip('-')}-{suffix}"


def key_annotation(obj: Mapping[str, Any] | None) -> str | None:
    """The idempotency key recorded in the object's own annotations."""
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    value = annotations.get(base.ACTION_KEY_ANNOTATION)
    return str(value) if value is not None else None


def pod_template_annotation(obj: Mapping[str, Any] | None) -> str | None:
    """The idempotency key recorded in the object's pod template's annotations."""
    template = ((obj or {}).get("spec") or {}).get("template") or {}
    value = ((template.get("metadata") or {}).get("annotations") or {}).get(base.ACTION_KEY_ANNOTATION)
    return str(value) if value is not None else None


def owner(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The controlling owner reference of an object, if any."""
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    for ref in refs:
        if ref.get("controller"):
            return dict(ref)
    return dict(refs[0]) if refs else None
