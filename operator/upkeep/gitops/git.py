"""Fetch a GitSource's ref into a local cache with the git binary, and read files at the fetched commit.

The git binary, not a library, does the network work: it speaks every transport and auth scheme that
users' git servers expect, and its behaviour is the one users know from the command line. Everything
here is a plain blocking function; the controller runs it on a thread.

One bare cache repository per URL lives under the cache directory, so each fetch after the first
transfers only the new objects. Fetched refs are kept under ``refs/upkeep/`` in that repository, apart
from anything else, and objects are never garbage collected automatically: an artifact of an earlier
revision stays readable after a force push moved its branch.

Errors, each with a CamelCase ``reason`` for a condition and a ``message`` for people::

    GitError
     ├── FetchError                    the ref could not be brought in; the previous artifact stays
     │    ├── Unreachable              no answer, no repository there, a timeout, or git failed otherwise
     │    ├── AuthenticationFailed     the server refused the credentials (or wanted some)
     │    ├── HostKeyMismatch          SSH: the server's host key is not the one known_hosts gives
     │    ├── RefMissing               the branch, tag or commit is not in the repository (reason RefNotFound)
     │    └── HistoryRewritten         the branch no longer contains the previous commit: a force push
     └── PathMissing                   read_tree: no such path at that commit (reason PathNotFound)

A token never reaches the URL, the command line or a message: it rides in git's configuration
through the environment (``GIT_CONFIG_COUNT``), and every message is scrubbed of it. An SSH private
key is written to a file only its owner can read, in a private directory that lives for one fetch;
ssh is pointed at that file (``GIT_SSH_COMMAND``), and the host key must be in the ``known_hosts``
given: an unknown host is never trusted on first use. ``remote`` gives the same credentials, deadline and
scrubbed messages to git commands that talk to the remote from another repository: write-back's pushes
(``gitops.writeback``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import hashlib
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_TIMEOUT",
    "Artifact",
    "AuthenticationFailed",
    "FetchError",
    "GitError",
    "HistoryRewritten",
    "HostKeyMismatch",
    "PathMissing",
    "Ref",
    "RefMissing",
    "Remote",
    "Unreachable",
    "cache_path",
    "fetch",
    "read_tree",
    "remote",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds one fetch may take, all git calls together; the GitSource CRD's default ``timeout`` (60s)."""

RefKind = Literal["branch", "tag", "commit"]

_SHA = re.compile(r"^[0-9a-f]{40}$")
_SHORT_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_DEFAULT_USERNAME = "x-access-token"
"""User name sent with a bare token: hosting services ignore it for tokens, but basic auth needs one."""


class GitError(Exception):
    """Something git could not do; ``reason`` goes into a condition, ``message`` to people."""

    reason = "GitError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FetchError(GitError):
    """The ref could not be fetched; whatever was fetched before is still there to use."""


class Unreachable(FetchError):
    """No answer from the server, no repository at the URL, a timeout, or another failure of git."""

    reason = "Unreachable"


class AuthenticationFailed(FetchError):
    """The server refused the credentials, or asked for credentials that were not given."""

    reason = "AuthenticationFailed"


class HostKeyMismatch(FetchError):
    """SSH: the server's host key is not in the ``known_hosts`` given, or differs from the one there.

    Not an ``AuthenticationFailed``: the server was not asked to trust us, we refused to trust it, and
    the fix is a ``known_hosts`` entry, not a key. It may also mean someone is in the middle.
    """

    reason = "HostKeyVerificationFailed"


class RefMissing(FetchError):
    """The branch, tag or commit does not exist in the repository."""

    reason = "RefNotFound"


class HistoryRewritten(FetchError):
    """The branch moved to a commit that does not descend from the previous one: a force push.

    ``sha`` is the new commit, fetched and readable, so the caller can decide to accept it.
    """

    reason = "HistoryRewritten"

    def __init__(self, message: str, *, previous_sha: str, sha: str) -> None:
        super().__init__(message)
        self.previous_sha = previous_sha
        self.sha = sha


class PathMissing(GitError):
    """The path asked of ``read_tree`` is not in the commit."""

    reason = "PathNotFound"


