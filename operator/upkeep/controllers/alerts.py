"""The Alertmanager receiver: ``POST /webhooks/alertmanager`` turns webhook alerts into incident sightings.

Alertmanager's ``webhook_config`` posts a group of alerts as JSON (version "4"). Each alert
becomes an ``Alert`` signal (``engine.signals.signals_from_alertmanager``) and goes to the
incident controller (``IncidentController.observe_alert``): a firing alert is a sighting
of its fingerprint (opening or counting its Incident), a resolved one takes the sighting
back, and the incident auto-resolves once no alert of the fingerprint has fired for the
SupportPolicy's ``autoResolve.clearFor`` — the clock pods use. docs/alerts.md is the user's
side of this.

Choices, and why:

- The namespace is the alert's ``namespace`` label, else the operator's node namespace
  (``--namespace``'s first exact name, as for nodes). Alerts for a namespace the operator
  does not watch are counted (``upkeep_alerts_ignored_total``) and dropped: another
  operator, or nobody, is in charge there.
- The answer comes after the alerts are recorded (tens of milliseconds), not before: a
  failure answers 500 and Alertmanager retries, and a retry counts nothing twice (an alert
  is counted once per ``startsAt``). Bad JSON, or a payload without ``alerts``, answers 400
  with a JSON error naming the field; Alertmanager does not retry those.
- Alerts are taken in once Kopf has filled its caches (the SupportPolicies that set the
  severity): the first handler call on a namespace says so. Until then the receiver
  answers 503, which Alertmanager retries. Recording runs in the context of that handler
  call, where ``kopf.event`` can post the incident's Events.
- After a restart nothing tells whether an open alert incident's alert still fires (there
  is no object to list, and Alertmanager re-sends a firing alert only every
  ``repeat_interval``), so such an incident is not auto-resolved until Alertmanager re-sends
  the alert or says it is resolved.
- Authentication is optional: with ``$UPKEEP_WEBHOOK_TOKEN_FILE`` naming a file, requests
  must carry ``Authorization: Bearer <the file's content>`` (Alertmanager's
  ``http_config.authorization.credentials_file``). The file is read on each request, so a
  rotated Secret takes effect without a restart. The token is never logged.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import fnmatch
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import kopf
from aiohttp import web

from upkeep import settings as settings_
from upkeep.controllers import http as http_
from upkeep.controllers import metrics as metrics_
from upkeep.engine import signals, sla

__all__ = [
    "PATH",
    "READY_TIMEOUT",
    "TOKEN_FILE_ENV",
    "AlertIntake",
    "AlertReceiver",
    "PayloadError",
    "ReceivedAlert",
    "alerts_from",
    "read_payload",
    "register",
    "routes",
    "watches",
]

logger = logging.getLogger(__name__)

PATH = "/webhooks/alertmanager"
"""Where Alertmanager posts (its ``webhook_configs[].url`` path)."""
TOKEN_FILE_ENV = "UPKEEP_WEBHOOK_TOKEN_FILE"
"""Environment variable naming a file whose content is the bearer token webhooks must send."""
READY_TIMEOUT = 10.0
"""Seconds a request waits for the operator's caches after a start before it answers 503 (Alertmanager retries)."""
_STATUSES = ("firing", "resolved")


class PayloadError(ValueError):
    """A webhook body that is not an Alertmanager payload; ``field`` names where (``alerts[2].labels``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class AlertIntake(Protocol):
    """What the receiver feeds: the incident controller."""

    @property
    def node_namespace(self) -> str:
        """Where incidents without a namespace go."""
        ...

    async def observe_alert(
        self,
        signal: signals.Signal,
        *,
        firing: bool,
        instance: str,
        episode: str = "",
        indexes: Mapping[str, Any] | None = None,
    ) -> None:
        """Take in one alert."""
        ...


@dataclass(frozen=True)
class ReceivedAlert:
    """One alert of a payload as the controller takes it in."""

    signal: signals.Signal
    firing: bool
    instance: str
    """Alertmanager's fingerprint of the alert (a hash of its labels when it sent none)."""
    episode: str
    """The alert's ``startsAt``: one firing of it."""


