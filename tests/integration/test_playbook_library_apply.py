"""The playbook library as users install it: `kubectl apply -n NS -f playbooks/`, then the operator accepts every one.

The session cluster, the real kubectl, `upkeep run` on the namespace. Each Playbook gets
Accepted=True; the ones that ship ready to act are Ready=True, and failed-job, which ships
paused until its Job template is filled in, says so in Ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, install_crds, start_operator

pytestmark = pytest.mark.integration
LIBRARY = Path(__file__).resolve().parents[2] / "playbooks"
NAMES = sorted(path.stem for path in LIBRARY.glob("*.yaml"))


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    started = start_operator(cluster, [namespace], tmp_path / "operator.log")
    yield started
    started.stop()


def conditions(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in body.get("status", {}).get("conditions", [])}


def test_kubectl_applies_the_library_and_the_operator_accepts_every_playbook(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    applied = cluster.kubectl("apply", "-n", namespace, "-f", str(LIBRARY))
    assert sorted(line.split()[0] for line in applied.stdout.splitlines()) == [
        f"playbook.upkeep.dev/{name}" for name in NAMES
    ]
    assert "Warning" not in applied.stderr

    def accepted() -> dict[str, dict[str, Any]] | None:
        items = cluster.kubectl_json("get", "playbooks", "-n", namespace)["items"]
        found = {item["metadata"]["name"]: conditions(item) for item in items}
        return found if all("Accepted" in found.get(name, {}) for name in NAMES) else None

    verdicts = eventually(accepted, timeout=30, message="Accepted on every playbook")
    assert {name: verdicts[name]["Accepted"]["status"] for name in NAMES} == dict.fromkeys(NAMES, "True"), (
        operator.log()
    )
    ready = {name: (verdicts[name]["Ready"]["status"], verdicts[name]["Ready"]["reason"]) for name in NAMES}
    assert ready.pop("failed-job") == ("False", "Paused")
    assert set(ready.values()) == {("True", "Valid")}
