"""gitops.git over SSH: fetching from a real sshd on 127.0.0.1 with a key and known_hosts, and its errors."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import gitrepos, sshd
from support.operator import free_port
from upkeep.gitops import git, writeback


@dataclass(frozen=True)
class Served:
    """One sshd for the module, the bare repository it serves, and the keys the tests log in with."""

    server: sshd.SshServer
    source: gitrepos.WorkRepo
    bare: Path
    key: sshd.ClientKey
    """Authorized."""
    stranger: sshd.ClientKey
    """Never authorized."""

    @property
    def url(self) -> str:
        return self.server.url(self.bare)

    @property
    def known_hosts(self) -> bytes:
        return (self.server.known_hosts_line + "\n").encode()

    def push(self) -> None:
        self.source.git("push", "--quiet", "--force", "--tags", str(self.bare), "main")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("ssh")
    source = gitrepos.WorkRepo.create(folder / "source")
    source.commit({"app/deploy.yaml": "kind: Deployment\n", "README": "hi\n"}, "one")
    bare = folder / "app.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True, env=gitrepos.git_env(source.home))
    key, stranger = sshd.client_key(folder / "keys", "client"), sshd.client_key(folder / "keys", "stranger")
    with sshd.sshd(folder / "sshd") as server:
        server.authorize(key.public)
        served = Served(server, source, bare, key, stranger)
        served.push()
        yield served


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """git and ssh read no configuration of this machine; key files go to a folder of this test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def assert_no_key_in(error: BaseException, key: sshd.ClientKey) -> None:
    text = f"{error} {getattr(error, 'message', '')} {error!r}"
    for line in key.private.decode().splitlines():
        if len(line) >= 16:
            assert line not in text


def test_a_branch_is_fetched_over_ssh_with_the_key_and_known_hosts(served: Served, cache: Path, isolated: Path) -> None:
    artifact = git.fetch(
        served.url, git.Ref("branch", "main"), cache, identity=served.key.private, known_hosts=served.known_hosts
    )

    assert artifact.sha == served.source.head()
    assert artifact.revision == f"main@sha1:{served.source.head()}"
    assert git.read_tree(artifact, "app") == {"deploy.yaml": b"kind: Deployment\n"}
    assert list(isolated.iterdir()) == []  # the key and known_hosts files are gone after the fetch


def test_a_new_commit_and_a_tag_are_fetched_again_over_ssh(served: Served, cache: Path) -> None:
    options: dict[str, Any] = {"identity": served.key.private, "known_hosts": served.known_hosts}
    first = git.fetch(served.url, git.Ref("branch", "main"), cache, **options)
    served.source.commit({"app/deploy.yaml": "kind: Deployment\nv: 2\n"}, "two")
    served.source.tag("v2")
    served.push()

    second = git.fetch(served.url, git.Ref("branch", "main"), cache, previous_sha=first.sha, **options)
    tagged = git.fetch(served.url, git.Ref("tag", "v2"), cache, **options)

    assert second.sha == tagged.sha == served.source.head() != first.sha
    assert git.read_tree(second, "app")["deploy.yaml"] == b"kind: Deployment\nv: 2\n"


def test_the_key_files_are_private_while_ssh_reads_them(
    served: Served, cache: Path, isolated: Path, tmp_path: Path
) -> None:
    """A key logging in through an authorized_keys command that records the files before serving git."""
    record = tmp_path / "observed"
    observer = tmp_path / "observe.sh"
    observer.write_text(
        "#!/bin/sh\n"
        f'for d in "{isolated}"/upkeep-ssh-*; do stat -c "%a %n" "$d" "$d"/*; done > "{record}"\n'
        'exec sh -c "$SSH_ORIGINAL_COMMAND"\n',
        encoding="utf-8",
    )
    observer.chmod(0o755)
    watched = sshd.client_key(tmp_path / "keys", "watched")
    served.server.authorize(f'command="{observer}" {watched.public}')

    git.fetch(served.url, git.Ref("branch", "main"), cache, identity=watched.private, known_hosts=served.known_hosts)

    modes: dict[str, str] = {}
    for line in record.read_text(encoding="utf-8").splitlines():
        mode, path = line.split(" ", 1)
        modes[path] = mode
    folder = next(path for path in modes if Path(path).name.startswith("upkeep-ssh-"))
    assert modes == {folder: "700", f"{folder}/identity": "600", f"{folder}/known_hosts": "600"}
    assert not Path(folder).exists()


def test_a_key_the_server_does_not_know_is_authentication_failed(served: Served, cache: Path) -> None:
    with pytest.raises(git.AuthenticationFailed) as caught:
        git.fetch(
            served.url,
            git.Ref("branch", "main"),
            cache,
            identity=served.stranger.private,
            known_hosts=served.known_hosts,
        )

    assert caught.value.reason == "AuthenticationFailed"
    assert "refused the credentials" in caught.value.message
    assert "Permission denied (publickey)" in caught.value.message
    assert_no_key_in(caught.value, served.stranger)


