"""Release sync with the Direct strategy, end to end: git commits applied to the simulated sandbox by `upkeep run`.

Real parts only: repositories made with the git binary and served over smart HTTP on 127.0.0.1, the sandbox's
API server with its simulated kubelets and controllers (so Deployments become healthy), the real kubectl, and
the operator as a process of its own, whose GitSource controller fetches every second.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.gitrepos import GitServer, WorkRepo, serve
from support.operator import OperatorProcess, gitops_operator, module_cluster, running_operator
from support.workloads import namespace

pytestmark = pytest.mark.integration

PREFIX = f"rel-{uuid.uuid4().hex[:6]}"
"""Namespaces of this module start with it: the operator watches ``PREFIX-*``."""
WAIT = 30.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with module_cluster(tmp_path_factory.mktemp("release-sync")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def operator(sim: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with gitops_operator(sim, PREFIX, tmp_path_factory.mktemp("release-operator")) as run:
        yield run


@pytest.fixture
def ns(sim: Cluster, operator: OperatorProcess) -> Iterator[str]:
    with namespace(sim, PREFIX, labels={}) as name:
        yield name


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    return WorkRepo.create(tmp_path / "app")


# Manifests


def configmap(name: str, data: dict[str, str], labels: dict[str, str] | None = None) -> str:
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
    if labels:
        body["metadata"]["labels"] = labels
    return json.dumps(body, indent=2)


def deployment(image: str, name: str = "web") -> str:
    labels = {"app": name}
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 2
  selector:
    matchLabels: {json.dumps(labels)}
  template:
    metadata:
      labels: {json.dumps(labels)}
    spec:
      containers:
        - name: {name}
          image: {image}
          ports:
            - containerPort: 80
"""


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 80
"""


def apply_json(sim: Cluster, body: dict[str, Any]) -> None:
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))


def gitsource(sim: Cluster, ns: str, server: GitServer, name: str = "app") -> None:
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"url": server.url("app"), "ref": {"branch": "main"}, "interval": "1s"},
        },
    )


def release(sim: Cluster, ns: str, *, prune: bool = True, path: str = "./deploy") -> None:
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "sourceRef": {"name": "app"},
                "path": path,
                "interval": "1m",
                "timeout": "2m",
                "prune": {"enabled": prune},
            },
        },
    )


def publish(sim: Cluster, ns: str, repo: WorkRepo) -> str:
    """The revision of the repository's head, once the operator's GitSource controller has fetched it."""
    sha = repo.head()
    revision = f"main@sha1:{sha}"
    eventually(
        lambda: get(sim, "gitsource", ns, "app").get("status", {}).get("artifact", {}).get("revision") == revision,
        timeout=WAIT,
        message=f"the GitSource at {sha[:7]}",
    )
    return revision


# Reading the cluster


def get(sim: Cluster, kind: str, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = sim.kubectl_json("get", kind, name, "-n", ns)
    return found


def exists(sim: Cluster, kind: str, ns: str, name: str) -> bool:
    return sim.kubectl("get", kind, name, "-n", ns, check=False).returncode == 0


def conditions(sim: Cluster, kind: str, ns: str, name: str) -> dict[str, dict[str, Any]]:
    items = get(sim, kind, ns, name).get("status", {}).get("conditions") or []
    return {item["type"]: item for item in items}


def release_status(sim: Cluster, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = get(sim, "release", ns, "web").get("status") or {}
    return status


def ready(sim: Cluster, ns: str) -> dict[str, Any]:
    return conditions(sim, "release", ns, "web").get("Ready") or {}


def wait_applied(sim: Cluster, ns: str, revision: str, *, phase: str = "Healthy") -> dict[str, Any]:
    """The Release's status once it has applied ``revision`` and reached ``phase``."""

    def check() -> dict[str, Any] | None:
        status = release_status(sim, ns)
        return status if status.get("revision") == revision and status.get("phase") == phase else None

    return eventually(check, timeout=WAIT, message=f"the Release {phase} at {revision}")


