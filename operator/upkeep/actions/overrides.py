"""setOverride and proposeFix: hold a value git disagrees with for a while, and say what git should say instead.

setOverride computes the value to hold — ``params.value``, or ``params.factor`` x the current value
(Kubernetes quantities: ``256Mi`` x 1.5 = ``384Mi``) — never above ``params.maxFactor`` x the
declared value, sets it at ``params.fieldPath`` of the workload and records the override in the
same patch, as the workload annotation ``upkeep.dev/override``: a JSON list with one entry per
field (fieldPath, value, declared, expiresAt, key, setAt). The declared value is the one before the
first override of that field, so a second OOM kill cannot ratchet the limit past the bound.

The playbook controller copies the entry to ``status.overrides`` of the Releases whose
``spec.workloadRef`` is the workload. The Release controller keeps an unexpired override: a sync of a
new revision and self-heal apply the held value instead of git's, and once it expires git's value
comes back (docs/gitops.md, "Drift, self-heal and overrides").

proposeFix computes the permanent fix (fieldPath, new value, message) and returns it in its output;
it changes nothing in the cluster. The write-back controller (``controllers/writeback.py``) pushes it
to git as a branch for review and records the branch in the run's ``status.writeBacks``.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from upkeep.actions import base, deadlines, patches, records, rollouts, targets
from upkeep.engine import durations, fieldpaths, quantities
from upkeep.model import resources

__all__ = ["OVERRIDE_ANNOTATION", "ProposeFix", "SetOverride", "held_value", "overrides_of"]

OVERRIDE_ANNOTATION = "upkeep.dev/override"
"""The workload annotation that records the overrides held on it (a JSON list of entries)."""


def overrides_of(obj: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The override entries recorded on an object (an unreadable annotation reads as none)."""
    text = (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(OVERRIDE_ANNOTATION)
    if not text:
        return []
    try:
        found = json.loads(text)
    except ValueError:
        return []
    if isinstance(found, Mapping):
        found = [found]
    return [dict(entry) for entry in found if isinstance(entry, Mapping)] if isinstance(found, list) else []


def _finest(path: str) -> str | None:
    return "m" if path.rstrip("]").endswith("cpu") else None


def held_value(current: Any, declared: Any, params: Mapping[str, Any], path: str) -> Any:
    """The value to hold: ``value``, or ``factor`` x ``current``; at most ``maxFactor`` x ``declared``.

    Raises ``QuantityError`` when a factor meets a value that is not a number or a quantity.
    """
    ceiling: Decimal | None = None
    if params.get("maxFactor") is not None and declared is not None:
        ceiling = quantities.amount(declared) * Decimal(str(params["maxFactor"]))
    if params.get("value") is not None:
        value = params["value"]
        if ceiling is not None and quantities.amount(value) > ceiling:
            return quantities.scale(declared, float(params["maxFactor"]), finest=_finest(path))
        return value
    if current is None:
        raise quantities.QuantityError(f"{path} has no value to multiply")
    return quantities.scale(current, float(params["factor"]), at_most=ceiling, finest=_finest(path))


def _same(first: Any, second: Any) -> bool:
    if first == second:
        return True
    try:
        return quantities.amount(first) == quantities.amount(second)
    except (quantities.QuantityError, TypeError):
        return False


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _path(ctx: base.ActionContext) -> str:
    path = ctx.params.get("fieldPath")
    if not path:
        raise base.ActionFailed(f"params.fieldPath is required (step {ctx.key})")
    try:
        fieldpaths.parse(str(path))
    except fieldpaths.FieldPathError as error:
        raise base.ActionFailed(str(error)) from None
    return str(path)


def _current(obj: Mapping[str, Any], path: str) -> Any:
    try:
        return fieldpaths.get(obj, path)
    except fieldpaths.FieldPathError as error:
        raise base.ActionFailed(str(error)) from None


def _declared(obj: Mapping[str, Any], path: str, now: datetime.datetime) -> Any:
    """The value before any unexpired override of ``path``: the one git (or the user) declared."""
    for entry in overrides_of(obj):
        if entry.get("fieldPath") == path and str(entry.get("expiresAt", "")) > _timestamp(now):
            return entry.get("declared")
    return _current(obj, path)


async def _read(ctx: base.ActionContext, ref: resources.ObjectRef) -> dict[str, Any]:
    found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
    if found is None:
        raise base.ActionFailed(f"{ref} does not exist")
    return found


def _plan(ctx: base.ActionContext, obj: Mapping[str, Any]) -> dict[str, Any]:
    """The override entry this step would record on ``obj``."""
    path = _path(ctx)
    current = _current(obj, path)
    declared = _declared(obj, path, ctx.now)
    try:
        value = held_value(current, declared, ctx.params, path)
    except quantities.QuantityError as error:
        raise base.ActionFailed(f"setOverride: {error}") from None
    expires = ctx.now + durations.parse_duration(str(ctx.params.get("expiresIn") or "1h"))
    return {
        "fieldPath": path,
        "value": value,
        "previous": current,
        "declared": declared,
        "expiresAt": _timestamp(expires),
        "setAt": _timestamp(ctx.now),
        "key": ctx.key,
    }


class SetOverride:
    """The ``setOverride`` action (see the module docstring)."""

    name = "setOverride"

    async def describe(self, ctx: base.ActionContext) -> str:
        ref = targets.workload(ctx)
        entry = _plan(ctx, await _read(ctx, ref))
        how = f"{ctx.params['factor']} x {entry['previous']}" if ctx.params.get("factor") is not None else "as given"
        bound = f", at most {ctx.params['maxFactor']} x {entry['declared']}" if ctx.params.get("maxFactor") else ""
        return (
            f"Hold {entry['fieldPath']} of {ref} at {entry['value']} ({how}{bound}) until {entry['expiresAt']}, "
            f"recorded in its annotation {OVERRIDE_ANNOTATION} (GitOps self-heal honours it once Releases act)."
        )

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        ref = targets.workload(ctx)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        for entry in overrides_of(found):
            if entry.get("key") == ctx.key and found is not None:
                held = f"Upkeep holds {entry.get('fieldPath')} of {ref} at {entry.get('value')} (step {ctx.key})."
                await records.record(ctx, self.name, found, "OverrideSet", held)
                return base.Outcome(
                    "Succeeded", f"Held {entry.get('fieldPath')} of {ref} at {entry.get('value')}.", entry
                )
        return None

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx)
        planned: dict[str, Any] = {}

        async def build(found: Mapping[str, Any]) -> Mapping[str, Any] | None:
            recorded = next((item for item in overrides_of(found) if item.get("key") == ctx.key), None)
            if recorded is not None:  # held by this step already: a factor must not be applied twice
                planned.clear()
                planned.update(recorded)
                return None
            entry = _plan(ctx, found)
            planned.clear()
            planned.update(entry)
            try:
                wanted = fieldpaths.with_value(found, entry["fieldPath"], entry["value"])
            except fieldpaths.FieldPathError as error:
                raise base.ActionFailed(str(error)) from None
            kept = [
                old
                for old in overrides_of(found)
                if old.get("fieldPath") != entry["fieldPath"] and str(old.get("expiresAt", "")) > entry["setAt"]
            ]
            annotations = {
                OVERRIDE_ANNOTATION: json.dumps([*kept, entry], sort_keys=True),
                base.ACTION_KEY_ANNOTATION: ctx.key,
            }
            patch = patches.merge_patch(
                {k: v for k, v in found.items() if k != "status"}, {k: v for k, v in wanted.items() if k != "status"}
            )
            return patches.apply_merge_patch(patch, {"metadata": {"annotations": annotations}})  # type: ignore[no-any-return]

        _, written = await patches.patch_fresh(ctx, ref.api_version, ref.kind, ref.namespace, ref.name, build)
        message = (
            f"Upkeep holds {planned['fieldPath']} of {ref} at {planned['value']} (was {planned.get('previous')}) "
            f"until {planned['expiresAt']} (step {ctx.key})."
        )
        if written is not None:
            await records.record(ctx, self.name, written, "OverrideSet", message, data=planned)
        verb = "Would hold" if ctx.dry_run else "Holding"
        return base.Outcome(
            "Succeeded",
            f"{verb} {planned['fieldPath']} of {ref} at {planned['value']} until {planned['expiresAt']}.",
            planned,
        )

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        ref = targets.workload(ctx)
        found = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name)
        entry = next((item for item in overrides_of(found) if item.get("key") == ctx.key), None)
        if found is None or entry is None:
            return base.Outcome("Failed", f"{ref} no longer records the override of step {ctx.key}")
        held = _current(found, str(entry["fieldPath"]))
        if not _same(held, entry.get("value")):
            return base.Outcome("Failed", f"{entry['fieldPath']} of {ref} is {held} again, not {entry['value']}", entry)
        if ref.kind in rollouts.ROLLOUT_KINDS and str(entry["fieldPath"]).startswith("spec.template"):
            state = rollouts.rollout_state(found)
            if state.phase == "Running":
                return deadlines.undecided(ctx, state.message, entry)
            return base.Outcome(state.phase, state.message, entry)
        return base.Outcome("Succeeded", f"{entry['fieldPath']} of {ref} holds {entry['value']}", entry)