def test_no_key_is_authentication_failed_saying_none_was_given(served: Served, cache: Path) -> None:
    with pytest.raises(git.AuthenticationFailed) as caught:
        git.fetch(served.url, git.Ref("branch", "main"), cache, known_hosts=served.known_hosts)
    assert "none were given" in caught.value.message


@pytest.mark.parametrize("entry", ["other key", "other host"])
def test_a_host_key_not_in_known_hosts_is_host_key_mismatch(
    served: Served, cache: Path, tmp_path: Path, entry: str
) -> None:
    other = sshd.client_key(tmp_path / "keys", "impostor").public.split()[:2]
    host = f"[127.0.0.1]:{served.server.port}" if entry == "other key" else "git.example.com"
    known_hosts = f"{host} {' '.join(other)}\n".encode()

    with pytest.raises(git.HostKeyMismatch) as caught:
        git.fetch(served.url, git.Ref("branch", "main"), cache, identity=served.key.private, known_hosts=known_hosts)

    assert caught.value.reason == "HostKeyVerificationFailed"
    assert "Host key verification failed" in caught.value.message
    assert_no_key_in(caught.value, served.key)


def test_without_known_hosts_ssh_is_refused_before_connecting(served: Served, cache: Path) -> None:
    for url in (served.url, f"{served.server.user}@127.0.0.1:{served.bare}"):
        for known_hosts in (None, b"", b"\n"):
            with pytest.raises(ValueError, match="known_hosts") as caught:
                git.fetch(url, git.Ref("branch", "main"), cache, identity=served.key.private, known_hosts=known_hosts)
            assert_no_key_in(caught.value, served.key)
    assert not cache.exists()  # nothing was fetched, not even a cache made


def test_an_scp_like_url_is_fetched_over_ssh(served: Served, cache: Path) -> None:
    """``user@host:path`` reaches ssh (on port 22, where this test's sshd is not): not a local path."""
    with pytest.raises((git.Unreachable, git.HostKeyMismatch)) as caught:
        git.fetch(
            f"{served.server.user}@127.0.0.1:{served.bare}",
            git.Ref("branch", "main"),
            cache,
            identity=served.key.private,
            known_hosts=served.known_hosts,
            timeout=20,
        )
    assert "127.0.0.1" in caught.value.message
    assert_no_key_in(caught.value, served.key)


def test_a_server_that_is_down_is_unreachable_over_ssh(served: Served, cache: Path) -> None:
    port = free_port()
    with pytest.raises(git.Unreachable) as caught:
        git.fetch(
            f"ssh://{served.server.user}@127.0.0.1:{port}{served.bare}",
            git.Ref("branch", "main"),
            cache,
            identity=served.key.private,
            known_hosts=served.known_hosts,
            timeout=20,
        )
    assert f"port {port}" in caught.value.message
    assert "Connection refused" in caught.value.message
    assert_no_key_in(caught.value, served.key)


def test_a_missing_repository_over_ssh_is_unreachable(served: Served, cache: Path, tmp_path: Path) -> None:
    with pytest.raises(git.Unreachable) as caught:
        git.fetch(
            served.server.url(tmp_path / "nothing.git"),
            git.Ref("branch", "main"),
            cache,
            identity=served.key.private,
            known_hosts=served.known_hosts,
        )
    assert "does not appear to be a git repository" in caught.value.message
    assert "correct access rights" not in caught.value.message


def test_an_unknown_branch_over_ssh_is_ref_missing(served: Served, cache: Path) -> None:
    with pytest.raises(git.RefMissing):
        git.fetch(
            served.url,
            git.Ref("branch", "nope"),
            cache,
            identity=served.key.private,
            known_hosts=served.known_hosts,
        )


def test_a_revert_branch_is_pushed_over_ssh(served: Served, cache: Path, isolated: Path) -> None:
    good = served.source.head()
    bad = served.source.commit({"app/deploy.yaml": "kind: Deployment\nbroken: true\n"}, "bad")
    served.push()

    pushed = writeback.revert_branch(
        served.url,
        base_branch="main",
        path="app",
        good_commit=good,
        bad_commit=bad,
        branch=f"upkeep/revert/app-{bad[:12]}",
        subject=f"Revert app to {good[:12]}",
        body="rolled back",
        trailers={"Upkeep-Release": "app"},
        identity=served.key.private,
        known_hosts=served.known_hosts,
        cache_dir=cache,
    )

    assert isinstance(pushed, writeback.Pushed)
    shown = subprocess.run(
        ["git", "--git-dir", str(served.bare), "log", "-1", "--format=%s%n%(trailers)", pushed.branch],
        capture_output=True,
        text=True,
        check=True,
        env=gitrepos.git_env(served.source.home),
    ).stdout
    assert shown.splitlines()[:2] == [f"Revert app to {good[:12]}", "Upkeep-Release: app"]
    assert list(isolated.iterdir()) == []  # the key files are gone after the push
