"""Workload faults: what each does to the fault table and the pods, and how bad input is refused."""

from __future__ import annotations

from typing import Any

import pytest

from upkeep.sandbox import apiserver, status
from upkeep.sandbox.simulation import faultapi, faults, kubelet, runtime
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store


@pytest.fixture
def ctx() -> runtime.Context:
    store = Store()
    made = runtime.Context(apiserver.ApiServer(store), store, SimulationSettings.fast())
    made.create("/namespaces", "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}, "t")
    made.create("/nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}, "t")
    deployment = made.create(
        "apps/deployments",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "t",
    )
    assert deployment is not None
    replica_set = made.create(
        "apps/replicasets",
        "shop",
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "ownerReferences": [owner(deployment, "Deployment")]},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "w", "image": "nginx"}]},
                },
            },
        },
        "t",
    )
    assert replica_set is not None
    for name in ("web-abc-1", "web-abc-2"):
        add_pod(made, name, [owner(replica_set, "ReplicaSet")])
    add_pod(made, "loner", [])
    return made


def owner(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def add_pod(ctx: runtime.Context, name: str, owners: list[dict[str, Any]]) -> None:
    created = ctx.create(
        "/pods",
        "shop",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "ownerReferences": owners},
            "spec": {"containers": [{"name": "w", "image": "nginx"}]},
        },
        "t",
    )
    assert created is not None
    pod_status = {
        "phase": "Running",
        "containerStatuses": [
            {"name": "w", "restartCount": 0, "ready": True, "state": {"running": {"startedAt": "2030-01-01T00:00:00Z"}}}
        ],
    }
    ctx.update("/pods", {**created, "status": pod_status}, "kubelet", subresource="status")


def test_a_workload_fault_restarts_its_pods(ctx: runtime.Context) -> None:
    answer = faultapi.apply_fault(ctx, {"type": "crashloop", "namespace": "shop", "workload": "deployment/web"})
    assert answer == {
        "type": "crashloop",
        "namespace": "shop",
        "workload": "deployment/web",
        "restarted": ["web-abc-1", "web-abc-2"],
    }
    assert faults.table(ctx.data).workloads == {("shop", "Deployment", "web"): "crashloop"}
    assert ctx.get("/pods", "shop", "web-abc-1") is None
    assert ctx.get("/pods", "shop", "loner") is not None


def test_a_pod_fault_waits_for_the_next_start(ctx: runtime.Context) -> None:
    answer = faultapi.apply_fault(ctx, {"type": "oom", "namespace": "shop", "pod": "loner"})
    assert answer["restarted"] == []
    assert faults.table(ctx.data).pods == {("shop", "loner"): "oom"}
    assert ctx.get("/pods", "shop", "loner") is not None
    faultapi.apply_fault(ctx, {"type": "unready", "namespace": "shop", "workload": "rs/web-abc"})
    cleared = faultapi.apply_fault(ctx, {"type": "clear-pod-faults", "namespace": "shop", "pod": "loner"})
    assert cleared == {"type": "clear-pod-faults", "cleared": ["shop/pod/loner"]}
    assert faultapi.apply_fault(ctx, {"type": "clear-pod-faults"}) == {
        "type": "clear-pod-faults",
        "cleared": ["shop/replicaset/web-abc"],
    }
    assert not faults.table(ctx.data).workloads


def test_node_down_and_up(ctx: runtime.Context) -> None:
    assert faultapi.apply_fault(ctx, {"type": "node-down", "node": "node-a"})["nodesDown"] == ["node-a"]
    assert faults.table(ctx.data).nodes_down == {"node-a"}
    assert faultapi.apply_fault(ctx, {"type": "node-up", "node": "node-a"})["nodesDown"] == []


def test_pod_kill_asks_the_kubelet(ctx: runtime.Context, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, int]] = []
    monkeypatch.setattr(
        kubelet,
        "kill_container",
        lambda ctx, pod, container, code: calls.append((pod["metadata"]["name"], container, code)),
    )
    answer = faultapi.apply_fault(ctx, {"type": "pod-kill", "namespace": "shop", "pod": "loner"})
    assert answer == {"type": "pod-kill", "namespace": "shop", "pod": "loner", "container": "w", "exitCode": 137}
    assert calls == [("loner", "w", 137)]


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"type": "explode"}, 400, "type: 'explode' is not one of crashloop"),
        ({"type": "crashloop", "namespace": "shop"}, 400, "workload: a crashloop fault needs a workload"),
        ({"type": "crashloop", "namespace": "shop", "workload": "web"}, 400, 'workload: "web" is not KIND/NAME'),
        ({"type": "crashloop", "namespace": "shop", "workload": "cronjob/x"}, 400, "workload:"),
        (
            {"type": "oom", "namespace": "shop", "workload": "deployment/web", "pod": "loner"},
            400,
            "workload, pod: give one",
        ),
        ({"type": "oom", "namespace": "", "pod": "loner"}, 400, "namespace: must be a non-empty string"),
        ({"type": "oom", "namespace": "shop", "pod": "loner", "replicas": 3}, 400, 'unknown field "replicas"'),
        ({"type": "oom", "namespace": "shop", "workload": "deployment/api"}, 404, 'deployments.apps "api" not found'),
        ({"type": "oom", "namespace": "shop", "pod": "ghost"}, 404, 'pods "ghost" not found'),
        ({"type": "node-down"}, 400, "node: required for a node-down fault"),
        ({"type": "node-down", "node": "node-z"}, 404, 'nodes "node-z" not found'),
        ({"type": "pod-kill", "namespace": "shop"}, 400, "pod: required for a pod-kill fault"),
        ({"type": "pod-kill", "namespace": "shop", "pod": "loner", "container": "x"}, 400, "container: x is not valid"),
    ],
)
def test_bad_input_names_the_field(ctx: runtime.Context, body: dict[str, Any], code: int, words: str) -> None:
    with pytest.raises(status.ApiError) as refused:
        faultapi.apply_fault(ctx, body)
    assert refused.value.code == code
    assert words in refused.value.message


def test_a_container_no_kubelet_runs_cannot_be_killed(ctx: runtime.Context) -> None:
    with pytest.raises(status.ApiError) as refused:
        faultapi.apply_fault(ctx, {"type": "pod-kill", "namespace": "shop", "pod": "loner"})
    assert refused.value.code == 409
    assert "there is no process to kill" in refused.value.message
