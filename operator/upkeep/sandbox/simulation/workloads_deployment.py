"""The Deployment controller: a ReplicaSet per pod template, rolled out as pkg/controller/deployment does it.

Each reconcile follows the real controller's sync: paused Deployments and scaling events only scale
(proportionally while a rollout is under way); otherwise RollingUpdate grows the new ReplicaSet within
maxSurge and shrinks old ones within maxUnavailable, and Recreate empties the old ones first. The new
ReplicaSet is the one whose template equals the Deployment's (pod-template-hash aside), so a template
patched back by `kubectl rollout undo` finds its old ReplicaSet again, which takes the next revision.
Status, the revision annotation, the Available and Progressing conditions (with their exact reasons and
messages) and the ScalingReplicaSet Events read as a real cluster's.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upkeep.sandbox import status as api_status
from upkeep.sandbox.simulation import runtime, workloads_pods
from upkeep.sandbox.simulation import workloads_rollout as rollout
from upkeep.sandbox.store import Event

__all__ = ["DeploymentController"]

RESOURCE = "apps/deployments"
REPLICA_SETS = "apps/replicasets"
PODS = "/pods"
MAX_INT32 = 2**31 - 1

PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"


def _created(obj: Mapping[str, Any]) -> tuple[float, str]:
    return (workloads_pods.parse_time(obj["metadata"].get("creationTimestamp")) or 0.0, obj["metadata"]["name"])


def by_creation(replica_sets: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first, by name when created in the same second (controller.ReplicaSetsByCreationTimestamp)."""
    return sorted(replica_sets, key=_created)


