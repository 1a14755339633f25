"""The default scheduler: pending pods bound to nodes as kube-scheduler binds them.

A pod is the scheduler's when it has no ``spec.nodeName`` and its ``schedulerName`` is
``default-scheduler`` (or unset). Each node is filtered as the default profile filters it, in
the plugins' order, the first failure naming the node's reason: NodeUnschedulable ("node(s) were
unschedulable"), TaintToleration ("node(s) had untolerated taint(s)"), NodeAffinity ("node(s)
didn't match Pod's node affinity/selector") and NodeResourcesFit ("Too many pods", "Insufficient
cpu", "Insufficient memory"). The nodes left are scored (least allocated and balanced requests,
spread of a controller's pods, preferred affinity, PreferNoSchedule taints) and the best one wins.

Binding: the sandbox has no ``pods/binding`` subresource (yet), so the scheduler sets
``spec.nodeName`` with an update and then the ``PodScheduled=True`` condition, as the binding
subresource does in one step on a real cluster, and posts the Event ``Scheduled``. A pod that fits
nowhere gets ``PodScheduled=False`` with reason ``Unschedulable`` and the scheduler's message
(``0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No
preemption victims found for incoming pod.``) and a ``FailedScheduling`` Event; it is tried again
when a node changes in a way that matters (added, allocatable, labels, taints, conditions,
unschedulable) or when an assigned pod goes away. Preemption is never carried out: every pod is
treated as of equal priority, so the message says no victims were found.

Resource accounting is the scheduler's own cache: requests of the non-terminal pods bound to each
node, kept from watch events and from its own bindings (an "assumed" pod counts at once, before the
watch shows the binding), so consecutive decisions never overcommit a node.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from upkeep.sandbox import status
from upkeep.sandbox.simulation import runtime
from upkeep.sandbox.store import Event

__all__ = [
    "COMPONENTS",
    "NodeUsage",
    "Requests",
    "Scheduler",
    "filter_node",
    "fit_error_message",
    "matches_node_affinity",
    "parse_quantity",
    "pod_requests",
    "score_node",
    "tolerates",
    "untolerated_taint",
]

logger = logging.getLogger(__name__)

PODS = "/pods"
NODES = "/nodes"
SCHEDULER_NAME = "default-scheduler"
FIELD_MANAGER = "kube-scheduler"

DEFAULT_MILLI_CPU = 100
"""The request the scheduler assumes, for scoring only, of a container that asks for no CPU."""
DEFAULT_MEMORY = 200 * 1024 * 1024
"""Likewise for memory (200 MiB)."""

REASON_UNSCHEDULABLE = "node(s) were unschedulable"
REASON_TAINT = "node(s) had untolerated taint(s)"
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
REASON_PODS = "Too many pods"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_NODES = "no nodes available to schedule pods"

_SUFFIXES: dict[str, Fraction] = {
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def parse_quantity(value: object) -> Fraction:
    """A Kubernetes quantity ("250m", "1.5", "128Mi", "1e3", 2) as an exact number; ValueError when not one."""
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    text = str(value).strip()
    for suffix in ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"):
        if text.endswith(suffix):  # "1E3" ends in a digit: a trailing "E" is always exa
            return _number(text[: -len(suffix)], text) * _SUFFIXES[suffix]
    return _number(text, text)


def _number(number: str, text: str) -> Fraction:
    try:
        if not number or number[0] not in "+-.0123456789":
            raise ValueError(text)
        return Fraction(number)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"quantities must match the regular expression: {text!r}") from None


def milli_cpu(value: object) -> int:
    """CPU in millicores, rounded up as the API's MilliValue rounds."""
    return math.ceil(parse_quantity(value) * 1000)


def byte_value(value: object) -> int:
    """A quantity of bytes (or a count), rounded up."""
    return math.ceil(parse_quantity(value))


@dataclass(frozen=True)
class Requests:
    """What a pod asks of a node: its requests, and the non-zero ones the scheduler scores with."""

    milli_cpu: int = 0
    memory: int = 0
    nonzero_milli_cpu: int = 0
    nonzero_memory: int = 0

    def plus(self, other: Requests) -> Requests:
        return Requests(
            self.milli_cpu + other.milli_cpu,
            self.memory + other.memory,
            self.nonzero_milli_cpu + other.nonzero_milli_cpu,
            self.nonzero_memory + other.nonzero_memory,
        )

    def minus(self, other: Requests) -> Requests:
        return Requests(
            self.milli_cpu - other.milli_cpu,
            self.memory - other.memory,
            self.nonzero_milli_cpu - other.nonzero_milli_cpu,
            self.nonzero_memory - other.nonzero_memory,
        )


