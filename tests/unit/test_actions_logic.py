"""The pure parts of the remediation actions: quantities, field paths, merge patches, revisions, rollouts.

Plus what needs no cluster at all (wait, notify, escalate) and the conflict retry of a fresh
patch, through a small in-memory stand-in for the action cluster.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from upkeep.actions import (
    base,
    jobs,
    messages,
    overrides,
    patches,
    registry,
    rollouts,
    selectors,
    targets,
)
from upkeep.actions import deployments as deployments_
from upkeep.engine import catalog, fieldpaths, quantities

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)


def test_the_registry_has_one_action_per_catalog_name() -> None:
    assert set(registry.ACTIONS) == set(catalog.ACTIONS)
    for name, action in registry.ACTIONS.items():
        assert action.name == name
        assert registry.get(name) is action
    with pytest.raises(KeyError, match="unknown action 'reboot'"):
        registry.get("reboot")


@pytest.mark.parametrize(
    ("value", "factor", "finest", "expected"),
    [
        ("256Mi", 1.5, None, "384Mi"),
        ("1Gi", 1.5, None, "1536Mi"),
        ("129Mi", 1.5, None, "198144Ki"),
        ("100M", 1.5, None, "150M"),
        ("500m", 1.5, None, "750m"),
        ("1", 1.5, "m", "1500m"),
        ("101", 1.5, None, "152"),  # bytes: rounded up, never down
        ("1e3", 2, None, "2000"),
        (2, 1.5, None, 3),  # replicas stay integers, rounded up
    ],
)
def test_scaling_quantities_writes_them_as_kubernetes_does(
    value: str | int, factor: float, finest: str | None, expected: str | int
) -> None:
    assert quantities.scale(value, factor, finest=finest) == expected


def test_quantities_parse_and_cap() -> None:
    assert quantities.amount("256Mi") == 256 * 2**20
    assert quantities.amount("1.5k") == 1500
    assert quantities.amount("250m") == Decimal("0.25")
    assert quantities.scale("384Mi", 1.5, at_most=quantities.amount("256Mi") * 2) == "512Mi"
    with pytest.raises(quantities.QuantityError):
        quantities.parse("lots")
    with pytest.raises(quantities.QuantityError):
        quantities.parse("12Xi")


DEPLOYMENT: dict[str, Any] = {
    "metadata": {"name": "shop", "annotations": {"example.com/owner": "team-a"}},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "sidecar", "image": "proxy:1"},
                    {"name": "shop", "image": "shop:1", "resources": {"limits": {"memory": "256Mi"}}},
                ]
            }
        }
    },
}
MEMORY = "spec.template.spec.containers[name=shop].resources.limits.memory"


def test_field_paths_select_list_items_by_key() -> None:
    assert fieldpaths.parse(MEMORY)[4] == fieldpaths.Select("name", "shop")
    assert fieldpaths.get(DEPLOYMENT, MEMORY) == "256Mi"
    assert fieldpaths.get(DEPLOYMENT, "spec.template.spec.containers[0].image") == "proxy:1"
    assert fieldpaths.get(DEPLOYMENT, 'metadata.annotations["example.com/owner"]') == "team-a"
    assert fieldpaths.get(DEPLOYMENT, "spec.template.spec.containers[name=shop].resources.requests.cpu") is None
    with pytest.raises(fieldpaths.FieldPathError, match="no item with name=web"):
        fieldpaths.get(DEPLOYMENT, "spec.template.spec.containers[name=web].image")
    for bad in ("", "spec.", "spec..replicas", "spec[", "spec]x"):
        with pytest.raises(fieldpaths.FieldPathError):
            fieldpaths.parse(bad)


def test_with_value_changes_a_copy_and_the_merge_patch_sends_the_list_whole() -> None:
    changed = fieldpaths.with_value(DEPLOYMENT, MEMORY, "384Mi")
    assert fieldpaths.get(DEPLOYMENT, MEMORY) == "256Mi"
    assert fieldpaths.get(changed, MEMORY) == "384Mi"
    patch = patches.merge_patch(DEPLOYMENT, changed)
    assert list(patch) == ["spec"]
    containers = patch["spec"]["template"]["spec"]["containers"]
    assert [container["name"] for container in containers] == ["sidecar", "shop"]
    assert patches.apply_merge_patch(DEPLOYMENT, patch) == changed
    created = fieldpaths.with_value({"spec": {}}, "spec.template.metadata.labels.tier", "web")
    assert created == {"spec": {"template": {"metadata": {"labels": {"tier": "web"}}}}}


def test_merge_patch_removes_what_the_wanted_object_lacks() -> None:
    current = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1, "y": [1, 2]}}
    wanted = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": 1, "y": [1]}}
    patch = patches.merge_patch(current, wanted)
    assert patch == {"metadata": {"labels": {"b": None}}, "spec": {"y": [1]}}
    assert patches.apply_merge_patch(current, patch) == wanted
    assert patches.merge_patch(wanted, wanted) == {}


def replica_set(revision: int, image: str, hash_: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"shop-{hash_}", "annotations": {rollouts.REVISION: str(revision)}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "shop", rollouts.HASH_LABEL: hash_}},
                "spec": {"containers": [{"name": "shop", "image": image}]},
            }
        },
    }


def test_the_previous_revision_is_the_second_highest_when_the_pods_differ() -> None:
    history = [replica_set(1, "shop:1.0", "aaa"), replica_set(3, "shop:1.2", "ccc"), replica_set(2, "shop:1.1", "bbb")]
    assert rollouts.revision(rollouts.rollback_target(history)) == 2
    assert rollouts.revision(rollouts.rollback_target(history, 1)) == 1
    with pytest.raises(rollouts.RolloutError, match="revision 7 not found"):
        rollouts.rollback_target(history, 7)
    with pytest.raises(rollouts.RolloutError, match="no previous revision"):
        rollouts.rollback_target(history[:1])


def restarted(replica_set_: dict[str, Any], revision: int, hash_: str, created: str) -> dict[str, Any]:
    """``replica_set_``'s pods again, as a restart (kubectl's annotation and the action's key) makes them."""
    body = json.loads(json.dumps(replica_set_))
    body["metadata"].update(name=f"shop-{hash_}", annotations={rollouts.REVISION: str(revision)})
    body["metadata"]["creationTimestamp"] = created
    body["spec"]["template"]["metadata"]["labels"][rollouts.HASH_LABEL] = hash_
    body["spec"]["template"]["metadata"]["annotations"] = {
        rollouts.RESTARTED_AT: created,
        "upkeep.dev/action-key": "uid/1",
    }
    return body


