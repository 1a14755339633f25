"""The decisions of the Problem controller: when recurring incidents make a Problem, what it links, its phase.

A Problem groups the incidents of one fingerprint family (``signals.family_of``): an
incident belongs to it when its fingerprint equals the family or extends it with further
``:``-separated parts. Once incidents of a family were triggered (opened, or reopened after
they were Mitigated or Resolved) ``spec.problems.recurrences`` times within
``spec.problems.window`` of the SupportPolicy (defaults 3 in 24h), a Problem is opened
(``recurrence``, ``new_problem``) and kept up to date with every incident of the family
(``update_problem``); each incident links back through ``incidents.link_problem``.

Its phase (``decide_phase``) runs Open → KnownError (``spec.knownError.rootCause`` is set) →
Resolved (``spec.resolution`` is set, or the Change in ``spec.fixChangeRef`` completed),
every move checked by ``model.lifecycle``. A resolved Problem whose family triggers an
incident again is Open again; the resolution that was in place before does not resolve it
a second time: a new ``spec.resolution`` (a new generation) or a Change completed after the
reopening does.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.engine import durations, signals, sla
from upkeep.engine import incidents as incident_rules
from upkeep.model import conditions, errors, lifecycle

__all__ = [
    "API_VERSION",
    "DEFAULT_RECURRENCES",
    "DEFAULT_WINDOW",
    "KIND",
    "REOPEN_NOTE",
    "ProblemDecision",
    "RecurrencePolicy",
    "belongs_to",
    "decide_phase",
    "new_problem",
    "policy_of",
    "problem_name",
    "recurrence",
    "triggered_moments",
    "update_problem",
]

API_VERSION = "upkeep.dev/v1alpha1"
KIND = "Problem"
DEFAULT_RECURRENCES = 3
"""Incidents of one family within the window that open a Problem: the SupportPolicy CRD's default."""
DEFAULT_WINDOW = datetime.timedelta(hours=24)
"""The period recurrences are counted over: the SupportPolicy CRD's default."""
REOPEN_NOTE = "reopened: the family triggered an incident after the resolution"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _name(body: Mapping[str, Any]) -> str:
    return str(_mapping(body.get("metadata")).get("name", ""))


def _fingerprint(body: Mapping[str, Any]) -> str:
    return str(_mapping(_mapping(body.get("spec")).get("signal")).get("fingerprint", ""))


def belongs_to(fingerprint: str, family: str) -> bool:
    """Whether an incident's fingerprint is of the family: equal, or extending it at a ``:``."""
    return bool(family) and (fingerprint == family or fingerprint.startswith(family + ":"))


@dataclass(frozen=True)
class RecurrencePolicy:
    """``spec.problems`` of a SupportPolicy, defaults applied."""

    recurrences: int = DEFAULT_RECURRENCES
    window: datetime.timedelta = DEFAULT_WINDOW


def policy_of(policy_spec: Mapping[str, Any]) -> RecurrencePolicy:
    """The recurrence rule of a SupportPolicy spec; ``SpecError`` names a field that cannot be read."""
    problems = _mapping(policy_spec.get("problems"))
    count = problems.get("recurrences", DEFAULT_RECURRENCES)
    if isinstance(count, bool) or not isinstance(count, int) or count < 2:
        raise errors.SpecError(
            f"spec.problems.recurrences: must be a whole number of incidents, at least 2, not {count!r}",
            field="spec.problems.recurrences",
        )
    window = problems.get("window")
    if window is None:
        return RecurrencePolicy(count, DEFAULT_WINDOW)
    try:
        return RecurrencePolicy(count, durations.parse_duration(str(window)))
    except durations.DurationError as error:
        raise errors.SpecError(f"spec.problems.window: {error}", field="spec.problems.window") from None


