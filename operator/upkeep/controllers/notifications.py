"""Notifications of incidents: which events tell which channels, claimed on the Incident so that none goes twice.

How it works (docs/notifications.md has the user's view):

- ``NotificationController.hear`` is a listener of the ``IncidentController``: it hears every
  ``Notice`` after the incident was written, decides what to send (``plan``) and queues the
  work on an asyncio task; it never waits on the network or the API server.
- What notifies (``plan``), with SupportPolicy channels: the *first responders* are the channels
  of the lowest escalation level (every channel when the policy has no levels).

  ============================  ==============================  ===========================================
  notice                        when                            channels
  ============================  ==============================  ===========================================
  Opened                        severity SEV1 or SEV2           first responders
  Reopened                      SEV1/SEV2, or anyone was told   first responders (SEV1/SEV2) + those told
  SLABreached                   always                          first responders + levels reached so far
  Escalated                     always                          the level's channels
  Resolved, AutoResolved        anyone was told                 the channels told of the incident
  everything else               never                           (Occurred, Acknowledged, Closed, ...)
  ============================  ==============================  ===========================================

- Each event has a key unique within its incident (``opened``, ``sla-acknowledge``,
  ``escalated-2``, ``reopened-<when>``, ``resolved-<when>``, the times from the status so every
  replica derives the same key). **Claim before send:** an entry ``{key, channel, state:
  Pending}`` is added to ``status.notifications`` with the status subresource against the
  ``resourceVersion`` read (409: read again, retry); a (key, channel) already there is never
  sent again. Only the writer whose claim lands sends, so a restart, a replayed notice or a
  second replica does not notify twice. The incident controller writes the same status; it
  carries the entries along, and this controller only adds and updates its own.
- Sending reads the URL from the channel's Secret at that moment (never kept, logged or
  recorded), posts the channel's payload with ``Idempotency-Key: <uid>/<key>``, retries with
  back-off inside the channel's rate limit (``upkeep.notify``), then settles the entry as
  ``Sent`` or ``Failed`` (with the reason) and posts a ``NotificationSent`` (Normal) or
  ``NotificationFailed`` (Warning) Event on the incident. A failure also calls ``on_failure``
  (the failure metric's hook). A missing Secret or key is a Failed entry naming both.
- **The edge, at-least-once:** an operator that dies between its claim and its settle leaves a
  ``Pending`` entry. Once the claim is older than the delivery's budget (every attempt timing
  out, every back-off at its longest, plus a margin) no process can still be sending it, and
  whichever operator sees the entry (``resume``, on every Incident event and at start) claims it
  again against the resourceVersion and resends it with the same ``Idempotency-Key``. If the
  first POST did arrive, the receiver sees it twice unless it drops repeated keys. A notice
  that is heard but not yet claimed when the process dies is lost (at-most-once there).
- The Secret is read in the operator's namespace (``UPKEEP_NAMESPACE``, else ``POD_NAMESPACE``,
  else the service account's namespace file), as the SupportPolicy CRD says; an operator
  running outside a cluster (the sandbox, a laptop) has none and reads it in the incident's
  namespace.
- Dry run: nothing is claimed or sent; a ``DryRun`` Event says "would notify <channel> (<reason>)".
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import random
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import events as events_
from upkeep.controllers import incidents as incidents_
from upkeep.engine import sla
from upkeep.model import errors, resources
from upkeep.notify import backoff, channels, payloads, sender

__all__ = [
    "ANNOUNCED_SEVERITIES",
    "MAX_ENTRIES",
    "NOTIFYING_REASONS",
    "NotificationController",
    "Planned",
    "event_key",
    "operator_namespace",
    "plan",
    "register",
    "told_channels",
]

logger = logging.getLogger(__name__)

ANNOUNCED_SEVERITIES = ("SEV1", "SEV2")
"""Severities whose opening (and reopening) is announced: SEV3 and SEV4 wait for an SLA breach or escalation."""
NOTIFYING_REASONS = frozenset({"Opened", "Reopened", sla.SLA_BREACHED, sla.ESCALATED, "Resolved", "AutoResolved"})
"""The notice reasons that may notify; every other notice is ignored before any work."""
MAX_ENTRIES = 50
"""Entries kept in ``status.notifications``; the oldest settled ones go first, a Pending one never."""
MAX_ATTEMPTS = 20
"""Status writes tried before giving up on conflicts: the incident controller writes the same status with
every occurrence, and a crash loop of many pods seen by two replicas keeps it busy. A claim given up is a
notification lost, a settle given up one sent again later, so this is generous."""
CONFLICT_PAUSE = 0.05
"""Seconds, times the attempt number, of the most a write waits (at random) after a conflict, so two
writers that collided do not collide again in step."""
MESSAGE_MAX = 1024
"""The CRD's limit on an entry's message."""
CLOSE_GRACE = 5.0
"""Seconds a stopping operator waits for deliveries in flight, so a SIGTERM rarely leaves a Pending entry."""
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
PENDING, SENT, FAILED = "Pending", "Sent", "Failed"
TAKE_OVER_ATTEMPTS = 5
"""Reads and writes tried when taking over an expired claim, each 409 a fresh read."""

EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""
FailureHook = Callable[[str], None]
"""Told the channel name of every notification that failed (the failure metric)."""
EntryKey = tuple[str, str, str]
"""(incident uid, event key, channel)."""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def operator_namespace(
    environ: Mapping[str, str] | None = None, service_account: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str | None:
    """The namespace the operator runs in, where channel Secrets live; None outside a cluster."""
    found = os.environ if environ is None else environ
    for name in ("UPKEEP_NAMESPACE", "POD_NAMESPACE"):
        if found.get(name):
            return found[name]
    try:
        text = service_account.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


# What to send


@dataclass(frozen=True)
class Planned:
    """One notification to send: an event of an incident, to one channel."""

    occasion: payloads.Occasion
    channel: str


def _stamp(value: Any) -> str:
    """A status time as a compact key part (``20250301T120000Z``)."""
    return str(value or "unknown").replace("-", "").replace(":", "")


def event_key(notice: incidents_.Notice) -> str | None:
    """The key of the notice's event, the same in every replica; None for a notice that never notifies."""
    status = resources.Incident(notice.incident).status
    if notice.reason == "Opened":
        return "opened"
    if notice.reason == sla.SLA_BREACHED:
        return f"sla-{notice.breach or 'deadline'}"
    if notice.reason == sla.ESCALATED:
        return f"escalated-{notice.level}"
    if notice.reason == "Reopened":
        triggered = sla.entered_at(status, "Triggered")
        return f"reopened-{_stamp(sla.format_time(triggered) if triggered else status.get('lastSeen'))}"
    if notice.reason in ("Resolved", "AutoResolved"):
        return f"resolved-{_stamp(status.get('resolvedAt'))}"
    return None


