"""The Release controller's decisions, and one pass driven directly over a real git repository and fake API seams.

The fakes stand for the API server only (status writes, object storage); git, rendering and validation are real.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from support.gitrepos import WorkRepo
from upkeep import settings as settings_
from upkeep.controllers import releases
from upkeep.gitops import apply, health

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
NS = "shop"


def ref(kind: str, name: str, namespace: str = NS, api_version: str = "v1") -> releases.ObjectRef:
    return releases.ObjectRef(api_version, kind, namespace, name)


# Ownership labels and stamping


def test_the_owner_label_is_namespace_dot_name_when_it_fits() -> None:
    assert releases.owner_label("shop", "web") == "shop.web"


def test_a_long_owner_label_is_shortened_with_a_hash_and_stays_distinct() -> None:
    long_name = "a" * 200
    first = releases.owner_label("shop", long_name)
    second = releases.owner_label("shop", long_name + "b")

    assert len(first) <= 63 and len(second) <= 63
    assert first != second
    assert first[0].isalnum() and first[-1].isalnum()


def test_stamp_defaults_the_namespace_of_namespaced_objects_and_marks_the_owner() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "web"}}}

    stamped = releases.stamp(body, release_namespace=NS, release_name="web", namespace="target")

    assert stamped["metadata"]["namespace"] == "target"
    assert stamped["metadata"]["labels"] == {"app": "web", "upkeep.dev/release": "shop.web"}
    assert stamped["metadata"]["annotations"] == {"upkeep.dev/release": "shop/web"}
    assert "namespace" not in body["metadata"], "the rendered body is left as it was"


def test_stamp_keeps_a_declared_namespace_and_gives_cluster_scoped_objects_none() -> None:
    declared = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}
    cluster_scoped = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}}

    assert (
        releases.stamp(declared, release_namespace=NS, release_name="web", namespace="target")["metadata"]["namespace"]
        == "other"
    )
    assert (
        "namespace"
        not in releases.stamp(cluster_scoped, release_namespace=NS, release_name="web", namespace=None)["metadata"]
    )


# Prune


def test_prune_candidates_are_what_git_dropped_with_namespaces_and_crds_last() -> None:
    namespace = ref("Namespace", "apps", "")
    crd = releases.ObjectRef("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.test")
    kept, dropped = ref("ConfigMap", "kept"), ref("ConfigMap", "dropped")

    candidates = releases.prune_candidates([namespace, crd, kept, dropped, dropped], [kept])

    assert candidates == [dropped, crd, namespace]


def test_an_object_served_at_another_version_is_not_a_prune_candidate() -> None:
    old = releases.ObjectRef("autoscaling/v1", "HorizontalPodAutoscaler", NS, "web")
    new = releases.ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", NS, "web")

    assert releases.prune_candidates([old], [new]) == []


# Health


def judge(*statuses: str, applied_ago: float = 10, timeout: float = 60) -> releases.Verdict:
    found = [
        (f"ConfigMap/shop/c{index}", health.Health(status, f"is {status.lower()}"))
        for index, status in enumerate(statuses)
    ]
    return releases.judge_health(
        health.summarize(found),
        count=len(found),
        revision="main@sha1:" + "a" * 40,
        applied_at=NOW - datetime.timedelta(seconds=applied_ago),
        timeout=datetime.timedelta(seconds=timeout),
        now=NOW,
    )


def test_every_object_healthy_is_healthy_and_ready() -> None:
    verdict = judge("Healthy", "Healthy")

    assert (verdict.phase, verdict.ready, verdict.reason) == ("Healthy", "True", "Applied")
    assert verdict.message == "Applied main@aaaaaaa: 2 objects, all healthy"


def test_an_object_not_healthy_yet_is_progressing_within_the_timeout_and_degraded_after() -> None:
    assert judge("Healthy", "Progressing").phase == "Progressing"
    late = judge("Healthy", "Progressing", applied_ago=120)

    assert (late.phase, late.ready, late.reason) == ("Degraded", "False", "Degraded")
    assert "within 1m" in late.message and "ConfigMap/shop/c1" in late.message


def test_a_degraded_object_degrades_the_release_at_once_and_is_named() -> None:
    verdict = judge("Progressing", "Degraded")

    assert verdict.phase == "Degraded"
    assert verdict.message == "main@aaaaaaa is degraded: ConfigMap/shop/c1: is degraded"


def test_an_object_whose_health_is_unknown_is_waited_for_then_degraded() -> None:
    assert judge("Unknown").phase == "Progressing"
    assert judge("Unknown", applied_ago=120).phase == "Degraded"


# Status writes


def test_status_changes_lists_only_what_differs_and_removes_with_none() -> None:
    current = {"revision": "r1", "phase": "Healthy", "orphaned": [{"kind": "ConfigMap", "name": "x"}]}

    assert releases.status_changes(current, {"revision": "r1", "phase": "Healthy", "drift": None}) == {}
    assert releases.status_changes(current, {"revision": "r2", "orphaned": None}) == {
        "revision": "r2",
        "orphaned": None,
    }


# The API error classification


def test_api_errors_are_classified_with_the_object_and_the_servers_message() -> None:
    class Answer(Exception):
        def __init__(self, status: int, message: str) -> None:
            self.status = status
            self.body = json.dumps({"kind": "Status", "message": message})

    invalid = apply.classify(Answer(422, 'ConfigMap "x" is invalid: data: bad'), "ConfigMap shop/x")
    missing = apply.classify(Answer(404, 'namespaces "nope" not found'), "ConfigMap nope/x")
    busy = apply.classify(Answer(503, "try later"), "ConfigMap shop/x")
    refused = apply.classify(ConnectionRefusedError("refused"), "ConfigMap shop/x")

    assert (type(invalid), invalid.reason, str(invalid)) == (
        apply.Invalid,
        "Invalid",
        'ConfigMap shop/x: ConfigMap "x" is invalid: data: bad',
    )
    assert type(missing) is apply.NotFound and not missing.retryable
    assert type(busy) is apply.Unavailable and busy.retryable
    assert type(refused) is apply.Unavailable and "no answer" in refused.message


def test_describe_names_the_kind_with_its_group_and_the_namespace() -> None:
    widget = {"apiVersion": "example.test/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": NS}}

    assert apply.describe(widget) == "Widget.example.test shop/w"
    assert apply.describe({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}) == (
        "Deployment web"
    )


# One pass, driven directly


class FakeCluster:
    """The Upkeep objects as the API server would keep them: Releases and GitSources, status patches counted."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.status_writes: list[dict[str, Any]] = []

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def patch_custom(
        self, plural: str, namespace: str, name: str, patch: Mapping[str, Any], *, status: bool = False
    ) -> dict[str, Any]:
        assert status, "the controller writes the status subresource only"
        body = self.objects[(plural, namespace, name)]
        current = body.setdefault("status", {})
        for key, value in patch["status"].items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)
        self.status_writes.append(copy.deepcopy(dict(patch["status"])))
        return copy.deepcopy(body)

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None


