"""The real kubectl against the cluster: each test asserts on what kubectl printed."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from support.cluster import Cluster, eventually, kubectl_binary

pytestmark = pytest.mark.integration
CRDS = Path(__file__).resolve().parents[2] / "crds"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          ports: [{containerPort: 80}]
          env: [{name: A, value: "1"}]
"""


def test_api_resources_lists_builtin_kinds(cluster: Cluster) -> None:
    out = cluster.kubectl("api-resources").stdout
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "deploy" in lines["deployments"]
    assert "apps/v1" in lines["deployments"]
    assert "Deployment" in lines["deployments"]
    assert "po" in lines["pods"]
    assert "false" in lines["namespaces"]


def test_create_get_and_output_formats(cluster: Cluster, namespace: str) -> None:
    assert (
        "configmap/settings created"
        in cluster.kubectl("create", "configmap", "settings", "-n", namespace, "--from-literal=colour=blue").stdout
    )
    cluster.kubectl("create", "secret", "generic", "token", "-n", namespace, "--from-literal=value=s3cret")
    as_yaml = cluster.kubectl("get", "configmap", "settings", "-n", namespace, "-o", "yaml").stdout
    assert "colour: blue" in as_yaml
    assert "resourceVersion:" in as_yaml
    data = cluster.kubectl_json("get", "secret", "token", "-n", namespace)
    assert data["type"] == "Opaque"
    assert data["data"]["value"] == "czNjcmV0"
    jsonpath = cluster.kubectl("get", "configmap", "settings", "-n", namespace, "-o", "jsonpath={.data.colour}").stdout
    assert jsonpath == "blue"
    table = cluster.kubectl("get", "configmaps", "-n", namespace).stdout
    header, *rows = table.splitlines()
    assert header.split() == ["NAME", "DATA", "AGE"]
    assert any(row.split()[:2] == ["settings", "1"] for row in rows)


def test_missing_object_says_not_found(cluster: Cluster, namespace: str) -> None:
    done = cluster.kubectl("get", "configmap", "nope", "-n", namespace, check=False)
    assert done.returncode == 1
    assert 'Error from server (NotFound): configmaps "nope" not found' in done.stderr


def test_apply_reapply_and_server_side(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    assert "deployment.apps/web created" in cluster.kubectl("apply", "-n", namespace, "-f", str(manifest)).stdout
    assert "deployment.apps/web unchanged" in cluster.kubectl("apply", "-n", namespace, "-f", str(manifest)).stdout
    manifest.write_text(DEPLOYMENT.replace("replicas: 2", "replicas: 3").replace('value: "1"', 'value: "2"'))
    assert "deployment.apps/web configured" in cluster.kubectl("apply", "-n", namespace, "-f", str(manifest)).stdout
    live = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert live["spec"]["replicas"] == 3
    assert live["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "2"}]
    assert live["metadata"]["generation"] == 2
    server_side = tmp_path / "cm.yaml"
    server_side.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n")
    out = cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", str(server_side)).stdout
    assert "configmap/ssa serverside-applied" in out
    shown = cluster.kubectl_json("get", "configmap", "ssa", "-n", namespace, "--show-managed-fields")
    managers = [entry["manager"] for entry in shown["metadata"]["managedFields"]]
    assert "kubectl" in managers


def test_patch_label_annotate_and_scale(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    cluster.kubectl("apply", "-n", namespace, "-f", str(manifest))
    cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"metadata":{"labels":{"tier":"back"}}}',
    )
    cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":4}]',
    )
    cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.28"}]}}}}',
    )
    live = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    assert live["metadata"]["labels"]["tier"] == "back"
    assert live["spec"]["replicas"] == 4
    container = live["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx:1.28"
    assert container["ports"] == [{"containerPort": 80}] or container["ports"][0]["containerPort"] == 80
    failed = cluster.kubectl(
        "patch",
        "deployment",
        "web",
        "-n",
        namespace,
        "--type",
        "json",
        "-p",
        '[{"op":"test","path":"/spec/replicas","value":9}]',
        check=False,
    )
    assert failed.returncode != 0
    assert "The request is invalid: the server rejected our request due to an error in our request" in failed.stderr
    assert "labeled" in cluster.kubectl("label", "deployment", "web", "-n", namespace, "owner=shop").stdout
    assert "annotated" in cluster.kubectl("annotate", "deployment", "web", "-n", namespace, "note=hi").stdout
    assert "scaled" in cluster.kubectl("scale", "deployment", "web", "-n", namespace, "--replicas=1").stdout
    selected = cluster.kubectl("get", "deployments", "-n", namespace, "-l", "owner=shop", "-o", "name").stdout
    assert selected.strip() == "deployment.apps/web"
    assert cluster.kubectl("get", "deployments", "-n", namespace, "-l", "owner=other", "-o", "name").stdout == ""
    by_field = cluster.kubectl(
        "get", "deployments", "-n", namespace, "--field-selector", "metadata.name=web", "-o", "name"
    ).stdout
    assert by_field.strip() == "deployment.apps/web"
    assert cluster.kubectl_json("get", "deployment", "web", "-n", namespace)["spec"]["replicas"] == 1


def test_delete_wait_and_foreground_cascade(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "configmap", "owner", "-n", namespace)
    owner_uid = cluster.kubectl_json("get", "configmap", "owner", "-n", namespace)["metadata"]["uid"]
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid, "blockOwnerDeletion": True}
            ],
        },
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(dependent))
    out = cluster.kubectl("delete", "configmap", "owner", "-n", namespace, "--cascade=foreground", "--wait").stdout
    assert 'configmap "owner" deleted' in out
    assert cluster.kubectl("get", "configmap", "dependent", "-n", namespace, check=False).returncode == 1


