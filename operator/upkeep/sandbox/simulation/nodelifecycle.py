"""The node lifecycle controller and taint-based eviction: what a control plane does when a kubelet goes quiet.

A node's health is its heartbeat: the renewals of its Lease (``kube-node-lease/<node>``) and the
``lastHeartbeatTime`` of its Ready condition. When neither moved for ``node_grace`` seconds, the
controller (Event source ``node-controller``) sets Ready, MemoryPressure, DiskPressure and
PIDPressure to Unknown (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status."),
posts ``NodeNotReady`` on the node, marks the node's pods Ready=False with a ``NodeNotReady``
Warning each, and taints the node as its condition says: Ready=Unknown gives
``node.kubernetes.io/unreachable`` NoSchedule and NoExecute, Ready=False gives
``node.kubernetes.io/not-ready``; MemoryPressure, DiskPressure, PIDPressure and NetworkUnavailable
give their NoSchedule taints; ``spec.unschedulable`` (``kubectl cordon``) gives
``node.kubernetes.io/unschedulable:NoSchedule``. Taints carry ``timeAdded``.

Taint-based eviction (Event source ``taint-eviction-controller``): a pod on a node with NoExecute
taints that it does not tolerate is deleted at once; one that tolerates them for
``tolerationSeconds`` is deleted that long after the taint was seen (Event ``TaintManagerEviction``
"Marking for deletion Pod ns/name", condition ``DisruptionTarget``/``DeletionByTaintManager``), and
one that tolerates them forever stays. A real cluster's admission adds to every pod two
tolerations of not-ready and unreachable for 300 s; a pod without them is treated as if it had
them, for ``eviction_timeout`` seconds. A pod's own ``tolerationSeconds`` is a duration of its spec
and goes through ``settings.scaled``. When the taints go before the time, the deletion is
cancelled ("Cancelling deletion of Pod ns/name").

A node whose heartbeat comes back is Ready again: its kubelet posts Ready=True (and this controller
does it for a kubelet that does not within two heartbeats), and its taints go. When every node is
not ready at once, the controller assumes the control plane, not the nodes, has the problem and
evicts nothing (the "full disruption" mode of the real controller).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox import status
from upkeep.sandbox.simulation import runtime, scheduler
from upkeep.sandbox.store import Event

__all__ = ["COMPONENTS", "NodeLifecycle", "desired_taints", "eviction_delay", "merge_taints"]

logger = logging.getLogger(__name__)

NODES = "/nodes"
PODS = "/pods"
LEASES = "coordination.k8s.io/leases"
LEASE_NAMESPACE = "kube-node-lease"
NODE_CONTROLLER = "node-controller"
TAINT_EVICTION = "taint-eviction-controller"

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

_CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): NOT_READY,
    ("Ready", "Unknown"): UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
_MANAGED_NO_SCHEDULE = frozenset([*_CONDITION_TAINTS.values(), UNSCHEDULABLE])
_MANAGED_NO_EXECUTE = frozenset([NOT_READY, UNREACHABLE])
_KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
_HEALTHY = {
    "Ready": ("True", "KubeletReady", "kubelet is posting ready status"),
    "MemoryPressure": ("False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    "DiskPressure": ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    "PIDPressure": ("False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
}
EXCLUDE_DISRUPTION = "node.kubernetes.io/exclude-disruption"


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _ready_status(node: Mapping[str, Any]) -> str:
    """The Ready condition's status; "" when the node has none yet (its kubelet never posted one)."""
    found = _condition(node, "Ready")
    return str(found.get("status")) if found else ""


def _not_ready(node: Mapping[str, Any]) -> bool:
    return _ready_status(node) in ("False", "Unknown")


def desired_taints(node: Mapping[str, Any], *, evict: bool = True) -> set[tuple[str, str]]:
    """The (key, effect) taints the controller wants on ``node``; ``evict``: False in full disruption."""
    wanted: set[tuple[str, str]] = set()
    for condition in (node.get("status") or {}).get("conditions") or []:
        key = _CONDITION_TAINTS.get((str(condition.get("type")), str(condition.get("status"))))
        if key:
            wanted.add((key, "NoSchedule"))
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((UNSCHEDULABLE, "NoSchedule"))
    ready = _ready_status(node)
    if evict and ready == "False":
        wanted.add((NOT_READY, "NoExecute"))
    elif evict and ready == "Unknown":
        wanted.add((UNREACHABLE, "NoExecute"))
    return wanted


