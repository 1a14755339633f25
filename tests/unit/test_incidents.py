"""The Incident controller's decisions: names, new incidents, repeats, requested states, auto-resolve."""

from __future__ import annotations

import datetime
import re
from typing import Any

import hypothesis.strategies as st
import jsonschema
import pytest
from hypothesis import given, settings

from upkeep.engine import incidents, signals, sla
from upkeep.model import conditions, errors, lifecycle, resources, schemas

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
POLICY = {
    "sla": [{"severity": "SEV2", "acknowledgeWithin": "15m", "resolveWithin": "8h"}],
    "escalation": {"levels": [{"level": 1, "after": "5m", "channels": ["oncall"]}]},
}


def crashloop(
    pod: str = "shop-6d8f7c9b54-x2k8p",
    *,
    at: datetime.datetime = T0,
    signal_type: str = "CrashLoopBackOff",
    workload: str = "shop",
) -> signals.Signal:
    """A signal as the pod detector makes it for a pod of the Deployment ``workload``."""
    affected = resources.ObjectRef("Pod", pod, "shop", "v1")
    owner = resources.ObjectRef("Deployment", workload, "shop", "apps/v1")
    return signals.Signal(
        type=signal_type,
        namespace="shop",
        affected=affected,
        workload=owner,
        reason=signal_type,
        message=f"back-off 40s restarting failed container=shop pod={pod}",
        labels={"app": workload},
        observed_at=at,
        source="detector/pods",
        fingerprint=signals.fingerprint_for(signal_type, "shop", owner, affected),
    )


def opened(signal: signals.Signal | None = None, *, at: datetime.datetime = T0) -> dict[str, Any]:
    signal = signal or crashloop(at=at)
    return incidents.initial_status(signal, at, sla.deadlines("SEV2", at, POLICY))


def validate(kind: str, body: dict[str, Any]) -> None:
    """The body is valid for the kind's CRD schema (structure, enums, patterns)."""
    jsonschema.Draft202012Validator(schemas.by_kind()[kind].json_schema).validate(body)


def phases(status: dict[str, Any]) -> list[str]:
    return [entry["to"] for entry in status["timeline"]]


# Names


def test_the_name_is_readable_stable_and_the_same_for_every_pod_of_the_workload() -> None:
    first = incidents.incident_name(crashloop("shop-aaa-1"))
    second = incidents.incident_name(crashloop("shop-bbb-2", at=T0 + MINUTE))

    assert first == second
    assert first.startswith("shop-crashloop-")
    assert DNS_LABEL.match(first)
    assert len(first) <= 63


def test_different_failures_get_different_names() -> None:
    names = {
        incidents.incident_name(crashloop()),
        incidents.incident_name(crashloop(signal_type="OOMKilled")),
        incidents.incident_name(crashloop(workload="cart")),
    }

    assert len(names) == 3


def test_alert_and_node_names_say_what_they_are() -> None:
    assert incidents.name_for("alert:shop:highlatency:3f9a0c27d1e4").startswith("highlatency-alert-")
    assert incidents.name_for("nodenotready:default:node:worker-2").startswith("worker-2-notready-")


def test_sequence_names_the_incident_after_a_closed_one() -> None:
    signal = crashloop()
    base = incidents.incident_name(signal)

    assert incidents.incident_name(signal, sequence=2) == f"{base}-2"
    assert incidents.next_incident_name(signal, []) == base
    assert incidents.next_incident_name(signal, [{"metadata": {"name": base}}]) == f"{base}-2"
    with pytest.raises(ValueError, match="sequence"):
        incidents.incident_name(signal, sequence=0)


