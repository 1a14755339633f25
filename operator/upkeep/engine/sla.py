"""SLA clocks and escalation of an Incident: deadlines from the SupportPolicy, breaches, levels, the next look.

Two clocks run from ``status.triggeredAt``. The acknowledge clock stops when the incident is
acknowledged (``status.acknowledgedAt``) or resolved; the resolve clock stops when it is
resolved (or closed). A clock breaches when it is still running at its deadline, or stopped
after it. A reopened incident (Resolved → Triggered) has running clocks again, measured
from the same ``triggeredAt``: it is the same failure, and it was not fixed in time.

Escalation levels (``spec.escalation.levels``) are reached while the acknowledge clock runs:
level N is reached once its ``after`` has passed since ``triggeredAt``. Levels never go down.

``evaluate`` says what changed since the last evaluation (new breaches, newly reached levels
and the channels to notify for them) and when to look again, so a controller sets one timer
instead of polling; ``apply`` writes the outcome into the status. Times come in as
parameters; nothing here reads the clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from upkeep.engine import durations
from upkeep.model import conditions, errors

__all__ = [
    "ACKNOWLEDGE",
    "ESCALATED",
    "RESOLVE",
    "SEVERITIES",
    "SLA_BREACHED",
    "Breach",
    "Deadlines",
    "Level",
    "SlaState",
    "Target",
    "apply",
    "breach_condition",
    "deadlines",
    "entered_at",
    "escalation_condition",
    "escalation_levels",
    "evaluate",
    "format_time",
    "parse_time",
    "target_for",
]

SEVERITIES: tuple[str, ...] = ("SEV1", "SEV2", "SEV3", "SEV4")
"""The severities of the CRDs, worst first."""

Breach = Literal["acknowledge", "resolve"]
ACKNOWLEDGE: Breach = "acknowledge"
RESOLVE: Breach = "resolve"

SLA_BREACHED = "SLABreached"
"""Condition: whether an SLA deadline of the incident passed."""
ESCALATED = "Escalated"
"""Condition: whether an escalation level was reached."""

_STOPPED_PHASES = frozenset({"Resolved", "Closed"})


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC to the second, as status fields and conditions write times."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a time must be aware (carry a time zone), not {moment.isoformat()}")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime.datetime | None:
    """An RFC 3339 time (or a datetime) as aware UTC; a time without offset is UTC; None when unreadable."""
    if isinstance(value, datetime.datetime):
        parsed = value
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(datetime.UTC)


def _second(moment: datetime.datetime) -> datetime.datetime:
    """The moment as the status records it (UTC, whole seconds), so what is computed matches what is shown."""
    parsed = parse_time(format_time(moment))
    assert parsed is not None
    return parsed


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _duration(value: Any, field: str) -> datetime.timedelta:
    try:
        return durations.parse_duration(str(value))
    except durations.DurationError as error:
        raise errors.SpecError(f"{field}: {error}", field=field) from None


@dataclass(frozen=True)
class Target:
    """The SLA targets for one severity (one item of ``spec.sla``)."""

    severity: str
    acknowledge_within: datetime.timedelta
    resolve_within: datetime.timedelta


def target_for(severity: str, policy_spec: Mapping[str, Any]) -> Target | None:
    """The targets of the policy for ``severity``; None when it sets none (no SLA clocks).

    ``SpecError`` names the field when a duration is unreadable (the schema's pattern and the
    semantic checks normally catch that first).
    """
    items = policy_spec.get("sla")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, Mapping) or item.get("severity") != severity:
            continue
        base = f"spec.sla[{index}]"
        return Target(
            severity=severity,
            acknowledge_within=_duration(item.get("acknowledgeWithin"), f"{base}.acknowledgeWithin"),
            resolve_within=_duration(item.get("resolveWithin"), f"{base}.resolveWithin"),
        )
    return None


@dataclass(frozen=True)
class Level:
    """One escalation level: reached ``after`` the trigger; notifies ``channels``."""

    level: int
    after: datetime.timedelta
    channels: tuple[str, ...]


def escalation_levels(policy_spec: Mapping[str, Any]) -> tuple[Level, ...]:
    """The policy's escalation levels, lowest level first."""
    items = _mapping(policy_spec.get("escalation")).get("levels")
    out: list[Level] = []
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, Mapping) or not isinstance(item.get("level"), int):
            continue
        channels = item.get("channels")
        out.append(
            Level(
                level=int(item["level"]),
                after=_duration(item.get("after"), f"spec.escalation.levels[{index}].after"),
                channels=tuple(str(name) for name in channels) if isinstance(channels, list) else (),
            )
        )
    return tuple(sorted(out, key=lambda level: level.level))


