"""The workload controllers seen through the real kubectl: rollouts, undo, scaling, Jobs, StatefulSets and
DaemonSets on a sandbox running the simulation with the fast settings.

When the simulated scheduler and kubelet are importable they run the pods; otherwise a stand-in defined
here binds each pod to a node and reports it Running and Ready (or Failed, for a container whose command
exits non-zero, or stuck pulling for a tag named "missing"), through the same API.
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

ROLLOUT_TIMEOUT = "30s"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A sandbox of its own, running the simulation with the fast settings."""
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    folder = tmp_path_factory.mktemp("sim-workloads")
    with runner.ThreadedSandbox(
        kubeconfig=folder / "kubeconfig", simulation=SimulationSettings.fast(), admin=True
    ) as sandbox:
        yield Cluster(folder / "kubeconfig", sandbox)


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    name = f"w-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


def apply(sim: Cluster, ns: str, body: dict[str, Any]) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))


def rollout_status(sim: Cluster, ns: str, what: str) -> str:
    done = sim.kubectl("rollout", "status", "-n", ns, what, f"--timeout={ROLLOUT_TIMEOUT}", timeout=60)
    return done.stdout


def replica_sets(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "replicasets", "-n", ns)["items"]
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]))


def events(sim: Cluster, ns: str, name: str) -> list[tuple[str, str, str]]:
    """(type, reason, message) of the Events about ``name``, oldest first."""
    items = sim.kubectl_json("get", "events", "-n", ns)["items"]
    items = [item for item in items if item["involvedObject"]["name"] == name]
    items.sort(key=lambda item: int(item["metadata"]["resourceVersion"]))
    return [(item["type"], item["reason"], item["message"]) for item in items]


def conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in obj.get("status", {}).get("conditions") or []}


def test_create_deployment_then_rollout_status_completes(sim: Cluster, ns: str) -> None:
    sim.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=3")
    assert rollout_status(sim, ns, "deployment/web").strip().endswith('deployment "web" successfully rolled out')
    deployment = sim.kubectl_json("get", "deployment", "web", "-n", ns)
    status = deployment["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"], status["availableReplicas"]) == (
        3,
        3,
        3,
        3,
    )
    assert status["observedGeneration"] == deployment["metadata"]["generation"]
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (rs,) = replica_sets(sim, ns)
    name = rs["metadata"]["name"]
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{1,10}", name)
    found = conditions(deployment)
    assert (found["Available"]["status"], found["Available"]["reason"]) == ("True", "MinimumReplicasAvailable")
    assert found["Progressing"]["message"] == f'ReplicaSet "{name}" has successfully progressed.'
    pods = sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=web")["items"]
    assert len(pods) == 3
    for pod in pods:
        assert re.fullmatch(rf"{name}-[bcdfghjklmnpqrstvwxz2456789]{{5}}", pod["metadata"]["name"])
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to 3") in events(sim, ns, "web")
    created = [message for _, reason, message in events(sim, ns, name) if reason == "SuccessfulCreate"]
    assert sorted(created) == sorted(f"Created pod: {pod['metadata']['name']}" for pod in pods)
    described = sim.kubectl("describe", "deployment", "web", "-n", ns).stdout
    assert re.search(rf"NewReplicaSet:\s+{name} \(3/3 replicas created\)", described)


