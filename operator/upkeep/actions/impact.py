"""What an action that removes pods would leave running: (ready, desired, removing) per workload.

The minHealthy guard refuses an action that would leave fewer ready replicas than a count or a
percentage. The guard is the engine's; what it needs from the cluster is here. deletePod, scale
(down) and drainNode each expose ``impact(ctx)``, and ``registry.impacts(name, ctx)`` asks the
right one (an empty tuple for actions that remove nothing). There is one ``Impact`` per workload
touched: a drain can take pods of several Deployments, and the guard must hold for each of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from upkeep.actions import base, targets
from upkeep.model import resources

__all__ = ["Impact", "is_ready", "is_terminating", "of_pods"]


@dataclass(frozen=True)
class Impact:
    """One workload before the action: its ready replicas, the replicas it wants, how many ready ones go."""

    workload: resources.ObjectRef
    ready: int
    desired: int
    removing: int

    def as_tuple(self) -> tuple[int, int, int]:
        """(ready, desired, removing), as the minHealthy guard takes them."""
        return (self.ready, self.desired, self.removing)


def is_ready(pod: Mapping[str, Any]) -> bool:
    """Whether the pod's Ready condition is True."""
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def is_terminating(pod: Mapping[str, Any]) -> bool:
    """Whether the pod is being deleted already."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


async def _top_owner(ctx: base.ActionContext, pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's workload: its ReplicaSet's Deployment, or its StatefulSet, DaemonSet, Job, ReplicaSet."""
    namespace = str((pod.get("metadata") or {}).get("namespace") or ctx.namespace)
    ref = targets.owner(pod)
    if ref is None:
        return None
    found = await ctx.cluster.get(str(ref.get("apiVersion", "")), str(ref.get("kind", "")), namespace, ref["name"])
    if found is None:
        return None
    above = targets.owner(found)
    if found.get("kind") == "ReplicaSet" and above is not None and above.get("kind") == "Deployment":
        deployment = await ctx.cluster.get("apps/v1", "Deployment", namespace, str(above["name"]))
        if deployment is not None:
            return deployment
    return found


def _counts(workload: Mapping[str, Any]) -> tuple[int, int]:
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    if workload.get("kind") == "DaemonSet":
        return int(status.get("numberReady") or 0), int(status.get("desiredNumberScheduled") or 0)
    if workload.get("kind") == "Job":
        return int(status.get("ready") or 0), int(spec.get("parallelism", 1) or 0)
    return int(status.get("readyReplicas") or 0), int(spec.get("replicas", 1) or 0)


async def of_pods(ctx: base.ActionContext, pods: Iterable[Mapping[str, Any]]) -> tuple[Impact, ...]:
    """The impact of removing ``pods``: one entry per workload they belong to (a bare pod is its own)."""
    groups: dict[tuple[str, str, str], tuple[Mapping[str, Any] | None, list[Mapping[str, Any]]]] = {}
    for pod in pods:
        workload = await _top_owner(ctx, pod)
        holder = workload if workload is not None else pod
        held = holder.get("metadata") or {}
        group_key = (str(holder.get("kind", "")), str(held.get("namespace", "")), str(held.get("name", "")))
        entry = groups.setdefault(group_key, (workload, []))
        entry[1].append(pod)
    found: list[Impact] = []
    for (kind, namespace, name), (workload, members) in sorted(groups.items(), key=lambda item: item[0]):
        removing = sum(1 for pod in members if is_ready(pod) and not is_terminating(pod))
        if workload is None:
            ready, desired = removing, len(members)
        else:
            ready, desired = _counts(workload)
        version = str((workload or members[0]).get("apiVersion", ""))
        found.append(Impact(resources.ObjectRef(kind, name, namespace, version), ready, desired, removing))
    return tuple(found)
