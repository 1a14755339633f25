"""patch: a JSON merge patch on the incident's workload, or on the object ``params.target`` names.

The params arrive rendered: values from the incident context are already filled in by the
caller. The idempotency key goes on the target's own annotations in the same patch (not on a pod
template: a patch of ``spec.replicas`` must not restart pods). Verification: a rollout when the
target is a Deployment, StatefulSet or DaemonSet whose spec was patched, otherwise that the patched
values are still in place. A dry run sends the patch with ``dryRun=All``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deadlines, patches, records, rollouts, targets
from upkeep.model import resources

__all__ = ["Patch"]


def _target(ctx: base.ActionContext) -> resources.ObjectRef:
    given = ctx.params.get("target")
    if not given:
        return targets.workload(ctx)
    if not isinstance(given, Mapping) or not given.get("kind") or not given.get("name"):
        raise base.ActionFailed("patch.target needs kind and name (and apiVersion unless the kind is a common one)")
    ref = resources.ObjectRef.from_dict(given, default_namespace=ctx.namespace)
    if ref.kind == "Node":
        ref = resources.ObjectRef(ref.kind, ref.name, "", ref.api_version)
    return resources.ObjectRef(ref.kind, ref.name, ref.namespace, targets.api_version(ref))


def _user_patch(ctx: base.ActionContext) -> Mapping[str, Any]:
    patch = ctx.params.get("patch")
    if not isinstance(patch, Mapping) or not patch:
        raise base.ActionFailed("patch.patch must be a non-empty object (a JSON merge patch)")
    return patch


def _with_key(patch: Mapping[str, Any], key: str) -> dict[str, Any]:
    return dict(
        patches.apply_merge_patch(dict(patch), {"metadata": {"annotations": {base.ACTION_KEY_ANNOTATION: key}}})
    )


def _without_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key not in ("metadata", "status")}


class Patch:
    """The ``patch`` action (see the module docstring)."""

    name = "patch"

    async def describe(self, ctx: base.ActionContext) -> str:
        return f"Apply the merge patch {dict(_user_patch(ctx))} to {_target(ctx)}."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        ref = _target(ctx)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        await records.record(ctx, self.name, found, "Patched", f"Upkeep patched {ref} (step {ctx.key}).")
        return base.Outcome("Succeeded", f"Patched {ref}.", {"target": ref.to_dict()})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        done = None if ctx.dry_run else await self.already_done(ctx)
        if done is not None:
            return done
        ref = _target(ctx)
        patch = _with_key(_user_patch(ctx), ctx.key)
        written = await ctx.cluster.patch(
            ref.api_version, ref.kind, ref.namespace, ref.name, patch, dry_run=ctx.dry_run
        )
        await records.record(ctx, self.name, written, "Patched", f"Upkeep patched {ref} (step {ctx.key}).")
        verb = "Would patch" if ctx.dry_run else "Patched"
        return base.Outcome("Succeeded", f"{verb} {ref}.", {"target": ref.to_dict()})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        ref = _target(ctx)
        output = {"target": ref.to_dict()}
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        if found is None:
            return base.Outcome("Failed", f"{ref} is gone", output)
        user = _user_patch(ctx)
        if _without_metadata(patches.apply_merge_patch(found, user)) != _without_metadata(found):
            return base.Outcome("Failed", f"{ref} no longer has the patched values (changed since)", output)
        if ref.kind in rollouts.ROLLOUT_KINDS and "spec" in user:
            state = rollouts.rollout_state(found)
            if state.phase == "Running":
                return deadlines.undecided(ctx, state.message, output)
            return base.Outcome(state.phase, state.message, output)
        return base.Outcome("Succeeded", f"{ref} has the patched values", output)