class ProposeFix:
    """The ``proposeFix`` action (see the module docstring)."""

    name = "proposeFix"

    async def _proposal(self, ctx: base.ActionContext) -> dict[str, Any]:
        ref = targets.workload(ctx)
        found = await _read(ctx, ref)
        path = _path(ctx)
        declared = _declared(found, path, ctx.now)
        if ctx.params.get("value") is not None:
            value = ctx.params["value"]
        elif ctx.params.get("factor") is not None and declared is not None:
            try:
                value = quantities.scale(declared, float(ctx.params["factor"]), finest=_finest(path))
            except quantities.QuantityError as error:
                raise base.ActionFailed(f"proposeFix: {error}") from None
        else:
            value = _current(found, path)
        incident = (ctx.incident.get("metadata") or {}).get("name", "")
        message = str(ctx.params.get("message") or f"Set {path} of {ref.kind} {ref.name} to {value}")
        if incident and not ctx.params.get("message"):
            message += f" (incident {incident})"
        return {
            "workload": ref.to_dict(),
            "fieldPath": path,
            "declared": declared,
            "value": value,
            "message": message,
        }

    async def describe(self, ctx: base.ActionContext) -> str:
        proposal = await self._proposal(ctx)
        return (
            f"Propose to git: {proposal['message']} ({proposal['fieldPath']}: {proposal['declared']} → "
            f"{proposal['value']}), as a branch for review of the Release that declares it."
        )

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        return None

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        proposal = await self._proposal(ctx)
        return base.Outcome(
            "Succeeded",
            f"Proposed: {proposal['message']} (the write-back pushes it to git as a branch for review).",
            proposal,
        )

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        return base.Outcome("Succeeded", "the proposal is recorded in the run")