def read_payload(raw: bytes) -> Mapping[str, Any]:
    """The JSON body of a webhook, checked as far as the receiver relies on it; PayloadError naming the field."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise PayloadError("body", f"not JSON ({error})") from None
    if not isinstance(payload, Mapping):
        raise PayloadError("body", "must be a JSON object (Alertmanager's webhook payload)")
    if "alerts" not in payload:
        raise PayloadError("alerts", "required: the list of alerts")
    alerts = payload["alerts"]
    if not isinstance(alerts, list):
        raise PayloadError("alerts", f"must be a list, not {type(alerts).__name__}")
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, Mapping):
            raise PayloadError(where, "must be an object")
        labels = alert.get("labels")
        if not isinstance(labels, Mapping):
            raise PayloadError(f"{where}.labels", "required: an object of label names to values")
        status = alert.get("status")
        if status is not None and status not in _STATUSES:
            raise PayloadError(f"{where}.status", f"must be firing or resolved, not {status!r}")
        for key in ("startsAt", "endsAt"):
            value = alert.get(key)
            if value not in (None, "") and sla.parse_time(value) is None:
                raise PayloadError(f"{where}.{key}", f"{value!r} is not an RFC 3339 time")
    return payload


def alerts_from(payload: Mapping[str, Any], now: datetime.datetime, *, default_namespace: str) -> list[ReceivedAlert]:
    """The alerts of a checked payload; one without a ``namespace`` label goes to ``default_namespace``."""
    out: list[ReceivedAlert] = []
    for alert in payload["alerts"]:
        labels = {str(key): str(value) for key, value in alert["labels"].items()}
        given = bool(labels.get("namespace"))
        probe = alert if given else {**alert, "labels": {**labels, "namespace": default_namespace}}
        ((signal, firing),) = signals.signals_from_alertmanager({"alerts": [probe]}, now)
        if not given:
            # The namespace label only placed the signal; the incident records the labels as sent.
            signal = dataclasses.replace(signal, labels=labels)
        instance = str(alert.get("fingerprint") or "") or _label_hash(labels)
        out.append(ReceivedAlert(signal, firing, instance, str(alert.get("startsAt") or "")))
    return out


def watches(scope: settings_.ScopeSettings, namespace: str) -> bool:
    """Whether an operator of ``scope`` watches ``namespace`` (globs as Kopf takes them, ``!`` excludes)."""
    if scope.all_namespaces:
        return True
    patterns = [part.strip() for item in scope.namespaces for part in item.split(",") if part.strip()]
    included = [pattern for pattern in patterns if not pattern.startswith("!")]
    excluded = [pattern[1:] for pattern in patterns if pattern.startswith("!")]
    if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in excluded):
        return False
    return not included or any(fnmatch.fnmatchcase(namespace, pattern) for pattern in included)


def _label_hash(labels: Mapping[str, str]) -> str:
    text = "\n".join(f"{key}={value}" for key, value in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _error(status: int, field: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status, headers=headers or None)


class AlertReceiver:
    """Serves ``POST /webhooks/alertmanager`` for one operator; ``attach`` makes it ready."""

    def __init__(
        self,
        intake: AlertIntake,
        settings: settings_.OperatorSettings,
        metrics: metrics_.OperatorMetrics,
        *,
        token_file: Path | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.intake = intake
        self.settings = settings
        self.metrics = metrics
        self.token_file = token_file
        self._clock = clock or (lambda: datetime.datetime.now(datetime.UTC))
        self._ready = asyncio.Event()
        self._context: contextvars.Context | None = None
        self._indexes: Mapping[str, Any] | None = None

    @property
    def ready(self) -> bool:
        """Whether a Kopf handler has run (the caches are filled): alerts are taken in."""
        return self._ready.is_set()

    def attach(self, indexes: Mapping[str, Any] | None = None) -> None:
        """Called from a Kopf handler: the caches are filled; keep its context (for Events) and Kopf's indexes."""
        if self._context is None:
            self._context = contextvars.copy_context()
            self._indexes = indexes
            self._ready.set()

    async def handle(self, request: web.Request) -> web.Response:
        """One webhook request: check, take every alert in, answer."""
        refusal = self._authorize(request)
        if refusal is not None:
            return refusal
        try:
            payload = read_payload(await request.read())
        except PayloadError as error:
            self.metrics.webhook_rejected("bad_request")
            logger.warning("refused an Alertmanager webhook from %s: %s", request.remote, error)
            return _error(400, error.field, str(error))
        except web.HTTPRequestEntityTooLarge:
            self.metrics.webhook_rejected("bad_request")
            return _error(413, "body", f"larger than {http_.MAX_BODY} bytes; set max_alerts in the webhook_config")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout=READY_TIMEOUT)
        except TimeoutError:
            self.metrics.webhook_rejected("not_ready")
            return _error(503, "", "the operator is starting (its caches are not filled yet); try again")
        received = alerts_from(payload, self._clock(), default_namespace=self.intake.node_namespace)
        taken: list[ReceivedAlert] = []
        for alert in received:
            self.metrics.alert_received("firing" if alert.firing else "resolved")
            if watches(self.settings.scope, alert.signal.namespace):
                taken.append(alert)
            else:
                self.metrics.alert_ignored("namespace_not_watched")
                logger.debug(
                    "ignored alert %s: namespace %s is not watched", alert.signal.reason, alert.signal.namespace
                )
        context = (self._context or contextvars.copy_context()).copy()
        try:
            await asyncio.create_task(self._take_in(taken), context=context)
        except Exception:
            self.metrics.webhook_rejected("failed")
            logger.exception("could not record the alerts of an Alertmanager webhook; it will retry")
            return _error(500, "", "the alerts could not be recorded; Alertmanager retries")
        return web.json_response({"received": len(received), "ignored": len(received) - len(taken)})

    async def _take_in(self, alerts: Sequence[ReceivedAlert]) -> None:
        """Record the alerts: one fingerprint's in order, different fingerprints side by side."""
        groups: dict[tuple[str, str], list[ReceivedAlert]] = {}
        for alert in alerts:
            groups.setdefault((alert.signal.namespace, alert.signal.fingerprint), []).append(alert)

        async def record(group: list[ReceivedAlert]) -> None:
            for alert in group:
                await self.intake.observe_alert(
                    alert.signal,
                    firing=alert.firing,
                    instance=alert.instance,
                    episode=alert.episode,
                    indexes=self._indexes,
                )

        results = await asyncio.gather(*(record(group) for group in groups.values()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _authorize(self, request: web.Request) -> web.Response | None:
        """None when the request may pass; else the 401 (or 503 when the token file cannot be read), counted."""
        if self.token_file is None:
            return None
        try:
            expected = self.token_file.read_text(encoding="utf-8").strip().encode("utf-8")
        except OSError as error:
            logger.error("cannot read the webhook token file %s: %s", self.token_file, error.strerror or error)
            self.metrics.webhook_rejected("not_ready")
            return _error(503, "", "the receiver cannot read its token file")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode("utf-8"), expected):
            return None
        logger.warning("refused an Alertmanager webhook from %s: no valid bearer token", request.remote)
        self.metrics.webhook_rejected("unauthorized")
        return _error(401, "Authorization", "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"})


