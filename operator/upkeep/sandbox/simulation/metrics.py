"""The sandbox's Prometheus metrics: simulated application metrics per pod, and kube-state-style metrics.

``render(ctx)`` answers a scrape in the Prometheus text exposition format 0.0.4.

Application metrics, for every pod whose first container is running, with the labels
``namespace``, ``pod``, ``deployment`` and ``revision`` (the Deployment and the revision of the
ReplicaSet the pod belongs to; empty for other pods):

- ``http_requests_total{...,code}``: a counter of requests answered, split between ``code="200"``
  and ``code="500"`` by the image's error ratio;
- ``http_request_duration_seconds`` (``_bucket{le}``, ``_sum``, ``_count``): their latency.

The traffic comes from the image's profile in the catalog (``images.app_metrics_profile``:
requests per second, error ratio, cumulative shares of requests under latency bounds), or from a
default profile for images without one. Counters advance with the time the container has been
running, in steps of ``settings.metrics_interval``; they only ever grow for a pod (as long as the
sandbox runs), and a pod that goes away takes its series with it, as a real pod's would go.

Kube-state metrics, named and labelled as kube-state-metrics names them:
``kube_pod_status_phase``, ``kube_pod_status_ready``, ``kube_pod_container_status_restarts_total``,
``kube_deployment_spec_replicas``, ``kube_deployment_status_replicas_available`` and
``kube_node_status_condition``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from upkeep.sandbox.simulation import runtime

__all__ = ["DEFAULT_PROFILE", "AppSeries", "advance", "escape_label", "render"]

PODS = "/pods"
NODES = "/nodes"
DEPLOYMENTS = "apps/deployments"
REPLICASETS = "apps/replicasets"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"

DEFAULT_PROFILE: Mapping[str, Any] = MappingProxyType(
    {
        "requestsPerSecond": 10.0,
        "errorRatio": 0.01,
        "latencyBuckets": (
            (0.005, 0.05),
            (0.01, 0.15),
            (0.025, 0.40),
            (0.05, 0.70),
            (0.1, 0.90),
            (0.25, 0.97),
            (0.5, 0.99),
            (1.0, 0.998),
            (2.5, 1.0),
        ),
    }
)
"""What an image without a metrics profile serves: 10 requests a second, 1 % errors, ~30 ms median latency."""


@dataclass
class AppSeries:
    """One pod's simulated traffic so far (fractional counts; the exposition shows whole requests)."""

    namespace: str
    pod: str
    deployment: str
    revision: str
    profile: Mapping[str, Any]
    ok: float = 0.0
    errors: float = 0.0
    seconds: float = 0.0
    """Sum of latencies."""
    buckets: list[float] = field(default_factory=list)
    last: float | None = None
    """Monotonic time the counts were last advanced to (None: not running when last seen)."""


def _profile_for(image: str) -> Mapping[str, Any]:
    try:
        from upkeep.sandbox.simulation import images
    except ImportError:
        return DEFAULT_PROFILE
    try:
        found = images.app_metrics_profile(image)
    except Exception:  # a broken catalog must not break a scrape
        return DEFAULT_PROFILE
    return found if found is not None else DEFAULT_PROFILE


def _mean_latency(bounds: list[tuple[float, float]]) -> float:
    """The mean of the latency distribution the cumulative shares describe (linear within each bucket)."""
    mean, lower, covered = 0.0, 0.0, 0.0
    for bound, share in bounds:
        mean += (share - covered) * (lower + bound) / 2
        lower, covered = bound, share
    return mean + (1.0 - covered) * lower * 1.5


def advance(series: AppSeries, now: float, running: bool, interval: float) -> None:
    """Add the traffic of the whole ``interval`` steps since the last advance (none while not running)."""
    if not running:
        series.last = None
        return
    if series.last is None:
        series.last = now
        return
    steps = math.floor((now - series.last) / interval) if interval > 0 else 0
    if steps <= 0:
        return
    elapsed = steps * interval
    series.last += elapsed
    profile = series.profile
    requests = float(profile.get("requestsPerSecond", 0.0)) * elapsed
    ratio = float(profile.get("errorRatio", 0.0))
    series.ok += requests * (1 - ratio)
    series.errors += requests * ratio
    bounds = [(float(le), float(share)) for le, share in profile.get("latencyBuckets") or ()]
    if len(series.buckets) != len(bounds):
        series.buckets = [0.0] * len(bounds)
    for index, (_, share) in enumerate(bounds):
        series.buckets[index] += requests * share
    series.seconds += requests * _mean_latency(bounds)


