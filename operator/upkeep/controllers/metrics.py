"""The operator's metrics on ``/metrics``: open incidents, time to acknowledge and resolve, detections, failures.

Every metric lives in a ``CollectorRegistry`` of the ``OperatorMetrics`` object, never in
prometheus-client's global default registry, so two operators in one process (tests) do not
clash and a test can read exactly one operator's figures. Names are prefixed ``upkeep_``;
docs/metrics.md lists them.

Where the figures come from (``register``):

- ``upkeep_incidents_open{severity}`` is counted from the Incidents themselves, not kept up
  by increments: a ``kopf.on.event`` handler on Incidents remembers the severity of every
  open one (Triggered, Acknowledged, Mitigating, Mitigated) and forgets it when it leaves
  those phases or is deleted. Kopf's initial listing delivers every existing Incident after
  a start, so the gauge is exact after a restart and whoever moved the incident (this
  process, another replica, a person's kubectl).
- The rest listens to the incident controller's ``Notice``s (``IncidentController.listeners``),
  which are posted once, by the process that made the change: detections (the occurrences an
  Opened, Occurred or Reopened notice adds), SLA breaches, and the histograms. Time to
  acknowledge is observed on the move that stamps ``status.acknowledgedAt`` and time to
  resolve on the one that stamps ``status.resolvedAt``, each from ``status.triggeredAt``;
  both stamps are kept from their first entry, so each incident is observed at most once,
  however often it reopens.
- ``notification_failed``, ``alert_received`` and the like are called by the notification
  and alert code.

Counters restart from zero with the process, as Prometheus expects of counters.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import kopf
import prometheus_client
from aiohttp import web
from prometheus_client import core as prometheus_core
from prometheus_client import registry as prometheus_registry

from upkeep import GROUP, VERSION
from upkeep.controllers import http as http_
from upkeep.controllers import incidents as incidents_controller
from upkeep.engine import incidents, signals, sla
from upkeep.model import resources

__all__ = [
    "DURATION_BUCKETS",
    "PATH",
    "OperatorMetrics",
    "register",
    "routes",
]

logger = logging.getLogger(__name__)

PATH = "/metrics"
"""Where the metrics are served (Prometheus' default ``metrics_path``)."""

DURATION_BUCKETS: tuple[float, ...] = (
    30.0,
    60.0,
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    172800.0,
    604800.0,
    float("inf"),
)
"""Seconds: 30 s, 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h, 1 d, 2 d, 1 week.

People acknowledge in minutes and resolve in hours to days; the SLA targets of a
SupportPolicy fall in the same range, so a bucket boundary lies near each common target.
"""

_ACKNOWLEDGING = frozenset({"Acknowledged", "Mitigating", "Mitigated"})
"""Notice reasons of the moves that can stamp ``acknowledgedAt`` (a person's move to that phase)."""
_RESOLVING = frozenset({"Resolved", "AutoResolved"})
"""Notice reasons of the moves that can stamp ``resolvedAt``."""
_DETECTING = frozenset({"Opened", "Occurred", "Reopened"})
"""Notice reasons that carry new occurrences of a signal."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class _OpenIncidents(prometheus_registry.Collector):
    """``upkeep_incidents_open{severity}``, read from the open incidents known at scrape time."""

    def __init__(self, open_incidents: Mapping[tuple[str, str], str]) -> None:
        self._open = open_incidents

    def collect(self) -> Iterable[prometheus_core.Metric]:
        counts = dict.fromkeys(sla.SEVERITIES, 0)
        for severity in list(self._open.values()):
            counts[severity] = counts.get(severity, 0) + 1
        family = prometheus_core.GaugeMetricFamily(
            "upkeep_incidents_open",
            "Incidents in an open phase (Triggered, Acknowledged, Mitigating, Mitigated), by severity.",
            labels=["severity"],
        )
        for severity, count in counts.items():
            family.add_metric([severity], count)
        yield family


class OperatorMetrics:
    """The metrics of one operator process; ``hear`` is an incident ``Listener``.

    ``notification_failed(channel)`` is for the notification sender: call it once per
    notification given up on or per failed attempt, with the SupportPolicy channel's name
    (never its URL).
    """

    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        """Every metric of this operator (and the process collector's), and nothing else."""
        self._open: MutableMapping[tuple[str, str], str] = {}
        self.registry.register(_OpenIncidents(self._open))
        self.detections = prometheus_client.Counter(
            "upkeep_detections",
            "Occurrences of failure signals recorded in incidents, by signal type.",
            ["signal_type"],
            registry=self.registry,
        )
        self.time_to_acknowledge = prometheus_client.Histogram(
            "upkeep_incident_time_to_acknowledge_seconds",
            "From an incident's triggeredAt to its acknowledgedAt, observed once per incident when acknowledged.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.time_to_resolve = prometheus_client.Histogram(
            "upkeep_incident_time_to_resolve_seconds",
            "From an incident's triggeredAt to its resolvedAt, observed once per incident when first resolved.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.sla_breaches = prometheus_client.Counter(
            "upkeep_sla_breaches",
            "SLA deadlines incidents missed, by deadline (acknowledge or resolve).",
            ["deadline"],
            registry=self.registry,
        )
        self.notification_failures = prometheus_client.Counter(
            "upkeep_notification_failures",
            "Notifications that failed to be delivered, by SupportPolicy channel name.",
            ["channel"],
            registry=self.registry,
        )
        self.alerts_received = prometheus_client.Counter(
            "upkeep_alerts_received",
            "Alerts received from Alertmanager's webhook, by alert status (firing or resolved).",
            ["status"],
            registry=self.registry,
        )
        self.alerts_ignored = prometheus_client.Counter(
            "upkeep_alerts_ignored",
            "Alerts received but not taken in, by reason (namespace_not_watched).",
            ["reason"],
            registry=self.registry,
        )
        self.webhooks_rejected = prometheus_client.Counter(
            "upkeep_webhook_requests_rejected",
            "Webhook requests answered with an error, by reason (bad_request, unauthorized, not_ready, failed).",
            ["reason"],
            registry=self.registry,
        )
        prometheus_client.ProcessCollector(registry=self.registry)
        prometheus_client.PlatformCollector(registry=self.registry)
        for signal_type in signals.SIGNAL_TYPES:
            self.detections.labels(signal_type=signal_type)
        for deadline in ("acknowledge", "resolve"):
            self.sla_breaches.labels(deadline=deadline)
        for status in ("firing", "resolved"):
            self.alerts_received.labels(status=status)

    # -- what the operator tells

    def incident_seen(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An Incident as the API has it now (or deleted): keep the open count exact."""
        view = resources.Incident(body)
        key = (view.namespace, view.name)
        phase = str(_mapping(body.get("status")).get("phase") or "")
        if deleted or phase not in incidents.OPEN_PHASES:
            self._open.pop(key, None)
        else:
            self._open[key] = str(view.spec.get("severity") or "unknown")

    def hear(self, notice: incidents_controller.Notice) -> None:
        """Take in one notice of the incident controller (a ``Listener``: quick, never blocks)."""
        if notice.reason in _DETECTING and notice.count > 0:
            self.detections.labels(signal_type=notice.signal_type or "Manual").inc(notice.count)
        elif notice.reason == sla.SLA_BREACHED and notice.breach:
            self.sla_breaches.labels(deadline=notice.breach).inc()
        status = _mapping(notice.incident.get("status"))
        if notice.reason in _ACKNOWLEDGING and notice.previous_phase == "Triggered":
            self._observe(self.time_to_acknowledge, status, "acknowledgedAt")
        elif notice.reason in _RESOLVING:
            self._observe(self.time_to_resolve, status, "resolvedAt")

    def notification_failed(self, channel: str) -> None:
        """Count one notification to ``channel`` (the channel's name, never its URL) that failed."""
        self.notification_failures.labels(channel=channel).inc()

    def alert_received(self, status: str) -> None:
        """Count one alert of a webhook payload (``firing`` or ``resolved``)."""
        self.alerts_received.labels(status=status).inc()

    def alert_ignored(self, reason: str) -> None:
        """Count one alert not taken in, e.g. ``namespace_not_watched``."""
        self.alerts_ignored.labels(reason=reason).inc()

    def webhook_rejected(self, reason: str) -> None:
        """Count one webhook request answered with an error."""
        self.webhooks_rejected.labels(reason=reason).inc()

    # -- exposition

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return prometheus_client.generate_latest(self.registry)

    def _observe(self, histogram: prometheus_client.Histogram, status: Mapping[str, Any], stamp: str) -> None:
        """Observe ``stamp - triggeredAt`` when this move is the one that set ``stamp`` (the last timeline entry)."""
        at = sla.parse_time(status.get(stamp))
        triggered = sla.parse_time(status.get("triggeredAt"))
        timeline = status.get("timeline")
        last = _mapping(timeline[-1]) if isinstance(timeline, list) and timeline else {}
        if at is None or triggered is None or sla.parse_time(last.get("at")) != at:
            return
        histogram.observe(max(0.0, (at - triggered) / datetime.timedelta(seconds=1)))


def routes(metrics: OperatorMetrics) -> list[http_.Route]:
    """``GET /metrics``."""

    async def serve(request: web.Request) -> web.Response:
        body = metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})

    return [http_.Route("GET", PATH, serve)]


def register(registry: kopf.OperatorRegistry, controller: incidents_controller.IncidentController) -> OperatorMetrics:
    """Make the metrics of one operator: listen to ``controller`` and count the Incidents the operator watches."""
    metrics = OperatorMetrics()
    controller.listeners.append(metrics.hear)

    async def on_incident(type: str | None, body: kopf.Body, **_: Any) -> None:
        metrics.incident_seen(body, deleted=type == "DELETED")

    kopf.on.event(GROUP, VERSION, "incidents", id="incident-metrics", registry=registry)(on_incident)
    return metrics