@settings(max_examples=300)
@given(
    fingerprint=st.from_regex(r"\A[a-z0-9][a-z0-9:._-]{0,252}\Z", fullmatch=True),
    sequence=st.integers(min_value=1, max_value=999),
)
def test_any_fingerprint_gives_a_dns_label(fingerprint: str, sequence: int) -> None:
    name = incidents.name_for(fingerprint, sequence=sequence)

    assert DNS_LABEL.match(name), name
    assert len(name) <= 63
    assert name == incidents.name_for(fingerprint, sequence=sequence)
    assert LABEL_VALUE.match(incidents.fingerprint_hash(fingerprint))


@given(text=st.text(max_size=120))
def test_label_values_are_always_valid(text: str) -> None:
    value = incidents.label_value(text)

    assert LABEL_VALUE.match(value), value
    assert len(value) <= 63


def test_the_current_incident_is_the_newest_that_is_not_closed() -> None:
    def body(name: str, phase: str, at: datetime.datetime) -> dict[str, Any]:
        return {"metadata": {"name": name}, "status": {"phase": phase, "triggeredAt": sla.format_time(at)}}

    older = body("a", "Resolved", T0)
    newer = body("b", "Triggered", T0 + MINUTE)
    closed = body("c", "Closed", T0 + 2 * MINUTE)

    assert incidents.current_incident([older, newer, closed]) is newer
    assert incidents.current_incident([closed]) is None
    assert incidents.current_incident([]) is None


# A new incident


def test_a_new_incident_has_the_fields_of_the_crd() -> None:
    signal = crashloop()

    body = incidents.new_incident(signal, "SEV2", now=T0, namespace="shop")

    validate("Incident", body)
    assert body["apiVersion"] == "upkeep.dev/v1alpha1"
    assert body["kind"] == "Incident"
    assert body["metadata"]["name"] == incidents.incident_name(signal)
    assert body["metadata"]["namespace"] == "shop"
    assert body["metadata"]["labels"] == {
        incidents.FINGERPRINT_HASH_LABEL: incidents.fingerprint_hash("crashloopbackoff:shop:deployment:shop"),
        incidents.FAMILY_HASH_LABEL: incidents.fingerprint_hash("crashloopbackoff:shop:deployment:shop"),
        incidents.SERVICE_LABEL: "shop",
    }
    assert body["spec"]["severity"] == "SEV2"
    assert body["spec"]["service"] == "shop"
    assert body["spec"]["summary"] == "shop: Deployment shop restarts in a loop"
    assert body["spec"]["signal"] == {
        "type": "CrashLoopBackOff",
        "fingerprint": "crashloopbackoff:shop:deployment:shop",
        "source": "detector/pods",
        "reason": "CrashLoopBackOff",
        "message": "back-off 40s restarting failed container=shop pod=shop-6d8f7c9b54-x2k8p",
        "labels": {"app": "shop"},
    }
    assert body["spec"]["workload"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "shop",
    }


def test_the_service_of_the_release_wins_over_the_workload_name() -> None:
    body = incidents.new_incident(crashloop(), "SEV2", now=T0, namespace="shop", service="storefront")

    assert body["spec"]["service"] == "storefront"
    assert body["metadata"]["labels"][incidents.SERVICE_LABEL] == "storefront"
    assert body["spec"]["summary"].startswith("storefront: ")


def test_an_unknown_severity_is_refused_naming_the_field() -> None:
    with pytest.raises(errors.SpecError) as caught:
        incidents.new_incident(crashloop(), "SEV9", now=T0, namespace="shop")

    assert caught.value.field == "spec.severity"
    assert "SEV9" in str(caught.value)


