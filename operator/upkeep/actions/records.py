"""The Kubernetes Event each action leaves on what it changed, named from the idempotency key.

``kubectl describe deployment shop`` then shows "RolledBack ... by playbook step <key>" next to
the Deployment controller's own Events. The Event is named from the key, so writing it again after
a restart finds it instead of adding a second one, and an action that must remember what it chose
before acting (deletePod: the uids of the pods it deletes) keeps that choice in the Event's
annotations, written before the change: after a restart ``already_done`` and ``verify`` read it
back. Nothing is written in a dry run. The PlaybookRun's status and the Incident's Events are the
controller's; this is the record on the object acted on.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

from upkeep.actions import base, targets

__all__ = ["COMPONENT", "DATA_ANNOTATION", "event_name", "read", "record"]

COMPONENT = "upkeep"
"""The Event's source and reporting component."""
DATA_ANNOTATION = "upkeep.dev/action-data"
"""The Event annotation that holds what the action chose (JSON), for a restart to read back."""


def event_name(key: str) -> str:
    """The Event's name for a step's key."""
    return targets.name_from_key("upkeep-action", key)


def _namespace(regarding: Mapping[str, Any]) -> str:
    # Events about cluster-scoped objects (a Node) live in "default", as the API server requires.
    namespace = (regarding.get("metadata") or {}).get("namespace") or regarding.get("namespace")
    return str(namespace) if namespace else "default"


async def record(
    ctx: base.ActionContext,
    action: str,
    regarding: Mapping[str, Any],
    reason: str,
    message: str,
    *,
    data: Mapping[str, Any] | None = None,
    warning: bool = False,
) -> None:
    """Write the step's Event about ``regarding`` (an object body) unless it exists; nothing in a dry run."""
    if ctx.dry_run:
        return
    metadata = regarding.get("metadata") or {}
    namespace = _namespace(regarding)
    name = event_name(ctx.key)
    if await ctx.cluster.get("v1", "Event", namespace, name) is not None:
        return
    when = ctx.now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    annotations = {base.ACTION_KEY_ANNOTATION: ctx.key}
    if data is not None:
        annotations[DATA_ANNOTATION] = json.dumps(data, sort_keys=True)
    incident = (ctx.incident.get("metadata") or {}).get("name")
    if incident:
        annotations["upkeep.dev/incident"] = str(incident)
    involved = {
        "apiVersion": regarding.get("apiVersion", ""),
        "kind": regarding.get("kind", ""),
        "name": metadata.get("name", ""),
        "namespace": metadata.get("namespace", ""),
        "uid": metadata.get("uid", ""),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"upkeep.dev/action": action},
            "annotations": annotations,
        },
        "involvedObject": {key: value for key, value in involved.items() if value},
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "action": action,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": when,
        "lastTimestamp": when,
        "count": 1,
    }
    try:
        await ctx.cluster.create(body)
    except Exception as error:
        if getattr(error, "status", None) != 409:  # written meanwhile: the record is there, as wanted
            raise


async def read(ctx: base.ActionContext, namespace: str) -> dict[str, Any] | None:
    """The data the step's Event holds (``record(..., data=...)``), or None when there is no such Event."""
    found = await ctx.cluster.get("v1", "Event", namespace or "default", event_name(ctx.key))
    if found is None:
        return None
    text = ((found.get("metadata") or {}).get("annotations") or {}).get(DATA_ANNOTATION)
    if not text:
        return {}
    data = json.loads(text)
    return dict(data) if isinstance(data, Mapping) else {}
