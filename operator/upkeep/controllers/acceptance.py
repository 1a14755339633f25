"""The acceptance controller: every Upkeep kind until its own controller exists (Incident has one).

It checks each new generation of an object (``engine.acceptance``) and writes the honest
status: ``Accepted`` with the verdict, and ``Ready=Unknown``/``NotReconciled`` for a valid
object, because no controller of this version acts on it yet. An invalid spec gets a
Warning Event naming the field; a valid one a Normal Event once per generation.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.engine import acceptance
from upkeep.model import schemas

__all__ = ["register"]

logger = logging.getLogger(__name__)


async def _accept(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    verdict = acceptance.assess(body)
    status = acceptance.status_patch(body, verdict)
    for key, value in status.items():
        patch.status[key] = value
    if verdict.accepted:
        kopf.info(body, reason=verdict.reason, message=verdict.message)
    else:
        kopf.warn(body, reason=verdict.reason, message=verdict.message)


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Accept every kind of ``crds/`` but those in ``skip`` (which have their own controller) on create, on spec
    change and on operator start."""
    for resource in schemas.load():
        if resource.kind in skip:
            continue
        plural, handler_id = resource.plural, f"accept-{resource.singular}"
        kopf.on.resume(GROUP, VERSION, plural, id=handler_id, registry=registry)(_accept)
        kopf.on.create(GROUP, VERSION, plural, id=handler_id, registry=registry)(_accept)
        kopf.on.update(GROUP, VERSION, plural, id=handler_id, registry=registry, field="spec")(_accept)
