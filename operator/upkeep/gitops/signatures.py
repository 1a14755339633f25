"""Whether a fetched commit carries a good signature by a trusted key (a GitSource's ``spec.verify``).

git itself checks the signature (``git verify-commit --raw``), with nothing of the machine's
configuration or keys involved: for OpenPGP a temporary ``GNUPGHOME`` that holds only the trusted
keys, for SSH an ``allowedSignersFile`` built from them, handed to git through the environment
(``GIT_CONFIG_COUNT``) as ``gitops.git`` hands over its settings. The same binaries users run
(``gpg``, ``ssh-keygen``) decide, so a commit that passes here passes ``git log --show-signature``
with the same keys, and the reverse.

Every answer is a ``Verdict``; nothing here raises for a commit that fails. Reasons:

- ``Verified``: a good signature by one of the trusted keys (the message names the key).
- ``Unsigned``: the commit has no signature.
- ``UntrustedKey``: signed, but by no trusted key (or in the other provider's format).
- ``BadSignature``: signed by a trusted key, but the signature does not match the commit.
- ``VerifierFailed``: gpg, ssh-keygen or git could not run, or the trusted keys could not be read.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from upkeep.gitops import git

__all__ = [
    "BAD_SIGNATURE",
    "PROVIDERS",
    "UNSIGNED",
    "UNTRUSTED_KEY",
    "VERIFIED",
    "VERIFIER_FAILED",
    "Provider",
    "Verdict",
    "signature_format",
    "verify_commit",
]

Provider = Literal["gpg", "ssh"]
PROVIDERS: tuple[Provider, ...] = ("gpg", "ssh")

VERIFIED = "Verified"
UNSIGNED = "Unsigned"
UNTRUSTED_KEY = "UntrustedKey"
BAD_SIGNATURE = "BadSignature"
VERIFIER_FAILED = "VerifierFailed"

TIMEOUT = 30.0
"""Seconds gpg or ssh-keygen may take for one commit: verifying is milliseconds, importing a few keys
well under a second; a verifier that hangs (an agent it waits for) must not hold a fetch forever."""

_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_SSH_KEY_TYPE = re.compile(r"^(ssh-|ecdsa-|sk-)")
_PRINCIPAL_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
_ARMOR = {
    "-----BEGIN PGP SIGNATURE-----": "gpg",
    "-----BEGIN SSH SIGNATURE-----": "ssh",
    "-----BEGIN SIGNED MESSAGE-----": "x509",
}


@dataclass(frozen=True)
class Verdict:
    """The answer for one commit: ``verified``, a CamelCase ``reason`` and a ``message`` for people."""

    verified: bool
    reason: str
    message: str
    signer: str = ""
    """The key that made a good signature: an OpenPGP fingerprint or an SSH ``SHA256:`` fingerprint."""


def signature_format(repository: Path | git.Artifact, commit: str) -> str | None:
    """``gpg``, ``ssh`` or ``x509`` by the armor of the commit's signature; None when it has none."""
    header = _signature_header(_repository_of(repository), commit)
    if header is None:
        return None
    return _ARMOR.get(header, "unknown")


