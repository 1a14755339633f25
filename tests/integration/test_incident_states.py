"""People steer Incidents with `kubectl patch` of spec.state; `upkeep run --dry-run` writes no Incident.

These run on the shared API-only sandbox: the test writes a pod's status itself, as a kubelet would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def start_operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Start `upkeep run` on the test's namespace with extra flags; stopped at the end."""
    cluster.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
    started: list[tuple[subprocess.Popen[bytes], Any]] = []

    def start(*flags: str) -> None:
        log = (tmp_path / f"operator-{len(started)}.log").open("w")
        command = [sys.executable, "-m", "upkeep.cli", "run", "--namespace", namespace, "--standalone"]
        process = subprocess.Popen(
            [*command, "--liveness", "none", "--http", "none", *flags],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append((process, log))

    yield start
    for process, log in started:
        process.terminate()
        process.wait(30)
        log.close()


def manual_incident(name: str, namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "severity": "SEV2",
                "service": "checkout",
                "summary": "checkout answers 502 for card payments",
                "signal": {"type": "Manual", "source": "kubectl"},
            },
        }
    )


def status(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "incident", name, "-n", namespace).get("status") or {}
    return found


def events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},reason={reason}"
    items: list[dict[str, Any]] = cluster.kubectl_json("get", "events", "-n", namespace, "--field-selector", selector)[
        "items"
    ]
    return items


def test_people_acknowledge_with_kubectl_patch_and_a_refused_move_says_why(
    cluster: Cluster, namespace: str, start_operator: Callable[..., None]
) -> None:
    start_operator()
    cluster.kubectl("apply", "-f", "-", input=manual_incident("checkout-502", namespace))
    opened = eventually(
        lambda: status(cluster, "checkout-502", namespace).get("phase") == "Triggered",
        timeout=30,
        message="the incident written by hand triggered",
    )
    assert opened
    labels = cluster.kubectl_json("get", "incident", "checkout-502", "-n", namespace)["metadata"]["labels"]
    assert "upkeep.dev/fingerprint-hash" in labels

    patch = {"spec": {"state": "Acknowledged", "note": "looking at the payment gateway"}}
    cluster.kubectl("patch", "incident", "checkout-502", "-n", namespace, "--type", "merge", "-p", json.dumps(patch))
    eventually(
        lambda: status(cluster, "checkout-502", namespace).get("phase") == "Acknowledged",
        timeout=30,
        message="the incident acknowledged",
    )
    acknowledged = status(cluster, "checkout-502", namespace)
    last = acknowledged["timeline"][-1]
    assert (last["from"], last["to"], last["note"]) == ("Triggered", "Acknowledged", "looking at the payment gateway")
    assert last["by"] == "kubectl-patch"
    assert acknowledged["acknowledgedAt"] == last["at"]
    conditions = {item["type"]: item for item in acknowledged["conditions"]}
    assert conditions["Acknowledged"]["status"] == "True"
    assert eventually(lambda: events(cluster, namespace, "checkout-502", "Acknowledged"), timeout=30)

    # The API server refuses a move the lifecycle does not allow (the CRD's CEL rules), naming spec.state.
    refused = cluster.kubectl(
        "patch",
        "incident",
        "checkout-502",
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"state":"Closed"}}',
        check=False,
    )
    assert refused.returncode != 0
    assert "spec.state" in refused.stderr and "allowed from Acknowledged: Mitigating, Mitigated, Resolved" in (
        refused.stderr
    )
    assert status(cluster, "checkout-502", namespace)["phase"] == "Acknowledged"


def test_an_open_incident_carries_no_finalizer_and_its_deletion_is_not_held(
    cluster: Cluster, namespace: str, start_operator: Callable[..., None]
) -> None:
    """Its clock runs without Kopf's finalizer (controllers/daemons.py): a deletion never waits for the operator."""
    start_operator()
    cluster.kubectl("apply", "-f", "-", input=manual_incident("db-down", namespace))
    eventually(
        lambda: status(cluster, "db-down", namespace).get("phase") == "Triggered", timeout=30, message="triggered"
    )
    live = cluster.kubectl_json("get", "incident", "db-down", "-n", namespace)
    assert not live["metadata"].get("finalizers")
    cluster.kubectl("delete", "incident", "db-down", "-n", namespace, "--wait", "--timeout=20s")
    # The same name again is a new incident the operator opens as any other.
    cluster.kubectl("apply", "-f", "-", input=manual_incident("db-down", namespace))
    again = eventually(
        lambda: status(cluster, "db-down", namespace).get("phase") == "Triggered", timeout=30, message="triggered again"
    )
    assert again
    renewed = cluster.kubectl_json("get", "incident", "db-down", "-n", namespace)
    assert renewed["metadata"]["uid"] != live["metadata"]["uid"]


def crash_looping_pod(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "ghcr.io/upkeep-dev/shop:1.1-crash"}]},
        }
    )


def test_dry_run_records_what_it_would_do_and_writes_no_incident(
    cluster: Cluster, namespace: str, start_operator: Callable[..., None]
) -> None:
    start_operator("--dry-run")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=crash_looping_pod("worker"))
    crash = {
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "app",
                    "ready": False,
                    "restartCount": 3,
                    "image": "ghcr.io/upkeep-dev/shop:1.1-crash",
                    "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                    "lastState": {},
                }
            ],
        }
    }
    cluster.kubectl(
        "patch", "pod", "worker", "-n", namespace, "--subresource=status", "--type", "merge", "-p", json.dumps(crash)
    )
    told = eventually(
        lambda: events(cluster, namespace, "worker", "DryRunIncident"), timeout=30, message="the dry-run Event"
    )
    assert "would open Incident worker-crashloop-" in told[0]["message"]

    cluster.kubectl("apply", "-f", "-", input=manual_incident("checkout-502", namespace))
    patch = {"spec": {"state": "Acknowledged"}}
    cluster.kubectl("patch", "incident", "checkout-502", "-n", namespace, "--type", "merge", "-p", json.dumps(patch))
    said = eventually(lambda: events(cluster, namespace, "checkout-502", "DryRun"), timeout=30)
    assert "would move the incident" in said[0]["message"]
    names = [item["metadata"]["name"] for item in cluster.kubectl_json("get", "incidents", "-n", namespace)["items"]]
    assert names == ["checkout-502"]
    assert status(cluster, "checkout-502", namespace) == {}