@dataclass(frozen=True)
class Ref:
    """What to follow: a branch, a tag, or a commit (7 to 40 hex digits), as a GitSource's ``spec.ref`` says."""

    kind: RefKind
    name: str

    @classmethod
    def from_spec(cls, spec: Mapping[str, str] | None) -> Ref:
        """The ref of a GitSource's ``spec.ref`` (exactly one of branch, tag, commit; absent: branch main)."""
        if not spec:
            return cls("branch", "main")
        if len(spec) != 1:
            raise ValueError(f"a ref has exactly one of branch, tag or commit, not {sorted(spec)}")
        ((kind, name),) = spec.items()
        if kind not in ("branch", "tag", "commit"):
            raise ValueError(f"unknown ref kind {kind!r}: use branch, tag or commit")
        return cls(kind, name)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.kind == "commit" and not _SHORT_SHA.match(self.name):
            raise ValueError(f"commit {self.name!r} is not 7 to 40 lowercase hexadecimal digits")
        if self.kind != "commit" and (not self.name or self.name.startswith("-") or ".." in self.name):
            raise ValueError(f"{self.kind} name {self.name!r} is not a valid git ref name")

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Artifact:
    """One fetched commit: its revision for status, and where its files can be read (``read_tree``)."""

    url: str
    """The repository's URL, without any credentials in it."""
    ref: Ref
    sha: str
    """The commit's full SHA-1."""
    revision: str
    """``<branch>@sha1:<sha>``, ``<tag>@sha1:<sha>``, or ``sha1:<sha>`` for a pinned commit."""
    fetched_at: datetime.datetime
    repository: Path
    """The bare cache repository that holds the commit."""


def cache_path(url: str, cache_dir: Path) -> Path:
    """The bare cache repository of ``url``: one per URL, named by a hash so that any URL makes a safe name."""
    return Path(cache_dir) / f"{hashlib.sha256(_normalise(url).encode()).hexdigest()[:32]}.git"


