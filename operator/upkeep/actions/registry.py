"""The actions by catalog name: what a Playbook step's ``action`` runs.

``engine.catalog`` says what each action needs (its params, whether it changes the cluster); this
module says what runs. The two name sets are equal (a unit test keeps them so). ``impacts`` is
what the minHealthy guard needs from the cluster before an action that removes pods (deletePod,
scale, drainNode): one ``impact.Impact`` (ready, desired, removing) per workload touched; every
other action removes nothing and gets an empty tuple.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType

from upkeep.actions import (
    base,
    deployments,
    impact,
    jobs,
    messages,
    nodes,
    overrides,
    patch,
    pods,
    waiting,
)

__all__ = ["ACTIONS", "get", "impacts"]

ACTIONS: Mapping[str, base.Action] = MappingProxyType(
    {
        action.name: action
        for action in (
            pods.DeletePod(),
            deployments.RolloutRestart(),
            deployments.RollbackDeployment(),
            deployments.Scale(),
            patch.Patch(),
            nodes.CordonNode(),
            nodes.DrainNode(),
            jobs.RunJob(),
            waiting.Wait(),
            messages.Notify(),
            messages.Escalate(),
            overrides.SetOverride(),
            overrides.ProposeFix(),
        )
    }
)

_IMPACTS: Mapping[str, Callable[[base.ActionContext], Awaitable[tuple[impact.Impact, ...]]]] = {
    "deletePod": pods.impact_of,
    "scale": deployments.impact_of,
    "drainNode": nodes.impact_of,
}


def get(name: str) -> base.Action:
    """The action of that catalog name (KeyError naming the known ones when there is none)."""
    try:
        return ACTIONS[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r}; known actions: {', '.join(sorted(ACTIONS))}") from None


async def impacts(name: str, ctx: base.ActionContext) -> tuple[impact.Impact, ...]:
    """What action ``name`` would leave of each workload it removes pods from (empty: it removes none)."""
    found = _IMPACTS.get(name)
    return await found(ctx) if found is not None else ()
