"""Suspect changes: the Releases and Changes that acted on an incident's service shortly before it was triggered.

When something breaks, the first question is what changed. An incident's
``status.suspectChanges`` answers it with the Releases and Changes of its namespace that
touched its workload or service within the SupportPolicy's ``spec.detection.suspectLookback``
(default 2h) before a moment the incident was triggered (opened, or reopened), newest first.

What counts as touching, and when:

- A Release is the incident's when its ``spec.workloadRef`` names the incident's workload
  (kind ``Deployment`` unless given, in ``spec.targetNamespace`` or the Release's own
  namespace), or its service (``spec.service``, else its name) is the incident's
  ``spec.service``. It acted at ``status.lastAppliedAt``, with ``status.revision``.
- A Change is the incident's when its ``spec.releaseRef`` names such a Release. It acted at
  ``status.completedAt``, else ``status.startedAt``, with ``spec.revision``.

Only what has acted is a suspect: a Release never applied or a Change not yet started
changed nothing, so until the controllers of those kinds act the list stays empty. Pure:
bodies in, dicts out; the caller reads and writes.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.engine import durations, problems, sla
from upkeep.model import errors

__all__ = ["DEFAULT_LOOKBACK", "MAX_SUSPECTS", "Suspect", "lookback_of", "merge", "suspects_for"]

DEFAULT_LOOKBACK = datetime.timedelta(hours=2)
"""How far back before an incident changes are suspects when the SupportPolicy does not say: the CRD's default."""
MAX_SUSPECTS = 20
"""Suspects kept on an incident, the newest: a busy service's every release must not bloat the object."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Suspect:
    """One Release or Change that acted on the incident's service before it was triggered."""

    kind: str
    """``Release`` or ``Change``."""
    name: str
    """In the incident's namespace."""
    revision: str
    """The revision it applied ("" when it does not say)."""
    at: datetime.datetime
    """When it acted."""

    def to_dict(self) -> dict[str, Any]:
        """The entry of ``status.suspectChanges``."""
        out: dict[str, Any] = {"kind": self.kind, "name": self.name}
        if self.revision:
            out["revision"] = self.revision
        out["at"] = sla.format_time(self.at)
        return out


def lookback_of(policy_spec: Mapping[str, Any] | None) -> datetime.timedelta:
    """``spec.detection.suspectLookback`` of a SupportPolicy (default 2h); ``SpecError`` names it when unreadable."""
    value = _mapping(_mapping(policy_spec).get("detection")).get("suspectLookback")
    if value is None:
        return DEFAULT_LOOKBACK
    try:
        return durations.parse_duration(str(value))
    except durations.DurationError as error:
        raise errors.SpecError(
            f"spec.detection.suspectLookback: {error}", field="spec.detection.suspectLookback"
        ) from None


def _namespace(body: Mapping[str, Any]) -> str:
    return str(_mapping(body.get("metadata")).get("namespace") or "")


def _name(body: Mapping[str, Any]) -> str:
    return str(_mapping(body.get("metadata")).get("name") or "")


def _is_the_incidents(release: Mapping[str, Any], incident: Mapping[str, Any]) -> bool:
    """Whether a Release delivers the incident's workload or service."""
    spec = _mapping(release.get("spec"))
    incident_spec = _mapping(incident.get("spec"))
    service = str(incident_spec.get("service") or "")
    if service and str(spec.get("service") or _name(release)) == service:
        return True
    workload = _mapping(incident_spec.get("workload"))
    target = _mapping(spec.get("workloadRef"))
    if not workload or not target.get("name"):
        return False
    where = str(spec.get("targetNamespace") or _namespace(release))
    return (
        str(target.get("kind") or "Deployment") == str(workload.get("kind") or "")
        and str(target["name"]) == str(workload.get("name") or "")
        and where == str(workload.get("namespace") or _namespace(incident))
    )


def _within(at: datetime.datetime, moments: Sequence[datetime.datetime], lookback: datetime.timedelta) -> bool:
    return any(moment - lookback <= at <= moment for moment in moments)


def suspects_for(
    incident: Mapping[str, Any],
    releases: Iterable[Mapping[str, Any]],
    changes: Iterable[Mapping[str, Any]],
    lookback: datetime.timedelta,
) -> list[Suspect]:
    """The Releases and Changes of the incident's namespace that acted within ``lookback`` before it was triggered.

    Each moment the incident was triggered (``problems.triggered_moments``) opens a window
    ``[moment - lookback, moment]``; what acted inside one of them is a suspect. Newest
    first, at most ``MAX_SUSPECTS``.
    """
    namespace = _namespace(incident)
    moments = problems.triggered_moments(incident)
    if not moments:
        return []
    found: list[Suspect] = []
    mine: set[str] = set()
    for release in releases:
        if _namespace(release) != namespace or not _is_the_incidents(release, incident):
            continue
        mine.add(_name(release))
        status = _mapping(release.get("status"))
        at = sla.parse_time(status.get("lastAppliedAt"))
        if at is not None and _within(at, moments, lookback):
            found.append(Suspect("Release", _name(release), str(status.get("revision") or ""), at))
    for change in changes:
        spec = _mapping(change.get("spec"))
        if _namespace(change) != namespace or str(_mapping(spec.get("releaseRef")).get("name") or "") not in mine:
            continue
        status = _mapping(change.get("status"))
        at = sla.parse_time(status.get("completedAt")) or sla.parse_time(status.get("startedAt"))
        if at is not None and _within(at, moments, lookback):
            found.append(Suspect("Change", _name(change), str(spec.get("revision") or ""), at))
    found.sort(key=lambda suspect: (suspect.at, suspect.kind, suspect.name), reverse=True)
    return found[:MAX_SUSPECTS]


def _key(entry: Mapping[str, Any]) -> tuple[str, str, str]:
    return str(entry.get("kind") or ""), str(entry.get("name") or ""), str(entry.get("revision") or "")


def merge(recorded: Any, found: Sequence[Suspect]) -> list[dict[str, Any]]:
    """``status.suspectChanges`` with ``found`` added to what was ``recorded``: once each, newest first, bounded.

    What was recorded stays (a Change later deleted was still a suspect when the incident
    opened); a Change seen again with a later time is kept at the later one.
    """
    entries: dict[tuple[str, str, str], dict[str, Any]] = {}
    for item in recorded if isinstance(recorded, list) else ():
        if isinstance(item, Mapping) and item.get("kind") and item.get("name"):
            entries[_key(item)] = dict(item)
    for suspect in found:
        entry = suspect.to_dict()
        known = entries.get(_key(entry))
        if known is None or (sla.parse_time(known.get("at")) or suspect.at) < suspect.at:
            entries[_key(entry)] = entry
    epoch = datetime.datetime.min.replace(tzinfo=datetime.UTC)
    ordered = sorted(
        entries.values(),
        key=lambda entry: (sla.parse_time(entry.get("at")) or epoch, *_key(entry)),
        reverse=True,
    )
    return ordered[:MAX_SUSPECTS]
