"""The lifecycles of Incident, Change, Problem and PlaybookRun as transition tables.

Each table says, for every phase, which phases may follow. ``check_transition`` is the
one function that decides: it returns quietly for an allowed move (and for staying put)
and raises ``InvalidTransition`` naming the allowed next phases otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from upkeep.model import errors

__all__ = [
    "CHANGE",
    "INCIDENT",
    "LIFECYCLES",
    "PLAYBOOK_RUN",
    "PROBLEM",
    "Lifecycle",
    "allowed_after",
    "check_transition",
]


@dataclass(frozen=True)
class Lifecycle:
    """The phases of one kind, where they start, and which moves are allowed."""

    kind: str
    initial: str
    transitions: Mapping[str, tuple[str, ...]]

    @property
    def phases(self) -> tuple[str, ...]:
        return tuple(self.transitions)

    @property
    def terminal(self) -> tuple[str, ...]:
        return tuple(phase for phase, following in self.transitions.items() if not following)


INCIDENT = Lifecycle(
    kind="Incident",
    initial="Triggered",
    transitions={
        "Triggered": ("Acknowledged", "Mitigating", "Mitigated", "Resolved"),
        "Acknowledged": ("Mitigating", "Mitigated", "Resolved"),
        # A remediation that fails verification hands the incident back to people.
        "Mitigating": ("Acknowledged", "Mitigated", "Resolved"),
        # The signal coming back before the clear window ends reopens the incident.
        "Mitigated": ("Triggered", "Mitigating", "Resolved"),
        "Resolved": ("Triggered", "Closed"),
        "Closed": (),
    },
)

CHANGE = Lifecycle(
    kind="Change",
    initial="Pending",
    transitions={
        "Pending": ("AwaitingApproval", "Approved", "Rejected"),
        "AwaitingApproval": ("Approved", "Rejected"),
        "Approved": ("Scheduled", "InProgress", "Rejected"),
        "Scheduled": ("InProgress", "Rejected"),
        "InProgress": ("Completed", "Failed", "RolledBack"),
        "Failed": ("RolledBack",),
        "Rejected": (),
        "Completed": (),
        "RolledBack": (),
    },
)

PROBLEM = Lifecycle(
    kind="Problem",
    initial="Open",
    transitions={
        "Open": ("KnownError", "Resolved"),
        "KnownError": ("Resolved",),
        # A fixed problem whose incidents come back is open again.
        "Resolved": ("Open",),
    },
)

PLAYBOOK_RUN = Lifecycle(
    kind="PlaybookRun",
    initial="Pending",
    transitions={
        "Pending": ("Running", "Skipped", "Failed"),
        "Running": ("Succeeded", "Failed", "DryRun"),
        "Succeeded": (),
        "Failed": (),
        "Skipped": (),
        "DryRun": (),
    },
)

LIFECYCLES: Mapping[str, Lifecycle] = {table.kind: table for table in (INCIDENT, CHANGE, PROBLEM, PLAYBOOK_RUN)}


def _lifecycle(kind: str) -> Lifecycle:
    try:
        return LIFECYCLES[kind]
    except KeyError:
        raise ValueError(f"{kind} has no lifecycle; kinds with one: {', '.join(LIFECYCLES)}") from None


def allowed_after(kind: str, current: str | None) -> tuple[str, ...]:
    """The phases that may follow ``current`` (None: the object has no phase yet)."""
    table = _lifecycle(kind)
    if current is None:
        return (table.initial,)
    if current not in table.transitions:
        raise errors.InvalidTransition(
            f"{kind} has no phase {current!r}; its phases are {', '.join(table.phases)}",
            allowed=table.phases,
        )
    return table.transitions[current]


def check_transition(kind: str, current: str | None, target: str, *, field: str = "status.phase") -> None:
    """Refuse a move the table does not allow, saying which moves are allowed.

    Staying in the same phase is always allowed (reconciles repeat).
    """
    table = _lifecycle(kind)
    if target not in table.transitions:
        raise errors.InvalidTransition(
            f"{field}: {kind} has no phase {target!r}; its phases are {', '.join(table.phases)}",
            field=field,
            allowed=table.phases,
        )
    if current == target:
        return
    following = allowed_after(kind, current)
    if target in following:
        return
    start = "no phase yet" if current is None else current
    options = ", ".join(following) if following else f"none ({current} is final)"
    raise errors.InvalidTransition(
        f"{field}: {kind} cannot go from {start} to {target}; allowed from {start}: {options}",
        field=field,
        allowed=following,
    )