def wait_refused(sim: Cluster, ns: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        condition = ready(sim, ns)
        return condition if condition.get("status") == "False" and condition.get("reason") == reason else None

    return eventually(check, timeout=WAIT, message=f"Ready=False {reason}")


def versions(sim: Cluster, ns: str, *names: str) -> dict[str, str]:
    return {name: get(sim, "configmap", ns, name)["metadata"]["resourceVersion"] for name in names}


def events(sim: Cluster, ns: str, reason: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sim.kubectl_json("get", "events", "-n", ns)["items"]
    return [item for item in items if item.get("reason") == reason and item["involvedObject"]["kind"] == "Release"]


@contextlib.contextmanager
def served(repo: WorkRepo) -> Iterator[GitServer]:
    with serve({"app": repo.path}) as server:
        yield server


# The tests


def test_a_commit_is_applied_with_its_inventory_and_revision_then_the_next_commit(
    sim: Cluster, ns: str, repo: WorkRepo
) -> None:
    repo.commit(
        {
            "deploy/deployment.yaml": deployment("nginx:1.27"),
            "deploy/service.yaml": SERVICE,
            "deploy/config.yaml": configmap("web-config", {"greeting": "hello"}),
        },
        "first",
    )
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns)
        first = publish(sim, ns, repo)
        status = wait_applied(sim, ns, first)

        assert ready(sim, ns)["status"] == "True"
        assert status["stableRevision"] == first
        assert status["desiredRevision"] == first
        assert status["lastAppliedAt"]
        assert sorted((item["kind"], item["name"], item.get("namespace")) for item in status["inventory"]) == [
            ("ConfigMap", "web-config", ns),
            ("Deployment", "web", ns),
            ("Service", "web", ns),
        ]
        config = get(sim, "configmap", ns, "web-config")
        assert config["data"] == {"greeting": "hello"}
        assert config["metadata"]["labels"]["upkeep.dev/release"] == f"{ns}.web"
        assert config["metadata"]["annotations"]["upkeep.dev/release"] == f"{ns}/web"
        live = get(sim, "deployment", ns, "web")
        assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
        assert get(sim, "service", ns, "web")["spec"]["ports"][0]["port"] == 80
        shown = sim.kubectl_json("get", "deployment", "web", "-n", ns, "--show-managed-fields")
        managers = {entry["manager"] for entry in shown["metadata"]["managedFields"]}
        assert "upkeep" in managers
        assert events(sim, ns, "Applied")

        repo.commit(
            {
                "deploy/deployment.yaml": deployment("nginx:1.28"),
                "deploy/config.yaml": configmap("web-config", {"greeting": "bonjour"}),
            },
            "second",
        )
        second = publish(sim, ns, repo)
        wait_applied(sim, ns, second)

    assert get(sim, "configmap", ns, "web-config")["data"] == {"greeting": "bonjour"}
    assert get(sim, "deployment", ns, "web")["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.28"


@pytest.mark.parametrize(
    ("case", "files", "reason", "words"),
    [
        (
            "bad-yaml",
            {"deploy/broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken\n"},
            "RenderFailed",
            ("deploy/broken.yaml", "not valid YAML"),
        ),
        (
            "schema-invalid",
            {"deploy/invalid.yaml": deployment("nginx:1.27", "other").replace("replicas: 2", "replicas: two")},
            "InvalidManifests",
            ("deploy/invalid.yaml", "Deployment other", "spec.replicas"),
        ),
        (
            "dry-run-failure",
            {
                "deploy/elsewhere.yaml": configmap("elsewhere", {"a": "b"}).replace(
                    '"name"', '"namespace": "no-such-ns", "name"'
                )
            },
            "DryRunFailed",
            ("deploy/elsewhere.yaml", "ConfigMap no-such-ns/elsewhere", "not found"),
        ),
    ],
    ids=["bad-yaml", "schema-invalid", "dry-run-failure"],
)
def test_a_revision_with_one_bad_object_is_refused_whole_and_the_previous_one_stays(
    sim: Cluster, ns: str, repo: WorkRepo, case: str, files: dict[str, str], reason: str, words: tuple[str, ...]
) -> None:
    repo.commit(
        {
            "deploy/a.yaml": configmap("a", {"value": "1"}),
            "deploy/b.yaml": configmap("b", {"value": "1"}),
        },
        "good",
    )
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns)
        good = publish(sim, ns, repo)
        wait_applied(sim, ns, good)
        before = versions(sim, ns, "a", "b")

        repo.commit(
            {
                "deploy/a.yaml": configmap("a", {"value": "2"}),
                "deploy/c.yaml": configmap("c", {"value": "new"}),
                **files,
            },
            case,
        )
        bad = publish(sim, ns, repo)
        condition = wait_refused(sim, ns, reason)

    for word in words:
        assert word in condition["message"]
    status = release_status(sim, ns)
    assert status["revision"] == good
    assert status["desiredRevision"] == bad
    assert sorted(item["name"] for item in status["inventory"]) == ["a", "b"]
    assert versions(sim, ns, "a", "b") == before
    assert get(sim, "configmap", ns, "a")["data"] == {"value": "1"}
    assert not exists(sim, "configmap", ns, "c")
    assert [event["message"] for event in events(sim, ns, reason)]


def test_with_prune_a_removed_manifest_is_deleted_unless_its_object_opts_out(
    sim: Cluster, ns: str, repo: WorkRepo
) -> None:
    repo.commit(
        {
            "deploy/keep.yaml": configmap("keep", {"v": "1"}),
            "deploy/gone.yaml": configmap("gone", {"v": "1"}),
            "deploy/held.yaml": configmap("held", {"v": "1"}),
        },
        "three",
    )
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns, prune=True)
        first = publish(sim, ns, repo)
        wait_applied(sim, ns, first)
        sim.kubectl("label", "configmap", "held", "-n", ns, "upkeep.dev/prune=disabled")

        repo.commit({"deploy/gone.yaml": None, "deploy/held.yaml": None}, "remove two")
        second = publish(sim, ns, repo)
        status = wait_applied(sim, ns, second)

    eventually(lambda: not exists(sim, "configmap", ns, "gone"), timeout=WAIT, message="gone deleted")
    assert exists(sim, "configmap", ns, "held")
    assert exists(sim, "configmap", ns, "keep")
    assert [item["name"] for item in status["inventory"]] == ["keep"]
    assert [item["name"] for item in status["orphaned"]] == ["held"]


