"""The arithmetic of a Deployment's rollout, as pkg/controller/deployment/util does it: pure functions.

maxSurge and maxUnavailable (integers or percentages, surge rounded up and unavailability down),
the pod-template-hash, revisions, how far the new ReplicaSet may grow, proportional scaling, and when
a rollout is complete, progressing or past its deadline. Deployments and ReplicaSets are the dicts
the API serves; nothing here writes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from upkeep.sandbox.simulation import workloads_pods

__all__ = [
    "DESIRED_REPLICAS",
    "HASH_LABEL",
    "MAX_REPLICAS",
    "REVISION",
    "REVISION_HISTORY",
    "deployment_complete",
    "deployment_progressing",
    "equal_ignore_hash",
    "get_condition",
    "get_proportion",
    "int_or_percent",
    "is_saturated",
    "max_revision",
    "max_surge",
    "max_unavailable",
    "new_condition",
    "new_rs_new_replicas",
    "pod_template_hash",
    "replicas",
    "resolve_fenceposts",
    "revision",
    "safe_encode",
    "set_condition",
]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO})
"""Deployment annotations a ReplicaSet does not inherit (deploymentutil.annotationsToSkip)."""
REVISION_HISTORY_CHARS = 2000
"""The deployment controller's limit on the revision-history annotation's length."""
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
"""rand.SafeEncodeString's alphabet: no vowels, no look-alikes."""