def fetch(
    url: str,
    ref: Ref,
    cache_dir: Path,
    *,
    token: str | None = None,
    username: str | None = None,
    identity: bytes | None = None,
    known_hosts: bytes | None = None,
    previous_sha: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Artifact:
    """Fetch ``ref`` of ``url`` into the cache under ``cache_dir`` and return the commit it points at.

    ``token`` (with ``username``, default ``x-access-token``) is sent as HTTP basic auth, over http(s)
    only. Over SSH (``ssh://`` or ``user@host:path``), ``identity`` is the private key (OpenSSH or
    PEM format) and ``known_hosts`` the server's host key lines; ``known_hosts`` is required.
    With ``previous_sha`` (the commit of the last artifact) a branch that no longer contains it
    raises ``HistoryRewritten``. A pinned full commit already in the cache is not fetched again:
    a commit never changes. Raises a ``FetchError``; ``ValueError`` for a URL scheme not supported
    or an SSH URL without ``known_hosts``.
    """
    scheme = _scheme(url)
    deadline = time.monotonic() + timeout
    repository = cache_path(url, cache_dir)
    credentials = _credentials(url, scheme, token, username, identity, known_hosts, timeout)
    with credentials as secrets, _locked(repository):
        if not repository.exists():
            _create_cache(repository)
        runner = _Runner(repository, url, secrets, deadline, timeout)
        sha = _fetch_ref(runner, ref, _normalise(url))
        if ref.kind == "branch" and previous_sha and previous_sha != sha:
            _check_descends(runner, ref, previous_sha, sha)
    return Artifact(
        url=_display_url(url),
        ref=ref,
        sha=sha,
        revision=f"sha1:{sha}" if ref.kind == "commit" else f"{ref.name}@sha1:{sha}",
        fetched_at=datetime.datetime.now(datetime.UTC),
        repository=repository,
    )


def read_tree(artifact: Artifact, path: str = "") -> dict[str, bytes]:
    """The files under ``path`` at the artifact's commit, keyed by their path relative to ``path``.

    ``""`` or ``"."`` is the whole repository; a path naming a file gives that one file under its
    name. Symbolic links and submodules are left out: rendering reads manifests, not links.
    """
    cleaned = "/".join(piece for piece in path.strip().split("/") if piece not in ("", "."))
    if ".." in cleaned.split("/"):
        raise PathMissing(f"path {path!r} leaves the repository")
    git = ["git", "--git-dir", str(artifact.repository)]
    spec = f"{artifact.sha}:{cleaned}"
    kind = subprocess.run([*git, "cat-file", "-t", spec], capture_output=True, text=True, check=False, env=_env())
    if kind.returncode != 0:
        raise PathMissing(f"no {cleaned!r} at {artifact.revision}")
    if kind.stdout.strip() == "blob":
        entries = [(cleaned.rsplit("/", 1)[-1], spec)]
    elif kind.stdout.strip() == "tree":
        listing = subprocess.run(
            [*git, "ls-tree", "-r", "-z", spec], capture_output=True, check=True, env=_env()
        ).stdout.decode()
        entries = []
        for line in filter(None, listing.split("\0")):
            meta, name = line.split("\t", 1)
            mode, object_type, object_id = meta.split()
            if object_type == "blob" and mode != "120000":
                entries.append((name, object_id))
    else:
        raise PathMissing(f"{cleaned!r} at {artifact.revision} is a {kind.stdout.strip()}, not a file or directory")
    return dict(zip((name for name, _ in entries), _read_blobs(git, [oid for _, oid in entries]), strict=True))


def _read_blobs(git: Sequence[str], object_ids: Sequence[str]) -> list[bytes]:
    """The contents of many blobs through one ``git cat-file --batch``, not a process per file."""
    if not object_ids:
        return []
    output = subprocess.run(
        [*git, "cat-file", "--batch"],
        input="".join(f"{oid}\n" for oid in object_ids).encode(),
        capture_output=True,
        check=True,
        env=_env(),
    ).stdout
    contents, at = [], 0
    for _ in object_ids:
        header_end = output.index(b"\n", at)
        size = int(output[at:header_end].split()[2])
        contents.append(output[header_end + 1 : header_end + 1 + size])
        at = header_end + 1 + size + 1  # the content is followed by a newline
    return contents


def _fetch_ref(runner: _Runner, ref: Ref, source: str) -> str:
    if ref.kind == "branch":
        runner.fetch(source, [f"+refs/heads/{ref.name}:refs/upkeep/heads/{ref.name}"], ref)
        return runner.resolve(f"refs/upkeep/heads/{ref.name}") or _missing(ref)
    if ref.kind == "tag":
        runner.fetch(source, [f"+refs/tags/{ref.name}:refs/upkeep/tags/{ref.name}"], ref)
        return runner.resolve(f"refs/upkeep/tags/{ref.name}") or _missing(ref)
    if _SHA.match(ref.name) and (known := runner.resolve(ref.name)):
        return known
    # A commit is fetched through the branches and tags that contain it: servers need not hand out a
    # commit asked for by SHA alone, and a short SHA cannot be asked for at all.
    runner.fetch(source, ["+refs/heads/*:refs/upkeep/heads/*", "+refs/tags/*:refs/upkeep/tags/*"], ref)
    found = runner.resolve(ref.name)
    if found is None and _SHA.match(ref.name):
        with contextlib.suppress(RefMissing):
            runner.fetch(source, [ref.name], ref)
            found = runner.resolve(ref.name)
    return found or _missing(ref)


def _check_descends(runner: _Runner, ref: Ref, previous_sha: str, sha: str) -> None:
    # The fetch brought the new commit's whole history, so a previous commit missing from the cache is no ancestor.
    known = runner.resolve(previous_sha) is not None
    if not known or runner.git(["merge-base", "--is-ancestor", previous_sha, sha], check=False).returncode != 0:
        raise HistoryRewritten(
            f"{ref} of {_display_url(runner.url)} moved from {previous_sha[:12]} to {sha[:12]}, which does not "
            "contain it: the history was rewritten (force push)",
            previous_sha=previous_sha,
            sha=sha,
        )


def _missing(ref: Ref) -> str:
    raise RefMissing(f"{ref} is not in the repository")


@dataclass(frozen=True)
class _Secrets:
    """The credential as git configuration for the environment, and the strings no message may contain."""

    config: tuple[tuple[str, str], ...]
    hidden: tuple[str, ...]
    environment: tuple[tuple[str, str], ...] = ()
    """Variables for git's environment (``GIT_SSH_COMMAND``); they name files, never hold a secret."""

    @classmethod
    def of(cls, token: str, username: str | None) -> _Secrets:
        basic = base64.b64encode(f"{username or _DEFAULT_USERNAME}:{token}".encode()).decode()
        return cls((("http.extraHeader", f"Authorization: Basic {basic}"),), (basic, token))

    @classmethod
    def none(cls) -> _Secrets:
        return cls((), ())

    def scrub(self, text: str) -> str:
        for secret in sorted(self.hidden, key=len, reverse=True):
            text = text.replace(secret, "***")
        return re.sub(r"(Authorization:\s*\w+\s+)\S+", r"\1***", text, flags=re.IGNORECASE)


@contextlib.contextmanager
def _credentials(
    url: str,
    scheme: str,
    token: str | None,
    username: str | None,
    identity: bytes | None,
    known_hosts: bytes | None,
    timeout: float,
) -> Iterator[_Secrets]:
    """The credentials for one fetch; for SSH, key files that exist only while the block runs."""
    if scheme in ("http", "https"):
        yield _Secrets.of(token, username) if token else _Secrets.none()
        return
    if scheme != "ssh":
        yield _Secrets.none()
        return
    if not known_hosts or not known_hosts.strip():
        raise ValueError(
            f"{_display_url(url)} can be fetched over SSH only with the server's host key: give known_hosts "
            "(the key known_hosts in spec.secretRef's Secret, e.g. from ssh-keyscan, checked); an unknown host "
            "key is never accepted"
        )
    # mkdtemp makes the directory 0700; the files are made 0600 before a byte is written to them.
    folder = Path(tempfile.mkdtemp(prefix="upkeep-ssh-"))
    try:
        hosts_file = _private_file(folder / "known_hosts", known_hosts)
        key_file = _private_file(folder / "identity", identity) if identity and identity.strip() else None
        command = [
            "ssh",
            "-F",
            "none",  # no ssh_config of this machine or user: every option is here
            *(["-i", str(key_file)] if key_file else ["-o", "IdentityFile=none"]),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            f"UserKnownHostsFile={hosts_file}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "UpdateHostKeys=no",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, math.ceil(min(timeout, 30.0)))}",
            "-o",
            "LogLevel=ERROR",
        ]
        text = (identity or b"").decode("utf-8", "replace").strip()
        hidden = (text, *(line for line in text.splitlines() if len(line.strip()) >= 16)) if text else ()
        yield _Secrets((), tuple(hidden), (("GIT_SSH_COMMAND", shlex.join(command)),))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _private_file(path: Path, content: bytes) -> Path:
    """``content`` in a new file that only this user can read; ssh wants a key to end in a newline."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content.replace(b"\r\n", b"\n").rstrip(b"\n") + b"\n")
    return path


@dataclass(frozen=True)
class _Runner:
    """Runs git against one cache repository within one deadline, turning failures into ``FetchError``."""

    repository: Path
    url: str
    secrets: _Secrets
    deadline: float
    timeout: float

    def git(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Unreachable(f"fetching {_display_url(self.url)} took longer than {self.timeout:g}s")
        command = ["git", "--git-dir", str(self.repository), "-c", "credential.helper=", *args]
        # A new session, so a timeout kills git's helpers (git-remote-https) too, not only git itself.
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env={**_env(self.secrets.config), **dict(self.secrets.environment)},
            start_new_session=True,
        ) as process:
            try:
                stdout, stderr = process.communicate(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
                raise Unreachable(f"fetching {_display_url(self.url)} took longer than {self.timeout:g}s") from None
        result = subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise Unreachable(f"git {args[0]} failed: {self.secrets.scrub(stderr.strip())}")
        return result

    def fetch(self, source: str, refspecs: Sequence[str], ref: Ref) -> None:
        result = self.git(["fetch", "--no-tags", "--no-write-fetch-head", "--quiet", source, *refspecs], check=False)
        if result.returncode != 0:
            raise _classify(
                self.secrets.scrub(result.stderr.strip()), _display_url(self.url), ref, bool(self.secrets.hidden)
            )

    def resolve(self, name: str) -> str | None:
        """The full SHA of the commit ``name`` points at in the cache, or None when there is none."""
        result = self.git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"], check=False)
        return result.stdout.strip() if result.returncode == 0 else None


_AUTH_FAILED = (
    "authentication failed",
    "could not read username",
    "could not read password",
    "returned error: 401",
    "returned error: 403",
    "permission denied",
    "access denied",
)
_HOST_KEY = ("host key verification failed", "remote host identification has changed")
_SSH_NOISE = (
    "could not read from remote repository",
    "please make sure you have the correct access rights",
    "and the repository exists",
)
"""What git adds to every failure over SSH: left out of a message for the line that says what went wrong."""
_REF_MISSING = ("couldn't find remote ref", "no such remote ref", "not our ref", "unadvertised object")


def _classify(stderr: str, url: str, ref: Ref, with_credentials: bool) -> FetchError:
    """The error that git's standard error (with ``LC_ALL=C``) describes."""
    lowered = stderr.lower()
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if not any(noise in line.lower() for noise in _SSH_NOISE)]
    detail = (telling or lines or ["git gave no reason"])[-1]
    if any(marker in lowered for marker in _HOST_KEY):
        return HostKeyMismatch(
            f"{url}: the server's host key is not the one in known_hosts (spec.secretRef), or none for this host "
            f"is there; check the key with the server's administrator before changing known_hosts: {detail}"
        )
    if any(marker in lowered for marker in _AUTH_FAILED):
        if with_credentials:
            return AuthenticationFailed(f"{url} refused the credentials: {detail}")
        return AuthenticationFailed(f"{url} needs credentials and none were given (spec.secretRef): {detail}")
    if any(marker in lowered for marker in _REF_MISSING):
        return RefMissing(f"{ref} is not in {url}: {detail}")
    return Unreachable(f"cannot fetch from {url}: {detail}")