def at(replica_set_: dict[str, Any], created: str) -> dict[str, Any]:
    return {**replica_set_, "metadata": {**replica_set_["metadata"], "creationTimestamp": created}}


def test_a_restart_is_not_rolled_back_to_the_same_pods() -> None:
    good, bad = replica_set(1, "shop:1.0", "aaa"), replica_set(2, "shop:1.1", "bbb")
    history = [good, bad, restarted(bad, 3, "ccc", "2026-01-31T12:10:00Z")]
    assert rollouts.revision(rollouts.rollback_target(history)) == 1
    with pytest.raises(rollouts.RolloutError, match="differ only by restarts"):
        rollouts.rollback_target([good, restarted(good, 2, "bbb", "2026-01-31T12:10:00Z")])


def test_the_last_rollout_is_the_newest_revision_that_changed_the_pods() -> None:
    good = at(replica_set(1, "shop:1.0", "aaa"), "2026-01-31T10:00:00Z")
    bad = at(replica_set(2, "shop:1.1", "bbb"), "2026-01-31T12:00:00Z")
    rolled_out = datetime.datetime(2026, 1, 31, 12, 0, tzinfo=datetime.UTC)
    assert rollouts.rolled_out_at([good, bad]) == rolled_out
    # A restart later is not a rollout: the time stays the one of revision 2.
    assert rollouts.rolled_out_at([good, bad, restarted(bad, 3, "ccc", "2026-01-31T12:30:00Z")]) == rolled_out
    # One revision, or only restarts of it: never rolled out.
    assert rollouts.rolled_out_at([good]) is None
    assert rollouts.rolled_out_at([good, restarted(good, 2, "bbb", "2026-01-31T11:00:00Z")]) is None


