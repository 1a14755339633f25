"""gitops.writeback: revert and patch branches pushed to real repositories served over smart HTTP."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support import gitrepos
from upkeep.engine import fieldpaths
from upkeep.gitops import git, writeback

TOKEN = "wb-s3cret-token-value"
SHOP = "apps/shop/deployment.yaml"
DEPLOYMENT = """\
# The shop's web tier; limits agreed in review.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  labels: {app: shop}
spec:
  replicas: 2  # two for the demo
  selector:
    matchLabels:
      app: shop
  template:
    metadata:
      labels:
        app: shop
    spec:
      containers:
        - name: shop
          image: "nginx:1.27"
          resources:
            limits:
              memory: "256Mi"   # raised after INC-12
              cpu: 500m
        - name: sidecar
          image: busybox
---
apiVersion: v1
kind: Service
metadata:
  name: shop
spec:
  ports:
    - port: 80
"""
TRAILERS = {"Upkeep-Incident": "shop-oom-1", "Upkeep-Release": "shop", "Upkeep-PlaybookRun": "shop-oom-1-raise-1"}
SHOP_TARGET = writeback.Target("apps/v1", "Deployment", "prod", "shop")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The git that write-back runs reads no configuration of this machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> gitrepos.WorkRepo:
    repo = gitrepos.WorkRepo.create(tmp_path / "source")
    repo.commit({SHOP: DEPLOYMENT, "apps/other/cm.yaml": "kind: ConfigMap\n", "README": "hi\n"}, "shop")
    return repo


@pytest.fixture
def server(repo: gitrepos.WorkRepo) -> Iterator[gitrepos.GitServer]:
    with gitrepos.serve({"app.git": repo.path}) as running:
        yield running


def pushes(server: gitrepos.GitServer) -> int:
    return sum(1 for request in server.requests if request == "POST /app.git/git-receive-pack")


def trailers_in(repo: gitrepos.WorkRepo, ref: str) -> dict[str, str]:
    """The trailers of ``ref``'s message as ``git interpret-trailers --parse`` reads them."""
    message = repo.git("log", "-1", "--format=%B", ref)
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(": ", 1) for line in parsed.splitlines())


def patch(server: gitrepos.GitServer, tmp_path: Path, **overrides: Any) -> writeback.Pushed | writeback.NothingToDo:
    arguments: dict[str, Any] = {
        "base_branch": "main",
        "path": "apps/shop",
        "target": SHOP_TARGET,
        "field_path": "spec.template.spec.containers[name=shop].resources.limits.memory",
        "value": "512Mi",
        "branch": "upkeep/fix/shop-oom-1-abc",
        "subject": "Raise the shop's memory limit to 512Mi",
        "body": "OOM kills during incident shop-oom-1.",
        "trailers": TRAILERS,
        "cache_dir": tmp_path / "cache",
        **overrides,
    }
    return writeback.patch_branch(server.url("app.git"), **arguments)