def _scheme(url: str) -> str:
    """``http``, ``https``, ``file``, ``ssh`` (``ssh://`` and scp-like ``user@host:path``) or ``path``."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme in ("http", "https", "file", "ssh"):
        return parsed.scheme
    if re.match(r"^[^/:]+@[^/:]+:", url):
        return "ssh"
    if not parsed.scheme:
        return "path"
    raise ValueError(
        f"{_display_url(url)}: only https://, http://, ssh://, user@host:path, file:// and local paths can be fetched"
    )


def _normalise(url: str) -> str:
    """A local path made absolute, so that the cache key and git do not depend on the working directory."""
    return str(Path(url).resolve()) if _scheme(url) == "path" else url


def _display_url(url: str) -> str:
    """The URL without a user name or password, should one be written into it."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme and "@" in parsed.netloc:
        return urllib.parse.urlunsplit(parsed._replace(netloc=parsed.netloc.rsplit("@", 1)[1]))
    return url


def _env(config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """git's environment: English messages to classify, no prompts, and the given configuration."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_CONFIG_", "GIT_ASKPASS"))}
    for inherited in ("SSH_ASKPASS", "SSH_AUTH_SOCK", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT"):
        env.pop(inherited, None)  # ssh is configured per fetch, never by whoever started the operator
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0")
    if config:
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _create_cache(repository: Path) -> None:
    """A new bare repository, made aside and renamed into place so that a half-made one is never seen."""
    repository.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".init-", dir=repository.parent))
    try:
        subprocess.run(["git", "init", "--bare", "--quiet", str(staging)], check=True, env=_env())
        # No automatic gc: it would drop the commits of older artifacts once a force push orphans them.
        subprocess.run(["git", "--git-dir", str(staging), "config", "gc.auto", "0"], check=True, env=_env())
        staging.rename(repository)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _locked(repository: Path) -> Iterator[None]:
    """One fetch at a time per cache repository, across threads and processes (git's ref locks would fail)."""
    repository.parent.mkdir(parents=True, exist_ok=True)
    with open(repository.with_suffix(".lock"), "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Remote:
    """git run in a local repository that talks to one remote URL with its credentials (``remote``).

    Write-back (``gitops.writeback``) builds commits in a repository of its own and pushes them through
    this, so a push gets the same credentials in the environment, no prompts, deadline and scrubbed
    messages as a fetch does.
    """

    _runner: _Runner

    @property
    def url(self) -> str:
        """The remote's URL without any credentials in it, for messages."""
        return _display_url(self._runner.url)

    @property
    def source(self) -> str:
        """The URL to give git (a local path made absolute)."""
        return _normalise(self._runner.url)

    def git(self, args: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``git args`` in the repository; a failure with ``check`` is ``Unreachable`` with a scrubbed message."""
        return self._runner.git(args, check=check)

    def scrub(self, text: str) -> str:
        """``text`` with every credential replaced by ``***``."""
        return self._runner.secrets.scrub(text)

    def failure(self, stderr: str) -> FetchError:
        """The error that git's standard error of a talk with the remote describes (auth, host key, or Unreachable)."""
        return _classify(self.scrub(stderr.strip()), self.url, Ref("branch", "HEAD"), bool(self._runner.secrets.hidden))


@contextlib.contextmanager
def remote(
    repository: Path,
    url: str,
    *,
    token: str | None = None,
    username: str | None = None,
    identity: bytes | None = None,
    known_hosts: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Remote]:
    """A ``Remote`` for git in ``repository`` talking to ``url``, within ``timeout`` seconds in all.

    The credentials are those of ``fetch`` (and, for SSH, exist as files only while the block runs).
    """
    scheme = _scheme(url)
    with _credentials(url, scheme, token, username, identity, known_hosts, timeout) as secrets:
        yield Remote(_Runner(repository, url, secrets, time.monotonic() + timeout, timeout))
