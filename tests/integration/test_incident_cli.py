"""`upkeep incident ack|resolve|close|list` against a running operator: the timeline says who and why.

The session cluster (the API-only sandbox, or $KUBECONFIG) with Upkeep's CRDs; `upkeep run`
watches the test's namespace; the incident is written by hand, as a person opens one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, install_crds, start_operator

pytestmark = pytest.mark.integration
NAME = "checkout-502"


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    install_crds(cluster)
    started = start_operator(cluster, [namespace], tmp_path / "operator.log")
    yield started
    started.stop()


def upkeep(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """The real `upkeep` command in a process of its own, pointed at the cluster's kubeconfig."""
    return subprocess.run(
        [sys.executable, "-m", "upkeep.cli", *args, "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        timeout=120,
        check=False,
    )


def manual_incident(namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Incident",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "severity": "SEV2",
                "service": "checkout",
                "summary": "checkout answers 502 for card payments",
                "signal": {"type": "Manual", "source": "kubectl"},
            },
        }
    )


def incident(cluster: Cluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "incident", NAME, "-n", namespace)
    return found


def triggered(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """Apply the incident and wait until the operator has taken it in (phase Triggered)."""
    cluster.kubectl("apply", "-f", "-", input=manual_incident(namespace))
    return eventually(
        lambda: (found := incident(cluster, namespace)).get("status", {}).get("phase") == "Triggered" and found,
        timeout=30,
        message="the operator took the incident in",
    )


def kubeconfig_user(cluster: Cluster) -> str:
    config = yaml.safe_load(cluster.kubeconfig.read_text(encoding="utf-8"))
    [context] = [item for item in config["contexts"] if item["name"] == config["current-context"]]
    return str(context["context"]["user"])


def test_ack_resolve_close_record_who_and_why_in_the_timeline(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    triggered(cluster, namespace)

    acked = upkeep(
        cluster, "incident", "ack", NAME, "-n", namespace, "--note", "looking at the gateway", "--by", "alice"
    )
    assert acked.returncode == 0, acked.stderr + operator.log()
    assert "Acknowledged" in acked.stdout
    found = incident(cluster, namespace)
    assert found["status"]["phase"] == "Acknowledged"
    last = found["status"]["timeline"][-1]
    assert (last["from"], last["to"], last["by"], last["note"]) == (
        "Triggered",
        "Acknowledged",
        "alice",
        "looking at the gateway",
    )
    assert found["status"]["acknowledgedAt"] == last["at"]
    assert found["metadata"]["annotations"]["upkeep.dev/requested-by"] == "alice"
    managed = cluster.kubectl_json("get", "incident", NAME, "-n", namespace, "--show-managed-fields")
    writers = {entry["manager"] for entry in managed["metadata"]["managedFields"] if "f:state" in str(entry)}
    assert "upkeep-cli" in writers

    # Without --by the kubeconfig's user asks; without --note none is recorded.
    resolved = upkeep(cluster, "incident", "resolve", NAME, "-n", namespace)
    assert resolved.returncode == 0, resolved.stderr + operator.log()
    last = incident(cluster, namespace)["status"]["timeline"][-1]
    assert (last["from"], last["to"], last["by"]) == ("Acknowledged", "Resolved", kubeconfig_user(cluster))
    assert not last.get("note")

    closed = upkeep(cluster, "incident", "close", NAME, "-n", namespace, "--note", "postmortem done", "--by", "bob")
    assert closed.returncode == 0, closed.stderr + operator.log()
    final = incident(cluster, namespace)["status"]
    assert final["phase"] == "Closed" and final["closedAt"]
    assert [(entry.get("from", ""), entry["to"]) for entry in final["timeline"]] == [
        ("", "Triggered"),
        ("Triggered", "Acknowledged"),
        ("Acknowledged", "Resolved"),
        ("Resolved", "Closed"),
    ]
    assert final["timeline"][-1]["by"] == "bob"

    listed = upkeep(cluster, "incident", "list", "-n", namespace)
    assert listed.returncode == 0, listed.stderr
    [header, row] = listed.stdout.splitlines()
    assert header.split() == ["NAME", "SEVERITY", "PHASE", "SERVICE", "OCCURRENCES", "AGE"]
    assert row.split()[:5] == [NAME, "SEV2", "Closed", "checkout", "1"]


def test_a_move_the_lifecycle_refuses_exits_1_and_writes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    before = triggered(cluster, namespace)

    refused = upkeep(cluster, "incident", "close", NAME, "-n", namespace, "--note", "too early")
    assert refused.returncode == 1
    assert "spec.state" in refused.stderr
    assert "cannot go from Triggered to Closed" in refused.stderr
    assert "Acknowledged, Mitigating, Mitigated, Resolved" in refused.stderr
    after = incident(cluster, namespace)
    # The operator's controllers may still write status (problems, notifications); the CLI wrote nothing.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert "upkeep-cli" not in {entry.get("manager") for entry in after["metadata"].get("managedFields") or []}

    # A dry run is checked by the API server and writes nothing either.
    dry = upkeep(cluster, "incident", "ack", NAME, "-n", namespace, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    untouched = incident(cluster, namespace)
    assert untouched["metadata"]["generation"] == before["metadata"]["generation"]
    assert untouched["spec"] == before["spec"]

    missing = upkeep(cluster, "incident", "ack", "no-such-incident", "-n", namespace)
    assert missing.returncode == 1
    assert 'incident "no-such-incident" not found' in missing.stderr


def test_without_an_operator_watching_the_command_times_out_with_exit_3(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    elsewhere = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", elsewhere)
    try:
        cluster.kubectl("apply", "-f", "-", input=manual_incident(elsewhere))
        waited = upkeep(cluster, "incident", "ack", NAME, "-n", elsewhere, "--timeout", "2")
        assert waited.returncode == 3, waited.stdout + waited.stderr
        assert f"is `upkeep run` watching namespace {elsewhere}" in waited.stderr
        # The request is written all the same, for an operator to apply when one watches.
        assert incident(cluster, elsewhere)["spec"]["state"] == "Acknowledged"
    finally:
        cluster.kubectl("delete", "namespace", elsewhere, "--wait=false", check=False)