def verify_commit(
    repository: Path | git.Artifact,
    commit: str,
    provider: Provider,
    trusted_keys: Mapping[str, bytes],
) -> Verdict:
    """Check ``commit`` of ``repository`` (a git directory, or an artifact's cache) against ``trusted_keys``.

    ``trusted_keys`` maps a name (a Secret's data key) to public keys: for ``gpg`` an armored or binary
    OpenPGP key or keyring; for ``ssh`` one public key a line (``ssh-ed25519 AAAA... comment``, as in
    ``id_ed25519.pub``), or lines of an allowed-signers file. The name is the principal SSH keys are
    trusted as, so the verdict says which entry of the Secret matched.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"unknown signature provider {provider!r}: use gpg or ssh")
    if not _SHA.match(commit):
        raise ValueError(f"commit {commit!r} is not 7 to 40 lowercase hexadecimal digits")
    path = _repository_of(repository)
    short = commit[:12]
    try:
        header = _signature_header(path, commit)
    except _Failed as error:
        return Verdict(False, VERIFIER_FAILED, f"cannot read commit {short}: {error}")
    if header is None:
        return Verdict(False, UNSIGNED, f"commit {short} is not signed")
    found = _ARMOR.get(header, "unknown")
    if found != provider:
        kind = {"gpg": "an OpenPGP (gpg)", "ssh": "an SSH", "x509": "an X.509"}.get(found, "an unknown kind of")
        return Verdict(
            False,
            UNTRUSTED_KEY,
            f"commit {short} has {kind} signature, but spec.verify.provider is {provider}: no trusted key can have "
            "made it (set the provider to the format the commits are signed in)",
        )
    if not trusted_keys:
        return Verdict(False, UNTRUSTED_KEY, f"commit {short} is signed, but the Secret holds no trusted keys")
    try:
        if provider == "gpg":
            return _verify_gpg(path, commit, trusted_keys)
        return _verify_ssh(path, commit, trusted_keys)
    except _Failed as error:
        return Verdict(False, VERIFIER_FAILED, f"cannot verify commit {short}: {error}")


class _Failed(Exception):
    """A verifier could not run; the message says which and why."""


def _repository_of(repository: Path | git.Artifact) -> Path:
    return repository.repository if isinstance(repository, git.Artifact) else Path(repository)


def _signature_header(repository: Path, commit: str) -> str | None:
    """The first line of the commit's ``gpgsig`` header (its armor), or None for an unsigned commit."""
    raw = _run(["git", "--git-dir", str(repository), "cat-file", "commit", commit], _env())
    if raw.returncode != 0:
        raise _Failed(_last_line(raw.stderr) or f"git cat-file exited with {raw.returncode}")
    for line in raw.stdout.split("\n"):
        if not line:
            break  # the headers end at the first empty line; the message follows
        if line.startswith(("gpgsig ", "gpgsig-sha256 ")):
            return line.split(" ", 1)[1].strip()
    return None


def _verify_gpg(repository: Path, commit: str, trusted_keys: Mapping[str, bytes]) -> Verdict:
    short = commit[:12]
    # A short directory under /tmp: gpg's socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="upkeep-gpg-") as home:
        os.chmod(home, 0o700)
        # No agent or dirmngr: verifying needs neither, and one left running would outlive the directory.
        Path(home, "gpg.conf").write_text("no-autostart\ntrust-model always\n", encoding="utf-8")
        environment = {**_env(), "GNUPGHOME": home}
        for name, key in sorted(trusted_keys.items()):
            imported = _run(["gpg", "--batch", "--quiet", "--no-tty", "--import"], environment, input_=key)
            if imported.returncode != 0:
                raise _Failed(f"the trusted key {name!r} is not an OpenPGP public key: {_last_line(imported.stderr)}")
        result = _run(["git", "--git-dir", str(repository), "verify-commit", "--raw", commit], environment)
    status = _gpg_status(result.stderr)
    if "GOODSIG" in status and "VALIDSIG" in status and result.returncode == 0:
        valid = status["VALIDSIG"]
        fingerprint = valid[-1] if len(valid) >= 10 else valid[0]
        user = " ".join(status["GOODSIG"][1:])
        return Verdict(True, VERIFIED, f"commit {short} is signed by {user} (key {fingerprint})", signer=fingerprint)
    if "BADSIG" in status:
        key_id = status["BADSIG"][0] if status["BADSIG"] else "?"
        return Verdict(
            False, BAD_SIGNATURE, f"commit {short} has a signature by key {key_id} that does not match its content"
        )
    for code, what in (("EXPKEYSIG", "has expired"), ("REVKEYSIG", "is revoked"), ("EXPSIG", "signature has expired")):
        if code in status:
            key_id = status[code][0] if status[code] else "?"
            return Verdict(False, UNTRUSTED_KEY, f"commit {short} is signed by key {key_id}, which {what}")
    if "NO_PUBKEY" in status or "ERRSIG" in status:
        key_id = (status.get("NO_PUBKEY") or status.get("ERRSIG") or ["?"])[0]
        return Verdict(
            False,
            UNTRUSTED_KEY,
            f"commit {short} is signed by key {key_id}, which is not among the trusted keys "
            "(add its public key to the Secret of spec.verify.secretRef to trust it)",
        )
    return Verdict(
        False,
        BAD_SIGNATURE,
        f"commit {short}: gpg did not find a good signature ({_last_line(result.stderr) or 'no detail'})",
    )


