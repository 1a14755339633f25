"""The simulated control plane seen through the real kubectl: scheduling, node failure, drain and PDBs, Services.

One sandbox with simulated nodes (the fast settings: a node is NotReady 2 s after its kubelet stops
and its pods leave 2 s later) serves every test of this file; each test works in its own namespace
and leaves the nodes as it found them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    folder = tmp_path_factory.mktemp("sim-cluster")
    kubeconfig = folder / "kubeconfig"
    settings = SimulationSettings.fast(nodes=3)
    with runner.ThreadedSandbox(kubeconfig=kubeconfig, admin=True, simulation=settings) as sandbox:
        found = Cluster(kubeconfig, sandbox)
        eventually(lambda: len(ready_nodes(found)) == 3, timeout=15, message="three Ready nodes")
        yield found


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"sim-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def fault(cluster: Cluster, **body: object) -> dict[str, object]:
    from upkeep.sandbox import runner

    return runner.post_fault(cluster.sandbox.url, cluster.sandbox.token, dict(body))


def nodes(cluster: Cluster) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "nodes")["items"])


def ready(obj: dict[str, Any]) -> str:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return str(condition["status"])
    return ""


def ready_nodes(cluster: Cluster) -> list[str]:
    return [node["metadata"]["name"] for node in nodes(cluster) if ready(node) == "True"]


def pods(cluster: Cluster, namespace: str, *selector: str) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "pods", "-n", namespace, *selector)["items"])


def apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))


def deployment(name: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    container = {"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 80, "name": "http"}]}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container], **pod_spec}},
        },
    }


def rollout(cluster: Cluster, namespace: str, name: str) -> None:
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", namespace, "--timeout=20s", timeout=30)


def events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return list(cluster.kubectl_json("get", "events", "-n", namespace)["items"])


# scheduling


def test_pods_are_spread_over_the_nodes_with_scheduled_events(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("web", 3))
    rollout(cluster, namespace, "web")
    placed = [pod["spec"]["nodeName"] for pod in pods(cluster, namespace, "-l", "app=web")]
    assert len(set(placed)) == 3, f"three replicas on three nodes: {placed}"
    pod = pods(cluster, namespace, "-l", "app=web")[0]
    scheduled = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "True"
    name, node = pod["metadata"]["name"], pod["spec"]["nodeName"]
    described = cluster.kubectl("describe", "pod", name, "-n", namespace).stdout
    assert re.search(rf"Node:\s+{node}/", described)
    assert "Scheduled" in described and f"Successfully assigned {namespace}/{name} to {node}" in described
    assert "default-scheduler" in described
    wide = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout
    assert node in wide


def test_a_pod_that_fits_nowhere_stays_pending_until_a_node_fits(cluster: Cluster, namespace: str) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {"requests": {"cpu": "64"}}}]},
    }
    picky = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "picky"},
        "spec": {"nodeSelector": {"disk": "nvme"}, "containers": [{"name": "app", "image": "nginx:1.27"}]},
    }
    apply(cluster, namespace, big, picky)
    message = (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod."
    )

    def unschedulable(name: str) -> dict[str, Any]:
        pod = cluster.kubectl_json("get", "pod", name, "-n", namespace)
        found: dict[str, Any] = next(
            (c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled"), {}
        )
        return found if found.get("reason") == "Unschedulable" else {}

    condition = eventually(lambda: unschedulable("big"), message="big is Unschedulable")
    assert (condition["status"], condition["message"]) == ("False", message)
    listed = cluster.kubectl("get", "pod", "big", "-n", namespace).stdout
    assert "Pending" in listed
    described = cluster.kubectl("describe", "pod", "big", "-n", namespace).stdout
    assert "FailedScheduling" in described and "default-scheduler" in described
    assert message in " ".join(described.split())
    condition = eventually(lambda: unschedulable("picky"), message="picky is Unschedulable")
    assert condition["message"] == (
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    target = ready_nodes(cluster)[0]
    cluster.kubectl("label", "node", target, "disk=nvme")
    try:
        eventually(
            lambda: cluster.kubectl_json("get", "pod", "picky", "-n", namespace)["spec"].get("nodeName") == target,
            message="picky scheduled once a node has the label",
        )
    finally:
        cluster.kubectl("label", "node", target, "disk-")
    assert not cluster.kubectl_json("get", "pod", "big", "-n", namespace)["spec"].get("nodeName")


def test_a_cordoned_node_gets_no_new_pods(cluster: Cluster, namespace: str) -> None:
    target = ready_nodes(cluster)[0]
    cluster.kubectl("cordon", target)
    try:
        node = eventually(
            lambda: next(
                (n for n in nodes(cluster) if n["metadata"]["name"] == target and n["spec"].get("taints")), None
            ),
            message="the unschedulable taint",
        )
        assert [(t["key"], t["effect"]) for t in node["spec"]["taints"]] == [
            ("node.kubernetes.io/unschedulable", "NoSchedule")
        ]
        assert "SchedulingDisabled" in cluster.kubectl("get", "node", target).stdout
        apply(cluster, namespace, deployment("web", 4))
        rollout(cluster, namespace, "web")
        assert target not in {pod["spec"]["nodeName"] for pod in pods(cluster, namespace, "-l", "app=web")}
    finally:
        cluster.kubectl("uncordon", target)
    eventually(
        lambda: not next(n for n in nodes(cluster) if n["metadata"]["name"] == target)["spec"].get("taints"),
        message="the taint gone after uncordon",
    )


# node failure


def test_a_dead_node_goes_notready_and_its_pods_move(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("web", 3))
    rollout(cluster, namespace, "web")
    victim = pods(cluster, namespace, "-l", "app=web")[0]
    target = victim["spec"]["nodeName"]
    fault(cluster, type="node-down", node=target)
    try:
        eventually(
            lambda: ready(next(n for n in nodes(cluster) if n["metadata"]["name"] == target)) == "Unknown",
            timeout=10,
            message=f"{target} NotReady",
        )
        assert cluster.kubectl("get", "node", target, "--no-headers").stdout.split()[1] == "NotReady"
        node = next(n for n in nodes(cluster) if n["metadata"]["name"] == target)
        ready_condition = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert (ready_condition["status"], ready_condition["reason"], ready_condition["message"]) == (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status.",
        )
        taints = eventually(
            lambda: (
                {
                    (t["key"], t["effect"])
                    for t in next(n for n in nodes(cluster) if n["metadata"]["name"] == target)["spec"].get(
                        "taints", []
                    )
                }
                >= {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
            ),
            message="unreachable taints",
        )
        assert taints
        described = cluster.kubectl("describe", "node", target).stdout
        assert "node.kubernetes.io/unreachable:NoExecute" in described
        assert "NodeNotReady" in described

        def moved() -> bool:
            current = [
                p for p in pods(cluster, namespace, "-l", "app=web") if not p["metadata"].get("deletionTimestamp")
            ]
            running = [p for p in current if p["status"].get("phase") == "Running" and ready(p) == "True"]
            return len(running) == 3 and all(p["spec"]["nodeName"] != target for p in running)

        eventually(moved, timeout=20, message="three ready replicas away from the dead node")
        reasons = {(e["reason"], e["message"]) for e in events(cluster, namespace)}
        name = victim["metadata"]["name"]
        assert ("TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}") in reasons
        rollout(cluster, namespace, "web")
    finally:
        fault(cluster, type="node-up", node=target)
    eventually(lambda: target in ready_nodes(cluster), timeout=15, message=f"{target} Ready again")
    eventually(
        lambda: not next(n for n in nodes(cluster) if n["metadata"]["name"] == target)["spec"].get("taints"),
        timeout=10,
        message="taints lifted",
    )


# drain and disruption budgets


def test_drain_stops_at_the_disruption_budget(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    target = ready_nodes(cluster)[0]
    cluster.kubectl("label", "node", target, f"drain-test={namespace}")
    try:
        budget = {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "guarded"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "guarded"}}},
        }
        apply(cluster, namespace, deployment("guarded", 3, nodeSelector={"drain-test": namespace}), budget)
        rollout(cluster, namespace, "guarded")
        pdb = eventually(
            lambda: (
                (found := cluster.kubectl_json("get", "pdb", "guarded", "-n", namespace))
                .get("status", {})
                .get("currentHealthy")
                == 3
                and found
            ),
            message="the budget counts three healthy pods",
        )
        assert {k: pdb["status"][k] for k in ("desiredHealthy", "disruptionsAllowed", "expectedPods")} == {
            "desiredHealthy": 2,
            "disruptionsAllowed": 1,
            "expectedPods": 3,
        }
        assert pdb["status"]["conditions"][0]["reason"] == "SufficientPods"
        drained = cluster.kubectl(
            "drain",
            target,
            "--pod-selector=app=guarded",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=8s",
            check=False,
            timeout=40,
        )
        output = drained.stdout + drained.stderr
        assert drained.returncode != 0, output
        assert "evicted" in output
        assert "(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget." in output
        left = [
            p
            for p in pods(cluster, namespace, "-l", "app=guarded")
            if p["spec"].get("nodeName") == target and not p["metadata"].get("deletionTimestamp")
        ]
        assert len(left) == 2, "the drain stopped at minAvailable"
        waiting = [p for p in pods(cluster, namespace, "-l", "app=guarded") if not p["spec"].get("nodeName")]
        assert len(waiting) == 1, "the evicted pod's replacement has nowhere to go"
        after = cluster.kubectl_json("get", "pdb", "guarded", "-n", namespace)["status"]
        assert (after["currentHealthy"], after["disruptionsAllowed"]) == (2, 0)
        assert after["conditions"][0]["reason"] == "InsufficientPods"
    finally:
        cluster.kubectl("uncordon", target, check=False)
        cluster.kubectl("label", "node", target, "drain-test-", check=False)


def test_eviction_is_refused_with_the_api_servers_words(cluster: Cluster, namespace: str) -> None:
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "strict"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "strict"}}},
    }
    apply(cluster, namespace, deployment("strict", 2), budget)
    rollout(cluster, namespace, "strict")
    eventually(
        lambda: (
            cluster.kubectl_json("get", "pdb", "strict", "-n", namespace).get("status", {}).get("expectedPods") == 2
        ),
        message="the budget counts the deployment's replicas",
    )
    name = pods(cluster, namespace, "-l", "app=strict")[0]["metadata"]["name"]
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    answer = cluster.kubectl(
        "create",
        "--raw",
        f"/api/v1/namespaces/{namespace}/pods/{name}/eviction",
        "-f",
        "-",
        input=json.dumps(eviction),
        check=False,
    )
    assert answer.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in answer.stderr


# services


def test_a_service_has_endpointslices_of_its_ready_pods(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, deployment("web", 2))
    rollout(cluster, namespace, "web")
    cluster.kubectl("expose", "deployment", "web", "-n", namespace, "--port=80", "--target-port=http")

    def addresses() -> list[str]:
        listed = cluster.kubectl_json("get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")
        return sorted(
            address
            for item in listed["items"]
            for endpoint in item.get("endpoints") or []
            if endpoint["conditions"].get("ready")
            for address in endpoint["addresses"]
        )

    def pod_ips() -> list[str]:
        return sorted(p["status"]["podIP"] for p in pods(cluster, namespace, "-l", "app=web"))

    eventually(lambda: addresses() == pod_ips() and len(addresses()) == 2, message="two ready endpoints")
    [found] = cluster.kubectl_json("get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")[
        "items"
    ]
    assert found["addressType"] == "IPv4"
    assert found["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert found["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert found["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    assert {e["targetRef"]["name"] for e in found["endpoints"]} == {
        p["metadata"]["name"] for p in pods(cluster, namespace, "-l", "app=web")
    }
    assert all(e["nodeName"] for e in found["endpoints"])
    legacy = cluster.kubectl("get", "endpoints", "web", "-n", namespace).stdout
    for ip in pod_ips():
        assert f"{ip}:80" in legacy
    cluster.kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=3")
    eventually(lambda: len(addresses()) == 3 and addresses() == pod_ips(), message="three ready endpoints")
    listed = cluster.kubectl("get", "endpointslices", "-n", namespace).stdout
    assert "IPv4" in listed and "80" in listed
