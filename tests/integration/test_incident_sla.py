"""SLA: an unacknowledged SEV1 breaches its 2 s acknowledge target, escalates and notifies; acknowledging stops it.

A simulated sandbox of its own (crash-looping pods), `upkeep run` as a process, and a real
webhook receiver on 127.0.0.1 run by the test: the operator reads its URL from a Secret and
posts to it as it would to a pager or Slack.
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


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("incident-sla")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "sla") as name:
        yield name


def secret(sim: Cluster, namespace: str, name: str, url: str) -> None:
    data = {"url": base64.b64encode(url.encode()).decode()}
    apply(sim, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}, namespace)


def policy(sim: Cluster, ns: str, acknowledge_within: str) -> str:
    """SEV1 for crash loops; acknowledge within the given time; level 1 at the same moment: oncall, chat and pager."""
    name = f"policy-{ns}"
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": ns}},
                "defaultSeverity": "SEV4",
                "severityRules": [{"severity": "SEV1", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
                "sla": [{"severity": "SEV1", "acknowledgeWithin": acknowledge_within, "resolveWithin": "1h"}],
                "escalation": {
                    "levels": [{"level": 1, "after": acknowledge_within, "channels": ["oncall", "chat", "pager"]}]
                },
                "channels": [
                    {"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "hook"}},
                    {"name": "chat", "type": "Slack", "urlSecretRef": {"name": "slack"}},
                    {"name": "pager", "type": "Webhook", "urlSecretRef": {"name": "pager-hook", "key": "endpoint"}},
                ],
                "autoResolve": {"clearFor": "1h"},
            },
        },
    )
    return name


def events(sim: Cluster, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.name={name},reason={reason}"
    items: list[dict[str, Any]] = sim.kubectl_json("get", "events", "-n", ns, "--field-selector", selector)["items"]
    return items


def settled(entries: list[dict[str, Any]], expected: set[tuple[str, str]]) -> bool:
    """Whether every (key, channel) expected has an entry that is no longer Pending."""
    done = {(entry["key"], entry["channel"]) for entry in entries if entry.get("state") in ("Sent", "Failed")}
    return expected <= done


def test_an_unacknowledged_sev1_breaches_escalates_and_notifies_each_channel_once(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret(sim, ns, "hook", receiver.url("/hook"))
    secret(sim, ns, "slack", receiver.url("/slack"))
    policy(sim, ns, "2s")
    keys = ("opened", "sla-acknowledge", "escalated-1")
    expected = {(key, channel) for key in keys for channel in ("oncall", "chat", "pager")}
    with running_operator(sim, [ns], tmp_path / "operator.log") as operator:
        apply(sim, deployment("shop", CRASHING_IMAGE, 2), ns)

        def notified() -> dict[str, Any] | None:
            found = incidents(sim, ns)
            status = found[0].get("status", {}) if found else {}
            return found[0] if settled(status.get("notifications") or [], expected) else None

        incident = eventually(notified, timeout=90, interval=0.3, message="the three notifications settled")
        log = operator.log()

    name, uid = incident["metadata"]["name"], incident["metadata"]["uid"]
    assert [item["metadata"]["name"] for item in incidents(sim, ns)] == [name]
    spec, status = incident["spec"], incident["status"]
    assert (spec["severity"], spec["signal"]["type"]) == ("SEV1", "CrashLoopBackOff")
    assert status["phase"] == "Triggered"
    conditions = {item["type"]: item for item in status["conditions"]}
    assert conditions["SLABreached"]["status"] == "True"
    assert conditions["SLABreached"]["reason"] == "AcknowledgeDeadlineMissed"
    assert status["sla"]["acknowledgeBreached"] is True
    assert status["escalationLevel"] == 1
    assert conditions["Escalated"]["status"] == "True"
    assert events(sim, ns, name, "SLABreached")[0]["type"] == "Warning"
    assert events(sim, ns, name, "Escalated")[0]["type"] == "Warning"

    # The webhook channel: exactly one POST per notification, the generic JSON, the idempotency key.
    hook = receiver.posts("/hook")
    assert sorted(item.idempotency_key or "" for item in hook) == sorted(f"{uid}/{key}" for key in keys)
    by_reason = {item.body["event"]["reason"]: item for item in hook}
    assert set(by_reason) == {"Opened", "SLABreached", "Escalated"}
    for item in hook:
        assert item.content_type == "application/json"
        assert item.body["kind"] == "IncidentNotification"
        assert item.body["idempotencyKey"] == item.idempotency_key
        assert (item.body["incident"]["name"], item.body["incident"]["namespace"]) == (name, ns)
        assert item.body["incident"]["severity"] == "SEV1"
        assert item.body["incident"]["signalType"] == "CrashLoopBackOff"
        assert item.body["incident"]["workload"] == {"kind": "Deployment", "name": "shop", "namespace": ns}
    assert by_reason["SLABreached"].body["event"]["breach"] == "acknowledge"
    assert by_reason["SLABreached"].body["incident"]["sla"]["acknowledgeBreached"] is True
    assert by_reason["Escalated"].body["event"]["level"] == 1
    assert by_reason["Escalated"].body["incident"]["escalationLevel"] == 1

    # The Slack channel: the same three events as Slack messages.
    slack = receiver.posts("/slack")
    assert sorted(item.idempotency_key or "" for item in slack) == sorted(f"{uid}/{key}" for key in keys)
    for item in slack:
        assert item.body["text"].startswith(":")
        assert "[SEV1]" in item.body["text"] and name in item.body["text"]
        assert item.body["blocks"][0]["type"] == "header"

    # The pager channel's Secret does not exist: Failed entries that name it, a Warning each, nothing posted.
    entries = {(entry["key"], entry["channel"]): entry for entry in status["notifications"]}
    assert {key: entry["state"] for key, entry in entries.items()} == {
        (key, channel): "Failed" if channel == "pager" else "Sent" for key, channel in expected
    }
    for key in keys:
        message = entries[(key, "pager")]["message"]
        assert message == f"Secret {ns}/pager-hook (urlSecretRef of channel pager) was not found"
    failed = events(sim, ns, name, "NotificationFailed")
    assert failed and all(item["type"] == "Warning" and "Secret" in item["message"] for item in failed)
    sent = events(sim, ns, name, "NotificationSent")
    assert sent and all(item["type"] == "Normal" for item in sent)
    assert len(receiver.posts()) == 6

    # The URL is a secret: not in the status, the Events or the operator's log.
    address = f"127.0.0.1:{receiver.port}"
    recorded = json.dumps(status) + json.dumps(failed + sent)
    assert address not in recorded and address not in log


def test_acknowledging_in_time_stops_the_clock_no_breach_no_escalation(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    secret(sim, ns, "hook", receiver.url("/hook"))
    secret(sim, ns, "slack", receiver.url("/slack"))
    policy(sim, ns, "8s")
    manual = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "checkout-502"},
        "spec": {
            "severity": "SEV1",
            "service": "checkout",
            "summary": "checkout answers 502 for card payments",
            "signal": {"type": "Manual", "source": "kubectl"},
        },
    }
    with running_operator(sim, [ns], tmp_path / "operator.log"):
        apply(sim, manual, ns)

        def triggered() -> dict[str, Any] | None:
            found = sim.kubectl_json("get", "incident", "checkout-502", "-n", ns)
            return found if found.get("status", {}).get("phase") == "Triggered" else None

        opened = eventually(triggered, timeout=30, interval=0.1, message="the incident triggered")
        sim.kubectl(
            "patch", "incident", "checkout-502", "-n", ns, "--type", "merge", "-p", '{"spec":{"state":"Acknowledged"}}'
        )
        acknowledge_by = datetime.datetime.fromisoformat(opened["status"]["sla"]["acknowledgeBy"])

        def acknowledged() -> dict[str, Any] | None:
            found = sim.kubectl_json("get", "incident", "checkout-502", "-n", ns)
            return found if found.get("status", {}).get("phase") == "Acknowledged" else None

        done = eventually(acknowledged, timeout=30, interval=0.1, message="the incident acknowledged")
        acknowledged_at = datetime.datetime.fromisoformat(done["status"]["acknowledgedAt"])
        assert acknowledged_at < acknowledge_by, "the test acknowledges before the deadline"

        # The clock had its chance: the deadline and the escalation moment are well past.
        eventually(
            lambda: datetime.datetime.now(datetime.UTC) > acknowledge_by + datetime.timedelta(seconds=3),
            timeout=30,
            interval=0.2,
            message="the acknowledge deadline passed",
        )
        uid = done["metadata"]["uid"]
        eventually(lambda: receiver.keys("/hook") == [f"{uid}/opened"], timeout=10, message="the opening was notified")
        status = sim.kubectl_json("get", "incident", "checkout-502", "-n", ns)["status"]

    conditions = {item["type"]: item for item in status["conditions"]}
    assert status["sla"]["acknowledgeBreached"] is False
    assert conditions["SLABreached"]["status"] == "False"
    assert status.get("escalationLevel", 0) == 0
    assert conditions.get("Escalated", {}).get("status", "False") == "False"
    assert events(sim, ns, "checkout-502", "SLABreached") == []
    assert events(sim, ns, "checkout-502", "Escalated") == []
    assert receiver.keys("/hook") == [f"{uid}/opened"]
    assert receiver.keys("/slack") == [f"{uid}/opened"]
    assert [(entry["key"], entry["state"]) for entry in status["notifications"] if entry["channel"] == "oncall"] == [
        ("opened", "Sent")
    ]
