"""Workload actions: rolloutRestart, rollbackDeployment and scale.

Each writes its idempotency key into the object in the same merge patch as the change, so that
after a restart ``already_done`` reads it back:

- rolloutRestart: the pod template's annotations get ``kubectl.kubernetes.io/restartedAt`` (as
  ``kubectl rollout restart`` sets it) and ``upkeep.dev/action-key``; Deployment, StatefulSet and
  DaemonSet.
- rollbackDeployment: the pod template of the chosen ReplicaSet is copied back (what ``kubectl
  rollout undo`` does) and the key goes on the Deployment's own annotations, not on the template:
  a template that differs from the old ReplicaSet's by an annotation would roll out as a new
  ReplicaSet instead of scaling the old one back up. A Deployment whose current rollout is healthy
  (``rollouts.rollout_state`` says Succeeded: the latest spec seen, every replica updated, ready and
  available, not past its progress deadline) is left alone and the step succeeds saying so: two
  incidents of one bad rollout (ImagePullBackOff, then ProgressDeadlineExceeded) would otherwise
  roll back twice, the second time from the restored revision to the bad one.
- scale: ``spec.replicas`` and the key on the workload's annotations (a template change would
  restart every pod).

Every write carries the resourceVersion read (``patches.patch_fresh``). Verification is the
rollout's: ``kubectl rollout status``'s answer (``rollouts.rollout_state``). A dry run sends the
same patch with ``dryRun=All``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deadlines, impact, patches, records, rollouts, selectors, targets
from upkeep.model import resources

__all__ = ["RollbackDeployment", "RolloutRestart", "Scale", "impact_of", "scale_target"]

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


async def _read(ctx: base.ActionContext, ref: resources.ObjectRef) -> dict[str, Any]:
    found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
    if found is None:
        raise base.ActionFailed(f"{ref} does not exist")
    return found


async def _rollout_verdict(
    ctx: base.ActionContext, ref: resources.ObjectRef, output: Mapping[str, Any]
) -> base.Outcome:
    found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
    if found is None:
        return base.Outcome("Failed", f"{ref} is gone", dict(output))
    state = rollouts.rollout_state(found)
    if state.phase == "Running":
        return deadlines.undecided(ctx, state.message, output)
    return base.Outcome(state.phase, state.message, dict(output))


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RolloutRestart:
    """The ``rolloutRestart`` action (see the module docstring)."""

    name = "rolloutRestart"

    async def describe(self, ctx: base.ActionContext) -> str:
        ref = targets.workload(ctx, *rollouts.ROLLOUT_KINDS)
        return f"Restart the pods of {ref} the way `kubectl rollout restart` does (a new rollout of the same template)."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        ref = targets.workload(ctx, *rollouts.ROLLOUT_KINDS)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None or targets.pod_template_annotation(found) != ctx.key:
            return None
        await records.record(ctx, self.name, found, "RolloutRestarted", f"Upkeep restarted {ref} (step {ctx.key}).")
        return base.Outcome("Succeeded", f"Restarted {ref}.", {"workload": ref.to_dict()})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        done = None if ctx.dry_run else await self.already_done(ctx)
        if done is not None:  # run twice for one key: the restart happened, a second would restart again
            return done
        ref = targets.workload(ctx, *rollouts.ROLLOUT_KINDS)
        annotations = {RESTARTED_AT: _timestamp(ctx.now), base.ACTION_KEY_ANNOTATION: ctx.key}
        patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        written = await ctx.cluster.patch(
            ref.api_version, ref.kind, ref.namespace, ref.name, patch, dry_run=ctx.dry_run
        )
        await records.record(ctx, self.name, written, "RolloutRestarted", f"Upkeep restarted {ref} (step {ctx.key}).")
        verb = "Would restart" if ctx.dry_run else "Restarted"
        return base.Outcome("Succeeded", f"{verb} {ref}.", {"workload": ref.to_dict()})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx, *rollouts.ROLLOUT_KINDS)
        return await _rollout_verdict(ctx, ref, {"workload": ref.to_dict()})


def _images(template: Mapping[str, Any]) -> list[str]:
    return [str(container.get("image", "")) for container in (template.get("spec") or {}).get("containers") or []]


async def _replica_sets(ctx: base.ActionContext, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    metadata = deployment.get("metadata") or {}
    query = selectors.to_query((deployment.get("spec") or {}).get("selector"))
    found = await ctx.cluster.list("apps/v1", "ReplicaSet", str(metadata.get("namespace", "")), label_selector=query)
    return [rs for rs in found if rollouts.owned_by(rs, str(metadata.get("uid", "")))]


def _healthy(deployment: Mapping[str, Any]) -> bool:
    """Whether the Deployment's current rollout is done and well: there is nothing a rollback would mend."""
    return rollouts.rollout_state(deployment).phase == "Succeeded"


