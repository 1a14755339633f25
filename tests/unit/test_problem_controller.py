"""The problem controller driven directly, with a fake cluster: opening once, links, conflicts, phases, dry run."""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import problems as controller_
from upkeep.engine import problems, sla

NS = "shop"
T0 = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)
FAMILY = "crashloopbackoff:shop:deployment:shop"
NAME = problems.problem_name(FAMILY)
POLICY = {"metadata": {"name": "default"}, "spec": {"problems": {"recurrences": 3, "window": "1h"}}}


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


class FakeCluster:
    """Incidents and Problems in memory, with resourceVersions checked as the API server does."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.version = 100
        self.writes: list[tuple[str, str]] = []
        self.before_write: Callable[[dict[str, Any]], None] | None = None

    def _bump(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(body)

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body["kind"], body["metadata"]["namespace"], body["metadata"]["name"])
        old = self.objects.get(key)
        stored = copy.deepcopy(body)
        generation = old["metadata"].get("generation", 1) if old else 1
        if old is not None and old.get("spec") != stored.get("spec"):
            generation += 1
        stored["metadata"]["generation"] = generation
        stored["metadata"].setdefault("uid", f"uid-{key[2]}")
        self.objects[key] = stored
        return self._bump(stored)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(kind, NS, name)])

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for (found, _, _), body in self.objects.items() if found == kind]

    async def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def _replace_status(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (kind, body["metadata"]["namespace"], body["metadata"]["name"])
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(self.objects[key])
        stored = self.objects[key]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise cluster_.Conflict("stale")
        stored["status"] = copy.deepcopy(body["status"])
        self.writes.append((kind, key[2]))
        return self._bump(stored)

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get("Incident", namespace, name)

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._replace_status("Incident", body)

    async def get_problem(self, namespace: str, name: str) -> dict[str, Any] | None:
        return await self._get("Problem", namespace, name)

    async def replace_problem_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._replace_status("Problem", body)

    async def create_problem(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = ("Problem", body["metadata"]["namespace"], body["metadata"]["name"])
        if key in self.objects:
            raise cluster_.Conflict("exists")
        self.writes.append(("Problem", key[2]))
        return self.put(dict(body))


class Caches:
    """The indexes, read from the fake cluster as Kopf's watches would have them."""

    def __init__(self, cluster: FakeCluster, policies: list[Mapping[str, Any]] | None = None) -> None:
        self.cluster = cluster
        self._policies = policies if policies is not None else [POLICY]
        self.extra: dict[str, list[Mapping[str, Any]]] = {"Change": [], "Release": []}

    def incidents(self, namespace: str) -> list[Mapping[str, Any]]:
        return self.cluster.of_kind("Incident")

    def problems(self, namespace: str) -> list[Mapping[str, Any]]:
        return self.cluster.of_kind("Problem")

    def changes(self, namespace: str) -> list[Mapping[str, Any]]:
        return self.extra["Change"]

    def releases(self, namespace: str) -> list[Mapping[str, Any]]:
        return self.extra["Release"]

    def policies(self) -> list[Mapping[str, Any]]:
        return self._policies

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


Event = tuple[str, str, str, str, str]
"""(kind, name, type, reason, message)."""