def replicas(obj: Mapping[str, Any]) -> int:
    """spec.replicas with the API's default of 1."""
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_count(obj: Mapping[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


# maxSurge and maxUnavailable


def int_or_percent(value: object, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an integer, or a percentage of ``total`` rounded up or down."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(
                f"invalid value for IntOrString: invalid type: string is not a percentage: {text}"
            ) from None
    percent = int(text[:-1])
    return -(-percent * total // 100) if round_up else percent * total // 100


def resolve_fenceposts(surge: object, unavailable: object, desired: int) -> tuple[int, int]:
    """maxSurge rounded up and maxUnavailable rounded down; never both zero (then one may be unavailable)."""
    resolved_surge = int_or_percent(0 if surge is None else surge, desired, round_up=True)
    resolved_unavailable = int_or_percent(0 if unavailable is None else unavailable, desired, round_up=False)
    if resolved_surge == 0 and resolved_unavailable == 0:
        resolved_unavailable = 1
    return resolved_surge, resolved_unavailable


def strategy(deployment: Mapping[str, Any]) -> str:
    """spec.strategy.type, RollingUpdate when unset (the API's default)."""
    return str(((deployment.get("spec") or {}).get("strategy") or {}).get("type") or "RollingUpdate")


def _rolling(deployment: Mapping[str, Any]) -> Mapping[str, Any]:
    rolling = ((deployment.get("spec") or {}).get("strategy") or {}).get("rollingUpdate")
    if rolling is None:
        return {"maxSurge": "25%", "maxUnavailable": "25%"}
    return {"maxSurge": rolling.get("maxSurge", "25%"), "maxUnavailable": rolling.get("maxUnavailable", "25%")}


def max_surge(deployment: Mapping[str, Any]) -> int:
    if strategy(deployment) != "RollingUpdate":
        return 0
    rolling = _rolling(deployment)
    return resolve_fenceposts(rolling["maxSurge"], rolling["maxUnavailable"], replicas(deployment))[0]


def max_unavailable(deployment: Mapping[str, Any]) -> int:
    wanted = replicas(deployment)
    if strategy(deployment) != "RollingUpdate" or wanted == 0:
        return 0
    rolling = _rolling(deployment)
    return min(resolve_fenceposts(rolling["maxSurge"], rolling["maxUnavailable"], wanted)[1], wanted)


def min_available(deployment: Mapping[str, Any]) -> int:
    """The fewest available pods the Available condition accepts (MaxUnavailable is 0 for Recreate)."""
    return replicas(deployment) - max_unavailable(deployment)


# templates and revisions


def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return value


def safe_encode(text: str) -> str:
    """rand.SafeEncodeString: each character mapped into an alphabet without vowels."""
    return "".join(_ALPHANUMS[ord(char) % len(_ALPHANUMS)] for char in text)


def _without_hash_label(template: Mapping[str, Any]) -> dict[str, Any]:
    copied = dict(template)
    metadata = dict(copied.get("metadata") or {})
    labels = {key: value for key, value in (metadata.get("labels") or {}).items() if key != HASH_LABEL}
    metadata["labels"] = labels
    copied["metadata"] = metadata
    return copied


def pod_template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """controller.ComputeHash in spirit: FNV-32a of the template (and the collision count), safely encoded.

    Equal templates (nulls and empty fields aside) give equal hashes; Kubernetes hashes Go's printout of
    the struct, so the value differs from a real cluster's, but it has the same shape and stability.
    """
    data = workloads_pods.canonical_json(_without_hash_label(template)).encode()
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0"
    return safe_encode(str(_fnv32a(data)))


def equal_ignore_hash(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """deploymentutil.EqualIgnoreHash: the same pod template, whatever their pod-template-hash labels."""
    return bool(
        workloads_pods.canonical(_without_hash_label(first)) == workloads_pods.canonical(_without_hash_label(second))
    )


def revision(obj: Mapping[str, Any]) -> int:
    """The deployment.kubernetes.io/revision annotation (0 when absent or unreadable)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION)
    try:
        return int(text) if text is not None else 0
    except ValueError:
        return 0


def max_revision(replica_sets: Iterable[Mapping[str, Any]]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def annotated_int(rs: Mapping[str, Any], key: str) -> int | None:
    text = ((rs.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def new_rs_annotations(
    deployment: Mapping[str, Any], rs_annotations: Mapping[str, str], new_revision: int, *, exists: bool
) -> dict[str, str]:
    """deploymentutil.SetNewReplicaSetAnnotations: the annotations the new ReplicaSet should carry.

    The Deployment's own annotations (but the controller's and kubectl's bookkeeping), the revision raised
    to ``new_revision`` (a rolled-back-to ReplicaSet remembers its old numbers in revision-history), and,
    on creation, the desired and maximum replica counts.
    """
    annotations = dict(rs_annotations)
    for key, value in ((deployment.get("metadata") or {}).get("annotations") or {}).items():
        if key not in SKIPPED_ANNOTATIONS:
            annotations[key] = value
    old_text = annotations.get(REVISION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return annotations
    if old < new_revision:
        annotations[REVISION] = str(new_revision)
        if old_text is not None:
            history = annotations.get(REVISION_HISTORY, "")
            if not history:
                annotations[REVISION_HISTORY] = old_text
            else:
                kept = history.split(",")
                total = len(history) + len(old_text) + 1
                while total > REVISION_HISTORY_CHARS and kept:
                    total -= len(kept.pop(0)) + 1
                if total <= REVISION_HISTORY_CHARS:
                    annotations[REVISION_HISTORY] = ",".join([*kept, old_text])
    if not exists:
        annotations[DESIRED_REPLICAS] = str(replicas(deployment))
        annotations[MAX_REPLICAS] = str(replicas(deployment) + max_surge(deployment))
    return annotations


# scaling


def new_rs_new_replicas(
    deployment: Mapping[str, Any], all_replica_sets: Sequence[Mapping[str, Any]], new_rs: Mapping[str, Any]
) -> int:
    """deploymentutil.NewRSNewReplicas: how big the new ReplicaSet may be now."""
    wanted = replicas(deployment)
    current = replicas(new_rs)
    if strategy(deployment) == "Recreate":
        return wanted
    total = sum(replicas(rs) for rs in all_replica_sets)
    ceiling = wanted + max_surge(deployment)
    if total >= ceiling:
        return current
    return current + min(ceiling - total, wanted - current)


def is_saturated(deployment: Mapping[str, Any], rs: Mapping[str, Any] | None) -> bool:
    """The new ReplicaSet holds every desired replica, all available, and says so in its annotation."""
    if rs is None:
        return False
    desired = annotated_int(rs, DESIRED_REPLICAS)
    wanted = replicas(deployment)
    return desired == wanted and replicas(rs) == wanted and status_count(rs, "availableReplicas") == wanted


def _round_half_away(value: float) -> int:
    return math.floor(value + 0.5) if value >= 0 else -math.floor(-value + 0.5)


def _fraction(rs: Mapping[str, Any], deployment: Mapping[str, Any]) -> int:
    if replicas(deployment) == 0:
        return -replicas(rs)
    deployment_replicas = replicas(deployment) + max_surge(deployment)
    annotated = annotated_int(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = status_count(deployment, "replicas")
    if annotated == 0:
        return 0
    return _round_half_away(replicas(rs) * deployment_replicas / annotated) - replicas(rs)


def get_proportion(rs: Mapping[str, Any], deployment: Mapping[str, Any], to_add: int, added: int) -> int:
    """deploymentutil.GetProportion: this ReplicaSet's share of a scaling of the whole Deployment."""
    if replicas(rs) == 0 or to_add in (0, added):
        return 0
    fraction = _fraction(rs, deployment)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


# progress


def deployment_complete(deployment: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    wanted = replicas(deployment)
    return (
        int(status.get("updatedReplicas") or 0) == wanted
        and int(status.get("replicas") or 0) == wanted
        and int(status.get("availableReplicas") or 0) == wanted
        and int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
    )


def deployment_progressing(old_status: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
    """More updated, ready or available pods, or fewer old ones, than the last status said."""

    def count(status: Mapping[str, Any], field: str) -> int:
        return int(status.get(field) or 0)

    old_old = count(old_status, "replicas") - count(old_status, "updatedReplicas")
    new_old = count(new_status, "replicas") - count(new_status, "updatedReplicas")
    return (
        count(new_status, "updatedReplicas") > count(old_status, "updatedReplicas")
        or new_old < old_old
        or count(new_status, "readyReplicas") > count(old_status, "readyReplicas")
        or count(new_status, "availableReplicas") > count(old_status, "availableReplicas")
    )


def has_progress_deadline(deployment: Mapping[str, Any]) -> bool:
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return deadline is None or int(deadline) != 2**31 - 1


def progress_deadline(deployment: Mapping[str, Any]) -> float:
    """spec.progressDeadlineSeconds with the API's default of 600."""
    deadline = (deployment.get("spec") or {}).get("progressDeadlineSeconds")
    return 600.0 if deadline is None else float(deadline)


# conditions


def get_condition(status: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def new_condition(kind: str, state: str, reason: str, message: str, moment: str) -> dict[str, Any]:
    """A Deployment condition as deploymentutil.NewDeploymentCondition makes it (fields in Go's order)."""
    return {
        "type": kind,
        "status": state,
        "lastUpdateTime": moment,
        "lastTransitionTime": moment,
        "reason": reason,
        "message": message,
    }


def remove_condition(status: dict[str, Any], kind: str) -> None:
    kept = [condition for condition in status.get("conditions") or [] if condition.get("type") != kind]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def set_condition(status: dict[str, Any], condition: dict[str, Any]) -> bool:
    """deploymentutil.SetDeploymentCondition: nothing when status and reason are unchanged; else replace it
    (at the end of the list), keeping lastTransitionTime when only the reason changed. True if it changed."""
    current = get_condition(status, condition["type"])
    if (
        current is not None
        and current.get("status") == condition["status"]
        and current.get("reason") == condition["reason"]
    ):
        return False
    if current is not None and current.get("status") == condition["status"]:
        condition = {**condition, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, condition["type"])
    status["conditions"] = [*(status.get("conditions") or []), condition]
    return True
