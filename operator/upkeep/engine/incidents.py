"""The decisions of the Incident controller: names, new incidents, repeats, requested states and auto-resolve.

Everything here is pure: bodies and statuses come in as mappings, the time as ``now``, and
new dicts go out for the controller to create or patch. The rules:

- One incident per fingerprint. Its name is derived from the fingerprint alone
  (``incident_name``), so two operator replicas, or one restarted, that see the same signal
  try to create the same object and the API server keeps one. A Closed incident is final:
  the next signal of its fingerprint opens a new incident, named with the next sequence
  number (``next_incident_name``).
- A repeat (``record_occurrence``) raises ``occurrences`` and ``lastSeen`` and adds the
  affected object; when the incident was Mitigated or Resolved, the signal coming back
  reopens it (→ Triggered).
- People steer through ``spec.state`` and ``spec.note`` (``apply_requested_state``); the
  operator moves the phase itself on repeats and after the signal has been clear long
  enough (``auto_resolve``). Every move is checked by ``model.lifecycle``, stamped with a
  monotonic time and recorded in ``status.timeline`` with who made it.

The first time an incident enters Acknowledged, Mitigated, Resolved or Closed is kept in
``acknowledgedAt``, ``mitigatedAt``, ``resolvedAt`` and ``closedAt``; later entries do not
move them (the timeline has every entry).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.engine import durations, signals, sla
from upkeep.model import conditions, errors, lifecycle

__all__ = [
    "ACKNOWLEDGED",
    "API_VERSION",
    "AUTO_RESOLVE_ACTOR",
    "FAMILY_HASH_LABEL",
    "FINGERPRINT_HASH_LABEL",
    "KIND",
    "MAX_AFFECTED",
    "MAX_TIMELINE",
    "OPENED_AT_ANNOTATION",
    "OPEN_PHASES",
    "OPERATOR",
    "REOPENABLE_PHASES",
    "REOPEN_NOTE",
    "SERVICE_LABEL",
    "Occurrence",
    "apply_requested_state",
    "auto_resolve",
    "auto_resolve_at",
    "current_incident",
    "fingerprint_hash",
    "incident_name",
    "initial_status",
    "label_value",
    "link_problem",
    "name_for",
    "new_incident",
    "next_incident_name",
    "record_clear",
    "record_occurrence",
    "summary_for",
    "transition",
]

API_VERSION = "upkeep.dev/v1alpha1"
KIND = "Incident"
FINGERPRINT_HASH_LABEL = "upkeep.dev/fingerprint-hash"
"""Label with ``fingerprint_hash`` of the incident's fingerprint: the controller lists an incident's namesakes by it."""
FAMILY_HASH_LABEL = "upkeep.dev/family-hash"
"""Label with ``fingerprint_hash`` of the fingerprint's Problem family: the problem controller lists by it."""
SERVICE_LABEL = "upkeep.dev/service"
"""Label with the service (as a label value), so gates can list a service's incidents."""
OPENED_AT_ANNOTATION = "upkeep.dev/opened-at"
"""When the operator opened the incident; survives a restore that drops status."""

OPERATOR = "upkeep"
"""Who the timeline names when the operator itself moves the phase."""
AUTO_RESOLVE_ACTOR = "upkeep/auto-resolve"
"""Who the timeline names for an auto-resolve."""
REOPEN_NOTE = "reopened: the signal came back"

ACKNOWLEDGED = "Acknowledged"
"""Condition: whether someone acknowledged the incident."""

OPEN_PHASES: tuple[str, ...] = ("Triggered", "Acknowledged", "Mitigating", "Mitigated")
"""Phases in which the failure is still being dealt with (gates hold releases on these)."""
REOPENABLE_PHASES: tuple[str, ...] = ("Mitigated", "Resolved")
"""Phases a recurrence of the signal reopens (→ Triggered); Closed is final."""

