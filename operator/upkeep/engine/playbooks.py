"""The decisions of the playbook controller: which Playbook an Incident gets, the run's name and params, and
the run's state machine over ``PlaybookRun.status``.

Everything is pure: bodies in, new dicts out, the time passed in. The controller does the I/O.

- Matching (``candidates``): a Playbook matches an Incident when the incident's signal type is
  one of ``match.signalTypes``, its namespace is in ``match.namespaces`` (if given), the
  label selector ``match.selector`` selects the workload's labels (``spec.signal.labels``
  hold them) and the severity is at least as bad as ``match.minSeverity`` (SEV1 is the
  worst: minSeverity SEV3 matches SEV1 to SEV3). Candidates are ordered by
  (``spec.order``, name); paused ones are set apart (reported, never run), and an invalid
  one (``engine.acceptance``) never matches.
- Params (``render_params``): a string param may refer to the incident with
  ``{{ incident.signal.labels.container }}``; a param that is only a reference takes the
  value's own type. A reference to nothing is an error naming the step and the param.
- The run (``new_run``): one per (incident, playbook, attempt), named
  ``<incident>-<playbook>-<attempt>`` (shortened with a hash past 253 characters), owned by
  the Incident, labelled ``upkeep.dev/incident`` and ``upkeep.dev/playbook``.
- The state machine (``next_move`` and the ``*_status`` functions): Pending → Running →
  each step Pending → Running (its idempotency key ``<run-uid>/<index>`` recorded FIRST) →
  Succeeded / Failed / DryRun → verification → Succeeded (condition Succeeded=True) or
  Failed (Succeeded=False); Skipped (with ``skipReason``) when a guard said no; DryRun when
  every step only recorded what it would do. Moves are checked by ``model.lifecycle``.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from upkeep.engine import acceptance, durations, severity, sla
from upkeep.model import conditions, errors, lifecycle

__all__ = [
    "API_VERSION",
    "INCIDENT_LABEL",
    "KIND",
    "OUTPUT_MAX",
    "PLAYBOOK_LABEL",
    "RUN_KIND",
    "ActiveStep",
    "Matching",
    "Move",
    "TemplateError",
    "WorkloadFacts",
    "candidates",
    "dry_run_step_status",
    "finished_status",
    "initial_status",
    "matches",
    "needs_rollout_time",
    "new_run",
    "next_move",
    "raised_severity",
    "render_params",
    "run_name",
    "skipped_status",
    "started_status",
    "step_key",
    "step_outcome_status",
    "step_started_status",
    "verification_status",
]

API_VERSION = "upkeep.dev/v1alpha1"
KIND = "Playbook"
RUN_KIND = "PlaybookRun"
INCIDENT_LABEL = "upkeep.dev/incident"
PLAYBOOK_LABEL = "upkeep.dev/playbook"
OUTPUT_MAX = 4096
"""The CRD's limit on a step's output."""
_NAME_MAX = 253
_LABEL_MAX = 63
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}")
_WHOLE_REFERENCE = re.compile(r"^\s*\{\{\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}\}\s*$")


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _metadata(body: Mapping[str, Any]) -> Mapping[str, Any]:
    return _mapping(body.get("metadata"))


def _name(body: Mapping[str, Any]) -> str:
    return str(_metadata(body).get("name") or "")


# Matching


@dataclass(frozen=True)
class Matching:
    """The Playbooks that match one incident, best first, and the paused ones that would have."""

    playbooks: tuple[Mapping[str, Any], ...]
    paused: tuple[Mapping[str, Any], ...] = ()


def _severity_rank(value: str) -> int:
    return sla.SEVERITIES.index(value) if value in sla.SEVERITIES else len(sla.SEVERITIES)


@dataclass(frozen=True)
class WorkloadFacts:
    """What the cluster says about the incident's workload that a match may ask about."""

    rolled_out_at: datetime.datetime | None = None
    """When its pods last changed by a rollout (not a restart); None when unknown or never."""
    now: datetime.datetime | None = None


def needs_rollout_time(playbook: Mapping[str, Any]) -> bool:
    """Whether the Playbook's match asks when the workload was rolled out (``match.rolledOutWithin``)."""
    return bool(_mapping(_mapping(playbook.get("spec")).get("match")).get("rolledOutWithin"))