def test_the_initial_status_is_triggered_by_the_detector() -> None:
    signal = crashloop(at=T0 - SECOND)

    status = incidents.initial_status(signal, T0, sla.deadlines("SEV2", T0, POLICY))

    validate("Incident", {"apiVersion": "upkeep.dev/v1alpha1", "kind": "Incident", "spec": SPEC, "status": status})
    assert status["phase"] == "Triggered"
    assert status["occurrences"] == 1
    assert status["firstSeen"] == status["lastSeen"] == "2026-03-02T09:59:59Z"
    assert status["triggeredAt"] == "2026-03-02T10:00:00Z"
    assert status["timeline"] == [
        {
            "at": "2026-03-02T10:00:00Z",
            "to": "Triggered",
            "by": "detector/pods",
            "note": "opened: CrashLoopBackOff on Pod/shop/shop-6d8f7c9b54-x2k8p",
        }
    ]
    assert status["affected"] == [
        {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "shop-6d8f7c9b54-x2k8p"}
    ]
    assert status["sla"] == {
        "acknowledgeBy": "2026-03-02T10:15:00Z",
        "acknowledgeBreached": False,
        "resolveBy": "2026-03-02T18:00:00Z",
        "resolveBreached": False,
    }
    assert status["escalationLevel"] == 0
    found = {item["type"]: (item["status"], item["reason"]) for item in status["conditions"]}
    assert found == {
        "Ready": ("True", "Triggered"),
        "Acknowledged": ("False", "NotAcknowledged"),
        "SLABreached": ("False", "WithinSLA"),
        "Escalated": ("False", "NotEscalated"),
    }
    assert "observedGeneration" not in status


SPEC = {"severity": "SEV2", "signal": {"type": "CrashLoopBackOff"}}


# Repeats


def test_a_repeat_counts_and_never_makes_a_second_incident() -> None:
    status = opened()

    for number in range(2, 6):
        update = incidents.record_occurrence(status, crashloop(f"shop-pod-{number}", at=T0 + number * SECOND), now=T0)
        assert not update.open_new
        assert not update.reopened
        status = update.status

    assert status["occurrences"] == 5
    assert status["lastSeen"] == "2026-03-02T10:00:05Z"
    assert status["firstSeen"] == "2026-03-02T10:00:00Z"
    assert len(status["affected"]) == 5
    assert status["phase"] == "Triggered"
    assert phases(status) == ["Triggered"]


def test_a_late_signal_does_not_move_last_seen_back() -> None:
    status = incidents.record_occurrence(opened(), crashloop(at=T0 + MINUTE), now=T0 + MINUTE).status

    status = incidents.record_occurrence(status, crashloop(at=T0 + SECOND), now=T0 + MINUTE).status

    assert status["lastSeen"] == "2026-03-02T10:01:00Z"
    assert status["occurrences"] == 3
    assert len(status["affected"]) == 1


def test_the_affected_list_is_bounded_and_keeps_the_newest() -> None:
    status = opened()
    for number in range(50):
        status = incidents.record_occurrence(status, crashloop(f"pod-{number}"), now=T0).status

    names = [item["name"] for item in status["affected"]]
    assert len(names) == incidents.MAX_AFFECTED
    assert names[-1] == "pod-49"
    assert names[0] == f"pod-{50 - incidents.MAX_AFFECTED}"


@pytest.mark.parametrize("phase", ["Resolved", "Mitigated"])
def test_the_signal_coming_back_reopens_the_incident(phase: str) -> None:
    status = opened()
    if phase == "Mitigated":
        status = incidents.transition(status, "Mitigating", by="playbook/crashloop", now=T0 + MINUTE)
    status = incidents.transition(status, phase, by="upkeep/auto-resolve", now=T0 + 2 * MINUTE)

    update = incidents.record_occurrence(status, crashloop(at=T0 + 3 * MINUTE), now=T0 + 3 * MINUTE)

    assert update.reopened
    assert not update.open_new
    assert update.status["phase"] == "Triggered"
    last = update.status["timeline"][-1]
    assert last == {
        "at": "2026-03-02T10:03:00Z",
        "from": phase,
        "to": "Triggered",
        "by": "detector/pods",
        "note": "reopened: the signal came back",
    }
    assert update.status["triggeredAt"] == "2026-03-02T10:00:00Z"
    ready = conditions.find(update.status["conditions"], "Ready")
    assert ready is not None
    assert ready.reason == "Triggered"


