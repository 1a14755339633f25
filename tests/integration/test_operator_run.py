"""`upkeep run` against the cluster: every object gets an honest status, invalid ones a Warning Event."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[None]:
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "upkeep.cli", "run", "-n", namespace, "--standalone", "--liveness=none", "--http=none"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def conditions(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, dict[str, str]]:
    body = cluster.kubectl_json("get", kind, name, "-n", namespace)
    return {c["type"]: c for c in body.get("status", {}).get("conditions", [])}


def test_valid_and_invalid_playbooks(cluster: Cluster, namespace: str, operator: None) -> None:
    playbook = yaml.safe_load((REPO / "examples" / "shop" / "playbooks" / "crashloop.yaml").read_text())
    playbook["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=json.dumps(playbook))
    broken = json.loads(json.dumps(playbook))
    broken["metadata"]["name"] = "broken"
    # An unknown action is refused on apply (the CRD's enum); an unknown param only the catalog can refuse.
    broken["spec"]["steps"][0]["params"]["rebootEverything"] = True
    cluster.kubectl("apply", "-f", "-", input=json.dumps(broken))

    good = eventually(
        lambda: conditions(cluster, "playbook", "crashloop", namespace).get("Accepted"),
        timeout=30,
        message="the Accepted condition",
    )
    assert good["status"] == "True"
    # Playbooks have their own controller now: a valid one is Ready.
    ready = eventually(
        lambda: conditions(cluster, "playbook", "crashloop", namespace).get("Ready"),
        timeout=30,
        message="the Ready condition of the crashloop playbook",
    )
    assert (ready["status"], ready["reason"]) == ("True", "Valid")

    bad = eventually(
        lambda: conditions(cluster, "playbook", "broken", namespace).get("Ready"),
        timeout=30,
        message="the Ready condition of the broken playbook",
    )
    assert (bad["status"], bad["reason"]) == ("False", "InvalidSpec")
    assert "spec.steps[0].params.rebootEverything" in bad["message"]
    assert conditions(cluster, "playbook", "broken", namespace)["Stalled"]["status"] == "True"
    events = eventually(
        lambda: cluster.kubectl_json(
            "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=broken,type=Warning"
        )["items"],
        timeout=30,
        message="a Warning Event",
    )
    assert events[0]["reason"] == "InvalidSpec"
    assert "rebootEverything" in events[0]["message"]
