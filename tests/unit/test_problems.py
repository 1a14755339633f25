"""The Problem controller's decisions: recurrence within the window, the new problem, links, the phase."""

from __future__ import annotations

import datetime
from typing import Any

import hypothesis.strategies as st
import jsonschema
import pytest
from hypothesis import given, settings

from upkeep.engine import incidents, problems, sla
from upkeep.model import conditions, errors, lifecycle, schemas

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
HOUR = datetime.timedelta(hours=1)
FAMILY = "crashloopbackoff:shop:deployment:shop"
POLICY: dict[str, Any] = {"problems": {"recurrences": 3, "window": "24h"}}


def incident(
    name: str,
    at: datetime.datetime,
    *,
    fingerprint: str = FAMILY,
    phase: str = "Closed",
    reopened: tuple[datetime.datetime, ...] = (),
) -> dict[str, Any]:
    """An Incident body as the incident controller leaves it: triggered at ``at``, reopened at ``reopened``."""
    timeline = [{"at": sla.format_time(at), "to": "Triggered", "by": "detector/pods"}]
    for moment in reopened:
        timeline.append({"at": sla.format_time(moment - HOUR / 2), "from": "Triggered", "to": "Resolved", "by": "x"})
        timeline.append({"at": sla.format_time(moment), "from": "Resolved", "to": "Triggered", "by": "detector/pods"})
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Incident",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "severity": "SEV2",
            "service": "shop",
            "signal": {"type": "CrashLoopBackOff", "fingerprint": fingerprint},
        },
        "status": {"phase": phase, "triggeredAt": sla.format_time(at), "timeline": timeline},
    }


def three() -> list[dict[str, Any]]:
    return [incident(f"shop-crashloop-{n}", T0 + n * HOUR) for n in (1, 2, 3)]


def validate(kind: str, body: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schemas.by_kind()[kind].json_schema).validate(body)


def ready(status: dict[str, Any]) -> tuple[str, str]:
    found = conditions.find(status["conditions"], "Ready")
    assert found is not None
    return found.status, found.reason


# Recurrence


def test_three_incidents_in_a_day_open_a_problem() -> None:
    decision = problems.recurrence(three(), POLICY, T0 + 4 * HOUR)

    assert decision == problems.ProblemDecision(
        open=True,
        incidents=("shop-crashloop-1", "shop-crashloop-2", "shop-crashloop-3"),
        family=FAMILY,
        occurrences=3,
    )


def test_the_defaults_are_three_in_twenty_four_hours() -> None:
    assert problems.policy_of({}) == problems.RecurrencePolicy(3, datetime.timedelta(hours=24))
    assert problems.recurrence(three(), {}, T0 + 4 * HOUR).open
    assert not problems.recurrence(three()[:2], {}, T0 + 4 * HOUR).open


def test_incidents_outside_the_window_do_not_count() -> None:
    found = three()

    decision = problems.recurrence(found, POLICY, T0 + 26 * HOUR)

    assert not decision.open
    assert decision.incidents == ("shop-crashloop-2", "shop-crashloop-3")
    assert decision.occurrences == 2


def test_the_policy_sets_count_and_window() -> None:
    policy = {"problems": {"recurrences": 2, "window": "90m"}}

    assert problems.recurrence(three(), policy, T0 + 3 * HOUR).open
    assert not problems.recurrence(three(), policy, T0 + 4 * HOUR + datetime.timedelta(minutes=31)).open


def test_other_families_do_not_count_and_reopenings_do() -> None:
    found = [
        incident("a", T0 + HOUR, reopened=(T0 + 2 * HOUR,)),
        incident("b", T0 + HOUR, fingerprint="oomkilled:shop:deployment:shop"),
        incident("c", T0 + HOUR, fingerprint="crashloopbackoff:shop:deployment:shopping"),
        incident("d", T0 + 2 * HOUR, fingerprint=FAMILY + ":container:shop"),
    ]

    decision = problems.recurrence(found, POLICY, T0 + 4 * HOUR, family=FAMILY)

    assert decision.incidents == ("a", "d")
    assert decision.occurrences == 3
    assert decision.open