def triggered_moments(incident: Mapping[str, Any]) -> list[datetime.datetime]:
    """Every time an incident was triggered: first its ``triggeredAt``, then each reopening, oldest first.

    An incident without a status yet counts from its ``creationTimestamp``.
    """
    status = _mapping(incident.get("status"))
    moments = [
        sla.parse_time(entry.get("at"))
        for entry in _list(status.get("timeline"))
        if isinstance(entry, Mapping) and entry.get("to") == lifecycle.INCIDENT.initial
    ]
    first = (
        sla.parse_time(status.get("triggeredAt"))
        or sla.parse_time(status.get("firstSeen"))
        or sla.parse_time(_mapping(incident.get("metadata")).get("creationTimestamp"))
    )
    found = sorted({moment for moment in [first, *moments] if moment is not None})
    return found


def _first_triggered(incident: Mapping[str, Any], now: datetime.datetime) -> datetime.datetime:
    found = triggered_moments(incident)
    return found[0] if found else now


@dataclass(frozen=True)
class ProblemDecision:
    """Whether a family's incidents recur enough for a Problem."""

    open: bool
    """The family recurred often enough: open (or keep) a Problem."""
    incidents: tuple[str, ...]
    """Names of the family's incidents triggered (first or again) within the window, oldest first."""
    family: str
    """The fingerprint family (``spec.fingerprintFamily``)."""
    occurrences: int
    """How many times incidents of the family were triggered within the window (reopenings included)."""


def recurrence(
    incidents: Sequence[Mapping[str, Any]],
    policy_spec: Mapping[str, Any],
    now: datetime.datetime,
    *,
    family: str | None = None,
) -> ProblemDecision:
    """Whether the incidents of one fingerprint family (any phase) recur enough to open a Problem.

    ``family`` defaults to that of the oldest incident; incidents of other families are left
    out. A recurrence is a moment an incident of the family was triggered
    (``triggered_moments``): opened, or reopened after it was Mitigated or Resolved. Both
    count, because the incident controller reopens a Resolved incident when its signal comes
    back rather than open a new one: a workload that fails, recovers and fails again three
    times makes one incident triggered three times, and that is the recurring failure a
    Problem exists for. (A signal that comes back while the incident is still open does not
    trigger it again: that is one failure going on, counted in its ``occurrences``.) The
    moments within the policy's window before ``now`` are counted; an incident is named in
    ``incidents`` when at least one of its moments is.
    """
    rule = policy_of(policy_spec)
    ordered = sorted(incidents, key=lambda body: (_first_triggered(body, now), _name(body)))
    if family is None:
        family = signals.family_of(_fingerprint(ordered[0])) if ordered else ""
    start = now - rule.window
    members: list[str] = []
    count = 0
    for body in ordered:
        if not belongs_to(_fingerprint(body), family):
            continue
        recent = [moment for moment in triggered_moments(body) if moment >= start]
        if recent:
            members.append(_name(body))
            count += len(recent)
    return ProblemDecision(
        open=count >= rule.recurrences,
        incidents=tuple(members),
        family=family,
        occurrences=count,
    )


def problem_name(family: str) -> str:
    """The name of a family's Problem, from the family alone: one Problem per family, even with two replicas."""
    return incident_rules.name_for(family)


def new_problem(
    family: str,
    incidents: Sequence[Mapping[str, Any]],
    service: str,
    now: datetime.datetime,
    *,
    namespace: str | None = None,
) -> dict[str, Any]:
    """The body of the Problem a recurring family opens (spec only; status follows with ``update_problem``).

    ``incidents`` are the family's Incident bodies; the namespace is theirs unless given, and
    the title is taken from the oldest one's signal. ``now`` is recorded as the annotation
    ``upkeep.dev/opened-at``.
    """
    ordered = sorted(incidents, key=lambda body: (_first_triggered(body, now), _name(body)))
    oldest = ordered[0] if ordered else {}
    where = namespace if namespace is not None else str(_mapping(oldest.get("metadata")).get("namespace") or "")
    signal_type = str(_mapping(_mapping(oldest.get("spec")).get("signal")).get("type") or "failure")
    title = f"{service}: {signal_type} keeps recurring" if service else f"{signal_type} keeps recurring"
    labels = {incident_rules.FAMILY_HASH_LABEL: incident_rules.fingerprint_hash(family)}
    if incident_rules.label_value(service):
        labels[incident_rules.SERVICE_LABEL] = incident_rules.label_value(service)
    metadata: dict[str, Any] = {
        "name": problem_name(family),
        "labels": labels,
        "annotations": {incident_rules.OPENED_AT_ANNOTATION: sla.format_time(now)},
    }
    if where:
        metadata["namespace"] = where
    spec: dict[str, Any] = {"fingerprintFamily": family, "title": title}
    if service:
        spec["service"] = service
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def _entry(at: datetime.datetime, current: str | None, target: str, by: str, note: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"at": sla.format_time(at)}
    if current:
        entry["from"] = current
    entry["to"] = target
    entry["by"] = by
    if note:
        entry["note"] = note
    return entry