def test_the_template_copied_back_has_no_hash_label() -> None:
    template = rollouts.rollback_template(replica_set(1, "shop:1.0", "aaa"))
    assert template == {
        "metadata": {"labels": {"app": "shop"}},
        "spec": {"containers": [{"name": "shop", "image": "shop:1.0"}]},
    }
    current = {"metadata": {"labels": {"app": "shop"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}
    current["spec"] = {"containers": [{"name": "shop", "image": "nginx:0.0.0-missing"}]}
    patch = patches.merge_patch(current, template)
    assert patch == {"metadata": {"annotations": None}, "spec": {"containers": template["spec"]["containers"]}}
    assert rollouts.same_template(
        replica_set(1, "a", "x")["spec"]["template"], replica_set(4, "a", "y")["spec"]["template"]
    )


def deployment(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "shop", "generation": generation},
        "spec": {"replicas": 3},
        "status": status,
    }


@pytest.mark.parametrize(
    ("status", "phase", "words"),
    [
        ({"observedGeneration": 1}, "Running", "latest spec"),
        ({"observedGeneration": 2, "updatedReplicas": 1, "replicas": 3}, "Running", "1 of 3 new replicas"),
        ({"observedGeneration": 2, "updatedReplicas": 3, "replicas": 4}, "Running", "pending termination"),
        (
            {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 2, "readyReplicas": 2},
            "Running",
            "2 of 3 updated",
        ),
        (
            {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 3, "readyReplicas": 3},
            "Succeeded",
            "3 of 3",
        ),
        (
            {"observedGeneration": 2, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]},
            "Failed",
            "progress deadline",
        ),
    ],
)
def test_rollout_state_says_what_kubectl_rollout_status_says(status: dict[str, Any], phase: str, words: str) -> None:
    state = rollouts.rollout_state(deployment(**status))
    assert state.phase == phase and words in state.message


