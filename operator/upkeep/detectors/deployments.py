"""The Deployment detector: ProgressDeadlineExceeded and DeploymentUnavailable (after a grace).

It wraps ``engine.signals.signals_from_deployment``. A Deployment is its own workload; the
failed condition's ``lastTransitionTime`` is the episode, so a Deployment that recovers and
fails again is a new occurrence. While ``Available=False`` has not lasted the grace yet, the
detection says when it will have.

These signals are often the symptom of a pod-level cause (crash-looping pods make their
Deployment unavailable); ``symptoms`` says which to leave out when the caller knows the
workload shows such a cause.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from upkeep.detectors import sightings
from upkeep.engine import signals, sla
from upkeep.model import resources

__all__ = ["detect", "symptoms"]


def detect(
    deployment: Mapping[str, Any],
    now: datetime.datetime,
    *,
    unavailable_grace: datetime.timedelta,
) -> sightings.Detection:
    """What the Deployment shows now, and when its unavailability will have lasted the grace."""
    view = resources.Resource(deployment)
    subject = resources.ObjectRef("Deployment", view.name, view.namespace or "default", "apps/v1")
    found = signals.signals_from_deployment(deployment, now, unavailable_grace=unavailable_grace)
    instance = sightings.instance_of(deployment)
    episodes = {
        "ProgressDeadlineExceeded": view.condition("Progressing"),
        "DeploymentUnavailable": view.condition("Available"),
    }
    seen = []
    for signal in found:
        condition = episodes.get(signal.type)
        episode = condition.last_transition_time if condition is not None else ""
        seen.append(sightings.Sighting(signal, instance, episode))
    recheck: datetime.datetime | None = None
    available = view.condition("Available")
    if (
        available is not None
        and available.status == "False"
        and not any(signal.type == "DeploymentUnavailable" for signal in found)
    ):
        since = sla.parse_time(available.last_transition_time)
        if since is not None and since + unavailable_grace > now:
            recheck = since + unavailable_grace
    return sightings.Detection(subject, tuple(seen), recheck)


def symptoms(detection: sightings.Detection, has_cause: Callable[[resources.ObjectRef], bool]) -> sightings.Detection:
    """The detection less the Deployment-level signals of workloads where ``has_cause`` sees a pod-level cause.

    One incident (the cause) is opened rather than one per symptom, as
    ``engine.signals.without_symptoms`` does for signals seen together.
    """
    kept = tuple(
        sighting
        for sighting in detection.sightings
        if not (
            sighting.signal.type in signals.WORKLOAD_TYPES
            and sighting.signal.workload is not None
            and has_cause(sighting.signal.workload)
        )
    )
    return sightings.Detection(detection.subject, kept, detection.recheck_at)
