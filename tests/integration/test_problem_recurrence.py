"""Recurring incidents become one Problem, linked both ways; people record the known error and the resolution.

A Deployment is broken (a crashing image), fixed (a good image) and broken again, for real
on the simulated cluster; the SupportPolicy resolves an incident 1 s after its signal goes
and opens a Problem at the third recurrence within an hour. The incident controller reopens
a Resolved incident when its failure comes back (docs/incidents.md), so the recurrences are
three incidents when people close each one after it resolved, and one incident triggered
three times when nobody does: both open one Problem. `upkeep run` runs as a subprocess.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, running_operator, simulated_sandbox
from support.workloads import CRASHING_IMAGE, GOOD_IMAGE, apply, deployment, namespace

pytestmark = pytest.mark.integration
LABEL = "upkeep-problems"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One simulated sandbox for the module; its SupportPolicy opens a Problem at 3 recurrences within 1h."""
    with simulated_sandbox(tmp_path_factory.mktemp("problems")) as cluster:
        policy = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": "problems"},
            "spec": {
                "namespaceSelector": {"matchLabels": {LABEL: "yes"}},
                "defaultSeverity": "SEV3",
                "autoResolve": {"clearFor": "1s"},
                "problems": {"recurrences": 3, "window": "1h"},
                "detection": {"suspectLookback": "1h"},
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(policy))
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "prb", {LABEL: "yes"}) as name:
        yield name


