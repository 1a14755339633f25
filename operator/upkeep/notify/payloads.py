"""What a notification says: the generic JSON of a Webhook channel and the message of a Slack channel.

Both are built from the Incident as written (``Facts``) and the event that notifies
(``Occasion``), so a notification resent after a restart says what the incident says then.
Neither carries anything secret: the URL is the channel's, never the payload's.

The generic JSON is versioned by ``kind`` and ``apiVersion`` so a receiver can tell it from
other webhooks; the Slack message is what Slack incoming webhooks take (``text`` as the
fallback and notification line, ``blocks`` for the layout), which Slack-compatible receivers
(Mattermost, Rocket.Chat) take as well.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from upkeep import API_VERSION
from upkeep.model import resources

__all__ = [
    "KIND",
    "Facts",
    "Occasion",
    "idempotency_key",
    "payload_for",
    "slack_payload",
    "webhook_payload",
]

KIND = "IncidentNotification"
"""The ``kind`` of the generic JSON payload."""

_HEADER_MAX = 150
"""Slack's limit on a header block's text."""
_TEXT_MAX = 3000
"""Slack's limit on a section block's text."""
_EMOJI = {
    "Opened": ":rotating_light:",
    "Reopened": ":repeat:",
    "SLABreached": ":hourglass:",
    "Escalated": ":mega:",
    "Resolved": ":white_check_mark:",
    "AutoResolved": ":white_check_mark:",
}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Occasion:
    """Why a notification is sent: one event of one incident, named by a key unique within the incident."""

    key: str
    """The event key (``opened``, ``sla-acknowledge``, ``escalated-1``, ...); with the uid, the idempotency key."""
    reason: str
    """The reason of the incident's Kubernetes Event (``Opened``, ``SLABreached``, ...)."""
    message: str = ""
    """The message of that Event."""
    level: int = 0
    """For ``Escalated``: the level reached."""
    breach: str = ""
    """For ``SLABreached``: ``acknowledge`` or ``resolve``."""


@dataclass(frozen=True)
class Facts:
    """The incident as a notification tells it."""

    name: str
    namespace: str
    uid: str
    severity: str
    phase: str
    summary: str
    service: str
    signal_type: str
    workload: Mapping[str, str]
    """kind, name and namespace of the workload; empty when the incident names none."""
    occurrences: int
    escalation_level: int
    sla: Mapping[str, Any]
    """acknowledgeBy, resolveBy and the breach flags, as ``status.sla`` has them."""
    first_seen: str
    last_seen: str

    @classmethod
    def from_incident(cls, body: Mapping[str, Any]) -> Facts:
        """The facts of an Incident body."""
        view = resources.Incident(body)
        status = view.status
        workload = view.workload
        return cls(
            name=view.name,
            namespace=view.namespace,
            uid=str(view.metadata.get("uid") or ""),
            severity=view.severity,
            phase=str(status.get("phase") or ""),
            summary=str(view.spec.get("summary") or ""),
            service=view.service,
            signal_type=view.signal_type,
            workload=(
                {"kind": workload.kind, "name": workload.name, "namespace": workload.namespace or view.namespace}
                if workload is not None
                else {}
            ),
            occurrences=view.occurrences,
            escalation_level=int(status.get("escalationLevel") or 0),
            sla={
                key: value
                for key, value in _mapping(status.get("sla")).items()
                if key in ("acknowledgeBy", "resolveBy", "acknowledgeBreached", "resolveBreached")
            },
            first_seen=str(status.get("firstSeen") or ""),
            last_seen=str(status.get("lastSeen") or ""),
        )

    @property
    def hint(self) -> str:
        """The command that shows the incident."""
        return f"kubectl get incident {self.name} -n {self.namespace}"


def idempotency_key(uid: str, key: str) -> str:
    """The ``Idempotency-Key`` header of a notification: the incident's uid and the event key."""
    return f"{uid}/{key}"


def webhook_payload(facts: Facts, occasion: Occasion) -> dict[str, Any]:
    """The generic JSON of a Webhook channel."""
    event: dict[str, Any] = {"key": occasion.key, "reason": occasion.reason, "message": occasion.message}
    if occasion.level:
        event["level"] = occasion.level
    if occasion.breach:
        event["breach"] = occasion.breach
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "idempotencyKey": idempotency_key(facts.uid, occasion.key),
        "event": event,
        "incident": {
            "name": facts.name,
            "namespace": facts.namespace,
            "uid": facts.uid,
            "severity": facts.severity,
            "phase": facts.phase,
            "summary": facts.summary,
            "service": facts.service,
            "signalType": facts.signal_type,
            "workload": dict(facts.workload),
            "occurrences": facts.occurrences,
            "escalationLevel": facts.escalation_level,
            "sla": dict(facts.sla),
            "firstSeen": facts.first_seen,
            "lastSeen": facts.last_seen,
        },
        "hint": facts.hint,
    }


def _escape(text: str) -> str:
    """Slack mrkdwn treats these three as control characters; everything else is literal."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(facts: Facts, occasion: Occasion) -> dict[str, Any]:
    """The message of a Slack channel: ``text`` for notifications and old clients, ``blocks`` for the layout."""
    emoji = _EMOJI.get(occasion.reason, ":warning:")
    title = f"[{facts.severity or 'SEV?'}] {occasion.reason}: {facts.name} ({facts.namespace})"
    text = f"{emoji} {_escape(title)}" + (f" — {_escape(facts.summary)}" if facts.summary else "")
    if occasion.message and facts.summary not in occasion.message:
        text += "\n" + _escape(occasion.message)  # what this occasion says (a playbook's message, a breach)
    fields = [
        ("Severity", facts.severity),
        ("Phase", facts.phase),
        ("Service", facts.service),
        ("Signal", facts.signal_type),
        ("Occurrences", str(facts.occurrences)),
        ("Escalation level", str(facts.escalation_level)),
    ]
    if facts.workload:
        fields.append(("Workload", f"{facts.workload.get('kind')}/{facts.workload.get('name')}"))
    if facts.sla.get("acknowledgeBy"):
        fields.append(("Acknowledge by", str(facts.sla["acknowledgeBy"])))
    if facts.sla.get("resolveBy"):
        fields.append(("Resolve by", str(facts.sla["resolveBy"])))
    body = "\n".join(part for part in (f"*{facts.summary}*" if facts.summary else "", occasion.message) if part)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_MAX), "emoji": True}},
    ]
    if body:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut(_escape(body), _TEXT_MAX)}})
    blocks.append(
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{_escape(value or '-')}"} for name, value in fields[:10]],
        }
    )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{_escape(facts.hint)}`"}]})
    return {"text": text, "blocks": blocks}


def payload_for(channel_type: str, facts: Facts, occasion: Occasion) -> dict[str, Any]:
    """The payload a channel of ``channel_type`` (``Webhook`` or ``Slack``) posts."""
    if channel_type == "Slack":
        return slack_payload(facts, occasion)
    if channel_type == "Webhook":
        return webhook_payload(facts, occasion)
    raise ValueError(f"no payload for channel type {channel_type!r}")
