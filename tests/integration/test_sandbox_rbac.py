"""RBAC: a user gets exactly what her Role grants, and a 403 worded as a real cluster words it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from support.cluster import ALICE_TOKEN, Cluster

pytestmark = pytest.mark.integration


@pytest.fixture
def alice(cluster: Cluster, namespace: str, tmp_path: Path) -> Cluster:
    if cluster.sandbox is None:
        pytest.skip("the user alice exists in the sandbox's token file only")
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "pod-getter"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "alice"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-getter"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}],
    }
    for obj in (role, binding):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = ALICE_TOKEN
    path = tmp_path / "alice.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return Cluster(path)


def test_a_role_that_allows_get_pods_only(alice: Cluster, namespace: str) -> None:
    denied = alice.kubectl("get", "secrets", "-n", namespace, check=False)
    assert denied.returncode == 1
    assert (
        f'Error from server (Forbidden): secrets is forbidden: User "alice" cannot list resource "secrets" '
        f'in API group "" in the namespace "{namespace}"'
    ) in denied.stderr
    missing = alice.kubectl("get", "pod", "nothing", "-n", namespace, check=False)
    assert 'pods "nothing" not found' in missing.stderr
    listing = alice.kubectl("get", "pods", "-n", namespace, check=False)
    assert 'cannot list resource "pods"' in listing.stderr
    elsewhere = alice.kubectl("get", "pod", "nothing", "-n", "default", check=False)
    assert 'cannot get resource "pods" in API group "" in the namespace "default"' in elsewhere.stderr


def test_can_i_answers_from_the_bindings(alice: Cluster, namespace: str) -> None:
    assert alice.kubectl("auth", "can-i", "get", "pods", "-n", namespace).stdout.strip() == "yes"
    refused = alice.kubectl("auth", "can-i", "list", "secrets", "-n", namespace, check=False)
    assert refused.returncode == 1
    assert refused.stdout.strip() == "no"
    whoami = alice.kubectl("auth", "whoami", "-o", "json")
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert "system:authenticated" in info["groups"]


def test_discovery_is_open_to_every_authenticated_user(alice: Cluster) -> None:
    assert "pods" in alice.kubectl("api-resources", "-o", "name").stdout


def test_the_admin_may_do_everything(cluster: Cluster, namespace: str) -> None:
    assert cluster.kubectl("auth", "can-i", "delete", "secrets", "-n", namespace).stdout.strip() == "yes"


def test_service_account_tokens(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    if cluster.sandbox is None:
        pytest.skip("uses the sandbox's kubeconfig layout")
    cluster.kubectl("create", "serviceaccount", "operator", "-n", namespace)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "operator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": namespace}],
    }
    for obj in (role, binding):
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj))
    token = cluster.kubectl("create", "token", "operator", "-n", namespace).stdout.strip()
    assert token.count(".") == 2
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"][0]["user"]["token"] = token
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    operator = Cluster(path)
    assert operator.kubectl("get", "configmaps", "-n", namespace).returncode == 0
    denied = operator.kubectl("get", "secrets", "-n", namespace, check=False)
    assert (
        f'User "system:serviceaccount:{namespace}:operator" cannot list resource "secrets" in API group "" '
        f'in the namespace "{namespace}"'
    ) in denied.stderr
    cluster.kubectl("delete", "serviceaccount", "operator", "-n", namespace)
    gone = operator.kubectl("get", "configmaps", "-n", namespace, check=False)
    assert gone.returncode == 1
    assert "Unauthorized" in gone.stderr or "provide credentials" in gone.stderr
