"""The StatefulSet controller (ordered, basic): pods ``<name>-0`` to ``<name>-N-1`` with stable names
(from ``<name>-<start>`` when spec.ordinals.start says so).

OrderedReady makes each pod once the one before it is Running and Ready (and available for
minReadySeconds), and removes the surplus from the highest ordinal down, one at a time; Parallel does
both at once. A RollingUpdate replaces pods not at the update revision from the highest ordinal down to
the partition, one at a time, once every pod is Running and Ready. Revisions are ``<name>-<hash of the
template>`` (the pods' controller-revision-hash label); ControllerRevision objects and
volumeClaimTemplates are not simulated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_pods, workloads_rollout
from upkeep.sandbox.store import Event

__all__ = ["StatefulSetController", "statefulset_status"]

RESOURCE = "apps/statefulsets"
PODS = "/pods"
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _ordinal(set_name: str, pod: Mapping[str, Any]) -> int | None:
    match = re.fullmatch(rf"{re.escape(set_name)}-(\d+)", str(pod["metadata"]["name"]))
    return int(match.group(1)) if match else None


def _running_and_ready(pod: Mapping[str, Any]) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and workloads_pods.ready(pod)


def _terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def _revision(pod: Mapping[str, Any]) -> str:
    return str((pod["metadata"].get("labels") or {}).get(REVISION_LABEL) or "")


def statefulset_status(
    sts: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    current_revision: str,
    update_revision: str,
    min_ready: float,
    now: float,
) -> dict[str, Any]:
    """The status the StatefulSet controller computes from its pods (and a finished rolling update)."""
    replicas = ready = available = current = updated = 0
    for pod in pods:
        if pod.get("status", {}).get("phase"):
            replicas += 1
        if _running_and_ready(pod):
            ready += 1
            if workloads_pods.available(pod, min_ready, now):
                available += 1
        if pod.get("status", {}).get("phase") and not _terminating(pod):
            if _revision(pod) == current_revision:
                current += 1
            if _revision(pod) == update_revision:
                updated += 1
    strategy = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    if strategy == "RollingUpdate" and updated == replicas and ready == replicas:
        current = updated
        current_revision = update_revision
    status: dict[str, Any] = {
        "observedGeneration": int(sts["metadata"].get("generation") or 0),
        "replicas": replicas,
        "readyReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0),
        "availableReplicas": available,
    }
    for field in ("readyReplicas", "currentReplicas", "updatedReplicas"):
        if not status[field]:
            del status[field]
    return status


class StatefulSetController(runtime.Controller):
    """Ordered pods for StatefulSets, scaled and rolled one ordinal at a time."""

    name = "statefulset-controller"
    watches = (RESOURCE, PODS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.pods = workloads_pods.owner_index(ctx, PODS)

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.pods.build()
        return [runtime.key_of(RESOURCE, obj) for obj in self.ctx.list(RESOURCE)]

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == RESOURCE:
            return [runtime.key_of(RESOURCE, event.obj)]
        self.pods.observe(event)
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "StatefulSet":
            return []
        return [(RESOURCE, event.namespace, str(ref.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        sts = self.ctx.get(*key)
        if sts is None:
            return None
        return self.sync(sts)

    def _event(self, sts: Mapping[str, Any], verb: str, pod_name: str, error: str = "") -> None:
        """recordPodEvent's wording: "create Pod web-0 in StatefulSet web successful"."""
        name = sts["metadata"]["name"]
        if error:
            message = f"{verb} Pod {pod_name} in StatefulSet {name} failed error: {error}"
            workloads_pods.record(self.ctx, sts, "Warning", f"Failed{verb.title()}", message, self.name)
        else:
            message = f"{verb} Pod {pod_name} in StatefulSet {name} successful"
            workloads_pods.record(self.ctx, sts, "Normal", f"Successful{verb.title()}", message, self.name)

    def _create(self, sts: Mapping[str, Any], ordinal: int, revision: str) -> dict[str, Any] | None:
        spec = sts.get("spec") or {}
        name = f"{sts['metadata']['name']}-{ordinal}"
        body = workloads_pods.pod_from_template(
            spec.get("template") or {},
            workloads_pods.controller_ref(sts, "apps/v1", "StatefulSet"),
            name=name,
            labels={REVISION_LABEL: revision, POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)},
        )
        body["spec"]["hostname"] = name
        if spec.get("serviceName"):
            body["spec"]["subdomain"] = spec["serviceName"]
        try:
            created = self.ctx.create(PODS, str(sts["metadata"].get("namespace") or ""), body, self.name)
        except api_status.ApiError as error:
            if "is being terminated" not in error.message:
                self._event(sts, "create", name, error.message)
            return None
        if created is not None:
            self.pods.add(created)
            self._event(sts, "create", name)
        return created

    def _delete(self, sts: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
        name = str(pod["metadata"]["name"])
        try:
            self.ctx.delete(PODS, str(sts["metadata"].get("namespace") or ""), name)
        except api_status.ApiError as error:
            self._event(sts, "delete", name, error.message)
            return
        self._event(sts, "delete", name)

    def sync(self, sts: dict[str, Any]) -> float | None:
        spec = sts.get("spec") or {}
        wanted = 1 if spec.get("replicas") is None else int(spec["replicas"])
        ordered = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        strategy = spec.get("updateStrategy") or {}
        rolling = (strategy.get("type") or "RollingUpdate") == "RollingUpdate"
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        first = int((spec.get("ordinals") or {}).get("start") or 0)  # the partition counts from it
        min_ready = self.ctx.settings.scaled(float(spec.get("minReadySeconds") or 0))
        previous = sts.get("status") or {}
        collisions = int(previous.get("collisionCount") or 0)
        template_hash = workloads_rollout.pod_template_hash(spec.get("template") or {}, collisions)
        update_revision = f"{sts['metadata']['name']}-{template_hash}"
        current_revision = str(previous.get("currentRevision") or update_revision)
        now = workloads_pods.wall_clock()
        name = sts["metadata"]["name"]
        members: dict[int, dict[str, Any]] = {}
        condemned: list[tuple[int, dict[str, Any]]] = []
        for pod in self.pods.children(sts["metadata"]["uid"]):
            ordinal = _ordinal(name, pod)
            if ordinal is None:
                continue
            if first <= ordinal < first + wanted:
                members[ordinal] = pod
            else:
                condemned.append((ordinal, pod))
        wait: float | None = None
        blocked = bool(sts["metadata"].get("deletionTimestamp"))
        for ordinal in range(first, first + wanted):
            if blocked:
                break
            member = members.get(ordinal)
            if member is None:
                created = self._create(sts, ordinal, update_revision)
                if created is not None:
                    members[ordinal] = created
                blocked = ordered
                continue
            pod = member
            if workloads_pods.finished(pod) and not _terminating(pod):
                failed = pod.get("status", {}).get("phase") == "Failed"
                workloads_pods.record(
                    self.ctx,
                    sts,
                    "Warning" if failed else "Normal",
                    "RecreatingFailedPod" if failed else "RecreatingTerminatedPod",
                    f"StatefulSet {sts['metadata'].get('namespace')}/{name} is recreating "
                    f"{'failed' if failed else 'terminated'} Pod {pod['metadata']['name']}",
                    self.name,
                )
                self._delete(sts, pod)
                members.pop(ordinal)
                blocked = ordered
                continue
            if _terminating(pod) or not _running_and_ready(pod):
                blocked = ordered
                continue
            left = workloads_pods.seconds_until_available(pod, min_ready, now)
            if left:
                wait = left if wait is None else min(wait, left)
                blocked = ordered
        for _, pod in sorted(condemned, key=lambda item: -item[0]):
            if blocked:
                break
            if _terminating(pod):
                blocked = ordered
                continue
            self._delete(sts, pod)
            blocked = ordered
        healthy = len(members) == wanted and all(
            _running_and_ready(pod) and not _terminating(pod) for pod in members.values()
        )
        if not blocked and rolling and healthy:
            for ordinal in range(first + wanted - 1, first + partition - 1, -1):
                pod = members[ordinal]
                if _revision(pod) != update_revision:
                    self._delete(sts, pod)
                    break
        pods = self.pods.children(sts["metadata"]["uid"])
        wanted_status = statefulset_status(sts, pods, current_revision, update_revision, min_ready, now)
        if previous.get("conditions"):
            wanted_status["conditions"] = copy.deepcopy(previous["conditions"])
        if wanted_status != previous:
            current = self.ctx.get(RESOURCE, str(sts["metadata"].get("namespace") or ""), name)
            if current is not None:
                self.ctx.update(RESOURCE, {**current, "status": wanted_status}, self.name, subresource="status")
        return None if wait is None else wait + 0.05
