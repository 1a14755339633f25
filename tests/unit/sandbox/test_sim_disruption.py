"""PodDisruptionBudgets: the controller's status and the Eviction subresource's check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from upkeep.sandbox import apiserver, status
from upkeep.sandbox.simulation import disruption, runtime
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

PDBS = "policy/poddisruptionbudgets"


class Recording(runtime.Context):
    def __init__(self) -> None:
        store = Store()
        super().__init__(apiserver.ApiServer(store), store, SimulationSettings.fast())
        self.events: list[tuple[str, str, str]] = []
        self.create("/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "t")

    def event(self, obj: Any, event_type: str, reason: str, message: str, component: str, *, host: str = "") -> None:
        self.events.append((str(obj["metadata"]["name"]), reason, message))


def deployment(ctx: runtime.Context, replicas: int) -> dict[str, Any]:
    """A Deployment with one ReplicaSet (as the deployment controller would have made it)."""
    made = ctx.create(
        "apps/deployments",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "test",
    )
    assert made is not None
    replica_set = ctx.create(
        "apps/replicasets",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "web-abc",
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": "web",
                        "uid": made["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "test",
    )
    assert replica_set is not None
    return replica_set


def add_pod(
    ctx: runtime.Context, name: str, *, ready: bool = True, owner: dict[str, Any] | None = None, phase: str = "Running"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app": "web"}}
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    created = ctx.create(
        "/pods",
        "shop",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {"containers": [{"name": "w", "image": "nginx"}]},
        },
        "test",
    )
    assert created is not None
    pod_status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    written = ctx.update("/pods", {**created, "status": pod_status}, "kubelet", subresource="status")
    assert written is not None
    return written


def add_pdb(ctx: runtime.Context, name: str = "web", **spec: Any) -> None:
    body = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }
    assert ctx.create(PDBS, "shop", body, "test") is not None


def pdb_status(ctx: runtime.Context, name: str = "web") -> dict[str, Any]:
    found = ctx.get(PDBS, "shop", name)
    assert found is not None
    return dict(found.get("status") or {})


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


def run(body: Callable[[Recording], Awaitable[None]]) -> None:
    async def main() -> None:
        ctx = Recording()
        controller = disruption.DisruptionController(ctx)
        controller.start()
        await asyncio.sleep(0)
        try:
            await body(ctx)
        finally:
            await controller.stop()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [(2, 10, True, 2), ("2", 10, True, 2), ("25%", 10, True, 3), ("25%", 10, False, 2), ("100%", 3, True, 3)],
)
def test_int_or_percent(value: object, total: int, up: bool, expected: int) -> None:
    assert disruption.scaled_int_or_percent(value, total, round_up=up) == expected


def test_int_or_percent_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="percentage"):
        disruption.scaled_int_or_percent("many", 3, round_up=True)


def test_status_with_min_available() -> None:
    async def body(ctx: Recording) -> None:
        owner = deployment(ctx, 3)
        for number in range(3):
            add_pod(ctx, f"web-{number}", owner=owner)
        add_pdb(ctx, minAvailable=2)
        await until(lambda: pdb_status(ctx).get("currentHealthy") == 3)
        found = pdb_status(ctx)
        assert {
            k: found[k]
            for k in ("currentHealthy", "desiredHealthy", "disruptionsAllowed", "expectedPods", "observedGeneration")
        } == {
            "currentHealthy": 3,
            "desiredHealthy": 2,
            "disruptionsAllowed": 1,
            "expectedPods": 3,
            "observedGeneration": 1,
        }
        [condition] = found["conditions"]
        assert (condition["type"], condition["status"], condition["reason"], condition["message"]) == (
            "DisruptionAllowed",
            "True",
            "SufficientPods",
            "",
        )
        pod = ctx.get("/pods", "shop", "web-0")
        assert pod is not None
        ctx.update(
            "/pods",
            {**pod, "status": {**pod["status"], "conditions": [{"type": "Ready", "status": "False"}]}},
            "kubelet",
            subresource="status",
        )
        await until(lambda: pdb_status(ctx).get("disruptionsAllowed") == 0)
        assert pdb_status(ctx)["conditions"][0]["reason"] == "InsufficientPods"

    run(body)


def test_max_unavailable_counts_the_deployments_replicas() -> None:
    async def body(ctx: Recording) -> None:
        owner = deployment(ctx, 4)
        for number in range(3):
            add_pod(ctx, f"web-{number}", owner=owner)
        add_pdb(ctx, maxUnavailable="50%")
        await until(lambda: pdb_status(ctx).get("expectedPods") == 4)
        found = pdb_status(ctx)
        assert (found["desiredHealthy"], found["currentHealthy"], found["disruptionsAllowed"]) == (2, 3, 1)

    run(body)


def test_unmanaged_pods_with_a_percentage_are_reported() -> None:
    async def body(ctx: Recording) -> None:
        add_pod(ctx, "loner")
        add_pdb(ctx, minAvailable="50%")
        await until(lambda: any(e[1] == "UnmanagedPods" for e in ctx.events))
        add_pdb(ctx, "empty", selector={"matchLabels": {"app": "nothing"}}, minAvailable=1)
        await until(lambda: ("empty", "NoPods", "No matching pods found") in ctx.events)

    run(body)


def ready_budget(ctx: Recording, allowed: int) -> None:
    """A budget whose status says ``allowed`` disruptions, as the controller would have written it."""
    add_pdb(ctx, minAvailable=2)
    found = ctx.get(PDBS, "shop", "web")
    assert found is not None
    budget = {
        "currentHealthy": 2 + allowed,
        "desiredHealthy": 2,
        "disruptionsAllowed": allowed,
        "expectedPods": 2 + allowed,
        "observedGeneration": 1,
        "conditions": disruption.disruption_allowed_condition([], allowed, 1),
    }
    ctx.update(PDBS, {**found, "status": budget}, "disruption-controller", subresource="status")


def test_eviction_spends_the_budget_then_is_refused_as_the_api_server_refuses() -> None:
    ctx = Recording()
    pods = [add_pod(ctx, f"web-{number}") for number in range(3)]
    ready_budget(ctx, 1)
    disruption.check_eviction(ctx, pods[0])
    after = pdb_status(ctx)
    assert after["disruptionsAllowed"] == 0
    assert set(after["disruptedPods"]) == {"web-0"}
    assert after["conditions"][0]["reason"] == "InsufficientPods"
    with pytest.raises(status.ApiError) as refused:
        disruption.check_eviction(ctx, pods[1])
    assert refused.value.code == 429
    assert refused.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Cannot evict pod as it would violate the pod's disruption budget.",
        "reason": "TooManyRequests",
        "code": 429,
        "details": {
            "causes": [
                {
                    "reason": "DisruptionBudget",
                    "message": "The disruption budget web needs 2 healthy pods and has 3 currently",
                }
            ]
        },
    }


def test_a_dry_run_eviction_is_judged_the_same_and_spends_nothing() -> None:
    ctx = Recording()
    pods = [add_pod(ctx, f"web-{number}") for number in range(3)]
    ready_budget(ctx, 1)
    before = pdb_status(ctx)
    disruption.check_eviction(ctx, pods[0], dry_run=True)
    assert pdb_status(ctx) == before
    disruption.check_eviction(ctx, pods[0])  # spends the one disruption allowed
    with pytest.raises(status.ApiError) as refused:
        disruption.check_eviction(ctx, pods[1], dry_run=True)
    assert refused.value.code == 429


def test_pods_that_cannot_hurt_the_budget_go() -> None:
    ctx = Recording()
    ready_budget(ctx, 0)
    disruption.check_eviction(ctx, add_pod(ctx, "pending", phase="Pending"))
    disruption.check_eviction(ctx, add_pod(ctx, "done", phase="Succeeded"))
    disruption.check_eviction(ctx, add_pod(ctx, "unready", ready=False))  # the budget (3 of 2) holds without it
    with pytest.raises(status.ApiError):
        disruption.check_eviction(ctx, add_pod(ctx, "ready"))
    assert pdb_status(ctx)["disruptionsAllowed"] == 0


def test_a_stale_budget_and_two_budgets() -> None:
    ctx = Recording()
    pod = add_pod(ctx, "web-0")
    add_pdb(ctx, minAvailable=1)
    with pytest.raises(status.ApiError) as stale:
        disruption.check_eviction(ctx, pod)
    assert stale.value.code == 429
    assert stale.value.details == {
        "causes": [
            {
                "reason": "DisruptionBudget",
                "message": "The disruption budget web is still being processed by the server.",
            }
        ],
        "retryAfterSeconds": 10,
    }
    add_pdb(ctx, "second", maxUnavailable=1)
    with pytest.raises(status.ApiError) as two:
        disruption.check_eviction(ctx, pod)
    assert two.value.code == 500
    assert (
        two.value.message
        == "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    )


def test_without_a_budget_anything_goes() -> None:
    ctx = Recording()
    disruption.check_eviction(ctx, add_pod(ctx, "web-0"))
