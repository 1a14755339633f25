"""Escalation: a crash loop is restarted once; when the crashes come back, a recent rollout is rolled back, else
the run escalates to people.

The library's `crashloop` and `crashloop-rollback` Playbooks as users apply them (`kubectl apply -n`),
on a simulated sandbox of its own, with `upkeep run` as a process and a real webhook receiver on
127.0.0.1 behind the SupportPolicy's channels.

- A Deployment that crash-loops from its first revision has no rollout to blame: the restart is tried,
  the Playbook's verification does not hold, the run fails, the incident's severity goes one level
  worse, the escalation channel hears of it once, and no playbook is left (`crashloop-rollback` asks
  for a rollout within 30 minutes), so the incident stays with people.
- A Deployment that crash-loops right after a new revision rolled out is restarted the same way, then
  handed over to `crashloop-rollback`, which rolls it back to the revision that ran, and the incident
  is mitigated.
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
from support.workloads import CRASHING_IMAGE, GOOD_IMAGE, apply, deployment, incidents, namespace

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
    rollback = sim.kubectl_json("get", "playbook", "crashloop-rollback", "-n", ns)
    assert rollback["spec"]["match"]["rolledOutWithin"] == "30m"
    merge(sim, ns, "playbook", "crashloop-rollback", {"spec": {"verification": {"timeout": "60s", "stableFor": "1s"}}})


def runs(sim: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
    return {item["spec"]["playbookRef"]["name"]: item for item in items}


def events(sim: Cluster, ns: str, name: str) -> list[tuple[str, str]]:
    items = sim.kubectl_json("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return [(item["type"], item["reason"]) for item in items]


def test_a_crashloop_without_a_recent_rollout_is_restarted_then_escalated_to_people(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret(sim, ns, "oncall-hook", receiver.url("/oncall"))
    secret(sim, ns, "pager-hook", receiver.url("/pager"))
    policy(sim, ns)
    install_library(sim, ns)
    apply(sim, deployment("shop", CRASHING_IMAGE, 1), ns)
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:

        def failed() -> dict[str, dict[str, Any]] | None:
            found = runs(sim, ns)
            return found if found.get("crashloop", {}).get("status", {}).get("phase") == "Failed" else None

        def back_with_people() -> dict[str, Any] | None:
            [incident] = incidents(sim, ns)
            moves = [(entry.get("to"), entry.get("by")) for entry in incident["status"].get("timeline") or []]
            return incident if ("Acknowledged", "playbook/crashloop") in moves else None

        try:
            found = eventually(failed, timeout=75, interval=0.5, message="the run failed")
            eventually(lambda: receiver.posts("/pager"), timeout=15, message="the escalation was posted")
            incident = eventually(back_with_people, timeout=15, message="the incident went back to people")
        finally:
            log = operator.log()
        # The hand-over was decided with the failure; the recent-rollout test below shows how soon it starts.
        assert "crashloop-rollback" not in runs(sim, ns), runs(sim, ns)

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
    assert incident["status"]["playbookRuns"] == [run["metadata"]["name"]]

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


def test_a_crashloop_right_after_a_rollout_is_restarted_then_rolled_back(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret(sim, ns, "oncall-hook", receiver.url("/oncall"))
    secret(sim, ns, "pager-hook", receiver.url("/pager"))
    policy(sim, ns)
    install_library(sim, ns)
    apply(sim, deployment("shop", GOOD_IMAGE, 1), ns)
    sim.kubectl("rollout", "status", "deployment/shop", "-n", ns, "--timeout=60s")
    sim.kubectl("set", "image", "deployment/shop", f"shop={CRASHING_IMAGE}", "-n", ns)  # revision 2 crashes
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:

        def rolled_back() -> dict[str, dict[str, Any]] | None:
            found = runs(sim, ns)
            first = found.get("crashloop", {}).get("status", {}).get("phase")
            second = found.get("crashloop-rollback", {}).get("status", {}).get("phase")
            return found if first == "Failed" and second == "Succeeded" else None

        try:
            found = eventually(rolled_back, timeout=120, interval=0.5, message="restarted, then rolled back")
        finally:
            log = operator.log()
        [incident] = incidents(sim, ns)

    # Restart first (the same revision, restarted), then the rollback to the revision that ran.
    restart = {step["name"]: step for step in found["crashloop"]["status"]["steps"]}["restart"]
    assert restart["phase"] == "Succeeded", log[-4000:]
    [rollback] = found["crashloop-rollback"]["status"]["steps"]
    assert (rollback["action"], rollback["phase"]) == ("rollbackDeployment", "Succeeded"), rollback
    live = sim.kubectl_json("get", "deployment", "shop", "-n", ns)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD_IMAGE
    assert incident["status"]["playbookRuns"] == [
        found["crashloop"]["metadata"]["name"],
        found["crashloop-rollback"]["metadata"]["name"],
    ]
    assert incident["status"]["phase"] in ("Mitigated", "Resolved"), incident["status"]
