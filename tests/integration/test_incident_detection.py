"""Failure → Incident on a simulated cluster: a crash-looping Deployment opens one Incident, fixing it resolves it.

A sandbox of its own runs the simulation with the fast settings (nodes, kubelets, workload
controllers); `upkeep run` runs as a subprocess against it, as it would against a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
CRASHING = "ghcr.io/upkeep-dev/shop:1.1-crash"
GOOD = "ghcr.io/upkeep-dev/shop:1.0"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A sandbox of its own, running the simulation with the fast settings, with Upkeep's CRDs."""
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    folder = tmp_path_factory.mktemp("incident-detection")
    with runner.ThreadedSandbox(
        kubeconfig=folder / "kubeconfig", simulation=SimulationSettings.fast(), admin=True
    ) as sandbox:
        cluster = Cluster(folder / "kubeconfig", sandbox)
        cluster.kubectl("apply", "-f", str(REPO / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    name = f"i-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    sim.kubectl("label", "namespace", name, f"upkeep-test={name}")
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


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
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))
    yield name
    sim.kubectl("delete", "supportpolicy", name, "--wait=false", check=False)


@pytest.fixture
def operator(sim: Cluster, ns: str, policy: str, tmp_path: Path) -> Iterator[Path]:
    """`upkeep run` watching the test's namespace; yields its log file."""
    path = tmp_path / "operator.log"
    log = path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "upkeep.cli", "run", "-n", ns, "--standalone", "--liveness", "none", "--http", "none"],
        env={**os.environ, "KUBECONFIG": str(sim.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield path
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def incidents(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "incidents", "-n", ns)["items"]
    return items


def deployment(name: str, image: str, replicas: int) -> str:
    labels = {"app": name}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": name, "image": image}]}},
            },
        }
    )


def test_a_crash_looping_deployment_opens_one_incident_that_resolves_once_fixed(
    sim: Cluster, ns: str, operator: Path
) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=deployment("shop", CRASHING, 5))

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

    sim.kubectl("set", "image", "-n", ns, "deployment/shop", f"shop={GOOD}")
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
