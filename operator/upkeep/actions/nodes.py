"""cordonNode and drainNode: take a node out of scheduling, and move its pods off it through the Eviction API.

cordonNode sets ``spec.unschedulable`` and the idempotency key on the Node in one patch.

drainNode does what ``kubectl drain --ignore-daemonsets`` does: cordon (with the key, in the same
write), then evict every pod on the node except DaemonSet pods (their controller would put them
back) and mirror pods (the kubelet owns them), through the Eviction API so that
PodDisruptionBudgets are honoured. A refusal (429) is tried again every ``EVICTION_RETRY`` seconds
until ``params.timeout`` (default: the step's timeout) has passed since the step started; then
the step fails, naming the budget and its numbers. ``params.gracePeriod`` (a duration, whole seconds,
rounded up) goes into each Eviction as ``deleteOptions.gracePeriodSeconds``, as ``kubectl drain
--grace-period`` sends it; without it each pod gets its own ``terminationGracePeriodSeconds``.

Idempotency: the key on the Node says the drain began; it is done when no pod to evict is left.
A second run evicts only what is still there and does not patch the Node again.
Verification: the node is unschedulable and the evicted pods are gone (not just terminating).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, deadlines, impact, records, selectors, targets
from upkeep.engine import durations
from upkeep.model import resources

__all__ = ["EVICTION_RETRY", "CordonNode", "DrainNode", "evictable", "grace_period_seconds", "impact_of"]

EVICTION_RETRY = 1.0
"""Seconds between eviction attempts a PodDisruptionBudget refused (kubectl drain waits 5 s; a step is short)."""
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def evictable(pod: Mapping[str, Any]) -> bool:
    """Whether a drain evicts this pod: not a DaemonSet's, not a mirror pod, not going already."""
    metadata = pod.get("metadata") or {}
    if MIRROR_ANNOTATION in (metadata.get("annotations") or {}):
        return False
    if impact.is_terminating(pod):
        return False
    owner = targets.owner(pod)
    return not (owner is not None and owner.get("kind") == "DaemonSet")


def grace_period_seconds(params: Mapping[str, Any]) -> int | None:
    """``params.gracePeriod`` in whole seconds for the Eviction (rounded up: a pod never gets less); None unset."""
    given = params.get("gracePeriod")
    if given is None or given == "":
        return None
    return math.ceil(durations.parse_duration(str(given)).total_seconds())


def _pod_name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


async def _pods_on(ctx: base.ActionContext, node: resources.ObjectRef) -> list[dict[str, Any]]:
    return await ctx.cluster.list("v1", "Pod", "", field_selector=f"spec.nodeName={node.name}")


async def _cordon(ctx: base.ActionContext, node: resources.ObjectRef) -> dict[str, Any] | None:
    """Cordon the node with the key; None when it carries the key and is cordoned already (no second write)."""
    found = await ctx.cluster.get("v1", "Node", "", node.name)
    if found is None:
        raise base.ActionFailed(f"node {node.name} does not exist")
    if targets.key_annotation(found) == ctx.key and (found.get("spec") or {}).get("unschedulable"):
        return None
    patch = {"metadata": {"annotations": {base.ACTION_KEY_ANNOTATION: ctx.key}}, "spec": {"unschedulable": True}}
    return await ctx.cluster.patch("v1", "Node", "", node.name, patch, dry_run=ctx.dry_run)


