"""The operator's settings, grouped by concern, as `upkeep run` fills them from its flags.

Every field says its unit and why its default is what it is. Settings are values: frozen,
handed to controllers through Kopf's memo, never read from globals.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

__all__ = [
    "ClientSettings",
    "DetectionSettings",
    "GitOpsSettings",
    "HealthSettings",
    "HttpSettings",
    "OperatorSettings",
    "PeeringSettings",
    "RemediationSettings",
    "SafetySettings",
    "ScopeSettings",
]


@dataclass(frozen=True)
class ScopeSettings:
    """Which namespaces the operator watches."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (glob patterns allowed, as Kopf takes them). `upkeep run` asks
    for these or ``all_namespaces`` explicitly rather than guess a scope."""
    all_namespaces: bool = False
    """Watch the whole cluster. Off by default: an operator should be given the narrowest
    scope that does its job, and cluster-wide needs ClusterRoles."""


@dataclass(frozen=True)
class SafetySettings:
    """What the operator may do to the cluster."""

    dry_run: bool = False
    """Log and record (as a Kubernetes Event) every action, execute none; no Incident is
    written (docs/incidents.md). Off by default, since
    an operator that never acts is not what people install; on for a first look at a
    cluster people depend on."""


@dataclass(frozen=True)
class PeeringSettings:
    """How replicas of the operator keep out of each other's way (Kopf peering)."""

    standalone: bool = False
    """Skip peering: this process acts as if it were alone. For development and the sandbox."""
    name: str | None = None
    """The KopfPeering object to use; None lets Kopf look for its default and run without
    peering (with a warning) when the peering CRDs are not installed."""
    priority: int = 0
    """Among peers, the highest priority acts and the others pause. 0 is Kopf's default."""


@dataclass(frozen=True)
class HealthSettings:
    """The liveness endpoint a kubelet probes."""

    liveness_endpoint: str | None = "http://127.0.0.1:8080/healthz"
    """Where Kopf serves liveness. Loopback by default so a developer's laptop exposes
    nothing; the in-cluster manifests pass http://0.0.0.0:8080/healthz. None: no endpoint."""


@dataclass(frozen=True)
class HttpSettings:
    """The operator's own HTTP server: ``/metrics`` and the webhook receivers (Alertmanager)."""

    listen: str | None = "127.0.0.1:8081"
    """HOST:PORT to listen on. Loopback by default so a developer's laptop exposes nothing;
    the in-cluster manifests pass 0.0.0.0:8081 so Prometheus and Alertmanager reach it. Port
    8081 because Kopf's liveness endpoint takes 8080. None: no server (no metrics, no receivers)."""


@dataclass(frozen=True)
class DetectionSettings:
    """How the detectors judge cluster state; the SupportPolicy (``spec.detection``,
    ``spec.autoResolve``) tunes the rest per namespace."""

    unavailable_grace: float = 300.0
    """Seconds a Deployment must stay ``Available=False`` before it is a signal. Five minutes,
    as the policy's unschedulableGrace: a Deployment starting or rolling out its pods is
    briefly unavailable, and a pod-level cause (a crash loop) is reported sooner anyway."""
    failure_lookback: float = 600.0
    """Seconds a failure in a container's last state keeps counting after it ended: an OOM
    kill, and a crash of a container that restarts in a loop (it runs for a moment between
    its back-offs, which must not look like a recovery). Ten minutes, the time after which
    the kubelet forgets a container's crash back-off: a container that has run that long
    since has recovered."""
    node_namespace: str | None = None
    """Namespace for incidents about nodes (nodes have none). None: the first namespace the
    operator watches by name, else ``default``."""


@dataclass(frozen=True)
class RemediationSettings:
    """How the operator drives PlaybookRuns; the Playbooks and the SupportPolicy tune the rest."""

    run_lease: float = 15.0
    """Seconds a PlaybookRun's lease (``status.lease``) holds without renewal. Only the holder
    acts on the run; another process (a second replica, or this operator restarted after a
    crash) takes the run over once the lease has not been renewed for this long. Fifteen
    seconds, as Kubernetes' own leader-election leases: long enough that a holder busy with a
    slow API server (it renews every third of the lease) is not taken over while it acts,
    short enough that a run left by a dead process resumes soon. Tests use about 2 s."""


@dataclass(frozen=True)
class ClientSettings:
    """How the operator calls the Kubernetes API outside Kopf's own watches."""

    threads: int = 32
    """Threads for what still runs blocking: the official client's discovery, a Release's applier,
    git. The controllers' own requests are coroutines on the event loop (``controllers/asyncapi.py``),
    with twice this many connections per client. Python's default (CPUs + 4: six on two cores) made
    a hundred concurrent incidents queue behind each other's calls when they all ran on threads
    (bench/remediation.py); a waiting thread costs little memory."""


@dataclass(frozen=True)
class GitOpsSettings:
    """How the operator fetches GitSources and applies Releases."""

    cache_dir: str | None = None
    """Directory of the bare cache repositories, one per GitSource URL (``gitops.git``). None: a
    directory ``upkeep-git`` under the user's cache directory (``$XDG_CACHE_HOME`` or ``~/.cache``),
    which survives a restart, so a restarted operator fetches only what is new. In a cluster, an
    ``emptyDir`` volume is enough: the cache is only a cache."""

    def cache_path(self) -> str:
        """The cache directory in use (see ``cache_dir``)."""
        if self.cache_dir:
            return self.cache_dir
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return os.path.join(base, "upkeep-git")


@dataclass(frozen=True)
class OperatorSettings:
    """All settings of one operator process."""

    scope: ScopeSettings = field(default_factory=ScopeSettings)
    safety: SafetySettings = field(default_factory=SafetySettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)
    health: HealthSettings = field(default_factory=HealthSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    client: ClientSettings = field(default_factory=ClientSettings)
    detection: DetectionSettings = field(default_factory=DetectionSettings)
    remediation: RemediationSettings = field(default_factory=RemediationSettings)
    gitops: GitOpsSettings = field(default_factory=GitOpsSettings)
