"""The node lifecycle controller: heartbeats, Unknown conditions, taints, taint-based eviction, recovery."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import nodelifecycle, runtime
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

SETTINGS = SimulationSettings.fast(node_grace=0.4, eviction_timeout=0.4, heartbeat_interval=0.05)


class Recording(runtime.Context):
    """A Context that keeps the Events it is asked to post."""

    def __init__(self) -> None:
        store = Store()
        super().__init__(apiserver.ApiServer(store), store, SETTINGS)
        self.events: list[tuple[str, str, str, str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str, component: str, *, host: str = "") -> None:
        self.events.append((str(obj["metadata"]["name"]), event_type, reason, message, component))


def micro_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"


def add_node(ctx: runtime.Context, name: str) -> None:
    created = ctx.create("/nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}, "kubelet")
    assert created is not None
    conditions = [
        {"type": kind, "status": status, "reason": reason, "lastHeartbeatTime": runtime.now_text()}
        for kind, status, reason in (
            ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID"),
            ("Ready", "True", "KubeletReady"),
        )
    ]
    ctx.update("/nodes", {**created, "status": {"conditions": conditions}}, "kubelet", subresource="status")
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro_now()},
    }
    ctx.create("coordination.k8s.io/leases", "kube-node-lease", lease, "kubelet")


def renew(ctx: runtime.Context, name: str) -> None:
    lease = ctx.get("coordination.k8s.io/leases", "kube-node-lease", name)
    assert lease is not None
    ctx.update("coordination.k8s.io/leases", {**lease, "spec": {**lease["spec"], "renewTime": micro_now()}}, "kubelet")


def add_pod(ctx: runtime.Context, name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> None:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "app", "image": "nginx:1.27"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    created = ctx.create(
        "/pods", "default", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}, "test"
    )
    assert created is not None
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    ctx.update("/pods", {**created, "status": status}, "kubelet", subresource="status")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    assert obj is not None
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def taints(ctx: runtime.Context, name: str) -> list[tuple[str, str]]:
    node = ctx.get("/nodes", "", name)
    assert node is not None
    return [(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or []]


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


def run(body: Callable[[Recording, set[str]], Awaitable[None]], nodes: tuple[str, ...] = ("node-a", "node-b")) -> None:
    """Run ``body`` with the controller and a heartbeat for every node not in the set it gets (its "down" set)."""

    async def main() -> None:
        ctx = Recording()
        for name in nodes:
            add_node(ctx, name)
        down: set[str] = set()

        async def heartbeats() -> None:
            while True:
                for name in nodes:
                    if name not in down:
                        renew(ctx, name)
                await asyncio.sleep(SETTINGS.heartbeat_interval)

        beating = asyncio.get_running_loop().create_task(heartbeats())
        controller = nodelifecycle.NodeLifecycle(ctx)
        controller.start()
        await asyncio.sleep(0)
        try:
            await body(ctx, down)
        finally:
            beating.cancel()
            await controller.stop()

    asyncio.run(main())


# pure logic


def test_taints_follow_conditions_and_cordon() -> None:
    node: dict[str, Any] = {
        "metadata": {"name": "n"},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "Unknown"}, {"type": "DiskPressure", "status": "True"}]},
    }
    assert nodelifecycle.desired_taints(node) == {
        ("node.kubernetes.io/unreachable", "NoSchedule"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    }
    node["status"]["conditions"][0]["status"] = "False"
    assert ("node.kubernetes.io/not-ready", "NoExecute") in nodelifecycle.desired_taints(node)
    assert ("node.kubernetes.io/not-ready", "NoExecute") not in nodelifecycle.desired_taints(node, evict=False)


def test_merge_keeps_other_taints_and_time_added() -> None:
    existing = [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2020-01-01T00:00:00Z"},
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute", "timeAdded": "2020-01-01T00:00:00Z"},
    ]
    wanted = {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    merged = nodelifecycle.merge_taints(existing, wanted, "2030-01-01T00:00:00Z")
    assert merged == [
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "2020-01-01T00:00:00Z"},
        {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2030-01-01T00:00:00Z"},
    ]
    assert nodelifecycle.merge_taints(merged, wanted, "2031-01-01T00:00:00Z") is None


UNREACHABLE = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([], 7.0),
        (
            [
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 60,
                }
            ],
            3.0,
        ),
        ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}], None),
        ([{"operator": "Exists"}], None),
        ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 0}], 0.0),
        (
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 5,
                }
            ],
            7.0,
        ),
    ],
)
def test_eviction_delay(tolerations: list[dict[str, Any]], expected: float | None) -> None:
    assert nodelifecycle.eviction_delay(UNREACHABLE, tolerations, 7.0, lambda seconds: seconds / 20) == expected


def test_an_untolerated_noexecute_taint_evicts_at_once() -> None:
    taints = [*UNREACHABLE, {"key": "maintenance", "effect": "NoExecute"}]
    assert nodelifecycle.eviction_delay(taints, [], 7.0, lambda seconds: seconds) == 0.0


# the controller


def test_a_silent_node_goes_unknown_is_tainted_and_its_pods_are_evicted() -> None:
    async def body(ctx: Recording, down: set[str]) -> None:
        add_pod(ctx, "web", "node-a")
        add_pod(
            ctx,
            "agent",
            "node-a",
            [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}],
        )
        add_pod(ctx, "other", "node-b")
        down.add("node-a")
        await until(lambda: condition(ctx.get("/nodes", "", "node-a"), "Ready")["status"] == "Unknown")
        ready = condition(ctx.get("/nodes", "", "node-a"), "Ready")
        assert (ready["reason"], ready["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
        assert condition(ctx.get("/nodes", "", "node-a"), "MemoryPressure")["status"] == "Unknown"
        await until(lambda: ("node.kubernetes.io/unreachable", "NoExecute") in taints(ctx, "node-a"))
        assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints(ctx, "node-a")
        node = ctx.get("/nodes", "", "node-a")
        assert node is not None and all(t.get("timeAdded") for t in node["spec"]["taints"])
        assert (
            "node-a",
            "Normal",
            "NodeNotReady",
            "Node node-a status is now: NodeNotReady",
            "node-controller",
        ) in ctx.events
        await until(lambda: condition(ctx.get("/pods", "default", "agent"), "Ready")["status"] == "False")
        assert ("web", "Warning", "NodeNotReady", "Node is not ready", "node-controller") in ctx.events
        await until(lambda: ctx.get("/pods", "default", "web") is None)
        assert (
            "web",
            "Normal",
            "TaintManagerEviction",
            "Marking for deletion Pod default/web",
            "taint-eviction-controller",
        ) in ctx.events
        assert ctx.get("/pods", "default", "agent") is not None, "it tolerates the taint forever"
        other = ctx.get("/pods", "default", "other")
        assert condition(other, "Ready")["status"] == "True"
        assert taints(ctx, "node-b") == []
        down.discard("node-a")
        await until(lambda: taints(ctx, "node-a") == [])
        assert condition(ctx.get("/nodes", "", "node-a"), "Ready")["status"] == "True"
        assert any(e[2] == "NodeReady" and e[4] == "kubelet" for e in ctx.events)

    run(body)


def test_a_toleration_with_seconds_waits_that_long_and_a_comeback_cancels() -> None:
    async def body(ctx: Recording, down: set[str]) -> None:
        waiting = [
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 600,
            }
        ]
        add_pod(ctx, "patient", "node-a", waiting)  # 600 s of spec time is 30 s of fast simulation
        down.add("node-a")
        await until(lambda: ("node.kubernetes.io/unreachable", "NoExecute") in taints(ctx, "node-a"))
        await asyncio.sleep(SETTINGS.eviction_timeout + 0.2)
        assert ctx.get("/pods", "default", "patient") is not None
        down.discard("node-a")
        await until(
            lambda: any(e[0] == "patient" and e[3] == "Cancelling deletion of Pod default/patient" for e in ctx.events)
        )

    run(body)


def test_cordon_taints_the_node() -> None:
    async def body(ctx: Recording, down: set[str]) -> None:
        node = ctx.get("/nodes", "", "node-a")
        assert node is not None
        ctx.update("/nodes", {**node, "spec": {"unschedulable": True}}, "kubectl")
        await until(lambda: taints(ctx, "node-a") == [("node.kubernetes.io/unschedulable", "NoSchedule")])
        node = ctx.get("/nodes", "", "node-a")
        assert node is not None
        ctx.update("/nodes", {**node, "spec": {**node["spec"], "unschedulable": False}}, "kubectl")
        await until(lambda: taints(ctx, "node-a") == [])

    run(body)


def test_when_every_node_is_silent_nothing_is_evicted() -> None:
    async def body(ctx: Recording, down: set[str]) -> None:
        add_pod(ctx, "web", "node-a")
        down.update(("node-a", "node-b"))
        await until(
            lambda: all(
                condition(ctx.get("/nodes", "", n), "Ready")["status"] == "Unknown" for n in ("node-a", "node-b")
            )
        )
        await until(lambda: ("node.kubernetes.io/unreachable", "NoSchedule") in taints(ctx, "node-a"))
        await asyncio.sleep(SETTINGS.eviction_timeout + 0.2)
        assert ("node.kubernetes.io/unreachable", "NoExecute") not in taints(ctx, "node-a")
        assert ctx.get("/pods", "default", "web") is not None

    run(body)
