"""The guard rails of automatic remediation: whether a PlaybookRun may start (or a step may act) now.

Every guard is a pure function of facts the controller reads from the cluster (the Playbook,
the SupportPolicy, past PlaybookRuns, the incidents' trigger times, the ChangePolicies) and
``now``; none keeps state in memory, so a restarted or second operator decides the same.
Token buckets are replayed from the start times of past runs, and a storm is recognised from
the incidents' trigger times.

``check_run`` applies the run guards in a fixed order and reports the FIRST refusal, so a
Skipped PlaybookRun names one guard and one reason:

1. ``Paused``: the SupportPolicy's ``spec.remediation.paused`` (global pause);
2. ``PlaybookPaused``: the Playbook's ``spec.paused``;
3. ``Storm``: more than ``storm.maxIncidents`` incidents triggered within ``storm.window``
   (cluster-wide), until ``storm.quietPeriod`` passes without a new incident;
4. ``MaxAttempts``: the Playbook ran ``guards.maxAttempts`` times for the incident;
5. ``Cooldown``: the last run for the incident started less than ``guards.cooldown`` ago;
6. ``MaxConcurrent``: ``guards.maxConcurrent`` runs of the Playbook are under way;
7. ``RateLimit``: the Playbook's bucket (``guards.rateLimit``: perHour, burst), then the
   policy's per-namespace and cluster buckets (``remediation.rateLimit``: perMinute, burst);
8. ``Freeze``: a ChangePolicy freeze window is open and a step is neither ``safeDuringFreeze``
   nor an action that changes nothing (``catalog.ActionSpec.changes_cluster``).

``min_healthy`` is the step guard the controller applies before a disruptive action, with
the replicas the action would take away.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from upkeep.engine import catalog, durations, schedule

__all__ = [
    "ALLOWED",
    "GUARD_ORDER",
    "PastRun",
    "RunFacts",
    "Storm",
    "Verdict",
    "check_run",
    "freeze_window",
    "min_healthy",
    "required_healthy",
    "step_blocked_by_freeze",
    "storm_state",
    "token_bucket",
]

GUARD_ORDER = (
    "Paused",
    "PlaybookPaused",
    "Storm",
    "MaxAttempts",
    "Cooldown",
    "MaxConcurrent",
    "RateLimit",
    "Freeze",
)
"""The guards of ``check_run`` in the order they are asked; the first refusal is the one reported."""

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_COOLDOWN = datetime.timedelta(minutes=10)
DEFAULT_MAX_CONCURRENT = 1
DEFAULT_PER_HOUR, DEFAULT_BURST = 6, 2
DEFAULT_NAMESPACE_PER_MINUTE, DEFAULT_NAMESPACE_BURST = 10, 3
DEFAULT_CLUSTER_PER_MINUTE, DEFAULT_CLUSTER_BURST = 30, 10
DEFAULT_STORM_MAX, DEFAULT_STORM_WINDOW, DEFAULT_STORM_QUIET = (
    10,
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=10),
)
_PERCENT = re.compile(r"^([0-9]{1,3})%$")


@dataclass(frozen=True)
class Verdict:
    """A guard's answer: allowed, or which guard said no and why (for people, and ``status.skipReason``)."""

    allowed: bool
    guard: str = ""
    reason: str = ""

    @property
    def skip_reason(self) -> str:
        """``<Guard>: <reason>``, as a Skipped run records it."""
        return f"{self.guard}: {self.reason}" if self.guard else self.reason


ALLOWED = Verdict(True)


@dataclass(frozen=True)
class PastRun:
    """What the guards need of one existing PlaybookRun."""

    playbook: str
    incident: str
    namespace: str
    started: datetime.datetime
    """When it was created (or started): the moment a token was taken."""
    phase: str
    """Its status.phase ('' before the first write)."""

    @property
    def active(self) -> bool:
        return self.phase in ("", "Pending", "Running")

    @property
    def counted(self) -> bool:
        """Whether it took a token and an attempt: every run but a Skipped one."""
        return self.phase != "Skipped"