MAX_AFFECTED = 20
"""Most affected objects kept in ``status.affected``, the newest; a 500-pod Deployment must not bloat the object."""
MAX_TIMELINE = 100
"""Most timeline entries kept: the first (the opening) and the newest; a flapping signal must not bloat the object."""

_NAME_MAX = 63
_NAME_HASH = 8
_NOT_IN_NAME = re.compile(r"[^a-z0-9-]+")
_NOT_IN_LABEL = re.compile(r"[^A-Za-z0-9._-]+")
_PHASE_STAMPS: Mapping[str, str] = {
    "Acknowledged": "acknowledgedAt",
    "Mitigated": "mitigatedAt",
    "Resolved": "resolvedAt",
    "Closed": "closedAt",
}
_TYPE_WORDS: Mapping[str, str] = {
    "crashloopbackoff": "crashloop",
    "imagepullbackoff": "imagepull",
    "oomkilled": "oomkilled",
    "unschedulable": "unschedulable",
    "deploymentunavailable": "unavailable",
    "progressdeadlineexceeded": "stuck",
    "nodenotready": "notready",
    "jobfailed": "failed",
    "alert": "alert",
    "manual": "manual",
}
"""Signal type (as the fingerprint writes it) → the word an incident name uses."""
_TYPE_PHRASES: Mapping[str, str] = {
    "CrashLoopBackOff": "restarts in a loop",
    "ImagePullBackOff": "cannot pull its image",
    "OOMKilled": "was killed for running out of memory",
    "Unschedulable": "has pods that cannot be scheduled",
    "DeploymentUnavailable": "is unavailable",
    "ProgressDeadlineExceeded": "exceeded its progress deadline",
    "NodeNotReady": "is not ready",
    "JobFailed": "failed",
}
_SUMMARY_MAX = 1024


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


# Names and labels


def fingerprint_hash(fingerprint: str) -> str:
    """A short, stable hash of a fingerprint (16 hex digits): a valid label value for any fingerprint."""
    return hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:16]


def label_value(text: str) -> str:
    """``text`` as a valid label value: allowed characters only, at most 63, alphanumeric at both ends."""
    cleaned = _NOT_IN_LABEL.sub("-", text)[:63]
    return cleaned.strip("-._")


def _readable(fingerprint: str) -> str:
    """The words of a fingerprint a person recognises: workload (or alert) name and signal type."""
    parts = fingerprint.split(":")
    kind = _TYPE_WORDS.get(parts[0], parts[0])
    if parts[0] == "alert" and len(parts) >= 3:
        words = [parts[2], kind]
    elif len(parts) >= 4:
        words = [":".join(parts[3:]), kind]
    else:
        words = [kind, *parts[1:]]
    return _NOT_IN_NAME.sub("-", "-".join(words).lower()).strip("-")


def name_for(fingerprint: str, *, sequence: int = 1) -> str:
    """A DNS-1123 label (at most 63 characters) for a fingerprint: readable words, a short hash, the sequence.

    ``crashloopbackoff:shop:deployment:shop`` → ``shop-crashloop-<hash>``; sequence 2 and up
    append ``-2`` (the incident after a Closed one). The hash is over the whole fingerprint,
    so fingerprints whose readable words collide still get distinct names.
    """
    if sequence < 1:
        raise ValueError(f"sequence starts at 1, not {sequence}")
    suffix = "-" + hashlib.sha256(fingerprint.encode("utf-8")).hexdigest()[:_NAME_HASH]
    if sequence > 1:
        suffix += f"-{sequence}"
    readable = _readable(fingerprint)[: _NAME_MAX - len(suffix)].strip("-") or "incident"
    return readable + suffix


def incident_name(signal: signals.Signal, *, sequence: int = 1) -> str:
    """The name of the incident a signal opens: ``name_for`` its fingerprint."""
    return name_for(signal.fingerprint, sequence=sequence)


def _triggered(body: Mapping[str, Any]) -> datetime.datetime | None:
    status = _mapping(body.get("status"))
    return (
        sla.parse_time(status.get("triggeredAt"))
        or sla.parse_time(status.get("firstSeen"))
        or sla.parse_time(_mapping(body.get("metadata")).get("creationTimestamp"))
    )