def test_one_incident_reopened_twice_is_three_recurrences() -> None:
    """The incident controller reopens a Resolved incident when the failure comes back: each reopening recurs."""
    once = [incident("a", T0 + HOUR, phase="Triggered", reopened=(T0 + 2 * HOUR,))]
    twice = [incident("a", T0 + HOUR, phase="Triggered", reopened=(T0 + 2 * HOUR, T0 + 3 * HOUR))]

    assert not problems.recurrence(once, POLICY, T0 + 4 * HOUR).open
    decision = problems.recurrence(twice, POLICY, T0 + 4 * HOUR)

    assert decision == problems.ProblemDecision(open=True, incidents=("a",), family=FAMILY, occurrences=3)


def test_only_the_triggerings_within_the_window_count() -> None:
    old = incident("a", T0, phase="Triggered", reopened=(T0 + 20 * HOUR, T0 + 30 * HOUR))

    decision = problems.recurrence([old], POLICY, T0 + 31 * HOUR)

    assert decision.incidents == ("a",)
    assert decision.occurrences == 2
    assert not decision.open


def test_the_opening_note_says_recurrences_when_an_incident_was_reopened() -> None:
    reopened = incident("a", T0 + HOUR, phase="Triggered", reopened=(T0 + 2 * HOUR, T0 + 3 * HOUR))

    status = problems.update_problem({}, [reopened], T0 + 4 * HOUR)

    assert status["incidents"] == ["a"]
    assert status["occurrences"] == 3
    assert status["timeline"][0]["note"] == "opened: 3 recurrences in 1 incident"
    assert (status["firstSeen"], status["lastSeen"]) == ("2026-03-02T11:00:00Z", "2026-03-02T13:00:00Z")


def test_occurrences_never_go_down_when_an_incident_is_gone() -> None:
    status = problems.update_problem({}, three(), T0 + 4 * HOUR)

    later = problems.update_problem(status, three()[1:], T0 + 5 * HOUR)

    assert later["occurrences"] == 3
    assert later["incidents"] == status["incidents"]


def test_no_incidents_no_problem() -> None:
    assert problems.recurrence([], POLICY, T0) == problems.ProblemDecision(False, (), "", 0)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"problems": {"window": "a day"}}, "spec.problems.window"),
        ({"problems": {"recurrences": 1}}, "spec.problems.recurrences"),
    ],
)
def test_an_unreadable_policy_names_its_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(errors.SpecError) as caught:
        problems.recurrence(three(), spec, T0)

    assert caught.value.field == field


@settings(max_examples=150, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=0, max_value=72 * 3600), max_size=12),
    recurrences=st.integers(min_value=2, max_value=6),
    window=st.integers(min_value=1, max_value=48 * 3600),
    now=st.integers(min_value=0, max_value=80 * 3600),
)
def test_open_exactly_when_enough_incidents_fall_in_the_window(
    offsets: list[int], recurrences: int, window: int, now: int
) -> None:
    found = [incident(f"i{index}", T0 + datetime.timedelta(seconds=offset)) for index, offset in enumerate(offsets)]
    policy = {"problems": {"recurrences": recurrences, "window": f"{window}s"}}

    decision = problems.recurrence(found, policy, T0 + datetime.timedelta(seconds=now))

    inside = [offset for offset in offsets if now - window <= offset]
    assert decision.occurrences == len(inside)
    assert decision.open == (len(inside) >= recurrences)
    assert len(decision.incidents) == len(set(decision.incidents))


# A new problem and its links


def test_a_new_problem_has_the_fields_of_the_crd() -> None:
    body = problems.new_problem(FAMILY, three(), "shop", T0 + 4 * HOUR)

    validate("Problem", body)
    assert body["metadata"]["name"] == problems.problem_name(FAMILY)
    assert body["metadata"]["name"].startswith("shop-crashloop-")
    assert body["metadata"]["namespace"] == "shop"
    assert body["metadata"]["labels"] == {
        incidents.FAMILY_HASH_LABEL: incidents.fingerprint_hash(FAMILY),
        incidents.SERVICE_LABEL: "shop",
    }
    assert body["spec"] == {
        "fingerprintFamily": FAMILY,
        "service": "shop",
        "title": "shop: CrashLoopBackOff keeps recurring",
    }


