"""Signing keys made in the test and commits signed with them: OpenPGP (gpg) and SSH (ssh-keygen).

Keys are generated without a passphrase in a directory of their own (a short one under the system's
temporary directory: gpg's agent socket path is limited to about 100 bytes). git signs through a
small wrapper given as ``gpg.program``, so the test process's environment (``GNUPGHOME``) is never
touched. ``close`` stops the gpg agent that signing starts and removes the keys.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from support.gitrepos import WorkRepo

__all__ = ["GpgKey", "SshKey", "commit_signed", "gpg_key", "ssh_key", "tampered"]


@dataclass
class GpgKey:
    """An OpenPGP key pair in a ``GNUPGHOME`` of its own."""

    home: Path
    fingerprint: str
    program: Path
    """A wrapper around gpg with ``--homedir`` set, for git's ``gpg.program``."""

    def gpg(self, *args: str, input_: bytes | None = None) -> bytes:
        return subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--quiet", *args],
            input=input_,
            capture_output=True,
            check=True,
        ).stdout

    def public(self) -> bytes:
        """The public key, armored, as a user puts it into the verification Secret."""
        return self.gpg("--armor", "--export", self.fingerprint)

    def signing_options(self) -> list[str]:
        """``git -c`` options that sign a commit with this key."""
        return ["-c", f"gpg.program={self.program}", "-c", f"user.signingkey={self.fingerprint}"]

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)


@dataclass
class SshKey:
    """An ed25519 key pair made by ssh-keygen."""

    private: Path

    def public(self) -> bytes:
        """The public key line (``ssh-ed25519 AAAA... comment``), as in ``id_ed25519.pub``."""
        return self.private.with_suffix(".pub").read_bytes()

    def signing_options(self) -> list[str]:
        return ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.private}"]

    def close(self) -> None:
        shutil.rmtree(self.private.parent, ignore_errors=True)


@contextlib.contextmanager
def gpg_key(name: str = "Alice Signer", email: str = "alice@upkeep.invalid") -> Iterator[GpgKey]:
    """A new ed25519 OpenPGP signing key without a passphrase."""
    home = Path(tempfile.mkdtemp(prefix="gpg-"))
    home.chmod(0o700)
    program = home / "gpg-for-git"
    program.write_text(f'#!/bin/sh\nexec gpg --homedir "{home}" "$@"\n', encoding="utf-8")
    program.chmod(0o755)
    key = GpgKey(home, "", program)
    try:
        key.gpg("--passphrase", "", "--quick-gen-key", f"{name} <{email}>", "ed25519", "sign", "never")
        listing = key.gpg("--list-keys", "--with-colons", email).decode()
        key.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        yield key
    finally:
        key.close()


@contextlib.contextmanager
def ssh_key(comment: str = "alice@upkeep.invalid") -> Iterator[SshKey]:
    """A new ed25519 SSH key without a passphrase."""
    folder = Path(tempfile.mkdtemp(prefix="ssh-"))
    private = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(private)],
        capture_output=True,
        check=True,
    )
    key = SshKey(private)
    try:
        yield key
    finally:
        key.close()


def commit_signed(
    repo: WorkRepo, key: GpgKey | SshKey, files: Mapping[str, str | None], message: str = "signed change"
) -> str:
    """Write ``files`` (None deletes) and commit them signed with ``key``; the new commit's SHA."""
    for name, content in files.items():
        target = repo.path / name
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    repo.git("add", "--all")
    repo.git(*key.signing_options(), "commit", "--quiet", "--allow-empty", "-S", "-m", message)
    return repo.head()


def tampered(repo: WorkRepo, sha: str) -> str:
    """A copy of commit ``sha`` with another message but the same signature: a signature that does not match.

    The copy is written as an object only; no branch points at it.
    """
    raw = subprocess.run(["git", "cat-file", "commit", sha], cwd=repo.path, capture_output=True, check=True).stdout
    headers, _, message = raw.partition(b"\n\n")
    forged = headers + b"\n\n" + b"tampered: " + message
    return (
        subprocess.run(
            ["git", "hash-object", "-t", "commit", "-w", "--stdin"],
            cwd=repo.path,
            input=forged,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
