"""gitops.signatures: commits signed with real gpg and SSH keys made in the test, checked against trusted keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support import signing
from support.gitrepos import WorkRepo
from upkeep.gitops import git, signatures


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration or keyring of this machine takes part."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GNUPGHOME", raising=False)


@pytest.fixture(scope="module")
def alice_gpg() -> Iterator[signing.GpgKey]:
    with signing.gpg_key("Alice Signer", "alice@upkeep.invalid") as key:
        yield key


@pytest.fixture(scope="module")
def mallory_gpg() -> Iterator[signing.GpgKey]:
    with signing.gpg_key("Mallory", "mallory@upkeep.invalid") as key:
        yield key


@pytest.fixture(scope="module")
def alice_ssh() -> Iterator[signing.SshKey]:
    with signing.ssh_key("alice@upkeep.invalid") as key:
        yield key


@pytest.fixture(scope="module")
def mallory_ssh() -> Iterator[signing.SshKey]:
    with signing.ssh_key("mallory@upkeep.invalid") as key:
        yield key


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    return WorkRepo.create(tmp_path / "source")


def git_dir(repo: WorkRepo) -> Path:
    return repo.path / ".git"


def test_a_commit_signed_by_a_trusted_gpg_key_is_verified_and_names_the_key(
    repo: WorkRepo, alice_gpg: signing.GpgKey
) -> None:
    sha = signing.commit_signed(repo, alice_gpg, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "gpg", {"alice.asc": alice_gpg.public()})

    assert verdict.verified, verdict
    assert verdict.reason == "Verified"
    assert verdict.signer == alice_gpg.fingerprint
    assert alice_gpg.fingerprint in verdict.message
    assert "Alice Signer" in verdict.message


def test_a_binary_gpg_keyring_among_other_keys_is_trusted_too(
    repo: WorkRepo, alice_gpg: signing.GpgKey, mallory_gpg: signing.GpgKey
) -> None:
    sha = signing.commit_signed(repo, alice_gpg, {"a.yaml": "a: 1\n"})
    binary = alice_gpg.gpg("--export", alice_gpg.fingerprint)

    verdict = signatures.verify_commit(
        git_dir(repo), sha, "gpg", {"mallory.asc": mallory_gpg.public(), "alice.gpg": binary}
    )

    assert verdict.verified, verdict


def test_an_unsigned_commit_is_refused_as_unsigned(repo: WorkRepo, alice_gpg: signing.GpgKey) -> None:
    sha = repo.commit({"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "gpg", {"alice.asc": alice_gpg.public()})

    assert (verdict.verified, verdict.reason) == (False, "Unsigned")
    assert sha[:12] in verdict.message


def test_a_commit_signed_by_an_untrusted_gpg_key_is_refused_naming_that_key(
    repo: WorkRepo, alice_gpg: signing.GpgKey, mallory_gpg: signing.GpgKey
) -> None:
    sha = signing.commit_signed(repo, mallory_gpg, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "gpg", {"alice.asc": alice_gpg.public()})

    assert (verdict.verified, verdict.reason) == (False, "UntrustedKey")
    assert mallory_gpg.fingerprint[-16:] in verdict.message
    assert "spec.verify.secretRef" in verdict.message


def test_a_gpg_signature_that_does_not_match_the_commit_is_a_bad_signature(
    repo: WorkRepo, alice_gpg: signing.GpgKey
) -> None:
    sha = signing.commit_signed(repo, alice_gpg, {"a.yaml": "a: 1\n"})
    forged = signing.tampered(repo, sha)

    verdict = signatures.verify_commit(git_dir(repo), forged, "gpg", {"alice.asc": alice_gpg.public()})

    assert (verdict.verified, verdict.reason) == (False, "BadSignature")


def test_a_commit_signed_by_a_trusted_ssh_key_is_verified_as_the_secret_entry(
    repo: WorkRepo, alice_ssh: signing.SshKey, mallory_ssh: signing.SshKey
) -> None:
    sha = signing.commit_signed(repo, alice_ssh, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(
        git_dir(repo), sha, "ssh", {"alice.pub": alice_ssh.public(), "other.pub": mallory_ssh.public()}
    )

    assert verdict.verified, verdict
    assert verdict.signer.startswith("SHA256:")
    assert "'alice.pub'" in verdict.message


def test_a_commit_signed_by_an_untrusted_ssh_key_is_refused(
    repo: WorkRepo, alice_ssh: signing.SshKey, mallory_ssh: signing.SshKey
) -> None:
    sha = signing.commit_signed(repo, mallory_ssh, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "ssh", {"alice.pub": alice_ssh.public()})

    assert (verdict.verified, verdict.reason) == (False, "UntrustedKey")
    assert "SHA256:" in verdict.message


def test_an_ssh_signature_that_does_not_match_the_commit_is_a_bad_signature(
    repo: WorkRepo, alice_ssh: signing.SshKey
) -> None:
    sha = signing.commit_signed(repo, alice_ssh, {"a.yaml": "a: 1\n"})
    forged = signing.tampered(repo, sha)

    verdict = signatures.verify_commit(git_dir(repo), forged, "ssh", {"alice.pub": alice_ssh.public()})

    assert (verdict.verified, verdict.reason) == (False, "BadSignature")


def test_an_unsigned_commit_is_refused_under_ssh_too(repo: WorkRepo, alice_ssh: signing.SshKey) -> None:
    sha = repo.commit({"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "ssh", {"alice.pub": alice_ssh.public()})

    assert (verdict.verified, verdict.reason) == (False, "Unsigned")


def test_a_signature_in_the_other_format_is_refused_saying_the_provider(
    repo: WorkRepo, alice_ssh: signing.SshKey, alice_gpg: signing.GpgKey
) -> None:
    sha = signing.commit_signed(repo, alice_ssh, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "gpg", {"alice.asc": alice_gpg.public()})

    assert (verdict.verified, verdict.reason) == (False, "UntrustedKey")
    assert "provider is gpg" in verdict.message
    assert signatures.signature_format(git_dir(repo), sha) == "ssh"


def test_a_secret_value_that_is_no_key_is_reported_not_raised(repo: WorkRepo, alice_gpg: signing.GpgKey) -> None:
    sha = signing.commit_signed(repo, alice_gpg, {"a.yaml": "a: 1\n"})

    verdict = signatures.verify_commit(git_dir(repo), sha, "gpg", {"junk": b"not a key"})

    assert (verdict.verified, verdict.reason) == (False, "VerifierFailed")
    assert "'junk'" in verdict.message


def test_a_fetched_artifact_is_verified_in_the_cache(repo: WorkRepo, alice_gpg: signing.GpgKey, tmp_path: Path) -> None:
    sha = signing.commit_signed(repo, alice_gpg, {"a.yaml": "a: 1\n"})
    artifact = git.fetch(str(repo.path), git.Ref("branch", "main"), tmp_path / "cache")

    verdict = signatures.verify_commit(artifact, artifact.sha, "gpg", {"alice.asc": alice_gpg.public()})

    assert artifact.sha == sha
    assert verdict.verified, verdict