class FakeApplier:
    """Objects kept by identity; Namespaces are cluster-scoped, everything else namespaced; dry runs store nothing."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applied: list[str] = []
        self.deleted: list[str] = []
        self.version = 0
        self.refuse: dict[str, str] = {}
        """Name → message: a dry run or apply of that object is refused as invalid."""

    @staticmethod
    def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
        metadata = obj.get("metadata") or {}
        return (str(obj["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))

    async def namespaced(self, api_version: str, kind: str) -> bool:
        return kind != "Namespace"

    async def get(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.live.get(self._key(obj))
        return copy.deepcopy(found) if found is not None else None

    async def apply(self, obj: Mapping[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        name = str(obj["metadata"]["name"])
        if name in self.refuse:
            raise apply.Invalid(apply.describe(obj), self.refuse[name], status=422)
        body = copy.deepcopy(dict(obj))
        before = self.live.get(self._key(obj))
        if before is not None and {k: v for k, v in before.items() if k != "metadata"} == {
            k: v for k, v in body.items() if k != "metadata"
        }:
            return copy.deepcopy(before)
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        if not dry_run:
            self.live[self._key(obj)] = body
            self.applied.append(name)
        return copy.deepcopy(body)

    async def delete(self, obj: Mapping[str, Any], propagation: str = "Background", *, dry_run: bool = False) -> bool:
        self.deleted.append(str(obj["metadata"]["name"]))
        return self.live.pop(self._key(obj), None) is not None


def configmap(name: str, value: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}})


class Pass:
    """A controller over the fakes, a Release ``web`` and a GitSource ``app`` pointing at ``repo``."""

    def __init__(self, repo: WorkRepo, cache: Path, *, prune: bool = True, dry_run: bool = False) -> None:
        self.repo = repo
        self.cluster = FakeCluster()
        self.applier = FakeApplier()
        self.events: list[tuple[str, str, str]] = []
        settings = settings_.OperatorSettings(
            gitops=settings_.GitOpsSettings(cache_dir=str(cache)), safety=settings_.SafetySettings(dry_run=dry_run)
        )
        self.controller = releases.ReleaseController(
            settings,
            self.cluster,
            self.applier,
            events=lambda body, type_, reason, message: self.events.append((type_, reason, message)),
            now=lambda: NOW,
        )
        self.cluster.objects[("releases", NS, "web")] = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "Release",
            "metadata": {"name": "web", "namespace": NS, "generation": 1},
            "spec": {"sourceRef": {"name": "app"}, "path": "./deploy", "interval": "1m", "prune": {"enabled": prune}},
        }
        self.cluster.objects[("gitsources", NS, "app")] = {
            "apiVersion": "upkeep.dev/v1alpha1",
            "kind": "GitSource",
            "metadata": {"name": "app", "namespace": NS, "generation": 1},
            "spec": {"url": str(repo.path), "ref": {"branch": "main"}},
        }

    def publish(self) -> str:
        sha = self.repo.head()
        revision = f"main@sha1:{sha}"
        self.cluster.objects[("gitsources", NS, "app")]["status"] = {
            "artifact": {"revision": revision, "commit": sha},
            "conditions": [{"type": "Ready", "status": "True", "reason": "Fetched", "lastTransitionTime": "x"}],
        }
        return revision

    def run(self) -> float | None:
        return asyncio.run(self.controller.reconcile(NS, "web"))

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.cluster.objects[("releases", NS, "web")].get("status") or {}
        return status

    @property
    def ready(self) -> dict[str, Any]:
        return next(item for item in self.status["conditions"] if item["type"] == "Ready")


@pytest.fixture
def repo(tmp_path: Path) -> WorkRepo:
    return WorkRepo.create(tmp_path / "app")


def test_a_pass_applies_a_revision_and_the_next_pass_writes_nothing(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1"), "deploy/b.yaml": configmap("b", "1")})
    driven = Pass(repo, tmp_path / "cache")
    revision = driven.publish()

    driven.run()

    assert driven.status["revision"] == revision
    assert driven.status["phase"] == "Healthy"
    assert driven.status["stableRevision"] == revision
    assert driven.ready["status"] == "True"
    assert [item["name"] for item in driven.status["inventory"]] == ["a", "b"]
    assert driven.applier.live[("ConfigMap", NS, "a")]["metadata"]["labels"]["upkeep.dev/release"] == "shop.web"
    assert [reason for _, reason, _ in driven.events] == ["Applied"]
    writes = len(driven.cluster.status_writes)

    driven.run()
    driven.run()

    assert len(driven.cluster.status_writes) == writes, "an unchanged Release gets no status write"
    assert driven.applier.applied == ["a", "b"], "an applied revision is not applied again"


def test_in_dry_run_a_revision_is_checked_and_reported_once_and_nothing_is_written(
    repo: WorkRepo, tmp_path: Path
) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache", dry_run=True)
    driven.publish()

    driven.run()
    driven.run()

    assert driven.applier.live == {}
    assert driven.cluster.status_writes == []
    assert [(reason, message.split(": ", 1)[1]) for _, reason, message in driven.events] == [
        ("DryRun", "create ConfigMap shop/a")
    ]


def test_one_refused_object_refuses_the_revision_whole(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache")
    good = driven.publish()
    driven.run()
    repo.commit({"deploy/a.yaml": configmap("a", "2"), "deploy/z.yaml": configmap("z", "1")})
    bad = driven.publish()
    driven.applier.refuse["z"] = "data.v: Invalid value"

    driven.run()

    assert driven.ready["reason"] == "DryRunFailed"
    assert "deploy/z.yaml:1: ConfigMap shop/z: data.v: Invalid value" in driven.ready["message"]
    assert driven.status["revision"] == good
    assert driven.status["desiredRevision"] == bad
    assert driven.applier.live[("ConfigMap", NS, "a")]["data"] == {"v": "1"}
    warnings = [reason for type_, reason, _ in driven.events if type_ == "Warning"]
    driven.run()
    assert [reason for type_, reason, _ in driven.events if type_ == "Warning"] == warnings == ["DryRunFailed"]


def test_prune_deletes_what_git_dropped_unless_it_opts_out(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({f"deploy/{name}.yaml": configmap(name, "1") for name in ("keep", "gone", "held")})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()
    driven.run()
    driven.applier.live[("ConfigMap", NS, "held")]["metadata"]["labels"]["upkeep.dev/prune"] = "disabled"
    repo.commit({"deploy/gone.yaml": None, "deploy/held.yaml": None})
    driven.publish()

    driven.run()

    assert driven.applier.deleted == ["gone"]
    assert [item["name"] for item in driven.status["orphaned"]] == ["held"]
    assert [item["name"] for item in driven.status["inventory"]] == ["keep"]
    assert "OrphanedObjects" in [reason for _, reason, _ in driven.events]


def test_an_object_someone_else_took_over_is_neither_pruned_nor_orphaned(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1"), "deploy/b.yaml": configmap("b", "1")})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()
    driven.run()
    driven.applier.live[("ConfigMap", NS, "b")]["metadata"]["labels"]["upkeep.dev/release"] = "shop.other"
    repo.commit({"deploy/b.yaml": None})
    driven.publish()

    driven.run()

    assert driven.applier.deleted == []
    assert "orphaned" not in driven.status


def test_a_canary_release_is_reported_not_built_and_nothing_is_applied(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()
    release = driven.cluster.objects[("releases", NS, "web")]
    release["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}]}}
    release["spec"]["workloadRef"] = {"name": "web"}

    assert driven.run() is None

    assert (driven.ready["status"], driven.ready["reason"]) == ("Unknown", "StrategyNotImplemented")
    assert "nothing is applied" in driven.ready["message"]
    assert driven.applier.applied == []


def test_an_invalid_release_is_reported_and_never_synced(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()
    release = driven.cluster.objects[("releases", NS, "web")]
    release["spec"]["strategy"] = {"type": "Canary", "canary": {"steps": [{"setWeight": 50}]}}

    assert driven.run() is None

    assert (driven.ready["status"], driven.ready["reason"]) == ("False", "InvalidSpec")
    assert driven.ready["message"].startswith("spec.workloadRef:")
    assert driven.status["phase"] == "Failed"
    assert driven.applier.applied == []


def test_a_source_without_an_artifact_is_source_not_ready(repo: WorkRepo, tmp_path: Path) -> None:
    driven = Pass(repo, tmp_path / "cache")

    driven.run()

    assert (driven.ready["status"], driven.ready["reason"]) == ("False", "SourceNotReady")
    assert "GitSource shop/app has no artifact yet" in driven.ready["message"]


def test_a_gitsource_change_wakes_only_the_releases_that_follow_it() -> None:
    controller = releases.ReleaseController(settings_.OperatorSettings(), FakeCluster(), FakeApplier())
    following, other = releases._Daemon(source="app"), releases._Daemon(source="other")
    controller._daemons[(NS, "web")] = following
    controller._daemons[(NS, "api")] = other
    body: dict[str, Any] = {
        "metadata": {"namespace": NS, "name": "app"},
        "status": {"artifact": {"revision": "main@sha1:" + "1" * 40}},
    }

    controller.source_changed(body)
    assert following.wake.is_set() and not other.wake.is_set()

    following.wake.clear()
    controller.source_changed(body)
    assert not following.wake.is_set(), "the same revision again is no news"


def test_a_spec_changed_while_the_source_is_down_is_synced_when_it_is_back(repo: WorkRepo, tmp_path: Path) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache")
    revision = driven.publish()
    driven.run()
    source = driven.cluster.objects[("gitsources", NS, "app")]
    source["status"]["conditions"][0].update(status="False", reason="Unreachable", message="no answer")
    release = driven.cluster.objects[("releases", NS, "web")]
    release["spec"]["targetNamespace"] = "other"
    release["metadata"]["generation"] = 2

    driven.run()

    assert (driven.ready["reason"], driven.status["observedGeneration"]) == ("SourceNotReady", 1)
    assert "GitSource shop/app is not ready (Unreachable: no answer)" in driven.ready["message"]
    assert driven.status["revision"] == revision

    driven.publish()
    driven.run()

    assert ("ConfigMap", "other", "a") in driven.applier.live
    assert driven.status["observedGeneration"] == 2
    assert driven.ready["status"] == "True"


def test_a_refused_secret_is_named_without_its_value(repo: WorkRepo, tmp_path: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": 424242}}
    repo.commit({"deploy/secret.yaml": json.dumps(secret)})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()

    driven.run()

    assert driven.ready["reason"] == "InvalidManifests"
    assert "deploy/secret.yaml:1: Secret s stringData.password:" in driven.ready["message"]
    assert "424242" not in driven.ready["message"]
    assert all("424242" not in message for _, _, message in driven.events)


def test_a_new_revision_keeps_the_value_an_active_override_holds_and_applies_gits_once_it_expired(
    repo: WorkRepo, tmp_path: Path
) -> None:
    repo.commit({"deploy/a.yaml": configmap("a", "1")})
    driven = Pass(repo, tmp_path / "cache")
    driven.publish()
    driven.run()
    override = {
        "id": "raise-v",
        "target": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": NS, "name": "a"},
        "fieldPath": "data.v",
        "value": "held",
        "expiresAt": (NOW + datetime.timedelta(minutes=5)).isoformat().replace("+00:00", "Z"),
    }
    driven.cluster.objects[("releases", NS, "web")]["status"]["overrides"] = [override]

    repo.commit({"deploy/a.yaml": configmap("a", "2")})  # git moves on while the fix is held
    revision = driven.publish()
    driven.run()

    assert driven.status["revision"] == revision
    assert driven.applier.live[("ConfigMap", NS, "a")]["data"] == {"v": "held"}

    override["expiresAt"] = (NOW - datetime.timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    repo.commit({"deploy/a.yaml": configmap("a", "3")})
    driven.publish()
    driven.run()

    assert driven.applier.live[("ConfigMap", NS, "a")]["data"] == {"v": "3"}


def test_objects_are_applied_tier_by_tier_and_side_by_side_within_a_tier() -> None:
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "x"}}
    rest = [json.loads(configmap(name, "1")) for name in ("a", "b")]
    assert releases._tiers([namespace, crd, *rest]) == [[namespace], [crd], rest]
    assert releases._tiers(rest) == [rest]

    running: list[int] = []
    most = 0

    async def call(index: int) -> int:
        nonlocal most
        running.append(index)
        most = max(most, len(running))
        await asyncio.sleep(0.01)
        running.remove(index)
        if index == 3:
            raise apply.Invalid("ConfigMap/x", "refused", status=422)
        return index

    results = asyncio.run(releases._bounded([call(index) for index in range(6)], 2))
    assert [item if isinstance(item, int) else "error" for item in results] == [0, 1, 2, "error", 4, 5]
    assert most == 2