def _latest(status: Mapping[str, Any]) -> datetime.datetime | None:
    moments = [sla.parse_time(entry.get("at")) for entry in _list(status.get("timeline")) if isinstance(entry, Mapping)]
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _move(
    status: Mapping[str, Any],
    target: str,
    *,
    by: str,
    note: str,
    now: datetime.datetime,
    generation: int | None = None,
) -> dict[str, Any]:
    """A new status in ``target`` (checked by the lifecycle), in the timeline, monotonic in time."""
    current = str(status.get("phase") or "") or None
    lifecycle.check_transition(KIND, current, target)
    out = dict(status)
    if current == target:
        return out
    latest = _latest(status)
    moment = max(now, latest) if latest is not None else now
    out["phase"] = target
    if target == "Resolved":
        out["resolvedAt"] = sla.format_time(moment)
    out["timeline"] = [*_list(status.get("timeline")), _entry(moment, current, target, by, note)]
    ready = conditions.Condition(conditions.READY, "True", target, f"The problem is {target}.", generation)
    found = conditions.find(status.get("conditions"), conditions.READY)
    if found is None or found.status == "True":
        out["conditions"] = conditions.set_condition(_list(status.get("conditions")), ready, now=moment)
    return out


def update_problem(
    status: Mapping[str, Any],
    incidents: Sequence[Mapping[str, Any]],
    now: datetime.datetime,
) -> dict[str, Any]:
    """A new Problem status linking ``incidents`` (Incident bodies of its family).

    Linked names stay in their order, new ones follow oldest first; ``occurrences`` counts
    the times the linked incidents were triggered (reopenings included, as ``recurrence``
    counts them; it never goes down, so an incident deleted later is not forgotten);
    ``firstSeen``/``lastSeen`` are the first and the last of those times. An empty status
    becomes the first: Open, opened by ``upkeep``. A Resolved problem one of whose incidents
    was triggered after the resolution is Open again.
    """
    out = dict(status)
    if not status.get("phase"):
        out = _move(out, lifecycle.PROBLEM.initial, by=incident_rules.OPERATOR, note=_opening_note(incidents), now=now)
    linked = [str(name) for name in _list(status.get("incidents"))]
    ordered = sorted(incidents, key=lambda body: (_first_triggered(body, now), _name(body)))
    linked += [name for name in dict.fromkeys(_name(body) for body in ordered) if name and name not in linked]
    out["incidents"] = linked
    moments = [moment for body in ordered for moment in triggered_moments(body)]
    counted = sum(len(triggered_moments(body)) for body in ordered if _name(body) in linked)
    out["occurrences"] = max(int(status.get("occurrences") or 0), counted, len(linked))
    first = [moment for moment in (sla.parse_time(status.get("firstSeen")), *moments) if moment is not None]
    last = [moment for moment in (sla.parse_time(status.get("lastSeen")), *moments) if moment is not None]
    if first:
        out["firstSeen"] = sla.format_time(min(first))
    if last:
        out["lastSeen"] = sla.format_time(max(last))
    if out.get("phase") == "Resolved":
        resolved = sla.entered_at(out, "Resolved") or sla.parse_time(out.get("resolvedAt"))
        if resolved is not None and any(moment > resolved for moment in moments):
            out = _move(out, lifecycle.PROBLEM.initial, by=incident_rules.OPERATOR, note=REOPEN_NOTE, now=now)
    return out


