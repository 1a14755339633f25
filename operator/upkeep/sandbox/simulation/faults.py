"""Faults caused on purpose: a workload or a pod made to crash-loop, fail to pull, run out of memory or
never become ready; a node taken down; a pod killed. The kubelet simulation consults this table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BEHAVIOURS", "FaultTable", "table"]

BEHAVIOURS = ("crashloop", "imagepull", "oom", "unready")
"""What a faulted container does instead of what its image would."""


@dataclass
class FaultTable:
    """The faults in force, by workload, by pod and by node."""

    workloads: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(namespace, kind, name) → behaviour, for every pod the workload owns (through ReplicaSets too)."""
    pods: dict[tuple[str, str], str] = field(default_factory=dict)
    """(namespace, pod name) → behaviour."""
    nodes_down: set[str] = field(default_factory=set)
    """Nodes whose kubelet has stopped: no heartbeats, no pod updates."""

    def behaviour_for(self, pod: Mapping[str, Any], owners: list[tuple[str, str]]) -> str | None:
        """The fault of ``pod``; ``owners`` are its (kind, name) owners up the chain (ReplicaSet, Deployment)."""
        metadata = pod["metadata"]
        namespace = str(metadata.get("namespace") or "")
        found = self.pods.get((namespace, str(metadata["name"])))
        if found:
            return found
        for kind, name in owners:
            found = self.workloads.get((namespace, kind, name))
            if found:
                return found
        return None

    def clear(self) -> None:
        self.workloads.clear()
        self.pods.clear()
        self.nodes_down.clear()


def table(data: dict[str, Any]) -> FaultTable:
    """The fault table in a Context's shared data (made on first use)."""
    found = data.get("faults")
    if not isinstance(found, FaultTable):
        found = data["faults"] = FaultTable()
    return found