def test_the_first_status_links_all_three_oldest_first() -> None:
    found = three()[::-1]

    status = problems.update_problem({}, found, T0 + 4 * HOUR)

    validate(
        "Problem",
        {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Problem",
            "spec": {"fingerprintFamily": FAMILY},
            "status": status,
        },
    )
    assert status["phase"] == "Open"
    assert status["incidents"] == ["shop-crashloop-1", "shop-crashloop-2", "shop-crashloop-3"]
    assert status["occurrences"] == 3
    assert status["firstSeen"] == "2026-03-02T11:00:00Z"
    assert status["lastSeen"] == "2026-03-02T13:00:00Z"
    assert status["timeline"] == [
        {"at": "2026-03-02T14:00:00Z", "to": "Open", "by": "upkeep", "note": "opened: 3 incidents"}
    ]
    assert ready(status) == ("True", "Open")


def test_updating_again_is_idempotent_and_new_incidents_are_appended() -> None:
    status = problems.update_problem({}, three(), T0 + 4 * HOUR)

    assert problems.update_problem(status, three(), T0 + 5 * HOUR) == status
    fourth = incident("shop-crashloop-4", T0 + 6 * HOUR, phase="Triggered")
    status = problems.update_problem(status, [*three(), fourth], T0 + 6 * HOUR)

    assert status["incidents"][-1] == "shop-crashloop-4"
    assert status["occurrences"] == 4
    assert status["lastSeen"] == "2026-03-02T16:00:00Z"
    assert status["firstSeen"] == "2026-03-02T11:00:00Z"


# The phase


def opened() -> dict[str, Any]:
    return problems.update_problem({}, three(), T0 + 4 * HOUR)


def test_a_known_error_moves_open_to_known_error() -> None:
    spec = {"fingerprintFamily": FAMILY, "knownError": {"rootCause": "The liveness probe\n renders the storefront."}}

    status, error = problems.decide_phase(spec, opened(), now=T0 + 5 * HOUR)

    assert error is None
    assert status["phase"] == "KnownError"
    assert status["timeline"][-1] == {
        "at": "2026-03-02T15:00:00Z",
        "from": "Open",
        "to": "KnownError",
        "by": "upkeep",
        "note": "known error: The liveness probe renders the storefront.",
    }
    assert ready(status) == ("True", "KnownError")


def test_a_resolution_resolves_it_by_whom_the_spec_says() -> None:
    spec = {
        "fingerprintFamily": FAMILY,
        "knownError": {"rootCause": "probe"},
        "resolution": {"summary": "Probes use /healthz.", "resolvedBy": "ana@example.com"},
    }
    status, _ = problems.decide_phase(
        {"fingerprintFamily": FAMILY, "knownError": {"rootCause": "probe"}}, opened(), now=T0 + 5 * HOUR
    )

    status, error = problems.decide_phase(spec, status, now=T0 + 6 * HOUR, generation=3)

    assert error is None
    assert status["phase"] == "Resolved"
    assert status["resolvedAt"] == "2026-03-02T16:00:00Z"
    assert status["observedGeneration"] == 3
    assert status["timeline"][-1]["by"] == "ana@example.com"
    assert status["timeline"][-1]["note"] == "resolution: Probes use /healthz."
    lifecycle_path = [entry["to"] for entry in status["timeline"]]
    assert lifecycle_path == ["Open", "KnownError", "Resolved"]