def _opening_note(incidents: Sequence[Mapping[str, Any]]) -> str:
    count = len(incidents)
    noun = "incident" if count == 1 else "incidents"
    times = sum(len(triggered_moments(body)) for body in incidents)
    if times <= count:
        return f"opened: {count} {noun}"
    return f"opened: {times} recurrences in {count} {noun}"


def _reopened_at(status: Mapping[str, Any]) -> datetime.datetime | None:
    for entry in reversed(_list(status.get("timeline"))):
        if isinstance(entry, Mapping) and entry.get("from") == "Resolved" and entry.get("to") == "Open":
            return sla.parse_time(entry.get("at"))
    return None


def decide_phase(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    now: datetime.datetime,
    fix_change: Mapping[str, Any] | None = None,
    generation: int | None = None,
) -> tuple[dict[str, Any], str | None]:
    """The Problem's phase from its spec and its fixing Change; (new status, None) or (status, why not).

    - Resolved when ``spec.resolution`` is set (by ``resolution.resolvedBy``, else
      ``upkeep``), or when ``fix_change`` (the Change named by ``spec.fixChangeRef``, looked
      up by the caller) is Completed. After a reopening, only a resolution of a newer
      generation (``generation`` above ``status.observedGeneration``) or a Change completed
      after the reopening resolves it again.
    - Else KnownError when ``spec.knownError.rootCause`` is set.
    - Else the phase stays (KnownError does not go back to Open when the known error is
      removed; the lifecycle has no such move).

    ``Ready`` is False with reason ``FixChangeNotFound`` while ``spec.fixChangeRef`` names a
    Change the caller did not find, True with the phase otherwise. A move the lifecycle
    refuses is returned as the ``InvalidTransition`` message. ``generation`` is recorded as
    ``status.observedGeneration``.
    """
    out = dict(status)
    current = str(status.get("phase") or "") or None
    if current is None:
        out = _move(out, lifecycle.PROBLEM.initial, by=incident_rules.OPERATOR, note="opened", now=now)
        current = lifecycle.PROBLEM.initial
    reopened = _reopened_at(status)
    observed = status.get("observedGeneration")
    resolution = _mapping(spec.get("resolution"))
    known_error = _mapping(spec.get("knownError"))
    change_name = str(_mapping(spec.get("fixChangeRef")).get("name") or "")
    change_status = _mapping((fix_change or {}).get("status"))
    change_done = sla.parse_time(change_status.get("completedAt"))

    newer_spec = generation is not None and observed is not None and generation > int(observed)
    target: str | None = None
    by, note = incident_rules.OPERATOR, ""
    if current != "Resolved":
        if resolution.get("summary") and (reopened is None or newer_spec):
            target = "Resolved"
            by = str(resolution.get("resolvedBy") or incident_rules.OPERATOR)
            note = f"resolution: {resolution['summary']}"
        elif (
            fix_change is not None
            and change_status.get("phase") == "Completed"
            and (reopened is None or (change_done is not None and change_done > reopened))
        ):
            target = "Resolved"
            when = f" at {sla.format_time(change_done)}" if change_done is not None else ""
            note = f"the fixing Change {change_name or _name(fix_change)} completed{when}"
        elif known_error.get("rootCause") and current == lifecycle.PROBLEM.initial:
            target = "KnownError"
            note = f"known error: {_first_line(str(known_error['rootCause']))}"

    error: str | None = None
    if target is not None:
        try:
            out = _move(out, target, by=by, note=note, now=now, generation=generation)
        except errors.InvalidTransition as refused:
            error = str(refused)
    if generation is not None:
        out["observedGeneration"] = generation
    phase = str(out.get("phase") or current)
    found = _list(out.get("conditions"))
    if change_name and fix_change is None:
        message = f"spec.fixChangeRef: no Change {change_name!r} in the problem's namespace"
        out["conditions"] = conditions.mark_failed(
            found, reason="FixChangeNotFound", message=message, generation=generation, stalled=False, now=now
        )
    elif error is None:
        out["conditions"] = conditions.mark_ready(
            found, reason=phase, message=f"The problem is {phase}.", generation=generation, now=now
        )
    return out, error


def _first_line(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