def _age_key(body: Mapping[str, Any]) -> tuple[datetime.datetime, str]:
    moment = _triggered(body) or datetime.datetime.max.replace(tzinfo=datetime.UTC)
    return moment, str(_mapping(body.get("metadata")).get("name", ""))


def current_incident(incidents: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """Of the incidents of one fingerprint, the one a new signal updates: the newest that is not Closed."""
    live = [body for body in incidents if _mapping(body.get("status")).get("phase") != "Closed"]
    return max(live, key=_age_key) if live else None


def next_incident_name(signal: signals.Signal, incidents: Sequence[Mapping[str, Any]]) -> str:
    """The name for a new incident of the signal's fingerprint, given the incidents it already has.

    The first is ``incident_name(signal)``; after that the lowest sequence not taken, counted
    from the number of incidents, so replicas that list the same incidents pick the same name.
    """
    taken = {str(_mapping(body.get("metadata")).get("name", "")) for body in incidents}
    sequence = 1 if not taken else len(taken) + 1
    while incident_name(signal, sequence=sequence) in taken:
        sequence += 1
    return incident_name(signal, sequence=sequence)


# New incidents


def _default_service(signal: signals.Signal) -> str:
    if signal.type == "Alert" and signal.labels.get("service"):
        return signal.labels["service"]
    return (signal.workload or signal.affected).name


def summary_for(signal: signals.Signal, service: str) -> str:
    """One line for ``spec.summary``: the service, what failed and how, at most 1024 characters."""
    if signal.type == "Alert":
        text = f"{service}: alert {signal.reason} is firing"
        if signal.message:
            text += f": {signal.message}"
    elif signal.type == "Manual":
        text = f"{service}: {signal.message or signal.reason or 'reported by hand'}"
    else:
        subject = signal.workload or signal.affected
        phrase = _TYPE_PHRASES.get(signal.type, f"shows {signal.type}")
        text = f"{service}: {subject.kind} {subject.name} {phrase}"
        if signal.reason and signal.reason != signal.type:
            text += f" ({signal.reason})"
    text = " ".join(text.split())
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1] + "…"


def new_incident(
    signal: signals.Signal,
    severity: str,
    *,
    now: datetime.datetime,
    namespace: str,
    service: str | None = None,
    sequence: int = 1,
) -> dict[str, Any]:
    """The body of the Incident a signal opens (spec only; status follows with ``initial_status``).

    ``service`` is the Release's ``spec.service`` when the caller knows the Release that owns
    the workload; otherwise the workload's name (an alert's ``service`` label for alerts).
    ``sequence`` > 1 names the incident after a Closed one (see ``next_incident_name``).
    """
    if severity not in sla.SEVERITIES:
        raise errors.SpecError(
            f"spec.severity: {severity!r} is not a severity; use one of {', '.join(sla.SEVERITIES)}",
            field="spec.severity",
        )
    chosen = service or _default_service(signal)
    labels = {
        FINGERPRINT_HASH_LABEL: fingerprint_hash(signal.fingerprint),
        FAMILY_HASH_LABEL: fingerprint_hash(signals.family_of(signal.fingerprint)),
    }
    if label_value(chosen):
        labels[SERVICE_LABEL] = label_value(chosen)
    spec: dict[str, Any] = {
        "severity": severity,
        "service": chosen,
        "summary": summary_for(signal, chosen),
        "signal": signal.to_dict(),
    }
    if signal.workload is not None:
        spec["workload"] = signal.workload.to_dict()
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": incident_name(signal, sequence=sequence),
            "namespace": namespace,
            "labels": labels,
            "annotations": {OPENED_AT_ANNOTATION: sla.format_time(now)},
        },
        "spec": spec,
    }


