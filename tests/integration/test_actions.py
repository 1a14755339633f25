"""Every remediation action against a real API server: the sandbox's simulated cluster, through the official client.

No operator runs here: each test builds an ``ActionContext`` on ``KubernetesActionCluster`` and runs
one action against real Deployments, ReplicaSets, Nodes, Jobs and PodDisruptionBudgets, then reads
the cluster back with the real kubectl. For each action: ``already_done`` is None before and an
outcome after (so a restarted operator would not run it again), a dry run leaves every
resourceVersion as it was, and ``verify`` reaches Succeeded (or Failed where the cluster says so).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import simulated_sandbox
from upkeep.actions import base, overrides, records, registry
from upkeep.controllers import cluster as cluster_
from upkeep.model import resources

pytestmark = pytest.mark.integration
GOOD = "ghcr.io/upkeep-dev/shop:1.0"
MISSING = "nginx:0.0.0-missing"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("actions")
    with simulated_sandbox(folder) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def api(sim: Cluster) -> cluster_.KubernetesActionCluster:
    return cluster_.KubernetesActionCluster(str(sim.kubeconfig))


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    name = f"a-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def context(
    api: cluster_.KubernetesActionCluster,
    ns: str,
    *,
    workload: resources.ObjectRef | None = None,
    affected: tuple[resources.ObjectRef, ...] = (),
    params: dict[str, Any] | None = None,
    dry_run: bool = False,
    key: str | None = None,
) -> base.ActionContext:
    started = now()
    return base.ActionContext(
        cluster=api,
        namespace=ns,
        incident={"metadata": {"name": "inc-1", "namespace": ns}, "spec": {"severity": "SEV3"}},
        workload=workload,
        affected=affected,
        params=params or {},
        key=key or f"run-{uuid.uuid4().hex[:8]}/0",
        now=started,
        dry_run=dry_run,
        timeout=datetime.timedelta(seconds=40),
        started=started,
    )


def deployment(sim: Cluster, ns: str, name: str, *, replicas: int = 2, image: str = GOOD, memory: str = "") -> None:
    container: dict[str, Any] = {"name": "shop", "image": image}
    if memory:
        container["resources"] = {"limits": {"memory": memory}}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))
    rolled_out(sim, ns, name, replicas)


def get(sim: Cluster, ns: str, *what: str) -> Any:
    return sim.kubectl_json("get", "-n", ns, *what)


def rolled_out(sim: Cluster, ns: str, name: str, replicas: int) -> None:
    def done() -> bool:
        found = get(sim, ns, "deployment", name)
        status = found.get("status") or {}
        return bool(
            status.get("observedGeneration", 0) >= found["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == replicas
            and status.get("readyReplicas", 0) == replicas
            and status.get("replicas", 0) == replicas
        )

    eventually(done, timeout=30, message=f"deployment {name} rolled out with {replicas} ready replicas")


def versions(sim: Cluster, ns: str, *kinds: str) -> dict[str, str]:
    """Every object's resourceVersion, by kind/name: what a dry run must leave as it was."""
    found = get(sim, ns, ",".join(kinds))
    return {
        f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for item in found["items"]
    }


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def verified(action: base.Action, ctx: base.ActionContext, *, timeout: float = 30) -> base.Outcome:
    """Ask ``verify`` (with the time now) until it decides; the decision."""

    def decided() -> base.Outcome | None:
        outcome: base.Outcome = run(action.verify(dataclasses.replace(ctx, now=now())))
        return outcome if outcome.phase != "Running" else None

    result: base.Outcome = eventually(decided, timeout=timeout, interval=0.2, message=f"{action.name} verified")
    return result


