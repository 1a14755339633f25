"""`upkeep plan` on a real two-commit git repository: markdown, JSON, exit codes, an invalid head.

Real git (the binary, with the machine's configuration kept out) and real kubectl (its
built-in kustomize renders the kustomization variant); no cluster is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

RELEASES = """\
apiVersion: upkeep.dev/v1alpha1
kind: Release
metadata:
  name: shop
  namespace: shop
spec:
  sourceRef:
    name: repo
  path: ./apps/shop
---
apiVersion: upkeep.dev/v1alpha1
kind: Release
metadata:
  name: web
  namespace: shop
spec:
  sourceRef:
    name: repo
  path: ./apps/web
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  namespace: shop
spec:
  replicas: 2
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
              memory: {memory}
"""

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: shop
  namespace: shop
spec:
  selector: {app: shop}
  ports:
    - name: http
      port: 80
"""

CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shop-settings
  namespace: shop
data:
  greeting: {greeting}
  currency: EUR
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
namePrefix: web-
resources:
  - configmap.yaml
"""

WEB_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: {color}
"""


class Repository:
    """A git repository in a temp dir, committed to with the git binary and no outside configuration."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
        }
        root.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str) -> str:
        for name, text in files.items():
            path = self.root / name
            if text is None:
                self.git("rm", "-q", name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            self.git("add", name)
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def upkeep_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "plan", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    """Commit 1: shop (Deployment, Service, ConfigMap) + web (kustomization); commit 2 changes both."""
    repo = Repository(tmp_path / "repo", tmp_path)
    repo.commit(
        {
            "releases/shop.yaml": RELEASES,
            "apps/shop/deployment.yaml": DEPLOYMENT.format(image="nginx:1.27", memory="256Mi"),
            "apps/shop/service.yaml": SERVICE,
            "apps/shop/configmap.yaml": CONFIGMAP.format(greeting="hello"),
            "apps/web/kustomization.yaml": KUSTOMIZATION,
            "apps/web/configmap.yaml": WEB_CONFIGMAP.format(color="blue"),
        },
        "first",
    )
    repo.git("tag", "v1")
    repo.commit(
        {
            "apps/shop/deployment.yaml": DEPLOYMENT.format(image="nginx:1.28", memory="128Mi"),
            "apps/shop/service.yaml": None,
            "apps/shop/configmap.yaml": CONFIGMAP.format(greeting="hi"),
            "apps/web/configmap.yaml": WEB_CONFIGMAP.format(color="green"),
        },
        "second",
    )
    return repo


def test_plan_json_names_releases_objects_fields_and_risks(repository: Repository) -> None:
    done = upkeep_plan("--repo", str(repository.root), "--base", "v1", "--head", "main", "--output", "json")

    assert done.returncode == 3, done.stderr
    out = json.loads(done.stdout)
    assert out["changed"] is True
    assert out["valid"] is True
    assert out["exitCode"] == 3
    assert out["head"]["sha"] == repository.git("rev-parse", "main")
    assert out["base"]["sha"] == repository.git("rev-parse", "v1")
    shop, web = out["paths"]
    assert shop["path"] == "apps/shop"
    assert shop["releases"] == [{"namespace": "shop", "name": "shop", "file": "releases/shop.yaml"}]
    assert shop["objects"] == [
        {
            "group": "",
            "kind": "ConfigMap",
            "namespace": "shop",
            "name": "shop-settings",
            "change": "changed",
            "fields": [{"path": "data.greeting", "change": "changed", "old": "hello", "new": "hi"}],
        },
        {
            "group": "apps",
            "kind": "Deployment",
            "namespace": "shop",
            "name": "shop",
            "change": "changed",
            "fields": [
                {
                    "path": "spec.template.spec.containers[name=shop].image",
                    "change": "changed",
                    "old": "nginx:1.27",
                    "new": "nginx:1.28",
                },
                {
                    "path": "spec.template.spec.containers[name=shop].resources.limits.memory",
                    "change": "changed",
                    "old": "256Mi",
                    "new": "128Mi",
                },
            ],
        },
        {"group": "", "kind": "Service", "namespace": "shop", "name": "shop", "change": "removed"},
    ]
    assert web["path"] == "apps/web"
    assert web["releases"][0]["name"] == "web"
    assert web["objects"] == [
        {
            "group": "",
            "kind": "ConfigMap",
            "namespace": "shop",
            "name": "web-settings",
            "change": "changed",
            "fields": [{"path": "data.color", "change": "changed", "old": "blue", "new": "green"}],
        }
    ]
    assert [(risk["code"], risk["object"]) for risk in out["risks"]] == [
        ("image-changed", "Deployment.apps shop/shop"),
        ("limit-lowered", "Deployment.apps shop/shop"),
    ]
    assert [finding for finding in out["findings"] if finding["severity"] == "error"] == []


def test_plan_markdown_for_a_pull_request_comment(repository: Repository) -> None:
    done = upkeep_plan("--repo", str(repository.root), "--base", "v1", "--head", "main")

    assert done.returncode == 3, done.stderr
    text = done.stdout
    assert "**4 objects change.**" in text
    assert "### `apps/shop` (`shop/shop`)" in text
    assert "- **removed** Service shop/shop" in text
    assert "  - `spec.template.spec.containers[name=shop].image`: `nginx:1.27` → `nginx:1.28`" in text
    assert "  - `data.greeting`: `hello` → `hi`" in text
    assert "### `apps/web` (`shop/web`)" in text
    assert "  - `data.color`: `blue` → `green`" in text
    assert "- `image-changed` Deployment.apps shop/shop `spec.template.spec.containers[name=shop].image`" in text
    assert "- `limit-lowered` Deployment.apps shop/shop" in text


def test_plan_of_no_change_exits_0_and_path_limits_the_plan(repository: Repository) -> None:
    same = upkeep_plan("--repo", str(repository.root), "--base", "main", "--head", "main", "-o", "json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["changed"] is False

    only_web = upkeep_plan(
        "--repo", str(repository.root), "--base", "v1", "--head", "main", "--path", "apps/web", "-o", "json"
    )
    assert only_web.returncode == 3
    assert [path["path"] for path in json.loads(only_web.stdout)["paths"]] == ["apps/web"]


def test_plan_of_an_invalid_head_exits_1_naming_file_line_and_field(repository: Repository) -> None:
    broken = DEPLOYMENT.format(image="nginx:1.29", memory="128Mi").replace("replicas: 2", "replicas: two")
    repository.commit({"apps/shop/deployment.yaml": broken}, "broken")

    done = upkeep_plan("--repo", str(repository.root), "--base", "main~1", "--head", "main", "-o", "json")

    assert done.returncode == 1, done.stdout
    out = json.loads(done.stdout)
    assert out["valid"] is False
    errors = [finding for finding in out["findings"] if finding["severity"] == "error"]
    assert [(e["file"], e["line"], e["field"]) for e in errors] == [("apps/shop/deployment.yaml", 7, "spec.replicas")]
    markdown = upkeep_plan("--repo", str(repository.root), "--base", "main~1", "--head", "main")
    assert markdown.returncode == 1
    assert "`apps/shop/deployment.yaml:7` `spec.replicas`" in markdown.stdout


def test_plan_usage_errors_exit_2(repository: Repository, tmp_path: Path) -> None:
    unknown = upkeep_plan("--repo", str(repository.root), "--base", "nope", "--head", "main")
    assert unknown.returncode == 2
    assert "'nope' names no commit" in unknown.stderr
    not_a_repo = tmp_path / "empty"
    not_a_repo.mkdir()
    assert upkeep_plan("--repo", str(not_a_repo), "--base", "a", "--head", "b").returncode == 2
    assert upkeep_plan("--repo", str(repository.root), "--base", "v1").returncode == 2
