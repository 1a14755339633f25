"""The operator's metrics from the incident controller's notices and Incident bodies, without a cluster."""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import kopf

from upkeep import settings as settings_
from upkeep.controllers import http, metrics
from upkeep.controllers import incidents as controller_


def incident(
    name: str = "shop-crashloop-1",
    *,
    phase: str = "Triggered",
    severity: str = "SEV2",
    namespace: str = "shop",
    **status: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"severity": severity, "signal": {"type": "CrashLoopBackOff"}},
        "status": {"phase": phase, "triggeredAt": "2025-03-01T12:00:00Z", **status},
    }


def moved(to: str, at: str, *, previous: str, reason: str | None = None, **stamps: str) -> controller_.Notice:
    """The notice of a move to ``to`` at ``at`` (the last timeline entry), with the status stamps given."""
    timeline = [{"at": "2025-03-01T12:00:00Z", "to": "Triggered"}, {"at": at, "from": previous, "to": to}]
    body = incident(phase=to, timeline=timeline, **stamps)
    return controller_.Notice(
        body, "Normal", reason or to, "moved", signal_type="CrashLoopBackOff", previous_phase=previous
    )


def sample(measured: metrics.OperatorMetrics, name: str, **labels: str) -> float:
    return float(measured.registry.get_sample_value(name, labels) or 0.0)


def test_open_incidents_are_counted_by_severity_from_what_the_api_says() -> None:
    measured = metrics.OperatorMetrics()
    measured.incident_seen(incident("a"))
    measured.incident_seen(incident("b", severity="SEV1", phase="Acknowledged"))
    measured.incident_seen(incident("c", phase="Mitigated"))
    measured.incident_seen(incident("a"))  # seen again: still one
    measured.incident_seen(incident("written-by-hand", phase=""))  # no status yet: not open
    assert sample(measured, "upkeep_incidents_open", severity="SEV2") == 2
    assert sample(measured, "upkeep_incidents_open", severity="SEV1") == 1
    assert sample(measured, "upkeep_incidents_open", severity="SEV4") == 0

    measured.incident_seen(incident("c", phase="Resolved"))
    measured.incident_seen(incident("b", severity="SEV1", phase="Acknowledged"), deleted=True)
    assert sample(measured, "upkeep_incidents_open", severity="SEV2") == 1
    assert sample(measured, "upkeep_incidents_open", severity="SEV1") == 0

    measured.incident_seen(incident("c", phase="Triggered", severity="SEV3"))  # reopened, severity changed
    assert sample(measured, "upkeep_incidents_open", severity="SEV3") == 1


def test_detections_count_the_occurrences_notices_add() -> None:
    measured = metrics.OperatorMetrics()
    body = incident()
    for reason, count in (("Opened", 5), ("Occurred", 2), ("Reopened", 1), ("Escalated", 0), ("AutoResolved", 0)):
        measured.hear(controller_.Notice(body, "Normal", reason, "", signal_type="CrashLoopBackOff", count=count))
    measured.hear(controller_.Notice(body, "Normal", "Opened", "", signal_type="Alert", count=1))
    assert sample(measured, "upkeep_detections_total", signal_type="CrashLoopBackOff") == 8
    assert sample(measured, "upkeep_detections_total", signal_type="Alert") == 1
    assert sample(measured, "upkeep_detections_total", signal_type="OOMKilled") == 0


def test_time_to_acknowledge_is_observed_once_per_incident() -> None:
    measured = metrics.OperatorMetrics()
    acknowledged = {"acknowledgedAt": "2025-03-01T12:04:00Z"}
    measured.hear(moved("Acknowledged", "2025-03-01T12:04:00Z", previous="Triggered", **acknowledged))
    # Later moves keep the first stamp: Mitigating, and a second acknowledgement after a reopen, observe nothing.
    measured.hear(moved("Mitigating", "2025-03-01T12:10:00Z", previous="Acknowledged", **acknowledged))
    measured.hear(moved("Acknowledged", "2025-03-01T13:00:00Z", previous="Triggered", **acknowledged))
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_count") == 1
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_sum") == 240
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_bucket", le="300.0") == 1
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_bucket", le="60.0") == 0


def test_mitigating_straight_from_triggered_acknowledges() -> None:
    measured = metrics.OperatorMetrics()
    measured.hear(
        moved("Mitigating", "2025-03-01T12:00:30Z", previous="Triggered", acknowledgedAt="2025-03-01T12:00:30Z")
    )
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_count") == 1


