"""Notification sinks: where incidents are told to people, over webhooks.

``channels`` reads a SupportPolicy's ``spec.channels`` and the Secret holding each URL;
``payloads`` builds what is posted (generic JSON, or a Slack message); ``backoff`` and
``ratelimit`` decide when to try again and when to hold back; ``sender`` posts. Nothing here
knows Kubernetes or Kopf: ``upkeep.controllers.notifications`` decides what to send, records
it on the Incident and hands the URL in. May import ``upkeep.engine`` and ``upkeep.model``.
"""

__all__ = ["backoff", "channels", "payloads", "ratelimit", "sender"]
