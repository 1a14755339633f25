"""Failure → Incident on a simulated cluster: a crash-looping Deployment opens one Incident, fixing it resolves it.

A sandbox of its own runs the simulation with the fast settings (nodes, kubelets, workload
controllers); `upkeep run` runs as a subprocess against it, as it would against a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import operator as operator_
from support import workloads
from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A sandbox of its own, running the simulation with the fast settings, with Upkeep's CRDs."""
    with operator_.simulated_sandbox(tmp_path_factory.mktemp("incident-detection")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with workloads.namespace(sim, "i") as name:
        yield name


@pytest.fixture
def policy(sim: Cluster, ns: str) -> Iterator[str]:
    """A SupportPolicy for the test's namespace only: crash loops are SEV2, the signal must stay away 2 s."""
    name = f"policy-{ns}"
    body = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "SupportPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"upkeep-test": ns}},
            "defaultSeverity": "SEV4",
            "severityRules": [{"severity": "SEV2", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
            "sla": [{"severity": "SEV2", "acknowledgeWithin": "1h", "resolveWithin": "8h"}],
            "autoResolve": {"clearFor": "2s"},
        },
    }
    workloads.apply(sim, body)
    yield name
    sim.kubectl("delete", "supportpolicy", name, "--wait=false", check=False)


@pytest.fixture
def operator(sim: Cluster, ns: str, policy: str, tmp_path: Path) -> Iterator[operator_.OperatorProcess]:
    """`upkeep run` watching the test's namespace."""
    with operator_.running_operator(sim, [ns], tmp_path / "operator.log") as started:
        yield started


def incidents(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    return workloads.incidents(sim, ns)


def test_a_crash_looping_deployment_opens_one_incident_that_resolves_once_fixed(
    sim: Cluster, ns: str, operator: operator_.OperatorProcess
) -> None:
    workloads.apply(sim, workloads.deployment("shop", workloads.CRASHING_IMAGE, 5), ns)

    def counted() -> dict[str, Any] | None:
        found = incidents(sim, ns)
        status = found[0].get("status", {}) if found else {}
        if status.get("occurrences", 0) >= 5 and len(status.get("affected", [])) >= 5:
            return found[0]
        return None

    incident = eventually(counted, timeout=60, interval=0.2, message="an incident of 5 pods with 5 occurrences")
    names = [item["metadata"]["name"] for item in incidents(sim, ns)]
    assert names == [incident["metadata"]["name"]], f"exactly one incident, not {names}"
    spec, status = incident["spec"], incident["status"]
    assert spec["signal"]["type"] == "CrashLoopBackOff"
    assert spec["signal"]["fingerprint"] == f"crashloopbackoff:{ns}:deployment:shop"
    assert spec["severity"] == "SEV2"
    assert spec["workload"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "namespace": ns}
    assert spec["service"] == "shop"
    assert status["phase"] == "Triggered"
    assert {item["kind"] for item in status["affected"]} == {"Pod"}
    assert len({item["name"] for item in status["affected"]}) == 5
    assert status["sla"]["acknowledgeBreached"] is False
    name = incident["metadata"]["name"]
    opened = sim.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},reason=Opened"
    )["items"]
    assert opened and "SEV2" in opened[0]["message"]

    sim.kubectl("set", "image", "-n", ns, "deployment/shop", f"shop={workloads.GOOD_IMAGE}")
    sim.kubectl("rollout", "status", "-n", ns, "deployment/shop", "--timeout=60s", timeout=90)

    def resolved() -> dict[str, Any] | None:
        found = incidents(sim, ns)
        return found[0] if found and found[0]["status"].get("phase") == "Resolved" else None

    done = eventually(resolved, timeout=30, interval=0.2, message="the incident resolved")
    assert [item["metadata"]["name"] for item in incidents(sim, ns)] == [name]
    timeline = done["status"]["timeline"]
    assert [entry["to"] for entry in timeline] == ["Triggered", "Resolved"]
    assert timeline[-1]["by"] == "upkeep/auto-resolve"
    assert done["status"]["clearSince"] <= done["status"]["resolvedAt"]
    assert done["metadata"]["name"] == name
    resolved_events = sim.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},reason=AutoResolved"
    )["items"]
    assert resolved_events