class CordonNode:
    """The ``cordonNode`` action (see the module docstring)."""

    name = "cordonNode"

    async def describe(self, ctx: base.ActionContext) -> str:
        node = await targets.node(ctx)
        return f"Cordon node {node.name} (spec.unschedulable: true) so that no new pod is scheduled on it."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        node = await targets.node(ctx)
        found = await ctx.cluster.get("v1", "Node", "", node.name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        await records.record(ctx, self.name, found, "Cordoned", f"Upkeep cordoned node {node.name} ({ctx.key}).")
        return base.Outcome("Succeeded", f"Cordoned node {node.name}.", {"node": node.name})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        node = await targets.node(ctx)
        written = await _cordon(ctx, node)
        if written is not None:
            await records.record(ctx, self.name, written, "Cordoned", f"Upkeep cordoned node {node.name} ({ctx.key}).")
        verb = "Would cordon" if ctx.dry_run else "Cordoned"
        return base.Outcome("Succeeded", f"{verb} node {node.name}.", {"node": node.name})

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        node = await targets.node(ctx)
        found = await ctx.cluster.get("v1", "Node", "", node.name)
        if found is not None and (found.get("spec") or {}).get("unschedulable"):
            return base.Outcome("Succeeded", f"node {node.name} is unschedulable", {"node": node.name})
        return base.Outcome("Failed", f"node {node.name} is schedulable again (uncordoned since)", {"node": node.name})


async def impact_of(ctx: base.ActionContext) -> tuple[impact.Impact, ...]:
    """What draining would leave: (ready, desired, removing) per workload with pods on the node."""
    node = await targets.node(ctx)
    return await impact.of_pods(ctx, [pod for pod in await _pods_on(ctx, node) if evictable(pod)])


async def _budget_refusal(ctx: base.ActionContext, pod: Mapping[str, Any]) -> str:
    """Which PodDisruptionBudget refused the pod's eviction, in words (its name and numbers)."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace", ""))
    for budget in await ctx.cluster.list("policy/v1", "PodDisruptionBudget", namespace):
        if selectors.matches((budget.get("spec") or {}).get("selector"), metadata.get("labels")):
            status = budget.get("status") or {}
            return (
                f"evicting pod {_pod_name(pod)} would violate PodDisruptionBudget {namespace}/"
                f"{budget['metadata']['name']} (it needs {status.get('desiredHealthy', '?')} healthy pods "
                f"and has {status.get('currentHealthy', '?')})"
            )
    return f"the eviction of pod {_pod_name(pod)} was refused (429) by a disruption budget"


class DrainNode:
    """The ``drainNode`` action (see the module docstring)."""

    name = "drainNode"

    def _timeout(self, ctx: base.ActionContext) -> float:
        given = ctx.params.get("timeout")
        limit = durations.parse_duration(str(given)) if given else ctx.timeout
        return max(0.0, (limit - deadlines.elapsed(ctx)).total_seconds())

    async def describe(self, ctx: base.ActionContext) -> str:
        node = await targets.node(ctx)
        pods = [_pod_name(pod) for pod in await _pods_on(ctx, node) if evictable(pod)]
        listed = ", ".join(pods) or "no pods"
        grace = grace_period_seconds(ctx.params)
        stop = f", each pod given {grace} s to stop" if grace is not None else ""
        return f"Cordon node {node.name} and evict its pods through the Eviction API, honouring PDBs{stop}: {listed}."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        node = await targets.node(ctx)
        found = await ctx.cluster.get("v1", "Node", "", node.name)
        if found is None or targets.key_annotation(found) != ctx.key:
            return None
        await records.record(ctx, self.name, found, "Draining", f"Upkeep drains node {node.name} ({ctx.key}).")
        if any(evictable(pod) for pod in await _pods_on(ctx, node)):
            return None
        return base.Outcome("Succeeded", f"Drained node {node.name}.", {"node": node.name})

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        node = await targets.node(ctx)
        written = await _cordon(ctx, node)
        if written is not None:
            await records.record(ctx, self.name, written, "Draining", f"Upkeep drains node {node.name} ({ctx.key}).")
        deadline = time.monotonic() + self._timeout(ctx)
        grace = grace_period_seconds(ctx.params)
        evicted: list[str] = []
        remaining = [pod for pod in await _pods_on(ctx, node) if evictable(pod)]
        while True:
            refused: list[dict[str, Any]] = []
            for pod in remaining:
                metadata = pod["metadata"]
                done = await ctx.cluster.evict(
                    str(metadata["namespace"]), str(metadata["name"]), dry_run=ctx.dry_run, grace_period_seconds=grace
                )
                if done:
                    evicted.append(_pod_name(pod))
                else:
                    refused.append(pod)
            if not refused:
                break
            if ctx.dry_run or time.monotonic() >= deadline:
                reason = await _budget_refusal(ctx, refused[0])
                if ctx.dry_run:
                    return base.Outcome(
                        "Succeeded",
                        f"Would drain node {node.name}, but {reason}.",
                        {"node": node.name, "evicted": evicted, "refused": [_pod_name(pod) for pod in refused]},
                    )
                raise base.ActionFailed(f"drain of node {node.name} stopped: {reason}")
            await asyncio.sleep(min(EVICTION_RETRY, max(0.0, deadline - time.monotonic())))
            remaining = refused
        verb = "Would drain" if ctx.dry_run else "Drained"
        return base.Outcome(
            "Succeeded",
            f"{verb} node {node.name}: evicted {len(evicted)} pods.",
            {"node": node.name, "evicted": evicted},
        )

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        node = await targets.node(ctx)
        found = await ctx.cluster.get("v1", "Node", "", node.name)
        if found is None or not (found.get("spec") or {}).get("unschedulable"):
            return base.Outcome("Failed", f"node {node.name} is schedulable again (uncordoned since)")
        left = [
            _pod_name(pod)
            for pod in await _pods_on(ctx, node)
            if evictable({**pod, "metadata": {**pod["metadata"], "deletionTimestamp": None}})
        ]
        if left:
            return deadlines.undecided(ctx, f"node {node.name} still has pods: {', '.join(left)}", {"node": node.name})
        return base.Outcome("Succeeded", f"node {node.name} is drained", {"node": node.name})
