"""Health of a live object, per kind, and of a Release's objects together.

Pure: the Release controller reads the live objects and asks ``assess`` what each one's state
means, then ``summarize`` for the Release as a whole. The verdicts are those a person reading
``kubectl`` would reach:

- Deployment, StatefulSet, DaemonSet: what ``kubectl rollout status`` says (``engine.rollouts``,
  shared with the remediation actions, so "rolled out" means one thing in Upkeep); a Deployment past
  its progress deadline is Degraded.
- Job: Complete is Healthy, Failed is Degraded, anything else is still running.
- Pod: Ready or Succeeded is Healthy; Failed, or a container waiting in CrashLoopBackOff,
  ImagePullBackOff and the like (it will not get better by waiting) is Degraded.
- Service: a LoadBalancer without an ingress address yet is Progressing.
- PersistentVolumeClaim: Bound is Healthy, Lost is Degraded, Pending is Progressing.
- ReplicaSet: every replica ready and available.
- Anything else, custom resources included, by its conditions in kstatus style: ``Stalled=True`` is
  Degraded; ``Reconciling=True`` or a status older than the spec is Progressing; ``Ready`` (or
  ``Available``) True is Healthy, False is Degraded unless a ``Progressing`` condition is True, and
  Unknown is Progressing. An object without such conditions is Healthy once it exists, because
  nothing else can be known of it.

An object being deleted is Progressing whatever its kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from upkeep.engine import rollouts

__all__ = ["SEVERITY", "Health", "HealthStatus", "assess", "display_name", "summarize"]

HealthStatus = Literal["Healthy", "Progressing", "Degraded", "Unknown"]

SEVERITY: dict[HealthStatus, int] = {"Healthy": 0, "Progressing": 1, "Unknown": 2, "Degraded": 3}
"""How bad each status is, for ``summarize``: a definite failure outranks not knowing, and not
knowing outranks waiting, so a Release is never called Progressing while one of its objects could
not be assessed."""

STUCK_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
"""Reasons a container waits that do not resolve by waiting longer: the pod is Degraded."""

_FROM_ROLLOUT: dict[str, HealthStatus] = {"Succeeded": "Healthy", "Failed": "Degraded", "Running": "Progressing"}

_SHOWN = 3
"""How many unhealthy objects a summary names before it says "and N more"."""


@dataclass(frozen=True)
class Health:
    """One verdict: the status and, for people, why."""

    status: HealthStatus
    message: str


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _conditions(obj: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = _mapping(obj.get("status")).get("conditions")
    if not isinstance(found, list):
        return {}
    return {str(item["type"]): item for item in found if isinstance(item, Mapping) and item.get("type")}


def _said(condition: Mapping[str, Any]) -> str:
    """A condition's reason and message, as one phrase (empty when it has neither)."""
    reason, message = str(condition.get("reason") or ""), str(condition.get("message") or "")
    return f"{reason}: {message}" if reason and message else reason or message


def display_name(obj: Mapping[str, Any]) -> str:
    """``Deployment/shop/web`` (``Namespace/shop`` for cluster-scoped objects): how summaries name an object."""
    metadata = _mapping(obj.get("metadata"))
    parts = [str(obj.get("kind") or "?"), str(metadata.get("namespace") or ""), str(metadata.get("name") or "?")]
    return "/".join(part for part in parts if part)


def _workload(obj: Mapping[str, Any]) -> Health:
    state = rollouts.rollout_state(obj)
    return Health(_FROM_ROLLOUT[state.phase], state.message)


def _replica_set(obj: Mapping[str, Any], name: str) -> Health:
    status = _mapping(obj.get("status"))
    wanted = _int(_mapping(obj.get("spec")).get("replicas", 1))
    ready, available = _int(status.get("readyReplicas")), _int(status.get("availableReplicas"))
    if _int(status.get("observedGeneration")) < _int(_mapping(obj.get("metadata")).get("generation")):
        return Health("Progressing", f"waiting for the ReplicaSet controller to see ReplicaSet {name}'s latest spec")
    if min(ready, available) < wanted:
        return Health("Progressing", f"{min(ready, available)} of {wanted} replicas of ReplicaSet {name} available")
    return Health("Healthy", f"ReplicaSet {name}: {wanted} of {wanted} replicas available")


def _job(obj: Mapping[str, Any], name: str) -> Health:
    conditions = _conditions(obj)
    for kind in ("Failed", "FailureTarget"):
        failed = conditions.get(kind)
        if failed is not None and failed.get("status") == "True":
            return Health("Degraded", f"Job {name} failed: {_said(failed) or 'no reason given'}")
    for kind in ("Complete", "SuccessCriteriaMet"):
        complete = conditions.get(kind)
        if complete is not None and complete.get("status") == "True":
            return Health("Healthy", f"Job {name} completed")
    suspended = conditions.get("Suspended")
    if _mapping(obj.get("spec")).get("suspend") is True or (suspended or {}).get("status") == "True":
        return Health("Progressing", f"Job {name} is suspended")
    status = _mapping(obj.get("status"))
    completions = _mapping(obj.get("spec")).get("completions")
    of = f" of {completions}" if completions is not None else ""
    return Health(
        "Progressing",
        f"Job {name} is running: {_int(status.get('active'))} active, {_int(status.get('succeeded'))}{of} succeeded",
    )