def test_a_signal_from_before_the_resolution_counts_but_does_not_reopen() -> None:
    status = incidents.transition(opened(), "Resolved", by="ana", now=T0 + 2 * MINUTE)

    update = incidents.record_occurrence(status, crashloop(at=T0 + MINUTE), now=T0 + 3 * MINUTE)

    assert not update.reopened
    assert update.status["phase"] == "Resolved"
    assert update.status["occurrences"] == 2


def test_a_closed_incident_is_never_reopened() -> None:
    status = incidents.transition(opened(), "Resolved", by="ana", now=T0 + MINUTE)
    status = incidents.transition(status, "Closed", by="ana", now=T0 + 2 * MINUTE)

    update = incidents.record_occurrence(status, crashloop(at=T0 + 3 * MINUTE), now=T0 + 3 * MINUTE)

    assert update.open_new
    assert not update.reopened
    assert update.status == status


# What people ask for


def test_acknowledging_records_who_when_and_why() -> None:
    spec = {"state": "Acknowledged", "note": "Looking at it."}

    status, error = incidents.apply_requested_state(spec, opened(), actor="ana@example.com", now=T0 + 2 * MINUTE)

    assert error is None
    assert status["phase"] == "Acknowledged"
    assert status["acknowledgedAt"] == "2026-03-02T10:02:00Z"
    assert status["timeline"][-1] == {
        "at": "2026-03-02T10:02:00Z",
        "from": "Triggered",
        "to": "Acknowledged",
        "by": "ana@example.com",
        "note": "Looking at it.",
    }
    acknowledged = conditions.find(status["conditions"], "Acknowledged")
    assert acknowledged is not None
    assert acknowledged.status == "True"
    assert "ana@example.com" in acknowledged.message
    validate("Incident", {"apiVersion": "upkeep.dev/v1alpha1", "kind": "Incident", "spec": SPEC, "status": status})


@pytest.mark.parametrize(
    ("path", "requested"),
    [
        (["Resolved", "Closed"], "Acknowledged"),
        ([], "Closed"),
    ],
)
def test_an_invalid_request_returns_the_reason_and_moves_nothing(path: list[str], requested: str) -> None:
    status = opened()
    for phase in path:
        status = incidents.transition(status, phase, by="ana", now=T0 + MINUTE)

    after, error = incidents.apply_requested_state({"state": requested}, status, actor="bob", now=T0 + 2 * MINUTE)

    assert error is not None
    assert error.startswith("spec.state: Incident cannot go from")
    assert f"to {requested}" in error
    assert after["phase"] == status["phase"]
    assert after["timeline"] == status["timeline"]


def test_timestamps_are_set_once() -> None:
    status = opened()
    steps = [("Acknowledged", 1), ("Mitigating", 2), ("Acknowledged", 3), ("Mitigated", 4), ("Mitigating", 5)]
    for phase, minute in steps:
        status, error = incidents.apply_requested_state({"state": phase}, status, actor="ana", now=T0 + minute * MINUTE)
        assert error is None
    status, _ = incidents.apply_requested_state({"state": "Mitigated"}, status, actor="ana", now=T0 + 6 * MINUTE)

    assert status["acknowledgedAt"] == "2026-03-02T10:01:00Z"
    assert status["mitigatedAt"] == "2026-03-02T10:04:00Z"
    assert phases(status) == [
        "Triggered",
        "Acknowledged",
        "Mitigating",
        "Acknowledged",
        "Mitigated",
        "Mitigating",
        "Mitigated",
    ]


def test_a_slow_clock_never_moves_time_backwards() -> None:
    status, _ = incidents.apply_requested_state({"state": "Acknowledged"}, opened(), actor="ana", now=T0 + 10 * MINUTE)

    status, _ = incidents.apply_requested_state({"state": "Resolved"}, status, actor="bob", now=T0 + MINUTE)

    assert status["resolvedAt"] == status["acknowledgedAt"] == "2026-03-02T10:10:00Z"
    assert status["timeline"][-1]["at"] == "2026-03-02T10:10:00Z"