def _nothing_to_roll_back(deployment: Mapping[str, Any]) -> str:
    replicas = int((deployment.get("spec") or {}).get("replicas", 1) or 0)
    return (
        f"nothing to roll back: revision {rollouts.revision(deployment)} is healthy "
        f"({replicas} of {replicas} replicas updated, ready and available)"
    )


class RollbackDeployment:
    """The ``rollbackDeployment`` action (see the module docstring)."""

    name = "rollbackDeployment"
    reuses_described_reads = True
    """``run`` may take the Deployment and ReplicaSets ``describe`` read (``base.ReadOnce``): its patch carries the
    Deployment's resourceVersion, and a new ReplicaSet comes only with a change of the Deployment."""

    async def _plan(self, ctx: base.ActionContext, deployment: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        to_revision = ctx.params.get("toRevision")
        try:
            chosen = rollouts.rollback_target(await _replica_sets(ctx, deployment), int(to_revision or 0) or None)
        except rollouts.RolloutError as error:
            raise base.ActionFailed(f"cannot roll back Deployment {deployment['metadata']['name']}: {error}") from None
        return rollouts.revision(chosen), rollouts.rollback_template(chosen)

    async def describe(self, ctx: base.ActionContext) -> str:
        ref = targets.workload(ctx, "Deployment")
        deployment = await _read(ctx, ref)
        if _healthy(deployment):
            return f"Leave {ref} as it is: {_nothing_to_roll_back(deployment)}."
        number, template = await self._plan(ctx, deployment)
        current = rollouts.revision(deployment)
        return (
            f"Roll {ref} back from revision {current} to revision {number} "
            f"(images {', '.join(_images(template))}), as `kubectl rollout undo` does."
        )

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        ref = targets.workload(ctx, "Deployment")
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        data = await records.read(ctx, ref.namespace) or {}
        # Found done after a restart: the Event may not have been written before the process died.
        await records.record(ctx, self.name, found, "RolledBack", f"Upkeep rolled {ref} back (step {ctx.key}).")
        return base.Outcome("Succeeded", f"Rolled {ref} back.", {"workload": ref.to_dict(), **data})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx, "Deployment")
        chosen: dict[str, Any] = {}

        async def build(deployment: Mapping[str, Any]) -> Mapping[str, Any] | None:
            if targets.key_annotation(deployment) == ctx.key:
                chosen.update(already=True)
                return None
            if _healthy(deployment):
                chosen.update(healthy=True, revision=rollouts.revision(deployment), outcome="NothingToRollBack")
                chosen["message"] = _nothing_to_roll_back(deployment)
                return None
            number, template = await self._plan(ctx, deployment)
            current = (deployment.get("spec") or {}).get("template") or {}
            chosen.update(toRevision=number, fromRevision=rollouts.revision(deployment), images=_images(template))
            if rollouts.same_template(current, template):
                return None
            return {
                "metadata": {"annotations": {base.ACTION_KEY_ANNOTATION: ctx.key}},
                "spec": {"template": patches.merge_patch(current, template)},
            }

        _, written = await patches.patch_fresh(ctx, ref.api_version, ref.kind, ref.namespace, ref.name, build)
        if chosen.get("already"):
            done = await self.already_done(ctx)
            if done is not None:
                return done
        if chosen.get("healthy"):
            message = str(chosen.pop("message"))
            return base.Outcome("Succeeded", f"{ref}: {message}.", {"workload": ref.to_dict(), **chosen})
        output = {"workload": ref.to_dict(), **chosen}
        if written is None:
            return base.Outcome(
                "Succeeded",
                f"{ref} already runs the template of revision {chosen['toRevision']}; nothing to do.",
                output,
            )
        message = f"Upkeep rolled {ref} back to revision {chosen['toRevision']} (step {ctx.key})."
        await records.record(ctx, self.name, written, "RolledBack", message, data=chosen)
        verb = "Would roll" if ctx.dry_run else "Rolled"
        return base.Outcome(
            "Succeeded", f"{verb} {ref} back from revision {chosen['fromRevision']} to {chosen['toRevision']}.", output
        )

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx, "Deployment")
        return await _rollout_verdict(ctx, ref, {"workload": ref.to_dict()})