def _acknowledged_condition(status: Mapping[str, Any], generation: int | None) -> conditions.Condition:
    at = status.get("acknowledgedAt")
    if not at:
        return conditions.Condition(
            ACKNOWLEDGED, "False", "NotAcknowledged", "Nobody has acknowledged the incident yet.", generation
        )
    who = next(
        (
            str(entry.get("by"))
            for entry in _list(status.get("timeline"))
            if isinstance(entry, Mapping) and entry.get("at") == at and entry.get("by")
        ),
        "",
    )
    by = f" by {who}" if who else ""
    return conditions.Condition(ACKNOWLEDGED, "True", "Acknowledged", f"Acknowledged{by} at {at}.", generation)


def _ready(phase: str, generation: int | None) -> conditions.Condition:
    return conditions.Condition(conditions.READY, "True", phase, f"The incident is {phase}.", generation)


def initial_status(
    signal: signals.Signal,
    now: datetime.datetime,
    sla_deadlines: sla.Deadlines | None = None,
) -> dict[str, Any]:
    """The status of a new incident: Triggered by the signal's source, one occurrence, the SLA deadlines.

    ``sla_deadlines`` come from ``sla.deadlines(severity, now, policy_spec)``; None: no SLA.
    ``observedGeneration`` is left to ``apply_requested_state``, so a ``spec.state`` written
    into a hand-made incident is still applied.
    """
    at = sla.format_time(now)
    seen = sla.format_time(signal.observed_at)
    deadlines = sla_deadlines.to_status() if sla_deadlines is not None else {}
    status: dict[str, Any] = {
        "phase": lifecycle.INCIDENT.initial,
        "occurrences": 1,
        "firstSeen": seen,
        "lastSeen": seen,
        "triggeredAt": at,
        "timeline": [
            {
                "at": at,
                "to": lifecycle.INCIDENT.initial,
                "by": signal.source or OPERATOR,
                "note": f"opened: {signal.reason or signal.type} on {signal.affected}",
            }
        ],
        "affected": [signal.affected.to_dict()],
        "sla": deadlines,
        "escalationLevel": 0,
    }
    found: list[dict[str, Any]] = []
    for condition in (
        _ready(lifecycle.INCIDENT.initial, None),
        _acknowledged_condition(status, None),
        sla.breach_condition(deadlines),
        sla.escalation_condition(0),
    ):
        found = conditions.set_condition(found, condition, now=now)
    status["conditions"] = found
    return status


# Moving the phase


def _latest(status: Mapping[str, Any]) -> datetime.datetime | None:
    moments = [sla.parse_time(entry.get("at")) for entry in _list(status.get("timeline")) if isinstance(entry, Mapping)]
    moments += [sla.parse_time(status.get(key)) for key in ("triggeredAt", *_PHASE_STAMPS.values())]
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def _bounded_timeline(timeline: list[Any]) -> list[Any]:
    if len(timeline) <= MAX_TIMELINE:
        return timeline
    return [timeline[0], *timeline[len(timeline) - MAX_TIMELINE + 1 :]]


