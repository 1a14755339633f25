"""Rollouts as ``kubectl rollout`` sees them: revisions, the template to roll back to, and when one is done.

Pure functions over object bodies. ``rollback_target`` picks the ReplicaSet ``kubectl rollout undo``
would pick (the previous revision: the second highest of the Deployment's ReplicaSets, or the one
asked for); ``rollback_template`` is its pod template without the ``pod-template-hash`` label, which
the Deployment controller then recognises as that ReplicaSet's and scales it back up (no new
ReplicaSet). ``rollout_state`` says what ``kubectl rollout status`` says: done when the controller
has seen the latest spec and every replica is updated and available, failed when the Deployment is
past its progress deadline.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "HASH_LABEL",
    "REVISION",
    "ROLLOUT_KINDS",
    "RolloutError",
    "RolloutState",
    "owned_by",
    "revision",
    "rollback_target",
    "rollback_template",
    "rollout_state",
    "same_template",
]

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
ROLLOUT_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
"""The kinds with a pod template that a changed template rolls out (``kubectl rollout`` supports them)."""


class RolloutError(ValueError):
    """No revision to roll back to (the message says why, for people)."""


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


def revision(obj: Mapping[str, Any]) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation (0 when absent or unreadable)."""
    return _int(((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION))


def owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    """Whether ``obj`` has an owner reference to the object with ``uid``."""
    return any(ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(dict(template))
    metadata = dict(copied.get("metadata") or {})
    labels = {key: value for key, value in (metadata.get("labels") or {}).items() if key != HASH_LABEL}
    if labels:
        metadata["labels"] = labels
    else:
        metadata.pop("labels", None)
    if metadata:
        copied["metadata"] = metadata
    else:
        copied.pop("metadata", None)
    return copied


def same_template(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two pod templates are the same, whatever their ``pod-template-hash`` labels."""
    return _without_hash(first) == _without_hash(second)


def rollback_template(replica_set: Mapping[str, Any]) -> dict[str, Any]:
    """The pod template to put back into the Deployment: the ReplicaSet's, without its hash label."""
    return _without_hash((replica_set.get("spec") or {}).get("template") or {})


def rollback_target(replica_sets: Iterable[Mapping[str, Any]], to_revision: int | None = None) -> Mapping[str, Any]:
    """The ReplicaSet to roll back to: ``to_revision``'s, or the previous revision's (``RolloutError`` if none).

    The previous revision is the second highest, as ``kubectl rollout undo`` takes it: the highest
    is the Deployment's current one.
    """
    by_revision = {revision(rs): rs for rs in replica_sets if revision(rs) > 0}
    if to_revision:
        if to_revision not in by_revision:
            known = ", ".join(str(number) for number in sorted(by_revision)) or "none"
            raise RolloutError(f"revision {to_revision} not found (revisions kept: {known})")
        return by_revision[to_revision]
    ordered = sorted(by_revision)
    if len(ordered) < 2:
        raise RolloutError("no previous revision to roll back to (the Deployment has only one)")
    return by_revision[ordered[-2]]


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