def controller(
    cluster: FakeCluster, *, dry_run: bool = False, now: datetime.datetime = T0 + 50 * MINUTE
) -> tuple[controller_.ProblemController, list[Event]]:
    events: list[Event] = []

    def sink(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        events.append((str(body.get("kind")), str(body["metadata"]["name"]), type_, reason, message))

    settings = settings_.OperatorSettings(
        scope=settings_.ScopeSettings(namespaces=(NS,)), safety=settings_.SafetySettings(dry_run=dry_run)
    )
    made = controller_.ProblemController(settings, cluster, events=sink, clock=lambda: now)
    made.caches = Caches(cluster)
    return made, events


def incident(
    name: str,
    at: datetime.datetime,
    *,
    phase: str = "Closed",
    fingerprint: str = FAMILY,
    reopened: tuple[datetime.datetime, ...] = (),
) -> dict[str, Any]:
    timeline = [{"at": sla.format_time(at), "to": "Triggered", "by": "detector/pods"}]
    for moment in reopened:
        timeline.append({"at": sla.format_time(moment - MINUTE), "from": "Triggered", "to": "Resolved", "by": "x"})
        timeline.append({"at": sla.format_time(moment), "from": "Resolved", "to": "Triggered", "by": "detector/pods"})
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "severity": "SEV2",
            "service": "shop",
            "summary": "shop: Deployment shop restarts in a loop",
            "signal": {"type": "CrashLoopBackOff", "fingerprint": fingerprint, "source": "detector/pods"},
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "namespace": NS},
        },
        "status": {"phase": phase, "occurrences": 4, "triggeredAt": sla.format_time(at), "timeline": timeline},
    }


def three(cluster: FakeCluster) -> list[dict[str, Any]]:
    """Three incidents of the family within the hour, the last one Triggered."""
    return [
        cluster.put(incident("shop-1", T0)),
        cluster.put(incident("shop-2", T0 + 20 * MINUTE)),
        cluster.put(incident("shop-3", T0 + 40 * MINUTE, phase="Triggered")),
    ]


# Opening


def test_the_third_recurrence_opens_one_problem_linked_both_ways() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster)
    found = three(cluster)

    run(made.incident_changed(found[-1]))

    (problem,) = cluster.of_kind("Problem")
    assert problem["metadata"]["name"] == NAME
    assert problem["spec"] == {
        "fingerprintFamily": FAMILY,
        "title": "shop: CrashLoopBackOff keeps recurring",
        "service": "shop",
    }
    status = problem["status"]
    assert status["phase"] == "Open"
    assert status["incidents"] == ["shop-1", "shop-2", "shop-3"]
    assert status["occurrences"] == 3
    assert status["observedGeneration"] == 1
    assert {item["type"]: item["status"] for item in status["conditions"]} == {"Ready": "True"}
    for name in ("shop-1", "shop-2", "shop-3"):
        linked = cluster.get("Incident", name)["status"]
        assert linked["problemRef"] == {"name": NAME}
        assert linked["occurrences"] == 4, "the rest of the status is kept"
    reasons = [(kind, reason) for kind, _, _, reason, _ in events]
    assert reasons == [("Problem", "Opened"), *[("Incident", "LinkedToProblem")] * 3]
    assert "3 recurrences" in events[0][4]


def test_two_recurrences_open_nothing() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster)
    found = three(cluster)[1:]
    del cluster.objects[("Incident", NS, "shop-1")]

    run(made.incident_changed(found[-1]))

    assert cluster.of_kind("Problem") == []
    assert cluster.writes == []
    assert events == []


def test_an_incident_reopened_twice_opens_a_problem() -> None:
    cluster = FakeCluster()
    made, _ = controller(cluster)
    body = cluster.put(
        incident("shop-1", T0, phase="Triggered", reopened=(T0 + 20 * MINUTE, T0 + 40 * MINUTE)),
    )

    run(made.incident_changed(body))

    (problem,) = cluster.of_kind("Problem")
    assert problem["status"]["incidents"] == ["shop-1"]
    assert problem["status"]["occurrences"] == 3
    assert cluster.get("Incident", "shop-1")["status"]["problemRef"] == {"name": NAME}


def test_an_incident_without_status_yet_is_left_to_the_incident_controller() -> None:
    cluster = FakeCluster()
    made, _ = controller(cluster)
    found = three(cluster)
    fresh = incident("shop-4", T0 + 45 * MINUTE)
    del fresh["status"]

    run(made.incident_changed(cluster.put(fresh)))
    run(made.incident_changed(found[-1]))

    assert "problemRef" not in cluster.get("Incident", "shop-4").get("status", {})
    assert cluster.get("Problem", NAME)["status"]["incidents"] == ["shop-1", "shop-2", "shop-3"]