def test_a_revert_branch_restores_only_the_path_and_carries_the_trailers(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    good = repo.head()
    bad = repo.commit({SHOP: DEPLOYMENT.replace('"256Mi"', '"64Mi"'), "apps/shop/extra.yaml": "kind: Secret\n"}, "bad")
    tip = repo.commit({"apps/other/cm.yaml": "kind: ConfigMap\ndata: {}\n"}, "unrelated, later")

    pushed = writeback.revert_branch(
        server.url("app.git"),
        base_branch="main",
        path="apps/shop",
        good_commit=good,
        bad_commit=bad,
        branch=writeback.revert_branch_name("upkeep/revert/", "shop", bad),
        subject=f"Revert shop to {good[:12]}",
        body=f"The release of {bad[:12]} failed its analysis and was rolled back.",
        trailers={**TRAILERS, "Upkeep-Change": "shop-change-7"},
        cache_dir=tmp_path / "cache",
    )

    assert isinstance(pushed, writeback.Pushed)
    branch = f"upkeep/revert/shop-{bad[:12]}"
    assert (pushed.branch, pushed.base_commit, pushed.already_there) == (branch, tip, False)
    assert pushed.files == ("apps/shop/deployment.yaml", "apps/shop/extra.yaml")
    assert repo.git("rev-parse", branch) == pushed.commit
    assert repo.git("rev-parse", f"{branch}^") == tip
    assert repo.git("log", "-1", "--format=%s|%an <%ae>|%cn", branch) == f"Revert shop to {good[:12]}|{DEFAULT}|Upkeep"
    assert trailers_in(repo, branch) == {
        "Upkeep-Incident": "shop-oom-1",
        "Upkeep-Release": "shop",
        "Upkeep-Change": "shop-change-7",
        "Upkeep-PlaybookRun": "shop-oom-1-raise-1",
    }
    assert repo.git("diff", "--name-only", tip, branch).splitlines() == [SHOP, "apps/shop/extra.yaml"]
    assert repo.git("diff", "--name-only", good, branch).splitlines() == [
        "apps/other/cm.yaml"
    ]  # the later commit stays
    assert repo.git("show", f"{branch}:{SHOP}") == DEPLOYMENT.rstrip("\n")


DEFAULT = "Upkeep <upkeep@localhost>"


def test_a_second_revert_with_the_same_inputs_pushes_nothing(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    good = repo.head()
    bad = repo.commit({SHOP: DEPLOYMENT.replace("replicas: 2", "replicas: 0")}, "bad")
    arguments: dict[str, Any] = {
        "base_branch": "main",
        "path": "apps/shop",
        "good_commit": good,
        "bad_commit": bad,
        "branch": "upkeep/revert/shop-x",
        "subject": "Revert shop",
        "body": "",
        "trailers": TRAILERS,
    }

    first = writeback.revert_branch(server.url("app.git"), cache_dir=tmp_path / "cache", **arguments)
    again = writeback.revert_branch(server.url("app.git"), cache_dir=tmp_path / "restarted", **arguments)

    assert isinstance(first, writeback.Pushed)
    assert isinstance(again, writeback.Pushed)
    assert (again.commit, again.already_there) == (first.commit, True)
    assert pushes(server) == 1


def test_a_revert_of_a_path_already_as_good_is_nothing_to_do(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    good = repo.head()
    bad = repo.commit({"README": "changed\n"}, "outside the path")

    result = writeback.revert_branch(
        server.url("app.git"),
        base_branch="main",
        path="apps/shop",
        good_commit=good,
        bad_commit=bad,
        branch="upkeep/revert/shop-y",
        subject="Revert shop",
        body="",
        trailers=TRAILERS,
        cache_dir=tmp_path / "cache",
    )

    assert isinstance(result, writeback.NothingToDo)
    assert pushes(server) == 0


def test_a_revert_to_an_unknown_commit_is_object_not_found(server: gitrepos.GitServer, tmp_path: Path) -> None:
    with pytest.raises(writeback.ObjectNotFound) as caught:
        writeback.revert_branch(
            server.url("app.git"),
            base_branch="main",
            path="apps/shop",
            good_commit="0123456789abcdef0123456789abcdef01234567",
            bad_commit="1" * 40,
            branch="upkeep/revert/shop-z",
            subject="Revert shop",
            body="",
            trailers=TRAILERS,
            cache_dir=tmp_path / "cache",
        )
    assert caught.value.reason == "ObjectNotFound"
    assert "0123456789ab" in caught.value.message


def test_a_patch_branch_changes_the_one_line_of_the_limit(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    pushed = patch(server, tmp_path)

    assert isinstance(pushed, writeback.Pushed)
    assert pushed.files == (SHOP,)
    assert repo.git("diff", "--numstat", "main", pushed.branch) == f"1\t1\t{SHOP}"
    changed = [
        line
        for line in repo.git("diff", "--unified=0", "main", pushed.branch).splitlines()
        if line.startswith(("+ ", "- ", "+\t", "-\t")) or (line[:1] in "+-" and not line.startswith(("+++", "---")))
    ]
    assert changed == [
        '-              memory: "256Mi"   # raised after INC-12',
        '+              memory: "512Mi"   # raised after INC-12',
    ]
    assert trailers_in(repo, pushed.branch) == TRAILERS
    assert repo.git("log", "-1", "--format=%s", pushed.branch) == "Raise the shop's memory limit to 512Mi"


def test_a_missing_field_is_added_and_the_rest_kept(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    requests = patch(
        server,
        tmp_path,
        field_path="spec.template.spec.containers[name=shop].resources.requests.memory",
        branch="upkeep/fix/requests",
    )
    sidecar = patch(
        server,
        tmp_path,
        field_path="spec.template.spec.containers[name=sidecar].resources.limits.memory",
        value="64Mi",
        branch="upkeep/fix/sidecar",
    )

    assert isinstance(requests, writeback.Pushed)
    assert isinstance(sidecar, writeback.Pushed)
    for pushed, added in ((requests, 2), (sidecar, 3)):
        assert repo.git("diff", "--numstat", "main", pushed.branch) == f"{added}\t0\t{SHOP}"
    body = next(iter(yaml.safe_load_all(repo.git("show", f"{requests.branch}:{SHOP}"))))
    assert fieldpaths.get(body, "spec.template.spec.containers[name=shop].resources") == {
        "requests": {"memory": "512Mi"},
        "limits": {"memory": "256Mi", "cpu": "500m"},
    }
    text = repo.git("show", f"{sidecar.branch}:{SHOP}")
    assert "        - name: sidecar\n          resources:\n            limits:\n              memory: 64Mi\n" in text
    assert "# raised after INC-12" in text


def test_a_second_patch_with_the_same_inputs_pushes_nothing(server: gitrepos.GitServer, tmp_path: Path) -> None:
    first = patch(server, tmp_path)
    again = patch(server, tmp_path)

    assert isinstance(first, writeback.Pushed)
    assert isinstance(again, writeback.Pushed)
    assert (again.commit, again.already_there) == (first.commit, True)
    assert pushes(server) == 1


def test_a_patch_that_git_already_has_is_nothing_to_do(server: gitrepos.GitServer, tmp_path: Path) -> None:
    assert isinstance(patch(server, tmp_path, value="256Mi"), writeback.NothingToDo)
    assert pushes(server) == 0


def test_a_branch_with_other_commits_is_not_overwritten(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    repo.git("branch", "upkeep/fix/shop-oom-1-abc", "main")
    repo.git("checkout", "--quiet", "upkeep/fix/shop-oom-1-abc")
    someone = repo.commit({"README": "a reviewer's change\n"}, "review")
    repo.git("checkout", "--quiet", "main")
    repo.commit({"README": "main moved on\n"}, "main moves")

    with pytest.raises(writeback.PushRejected) as caught:
        patch(server, tmp_path)

    assert caught.value.reason == "PushRejected"
    assert repo.git("rev-parse", "upkeep/fix/shop-oom-1-abc") == someone


def test_a_target_not_declared_at_the_path_is_not_editable(server: gitrepos.GitServer, tmp_path: Path) -> None:
    with pytest.raises(writeback.NotEditable) as caught:
        patch(server, tmp_path, target=writeback.Target("apps/v1", "Deployment", "prod", "cart"))
    assert "Deployment prod/cart" in caught.value.message
    assert "by hand" in caught.value.message


def test_a_kustomization_resource_file_is_edited_and_a_patched_field_is_refused(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    repo.commit(
        {
            "apps/kust/kustomization.yaml": "namePrefix: prod-\nresources:\n  - deployment.yaml\n",
            "apps/kust/deployment.yaml": DEPLOYMENT.split("---", maxsplit=1)[0],
        },
        "kustomized",
    )
    target = writeback.Target("apps/v1", "Deployment", "prod", "prod-shop")

    pushed = patch(server, tmp_path, path="apps/kust", target=target, branch="upkeep/fix/kust")

    assert isinstance(pushed, writeback.Pushed)
    assert pushed.files == ("apps/kust/deployment.yaml",)
    repo.commit(
        {
            "apps/kust/kustomization.yaml": "namePrefix: prod-\nresources:\n  - deployment.yaml\npatches:\n"
            "  - path: memory.yaml\n",
            "apps/kust/memory.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n"
            "  template:\n    spec:\n      containers:\n        - name: shop\n          resources:\n"
            "            limits:\n              memory: 300Mi\n",
        },
        "a patch sets the memory",
    )
    with pytest.raises(writeback.NotEditable):
        patch(server, tmp_path, path="apps/kust", target=target, branch="upkeep/fix/kust-2")


def test_a_token_is_sent_and_a_wrong_one_is_authentication_failed(repo: gitrepos.WorkRepo, tmp_path: Path) -> None:
    good = repo.head()
    bad = repo.commit({SHOP: DEPLOYMENT.replace("replicas: 2", "replicas: 9")}, "bad")
    arguments: dict[str, Any] = {
        "base_branch": "main",
        "path": "apps/shop",
        "good_commit": good,
        "bad_commit": bad,
        "branch": "upkeep/revert/with-token",
        "subject": "Revert shop",
        "body": "",
        "trailers": TRAILERS,
        "cache_dir": tmp_path / "cache",
    }
    with gitrepos.serve({"app.git": repo.path}, token=TOKEN) as server:
        pushed = writeback.revert_branch(server.url("app.git"), token=TOKEN, **arguments)
        with pytest.raises(git.AuthenticationFailed) as caught:
            writeback.revert_branch(server.url("app.git"), token="wrong-" + TOKEN, **arguments)

    assert isinstance(pushed, writeback.Pushed)
    assert repo.git("rev-parse", "upkeep/revert/with-token") == pushed.commit
    assert caught.value.reason == "AuthenticationFailed"
    assert TOKEN not in caught.value.message
    assert TOKEN not in str(caught.value)


def test_a_push_the_server_forbids_is_authentication_failed(repo: gitrepos.WorkRepo, tmp_path: Path) -> None:
    with gitrepos.serve({"app.git": repo.path}, read_only=True) as server, pytest.raises(git.GitError) as caught:
        patch(server, tmp_path)
    assert caught.value.reason == "AuthenticationFailed"  # a 403: the credentials may read, not push
    assert "403" in caught.value.message


class RecordingProvider:
    """A pull-request provider that remembers what it was asked and answers with an address."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, str, str]] = []

    def open(self, url: str, branch: str, base_branch: str, title: str, body: str) -> str | None:
        self.calls.append((url, branch, base_branch, title, body))
        return f"https://git.example/pulls/{len(self.calls)}"


def test_a_pull_request_provider_is_asked_for_every_proposal_on_the_remote(
    server: gitrepos.GitServer, tmp_path: Path
) -> None:
    provider = RecordingProvider()

    first = patch(server, tmp_path, pull_requests=provider)
    again = patch(server, tmp_path, pull_requests=provider)

    assert isinstance(first, writeback.Pushed)
    assert isinstance(again, writeback.Pushed)
    assert (first.pull_request, again.pull_request) == ("https://git.example/pulls/1", "https://git.example/pulls/2")
    url, branch, base, title, body = provider.calls[0]
    assert (url, branch, base, title) == (
        server.url("app.git"),
        "upkeep/fix/shop-oom-1-abc",
        "main",
        "Raise the shop's memory limit to 512Mi",
    )
    assert body.startswith("OOM kills during incident shop-oom-1.")
    assert "Upkeep-Incident: shop-oom-1" in body


def test_the_message_carries_trailers_git_reads_back() -> None:
    message = writeback.commit_message(
        "Raise memory", "Because\nof OOM kills.", {"Upkeep-Release": "shop", "Upkeep-Incident": "inc-1"}
    )
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"], input=message, capture_output=True, text=True, check=True
    ).stdout
    assert message.startswith("Raise memory\n\nBecause\nof OOM kills.\n\n")
    assert parsed == "Upkeep-Incident: inc-1\nUpkeep-Release: shop\n"
    with pytest.raises(ValueError, match="Upkeep-Problem"):
        writeback.commit_message("x", "", {"Upkeep-Problem": "p"})


def test_branch_names_are_deterministic_and_valid() -> None:
    key = "0b8e2c1a-5d7f-4c1e-9a77-3f0e2d9c8b6a/2"
    assert writeback.fix_branch_name("shop-oom-1", key) == writeback.fix_branch_name("shop-oom-1", key)
    assert re.fullmatch(r"upkeep/fix/shop-oom-1-[0-9a-f]{12}", writeback.fix_branch_name("shop-oom-1", key))
    assert writeback.fix_branch_name("shop-oom-1", key) != writeback.fix_branch_name("shop-oom-1", key[:-1] + "3")
    assert writeback.revert_branch_name("upkeep/revert/", "shop", "f" * 40) == "upkeep/revert/shop-ffffffffffff"


@pytest.mark.parametrize(
    ("before", "path", "value", "after"),
    [
        ("a:\n  b: 1\n", "a.b", 2, "a:\n  b: 2\n"),
        ("a:\n  b: 'x'  # keep\n", "a.b", "y", "a:\n  b: 'y'  # keep\n"),
        ("a:\n  b: x\n", "a.b", "1", "a:\n  b: '1'\n"),
        ("a: {}\nz: 1\n", "a.b.c", "5Gi", "a:\n  b:\n    c: 5Gi\nz: 1\n"),
        ("a:\nz: 1\n", "a.b", "v", "a:\n  b: v\nz: 1\n"),
        ("x:\n  a:   # none yet\n  z: 1\n", "x.a.b", 1, "x:\n  a:\n    b: 1   # none yet\n  z: 1\n"),
        ("a:\n  c: 1\n", "a.b", True, "a:\n  b: true\n  c: 1\n"),
        ("l:\n- name: x\n  v: 1\n", "l[name=x].w", 2, "l:\n- name: x\n  w: 2\n  v: 1\n"),
        ("---\nkind: A\n---\nkind: B\nspec:\n  n: 1\n", "spec.n", 3, "---\nkind: A\n---\nkind: B\nspec:\n  n: 3\n"),
    ],
)
def test_edit_document_changes_only_what_it_must(before: str, path: str, value: Any, after: str) -> None:
    index = 1 if before.startswith("---") else 0
    assert writeback.edit_document(before, index, path, value) == after
    documents = [doc for doc in yaml.safe_load_all(after) if doc is not None]
    assert fieldpaths.get(documents[index], path) == value


@pytest.mark.parametrize(
    ("before", "path"),
    [
        ("l:\n- name: x\n", "l[name=y].v"),
        ("a: {b: 1}\n", "a.c"),
        ("a: |\n  text\n", "a"),
    ],
)
def test_edit_document_refuses_what_it_cannot_do_in_place(before: str, path: str) -> None:
    with pytest.raises(writeback.NotEditable):
        writeback.edit_document(before, 0, path, "v")
