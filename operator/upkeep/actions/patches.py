"""JSON merge patches (RFC 7386): computed from a wanted object, applied, and written with a precondition.

The action cluster speaks merge patches only. Replacing a whole pod template (a rollback copies
an old ReplicaSet's) is then a patch from the current template to the wanted one, with ``null`` for
every key the wanted one lacks — what ``kubectl rollout undo`` does with a JSON patch ``replace``.
Lists are sent whole, as merge patches must. ``patch_fresh`` reads, builds the patch from what it
read and sends it with the ``resourceVersion`` it read, so a change made by someone else in between
is never overwritten with stale values (409, read again, build again).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from upkeep.actions import base

__all__ = ["apply_merge_patch", "is_conflict", "merge_patch", "patch_fresh"]

ATTEMPTS = 5
"""How often ``patch_fresh`` reads and writes again after a 409 before it gives up."""


def merge_patch(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that turns ``current`` into ``wanted`` (empty when they are equal)."""
    patch: dict[str, Any] = {}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            inner = merge_patch(old, value)
            if inner:
                patch[key] = inner
        elif key not in current or old != value:
            patch[key] = copy.deepcopy(value)
    for key in current:
        if key not in wanted:
            patch[key] = None
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with ``patch`` applied (RFC 7386), as the API server would; ``target`` is not changed."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def is_conflict(error: BaseException) -> bool:
    """Whether the API answered 409 (the object changed since it was read)."""
    return getattr(error, "status", None) == 409


PatchBuilder = Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any] | None]]
"""Given the object as read, the merge patch to send (None: nothing to do)."""


async def patch_fresh(
    ctx: base.ActionContext, api_version: str, kind: str, namespace: str, name: str, build: PatchBuilder
) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """Read the object, build a patch from it, send it with the resourceVersion read; again on a 409.

    Returns (the object as read last, the object as patched or None when ``build`` had nothing to do).
    A missing object is ``ActionFailed``.
    """
    for attempt in range(ATTEMPTS):
        found = await ctx.cluster.get(api_version, kind, namespace, name)
        if found is None:
            where = f"{namespace}/" if namespace else ""
            raise base.ActionFailed(f"{kind} {where}{name} does not exist")
        patch = await build(found)
        if not patch:
            return found, None
        guarded = dict(patch)
        metadata = dict(guarded.get("metadata") or {})
        metadata["resourceVersion"] = (found.get("metadata") or {}).get("resourceVersion")
        guarded["metadata"] = metadata
        try:
            written = await ctx.cluster.patch(api_version, kind, namespace, name, guarded, dry_run=ctx.dry_run)
        except Exception as error:
            if is_conflict(error) and attempt + 1 < ATTEMPTS:
                continue
            raise
        return found, written
    raise AssertionError("unreachable")  # pragma: no cover