def test_a_second_replica_or_a_restart_opens_no_second_problem_and_writes_nothing() -> None:
    cluster = FakeCluster()
    first, _ = controller(cluster)
    found = three(cluster)
    run(first.incident_changed(found[-1]))
    writes = len(cluster.writes)

    second, events = controller(cluster)
    run(second.incident_changed(cluster.get("Incident", "shop-3")))

    assert len(cluster.of_kind("Problem")) == 1
    assert len(cluster.writes) == writes, cluster.writes[writes:]
    assert events == []


def test_a_new_incident_of_the_family_is_linked_to_the_open_problem() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster, now=T0 + 55 * MINUTE)
    run(made.incident_changed(three(cluster)[-1]))
    events.clear()

    later = cluster.put(incident("shop-4", T0 + 50 * MINUTE, phase="Triggered"))
    run(made.incident_changed(later))

    status = cluster.get("Problem", NAME)["status"]
    assert status["incidents"] == ["shop-1", "shop-2", "shop-3", "shop-4"]
    assert status["occurrences"] == 4
    assert status["lastSeen"] == "2026-03-02T10:50:00Z"
    assert cluster.get("Incident", "shop-4")["status"]["problemRef"] == {"name": NAME}
    assert [(kind, reason) for kind, _, _, reason, _ in events] == [
        ("Problem", "Linked"),
        ("Incident", "LinkedToProblem"),
    ]


def test_a_conflict_with_the_incident_controller_keeps_what_it_wrote() -> None:
    cluster = FakeCluster()
    made, _ = controller(cluster)
    found = three(cluster)
    creating = True

    def occurrence(stored: dict[str, Any]) -> None:
        stored["status"]["occurrences"] = 9  # the incident controller counted one more meanwhile
        cluster._bump(stored)

    original = cluster.replace_incident_status

    async def racing(body: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal creating
        if creating and body["metadata"]["name"] == "shop-3":
            creating = False
            cluster.before_write = occurrence
        return await original(body)

    cluster.replace_incident_status = racing  # type: ignore[method-assign]

    run(made.incident_changed(found[-1]))

    status = cluster.get("Incident", "shop-3")["status"]
    assert status["problemRef"] == {"name": NAME}
    assert status["occurrences"] == 9


def test_an_incident_linked_to_another_problem_stays_there() -> None:
    cluster = FakeCluster()
    made, _ = controller(cluster)
    found = three(cluster)
    stored = cluster.objects[("Incident", NS, "shop-1")]
    stored["status"]["problemRef"] = {"name": "older-problem"}

    run(made.incident_changed(found[-1]))

    assert cluster.get("Incident", "shop-1")["status"]["problemRef"] == {"name": "older-problem"}
    assert cluster.get("Incident", "shop-2")["status"]["problemRef"] == {"name": NAME}


def test_an_unreadable_policy_opens_nothing_and_says_why_once() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster)
    made.caches = Caches(cluster, [{"metadata": {"name": "default"}, "spec": {"problems": {"window": "a day"}}}])
    found = three(cluster)

    run(made.incident_changed(found[-1]))
    run(made.incident_changed(found[-1]))

    assert cluster.of_kind("Problem") == []
    assert [(reason, "spec.problems.window" in message) for _, _, _, reason, message in events] == [
        ("InvalidPolicy", True)
    ]


# The phase


def opened(cluster: FakeCluster, now: datetime.datetime = T0 + 50 * MINUTE) -> controller_.ProblemController:
    made, _ = controller(cluster, now=now)
    run(made.incident_changed(three(cluster)[-1]))
    return made


def edit(cluster: FakeCluster, **spec: Any) -> dict[str, Any]:
    body = cluster.get("Problem", NAME)
    body["spec"].update(spec)
    return cluster.put(body)


