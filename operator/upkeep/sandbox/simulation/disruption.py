"""PodDisruptionBudgets: the disruption controller's status, and the check the Eviction subresource makes.

The controller (``disruption-controller``) keeps each PDB's status as kube-controller-manager does:
``expectedPods`` (the selected pods for an integer ``minAvailable``, otherwise the sum of the
scales of their controllers: a Deployment's replicas for pods of its ReplicaSets, a ReplicaSet's
or StatefulSet's own), ``desiredHealthy`` (``minAvailable``, or ``expectedPods`` less
``maxUnavailable``, percentages rounded up), ``currentHealthy`` (selected pods that are Ready, not
being deleted and not just evicted), ``disruptionsAllowed`` (their difference, never below zero,
zero while nothing is expected), ``disruptedPods``, ``observedGeneration`` and the condition
``DisruptionAllowed`` (True/``SufficientPods`` or False/``InsufficientPods``; False/``SyncFailed``
when the expected count cannot be worked out). Events: ``NoPods`` "No matching pods found",
``CalculateExpectedPodCountFailed``, ``UnmanagedPods``.

``check_eviction(ctx, pod)`` is what the API server does before it deletes a pod for
``pods/eviction``: pods that are Pending, finished or already being deleted go regardless; a pod
covered by one PDB goes only if the PDB allows a disruption, and then the PDB's
``disruptionsAllowed`` is decremented and the pod recorded in ``disruptedPods`` at once (so that a
second eviction in the same moment sees the new budget); otherwise 429 TooManyRequests, "Cannot
evict pod as it would violate the pod's disruption budget.", with the cause ``DisruptionBudget``
"The disruption budget NAME needs N healthy pods and has M currently" (``kubectl drain`` answers
that with "error when evicting pods/... (will retry after 5s)" and tries again until its
``--timeout``). A pod covered by two PDBs cannot be evicted (500). An unready pod may go without
touching the budget while the budget is met (``unhealthyPodEvictionPolicy`` IfHealthyBudget, or
always with AlwaysAllow).
"""

from __future__ import annotations

import copy
import datetime
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox import selectors, status
from upkeep.sandbox.simulation import endpoints, runtime
from upkeep.sandbox.store import Event

__all__ = [
    "COMPONENTS",
    "DisruptionController",
    "check_eviction",
    "disruption_allowed_condition",
    "expected_and_desired",
    "scaled_int_or_percent",
]

logger = logging.getLogger(__name__)

PDBS = "policy/poddisruptionbudgets"
PODS = "/pods"
DEPLOYMENTS = "apps/deployments"
REPLICASETS = "apps/replicasets"
STATEFULSETS = "apps/statefulsets"
DELETION_TIMEOUT = 120.0
"""Seconds an evicted pod stays out of the healthy count while its deletion is awaited (the real controller's 2 min)."""
EVICTION_MANAGER = "kube-apiserver"
_WORKLOADS = {
    "ReplicaSet": REPLICASETS,
    "StatefulSet": STATEFULSETS,
    "Deployment": DEPLOYMENTS,
}


def scaled_int_or_percent(value: object, total: int, *, round_up: bool) -> int:
    """An IntOrString: an integer as it is, "N%" of ``total`` rounded up (or down); ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: invalid type: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        if text.isdigit():
            return int(text)
        raise ValueError(f'invalid value for IntOrString: invalid type: string is not a percentage: "{text}"')
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f'invalid value "{text}": strconv.Atoi: parsing "{text[:-1]}": invalid syntax') from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _timestamp(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return reference  # type: ignore[no-any-return]
    return None


def _scale_of(ctx: runtime.Context, namespace: str, reference: Mapping[str, Any]) -> tuple[str, int] | None:
    """(uid, replicas) of the workload that controls a pod: a ReplicaSet's Deployment when it has one."""
    resource = _WORKLOADS.get(str(reference.get("kind")))
    if resource is None:
        return None
    found = ctx.get(resource, namespace, str(reference.get("name")))
    if found is None or found["metadata"].get("uid") != reference.get("uid"):
        return None
    if reference.get("kind") == "ReplicaSet":
        owner = _controller_of(found)
        if owner is not None and owner.get("kind") == "Deployment":
            return _scale_of(ctx, namespace, owner)
    replicas = (found.get("spec") or {}).get("replicas")
    return str(found["metadata"]["uid"]), 1 if replicas is None else int(replicas)


