"""Drift and self-heal of a Release's objects between syncs, honouring the overrides remediations hold.

The Release controller calls ``reconcile_drift`` with the objects git declares at the applied
revision and two seams: ``get_live`` (the object as the cluster has it, or None) and ``apply``
(server-side apply as field manager ``upkeep``). For each object it compares the live object with
git on the fields Upkeep manages (``gitops.drift``):

- a field that differs is reported in ``status.drift[].fields``; an object that is gone is reported
  with ``missing: true``;
- a field under an active override (``status.overrides``, written when a setOverride step holds a
  value such as a raised memory limit) is reported in ``overridden`` and is not drift: the value to
  keep is the override's, so that is what self-heal re-applies (``drift.heal_body``);
- with ``spec.selfHeal`` (and not in the operator's dry run) a drifted object is re-applied at once;
- an override past ``expiresAt`` is returned in ``expired_overrides`` so the caller drops it from
  ``status.overrides``; from then on git's value is the desired one again, and self-heal applies it.

Events on the Release: ``DriftDetected`` (Warning) when the set of drifted objects and fields differs
from the ``status.drift`` the previous pass left (the caller writes ``DriftOutcome.drift`` there), so
a drift that persists is announced once, not at every interval; ``DriftResolved`` when it is gone
without Upkeep's doing; ``SelfHealed`` naming what was re-applied; ``SelfHealFailed`` (Warning);
``OverrideExpired``. They name objects and field paths, never values: a drifted field may be a
Secret's.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from upkeep.controllers import events as events_
from upkeep.gitops import drift

__all__ = ["DriftOutcome", "PostEvent", "reconcile_drift"]

logger = logging.getLogger(__name__)

PostEvent = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""

_NAMED = 5
"""How many objects an Event names before it says "and N more" (an Event message is kept short)."""
_FIELDS = 4
"""How many field paths of one object an Event names."""
_ERROR_CHARS = 300
"""How much of an API error a SelfHealFailed Event keeps."""


@dataclass(frozen=True)
class DriftOutcome:
    """What one comparison found and did; the caller writes ``drift`` to ``status.drift``."""

    drift: list[dict[str, Any]]
    """Items of ``status.drift``: ``{object, fields, overridden}`` (and ``missing: true`` for a deleted object)."""
    healed: list[str]
    """``Kind/namespace/name`` of each object re-applied by self-heal."""
    expired_overrides: list[str]
    """Ids of the overrides in ``status.overrides`` that have expired: the caller removes them."""
    failed: list[str] = field(default_factory=list)
    """``Kind/namespace/name: why`` of each object self-heal could not re-apply."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _signature(items: Sequence[Any]) -> frozenset[tuple[Any, ...]]:
    """The drifted objects and fields of ``status.drift`` items, whatever their order; overridden fields
    are not drift and do not count."""
    found: set[tuple[Any, ...]] = set()
    for item in items:
        entry = _mapping(item)
        key = drift.ObjectKey.of(_object_body(entry))
        fields = tuple(sorted(str(path) for path in entry.get("fields") or []))
        if fields or entry.get("missing"):
            found.add((key.kind, key.namespace, key.name, fields, bool(entry.get("missing"))))
    return frozenset(found)


def _object_body(entry: Mapping[str, Any]) -> dict[str, Any]:
    ref = _mapping(entry.get("object"))
    metadata = {"namespace": ref.get("namespace") or "", "name": ref.get("name") or ""}
    return {"apiVersion": ref.get("apiVersion") or "", "kind": ref.get("kind") or "", "metadata": metadata}


def _describe(items: Sequence[Mapping[str, Any]]) -> str:
    """``Deployment/shop/web (spec.replicas, ...); ConfigMap/shop/cfg (missing) and 2 more``."""
    parts = []
    for item in items[:_NAMED]:
        key = drift.ObjectKey.of(_object_body(item))
        fields = [str(path) for path in item.get("fields") or []]
        shown = ", ".join(fields[:_FIELDS]) + (f" and {len(fields) - _FIELDS} more" if len(fields) > _FIELDS else "")
        parts.append(f"{key} (missing)" if item.get("missing") else f"{key} ({shown})")
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    return "; ".join(parts) + more