def test_set_image_rolls_out_a_second_replica_set_and_undo_returns_to_the_first(sim: Cluster, ns: str) -> None:
    sim.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=3")
    rollout_status(sim, ns, "deployment/web")
    (first,) = replica_sets(sim, ns)
    sim.kubectl("set", "image", "-n", ns, "deployment/web", "nginx=nginx:1.26")
    assert 'deployment "web" successfully rolled out' in rollout_status(sim, ns, "deployment/web")
    old, new = replica_sets(sim, ns)
    assert old["metadata"]["name"] == first["metadata"]["name"]
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 3)
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    table = sim.kubectl("get", "rs", "-n", ns).stdout
    assert new["metadata"]["name"] in table and old["metadata"]["name"] in table

    assert "rolled back" in sim.kubectl("rollout", "undo", "-n", ns, "deployment/web").stdout
    assert 'deployment "web" successfully rolled out' in rollout_status(sim, ns, "deployment/web")
    again = replica_sets(sim, ns)
    assert len(again) == 2
    newest = again[-1]
    assert newest["metadata"]["uid"] == first["metadata"]["uid"]
    assert newest["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert newest["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert newest["spec"]["replicas"] == 3
    images = {
        pod["spec"]["containers"][0]["image"]
        for pod in sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=web")["items"]
        if not pod["metadata"].get("deletionTimestamp")
    }
    assert images == {"nginx:1.25"}
    history = sim.kubectl("rollout", "history", "-n", ns, "deployment/web").stdout
    assert re.search(r"^2\s", history, re.MULTILINE) and re.search(r"^3\s", history, re.MULTILINE)


def test_scale_restart_pause_and_resume(sim: Cluster, ns: str) -> None:
    sim.kubectl("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2")
    rollout_status(sim, ns, "deployment/web")
    (rs,) = replica_sets(sim, ns)
    sim.kubectl("scale", "-n", ns, "deployment/web", "--replicas=4")
    rollout_status(sim, ns, "deployment/web")
    assert sim.kubectl_json("get", "rs", rs["metadata"]["name"], "-n", ns)["status"]["readyReplicas"] == 4
    assert ("Normal", "ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 2 to 4") in events(
        sim, ns, "web"
    )

    sim.kubectl("rollout", "pause", "-n", ns, "deployment/web")
    sim.kubectl("set", "image", "-n", ns, "deployment/web", "nginx=nginx:1.26")

    def paused() -> bool:
        deployment = sim.kubectl_json("get", "deployment", "web", "-n", ns)
        return bool(
            deployment["status"].get("observedGeneration") == deployment["metadata"]["generation"]
            and conditions(deployment)["Progressing"]["reason"] == "DeploymentPaused"
        )

    eventually(paused, timeout=15, message="the paused condition")
    assert len(replica_sets(sim, ns)) == 1
    sim.kubectl("rollout", "resume", "-n", ns, "deployment/web")
    rollout_status(sim, ns, "deployment/web")
    assert len(replica_sets(sim, ns)) == 2

    sim.kubectl("rollout", "restart", "-n", ns, "deployment/web")
    rollout_status(sim, ns, "deployment/web")
    newest = replica_sets(sim, ns)[-1]
    assert len(replica_sets(sim, ns)) == 3
    assert "kubectl.kubernetes.io/restartedAt" in newest["spec"]["template"]["metadata"]["annotations"]
    assert newest["status"]["availableReplicas"] == 4


def test_a_missing_image_exceeds_the_progress_deadline_and_undo_recovers(sim: Cluster, ns: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 30,
            "revisionHistoryLimit": 1,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {"containers": [{"name": "api", "image": "nginx:1.25"}]},
            },
        },
    }
    apply(sim, ns, deployment)
    rollout_status(sim, ns, "deployment/api")
    sim.kubectl("set", "image", "-n", ns, "deployment/api", "api=nginx:missing")
    stuck = sim.kubectl("rollout", "status", "-n", ns, "deployment/api", "--timeout=30s", check=False, timeout=60)
    assert stuck.returncode != 0
    assert 'deployment "api" exceeded its progress deadline' in stuck.stderr
    found = conditions(sim.kubectl_json("get", "deployment", "api", "-n", ns))
    assert (found["Progressing"]["status"], found["Progressing"]["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert found["Available"]["status"] == "True"
    sim.kubectl("rollout", "undo", "-n", ns, "deployment/api")
    assert 'deployment "api" successfully rolled out' in rollout_status(sim, ns, "deployment/api")
    assert conditions(sim.kubectl_json("get", "deployment", "api", "-n", ns))["Progressing"]["reason"] == (
        "NewReplicaSetAvailable"
    )


def test_a_job_whose_pods_fail_ends_failed_after_its_backoff_limit(sim: Cluster, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "backoffLimit": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "migrate", "image": "busybox:1.36", "command": ["sh", "-c", "exit 1"]}],
                }
            },
        },
    }
    apply(sim, ns, job)
    sim.kubectl("wait", "-n", ns, "--for=condition=Failed", "job/migrate", "--timeout=40s", timeout=60)
    found = sim.kubectl_json("get", "job", "migrate", "-n", ns)
    status = found["status"]
    assert status["failed"] == 3
    assert "active" not in status
    by_type = conditions(found)
    assert by_type["Failed"]["reason"] == by_type["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert by_type["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert ("Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit") in events(
        sim, ns, "migrate"
    )
    pods = sim.kubectl_json("get", "pods", "-n", ns, "-l", "batch.kubernetes.io/job-name=migrate")["items"]
    assert len(pods) == 3
    assert all(not pod["metadata"].get("finalizers") for pod in pods)
    assert all(pod["metadata"]["labels"]["controller-uid"] == found["metadata"]["uid"] for pod in pods)


def test_a_job_completes(sim: Cluster, ns: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "batch"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "work", "image": "busybox:1.36", "command": ["sh", "-c", "echo done"]}],
                }
            },
        },
    }
    apply(sim, ns, job)
    sim.kubectl("wait", "-n", ns, "--for=condition=Complete", "job/batch", "--timeout=30s", timeout=60)
    found = sim.kubectl_json("get", "job", "batch", "-n", ns)
    assert found["status"]["succeeded"] == 3
    assert found["status"]["completionTime"]
    assert conditions(found)["Complete"]["reason"] == "CompletionsReached"
    assert ("Normal", "Completed", "Job completed") in events(sim, ns, "batch")


