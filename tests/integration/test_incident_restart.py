"""Operator restarted while an incident is open, and two operator replicas at once: one Incident, one notification.

A simulated sandbox of its own keeps pods crash-looping while `upkeep run` processes are
stopped (SIGTERM), killed (SIGKILL) and started again, or run two at a time, both
``--standalone`` so both act: the worst case for duplicates. A real webhook receiver on
127.0.0.1 records every notification with its Idempotency-Key. The last test leaves what an
operator killed between its claim and its POST would leave (a Pending entry) and checks that
exactly one of two replicas resends it, with the same key.
"""

from __future__ import annotations

import base64
import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.cluster import Cluster, eventually
from support.operator import running_operator, simulated_sandbox, start_operator
from support.webhooks import WebhookReceiver
from support.workloads import CRASHING_IMAGE, GOOD_IMAGE, apply, deployment, incidents, namespace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with simulated_sandbox(tmp_path_factory.mktemp("incident-restart")) as cluster:
        yield cluster


@pytest.fixture
def ns(sim: Cluster) -> Iterator[str]:
    with namespace(sim, "rs") as name:
        yield name


def setup(sim: Cluster, ns: str, receiver: WebhookReceiver, **spec: Any) -> None:
    """The Secret with the receiver's URL, and a policy: crash loops are SEV1, told to the one channel."""
    data = {"url": base64.b64encode(receiver.url("/hook").encode()).decode()}
    apply(sim, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook"}, "data": data}, ns)
    apply(
        sim,
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "SupportPolicy",
            "metadata": {"name": f"policy-{ns}"},
            "spec": {
                "namespaceSelector": {"matchLabels": {"upkeep-test": ns}},
                "severityRules": [{"severity": "SEV1", "match": {"signalTypes": ["CrashLoopBackOff"]}}],
                "channels": [{"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "hook"}}],
                **spec,
            },
        },
    )


def one_incident(sim: Cluster, ns: str) -> dict[str, Any]:
    found = incidents(sim, ns)
    assert len(found) == 1, f"exactly one incident, not {[item['metadata']['name'] for item in found]}"
    return found[0]


def occurrences_above(sim: Cluster, ns: str, count: int) -> int:
    """Wait until the one incident counts more than ``count`` occurrences (the pods keep crashing); the count."""

    def risen() -> int:
        found = incidents(sim, ns)
        now = int(found[0].get("status", {}).get("occurrences") or 0) if found else 0
        return now if now > count else 0

    return eventually(risen, timeout=60, interval=0.3, message=f"occurrences above {count}")


def duplicates(receiver: WebhookReceiver) -> dict[str, int]:
    return {key: n for key, n in collections.Counter(receiver.keys("/hook")).items() if n > 1}


def test_a_restarted_or_killed_operator_makes_no_second_incident_and_no_second_notification(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    setup(sim, ns, receiver, autoResolve={"clearFor": "1h"})
    first = start_operator(sim, [ns], tmp_path / "operator-1.log")
    try:
        apply(sim, deployment("shop", CRASHING_IMAGE, 2), ns)
        eventually(lambda: receiver.keys("/hook"), timeout=60, interval=0.2, message="the opening was notified")

        def sent() -> dict[str, Any] | None:
            found = incidents(sim, ns)
            entries = found[0].get("status", {}).get("notifications") or [] if found else []
            return found[0] if [(e["key"], e["state"]) for e in entries] == [("opened", "Sent")] else None

        incident = eventually(sent, timeout=30, interval=0.2, message="the notification recorded as Sent")
    finally:
        assert first.stop() == 0, first.log()
    name, uid = incident["metadata"]["name"], incident["metadata"]["uid"]
    assert receiver.keys("/hook") == [f"{uid}/opened"]
    counted = int(one_incident(sim, ns)["status"]["occurrences"])

    for stop in ("SIGTERM", "SIGKILL"):
        restarted = start_operator(sim, [ns], tmp_path / f"operator-after-{stop}.log")
        try:
            counted = occurrences_above(sim, ns, counted)
            current = one_incident(sim, ns)
        finally:
            if stop == "SIGTERM":
                assert restarted.stop() == 0, restarted.log()
            else:
                restarted.kill()
        assert current["metadata"]["name"] == name and current["metadata"]["uid"] == uid
        assert current["status"]["phase"] == "Triggered"
        assert receiver.keys("/hook") == [f"{uid}/opened"], f"no second notification after a {stop} restart"
        assert [(e["key"], e["state"]) for e in current["status"]["notifications"]] == [("opened", "Sent")]

    # After the SIGKILL: a fresh operator still keeps to the one incident and the one notification.
    with running_operator(sim, [ns], tmp_path / "operator-last.log"):
        counted = occurrences_above(sim, ns, counted)
        assert one_incident(sim, ns)["metadata"]["name"] == name
    assert receiver.keys("/hook") == [f"{uid}/opened"]
    opened = sim.kubectl_json(
        "get", "events", "-n", ns, "--field-selector", f"involvedObject.name={name},reason=Opened"
    )
    assert len(opened["items"]) == 1


def test_two_replicas_make_one_incident_and_send_each_notification_once(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    setup(
        sim,
        ns,
        receiver,
        sla=[{"severity": "SEV1", "acknowledgeWithin": "3s", "resolveWithin": "1h"}],
        escalation={"levels": [{"level": 1, "after": "3s", "channels": ["oncall"]}]},
        autoResolve={"clearFor": "3s"},
    )
    replicas = [start_operator(sim, [ns], tmp_path / f"replica-{index}.log") for index in (1, 2)]
    try:
        apply(sim, deployment("cart", CRASHING_IMAGE, 3), ns)
        wanted = {"opened", "sla-acknowledge", "escalated-1"}

        def notified() -> dict[str, Any] | None:
            found = incidents(sim, ns)
            entries = (found[0].get("status", {}).get("notifications") or []) if found else []
            done = {entry["key"] for entry in entries if entry["state"] == "Sent"}
            return found[0] if wanted <= done else None

        incident = eventually(notified, timeout=90, interval=0.3, message="opened, breached and escalated, all sent")
        uid = incident["metadata"]["uid"]
        assert one_incident(sim, ns)["metadata"]["uid"] == uid
        assert duplicates(receiver) == {}

        # Both replicas see the fix; the incident resolves once, and is told once.
        sim.kubectl("set", "image", "-n", ns, "deployment/cart", f"cart={GOOD_IMAGE}")

        def resolved() -> dict[str, Any] | None:
            found = one_incident(sim, ns)
            entries = found.get("status", {}).get("notifications") or []
            done = [entry for entry in entries if entry["key"].startswith("resolved-") and entry["state"] == "Sent"]
            return found if found["status"].get("phase") == "Resolved" and done else None

        incident = eventually(resolved, timeout=90, interval=0.3, message="the resolution notified")
    finally:
        for replica in replicas:
            replica.stop()
    keys = receiver.keys("/hook")
    assert duplicates(receiver) == {}, f"a notification went twice: {keys}"
    assert {f"{uid}/{key}" for key in wanted} <= set(keys)
    assert sum(1 for key in keys if key.startswith(f"{uid}/resolved-")) >= 1
    entries = incident["status"]["notifications"]
    assert len({entry["key"] for entry in entries}) == len(entries), "one entry per key and channel"
    assert sorted(keys) == sorted(f"{uid}/{entry['key']}" for entry in entries if entry["state"] == "Sent")
    assert [item["metadata"]["name"] for item in incidents(sim, ns)] == [incident["metadata"]["name"]]


def test_a_claim_left_pending_by_an_operator_that_died_is_resent_once_with_the_same_key(
    sim: Cluster, ns: str, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    setup(sim, ns, receiver)
    manual = {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "checkout-502"},
        "spec": {"severity": "SEV3", "summary": "checkout answers 502", "signal": {"type": "Manual"}},
    }
    replicas = [start_operator(sim, [ns], tmp_path / f"replica-{index}.log") for index in (1, 2)]
    try:
        apply(sim, manual, ns)

        def triggered() -> dict[str, Any] | None:
            found = sim.kubectl_json("get", "incident", "checkout-502", "-n", ns)
            return found if found.get("status", {}).get("phase") == "Triggered" else None

        uid = eventually(triggered, timeout=30, interval=0.2, message="the incident triggered")["metadata"]["uid"]
        # What an operator killed between its claim and its POST leaves behind, long enough ago to have expired.
        claim = {"key": "escalated-1", "channel": "oncall", "reason": "Escalated", "state": "Pending"}
        claim.update({"at": "2020-01-01T00:00:00Z", "attempts": 1, "message": "sending"})
        patch = {"status": {"notifications": [claim]}}
        sim.kubectl(
            "patch",
            "incident",
            "checkout-502",
            "-n",
            ns,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(patch),
        )

        def resent() -> dict[str, Any] | None:
            found = sim.kubectl_json("get", "incident", "checkout-502", "-n", ns)
            entries = found.get("status", {}).get("notifications") or []
            return entries[0] if entries and entries[0]["state"] == "Sent" else None

        entry = eventually(resent, timeout=30, interval=0.2, message="the expired claim resent and settled")
    finally:
        for replica in replicas:
            replica.stop()
    assert receiver.keys("/hook") == [f"{uid}/escalated-1"], "resent once, by one of the two replicas"
    body = receiver.posts("/hook")[0].body
    assert (body["event"]["reason"], body["event"]["level"]) == ("Escalated", 1)
    assert body["event"]["message"].startswith("resent")
    assert (entry["key"], entry["channel"], entry["attempts"]) == ("escalated-1", "oncall", 2)