def expected_and_desired(
    ctx: runtime.Context, pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, names of pods without a controller); ValueError when it cannot be told."""
    spec = pdb.get("spec") or {}
    namespace = str(pdb["metadata"].get("namespace") or "")
    max_unavailable = spec.get("maxUnavailable")
    min_available = spec.get("minAvailable")
    if max_unavailable is None and min_available is None:
        return 0, 0, []
    if max_unavailable is None and isinstance(min_available, int):
        return len(pods), min_available, []
    if isinstance(min_available, str) and min_available.isdigit() and max_unavailable is None:
        return len(pods), int(min_available), []
    scales: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        reference = _controller_of(pod)
        if reference is None:
            unmanaged.append(str(pod["metadata"]["name"]))
            continue
        found = _scale_of(ctx, namespace, reference)
        if found is None:
            raise ValueError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        scales[found[0]] = found[1]
    expected = sum(scales.values())
    if max_unavailable is not None:
        desired = expected - scaled_int_or_percent(max_unavailable, expected, round_up=True)
        return expected, max(desired, 0), unmanaged
    return expected, scaled_int_or_percent(min_available, expected, round_up=True), unmanaged


def disruption_allowed_condition(
    existing: list[Mapping[str, Any]], allowed: int, observed_generation: int, failure: str = ""
) -> list[dict[str, Any]]:
    """The conditions with DisruptionAllowed set (its lastTransitionTime kept while its status holds)."""
    if failure:
        wanted = {"status": "False", "reason": "SyncFailed", "message": failure}
    elif allowed > 0:
        wanted = {"status": "True", "reason": "SufficientPods", "message": ""}
    else:
        wanted = {"status": "False", "reason": "InsufficientPods", "message": ""}
    result: list[dict[str, Any]] = []
    found = False
    for condition in existing:
        if condition.get("type") != "DisruptionAllowed":
            result.append(dict(condition))
            continue
        found = True
        moment = condition.get("lastTransitionTime") if condition.get("status") == wanted["status"] else None
        result.append(
            {
                "type": "DisruptionAllowed",
                **wanted,
                "observedGeneration": observed_generation,
                "lastTransitionTime": moment or runtime.now_text(),
            }
        )
    if not found:
        result.append(
            {
                "type": "DisruptionAllowed",
                **wanted,
                "observedGeneration": observed_generation,
                "lastTransitionTime": runtime.now_text(),
            }
        )
    return result


def _selector(pdb: Mapping[str, Any]) -> selectors.LabelSelector | None:
    """The PDB's selector; None (matches nothing) when it is missing or does not parse."""
    found = (pdb.get("spec") or {}).get("selector")
    if found is None:
        return None
    try:
        return selectors.selector_from_match(found)
    except selectors.SelectorError:
        return None


# the eviction subresource


def _too_many_requests(message: str, retry_after: int = 0) -> status.ApiError:
    details: dict[str, Any] = {"causes": [{"reason": "DisruptionBudget", "message": message}]}
    headers = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return status.ApiError(
        429,
        "TooManyRequests",
        "Cannot evict pod as it would violate the pod's disruption budget.",
        details=details,
        headers=headers,
    )