def matches(playbook: Mapping[str, Any], incident: Mapping[str, Any], facts: WorkloadFacts | None = None) -> bool:
    """Whether the Playbook's ``spec.match`` holds for the Incident (pause and validity aside).

    ``match.rolledOutWithin`` holds when ``facts`` say the workload was rolled out within that long before
    ``facts.now``; without facts (or an unreadable duration) it does not hold: a playbook that rolls back
    because of a recent rollout must not run on a guess.
    """
    match = _mapping(_mapping(playbook.get("spec")).get("match"))
    within = match.get("rolledOutWithin")
    if within:
        if facts is None or facts.rolled_out_at is None or facts.now is None:
            return False
        try:
            window = durations.parse_duration(str(within))
        except durations.DurationError:
            return False
        if facts.now - facts.rolled_out_at > window:
            return False
    spec = _mapping(incident.get("spec"))
    signal = _mapping(spec.get("signal"))
    types = _list(match.get("signalTypes"))
    if str(signal.get("type") or "") not in [str(item) for item in types]:
        return False
    namespaces = [str(item) for item in _list(match.get("namespaces"))]
    if namespaces and str(_metadata(incident).get("namespace") or "") not in namespaces:
        return False
    labels = {str(key): str(value) for key, value in _mapping(signal.get("labels")).items()}
    try:
        if not severity.label_selector_matches(match.get("selector"), labels):
            return False
    except errors.SpecError:
        return False
    least = str(match.get("minSeverity") or "SEV4")
    return _severity_rank(str(spec.get("severity") or "SEV4")) <= _severity_rank(least)


def _order(playbook: Mapping[str, Any]) -> tuple[int, str]:
    order = _mapping(playbook.get("spec")).get("order")
    return (order if isinstance(order, int) and not isinstance(order, bool) else 100, _name(playbook))


_VALID: dict[str, bool] = {}
"""Whether a Playbook is valid, by its uid and resourceVersion (else by its kind, name and spec, all that a
verdict looks at). Judging a Playbook (its schema's defaults, then the semantic checks) for every incident
cost a tenth of the operator's CPU when a hundred incidents came at once (bench/remediation.py)."""
_VALID_MAX = 1024


def _valid(playbook: Mapping[str, Any]) -> bool:
    metadata = _mapping(playbook.get("metadata"))
    uid, version = metadata.get("uid"), metadata.get("resourceVersion")
    if uid and version:  # one version of one object: the API server never gives two bodies these
        key = f"{uid}/{version}"
    else:
        key = json.dumps(
            [playbook.get("kind"), metadata.get("name"), metadata.get("namespace"), playbook.get("spec")],
            sort_keys=True,
            default=str,
        )
    verdict = _VALID.get(key)
    if verdict is None:
        if len(_VALID) >= _VALID_MAX:
            _VALID.clear()
        verdict = _VALID[key] = acceptance.assess(playbook).accepted
    return verdict


def candidates(
    playbooks: Sequence[Mapping[str, Any]], incident: Mapping[str, Any], facts: WorkloadFacts | None = None
) -> Matching:
    """The valid Playbooks that match the incident, by (order, name); paused ones apart."""
    found = sorted((item for item in playbooks if matches(item, incident, facts) and _valid(item)), key=_order)
    active = tuple(item for item in found if not _mapping(item.get("spec")).get("paused"))
    paused = tuple(item for item in found if _mapping(item.get("spec")).get("paused"))
    return Matching(active, paused)


# Params


class TemplateError(errors.SpecError):
    """A param refers to something the incident does not have; the message names the step and the param."""


def _context(incident: Mapping[str, Any]) -> dict[str, Any]:
    spec = _mapping(incident.get("spec"))
    metadata = _metadata(incident)
    return {
        "incident": {
            **spec,
            "name": metadata.get("name"),
            "namespace": metadata.get("namespace"),
            "labels": dict(_mapping(metadata.get("labels"))),
            "status": dict(_mapping(incident.get("status"))),
        }
    }