def test_finalizers_hold_deletion_until_removed(cluster: Cluster, namespace: str) -> None:
    held = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(held))
    cluster.kubectl("delete", "configmap", "held", "-n", namespace, "--wait=false")
    live = cluster.kubectl_json("get", "configmap", "held", "-n", namespace)
    assert live["metadata"]["deletionTimestamp"]
    waiter = subprocess.Popen(
        [kubectl_binary(), "wait", "--for=delete", "configmap/held", "-n", namespace, "--timeout=20s"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cluster.kubectl(
        "patch", "configmap", "held", "-n", namespace, "--type", "merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    _, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0, err
    assert cluster.kubectl("get", "configmap", "held", "-n", namespace, check=False).returncode == 1


def test_wait_for_condition_and_jsonpath_and_explain(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(CRDS / "incidents.upkeep.dev.yaml"))
    out = cluster.kubectl("wait", "--for=condition=Established", "crd/incidents.upkeep.dev", "--timeout=20s").stdout
    assert "condition met" in out
    out = cluster.kubectl(
        "wait", "--for=jsonpath={.status.acceptedNames.kind}=Incident", "crd/incidents.upkeep.dev", "--timeout=20s"
    ).stdout
    assert "condition met" in out
    explained = eventually(
        lambda: cluster.kubectl("explain", "incident.spec.severity", check=False), timeout=20, message="kubectl explain"
    ).stdout
    assert "KIND:" in explained and "Incident" in explained
    assert "SEV1" in explained


def test_custom_resources_are_validated_and_printed(cluster: Cluster, namespace: str) -> None:
    for crd in sorted(CRDS.glob("*.yaml")):
        cluster.kubectl("apply", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", "crd/incidents.upkeep.dev", "--timeout=20s")
    incident = textwrap.dedent("""\
        apiVersion: upkeep.dev/v1alpha1
        kind: Incident
        metadata: {name: shop-crash}
        spec:
          severity: SEV2
          service: shop
          signal: {type: CrashLoopBackOff}
        """)
    eventually(
        lambda: cluster.kubectl("apply", "-n", namespace, "-f", "-", input=incident, check=False).returncode == 0,
        timeout=20,
        message="apply of an Incident",
    )
    table = cluster.kubectl("get", "incidents", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header[:3] == ["NAME", "SEVERITY", "PHASE"] or "SEVERITY" in header
    assert "SEV2" in table
    bad = cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        check=False,
        input=incident.replace("SEV2", "SEV9").replace("shop-crash", "bad"),
    )
    assert bad.returncode != 0
    assert "spec.severity" in bad.stderr
    assert "SEV9" in bad.stderr
    listed = cluster.kubectl("get", "upkeep", "-n", namespace, "-o", "name").stdout
    assert "incident.upkeep.dev/shop-crash" in listed


def test_auth_can_i(cluster: Cluster) -> None:
    assert cluster.kubectl("auth", "can-i", "get", "pods").stdout.strip() == "yes"


def test_watch_prints_changes(cluster: Cluster, namespace: str) -> None:
    watcher = subprocess.Popen(
        [kubectl_binary(), "get", "configmaps", "-n", namespace, "-w", "--request-timeout=20s"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cluster.kubectl("create", "configmap", "watched", "-n", namespace, "--from-literal=a=b")
        assert watcher.stdout is not None
        seen = ""
        for _ in range(10):
            line = watcher.stdout.readline()
            seen += line
            if "watched" in line:
                break
        assert "watched" in seen
    finally:
        watcher.kill()
        watcher.communicate()


def test_describe_shows_the_object_and_its_events(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(DEPLOYMENT)
    cluster.kubectl("apply", "-n", namespace, "-f", str(manifest))
    uid = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)["metadata"]["uid"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "web.1"},
        "type": "Normal",
        "reason": "ScalingReplicaSet",
        "message": "Scaled up replica set web-1 to 2",
        "involvedObject": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "web",
            "namespace": namespace,
            "uid": uid,
        },
        "source": {"component": "deployment-controller"},
        "count": 1,
        "firstTimestamp": "2026-11-21T10:00:00Z",
        "lastTimestamp": "2026-11-21T10:00:00Z",
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(event))
    out = cluster.kubectl("describe", "deployment", "web", "-n", namespace).stdout
    assert "Name:" in out and "web" in out
    assert "Replicas:" in out and "2 desired" in out
    assert "nginx:1.27" in out
    assert "ScalingReplicaSet" in out
    assert "Scaled up replica set web-1 to 2" in out


def test_wide_output_and_what_the_sandbox_cannot_do(cluster: Cluster, namespace: str) -> None:
    if cluster.sandbox is None:
        pytest.skip("a real cluster runs containers")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lone"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "main", "image": "nginx:1.27"}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    header = cluster.kubectl("get", "pods", "-n", namespace, "-o", "wide").stdout.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "NODE" in header and "IP" in header
    refused = cluster.kubectl("exec", "lone", "-n", namespace, "--", "true", check=False)
    assert refused.returncode != 0
    assert "the sandbox runs no containers" in refused.stderr