def test_the_completed_fixing_change_resolves_it() -> None:
    spec = {"fingerprintFamily": FAMILY, "fixChangeRef": {"name": "shop-a1b2c3d"}}
    change = {"metadata": {"name": "shop-a1b2c3d"}, "status": {"phase": "InProgress"}}

    pending, _ = problems.decide_phase(spec, opened(), now=T0 + 5 * HOUR, fix_change=change)
    change["status"] = {"phase": "Completed", "completedAt": "2026-03-02T15:30:00Z"}
    done, error = problems.decide_phase(spec, pending, now=T0 + 6 * HOUR, fix_change=change)

    assert pending["phase"] == "Open"
    assert error is None
    assert done["phase"] == "Resolved"
    assert done["timeline"][-1]["note"] == "the fixing Change shop-a1b2c3d completed at 2026-03-02T15:30:00Z"


def test_a_missing_fixing_change_is_reported_in_ready() -> None:
    spec = {"fingerprintFamily": FAMILY, "fixChangeRef": {"name": "shop-a1b2c3d"}}

    status, error = problems.decide_phase(spec, opened(), now=T0 + 5 * HOUR, generation=2)

    assert error is None
    assert ready(status) == ("False", "FixChangeNotFound")
    found = conditions.find(status["conditions"], "Ready")
    assert found is not None
    assert "spec.fixChangeRef" in found.message
    assert conditions.find(status["conditions"], "Stalled") is None


def test_a_resolved_problem_reopens_when_its_family_triggers_again() -> None:
    spec = {"fingerprintFamily": FAMILY, "resolution": {"summary": "fixed"}}
    resolved, _ = problems.decide_phase(spec, opened(), now=T0 + 5 * HOUR, generation=2)
    assert resolved["phase"] == "Resolved"

    # an incident triggered before the resolution changes nothing
    assert problems.update_problem(resolved, three(), T0 + 6 * HOUR)["phase"] == "Resolved"

    again = incident("shop-crashloop-4", T0 + 7 * HOUR, phase="Triggered")
    reopened = problems.update_problem(resolved, [*three(), again], T0 + 7 * HOUR)
    assert reopened["phase"] == "Open"
    assert reopened["timeline"][-1]["note"] == problems.REOPEN_NOTE

    # the resolution that was in place does not resolve it a second time ...
    same, _ = problems.decide_phase(spec, reopened, now=T0 + 8 * HOUR, generation=2)
    assert same["phase"] == "Open"
    # ... a new one does
    newer, _ = problems.decide_phase(
        {**spec, "resolution": {"summary": "fixed again"}}, same, now=T0 + 9 * HOUR, generation=3
    )
    assert newer["phase"] == "Resolved"
    assert newer["resolvedAt"] == "2026-03-02T19:00:00Z"


def test_a_reopened_incident_reopens_the_problem() -> None:
    spec = {"fingerprintFamily": FAMILY, "resolution": {"summary": "fixed"}}
    resolved, _ = problems.decide_phase(spec, opened(), now=T0 + 5 * HOUR)
    found = three()
    found[-1] = incident("shop-crashloop-3", T0 + 3 * HOUR, phase="Triggered", reopened=(T0 + 6 * HOUR,))

    status = problems.update_problem(resolved, found, T0 + 6 * HOUR)

    assert status["phase"] == "Open"
    assert status["lastSeen"] == "2026-03-02T16:00:00Z"
    assert status["occurrences"] == 4  # three incidents, the third triggered again


def test_removing_the_known_error_does_not_go_back_to_open() -> None:
    status, _ = problems.decide_phase({"knownError": {"rootCause": "probe"}}, opened(), now=T0 + 5 * HOUR)

    after, error = problems.decide_phase({}, status, now=T0 + 6 * HOUR)

    assert error is None
    assert after["phase"] == "KnownError"


def test_every_phase_path_follows_the_lifecycle() -> None:
    status = opened()
    specs: list[dict[str, Any]] = [
        {"knownError": {"rootCause": "x"}},
        {"knownError": {"rootCause": "x"}, "resolution": {"summary": "y"}},
    ]
    for number, spec in enumerate(specs, start=1):
        status, error = problems.decide_phase(spec, status, now=T0 + (4 + number) * HOUR, generation=number)
        assert error is None
    previous = None
    for entry in status["timeline"]:
        lifecycle.check_transition("Problem", previous, entry["to"])
        previous = entry["to"]
    assert previous == status["phase"] == "Resolved"
