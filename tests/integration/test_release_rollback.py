"""The whole loop: a bad commit goes out through a Release, the failure becomes an Incident, a Playbook rolls the
Deployment back, the Release keeps the rollback instead of re-applying git's failed template (even with
self-heal on), and a branch that reverts the commit is pushed to git with the trailers that link them.

Real parts only: the sandbox with its simulated kubelets, `upkeep run` as a process, a git repository served
over smart HTTP on 127.0.0.1 (pushes allowed), and kubectl.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.gitrepos import WorkRepo, git_env, serve
from support.operator import module_cluster, running_operator
from support.workloads import image_pull_playbook, namespace, quick_policy

pytestmark = pytest.mark.integration
GOOD = "ghcr.io/upkeep-dev/shop:1.0"
MISSING = "nginx:0.0.0-missing"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with module_cluster(tmp_path_factory.mktemp("release-rollback")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "rb") as name:
        yield name
    sim.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


def apply(sim: Cluster, body: dict[str, Any], namespace: str) -> None:
    sim.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))


def manifest(image: str) -> str:
    labels = {"app": "shop"}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "shop", "image": image}]}},
        },
    }
    return json.dumps(body, indent=2) + "\n"


def setup(sim: Cluster, ns: str, url: str) -> None:
    """A SupportPolicy, the image-pull Playbook, a GitSource of the served repository and a self-healing Release."""
    quick_policy(sim, ns)
    image_pull_playbook(sim, ns)
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "shop"},
            "spec": {"url": url, "ref": {"branch": "main"}, "interval": "1s"},
        },
        ns,
    )
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "shop"},
            "spec": {
                "sourceRef": {"name": "shop"},
                "path": "./deploy",
                "workloadRef": {"name": "shop"},
                "interval": "2s",
                "timeout": "5m",
                "selfHeal": True,
            },
        },
        ns,
    )


def release(sim: Cluster, ns: str) -> dict[str, Any]:
    status: dict[str, Any] = sim.kubectl_json("get", "release", "shop", "-n", ns).get("status") or {}
    return status


def image(sim: Cluster, ns: str) -> str:
    found = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def test_a_bad_commit_is_rolled_back_kept_rolled_back_and_reverted_in_git(
    sim: Cluster, ns: str, tmp_path: Path
) -> None:
    repo = WorkRepo.create(tmp_path / "shop")
    repo.commit({"deploy/shop.yaml": manifest(GOOD)}, "the shop")
    good = repo.head()
    with serve({"shop": repo.path}) as server:
        setup(sim, ns, server.url("shop"))
        flags = ("--git-cache", str(tmp_path / "git"))
        with running_operator(sim, [ns], tmp_path / "operator.log", *flags) as operator:
            eventually(
                lambda: release(sim, ns).get("stableRevision") == f"main@sha1:{good}",
                timeout=60,
                message="the good commit applied and healthy",
            )
            bad = repo.commit({"deploy/shop.yaml": manifest(MISSING)}, "shop: an image that does not exist")

            def rolled_back() -> dict[str, Any] | None:
                found = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
                return found[0] if found and found[0].get("status", {}).get("phase") == "Succeeded" else None

            try:
                run = eventually(rolled_back, timeout=90, interval=0.5, message="the rollback run succeeded")
                status = eventually(
                    lambda: (found := release(sim, ns)).get("overrides") and found,
                    timeout=15,
                    message="the rollback held on the Release",
                )
                # Two syncs later (interval 2 s, self-heal on) the Deployment still runs the good image.
                revision = status["revision"]
                assert revision == f"main@sha1:{bad}", status
                eventually(
                    lambda: any(
                        "spec.template" in str(item.get("overridden")) for item in release(sim, ns).get("drift") or []
                    ),
                    timeout=15,
                    message="the held template reported as overridden, not reverted",
                )
                branch = eventually(
                    lambda: (
                        next(
                            (item["branch"] for item in run_status(sim, ns, run)["writeBacks"] if item.get("commit")),
                            None,
                        )
                        if run_status(sim, ns, run).get("writeBacks")
                        else None
                    ),
                    timeout=30,
                    message="the revert branch pushed",
                )
            finally:
                log = operator.log()
        assert image(sim, ns) == GOOD, log[-3000:]

    [held] = status["overrides"]
    assert (held["fieldPath"], held["playbookRun"]) == ("spec.template", run["metadata"]["name"])
    assert held["value"]["spec"]["containers"][0]["image"] == GOOD
    # In git: the branch reverts deploy/ to the good commit, on top of the bad one, and names what it links.
    assert repo.git("rev-parse", f"{branch}^") == bad
    assert repo.git("show", f"{branch}:deploy/shop.yaml") == manifest(GOOD).rstrip("\n")
    trailers = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=repo.git("log", "-1", "--format=%B", branch),
        capture_output=True,
        text=True,
        check=True,
        env=git_env(repo.home),
    ).stdout
    assert "Upkeep-Release: shop" in trailers and f"Upkeep-PlaybookRun: {run['metadata']['name']}" in trailers


def run_status(sim: Cluster, ns: str, run: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = (
        sim.kubectl_json("get", "playbookrun", run["metadata"]["name"], "-n", ns).get("status") or {}
    )
    return found
