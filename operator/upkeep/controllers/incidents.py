"""The incident controller: detectors on pods, Deployments, nodes and Jobs open and update Incidents.

How it is wired (``register``):

- Kopf indexes keep what the detectors look up: the owners of pods (ReplicaSets,
  Deployments, StatefulSets, DaemonSets, Jobs, CronJobs), the SupportPolicies and the
  namespaces' labels. Kopf fills every index before any handler runs, so the first
  signals after a start already get their workload and their policy's severity.
- ``kopf.on.event`` on pods, Deployments, nodes and Jobs runs the detectors
  (``upkeep.detectors``) on each change. Each sighting of a signal is counted as the
  detectors say (``sightings.occurrences_since``: a new pod, each restart, each new
  failure of a Deployment, node or Job) and recorded in the one Incident of its
  fingerprint: created (``engine.incidents.new_incident`` + ``initial_status``) when the
  fingerprint has no Incident that is not Closed, else ``record_occurrence``. The
  Incidents of a fingerprint are found by the label ``upkeep.dev/fingerprint-hash``; the
  name is derived from the fingerprint, so two replicas (or one restarted) that see the
  same signal create the same object and the API server keeps one. Status is written to
  the status subresource against the ``resourceVersion`` read, so concurrent writers never
  lose an occurrence: a conflict reads again and retries.
- ``kopf.on.event`` on Incidents applies what people ask in ``spec.state``
  (``engine.incidents.apply_requested_state``), once per generation, and gives an Incident
  written by hand its initial status and fingerprint label.
- ``kopf.daemon`` on open Incidents runs the clocks: auto-resolve once no object has shown
  the signal for the SupportPolicy's ``autoResolve.clearFor`` (default 5m), and the SLA
  deadlines. It sleeps until the next deadline and is woken when the signal comes or goes;
  it never polls.

Every action posts a Kubernetes Event on the Incident (and opening one also on the
workload). With ``--dry-run`` no Incident is written: the first sighting of each
fingerprint posts a ``DryRunIncident`` Event on the workload naming the Incident that
would be opened (validated by the API server with ``dryRun=All``), and requests in
``spec.state`` get a ``DryRun`` Event instead of a transition.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import kopf

from upkeep import GROUP, VERSION
from upkeep import settings as settings_
from upkeep.controllers import cluster as cluster_
from upkeep.controllers import daemons
from upkeep.controllers import events as events_
from upkeep.detectors import deployments, jobs, nodes, pods, sightings
from upkeep.engine import acceptance, durations, incidents, severity, signals, sla
from upkeep.model import conditions, errors, lifecycle, resources

__all__ = [
    "DEFAULT_CLEAR_FOR",
    "DEFAULT_UNSCHEDULABLE_GRACE",
    "KIND",
    "REQUESTED_BY_ANNOTATION",
    "Caches",
    "IncidentController",
    "Listener",
    "Notice",
    "register",
]

logger = logging.getLogger(__name__)

DEFAULT_CLEAR_FOR = datetime.timedelta(minutes=5)
"""How long a signal must stay away before its incident resolves, when no SupportPolicy says (the CRD's default)."""
DEFAULT_UNSCHEDULABLE_GRACE = datetime.timedelta(minutes=5)
"""How long a pod may stay unschedulable before it is a signal, when no SupportPolicy says (the CRD's default)."""
REQUESTED_BY_ANNOTATION = "upkeep.dev/requested-by"
"""Who asked for ``spec.state``, as the timeline records it; without it, the field manager that wrote the field."""

MAX_COUNTED = 100
"""Occurrences one sighting adds at most (a pod first seen after many restarts counts once; this bounds a jump)."""
MAX_ATTEMPTS = 5
"""Writes retried after a conflict before giving up until the next change."""
RETRY_AFTER = datetime.timedelta(seconds=30)
"""When the incident clock looks again after an error."""
_ALERT_SOURCE = "alertmanager"
"""``spec.signal.source`` of the incidents that alerts open (``observe_alert``)."""

WATCHED: Mapping[str, tuple[str, str]] = {
    "Pod": ("v1", "pods"),
    "Deployment": ("apps/v1", "deployments"),
    "Node": ("v1", "nodes"),
    "Job": ("batch/v1", "jobs"),
}
"""Kind → (apiVersion, plural) of the objects the detectors look at."""
OWNERS: Mapping[str, tuple[str, str]] = {
    "ReplicaSet": ("apps/v1", "replicasets"),
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "DaemonSet": ("apps/v1", "daemonsets"),
    "Job": ("batch/v1", "jobs"),
    "CronJob": ("batch/v1", "cronjobs"),
}
"""Kind → (apiVersion, plural) of the owners a pod's workload is found through."""
KIND = incidents.KIND
"""The kind this controller owns (the acceptance controller leaves it alone)."""
POLICY_INDEX = "upkeep_supportpolicies"
NAMESPACE_INDEX = "upkeep_namespaces"

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name) of a watched object."""
FingerprintKey = tuple[str, str]
"""(namespace, fingerprint): where an incident lives and what it is."""
EventSink = Callable[[Mapping[str, Any], str, str, str], None]
"""Posts a Kubernetes Event: (object body, type Normal or Warning, reason, message)."""


@dataclass(frozen=True)
class Notice:
    """Something that happened to an incident, after it was written: what listeners (metrics, notifications) hear.

    ``reason`` is the reason of the Kubernetes Event posted with it: ``Opened``, ``Occurred``,
    ``Reopened``, ``AutoResolved``, ``SLABreached``, ``Escalated``, ``InvalidTransition``, or
    the phase a person moved the incident to (``Acknowledged``, ``Mitigating``, ...).
    """

    incident: Mapping[str, Any]
    """The Incident as written (status included)."""
    type: str
    """Normal or Warning, as the Event."""
    reason: str
    message: str
    signal_type: str = ""
    """The signal type of the incident (``spec.signal.type``)."""
    count: int = 0
    """For Opened, Occurred and Reopened: how many occurrences this notice adds."""
    level: int = 0
    """For Escalated: the level reached."""
    channels: tuple[str, ...] = ()
    """For Escalated: the channels the level names."""
    breach: str = ""
    """For SLABreached: which deadline (``acknowledge`` or ``resolve``)."""
    previous_phase: str = ""
    """The phase before this notice (equal to the current one when it did not move)."""


Listener = Callable[[Notice], None]
"""Hears every notice; must not block (queue slow work). An exception is logged and ignored."""


def _owner_index_id(plural: str) -> str:
    return f"upkeep_owners_{plural}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# What the controller looks up


class Caches(Protocol):
    """The watch caches the detectors and severity rules read (Kopf's indexes in the operator)."""

    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        """The body (metadata at least) of an owner of pods, or None."""
        ...

    def policies(self) -> list[Mapping[str, Any]]:
        """Every SupportPolicy (metadata.name and spec)."""
        ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        """The labels of a namespace ({} when unknown)."""
        ...


class _NoCaches:
    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        return None

    def policies(self) -> list[Mapping[str, Any]]:
        return []

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        return {}


def _first(store: Any) -> Any:
    return next(iter(store), None) if store else None


class _IndexCaches:
    """``Caches`` over the Kopf indexes that ``register`` declares, as handlers receive them."""

    def __init__(self, indexes: Mapping[str, Any]) -> None:
        self._owners = {kind: indexes.get(_owner_index_id(plural)) for kind, (_, plural) in OWNERS.items()}
        self._policies = indexes.get(POLICY_INDEX)
        self._namespaces = indexes.get(NAMESPACE_INDEX)

    def owner(self, ref: resources.ObjectRef) -> Mapping[str, Any] | None:
        index = self._owners.get(ref.kind)
        found = _first(index.get((ref.namespace, ref.name))) if index is not None else None
        return found if isinstance(found, Mapping) else None

    def policies(self) -> list[Mapping[str, Any]]:
        store = self._policies.get(None) if self._policies is not None else None
        return [item for item in store or () if isinstance(item, Mapping)]

    def namespace_labels(self, namespace: str) -> Mapping[str, str]:
        found = _first(self._namespaces.get(namespace)) if self._namespaces is not None else None
        return found if isinstance(found, Mapping) else {}


# Index functions: small copies of what is looked up, never whole objects. Coroutines, not plain functions:
# Kopf runs a plain function in a thread, a hand-over per watch event of pods, ReplicaSets, Deployments ...


async def _owner_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    metadata = body.metadata
    kept = {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "uid": metadata.get("uid"),
        "labels": dict(metadata.get("labels") or {}),
        "ownerReferences": [dict(item) for item in metadata.get("ownerReferences") or []],
    }
    selector = _mapping(body.get("spec")).get("selector")
    entry = {"kind": body.get("kind"), "metadata": kept, "spec": {"selector": selector} if selector else {}}
    return {(metadata.get("namespace") or "", metadata.get("name") or ""): entry}


async def _policy_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {None: {"metadata": {"name": body.metadata.get("name")}, "spec": dict(body.get("spec") or {})}}


async def _namespace_entry(body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {body.metadata.get("name"): dict(body.metadata.get("labels") or {})}


# Reading incidents


def _fingerprint_of(body: Mapping[str, Any]) -> str:
    """The incident's fingerprint: ``spec.signal.fingerprint``, else derived from its type and workload."""
    view = resources.Incident(body)
    if view.fingerprint:
        return view.fingerprint
    return _signal_of(body, _utcnow()).fingerprint


def _signal_of(body: Mapping[str, Any], now: datetime.datetime) -> signals.Signal:
    """The signal an Incident's spec records (for an Incident written by hand)."""
    view = resources.Incident(body)
    namespace = view.namespace or "default"
    spec_signal = view.signal
    kind = view.signal_type if view.signal_type in signals.SIGNAL_TYPES else "Manual"
    workload = view.workload
    affected = workload or resources.ObjectRef("Incident", view.name, namespace, GROUP + "/" + VERSION)
    labels = {str(key): str(value) for key, value in _mapping(spec_signal.get("labels")).items()}
    fingerprint = view.fingerprint
    if not fingerprint:
        alert_labels = labels if kind == "Alert" else None
        if kind == "Alert" and not alert_labels:
            alert_labels = {"alertname": view.name}
        fingerprint = signals.fingerprint_for(kind, namespace, workload, affected, alert_labels=alert_labels)
    return signals.Signal(
        type=kind,
        namespace=namespace,
        affected=affected,
        workload=workload,
        reason=str(spec_signal.get("reason") or kind),
        message=str(spec_signal.get("message") or view.spec.get("summary") or ""),
        labels=labels,
        observed_at=now,
        source=str(spec_signal.get("source") or "kubectl"),
        fingerprint=fingerprint,
    )


def _resource_version(body: Mapping[str, Any]) -> int | None:
    value = _mapping(body.get("metadata")).get("resourceVersion")
    try:
        return int(str(value))
    except ValueError:
        return None


def _freshest(cached: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> Mapping[str, Any]:
    """Of two bodies of one incident, the later one (the one just seen when versions do not compare)."""
    if cached is None or resources.Resource(cached).name != resources.Resource(seen).name:
        return seen
    left, right = _resource_version(cached), _resource_version(seen)
    return cached if left is not None and right is not None and left > right else seen


def _phase(body: Mapping[str, Any]) -> str:
    return str(_mapping(body.get("status")).get("phase") or "")


def _lists(status: Mapping[str, Any], ref: resources.ObjectRef) -> bool:
    """Whether ``status.affected`` names the object."""
    found = status.get("affected")
    wanted = ref.to_dict()
    return any(
        isinstance(item, Mapping)
        and all(str(item.get(key) or "") == str(wanted.get(key) or "") for key in ("kind", "namespace", "name"))
        for item in (found if isinstance(found, list) else ())
    )


def _auto_resolves(body: Mapping[str, Any]) -> bool:
    """Whether the incident resolves when its signal goes: opened by an alert, or by a detector for its type."""
    view = resources.Incident(body)
    source = str(view.signal.get("source") or "")
    if source == _ALERT_SOURCE and view.signal_type == "Alert":
        return True
    detectable = {kind for types in signals.DETECTABLE_TYPES.values() for kind in types}
    return source.startswith("detector/") and view.signal_type in detectable


def _presence_unknown(body: Mapping[str, Any], found: _Fingerprint) -> bool:
    """Whether an alert incident's signal may still fire unseen: after a start, until Alertmanager says.

    Alerts have no object to list (``_verify_absence``), and Alertmanager re-sends a firing
    alert only every ``repeat_interval``; so an open alert incident stays open until its alert
    is re-sent (present) or reported resolved, unless the status already records the clear.
    """
    if resources.Incident(body).signal_type != "Alert" or found.present or found.absent_since is not None:
        return False
    return sla.parse_time(_mapping(body.get("status")).get("clearSince")) is None


def _kind_for(signal_type: str) -> str | None:
    """The kind of object whose detector reports a signal type."""
    for kind, types in signals.DETECTABLE_TYPES.items():
        if signal_type in types:
            return kind
    return None


def _actor(body: Mapping[str, Any]) -> str:
    """Who asked for ``spec.state``: the annotation, else the field manager that last wrote it."""
    metadata = _mapping(body.get("metadata"))
    named = _mapping(metadata.get("annotations")).get(REQUESTED_BY_ANNOTATION)
    if named:
        return str(named)
    managers = metadata.get("managedFields")
    best: tuple[str, str] | None = None
    for entry in managers if isinstance(managers, list) else ():
        if not isinstance(entry, Mapping):
            continue
        spec = _mapping(_mapping(entry.get("fieldsV1")).get("f:spec"))
        if "f:state" in spec and entry.get("manager"):
            candidate = (str(entry.get("time") or ""), str(entry["manager"]))
            best = candidate if best is None or candidate[0] >= best[0] else best
    return best[1] if best is not None else "unknown"


def _reference_body(ref: resources.ObjectRef) -> dict[str, Any]:
    """An object body sufficient for posting an Event about the object."""
    metadata = {"name": ref.name}
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def _duration(
    spec: Mapping[str, Any] | None, section: str, key: str, default: datetime.timedelta
) -> datetime.timedelta:
    value = _mapping(_mapping(spec).get(section)).get(key)
    if not value:
        return default
    try:
        return durations.parse_duration(str(value))
    except durations.DurationError:
        logger.warning("SupportPolicy spec.%s.%s %r is no duration; using %s", section, key, value, default)
        return default


# The controller


@dataclass
class _Fingerprint:
    """What the controller knows of one fingerprint in one namespace."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises this process's writes to the fingerprint's incident."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the signal comes or goes, or the incident changes: wakes the incident's clock."""
    incident: dict[str, Any] | None = None
    """The latest body of the fingerprint's current (not Closed) incident, as read or written."""
    present: dict[ObjectKey, sightings.Sighting] = field(default_factory=dict)
    """The objects that show the signal now."""
    absent_since: datetime.datetime | None = None
    """When the last object stopped showing it (None while one shows it, or not seen go)."""
    verified: bool = False
    """Whether an absence was confirmed by listing the objects (once per process: the watches may lag at start)."""


class IncidentController:
    """Signals in, Incidents out. ``register`` wires one to Kopf; a test may drive one directly."""

    def __init__(
        self,
        settings: settings_.OperatorSettings,
        cluster: cluster_.Cluster,
        *,
        events: EventSink | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.cluster = cluster
        self.caches: Caches = _NoCaches()
        self._events = events or events_.post
        self._clock = clock or _utcnow
        self._fingerprints: dict[FingerprintKey, _Fingerprint] = {}
        self._counted: dict[ObjectKey, dict[str, sightings.Sighting]] = {}
        self._showing: dict[ObjectKey, dict[FingerprintKey, sightings.Sighting]] = {}
        self._rechecks: dict[ObjectKey, asyncio.TimerHandle] = {}
        self._causes: dict[tuple[str, str, str], set[str]] = {}
        self._cause_of: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._told: set[tuple[str, ...]] = set()
        self._clocks: dict[str, bool] = {}
        """The incidents (by uid) whose clock runs here: True once the incident is deleted (the clock then ends)."""
        self.listeners: list[Listener] = []
        """Told of every notice, in order; see ``Notice``."""

    def _announce(self, notice: Notice) -> None:
        """Post the notice's Kubernetes Event on the incident and tell the listeners."""
        self._events(notice.incident, notice.type, notice.reason, notice.message)
        for listener in self.listeners:
            try:
                listener(notice)
            except Exception:
                logger.exception("a listener failed on %s", notice.reason)

    # -- lookups

    @property
    def node_namespace(self) -> str:
        """Where incidents about nodes go."""
        if self.settings.detection.node_namespace:
            return self.settings.detection.node_namespace
        exact = [name for name in self.settings.scope.namespaces if not any(char in name for char in "*?[")]
        return exact[0] if exact else "default"

    def policy_spec(self, namespace: str) -> Mapping[str, Any] | None:
        """The spec of the SupportPolicy that governs the namespace, or None."""
        policy = severity.policy_for(self.caches.namespace_labels(namespace), self.caches.policies())
        return _mapping(policy.get("spec")) if policy is not None else None

    def _fingerprint(self, key: FingerprintKey) -> _Fingerprint:
        found = self._fingerprints.get(key)
        if found is None:
            found = self._fingerprints[key] = _Fingerprint()
        return found

    def _has_cause(self, workload: resources.ObjectRef) -> bool:
        """Whether a pod-level signal of the workload shows now or has an open incident."""
        namespace = workload.namespace
        if self._causes.get((namespace, workload.kind, workload.name)):
            return True
        for kind in signals.POD_TYPES:
            found = self._fingerprints.get((namespace, signals.fingerprint_for(kind, namespace, workload, workload)))
            if found is not None and found.present:
                return True
        return False

    def _track_cause(self, body: Mapping[str, Any], deleted: bool) -> None:
        view = resources.Incident(body)
        key = (view.namespace, view.name)
        previous = self._cause_of.pop(key, None)
        if previous is not None:
            names = self._causes.get(previous, set())
            names.discard(view.name)
            if not names:
                self._causes.pop(previous, None)
        workload = view.workload
        if deleted or workload is None or view.signal_type not in signals.POD_TYPES:
            return
        if (view.phase or lifecycle.INCIDENT.initial) not in incidents.OPEN_PHASES:
            return
        cause = (workload.namespace or view.namespace, workload.kind, workload.name)
        self._cause_of[key] = cause
        self._causes.setdefault(cause, set()).add(view.name)

    # -- detection

    def detect(self, kind: str, body: Mapping[str, Any], now: datetime.datetime) -> sightings.Detection:
        """Run the detector of the kind on one object, with the policy of its namespace."""
        namespace = resources.Resource(body).namespace
        if kind == "Pod":
            spec = self.policy_spec(namespace)
            grace = _duration(spec, "detection", "unschedulableGrace", DEFAULT_UNSCHEDULABLE_GRACE)
            lookback = datetime.timedelta(seconds=self.settings.detection.failure_lookback)
            return pods.detect(body, self.caches.owner, now, unschedulable_grace=grace, failure_lookback=lookback)
        if kind == "Deployment":
            grace = datetime.timedelta(seconds=self.settings.detection.unavailable_grace)
            return deployments.symptoms(deployments.detect(body, now, unavailable_grace=grace), self._has_cause)
        if kind == "Node":
            return nodes.detect(body, now, namespace=self.node_namespace)
        if kind == "Job":
            return jobs.detect(body, now)
        raise ValueError(f"no detector for {kind}")

    async def observe(self, kind: str, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """Take in one object's change: update what shows each signal, count and record new occurrences."""
        now = self._clock()
        view = resources.Resource(body)
        key: ObjectKey = (kind, view.namespace, view.name)
        handle = self._rechecks.pop(key, None)
        if handle is not None:
            handle.cancel()
        if deleted:
            detection = sightings.Detection(resources.ObjectRef(kind, view.name, view.namespace))
        else:
            detection = self.detect(kind, body, now)
        showing = {(seen.signal.namespace, seen.fingerprint): seen for seen in detection.sightings}
        self._update_presence(key, showing, now)
        if deleted:
            self._counted.pop(key, None)
        elif detection.recheck_at is not None:
            self._schedule_recheck(key, kind, body, detection.recheck_at, now)
        for seen in showing.values():
            counted = self._counted.get(key, {}).get(seen.fingerprint)
            count = sightings.occurrences_since(counted, seen)
            if count == 0:
                continue
            first = counted is None or counted.instance != seen.instance
            try:
                recorded = await self._record(seen, count, first=first, now=now)
            except Exception:
                logger.exception("could not record %s on %s/%s", seen.fingerprint, kind, view.name)
                continue
            if recorded:
                self._counted.setdefault(key, {})[seen.fingerprint] = seen

    async def observe_alert(
        self,
        signal: signals.Signal,
        *,
        firing: bool,
        instance: str,
        episode: str = "",
        indexes: Mapping[str, Any] | None = None,
    ) -> None:
        """Take in one alert Alertmanager posted: a firing alert is a sighting of its fingerprint, a resolved one not.

        ``instance`` tells apart the alerts that share a fingerprint (Alertmanager's own
        fingerprint of the alert: one per pod of a Deployment); the fingerprint is clear once
        none of them fires, and its incident auto-resolves after the policy's clear window, as
        for pods. ``episode`` tells one firing of an alert from the next (its ``startsAt``), so
        a notification Alertmanager sends again counts no new occurrence. ``indexes``: Kopf's
        indexes as a handler receives them, for the severity rules: the receiver is no Kopf
        handler. With ``--dry-run`` the first sighting posts a ``DryRunIncident`` Event, as for pods.
        """
        if indexes is not None:
            self.caches = _IndexCaches(indexes)
        now = self._clock()
        key: ObjectKey = ("Alert", signal.namespace, instance)
        fingerprint_key = (signal.namespace, signal.fingerprint)
        found = self._fingerprint(fingerprint_key)
        seen = sightings.Sighting(signal, instance=instance, episode=episode)
        if not firing:
            self._update_presence(key, {}, now)
            self._counted.pop(key, None)
            if not found.present and found.absent_since is None:
                # Absent for sure now, although this process never saw it fire (it started since).
                found.absent_since = now
                found.wake.set()
            return
        # A first sighting in this process may be a re-send of an alert counted before it started
        # (``_record`` skips it when the incident lists the object); not after it saw the fingerprint clear.
        first = key not in self._counted and found.absent_since is None
        self._update_presence(key, {fingerprint_key: seen}, now)
        count = sightings.occurrences_since(self._counted.get(key, {}).get(signal.fingerprint), seen)
        if count and await self._record(seen, count, first=first, now=now):
            self._counted.setdefault(key, {})[signal.fingerprint] = seen

    def _update_presence(
        self, key: ObjectKey, showing: dict[FingerprintKey, sightings.Sighting], now: datetime.datetime
    ) -> None:
        previous = self._showing.pop(key, {})
        if showing:
            self._showing[key] = showing
        for gone in previous.keys() - showing.keys():
            found = self._fingerprint(gone)
            found.present.pop(key, None)
            if not found.present:
                found.absent_since = now
                found.wake.set()
        for fingerprint_key, seen in showing.items():
            found = self._fingerprint(fingerprint_key)
            if not found.present:
                found.absent_since = None
                found.wake.set()
            found.present[key] = seen

    def _schedule_recheck(
        self, key: ObjectKey, kind: str, body: Mapping[str, Any], at: datetime.datetime, now: datetime.datetime
    ) -> None:
        kept = dict(body)
        delay = max(0.0, (at - now).total_seconds()) + 0.01

        def recheck() -> None:
            self._rechecks.pop(key, None)
            task = asyncio.ensure_future(self.observe(kind, kept))
            task.add_done_callback(_log_failure)

        self._rechecks[key] = asyncio.get_running_loop().call_later(delay, recheck)

    async def _current(
        self, found: _Fingerprint, namespace: str, fingerprint: str
    ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """The fingerprint's current incident (cached, else listed by label), and the incidents listed."""
        if found.incident is not None and _phase(found.incident) not in lifecycle.INCIDENT.terminal:
            return found.incident, [found.incident]
        listed = await self.cluster.list_incidents(
            namespace, {incidents.FINGERPRINT_HASH_LABEL: incidents.fingerprint_hash(fingerprint)}
        )
        mine = [body for body in listed if _fingerprint_of(body) == fingerprint]
        current = incidents.current_incident(mine)
        found.incident = dict(current) if current is not None else None
        return found.incident, mine

    async def _record(self, seen: sightings.Sighting, count: int, *, first: bool, now: datetime.datetime) -> bool:
        """Record ``count`` occurrences of a sighting in its incident, opening one if needed; False: gave up."""
        signal = seen.signal
        found = self._fingerprint((signal.namespace, signal.fingerprint))
        async with found.lock:
            for _ in range(MAX_ATTEMPTS):
                current, listed = await self._current(found, signal.namespace, signal.fingerprint)
                if current is None:
                    if self.settings.safety.dry_run:
                        await self._tell_dry_run(signal, now)
                        return True
                    if await self._open(found, signal, listed, now):
                        return True
                    found.incident = None
                    continue
                status = _mapping(current.get("status"))
                if not status.get("phase"):
                    status = self._initial_status(current, signal, now)
                elif first and status.get("phase") in incidents.OPEN_PHASES and _lists(status, signal.affected):
                    return True  # counted before this process started: the incident already lists the object
                if self.settings.safety.dry_run:
                    return True
                updated, reopened = dict(status), False
                for _ in range(min(count, MAX_COUNTED)):
                    occurrence = incidents.record_occurrence(updated, signal, now=now)
                    updated, reopened = occurrence.status, reopened or occurrence.reopened
                try:
                    written = await self.cluster.replace_incident_status({**current, "status": updated})
                except cluster_.Conflict:
                    found.incident = None
                    continue
                found.incident = written
                total = updated.get("occurrences")
                added = int(total or 0) - int(status.get("occurrences") or 0)
                if reopened:
                    self._announce(
                        Notice(
                            written,
                            "Warning",
                            "Reopened",
                            f"the signal came back on {signal.affected}: {signal.reason} (occurrence {total})",
                            signal_type=signal.type,
                            count=added,
                            previous_phase=str(status.get("phase") or ""),
                        )
                    )
                else:
                    self._announce(
                        Notice(
                            written,
                            "Normal",
                            "Occurred",
                            f"{signal.reason} on {signal.affected} (occurrence {total})",
                            signal_type=signal.type,
                            count=added,
                            previous_phase=str(status.get("phase") or ""),
                        )
                    )
                return True
        logger.warning("gave up recording %s after %d conflicts", signal.fingerprint, MAX_ATTEMPTS)
        return False

    def _severity(self, signal: signals.Signal) -> tuple[str, str, Mapping[str, Any] | None]:
        spec = self.policy_spec(signal.namespace)
        labels = self.caches.namespace_labels(signal.namespace)
        chosen, why = severity.severity_for(signal, namespace_labels=labels, policy_spec=spec)
        return chosen, why, spec

    def _deadlines(self, chosen: str, now: datetime.datetime, spec: Mapping[str, Any] | None) -> sla.Deadlines | None:
        try:
            return sla.deadlines(chosen, now, spec or {})
        except errors.SpecError as error:
            logger.warning("SupportPolicy SLA unreadable, no deadlines: %s", error)
            return None

    def _initial_status(
        self, body: Mapping[str, Any], signal: signals.Signal, now: datetime.datetime
    ) -> dict[str, Any]:
        chosen = resources.Incident(body).severity
        spec = self.policy_spec(signal.namespace)
        deadlines = self._deadlines(chosen, now, spec) if chosen in sla.SEVERITIES else None
        return incidents.initial_status(signal, now, deadlines)

    async def _open(
        self, found: _Fingerprint, signal: signals.Signal, listed: list[dict[str, Any]], now: datetime.datetime
    ) -> bool:
        """Create the incident of a signal and its status; False when another writer created it first."""
        chosen, why, spec = self._severity(signal)
        name = incidents.next_incident_name(signal, listed)
        sequence = next(
            (
                number
                for number in range(1, len(listed) + 2)
                if incidents.incident_name(signal, sequence=number) == name
            ),
            1,
        )
        body = incidents.new_incident(signal, chosen, now=now, namespace=signal.namespace, sequence=sequence)
        try:
            created = await self.cluster.create_incident(body)
        except cluster_.Conflict:
            return False
        status = incidents.initial_status(signal, now, self._deadlines(chosen, now, spec))
        status, _ = incidents.apply_requested_state(
            body["spec"], status, actor=incidents.OPERATOR, now=now, generation=resources.Resource(created).generation
        )
        current: dict[str, Any] = created
        for _ in range(MAX_ATTEMPTS):
            try:
                current = await self.cluster.replace_incident_status({**current, "status": status})
                break
            except cluster_.Conflict:
                fresh = await self.cluster.get_incident(signal.namespace, resources.Resource(created).name)
                if fresh is None:
                    return False
                current = fresh
                if _phase(fresh):
                    break
        found.incident = current
        summary = str(body["spec"]["summary"])
        self._announce(
            Notice(
                current,
                "Normal",
                "Opened",
                f"{chosen} ({why}): {summary}",
                signal_type=signal.type,
                count=int(_mapping(current.get("status")).get("occurrences") or 1),
            )
        )
        target = signal.workload or signal.affected
        self._events(
            _reference_body(target),
            "Warning",
            "IncidentOpened",
            f"Incident {resources.Resource(current).name} ({chosen}, {signal.type}) opened: {summary}",
        )
        logger.info("opened incident %s/%s: %s", signal.namespace, resources.Resource(current).name, summary)
        return True

    async def _tell_dry_run(self, signal: signals.Signal, now: datetime.datetime) -> None:
        key = ("open", signal.namespace, signal.fingerprint)
        if key in self._told:
            return
        self._told.add(key)
        chosen, why, _ = self._severity(signal)
        body = incidents.new_incident(signal, chosen, now=now, namespace=signal.namespace)
        try:
            await self.cluster.create_incident(body, dry_run=True)
        except cluster_.Conflict:
            pass
        except Exception as error:
            logger.warning("dry run: the API server refused the incident it would create: %s", error)
        message = (
            f"dry run: would open Incident {body['metadata']['name']} ({chosen}, {why}) for "
            f"{signal.fingerprint}: {body['spec']['summary']}"
        )
        logger.warning(message)
        self._events(_reference_body(signal.workload or signal.affected), "Normal", "DryRunIncident", message)

    # -- incidents

    async def incident_changed(self, body: Mapping[str, Any], *, deleted: bool = False) -> None:
        """An Incident was written (by anyone): keep the cache, apply ``spec.state``, initialise one written by hand."""
        view = resources.Incident(body)
        self._track_cause(body, deleted)
        try:
            fingerprint = _fingerprint_of(body)
        except ValueError as error:
            logger.warning("incident %s/%s has no usable signal: %s", view.namespace, view.name, error)
            return
        found = self._fingerprint((view.namespace, fingerprint))
        if deleted:
            uid = str(view.metadata.get("uid") or "")
            if uid in self._clocks:
                self._clocks[uid] = True
            if found.incident is not None and resources.Resource(found.incident).name == view.name:
                found.incident = None
            found.wake.set()
            return
        async with found.lock:
            latest = dict(_freshest(found.incident, body))
            for _ in range(MAX_ATTEMPTS):
                self._remember(found, latest)
                try:
                    await self._reconcile(found, latest, fingerprint)
                    break
                except cluster_.Conflict:
                    fresh = await self.cluster.get_incident(view.namespace, view.name)
                    if fresh is None:
                        break
                    latest = fresh
        found.wake.set()

    def _remember(self, found: _Fingerprint, body: dict[str, Any]) -> None:
        """Keep ``body`` as the fingerprint's current incident when it is (or replaces) the one cached."""
        cached = found.incident
        same = cached is not None and resources.Resource(cached).name == resources.Resource(body).name
        if cached is None or same:
            found.incident = None if _phase(body) in lifecycle.INCIDENT.terminal else body

    async def _reconcile(self, found: _Fingerprint, body: dict[str, Any], fingerprint: str) -> None:
        view = resources.Incident(body)
        generation = view.generation
        status = view.status
        observed = status.get("observedGeneration")
        labelled = view.labels.get(incidents.FINGERPRINT_HASH_LABEL) == incidents.fingerprint_hash(fingerprint)
        if status.get("phase") and labelled and observed is not None and int(observed) >= (generation or 0):
            return
        now = self._clock()
        if self.settings.safety.dry_run:
            self._tell_requested_dry_run(body)
            return
        verdict = acceptance.assess(body)
        if not verdict.accepted:
            if status.get("observedGeneration") == generation and conditions.find(view.conditions, conditions.STALLED):
                return
            refused = dict(status)
            refused["observedGeneration"] = generation
            refused["conditions"] = conditions.mark_failed(
                view.conditions, reason=verdict.reason, message=verdict.message, generation=generation, stalled=True
            )
            written = await self.cluster.replace_incident_status({**body, "status": refused})
            self._remember(found, written)
            self._events(written, "Warning", verdict.reason, verdict.message)
            return
        if not labelled:
            body = await self.cluster.patch_incident_labels(
                view.namespace,
                view.name,
                {
                    incidents.FINGERPRINT_HASH_LABEL: incidents.fingerprint_hash(fingerprint),
                    incidents.FAMILY_HASH_LABEL: incidents.fingerprint_hash(signals.family_of(fingerprint)),
                },
            )
            self._remember(found, body)
        updated = dict(status)
        opened = not updated.get("phase")
        if opened:
            updated = self._initial_status(body, _signal_of(body, now), now)
        before = str(updated.get("phase") or "")
        actor = _actor(body)
        moved, refusal = incidents.apply_requested_state(
            view.spec, updated, actor=actor, now=now, generation=generation
        )
        if refusal is not None:
            moved["conditions"] = conditions.mark_failed(
                moved.get("conditions"),
                reason="InvalidTransition",
                message=refusal,
                generation=generation,
                stalled=True,
            )
        if moved == dict(status):
            return
        written = await self.cluster.replace_incident_status({**body, "status": moved})
        self._remember(found, written)
        signal_type = view.signal_type
        if opened:
            self._announce(
                Notice(
                    written,
                    "Normal",
                    "Opened",
                    f"recorded an incident opened by hand: {view.spec.get('summary')}",
                    signal_type=signal_type,
                    count=int(moved.get("occurrences") or 1),
                )
            )
        if refusal is not None:
            self._announce(Notice(written, "Warning", "InvalidTransition", refusal, signal_type=signal_type))
        elif moved.get("phase") != before:
            note = f": {view.spec.get('note')}" if view.spec.get("note") else ""
            self._announce(
                Notice(
                    written,
                    "Normal",
                    str(moved.get("phase")),
                    f"{before} → {moved.get('phase')} by {actor}{note}",
                    signal_type=signal_type,
                    previous_phase=before,
                )
            )

    def _tell_requested_dry_run(self, body: Mapping[str, Any]) -> None:
        view = resources.Incident(body)
        requested = view.requested_state
        key = ("state", view.namespace, view.name, str(view.generation))
        if not requested or key in self._told:
            return
        self._told.add(key)
        message = f"dry run: would move the incident from {view.phase or 'no phase'} to {requested} as spec.state asks"
        logger.warning("%s/%s: %s", view.namespace, view.name, message)
        self._events(body, "Normal", "DryRun", message)

    # -- the clocks of one open incident

    async def run_clock(self, body: Mapping[str, Any], stopped: Any) -> None:
        """Keep one open incident's clocks while it is open, until it is deleted (``stopped``: Kopf's daemon flag)."""
        view = resources.Incident(body)
        try:
            fingerprint = _fingerprint_of(body)
        except ValueError:
            return
        found = self._fingerprint((view.namespace, fingerprint))
        uid = str(view.metadata.get("uid") or "")
        self._clocks[uid] = False
        try:
            while not stopped and not self._clocks.get(uid):
                found.wake.clear()
                try:
                    next_at = await self.tend(body, fingerprint)
                except Exception:
                    logger.exception("incident %s/%s: the clock failed; trying again later", view.namespace, view.name)
                    next_at = self._clock() + RETRY_AFTER
                # Never return on its own but on deletion: Kopf would not start it again when the incident reopens.
                timeout = None if next_at is None else max(0.0, (next_at - self._clock()).total_seconds())
                await daemons.wait_any(found.wake, stopped, timeout)
        finally:
            self._clocks.pop(uid, None)

    def _latest(self, found: _Fingerprint, body: Mapping[str, Any]) -> Mapping[str, Any]:
        return _freshest(found.incident, body)

    async def tend(self, body: Mapping[str, Any], fingerprint: str) -> datetime.datetime | None:
        """Auto-resolve and SLA for one incident now; when to look again (None: only when woken)."""
        view = resources.Incident(body)
        found = self._fingerprint((view.namespace, fingerprint))
        async with found.lock:
            current = dict(self._latest(found, body))
            status = _mapping(current.get("status"))
            if status.get("phase") not in incidents.OPEN_PHASES:
                return None
            now = self._clock()
            spec = self.policy_spec(view.namespace)
            updated = dict(status)
            notes: list[dict[str, Any]] = []
            due: list[datetime.datetime | None] = []
            if _auto_resolves(current) and not _presence_unknown(current, found):
                if not found.present and not found.verified:
                    await self._verify_absence(found, current, fingerprint, now)
                if found.present:
                    updated.pop("clearSince", None)
                else:
                    clear_for = _duration(spec, "autoResolve", "clearFor", DEFAULT_CLEAR_FOR)
                    since = sla.parse_time(updated.get("clearSince")) or found.absent_since or now
                    found.absent_since = since
                    resolved = incidents.auto_resolve(updated, signal_clear_since=since, clear_for=clear_for, now=now)
                    if resolved is not None:
                        updated = resolved
                        clear = durations.format_duration(clear_for)
                        notes.append(
                            {
                                "type": "Normal",
                                "reason": "AutoResolved",
                                "message": f"no object has shown the signal for {clear}",
                            }
                        )
                    else:
                        updated = incidents.record_clear(updated, since=since)
                        due.append(incidents.auto_resolve_at(updated, signal_clear_since=since, clear_for=clear_for))
            try:
                state = sla.evaluate(updated, spec or {}, now)
            except errors.SpecError as error:
                logger.warning("incident %s/%s: SLA not evaluated: %s", view.namespace, view.name, error)
            else:
                if state.changed:
                    updated = sla.apply(updated, state, now=now, generation=view.generation)
                    for breach in state.breaches:
                        notes.append(
                            {
                                "type": "Warning",
                                "reason": sla.SLA_BREACHED,
                                "message": f"the {breach} deadline passed",
                                "breach": breach,
                            }
                        )
                    levels = {level.level: level for level in sla.escalation_levels(spec or {})}
                    for level in state.new_levels:
                        named = tuple(levels[level].channels) if level in levels else ()
                        channels = ", ".join(named) or "no channels"
                        notes.append(
                            {
                                "type": "Warning",
                                "reason": sla.ESCALATED,
                                "message": f"escalation level {level} reached ({channels})",
                                "level": level,
                                "channels": named,
                            }
                        )
                if updated.get("phase") in incidents.OPEN_PHASES:
                    due.append(state.next_check)
            if updated != dict(status):
                try:
                    written = await self.cluster.replace_incident_status({**current, "status": updated})
                except cluster_.Conflict:
                    found.incident = None
                    fresh = await self.cluster.get_incident(view.namespace, view.name)
                    if fresh is not None:
                        self._remember(found, fresh)
                    return now
                self._remember(found, written)
                for note in notes:
                    self._announce(
                        Notice(
                            written,
                            signal_type=view.signal_type,
                            previous_phase=str(status.get("phase") or ""),
                            **note,
                        )
                    )
            return sightings.earliest(due)

    def _narrowing(self, kind: str, workload: resources.ObjectRef | None) -> tuple[str, str]:
        """(label selector, field selector) that list only the objects of the incident's workload.

        A workload's pods by the workload's selector (from the owner cache; a selector with
        expressions lists the namespace); a Deployment or Job by its name. Nodes and unknown
        workloads: everything. A hundred incidents verifying at once would otherwise each list
        every pod of the namespace (bench/remediation.py).
        """
        if workload is None:
            return "", ""
        if kind == workload.kind:
            return "", f"metadata.name={workload.name}"
        if kind != "Pod":
            return "", ""
        owner = self.caches.owner(workload)
        selector = _mapping(_mapping(_mapping(owner).get("spec")).get("selector"))
        labels = _mapping(selector.get("matchLabels"))
        if not labels or selector.get("matchExpressions"):
            return "", ""
        return ",".join(f"{key}={value}" for key, value in sorted(labels.items())), ""

    async def _verify_absence(
        self, found: _Fingerprint, incident: Mapping[str, Any], fingerprint: str, now: datetime.datetime
    ) -> None:
        """List the objects that could show the signal: the watches may not have delivered them yet after a start."""
        found.verified = True
        kind = _kind_for(resources.Incident(incident).signal_type)
        if kind is None:
            return
        namespace = resources.Resource(incident).namespace
        label_selector, field_selector = self._narrowing(kind, resources.Incident(incident).workload)
        listed = await self.cluster.list_objects(
            kind, namespace, label_selector=label_selector, field_selector=field_selector
        )
        for body in listed:
            view = resources.Resource(body)
            key: ObjectKey = (kind, view.namespace, view.name)
            for seen in self.detect(kind, body, now).sightings:
                if seen.fingerprint == fingerprint:
                    fingerprint_key = (seen.signal.namespace, fingerprint)
                    self._showing.setdefault(key, {})[fingerprint_key] = seen
                    found.present[key] = seen
                    found.absent_since = None


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a recheck failed", exc_info=task.exception())


def _is_open(body: kopf.Body, **_: Any) -> bool:
    return _phase(body) in incidents.OPEN_PHASES


def register(
    registry: kopf.OperatorRegistry,
    settings: settings_.OperatorSettings,
    *,
    cluster: cluster_.Cluster | None = None,
) -> IncidentController:
    """Register the detectors and the Incident handlers on ``registry``; the controller is returned for tests."""
    controller = IncidentController(settings, cluster or cluster_.KubernetesCluster())

    for api_version, plural in OWNERS.values():
        kopf.index(api_version, plural, id=_owner_index_id(plural), registry=registry)(_owner_entry)
    kopf.index(GROUP, VERSION, "supportpolicies", id=POLICY_INDEX, registry=registry)(_policy_entry)
    kopf.index("v1", "namespaces", id=NAMESPACE_INDEX, registry=registry)(_namespace_entry)

    def on_object(kind: str) -> Callable[..., Any]:
        async def handler(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
            controller.caches = _IndexCaches(kwargs)
            await controller.observe(kind, body, deleted=type == "DELETED")

        return handler

    for kind, (api_version, plural) in WATCHED.items():
        kopf.on.event(api_version, plural, id=f"detect-{plural}", registry=registry)(on_object(kind))

    async def on_incident(type: str | None, body: kopf.Body, **kwargs: Any) -> None:
        controller.caches = _IndexCaches(kwargs)
        await controller.incident_changed(body, deleted=type == "DELETED")

    kopf.on.event(GROUP, VERSION, "incidents", id="incidents", registry=registry)(on_incident)

    if not settings.safety.dry_run:

        async def clock(body: kopf.Body, stopped: kopf.DaemonStopped, **kwargs: Any) -> None:
            controller.caches = _IndexCaches(kwargs)
            await controller.run_clock(body, stopped)

        kopf.daemon(
            GROUP, VERSION, "incidents", id="incident-clock", registry=registry, when=_is_open, cancellation_timeout=5.0
        )(clock)
        daemons.without_finalizer(registry, "incident-clock")  # ``run_clock`` ends when the incident is deleted
    return controller