def _container_requests(container: Mapping[str, Any]) -> Requests:
    resources = container.get("resources") or {}
    requests = dict(resources.get("limits") or {})
    requests.update(resources.get("requests") or {})  # the API server defaults a missing request to the limit
    cpu = milli_cpu(requests["cpu"]) if "cpu" in requests else 0
    memory = byte_value(requests["memory"]) if "memory" in requests else 0
    return Requests(
        cpu,
        memory,
        cpu if "cpu" in requests else DEFAULT_MILLI_CPU,
        memory if "memory" in requests else DEFAULT_MEMORY,
    )


def _max(first: Requests, second: Requests) -> Requests:
    return Requests(
        max(first.milli_cpu, second.milli_cpu),
        max(first.memory, second.memory),
        max(first.nonzero_milli_cpu, second.nonzero_milli_cpu),
        max(first.nonzero_memory, second.nonzero_memory),
    )


def pod_requests(pod: Mapping[str, Any]) -> Requests:
    """A pod's effective requests: its containers and sidecars, or its largest init container, plus overhead."""
    spec = pod.get("spec") or {}
    total = Requests()
    for container in spec.get("containers") or []:
        total = total.plus(_container_requests(container))
    sidecars = Requests()
    init_peak = Requests()
    for container in spec.get("initContainers") or []:
        wanted = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            sidecars = sidecars.plus(wanted)
            init_peak = _max(init_peak, sidecars)
        else:
            init_peak = _max(init_peak, wanted.plus(sidecars))
    total = _max(total.plus(sidecars), init_peak)
    overhead = spec.get("overhead") or {}
    if overhead:
        extra_cpu = milli_cpu(overhead["cpu"]) if "cpu" in overhead else 0
        extra_memory = byte_value(overhead["memory"]) if "memory" in overhead else 0
        total = total.plus(Requests(extra_cpu, extra_memory, extra_cpu, extra_memory))
    return total