def routes(receiver: AlertReceiver) -> list[http_.Route]:
    """``POST /webhooks/alertmanager``."""
    return [http_.Route("POST", PATH, receiver.handle)]


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    intake: AlertIntake,
    metrics: metrics_.OperatorMetrics,
    *,
    token_file: str | None = None,
) -> AlertReceiver:
    """Make the receiver of one operator; it becomes ready at the first handler call on a namespace.

    ``token_file``: the path ``$UPKEEP_WEBHOOK_TOKEN_FILE`` names, or None for no authentication;
    one that cannot be read now ends the operator with one line naming the variable.
    """
    path = Path(token_file) if token_file else None
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise SystemExit(f"upkeep run: {TOKEN_FILE_ENV}={path}: cannot read the token: {error.strerror}") from None
        if not token:
            raise SystemExit(f"upkeep run: {TOKEN_FILE_ENV}={path}: the file is empty")
    receiver = AlertReceiver(intake, settings, metrics, token_file=path)

    async def on_namespace(**kwargs: Any) -> None:
        receiver.attach(kwargs)

    def waiting(**_: Any) -> bool:
        return not receiver.ready

    kopf.on.event("v1", "namespaces", id="alert-receiver-ready", registry=registry, when=waiting)(on_namespace)
    return receiver
