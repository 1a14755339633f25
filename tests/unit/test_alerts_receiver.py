"""The Alertmanager receiver without a cluster: payload checks, namespaces, auth, and alerts through the controller.

The receiver's HTTP side runs on the operator's real HTTP server bound to 127.0.0.1 (port 0)
with a recording intake in place of the incident controller; the controller's side of alerts
(``observe_alert`` and the auto-resolve clock) runs against an in-memory cluster.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from support import fakes
from upkeep import settings as settings_
from upkeep.controllers import alerts, http, metrics
from upkeep.controllers import incidents as controller_
from upkeep.engine import incidents, signals
from upkeep.model import resources

NS = "shop"
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
POLICY = {
    "metadata": {"name": "default"},
    "spec": {
        "severityRules": [{"severity": "SEV1", "match": {"signalTypes": ["Alert"]}}],
        "autoResolve": {"clearFor": "30s"},
    },
}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def alert(
    name: str = "HighLatency",
    *,
    status: str = "firing",
    namespace: str | None = NS,
    starts: str = "2025-03-01T11:59:00Z",
    fingerprint: str = "a1b2c3",
    **labels: str,
) -> dict[str, Any]:
    named = {"alertname": name, "service": "shop", **labels}
    if namespace is not None:
        named["namespace"] = namespace
    return {
        "status": status,
        "labels": named,
        "annotations": {"summary": "p99 latency above 1 s"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2025-03-01T12:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    }


def payload(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "upkeep",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(items),
    }


# Reading payloads


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"version": "4"}', "alerts"),
        (b'{"alerts": {"labels": {}}}', "alerts"),
        (b'{"alerts": [{"labels": {}}, "x"]}', "alerts[1]"),
        (b'{"alerts": [{"status": "firing"}]}', "alerts[0].labels"),
        (b'{"alerts": [{"labels": {}, "status": "pending"}]}', "alerts[0].status"),
        (b'{"alerts": [{"labels": {}, "endsAt": "yesterday"}]}', "alerts[0].endsAt"),
    ],
)
def test_a_payload_that_is_not_alertmanagers_is_refused_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(alerts.PayloadError) as refused:
        alerts.read_payload(body)
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")


def test_a_real_payload_is_read_alert_by_alert() -> None:
    read = alerts.read_payload(json.dumps(payload(alert(), alert(status="resolved", fingerprint="d4"))).encode())
    found = alerts.alerts_from(read, NOW, default_namespace="ops")
    assert [(item.firing, item.instance, item.episode) for item in found] == [
        (True, "a1b2c3", "2025-03-01T11:59:00Z"),
        (False, "d4", "2025-03-01T11:59:00Z"),
    ]
    signal = found[0].signal
    assert (signal.type, signal.namespace, signal.source, signal.reason) == ("Alert", NS, "alertmanager", "HighLatency")
    assert signal.fingerprint.startswith("alert:shop:highlatency:")
    assert found[0].signal.fingerprint == found[1].signal.fingerprint


def test_an_alert_without_a_namespace_goes_to_the_operators_namespace_with_its_labels_as_sent() -> None:
    (found,) = alerts.alerts_from(payload(alert(namespace=None)), NOW, default_namespace="ops")
    assert found.signal.namespace == "ops"
    assert found.signal.fingerprint.startswith("alert:ops:highlatency:")
    assert "namespace" not in found.signal.labels
    (other,) = alerts.alerts_from(payload(alert(namespace=None)), NOW, default_namespace="default")
    assert other.signal.fingerprint.split(":")[-1] == found.signal.fingerprint.split(":")[-1]


def test_an_alert_without_alertmanagers_fingerprint_is_told_apart_by_its_labels() -> None:
    first, second, same = alerts.alerts_from(
        payload(alert(fingerprint="", pod="a"), alert(fingerprint="", pod="b"), alert(fingerprint="", pod="a")),
        NOW,
        default_namespace="ops",
    )
    assert first.instance != second.instance
    assert first.instance == same.instance


@pytest.mark.parametrize(
    ("namespaces", "everything", "namespace", "watched"),
    [
        (("shop",), False, "shop", True),
        (("shop",), False, "other", False),
        (("team-*",), False, "team-a", True),
        (("team-*", "!team-x"), False, "team-x", False),
        (("!kube-*",), False, "shop", True),
        (("a,b",), False, "b", True),
        ((), True, "anything", True),
    ],
)
def test_the_namespaces_an_operator_watches(
    namespaces: tuple[str, ...], everything: bool, namespace: str, watched: bool
) -> None:
    scope = settings_.ScopeSettings(namespaces=namespaces, all_namespaces=everything)
    assert alerts.watches(scope, namespace) is watched


# The receiver over HTTP


class RecordingIntake:
    """Stands in for the incident controller: records what it is given."""

    def __init__(self, *, fail: bool = False) -> None:
        self.seen: list[tuple[str, bool, str, str, bool]] = []
        self.fail = fail

    @property
    def node_namespace(self) -> str:
        return "ops"

    async def observe_alert(
        self,
        signal: signals.Signal,
        *,
        firing: bool,
        instance: str,
        episode: str = "",
        indexes: Mapping[str, Any] | None = None,
    ) -> None:
        if self.fail:
            raise RuntimeError("the API server is away")
        self.seen.append((signal.fingerprint, firing, instance, episode, indexes is not None))


@asynccontextmanager
async def serving(
    intake: RecordingIntake, *, token_file: Path | None = None, ready: bool = True
) -> AsyncIterator[tuple[str, metrics.OperatorMetrics]]:
    measured = metrics.OperatorMetrics()
    settings = settings_.OperatorSettings(scope=settings_.ScopeSettings(namespaces=(NS, "ops")))
    receiver = alerts.AlertReceiver(intake, settings, measured, token_file=token_file, clock=lambda: NOW)
    if ready:
        receiver.attach({"upkeep_supportpolicies": None})
    server = http.HttpServer("127.0.0.1", 0, [*alerts.routes(receiver), *metrics.routes(measured)])
    await server.start()
    try:
        yield f"{server.url}{alerts.PATH}", measured
    finally:
        await server.stop()


async def post(url: str, body: bytes, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as answer:
        return answer.status, await answer.json()


def value(measured: metrics.OperatorMetrics, name: str, **labels: str) -> float:
    found = measured.registry.get_sample_value(name, labels)
    return float(found or 0.0)


def test_alerts_reach_the_controller_and_foreign_namespaces_are_counted_and_dropped() -> None:
    async def scenario() -> None:
        intake = RecordingIntake()
        async with serving(intake) as (url, measured):
            body = payload(
                alert(), alert(namespace="elsewhere", fingerprint="e1"), alert(namespace=None, fingerprint="o")
            )
            status, answer = await post(url, json.dumps(body).encode(), **{"Content-Type": "application/json"})
        assert (status, answer) == (200, {"received": 3, "ignored": 1})
        assert [(firing, instance, with_indexes) for _, firing, instance, _, with_indexes in intake.seen] == [
            (True, "a1b2c3", True),
            (True, "o", True),
        ]
        assert intake.seen[1][0].startswith("alert:ops:")
        assert value(measured, "upkeep_alerts_received_total", status="firing") == 3
        assert value(measured, "upkeep_alerts_ignored_total", reason="namespace_not_watched") == 1

    run(scenario())


def test_bad_json_is_answered_400_naming_the_field() -> None:
    async def scenario() -> None:
        intake = RecordingIntake()
        async with serving(intake) as (url, measured):
            status, answer = await post(url, b'{"receiver": "upkeep"}')
            assert (status, answer["field"]) == (400, "alerts")
            assert "alerts" in answer["error"]
            status, answer = await post(url, b"nonsense")
            assert (status, answer["field"]) == (400, "body")
            assert value(measured, "upkeep_webhook_requests_rejected_total", reason="bad_request") == 2
        assert intake.seen == []

    run(scenario())


def test_with_a_token_file_only_the_bearer_of_the_token_is_heard(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n", encoding="utf-8")

    async def scenario() -> None:
        intake = RecordingIntake()
        body = json.dumps(payload(alert())).encode()
        async with serving(intake, token_file=token_file) as (url, measured):
            assert (await post(url, body))[0] == 401
            assert (await post(url, body, Authorization="Bearer wrong"))[0] == 401
            assert (await post(url, body, Authorization="Basic s3cret-token"))[0] == 401
            assert (await post(url, body, Authorization="Bearer s3cret-tökén".encode().decode("latin-1")))[0] == 401
            assert intake.seen == []
            assert (await post(url, body, Authorization="Bearer s3cret-token"))[0] == 200
            token_file.write_text("rotated", encoding="utf-8")
            assert (await post(url, body, Authorization="Bearer s3cret-token"))[0] == 401
            assert (await post(url, body, Authorization="Bearer rotated"))[0] == 200
            assert value(measured, "upkeep_webhook_requests_rejected_total", reason="unauthorized") == 5
        assert len(intake.seen) == 2

    run(scenario())


def test_an_unreadable_token_file_stops_the_operator_naming_the_variable(tmp_path: Path) -> None:
    import kopf

    with pytest.raises(SystemExit) as stopped:
        alerts.register(
            kopf.OperatorRegistry(),
            settings_.OperatorSettings(),
            RecordingIntake(),
            metrics.OperatorMetrics(),
            token_file=str(tmp_path / "missing"),
        )
    assert alerts.TOKEN_FILE_ENV in str(stopped.value.code)


def test_before_the_caches_are_filled_the_receiver_asks_alertmanager_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts, "READY_TIMEOUT", 0.05)

    async def scenario() -> None:
        intake = RecordingIntake()
        async with serving(intake, ready=False) as (url, _):
            status, answer = await post(url, json.dumps(payload(alert())).encode())
        assert status == 503
        assert "starting" in answer["error"]
        assert intake.seen == []

    run(scenario())


def test_a_failure_to_record_answers_500_so_alertmanager_retries() -> None:
    async def scenario() -> None:
        async with serving(RecordingIntake(fail=True)) as (url, measured):
            status, answer = await post(url, json.dumps(payload(alert())).encode())
            assert status == 500
            assert "retries" in answer["error"]
            assert value(measured, "upkeep_webhook_requests_rejected_total", reason="failed") == 1

    run(scenario())


# The controller's side: alerts as sightings


class FakeCluster(fakes.FakeIncidentCluster):
    """The incident fake, except that alerts must never make the controller list objects."""

    async def list_objects(
        self, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        raise AssertionError(f"alerts have no objects to list, yet {kind} objects were listed")

    def only(self) -> dict[str, Any]:
        found = list(self.objects.values())
        assert len(found) == 1, [body["metadata"]["name"] for body in found]
        return copy.deepcopy(found[0])


class StaticCaches:
    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        return None

    def policies(self) -> list[Mapping[str, Any]]:
        return [POLICY]

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def make_controller(
    cluster: FakeCluster, clock: Clock, *, dry_run: bool = False
) -> tuple[controller_.IncidentController, list[str]]:
    reasons: list[str] = []
    settings = settings_.OperatorSettings(
        scope=settings_.ScopeSettings(namespaces=(NS,)), safety=settings_.SafetySettings(dry_run=dry_run)
    )
    made = controller_.IncidentController(
        settings, cluster, events=lambda body, type_, reason, message: reasons.append(reason), clock=clock
    )
    made.caches = StaticCaches()
    return made, reasons


async def deliver(made: controller_.IncidentController, clock: Clock, *items: dict[str, Any]) -> str:
    """Hand the alerts to the controller as the receiver does; the fingerprint of the last."""
    fingerprint = ""
    for item in alerts.alerts_from(payload(*items), clock.now, default_namespace=made.node_namespace):
        await made.observe_alert(item.signal, firing=item.firing, instance=item.instance, episode=item.episode)
        fingerprint = item.signal.fingerprint
    return fingerprint


def test_a_firing_alert_opens_one_incident_and_a_resend_counts_nothing() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, reasons = make_controller(cluster, clock)
        fingerprint = await deliver(made, clock, alert())
        await deliver(made, clock, alert())
        incident = cluster.only()
        assert incident["spec"]["signal"]["type"] == "Alert"
        assert incident["spec"]["signal"]["source"] == "alertmanager"
        assert incident["spec"]["signal"]["fingerprint"] == fingerprint
        assert incident["spec"]["severity"] == "SEV1"
        assert (incident["status"]["phase"], incident["status"]["occurrences"]) == ("Triggered", 1)
        assert reasons.count("Opened") == 1

    run(scenario())


def test_a_resolved_alert_resolves_its_incident_after_the_clear_window_and_a_new_firing_reopens() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, reasons = make_controller(cluster, clock)
        fingerprint = await deliver(made, clock, alert())
        assert await made.tend(cluster.only(), fingerprint) is None  # no SLA, the alert fires: nothing to wait for

        clock.advance(5)
        await deliver(made, clock, alert(status="resolved"))
        due = await made.tend(cluster.only(), fingerprint)
        assert due == clock.now + datetime.timedelta(seconds=30)
        assert cluster.only()["status"]["clearSince"] == "2025-03-01T12:00:05Z"

        clock.advance(30)
        await made.tend(cluster.only(), fingerprint)
        resolved = cluster.only()["status"]
        assert resolved["phase"] == "Resolved"
        assert resolved["timeline"][-1]["by"] == incidents.AUTO_RESOLVE_ACTOR

        clock.advance(5)
        await deliver(made, clock, alert(starts="2025-03-01T12:00:40Z"))
        back = cluster.only()["status"]
        assert (back["phase"], back["occurrences"]) == ("Triggered", 2)
        assert reasons.count("Reopened") == 1

    run(scenario())


def test_an_alert_shared_by_two_pods_is_clear_only_when_both_resolve() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, _ = make_controller(cluster, clock)
        first = alert(fingerprint="p1", pod="shop-a", deployment="shop")
        second = alert(fingerprint="p2", pod="shop-b", deployment="shop")
        fingerprint = await deliver(made, clock, first, second)
        assert cluster.only()["status"]["occurrences"] == 2
        await deliver(made, clock, {**first, "status": "resolved"})
        await made.tend(cluster.only(), fingerprint)
        assert "clearSince" not in cluster.only()["status"]
        await deliver(made, clock, {**second, "status": "resolved"})
        await made.tend(cluster.only(), fingerprint)
        assert "clearSince" in cluster.only()["status"]

    run(scenario())


def test_after_a_restart_an_open_alert_incident_waits_for_alertmanager_before_it_resolves() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, _ = make_controller(cluster, clock)
        fingerprint = await deliver(made, clock, alert())

        restarted, _ = make_controller(cluster, clock)
        clock.advance(3600)
        await restarted.tend(cluster.only(), fingerprint)
        status = cluster.only()["status"]
        assert (status["phase"], "clearSince" in status) == ("Triggered", False)

        await deliver(restarted, clock, alert())  # Alertmanager's repeat: the same firing, counted once
        assert cluster.only()["status"]["occurrences"] == 1
        await deliver(restarted, clock, alert(status="resolved"))
        await restarted.tend(cluster.only(), fingerprint)
        assert cluster.only()["status"]["clearSince"] == "2025-03-01T13:00:00Z"
        clock.advance(30)
        await restarted.tend(cluster.only(), fingerprint)
        assert cluster.only()["status"]["phase"] == "Resolved"

    run(scenario())


def test_a_resolved_alert_first_heard_after_a_restart_starts_the_clear_clock() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, _ = make_controller(cluster, clock)
        fingerprint = await deliver(made, clock, alert())
        restarted, _ = make_controller(cluster, clock)
        clock.advance(10)
        await deliver(restarted, clock, alert(status="resolved"))
        assert await restarted.tend(cluster.only(), fingerprint) == clock.now + datetime.timedelta(seconds=30)

    run(scenario())


def test_in_dry_run_an_alert_opens_no_incident_but_says_what_it_would() -> None:
    async def scenario() -> None:
        cluster, clock = FakeCluster(), Clock()
        made, reasons = make_controller(cluster, clock, dry_run=True)
        await deliver(made, clock, alert())
        await deliver(made, clock, alert())
        assert cluster.objects == {}
        assert len(cluster.dry_runs) == 1
        assert reasons == ["DryRunIncident"]

    run(scenario())
