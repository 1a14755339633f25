"""The node detector: NodeNotReady while a node's Ready condition is False or Unknown.

It wraps ``engine.signals.signals_from_node``. Nodes have no namespace: the caller says
where their incidents go. The Ready condition's ``lastTransitionTime`` is the episode, so a
node that comes back and fails again is a new occurrence of the same incident.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from upkeep.detectors import sightings
from upkeep.engine import signals
from upkeep.model import resources

__all__ = ["detect"]


def detect(node: Mapping[str, Any], now: datetime.datetime, *, namespace: str) -> sightings.Detection:
    """What the node shows now; its incidents go to ``namespace``."""
    view = resources.Resource(node)
    subject = resources.ObjectRef("Node", view.name, "", "v1")
    ready = view.condition("Ready")
    episode = ready.last_transition_time if ready is not None else ""
    instance = sightings.instance_of(node)
    found = signals.signals_from_node(node, now, namespace=namespace)
    return sightings.Detection(subject, tuple(sightings.Sighting(signal, instance, episode) for signal in found))