def _managed(taint: Mapping[str, Any]) -> bool:
    effect, key = taint.get("effect"), taint.get("key")
    return (effect == "NoSchedule" and key in _MANAGED_NO_SCHEDULE) or (
        effect == "NoExecute" and key in _MANAGED_NO_EXECUTE
    )


def merge_taints(
    existing: Iterable[Mapping[str, Any]], wanted: set[tuple[str, str]], moment: str
) -> list[dict[str, Any]] | None:
    """``existing`` with the controller's taints made ``wanted`` (new ones stamped ``moment``); None: no change."""
    kept: list[dict[str, Any]] = []
    present: set[tuple[str, str]] = set()
    changed = False
    for taint in existing:
        pair = (str(taint.get("key")), str(taint.get("effect")))
        if _managed(taint) and pair not in wanted:
            changed = True
            continue
        present.add(pair)
        kept.append(dict(taint))
    for key, effect in sorted(wanted - present, key=lambda pair: (pair[1] != "NoSchedule", pair[0])):
        kept.append({"key": key, "effect": effect, "timeAdded": moment})
        changed = True
    return kept if changed else None


def _with_default_tolerations(
    tolerations: Sequence[Mapping[str, Any]], eviction_timeout: float, scaled: Callable[[float], float]
) -> list[tuple[Mapping[str, Any], float | None]]:
    """The pod's tolerations with their seconds in simulation time, plus admission's two defaults if missing."""
    result: list[tuple[Mapping[str, Any], float | None]] = []
    for toleration in tolerations:
        seconds = toleration.get("tolerationSeconds")
        result.append((toleration, None if seconds is None else scaled(float(seconds))))
    for key in (NOT_READY, UNREACHABLE):
        covered = any(
            (t.get("key") or "") in (key, "") and (t.get("effect") or "") in ("NoExecute", "") for t in tolerations
        )
        if not covered:
            result.append(({"key": key, "operator": "Exists", "effect": "NoExecute"}, eviction_timeout))
    return result


def eviction_delay(
    taints: Iterable[Mapping[str, Any]],
    tolerations: Sequence[Mapping[str, Any]],
    eviction_timeout: float,
    scaled: Callable[[float], float],
) -> float | None:
    """Seconds a pod may stay on a node with these NoExecute taints: 0 at once, None forever."""
    candidates = _with_default_tolerations(tolerations, eviction_timeout, scaled)
    used: list[float | None] = []
    for taint in taints:
        for toleration, seconds in candidates:
            if scheduler.tolerates(toleration, taint):
                used.append(seconds)
                break
        else:
            return 0.0
    finite = [seconds for seconds in used if seconds is not None]
    if not used:
        return 0.0
    if not finite:
        return None
    return max(min(finite), 0.0)


