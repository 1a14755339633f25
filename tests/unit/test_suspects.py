"""Suspect changes: which Releases and Changes acted on an incident's service within the lookback before it."""

from __future__ import annotations

import datetime
from typing import Any

import jsonschema
import pytest

from upkeep.engine import sla, suspects
from upkeep.model import errors, schemas

UTC = datetime.UTC
T0 = datetime.datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


def incident(*, reopened: datetime.datetime | None = None, service: str = "shop") -> dict[str, Any]:
    timeline = [{"at": sla.format_time(T0), "to": "Triggered", "by": "detector/pods"}]
    if reopened is not None:
        timeline += [
            {"at": sla.format_time(T0 + MINUTE), "from": "Triggered", "to": "Resolved", "by": "x"},
            {"at": sla.format_time(reopened), "from": "Resolved", "to": "Triggered", "by": "detector/pods"},
        ]
    return {
        "kind": "Incident",
        "metadata": {"name": "shop-crashloop-1", "namespace": "shop"},
        "spec": {
            "service": service,
            "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop", "namespace": "shop"},
        },
        "status": {"phase": "Triggered", "triggeredAt": sla.format_time(T0), "timeline": timeline},
    }


def release(name: str, applied: datetime.datetime | None, **spec: Any) -> dict[str, Any]:
    status: dict[str, Any] = {"revision": f"main@sha1:{name}"}
    if applied is not None:
        status["lastAppliedAt"] = sla.format_time(applied)
    return {"kind": "Release", "metadata": {"name": name, "namespace": "shop"}, "spec": spec, "status": status}


def change(name: str, release_name: str, **times: datetime.datetime) -> dict[str, Any]:
    return {
        "kind": "Change",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"releaseRef": {"name": release_name}, "revision": f"rev-{name}"},
        "status": {key: sla.format_time(value) for key, value in times.items()},
    }


def names(found: list[suspects.Suspect]) -> list[tuple[str, str]]:
    return [(item.kind, item.name) for item in found]


def test_the_lookback_comes_from_the_policy_with_the_crd_default() -> None:
    assert suspects.lookback_of(None) == 2 * HOUR
    assert suspects.lookback_of({"detection": {"suspectLookback": "30m"}}) == 30 * MINUTE
    with pytest.raises(errors.SpecError) as caught:
        suspects.lookback_of({"detection": {"suspectLookback": "soon"}})
    assert caught.value.field == "spec.detection.suspectLookback"


def test_releases_of_the_workload_or_the_service_and_their_changes_are_suspects_newest_first() -> None:
    releases = [
        release("storefront", T0 - 50 * MINUTE, workloadRef={"name": "shop"}),
        release("shop", T0 - 40 * MINUTE),  # its service defaults to its name
        release("billing", T0 - 5 * MINUTE, workloadRef={"name": "billing"}),
    ]
    changes = [
        change("storefront-7", "storefront", startedAt=T0 - 30 * MINUTE, completedAt=T0 - 20 * MINUTE),
        change("storefront-8", "storefront", startedAt=T0 - 10 * MINUTE),  # still going: started counts
        change("billing-3", "billing", completedAt=T0 - 5 * MINUTE),
    ]

    found = suspects.suspects_for(incident(), releases, changes, HOUR)

    assert names(found) == [
        ("Change", "storefront-8"),
        ("Change", "storefront-7"),
        ("Release", "shop"),
        ("Release", "storefront"),
    ]
    assert found[1].to_dict() == {
        "kind": "Change",
        "name": "storefront-7",
        "revision": "rev-storefront-7",
        "at": "2026-03-02T09:40:00Z",
    }


def test_only_what_acted_within_the_lookback_before_a_triggering_is_a_suspect() -> None:
    releases = [
        release("never-applied", None, workloadRef={"name": "shop"}),
        release("too-early", T0 - 3 * HOUR, workloadRef={"name": "shop"}),
        release("after", T0 + 5 * MINUTE, workloadRef={"name": "shop"}),
        release("before-the-reopening", T0 + 50 * MINUTE, workloadRef={"name": "shop"}),
    ]
    changes = [change("not-started", "never-applied")]

    assert names(suspects.suspects_for(incident(), releases, changes, HOUR)) == []
    reopened = incident(reopened=T0 + HOUR)
    # applied after the first triggering but within the lookback before the reopening: a suspect of the recurrence
    assert names(suspects.suspects_for(reopened, releases, changes, HOUR)) == [
        ("Release", "before-the-reopening"),
        ("Release", "after"),
    ]


def test_a_release_elsewhere_or_for_another_kind_of_workload_is_not_the_incidents() -> None:
    releases = [
        release("elsewhere", T0 - MINUTE, workloadRef={"name": "shop"}, targetNamespace="staging", service="web"),
        release("statefulset", T0 - MINUTE, workloadRef={"name": "shop", "kind": "StatefulSet"}, service="db"),
        release("targeted", T0 - MINUTE, workloadRef={"name": "shop"}, targetNamespace="shop", service="x"),
    ]

    assert names(suspects.suspects_for(incident(), releases, [], HOUR)) == [("Release", "targeted")]


def test_other_namespaces_are_left_out() -> None:
    other = release("shop", T0 - MINUTE)
    other["metadata"]["namespace"] = "staging"

    assert suspects.suspects_for(incident(), [other], [], HOUR) == []


def test_merging_keeps_what_was_recorded_once_each_newest_first_and_fits_the_crd() -> None:
    recorded = [{"kind": "Release", "name": "gone", "revision": "r1", "at": "2026-03-02T09:00:00Z"}]
    found = suspects.suspects_for(incident(), [release("shop", T0 - 10 * MINUTE)], [], HOUR)

    merged = suspects.merge(recorded, found)

    assert [(item["name"], item["at"]) for item in merged] == [
        ("shop", "2026-03-02T09:50:00Z"),
        ("gone", "2026-03-02T09:00:00Z"),
    ]
    assert suspects.merge(merged, found) == merged
    schema = schemas.by_kind()["Incident"].json_schema["properties"]["status"]["properties"]["suspectChanges"]
    jsonschema.Draft202012Validator(schema).validate(merged)


def test_a_busy_service_keeps_the_newest_suspects_only() -> None:
    releases = [release(f"r{n}", T0 - n * MINUTE, workloadRef={"name": "shop"}) for n in range(1, 40)]

    found = suspects.suspects_for(incident(), releases, [], HOUR)

    assert len(found) == suspects.MAX_SUSPECTS
    assert found[0].name == "r1"
    assert len(suspects.merge([], found)) == suspects.MAX_SUSPECTS