def test_label_selectors() -> None:
    selector = {
        "matchLabels": {"app": "db"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["a", "b"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert selectors.matches(selector, {"app": "db", "tier": "a"})
    assert not selectors.matches(selector, {"app": "db", "tier": "c"})
    assert not selectors.matches(selector, {"app": "db", "tier": "a", "canary": "1"})
    assert selectors.matches({}, {"anything": "x"})
    assert selectors.to_query(selector) == "app=db,tier in (a,b),!canary"


@pytest.mark.parametrize(
    ("current", "params", "expected"),
    [
        (2, {"replicas": 5}, 5),
        (2, {"by": 3, "max": 4}, 4),
        (3, {"by": -5, "min": 1}, 1),
        (3, {"by": -5}, 0),
    ],
)
def test_scale_target_is_clamped(current: int, params: dict[str, Any], expected: int) -> None:
    assert deployments_.scale_target(current, params) == expected


def test_held_value_is_bounded_by_the_declared_value() -> None:
    params = {"factor": 1.5, "maxFactor": 2}
    assert overrides.held_value("256Mi", "256Mi", params, MEMORY) == "384Mi"
    assert overrides.held_value("384Mi", "256Mi", params, MEMORY) == "512Mi"
    assert overrides.held_value("1Gi", "1Gi", {"value": "4Gi", "maxFactor": 2}, MEMORY) == "2Gi"
    assert overrides.held_value(2, 2, {"factor": 2}, "spec.replicas") == 4
    assert overrides.held_value("500m", "500m", {"factor": 1.5}, "spec.x.resources.limits.cpu") == "750m"
    with pytest.raises(quantities.QuantityError, match="no value"):
        overrides.held_value(None, None, {"factor": 2}, MEMORY)


def test_override_records_read_back_lists_and_a_single_entry() -> None:
    entry = {"fieldPath": MEMORY, "value": "384Mi", "key": "k"}
    annotated = {"metadata": {"annotations": {overrides.OVERRIDE_ANNOTATION: '[{"fieldPath": "x", "key": "k"}]'}}}
    assert overrides.overrides_of(annotated) == [{"fieldPath": "x", "key": "k"}]
    single = {"metadata": {"annotations": {overrides.OVERRIDE_ANNOTATION: json.dumps(entry)}}}
    assert overrides.overrides_of(single) == [entry]
    assert overrides.overrides_of({"metadata": {"annotations": {overrides.OVERRIDE_ANNOTATION: "{not json"}}}) == []


def test_a_job_from_a_failed_jobs_manifest_loses_what_the_server_set() -> None:
    failed = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "migrate",
            "uid": "u-1",
            "resourceVersion": "9",
            "labels": {"job-name": "migrate", "app": "m"},
        },
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}},
            "template": {
                "metadata": {
                    "labels": {"batch.kubernetes.io/controller-uid": "u-1", "job-name": "migrate", "app": "m"}
                },
                "spec": {"containers": [{"name": "m", "image": "busybox"}], "restartPolicy": "OnFailure"},
            },
        },
        "status": {"failed": 1},
    }
    body = jobs.job_body(failed, "run-uid/2", "shop")
    assert body["metadata"]["name"] == f"migrate-{targets.digest('run-uid/2')}"
    assert body["metadata"]["namespace"] == "shop"
    assert body["metadata"]["annotations"] == {base.ACTION_KEY_ANNOTATION: "run-uid/2"}
    assert body["metadata"]["labels"] == {"app": "m", "app.kubernetes.io/managed-by": "upkeep"}
    assert "selector" not in body["spec"] and "status" not in body
    assert body["spec"]["template"]["metadata"]["labels"] == {"app": "m"}
    assert jobs.job_body(failed, "run-uid/2", "shop") == body  # the same key always names the same Job
    spec_only = jobs.job_body({"template": {"spec": {"containers": []}}}, "k", "ns")
    assert spec_only["metadata"]["name"].startswith("upkeep-job-")
    assert spec_only["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_names_from_keys_are_valid_and_stable() -> None:
    name = targets.name_from_key("A_Very/Long.Name" * 10, "uid/0")
    assert len(name) <= 63 and name == targets.name_from_key("A_Very/Long.Name" * 10, "uid/0")
    assert name != targets.name_from_key("A_Very/Long.Name" * 10, "uid/1")
    assert all(char.isalnum() or char == "-" for char in name) and name == name.lower()


class Unused:
    """An action cluster that must not be used: the actions under test change nothing."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the cluster was used: {name}")


def context(params: Mapping[str, Any], **changes: Any) -> base.ActionContext:
    values: dict[str, Any] = {
        "cluster": Unused(),
        "namespace": "shop",
        "incident": {
            "metadata": {"name": "inc-7"},
            "spec": {
                "severity": "SEV3",
                "signal": {"type": "CrashLoopBackOff"},
                "workload": {"kind": "Deployment", "name": "shop"},
            },
        },
        "workload": None,
        "affected": (),
        "params": params,
        "key": "run/0",
        "now": NOW,
        "started": NOW,
    }
    values.update(changes)
    return base.ActionContext(**values)


def test_wait_runs_until_its_duration_has_passed_since_the_step_started() -> None:
    action = registry.get("wait")
    early = context({"duration": "30s"}, now=NOW + datetime.timedelta(seconds=10))
    outcome = asyncio.run(action.run(early))
    assert outcome.phase == "Running" and "20s left" in outcome.message
    late = context({"duration": "30s"}, now=NOW + datetime.timedelta(seconds=31))
    assert asyncio.run(action.verify(late)).phase == "Succeeded"
    assert asyncio.run(action.run(context({"duration": "30s"}, dry_run=True))).phase == "Succeeded"


def test_notify_and_escalate_call_what_the_controller_passes() -> None:
    sent: list[tuple[Any, ...]] = []

    async def notify(channels: tuple[str, ...], message: str) -> None:
        sent.append(("notify", channels, message))

    async def escalate(severity: str | None, channels: tuple[str, ...], why: str) -> None:
        sent.append(("escalate", severity, channels, why))

    ctx = context({"channels": ["oncall"]}, notify=notify, escalate=escalate)
    asyncio.run(registry.get("notify").run(ctx))
    assert sent == [("notify", ("oncall",), "Incident inc-7 (SEV3): CrashLoopBackOff on Deployment shop.")]
    sent.clear()
    asyncio.run(registry.get("escalate").run(context({"severity": "SEV1"}, notify=notify, escalate=escalate)))
    assert sent[0][:3] == ("escalate", "SEV1", ())
    assert "inc-7" in sent[0][3]
    sent.clear()
    asyncio.run(registry.get("notify").run(context({"channels": ["oncall"]}, notify=notify, dry_run=True)))
    assert sent == []
    assert "SEV1" in asyncio.run(registry.get("escalate").describe(context({"severity": "SEV1"})))
    with pytest.raises(base.ActionFailed, match="no notifier"):
        asyncio.run(registry.get("notify").run(context({"channels": ["oncall"]})))
    assert messages.summary({}) == "Incident an incident: a failure."


class Racing:
    """A cluster whose object changes under the first write: the write answers 409 once."""

    def __init__(self) -> None:
        self.reads = 0
        self.patches: list[Mapping[str, Any]] = []

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        return {"metadata": {"name": name, "resourceVersion": str(self.reads)}, "spec": {"replicas": self.reads}}

    async def patch(self, *args: Any, dry_run: bool = False) -> dict[str, Any]:
        patch = args[4]
        self.patches.append(patch)
        if len(self.patches) == 1:
            raise Conflict()
        return {"metadata": {"name": args[3]}}


class Conflict(Exception):
    status = 409


def test_a_fresh_patch_is_built_again_from_a_new_read_after_a_conflict() -> None:
    racing = Racing()

    async def build(found: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"spec": {"replicas": found["spec"]["replicas"] + 1}}

    ctx = context({}, cluster=racing)
    asyncio.run(patches.patch_fresh(ctx, "apps/v1", "Deployment", "shop", "shop", build))
    assert racing.reads == 2
    assert [patch["metadata"]["resourceVersion"] for patch in racing.patches] == ["1", "2"]
    assert racing.patches[1]["spec"] == {"replicas": 3}
