"""Write-back end to end: a PlaybookRun's proposeFix and rollback steps become branches on the served repository.

Real parts: a repository made with the git binary and served over smart HTTP on 127.0.0.1 (pushes behind a
token), the sandbox's API server, the real kubectl, and the operator as a process of its own, whose
GitSource and Release controllers bring the Deployment from git. The PlaybookRun is written directly (its
status with a Succeeded step, as the playbook controller would have left it): an incident and a playbook
that produce one are the playbook tests' subject, not this one's.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.gitrepos import GitServer, WorkRepo, serve
from support.operator import OperatorProcess, gitops_operator, module_cluster
from support.workloads import namespace

pytestmark = pytest.mark.integration

PREFIX = f"wb-{uuid.uuid4().hex[:6]}"
"""Namespaces of this module start with it: the operator watches ``PREFIX-*``."""
TOKEN = "flow-s3cret-token"
WAIT = 30.0
MEMORY_PATH = "spec.template.spec.containers[name=web].resources.limits.memory"


def deployment(image: str) -> str:
    return f"""\
# The web tier: its memory limit was a first guess.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          resources:
            limits:
              memory: 128Mi  # first guess
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with module_cluster(tmp_path_factory.mktemp("writeback")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def operator(sim: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    with gitops_operator(sim, PREFIX, tmp_path_factory.mktemp("writeback-operator")) as run:
        yield run


@pytest.fixture
def ns(sim: Cluster, operator: OperatorProcess) -> Iterator[str]:
    with namespace(sim, PREFIX, labels={}) as name:
        yield name


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    repo = WorkRepo.create(tmp_path / "app")
    repo.commit({"deploy/web.yaml": deployment("nginx:1.27"), "README": "the web app\n"}, "web")
    return repo


@pytest.fixture
def server(repo: WorkRepo) -> Iterator[GitServer]:
    with serve({"app": repo.path}, token=TOKEN) as running:
        yield running


def apply_json(sim: Cluster, body: dict[str, Any]) -> None:
    sim.kubectl("apply", "-f", "-", input=json.dumps(body))


def get(sim: Cluster, kind: str, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = sim.kubectl_json("get", kind, name, "-n", ns)
    return found


def release_from_git(sim: Cluster, ns: str, server: GitServer, repo: WorkRepo) -> dict[str, Any]:
    """A GitSource (with the token in a Secret) and a Release of ``deploy/``; its status once healthy at the head."""
    secret = {"token": base64.b64encode(TOKEN.encode()).decode()}
    apply_json(
        sim, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "git", "namespace": ns}, "data": secret}
    )
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "app", "namespace": ns},
            "spec": {
                "url": server.url("app"),
                "ref": {"branch": "main"},
                "interval": "1s",
                "secretRef": {"name": "git"},
            },
        },
    )
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"sourceRef": {"name": "app"}, "path": "./deploy", "interval": "1m", "timeout": "5m"},
        },
    )
    return wait_release(sim, ns, f"main@sha1:{repo.head()}", lambda status: status.get("phase") == "Healthy")


def wait_release(sim: Cluster, ns: str, revision: str, also: Any = None) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status: dict[str, Any] = get(sim, "release", ns, "web").get("status") or {}
        if status.get("revision") != revision or not status.get("inventory"):
            return None
        return status if also is None or also(status) else None

    return eventually(check, timeout=WAIT, message=f"the Release at {revision[:20]}")


def finished_run(sim: Cluster, ns: str, name: str, step: dict[str, Any]) -> None:
    """A PlaybookRun whose one step Succeeded, written as the playbook controller leaves a finished run."""
    apply_json(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "PlaybookRun",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"playbookRef": {"name": "oom"}, "incidentRef": {"name": "web-oom"}, "attempt": 1},
        },
    )
    uid = get(sim, "playbookrun", ns, name)["metadata"]["uid"]
    now = "2026-03-01T12:00:00Z"
    status = {
        "phase": "Succeeded",
        "currentStep": 1,
        "startedAt": now,
        "finishedAt": now,
        "steps": [{"idempotencyKey": f"{uid}/0", "startedAt": now, "finishedAt": now, **step}],
    }
    sim.kubectl(
        "patch", "playbookrun", name, "-n", ns, "--subresource=status", "--type=merge", "-p",
        json.dumps({"status": status}),
    )  # fmt: skip


