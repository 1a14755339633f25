"""The DaemonSet controller: a pod for every node the pod may run on, as pkg/controller/daemon decides it.

A node gets a daemon pod when it matches the pod's nodeSelector and required node affinity and every
NoSchedule and NoExecute taint is tolerated, counting the tolerations the controller adds itself
(not-ready, unreachable, disk/memory/pid pressure, unschedulable), so a NotReady or cordoned node keeps
its daemon pod as on a real cluster. Pods are created unscheduled with a required node affinity for
their node (matchFields metadata.name), for the scheduler to bind. RollingUpdate replaces old pods within
maxUnavailable; status counts desired, current, ready, updated, available and misscheduled pods.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_pods, workloads_rollout
from upkeep.sandbox.store import Event

__all__ = ["DaemonSetController", "daemon_tolerations", "should_run", "target_node"]

RESOURCE = "apps/daemonsets"
PODS = "/pods"
NODES = "/nodes"
HASH_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
FAILED_POD_BACKOFF = (1.0, 900.0)
"""The back-off before deleting a failed daemon pod again on a node: 1 s doubling to 15 minutes (scaled)."""
_DEFAULT_TOLERATIONS = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)


def daemon_tolerations(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pod's tolerations plus those every daemon pod gets (util.AddOrUpdateDaemonPodTolerations)."""
    tolerations = [dict(item) for item in pod_spec.get("tolerations") or []]
    wanted = list(_DEFAULT_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in wanted:
        if not any(item.get("key") == key and item.get("effect") == effect for item in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    if toleration.get("effect") and toleration.get("effect") != taint.get("effect"):
        return False
    if toleration.get("key") and toleration.get("key") != taint.get("key"):
        return False
    if (toleration.get("operator") or "Equal") == "Exists":
        return True
    return str(toleration.get("value") or "") == str(taint.get("value") or "")


def _requirement_holds(requirement: Mapping[str, Any], value: str | None) -> bool:
    operator = requirement.get("operator")
    values = [str(item) for item in requirement.get("values") or []]
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            return int(value) > int(values[0]) if operator == "Gt" else int(value) < int(values[0])
        except ValueError:
            return False
    return False


def _affinity_allows(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    required = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if not required:
        return True
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": str(node["metadata"]["name"])}
    for term in required:
        expressions = term.get("matchExpressions") or []
        matched_fields = term.get("matchFields") or []
        if not expressions and not matched_fields:
            continue
        if all(_requirement_holds(item, labels.get(item.get("key"))) for item in expressions) and all(
            _requirement_holds(item, fields.get(item.get("key"))) for item in matched_fields
        ):
            return True
    return False


def should_run(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run, should continue running) of a daemon pod on ``node`` (NodeShouldRunDaemonPod)."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(key) != value for key, value in (pod_spec.get("nodeSelector") or {}).items()):
        return False, False
    if not _affinity_allows(pod_spec, node):
        return False, False
    tolerations = daemon_tolerations(pod_spec)
    run = keep = True
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if any(_tolerates(item, taint) for item in tolerations):
            continue
        run = False
        if taint.get("effect") == "NoExecute":
            keep = False
    return run, keep


def target_node(pod: Mapping[str, Any]) -> str:
    """The node a daemon pod is bound to, or meant for by its node affinity (util.GetTargetNodeName)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms") or []
    for term in terms:
        for field in term.get("matchFields") or []:
            values = field.get("values") or []
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def _node_affinity(pod_spec: dict[str, Any], node_name: str) -> None:
    """util.ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become "this node"."""
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]
    }


def _node_view(node: Mapping[str, Any]) -> Any:
    return (
        workloads_pods.canonical_json(node["metadata"].get("labels") or {}),
        workloads_pods.canonical_json((node.get("spec") or {}).get("taints") or []),
    )


class DaemonSetController(runtime.Controller):
    """A pod per eligible node for DaemonSets; rolled within maxUnavailable; status counted per node."""

    name = "daemonset-controller"
    watches = (RESOURCE, PODS, NODES)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.pods = workloads_pods.owner_index(ctx, PODS)
        self._daemonsets: set[runtime.Key] = set()
        self._nodes: dict[str, Any] = {}
        self._failed_backoff: dict[tuple[str, str], tuple[float, float]] = {}
        """(daemon set uid, node) → (when the last failed pod was deleted, the back-off then)."""

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.pods.build()
        for node in self.ctx.list(NODES):
            self._nodes[str(node["metadata"]["name"])] = _node_view(node)
        self._daemonsets = {runtime.key_of(RESOURCE, obj) for obj in self.ctx.list(RESOURCE)}
        return sorted(self._daemonsets)

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == RESOURCE:
            key = runtime.key_of(RESOURCE, event.obj)
            if event.type == "DELETED":
                self._daemonsets.discard(key)
            else:
                self._daemonsets.add(key)
            return [key]
        if event.resource == NODES:
            name = str(event.obj["metadata"]["name"])
            if event.type == "DELETED":
                self._nodes.pop(name, None)
            else:
                view = _node_view(event.obj)
                if self._nodes.get(name) == view:
                    return []  # a heartbeat or a condition: nothing a daemon pod depends on
                self._nodes[name] = view
            return sorted(self._daemonsets)
        self.pods.observe(event)
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return []
        return [(RESOURCE, event.namespace, str(ref.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        ds = self.ctx.get(*key)
        if ds is None:
            self._daemonsets.discard(key)
            return None
        return self.sync(ds)

    def _create(self, ds: Mapping[str, Any], node_name: str, template_hash: str) -> None:
        spec = ds.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        pod_spec = template.setdefault("spec", {})
        pod_spec["tolerations"] = daemon_tolerations(pod_spec)
        _node_affinity(pod_spec, node_name)
        labels = {HASH_LABEL: template_hash, GENERATION_LABEL: str(ds["metadata"].get("generation") or 1)}
        body = workloads_pods.pod_from_template(
            template,
            workloads_pods.controller_ref(ds, "apps/v1", "DaemonSet"),
            generate_name=f"{ds['metadata']['name']}-",
            labels=labels,
        )
        try:
            created = self.ctx.create(PODS, str(ds["metadata"].get("namespace") or ""), body, self.name)
        except api_status.ApiError as error:
            if "is being terminated" not in error.message:
                workloads_pods.record(
                    self.ctx, ds, "Warning", "FailedCreate", f"Error creating: {error.message}", self.name
                )
            return
        if created is not None:
            self.pods.add(created)
            workloads_pods.record(
                self.ctx, ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", self.name
            )

    def _delete(self, ds: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
        try:
            self.ctx.delete(PODS, str(pod["metadata"].get("namespace") or ""), str(pod["metadata"]["name"]))
        except api_status.ApiError as error:
            workloads_pods.record(
                self.ctx, ds, "Warning", "FailedDelete", f"Error deleting: {error.message}", self.name
            )
            return
        workloads_pods.record(
            self.ctx, ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", self.name
        )

    def sync(self, ds: dict[str, Any]) -> float | None:
        spec = ds.get("spec") or {}
        pod_spec = (spec.get("template") or {}).get("spec") or {}
        template_hash = workloads_rollout.pod_template_hash(
            spec.get("template") or {}, (ds.get("status") or {}).get("collisionCount")
        )
        min_ready = self.ctx.settings.scaled(float(spec.get("minReadySeconds") or 0))
        now = workloads_pods.wall_clock()
        nodes = {str(node["metadata"]["name"]): node for node in self.ctx.list(NODES)}
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in self.pods.children(ds["metadata"]["uid"]):
            by_node.setdefault(target_node(pod), []).append(pod)
        wait: float | None = None
        if not ds["metadata"].get("deletionTimestamp"):
            wait = self._manage(ds, pod_spec, nodes, by_node, template_hash, now)
            wait = self._roll(ds, nodes, template_hash, min_ready, now, wait)
            by_node = {}
            for pod in self.pods.children(ds["metadata"]["uid"]):
                by_node.setdefault(target_node(pod), []).append(pod)
        wanted = daemonset_status(ds, pod_spec, nodes, by_node, template_hash, min_ready, now)
        if wanted != (ds.get("status") or {}):
            current = self.ctx.get(RESOURCE, str(ds["metadata"].get("namespace") or ""), ds["metadata"]["name"])
            if current is not None:
                self.ctx.update(RESOURCE, {**current, "status": wanted}, self.name, subresource="status")
        return wait

    def _manage(
        self,
        ds: dict[str, Any],
        pod_spec: Mapping[str, Any],
        nodes: Mapping[str, Mapping[str, Any]],
        by_node: Mapping[str, list[dict[str, Any]]],
        template_hash: str,
        now: float,
    ) -> float | None:
        wait: float | None = None
        for node_name, node in nodes.items():
            run, keep = should_run(pod_spec, node)
            pods = [pod for pod in by_node.get(node_name, []) if not pod["metadata"].get("deletionTimestamp")]
            if run and not by_node.get(node_name):
                self._create(ds, node_name, template_hash)
            elif keep:
                running = []
                for pod in pods:
                    phase = pod.get("status", {}).get("phase")
                    if phase == "Failed":
                        left = self._failed_pod_backoff(ds, node_name, now)
                        if left > 0:
                            wait = left if wait is None else min(wait, left)
                            continue
                        message = (
                            f"Found failed daemon pod {pod['metadata'].get('namespace')}/{pod['metadata']['name']} "
                            f"on node {node_name}, will try to kill it"
                        )
                        workloads_pods.record(self.ctx, ds, "Warning", "FailedDaemonPod", message, self.name)
                        self._delete(ds, pod)
                    elif phase == "Succeeded":
                        self._delete(ds, pod)
                    else:
                        running.append(pod)
                for surplus in sorted(running, key=lambda pod: pod["metadata"].get("creationTimestamp") or "")[1:]:
                    self._delete(ds, surplus)
            else:
                for pod in pods:
                    self._delete(ds, pod)
        for node_name, pods in by_node.items():
            if node_name not in nodes:
                for pod in pods:
                    if not pod["metadata"].get("deletionTimestamp"):
                        self._delete(ds, pod)
        return wait

    def _failed_pod_backoff(self, ds: Mapping[str, Any], node_name: str, now: float) -> float:
        """Seconds before another failed pod on this node may be deleted (0: now, and the back-off grows)."""
        key = (str(ds["metadata"]["uid"]), node_name)
        base, cap = (self.ctx.settings.scaled(value) for value in FAILED_POD_BACKOFF)
        last = self._failed_backoff.get(key)
        if last is not None and now < last[0] + last[1]:
            return last[0] + last[1] - now
        delay = base if last is None or now > last[0] + 2 * cap else min(cap, last[1] * 2)
        self._failed_backoff[key] = (now, delay)
        return 0.0

    def _roll(
        self,
        ds: dict[str, Any],
        nodes: Mapping[str, Mapping[str, Any]],
        template_hash: str,
        min_ready: float,
        now: float,
        wait: float | None,
    ) -> float | None:
        """RollingUpdate (maxSurge 0): old pods go, unavailable ones first, within maxUnavailable."""
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return wait
        pod_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        eligible = [name for name, node in nodes.items() if should_run(pod_spec, node)[0]]
        budget_value = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
        budget = workloads_rollout.int_or_percent(budget_value, len(eligible), round_up=True) or 1
        by_node: dict[str, list[dict[str, Any]]] = {}
        for pod in self.pods.children(ds["metadata"]["uid"]):
            if workloads_pods.active(pod):
                by_node.setdefault(target_node(pod), []).append(pod)
        unavailable = 0
        replaceable: list[dict[str, Any]] = []
        candidates: list[dict[str, Any]] = []
        for name in eligible:
            pods = by_node.get(name, [])
            new = [pod for pod in pods if (pod["metadata"].get("labels") or {}).get(HASH_LABEL) == template_hash]
            old = [pod for pod in pods if pod not in new]
            if len(new) + len(old) != 1:
                unavailable += 1
            elif new:
                left = workloads_pods.seconds_until_available(new[0], min_ready, now)
                if left != 0:
                    unavailable += 1
                    if left:
                        wait = left if wait is None else min(wait, left)
            elif not workloads_pods.available(old[0], min_ready, now):
                replaceable.append(old[0])
            else:
                candidates.append(old[0])
        room = max(0, budget - unavailable)
        for pod in [*replaceable, *candidates[:room]]:
            self._delete(ds, pod)
        return wait


def daemonset_status(
    ds: Mapping[str, Any],
    pod_spec: Mapping[str, Any],
    nodes: Mapping[str, Mapping[str, Any]],
    by_node: Mapping[str, Sequence[Mapping[str, Any]]],
    template_hash: str,
    min_ready: float,
    now: float,
) -> dict[str, Any]:
    """updateDaemonSetStatus's counts, node by node."""
    desired = current = misscheduled = ready = updated = available = 0
    for name, node in nodes.items():
        run, _ = should_run(pod_spec, node)
        pods = sorted(
            (pod for pod in by_node.get(name, []) if not pod["metadata"].get("deletionTimestamp")),
            key=lambda pod: pod["metadata"].get("creationTimestamp") or "",
        )
        if run:
            desired += 1
        if not pods:
            continue
        if not run:
            misscheduled += 1
            continue
        current += 1
        oldest = pods[0]
        if workloads_pods.ready(oldest):
            ready += 1
            if workloads_pods.available(oldest, min_ready, now):
                available += 1
        if (oldest["metadata"].get("labels") or {}).get(HASH_LABEL) == template_hash:
            updated += 1
    status: dict[str, Any] = {
        "currentNumberScheduled": current,
        "numberMisscheduled": misscheduled,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": int(ds["metadata"].get("generation") or 0),
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
    for field in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
        if not status[field]:
            del status[field]
    collisions = (ds.get("status") or {}).get("collisionCount")
    if collisions is not None:
        status["collisionCount"] = collisions
    return status
