"""The sandbox's journal of write requests, as the real kubectl makes them: verb, resource, object, user, field
manager and dry run, no-op updates included; reads leave no entry."""

from __future__ import annotations

import json

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.integration


def test_every_write_request_of_kubectl_is_journaled_and_reads_are_not(cluster: Cluster, namespace: str) -> None:
    if cluster.sandbox is None:
        pytest.skip("the journal is the sandbox's")
    before = len(cluster.sandbox.writes())
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(config))
    cluster.kubectl("get", "configmap", "cfg", "-n", namespace)
    patch = json.dumps({"data": {"a": "2"}})
    for _ in range(2):  # the second patch changes nothing, and is still a request the client made
        cluster.kubectl("patch", "configmap", "cfg", "-n", namespace, "--type", "merge", "-p", patch)
    cluster.kubectl("delete", "configmap", "cfg", "-n", namespace, "--dry-run=server")
    cluster.kubectl("delete", "configmap", "cfg", "-n", namespace)
    mine = [item for item in cluster.sandbox.writes()[before:] if item.namespace == namespace]
    assert [(item.verb, item.resource, item.name, item.dry_run) for item in mine] == [
        ("create", "configmaps", "cfg", False),
        ("patch", "configmaps", "cfg", False),
        ("patch", "configmaps", "cfg", False),
        ("delete", "configmaps", "cfg", True),
        ("delete", "configmaps", "cfg", False),
    ]
    # kubectl names its field manager per command; a delete has none, so the User-Agent gives "kubectl"
    assert [item.manager for item in mine] == ["kubectl-create", "kubectl-patch", "kubectl-patch", "kubectl", "kubectl"]
    assert {item.user for item in mine} == {"upkeep-sandbox-admin"}
    assert mine[1].rv > mine[0].rv and mine[2].rv == mine[1].rv  # the no-op patch stored nothing
