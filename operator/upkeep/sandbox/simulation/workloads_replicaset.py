"""The ReplicaSet controller: keeps spec.replicas pods from the template, deletes the surplus, reports status.

Pods are named ``<replicaset>-<five random characters>`` (generateName), carry the template's labels
(the pod-template-hash among them for a Deployment's ReplicaSets) and a controller ownerReference.
The surplus goes in the order Kubernetes picks it (controller.ActivePodsWithRanks): unscheduled before
scheduled, pending before running, not ready before ready, then by pod-deletion-cost, doubled-up nodes,
the shortest time ready, the most restarts and the newest.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_pods
from upkeep.sandbox.store import Event

__all__ = ["ReplicaSetController", "deletion_order"]

RESOURCE = "apps/replicasets"
PODS = "/pods"
BURST = 500
"""Pods created or deleted in one sync at most (the controller's burstReplicas)."""
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


def _deletion_cost(pod: Mapping[str, Any]) -> int:
    text = (pod["metadata"].get("annotations") or {}).get(DELETION_COST)
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return max((int(item.get("restartCount") or 0) for item in statuses), default=0)


def deletion_order(pods: Sequence[Mapping[str, Any]], related: Iterable[Mapping[str, Any]] = ()) -> list[Any]:
    """``pods`` in the order a ReplicaSet deletes them; ``related`` pods count towards doubled-up nodes."""
    on_node: dict[str, int] = {}
    for pod in [*pods, *related]:
        node = pod.get("spec", {}).get("nodeName")
        if node and workloads_pods.active(pod):
            on_node[node] = on_node.get(node, 0) + 1

    def rank(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        node = pod.get("spec", {}).get("nodeName") or ""
        is_ready = workloads_pods.ready(pod)
        since = workloads_pods.ready_since(pod) if is_ready else None
        created = workloads_pods.parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
        return (
            1 if node else 0,
            _PHASE_RANK.get(str(pod.get("status", {}).get("phase")), 0),
            1 if is_ready else 0,
            _deletion_cost(pod),
            -on_node.get(node, 0) if node else 0,
            -(since or 0.0) if is_ready else 0.0,
            -_restarts(pod),
            -created,
            pod["metadata"]["name"],
        )

    return sorted(pods, key=rank)


class ReplicaSetController(runtime.Controller):
    """Pods for ReplicaSets: created from the template, the surplus deleted, status counted."""

    name = "replicaset-controller"
    watches = (RESOURCE, PODS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.pods = workloads_pods.owner_index(ctx, PODS)

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.pods.build()
        return [runtime.key_of(RESOURCE, rs) for rs in self.ctx.list(RESOURCE)]

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource != PODS:
            return [runtime.key_of(RESOURCE, event.obj)]
        self.pods.observe(event)
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        return [(RESOURCE, event.namespace, str(ref.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        rs = self.ctx.get(*key)
        if rs is None:
            return None
        return self.sync(rs)

    def sync(self, rs: dict[str, Any]) -> float | None:
        now = workloads_pods.wall_clock()
        live = [pod for pod in self.pods.children(rs["metadata"]["uid"]) if workloads_pods.active(pod)]
        failure: tuple[str, str] | None = None
        if not rs["metadata"].get("deletionTimestamp"):
            live, failure = self._manage(rs, live)
        min_ready = self.ctx.settings.scaled(float(rs.get("spec", {}).get("minReadySeconds") or 0))
        wanted_status, wait = replica_set_status(rs, live, min_ready, now, failure)
        if wanted_status != rs.get("status"):
            current = self.ctx.get(RESOURCE, rs["metadata"].get("namespace", ""), rs["metadata"]["name"])
            if current is not None:
                self.ctx.update(RESOURCE, {**current, "status": wanted_status}, self.name, subresource="status")
        return wait

    def _manage(
        self, rs: dict[str, Any], live: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        spec = rs.get("spec") or {}
        wanted = 1 if spec.get("replicas") is None else int(spec["replicas"])
        namespace = rs["metadata"].get("namespace", "")
        name = rs["metadata"]["name"]
        diff = len(live) - wanted
        if diff < 0:
            ref = workloads_pods.controller_ref(rs, "apps/v1", "ReplicaSet")
            for _ in range(min(-diff, BURST)):
                body = workloads_pods.pod_from_template(spec.get("template") or {}, ref, generate_name=f"{name}-")
                try:
                    created = self.ctx.create(PODS, namespace, body, self.name)
                except api_status.ApiError as error:
                    if "is being terminated" not in error.message:
                        workloads_pods.record(
                            self.ctx, rs, "Warning", "FailedCreate", f"Error creating: {error.message}", self.name
                        )
                    return live, ("FailedCreate", error.message)
                if created is None:
                    continue
                self.pods.add(created)
                live.append(created)
                workloads_pods.record(
                    self.ctx, rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", self.name
                )
        elif diff > 0:
            doomed = deletion_order(live)[: min(diff, BURST)]
            for pod in doomed:
                try:
                    self.ctx.delete(PODS, namespace, pod["metadata"]["name"])
                except api_status.ApiError as error:
                    workloads_pods.record(
                        self.ctx, rs, "Warning", "FailedDelete", f"Error deleting: {error.message}", self.name
                    )
                    return live, ("FailedDelete", error.message)
                workloads_pods.record(
                    self.ctx, rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", self.name
                )
            gone = {id(pod) for pod in doomed}
            live = [pod for pod in live if id(pod) not in gone]
        return live, None


def replica_set_status(
    rs: Mapping[str, Any],
    live: Sequence[Mapping[str, Any]],
    min_ready: float,
    now: float,
    failure: tuple[str, str] | None = None,
) -> tuple[dict[str, Any], float | None]:
    """The status a ReplicaSet should show, and when to look again for pods still short of minReadySeconds."""
    template_labels = ((rs.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}
    labelled = ready = available = 0
    wait: float | None = None
    for pod in live:
        labels = pod["metadata"].get("labels") or {}
        if all(labels.get(key) == value for key, value in template_labels.items()):
            labelled += 1
        left = workloads_pods.seconds_until_available(pod, min_ready, now)
        if left is None:
            continue
        ready += 1
        if left == 0:
            available += 1
        else:
            wait = left if wait is None else min(wait, left)
    status: dict[str, Any] = {"replicas": len(live)}
    for field, value in (
        ("fullyLabeledReplicas", labelled),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("observedGeneration", int(rs["metadata"].get("generation") or 0)),
    ):
        if value:
            status[field] = value
    previous = [
        condition
        for condition in (rs.get("status") or {}).get("conditions") or []
        if condition.get("type") == "ReplicaFailure"
    ]
    if failure is not None:
        reason, message = failure
        if previous and previous[0].get("status") == "True" and previous[0].get("reason") == reason:
            status["conditions"] = [copy.deepcopy(previous[0])]
        else:
            status["conditions"] = [
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "lastTransitionTime": workloads_pods.timestamp(now),
                    "reason": reason,
                    "message": message,
                }
            ]
    return status, (wait + 0.05 if wait is not None else None)