def test_without_prune_a_removed_manifest_is_kept_and_reported_as_orphaned(
    sim: Cluster, ns: str, repo: WorkRepo
) -> None:
    repo.commit({"deploy/keep.yaml": configmap("keep", {"v": "1"}), "deploy/old.yaml": configmap("old", {"v": "1"})})
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns, prune=False)
        first = publish(sim, ns, repo)
        wait_applied(sim, ns, first)

        repo.commit({"deploy/old.yaml": None}, "remove old")
        second = publish(sim, ns, repo)
        status = wait_applied(sim, ns, second)

    assert exists(sim, "configmap", ns, "old")
    assert status["orphaned"] == [{"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": "old"}]
    assert [item["name"] for item in status["inventory"]] == ["keep"]
    warned = events(sim, ns, "OrphanedObjects")
    assert warned and "ConfigMap" in warned[0]["message"] and "old" in warned[0]["message"]


def test_an_unreachable_remote_leaves_the_release_on_its_revision_with_source_not_ready(
    sim: Cluster, ns: str, repo: WorkRepo
) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", {"v": "1"})})
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns)
        first = publish(sim, ns, repo)
        wait_applied(sim, ns, first)
    # The server is gone: the next fetch finds nothing listening.
    repo.commit({"deploy/a.yaml": configmap("a", {"v": "2"})}, "unseen")
    condition = wait_refused(sim, ns, "SourceNotReady")

    assert f"GitSource {ns}/app" in condition["message"]
    assert "Unreachable" in condition["message"]
    status = release_status(sim, ns)
    assert status["revision"] == first
    assert get(sim, "configmap", ns, "a")["data"] == {"v": "1"}


def test_a_set_that_creates_its_namespace_and_a_crd_is_applied_in_order(sim: Cluster, ns: str, repo: WorkRepo) -> None:
    """The namespace and the CRD do not exist before the apply, so what lives in them is checked by schema only."""
    apps, group = f"{ns}-apps", f"{ns.replace('-', '')}.example.test"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                        }
                    },
                }
            ],
        },
    }
    widget = {
        "apiVersion": f"{group}/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": apps},
        "spec": {"size": 3},
    }
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": apps}}
    repo.commit(
        {
            # Named so that a plain file order would apply the widget first.
            "deploy/a-widget.yaml": json.dumps(widget),
            "deploy/b-config.yaml": configmap("in-apps", {"v": "1"}).replace(
                '"name"', f'"namespace": "{apps}", "name"'
            ),
            "deploy/c-crd.yaml": json.dumps(crd),
            "deploy/d-namespace.yaml": json.dumps(namespace),
        }
    )
    try:
        with served(repo) as server:
            gitsource(sim, ns, server)
            release(sim, ns)
            first = publish(sim, ns, repo)
            status = wait_applied(sim, ns, first)

        assert [item["kind"] for item in status["inventory"]] == [
            "Namespace",
            "CustomResourceDefinition",
            "ConfigMap",
            "Widget",
        ]
        assert get(sim, f"widgets.{group}", apps, "w")["spec"] == {"size": 3}
        assert exists(sim, "configmap", apps, "in-apps")
    finally:
        sim.kubectl("delete", "namespace", apps, "--wait=false", check=False)
        sim.kubectl("delete", "crd", f"widgets.{group}", "--wait=false", check=False)


def test_in_dry_run_the_operator_reports_what_a_sync_would_do_and_applies_nothing(
    sim: Cluster, repo: WorkRepo, tmp_path: Path
) -> None:
    ns = f"dry-{uuid.uuid4().hex[:6]}"  # outside PREFIX-*: only the dry-run operator below watches it
    sim.kubectl("create", "namespace", ns)
    repo.commit({"deploy/a.yaml": configmap("a", {"v": "1"})})
    try:
        with (
            served(repo) as server,
            running_operator(sim, [ns], tmp_path / "operator.log", "--dry-run", "--git-cache", str(tmp_path / "git")),
        ):
            gitsource(sim, ns, server)
            release(sim, ns)
            publish(sim, ns, repo)
            [reported] = eventually(lambda: events(sim, ns, "DryRun"), timeout=WAIT, message="the DryRun Event")

        assert f"create ConfigMap {ns}/a" in reported["message"]
        assert not exists(sim, "configmap", ns, "a")
        assert "revision" not in release_status(sim, ns)
    finally:
        sim.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_a_revision_not_healthy_within_the_timeout_is_degraded_and_the_stable_revision_stays(
    sim: Cluster, ns: str, repo: WorkRepo
) -> None:
    repo.commit({"deploy/deployment.yaml": deployment("nginx:1.27")}, "good")
    with served(repo) as server:
        gitsource(sim, ns, server)
        release(sim, ns)
        sim.kubectl("patch", "release", "web", "-n", ns, "--type=merge", "-p", json.dumps({"spec": {"timeout": "3s"}}))
        good = publish(sim, ns, repo)
        wait_applied(sim, ns, good)

        repo.commit({"deploy/deployment.yaml": deployment("nginx:0.0.0-missing")}, "an image that does not exist")
        bad = publish(sim, ns, repo)
        status = wait_applied(sim, ns, bad, phase="Degraded")

    condition = ready(sim, ns)
    assert (condition["status"], condition["reason"]) == ("False", "Degraded")
    assert "did not become healthy within 3s" in condition["message"]
    assert f"Deployment/{ns}/web" in condition["message"]
    assert status["stableRevision"] == good