def test_working_on_an_incident_acknowledges_it() -> None:
    status, _ = incidents.apply_requested_state({"state": "Mitigating"}, opened(), actor="ana", now=T0 + MINUTE)

    assert status["acknowledgedAt"] == "2026-03-02T10:01:00Z"


def test_a_request_counts_once_per_generation() -> None:
    spec = {"state": "Resolved", "note": "fixed the image"}
    status, _ = incidents.apply_requested_state(spec, opened(), actor="ana", now=T0 + MINUTE, generation=2)
    assert status["observedGeneration"] == 2
    status = incidents.record_occurrence(status, crashloop(at=T0 + 2 * MINUTE), now=T0 + 2 * MINUTE).status
    assert status["phase"] == "Triggered"

    again, error = incidents.apply_requested_state(spec, status, actor="ana", now=T0 + 3 * MINUTE, generation=2)

    assert error is None
    assert again["phase"] == "Triggered"
    newer, _ = incidents.apply_requested_state(
        {**spec, "note": "really fixed"}, status, actor="ana", now=T0 + 4 * MINUTE, generation=3
    )
    assert newer["phase"] == "Resolved"
    assert newer["timeline"][-1]["note"] == "really fixed"


def test_a_valid_request_clears_an_earlier_refusal() -> None:
    status = dict(opened())
    status["conditions"] = conditions.mark_failed(
        status["conditions"], reason="InvalidTransition", message="no", generation=1, stalled=True, now=T0
    )

    status, error = incidents.apply_requested_state(
        {"state": "Acknowledged"}, status, actor="ana", now=T0 + MINUTE, generation=2
    )

    assert error is None
    ready = conditions.find(status["conditions"], "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("True", "Acknowledged")
    assert conditions.find(status["conditions"], "Stalled") is None


def test_without_a_state_nothing_moves() -> None:
    status = opened()

    after, error = incidents.apply_requested_state({"note": "hi"}, status, actor="ana", now=T0)

    assert error is None
    assert after == status


# Auto-resolve


def test_auto_resolve_waits_for_the_clear_window() -> None:
    status = opened()
    clear_since = T0 + MINUTE

    assert incidents.auto_resolve(status, signal_clear_since=None, clear_for=5 * MINUTE, now=T0 + MINUTE * 30) is None
    assert (
        incidents.auto_resolve(status, signal_clear_since=clear_since, clear_for=5 * MINUTE, now=T0 + 5 * MINUTE)
        is None
    )
    assert incidents.auto_resolve_at(status, signal_clear_since=clear_since, clear_for=5 * MINUTE) == T0 + 6 * MINUTE

    resolved = incidents.auto_resolve(status, signal_clear_since=clear_since, clear_for=5 * MINUTE, now=T0 + 6 * MINUTE)

    assert resolved is not None
    assert resolved["phase"] == "Resolved"
    assert resolved["resolvedAt"] == "2026-03-02T10:06:00Z"
    assert resolved["clearSince"] == "2026-03-02T10:01:00Z"
    assert resolved["timeline"][-1]["by"] == incidents.AUTO_RESOLVE_ACTOR
    assert "clear since 2026-03-02T10:01:00Z" in resolved["timeline"][-1]["note"]


def test_a_signal_seen_after_it_went_clear_restarts_the_window() -> None:
    status = incidents.record_occurrence(opened(), crashloop(at=T0 + 4 * MINUTE), now=T0 + 4 * MINUTE).status

    assert incidents.auto_resolve(status, signal_clear_since=T0, clear_for=5 * MINUTE, now=T0 + 6 * MINUTE) is None
    assert incidents.auto_resolve_at(status, signal_clear_since=T0, clear_for=5 * MINUTE) == T0 + 9 * MINUTE


@pytest.mark.parametrize("phase", ["Resolved", "Closed"])
def test_auto_resolve_leaves_finished_incidents_alone(phase: str) -> None:
    status = incidents.transition(opened(), "Resolved", by="ana", now=T0)
    if phase == "Closed":
        status = incidents.transition(status, "Closed", by="ana", now=T0)

    assert incidents.auto_resolve(status, signal_clear_since=T0, clear_for=MINUTE, now=T0 + MINUTE * 10) is None
    assert incidents.auto_resolve_at(status, signal_clear_since=T0, clear_for=MINUTE) is None


def test_clear_since_is_recorded_once_and_dropped_when_the_signal_returns() -> None:
    status = incidents.record_clear(opened(), since=T0 + MINUTE)
    status = incidents.record_clear(status, since=T0 + 2 * MINUTE)
    assert status["clearSince"] == "2026-03-02T10:01:00Z"

    status = incidents.record_occurrence(status, crashloop(at=T0 + 3 * MINUTE), now=T0 + 3 * MINUTE).status

    assert "clearSince" not in status


def test_link_problem() -> None:
    assert incidents.link_problem(opened(), "shop-crashloop-1234abcd")["problemRef"] == {
        "name": "shop-crashloop-1234abcd"
    }


# Whatever happens, the lifecycle holds.

_EVENTS = st.lists(
    st.one_of(
        st.tuples(
            st.just("request"), st.sampled_from(["Acknowledged", "Mitigating", "Mitigated", "Resolved", "Closed"])
        ),
        st.tuples(st.just("signal"), st.just("")),
        st.tuples(st.just("clear"), st.just("")),
    ),
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(events=_EVENTS, steps=st.lists(st.integers(min_value=-120, max_value=600), min_size=25, max_size=25))
def test_every_path_follows_the_lifecycle_with_monotonic_times(events: list[tuple[str, str]], steps: list[int]) -> None:
    status = opened()
    now = T0
    stamps: dict[str, str] = {}
    for (kind, state), step in zip(events, steps, strict=False):
        now += datetime.timedelta(seconds=step)  # clocks may step back
        if kind == "request":
            status, _ = incidents.apply_requested_state({"state": state}, status, actor="ana", now=now)
        elif kind == "signal":
            update = incidents.record_occurrence(status, crashloop(at=now), now=now)
            assert update.open_new == (status["phase"] == "Closed")
            status = update.status
        else:
            status = (
                incidents.auto_resolve(status, signal_clear_since=now, clear_for=SECOND, now=now + MINUTE) or status
            )
        for key in ("acknowledgedAt", "mitigatedAt", "resolvedAt", "closedAt"):
            if key in stamps:
                assert status[key] == stamps[key], f"{key} moved"
            elif key in status:
                stamps[key] = status[key]

    timeline = status["timeline"]
    previous = None
    for entry in timeline:
        assert TIME.match(entry["at"])
        lifecycle.check_transition("Incident", previous, entry["to"])
        assert entry.get("from") == previous
        previous = entry["to"]
    assert previous == status["phase"]
    moments = [entry["at"] for entry in timeline]
    assert moments == sorted(moments)
    assert status["occurrences"] >= 1


def test_a_flapping_signal_keeps_the_opening_and_the_newest_timeline_entries() -> None:
    status = opened()
    now = T0
    for _ in range(100):
        now += MINUTE
        status = incidents.transition(status, "Resolved", by="upkeep/auto-resolve", now=now)
        now += MINUTE
        status = incidents.record_occurrence(status, crashloop(at=now), now=now).status

    timeline = status["timeline"]
    assert len(timeline) == incidents.MAX_TIMELINE
    assert timeline[0]["note"].startswith("opened:")
    assert timeline[-1]["at"] == sla.format_time(now)