def _lookup(context: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    current: Any = context
    for part in path.split("."):
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return current is not None, current


def _render(value: Any, context: Mapping[str, Any], step: str, param: str) -> Any:
    if isinstance(value, str):
        whole = _WHOLE_REFERENCE.match(value)
        if whole:
            found, resolved = _lookup(context, whole.group(1))
            if not found:
                raise _missing(step, param, whole.group(1))
            return resolved

        def substitute(reference: re.Match[str]) -> str:
            found, resolved = _lookup(context, reference.group(1))
            if not found:
                raise _missing(step, param, reference.group(1))
            return str(resolved)

        return _REFERENCE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {key: _render(item, context, step, f"{param}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_render(item, context, step, f"{param}[{index}]") for index, item in enumerate(value)]
    return value


def _missing(step: str, param: str, reference: str) -> TemplateError:
    return TemplateError(
        f"step {step!r} param {param!r}: {{{{ {reference} }}}} names nothing in the incident",
        field=f"params.{param}",
    )


def render_params(step: Mapping[str, Any], incident: Mapping[str, Any]) -> dict[str, Any]:
    """The step's params with every ``{{ incident.… }}`` reference filled in (``TemplateError`` when one is missing)."""
    context = _context(incident)
    name = str(step.get("name") or "")
    return {str(key): _render(value, context, name, str(key)) for key, value in _mapping(step.get("params")).items()}


# The run object


def _shorten(text: str, most: int) -> str:
    if len(text) <= most:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{text[: most - 9].rstrip('-.')}-{digest}"


def run_name(incident: str, playbook: str, attempt: int) -> str:
    """``<incident>-<playbook>-<attempt>``: every replica derives the same name, so the API server keeps one run."""
    return _shorten(f"{incident}-{playbook}-{attempt}", _NAME_MAX)


def step_key(run_uid: str, index: int) -> str:
    """The idempotency key of step ``index`` of a run: deterministic, recorded before the action runs."""
    return f"{run_uid}/{index}"


def new_run(incident: Mapping[str, Any], playbook: Mapping[str, Any], attempt: int, *, dry_run: bool) -> dict[str, Any]:
    """The body of the PlaybookRun of ``playbook`` for ``incident`` (spec only; the status follows)."""
    metadata = _metadata(incident)
    incident_name, playbook_name = str(metadata.get("name") or ""), _name(playbook)
    owner = {
        "apiVersion": str(incident.get("apiVersion") or API_VERSION),
        "kind": "Incident",
        "name": incident_name,
        "uid": str(metadata.get("uid") or ""),
        "controller": False,
        "blockOwnerDeletion": False,
    }
    return {
        "apiVersion": API_VERSION,
        "kind": RUN_KIND,
        "metadata": {
            "name": run_name(incident_name, playbook_name, attempt),
            "namespace": str(metadata.get("namespace") or ""),
            "labels": {
                INCIDENT_LABEL: _shorten(incident_name, _LABEL_MAX),
                PLAYBOOK_LABEL: _shorten(playbook_name, _LABEL_MAX),
            },
            "ownerReferences": [owner] if owner["uid"] else [],
        },
        "spec": {
            "playbookRef": {"name": playbook_name},
            "incidentRef": {"name": incident_name},
            "attempt": attempt,
            "dryRun": dry_run,
        },
    }


def raised_severity(current: str) -> str:
    """One level worse (SEV3 → SEV2), never past SEV1."""
    rank = _severity_rank(current)
    if rank >= len(sla.SEVERITIES):
        return sla.SEVERITIES[-1]
    return sla.SEVERITIES[max(rank - 1, 0)]


# Status


def _phase(status: Mapping[str, Any]) -> str | None:
    return str(status.get("phase") or "") or None


def _moved(status: Mapping[str, Any], target: str) -> dict[str, Any]:
    lifecycle.check_transition(RUN_KIND, _phase(status), target)
    out = dict(status)
    out["phase"] = target
    return out


def initial_status(
    *, playbook_generation: int | None, awaiting_approval: bool, generation: int | None, now: datetime.datetime
) -> dict[str, Any]:
    """A new run: Pending, Ready=Unknown (Progressing, or AwaitingApproval)."""
    reason, message = (
        ("AwaitingApproval", "The run waits for approval (`upkeep playbookrun approve`).")
        if awaiting_approval
        else ("Progressing", "The run is about to start.")
    )
    found = conditions.set_condition(
        [], conditions.Condition(conditions.READY, "Unknown", reason, message, generation), now=now
    )
    status: dict[str, Any] = {"phase": "Pending", "currentStep": 0, "steps": [], "conditions": found}
    if playbook_generation is not None:
        status["playbookGeneration"] = playbook_generation
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def skipped_status(
    status: Mapping[str, Any], reason: str, *, generation: int | None, now: datetime.datetime
) -> dict[str, Any]:
    """A run a guard refused: Skipped with the reason, Succeeded=False/Skipped."""
    out = _moved(status, "Skipped")
    out["skipReason"] = reason
    out["finishedAt"] = sla.format_time(now)
    out["conditions"] = conditions.mark_succeeded(
        _list(status.get("conditions")),
        succeeded=False,
        reason="Skipped",
        message=reason,
        generation=generation,
        now=now,
    )
    return out


def started_status(status: Mapping[str, Any], *, generation: int | None, now: datetime.datetime) -> dict[str, Any]:
    """Pending → Running."""
    out = _moved(status, "Running")
    out.setdefault("startedAt", sla.format_time(now))
    out["currentStep"] = int(status.get("currentStep") or 0)
    out["conditions"] = conditions.mark_reconciling(
        _list(status.get("conditions")), generation=generation, message="The run is under way.", now=now
    )
    return out


def _steps(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(item) for item in _list(status.get("steps")) if isinstance(item, Mapping)]


def _with_step(status: Mapping[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    out = dict(status)
    steps = _steps(status)
    for index, item in enumerate(steps):
        if item.get("name") == entry["name"]:
            steps[index] = {**item, **entry}
            break
    else:
        steps.append(entry)
    out["steps"] = steps
    return out


def _text(value: str) -> str:
    return value if len(value) <= OUTPUT_MAX else value[: OUTPUT_MAX - 1] + "…"


def step_started_status(
    status: Mapping[str, Any], step: Mapping[str, Any], *, key: str, description: str, now: datetime.datetime
) -> dict[str, Any]:
    """The step is Running with its idempotency key and what it will do: written BEFORE the action runs."""
    entry = {
        "name": str(step.get("name") or ""),
        "action": str(step.get("action") or ""),
        "phase": "Running",
        "idempotencyKey": key,
        "startedAt": sla.format_time(now),
        "output": _text(description),
    }
    return _with_step(status, entry)


def step_outcome_status(
    status: Mapping[str, Any],
    step: Mapping[str, Any],
    index: int,
    *,
    phase: Literal["Running", "Succeeded", "Failed", "Skipped"],
    outcome: str,
    message: str,
    output: str | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Record what the step did. Running: the action acted and its own verification is pending."""
    entry: dict[str, Any] = {
        "name": str(step.get("name") or ""),
        "action": str(step.get("action") or ""),
        "phase": phase,
        "outcome": outcome,
        "message": _text(message),
    }
    if output is not None:
        entry["output"] = _text(output)
    if phase != "Running":
        entry["finishedAt"] = sla.format_time(now)
    out = _with_step(status, entry)
    if phase != "Running":
        out["currentStep"] = max(int(status.get("currentStep") or 0), index + 1)
    return out


def dry_run_step_status(
    status: Mapping[str, Any], step: Mapping[str, Any], index: int, *, description: str, now: datetime.datetime
) -> dict[str, Any]:
    """A step of a dry run: what it would do, recorded; nothing done."""
    at = sla.format_time(now)
    entry = {
        "name": str(step.get("name") or ""),
        "action": str(step.get("action") or ""),
        "phase": "DryRun",
        "startedAt": at,
        "finishedAt": at,
        "outcome": "DryRun",
        "output": _text(description),
        "message": "dry run: nothing was changed",
    }
    out = _with_step(status, entry)
    out["currentStep"] = max(int(status.get("currentStep") or 0), index + 1)
    return out


def verification_status(
    status: Mapping[str, Any],
    *,
    holds: bool,
    why: str,
    spec: Mapping[str, Any],
    now: datetime.datetime,
) -> tuple[dict[str, Any], str, datetime.datetime | None]:
    """One look at the Playbook's verification: (new status, Running/Succeeded/Failed, when to look again).

    The checks must hold without interruption for ``stableFor``; verification fails once
    ``timeout`` has passed since it started without that happening.
    """
    verification = _mapping(spec.get("verification"))
    stable_for = durations.parse_duration(str(verification.get("stableFor") or "60s"))
    timeout = durations.parse_duration(str(verification.get("timeout") or "5m"))
    current = _mapping(status.get("verification"))
    started = sla.parse_time(current.get("startedAt")) or now
    since = sla.parse_time(current.get("since")) if current.get("holding") else None
    out = dict(status)
    entry: dict[str, Any] = {"phase": "Running", "startedAt": sla.format_time(started)}
    if holds:
        since = since or now
        entry.update({"holding": True, "since": sla.format_time(since)})
        if now - since >= stable_for:
            entry.update({"phase": "Succeeded", "message": f"{why}; held for {durations.format_duration(stable_for)}"})
            out["verification"] = entry
            return out, "Succeeded", None
        entry["message"] = f"{why}; holding since {sla.format_time(since)}"
        next_at = since + stable_for
    else:
        entry.update({"holding": False, "since": sla.format_time(started), "message": why})
        next_at = now + min(stable_for, datetime.timedelta(seconds=1)) if stable_for else now
    if now - started >= timeout:
        entry.update({"phase": "Failed", "message": f"not verified within {durations.format_duration(timeout)}: {why}"})
        out["verification"] = entry
        return out, "Failed", None
    out["verification"] = entry
    return out, "Running", min(next_at, started + timeout)


def finished_status(
    status: Mapping[str, Any],
    *,
    phase: Literal["Succeeded", "Failed", "DryRun"],
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The end of the run: Succeeded=True (Succeeded), False (Failed), or True with reason DryRun."""
    out = _moved(status, phase)
    out["finishedAt"] = sla.format_time(now)
    out["conditions"] = conditions.mark_succeeded(
        _list(status.get("conditions")),
        succeeded=phase != "Failed",
        reason=reason,
        message=message,
        generation=generation,
        now=now,
    )
    return out


# What to do next


@dataclass(frozen=True)
class ActiveStep:
    """The step the run is at."""

    index: int
    step: Mapping[str, Any]
    recorded: Mapping[str, Any] | None
    """Its entry in status.steps, when it has one."""


@dataclass(frozen=True)
class Move:
    """The next thing the executor does for a run."""

    kind: Literal[
        "approve", "start", "run-step", "resume-step", "verify-step", "verify", "dry-run-step", "finish", "done"
    ]
    step: ActiveStep | None = None
    failed: bool = False
    """For ``finish``: a step failed (and did not continue on failure)."""
    message: str = ""


def next_move(run: Mapping[str, Any], playbook_spec: Mapping[str, Any]) -> Move:
    """What the executor does next for the run, from its status alone (so a restart continues where it was)."""
    spec = _mapping(run.get("spec"))
    status = _mapping(run.get("status"))
    phase = _phase(status) or "Pending"
    if phase in lifecycle.PLAYBOOK_RUN.terminal:
        return Move("done")
    dry_run = bool(spec.get("dryRun"))
    if phase == "Pending":
        if playbook_spec.get("mode") == "RequireApproval" and not _mapping(spec.get("approval")).get("approvedBy"):
            return Move("approve")
        return Move("start")
    steps = [item for item in _list(playbook_spec.get("steps")) if isinstance(item, Mapping)]
    recorded = {str(item.get("name")): item for item in _steps(status)}
    for index, step in enumerate(steps):
        entry = recorded.get(str(step.get("name") or ""))
        active = ActiveStep(index, step, entry)
        step_phase = str(entry.get("phase") or "") if entry else ""
        if step_phase in ("Succeeded", "DryRun", "Skipped"):
            continue
        if step_phase == "Failed":
            if step.get("continueOnFailure"):
                continue
            return Move(
                "finish",
                active,
                failed=True,
                message=f"step {step.get('name')!r} failed: {entry.get('message') if entry else ''}",
            )
        if dry_run:
            return Move("dry-run-step", active)
        if step_phase == "Running":
            return Move("verify-step" if entry and entry.get("outcome") else "resume-step", active)
        return Move("run-step", active)
    if dry_run:
        return Move("finish", message="dry run: every step recorded what it would do")
    verification = _mapping(status.get("verification"))
    if verification.get("phase") == "Succeeded":
        return Move("finish", message=str(verification.get("message") or "verified"))
    if verification.get("phase") == "Failed":
        return Move("finish", failed=True, message=str(verification.get("message") or "verification failed"))
    return Move("verify")
