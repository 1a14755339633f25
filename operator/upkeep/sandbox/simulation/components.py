"""The simulated cluster's components, in the order they start."""

from __future__ import annotations

from collections.abc import Callable

from upkeep.sandbox.simulation import disruption, endpoints, kubelet, nodelifecycle, scheduler, workloads
from upkeep.sandbox.simulation.runtime import Context, Controller

__all__ = ["default_components"]


def default_components() -> list[Callable[[Context], Controller]]:
    """Every component of the simulation: nodes and kubelets, scheduler, node lifecycle, workloads, endpoints, PDBs."""
    return [
        *kubelet.COMPONENTS,
        *scheduler.COMPONENTS,
        *nodelifecycle.COMPONENTS,
        *workloads.COMPONENTS,
        *endpoints.COMPONENTS,
        *disruption.COMPONENTS,
    ]