@dataclass(frozen=True)
class RunFacts:
    """Everything ``check_run`` looks at for one candidate run."""

    namespace: str
    incident: str
    playbook: str
    playbook_spec: Mapping[str, Any]
    policy_spec: Mapping[str, Any] | None
    runs: Sequence[PastRun]
    """Every PlaybookRun the operator knows (all namespaces), including those of other playbooks."""
    incident_triggers: Sequence[datetime.datetime]
    """When each known incident was triggered (cluster-wide), for storm detection."""
    change_policies: Sequence[Mapping[str, Any]] = ()
    """Every ChangePolicy (their spec.windows decide a freeze)."""


@dataclass(frozen=True)
class Storm:
    """Whether an incident storm pauses automatic remediation now."""

    active: bool
    started: datetime.datetime | None = None
    """The trigger time of the incident that made the storm (its identity: one escalation per storm)."""
    count: int = 0
    """Incidents within the window when it started."""
    ends: datetime.datetime | None = None
    """When it ends if no new incident comes."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _duration(value: Any, default: datetime.timedelta) -> datetime.timedelta:
    if value is None or value == "":
        return default
    return durations.parse_duration(str(value))


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return value


# Token bucket


def token_bucket(
    starts: Iterable[datetime.datetime], *, per_second: float, burst: int, now: datetime.datetime
) -> tuple[bool, datetime.datetime | None]:
    """Whether a bucket of ``burst`` tokens refilled at ``per_second`` has a token now, replayed from past takes.

    Each start took one token (a start that found the bucket empty is counted anyway: it
    happened). Returns (allowed, when the next token is there if not allowed).

    A start written to the second (``status.startedAt``) happened at some moment of that second; it is
    replayed at the last one (but not after ``now``), so the bucket never refills more than it did: replayed
    at the second's start, a run started at 10.9 s would look 0.9 s older, and up to a token too many could
    be granted (bench/remediation.py saw one start beyond the bucket).
    """
    tokens = float(burst)
    last: datetime.datetime | None = None
    for moment in sorted(_latest_in_its_second(start, now) for start in starts if start <= now):
        if last is not None:
            tokens = min(float(burst), tokens + (moment - last).total_seconds() * per_second)
        tokens -= 1.0
        last = moment
    if last is not None:
        tokens = min(float(burst), tokens + (now - last).total_seconds() * per_second)
    if tokens >= 1.0 - 1e-9:
        return True, None
    wait = (1.0 - tokens) / per_second if per_second > 0 else math.inf
    return False, now + datetime.timedelta(seconds=min(wait, 10 * 365 * 86400))


def _latest_in_its_second(moment: datetime.datetime, now: datetime.datetime) -> datetime.datetime:
    if moment.microsecond:
        return moment
    return min(moment + datetime.timedelta(microseconds=999_999), now)


# Storm


def storm_state(
    triggers: Iterable[datetime.datetime],
    *,
    max_incidents: int,
    window: datetime.timedelta,
    quiet_period: datetime.timedelta,
    now: datetime.datetime,
) -> Storm:
    """Replay incident trigger times: a storm starts when more than ``max_incidents`` fall within ``window``,
    and ends once ``quiet_period`` passes without a new incident.

    The incidents of a storm that ended are not counted again: with a ``window`` longer than the
    ``quiet_period`` they would still be within it, and the first incident after the quiet
    period would start a second storm (and a second escalation) instead of being remediated.
    """
    moments = sorted(moment for moment in triggers if moment <= now)
    started: datetime.datetime | None = None
    count = 0
    previous: datetime.datetime | None = None
    low = 0
    for index, moment in enumerate(moments):
        if started is not None and previous is not None and moment - previous >= quiet_period:
            started, low = None, index
        while moments[low] <= moment - window:
            low += 1
        within = index - low + 1
        if started is None and within > max_incidents:
            started, count = moment, within
        previous = moment
    if started is None or previous is None:
        return Storm(False)
    ends = previous + quiet_period
    if now >= ends:
        return Storm(False)
    return Storm(True, started=started, count=count, ends=ends)


def _storm_of(
    policy_spec: Mapping[str, Any] | None, triggers: Sequence[datetime.datetime], now: datetime.datetime
) -> Storm:
    storm = _mapping(_mapping(_mapping(policy_spec).get("remediation")).get("storm"))
    return storm_state(
        triggers,
        max_incidents=_int(storm.get("maxIncidents"), DEFAULT_STORM_MAX),
        window=_duration(storm.get("window"), DEFAULT_STORM_WINDOW),
        quiet_period=_duration(storm.get("quietPeriod"), DEFAULT_STORM_QUIET),
        now=now,
    )


# Freeze


def freeze_window(change_policies: Iterable[Mapping[str, Any]], now: datetime.datetime) -> str | None:
    """The name of a ChangePolicy freeze window open now (``<policy>/<window>``), or None.

    A window that cannot be read (a bad cron or time zone; acceptance reports it on the
    ChangePolicy) is ignored here rather than freezing everything.
    """
    for policy in change_policies:
        name = str(_mapping(policy.get("metadata")).get("name") or "")
        for window in _mapping(policy.get("spec")).get("windows") or ():
            if not isinstance(window, Mapping) or window.get("type") != "Freeze":
                continue
            try:
                parsed = schedule.Window(
                    name=str(window.get("name") or ""),
                    schedule=schedule.parse_cron(str(window.get("schedule") or "")),
                    duration=durations.parse_duration(str(window.get("duration") or "0s")),
                    time_zone=schedule.resolve_time_zone(str(window.get("timeZone") or "UTC")),
                )
            except ValueError:
                continue
            if parsed.open_at(now) is not None:
                return f"{name}/{parsed.name}" if name else parsed.name
    return None


def step_blocked_by_freeze(step: Mapping[str, Any], respect_freeze: bool, window: str | None) -> Verdict:
    """Whether a freeze window keeps this step from acting now."""
    if window is None or not respect_freeze or step.get("safeDuringFreeze"):
        return ALLOWED
    action = str(step.get("action") or "")
    spec = catalog.ACTIONS.get(action)
    if spec is not None and not spec.changes_cluster:
        return ALLOWED
    return Verdict(
        False,
        "Freeze",
        f"the ChangePolicy freeze window {window} is open and step {step.get('name')!r} ({action}) "
        "is not safeDuringFreeze",
    )


# minHealthy


def required_healthy(min_healthy: Any, desired: int) -> int | None:
    """The fewest ready replicas ``min_healthy`` (a count, or "NN%" of desired rounded up) asks; None: no minimum."""
    if min_healthy is None or min_healthy == "":
        return None
    if isinstance(min_healthy, bool):
        raise ValueError("minHealthy must be a count or a percentage such as '50%'")
    if isinstance(min_healthy, int):
        return min_healthy
    text = str(min_healthy).strip()
    found = _PERCENT.match(text)
    if found:
        return math.ceil(desired * int(found.group(1)) / 100)
    if text.isdigit():
        return int(text)
    raise ValueError(f"minHealthy {min_healthy!r} is not a count or a percentage such as '50%'")


def min_healthy(min_healthy: Any, *, ready: int, desired: int, removing: int) -> Verdict:
    """Refuse an action that would leave fewer ready replicas than ``min_healthy`` asks.

    ``ready`` replicas are ready now, ``desired`` is the workload's replica count, and the
    action takes ``removing`` ready replicas away (a pod deleted, a node drained).
    """
    needed = required_healthy(min_healthy, desired)
    if needed is None or removing <= 0:
        return ALLOWED
    left = ready - removing
    if left >= needed:
        return ALLOWED
    return Verdict(
        False,
        "MinHealthy",
        f"the action would leave {max(left, 0)} of {desired} replicas ready, fewer than minHealthy "
        f"{min_healthy} ({needed})",
    )


# The run guards


def check_run(facts: RunFacts, now: datetime.datetime) -> Verdict:
    """Whether a new run of the Playbook for the incident may start now; the first refusal in ``GUARD_ORDER``."""
    spec = facts.playbook_spec
    remediation = _mapping(_mapping(facts.policy_spec).get("remediation"))
    guards = _mapping(spec.get("guards"))
    if remediation.get("paused"):
        return Verdict(
            False, "Paused", "automatic remediation is paused by the SupportPolicy (spec.remediation.paused)"
        )
    if spec.get("paused"):
        return Verdict(False, "PlaybookPaused", f"the Playbook {facts.playbook} is paused (spec.paused)")
    storm = _storm_of(facts.policy_spec, facts.incident_triggers, now)
    if storm.active:
        assert storm.started is not None and storm.ends is not None
        return Verdict(
            False,
            "Storm",
            f"incident storm: {storm.count} incidents within the storm window since "
            f"{storm.started.strftime('%Y-%m-%dT%H:%M:%SZ')}; automatic remediation is paused cluster-wide until "
            f"no new incident for the quiet period (at {storm.ends.strftime('%Y-%m-%dT%H:%M:%SZ')} at the earliest)",
        )
    mine = [run for run in facts.runs if run.playbook == facts.playbook and run.namespace == facts.namespace]
    for_incident = [run for run in mine if run.incident == facts.incident and run.counted]
    max_attempts = _int(guards.get("maxAttempts"), DEFAULT_MAX_ATTEMPTS)
    if len(for_incident) >= max_attempts:
        return Verdict(
            False,
            "MaxAttempts",
            f"the Playbook ran {len(for_incident)} times for this incident (maxAttempts {max_attempts})",
        )
    cooldown = _duration(guards.get("cooldown"), DEFAULT_COOLDOWN)
    if for_incident and cooldown > datetime.timedelta(0):
        last = max(run.started for run in for_incident)
        if now - last < cooldown:
            again = durations.format_duration(last + cooldown - now)
            return Verdict(
                False,
                "Cooldown",
                f"the last run for this incident started {durations.format_duration(now - last)} ago "
                f"(cooldown {durations.format_duration(cooldown)}; {again} left)",
            )
    max_concurrent = _int(guards.get("maxConcurrent"), DEFAULT_MAX_CONCURRENT)
    active = [run for run in mine if run.active]
    if len(active) >= max_concurrent:
        return Verdict(
            False, "MaxConcurrent", f"{len(active)} runs of the Playbook are under way (maxConcurrent {max_concurrent})"
        )
    limit = _mapping(guards.get("rateLimit"))
    per_hour, burst = _int(limit.get("perHour"), DEFAULT_PER_HOUR), _int(limit.get("burst"), DEFAULT_BURST)
    allowed, after = token_bucket(
        [run.started for run in mine if run.counted], per_second=per_hour / 3600.0, burst=burst, now=now
    )
    if not allowed:
        return _rate_refusal(f"the Playbook's rate limit ({per_hour}/h, burst {burst})", after)
    limits = _mapping(remediation.get("rateLimit"))
    namespace_limit, cluster_limit = _mapping(limits.get("perNamespace")), _mapping(limits.get("cluster"))
    counted = [run for run in facts.runs if run.counted]
    for what, runs, section, rate_default, burst_default in (
        (
            f"the namespace {facts.namespace}'s rate limit",
            [run for run in counted if run.namespace == facts.namespace],
            namespace_limit,
            DEFAULT_NAMESPACE_PER_MINUTE,
            DEFAULT_NAMESPACE_BURST,
        ),
        ("the cluster rate limit", counted, cluster_limit, DEFAULT_CLUSTER_PER_MINUTE, DEFAULT_CLUSTER_BURST),
    ):
        per_minute, size = _int(section.get("perMinute"), rate_default), _int(section.get("burst"), burst_default)
        allowed, after = token_bucket([run.started for run in runs], per_second=per_minute / 60.0, burst=size, now=now)
        if not allowed:
            return _rate_refusal(f"{what} ({per_minute}/min, burst {size})", after)
    window = freeze_window(facts.change_policies, now)
    respect = guards.get("respectFreeze", True) is not False
    for step in spec.get("steps") or ():
        if isinstance(step, Mapping):
            verdict = step_blocked_by_freeze(step, respect, window)
            if not verdict.allowed:
                return verdict
    return ALLOWED


def _rate_refusal(what: str, after: datetime.datetime | None) -> Verdict:
    when = f"; the next token at {after.strftime('%Y-%m-%dT%H:%M:%SZ')}" if after is not None else ""
    return Verdict(False, "RateLimit", f"{what} is exhausted{when}")