def pods_of(sim: Cluster, ns: str, app: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(sim, ns, "pods", "-l", f"app={app}")["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def test_rollback_deployment_copies_the_previous_template_back(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "shop")
    sim.kubectl("set", "image", "-n", ns, "deployment/shop", f"shop={MISSING}")
    eventually(
        lambda: (
            get(sim, ns, "deployment", "shop")["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
            == "2"
        ),
        message="revision 2",
    )
    ref = resources.ObjectRef("Deployment", "shop", ns, "apps/v1")
    action = registry.get("rollbackDeployment")

    dry = context(api, ns, workload=ref, dry_run=True)
    before = versions(sim, ns, "deployment", "replicaset")
    assert "to revision 1" in run(action.describe(dry))
    outcome = run(action.run(dry))
    assert outcome.phase == "Succeeded" and outcome.output["toRevision"] == 1
    assert versions(sim, ns, "deployment", "replicaset") == before
    assert run(action.already_done(dry)) is None

    ctx = context(api, ns, workload=ref)
    assert run(action.already_done(ctx)) is None
    outcome = run(action.run(ctx))
    assert outcome.phase == "Succeeded", outcome
    assert outcome.output["fromRevision"] == 2 and outcome.output["toRevision"] == 1
    found = get(sim, ns, "deployment", "shop")
    assert found["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    assert found["metadata"]["annotations"][base.ACTION_KEY_ANNOTATION] == ctx.key
    done = run(action.already_done(ctx))
    assert done is not None and done.phase == "Succeeded"
    generation = get(sim, ns, "deployment", "shop")["metadata"]["generation"]
    assert run(action.run(ctx)).phase == "Succeeded"  # run twice for one key: no second write
    assert get(sim, ns, "deployment", "shop")["metadata"]["generation"] == generation
    assert verified(action, ctx).phase == "Succeeded"
    # As `kubectl rollout undo`: the old ReplicaSet is scaled back up (now revision 3), no new one is made.
    replica_sets = get(sim, ns, "replicaset")["items"]
    assert len(replica_sets) == 2
    back = next(rs for rs in replica_sets if rs["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD)
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    events = get(sim, ns, "events", "--field-selector", "reason=RolledBack")["items"]
    assert [event["involvedObject"]["name"] for event in events] == ["shop"]

    # A second incident's playbook (another key) finds revision 3 healthy: a rollback now would go back to
    # the bad revision 2, so it does nothing and says so.
    rolled_out(sim, ns, "shop", 2)
    held = versions(sim, ns, "deployment", "replicaset")
    again = run(action.run(context(api, ns, workload=ref)))
    assert again.phase == "Succeeded" and "nothing to roll back: revision 3 is healthy" in again.message
    assert versions(sim, ns, "deployment", "replicaset") == held
    assert get(sim, ns, "deployment", "shop")["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD


def test_rollback_without_history_fails_and_says_why(sim: Cluster, api: Any, ns: str) -> None:
    sim.kubectl("create", "deployment", "solo", "-n", ns, f"--image={MISSING}")
    ctx = context(api, ns, workload=resources.ObjectRef("Deployment", "solo", ns, "apps/v1"))
    with pytest.raises(base.ActionFailed, match="no previous revision"):
        run(registry.get("rollbackDeployment").run(ctx))


def test_drain_gives_each_pod_the_grace_period_asked_for(sim: Cluster, api: Any, ns: str) -> None:
    """Pods that ignore SIGTERM and would get 600 s to stop are gone soon: the eviction asked for 1 s."""
    container = {"name": "worker", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 3600"]}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "stubborn", "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "stubborn"}},
            "template": {
                "metadata": {"labels": {"app": "stubborn"}},
                "spec": {"terminationGracePeriodSeconds": 600, "containers": [container]},
            },
        },
    }
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))
    rolled_out(sim, ns, "stubborn", 2)
    node_name = pods_of(sim, ns, "stubborn")[0]["spec"]["nodeName"]
    victims = {pod["metadata"]["name"] for pod in pods_of(sim, ns, "stubborn") if pod["spec"]["nodeName"] == node_name}
    drain = registry.get("drainNode")
    ctx = context(api, ns, workload=resources.ObjectRef("Node", node_name, "", "v1"), params={"gracePeriod": "1s"})
    try:
        assert "each pod given 1 s to stop" in run(drain.describe(ctx))
        outcome = run(drain.run(ctx))
        assert {name.split("/")[1] for name in outcome.output["evicted"]} >= victims
        for pod in get(sim, ns, "pods")["items"]:
            if pod["metadata"]["name"] in victims:  # still stopping: with the grace period the eviction asked for
                assert pod["metadata"]["deletionGracePeriodSeconds"] == 1
        assert verified(drain, ctx, timeout=20).phase == "Succeeded"
    finally:
        sim.kubectl("uncordon", node_name)


def test_rollout_restart_replaces_every_pod(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "web")
    ref = resources.ObjectRef("Deployment", "web", ns, "apps/v1")
    action = registry.get("rolloutRestart")
    before = versions(sim, ns, "deployment", "replicaset", "pods")
    run(action.run(context(api, ns, workload=ref, dry_run=True)))
    assert versions(sim, ns, "deployment", "replicaset", "pods") == before

    old = {pod["metadata"]["uid"] for pod in pods_of(sim, ns, "web")}
    ctx = context(api, ns, workload=ref)
    assert run(action.already_done(ctx)) is None
    assert run(action.run(ctx)).phase == "Succeeded"
    annotations = get(sim, ns, "deployment", "web")["spec"]["template"]["metadata"]["annotations"]
    assert annotations[base.ACTION_KEY_ANNOTATION] == ctx.key and "kubectl.kubernetes.io/restartedAt" in annotations
    assert run(action.already_done(ctx)) is not None
    generation = get(sim, ns, "deployment", "web")["metadata"]["generation"]
    run(action.run(ctx))  # run twice for one key: no second restart
    assert get(sim, ns, "deployment", "web")["metadata"]["generation"] == generation
    assert verified(action, ctx).phase == "Succeeded"
    new = {pod["metadata"]["uid"] for pod in pods_of(sim, ns, "web")}
    assert len(new) == 2 and not new & old


def test_a_change_found_made_after_a_restart_gets_its_event(sim: Cluster, api: Any, ns: str) -> None:
    """The process died between an action's write and its Event: the step resumed after the restart finds the
    change made (``already_done``) and writes the Event then, once, under the name the key gives it."""
    deployment(sim, ns, "web", replicas=1)
    ref = resources.ObjectRef("Deployment", "web", ns, "apps/v1")
    ctx = context(api, ns, workload=ref)
    marks = {base.ACTION_KEY_ANNOTATION: ctx.key, "kubectl.kubernetes.io/restartedAt": "2026-01-31T12:00:00Z"}
    patch = {"spec": {"template": {"metadata": {"annotations": marks}}}}
    sim.kubectl("patch", "deployment", "web", "-n", ns, "--type", "merge", "-p", json.dumps(patch))  # the write
    name = records.event_name(ctx.key)
    assert sim.kubectl("get", "event", name, "-n", ns, check=False).returncode != 0  # ... and no Event

    action = registry.get("rolloutRestart")
    assert run(action.already_done(ctx)) is not None
    event = get(sim, ns, "event", name)
    assert (event["reason"], event["involvedObject"]["name"]) == ("RolloutRestarted", "web")
    assert event["metadata"]["annotations"][base.ACTION_KEY_ANNOTATION] == ctx.key
    run(action.already_done(ctx))  # asked again: the same Event, not a second one
    assert [item["metadata"]["name"] for item in get(sim, ns, "events")["items"] if ctx.key in str(item)] == [name]


def test_scale_within_bounds_and_its_impact(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "api", replicas=1)
    ref = resources.ObjectRef("Deployment", "api", ns, "apps/v1")
    action = registry.get("scale")
    params = {"by": 5, "max": 3}
    before = versions(sim, ns, "deployment")
    assert run(action.describe(context(api, ns, workload=ref, params=params))) == (
        f"Scale Deployment/{ns}/api from 1 to 3 replicas."
    )
    run(action.run(context(api, ns, workload=ref, params=params, dry_run=True)))
    assert versions(sim, ns, "deployment") == before

    ctx = context(api, ns, workload=ref, params=params)
    assert run(action.already_done(ctx)) is None
    outcome = run(action.run(ctx))
    assert outcome.output["from"] == 1 and outcome.output["to"] == 3
    assert run(action.already_done(ctx)) is not None
    assert run(action.run(dataclasses.replace(ctx, params={"by": 1}))).output["to"] == 3  # "by" is not added twice
    assert verified(action, ctx).phase == "Succeeded"
    assert get(sim, ns, "deployment", "api")["status"]["readyReplicas"] == 3

    down = context(api, ns, workload=ref, params={"replicas": 0, "min": 1})
    (found,) = run(registry.impacts("scale", down))
    assert found.as_tuple() == (3, 3, 2)


def test_delete_pod_deletes_the_chosen_pod_once(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "cart")
    victim = pods_of(sim, ns, "cart")[0]
    name, uid = victim["metadata"]["name"], victim["metadata"]["uid"]
    workload = resources.ObjectRef("Deployment", "cart", ns, "apps/v1")
    affected = (resources.ObjectRef("Pod", name, ns, "v1"),)
    action = registry.get("deletePod")

    before = versions(sim, ns, "pods", "events")
    dry = context(api, ns, workload=workload, affected=affected, dry_run=True)
    assert uid in run(action.describe(dry))
    (found,) = run(registry.impacts("deletePod", dry))
    assert found.as_tuple() == (2, 2, 1) and found.workload.name == "cart"
    run(action.run(dry))
    assert versions(sim, ns, "pods", "events") == before

    ctx = context(api, ns, workload=workload, affected=affected)
    assert run(action.already_done(ctx)) is None
    outcome = run(action.run(ctx))
    assert outcome.output["pods"][0]["uid"] == uid
    assert run(action.already_done(ctx)) is not None
    assert verified(action, ctx).phase == "Succeeded"
    assert uid not in {pod["metadata"]["uid"] for pod in pods_of(sim, ns, "cart")}
    # Run again with the same key (a restart that missed already_done): the replacements are left alone.
    survivors = {pod["metadata"]["uid"] for pod in pods_of(sim, ns, "cart")}
    again = run(action.run(ctx))
    assert again.output["deleted"] == 0
    assert {pod["metadata"]["uid"] for pod in pods_of(sim, ns, "cart")} == survivors


def test_patch_a_target_with_the_key(sim: Cluster, api: Any, ns: str) -> None:
    sim.kubectl("create", "configmap", "flags", "-n", ns, "--from-literal=mode=normal")
    target = {"apiVersion": "v1", "kind": "ConfigMap", "name": "flags"}
    params = {"target": target, "patch": {"data": {"mode": "safe"}}}
    action = registry.get("patch")
    before = versions(sim, ns, "configmap")
    run(action.run(context(api, ns, params=params, dry_run=True)))
    assert versions(sim, ns, "configmap") == before

    ctx = context(api, ns, params=params)
    assert run(action.already_done(ctx)) is None
    run(action.run(ctx))
    found = get(sim, ns, "configmap", "flags")
    assert found["data"] == {"mode": "safe"}
    assert found["metadata"]["annotations"][base.ACTION_KEY_ANNOTATION] == ctx.key
    assert run(action.already_done(ctx)) is not None
    assert verified(action, ctx).phase == "Succeeded"
    sim.kubectl("patch", "configmap", "flags", "-n", ns, "--type=merge", "-p", '{"data":{"mode":"normal"}}')
    assert run(action.verify(ctx)).phase == "Failed"


def test_run_job_waits_for_the_result(sim: Cluster, api: Any, ns: str) -> None:
    action = registry.get("runJob")

    def template(script: str) -> dict[str, Any]:
        container = {"name": "task", "image": "busybox:1.36", "command": ["sh", "-c", script]}
        return {
            "metadata": {"name": "rerun"},
            "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [container]}}},
        }

    good = context(api, ns, params={"template": template("exit 0")})
    before = versions(sim, ns, "jobs")
    run(action.run(dataclasses.replace(good, dry_run=True)))
    assert versions(sim, ns, "jobs") == before
    assert run(action.already_done(good)) is None
    name = run(action.run(good)).output["job"]
    assert name.startswith("rerun-")
    assert run(action.run(good)).output["job"] == name  # run twice for one key: the same Job, not a second
    assert get(sim, ns, "job", name)["metadata"]["annotations"][base.ACTION_KEY_ANNOTATION] == good.key
    assert run(action.already_done(good)) is not None
    outcome = verified(action, good)
    assert outcome.phase == "Succeeded" and outcome.output["result"] == "Complete"

    bad = context(api, ns, params={"template": template("exit 3")})
    run(action.run(bad))
    outcome = verified(action, bad)
    assert outcome.phase == "Failed" and outcome.output["result"] == "Failed"
    assert "3" in outcome.message


def test_set_override_holds_a_raised_limit_within_bounds(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "shop", replicas=1, memory="256Mi")
    ref = resources.ObjectRef("Deployment", "shop", ns, "apps/v1")
    path = "spec.template.spec.containers[name=shop].resources.limits.memory"
    params = {"fieldPath": path, "factor": 1.5, "maxFactor": 2, "expiresIn": "24h"}
    action = registry.get("setOverride")
    before = versions(sim, ns, "deployment", "replicaset")
    assert "384Mi" in run(action.describe(context(api, ns, workload=ref, params=params)))
    run(action.run(context(api, ns, workload=ref, params=params, dry_run=True)))
    assert versions(sim, ns, "deployment", "replicaset") == before

    ctx = context(api, ns, workload=ref, params=params)
    assert run(action.already_done(ctx)) is None
    outcome = run(action.run(ctx))
    assert outcome.output["value"] == "384Mi"
    found = get(sim, ns, "deployment", "shop")
    assert found["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "384Mi"
    (entry,) = overrides.overrides_of(found)
    assert entry["fieldPath"] == path and entry["value"] == "384Mi" and entry["declared"] == "256Mi"
    assert entry["key"] == ctx.key and entry["expiresAt"] > ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert run(action.already_done(ctx)) is not None
    held = versions(sim, ns, "deployment")
    assert run(action.run(ctx)).output["value"] == "384Mi"  # run twice for one key: the factor is not applied again
    assert versions(sim, ns, "deployment") == held
    assert verified(action, ctx).phase == "Succeeded"

    # A second OOM kill: 384Mi x 1.5 would be 576Mi, but never more than 2 x the declared 256Mi.
    again = context(api, ns, workload=ref, params=params)
    assert run(action.run(again)).output["value"] == "512Mi"
    (entry,) = overrides.overrides_of(get(sim, ns, "deployment", "shop"))
    assert entry["declared"] == "256Mi" and entry["key"] == again.key

    fix = registry.get("proposeFix")
    proposal = run(fix.run(context(api, ns, workload=ref, params={"fieldPath": path, "factor": 1.5})))
    assert proposal.output["value"] == "384Mi" and proposal.output["declared"] == "256Mi"


def test_cordon_and_drain_honour_a_disruption_budget(sim: Cluster, api: Any, ns: str) -> None:
    deployment(sim, ns, "db", replicas=3)
    node_name = pods_of(sim, ns, "db")[0]["spec"]["nodeName"]
    node = resources.ObjectRef("Node", node_name, "", "v1")
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "db-budget", "namespace": ns},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "db"}}},
    }
    sim.kubectl("apply", "-f", "-", input=json.dumps(budget))
    eventually(
        lambda: get(sim, ns, "pdb", "db-budget").get("status", {}).get("currentHealthy") == 3, message="pdb status"
    )
    drain = registry.get("drainNode")
    try:
        node_version = sim.kubectl_json("get", "node", node_name)["metadata"]["resourceVersion"]
        pods_before = versions(sim, ns, "pods", "pdb")
        dry = context(api, ns, workload=node, params={"timeout": "1s"}, dry_run=True)
        (found,) = run(registry.impacts("drainNode", dry))
        assert found.workload.name == "db" and found.ready == 3 and found.removing >= 1
        outcome = run(drain.run(dry))
        assert "db-budget" in outcome.message
        assert sim.kubectl_json("get", "node", node_name)["metadata"]["resourceVersion"] == node_version
        assert versions(sim, ns, "pods", "pdb") == pods_before

        ctx = context(api, ns, workload=node, params={"timeout": "2s"})
        assert run(drain.already_done(ctx)) is None
        with pytest.raises(base.ActionFailed, match=f"PodDisruptionBudget {ns}/db-budget") as refused:
            run(drain.run(ctx))
        assert "needs 3 healthy pods" in str(refused.value)
        assert sim.kubectl_json("get", "node", node_name)["spec"]["unschedulable"] is True
        assert run(drain.already_done(ctx)) is None  # cordoned, but pods are left: not done

        sim.kubectl("delete", "pdb", "db-budget", "-n", ns)
        later = dataclasses.replace(ctx, started=now(), now=now())
        outcome = run(drain.run(later))
        assert outcome.phase == "Succeeded" and outcome.output["evicted"]
        assert verified(drain, later).phase == "Succeeded"
        assert run(drain.already_done(later)) is not None
        assert all(pod["spec"].get("nodeName") != node_name for pod in pods_of(sim, ns, "db"))
    finally:
        sim.kubectl("uncordon", node_name)

    cordon = registry.get("cordonNode")
    ctx = context(api, ns, workload=node)
    try:
        assert run(cordon.already_done(ctx)) is None
        run(cordon.run(ctx))
        assert sim.kubectl_json("get", "node", node_name)["spec"]["unschedulable"] is True
        assert run(cordon.already_done(ctx)) is not None
        assert run(cordon.verify(ctx)).phase == "Succeeded"
    finally:
        sim.kubectl("uncordon", node_name)