@pytest.fixture
def operator(sim: Cluster, ns: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(sim, [ns], tmp_path / "operator.log") as started:
        yield started


def incidents(sim: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = sim.kubectl_json("get", "incidents", "-n", ns)["items"]
    return {item["metadata"]["name"]: item for item in items}


def problems(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "problems", "-n", ns)["items"]
    return items


def events(sim: Cluster, ns: str, name: str, reason: str, kind: str = "Problem") -> list[dict[str, Any]]:
    """The Events of one object (a Problem and its first Incident share a name: both come from the fingerprint)."""
    selector = f"involvedObject.kind={kind},involvedObject.name={name},reason={reason}"
    items: list[dict[str, Any]] = sim.kubectl_json("get", "events", "-n", ns, "--field-selector", selector)["items"]
    return items


def phase_of(sim: Cluster, ns: str, name: str) -> str:
    return str(incidents(sim, ns).get(name, {}).get("status", {}).get("phase") or "")


def reaches(sim: Cluster, ns: str, name: str, phase: str) -> None:
    eventually(lambda: phase_of(sim, ns, name) == phase, timeout=30, message=f"{name} {phase}")


def break_it(sim: Cluster, ns: str) -> None:
    apply(sim, deployment("shop", CRASHING_IMAGE, 1), ns)


def fix_it(sim: Cluster, ns: str) -> None:
    apply(sim, deployment("shop", GOOD_IMAGE, 1), ns)
    sim.kubectl("rollout", "status", "-n", ns, "deployment/shop", "--timeout=60s", timeout=90)


def triggered(sim: Cluster, ns: str, times: int) -> dict[str, Any]:
    """The namespace's incidents once they were triggered ``times`` times in all and one is Triggered now."""

    def enough() -> dict[str, Any] | None:
        found = incidents(sim, ns)
        count = sum(
            1
            for item in found.values()
            for entry in item.get("status", {}).get("timeline", [])
            if entry["to"] == "Triggered"
        )
        live = [item for item in found.values() if item.get("status", {}).get("phase") == "Triggered"]
        return found if count >= times and live else None

    result: dict[str, Any] = eventually(enough, timeout=60, interval=0.2, message=f"{times} triggerings")
    return result


def the_problem(sim: Cluster, ns: str, ready: str) -> dict[str, Any]:
    def opened() -> dict[str, Any] | None:
        found = problems(sim, ns)
        assert len(found) <= 1, f"one problem, not {[item['metadata']['name'] for item in found]}"
        return found[0] if found and found[0].get("status", {}).get("phase") == ready else None

    result: dict[str, Any] = eventually(opened, timeout=30, interval=0.2, message=f"a {ready} problem")
    return result


def test_three_incidents_of_one_family_open_one_problem_that_people_resolve(
    sim: Cluster, ns: str, operator: OperatorProcess
) -> None:
    family = f"crashloopbackoff:{ns}:deployment:shop"
    for round_ in (1, 2):
        break_it(sim, ns)
        found = triggered(sim, ns, round_)
        name = next(key for key, item in found.items() if item["status"]["phase"] == "Triggered")
        fix_it(sim, ns)
        reaches(sim, ns, name, "Resolved")
        assert problems(sim, ns) == [], "no problem before the third recurrence"
        patch = {"spec": {"state": "Closed", "note": f"round {round_} reviewed"}}
        sim.kubectl("patch", "incident", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))
        reaches(sim, ns, name, "Closed")
    break_it(sim, ns)
    triggered(sim, ns, 3)

    problem = the_problem(sim, ns, "Open")
    name = problem["metadata"]["name"]
    found = incidents(sim, ns)
    assert len(found) == 3, f"three incidents, one per recurrence after a close: {sorted(found)}"
    oldest_first = sorted(found, key=lambda key: found[key]["status"]["triggeredAt"])
    spec, status = problem["spec"], problem["status"]
    assert spec["fingerprintFamily"] == family
    assert spec["service"] == "shop"
    assert spec["title"] == "shop: CrashLoopBackOff keeps recurring"
    assert status["incidents"] == oldest_first
    assert status["occurrences"] == 3
    assert status["firstSeen"] == found[oldest_first[0]]["status"]["triggeredAt"]
    assert [entry["to"] for entry in status["timeline"]] == ["Open"]
    assert {item["type"]: item["status"] for item in status["conditions"]}["Ready"] == "True"
    assert eventually(lambda: events(sim, ns, name, "Opened"), timeout=30, message="an Opened Event on the problem")

    def linked() -> bool:
        return all(item["status"].get("problemRef") == {"name": name} for item in incidents(sim, ns).values())

    eventually(linked, timeout=30, message="every incident's status.problemRef names the problem")
    assert eventually(lambda: events(sim, ns, oldest_first[0], "LinkedToProblem", "Incident"), timeout=30)

    table = sim.kubectl("get", "problems", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "OCCURRENCES", "READY", "AGE"]
    assert table[1].split()[:4] == [name, "Open", "3", "True"]
    wide = sim.kubectl("get", "problems", "-n", ns, "-o", "wide").stdout.splitlines()
    assert "FAMILY" in wide[0].split() and family in wide[1].split()

    known = {"spec": {"knownError": {"rootCause": "1.1 panics on start", "workaround": "roll back to 1.0"}}}
    sim.kubectl("patch", "problem", name, "-n", ns, "--type", "merge", "-p", json.dumps(known))
    moved = the_problem(sim, ns, "KnownError")
    last = moved["status"]["timeline"][-1]
    assert (last["from"], last["to"], last["by"]) == ("Open", "KnownError", "upkeep")
    assert "1.1 panics on start" in last["note"]
    assert eventually(lambda: events(sim, ns, name, "KnownError"), timeout=30)

    resolution = {"spec": {"resolution": {"summary": "fixed in 1.2", "resolvedBy": "alice@example.com"}}}
    sim.kubectl("patch", "problem", name, "-n", ns, "--type", "merge", "-p", json.dumps(resolution))
    resolved = the_problem(sim, ns, "Resolved")
    last = resolved["status"]["timeline"][-1]
    assert (last["from"], last["to"], last["by"]) == ("KnownError", "Resolved", "alice@example.com")
    assert resolved["status"]["resolvedAt"] == last["at"]
    assert resolved["status"]["observedGeneration"] == resolved["metadata"]["generation"]
    assert sim.kubectl("get", "problems", "-n", ns, "--no-headers").stdout.split()[1] == "Resolved"
    assert eventually(lambda: events(sim, ns, name, "Resolved"), timeout=30)


def test_one_incident_reopened_by_its_recurrences_opens_a_problem(
    sim: Cluster, ns: str, operator: OperatorProcess
) -> None:
    for round_ in (1, 2):
        break_it(sim, ns)
        found = triggered(sim, ns, round_)
        (name,) = found
        fix_it(sim, ns)
        reaches(sim, ns, name, "Resolved")
        assert problems(sim, ns) == []
    break_it(sim, ns)
    triggered(sim, ns, 3)

    problem = the_problem(sim, ns, "Open")
    assert list(incidents(sim, ns)) == [name], "the recurrences reopened the one incident"
    assert problem["status"]["incidents"] == [name]
    assert problem["status"]["occurrences"] == 3
    assert problem["status"]["timeline"][0]["note"] == "opened: 3 recurrences in 1 incident"
    eventually(
        lambda: incidents(sim, ns)[name]["status"].get("problemRef") == {"name": problem["metadata"]["name"]},
        timeout=30,
        message="the incident links the problem",
    )


def test_an_incident_records_the_releases_and_changes_that_acted_just_before_it(
    sim: Cluster, ns: str, operator: OperatorProcess
) -> None:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    def at(minutes_ago: int) -> str:
        return (now - datetime.timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")

    def release(name: str, workload: str, minutes_ago: int) -> None:
        body = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": name},
            "spec": {"sourceRef": {"name": "shop-repo"}, "workloadRef": {"name": workload}},
        }
        sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
        applied = {"status": {"revision": f"main@sha1:{'a' * 40}", "lastAppliedAt": at(minutes_ago)}}
        sim.kubectl(
            "patch", "release", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(applied)
        )

    def change(name: str, release_name: str, minutes_ago: int) -> None:
        body = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Change",
            "metadata": {"name": name},
            "spec": {
                "releaseRef": {"name": release_name},
                "revision": "b" * 40,
                "title": f"{name} of {release_name}",
                "author": "bob@example.com",
            },
        }
        sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
        done = {"status": {"phase": "Completed", "startedAt": at(minutes_ago + 1), "completedAt": at(minutes_ago)}}
        sim.kubectl("patch", "change", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps(done))

    release("storefront", "shop", 20)
    change("shop-1-1", "storefront", 10)
    change("shop-1-0", "storefront", 180)  # before the lookback: not a suspect
    release("billing", "billing", 5)  # another service
    change("billing-2", "billing", 5)

    break_it(sim, ns)
    (name,) = triggered(sim, ns, 1)

    def recorded() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] | None = incidents(sim, ns)[name]["status"].get("suspectChanges")
        return found

    suspects = eventually(recorded, timeout=30, message="status.suspectChanges")
    assert [(item["kind"], item["name"]) for item in suspects] == [("Change", "shop-1-1"), ("Release", "storefront")]
    assert suspects[0]["revision"] == "b" * 40 and suspects[0]["at"] == at(10)
    assert suspects[1]["revision"] == f"main@sha1:{'a' * 40}" and suspects[1]["at"] == at(20)
    assert eventually(lambda: events(sim, ns, name, "SuspectChanges", "Incident"), timeout=30)
