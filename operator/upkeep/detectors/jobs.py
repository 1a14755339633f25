"""The Job detector: JobFailed once a Job's Failed condition is True.

It wraps ``engine.signals.signals_from_job``: the workload is the CronJob that owns the Job
(so every failed run of one CronJob is an occurrence of one incident), else the Job. Each
Job instance fails once.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from upkeep.detectors import sightings
from upkeep.engine import signals
from upkeep.model import resources

__all__ = ["detect"]


def detect(job: Mapping[str, Any], now: datetime.datetime) -> sightings.Detection:
    """What the Job shows now."""
    view = resources.Resource(job)
    subject = resources.ObjectRef("Job", view.name, view.namespace or "default", "batch/v1")
    failed = view.condition("Failed")
    episode = failed.last_transition_time if failed is not None else ""
    instance = sightings.instance_of(job)
    found = signals.signals_from_job(job, now)
    return sightings.Detection(subject, tuple(sightings.Sighting(signal, instance, episode) for signal in found))
