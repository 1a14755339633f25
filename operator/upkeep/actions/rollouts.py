"""Rollouts as ``kubectl rollout`` sees them: revisions, the template to roll back to, and when one is done.

Pure functions over object bodies. ``rollback_target`` picks the ReplicaSet ``kubectl rollout undo``
would pick (the previous revision: the second highest of the Deployment's ReplicaSets, or the one
asked for); ``rollback_template`` is its pod template without the ``pod-template-hash`` label, which
the Deployment controller then recognises as that ReplicaSet's and scales it back up (no new
ReplicaSet). ``rollout_state`` (from ``engine.rollouts``, which GitOps health shares) says what
``kubectl rollout status`` says.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

from upkeep.engine import rollouts

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
ROLLOUT_KINDS = rollouts.ROLLOUT_KINDS
RolloutState = rollouts.RolloutState
rollout_state = rollouts.rollout_state


class RolloutError(ValueError):
    """No revision to roll back to (the message says why, for people)."""


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


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
"""The pod template annotation ``kubectl rollout restart`` (and the rolloutRestart action) sets: a new revision
with the same pods, not a change."""
_RESTART_MARKS = (RESTARTED_AT, "upkeep.dev/action-key")
"""What a restart changes in a pod template: the restart time, and the rolloutRestart action's key
(``base.ACTION_KEY_ANNOTATION``, which it writes in the same patch)."""


def _without_restart(template: Mapping[str, Any]) -> dict[str, Any]:
    copied = _without_hash(template)
    metadata = dict(copied.get("metadata") or {})
    annotations = {
        key: value for key, value in (metadata.get("annotations") or {}).items() if key not in _RESTART_MARKS
    }
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if metadata:
        copied["metadata"] = metadata
    else:
        copied.pop("metadata", None)
    return copied


def rollback_target(replica_sets: Iterable[Mapping[str, Any]], to_revision: int | None = None) -> Mapping[str, Any]:
    """The ReplicaSet to roll back to: ``to_revision``'s, or the previous revision's (``RolloutError`` if none).

    The previous revision is the newest one before the current (the highest) whose pod template differs from
    the current one by more than a restart. ``kubectl rollout undo`` takes the second highest, which after a
    ``rollout restart`` is the same pods again: a crash loop that a restart did not mend would be "rolled back"
    to itself.
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
    current = _without_restart((by_revision[ordered[-1]].get("spec") or {}).get("template") or {})
    for number in reversed(ordered[:-1]):
        if _without_restart((by_revision[number].get("spec") or {}).get("template") or {}) != current:
            return by_revision[number]
    raise RolloutError(
        f"no previous revision to roll back to: revisions {', '.join(str(number) for number in ordered)} "
        "differ only by restarts"
    )


def _created(obj: Mapping[str, Any]) -> datetime.datetime | None:
    text = str((obj.get("metadata") or {}).get("creationTimestamp") or "")
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def rolled_out_at(replica_sets: Iterable[Mapping[str, Any]]) -> datetime.datetime | None:
    """When a Deployment's pods last changed: the creation time of the newest revision whose pod template differs
    from the revision before it by more than a restart. None when no revision replaced a different one (a new
    Deployment, or only restarts since its first revision): there is no rollout to blame and nothing to go back to.

    ``replica_sets``: the Deployment's ReplicaSets (owned by it). A rollback that brings an old ReplicaSet back
    gives it a new revision number but keeps its creation time, so a rollback to an old revision does not count
    as recent.
    """
    ordered = sorted((rs for rs in replica_sets if revision(rs) > 0), key=revision, reverse=True)
    for newer, older in itertools.pairwise(ordered):
        new_template = (newer.get("spec") or {}).get("template") or {}
        old_template = (older.get("spec") or {}).get("template") or {}
        if _without_restart(new_template) != _without_restart(old_template):
            return _created(newer)
    return None
