"""The storm stop: twenty Deployments fail at once, at most the configured number of runs start, the rest are
Skipped naming the storm, the first responders hear of it once, and remediation resumes after the quiet period.

A simulated sandbox of its own (fast settings, one replica each), `upkeep run` as a process, and a
real webhook receiver on 127.0.0.1 as the SupportPolicy's only channel. The Playbook is a DryRun
one: a run that starts records what it would do and ends DryRun, so the runs that start can be
counted without twenty restarts; its own guards and the policy's rate limits are wide open, so
the storm is the only guard that can say no. One Deployment fails first, to show a run starting
below the threshold; one more fails after the quiet period, to show remediation resuming without a
second storm (the storm's own incidents, still within the window, must not start one).
"""

from __future__ import annotations

import base64
import datetime
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
MAX_INCIDENTS = 5
QUIET = datetime.timedelta(seconds=8)
"""Long enough that twenty incidents opening together are one storm, short enough to wait for in a test."""
FAILING = 20


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("playbook-storm")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "storm") as name:
        yield name
    sim.kubectl("delete", "supportpolicy", f"policy-{name}", "--wait=false", check=False)


def policy(sim: Cluster, ns: str, receiver: WebhookReceiver) -> None:
    """A storm is more than 5 incidents within a minute; SEV4 everywhere, so opening an incident tells no one."""
    data = {"url": base64.b64encode(receiver.url("/oncall").encode()).decode()}
    apply(sim, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "oncall-hook"}, "data": data}, ns)
    wide_open = {"perMinute": 600, "burst": 50}
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": f"policy-{ns}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": ns}},
                "defaultSeverity": "SEV4",
                "channels": [{"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "oncall-hook"}}],
                "autoResolve": {"clearFor": "1h"},
                "remediation": {
                    "storm": {"maxIncidents": MAX_INCIDENTS, "window": "1m", "quietPeriod": f"{QUIET.seconds}s"},
                    "rateLimit": {"perNamespace": wide_open, "cluster": wide_open},
                },
            },
        },
    )


def playbook(sim: Cluster, ns: str) -> None:
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Playbook",
            "metadata": {"name": "restart"},
            "spec": {
                "mode": "DryRun",
                "match": {"signalTypes": ["CrashLoopBackOff"]},
                "steps": [{"name": "restart", "action": "rolloutRestart", "timeout": "30s"}],
                "guards": {"maxAttempts": 1, "maxConcurrent": 50, "rateLimit": {"perHour": 3600, "burst": 50}},
            },
        },
        ns,
    )


def runs(sim: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    """The runs by the incident they are for."""
    items = sim.kubectl_json("get", "playbookruns", "-n", ns)["items"]
    return {item["spec"]["incidentRef"]["name"]: item for item in items}


def phase(run: dict[str, Any]) -> str:
    return str(run.get("status", {}).get("phase") or "")


def storm_events(sim: Cluster, ns: str) -> list[dict[str, Any]]:
    found = sim.kubectl_json("get", "events", "-n", ns, "--field-selector", "reason=RemediationStorm")
    items: list[dict[str, Any]] = found["items"]
    return items


def run_for(sim: Cluster, ns: str, workload: str) -> dict[str, Any] | None:
    """The ended run of the incident of one Deployment (incidents are named after their workload)."""
    found = [run for name, run in runs(sim, ns).items() if name.startswith(f"{workload}-")]
    return found[0] if found and phase(found[0]) in ("DryRun", "Skipped") else None


def test_twenty_failing_deployments_make_one_storm_that_skips_runs_escalates_once_and_passes(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    policy(sim, ns, receiver)
    playbook(sim, ns)
    failing = "\n---\n".join(json.dumps(deployment(f"app-{i:02d}", CRASHING_IMAGE, 1)) for i in range(FAILING))
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:
        try:
            # One failure before the storm: below maxIncidents, its run starts.
            apply(sim, deployment("before", CRASHING_IMAGE, 1), ns)
            before = eventually(lambda: run_for(sim, ns, "before"), timeout=60, interval=0.3, message="a run before")

            # Twenty at once.
            sim.kubectl("apply", "-n", ns, "-f", "-", input=failing)

            def every_incident_decided() -> dict[str, dict[str, Any]] | None:
                found = runs(sim, ns)
                ended = {
                    name: run
                    for name, run in found.items()
                    if name.startswith("app-") and phase(run) in ("DryRun", "Skipped")
                }
                return ended if len(ended) == FAILING else None

            decided = eventually(every_incident_decided, timeout=90, interval=0.5, message="a run for each incident")
            eventually(lambda: receiver.posts("/oncall"), timeout=20, message="the storm was escalated")
            opened = incidents(sim, ns)
            last_trigger = max(datetime.datetime.fromisoformat(item["status"]["triggeredAt"]) for item in opened)

            # The quiet period passes without a new incident; then a new failure is remediated again.
            eventually(
                lambda: datetime.datetime.now(datetime.UTC) > last_trigger + QUIET + datetime.timedelta(seconds=1),
                timeout=30,
                interval=0.2,
                message="the quiet period passed",
            )
            apply(sim, deployment("after", CRASHING_IMAGE, 1), ns)
            after = eventually(lambda: run_for(sim, ns, "after"), timeout=60, interval=0.3, message="a run after")
        finally:
            log = operator.log()
    # Stopped: nothing can be sent any more, so the counts below are final.

    assert len(opened) == FAILING + 1, [item["metadata"]["name"] for item in opened]
    assert phase(before) == "DryRun", before["status"]
    started = {name: run for name, run in decided.items() if phase(run) != "Skipped"}
    skipped = {name: run for name, run in decided.items() if phase(run) == "Skipped"}
    # The run before the storm counts: at most maxIncidents runs within the window in all.
    assert 1 + len(started) <= MAX_INCIDENTS, sorted(started)
    assert len(skipped) >= FAILING + 1 - MAX_INCIDENTS
    for run in [before, *started.values()]:
        assert run["status"]["startedAt"], run["status"]
        assert [step["phase"] for step in run["status"]["steps"]] == ["DryRun"]
    for run in skipped.values():
        status = run["status"]
        assert status["skipReason"].startswith("Storm: incident storm: "), status
        assert not status.get("steps") and not status.get("startedAt"), status
        succeeded = {item["type"]: item for item in status["conditions"]}["Succeeded"]
        assert (succeeded["status"], succeeded["reason"]) == ("False", "Skipped")

    # Escalated once: one POST, one claim on one incident, one Event, however many runs the storm skipped.
    posts = receiver.posts()
    assert [item.body["event"]["reason"] for item in posts] == ["RemediationStorm"], log[-4000:]
    claims = [
        (item["metadata"]["name"], entry["key"])
        for item in incidents(sim, ns)
        for entry in item.get("status", {}).get("notifications") or []
        if entry["key"].startswith("storm-")
    ]
    assert len(claims) == 1 and claims[0][0] in decided, claims
    assert posts[0].idempotency_key == f"{posts[0].body['incident']['uid']}/{claims[0][1]}"
    assert len(storm_events(sim, ns)) == 1

    # After the quiet period, a new incident's run starts again: no second storm.
    assert phase(after) == "DryRun", after["status"]
