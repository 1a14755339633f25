"""Helpers for tests that run the operator: a simulated sandbox, and `upkeep run` as a process.

The operator runs as it runs in production: ``python -m upkeep.cli run`` in a process of its
own, pointed at the cluster by KUBECONFIG. Tests that need failing pods start a sandbox with
the simulation (nodes, kubelets, workload controllers) and the fast settings.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from support.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def simulated_sandbox(folder: Path, **options: Any) -> Iterator[Cluster]:
    """A sandbox running the simulation with the fast settings and Upkeep's CRDs installed.

    ``options`` go to ``ThreadedSandbox`` (``metrics=``, ...); ``simulation=`` replaces the fast settings.
    """
    from upkeep.sandbox import runner
    from upkeep.sandbox.simulation.settings import SimulationSettings

    options.setdefault("simulation", SimulationSettings.fast())
    options.setdefault("admin", True)
    with runner.ThreadedSandbox(kubeconfig=folder / "kubeconfig", **options) as sandbox:
        cluster = Cluster(folder / "kubeconfig", sandbox)
        install_crds(cluster)
        yield cluster


@contextlib.contextmanager
def module_cluster(folder: Path) -> Iterator[Cluster]:
    """The cluster ``$KUBECONFIG`` names (with Upkeep's CRDs installed) when it is set, else a simulated sandbox
    of its own in ``folder``: one per test module, so the same suite runs on a real cluster."""
    configured = os.environ.get("KUBECONFIG")
    if configured:
        cluster = Cluster(Path(configured))
        install_crds(cluster)
        yield cluster
        return
    with simulated_sandbox(folder) as cluster:
        yield cluster


def install_crds(cluster: Cluster) -> None:
    """Apply Upkeep's CRDs and wait until they are served."""
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class OperatorProcess:
    """One `upkeep run` process and its log file."""

    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[str] = field(repr=False)

    def log(self) -> str:
        """What the operator has logged so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: the operator dies at once, as in a node failure or an OOM kill."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self._log.close()


def start_operator(
    cluster: Cluster, namespaces: Sequence[str], log_path: Path, *flags: str, standalone: bool = True
) -> OperatorProcess:
    """Start `upkeep run` on ``namespaces`` (no liveness endpoint, no HTTP server unless ``flags`` ask)."""
    command = [sys.executable, "-m", "upkeep.cli", "run"]
    for namespace in namespaces:
        command += ["--namespace", namespace]
    if standalone:
        command.append("--standalone")
    if "--liveness" not in flags:
        command += ["--liveness", "none"]
    if "--http" not in flags:
        command += ["--http", "none"]
    log = log_path.open("w", encoding="utf-8")
    process = subprocess.Popen(
        [*command, *flags],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return OperatorProcess(process, log_path, log)


@contextlib.contextmanager
def running_operator(
    cluster: Cluster, namespaces: Sequence[str], log_path: Path, *flags: str, standalone: bool = True
) -> Iterator[OperatorProcess]:
    """``start_operator`` as a context: stopped (SIGTERM) on the way out."""
    started = start_operator(cluster, namespaces, log_path, *flags, standalone=standalone)
    try:
        yield started
    finally:
        started.stop()


@contextlib.contextmanager
def gitops_operator(cluster: Cluster, prefix: str, folder: Path) -> Iterator[OperatorProcess]:
    """The operator on the namespaces ``<prefix>-*``, its git cache and its log in ``folder`` (the GitOps modules')."""
    with running_operator(cluster, [f"{prefix}-*"], folder / "operator.log", "--git-cache", str(folder / "git")) as run:
        yield run
