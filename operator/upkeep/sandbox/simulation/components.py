"""The simulated cluster's components, in the order they start."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from upkeep.sandbox.simulation.runtime import Context, Controller

__all__ = ["default_components"]

_MODULES = ("kubelet", "scheduler", "nodelifecycle", "workloads", "endpoints", "disruption")


def default_components() -> list[Callable[[Context], Controller]]:
    """Every component the modules of the simulation export (their COMPONENTS lists)."""
    found: list[Callable[[Context], Controller]] = []
    for name in _MODULES:
        try:
            module = importlib.import_module(f"upkeep.sandbox.simulation.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"upkeep.sandbox.simulation.{name}":
                raise
            continue
        found.extend(getattr(module, "COMPONENTS", []))
    return found
