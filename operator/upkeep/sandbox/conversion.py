"""Resources served in two API groups but stored once, as in kube-apiserver.

Events are the case: ``events.k8s.io/v1`` Events are ``core/v1`` Events under other field
names (``regarding`` is ``involvedObject``, ``note`` is ``message``, ...). The sandbox stores
them in the core form and converts on the way in and out, so an Event written through either
group is read through both, and watches of either group see every write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["from_stored", "storage_key", "to_stored"]

_STORED_AS = {"events.k8s.io/events": "/events"}
# events.k8s.io/v1 field → core/v1 field
_EVENT_FIELDS = (
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
)
_SHARED = ("metadata", "reason", "type", "eventTime", "series", "action", "related", "reportingInstance")


def storage_key(group: str, plural: str) -> str:
    """The store's key for a resource: ``group/plural``, or the resource it is stored as."""
    key = f"{group}/{plural}"
    return _STORED_AS.get(key, key)


def _is_events_v1(group: str, plural: str) -> bool:
    return group == "events.k8s.io" and plural == "events"


def from_stored(group: str, version: str, plural: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """A stored object as the client asked for it (group, version)."""
    if not _is_events_v1(group, plural):
        return {**obj, "apiVersion": f"{group}/{version}" if group else version}
    out: dict[str, Any] = {"apiVersion": f"{group}/{version}", "kind": "Event"}
    for key in _SHARED:
        if key in obj:
            out[key] = obj[key]
    for new, old in _EVENT_FIELDS:
        if old in obj:
            out[new] = obj[old]
    if "series" in obj and isinstance(obj["series"], Mapping):
        series = dict(obj["series"])
        series.pop("state", None)
        out["series"] = series
    return out


def to_stored(group: str, plural: str, obj: Mapping[str, Any]) -> dict[str, Any]:
    """An object written through (group, plural) in the form it is stored in."""
    if not _is_events_v1(group, plural):
        return dict(obj)
    out: dict[str, Any] = {"apiVersion": "v1", "kind": "Event"}
    for key in _SHARED:
        if key in obj:
            out[key] = obj[key]
    for new, old in _EVENT_FIELDS:
        if new in obj:
            out[old] = obj[new]
    out.setdefault("involvedObject", {})
    return out
