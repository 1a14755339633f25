"""Status conditions as the Kubernetes API conventions describe them, kstatus style.

Every kind carries a ``Ready`` summary condition. While a reconcile is under way an object
shows ``Ready=Unknown`` (reason ``Progressing``) and ``Reconciling=True``; a failure that
retrying cannot fix adds ``Stalled=True``; bounded kinds (PlaybookRun) end with
``Succeeded=True`` or ``False``. Functions here return new lists and never mutate their
input, so a controller can compare before and after and patch only what changed.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

__all__ = [
    "READY",
    "RECONCILING",
    "STALLED",
    "SUCCEEDED",
    "Condition",
    "ConditionStatus",
    "find",
    "is_true",
    "mark_failed",
    "mark_ready",
    "mark_reconciling",
    "mark_succeeded",
    "remove",
    "set_condition",
]

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
SUCCEEDED = "Succeeded"

ConditionStatus = Literal["True", "False", "Unknown"]
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Condition:
    """One entry of ``status.conditions``."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    observed_generation: int | None = None
    last_transition_time: str = ""

    def __post_init__(self) -> None:
        if self.status not in ("True", "False", "Unknown"):
            raise ValueError(f"condition status must be True, False or Unknown, not {self.status!r}")
        if not _REASON.match(self.reason):
            raise ValueError(f"condition reason must be a non-empty CamelCase word, not {self.reason!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        generation = data.get("observedGeneration")
        return cls(
            type=str(data["type"]),
            status=data.get("status", "Unknown"),
            reason=str(data.get("reason") or "Unknown"),
            message=str(data.get("message", "")),
            observed_generation=int(generation) if generation is not None else None,
            last_transition_time=str(data.get("lastTransitionTime", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Condition | None:
    """The condition of that type, or None."""
    for item in conditions or ():
        if item.get("type") == type_:
            return Condition.from_dict(item)
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    condition: Condition,
    *,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """A new list with ``condition`` in place of the one of its type.

    ``lastTransitionTime`` moves only when the status changes, as the conventions ask.
    """
    moment = _timestamp(now or _now())
    previous = find(conditions, condition.type)
    if previous is not None and previous.status == condition.status and previous.last_transition_time:
        stamped = replace(condition, last_transition_time=previous.last_transition_time)
    else:
        stamped = replace(condition, last_transition_time=condition.last_transition_time or moment)
    out: list[dict[str, Any]] = []
    placed = False
    for item in conditions or ():
        if item.get("type") == condition.type:
            out.append(stamped.to_dict())
            placed = True
        else:
            out.append(dict(item))
    if not placed:
        out.append(stamped.to_dict())
    return out


def remove(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> list[dict[str, Any]]:
    """A new list without the condition of that type."""
    return [dict(item) for item in conditions or () if item.get("type") != type_]


def mark_reconciling(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    generation: int | None,
    message: str = "Reconciliation in progress",
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """The first visit and every new generation: Ready=Unknown/Progressing, Reconciling=True."""
    out = set_condition(conditions, Condition(READY, "Unknown", "Progressing", message, generation), now=now)
    return set_condition(out, Condition(RECONCILING, "True", "Progressing", message, generation), now=now)


def mark_ready(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Success: Ready=True with the reason; Reconciling and Stalled are dropped."""
    out = set_condition(conditions, Condition(READY, "True", reason, message, generation), now=now)
    return remove(remove(out, RECONCILING), STALLED)


def mark_failed(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    reason: str,
    message: str,
    generation: int | None,
    stalled: bool,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Failure: Ready=False with a specific reason.

    ``stalled`` says retrying cannot help (a spec error): then Stalled=True and Reconciling
    is dropped; otherwise Reconciling stays to show that Upkeep will try again.
    """
    out = set_condition(conditions, Condition(READY, "False", reason, message, generation), now=now)
    if stalled:
        out = set_condition(out, Condition(STALLED, "True", reason, message, generation), now=now)
        return remove(out, RECONCILING)
    out = remove(out, STALLED)
    return set_condition(out, Condition(RECONCILING, "True", reason, message, generation), now=now)


def mark_succeeded(
    conditions: Sequence[Mapping[str, Any]] | None,
    *,
    succeeded: bool,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """The end of a bounded object (a PlaybookRun): Succeeded=True or False, Ready likewise."""
    status: ConditionStatus = "True" if succeeded else "False"
    out = set_condition(conditions, Condition(SUCCEEDED, status, reason, message, generation), now=now)
    out = set_condition(out, Condition(READY, status, reason, message, generation), now=now)
    return remove(remove(out, RECONCILING), STALLED)
