"""Drift, self-heal and overrides end to end: a Release applied from git, live objects edited behind its back.

Real parts only: a repository made with the git binary and served over smart HTTP on 127.0.0.1, the
sandbox's API server (or $KUBECONFIG), the real kubectl (``kubectl edit`` with an EDITOR script, and
``kubectl patch`` as another field manager), and the operator as a process of its own.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually, kubectl_binary
from support.gitrepos import GitServer, WorkRepo, serve
from support.operator import OperatorProcess, gitops_operator, module_cluster
from support.workloads import namespace
from upkeep.engine import fieldpaths, quantities

pytestmark = pytest.mark.integration

PREFIX = f"drift-{uuid.uuid4().hex[:6]}"
"""Namespaces of this module start with it: the operator watches ``PREFIX-*``."""
WAIT = 40.0
MEMORY = "spec.template.spec.containers[name=web].resources.limits.memory"
IMAGE = "spec.template.spec.containers[name=web].image"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          resources:
            limits:
              memory: 256Mi
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: live
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with module_cluster(tmp_path_factory.mktemp("release-drift")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def operator(sim: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with gitops_operator(sim, PREFIX, tmp_path_factory.mktemp("drift-operator")) as run:
        yield run


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GitServer]:
    repo = WorkRepo.create(tmp_path_factory.mktemp("drift-repo") / "app")
    repo.commit({"deploy/deployment.yaml": DEPLOYMENT, "deploy/configmap.yaml": CONFIGMAP}, "web and its settings")
    with serve({"app": repo.path}) as server:
        yield server


@pytest.fixture
def ns(sim: Cluster, operator: OperatorProcess) -> Iterator[str]:
    with namespace(sim, PREFIX, labels={}) as name:
        yield name


# Helpers


def apply_json(sim: Cluster, body: dict[str, Any]) -> None:
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))


def start_release(sim: Cluster, ns: str, server: GitServer, *, self_heal: bool) -> None:
    """A GitSource of the served repository and a Release of its ``deploy`` path, checked every second."""
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {"url": server.url("app"), "ref": {"branch": "main"}, "interval": "1s"},
        },
    )
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "sourceRef": {"name": "app"},
                "path": "./deploy",
                "interval": "1s",
                "timeout": "2m",
                "selfHeal": self_heal,
            },
        },
    )
    eventually(
        lambda: release_status(sim, ns).get("phase") == "Healthy" and not release_status(sim, ns).get("drift"),
        timeout=WAIT,
        message="the Release applied and Healthy",
    )


def get(sim: Cluster, kind: str, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = sim.kubectl_json("get", kind, name, "-n", ns)
    return found


def release_status(sim: Cluster, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = get(sim, "release", ns, "web").get("status") or {}
    return status


def drift_of(sim: Cluster, ns: str, kind: str) -> dict[str, Any] | None:
    """The ``status.drift`` item of the object of ``kind``, if any."""
    for item in release_status(sim, ns).get("drift") or []:
        if item.get("object", {}).get("kind") == kind:
            found: dict[str, Any] = item
            return found
    return None


def events(sim: Cluster, ns: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "events", "-n", ns)["items"]
    return [item for item in items if item.get("reason") == reason and item["involvedObject"]["kind"] == "Release"]


def memory(sim: Cluster, ns: str) -> Decimal:
    return quantities.amount(fieldpaths.get(get(sim, "deployment", ns, "web"), MEMORY))


def kubectl_edit(sim: Cluster, folder: Path, kind: str, ns: str, name: str, sed: str) -> None:
    """``kubectl edit`` as a person would run it, with an EDITOR that applies ``sed`` to the file."""
    editor = folder / "editor.sh"
    editor.write_text(f"#!/bin/sh\nexec sed -i -e '{sed}' \"$1\"\n", encoding="utf-8")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig), "EDITOR": str(editor), "KUBE_EDITOR": str(editor)}
    done = subprocess.run(
        [kubectl_binary(), "edit", kind, name, "-n", ns],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"kubectl edit failed: {done.stdout}\n{done.stderr}"


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# The tests


def test_an_edit_is_reported_as_drift_and_reverted_once_self_heal_is_on(
    sim: Cluster, ns: str, served: GitServer, tmp_path: Path
) -> None:
    start_release(sim, ns, served, self_heal=False)

    kubectl_edit(sim, tmp_path, "configmap", ns, "settings", "s/^  mode: live$/  mode: edited/")
    sim.kubectl(
        "patch", "deployment", "web", "-n", ns, "--field-manager=someone", "--type=json", "-p",
        json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "nginx:1.26"}]),
    )  # fmt: skip

    def both_reported() -> bool:
        config, workload = drift_of(sim, ns, "ConfigMap"), drift_of(sim, ns, "Deployment")
        return bool(config and workload and config["fields"] == ["data.mode"] and workload["fields"] == [IMAGE])

    eventually(both_reported, timeout=WAIT, message="status.drift naming both objects and their fields")
    assert drift_of(sim, ns, "ConfigMap") == {
        "object": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": "settings"},
        "fields": ["data.mode"],
        "overridden": [],
    }
    detected = eventually(lambda: events(sim, ns, "DriftDetected"), timeout=WAIT, message="a DriftDetected Event")
    message = " ".join(event["message"] for event in detected)
    assert "Deployment" in message and IMAGE in message and "selfHeal is off" in message
    assert get(sim, "configmap", ns, "settings")["data"]["mode"] == "edited"  # reported, not reverted

    sim.kubectl("patch", "release", "web", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"selfHeal": True}}))

    eventually(
        lambda: (
            get(sim, "configmap", ns, "settings")["data"]["mode"] == "live"
            and fieldpaths.get(get(sim, "deployment", ns, "web"), IMAGE) == "nginx:1.27"
        ),
        timeout=WAIT,
        message="git's values back",
    )
    eventually(lambda: not release_status(sim, ns).get("drift"), timeout=WAIT, message="no drift left")


def test_self_heal_reverts_an_edit_by_itself(sim: Cluster, ns: str, served: GitServer, tmp_path: Path) -> None:
    start_release(sim, ns, served, self_heal=True)

    kubectl_edit(sim, tmp_path, "configmap", ns, "settings", "s/^  mode: live$/  mode: edited/")

    eventually(
        lambda: get(sim, "configmap", ns, "settings")["data"]["mode"] == "live",
        timeout=WAIT,
        message="the edit reverted",
    )
    healed = eventually(lambda: events(sim, ns, "SelfHealed"), timeout=WAIT, message="a SelfHealed Event")
    assert any("ConfigMap" in event["message"] for event in healed)


def test_an_active_override_is_kept_until_it_expires(sim: Cluster, ns: str, served: GitServer) -> None:
    start_release(sim, ns, served, self_heal=True)
    # Whole seconds, as written in expiresAt: the operator may act on it up to a second before now() + 15 s.
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=15)).replace(microsecond=0)
    override = {
        "id": "pbr-web-oom/raise-memory",
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"},
        "fieldPath": MEMORY,
        "value": "512Mi",
        "reason": "setOverride by PlaybookRun pbr-web-oom",
        "expiresAt": _timestamp(expires),
    }
    sim.kubectl(
        "patch", "release", "web", "-n", ns, "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": {"overrides": [override]}}),
    )  # fmt: skip
    sim.kubectl(
        "patch", "deployment", "web", "-n", ns, "--field-manager=remediation", "--type=json", "-p",
        json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/resources/limits/memory",
                     "value": "512Mi"}]),
    )  # fmt: skip

    def held() -> bool:
        item = drift_of(sim, ns, "Deployment")
        return bool(item and item["overridden"] == [MEMORY] and item["fields"] == [])

    eventually(held, timeout=WAIT, message="the memory limit reported as overridden")
    assert datetime.datetime.now(datetime.UTC) < expires, "the override expired before the test could see it held"
    assert memory(sim, ns) == quantities.amount("512Mi")  # self-heal is on, and kept it

    eventually(lambda: memory(sim, ns) == quantities.amount("256Mi"), timeout=WAIT, message="git's memory limit back")
    eventually(lambda: not release_status(sim, ns).get("overrides"), timeout=WAIT, message="the override dropped")
    expired = eventually(lambda: events(sim, ns, "OverrideExpired"), timeout=WAIT, message="an OverrideExpired Event")
    assert "pbr-web-oom/raise-memory" in expired[0]["message"]
    assert datetime.datetime.now(datetime.UTC) >= expires