def escape_label(value: str) -> str:
    """A label value as the text format writes it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{key}="{escape_label(str(value))}"' for key, value in pairs) + "}"


def _number(value: float) -> str:
    if value == math.floor(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


class _Family:
    """One metric family: HELP, TYPE and its samples."""

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help_text = name, kind, help_text
        self.samples: list[str] = []

    def add(self, labels: Iterable[tuple[str, str]], value: float, suffix: str = "") -> None:
        self.samples.append(f"{self.name}{suffix}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        head = f"# HELP {self.name} {self.help_text}\n# TYPE {self.name} {self.kind}\n"
        return head + "".join(sample + "\n" for sample in self.samples)


def _controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for reference in obj["metadata"].get("ownerReferences") or []:
        if reference.get("controller"):
            return reference  # type: ignore[no-any-return]
    return None


def _deployment_and_revision(ctx: runtime.Context, pod: Mapping[str, Any]) -> tuple[str, str]:
    reference = _controller(pod)
    if reference is None or reference.get("kind") != "ReplicaSet":
        return "", ""
    namespace = str(pod["metadata"].get("namespace") or "")
    replica_set = ctx.get(REPLICASETS, namespace, str(reference.get("name")))
    if replica_set is None:
        return "", ""
    owner = _controller(replica_set)
    if owner is None or owner.get("kind") != "Deployment":
        return "", ""
    revision = (replica_set["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "")
    return str(owner.get("name")), str(revision)


def _running(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or pod["metadata"].get("deletionTimestamp"):
        return False
    containers = (pod.get("spec") or {}).get("containers") or []
    if not containers:
        return False
    first = containers[0].get("name")
    for container in status.get("containerStatuses") or []:
        if container.get("name") == first:
            return "running" in (container.get("state") or {})
    return False


def _app_families(ctx: runtime.Context, pods: list[dict[str, Any]]) -> list[_Family]:
    state: dict[str, AppSeries] = ctx.data.setdefault("app-metrics", {})
    now = time.monotonic()
    interval = ctx.settings.metrics_interval
    seen: set[str] = set()
    for pod in pods:
        uid = str(pod["metadata"].get("uid") or "")
        containers = (pod.get("spec") or {}).get("containers") or []
        if not uid or not containers:
            continue
        running = _running(pod)
        series = state.get(uid)
        if series is None:
            if not running:
                continue
            deployment, revision = _deployment_and_revision(ctx, pod)
            series = state[uid] = AppSeries(
                str(pod["metadata"].get("namespace") or ""),
                str(pod["metadata"]["name"]),
                deployment,
                revision,
                _profile_for(str(containers[0].get("image") or "")),
            )
        advance(series, now, running, interval)
        seen.add(uid)
    for uid in set(state) - seen:
        del state[uid]
    requests = _Family("http_requests_total", "counter", "Total HTTP requests answered, by status code.")
    duration = _Family("http_request_duration_seconds", "histogram", "HTTP request latencies in seconds.")
    for uid in sorted(state, key=lambda uid: (state[uid].namespace, state[uid].pod)):
        series = state[uid]
        base = [
            ("namespace", series.namespace),
            ("pod", series.pod),
            ("deployment", series.deployment),
            ("revision", series.revision),
        ]
        requests.add([*base, ("code", "200")], math.floor(series.ok))
        requests.add([*base, ("code", "500")], math.floor(series.errors))
        total = math.floor(series.ok + series.errors)
        bounds = [float(le) for le, _ in series.profile.get("latencyBuckets") or ()]
        for le, count in zip(bounds, series.buckets or [0.0] * len(bounds), strict=True):
            duration.add([*base, ("le", _number(le))], min(math.floor(count), total), "_bucket")
        duration.add([*base, ("le", "+Inf")], total, "_bucket")
        duration.add(base, round(series.seconds, 6), "_sum")
        duration.add(base, total, "_count")
    return [requests, duration]


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _state_families(ctx: runtime.Context, pods: list[dict[str, Any]]) -> list[_Family]:
    phase = _Family("kube_pod_status_phase", "gauge", "[STABLE] The pods current phase.")
    ready = _Family("kube_pod_status_ready", "gauge", "[STABLE] Describes whether the pod is ready to serve requests.")
    restarts = _Family(
        "kube_pod_container_status_restarts_total",
        "counter",
        "[STABLE] The number of container restarts per container.",
    )
    for pod in pods:
        metadata = pod["metadata"]
        base = [
            ("namespace", str(metadata.get("namespace") or "")),
            ("pod", str(metadata["name"])),
            ("uid", str(metadata.get("uid") or "")),
        ]
        status = pod.get("status") or {}
        current = status.get("phase")
        if current:
            for name in ("Pending", "Succeeded", "Failed", "Unknown", "Running"):
                phase.add([*base, ("phase", name)], 1 if current == name else 0)
        found = _condition(pod, "Ready")
        if found is not None:
            value = str(found.get("status") or "Unknown").lower()
            for name in ("true", "false", "unknown"):
                ready.add([*base, ("condition", name)], 1 if value == name else 0)
        for container in status.get("containerStatuses") or []:
            restarts.add([*base, ("container", str(container.get("name")))], int(container.get("restartCount") or 0))
    spec_replicas = _Family(
        "kube_deployment_spec_replicas", "gauge", "[STABLE] Number of desired pods for a deployment."
    )
    available = _Family(
        "kube_deployment_status_replicas_available",
        "gauge",
        "[STABLE] The number of available replicas per deployment.",
    )
    for deployment in ctx.list(DEPLOYMENTS):
        base = [
            ("namespace", str(deployment["metadata"].get("namespace") or "")),
            ("deployment", str(deployment["metadata"]["name"])),
        ]
        replicas = (deployment.get("spec") or {}).get("replicas")
        spec_replicas.add(base, 1 if replicas is None else int(replicas))
        available.add(base, int((deployment.get("status") or {}).get("availableReplicas") or 0))
    nodes = _Family("kube_node_status_condition", "gauge", "[STABLE] The condition of a cluster node.")
    for node in ctx.list(NODES):
        for condition in (node.get("status") or {}).get("conditions") or []:
            value = str(condition.get("status") or "Unknown").lower()
            for name in ("true", "false", "unknown"):
                nodes.add(
                    [
                        ("node", str(node["metadata"]["name"])),
                        ("condition", str(condition.get("type"))),
                        ("status", name),
                    ],
                    1 if value == name else 0,
                )
    return [phase, ready, restarts, spec_replicas, available, nodes]


def render(ctx: runtime.Context) -> str:
    """The metrics of the simulated cluster in the Prometheus text exposition format (version 0.0.4)."""
    pods = ctx.list(PODS)
    families = _app_families(ctx, pods) + _state_families(ctx, pods)
    return "".join(family.text() for family in families if family.samples)
