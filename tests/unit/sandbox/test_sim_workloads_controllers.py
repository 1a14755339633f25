"""The workload controllers' logic: surge and unavailability, hashing, revisions, deletion order, and
rollouts stepped through an in-process API server (no HTTP, no kubelet: the test marks pods ready)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from upkeep.sandbox import apiserver
from upkeep.sandbox.simulation import (
    runtime,
    workloads,
    workloads_daemonset,
    workloads_deployment,
    workloads_job,
    workloads_pods,
    workloads_replicaset,
    workloads_rollout,
    workloads_statefulset,
)
from upkeep.sandbox.simulation.settings import SimulationSettings
from upkeep.sandbox.store import Store

DEPLOYMENTS = "apps/deployments"
REPLICA_SETS = "apps/replicasets"
PODS = "/pods"


# maxSurge and maxUnavailable


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        ("25%", 3, True, 1),
        ("25%", 3, False, 0),
        ("25%", 4, True, 1),
        ("25%", 10, True, 3),
        ("25%", 10, False, 2),
        ("50%", 5, False, 2),
        ("100%", 7, False, 7),
        ("0%", 7, True, 0),
        (2, 10, True, 2),
        ("3", 10, True, 3),
        (None, 10, True, 0),
    ],
)
def test_int_or_percent_rounds_as_intstr(value: object, total: int, round_up: bool, expected: int) -> None:
    assert workloads_rollout.int_or_percent(value, total, round_up=round_up) == expected


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        ("25%", "25%", 3, (1, 0)),
        ("25%", "25%", 10, (3, 2)),
        (0, 0, 5, (0, 1)),  # never both zero: one may be unavailable
        ("0%", "1%", 2, (0, 1)),  # 1% of 2 rounds down to 0, so unavailability becomes 1
        (1, "25%", 2, (1, 0)),
        (None, None, 4, (0, 1)),
    ],
)
def test_resolve_fenceposts(surge: object, unavailable: object, desired: int, expected: tuple[int, int]) -> None:
    assert workloads_rollout.resolve_fenceposts(surge, unavailable, desired) == expected


def deployment(replicas: int = 3, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
            },
            **spec,
        },
    }
    return body


def test_max_unavailable_is_clamped_and_zero_for_recreate() -> None:
    assert workloads_rollout.max_unavailable(deployment(3)) == 0
    assert workloads_rollout.max_surge(deployment(3)) == 1
    clamped = deployment(2, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 5}})
    assert workloads_rollout.max_unavailable(clamped) == 2
    recreate = deployment(3, strategy={"type": "Recreate"})
    assert workloads_rollout.max_unavailable(recreate) == 0
    assert workloads_rollout.max_surge(recreate) == 0
    assert workloads_rollout.min_available(recreate) == 3
    # kubectl create deployment sends strategy: {}; the API's default is RollingUpdate 25%/25%
    assert workloads_rollout.max_surge(deployment(4, strategy={})) == 1
    assert workloads_rollout.max_unavailable(deployment(0)) == 0


def replica_set(name: str, replicas: int, available: int = 0, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"replicas": replicas},
        "status": {"replicas": replicas, "availableReplicas": available},
    }


def test_new_rs_new_replicas_grows_within_surge() -> None:
    d = deployment(3)
    old = replica_set("old", 3, 3)
    new = replica_set("new", 0)
    assert workloads_rollout.new_rs_new_replicas(d, [old, new], new) == 1
    assert workloads_rollout.new_rs_new_replicas(d, [replica_set("old", 2, 2), new], new) == 2
    assert workloads_rollout.new_rs_new_replicas(d, [replica_set("old", 0), new], new) == 3
    grown = replica_set("new", 1)
    assert workloads_rollout.new_rs_new_replicas(d, [old, grown], grown) == 1  # 3 + 1 = the ceiling
    recreate = deployment(3, strategy={"type": "Recreate"})
    assert workloads_rollout.new_rs_new_replicas(recreate, [old, new], new) == 3


def test_saturation_needs_the_annotation_and_every_pod_available() -> None:
    d = deployment(3)
    assert workloads_rollout.is_saturated(d, replica_set("new", 3, 3, **{workloads_rollout.DESIRED_REPLICAS: "3"}))
    assert not workloads_rollout.is_saturated(d, replica_set("new", 3, 2, **{workloads_rollout.DESIRED_REPLICAS: "3"}))
    assert not workloads_rollout.is_saturated(d, replica_set("new", 3, 3))
    assert not workloads_rollout.is_saturated(d, None)


def test_proportions_follow_the_max_replicas_annotation() -> None:
    d = deployment(20, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}})
    # a Deployment of 10 (+3 surge) scaled to 20 (+3) in the middle of a rollout: 13 → 23 pods to share
    old = replica_set("old", 8, **{workloads_rollout.MAX_REPLICAS: "13"})
    new = replica_set("new", 5, **{workloads_rollout.MAX_REPLICAS: "13"})
    share_old = workloads_rollout.get_proportion(old, d, 10, 0)
    share_new = workloads_rollout.get_proportion(new, d, 10, share_old)
    assert (share_old, share_new) == (6, 4)  # 8·23/13 = 14.15 → 14; 5·23/13 = 8.8 → 9 (but only 4 are left)
    assert workloads_rollout.get_proportion(old, d, 0, 0) == 0


# hashing and revisions


def test_pod_template_hash_is_stable_and_safe() -> None:
    template = deployment()["spec"]["template"]
    first = workloads_rollout.pod_template_hash(template)
    assert first == workloads_rollout.pod_template_hash(copy.deepcopy(template))
    assert set(first) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert 1 <= len(first) <= 10
    # nulls, empty maps and the hash label itself do not count (semantic equality)
    noisy = copy.deepcopy(template)
    noisy["metadata"]["annotations"] = {}
    noisy["metadata"]["creationTimestamp"] = None
    noisy["metadata"]["labels"][workloads_rollout.HASH_LABEL] = first
    assert workloads_rollout.pod_template_hash(noisy) == first
    assert workloads_rollout.equal_ignore_hash(noisy, template)
    changed = copy.deepcopy(template)
    changed["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert workloads_rollout.pod_template_hash(changed) != first
    assert not workloads_rollout.equal_ignore_hash(changed, template)
    assert workloads_rollout.pod_template_hash(template, 1) != first  # a collision gives another name


def test_safe_encode_maps_digits_into_the_alphabet() -> None:
    assert workloads_rollout.safe_encode("0123456789") == "456789bcdf"  # as in "web-7d4b9c8f5"


def test_revision_annotations_of_a_rolled_back_replica_set() -> None:
    d = deployment(3)
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "kubectl set image",
        workloads_rollout.REVISION: "2",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    made = workloads_rollout.new_rs_annotations(d, {}, 1, exists=False)
    assert made == {
        "kubernetes.io/change-cause": "kubectl set image",
        workloads_rollout.REVISION: "1",
        workloads_rollout.DESIRED_REPLICAS: "3",
        workloads_rollout.MAX_REPLICAS: "4",
    }
    again = workloads_rollout.new_rs_annotations(d, {**made, workloads_rollout.REVISION_HISTORY: "1"}, 3, exists=True)
    assert again[workloads_rollout.REVISION] == "3"
    assert again[workloads_rollout.REVISION_HISTORY] == "1,1"
    unchanged = workloads_rollout.new_rs_annotations(d, {workloads_rollout.REVISION: "5"}, 3, exists=True)
    assert unchanged[workloads_rollout.REVISION] == "5"
    assert workloads_rollout.REVISION_HISTORY not in unchanged


def test_set_condition_keeps_transition_time_when_only_the_reason_changes() -> None:
    status: dict[str, Any] = {}
    first = workloads_rollout.new_condition("Progressing", "True", "NewReplicaSetCreated", "a", "2026-01-01T00:00:00Z")
    assert workloads_rollout.set_condition(status, first)
    same = workloads_rollout.new_condition("Progressing", "True", "NewReplicaSetCreated", "b", "2026-01-01T00:01:00Z")
    assert not workloads_rollout.set_condition(status, same)
    other = workloads_rollout.new_condition("Progressing", "True", "ReplicaSetUpdated", "c", "2026-01-01T00:02:00Z")
    assert workloads_rollout.set_condition(status, other)
    assert status["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert status["conditions"][0]["lastUpdateTime"] == "2026-01-01T00:02:00Z"


# ReplicaSets: which pods go first


def pod(name: str, *, node: str = "", phase: str = "Running", ready: bool = True, **extra: Any) -> dict[str, Any]:
    conditions = [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": extra.pop("since", "")}
    ]
    return {
        "metadata": {"name": name, "creationTimestamp": extra.pop("created", "2026-01-01T00:00:00Z"), **extra},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_deletion_order_prefers_unscheduled_pending_and_unready_pods() -> None:
    pods = [
        pod("running-ready", node="a", since="2026-01-01T00:00:00Z"),
        pod("running-unready", node="a", ready=False),
        pod("pending", node="b", phase="Pending", ready=False),
        pod("unscheduled", phase="Pending", ready=False),
        pod("ready-later", node="c", since="2026-01-01T00:05:00Z"),
        pod("cheap", node="c", since="2026-01-01T00:00:00Z", annotations={workloads_replicaset.DELETION_COST: "-5"}),
    ]
    order = [item["metadata"]["name"] for item in workloads_replicaset.deletion_order(pods)]
    assert order == ["unscheduled", "pending", "running-unready", "cheap", "ready-later", "running-ready"]


def test_deletion_order_prefers_doubled_up_nodes_then_newer_pods() -> None:
    pods = [
        pod("alone", node="a", since="2026-01-01T00:00:00Z"),
        pod("crowded-1", node="b", since="2026-01-01T00:00:00Z"),
        pod("crowded-2", node="b", since="2026-01-01T00:00:00Z", created="2026-01-01T00:00:09Z"),
    ]
    order = [item["metadata"]["name"] for item in workloads_replicaset.deletion_order(pods)]
    assert order == ["crowded-2", "crowded-1", "alone"]


# rollouts, stepped


class Recording(runtime.Context):
    """An in-process API with the Events kept for the test."""

    def __init__(self, settings: SimulationSettings | None = None) -> None:
        store = Store()
        super().__init__(apiserver.ApiServer(store), store, settings or SimulationSettings.fast())
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: Any, event_type: str, reason: str, message: str, component: str, *, host: str = "") -> None:
        self.events.append((str(obj["metadata"]["name"]), event_type, reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    found = Clock()
    monkeypatch.setattr(workloads_pods, "wall_clock", found)
    yield found


class Plane:
    """The Deployment and ReplicaSet controllers over an in-process API; a pass runs each once."""

    def __init__(self, clock: Clock, runs: Callable[[dict[str, Any]], bool] = lambda pod: True) -> None:
        self.ctx = Recording()
        self.clock = clock
        self.runs = runs
        """Whether a pod becomes Running and Ready (the kubelet's part)."""
        self.deployments = workloads_deployment.DeploymentController(self.ctx)
        self.replica_sets = workloads_replicaset.ReplicaSetController(self.ctx)
        self.checks: list[Callable[[], None]] = []

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        body["metadata"].pop("generation", None)
        existing = self.ctx.get(DEPLOYMENTS, "default", body["metadata"]["name"])
        if existing is None:
            created = self.ctx.create(DEPLOYMENTS, "default", body, "kubectl")
        else:
            created = self.ctx.update(DEPLOYMENTS, {**existing, "spec": body["spec"]}, "kubectl")
        assert created is not None
        return created

    def patch(self, patch: dict[str, Any]) -> None:
        assert self.ctx.patch(DEPLOYMENTS, "default", "web", patch, "kubectl") is not None

    def run_pods(self) -> None:
        moment = workloads_pods.timestamp(self.clock.now)
        for item in self.ctx.list(PODS):
            if item.get("status", {}).get("phase") != "Pending" or not self.runs(item):
                continue
            status = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": moment}],
            }
            assert self.ctx.update(PODS, {**item, "status": status}, "kubelet", subresource="status") is not None

    def step(self) -> None:
        for item in self.ctx.list(DEPLOYMENTS):
            self.deployments.sync(item)
        for item in self.ctx.list(REPLICA_SETS):
            self.replica_sets.sync(item)
        for check in self.checks:
            check()
        self.run_pods()
        for item in self.ctx.list(REPLICA_SETS):
            self.replica_sets.sync(item)
        self.clock.now += 1

    def settle(self, steps: int = 40) -> None:
        for _ in range(steps):
            before = self.ctx.store.rv
            self.step()
            if self.ctx.store.rv == before:
                return
        raise AssertionError("the rollout did not settle")

    def deployment(self) -> dict[str, Any]:
        found = self.ctx.get(DEPLOYMENTS, "default", "web")
        assert found is not None
        return found

    def replica_sets_by_revision(self) -> list[dict[str, Any]]:
        return sorted(self.ctx.list(REPLICA_SETS, "default"), key=workloads_rollout.revision)

    def scaling_events(self) -> list[str]:
        return [message for _, _, reason, message in self.ctx.events if reason == "ScalingReplicaSet"]


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    found = workloads_rollout.get_condition(obj.get("status") or {}, kind)
    assert found is not None, f"no {kind} condition in {obj.get('status')}"
    return found


