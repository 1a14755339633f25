"""A drain that would go below minHealthy or a PodDisruptionBudget is refused, and the run says why.

On the simulated sandbox, with the operator as a process of its own: a NodeNotReady Incident written by hand names
a node that carries both replicas of a Deployment (pinned there by a nodeSelector); the Playbook cordons the node,
then drains it.

- With ``guards.minHealthy: 50%`` the drain is refused before it evicts anything: the step and the run fail naming
  minHealthy, the workload and the numbers.
- Without minHealthy but with a PodDisruptionBudget whose minAvailable is the replica count, the Eviction API
  refuses every eviction: the step and the run fail naming the budget.

Either way no pod is evicted: the same pods run, and the sandbox's journal holds no eviction of the namespace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import running_operator, simulated_sandbox
from support.workloads import GOOD_IMAGE, apply, deployment, namespace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("playbook-guards")) as cluster:
        yield cluster


def drain_playbook(guards: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": "drain-node"},
        "spec": {
            "match": {"signalTypes": ["NodeNotReady"]},
            "steps": [
                {"name": "cordon", "action": "cordonNode", "timeout": "30s"},
                {"name": "drain", "action": "drainNode", "params": {"timeout": "2s"}, "timeout": "30s"},
            ],
            "verification": {"replicasReady": False, "signalClear": False, "stableFor": "0s", "timeout": "30s"},
            "guards": {"maxAttempts": 1, **guards},
            "escalation": {"raiseSeverity": False, "handOver": False},
        },
    }


def node_incident(node: str) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": f"{node}-notready"},
        "spec": {
            "severity": "SEV2",
            "service": node,
            "summary": f"node {node} stopped reporting",
            "signal": {"type": "NodeNotReady", "source": "kubectl"},
            "workload": {"apiVersion": "v1", "kind": "Node", "name": node},
        },
    }


@contextlib.contextmanager
def pinned_web(sim: Cluster, ns: str, node: str) -> Iterator[dict[str, str]]:
    """The Deployment web with both replicas ready on ``node``; yields its pods (name → uid); uncordons after."""
    body = deployment("web", GOOD_IMAGE, 2)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    apply(sim, body, ns)
    sim.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")
    try:
        yield pods(sim, ns)
    finally:
        sim.kubectl("uncordon", node, check=False)


def pods(sim: Cluster, ns: str) -> dict[str, str]:
    items = sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=web")["items"]
    return {item["metadata"]["name"]: item["metadata"]["uid"] for item in items}


def ended_run(sim: Cluster, ns: str, tmp_path: Path) -> tuple[dict[str, Any], str]:
    """Start the operator, wait for the run to end; the run and the operator's log."""
    with running_operator(sim, [ns], tmp_path / "operator.log", "--run-lease", "2") as operator:

        def ended() -> dict[str, Any] | None:
            runs = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
            done = [run for run in runs if (run.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Skipped")]
            return done[0] if done else None

        run = eventually(ended, timeout=60, interval=0.3, message="the run ended")
        return run, operator.log()


def evictions(sim: Cluster, ns: str, since: int) -> list[Any]:
    assert sim.sandbox is not None
    return [
        write
        for write in sim.sandbox.writes()[since:]
        if write.namespace == ns and write.subresource == "eviction" and not write.dry_run
    ]


def condition(run: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {item["type"]: item for item in run["status"]["conditions"]}[kind]
    return found


def steps_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in run["status"]["steps"]}


def test_a_drain_below_min_healthy_is_refused_naming_the_guard_and_the_numbers(sim: Cluster, tmp_path: Path) -> None:
    assert sim.sandbox is not None
    node = "sandbox-node-1"
    with namespace(sim, "minhealthy") as ns, pinned_web(sim, ns, node) as before:
        apply(sim, drain_playbook({"minHealthy": "50%"}), ns)
        apply(sim, node_incident(node), ns)
        since = len(sim.sandbox.writes())
        run, log = ended_run(sim, ns, tmp_path)
        status = run["status"]
        assert status["phase"] == "Failed", (status, log[-3000:])
        steps = steps_of(run)
        assert steps["cordon"]["phase"] == "Succeeded"
        drain = steps["drain"]
        assert drain["phase"] == "Failed" and drain["outcome"] == "Refused", drain
        message = drain["message"]
        assert message.startswith("MinHealthy: "), message
        assert "would leave 0 of 2 replicas ready, fewer than minHealthy 50% (1)" in message, message
        assert message.endswith(f"of Deployment/{ns}/web"), message
        succeeded = condition(run, "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("False", "StepFailed"), succeeded
        assert "step 'drain' failed: MinHealthy: " in succeeded["message"], succeeded
        # Refused before it changed anything: no eviction was asked, the same pods run, the drain's key is not
        # on the node (only the cordon's).
        assert evictions(sim, ns, since) == []
        assert pods(sim, ns) == before
        annotations = sim.kubectl_json("get", "node", node)["metadata"].get("annotations") or {}
        assert annotations.get("upkeep.dev/action-key") == f"{run['metadata']['uid']}/0"


def test_a_drain_a_pod_disruption_budget_forbids_is_refused_naming_the_budget(sim: Cluster, tmp_path: Path) -> None:
    assert sim.sandbox is not None
    node = "sandbox-node-2"
    with namespace(sim, "pdb") as ns, pinned_web(sim, ns, node) as before:
        budget = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
        }
        apply(sim, budget, ns)
        eventually(
            lambda: (sim.kubectl_json("get", "pdb", "web", "-n", ns).get("status") or {}).get("currentHealthy") == 2,
            timeout=30,
            message="the budget counts the healthy pods",
        )
        apply(sim, drain_playbook({}), ns)
        apply(sim, node_incident(node), ns)
        since = len(sim.sandbox.writes())
        run, log = ended_run(sim, ns, tmp_path)
        status = run["status"]
        assert status["phase"] == "Failed", (status, log[-3000:])
        drain = steps_of(run)["drain"]
        assert drain["phase"] == "Failed", drain
        expected = f"would violate PodDisruptionBudget {ns}/web (it needs 2 healthy pods and has 2)"
        assert expected in drain["message"], drain
        succeeded = condition(run, "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("False", "StepFailed"), succeeded
        assert f"PodDisruptionBudget {ns}/web" in succeeded["message"], succeeded
        # The Eviction API refused every eviction: none went through, the same pods run.
        assert evictions(sim, ns, since) == []
        assert pods(sim, ns) == before
        assert sim.kubectl_json("get", "node", node)["spec"].get("unschedulable") is True
