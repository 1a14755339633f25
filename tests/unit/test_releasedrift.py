"""reconcile_drift with an in-memory cluster: what is reported, what self-heal re-applies, which Events say so."""

from __future__ import annotations

import asyncio
import copy
import datetime
from collections.abc import Mapping
from typing import Any

import pytest

from upkeep.controllers import releasedrift
from upkeep.engine import fieldpaths

MEMORY = "spec.template.spec.containers[name=shop].resources.limits.memory"
IMAGE = "spec.template.spec.containers[name=shop].image"
NOW = datetime.datetime(2026, 11, 21, 12, 0, tzinfo=datetime.UTC)


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [{"name": "shop", "image": "shop:1.0", "resources": {"limits": {"memory": "256Mi"}}}]
                }
            },
        },
    }


def config_map() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "namespace": "shop"},
        "data": {"a": "1"},
    }


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


class Cluster:
    """Live objects by kind/namespace/name; apply replaces the declared part like a forced server-side apply."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {_key(obj): {**copy.deepcopy(obj), "status": {"observedGeneration": 1}} for obj in objects}
        self.applied: list[dict[str, Any]] = []
        self.refuse: set[str] = set()

    async def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.objects.get(_key(obj))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, obj: Mapping[str, Any]) -> object:
        if obj["metadata"]["name"] in self.refuse:
            raise RuntimeError(f"admission webhook denied {obj['metadata']['name']}")
        self.applied.append(copy.deepcopy(dict(obj)))
        self.objects[_key(obj)] = copy.deepcopy(dict(obj))
        return obj

    def edit(self, obj: Mapping[str, Any], path: str, value: Any) -> None:
        self.objects[_key(obj)] = fieldpaths.with_value(self.objects[_key(obj)], path, value)


def release(*, self_heal: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "upkeep.dev/v1alpha1",
        "kind": "Release",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"selfHeal": self_heal},
        "status": status,
    }


def override(expires_at: str = "2026-11-21T13:00:00Z", value: Any = "512Mi") -> dict[str, Any]:
    return {
        "id": "pbr-1/raise-memory",
        "target": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"},
        "fieldPath": MEMORY,
        "value": value,
        "reason": "setOverride by PlaybookRun pbr-1",
        "expiresAt": expires_at,
    }


Events = list[tuple[str, str, str]]


def reconcile(
    body: Mapping[str, Any], cluster: Cluster, *, dry_run: bool = False, now: datetime.datetime = NOW
) -> tuple[releasedrift.DriftOutcome, Events]:
    events: Events = []

    def post(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        assert obj is body
        events.append((type_, reason, message))

    outcome = asyncio.run(
        releasedrift.reconcile_drift(
            body,
            [deployment(), config_map()],
            get_live=cluster.get,
            apply=cluster.apply,
            now=now,
            dry_run=dry_run,
            post_event=post,
        )
    )
    return outcome, events


def reasons(events: Events) -> list[str]:
    return [reason for _, reason, _ in events]


def test_nothing_to_report_when_live_matches_git() -> None:
    outcome, events = reconcile(release(), Cluster(deployment(), config_map()))

    assert outcome == releasedrift.DriftOutcome(drift=[], healed=[], expired_overrides=[])
    assert events == []


def test_drift_is_reported_but_not_healed_without_self_heal() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")

    outcome, events = reconcile(release(), cluster)

    assert outcome.drift == [
        {
            "object": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"},
            "fields": [IMAGE],
            "overridden": [],
        }
    ]
    assert outcome.healed == [] and cluster.applied == []
    [(type_, reason, message)] = events
    assert (type_, reason) == ("Warning", "DriftDetected")
    assert f"Deployment/shop/shop ({IMAGE})" in message and "selfHeal is off" in message
    assert "shop:hotfix" not in message  # paths, never values


def test_the_same_drift_is_announced_once() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")
    first, _ = reconcile(release(), cluster)

    again, events = reconcile(release(drift=first.drift), cluster)

    assert again.drift == first.drift
    assert events == []


def test_a_changed_drift_set_is_announced_again_and_its_end_too() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")
    first, _ = reconcile(release(), cluster)
    cluster.edit(config_map(), "data.a", "2")

    second, events = reconcile(release(drift=first.drift), cluster)

    assert reasons(events) == ["DriftDetected"]
    assert "ConfigMap/shop/cfg (data.a)" in events[0][2]
    cluster.objects = Cluster(deployment(), config_map()).objects
    _, events = reconcile(release(drift=second.drift), cluster)
    assert reasons(events) == ["DriftResolved"]


def test_self_heal_re_applies_what_drifted() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")

    outcome, events = reconcile(release(self_heal=True), cluster)

    assert outcome.healed == ["Deployment/shop/shop"]
    assert cluster.applied == [deployment()]
    assert reasons(events) == ["DriftDetected", "SelfHealed"]
    assert "self-heal re-applies" in events[0][2]
    after, _ = reconcile(release(self_heal=True, drift=outcome.drift), cluster)
    assert after.drift == []


def test_a_deleted_object_is_reported_missing_and_recreated() -> None:
    cluster = Cluster(deployment())

    outcome, events = reconcile(release(self_heal=True), cluster)

    assert outcome.drift == [
        {
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "cfg"},
            "fields": [],
            "overridden": [],
            "missing": True,
        }
    ]
    assert cluster.applied == [config_map()]
    assert "ConfigMap/shop/cfg (missing)" in events[0][2]


def test_dry_run_reports_and_changes_nothing() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")

    outcome, events = reconcile(release(self_heal=True), cluster, dry_run=True)

    assert outcome.drift and outcome.healed == [] and cluster.applied == []
    assert reasons(events) == ["DriftDetected"] and "--dry-run" in events[0][2]


def test_a_failed_heal_is_reported_and_the_others_still_heal() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), IMAGE, "shop:hotfix")
    cluster.edit(config_map(), "data.a", "2")
    cluster.refuse.add("shop")

    outcome, events = reconcile(release(self_heal=True), cluster)

    assert outcome.healed == ["ConfigMap/shop/cfg"]
    assert outcome.failed == ["Deployment/shop/shop: admission webhook denied shop"]
    assert reasons(events) == ["DriftDetected", "SelfHealed", "SelfHealFailed"]


def test_an_active_override_is_reported_as_overridden_and_kept() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), MEMORY, "512Mi")

    outcome, events = reconcile(release(self_heal=True, overrides=[override()]), cluster)

    assert outcome.drift == [
        {
            "object": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "shop"},
            "fields": [],
            "overridden": [MEMORY],
        }
    ]
    assert cluster.applied == [] and outcome.expired_overrides == []
    assert events == []  # holding an override is not drift


def test_self_heal_keeps_the_override_while_reverting_other_fields() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), MEMORY, "512Mi")
    cluster.edit(deployment(), IMAGE, "shop:hotfix")

    outcome, _ = reconcile(release(self_heal=True, overrides=[override()]), cluster)

    assert outcome.drift[0]["fields"] == [IMAGE] and outcome.drift[0]["overridden"] == [MEMORY]
    [applied] = cluster.applied
    assert fieldpaths.get(applied, MEMORY) == "512Mi"
    assert fieldpaths.get(applied, IMAGE) == "shop:1.0"


def test_self_heal_puts_an_overridden_value_back_when_someone_changed_it() -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), MEMORY, "300Mi")

    outcome, _ = reconcile(release(self_heal=True, overrides=[override()]), cluster)

    assert outcome.drift[0]["fields"] == [MEMORY]
    assert fieldpaths.get(cluster.applied[0], MEMORY) == "512Mi"


@pytest.mark.parametrize(("self_heal", "reverted"), [(True, True), (False, False)])
def test_an_expired_override_is_dropped_and_git_applies_again(self_heal: bool, reverted: bool) -> None:
    cluster = Cluster(deployment(), config_map())
    cluster.edit(deployment(), MEMORY, "512Mi")
    expired = override(expires_at="2026-11-21T11:59:00Z")

    outcome, events = reconcile(release(self_heal=self_heal, overrides=[expired]), cluster)

    assert outcome.expired_overrides == ["pbr-1/raise-memory"]
    assert outcome.drift[0]["fields"] == [MEMORY] and outcome.drift[0]["overridden"] == []
    assert (fieldpaths.get(cluster.objects[("Deployment", "shop", "shop")], MEMORY) == "256Mi") is reverted
    assert "OverrideExpired" in reasons(events)
    message = next(message for _, reason, message in events if reason == "OverrideExpired")
    assert "pbr-1/raise-memory" in message and MEMORY in message and "2026-11-21T11:59:00Z" in message


def test_an_override_of_an_object_git_does_not_declare_changes_nothing() -> None:
    cluster = Cluster(deployment(), config_map())
    elsewhere = {**override(), "target": {"kind": "Deployment", "namespace": "shop", "name": "billing"}}

    outcome, events = reconcile(release(self_heal=True, overrides=[elsewhere]), cluster)

    assert outcome.drift == [] and cluster.applied == [] and events == []
