"""EndpointSlices and Endpoints of Services, from the pods they select."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import endpoints, runtime
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

SLICES = "discovery.k8s.io/endpointslices"


def make_pod(name: str, ip: str = "", ready: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": "web"}, "uid": f"uid-{name}"},
        "spec": {
            "nodeName": "node-a",
            "containers": [{"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
        **extra,
    }


SERVICE: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "web", "namespace": "shop", "uid": "svc-uid", "labels": {"team": "shop"}},
    "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http", "protocol": "TCP"}]},
}


def test_endpoint_conditions() -> None:
    ready = endpoints.endpoint_for(make_pod("a", "10.0.0.1"), SERVICE, "zone-1")
    assert ready == {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "node-a",
        "targetRef": {"kind": "Pod", "namespace": "shop", "name": "a", "uid": "uid-a"},
        "zone": "zone-1",
    }
    terminating = make_pod("b", "10.0.0.2")
    terminating["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    assert endpoints.endpoint_for(terminating, SERVICE)["conditions"] == {
        "ready": False,
        "serving": True,
        "terminating": True,
    }
    unready = endpoints.endpoint_for(make_pod("c", "10.0.0.3", ready=False), SERVICE)
    assert unready["conditions"] == {"ready": False, "serving": False, "terminating": False}


def test_which_pods_count_and_named_ports() -> None:
    assert not endpoints.should_be_in_endpoints(make_pod("a"), True), "no IP yet"
    finished = make_pod("b", "10.0.0.2")
    finished["status"]["phase"] = "Succeeded"
    assert not endpoints.should_be_in_endpoints(finished, True)
    deleting = make_pod("c", "10.0.0.3")
    deleting["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    assert endpoints.should_be_in_endpoints(deleting, True)
    assert not endpoints.should_be_in_endpoints(deleting, False)
    pod = make_pod("d", "10.0.0.4")
    assert endpoints.find_port(pod, {"port": 80, "targetPort": "http"}) == 8080
    assert endpoints.find_port(pod, {"port": 80, "targetPort": 9090}) == 9090
    assert endpoints.find_port(pod, {"port": 80}) == 80
    assert endpoints.find_port(pod, {"port": 80, "targetPort": "metrics"}) is None
    assert endpoints.find_port(pod, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition did not hold in time"
        await asyncio.sleep(0.01)


def run(body: Callable[[runtime.Context], Awaitable[None]]) -> None:
    async def main() -> None:
        store = Store()
        ctx = runtime.Context(apiserver.ApiServer(store), store, SimulationSettings.fast())
        ctx.create("/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "test")
        controllers = [endpoints.EndpointSliceController(ctx), endpoints.EndpointsController(ctx)]
        for controller in controllers:
            controller.start()
        await asyncio.sleep(0)
        try:
            await body(ctx)
        finally:
            for controller in controllers:
                await controller.stop()

    asyncio.run(main())


def add_pod(ctx: runtime.Context, name: str, ip: str, ready: bool = True) -> None:
    pod = make_pod(name, ip, ready)
    pod["metadata"].pop("uid")
    status = pod.pop("status")
    created = ctx.create("/pods", "shop", pod, "test")
    assert created is not None
    ctx.update("/pods", {**created, "status": status}, "kubelet", subresource="status")


def set_ready(ctx: runtime.Context, name: str, ready: bool) -> None:
    pod = ctx.get("/pods", "shop", name)
    assert pod is not None
    status = {**pod["status"], "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    ctx.update("/pods", {**pod, "status": status}, "kubelet", subresource="status")


def slices(ctx: runtime.Context) -> list[dict[str, Any]]:
    return ctx.list(SLICES, "shop")


def ready_addresses(ctx: runtime.Context) -> list[str]:
    found = [
        endpoint["addresses"][0]
        for item in slices(ctx)
        for endpoint in item.get("endpoints") or []
        if endpoint["conditions"]["ready"]
    ]
    return sorted(found)


def test_slices_and_endpoints_follow_pods() -> None:
    async def body(ctx: runtime.Context) -> None:
        service = {k: v for k, v in SERVICE.items() if k != "metadata"}
        service["metadata"] = {"name": "web", "labels": {"team": "shop"}}
        created = ctx.create("/services", "shop", service, "test")
        assert created is not None
        placeholder = await until(lambda: slices(ctx))
        assert placeholder[0]["endpoints"] is None and placeholder[0]["ports"] is None
        add_pod(ctx, "web-1", "10.244.0.5")
        add_pod(ctx, "web-2", "10.244.1.7", ready=False)
        await until(lambda: ready_addresses(ctx) == ["10.244.0.5"])
        [found] = slices(ctx)
        assert found["metadata"]["name"].startswith("web-")
        assert found["metadata"]["labels"] == {
            "team": "shop",
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        assert found["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "name": "web",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert found["addressType"] == "IPv4"
        assert found["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
        assert [e["targetRef"]["name"] for e in found["endpoints"]] == ["web-1", "web-2"]
        legacy = ctx.get("/endpoints", "shop", "web")
        assert legacy is not None
        assert legacy["metadata"]["labels"] == {"team": "shop"}
        assert "ownerReferences" not in legacy["metadata"]
        [subset] = legacy["subsets"]
        assert [a["ip"] for a in subset["addresses"]] == ["10.244.0.5"]
        assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.1.7"]
        assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]
        assert subset["addresses"][0]["targetRef"] == {
            "kind": "Pod",
            "namespace": "shop",
            "name": "web-1",
            "uid": ctx.get("/pods", "shop", "web-1")["metadata"]["uid"],  # type: ignore[index]
        }
        set_ready(ctx, "web-2", True)
        await until(lambda: ready_addresses(ctx) == ["10.244.0.5", "10.244.1.7"])
        ctx.delete("/pods", "shop", "web-1")
        await until(lambda: ready_addresses(ctx) == ["10.244.1.7"])
        await until(
            lambda: len((ctx.get("/endpoints", "shop", "web") or {}).get("subsets", [{}])[0].get("addresses", [])) == 1
        )
        ctx.delete("/services", "shop", "web")
        await until(lambda: ctx.get("/endpoints", "shop", "web") is None and not slices(ctx))

    run(body)


def test_a_deleted_slice_comes_back_and_other_services_are_left_alone() -> None:
    async def body(ctx: runtime.Context) -> None:
        ctx.create(
            "/services",
            "shop",
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": SERVICE["spec"]},
            "test",
        )
        ctx.create(
            "/services",
            "shop",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "external"},
                "spec": {"ports": [{"port": 80}]},
            },
            "test",
        )
        add_pod(ctx, "web-1", "10.244.0.5")
        await until(lambda: ready_addresses(ctx) == ["10.244.0.5"])
        [found] = slices(ctx)
        ctx.delete(SLICES, "shop", found["metadata"]["name"])
        await until(lambda: ready_addresses(ctx) == ["10.244.0.5"])
        assert ctx.get("/endpoints", "shop", "external") is None
        assert {s["metadata"]["labels"]["kubernetes.io/service-name"] for s in slices(ctx)} == {"web"}

    run(body)


def test_many_pods_are_split_into_slices_of_a_hundred() -> None:
    async def body(ctx: runtime.Context) -> None:
        ctx.create(
            "/services",
            "shop",
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": SERVICE["spec"]},
            "test",
        )
        for number in range(150):
            add_pod(ctx, f"web-{number:03d}", f"10.244.{number // 200}.{number % 200 + 1}")
        await until(lambda: len(ready_addresses(ctx)) == 150)
        assert sorted(len(s["endpoints"]) for s in slices(ctx)) == [50, 100]

    run(body)