def test_people_record_the_known_error_then_the_resolution() -> None:
    cluster = FakeCluster()
    opened(cluster)
    made, events = controller(cluster, now=T0 + 60 * MINUTE)

    run(made.problem_changed(edit(cluster, knownError={"rootCause": "1.1 panics", "workaround": "use 1.0"})))
    known = cluster.get("Problem", NAME)["status"]
    run(made.problem_changed(edit(cluster, resolution={"summary": "fixed in 1.2", "resolvedBy": "alice"})))
    resolved = cluster.get("Problem", NAME)["status"]

    assert known["phase"] == "KnownError"
    assert known["timeline"][-1] == {
        "at": "2026-03-02T11:00:00Z",
        "from": "Open",
        "to": "KnownError",
        "by": "upkeep",
        "note": "known error: 1.1 panics",
    }
    assert resolved["phase"] == "Resolved"
    assert resolved["resolvedAt"] == "2026-03-02T11:00:00Z"
    assert resolved["timeline"][-1]["by"] == "alice"
    assert resolved["observedGeneration"] == 3
    assert [(reason, type_) for _, _, type_, reason, _ in events] == [
        ("KnownError", "Normal"),
        ("Resolved", "Normal"),
    ]


def test_a_status_write_of_its_own_comes_back_as_an_event_and_changes_nothing() -> None:
    cluster = FakeCluster()
    made = opened(cluster)
    writes = len(cluster.writes)

    run(made.problem_changed(cluster.get("Problem", NAME)))

    assert len(cluster.writes) == writes


def test_the_fixing_change_resolves_the_problem_when_it_completes() -> None:
    cluster = FakeCluster()
    opened(cluster)
    made, events = controller(cluster, now=T0 + 60 * MINUTE)

    run(made.problem_changed(edit(cluster, fixChangeRef={"name": "shop-1-2"})))
    missing = cluster.get("Problem", NAME)["status"]
    change: dict[str, Any] = {
        "kind": "Change",
        "metadata": {"name": "shop-1-2", "namespace": NS},
        "spec": {"releaseRef": {"name": "shop"}},
        "status": {"phase": "InProgress"},
    }
    assert isinstance(made.caches, Caches)
    made.caches.extra["Change"] = [change]
    run(made.change_changed(change))
    waiting = cluster.get("Problem", NAME)["status"]
    change["status"] = {"phase": "Completed", "completedAt": "2026-03-02T10:58:00Z"}
    run(made.change_changed(change))
    done = cluster.get("Problem", NAME)["status"]

    ready = {item["type"]: item for item in missing["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "FixChangeNotFound")
    assert {item["type"]: item for item in waiting["conditions"]}["Ready"]["status"] == "True"
    assert waiting["phase"] == "Open"
    assert done["phase"] == "Resolved"
    assert "shop-1-2 completed" in done["timeline"][-1]["note"]
    assert [reason for _, _, _, reason, _ in events] == ["FixChangeNotFound", "Resolved"]


def test_a_resolved_problem_reopens_when_its_family_triggers_again() -> None:
    cluster = FakeCluster()
    opened(cluster, now=T0 + 41 * MINUTE)
    made, _ = controller(cluster, now=T0 + 45 * MINUTE)
    run(made.problem_changed(edit(cluster, resolution={"summary": "fixed"})))
    assert cluster.get("Problem", NAME)["status"]["phase"] == "Resolved"
    made, events = controller(cluster, now=T0 + 55 * MINUTE)

    again = cluster.put(incident("shop-4", T0 + 50 * MINUTE, phase="Triggered"))
    run(made.incident_changed(again))

    status = cluster.get("Problem", NAME)["status"]
    assert status["phase"] == "Open"
    assert status["incidents"][-1] == "shop-4"
    assert ("Problem", NAME, "Warning", "Reopened") in [event[:4] for event in events]


def test_a_problem_written_by_hand_links_the_incidents_of_its_family() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster)
    cluster.put(incident("shop-1", T0, fingerprint=FAMILY + ":container:shop"))
    cluster.put(incident("other", T0, fingerprint="oomkilled:shop:deployment:shop"))
    body = cluster.put(
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Problem",
            "metadata": {"name": "shop-crashes", "namespace": NS},
            "spec": {"fingerprintFamily": FAMILY, "title": "the shop crashes"},
        }
    )

    run(made.problem_changed(body))

    status = cluster.get("Problem", "shop-crashes")["status"]
    assert status["phase"] == "Open"
    assert status["incidents"] == ["shop-1"]
    assert cluster.get("Incident", "shop-1")["status"]["problemRef"] == {"name": "shop-crashes"}
    assert "problemRef" not in cluster.get("Incident", "other")["status"]
    assert events[0][:4] == ("Problem", "shop-crashes", "Normal", "Opened")


