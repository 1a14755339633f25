"""`upkeep sandbox fault` against a running sandbox: workload, pod and node faults seen in kubectl."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration
UPKEEP = [sys.executable, "-m", "upkeep.cli", "sandbox"]


@pytest.fixture(scope="module")
def detached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Cluster]]:
    home = tmp_path_factory.mktemp("fault-cli")
    subprocess.run(
        [*UPKEEP, "up", "--detach", "--fast", "--admin", "--home", str(home)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield home, Cluster(home / "kubeconfig")
    finally:
        subprocess.run([*UPKEEP, "down", "--home", str(home)], capture_output=True, timeout=60, check=False)


def fault(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UPKEEP, "fault", *args, "--home", str(home)], capture_output=True, text=True, timeout=60, check=False
    )


def statuses(cluster: Cluster, selector: str) -> list[str]:
    rows = cluster.kubectl("get", "pods", "-l", selector, "--no-headers").stdout.splitlines()
    return [row.split()[2] for row in rows]


def test_a_workload_crash_loops_then_recovers(detached: tuple[Path, Cluster]) -> None:
    home, cluster = detached
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    done = fault(home, "workload", "crashloop", "deployment/web", "-n", "default")
    assert done.returncode == 0, done.stderr
    eventually(
        lambda: statuses(cluster, "app=web") == ["CrashLoopBackOff"] * 2,
        timeout=20,
        message="both pods in CrashLoopBackOff",
    )
    assert fault(home, "workload", "clear", "deployment/web").returncode == 0
    cluster.kubectl("rollout", "restart", "deployment/web")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    eventually(lambda: statuses(cluster, "app=web") == ["Running"] * 2, timeout=20, message="Running again")


def test_a_pod_kill_restarts_its_container(detached: tuple[Path, Cluster]) -> None:
    home, cluster = detached
    cluster.kubectl("create", "deployment", "kill", "--image=nginx:1.27")
    cluster.kubectl("rollout", "status", "deployment/kill", "--timeout=60s")
    name = cluster.kubectl("get", "pods", "-l", "app=kill", "-o", "name").stdout.strip().split("/")[1]
    assert fault(home, "pod", "kill", name).returncode == 0
    restarts = eventually(
        lambda: cluster.kubectl_json("get", "pod", name)["status"]["containerStatuses"][0].get("restartCount"),
        timeout=20,
        message="a restart",
    )
    assert restarts >= 1
    last = cluster.kubectl_json("get", "pod", name)["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137


def test_a_node_goes_down_and_comes_back(detached: tuple[Path, Cluster]) -> None:
    home, cluster = detached
    assert fault(home, "node", "down", "sandbox-node-3").returncode == 0

    def ready() -> str:
        found = cluster.kubectl_json("get", "node", "sandbox-node-3")["status"]["conditions"]
        return next(c["status"] for c in found if c["type"] == "Ready")

    eventually(lambda: ready() == "Unknown", timeout=20, message="NotReady (Unknown)")
    assert "NotReady" in cluster.kubectl("get", "node", "sandbox-node-3").stdout
    assert fault(home, "node", "up", "sandbox-node-3").returncode == 0
    eventually(lambda: ready() == "True", timeout=20, message="Ready again")


def test_bad_fault_commands_say_what_is_wrong(detached: tuple[Path, Cluster]) -> None:
    home, _ = detached
    missing = fault(home, "workload", "crashloop")
    assert missing.returncode == 2
    assert "KIND/NAME" in missing.stderr
    unknown = fault(home, "node", "sideways", "sandbox-node-1")
    assert unknown.returncode == 2
    assert "down and up" in unknown.stderr
    gone = fault(home, "workload", "oom", "deployment/nothing")
    assert gone.returncode == 1
    assert "not found" in gone.stderr
