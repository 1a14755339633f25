"""`upkeep playbookrun approve|list` with the real CLI against the session cluster: it approves only a run that waits.

The runs are written by hand, as the operator would write them: the PlaybookRun's spec with
kubectl apply, its status.phase with kubectl patch --subresource=status. No operator runs, so
nothing but the CLI writes to them; every refusal is checked to have written nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from typing import Any

import pytest
import yaml

from support.cluster import Cluster
from support.operator import install_crds

pytestmark = pytest.mark.integration
INCIDENT = "shop-crashloop-8e3447ff"


@pytest.fixture(autouse=True)
def crds(cluster: Cluster) -> None:
    install_crds(cluster)


def upkeep(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `upkeep` command in a process of its own, pointed at the cluster's kubeconfig."""
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        timeout=120,
        check=False,
    )


def apply(cluster: Cluster, body: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def playbook(cluster: Cluster, namespace: str, name: str, mode: str) -> None:
    apply(
        cluster,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Playbook",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "mode": mode,
                "match": {"signalTypes": ["CrashLoopBackOff"]},
                "steps": [{"name": "roll-back", "action": "rollbackDeployment"}],
            },
        },
    )


def run(cluster: Cluster, namespace: str, playbook_name: str, phase: str) -> str:
    """A PlaybookRun of ``playbook_name`` in ``phase``, as the operator would have written it; its name."""
    name = f"{INCIDENT}-{playbook_name}-1"
    apply(
        cluster,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "PlaybookRun",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"playbookRef": {"name": playbook_name}, "incidentRef": {"name": INCIDENT}, "attempt": 1},
        },
    )
    status: dict[str, Any] = {"phase": phase}
    if phase == "Pending":
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "Unknown",
                "reason": "AwaitingApproval",
                "message": "The run waits for approval (`upkeep playbookrun approve`).",
                "lastTransitionTime": "2026-01-31T12:00:00Z",
            }
        ]
    cluster.kubectl(
        "patch",
        "playbookrun",
        name,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": status}),
    )
    return name


def get(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "playbookrun", name, "-n", namespace)
    return found


def managers(body: dict[str, Any]) -> set[str]:
    return {str(entry.get("manager")) for entry in body["metadata"].get("managedFields") or []}


def kubeconfig_user(cluster: Cluster) -> str:
    config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
    [context] = [item for item in config["contexts"] if item["name"] == config["current-context"]]
    return str(context["context"]["user"])