# taints and tolerations


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether one toleration tolerates one taint (the API's ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    if operator != "Equal" or not key:
        return False
    return str(toleration.get("value") or "") == str(taint.get("value") or "")


def untolerated_taint(
    taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], effects: Iterable[str]
) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration tolerates, or None."""
    wanted = set(effects)
    for taint in taints:
        if taint.get("effect") not in wanted:
            continue
        if not any(tolerates(toleration, taint) for toleration in tolerations):
            return taint
    return None


# node affinity


def _node_field(node: Mapping[str, Any], key: str) -> str | None:
    return str(node["metadata"]["name"]) if key == "metadata.name" else None


def _requirement_matches(requirement: Mapping[str, Any], value: str | None) -> bool:
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
    if operator in ("Gt", "Lt"):
        if value is None or len(values) != 1:
            return False
        try:
            mine, theirs = int(value), int(values[0])
        except ValueError:
            return False
        return mine > theirs if operator == "Gt" else mine < theirs
    return False


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm: all its expressions and fields hold; a term with neither matches no node."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    for requirement in expressions:
        found = labels.get(str(requirement.get("key")))
        if not _requirement_matches(requirement, None if found is None else str(found)):
            return False
    return all(
        _requirement_matches(requirement, _node_field(node, str(requirement.get("key")))) for requirement in fields
    )


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The pod's nodeSelector and required node affinity (terms ORed, expressions ANDed) allow ``node``."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if required is None:
        return True
    return any(_term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def _preferred_affinity_weight(pod: Mapping[str, Any], node: Mapping[str, Any]) -> int:
    preferred = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    total = 0
    for item in preferred.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        if _term_matches(item.get("preference") or {}, node):
            total += int(item.get("weight") or 0)
    return total


# nodes


@dataclass
class NodeUsage:
    """What the scheduler knows of a node: the node, and the requests of the pods bound to it."""

    node: dict[str, Any]
    requested: Requests = Requests()
    pods: set[tuple[str, str]] = field(default_factory=set)
    owners: dict[str, int] = field(default_factory=dict)
    """Controller uid → how many of its pods the node has (for spreading)."""

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    def allocatable(self) -> tuple[int, int, int]:
        """Allocatable millicores, bytes of memory and pods (capacity when allocatable is not reported)."""
        current = self.node.get("status") or {}
        found = {**(current.get("capacity") or {}), **(current.get("allocatable") or {})}
        cpu = milli_cpu(found["cpu"]) if "cpu" in found else 0
        memory = byte_value(found["memory"]) if "memory" in found else 0
        pods = byte_value(found["pods"]) if "pods" in found else 0
        return cpu, memory, pods


def filter_node(pod: Mapping[str, Any], wanted: Requests, usage: NodeUsage) -> tuple[list[str], bool]:
    """Why ``pod`` cannot go to the node (empty: it fits), and whether preemption could change that."""
    node = usage.node
    spec = pod.get("spec") or {}
    tolerations = list(spec.get("tolerations") or [])
    if (node.get("spec") or {}).get("unschedulable") and not any(
        tolerates(t, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}) for t in tolerations
    ):
        return [REASON_UNSCHEDULABLE], False
    taints = (node.get("spec") or {}).get("taints") or []
    if untolerated_taint(taints, tolerations, ("NoSchedule", "NoExecute")) is not None:
        return [REASON_TAINT], False
    if not matches_node_affinity(pod, node):
        return [REASON_AFFINITY], False
    cpu, memory, pods = usage.allocatable()
    reasons = []
    if len(usage.pods) + 1 > pods:
        reasons.append(REASON_PODS)
    if wanted.milli_cpu > 0 and wanted.milli_cpu > cpu - usage.requested.milli_cpu:
        reasons.append(REASON_CPU)
    if wanted.memory > 0 and wanted.memory > memory - usage.requested.memory:
        reasons.append(REASON_MEMORY)
    return reasons, True


def score_node(pod: Mapping[str, Any], wanted: Requests, usage: NodeUsage, owner: str) -> float:
    """Higher is better: least allocated, balanced, spread of the pod's controller, preferences, soft taints."""
    cpu, memory, _ = usage.allocatable()
    cpu_used = usage.requested.nonzero_milli_cpu + wanted.nonzero_milli_cpu
    memory_used = usage.requested.nonzero_memory + wanted.nonzero_memory
    cpu_free = max(cpu - cpu_used, 0) / cpu if cpu else 0.0
    memory_free = max(memory - memory_used, 0) / memory if memory else 0.0
    least_allocated = 100 * (cpu_free + memory_free) / 2
    balanced = 100 * (1 - abs(cpu_free - memory_free))
    spread = -10.0 * usage.owners.get(owner, 0) if owner else 0.0
    preferred = float(_preferred_affinity_weight(pod, usage.node))
    tolerations = list((pod.get("spec") or {}).get("tolerations") or [])
    soft_taints = sum(
        1
        for taint in (usage.node.get("spec") or {}).get("taints") or []
        if taint.get("effect") == "PreferNoSchedule" and not any(tolerates(t, taint) for t in tolerations)
    )
    return least_allocated + balanced + 2 * spread + 2 * preferred - 30.0 * soft_taints


