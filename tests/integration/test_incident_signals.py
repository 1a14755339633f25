"""Each kind of failure gives its own signal type: an OOM kill, an unpullable image, a node down, a failed Job.

The failures are the simulation's own, produced as on a real cluster: an image that
outgrows its memory limit and an image tag the registry lacks (docs/sandbox-images.md),
a node whose kubelet stops (the sandbox's fault API, as ``upkeep sandbox fault node down``)
and a Job whose command exits 1. `upkeep run` watches a namespace of each test's own; one
SupportPolicy gives every signal type a severity of its own, so the severity proves the
policy's rule was applied to the right type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, running_operator, simulated_sandbox
from support.workloads import apply, deployment, incidents, namespace

pytestmark = pytest.mark.integration
LABEL = "upkeep-signals"
SEVERITIES = {"OOMKilled": "SEV2", "ImagePullBackOff": "SEV3", "NodeNotReady": "SEV1", "JobFailed": "SEV2"}
"""The test policy's rule per signal type; anything else would get its default, SEV4."""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One simulated sandbox for the module, with a SupportPolicy for the namespaces the tests label."""
    with simulated_sandbox(tmp_path_factory.mktemp("incident-signals")) as cluster:
        rules = [
            {"severity": severity, "match": {"signalTypes": [signal_type]}}
            for signal_type, severity in SEVERITIES.items()
        ]
        policy = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": "signals"},
            "spec": {
                "namespaceSelector": {"matchLabels": {LABEL: "yes"}},
                "defaultSeverity": "SEV4",
                "severityRules": rules,
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(policy))
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "sig", {LABEL: "yes"}) as name:
        yield name


@pytest.fixture
def operator(sim: Cluster, ns: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    with running_operator(sim, [ns], tmp_path / "operator.log") as started:
        yield started


def one_incident(sim: Cluster, ns: str, *, pods: int = 0, what: str) -> dict[str, Any]:
    """The namespace's incident once it lists ``pods`` affected pods (any, when 0); fails if there are two."""

    def settled() -> dict[str, Any] | None:
        found = incidents(sim, ns)
        assert len(found) <= 1, f"one incident, not {[item['metadata']['name'] for item in found]}"
        status = found[0].get("status", {}) if found else {}
        if status.get("phase") and len(status.get("affected", [])) >= pods:
            return found[0]
        return None

    incident = eventually(settled, timeout=60, interval=0.2, message=what)
    names = [item["metadata"]["name"] for item in incidents(sim, ns)]
    assert names == [incident["metadata"]["name"]], f"exactly one incident, not {names}"
    return incident


def pod_names(sim: Cluster, ns: str, app: str) -> set[str]:
    items = sim.kubectl_json("get", "pods", "-n", ns, "-l", f"app={app}")["items"]
    return {item["metadata"]["name"] for item in items}


def test_a_container_over_its_memory_limit_gives_oom_killed(sim: Cluster, ns: str, operator: OperatorProcess) -> None:
    apply(sim, deployment("cart", "ghcr.io/upkeep-dev/shop:1.2-oom", 2, memory="256Mi"), ns)

    incident = one_incident(sim, ns, pods=2, what="an OOMKilled incident of both pods")

    spec, status = incident["spec"], incident["status"]
    assert spec["signal"]["type"] == "OOMKilled", spec["signal"]
    assert spec["signal"]["fingerprint"] == f"oomkilled:{ns}:deployment:cart"
    assert spec["signal"]["reason"] == "OOMKilled"
    assert "exit code 137" in spec["signal"]["message"]
    assert spec["workload"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart", "namespace": ns}
    assert spec["severity"] == SEVERITIES["OOMKilled"]
    assert {item["kind"] for item in status["affected"]} == {"Pod"}
    assert {item["name"] for item in status["affected"]} <= pod_names(sim, ns, "cart")
    assert status["occurrences"] >= 2


def test_an_image_that_does_not_exist_gives_image_pull_back_off(
    sim: Cluster, ns: str, operator: OperatorProcess
) -> None:
    apply(sim, deployment("web", "nginx:0.0.0-missing", 2), ns)

    incident = one_incident(sim, ns, pods=2, what="an ImagePullBackOff incident of both pods")

    spec, status = incident["spec"], incident["status"]
    assert spec["signal"]["type"] == "ImagePullBackOff", spec["signal"]
    assert spec["signal"]["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert spec["signal"]["fingerprint"] == f"imagepullbackoff:{ns}:deployment:web"
    assert spec["workload"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": ns}
    assert spec["severity"] == SEVERITIES["ImagePullBackOff"]
    assert {item["name"] for item in status["affected"]} <= pod_names(sim, ns, "web")
    assert "Incident" in incident["kind"] and incident["metadata"]["name"].startswith("web-imagepull-")


def test_a_job_whose_command_fails_gives_job_failed(sim: Cluster, ns: str, operator: OperatorProcess) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "nightly-export"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "export", "image": "busybox:1.36", "command": ["sh", "-c", "exit 1"]}],
                }
            },
        },
    }
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(job))

    incident = one_incident(sim, ns, what="a JobFailed incident")

    spec, status = incident["spec"], incident["status"]
    assert spec["signal"]["type"] == "JobFailed", spec["signal"]
    assert spec["signal"]["reason"] == "BackoffLimitExceeded"
    assert spec["signal"]["fingerprint"] == f"jobfailed:{ns}:job:nightly-export"
    job_ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "nightly-export", "namespace": ns}
    assert spec["workload"] == job_ref
    assert status["affected"] == [job_ref]
    assert spec["severity"] == SEVERITIES["JobFailed"]
    failed = sim.kubectl_json("get", "job", "nightly-export", "-n", ns)["status"]["conditions"]
    assert any(item["type"] == "Failed" and item["status"] == "True" for item in failed)


def test_a_node_whose_kubelet_stops_gives_node_not_ready(sim: Cluster, ns: str, operator: OperatorProcess) -> None:
    from upkeep.sandbox import runner

    node = "sandbox-node-3"
    runner.post_fault(sim.sandbox.url, sim.sandbox.token, {"type": "node-down", "node": node})
    try:
        incident = one_incident(sim, ns, what=f"a NodeNotReady incident for {node}")
    finally:
        runner.post_fault(sim.sandbox.url, sim.sandbox.token, {"type": "node-up", "node": node})

    spec, status = incident["spec"], incident["status"]
    assert spec["signal"]["type"] == "NodeNotReady", spec["signal"]
    assert spec["signal"]["reason"] == "NodeStatusUnknown"
    assert spec["signal"]["fingerprint"] == f"nodenotready:{ns}:node:{node}"
    assert spec["workload"]["kind"] == "Node" and spec["workload"]["name"] == node
    assert [(item["kind"], item["name"]) for item in status["affected"]] == [("Node", node)]
    assert spec["severity"] == SEVERITIES["NodeNotReady"]
    assert incident["metadata"]["namespace"] == ns
    eventually(lambda: " Ready " in sim.kubectl("get", "node", node).stdout, timeout=20, message=f"{node} Ready again")
