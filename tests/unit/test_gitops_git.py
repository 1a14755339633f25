"""gitops.git: fetching a ref from real repositories (served over smart HTTP, or by path) into the cache."""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import gitrepos
from upkeep.gitops import git

TOKEN = "s3cret-token-value"


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The git that fetch runs reads no configuration of this machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> gitrepos.WorkRepo:
    repo = gitrepos.WorkRepo.create(tmp_path / "source")
    repo.commit({"app/deploy.yaml": "kind: Deployment\n", "app/svc.yaml": "kind: Service\n", "README": "hi\n"}, "one")
    return repo


@pytest.fixture
def server(repo: gitrepos.WorkRepo) -> Iterator[gitrepos.GitServer]:
    with gitrepos.serve({"app.git": repo.path}) as running:
        yield running


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def object_count(repository: Path) -> int:
    out = subprocess.run(
        ["git", "--git-dir", str(repository), "count-objects", "-v"], capture_output=True, text=True, check=True
    ).stdout
    counts = dict(line.split(": ") for line in out.splitlines())
    return int(counts["count"]) + int(counts["in-pack"])


def test_a_branch_is_fetched_over_http_and_its_files_read(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, cache: Path
) -> None:
    artifact = git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache)

    assert artifact.sha == repo.head()
    assert artifact.revision == f"main@sha1:{repo.head()}"
    assert artifact.repository == git.cache_path(server.url("app.git"), cache)
    assert git.read_tree(artifact, "app") == {"deploy.yaml": b"kind: Deployment\n", "svc.yaml": b"kind: Service\n"}
    assert set(git.read_tree(artifact, "")) == {"README", "app/deploy.yaml", "app/svc.yaml"}
    assert git.read_tree(artifact, "app/svc.yaml") == {"svc.yaml": b"kind: Service\n"}
    with pytest.raises(git.PathMissing) as missing:
        git.read_tree(artifact, "nowhere")
    assert missing.value.reason == "PathNotFound"


def test_a_tag_and_a_commit_are_fetched(repo: gitrepos.WorkRepo, server: gitrepos.GitServer, cache: Path) -> None:
    first = repo.head()
    repo.tag("v1", annotated=True)
    repo.commit({"app/deploy.yaml": "kind: Deployment\nv: 2\n"}, "two")

    tagged = git.fetch(server.url("app.git"), git.Ref("tag", "v1"), cache)
    pinned = git.fetch(server.url("app.git"), git.Ref("commit", first[:10]), cache)

    assert (tagged.sha, tagged.revision) == (first, f"v1@sha1:{first}")
    assert (pinned.sha, pinned.revision) == (first, f"sha1:{first}")
    assert git.read_tree(pinned, "app")["deploy.yaml"] == b"kind: Deployment\n"


def test_a_second_commit_is_fetched_incrementally(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, cache: Path
) -> None:
    first = git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache)
    before = object_count(first.repository)
    repo.commit({"app/svc.yaml": "kind: Service\nv: 2\n"}, "two")
    new_objects = len(repo.git("rev-list", "--objects", f"{first.sha}..HEAD").splitlines())

    second = git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache, previous_sha=first.sha)

    assert second.sha == repo.head() != first.sha
    assert second.repository == first.repository
    assert object_count(second.repository) - before == new_objects  # only what the new commit added
    assert git.read_tree(second, "app")["svc.yaml"] == b"kind: Service\nv: 2\n"
    assert git.read_tree(first, "app")["svc.yaml"] == b"kind: Service\n"


def test_a_force_push_is_history_rewritten(repo: gitrepos.WorkRepo, server: gitrepos.GitServer, cache: Path) -> None:
    repo.commit({"app/svc.yaml": "kind: Service\nv: 2\n"}, "two")
    before = git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache)
    repo.git("reset", "--hard", "--quiet", "HEAD~1")
    rewritten = repo.commit({"app/svc.yaml": "kind: Service\nv: 3\n"}, "two, again")

    with pytest.raises(git.HistoryRewritten) as caught:
        git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache, previous_sha=before.sha)

    assert caught.value.reason == "HistoryRewritten"
    assert (caught.value.previous_sha, caught.value.sha) == (before.sha, rewritten)
    assert "force push" in caught.value.message
    assert git.read_tree(before, "app")["svc.yaml"] == b"kind: Service\nv: 2\n"  # the old artifact stays readable