def _gpg_status(output: str) -> dict[str, list[str]]:
    """gpg's ``[GNUPG:] KEYWORD args...`` lines (``--status-fd``) as keyword → arguments."""
    status: dict[str, list[str]] = {}
    for line in output.splitlines():
        if line.startswith("[GNUPG:] "):
            keyword, *arguments = line[len("[GNUPG:] ") :].split(" ")
            status.setdefault(keyword, arguments)
    return status


def _allowed_signers(trusted_keys: Mapping[str, bytes]) -> str:
    """An allowed-signers file: each public key trusted as the principal named after its entry in the Secret."""
    lines = []
    for name, value in sorted(trusted_keys.items()):
        principal = _PRINCIPAL_UNSAFE.sub("-", name) or "trusted"
        for raw in value.decode("utf-8", errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if _SSH_KEY_TYPE.match(line):
                key_type, key, *_ = line.split()
                lines.append(f"{principal} {key_type} {key}")
            else:
                lines.append(line)  # an allowed-signers line of its own, with its own principals
    return "".join(f"{line}\n" for line in lines)


def _verify_ssh(repository: Path, commit: str, trusted_keys: Mapping[str, bytes]) -> Verdict:
    short = commit[:12]
    signers = _allowed_signers(trusted_keys)
    if not signers:
        return Verdict(False, UNTRUSTED_KEY, f"commit {short} is signed, but the Secret holds no SSH public keys")
    with tempfile.TemporaryDirectory(prefix="upkeep-ssh-") as folder:
        allowed = Path(folder, "allowed_signers")
        allowed.write_text(signers, encoding="utf-8")
        config = (
            ("gpg.ssh.allowedSignersFile", str(allowed)),
            ("gpg.ssh.program", "ssh-keygen"),
            ("gpg.ssh.revocationFile", ""),
        )
        result = _run(["git", "--git-dir", str(repository), "verify-commit", "--raw", commit], _env(config))
    output = result.stderr
    good = re.search(r'Good "git" signature for (\S+) with (\S+) key (SHA256:\S+)', output)
    if result.returncode == 0 and good:
        principal, key_type, fingerprint = good.groups()
        return Verdict(
            True,
            VERIFIED,
            f"commit {short} is signed by {key_type} key {fingerprint} (trusted as {principal!r})",
            signer=fingerprint,
        )
    fingerprint_seen = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", output)
    key = f"key {fingerprint_seen.group(1)}" if fingerprint_seen else "a key"
    if "No principal matched" in output:
        return Verdict(
            False,
            UNTRUSTED_KEY,
            f"commit {short} is signed by SSH {key}, which is not among the trusted keys "
            "(add its public key to the Secret of spec.verify.secretRef to trust it)",
        )
    if "incorrect signature" in output or "verification failed" in output.lower():
        return Verdict(False, BAD_SIGNATURE, f"commit {short} has an SSH signature that does not match its content")
    return Verdict(
        False,
        BAD_SIGNATURE,
        f"commit {short}: ssh-keygen did not find a good signature ({_last_line(output) or 'no detail'})",
    )


def _run(
    command: Sequence[str], environment: Mapping[str, str], *, input_: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            list(command),
            input=input_,
            capture_output=True,
            env=dict(environment),
            timeout=TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise _Failed(f"{command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise _Failed(f"{command[0]} took longer than {TIMEOUT:g}s") from None
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", errors="replace"),
        done.stderr.decode("utf-8", errors="replace"),
    )


def _env(config: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """git's environment: English messages, none of the machine's or the user's git configuration, and ``config``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GIT_CONFIG_", "GNUPGHOME"))}
    env.update(LC_ALL="C", LANGUAGE="C", GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    if config:
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for index, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{index}"] = key
            env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""