def check_eviction(ctx: runtime.Context, pod: Mapping[str, Any], *, dry_run: bool = False) -> None:
    """Allow the eviction of ``pod`` (recording it in its PDB's status) or raise the API server's refusal.

    ``dry_run``: decide the same, but record nothing (a dry-run eviction leaves the budget as it is).
    """
    metadata = pod["metadata"]
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed", "Pending") or metadata.get("deletionTimestamp"):
        return
    namespace = str(metadata.get("namespace") or "")
    labels = metadata.get("labels") or {}
    covering = []
    for pdb in ctx.list(PDBS, namespace):
        selector = _selector(pdb)
        if selector is None or selector.empty or not selector.matches(labels):
            continue
        covering.append(pdb)
    if not covering:
        return
    if len(covering) > 1:
        raise status.ApiError(
            500, "", "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
        )
    pdb = covering[0]
    pdb_status = pdb.get("status") or {}
    current, desired = int(pdb_status.get("currentHealthy") or 0), int(pdb_status.get("desiredHealthy") or 0)
    if not endpoints.pod_ready(pod):
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy")
        if policy == "AlwaysAllow" or current >= desired > 0:
            return
    name = str(pdb["metadata"]["name"])
    if int(pdb_status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 1):
        raise _too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)
    allowed = int(pdb_status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise status.forbidden(
            f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions allowed is negative',
            plural="poddisruptionbudgets",
            group="policy",
            name=name,
        )
    if allowed == 0:
        raise _too_many_requests(
            f"The disruption budget {name} needs {desired} healthy pods and has {current} currently"
        )
    if dry_run:
        return
    new_status = copy.deepcopy(pdb_status)
    new_status["disruptionsAllowed"] = allowed - 1
    if allowed - 1 == 0:
        new_status["conditions"] = disruption_allowed_condition(
            list(new_status.get("conditions") or []), 0, int(new_status.get("observedGeneration") or 0)
        )
    disrupted = dict(new_status.get("disruptedPods") or {})
    disrupted[str(metadata["name"])] = _timestamp(time.time())
    new_status["disruptedPods"] = disrupted
    ctx.update(PDBS, {**pdb, "status": new_status}, EVICTION_MANAGER, subresource="status")


# the controller


def _post_event(
    ctx: runtime.Context, obj: Mapping[str, Any], kind: str, reason: str, message: str, source: str, **extra: str
) -> None:
    """Post an Event; as with a real event recorder, one that cannot be posted is logged and stops nothing."""
    try:
        ctx.event(obj, kind, reason, message, source, **extra)
    except status.ApiError as error:
        logger.warning("%s: could not post the Event %s %s: %s", source, reason, message, error.message)


class DisruptionController(runtime.Controller):
    """PodDisruptionBudget status from the pods each budget selects."""

    name = "disruption-controller"
    watches = (PDBS, PODS, DEPLOYMENTS, REPLICASETS, STATEFULSETS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.budgets: dict[str, dict[str, selectors.LabelSelector | None]] = {}
        """Namespace → PDB name → its selector."""
        self.scales: dict[tuple[str, str, str], Any] = {}
        """Workloads' desired replicas as last seen, so status-only changes wake no budget."""
        self.health: dict[str, dict[str, tuple[Any, ...]]] = {}
        """Namespace → pod → what of it a budget counts (labels, ready, deleting, phase, controller)."""

    def _observe_pdb(self, event: Event) -> list[runtime.Key]:
        name = str(event.obj["metadata"]["name"])
        if event.type == "DELETED":
            self.budgets.get(event.namespace, {}).pop(name, None)
            return []
        self.budgets.setdefault(event.namespace, {})[name] = _selector(event.obj)
        return [(PDBS, event.namespace, name)]

    def _budgets_for(self, namespace: str, labels: Mapping[str, Any] | None) -> set[str]:
        return {
            name
            for name, selector in self.budgets.get(namespace, {}).items()
            if selector is not None and selector.matches(labels or {})
        }

    def _observe_pod(self, event: Event) -> list[runtime.Key]:
        pod = event.obj
        known = self.health.setdefault(event.namespace, {})
        pod_name = str(pod["metadata"]["name"])
        previous = known.get(pod_name)
        if event.type == "DELETED":
            known.pop(pod_name, None)
            labels = previous[0] if previous else pod["metadata"].get("labels")
            return [(PDBS, event.namespace, name) for name in sorted(self._budgets_for(event.namespace, labels))]
        labels = pod["metadata"].get("labels") or {}
        view = (
            dict(labels),
            endpoints.pod_ready(pod),
            bool(pod["metadata"].get("deletionTimestamp")),
            (pod.get("status") or {}).get("phase"),
            repr(_controller_of(pod)),
        )
        if view == previous:
            return []
        known[pod_name] = view
        names = self._budgets_for(event.namespace, labels)
        if previous is not None:
            names |= self._budgets_for(event.namespace, previous[0])
        return [(PDBS, event.namespace, name) for name in sorted(names)]

    def _observe_workload(self, event: Event) -> list[runtime.Key]:
        key = (event.resource, event.namespace, str(event.obj["metadata"]["name"]))
        replicas = None if event.type == "DELETED" else (event.obj.get("spec") or {}).get("replicas", 1)
        if self.scales.get(key, "unseen") == replicas:
            return []
        self.scales[key] = replicas
        return [(PDBS, event.namespace, name) for name in sorted(self.budgets.get(event.namespace, {}))]

    def initial_keys(self) -> Iterable[runtime.Key]:
        keys: list[runtime.Key] = []
        for pdb in self.ctx.list(PDBS):
            keys += self._observe_pdb(Event(0, "ADDED", PDBS, str(pdb["metadata"].get("namespace") or ""), pdb))
        for pod in self.ctx.list(PODS):
            self._observe_pod(Event(0, "ADDED", PODS, str(pod["metadata"].get("namespace") or ""), pod))
        return keys

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == PDBS:
            return self._observe_pdb(event)
        if event.resource == PODS:
            return self._observe_pod(event)
        return self._observe_workload(event)

    def _selected(self, pdb: Mapping[str, Any]) -> list[dict[str, Any]]:
        selector = _selector(pdb)
        if selector is None:
            return []
        namespace = str(pdb["metadata"].get("namespace") or "")
        found = []
        for pod_name in self.health.get(namespace, {}):
            pod = self.ctx.get(PODS, namespace, pod_name)
            if pod is not None and selector.matches(pod["metadata"].get("labels") or {}):
                found.append(pod)
        return sorted(found, key=lambda pod: str(pod["metadata"]["name"]))

    async def reconcile(self, key: runtime.Key) -> float | None:
        _, namespace, name = key
        pdb = self.ctx.get(PDBS, namespace, name)
        if pdb is None:
            return None
        pods = self._selected(pdb)
        if not pods:
            _post_event(self.ctx, pdb, "Normal", "NoPods", "No matching pods found", self.name)
        try:
            expected, desired, unmanaged = expected_and_desired(self.ctx, pdb, pods)
        except ValueError as error:
            _post_event(
                self.ctx,
                pdb,
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {error}",
                self.name,
            )
            self._fail_safe(pdb, str(error))
            return None
        if unmanaged:
            _post_event(
                self.ctx,
                pdb,
                "Warning",
                "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: {_selector_text(pdb)}) were found to be "
                "unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in "
                'undefined behavior. To account for these pods please set ".spec.minAvailable" field of the PDB to '
                "an integer value.",
                self.name,
            )
        now = time.time()
        timeout = self.ctx.settings.scaled(DELETION_TIMEOUT)
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        disrupted: dict[str, str] = {}
        recheck: float | None = None
        for pod in pods:
            pod_name = str(pod["metadata"]["name"])
            if pod["metadata"].get("deletionTimestamp") or pod_name not in recorded:
                continue
            when = _parse_time(recorded[pod_name])
            if when is None or when + timeout < now:
                _post_event(
                    self.ctx,
                    pod,
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {namespace}/{name} to be deleted but it wasn't",
                    self.name,
                )
                continue
            disrupted[pod_name] = recorded[pod_name]
            wait = when + timeout - now
            recheck = wait if recheck is None else min(recheck, wait)
        healthy = sum(
            1
            for pod in pods
            if not pod["metadata"].get("deletionTimestamp")
            and str(pod["metadata"]["name"]) not in disrupted
            and endpoints.pod_ready(pod)
        )
        allowed = healthy - desired if expected > 0 else 0
        self._write(pdb, healthy, desired, expected, max(allowed, 0), disrupted)
        return recheck

    def _write(
        self, pdb: dict[str, Any], healthy: int, desired: int, expected: int, allowed: int, disrupted: dict[str, str]
    ) -> None:
        generation = int(pdb["metadata"].get("generation") or 1)
        old = pdb.get("status") or {}
        conditions = disruption_allowed_condition(list(old.get("conditions") or []), allowed, generation)
        new_status: dict[str, Any] = {
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "disruptionsAllowed": allowed,
            "expectedPods": expected,
            "observedGeneration": generation,
            "conditions": conditions,
        }
        if disrupted:
            new_status["disruptedPods"] = disrupted
        if new_status != old:
            self.ctx.update(PDBS, {**pdb, "status": new_status}, self.name, subresource="status")

    def _fail_safe(self, pdb: dict[str, Any], error: str) -> None:
        old = pdb.get("status") or {}
        new_status = {
            **old,
            "disruptionsAllowed": 0,
            "conditions": disruption_allowed_condition(
                list(old.get("conditions") or []), 0, int(old.get("observedGeneration") or 0), error
            ),
        }
        if new_status != old:
            self.ctx.update(PDBS, {**pdb, "status": new_status}, self.name, subresource="status")


def _selector_text(pdb: Mapping[str, Any]) -> str:
    """The selector as Go's %v prints a *metav1.LabelSelector, roughly: &LabelSelector{MatchLabels:map[...],...}."""
    selector = (pdb.get("spec") or {}).get("selector") or {}
    labels = " ".join(f"{k}:{v}" for k, v in sorted((selector.get("matchLabels") or {}).items()))
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},MatchExpressions:[]LabelSelectorRequirement{{}},}}"
    )


COMPONENTS: list[type[runtime.Controller]] = [DisruptionController]
