"""The OOM-killed container, from the pod detector to the oom Playbooks' fieldPath.

The detector names the killed container; the Incident it opens carries it as ``spec.signal.container``
(valid against the CRD, and not in the labels selectors match); the oom Playbooks of the library and
of the shop example fill their fieldPath with ``{{ incident.signal.container }}``, so setOverride and
proposeFix raise the limit of that container and leave the others as they are.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from upkeep.actions import base, registry
from upkeep.engine import incidents, playbooks, signals
from upkeep.model import resources

REPO = Path(__file__).resolve().parents[2]
OOM_PLAYBOOKS = [REPO / "playbooks" / "oom.yaml", REPO / "examples" / "shop" / "playbooks" / "oom.yaml"]
NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
DEPLOYMENT = resources.ObjectRef("Deployment", "shop", "shop", "apps/v1")


def oom_killed_pod(container: str) -> dict[str, Any]:
    """A pod of Deployment shop whose ``container`` was OOM-killed and waits to restart; ``shop`` runs fine."""
    killed = {"terminated": {"reason": "OOMKilled", "exitCode": 137, "finishedAt": "2025-03-01T11:59:50Z"}}
    statuses = [
        {"name": "shop", "restartCount": 0, "state": {"running": {}}, "lastState": {}},
        {
            "name": container,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": killed,
        },
    ]
    return {
        "metadata": {"name": "shop-6d8f7c9b54-x2k8p", "namespace": "shop", "labels": {"app": "shop"}},
        "spec": {},
        "status": {"phase": "Running", "containerStatuses": statuses},
    }


def incident_for(container: str) -> dict[str, Any]:
    owners = (resources.ObjectRef("ReplicaSet", "shop-6d8f7c9b54", "shop", "apps/v1"), DEPLOYMENT)
    [signal] = signals.signals_from_pod(
        oom_killed_pod(container), owners, NOW, unschedulable_grace=datetime.timedelta(minutes=5)
    )
    assert signal.type == "OOMKilled"
    return incidents.new_incident(signal, "SEV3", now=NOW, namespace="shop")


class Workload:
    """An action cluster holding one two-container Deployment; it only reads."""

    def __init__(self) -> None:
        containers = [
            {"name": "shop", "image": "shop:1.0", "resources": {"limits": {"memory": "256Mi"}}},
            {"name": "cache", "image": "redis:7", "resources": {"limits": {"memory": "1Gi"}}},
        ]
        self.body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop", "namespace": "shop", "resourceVersion": "7"},
            "spec": {"template": {"spec": {"containers": containers}}},
        }

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.body

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"only reads: {name}")


def test_the_incident_carries_the_container_and_the_crd_keeps_it(
    validate_yaml: Callable[[str], list[Any]],
) -> None:
    body = incident_for("cache")
    assert body["spec"]["signal"]["container"] == "cache"
    assert "container" not in body["spec"]["signal"]["labels"]
    assert body["spec"]["signal"]["fingerprint"] == incident_for("shop")["spec"]["signal"]["fingerprint"]
    findings = validate_yaml(yaml.safe_dump(body))
    assert [finding.render() for finding in findings if finding.severity == "error"] == []


@pytest.mark.parametrize("path", OOM_PLAYBOOKS, ids=["library", "shop-example"])
@pytest.mark.parametrize(("container", "raised"), [("cache", "1536Mi"), ("shop", "384Mi")])
def test_the_oom_playbooks_raise_the_limit_of_the_killed_container(path: Path, container: str, raised: str) -> None:
    playbook = yaml.safe_load(path.read_text(encoding="utf-8"))
    incident = incident_for(container)
    steps: Mapping[str, Mapping[str, Any]] = {step["action"]: step for step in playbook["spec"]["steps"]}
    wanted = f"spec.template.spec.containers[name={container}].resources.limits.memory"
    for action in ("setOverride", "proposeFix"):
        params = playbooks.render_params(steps[action], incident)
        assert params["fieldPath"] == wanted
        ctx = base.ActionContext(
            cluster=Workload(),
            namespace="shop",
            incident=incident,
            workload=DEPLOYMENT,
            affected=(),
            params=params,
            key="run/0",
            now=NOW,
        )
        said = asyncio.run(registry.get(action).describe(ctx))
        assert (f"at {raised}" if action == "setOverride" else f"→ {raised}") in said


def test_an_incident_without_a_container_fails_the_step_naming_the_param() -> None:
    playbook = yaml.safe_load(OOM_PLAYBOOKS[0].read_text(encoding="utf-8"))
    incident = incident_for("cache")
    del incident["spec"]["signal"]["container"]
    with pytest.raises(playbooks.TemplateError, match=r"incident\.signal\.container"):
        playbooks.render_params(playbook["spec"]["steps"][0], incident)
