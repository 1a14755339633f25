"""The simulated kube-scheduler: quantities, requests, taints, affinity, the FitError text, and binding."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from typing import Any

import pytest

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import runtime, scheduler
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store


class Recording(runtime.Context):
    """A Context that keeps the Events it is asked to post (the Event machinery is tested elsewhere)."""

    def __init__(self) -> None:
        store = Store()
        super().__init__(apiserver.ApiServer(store), store, SimulationSettings.fast())
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str, component: str, *, host: str = "") -> None:
        self.events.append((str(obj["metadata"]["name"]), event_type, reason, message))


def add_node(ctx: runtime.Context, name: str, *, cpu: str = "4", memory: str = "16Gi", **spec: Any) -> None:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {}}}
    if "labels" in spec:
        body["metadata"]["labels"] = spec.pop("labels")
    if spec:
        body["spec"] = spec
    created = ctx.create("/nodes", "", body, "kubelet")
    assert created is not None
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    status = {
        "capacity": allocatable,
        "allocatable": allocatable,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
    }
    ctx.update("/nodes", {**created, "status": status}, "kubelet", subresource="status")


def make_pod(name: str, cpu: str | None = "100m", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if cpu is not None:
        container["resources"] = {"requests": {"cpu": cpu}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [container], **spec},
    }


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


def run_with_scheduler(body: Callable[[Recording], Awaitable[None]]) -> None:
    async def main() -> None:
        ctx = Recording()
        controller = scheduler.Scheduler(ctx)
        controller.start()
        await asyncio.sleep(0)
        try:
            await body(ctx)
        finally:
            await controller.stop()

    asyncio.run(main())


def node_of(ctx: runtime.Context, name: str) -> str:
    pod = ctx.get("/pods", "default", name)
    assert pod is not None
    return str(pod["spec"].get("nodeName") or "")


# pure logic


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", Fraction(1, 4)),
        ("1.5", Fraction(3, 2)),
        ("2", Fraction(2)),
        (2, Fraction(2)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("1G", Fraction(10**9)),
        ("1e3", Fraction(1000)),
        ("1E", Fraction(10**18)),
        ("100k", Fraction(100_000)),
    ],
)
def test_quantities(text: object, value: Fraction) -> None:
    assert scheduler.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1x", "Mi", "--1"])
def test_bad_quantities(text: str) -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        scheduler.parse_quantity(text)


def test_requests_default_to_limits_and_init_containers_count_at_their_peak() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "init", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
            "containers": [
                {"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
            ],
        },
    }
    wanted = scheduler.pod_requests(pod)
    assert (wanted.milli_cpu, wanted.memory) == (2000, 2**30)
    no_requests = scheduler.pod_requests({"metadata": {"name": "q"}, "spec": {"containers": [{"name": "a"}]}})
    assert (no_requests.milli_cpu, no_requests.memory) == (0, 0)
    assert (no_requests.nonzero_milli_cpu, no_requests.nonzero_memory) == (100, 200 * 2**20)


def test_sidecars_add_to_the_containers() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [
                {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}}
            ],
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "300m"}}}],
        },
    }
    assert scheduler.pod_requests(pod).milli_cpu == 400


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
        ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
        ({"operator": "Exists"}, {"key": "any", "effect": "NoExecute"}, True),
        ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoSchedule"}, False),
        ({"operator": "Equal", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
    ],
)
def test_tolerations(toleration: dict[str, Any], taint: dict[str, Any], expected: bool) -> None:
    assert scheduler.tolerates(toleration, taint) is expected


def test_only_noschedule_and_noexecute_taints_keep_pods_away() -> None:
    taints = [{"key": "soft", "effect": "PreferNoSchedule"}, {"key": "hard", "effect": "NoSchedule"}]
    assert scheduler.untolerated_taint(taints, [], ("NoSchedule", "NoExecute")) == taints[1]
    assert scheduler.untolerated_taint(taints, [{"key": "hard", "operator": "Exists"}], ("NoSchedule",)) is None


def test_node_affinity_and_selector() -> None:
    node = {"metadata": {"name": "n1", "labels": {"disk": "ssd", "cores": "8"}}}
    assert scheduler.matches_node_affinity({"spec": {"nodeSelector": {"disk": "ssd"}}}, node)
    assert not scheduler.matches_node_affinity({"spec": {"nodeSelector": {"disk": "hdd"}}}, node)

    def required(*terms: dict[str, Any]) -> dict[str, Any]:
        return {
            "spec": {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
                    }
                }
            }
        }

    def expression(key: str, operator: str, *values: str) -> dict[str, Any]:
        return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}

    assert scheduler.matches_node_affinity(required(expression("disk", "In", "ssd", "nvme")), node)
    assert not scheduler.matches_node_affinity(required(expression("disk", "NotIn", "ssd")), node)
    assert scheduler.matches_node_affinity(required(expression("gpu", "DoesNotExist")), node)
    assert scheduler.matches_node_affinity(required(expression("cores", "Gt", "4")), node)
    assert not scheduler.matches_node_affinity(required(expression("cores", "Lt", "4")), node)
    assert scheduler.matches_node_affinity(required(expression("gpu", "Exists"), expression("disk", "Exists")), node)
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert scheduler.matches_node_affinity(required(by_name), node)
    assert not scheduler.matches_node_affinity(required({}), node), "an empty term matches no node"


def test_filter_reasons_in_plugin_order() -> None:
    node: dict[str, Any] = {
        "metadata": {"name": "n"},
        "spec": {"unschedulable": True, "taints": [{"key": "dedicated", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "1"}},
    }
    usage = scheduler.NodeUsage(node)
    pod = make_pod("p", cpu="2")
    wanted = scheduler.pod_requests(pod)
    assert scheduler.filter_node(pod, wanted, usage) == (["node(s) were unschedulable"], False)
    node["spec"].pop("unschedulable")
    assert scheduler.filter_node(pod, wanted, usage) == (["node(s) had untolerated taint(s)"], False)
    node["spec"].pop("taints")
    pod["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert scheduler.filter_node(pod, wanted, usage) == (["node(s) didn't match Pod's node affinity/selector"], False)
    pod["spec"].pop("nodeSelector")
    usage.pods.add(("default", "other"))
    pod["spec"]["containers"][0]["resources"]["requests"]["memory"] = "2Gi"
    wanted = scheduler.pod_requests(pod)
    assert scheduler.filter_node(pod, wanted, usage) == (
        ["Too many pods", "Insufficient cpu", "Insufficient memory"],
        True,
    )


def test_fit_error_message_is_the_schedulers() -> None:
    assert (
        scheduler.fit_error_message(3, {n: (["Insufficient cpu"], True) for n in ("a", "b", "c")})
        == "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod."
    )
    mixed = {
        "a": (["node(s) had untolerated taint(s)"], False),
        "b": (["Insufficient cpu", "Insufficient memory"], True),
        "c": (["Insufficient memory"], True),
    }
    assert (
        scheduler.fit_error_message(3, mixed)
        == "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint(s), 2 Insufficient memory. "
        "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
        "2 No preemption victims found for incoming pod."
    )
    assert scheduler.fit_error_message(0, {}) == "no nodes available to schedule pods"


# the controller against the API semantics


def test_binds_spreads_and_posts_scheduled() -> None:
    async def body(ctx: Recording) -> None:
        for name in ("node-a", "node-b", "node-c"):
            add_node(ctx, name)
        for number in range(6):
            ctx.create("/pods", "default", make_pod(f"web-{number}"), "test")
        await until(lambda: all(node_of(ctx, f"web-{n}") for n in range(6)))
        placed = [node_of(ctx, f"web-{n}") for n in range(6)]
        assert sorted(placed) == ["node-a", "node-a", "node-b", "node-b", "node-c", "node-c"]
        pod = ctx.get("/pods", "default", "web-0")
        assert pod is not None
        scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled[0]["status"] == "True"
        assert ("web-0", "Normal", "Scheduled", f"Successfully assigned default/web-0 to {placed[0]}") in ctx.events

    run_with_scheduler(body)


def test_unschedulable_until_a_node_has_room() -> None:
    async def body(ctx: Recording) -> None:
        for name in ("node-a", "node-b", "node-c"):
            add_node(ctx, name, cpu="1")
        ctx.create("/pods", "default", make_pod("big", cpu="2"), "test")
        message = (
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
            "3 No preemption victims found for incoming pod."
        )
        await until(lambda: ("big", "Warning", "FailedScheduling", message) in ctx.events)
        pod = ctx.get("/pods", "default", "big")
        assert pod is not None
        condition = pod["status"]["conditions"][0]
        assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
            "PodScheduled",
            "False",
            "Unschedulable",
            message,
        )
        await asyncio.sleep(0.05)
        assert len([e for e in ctx.events if e[0] == "big"]) == 1, "its own status write does not retry it"
        add_node(ctx, "node-big", cpu="8")
        await until(lambda: node_of(ctx, "big") == "node-big")

    run_with_scheduler(body)


def test_requests_of_bound_pods_fill_a_node_and_free_it_when_deleted() -> None:
    async def body(ctx: Recording) -> None:
        add_node(ctx, "node-a", cpu="1")
        ctx.create("/pods", "default", make_pod("first", cpu="600m"), "test")
        await until(lambda: node_of(ctx, "first"))
        ctx.create("/pods", "default", make_pod("second", cpu="600m"), "test")
        await until(lambda: any(e[0] == "second" and e[2] == "FailedScheduling" for e in ctx.events))
        ctx.delete("/pods", "default", "first")
        await until(lambda: node_of(ctx, "second") == "node-a")

    run_with_scheduler(body)


def test_taints_selectors_and_cordon() -> None:
    async def body(ctx: Recording) -> None:
        add_node(ctx, "tainted", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
        add_node(ctx, "cordoned", unschedulable=True)
        add_node(ctx, "labelled", labels={"disk": "ssd"})
        ctx.create("/pods", "default", make_pod("picky", nodeSelector={"disk": "hdd"}), "test")
        await until(lambda: any(e[0] == "picky" for e in ctx.events))
        assert ctx.events[-1][3] == (
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) had untolerated taint(s), 1 node(s) were unschedulable. "
            "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        )
        tolerating = make_pod(
            "db", tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
        )
        tolerating["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "tainted"}
        ctx.create("/pods", "default", tolerating, "test")
        await until(lambda: any(e[0] == "db" for e in ctx.events))
        # nodes have no hostname label here: the selector cannot match, whatever the toleration
        assert ctx.events[-1][2] == "FailedScheduling"
        ctx.create(
            "/pods",
            "default",
            make_pod("db2", tolerations=[{"key": "dedicated", "operator": "Exists"}], nodeSelector={}),
            "test",
        )
        await until(lambda: node_of(ctx, "db2") in ("tainted", "labelled"))

    run_with_scheduler(body)


def test_pods_of_other_schedulers_and_bound_pods_are_left_alone() -> None:
    async def body(ctx: Recording) -> None:
        add_node(ctx, "node-a")
        ctx.create("/pods", "default", make_pod("custom", schedulerName="my-scheduler"), "test")
        ctx.create("/pods", "default", make_pod("pinned", nodeName="elsewhere"), "test")
        ctx.create("/pods", "default", make_pod("normal"), "test")
        await until(lambda: node_of(ctx, "normal"))
        assert node_of(ctx, "custom") == ""
        assert node_of(ctx, "pinned") == "elsewhere"
        assert [e[0] for e in ctx.events] == ["normal"]

    run_with_scheduler(body)
