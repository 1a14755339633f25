"""The operator runs with exactly the rights of manifests/rbac.yaml: detection, a remediation and a Release's sync
all work as the ServiceAccount upkeep-system/upkeep, with no request refused; and those rights stop where they
should.

The sandbox authenticates the ServiceAccount by a token of its token file and authorizes it with the real RBAC
objects the manifests create (ClusterRoles, an aggregated one, ClusterRoleBindings to the ServiceAccount).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.cluster import Cluster, eventually
from support.gitrepos import WorkRepo, serve
from support.operator import running_operator, simulated_sandbox
from support.workloads import image_pull_playbook, quick_policy

pytestmark = pytest.mark.integration
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
ACCOUNT = "system:serviceaccount:upkeep-system:upkeep"
TOKEN = "upkeep-sa-" + uuid.uuid4().hex
GOOD = "ghcr.io/upkeep-dev/shop:1.0"
MISSING = "nginx:0.0.0-missing"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.environ.get("KUBECONFIG"):
        pytest.skip("the ServiceAccount's token exists in the sandbox's token file only")
    folder = tmp_path_factory.mktemp("operator-rbac")
    tokens = folder / "tokens.csv"
    tokens.write_text(f"{TOKEN},{ACCOUNT},upkeep-sa-uid\n", encoding="utf-8")
    with simulated_sandbox(folder, token_file=tokens) as cluster:
        cluster.kubectl("apply", "-f", str(MANIFESTS / "rbac.yaml"))
        yield cluster


@pytest.fixture(scope="module")
def operator_identity(sim: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """The same cluster through a kubeconfig of the ServiceAccount."""
    config = yaml.safe_load(sim.kubeconfig.read_text())
    config["users"][0]["user"] = {"token": TOKEN}
    path = tmp_path_factory.mktemp("operator-identity") / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return Cluster(path, sim.sandbox)


def apply(sim: Cluster, body: dict[str, Any], namespace: str) -> None:
    sim.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def test_the_service_account_may_do_its_work_and_no_more(operator_identity: Cluster) -> None:
    def can(*args: str) -> bool:
        return operator_identity.kubectl("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    assert can("patch", "deployments", "-n", "shop")
    assert can("create", "pods", "--subresource=eviction", "-n", "shop")
    assert can("update", "incidents.upkeep.dev", "--subresource=status", "-n", "shop")
    assert can("create", "configmaps", "-n", "shop")  # through the aggregated upkeep-apply
    assert not can("create", "clusterrolebindings")
    assert not can("delete", "nodes")
    assert not can("create", "customresourcedefinitions")  # a Release that applies CRDs needs a rule added
    assert can("delete", "playbooks.upkeep.dev", "-n", "shop")  # its own kinds, all verbs


def test_a_release_syncs_and_a_bad_rollout_is_rolled_back_as_the_service_account(
    sim: Cluster, operator_identity: Cluster, tmp_path: Path
) -> None:
    ns = f"rbac-{uuid.uuid4().hex[:6]}"
    sim.kubectl("create", "namespace", ns)
    sim.kubectl("label", "namespace", ns, f"upkeep-test={ns}")
    quick_policy(sim, ns)
    image_pull_playbook(sim, ns)
    labels = {"app": "shop"}
    shop = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "shop", "image": GOOD}]}},
        },
    }
    apply(sim, shop, ns)
    sim.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=60s")
    repo = WorkRepo.create(tmp_path / "app")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "live"}}
    repo.commit({"deploy/settings.yaml": json.dumps(config)}, "settings")
    with serve({"app": repo.path}) as server:
        source = {"url": server.url("app"), "ref": {"branch": "main"}, "interval": "1s"}
        apply(
            sim,
            {"apiVersion": "upkeep.dev/v1alpha1", "kind": "GitSource", "metadata": {"name": "app"}, "spec": source},
            ns,
        )
        release = {"sourceRef": {"name": "app"}, "path": "./deploy", "interval": "1m"}
        apply(
            sim,
            {"apiVersion": "upkeep.dev/v1alpha1", "kind": "Release", "metadata": {"name": "app"}, "spec": release},
            ns,
        )
        flags = ("--git-cache", str(tmp_path / "git"))
        with running_operator(operator_identity, [ns], tmp_path / "operator.log", *flags) as operator:
            try:
                eventually(
                    lambda: sim.kubectl("get", "configmap", "settings", "-n", ns, check=False).returncode == 0,
                    timeout=60,
                    message="the Release applied its ConfigMap",
                )
                sim.kubectl("set", "image", "deployment/shop", f"shop={MISSING}", "-n", ns)

                def rolled_back() -> bool:
                    found = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
                    return bool(found) and found[0].get("status", {}).get("phase") == "Succeeded"

                eventually(rolled_back, timeout=90, interval=0.5, message="the rollback run succeeded")
            finally:
                log = operator.log()
    live = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD
    refused = [line for line in log.splitlines() if "Forbidden" in line or " 403" in line or "forbidden" in line]
    assert refused == [], "\n".join(refused[:20])
    sim.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    sim.kubectl("delete", "supportpolicy", f"policy-{ns}", "--wait=false", check=False)