def by_size_newer(replica_sets: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Largest first, the newest first among equals (controller.ReplicaSetsBySizeNewer)."""
    newest_first = sorted(replica_sets, key=_created, reverse=True)
    return sorted(newest_first, key=lambda rs: -rollout.replicas(rs))


def by_size_older(replica_sets: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Largest first, the oldest first among equals (controller.ReplicaSetsBySizeOlder)."""
    return sorted(by_creation(replica_sets), key=lambda rs: -rollout.replicas(rs))


def active_replica_sets(replica_sets: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
    return [rs for rs in replica_sets if rs is not None and rollout.replicas(rs) > 0]


def find_new_replica_set(
    deployment: Mapping[str, Any], replica_sets: Iterable[dict[str, Any]]
) -> dict[str, Any] | None:
    """The oldest ReplicaSet whose template is the Deployment's (deploymentutil.FindNewReplicaSet)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    for rs in by_creation(replica_sets):
        if rollout.equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def calculate_status(
    deployment: Mapping[str, Any], all_rss: Sequence[Mapping[str, Any]], new_rs: Mapping[str, Any] | None, moment: str
) -> dict[str, Any]:
    """The counts and the Available condition a Deployment's status should carry (the controller's
    calculateStatus); the other conditions are carried over."""
    available = sum(rollout.status_count(rs, "availableReplicas") for rs in all_rss)
    total = sum(rollout.replicas(rs) for rs in all_rss)
    previous = deployment.get("status") or {}
    counts = {
        "observedGeneration": int(deployment["metadata"].get("generation") or 0),
        "replicas": sum(rollout.status_count(rs, "replicas") for rs in all_rss),
        "updatedReplicas": rollout.status_count(new_rs, "replicas") if new_rs is not None else 0,
        "readyReplicas": sum(rollout.status_count(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    status: dict[str, Any] = {key: value for key, value in counts.items() if value}
    if previous.get("conditions"):
        status["conditions"] = copy.deepcopy(previous["conditions"])
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    if available >= rollout.min_available(deployment):
        condition = rollout.new_condition(
            AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", moment
        )
    else:
        condition = rollout.new_condition(
            AVAILABLE, "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", moment
        )
    rollout.set_condition(status, condition)
    return status


@dataclass
class _Sync:
    """One reconcile of one Deployment: its working copy and the latest version of each of its ReplicaSets."""

    deployment: dict[str, Any]
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress_at: float | None = None
    """When this sync wrote a new Progressing condition (its lastUpdateTime, to the fraction of a second)."""

    def set_progressing(self, condition: dict[str, Any], now: float) -> None:
        if rollout.set_condition(self.status, condition):
            self.progress_at = now

    def fresh(self, rs: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if rs is None else self.latest.get(rs["metadata"]["name"], rs)

    def all_fresh(self, replica_sets: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]]:
        return [found for found in (self.fresh(rs) for rs in replica_sets) if found is not None]

    @property
    def name(self) -> str:
        return str(self.deployment["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.deployment["metadata"].get("namespace") or "")

    @property
    def status(self) -> dict[str, Any]:
        return self.deployment.setdefault("status", {})  # type: ignore[no-any-return]


class DeploymentController(runtime.Controller):
    """ReplicaSets for Deployments, rolled out and scaled; status, revisions, conditions and Events."""

    name = "deployment-controller"
    watches = (RESOURCE, REPLICA_SETS, PODS)

    def __init__(self, ctx: runtime.Context) -> None:
        super().__init__(ctx)
        self.replica_sets = workloads_pods.owner_index(ctx, REPLICA_SETS)
        self.pods = workloads_pods.owner_index(ctx, PODS)
        self._progress_clock: dict[tuple[str, str], tuple[str, float]] = {}
        """(namespace, name) → the Progressing condition's lastUpdateTime as written, and the exact moment:
        timestamps have whole seconds, deadlines scaled for tests are shorter than that."""

    # watching

    def initial_keys(self) -> Iterable[runtime.Key]:
        self.replica_sets.build()
        self.pods.build()
        return [runtime.key_of(RESOURCE, obj) for obj in self.ctx.list(RESOURCE)]

    def map_event(self, event: Event) -> Iterable[runtime.Key]:
        if event.resource == RESOURCE:
            return [runtime.key_of(RESOURCE, event.obj)]
        if event.resource == REPLICA_SETS:
            self.replica_sets.observe(event)
            ref = workloads_pods.controller_of(event.obj)
            if ref is not None and ref.get("kind") == "Deployment":
                return [(RESOURCE, event.namespace, str(ref.get("name")))]
            return []
        self.pods.observe(event)
        # Recreate waits for the old pods to be gone: their ends are worth a look.
        if event.type != "DELETED" and not workloads_pods.finished(event.obj):
            return []
        ref = workloads_pods.controller_of(event.obj)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return []
        rs = self.ctx.get(REPLICA_SETS, event.namespace, str(ref.get("name")))
        owner = workloads_pods.controller_of(rs) if rs is not None else None
        if owner is None or owner.get("kind") != "Deployment":
            return []
        deployment = self.ctx.get(RESOURCE, event.namespace, str(owner.get("name")))
        if deployment is None or rollout.strategy(deployment) != "Recreate":
            return []
        return [(RESOURCE, event.namespace, str(owner.get("name")))]

    async def reconcile(self, key: runtime.Key) -> float | None:
        stored = self.ctx.get(*key)
        if stored is None:
            self._progress_clock.pop((key[1], key[2]), None)
            return None
        return self.sync(stored)

    # the controller's syncDeployment

    def sync(self, stored: dict[str, Any]) -> float | None:
        run = _Sync(copy.deepcopy(stored))
        d = run.deployment
        rs_list = self.replica_sets.children(d["metadata"]["uid"])
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = self._new_and_old(run, rs_list, create=False)
            return self._sync_status(run, [*old_rss, *([new_rs] if new_rs else [])], new_rs)
        self._check_paused_conditions(run)
        if (d.get("spec") or {}).get("paused"):
            return self._scale_only(run, rs_list)
        if self._is_scaling_event(run, rs_list):
            return self._scale_only(run, rs_list)
        if rollout.strategy(d) == "Recreate":
            return self._rollout_recreate(run, rs_list)
        return self._rollout_rolling(run, rs_list)

    # writing

    def _save(self, run: _Sync) -> None:
        """Write the working copy's revision annotation and status where they differ from the stored ones."""
        stored = self.ctx.get(RESOURCE, run.namespace, run.name)
        if stored is None:
            return
        wanted_revision = (run.deployment["metadata"].get("annotations") or {}).get(rollout.REVISION)
        if (
            wanted_revision is not None
            and (stored["metadata"].get("annotations") or {}).get(rollout.REVISION) != wanted_revision
        ):
            patch = {"metadata": {"annotations": {rollout.REVISION: wanted_revision}}}
            stored = self.ctx.patch(RESOURCE, run.namespace, run.name, patch, self.name) or stored
        if stored.get("status") != run.deployment.get("status"):
            written = self.ctx.update(
                RESOURCE, {**stored, "status": run.deployment.get("status") or {}}, self.name, subresource="status"
            )
            condition = rollout.get_condition((written or {}).get("status") or {}, PROGRESSING)
            if condition is not None and run.progress_at is not None:
                self._progress_clock[(run.namespace, run.name)] = (
                    str(condition.get("lastUpdateTime") or ""),
                    run.progress_at,
                )

    def _progress_moment(self, run: _Sync, condition: Mapping[str, Any]) -> float:
        text = str(condition.get("lastUpdateTime") or "")
        known = self._progress_clock.get((run.namespace, run.name))
        if known is not None and known[0] == text:
            return known[1]
        return workloads_pods.parse_time(text) or workloads_pods.wall_clock()

    def _set_revision(self, run: _Sync, revision: str) -> bool:
        annotations = run.deployment["metadata"].setdefault("annotations", {})
        if annotations.get(rollout.REVISION) == revision:
            return False
        annotations[rollout.REVISION] = revision
        return True

    # the new and the old ReplicaSets

    def _new_and_old(
        self, run: _Sync, rs_list: list[dict[str, Any]], *, create: bool
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """getAllReplicaSetsAndSyncRevision: the new ReplicaSet (made when ``create``) and every old one."""
        rs_list = run.all_fresh(rs_list)
        existing = find_new_replica_set(run.deployment, rs_list)
        old = [rs for rs in rs_list if existing is None or rs["metadata"]["uid"] != existing["metadata"]["uid"]]
        return self._new_replica_set(run, existing, old, create=create), old

    def _new_replica_set(
        self, run: _Sync, existing: dict[str, Any] | None, old: list[dict[str, Any]], *, create: bool
    ) -> dict[str, Any] | None:
        d = run.deployment
        new_revision = rollout.max_revision(old) + 1
        moment = workloads_pods.timestamp()
        if existing is not None:
            annotations = existing["metadata"].get("annotations") or {}
            wanted = rollout.new_rs_annotations(d, annotations, new_revision, exists=True)
            min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            if wanted != annotations or int((existing.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                updated = copy.deepcopy(existing)
                updated["metadata"]["annotations"] = wanted
                if min_ready:
                    updated["spec"]["minReadySeconds"] = min_ready
                else:
                    updated["spec"].pop("minReadySeconds", None)
                written = self.ctx.update(REPLICA_SETS, updated, self.name)
                if written is not None:
                    run.latest[written["metadata"]["name"]] = written
                    return written
                return existing
            needs = self._set_revision(run, str(rollout.revision(existing)))
            if rollout.has_progress_deadline(d) and rollout.get_condition(run.status, PROGRESSING) is None:
                message = f'Found new replica set "{existing["metadata"]["name"]}"'
                run.set_progressing(
                    rollout.new_condition(PROGRESSING, "True", "FoundNewReplicaSet", message, moment),
                    workloads_pods.wall_clock(),
                )
                needs = True
            if needs:
                self._save(run)
            return existing
        if not create:
            return None
        return self._create_replica_set(run, old, new_revision, moment)

    def _create_replica_set(
        self, run: _Sync, old: list[dict[str, Any]], new_revision: int, moment: str
    ) -> dict[str, Any] | None:
        d = run.deployment
        spec = d.get("spec") or {}
        collisions = run.status.get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        template_hash = rollout.pod_template_hash(template, collisions)
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            rollout.HASH_LABEL: template_hash,
        }
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), rollout.HASH_LABEL: template_hash}
        name = f"{run.name}-{template_hash}"
        new_spec: dict[str, Any] = {"replicas": 0, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            new_spec["minReadySeconds"] = spec["minReadySeconds"]
        body: dict[str, Any] = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": run.namespace,
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [workloads_pods.controller_ref(d, "apps/v1", "Deployment")],
            },
            "spec": new_spec,
        }
        count = rollout.new_rs_new_replicas(d, [*old, body], body)
        new_spec["replicas"] = count
        body["metadata"]["annotations"] = rollout.new_rs_annotations(d, {}, new_revision, exists=False)
        already_exists = False
        try:
            created = self.ctx.create(REPLICA_SETS, run.namespace, body, self.name)
        except api_status.ApiError as error:
            if "is being terminated" in error.message:
                return None
            message = f'Failed to create new replica set "{name}": {error.message}'
            if rollout.has_progress_deadline(d):
                run.set_progressing(
                    rollout.new_condition(PROGRESSING, "False", "ReplicaSetCreateError", message, moment),
                    workloads_pods.wall_clock(),
                )
                self._save(run)
            workloads_pods.record(self.ctx, d, "Warning", "ReplicaSetCreateError", message, self.name)
            return None
        if created is None:
            found = self.ctx.get(REPLICA_SETS, run.namespace, name)
            owner = workloads_pods.controller_of(found) if found is not None else None
            if (
                found is not None
                and owner is not None
                and owner.get("uid") == d["metadata"]["uid"]
                and rollout.equal_ignore_hash(
                    (found.get("spec") or {}).get("template") or {}, spec.get("template") or {}
                )
            ):
                created = found
                already_exists = True
            else:
                # A ReplicaSet of that name with another template: a hash collision, the next hash differs.
                run.status["collisionCount"] = int(collisions or 0) + 1
                self._save(run)
                return None
        self.replica_sets.add(created)
        run.latest[created["metadata"]["name"]] = created
        if not already_exists and count > 0:
            workloads_pods.record(
                self.ctx, d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {count}", self.name
            )
        needs = self._set_revision(run, str(new_revision))
        if not already_exists and rollout.has_progress_deadline(d):
            message = f'Created new replica set "{name}"'
            run.set_progressing(
                rollout.new_condition(PROGRESSING, "True", "NewReplicaSetCreated", message, moment),
                workloads_pods.wall_clock(),
            )
            needs = True
        if needs:
            self._save(run)
        return created

    # scaling

    def _scale_replica_set(self, run: _Sync, rs: dict[str, Any], new_scale: int) -> bool:
        """scaleReplicaSet: the new size and the replica annotations; an Event when the size changed."""
        rs = run.fresh(rs) or rs
        d = run.deployment
        old_scale = rollout.replicas(rs)
        desired = str(rollout.replicas(d))
        ceiling = str(rollout.replicas(d) + rollout.max_surge(d))
        annotations = rs["metadata"].get("annotations") or {}
        size_changes = old_scale != new_scale
        annotations_change = (
            annotations.get(rollout.DESIRED_REPLICAS) != desired or annotations.get(rollout.MAX_REPLICAS) != ceiling
        )
        if not size_changes and not annotations_change:
            return False
        updated = copy.deepcopy(rs)
        updated.setdefault("spec", {})["replicas"] = new_scale
        updated["metadata"]["annotations"] = {
            **annotations,
            rollout.DESIRED_REPLICAS: desired,
            rollout.MAX_REPLICAS: ceiling,
        }
        written = self.ctx.update(REPLICA_SETS, updated, self.name)
        if written is None:
            return False
        run.latest[written["metadata"]["name"]] = written
        if size_changes:
            operation = "up" if old_scale < new_scale else "down"
            message = f"Scaled {operation} replica set {rs['metadata']['name']} from {old_scale} to {new_scale}"
            workloads_pods.record(self.ctx, d, "Normal", "ScalingReplicaSet", message, self.name)
        return size_changes

    def _scale_and_record(self, run: _Sync, rs: dict[str, Any], new_scale: int) -> bool:
        rs = run.fresh(rs) or rs
        if rollout.replicas(rs) == new_scale:
            return False
        return self._scale_replica_set(run, rs, new_scale)

    def _is_scaling_event(self, run: _Sync, rs_list: list[dict[str, Any]]) -> bool:
        new_rs, old_rss = self._new_and_old(run, rs_list, create=False)
        wanted = rollout.replicas(run.deployment)
        for rs in active_replica_sets(run.all_fresh([*old_rss, new_rs])):
            desired = rollout.annotated_int(rs, rollout.DESIRED_REPLICAS)
            if desired is not None and desired != wanted:
                return True
        return False

    def _scale(self, run: _Sync, new_rs: dict[str, Any] | None, old_rss: list[dict[str, Any]]) -> None:
        """The controller's scale(): one active ReplicaSet takes it all; else share it out in proportion."""
        d = run.deployment
        wanted = rollout.replicas(d)
        new_rs = run.fresh(new_rs)
        old_rss = run.all_fresh(old_rss)
        lone = _active_or_latest(new_rs, old_rss)
        if lone is not None:
            if rollout.replicas(lone) != wanted:
                self._scale_and_record(run, lone, wanted)
            return
        if rollout.is_saturated(d, new_rs):
            for rs in active_replica_sets(old_rss):
                self._scale_and_record(run, rs, 0)
            return
        if rollout.strategy(d) != "RollingUpdate":
            return
        everyone = active_replica_sets([*old_rss, new_rs])
        allowed = wanted + rollout.max_surge(d) if wanted > 0 else 0
        to_add = allowed - sum(rollout.replicas(rs) for rs in everyone)
        if to_add > 0:
            everyone = by_size_newer(everyone)
        elif to_add < 0:
            everyone = by_size_older(everyone)
        added = 0
        sizes: dict[str, int] = {}
        for rs in everyone:
            if to_add != 0:
                share = rollout.get_proportion(rs, d, to_add, added)
                sizes[rs["metadata"]["name"]] = rollout.replicas(rs) + share
                added += share
            else:
                sizes[rs["metadata"]["name"]] = rollout.replicas(rs)
        for index, rs in enumerate(everyone):
            name = rs["metadata"]["name"]
            if index == 0 and to_add != 0:
                sizes[name] = max(0, sizes[name] + to_add - added)
            self._scale_replica_set(run, rs, sizes[name])

    def _scale_only(self, run: _Sync, rs_list: list[dict[str, Any]]) -> float | None:
        """sync(): scale, drop old history when paused, and report status (no rollout)."""
        new_rs, old_rss = self._new_and_old(run, rs_list, create=False)
        self._scale(run, new_rs, old_rss)
        if (run.deployment.get("spec") or {}).get("paused"):
            self._clean_up(run, old_rss)
        return self._sync_status(run, [*old_rss, *([new_rs] if new_rs else [])], new_rs)

    # rollouts

    def _rollout_rolling(self, run: _Sync, rs_list: list[dict[str, Any]]) -> float | None:
        new_rs, old_rss = self._new_and_old(run, rs_list, create=True)
        if new_rs is None:
            return 1.0
        everyone = [*old_rss, new_rs]
        if self._reconcile_new(run, everyone, new_rs):
            return self._sync_rollout_status(run, everyone, new_rs)
        if self._reconcile_old(run, everyone, active_replica_sets(run.all_fresh(old_rss)), new_rs):
            return self._sync_rollout_status(run, everyone, new_rs)
        if rollout.deployment_complete(run.deployment, run.status):
            self._clean_up(run, old_rss)
        return self._sync_rollout_status(run, everyone, new_rs)

    def _reconcile_new(self, run: _Sync, everyone: list[dict[str, Any]], new_rs: dict[str, Any]) -> bool:
        d = run.deployment
        new_rs = run.fresh(new_rs) or new_rs
        wanted = rollout.replicas(d)
        if rollout.replicas(new_rs) == wanted:
            return False
        if rollout.replicas(new_rs) > wanted:
            return self._scale_and_record(run, new_rs, wanted)
        count = rollout.new_rs_new_replicas(d, run.all_fresh(everyone), new_rs)
        return self._scale_and_record(run, new_rs, count)

    def _reconcile_old(
        self, run: _Sync, everyone: list[dict[str, Any]], old_active: list[dict[str, Any]], new_rs: dict[str, Any]
    ) -> bool:
        d = run.deployment
        if sum(rollout.replicas(rs) for rs in old_active) == 0:
            return False
        new_rs = run.fresh(new_rs) or new_rs
        all_count = sum(rollout.replicas(rs) for rs in run.all_fresh(everyone))
        least = rollout.replicas(d) - rollout.max_unavailable(d)
        new_unavailable = rollout.replicas(new_rs) - rollout.status_count(new_rs, "availableReplicas")
        most_scaled_down = all_count - least - new_unavailable
        if most_scaled_down <= 0:
            return False
        cleaned = self._clean_up_unhealthy(run, old_active, most_scaled_down)
        old_active = run.all_fresh(old_active)
        scaled = self._scale_down_old(run, [*old_active, new_rs], old_active)
        return cleaned + scaled > 0

    def _clean_up_unhealthy(self, run: _Sync, old_active: list[dict[str, Any]], most: int) -> int:
        """Old ReplicaSets' unavailable pods go first: they cost no availability."""
        total = 0
        for rs in by_creation(run.all_fresh(old_active)):
            if total >= most:
                break
            size = rollout.replicas(rs)
            healthy = rollout.status_count(rs, "availableReplicas")
            if size in (0, healthy):
                continue
            count = min(most - total, size - healthy)
            self._scale_and_record(run, rs, size - count)
            total += count
        return total

    def _scale_down_old(self, run: _Sync, everyone: list[dict[str, Any]], old_active: list[dict[str, Any]]) -> int:
        least = rollout.replicas(run.deployment) - rollout.max_unavailable(run.deployment)
        available = sum(rollout.status_count(rs, "availableReplicas") for rs in run.all_fresh(everyone))
        if available <= least:
            return 0
        goal = available - least
        total = 0
        for rs in by_creation(run.all_fresh(old_active)):
            if total >= goal:
                break
            size = rollout.replicas(rs)
            if size == 0:
                continue
            count = min(size, goal - total)
            self._scale_and_record(run, rs, size - count)
            total += count
        return total

    def _rollout_recreate(self, run: _Sync, rs_list: list[dict[str, Any]]) -> float | None:
        new_rs, old_rss = self._new_and_old(run, rs_list, create=False)
        everyone = [*old_rss, *([new_rs] if new_rs else [])]
        scaled_down = False
        for rs in active_replica_sets(run.all_fresh(old_rss)):
            scaled_down = self._scale_and_record(run, rs, 0) or scaled_down
        if scaled_down:
            return self._sync_rollout_status(run, everyone, new_rs)
        if self._old_pods_running(run, new_rs, old_rss):
            return self._sync_rollout_status(run, everyone, new_rs)
        if new_rs is None:
            new_rs, old_rss = self._new_and_old(run, rs_list, create=True)
            everyone = [*old_rss, *([new_rs] if new_rs else [])]
            if new_rs is None:
                return 1.0
        self._scale_and_record(run, new_rs, rollout.replicas(run.deployment))
        if rollout.deployment_complete(run.deployment, run.status):
            self._clean_up(run, old_rss)
        return self._sync_rollout_status(run, everyone, new_rs)

    def _old_pods_running(self, run: _Sync, new_rs: dict[str, Any] | None, old_rss: list[dict[str, Any]]) -> bool:
        if sum(rollout.status_count(rs, "replicas") for rs in run.all_fresh(old_rss)) > 0:
            return True
        for rs in old_rss:
            if new_rs is not None and rs["metadata"]["uid"] == new_rs["metadata"]["uid"]:
                continue
            if any(not workloads_pods.finished(pod) for pod in self.pods.children(rs["metadata"]["uid"])):
                return True
        return False

    def _clean_up(self, run: _Sync, old_rss: list[dict[str, Any]]) -> None:
        """Old ReplicaSets beyond revisionHistoryLimit go, oldest revision first, once empty."""
        limit_value = (run.deployment.get("spec") or {}).get("revisionHistoryLimit")
        limit = 10 if limit_value is None else int(limit_value)
        if limit == MAX_INT32:
            return
        alive = [rs for rs in run.all_fresh(old_rss) if not rs["metadata"].get("deletionTimestamp")]
        surplus = len(alive) - limit
        if surplus <= 0:
            return
        for rs in sorted(alive, key=lambda item: (rollout.revision(item), *_created(item)))[:surplus]:
            rs_status = rs.get("status") or {}
            if (
                rollout.status_count(rs, "replicas") != 0
                or rollout.replicas(rs) != 0
                or int(rs["metadata"].get("generation") or 0) > int(rs_status.get("observedGeneration") or 0)
            ):
                continue
            self.ctx.delete(REPLICA_SETS, run.namespace, rs["metadata"]["name"])

    # status

    def _check_paused_conditions(self, run: _Sync) -> None:
        d = run.deployment
        if not rollout.has_progress_deadline(d):
            return
        condition = rollout.get_condition(run.status, PROGRESSING)
        if condition is not None and condition.get("reason") == "ProgressDeadlineExceeded":
            return
        paused = bool((d.get("spec") or {}).get("paused"))
        shown = condition is not None and condition.get("reason") == "DeploymentPaused"
        moment = workloads_pods.timestamp()
        if paused and not shown:
            run.set_progressing(
                rollout.new_condition(PROGRESSING, "Unknown", "DeploymentPaused", "Deployment is paused", moment),
                workloads_pods.wall_clock(),
            )
        elif not paused and shown:
            run.set_progressing(
                rollout.new_condition(PROGRESSING, "Unknown", "DeploymentResumed", "Deployment is resumed", moment),
                workloads_pods.wall_clock(),
            )
        else:
            return
        self._save(run)

    def _sync_status(self, run: _Sync, everyone: list[dict[str, Any]], new_rs: dict[str, Any] | None) -> float | None:
        """syncDeploymentStatus: the counts and Available, no judgement of progress."""
        wanted = calculate_status(
            run.deployment, run.all_fresh(everyone), run.fresh(new_rs), workloads_pods.timestamp()
        )
        if wanted != run.deployment.get("status"):
            run.deployment["status"] = wanted
            self._save(run)
        return None

    def _sync_rollout_status(
        self, run: _Sync, everyone: list[dict[str, Any]], new_rs: dict[str, Any] | None
    ) -> float | None:
        """syncRolloutStatus: counts, Available, and whether the rollout completed, progressed or timed out."""
        d = run.deployment
        now = workloads_pods.wall_clock()
        moment = workloads_pods.timestamp(now)
        everyone = run.all_fresh(everyone)
        new_rs = run.fresh(new_rs)
        wanted = calculate_status(d, everyone, new_rs, moment)
        deadline = rollout.has_progress_deadline(d)
        if not deadline:
            rollout.remove_condition(wanted, PROGRESSING)
        current = rollout.get_condition(run.status, PROGRESSING)
        complete_before = (
            int(wanted.get("replicas") or 0) == int(wanted.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == "NewReplicaSetAvailable"
        )
        subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs is not None else f'Deployment "{run.name}"'
        if deadline and not complete_before:
            if rollout.deployment_complete(d, wanted):
                rollout.set_condition(
                    wanted,
                    rollout.new_condition(
                        PROGRESSING, "True", "NewReplicaSetAvailable", f"{subject} has successfully progressed.", moment
                    ),
                )
            elif rollout.deployment_progressing(run.status, wanted):
                condition = rollout.new_condition(
                    PROGRESSING, "True", "ReplicaSetUpdated", f"{subject} is progressing.", moment
                )
                if current is not None:
                    if current.get("status") == "True":
                        condition["lastTransitionTime"] = current.get("lastTransitionTime")
                    rollout.remove_condition(wanted, PROGRESSING)
                rollout.set_condition(wanted, condition)
            elif self._timed_out(run, wanted, now):
                rollout.set_condition(
                    wanted,
                    rollout.new_condition(
                        PROGRESSING,
                        "False",
                        "ProgressDeadlineExceeded",
                        f"{subject} has timed out progressing.",
                        moment,
                    ),
                )
        if rollout.get_condition(wanted, PROGRESSING) != current:
            run.progress_at = now
        failure = _replica_failure(everyone, new_rs)
        if failure is not None:
            rollout.set_condition(wanted, failure)
        else:
            rollout.remove_condition(wanted, REPLICA_FAILURE)
        if wanted != d.get("status"):
            d["status"] = wanted
            self._save(run)
        return self._requeue_stuck(run, wanted, now)

    def _timed_out(self, run: _Sync, wanted: Mapping[str, Any], now: float) -> bool:
        condition = rollout.get_condition(wanted, PROGRESSING)
        if condition is None or condition.get("reason") == "NewReplicaSetAvailable":
            return False
        if condition.get("reason") == "ProgressDeadlineExceeded":
            return True
        deadline = self.ctx.settings.scaled(rollout.progress_deadline(run.deployment))
        return self._progress_moment(run, condition) + deadline < now

    def _requeue_stuck(self, run: _Sync, wanted: Mapping[str, Any], now: float) -> float | None:
        """When to look again at a rollout that has not finished, to declare its deadline exceeded."""
        condition = rollout.get_condition(wanted, PROGRESSING)
        if not rollout.has_progress_deadline(run.deployment) or condition is None:
            return None
        if rollout.deployment_complete(run.deployment, wanted) or condition.get("reason") in (
            "ProgressDeadlineExceeded",
            "NewReplicaSetAvailable",
            "DeploymentPaused",
        ):
            return None
        deadline = self.ctx.settings.scaled(rollout.progress_deadline(run.deployment))
        return max(0.0, self._progress_moment(run, condition) + deadline - now) + 0.05


def _active_or_latest(new_rs: dict[str, Any] | None, old_rss: list[dict[str, Any]]) -> dict[str, Any] | None:
    """deploymentutil.FindActiveOrLatest: the only ReplicaSet with pods, or the newest when none has any."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    everyone = active_replica_sets([*newest_first, new_rs])
    if not everyone:
        return new_rs if new_rs is not None else newest_first[0]
    if len(everyone) == 1:
        return everyone[0]
    return None


def _replica_failure(everyone: list[dict[str, Any]], new_rs: dict[str, Any] | None) -> dict[str, Any] | None:
    """getReplicaFailures: the new ReplicaSet's ReplicaFailure condition first, else an old one's."""
    ordered = [*([new_rs] if new_rs is not None else []), *everyone]
    for rs in ordered:
        found = rollout.get_condition(rs.get("status") or {}, REPLICA_FAILURE)
        if found is not None and found.get("status") == "True":
            moment = str(found.get("lastTransitionTime") or "")
            return {
                "type": REPLICA_FAILURE,
                "status": "True",
                "lastUpdateTime": moment,
                "lastTransitionTime": moment,
                "reason": found.get("reason", ""),
                "message": found.get("message", ""),
            }
    return None
