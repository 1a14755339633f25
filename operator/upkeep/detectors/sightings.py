"""Sightings: what a detector saw on one object, in the form the incident controller counts occurrences by.

A ``Sighting`` is an engine ``Signal`` plus what tells one occurrence from the next on the
same object: the object's instance (its uid, so a replacement pod is a new instance), the
episode (the failed condition's ``lastTransitionTime``, so a Deployment that recovers and
fails again is a new occurrence) and a failure counter the object raises itself (a pod's
container restarts). ``occurrences_since`` compares a sighting with the one counted before.

A ``Detection`` is everything a detector says about one object at one moment: its
sightings, and when the answer may change although the object does not (a grace period
ends), so the controller looks again then instead of polling.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from upkeep.engine import signals
from upkeep.model import resources

__all__ = ["Detection", "Sighting", "earliest", "instance_of", "occurrences_since"]


@dataclass(frozen=True)
class Sighting:
    """One signal seen on one object instance."""

    signal: signals.Signal
    """What failed, with its fingerprint."""
    instance: str
    """The object instance it was seen on: the uid (the name when there is none)."""
    episode: str = ""
    """Tells one failure of the instance from the next when nothing counts them: the failed
    condition's ``lastTransitionTime``. Empty for pods, whose restarts are counted instead."""
    failures: int = 0
    """A counter the instance raises with each repeat of its failure (a pod's container restarts); 0 where none."""

    @property
    def fingerprint(self) -> str:
        return self.signal.fingerprint


@dataclass(frozen=True)
class Detection:
    """What a detector says about one object at one moment."""

    subject: resources.ObjectRef
    """The object looked at (its namespace is empty for a node)."""
    sightings: tuple[Sighting, ...] = ()
    """The signals it shows now, at most one per fingerprint."""
    recheck_at: datetime.datetime | None = None
    """When the answer may change without the object changing; None when only a change of the object can change it."""

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(sighting.fingerprint for sighting in self.sightings)


def occurrences_since(previous: Sighting | None, current: Sighting) -> int:
    """How many new occurrences of its signal ``current`` is, given the sighting of it counted before.

    Nothing counted before, another instance or another episode: one. The same instance and
    episode: by how much its failure counter rose (0 when it did not; a counter that went
    down belongs to a reset and counts nothing).
    """
    if previous is None or previous.instance != current.instance or previous.episode != current.episode:
        return 1
    return max(0, current.failures - previous.failures)


def instance_of(body: Mapping[str, Any]) -> str:
    """The instance identity of an object body: its uid, else its name."""
    metadata = body.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return str(metadata.get("uid") or metadata.get("name") or "")


def earliest(moments: Iterable[datetime.datetime | None]) -> datetime.datetime | None:
    """The earliest of the moments given, ignoring None; None when there is none."""
    known = [moment for moment in moments if moment is not None]
    return min(known) if known else None
