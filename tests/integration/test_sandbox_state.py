"""With a state directory, a sandbox keeps every object and its resourceVersion counter across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.integration


def test_down_then_up_keeps_everything(tmp_path: Path) -> None:
    from upkeep.sandbox import runner

    state = tmp_path / "state"
    kubeconfig = tmp_path / "kubeconfig"
    with runner.ThreadedSandbox(state, kubeconfig=kubeconfig):
        first = Cluster(kubeconfig)
        first.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kept"}}),
        )
        first.kubectl(
            "apply",
            "-n",
            "kept",
            "-f",
            "-",
            input=json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
            ),
        )
        before = int(first.kubectl_json("get", "configmap", "settings", "-n", "kept")["metadata"]["resourceVersion"])
    with runner.ThreadedSandbox(state, kubeconfig=kubeconfig):
        second = Cluster(kubeconfig)
        kept = second.kubectl_json("get", "configmap", "settings", "-n", "kept")
        assert kept["data"] == {"a": "1"}
        assert int(kept["metadata"]["resourceVersion"]) == before
        second.kubectl("patch", "configmap", "settings", "-n", "kept", "--type", "merge", "-p", '{"data":{"a":"2"}}')
        after = int(second.kubectl_json("get", "configmap", "settings", "-n", "kept")["metadata"]["resourceVersion"])
        assert after > before


def test_cli_up_detach_status_and_down(tmp_path: Path) -> None:
    home = tmp_path / "home"
    upkeep = [sys.executable, "-m", "upkeep.cli", "sandbox"]
    up = subprocess.run(
        [*upkeep, "up", "--detach", "--home", str(home)], capture_output=True, text=True, timeout=60, check=False
    )
    try:
        assert up.returncode == 0, up.stderr
        assert "export KUBECONFIG=" in up.stdout
        status = subprocess.run(
            [*upkeep, "status", "--home", str(home)], capture_output=True, text=True, timeout=30, check=False
        )
        assert status.returncode == 0
        assert "running at https://127.0.0.1:" in status.stdout
        namespaces = Cluster(home / "kubeconfig").kubectl("get", "namespaces", "-o", "name").stdout
        assert "namespace/default" in namespaces
    finally:
        down = subprocess.run(
            [*upkeep, "down", "--home", str(home)], capture_output=True, text=True, timeout=30, check=False
        )
    assert down.returncode == 0
    assert "stopped" in down.stdout
    after = subprocess.run(
        [*upkeep, "status", "--home", str(home)], capture_output=True, text=True, timeout=30, check=False
    )
    assert after.returncode == 1
