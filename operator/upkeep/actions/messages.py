"""notify and escalate: tell people, through the SupportPolicy's channels and the incident's escalation.

Neither changes the cluster; both call what the controller passes in the context (``ctx.notify``,
``ctx.escalate``), which owns the channels, the deduplication of messages and the Incident's spec.
``already_done`` answers None: a message leaves no mark in the cluster that an action could read,
so exactly-once delivery after a restart is the notifier's job (the controller's notifications
deduplicate by a key; it binds the step's ``ctx.key`` into the callables it passes). A dry run
calls nothing and records what would be sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from upkeep.actions import base

__all__ = ["Escalate", "Notify", "summary"]


def summary(incident: Mapping[str, Any]) -> str:
    """One line about the incident: its name, severity, signal and workload."""
    spec = incident.get("spec") or {}
    name = (incident.get("metadata") or {}).get("name", "an incident")
    signal = (spec.get("signal") or {}).get("type", "a failure")
    workload = spec.get("workload") or {}
    where = f" on {workload.get('kind')} {workload.get('name')}" if workload else ""
    severity = spec.get("severity")
    return f"Incident {name}{f' ({severity})' if severity else ''}: {signal}{where}."


def _channels(ctx: base.ActionContext) -> tuple[str, ...]:
    return tuple(str(channel) for channel in ctx.params.get("channels") or ())


class Notify:
    """The ``notify`` action (see the module docstring)."""

    name = "notify"

    def _message(self, ctx: base.ActionContext) -> str:
        return str(ctx.params.get("message") or summary(ctx.incident))

    async def describe(self, ctx: base.ActionContext) -> str:
        return f"Send {self._message(ctx)!r} to channels {', '.join(_channels(ctx)) or '(none)'}."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        return None

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        channels, message = _channels(ctx), self._message(ctx)
        output = {"channels": list(channels), "message": message}
        if ctx.dry_run:
            return base.Outcome("Succeeded", f"Would notify {', '.join(channels)}.", output)
        if ctx.notify is None:
            raise base.ActionFailed("notify has no way to send messages here (the controller passed no notifier)")
        await ctx.notify(channels, message)
        return base.Outcome("Succeeded", f"Notified {', '.join(channels)}.", output)

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        return base.Outcome("Succeeded", "sent")


class Escalate:
    """The ``escalate`` action (see the module docstring)."""

    name = "escalate"

    def _why(self, ctx: base.ActionContext) -> str:
        return f"a remediation step escalated it: {summary(ctx.incident)}"

    async def describe(self, ctx: base.ActionContext) -> str:
        severity = ctx.params.get("severity")
        raised = f"raise its severity to {severity} and " if severity else ""
        channels = ", ".join(_channels(ctx)) or "the next escalation level's channels"
        return f"Escalate {summary(ctx.incident)[:-1]}: {raised}notify {channels}."

    async def already_done(self, ctx: base.ActionContext) -> base.Outcome | None:
        return None

    async def run(self, ctx: base.ActionContext) -> base.Outcome:
        severity = ctx.params.get("severity")
        channels = _channels(ctx)
        output = {"severity": severity, "channels": list(channels)}
        if ctx.dry_run:
            return base.Outcome("Succeeded", "Would escalate the incident.", output)
        if ctx.escalate is None:
            raise base.ActionFailed("escalate has no way to raise the incident here (the controller passed none)")
        await ctx.escalate(str(severity) if severity else None, channels, self._why(ctx))
        return base.Outcome("Succeeded", "Escalated the incident.", output)

    async def verify(self, ctx: base.ActionContext) -> base.Outcome:
        return base.Outcome("Succeeded", "escalated")
