"""The remediation action catalog: every action a Playbook step may name, and its params.

The catalog is data about actions (what they need, what kind of value each param takes,
whether the action is safe during a change freeze); the actions themselves live in
``upkeep.actions``. ``check_params`` is what ``upkeep validate`` and the Playbook
controller use to refuse a step before it ever runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from upkeep.engine import durations

__all__ = ["ACTIONS", "ActionSpec", "Param", "ParamProblem", "check_params", "names"]

_SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


@dataclass(frozen=True)
class Param:
    """One parameter of an action."""

    kind: str
    """One of: int, number, string, duration, bool, object, list, severity, any."""
    required: bool = False
    help: str = ""
    minimum: float | None = None


@dataclass(frozen=True)
class ActionSpec:
    """What an action needs and promises."""

    name: str
    summary: str
    params: Mapping[str, Param] = field(default_factory=dict)
    exactly_one_of: tuple[str, ...] = ()
    """At most and at least one of these params must be given."""
    changes_cluster: bool = True
    """False for actions that only wait or tell people; those are safe during a freeze."""


ACTIONS: Mapping[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "deletePod",
            "Delete the affected pod (or the pods a label selector picks) so its controller replaces it.",
            {"selector": Param("string", help="a label selector; default: the incident's pod")},
        ),
        ActionSpec("rolloutRestart", "Restart the workload's pods the way `kubectl rollout restart` does."),
        ActionSpec(
            "rollbackDeployment",
            "Roll the Deployment back to its previous revision (or to toRevision).",
            {"toRevision": Param("int", minimum=1, help="the revision to go back to")},
        ),
        ActionSpec(
            "scale",
            "Scale the workload to a replica count or by a delta, within bounds.",
            {
                "replicas": Param("int", minimum=0, help="the replica count to set"),
                "by": Param("int", help="how many replicas to add (negative: remove)"),
                "min": Param("int", minimum=0, help="never fewer replicas than this"),
                "max": Param("int", minimum=1, help="never more replicas than this"),
            },
            exactly_one_of=("replicas", "by"),
        ),
        ActionSpec(
            "patch",
            "Apply a JSON merge patch to the workload (or to target); values may use the incident context.",
            {
                "patch": Param("object", required=True, help="the merge patch"),
                "target": Param("object", help="apiVersion, kind and name of the object to patch"),
            },
        ),
        ActionSpec("cordonNode", "Mark the affected node unschedulable."),
        ActionSpec(
            "drainNode",
            "Evict the pods of the affected node through the Eviction API, honouring PodDisruptionBudgets.",
            {
                "gracePeriod": Param("duration", help="how long a pod gets to stop"),
                "timeout": Param("duration", help="how long the drain may take"),
            },
        ),
        ActionSpec(
            "runJob",
            "Run a Job from a template, wait for it, and capture its result.",
            {
                "template": Param("object", required=True, help="the Job spec"),
                "timeout": Param("duration", help="how long to wait for the Job"),
            },
        ),
        ActionSpec(
            "wait",
            "Wait for a time before the next step.",
            {"duration": Param("duration", required=True, help="how long")},
            changes_cluster=False,
        ),
        ActionSpec(
            "notify",
            "Send a message to notification channels of the SupportPolicy.",
            {
                "channels": Param("list", required=True, help="channel names"),
                "message": Param("string", help="the text; default: a summary of the incident"),
            },
            changes_cluster=False,
        ),
        ActionSpec(
            "escalate",
            "Raise the incident's escalation level (and its severity) and notify.",
            {
                "severity": Param("severity", help="the severity to raise to"),
                "channels": Param("list", help="channel names; default: the next escalation level's"),
            },
            changes_cluster=False,
        ),
        ActionSpec(
            "setOverride",
            "Hold a value git disagrees with (a raised limit, more replicas) for a time, recorded on the Release.",
            {
                "fieldPath": Param(
                    "string", required=True, help="the field of the workload, e.g. a container's memory limit"
                ),
                "value": Param("any", help="the value to hold"),
                "factor": Param("number", minimum=0, help="multiply the current value by this"),
                "maxFactor": Param("number", minimum=1, help="never more than this times the declared value"),
                "expiresIn": Param("duration", required=True, help="how long the override holds"),
            },
            exactly_one_of=("value", "factor"),
        ),
        ActionSpec(
            "proposeFix",
            "Propose the permanent fix to git as a branch for review.",
            {
                "fieldPath": Param("string", required=True, help="the declared field to change"),
                "value": Param("any", help="the new value"),
                "factor": Param("number", minimum=0, help="multiply the declared value by this"),
                "message": Param("string", help="the commit message's summary"),
            },
            changes_cluster=False,
        ),
    )
}


def names() -> tuple[str, ...]:
    """Every action name, sorted."""
    return tuple(sorted(ACTIONS))


@dataclass(frozen=True)
class ParamProblem:
    """One thing wrong with a step's params; ``param`` is empty for the params as a whole."""

    param: str
    message: str
    code: str


def _type_problem(value: Any, param: Param) -> str | None:
    kind = param.kind
    if kind == "any":
        return None
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
    elif kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false"
    elif kind in ("string", "duration", "severity"):
        if not isinstance(value, str):
            return "must be a string"
        if kind == "duration":
            try:
                durations.parse_duration(value)
            except durations.DurationError as error:
                return str(error)
        if kind == "severity" and value not in _SEVERITIES:
            return f"must be one of {', '.join(_SEVERITIES)}"
    elif kind == "object":
        if not isinstance(value, Mapping):
            return "must be an object"
    elif kind == "list" and not isinstance(value, list):
        return "must be a list"
    if param.minimum is not None and isinstance(value, int | float) and value < param.minimum:
        return f"must be at least {param.minimum:g}"
    return None


def check_params(action: str, params: Mapping[str, Any] | None) -> list[ParamProblem]:
    """Everything wrong with ``params`` for ``action`` (empty: fine).

    An unknown action is one problem with an empty ``param``.
    """
    spec = ACTIONS.get(action)
    if spec is None:
        return [ParamProblem("", f"unknown action {action!r}; known actions: {', '.join(names())}", "unknown-action")]
    given = dict(params or {})
    problems: list[ParamProblem] = []
    for name, value in given.items():
        param = spec.params.get(name)
        if param is None:
            known = ", ".join(spec.params) or "none"
            problems.append(ParamProblem(name, f"{action} has no param {name!r}; its params: {known}", "unknown-param"))
            continue
        wrong = _type_problem(value, param)
        if wrong:
            problems.append(ParamProblem(name, f"{action}.{name} {wrong}", "param-type"))
    for name, param in spec.params.items():
        if param.required and name not in given:
            problems.append(ParamProblem(name, f"{action} needs param {name!r} ({param.help})", "missing-param"))
    if spec.exactly_one_of:
        present = [name for name in spec.exactly_one_of if name in given]
        if len(present) != 1:
            choice = " or ".join(spec.exactly_one_of)
            problems.append(
                ParamProblem("", f"{action} needs exactly one of {choice} (got {len(present)})", "param-choice")
            )
    return problems
