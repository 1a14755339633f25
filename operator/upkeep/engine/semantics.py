"""Checks of Upkeep objects that a schema cannot express.

Cron expressions and time zones that must exist, durations that must be positive or
ordered, canary weights that must not go down, actions and params known to the catalog,
and references between the objects of one set (a Release's GitSource, a PlaybookRun's
Playbook). A reference is checked only when the set holds some object of the referenced
kind in that namespace: a set without any GitSource may refer to one in the cluster.

Every check takes a body with the schema's defaults applied and returns ``Issue`` records
whose ``path`` names the field.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upkeep.engine import catalog, durations, schedule

__all__ = ["CLUSTER_SCOPE_LABEL", "Issue", "ObjectSet", "check"]

Path = tuple[str | int, ...]
CLUSTER_SCOPE_LABEL = "upkeep.dev/scope"
"""A Playbook with this label set to ``cluster`` (in the operator's namespace) serves every namespace."""
_CLUSTER_SCOPED = frozenset({"ChangePolicy", "SupportPolicy"})


@dataclass(frozen=True)
class Issue:
    """One semantic problem: where, a stable code, and what was expected."""

    path: Path
    code: str
    message: str
    severity: str = "error"


@dataclass
class ObjectSet:
    """The objects validated together, for reference checks."""

    names: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    """(kind, namespace) → names; cluster-scoped kinds use the namespace ""."""
    channels: set[str] = field(default_factory=set)
    """Channel names declared by the SupportPolicies of the set."""
    cluster_playbooks: set[str] = field(default_factory=set)
    """Playbooks labelled ``upkeep.dev/scope: cluster``: they serve every namespace."""
    has_support_policy: bool = False

    @classmethod
    def of(cls, bodies: Iterable[Mapping[str, Any]]) -> ObjectSet:
        found = cls()
        for body in bodies:
            kind = str(body.get("kind", ""))
            meta = body.get("metadata") or {}
            namespace = "" if kind in _CLUSTER_SCOPED else str(meta.get("namespace") or "default")
            found.names.setdefault((kind, namespace), set()).add(str(meta.get("name", "")))
            labels = meta.get("labels") or {}
            if kind == "Playbook" and isinstance(labels, Mapping) and labels.get(CLUSTER_SCOPE_LABEL) == "cluster":
                found.cluster_playbooks.add(str(meta.get("name", "")))
            if kind == "SupportPolicy":
                found.has_support_policy = True
                for channel in (body.get("spec") or {}).get("channels") or []:
                    if isinstance(channel, Mapping) and "name" in channel:
                        found.channels.add(str(channel["name"]))
        return found

    def missing(self, kind: str, namespace: str, name: str) -> str | None:
        """A message when the set has objects of ``kind`` in ``namespace`` but not ``name``."""
        scope = "" if kind in _CLUSTER_SCOPED else namespace
        present = self.names.get((kind, scope))
        if not present or name in present:
            return None
        if kind == "Playbook" and name in self.cluster_playbooks:
            return None
        where = "" if kind in _CLUSTER_SCOPED else f" in namespace {namespace}"
        return f"no {kind} named {name!r}{where}; the set has: {_some(present)}"


def _some(names: Iterable[str], most: int = 8) -> str:
    """A sorted list of names for a message, cut after ``most``."""
    ordered = sorted(names)
    if len(ordered) <= most:
        return ", ".join(ordered)
    return f"{', '.join(ordered[:most])} and {len(ordered) - most} more"


def _spec(body: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _namespace(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("namespace") or "default")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _duration(value: Any) -> datetime.timedelta | None:
    try:
        return durations.parse_duration(value)
    except durations.DurationError:
        return None


def _positive_durations(spec: Mapping[str, Any], base: Path, names: Sequence[str]) -> list[Issue]:
    issues = []
    for name in names:
        parsed = _duration(spec.get(name)) if name in spec else None
        if parsed is not None and parsed <= datetime.timedelta(0):
            issues.append(Issue((*base, name), "semantic.non-positive-duration", "must be longer than 0s"))
    return issues


def _reference(objects: ObjectSet, body: Mapping[str, Any], path: Path, kind: str, ref: Any) -> list[Issue]:
    if not isinstance(ref, Mapping) or "name" not in ref:
        return []
    message = objects.missing(kind, str(ref.get("namespace") or _namespace(body)), str(ref["name"]))
    return [Issue((*path, "name"), "semantic.dangling-reference", message)] if message else []


def _check_gitsource(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    return _positive_durations(spec, ("spec",), ("interval", "timeout"))


def _check_release(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    issues = _reference(objects, body, ("spec", "sourceRef"), "GitSource", spec.get("sourceRef"))
    issues += _reference(objects, body, ("spec", "changePolicyRef"), "ChangePolicy", spec.get("changePolicyRef"))
    issues += _positive_durations(spec, ("spec",), ("interval", "timeout"))
    path = str(spec.get("path", ""))
    if ".." in path.split("/"):
        issues.append(Issue(("spec", "path"), "semantic.path-escapes", "must stay inside the repository: remove '..'"))
    strategy = _map(spec.get("strategy"))
    canary = _map(strategy.get("canary"))
    steps = _list(canary.get("steps"))
    if strategy.get("type") == "Canary" and not steps:
        issues.append(
            Issue(
                ("spec", "strategy", "canary", "steps"),
                "semantic.canary-without-steps",
                "strategy.type Canary needs canary.steps (e.g. setWeight 20, pause, analysis, setWeight 100)",
            )
        )
    if strategy.get("type") == "Canary" and not spec.get("workloadRef"):
        issues.append(
            Issue(
                ("spec", "workloadRef"),
                "semantic.canary-without-workload",
                "strategy.type Canary needs workloadRef: the Deployment to roll out",
            )
        )
    weight = 0
    for index, step in enumerate(steps):
        if not isinstance(step, Mapping):
            continue
        base: Path = ("spec", "strategy", "canary", "steps", index)
        if isinstance(step.get("setWeight"), int):
            if step["setWeight"] < weight:
                issues.append(
                    Issue(
                        (*base, "setWeight"),
                        "semantic.weight-decreases",
                        f"must not be below the previous setWeight {weight}; a canary only moves forward",
                    )
                )
            weight = max(weight, step["setWeight"])
        analysis = step.get("analysis")
        if isinstance(analysis, Mapping):
            for number, metric in enumerate(_list(analysis.get("metrics"))):
                if not isinstance(metric, Mapping):
                    continue
                needed = {"Prometheus": "prometheus", "HTTP": "http"}.get(str(metric.get("type")))
                if needed and not isinstance(metric.get(needed), Mapping):
                    issues.append(
                        Issue(
                            (*base, "analysis", "metrics", number, needed),
                            "semantic.metric-without-source",
                            f"a metric of type {metric.get('type')} needs its {needed} block",
                        )
                    )
    return issues


def _check_change(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    issues = _reference(objects, body, ("spec", "releaseRef"), "Release", spec.get("releaseRef"))
    if spec.get("type") == "Emergency" and not str(spec.get("emergencyJustification", "")).strip():
        issues.append(
            Issue(
                ("spec", "emergencyJustification"),
                "semantic.emergency-without-justification",
                "an Emergency change needs emergencyJustification: why it cannot wait for the normal process",
            )
        )
    window = spec.get("requestedWindow")
    if isinstance(window, Mapping):
        start, end = _timestamp(window.get("start")), _timestamp(window.get("end"))
        if start and end and end <= start:
            issues.append(
                Issue(
                    ("spec", "requestedWindow", "end"),
                    "semantic.window-ends-before-start",
                    "must be later than requestedWindow.start",
                )
            )
    return issues


def _timestamp(value: Any) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _check_changepolicy(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, window in enumerate(_list(_spec(body).get("windows"))):
        if not isinstance(window, Mapping):
            continue
        base: Path = ("spec", "windows", index)
        name = str(window.get("name", ""))
        if name in seen:
            issues.append(Issue((*base, "name"), "semantic.duplicate-name", f"window name {name!r} is used twice"))
        seen.add(name)
        if "schedule" in window:
            try:
                schedule.parse_cron(str(window["schedule"]))
            except schedule.CronError as error:
                issues.append(Issue((*base, "schedule"), "semantic.bad-cron", f"not a cron expression: {error}"))
        if "timeZone" in window:
            try:
                schedule.resolve_time_zone(str(window["timeZone"]))
            except ValueError as error:
                issues.append(Issue((*base, "timeZone"), "semantic.unknown-time-zone", str(error)))
        issues += _positive_durations(window, base, ("duration",))
    return issues


def _check_incident(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    return []


def _check_problem(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    return _reference(objects, body, ("spec", "fixChangeRef"), "Change", spec.get("fixChangeRef"))


def _check_playbook(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    issues: list[Issue] = []
    seen: set[str] = set()
    for index, step in enumerate(_list(spec.get("steps"))):
        if not isinstance(step, Mapping):
            continue
        base: Path = ("spec", "steps", index)
        name = str(step.get("name", ""))
        if name in seen:
            issues.append(Issue((*base, "name"), "semantic.duplicate-name", f"step name {name!r} is used twice"))
        seen.add(name)
        action = str(step.get("action", ""))
        params = _map(step.get("params"))
        for problem in catalog.check_params(action, params):
            if problem.code == "unknown-action":
                where: Path = (*base, "action")
            elif problem.param:
                where = (*base, "params", problem.param)
            else:
                where = (*base, "params")
            issues.append(Issue(where, f"semantic.{problem.code}", problem.message))
        if action in {"notify", "escalate"}:
            issues += _channel_refs(objects, (*base, "params", "channels"), params.get("channels"))
    escalation = spec.get("escalation")
    if isinstance(escalation, Mapping):
        issues += _channel_refs(objects, ("spec", "escalation", "notify"), escalation.get("notify"))
    return issues


def _channel_refs(objects: ObjectSet, path: Path, names: Any) -> list[Issue]:
    if not objects.has_support_policy:
        return []
    issues = []
    for index, name in enumerate(_list(names)):
        if str(name) not in objects.channels:
            known = _some(objects.channels) or "none"
            issues.append(
                Issue(
                    (*path, index),
                    "semantic.unknown-channel",
                    f"no channel {name!r} in the SupportPolicies of the set; channels: {known}",
                )
            )
    return issues


def _check_playbookrun(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    issues = _reference(objects, body, ("spec", "playbookRef"), "Playbook", spec.get("playbookRef"))
    issues += _reference(objects, body, ("spec", "incidentRef"), "Incident", spec.get("incidentRef"))
    return issues


def _check_supportpolicy(body: Mapping[str, Any], objects: ObjectSet) -> list[Issue]:
    spec = _spec(body)
    issues: list[Issue] = []
    severities: set[str] = set()
    for index, target in enumerate(_list(spec.get("sla"))):
        if not isinstance(target, Mapping):
            continue
        base: Path = ("spec", "sla", index)
        severity = str(target.get("severity", ""))
        if severity in severities:
            issues.append(
                Issue(
                    (*base, "severity"),
                    "semantic.duplicate-name",
                    f"severity {severity} has two SLA entries; keep one",
                )
            )
        severities.add(severity)
        issues += _positive_durations(target, base, ("acknowledgeWithin", "resolveWithin"))
        acknowledge, resolve = (
            _duration(target.get("acknowledgeWithin")),
            _duration(target.get("resolveWithin")),
        )
        if acknowledge is not None and resolve is not None and resolve < acknowledge:
            issues.append(
                Issue(
                    (*base, "resolveWithin"),
                    "semantic.resolve-before-acknowledge",
                    f"must be at least acknowledgeWithin ({target.get('acknowledgeWithin')})",
                )
            )
    channels = {str(channel.get("name")) for channel in _list(spec.get("channels")) if isinstance(channel, Mapping)}
    escalation = _map(spec.get("escalation"))
    levels = [
        (index, level)
        for index, level in enumerate(_list(escalation.get("levels")))
        if isinstance(level, Mapping) and isinstance(level.get("level"), int)
    ]
    previous: tuple[int, datetime.timedelta] | None = None
    for index, level in sorted(levels, key=lambda item: int(item[1]["level"])):
        base = ("spec", "escalation", "levels", index)
        for number, name in enumerate(_list(level.get("channels"))):
            if str(name) not in channels:
                issues.append(
                    Issue(
                        (*base, "channels", number),
                        "semantic.unknown-channel",
                        f"no channel {name!r} in spec.channels; channels: {', '.join(sorted(channels)) or 'none'}",
                    )
                )
        after = _duration(level.get("after"))
        if after is not None and previous is not None and after <= previous[1]:
            issues.append(
                Issue(
                    (*base, "after"),
                    "semantic.escalation-order",
                    f"must be later than level {previous[0]}'s after; levels escalate in time order",
                )
            )
        if after is not None:
            previous = (int(level["level"]), after)
    for index, rule in enumerate(_list(spec.get("severityRules"))):
        match = rule.get("match") if isinstance(rule, Mapping) else None
        if isinstance(match, Mapping) and not any(match.get(key) for key in ("signalTypes", "namespaces", "selector")):
            issues.append(
                Issue(
                    ("spec", "severityRules", index, "match"),
                    "semantic.empty-match",
                    "matches everything; use spec.defaultSeverity for that, "
                    "or name signalTypes, namespaces or a selector",
                    severity="warning",
                )
            )
    return issues


_CHECKS: Mapping[str, Callable[[Mapping[str, Any], ObjectSet], list[Issue]]] = {
    "GitSource": _check_gitsource,
    "Release": _check_release,
    "Change": _check_change,
    "ChangePolicy": _check_changepolicy,
    "Incident": _check_incident,
    "Problem": _check_problem,
    "Playbook": _check_playbook,
    "PlaybookRun": _check_playbookrun,
    "SupportPolicy": _check_supportpolicy,
}


def check(body: Mapping[str, Any], objects: ObjectSet | None = None) -> list[Issue]:
    """Every semantic issue of one Upkeep object (schema defaults applied) within its set."""
    checker = _CHECKS.get(str(body.get("kind", "")))
    if checker is None:
        return []
    return checker(body, objects or ObjectSet.of([body]))