def _entries(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = status.get("notifications")
    return [dict(item) for item in (found if isinstance(found, list) else ()) if isinstance(item, Mapping)]


def told_channels(status: Mapping[str, Any]) -> tuple[str, ...]:
    """The channels that were sent (or are being sent) something about the incident, in first-told order."""
    names: list[str] = []
    for entry in _entries(status):
        name = str(entry.get("channel") or "")
        if name and entry.get("state") in (PENDING, SENT) and name not in names:
            names.append(name)
    return tuple(names)


def _union(*groups: tuple[str, ...]) -> tuple[str, ...]:
    names: list[str] = []
    for group in groups:
        names.extend(name for name in group if name not in names)
    return tuple(names)


def plan(notice: incidents_.Notice, policy_spec: Mapping[str, Any] | None) -> tuple[Planned, ...]:
    """What a notice sends, to which channels (the table of the module docstring)."""
    if notice.reason not in NOTIFYING_REASONS:
        return ()
    key = event_key(notice)
    if key is None:
        return ()
    view = resources.Incident(notice.incident)
    announced = view.severity in ANNOUNCED_SEVERITIES
    first = channels.first_responders(policy_spec)
    told = told_channels(view.status)
    names: tuple[str, ...]
    if notice.reason == "Opened":
        names = first if announced else ()
    elif notice.reason == "Reopened":
        names = _union(first if announced else (), told)
    elif notice.reason == sla.SLA_BREACHED:
        names = channels.reached_channels(policy_spec, int(view.status.get("escalationLevel") or 0))
    elif notice.reason == sla.ESCALATED:
        names = notice.channels
    else:
        names = told
    occasion = payloads.Occasion(
        key=key, reason=notice.reason, message=notice.message, level=notice.level, breach=notice.breach
    )
    return tuple(Planned(occasion, name) for name in names)


def _occasion_of(entry: Mapping[str, Any]) -> payloads.Occasion:
    """The occasion of a recorded entry, for a resend: what the key and reason say."""
    key = str(entry.get("key") or "")
    level = int(key.removeprefix("escalated-")) if key.startswith("escalated-") and key[10:].isdigit() else 0
    breach = key.removeprefix("sla-") if key.startswith("sla-") else ""
    message = "resent: the operator that first sent this notification stopped before it finished"
    return payloads.Occasion(
        key=key, reason=str(entry.get("reason") or ""), message=message, level=level, breach=breach
    )


def _entry(planned: Planned, state: str, at: str, attempts: int, message: str) -> dict[str, Any]:
    return {
        "key": planned.occasion.key,
        "channel": planned.channel,
        "reason": planned.occasion.reason,
        "state": state,
        "at": at,
        "attempts": attempts,
        "message": message[:MESSAGE_MAX],
    }


def _bounded(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most ``MAX_ENTRIES``: the oldest settled entries dropped first, Pending ones kept."""
    extra = len(entries) - MAX_ENTRIES
    if extra <= 0:
        return entries
    kept: list[dict[str, Any]] = []
    for entry in entries:
        if extra > 0 and entry.get("state") != PENDING:
            extra -= 1
            continue
        kept.append(entry)
    return kept


def _find(entries: list[dict[str, Any]], key: str, channel: str) -> int | None:
    for index, entry in enumerate(entries):
        if entry.get("key") == key and entry.get("channel") == channel:
            return index
    return None


async def _after_conflict(attempt: int) -> None:
    """A short random pause before writing again after a conflict (``CONFLICT_PAUSE``)."""
    logger.debug("conflict writing notifications; attempt %d", attempt + 1)
    await asyncio.sleep(random.uniform(0, CONFLICT_PAUSE * attempt))


# The controller


class NotificationController:
    """Hears incident notices and notifies the SupportPolicy's channels, once per (incident, event, channel)."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: cluster_.Cluster,
        *,
        policy_for: Callable[[str], Mapping[str, Any] | None],
        events: EventSink | None = None,
        on_failure: FailureHook | None = None,
        secret_namespace: str | None = None,
        sender_: sender.Sender | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.policy_for = policy_for
        """The spec of the SupportPolicy that governs a namespace (the incident controller's lookup)."""
        self.on_failure = on_failure
        """Called with the channel of every failed notification: connect the failure metric here."""
        self.secret_namespace = secret_namespace
        """Where channel Secrets are read; None: in the incident's namespace."""
        self._events = events or events_.post
        self._sender = sender_
        self._own_session: aiohttp.ClientSession | None = None
        self._clock = clock or _utcnow
        self._monotonic = monotonic
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._inflight: set[EntryKey] = set()
        self._timers: dict[EntryKey, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._told: set[EntryKey] = set()

    # -- plumbing

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a notification task failed", exc_info=task.exception())

    def _lock(self, namespace: str, name: str) -> asyncio.Lock:
        found = self._locks.get((namespace, name))
        if found is None:
            found = self._locks[(namespace, name)] = asyncio.Lock()
        return found

    def _get_sender(self) -> sender.Sender:
        if self._sender is None:
            self._own_session = aiohttp.ClientSession()
            self._sender = sender.Sender(self._own_session)
        return self._sender

    def _budget(self, channel: channels.Channel | None) -> float:
        """Seconds a claim on the channel stays its claimer's: the delivery budget and a margin."""
        timeout = self._sender.timeout if self._sender is not None else sender.DEFAULT_TIMEOUT
        first = channel.backoff if channel else channels.DEFAULT_BACKOFF.total_seconds()
        retries = channel.retries if channel else channels.DEFAULT_RETRIES
        return backoff.delivery_budget(first, retries, timeout) + backoff.CLAIM_MARGIN

    async def close(self) -> None:
        """Let deliveries in flight finish (``CLOSE_GRACE`` at most), then close the HTTP session."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_GRACE)
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None
            self._sender = None

    # -- hearing notices

    def hear(self, notice: incidents_.Notice) -> None:
        """The listener: plan the notice's notifications and queue them; never blocks."""
        if notice.reason not in NOTIFYING_REASONS:
            return
        view = resources.Incident(notice.incident)
        planned = plan(notice, self.policy_for(view.namespace))
        if not planned:
            return
        if self.settings.safety.dry_run:
            uid = str(view.metadata.get("uid") or view.name)
            for item in planned:
                told = (uid, item.occasion.key, item.channel)
                if told in self._told:
                    continue
                self._told.add(told)
                message = f"dry run: would notify {item.channel} ({item.occasion.reason})"
                logger.warning("incident %s/%s: %s", view.namespace, view.name, message)
                self._events(notice.incident, "Normal", "DryRun", message)
            return
        self._spawn(self._claim_and_send(dict(notice.incident), planned))

    async def send(
        self, incident: Mapping[str, Any], *, key: str, reason: str, message: str, channels_: tuple[str, ...]
    ) -> None:
        """Tell channels of an incident something outside the notice table (a playbook's notify or escalation).

        ``key`` names the event within the incident: like every notification it is claimed in
        ``status.notifications`` first, so one key reaches one channel once, whoever asks again.
        Returns once claimed; delivery goes on in the background. Dry run: a ``DryRun`` Event.
        """
        occasion = payloads.Occasion(key=key, reason=reason, message=message)
        planned = tuple(Planned(occasion, name) for name in channels_)
        if not planned:
            return
        if self.settings.safety.dry_run:
            for item in planned:
                self._events(incident, "Normal", "DryRun", f"dry run: would notify {item.channel} ({reason})")
            return
        await self._claim_and_send(dict(incident), planned)

    async def _claim_and_send(self, body: dict[str, Any], planned: tuple[Planned, ...]) -> None:
        view = resources.Incident(body)
        async with self._lock(view.namespace, view.name):
            claimed, written = await self._claim(body, planned)
        if written is None:
            return
        for item in claimed:
            self._spawn(self._deliver(written, item, attempts_before=0))

    async def _claim(
        self, body: dict[str, Any], planned: tuple[Planned, ...]
    ) -> tuple[list[Planned], dict[str, Any] | None]:
        """Add Pending entries for what is not recorded yet; what this process won, and the incident as written."""
        view = resources.Incident(body)
        uid = str(view.metadata.get("uid") or "")
        current: dict[str, Any] | None = body
        at = sla.format_time(self._clock())
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                await _after_conflict(attempt)
            if current is None or str(resources.Resource(current).metadata.get("uid") or "") != uid:
                return [], None
            status = dict(resources.Resource(current).status)
            entries = _entries(status)
            fresh: list[Planned] = []
            for item in planned:
                if _find(entries, item.occasion.key, item.channel) is None:
                    entries.append(_entry(item, PENDING, at, 0, "sending"))
                    fresh.append(item)
            if not fresh:
                return [], current
            status["notifications"] = _bounded(entries)
            keys = {(uid, item.occasion.key, item.channel) for item in fresh}
            self._inflight.update(keys)
            try:
                written = await self.cluster.replace_incident_status({**current, "status": status})
            except cluster_.Conflict:
                self._inflight.difference_update(keys)
                current = await self.cluster.get_incident(view.namespace, view.name)
                continue
            except Exception:
                self._inflight.difference_update(keys)
                raise
            return fresh, written
        logger.warning("incident %s/%s: gave up claiming notifications after conflicts", view.namespace, view.name)
        return [], None

    # -- sending

    async def _deliver(self, body: Mapping[str, Any], item: Planned, *, attempts_before: int) -> None:
        """Send one claimed notification and settle its entry; the URL stays in this function."""
        view = resources.Incident(body)
        uid = str(view.metadata.get("uid") or "")
        key: EntryKey = (uid, item.occasion.key, item.channel)
        try:
            delivery = await self._send(body, item)
            written = await self._settle(body, item, delivery, attempts_before)
        finally:
            self._inflight.discard(key)
        what = f"{item.channel} of {item.occasion.reason} ({item.occasion.key})"
        if delivery.delivered:
            tries = "attempt" if delivery.attempts == 1 else "attempts"
            message = f"notified {what}: {delivery.message} after {delivery.attempts} {tries}"
            logger.info("incident %s/%s: %s", view.namespace, view.name, message)
            self._events(written or body, "Normal", "NotificationSent", message)
            return
        message = f"could not notify {what}: {delivery.message}"
        logger.warning("incident %s/%s: %s", view.namespace, view.name, message)
        self._events(written or body, "Warning", "NotificationFailed", message)
        if self.on_failure is not None:
            try:
                self.on_failure(item.channel)
            except Exception:
                logger.exception("the notification failure hook failed")

    async def _send(self, body: Mapping[str, Any], item: Planned) -> sender.Delivery:
        view = resources.Incident(body)
        namespace = self.secret_namespace or view.namespace
        try:
            channel = channels.channel_named(self.policy_for(view.namespace), item.channel)
        except errors.SpecError as error:
            return sender.Delivery(False, 0, str(error))
        try:
            secret = await self.cluster.get_secret(namespace, channel.secret_name)
        except Exception as error:
            status = getattr(error, "status", None)
            why = f"HTTP {status}" if status else type(error).__name__
            return sender.Delivery(False, 0, f"could not read Secret {namespace}/{channel.secret_name}: {why}")
        try:
            url = channels.url_from_secret(secret, channel, namespace)
        except channels.SecretError as error:
            return sender.Delivery(False, 0, str(error))
        transport = self._get_sender()
        deadline = self._monotonic() + transport.budget(channel.backoff, channel.retries)
        return await transport.send(
            url,
            payloads.payload_for(channel.type, payloads.Facts.from_incident(body), item.occasion),
            idempotency_key=payloads.idempotency_key(str(view.metadata.get("uid") or ""), item.occasion.key),
            channel=f"{namespace}/{channel.secret_name}/{channel.secret_key}",
            per_minute=channel.per_minute,
            retries=channel.retries,
            first_backoff=channel.backoff,
            deadline=deadline,
        )

    async def _settle(
        self, body: Mapping[str, Any], item: Planned, delivery: sender.Delivery, attempts_before: int
    ) -> dict[str, Any] | None:
        """Record Sent or Failed in the entry; the incident as written (None when it could not be written)."""
        view = resources.Incident(body)
        uid = str(view.metadata.get("uid") or "")
        state = SENT if delivery.delivered else FAILED
        async with self._lock(view.namespace, view.name):
            for attempt in range(MAX_ATTEMPTS):
                if attempt:
                    await _after_conflict(attempt)
                try:
                    current = await self.cluster.get_incident(view.namespace, view.name)
                    if current is None or str(resources.Resource(current).metadata.get("uid") or "") != uid:
                        return None
                    status = dict(resources.Resource(current).status)
                    entries = _entries(status)
                    at = sla.format_time(self._clock())
                    settled = _entry(item, state, at, attempts_before + delivery.attempts, delivery.message)
                    index = _find(entries, item.occasion.key, item.channel)
                    if index is None:
                        entries.append(settled)
                    else:
                        entries[index] = settled
                    status["notifications"] = _bounded(entries)
                    return await self.cluster.replace_incident_status({**current, "status": status})
                except cluster_.Conflict:
                    continue
                except Exception:
                    logger.exception("incident %s/%s: could not record a notification", view.namespace, view.name)
                    return None
        logger.error(
            "incident %s/%s: could not record notification %s to %s after conflicts; it may be resent",
            view.namespace,
            view.name,
            item.occasion.key,
            item.channel,
        )
        return None

    # -- Pending entries left by an operator that stopped

    def resume(self, body: Mapping[str, Any]) -> None:
        """Take over Pending entries whose claim has expired; look again when a younger one would expire."""
        if self.settings.safety.dry_run:
            return
        view = resources.Incident(body)
        pending = [entry for entry in _entries(view.status) if entry.get("state") == PENDING]
        if not pending:
            return
        uid = str(view.metadata.get("uid") or "")
        now = self._clock()
        spec = self.policy_for(view.namespace)
        for entry in pending:
            key: EntryKey = (uid, str(entry.get("key") or ""), str(entry.get("channel") or ""))
            if key in self._inflight:
                continue
            try:
                channel: channels.Channel | None = channels.channel_named(spec, key[2])
            except errors.SpecError:
                channel = None
            claimed_at = sla.parse_time(entry.get("at")) or now
            expires = claimed_at + datetime.timedelta(seconds=self._budget(channel) + 1)
            if now >= expires:
                self._inflight.add(key)
                self._spawn(self._take_over(view.namespace, view.name, key, entry))
            elif key not in self._timers:
                self._schedule_recheck(view.namespace, view.name, key, (expires - now).total_seconds())

    def _schedule_recheck(self, namespace: str, name: str, key: EntryKey, delay: float) -> None:
        def recheck() -> None:
            self._timers.pop(key, None)
            self._spawn(self._recheck(namespace, name))

        self._timers[key] = asyncio.get_running_loop().call_later(delay, recheck)

    async def _recheck(self, namespace: str, name: str) -> None:
        found = await self.cluster.get_incident(namespace, name)
        if found is not None:
            self.resume(found)

    async def _take_over(self, namespace: str, name: str, key: EntryKey, seen: Mapping[str, Any]) -> None:
        """Claim an expired Pending entry anew (against the resourceVersion) and resend it with the same key."""
        delivering = False
        try:
            async with self._lock(namespace, name):
                # A 409 is read again and decided again: another writer's change (the incident controller's,
                # a playbook's link) is no reason to give up, and its Incident event may already have been
                # skipped while this take-over was in flight, so nothing else would look again.
                for _ in range(TAKE_OVER_ATTEMPTS):
                    current = await self.cluster.get_incident(namespace, name)
                    if current is None or str(resources.Resource(current).metadata.get("uid") or "") != key[0]:
                        return
                    status = dict(resources.Resource(current).status)
                    entries = _entries(status)
                    index = _find(entries, key[1], key[2])
                    if (
                        index is None
                        or entries[index].get("state") != PENDING
                        or entries[index].get("at") != seen.get("at")
                    ):
                        return  # settled, or taken over by another operator since
                    entry = entries[index]
                    entries[index] = {
                        **entry,
                        "at": sla.format_time(self._clock()),
                        "message": f"resending: the claim of {entry.get('at')} expired unsettled",
                    }
                    status["notifications"] = entries
                    try:
                        written = await self.cluster.replace_incident_status({**current, "status": status})
                        break
                    except cluster_.Conflict:
                        continue
                else:
                    return  # still changing after every attempt: the next event of the incident looks again
            logger.warning(
                "incident %s/%s: resending notification %s to %s: its claim expired", namespace, name, key[1], key[2]
            )
            planned = Planned(_occasion_of(entry), key[2])
            self._spawn(self._deliver(written, planned, attempts_before=int(entry.get("attempts") or 0)))
            delivering = True
        finally:
            if not delivering:
                self._inflight.discard(key)


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    incidents: incidents_.IncidentController,
    on_failure: FailureHook | None = None,
) -> NotificationController:
    """Listen to the incident controller, resume Pending notifications on Incident events; the controller is returned.

    ``on_failure`` (the failure metric, e.g. ``OperatorMetrics.notification_failed``) is told the
    channel of every notification that failed; it can also be set later on ``controller.on_failure``.
    """
    controller = NotificationController(
        settings,
        incidents.cluster,
        policy_for=incidents.policy_spec,
        on_failure=on_failure,
        secret_namespace=operator_namespace(),
    )
    incidents.listeners.append(controller.hear)

    async def on_incident(type: str | None, body: kopf.Body, **_: Any) -> None:
        if type != "DELETED":
            controller.resume(body)

    kopf.on.event(GROUP, VERSION, "incidents", id="notifications", registry=registry)(on_incident)

    async def on_cleanup(**_: Any) -> None:
        await controller.close()

    kopf.on.cleanup(registry=registry, id="notifications-close")(on_cleanup)
    return controller