def transition(
    status: Mapping[str, Any],
    target: str,
    *,
    by: str,
    now: datetime.datetime,
    note: str = "",
    field: str = "status.phase",
    acknowledges: bool = False,
    generation: int | None = None,
) -> dict[str, Any]:
    """A new status in phase ``target``: stamped, in the timeline with ``by`` and ``note``.

    Raises ``InvalidTransition`` (naming ``field``) for a move the lifecycle does not allow;
    staying in the phase returns an unchanged copy. The time recorded is ``now``, or the
    latest time already recorded when ``now`` is earlier (a replica with a slower clock), so
    the timeline and the phase timestamps never go backwards. ``acknowledges``: the move
    also acknowledges an unacknowledged incident (a person working on it). ``Ready`` follows
    the phase unless it reports a refused ``spec.state``, which only a new request clears.
    """
    current = str(status.get("phase") or "") or None
    lifecycle.check_transition(KIND, current, target, field=field)
    out = dict(status)
    if current == target:
        return out
    latest = _latest(status)
    moment = max(now, latest) if latest is not None else now
    at = sla.format_time(moment)
    out["phase"] = target
    if target == lifecycle.INCIDENT.initial and not out.get("triggeredAt"):
        out["triggeredAt"] = at
    stamp = _PHASE_STAMPS.get(target)
    if stamp and not out.get(stamp):
        out[stamp] = at
    if acknowledges and not out.get("acknowledgedAt"):
        out["acknowledgedAt"] = at
    entry: dict[str, Any] = {"at": at}
    if current:
        entry["from"] = current
    entry["to"] = target
    entry["by"] = by
    if note:
        entry["note"] = note
    out["timeline"] = _bounded_timeline([*_list(status.get("timeline")), entry])
    found = _list(status.get("conditions"))
    ready = conditions.find(found, conditions.READY)
    if ready is None or not (ready.status == "False" and ready.reason == "InvalidTransition"):
        found = conditions.set_condition(found, _ready(target, generation), now=moment)
    out["conditions"] = conditions.set_condition(found, _acknowledged_condition(out, generation), now=moment)
    return out


@dataclass(frozen=True)
class Occurrence:
    """What a repeat of the signal does to an incident."""

    status: dict[str, Any]
    """The new status (an unchanged copy when ``open_new``)."""
    reopened: bool
    """The incident was Mitigated or Resolved and is Triggered again."""
    open_new: bool
    """The incident is Closed, which is final: open a new incident for the signal (``next_incident_name``)."""