def _time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def reconcile_drift(
    release: Mapping[str, Any],
    desired: Sequence[Mapping[str, Any]],
    *,
    get_live: Callable[[Mapping[str, Any]], Awaitable[dict[str, Any] | None]],
    apply: Callable[[Mapping[str, Any]], Awaitable[object]],
    now: datetime.datetime,
    dry_run: bool,
    post_event: PostEvent | None = None,
) -> DriftOutcome:
    """Compare each desired object with the live one, report drift, and self-heal when asked (module docstring)."""
    post = post_event or events_.post
    spec, status = _mapping(release.get("spec")), _mapping(release.get("status"))
    self_heal = spec.get("selfHeal") is True
    overrides = drift.parse_overrides(status.get("overrides"))
    active = [override for override in overrides if override.active(now)]
    expired = [override for override in overrides if not override.active(now)]

    items: list[dict[str, Any]] = []
    to_heal: list[tuple[drift.ObjectKey, dict[str, Any]]] = []
    for obj in desired:
        key = drift.ObjectKey.of(obj)
        held = drift.overrides_for(obj, active)
        wanted = drift.heal_body(obj, held)
        live = await get_live(obj)
        if live is None:
            items.append({"object": key.to_dict(), "fields": [], "overridden": [], "missing": True})
            to_heal.append((key, wanted))
            continue
        fields = [found.path for found in drift.drifted_fields(wanted, live)]
        overridden = sorted(
            {
                found.path
                for found in drift.drifted_fields(obj, live)
                if any(drift.covers(override.field_path, found.path) for override in held)
            }
        )
        if not fields and not overridden:
            continue
        items.append({"object": key.to_dict(), "fields": fields, "overridden": overridden})
        if fields:
            to_heal.append((key, wanted))

    drifted = [item for item in items if item["fields"] or item.get("missing")]
    before = _signature(list(status.get("drift") or []))
    now_seen = _signature(items)
    if drifted and now_seen != before:
        if dry_run:
            then = "not re-applied: the operator runs with --dry-run"
        elif self_heal:
            then = "self-heal re-applies git's state"
        else:
            then = "reported only: spec.selfHeal is off"
        post(release, "Warning", "DriftDetected", f"Live objects differ from git: {_describe(drifted)} ({then})")
    elif not drifted and before:
        post(release, "Normal", "DriftResolved", "Live objects match git again")

    healed: list[str] = []
    failed: list[str] = []
    if self_heal and not dry_run:
        for key, body in to_heal:
            try:
                await apply(body)
            except Exception as error:  # one object that cannot be applied must not stop the others
                logger.warning("Release: self-heal of %s failed: %s", key, error)
                failed.append(f"{key}: {str(error)[:_ERROR_CHARS]}")
                continue
            healed.append(str(key))
        if healed:
            healed_items = [item for item in drifted if str(drift.ObjectKey.of(_object_body(item))) in healed]
            post(release, "Normal", "SelfHealed", f"Re-applied git's state to {_describe(healed_items)}")
        if failed:
            post(release, "Warning", "SelfHealFailed", f"Could not re-apply git's state to {'; '.join(failed)}")

    for override in expired:
        if dry_run:
            applied = "git's value is not applied: the operator runs with --dry-run"
        elif self_heal:
            applied = "git's value is applied again"
        else:
            applied = "spec.selfHeal is off, so the held value stays, reported as drift, until the next sync"
        post(
            release,
            "Normal",
            "OverrideExpired",
            f"Override {override.id} of {override.field_path} on {override.target} expired at "
            f"{_time(override.expires_at) if override.expires_at.year > 1 else 'an unreadable time'}; {applied}",
        )
    return DriftOutcome(
        drift=items,
        healed=healed,
        expired_overrides=[override.id for override in expired],
        failed=failed,
    )
