"""Bad Playbooks never run: what a schema can say is refused on apply, the rest is Ready=False naming the field.

Apply-time (the session cluster's API server, the real kubectl, no operator): an action the
catalog does not have, a step missing a param its action requires, a negative cooldown and their
like are refused with the field named on stderr, and nothing is stored. Semantic (the operator):
a Playbook the schema lets through but the catalog refuses (an unknown param, two params of which
exactly one is allowed) is marked Ready=False naming the field, and an incident it matches is
handed to the next valid Playbook instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import OperatorProcess, install_crds, start_operator

pytestmark = pytest.mark.integration


def playbook(name: str, namespace: str, *steps: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Playbook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"match": {"signalTypes": ["Manual"]}, "steps": list(steps), **spec},
    }


NOTIFY = {"name": "tell", "action": "notify", "params": {"channels": ["oncall"]}}
SETTLE = {"name": "settle", "action": "wait", "params": {"duration": "1s"}}


def refusal(cluster: Cluster, body: dict[str, Any]) -> str:
    """Apply ``body``; assert the API server refused it and stored nothing; what kubectl said."""
    done = cluster.kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert done.returncode != 0, f"applied: {done.stdout}"
    meta = body["metadata"]
    stored = cluster.kubectl("get", "playbook", meta["name"], "-n", meta["namespace"], check=False)
    assert stored.returncode != 0 and "NotFound" in stored.stderr
    return done.stderr


@pytest.fixture(autouse=True)
def crds(cluster: Cluster) -> None:
    install_crds(cluster)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        pytest.param(
            lambda body: body["spec"]["steps"].__setitem__(1, {"name": "reboot", "action": "rebootEverything"}),
            ['spec.steps[1].action: Unsupported value: "rebootEverything"', '"rolloutRestart"'],
            id="unknown-action",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"][1].pop("params"),
            ["spec.steps[1].params.duration: Required value: wait needs params.duration"],
            id="wait-without-duration",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"][0]["params"].pop("channels"),
            ["spec.steps[0].params.channels: Required value: notify needs params.channels"],
            id="notify-without-channels",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"].__setitem__(
                1, {"name": "raise", "action": "setOverride", "params": {"fieldPath": "spec.replicas", "value": 3}}
            ),
            ["spec.steps[1].params.expiresIn: Required value: setOverride needs params.expiresIn"],
            id="override-without-expiry",
        ),
        pytest.param(
            lambda body: body["spec"].__setitem__("guards", {"cooldown": "-10m"}),
            ['spec.guards.cooldown: Invalid value: "-10m"'],
            id="negative-cooldown",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"][1].__setitem__("timeout", "-1s"),
            ['spec.steps[1].timeout: Invalid value: "-1s"'],
            id="negative-step-timeout",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"][1]["params"].__setitem__("duration", "-5m"),
            ['spec.steps[1].params.duration: Invalid value: "-5m"'],
            id="negative-wait",
        ),
        pytest.param(
            lambda body: body["spec"].__setitem__("guards", {"maxAttempts": 0}),
            ["spec.guards.maxAttempts: Invalid value: 0", "greater than or equal to 1"],
            id="no-attempts",
        ),
        pytest.param(
            lambda body: body["spec"]["steps"][1].__setitem__("params", {"duration": 30}),
            ['spec.steps[1].params.duration: Invalid value: "integer"', "must be of type string"],
            id="duration-not-a-string",
        ),
    ],
)
def test_what_a_schema_can_say_is_refused_on_apply_naming_the_field(
    cluster: Cluster, namespace: str, change: Any, says: list[str]
) -> None:
    body = playbook("broken", namespace, copy.deepcopy(NOTIFY), copy.deepcopy(SETTLE))
    # The unbroken playbook applies: the refusal is the change's doing.
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(body))
    change(body)

    stderr = refusal(cluster, body)

    for words in says:
        assert words in stderr


@pytest.fixture
def operator(cluster: Cluster, namespace: str, tmp_path: Path) -> Iterator[OperatorProcess]:
    started = start_operator(cluster, [namespace], tmp_path / "operator.log")
    yield started
    started.stop()


def conditions(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, dict[str, Any]]:
    body = cluster.kubectl_json("get", kind, name, "-n", namespace)
    return {c["type"]: c for c in body.get("status", {}).get("conditions", [])}


@pytest.mark.parametrize(
    ("step", "field", "words"),
    [
        pytest.param(
            {"name": "restart", "action": "rolloutRestart", "params": {"force": True}},
            "spec.steps[0].params.force",
            "rolloutRestart has no param 'force'",
            id="unknown-param",
        ),
        pytest.param(
            {
                "name": "raise",
                "action": "setOverride",
                "params": {"fieldPath": "spec.replicas", "value": 3, "factor": 1.5, "expiresIn": "1h"},
            },
            "spec.steps[0].params",
            "exactly one of value or factor",
            id="value-and-factor",
        ),
    ],
)
def test_what_only_the_catalog_can_say_is_ready_false_naming_the_field_and_never_runs(
    cluster: Cluster, namespace: str, operator: OperatorProcess, step: dict[str, Any], field: str, words: str
) -> None:
    broken = playbook("broken", namespace, step, order=10)
    fallback = playbook("fallback", namespace, copy.deepcopy(SETTLE), order=20, mode="DryRun")
    for body in (broken, fallback):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(body))

    ready = eventually(
        lambda: (
            conditions(cluster, "playbook", "broken", namespace).get("Ready", {}).get("reason") == "InvalidSpec"
            and conditions(cluster, "playbook", "broken", namespace)["Ready"]
        ),
        timeout=30,
        message="Ready=False/InvalidSpec on the broken playbook",
    )
    assert ready["status"] == "False"
    assert ready["message"].startswith(f"{field}: ")
    assert words in ready["message"]
    assert conditions(cluster, "playbook", "broken", namespace)["Accepted"]["status"] == "False"

    # An incident both match goes to the valid one; the broken one, first by order, never runs.
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "upkeep.dev/v1alpha1",
                "kind": "Incident",
                "metadata": {"name": "checkout-502", "namespace": namespace},
                "spec": {"severity": "SEV2", "summary": "checkout answers 502", "signal": {"type": "Manual"}},
            }
        ),
    )
    runs = eventually(
        lambda: cluster.kubectl_json("get", "playbookruns", "-n", namespace)["items"],
        timeout=30,
        message="a PlaybookRun for the incident",
    )
    assert [run["spec"]["playbookRef"]["name"] for run in runs] == ["fallback"], operator.log()
    eventually(
        lambda: (
            cluster.kubectl_json("get", "playbookrun", runs[0]["metadata"]["name"], "-n", namespace)
            .get("status", {})
            .get("phase")
            == "DryRun"
        ),
        timeout=30,
        message="the fallback's dry run ended",
    )
    assert [
        run["spec"]["playbookRef"]["name"]
        for run in cluster.kubectl_json("get", "playbookruns", "-n", namespace)["items"]
    ] == ["fallback"]