def _same_object(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    return all(str(left.get(key) or "") == str(right.get(key) or "") for key in ("kind", "namespace", "name"))


def record_occurrence(status: Mapping[str, Any], signal: signals.Signal, *, now: datetime.datetime) -> Occurrence:
    """Count one more sighting of the incident's signal; reopen a Mitigated or Resolved incident.

    ``occurrences`` + 1, ``lastSeen`` (never backwards), the affected object added (the newest
    ``MAX_AFFECTED`` kept), ``clearSince`` dropped. A signal observed before the incident
    entered Mitigated or Resolved is counted but does not reopen it: it is not the signal
    coming back but one that was late to arrive.
    """
    phase = status.get("phase")
    if phase in lifecycle.INCIDENT.terminal:
        return Occurrence(dict(status), reopened=False, open_new=True)
    out = dict(status)
    count = int(status.get("occurrences") or 1)
    out["occurrences"] = count + 1
    seen = sla.parse_time(sla.format_time(signal.observed_at))
    assert seen is not None
    last = sla.parse_time(status.get("lastSeen"))
    out["lastSeen"] = sla.format_time(max(seen, last) if last is not None else seen)
    if not out.get("firstSeen"):
        out["firstSeen"] = sla.format_time(seen)
    affected = [dict(item) for item in _list(status.get("affected")) if isinstance(item, Mapping)]
    ref = signal.affected.to_dict()
    if not any(_same_object(item, ref) for item in affected):
        affected.append(ref)
    out["affected"] = affected[-MAX_AFFECTED:]
    out.pop("clearSince", None)
    reopened = False
    if phase in REOPENABLE_PHASES:
        entered = sla.entered_at(status, str(phase)) or sla.parse_time(status.get(_PHASE_STAMPS.get(str(phase), "")))
        if entered is None or seen > entered:
            out = transition(out, lifecycle.INCIDENT.initial, by=signal.source or OPERATOR, now=now, note=REOPEN_NOTE)
            reopened = True
    return Occurrence(out, reopened=reopened, open_new=False)


def apply_requested_state(
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    actor: str,
    now: datetime.datetime,
    generation: int | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Move the phase to the ``spec.state`` a person asked for; (new status, None) or (status, why not).

    The move is checked by ``model.lifecycle``; a refused one returns the ``InvalidTransition``
    message (naming ``spec.state``) and leaves the phase alone, for the controller to report
    as ``Ready=False``/``Stalled`` and a Warning Event. An accepted one is recorded with
    ``by=actor`` and ``spec.note``, sets ``Ready=True`` (clearing an earlier refusal), and
    Mitigating or Mitigated also acknowledge an unacknowledged incident: the person asking is
    working on it.

    ``generation`` (``metadata.generation``) makes a request count once: it is recorded as
    ``status.observedGeneration``, and a status that has observed it is returned unchanged,
    so a ``spec.state: Resolved`` left in place does not resolve the incident again after
    the signal reopened it. Repeating the same request therefore needs a spec change (a new
    ``spec.note``, as ``upkeep incident`` writes). The status must have a phase
    (``initial_status``) before a request can move it.
    """
    out = dict(status)
    if generation is not None:
        observed = status.get("observedGeneration")
        if observed is not None and int(observed) >= generation:
            return out, None
        out["observedGeneration"] = generation
    requested = str(spec.get("state") or "")
    if not requested:
        return out, None
    current = str(status.get("phase") or "") or None
    try:
        moved = transition(
            out,
            requested,
            by=actor,
            now=now,
            note=str(spec.get("note") or ""),
            field="spec.state",
            acknowledges=requested in ("Mitigating", "Mitigated"),
            generation=generation,
        )
    except errors.InvalidTransition as refused:
        return out, str(refused)
    phase = str(moved.get("phase") or requested)
    message = f"The incident is {phase}." if current != requested else f"The incident is already {phase}."
    moved["conditions"] = conditions.mark_ready(
        _list(moved.get("conditions")), reason=phase, message=message, generation=generation, now=now
    )
    return moved, None


# The signal going away


def record_clear(status: Mapping[str, Any], *, since: datetime.datetime) -> dict[str, Any]:
    """A new status saying the signal has been absent since ``since`` (an earlier record is kept)."""
    out = dict(status)
    if not sla.parse_time(status.get("clearSince")):
        out["clearSince"] = sla.format_time(since)
    return out


def _clear_since(status: Mapping[str, Any], signal_clear_since: datetime.datetime) -> datetime.datetime:
    """Since when the signal has really been clear: not before it was last seen."""
    last = sla.parse_time(status.get("lastSeen"))
    return max(signal_clear_since, last) if last is not None else signal_clear_since


def auto_resolve_at(
    status: Mapping[str, Any],
    *,
    signal_clear_since: datetime.datetime | None,
    clear_for: datetime.timedelta,
) -> datetime.datetime | None:
    """When ``auto_resolve`` will resolve the incident if the signal stays clear; None when it will not.

    For the controller's timer: look again at this moment instead of polling.
    """
    if status.get("phase") not in OPEN_PHASES or signal_clear_since is None:
        return None
    return _clear_since(status, signal_clear_since) + clear_for


def auto_resolve(
    status: Mapping[str, Any],
    *,
    signal_clear_since: datetime.datetime | None,
    clear_for: datetime.timedelta,
    now: datetime.datetime,
) -> dict[str, Any] | None:
    """Resolve an open incident (by ``upkeep/auto-resolve``) once its signal has been clear for ``clear_for``.

    ``signal_clear_since`` is when the detector last saw the signal go away (None: it is
    present). Returns the new status, or None when nothing changes.
    """
    due = auto_resolve_at(status, signal_clear_since=signal_clear_since, clear_for=clear_for)
    if due is None or signal_clear_since is None or now < due:
        return None
    since = _clear_since(status, signal_clear_since)
    out = record_clear(status, since=since)
    clear = durations.format_duration(now - since)
    note = f"auto-resolved: the signal has been clear since {sla.format_time(since)} ({clear})"
    return transition(out, "Resolved", by=AUTO_RESOLVE_ACTOR, now=now, note=note)


def link_problem(status: Mapping[str, Any], problem_name: str) -> dict[str, Any]:
    """A new status linking the incident to its Problem (``status.problemRef``)."""
    out = dict(status)
    out["problemRef"] = {"name": problem_name}
    return out
