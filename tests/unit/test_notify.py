"""The pure parts of notifications: channels and their defaults, the Secret, payloads, back-off, the token bucket."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any

import pytest

from upkeep.notify import backoff, channels, payloads, ratelimit

NOW = datetime.datetime(2025, 3, 1, 12, 0, 0, tzinfo=datetime.UTC)
POLICY: dict[str, Any] = {
    "escalation": {
        "levels": [
            {"level": 2, "after": "30m", "channels": ["manager"]},
            {"level": 1, "after": "5m", "channels": ["oncall", "chat"]},
        ]
    },
    "channels": [
        {"name": "oncall", "type": "Webhook", "urlSecretRef": {"name": "hook"}},
        {
            "name": "chat",
            "type": "Slack",
            "urlSecretRef": {"name": "slack", "key": "webhook"},
            "rateLimit": {"perMinute": 6},
            "retries": {"max": 2, "backoff": "250ms"},
        },
        {"name": "manager", "type": "Webhook", "urlSecretRef": {"name": "manager-hook"}},
    ],
}
INCIDENT: dict[str, Any] = {
    "apiVersion": "upkeep.dev/v1alpha1",
    "kind": "Incident",
    "metadata": {"name": "shop-crashloop-8e3447ff", "namespace": "shop", "uid": "1234-abcd"},
    "spec": {
        "severity": "SEV1",
        "service": "shop",
        "summary": "shop: Deployment shop restarts in a loop <oops> & more",
        "signal": {"type": "CrashLoopBackOff", "fingerprint": "crashloopbackoff:shop:deployment:shop"},
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "namespace": "shop"},
    },
    "status": {
        "phase": "Triggered",
        "occurrences": 7,
        "firstSeen": "2025-03-01T11:59:00Z",
        "lastSeen": "2025-03-01T12:00:00Z",
        "escalationLevel": 1,
        "sla": {
            "acknowledgeBy": "2025-03-01T12:05:00Z",
            "resolveBy": "2025-03-01T16:00:00Z",
            "acknowledgeBreached": True,
            "resolveBreached": False,
        },
    },
}


# Channels


def test_a_channel_gets_the_crd_defaults() -> None:
    channel = channels.channel_named(POLICY, "oncall")
    assert channel == channels.Channel(
        name="oncall", type="Webhook", secret_name="hook", secret_key="url", per_minute=30, retries=5, backoff=1.0
    )


def test_a_channel_takes_what_the_policy_sets() -> None:
    channel = channels.channel_named(POLICY, "chat")
    assert (channel.type, channel.secret_name, channel.secret_key) == ("Slack", "slack", "webhook")
    assert (channel.per_minute, channel.retries, channel.backoff) == (6, 2, 0.25)


def test_an_unknown_channel_is_named_in_the_error() -> None:
    with pytest.raises(channels.ChannelError, match="no channel named 'pager'") as raised:
        channels.channel_named(POLICY, "pager", policy="default")
    assert "SupportPolicy default" in str(raised.value)
    assert raised.value.field == "spec.channels"


def test_an_unreadable_backoff_names_its_field() -> None:
    spec = {"channels": [{"name": "x", "type": "Webhook", "urlSecretRef": {"name": "s"}, "retries": {"backoff": "1"}}]}
    with pytest.raises(channels.ChannelError) as raised:
        channels.channel_named(spec, "x")
    assert raised.value.field == "spec.channels[0].retries.backoff"


def test_first_responders_are_the_lowest_level_else_every_channel() -> None:
    assert channels.first_responders(POLICY) == ("oncall", "chat")
    assert channels.first_responders({"channels": POLICY["channels"]}) == ("oncall", "chat", "manager")
    assert channels.first_responders(None) == ()


def test_reached_channels_add_each_level_reached_once() -> None:
    assert channels.reached_channels(POLICY, 0) == ("oncall", "chat")
    assert channels.reached_channels(POLICY, 1) == ("oncall", "chat")
    assert channels.reached_channels(POLICY, 2) == ("oncall", "chat", "manager")


def _secret(**data: str) -> dict[str, Any]:
    return {"data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}


def test_the_url_comes_from_the_secret_data() -> None:
    channel = channels.channel_named(POLICY, "chat")
    url = "https://hooks.example.com/services/T000/B000/secret-token"
    assert channels.url_from_secret(_secret(webhook=url + "\n"), channel, "ops") == url


def test_a_missing_secret_or_key_names_both_and_never_the_value() -> None:
    channel = channels.channel_named(POLICY, "oncall")
    with pytest.raises(channels.SecretError, match=r"Secret ops/hook \(urlSecretRef of channel oncall\) was not found"):
        channels.url_from_secret(None, channel, "ops")
    with pytest.raises(channels.SecretError, match=r"Secret ops/hook has no key 'url'"):
        channels.url_from_secret(_secret(other="https://x.example"), channel, "ops")
    with pytest.raises(channels.SecretError, match="holds no http") as raised:
        channels.url_from_secret(_secret(url="ftp://secret-token@example.com"), channel, "ops")
    assert "secret-token" not in str(raised.value)


# Payloads


def _facts() -> payloads.Facts:
    return payloads.Facts.from_incident(INCIDENT)


BREACH = payloads.Occasion(key="sla-acknowledge", reason="SLABreached", message="the acknowledge deadline passed")


def test_the_webhook_payload_says_what_and_which_event() -> None:
    payload = payloads.webhook_payload(_facts(), BREACH)
    assert payload["kind"] == "IncidentNotification"
    assert payload["apiVersion"] == "upkeep.dev/v1alpha1"
    assert payload["idempotencyKey"] == "1234-abcd/sla-acknowledge"
    assert payload["event"] == {
        "key": "sla-acknowledge",
        "reason": "SLABreached",
        "message": "the acknowledge deadline passed",
    }
    incident = payload["incident"]
    assert incident["name"] == "shop-crashloop-8e3447ff"
    assert (incident["namespace"], incident["uid"], incident["severity"]) == ("shop", "1234-abcd", "SEV1")
    assert (incident["phase"], incident["signalType"], incident["occurrences"]) == ("Triggered", "CrashLoopBackOff", 7)
    assert incident["workload"] == {"kind": "Deployment", "name": "shop", "namespace": "shop"}
    assert incident["escalationLevel"] == 1
    assert incident["sla"]["acknowledgeBy"] == "2025-03-01T12:05:00Z"
    assert payload["hint"] == "kubectl get incident shop-crashloop-8e3447ff -n shop"
    json.dumps(payload)


def test_the_webhook_payload_carries_the_level_of_an_escalation() -> None:
    occasion = payloads.Occasion(key="escalated-2", reason="Escalated", message="level 2", level=2)
    assert payloads.webhook_payload(_facts(), occasion)["event"]["level"] == 2


def test_the_slack_payload_has_text_and_blocks_with_escaped_text() -> None:
    payload = payloads.slack_payload(_facts(), BREACH)
    assert payload["text"].startswith(":hourglass: [SEV1] SLABreached: shop-crashloop-8e3447ff (shop)")
    assert "&lt;oops&gt; &amp; more" in payload["text"]
    assert payload["text"].endswith("\n" + BREACH.message)  # what the occasion says, under the summary
    assert "<oops>" not in json.dumps(payload)
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert payload["blocks"][0]["text"]["type"] == "plain_text"
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    fields = {item["text"].split("\n")[0]: item["text"].split("\n")[1] for item in payload["blocks"][2]["fields"]}
    assert fields["*Severity*"] == "SEV1"
    assert fields["*Acknowledge by*"] == "2025-03-01T12:05:00Z"
    assert len(payload["blocks"][2]["fields"]) <= 10
    assert "kubectl get incident shop-crashloop-8e3447ff -n shop" in payload["blocks"][3]["elements"][0]["text"]


def test_payload_for_picks_by_channel_type() -> None:
    assert "blocks" in payloads.payload_for("Slack", _facts(), BREACH)
    assert payloads.payload_for("Webhook", _facts(), BREACH)["kind"] == "IncidentNotification"
    with pytest.raises(ValueError, match="Teams"):
        payloads.payload_for("Teams", _facts(), BREACH)


# Back-off


def test_the_schedule_doubles_from_the_first_wait_up_to_the_cap() -> None:
    assert backoff.schedule(1.0, 5) == (1.0, 2.0, 4.0, 8.0, 16.0)
    assert backoff.schedule(0.25, 3) == (0.25, 0.5, 1.0)
    assert backoff.schedule(100.0, 4, cap=300.0) == (100.0, 200.0, 300.0, 300.0)
    assert backoff.schedule(1.0, 0) == ()


def test_jitter_keeps_a_wait_between_half_and_all_of_it() -> None:
    assert backoff.jittered(4.0, 0.0) == 2.0
    assert backoff.jittered(4.0, 0.5) == 3.0
    assert backoff.jittered(4.0, 0.999) == pytest.approx(4.0, abs=0.01)
    assert backoff.jittered(4.0, 7.0) == 4.0


def test_which_answers_are_retried() -> None:
    codes = (200, 400, 401, 404, 408, 409, 425, 429, 500, 501, 502, 503, 504, 505)
    assert [code for code in codes if backoff.retryable(code)] == [408, 425, 429, 500, 502, 503, 504]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert backoff.retry_after("7", NOW) == 7.0
    assert backoff.retry_after("Sat, 01 Mar 2025 12:00:30 GMT", NOW) == 30.0
    assert backoff.retry_after("Sat, 01 Mar 2025 11:00:00 GMT", NOW) == 0.0
    assert backoff.retry_after("soon", NOW) is None
    assert backoff.retry_after(None, NOW) is None


def test_the_delivery_budget_covers_every_wait_and_every_timeout() -> None:
    assert backoff.delivery_budget(1.0, 5, 10.0) == 31.0 + 60.0
    assert backoff.delivery_budget(1.0, 0, 10.0) == 10.0


# Rate limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_minute_worth_through_then_refills_evenly() -> None:
    clock = Clock()
    bucket = ratelimit.TokenBucket(6, clock=clock)
    assert [bucket.take() for _ in range(7)] == [True] * 6 + [False]
    assert bucket.wait_time() == pytest.approx(10.0)
    clock.now += 9.9
    assert not bucket.take()
    clock.now += 0.1
    assert bucket.take()
    clock.now += 3600
    assert [bucket.take() for _ in range(7)] == [True] * 6 + [False]


def test_buckets_are_per_channel_and_renewed_when_the_limit_changes() -> None:
    clock = Clock()
    buckets = ratelimit.Buckets(clock=clock)
    assert [buckets.take("a", 1), buckets.take("a", 1), buckets.take("b", 1)] == [True, False, True]
    assert buckets.take("a", 2)


def test_a_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ratelimit.TokenBucket(0)