def test_a_new_deployment_rolls_out(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(3))
    plane.settle()
    d = plane.deployment()
    (rs,) = plane.ctx.list(REPLICA_SETS)
    name = rs["metadata"]["name"]
    assert name == f"web-{rs['metadata']['labels'][workloads_rollout.HASH_LABEL]}"
    assert (
        rs["spec"]["selector"]["matchLabels"][workloads_rollout.HASH_LABEL]
        == rs["metadata"]["labels"][workloads_rollout.HASH_LABEL]
    )
    assert rs["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "uid": d["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert rs["metadata"]["annotations"] == {
        workloads_rollout.REVISION: "1",
        workloads_rollout.DESIRED_REPLICAS: "3",
        workloads_rollout.MAX_REPLICAS: "4",
    }
    assert d["metadata"]["annotations"][workloads_rollout.REVISION] == "1"
    status = d["status"]
    assert {key: status.get(key) for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")} == {
        "replicas": 3,
        "updatedReplicas": 3,
        "readyReplicas": 3,
        "availableReplicas": 3,
    }
    assert status["observedGeneration"] == d["metadata"]["generation"]
    assert "unavailableReplicas" not in status
    assert [item["type"] for item in status["conditions"]] == ["Available", "Progressing"]
    assert condition(d, "Available")["reason"] == "MinimumReplicasAvailable"
    assert condition(d, "Available")["message"] == "Deployment has minimum availability."
    assert condition(d, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert condition(d, "Progressing")["message"] == f'ReplicaSet "{name}" has successfully progressed.'
    assert plane.scaling_events() == [f"Scaled up replica set {name} from 0 to 3"]
    created = [message for rs_name, _, reason, message in plane.ctx.events if reason == "SuccessfulCreate"]
    assert len(created) == 3
    for item in plane.ctx.list(PODS):
        assert item["metadata"]["name"].startswith(f"{name}-")
        assert (
            item["metadata"]["labels"][workloads_rollout.HASH_LABEL]
            == rs["metadata"]["labels"][workloads_rollout.HASH_LABEL]
        )
        assert f"Created pod: {item['metadata']['name']}" in created
        (ref,) = item["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet",
            name,
            True,
            True,
        )


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"),
    [(3, "25%", "25%"), (10, "25%", "25%"), (4, 0, 1), (5, 2, 0), (6, "50%", "50%"), (1, 0, 1)],
)
def test_a_rolling_update_keeps_within_surge_and_unavailability(
    clock: Clock, replicas: int, surge: object, unavailable: object
) -> None:
    plane = Plane(clock)
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    plane.apply(deployment(replicas, strategy=strategy))
    plane.settle()
    most_surge, most_unavailable = workloads_rollout.resolve_fenceposts(surge, unavailable, replicas)

    def within_limits() -> None:
        live = [item for item in plane.ctx.list(PODS) if workloads_pods.active(item)]
        ready = [item for item in live if workloads_pods.ready(item)]
        assert len(live) <= replicas + most_surge
        assert len(ready) >= replicas - most_unavailable

    plane.checks.append(within_limits)
    changed = deployment(replicas, strategy=strategy)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    plane.apply(changed)
    plane.settle()
    old, new = plane.replica_sets_by_revision()
    assert (workloads_rollout.replicas(old), workloads_rollout.replicas(new)) == (0, replicas)
    assert condition(plane.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert all(item["spec"]["containers"][0]["image"] == "nginx:1.26" for item in plane.ctx.list(PODS))


def test_the_events_of_a_rolling_update_of_three(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(3))
    plane.settle()
    changed = deployment(3)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    plane.apply(changed)
    plane.settle()
    old, new = (item["metadata"]["name"] for item in plane.replica_sets_by_revision())
    assert plane.scaling_events()[1:] == [
        f"Scaled up replica set {new} from 0 to 1",
        f"Scaled down replica set {old} from 3 to 2",
        f"Scaled up replica set {new} from 1 to 2",
        f"Scaled down replica set {old} from 2 to 1",
        f"Scaled up replica set {new} from 2 to 3",
        f"Scaled down replica set {old} from 1 to 0",
    ]
    assert plane.deployment()["metadata"]["annotations"][workloads_rollout.REVISION] == "2"


def test_undo_finds_the_old_replica_set_again(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(3))
    plane.settle()
    first = plane.ctx.list(REPLICA_SETS)[0]
    template = copy.deepcopy(first["spec"]["template"])
    changed = deployment(3)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    plane.apply(changed)
    plane.settle()
    # kubectl rollout undo: the old ReplicaSet's template, without its hash label, patched in
    del template["metadata"]["labels"][workloads_rollout.HASH_LABEL]
    template["metadata"]["creationTimestamp"] = None
    plane.patch({"spec": {"template": template}})
    plane.settle()
    replica_sets = plane.replica_sets_by_revision()
    assert len(replica_sets) == 2
    again = replica_sets[-1]
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    assert again["metadata"]["annotations"][workloads_rollout.REVISION] == "3"
    assert again["metadata"]["annotations"][workloads_rollout.REVISION_HISTORY] == "1"
    assert workloads_rollout.replicas(again) == 3
    assert plane.deployment()["metadata"]["annotations"][workloads_rollout.REVISION] == "3"


def test_recreate_empties_the_old_replica_set_first(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(2, strategy={"type": "Recreate"}))
    plane.settle()
    changed = deployment(2, strategy={"type": "Recreate"})
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    plane.apply(changed)
    plane.settle()
    old, new = (item["metadata"]["name"] for item in plane.replica_sets_by_revision())
    assert plane.scaling_events()[1:] == [
        f"Scaled down replica set {old} from 2 to 0",
        f"Scaled up replica set {new} from 0 to 2",
    ]


def test_scaling_during_a_rollout_is_proportional(clock: Clock) -> None:
    plane = Plane(clock, runs=lambda item: item["spec"]["containers"][0]["image"] != "nginx:broken")
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}
    plane.apply(deployment(10, strategy=strategy))
    plane.settle()
    broken = deployment(10, strategy=strategy)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:broken"
    plane.apply(broken)
    plane.settle()
    old, new = plane.replica_sets_by_revision()
    assert (workloads_rollout.replicas(old), workloads_rollout.replicas(new)) == (8, 5)
    broken["spec"]["replicas"] = 20
    plane.apply(broken)
    plane.settle()
    old, new = plane.replica_sets_by_revision()
    assert (workloads_rollout.replicas(old), workloads_rollout.replicas(new)) == (14, 9)
    assert old["metadata"]["annotations"][workloads_rollout.DESIRED_REPLICAS] == "20"


def test_a_paused_deployment_does_not_roll_out(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(2))
    plane.settle()
    plane.patch({"spec": {"paused": True}})
    plane.settle()
    assert condition(plane.deployment(), "Progressing")["reason"] == "DeploymentPaused"
    assert condition(plane.deployment(), "Progressing")["status"] == "Unknown"
    plane.patch({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"}]}}}})
    plane.settle()
    assert len(plane.ctx.list(REPLICA_SETS)) == 1
    assert plane.deployment()["status"]["observedGeneration"] == plane.deployment()["metadata"]["generation"]
    plane.patch({"spec": {"paused": False}})
    plane.settle()
    assert len(plane.ctx.list(REPLICA_SETS)) == 2
    assert condition(plane.deployment(), "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_a_stuck_rollout_exceeds_its_progress_deadline(clock: Clock) -> None:
    plane = Plane(clock, runs=lambda item: item["spec"]["containers"][0]["image"] != "nginx:missing")
    plane.apply(deployment(2, progressDeadlineSeconds=60))
    plane.settle()
    broken = deployment(2, progressDeadlineSeconds=60)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:missing"
    plane.apply(broken)
    plane.settle()
    assert condition(plane.deployment(), "Progressing")["reason"] == "ReplicaSetUpdated"
    new = plane.replica_sets_by_revision()[-1]["metadata"]["name"]
    wait = plane.deployments.sync(plane.deployment())
    assert wait is not None
    assert 0 < wait <= 60 / plane.ctx.settings.time_scale + 0.1
    clock.now += 60 / plane.ctx.settings.time_scale + 1
    plane.deployments.sync(plane.deployment())
    stuck = condition(plane.deployment(), "Progressing")
    assert (stuck["status"], stuck["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert stuck["message"] == f'ReplicaSet "{new}" has timed out progressing.'
    assert condition(plane.deployment(), "Available")["status"] == "True"  # the old pods still serve


def test_revision_history_limit_deletes_old_empty_replica_sets(clock: Clock) -> None:
    plane = Plane(clock)
    for image in ("nginx:1.25", "nginx:1.26", "nginx:1.27", "nginx:1.28"):
        changed = deployment(1, revisionHistoryLimit=1)
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = image
        plane.apply(changed)
        plane.settle()
    revisions = [workloads_rollout.revision(item) for item in plane.replica_sets_by_revision()]
    assert revisions == [3, 4]


def test_a_deleted_replica_set_pod_is_replaced(clock: Clock) -> None:
    plane = Plane(clock)
    plane.apply(deployment(2))
    plane.settle()
    victim = plane.ctx.list(PODS)[0]["metadata"]["name"]
    assert plane.ctx.delete(PODS, "default", victim)
    plane.settle()
    names = [item["metadata"]["name"] for item in plane.ctx.list(PODS)]
    assert len(names) == 2
    assert victim not in names
    assert not [event for event in plane.ctx.events if event[2] == "SuccessfulDelete"]


# Jobs


def test_job_backoff_doubles_up_to_the_cap() -> None:
    assert [workloads_job.backoff_delay(n) for n in range(6)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    assert workloads_job.backoff_delay(12) == 600.0


class JobPlane:
    def __init__(self, clock: Clock, outcome: str) -> None:
        self.ctx = Recording()
        self.clock = clock
        self.outcome = outcome
        self.jobs = workloads_job.JobController(self.ctx)

    def step(self) -> float | None:
        job = self.ctx.get("batch/jobs", "default", "work")
        assert job is not None
        wait = self.jobs.sync(job) if not workloads_job.job_finished(job) else None
        moment = workloads_pods.timestamp(self.clock.now)
        for item in self.ctx.list(PODS):
            if item.get("status", {}).get("phase") != "Pending" or item["metadata"].get("deletionTimestamp"):
                continue
            code = 0 if self.outcome == "Succeeded" else 1
            state = {"terminated": {"exitCode": code, "finishedAt": moment}}
            if self.outcome == "Running":
                state = {"running": {"startedAt": moment}}
            status = {"phase": self.outcome, "containerStatuses": [{"name": "work", "state": state}]}
            self.ctx.update(PODS, {**item, "status": status}, "kubelet", subresource="status")
        return wait

    def job(self) -> dict[str, Any]:
        found = self.ctx.get("batch/jobs", "default", "work")
        assert found is not None
        return found


def job(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "work"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "work"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox:1.36"}]},
            },
            **spec,
        },
    }


def test_a_job_that_keeps_failing_ends_failed_after_its_backoff_limit(clock: Clock) -> None:
    plane = JobPlane(clock, "Failed")
    assert plane.ctx.create("batch/jobs", "default", job(backoffLimit=2), "kubectl") is not None
    delays = []
    for _ in range(30):
        wait = plane.step()
        if workloads_job.job_finished(plane.job()):
            break
        if wait:
            delays.append(round(wait, 2))
            clock.now += wait
    status = plane.job()["status"]
    assert [(item["type"], item["reason"]) for item in status["conditions"]] == [
        ("FailureTarget", "BackoffLimitExceeded"),
        ("Failed", "BackoffLimitExceeded"),
    ]
    assert status["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert status["failed"] == 3
    assert "active" not in status
    assert "completionTime" not in status
    assert (status["ready"], status["terminating"], status["uncountedTerminatedPods"]) == (0, 0, {})
    scale = plane.ctx.settings.time_scale
    assert delays == [round(10 / scale + 0.05, 2), round(20 / scale + 0.05, 2)]
    assert (
        "work",
        "Warning",
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    ) in plane.ctx.events
    pods = plane.ctx.list(PODS)
    assert len(pods) == 3
    for item in pods:
        assert workloads_job.TRACKING_FINALIZER not in (item["metadata"].get("finalizers") or [])
        assert item["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "work"
        assert item["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == plane.job()["metadata"]["uid"]
        assert item["metadata"]["generateName"] == "work-"


def test_a_job_completes_after_its_completions(clock: Clock) -> None:
    plane = JobPlane(clock, "Succeeded")
    assert plane.ctx.create("batch/jobs", "default", job(completions=3, parallelism=2), "kubectl") is not None
    for _ in range(10):
        plane.step()
        if workloads_job.job_finished(plane.job()):
            break
    status = plane.job()["status"]
    assert status["succeeded"] == 3
    assert [(item["type"], item["reason"], item["message"]) for item in status["conditions"]] == [
        ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
        ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"),
    ]
    assert status["completionTime"] == status["conditions"][1]["lastTransitionTime"]
    assert ("work", "Normal", "Completed", "Job completed") in plane.ctx.events
    assert len(plane.ctx.list(PODS)) == 3


def test_a_job_past_its_active_deadline_fails(clock: Clock) -> None:
    plane = JobPlane(clock, "Running")
    assert plane.ctx.create("batch/jobs", "default", job(activeDeadlineSeconds=100), "kubectl") is not None
    wait = plane.step()
    assert wait is not None
    assert wait == pytest.approx(100 / plane.ctx.settings.time_scale + 0.05, abs=0.01)
    clock.now += wait
    plane.step()
    plane.step()
    status = plane.job()["status"]
    assert [item["type"] for item in status["conditions"]] == ["FailureTarget", "Failed"]
    assert status["conditions"][1]["reason"] == "DeadlineExceeded"
    assert status["conditions"][1]["message"] == "Job was active longer than specified deadline"
    assert status["failed"] == 1
    assert plane.ctx.list(PODS) == []


def test_a_finished_job_goes_after_its_ttl(clock: Clock) -> None:
    plane = JobPlane(clock, "Succeeded")
    assert plane.ctx.create("batch/jobs", "default", job(ttlSecondsAfterFinished=20), "kubectl") is not None
    plane.step()
    plane.step()
    assert workloads_job.job_finished(plane.job()) == "Complete"
    finished_at = workloads_pods.parse_time(plane.job()["status"]["completionTime"])
    assert finished_at is not None
    key = ("batch/jobs", "default", "work")
    clock.now = finished_at + 20 / plane.ctx.settings.time_scale - 0.5
    assert asyncio.run(plane.jobs.reconcile(key)) == pytest.approx(0.55, abs=0.01)
    clock.now += 1
    assert asyncio.run(plane.jobs.reconcile(key)) is None
    assert plane.ctx.get(*key) is None


# StatefulSets and DaemonSets


def test_statefulset_status_finishes_a_rolling_update() -> None:
    sts = {"metadata": {"name": "db", "generation": 2}, "spec": {}, "status": {}}
    pods = [
        {
            "metadata": {"name": f"db-{n}", "labels": {workloads_statefulset.REVISION_LABEL: "db-new"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        }
        for n in range(2)
    ]
    status = workloads_statefulset.statefulset_status(sts, pods, "db-old", "db-new", 0.0, 0.0)
    assert status["currentRevision"] == status["updateRevision"] == "db-new"
    assert (status["replicas"], status["readyReplicas"], status["currentReplicas"], status["updatedReplicas"]) == (
        2,
        2,
        2,
        2,
    )
    pods[1]["metadata"]["labels"][workloads_statefulset.REVISION_LABEL] = "db-old"
    status = workloads_statefulset.statefulset_status(sts, pods, "db-old", "db-new", 0.0, 0.0)
    assert (status["currentRevision"], status["currentReplicas"], status["updatedReplicas"]) == ("db-old", 1, 1)


def node(name: str, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def test_daemon_pods_go_where_selectors_and_taints_allow() -> None:
    spec: dict[str, Any] = {"nodeSelector": {"disk": "ssd"}}
    assert workloads_daemonset.should_run(spec, node("a", {"disk": "ssd"})) == (True, True)
    assert workloads_daemonset.should_run(spec, node("b", {"disk": "hdd"})) == (False, False)
    tainted = node("c", {"disk": "ssd"}, [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    assert workloads_daemonset.should_run(spec, tainted) == (False, True)
    evicting = node("d", {"disk": "ssd"}, [{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
    assert workloads_daemonset.should_run(spec, evicting) == (False, False)
    tolerant = {**spec, "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db"}]}
    assert workloads_daemonset.should_run(tolerant, evicting) == (True, True)
    # the tolerations every daemon pod gets: a NotReady or cordoned node keeps its daemon pod
    not_ready = node(
        "e",
        {"disk": "ssd"},
        [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
        ],
    )
    assert workloads_daemonset.should_run(spec, not_ready) == (True, True)


def test_daemon_pod_target_node_from_affinity() -> None:
    pod_spec: dict[str, Any] = {}
    workloads_daemonset._node_affinity(pod_spec, "node-7")
    assert workloads_daemonset.target_node({"spec": pod_spec}) == "node-7"
    assert workloads_daemonset.should_run(pod_spec, node("node-7")) == (True, True)
    assert workloads_daemonset.should_run(pod_spec, node("node-8")) == (False, False)
    assert workloads_daemonset.target_node({"spec": {"nodeName": "node-9", **pod_spec}}) == "node-9"


def test_the_workload_controllers_are_the_components() -> None:
    names = [component.name for component in workloads.COMPONENTS]  # type: ignore[attr-defined]
    assert names == [
        "deployment-controller",
        "replicaset-controller",
        "statefulset-controller",
        "daemonset-controller",
        "job-controller",
        "cronjob-controller",
    ]


# the API's defaults


def test_api_defaults_for_workloads() -> None:
    from upkeep.sandbox.simulation import workloads_defaults

    made = deployment(3, strategy={})
    workloads_defaults.apply("Deployment", made)
    assert made["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert (made["spec"]["revisionHistoryLimit"], made["spec"]["progressDeadlineSeconds"]) == (10, 600)
    recreate = deployment(3, strategy={"type": "Recreate"})
    workloads_defaults.apply("Deployment", recreate)
    assert recreate["spec"]["strategy"] == {"type": "Recreate"}

    sts: dict[str, Any] = {"spec": {}}
    workloads_defaults.apply("StatefulSet", sts)
    assert sts["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    ds: dict[str, Any] = {"spec": {}}
    workloads_defaults.apply("DaemonSet", ds)
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }

    made_job = {"metadata": {"name": "work", "uid": "u-1"}, "spec": {"template": {"spec": {}}}}
    workloads_defaults.apply("Job", made_job)
    spec = made_job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"], spec["completionMode"]) == (
        1,
        1,
        6,
        "NonIndexed",
    )
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["template"]["metadata"]["labels"]["job-name"] == "work"
    queue = {"metadata": {"name": "q", "uid": "u-2"}, "spec": {"parallelism": 3, "template": {}}}
    workloads_defaults.apply("Job", queue)
    assert "completions" not in queue["spec"]

    cron: dict[str, Any] = {"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {}}}}}
    workloads_defaults.apply("CronJob", cron)
    assert (cron["spec"]["successfulJobsHistoryLimit"], cron["spec"]["failedJobsHistoryLimit"]) == (3, 1)
    assert cron["spec"]["concurrencyPolicy"] == "Allow"


class SetPlane:
    """The StatefulSet controller over an in-process API; pods run when ``runs`` says so."""

    def __init__(self, clock: Clock) -> None:
        self.ctx = Recording()
        self.clock = clock
        self.controller = workloads_statefulset.StatefulSetController(self.ctx)
        self.runs = True

    def step(self) -> None:
        sts = self.ctx.get("apps/statefulsets", "default", "db")
        assert sts is not None
        self.controller.sync(sts)
        if not self.runs:
            return
        moment = workloads_pods.timestamp(self.clock.now)
        for item in self.ctx.list(PODS):
            if item.get("status", {}).get("phase") == "Running":
                continue
            status = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": moment}],
            }
            self.ctx.update(PODS, {**item, "status": status}, "kubelet", subresource="status")

    def pods(self) -> list[str]:
        return [item["metadata"]["name"] for item in self.ctx.list(PODS)]

    def messages(self, reason: str) -> list[str]:
        return [message for _, _, found, message in self.ctx.events if found == reason]


def statefulset(replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": replicas,
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "redis:7"}]},
            },
            **spec,
        },
    }


def test_a_statefulset_makes_its_pods_one_after_the_other(clock: Clock) -> None:
    plane = SetPlane(clock)
    plane.runs = False
    assert plane.ctx.create("apps/statefulsets", "default", statefulset(3), "kubectl") is not None
    plane.step()
    plane.step()
    assert plane.pods() == ["db-0"]  # db-1 waits for db-0 to be Running and Ready
    plane.runs = True
    for _ in range(4):
        plane.step()
    assert plane.pods() == ["db-0", "db-1", "db-2"]
    assert plane.messages("SuccessfulCreate") == [f"create Pod db-{n} in StatefulSet db successful" for n in range(3)]
    status = (plane.ctx.get("apps/statefulsets", "default", "db") or {})["status"]
    assert (status["replicas"], status["readyReplicas"], status["currentRevision"]) == (3, 3, status["updateRevision"])
    assert plane.ctx.patch("apps/statefulsets", "default", "db", {"spec": {"replicas": 1}}, "kubectl") is not None
    plane.step()
    assert plane.pods() == ["db-0", "db-1"]
    plane.step()
    assert plane.pods() == ["db-0"]
    assert plane.messages("SuccessfulDelete") == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
    ]


def test_a_statefulset_rolls_from_the_highest_ordinal_down_to_the_partition(clock: Clock) -> None:
    plane = SetPlane(clock)
    body = statefulset(3, updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 1}})
    assert plane.ctx.create("apps/statefulsets", "default", body, "kubectl") is not None
    for _ in range(4):
        plane.step()
    before = {item["metadata"]["name"]: item["metadata"]["uid"] for item in plane.ctx.list(PODS)}
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "db", "image": "redis:7.2"}]}}}}
    assert plane.ctx.patch("apps/statefulsets", "default", "db", patch, "kubectl") is not None
    for _ in range(8):
        plane.step()
    after = {item["metadata"]["name"]: item for item in plane.ctx.list(PODS)}
    assert after["db-0"]["metadata"]["uid"] == before["db-0"]  # below the partition: kept
    assert after["db-2"]["metadata"]["uid"] != before["db-2"]
    assert after["db-1"]["metadata"]["uid"] != before["db-1"]
    assert plane.messages("SuccessfulDelete") == [
        "delete Pod db-2 in StatefulSet db successful",
        "delete Pod db-1 in StatefulSet db successful",
    ]
    status = (plane.ctx.get("apps/statefulsets", "default", "db") or {})["status"]
    assert (status["updatedReplicas"], status["currentReplicas"]) == (2, 1)
    assert status["currentRevision"] != status["updateRevision"]


