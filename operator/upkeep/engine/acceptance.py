"""Whether Upkeep can act on an object as written, and the honest status that says so.

Every kind passes through acceptance first: the API server has checked the schema; this
checks what a schema cannot (``semantics``) and reports it in conditions. A kind whose own
controller is not built yet is reported as accepted but not reconciled: ``Ready`` stays
``Unknown`` with reason ``NotReconciled``, never ``True``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upkeep.engine import semantics
from upkeep.model import conditions, paths, schemas

__all__ = ["ACCEPTED", "Assessment", "assess", "status_patch"]

ACCEPTED = "Accepted"


@dataclass(frozen=True)
class Assessment:
    """The verdict on one generation of one object."""

    accepted: bool
    reason: str
    message: str
    field: str = ""


def assess(body: Mapping[str, Any]) -> Assessment:
    """Check one object on its own, with its schema's defaults applied.

    References to other objects are not judged here: in a cluster they may be created
    in any order, and the controllers that follow them report a missing one.
    """
    kind = str(body.get("kind", ""))
    resource = schemas.by_kind().get(kind)
    if resource is None:
        return Assessment(False, "UnknownKind", f"Upkeep has no kind {kind!r}", "kind")
    defaulted = schemas.apply_defaults(resource.schema, body)
    issues = [
        issue
        for issue in semantics.check(defaulted)
        if issue.severity == "error" and issue.code != "semantic.dangling-reference"
    ]
    if not issues:
        return Assessment(True, "Valid", "The spec is valid.")
    first = issues[0]
    where = paths.format_path(first.path)
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return Assessment(False, "InvalidSpec", f"{where}: {first.message}{more}", where)


def status_patch(
    body: Mapping[str, Any],
    assessment: Assessment,
    *,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The status to patch for an object whose kind has no controller of its own yet.

    Invalid: ``Accepted=False``, ``Ready=False`` and ``Stalled=True`` (retrying cannot fix a
    spec). Valid: ``Accepted=True`` and ``Ready=Unknown``/``NotReconciled``, because nothing
    has acted on the object and Ready must not claim otherwise.
    """
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    generation = int(generation) if generation is not None else None
    status = body.get("status") or {}
    current = list(status.get("conditions") or [])
    accepted = conditions.Condition(
        ACCEPTED,
        "True" if assessment.accepted else "False",
        assessment.reason,
        assessment.message,
        generation,
    )
    current = conditions.set_condition(current, accepted, now=now)
    if assessment.accepted:
        kind = str(body.get("kind", ""))
        current = conditions.set_condition(
            current,
            conditions.Condition(
                conditions.READY,
                "Unknown",
                "NotReconciled",
                f"The spec is valid; this version of Upkeep does not reconcile {kind} objects yet.",
                generation,
            ),
            now=now,
        )
        current = conditions.remove(conditions.remove(current, conditions.STALLED), conditions.RECONCILING)
    else:
        current = conditions.mark_failed(
            current,
            reason=assessment.reason,
            message=assessment.message,
            generation=generation,
            stalled=True,
            now=now,
        )
    return {"observedGeneration": generation, "conditions": current}
