"""Kubernetes Events about any object, posted through Kopf's queue: the audit record every controller writes.

Kopf posts in the background, per object in order, and retries; a controller only says which object,
whether it is Normal or Warning, a CamelCase reason and a message for people. Messages never carry a
secret (a token, a webhook URL, a drifted value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import kopf

__all__ = ["post"]


def post(body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Post an Event of ``type_`` (Normal or Warning) about the object ``body`` (a full body or a reference)."""
    kopf.event(kopf.Body(cast(kopf.RawBody, dict(body))), type=type_, reason=reason, message=message)