@dataclass(frozen=True)
class Deadlines:
    """When an incident must be acknowledged and resolved by; None where the policy sets no target."""

    acknowledge_by: datetime.datetime | None = None
    resolve_by: datetime.datetime | None = None

    def to_status(self) -> dict[str, Any]:
        """``status.sla`` of a new incident: the deadlines, nothing breached yet."""
        out: dict[str, Any] = {}
        if self.acknowledge_by is not None:
            out["acknowledgeBy"] = format_time(self.acknowledge_by)
            out["acknowledgeBreached"] = False
        if self.resolve_by is not None:
            out["resolveBy"] = format_time(self.resolve_by)
            out["resolveBreached"] = False
        return out


def deadlines(severity: str, triggered_at: datetime.datetime, policy_spec: Mapping[str, Any]) -> Deadlines:
    """``acknowledgeBy`` and ``resolveBy``: ``triggeredAt`` (to the second, as recorded) plus the targets."""
    target = target_for(severity, policy_spec)
    if target is None:
        return Deadlines()
    start = _second(triggered_at)
    return Deadlines(start + target.acknowledge_within, start + target.resolve_within)


def entered_at(status: Mapping[str, Any], phase: str) -> datetime.datetime | None:
    """When the object last entered ``phase``, from its timeline; None when the timeline does not say."""
    timeline = status.get("timeline")
    for entry in reversed(timeline if isinstance(timeline, list) else []):
        if isinstance(entry, Mapping) and entry.get("to") == phase:
            return parse_time(entry.get("at"))
    return None


@dataclass(frozen=True)
class SlaState:
    """The SLA clocks of an incident at one moment, and what changed since the last evaluation."""

    breaches: tuple[Breach, ...]
    """Deadlines breached since the last evaluation (a breach is reported once)."""
    acknowledge_breached: bool
    """Whether the acknowledge deadline is breached, now or before."""
    resolve_breached: bool
    """Whether the resolve deadline is breached, now or before."""
    escalation_level: int
    """The highest level reached (0: none); never lower than the recorded one."""
    new_levels: tuple[int, ...]
    """Levels reached since the last evaluation, lowest first."""
    channels: tuple[str, ...]
    """Channels to notify for the new levels, each once, in level order."""
    next_check: datetime.datetime | None
    """When a deadline or level falls due next; None when no clock can change any more."""

    @property
    def changed(self) -> bool:
        """Whether there is something new to record and tell."""
        return bool(self.breaches or self.new_levels)


def _clock_stops(status: Mapping[str, Any]) -> tuple[datetime.datetime | None, datetime.datetime | None]:
    """(acknowledge clock stop, resolve clock stop); None for a clock that still runs."""
    resolve_stop: datetime.datetime | None = None
    if status.get("phase") in _STOPPED_PHASES:
        resolve_stop = (
            entered_at(status, "Resolved")
            or parse_time(status.get("resolvedAt"))
            or parse_time(status.get("closedAt"))
            or parse_time(status.get("triggeredAt"))
        )
    acknowledged = parse_time(status.get("acknowledgedAt"))
    stops = [moment for moment in (acknowledged, resolve_stop) if moment is not None]
    return (min(stops) if stops else None), resolve_stop


def _breached(deadline: datetime.datetime, stop: datetime.datetime | None, now: datetime.datetime) -> bool:
    """Still running at the deadline, or stopped after it."""
    return now >= deadline if stop is None else stop > deadline


def _reached(moment: datetime.datetime, stop: datetime.datetime | None, now: datetime.datetime) -> bool:
    return moment <= now if stop is None else moment < stop


