"""controllers.writeback: a PlaybookRun's proposeFix or rollback step becomes a branch on a served repository.

The cluster is an in-memory fake of the seam (the controller's decisions are the subject); git is real:
a repository served over smart HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import datetime
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from support import gitrepos
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import writeback as controller_
from upkeep.gitops import writeback

NS = "shop"
TOKEN = "ctl-s3cret-token"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.27
          resources:
            limits:
              memory: 128Mi  # first guess
"""
NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


class FakeCluster:
    """The controller's seam in memory: custom objects by (plural, namespace, name), Secrets, resourceVersions."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 1
        self.conflict_once = False

    def put(self, plural: str, body: dict[str, Any]) -> None:
        self.version += 1
        body.setdefault("metadata", {}).update(namespace=NS, resourceVersion=str(self.version))
        self.objects[(plural, NS, body["metadata"]["name"])] = copy.deepcopy(body)

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def list_custom(self, plural: str, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        return [copy.deepcopy(body) for (p, ns, _), body in self.objects.items() if (p, ns) == (plural, namespace)]

    async def replace_custom_status(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (plural, body["metadata"]["namespace"], body["metadata"]["name"])
        stored = self.objects[key]
        if self.conflict_once:
            self.conflict_once = False
            self.put(plural, stored)  # someone else wrote meanwhile
            raise cluster_.Conflict("stale")
        if body["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise cluster_.Conflict("stale")
        self.put(plural, {**stored, "status": copy.deepcopy(body["status"])})
        return copy.deepcopy(self.objects[key])

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.secrets.get((namespace, name)))

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        raise AssertionError("the write-back controller writes status with its resourceVersion, never a blind patch")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> gitrepos.WorkRepo:
    repo = gitrepos.WorkRepo.create(tmp_path / "source")
    repo.commit({"apps/web/deployment.yaml": DEPLOYMENT}, "web")
    return repo


@pytest.fixture
def server(repo: gitrepos.WorkRepo) -> Iterator[gitrepos.GitServer]:
    with gitrepos.serve({"app.git": repo.path}, token=TOKEN) as running:
        yield running


@pytest.fixture
def cluster(server: gitrepos.GitServer) -> FakeCluster:
    cluster = FakeCluster()
    cluster.put(
        "gitsources",
        {
            "metadata": {"name": "apps"},
            "spec": {"url": server.url("app.git"), "ref": {"branch": "main"}, "secretRef": {"name": "git"}},
        },
    )
    cluster.secrets[(NS, "git")] = {"data": {"token": base64.b64encode(TOKEN.encode()).decode()}}
    cluster.put(
        "releases",
        {
            "metadata": {"name": "web"},
            "spec": {"sourceRef": {"name": "apps"}, "path": "./apps/web", "workloadRef": {"name": "web"}},
            "status": {"inventory": [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "web"}]},
        },
    )
    return cluster


def controller(cluster: FakeCluster, tmp_path: Path, *, dry_run: bool = False) -> tuple[Any, list[tuple[str, str]]]:
    events: list[tuple[str, str]] = []
    settings = settings_.OperatorSettings(
        gitops=settings_.GitOpsSettings(cache_dir=str(tmp_path / "cache")),
        safety=dataclasses.replace(settings_.SafetySettings(), dry_run=dry_run),
    )
    made = controller_.WriteBackController(
        settings,
        cluster,
        events=lambda body, kind, reason, message: events.append((reason, message)),
        clock=lambda: NOW,
    )
    return made, events


def run_with(cluster: FakeCluster, step: dict[str, Any], name: str = "web-oom-raise-1") -> None:
    cluster.put(
        "playbookruns",
        {
            "metadata": {"name": name, "uid": "run-uid-1"},
            "spec": {"playbookRef": {"name": "raise"}, "incidentRef": {"name": "web-oom"}, "attempt": 1},
            "status": {"phase": "Succeeded", "steps": [{"idempotencyKey": "run-uid-1/0", **step}]},
        },
    )


PROPOSAL = {
    "name": "propose",
    "action": "proposeFix",
    "phase": "Succeeded",
    "outcome": "Succeeded",
    "output": json.dumps(
        {
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "web"},
            "fieldPath": "spec.template.spec.containers[name=web].resources.limits.memory",
            "declared": "128Mi",
            "value": "192Mi",
            "message": "Raise the memory limit of web to 192Mi (incident web-oom)",
        }
    ),
}


async def write_backs(cluster: FakeCluster, name: str = "web-oom-raise-1") -> list[dict[str, Any]]:
    run = await cluster.get_custom("playbookruns", NS, name)
    assert run is not None
    return list(run["status"].get("writeBacks") or [])


def test_a_proposed_fix_is_pushed_once_and_recorded(
    cluster: FakeCluster, repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        run_with(cluster, PROPOSAL)
        made, events = controller(cluster, tmp_path)
        cluster.conflict_once = True  # the playbook controller wrote the run meanwhile

        await made.write_back(NS, "web-oom-raise-1")
        await made.write_back(NS, "web-oom-raise-1")

        (entry,) = await write_backs(cluster)
        branch = writeback.fix_branch_name("web-oom", "run-uid-1/0")
        assert entry["step"] == "propose"
        assert entry["branch"] == branch
        assert entry["commit"] == repo.git("rev-parse", branch)
        assert entry["pushedAt"] == "2026-03-01T12:00:00Z"
        assert "error" not in entry
        assert "memory: 192Mi  # first guess" in repo.git("show", f"{branch}:apps/web/deployment.yaml")
        assert (
            repo.git("log", "-1", "--format=%s", branch) == "Raise the memory limit of web to 192Mi (incident web-oom)"
        )
        trailers = repo.git("log", "-1", "--format=%(trailers:only,unfold)", branch)
        assert trailers.splitlines() == [
            "Upkeep-Incident: web-oom",
            "Upkeep-Release: web",
            "Upkeep-PlaybookRun: web-oom-raise-1",
        ]
        assert sum(1 for request in server.requests if request.endswith("git-receive-pack") and "POST" in request) == 1
        assert [reason for reason, _ in events] == ["WriteBackPushed", "WriteBackPushed"]  # on the run and the Release
        assert all(TOKEN not in message for _, message in events)

    asyncio.run(scenario())


def test_a_workload_no_release_owns_is_recorded_as_an_error_without_a_push(
    cluster: FakeCluster, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        proposal = json.loads(PROPOSAL["output"])
        proposal["workload"]["name"] = "cart"
        run_with(cluster, {**PROPOSAL, "output": json.dumps(proposal)})
        made, events = controller(cluster, tmp_path)

        await made.write_back(NS, "web-oom-raise-1")

        (entry,) = await write_backs(cluster)
        assert entry["step"] == "propose"
        assert "no Release in namespace shop has Deployment/shop/cart" in entry["error"]
        assert "commit" not in entry
        assert [reason for reason, _ in events] == ["WriteBackFailed"]
        assert not any("receive-pack" in request for request in server.requests)

    asyncio.run(scenario())


def test_a_dry_run_operator_says_what_it_would_push_and_pushes_nothing(
    cluster: FakeCluster, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        run_with(cluster, PROPOSAL)
        made, events = controller(cluster, tmp_path, dry_run=True)

        await made.write_back(NS, "web-oom-raise-1")
        await made.write_back(NS, "web-oom-raise-1")

        assert await write_backs(cluster) == []
        assert [reason for reason, _ in events] == ["WriteBackDryRun"]
        assert writeback.fix_branch_name("web-oom", "run-uid-1/0") in events[0][1]
        assert not any("receive-pack" in request for request in server.requests)

    asyncio.run(scenario())


def test_a_rollback_pushes_a_revert_of_the_release_revision(
    cluster: FakeCluster, repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    async def scenario() -> None:
        good = repo.head()
        bad = repo.commit({"apps/web/deployment.yaml": DEPLOYMENT.replace("nginx:1.27", "nginx:9.99")}, "bad image")
        release = await cluster.get_custom("releases", NS, "web")
        assert release is not None
        release["status"].update(revision=f"main@sha1:{bad}", stableRevision=f"main@sha1:{good}")
        cluster.put("releases", release)
        workload = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": NS, "name": "web"}
        step = {"name": "undo", "action": "rollbackDeployment", "phase": "Succeeded", "outcome": "RolledBack"}
        run_with(cluster, {**step, "output": json.dumps({"workload": workload, "outcome": "RolledBack"})})
        made, events = controller(cluster, tmp_path)

        await made.write_back(NS, "web-oom-raise-1")

        (entry,) = await write_backs(cluster)
        assert entry["branch"] == f"upkeep/revert/web-{bad[:12]}"
        assert repo.git("diff", "--name-only", good, entry["branch"]) == ""
        assert repo.git("rev-parse", f"{entry['branch']}^") == bad
        assert "Upkeep-Release: web" in repo.git("log", "-1", "--format=%B", entry["branch"])
        assert [reason for reason, _ in events] == ["WriteBackPushed", "WriteBackPushed"]

    asyncio.run(scenario())


def test_a_rollback_of_a_release_at_its_stable_revision_is_not_needed(
    cluster: FakeCluster, repo: gitrepos.WorkRepo, tmp_path: Path
) -> None:
    async def scenario() -> None:
        release = await cluster.get_custom("releases", NS, "web")
        assert release is not None
        head = f"main@sha1:{repo.head()}"
        release["status"].update(revision=head, stableRevision=head)
        cluster.put("releases", release)
        workload = {"kind": "Deployment", "namespace": NS, "name": "web"}
        step = {"name": "undo", "action": "rollbackDeployment", "phase": "Succeeded", "outcome": "RolledBack"}
        run_with(cluster, {**step, "output": json.dumps({"workload": workload})})
        made, events = controller(cluster, tmp_path)

        await made.write_back(NS, "web-oom-raise-1")

        (entry,) = await write_backs(cluster)
        assert "nothing to revert" in entry["message"]
        assert [reason for reason, _ in events] == ["WriteBackNotNeeded"]

    asyncio.run(scenario())


def test_only_succeeded_steps_without_an_entry_are_due() -> None:
    run = {
        "spec": {},
        "status": {
            "steps": [
                {"name": "a", "action": "proposeFix", "phase": "Succeeded"},
                {"name": "b", "action": "proposeFix", "phase": "Running"},
                {"name": "c", "action": "rollbackDeployment", "phase": "Succeeded", "outcome": "NothingToRollBack"},
                {"name": "d", "action": "restartPods", "phase": "Succeeded"},
                {"name": "e", "action": "rollbackDeployment", "phase": "Succeeded", "outcome": "RolledBack"},
            ],
            "writeBacks": [{"step": "e"}],
        },
    }
    assert [step["name"] for step in controller_.due_steps(run)] == ["a"]
    assert controller_.due_steps({**run, "spec": {"dryRun": True}}) == []
