"""When a rollout is done, as ``kubectl rollout status`` says it: shared by remediation actions and GitOps health.

Pure. ``rollout_state`` says done when the workload's controller has seen the latest spec and every
replica is updated and available, failed when a Deployment is past its progress deadline, and
running otherwise, with a message that says what it waits for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ROLLOUT_KINDS", "RolloutState", "rollout_state"]

ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
"""The kinds with a pod template that a changed template rolls out (``kubectl rollout`` supports them)."""


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout stands: Succeeded (done), Failed (past its deadline) or Running, and why."""

    phase: Literal["Succeeded", "Failed", "Running"]
    message: str


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return {}


def rollout_state(obj: Mapping[str, Any]) -> RolloutState:
    """What ``kubectl rollout status`` would say of a Deployment, StatefulSet or DaemonSet."""
    kind = obj.get("kind")
    name = (obj.get("metadata") or {}).get("name", "")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    generation = _int((obj.get("metadata") or {}).get("generation"))
    if _int(status.get("observedGeneration")) < generation:
        return RolloutState("Running", f"waiting for the {kind} controller to see {kind} {name}'s latest spec")
    if kind == "DaemonSet":
        desired = _int(status.get("desiredNumberScheduled"))
        updated = _int(status.get("updatedNumberScheduled"))
        available = _int(status.get("numberAvailable"))
        if updated < desired:
            return RolloutState("Running", f"{updated} of {desired} updated pods of DaemonSet {name} scheduled")
        if available < desired:
            return RolloutState("Running", f"{available} of {desired} updated pods of DaemonSet {name} available")
        return RolloutState("Succeeded", f"DaemonSet {name} rolled out")
    replicas = _int(spec.get("replicas", 1))
    updated = _int(status.get("updatedReplicas"))
    if kind == "StatefulSet":
        ready = _int(status.get("readyReplicas"))
        if updated < replicas or ready < replicas:
            return RolloutState("Running", f"{min(updated, ready)} of {replicas} pods of StatefulSet {name} updated")
        if status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
            return RolloutState("Running", f"StatefulSet {name} is finishing its rolling update")
        return RolloutState("Succeeded", f"StatefulSet {name} rolled out: {replicas} pods ready")
    progressing = _condition(obj, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return RolloutState("Failed", f"Deployment {name} exceeded its progress deadline")
    total = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    ready = _int(status.get("readyReplicas"))
    if updated < replicas:
        return RolloutState("Running", f"{updated} of {replicas} new replicas of Deployment {name} updated")
    if total > updated:
        return RolloutState("Running", f"{total - updated} old replicas of Deployment {name} pending termination")
    if available < updated or ready < updated:
        return RolloutState("Running", f"{min(available, ready)} of {updated} updated replicas of {name} available")
    return RolloutState("Succeeded", f"Deployment {name} rolled out: {replicas} of {replicas} replicas ready")
