"""Every duration and size the simulation uses, with Kubernetes' defaults, and a fast profile for tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SimulationSettings"]


@dataclass(frozen=True)
class SimulationSettings:
    """Durations in seconds. Defaults are those of a real cluster; ``fast()`` shrinks them for tests."""

    nodes: int = 3
    """Simulated nodes registered at start (`upkeep sandbox up --nodes N`)."""
    node_cpu: str = "4"
    """Each node's CPU capacity (a Kubernetes quantity)."""
    node_memory: str = "16Gi"
    """Each node's memory capacity."""
    node_pods: int = 110
    """Each node's pod capacity (the kubelet's default maxPods)."""
    heartbeat_interval: float = 10.0
    """How often a kubelet renews its node Lease (the kubelet's nodeLeaseDurationSeconds / 4)."""
    node_grace: float = 40.0
    """How long without a heartbeat before a node is NotReady (node-monitor-grace-period)."""
    eviction_timeout: float = 300.0
    """tolerationSeconds of the default not-ready/unreachable tolerations: pods leave a dead node after it."""
    image_pull: float = 2.0
    """Seconds to pull an image the catalog knows."""
    container_start: float = 1.0
    """Seconds from pulled to started."""
    backoff_base: float = 10.0
    """CrashLoopBackOff: the first restart delay; it doubles each time (the kubelet's 10 s)."""
    backoff_cap: float = 300.0
    """CrashLoopBackOff: the longest restart delay (the kubelet's 5 minutes)."""
    backoff_reset: float = 600.0
    """A container that ran this long without crashing starts its back-off again from the base."""
    image_pull_backoff_base: float = 10.0
    """ImagePullBackOff: the first retry delay of a failed pull."""
    termination_grace: float = 30.0
    """Default terminationGracePeriodSeconds when a pod does not set it (the simulated containers stop at once
    unless their image says otherwise)."""
    metrics_interval: float = 5.0
    """How often simulated application metrics advance."""
    time_scale: float = 1.0
    """Divides every duration of objects' specs the simulation waits on (probe delays, progress deadlines,
    Job back-offs, CronJob schedules stay as written); 1 = real time."""

    @classmethod
    def fast(cls, **overrides: Any) -> SimulationSettings:
        """Seconds become tenths: the same behaviour, soon enough for tests."""
        quick = cls(
            heartbeat_interval=0.5,
            node_grace=2.0,
            eviction_timeout=2.0,
            image_pull=0.1,
            container_start=0.05,
            backoff_base=0.2,
            backoff_cap=2.0,
            backoff_reset=10.0,
            image_pull_backoff_base=0.2,
            termination_grace=0.2,
            metrics_interval=0.5,
            time_scale=20.0,
        )
        return dataclasses.replace(quick, **overrides)

    @classmethod
    def from_file(cls, path: Path) -> SimulationSettings:
        """Settings from a YAML file of field: value (unknown fields are an error naming the field)."""
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        profile = data.pop("profile", "real")
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{path}: unknown simulation settings {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        base = cls.fast() if profile == "fast" else cls()
        return dataclasses.replace(base, **data)

    def scaled(self, seconds: float) -> float:
        """A duration from an object's spec, in the simulation's time."""
        return seconds / self.time_scale