# Dry run


def test_dry_run_writes_nothing_and_says_once_what_it_would_open() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster, dry_run=True)
    found = three(cluster)

    run(made.incident_changed(found[-1]))
    run(made.incident_changed(found[-1]))

    assert cluster.of_kind("Problem") == []
    assert cluster.writes == []
    ((kind, name, type_, reason, message),) = events
    assert (kind, name, type_, reason) == ("Incident", "shop-3", "Normal", "DryRunProblem")
    assert f"would open Problem {NAME}" in message and "shop-1, shop-2, shop-3" in message


def test_dry_run_says_what_a_spec_change_would_do() -> None:
    cluster = FakeCluster()
    opened(cluster)
    made, events = controller(cluster, dry_run=True)
    before = cluster.get("Problem", NAME)["status"]

    run(made.problem_changed(edit(cluster, knownError={"rootCause": "1.1 panics"})))

    assert cluster.get("Problem", NAME)["status"] == before
    assert events == [("Problem", NAME, "Normal", "DryRun", "dry run: would move the problem from Open to KnownError")]


# Suspect changes


def release(name: str, applied: datetime.datetime) -> dict[str, Any]:
    return {
        "kind": "Release",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"workloadRef": {"name": "shop"}},
        "status": {"revision": "main@sha1:" + "a" * 40, "lastAppliedAt": sla.format_time(applied)},
    }


def test_the_release_applied_just_before_the_incident_is_recorded_as_a_suspect() -> None:
    cluster = FakeCluster()
    made, events = controller(cluster)
    assert isinstance(made.caches, Caches)
    made.caches.extra["Release"] = [release("storefront", T0 - 10 * MINUTE)]
    made.caches.extra["Change"] = [
        {
            "kind": "Change",
            "metadata": {"name": "storefront-7", "namespace": NS},
            "spec": {"releaseRef": {"name": "storefront"}, "revision": "b" * 40},
            "status": {"phase": "Completed", "completedAt": sla.format_time(T0 - 5 * MINUTE)},
        }
    ]
    body = cluster.put(incident("shop-1", T0, phase="Triggered"))

    run(made.incident_changed(body))
    run(made.incident_changed(cluster.get("Incident", "shop-1")))

    status = cluster.get("Incident", "shop-1")["status"]
    assert status["suspectChanges"] == [
        {"kind": "Change", "name": "storefront-7", "revision": "b" * 40, "at": "2026-03-02T09:55:00Z"},
        {"kind": "Release", "name": "storefront", "revision": "main@sha1:" + "a" * 40, "at": "2026-03-02T09:50:00Z"},
    ]
    assert cluster.writes == [("Incident", "shop-1")], "written once"
    assert [reason for _, _, _, reason, _ in events] == ["SuspectChanges"]


def test_no_release_of_the_service_no_suspect_and_no_write() -> None:
    cluster = FakeCluster()
    made, _ = controller(cluster)
    assert isinstance(made.caches, Caches)
    made.caches.extra["Release"] = [release("storefront", T0 - 3 * 60 * MINUTE)]
    body = cluster.put(incident("shop-1", T0, phase="Triggered"))

    run(made.incident_changed(body))

    assert "suspectChanges" not in cluster.get("Incident", "shop-1")["status"]
    assert cluster.writes == []