def test_approve_sets_spec_approval_on_a_run_that_waits(cluster: Cluster, namespace: str) -> None:
    playbook(cluster, namespace, "crashloop-rollback", "RequireApproval")
    name = run(cluster, namespace, "crashloop-rollback", "Pending")
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)

    approved = upkeep(
        cluster, "playbookrun", "approve", name, "-n", namespace, "--by", "alice", "--note", "the 1.3 release"
    )

    assert approved.returncode == 0, approved.stderr
    assert f"playbookrun/{name} approved by alice" in approved.stdout
    body = get(cluster, namespace, name)
    approval = body["spec"]["approval"]
    assert (approval["approvedBy"], approval["note"]) == ("alice", "the 1.3 release")
    at = datetime.datetime.fromisoformat(approval["at"].replace("Z", "+00:00"))
    assert before <= at <= datetime.datetime.now(datetime.UTC)
    managed = cluster.kubectl_json("get", "playbookrun", name, "-n", namespace, "--show-managed-fields")
    assert "upkeep-cli" in {
        entry["manager"] for entry in managed["metadata"]["managedFields"] if "f:approval" in str(entry)
    }
    # The status is the operator's: the CLI left it alone.
    assert body["status"]["phase"] == "Pending"

    # Again: already approved, nothing written.
    again = upkeep(cluster, "playbookrun", "approve", name, "-n", namespace, "--by", "bob")
    assert again.returncode == 0, again.stderr
    assert "already approved (by alice" in again.stdout
    assert get(cluster, namespace, name)["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]

    listed = upkeep(cluster, "playbookrun", "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    [header, row] = listed.stdout.splitlines()
    assert header.split() == ["NAME", "PLAYBOOK", "INCIDENT", "ATTEMPT", "PHASE", "APPROVAL", "AGE"]
    assert row.split()[:6] == [name, "crashloop-rollback", INCIDENT, "1", "Pending", "alice"]


def test_without_by_the_kubeconfig_user_approves_and_the_list_shows_who_waits(cluster: Cluster, namespace: str) -> None:
    playbook(cluster, namespace, "crashloop-rollback", "RequireApproval")
    name = run(cluster, namespace, "crashloop-rollback", "Pending")

    listed = upkeep(cluster, "playbookrun", "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[5] == "waiting"

    approved = upkeep(cluster, "playbookrun", "approve", name, "-n", namespace)
    assert approved.returncode == 0, approved.stderr
    approval = get(cluster, namespace, name)["spec"]["approval"]
    assert approval["approvedBy"] == kubeconfig_user(cluster)
    assert "note" not in approval


def test_a_run_that_does_not_wait_for_approval_is_refused_with_exit_1_and_nothing_written(
    cluster: Cluster, namespace: str
) -> None:
    playbook(cluster, namespace, "crashloop-rollback", "RequireApproval")
    playbook(cluster, namespace, "image-pull", "Automatic")
    finished = run(cluster, namespace, "crashloop-rollback", "Succeeded")
    automatic = run(cluster, namespace, "image-pull", "Pending")
    before = {name: get(cluster, namespace, name) for name in (finished, automatic)}

    refused = upkeep(cluster, "playbookrun", "approve", finished, "-n", namespace, "--by", "alice")
    assert refused.returncode == 1
    assert "status.phase is Succeeded, not Pending" in refused.stderr
    assert "nothing was changed" in refused.stderr

    not_needed = upkeep(cluster, "playbookrun", "approve", automatic, "-n", namespace, "--by", "alice")
    assert not_needed.returncode == 1
    assert "spec.mode of playbook/image-pull is Automatic, not RequireApproval" in not_needed.stderr

    for name, body in before.items():
        after = get(cluster, namespace, name)
        assert after["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]
        assert "approval" not in after["spec"]
        assert "upkeep-cli" not in managers(after)

    missing = upkeep(cluster, "playbookrun", "approve", "no-such-run", "-n", namespace)
    assert missing.returncode == 1
    assert 'playbookrun "no-such-run" not found' in missing.stderr


def test_a_run_whose_playbook_is_gone_is_refused_naming_the_reference(cluster: Cluster, namespace: str) -> None:
    name = run(cluster, namespace, "deleted-playbook", "Pending")

    refused = upkeep(cluster, "playbookrun", "approve", name, "-n", namespace)

    assert refused.returncode == 1
    assert "spec.playbookRef: Playbook 'deleted-playbook' not found" in refused.stderr
    assert "approval" not in get(cluster, namespace, name)["spec"]


def test_dry_run_writes_nothing_and_wait_without_an_operator_exits_3(cluster: Cluster, namespace: str) -> None:
    playbook(cluster, namespace, "crashloop-rollback", "RequireApproval")
    name = run(cluster, namespace, "crashloop-rollback", "Pending")
    version = get(cluster, namespace, name)["metadata"]["resourceVersion"]

    dry = upkeep(cluster, "playbookrun", "approve", name, "-n", namespace, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout
    assert get(cluster, namespace, name)["metadata"]["resourceVersion"] == version

    waited = upkeep(cluster, "playbookrun", "approve", name, "-n", namespace, "--wait", "--timeout", "1")
    assert waited.returncode == 3, waited.stdout + waited.stderr
    assert f"is `upkeep run` watching namespace {namespace}" in waited.stderr
    # The approval is written all the same, for an operator to act on when one watches.
    assert get(cluster, namespace, name)["spec"]["approval"]["approvedBy"]


def test_list_of_an_empty_namespace_says_so(cluster: Cluster, namespace: str) -> None:
    listed = upkeep(cluster, "playbookrun", "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == f"No playbook runs in namespace {namespace}."
