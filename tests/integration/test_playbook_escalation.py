"""Escalation: a crash loop with no recent rollout is restarted once, the crashes come back, and the run escalates.

The library's `crashloop` and `crashloop-rollback` Playbooks as users apply them (`kubectl apply -n`),
on a simulated sandbox of its own, with `upkeep run` as a process and a real webhook receiver on
127.0.0.1 behind the SupportPolicy's channels. The Deployment crash-loops from its first revision,
so there is no rollout to blame: the restart is tried, the Playbook's verification does not hold,
the run fails, the incident's severity goes one level worse, the escalation channel hears of it
once, and the incident is handed over to `crashloop-rollback` (set to RequireApproval here, so the
hand-over stops at a run waiting for a person).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import running_operator, simulated_sandbox
from support.webhooks import WebhookReceiver
from support.workloads import CRASHING_IMAGE, apply, deployment, incidents, namespace

pytestmark = pytest.mark.integration
LIBRARY = Path(__file__).resolve().parents[2] / "playbooks"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("playbook-escalation")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "esc") as name:
        yield name
    sim.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


def secret(sim: Cluster, ns: str, name: str, url: str) -> None:
    data = {"url": base64.b64encode(url.encode()).decode()}
    apply(sim, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}, ns)


def policy(sim: Cluster, ns: str) -> None:
    """SEV3 for crash loops (quiet on opening: only SEV1 and SEV2 announce), channels oncall and pager; nothing
    resolves on its own within the test."""
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": f"policy-{ns}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": ns}},
                "defaultSeverity": "SEV4",
                "severityRules": [{"severity": "SEV3", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
                "channels": [
                    {"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "oncall-hook"}},
                    {"name": "pager", "type": "Webhook", "urlSecretRef": {"name": "pager-hook"}},
                ],
                "autoResolve": {"clearFor": "1h"},
            },
        },
    )


def merge(sim: Cluster, ns: str, kind: str, name: str, patch: dict[str, Any]) -> None:
    sim.kubectl("patch", kind, name, "-n", ns, "--type", "merge", "-p", json.dumps(patch))


def install_library(sim: Cluster, ns: str) -> None:
    """The two crash-loop Playbooks as shipped, then made fast for the test: a short verification and step
    timeout, the escalation told to `pager`, and the rollback waiting for approval."""
    sim.kubectl(
        "apply", "-n", ns, "-f", str(LIBRARY / "crashloop.yaml"), "-f", str(LIBRARY / "crashloop-rollback.yaml")
    )
    crashloop = sim.kubectl_json("get", "playbook", "crashloop", "-n", ns)
    steps = crashloop["spec"]["steps"]
    for step in steps:
        if step["action"] == "rolloutRestart":
            step["timeout"] = "20s"
    merge(
        sim,
        ns,
        "playbook",
        "crashloop",
        {
            "spec": {
                "steps": steps,
                "verification": {"timeout": "4s", "stableFor": "1s"},
                "escalation": {"notify": ["pager"]},
            }
        },
    )
    merge(sim, ns, "playbook", "crashloop-rollback", {"spec": {"mode": "RequireApproval"}})


def runs(sim: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
    return {item["spec"]["playbookRef"]["name"]: item for item in items}


def events(sim: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    items = sim.kubectl_json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [(item["type"], item["reason"]) for item in items]


def test_a_crashloop_without_a_recent_rollout_is_restarted_then_escalated_and_handed_over(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret(sim, ns, "oncall-hook", receiver.url("/oncall"))
    secret(sim, ns, "pager-hook", receiver.url("/pager"))
    policy(sim, ns)
    install_library(sim, ns)
    apply(sim, deployment("shop", CRASHING_IMAGE, 1), ns)
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:

        def handed_over() -> dict[str, dict[str, Any]] | None:
            found = runs(sim, ns)
            first = found.get("crashloop", {}).get("status", {}).get("phase")
            second = found.get("crashloop-rollback", {}).get("status", {})
            waiting = any(item.get("reason") == "AwaitingApproval" for item in second.get("conditions") or [])
            return found if first == "Failed" and second.get("phase") == "Pending" and waiting else None

        try:
            found = eventually(handed_over, timeout=75, interval=0.5, message="the run failed and handed over")
            eventually(lambda: receiver.posts("/pager"), timeout=15, message="the escalation was posted")
        finally:
            log = operator.log()
        [incident] = incidents(sim, ns)

    # The run: both steps recorded, the restart done, the verification failed, Succeeded=False.
    run = found["crashloop"]
    status = run["status"]
    assert run["metadata"]["name"] == f"{incident['metadata']['name']}-crashloop-1"
    steps = {step["name"]: step for step in status["steps"]}
    assert list(steps) == ["tell-oncall", "restart"], status
    assert (steps["tell-oncall"]["action"], steps["tell-oncall"]["phase"]) == ("notify", "Succeeded"), log[-4000:]
    assert (steps["restart"]["action"], steps["restart"]["phase"]) == ("rolloutRestart", "Succeeded"), status
    for index, step in enumerate(status["steps"]):
        assert step["idempotencyKey"] == f"{run['metadata']['uid']}/{index}"
        assert step["startedAt"] and step["finishedAt"] and step["outcome"]
    assert status["verification"]["phase"] == "Failed", status["verification"]
    succeeded = {item["type"]: item for item in status["conditions"]}["Succeeded"]
    assert (succeeded["status"], succeeded["reason"]) == ("False", "VerificationFailed")

    # The restart happened, with the step's key on the pod template.
    template = sim.kubectl_json("get", "deployment", "shop", "-n", ns)["spec"]["template"]["metadata"]
    assert template["annotations"]["upkeep.dev/action-key"] == steps["restart"]["idempotencyKey"]

    # The incident: one level worse (SEV3 to SEV2), back with people, the runs linked.
    assert incident["spec"]["severity"] == "SEV2"
    assert incident["metadata"]["annotations"]["upkeep.dev/severity-raised-by"] == run["metadata"]["name"]
    assert incident["status"]["phase"] == "Acknowledged"
    moves = [(entry.get("to"), entry.get("by")) for entry in incident["status"]["timeline"]]
    assert ("Mitigating", "playbook/crashloop") in moves and ("Acknowledged", "playbook/crashloop") in moves
    handover = found["crashloop-rollback"]
    assert incident["status"]["playbookRuns"] == [run["metadata"]["name"], handover["metadata"]["name"]]
    ready = {item["type"]: item for item in handover["status"]["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("Unknown", "AwaitingApproval")

    # The receiver: oncall told by the notify step, pager told of the failure, each exactly once.
    uid = incident["metadata"]["uid"]
    oncall, pager = receiver.posts("/oncall"), receiver.posts("/pager")
    assert [item.body["event"]["reason"] for item in oncall] == ["PlaybookNotify"]
    assert [item.idempotency_key for item in pager] == [f"{uid}/playbookrun-{run['metadata']['name']}-failed"]
    assert pager[0].body["event"]["reason"] == "PlaybookRunFailed"
    assert run["metadata"]["name"] in pager[0].body["event"]["message"]

    # Events on the run and on the incident.
    on_run = events(sim, ns, run["metadata"]["name"])
    for expected in (("Normal", "Started"), ("Normal", "StepSucceeded"), ("Warning", "Failed")):
        assert expected in on_run, on_run
    on_incident = events(sim, ns, incident["metadata"]["name"])
    for expected in (("Warning", "PlaybookRunFailed"), ("Warning", "SeverityRaised")):
        assert expected in on_incident, on_incident
