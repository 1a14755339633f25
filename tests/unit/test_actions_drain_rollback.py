"""drainNode sends its grace period in each Eviction; rollbackDeployment leaves a healthy rollout alone.

Through a small in-memory action cluster that records every write, so each test can say what was
sent and what was not. The real API server's side is in tests/integration/test_actions.py.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from upkeep.actions import base, nodes, registry
from upkeep.model import resources

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


class Recorder:
    """An action cluster over a dict of objects by (kind, namespace, name); it records evictions and patches."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = {
            (item["kind"], item["metadata"].get("namespace", ""), item["metadata"]["name"]): item for item in objects
        }
        self.evictions: list[tuple[str, str, bool, int | None]] = []
        self.patches: list[tuple[str, str, Mapping[str, Any]]] = []
        self.created: list[Mapping[str, Any]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list(
        self, api_version: str, kind: str, namespace: str, *, label_selector: str = "", field_selector: str = ""
    ) -> list[dict[str, Any]]:
        found = [item for (k, ns, _), item in self.objects.items() if k == kind and (not namespace or ns == namespace)]
        if field_selector.startswith("spec.nodeName="):
            node = field_selector.split("=", 1)[1]
            found = [item for item in found if item.get("spec", {}).get("nodeName") == node]
        return copy.deepcopy(found)

    async def create(self, body: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.created.append(body)
        return dict(body)

    async def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        patch: Mapping[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        self.patches.append((kind, name, patch))
        found = self.objects[(kind, namespace, name)]
        return copy.deepcopy(found)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None, dry_run: bool = False
    ) -> bool:
        raise AssertionError("nothing is deleted here")

    async def evict(
        self, namespace: str, name: str, *, dry_run: bool = False, grace_period_seconds: int | None = None
    ) -> bool:
        self.evictions.append((namespace, name, dry_run, grace_period_seconds))
        if not dry_run:
            del self.objects[("Pod", namespace, name)]
        return True


def context(cluster: Recorder, workload: resources.ObjectRef, params: Mapping[str, Any], **changes: Any) -> Any:
    values: dict[str, Any] = {
        "cluster": cluster,
        "namespace": "shop",
        "incident": {"metadata": {"name": "inc-1", "namespace": "shop"}, "spec": {"severity": "SEV3"}},
        "workload": workload,
        "affected": (),
        "params": params,
        "key": "run/0",
        "now": NOW,
        "started": NOW,
    }
    values.update(changes)
    return base.ActionContext(**values)


def node_with_pods() -> list[dict[str, Any]]:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}, "spec": {}}
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"web-{index}", "namespace": "shop"},
            "spec": {"nodeName": "worker-1"},
        }
        for index in range(2)
    ]
    return [node, *pods]


NODE = resources.ObjectRef("Node", "worker-1", "", "v1")


@pytest.mark.parametrize(
    ("given", "sent"),
    [("30s", 30), ("1m30s", 90), ("1500ms", 2), ("0s", 0), (None, None)],
    ids=["seconds", "minutes", "rounded-up", "zero", "unset"],
)
def test_drain_sends_the_grace_period_with_every_eviction(given: str | None, sent: int | None) -> None:
    cluster = Recorder(node_with_pods())
    params = {"gracePeriod": given} if given is not None else {}
    outcome = asyncio.run(registry.get("drainNode").run(context(cluster, NODE, params)))
    assert outcome.phase == "Succeeded"
    assert sorted(cluster.evictions) == [("shop", "web-0", False, sent), ("shop", "web-1", False, sent)]


def test_a_dry_run_drain_says_the_grace_period_and_sends_it_with_dry_run() -> None:
    cluster = Recorder(node_with_pods())
    ctx = context(cluster, NODE, {"gracePeriod": "45s"}, dry_run=True)
    assert "each pod given 45 s to stop" in asyncio.run(registry.get("drainNode").describe(ctx))
    asyncio.run(registry.get("drainNode").run(ctx))
    assert {(dry, grace) for _, _, dry, grace in cluster.evictions} == {(True, 45)}
    assert nodes.grace_period_seconds({}) is None


def deployment(*, revision: int, ready: int, deadline_exceeded: bool = False, generation: int = 4) -> dict[str, Any]:
    conditions = [{"type": "Available", "status": "True"}]
    if deadline_exceeded:
        conditions.append({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "shop",
            "namespace": "shop",
            "uid": "d-1",
            "generation": generation,
            "resourceVersion": "10",
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [{"name": "shop"}]}},
        },
        "status": {
            "observedGeneration": 4,
            "replicas": 3,
            "updatedReplicas": 3,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        },
    }


def replica_set(revision: int, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"shop-{revision}",
            "namespace": "shop",
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "ownerReferences": [{"kind": "Deployment", "name": "shop", "uid": "d-1", "controller": True}],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "shop", "pod-template-hash": str(revision)}},
                "spec": {"containers": [{"name": "shop", "image": image}]},
            }
        },
    }


SHOP = resources.ObjectRef("Deployment", "shop", "shop", "apps/v1")


def test_a_healthy_rollout_is_not_rolled_back_and_the_step_says_so() -> None:
    cluster = Recorder([deployment(revision=3, ready=3), replica_set(2, "shop:bad"), replica_set(3, "shop:good")])
    action = registry.get("rollbackDeployment")
    ctx = context(cluster, SHOP, {})
    assert "nothing to roll back: revision 3 is healthy" in asyncio.run(action.describe(ctx))
    outcome = asyncio.run(action.run(ctx))
    assert outcome.phase == "Succeeded"
    assert "nothing to roll back: revision 3 is healthy" in outcome.message
    assert outcome.output["outcome"] == "NothingToRollBack" and outcome.output["revision"] == 3
    assert cluster.patches == [] and cluster.created == []  # no write, no Event
    assert asyncio.run(action.verify(ctx)).phase == "Succeeded"


@pytest.mark.parametrize(
    "body",
    [
        deployment(revision=3, ready=2),
        deployment(revision=3, ready=3, deadline_exceeded=True),
        deployment(revision=3, ready=3, generation=5),
    ],
    ids=["a-replica-not-ready", "past-its-progress-deadline", "spec-not-yet-seen"],
)
def test_an_unhealthy_rollout_is_rolled_back(body: dict[str, Any]) -> None:
    cluster = Recorder([body, replica_set(2, "shop:good"), replica_set(3, "shop:bad")])
    outcome = asyncio.run(registry.get("rollbackDeployment").run(context(cluster, SHOP, {})))
    assert outcome.output["toRevision"] == 2 and outcome.output["fromRevision"] == 3
    [(kind, name, patch)] = cluster.patches
    assert (kind, name) == ("Deployment", "shop")
    assert patch["spec"]["template"]["spec"]["containers"][0]["image"] == "shop:good"
