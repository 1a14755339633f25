"""What the workload controllers share: who controls what, the state a pod is in, pods made from templates.

Objects of a resource are indexed by the uid of the object that controls them (its ownerReference with
``controller: true``), fed by watch events and by the controllers' own writes. The index is a hint: every
read checks it against the store, so an event seen late or twice never makes a controller act on a pod
that is gone or no longer its own.
"""

from __future__ import annotations

import copy
import datetime
import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime
from upkeep.sandbox.store import Event, Store

__all__ = [
    "OwnerIndex",
    "active",
    "available",
    "canonical",
    "canonical_json",
    "controller_of",
    "controller_ref",
    "finished",
    "owner_index",
    "parse_time",
    "pod_from_template",
    "ready",
    "ready_since",
    "record",
    "seconds_until_available",
    "timestamp",
    "wall_clock",
]

PODS = "/pods"
logger = logging.getLogger(__name__)


def wall_clock() -> float:
    """Seconds since the epoch (a seam: tests of pure logic pass their own ``now``)."""
    return time.time()


def timestamp(moment: float | None = None) -> str:
    """A Kubernetes timestamp (RFC 3339, whole seconds, UTC)."""
    when = wall_clock() if moment is None else moment
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> float | None:
    """Seconds since the epoch of a Kubernetes timestamp; None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def record(
    ctx: runtime.Context, obj: Mapping[str, Any], event_type: str, reason: str, message: str, component: str
) -> None:
    """Post an Event as a controller's recorder does: on the side, never failing the sync that posts it."""
    try:
        ctx.event(obj, event_type, reason, message, component)
    except api_status.ApiError as error:
        logger.debug("%s: the Event %s about %s was refused: %s", component, reason, obj["metadata"]["name"], error)


# ownership


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference of ``obj`` that says who controls it."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def controller_ref(owner: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """The ownerReference a Kubernetes controller puts on what it creates (metav1.NewControllerRef)."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class OwnerIndex:
    """Objects of one resource by the uid of their controller (see the module's docstring)."""

    def __init__(self, store: Store, resource: str) -> None:
        self.store = store
        self.resource = resource
        self._by_owner: dict[str, set[tuple[str, str]]] = {}
        self._built = False

    def build(self) -> None:
        """Index every stored object once (at start, and after a restart with state)."""
        if self._built:
            return
        self._built = True
        for obj in self.store.objects(self.resource):
            self.add(obj)

    def add(self, obj: Mapping[str, Any]) -> None:
        ref = controller_of(obj)
        if ref is None:
            return
        metadata = obj["metadata"]
        self._by_owner.setdefault(str(ref.get("uid")), set()).add(
            (str(metadata.get("namespace") or ""), str(metadata["name"]))
        )

    def observe(self, event: Event) -> None:
        """Follow one watch event of the resource."""
        if event.type != "DELETED":
            self.add(event.obj)
            return
        ref = controller_of(event.obj)
        if ref is None:
            return
        metadata = event.obj["metadata"]
        entry = (str(metadata.get("namespace") or ""), str(metadata["name"]))
        current = self.store.get(self.resource, *entry)
        if current is not None and controller_of(current) is not None:
            same = controller_of(current)
            if same is not None and same.get("uid") == ref.get("uid"):
                return  # deleted and made again under the same name (a StatefulSet's pod)
        self._discard(str(ref.get("uid")), entry)

    def _discard(self, uid: str, entry: tuple[str, str]) -> None:
        found = self._by_owner.get(uid)
        if found is None:
            return
        found.discard(entry)
        if not found:
            del self._by_owner[uid]

    def children(self, owner_uid: str) -> list[dict[str, Any]]:
        """The stored objects ``owner_uid`` controls, sorted by namespace and name."""
        found = self._by_owner.get(owner_uid)
        if not found:
            return []
        children: list[dict[str, Any]] = []
        for entry in sorted(found):
            obj = self.store.get(self.resource, *entry)
            ref = controller_of(obj) if obj is not None else None
            if obj is None or ref is None or ref.get("uid") != owner_uid:
                found.discard(entry)
                continue
            children.append(obj)
        if not found:
            self._by_owner.pop(owner_uid, None)
        return children


def owner_index(ctx: runtime.Context, resource: str) -> OwnerIndex:
    """The index of ``resource`` by controller, shared by every controller of the context."""
    indexes: dict[str, OwnerIndex] = ctx.data.setdefault("workloads.owners", {})
    found = indexes.get(resource)
    if found is None:
        found = indexes[resource] = OwnerIndex(ctx.store, resource)
    return found


# pod state


def _condition(pod: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in pod.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def finished(pod: Mapping[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def active(pod: Mapping[str, Any]) -> bool:
    """Counted by a controller: not finished and not being deleted (controller.FilterActivePods)."""
    return not finished(pod) and not pod["metadata"].get("deletionTimestamp")


def ready(pod: Mapping[str, Any]) -> bool:
    found = _condition(pod, "Ready")
    return found is not None and found.get("status") == "True"


def ready_since(pod: Mapping[str, Any]) -> float | None:
    """When the pod became Ready (its Ready condition's lastTransitionTime); None if it is not Ready."""
    found = _condition(pod, "Ready")
    if found is None or found.get("status") != "True":
        return None
    return parse_time(found.get("lastTransitionTime"))


def seconds_until_available(pod: Mapping[str, Any], min_ready: float, now: float) -> float | None:
    """0 when the pod is available (Ready for ``min_ready`` seconds), the time left, or None if not Ready."""
    if not ready(pod):
        return None
    if min_ready <= 0:
        return 0.0
    since = ready_since(pod)
    if since is None:
        return 0.0
    return max(0.0, since + min_ready - now)


def available(pod: Mapping[str, Any], min_ready: float, now: float) -> bool:
    return seconds_until_available(pod, min_ready, now) == 0.0


# templates


def canonical(value: Any) -> Any:
    """``value`` with nulls and empty maps and lists left out, as Kubernetes' semantic equality sees it."""
    if isinstance(value, Mapping):
        kept = {key: canonical(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None and item not in ({}, [])}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))


def pod_from_template(
    template: Mapping[str, Any],
    owner_ref: Mapping[str, Any],
    *,
    generate_name: str = "",
    name: str = "",
    labels: Mapping[str, str] | None = None,
    finalizers: Iterable[str] = (),
) -> dict[str, Any]:
    """A pod as controller.GetPodFromTemplate makes it: the template's labels, annotations, finalizers and spec."""
    meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {"labels": {**dict(meta.get("labels") or {}), **dict(labels or {})}}
    if name:
        metadata["name"] = name
    else:
        metadata["generateName"] = generate_name
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    wanted = [*list(meta.get("finalizers") or []), *[item for item in finalizers if item]]
    if wanted:
        metadata["finalizers"] = wanted
    metadata["ownerReferences"] = [dict(owner_ref)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }
