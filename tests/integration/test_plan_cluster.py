"""`upkeep plan --cluster`: the head of a real git repository compared with the live objects of a cluster.

The simulated sandbox (or $KUBECONFIG's cluster) holds what kubectl applied, with everything the API
server and the workload controllers add (status, uid, defaults); the plan reports only what the head
declares differently, the objects the cluster lacks, and, with --base, the objects the head drops.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import gitrepos
from support.cluster import Cluster
from support.operator import free_port, simulated_sandbox

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]

RELEASE = """\
apiVersion: upkeep.dev/v1alpha1
kind: Release
metadata:
  name: shop
  namespace: {ns}
spec:
  sourceRef:
    name: repo
  path: ./apps/shop
  targetNamespace: {ns}
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: {ns}
spec:
  replicas: 1
  selector:
    matchLabels: {{app: shop}}
  template:
    metadata:
      labels: {{app: shop}}
    spec:
      containers:
        - name: shop
          image: {image}
          resources:
            limits:
              memory: 128Mi
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello
"""
"""No namespace: it goes to the Release's targetNamespace, where the plan looks for it."""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: {ns}
spec:
  selector: {{app: shop}}
  ports:
    - name: http
      port: 80
"""

OLD_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: retired
  namespace: {ns}
data:
  a: b
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    configured = os.environ.get("KUBECONFIG")
    if configured:
        yield Cluster(Path(configured))
        return
    with simulated_sandbox(tmp_path_factory.mktemp("plan-cluster")) as sandbox:
        yield sandbox


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    name = f"plan-{uuid.uuid4().hex[:8]}"
    sim.kubectl("create", "namespace", name)
    yield name
    sim.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def repo(tmp_path: Path, ns: str) -> gitrepos.WorkRepo:
    """v1: what the cluster runs (nginx:1.27, a ConfigMap, a retired ConfigMap); main: a new image and a Service."""
    repo = gitrepos.WorkRepo.create(tmp_path / "repo")
    repo.commit(
        {
            "releases/shop.yaml": RELEASE.format(ns=ns),
            "apps/shop/deployment.yaml": DEPLOYMENT.format(ns=ns, image="nginx:1.27"),
            "apps/shop/configmap.yaml": CONFIGMAP,
            "apps/shop/retired.yaml": OLD_CONFIGMAP.format(ns=ns),
        },
        "v1",
    )
    repo.tag("v1")
    repo.commit(
        {
            "apps/shop/deployment.yaml": DEPLOYMENT.format(ns=ns, image="nginx:1.28"),
            "apps/shop/service.yaml": SERVICE.format(ns=ns),
            "apps/shop/retired.yaml": None,
        },
        "main",
    )
    return repo


def apply_revision(sim: Cluster, repo: gitrepos.WorkRepo, ref: str, ns: str) -> None:
    """kubectl apply every manifest under apps/shop at ``ref``, as a deployment from git would."""
    for name in repo.git("ls-tree", "--name-only", f"{ref}:apps/shop").splitlines():
        text = repo.git("show", f"{ref}:apps/shop/{name}")
        sim.kubectl("apply", "-n", ns, "-f", "-", input=text)


def context_of(sim: Cluster) -> str:
    return sim.kubectl("config", "current-context").stdout.strip()


def upkeep_plan(target: Cluster | Path, *args: str) -> subprocess.CompletedProcess[str]:
    kubeconfig = target.kubeconfig if isinstance(target, Cluster) else target
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "plan", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        timeout=120,
    )


def test_the_plan_shows_what_head_changes_in_the_live_cluster(sim: Cluster, repo: gitrepos.WorkRepo, ns: str) -> None:
    apply_revision(sim, repo, "v1", ns)
    # What a real API server defaults in a container, set here so that any cluster has it; git declares none of it.
    defaults = {"name": "shop", "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"}
    patch = {"spec": {"template": {"spec": {"containers": [defaults]}}}}
    sim.kubectl("patch", "deployment", "shop", "-n", ns, "--type=strategic", "-p", json.dumps(patch))
    live = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
    assert live["metadata"]["uid"]  # the live object carries what the server added; the plan must not show it
    assert live["spec"]["template"]["spec"]["containers"][0]["terminationMessagePath"] == "/dev/termination-log"

    done = upkeep_plan(sim, "--repo", str(repo.path), "--head", "main", "--cluster")

    assert done.returncode == 3, done.stderr
    markdown = done.stdout
    assert f"against the live cluster (context `{context_of(sim)}`)" in markdown
    assert f"- **changed** Deployment.apps {ns}/shop\n" in markdown
    assert "`spec.template.spec.containers[name=shop].image`: `nginx:1.27` → `nginx:1.28`" in markdown
    assert f"- **added** Service {ns}/shop" in markdown
    assert "`image-changed`" in markdown
    assert "ConfigMap" not in markdown  # the same in git and in the cluster, though git names no namespace
    assert "retired" not in markdown  # without --base, what head dropped is not known
    for server_side in ("status", "uid", "resourceVersion", "terminationMessagePath", "imagePullPolicy", "generation"):
        assert server_side not in markdown
    assert "**2 objects change.**" in markdown


def test_the_json_plan_against_the_cluster(sim: Cluster, repo: gitrepos.WorkRepo, ns: str) -> None:
    apply_revision(sim, repo, "v1", ns)

    done = upkeep_plan(sim, "--repo", str(repo.path), "--head", "main", "--cluster", "-o", "json")

    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert out["base"] == {"cluster": True, "context": context_of(sim)}
    assert out["head"] == {"ref": "main", "sha": repo.head()}
    assert (out["changed"], out["valid"], out["exitCode"]) == (True, True, 3)
    (shop,) = out["paths"]
    assert shop["releases"] == [{"namespace": ns, "name": "shop", "file": "releases/shop.yaml"}]
    assert shop["objects"] == [
        {
            "group": "apps",
            "kind": "Deployment",
            "namespace": ns,
            "name": "shop",
            "change": "changed",
            "fields": [
                {
                    "path": "spec.template.spec.containers[name=shop].image",
                    "change": "changed",
                    "old": "nginx:1.27",
                    "new": "nginx:1.28",
                }
            ],
        },
        {"group": "", "kind": "Service", "namespace": ns, "name": "shop", "change": "added"},
    ]
    assert [risk["code"] for risk in out["risks"]] == ["image-changed"]


def test_a_cluster_that_matches_head_is_no_change(sim: Cluster, repo: gitrepos.WorkRepo, ns: str) -> None:
    apply_revision(sim, repo, "main", ns)  # the Service now has the server's defaults: clusterIP, protocol...

    done = upkeep_plan(sim, "--repo", str(repo.path), "--head", "main", "--cluster")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "**No changes.**" in done.stdout


def test_with_base_an_object_head_drops_that_is_still_live_is_removed(
    sim: Cluster, repo: gitrepos.WorkRepo, ns: str
) -> None:
    apply_revision(sim, repo, "v1", ns)

    done = upkeep_plan(sim, "--repo", str(repo.path), "--base", "v1", "--head", "main", "--cluster", "-o", "json")

    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert out["base"] == {"cluster": True, "context": context_of(sim), "ref": "v1", "sha": repo.git("rev-parse", "v1")}
    changes = {(item["kind"], item["name"]): item["change"] for item in out["paths"][0]["objects"]}
    assert changes == {
        ("ConfigMap", "retired"): "removed",
        ("Deployment", "shop"): "changed",
        ("Service", "shop"): "added",
    }


def test_an_unreachable_cluster_is_a_usage_error(sim: Cluster, repo: gitrepos.WorkRepo, tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "gone", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "someone", "user": {"token": "not-a-real-token-0123456789"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "someone"}}],
                "current-context": "gone",
            }
        ),
        encoding="utf-8",
    )

    done = upkeep_plan(kubeconfig, "--repo", str(repo.path), "--head", "main", "--cluster")
    unknown = upkeep_plan(sim, "--repo", str(repo.path), "--head", "main", "--cluster", "--context", "nope")
    no_base = upkeep_plan(sim, "--repo", str(repo.path), "--head", "main")

    assert done.returncode == 2, done.stdout + done.stderr
    assert "no answer from the cluster of context 'gone'" in done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "not-a-real-token" not in done.stderr
    assert done.stdout == ""
    assert unknown.returncode == 2
    assert "no context 'nope'" in unknown.stderr
    assert no_base.returncode == 2
    assert "--base is required" in no_base.stderr
