"""The pod detector: CrashLoopBackOff, ImagePullBackOff, OOMKilled and Unschedulable, with the owning workload.

It wraps ``engine.signals.signals_from_pod``, adding what the engine leaves to its caller:

- the owner chain. A pod's controller is followed up through ``lookup`` (pod → ReplicaSet
  → Deployment, pod → Job → CronJob, pod → StatefulSet), nearest first; the outermost owner
  is the workload, and its labels are the signal's labels. ``lookup`` is any callable from
  an ``ObjectRef`` to the body it names (the controller passes its watch caches), so there
  is no I/O here. An owner ``lookup`` does not know ends the chain: a workload (anything but
  a ReplicaSet) is kept, a ReplicaSet is left out, so that the engine reads its Deployment
  from the ReplicaSet's name (``<deployment>-<pod-template-hash>``) and fingerprints do not
  depend on whether a cache was warm.
- occurrences: a pod's container restarts (init containers included) are its failure
  counter, so each restart of a crash-looping pod is one more occurrence.
- when to look again: when an unschedulable pod's grace ends, and when an OOM kill leaves
  the lookback.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from upkeep.detectors import sightings
from upkeep.engine import signals, sla
from upkeep.model import resources

__all__ = ["MAX_OWNER_DEPTH", "OwnerLookup", "detect", "owner_chain", "restarts"]

OwnerLookup = Callable[[resources.ObjectRef], Mapping[str, Any] | None]
"""The body of the object a reference names (at least its metadata: labels and
ownerReferences), or None when it is not known."""

MAX_OWNER_DEPTH = 4
"""Owners followed at most: pod → ReplicaSet → Deployment needs two; a loop in ownerReferences must end."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _controller(metadata: Mapping[str, Any], namespace: str) -> resources.ObjectRef | None:
    found = metadata.get("ownerReferences")
    for item in found if isinstance(found, list) else ():
        if isinstance(item, Mapping) and item.get("controller") and item.get("kind") and item.get("name"):
            return resources.ObjectRef(str(item["kind"]), str(item["name"]), namespace, str(item.get("apiVersion", "")))
    return None


def _chain(pod: Mapping[str, Any], lookup: OwnerLookup) -> list[tuple[resources.ObjectRef, Mapping[str, Any] | None]]:
    view = resources.Resource(pod)
    namespace = view.namespace or "default"
    out: list[tuple[resources.ObjectRef, Mapping[str, Any] | None]] = []
    seen: set[resources.ObjectRef] = set()
    metadata = view.metadata
    while len(out) < MAX_OWNER_DEPTH:
        owner = _controller(metadata, namespace)
        if owner is None or owner in seen:
            break
        seen.add(owner)
        body = lookup(owner)
        if body is None:
            if owner.kind != "ReplicaSet":
                out.append((owner, None))
            break
        out.append((owner, body))
        metadata = _mapping(body.get("metadata"))
    return out


def owner_chain(pod: Mapping[str, Any], lookup: OwnerLookup) -> list[resources.ObjectRef]:
    """The pod's controllers, nearest first, as far as ``lookup`` knows them (see the module's docstring)."""
    return [ref for ref, _ in _chain(pod, lookup)]


def restarts(pod: Mapping[str, Any]) -> int:
    """The restarts of all the pod's containers, init containers included."""
    status = _mapping(pod.get("status"))
    total = 0
    for key in ("initContainerStatuses", "containerStatuses"):
        found = status.get(key)
        for item in found if isinstance(found, list) else ():
            if isinstance(item, Mapping):
                try:
                    total += int(item.get("restartCount") or 0)
                except (TypeError, ValueError):
                    continue
    return total


def _recheck_at(
    pod: Mapping[str, Any],
    now: datetime.datetime,
    unschedulable_grace: datetime.timedelta,
    failure_lookback: datetime.timedelta | None,
) -> datetime.datetime | None:
    """When the pod's signals may change by the clock alone: an Unschedulable grace ending, a failure ageing out."""
    view = resources.Resource(pod)
    moments: list[datetime.datetime | None] = []
    scheduled = view.condition("PodScheduled")
    if scheduled is not None and scheduled.status == "False" and scheduled.reason == "Unschedulable":
        since = sla.parse_time(scheduled.last_transition_time)
        if since is not None and since + unschedulable_grace > now:
            moments.append(since + unschedulable_grace)
    if failure_lookback is not None:
        status = view.status
        for key in ("initContainerStatuses", "containerStatuses"):
            found = status.get(key)
            for item in found if isinstance(found, list) else ():
                last = _mapping(_mapping(_mapping(item).get("lastState")).get("terminated"))
                crashed = int(last.get("exitCode") or 0) != 0 and last.get("reason") != "Completed"
                if last.get("reason") != "OOMKilled" and not crashed:
                    continue
                finished = sla.parse_time(last.get("finishedAt"))
                if finished is not None and finished + failure_lookback > now:
                    moments.append(finished + failure_lookback)
    return sightings.earliest(moments)


def detect(
    pod: Mapping[str, Any],
    lookup: OwnerLookup,
    now: datetime.datetime,
    *,
    unschedulable_grace: datetime.timedelta,
    failure_lookback: datetime.timedelta | None = None,
) -> sightings.Detection:
    """What the pod shows now, each signal of its workload, and when to look again."""
    view = resources.Resource(pod)
    namespace = view.namespace or "default"
    subject = resources.ObjectRef("Pod", view.name, namespace, "v1")
    chain = _chain(pod, lookup)
    owners: Sequence[resources.ObjectRef] = [ref for ref, _ in chain]
    workload_labels: Mapping[str, str] | None = None
    if chain and chain[-1][1] is not None:
        labels = _mapping(_mapping(_mapping(chain[-1][1]).get("metadata")).get("labels"))
        workload_labels = {str(key): str(value) for key, value in labels.items()}
    found = signals.signals_from_pod(
        pod,
        owners,
        now,
        unschedulable_grace=unschedulable_grace,
        failure_lookback=failure_lookback,
        workload_labels=workload_labels,
    )
    instance = sightings.instance_of(pod)
    count = restarts(pod)
    seen = tuple(sightings.Sighting(signal, instance, "", count) for signal in found)
    recheck = (
        None if view.metadata.get("deletionTimestamp") else _recheck_at(pod, now, unschedulable_grace, failure_lookback)
    )
    return sightings.Detection(subject, seen, recheck)
