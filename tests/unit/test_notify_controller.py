"""The notification controller with an in-memory cluster and a recording sender: what notifies, claims, dedupe.

The cluster keeps resourceVersions as the API server does (a stale write is a Conflict), so
two controllers sharing it behave as two operator replicas sharing an API server.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import incidents as incidents_
from upkeep.controllers import notifications
from upkeep.notify import sender

NS = "shop"
NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
POLICY: dict[str, Any] = {
    "escalation": {
        "levels": [
            {"level": 1, "after": "5m", "channels": ["oncall", "chat"]},
            {"level": 2, "after": "30m", "channels": ["manager"]},
        ]
    },
    "channels": [
        {"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "hook"}},
        {"name": "chat", "type": "Slack", "urlSecretRef": {"name": "slack"}},
        {"name": "manager", "type": "Webhook", "urlSecretRef": {"name": "absent"}},
    ],
}


def incident(severity: str = "SEV1", **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": "shop-crashloop-1", "namespace": NS, "uid": "uid-1", "generation": 1},
        "spec": {
            "severity": severity,
            "service": "shop",
            "summary": "shop restarts in a loop",
            "signal": {"type": "CrashLoopBackOff", "fingerprint": "crashloopbackoff:shop:deployment:shop"},
        },
        "status": {
            "phase": "Triggered",
            "occurrences": 1,
            "timeline": [{"at": "2025-03-01T12:00:00Z", "to": "Triggered", "by": "upkeep"}],
            **status,
        },
    }


class FakeCluster:
    """Incidents and Secrets in memory, with resourceVersions checked on status writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 100
        self.writes = 0
        self.before_write: Callable[[dict[str, Any]], None] | None = None

    def put(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(stored["metadata"]["namespace"], stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def secret(self, name: str, url: str, namespace: str = NS) -> None:
        self.secrets[(namespace, name)] = {"data": {"url": base64.b64encode(url.encode()).decode()}}

    async def get_incident(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def replace_incident_status(self, body: Mapping[str, Any]) -> dict[str, Any]:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook(self.objects[key])
        await asyncio.sleep(0)  # let the other writers run, as a round trip to a server would
        stored = self.objects[key]
        if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
            raise cluster_.Conflict("stale")
        self.writes += 1
        return self.put({**stored, "status": copy.deepcopy(body["status"])})

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = self.objects[(NS, "shop-crashloop-1")]["status"]
        return found


class RecordingSender:
    """A ``Sender`` that records what it would post and answers from ``outcomes`` (delivered by default)."""

    timeout = sender.DEFAULT_TIMEOUT

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.outcomes: list[sender.Delivery] = []

    def budget(self, first: float, retries: int) -> float:
        return 60.0

    async def send(self, url: str, payload: Mapping[str, Any], **options: Any) -> sender.Delivery:
        self.sent.append({"url": url, "payload": dict(payload), **options})
        await asyncio.sleep(0)
        return self.outcomes.pop(0) if self.outcomes else sender.Delivery(True, 1, "HTTP 200", 200)

    def keys(self) -> list[tuple[str, str]]:
        return [(item["idempotency_key"], item["url"]) for item in self.sent]


class Setup:
    def __init__(self, *, dry_run: bool = False, policy: Mapping[str, Any] | None = POLICY) -> None:
        self.cluster = FakeCluster()
        self.cluster.secret("hook", "http://127.0.0.1:9/hook")
        self.cluster.secret("slack", "http://127.0.0.1:9/slack")
        self.events: list[tuple[str, str, str]] = []
        self.failures: list[str] = []
        self.sender = RecordingSender()
        self.now = NOW
        self.settings = settings_.OperatorSettings(safety=settings_.SafetySettings(dry_run=dry_run))
        self.policy = policy

    def controller(self) -> notifications.NotificationController:
        def sink(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
            self.events.append((type_, reason, message))

        return notifications.NotificationController(
            self.settings,
            self.cluster,  # type: ignore[arg-type]
            policy_for=lambda namespace: self.policy,
            events=sink,
            on_failure=self.failures.append,
            sender_=self.sender,  # type: ignore[arg-type]
            clock=lambda: self.now,
        )


async def drained(*controllers: notifications.NotificationController) -> None:
    """Wait until every task the controllers queued has finished."""
    while any(controller._tasks for controller in controllers):
        await asyncio.gather(*[task for controller in controllers for task in list(controller._tasks)])


def notice(body: Mapping[str, Any], reason: str, **fields: Any) -> incidents_.Notice:
    kind = "Warning" if reason in ("SLABreached", "Escalated", "Reopened") else "Normal"
    return incidents_.Notice(body, kind, reason, f"{reason} happened", signal_type="CrashLoopBackOff", **fields)


# What notifies


def names(planned: tuple[notifications.Planned, ...]) -> list[tuple[str, str]]:
    return [(item.occasion.key, item.channel) for item in planned]


def test_opening_a_sev1_or_sev2_tells_the_first_responders_and_a_sev3_nobody() -> None:
    assert names(notifications.plan(notice(incident("SEV1"), "Opened"), POLICY)) == [
        ("opened", "oncall"),
        ("opened", "chat"),
    ]
    assert names(notifications.plan(notice(incident("SEV2"), "Opened"), POLICY))
    assert notifications.plan(notice(incident("SEV3"), "Opened"), POLICY) == ()


def test_a_breach_tells_the_levels_reached_and_an_escalation_its_level() -> None:
    breached = incident("SEV3", escalationLevel=2)
    assert names(notifications.plan(notice(breached, "SLABreached", breach="acknowledge"), POLICY)) == [
        ("sla-acknowledge", "oncall"),
        ("sla-acknowledge", "chat"),
        ("sla-acknowledge", "manager"),
    ]
    escalated = notice(breached, "Escalated", level=2, channels=("manager",))
    assert names(notifications.plan(escalated, POLICY)) == [("escalated-2", "manager")]
    assert notifications.plan(escalated, POLICY)[0].occasion.level == 2


def test_resolution_and_reopening_tell_those_who_were_told() -> None:
    told = [
        {"key": "sla-resolve", "channel": "chat", "state": "Sent"},
        {"key": "escalated-2", "channel": "manager", "state": "Failed"},
    ]
    resolved = incident("SEV3", phase="Resolved", resolvedAt="2025-03-01T13:00:00Z", notifications=told)
    assert names(notifications.plan(notice(resolved, "AutoResolved"), POLICY)) == [
        ("resolved-20250301T130000Z", "chat")
    ]
    assert notifications.plan(notice(incident("SEV3", phase="Resolved"), "Resolved"), POLICY) == ()
    reopened = incident("SEV3", notifications=told)
    reopened["status"]["timeline"].append({"at": "2025-03-01T14:00:00Z", "from": "Resolved", "to": "Triggered"})
    assert names(notifications.plan(notice(reopened, "Reopened"), POLICY)) == [("reopened-20250301T140000Z", "chat")]
    reopened["spec"]["severity"] = "SEV1"
    assert [channel for _, channel in names(notifications.plan(notice(reopened, "Reopened"), POLICY))] == [
        "oncall",
        "chat",
    ]


def test_other_notices_and_a_policy_without_channels_notify_nobody() -> None:
    for reason in ("Occurred", "Acknowledged", "Mitigated", "Closed", "InvalidTransition"):
        assert notifications.plan(notice(incident("SEV1"), reason), POLICY) == ()
    assert notifications.plan(notice(incident("SEV1"), "Opened"), None) == ()


# Claim, send, settle


def test_a_notice_is_claimed_sent_and_settled_with_an_event_per_channel() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1"))

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Opened"))
        await drained(controller)

    asyncio.run(main())
    assert sorted(setup.sender.keys()) == [
        ("uid-1/opened", "http://127.0.0.1:9/hook"),
        ("uid-1/opened", "http://127.0.0.1:9/slack"),
    ]
    by_url = {item["url"]: item for item in setup.sender.sent}
    assert by_url["http://127.0.0.1:9/hook"]["payload"]["incident"]["name"] == "shop-crashloop-1"
    assert "blocks" in by_url["http://127.0.0.1:9/slack"]["payload"]
    assert by_url["http://127.0.0.1:9/hook"]["per_minute"] == 30
    entries = setup.cluster.status()["notifications"]
    assert [(e["key"], e["channel"], e["reason"], e["state"], e["attempts"]) for e in entries] == [
        ("opened", "oncall", "Opened", "Sent", 1),
        ("opened", "chat", "Opened", "Sent", 1),
    ]
    assert all("127.0.0.1" not in str(entry) for entry in entries), "the URL is never recorded"
    assert sorted(reason for _, reason, _ in setup.events) == ["NotificationSent", "NotificationSent"]
    assert all("127.0.0.1" not in message for _, _, message in setup.events)
    assert setup.failures == []


def test_a_notice_heard_again_sends_nothing_again() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1"))

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Opened"))
        await drained(controller)
        controller.hear(notice(body, "Opened"))
        controller.hear(notice(body, "Opened"))
        await drained(controller)
        restarted = setup.controller()
        restarted.hear(notice(body, "Opened"))
        await drained(restarted)

    asyncio.run(main())
    assert len(setup.sender.sent) == 2


def test_two_replicas_hearing_the_same_notice_send_it_once() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1"))

    async def main() -> None:
        first, second = setup.controller(), setup.controller()
        first.hear(notice(body, "Opened"))
        second.hear(notice(body, "Opened"))
        first.hear(notice(body, "SLABreached", breach="acknowledge"))
        second.hear(notice(body, "SLABreached", breach="acknowledge"))
        await drained(first, second)

    asyncio.run(main())
    assert sorted(setup.sender.keys()) == sorted(
        [
            (f"uid-1/{key}", f"http://127.0.0.1:9/{path}")
            for key in ("opened", "sla-acknowledge")
            for path in ("hook", "slack")
        ]
    )
    assert [entry["state"] for entry in setup.cluster.status()["notifications"]] == ["Sent"] * 4


def test_a_claim_that_conflicts_reads_again_and_keeps_what_the_incident_controller_wrote() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1"))

    def incident_controller_writes(stored: dict[str, Any]) -> None:
        setup.cluster.put({**stored, "status": {**stored["status"], "occurrences": 9}})

    setup.cluster.before_write = incident_controller_writes

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Opened"))
        await drained(controller)

    asyncio.run(main())
    status = setup.cluster.status()
    assert status["occurrences"] == 9
    assert [entry["state"] for entry in status["notifications"]] == ["Sent", "Sent"]
    assert len(setup.sender.sent) == 2


def test_a_missing_secret_fails_naming_secret_and_key_with_a_warning_and_the_hook() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV3", escalationLevel=2))

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Escalated", level=2, channels=("manager", "pager")))
        await drained(controller)

    asyncio.run(main())
    assert setup.sender.sent == []
    entries = {entry["channel"]: entry for entry in setup.cluster.status()["notifications"]}
    assert entries["manager"]["state"] == "Failed"
    assert entries["manager"]["message"] == "Secret shop/absent (urlSecretRef of channel manager) was not found"
    assert entries["pager"]["state"] == "Failed"
    assert "no channel named 'pager'" in entries["pager"]["message"]
    warnings = [
        message for kind, reason, message in setup.events if (kind, reason) == ("Warning", "NotificationFailed")
    ]
    assert len(warnings) == 2 and any("Secret shop/absent" in message for message in warnings)
    assert sorted(setup.failures) == ["manager", "pager"]


def test_a_failed_delivery_is_recorded_with_its_attempts() -> None:
    setup = Setup()
    setup.policy = {"channels": [POLICY["channels"][0]]}
    body = setup.cluster.put(incident("SEV1"))
    setup.sender.outcomes = [sender.Delivery(False, 6, "HTTP 503; gave up after 6 attempts", 503)]

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Opened"))
        await drained(controller)

    asyncio.run(main())
    [entry] = setup.cluster.status()["notifications"]
    assert (entry["state"], entry["attempts"], entry["message"]) == ("Failed", 6, "HTTP 503; gave up after 6 attempts")
    assert setup.failures == ["oncall"]


def test_dry_run_sends_and_writes_nothing_and_says_what_it_would_notify() -> None:
    setup = Setup(dry_run=True)
    body = setup.cluster.put(incident("SEV1"))

    async def main() -> None:
        controller = setup.controller()
        controller.hear(notice(body, "Opened"))
        controller.hear(notice(body, "Opened"))
        await drained(controller)

    asyncio.run(main())
    assert setup.sender.sent == [] and setup.cluster.writes == 0
    assert setup.events == [
        ("Normal", "DryRun", "dry run: would notify oncall (Opened)"),
        ("Normal", "DryRun", "dry run: would notify chat (Opened)"),
    ]


# Pending entries left by an operator that stopped


def pending(at: str, attempts: int = 0) -> dict[str, Any]:
    return {
        "key": "escalated-1",
        "channel": "oncall",
        "reason": "Escalated",
        "state": "Pending",
        "at": at,
        "attempts": attempts,
    }


def test_an_expired_pending_entry_is_resent_with_the_same_key() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1", notifications=[pending("2025-03-01T11:50:00Z", attempts=2)]))

    async def main() -> None:
        controller = setup.controller()
        controller.resume(body)
        controller.resume(body)
        await drained(controller)

    asyncio.run(main())
    assert setup.sender.keys() == [("uid-1/escalated-1", "http://127.0.0.1:9/hook")]
    assert setup.sender.sent[0]["payload"]["event"]["level"] == 1
    [entry] = setup.cluster.status()["notifications"]
    assert (entry["state"], entry["attempts"]) == ("Sent", 3)


def test_a_take_over_that_meets_another_writer_reads_again_and_still_resends() -> None:
    setup = Setup()
    body = setup.cluster.put(incident("SEV1", notifications=[pending("2025-03-01T11:50:00Z", attempts=2)]))

    def another_writer(stored: dict[str, Any]) -> None:  # e.g. a playbook linking its run, just before our write
        setup.cluster.put({**stored, "status": {**stored["status"], "playbookRuns": ["run-1"]}})

    async def main() -> None:
        controller = setup.controller()
        setup.cluster.before_write = another_writer
        controller.resume(body)  # the other writer's Incident event would come while this is in flight
        await drained(controller)

    asyncio.run(main())
    assert setup.sender.keys() == [("uid-1/escalated-1", "http://127.0.0.1:9/hook")]
    status = setup.cluster.status()
    assert status["playbookRuns"] == ["run-1"]
    assert [entry["state"] for entry in status["notifications"]] == ["Sent"]


def test_a_young_pending_entry_is_left_to_its_sender_and_two_replicas_take_over_once() -> None:
    setup = Setup()
    young = setup.cluster.put(incident("SEV1", notifications=[pending("2025-03-01T11:59:50Z")]))

    async def main() -> None:
        controller = setup.controller()
        controller.resume(young)
        await drained(controller)
        assert setup.sender.sent == []
        assert len(controller._timers) == 1, "a look at the moment the claim expires"
        await controller.close()

        setup.now = NOW + datetime.timedelta(minutes=5)
        first, second = setup.controller(), setup.controller()
        first.resume(young)
        second.resume(young)
        await drained(first, second)

    asyncio.run(main())
    assert len(setup.sender.sent) == 1


def test_entries_are_bounded_and_pending_ones_are_kept() -> None:
    entries = [{"key": f"k{index}", "channel": "c", "state": "Sent"} for index in range(60)]
    entries[0]["state"] = "Pending"
    kept = notifications._bounded(entries)
    assert len(kept) == notifications.MAX_ENTRIES
    assert kept[0]["key"] == "k0" and kept[1]["key"] == "k11" and kept[-1]["key"] == "k59"


def test_the_operator_namespace_comes_from_the_environment_else_the_service_account(tmp_path: Path) -> None:
    file = tmp_path / "namespace"
    assert notifications.operator_namespace({"UPKEEP_NAMESPACE": "ops", "POD_NAMESPACE": "x"}, file) == "ops"
    assert notifications.operator_namespace({"POD_NAMESPACE": "upkeep-system"}, file) == "upkeep-system"
    assert notifications.operator_namespace({}, file) is None
    file.write_text("upkeep\n")
    assert notifications.operator_namespace({}, file) == "upkeep"


@pytest.mark.parametrize(
    ("reason", "fields", "key"),
    [
        ("Opened", {}, "opened"),
        ("SLABreached", {"breach": "resolve"}, "sla-resolve"),
        ("Escalated", {"level": 3}, "escalated-3"),
        ("Occurred", {}, None),
    ],
)
def test_event_keys(reason: str, fields: dict[str, Any], key: str | None) -> None:
    assert notifications.event_key(notice(incident(), reason, **fields)) == key