def _stuck_container(obj: Mapping[str, Any]) -> str | None:
    """``container web: CrashLoopBackOff (back-off 5m0s ...)`` for the first container stuck waiting, else None."""
    status = _mapping(obj.get("status"))
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = _mapping(_mapping(_mapping(container).get("state")).get("waiting"))
            reason = str(waiting.get("reason") or "")
            if reason in STUCK_WAITING_REASONS:
                message = str(waiting.get("message") or "")
                detail = f" ({message})" if message else ""
                return f"container {_mapping(container).get('name', '?')}: {reason}{detail}"
    return None


def _pod(obj: Mapping[str, Any], name: str) -> Health:
    status = _mapping(obj.get("status"))
    phase = str(status.get("phase") or "")
    if phase == "Succeeded":
        return Health("Healthy", f"Pod {name} completed")
    if phase == "Failed":
        why = str(status.get("reason") or status.get("message") or "a container exited with an error")
        return Health("Degraded", f"Pod {name} failed: {why}")
    stuck = _stuck_container(obj)
    if stuck is not None:
        return Health("Degraded", f"Pod {name}: {stuck}")
    if phase == "Unknown":
        return Health("Unknown", f"Pod {name}: the node stopped reporting its state")
    conditions = _conditions(obj)
    scheduled = conditions.get("PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return Health("Progressing", f"Pod {name} is not scheduled yet: {_said(scheduled) or 'no reason given'}")
    ready = conditions.get("Ready")
    if phase == "Running" and ready is not None and ready.get("status") == "True":
        return Health("Healthy", f"Pod {name} is running and ready")
    return Health("Progressing", f"Pod {name} is {phase or 'Pending'}, not ready yet")


def _service(obj: Mapping[str, Any], name: str) -> Health:
    if _mapping(obj.get("spec")).get("type") == "LoadBalancer":
        ingress = _mapping(_mapping(obj.get("status")).get("loadBalancer")).get("ingress")
        if not ingress:
            return Health("Progressing", f"Service {name} waits for its load balancer's address")
    return Health("Healthy", f"Service {name} exists")


def _claim(obj: Mapping[str, Any], name: str) -> Health:
    phase = str(_mapping(obj.get("status")).get("phase") or "Pending")
    if phase == "Bound":
        return Health("Healthy", f"PersistentVolumeClaim {name} is bound")
    if phase == "Lost":
        return Health("Degraded", f"PersistentVolumeClaim {name} lost its volume")
    return Health("Progressing", f"PersistentVolumeClaim {name} is {phase}, waiting for a volume")


def _by_conditions(obj: Mapping[str, Any], kind: str, name: str) -> Health:
    """kstatus-style health from conditions, for custom resources and every kind not known above."""
    conditions = _conditions(obj)
    stalled = conditions.get("Stalled")
    if stalled is not None and stalled.get("status") == "True":
        return Health("Degraded", f"{kind} {name} is stalled: {_said(stalled) or 'no reason given'}")
    observed = _mapping(obj.get("status")).get("observedGeneration")
    generation = _mapping(obj.get("metadata")).get("generation")
    if observed is not None and generation is not None and _int(observed) < _int(generation):
        return Health("Progressing", f"waiting for the controller of {kind} {name} to see its latest spec")
    reconciling = conditions.get("Reconciling")
    if reconciling is not None and reconciling.get("status") == "True":
        return Health("Progressing", f"{kind} {name} is reconciling: {_said(reconciling) or 'no reason given'}")
    summary = conditions.get("Ready") or conditions.get("Available")
    if summary is None:
        return Health("Healthy", f"{kind} {name} exists")
    said = _said(summary)
    detail = f": {said}" if said else ""
    if summary.get("status") == "True":
        return Health("Healthy", f"{kind} {name} is {summary['type']}{detail}")
    progressing = conditions.get("Progressing")
    if summary.get("status") == "False" and not (progressing is not None and progressing.get("status") == "True"):
        return Health("Degraded", f"{kind} {name} is not {summary['type']}{detail}")
    return Health("Progressing", f"{kind} {name} is not {summary['type']} yet{detail}")


def assess(live: Mapping[str, Any]) -> Health:
    """The health of one live object (see the module docstring for each kind)."""
    kind = str(live.get("kind") or "")
    metadata = _mapping(live.get("metadata"))
    name = str(metadata.get("name") or "")
    if not kind or not name:
        return Health("Unknown", "the object has no kind or no name, so its health cannot be assessed")
    if metadata.get("deletionTimestamp"):
        return Health("Progressing", f"{kind} {name} is being deleted")
    if kind in rollouts.ROLLOUT_KINDS:
        return _workload(live)
    if kind == "ReplicaSet":
        return _replica_set(live, name)
    if kind == "Job":
        return _job(live, name)
    if kind == "Pod":
        return _pod(live, name)
    if kind == "Service":
        return _service(live, name)
    if kind == "PersistentVolumeClaim":
        return _claim(live, name)
    return _by_conditions(live, kind, name)


def summarize(healths: Sequence[tuple[str, Health]]) -> Health:
    """The health of a set of objects: the worst status wins, and the message names who has it.

    ``healths`` pairs a display name (``display_name``) with its verdict. No objects is Healthy:
    a Release whose path holds nothing has nothing unwell.
    """
    if not healths:
        return Health("Healthy", "no objects")
    worst = max(SEVERITY[health.status] for _, health in healths)
    status = next(health.status for _, health in healths if SEVERITY[health.status] == worst)
    if status == "Healthy":
        count = len(healths)
        return Health("Healthy", f"{count} object{'s' if count != 1 else ''} healthy")
    named = [f"{name}: {health.message}" for name, health in healths if health.status == status]
    more = f"; and {len(named) - _SHOWN} more" if len(named) > _SHOWN else ""
    return Health(status, "; ".join(named[:_SHOWN]) + more)
