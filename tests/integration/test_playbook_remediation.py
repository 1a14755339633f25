"""Remediation end to end on the simulated sandbox: a bad-image rollout is rolled back by a Playbook, and a
DryRun Playbook records what it would do while the cluster stays as it was.

Real parts only: the sandbox API server with its simulated kubelets and controllers, the real kubectl, and
`upkeep run` as a process of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import running_operator, simulated_sandbox
from support.workloads import image_pull_playbook, namespace, quick_policy

pytestmark = pytest.mark.integration
GOOD = "ghcr.io/upkeep-dev/shop:1.0"
MISSING = "nginx:0.0.0-missing"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("playbook-remediation")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "pb") as name:
        yield name
    sim.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


def apply(sim: Cluster, body: dict[str, Any], namespace: str | None = None) -> None:
    where = ["-n", namespace] if namespace else []
    sim.kubectl("apply", *where, "-f", "-", input=json.dumps(body))


def policy(sim: Cluster, ns: str) -> None:
    """Auto-resolve 8 s after the signal went: the run, not the auto-resolve, mitigates the incident first."""
    quick_policy(sim, ns)


def playbook(sim: Cluster, ns: str, mode: str = "Automatic") -> None:
    image_pull_playbook(sim, ns, mode=mode)


def deployment(sim: Cluster, ns: str) -> None:
    labels = {"app": "shop"}
    apply(
        sim,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop", "labels": labels},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "shop", "image": GOOD}]}},
            },
        },
        ns,
    )
    sim.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=60s")


def runs(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
    return items


def incidents(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "incidents", "-n", ns)["items"]
    return items


def image(sim: Cluster, ns: str) -> str:
    found = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def test_a_bad_image_rollout_is_rolled_back_and_the_incident_mitigated_then_resolved(
    sim: Cluster, ns: str, tmp_path: Path
) -> None:
    policy(sim, ns)
    playbook(sim, ns)
    deployment(sim, ns)
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:
        sim.kubectl("set", "image", "deployment/shop", f"shop={MISSING}", "-n", ns)

        def finished() -> dict[str, Any] | None:
            found = runs(sim, ns)
            done = [run for run in found if run.get("status", {}).get("phase") in ("Succeeded", "Failed")]
            return done[0] if done else None

        run = eventually(finished, timeout=120, interval=0.5, message="the PlaybookRun ended")
        resolved = eventually(
            lambda: [item for item in incidents(sim, ns) if item.get("status", {}).get("phase") == "Resolved"],
            timeout=60,
            interval=0.5,
            message="the incident resolved",
        )
        log = operator.log()
    status = run["status"]
    assert status["phase"] == "Succeeded", (status, log[-4000:])
    assert image(sim, ns) == GOOD
    [step] = status["steps"]
    assert step["name"] == "roll-back" and step["action"] == "rollbackDeployment" and step["phase"] == "Succeeded"
    assert step["idempotencyKey"] == f"{run['metadata']['uid']}/0"
    assert step["startedAt"] and step["finishedAt"] and step["outcome"]
    assert status["verification"]["phase"] == "Succeeded"
    succeeded = {item["type"]: item for item in status["conditions"]}["Succeeded"]
    assert succeeded["status"] == "True"
    incident = resolved[0]
    assert run["spec"]["incidentRef"]["name"] == incident["metadata"]["name"]
    assert incident["status"]["playbookRuns"] == [run["metadata"]["name"]]
    moves = [(entry.get("to"), entry.get("by")) for entry in incident["status"]["timeline"]]
    phases = [to for to, _ in moves]
    assert ("Mitigating", "playbook/image-pull") in moves and ("Mitigated", "playbook/image-pull") in moves
    assert phases.index("Mitigating") < phases.index("Mitigated") < phases.index("Resolved")
    counted = sim.kubectl_json("get", "playbook", "image-pull", "-n", ns)["status"]
    assert counted["runs"]["total"] == 1 and counted["lastRun"]["name"] == run["metadata"]["name"]
    if sim.sandbox is not None:
        # The Incident's clock and the run's driver carry no Kopf finalizer: no write of Kopf's own to either
        # (two per object, on the path from the failure to the action; controllers/daemons.py).
        kinds = ("incidents.upkeep.dev", "playbookruns.upkeep.dev")
        written = [write for write in sim.sandbox.writes() if write.namespace == ns and write.resource in kinds]
        assert {write.resource for write in written} == set(kinds)
        assert not [(w.verb, w.resource, w.manager) for w in written if "kopf" in w.manager.lower()]


def test_a_dry_run_playbook_records_what_it_would_do_and_changes_nothing(sim: Cluster, ns: str, tmp_path: Path) -> None:
    policy(sim, ns)
    playbook(sim, ns, mode="DryRun")
    deployment(sim, ns)
    sim.kubectl("set", "image", "deployment/shop", f"shop={MISSING}", "-n", ns)

    def versions() -> dict[str, str]:
        found = sim.kubectl_json("get", "deployments,replicasets", "-n", ns)["items"]
        return {f"{item['kind']}/{item['metadata']['name']}": item["metadata"]["resourceVersion"] for item in found}

    seen: list[dict[str, str]] = []

    def settled() -> dict[str, str] | None:
        """The bad rollout has stopped changing objects: two looks a second apart agree."""
        now = versions()
        same = bool(seen) and seen[-1] == now
        seen.append(now)
        return now if same else None

    before = eventually(settled, timeout=60, interval=1.0, message="the bad rollout settled")
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:

        def ended() -> dict[str, Any] | None:
            found = [run for run in runs(sim, ns) if run.get("status", {}).get("phase") == "DryRun"]
            return found[0] if found else None

        run = eventually(ended, timeout=60, interval=0.3, message="the dry run ended")
        log = operator.log()
    assert versions() == before, log[-3000:]
    assert image(sim, ns) == MISSING
    assert run["spec"]["dryRun"] is True
    [step] = run["status"]["steps"]
    assert step["phase"] == "DryRun" and "roll" in step["output"].lower(), step
    incident = incidents(sim, ns)[0]
    assert incident["status"]["phase"] in ("Triggered", "Acknowledged")
    assert "playbook/image-pull" not in {entry.get("by") for entry in incident["status"]["timeline"]}


def test_the_oom_playbook_raises_the_killed_containers_limit_and_records_the_override_on_the_release(
    sim: Cluster, ns: str, tmp_path: Path
) -> None:
    policy(sim, ns)
    sim.kubectl("apply", "-n", ns, "-f", str(Path(__file__).resolve().parents[2] / "playbooks" / "oom.yaml"))
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "shop"},
            "spec": {"sourceRef": {"name": "shop"}, "workloadRef": {"kind": "Deployment", "name": "shop"}},
        },
        ns,
    )
    labels = {"app": "shop"}
    container = {
        "name": "shop",
        "image": "ghcr.io/upkeep-dev/shop:1.2-oom",
        "resources": {"limits": {"memory": "256Mi"}},
    }
    apply(
        sim,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop", "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        ns,
    )
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:

        def recorded() -> list[dict[str, Any]]:
            found = sim.kubectl_json("get", "release", "shop", "-n", ns).get("status", {}).get("overrides") or []
            return list(found)

        [override] = eventually(recorded, timeout=90, interval=0.5, message="the override recorded on the Release")
        log = operator.log()
    limits = sim.kubectl_json("get", "deployment", "shop", "-n", ns)["spec"]["template"]["spec"]["containers"][0]
    assert limits["resources"]["limits"]["memory"] == "384Mi", log[-3000:]  # 256Mi x 1.5, the library's factor
    assert override["value"] == "384Mi"
    assert override["fieldPath"] == "spec.template.spec.containers[name=shop].resources.limits.memory"
    assert override["target"]["name"] == "shop" and override["incident"] and override["playbookRun"]
    [run] = runs(sim, ns)
    assert override["id"] == run["status"]["steps"][0]["idempotencyKey"]
    assert override["expiresAt"] > run["status"]["steps"][0]["startedAt"]
