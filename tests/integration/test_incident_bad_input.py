"""Bad input refused on apply: an unknown severity, and a spec.state the lifecycle does not allow.

The refusals come from the API server itself, as a real one gives them: the CRD's enum names
spec.severity, and its CEL rules (x-kubernetes-validations) name spec.state. The real kubectl
against the session cluster; `upkeep run` watches the namespace, because whether a move is
allowed depends on the phase the operator has put the incident in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def manifest(namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "severity": "SEV2",
            "service": "checkout",
            "summary": "checkout answers 502 for card payments",
            "signal": {"type": "Manual", "source": "kubectl"},
            **spec,
        },
    }


def apply(cluster: Cluster, body: dict[str, Any], *flags: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", *flags, "-f", "-", input=json.dumps(body), check=False)


def incident(cluster: Cluster, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "incident", NAME, "-n", namespace)
    return found


def phase_is(cluster: Cluster, namespace: str, phase: str) -> dict[str, Any] | None:
    found = incident(cluster, namespace)
    return found if found.get("status", {}).get("phase") == phase else None


def test_an_unknown_severity_is_refused_naming_spec_severity(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    refused = apply(cluster, manifest(namespace, severity="SEV9"))
    assert refused.returncode != 0
    assert 'spec.severity: Unsupported value: "SEV9"' in refused.stderr
    assert '"SEV1", "SEV2", "SEV3", "SEV4"' in refused.stderr
    missing = cluster.kubectl("get", "incident", NAME, "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr

    # `upkeep validate` tells without a cluster.
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(manifest(namespace, severity="SEV9")), encoding="utf-8")
    validated = subprocess.run(
        [sys.executable, "-m", "upkeep.cli", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert validated.returncode == 1
    assert "spec.severity" in validated.stdout and "SEV9" in validated.stdout


def test_a_new_incident_cannot_start_closed(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    refused = apply(cluster, manifest(namespace, state="Closed"))
    assert refused.returncode != 0
    assert (
        f'The Incident "{NAME}" is invalid: spec.state: Invalid value: "object": '
        "Incident cannot go from Triggered to Closed; allowed from Triggered: "
        "Acknowledged, Mitigating, Mitigated, Resolved"
    ) in refused.stderr
    assert cluster.kubectl("get", "incident", NAME, "-n", namespace, check=False).returncode != 0


def test_a_transition_the_lifecycle_refuses_is_refused_on_apply_and_changes_nothing(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    assert apply(cluster, manifest(namespace)).returncode == 0
    eventually(lambda: phase_is(cluster, namespace, "Triggered"), timeout=30, message="the incident triggered")
    resolved = apply(cluster, manifest(namespace, state="Resolved", note="fixed in 1.2"))
    assert resolved.returncode == 0, resolved.stderr
    before = eventually(
        lambda: phase_is(cluster, namespace, "Resolved"), timeout=30, message="the operator resolved the incident"
    )

    for flags in ((), ("--dry-run=server",), ("--server-side", "--force-conflicts")):
        refused = apply(cluster, manifest(namespace, state="Acknowledged", note="not quite"), *flags)
        assert refused.returncode != 0, flags
        assert "spec.state: Invalid value" in refused.stderr, (flags, refused.stderr)
        assert "Incident cannot go from Resolved to Acknowledged; allowed from Resolved: Triggered, Closed" in (
            refused.stderr
        )
    patched = cluster.kubectl(
        "patch",
        "incident",
        NAME,
        "-n",
        namespace,
        "--type",
        "merge",
        "-p",
        '{"spec":{"state":"Mitigating"}}',
        check=False,
    )
    assert patched.returncode != 0 and "spec.state" in patched.stderr

    after = incident(cluster, namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["spec"]["state"] == "Resolved" and after["spec"]["note"] == "fixed in 1.2"
    assert after["status"]["phase"] == "Resolved"

    # The move the lifecycle allows goes through, and the operator's status writes pass the same rules.
    closed = apply(cluster, manifest(namespace, state="Closed", note="postmortem done"))
    assert closed.returncode == 0, closed.stderr
    eventually(lambda: phase_is(cluster, namespace, "Closed"), timeout=30, message="the operator closed the incident")