def _no_execute(node: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if node is None:
        return []
    return [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]


def _view(node: Mapping[str, Any]) -> Any:
    """What of a node this controller acts on (not heartbeats)."""
    current = node.get("status") or {}
    return (
        tuple((c.get("type"), c.get("status")) for c in current.get("conditions") or []),
        repr((node.get("spec") or {}).get("taints")),
        (node.get("spec") or {}).get("unschedulable"),
        EXCLUDE_DISRUPTION in (node["metadata"].get("labels") or {}),
    )


def _post_event(
    ctx: runtime.Context, obj: Mapping[str, Any], kind: str, reason: str, message: str, source: str, **extra: str
) -> None:
    """Post an Event; as with a real event recorder, one that cannot be posted is logged and stops nothing."""
    try:
        ctx.event(obj, kind, reason, message, source, **extra)
    except status.ApiError as error:
        logger.warning("%s: could not post the Event %s %s: %s", source, reason, message, error.message)


class NodeLifecycle(runtime.Controller):
    """Node health from heartbeats, node taints from conditions, and eviction of pods from tainted nodes."""

    name = NODE_CONTROLLER
    watches = (NODES, LEASES, PODS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.nodes: dict[str, dict[str, Any]] = {}
        self.probe: dict[str, float] = {}
        """Node → monotonic time its heartbeat was last seen to move."""
        self.renewals: dict[str, str] = {}
        self.heartbeats: dict[str, str] = {}
        self.last_ready: dict[str, str] = {}
        self.registered: set[str] = set()
        self.marked_unknown: dict[str, float] = {}
        """Nodes this controller set to Unknown → when; a renewal after it means the kubelet is back."""
        self.back_since: dict[str, float] = {}
        self.pods_on: dict[str, set[tuple[str, str]]] = {}
        self.pod_place: dict[tuple[str, str], tuple[str, str]] = {}
        """Pod → (node, repr of its tolerations), to see bindings and toleration changes."""
        self.eviction_started: dict[tuple[str, str], float] = {}
        self.full_disruption = False

    # indexes

    def _observe_node(self, event: Event) -> bool:
        node = event.obj
        name = str(node["metadata"]["name"])
        if event.type == "DELETED":
            for store in (self.nodes, self.probe, self.heartbeats, self.last_ready, self.marked_unknown):
                store.pop(name, None)
            self.registered.discard(name)
            return False
        now = time.monotonic()
        previous = self.nodes.get(name)
        self.nodes[name] = node
        ready = _condition(node, "Ready")
        beat = str((ready or {}).get("lastHeartbeatTime") or "")
        if previous is None:
            self.probe.setdefault(name, now)
        elif beat and beat != self.heartbeats.get(name):
            self._heard_from(name, now)
        if beat:
            self.heartbeats[name] = beat
        return previous is None or _view(previous) != _view(node)

    def _heard_from(self, name: str, now: float) -> None:
        self.probe[name] = now
        if name in self.marked_unknown and name not in self.back_since:
            self.back_since[name] = now

    def _observe_lease(self, event: Event) -> list[runtime.Key]:
        lease = event.obj
        if event.namespace != LEASE_NAMESPACE or event.type == "DELETED":
            return []
        name = str(lease["metadata"]["name"])
        renewed = str((lease.get("spec") or {}).get("renewTime") or "")
        if not renewed or renewed == self.renewals.get(name):
            return []
        first = name not in self.renewals
        self.renewals[name] = renewed
        self._heard_from(name, time.monotonic())
        if not first and self.last_ready.get(name, "True") != "True":
            return [(NODES, "", name)]
        return []

    def _observe_pod(self, event: Event) -> list[runtime.Key]:
        pod = event.obj
        key = (str(pod["metadata"].get("namespace") or ""), str(pod["metadata"]["name"]))
        previous = self.pod_place.get(key)
        if event.type == "DELETED":
            self.pod_place.pop(key, None)
            self.eviction_started.pop(key, None)
            if previous is not None:
                self.pods_on.get(previous[0], set()).discard(key)
            return []
        spec = pod.get("spec") or {}
        node_name = str(spec.get("nodeName") or "")
        if not node_name:
            return []
        place = (node_name, repr(spec.get("tolerations")))
        if previous == place:
            return []
        if previous is not None and previous[0] != node_name:
            self.pods_on.get(previous[0], set()).discard(key)
        self.pod_place[key] = place
        self.pods_on.setdefault(node_name, set()).add(key)
        node = self.nodes.get(node_name)
        if node is not None and (_no_execute(node) or _not_ready(node)):
            return [(PODS, *key)]
        return []

    # the controller

    def initial_keys(self) -> Iterable[runtime.Key]:
        now = time.monotonic()
        for node in self.ctx.list(NODES):
            name = str(node["metadata"]["name"])
            self.nodes[name] = node
            self.probe[name] = now
            beat = (_condition(node, "Ready") or {}).get("lastHeartbeatTime")
            if beat:
                self.heartbeats[name] = str(beat)
        for lease in self.ctx.list(LEASES, LEASE_NAMESPACE):
            renewed = (lease.get("spec") or {}).get("renewTime")
            if renewed:
                self.renewals[str(lease["metadata"]["name"])] = str(renewed)
        for pod in self.ctx.list(PODS):
            self._observe_pod(Event(0, "ADDED", PODS, str(pod["metadata"].get("namespace") or ""), pod))
        return [(NODES, "", name) for name in sorted(self.nodes)]

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == NODES:
            name = str(event.obj["metadata"]["name"])
            return [(NODES, "", name)] if self._observe_node(event) else []
        if event.resource == LEASES:
            return self._observe_lease(event)
        return self._observe_pod(event)

    async def reconcile(self, key: runtime.Key) -> float | None:
        resource, namespace, name = key
        if resource == PODS:
            return self._reconcile_pod(namespace, name)
        return self._reconcile_node(name)

    # nodes

    def _reconcile_node(self, name: str) -> float | None:
        node = self.ctx.get(NODES, "", name)
        if node is None:
            return None
        now = time.monotonic()
        if name not in self.registered:
            self.registered.add(name)
            _post_event(
                self.ctx,
                node,
                "Normal",
                "RegisteredNode",
                f"Node {name} event: Registered Node {name} in Controller",
                self.name,
            )
        grace = self.ctx.settings.node_grace
        probe = self.probe.setdefault(name, now)
        again: float | None = None
        if now >= probe + grace:
            node = self._mark_unknown(node, now) or node
        else:
            again = probe + grace - now
            back = self.back_since.get(name)
            if back is not None and _ready_status(node) == "Unknown":
                restore_at = back + 2 * self.ctx.settings.heartbeat_interval
                if now >= restore_at:
                    node = self._mark_healthy(node) or node
                else:
                    again = min(again, restore_at - now)
            if _ready_status(node) == "True":
                self.marked_unknown.pop(name, None)
                self.back_since.pop(name, None)
        ready = _ready_status(node)
        if ready in ("False", "Unknown") and self.last_ready.get(name) == "True":
            _post_event(self.ctx, node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady", self.name)
            self._mark_pods_not_ready(name)
        self.last_ready[name] = ready
        self._check_disruption()
        node = self._sync_taints(node) or node
        self._sync_evictions(node)
        return again

    def _mark_unknown(self, node: dict[str, Any], now: float) -> dict[str, Any] | None:
        """Set the kubelet's conditions to Unknown (as of ``now``); the written node, or None if nothing changed."""
        moment = runtime.now_text()
        current = copy.deepcopy(node.get("status") or {})
        conditions = current.setdefault("conditions", [])
        before = _ready_status(node)
        for kind in _KUBELET_CONDITIONS:
            found = next((c for c in conditions if c.get("type") == kind), None)
            if found is None:
                conditions.append(
                    {
                        "type": kind,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                        "lastTransitionTime": moment,
                    }
                )
            elif found.get("status") != "Unknown":
                found.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=moment,
                )
        if before == "Unknown":
            return None
        written = self.ctx.update(NODES, {**node, "status": current}, self.name, subresource="status")
        if written is not None:
            name = str(node["metadata"]["name"])
            self.marked_unknown[name] = now
            self.back_since.pop(name, None)
        return written

    def _mark_healthy(self, node: dict[str, Any]) -> dict[str, Any] | None:
        """Stand in for a kubelet that renews its Lease but does not post Ready=True itself."""
        moment = runtime.now_text()
        current = copy.deepcopy(node.get("status") or {})
        for found in current.get("conditions") or []:
            healthy = _HEALTHY.get(str(found.get("type")))
            if healthy is None or found.get("status") != "Unknown":
                continue
            found.update(
                status=healthy[0],
                reason=healthy[1],
                message=healthy[2],
                lastHeartbeatTime=moment,
                lastTransitionTime=moment,
            )
        written = self.ctx.update(NODES, {**node, "status": current}, "kubelet", subresource="status")
        if written is not None:
            name = str(node["metadata"]["name"])
            _post_event(
                self.ctx, written, "Normal", "NodeReady", f"Node {name} status is now: NodeReady", "kubelet", host=name
            )
        return written

    def _mark_pods_not_ready(self, node_name: str) -> None:
        for namespace, name in sorted(self.pods_on.get(node_name, set())):
            pod = self.ctx.get(PODS, namespace, name)
            if pod is not None and (pod.get("spec") or {}).get("nodeName") == node_name:
                self._mark_pod_not_ready(pod)

    def _mark_pod_not_ready(self, pod: dict[str, Any]) -> None:
        current = copy.deepcopy(pod.get("status") or {})
        for condition in current.get("conditions") or []:
            if condition.get("type") != "Ready":
                continue
            if condition.get("status") == "False":
                return
            condition["status"] = "False"
            condition["lastTransitionTime"] = runtime.now_text()
            written = self.ctx.update(PODS, {**pod, "status": current}, self.name, subresource="status")
            if written is not None:
                _post_event(self.ctx, written, "Warning", "NodeNotReady", "Node is not ready", self.name)
            return

    def _check_disruption(self) -> None:
        """Full disruption: every node not ready. Entering it lifts NoExecute taints; leaving it resets the clocks."""
        counted = [
            node for node in self.nodes.values() if EXCLUDE_DISRUPTION not in (node["metadata"].get("labels") or {})
        ]
        down = bool(counted) and all(_ready_status(node) != "True" for node in counted)
        if down == self.full_disruption:
            return
        self.full_disruption = down
        now = time.monotonic()
        for name in self.nodes:
            if not down:
                self.probe[name] = now
            self.enqueue((NODES, "", name))

    def _sync_taints(self, node: dict[str, Any]) -> dict[str, Any] | None:
        wanted = desired_taints(node, evict=not self.full_disruption)
        spec = node.get("spec") or {}
        merged = merge_taints(spec.get("taints") or [], wanted, runtime.now_text())
        if merged is None:
            return None
        new_spec = {key: value for key, value in spec.items() if key != "taints"}
        if merged:
            new_spec["taints"] = merged
        return self.ctx.update(NODES, {**node, "spec": new_spec}, self.name)

    def _sync_evictions(self, node: Mapping[str, Any]) -> None:
        name = str(node["metadata"]["name"])
        pods = sorted(self.pods_on.get(name, set()))
        if _no_execute(node) or _not_ready(node):
            for key in pods:
                self.enqueue((PODS, *key))
            return
        for key in pods:
            self._cancel(key)

    # pods

    def _cancel(self, key: tuple[str, str]) -> None:
        if self.eviction_started.pop(key, None) is None:
            return
        pod = self.ctx.get(PODS, *key)
        if pod is not None:
            _post_event(
                self.ctx,
                pod,
                "Normal",
                "TaintManagerEviction",
                f"Cancelling deletion of Pod {key[0]}/{key[1]}",
                TAINT_EVICTION,
            )

    def _reconcile_pod(self, namespace: str, name: str) -> float | None:
        key = (namespace, name)
        pod = self.ctx.get(PODS, namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.eviction_started.pop(key, None)
            return None
        node = self.nodes.get(str((pod.get("spec") or {}).get("nodeName") or ""))
        if node is None:
            return None
        if _not_ready(node):
            self._mark_pod_not_ready(pod)
        taints = _no_execute(node)
        if not taints:
            self._cancel(key)
            return None
        settings = self.ctx.settings
        delay = eviction_delay(
            taints, list((pod.get("spec") or {}).get("tolerations") or []), settings.eviction_timeout, settings.scaled
        )
        if delay is None:
            self._cancel(key)
            return None
        now = time.monotonic()
        started = self.eviction_started.setdefault(key, now)
        if now < started + delay:
            return started + delay - now
        self._evict(pod)
        return None

    def _evict(self, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        namespace, name = str(metadata.get("namespace") or ""), str(metadata["name"])
        _post_event(
            self.ctx,
            pod,
            "Normal",
            "TaintManagerEviction",
            f"Marking for deletion Pod {namespace}/{name}",
            TAINT_EVICTION,
        )
        current = copy.deepcopy(pod.get("status") or {})
        conditions = [c for c in current.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastProbeTime": None,
                "lastTransitionTime": runtime.now_text(),
            }
        )
        current["conditions"] = conditions
        self.ctx.update(PODS, {**pod, "status": current}, TAINT_EVICTION, subresource="status")
        self.ctx.delete(PODS, namespace, name)
        self.eviction_started.pop((namespace, name), None)


COMPONENTS: list[type[runtime.Controller]] = [NodeLifecycle]