def test_a_statefulset_starts_in_order_and_scales_down_in_reverse(sim: Cluster, ns: str) -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "redis:7"}]},
            },
        },
    }
    apply(sim, ns, sts)
    said = rollout_status(sim, ns, "statefulset/db")
    found = sim.kubectl_json("get", "statefulset", "db", "-n", ns)
    status = found["status"]
    # The API defaults updateStrategy.rollingUpdate.partition to 0, and kubectl then reports a partitioned
    # roll-out, as it does on a real cluster.
    assert "partitioned roll out complete: 3 new pods have been updated..." in said
    assert status["updateRevision"] == status["currentRevision"]
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)
    assert status["currentRevision"] == status["updateRevision"]
    created = [message for _, reason, message in events(sim, ns, "db") if reason == "SuccessfulCreate"]
    assert created == [f"create Pod db-{n} in StatefulSet db successful" for n in range(3)]
    pod = sim.kubectl_json("get", "pod", "db-1", "-n", ns)
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db"
    assert pod["metadata"]["labels"]["controller-revision-hash"] == status["updateRevision"]
    assert pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"

    sim.kubectl("scale", "-n", ns, "statefulset/db", "--replicas=1")
    eventually(
        lambda: (
            [item["metadata"]["name"] for item in sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=db")["items"]]
            == ["db-0"]
        ),
        timeout=20,
        message="the scale-down",
    )
    deleted = [message for _, reason, message in events(sim, ns, "db") if reason == "SuccessfulDelete"]
    assert deleted == ["delete Pod db-2 in StatefulSet db successful", "delete Pod db-1 in StatefulSet db successful"]


def test_a_daemonset_runs_a_pod_per_node(sim: Cluster, ns: str) -> None:
    nodes = [item["metadata"]["name"] for item in sim.kubectl_json("get", "nodes")["items"]]
    assert nodes
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "nginx:1.25"}]},
            },
        },
    }
    apply(sim, ns, ds)
    assert "successfully rolled out" in rollout_status(sim, ns, "daemonset/agent")
    status = sim.kubectl_json("get", "daemonset", "agent", "-n", ns)["status"]
    assert status["desiredNumberScheduled"] == status["numberReady"] == status["currentNumberScheduled"] == len(nodes)
    assert status["numberMisscheduled"] == 0
    pods = sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=agent")["items"]
    assert sorted(pod["spec"]["nodeName"] for pod in pods) == sorted(nodes)
    for pod in pods:
        tolerated = {item["key"] for item in pod["spec"]["tolerations"]}
        assert "node.kubernetes.io/not-ready" in tolerated and "node.kubernetes.io/unreachable" in tolerated
    sim.kubectl("set", "image", "-n", ns, "daemonset/agent", "agent=nginx:1.26")
    assert "successfully rolled out" in rollout_status(sim, ns, "daemonset/agent")
    images = {
        pod["spec"]["containers"][0]["image"]
        for pod in sim.kubectl_json("get", "pods", "-n", ns, "-l", "app=agent")["items"]
    }
    assert images == {"nginx:1.26"}


def test_a_restarted_sandbox_keeps_its_workloads_as_they_were(tmp_path: Path) -> None:
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    state, config = tmp_path / "state", tmp_path / "kubeconfig"
    with runner.ThreadedSandbox(state, kubeconfig=config, simulation=SimulationSettings.fast()) as sandbox:
        first = Cluster(config, sandbox)
        first.kubectl("create", "deployment", "kept", "--image=nginx:1.27", "--replicas=3")
        first.kubectl("rollout", "status", "deployment/kept", "--timeout=30s")
        pods_before = sorted(first.kubectl("get", "pods", "-l", "app=kept", "-o", "name").stdout.split())
        sets_before = first.kubectl("get", "replicasets", "-l", "app=kept", "-o", "name").stdout.split()
    with runner.ThreadedSandbox(state, kubeconfig=config, simulation=SimulationSettings.fast()) as sandbox:
        again = Cluster(config, sandbox)
        assert (
            "successfully rolled out" in again.kubectl("rollout", "status", "deployment/kept", "--timeout=30s").stdout
        )
        assert sorted(again.kubectl("get", "pods", "-l", "app=kept", "-o", "name").stdout.split()) == pods_before
        assert again.kubectl("get", "replicasets", "-l", "app=kept", "-o", "name").stdout.split() == sets_before
        ready = again.kubectl_json("get", "deployment", "kept")["status"]
        assert (ready["replicas"], ready["readyReplicas"], ready["availableReplicas"]) == (3, 3, 3)