def test_a_force_push_is_seen_by_a_fresh_cache_too(
    repo: gitrepos.WorkRepo, server: gitrepos.GitServer, tmp_path: Path
) -> None:
    old = repo.head()
    repo.git("commit", "--quiet", "--amend", "-m", "one, amended")

    with pytest.raises(git.HistoryRewritten):
        git.fetch(server.url("app.git"), git.Ref("branch", "main"), tmp_path / "fresh", previous_sha=old)


@pytest.mark.parametrize(
    "ref", [git.Ref("branch", "nope"), git.Ref("tag", "v9"), git.Ref("commit", "0123456789abcdef")], ids=str
)
def test_an_unknown_ref_is_ref_missing(server: gitrepos.GitServer, cache: Path, ref: git.Ref) -> None:
    with pytest.raises(git.RefMissing) as caught:
        git.fetch(server.url("app.git"), ref, cache)
    assert caught.value.reason == "RefNotFound"
    assert ref.name in caught.value.message


def test_a_server_that_is_down_is_unreachable(cache: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now that the probe is closed.
    with pytest.raises(git.Unreachable) as caught:
        git.fetch(f"http://127.0.0.1:{port}/app.git", git.Ref("branch", "main"), cache, timeout=30)
    assert caught.value.reason == "Unreachable"
    assert f"127.0.0.1:{port}" in caught.value.message


def test_a_missing_repository_is_unreachable(server: gitrepos.GitServer, cache: Path) -> None:
    with pytest.raises(git.Unreachable):
        git.fetch(server.url("other.git"), git.Ref("branch", "main"), cache)


def test_the_token_is_sent_as_basic_auth(repo: gitrepos.WorkRepo, cache: Path) -> None:
    with gitrepos.serve({"app.git": repo.path}, token=TOKEN) as server:
        artifact = git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache, token=TOKEN)
    assert artifact.sha == repo.head()
    assert server.requests  # the server did check the requests


@pytest.mark.parametrize("token", [None, "wrong-token-value"], ids=["no token", "wrong token"])
def test_a_refused_token_is_authentication_failed(repo: gitrepos.WorkRepo, cache: Path, token: str | None) -> None:
    with (
        gitrepos.serve({"app.git": repo.path}, token=TOKEN) as server,
        pytest.raises(git.AuthenticationFailed) as caught,
    ):
        git.fetch(server.url("app.git"), git.Ref("branch", "main"), cache, token=token)
    assert caught.value.reason == "AuthenticationFailed"
    if token:
        assert "refused the credentials" in caught.value.message
        assert token not in f"{caught.value} {caught.value.message} {caught.value!r}"
    else:
        assert "none were given" in caught.value.message


def test_the_token_never_appears_in_an_error(repo: gitrepos.WorkRepo, server: gitrepos.GitServer, cache: Path) -> None:
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    for ref in (git.Ref("branch", "nope"), git.Ref("branch", "main")):
        url = server.url("app.git") if ref.name == "nope" else "http://127.0.0.1:9/app.git"
        with pytest.raises(git.FetchError) as caught:
            git.fetch(url, ref, cache, token=TOKEN)
        text = f"{caught.value} {caught.value.message} {caught.value!r}"
        assert TOKEN not in text
        assert basic not in text


def test_file_urls_and_plain_paths_are_fetched(repo: gitrepos.WorkRepo, cache: Path) -> None:
    by_url = git.fetch(f"file://{repo.path}", git.Ref("branch", "main"), cache)
    by_path = git.fetch(str(repo.path), git.Ref("branch", "main"), cache)

    assert by_url.sha == by_path.sha == repo.head()
    assert by_url.repository != by_path.repository  # one cache per URL as written
    assert git.read_tree(by_path, "app")["svc.yaml"] == b"kind: Service\n"


def test_ssh_and_unknown_schemes_are_refused(cache: Path) -> None:
    for url in ("ssh://git@example.com/app.git", "git@example.com:app.git", "ftp://example.com/app.git"):
        with pytest.raises(ValueError, match="can be fetched"):
            git.fetch(url, git.Ref("branch", "main"), cache)


def test_ref_from_spec() -> None:
    assert git.Ref.from_spec(None) == git.Ref("branch", "main")
    assert git.Ref.from_spec({"tag": "v1.2"}) == git.Ref("tag", "v1.2")
    with pytest.raises(ValueError):
        git.Ref.from_spec({"branch": "a", "tag": "b"})
    with pytest.raises(ValueError):
        git.Ref("commit", "XYZ")
