"""The incident controller driven directly, with a fake cluster: dedupe, counting, conflicts, restarts, dry run."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Coroutine, Mapping
from typing import Any

from support import fakes
from upkeep import settings as settings_
from upkeep.controllers import incidents as controller_
from upkeep.engine import incidents
from upkeep.model import resources

NS = "shop"
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
FINGERPRINT = "crashloopbackoff:shop:deployment:shop"
POLICY = {
    "metadata": {"name": "default"},
    "spec": {
        "severityRules": [{"severity": "SEV2", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
        "sla": [{"severity": "SEV2", "acknowledgeWithin": "15m", "resolveWithin": "8h"}],
        "autoResolve": {"clearFor": "30s"},
    },
}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


FakeCluster = fakes.FakeIncidentCluster


class StaticCaches:
    def __init__(self, policies: list[Mapping[str, Any]] | None = None) -> None:
        self._policies = policies if policies is not None else [POLICY]

    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        return None

    def policies(self) -> list[Mapping[str, Any]]:
        return self._policies

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


def controller(
    cluster: FakeCluster, *, dry_run: bool = False, clock: Clock | None = None
) -> tuple[controller_.IncidentController, list[tuple[str, str, str, str]]]:
    events: list[tuple[str, str, str, str]] = []

    def sink(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        events.append((str(body.get("kind")), type_, reason, message))

    settings = settings_.OperatorSettings(
        scope=settings_.ScopeSettings(namespaces=(NS,)), safety=settings_.SafetySettings(dry_run=dry_run)
    )
    made = controller_.IncidentController(settings, cluster, events=sink, clock=clock or Clock())
    made.caches = StaticCaches()
    return made, events


def pod(name: str, *, restarts: int = 1, crashing: bool = True, uid: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": "CrashLoopBackOff"}} if crashing else {"running": {}}
    return {
        "metadata": {
            "name": f"shop-6d8f7c9b54-{name}",
            "namespace": NS,
            "uid": uid or f"uid-{name}",
            "labels": {"app": "shop", "pod-template-hash": "6d8f7c9b54"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": "shop-6d8f7c9b54", "controller": True}],
        },
        "status": {"containerStatuses": [{"name": "shop", "restartCount": restarts, "state": state}]},
    }


def only(cluster: FakeCluster) -> dict[str, Any]:
    found = cluster.incidents()
    assert len(found) == 1, [body["metadata"]["name"] for body in found]
    return found[0]


def test_five_crashing_pods_open_one_incident_with_five_occurrences() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, events = controller(cluster)
        await asyncio.gather(*(made.observe("Pod", pod(name)) for name in "abcde"))
        incident = only(cluster)
        assert incident["spec"]["signal"]["fingerprint"] == FINGERPRINT
        assert incident["spec"]["severity"] == "SEV2"
        assert incident["metadata"]["labels"][incidents.FINGERPRINT_HASH_LABEL] == incidents.fingerprint_hash(
            FINGERPRINT
        )
        status = incident["status"]
        assert (status["phase"], status["occurrences"], len(status["affected"])) == ("Triggered", 5, 5)
        assert status["observedGeneration"] == 1
        assert status["sla"]["acknowledgeBy"] == "2025-03-01T12:15:00Z"
        reasons = [reason for _, _, reason, _ in events]
        assert reasons.count("Opened") == 1 and reasons.count("IncidentOpened") == 1 and reasons.count("Occurred") == 4
        assert next((kind, type_) for kind, type_, r, _ in events if r == "IncidentOpened") == ("Deployment", "Warning")

    run(scenario())


def test_each_restart_counts_and_an_unchanged_pod_does_not() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        await made.observe("Pod", pod("a", restarts=1))
        await made.observe("Pod", pod("a", restarts=1))
        await made.observe("Pod", pod("a", restarts=4))
        assert only(cluster)["status"]["occurrences"] == 1 + 3

    run(scenario())


def test_a_restarted_operator_does_not_count_what_the_incident_lists_again() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        first, _ = controller(cluster)
        for name in "abc":
            await first.observe("Pod", pod(name, restarts=2))
        second, _ = controller(cluster)
        for name in "abc":
            await second.observe("Pod", pod(name, restarts=2))
        assert only(cluster)["status"]["occurrences"] == 3
        await second.observe("Pod", pod("a", restarts=3))
        await second.observe("Pod", pod("d", restarts=0))
        assert only(cluster)["status"]["occurrences"] == 5

    run(scenario())


def test_two_replicas_seeing_the_same_signal_make_one_incident() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        one, _ = controller(cluster)
        two, _ = controller(cluster)
        await asyncio.gather(one.observe("Pod", pod("a")), two.observe("Pod", pod("b")))
        incident = only(cluster)
        assert incident["status"]["occurrences"] == 2

    run(scenario())


def test_a_write_that_conflicts_reads_again_and_loses_nothing() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        await made.observe("Pod", pod("a"))

        def someone_else(stored: dict[str, Any]) -> None:
            stored["status"]["occurrences"] += 10
            cluster._bump(stored)

        cluster.before_write = someone_else
        await made.observe("Pod", pod("b"))
        assert only(cluster)["status"]["occurrences"] == 1 + 10 + 1

    run(scenario())


def test_dry_run_writes_no_incident_and_says_what_it_would_open() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, events = controller(cluster, dry_run=True)
        for name in "ab":
            await made.observe("Pod", pod(name))
        assert cluster.incidents() == []
        assert [body["metadata"]["name"] for body in cluster.dry_runs] == [incidents.name_for(FINGERPRINT)]
        (told,) = [event for event in events if event[2] == "DryRunIncident"]
        assert told[0] == "Deployment" and "would open Incident" in told[3] and "SEV2" in told[3]

    run(scenario())


def test_a_crash_looping_deployments_unavailability_is_a_symptom_not_a_second_incident() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        await made.observe("Pod", pod("a"))
        since = (NOW - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        unavailable = {
            "metadata": {"name": "shop", "namespace": NS, "uid": "d1"},
            "status": {
                "conditions": [
                    {
                        "type": "Available",
                        "status": "False",
                        "reason": "MinimumReplicasUnavailable",
                        "lastTransitionTime": since,
                    }
                ]
            },
        }
        await made.observe("Deployment", unavailable)
        assert only(cluster)["spec"]["signal"]["type"] == "CrashLoopBackOff"

    run(scenario())


def test_people_acknowledge_through_spec_state_and_a_refused_move_names_the_field() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, events = controller(cluster)
        await made.observe("Pod", pod("a"))
        incident = only(cluster)
        incident["spec"].update({"state": "Acknowledged", "note": "looking"})
        incident["metadata"]["annotations"][controller_.REQUESTED_BY_ANNOTATION] = "alice"
        await made.incident_changed(cluster.put(incident))
        status = only(cluster)["status"]
        assert status["phase"] == "Acknowledged"
        assert status["timeline"][-1] == {
            "at": "2025-03-01T12:00:00Z",
            "from": "Triggered",
            "to": "Acknowledged",
            "by": "alice",
            "note": "looking",
        }
        assert ("Incident", "Normal", "Acknowledged") in [event[:3] for event in events]

        refused = only(cluster)
        refused["spec"]["state"] = "Closed"
        await made.incident_changed(cluster.put(refused))
        status = only(cluster)["status"]
        assert status["phase"] == "Acknowledged"
        ready = next(item for item in status["conditions"] if item["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidTransition")
        assert "spec.state" in ready["message"]
        warning = next(event for event in events if event[2] == "InvalidTransition")
        assert warning[1] == "Warning" and "spec.state" in warning[3]

    run(scenario())


def test_an_incident_written_by_hand_gets_its_status_and_label() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, events = controller(cluster)
        body = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": "checkout-down", "namespace": NS},
            "spec": {"severity": "SEV1", "summary": "checkout is down", "signal": {"type": "Manual"}},
        }
        await made.incident_changed(cluster.put(body))
        stored = only(cluster)
        assert stored["status"]["phase"] == "Triggered"
        assert stored["status"]["timeline"][0]["by"] == "kubectl"
        assert incidents.FINGERPRINT_HASH_LABEL in stored["metadata"]["labels"]
        assert "Opened" in [event[2] for event in events]

    run(scenario())


def test_the_clock_resolves_once_the_signal_stayed_away_and_a_return_reopens() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        clock = Clock()
        made, events = controller(cluster, clock=clock)
        await made.observe("Pod", pod("a", restarts=1))
        incident = only(cluster)
        assert await made.tend(incident, FINGERPRINT) == datetime.datetime(2025, 3, 1, 12, 15, tzinfo=datetime.UTC)

        clock.advance(10)
        await made.observe("Pod", pod("a", restarts=1, crashing=False))
        due = await made.tend(only(cluster), FINGERPRINT)
        assert due == clock.now + datetime.timedelta(seconds=30)
        assert only(cluster)["status"]["clearSince"] == "2025-03-01T12:00:10Z"

        clock.advance(30)
        assert await made.tend(only(cluster), FINGERPRINT) is None
        resolved = only(cluster)["status"]
        assert resolved["phase"] == "Resolved"
        assert resolved["timeline"][-1]["by"] == incidents.AUTO_RESOLVE_ACTOR
        assert "AutoResolved" in [event[2] for event in events]

        clock.advance(5)
        await made.observe("Pod", pod("a", restarts=2))
        back = only(cluster)["status"]
        assert (back["phase"], back["occurrences"]) == ("Triggered", 2)
        assert "clearSince" not in back
        assert "Reopened" in [event[2] for event in events]

    run(scenario())


def test_after_a_start_the_clock_lists_the_objects_before_it_believes_the_signal_is_gone() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        await made.observe("Pod", pod("a"))
        restarted, _ = controller(cluster)
        cluster.listed["Pod"] = [pod("a")]
        assert await restarted.tend(only(cluster), FINGERPRINT) is not None
        assert "clearSince" not in only(cluster)["status"]
        await restarted.observe("Pod", pod("a", crashing=False))
        await restarted.tend(only(cluster), FINGERPRINT)
        assert only(cluster)["status"]["clearSince"] == "2025-03-01T12:00:00Z"

    run(scenario())


def test_a_closed_incident_is_final_and_the_signal_opens_the_next() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        await made.observe("Pod", pod("a"))
        for state in ("Resolved", "Closed"):
            incident = only(cluster)
            incident["spec"]["state"] = state
            await made.incident_changed(cluster.put(incident))
        assert only(cluster)["status"]["phase"] == "Closed"
        await made.observe("Pod", pod("b"))
        names = sorted(body["metadata"]["name"] for body in cluster.incidents())
        assert names == sorted([incidents.name_for(FINGERPRINT), incidents.name_for(FINGERPRINT, sequence=2)])

    run(scenario())


def test_node_incidents_go_to_the_first_namespace_watched() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        node = {
            "metadata": {"name": "worker-2", "uid": "n2"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}]},
        }
        await made.observe("Node", node)
        incident = only(cluster)
        assert incident["metadata"]["namespace"] == NS
        assert incident["spec"]["signal"]["fingerprint"] == f"nodenotready:{NS}:node:worker-2"
        assert incident["spec"]["severity"] == "SEV2"

    run(scenario())


def test_listeners_hear_each_notice_with_the_occurrences_it_adds() -> None:
    async def scenario() -> None:
        cluster = FakeCluster()
        made, _ = controller(cluster)
        heard: list[controller_.Notice] = []
        made.listeners.append(heard.append)
        made.listeners.append(lambda notice: 1 / 0)  # a failing listener is logged, never stops the others
        await made.observe("Pod", pod("a", restarts=1))
        await made.observe("Pod", pod("a", restarts=4))
        assert [(notice.reason, notice.count, notice.signal_type) for notice in heard] == [
            ("Opened", 1, "CrashLoopBackOff"),
            ("Occurred", 3, "CrashLoopBackOff"),
        ]
        assert heard[-1].incident["status"]["occurrences"] == 4
        assert heard[-1].previous_phase == "Triggered"

    run(scenario())


class SelectorCaches(StaticCaches):
    def __init__(self, selector: Mapping[str, Any]) -> None:
        super().__init__()
        self.selector = selector

    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        return {"kind": ref.kind, "metadata": {"name": ref.name}, "spec": {"selector": self.selector}}


def test_verifying_an_absence_lists_only_the_workloads_objects() -> None:
    made, _ = controller(FakeCluster())
    shop = resources.ObjectRef("Deployment", "shop", NS, "apps/v1")
    made.caches = SelectorCaches({"matchLabels": {"app": "shop", "tier": "web"}})
    assert made._narrowing("Pod", shop) == ("app=shop,tier=web", "")
    assert made._narrowing("Deployment", shop) == ("", "metadata.name=shop")
    made.caches = SelectorCaches(
        {"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}
    )
    assert made._narrowing("Pod", shop) == ("", "")  # expressions: the whole namespace, never too few
    assert made._narrowing("Node", None) == ("", "")