def test_a_statefulset_can_start_at_another_ordinal(clock: Clock) -> None:
    plane = SetPlane(clock)
    assert (
        plane.ctx.create("apps/statefulsets", "default", statefulset(2, ordinals={"start": 5}), "kubectl") is not None
    )
    for _ in range(3):
        plane.step()
    assert plane.pods() == ["db-5", "db-6"]
    assert (plane.ctx.get(PODS, "default", "db-6") or {})["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "6"


def test_a_suspended_job_runs_no_pod_until_resumed(clock: Clock) -> None:
    plane = JobPlane(clock, "Running")
    assert plane.ctx.create("batch/jobs", "default", job(suspend=True), "kubectl") is not None
    plane.step()
    status = plane.job()["status"]
    assert plane.ctx.list(PODS) == []
    assert "startTime" not in status
    (suspended,) = status["conditions"]
    assert (suspended["type"], suspended["status"], suspended["reason"]) == ("Suspended", "True", "JobSuspended")
    assert plane.ctx.patch("batch/jobs", "default", "work", {"spec": {"suspend": False}}, "kubectl") is not None
    plane.step()
    status = plane.job()["status"]
    assert len(plane.ctx.list(PODS)) == 1
    assert status["startTime"]
    (resumed,) = status["conditions"]
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert [reason for _, _, reason, _ in plane.ctx.events if reason in ("Suspended", "Resumed")] == [
        "Suspended",
        "Resumed",
    ]


class DaemonPlane:
    def __init__(self, clock: Clock) -> None:
        self.ctx = Recording()
        self.clock = clock
        self.controller = workloads_daemonset.DaemonSetController(self.ctx)

    def add_node(self, name: str, **labels: str) -> None:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
        assert self.ctx.create("/nodes", "", body, "kubelet") is not None

    def step(self) -> None:
        ds = self.ctx.get("apps/daemonsets", "default", "agent")
        assert ds is not None
        self.controller.sync(ds)
        moment = workloads_pods.timestamp(self.clock.now)
        for item in self.ctx.list(PODS):
            if item.get("status", {}).get("phase") == "Running":
                continue
            bound = copy.deepcopy(item)
            bound["spec"]["nodeName"] = workloads_daemonset.target_node(item)
            bound = self.ctx.update(PODS, bound, "default-scheduler") or bound
            status = {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": moment}],
            }
            self.ctx.update(PODS, {**bound, "status": status}, "kubelet", subresource="status")

    def placement(self) -> dict[str, str]:
        return {item["spec"]["nodeName"]: item["spec"]["containers"][0]["image"] for item in self.ctx.list(PODS)}

    def status(self) -> dict[str, Any]:
        return (self.ctx.get("apps/daemonsets", "default", "agent") or {})["status"]  # type: ignore[no-any-return]


def test_a_daemonset_follows_the_nodes_and_rolls_one_node_at_a_time(clock: Clock) -> None:
    plane = DaemonPlane(clock)
    plane.add_node("a", role="edge")
    plane.add_node("b", role="edge")
    plane.add_node("c", role="core")
    body = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"role": "edge"}, "containers": [{"name": "agent", "image": "agent:1"}]},
            },
        },
    }
    assert plane.ctx.create("apps/daemonsets", "default", body, "kubectl") is not None
    plane.step()
    plane.step()
    assert plane.placement() == {"a": "agent:1", "b": "agent:1"}
    status = plane.status()
    assert (status["desiredNumberScheduled"], status["currentNumberScheduled"], status["numberReady"]) == (2, 2, 2)
    assert (status["numberMisscheduled"], status["numberAvailable"], status["updatedNumberScheduled"]) == (0, 2, 2)
    for item in plane.ctx.list(PODS):
        assert item["metadata"]["labels"]["pod-template-generation"] == "1"
        assert item["metadata"]["generateName"] == "agent-"

    relabelled = plane.ctx.get("/nodes", "", "b")
    assert relabelled is not None
    relabelled["metadata"]["labels"] = {"role": "core"}
    assert plane.ctx.update("/nodes", relabelled, "kubectl") is not None
    plane.step()
    assert plane.placement() == {"a": "agent:1"}

    plane.add_node("d", role="edge")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}}}
    assert plane.ctx.patch("apps/daemonsets", "default", "agent", patch, "kubectl") is not None
    plane.step()
    # maxUnavailable 1: node d is still without its pod, so no old pod may go yet
    assert plane.placement() == {"a": "agent:1", "d": "agent:2"}
    plane.step()
    assert plane.placement() == {"d": "agent:2"}
    plane.step()
    plane.step()
    assert plane.placement() == {"a": "agent:2", "d": "agent:2"}
    assert plane.status()["updatedNumberScheduled"] == 2
