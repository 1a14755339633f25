"""The kubelet's pure decisions: pod phase from container statuses, QoS class, pod IPs."""

from __future__ import annotations

from typing import Any

import pytest

from upkeep.sandbox.simulation import kubelet


def running(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}, "started": True, **extra}


def waiting(name: str, reason: str = "ContainerCreating", last: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "state": {"waiting": {"reason": reason}}, "lastState": {}}
    if last is not None:
        found["lastState"] = {"terminated": {"exitCode": last}}
    return found


def terminated(name: str, code: int) -> dict[str, Any]:
    return {"name": name, "state": {"terminated": {"exitCode": code}}}


def spec(
    *names: str, policy: str = "Always", init: tuple[str, ...] = (), sidecars: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {
        "restartPolicy": policy,
        "containers": [{"name": name} for name in names],
        "initContainers": [{"name": name} for name in init]
        + [{"name": name, "restartPolicy": "Always"} for name in sidecars],
    }


@pytest.mark.parametrize(
    ("pod", "init", "main", "terminal", "phase"),
    [
        (spec("a"), [], [waiting("a")], False, "Pending"),
        (spec("a"), [], [running("a")], False, "Running"),
        (spec("a", "b"), [], [running("a"), waiting("b", "ImagePullBackOff")], False, "Pending"),
        (spec("a"), [], [waiting("a", "CrashLoopBackOff", last=1)], False, "Running"),
        (spec("a", policy="Never"), [], [terminated("a", 1)], False, "Failed"),
        (spec("a", policy="Never"), [], [terminated("a", 0)], False, "Succeeded"),
        (spec("a", policy="OnFailure"), [], [terminated("a", 0)], False, "Succeeded"),
        (spec("a", policy="OnFailure"), [], [waiting("a", "CrashLoopBackOff", last=1)], False, "Running"),
        (spec("a"), [], [terminated("a", 0)], False, "Running"),
        (spec("a"), [], [terminated("a", 0)], True, "Succeeded"),
        (spec("a"), [], [terminated("a", 137)], True, "Failed"),
        (spec("a", init=("i",)), [running("i")], [waiting("a", "PodInitializing")], False, "Pending"),
        (
            spec("a", init=("i",), policy="Never"),
            [terminated("i", 1)],
            [waiting("a", "PodInitializing")],
            False,
            "Failed",
        ),
        (spec("a", init=("i",)), [terminated("i", 0)], [running("a")], False, "Running"),
        (
            spec("a", sidecars=("s",)),
            [running("s", started=False)],
            [waiting("a", "PodInitializing")],
            False,
            "Pending",
        ),
        (spec("a", sidecars=("s",)), [running("s")], [running("a")], False, "Running"),
        (spec("a", sidecars=("s",), policy="Never"), [terminated("s", 143)], [terminated("a", 0)], False, "Succeeded"),
    ],
)
def test_phase(pod: dict[str, Any], init: list[Any], main: list[Any], terminal: bool, phase: str) -> None:
    assert kubelet._phase(pod, init, main, terminal) == phase


def resources(**values: dict[str, str]) -> dict[str, Any]:
    return {"resources": values}


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([{}], "BestEffort"),
        ([resources(requests={"cpu": "100m"})], "Burstable"),
        ([resources(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
        (
            [resources(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "1000m", "memory": "1024Mi"})],
            "Guaranteed",
        ),
        ([resources(limits={"cpu": "1", "memory": "1Gi"}, requests={"cpu": "500m"})], "Burstable"),
        ([resources(limits={"cpu": "1", "memory": "1Gi"}), {}], "Burstable"),
        ([resources(limits={"memory": "256Mi"})], "Burstable"),
    ],
)
def test_qos_class(containers: list[dict[str, Any]], expected: str) -> None:
    assert kubelet.qos_class({"containers": [{"name": f"c{i}", **c} for i, c in enumerate(containers)]}) == expected


def test_pod_addresses_are_handed_out_and_reused() -> None:
    pool = kubelet._Addresses(2)
    first, second = pool.take(), pool.take()
    assert (first, second) == ("10.244.2.2", "10.244.2.3")
    pool.release(first)
    assert pool.take() == first
    assert pool.take("10.244.2.40") == "10.244.2.40"  # a pod that had it before a restart keeps it
    assert pool.take("10.244.2.40") == "10.244.2.4"  # but not twice: the lowest free one instead
    assert pool.take("10.244.2.6") == "10.244.2.6"  # one of the gaps a kept address left
    assert pool.take() == "10.244.2.5"
    many = {pool.take() for _ in range(5000)}
    assert len(many) == 5000
    assert "10.245.2.2" in many and all(address.split(".")[2] == "2" for address in many)


def test_kept_addresses_come_back_in_any_order() -> None:
    pool = kubelet._Addresses(1)
    wanted = [f"10.244.1.{host}" for host in (200, 7, 3, 254)] + ["10.245.1.9"]
    assert [pool.take(address) for address in wanted] == wanted
    fresh = {pool.take() for _ in range(10)}
    assert not fresh & set(wanted)
    assert kubelet._Addresses(1).take("192.168.0.1") == "10.244.1.2"  # not one of this node's


def test_node_names() -> None:
    assert kubelet.node_names(3) == ["sandbox-node-1", "sandbox-node-2", "sandbox-node-3"]
