"""Notification channels as a SupportPolicy declares them (``spec.channels``), and who hears which event.

A channel is read with the CRD's defaults filled in (``key: url``, ``rateLimit.perMinute: 30``,
``retries.max: 5``, ``retries.backoff: 1s``), so a policy applied to a server that did not
default them (or read from a file) means the same. The URL is never in the policy: it is in a
Secret (``urlSecretRef``), read at the moment of sending and never kept, logged or recorded.

The errors::

    UpkeepError
    ├── SpecError
    │   └── ChannelError    the policy names no such channel, or one it cannot read
    └── SecretError         the channel's Secret, or its key, is missing or holds no URL

Both are terminal for one notification: retrying the same send cannot fix a policy or a
Secret, so the notification is recorded as Failed with the message, which names the field or
the Secret and key to fix.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upkeep.engine import durations, sla
from upkeep.model import errors

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_KEY",
    "DEFAULT_PER_MINUTE",
    "DEFAULT_RETRIES",
    "TYPES",
    "Channel",
    "ChannelError",
    "SecretError",
    "channel_named",
    "first_responders",
    "reached_channels",
    "url_from_secret",
]

TYPES = ("Webhook", "Slack")
"""The channel types of the CRD: generic JSON, and a Slack incoming-webhook message."""
DEFAULT_KEY = "url"
"""The key of the Secret's data that holds the URL, when ``urlSecretRef.key`` is absent (the CRD's default)."""
DEFAULT_PER_MINUTE = 30
"""Messages per minute, when ``rateLimit.perMinute`` is absent (the CRD's default)."""
DEFAULT_RETRIES = 5
"""Retries after the first attempt, when ``retries.max`` is absent (the CRD's default)."""
DEFAULT_BACKOFF = datetime.timedelta(seconds=1)
"""The wait before the first retry, when ``retries.backoff`` is absent (the CRD's default)."""


class ChannelError(errors.SpecError):
    """The SupportPolicy names a channel it does not declare, or declares one that cannot be read."""


class SecretError(errors.UpkeepError):
    """The Secret a channel names, or its key, is missing, or holds no http(s) URL."""


@dataclass(frozen=True)
class Channel:
    """One notification channel of a SupportPolicy."""

    name: str
    type: str
    """``Webhook`` or ``Slack``: which payload is posted."""
    secret_name: str
    """The Secret that holds the URL."""
    secret_key: str = DEFAULT_KEY
    """The key of the Secret's data that holds the URL."""
    per_minute: int = DEFAULT_PER_MINUTE
    """Messages per minute; more are dropped (recorded as Failed) and counted."""
    retries: int = DEFAULT_RETRIES
    """Retries of a failed delivery after the first attempt."""
    backoff: float = DEFAULT_BACKOFF.total_seconds()
    """Seconds before the first retry; doubled for each next one."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _integer(value: Any, default: int, field: str) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError(f"{field}: {value!r} is not a whole number", field=field)
    return value


def channel_named(policy_spec: Mapping[str, Any] | None, name: str, *, policy: str = "") -> Channel:
    """The channel ``name`` of the policy's ``spec.channels``; ``ChannelError`` names what is wrong."""
    items = _mapping(policy_spec).get("channels")
    where = f"SupportPolicy {policy}" if policy else "the SupportPolicy"
    for index, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, Mapping) or item.get("name") != name:
            continue
        base = f"spec.channels[{index}]"
        kind = item.get("type")
        if kind not in TYPES:
            raise ChannelError(f"{base}.type: {kind!r} is not one of {', '.join(TYPES)}", field=f"{base}.type")
        ref = _mapping(item.get("urlSecretRef"))
        if not ref.get("name"):
            raise ChannelError(f"{base}.urlSecretRef.name: the Secret is not named", field=f"{base}.urlSecretRef.name")
        rate = _mapping(item.get("rateLimit"))
        retries = _mapping(item.get("retries"))
        backoff_text = retries.get("backoff")
        try:
            backoff = durations.parse_duration(str(backoff_text)) if backoff_text else DEFAULT_BACKOFF
        except durations.DurationError as error:
            raise ChannelError(f"{base}.retries.backoff: {error}", field=f"{base}.retries.backoff") from None
        return Channel(
            name=name,
            type=str(kind),
            secret_name=str(ref["name"]),
            secret_key=str(ref.get("key") or DEFAULT_KEY),
            per_minute=max(1, _integer(rate.get("perMinute"), DEFAULT_PER_MINUTE, f"{base}.rateLimit.perMinute")),
            retries=max(0, _integer(retries.get("max"), DEFAULT_RETRIES, f"{base}.retries.max")),
            backoff=backoff.total_seconds(),
        )
    raise ChannelError(f"{where} has no channel named {name!r} in spec.channels", field="spec.channels")


def _declared(policy_spec: Mapping[str, Any] | None) -> tuple[str, ...]:
    items = _mapping(policy_spec).get("channels")
    found = items if isinstance(items, list) else []
    return tuple(str(item.get("name")) for item in found if isinstance(item, Mapping) and item.get("name"))


def _levels(policy_spec: Mapping[str, Any] | None) -> tuple[sla.Level, ...]:
    try:
        return sla.escalation_levels(_mapping(policy_spec))
    except errors.SpecError:
        return ()


def first_responders(policy_spec: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Who hears of an incident first: the channels of the lowest escalation level, else every channel.

    A policy that escalates names its first line in its first level; one without levels has
    no line to keep later channels out of, so all of them hear.
    """
    levels = _levels(policy_spec)
    if levels:
        return levels[0].channels
    return _declared(policy_spec)


def reached_channels(policy_spec: Mapping[str, Any] | None, level: int) -> tuple[str, ...]:
    """The first responders and the channels of every escalation level up to ``level``, each once, in order."""
    names = list(first_responders(policy_spec))
    for item in _levels(policy_spec):
        if item.level <= level:
            names.extend(name for name in item.channels if name not in names)
    return tuple(names)


def url_from_secret(secret: Mapping[str, Any] | None, channel: Channel, namespace: str) -> str:
    """The URL the channel's Secret holds (``data``, base64, as the API server returns it; or ``stringData``).

    ``SecretError`` names the Secret and the key, never the value.
    """
    where = f"Secret {namespace}/{channel.secret_name}"
    if secret is None:
        raise SecretError(f"{where} (urlSecretRef of channel {channel.name}) was not found")
    encoded = _mapping(secret.get("data")).get(channel.secret_key)
    plain = _mapping(secret.get("stringData")).get(channel.secret_key)
    if encoded is None and plain is None:
        raise SecretError(f"{where} has no key {channel.secret_key!r} (urlSecretRef.key of channel {channel.name})")
    if encoded is not None:
        try:
            text = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise SecretError(f"{where} key {channel.secret_key!r} is not base64 of UTF-8 text") from None
    else:
        text = str(plain)
    url = text.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SecretError(f"{where} key {channel.secret_key!r} holds no http(s) URL")
    return url
