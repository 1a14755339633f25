"""Simulated nodes and kubelets, seen through the real kubectl: pods run, crash, run out of memory, fail to pull."""

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

NODE = "sandbox-node-1"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    folder: Path = tmp_path_factory.mktemp("sim-kubelet")
    with runner.ThreadedSandbox(
        kubeconfig=folder / "kubeconfig", simulation=SimulationSettings.fast(), admin=True
    ) as sandbox:
        yield Cluster(folder / "kubeconfig", sandbox)


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, image: str, **container: Any) -> str:
    """A bare Pod already bound to a node (no scheduler needed), as JSON for `kubectl apply -f -`."""
    extra = {key: value for key, value in container.items() if key not in ("restartPolicy", "initContainers")}
    spec: dict[str, Any] = {"nodeName": NODE, "containers": [{"name": "app", "image": image, **extra}]}
    if "restartPolicy" in container:
        spec["restartPolicy"] = container["restartPolicy"]
    if "initContainers" in container:
        spec["initContainers"] = container["initContainers"]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})


def has_event(described: str, kind: str, reason: str, message: str) -> bool:
    """Whether `kubectl describe` lists the Event (kubectl 1.37 puts the object's fieldPath before the message)."""
    pattern = rf"{kind}\s+{reason}\s+.*?\s+kubelet\s+(?:spec\.\w+\{{\w+\}}: )?{message}"
    return re.search(pattern, described) is not None


def row(sim: Cluster, ns: str, name: str) -> list[str]:
    """The pod's line of `kubectl get pods`: NAME READY STATUS RESTARTS AGE."""
    out = sim.kubectl("get", "pod", name, "-n", ns, "--no-headers").stdout
    return out.split()