def test_time_to_resolve_is_observed_on_the_first_resolution_by_people_or_the_clock() -> None:
    measured = metrics.OperatorMetrics()
    resolved = {"resolvedAt": "2025-03-01T14:00:00Z"}
    measured.hear(moved("Resolved", "2025-03-01T14:00:00Z", previous="Triggered", reason="AutoResolved", **resolved))
    measured.hear(moved("Resolved", "2025-03-01T16:00:00Z", previous="Triggered", **resolved))  # after a reopen
    other = metrics.OperatorMetrics()
    other.hear(moved("Resolved", "2025-03-01T12:30:00Z", previous="Mitigated", resolvedAt="2025-03-01T12:30:00Z"))
    assert sample(measured, "upkeep_incident_time_to_resolve_seconds_count") == 1
    assert sample(measured, "upkeep_incident_time_to_resolve_seconds_sum") == 7200
    assert sample(other, "upkeep_incident_time_to_resolve_seconds_sum") == 1800
    assert sample(measured, "upkeep_incident_time_to_acknowledge_seconds_count") == 0


def test_breaches_failures_and_alerts_are_counted_by_label() -> None:
    measured = metrics.OperatorMetrics()
    measured.hear(controller_.Notice(incident(), "Warning", "SLABreached", "", breach="acknowledge"))
    measured.notification_failed("oncall-slack")
    measured.notification_failed("oncall-slack")
    measured.alert_received("firing")
    measured.alert_ignored("namespace_not_watched")
    assert sample(measured, "upkeep_sla_breaches_total", deadline="acknowledge") == 1
    assert sample(measured, "upkeep_sla_breaches_total", deadline="resolve") == 0
    assert sample(measured, "upkeep_notification_failures_total", channel="oncall-slack") == 2
    assert sample(measured, "upkeep_alerts_received_total", status="firing") == 1
    assert sample(measured, "upkeep_alerts_ignored_total", reason="namespace_not_watched") == 1


def test_two_operators_in_one_process_keep_their_own_figures() -> None:
    first, second = metrics.OperatorMetrics(), metrics.OperatorMetrics()
    first.notification_failed("pager")
    assert sample(second, "upkeep_notification_failures_total", channel="pager") == 0
    text = first.exposition().decode()
    assert 'upkeep_notification_failures_total{channel="pager"} 1.0' in text
    assert 'upkeep_incidents_open{severity="SEV1"} 0.0' in text
    assert "process_resident_memory_bytes" in text


def test_register_listens_to_the_controller() -> None:
    registry = kopf.OperatorRegistry()
    made = controller_.IncidentController(settings_.OperatorSettings(), cluster=None)  # type: ignore[arg-type]
    measured = metrics.register(registry, made)
    assert made.listeners == [measured.hear]
    assert "incident-metrics" in [handler.id for handler in registry._watching.get_all_handlers()]


def test_metrics_are_served_as_prometheus_text_on_the_operators_server() -> None:
    measured = metrics.OperatorMetrics()
    measured.alert_received("resolved")

    async def scenario() -> tuple[str, str, str]:
        server = http.HttpServer("127.0.0.1", 0, metrics.routes(measured))
        await server.start()
        try:

            def scrape(path: str) -> tuple[str, str]:
                with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as answer:
                    return answer.headers["Content-Type"], answer.read().decode()

            kind, text = await asyncio.to_thread(scrape, metrics.PATH)
            _, health = await asyncio.to_thread(scrape, http.HEALTH_PATH)
            return kind, text, health
        finally:
            await server.stop()

    kind, text, health = asyncio.run(scenario())
    assert kind.startswith("text/plain")
    assert 'upkeep_alerts_received_total{status="resolved"} 1.0' in text
    assert health == "ok\n"


def test_a_malformed_listen_address_is_a_usage_error_naming_the_flag() -> None:
    settings = settings_.OperatorSettings(http=settings_.HttpSettings(listen="8081"))
    try:
        http.register(kopf.OperatorRegistry(), settings, [])
    except SystemExit as stopped:
        assert stopped.code == 2
    else:
        raise AssertionError("a malformed --http was accepted")
    assert http.parse_listen("[::1]:9000") == ("::1", 9000)
    assert http.parse_listen("0.0.0.0:8081") == ("0.0.0.0", 8081)
    assert (
        http.register(kopf.OperatorRegistry(), settings_.OperatorSettings(http=settings_.HttpSettings(None)), [])
        is None
    )