def _histogram(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


def fit_error_message(total_nodes: int, failures: Mapping[str, tuple[Sequence[str], bool]]) -> str:
    """The scheduler's FitError text, with what default preemption says of the same nodes.

    ``failures``: node name → (its filter reasons, whether they could be resolved by preemption).
    """
    if total_nodes == 0:
        return NO_NODES
    reasons: dict[str, int] = {}
    preemption: dict[str, int] = {}
    for node_reasons, resolvable in failures.values():
        for reason in node_reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
        verdict = NO_VICTIMS if resolvable else NOT_HELPFUL
        preemption[verdict] = preemption.get(verdict, 0) + 1
    message = f"0/{total_nodes} nodes are available:"
    if reasons:
        message += f" {_histogram(reasons)}."
    return message + f" preemption: 0/{total_nodes} nodes are available: {_histogram(preemption)}."


def _owner_uid(pod: Mapping[str, Any]) -> str:
    for reference in pod["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return str(reference.get("uid") or "")
    return ""


def _terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _pending_for_us(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
        and not pod["metadata"].get("deletionTimestamp")
        and not _terminal(pod)
        and not spec.get("schedulingGates")
    )


def _pod_view(pod: Mapping[str, Any]) -> str:
    """What of a pod can change where it fits (not its status)."""
    return repr((pod.get("spec"), pod["metadata"].get("labels")))


def _scheduling_view(node: Mapping[str, Any]) -> Any:
    """What of a node can change where pods fit (a heartbeat alone does not)."""
    current = node.get("status") or {}
    return (
        (node.get("spec") or {}).get("unschedulable"),
        repr((node.get("spec") or {}).get("taints")),
        repr(node["metadata"].get("labels")),
        repr(current.get("allocatable")),
        tuple((c.get("type"), c.get("status")) for c in current.get("conditions") or []),
    )


def _with_condition(current: Mapping[str, Any], condition: dict[str, Any]) -> dict[str, Any] | None:
    """A pod status with ``condition`` set (lastTransitionTime kept while its status holds); None: no change."""
    conditions = [dict(c) for c in current.get("conditions") or []]
    for index, existing in enumerate(conditions):
        if existing.get("type") != condition["type"]:
            continue
        if all(existing.get(k) == condition.get(k) for k in ("status", "reason", "message")):
            return None
        if existing.get("status") == condition["status"]:
            condition["lastTransitionTime"] = existing.get("lastTransitionTime", condition["lastTransitionTime"])
        conditions[index] = condition
        break
    else:
        conditions.append(condition)
    return {**current, "conditions": conditions}


def _post_event(
    ctx: runtime.Context, obj: Mapping[str, Any], kind: str, reason: str, message: str, source: str, **extra: str
) -> None:
    """Post an Event; as with a real event recorder, one that cannot be posted is logged and stops nothing."""
    try:
        ctx.event(obj, kind, reason, message, source, **extra)
    except status.ApiError as error:
        logger.warning("%s: could not post the Event %s %s: %s", source, reason, message, error.message)


class Scheduler(runtime.Controller):
    """kube-scheduler's default profile, one pod at a time."""

    name = SCHEDULER_NAME
    watches = (PODS, NODES)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.nodes: dict[str, NodeUsage] = {}
        self.assigned: dict[tuple[str, str], tuple[str, Requests, str]] = {}
        """Pods counted on a node: (namespace, name) → (node, requests, controller uid)."""
        self.unschedulable: dict[runtime.Key, str] = {}
        """Pods that fit nowhere → their spec and labels when tried (their own status writes do not retry them)."""

    # the cache

    def _account(self, pod: Mapping[str, Any]) -> bool:
        """Count ``pod`` where it is bound; True when this freed room somewhere."""
        metadata = pod["metadata"]
        key = (str(metadata.get("namespace") or ""), str(metadata["name"]))
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        previous = self.assigned.get(key)
        counts = bool(node_name) and not _terminal(pod)
        if previous is not None and counts and previous[0] == node_name:
            return False
        freed = False
        if previous is not None:
            self._forget(key, previous)
            freed = True
        if counts:
            self._assume(key, node_name, pod_requests(pod), _owner_uid(pod))
        return freed

    def _assume(self, key: tuple[str, str], node_name: str, wanted: Requests, owner: str) -> None:
        self.assigned[key] = (node_name, wanted, owner)
        usage = self.nodes.get(node_name)
        if usage is None:
            return
        usage.requested = usage.requested.plus(wanted)
        usage.pods.add(key)
        if owner:
            usage.owners[owner] = usage.owners.get(owner, 0) + 1

    def _forget(self, key: tuple[str, str], entry: tuple[str, Requests, str]) -> None:
        del self.assigned[key]
        usage = self.nodes.get(entry[0])
        if usage is None or key not in usage.pods:
            return
        usage.requested = usage.requested.minus(entry[1])
        usage.pods.discard(key)
        owner = entry[2]
        if owner:
            usage.owners[owner] -= 1
            if usage.owners[owner] <= 0:
                del usage.owners[owner]

    def _node_changed(self, event: Event) -> bool:
        """Keep the node in the cache; True when the change can make a waiting pod fit."""
        name = str(event.obj["metadata"]["name"])
        found = self.nodes.get(name)
        if event.type == "DELETED":
            self.nodes.pop(name, None)
            return False
        if found is None:
            usage = NodeUsage(event.obj)
            self.nodes[name] = usage
            for key, (node_name, wanted, owner) in self.assigned.items():
                if node_name == name:
                    usage.requested = usage.requested.plus(wanted)
                    usage.pods.add(key)
                    if owner:
                        usage.owners[owner] = usage.owners.get(owner, 0) + 1
            return True
        before = _scheduling_view(found.node)
        found.node = event.obj
        return bool(_scheduling_view(event.obj) != before)

    def _waiting(self) -> list[runtime.Key]:
        return sorted(self.unschedulable)

    # the controller

    def initial_keys(self) -> Iterable[runtime.Key]:
        for node in self.ctx.list(NODES):
            self.nodes[str(node["metadata"]["name"])] = NodeUsage(node)
        pending = []
        for pod in self.ctx.list(PODS):
            self._account(pod)
            if _pending_for_us(pod):
                pending.append(runtime.key_of(PODS, pod))
        return pending

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == NODES:
            return self._waiting() if self._node_changed(event) else []
        pod = event.obj
        key = runtime.key_of(PODS, pod)
        if event.type == "DELETED":
            self.unschedulable.pop(key, None)
            entry = self.assigned.get(key[1:])
            if entry is not None:
                self._forget(key[1:], entry)
                return self._waiting()
            return []
        freed = self._account(pod)
        wanted = [key] if _pending_for_us(pod) else []
        if not wanted:
            self.unschedulable.pop(key, None)
        elif self.unschedulable.get(key) == _pod_view(pod):
            wanted = []
        return wanted + (self._waiting() if freed else [])

    async def reconcile(self, key: runtime.Key) -> float | None:
        _, namespace, name = key
        pod = self.ctx.get(PODS, namespace, name)
        if pod is None or not _pending_for_us(pod) or (namespace, name) in self.assigned:
            self.unschedulable.pop(key, None)
            return None
        wanted = pod_requests(pod)
        owner = _owner_uid(pod)
        failures: dict[str, tuple[Sequence[str], bool]] = {}
        best: NodeUsage | None = None
        best_score = -math.inf
        for node_name in sorted(self.nodes):
            usage = self.nodes[node_name]
            reasons, resolvable = filter_node(pod, wanted, usage)
            if reasons:
                failures[node_name] = (reasons, resolvable)
                continue
            score = score_node(pod, wanted, usage, owner) - 0.001 * len(usage.pods)
            if score > best_score:
                best, best_score = usage, score
        if best is None:
            self._unschedulable(pod, fit_error_message(len(self.nodes), failures))
            return None
        self._bind(pod, best.name, wanted, owner)
        return None

    def _bind(self, pod: dict[str, Any], node_name: str, wanted: Requests, owner: str) -> None:
        metadata = pod["metadata"]
        namespace, name = str(metadata.get("namespace") or ""), str(metadata["name"])
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = node_name
        written = self.ctx.update(PODS, bound, FIELD_MANAGER)
        if written is None:
            return  # changed meanwhile: its watch event brings it back
        self.unschedulable.pop(runtime.key_of(PODS, pod), None)
        self._assume((namespace, name), node_name, wanted, owner)
        condition = {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": runtime.now_text(),
        }
        new_status = _with_condition(written.get("status") or {}, condition)
        if new_status is not None:
            self.ctx.update(PODS, {**written, "status": new_status}, FIELD_MANAGER, subresource="status")
        _post_event(
            self.ctx,
            written,
            "Normal",
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {node_name}",
            self.name,
        )

    def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        self.unschedulable[runtime.key_of(PODS, pod)] = _pod_view(pod)
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": runtime.now_text(),
            "reason": "Unschedulable",
            "message": message,
        }
        new_status = _with_condition(pod.get("status") or {}, condition)
        if new_status is not None:
            self.ctx.update(PODS, {**pod, "status": new_status}, FIELD_MANAGER, subresource="status")
        _post_event(self.ctx, pod, "Warning", "FailedScheduling", message, self.name)


COMPONENTS: list[type[runtime.Controller]] = [Scheduler]