SCALE_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")


def scale_target(current: int, params: Mapping[str, Any]) -> int:
    """The replica count ``scale`` sets: ``replicas``, or ``current + by``, clamped to ``min``..``max``."""
    wanted = int(params["replicas"]) if params.get("replicas") is not None else current + int(params.get("by") or 0)
    if params.get("min") is not None:
        wanted = max(wanted, int(params["min"]))
    if params.get("max") is not None:
        wanted = min(wanted, int(params["max"]))
    return max(wanted, 0)


def _replicas(workload: Mapping[str, Any]) -> int:
    return int((workload.get("spec") or {}).get("replicas", 1) or 0)


async def impact_of(ctx: base.ActionContext) -> tuple[impact.Impact, ...]:
    """What scaling would leave: (ready, desired, removing) of the workload, for the minHealthy guard."""
    ref = targets.workload(ctx, *SCALE_KINDS)
    found = await _read(ctx, ref)
    current = _replicas(found)
    ready = int((found.get("status") or {}).get("readyReplicas") or 0)
    removing = max(0, current - scale_target(current, ctx.params))
    # Scaling down removes ready pods first only when there are no unready ones to remove.
    removing_ready = max(0, removing - max(0, current - ready))
    return (impact.Impact(ref, ready, current, removing_ready),)


class Scale:
    """The ``scale`` action (see the module docstring)."""

    name = "scale"

    async def describe(self, ctx: base.ActionContext) -> str:
        ref = targets.workload(ctx, *SCALE_KINDS)
        current = _replicas(await _read(ctx, ref))
        return f"Scale {ref} from {current} to {scale_target(current, ctx.params)} replicas."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        ref = targets.workload(ctx, *SCALE_KINDS)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        replicas = _replicas(found)
        await records.record(
            ctx, self.name, found, "Scaled", f"Upkeep scaled {ref} to {replicas} replicas (step {ctx.key})."
        )
        return base.Outcome("Succeeded", f"Scaled {ref} to {replicas}.", {"workload": ref.to_dict(), "to": replicas})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx, *SCALE_KINDS)
        counts: dict[str, int] = {}

        async def build(found: Mapping[str, Any]) -> Mapping[str, Any] | None:
            if targets.key_annotation(found) == ctx.key:  # scaled by this step already: "by" must not add twice
                counts["from"] = counts["to"] = _replicas(found)
                return None
            counts["from"] = _replicas(found)
            counts["to"] = scale_target(counts["from"], ctx.params)
            if counts["to"] == counts["from"]:
                return None
            return {
                "metadata": {"annotations": {base.ACTION_KEY_ANNOTATION: ctx.key}},
                "spec": {"replicas": counts["to"]},
            }

        _, written = await patches.patch_fresh(ctx, ref.api_version, ref.kind, ref.namespace, ref.name, build)
        output = {"workload": ref.to_dict(), **counts}
        if written is None:
            return base.Outcome("Succeeded", f"{ref} has {counts['to']} replicas already; nothing to do.", output)
        message = f"Upkeep scaled {ref} from {counts['from']} to {counts['to']} replicas (step {ctx.key})."
        await records.record(ctx, self.name, written, "Scaled", message, data=counts)
        verb = "Would scale" if ctx.dry_run else "Scaled"
        return base.Outcome("Succeeded", f"{verb} {ref} from {counts['from']} to {counts['to']} replicas.", output)

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx, *SCALE_KINDS)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None:
            return base.Outcome("Failed", f"{ref} is gone")
        if ref.kind == "ReplicaSet":
            status = found.get("status") or {}
            ready, wanted = int(status.get("readyReplicas") or 0), _replicas(found)
            if ready == wanted == int(status.get("replicas") or 0):
                return base.Outcome("Succeeded", f"{ref} has {wanted} ready replicas")
            return deadlines.undecided(ctx, f"{ref} has {ready} of {wanted} replicas ready")
        return await _rollout_verdict(ctx, ref, {"workload": ref.to_dict()})