def test_nodes_register_with_leases(sim: Cluster) -> None:
    def ready() -> list[str]:
        out = sim.kubectl("get", "nodes", "--no-headers").stdout
        names = [line.split()[0] for line in out.splitlines() if line.split()[1] == "Ready"]
        return names if len(names) == 3 else []

    assert eventually(ready, timeout=10, message="three Ready nodes") == [
        "sandbox-node-1",
        "sandbox-node-2",
        "sandbox-node-3",
    ]
    node = sim.kubectl_json("get", "node", NODE)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.37.0"
    assert node["status"]["allocatable"]["pods"] == "110"
    assert {"type": "InternalIP", "address": "10.0.0.11"} in node["status"]["addresses"]
    assert [c["type"] for c in node["status"]["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]
    lease = sim.kubectl_json("get", "lease", NODE, "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == NODE
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", lease["spec"]["renewTime"])
    first = lease["spec"]["renewTime"]
    eventually(
        lambda: sim.kubectl_json("get", "lease", NODE, "-n", "kube-node-lease")["spec"]["renewTime"] != first,
        timeout=5,
        message="the lease renewed",
    )
    described = sim.kubectl("describe", "node", NODE).stdout
    assert "KubeletReady" in described and "kubelet is posting ready status" in described


def test_a_bound_pod_runs_with_the_kubelets_events(sim: Cluster, ns: str) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("web", "nginx:1.27", ports=[{"containerPort": 80}]))
    eventually(lambda: row(sim, ns, "web")[1:4] == ["1/1", "Running", "0"], timeout=10, message="web Running 1/1")
    found = sim.kubectl_json("get", "pod", "web", "-n", ns)
    state = found["status"]
    assert state["phase"] == "Running"
    assert state["hostIP"] == "10.0.0.11"
    assert re.fullmatch(r"10\.244\.1\.\d+", state["podIP"])
    assert state["podIPs"] == [{"ip": state["podIP"]}]
    assert state["qosClass"] == "BestEffort"
    assert [c["type"] for c in state["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert all(c["status"] == "True" for c in state["conditions"])
    container = state["containerStatuses"][0]
    assert container["image"] == "docker.io/library/nginx:1.27"
    assert container["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert re.fullmatch(r"containerd://[0-9a-f]{64}", container["containerID"])
    assert container["ready"] is True and container["started"] is True and container["restartCount"] == 0

    described = sim.kubectl("describe", "pod", "web", "-n", ns).stdout
    assert has_event(described, "Normal", "Pulling", r'Pulling image "nginx:1\.27"'), described
    pulled = r'Successfully pulled image "nginx:1\.27" in \S+ \(\S+ including waiting\)\. Image size: 72404013 bytes\.'
    assert has_event(described, "Normal", "Pulled", pulled), described
    assert has_event(described, "Normal", "Created", "Created container: app"), described
    assert has_event(described, "Normal", "Started", "Started container app"), described
    assert re.search(r"State:\s+Running", described)

    logs = sim.kubectl("logs", "web", "-n", ns).stdout
    assert "Configuration complete; ready for start up" in logs
    assert "nginx/1.27" in logs
    previous = sim.kubectl("logs", "web", "-n", ns, "--previous", check=False)
    assert previous.returncode != 0
    assert 'previous terminated container "app" in pod "web" not found' in previous.stderr


def test_a_crashing_container_backs_off(sim: Cluster, ns: str) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("crash", "ghcr.io/upkeep-dev/shop:1.1-crash"))

    def crash_looping() -> bool:
        cells = row(sim, ns, "crash")
        return cells[2] == "CrashLoopBackOff" and int(cells[3]) >= 2

    eventually(crash_looping, timeout=15, message="CrashLoopBackOff with restarts")
    first = int(row(sim, ns, "crash")[3])
    eventually(lambda: int(row(sim, ns, "crash")[3]) > first, timeout=15, message="RESTARTS growing")
    container = sim.kubectl_json("get", "pod", "crash", "-n", ns)["status"]["containerStatuses"][0]
    terminated = container["lastState"]["terminated"]
    assert terminated["reason"] == "Error" and terminated["exitCode"] == 2
    described = sim.kubectl("describe", "pod", "crash", "-n", ns).stdout
    assert has_event(described, "Warning", "BackOff", "Back-off restarting failed container app in pod crash_"), (
        described
    )
    assert re.search(r"Last State:\s+Terminated\s+Reason:\s+Error\s+Exit Code:\s+2", described), described
    logs = sim.kubectl("logs", "crash", "-n", ns, "--previous").stdout
    assert "panic: runtime error: invalid memory address or nil pointer dereference" in logs


def test_a_shell_exit_code_is_the_containers(sim: Cluster, ns: str) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("three", "busybox:1.36", command=["sh", "-c", "exit 3"]))
    eventually(
        lambda: (
            sim.kubectl_json("get", "pod", "three", "-n", ns)["status"]["containerStatuses"][0]["lastState"]
            .get("terminated", {})
            .get("exitCode")
            == 3
        ),
        timeout=10,
        message="last state exit code 3",
    )


def test_memory_above_the_limit_is_oom_killed(sim: Cluster, ns: str) -> None:
    limits = {"limits": {"memory": "256Mi"}}
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("leak", "ghcr.io/upkeep-dev/shop:1.2-oom", resources=limits))

    def oom_killed() -> dict[str, Any]:
        container = sim.kubectl_json("get", "pod", "leak", "-n", ns)["status"]["containerStatuses"][0]
        return dict(container["lastState"].get("terminated") or {})

    terminated = eventually(oom_killed, timeout=15, message="an OOMKilled last state")
    assert terminated["reason"] == "OOMKilled" and terminated["exitCode"] == 137
    described = sim.kubectl("describe", "pod", "leak", "-n", ns).stdout
    assert re.search(r"Last State:\s+Terminated\s+Reason:\s+OOMKilled\s+Exit Code:\s+137", described), described
    assert sim.kubectl_json("get", "pod", "leak", "-n", ns)["status"]["qosClass"] == "Burstable"


def test_an_unknown_tag_cannot_be_pulled(sim: Cluster, ns: str) -> None:
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("missing", "nginx:0.0.0-missing"))
    seen: set[str] = set()

    def both() -> bool:
        seen.add(row(sim, ns, "missing")[2])
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    eventually(both, timeout=15, interval=0.02, message="ErrImagePull then ImagePullBackOff")
    state = sim.kubectl_json("get", "pod", "missing", "-n", ns)["status"]
    assert state["phase"] == "Pending"
    described = sim.kubectl("describe", "pod", "missing", "-n", ns).stdout
    assert 'Failed to pull image "nginx:0.0.0-missing": rpc error: code = NotFound' in described
    assert "Error: ErrImagePull" in described
    assert 'Back-off pulling image "nginx:0.0.0-missing"' in described
    logs = sim.kubectl("logs", "missing", "-n", ns, check=False)
    assert logs.returncode != 0
    assert 'container "app" in pod "missing" is waiting to start' in logs.stderr


def test_restart_policy_never_ends_the_pod(sim: Cluster, ns: str) -> None:
    sim.kubectl(
        "apply",
        "-n",
        ns,
        "-f",
        "-",
        input=pod("fails", "busybox:1.36", command=["sh", "-c", "exit 1"], restartPolicy="Never"),
    )
    sim.kubectl(
        "apply", "-n", ns, "-f", "-", input=pod("hello", "busybox:1.36", command=["echo", "hi"], restartPolicy="Never")
    )
    eventually(lambda: row(sim, ns, "fails")[1:3] == ["0/1", "Error"], timeout=10, message="fails: Error")
    eventually(lambda: row(sim, ns, "hello")[1:3] == ["0/1", "Completed"], timeout=10, message="hello: Completed")
    assert sim.kubectl_json("get", "pod", "fails", "-n", ns)["status"]["phase"] == "Failed"
    done = sim.kubectl_json("get", "pod", "hello", "-n", ns)["status"]
    assert done["phase"] == "Succeeded"
    ready = next(c for c in done["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "PodCompleted"
    assert sim.kubectl("logs", "hello", "-n", ns).stdout == "hi\n"


def test_readiness_waits_for_the_probe_and_can_fail(sim: Cluster, ns: str) -> None:
    probe = {"httpGet": {"path": "/ready", "port": 8080}, "initialDelaySeconds": 20, "periodSeconds": 5}
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("late", "ghcr.io/upkeep-dev/shop:1.0", readinessProbe=probe))
    sim.kubectl(
        "apply", "-n", ns, "-f", "-", input=pod("never", "ghcr.io/upkeep-dev/shop:1.3-unready", readinessProbe=probe)
    )
    eventually(lambda: row(sim, ns, "late")[1:3] == ["0/1", "Running"], timeout=10, message="late: running, not ready")
    eventually(lambda: row(sim, ns, "late")[1] == "1/1", timeout=10, message="late: ready after the initial delay")
    eventually(
        lambda: (
            "Readiness probe failed: HTTP probe failed with statuscode: 503"
            in sim.kubectl("describe", "pod", "never", "-n", ns).stdout
        ),
        timeout=10,
        message="Unhealthy events",
    )
    assert row(sim, ns, "never")[1:3] == ["0/1", "Running"]


def test_init_containers_run_first(sim: Cluster, ns: str) -> None:
    init = [{"name": "setup", "image": "busybox:1.36", "command": ["sh", "-c", "echo preparing; sleep 10"]}]
    sim.kubectl("apply", "-n", ns, "-f", "-", input=pod("staged", "nginx:1.27", initContainers=init))
    eventually(lambda: row(sim, ns, "staged")[2] == "Init:0/1", timeout=10, message="Init:0/1")
    eventually(lambda: row(sim, ns, "staged")[1:3] == ["1/1", "Running"], timeout=10, message="Running after init")
    state = sim.kubectl_json("get", "pod", "staged", "-n", ns)["status"]
    terminated = state["initContainerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "Completed" and terminated["exitCode"] == 0
    assert sim.kubectl("logs", "staged", "-n", ns, "-c", "setup", check=False).returncode in (0, 1)


def test_a_deleted_pod_is_stopped_then_removed(sim: Cluster, ns: str) -> None:
    body = json.loads(pod("held", "nginx:1.27"))
    body["metadata"]["finalizers"] = ["example.com/hold"]
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
    eventually(lambda: row(sim, ns, "held")[1:3] == ["1/1", "Running"], timeout=10, message="held Running")
    sim.kubectl("delete", "pod", "held", "-n", ns, "--wait=false")

    def stopped() -> bool:
        state = sim.kubectl_json("get", "pod", "held", "-n", ns)["status"]
        return state["phase"] in ("Succeeded", "Failed") and "terminated" in state["containerStatuses"][0]["state"]

    eventually(stopped, timeout=10, message="containers stopped, phase terminal")
    described = sim.kubectl("describe", "pod", "held", "-n", ns).stdout
    assert has_event(described, "Normal", "Killing", "Stopping container app"), described
    sim.kubectl("patch", "pod", "held", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    eventually(
        lambda: sim.kubectl("get", "pod", "held", "-n", ns, check=False).returncode != 0,
        timeout=10,
        message="the pod gone",
    )


def test_a_node_down_stops_its_heartbeat_and_comes_back(sim: Cluster, ns: str) -> None:
    from upkeep.sandbox import runner

    node = "sandbox-node-3"
    body = json.loads(pod("there", "nginx:1.27"))
    body["spec"]["nodeName"] = node
    body["metadata"]["finalizers"] = ["example.com/hold"]
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
    eventually(lambda: row(sim, ns, "there")[1:3] == ["1/1", "Running"], timeout=10, message="running on node 3")

    def renewed() -> str:
        return str(sim.kubectl_json("get", "lease", node, "-n", "kube-node-lease")["spec"]["renewTime"])

    runner.post_fault(sim.sandbox.url, sim.sandbox.token, {"type": "node-down", "node": node})
    try:
        frozen = renewed()
        eventually(lambda: "NotReady" in sim.kubectl("get", "node", node).stdout, timeout=10, message="NotReady")
        assert renewed() == frozen  # no heartbeat while down
        sim.kubectl("delete", "pod", "there", "-n", ns, "--wait=false")
        assert sim.kubectl_json("get", "pod", "there", "-n", ns)["status"]["phase"] == "Running"  # nobody stops it
    finally:
        runner.post_fault(sim.sandbox.url, sim.sandbox.token, {"type": "node-up", "node": node})
    eventually(lambda: renewed() != frozen, timeout=10, message="the lease renewed again")
    eventually(lambda: " Ready " in sim.kubectl("get", "node", node).stdout, timeout=10, message="Ready again")
    eventually(
        lambda: sim.kubectl_json("get", "pod", "there", "-n", ns)["status"]["phase"] == "Succeeded",
        timeout=10,
        message="the pod deleted meanwhile stopped once the node is back",
    )
    sim.kubectl("patch", "pod", "there", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')


def test_a_restarted_sandbox_keeps_its_pods_running(tmp_path: Path) -> None:
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    state, config = tmp_path / "state", tmp_path / "kubeconfig"
    with runner.ThreadedSandbox(state, kubeconfig=config, simulation=SimulationSettings.fast()) as sandbox:
        first = Cluster(config, sandbox)
        first.kubectl("apply", "-f", "-", input=pod("kept", "nginx:1.27"))
        eventually(lambda: row(first, "default", "kept")[1:3] == ["1/1", "Running"], timeout=10, message="running")
        before = first.kubectl_json("get", "pod", "kept")["status"]
    with runner.ThreadedSandbox(state, kubeconfig=config, simulation=SimulationSettings.fast()) as sandbox:
        again = Cluster(config, sandbox)
        after = again.kubectl_json("get", "pod", "kept")["status"]
        assert after["podIP"] == before["podIP"]
        assert after["containerStatuses"][0]["containerID"] == before["containerStatuses"][0]["containerID"]
        assert row(again, "default", "kept")[1:4] == ["1/1", "Running", "0"]
        assert "Configuration complete" in again.kubectl("logs", "kept").stdout
        again.kubectl("delete", "pod", "kept")


def test_a_deleted_pod_is_marked_terminating_before_its_kubelet_removes_it(sim: Cluster, ns: str) -> None:
    from kubernetes import client, config, watch

    body = json.loads(pod("graceful", "nginx:1.27"))
    body["spec"]["terminationGracePeriodSeconds"] = 30
    sim.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(body))
    eventually(lambda: row(sim, ns, "graceful")[1:3] == ["1/1", "Running"], timeout=10, message="Running")
    api = config.new_client_from_config(config_file=str(sim.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        since = core.read_namespaced_pod("graceful", ns).metadata.resource_version
        sim.kubectl("delete", "pod", "graceful", "-n", ns, "--wait=false")
        seen: list[tuple[str, int | None]] = []
        for event in watch.Watch().stream(
            core.list_namespaced_pod,
            ns,
            field_selector="metadata.name=graceful",
            resource_version=since,
            timeout_seconds=15,
        ):
            seen.append((event["type"], event["object"].metadata.deletion_grace_period_seconds))
            if event["type"] == "DELETED":
                break
    finally:
        api.close()
    assert ("MODIFIED", 30) in seen  # marked: deletionTimestamp and the grace period, as a real API server does
    assert seen[-1][0] == "DELETED"