def evaluate(status: Mapping[str, Any], policy_spec: Mapping[str, Any], now: datetime.datetime) -> SlaState:
    """The SLA clocks and escalation of an incident at ``now``.

    Deadlines are those recorded in ``status.sla`` (set when the incident triggered, so a later
    policy edit does not move them); levels come from the policy's ``spec.escalation``.
    """
    sla = _mapping(status.get("sla"))
    acknowledge_stop, resolve_stop = _clock_stops(status)
    candidates: list[datetime.datetime] = []

    breaches: list[Breach] = []
    flags: dict[Breach, bool] = {}
    for name, stop in ((ACKNOWLEDGE, acknowledge_stop), (RESOLVE, resolve_stop)):
        deadline = parse_time(sla.get(f"{name}By"))
        already = bool(sla.get(f"{name}Breached", False))
        breached = already or (deadline is not None and _breached(deadline, stop, now))
        flags[name] = breached
        if breached and not already:
            breaches.append(name)
        if deadline is not None and not breached and stop is None:
            candidates.append(deadline)

    previous = int(status.get("escalationLevel") or 0)
    triggered = parse_time(status.get("triggeredAt")) or parse_time(status.get("firstSeen"))
    level = previous
    new_levels: list[int] = []
    channels: list[str] = []
    if triggered is not None:
        for item in escalation_levels(policy_spec):
            moment = triggered + item.after
            if not _reached(moment, acknowledge_stop, now):
                if acknowledge_stop is None and item.level > previous:
                    candidates.append(moment)
                continue
            level = max(level, item.level)
            if item.level > previous:
                new_levels.append(item.level)
                channels.extend(name for name in item.channels if name not in channels)

    future = [moment for moment in candidates if moment > now]
    return SlaState(
        breaches=tuple(breaches),
        acknowledge_breached=flags[ACKNOWLEDGE],
        resolve_breached=flags[RESOLVE],
        escalation_level=level,
        new_levels=tuple(new_levels),
        channels=tuple(channels),
        next_check=min(future) if future else None,
    )


def apply(
    status: Mapping[str, Any],
    state: SlaState,
    *,
    now: datetime.datetime,
    generation: int | None = None,
) -> dict[str, Any]:
    """A new status with the state recorded: breach flags, ``escalationLevel``, ``SLABreached`` and ``Escalated``."""
    out = dict(status)
    sla = dict(_mapping(status.get("sla")))
    if "acknowledgeBy" in sla or state.acknowledge_breached:
        sla["acknowledgeBreached"] = state.acknowledge_breached
    if "resolveBy" in sla or state.resolve_breached:
        sla["resolveBreached"] = state.resolve_breached
    out["sla"] = sla
    out["escalationLevel"] = state.escalation_level
    found = out.get("conditions")
    current = list(found) if isinstance(found, list) else []
    current = conditions.set_condition(current, breach_condition(sla, generation), now=now)
    current = conditions.set_condition(current, escalation_condition(state.escalation_level, generation), now=now)
    out["conditions"] = current
    return out


def breach_condition(sla: Mapping[str, Any], generation: int | None = None) -> conditions.Condition:
    """``SLABreached`` for a ``status.sla``: True naming the missed deadlines, else False."""
    missed = [
        f"not {verb} by {sla.get(f'{key}By')}"
        for key, verb in (("acknowledge", "acknowledged"), ("resolve", "resolved"))
        if sla.get(f"{key}Breached")
    ]
    if sla.get("resolveBreached"):
        return conditions.Condition(SLA_BREACHED, "True", "ResolveDeadlineMissed", "; ".join(missed), generation)
    if sla.get("acknowledgeBreached"):
        return conditions.Condition(SLA_BREACHED, "True", "AcknowledgeDeadlineMissed", "; ".join(missed), generation)
    if "acknowledgeBy" in sla or "resolveBy" in sla:
        return conditions.Condition(SLA_BREACHED, "False", "WithinSLA", "No SLA deadline has passed.", generation)
    return conditions.Condition(
        SLA_BREACHED, "False", "NoSLATarget", "The SupportPolicy sets no SLA for this severity.", generation
    )


def escalation_condition(level: int, generation: int | None = None) -> conditions.Condition:
    """``Escalated``: True with the level reached, else False."""
    if level > 0:
        message = f"Escalation level {level} reached."
        return conditions.Condition(ESCALATED, "True", "EscalationLevelReached", message, generation)
    return conditions.Condition(ESCALATED, "False", "NotEscalated", "No escalation level reached.", generation)