def write_back_of(sim: Cluster, ns: str, name: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        entries = get(sim, "playbookrun", ns, name).get("status", {}).get("writeBacks") or []
        return dict(entries[0]) if entries else None

    return eventually(check, timeout=WAIT, message=f"the write-back of {name}")


def trailers(repo: WorkRepo, ref: str) -> dict[str, str]:
    message = repo.git("log", "-1", "--format=%B", ref)
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(": ", 1) for line in parsed.splitlines())


def test_a_proposed_fix_is_pushed_as_a_branch_that_changes_one_line(
    sim: Cluster, ns: str, server: GitServer, repo: WorkRepo
) -> None:
    release_from_git(sim, ns, server, repo)
    proposal = {
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"},
        "fieldPath": MEMORY_PATH,
        "declared": "128Mi",
        "value": "192Mi",
        "message": "Raise the memory limit of web to 192Mi (incident web-oom)",
    }
    step = {"name": "propose", "action": "proposeFix", "phase": "Succeeded", "outcome": "Succeeded"}

    finished_run(sim, ns, "web-oom-fix", {**step, "output": json.dumps(proposal)})

    entry = write_back_of(sim, ns, "web-oom-fix")
    assert "error" not in entry, entry
    branch = entry["branch"]
    assert branch.startswith("upkeep/fix/web-oom-")
    assert repo.git("rev-parse", branch) == entry["commit"]
    assert repo.git("diff", "--numstat", "main", branch) == "1\t1\tdeploy/web.yaml"
    assert "memory: 192Mi  # first guess" in repo.git("show", f"{branch}:deploy/web.yaml")
    assert trailers(repo, branch) == {
        "Upkeep-Incident": "web-oom",
        "Upkeep-Release": "web",
        "Upkeep-PlaybookRun": "web-oom-fix",
    }
    events = sim.kubectl("get", "events", "-n", ns, "--field-selector", "reason=WriteBackPushed", "-o", "name")
    assert events.stdout.strip()


def test_a_rollback_pushes_a_revert_branch_with_the_trailers(
    sim: Cluster, ns: str, server: GitServer, repo: WorkRepo
) -> None:
    good = release_from_git(sim, ns, server, repo)["revision"]
    bad_sha = repo.commit({"deploy/web.yaml": deployment("nginx:0.0-no-such-tag")}, "an image that does not exist")
    bad = wait_release(sim, ns, f"main@sha1:{bad_sha}", lambda status: status.get("stableRevision") == good)
    assert bad["stableRevision"] != bad["revision"]
    workload = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"}
    step = {"name": "undo", "action": "rollbackDeployment", "phase": "Succeeded", "outcome": "RolledBack"}

    finished_run(sim, ns, "web-undo", {**step, "output": json.dumps({"workload": workload, "outcome": "RolledBack"})})

    entry = write_back_of(sim, ns, "web-undo")
    assert "error" not in entry, entry
    assert entry["branch"] == f"upkeep/revert/web-{bad_sha[:12]}"
    log = repo.git("log", "-1", "--format=%s%n%b", entry["branch"])
    assert log.startswith(f"Revert web to {good.rpartition(':')[2][:12]}")
    assert trailers(repo, entry["branch"]) == {
        "Upkeep-Incident": "web-oom",
        "Upkeep-Release": "web",
        "Upkeep-PlaybookRun": "web-undo",
    }
    assert repo.git("show", f"{entry['branch']}:deploy/web.yaml") == deployment("nginx:1.27").rstrip("\n")
    assert repo.git("rev-parse", f"{entry['branch']}^") == bad_sha
