"""deletePod: delete the incident's pod (or the pods a selector picks) so that its controller replaces it.

Idempotency: the pods to delete are chosen once. Before deleting, the action writes its Event
(named from the key) with the chosen pods' names and uids; every delete carries the uid as a
precondition. After a restart ``already_done`` reads the Event back: when every recorded pod is gone
or going, the step is done. A second ``run`` with the same key deletes only the recorded pods that
are still there, never their replacements (which a fresh selector match would pick).

Verification: every recorded pod is gone, and each owner has as many pods again as it wants
(pods replaced; whether they are healthy is the Playbook's verification).
Dry run: each delete is sent with ``dryRun=All``; nothing is deleted and no Event written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deadlines, impact, records, targets

__all__ = ["DeletePod", "impact_of"]

NAME = "deletePod"


async def _chosen(ctx: base.ActionContext) -> list[dict[str, Any]]:
    """The pods to delete now: those the selector picks, else the incident's affected pods (not those going)."""
    selector = ctx.params.get("selector")
    if selector:
        found = await ctx.cluster.list("v1", "Pod", ctx.namespace, label_selector=str(selector))
    else:
        found = []
        for ref in ctx.affected:
            if ref.kind == "Pod":
                pod = await ctx.cluster.get("v1", "Pod", ref.namespace or ctx.namespace, ref.name)
                if pod is not None:
                    found.append(pod)
    pods = [pod for pod in found if not impact.is_terminating(pod)]
    if not pods:
        picked = f"selector {selector!r}" if selector else "the incident's affected objects"
        raise base.ActionFailed(f"no pod to delete: {picked} name no running pod in {ctx.namespace}")
    return sorted(pods, key=lambda pod: str(pod["metadata"]["name"]))


def _entry(pod: Mapping[str, Any]) -> dict[str, Any]:
    metadata = pod.get("metadata") or {}
    entry = {"name": metadata.get("name"), "namespace": metadata.get("namespace"), "uid": metadata.get("uid")}
    owner = targets.owner(pod)
    if owner is not None:
        entry["owner"] = {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"), "name": owner.get("name")}
    return entry


def _names(entries: list[dict[str, Any]]) -> str:
    return ", ".join(f"pod {entry['namespace']}/{entry['name']} (uid {entry['uid']})" for entry in entries)


async def _recorded(ctx: base.ActionContext) -> list[dict[str, Any]] | None:
    data = await records.read(ctx, ctx.namespace)
    if data is None:
        return None
    return [dict(entry) for entry in data.get("pods") or []]


async def _still_there(ctx: base.ActionContext, entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    pod = await ctx.cluster.get("v1", "Pod", str(entry["namespace"]), str(entry["name"]))
    if pod is None or (pod.get("metadata") or {}).get("uid") != entry.get("uid"):
        return None
    return pod


async def impact_of(ctx: base.ActionContext) -> tuple[impact.Impact, ...]:
    """What deleting the pods would leave: (ready, desired, removing) per workload, for the minHealthy guard."""
    return await impact.of_pods(ctx, await _chosen(ctx))


class DeletePod:
    """The ``deletePod`` action (see the module docstring)."""

    name = NAME

    async def describe(self, ctx: base.ActionContext) -> str:
        entries = await _recorded(ctx) or [_entry(pod) for pod in await _chosen(ctx)]
        return f"Delete {_names(entries)} so that its controller replaces it."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        entries = await _recorded(ctx)
        if entries is None:
            return None
        for entry in entries:
            pod = await _still_there(ctx, entry)
            if pod is not None and not impact.is_terminating(pod):
                return None
        return base.Outcome("Succeeded", f"Deleted {_names(entries)}.", {"pods": entries})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        entries = await _recorded(ctx)
        if entries is None:
            pods = await _chosen(ctx)
            entries = [_entry(pod) for pod in pods]
            regarding = pods[0]
            if ctx.workload is not None:
                ref = targets.workload(ctx)
                regarding = await ctx.cluster.get(ref.api_version, ref.kind, ref.namespace, ref.name) or regarding
            # The choice is recorded before the first delete: a restart deletes these, never their replacements.
            await records.record(
                ctx, NAME, regarding, "PodsDeleted", f"Upkeep deletes {_names(entries)}.", data={"pods": entries}
            )
        deleted = []
        for entry in entries:
            gone = await ctx.cluster.delete(
                "v1", "Pod", str(entry["namespace"]), str(entry["name"]), uid=str(entry["uid"]), dry_run=ctx.dry_run
            )
            if gone:
                deleted.append(entry)
        verb = "Would delete" if ctx.dry_run else "Deleted"
        return base.Outcome("Succeeded", f"{verb} {_names(entries)}.", {"pods": entries, "deleted": len(deleted)})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        entries = await _recorded(ctx)
        if entries is None:
            return base.Outcome("Failed", "no record of the pods this step deleted (its Event is missing)")
        for entry in entries:
            if await _still_there(ctx, entry) is not None:
                return deadlines.undecided(ctx, f"pod {entry['namespace']}/{entry['name']} is still there")
        for entry in entries:
            owner = entry.get("owner")
            if not owner:
                continue
            namespace = str(entry["namespace"])
            found = await ctx.cluster.get(str(owner["apiVersion"]), str(owner["kind"]), namespace, str(owner["name"]))
            if found is None:
                continue
            wanted = int((found.get("spec") or {}).get("replicas", 1) or 0)
            uid = (found.get("metadata") or {}).get("uid")
            pods = await ctx.cluster.list("v1", "Pod", namespace)
            owned = [
                pod
                for pod in pods
                if not impact.is_terminating(pod)
                and any(ref.get("uid") == uid for ref in (pod.get("metadata") or {}).get("ownerReferences") or [])
            ]
            if owner["kind"] in ("ReplicaSet", "StatefulSet", "ReplicationController") and len(owned) < wanted:
                return deadlines.undecided(ctx, f"{owner['kind']} {owner['name']} has {len(owned)} of {wanted} pods")
        return base.Outcome("Succeeded", f"Replaced {_names(entries)}.", {"pods": entries})
