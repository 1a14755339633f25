"""A real OpenSSH server on 127.0.0.1 for tests of git over SSH, run as the current user.

Repositories are served as they are on most SSH git hosts: bare repositories at paths on disk,
reached as ``ssh://USER@127.0.0.1:PORT/abs/path.git``; the server runs ``git-upload-pack`` through
the user's login shell. The server has its own host key, configuration and authorized keys in a
folder of the test, listens on a free port, and is stopped at the end of the block.

sshd refuses to start as root without its privilege separation directory (``/run/sshd``), which
only the system's service unit makes; as root, it is made here when missing, as that unit would.
A machine without ``/usr/sbin/sshd`` skips the test (CI installs openssh-server).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.cluster import eventually

__all__ = ["SSHD", "ClientKey", "SshServer", "client_key", "sshd"]

SSHD = Path("/usr/sbin/sshd")


@dataclass(frozen=True)
class ClientKey:
    """A client key pair: ``private`` as a Secret's ``identity`` holds it, ``public`` as one line."""

    private: bytes
    public: str


def client_key(folder: Path, name: str = "client") -> ClientKey:
    """A new ed25519 key pair without a passphrase, made by ssh-keygen in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"upkeep-test-{name}", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return ClientKey(path.read_bytes(), Path(f"{path}.pub").read_text(encoding="utf-8").strip())


@dataclass
class SshServer:
    """A running sshd: where it listens, its host key as a known_hosts line, and who may log in."""

    port: int
    user: str
    known_hosts_line: str
    """``[127.0.0.1]:PORT <type> <key>``: what a Secret's ``known_hosts`` holds for this server."""
    authorized_keys: Path

    def authorize(self, public_key: str) -> None:
        """Let the key (an ``ssh-ed25519 AAAA...`` line) log in from now on."""
        with self.authorized_keys.open("a", encoding="utf-8") as keys:
            keys.write(public_key.strip() + "\n")

    def url(self, repository: Path) -> str:
        """The ssh:// URL of a bare repository at an absolute path on this machine."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository.resolve()}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _openssh_version() -> tuple[int, int]:
    banner = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr
    match = re.search(r"OpenSSH_(\d+)\.(\d+)", banner)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _greets(port: int, process: subprocess.Popen[bytes], log: Path) -> bool:
    """True once sshd answers with its SSH banner; fails at once when sshd has exited."""
    if process.poll() is not None:
        raise AssertionError(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            return connection.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


@contextlib.contextmanager
def sshd(folder: Path) -> Iterator[SshServer]:
    """Run sshd on 127.0.0.1 with its configuration, host key and authorized keys in ``folder``."""
    if not SSHD.exists():
        pytest.skip(f"{SSHD} is not installed (Debian package openssh-server); the SSH tests need a real sshd")
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True, capture_output=True
    )
    authorized_keys = folder / "authorized_keys"
    authorized_keys.touch(mode=0o600)
    port = _free_port()
    lines = [
        "ListenAddress 127.0.0.1",
        f"Port {port}",
        f'HostKey "{host_key}"',
        f'PidFile "{folder / "sshd.pid"}"',
        f'AuthorizedKeysFile "{authorized_keys}"',
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AllowTcpForwarding no",
        "X11Forwarding no",
        "PrintMotd no",
    ]
    if _openssh_version() >= (9, 8):
        lines.append("PerSourcePenalties no")  # tests fail to log in on purpose, from one address
    config = folder / "sshd_config"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = folder / "sshd.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=output, stderr=output)
    try:
        eventually(lambda: _greets(port, process, log), timeout=20, message=f"sshd listening on 127.0.0.1:{port}")
        key_type, key = Path(f"{host_key}.pub").read_text(encoding="utf-8").split()[:2]
        yield SshServer(
            port=port,
            user=pwd.getpwuid(os.geteuid()).pw_name,
            known_hosts_line=f"[127.0.0.1]:{port} {key_type} {key}",
            authorized_keys=authorized_keys,
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
